//! The two sides of `hawser pull` bound to the runtime. The server answers
//! `replicate.pull` ([`pull_service`]): it resolves the sources beneath its root, walks
//! them into a [`Source`] and runs the job over a pipeline of the requesting nexus's
//! backchannel ([`RequestContext::backchannel`]); the call's answer is the source's
//! report ([`PullReport`](crate::proto::PullReport)). The pulling client serves the one
//! job's [`Target`] on its backchannel ([`pull_target_service`]).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hawser_runtime::job_log::{JobFigures, JobLog, JobOutcome};
use hawser_runtime::{ExchangeId, HandlerError, RequestContext, Service};

use super::{PipelineTransport, Progress, TARGET_EXCHANGES, exception, session_source_config};
use crate::proto::{BLOCK_HEADER_LEN, MessageKind, PROTOCOL_VERSION, PULL_EXCHANGE, PullRequest};
use crate::{
    ReplicateError, RootDir, Source, SourcePathError, SourceRoot, Target, resolve_pull_source, run,
};

/// Blocks in flight at most for one pull, whatever the client asks: each is a buffer
/// of the block size in the server's memory.
const MAX_PULL_WINDOW: u32 = 32;

/// Bounds of the stall timeout a client may ask the server's source to use.
const STALL_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));

/// Counts a running pull; the count goes down when it ends, however it ends.
struct PullSlot<'a>(&'a AtomicUsize);

impl Drop for PullSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The service answering `replicate.pull`: sends what is asked for from under `root`, at
/// most `max_pulls` jobs at once (each holds a blocking-handler thread while it runs).
pub fn pull_service(root: &Path, max_pulls: usize) -> std::io::Result<Service> {
    // Opened once: every pull is resolved and read beneath this descriptor.
    let root = RootDir::open(root)?;
    let running = Arc::new(AtomicUsize::new(0));
    Ok(Service::new("replicate-pull").blocking_handler(
        ExchangeId(PULL_EXCHANGE),
        "replicate.pull",
        move |ctx: &RequestContext, body: Bytes| {
            if running.fetch_add(1, Ordering::AcqRel) >= max_pulls {
                running.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(
                    nexus = %ctx.request.nexus,
                    peer = %ctx.owner().map_or_else(String::new, |o| o.peer.to_string()),
                    max_pulls,
                    "pull refused: the server runs its maximum of pulls"
                );
                return Err(exception(
                    "hawser.replicate.Busy",
                    format!("the server runs {max_pulls} pulls already"),
                ));
            }
            let _slot = PullSlot(&running);
            serve_pull(&root, ctx, &body)
        },
    ))
}

fn serve_pull(root: &RootDir, ctx: &RequestContext, body: &[u8]) -> Result<Bytes, HandlerError> {
    let request = PullRequest::decode(body)
        .map_err(|e| exception("hawser.replicate.BadMessage", format!("pull request: {e}")))?;
    if request.begin.version != PROTOCOL_VERSION {
        return Err(exception(
            "hawser.replicate.Version",
            format!(
                "unsupported replication protocol version {}",
                request.begin.version
            ),
        ));
    }
    let sources = request
        .sources
        .iter()
        .map(|path| resolve_pull_source(root, path))
        .collect::<Result<Vec<SourceRoot>, _>>()
        .map_err(|e| match e {
            SourcePathError::Refused { .. } => {
                tracing::warn!(
                    nexus = %ctx.request.nexus,
                    identity = ctx.owner().map_or("", |o| &*o.identity),
                    peer = %ctx.owner().map_or_else(String::new, |o| o.peer.to_string()),
                    "pull refused: {e}"
                );
                exception("hawser.replicate.SourceRefused", e.to_string())
            }
            SourcePathError::NotFound { .. } | SourcePathError::Io { .. } => {
                exception("hawser.replicate.NoSource", e.to_string())
            }
        })?;
    if sources.is_empty() {
        return Err(exception("hawser.replicate.BadMessage", "no source named"));
    }
    let utf8 = |bytes: &[u8], what: &str| {
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            exception(
                "hawser.replicate.BadMessage",
                format!("{what} is not UTF-8"),
            )
        })
    };
    let excludes = request
        .excludes
        .iter()
        .map(|p| utf8(p, "an exclude pattern"))
        .collect::<Result<Vec<_>, _>>()?;
    let config = session_source_config(
        request.begin.options,
        utf8(request.begin.dest, "the destination")?,
        excludes,
        request.window_blocks.clamp(1, MAX_PULL_WINDOW) as usize,
        request.begin.job_id,
    );
    let source = Source::from_roots(config, sources)
        .map_err(|e| exception("hawser.replicate.Io", e.to_string()))?;
    let backchannel = ctx.backchannel().ok_or_else(|| {
        exception(
            "hawser.replicate.Internal",
            "no backchannel to run a pull over",
        )
    })?;
    let (shortest, longest) = STALL_TIMEOUT_RANGE;
    // Nobody watches the server's progress: the counters are the transport's own.
    let mut transport =
        PipelineTransport::over(backchannel.pipeline(), Arc::new(Progress::default()))
            .stall_timeout(request.stall_timeout.clamp(shortest, longest))
            .rate_limit(Some(request.rate_bytes_per_sec));
    let log = JobLog::start("pull", ctx);
    let result = run(source, &mut transport);
    let session_retries = backchannel.stats().map_or(0, |s| s.retries);
    let (report, failures) = match result {
        Ok(report) => (report, Vec::new()),
        Err(ReplicateError::Incomplete { failures, report }) => (*report, failures),
        Err(e) => {
            log.end(
                JobOutcome::Failed,
                JobFigures::default(),
                Some(&e.to_string()),
            );
            return Err(exception("hawser.replicate.PullFailed", e.to_string()));
        }
    };
    let figures = JobFigures {
        bytes: report.bytes_sent,
        files: report.files,
        messages: 0,
    };
    if failures.is_empty() {
        log.end(JobOutcome::Ok, figures, None);
    } else {
        let why = format!("{} paths failed", failures.len());
        log.end(JobOutcome::Failed, figures, Some(&why));
    }
    report
        .to_pull_report(failures, session_retries)
        .encode()
        .map_err(|e| exception("hawser.replicate.Internal", format!("pull report: {e}")))
}

/// The backchannel service of a pulling client: `target` answers the one job its server
/// runs, and `progress` counts what was written as it arrives.
///
/// One job, one nexus: unlike the server's multi-job [`replication_service`], no job
/// table, limit or idle expiry. Requests run one at a time under the target's lock.
///
/// [`replication_service`]: super::replication_service
pub fn pull_target_service(target: Target, progress: Arc<Progress>) -> Service {
    let target = Arc::new(Mutex::new(target));
    let mut service = Service::new("replicate-target");
    for (kind, name) in TARGET_EXCHANGES {
        let target = Arc::clone(&target);
        let progress = Arc::clone(&progress);
        service = service.blocking_handler(
            ExchangeId(kind.exchange_id()),
            name,
            move |_ctx: &RequestContext, body: Bytes| {
                if MessageKind::of(&body).ok() != Some(kind) {
                    return Err(exception(
                        "hawser.replicate.Malformed",
                        "the message tag does not match its exchange",
                    ));
                }
                let answer = target
                    .lock()
                    .map_err(|_| exception("hawser.replicate.Internal", "target poisoned"))?
                    .handle(&body)
                    .map_err(|e| exception(e.type_name(), e.to_string()))?;
                // Counted as the push side counts acknowledged requests; the totals grow
                // batch by batch, as the server's walk arrives.
                progress.requests.fetch_add(1, Ordering::Relaxed);
                if kind == MessageKind::Manifest {
                    progress.add_totals(&body);
                }
                progress.count_answer(kind, &body, &answer);
                if matches!(kind, MessageKind::Block | MessageKind::Manifest) {
                    progress
                        .bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                }
                if kind == MessageKind::Block && body.len() > BLOCK_HEADER_LEN {
                    progress.blocks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(answer)
            },
        );
    }
    service
}
