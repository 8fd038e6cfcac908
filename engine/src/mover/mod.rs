//! The replication task bound to the blocking API: what `hawser serve`, `push` and
//! `bench` (mode `replicate`) run.
//!
//! - [`PipelineTransport`]: the source's [`Transport`] over one [`Client`]'s
//!   [`Pipeline`]: every request is one exchange (id `0x52455000 | tag`), many in flight
//!   across the trunk's connections; manifest batches travel as ordered exchanges.
//! - [`replication_service`]: the server side, a [`Service`] whose blocking handlers
//!   drive one [`Target`] per nexus (a job) through [`Target::handle_concurrent`]: the
//!   Blocks and Commits of a job's different files run in parallel on the handler
//!   threads (manifest batches one at a time), and jobs of different clients proceed in
//!   parallel.
//! - [`cli`]: the subcommands; [`bench`]: `hawser bench` in replicate mode.
//!
//! # Data path
//!
//! Source: a block is read once, in 256 KiB chunks that feed both the whole-file
//! xxh3-128 and the block's xxh3-64 while they are in the cache (XXH3 with AVX2 chosen at
//! run time, `hawser_wire::xxh3`); its pooled buffer goes to `sendmsg` as it is (the
//! session sends large bodies as shared pieces, no user-space copy).
//!
//! Target: the session receives each frame straight into its own storage (the kernel
//! writes there; no copy out of pool buffers), placed so that a Block's data starts on a
//! page. The target checks the block's digest and hashes it into the file's hash in one
//! pass when it lands at the file's hash cursor (blocks landing ahead are held, 64 MiB per
//! job), then writes it with `O_DIRECT` from where it arrived, outside the file's lock, so
//! a large file's blocks reach the device in parallel (see [`Target`] and
//! `replicate::direct`; `serve --write-mode buffered` goes through the page cache).
//!
//! # Measured (2026-12-02, the 2-core build VM; its host is shared, figures move)
//!
//! `scripts/perf.sh replicate --runs 3` (perf/results/replicate.md), loopback, data in the
//! page cache, target on ext4, 8 connections, 8 MiB blocks:
//!
//! - One 4 GiB file: 1.18 GB/s, 2.65x `rsync -a` to a daemon (0.45 GB/s), 0.57x writing
//!   the same bytes into a new file with `O_DIRECT` and 4 writers (2.09 GB/s: the file
//!   system's ceiling here), 0.32x the plain-socket loop (3.71 GB/s). Writing through the
//!   page cache (what rsync does) runs at 0.42 GB/s on this VM: every new cache page is
//!   expensive. Before `O_DIRECT` writes and the copy-free receive, the same push took
//!   10.2-13.9 s; then 3.9-4.3 s, 3.6 s with aligned receives, 4.0 s with twox-hash.
//! - 20,000 files of 4-256 KiB (1.3 GB): 4,119 files/s, 1.26x rsync; their writes go
//!   through the page cache (a direct write of 64 KiB costs more than the cache) and
//!   dominate the target's CPU.
//! - 20 GiB (five 4 GiB files): 26.3 s, peak RSS push 54 MiB (`/usr/bin/time -f %M`),
//!   serve 79 MiB (`VmHWM`).
//! - Text-like data with `--compress auto`: 0.12 of the bytes on the wire, at 0.5-0.6x the
//!   rate of `--compress off` on loopback (measured 2026-11-22: lz4 runs per session frame
//!   on the shard thread, ~1 GB/s; it pays on links slower than that).
//! - `--rate 200M`: 200.9 MB/s.
//!
//! # Not built yet
//!
//! Block compression by the task itself, on several threads (`--compress` turns on the
//! session's per-frame lz4, on the shard thread); sending blocks from the page cache with
//! `splice` (the source still copies each block into its buffer, and the kernel copies it
//! again into the socket); a server serves all its nexuses on one shard whatever
//! `--shards` says.

pub mod bench;
pub mod cli;
pub mod nexus_record;
pub mod pull;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::{
    CallError, CallOptions, Client, ExchangeId, HandlerError, NexusId, Pipeline, RemoteException,
    RequestContext, Service,
};
use crate::replicate::proto::{BLOCK_HEADER_LEN, MessageKind};
use crate::replicate::{
    Completion, Expiry, PartialFiles, RemoteError, Request, RootDir, Target, TargetLimits,
    Transport, TransportError, WriteMode,
};
use crate::session::{ThrottleConfig, TokenBucket};

/// Room a session request needs beyond a block's data: the block header, plus slack for
/// a manifest batch of `batch_bytes` ≤ this.
const REQUEST_SLACK: u32 = 4096;

/// How long a push waits for any answer before it declares the target gone.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The session request size a job with blocks of `block_size` needs.
pub fn max_request_size(block_size: u32) -> u32 {
    block_size
        .saturating_add(BLOCK_HEADER_LEN as u32)
        .saturating_add(REQUEST_SLACK)
}

/// Counters a transport updates as answers arrive, read by a progress display on
/// another thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Request body bytes acknowledged (blocks and manifest batches with inline data).
    pub bytes: AtomicU64,
    /// Requests acknowledged.
    pub requests: AtomicU64,
    /// Blocks acknowledged.
    pub blocks: AtomicU64,
}

/// The source's transport over a client pipeline.
#[derive(Debug)]
pub struct PipelineTransport<'c> {
    pipeline: Pipeline<'c>,
    /// Pipeline token → (source token, kind, body length).
    in_flight: HashMap<u64, (u64, MessageKind, u64)>,
    progress: Arc<Progress>,
    stall_timeout: Duration,
    /// `--rate`: request bodies wait for their bytes in this bucket before they go.
    rate: Option<TokenBucket>,
}

impl<'c> PipelineTransport<'c> {
    /// A transport over a new pipeline of `client`.
    pub fn new(client: &'c Client, progress: Arc<Progress>) -> Self {
        Self::over(client.pipeline(), progress)
    }

    /// A transport over `pipeline` (a pull's source sends over a backchannel pipeline).
    pub fn over(pipeline: Pipeline<'c>, progress: Arc<Progress>) -> Self {
        PipelineTransport {
            pipeline,
            in_flight: HashMap::new(),
            progress,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            rate: None,
        }
    }

    /// Caps the bytes of request bodies sent to `bytes_per_sec` (`None` or 0: no cap)
    /// with a token bucket holding 50 ms of them (at least 64 KiB). A block larger than
    /// the bucket goes once the bucket is full and leaves it in debt, so the average
    /// holds whatever the block size.
    pub fn rate_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.rate = bytes_per_sec.filter(|&r| r > 0).map(|rate| {
            TokenBucket::new(
                ThrottleConfig {
                    bytes_per_second: rate,
                    burst_bytes: (rate / 20).max(64 * 1024),
                },
                Instant::now(),
            )
        });
        self
    }

    /// Gives up (the job fails with [`TransportError::Disconnected`], to be continued
    /// with `resume`) when no answer arrives for `timeout`: the client reconnects and
    /// retries for as long as it runs, so a target that is gone would otherwise be
    /// waited for forever.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }
}

impl Transport for PipelineTransport<'_> {
    fn send(&mut self, request: Request) -> Result<(), TransportError> {
        let len = request.body.len() as u64;
        if let Some(bucket) = &mut self.rate {
            // The source's loop is this thread: answers queue up in the session while it
            // sleeps, and are taken when it next waits for one.
            loop {
                let now = Instant::now();
                if bucket.try_take(now, len) {
                    break;
                }
                std::thread::sleep(bucket.ready_at(len).saturating_duration_since(now));
            }
        }
        let token = self.pipeline.submit_with(
            ExchangeId(request.kind.exchange_id()),
            request.body,
            CallOptions {
                ordered: request.ordered,
                uncompressed: !request.compress,
            },
        );
        self.in_flight
            .insert(token, (request.token, request.kind, len));
        Ok(())
    }

    fn recv(&mut self) -> Result<Completion, TransportError> {
        let (token, result) = self
            .pipeline
            .next_completion_timeout(self.stall_timeout)
            .map_err(|()| TransportError::Disconnected)?
            .ok_or(TransportError::Idle)?;
        let (source_token, kind, len) = self
            .in_flight
            .remove(&token)
            .ok_or_else(|| TransportError::Other(format!("unknown completion {token}")))?;
        let result = match result {
            Ok(body) => {
                self.progress.requests.fetch_add(1, Ordering::Relaxed);
                if matches!(kind, MessageKind::Block | MessageKind::Manifest) {
                    self.progress.bytes.fetch_add(len, Ordering::Relaxed);
                }
                if kind == MessageKind::Block {
                    self.progress.blocks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(body)
            }
            Err(CallError::Remote(exception)) => Err(RemoteError {
                type_name: exception.type_name,
                message: exception.message,
            }),
            // The nexus is gone for good (the client already retried over its trunk and
            // reconnected while the grace period lasted): the job ends, `--resume` goes on.
            Err(other) => return Err(TransportError::Other(other.to_string())),
        };
        Ok(Completion {
            token: source_token,
            result,
        })
    }
}

/// The requests of a job, by exchange: what a target serves (`hawser serve`, and a
/// pulling client on its backchannel).
pub(crate) const TARGET_EXCHANGES: [(MessageKind, &str); 6] = [
    (MessageKind::Begin, "replicate.begin"),
    (MessageKind::Manifest, "replicate.manifest"),
    (MessageKind::Block, "replicate.block"),
    (MessageKind::Commit, "replicate.commit"),
    (MessageKind::Delete, "replicate.delete"),
    (MessageKind::Finish, "replicate.finish"),
];

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
    Ok(service)
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
            Ok(removed) => eprintln!(
                "hawser serve: removed partial files unchanged for more than {} s under {shown}: \
             {removed}",
                max_age.as_secs()
            ),
            Err(e) => eprintln!("hawser serve: sweeping expired partial files under {shown}: {e}"),
        },
    )
}

fn exception(type_name: &str, message: impl Into<String>) -> HandlerError {
    HandlerError::Exception(RemoteException::new(type_name, message.into()))
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
    if kind == MessageKind::Finish
        && let Ok(mut map) = jobs.lock()
    {
        map.remove(&nexus);
    }
    result.map_err(|e| exception(e.type_name(), e.to_string()))
}
