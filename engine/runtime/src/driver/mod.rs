//! Runs the sans-IO session endpoints ([`session::ClientEndpoint`],
//! [`session::ServerEndpoint`]) on `hawser-shards`.
//!
//! # Shape
//!
//! One endpoint lives on one shard, in a `Host` kept in that shard thread's local
//! registry (`Rc<RefCell<_>>`: a shard is single-threaded, so no lock anywhere). Each TCP
//! connection of the endpoint is a `SessionConn` — the shards [`Protocol`] — that holds
//! the same `Rc` and feeds the endpoint with bytes and `now`. Hence every connection of a
//! nexus lives on the shard that owns the nexus, as the session layer requires.
//!
//! A protocol callback has no [`ShardCtx`], yet the endpoint's reaction to one
//! connection's bytes may need one: a freed slot sends a queued request on *another*
//! connection, a `WantConnection` opens a socket, a deadline arms a timer. The host
//! therefore polls every other connection's output into a per-connection stash right
//! away and queues the context-bound work as `Action`s; a task on the same shard
//! (scheduled at most once at a time) executes them with the context, waking exactly the
//! connections that have something to send.
//!
//! # Foreign threads
//!
//! The blocking API and the blocking-handler workers talk to a host through a crossbeam
//! channel of `HostCommand`s plus a "scheduled" flag: the sender that flips the flag posts
//! one zero-sized task through [`Shards::run_on`] (boxing a zero-sized closure does not
//! allocate; the shard's doorbell is rung only when the shard is parked). The task drains
//! every command queued by then. No Mutex on the data path.
//!
//! # Handlers
//!
//! Inline handlers run on the shard, in the loop iteration that received the request:
//! the cheapest path, for handlers that never block (echo, lookups, queueing work).
//! Blocking handlers run on a small pool of worker threads owned by the server and
//! answer through the command channel; they see cancellation through
//! [`RequestContext::is_cancelled`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam::channel::{Receiver, Sender};
use hawser_shards::{
    AppMessage, CloseReason as ShardClose, Protocol, Received, ShardCtx, ShardHandler, Shards,
    Transmit,
};

use hawser_session::{
    self as session, self, CallError, CallOptions, ConnectionStats, Event, ExchangeId,
    IncomingRequest, NexusId, NexusStats, RemoteException, Reply, RequestId,
};

/// Shared output larger than this is handed to the shard as it is (no copy); smaller
/// output is copied into the shard's transmit buffer (no allocation, fewer iovecs).
const SHARE_THRESHOLD: usize = 16 * 1024;
/// Stop pulling frames from the endpoint once this much waits for the socket: the rest
/// stays in the endpoint (which keeps retries and accounting exact) until the send drains.
const TX_HIGH_WATER: usize = 4 << 20;
/// Limit of output stashed for a connection that is not the one being served.
const STASH_LIMIT: usize = 1 << 20;

pub(crate) use hawser_session::IdMap;

/// What the application thread asks a host to do.
pub(crate) enum HostCommand {
    /// Start a call (on the server: a backchannel call to `nexus`); the result goes to
    /// `reply` tagged with `token`.
    Call {
        token: u64,
        nexus: Option<NexusId>,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
        reply: ReplyTo,
    },
    /// Cancel the call started with `token`.
    Cancel { token: u64 },
    /// A blocking handler finished.
    Respond {
        request: IncomingRequest,
        reply: Reply,
    },
    /// Test hook: shut down (shutdown(2)) the `index`-th open connection.
    KillConnection { index: usize },
    /// Read statistics.
    Stats { reply: Sender<StatsReport> },
    /// Destroy the nexus (client).
    Destroy,
}

/// The end of one call.
#[derive(Debug)]
pub(crate) struct CallCompletion {
    pub(crate) token: u64,
    pub(crate) result: Result<Bytes, CallError>,
}

/// What runs a call's completion on the host's shard (see [`ReplyTo::Callback`]).
pub(crate) type CompletionFn = Box<dyn FnOnce(Result<Bytes, CallError>) + Send>;

/// Where a call's completion goes.
pub(crate) enum ReplyTo {
    /// To a waiting thread (or a pipeline's queue), tagged with the call's token.
    Channel(Sender<CallCompletion>),
    /// Run on the host's shard thread, in the loop iteration that received the answer:
    /// no thread hop, no wake-up of another thread.
    Callback(CompletionFn),
}

impl ReplyTo {
    fn deliver(self, token: u64, result: Result<Bytes, CallError>) {
        match self {
            ReplyTo::Channel(tx) => {
                let _ = tx.send(CallCompletion { token, result });
            }
            ReplyTo::Callback(done) => done(result),
        }
    }
}

/// Statistics of one endpoint, copied out of its shard.
#[derive(Debug, Clone, Default)]
pub struct StatsReport {
    /// Per nexus (a client has at most one).
    pub nexuses: Vec<(NexusId, NexusStats)>,
    /// Per open connection.
    pub connections: Vec<ConnectionStats>,
    /// A client's connections bound to its nexus now (0 on a server).
    pub bound_connections: usize,
}

/// How a client's connection attempt ended, before the nexus existed.
#[derive(Debug, Clone)]
pub(crate) enum Readiness {
    Established,
    Refused(String),
    /// The server holds the create (the identity's previous nexus still exists); it may
    /// still be established when the hold ends.
    Held {
        nexus: NexusId,
        remaining: Option<Duration>,
        reason: String,
    },
}

/// A handler's view of its request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request's identity (nexus, slot, sequence, exchange).
    pub request: IncomingRequest,
    cancelled: Arc<AtomicBool>,
    /// The server's caller, for backchannel calls to this request's nexus; `None` for
    /// the backchannel handlers of a client.
    caller: Option<Arc<Caller>>,
}

impl RequestContext {
    /// Whether the initiator cancelled this request: stop and return
    /// [`HandlerError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Calls back to the client that sent this request, on its nexus's backchannel
    /// (handlers of a server; `None` for a client's backchannel handlers). A blocking
    /// handler may keep many such calls in flight and wait for them: their answers are
    /// received by the shard, not by a handler thread.
    pub fn backchannel(&self) -> Option<crate::Backchannel> {
        self.caller
            .as_ref()
            .map(|caller| crate::Backchannel::new(Arc::clone(caller), self.request.nexus))
    }
}

/// Starts calls on one host from any thread: its command channel and the tokens naming
/// the calls (one counter per host, so that a token names one call for cancellation).
#[derive(Debug)]
pub(crate) struct Caller {
    pub(crate) commands: CommandSender,
    next_token: AtomicU64,
}

impl Caller {
    pub(crate) fn new(commands: CommandSender) -> Self {
        Caller {
            commands,
            next_token: AtomicU64::new(1),
        }
    }

    /// Starts a call (`nexus`: the backchannel of that nexus, on a server) whose
    /// completion goes to `reply`; returns its token.
    pub(crate) fn start(
        &self,
        nexus: Option<NexusId>,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
        reply: &Sender<CallCompletion>,
    ) -> u64 {
        self.start_to(
            nexus,
            exchange,
            body,
            options,
            ReplyTo::Channel(reply.clone()),
        )
    }

    /// Starts a call whose completion goes to `reply`; returns its token.
    pub(crate) fn start_to(
        &self,
        nexus: Option<NexusId>,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
        reply: ReplyTo,
    ) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let refused = self.commands.send_or_return(HostCommand::Call {
            token,
            nexus,
            exchange,
            body,
            options,
            reply,
        });
        if let Some(HostCommand::Call { reply, .. }) = refused {
            reply.deliver(token, Err(CallError::NoNexus));
        }
        token
    }
}

/// How a handler fails.
#[derive(Debug, Clone)]
pub enum HandlerError {
    /// A failure reported to the caller as a typed remote exception.
    Exception(RemoteException),
    /// The handler stopped because the request was cancelled.
    Cancelled,
}

impl From<RemoteException> for HandlerError {
    fn from(e: RemoteException) -> Self {
        HandlerError::Exception(e)
    }
}

type InlineFn = dyn Fn(&RequestContext, Bytes) -> Result<Bytes, HandlerError> + Send + Sync;

/// One exchange's handler.
#[derive(Clone)]
pub(crate) enum Handler {
    /// Runs on the shard; must not block.
    Inline(Arc<InlineFn>),
    /// Runs on a worker thread.
    Blocking(Arc<InlineFn>),
}

/// Handlers by exchange id, with their names (for reports).
#[derive(Clone, Default)]
pub(crate) struct HandlerTable {
    pub(crate) handlers: HashMap<ExchangeId, (String, Handler)>,
}

fn to_reply(result: Result<Bytes, HandlerError>) -> Reply {
    match result {
        Ok(b) => Reply::Ok(b),
        Err(HandlerError::Exception(e)) => Reply::Err(e),
        Err(HandlerError::Cancelled) => Reply::Cancelled,
    }
}

/// A blocking handler's work item.
pub(crate) struct Job {
    ctx: RequestContext,
    body: Bytes,
    handler: Arc<InlineFn>,
}

/// Lets a foreign thread (or a protocol callback without a context) get a host's shard to
/// run its commands and actions.
#[derive(Clone)]
pub(crate) struct Waker {
    shards: Weak<Shards>,
    shard: usize,
    scheduled: Arc<AtomicBool>,
    /// Set before the owner tears the shards down: no upgrade of `shards` after that, so
    /// the last `Arc<Shards>` is always dropped by its owner, never on a shard thread.
    shutdown: Arc<AtomicBool>,
}

impl Waker {
    pub(crate) fn new(shards: &Arc<Shards>, shard: usize) -> Self {
        Waker {
            shards: Arc::downgrade(shards),
            shard,
            scheduled: Arc::new(AtomicBool::new(false)),
            shutdown: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn wake(&self) {
        // SeqCst pairs with the fence in `run_host`: either the task's drain sees the
        // command sent before this swap, or this swap sees `false` and posts a new task.
        if self.scheduled.swap(true, Ordering::SeqCst) || self.shutdown.load(Ordering::Acquire) {
            return;
        }
        if let Some(shards) = self.shards.upgrade() {
            let _ = shards.run_on(self.shard, shard_task);
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }
}

/// Sends a command to a host and makes sure its shard will look.
#[derive(Clone)]
pub(crate) struct CommandSender {
    pub(crate) tx: Sender<HostCommand>,
    pub(crate) waker: Waker,
}

impl CommandSender {
    pub(crate) fn send(&self, cmd: HostCommand) -> bool {
        self.send_or_return(cmd).is_none()
    }

    /// Sends `cmd`, or hands it back if the host is gone.
    pub(crate) fn send_or_return(&self, cmd: HostCommand) -> Option<HostCommand> {
        if let Err(refused) = self.tx.send(cmd) {
            return Some(refused.into_inner());
        }
        self.waker.wake();
        None
    }
}

/// Work that needs the shard context.
enum Action {
    Connect,
    Wake(hawser_shards::ConnId),
    Close(hawser_shards::ConnId),
    ArmTimer(Instant),
}

/// The driver's state for one connection of the endpoint.
struct ConnSlot {
    socket: Option<hawser_shards::ConnId>,
    /// Output pulled from the endpoint while another connection was being served.
    stash: Transmit,
    /// The endpoint is done with it: flush, then close.
    closing: bool,
    /// Its shard was woken to flush and close it: once is enough (a wake per pump for
    /// every closing connection piled up in the shard's inbox under a flood of refused
    /// connections).
    close_woken: bool,
}

/// The endpoint writes its output straight into a shard's transmit queue: large bodies
/// as shared pieces of the vectored send (never copied in user space), small frames
/// copied into the queue's buffer.
struct ShardSink<'a>(&'a mut Transmit);

impl session::TransmitSink for ShardSink<'_> {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    fn put_shared(&mut self, bytes: Bytes) {
        if bytes.len() >= SHARE_THRESHOLD {
            self.0.write_bytes(bytes);
        } else {
            self.0.write(&bytes);
        }
    }
}

struct ClientSide {
    ep: session::ClientEndpoint,
    addr: SocketAddr,
    ready: Option<Sender<Readiness>>,
}

struct ServerSide {
    ep: session::ServerEndpoint,
}

/// Calls this endpoint initiated (client: fore channel; server: backchannel), keyed by
/// (nexus, request id): a server's request ids are per nexus. A client keys with nexus 0
/// (its calls may start before the nexus has an id).
#[derive(Default)]
struct Calls {
    pending: IdMap<(u128, RequestId), (u64, ReplyTo)>,
    tokens: IdMap<u64, (u128, RequestId)>,
}

impl Drop for Calls {
    /// A host going away ends its calls: a waiting thread sees its channel close, and a
    /// callback must be told as well or it would never run.
    fn drop(&mut self) {
        for (_, (token, reply)) in self.pending.drain() {
            if matches!(reply, ReplyTo::Callback(_)) {
                reply.deliver(token, Err(CallError::NoNexus));
            }
        }
    }
}

/// The handlers this endpoint serves (server: fore channel; client: backchannel).
pub(crate) struct Serving {
    pub(crate) handlers: Arc<HandlerTable>,
    pub(crate) jobs: Option<Sender<Job>>,
    running: HashMap<IncomingRequest, Arc<AtomicBool>>,
    /// A server's caller, handed to its handlers for backchannel calls.
    caller: Option<Arc<Caller>>,
}

impl Serving {
    pub(crate) fn new(handlers: Arc<HandlerTable>, jobs: Option<Sender<Job>>) -> Self {
        Serving {
            handlers,
            jobs,
            running: HashMap::new(),
            caller: None,
        }
    }
}

enum Side {
    Client(Box<ClientSide>),
    Server(Box<ServerSide>),
}

impl Side {
    fn recv_buffer(&mut self, now: Instant, conn: session::LinkId) -> Option<BytesMut> {
        match self {
            Side::Client(s) => s.ep.recv_buffer(now, conn),
            Side::Server(s) => s.ep.recv_buffer(now, conn),
        }
    }
    fn handle_received(
        &mut self,
        now: Instant,
        conn: session::LinkId,
        buf: BytesMut,
        filled: usize,
    ) {
        match self {
            Side::Client(s) => s.ep.handle_received(now, conn, buf, filled),
            Side::Server(s) => s.ep.handle_received(now, conn, buf, filled),
        }
    }
    fn poll_transmit(&mut self, now: Instant, conn: session::LinkId, out: &mut Transmit) -> usize {
        let out = &mut ShardSink(out);
        match self {
            Side::Client(s) => s.ep.poll_transmit(now, conn, out),
            Side::Server(s) => s.ep.poll_transmit(now, conn, out),
        }
    }
    fn connection_lost(&mut self, now: Instant, conn: session::LinkId) {
        match self {
            Side::Client(s) => s.ep.connection_lost(now, conn),
            Side::Server(s) => s.ep.connection_lost(now, conn),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Side::Client(s) => s.ep.poll_timeout(),
            Side::Server(s) => s.ep.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Side::Client(s) => s.ep.handle_timeout(now),
            Side::Server(s) => s.ep.handle_timeout(now),
        }
    }
    fn poll_event(&mut self) -> Option<Event> {
        match self {
            Side::Client(s) => s.ep.poll_event(),
            Side::Server(s) => s.ep.poll_event(),
        }
    }
    fn respond(&mut self, now: Instant, request: &IncomingRequest, reply: Reply) -> bool {
        match self {
            Side::Client(s) => s.ep.respond(now, request, reply),
            Side::Server(s) => s.ep.respond(now, request, reply),
        }
    }
    /// The key part naming the nexus of a call (see [`Calls`]).
    fn call_nexus_key(&self, nexus: NexusId) -> u128 {
        match self {
            Side::Client(_) => 0,
            Side::Server(_) => nexus.0,
        }
    }
}

/// One endpoint on its shard.
pub(crate) struct Host {
    id: u64,
    side: Side,
    calls: Calls,
    serving: Serving,
    links: IdMap<session::LinkId, ConnSlot>,
    actions: Vec<Action>,
    timer_armed: Option<Instant>,
    commands: Receiver<HostCommand>,
    waker: Waker,
    dead: bool,
    /// See [`HostHandle::memory_freed`].
    memory_freed: Arc<AtomicBool>,
}

thread_local! {
    static HOSTS: RefCell<Vec<(u64, Rc<RefCell<Host>>)>> = const { RefCell::new(Vec::new()) };
}

fn host_by_id(id: u64) -> Option<Rc<RefCell<Host>>> {
    HOSTS.with(|h| h.borrow().iter().find(|x| x.0 == id).map(|x| x.1.clone()))
}

/// An IPv4 peer reaching a dual-stack listener shows as `::ffff:a.b.c.d`: limits and
/// throttles count it as the IPv4 address it is.
fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    }
}

fn random_nonce() -> [u8; 16] {
    let mut nonce = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut nonce))
        .is_err()
    {
        // Fallback: std's randomly keyed hasher (per-process random keys).
        use std::hash::{BuildHasher, Hasher};
        for chunk in nonce.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(Instant::now().elapsed().as_nanos() as u64);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    nonce
}

impl Host {
    fn new(
        id: u64,
        side: Side,
        serving: Serving,
        commands: Receiver<HostCommand>,
        waker: Waker,
    ) -> Self {
        Host {
            id,
            side,
            calls: Calls::default(),
            serving,
            links: IdMap::default(),
            actions: Vec::new(),
            timer_armed: None,
            commands,
            waker,
            dead: false,
            memory_freed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn open(
        &mut self,
        now: Instant,
        socket: hawser_shards::ConnId,
        peer: Option<SocketAddr>,
    ) -> session::LinkId {
        let conn = match &mut self.side {
            Side::Client(s) => s.ep.add_connection(now, random_nonce()),
            Side::Server(s) => {
                s.ep.accept_from(now, random_nonce(), peer.map(|p| canonical_ip(p.ip())))
            }
        };
        self.links.insert(
            conn,
            ConnSlot {
                socket: Some(socket),
                stash: Transmit::new(),
                closing: false,
                close_woken: false,
            },
        );
        conn
    }

    /// Processes the endpoint's events, stashes output of connections other than
    /// `current`, and queues context-bound actions. Returns whether actions wait.
    fn pump(&mut self, now: Instant, current: Option<session::LinkId>) -> bool {
        while let Some(event) = self.side.poll_event() {
            self.on_event(now, event);
        }
        if let Side::Server(s) = &mut self.side {
            // Budget released since: connections waiting for it are read again.
            while let Some(conn) = s.ep.next_budget_wakeup() {
                if let Some(socket) = self.links.get(&conn).and_then(|l| l.socket) {
                    self.actions.push(Action::Wake(socket));
                }
            }
        }
        for (&conn, link) in self.links.iter_mut() {
            if Some(conn) == current || link.stash.queued() >= STASH_LIMIT {
                continue;
            }
            let n = self.side.poll_transmit(now, conn, &mut link.stash);
            let close_wake = link.closing && !link.close_woken;
            if (n > 0 || close_wake)
                && let Some(socket) = link.socket
            {
                link.close_woken |= link.closing;
                self.actions.push(Action::Wake(socket));
            }
        }
        if let Some(at) = self.side.poll_timeout()
            && self.timer_armed.is_none_or(|armed| at < armed)
        {
            self.timer_armed = Some(at);
            self.actions.push(Action::ArmTimer(at));
        }
        !self.actions.is_empty()
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::WantConnection => self.actions.push(Action::Connect),
            Event::ConnectionClosed { conn, reason } => {
                if let Some(link) = self.links.get_mut(&conn) {
                    link.closing = true;
                }
                self.memory_freed.store(true, Ordering::Release);
                if let Side::Client(s) = &mut self.side
                    && s.ep.nexus().is_none()
                    && !matches!(reason, session::LinkCloseReason::TransportLost)
                    && let Some(ready) = s.ready.take()
                {
                    let _ = ready.send(Readiness::Refused(reason.to_string()));
                }
            }
            Event::NexusEstablished { .. } => {
                if let Side::Client(s) = &mut self.side
                    && let Some(ready) = s.ready.take()
                {
                    let _ = ready.send(Readiness::Established);
                }
            }
            Event::Completed {
                nexus,
                request,
                result,
            } => {
                let key = (self.side.call_nexus_key(nexus), request);
                if let Some((token, reply)) = self.calls.pending.remove(&key) {
                    self.calls.tokens.remove(&token);
                    reply.deliver(token, result);
                }
            }
            Event::Request { request, body } => self.dispatch(now, request, body),
            Event::CancelRequested { request } => {
                if let Some(flag) = self.serving.running.get(&request) {
                    flag.store(true, Ordering::Release);
                }
            }
            Event::NexusLost { .. } | Event::NexusDestroyed { .. } => {
                self.memory_freed.store(true, Ordering::Release);
                if let Side::Client(s) = &mut self.side
                    && let Some(ready) = s.ready.take()
                {
                    let _ = ready.send(Readiness::Refused("nexus lost".into()));
                }
            }
            Event::NexusHeld {
                nexus,
                remaining,
                reason,
            } => {
                if let Side::Client(s) = &mut self.side
                    && let Some(ready) = &s.ready
                {
                    let _ = ready.try_send(Readiness::Held {
                        nexus,
                        remaining,
                        reason,
                    });
                }
            }
            Event::ConnectionBound { .. } => {}
        }
    }

    fn run_command(&mut self, now: Instant, cmd: HostCommand) {
        match cmd {
            HostCommand::Call {
                token,
                nexus,
                exchange,
                body,
                options,
                reply,
            } => {
                let (key, started) = match (&mut self.side, nexus) {
                    (Side::Client(s), _) => (0, s.ep.call(now, exchange, body, options)),
                    (Side::Server(s), Some(nexus)) => {
                        (nexus.0, s.ep.call(now, nexus, exchange, body, options))
                    }
                    (Side::Server(_), None) => (0, Err(CallError::NoNexus)),
                };
                match started {
                    Ok(request) => {
                        // Only a waiting thread can cancel (through its token).
                        if matches!(reply, ReplyTo::Channel(_)) {
                            self.calls.tokens.insert(token, (key, request));
                        }
                        self.calls.pending.insert((key, request), (token, reply));
                    }
                    Err(result) => reply.deliver(token, Err(result)),
                }
            }
            HostCommand::Cancel { token } => {
                if let Some(&(key, request)) = self.calls.tokens.get(&token) {
                    match &mut self.side {
                        Side::Client(s) => s.ep.cancel(now, request),
                        Side::Server(s) => s.ep.cancel(now, NexusId(key), request),
                    }
                }
            }
            HostCommand::Respond { request, reply } => {
                self.serving.running.remove(&request);
                self.side.respond(now, &request, reply);
            }
            HostCommand::KillConnection { index } => {
                let mut sockets: Vec<_> = self
                    .links
                    .iter()
                    .filter(|(_, l)| !l.closing)
                    .filter_map(|(c, l)| l.socket.map(|s| (*c, s)))
                    .collect();
                sockets.sort_by_key(|(c, _)| *c);
                if !sockets.is_empty() {
                    let (_, socket) = sockets[index % sockets.len()];
                    self.actions.push(Action::Close(socket));
                }
            }
            HostCommand::Stats { reply } => {
                let mut report = StatsReport::default();
                match &self.side {
                    Side::Client(s) => {
                        report
                            .nexuses
                            .push((s.ep.nexus().unwrap_or(NexusId(0)), s.ep.stats().clone()));
                        report.bound_connections = s.ep.bound_connections().len();
                        for conn in self.links.keys() {
                            if let Some(st) = s.ep.connection_stats(*conn) {
                                report.connections.push(st.clone());
                            }
                        }
                    }
                    Side::Server(s) => {
                        for nexus in s.ep.nexuses() {
                            if let Some(st) = s.ep.nexus_stats(nexus) {
                                report.nexuses.push((nexus, st.clone()));
                            }
                        }
                        for conn in self.links.keys() {
                            if let Some(st) = s.ep.connection_stats(*conn) {
                                report.connections.push(st.clone());
                            }
                        }
                    }
                }
                let _ = reply.send(report);
            }
            HostCommand::Destroy => {
                if let Side::Client(s) = &mut self.side {
                    s.ep.destroy(now);
                }
            }
        }
    }
}

impl Host {
    fn dispatch(&mut self, now: Instant, request: IncomingRequest, body: Bytes) {
        let Some((_, handler)) = self.serving.handlers.handlers.get(&request.exchange) else {
            self.side.respond(
                now,
                &request,
                Reply::Err(RemoteException::new(
                    "hawser.UnknownExchange",
                    format!("no handler for exchange {}", request.exchange.0),
                )),
            );
            return;
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        match handler {
            Handler::Inline(f) => {
                let ctx = RequestContext {
                    request,
                    cancelled,
                    caller: self.serving.caller.clone(),
                };
                let reply = to_reply(f(&ctx, body));
                self.side.respond(now, &request, reply);
            }
            Handler::Blocking(f) => {
                self.serving.running.insert(request, cancelled.clone());
                let job = Job {
                    ctx: RequestContext {
                        request,
                        cancelled,
                        caller: self.serving.caller.clone(),
                    },
                    body,
                    handler: f.clone(),
                };
                let queued = match &self.serving.jobs {
                    Some(jobs) => jobs.send(job).is_ok(),
                    None => false,
                };
                if !queued {
                    self.serving.running.remove(&request);
                    self.side.respond(
                        now,
                        &request,
                        Reply::Err(RemoteException::new(
                            "hawser.ShuttingDown",
                            "the server is shutting down",
                        )),
                    );
                }
            }
        }
    }
}

/// Runs every host of this shard: commands, events, actions. Zero-sized, so posting it
/// through [`Shards::run_on`] does not allocate.
fn shard_task(ctx: &mut ShardCtx<'_>) {
    let mut i = 0;
    while let Some(host) = HOSTS.with(|h| h.borrow().get(i).map(|x| x.1.clone())) {
        run_host(ctx, &host, false);
        i += 1;
    }
}

fn run_host(ctx: &mut ShardCtx<'_>, host: &Rc<RefCell<Host>>, timer: bool) {
    let now = ctx.now();
    let mut actions = {
        let mut h = host.borrow_mut();
        if h.dead {
            return;
        }
        h.waker.scheduled.store(false, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if timer {
            h.timer_armed = None;
            if h.side.poll_timeout().is_some_and(|at| at <= now) {
                h.side.handle_timeout(now);
            }
        }
        while let Ok(cmd) = h.commands.try_recv() {
            h.run_command(now, cmd);
        }
        h.pump(now, None);
        std::mem::take(&mut h.actions)
    };
    // Executed without the host borrowed: closing a socket may call back into it.
    while !actions.is_empty() {
        let mut failed_connects = 0;
        let (addr, id) = {
            let h = host.borrow();
            let addr = match &h.side {
                Side::Client(s) => Some(s.addr),
                Side::Server(_) => None,
            };
            (addr, h.id)
        };
        for action in actions.drain(..) {
            match action {
                Action::Wake(socket) => ctx.send_to_connection(socket, AppMessage::new(0, 0)),
                Action::Close(socket) => ctx.close(socket),
                Action::ArmTimer(at) => ctx.set_timer(at, id),
                Action::Connect => {
                    let Some(addr) = addr else { continue };
                    let conn = SessionConn::new(host.clone());
                    if ctx.connect_tcp(addr, Box::new(conn)).is_err() {
                        failed_connects += 1;
                    }
                }
            }
        }
        if failed_connects == 0 {
            break;
        }
        let mut h = host.borrow_mut();
        if let Side::Client(s) = &mut h.side {
            for _ in 0..failed_connects {
                s.ep.connect_failed(now);
            }
        }
        h.pump(now, None);
        actions = std::mem::take(&mut h.actions);
    }
}

/// The shard-level handler: host timers.
#[derive(Debug, Default)]
pub(crate) struct DriverHandler;

impl ShardHandler for DriverHandler {
    fn on_timer(&mut self, ctx: &mut ShardCtx<'_>, token: u64) {
        if let Some(host) = host_by_id(token) {
            run_host(ctx, &host, true);
        }
    }
}

/// The shards configuration the driver needs (its handler runs host timers).
pub(crate) fn shards_config(
    shards: usize,
    tcp_congestion: Option<String>,
) -> hawser_shards::ShardsConfig {
    hawser_shards::ShardsConfig {
        shards,
        tcp_congestion,
        // Shared build machines: a pinned shard cannot escape a busy core.
        pin: false,
        handler: Some(Arc::new(|_| {
            Box::new(DriverHandler) as Box<dyn ShardHandler>
        })),
        ..hawser_shards::ShardsConfig::default()
    }
}

/// One TCP connection of an endpoint: the shards protocol feeding the session endpoint.
pub(crate) struct SessionConn {
    host: Rc<RefCell<Host>>,
    conn: Option<session::LinkId>,
    /// An accepted connection's peer, told by the shard before `on_open`.
    peer: Option<SocketAddr>,
    done: bool,
}

impl SessionConn {
    fn new(host: Rc<RefCell<Host>>) -> Self {
        SessionConn {
            host,
            conn: None,
            peer: None,
            done: false,
        }
    }

    fn after(&self, h: &mut Host, now: Instant) {
        if h.pump(now, self.conn) {
            h.waker.wake();
        }
    }
}

impl Protocol for SessionConn {
    fn on_open(&mut self, now: Instant, socket: hawser_shards::ConnId) {
        let mut h = self.host.borrow_mut();
        if h.dead {
            self.done = true;
            return;
        }
        self.conn = Some(h.open(now, socket, self.peer));
        self.after(&mut h, now);
    }

    fn on_peer_address(&mut self, peer: SocketAddr) {
        self.peer = Some(peer);
    }

    /// The session assembles frames of up to megabytes: the kernel writes each
    /// receive straight into the link's frame storage (no copy out of pool buffers).
    fn receives_into_own_buffer(&self) -> bool {
        true
    }

    fn recv_buffer(&mut self, now: Instant) -> Option<BytesMut> {
        let conn = self.conn?;
        let mut h = self.host.borrow_mut();
        if h.dead {
            return None;
        }
        h.side.recv_buffer(now, conn)
    }

    fn handle_received(&mut self, now: Instant, buf: BytesMut, filled: usize) {
        let Some(conn) = self.conn else { return };
        let mut h = self.host.borrow_mut();
        if h.dead {
            return;
        }
        h.side.handle_received(now, conn, buf, filled);
        if filled > 0 {
            self.after(&mut h, now);
        }
    }

    fn handle_input(&mut self, _now: Instant, _input: Received<'_>) {
        debug_assert!(false, "session connections receive into their own buffers");
    }

    fn handle_eof(&mut self, now: Instant) {
        let Some(conn) = self.conn else { return };
        let mut h = self.host.borrow_mut();
        if h.links.remove(&conn).is_some() {
            h.side.connection_lost(now, conn);
        }
        self.done = true;
        self.after(&mut h, now);
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) {
        let Some(conn) = self.conn else { return };
        let mut guard = self.host.borrow_mut();
        let h = &mut *guard;
        let Some(link) = h.links.get_mut(&conn) else {
            return;
        };
        out.append(&mut link.stash);
        let mut drained = false;
        while out.queued() < TX_HIGH_WATER {
            if h.side.poll_transmit(now, conn, out) == 0 {
                drained = true;
                break;
            }
        }
        if drained && link.closing {
            h.links.remove(&conn);
            self.done = true;
        }
    }

    fn handle_message(&mut self, _now: Instant, _msg: AppMessage) {
        // A wake-up: the shard calls poll_transmit next, which is the point.
    }

    fn wants_close(&self) -> bool {
        self.done
    }

    fn on_close(&mut self, now: Instant, reason: &ShardClose) {
        let mut h = self.host.borrow_mut();
        if h.dead {
            return;
        }
        match self.conn {
            Some(conn) => {
                if h.links.remove(&conn).is_some() {
                    h.side.connection_lost(now, conn);
                }
            }
            None => {
                if let (Side::Client(s), ShardClose::ConnectFailed(_) | ShardClose::Error(_)) =
                    (&mut h.side, reason)
                {
                    s.ep.connect_failed(now);
                }
            }
        }
        self.after(&mut h, now);
    }
}

/// What a server's listener gives an accepted connection.
enum ListenConn {
    Live(SessionConn),
    /// The server is gone (its shards live on in a shared runtime): close at once.
    Refused,
}

impl Protocol for ListenConn {
    fn on_open(&mut self, now: Instant, socket: hawser_shards::ConnId) {
        if let ListenConn::Live(c) = self {
            c.on_open(now, socket);
        }
    }
    fn on_peer_address(&mut self, peer: SocketAddr) {
        if let ListenConn::Live(c) = self {
            c.on_peer_address(peer);
        }
    }
    fn receives_into_own_buffer(&self) -> bool {
        match self {
            ListenConn::Live(c) => c.receives_into_own_buffer(),
            ListenConn::Refused => false,
        }
    }
    fn recv_buffer(&mut self, now: Instant) -> Option<BytesMut> {
        match self {
            ListenConn::Live(c) => c.recv_buffer(now),
            ListenConn::Refused => None,
        }
    }
    fn handle_received(&mut self, now: Instant, buf: BytesMut, filled: usize) {
        if let ListenConn::Live(c) = self {
            c.handle_received(now, buf, filled);
        }
    }
    fn handle_input(&mut self, now: Instant, input: Received<'_>) {
        if let ListenConn::Live(c) = self {
            c.handle_input(now, input);
        }
    }
    fn handle_eof(&mut self, now: Instant) {
        if let ListenConn::Live(c) = self {
            c.handle_eof(now);
        }
    }
    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) {
        if let ListenConn::Live(c) = self {
            c.poll_transmit(now, out);
        }
    }
    fn handle_message(&mut self, now: Instant, msg: AppMessage) {
        if let ListenConn::Live(c) = self {
            c.handle_message(now, msg);
        }
    }
    fn wants_close(&self) -> bool {
        match self {
            ListenConn::Live(c) => c.wants_close(),
            ListenConn::Refused => true,
        }
    }
    fn on_close(&mut self, now: Instant, reason: &ShardClose) {
        if let ListenConn::Live(c) = self {
            c.on_close(now, reason);
        }
    }
}

// ---- setting hosts up and tearing them down (control plane) ------------------------

static NEXT_HOST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A host running on a shard, seen from the thread that set it up.
pub(crate) struct HostHandle {
    pub(crate) id: u64,
    pub(crate) shard: usize,
    pub(crate) commands: CommandSender,
    /// Set by the host when connections closed or nexuses went away: memory to give
    /// back to the system (see [`spawn_workers`]).
    pub(crate) memory_freed: Arc<AtomicBool>,
}

/// The command channel of a host to be installed on `shard`.
fn command_channel(shards: &Arc<Shards>, shard: usize) -> (CommandSender, Receiver<HostCommand>) {
    let (tx, rx) = crossbeam::channel::unbounded();
    let waker = Waker::new(shards, shard);
    (CommandSender { tx, waker }, rx)
}

fn install(
    shards: &Arc<Shards>,
    shard: usize,
    (commands, rx): (CommandSender, Receiver<HostCommand>),
    serving: Serving,
    make: impl FnOnce() -> Side + Send + 'static,
) -> Result<HostHandle, hawser_shards::ShardError> {
    let id = NEXT_HOST.fetch_add(1, Ordering::Relaxed);
    let host_waker = commands.waker.clone();
    let memory_freed = Arc::new(AtomicBool::new(false));
    let freed = Arc::clone(&memory_freed);
    shards.call_on(shard, move |ctx| {
        let mut host = Host::new(id, make(), serving, rx, host_waker);
        host.memory_freed = freed;
        let host = Rc::new(RefCell::new(host));
        HOSTS.with(|h| h.borrow_mut().push((id, host.clone())));
        run_host(ctx, &host, false);
    })?;
    Ok(HostHandle {
        id,
        shard,
        commands,
        memory_freed,
    })
}

/// Installs a client endpoint on `shard`, connecting to `addr`.
pub(crate) fn install_client(
    shards: &Arc<Shards>,
    shard: usize,
    config: session::ClientConfig,
    addr: SocketAddr,
    ready: Sender<Readiness>,
    backchannel: Serving,
) -> Result<HostHandle, hawser_shards::ShardError> {
    install(
        shards,
        shard,
        command_channel(shards, shard),
        backchannel,
        move || {
            Side::Client(Box::new(ClientSide {
                ep: session::ClientEndpoint::new(config, Instant::now()),
                addr,
                ready: Some(ready),
            }))
        },
    )
}

/// Installs a server endpoint on `shard` and listens on `addr` there. Returns the bound
/// address and the caller for backchannel calls (shared with the server's handlers).
pub(crate) fn install_server(
    shards: &Arc<Shards>,
    shard: usize,
    config: session::ServerConfig,
    handlers: Arc<HandlerTable>,
    jobs: Sender<Job>,
    addr: SocketAddr,
) -> Result<(HostHandle, SocketAddr, Arc<Caller>), hawser_shards::ShardError> {
    let seed = u64::from_le_bytes(random_nonce()[..8].try_into().expect("8 bytes"));
    let channel = command_channel(shards, shard);
    let caller = Arc::new(Caller::new(channel.0.clone()));
    let mut serving = Serving::new(handlers, Some(jobs));
    serving.caller = Some(Arc::clone(&caller));
    let handle = install(shards, shard, channel, serving, move || {
        Side::Server(Box::new(ServerSide {
            ep: session::ServerEndpoint::new(config, seed),
        }))
    })?;
    let id = handle.id;
    let bound = shards.listen_tcp_on(shard, addr, move |_| match host_by_id(id) {
        Some(host) => ListenConn::Live(SessionConn::new(host)),
        // The server was shut down on a runtime that lives on: refuse.
        None => ListenConn::Refused,
    })?;
    Ok((handle, bound, caller))
}

/// Removes a host from its shard: its connections close, its later callbacks do nothing.
pub(crate) fn uninstall(shards: &Shards, handle: &HostHandle) {
    handle.commands.waker.begin_shutdown();
    let id = handle.id;
    let _ = shards.call_on(handle.shard, move |ctx| {
        let Some(host) = host_by_id(id) else { return };
        HOSTS.with(|h| h.borrow_mut().retain(|x| x.0 != id));
        let sockets: Vec<_> = {
            let mut h = host.borrow_mut();
            h.dead = true;
            h.links.values().filter_map(|l| l.socket).collect()
        };
        for socket in sockets {
            ctx.close(socket);
        }
    });
}

/// A handler thread idle this long gives the memory freed by closed connections and
/// expired nexuses back to the system (see [`hawser_shards::release_free_memory`]).
const IDLE_BEFORE_RELEASING_MEMORY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs blocking handlers: takes jobs, answers through `host`'s command channel. An
/// idle one also returns freed memory to the system when the host has freed some.
pub(crate) fn spawn_workers(
    count: usize,
    jobs: Receiver<Job>,
    host: &HostHandle,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..count)
        .map(|i| {
            let jobs = jobs.clone();
            let commands = host.commands.clone();
            let memory_freed = Arc::clone(&host.memory_freed);
            std::thread::Builder::new()
                .name(format!("hawser-handler-{i}"))
                .spawn(move || {
                    loop {
                        match jobs.recv_timeout(IDLE_BEFORE_RELEASING_MEMORY) {
                            Ok(job) => {
                                let reply = to_reply((job.handler)(&job.ctx, job.body));
                                commands.send(HostCommand::Respond {
                                    request: job.ctx.request,
                                    reply,
                                });
                            }
                            Err(crossbeam::channel::RecvTimeoutError::Timeout) => {
                                if memory_freed.swap(false, Ordering::AcqRel) {
                                    hawser_shards::release_free_memory();
                                }
                            }
                            Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
                        }
                    }
                })
                .expect("spawning a handler thread")
        })
        .collect()
}

impl std::fmt::Debug for CommandSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommandSender")
    }
}
