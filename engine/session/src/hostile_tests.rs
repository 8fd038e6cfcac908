//! A hostile peer cannot panic an endpoint or disturb another nexus: random frames (valid
//! encodings with random kinds, slots, sequence ids, ids and bodies) and random bytes
//! after a correct handshake, while an honest client keeps working on the same server.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hawser_wire::dsp::{
    self as wire, BindConnection, Credit, GoAwayCode, NexusCreate, NexusDestroy, NexusFeatures,
    NexusRecover, Ping, Pong, Status,
};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::auth::Mechanism;
use super::codec::{self, Frame};
use super::config::ChannelAttributes;
use super::frames::{self, SERVED_FEATURES};
use super::types::{Channel, ExchangeId, NexusId, SlotKey};
use super::{
    CallOptions, ClientConfig, ClientCredentials, ClientEndpoint, Event, LinkId, Reply,
    ServerConfig, ServerCredentials, ServerEndpoint,
};

/// A number below `n`.
fn below(rng: &mut Xoshiro256PlusPlus, n: u64) -> u64 {
    rng.next_u64() % n
}

fn random_frame(rng: &mut Xoshiro256PlusPlus, nexus: NexusId) -> Frame {
    let channel = if below(rng, 2) == 0 {
        Channel::Fore
    } else {
        Channel::Back
    };
    let key = SlotKey::new(below(rng, 6) as u32, below(rng, 4) as u32, below(rng, 5));
    let body = Bytes::from(vec![0x5a; below(rng, 64) as usize]);
    let attrs = ChannelAttributes {
        slots: below(rng, 3) as u32,
        ..ChannelAttributes::default()
    };
    let some_nexus = if below(rng, 2) == 0 {
        nexus
    } else {
        NexusId(u128::from(rng.next_u64()))
    }
    .into();
    match below(rng, 16) {
        0 => frames::hello(true, below(rng, 2) == 0, [3; 16]),
        1 => frames::auth(
            Mechanism::ScramSha256,
            Bytes::from_static(b"n,,n=honest,r=guess"),
        ),
        2 => Frame::NexusCreate(NexusCreate {
            fore: attrs.into(),
            back: attrs.into(),
            grace_period_ms: below(rng, 3) as u32,
            features: NexusFeatures(rng.next_u64() as u32),
            client_identity: "honest".into(),
        }),
        3 => {
            if below(rng, 2) == 0 {
                Frame::BindConnection(BindConnection { nexus: some_nexus })
            } else {
                Frame::NexusRecover(NexusRecover {
                    nexus: some_nexus,
                    client_identity: "honest".into(),
                })
            }
        }
        4 => Frame::NexusDestroy(NexusDestroy { nexus: some_nexus }),
        5..=7 => frames::request(channel, key, ExchangeId(1), below(rng, 3), body),
        8 => frames::response(channel, key, body),
        9 => frames::response_error(channel, key, body),
        10 => frames::cancel(channel, key),
        11 => Frame::Credit(Credit {
            channel,
            slots: below(rng, 100) as u32,
        }),
        12 => Frame::Ping(Ping { token: 1 }),
        13 => Frame::Pong(Pong { token: 9 }),
        14 => Frame::NexusCreated(wire::NexusCreated {
            status: Status::OK,
            nexus: some_nexus,
            fore: attrs.into(),
            back: attrs.into(),
            grace_period_ms: 0,
            features: SERVED_FEATURES,
            reason: String::new(),
        }),
        _ => frames::go_away(GoAwayCode(77), "x".into()),
    }
}

/// Runs the honest client and the server until quiet (instantaneous network).
fn settle(
    now: Instant,
    client: &mut ClientEndpoint,
    server: &mut ServerEndpoint,
    pairs: &mut Vec<(LinkId, LinkId)>,
    served: &mut u32,
) -> Vec<Event> {
    let mut client_events = Vec::new();
    let mut buf = BytesMut::new();
    for _ in 0..50 {
        while let Some(e) = client.poll_event() {
            if e == Event::WantConnection {
                pairs.push((
                    client.add_connection(now, [1; 16]),
                    server.accept(now, [2; 16]),
                ));
            } else {
                client_events.push(e);
            }
        }
        while let Some(e) = server.poll_event() {
            if let Event::Request { request, body } = e {
                // Requests from the hostile peer are answered too: that is the point.
                server.respond(now, &request, Reply::Ok(body));
                *served += 1;
            }
        }
        for &(c, s) in pairs.iter() {
            buf.clear();
            client.poll_transmit(now, c, &mut buf);
            server.handle_input(now, s, &buf);
            buf.clear();
            server.poll_transmit(now, s, &mut buf);
            client.handle_input(now, c, &buf);
        }
    }
    client_events
}

#[test]
fn hostile_frames_never_panic_and_never_touch_another_nexus() {
    let now = Instant::now();
    let mut creds = ServerCredentials::anonymous();
    creds.users = ServerCredentials::passwords([("honest".into(), b"k".to_vec())], 4096).users;
    let mut server = ServerEndpoint::new(ServerConfig::new(creds), 1);
    let mut config = ClientConfig::new("honest", ClientCredentials::password(b"k".to_vec()));
    config.connections = 1;
    let mut client = ClientEndpoint::new(config, now);
    let mut pairs = Vec::new();
    let mut served = 0;
    settle(now, &mut client, &mut server, &mut pairs, &mut served);
    let honest = client.nexus().expect("honest nexus");

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(99);
    let mut out = BytesMut::new();
    for round in 0..300 {
        // A fresh hostile connection: handshake correctly (anonymous), create its own
        // nexus, then misbehave.
        let conn = server.accept(now, [9; 16]);
        let mut bytes = BytesMut::new();
        let mallory = format!("mallory-{round}");
        let hello = frames::hello(below(&mut rng, 2) == 0, true, [4; 16]);
        codec::encode(&hello, true, &mut bytes);
        let auth = frames::auth(Mechanism::Anonymous, Bytes::from(mallory.clone()));
        codec::encode(&auth, true, &mut bytes);
        let fore = ChannelAttributes {
            slots: 4,
            ..ChannelAttributes::default()
        };
        let create = Frame::NexusCreate(NexusCreate {
            fore: fore.into(),
            back: ChannelAttributes::default().into(),
            grace_period_ms: 0,
            features: SERVED_FEATURES,
            client_identity: mallory,
        });
        codec::encode(&create, true, &mut bytes);
        server.handle_input(now, conn, &bytes);
        for _ in 0..20 {
            let mut bytes = BytesMut::new();
            if below(&mut rng, 10) == 0 {
                let mut noise = vec![0; below(&mut rng, 100) as usize];
                rng.fill_bytes(&mut noise);
                bytes.extend_from_slice(&noise);
            } else {
                let f = random_frame(&mut rng, honest);
                codec::encode(&f, below(&mut rng, 2) == 0, &mut bytes);
            }
            server.handle_input(now, conn, &bytes);
            out.clear();
            server.poll_transmit(now, conn, &mut out);
        }
        server.connection_lost(now, conn);
        // The honest client still gets exactly its own answers.
        let id = client
            .call(
                now,
                ExchangeId(1),
                Bytes::from(format!("round {round}")),
                CallOptions::default(),
            )
            .unwrap();
        let events = settle(now, &mut client, &mut server, &mut pairs, &mut served);
        assert!(
            events.contains(&Event::Completed {
                nexus: honest,
                request: id,
                result: Ok(Bytes::from(format!("round {round}"))),
            }),
            "round {round}: {events:?}"
        );
        assert_eq!(client.nexus(), Some(honest));
        assert_eq!(client.bound_connections().len(), 1);
    }
    // Hostile nexuses expire with their grace period; the honest one stays.
    let later = now + Duration::from_secs(121);
    server.handle_timeout(later);
    assert_eq!(server.nexuses().collect::<Vec<_>>(), vec![honest]);
    assert!(served >= 300);
}
