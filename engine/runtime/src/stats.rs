//! Statistics of an endpoint, copied out of its shard.

use hawser_session::{ConnectionStats, ConnectionTotals, NexusId, NexusStats};

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
    /// A client's connections bound to its nexus now (0 on a server).
    pub bound_connections: usize,
}
