//! One shard: a pinned thread running one io_uring completion loop that owns its
//! connections, listeners, buffer pool, timers and files.
//!
//! Every buffer or structure whose address is handed to the kernel is owned by the shard
//! (boxed per connection, or in the pool) and is not freed or moved until the operation's
//! last completion arrives: a connection slot is only released when it has no receive, send
//! or connect in flight, and file operations keep their buffer in the op table.

use std::collections::{BinaryHeap, VecDeque};
use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;
use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::mesh::{AppMessage, Doorbell, Envelope, MeshEndpoint, ShardTask};
use crate::pool::{BufHandle, LocalPool, PoolShared, RETURNS};
use crate::protocol::{CloseReason, Protocol, Received, Transmit};
use crate::stats::{ShardStats, StatsSnapshot};
use crate::sys::{self, RawSockAddr};

/// The provided-buffer group id every shard uses for receives.
const RECV_GROUP: u16 = 0;
/// How long a shard parks before retrying messages that did not fit a full SPSC ring.
const OUTBOX_RETRY: Duration = Duration::from_micros(20);
/// Most iovecs gathered into one `sendmsg`.
const MAX_IOV: usize = 64;
/// Pieces a connection's transmit queues have room for before they grow.
const TX_SEGMENTS: usize = 16;
/// `IORING_SEND_ZC_REPORT_USAGE`: ask the kernel whether a zero-copy send was copied.
const SEND_ZC_REPORT_USAGE: u16 = 8;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, set in a notification's result when data was copied.
const NOTIF_USAGE_ZC_COPIED: i32 = i32::MIN;

/// What an operation's `user_data` says it was: kind in the top byte, a 24-bit generation,
/// then a 32-bit slot index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum OpKind {
    Recv = 1,
    Send = 2,
    Connect = 3,
    Accept = 4,
    Doorbell = 5,
    File = 6,
    Cancel = 7,
    UdpRecv = 8,
    UdpSend = 9,
}

fn user_data(kind: OpKind, generation: u32, slot: u32) -> u64 {
    (kind as u64) << 56 | (u64::from(generation) & 0xFF_FFFF) << 32 | u64::from(slot)
}

fn decode(ud: u64) -> (u8, u32, u32) {
    ((ud >> 56) as u8, ((ud >> 32) & 0xFF_FFFF) as u32, ud as u32)
}

/// Names a connection: its shard, slot and generation (a closed connection's id never
/// matches a later one in the same slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    shard: u16,
    slot: u32,
    generation: u32,
}

impl ConnId {
    /// The shard owning the connection.
    pub fn shard(&self) -> usize {
        usize::from(self.shard)
    }
}

/// Reacts to shard-level events: messages from other shards, timers, file completions.
pub trait ShardHandler {
    /// The shard started (its ring and pool are ready).
    fn on_start(&mut self, _ctx: &mut ShardCtx<'_>) {}
    /// A message from shard `from` (possibly this one).
    fn on_message(&mut self, _ctx: &mut ShardCtx<'_>, _from: usize, _msg: AppMessage) {}
    /// A timer set with [`ShardCtx::set_timer`] fired.
    fn on_timer(&mut self, _ctx: &mut ShardCtx<'_>, _token: u64) {}
    /// A file operation finished.
    fn on_file(&mut self, _ctx: &mut ShardCtx<'_>, _done: FileDone) {}
    /// A datagram arrived on a socket opened with [`ShardCtx::bind_udp`]. With GRO on,
    /// `payload` may hold several datagrams of `segment_size` bytes each (the last shorter).
    /// Dropping `payload` returns its buffer to the pool.
    fn on_datagram(
        &mut self,
        _ctx: &mut ShardCtx<'_>,
        _socket: UdpId,
        _from: Option<SocketAddr>,
        _payload: BufHandle,
        _segment_size: Option<u16>,
    ) {
    }
}

/// Names a UDP socket of a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpId {
    shard: u16,
    index: u32,
}

impl UdpId {
    /// The shard owning the socket.
    pub fn shard(&self) -> usize {
        usize::from(self.shard)
    }
}

/// Options of a UDP socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct UdpOptions {
    /// Generic receive offload: the kernel may coalesce consecutive datagrams from one
    /// sender into one payload (see the `segment_size` of
    /// [`ShardHandler::on_datagram`]).
    pub gro: bool,
    /// Socket receive buffer in bytes (`SO_RCVBUFFORCE` when permitted, else `SO_RCVBUF`,
    /// which the kernel caps at `net.core.rmem_max`). Bursts beyond it are dropped by the
    /// kernel, as UDP does.
    pub recv_buffer: Option<usize>,
}

/// Room for a recvmsg control message (a `UDP_GRO` cmsg needs 20 bytes).
const UDP_CONTROL_LEN: usize = 64;

struct UdpSock {
    fd: RawFd,
    /// The template the kernel lays each multishot recvmsg buffer out by.
    recv_msg: Box<libc::msghdr>,
    armed: bool,
    closing: bool,
    starved: bool,
}

/// One datagram send; boxed and reused so addresses given to the kernel stay put.
struct UdpSendOp {
    buf: Option<BufHandle>,
    addr: RawSockAddr,
    iov: libc::iovec,
    msg: libc::msghdr,
    control: [u64; 4],
}

/// A handler that ignores everything (messages are dropped, their buffers go home).
#[derive(Debug, Default)]
pub struct NoHandler;
impl ShardHandler for NoHandler {}

/// Builds each shard's handler on that shard's thread.
pub type HandlerFactory = Arc<dyn Fn(usize) -> Box<dyn ShardHandler> + Send + Sync>;
/// Builds a protocol for each accepted connection (argument: the accepting shard).
pub type ProtocolFactory = Arc<dyn Fn(usize) -> Box<dyn Protocol> + Send + Sync>;

/// A finished file operation.
#[derive(Debug)]
pub struct FileDone {
    /// The token given when the operation was started.
    pub token: u64,
    /// Bytes transferred, the new fd for an open, or 0.
    pub result: io::Result<u32>,
    /// The buffer of a read or write, handed back.
    pub buf: Option<BufHandle>,
}

/// How to open a file through the ring.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Open for writing (reading is always allowed).
    pub write: bool,
    /// Create if missing (mode 0644).
    pub create: bool,
    /// Truncate to zero length.
    pub truncate: bool,
    /// `O_DIRECT`: bypass the page cache; offsets, lengths and buffers must be aligned to
    /// the device block size (pool buffers are page aligned).
    pub direct: bool,
}

impl OpenOptions {
    fn flags(&self) -> i32 {
        let mut flags = libc::O_CLOEXEC
            | if self.write {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            };
        if self.create {
            flags |= libc::O_CREAT;
        }
        if self.truncate {
            flags |= libc::O_TRUNC;
        }
        if self.direct {
            flags |= libc::O_DIRECT;
        }
        flags
    }
}

impl ShardSettings {
    /// `TCP_NODELAY` (best effort) and the configured congestion control on `fd`.
    fn apply_tcp_options(&self, fd: RawFd) -> io::Result<()> {
        if self.tcp_nodelay {
            let _ = sys::set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        }
        if let Some(name) = &self.tcp_congestion {
            sys::set_bytes_opt(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, name.as_bytes())
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("TCP congestion control {name:?}: {e}"))
                })?;
        }
        Ok(())
    }
}

/// Per-shard settings derived from the public configuration.
#[derive(Clone)]
pub(crate) struct ShardSettings {
    pub(crate) ring_entries: u32,
    pub(crate) recv_buffers: u16,
    pub(crate) send_zc_threshold: Option<usize>,
    pub(crate) tcp_nodelay: bool,
    pub(crate) tcp_congestion: Option<String>,
    pub(crate) defer_taskrun: bool,
    pub(crate) busy_poll: Option<Duration>,
    pub(crate) shard_count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Open,
    Closing,
}

/// Send-side state; boxed so the msghdr/iovec addresses given to the kernel never move.
struct TxState {
    /// Filled by the protocol.
    pending: Transmit,
    /// Owned by the kernel while `in_flight`.
    inflight: Transmit,
    front_offset: usize,
    in_flight: bool,
    zc_notif_pending: bool,
    zc_sent: usize,
    iov: [libc::iovec; MAX_IOV],
    msg: libc::msghdr,
}

impl TxState {
    fn new() -> Box<Self> {
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let msg: libc::msghdr = unsafe { std::mem::zeroed() };
        Box::new(TxState {
            // Room for the pieces of a few frames; the copy buffers grow with the first
            // sends, so an idle connection holds almost nothing.
            pending: Transmit::with_capacity(TX_SEGMENTS, 0),
            inflight: Transmit::with_capacity(TX_SEGMENTS, 0),
            front_offset: 0,
            in_flight: false,
            zc_notif_pending: false,
            zc_sent: 0,
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOV],
            msg,
        })
    }

    fn idle_and_empty(&self) -> bool {
        !self.in_flight && self.pending.is_empty() && self.inflight.is_empty()
    }
}

struct Conn {
    id: ConnId,
    fd: RawFd,
    proto: Box<dyn Protocol>,
    tx: Box<TxState>,
    state: ConnState,
    recv_armed: bool,
    /// Receives go into the protocol's own buffer (see `Protocol::receives_into_own_buffer`).
    own_recv: bool,
    /// That buffer while a receive into it is in flight: the kernel writes into its
    /// spare capacity, so it stays here, untouched, until the completion.
    recv_buf: Option<bytes::BytesMut>,
    /// An own-buffer connection whose protocol had no buffer to give: ask again after
    /// its next event.
    recv_paused: bool,
    starved: bool,
    read_eof: bool,
    connect_addr: Option<Box<RawSockAddr>>,
    connect_inflight: bool,
    deadline: Option<Instant>,
    /// The earliest heap entry of this connection, so a deadline that keeps moving later
    /// (a heartbeat pushed back on every input) adds no entries: the entry is re-queued for
    /// the new deadline only when it comes due.
    timer_queued: Option<Instant>,
    dirty: bool,
    close_reason: Option<CloseReason>,
}

struct Listener {
    fd: RawFd,
    factory: ProtocolFactory,
    armed: bool,
    closing: bool,
    /// Accepting is paused until then: the process or system ran out of file
    /// descriptors. Re-armed by a timer, or sooner when a connection closes.
    paused_until: Option<Instant>,
    /// The pause after the next failure (doubles while failures go on).
    pause: Duration,
    /// Hand accepted connections round-robin to all shards (acceptor mode) instead of
    /// keeping them here.
    spread: bool,
    next_target: usize,
}

enum FileOpKind {
    Open(#[allow(dead_code)] CString),
    Read,
    Write,
    Other,
}

struct FileOp {
    token: u64,
    kind: FileOpKind,
    buf: Option<BufHandle>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct TimerEntry {
    at: Instant,
    key: u64,
}

const APP_TIMER_BIT: u64 = 1 << 63;
/// Marks a listener's resume timer (its index in the low bits).
const LISTENER_TIMER_BIT: u64 = 1 << 62;
/// The first pause of a listener out of file descriptors, and the longest.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(50);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// The state of one shard, owned by its thread.
pub(crate) struct Core {
    // The ring is declared first so it is dropped first: the kernel lets go of registered
    // and provided buffers before the pool memory can be freed.
    ring: IoUring,
    pub(crate) id: usize,
    settings: ShardSettings,
    pool: LocalPool,
    mesh: MeshEndpoint,
    doorbell: Arc<Doorbell>,
    doorbell_buf: Box<u64>,
    commands: Receiver<ShardTask>,
    stats_shared: Arc<ShardStats>,
    stats: StatsSnapshot,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<u32>,
    next_generation: u32,
    listeners: Vec<Option<Listener>>,
    files: Vec<Option<FileOp>>,
    free_files: Vec<u32>,
    udp: Vec<Option<UdpSock>>,
    // Boxed on purpose: the kernel holds pointers into in-flight ops, and growing the Vec
    // must not move them.
    #[allow(clippy::vec_box)]
    udp_sends: Vec<Box<UdpSendOp>>,
    free_udp_sends: Vec<u32>,
    timers: BinaryHeap<std::cmp::Reverse<TimerEntry>>,
    dirty: Vec<u32>,
    dirty_spare: Vec<u32>,
    starved: Vec<u32>,
    local_inbox: VecDeque<Envelope>,
    cqes: Vec<(u64, i32, u32)>,
    returns_local: Vec<u16>,
    returns_remote: Vec<(usize, u16)>,
    handler: Option<Box<dyn ShardHandler>>,
    now: Instant,
    stopping: bool,
    stop_deadline: Option<Instant>,
}

/// A shard's context, given to tasks and handlers running on it.
pub struct ShardCtx<'a> {
    core: &'a mut Core,
}

impl std::fmt::Debug for ShardCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCtx")
            .field("shard", &self.core.id)
            .finish()
    }
}

impl ShardCtx<'_> {
    /// This shard's index.
    pub fn shard_id(&self) -> usize {
        self.core.id
    }

    /// How many shards run.
    pub fn shard_count(&self) -> usize {
        self.core.settings.shard_count
    }

    /// The loop's current time.
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// A free buffer of this shard's pool, or `None` when the pool is exhausted (apply
    /// back-pressure: try again after buffers come home).
    pub fn alloc_buffer(&mut self) -> Option<BufHandle> {
        self.core.pool.alloc()
    }

    /// Sends a message to shard `to`'s handler (batched into the SPSC ring this iteration).
    pub fn send_to_shard(&mut self, to: usize, msg: AppMessage) {
        let from = self.core.id;
        self.core.post(to, Envelope::App { from, msg });
    }

    /// Sends a message to a connection's protocol, on whichever shard owns it.
    pub fn send_to_connection(&mut self, conn: ConnId, msg: AppMessage) {
        self.core.post(conn.shard(), Envelope::ToConn { conn, msg });
    }

    /// Runs `task` on shard `to` (boxed: for control, not per-operation work).
    pub fn run_on(&mut self, to: usize, task: ShardTask) {
        self.core.post(to, Envelope::Task(task));
    }

    /// Opens a TCP connection from this shard; the protocol sees `on_open` when connected.
    pub fn connect_tcp(
        &mut self,
        addr: SocketAddr,
        proto: Box<dyn Protocol>,
    ) -> io::Result<ConnId> {
        let fd = sys::tcp_socket(&addr)?;
        if let Err(e) = self.core.settings.apply_tcp_options(fd) {
            sys::close(fd);
            return Err(e);
        }
        Ok(self
            .core
            .start_connect(fd, RawSockAddr::from_inet(addr), proto))
    }

    /// Opens a Unix stream connection from this shard.
    pub fn connect_unix(&mut self, path: &Path, proto: Box<dyn Protocol>) -> io::Result<ConnId> {
        let raw = RawSockAddr::from_unix(path)?;
        let fd = sys::unix_socket()?;
        Ok(self.core.start_connect(fd, raw, proto))
    }

    /// Adopts a listening socket: accepts on it (multishot) with `factory`'s protocols.
    pub fn accept_on(&mut self, listen_fd: RawFd, factory: ProtocolFactory) {
        self.core.add_listener(listen_fd, factory, false);
    }

    /// Adopts a listening socket as the acceptor of all shards: accepted connections are
    /// handed round-robin to every shard (this one included) over the mesh.
    pub fn accept_and_spread(&mut self, listen_fd: RawFd, factory: ProtocolFactory) {
        self.core.add_listener(listen_fd, factory, true);
    }

    /// Adopts an already connected stream socket.
    pub fn adopt(&mut self, fd: RawFd, proto: Box<dyn Protocol>) -> ConnId {
        self.core.open_conn(fd, proto)
    }

    /// Closes a connection of this shard now (queued bytes may be lost).
    pub fn close(&mut self, conn: ConnId) {
        if let Some(slot) = self.core.slot_of(conn) {
            self.core.request_close(slot, CloseReason::Local);
        }
    }

    /// Calls the handler's `on_timer(token)` at `at` (microsecond resolution). `token` must
    /// be below 2^62.
    pub fn set_timer(&mut self, at: Instant, token: u64) {
        assert!(token < LISTENER_TIMER_BIT, "timer token too large");
        self.core.timers.push(std::cmp::Reverse(TimerEntry {
            at,
            key: APP_TIMER_BIT | token,
        }));
    }

    /// Opens a file; `on_file` receives the fd as the result.
    pub fn open_file(&mut self, path: &Path, options: OpenOptions, token: u64) -> io::Result<()> {
        let path = sys::cstring(path)?;
        let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(options.flags())
            .mode(0o644)
            .build();
        // The CString is kept in the op table until the completion.
        self.core
            .start_file(entry, token, FileOpKind::Open(path), None);
        Ok(())
    }

    /// Reads up to `len` bytes at `offset` into `buf` (a fixed-buffer read when `buf` is
    /// from this shard's pool). `on_file` hands the buffer back with its length set.
    pub fn read_file(
        &mut self,
        fd: RawFd,
        offset: u64,
        mut buf: BufHandle,
        len: usize,
        token: u64,
    ) {
        let len = len.min(buf.capacity()) as u32;
        buf.set_len(0);
        let ptr = buf.as_ptr();
        let entry = if buf.owner() == self.core.id {
            opcode::ReadFixed::new(types::Fd(fd), ptr, len, buf.id())
                .offset(offset)
                .build()
        } else {
            opcode::Read::new(types::Fd(fd), ptr, len)
                .offset(offset)
                .build()
        };
        self.core
            .start_file(entry, token, FileOpKind::Read, Some(buf));
    }

    /// Writes `buf`'s valid bytes at `offset` (fixed-buffer write when `buf` is ours).
    pub fn write_file(&mut self, fd: RawFd, offset: u64, buf: BufHandle, token: u64) {
        let ptr = buf.as_ptr();
        let len = buf.len() as u32;
        let entry = if buf.owner() == self.core.id {
            opcode::WriteFixed::new(types::Fd(fd), ptr, len, buf.id())
                .offset(offset)
                .build()
        } else {
            opcode::Write::new(types::Fd(fd), ptr, len)
                .offset(offset)
                .build()
        };
        self.core
            .start_file(entry, token, FileOpKind::Write, Some(buf));
    }

    /// `fsync` (or `fdatasync` when `data_only`).
    pub fn fsync_file(&mut self, fd: RawFd, data_only: bool, token: u64) {
        let flags = if data_only {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        let entry = opcode::Fsync::new(types::Fd(fd)).flags(flags).build();
        self.core.start_file(entry, token, FileOpKind::Other, None);
    }

    /// `fallocate(fd, mode, offset, len)`.
    pub fn fallocate_file(&mut self, fd: RawFd, offset: u64, len: u64, mode: i32, token: u64) {
        let entry = opcode::Fallocate::new(types::Fd(fd), len)
            .offset(offset)
            .mode(mode)
            .build();
        self.core.start_file(entry, token, FileOpKind::Other, None);
    }

    /// Closes a file descriptor through the ring.
    pub fn close_file(&mut self, fd: RawFd, token: u64) {
        let entry = opcode::Close::new(types::Fd(fd)).build();
        self.core.start_file(entry, token, FileOpKind::Other, None);
    }

    /// Opens a UDP socket bound to `addr` on this shard; datagrams arrive through
    /// [`ShardHandler::on_datagram`] (multishot recvmsg into provided buffers).
    pub fn bind_udp(
        &mut self,
        addr: SocketAddr,
        options: UdpOptions,
    ) -> io::Result<(UdpId, SocketAddr)> {
        let fd = sys::udp_socket(&addr)?;
        if let Some(bytes) = options.recv_buffer {
            let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
            if sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
                let _ = sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes);
            }
        }
        let setup = (if options.gro {
            sys::set_int_opt(fd, sys::SOL_UDP, sys::UDP_GRO, 1)
        } else {
            Ok(())
        })
        .and_then(|_| sys::bind(fd, &RawSockAddr::from_inet(addr)))
        .and_then(|_| sys::local_addr(fd));
        match setup {
            Ok(local) => Ok((self.core.add_udp(fd, options), local)),
            Err(e) => {
                sys::close(fd);
                Err(e)
            }
        }
    }

    /// Sends `buf` as one datagram to `to` or, with `segment_size` (GSO), as consecutive
    /// datagrams of that size. Each send is one SQE; all sends queued in one loop iteration
    /// reach the kernel in one `io_uring_enter`. The buffer returns to its pool afterwards.
    pub fn send_datagram(
        &mut self,
        socket: UdpId,
        to: SocketAddr,
        buf: BufHandle,
        segment_size: Option<u16>,
    ) {
        self.core.send_datagram(socket, to, buf, segment_size);
    }

    /// Closes a UDP socket of this shard.
    pub fn close_udp(&mut self, socket: UdpId) {
        self.core.close_udp(socket.index);
    }

    /// This shard's counters as of the last loop iteration.
    pub fn stats(&self) -> StatsSnapshot {
        self.core.stats
    }

    /// Stops this shard: listeners close, connections close, the thread exits.
    pub fn stop(&mut self) {
        self.core.begin_stop();
    }
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        settings: ShardSettings,
        pool_shared: Arc<PoolShared>,
        mesh: MeshEndpoint,
        doorbell: Arc<Doorbell>,
        commands: Receiver<ShardTask>,
        stats_shared: Arc<ShardStats>,
        handler: Box<dyn ShardHandler>,
    ) -> io::Result<Core> {
        let entries = settings.ring_entries;
        let mut builder = IoUring::builder();
        builder.setup_cqsize(entries * 8).setup_single_issuer();
        if settings.defer_taskrun {
            builder.setup_defer_taskrun().setup_taskrun_flag();
        } else {
            // The task-run flag tells a busy-polling loop that completions wait to be
            // run (cooperative task work is only run on entering the kernel).
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        let ring = builder.build(entries)?;
        let iovecs = pool_shared.mem.iovecs();
        // SAFETY: the iovecs describe the pool memory, which the `Arc<PoolShared>` keeps
        // alive until after this ring (declared first in `Core`) is dropped.
        unsafe { ring.submitter().register_buffers(&iovecs)? };
        let pool = LocalPool::new(pool_shared, settings.recv_buffers, RECV_GROUP);
        pool.provided.register(&ring)?;
        let count = usize::from(pool.shared.mem.count());
        let cq_len = (entries * 8) as usize;
        let mut core = Core {
            ring,
            id,
            pool,
            mesh,
            doorbell,
            doorbell_buf: Box::new(0),
            commands,
            stats_shared,
            stats: StatsSnapshot::default(),
            conns: Vec::new(),
            free_slots: Vec::new(),
            next_generation: 1,
            listeners: Vec::new(),
            files: Vec::new(),
            free_files: Vec::new(),
            udp: Vec::new(),
            udp_sends: Vec::new(),
            free_udp_sends: Vec::new(),
            timers: BinaryHeap::with_capacity(1024),
            dirty: Vec::with_capacity(1024),
            dirty_spare: Vec::with_capacity(1024),
            starved: Vec::with_capacity(1024),
            local_inbox: VecDeque::with_capacity(64),
            cqes: Vec::with_capacity(cq_len),
            returns_local: Vec::with_capacity(count),
            returns_remote: Vec::with_capacity(count * settings.shard_count),
            handler: Some(handler),
            now: Instant::now(),
            stopping: false,
            stop_deadline: None,
            settings,
        };
        core.pool.fill_ring();
        let shard = core.id;
        RETURNS.with(|r| {
            let mut r = r.borrow_mut();
            r.shard = shard;
            r.local = Vec::with_capacity(count);
            r.remote = Vec::with_capacity(count * core.settings.shard_count);
        });
        core.arm_doorbell();
        // Counters are readable (pool sizes included) as soon as `Shards::start` returns.
        core.publish_stats();
        Ok(core)
    }

    // ---- submission -------------------------------------------------------------------

    /// Queues an SQE, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid (and unmoved) until the operation's final
    /// completion has been reaped.
    unsafe fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: forwarded from the caller's contract.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::warn!(shard = self.id, error = %e, "io_uring submit failed");
            }
        }
    }

    fn arm_doorbell(&mut self) {
        let ptr = &mut *self.doorbell_buf as *mut u64 as *mut u8;
        let entry = opcode::Read::new(types::Fd(self.doorbell.fd), ptr, 8)
            .build()
            .user_data(user_data(OpKind::Doorbell, 0, 0));
        // SAFETY: `doorbell_buf` is boxed in `Core`, which outlives the ring's operations
        // (the ring is dropped first and cancels them).
        unsafe { self.push(entry) };
    }

    fn arm_recv(&mut self, slot: u32) {
        let now = self.now;
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        if conn.recv_armed || conn.state != ConnState::Open || conn.read_eof {
            return;
        }
        if conn.own_recv {
            let Some(mut buf) = conn
                .proto
                .recv_buffer(now)
                .filter(|b| b.capacity() > b.len())
            else {
                conn.recv_paused = true;
                return;
            };
            conn.recv_paused = false;
            conn.recv_armed = true;
            let spare = buf.spare_capacity_mut();
            let (ptr, len) = (
                spare.as_mut_ptr().cast::<u8>(),
                spare.len().min(u32::MAX as usize),
            );
            let entry = opcode::Recv::new(types::Fd(conn.fd), ptr, len as u32)
                .build()
                .user_data(user_data(OpKind::Recv, conn.id.generation, slot));
            // Moving the BytesMut moves its handle, not its heap storage, which `ptr`
            // points into.
            conn.recv_buf = Some(buf);
            // SAFETY: the kernel writes at most `len` bytes at `ptr`, the spare capacity
            // of the buffer now kept in `conn.recv_buf`; nothing touches that buffer until
            // this receive's completion takes it back, and the connection (with the buffer)
            // is not released while `recv_armed` is set.
            unsafe { self.push(entry) };
            return;
        }
        conn.recv_armed = true;
        conn.starved = false;
        let entry = opcode::RecvMulti::new(types::Fd(conn.fd), RECV_GROUP)
            .build()
            .user_data(user_data(OpKind::Recv, conn.id.generation, slot));
        // SAFETY: multishot receive references no memory of ours; buffers come from the
        // provided ring, whose memory outlives the ring.
        unsafe { self.push(entry) };
    }

    fn add_listener(&mut self, fd: RawFd, factory: ProtocolFactory, spread: bool) {
        let index = self.listeners.len() as u32;
        self.listeners.push(Some(Listener {
            fd,
            factory,
            armed: false,
            closing: false,
            paused_until: None,
            pause: ACCEPT_PAUSE_MIN,
            spread,
            next_target: self.id,
        }));
        self.arm_accept(index);
    }

    fn arm_accept(&mut self, index: u32) {
        let Some(l) = self.listeners[index as usize].as_mut() else {
            return;
        };
        if l.armed || l.closing || l.paused_until.is_some() {
            return;
        }
        l.armed = true;
        let entry = opcode::AcceptMulti::new(types::Fd(l.fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(OpKind::Accept, 0, index));
        // SAFETY: multishot accept references no memory of ours.
        unsafe { self.push(entry) };
    }

    /// Submits a file operation; `buf` (or the path an Open holds) stays in the op table
    /// until the completion, which reaches the handler with `token`.
    fn start_file(
        &mut self,
        entry: squeue::Entry,
        token: u64,
        kind: FileOpKind,
        buf: Option<BufHandle>,
    ) {
        let op = FileOp { token, kind, buf };
        let index = match self.free_files.pop() {
            Some(i) => {
                self.files[i as usize] = Some(op);
                i
            }
            None => {
                self.files.push(Some(op));
                (self.files.len() - 1) as u32
            }
        };
        let entry = entry.user_data(user_data(OpKind::File, 0, index));
        // SAFETY: the buffer or path the entry points into is held in `self.files[index]`
        // until the completion is reaped; pool memory and boxed CStrings do not move.
        unsafe { self.push(entry) };
    }

    // ---- UDP --------------------------------------------------------------------------

    fn add_udp(&mut self, fd: RawFd, options: UdpOptions) -> UdpId {
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_controllen = if options.gro { UDP_CONTROL_LEN } else { 0 };
        let index = self.udp.len() as u32;
        self.udp.push(Some(UdpSock {
            fd,
            recv_msg: msg,
            armed: false,
            closing: false,
            starved: false,
        }));
        self.arm_udp(index);
        UdpId {
            shard: self.id as u16,
            index,
        }
    }

    fn arm_udp(&mut self, index: u32) {
        let Some(sock) = self.udp.get_mut(index as usize).and_then(|u| u.as_mut()) else {
            return;
        };
        if sock.armed || sock.closing {
            return;
        }
        sock.armed = true;
        sock.starved = false;
        let entry = opcode::RecvMsgMulti::new(types::Fd(sock.fd), &*sock.recv_msg, RECV_GROUP)
            .build()
            .user_data(user_data(OpKind::UdpRecv, 0, index));
        // SAFETY: the msghdr template is boxed in the socket entry, which is only removed
        // after the multishot receive has ended (`armed` false).
        unsafe { self.push(entry) };
    }

    fn close_udp(&mut self, index: u32) {
        let Some(sock) = self.udp.get_mut(index as usize).and_then(|u| u.as_mut()) else {
            return;
        };
        if sock.closing {
            return;
        }
        sock.closing = true;
        if sock.armed {
            let target = user_data(OpKind::UdpRecv, 0, index);
            let entry = opcode::AsyncCancel::new(target)
                .build()
                .user_data(user_data(OpKind::Cancel, 0, 0));
            // SAFETY: cancellation references no memory.
            unsafe { self.push(entry) };
        } else {
            sys::close(sock.fd);
            self.udp[index as usize] = None;
        }
    }

    fn send_datagram(
        &mut self,
        socket: UdpId,
        to: SocketAddr,
        buf: BufHandle,
        segment_size: Option<u16>,
    ) {
        let fd = match self.udp.get(socket.index as usize).and_then(|u| u.as_ref()) {
            Some(sock) if usize::from(socket.shard) == self.id && !sock.closing => sock.fd,
            _ => return, // dropping `buf` sends it home
        };
        let index = match self.free_udp_sends.pop() {
            Some(i) => i,
            None => {
                self.udp_sends.push(Box::new(UdpSendOp {
                    buf: None,
                    addr: RawSockAddr::from_inet(to),
                    iov: libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    },
                    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
                    msg: unsafe { std::mem::zeroed() },
                    control: [0; 4],
                }));
                (self.udp_sends.len() - 1) as u32
            }
        };
        let op = &mut *self.udp_sends[index as usize];
        op.addr = RawSockAddr::from_inet(to);
        op.iov = libc::iovec {
            iov_base: buf.as_ptr().cast(),
            iov_len: buf.len(),
        };
        op.msg.msg_name = &mut op.addr.storage as *mut _ as *mut libc::c_void;
        op.msg.msg_namelen = op.addr.len;
        op.msg.msg_iov = &mut op.iov;
        op.msg.msg_iovlen = 1;
        match segment_size {
            Some(segment) => {
                op.msg.msg_controllen = sys::write_udp_segment_cmsg(&mut op.control, segment);
                op.msg.msg_control = op.control.as_mut_ptr().cast();
            }
            None => {
                op.msg.msg_controllen = 0;
                op.msg.msg_control = std::ptr::null_mut();
            }
        }
        op.buf = Some(buf);
        let entry = opcode::SendMsg::new(types::Fd(fd), &op.msg)
            .build()
            .user_data(user_data(OpKind::UdpSend, 0, index));
        // SAFETY: the msghdr, address, iovec, control bytes and the buffer all live in the
        // boxed op, which is not reused until its completion puts it back on the free list.
        unsafe { self.push(entry) };
    }

    fn on_udp_send(&mut self, index: u32, res: i32) {
        let Some(op) = self.udp_sends.get_mut(index as usize) else {
            return;
        };
        let buf = op.buf.take();
        self.free_udp_sends.push(index);
        if res >= 0 {
            self.stats.bytes_out += res as u64;
            self.stats.send_ops += 1;
        } else {
            tracing::debug!(shard = self.id, error = %io::Error::from_raw_os_error(-res), "datagram send failed");
        }
        drop(buf);
    }

    fn on_udp_recv(&mut self, index: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.pool.took_from_ring();
        }
        let Some(sock) = self.udp.get_mut(index as usize).and_then(|u| u.as_mut()) else {
            if let Some(bid) = bid {
                self.pool.recycle(bid);
            }
            return;
        };
        if !more {
            sock.armed = false;
        }
        let mut delivery = None;
        if let (Some(bid), true) = (bid, res > 0) {
            let data = self.pool.received(bid, res as usize);
            match types::RecvMsgOut::parse(data, &sock.recv_msg) {
                Ok(out) if !sock.closing && !out.is_payload_truncated() => {
                    let start = out.payload_data().as_ptr() as usize - data.as_ptr() as usize;
                    let from = sys::sockaddr_from_bytes(out.name_data());
                    let segment = sys::parse_udp_gro_cmsg(out.control_data());
                    delivery = Some((
                        self.pool.handle_range(bid, start, out.payload_data().len()),
                        from,
                        segment,
                    ));
                }
                _ => self.pool.recycle(bid),
            }
        } else if let Some(bid) = bid {
            self.pool.recycle(bid);
        }
        if res == -libc::ENOBUFS {
            sock.starved = true;
            self.stats.recv_starved += 1;
        }
        let (closing, armed, starved, fd) = (sock.closing, sock.armed, sock.starved, sock.fd);
        if let Some((payload, from, segment)) = delivery {
            self.stats.bytes_in += payload.len() as u64;
            self.stats.recv_ops += 1;
            let id = UdpId {
                shard: self.id as u16,
                index,
            };
            self.with_handler(|h, ctx| h.on_datagram(ctx, id, from, payload, segment));
        }
        if !armed {
            if closing {
                sys::close(fd);
                self.udp[index as usize] = None;
            } else if !starved {
                self.arm_udp(index);
            }
        }
    }

    // ---- connections ------------------------------------------------------------------

    fn alloc_slot(&mut self) -> (u32, u32) {
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & 0xFF_FFFF;
        if self.next_generation == 0 {
            self.next_generation = 1;
        }
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                (self.conns.len() - 1) as u32
            }
        };
        (slot, generation)
    }

    fn new_conn(&mut self, fd: RawFd, proto: Box<dyn Protocol>, state: ConnState) -> (u32, ConnId) {
        let (slot, generation) = self.alloc_slot();
        let id = ConnId {
            shard: self.id as u16,
            slot,
            generation,
        };
        self.conns[slot as usize] = Some(Conn {
            id,
            fd,
            proto,
            tx: TxState::new(),
            state,
            recv_armed: false,
            own_recv: false,
            recv_buf: None,
            recv_paused: false,
            starved: false,
            read_eof: false,
            connect_addr: None,
            connect_inflight: false,
            deadline: None,
            timer_queued: None,
            dirty: false,
            close_reason: None,
        });
        self.stats.connections += 1;
        (slot, id)
    }

    /// Opens an accepted connection (the peer's address goes to the protocol first).
    fn open_conn(&mut self, fd: RawFd, mut proto: Box<dyn Protocol>) -> ConnId {
        if let Ok(peer) = sys::peer_addr(fd) {
            proto.on_peer_address(peer);
        }
        let (slot, id) = self.new_conn(fd, proto, ConnState::Open);
        self.on_established(slot);
        id
    }

    fn on_established(&mut self, slot: u32) {
        let now = self.now;
        if let Some(conn) = self.conns[slot as usize].as_mut() {
            conn.state = ConnState::Open;
            let id = conn.id;
            conn.proto.on_open(now, id);
            conn.own_recv = conn.proto.receives_into_own_buffer();
        }
        self.arm_recv(slot);
        self.mark_dirty(slot);
    }

    fn start_connect(&mut self, fd: RawFd, addr: RawSockAddr, proto: Box<dyn Protocol>) -> ConnId {
        let (slot, id) = self.new_conn(fd, proto, ConnState::Connecting);
        let conn = self.conns[slot as usize].as_mut().expect("just created");
        let addr = conn.connect_addr.insert(Box::new(addr));
        let entry = opcode::Connect::new(types::Fd(fd), addr.as_ptr(), addr.len)
            .build()
            .user_data(user_data(OpKind::Connect, id.generation, slot));
        conn.connect_inflight = true;
        // SAFETY: the sockaddr is boxed in the connection, which is not released while
        // `connect_inflight` is set.
        unsafe { self.push(entry) };
        id
    }

    fn slot_of(&self, id: ConnId) -> Option<u32> {
        if usize::from(id.shard) != self.id {
            return None;
        }
        let conn = self.conns.get(id.slot as usize)?.as_ref()?;
        (conn.id == id).then_some(id.slot)
    }

    fn conn_for_cqe(&mut self, slot: u32, generation: u32) -> Option<&mut Conn> {
        let conn = self.conns.get_mut(slot as usize)?.as_mut()?;
        (conn.id.generation == generation).then_some(conn)
    }

    fn mark_dirty(&mut self, slot: u32) {
        if let Some(conn) = self.conns[slot as usize].as_mut()
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Starts closing: shuts the socket down so in-flight operations complete promptly.
    fn request_close(&mut self, slot: u32, reason: CloseReason) {
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        if conn.state == ConnState::Closing {
            return;
        }
        let was_connecting = conn.state == ConnState::Connecting;
        conn.state = ConnState::Closing;
        conn.close_reason = Some(reason);
        sys::shutdown(conn.fd);
        if was_connecting && conn.connect_inflight {
            let target = user_data(OpKind::Connect, conn.id.generation, slot);
            let entry = opcode::AsyncCancel::new(target)
                .build()
                .user_data(user_data(OpKind::Cancel, 0, 0));
            // SAFETY: cancellation references no memory.
            unsafe { self.push(entry) };
        }
        self.finish_close_if_idle(slot);
    }

    /// Releases a closing connection once the kernel holds nothing of it.
    fn finish_close_if_idle(&mut self, slot: u32) {
        let Some(conn) = self.conns[slot as usize].as_ref() else {
            return;
        };
        if conn.state != ConnState::Closing
            || conn.recv_armed
            || conn.tx.in_flight
            || conn.connect_inflight
        {
            return;
        }
        let mut conn = self.conns[slot as usize].take().expect("checked above");
        self.free_slots.push(slot);
        self.stats.connections -= 1;
        sys::close(conn.fd);
        if self
            .listeners
            .iter()
            .flatten()
            .any(|l| l.paused_until.is_some())
        {
            // A descriptor is free again: a listener that ran out may accept.
            self.resume_accepting(None, self.now);
        }
        let reason = conn.close_reason.take().unwrap_or(CloseReason::Local);
        conn.proto.on_close(self.now, &reason);
    }

    /// Gives the protocol a chance to queue bytes, then starts a send if none is in flight.
    fn flush_conn(&mut self, slot: u32) {
        let now = self.now;
        let zc_threshold = self.settings.send_zc_threshold;
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        conn.dirty = false;
        if conn.state != ConnState::Open {
            return;
        }
        if conn.recv_paused {
            self.arm_recv(slot);
        }
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        conn.proto.poll_transmit(now, &mut conn.tx.pending);
        let deadline = conn.proto.poll_timeout();
        if deadline != conn.deadline {
            conn.deadline = deadline;
            if let Some(at) = deadline
                && conn.timer_queued.is_none_or(|queued| at < queued)
            {
                conn.timer_queued = Some(at);
                let key = u64::from(conn.id.generation) << 32 | u64::from(slot);
                self.timers.push(std::cmp::Reverse(TimerEntry { at, key }));
            }
        }
        let conn = self.conns[slot as usize].as_mut().expect("still here");
        let tx = &mut *conn.tx;
        if !tx.in_flight {
            if tx.inflight.is_empty() {
                std::mem::swap(&mut tx.pending, &mut tx.inflight);
                tx.front_offset = 0;
            }
            if !tx.inflight.is_empty() {
                let (entry, zc) = build_send(conn.fd, tx, zc_threshold);
                let entry = entry.user_data(user_data(OpKind::Send, conn.id.generation, slot));
                tx.in_flight = true;
                if zc {
                    self.stats.send_zc += 1;
                }
                // SAFETY: the msghdr and iovecs live in the boxed TxState, and the bytes they
                // point to are owned by `tx.inflight`, which is not touched until the send's
                // last completion (in_flight stays set until then); the connection slot is not
                // released while in_flight.
                unsafe { self.push(entry) };
                return;
            }
        }
        let conn = self.conns[slot as usize].as_mut().expect("still here");
        if (conn.read_eof || conn.proto.wants_close()) && conn.tx.idle_and_empty() {
            self.request_close(slot, CloseReason::Finished);
        }
    }

    // ---- completions ------------------------------------------------------------------

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        self.stats.completions += cqes.len() as u64;
        for &(ud, res, flags) in &cqes {
            self.complete(ud, res, flags);
        }
        cqes.clear();
        self.cqes = cqes;
    }

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        let (kind, generation, slot) = decode(ud);
        match kind {
            k if k == OpKind::Recv as u8 => self.on_recv(slot, generation, res, flags),
            k if k == OpKind::Send as u8 => self.on_send(slot, generation, res, flags),
            k if k == OpKind::Connect as u8 => self.on_connect(slot, generation, res),
            k if k == OpKind::Accept as u8 => self.on_accept(slot, res, flags),
            k if k == OpKind::Doorbell as u8 && (!self.stopping || res >= 0) => self.arm_doorbell(),
            k if k == OpKind::File as u8 => self.on_file(slot, res),
            k if k == OpKind::UdpRecv as u8 => self.on_udp_recv(slot, res, flags),
            k if k == OpKind::UdpSend as u8 => self.on_udp_send(slot, res),
            _ => {}
        }
    }

    fn on_recv(&mut self, slot: u32, generation: u32, res: i32, flags: u32) {
        let now = self.now;
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.pool.took_from_ring();
        }
        let Some(conn) = self.conns.get_mut(slot as usize).and_then(|c| c.as_mut()) else {
            if let Some(bid) = bid {
                self.pool.recycle(bid);
            }
            return;
        };
        if conn.id.generation != generation {
            if let Some(bid) = bid {
                self.pool.recycle(bid);
            }
            return;
        }
        if !more {
            conn.recv_armed = false;
        }
        if let Some(buf) = conn.recv_buf.take() {
            self.on_recv_owned(slot, res, buf);
            return;
        }
        if res > 0 {
            let len = res as usize;
            self.stats.bytes_in += len as u64;
            self.stats.recv_ops += 1;
            let bid = bid.expect("data without a provided buffer");
            if conn.state == ConnState::Open {
                let mut retained = false;
                conn.proto.handle_input(
                    now,
                    Received::from_pool(&self.pool, bid, len, &mut retained),
                );
                if !retained {
                    self.pool.recycle(bid);
                }
            } else {
                self.pool.recycle(bid);
            }
            self.mark_dirty(slot);
            if !more {
                self.arm_recv(slot);
            }
        } else {
            if let Some(bid) = bid {
                self.pool.recycle(bid);
            }
            if res == 0 {
                if conn.state == ConnState::Open && !conn.read_eof {
                    conn.read_eof = true;
                    conn.proto.handle_eof(now);
                }
                self.mark_dirty(slot);
            } else if res == -libc::ENOBUFS {
                conn.starved = true;
                self.stats.recv_starved += 1;
                self.starved.push(slot);
            } else if conn.state == ConnState::Open {
                let err = io::Error::from_raw_os_error(-res);
                self.request_close(slot, CloseReason::Error(err));
            }
        }
        self.finish_close_if_idle(slot);
    }

    /// A receive into a protocol's own buffer completed (the connection is current).
    fn on_recv_owned(&mut self, slot: u32, res: i32, mut buf: bytes::BytesMut) {
        let now = self.now;
        let conn = self.conns[slot as usize]
            .as_mut()
            .expect("the caller found it");
        let filled = res.max(0) as usize;
        if filled > 0 {
            // SAFETY: the kernel wrote `filled` bytes into the spare capacity right after
            // the buffer's length (the receive was posted for at most that capacity).
            unsafe { buf.set_len(buf.len() + filled) };
            self.stats.bytes_in += filled as u64;
            self.stats.recv_ops += 1;
        }
        if conn.state == ConnState::Open {
            conn.proto.handle_received(now, buf, filled);
        }
        if res == 0 && conn.state == ConnState::Open && !conn.read_eof {
            conn.read_eof = true;
            conn.proto.handle_eof(now);
        } else if res < 0 && conn.state == ConnState::Open {
            let err = io::Error::from_raw_os_error(-res);
            self.request_close(slot, CloseReason::Error(err));
        }
        self.mark_dirty(slot);
        if res > 0 {
            self.arm_recv(slot);
        }
        self.finish_close_if_idle(slot);
    }

    fn on_send(&mut self, slot: u32, generation: u32, res: i32, flags: u32) {
        let Some(conn) = self.conns.get_mut(slot as usize).and_then(|c| c.as_mut()) else {
            return;
        };
        if conn.id.generation != generation {
            return;
        }
        let tx = &mut *conn.tx;
        if cqueue::notif(flags) {
            // Only now does the kernel let go of a zero-copy send's memory.
            let sent = std::mem::take(&mut tx.zc_sent);
            tx.inflight.consume(sent, &mut tx.front_offset);
            tx.zc_notif_pending = false;
            tx.in_flight = false;
            if res & NOTIF_USAGE_ZC_COPIED != 0 {
                self.stats.send_zc_copied += 1;
            }
        } else {
            let sent = res.max(0) as usize;
            self.stats.bytes_out += sent as u64;
            self.stats.send_ops += 1;
            if cqueue::more(flags) {
                tx.zc_sent = sent;
                tx.zc_notif_pending = true;
            } else {
                tx.inflight.consume(sent, &mut tx.front_offset);
                tx.in_flight = false;
            }
            if res < 0 && conn.state == ConnState::Open {
                let err = io::Error::from_raw_os_error(-res);
                self.request_close(slot, CloseReason::Error(err));
            }
        }
        self.mark_dirty(slot);
        self.finish_close_if_idle(slot);
    }

    fn on_connect(&mut self, slot: u32, generation: u32, res: i32) {
        let Some(conn) = self.conn_for_cqe(slot, generation) else {
            return;
        };
        conn.connect_inflight = false;
        conn.connect_addr = None;
        if conn.state == ConnState::Closing {
            self.finish_close_if_idle(slot);
        } else if res < 0 {
            let err = io::Error::from_raw_os_error(-res);
            self.request_close(slot, CloseReason::ConnectFailed(err));
        } else {
            self.on_established(slot);
        }
    }

    fn on_accept(&mut self, index: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let Some(listener) = self
            .listeners
            .get_mut(index as usize)
            .and_then(|l| l.as_mut())
        else {
            if res >= 0 {
                sys::close(res);
            }
            return;
        };
        if !more {
            listener.armed = false;
        }
        if res >= 0 {
            if listener.closing {
                sys::close(res);
            } else {
                // The algorithm was checked when the listener's side was configured; a
                // failure here leaves the connection on the system's default.
                let _ = self.settings.apply_tcp_options(res);
                let target = if listener.spread {
                    let t = listener.next_target;
                    listener.next_target = (t + 1) % self.settings.shard_count;
                    t
                } else {
                    self.id
                };
                if target == self.id {
                    let proto = (listener.factory)(self.id);
                    self.stats.accepts += 1;
                    self.open_conn(res, proto);
                } else {
                    let factory = listener.factory.clone();
                    self.post(
                        target,
                        Envelope::Adopt {
                            fd: sys::owned_fd(res),
                            factory,
                        },
                    );
                }
            }
        } else if res != -libc::ECANCELED
            && res != -libc::EINVAL
            && res != -libc::EMFILE
            && res != -libc::ENFILE
        {
            tracing::warn!(shard = self.id, error = %io::Error::from_raw_os_error(-res), "accept failed");
        }
        let listener = self.listeners[index as usize].as_mut().expect("checked");
        if res >= 0 && listener.pause != ACCEPT_PAUSE_MIN {
            listener.pause = ACCEPT_PAUSE_MIN;
            tracing::info!(shard = self.id, "accepting connections again");
        }
        if !listener.armed {
            if listener.closing {
                sys::close(listener.fd);
                self.listeners[index as usize] = None;
            } else if res == -libc::EMFILE || res == -libc::ENFILE {
                // Retrying at once would spin a core on the same error: pause (the
                // pending connections wait in the listen backlog) and try again after
                // a while, or as soon as a connection of this shard closes.
                if listener.pause == ACCEPT_PAUSE_MIN {
                    tracing::warn!(
                        shard = self.id,
                        error = %io::Error::from_raw_os_error(-res),
                        "out of file descriptors: accepting paused until some close \
                         (raise `ulimit -n` or the server's connection limits)"
                    );
                }
                let pause = listener.pause;
                listener.pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                let at = self.now + pause;
                listener.paused_until = Some(at);
                self.stats.accept_pauses += 1;
                self.timers.push(std::cmp::Reverse(TimerEntry {
                    at,
                    key: LISTENER_TIMER_BIT | u64::from(index),
                }));
            } else if res >= 0 || res == -libc::EAGAIN {
                self.arm_accept(index);
            } else {
                // A listener that fails for good is dropped rather than retried in a loop.
                sys::close(listener.fd);
                self.listeners[index as usize] = None;
            }
        }
    }

    fn on_file(&mut self, index: u32, res: i32) {
        let Some(op) = self.files.get_mut(index as usize).and_then(|o| o.take()) else {
            return;
        };
        self.free_files.push(index);
        self.stats.file_ops += 1;
        let mut buf = op.buf;
        let result = if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            if let (FileOpKind::Read, Some(b)) = (&op.kind, buf.as_mut()) {
                b.set_len(res as usize);
            }
            Ok(res as u32)
        };
        self.with_handler(|h, ctx| {
            h.on_file(
                ctx,
                FileDone {
                    token: op.token,
                    result,
                    buf,
                },
            )
        });
    }

    // ---- loop -------------------------------------------------------------------------

    fn with_handler(&mut self, f: impl FnOnce(&mut dyn ShardHandler, &mut ShardCtx<'_>)) {
        if let Some(mut h) = self.handler.take() {
            f(&mut *h, &mut ShardCtx { core: self });
            self.handler = Some(h);
        }
    }

    fn post(&mut self, to: usize, env: Envelope) {
        if to == self.id {
            self.local_inbox.push_back(env);
        } else {
            self.stats.mesh_out += 1;
            self.mesh.outboxes[to].push_back(env);
        }
    }

    fn deliver(&mut self, env: Envelope) {
        match env {
            Envelope::ReturnBuffer(id) => {
                self.stats.buffers_returned_from_peers += 1;
                self.pool.recycle(id);
            }
            Envelope::App { from, msg } => self.with_handler(|h, ctx| h.on_message(ctx, from, msg)),
            Envelope::ToConn { conn, msg } => {
                if let Some(slot) = self.slot_of(conn) {
                    let now = self.now;
                    let c = self.conns[slot as usize].as_mut().expect("slot_of checked");
                    c.proto.handle_message(now, msg);
                    self.mark_dirty(slot);
                }
            }
            Envelope::Task(task) => task(&mut ShardCtx { core: self }),
            Envelope::Adopt { fd, factory } => {
                if self.stopping {
                    return; // dropping the OwnedFd closes it
                }
                let proto = factory(self.id);
                self.stats.accepts += 1;
                self.open_conn(std::os::fd::IntoRawFd::into_raw_fd(fd), proto);
            }
        }
    }

    fn drain_inputs(&mut self) {
        // Buffers dropped on this thread since the last iteration.
        RETURNS.with(|r| {
            let mut r = r.borrow_mut();
            std::mem::swap(&mut r.local, &mut self.returns_local);
            std::mem::swap(&mut r.remote, &mut self.returns_remote);
        });
        for i in 0..self.returns_local.len() {
            let id = self.returns_local[i];
            self.pool.recycle(id);
        }
        self.returns_local.clear();
        for i in 0..self.returns_remote.len() {
            let (owner, id) = self.returns_remote[i];
            self.post(owner, Envelope::ReturnBuffer(id));
        }
        self.returns_remote.clear();
        while let Some(id) = self.pool.shared.foreign_returns.pop() {
            self.pool.recycle(id);
        }
        // The SPSC mesh: one chunk per peer.
        self.stats.mesh_occupancy = self.mesh.inbound_len() as u64;
        for from in 0..self.mesh.consumers.len() {
            let Some(mut consumer) = self.mesh.consumers[from].take() else {
                continue;
            };
            let n = consumer.slots();
            if n > 0
                && let Ok(chunk) = consumer.read_chunk(n)
            {
                self.stats.mesh_in += n as u64;
                for env in chunk {
                    self.deliver(env);
                }
            }
            self.mesh.consumers[from] = Some(consumer);
        }
        let mut local = self.local_inbox.len();
        while local > 0 {
            let Some(env) = self.local_inbox.pop_front() else {
                break;
            };
            self.deliver(env);
            local -= 1;
        }
        while let Ok(task) = self.commands.try_recv() {
            task(&mut ShardCtx { core: self });
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        while let Some(std::cmp::Reverse(top)) = self.timers.peek() {
            if top.at > now {
                break;
            }
            let std::cmp::Reverse(entry) = self.timers.pop().expect("peeked");
            if entry.key & APP_TIMER_BIT != 0 {
                let token = entry.key & !APP_TIMER_BIT;
                self.with_handler(|h, ctx| h.on_timer(ctx, token));
                continue;
            }
            if entry.key & LISTENER_TIMER_BIT != 0 {
                self.resume_accepting(Some((entry.key & !LISTENER_TIMER_BIT) as u32), now);
                continue;
            }
            let slot = entry.key as u32;
            let generation = (entry.key >> 32) as u32;
            let Some(conn) = self.conn_for_cqe(slot, generation) else {
                continue;
            };
            if conn.timer_queued == Some(entry.at) {
                conn.timer_queued = None;
            }
            match conn.deadline {
                Some(at) if at <= now => {
                    conn.deadline = None;
                    conn.proto.handle_timeout(now);
                    self.mark_dirty(slot);
                }
                Some(at) if conn.timer_queued.is_none() => {
                    // The deadline moved later since this entry was queued: follow it.
                    conn.timer_queued = Some(at);
                    self.timers
                        .push(std::cmp::Reverse(TimerEntry { at, key: entry.key }));
                }
                _ => {}
            }
        }
    }

    /// Re-arms paused listeners (`index`, or all with `None`) whose pause is over, or
    /// every paused one when a connection just closed (`now` is then far enough).
    fn resume_accepting(&mut self, index: Option<u32>, now: Instant) {
        let indices: Vec<u32> = match index {
            Some(i) => vec![i],
            None => (0..self.listeners.len() as u32).collect(),
        };
        for i in indices {
            let Some(l) = self.listeners.get_mut(i as usize).and_then(|l| l.as_mut()) else {
                continue;
            };
            if l.paused_until
                .is_some_and(|at| at <= now || index.is_none())
            {
                l.paused_until = None;
                self.arm_accept(i);
            }
        }
    }

    fn flush_dirty(&mut self) {
        // Sending may make more connections dirty; those wait for the next iteration.
        std::mem::swap(&mut self.dirty, &mut self.dirty_spare);
        for i in 0..self.dirty_spare.len() {
            let slot = self.dirty_spare[i];
            self.flush_conn(slot);
        }
        self.dirty_spare.clear();
    }

    fn rearm_starved(&mut self) {
        if self.pool.in_ring() > 0 {
            for index in 0..self.udp.len() as u32 {
                if self.udp[index as usize]
                    .as_ref()
                    .is_some_and(|u| u.starved && !u.armed)
                {
                    self.arm_udp(index);
                }
            }
        }
        if self.starved.is_empty() {
            return;
        }
        // Wait for a few buffers so a starved connection does not flap on every one.
        let low_water = (self.pool.recv_target() / 8).max(1);
        if self.pool.in_ring() < low_water {
            return;
        }
        while let Some(slot) = self.starved.pop() {
            if let Some(conn) = self.conns[slot as usize].as_mut()
                && conn.starved
            {
                conn.starved = false;
                self.arm_recv(slot);
            }
        }
    }

    fn begin_stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.stop_deadline = Some(self.now + Duration::from_secs(5));
        for index in 0..self.listeners.len() {
            if let Some(l) = self.listeners[index].as_mut() {
                l.closing = true;
                if l.armed {
                    let target = user_data(OpKind::Accept, 0, index as u32);
                    let entry = opcode::AsyncCancel::new(target)
                        .build()
                        .user_data(user_data(OpKind::Cancel, 0, 0));
                    // SAFETY: cancellation references no memory.
                    unsafe { self.push(entry) };
                } else {
                    sys::close(l.fd);
                    self.listeners[index] = None;
                }
            }
        }
        for slot in 0..self.conns.len() as u32 {
            self.request_close(slot, CloseReason::Shutdown);
        }
        for index in 0..self.udp.len() as u32 {
            self.close_udp(index);
        }
    }

    fn drained(&self) -> bool {
        self.conns.iter().all(Option::is_none)
            && self.listeners.iter().all(Option::is_none)
            && self.files.iter().all(Option::is_none)
            && self.udp.iter().all(Option::is_none)
            && self.free_udp_sends.len() == self.udp_sends.len()
    }

    fn has_pending_work(&self) -> bool {
        !self.dirty.is_empty()
            || !self.local_inbox.is_empty()
            || self.timers.peek().is_some_and(|t| t.0.at <= self.now)
            || RETURNS.with(|r| {
                r.try_borrow()
                    .is_ok_and(|r| !r.local.is_empty() || !r.remote.is_empty())
            })
    }

    fn publish_stats(&mut self) {
        self.stats.pool_free = self.pool.free_count() as u64;
        self.stats.pool_in_recv_ring = u64::from(self.pool.in_ring());
        self.stats.pool_lent = u64::from(
            self.pool
                .shared
                .handles_out
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        self.stats_shared.publish(&self.stats);
    }

    /// Looks for work without sleeping for up to `busy_poll`: completions, task work
    /// the kernel holds for this ring, messages, commands. True if something came.
    fn busy_poll(&mut self, spin: Duration) -> bool {
        let _ = self.ring.submitter().submit();
        let until = Instant::now() + spin;
        loop {
            if !self.ring.completion().is_empty() {
                return true;
            }
            if self.ring.submission().taskrun() {
                // Entering the kernel runs the pending task work: its completions land.
                let _ = self.ring.submitter().submit();
                return true;
            }
            if self.mesh.has_inbound()
                || !self.commands.is_empty()
                || !self.pool.shared.foreign_returns.is_empty()
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    fn wait(&mut self) {
        if self.has_pending_work() {
            let _ = self.ring.submitter().submit();
            return;
        }
        if let Some(spin) = self.settings.busy_poll
            && !self.stopping
            && self.busy_poll(spin)
        {
            self.now = Instant::now();
            self.stats.busy_polled += 1;
            return;
        }
        let sub = self.ring.submitter();
        self.doorbell.begin_park();
        if self.mesh.has_inbound()
            || !self.commands.is_empty()
            || !self.pool.shared.foreign_returns.is_empty()
        {
            self.doorbell.end_park();
            let _ = sub.submit();
            return;
        }
        let next = self.timers.peek().map(|t| t.0.at);
        let next = match (next, self.stop_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Messages waiting for room in a full ring: retry soon, without spinning.
        let next = if self.mesh.has_outbound() {
            let retry = self.now + OUTBOX_RETRY;
            Some(next.map_or(retry, |n| n.min(retry)))
        } else {
            next
        };
        let started = Instant::now();
        let result = match next {
            Some(at) => {
                let d = at.saturating_duration_since(started);
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                sub.submit_with_args(1, &args)
            }
            None => sub.submit_and_wait(1),
        };
        self.doorbell.end_park();
        // The completions about to be reaped happened while parked: they must see the
        // time now, not the time before the park (a connection accepted after an idle
        // minute would otherwise start its handshake timer a minute in the past).
        self.now = Instant::now();
        if let Err(e) = result
            && !matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY)
            )
        {
            tracing::warn!(shard = self.id, error = %e, "io_uring wait failed");
        }
        self.stats.wakeups += 1;
        self.stats.parked_ns += started.elapsed().as_nanos() as u64;
    }

    pub(crate) fn run(&mut self) {
        self.with_handler(|h, ctx| h.on_start(ctx));
        loop {
            self.now = Instant::now();
            self.drain_inputs();
            self.fire_timers();
            self.flush_dirty();
            self.rearm_starved();
            self.pool.publish();
            self.mesh.flush();
            self.publish_stats();
            if self.stopping
                && (self.drained() || self.stop_deadline.is_some_and(|d| self.now >= d))
                && !self.mesh.has_outbound()
            {
                break;
            }
            self.wait();
            self.reap();
        }
        // Whatever the kernel did not release within the grace period is closed when the
        // core is dropped (see `Drop`), after which the ring goes first.
        self.publish_stats();
        RETURNS.with(|r| r.borrow_mut().shard = usize::MAX);
    }
}

/// Builds the send for the front of `tx.inflight`: a gathered `sendmsg`, zero-copy when
/// enabled and large enough. Returns the entry and whether it is zero-copy.
fn build_send(fd: RawFd, tx: &mut TxState, zc_threshold: Option<usize>) -> (squeue::Entry, bool) {
    let mut n = 0;
    let mut total = 0;
    let mut skip = tx.front_offset;
    for seg in &tx.inflight.segments {
        if n == MAX_IOV {
            break;
        }
        let bytes = tx.inflight.segment_bytes(seg);
        let bytes = &bytes[skip..];
        skip = 0;
        tx.iov[n] = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        total += bytes.len();
        n += 1;
    }
    tx.msg.msg_iov = tx.iov.as_mut_ptr();
    tx.msg.msg_iovlen = n as _;
    let zc = zc_threshold.is_some_and(|t| total >= t);
    let entry = if zc {
        opcode::SendMsgZc::new(types::Fd(fd), &tx.msg)
            .ioprio(SEND_ZC_REPORT_USAGE)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    } else {
        opcode::SendMsg::new(types::Fd(fd), &tx.msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    };
    (entry, zc)
}

impl Drop for Core {
    fn drop(&mut self) {
        // Leave no open descriptors behind (the grace period ran out, or `run` never ran).
        // Only the descriptors are closed here: the connection state (msghdrs, iovecs,
        // queued buffers) that in-flight operations may still point to is freed after this
        // body, when the fields drop — the ring, declared first, goes first. Before that, a
        // synchronous cancel of everything waits until the kernel has let go of it all.
        let timeout = types::Timespec::new().sec(1);
        let _ = self
            .ring
            .submitter()
            .register_sync_cancel(Some(timeout), types::CancelBuilder::any());
        for conn in self.conns.iter().flatten() {
            sys::close(conn.fd);
        }
        for l in self.listeners.iter().flatten() {
            sys::close(l.fd);
        }
        for u in self.udp.iter().flatten() {
            sys::close(u.fd);
        }
    }
}

pub(crate) fn pool_bytes(count: u16, buf_size: usize) -> u64 {
    (buf_size.next_multiple_of(crate::pool::BUFFER_ALIGN) * usize::from(count)) as u64
}
