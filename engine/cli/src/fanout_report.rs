//! What a push to several targets did: each target's report (as a push to one prints
//! it) or why it failed, then the totals and the shared reads; the JSON file lists the
//! targets' iperf3-like reports, and the latency files merge every target's block round
//! trips.

use hawser_replicate::{EntryFailure, FanoutReport};
use hdrhistogram::Histogram;

use crate::error::{CliError, io_err};
use crate::histogram::{write_hgrm_file, write_plot_file};
use crate::job_args::JobArgs;
use crate::report::{JobOutcome, json_report, print_report};
use crate::units::decimal_bytes;

/// What became of one target of a push to several.
#[derive(Debug)]
pub struct TargetOutcome {
    /// The target as typed (ADDRESS:DEST).
    pub spec: String,
    /// The server reached, once connected.
    pub server: Option<String>,
    /// The destination beneath its root.
    pub dest: String,
    /// The job's figures, when it ran (one with failed entries too).
    pub outcome: Option<JobOutcome>,
    /// Why the target failed, if it did.
    pub failure: Option<String>,
    /// The entries it refused or failed, each with its path and why.
    pub failed_entries: Vec<EntryFailure>,
}

impl TargetOutcome {
    /// A target not run yet.
    pub fn new(spec: &str) -> Self {
        TargetOutcome {
            spec: spec.to_string(),
            server: None,
            dest: String::new(),
            outcome: None,
            failure: None,
            failed_entries: Vec::new(),
        }
    }
}

/// The line that closes the report: how many targets completed, the data sent in all
/// and what the source was read for all of them.
pub(crate) fn totals_line(outcomes: &[TargetOutcome], shared: Option<&FanoutReport>) -> String {
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let reports = outcomes.iter().filter_map(|o| o.outcome.as_ref());
    let (files, sent) = reports.fold((0u64, 0u64), |(f, b), o| {
        (f + o.report.files, b.saturating_add(o.report.bytes_sent))
    });
    let mut line = format!(
        "{} targets: {} completed, {failed} failed; {files} files and {} sent in all",
        outcomes.len(),
        outcomes.len() - failed,
        decimal_bytes(sent)
    );
    if let Some(shared) = shared {
        line.push_str(&format!(
            "; source read once for all: {} in {} blocks, {:.2} s",
            decimal_bytes(shared.bytes_read),
            shared.pieces_read,
            shared.duration.as_secs_f64()
        ));
    }
    line
}

/// Prints each target's report, or why it failed, then the totals.
pub fn print_fanout_report(outcomes: &[TargetOutcome], shared: Option<&FanoutReport>, verbose: u8) {
    for (i, target) in outcomes.iter().enumerate() {
        // The server reached, when the target names it otherwise (a host name).
        let reached = target
            .server
            .as_ref()
            .filter(|server| !target.spec.starts_with(server.as_str()))
            .map(|server| format!(" (at {server})"))
            .unwrap_or_default();
        println!(
            "target {} of {}: {}{reached}",
            i + 1,
            outcomes.len(),
            target.spec
        );
        if let Some(outcome) = &target.outcome {
            print_report(outcome, verbose);
        }
        for failure in &target.failed_entries {
            println!("failed: {failure}");
        }
        if let Some(why) = &target.failure {
            println!("target failed: {why}");
        }
    }
    println!("{}", totals_line(outcomes, shared));
}

/// The JSON report: each target's (as `--json` of a push to one writes it, with its
/// target and error), and the reads they shared.
pub(crate) fn fanout_json(
    outcomes: &[TargetOutcome],
    shared: Option<&FanoutReport>,
    job: &JobArgs,
) -> serde_json::Value {
    let targets: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|t| {
            let server = t.server.as_deref().unwrap_or_default();
            let mut json = match &t.outcome {
                Some(outcome) => json_report(outcome, server, &t.dest, job),
                None => serde_json::json!({}),
            };
            json["target"] = t.spec.clone().into();
            json["ok"] = t.failure.is_none().into();
            if let Some(why) = &t.failure {
                json["error"] = why.clone().into();
            }
            json
        })
        .collect();
    serde_json::json!({
        "targets": targets,
        "fanout": shared.map(|s| serde_json::json!({
            "bytes_read": s.bytes_read,
            "blocks_read": s.pieces_read,
            "buffers_allocated": s.buffers_allocated,
            "most_blocks_held": s.most_blocks_held,
            "seconds": s.duration.as_secs_f64(),
        })),
    })
}

/// Writes the files `job` asks for: the JSON report (`--json`), and every target's
/// block round trips together (`--histogram`, `--plot`).
pub fn write_fanout_outputs(
    job: &JobArgs,
    outcomes: &[TargetOutcome],
    shared: Option<&FanoutReport>,
) -> Result<(), CliError> {
    if let Some(path) = &job.json {
        let text = serde_json::to_string_pretty(&fanout_json(outcomes, shared, job))
            .map_err(|e| CliError::Usage(e.to_string()))?;
        std::fs::write(path, text).map_err(io_err(path))?;
    }
    if job.histogram.is_none() && job.plot.is_none() {
        return Ok(());
    }
    let mut merged = Histogram::<u64>::new(3).map_err(|e| CliError::Usage(e.to_string()))?;
    for outcome in outcomes.iter().filter_map(|o| o.outcome.as_ref()) {
        merged
            .add(&outcome.report.block_rtt_ns)
            .map_err(|e| CliError::Usage(format!("merging the targets' round trips: {e}")))?;
    }
    if let Some(path) = &job.histogram {
        write_hgrm_file(&merged, path).map_err(io_err(path))?;
    }
    if let Some(path) = &job.plot {
        let title = format!("{} targets: block round trip by percentile", outcomes.len());
        write_plot_file(&merged, &title, "block round trip", path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_count_targets_and_say_what_was_read_once() {
        let done = TargetOutcome {
            outcome: Some(JobOutcome {
                report: {
                    let mut r = hawser_replicate::Report::new();
                    r.files = 3;
                    r.bytes_sent = 2_000_000;
                    r
                },
                intervals: Vec::new(),
                session_bytes_out: 0,
                session_retries: 0,
                unlisted_changes: 0,
            }),
            ..TargetOutcome::new("a:d")
        };
        let failed = TargetOutcome {
            failure: Some("cannot connect".into()),
            ..TargetOutcome::new("b:d")
        };
        let line = totals_line(&[done, failed], None);
        assert_eq!(
            line,
            "2 targets: 1 completed, 1 failed; 3 files and 2.00 MB sent in all"
        );
    }

    #[test]
    fn the_json_names_each_target_and_its_error() {
        let failed = TargetOutcome {
            failure: Some("refused".into()),
            ..TargetOutcome::new("b:d")
        };
        let json = fanout_json(&[failed], None, &crate::job_args::tests::job(&[]));
        assert_eq!(json["targets"][0]["target"], "b:d");
        assert_eq!(json["targets"][0]["ok"], false);
        assert_eq!(json["targets"][0]["error"], "refused");
        assert!(json["fanout"].is_null());
    }
}
