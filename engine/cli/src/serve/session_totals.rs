//! What the metrics export of the session layer, read off one statistics report of the
//! server: nexuses by identity, request counters by identity and latency histograms, each
//! the totals of what ended plus what is alive, so they only grow.

use std::collections::BTreeMap;

use hawser_runtime::{ConnectionStats, NexusStats, ServerLoad, StatsReport};
use hdrhistogram::Histogram;

use crate::job_tally::{ANONYMOUS, OTHER};

/// Identities kept apart at most; past it nexuses count under [`OTHER`]. Identities are
/// the operator's (anonymous clients share one label), but a bound protects the scrape.
const MAX_IDENTITIES: usize = 10_000;

/// Everything a scrape exports of the session layer.
#[derive(Debug, Default)]
pub(crate) struct SessionTotals {
    /// Nexuses alive now, by identity label.
    pub(crate) nexuses: BTreeMap<String, u64>,
    /// Request counters and backchannel latency by identity label, ended nexuses included.
    pub(crate) by_identity: BTreeMap<String, NexusStats>,
    /// Connections open now.
    pub(crate) connections: u64,
    /// Counters and heartbeat round trips of every connection, closed ones included.
    pub(crate) connection_totals: ConnectionStats,
    /// Latency of the calls the server made to its clients (backchannel: the blocks of
    /// pulls), per exchange, over every nexus (nanoseconds).
    pub(crate) call_latency: BTreeMap<u32, Histogram<u64>>,
    /// The server's bookkeeping now.
    pub(crate) load: ServerLoad,
    /// Connections refused since the start (failed or throttled logins, limits).
    pub(crate) connections_refused: u64,
    /// Connections closed for a protocol violation since the start.
    pub(crate) protocol_violations: u64,
}

/// The label of an identity: anonymous clients share [`ANONYMOUS`], and identities past
/// [`MAX_IDENTITIES`] share [`OTHER`].
fn label(seen: &BTreeMap<String, NexusStats>, identity: &str, anonymous: bool) -> String {
    if anonymous {
        ANONYMOUS.to_owned()
    } else if seen.len() >= MAX_IDENTITIES && !seen.contains_key(identity) {
        OTHER.to_owned()
    } else {
        identity.to_owned()
    }
}

/// The totals `report` gives.
pub(crate) fn session_totals(report: &StatsReport) -> SessionTotals {
    let mut t = SessionTotals {
        connections: report.connections.len() as u64,
        connection_totals: report.ended_connections.clone(),
        load: report.load.unwrap_or_default(),
        connections_refused: report.connections_refused,
        protocol_violations: report.protocol_violations,
        ..SessionTotals::default()
    };
    for (identity, anonymous, stats) in &report.ended_nexuses {
        let label = label(&t.by_identity, identity, *anonymous);
        t.by_identity.entry(label).or_default().absorb(stats);
    }
    for (nexus, stats) in &report.nexuses {
        let owner = report
            .owners
            .iter()
            .find(|(n, _)| n == nexus)
            .map(|(_, o)| o);
        let label = match owner {
            Some(o) => label(&t.by_identity, &o.identity, o.anonymous),
            None => ANONYMOUS.to_owned(),
        };
        *t.nexuses.entry(label.clone()).or_default() += 1;
        t.by_identity.entry(label).or_default().absorb(stats);
    }
    for connection in &report.connections {
        t.connection_totals.absorb(connection);
    }
    for stats in t.by_identity.values() {
        for (exchange, h) in &stats.latency {
            let total = t
                .call_latency
                .entry(exchange.0)
                .or_insert_with(|| Histogram::new_from(h));
            let _ = total.add(h);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_and_live_nexuses_add_up_per_identity_and_anonymous_ones_share_a_label() {
        let stats = |requests: u64| NexusStats {
            requests_executed: requests,
            bytes_received: requests * 10,
            ..NexusStats::default()
        };
        let report = StatsReport {
            ended_nexuses: vec![
                ("backup".into(), false, stats(3)),
                (String::new(), true, stats(5)),
            ],
            ..StatsReport::default()
        };
        let t = session_totals(&report);
        assert_eq!(t.by_identity["backup"].requests_executed, 3);
        assert_eq!(t.by_identity[ANONYMOUS].bytes_received, 50);
        assert!(t.nexuses.is_empty(), "none alive");
        assert_eq!(t.connections, 0);
    }
}
