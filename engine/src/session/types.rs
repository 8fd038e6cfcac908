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
pub struct ConnId(pub u64);

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
