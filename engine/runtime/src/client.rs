//! A client: one nexus to a server over a trunk of connections.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel;
use hawser_session::{
    self as session, CallError, CallOptions, ClientCredentials, ExchangeId, NexusId,
};
use hawser_shards::Shards;

use crate::address::Address;
use crate::call::{PendingCall, Pipeline};
use crate::command::{Caller, HostCommand, Readiness};
use crate::driver::{self, HostHandle, shards_config};
use crate::error::resolve;
use crate::service::Handler;
use crate::stats::StatsReport;
use crate::transport::ProtocolStack;
use crate::{ApiError, Runtime, Service, ShardCaller};

/// Time a held create needs after its hold ends (the server creating the nexus, the
/// answer travelling): a hold ending later than the connect timeout minus this is not
/// waited for.
const HOLD_MARGIN: Duration = Duration::from_millis(500);

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Connections in the trunk.
    pub connections: usize,
    /// xxh3 digest over every frame's payload, on connections without TLS (with TLS, its
    /// AEAD tag already authenticates every byte, so the digest is not asked for).
    pub digest: bool,
    /// Offer lz4 compression (used per frame when it pays).
    pub compression: bool,
    /// Authenticate with this password (SCRAM-SHA-256, bound to the TLS session over
    /// TLS) instead of anonymously.
    pub password: Option<Vec<u8>>,
    /// Run every connection over TLS, checking the server so; never fall back to clear
    /// text.
    pub tls: Option<session::ClientTls>,
    /// Use this SASL mechanism whatever else the server offers (default: the strongest
    /// offered that the credentials allow).
    pub sasl_mechanism: Option<session::Mechanism>,
    /// Authenticate with `EXTERNAL`: over a Unix socket or shared memory the server
    /// takes this process's user id, as the kernel tells it, as proof of `identity`
    /// (it must map that identity to that uid). Ignored when `password` is set.
    pub external: bool,
    /// The client identity (the server looks the password up by it).
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
    /// Handlers for requests the server sends on the backchannel ([`Server::call`](crate::Server::call));
    /// blocking handlers run on two worker threads of the client.
    pub backchannel: Option<Service>,
    /// Largest request body to ask for, on the fore channel and on the backchannel (the
    /// server's limit caps it; both sides' buffers are sized by it).
    pub max_request_size: u32,
    /// TCP congestion control of the trunk's connections (e.g. `cubic`); `None`: the
    /// system's default. Applies when the client starts its own shard.
    pub tcp_congestion: Option<String>,
    /// Receive backchannel request bodies of 256 KiB or more with `body[offset..]` on a
    /// page boundary (see [`ServerBuilder::align_request_bodies_at`](crate::ServerBuilder::align_request_bodies_at)).
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
            password: None,
            tls: None,
            sasl_mechanism: None,
            external: false,
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
    address: Address,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.address)
            .finish()
    }
}

impl Client {
    /// Connects `config.connections` TCP connections to `addr` and waits for the nexus.
    pub fn connect(
        addr: impl ToSocketAddrs + std::fmt::Debug,
        config: ClientOptions,
    ) -> Result<Client, ApiError> {
        Self::connect_on(&Address::Tcp(resolve(addr)?), config, None)
    }

    /// Like [`connect`](Self::connect), with the nexus on shard `shard` of `runtime`.
    pub fn connect_with(
        addr: impl ToSocketAddrs + std::fmt::Debug,
        config: ClientOptions,
        runtime: &Runtime,
        shard: usize,
    ) -> Result<Client, ApiError> {
        Self::connect_on(
            &Address::Tcp(resolve(addr)?),
            config,
            Some((runtime.clone(), shard)),
        )
    }

    /// Connects `config.connections` connections to `address`, over any transport DSP
    /// composes on (TCP, Unix socket, shared memory), and waits for the nexus.
    pub fn connect_to(address: &Address, config: ClientOptions) -> Result<Client, ApiError> {
        Self::connect_on(address, config, None)
    }

    /// Like [`connect_to`](Self::connect_to), with the nexus on shard `shard` of
    /// `runtime`.
    pub fn connect_to_with(
        address: &Address,
        config: ClientOptions,
        runtime: &Runtime,
        shard: usize,
    ) -> Result<Client, ApiError> {
        Self::connect_on(address, config, Some((runtime.clone(), shard)))
    }

    fn connect_on(
        address: &Address,
        config: ClientOptions,
        placement: Option<(Runtime, usize)>,
    ) -> Result<Client, ApiError> {
        let pipeline = ProtocolStack::session(address, config.tls.is_some())?;
        let addr = address.clone();
        let credentials = match &config.password {
            Some(p) => ClientCredentials::password(p.clone()),
            None if config.external => ClientCredentials::External,
            None => ClientCredentials::Anonymous,
        };
        let mut sc = session::ClientConfig::new(config.identity.clone(), credentials);
        sc.connections = config.connections.max(1);
        // TLS's AEAD tag authenticates every record: a frame digest adds nothing there.
        sc.digest = config.digest && config.tls.is_none();
        sc.compress = config.compression;
        sc.fore.slots = config.slots.max(1);
        sc.fore.max_request_size = config.max_request_size.max(1);
        sc.back.max_request_size = config.max_request_size.max(1);
        sc.align_request_bodies_at = config.align_backchannel_bodies_at;
        sc.advise_body_storage = Some(hawser_shards::prefer_huge_pages);
        sc.timers.heartbeat_interval = config.heartbeat;
        sc.timers.dead_after = config.heartbeat * 3;
        sc.reconnect_min = Duration::from_millis(10);
        sc.reconnect_max = Duration::from_secs(1);
        sc.grace_period = config.grace_period;
        sc.replace = config.replace_nexus;
        sc.tls = config.tls.clone();
        sc.sasl_mechanism = config.sasl_mechanism;
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
        let transport = Arc::clone(pipeline.transport());
        let host = driver::install_client(&shards, shard, sc, transport, ready_tx, serving)?;
        if blocking {
            // The workers end when the host (holding the job queue) is dropped; a client
            // never drains.
            driver::spawn_workers(2, jobs_rx, &host, &Arc::default());
        }
        let mut client = Client {
            spin: config.spin,
            shards: Some(shards),
            caller: Arc::new(Caller::new(host.commands.clone())),
            host,
            address: address.clone(),
        };
        let deadline = Instant::now() + config.connect_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let error = match ready_rx.recv_timeout(left) {
                Ok(Readiness::Established) => return Ok(client),
                Ok(Readiness::Refused(reason)) => ApiError::Refused {
                    addr: addr.clone(),
                    reason,
                },
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
                    addr: addr.clone(),
                    nexus,
                    remaining,
                    reason,
                },
                Err(_) => ApiError::Timeout {
                    addr: addr.clone(),
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
    pub fn server_address(&self) -> &Address {
        &self.address
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
        self.host.commands.stats()
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
    /// retries what was in flight. Only with the `testing` feature.
    #[cfg(feature = "testing")]
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
