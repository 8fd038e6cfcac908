//! What a push or a pull did, told four ways: the human report on stdout, the iperf3-like
//! JSON file (`--json`), the block round-trip histogram file (`--histogram`) and a log
//! line with the job's figures.

use std::time::{SystemTime, UNIX_EPOCH};

use hawser_replicate::{AutoChoice, Report};

use crate::error::{CliError, io_err};
use crate::histogram::{write_hgrm_file, write_plot_file};
use crate::job_args::JobArgs;
use crate::progress::Interval;

/// The log target of job lines (start, end, failure), whichever module logs them.
pub(crate) const JOB_LOG: &str = "hawser::job";

/// What a push or a pull did.
#[derive(Debug)]
pub struct JobOutcome {
    /// The source's report.
    pub report: Report,
    /// Per-second intervals.
    pub intervals: Vec<Interval>,
    /// Bytes the source side wrote to the trunk (frames, after session compression):
    /// a push's client wrote them, a pull's client received them.
    pub session_bytes_out: u64,
    /// Requests the source side's session retried (connection losses).
    pub session_retries: u64,
    /// Would-change paths (dry run) the report does not list (a pull's report travels
    /// as one bounded response).
    pub unlisted_changes: u64,
}

impl JobOutcome {
    /// Trunk bytes over request bytes: what session compression saved (frame headers
    /// make it slightly above 1 for data that does not compress).
    pub fn compression_ratio(&self) -> f64 {
        self.session_bytes_out as f64 / self.report.wire_bytes.max(1) as f64
    }
}

/// Bytes per second (a zero duration counts as a nanosecond).
fn rate(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds.max(1e-9)
}

/// Prints the human report.
pub fn print_report(outcome: &JobOutcome, verbose: u8) {
    let report = &outcome.report;
    let seconds = report.duration.as_secs_f64();
    let rtt = report.block_rtt();
    println!(
        "{} files ({} up to date), {} dirs, {} symlinks; {} bytes, {} sent in {:.2} s: {:.1} MB/s",
        report.files,
        report.up_to_date,
        report.dirs,
        report.symlinks,
        report.bytes_total,
        report.bytes_sent,
        seconds,
        rate(report.bytes_sent, seconds) / 1e6
    );
    println!(
        "{} blocks, {} retried after a digest mismatch, {} deleted",
        report.blocks_sent, report.block_retries, report.deleted
    );
    // Requests retried after a connection died travel again: the trunk counts them twice.
    let ratio_is = if outcome.session_retries > 0 {
        "trunk/request ratio, retried requests included"
    } else {
        "compression ratio"
    };
    println!(
        "wire: {} bytes on the trunk for {} bytes of requests ({ratio_is} {:.2}), {} \
         requests retried by the session",
        outcome.session_bytes_out,
        report.wire_bytes,
        outcome.compression_ratio(),
        outcome.session_retries
    );
    if let Some(auto) = &report.auto_compress {
        println!("compress auto: {}", describe_auto(auto));
    }
    if report.blocks_sent > 0 {
        println!(
            "block round trip: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            rtt.p50 as f64 / 1e6,
            rtt.p90 as f64 / 1e6,
            rtt.p99 as f64 / 1e6,
            rtt.max as f64 / 1e6
        );
    }
    if verbose > 0 {
        for p in &report.deleted_paths {
            println!("deleted {p}");
        }
        for p in &report.would_change {
            println!("would change {p}");
        }
    } else if !report.would_change.is_empty() {
        println!(
            "{} entries would change (-v lists them)",
            report.would_change.len() as u64 + outcome.unlisted_changes
        );
    }
    if verbose > 0 && outcome.unlisted_changes > 0 {
        println!("... and {} more would change", outcome.unlisted_changes);
    }
}

/// The iperf3-like JSON report.
pub fn json_report(
    outcome: &JobOutcome,
    server: &str,
    dest: &str,
    job: &JobArgs,
) -> serde_json::Value {
    let r = &outcome.report;
    let seconds = r.duration.as_secs_f64();
    let intervals: Vec<_> = outcome
        .intervals
        .iter()
        .map(|i| {
            serde_json::json!({
                "start": i.start, "end": i.end, "seconds": i.end - i.start, "bytes": i.bytes,
                "bits_per_second": rate(i.bytes, i.end - i.start) * 8.0,
            })
        })
        .collect();
    let peak = outcome
        .intervals
        .iter()
        .map(|i| rate(i.bytes, i.end - i.start) * 8.0)
        .fold(0.0, f64::max);
    serde_json::json!({
        "start": {
            "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "connecting_to": server,
            "dest": dest,
            "connections": job.connections,
            "block_size": job.block_size,
            "options": {
                "verify": job.verify, "fsync": job.fsync, "delete": job.delete,
                "checksum": job.checksum, "dry_run": job.dry_run, "resume": job.resume,
            },
        },
        "intervals": intervals,
        "end": {
            "files": r.files, "up_to_date": r.up_to_date, "dirs": r.dirs, "symlinks": r.symlinks,
            "bytes_total": r.bytes_total, "bytes": r.bytes_sent, "wire_bytes": r.wire_bytes,
            "seconds": seconds, "bits_per_second": rate(r.bytes_sent, seconds) * 8.0,
            "peak_bits_per_second": peak, "compression_ratio": outcome.compression_ratio(),
            "blocks": r.blocks_sent, "retries": r.block_retries, "deleted": r.deleted,
            "session_wire_bytes": outcome.session_bytes_out,
            "session_retries": outcome.session_retries,
            "compress_auto": r.auto_compress.map(|a| serde_json::json!({
                "compress": a.compress, "raw_bytes_per_sec": a.raw_rate,
                "compressed_bytes_per_sec": a.compressed_rate,
                "compressor_busy": a.compressor_busy, "host_idle": a.host_idle,
                "lz4_bytes_per_sec": a.lz4_speed, "lz4_ratio": a.lz4_ratio,
                "decisions": a.decisions,
            })),
        },
        "latency_ns": r.block_rtt(),
    })
}

/// Writes the files `job` asks for: the JSON report (`--json`), the block round-trip
/// histogram (`--histogram`) and its percentile curve (`--plot`).
pub(crate) fn write_outputs(
    job: &JobArgs,
    outcome: &JobOutcome,
    server: &str,
    dest: &str,
) -> Result<(), CliError> {
    if let Some(path) = &job.json {
        let text = serde_json::to_string_pretty(&json_report(outcome, server, dest, job))
            .map_err(|e| CliError::Usage(e.to_string()))?;
        std::fs::write(path, text).map_err(io_err(path))?;
    }
    if let Some(path) = &job.histogram {
        write_hgrm_file(&outcome.report.block_rtt_ns, path).map_err(io_err(path))?;
    }
    if let Some(path) = &job.plot {
        let title = format!("{server}:{dest} block round trip by percentile");
        write_plot_file(
            &outcome.report.block_rtt_ns,
            &title,
            "block round trip",
            path,
        )?;
    }
    Ok(())
}

/// Logs the end of a `kind` job ("push", "pull") with `server` and its figures.
pub(crate) fn log_job_end(kind: &str, server: &str, outcome: &JobOutcome) {
    let r = &outcome.report;
    let seconds = r.duration.as_secs_f64();
    tracing::info!(
        target: JOB_LOG,
        job = kind,
        server,
        files = r.files,
        up_to_date = r.up_to_date,
        bytes_total = r.bytes_total,
        bytes_sent = r.bytes_sent,
        seconds,
        mb_per_sec = rate(r.bytes_sent, seconds) / 1e6,
        blocks = r.blocks_sent,
        block_retries = r.block_retries,
        session_retries = outcome.session_retries,
        deleted = r.deleted,
        "job ended"
    );
}

/// Logs that a `kind` job with `server` failed (the binary prints the error itself).
pub(crate) fn log_job_failed(kind: &str, server: &str, error: &CliError) {
    tracing::info!(target: JOB_LOG, job = kind, server, error = %error, "job failed");
}

/// What `--compress auto` chose and why, in one line.
fn describe_auto(auto: &AutoChoice) -> String {
    let verdict = match (auto.compress, auto.decisions, auto.raw_rate) {
        (true, 0, _) => "compressing, still measuring when the job ended",
        (false, 0, _) => "not compressing, still measuring when the job ended",
        (true, _, None) => "compressing: the link is the bottleneck (lz4 kept waiting for it)",
        (true, _, Some(_)) => "compressing: faster than uncompressed, measured",
        (false, _, _) => "not compressing: it would not pay",
    };
    let mut measured = Vec::new();
    if let Some(rate) = auto.raw_rate {
        measured.push(format!("uncompressed {:.1} MB/s", rate / 1e6));
    }
    if let Some(rate) = auto.compressed_rate {
        measured.push(format!("compressed {:.1} MB/s", rate / 1e6));
    }
    if let Some(busy) = auto.compressor_busy {
        measured.push(format!("lz4 busy {:.0}% of the time", busy * 100.0));
    }
    if let Some(idle) = auto.host_idle {
        measured.push(format!("host CPU {:.0}% idle", idle * 100.0));
    }
    measured.push(format!(
        "lz4 {:.1} MB/s on a sample, ratio {:.2}",
        auto.lz4_speed / 1e6,
        auto.lz4_ratio
    ));
    if auto.decisions > 1 {
        measured.push(format!(
            "decision {} of the job: the rate changed",
            auto.decisions
        ));
    }
    format!("{verdict} ({})", measured.join("; "))
}
