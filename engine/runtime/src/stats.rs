//! Statistics of an endpoint, copied out of its shard.

use hawser_session::{ConnectionStats, NexusId, NexusOwner, NexusStats, ServerLoad};

/// Statistics of one endpoint, copied out of its shard.
#[derive(Debug, Clone, Default)]
pub struct StatsReport {
    /// Per nexus (a client has at most one).
    pub nexuses: Vec<(NexusId, NexusStats)>,
    /// Per open connection.
    pub connections: Vec<ConnectionStats>,
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
}
