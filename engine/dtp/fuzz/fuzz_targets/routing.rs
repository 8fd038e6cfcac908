//! The engine's routing of hostile datagrams (`hawser_dtp::engine::routes::Routes`):
//! sessions come and go (each with its own key, its peer's IP, sometimes an address
//! bound from the start), and datagrams arrive from addresses at those IPs and others,
//! sealed under a session's key, under a key no session has, or raw. A session takes a
//! datagram exactly when it authenticates under its key, as the engine's sessions do.
//!
//! A model follows the table. After every datagram:
//! - nothing panicked;
//! - a datagram that went somewhere authenticates under that session's key, came from
//!   its peer's IP, and from its bound address if it had one; a session that bound now
//!   had none before, and is bound to the datagram's source afterwards;
//! - a datagram that went nowhere authenticates under none of the sessions it could have
//!   gone to: those bound to its source if there are any, else the unbound ones at its IP;
//! - every session's bound address is the model's, and the table holds no more
//!   addresses than sessions.
#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hawser_dtp::DatagramKey;
use hawser_dtp::engine::routes::Routes;
use libfuzzer_sys::fuzz_target;

struct Model {
    ip: IpAddr,
    peer: Option<SocketAddr>,
    key: DatagramKey,
}

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n % 4))
}

fn key(n: u8) -> DatagramKey {
    DatagramKey::new([n; 32])
}

fuzz_target!(|data: &[u8]| {
    let mut routes = Routes::default();
    let mut model: HashMap<u32, Model> = HashMap::new();
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let (a, b, c) = (
            bytes.next().unwrap_or(0),
            bytes.next().unwrap_or(0),
            bytes.next().unwrap_or(0),
        );
        match op % 4 {
            // A session: id a % 8, key b, peer IP c, bound from the start when op says.
            0 => {
                let id = u32::from(a % 8);
                let peer = (op & 0x10 != 0).then(|| SocketAddr::new(ip(c), 5000 + u16::from(b % 4)));
                routes.add(id, ip(c), peer);
                model.insert(id, Model { ip: ip(c), peer, key: key(b) });
            }
            1 => {
                let id = u32::from(a % 8);
                routes.remove(id);
                model.remove(&id);
            }
            // A datagram from 10.0.0.(c % 4):(5000 + b % 4): sealed under key a, or raw.
            _ => {
                let from = SocketAddr::new(ip(c), 5000 + u16::from(b % 4));
                let mut packet = vec![op, a, b, c];
                if op & 0x20 == 0 {
                    key(a).seal(&mut packet);
                }
                let opens = |id: u32| model.get(&id).is_some_and(|m| m.key.open(&packet).is_some());
                let bound_here: Vec<u32> = model
                    .iter()
                    .filter(|(_, m)| m.peer == Some(from))
                    .map(|(&id, _)| id)
                    .collect();
                let candidates: Vec<u32> = if bound_here.is_empty() {
                    model
                        .iter()
                        .filter(|(_, m)| m.peer.is_none() && m.ip == from.ip())
                        .map(|(&id, _)| id)
                        .collect()
                } else {
                    bound_here.clone()
                };
                let routed = routes.route(from, |id| Ok::<bool, ()>(opens(id)));
                match routed {
                    Some((routed, result)) => {
                        assert!(result.is_ok());
                        let id = routed.session;
                        assert!(candidates.contains(&id), "{id} was not a candidate");
                        assert!(opens(id), "{id} took a datagram not sealed under its key");
                        let m = model.get_mut(&id).unwrap();
                        assert_eq!(m.ip, from.ip());
                        if routed.bound {
                            assert_eq!(m.peer, None, "{id} was bound already");
                            m.peer = Some(from);
                        } else {
                            assert_eq!(m.peer, Some(from));
                        }
                    }
                    None => assert!(
                        candidates.iter().all(|&id| !opens(id)),
                        "a candidate would have taken it"
                    ),
                }
            }
        }
        assert_eq!(routes.len(), model.len());
        for (&id, m) in &model {
            assert_eq!(routes.peer_of(id), m.peer, "session {id}");
        }
        assert!(routes.bound_addresses() <= routes.len());
    }
});
