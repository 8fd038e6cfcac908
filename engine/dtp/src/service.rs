//! The DTP service of a server: the control exchanges over the nexus (pull, push, stop,
//! digest, finish, stat, list) and the engine that moves the data over UDP. Files are opened beneath
//! the server's root (`openat2` with `RESOLVE_BENEATH`, no symlinks); a push is written
//! under a temporary name beside its target, journaled so that it resumes, and renamed
//! into place only once its digest matches the client's.

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hawser_replicate::RootDir;
use hawser_runtime::job_log::{JobFigures, JobLog, JobOutcome};
use hawser_runtime::{HandlerError, Peer, RemoteException, RequestContext, Service};
use hawser_wire::dtp::{ControlMessage, DatagramForm, IntervalSet, PushResponse, TransferResponse};

use crate::control::{FileListing, FileMetadata, FileStat, FinishRequest, ListedFile};
use crate::engine::{DtpEngine, ReceivePlan, SendPlan, Transfer, random_bytes};
use crate::rate::ControllerKind;
use crate::{BlockDigests, TAG_LEN, TransferState, digest_file};

/// The exchange ids of DTP's control messages: `0x4454_5000` ("DTP") and a number.
pub mod exchange {
    use hawser_runtime::ExchangeId;

    /// The base of DTP's exchange ids.
    pub const BASE: u32 = 0x4454_5000;
    /// TransferRequest → TransferResponse: the server sends a file.
    pub const PULL: ExchangeId = ExchangeId(BASE | 0x01);
    /// PushRequest → PushResponse: the server receives a file.
    pub const PUSH: ExchangeId = ExchangeId(BASE | 0x02);
    /// HoleReport with `stop` → empty: ends a session of this nexus.
    pub const STOP: ExchangeId = ExchangeId(BASE | 0x03);
    /// A payload id → its size (u64) and digest (u128).
    pub const DIGEST: ExchangeId = ExchangeId(BASE | 0x04);
    /// A push's session id (u32) and the client's digest (u128) → the server's summary,
    /// once its receiver completed and the digests match.
    pub const FINISH: ExchangeId = ExchangeId(BASE | 0x05);
    /// A payload id → its size, mode and mtime (a regular file), for the quick check.
    pub const STAT: ExchangeId = ExchangeId(BASE | 0x06);
    /// A minimum size (u64) and a pull source → whether it is a directory and its
    /// regular files of at least that size ([`FileListing`](crate::control::FileListing)).
    pub const LIST: ExchangeId = ExchangeId(BASE | 0x07);
}

/// How often a finish looks whether its push's receiver has ended.
const FINISH_POLL: Duration = Duration::from_millis(20);

/// Most files one listing names.
pub const MAX_LISTED_FILES: usize = 100_000;

/// Largest datagram a server sends or accepts (a link of MTU 65028, as loopback or the
/// emulator; a path with a smaller MTU asks for less, or its datagrams are fragmented).
pub const MAX_DATAGRAM: u16 = 65000;
/// Suffix of the temporary file a push is written to, beside its target.
pub const PARTIAL_SUFFIX: &str = ".hawser-dtp";
/// Suffix of a push's journal, beside its target.
pub const JOURNAL_SUFFIX: &str = ".hawser-dtp-state";
/// Largest journal read back (the state of a 4 TiB payload's digests and many holes).
const MAX_JOURNAL: usize = 64 << 20;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct DtpServiceConfig {
    /// Never faster than this many bytes per second per session (0: no limit).
    pub max_rate: u64,
    /// How the rate of the sessions the server sends is found.
    pub controller: ControllerKind,
    /// How often a push's receiver journals.
    pub journal_every: Duration,
}

impl Default for DtpServiceConfig {
    fn default() -> Self {
        DtpServiceConfig {
            max_rate: 0,
            controller: ControllerKind::Probe,
            journal_every: Duration::from_secs(1),
        }
    }
}

/// Where a push lands.
#[derive(Clone)]
struct Landing {
    dir: RootDir,
    name: Vec<u8>,
}

impl Landing {
    fn with_suffix(&self, suffix: &str) -> Vec<u8> {
        let mut n = b".".to_vec();
        n.extend_from_slice(&self.name);
        n.extend_from_slice(suffix.as_bytes());
        n
    }
}

impl Landing {
    /// The same place: one directory (by device and inode) and one name.
    fn is_at(&self, other: &Landing) -> bool {
        self.name == other.name
            && matches!((self.dir.identity(), other.dir.identity()), (Ok(a), Ok(b)) if a == b)
    }
}

struct Running {
    nexus: u128,
    transfer: Transfer,
    landing: Option<Landing>,
    /// The payload id as asked, and its size.
    name: String,
    total: u64,
    started: std::time::Instant,
    /// The job's log lines; its end is logged where the session leaves the table.
    log: JobLog,
    /// Bytes the transfer is to move (a pull's intervals, a push's missing bytes).
    expected: u64,
}

/// A transfer the service runs, as its operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferInfo {
    /// The session id.
    pub session_id: u32,
    /// `push` (the server receives) or `pull` (it sends).
    pub direction: &'static str,
    /// The path under the root.
    pub name: String,
    /// The payload's size.
    pub total: u64,
    /// New bytes the receiver has (the goodput so far).
    pub delivered: u64,
    /// The pacing rate in bytes per second (a pull; 0 for a push).
    pub rate: u64,
    /// Since it started.
    pub elapsed: Duration,
    /// The nexus it belongs to.
    pub nexus: u128,
}

/// The DTP service of one server.
#[derive(Clone)]
pub struct DtpService {
    root: RootDir,
    engine: Arc<DtpEngine>,
    config: DtpServiceConfig,
    running: Arc<Mutex<HashMap<u32, Running>>>,
}

impl std::fmt::Debug for DtpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtpService")
            .field("root", &self.root.path())
            .field("data", &self.engine.local_addr())
            .finish_non_exhaustive()
    }
}

fn exception(kind: &str, message: impl Into<String>) -> HandlerError {
    HandlerError::Exception(RemoteException::new(format!("dtp.{kind}"), message))
}

fn io_exception(what: &str, name: &[u8], e: std::io::Error) -> HandlerError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => "NotFound",
        std::io::ErrorKind::PermissionDenied => "Denied",
        _ => "Io",
    };
    exception(
        kind,
        format!("{what} {:?}: {e}", String::from_utf8_lossy(name)),
    )
}

fn peer_ip(ctx: &RequestContext) -> Result<IpAddr, HandlerError> {
    match ctx.owner().map(|o| o.peer.canonical()) {
        Some(Peer::Inet(ip)) => Ok(ip),
        _ => Err(exception(
            "Refused",
            "DTP needs a nexus over the network (its data goes to the nexus peer's address)",
        )),
    }
}

/// The datagram size for a client's MTU, and the form for a payload's size.
fn shape(mtu: u16, total: u64) -> (u16, DatagramForm) {
    let form = if total > DatagramForm::BASIC_MAX_PAYLOAD {
        DatagramForm::Extended
    } else {
        DatagramForm::Basic
    };
    (mtu.min(MAX_DATAGRAM), form)
}

fn session_id(running: &HashMap<u32, Running>) -> Result<u32, HandlerError> {
    for _ in 0..16 {
        let bytes = fresh_key()?;
        let id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if id != 0 && !running.contains_key(&id) {
            return Ok(id);
        }
    }
    Err(exception("Busy", "no free session id"))
}

fn fresh_key() -> Result<[u8; 32], HandlerError> {
    random_bytes().map_err(|e| exception("Io", format!("no randomness: {e}")))
}

fn encode(message: &ControlMessage<'_>) -> Result<Bytes, HandlerError> {
    let mut out = BytesMut::with_capacity(message.encoded_len());
    message
        .encode(&mut out)
        .map_err(|e| exception("Malformed", e.to_string()))?;
    Ok(out.freeze())
}

impl DtpService {
    /// A service sending and receiving files beneath `root` through `engine`.
    pub fn new(root: RootDir, engine: Arc<DtpEngine>, config: DtpServiceConfig) -> Self {
        DtpService {
            root,
            engine,
            config,
            running: Arc::default(),
        }
    }

    /// The engine's data socket.
    pub fn data_addr(&self) -> std::net::SocketAddr {
        self.engine.local_addr()
    }

    /// The runtime service to add to a server.
    pub fn service(&self) -> Service {
        let pull = self.clone();
        let push = self.clone();
        let stop = self.clone();
        let digest = self.clone();
        let finish = self.clone();
        let stat = self.clone();
        let list = self.clone();
        let ended = self.clone();
        Service::new("dtp")
            .blocking_handler(exchange::PULL, "dtp.pull", move |ctx, body| {
                pull.pull(ctx, &body)
            })
            .blocking_handler(exchange::PUSH, "dtp.push", move |ctx, body| {
                push.push(ctx, &body)
            })
            .handler(exchange::STOP, "dtp.stop", move |ctx, body| {
                stop.stop(ctx, &body)
            })
            .blocking_handler(exchange::DIGEST, "dtp.digest", move |_, body| {
                digest.digest(&body)
            })
            .blocking_handler(exchange::FINISH, "dtp.finish", move |ctx, body| {
                finish.finish(ctx, &body)
            })
            .blocking_handler(exchange::STAT, "dtp.stat", move |_, body| stat.stat(&body))
            .blocking_handler(exchange::LIST, "dtp.list", move |_, body| list.list(&body))
            .on_nexus_end(move |nexus| ended.nexus_ended(nexus.0))
    }

    /// Draws a session id, starts the session under it and keeps it as this nexus's.
    /// The transfers running now.
    pub fn transfers(&self) -> Vec<TransferInfo> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<TransferInfo> = running
            .iter()
            .map(|(&session_id, r)| {
                let progress = r.transfer.progress();
                TransferInfo {
                    session_id,
                    direction: if r.landing.is_some() { "push" } else { "pull" },
                    name: r.name.clone(),
                    total: r.total,
                    delivered: progress
                        .delivered
                        .load(std::sync::atomic::Ordering::Relaxed),
                    rate: progress.rate.load(std::sync::atomic::Ordering::Relaxed),
                    elapsed: r.started.elapsed(),
                    nexus: r.nexus,
                }
            })
            .collect();
        all.sort_by_key(|t| t.session_id);
        all
    }

    /// Stops the transfer `session_id` (a push keeps its journal for `--resume`); false
    /// if there is none.
    pub fn cancel(&self, session_id: u32) -> bool {
        let removed = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session_id);
        match removed {
            Some(r) => {
                r.transfer.stop();
                r.log.end(
                    JobOutcome::Failed,
                    JobFigures::default(),
                    Some("cancelled by an operator"),
                );
                true
            }
            None => false,
        }
    }

    fn start(
        &self,
        ctx: &RequestContext,
        landing: Option<Landing>,
        (name, total): (&[u8], u64),
        expected: u64,
        run: impl FnOnce(u32) -> Result<Transfer, crate::engine::EngineError>,
    ) -> Result<u32, HandlerError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let session_id = session_id(&running)?;
        let transfer = run(session_id).map_err(|e| {
            tracing::warn!(
                nexus = %ctx.request.nexus,
                "DTP transfer refused: {e}"
            );
            exception("Busy", e.to_string())
        })?;
        let nexus = ctx.request.nexus.0;
        let kind = if landing.is_some() {
            "dtp-push"
        } else {
            "dtp-pull"
        };
        running.insert(
            session_id,
            Running {
                nexus,
                transfer,
                landing,
                name: String::from_utf8_lossy(name).into_owned(),
                total,
                started: std::time::Instant::now(),
                log: JobLog::start(kind, ctx),
                expected,
            },
        );
        Ok(session_id)
    }

    fn rate(&self, asked: u64) -> u64 {
        match (asked, self.config.max_rate) {
            (0, limit) | (limit, 0) => limit,
            (a, b) => a.min(b),
        }
    }

    fn pull(&self, ctx: &RequestContext, body: &[u8]) -> Result<Bytes, HandlerError> {
        let ControlMessage::TransferRequest(request) =
            ControlMessage::decode(body).map_err(|e| exception("Malformed", e.to_string()))?
        else {
            return Err(exception("Malformed", "expected a transfer request"));
        };
        let peer_ip = peer_ip(ctx)?;
        let file = self
            .root
            .open_file(request.payload_id)
            .map_err(|e| io_exception("cannot open", request.payload_id, e))?;
        let total = file
            .metadata()
            .map_err(|e| io_exception("cannot stat", request.payload_id, e))?
            .len();
        if request
            .intervals
            .as_slice()
            .last()
            .is_some_and(|i| i.end() > total)
        {
            return Err(exception(
                "Refused",
                format!("the intervals asked reach past the payload's {total} bytes"),
            ));
        }
        let expected = if request.intervals.is_empty() {
            total
        } else {
            request.intervals.covered()
        };
        let (datagram_size, form) = shape(request.mtu, total);
        let key = fresh_key()?;
        let session_id = self.start(
            ctx,
            None,
            (request.payload_id, total),
            expected,
            |session_id| {
                self.engine.send(SendPlan {
                    session_id,
                    key,
                    peer_ip,
                    peer: None,
                    file,
                    total_size: total,
                    wanted: request.intervals.clone(),
                    form,
                    datagram_size,
                    max_rate: self.rate(request.max_throughput),
                    controller: self.config.controller,
                    // A pull's digest comes from its own exchange.
                    hash_sent_blocks: false,
                })
            },
        )?;
        encode(&ControlMessage::TransferResponse(TransferResponse {
            session_id,
            total_size: total,
            bytes_expected: expected,
            form,
            datagram_size,
            key,
            data_port: self.engine.local_addr().port(),
        }))
    }

    fn push(&self, ctx: &RequestContext, body: &[u8]) -> Result<Bytes, HandlerError> {
        let ControlMessage::PushRequest(request) =
            ControlMessage::decode(body).map_err(|e| exception("Malformed", e.to_string()))?
        else {
            return Err(exception("Malformed", "expected a push request"));
        };
        let peer_ip = peer_ip(ctx)?;
        let name = request.payload_id;
        let (dir, last) = self
            .root
            .parent_of(name)
            .map_err(|e| io_exception("cannot place", name, e))?;
        let landing = Landing { dir, name: last };
        self.supersede(&landing);
        let total = request.total_size;
        let (datagram_size, form) = shape(request.mtu, total);
        let journal_name = landing.with_suffix(JOURNAL_SUFFIX);
        let partial_name = landing.with_suffix(PARTIAL_SUFFIX);
        // A journal of an earlier push of the same size picks up where it stopped.
        let resumed = if request.resume {
            landing
                .dir
                .read_small(&journal_name, MAX_JOURNAL)
                .ok()
                .flatten()
                .and_then(|bytes| TransferState::decode(&bytes).ok())
                .filter(|s| s.total_size == total)
        } else {
            None
        };
        let file = landing
            .dir
            .open_or_create(&partial_name)
            .map_err(|e| io_exception("cannot create", name, e))?;
        let (received, digests) = match resumed {
            Some(mut state) => {
                crate::verify_on_disk(&file, &mut state)
                    .map_err(|e| io_exception("cannot read back", name, e))?;
                (state.received, state.digests)
            }
            None => {
                file.set_len(0)
                    .and_then(|_| file.set_len(total))
                    .map_err(|e| io_exception("cannot size", name, e))?;
                (IntervalSet::new(), BlockDigests::new(total))
            }
        };
        // Past the page cache where the file system takes it (a failure to open it only
        // costs speed), into space reserved whole (a full disk is refused here).
        let direct = landing.dir.open_direct(&partial_name, &file).ok().flatten();
        if let Some(direct) = &direct {
            direct
                .reserve(total)
                .map_err(|e| io_exception("cannot reserve space for", name, e))?;
        }
        let wanted = received.missing_within(&IntervalSet::whole(total));
        let key = fresh_key()?;
        let journal_dir = landing.dir.clone();
        let journal: crate::engine::Journal =
            Box::new(move |bytes: &[u8]| journal_dir.replace_file(&journal_name, bytes));
        let journal_every = self.config.journal_every;
        let missing = wanted.covered();
        let session_id = self.start(ctx, Some(landing), (name, total), missing, |session_id| {
            self.engine.receive(ReceivePlan {
                session_id,
                key,
                peer_ip,
                peer: None,
                file,
                direct,
                total_size: total,
                form,
                received,
                digests,
                journal: Some((journal, journal_every)),
            })
        })?;
        encode(&ControlMessage::PushResponse(PushResponse {
            session_id,
            form,
            datagram_size,
            key,
            data_port: self.engine.local_addr().port(),
            wanted,
        }))
    }

    /// Stops the pushes still landing where `landing` is (their client gone, their nexus
    /// not expired yet) and waits for their last journal: a resumed push reads it, and
    /// no other session writes the file or its journal after this one starts.
    fn supersede(&self, landing: &Landing) {
        let earlier: Vec<Transfer> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<u32> = running
                .iter()
                .filter(|(_, r)| r.landing.as_ref().is_some_and(|l| l.is_at(landing)))
                .map(|(&id, _)| id)
                .collect();
            ids.iter()
                .filter_map(|id| running.remove(id))
                .map(|r| {
                    r.log
                        .end(JobOutcome::Abandoned, JobFigures::default(), None);
                    r.transfer
                })
                .collect()
        };
        for transfer in earlier {
            transfer.stop();
            let _ = transfer.wait(Duration::from_secs(5));
        }
    }

    fn stop(&self, ctx: &RequestContext, body: &[u8]) -> Result<Bytes, HandlerError> {
        let ControlMessage::HoleReport(report) =
            ControlMessage::decode(body).map_err(|e| exception("Malformed", e.to_string()))?
        else {
            return Err(exception("Malformed", "expected a hole report"));
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get(&report.session_id) {
            Some(r) if r.nexus == ctx.request.nexus.0 => {
                r.transfer.stop();
                if r.landing.is_none() {
                    // A pull ends when its client stops it: what it still misses was
                    // not delivered.
                    let missing = report.holes.covered();
                    let figures = JobFigures {
                        bytes: r.expected.saturating_sub(missing),
                        files: u64::from(missing == 0),
                        messages: 0,
                    };
                    if missing == 0 {
                        r.log.end(JobOutcome::Ok, figures, None);
                    } else {
                        let why = format!("stopped by the client with {missing} bytes missing");
                        r.log.end(JobOutcome::Failed, figures, Some(&why));
                    }
                    running.remove(&report.session_id);
                }
                Ok(Bytes::new())
            }
            _ => Err(exception(
                "NotFound",
                format!("no DTP session {} of this nexus", report.session_id),
            )),
        }
    }

    fn digest(&self, body: &[u8]) -> Result<Bytes, HandlerError> {
        let file: File = self
            .root
            .open_file(body)
            .map_err(|e| io_exception("cannot open", body, e))?;
        let size = file
            .metadata()
            .map_err(|e| io_exception("cannot stat", body, e))?
            .len();
        let digest = digest_file(&file, size).map_err(|e| io_exception("cannot read", body, e))?;
        let mut out = BytesMut::with_capacity(24);
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&digest.to_be_bytes());
        Ok(out.freeze())
    }

    fn finish(&self, ctx: &RequestContext, body: &[u8]) -> Result<Bytes, HandlerError> {
        let Some(FinishRequest {
            session_id: id,
            digest,
            metadata,
        }) = FinishRequest::decode(body)
        else {
            return Err(exception(
                "Malformed",
                "expected a session id, a digest and optionally mode and mtime",
            ));
        };
        let landing = {
            let all = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match all.get(&id) {
                Some(Running {
                    nexus,
                    landing: Some(landing),
                    ..
                }) if *nexus == ctx.request.nexus.0 => landing.clone(),
                _ => return Err(exception("NotFound", format!("no push {id} of this nexus"))),
            }
        };
        // The receiver ends by itself: complete, or failed after the engine's idle time.
        // It stays in the table meanwhile, so that a later push to the same file, the
        // nexus's end or an operator can still stop it (and its journal with it).
        let end = loop {
            let polled = {
                let all = self.running.lock().unwrap_or_else(|e| e.into_inner());
                match all.get(&id) {
                    Some(r) => {
                        if ctx.is_cancelled() {
                            r.transfer.stop();
                        }
                        r.transfer
                            .wait(Duration::ZERO)
                            .map(|end| end.map_err(|e| exception("Failed", e.to_string())))
                    }
                    None => Some(Err(exception(
                        "Stopped",
                        "this push was stopped: a later push to the same file, the nexus's end or an operator ended it",
                    ))),
                }
            };
            if let Some(end) = polled {
                break end;
            }
            std::thread::sleep(FINISH_POLL);
        };
        let log = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
            .map(|r| r.log);
        let result = end.and_then(|summary| put_in_place(&landing, &summary, digest, metadata));
        // A push stopped by someone else had its end logged there.
        let Some(log) = log else {
            return result.map(|(_, answer)| answer);
        };
        match &result {
            Ok((bytes, _)) => log.end(
                JobOutcome::Ok,
                JobFigures {
                    bytes: *bytes,
                    files: 1,
                    messages: 0,
                },
                None,
            ),
            Err(e) => {
                let why = match e {
                    HandlerError::Exception(remote) => remote.to_string(),
                    HandlerError::Cancelled => "cancelled by the client".to_owned(),
                };
                log.end(JobOutcome::Failed, JobFigures::default(), Some(&why));
            }
        }
        result.map(|(_, answer)| answer)
    }

    fn stat(&self, body: &[u8]) -> Result<Bytes, HandlerError> {
        let meta = self
            .root
            .open_file(body)
            .and_then(|file| file.metadata())
            .map_err(|e| io_exception("cannot stat", body, e))?;
        Ok(Bytes::from(
            FileStat {
                size: meta.len(),
                metadata: FileMetadata::of(&meta),
            }
            .encode(),
        ))
    }

    fn list(&self, body: &[u8]) -> Result<Bytes, HandlerError> {
        let (Some(min_size), Some(path)) = (
            body.get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes),
            body.get(8..),
        ) else {
            return Err(exception("Malformed", "expected a minimum size and a path"));
        };
        let source = hawser_replicate::resolve_pull_source(&self.root, path).map_err(|e| {
            let kind = match e {
                hawser_replicate::SourcePathError::NotFound { .. } => "NotFound",
                hawser_replicate::SourcePathError::Refused { .. } => "Refused",
                hawser_replicate::SourcePathError::Io { .. } => "Io",
            };
            exception(kind, e.to_string())
        })?;
        let name = source.name().map(<[u8]>::to_vec);
        let walk = hawser_replicate::Source::from_roots(Default::default(), vec![source])
            .map_err(|e| exception("Io", e.to_string()))?;
        let all = walk.regular_files();
        // One file is listed under its own name; anything else is a tree.
        let is_dir = name.is_none_or(|name| !all.iter().any(|f| f.rel == name));
        let files: Vec<ListedFile> = all
            .into_iter()
            .filter(|f| f.size >= min_size)
            .map(|f| ListedFile {
                rel: f.rel,
                size: f.size,
                metadata: FileMetadata {
                    mode: f.mode,
                    mtime_ns: f.mtime_ns,
                },
            })
            .collect();
        if files.len() > MAX_LISTED_FILES {
            return Err(exception(
                "TooMany",
                format!(
                    "{} files to list, over {MAX_LISTED_FILES}: pull a part of the tree at a time",
                    files.len()
                ),
            ));
        }
        Ok(Bytes::from(FileListing { is_dir, files }.encode()))
    }

    fn nexus_ended(&self, nexus: u128) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, r| {
            if r.nexus == nexus {
                r.transfer.stop();
                r.log
                    .end(JobOutcome::Abandoned, JobFigures::default(), None);
                false
            } else {
                true
            }
        });
    }
}

/// Checks a completed push's whole-file `digest` and puts the file in place with its
/// metadata; returns the bytes received and the answer to the client.
fn put_in_place(
    landing: &Landing,
    summary: &crate::engine::Summary,
    digest: u128,
    metadata: Option<FileMetadata>,
) -> Result<(u64, Bytes), HandlerError> {
    let partial = landing.with_suffix(PARTIAL_SUFFIX);
    let journal = landing.with_suffix(JOURNAL_SUFFIX);
    if summary.digest != Some(digest) {
        let _ = landing.dir.remove_file(&journal);
        let _ = landing.dir.remove_file(&partial);
        return Err(exception(
            "DigestMismatch",
            "the bytes received do not have the sender's digest; nothing was kept",
        ));
    }
    if let Some(metadata) = metadata {
        landing
            .dir
            .open_file(&partial)
            .and_then(|file| metadata.apply(&file))
            .map_err(|e| io_exception("cannot set mode and mtime of", &landing.name, e))?;
    }
    landing
        .dir
        .rename_within(&partial, &landing.name)
        .and_then(|_| landing.dir.remove_file(&journal))
        .map_err(|e| io_exception("cannot put in place", &landing.name, e))?;
    let json = format!(
        "{{\"bytes\":{},\"datagrams\":{},\"duplicates\":{},\"unauthentic\":{},\"refused\":{},\"elapsed_us\":{}}}",
        summary.bytes,
        summary.datagrams,
        summary.duplicates,
        summary.unauthentic,
        summary.refused,
        summary.elapsed.as_micros()
    );
    Ok((summary.bytes, Bytes::from(json)))
}

/// Bytes of datagram overhead (header and tag) in a form.
pub fn overhead(form: DatagramForm) -> usize {
    form.header_len() + TAG_LEN
}
