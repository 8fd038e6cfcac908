//! Messages through sinks and feeds on real sockets: routing, the slow-consumer
//! policies, heartbeats, the lifetime of entities, hostile connections.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use hawser_dmp::client::DirectOptions;
use hawser_dmp::{Consumer, DmpConfig, DmpError, FlowPolicy, Publisher, Wiring};

/// A body carrying its publisher and sequence number.
fn body(publisher: u8, seq: u64, len: usize) -> Vec<u8> {
    let mut b = vec![publisher; len.max(9)];
    b[1..9].copy_from_slice(&seq.to_be_bytes());
    b
}

fn seq_of(body: &[u8]) -> (u8, u64) {
    (body[0], u64::from_be_bytes(body[1..9].try_into().unwrap()))
}

fn publish_n(mut p: Publisher, id: u8, n: u64, len: usize) -> Publisher {
    for seq in 0..n {
        p.publish(b"k", &body(id, seq, len)).unwrap();
    }
    p.flush().unwrap();
    p
}

#[test]
fn routes_by_exact_key_and_wildcard() {
    let server = serve(DmpConfig::default());
    let c = client(&server);
    let w = Wiring::new(&c);
    w.declare_sink("orders", false).unwrap();
    w.declare_feed("eu", false, FlowPolicy::Block, 0, 0)
        .unwrap();
    w.declare_feed("paris", false, FlowPolicy::Block, 0, 0)
        .unwrap();
    w.bind("eu", "orders", "eu.#").unwrap();
    w.bind("paris", "orders", "eu.fr.paris").unwrap();
    let mut eu = w.consumer("eu", DirectOptions::default()).unwrap();
    let mut paris = w.consumer("paris", DirectOptions::default()).unwrap();
    let mut p = w.publisher("orders", DirectOptions::default()).unwrap();
    for key in ["eu.fr.paris", "us.ny", "eu", "eu.de.berlin", "eu.fr.paris"] {
        p.publish(key.as_bytes(), key.as_bytes()).unwrap();
    }
    p.close().unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let d = eu.recv().unwrap().unwrap();
        got.push(String::from_utf8(d.envelope.body.to_vec()).unwrap());
        assert!(d.age_micros().is_some(), "stamped by the publisher");
    }
    assert_eq!(got, ["eu.fr.paris", "eu", "eu.de.berlin", "eu.fr.paris"]);
    for _ in 0..2 {
        let d = paris.recv().unwrap().unwrap();
        assert_eq!(d.envelope.routing_key.as_bytes(), b"eu.fr.paris");
    }
    let stats = w.stats().unwrap();
    assert_eq!(stats.unrouted, 1, "us.ny went nowhere");
}

#[test]
fn block_loses_nothing_and_keeps_each_publishers_order_while_the_consumer_stalls() {
    let server = serve(DmpConfig::default());
    let c = client(&server);
    let w = Wiring::new(&c);
    w.declare_sink("s", false).unwrap();
    w.declare_feed("f", false, FlowPolicy::Block, 64 << 10, 16 << 10)
        .unwrap();
    w.bind("f", "s", "#").unwrap();
    let mut consumer = w.consumer("f", DirectOptions::default()).unwrap();
    let per_publisher = 40_000u64;
    let publishers: Vec<_> = (0..2u8)
        .map(|id| {
            let p = w.publisher("s", DirectOptions::default()).unwrap();
            std::thread::spawn(move || publish_n(p, id, per_publisher, 200).close().unwrap())
        })
        .collect();
    // The consumer stalls: the feed fills past its mark and the publishers block.
    std::thread::sleep(Duration::from_millis(700));
    let stats = w.stats().unwrap();
    let feed = &stats.feeds[0];
    assert!(feed.counters.blocked >= 1, "{feed:?}");
    // Queue bounded by the mark plus one receive per publisher.
    assert!(
        feed.queued_bytes <= (64 << 10) + 2 * (256 << 10),
        "{feed:?}"
    );
    let mut next = [0u64; 2];
    for _ in 0..2 * per_publisher {
        let d = consumer.recv().unwrap().unwrap();
        let (id, seq) = seq_of(d.envelope.body);
        assert_eq!(
            seq,
            next[usize::from(id)],
            "publisher {id} in order, nothing lost"
        );
        next[usize::from(id)] += 1;
    }
    for p in publishers {
        p.join().unwrap();
    }
    let feed = &w.stats().unwrap().feeds[0];
    assert_eq!(feed.counters.dropped, 0);
    assert_eq!(feed.counters.delivered, 2 * per_publisher);
}

#[test]
fn drop_oldest_drops_the_front_and_keeps_the_rest_in_order() {
    let server = serve(DmpConfig::default());
    let c = client(&server);
    let w = Wiring::new(&c);
    w.declare_sink("s", false).unwrap();
    w.declare_feed("f", false, FlowPolicy::DropOldest, 64 << 10, 32 << 10)
        .unwrap();
    w.bind("f", "s", "#").unwrap();
    // No consumer yet: everything past the mark is dropped from the front.
    let n = 20_000u64;
    publish_n(
        w.publisher("s", DirectOptions::default()).unwrap(),
        0,
        n,
        200,
    )
    .close()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let feed = loop {
        let feed = w.stats().unwrap().feeds.remove(0);
        if feed.counters.received == n || Instant::now() > deadline {
            break feed;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(feed.counters.received, n);
    assert!(feed.counters.dropped > 0);
    assert!(feed.queued_bytes <= 64 << 10, "{feed:?}");
    let kept = n - feed.counters.dropped;
    let mut consumer = w.consumer("f", DirectOptions::default()).unwrap();
    let mut last = None;
    for _ in 0..kept {
        let (_, seq) = seq_of(consumer.recv().unwrap().unwrap().envelope.body);
        assert!(last.is_none_or(|l| seq == l + 1), "contiguous, newest kept");
        last = Some(seq);
    }
    assert_eq!(last, Some(n - 1), "the newest message is kept");
}

#[test]
fn disconnect_closes_a_slow_consumer() {
    let server = serve(DmpConfig::default());
    let c = client(&server);
    let w = Wiring::new(&c);
    w.declare_sink("s", false).unwrap();
    w.declare_feed("f", false, FlowPolicy::Disconnect, 64 << 10, 32 << 10)
        .unwrap();
    w.bind("f", "s", "#").unwrap();
    let mut consumer = w.consumer("f", DirectOptions::default()).unwrap();
    // Enough to fill the consumer's socket buffers and then the feed's queue.
    publish_n(
        w.publisher("s", DirectOptions::default()).unwrap(),
        0,
        100_000,
        500,
    )
    .close()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let feed = w.stats().unwrap().feeds.remove(0);
        if feed.counters.disconnects == 1 {
            assert!(!feed.consumer);
            break;
        }
        assert!(Instant::now() < deadline, "{feed:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The consumer reads what reached it, then the end.
    let mut read = 0;
    while consumer.recv().unwrap().is_some() {
        read += 1;
    }
    assert!(read < 100_000);
    // A new consumer may take the feed.
    assert!(w.consumer("f", DirectOptions::default()).is_ok());
}

#[test]
fn entities_live_until_the_applications_last_connection_closes() {
    let server = serve(DmpConfig::default());
    let watcher = client(&server);
    let app = client(&server);
    let w = Wiring::new(&app);
    wire_s_to_f(&w);
    let consumer = w.consumer("f", DirectOptions::default()).unwrap();
    app.close(); // the nexus goes; the direct connection stays
    std::thread::sleep(Duration::from_millis(200));
    let stats = Wiring::new(&watcher).stats().unwrap();
    assert_eq!((stats.sinks, stats.feeds.len()), (1, 1), "still used");
    consumer.close();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = Wiring::new(&watcher).stats().unwrap();
        if stats.sinks == 0 && stats.feeds.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{stats:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn durable_entities_outlive_their_application() {
    let builder = hawser_runtime::ServerBuilder::new()
        .password("ops", "ops secret")
        .allow_anonymous(true);
    let server = serve_with(builder, DmpConfig::default());
    let watcher = client(&server);
    let login = || {
        hawser_runtime::Client::connect(
            server.local_addr(),
            hawser_runtime::ClientOptions {
                connections: 1,
                identity: "ops".into(),
                password: Some(b"ops secret".to_vec()),
                ..hawser_runtime::ClientOptions::default()
            },
        )
        .unwrap()
    };
    let app = login();
    Wiring::new(&app).declare_sink("kept", true).unwrap();
    Wiring::new(&app).declare_sink("gone", false).unwrap();
    app.close();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(Wiring::new(&watcher).stats().unwrap().sinks, 1);
    // An anonymous client's word is no proof to keep things by.
    let e = Wiring::new(&watcher)
        .declare_sink("mine", true)
        .unwrap_err();
    assert_eq!(e.code(), Some(hawser_wire::dmp::ResponseCode::NoAccess));
}

#[test]
fn the_server_heartbeats_and_closes_a_silent_consumer() {
    let server = serve(DmpConfig {
        heartbeat: Duration::from_millis(100),
        dead_after: Duration::from_millis(400),
        ..DmpConfig::default()
    });
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);
    let mut s = raw(server.local_addr());
    let started = Instant::now();
    let (_, ready) = dialog(&mut s, w.get("f").unwrap().as_bytes());
    assert!(ready.starts_with("200"));
    // Nulls come while it is silent, then the server gives up on it.
    let rest = read_to_close(&mut s);
    let waited = started.elapsed();
    assert!(rest.len() >= 8 && rest.iter().all(|&b| b == 0), "{rest:?}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn a_consumer_detects_a_silent_server() {
    // A server that answers the dialog and then says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = [0u8; 8 + 1 + 4];
        s.read_exact(&mut hello).unwrap();
        s.write_all(b"\x0e200 OK DMP/0.1\x06200 OK").unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let options = DirectOptions {
        heartbeat: Duration::from_millis(100),
        dead_after: Duration::from_millis(400),
        ..DirectOptions::default()
    };
    let mut consumer =
        Consumer::open(&hawser_runtime::Address::Tcp(addr), "abcd", options).unwrap();
    let started = Instant::now();
    let e = consumer.recv().unwrap_err();
    assert!(matches!(e, DmpError::Dead(_)), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1));
    silent.join().unwrap();
}

#[test]
fn hostile_direct_connections_are_closed_without_harm_to_others() {
    let server = serve(DmpConfig::default());
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);
    let mut consumer = w.consumer("f", DirectOptions::default()).unwrap();
    let mut publisher = w.publisher("s", DirectOptions::default()).unwrap();
    let garbage: [&[u8]; 4] = [
        b"AMQP\xff\xff\xff\xff\xff\xff\xff",
        b"AMQP\x0a\x01\x00\x01\xff",
        b"GET / HTTP/1.1\r\n\r\n",
        b"AMQ",
    ];
    let mut hostile = Vec::new();
    for bytes in garbage {
        let mut s = raw(server.local_addr());
        s.write_all(bytes).unwrap();
        hostile.push(s);
    }
    // A publisher with a size field of 2 GiB.
    let mut huge = raw(server.local_addr());
    dialog(&mut huge, w.put("s").unwrap().as_bytes());
    huge.write_all(&[0x80, 0, 0, 0]).unwrap();
    let verdict = read_response(&mut huge);
    assert!(verdict.starts_with("530"), "{verdict}");
    for (i, seq) in (0..1000u64).enumerate() {
        publisher.publish(b"k", &body(0, seq, 64)).unwrap();
        if i % 100 == 0 {
            publisher.flush().unwrap();
        }
    }
    publisher.flush().unwrap();
    for seq in 0..1000u64 {
        assert_eq!(
            seq_of(consumer.recv().unwrap().unwrap().envelope.body),
            (0, seq)
        );
    }
    for mut s in hostile.drain(..2) {
        let answer = read_to_close(&mut s);
        assert!(
            answer.is_empty() || answer[1..].starts_with(b"540") || answer[1..].starts_with(b"200")
        );
    }
}

#[test]
fn busy_and_idle_clients_keep_to_the_servers_heartbeat() {
    let server = serve(DmpConfig {
        heartbeat: Duration::from_millis(100),
        dead_after: Duration::from_millis(300),
        ..DmpConfig::default()
    });
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);
    // The clients' own timers are 5 s and 15 s: the server's Ready text tells them 100 ms.
    let mut consumer = w.consumer("f", DirectOptions::default()).unwrap();
    let mut publisher = w.publisher("s", DirectOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(700)); // both idle
    for seq in 0..24u64 {
        publisher.publish(b"k", &body(0, seq, 16)).unwrap();
        publisher.flush().unwrap();
        // The consumer only reads, every 50 ms: its reads carry no heartbeat of theirs.
        let d = consumer.recv().unwrap().unwrap();
        assert_eq!(seq_of(d.envelope.body), (0, seq));
        std::thread::sleep(Duration::from_millis(50));
    }
    publisher.close().unwrap();
    assert_eq!(
        w.stats().unwrap().direct_connections,
        1,
        "the consumer lives"
    );
}

#[test]
fn a_consumer_skips_a_malformed_message_and_goes_on() {
    let server = serve(DmpConfig::default());
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);
    let mut consumer = w.consumer("f", DirectOptions::default()).unwrap();
    let mut s = raw(server.local_addr());
    dialog(&mut s, w.put("s").unwrap().as_bytes());
    // Size 14: empty exchange and key, flags, options, an empty body, then 6 stray bytes
    // the server does not look at (it routes by size, exchange and key).
    s.write_all(b"\x00\x00\x00\x0e\x00\x00\x00\x00\x00\x00\x00\x00\x05lko\x00\x00")
        .unwrap();
    s.write_all(&message("", "k", b"after")).unwrap();
    let e = consumer.recv().unwrap_err();
    assert!(e.is_skipped_message(), "{e}");
    let d = consumer.recv().unwrap().unwrap();
    assert_eq!(d.envelope.body, b"after");
    assert_eq!(consumer.malformed(), 1);
}
