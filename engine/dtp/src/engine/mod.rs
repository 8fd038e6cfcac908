//! DTP transfers on a shard: one UDP socket (batched sends with GSO, receives with GRO,
//! all through io_uring), the sessions that send and receive on it, paced by the shard's
//! microsecond timers. A [`DtpEngine`] runs its own shard thread; callers (the service's
//! handlers, the CLI) hand it transfers to run ([`SendPlan`], [`ReceivePlan`]) and follow
//! them through a [`Transfer`].
//!
//! Memory is bounded by configuration: at most `max_sessions` sessions, each with one
//! read-ahead buffer of [`STAGING`] bytes (only where the file cannot be mapped) or
//! four write-behind runs of a huge page each (`writer::RUN_BUFFERS`, `writer::RUN`)
//! written by at most three threads, and the shard's pool of send and receive buffers.

mod first_pass;
mod in_order;
mod receiving;
pub mod routes;
mod sending;
mod shard;
mod write_pool;
mod writer;

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hawser_replicate::DirectFile;
use hawser_shards::{AppMessage, HandlerFactory, Shards, ShardsConfig, UdpOptions};
use hawser_wire::dtp::{DatagramForm, IntervalSet};

use crate::digest::BlockDigests;
use crate::rate::ControllerKind;
pub use first_pass::SentDigests;

/// Bytes a session reads ahead of its sending.
pub const STAGING: usize = 1 << 20;
/// Bytes of each send and receive buffer of the shard: one GSO batch, or one GRO run.
const BUFFER: usize = 64 * 1024;

/// How an engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The data socket's address (port 0: any).
    pub bind: SocketAddr,
    /// Sessions running at once; more are refused.
    pub max_sessions: usize,
    /// The socket's receive and send buffers (bursts beyond the receive buffer are
    /// dropped by the kernel). The default, 128 MiB (the kernel doubles it), holds about
    /// 200 ms at 10 Gbit/s: a receiving shard descheduled for tens of milliseconds then
    /// leaves a queue the rate control sees and gives way to, not a loss that costs
    /// resends. Without `CAP_NET_ADMIN` the kernel caps it at `net.core.rmem_max`.
    pub socket_buffer: usize,
    /// How often a receiver reports.
    pub report_interval: Duration,
    /// A session that hears nothing from its peer for this long fails.
    pub idle_timeout: Duration,
    /// Send buffers of the shard (each [`BUFFER`] bytes).
    pub buffers: u16,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            max_sessions: 64,
            socket_buffer: 128 << 20,
            report_interval: Duration::from_millis(10),
            idle_timeout: Duration::from_secs(30),
            buffers: 512,
        }
    }
}

/// Why a transfer could not start or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine runs `max_sessions` sessions already.
    #[error("{0} DTP sessions run already (the server's limit); try again later")]
    Busy(usize),
    /// A session with this id runs already.
    #[error("DTP session {0} exists already")]
    Exists(u32),
    /// The engine has stopped.
    #[error("the DTP engine has stopped")]
    Stopped,
    /// The transfer failed.
    #[error("{0}")]
    Failed(String),
}

/// What a session sends: a file's bytes, paced, to a peer.
#[derive(Debug)]
pub struct SendPlan {
    /// The session.
    pub session_id: u32,
    /// The session's datagram key.
    pub key: [u8; 32],
    /// Only UDP peers at this address are heard (the nexus peer's).
    pub peer_ip: IpAddr,
    /// Where to send, when known (a push); otherwise the receiver's hello tells.
    pub peer: Option<SocketAddr>,
    /// The payload.
    pub file: File,
    /// The payload's size.
    pub total_size: u64,
    /// The bytes to send (empty: all).
    pub wanted: IntervalSet,
    /// The datagrams' form.
    pub form: DatagramForm,
    /// Bytes of each datagram (UDP payload), header and tag included.
    pub datagram_size: u16,
    /// Never faster than this many bytes per second (0: as fast as the path allows).
    pub max_rate: u64,
    /// How the rate is found.
    pub controller: ControllerKind,
    /// Hash the blocks the first pass sends whole, for [`Transfer::sent_digests`] (a
    /// push's payload digest without a second read of the file).
    pub hash_sent_blocks: bool,
}

/// Writes a receiver's journal: the [`TransferState`](crate::TransferState) bytes.
pub type Journal = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;

/// What a session receives: a payload written into a file at each datagram's offset.
pub struct ReceivePlan {
    /// The session.
    pub session_id: u32,
    /// The session's datagram key.
    pub key: [u8; 32],
    /// Only UDP peers at this address are heard (the nexus peer's).
    pub peer_ip: IpAddr,
    /// The sender's data socket, when known (a pull: the hello goes there).
    pub peer: Option<SocketAddr>,
    /// Where the payload goes (written at its offsets).
    pub file: File,
    /// The same file opened for writes past the page cache, where the file system takes
    /// them: the page-aligned part of each run of datagrams goes through it.
    pub direct: Option<DirectFile>,
    /// The payload's size.
    pub total_size: u64,
    /// The datagrams' form.
    pub form: DatagramForm,
    /// What arrived before (a resumed transfer), and its blocks' digests.
    pub received: IntervalSet,
    /// Digests of blocks received whole before.
    pub digests: BlockDigests,
    /// Journals the state every `journal_every` (and when the transfer ends).
    pub journal: Option<(Journal, Duration)>,
}

impl std::fmt::Debug for ReceivePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivePlan")
            .field("session_id", &self.session_id)
            .field("peer", &self.peer)
            .field("total_size", &self.total_size)
            .finish_non_exhaustive()
    }
}

/// Counters of a running transfer, readable from any thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Payload bytes: received new (a receiver) or sent, resends included (a sender).
    pub bytes: AtomicU64,
    /// Datagrams received or sent.
    pub datagrams: AtomicU64,
    /// Bytes sent again for holes (a sender).
    pub resent: AtomicU64,
    /// The pacing rate, bytes per second (a sender).
    pub rate: AtomicU64,
    /// The smoothed round trip in microseconds (a sender; 0: not yet measured).
    pub rtt_us: AtomicU64,
    /// Duplicates, unauthentic and refused datagrams (a receiver).
    pub dropped: AtomicU64,
    /// New payload bytes the receiver has: received (a receiver) or reported in its
    /// feedback (a sender), the goodput either way.
    pub delivered: AtomicU64,
    /// A sender's digests of the blocks its first pass sent whole.
    sent_digests: SentDigests,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Payload bytes received new, or sent (resends included).
    pub bytes: u64,
    /// Datagrams received or sent.
    pub datagrams: u64,
    /// Bytes sent again for holes.
    pub resent: u64,
    /// Duplicate datagrams (a receiver).
    pub duplicates: u64,
    /// Datagrams dropped for their tag (a receiver).
    pub unauthentic: u64,
    /// Authentic datagrams outside the session or request (a receiver).
    pub refused: u64,
    /// The payload's digest (a receiver that completed).
    pub digest: Option<u128>,
    /// How long it ran.
    pub elapsed: Duration,
}

/// A running transfer.
#[derive(Debug)]
pub struct Transfer {
    session_id: u32,
    progress: Arc<Progress>,
    done: mpsc::Receiver<Result<Summary, String>>,
    engine: EngineHandle,
}

impl Transfer {
    /// The session.
    pub fn session_id(&self) -> u32 {
        self.session_id
    }

    /// Its counters.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Waits up to `timeout` for the end: `None` if it still runs.
    pub fn wait(&self, timeout: Duration) -> Option<Result<Summary, EngineError>> {
        match self.done.recv_timeout(timeout) {
            Ok(result) => Some(result.map_err(EngineError::Failed)),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(EngineError::Stopped)),
        }
    }

    /// A sender's digests of the blocks its first pass sent whole (see
    /// [`SentDigests`]), waiting up to `timeout` for the first pass to end.
    pub fn sent_digests(&self, timeout: Duration) -> FirstPass {
        // The shard hands them over at the latest when the session ends, then drops its
        // reference: looked at first, an end seen here had handed them over already.
        let ended = Arc::strong_count(&self.progress) == 1;
        match self.progress.sent_digests.take(timeout) {
            Some(digests) => FirstPass::Hashed(digests),
            None if ended => FirstPass::Ended,
            None => FirstPass::Sending,
        }
    }

    /// Ends the transfer now (a sender stops sending, a receiver flushes what it has and
    /// journals it); [`wait`](Self::wait) then tells how it ended.
    pub fn stop(&self) {
        self.engine.command(Command::Stop(self.session_id));
    }
}

/// What [`Transfer::sent_digests`] found.
#[derive(Debug)]
pub enum FirstPass {
    /// The first pass is over: the digests of the blocks it sent whole.
    Hashed(BlockDigests),
    /// Still sending its first pass.
    Sending,
    /// The session ended and has none to hand over (taken already, or not hashed).
    Ended,
}

/// What the engine's shard is told.
pub(crate) enum Command {
    Send(
        Box<SendPlan>,
        Arc<Progress>,
        mpsc::Sender<Result<Summary, String>>,
    ),
    Receive(
        Box<ReceivePlan>,
        Arc<Progress>,
        mpsc::Sender<Result<Summary, String>>,
    ),
    Stop(u32),
    /// Answered once every command before it has been handled.
    Barrier(mpsc::Sender<()>),
}

/// Hands commands to the engine's shard.
#[derive(Clone)]
struct EngineHandle {
    commands: mpsc::Sender<Command>,
    shards: Arc<Mutex<Option<Shards>>>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineHandle")
    }
}

/// The message tag that tells the shard to read its commands.
const COMMANDS: u64 = 1;

impl EngineHandle {
    fn command(&self, command: Command) -> bool {
        if self.commands.send(command).is_err() {
            return false;
        }
        let shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        let Some(shards) = shards.as_ref() else {
            return false;
        };
        shards
            .run_on(0, |ctx: &mut hawser_shards::ShardCtx<'_>| {
                ctx.send_to_shard(0, AppMessage::new(COMMANDS, 0))
            })
            .is_ok()
    }
}

/// A DTP engine: its shard, socket and sessions.
#[derive(Debug)]
pub struct DtpEngine {
    handle: EngineHandle,
    local: SocketAddr,
    sessions: Arc<AtomicU64>,
    max_sessions: usize,
    stopped: Arc<AtomicBool>,
}

impl DtpEngine {
    /// Starts the shard and binds the data socket.
    pub fn start(config: EngineConfig) -> io::Result<DtpEngine> {
        let (commands, inbox) = mpsc::channel();
        let inbox = Arc::new(Mutex::new(Some(inbox)));
        let sessions = Arc::new(AtomicU64::new(0));
        let state = shard::Setup {
            config: config.clone(),
            inbox,
            sessions: Arc::clone(&sessions),
        };
        let factory: HandlerFactory = Arc::new(move |_| Box::new(shard::DtpShard::new(&state)));
        let shards = Shards::start(ShardsConfig {
            shards: 1,
            buffers: config.buffers.max(64),
            buffer_size: BUFFER,
            recv_buffers: config.buffers.max(64) / 2,
            handler: Some(factory),
            ..ShardsConfig::default()
        })
        .map_err(|e| io::Error::other(e.to_string()))?;
        let options = UdpOptions {
            gro: true,
            recv_buffer: Some(config.socket_buffer),
            send_buffer: Some(config.socket_buffer),
        };
        let bind = config.bind;
        let bound = shards
            .call_on(0, move |ctx| {
                let (socket, local) = ctx.bind_udp(bind, options)?;
                shard::DtpShard::adopt_socket(ctx, socket);
                Ok::<_, io::Error>(local)
            })
            .map_err(|e| io::Error::other(e.to_string()))?;
        let local = match bound {
            Ok(local) => local,
            Err(e) => {
                shards.shutdown();
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot bind the DTP data socket at {bind}: {e}"),
                ));
            }
        };
        Ok(DtpEngine {
            handle: EngineHandle {
                commands,
                shards: Arc::new(Mutex::new(Some(shards))),
            },
            local,
            sessions,
            max_sessions: config.max_sessions,
            stopped: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The data socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sessions running now.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    fn admit(&self) -> Result<(), EngineError> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(EngineError::Stopped);
        }
        if self.sessions.load(Ordering::Relaxed) >= self.max_sessions as u64 {
            return Err(EngineError::Busy(self.max_sessions));
        }
        Ok(())
    }

    fn start_transfer(
        &self,
        session_id: u32,
        make: impl FnOnce(Arc<Progress>, mpsc::Sender<Result<Summary, String>>) -> Command,
    ) -> Result<Transfer, EngineError> {
        self.admit()?;
        let progress = Arc::new(Progress::default());
        let (done, result) = mpsc::channel();
        let (ack, opened) = mpsc::channel();
        if !self.handle.command(make(Arc::clone(&progress), done)) {
            return Err(EngineError::Stopped);
        }
        // The session must exist on the shard before the peer is told to send: a first
        // datagram arriving earlier would be dropped, and a one-datagram transfer stall.
        if !self.handle.command(Command::Barrier(ack)) || opened.recv().is_err() {
            return Err(EngineError::Stopped);
        }
        Ok(Transfer {
            session_id,
            progress,
            done: result,
            engine: self.handle.clone(),
        })
    }

    /// Starts sending.
    pub fn send(&self, plan: SendPlan) -> Result<Transfer, EngineError> {
        let id = plan.session_id;
        self.start_transfer(id, |p, d| Command::Send(Box::new(plan), p, d))
    }

    /// Starts receiving.
    pub fn receive(&self, plan: ReceivePlan) -> Result<Transfer, EngineError> {
        let id = plan.session_id;
        self.start_transfer(id, |p, d| Command::Receive(Box::new(plan), p, d))
    }

    /// Stops the shard: running transfers end as failed.
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let shards = self
            .handle
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(shards) = shards {
            shards.shutdown();
        }
    }
}

impl Drop for DtpEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// 32 random bytes from the system (keys, session ids).
pub fn random_bytes() -> io::Result<[u8; 32]> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A time far enough in the future to mean "never".
pub(crate) fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(3600)
}
