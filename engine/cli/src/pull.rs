//! `hawser pull ADDRESS:SRC... DEST`: the replication task reversed over the
//! session's backchannel.
//!
//! The client connects serving a one-job [`Target`] on its backchannel
//! ([`pull_target_service`]) and makes one call, `replicate.pull` (exchange
//! [`PULL_EXCHANGE`], body [`PullRequest`]). The server's handler ([`pull_service`])
//! checks the sources against its root, walks them into a [`Source`] and runs the job with
//! a [`PipelineTransport`] over a pipeline of [`RequestContext::backchannel`]: every
//! request of the job is a backchannel call to that nexus, many in flight, manifest
//! batches ordered. The call's answer is the source's [`Report`] ([`PullReport`]), which
//! the client prints as `hawser push` does.
//!
//! The target's journals live with the client, so `hawser pull --resume` continues an
//! interrupted pull as a push continues.
//!
//! [`Report`]: hawser_replicate::Report
//! [`Source`]: hawser_replicate::Source
//! [`pull_service`]: hawser_replicate::service::pull_service
//! [`PipelineTransport`]: hawser_replicate::service::PipelineTransport
//! [`RequestContext::backchannel`]: hawser_runtime::RequestContext::backchannel

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use hawser_replicate::proto::{Begin, PROTOCOL_VERSION, PULL_EXCHANGE, PullReport, PullRequest};
use hawser_replicate::service::{Progress, pull_target_service};
use hawser_replicate::{ReplicateError, Target, TransportError, WriteMode};
use hawser_runtime::{Address, CallError, Client, ExchangeId, PendingCall};

use crate::connect::{connect_serving, first_reachable, forget_nexus_record};
use crate::error::{CliError, io_err};
use crate::job_args::JobArgs;
use crate::progress::{Interval, Ticker};
use crate::remote::{host_of, split_remote};
use crate::report::{
    JOB_LOG, JobOutcome, log_job_end, log_job_failed, print_report, write_outputs,
};
use crate::serve::access::shown_address;
use crate::values::parse_write_mode;
use crate::window::window_for;

/// Arguments of `hawser pull`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Replicate files and directory trees from a `hawser serve` server to here",
    long_about = "Replicate files and directory trees from a `hawser serve` server to here: \
the same job as `hawser push`, with the server as the source. SRC is relative to the \
server's --root; absolute paths, '..' and paths through a symlink are refused. As with \
rsync, a SRC ending in '/' copies the directory's contents into DEST \
(`hawser pull host:dir/ local` fills local), otherwise the directory itself \
(`hawser pull host:dir local` creates local/dir); an empty SRC, '.' or './' is the whole \
root. DEST is created if missing (its parent must exist); as with cp, scp and rsync, one \
file pulled to a DEST that is not an existing directory and does not end in '/' is \
written as DEST. Every file is hashed end to \
end and renamed into place only when complete; an interrupted pull continues with \
--resume (the journals are kept here, under DEST).",
    override_usage = "hawser pull [OPTIONS] ADDRESS:SRC... DEST",
    after_help = "Examples:\n  hawser serve --root /srv/replica\n  hawser pull host:dataset/ ./dataset\n  hawser pull --resume --checksum 10.0.0.2:9000:backup /restore"
)]
pub struct PullArgs {
    /// Sources ADDRESS:SRC (one server): HOST[:PORT]:SRC (port 8415 by default),
    /// unix:///PATH:SRC or shm://NAME:SRC; then the local DEST.
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    pub paths: Vec<String>,
    /// Job options.
    #[command(flatten)]
    pub job: JobArgs,
    /// How the pulled file data is written here: `direct` (blocks of 1 MiB and more past
    /// the page cache, O_DIRECT, where the file system allows it; every committed file's
    /// cached pages dropped once written) or `buffered` (all through the cache, left there).
    #[arg(long, value_name = "MODE", default_value = "direct", value_parser = parse_write_mode)]
    pub write_mode: WriteMode,
}

/// Where a pull writes: the directory the local target is rooted at, and DEST's name in
/// it. The target creates DEST itself (not a dry run), and a destination it creates
/// lets the source send small files inline, as a push to a new directory does. DEST may
/// be an existing file: the target replaces it when the job is one file (and refuses a
/// tree there).
fn local_destination(dest: &Path) -> Result<(PathBuf, String), CliError> {
    let absolute = match std::fs::symlink_metadata(dest) {
        Ok(_) => std::fs::canonicalize(dest).map_err(io_err(dest))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = dest
                .file_name()
                .ok_or_else(|| CliError::Usage(format!("{} has no file name", dest.display())))?;
            let parent = match dest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            std::fs::canonicalize(parent)
                .map_err(io_err(parent))?
                .join(name)
        }
        Err(e) => return Err(io_err(dest)(e)),
    };
    let (root, name) = match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => (parent.to_path_buf(), name.to_owned()),
        _ => (absolute.clone(), Default::default()),
    };
    let name = name
        .into_string()
        .map_err(|_| CliError::Usage(format!("{} is not a UTF-8 path", absolute.display())))?;
    Ok((root, name))
}

/// Waits for the pull's answer. The session reconnects and retries while the server is
/// unreachable; after `timeout` without any connection the pull is given up (continue
/// with `--resume`).
fn wait_for_pull(
    client: &Client,
    pending: &PendingCall,
    timeout: Duration,
) -> Result<Bytes, CliError> {
    let addr = client.server_address().clone();
    let mut disconnected_since: Option<Instant> = None;
    loop {
        match pending.wait_timeout(Duration::from_millis(250)) {
            Some(Ok(body)) => return Ok(body),
            Some(Err(CallError::Remote(e))) => {
                return Err(CliError::Server {
                    addr: addr.clone(),
                    message: e.message,
                });
            }
            Some(Err(other)) => {
                return Err(
                    ReplicateError::Transport(TransportError::Other(other.to_string())).into(),
                );
            }
            None => {
                if client.stats().connections.is_empty() {
                    let since = *disconnected_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= timeout {
                        return Err(ReplicateError::Transport(TransportError::Disconnected).into());
                    }
                } else {
                    disconnected_since = None;
                }
            }
        }
    }
}

/// `hawser pull`.
pub fn pull(args: &PullArgs) -> Result<JobOutcome, CliError> {
    let (local, remotes) = args
        .paths
        .split_last()
        .ok_or_else(|| CliError::Usage("give ADDRESS:SRC... DEST".into()))?;
    let mut server: Option<Vec<Address>> = None;
    let mut sources = Vec::new();
    let mut host = String::new();
    for spec in remotes {
        let (addresses, path) = split_remote(spec, "SRC")?;
        host = host_of(spec, &addresses);
        match &server {
            Some(first) if *first != addresses => {
                return Err(CliError::Usage(format!(
                    "{spec:?}: every source must be on the same server ({})",
                    first.first().map(shown_address).unwrap_or_default()
                )));
            }
            Some(_) => {}
            None => server = Some(addresses),
        }
        sources.push(path);
    }
    let candidates = server.ok_or_else(|| CliError::Usage("give ADDRESS:SRC".into()))?;
    let addr = first_reachable(&host, &candidates)?;
    let server = shown_address(&addr);
    let (target_root, dest) = local_destination(Path::new(local))?;
    let mut config = args.job.source_config(dest)?;
    // `DEST/` is always a directory, as for rsync; otherwise one pulled file may be
    // written as DEST (the server's source keeps the option only for one file).
    config.options.dest_may_be_file &= !local.ends_with('/');
    let timeout = args.job.stall_timeout()?;
    let target = Target::new(&target_root)
        .map_err(io_err(&target_root))?
        .with_write_mode(args.write_mode);
    let progress = Arc::new(Progress::default());
    let service = pull_target_service(target, Arc::clone(&progress));
    let (client, rtt) = connect_serving(
        &addr,
        &host,
        &args.job,
        config.options.block_size,
        Some(service),
    )?;
    // The server's source sends the blocks: it keeps this many in flight.
    let window = window_for(&args.job, rtt, config.options.block_size);
    tracing::info!(
        target: JOB_LOG,
        job = "pull",
        server,
        %addr,
        dest = local,
        sources = sources.len(),
        connections = args.job.connections,
        block_size = config.options.block_size,
        window,
        rtt_ms = rtt.as_secs_f64() * 1e3,
        "job started"
    );
    let mut body = BytesMut::new();
    PullRequest {
        begin: Begin {
            version: PROTOCOL_VERSION,
            job_id: config.job_id,
            options: config.options,
            dest: config.dest.as_bytes(),
        },
        window_blocks: u32::try_from(window).unwrap_or(u32::MAX),
        stall_timeout: timeout,
        rate_bytes_per_sec: args.job.rate.unwrap_or(0),
        sources: sources.iter().map(|s| s.as_bytes()).collect(),
        excludes: config.excludes.iter().map(|s| s.as_bytes()).collect(),
    }
    .encode(&mut body)
    .map_err(|e| CliError::Usage(format!("cannot encode the pull request: {e}")))?;

    let ticker = Ticker::start(Arc::clone(&progress), args.job.quiet, "received");
    let pending = client.start_call(ExchangeId(PULL_EXCHANGE), body.freeze());
    let answer = wait_for_pull(&client, &pending, timeout);
    let intervals: Vec<Interval> = ticker.finish();
    let stats = client.stats();
    tracing::debug!(?stats, "session counters");
    client.close();
    forget_nexus_record(&addr, &args.job);
    let decoded = answer.and_then(|answer| {
        let pulled = PullReport::decode(&answer).map_err(ReplicateError::Proto)?;
        let report =
            hawser_replicate::Report::from_pull_report(&pulled).map_err(ReplicateError::Proto)?;
        Ok((pulled, report))
    });
    let (pulled, report) = decoded.inspect_err(|e| log_job_failed("pull", &server, e))?;
    let outcome = JobOutcome {
        report,
        intervals,
        // Every connection's, those that died during the job included.
        session_bytes_out: stats.totals.bytes_in,
        session_retries: pulled.session_retries,
        unlisted_changes: pulled.unlisted_changes,
    };
    if !pulled.failures.is_empty() {
        tracing::info!(
            target: JOB_LOG,
            job = "pull",
            server,
            failed = pulled.failures.len() as u64 + pulled.unlisted_failures,
            "job failed"
        );
        if pulled.unlisted_failures > 0 {
            eprintln!(
                "hawser pull: {} more entries failed (not listed)",
                pulled.unlisted_failures
            );
        }
        return Err(ReplicateError::Incomplete {
            failures: pulled.failures,
            report: Box::new(outcome.report),
        }
        .into());
    }
    log_job_end("pull", &server, &outcome);
    if !args.job.quiet {
        print_report(&outcome, args.job.verbose);
    }
    write_outputs(&args.job, &outcome, &server, local)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_is_named_in_its_parent_whether_it_exists_or_not() {
        let base = std::env::temp_dir().join(format!("hawser-pull-dest-{}", std::process::id()));
        std::fs::create_dir_all(base.join("there")).unwrap();
        let real = std::fs::canonicalize(&base).unwrap();
        let (root, name) = local_destination(&base.join("there")).unwrap();
        assert_eq!((root.as_path(), name.as_str()), (real.as_path(), "there"));
        let (root, name) = local_destination(&base.join("new")).unwrap();
        assert_eq!((root.as_path(), name.as_str()), (real.as_path(), "new"));
        // "." names the current directory by its real name.
        let (root, name) = local_destination(&base.join("there/..")).unwrap();
        assert_eq!(root.join(name), real);
        assert!(local_destination(&base.join("missing/new")).is_err());
        // An existing file is named too: a one-file pull replaces it.
        std::fs::write(base.join("file"), b"x").unwrap();
        let (root, name) = local_destination(&base.join("file")).unwrap();
        assert_eq!((root.as_path(), name.as_str()), (real.as_path(), "file"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
