//! `hawser push SRC... ADDRESS:DEST ADDRESS:DEST...`: the same sources replicated to
//! several targets in one run. Every target is connected first, each over its own
//! trunk; one that cannot be reached is reported and the others go on. One walk and one
//! read of each source block then feed every target's job ([`Fanout`]); a target that
//! fails later ends alone. The report gives each target's figures or why it failed, and
//! the run fails, naming each failed target, if any did.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hawser_replicate::service::{PipelineTransport, Progress};
use hawser_replicate::{Fanout, FanoutReport, ReplicateError, TransportError};
use hawser_runtime::{Address, Client};

use crate::connect::{connect, first_reachable, forget_nexus_record};
use crate::error::{CliError, io_err};
use crate::fanout_report::{TargetOutcome, print_fanout_report, write_fanout_outputs};
use crate::progress::Ticker;
use crate::push::PushArgs;
use crate::push_targets::PushPaths;
use crate::remote::{host_of, parse_remote};
use crate::report::{JOB_LOG, JobOutcome, log_job_end};
use crate::serve::access::shown_address;
use crate::window::window_for;

/// A target reached: its client and where the job goes.
struct Connected {
    /// Its place among the targets as given.
    index: usize,
    addr: Address,
    server: String,
    dest: String,
    client: Client,
    rtt: Duration,
}

/// Parses `spec` (ADDRESS:DEST), finds the address that answers and connects to it.
fn connect_target(
    index: usize,
    spec: &str,
    args: &PushArgs,
    block_size: u32,
) -> Result<Connected, CliError> {
    let (candidates, dest) = parse_remote(spec)?;
    let host = host_of(spec, &candidates);
    let addr = first_reachable(&host, &candidates)?;
    let (client, rtt) = connect(&addr, &host, &args.job, block_size)?;
    Ok(Connected {
        index,
        server: shown_address(&addr),
        addr,
        dest,
        client,
        rtt,
    })
}

/// What to tell about a target's job that ended with `error`: why, with what to do when
/// it can be continued.
fn failure_text(error: &ReplicateError) -> String {
    match error {
        ReplicateError::Transport(TransportError::Disconnected | TransportError::Other(_)) => {
            format!(
                "{error}; the target stopped answering: run the same push again with \
                 --resume to continue where it stopped"
            )
        }
        other => other.to_string(),
    }
}

/// `hawser push` to the several targets of `paths`.
pub fn push_to_many(args: &PushArgs, paths: PushPaths) -> Result<(), CliError> {
    let PushPaths { sources, targets } = paths;
    for s in &sources {
        std::fs::symlink_metadata(s).map_err(io_err(s))?;
    }
    let mut config = args.job.source_config(String::new())?;
    let stall_timeout = args.job.stall_timeout()?;
    let block_size = config.options.block_size;

    let mut outcomes: Vec<TargetOutcome> = targets
        .iter()
        .map(|spec| TargetOutcome::new(spec))
        .collect();
    let mut connected = Vec::new();
    for (index, spec) in targets.iter().enumerate() {
        match connect_target(index, spec, args, block_size) {
            Ok(target) => connected.push(target),
            Err(e) => {
                tracing::warn!("target {spec}: {e}; the other targets go on");
                outcomes[index].failure = Some(e.to_string());
            }
        }
    }
    let shared = if connected.is_empty() {
        None
    } else {
        // One window for all: the farthest target's.
        config.window_blocks = connected
            .iter()
            .map(|t| window_for(&args.job, t.rtt, block_size))
            .max()
            .unwrap_or(1);
        for t in &connected {
            tracing::info!(
                target: JOB_LOG,
                job = "push",
                server = t.server,
                addr = %t.addr,
                dest = t.dest,
                sources = sources.len(),
                targets = targets.len(),
                connections = args.job.connections,
                block_size,
                window = config.window_blocks,
                rtt_ms = t.rtt.as_secs_f64() * 1e3,
                "job started"
            );
        }
        Some(run_connected(
            args,
            config,
            &sources,
            connected,
            stall_timeout,
            &mut outcomes,
        )?)
    };
    if !args.job.quiet {
        print_fanout_report(&outcomes, shared.as_ref(), args.job.verbose);
    }
    write_fanout_outputs(&args.job, &outcomes, shared.as_ref())?;
    let failed: Vec<(String, String)> = outcomes
        .iter()
        .filter_map(|o| Some((o.spec.clone(), o.failure.clone()?)))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::TargetsFailed {
            failed,
            of: outcomes.len(),
        })
    }
}

/// Runs the job to the `connected` targets, filling in their `outcomes`; the shared
/// reader's figures. `Err` when the source failed (every target's job ended with it).
fn run_connected(
    args: &PushArgs,
    config: hawser_replicate::SourceConfig,
    sources: &[PathBuf],
    connected: Vec<Connected>,
    stall_timeout: Duration,
    outcomes: &mut [TargetOutcome],
) -> Result<FanoutReport, CliError> {
    let dests: Vec<String> = connected.iter().map(|t| t.dest.clone()).collect();
    let compress_threads = config.compress_threads;
    let run = Fanout::new(config, &dests, sources).and_then(|fanout| {
        let (files, bytes) = fanout.file_totals();
        // One bar over every target: each moves the whole set.
        let progress = Arc::new(Progress::default());
        let n = connected.len() as u64;
        progress.set_totals(files.saturating_mul(n), bytes.saturating_mul(n));
        let ticker = Ticker::start(Arc::clone(&progress), args.job.quiet, "sent");
        let mut transports: Vec<PipelineTransport<'_>> = connected
            .iter()
            .map(|t| {
                PipelineTransport::new(&t.client, Arc::clone(&progress))
                    .stall_timeout(stall_timeout)
                    .rate_limit(args.job.rate)
                    .compress_threads(compress_threads)
            })
            .collect();
        let report = fanout.run(&mut transports);
        drop(transports);
        let intervals = ticker.finish();
        report.map(|report| (report, intervals))
    });
    let (mut report, intervals) = match run {
        Ok(done) => done,
        Err(e) => {
            for t in connected {
                t.client.close();
                forget_nexus_record(&t.addr, &args.job);
            }
            return Err(e.into());
        }
    };
    let results = std::mem::take(&mut report.targets);
    for (t, result) in connected.into_iter().zip(results) {
        let stats = t.client.stats();
        let outcome = |report| JobOutcome {
            report,
            intervals: intervals.clone(),
            // Every connection's, those that died during the job included.
            session_bytes_out: stats.totals.bytes_out,
            session_retries: stats.nexuses.iter().map(|(_, n)| n.retries).sum(),
            unlisted_changes: 0,
        };
        let target = &mut outcomes[t.index];
        target.server = Some(t.server.clone());
        target.dest = t.dest.clone();
        match result {
            Ok(r) => target.outcome = Some(outcome(r)),
            Err(ReplicateError::Incomplete { failures, report }) => {
                target.failure = Some(format!(
                    "{} entries failed, first: {}",
                    failures.len(),
                    failures
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ));
                target.failed_entries = failures;
                target.outcome = Some(outcome(*report));
            }
            Err(e) => target.failure = Some(failure_text(&e)),
        }
        match (&target.outcome, &target.failure) {
            (Some(o), None) => log_job_end("push", &t.server, o),
            (_, Some(why)) => {
                tracing::info!(target: JOB_LOG, job = "push", server = t.server, error = %why, "job failed")
            }
            (None, None) => {}
        }
        t.client.close();
        forget_nexus_record(&t.addr, &args.job);
    }
    Ok(report)
}
