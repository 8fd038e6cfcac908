//! What `hawser bench --mode rpc|bulk|raw` measured, as JSON (`--json`) or the human
//! summary; the latency distribution goes to `--histogram FILE` as `.hgrm` text.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::bench::args::{BenchArgs, CallerKind};
use crate::histogram::{write_hgrm_file, write_plot_file};

/// The measured figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// `rpc` or `bulk`.
    pub mode: &'static str,
    /// Request size in bytes.
    pub size: usize,
    /// Calls in flight.
    pub pipeline: usize,
    /// Connections in each nexus's trunk.
    pub connections: usize,
    /// Client nexuses measured at once.
    pub nexuses: usize,
    /// Shards in this process.
    pub shards: usize,
    /// Who issued the calls.
    pub caller: CallerKind,
    /// Microseconds the shards busy-polled before sleeping (0: not at all).
    pub busy_poll_us: u64,
    /// TCP congestion control asked for (`None`: the system's).
    pub congestion: Option<String>,
    /// Raw sinks answered (`--answers`).
    pub answers: bool,
    /// Digest on.
    pub digest: bool,
    /// Compression offered.
    pub compress: bool,
    /// Seconds measured.
    pub duration_sec: f64,
    /// Exchanges completed in the measured interval.
    pub exchanges: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Exchanges per second.
    pub exchanges_per_sec: f64,
    /// Payload bytes (requests + responses) per second.
    pub throughput_bytes_per_sec: f64,
    /// Per-call latency percentiles, nanoseconds.
    pub latency_ns: Latency,
    /// Retries the client made (connection losses).
    pub retries: u64,
    /// Payload bytes completed per interval of [`INTERVAL`], from the first call (the
    /// warm-up included, so a ramp-up shows), as iperf3's `intervals`.
    pub intervals: Vec<BenchInterval>,
    /// Per-call latencies, nanoseconds.
    #[serde(skip)]
    pub(crate) histogram: Histogram<u64>,
}

/// How often [`BenchReport::intervals`] are sampled.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Bytes completed in one interval (seconds since the first call).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BenchInterval {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Payload bytes (requests + responses) of the exchanges completed in it.
    pub bytes: u64,
    /// `bytes` as a rate, bits per second.
    pub bits_per_second: f64,
}

impl BenchReport {
    /// The latency histogram (nanoseconds).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }
}

/// Latency percentiles in nanoseconds, the same shape as every hawser report's.
pub use hawser_replicate::Percentiles as Latency;

/// A rate in bytes per second, in decimal units.
fn human_bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB/s", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB/s", b / 1e6)
    } else {
        format!("{:.1} kB/s", b / 1e3)
    }
}

/// Nanoseconds as microseconds.
fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

/// Prints the report as the human summary.
pub fn print_summary(r: &BenchReport) {
    if r.mode == "raw" {
        println!(
            "hawser bench raw: shards only, {} connections across {} shards, xxh3 {}{}: {} in {:.2} s",
            r.connections,
            r.shards,
            if r.digest { "on" } else { "off" },
            if r.answers { ", answering" } else { "" },
            human_bytes(r.throughput_bytes_per_sec),
            r.duration_sec
        );
        return;
    }
    println!(
        "hawser bench {}: {} B requests, {} in flight ({} caller, busy poll {} µs), {} nexus(es) of {} connections, {} shards, digest {}, compress {}",
        r.mode,
        r.size,
        r.pipeline,
        match r.caller {
            CallerKind::Shard => "on-shard",
            CallerKind::Thread => "thread",
        },
        r.busy_poll_us,
        r.nexuses,
        r.connections,
        r.shards,
        if r.digest { "on" } else { "off" },
        if r.compress { "on" } else { "off" },
    );
    println!(
        "  {} exchanges in {:.2} s ({} failed, {} retries): {:.0} exchanges/s, {}",
        r.exchanges,
        r.duration_sec,
        r.errors,
        r.retries,
        r.exchanges_per_sec,
        human_bytes(r.throughput_bytes_per_sec)
    );
    let l = r.latency_ns;
    println!(
        "  latency p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        micros(l.p50),
        micros(l.p90),
        micros(l.p99),
        micros(l.p999),
        micros(l.max)
    );
}

/// Writes `report` where `args` ask: the histogram file, then JSON or the summary on
/// stdout. The error says what failed.
pub(crate) fn output(report: &BenchReport, args: &BenchArgs) -> Result<(), String> {
    if let Some(path) = &args.histogram {
        write_hgrm_file(&report.histogram, path)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        write_plot_file(
            &report.histogram,
            "hawser bench: latency by percentile",
            "latency",
            path,
        )
        .map_err(|e| e.to_string())?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(report).map_err(|e| e.to_string())?
        );
    } else {
        print_summary(report);
    }
    Ok(())
}
