//! Which session a datagram belongs to, by its source address: a session bound to a
//! peer hears only that address; an unbound session is offered datagrams from its peer's
//! IP (the nexus peer's) and binds to the first address whose datagram it takes (it
//! authenticated under the session's key). Nothing is allocated per datagram.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// The routing table of one engine's sessions.
#[derive(Debug, Default)]
pub struct Routes {
    /// Each session's peer IP and bound address.
    sessions: HashMap<u32, (IpAddr, Option<SocketAddr>)>,
    /// Sessions bound to each address.
    by_peer: HashMap<SocketAddr, Vec<u32>>,
}

/// Where a datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// The session that took it.
    pub session: u32,
    /// It bound the session to the datagram's source just now.
    pub bound: bool,
}

impl Routes {
    /// Adds session `id`, heard from `peer_ip`, bound to `peer` if known already. An id
    /// already present is replaced.
    pub fn add(&mut self, id: u32, peer_ip: IpAddr, peer: Option<SocketAddr>) {
        self.remove(id);
        self.sessions.insert(id, (peer_ip, peer));
        if let Some(peer) = peer {
            self.by_peer.entry(peer).or_default().push(id);
        }
    }

    /// Forgets session `id`.
    pub fn remove(&mut self, id: u32) {
        if let Some((_, Some(peer))) = self.sessions.remove(&id)
            && let Some(ids) = self.by_peer.get_mut(&peer)
        {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_peer.remove(&peer);
            }
        }
    }

    /// The address session `id` is bound to.
    pub fn peer_of(&self, id: u32) -> Option<SocketAddr> {
        self.sessions.get(&id).and_then(|&(_, peer)| peer)
    }

    /// Sessions known.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No session is known.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Addresses sessions are bound to.
    pub fn bound_addresses(&self) -> usize {
        self.by_peer.len()
    }

    /// Offers a datagram from `from` to its candidate sessions in turn until one takes it
    /// (`offer` answers `Ok(true)`) or fails (`Err`); binds an unbound session that takes
    /// it. `None`: no session took it.
    pub fn route<E>(
        &mut self,
        from: SocketAddr,
        mut offer: impl FnMut(u32) -> Result<bool, E>,
    ) -> Option<(Routed, Result<(), E>)> {
        if let Some(ids) = self.by_peer.get(&from) {
            let (session, result) = first_taker(ids.iter().copied(), &mut offer)?;
            return Some((
                Routed {
                    session,
                    bound: false,
                },
                result,
            ));
        }
        let ip = from.ip().to_canonical();
        let unbound = self
            .sessions
            .iter()
            .filter(|(_, (peer_ip, peer))| peer.is_none() && peer_ip.to_canonical() == ip)
            .map(|(&id, _)| id);
        let (session, result) = first_taker(unbound, &mut offer)?;
        let bound = result.is_ok();
        if bound {
            if let Some(entry) = self.sessions.get_mut(&session) {
                entry.1 = Some(from);
            }
            self.by_peer.entry(from).or_default().push(session);
        }
        Some((Routed { session, bound }, result))
    }
}

/// The first of `ids` whose `offer` takes the datagram or fails.
fn first_taker<E>(
    ids: impl Iterator<Item = u32>,
    offer: &mut impl FnMut(u32) -> Result<bool, E>,
) -> Option<(u32, Result<(), E>)> {
    for id in ids {
        match offer(id) {
            Ok(false) => {}
            Ok(true) => return Some((id, Ok(()))),
            Err(e) => return Some((id, Err(e))),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_unbound_session_binds_to_the_first_address_it_takes_and_hears_only_it() {
        let mut routes = Routes::default();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        routes.add(7, ip, None);
        // Another IP is never offered.
        assert!(
            routes
                .route(addr("10.0.0.3:5000"), |_| -> Result<bool, ()> { panic!() })
                .is_none()
        );
        // Its IP is offered; a datagram it refuses binds nothing.
        assert!(
            routes
                .route(addr("10.0.0.2:5000"), |_| Ok::<_, ()>(false))
                .is_none()
        );
        assert_eq!(routes.peer_of(7), None);
        let (routed, ok) = routes
            .route(addr("10.0.0.2:5001"), |_| Ok::<_, ()>(true))
            .unwrap();
        assert_eq!(
            routed,
            Routed {
                session: 7,
                bound: true
            }
        );
        assert!(ok.is_ok());
        assert_eq!(routes.peer_of(7), Some(addr("10.0.0.2:5001")));
        // Bound: the other port of the same IP is no longer offered to it.
        assert!(
            routes
                .route(addr("10.0.0.2:5000"), |_| -> Result<bool, ()> { panic!() })
                .is_none()
        );
        routes.remove(7);
        assert!(routes.is_empty());
        assert_eq!(routes.bound_addresses(), 0);
    }
}
