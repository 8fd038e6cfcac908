//! The server against a peer that speaks raw frames, in virtual time: authentication
//! throttling, limits, handshake rules, over-size requests, and the cost of many nexuses.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use hawser_wire::dsp::{
    self as wire, AuthResult, BindAck, BindConnection, GoAway, Hello, NexusCreate, NexusCreated,
    Ping, Status,
};

use crate::ClientCredentials;
use crate::auth::Mechanism;
use crate::auth::client::ClientExchange;
use crate::codec::{self, Codec, Frame};
use crate::config::{AuthThrottleConfig, ChannelAttributes, ServerLimits, Timers};
use crate::frames::{self, SERVED_FEATURES};
use crate::link::GoAwayCode;
use crate::types::{Channel, ExchangeId, NexusId, RequestId, SlotKey};
use crate::{
    Event, LinkCloseReason, LinkId, ProtocolError, Reply, ServerConfig, ServerCredentials,
    ServerEndpoint,
};

const SECRET: &[u8] = b"open sesame";

fn timers() -> Timers {
    Timers {
        heartbeat_interval: Duration::from_secs(5),
        dead_after: Duration::from_secs(15),
        handshake_timeout: Duration::from_secs(10),
        frame_timeout: Duration::from_secs(60),
    }
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new(ServerCredentials {
        allow_anonymous: true,
        ..ServerCredentials::passwords([("alice".to_string(), SECRET.to_vec())], 4096)
    });
    c.timers = timers();
    c.grace_period = Duration::from_secs(60);
    c
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

/// One raw connection to the server.
struct Peer {
    conn: LinkId,
    codec: Codec,
    nonce: [u8; 16],
    server_nonce: Option<[u8; 16]>,
    rx: BytesMut,
    /// The SASL exchange this peer runs: it answers the server's challenges itself.
    exchange: Option<ClientExchange>,
}

impl Peer {
    fn connect(server: &mut ServerEndpoint, now: Instant, peer: Option<IpAddr>) -> Peer {
        let mut codec = Codec::default();
        codec.set_max_payload(1 << 20);
        Peer {
            conn: server.accept_from(now, [9; 16], peer),
            codec,
            nonce: [7; 16],
            server_nonce: None,
            rx: BytesMut::new(),
            exchange: None,
        }
    }

    fn send(&mut self, server: &mut ServerEndpoint, now: Instant, f: &Frame) {
        let mut out = BytesMut::new();
        codec::encode_with(&mut self.codec, f, &mut out);
        server.handle_input(now, self.conn, &out);
    }

    /// Every frame the server sent since the last call.
    fn received(&mut self, server: &mut ServerEndpoint, now: Instant) -> Vec<Frame> {
        server.poll_transmit(now, self.conn, &mut self.rx);
        let mut frames = Vec::new();
        let mut answers = Vec::new();
        while let Ok(Some(f)) = self.codec.decode(&mut self.rx) {
            if let Frame::Hello(hello) = &f {
                self.server_nonce = Some(hello.nonce);
            }
            if let (Frame::AuthChallenge(challenge), Some(exchange)) = (&f, &mut self.exchange)
                && let Ok(response) = exchange.respond(&challenge.data)
            {
                answers.push(frames::auth_response(response));
            }
            frames.push(f);
        }
        for answer in answers {
            self.send(server, now, &answer);
            frames.extend(self.received(server, now));
        }
        frames
    }

    fn hello(&mut self, server: &mut ServerEndpoint, now: Instant) -> Vec<Frame> {
        let hello = frames::hello(true, false, self.nonce);
        self.send(server, now, &hello);
        self.received(server, now)
    }

    /// Hello, then Auth as `identity` with `secret` (`None`: anonymous).
    fn authenticate(
        &mut self,
        server: &mut ServerEndpoint,
        now: Instant,
        identity: &str,
        secret: Option<&[u8]>,
    ) -> Vec<Frame> {
        self.hello(server, now);
        assert!(self.server_nonce.is_some(), "the server's Hello");
        let (credentials, mechanism) = match secret {
            Some(secret) => (
                ClientCredentials::password(secret.to_vec()),
                Mechanism::ScramSha256,
            ),
            None => (ClientCredentials::Anonymous, Mechanism::Anonymous),
        };
        let (exchange, initial) = ClientExchange::start(
            mechanism,
            &[],
            identity,
            &credentials,
            None,
            &Default::default(),
        )
        .unwrap();
        self.exchange = Some(exchange);
        self.send(server, now, &frames::auth(mechanism, initial));
        self.received(server, now)
    }

    fn create(&mut self, server: &mut ServerEndpoint, now: Instant, identity: &str) -> Vec<Frame> {
        let create = Frame::NexusCreate(NexusCreate {
            fore: attrs().into(),
            back: attrs().into(),
            grace_period_ms: 0,
            features: SERVED_FEATURES,
            client_identity: identity.into(),
        });
        self.send(server, now, &create);
        self.received(server, now)
    }
}

fn attrs() -> ChannelAttributes {
    ChannelAttributes {
        slots: 4,
        max_request_size: 1024,
        max_response_size: 1024,
        max_cached_response_size: 1024,
    }
}

fn auth_status(frames: &[Frame]) -> Option<(Status, String)> {
    frames.iter().find_map(|f| match f {
        Frame::AuthResult(AuthResult { status, reason, .. }) => Some((*status, reason.clone())),
        _ => None,
    })
}

fn go_away(frames: &[Frame]) -> Option<(GoAwayCode, String)> {
    frames.iter().find_map(|f| match f {
        Frame::GoAway(GoAway { code, reason }) => Some((*code, reason.clone())),
        _ => None,
    })
}

fn closed_reason(server: &mut ServerEndpoint, conn: LinkId) -> Option<LinkCloseReason> {
    let mut found = None;
    while let Some(e) = server.poll_event() {
        if let Event::ConnectionClosed { conn: c, reason } = e
            && c == conn
        {
            found = Some(reason);
        }
    }
    found
}

/// An attempt's answer, waiting in virtual time for a delayed one: the AuthResult status
/// and how long it took (`None`: closed without an AuthResult).
fn answer_after(
    server: &mut ServerEndpoint,
    peer: &mut Peer,
    now: Instant,
    identity: &str,
    secret: Option<&[u8]>,
) -> (Option<Status>, Duration, Vec<Frame>) {
    let mut frames = peer.authenticate(server, now, identity, secret);
    let mut at = now;
    while auth_status(&frames).is_none() && go_away(&frames).is_none() {
        // Other connections' overdue timers (this test jumps in time) come first.
        at = server
            .poll_timeout()
            .expect("a pending answer has a deadline")
            .max(at);
        assert!(
            at - now <= Duration::from_secs(10),
            "answered within the handshake"
        );
        server.handle_timeout(at);
        frames.extend(peer.received(server, at));
    }
    (auth_status(&frames).map(|s| s.0), at - now, frames)
}

#[test]
fn failed_authentications_are_answered_later_and_later_per_source_and_identity() {
    let t0 = Instant::now();
    let mut server = ServerEndpoint::new(config(), 1);
    let guesser = ip("192.0.2.1");
    // Five free failures, one a second.
    let mut now = t0;
    for _ in 0..5 {
        let mut p = Peer::connect(&mut server, now, guesser);
        let (status, took, _) = answer_after(&mut server, &mut p, now, "alice", Some(b"guess"));
        assert_eq!((status, took), (Some(Status::AUTH_FAILED), Duration::ZERO));
        now += Duration::from_secs(1);
    }
    // Then 250 ms, doubling, for wrong and right secrets alike: a guesser cannot tell a
    // hit by its speed.
    let mut delays = Vec::new();
    for secret in [b"guess".as_slice(), b"guess", b"guess", SECRET] {
        let mut p = Peer::connect(&mut server, now, guesser);
        let (status, took, _) = answer_after(&mut server, &mut p, now, "alice", Some(secret));
        delays.push((status, took.as_millis()));
        now += Duration::from_secs(10);
    }
    assert_eq!(
        delays,
        [
            (Some(Status::AUTH_FAILED), 250),
            (Some(Status::AUTH_FAILED), 500),
            (Some(Status::AUTH_FAILED), 1000),
            (Some(Status::OK), 2000),
        ]
    );
    // The right secret cleared alice's record, not the source's: another identity from
    // there still waits, alice from elsewhere does not.
    let mut p = Peer::connect(&mut server, now, guesser);
    let (status, took, _) = answer_after(&mut server, &mut p, now, "bob", Some(b"x"));
    assert_eq!(
        (status, took.as_millis()),
        (Some(Status::AUTH_FAILED), 2000)
    );
    now += Duration::from_secs(10);
    let mut p = Peer::connect(&mut server, now, ip("198.51.100.9"));
    let (status, took, _) = answer_after(&mut server, &mut p, now, "alice", Some(SECRET));
    assert_eq!((status, took), (Some(Status::OK), Duration::ZERO));
    // Guessing one identity from many addresses is slowed down by the identity's record.
    for i in 0..6 {
        let mut p = Peer::connect(&mut server, now, ip(&format!("203.0.113.{i}")));
        answer_after(&mut server, &mut p, now, "carol", Some(b"guess"));
        now += Duration::from_secs(1);
    }
    let mut p = Peer::connect(&mut server, now, ip("203.0.113.99"));
    let (_, took, _) = answer_after(&mut server, &mut p, now, "carol", Some(b"guess"));
    assert_eq!(took.as_millis(), 500);
    assert!(server.load().throttled.0 >= 2 && server.load().throttled.1 >= 2);
}

#[test]
fn beyond_five_failures_a_second_attempts_are_closed_unchecked() {
    let now = Instant::now();
    let mut config = config();
    // No delays here: only the rate is under test.
    config.auth_throttle = AuthThrottleConfig {
        free_failures: 1000,
        ..AuthThrottleConfig::default()
    };
    let mut server = ServerEndpoint::new(config, 1);
    let source = ip("192.0.2.1");
    for i in 0..5 {
        let mut p = Peer::connect(&mut server, now, source);
        let frames = p.authenticate(&mut server, now, &format!("user{i}"), Some(b"x"));
        assert_eq!(auth_status(&frames).unwrap().0, Status::AUTH_FAILED);
    }
    // The sixth in the same second is not checked, even with the right secret: no
    // AuthResult, a GoAway that says why.
    let mut p = Peer::connect(&mut server, now, source);
    let frames = p.authenticate(&mut server, now, "alice", Some(SECRET));
    assert_eq!(auth_status(&frames), None);
    let (code, text) = go_away(&frames).expect("a GoAway");
    assert_eq!(code, GoAwayCode::AUTH_FAILED);
    assert!(text.contains("not checked"), "{text}");
    // Another source is not affected; the next second this one may try again.
    let mut p = Peer::connect(&mut server, now, ip("192.0.2.2"));
    let frames = p.authenticate(&mut server, now, "alice", Some(SECRET));
    assert_eq!(auth_status(&frames).unwrap().0, Status::OK);
    let later = now + Duration::from_secs(1);
    let mut p = Peer::connect(&mut server, later, source);
    let frames = p.authenticate(&mut server, later, "alice", Some(SECRET));
    assert_eq!(auth_status(&frames).unwrap().0, Status::OK);
}

#[test]
fn unknown_identity_and_wrong_secret_get_the_same_answer() {
    let now = Instant::now();
    let mut server = ServerEndpoint::new(config(), 1);
    let mut answers = Vec::new();
    for (identity, secret) in [("alice", b"wrong".as_slice()), ("mallory", SECRET)] {
        let mut p = Peer::connect(&mut server, now, ip("192.0.2.1"));
        let frames = p.authenticate(&mut server, now, identity, Some(secret));
        let closed = closed_reason(&mut server, p.conn);
        answers.push((auth_status(&frames), go_away(&frames), closed));
    }
    assert_eq!(answers[0], answers[1]);
    let (status, reason) = answers[0].0.clone().unwrap();
    assert_eq!(status, Status::AUTH_FAILED);
    assert!(
        reason.contains("unknown identity or wrong password"),
        "{reason}"
    );
    assert_eq!(answers[0].1.as_ref().unwrap().0, GoAwayCode::AUTH_FAILED);
}

#[test]
fn anonymous_refusal_says_what_to_do() {
    let now = Instant::now();
    let mut config = config();
    config.credentials.allow_anonymous = false;
    let mut server = ServerEndpoint::new(config, 1);
    let mut p = Peer::connect(&mut server, now, ip("192.0.2.1"));
    let frames = p.authenticate(&mut server, now, "guest", None);
    let (status, reason) = auth_status(&frames).unwrap();
    assert_eq!(status, Status::MECHANISM_UNSUPPORTED);
    assert!(reason.contains("--identity") && reason.contains("--allow-anonymous"));
    assert_eq!(go_away(&frames).unwrap().1, reason);
}

#[test]
fn connections_per_address_and_handshakes_in_progress_are_capped() {
    let now = Instant::now();
    let mut config = config();
    config.limits = ServerLimits {
        connections_per_address: 2,
        handshakes_in_progress: 3,
        ..ServerLimits::default()
    };
    let mut server = ServerEndpoint::new(config, 1);
    let mut a1 = Peer::connect(&mut server, now, ip("192.0.2.1"));
    let _a2 = Peer::connect(&mut server, now, ip("192.0.2.1"));
    let mut a3 = Peer::connect(&mut server, now, ip("192.0.2.1"));
    let frames = a3.received(&mut server, now);
    let (code, text) = go_away(&frames).expect("refused");
    assert_eq!(code, GoAwayCode::RESOURCE_EXHAUSTED);
    assert!(text.contains("limits.connections_per_address"), "{text}");
    // IPv6 addresses of one /64 are one source.
    let _b1 = Peer::connect(&mut server, now, ip("2001:db8::1"));
    let mut b2 = Peer::connect(&mut server, now, ip("2001:db8::2"));
    let text = go_away(&b2.received(&mut server, now)).unwrap().1;
    assert!(text.contains("limits.handshakes_in_progress"), "{text}");
    // One authenticates: room for another handshake.
    a1.authenticate(&mut server, now, "alice", Some(SECRET));
    let mut c = Peer::connect(&mut server, now, ip("198.51.100.1"));
    assert_eq!(go_away(&c.received(&mut server, now)), None);
    assert_eq!(server.load().unauthenticated, 3);
    // A closed connection frees its address's share.
    server.connection_lost(now, a1.conn);
    let mut a4 = Peer::connect(&mut server, now, ip("192.0.2.1"));
    let text = go_away(&a4.received(&mut server, now)).map(|g| g.1);
    assert!(
        text.as_deref()
            .is_some_and(|t| t.contains("handshakes_in_progress")),
        "{text:?}"
    );
}

#[test]
fn nexuses_in_all_and_held_creates_per_identity_are_capped() {
    let now = Instant::now();
    let mut config = config();
    config.limits.nexuses = 1;
    config.limits.held_creates_per_identity = 1;
    let mut server = ServerEndpoint::new(config, 1);
    let mut first = Peer::connect(&mut server, now, ip("192.0.2.1"));
    first.authenticate(&mut server, now, "one", None);
    let created = first.create(&mut server, now, "one");
    assert!(matches!(
        created[0],
        Frame::NexusCreated(NexusCreated {
            status: Status::OK,
            ..
        })
    ));
    // A request runs on it, so a second create of "one" is held, not a replacement.
    first.send(
        &mut server,
        now,
        &frames::request(
            Channel::Fore,
            SlotKey::new(0, 1, 1),
            ExchangeId(1),
            0,
            Bytes::new(),
        ),
    );
    let mut second = Peer::connect(&mut server, now, ip("192.0.2.2"));
    second.authenticate(&mut server, now, "two", None);
    let refused = second.create(&mut server, now, "two");
    let Frame::NexusCreated(NexusCreated { status, reason, .. }) = &refused[0] else {
        panic!("{refused:?}")
    };
    assert_eq!(*status, Status::RESOURCE_EXHAUSTED);
    assert!(reason.contains("limits.nexuses"), "{reason}");
    let mut held = Peer::connect(&mut server, now, ip("192.0.2.3"));
    held.authenticate(&mut server, now, "one", None);
    let answer = held.create(&mut server, now, "one");
    assert!(matches!(
        answer[0],
        Frame::NexusCreated(NexusCreated {
            status: Status::HELD,
            ..
        })
    ));
    let mut more = Peer::connect(&mut server, now, ip("192.0.2.4"));
    more.authenticate(&mut server, now, "one", None);
    let answer = more.create(&mut server, now, "one");
    let Frame::NexusCreated(NexusCreated { status, reason, .. }) = &answer[0] else {
        panic!("{answer:?}")
    };
    assert_eq!(*status, Status::RESOURCE_EXHAUSTED);
    assert!(
        reason.contains("limits.held_creates_per_identity"),
        "{reason}"
    );
    assert_eq!(server.load().held_creates, 1);
}

#[test]
fn a_hello_without_a_common_version_gets_version_mismatch() {
    let now = Instant::now();
    let mut server = ServerEndpoint::new(config(), 1);
    let mut p = Peer::connect(&mut server, now, None);
    let hello = |(min_version, max_version)| {
        Frame::Hello(Hello {
            min_version,
            max_version,
            capabilities: wire::Capabilities::DIGEST,
            nonce: [1; 16],
        })
    };
    p.send(&mut server, now, &hello((2, 3)));
    let frames = p.received(&mut server, now);
    assert!(!frames.iter().any(|f| matches!(f, Frame::Hello(_))));
    let (code, text) = go_away(&frames).expect("a GoAway");
    assert_eq!(code, GoAwayCode::VERSION_MISMATCH);
    assert!(
        text.contains("version 1") && text.contains("2 to 3"),
        "{text}"
    );
    // A range that includes 1 is answered with 1.
    let mut p = Peer::connect(&mut server, now, None);
    p.send(&mut server, now, &hello((1, 3)));
    let frames = p.received(&mut server, now);
    assert!(matches!(
        frames[0],
        Frame::Hello(Hello {
            min_version: 1,
            max_version: 1,
            ..
        })
    ));
}

/// A server on several shards refuses a Hello without a route (it could not have placed
/// the connection), and answers one with a route without echoing it.
#[test]
fn a_server_that_needs_routes_refuses_a_hello_without_one() {
    let now = Instant::now();
    let mut c = config();
    c.requires_route = true;
    let mut server = ServerEndpoint::new(c, 1);
    let mut p = Peer::connect(&mut server, now, None);
    let frames = p.hello(&mut server, now);
    let (code, text) = go_away(&frames).expect("a GoAway");
    assert_eq!(code, GoAwayCode::PROTOCOL_ERROR);
    assert!(text.contains("route"), "{text}");
    let mut p = Peer::connect(&mut server, now, None);
    let routed = frames::hello_with(
        true,
        false,
        false,
        Some(wire::identity_route("alice")),
        [3; 16],
    );
    p.send(&mut server, now, &routed);
    let frames = p.received(&mut server, now);
    let Frame::Hello(answer) = &frames[0] else {
        panic!("a Hello first: {frames:?}")
    };
    assert_eq!(answer.capabilities.route(), None);
    assert!(go_away(&frames).is_none());
}

#[test]
fn nothing_comes_before_the_hello_not_even_a_ping() {
    let now = Instant::now();
    let mut server = ServerEndpoint::new(config(), 1);
    let mut p = Peer::connect(&mut server, now, None);
    p.send(&mut server, now, &Frame::Ping(Ping { token: 1 }));
    let frames = p.received(&mut server, now);
    assert!(!frames.iter().any(|f| matches!(f, Frame::Pong(_))));
    assert_eq!(go_away(&frames).unwrap().0, GoAwayCode::PROTOCOL_ERROR);
}

#[test]
fn an_authenticated_connection_that_never_binds_is_closed_at_the_handshake_timeout() {
    let now = Instant::now();
    let mut server = ServerEndpoint::new(config(), 1);
    let mut p = Peer::connect(&mut server, now, None);
    p.authenticate(&mut server, now, "idle", None);
    // A refused bind does not buy time either.
    let bind = Frame::BindConnection(BindConnection {
        nexus: NexusId(5).into(),
    });
    p.send(&mut server, now, &bind);
    let frames = p.received(&mut server, now);
    assert!(matches!(
        frames[0],
        Frame::BindAck(BindAck {
            status: Status::UNKNOWN_NEXUS,
            ..
        })
    ));
    let almost = now + timers().handshake_timeout - Duration::from_millis(1);
    server.handle_timeout(almost);
    assert_eq!(closed_reason(&mut server, p.conn), None);
    let at = server.poll_timeout().unwrap();
    assert_eq!(at, now + timers().handshake_timeout);
    server.handle_timeout(at);
    assert_eq!(
        closed_reason(&mut server, p.conn),
        Some(LinkCloseReason::Protocol(ProtocolError::HandshakeTimeout))
    );
}

/// Requests over the negotiated size are answered `RequestTooLarge` (naming both sizes)
/// without reaching the handler, and the slot and the ordered sequence move on.
#[test]
fn an_over_size_request_is_refused_and_its_slot_moves_on() {
    let now = Instant::now();
    let mut server = ServerEndpoint::new(config(), 1);
    let mut p = Peer::connect(&mut server, now, None);
    p.authenticate(&mut server, now, "big", None);
    p.create(&mut server, now, "big");
    while server.poll_event().is_some() {}
    let request = |slot, seq, id, order, len| {
        let body = Bytes::from(vec![7u8; len]);
        frames::request(
            Channel::Fore,
            SlotKey::new(slot, seq, id),
            ExchangeId(1),
            order,
            body,
        )
    };
    let refused = |frames: &[Frame], id: u64| {
        frames.iter().any(|f| match f {
            Frame::ResponseError(wire::ResponseError {
                request_id,
                exception,
                ..
            }) if *request_id == id => {
                let e = crate::RemoteException::decode(exception).unwrap();
                e.type_name == "hawser.session.RequestTooLarge"
                    && e.message.contains("2000 bytes")
                    && e.message.contains("max_request_size of 1024")
            }
            _ => false,
        })
    };
    p.send(&mut server, now, &request(0, 1, 1, 0, 2000));
    assert!(refused(&p.received(&mut server, now), 1));
    // The retry gets the same answer from the cache; the next one on the slot runs.
    p.send(&mut server, now, &request(0, 1, 1, 0, 2000));
    assert!(refused(&p.received(&mut server, now), 1));
    p.send(&mut server, now, &request(0, 2, 2, 0, 10));
    let delivered: Vec<_> = std::iter::from_fn(|| server.poll_event())
        .filter_map(|e| match e {
            Event::Request { request, .. } => Some(request),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].request, RequestId(2));
    server.respond(now, &delivered[0], Reply::Ok(Bytes::new()));
    // Ordered: #2 arrives first and waits; #1 is too large: refused in its turn, and #2
    // goes on.
    p.send(&mut server, now, &request(1, 1, 3, 2, 10));
    assert_eq!(server.poll_event(), None);
    p.send(&mut server, now, &request(2, 1, 4, 1, 2000));
    assert!(refused(&p.received(&mut server, now), 4));
    let delivered: Vec<_> = std::iter::from_fn(|| server.poll_event())
        .filter_map(|e| match e {
            Event::Request { request, .. } => Some(request.request),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![RequestId(3)]);
    let nexus = server.nexuses().next().unwrap();
    assert_eq!(server.nexus_stats(nexus).unwrap().requests_executed, 2);
}

/// Creating nexuses costs the same however many exist: each adds a bounded number of
/// timer entries, a timer run with nothing due visits nothing, and abandoned pristine
/// nexuses give their memory back after the handshake timeout, not the grace period.
#[test]
fn many_abandoned_nexuses_cost_no_more_per_create_and_expire_soon() {
    const N: u64 = 20_000;
    let t0 = Instant::now();
    let mut config = config();
    config.limits.nexuses = 1_000_000;
    config.limits.handshakes_in_progress = 1_000_000;
    config.limits.connections_per_address = 1_000_000;
    let mut server = ServerEndpoint::new(config, 1);
    let mut now = t0;
    for i in 0..N {
        let mut p = Peer::connect(&mut server, now, None);
        p.authenticate(&mut server, now, &format!("client-{i}"), None);
        let created = p.create(&mut server, now, &format!("client-{i}"));
        assert!(matches!(
            created[0],
            Frame::NexusCreated(NexusCreated {
                status: Status::OK,
                ..
            })
        ));
        server.connection_lost(now, p.conn);
        while server.poll_event().is_some() {}
        let load = server.load();
        assert!(
            load.timer_entries <= 2 * (load.connections + load.nexuses) + 64,
            "{load:?}"
        );
        // Nothing is due: a timer run visits nothing.
        server.handle_timeout(now);
        now += Duration::from_micros(100);
    }
    assert_eq!(server.load().nexuses, N as usize);
    assert_eq!(server.load().connections, 0);
    let first_due = server.poll_timeout().unwrap();
    assert_eq!(first_due, t0 + timers().handshake_timeout);
    server.handle_timeout(now + timers().handshake_timeout);
    let load = server.load();
    assert_eq!(
        load.nexuses, 0,
        "pristine nexuses expire at the handshake timeout"
    );
    assert!(load.timer_entries <= 64, "{load:?}");
    assert_eq!(server.poll_timeout(), None);
}

/// Found by the `session_server` fuzz target: backchannel calls queued behind the
/// throttle on a nexus whose connections are gone left `poll_timeout` at an instant
/// `handle_timeout` could not move past, so a driver would spin until the grace period
/// ended.
#[test]
fn an_orphaned_nexus_with_throttled_calls_has_no_due_timer() {
    use crate::{CallOptions, ClientConfig, ClientCredentials, ClientEndpoint, ThrottleConfig};
    let now = Instant::now();
    let mut config = ServerConfig::new(ServerCredentials::anonymous());
    config.throttle = Some(ThrottleConfig {
        bytes_per_second: 1000,
        burst_bytes: 100,
    });
    let mut server = ServerEndpoint::new(config, 7);
    let mut client_config = ClientConfig::new("c", ClientCredentials::Anonymous);
    client_config.connections = 1;
    let mut client = ClientEndpoint::new(client_config, now);
    let c = client.add_connection(now, [1; 16]);
    let s = server.accept(now, [2; 16]);
    let mut buf = BytesMut::new();
    for _ in 0..4 {
        buf.clear();
        client.poll_transmit(now, c, &mut buf);
        server.handle_input(now, s, &buf);
        buf.clear();
        server.poll_transmit(now, s, &mut buf);
        client.handle_input(now, c, &buf);
    }
    let nexus = server.nexuses().next().expect("a nexus");
    server.connection_lost(now, s);
    for _ in 0..3 {
        server
            .call(
                now,
                nexus,
                ExchangeId(1),
                Bytes::from_static(b"x"),
                CallOptions::default(),
            )
            .unwrap();
    }
    let later = now + Duration::from_secs(1);
    server.handle_timeout(later);
    let next = server.poll_timeout().expect("the grace period");
    assert!(next > later, "a timer still due: {next:?} <= {later:?}");
}

/// Found by the `sasl_messages` fuzz target: rsasl's SCRAM parser panicked on these
/// first and second messages from an unauthenticated peer. The server refuses them.
#[test]
fn malformed_scram_messages_are_refused_not_a_panic() {
    let now = Instant::now();
    let mut server = ServerEndpoint::new(config(), 1);
    for first in [&b"n,a,n=alice,r=x"[..], b"n,,n=alice,x"] {
        let mut p = Peer::connect(&mut server, now, ip("192.0.2.9"));
        p.hello(&mut server, now);
        let auth = frames::auth(Mechanism::ScramSha256, Bytes::copy_from_slice(first));
        p.send(&mut server, now, &auth);
        let frames = p.received(&mut server, now);
        assert_eq!(auth_status(&frames).map(|s| s.0), Some(Status::AUTH_FAILED));
    }
    for second in [&b""[..], b"c=biws,r=x,p"] {
        let mut p = Peer::connect(&mut server, now, ip("192.0.2.10"));
        p.hello(&mut server, now);
        let auth = frames::auth(
            Mechanism::ScramSha256,
            Bytes::from_static(b"n,,n=alice,r=abc"),
        );
        p.send(&mut server, now, &auth);
        let challenged = p.received(&mut server, now);
        assert!(
            challenged
                .iter()
                .any(|f| matches!(f, Frame::AuthChallenge(_)))
        );
        p.send(
            &mut server,
            now,
            &frames::auth_response(Bytes::copy_from_slice(second)),
        );
        let frames = p.received(&mut server, now);
        assert_eq!(auth_status(&frames).map(|s| s.0), Some(Status::AUTH_FAILED));
    }
}

/// Found in review: SCRAM exchanges started in parallel from one source were all checked,
/// whatever the rate limit (5 checked failures a second) and the delays said, when the
/// throttle sat only at the Auth. It now gates the response carrying the proof.
#[test]
fn parallel_scram_exchanges_from_one_source_are_throttled_at_the_proof() {
    let t0 = Instant::now();
    let mut server = ServerEndpoint::new(config(), 1);
    let source = ip("192.0.2.77");
    let round = |server: &mut ServerEndpoint, at: Instant, n: usize| -> (usize, Duration) {
        let mut pending = Vec::new();
        for _ in 0..n {
            let mut p = Peer::connect(server, at, source);
            p.hello(server, at);
            let creds = ClientCredentials::password(b"wrong guess".to_vec());
            let (exchange, initial) = ClientExchange::start(
                Mechanism::ScramSha256,
                &[],
                "alice",
                &creds,
                None,
                &Default::default(),
            )
            .unwrap();
            p.send(server, at, &frames::auth(Mechanism::ScramSha256, initial));
            let frames = p.received(server, at);
            pending.push((p, exchange, frames));
        }
        // Wait for delayed server-firsts, if any.
        let mut now = at;
        loop {
            let all_challenged = pending.iter().all(|(_, _, f)| {
                f.iter()
                    .filter(|f| matches!(f, Frame::AuthChallenge(_)))
                    .count()
                    >= 1
                    || go_away(f).is_some()
            });
            if all_challenged {
                break;
            }
            now = server.poll_timeout().unwrap().max(now);
            server.handle_timeout(now);
            for (p, _, f) in &mut pending {
                f.extend(p.received(server, now));
            }
        }
        let mut checked = 0;
        for (mut p, mut exchange, frames) in pending {
            let Some(challenge) = frames
                .iter()
                .filter_map(|f| match f {
                    Frame::AuthChallenge(c) => Some(c.data.clone()),
                    _ => None,
                })
                .next()
            else {
                continue;
            };
            let response = exchange.respond(&challenge).unwrap();
            p.send(server, now, &frames::auth_response(response));
            let answer = p.received(server, now);
            if auth_status(&answer).map(|s| s.0) == Some(Status::AUTH_FAILED) {
                checked += 1;
            }
        }
        (checked, now - at)
    };
    // The others wait for the throttle's delay (or are closed unchecked): in one
    // instant, at most the free failures get a verdict.
    let (first, waited) = round(&mut server, t0, 40);
    assert_eq!(
        waited,
        Duration::ZERO,
        "SCRAM's first message is answered at once"
    );
    assert!(
        first <= 5,
        "one source had {first} SCRAM guesses at alice checked in one instant"
    );
}
