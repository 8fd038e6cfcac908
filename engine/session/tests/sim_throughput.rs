//! How fast the session state machines themselves go, with no I/O: a client and a server
//! wired back to back in memory, pipelined 64-byte exchanges over a trunk. The driver
//! budget the shards have left is what this does not use. Run with
//! `cargo test --release -p hawser-session --test sim_throughput -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hawser_session::{
    CallOptions, ChannelAttributes, ClientConfig, ClientCredentials, ClientEndpoint, Event,
    ExchangeId, Reply, ServerConfig, ServerCredentials, ServerEndpoint,
};

fn run(exchanges: u64, connections: usize, digest: bool) -> (Duration, ClientEndpoint) {
    let now = Instant::now();
    let mut server = ServerEndpoint::new(ServerConfig::new(ServerCredentials::anonymous()), 1);
    let mut config = ClientConfig::new("bench", ClientCredentials::Anonymous);
    config.connections = connections;
    config.digest = digest;
    config.fore = ChannelAttributes {
        slots: 256,
        ..ChannelAttributes::default()
    };
    let mut client = ClientEndpoint::new(config, now);
    let mut pairs = Vec::new();
    let mut buf = BytesMut::with_capacity(1 << 20);
    let body = Bytes::from(vec![7u8; 64]);
    let (mut sent, mut done) = (0u64, 0u64);
    let start = Instant::now();
    while done < exchanges {
        // Keep the window full.
        while sent < exchanges && sent - done < 512 {
            client
                .call(now, ExchangeId(1), body.clone(), CallOptions::default())
                .unwrap();
            sent += 1;
        }
        while let Some(e) = client.poll_event() {
            match e {
                Event::WantConnection => pairs.push((
                    client.add_connection(now, [1; 16]),
                    server.accept(now, [2; 16]),
                )),
                Event::Completed { result, .. } => {
                    result.unwrap();
                    done += 1;
                }
                _ => {}
            }
        }
        while let Some(e) = server.poll_event() {
            if let Event::Request { request, body } = e {
                server.respond(now, &request, Reply::Ok(body));
            }
        }
        for &(c, s) in &pairs {
            buf.clear();
            if client.poll_transmit(now, c, &mut buf) > 0 {
                server.handle_input(now, s, &buf);
            }
            buf.clear();
            if server.poll_transmit(now, s, &mut buf) > 0 {
                client.handle_input(now, c, &buf);
            }
        }
    }
    (start.elapsed(), client)
}

#[test]
#[ignore = "a measurement; run in release"]
fn pipelined_small_exchanges_per_second() {
    for (connections, digest) in [(1, false), (4, false), (4, true)] {
        let n = 500_000;
        let (took, client) = run(n, connections, digest);
        let h = &client.stats().latency[&ExchangeId(1)];
        eprintln!(
            "{connections} connection(s), digest {digest}: {:.0} exchanges/s through both state machines on one thread ({} completed)",
            n as f64 / took.as_secs_f64(),
            h.len()
        );
    }
}

#[test]
fn a_short_pipelined_run_completes() {
    let (_, client) = run(2_000, 2, true);
    assert_eq!(client.stats().requests_completed, 2_000);
}
