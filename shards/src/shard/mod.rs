//! One shard: a thread running one io_uring completion loop that owns its connections
//! (sockets and shared-memory links), listeners, UDP sockets, buffer pool, timers and file
//! operations. This module holds the shard's state ([`Core`]) and its setup and teardown;
//! each kind of work the loop does has a module of its own below.

mod conn;
mod ctx;
mod delivery;
mod event_loop;
mod file;
mod handler;
mod listener;
mod op;
mod recv;
mod route;
mod send;
mod shm;
mod submit;
mod timer;
mod udp;
mod wake;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};

use crate::config::ShmOptions;
use crate::mesh::{Doorbell, Envelope, MeshEndpoint, ShardTask};
use crate::pool::{LocalPool, PoolMemory, PoolShared, RETURNS};
use crate::shm::acceptor::Acceptor;
use crate::stats::{ShardStats, StatsSnapshot};
use crate::sys;

pub use conn::ConnId;
pub use ctx::ShardCtx;
pub use file::{FileDone, OpenOptions};
pub use handler::{HandlerFactory, NoHandler, ShardHandler};
pub use listener::ProtocolFactory;
pub use route::{ROUTE_PEEK_MAX, Route, Router};
pub use udp::{GatherPiece, MAX_GATHER_PIECES, UdpId, UdpOptions};
pub use wake::wake_connection;

use conn::Conn;
use delivery::Poster;
use file::FileOp;
use listener::Listener;
use op::{OpKind, user_data};
use submit::{DatagramSend, DoorbellCounter, Ring};
use timer::Timers;
use udp::UdpSock;

/// The provided-buffer group id every shard uses for receives.
const RECV_GROUP: u16 = 0;

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
    pub(crate) shm: ShmOptions,
    pub(crate) shard_count: usize,
}

/// What a shard thread is given: its place in the set of shards and its ends of the
/// channels to it.
pub(crate) struct ShardSetup {
    pub(crate) id: usize,
    pub(crate) settings: ShardSettings,
    /// Registered buffers per shard and their size.
    pub(crate) buffers: u16,
    pub(crate) buffer_size: usize,
    /// The core to pin the thread to, if any.
    pub(crate) core_id: Option<core_affinity::CoreId>,
    pub(crate) mesh: MeshEndpoint,
    pub(crate) doorbell: Arc<Doorbell>,
    pub(crate) commands: Receiver<ShardTask>,
    /// The sending end of `commands`, for helper threads this shard starts (shared-memory
    /// handshakes) to post their results back.
    pub(crate) commands_tx: Sender<ShardTask>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) handler: Option<HandlerFactory>,
}

/// The body of a shard thread: pins it, builds the shard, reports on `ready` whether that
/// worked, then runs the loop until the shard is stopped.
pub(crate) fn run_shard(setup: ShardSetup, ready: Sender<(usize, io::Result<()>)>) {
    if let Some(core_id) = setup.core_id {
        core_affinity::set_for_current(core_id);
    }
    let id = setup.id;
    match Core::new(setup) {
        Ok(mut core) => {
            let _ = ready.send((id, Ok(())));
            drop(ready);
            core.run();
        }
        Err(e) => {
            let _ = ready.send((id, Err(e)));
        }
    }
}

/// The state of one shard, owned by its thread.
struct Core {
    // The ring is declared first so it is dropped first: the kernel lets go of registered
    // and provided buffers, and of every holder in `submit`, before their memory is freed.
    ring: Ring,
    id: usize,
    settings: ShardSettings,
    pool: LocalPool,
    mesh: MeshEndpoint,
    doorbell: Arc<Doorbell>,
    doorbell_counter: DoorbellCounter,
    commands: Receiver<ShardTask>,
    poster: Poster,
    stats_shared: Arc<ShardStats>,
    stats: StatsSnapshot,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<u32>,
    /// The slots of open shared-memory connections, polled every iteration.
    shm_slots: Vec<u32>,
    /// Shared-memory listeners (their acceptor threads).
    shm_acceptors: Vec<Acceptor>,
    /// Where shared-memory bytes go when the pool has no free buffer (empty until the
    /// first link).
    shm_scratch: Vec<u8>,
    next_generation: u32,
    listeners: Vec<Option<Listener>>,
    /// Accepted connections of routed listeners, waiting to be placed.
    routes: Vec<Option<route::PendingRoute>>,
    free_routes: Vec<u32>,
    route_generation: u32,
    /// The shard the next connection that may go anywhere goes to.
    next_route_target: usize,
    files: Vec<Option<FileOp>>,
    free_files: Vec<u32>,
    udp: Vec<Option<UdpSock>>,
    // Boxed on purpose: the kernel holds pointers into in-flight ops, and growing the Vec
    // must not move them.
    #[allow(clippy::vec_box)]
    udp_sends: Vec<Box<DatagramSend>>,
    free_udp_sends: Vec<u32>,
    timers: Timers,
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

impl Core {
    /// Builds the shard on its own thread: pool, ring, and the state the loop starts from
    /// (sized so that the steady state does not allocate).
    fn new(setup: ShardSetup) -> io::Result<Core> {
        let ShardSetup {
            id,
            settings,
            buffers,
            buffer_size,
            core_id: _,
            mesh,
            doorbell,
            commands,
            commands_tx,
            stats: stats_shared,
            handler,
        } = setup;
        let pool_shared = Arc::new(PoolShared {
            mem: PoolMemory::new(buffers, buffer_size),
            owner: id,
            foreign_returns: crossbeam::queue::ArrayQueue::new(usize::from(buffers)),
            doorbell: doorbell.clone(),
            handles_out: std::sync::atomic::AtomicU16::new(0),
        });
        let handler = match handler {
            Some(f) => f(id),
            None => Box::new(NoHandler),
        };
        let pool = LocalPool::new(pool_shared, settings.recv_buffers, RECV_GROUP);
        let doorbell_for_poster = doorbell.clone();
        let ring = Ring::new(id, &settings, &pool)?;
        let count = usize::from(pool.shared.mem.count());
        let cq_len = (settings.ring_entries * 8) as usize;
        let mut core = Core {
            ring,
            id,
            pool,
            mesh,
            doorbell,
            doorbell_counter: DoorbellCounter::new(),
            commands,
            poster: Poster::new(commands_tx, doorbell_for_poster),
            stats_shared,
            stats: StatsSnapshot::default(),
            conns: Vec::new(),
            free_slots: Vec::new(),
            shm_slots: Vec::new(),
            shm_acceptors: Vec::new(),
            shm_scratch: Vec::new(),
            next_generation: 1,
            listeners: Vec::new(),
            routes: Vec::new(),
            free_routes: Vec::new(),
            route_generation: 0,
            next_route_target: 0,
            files: Vec::new(),
            free_files: Vec::new(),
            udp: Vec::new(),
            udp_sends: Vec::new(),
            free_udp_sends: Vec::new(),
            timers: Timers::with_capacity(1024),
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

    /// Waits for the next ring of the doorbell (a read of its eventfd).
    fn arm_doorbell(&mut self) {
        let ud = user_data(OpKind::Doorbell, 0, 0);
        self.ring
            .read_doorbell(self.doorbell.fd, &mut self.doorbell_counter, ud);
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Leave no open descriptors behind (the grace period ran out, or `run` never ran).
        // Only the descriptors are closed here: the connection state (msghdrs, iovecs,
        // queued buffers) that in-flight operations may still point to is freed after this
        // body, when the fields drop — the ring, declared first, goes first. Before that, a
        // synchronous cancel of everything waits until the kernel has let go of it all.
        self.ring.cancel_all_and_wait(Duration::from_secs(1));
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
