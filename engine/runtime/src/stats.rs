//! Statistics of an endpoint, copied out of its shard.

use hawser_session::{
    ConnectionStats, ConnectionTotals, Footprint, NexusId, NexusOwner, NexusStats, ServerLoad,
};

use crate::command::CommandSender;

/// Statistics of one endpoint, copied out of its shard.
#[derive(Debug, Clone, Default)]
pub struct StatsReport {
    /// Per nexus (a client has at most one).
    pub nexuses: Vec<(NexusId, NexusStats)>,
    /// Per open connection.
    pub connections: Vec<ConnectionStats>,
    /// Every connection the endpoint ever had, open or closed: what a job moved even
    /// when connections died under it.
    pub totals: ConnectionTotals,
    /// Who created each nexus (a server's; empty on a client).
    pub owners: Vec<(NexusId, NexusOwner)>,
    /// A server's totals of the nexuses that ended, by identity and whether anonymous
    /// (anonymous clients together under an empty identity).
    pub ended_nexuses: Vec<(String, bool, NexusStats)>,
    /// A server's totals of the connections that closed.
    pub ended_connections: ConnectionStats,
    /// A server's bookkeeping now (handshakes in progress, held creates, sources and
    /// identities throttled after failed logins).
    pub load: Option<ServerLoad>,
    /// Connections a server refused (failed or throttled logins, limits), since it started.
    pub connections_refused: u64,
    /// Connections a server closed for a protocol violation, since it started.
    pub protocol_violations: u64,
    /// A client's connections bound to its nexus now (0 on a server).
    pub bound_connections: usize,
    /// A server's nexuses: who holds each, what it holds, and its connections.
    pub details: Vec<NexusDetail>,
}

/// One nexus of a server as its operators see it.
#[derive(Debug, Clone)]
pub struct NexusDetail {
    /// The nexus.
    pub nexus: NexusId,
    /// The identity that created it.
    pub identity: String,
    /// It authenticated with `ANONYMOUS`.
    pub anonymous: bool,
    /// The peer that created it.
    pub peer: String,
    /// What it holds now (requests, cache, buffers, slots executing).
    pub footprint: Footprint,
    /// Its bound connections' counters, in bind order.
    pub connections: Vec<ConnectionStats>,
}

/// Reads a server's statistics from any thread, for as long as the server runs.
#[derive(Clone)]
pub struct StatsHandle(pub(crate) CommandSender);

impl StatsHandle {
    /// Counters and histograms of every nexus and open connection (empty once the server
    /// is gone).
    pub fn stats(&self) -> StatsReport {
        self.0.stats()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsHandle")
    }
}
