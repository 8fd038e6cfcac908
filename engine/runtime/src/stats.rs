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
    /// The shard that holds it and its connections.
    pub shard: usize,
}

impl StatsReport {
    /// Adds `other`'s figures: the report of a server that runs on several shards is the
    /// sum of its shards' (ended nexuses of one identity counted once).
    pub fn merge(&mut self, other: StatsReport) {
        self.nexuses.extend(other.nexuses);
        self.connections.extend(other.connections);
        let t = &mut self.totals;
        let o = other.totals;
        t.connections = t.connections.saturating_add(o.connections);
        t.frames_in = t.frames_in.saturating_add(o.frames_in);
        t.frames_out = t.frames_out.saturating_add(o.frames_out);
        t.bytes_in = t.bytes_in.saturating_add(o.bytes_in);
        t.bytes_out = t.bytes_out.saturating_add(o.bytes_out);
        self.owners.extend(other.owners);
        for (identity, anonymous, stats) in other.ended_nexuses {
            match self
                .ended_nexuses
                .iter_mut()
                .find(|(i, a, _)| *i == identity && *a == anonymous)
            {
                Some((_, _, mine)) => mine.absorb(&stats),
                None => self.ended_nexuses.push((identity, anonymous, stats)),
            }
        }
        self.ended_connections.absorb(&other.ended_connections);
        self.load = match (self.load.take(), other.load) {
            (Some(a), Some(b)) => Some(ServerLoad {
                connections: a.connections + b.connections,
                unauthenticated: a.unauthenticated + b.unauthenticated,
                sources: a.sources + b.sources,
                nexuses: a.nexuses + b.nexuses,
                held_creates: a.held_creates + b.held_creates,
                timer_entries: a.timer_entries + b.timer_entries,
                throttled: (a.throttled.0 + b.throttled.0, a.throttled.1 + b.throttled.1),
            }),
            (a, b) => a.or(b),
        };
        self.connections_refused = self
            .connections_refused
            .saturating_add(other.connections_refused);
        self.protocol_violations = self
            .protocol_violations
            .saturating_add(other.protocol_violations);
        self.bound_connections += other.bound_connections;
        self.details.extend(other.details);
    }
}

/// Reads a server's statistics from any thread, for as long as the server runs.
#[derive(Clone)]
pub struct StatsHandle(pub(crate) Vec<(usize, CommandSender)>);

impl StatsHandle {
    /// Counters and histograms of every nexus and open connection, over every shard the
    /// server runs on (empty once the server is gone).
    pub fn stats(&self) -> StatsReport {
        merged_stats(&self.0)
    }
}

/// The merged reports of the hosts behind `hosts` (each with its shard).
pub(crate) fn merged_stats(hosts: &[(usize, CommandSender)]) -> StatsReport {
    let mut report = StatsReport::default();
    for (shard, commands) in hosts {
        let mut one = commands.stats();
        one.details.iter_mut().for_each(|d| d.shard = *shard);
        report.merge(one);
    }
    report
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsHandle")
    }
}
