//! Identifiers shared by every part of the session layer.

use std::fmt;

/// A nexus (session) id: 128 bits chosen by the server at creation, independent of
/// connections, so a nexus outlives every connection that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NexusId(pub u128);

impl fmt::Display for NexusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nexus-{:032x}", self.0)
    }
}

/// A connection handle, assigned by the endpoint ([`Client`](super::Client) or
/// [`Server`](super::Server)) when the driver hands it a new transport connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// An application exchange (request type) number; a service maps names to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub u32);

/// Identifies one outgoing request of one nexus in one direction, for its whole life
/// (across every retry). Allocated by the initiator, monotonically increasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Which channel of the nexus a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Requests from the client to the server.
    Fore,
    /// Requests from the server to the client.
    Back,
}

/// A hasher for small integer keys (request ids, tokens, connection and nexus ids):
/// SipHash cost ~10% of the pipelined small-exchange profile; these keys are chosen
/// locally (never by the network), so flooding resistance buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u128(&mut self, n: u128) {
        // Nexus ids are u128: two multiplies instead of the byte loop's sixteen.
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by locally chosen integer ids.
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
