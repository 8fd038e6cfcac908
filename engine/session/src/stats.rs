//! Statistics per nexus and per connection, readable while the session runs.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::types::ExchangeId;

/// Highest latency the histograms track (one hour), in nanoseconds.
const MAX_TRACKED_NS: u64 = 3_600_000_000_000;

pub(crate) fn new_histogram() -> Histogram<u64> {
    // Two significant digits; the histogram grows to the largest value recorded (up to
    // an hour: ~18 KiB for round trips of tens of milliseconds), so a connection that
    // never measured anything holds almost nothing. The precision is a constant, so
    // creation cannot fail.
    Histogram::new(2).expect("constant histogram precision")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // `record` grows the histogram to the value (saturating_record would clamp it to
    // the current top); the clamp keeps a wild clock from growing it past an hour.
    let _ = h.record(ns.clamp(1, MAX_TRACKED_NS));
}

/// Counters and histograms of one nexus (both directions).
#[derive(Clone, Default)]
pub struct NexusStats {
    /// Requests this side initiated.
    pub requests_sent: u64,
    /// Requests this side executed (first arrivals only; replays are not counted here).
    pub requests_executed: u64,
    /// Requests completed with a response or error, as initiator.
    pub requests_completed: u64,
    /// Request bytes sent (bodies, first transmissions and retries).
    pub bytes_sent: u64,
    /// Request bytes received.
    pub bytes_received: u64,
    /// Requests re-sent after a connection loss.
    pub retries: u64,
    /// Retried requests answered from the reply cache, as responder.
    pub replays: u64,
    /// Duplicate copies of requests still executing, ignored as responder.
    pub duplicates_ignored: u64,
    /// Cancellations requested, as initiator.
    pub cancels: u64,
    /// Misordered or out-of-range requests refused, as responder.
    pub misordered: u64,
    /// Connections lost while part of this nexus.
    pub connections_lost: u64,
    /// Per-exchange latency (initiator side: first send to completion), in nanoseconds.
    pub latency: HashMap<ExchangeId, Histogram<u64>>,
}

impl NexusStats {
    /// Adds `other`'s counters and histograms to these (totals of ended nexuses).
    pub fn absorb(&mut self, other: &NexusStats) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.requests_sent, other.requests_sent);
        add(&mut self.requests_executed, other.requests_executed);
        add(&mut self.requests_completed, other.requests_completed);
        add(&mut self.bytes_sent, other.bytes_sent);
        add(&mut self.bytes_received, other.bytes_received);
        add(&mut self.retries, other.retries);
        add(&mut self.replays, other.replays);
        add(&mut self.duplicates_ignored, other.duplicates_ignored);
        add(&mut self.cancels, other.cancels);
        add(&mut self.misordered, other.misordered);
        add(&mut self.connections_lost, other.connections_lost);
        for (exchange, h) in &other.latency {
            // Both resize themselves: adding cannot run out of range.
            let _ = self
                .latency
                .entry(*exchange)
                .or_insert_with(new_histogram)
                .add(h);
        }
    }

    pub(crate) fn record_latency(&mut self, exchange: ExchangeId, d: Duration) {
        record(
            self.latency.entry(exchange).or_insert_with(new_histogram),
            d,
        );
    }
}

/// Counters and the round-trip histogram of one connection.
#[derive(Clone)]
pub struct ConnectionStats {
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent (handed to the driver).
    pub bytes_out: u64,
    /// Heartbeat round-trip times, in nanoseconds.
    pub rtt: Histogram<u64>,
}

impl Default for ConnectionStats {
    fn default() -> Self {
        ConnectionStats {
            frames_in: 0,
            frames_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            rtt: new_histogram(),
        }
    }
}

impl ConnectionStats {
    /// Adds `other`'s counters and round trips to these (totals of closed connections).
    pub fn absorb(&mut self, other: &ConnectionStats) {
        self.frames_in = self.frames_in.saturating_add(other.frames_in);
        self.frames_out = self.frames_out.saturating_add(other.frames_out);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        let _ = self.rtt.add(&other.rtt);
    }

    pub(crate) fn record_rtt(&mut self, d: Duration) {
        record(&mut self.rtt, d);
    }
}

/// Frames and bytes summed over connections, closed ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionTotals {
    /// Connections counted.
    pub connections: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent (handed to the driver).
    pub bytes_out: u64,
}

impl ConnectionTotals {
    /// Counts one more connection.
    pub fn add(&mut self, c: &ConnectionStats) {
        self.connections += 1;
        self.frames_in = self.frames_in.saturating_add(c.frames_in);
        self.frames_out = self.frames_out.saturating_add(c.frames_out);
        self.bytes_in = self.bytes_in.saturating_add(c.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(c.bytes_out);
    }
}

/// Histograms print as count and a few percentiles, not as thousands of buckets.
struct Summary<'a>(&'a Histogram<u64>);

impl fmt::Debug for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.0;
        if h.is_empty() {
            return f.write_str("{}");
        }
        write!(
            f,
            "{{n: {}, p50: {}ns, p99: {}ns, max: {}ns}}",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max()
        )
    }
}

impl fmt::Debug for NexusStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut latency: Vec<_> = self.latency.iter().collect();
        latency.sort_by_key(|(e, _)| **e);
        f.debug_struct("NexusStats")
            .field("requests_sent", &self.requests_sent)
            .field("requests_executed", &self.requests_executed)
            .field("requests_completed", &self.requests_completed)
            .field("bytes_sent", &self.bytes_sent)
            .field("bytes_received", &self.bytes_received)
            .field("retries", &self.retries)
            .field("replays", &self.replays)
            .field("duplicates_ignored", &self.duplicates_ignored)
            .field("cancels", &self.cancels)
            .field("misordered", &self.misordered)
            .field("connections_lost", &self.connections_lost)
            .field(
                "latency",
                &latency
                    .iter()
                    .map(|(e, h)| (e.0, Summary(h)))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl fmt::Debug for ConnectionStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionStats")
            .field("frames_in", &self.frames_in)
            .field("frames_out", &self.frames_out)
            .field("bytes_in", &self.bytes_in)
            .field("bytes_out", &self.bytes_out)
            .field("rtt", &Summary(&self.rtt))
            .finish()
    }
}
