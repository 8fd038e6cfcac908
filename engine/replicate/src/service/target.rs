//! The target side bound to the runtime: a [`Service`] whose blocking handlers drive one
//! [`Target`] per nexus (a job) through [`Target::handle_concurrent`]. The Blocks and
//! Commits of a job's different files run in parallel on the handler threads (manifest
//! batches one at a time), and jobs of different clients proceed in parallel.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
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

/// A job's target and when it was last used.
type Jobs = Mutex<HashMap<NexusId, (Arc<Target>, Instant)>>;

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
            .map(|(n, (_, used))| (*n, used.elapsed()))
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
        if removed.is_some() {
            tracing::warn!(target: "hawser::job", %nexus, "job cancelled by an operator");
        }
        removed.is_some()
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
    let mut service = Service::new("replicate");
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
                handle(&jobs, &root, &limits, kind, ctx.request.nexus, &body)
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

fn handle(
    jobs: &Jobs,
    root: &RootDir,
    limits: &ServiceLimits,
    kind: MessageKind,
    nexus: NexusId,
    body: &Bytes,
) -> Result<Bytes, HandlerError> {
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
            Some((t, used)) => {
                *used = now;
                Arc::clone(t)
            }
            None if kind == MessageKind::Begin => {
                if map.len() >= limits.max_jobs {
                    map.retain(|_, (_, used)| now.duration_since(*used) < IDLE_JOB);
                }
                if map.len() >= limits.max_jobs {
                    tracing::warn!(%nexus, max_jobs = limits.max_jobs, "job refused: the target runs its maximum of jobs");
                    return Err(exception(
                        "hawser.replicate.Busy",
                        format!("the target runs {} jobs already", map.len()),
                    ));
                }
                let target = Target::in_root(root.clone())
                    .with_write_mode(limits.write_mode)
                    .with_limits(limits.target());
                let target = Arc::new(target);
                map.insert(nexus, (Arc::clone(&target), now));
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
    log_job(kind, nexus, &result);
    if kind == MessageKind::Finish
        && let Ok(mut map) = jobs.lock()
    {
        map.remove(&nexus);
    }
    result.map_err(|e| exception(e.type_name(), e.to_string()))
}

/// One log line when a job starts and when it ends, with what the target did.
fn log_job(kind: MessageKind, nexus: NexusId, result: &Result<Bytes, crate::TargetError>) {
    match (kind, result) {
        (MessageKind::Begin, Ok(_)) => tracing::info!(target: "hawser::job", %nexus, "job started"),
        (MessageKind::Finish, Ok(answer)) => match FinishReport::decode(answer) {
            Ok(r) => tracing::info!(
                target: "hawser::job",
                %nexus,
                files_written = r.files_written,
                up_to_date = r.up_to_date,
                bytes_received = r.bytes_received,
                bytes_resumed = r.bytes_resumed,
                refused = r.refused,
                deleted = r.deleted,
                "job finished"
            ),
            Err(_) => tracing::info!(target: "hawser::job", %nexus, "job finished"),
        },
        (MessageKind::Begin | MessageKind::Finish, Err(e)) => {
            tracing::warn!(target: "hawser::job", %nexus, "job {kind:?} failed: {e}");
        }
        _ => {}
    }
}
