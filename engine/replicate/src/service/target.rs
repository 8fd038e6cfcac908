//! The target side bound to the runtime: a [`Service`] whose blocking handlers drive one
//! [`Target`] per nexus (a job) through [`Target::handle_concurrent`]. The Blocks and
//! Commits of a job's different files run in parallel on the handler threads (manifest
//! batches one at a time), and jobs of different clients proceed in parallel.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_runtime::job_log::{JobFigures, JobLog, JobOutcome};
use hawser_runtime::{ExchangeId, HandlerError, NexusId, RequestContext, Service};

use super::{TARGET_EXCHANGES, exception};
use crate::proto::{FinishReport, MessageKind};
use crate::{Expiry, PartialFiles, RootDir, Target, TargetLimits, WriteMode};

/// Limits of the replication service.
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// Jobs (nexuses with an open job) at once; a `Begin` beyond it is refused.
    pub max_jobs: usize,
    /// How the jobs' targets write file data.
    pub write_mode: WriteMode,
    /// Paths one job may name (config `max_job_entries`; see
    /// [`TargetLimits::max_entries`]).
    pub max_job_entries: u64,
    /// Files one job may be writing at once (config `max_open_files`; see
    /// [`TargetLimits::max_open_files`]).
    pub max_open_files: usize,
    /// Partial files (and journals) of unfinished jobs unchanged for longer than this
    /// are removed, at start and every [`EXPIRY_INTERVAL`] (config `partial_max_age`);
    /// `None`: they stay until a job resumes or commits them.
    pub partial_max_age: Option<Duration>,
}

/// How long partial files of unfinished jobs are kept for a `--resume` by default.
pub const DEFAULT_PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a server looks for expired partial files.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

impl Default for ServiceLimits {
    fn default() -> Self {
        let target = TargetLimits::default();
        ServiceLimits {
            max_jobs: 64,
            write_mode: WriteMode::default(),
            max_job_entries: target.max_entries,
            max_open_files: target.max_open_files,
            partial_max_age: Some(DEFAULT_PARTIAL_MAX_AGE),
        }
    }
}

impl ServiceLimits {
    fn target(&self) -> TargetLimits {
        TargetLimits {
            max_entries: self.max_job_entries,
            max_open_files: self.max_open_files,
            ..TargetLimits::default()
        }
    }
}

/// A running job: its target, when it was last used, and its log.
struct Job {
    target: Arc<Target>,
    used: Instant,
    log: JobLog,
}

/// The running jobs by nexus.
type Jobs = Mutex<HashMap<NexusId, Job>>;

/// A job untouched for this long belongs to a client that is gone (the session gives up
/// on a nexus after 60 s without a connection): its slot may go to a new job. Its
/// journals stay on disk for `--resume`.
const IDLE_JOB: Duration = Duration::from_secs(120);

/// The replication service writing beneath `root` (opened once, here): one exchange per
/// request kind. With [`ServiceLimits::partial_max_age`], expired partial files are
/// swept on a thread of the service's own while the service exists.
pub fn replication_service(root: &Path, limits: ServiceLimits) -> std::io::Result<Service> {
    replication_service_with_jobs(root, limits).map(|(service, _)| service)
}

/// The replication jobs a service runs: listed and cancelled by the control plane.
#[derive(Clone)]
pub struct ReplicationJobs(Arc<Jobs>);

impl std::fmt::Debug for ReplicationJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplicationJobs")
    }
}

impl ReplicationJobs {
    /// Each running job's nexus and how long since its last message.
    pub fn list(&self) -> Vec<(NexusId, Duration)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut jobs: Vec<(NexusId, Duration)> = map
            .iter()
            .map(|(n, job)| (*n, job.used.elapsed()))
            .collect();
        jobs.sort_by_key(|(n, _)| n.0);
        jobs
    }

    /// Drops the job of `nexus`: its next message is refused (`NoJob`), and its partial
    /// files and journals stay for `--resume`. False if it has none.
    pub fn cancel(&self, nexus: NexusId) -> bool {
        let removed = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&nexus);
        match removed {
            Some(job) => {
                job.log.end(
                    JobOutcome::Failed,
                    JobFigures::default(),
                    Some("cancelled by an operator"),
                );
                true
            }
            None => false,
        }
    }
}

/// [`replication_service`], and a handle on its jobs.
pub fn replication_service_with_jobs(
    root: &Path,
    limits: ServiceLimits,
) -> std::io::Result<(Service, ReplicationJobs)> {
    // Fail now on a bad root rather than on the first job.
    let root = RootDir::open(root)?;
    let expiry = match limits.partial_max_age {
        Some(age) => Some(Arc::new(start_expiry(&root, age)?)),
        None => None,
    };
    let jobs: Arc<Jobs> = Arc::new(Mutex::new(HashMap::new()));
    let ended = Arc::clone(&jobs);
    let mut service = Service::new("replicate").on_nexus_end(move |nexus| {
        abandon(&ended, nexus);
    });
    for (kind, name) in TARGET_EXCHANGES {
        let jobs = Arc::clone(&jobs);
        let root = root.clone();
        let limits = limits.clone();
        // The sweeping thread stops when the last handler holding it is dropped.
        let expiry = expiry.clone();
        service = service.blocking_handler(
            ExchangeId(kind.exchange_id()),
            name,
            move |ctx: &RequestContext, body: Bytes| {
                let _sweeping = &expiry;
                handle(&jobs, &root, &limits, kind, ctx, &body)
            },
        );
    }
    Ok((service, ReplicationJobs(jobs)))
}

/// Sweeps `root` for partial files older than `max_age` now and every
/// [`EXPIRY_INTERVAL`], saying on stderr what it removed.
fn start_expiry(root: &RootDir, max_age: Duration) -> std::io::Result<Expiry> {
    let shown = root.path().display().to_string();
    Expiry::start(
        root.clone(),
        max_age,
        EXPIRY_INTERVAL,
        move |swept| match swept {
            Ok(PartialFiles { files: 0, .. }) => {}
            Ok(removed) => tracing::info!(
                root = %shown,
                max_age_s = max_age.as_secs(),
                "removed expired partial files: {removed}"
            ),
            Err(e) => tracing::warn!(root = %shown, "sweeping expired partial files: {e}"),
        },
    )
}

/// The nexus of a running job is gone (its client destroyed it or it expired): the job
/// ends unfinished and its slot is free. Its journals stay for a `--resume`.
fn abandon(jobs: &Jobs, nexus: NexusId) {
    let Some(job) = jobs.lock().ok().and_then(|mut map| map.remove(&nexus)) else {
        return;
    };
    job.log
        .end(JobOutcome::Abandoned, JobFigures::default(), None);
    // Runs on the server's shard: the target's files are closed on a thread of its own.
    let _ = std::thread::Builder::new()
        .name("hawser-job-end".into())
        .spawn(move || drop(job));
}

fn handle(
    jobs: &Jobs,
    root: &RootDir,
    limits: &ServiceLimits,
    kind: MessageKind,
    ctx: &RequestContext,
    body: &Bytes,
) -> Result<Bytes, HandlerError> {
    let nexus = ctx.request.nexus;
    if MessageKind::of(body).ok() != Some(kind) {
        return Err(exception(
            "hawser.replicate.Malformed",
            "the message tag does not match its exchange",
        ));
    }
    let target = {
        let mut map = jobs
            .lock()
            .map_err(|_| exception("hawser.replicate.Internal", "job table poisoned"))?;
        let now = Instant::now();
        match map.get_mut(&nexus) {
            Some(job) => {
                job.used = now;
                Arc::clone(&job.target)
            }
            None if kind == MessageKind::Begin => {
                if map.len() >= limits.max_jobs {
                    map.retain(|_, job| {
                        let idle = now.duration_since(job.used) >= IDLE_JOB;
                        if idle {
                            job.log
                                .end(JobOutcome::Abandoned, JobFigures::default(), None);
                        }
                        !idle
                    });
                }
                if map.len() >= limits.max_jobs {
                    let owner = ctx.owner();
                    tracing::warn!(
                        %nexus,
                        identity = owner.map_or("", |o| &*o.identity),
                        peer = %owner.map_or_else(String::new, |o| o.peer.to_string()),
                        max_jobs = limits.max_jobs,
                        "job refused: the target runs its maximum of jobs"
                    );
                    return Err(exception(
                        "hawser.replicate.Busy",
                        format!("the target runs {} jobs already", map.len()),
                    ));
                }
                let target = Target::in_root(root.clone())
                    .with_write_mode(limits.write_mode)
                    .with_limits(limits.target());
                let target = Arc::new(target);
                let job = Job {
                    target: Arc::clone(&target),
                    used: now,
                    log: JobLog::start("push", ctx),
                };
                map.insert(nexus, job);
                target
            }
            None => {
                return Err(exception(
                    "hawser.replicate.NoJob",
                    "no job on this session (Begin first)",
                ));
            }
        }
    };
    let result = target.handle_concurrent(body);
    if kind == MessageKind::Finish || (kind == MessageKind::Begin && result.is_err()) {
        let job = jobs.lock().ok().and_then(|mut map| map.remove(&nexus));
        if let Some(job) = job {
            log_end(&job.log, &result);
        }
    }
    result.map_err(|e| exception(e.type_name(), e.to_string()))
}

/// The end line of a job whose Finish (or failed Begin) answered `result`.
fn log_end(log: &JobLog, result: &Result<Bytes, crate::TargetError>) {
    match result {
        Ok(answer) => {
            let report = FinishReport::decode(answer).ok();
            let figures = report
                .as_ref()
                .map_or_else(JobFigures::default, |r| JobFigures {
                    bytes: r.bytes_received,
                    files: r.files_written,
                    messages: 0,
                });
            log.end(JobOutcome::Ok, figures, None);
            if let Some(r) = report.filter(|r| r.refused > 0) {
                tracing::warn!(
                    target: "hawser::job",
                    nexus = %log.nexus(),
                    refused = r.refused,
                    "job refused paths (absolute, `..`, through a symlink, or named twice)"
                );
            }
            if let Some(r) = report
                && (r.deleted > 0 || r.bytes_resumed > 0 || r.up_to_date > 0)
            {
                tracing::info!(
                    target: "hawser::job",
                    nexus = %log.nexus(),
                    up_to_date = r.up_to_date,
                    bytes_resumed = r.bytes_resumed,
                    deleted = r.deleted,
                    "job details"
                );
            }
        }
        Err(e) => log.end(
            JobOutcome::Failed,
            JobFigures::default(),
            Some(&e.to_string()),
        ),
    }
}
