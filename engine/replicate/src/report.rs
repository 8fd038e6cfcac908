//! What a job did, as the source reports it.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::error::EntryFailure;
use super::proto::{FinishReport, JobCounters, ProtoError, PullReport};

/// The outcome of a replication job.
#[derive(Clone)]
pub struct Report {
    /// Regular files written on the target (or that would be, in a dry run).
    pub files: u64,
    /// Entries already up to date.
    pub up_to_date: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Total size of the regular files considered.
    pub bytes_total: u64,
    /// File data bytes sent (blocks and inline data, retries included).
    pub bytes_sent: u64,
    /// Request body bytes sent, all messages included.
    pub wire_bytes: u64,
    /// Block messages sent, retries included.
    pub blocks_sent: u64,
    /// Blocks sent again after a digest mismatch.
    pub block_retries: u64,
    /// Entries deleted on the target (`--delete`).
    pub deleted: u64,
    /// The first deleted paths (all of them up to the listing bound).
    pub deleted_paths: Vec<String>,
    /// Dry run: the paths that would change.
    pub would_change: Vec<String>,
    /// Wall time from the first request to the last answer.
    pub duration: Duration,
    /// Compression by the task itself: 1.0, since blocks travel as they are and lz4
    /// happens per session frame (the mover reports that ratio from the session's byte
    /// counts, see `mover::cli::JobOutcome::compression_ratio`). Kept because the pull
    /// report carries it.
    pub compression_ratio: f64,
    /// What `--compress auto` measured and chose (`None`: another policy, or the job
    /// ended before the choice).
    pub auto_compress: Option<super::AutoChoice>,
    /// Block round trips (send to acknowledgement), in nanoseconds.
    pub block_rtt_ns: Histogram<u64>,
    /// Buffers the block pool allocated: bounded by the window, not the data size.
    pub buffers_allocated: u64,
    /// The target's own counters.
    pub target: Option<FinishReport>,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The histogram's buckets would drown everything else: show its percentiles.
        f.debug_struct("Report")
            .field("files", &self.files)
            .field("up_to_date", &self.up_to_date)
            .field("dirs", &self.dirs)
            .field("symlinks", &self.symlinks)
            .field("bytes_total", &self.bytes_total)
            .field("bytes_sent", &self.bytes_sent)
            .field("wire_bytes", &self.wire_bytes)
            .field("blocks_sent", &self.blocks_sent)
            .field("block_retries", &self.block_retries)
            .field("deleted", &self.deleted)
            .field("deleted_paths", &self.deleted_paths)
            .field("would_change", &self.would_change)
            .field("duration", &self.duration)
            .field("compression_ratio", &self.compression_ratio)
            .field("block_rtt", &self.block_rtt())
            .field("buffers_allocated", &self.buffers_allocated)
            .field("target", &self.target)
            .finish()
    }
}

/// Latency percentiles in nanoseconds (serialised as `p50`, `p90`, `p99`, `p999`, `max`,
/// the `latency_ns` object of every hawser JSON report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of a histogram of nanoseconds; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

impl Default for Report {
    fn default() -> Self {
        Self::new()
    }
}

impl Report {
    /// A report of nothing done yet.
    pub fn new() -> Self {
        Report {
            files: 0,
            up_to_date: 0,
            dirs: 0,
            symlinks: 0,
            bytes_total: 0,
            bytes_sent: 0,
            wire_bytes: 0,
            blocks_sent: 0,
            block_retries: 0,
            deleted: 0,
            deleted_paths: Vec::new(),
            would_change: Vec::new(),
            duration: Duration::ZERO,
            compression_ratio: 1.0,
            // 1 ns .. 1 hour, 3 significant digits: these bounds are valid constants.
            auto_compress: None,
            block_rtt_ns: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("constant, valid histogram bounds"),
            buffers_allocated: 0,
            target: None,
        }
    }

    /// Block round-trip latency percentiles.
    pub fn block_rtt(&self) -> Percentiles {
        Percentiles::of(&self.block_rtt_ns)
    }

    /// Average data rate in bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.bytes_sent as f64 / secs
        } else {
            0.0
        }
    }

    /// The counters that travel in a [`PullReport`].
    pub fn counters(&self) -> JobCounters {
        JobCounters {
            files: self.files,
            up_to_date: self.up_to_date,
            dirs: self.dirs,
            symlinks: self.symlinks,
            bytes_total: self.bytes_total,
            bytes_sent: self.bytes_sent,
            wire_bytes: self.wire_bytes,
            blocks_sent: self.blocks_sent,
            block_retries: self.block_retries,
            deleted: self.deleted,
            duration: self.duration,
            buffers_allocated: self.buffers_allocated,
            compression_ratio: self.compression_ratio,
        }
    }

    /// The pull report that carries this report, `failures` and the server's
    /// `session_retries` back to the puller.
    pub fn to_pull_report(&self, failures: Vec<EntryFailure>, session_retries: u64) -> PullReport {
        PullReport {
            counters: self.counters(),
            target: self.target,
            block_rtt_buckets: self
                .block_rtt_ns
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            would_change: self.would_change.clone(),
            deleted_paths: self.deleted_paths.clone(),
            failures,
            unlisted_failures: 0,
            unlisted_changes: 0,
            session_retries,
        }
    }

    /// The report a [`PullReport`] carries; its latency buckets must fit the histogram's
    /// bounds (1 ns to an hour).
    pub fn from_pull_report(pulled: &PullReport) -> Result<Report, ProtoError> {
        let c = &pulled.counters;
        let mut report = Report::new();
        report.files = c.files;
        report.up_to_date = c.up_to_date;
        report.dirs = c.dirs;
        report.symlinks = c.symlinks;
        report.bytes_total = c.bytes_total;
        report.bytes_sent = c.bytes_sent;
        report.wire_bytes = c.wire_bytes;
        report.blocks_sent = c.blocks_sent;
        report.block_retries = c.block_retries;
        report.deleted = c.deleted;
        report.duration = c.duration;
        report.buffers_allocated = c.buffers_allocated;
        report.compression_ratio = c.compression_ratio;
        report.target = pulled.target;
        report.would_change = pulled.would_change.clone();
        report.deleted_paths = pulled.deleted_paths.clone();
        for &(value, count) in &pulled.block_rtt_buckets {
            // Values beyond the histogram's bounds are not ours to invent: reject them.
            report
                .block_rtt_ns
                .record_n(value, count)
                .map_err(|_| ProtoError::BadValue {
                    field: "latency bucket",
                    value: u32::try_from(value).unwrap_or(u32::MAX),
                })?;
        }
        Ok(report)
    }
}
