//! [`Shards`]: the handle to a running set of shards. It starts their threads, places
//! listeners and connections on them, runs tasks there, reads their counters, and stops
//! them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{self, Sender};

use crate::config::ShardsConfig;
use crate::error::{Result, ShardError};
use crate::mesh::{AppMessage, Doorbell, ShardTask, build_mesh};
use crate::pool::pool_bytes;
use crate::protocol::Protocol;
use crate::shard::{ConnId, ProtocolFactory, ShardCtx, ShardSettings, ShardSetup, run_shard};
use crate::stats::{ShardStats, StatsSnapshot};
use crate::sys;

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
            return Err(ShardError::TooManyShards { shards: n });
        }
        if !crate::shm::layout::ring_bytes_ok(config.shm.ring_bytes as u64)
            || config.shm.handshake_timeout.is_zero()
        {
            return Err(ShardError::InvalidShmOptions {
                ring_bytes: config.shm.ring_bytes,
                handshake_timeout: config.shm.handshake_timeout,
            });
        }
        if config.buffers == 0 || config.buffers > 32768 || config.buffer_size == 0 {
            return Err(ShardError::InvalidBufferPool {
                buffers: config.buffers,
                buffer_size: config.buffer_size,
            });
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
        let cores = if config.pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let settings = ShardSettings {
            ring_entries: config.ring_entries.max(8),
            recv_buffers,
            send_zc_threshold: config.send_zc_threshold,
            tcp_nodelay: config.tcp_nodelay,
            tcp_congestion: config.tcp_congestion.clone(),
            defer_taskrun: config.defer_taskrun,
            busy_poll: config.busy_poll,
            shm: config.shm,
            shard_count: n,
        };
        let (ready_tx, ready_rx) = channel::bounded::<(usize, std::io::Result<()>)>(n);
        let mut workers = Vec::with_capacity(n);
        for (id, mesh) in endpoints.drain(..).enumerate() {
            let (cmd_tx, cmd_rx) = channel::unbounded::<ShardTask>();
            let stats = Arc::new(ShardStats::default());
            let doorbell = doorbells[id].clone();
            let setup = ShardSetup {
                id,
                settings: settings.clone(),
                buffers: config.buffers,
                buffer_size: config.buffer_size,
                core_id: (!cores.is_empty()).then(|| cores[id % cores.len()]),
                mesh,
                doorbell: doorbell.clone(),
                commands: cmd_rx,
                commands_tx: cmd_tx.clone(),
                stats: stats.clone(),
                handler: config.handler.clone(),
            };
            let ready_tx = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("hawser-shard-{id}"))
                .spawn(move || run_shard(setup, ready_tx))
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
    /// accepts (multishot) and hands each connection round-robin to a shard over the mesh.
    /// Exact round-robin suits few long-lived connections (the trunks of a nexus), which a
    /// hash can leave uneven; [`listen_tcp_reuseport`](Self::listen_tcp_reuseport) suits
    /// accept storms on many cores. Every connection gets a protocol from `factory(shard)`
    /// on its shard. Returns the bound address (useful with port 0).
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
        self.listen_tcp_shards(&all, addr, boxed_factory(factory), Placement::Here)
    }

    /// Listens on `addr` with one acceptor, shard `acceptor`, which hands each accepted
    /// connection round-robin to every shard over the SPSC mesh: exact balance for a hop
    /// per connection ([`listen_tcp`](Self::listen_tcp) with a chosen acceptor).
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
        self.listen_tcp_shards(&[acceptor], addr, boxed_factory(factory), Placement::Spread)
    }

    /// Listens on `addr` with one acceptor, shard `acceptor`, which places each accepted
    /// connection by the bytes it sends first: `router` names the shard (see
    /// [`Route`](crate::Route)). The connection opens there and reads those bytes there;
    /// a peer that sends too little for 5 s goes to any shard.
    pub fn listen_tcp_routed(
        &self,
        acceptor: usize,
        addr: SocketAddr,
        factory: ProtocolFactory,
        router: crate::Router,
    ) -> Result<SocketAddr> {
        self.listen_tcp_shards(&[acceptor], addr, factory, Placement::Routed(router))
    }

    /// Listens on a Unix stream socket at `path`, accepting on shard `acceptor`, and places
    /// each connection by its first bytes as
    /// [`listen_tcp_routed`](Self::listen_tcp_routed) does.
    pub fn listen_unix_routed(
        &self,
        acceptor: usize,
        path: &Path,
        factory: ProtocolFactory,
        router: crate::Router,
    ) -> Result<()> {
        let fd = bind_unix(path)?;
        self.run_on(acceptor, move |ctx| ctx.accept_routed(fd, factory, router))
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
        self.listen_tcp_on_with(shard, addr, boxed_factory(factory))
    }

    /// [`listen_tcp_on`](Self::listen_tcp_on) with a factory that builds boxed protocols
    /// already (a caller choosing among several protocol types boxes once, not twice).
    pub fn listen_tcp_on_with(
        &self,
        shard: usize,
        addr: SocketAddr,
        factory: ProtocolFactory,
    ) -> Result<SocketAddr> {
        self.listen_tcp_shards(&[shard], addr, factory, Placement::Here)
    }

    fn listen_tcp_shards(
        &self,
        shards: &[usize],
        addr: SocketAddr,
        factory: ProtocolFactory,
        placement: Placement,
    ) -> Result<SocketAddr> {
        if let Some(&bad) = shards.iter().find(|&&s| s >= self.len()) {
            return Err(ShardError::ShardGone(bad));
        }
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
            let placement = placement.clone();
            self.run_on(shard, move |ctx| match placement {
                Placement::Here => ctx.accept_on(fd, factory),
                Placement::Spread => ctx.accept_and_spread(fd, factory),
                Placement::Routed(router) => ctx.accept_routed(fd, factory, router),
            })?;
        }
        Ok(bound)
    }

    /// Listens on a Unix stream socket at `path`, accepting on shard `shard`. Accepted
    /// connections' protocols learn the peer's credentials
    /// ([`Protocol::on_peer_credentials`]).
    pub fn listen_unix<P, F>(&self, shard: usize, path: &Path, factory: F) -> Result<()>
    where
        P: Protocol + 'static,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        self.listen_unix_with(shard, path, boxed_factory(factory))
    }

    /// [`listen_unix`](Self::listen_unix) with a factory of boxed protocols.
    pub fn listen_unix_with(
        &self,
        shard: usize,
        path: &Path,
        factory: ProtocolFactory,
    ) -> Result<()> {
        let fd = bind_unix(path)?;
        self.run_on(shard, move |ctx| ctx.accept_on(fd, factory))
    }

    /// Listens for shared-memory connections ([`crate::ShmOptions`]) at the Unix socket
    /// path `path`; the links live on shard `shard`, each driven by a protocol from
    /// `factory`, which learns the peer's credentials
    /// ([`Protocol::on_peer_credentials`]) before `on_open`. A helper thread accepts and
    /// runs the handshakes (at most 16 at once), so a slow or silent client never holds
    /// the shard. Like [`listen_unix`](Self::listen_unix), a path in use (a stale socket
    /// file included) is [`ShardError::UnixPathInUse`]: removing it is the caller's call.
    pub fn listen_shm<P, F>(&self, shard: usize, path: &Path, factory: F) -> Result<()>
    where
        P: Protocol + 'static,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        self.listen_shm_with(shard, path, boxed_factory(factory))
    }

    /// [`listen_shm`](Self::listen_shm) with a factory of boxed protocols.
    pub fn listen_shm_with(
        &self,
        shard: usize,
        path: &Path,
        factory: ProtocolFactory,
    ) -> Result<()> {
        let fd = sys::owned_fd(bind_unix(path)?);
        self.call_on(shard, move |ctx| ctx.accept_shm(fd, factory))?
            .map_err(|e| ShardError::io("starting a shared-memory listener", e))
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

    /// Opens a shared-memory connection from shard `shard` to the listener at `path`,
    /// driven by `proto`. Returns at once: the handshake runs on a helper thread, and the
    /// protocol sees `on_open`, or `on_close` with
    /// [`CloseReason::ConnectFailed`](crate::CloseReason::ConnectFailed) saying why not.
    pub fn connect_shm<P: Protocol + Send + 'static>(
        &self,
        shard: usize,
        path: &Path,
        proto: P,
    ) -> Result<ConnId> {
        let path = path.to_path_buf();
        self.call_on(shard, move |ctx| ctx.connect_shm(&path, Box::new(proto)))?
            .map_err(|e| ShardError::io("starting a shared-memory connect", e))
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

/// A Unix stream socket bound to `path` and listening.
/// A [`ProtocolFactory`] from a factory of one protocol type.
fn boxed_factory<P, F>(factory: F) -> ProtocolFactory
where
    P: Protocol + 'static,
    F: Fn(usize) -> P + Send + Sync + 'static,
{
    Arc::new(move |shard| Box::new(factory(shard)) as Box<dyn Protocol>)
}

fn bind_unix(path: &Path) -> Result<std::os::fd::RawFd> {
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
    Ok(fd)
}

/// Where a listener's accepted connections open.
#[derive(Clone)]
enum Placement {
    /// On the accepting shard.
    Here,
    /// Round-robin over every shard.
    Spread,
    /// Where their first bytes say.
    Routed(crate::Router),
}
