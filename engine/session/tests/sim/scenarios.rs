//! Targeted session scenarios on a reliable network
//! ([`Faults::none`](super::net::Faults::none): every pipe has a fixed latency, and the
//! test decides when connections die): nexus lifecycle (grace period, held create,
//! reinstatement, destroy), authentication, heartbeats, cancellation, throttling,
//! credits, reply-cache limits, garbage input, statistics.

use std::time::Duration;

use bytes::Bytes;
use hawser_session::{
    CallError, CallOptions, ChannelAttributes, ClientConfig, ClientCredentials, Event, ExchangeId,
    LinkCloseReason, NexusId, ProtocolError, RemoteException, Reply, ServerConfig,
    ServerCredentials, ThrottleConfig, Timers,
};

use super::net::Net;

const EX: ExchangeId = ExchangeId(7);

fn timers() -> Timers {
    Timers {
        heartbeat_interval: Duration::from_millis(100),
        dead_after: Duration::from_millis(400),
        handshake_timeout: Duration::from_millis(500),
        frame_timeout: Duration::from_millis(800),
    }
}

fn client_config(identity: &str, creds: ClientCredentials, connections: usize) -> ClientConfig {
    let mut c = ClientConfig::new(identity, creds);
    c.connections = connections;
    c.timers = timers();
    c.reconnect_min = Duration::from_millis(5);
    c.reconnect_max = Duration::from_millis(20);
    c.recovery_timeout = Duration::from_secs(10);
    c.fore = ChannelAttributes {
        slots: 4,
        max_request_size: 1024,
        max_response_size: 1024,
        max_cached_response_size: 1024,
    };
    c
}

fn server_config() -> ServerConfig {
    let mut s = ServerConfig::new(ServerCredentials {
        allow_anonymous: true,
        ..ServerCredentials::passwords([("alice".to_string(), b"open sesame".to_vec())], 4096)
    });
    s.timers = timers();
    s.grace_period = Duration::from_secs(2);
    s
}

fn echo(net: &mut Net) {
    for (r, body) in net.take_server_requests() {
        assert!(net.server.respond(net.now, &r, Reply::Ok(body)));
    }
}

#[test]
fn scram_handshake_creates_a_nexus_and_trunks_four_connections() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config(
        "alice",
        ClientCredentials::password(b"open sesame".to_vec()),
        4,
    ));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.clients[c].bound_connections().len(), 4);
    let nexus = net.clients[c].nexus().unwrap();
    assert!(net.server_saw(|e| *e == Event::NexusEstablished { nexus }));
    // Requests spread over the trunk: with 4 in flight, every connection carries one.
    let ids: Vec<_> = (0..4u8)
        .map(|i| {
            net.clients[c]
                .call(
                    net.now,
                    EX,
                    Bytes::from(vec![i; 100]),
                    CallOptions::default(),
                )
                .unwrap()
        })
        .collect();
    net.run_for(Duration::from_millis(5));
    let reqs = net.take_server_requests();
    assert_eq!(reqs.len(), 4);
    let conns = net.clients[c].bound_connections().to_vec();
    for conn in &conns {
        let s = net.clients[c].connection_stats(*conn).unwrap();
        // Hello, Auth, AuthResponse (SCRAM's second message), NexusCreate or
        // BindConnection, and exactly one Request each.
        assert_eq!(s.frames_out, 5, "{s:?}");
    }
    for (r, body) in reqs {
        net.server.respond(net.now, &r, Reply::Ok(body));
    }
    net.run_for(Duration::from_millis(5));
    let done = net.completions(c);
    assert_eq!(done.len(), 4);
    for (id, (got, result)) in ids.iter().zip(&done) {
        assert_eq!(id, got);
        assert_eq!(result.as_ref().unwrap().len(), 100);
    }
    let stats = net.clients[c].stats();
    assert_eq!(stats.requests_sent, 4);
    assert_eq!(stats.latency[&EX].len(), 4);
    // Heartbeats measured the round trip.
    net.run_for(Duration::from_millis(300));
    let rtt = &net.clients[c].connection_stats(conns[0]).unwrap().rtt;
    assert!(
        !rtt.is_empty() && rtt.max() >= 2_000_000,
        "2 × 1 ms latency"
    );
}

#[test]
fn wrong_password_and_unknown_identity_are_refused_alike_and_no_nexus_is_created() {
    let mut refusals = Vec::new();
    for (identity, secret) in [("alice", b"guess".as_slice()), ("mallory", b"open sesame")] {
        let mut net = Net::new(server_config());
        let c = net.add_client(client_config(
            identity,
            ClientCredentials::password(secret.to_vec()),
            1,
        ));
        net.run_for(Duration::from_millis(20));
        assert!(net.clients[c].nexus().is_none());
        assert_eq!(net.server.nexuses().count(), 0);
        // What the client learns: the server's words, the same for both.
        let why = net.client_events[c].iter().find_map(|e| match e {
            Event::ConnectionClosed {
                reason: LinkCloseReason::Refused(why),
                ..
            } => Some(why.clone()),
            _ => None,
        });
        refusals.push(why.expect("refused"));
    }
    assert_eq!(refusals[0], refusals[1]);
    assert!(
        refusals[0].contains("unknown identity or wrong password"),
        "{}",
        refusals[0]
    );
}

#[test]
fn retry_after_losing_every_connection_is_answered_from_the_cache() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("bob", ClientCredentials::Anonymous, 2));
    net.run_for(Duration::from_millis(20));
    let id = net.clients[c]
        .call(
            net.now,
            EX,
            Bytes::from_static(b"once"),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(3));
    let reqs = net.take_server_requests();
    assert_eq!(reqs.len(), 1);
    // The handler finishes while every connection is down: the reply has nowhere to go.
    net.reset_client(c);
    net.server
        .respond(net.now, &reqs[0].0, Reply::Ok(Bytes::from_static(b"done")));
    net.run_for(Duration::from_millis(100));
    // Reconnected, rebound (recover), retried, replayed: never executed again.
    assert!(net.take_server_requests().is_empty());
    assert_eq!(
        net.completions(c),
        vec![(id, Ok(Bytes::from_static(b"done")))]
    );
    let nexus = net.clients[c].nexus().unwrap();
    let stats = net.server.nexus_stats(nexus).unwrap();
    assert_eq!((stats.requests_executed, stats.replays), (1, 1));
    // Re-sent on the second connection the moment the first died (and it died right after),
    // then once more after rebinding.
    assert_eq!(net.clients[c].stats().retries, 2);
}

#[test]
fn nexus_survives_the_grace_period_then_expires_and_releases_a_held_create() {
    let mut net = Net::new(server_config());
    let old = net.add_client(client_config("carol", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let old_nexus = net.clients[old].nexus().unwrap();
    net.clients[old]
        .call(
            net.now,
            EX,
            Bytes::from_static(b"long job"),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(3));
    let running = net.take_server_requests();
    assert_eq!(running.len(), 1);
    // The old client vanishes (its process died): no reconnection.
    net.connectable[old] = false;
    net.reset_client(old);
    // A restarted client with the same identity asks for a new nexus: held.
    let new = net.add_client(client_config("carol", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(1500));
    assert!(
        net.clients[new].nexus().is_none(),
        "held during the grace period"
    );
    assert_eq!(net.server.nexuses().collect::<Vec<_>>(), vec![old_nexus]);
    net.run_for(Duration::from_millis(1000));
    // The old nexus expired: its running handler was told to stop, then the held
    // create went ahead.
    assert!(net.server_saw(|e| *e == Event::NexusLost { nexus: old_nexus }));
    assert!(net.server_saw(
        |e| matches!(e, Event::CancelRequested { request } if *request == running[0].0)
    ));
    let new_nexus = net.clients[new].nexus().expect("created after expiry");
    assert_ne!(new_nexus, old_nexus);
    // The stale handler's answer is ignored.
    assert!(!net.server.respond(net.now, &running[0].0, Reply::Cancelled));
}

#[test]
fn reinstating_the_old_nexus_refuses_the_held_create() {
    let mut net = Net::new(server_config());
    let old = net.add_client(client_config("dave", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let old_nexus = net.clients[old].nexus().unwrap();
    // Work ran on the old nexus, so it must be protected.
    net.clients[old]
        .call(net.now, EX, Bytes::new(), CallOptions::default())
        .unwrap();
    net.run_for(Duration::from_millis(3));
    echo(&mut net);
    net.run_for(Duration::from_millis(3));
    net.connectable[old] = false;
    net.reset_client(old);
    let new = net.add_client(client_config("dave", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(500));
    assert!(net.clients[new].nexus().is_none());
    // The old client comes back within the grace period and recovers its nexus.
    net.connectable[old] = true;
    net.clients[old].connect_failed(net.now);
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.clients[old].bound_connections().len(), 1);
    assert!(
        net.client_events[new].iter().any(|e| matches!(
            e,
            Event::ConnectionClosed {
                reason: LinkCloseReason::Refused(why),
                ..
            } if why.contains("reinstated")
        )),
        "{:?}",
        net.client_events[new]
    );
    assert_eq!(net.server.nexuses().collect::<Vec<_>>(), vec![old_nexus]);
}

#[test]
fn cancellation_reaches_the_handler_and_completes_as_cancelled_on_both_sides() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("erin", ClientCredentials::Anonymous, 2));
    net.run_for(Duration::from_millis(20));
    let id = net.clients[c]
        .call(
            net.now,
            EX,
            Bytes::from_static(b"slow"),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(3));
    let (r, _) = net.take_server_requests().pop().unwrap();
    net.clients[c].cancel(net.now, id);
    net.run_for(Duration::from_millis(3));
    assert!(net.server_saw(|e| *e == Event::CancelRequested { request: r }));
    assert!(net.server.respond(net.now, &r, Reply::Cancelled));
    net.run_for(Duration::from_millis(3));
    assert_eq!(net.completions(c), vec![(id, Err(CallError::Cancelled))]);
    // A call cancelled before it was sent completes at once.
    for _ in 0..4 {
        net.clients[c]
            .call(net.now, EX, Bytes::new(), CallOptions::default())
            .unwrap();
    }
    let queued = net.clients[c]
        .call(net.now, EX, Bytes::new(), CallOptions::default())
        .unwrap();
    net.clients[c].cancel(net.now, queued);
    net.pump();
    assert_eq!(
        net.completions(c).last().unwrap(),
        &(queued, Err(CallError::Cancelled))
    );
}

#[test]
fn remote_exception_keeps_its_cause_chain() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("frank", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    net.clients[c]
        .call(net.now, EX, Bytes::new(), CallOptions::default())
        .unwrap();
    net.run_for(Duration::from_millis(3));
    let (r, _) = net.take_server_requests().pop().unwrap();
    let e = RemoteException::new("replica.Conflict", "snapshot exists")
        .with_cause(RemoteException::new("zfs.EEXIST", "dataset busy"));
    net.server.respond(net.now, &r, Reply::Err(e.clone()));
    net.run_for(Duration::from_millis(3));
    let (_, result) = net.completions(c).pop().unwrap();
    assert_eq!(result, Err(CallError::Remote(e)));
}

#[test]
fn silent_connection_is_declared_dead_within_the_configured_time() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("gina", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let conn = net.clients[c].bound_connections()[0];
    for p in &mut net.pipes {
        p.silent = true;
        p.to_client.clear();
        p.to_server.clear();
    }
    let cut = net.now;
    net.run_for(Duration::from_millis(600));
    let closed_at = net.client_events[c]
        .iter()
        .position(|e| {
            matches!(e, Event::ConnectionClosed { conn: x, reason: LinkCloseReason::Protocol(ProtocolError::Dead) } if *x == conn)
        });
    assert!(closed_at.is_some(), "{:?}", net.client_events[c]);
    // dead_after is 400 ms after the last byte received, which was before the cut.
    assert!(net.now.duration_since(cut) >= Duration::from_millis(400));
    // A replacement connection is bound.
    assert_eq!(net.clients[c].bound_connections().len(), 1);
    assert_ne!(net.clients[c].bound_connections()[0], conn);
}

#[test]
fn garbage_closes_only_that_connection() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("hank", ClientCredentials::Anonymous, 2));
    net.run_for(Duration::from_millis(20));
    let victim = net.pipes[0].server_conn;
    net.server.handle_input(net.now, victim, &[0xde; 64]);
    net.pump();
    assert!(net.server_saw(|e| matches!(
        e,
        Event::ConnectionClosed { conn, reason: LinkCloseReason::Protocol(ProtocolError::Frame(_)) } if *conn == victim
    )));
    let id = net.clients[c]
        .call(
            net.now,
            EX,
            Bytes::from_static(b"still fine"),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(5));
    echo(&mut net);
    net.run_for(Duration::from_millis(5));
    assert!(
        net.completions(c)
            .contains(&(id, Ok(Bytes::from_static(b"still fine"))))
    );
}

#[test]
fn throttle_paces_requests_in_virtual_time() {
    let mut net = Net::new(server_config());
    let mut cfg = client_config("ivy", ClientCredentials::Anonymous, 1);
    cfg.throttle = Some(ThrottleConfig {
        bytes_per_second: 1000,
        burst_bytes: 500,
    });
    let c = net.add_client(cfg);
    net.run_for(Duration::from_millis(20));
    let start = net.now;
    for _ in 0..6 {
        net.clients[c]
            .call(
                net.now,
                EX,
                Bytes::from(vec![0; 500]),
                CallOptions::default(),
            )
            .unwrap();
    }
    while net.completions(c).len() < 6 {
        net.run_for(Duration::from_millis(10));
        echo(&mut net);
        assert!(net.now.duration_since(start) < Duration::from_secs(10));
    }
    // 500 bytes burst, then 5 × 500 bytes at 1000 B/s.
    let took = net.now.duration_since(start);
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_millis(2700),
        "{took:?}"
    );
}

#[test]
fn credit_shrinks_the_window() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("jack", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let nexus = net.clients[c].nexus().unwrap();
    net.server.set_credit(nexus, 1);
    net.run_for(Duration::from_millis(5));
    for _ in 0..3 {
        net.clients[c]
            .call(net.now, EX, Bytes::new(), CallOptions::default())
            .unwrap();
    }
    net.run_for(Duration::from_millis(5));
    assert_eq!(net.take_server_requests().len(), 1, "one slot usable");
    assert_eq!(net.clients[c].footprint().in_flight, 1);
}

#[test]
fn oversized_requests_fail_locally_and_uncacheable_replies_fail_clearly_on_retry() {
    let mut net = Net::new(server_config());
    let mut cfg = client_config("kim", ClientCredentials::Anonymous, 1);
    cfg.fore.max_cached_response_size = 16;
    let c = net.add_client(cfg);
    net.run_for(Duration::from_millis(20));
    assert_eq!(
        net.clients[c].call(
            net.now,
            EX,
            Bytes::from(vec![0; 2000]),
            CallOptions::default()
        ),
        Err(CallError::RequestTooLarge {
            size: 2000,
            max: 1024
        })
    );
    let id = net.clients[c]
        .call(net.now, EX, Bytes::new(), CallOptions::default())
        .unwrap();
    net.run_for(Duration::from_millis(3));
    let (r, _) = net.take_server_requests().pop().unwrap();
    net.reset_client(c);
    net.server
        .respond(net.now, &r, Reply::Ok(Bytes::from(vec![1; 100])));
    net.run_for(Duration::from_millis(100));
    assert_eq!(
        net.completions(c),
        vec![(id, Err(CallError::ReplyNotCached))]
    );
}

#[test]
fn destroy_stops_remote_handlers_and_fails_outstanding_requests() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("lee", ClientCredentials::Anonymous, 2));
    net.run_for(Duration::from_millis(20));
    let nexus = net.clients[c].nexus().unwrap();
    let id = net.clients[c]
        .call(net.now, EX, Bytes::new(), CallOptions::default())
        .unwrap();
    net.run_for(Duration::from_millis(3));
    let (r, _) = net.take_server_requests().pop().unwrap();
    net.clients[c].destroy(net.now);
    net.run_for(Duration::from_millis(10));
    assert_eq!(
        net.completions(c),
        vec![(id, Err(CallError::NexusDestroyed))]
    );
    assert!(net.client_events[c].contains(&Event::NexusDestroyed { nexus }));
    assert!(net.server_saw(|e| *e == Event::NexusDestroyed { nexus }));
    assert!(net.server_saw(|e| *e == Event::CancelRequested { request: r }));
    assert_eq!(net.server.nexuses().count(), 0);
    assert_eq!(
        net.clients[c].call(net.now, EX, Bytes::new(), CallOptions::default()),
        Err(CallError::NexusDestroyed)
    );
}

#[test]
fn backchannel_requests_are_served_by_the_client() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("mia", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let nexus = net.clients[c].nexus().unwrap();
    let id = net
        .server
        .call(
            net.now,
            nexus,
            EX,
            Bytes::from_static(b"ping"),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(3));
    let (r, body) = net.client_events[c]
        .iter()
        .find_map(|e| match e {
            Event::Request { request, body } => Some((*request, body.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(r.channel, hawser_session::Channel::Back);
    net.clients[c].respond(net.now, &r, Reply::Ok(body));
    net.run_for(Duration::from_millis(3));
    assert!(net.server_saw(|e| *e
        == Event::Completed {
            nexus,
            request: id,
            result: Ok(Bytes::from_static(b"ping"))
        }));
}

#[test]
fn a_nexus_that_never_ran_anything_is_replaced_at_once() {
    let mut net = Net::new(server_config());
    let old = net.add_client(client_config("nina", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let old_nexus = net.clients[old].nexus().unwrap();
    net.connectable[old] = false;
    net.reset_client(old);
    let new = net.add_client(client_config("nina", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let new_nexus = net.clients[new]
        .nexus()
        .expect("not held: nothing to protect");
    assert_ne!(new_nexus, old_nexus);
    assert!(net.server_saw(|e| *e == Event::NexusLost { nexus: old_nexus }));
    assert_eq!(net.server.nexuses().collect::<Vec<_>>(), vec![new_nexus]);
}

#[test]
fn compression_is_negotiated_and_shrinks_compressible_payloads() {
    let mut net = Net::new(server_config());
    let mut cfg = client_config("olga", ClientCredentials::Anonymous, 1);
    cfg.compress = true;
    let c = net.add_client(cfg);
    net.run_for(Duration::from_millis(20));
    let conn = net.clients[c].bound_connections()[0];
    let before = net.clients[c].connection_stats(conn).unwrap().bytes_out;
    let body = Bytes::from(b"replicate me ".repeat(70)); // 910 bytes
    let id = net.clients[c]
        .call(net.now, EX, body.clone(), CallOptions::default())
        .unwrap();
    net.run_for(Duration::from_millis(3));
    let sent = net.clients[c].connection_stats(conn).unwrap().bytes_out - before;
    assert!(sent < 300, "{sent} bytes on the wire for a 910-byte body");
    echo(&mut net);
    net.run_for(Duration::from_millis(3));
    assert_eq!(net.completions(c), vec![(id, Ok(body))]);
}

#[test]
fn an_old_copy_overtaken_by_its_retry_does_not_steal_the_reply() {
    // The retry on a fast connection arrives first, then the original copy on a
    // connection the client has already given up on; the reply must still reach the
    // client.
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("pia", ClientCredentials::Anonymous, 2));
    net.run_for(Duration::from_millis(20));
    assert_eq!(net.clients[c].bound_connections().len(), 2);
    net.pipes[0].latency = Duration::from_millis(50);
    let slow = net.pipes[0].client_conn;
    let id = net.clients[c]
        .call(
            net.now,
            EX,
            Bytes::from_static(b"twice sent"),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(1));
    // The client gives up on the slow connection; the server does not know yet, and the
    // original copy is still on its way.
    net.pipes[0].client_open = false;
    net.clients[c].connection_lost(net.now, slow);
    net.run_for(Duration::from_millis(60));
    let reqs = net.take_server_requests();
    assert_eq!(reqs.len(), 1, "executed once");
    net.server
        .respond(net.now, &reqs[0].0, Reply::Ok(Bytes::from_static(b"done")));
    net.run_for(Duration::from_millis(10));
    assert_eq!(
        net.completions(c),
        vec![(id, Ok(Bytes::from_static(b"done")))]
    );
}

/// Runs a request on client `c`'s nexus (so that it is worth protecting), then cuts the
/// client off for good, as a killed process would be.
fn work_then_vanish(net: &mut Net, c: usize) {
    net.clients[c]
        .call(net.now, EX, Bytes::new(), CallOptions::default())
        .unwrap();
    net.run_for(Duration::from_millis(3));
    echo(net);
    net.run_for(Duration::from_millis(3));
    net.connectable[c] = false;
    net.reset_client(c);
}

fn held_notices(net: &Net, c: usize) -> Vec<(NexusId, Option<Duration>, String)> {
    net.client_events[c]
        .iter()
        .filter_map(|e| match e {
            Event::NexusHeld {
                nexus,
                remaining,
                reason,
            } => Some((*nexus, *remaining, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_held_create_is_told_at_once_which_nexus_it_waits_for_and_how_long() {
    let mut net = Net::new(server_config());
    let old = net.add_client(client_config("quinn", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let old_nexus = net.clients[old].nexus().unwrap();
    work_then_vanish(&mut net, old);
    net.run_for(Duration::from_millis(500));
    let new = net.add_client(client_config("quinn", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(10));
    // Within one round trip, not after a timeout: which nexus, and 2 s - 0.5 s left.
    let notices = held_notices(&net, new);
    assert_eq!(notices.len(), 1, "{:?}", net.client_events[new]);
    let (nexus, remaining, reason) = &notices[0];
    assert_eq!(*nexus, old_nexus);
    let left = remaining.expect("the old nexus is expiring");
    assert!(
        left <= Duration::from_millis(1500) && left > Duration::from_millis(1400),
        "{left:?}"
    );
    assert!(reason.contains(&old_nexus.to_string()), "{reason}");
    assert!(net.clients[new].nexus().is_none());
    // The server keeps holding and answers again when the old nexus expires.
    net.run_for(Duration::from_millis(1600));
    let created = net.clients[new]
        .nexus()
        .expect("created when the hold ended");
    assert_ne!(created, old_nexus);
    assert_eq!(held_notices(&net, new).len(), 1);
}

#[test]
fn a_create_held_by_a_nexus_in_use_says_so() {
    let mut net = Net::new(server_config());
    let first = net.add_client(client_config("rita", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let nexus = net.clients[first].nexus().unwrap();
    // Work ran on it (an unused nexus would simply be replaced).
    net.clients[first]
        .call(net.now, EX, Bytes::new(), CallOptions::default())
        .unwrap();
    net.run_for(Duration::from_millis(3));
    echo(&mut net);
    net.run_for(Duration::from_millis(3));
    let second = net.add_client(client_config("rita", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(10));
    let notices = held_notices(&net, second);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].0, nexus);
    assert_eq!(notices[0].1, None, "in use: no expiry to announce");
    assert!(notices[0].2.contains("in use"), "{}", notices[0].2);
    // The first client ends cleanly: the held create goes ahead at once.
    net.clients[first].destroy(net.now);
    net.run_for(Duration::from_millis(10));
    assert!(net.clients[second].nexus().is_some());
}

#[test]
fn a_client_given_its_previous_nexus_replaces_it_instead_of_being_held() {
    let mut net = Net::new(server_config());
    let old = net.add_client(client_config("sam", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let old_nexus = net.clients[old].nexus().unwrap();
    work_then_vanish(&mut net, old);
    let mut config = client_config("sam", ClientCredentials::Anonymous, 2);
    config.replace = Some(old_nexus);
    let new = net.add_client(config);
    net.run_for(Duration::from_millis(20));
    let nexus = net.clients[new].nexus().expect("created at once");
    assert_ne!(nexus, old_nexus);
    assert!(held_notices(&net, new).is_empty());
    assert!(net.server_saw(|e| *e == Event::NexusDestroyed { nexus: old_nexus }));
    assert_eq!(net.server.nexuses().collect::<Vec<_>>(), vec![nexus]);
    assert_eq!(net.clients[new].bound_connections().len(), 2);
    // A nexus the server no longer knows is nothing to replace: the client just creates.
    let mut config = client_config("tom", ClientCredentials::Anonymous, 1);
    config.replace = Some(old_nexus);
    let other = net.add_client(config);
    net.run_for(Duration::from_millis(20));
    assert!(net.clients[other].nexus().is_some());
}

#[test]
fn the_grace_period_is_the_clients_proposal_up_to_the_servers_maximum() {
    let mut net = Net::new(server_config()); // at most 2 s
    for (asked, granted) in [
        (Some(Duration::from_millis(700)), Duration::from_millis(700)),
        (Some(Duration::from_secs(30)), Duration::from_secs(2)),
        (None, Duration::from_secs(2)),
    ] {
        let mut config = client_config("uma", ClientCredentials::Anonymous, 1);
        config.grace_period = asked;
        let c = net.add_client(config);
        net.run_for(Duration::from_millis(20));
        let nexus = net.clients[c].nexus().unwrap();
        assert_eq!(net.clients[c].grace_period(), Some(granted), "{asked:?}");
        assert_eq!(net.server.grace_period(nexus), Some(granted));
        // The server keeps it exactly that long once the client has gone.
        work_then_vanish(&mut net, c);
        let gone = net.now;
        net.run_for(granted - Duration::from_millis(10));
        assert!(net.server.nexuses().any(|n| n == nexus));
        net.run_for(Duration::from_millis(20));
        assert!(net.server.nexuses().all(|n| n != nexus));
        assert!(net.now.duration_since(gone) >= granted);
    }
}

#[test]
fn a_nexus_expired_before_anything_ran_on_it_is_created_afresh_with_queued_calls() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("vic", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    let first = net.clients[c].nexus().unwrap();
    // Cut off for longer than the handshake timeout: the server drops the unused nexus.
    net.connectable[c] = false;
    net.reset_client(c);
    let id = net.clients[c]
        .call(
            net.now,
            EX,
            Bytes::from_static(b"queued"),
            CallOptions::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(600));
    assert!(net.server.nexuses().all(|n| n != first));
    net.connectable[c] = true;
    net.clients[c].connect_failed(net.now);
    net.run_for(Duration::from_millis(30));
    echo(&mut net);
    net.run_for(Duration::from_millis(10));
    let second = net.clients[c].nexus().expect("created afresh");
    assert_ne!(second, first);
    assert_eq!(
        net.completions(c),
        vec![(id, Ok(Bytes::from_static(b"queued")))]
    );
}

#[test]
fn a_hold_on_a_nexus_that_stays_in_use_ends_after_the_grace_period() {
    let mut net = Net::new(server_config()); // grace 2 s
    let first = net.add_client(client_config("walt", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(20));
    net.clients[first]
        .call(net.now, EX, Bytes::new(), CallOptions::default())
        .unwrap();
    net.run_for(Duration::from_millis(3));
    echo(&mut net);
    let second = net.add_client(client_config("walt", ClientCredentials::Anonymous, 1));
    net.run_for(Duration::from_millis(1900));
    assert_eq!(held_notices(&net, second).len(), 1);
    let refused = |net: &Net| {
        net.client_events[second].iter().any(|e| {
            matches!(e, Event::ConnectionClosed { reason: LinkCloseReason::Refused(why), .. }
                if why.contains("still held after 2 s") && why.contains("in use"))
        })
    };
    assert!(!refused(&net), "not before the grace period");
    net.run_for(Duration::from_millis(200));
    assert!(refused(&net), "{:?}", net.client_events[second]);
    // The first client was never disturbed.
    assert_eq!(net.clients[first].bound_connections().len(), 1);
    assert!(net.clients[second].nexus().is_none());
}

#[test]
fn a_closed_connections_bytes_stay_in_the_totals() {
    let mut net = Net::new(server_config());
    let c = net.add_client(client_config("tess", ClientCredentials::Anonymous, 2));
    net.run_for(Duration::from_millis(50));
    let conns = net.clients[c].bound_connections().to_vec();
    assert_eq!(conns.len(), 2);
    for i in 0..8u8 {
        net.clients[c]
            .call(
                net.now,
                EX,
                Bytes::from(vec![i; 900]),
                CallOptions::default(),
            )
            .unwrap();
    }
    net.run_for(Duration::from_millis(5));
    echo(&mut net);
    net.run_for(Duration::from_millis(5));
    let before = net.clients[c].connection_totals();
    assert!(before.bytes_out >= 8 * 900, "{before:?}");
    assert_eq!(before.connections, 2);
    let on_cut = net.clients[c].connection_stats(conns[0]).unwrap().clone();
    assert!(on_cut.bytes_out > 0 && on_cut.bytes_in > 0);

    let pipe = net
        .pipes
        .iter()
        .position(|p| p.client == c && p.client_conn == conns[0])
        .unwrap();
    net.cut(pipe, false);
    net.run_for(Duration::from_millis(200));
    assert!(
        net.clients[c].connection_stats(conns[0]).is_none(),
        "the cut connection is forgotten"
    );
    let after = net.clients[c].connection_totals();
    // The forgotten connection still counts, beside the open ones and the replacement.
    let open_out: u64 = net.clients[c]
        .bound_connections()
        .iter()
        .filter_map(|k| net.clients[c].connection_stats(*k))
        .map(|s| s.bytes_out)
        .sum();
    assert!(after.bytes_out >= open_out + on_cut.bytes_out, "{after:?}");
    assert!(after.bytes_in >= on_cut.bytes_in && after.bytes_out >= before.bytes_out);
    assert!(after.connections >= 3, "{after:?}");
}
