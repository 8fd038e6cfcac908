//! `hawser push SRC... ADDRESS:DEST`: replicates local files and directory trees to a
//! `hawser serve` target (to several in one run: [`crate::push_fanout`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hawser_replicate::service::{PipelineTransport, Progress};
use hawser_replicate::{Source, SourceConfig, run};
use hawser_runtime::Client;

use crate::connect::{connect, first_reachable, forget_nexus_record};
use crate::error::{CliError, io_err};
use crate::job_args::JobArgs;
use crate::progress::Ticker;
use crate::push_targets::split_push_paths;
use crate::remote::{host_of, parse_remote};
use crate::report::{
    JOB_LOG, JobOutcome, log_job_end, log_job_failed, print_report, write_outputs,
};
use crate::serve::access::shown_address;
use crate::window::window_for;

/// Arguments of `hawser push`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Replicate files and directory trees to a `hawser serve` target",
    long_about = "Replicate files and directory trees to a `hawser serve` target. DEST is \
relative to the server's --root (empty or '/' is the root itself). As with cp, scp and \
rsync, one FILE pushed to a DEST that is not an existing directory is written as DEST \
(`hawser push notes.txt host:notes-v2.txt`); an existing directory, or a DEST ending in \
'/', receives the sources inside under their own names (missing directories are made). A \
SRC ending in '/' sends the directory's contents, otherwise the directory itself, as rsync \
does. Blocks travel \
pipelined over --connections trunked connections; every file is hashed end to end and \
renamed into place only when complete. An interrupted push continues with --resume.\n\n\
Several targets (`hawser push ./dataset hostA:replica hostB:replica`) get the same job in \
one run: the last PATH is a target, and so is each PATH just before it that names a server \
(a ':' before any '/', as rsync decides; write ./a:b for a local file named a:b). Each \
source block is read once and sent to every target that wants it; each target has its \
own resume, figures and outcome. A target that fails (unreachable, refused, gone) does \
not stop the others: the report gives each target's figures or why it failed, and the \
run exits non-zero if any failed (run it again with --resume for those). --window then \
bounds the blocks in memory for all targets together, so a slow target holds the others \
back instead of letting memory grow; --rate caps each target.",
    override_usage = "hawser push [OPTIONS] SRC... ADDRESS:DEST [ADDRESS:DEST...]",
    after_help = "Examples:\n  hawser serve --root /srv/replica\n  hawser push ./dataset host:/dataset\n  hawser push --resume --connections 16 a b 10.0.0.2:9000:backup\n  hawser push ./dataset hostA:/dataset hostB:/dataset"
)]
pub struct PushArgs {
    /// Sources, then one or more targets ADDRESS:DEST: HOST[:PORT]:DEST (port 8415 by
    /// default; tcp://HOST:PORT:DEST too), unix:///PATH:DEST (a Unix socket),
    /// shm://NAME:DEST or shm:///PATH:DEST (shared memory).
    ///
    /// The last PATH is a target, the first a source; each PATH just before the last
    /// that names a server (a ':' before any '/') is a target too.
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    pub paths: Vec<String>,
    /// Job options.
    #[command(flatten)]
    pub job: JobArgs,
}

/// Runs one job from `sources` to `dest` on the server behind `client`.
pub fn push_with(
    client: &Client,
    sources: &[PathBuf],
    config: SourceConfig,
    quiet: bool,
    stall_timeout: Duration,
    rate: Option<u64>,
) -> Result<JobOutcome, CliError> {
    let compress_threads = config.compress_threads;
    let source = Source::new(config, sources)?;
    let progress = Arc::new(Progress::default());
    let (files, bytes) = source.file_totals();
    progress.set_totals(files, bytes);
    let ticker = Ticker::start(Arc::clone(&progress), quiet, "sent");
    let mut transport = PipelineTransport::new(client, progress)
        .stall_timeout(stall_timeout)
        .rate_limit(rate)
        .compress_threads(compress_threads);
    let result = run(source, &mut transport);
    let intervals = ticker.finish();
    let stats = client.stats();
    Ok(JobOutcome {
        report: result?,
        intervals,
        // Every connection's, those that died during the job included.
        session_bytes_out: stats.totals.bytes_out,
        session_retries: stats.nexuses.iter().map(|(_, n)| n.retries).sum(),
        unlisted_changes: 0,
    })
}

/// Where a push goes: the server reached (the first of its addresses that answers), the
/// name certificates know it by, the destination, and the sources.
pub(crate) struct PushPlaces {
    pub(crate) addr: hawser_runtime::Address,
    pub(crate) host: String,
    pub(crate) server: String,
    pub(crate) dest: String,
    pub(crate) sources: Vec<PathBuf>,
}

impl PushPlaces {
    /// Reads SRC... ADDRESS:DEST (one target) and finds the server's address that
    /// answers.
    pub(crate) fn resolve(args: &PushArgs) -> Result<Self, CliError> {
        let paths = split_push_paths(&args.paths)?;
        let [remote] = paths.targets.as_slice() else {
            return Err(CliError::Usage(format!(
                "this push sends to one target, not {} ({})",
                paths.targets.len(),
                paths.targets.join(", ")
            )));
        };
        let (candidates, dest) = parse_remote(remote)?;
        let host = host_of(remote, &candidates);
        let addr = first_reachable(&host, &candidates)?;
        Ok(PushPlaces {
            server: shown_address(&addr),
            addr,
            host,
            dest,
            sources: paths.sources,
        })
    }
}

/// `hawser push` (`--transport tcp`): to one target, or to several in one run.
pub fn push_cli(args: &PushArgs) -> Result<(), CliError> {
    let paths = split_push_paths(&args.paths)?;
    if paths.targets.len() > 1 {
        crate::push_fanout::push_to_many(args, paths)
    } else {
        push(args).map(|_| ())
    }
}

/// `hawser push` to one target.
pub fn push(args: &PushArgs) -> Result<JobOutcome, CliError> {
    let PushPlaces {
        addr,
        host,
        server,
        dest,
        sources,
    } = PushPlaces::resolve(args)?;
    for s in &sources {
        std::fs::symlink_metadata(s).map_err(io_err(s))?;
    }
    let mut config = args.job.source_config(dest.clone())?;
    let stall_timeout = args.job.stall_timeout()?;
    let (client, rtt) = connect(&addr, &host, &args.job, config.options.block_size)?;
    config.window_blocks = window_for(&args.job, rtt, config.options.block_size);
    tracing::info!(
        target: JOB_LOG,
        job = "push",
        server,
        %addr,
        dest,
        sources = sources.len(),
        connections = args.job.connections,
        block_size = config.options.block_size,
        window = config.window_blocks,
        rtt_ms = rtt.as_secs_f64() * 1e3,
        "job started"
    );
    let outcome = push_with(
        &client,
        &sources,
        config,
        args.job.quiet,
        stall_timeout,
        args.job.rate,
    );
    tracing::debug!(stats = ?client.stats(), "session counters");
    client.close();
    forget_nexus_record(&addr, &args.job);
    let outcome = outcome.inspect_err(|e| log_job_failed("push", &server, e))?;
    log_job_end("push", &server, &outcome);
    if !args.job.quiet {
        print_report(&outcome, args.job.verbose);
    }
    write_outputs(&args.job, &outcome, &server, &dest)?;
    Ok(outcome)
}
