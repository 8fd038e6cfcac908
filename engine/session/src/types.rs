//! Identifiers shared by every part of the session layer, and the map they key.

use std::fmt;

use hawser_wire::dsp;

/// Which channel of the nexus a request travels on: [`Channel::Fore`] carries requests
/// from the client to the server, [`Channel::Back`] requests from the server to the
/// client. The wire's type: it is the BACKCHANNEL flag of every exchange frame.
pub use hawser_wire::dsp::Channel;

/// A nexus (session) id: 128 bits chosen by the server at creation, independent of
/// connections, so a nexus outlives every connection that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NexusId(pub u128);

impl fmt::Display for NexusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nexus-{:032x}", self.0)
    }
}

impl From<dsp::NexusId> for NexusId {
    fn from(id: dsp::NexusId) -> Self {
        NexusId(id.to_u128())
    }
}

impl From<NexusId> for dsp::NexusId {
    fn from(id: NexusId) -> Self {
        dsp::NexusId::from_u128(id.0)
    }
}

/// A connection handle, assigned by the endpoint ([`ClientEndpoint`](super::ClientEndpoint) or
/// [`ServerEndpoint`](super::ServerEndpoint)) when the driver hands it a new transport connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// An application exchange (request type) number; a service maps names to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub u32);

/// Identifies one outgoing request of one nexus in one direction, for its whole life
/// (across every retry). Allocated by the initiator, monotonically increasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What every exchange frame (Request, Response, ResponseError, Cancel) names besides
/// its channel: the request's place in the slot table and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotKey {
    pub(crate) slot: u32,
    pub(crate) seq: u32,
    pub(crate) request: RequestId,
}

impl SlotKey {
    /// The key of the header fields of an exchange frame.
    pub(crate) fn new(slot: u32, seq: u32, request_id: u64) -> Self {
        SlotKey {
            slot,
            seq,
            request: RequestId(request_id),
        }
    }
}

/// A map keyed by locally chosen integer ids (request ids, connection and nexus ids,
/// tokens). These keys never come from the network, so flooding resistance buys nothing
/// and the hasher is rustc's: one multiply per word, where SipHash costs a visible share
/// of a small exchange.
pub type IdMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// Tables this sparse (a quarter full or less, past a few hundred slots) give their room
/// back: a burst of abandoned nexuses or connections would otherwise keep the memory of
/// its peak for the server's life. Halving happens only after the table shrank fourfold,
/// so the cost is amortized over the removals.
pub(crate) fn shrink_if_sparse<K, V, S>(map: &mut std::collections::HashMap<K, V, S>)
where
    K: Eq + std::hash::Hash,
    S: std::hash::BuildHasher,
{
    const KEEP: usize = 256;
    if map.capacity() > KEEP && map.len() * 4 < map.capacity() {
        map.shrink_to((map.len() * 2).max(KEEP));
    }
}

/// [`shrink_if_sparse`] for the vectors and heaps of the same bursts.
pub(crate) fn shrink_vec_if_sparse<T>(v: &mut Vec<T>) {
    const KEEP: usize = 256;
    if v.capacity() > KEEP && v.len() * 4 < v.capacity() {
        v.shrink_to((v.len() * 2).max(KEEP));
    }
}
