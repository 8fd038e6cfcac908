//! A server on several shards: each client identity's connections open on the shard its
//! route names, so every connection of a nexus lives on one shard.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use hawser_runtime::{Address, Client, ClientOptions, ExchangeId, Runtime, ServerBuilder, Service};

const WHERE: ExchangeId = ExchangeId(1);
const SLOW: ExchangeId = ExchangeId(2);

/// Identities, two routed to each of two shards.
fn identities() -> Vec<(String, usize)> {
    let mut picked = Vec::new();
    let mut per_shard = [0; 2];
    for i in 0.. {
        let identity = format!("client-{i}");
        let shard = usize::from(hawser_wire::dsp::identity_route(&identity)) % 2;
        if per_shard[shard] < 2 {
            per_shard[shard] += 1;
            picked.push((identity, shard));
        }
        if per_shard == [2, 2] {
            return picked;
        }
    }
    unreachable!()
}

#[test]
fn each_identity_lives_on_the_shard_its_route_names() {
    each_identity_on_its_shard(Address::parse("127.0.0.1:0").unwrap());
}

#[test]
fn each_identity_lives_on_the_shard_its_route_names_over_unix_sockets() {
    let path = std::env::temp_dir().join(format!("hawser-shards-{}.sock", std::process::id()));
    each_identity_on_its_shard(Address::Unix(path));
}

fn each_identity_on_its_shard(address: Address) {
    let runtime = Runtime::new(2).unwrap();
    // Inline handlers run on the shard that holds the request's nexus.
    let svc = Service::new("where")
        .handler(WHERE, "where", |_, _| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            Ok(Bytes::from(name))
        })
        .blocking_handler(SLOW, "slow", |_, body| {
            std::thread::sleep(Duration::from_millis(2));
            Ok(body)
        });
    let server = ServerBuilder::new()
        .runtime_all_shards(&runtime)
        .service(svc)
        .listen_on(&[address])
        .unwrap();
    assert_eq!(server.shards_used(), [0, 1]);
    let clients: Vec<_> = identities()
        .into_iter()
        .map(|(identity, shard)| {
            let options = ClientOptions {
                identity,
                connections: 4,
                connect_timeout: Duration::from_secs(10),
                ..ClientOptions::default()
            };
            (
                Client::connect_to(&server.addresses()[0], options).unwrap(),
                shard,
            )
        })
        .collect();
    for (client, shard) in &clients {
        let mut seen = HashSet::new();
        for answer in client.call_many(WHERE, (0..64).map(|_| Bytes::new())) {
            seen.insert(String::from_utf8(answer.unwrap().to_vec()).unwrap());
        }
        assert_eq!(
            seen,
            HashSet::from([format!("hawser-shard-{shard}")]),
            "all of a trunk's connections on its identity's shard"
        );
        // Blocking handlers answer through the host of the request's shard.
        let body = Bytes::from_static(b"back to the right shard");
        for answer in client.call_many(SLOW, (0..16).map(|_| body.clone())) {
            assert_eq!(answer.unwrap(), body);
        }
        assert_eq!(client.stats().bound_connections, 4);
    }
    // The server's report covers both shards.
    let stats = server.stats();
    assert_eq!(stats.nexuses.len(), 4);
    assert_eq!(stats.connections.len(), 16);
    for detail in &stats.details {
        let route = hawser_wire::dsp::identity_route(&detail.identity);
        assert_eq!(detail.shard, usize::from(route) % 2, "{}", detail.identity);
    }
    for (i, snapshot) in server.shard_stats().iter().enumerate() {
        assert!(
            snapshot.accepts >= 8,
            "shard {i} opened its identities' connections"
        );
    }
    for (client, _) in clients {
        client.close();
    }
}
