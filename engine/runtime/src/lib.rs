//! The blocking API: serve exchanges and call them over a trunked nexus, from ordinary
//! (non-async) threads.
//!
//! A [`Server`] runs the session server on its own io_uring shard and executes the
//! handlers of its [`Service`]s; a [`Client`] runs one nexus over `N` TCP connections on
//! its own shard, reconnecting with backoff and retrying outstanding requests on loss
//! (exactly once: a retried request is answered from the server's reply cache, never run
//! twice). Calls from any thread travel to the shard over a channel with a doorbell; no
//! lock is taken on the data path.
//!
//! - [`Client::call`]: one exchange, waits for its answer.
//! - [`Client::start_call`] → [`PendingCall`]: pipelining; [`PendingCall::wait`] later.
//! - [`Client::call_many`]: a batch, answers in order.
//! - [`Client::call_then`] / [`ShardCaller`]: the completion runs on the client's shard
//!   (no thread hop), and may start the next call from there.
//! - [`PendingCall::cancel`]: remote cancellation (the handler sees
//!   [`RequestContext::is_cancelled`]; the call ends with [`CallError::Cancelled`]).
//! - [`Client::stats`], [`Server::stats`]: nexus and connection counters with HDR
//!   histograms (per-exchange latency, heartbeat RTT).
//! - Full duplex: a client serves [`ClientOptions::backchannel`]; the server calls it with
//!   [`Server::call`] / [`Server::start_call`] on a nexus from [`Server::nexuses`], or
//!   through a [`Backchannel`] ([`Server::backchannel`], or
//!   [`RequestContext::backchannel`] inside a handler: call back the client that sent
//!   the request), which also offers ordered calls and a [`Pipeline`].
//!
//! Handlers: [`Service::handler`] runs on the server's shard (it must not block);
//! [`Service::blocking_handler`] runs on a worker thread and may block or poll for
//! cancellation. A handler error travels back as a typed [`RemoteException`]
//! ([`CallError::Remote`]).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use hawser_runtime::{Client, ClientOptions, ExchangeId, ServerBuilder, Service};
//!
//! const ECHO: ExchangeId = ExchangeId(1);
//! let echo = Service::new("echo").handler(ECHO, "echo", |_ctx, body| Ok(body));
//! let server = ServerBuilder::new().service(echo).listen("127.0.0.1:0")?;
//!
//! let config = ClientOptions { connections: 2, ..ClientOptions::default() };
//! let client = Client::connect(server.local_addr(), config)?;
//! let answer = client.call(ECHO, Bytes::from_static(b"hello, hawser"))?;
//! assert_eq!(&answer[..], b"hello, hawser");
//!
//! // Pipelined: many calls in flight over both connections.
//! let answers = client.call_many(ECHO, (0..100u32).map(|i| Bytes::from(i.to_le_bytes().to_vec())));
//! assert!(answers.iter().all(|a| a.is_ok()));
//!
//! client.close();
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Placement
//!
//! A nexus and all its connections live on one shard (the session layer requires it).
//! A server currently runs one shard: every nexus it serves shares that shard's core.
//! Spreading nexuses over several server shards needs a connection to move to its
//! nexus's shard after its handshake names the nexus — not built yet.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel::{self, Receiver};
use hawser_shards::Shards;

use crate::driver::{
    CallCompletion, Caller, Handler, HandlerTable, HostCommand, HostHandle, Readiness,
    shards_config,
};
pub use crate::driver::{HandlerError, RequestContext, StatsReport};
use hawser_session::{
    self as session, ClientCredentials, ServerCredentials, ThrottleConfig, TokenBucket,
};
pub use hawser_session::{
    CallError, CallOptions, ExchangeId, NexusId, RemoteException, ServerLimits,
};

mod backchannel;
mod driver;

mod on_shard;
pub use backchannel::Backchannel;
pub use on_shard::ShardCaller;

/// The default DSP port (`dlpx-sp`).
pub const DEFAULT_PORT: u16 = 8415;

/// Time a held create needs after its hold ends (the server creating the nexus, the
/// answer travelling): a hold ending later than the connect timeout minus this is not
/// waited for.
const HOLD_MARGIN: Duration = Duration::from_millis(500);

/// What can go wrong setting a server or client up.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The shards could not start or listen (the message says what to do).
    #[error(transparent)]
    Shards(#[from] hawser_shards::ShardError),
    /// The address did not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// What was given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server refused the connection (authentication failed, nexus refused, ...).
    #[error("{addr} refused the session: {reason}")]
    Refused {
        /// The server.
        addr: SocketAddr,
        /// What the session layer reported.
        reason: String,
    },
    /// The server holds the new nexus: the identity's previous nexus still exists (a
    /// client that did not end cleanly, or one still running), and the server never runs
    /// two of one identity's nexuses side by side.
    #[error(
        "{addr} holds the session (held: one nexus per identity at a time): {reason}; wait \
         until that nexus has ended or expired, or replace it (ClientOptions::replace_nexus = \
         {nexus}) if no client uses it any more"
    )]
    Held {
        /// The server.
        addr: SocketAddr,
        /// The previous nexus.
        nexus: NexusId,
        /// Until it expires (`None`: it still has connections, so it is in use).
        remaining: Option<Duration>,
        /// The server's explanation.
        reason: String,
    },
    /// No nexus could be established in time (server down or unreachable).
    #[error("no session with {addr} within {timeout:?}")]
    Timeout {
        /// The server.
        addr: SocketAddr,
        /// The configured connect timeout.
        timeout: Duration,
    },
}

fn resolve(addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<SocketAddr, ApiError> {
    let text = format!("{addr:?}");
    addr.to_socket_addrs()
        .and_then(|mut a| {
            a.next()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
        })
        .map_err(|source| ApiError::Resolve { addr: text, source })
}

/// Shards shared by several servers and clients of one process (for example a loopback
/// benchmark placing the server on shard 1 and the client on shard 0). Without one, every
/// [`Server`] and [`Client`] starts a shard of its own.
#[derive(Debug, Clone)]
pub struct Runtime {
    shards: Arc<Shards>,
}

/// How to start a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Shard threads (at least 1).
    pub shards: usize,
    /// TCP congestion control of every connection of these shards (e.g. `cubic`; check
    /// it first with `hawser_shards::check_congestion_control`); `None`: the system's.
    pub tcp_congestion: Option<String>,
    /// Shards look for work this long before sleeping in the kernel (see
    /// `hawser_shards::ShardsConfig::busy_poll`): lower request/response latency for a
    /// busier core. `None`: sleep at once.
    pub busy_poll: Option<Duration>,
}

impl Runtime {
    /// Starts `shards` shard threads (unpinned: see `hawser_shards::ShardsConfig::pin`).
    pub fn new(shards: usize) -> Result<Runtime, ApiError> {
        Self::start(RuntimeConfig {
            shards,
            ..RuntimeConfig::default()
        })
    }

    /// [`new`](Self::new), with every connection of these shards using TCP congestion
    /// control `name` (e.g. `cubic`; check it first with
    /// `hawser_shards::check_congestion_control`).
    pub fn with_tcp_congestion(shards: usize, name: Option<&str>) -> Result<Runtime, ApiError> {
        Self::start(RuntimeConfig {
            shards,
            tcp_congestion: name.map(str::to_owned),
            ..RuntimeConfig::default()
        })
    }

    /// Starts the shards `config` describes.
    pub fn start(config: RuntimeConfig) -> Result<Runtime, ApiError> {
        let mut shards = shards_config(config.shards.max(1), config.tcp_congestion);
        shards.busy_poll = config.busy_poll;
        Ok(Runtime {
            shards: Arc::new(Shards::start(shards)?),
        })
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }
}

/// A set of exchange handlers.
#[derive(Clone, Default)]
pub struct Service {
    name: String,
    table: HandlerTable,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self
            .table
            .handlers
            .iter()
            .map(|(id, (n, _))| (id.0, n.as_str()))
            .collect();
        names.sort_unstable();
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("exchanges", &names)
            .finish()
    }
}

impl Service {
    /// An empty service.
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            table: HandlerTable::default(),
        }
    }

    /// Registers a handler run on the server's shard, in the loop iteration that received
    /// the request: it must not block.
    pub fn handler<F>(mut self, exchange: ExchangeId, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&RequestContext, Bytes) -> Result<Bytes, HandlerError> + Send + Sync + 'static,
    {
        self.table
            .handlers
            .insert(exchange, (name.into(), Handler::Inline(Arc::new(f))));
        self
    }

    /// Registers a handler run on a worker thread: it may block, and should poll
    /// [`RequestContext::is_cancelled`] when it runs long.
    pub fn blocking_handler<F>(
        mut self,
        exchange: ExchangeId,
        name: impl Into<String>,
        f: F,
    ) -> Self
    where
        F: Fn(&RequestContext, Bytes) -> Result<Bytes, HandlerError> + Send + Sync + 'static,
    {
        self.table
            .handlers
            .insert(exchange, (name.into(), Handler::Blocking(Arc::new(f))));
        self
    }

    /// The exchange id registered under `name`.
    pub fn exchange(&self, name: &str) -> Option<ExchangeId> {
        self.table
            .handlers
            .iter()
            .find(|(_, (n, _))| n == name)
            .map(|(id, _)| *id)
    }
}

/// Whether a server accepts `ANONYMOUS` clients: as `setting` says, and by default only
/// when it listens on a loopback address and has no shared secrets (anyone who can reach
/// a non-loopback address could otherwise use it).
pub fn anonymous_allowed(setting: Option<bool>, has_secrets: bool, listen: IpAddr) -> bool {
    setting.unwrap_or(!has_secrets && listen.is_loopback())
}

/// Builds a [`Server`].
#[derive(Debug)]
pub struct ServerBuilder {
    services: Vec<Service>,
    credentials: ServerCredentials,
    allow_anonymous: Option<bool>,
    limits: ServerLimits,
    grace_period: Option<Duration>,
    handler_threads: usize,
    compress: bool,
    slots: u32,
    max_request_size: Option<u32>,
    align_request_bodies_at: Option<usize>,
    receive_budget: usize,
    frame_timeout: Duration,
    placement: Option<(Runtime, usize)>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    /// A server with 4 blocking-handler threads, accepting anonymous clients only on a
    /// loopback address (see [`allow_anonymous`](Self::allow_anonymous)).
    pub fn new() -> Self {
        ServerBuilder {
            services: Vec::new(),
            credentials: ServerCredentials::default(),
            allow_anonymous: None,
            limits: ServerLimits::default(),
            grace_period: None,
            handler_threads: 4,
            compress: true,
            slots: 256,
            max_request_size: None,
            align_request_bodies_at: None,
            receive_budget: session::DEFAULT_RECEIVE_BUDGET,
            frame_timeout: session::Timers::default().frame_timeout,
            placement: None,
        }
    }

    /// Runs the server on shard `shard` of `runtime` instead of a shard of its own.
    pub fn runtime(mut self, runtime: &Runtime, shard: usize) -> Self {
        self.placement = Some((runtime.clone(), shard));
        self
    }

    /// Adds a service (a later registration of the same exchange id wins).
    pub fn service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    /// Accepts `identity` if it proves it knows `secret` (HMAC-SHA256
    /// challenge-response). A server with secrets refuses anonymous clients unless
    /// [`allow_anonymous`](Self::allow_anonymous) says otherwise.
    pub fn secret(mut self, identity: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.credentials
            .secrets
            .insert(identity.into(), secret.into());
        self
    }

    /// Whether `ANONYMOUS` clients are accepted. Without this call: only on a loopback
    /// listen address, and only without secrets ([`anonymous_allowed`]).
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = Some(allow);
        self
    }

    /// Connection and nexus limits (see [`ServerLimits`]; defaults otherwise).
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long a nexus outlives its last connection: the default, and the most a client
    /// may ask for (120 s otherwise).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = Some(grace);
        self
    }

    /// Threads for blocking handlers (at least 1).
    pub fn handler_threads(mut self, n: usize) -> Self {
        self.handler_threads = n.max(1);
        self
    }

    /// Upper limit of fore-channel slots (concurrency per nexus) clients may negotiate.
    pub fn max_slots(mut self, slots: u32) -> Self {
        self.slots = slots.max(1);
        self
    }

    /// Largest request body in either direction (for example a replication block plus
    /// its header): what clients may send, and what the server may send them on the
    /// backchannel; bounds both sides' per-request buffers.
    pub fn max_request_size(mut self, bytes: u32) -> Self {
        self.max_request_size = Some(bytes.max(1));
        self
    }

    /// Receives request bodies of 256 KiB or more so that `body[offset..]` starts on a
    /// page boundary: a handler writing the data after its own `offset`-byte header with
    /// `O_DIRECT` (as the replication target does) writes it from where it arrived.
    pub fn align_request_bodies_at(mut self, offset: usize) -> Self {
        self.align_request_bodies_at = Some(offset);
        self
    }

    /// The bytes of large frames (over 64 KiB) the server holds at once, over all its
    /// connections, from their first byte until they are answered
    /// ([`session::ReceiveBudget`]): past it, connections are not read until answers free
    /// some (default 512 MiB).
    pub fn receive_budget(mut self, bytes: usize) -> Self {
        self.receive_budget = bytes;
        self
    }

    /// How long a frame may take to arrive once its first byte has (default 60 s): a
    /// connection that trickles a frame slower is closed.
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub fn listen(self, addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<Server, ApiError> {
        let addr = resolve(addr)?;
        let mut table = HandlerTable::default();
        for s in self.services {
            table.handlers.extend(s.table.handlers);
        }
        let mut credentials = self.credentials;
        credentials.allow_anonymous = anonymous_allowed(
            self.allow_anonymous,
            !credentials.secrets.is_empty(),
            addr.ip(),
        );
        let mut config = session::ServerConfig::new(credentials);
        config.compress = self.compress;
        config.limits = self.limits;
        if let Some(grace) = self.grace_period {
            config.grace_period = grace;
        }
        config.fore_limits.slots = self.slots;
        config.align_request_bodies_at = self.align_request_bodies_at;
        config.receive_budget = Some(session::ReceiveBudget::new(self.receive_budget));
        config.timers.frame_timeout = self.frame_timeout;
        if let Some(bytes) = self.max_request_size {
            config.fore_limits.max_request_size = bytes;
            config.back_limits.max_request_size = bytes;
        }
        let (shards, shard) = match self.placement {
            Some((rt, shard)) => {
                let last = rt.shards.len() - 1;
                (rt.shards, shard.min(last))
            }
            None => (Arc::new(Shards::start(shards_config(1, None))?), 0),
        };
        let (jobs_tx, jobs_rx) = channel::unbounded();
        let (host, bound, caller) =
            driver::install_server(&shards, shard, config, Arc::new(table), jobs_tx, addr)?;
        let workers = driver::spawn_workers(self.handler_threads, jobs_rx, &host);
        Ok(Server {
            caller,
            shards: Some(shards),
            host,
            addr: bound,
            workers,
        })
    }
}

/// A running server. Dropping it stops it.
pub struct Server {
    caller: Arc<Caller>,
    shards: Option<Arc<Shards>>,
    host: HostHandle,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters and histograms of every nexus and open connection.
    pub fn stats(&self) -> StatsReport {
        stats_of(&self.host)
    }

    /// The nexuses this server holds now.
    pub fn nexuses(&self) -> Vec<NexusId> {
        self.stats().nexuses.into_iter().map(|(n, _)| n).collect()
    }

    /// Calls `exchange` on the client of `nexus` (backchannel) and waits for the answer.
    pub fn call(
        &self,
        nexus: NexusId,
        exchange: ExchangeId,
        request: Bytes,
    ) -> Result<Bytes, CallError> {
        self.start_call(nexus, exchange, request).wait()
    }

    /// Starts a backchannel call to the client of `nexus`.
    pub fn start_call(&self, nexus: NexusId, exchange: ExchangeId, request: Bytes) -> PendingCall {
        self.backchannel(nexus)
            .start_call_with(exchange, request, CallOptions::default())
    }

    /// Backchannel calls to the client of `nexus` (ordered calls, pipelines).
    pub fn backchannel(&self, nexus: NexusId) -> Backchannel {
        Backchannel::new(Arc::clone(&self.caller), nexus)
    }

    /// Stops accepting, closes every connection and joins the threads.
    pub fn shutdown(self) {}

    fn stop(&mut self) {
        if let Some(shards) = self.shards.take() {
            driver::uninstall(&shards, &self.host);
            // Dropping the shards drops the hosts and with them the job queue, which ends
            // the handler threads. With a shared runtime the host goes once its last
            // connection has closed: the threads are left to end by themselves then.
            let owned = Arc::strong_count(&shards) == 1;
            drop(shards);
            for w in self.workers.drain(..) {
                if owned {
                    let _ = w.join();
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stats_of(host: &HostHandle) -> StatsReport {
    let (tx, rx) = channel::bounded(1);
    if !host.commands.send(HostCommand::Stats { reply: tx }) {
        return StatsReport::default();
    }
    rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
}

/// Receives a completion, first polling for up to `spin` (a blocked thread's futex
/// wake-up costs tens of microseconds on a loaded machine; a short poll catches fast
/// answers without it).
fn recv_spinning(rx: &Receiver<CallCompletion>, spin: Duration) -> Option<CallCompletion> {
    if !spin.is_zero() {
        let start = std::time::Instant::now();
        loop {
            match rx.try_recv() {
                Ok(c) => return Some(c),
                Err(channel::TryRecvError::Disconnected) => return None,
                Err(channel::TryRecvError::Empty) => {}
            }
            if start.elapsed() >= spin {
                break;
            }
            std::hint::spin_loop();
        }
    }
    rx.recv().ok()
}

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Connections in the trunk.
    pub connections: usize,
    /// xxh3 digest over every frame's payload.
    pub digest: bool,
    /// Offer lz4 compression (used per frame when it pays).
    pub compression: bool,
    /// Authenticate with this shared secret (HMAC-SHA256) instead of anonymously.
    pub secret: Option<Vec<u8>>,
    /// The client identity (the server looks the secret up by it).
    pub identity: String,
    /// Fore-channel slots to ask for: requests in flight at once.
    pub slots: u32,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Heartbeat interval; a connection silent for three of them is declared dead.
    pub heartbeat: Duration,
    /// How long a waiting caller polls for its answer before blocking (0: block at
    /// once). Polling saves a thread wake-up per call at the cost of a busy core.
    pub spin: Duration,
    /// Handlers for requests the server sends on the backchannel ([`Server::call`]);
    /// blocking handlers run on two worker threads of the client.
    pub backchannel: Option<Service>,
    /// Largest request body to ask for, on the fore channel and on the backchannel (the
    /// server's limit caps it; both sides' buffers are sized by it).
    pub max_request_size: u32,
    /// TCP congestion control of the trunk's connections (e.g. `cubic`); `None`: the
    /// system's default. Applies when the client starts its own shard.
    pub tcp_congestion: Option<String>,
    /// Receive backchannel request bodies of 256 KiB or more with `body[offset..]` on a
    /// page boundary (see [`ServerBuilder::align_request_bodies_at`]).
    pub align_backchannel_bodies_at: Option<usize>,
    /// Grace period to ask the server for: how long it keeps the nexus without a
    /// connection (it grants at most its own maximum). `None`: the server's default.
    pub grace_period: Option<Duration>,
    /// A nexus of this identity left by an earlier client that did not end cleanly (see
    /// [`Client::nexus`]): recovered and destroyed before the new one is created, so
    /// that the server does not hold the new one ([`ApiError::Held`]). Its unfinished
    /// work is dropped; never name a nexus another running client still uses.
    pub replace_nexus: Option<NexusId>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        ClientOptions {
            connections: 4,
            digest: true,
            compression: false,
            secret: None,
            identity: format!(
                "hawser-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ),
            slots: 256,
            connect_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            spin: Duration::ZERO,
            backchannel: None,
            max_request_size: session::ChannelAttributes::default().max_request_size,
            tcp_congestion: None,
            align_backchannel_bodies_at: None,
            grace_period: None,
            replace_nexus: None,
        }
    }
}

/// A nexus to a server over a trunk of connections. `Sync`: share it between threads.
pub struct Client {
    spin: Duration,
    shards: Option<Arc<Shards>>,
    host: HostHandle,
    caller: Arc<Caller>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.addr)
            .finish()
    }
}

/// A call in flight (see [`Client::start_call`]).
#[derive(Debug)]
pub struct PendingCall {
    token: u64,
    spin: Duration,
    rx: Receiver<CallCompletion>,
    commands: driver::CommandSender,
}

impl PendingCall {
    /// Waits for the answer.
    pub fn wait(self) -> Result<Bytes, CallError> {
        recv_spinning(&self.rx, self.spin)
            .map(|c| c.result)
            .unwrap_or(Err(CallError::NoNexus))
    }

    /// Waits at most `timeout`; `None` if still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<Bytes, CallError>> {
        match self.rx.recv_timeout(timeout) {
            Ok(c) => Some(c.result),
            Err(channel::RecvTimeoutError::Timeout) => None,
            Err(channel::RecvTimeoutError::Disconnected) => Some(Err(CallError::NoNexus)),
        }
    }

    /// Asks the server to cancel it; the call still completes (usually with
    /// [`CallError::Cancelled`], or with its answer if that won the race).
    pub fn cancel(&self) {
        self.commands
            .send(HostCommand::Cancel { token: self.token });
    }
}

impl Client {
    /// Connects `config.connections` connections to `addr` and waits for the nexus.
    pub fn connect(
        addr: impl ToSocketAddrs + std::fmt::Debug,
        config: ClientOptions,
    ) -> Result<Client, ApiError> {
        Self::connect_on(addr, config, None)
    }

    /// Like [`connect`](Self::connect), with the nexus on shard `shard` of `runtime`.
    pub fn connect_with(
        addr: impl ToSocketAddrs + std::fmt::Debug,
        config: ClientOptions,
        runtime: &Runtime,
        shard: usize,
    ) -> Result<Client, ApiError> {
        Self::connect_on(addr, config, Some((runtime.clone(), shard)))
    }

    fn connect_on(
        addr: impl ToSocketAddrs + std::fmt::Debug,
        config: ClientOptions,
        placement: Option<(Runtime, usize)>,
    ) -> Result<Client, ApiError> {
        let addr = resolve(addr)?;
        let credentials = match &config.secret {
            Some(s) => ClientCredentials::SharedSecret(s.clone()),
            None => ClientCredentials::Anonymous,
        };
        let mut sc = session::ClientConfig::new(config.identity.clone(), credentials);
        sc.connections = config.connections.max(1);
        sc.digest = config.digest;
        sc.compress = config.compression;
        sc.fore.slots = config.slots.max(1);
        sc.fore.max_request_size = config.max_request_size.max(1);
        sc.back.max_request_size = config.max_request_size.max(1);
        sc.align_request_bodies_at = config.align_backchannel_bodies_at;
        sc.timers.heartbeat_interval = config.heartbeat;
        sc.timers.dead_after = config.heartbeat * 3;
        sc.reconnect_min = Duration::from_millis(10);
        sc.reconnect_max = Duration::from_secs(1);
        sc.grace_period = config.grace_period;
        sc.replace = config.replace_nexus;
        let (shards, shard) = match placement {
            Some((rt, shard)) => {
                let last = rt.shards.len() - 1;
                (rt.shards, shard.min(last))
            }
            None => (
                Arc::new(Shards::start(shards_config(
                    1,
                    config.tcp_congestion.clone(),
                ))?),
                0,
            ),
        };
        // Room for a few `Held` notices before the final answer.
        let (ready_tx, ready_rx) = channel::bounded(8);
        let handlers = config.backchannel.map(|s| s.table).unwrap_or_default();
        let blocking = handlers
            .handlers
            .values()
            .any(|(_, h)| matches!(h, Handler::Blocking(_)));
        let (jobs_tx, jobs_rx) = channel::unbounded();
        let serving = driver::Serving::new(Arc::new(handlers), blocking.then_some(jobs_tx));
        let host = driver::install_client(&shards, shard, sc, addr, ready_tx, serving)?;
        if blocking {
            // The workers end when the host (holding the job queue) is dropped.
            driver::spawn_workers(2, jobs_rx, &host);
        }
        let mut client = Client {
            spin: config.spin,
            shards: Some(shards),
            caller: Arc::new(Caller::new(host.commands.clone())),
            host,
            addr,
        };
        let deadline = Instant::now() + config.connect_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let error = match ready_rx.recv_timeout(left) {
                Ok(Readiness::Established) => return Ok(client),
                Ok(Readiness::Refused(reason)) => ApiError::Refused { addr, reason },
                // A hold that ends within the connect timeout is waited out.
                Ok(Readiness::Held { remaining, .. })
                    if remaining.is_some_and(|r| r + HOLD_MARGIN < left) =>
                {
                    continue;
                }
                Ok(Readiness::Held {
                    nexus,
                    remaining,
                    reason,
                }) => ApiError::Held {
                    addr,
                    nexus,
                    remaining,
                    reason,
                },
                Err(_) => ApiError::Timeout {
                    addr,
                    timeout: config.connect_timeout,
                },
            };
            client.stop();
            return Err(error);
        }
    }

    /// The id of the nexus (once established): what [`ClientOptions::replace_nexus`]
    /// takes should this client end without closing it.
    pub fn nexus(&self) -> Option<NexusId> {
        self.stats().nexuses.first().map(|(id, _)| *id)
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Calls `exchange` with `request` and waits for the answer.
    pub fn call(&self, exchange: ExchangeId, request: Bytes) -> Result<Bytes, CallError> {
        self.start_call(exchange, request).wait()
    }

    /// Starts a call; `done` runs with its result on the client's shard, in the loop
    /// iteration that received the answer (see [`ShardCaller`]: no thread hop; `done`
    /// must not block).
    pub fn call_then<F>(&self, exchange: ExchangeId, request: Bytes, done: F)
    where
        F: FnOnce(Result<Bytes, CallError>) + Send + 'static,
    {
        self.shard_caller().call_then(exchange, request, done);
    }

    /// A handle that starts calls completing on the client's shard, to move into
    /// completion callbacks (see [`ShardCaller`]).
    pub fn shard_caller(&self) -> ShardCaller {
        ShardCaller::new(Arc::clone(&self.caller))
    }

    /// Starts a call and returns at once (pipelining).
    pub fn start_call(&self, exchange: ExchangeId, request: Bytes) -> PendingCall {
        self.start_call_with(exchange, request, CallOptions::default())
    }

    /// Starts a call with options (`ordered`: delivered after every earlier ordered call).
    pub fn start_call_with(
        &self,
        exchange: ExchangeId,
        request: Bytes,
        options: CallOptions,
    ) -> PendingCall {
        let (tx, rx) = channel::bounded(1);
        let token = self.caller.start(None, exchange, request, options, &tx);
        PendingCall {
            token,
            spin: self.spin,
            rx,
            commands: self.host.commands.clone(),
        }
    }

    /// Calls `exchange` once per request, all in flight together (up to the negotiated
    /// slots); answers come back in request order.
    pub fn call_many(
        &self,
        exchange: ExchangeId,
        requests: impl IntoIterator<Item = Bytes>,
    ) -> Vec<Result<Bytes, CallError>> {
        let (tx, rx) = channel::unbounded();
        let mut count = 0u64;
        for body in requests {
            self.caller
                .start(None, exchange, body, CallOptions::default(), &tx);
            count += 1;
        }
        drop(tx);
        // Tokens of concurrent callers may interleave with ours: index by token.
        let mut tokens = Vec::with_capacity(count as usize);
        let mut results: Vec<Option<Result<Bytes, CallError>>> = (0..count).map(|_| None).collect();
        for _ in 0..count {
            match rx.recv() {
                Ok(c) => tokens.push((c.token, c.result)),
                Err(_) => break,
            }
        }
        tokens.sort_unstable_by_key(|(t, _)| *t);
        for (i, (_, r)) in tokens.into_iter().enumerate() {
            results[i] = Some(r);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(CallError::NoNexus)))
            .collect()
    }

    /// A stream of calls sharing one completion queue: [`Pipeline::submit`] as many as
    /// wanted, [`Pipeline::next_completion`] in completion order. The cheapest way to keep
    /// many calls in flight (no per-call channel).
    pub fn pipeline(&self) -> Pipeline<'_> {
        Pipeline::new(&self.caller, None, self.spin)
    }

    /// Counters and histograms of the nexus and its open connections.
    pub fn stats(&self) -> StatsReport {
        stats_of(&self.host)
    }

    /// Waits until `connections` connections are bound to the nexus, or `timeout`
    /// passes; returns how many are. Requests go to the connections bound when they are
    /// sent, so a bulk sender that starts before its trunk has joined puts its whole
    /// first window on the leading connection.
    pub fn wait_for_trunk(&self, connections: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let bound = self.stats().bound_connections;
            if bound >= connections || Instant::now() >= deadline {
                return bound;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Test hook: shuts down (`shutdown(2)`) the `index`-th open connection of the trunk
    /// (modulo their number), as a network failure would. The client reconnects and
    /// retries what was in flight.
    #[doc(hidden)]
    pub fn kill_connection(&self, index: usize) {
        self.host
            .commands
            .send(HostCommand::KillConnection { index });
    }

    /// Destroys the nexus on the server (outstanding calls fail with
    /// [`CallError::NexusDestroyed`]) and stops the client.
    pub fn close(mut self) {
        self.host.commands.send(HostCommand::Destroy);
        // Give the Destroy frame a moment to leave; the server expires the nexus anyway.
        std::thread::sleep(Duration::from_millis(20));
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(shards) = self.shards.take() {
            driver::uninstall(&shards, &self.host);
            drop(shards);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A finished pipeline call: its token and its result.
pub type FinishedCall = (u64, Result<Bytes, CallError>);

/// Calls in flight with one completion queue (see [`Client::pipeline`] and, for
/// backchannel calls, [`Backchannel::pipeline`]).
#[derive(Debug)]
pub struct Pipeline<'c> {
    caller: &'c Caller,
    /// The nexus whose backchannel the calls go to (a server's pipeline); `None` on a
    /// client.
    nexus: Option<NexusId>,
    spin: Duration,
    tx: channel::Sender<CallCompletion>,
    rx: Receiver<CallCompletion>,
    outstanding: usize,
    /// Request bytes wait here before they go (see [`rate_limit`](Self::rate_limit)).
    rate: Option<TokenBucket>,
}

impl<'c> Pipeline<'c> {
    fn new(caller: &'c Caller, nexus: Option<NexusId>, spin: Duration) -> Self {
        let (tx, rx) = channel::unbounded();
        Pipeline {
            caller,
            nexus,
            spin,
            tx,
            rx,
            outstanding: 0,
            rate: None,
        }
    }

    /// Caps the request bytes this pipeline sends at `bytes_per_sec` (`None` or 0: no
    /// cap): [`submit`](Self::submit) waits until a token bucket holding 50 ms of them
    /// (at least 64 KiB) has the request's bytes. A request larger than the bucket goes
    /// once the bucket is full and leaves it in debt, so the average holds whatever the
    /// request size.
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

    /// Starts a call; returns its token (as [`next_completion`](Self::next_completion)
    /// reports it).
    pub fn submit(&mut self, exchange: ExchangeId, request: Bytes) -> u64 {
        self.submit_with(exchange, request, CallOptions::default())
    }

    /// Starts a call with options (`ordered`: delivered after every earlier ordered call).
    pub fn submit_with(
        &mut self,
        exchange: ExchangeId,
        request: Bytes,
        options: CallOptions,
    ) -> u64 {
        if let Some(bucket) = &mut self.rate {
            // Answers queue up in the session while this thread sleeps, and are taken
            // when it next waits for one.
            let len = request.len() as u64;
            loop {
                let now = Instant::now();
                if bucket.try_take(now, len) {
                    break;
                }
                std::thread::sleep(bucket.ready_at(len).saturating_duration_since(now));
            }
        }
        let token = self
            .caller
            .start(self.nexus, exchange, request, options, &self.tx);
        self.outstanding += 1;
        token
    }

    /// Cancels the call `token`.
    pub fn cancel(&self, token: u64) {
        self.caller.commands.send(HostCommand::Cancel { token });
    }

    /// Calls submitted and not yet returned by `next_completion`.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// The next finished call if one is ready, without waiting.
    pub fn try_next_completion(&mut self) -> Option<(u64, Result<Bytes, CallError>)> {
        if self.outstanding == 0 {
            return None;
        }
        let c = self.rx.try_recv().ok()?;
        self.outstanding -= 1;
        Some((c.token, c.result))
    }

    /// Waits at most `timeout` for the next call to finish: `Ok(None)` when none is
    /// outstanding, `Err(())` when none finished in time.
    #[allow(clippy::result_unit_err)]
    pub fn next_completion_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<FinishedCall>, ()> {
        if self.outstanding == 0 {
            return Ok(None);
        }
        match self.rx.recv_timeout(timeout) {
            Ok(c) => {
                self.outstanding -= 1;
                Ok(Some((c.token, c.result)))
            }
            Err(channel::RecvTimeoutError::Timeout) => Err(()),
            Err(channel::RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    /// Waits for the next call to finish; `None` when none is outstanding.
    pub fn next_completion(&mut self) -> Option<(u64, Result<Bytes, CallError>)> {
        if self.outstanding == 0 {
            return None;
        }
        let c = recv_spinning(&self.rx, self.spin)?;
        self.outstanding -= 1;
        Some((c.token, c.result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_clients_are_accepted_by_default_only_on_loopback_without_secrets() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let v6_loopback: IpAddr = "::1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lan: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(anonymous_allowed(None, false, loopback));
        assert!(anonymous_allowed(None, false, v6_loopback));
        assert!(!anonymous_allowed(None, false, any));
        assert!(!anonymous_allowed(None, false, lan));
        assert!(!anonymous_allowed(None, true, loopback));
        assert!(anonymous_allowed(Some(true), true, lan));
        assert!(!anonymous_allowed(Some(false), false, loopback));
    }
}
