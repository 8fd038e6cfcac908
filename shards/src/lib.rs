//! # hawser-shards: the thread-per-core io_uring engine room
//!
//! A [`Shards`] instance runs `N` threads, each pinned to a core and each driving its own
//! `io_uring` (the `io-uring` crate, no runtime on top). A shard's loop batches its
//! submissions, processes completions, timers and messages from other shards, and parks in
//! `io_uring_enter` when there is nothing to do. Everything a shard touches is its own:
//!
//! - **connections** (TCP, Unix stream) live on one shard for life. Accepts are multishot;
//!   accepted connections are handed round-robin to the shards (see "Accept spreading").
//!   UDP sockets receive with multishot `recvmsg` and send batched `sendmsg`, with GSO and
//!   GRO as options.
//! - **buffers** come from a per-shard pool registered with the ring (`register_buffers`).
//!   Part of the pool is offered to the kernel as a provided-buffer ring, and every
//!   connection receives with one multishot `recv` that picks buffers from it. A protocol can
//!   keep a received buffer (zero-copy), send pool buffers or shared [`bytes::Bytes`] without
//!   copying them, and lend a buffer to another shard: a [`BufHandle`] goes home to its owner
//!   when dropped, wherever that is. When the pool runs dry a connection stops reading until
//!   buffers come back — back-pressure instead of allocation.
//! - **protocols** are sans-IO state machines behind the [`Protocol`] trait (quinn-proto
//!   style): bytes and `now` in, bytes to send and the next deadline out.
//! - **messages** between shards travel over a mesh of bounded SPSC rings (`rtrb`), moved in
//!   one chunk per peer per loop iteration; a parked shard is woken through an eventfd
//!   doorbell, rung only when it is parked.
//! - **timers** (a heap per shard, waited on with the `io_uring_enter` timeout, microsecond
//!   resolution) drive protocol deadlines and [`ShardHandler::on_timer`].
//! - **files** are opened, read, written (fixed buffers), synced and preallocated through the
//!   ring ([`ShardCtx::open_file`] and friends), `O_DIRECT` optional.
//! - **stats** per shard ([`StatsSnapshot`]) are relaxed atomics written only by their shard
//!   and readable from any thread.
//!
//! ## Example: echo over loopback
//!
//! ```
//! use std::io::{Read, Write};
//! use hawser_shards::{Echo, Shards, ShardsConfig};
//!
//! let shards = Shards::start(ShardsConfig { shards: 2, ..ShardsConfig::default() })?;
//! let addr = shards.listen_tcp("127.0.0.1:0".parse()?, |_shard| Echo::new())?;
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.write_all(b"hello, hawser")?;
//! let mut back = [0u8; 13];
//! client.read_exact(&mut back)?;
//! assert_eq!(&back, b"hello, hawser");
//!
//! drop(client);
//! shards.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Plugging a protocol in
//!
//! Implement [`Protocol`]: `handle_input(now, Received)` gets bytes in place (read them, or
//! `retain()` the buffer), `poll_transmit(now, &mut Transmit)` queues output —
//! [`Transmit::write`] copies a small header, [`Transmit::write_buf`] and
//! [`Transmit::write_bytes`] queue a large body without copying (header and body go out in
//! one vectored `sendmsg`; with [`ShardsConfig::send_zc_threshold`] set, large sends use
//! `SENDMSG_ZC`). `poll_timeout`/`handle_timeout` drive deadlines; `handle_message` receives
//! work injected by the application ([`ShardCtx::send_to_connection`]).
//!
//! ## Accept spreading
//!
//! Two ways were built and measured (`cargo bench -p hawser-benches --bench accept_spread`,
//! 2 shards, 4 client threads, connect + 1-byte echo + close): one `SO_REUSEPORT` listener
//! per shard ([`Shards::listen_tcp_reuseport`]) ran 52.6 k connections/s; one acceptor
//! handing each fd round-robin over the mesh ([`Shards::listen_tcp_handoff`]) ran 54.5 k/s
//! (1.04x, within noise: the hop costs nothing visible). But reuseport balances by hash: 4
//! connections split 2/2 over 2 shards in only 48% of fresh listeners, and hawser's
//! connections are few and long-lived (trunks of a nexus), so an uneven split halves the
//! throughput one shard can give. Hence [`Shards::listen_tcp`] uses the hand-off (exact
//! round-robin); reuseport stays available for accept storms on many cores. Outbound
//! connections are placed explicitly by the caller ([`Shards::connect_tcp`] takes a shard).
//!
//! ## Where the time goes
//!
//! A loopback bulk profile (`perf record` on the `loopback_bulk` bench) spends about 63%
//! of all cycles in the kernel's copies into and out of socket buffers, 99% in the kernel
//! overall, and under 1% in user space (the shard loop included). On loopback the copy is
//! the ceiling; what placement changes is whether the copy stays in one core's cache (both
//! ends of a connection on one shard) or crosses cores.
//!
//! ## Errors
//!
//! Start-up problems come back as [`ShardError`] with a one-line fix: io_uring missing or
//! disabled (`/proc/sys/kernel/io_uring_disabled`), `RLIMIT_MEMLOCK` too small for the
//! registered pool, address already in use.

mod error;
mod loopback_bulk;
mod mesh;
mod pool;
mod protocol;
mod shard;
mod stats;
mod sys;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{self, Sender};

pub use error::{Result, ShardError};
pub use loopback_bulk::{LoopbackBulk, loopback_bulk};
pub use mesh::{AppMessage, ShardTask};
pub use pool::BufHandle;
pub use protocol::{
    BulkSink, BulkSource, CloseReason, Echo, Protocol, Received, SinkReport, Transmit,
};
pub use shard::{
    ConnId, FileDone, HandlerFactory, NoHandler, OpenOptions, ProtocolFactory, ShardCtx,
    ShardHandler, UdpId, UdpOptions,
};
pub use stats::{ShardStats, StatsSnapshot};
pub use sys::{open_fd_count, release_free_memory};

use mesh::{Doorbell, build_mesh};
use pool::{PoolMemory, PoolShared};
use shard::{Core, ShardSettings, pool_bytes};

/// How to run the shards.
#[derive(Clone)]
pub struct ShardsConfig {
    /// Number of shards; 0 means one per online core.
    pub shards: usize,
    /// Pin shard `i` to core `i % cores`. Pinning keeps caches warm on a dedicated machine;
    /// on a shared one it hurts: a shard pinned to a core that another process keeps busy
    /// cannot move, and connections spanning shards wait for it (measured on the 2-core
    /// build machine under load: cross-shard bulk 3.3 GB/s pinned vs 5.2 GB/s unpinned).
    pub pin: bool,
    /// Submission queue entries per ring (completion queue is 8x).
    pub ring_entries: u32,
    /// Registered buffers per shard (at most 32768).
    pub buffers: u16,
    /// Size of each buffer (rounded up to a page).
    pub buffer_size: usize,
    /// How many of the buffers are offered to the kernel for receiving; 0 means 3/4.
    pub recv_buffers: u16,
    /// Slots of each SPSC ring between two shards.
    pub mesh_capacity: usize,
    /// Use `SENDMSG_ZC` for sends of at least this many bytes (`None`: never). On loopback
    /// the kernel always copies, so this only pays on a real NIC.
    pub send_zc_threshold: Option<usize>,
    /// Set `TCP_NODELAY` on connections.
    pub tcp_nodelay: bool,
    /// TCP congestion control for every connection (`TCP_CONGESTION`, e.g. `cubic`);
    /// `None`: the system's default. See [`check_congestion_control`].
    pub tcp_congestion: Option<String>,
    /// Set up rings with `DEFER_TASKRUN` (completion work runs only when the shard enters
    /// the kernel) instead of `COOP_TASKRUN`. Measured on loopback: no clear difference.
    pub defer_taskrun: bool,
    /// Before parking in the kernel, look for work in shared memory (completion queue,
    /// pending task work, mesh, commands) for this long. A wake-up from the kernel costs
    /// tens of microseconds on some virtual machines (about 20 µs each on the build
    /// machine), so request/response traffic gains most of a round trip per exchange; the
    /// price is a core kept busy for up to this long after each burst of work. `None`
    /// (default): park at once.
    pub busy_poll: Option<std::time::Duration>,
    /// Builds each shard's [`ShardHandler`] (default: [`NoHandler`]).
    pub handler: Option<HandlerFactory>,
}

impl std::fmt::Debug for ShardsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardsConfig")
            .field("shards", &self.shards)
            .field("pin", &self.pin)
            .field("ring_entries", &self.ring_entries)
            .field("buffers", &self.buffers)
            .field("buffer_size", &self.buffer_size)
            .field("recv_buffers", &self.recv_buffers)
            .field("mesh_capacity", &self.mesh_capacity)
            .field("send_zc_threshold", &self.send_zc_threshold)
            .field("tcp_nodelay", &self.tcp_nodelay)
            .field("tcp_congestion", &self.tcp_congestion)
            .field("defer_taskrun", &self.defer_taskrun)
            .finish()
    }
}

/// Checks that TCP congestion control `name` can be used here: it must be listed in
/// `/proc/sys/net/ipv4/tcp_available_congestion_control` (a module not loaded is not).
/// The error is one line saying what is available.
pub fn check_congestion_control(name: &str) -> std::result::Result<(), String> {
    const AVAILABLE: &str = "/proc/sys/net/ipv4/tcp_available_congestion_control";
    let available =
        std::fs::read_to_string(AVAILABLE).map_err(|e| format!("cannot read {AVAILABLE}: {e}"))?;
    if available.split_whitespace().any(|a| a == name) {
        Ok(())
    } else {
        Err(format!(
            "TCP congestion control {name:?} is not available here (available: {}; \
             others need their kernel module loaded)",
            available.trim()
        ))
    }
}

impl Default for ShardsConfig {
    fn default() -> Self {
        ShardsConfig {
            shards: 0,
            pin: true,
            ring_entries: 256,
            buffers: 256,
            buffer_size: 64 * 1024,
            recv_buffers: 0,
            mesh_capacity: 1024,
            send_zc_threshold: None,
            tcp_nodelay: true,
            tcp_congestion: None,
            defer_taskrun: false,
            busy_poll: None,
            handler: None,
        }
    }
}

struct Worker {
    thread: Option<JoinHandle<()>>,
    commands: Sender<ShardTask>,
    doorbell: Arc<Doorbell>,
    stats: Arc<ShardStats>,
}

/// A running set of shards. Dropping it shuts them down and joins their threads.
pub struct Shards {
    workers: Vec<Worker>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("shards", &self.workers.len())
            .finish()
    }
}

fn io_uring_disabled_setting() -> String {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn startup_error(e: std::io::Error, needed: u64) -> ShardError {
    match e.raw_os_error() {
        Some(libc::ENOSYS | libc::EPERM) => ShardError::IoUringUnavailable {
            source: e,
            disabled_setting: io_uring_disabled_setting(),
        },
        Some(libc::ENOMEM) => ShardError::MemlockTooSmall {
            limit_bytes: sys::memlock_limit(),
            needed_bytes: needed,
        },
        _ => ShardError::io("setting up a shard's io_uring", e),
    }
}

impl Shards {
    /// Starts the shards and waits until every one has its ring and pool ready.
    pub fn start(config: ShardsConfig) -> Result<Shards> {
        let n = if config.shards == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            config.shards
        };
        if n > usize::from(u16::MAX) {
            return Err(ShardError::InvalidConfig(format!("{n} shards is too many")));
        }
        if config.buffers == 0 || config.buffers > 32768 || config.buffer_size == 0 {
            return Err(ShardError::InvalidConfig(
                "buffers must be 1..=32768 and buffer_size > 0".into(),
            ));
        }
        let recv_buffers = if config.recv_buffers == 0 {
            (config.buffers / 4 * 3).max(1)
        } else {
            config.recv_buffers.min(config.buffers)
        };
        // Fail early with the right message rather than deep inside a shard thread. The
        // probe ring lives on a thread of its own: tearing a ring down queues work for
        // the thread that made it, which interrupts that thread's next blocking socket
        // call with a timeout (EINTR) — the caller's, had it been made here.
        let probe = std::thread::Builder::new()
            .name("hawser-uring-probe".into())
            .spawn(|| io_uring::IoUring::new(2).map(drop))
            .map_err(|e| ShardError::io("starting the io_uring probe thread", e))?
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the io_uring probe panicked")));
        if let Err(e) = probe {
            return Err(ShardError::IoUringUnavailable {
                source: e,
                disabled_setting: io_uring_disabled_setting(),
            });
        }
        let needed = pool_bytes(config.buffers, config.buffer_size) * n as u64;
        let limit = sys::memlock_limit();
        if needed > limit && !sys::has_cap_ipc_lock() {
            return Err(ShardError::MemlockTooSmall {
                limit_bytes: limit,
                needed_bytes: needed,
            });
        }

        let doorbells = (0..n)
            .map(|_| Doorbell::new().map_err(|e| ShardError::io("creating an eventfd", e)))
            .collect::<Result<Vec<_>>>()?;
        let mut endpoints = build_mesh(&doorbells, config.mesh_capacity.max(2));
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let settings = ShardSettings {
            ring_entries: config.ring_entries.max(8),
            recv_buffers,
            send_zc_threshold: config.send_zc_threshold,
            tcp_nodelay: config.tcp_nodelay,
            tcp_congestion: config.tcp_congestion.clone(),
            defer_taskrun: config.defer_taskrun,
            busy_poll: config.busy_poll,
            shard_count: n,
        };
        let (ready_tx, ready_rx) = channel::bounded::<(usize, std::io::Result<()>)>(n);
        let mut workers = Vec::with_capacity(n);
        for (id, endpoint) in endpoints.drain(..).enumerate() {
            let (cmd_tx, cmd_rx) = channel::unbounded::<ShardTask>();
            let stats = Arc::new(ShardStats::default());
            let doorbell = doorbells[id].clone();
            let core_id = if config.pin && !cores.is_empty() {
                Some(cores[id % cores.len()])
            } else {
                None
            };
            let (settings, ready_tx, handler, thread_stats, thread_doorbell) = (
                settings.clone(),
                ready_tx.clone(),
                config.handler.clone(),
                stats.clone(),
                doorbell.clone(),
            );
            let (buffers, buffer_size) = (config.buffers, config.buffer_size);
            let thread = std::thread::Builder::new()
                .name(format!("hawser-shard-{id}"))
                .spawn(move || {
                    if let Some(core_id) = core_id {
                        core_affinity::set_for_current(core_id);
                    }
                    let pool = Arc::new(PoolShared {
                        mem: PoolMemory::new(buffers, buffer_size),
                        owner: id,
                        foreign_returns: crossbeam::queue::ArrayQueue::new(usize::from(buffers)),
                        doorbell: thread_doorbell.clone(),
                        handles_out: std::sync::atomic::AtomicU16::new(0),
                    });
                    let handler = match handler {
                        Some(f) => f(id),
                        None => Box::new(NoHandler),
                    };
                    match Core::new(
                        id,
                        settings,
                        pool,
                        endpoint,
                        thread_doorbell,
                        cmd_rx,
                        thread_stats,
                        handler,
                    ) {
                        Ok(mut core) => {
                            let _ = ready_tx.send((id, Ok(())));
                            drop(ready_tx);
                            core.run();
                        }
                        Err(e) => {
                            let _ = ready_tx.send((id, Err(e)));
                        }
                    }
                })
                .map_err(|e| ShardError::io("spawning a shard thread", e))?;
            workers.push(Worker {
                thread: Some(thread),
                commands: cmd_tx,
                doorbell,
                stats,
            });
        }
        drop(ready_tx);
        let shards = Shards { workers };
        let mut first_error = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) => {
                    first_error.get_or_insert(startup_error(e, needed));
                }
                Err(_) => {
                    first_error.get_or_insert(ShardError::ShardGone(0));
                }
            }
        }
        match first_error {
            None => Ok(shards),
            Some(e) => {
                shards.shutdown();
                Err(e)
            }
        }
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Runs `task` on shard `shard` (control plane: the task is boxed and sent over a
    /// channel; shard-to-shard data goes over the SPSC mesh instead).
    pub fn run_on(
        &self,
        shard: usize,
        task: impl FnOnce(&mut ShardCtx<'_>) + Send + 'static,
    ) -> Result<()> {
        let worker = self
            .workers
            .get(shard)
            .ok_or(ShardError::ShardGone(shard))?;
        worker
            .commands
            .send(Box::new(task))
            .map_err(|_| ShardError::ShardGone(shard))?;
        worker.doorbell.ring_if_parked();
        Ok(())
    }

    /// Runs `f` on shard `shard` and waits for its result.
    pub fn call_on<R: Send + 'static>(
        &self,
        shard: usize,
        f: impl FnOnce(&mut ShardCtx<'_>) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = channel::bounded(1);
        self.run_on(shard, move |ctx| {
            let _ = tx.send(f(ctx));
        })?;
        rx.recv().map_err(|_| ShardError::ShardGone(shard))
    }

    /// Listens on `addr` and spreads accepted connections evenly over all shards: shard 0
    /// accepts (multishot) and hands each connection round-robin to a shard over the mesh
    /// (see "Accept spreading" in the crate docs for why this is the default). Every
    /// connection gets a protocol from `factory(shard)` on its shard. Returns the bound
    /// address (useful with port 0).
    pub fn listen_tcp<P, F>(&self, addr: SocketAddr, factory: F) -> Result<SocketAddr>
    where
        P: Protocol + 'static,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        self.listen_tcp_handoff(0, addr, factory)
    }

    /// Listens on `addr` on every shard, one `SO_REUSEPORT` socket each: the kernel hashes
    /// each new connection to one shard's listener (no hand-off hop, but balance only by
    /// hash).
    pub fn listen_tcp_reuseport<P, F>(&self, addr: SocketAddr, factory: F) -> Result<SocketAddr>
    where
        P: Protocol + 'static,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        let all: Vec<usize> = (0..self.len()).collect();
        self.listen_tcp_shards(&all, addr, factory, false)
    }

    /// Listens on `addr` with one acceptor, shard `acceptor`, which hands each accepted
    /// connection round-robin to every shard over the SPSC mesh (the alternative to
    /// [`listen_tcp`](Self::listen_tcp)'s `SO_REUSEPORT` spreading; exact balance at the cost
    /// of a hop per connection).
    pub fn listen_tcp_handoff<P, F>(
        &self,
        acceptor: usize,
        addr: SocketAddr,
        factory: F,
    ) -> Result<SocketAddr>
    where
        P: Protocol + 'static,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        self.listen_tcp_shards(&[acceptor], addr, factory, true)
    }

    /// Listens on `addr` on shard `shard` only: every connection accepted there stays there
    /// (for placing connections deliberately rather than by the kernel's reuseport hash).
    pub fn listen_tcp_on<P, F>(
        &self,
        shard: usize,
        addr: SocketAddr,
        factory: F,
    ) -> Result<SocketAddr>
    where
        P: Protocol + 'static,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        self.listen_tcp_shards(&[shard], addr, factory, false)
    }

    fn listen_tcp_shards<P, F>(
        &self,
        shards: &[usize],
        addr: SocketAddr,
        factory: F,
        spread: bool,
    ) -> Result<SocketAddr>
    where
        P: Protocol + 'static,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        if let Some(&bad) = shards.iter().find(|&&s| s >= self.len()) {
            return Err(ShardError::ShardGone(bad));
        }
        let factory: ProtocolFactory =
            Arc::new(move |shard| Box::new(factory(shard)) as Box<dyn Protocol>);
        let mut bound = addr;
        let mut fds = Vec::with_capacity(shards.len());
        let close_all = |fds: &[i32]| fds.iter().for_each(|&fd| sys::close(fd));
        for _ in shards {
            let fd = match sys::tcp_socket(&bound) {
                Ok(fd) => fd,
                Err(e) => {
                    close_all(&fds);
                    return Err(ShardError::io("creating a listening socket", e));
                }
            };
            fds.push(fd);
            // SO_REUSEPORT only where several listeners share the port on purpose: on a
            // lone listener it would let a second process (same user) bind the port too
            // and silently take half of its connections, instead of failing "in use".
            let share_port = shards.len() > 1;
            let setup = sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
                .and_then(|_| {
                    if share_port {
                        sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
                    } else {
                        Ok(())
                    }
                })
                .and_then(|_| sys::bind(fd, &sys::RawSockAddr::from_inet(bound)))
                .and_then(|_| sys::listen(fd, 1024))
                .and_then(|_| sys::local_addr(fd));
            match setup {
                Ok(local) => bound = local,
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                    close_all(&fds);
                    return Err(ShardError::AddressInUse { addr });
                }
                Err(e) => {
                    close_all(&fds);
                    return Err(ShardError::io("binding a listening socket", e));
                }
            }
        }
        for (&shard, fd) in shards.iter().zip(fds) {
            let factory = factory.clone();
            self.run_on(shard, move |ctx| {
                if spread {
                    ctx.accept_and_spread(fd, factory)
                } else {
                    ctx.accept_on(fd, factory)
                }
            })?;
        }
        Ok(bound)
    }

    /// Listens on a Unix stream socket at `path`, accepting on shard `shard`.
    pub fn listen_unix<P, F>(&self, shard: usize, path: &Path, factory: F) -> Result<()>
    where
        P: Protocol + 'static,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        let factory: ProtocolFactory =
            Arc::new(move |shard| Box::new(factory(shard)) as Box<dyn Protocol>);
        let raw =
            sys::RawSockAddr::from_unix(path).map_err(|e| ShardError::io("unix socket path", e))?;
        let fd = sys::unix_socket().map_err(|e| ShardError::io("creating a unix socket", e))?;
        if let Err(e) = sys::bind(fd, &raw).and_then(|_| sys::listen(fd, 1024)) {
            sys::close(fd);
            return Err(if e.raw_os_error() == Some(libc::EADDRINUSE) {
                ShardError::UnixPathInUse {
                    path: path.to_path_buf(),
                }
            } else {
                ShardError::io("binding a unix socket", e)
            });
        }
        self.run_on(shard, move |ctx| ctx.accept_on(fd, factory))
    }

    /// Connects from shard `shard` to `addr`, driven by `proto`.
    pub fn connect_tcp<P: Protocol + Send + 'static>(
        &self,
        shard: usize,
        addr: SocketAddr,
        proto: P,
    ) -> Result<ConnId> {
        self.call_on(shard, move |ctx| ctx.connect_tcp(addr, Box::new(proto)))?
            .map_err(|e| ShardError::io("creating a socket", e))
    }

    /// Connects from shard `shard` to the Unix socket at `path`.
    pub fn connect_unix<P: Protocol + Send + 'static>(
        &self,
        shard: usize,
        path: &Path,
        proto: P,
    ) -> Result<ConnId> {
        let path = path.to_path_buf();
        self.call_on(shard, move |ctx| ctx.connect_unix(&path, Box::new(proto)))?
            .map_err(|e| ShardError::io("creating a unix socket", e))
    }

    /// Sends `msg` to a connection's protocol ([`Protocol::handle_message`]) from any thread.
    pub fn send_to_connection(&self, conn: ConnId, msg: AppMessage) -> Result<()> {
        self.run_on(conn.shard(), move |ctx| ctx.send_to_connection(conn, msg))
    }

    /// Closes a connection from any thread.
    pub fn close(&self, conn: ConnId) -> Result<()> {
        self.run_on(conn.shard(), move |ctx| ctx.close(conn))
    }

    /// A snapshot of shard `shard`'s counters.
    pub fn stats(&self, shard: usize) -> StatsSnapshot {
        self.workers[shard].stats.snapshot()
    }

    /// The live counters of shard `shard`, to read from any thread.
    pub fn stats_handle(&self, shard: usize) -> Arc<ShardStats> {
        self.workers[shard].stats.clone()
    }

    /// Stops every shard (listeners and connections close) and joins the threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        for worker in &self.workers {
            if worker
                .commands
                .send(Box::new(|ctx: &mut ShardCtx<'_>| ctx.stop()))
                .is_ok()
            {
                worker.doorbell.ring();
            }
        }
        for worker in &mut self.workers {
            if let Some(t) = worker.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
