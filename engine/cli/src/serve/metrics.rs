//! The Prometheus metrics of a running `hawser serve` (`--metrics ADDR`): the server's
//! totals, each shard's counters, each identity's requests, bytes and jobs, and latency
//! histograms whose buckets are read off the session layer's HDR histograms. Built with
//! the `prometheus-client` crate on every scrape (a collector), written in the Prometheus
//! text format 0.0.4.

use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use hawser_runtime::Server;
use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use hawser_runtime::NexusStats;

use super::session_totals::{SessionTotals, session_totals};
use crate::job_tally::{JOB_TALLY, JobTotals};

/// Upper bounds of the latency buckets, in seconds: 50 µs to 30 s, about three per decade
/// (a LAN round trip to a stalled long-fat link).
const LATENCY_BUCKETS: [f64; 19] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The label set of a metric without labels.
const NO_LABELS: [(&str, &str); 0] = [];

/// The content type of the text format this endpoint writes.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What a scrape reads: the server, weakly (metrics do not keep a stopping server alive).
#[derive(Debug)]
struct ServerCollector {
    server: Weak<Server>,
    started_at: f64,
}

/// The metrics of `server`, encoded afresh on each call of [`Metrics::render`].
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// The metrics of `server`.
    pub(crate) fn new(server: &Arc<Server>) -> Self {
        let started_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ServerCollector {
            server: Arc::downgrade(server),
            started_at,
        }));
        Metrics { registry }
    }

    /// The text exposition of every metric now.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; a collector error leaves what was written.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// One counter or gauge family with a label set per sample.
fn family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(sample)?,
        }
    }
    Ok(())
}

/// A histogram family whose samples come from HDR histograms of nanoseconds.
fn histograms<'a, L: prometheus_client::encoding::EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, &'a Histogram<u64>)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        let (sum, count, buckets) = buckets_of(h);
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// The name of a backchannel exchange: the replication exchanges a pull calls by their
/// names (`replicate.block`), any other by its number.
fn exchange_name(exchange: u32) -> String {
    hawser_replicate::service::TARGET_EXCHANGES
        .iter()
        .find(|(kind, _)| kind.exchange_id() == exchange)
        .map_or_else(|| exchange.to_string(), |(_, name)| (*name).to_owned())
}

/// The sum (seconds), count and per-bucket counts of `h` at [`LATENCY_BUCKETS`]. HDR
/// keeps values to two significant digits, so a value near a bound may count in the
/// bucket beside it; the sum is the count times HDR's mean.
fn buckets_of(h: &Histogram<u64>) -> (f64, u64, Vec<(f64, u64)>) {
    let count = h.len();
    let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
    let mut below = 0u64;
    for bound in LATENCY_BUCKETS {
        let upto = h.count_between(0, (bound * 1e9) as u64).min(count);
        buckets.push((bound, upto.saturating_sub(below)));
        below = below.max(upto);
    }
    buckets.push((f64::INFINITY, count.saturating_sub(below)));
    (h.mean() * count as f64 / 1e9, count, buckets)
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(server) = self.server.upgrade() else {
            return Ok(());
        };
        let session = session_totals(&server.stats());
        let e = &mut encoder;
        self.encode_server(e, &session)?;
        encode_shards(e, &server.shard_stats())?;
        encode_identities(e, &session)?;
        encode_jobs(e, &JOB_TALLY.rows())?;
        histograms(
            e,
            "hawser_connection_rtt_seconds",
            "Heartbeat round trips of the server's connections, closed ones included",
            [(NO_LABELS, &session.connection_totals.rtt)],
        )?;
        histograms(
            e,
            "hawser_backchannel_call_seconds",
            "Latency of the server's calls to its clients (the blocks of pulls) by exchange, \
             from first send to answer",
            session
                .call_latency
                .iter()
                .map(|(exchange, h)| ([("exchange", exchange_name(*exchange))], h)),
        )
    }
}

impl ServerCollector {
    fn encode_server(
        &self,
        e: &mut DescriptorEncoder<'_>,
        s: &SessionTotals,
    ) -> Result<(), std::fmt::Error> {
        let one = |v: u64| [(NO_LABELS, v)];
        let mut start = e.encode_descriptor(
            "hawser_server_start_time_seconds",
            "When the server started, in seconds since the Unix epoch",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.started_at).encode(start.encode_family(&NO_LABELS)?)?;
        let nexuses = s.nexuses.values().sum();
        family(
            e,
            "hawser_server_nexuses",
            "Nexuses (client sessions) alive",
            MetricType::Gauge,
            one(nexuses),
        )?;
        family(
            e,
            "hawser_server_connections",
            "Session connections open",
            MetricType::Gauge,
            one(s.connections),
        )?;
        let c = &s.connection_totals;
        let counters = [
            (
                "hawser_server_frames_received",
                "Frames received on session connections",
                c.frames_in,
            ),
            (
                "hawser_server_frames_sent",
                "Frames sent on session connections",
                c.frames_out,
            ),
            (
                "hawser_server_connection_bytes_received",
                "Bytes received on session connections",
                c.bytes_in,
            ),
            (
                "hawser_server_connection_bytes_sent",
                "Bytes sent on session connections",
                c.bytes_out,
            ),
            (
                "hawser_server_connections_refused",
                "Connections refused: failed or throttled logins, connection, handshake and \
                 nexus limits",
                s.connections_refused,
            ),
            (
                "hawser_server_protocol_violations",
                "Connections closed for a protocol violation",
                s.protocol_violations,
            ),
        ];
        for (name, help, value) in counters {
            family(e, name, help, MetricType::Counter, one(value))?;
        }
        let l = &s.load;
        let gauges = [
            (
                "hawser_server_handshakes_in_progress",
                "Connections that have not authenticated yet",
                l.unauthenticated,
            ),
            (
                "hawser_server_sources",
                "Source addresses with an open connection",
                l.sources,
            ),
            (
                "hawser_server_held_creates",
                "Session creates held while the identity's previous session lives",
                l.held_creates,
            ),
            (
                "hawser_server_throttled_sources",
                "Source addresses with failed logins on record (answered later and later)",
                l.throttled.0,
            ),
            (
                "hawser_server_throttled_identities",
                "Identities with failed logins on record (answered later and later)",
                l.throttled.1,
            ),
        ];
        for (name, help, value) in gauges {
            family(e, name, help, MetricType::Gauge, one(value as u64))?;
        }
        Ok(())
    }
}

/// Each shard's counters (the shards' own: every connection of the process, the session
/// ones and the direct ones).
fn encode_shards(
    e: &mut DescriptorEncoder<'_>,
    shards: &[hawser_shards::StatsSnapshot],
) -> Result<(), std::fmt::Error> {
    type Read = fn(&hawser_shards::StatsSnapshot) -> u64;
    let counters: [(&str, &str, Read); 16] = [
        (
            "hawser_shard_bytes_received",
            "Bytes received on the shard's connections",
            |s| s.bytes_in,
        ),
        (
            "hawser_shard_bytes_sent",
            "Bytes sent on the shard's connections",
            |s| s.bytes_out,
        ),
        (
            "hawser_shard_receive_operations",
            "Receive completions carrying data",
            |s| s.recv_ops,
        ),
        (
            "hawser_shard_send_operations",
            "Send operations completed",
            |s| s.send_ops,
        ),
        ("hawser_shard_accepts", "Connections accepted", |s| {
            s.accepts
        }),
        (
            "hawser_shard_accept_pauses",
            "Times accepting paused for want of file descriptors",
            |s| s.accept_pauses,
        ),
        (
            "hawser_shard_completions",
            "io_uring completions processed",
            |s| s.completions,
        ),
        (
            "hawser_shard_wakeups",
            "Times the shard's loop came back from waiting in the kernel",
            |s| s.wakeups,
        ),
        (
            "hawser_shard_mesh_messages_received",
            "Messages received from other shards",
            |s| s.mesh_in,
        ),
        (
            "hawser_shard_mesh_messages_sent",
            "Messages sent to other shards",
            |s| s.mesh_out,
        ),
        (
            "hawser_shard_receive_starved",
            "Times a connection stopped reading because the buffer pool ran dry",
            |s| s.recv_starved,
        ),
        (
            "hawser_shard_file_operations",
            "File operations completed",
            |s| s.file_ops,
        ),
        (
            "hawser_shard_zero_copy_sends",
            "SEND_ZC operations issued",
            |s| s.send_zc,
        ),
        (
            "hawser_shard_zero_copy_sends_copied",
            "SEND_ZC operations the kernel completed by copying",
            |s| s.send_zc_copied,
        ),
        (
            "hawser_shard_shm_refused",
            "Shared-memory handshakes refused or failed",
            |s| s.shm_refused,
        ),
        (
            "hawser_shard_shm_corrupted",
            "Shared-memory connections closed for a corrupted ring",
            |s| s.shm_corrupted,
        ),
    ];
    let gauges: [(&str, &str, Read); 6] = [
        (
            "hawser_shard_connections",
            "Connections open on the shard",
            |s| s.connections,
        ),
        (
            "hawser_shard_shm_connections",
            "Shared-memory connections open on the shard",
            |s| s.shm_connections,
        ),
        (
            "hawser_shard_pool_free_buffers",
            "Buffers on the shard's free list",
            |s| s.pool_free,
        ),
        (
            "hawser_shard_pool_lent_buffers",
            "Buffers out as handles",
            |s| s.pool_lent,
        ),
        (
            "hawser_shard_pool_receive_buffers",
            "Buffers offered to the kernel for receive",
            |s| s.pool_in_recv_ring,
        ),
        (
            "hawser_shard_mesh_occupancy",
            "Messages waiting in the shard's inbound rings",
            |s| s.mesh_occupancy,
        ),
    ];
    let per_shard = |read: Read| {
        shards
            .iter()
            .enumerate()
            .map(move |(i, s)| ([("shard", i.to_string())], read(s)))
    };
    for (name, help, read) in counters {
        family(e, name, help, MetricType::Counter, per_shard(read))?;
    }
    for (name, help, read) in gauges {
        family(e, name, help, MetricType::Gauge, per_shard(read))?;
    }
    let mut parked = e.encode_descriptor(
        "hawser_shard_parked_seconds",
        "Time the shard spent waiting in the kernel",
        None,
        MetricType::Counter,
    )?;
    for (i, s) in shards.iter().enumerate() {
        let labels = [("shard", i.to_string())];
        ConstCounter::new(s.parked_ns as f64 / 1e9).encode(parked.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Each identity's nexuses and request counters.
fn encode_identities(
    e: &mut DescriptorEncoder<'_>,
    s: &SessionTotals,
) -> Result<(), std::fmt::Error> {
    family(
        e,
        "hawser_identity_nexuses",
        "Nexuses alive by identity (anonymous clients share one label)",
        MetricType::Gauge,
        s.nexuses
            .iter()
            .map(|(id, n)| ([("identity", id.as_str())], *n)),
    )?;
    type Read = fn(&NexusStats) -> u64;
    let counters: [(&str, &str, Read); 9] = [
        (
            "hawser_identity_requests",
            "Requests the server executed, by identity",
            |t| t.requests_executed,
        ),
        (
            "hawser_identity_request_bytes_received",
            "Request bytes received, by identity",
            |t| t.bytes_received,
        ),
        (
            "hawser_identity_request_bytes_sent",
            "Request bytes the server sent its clients (backchannel), by identity",
            |t| t.bytes_sent,
        ),
        (
            "hawser_identity_calls",
            "Requests the server sent its clients (backchannel), by identity",
            |t| t.requests_sent,
        ),
        (
            "hawser_identity_retries",
            "Backchannel requests re-sent after a connection loss, by identity",
            |t| t.retries,
        ),
        (
            "hawser_identity_replays",
            "Retried requests answered from the reply cache, by identity",
            |t| t.replays,
        ),
        (
            "hawser_identity_duplicates_ignored",
            "Copies of requests still executing that were ignored, by identity",
            |t| t.duplicates_ignored,
        ),
        (
            "hawser_identity_misordered",
            "Misordered or out-of-range requests refused, by identity",
            |t| t.misordered,
        ),
        (
            "hawser_identity_connections_lost",
            "Connections lost while part of a nexus, by identity",
            |t| t.connections_lost,
        ),
    ];
    for (name, help, read) in counters {
        let samples = s
            .by_identity
            .iter()
            .map(|(id, t)| ([("identity", id.as_str())], read(t)));
        family(e, name, help, MetricType::Counter, samples)?;
    }
    Ok(())
}

/// Each identity's jobs by kind, from the job log.
fn encode_jobs(
    e: &mut DescriptorEncoder<'_>,
    rows: &[((String, String), JobTotals)],
) -> Result<(), std::fmt::Error> {
    let labels = |id: &str, kind: &str| [("identity", id.to_owned()), ("kind", kind.to_owned())];
    type Read = fn(&JobTotals) -> u64;
    let counters: [(&str, &str, Read); 3] = [
        (
            "hawser_identity_jobs_started",
            "Jobs started, by identity and kind",
            |t| t.started,
        ),
        (
            "hawser_identity_job_bytes",
            "Bytes of file data jobs moved, by identity and kind",
            |t| t.bytes,
        ),
        (
            "hawser_identity_job_files",
            "Files jobs wrote or sent, by identity and kind",
            |t| t.files,
        ),
    ];
    for (name, help, read) in counters {
        let samples = rows
            .iter()
            .map(|((id, kind), t)| (labels(id, kind), read(t)));
        family(e, name, help, MetricType::Counter, samples)?;
    }
    let ended = rows.iter().flat_map(|((id, kind), t)| {
        [("ok", t.finished), ("failed", t.failed)].map(|(outcome, n)| {
            let [identity, kind] = labels(id, kind);
            ([identity, kind, ("outcome", outcome.to_owned())], n)
        })
    });
    family(
        e,
        "hawser_identity_jobs_ended",
        "Jobs ended, by identity, kind and outcome (ok, failed)",
        MetricType::Counter,
        ended,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_exchanges_are_named() {
        use hawser_replicate::proto::MessageKind;
        assert_eq!(
            exchange_name(MessageKind::Block.exchange_id()),
            "replicate.block"
        );
        assert_eq!(exchange_name(7), "7");
    }

    #[test]
    fn hdr_histograms_become_disjoint_buckets_that_add_up_to_the_count() {
        let mut h = Histogram::<u64>::new(2).unwrap();
        for ns in [30_000u64, 70_000, 2_000_000, 2_000_000, 120_000_000_000] {
            h.record(ns).unwrap();
        }
        let (sum, count, buckets) = buckets_of(&h);
        assert_eq!(count, 5);
        assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 5);
        assert_eq!(buckets[0], (0.000_05, 1), "30 µs");
        assert_eq!(buckets[1], (0.000_1, 1), "70 µs");
        assert_eq!(buckets[5], (0.002_5, 2), "2 ms twice");
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)), "two minutes");
        assert!((sum - 120.004).abs() < 1.5, "{sum}");
    }
}
