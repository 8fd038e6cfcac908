//! Leases: the single-use, expiring tickets a nexus is granted for one direct connection
//! to a sink (Put) or a feed (Get), bound to the nexus's identity and peer.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use hawser_runtime::Peer;

use super::{EntityId, Refusal};
use hawser_wire::dmp::ResponseCode;

/// Length of a lease's text: 128 random bits in lowercase hex.
pub const LEASE_LEN: usize = 32;

/// What a lease opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Writing to a sink.
    Put(EntityId),
    /// Reading a feed.
    Get(EntityId),
}

/// A granted lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// What it opens.
    pub grant: Grant,
    /// The application (nexus) it was granted to.
    pub app: u128,
    /// That nexus's identity.
    pub identity: Arc<str>,
    /// The identity is claimed (`ANONYMOUS`), not proven.
    pub anonymous: bool,
    /// The peer of the connection that created that nexus: a direct connection from
    /// elsewhere is refused.
    pub peer: Peer,
    /// When it expires unused.
    pub expires: Instant,
}

/// The leases granted and not yet used or expired.
#[derive(Debug, Default)]
pub struct LeaseTable {
    leases: HashMap<[u8; 16], Lease>,
}

/// 16 bytes from the kernel's random source.
fn random_token() -> Result<[u8; 16], Refusal> {
    let mut token = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut token))
        .map_err(|e| {
            Refusal::new(
                ResponseCode::InternalError,
                format!("cannot draw a lease from /dev/urandom: {e}"),
            )
        })?;
    Ok(token)
}

/// The text of a lease token.
pub fn lease_text(token: &[u8; 16]) -> String {
    hex::encode(token)
}

/// The token of a lease's text, if it has the form of one.
pub fn parse_lease(text: &[u8]) -> Option<[u8; 16]> {
    let mut token = [0u8; 16];
    hex::decode_to_slice(text, &mut token).ok()?;
    Some(token)
}

impl LeaseTable {
    /// Grants a lease; at most `limit` wait at once, `per_app` of one application
    /// (expired ones are dropped first).
    pub fn grant(
        &mut self,
        now: Instant,
        lease: Lease,
        limit: usize,
        per_app: usize,
    ) -> Result<String, Refusal> {
        if self.leases.len() >= limit {
            self.leases.retain(|_, l| l.expires > now);
        }
        let app = lease.app;
        if self.leases.values().filter(|l| l.app == app).count() >= per_app {
            self.leases.retain(|_, l| l.expires > now);
            if self.leases.values().filter(|l| l.app == app).count() >= per_app {
                return Err(Refusal::new(
                    ResponseCode::NotAllowed,
                    format!(
                        "this client holds {per_app} unused leases: open their direct \
                         connections, or wait for them to expire"
                    ),
                ));
            }
        }
        if self.leases.len() >= limit {
            return Err(Refusal::new(
                ResponseCode::NotAllowed,
                format!(
                    "the server holds its maximum of {limit} unused leases; open the direct \
                     connections of the leases granted, or wait for them to expire"
                ),
            ));
        }
        let token = random_token()?;
        self.leases.insert(token, lease);
        Ok(lease_text(&token))
    }

    /// Takes the lease of `text` for a direct connection from `peer`: each lease opens
    /// one connection, before it expires, from where its nexus was created.
    pub fn redeem(&mut self, now: Instant, text: &[u8], peer: Peer) -> Result<Lease, Refusal> {
        let unknown = || {
            Refusal::new(
                ResponseCode::BadLease,
                "unknown lease: it was never granted, was used already, or expired",
            )
        };
        let token = parse_lease(text).ok_or_else(unknown)?;
        let lease = self.leases.remove(&token).ok_or_else(unknown)?;
        if now >= lease.expires {
            return Err(Refusal::new(
                ResponseCode::BadLease,
                "the lease expired: ask for a new one (Direct.Put or Direct.Get) and connect \
                 within the lease's time",
            ));
        }
        if !same_peer(lease.peer, peer) {
            return Err(Refusal::new(
                ResponseCode::BadLease,
                "the lease was granted to another client: a direct connection must come from \
                 the host (or local user) whose nexus asked for it",
            ));
        }
        Ok(lease)
    }

    /// Forgets the leases granted to `app`.
    pub fn forget_app(&mut self, app: u128) {
        self.leases.retain(|_, l| l.app != app);
    }

    /// Leases waiting.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

/// Whether a direct connection from `peer` may use a lease granted to a nexus created
/// from `granted`: the same IP address, or the same local user.
fn same_peer(granted: Peer, peer: Peer) -> bool {
    match (granted.canonical(), peer.canonical()) {
        (Peer::Unknown, _) => true,
        (Peer::Inet(a), Peer::Inet(b)) => a == b,
        (Peer::Local(a), Peer::Local(b)) => a.uid == b.uid,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lease(now: Instant, peer: Peer) -> Lease {
        Lease {
            grant: Grant::Put(EntityId(1)),
            app: 7,
            identity: "alice".into(),
            anonymous: false,
            peer,
            expires: now + Duration::from_secs(30),
        }
    }

    #[test]
    fn a_lease_opens_one_connection() {
        let now = Instant::now();
        let ip = Peer::Inet("127.0.0.1".parse().unwrap());
        let mut t = LeaseTable::default();
        let text = t.grant(now, lease(now, ip), 10, 10).unwrap();
        assert_eq!(text.len(), LEASE_LEN);
        assert!(t.redeem(now, text.as_bytes(), ip).is_ok());
        let again = t.redeem(now, text.as_bytes(), ip).unwrap_err();
        assert_eq!(again.code, ResponseCode::BadLease);
    }

    #[test]
    fn expired_foreign_and_malformed_leases_are_bad() {
        let now = Instant::now();
        let ip = Peer::Inet("127.0.0.1".parse().unwrap());
        let other = Peer::Inet("192.0.2.1".parse().unwrap());
        let mut t = LeaseTable::default();
        let text = t.grant(now, lease(now, ip), 10, 10).unwrap();
        let late = now + Duration::from_secs(31);
        let e = t.redeem(late, text.as_bytes(), ip).unwrap_err();
        assert!(e.text.contains("expired"), "{e:?}");
        let text = t.grant(now, lease(now, ip), 10, 10).unwrap();
        let e = t.redeem(now, text.as_bytes(), other).unwrap_err();
        assert!(e.text.contains("another client"), "{e:?}");
        assert_eq!(
            t.redeem(now, b"nothex", ip).unwrap_err().code,
            ResponseCode::BadLease
        );
        let mapped = Peer::Inet("::ffff:127.0.0.1".parse().unwrap());
        let text = t.grant(now, lease(now, ip), 10, 10).unwrap();
        assert!(t.redeem(now, text.as_bytes(), mapped).is_ok());
    }

    #[test]
    fn the_table_is_bounded_and_drops_expired_leases_first() {
        let now = Instant::now();
        let mut t = LeaseTable::default();
        t.grant(now, lease(now, Peer::Unknown), 2, 10).unwrap();
        t.grant(now, lease(now, Peer::Unknown), 2, 10).unwrap();
        let full = t.grant(now, lease(now, Peer::Unknown), 2, 10).unwrap_err();
        assert_eq!(full.code, ResponseCode::NotAllowed);
        let later = now + Duration::from_secs(60);
        assert!(t.grant(later, lease(later, Peer::Unknown), 2, 10).is_ok());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn one_application_holds_a_bounded_share() {
        let now = Instant::now();
        let mut t = LeaseTable::default();
        t.grant(now, lease(now, Peer::Unknown), 10, 1).unwrap();
        let e = t.grant(now, lease(now, Peer::Unknown), 10, 1).unwrap_err();
        assert_eq!(e.code, ResponseCode::NotAllowed);
        let mut other = lease(now, Peer::Unknown);
        other.app = 8;
        assert!(t.grant(now, other, 10, 1).is_ok());
    }

    #[test]
    fn lease_texts_round_trip() {
        let token = [0xab; 16];
        assert_eq!(parse_lease(lease_text(&token).as_bytes()), Some(token));
        assert_eq!(parse_lease(b"AB"), None);
    }
}
