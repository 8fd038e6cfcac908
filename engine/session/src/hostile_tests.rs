//! A hostile peer cannot panic an endpoint or disturb another nexus: random frames (valid
//! encodings with random kinds, slots, sequence ids, ids and bodies) and random bytes
//! after a correct handshake, while an honest client keeps working on the same server.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::auth::Mechanism;
use super::config::ChannelAttributes;
use super::frame::{self, Frame, Status};
use super::types::{Channel, ExchangeId, NexusId, RequestId};
use super::{
    CallOptions, Client, ClientConfig, ClientCredentials, Event, LinkId, Reply, Server,
    ServerConfig, ServerCredentials,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_frame(rng: &mut Rng, nexus: NexusId) -> Frame {
    let channel = if rng.below(2) == 0 {
        Channel::Fore
    } else {
        Channel::Back
    };
    let slot = rng.below(6) as u32;
    let seq = rng.below(4) as u32;
    let request = RequestId(rng.below(5));
    let body = Bytes::from(vec![0x5a; rng.below(64) as usize]);
    let attrs = ChannelAttributes {
        slots: rng.below(3) as u32,
        ..ChannelAttributes::default()
    };
    let some_nexus = if rng.below(2) == 0 {
        nexus
    } else {
        NexusId(u128::from(rng.next()))
    };
    match rng.below(16) {
        0 => Frame::Hello {
            versions: (1, 1),
            digest: true,
            compress: rng.below(2) == 0,
            nonce: [3; 16],
        },
        1 => Frame::Auth {
            mechanism: Mechanism::HmacSha256,
            identity: "honest".into(),
            proof: Bytes::from(vec![1; 32]),
        },
        2 => Frame::NexusCreate {
            fore: attrs,
            back: attrs,
            grace_ms: rng.below(3) as u32,
            features: hawser_wire::dsp::NexusFeatures(rng.next() as u32),
            identity: "honest".into(),
        },
        3 => {
            if rng.below(2) == 0 {
                Frame::Bind { nexus: some_nexus }
            } else {
                Frame::Recover {
                    nexus: some_nexus,
                    identity: "honest".into(),
                }
            }
        }
        4 => Frame::Destroy { nexus: some_nexus },
        5..=7 => Frame::Request {
            channel,
            slot,
            seq,
            request,
            exchange: ExchangeId(1),
            order: rng.below(3),
            body,
        },
        8 => Frame::Response {
            channel,
            slot,
            seq,
            request,
            body,
        },
        9 => Frame::ResponseError {
            channel,
            slot,
            seq,
            request,
            exception: body,
        },
        10 => Frame::Cancel {
            channel,
            slot,
            seq,
            request,
        },
        11 => Frame::Credit {
            channel,
            slots: rng.below(100) as u32,
        },
        12 => Frame::Ping { token: 1 },
        13 => Frame::Pong { token: 9 },
        14 => Frame::NexusCreated {
            status: Status::OK,
            nexus: some_nexus,
            fore: attrs,
            back: attrs,
            grace_ms: 0,
            features: super::frame::SERVED_FEATURES,
            reason: String::new(),
        },
        _ => Frame::GoAway {
            code: super::link::GoAwayCode(77),
            reason: "x".into(),
        },
    }
}

/// Runs the honest client and the server until quiet (instantaneous network).
fn settle(
    now: Instant,
    client: &mut Client,
    server: &mut Server,
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
    creds.secrets.insert("honest".into(), b"k".to_vec());
    let mut server = Server::new(ServerConfig::new(creds), 1);
    let mut config = ClientConfig::new("honest", ClientCredentials::SharedSecret(b"k".to_vec()));
    config.connections = 1;
    let mut client = Client::new(config, now);
    let mut pairs = Vec::new();
    let mut served = 0;
    settle(now, &mut client, &mut server, &mut pairs, &mut served);
    let honest = client.nexus().expect("honest nexus");

    let mut rng = Rng(99);
    let mut out = BytesMut::new();
    for round in 0..300 {
        // A fresh hostile connection: handshake correctly (anonymous), create its own
        // nexus, then misbehave.
        let conn = server.accept(now, [9; 16]);
        let mut bytes = BytesMut::new();
        frame::encode(
            &Frame::Hello {
                versions: (1, 1),
                digest: rng.below(2) == 0,
                compress: true,
                nonce: [4; 16],
            },
            true,
            &mut bytes,
        );
        frame::encode(
            &Frame::Auth {
                mechanism: Mechanism::Anonymous,
                identity: format!("mallory-{round}"),
                proof: Bytes::new(),
            },
            true,
            &mut bytes,
        );
        frame::encode(
            &Frame::NexusCreate {
                fore: ChannelAttributes {
                    slots: 4,
                    ..ChannelAttributes::default()
                },
                back: ChannelAttributes::default(),
                grace_ms: 0,
                features: super::frame::SERVED_FEATURES,
                identity: format!("mallory-{round}"),
            },
            true,
            &mut bytes,
        );
        server.handle_input(now, conn, &bytes);
        for _ in 0..20 {
            let mut bytes = BytesMut::new();
            if rng.below(10) == 0 {
                for _ in 0..rng.below(100) {
                    bytes.extend_from_slice(&[rng.next() as u8]);
                }
            } else {
                let f = random_frame(&mut rng, honest);
                frame::encode(&f, rng.below(2) == 0, &mut bytes);
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
