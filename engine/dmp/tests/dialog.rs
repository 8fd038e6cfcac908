//! The seed's dialog on a real socket, byte for byte, and every response code's path.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use hawser_dmp::{DmpConfig, FlowPolicy, Wiring};
use hawser_wire::dmp::ResponseCode;
use hawser_wire::dmp::wiring::EntityKind;

#[test]
fn the_seed_dialog_byte_for_byte_and_messages_pass_as_they_arrived() {
    let server = serve(DmpConfig::default());
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);

    let get = w.get("f").unwrap();
    let mut consumer = raw(server.local_addr());
    consumer.write_all(b"AMQP\x0a\x01\x00\x01").unwrap();
    // 14 octets: "200 OK DMP/0.1".
    let mut greeting = [0u8; 15];
    std::io::Read::read_exact(&mut consumer, &mut greeting).unwrap();
    assert_eq!(&greeting, b"\x0e200 OK DMP/0.1");
    let mut lease = vec![32u8];
    lease.extend_from_slice(get.as_bytes());
    consumer.write_all(&lease).unwrap();
    // 48 octets: the seed's text, then hawser's heartbeat note.
    let ready = b"\x30200 OK Ready to read from \"f\"; heartbeat 5000 ms";
    let mut got = vec![0u8; ready.len()];
    std::io::Read::read_exact(&mut consumer, &mut got).unwrap();
    assert_eq!(got, ready);

    let put = w.put("s").unwrap();
    let mut publisher = raw(server.local_addr());
    let (greeting, ready) = dialog(&mut publisher, put.as_bytes());
    assert_eq!(greeting, "200 OK DMP/0.1");
    assert_eq!(ready, "200 OK Ready to write to \"s\"; heartbeat 5000 ms");
    // Hand-written envelopes: size, exchange "s", routing key "k", no properties,
    // options 0, body "hi"; then one naming no exchange; a null message between.
    let first: &[u8] = b"\x00\x00\x00\x0c\x01s\x01k\x00\x00\x00\x00\x00\x02hi";
    let second: &[u8] = b"\x00\x00\x00\x0d\x00\x02kk\x00\x00\x02\x00\x00\x03abc";
    publisher.write_all(first).unwrap();
    publisher.write_all(&[0, 0, 0, 0]).unwrap();
    publisher.write_all(second).unwrap();
    let mut received = vec![0u8; first.len() + second.len()];
    std::io::Read::read_exact(&mut consumer, &mut received).unwrap();
    let mut want = first.to_vec();
    want.extend_from_slice(second);
    assert_eq!(
        received, want,
        "the consumer gets the bytes the publisher sent"
    );
}

fn refused(response: &str, code: ResponseCode) {
    assert!(
        response.starts_with(&format!("{} {}", code.code(), code.indicator())),
        "expected {code:?}, got {response:?}"
    );
}

#[test]
fn leases_are_single_use_expire_and_unknown_ones_are_bad() {
    let server = serve(DmpConfig {
        lease_ttl: Duration::from_millis(300),
        ..DmpConfig::default()
    });
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);

    let mut s = raw(server.local_addr());
    let (_, verdict) = dialog(&mut s, b"00000000000000000000000000000000");
    refused(&verdict, ResponseCode::BadLease);
    assert!(read_to_close(&mut s).is_empty(), "closed after the refusal");

    let lease = w.put("s").unwrap();
    let mut first = raw(server.local_addr());
    let (_, ok) = dialog(&mut first, lease.as_bytes());
    assert!(ok.starts_with("200 OK Ready"), "{ok}");
    let mut again = raw(server.local_addr());
    let (_, verdict) = dialog(&mut again, lease.as_bytes());
    refused(&verdict, ResponseCode::BadLease);

    let late = w.put("s").unwrap();
    std::thread::sleep(Duration::from_millis(450));
    let mut s = raw(server.local_addr());
    let (_, verdict) = dialog(&mut s, late.as_bytes());
    refused(&verdict, ResponseCode::BadLease);
    assert!(verdict.contains("expired"), "{verdict}");
}

#[test]
fn a_lease_is_refused_from_another_host_than_its_nexus() {
    // The nexus comes from 127.0.0.1; the direct connection from ::1.
    let dmp = hawser_dmp::DmpService::new(DmpConfig::default());
    let Ok(server) = hawser_runtime::ServerBuilder::new()
        .service(dmp.service())
        .listen_on(&[
            hawser_runtime::Address::parse("127.0.0.1:0").unwrap(),
            hawser_runtime::Address::parse("[::1]:0").unwrap(),
        ])
    else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);
    let lease = w.put("s").unwrap();
    let v6 = match &server.addresses()[1] {
        hawser_runtime::Address::Tcp(a) => *a,
        other => panic!("{other:?}"),
    };
    let mut s = raw(v6);
    let (_, verdict) = dialog(&mut s, lease.as_bytes());
    refused(&verdict, ResponseCode::BadLease);
    assert!(verdict.contains("another client"), "{verdict}");
}

#[test]
fn every_response_code_has_its_path() {
    let server = serve(DmpConfig {
        handshake_timeout: Duration::from_millis(300),
        max_message_size: 4096,
        ..DmpConfig::default()
    });
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);

    // 540: a foreign AMQP protocol header.
    let mut s = raw(server.local_addr());
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    refused(&read_response(&mut s), ResponseCode::NotImplemented);

    // 502: an empty lease.
    let mut s = raw(server.local_addr());
    let (_, verdict) = dialog(&mut s, b"");
    refused(&verdict, ResponseCode::SyntaxError);

    // 503: no lease in time.
    let mut s = raw(server.local_addr());
    s.write_all(b"AMQP\x0a\x01\x00\x01").unwrap();
    assert_eq!(read_response(&mut s), "200 OK DMP/0.1");
    refused(&read_response(&mut s), ResponseCode::Invalid);

    // 404: the sink went between the lease and the connection.
    w.declare_sink("gone", false).unwrap();
    let lease = w.put("gone").unwrap();
    w.delete(EntityKind::Sink, "gone").unwrap();
    let mut s = raw(server.local_addr());
    refused(&dialog(&mut s, lease.as_bytes()).1, ResponseCode::NotFound);
    // ... and over the nexus.
    assert_eq!(
        w.put("nowhere").unwrap_err().code(),
        Some(ResponseCode::NotFound)
    );

    // 403: a message naming another exchange than the lease's sink.
    let mut s = raw(server.local_addr());
    dialog(&mut s, w.put("s").unwrap().as_bytes());
    s.write_all(&message("other", "k", b"x")).unwrap();
    refused(&read_response(&mut s), ResponseCode::NoAccess);

    // 530: a message over the server's limit.
    let mut s = raw(server.local_addr());
    dialog(&mut s, w.put("s").unwrap().as_bytes());
    s.write_all(&[0x7f, 0xff, 0xff, 0xff]).unwrap();
    refused(&read_response(&mut s), ResponseCode::NotAllowed);

    // 502: an envelope whose fields overrun its size.
    let mut s = raw(server.local_addr());
    dialog(&mut s, w.put("s").unwrap().as_bytes());
    s.write_all(&[0, 0, 0, 3, 200, 0, 0]).unwrap();
    refused(&read_response(&mut s), ResponseCode::SyntaxError);

    // 530: a second consumer of the exclusive feed, at the nexus and at the socket.
    let first = w.get("f").unwrap();
    let second = w.get("f").unwrap();
    let mut a = raw(server.local_addr());
    assert!(dialog(&mut a, first.as_bytes()).1.starts_with("200"));
    let mut b = raw(server.local_addr());
    refused(
        &dialog(&mut b, second.as_bytes()).1,
        ResponseCode::NotAllowed,
    );
    assert_eq!(
        w.get("f").unwrap_err().code(),
        Some(ResponseCode::NotAllowed)
    );

    // 530 at the nexus: a feed declared again with other settings.
    let e = w
        .declare_feed("f", false, FlowPolicy::DropOldest, 0, 0)
        .unwrap_err();
    assert_eq!(e.code(), Some(ResponseCode::NotAllowed));
    // 502 at the nexus: a wildcard inside a word.
    let e = w.bind("f", "s", "a*.b").unwrap_err();
    assert_eq!(e.code(), Some(ResponseCode::SyntaxError));
}

#[test]
fn a_broken_configuration_answers_541() {
    let server = serve(DmpConfig {
        bindings: vec![hawser_dmp::BindingDeclaration {
            feed: "missing".into(),
            sink: "missing".into(),
            pattern: "#".into(),
        }],
        ..DmpConfig::default()
    });
    let mut s = raw(server.local_addr());
    s.write_all(b"AMQP\x0a\x01\x00\x01").unwrap();
    refused(&read_response(&mut s), ResponseCode::InternalError);
    let c = client(&server);
    let e = Wiring::new(&c).declare_sink("s", false).unwrap_err();
    assert_eq!(e.code(), Some(ResponseCode::InternalError));
}

#[test]
fn refused_when_direct_connections_are_not_granted() {
    let server = serve(DmpConfig {
        refuse_direct: Some("this server requires TLS".into()),
        ..DmpConfig::default()
    });
    let c = client(&server);
    let w = Wiring::new(&c);
    wire_s_to_f(&w);
    let e = w.put("s").unwrap_err();
    assert_eq!(e.code(), Some(ResponseCode::NotAllowed));
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[test]
fn feeds_belong_to_the_identity_that_declared_them() {
    let builder = hawser_runtime::ServerBuilder::new()
        .password("alice", "alice's secret")
        .password("bob", "bob's secret");
    let server = serve_with(builder, DmpConfig::default());
    let login = |identity: &str, password: &str| {
        hawser_runtime::Client::connect(
            server.local_addr(),
            hawser_runtime::ClientOptions {
                connections: 1,
                identity: identity.into(),
                password: Some(password.as_bytes().to_vec()),
                ..hawser_runtime::ClientOptions::default()
            },
        )
        .unwrap()
    };
    let alice = login("alice", "alice's secret");
    let bob = login("bob", "bob's secret");
    let (a, b) = (Wiring::new(&alice), Wiring::new(&bob));
    wire_s_to_f(&a);
    assert_eq!(b.get("f").unwrap_err().code(), Some(ResponseCode::NoAccess));
    assert_eq!(
        b.bind("f", "s", "x").unwrap_err().code(),
        Some(ResponseCode::NoAccess)
    );
    assert_eq!(
        b.delete(EntityKind::Sink, "s").unwrap_err().code(),
        Some(ResponseCode::NoAccess)
    );
    // Bob may publish to the sink (sinks take many publishers), Alice reads her feed.
    assert!(b.put("s").is_ok());
    assert!(a.get("f").is_ok());
    a.delete(EntityKind::Feed, "f").unwrap();
}

#[test]
fn handshakes_are_capped() {
    let server = serve(DmpConfig {
        limits: hawser_dmp::DmpLimits {
            handshakes: 2,
            ..hawser_dmp::DmpLimits::default()
        },
        ..DmpConfig::default()
    });
    let mut waiting: Vec<_> = (0..2)
        .map(|_| {
            let mut s = raw(server.local_addr());
            s.write_all(b"AMQP\x0a\x01\x00\x01").unwrap();
            assert_eq!(read_response(&mut s), "200 OK DMP/0.1");
            s
        })
        .collect();
    let mut third = raw(server.local_addr());
    third.write_all(b"AMQP\x0a\x01\x00\x01").unwrap();
    refused(&read_response(&mut third), ResponseCode::NotAllowed);
    // One leaves; a newcomer gets its place.
    waiting.pop();
    std::thread::sleep(Duration::from_millis(100));
    let mut fourth = raw(server.local_addr());
    fourth.write_all(b"AMQP\x0a\x01\x00\x01").unwrap();
    assert_eq!(read_response(&mut fourth), "200 OK DMP/0.1");
}

#[test]
fn silent_and_direct_connections_count_against_the_per_address_limit() {
    let limits = hawser_runtime::ServerLimits {
        connections_per_address: 3,
        ..hawser_runtime::ServerLimits::default()
    };
    let server = serve_with(
        hawser_runtime::ServerBuilder::new().limits(limits),
        DmpConfig::default(),
    );
    let c = client(&server); // one DSP connection from 127.0.0.1
    let w = Wiring::new(&c);
    wire_s_to_f(&w);
    let mut direct = raw(server.local_addr());
    assert!(
        dialog(&mut direct, w.put("s").unwrap().as_bytes())
            .1
            .starts_with("200")
    );
    let _silent = raw(server.local_addr()); // no byte yet: the third
    let mut fourth = raw(server.local_addr());
    let started = std::time::Instant::now();
    assert!(read_to_close(&mut fourth).is_empty());
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");
}
