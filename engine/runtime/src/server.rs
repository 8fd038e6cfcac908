//! A server: services on a shard, listening.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel;
use hawser_session::{
    self as session, CallError, CallOptions, ExchangeId, NexusId, ServerCredentials, ServerLimits,
};
use hawser_shards::{Shards, StatsSnapshot};

use crate::address::Address;
use crate::call::PendingCall;
use crate::command::Caller;
use crate::driver::{self, Drain, HostHandle, shards_config};
use crate::error::resolve;
use crate::service::HandlerTable;
use crate::stats::StatsReport;
use crate::transport::ProtocolStack;
use crate::{ApiError, Backchannel, Runtime, Service};

/// The default DSP port (`dlpx-sp`).
pub const DEFAULT_PORT: u16 = 8415;

/// Whether a server accepts `ANONYMOUS` clients: as `setting` says, and by default only
/// when every address it listens on is local (loopback, a Unix socket, shared memory)
/// and it has no shared secrets (anyone who can reach a network address could otherwise
/// use it).
pub fn anonymous_allowed(setting: Option<bool>, has_secrets: bool, listen: &[Address]) -> bool {
    setting.unwrap_or(!has_secrets && listen.iter().all(Address::is_local))
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
    placement: Option<(Runtime, Vec<usize>)>,
    tls: Option<session::ServerTls>,
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
            tls: None,
        }
    }

    /// Runs the server on shard `shard` of `runtime` instead of a shard of its own.
    pub fn runtime(mut self, runtime: &Runtime, shard: usize) -> Self {
        self.placement = Some((runtime.clone(), vec![shard]));
        self
    }

    /// Runs the server on every shard of `runtime`: each shard holds the nexuses of the
    /// client identities routed to it (by the route in their Hello, see PROTOCOL.md,
    /// session layer §15), and a connection opens on its identity's shard. Limits apply
    /// per shard.
    pub fn runtime_all_shards(mut self, runtime: &Runtime) -> Self {
        self.placement = Some((runtime.clone(), (0..runtime.shards.len()).collect()));
        self
    }

    /// Adds a service (a later registration of the same exchange id wins).
    pub fn service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    /// Accepts `identity` if it proves it knows `password` (SCRAM-SHA-256; the server
    /// keeps only the SCRAM keys, derived here with 4096 iterations). A server with users
    /// refuses anonymous clients unless [`allow_anonymous`](Self::allow_anonymous) says
    /// otherwise.
    pub fn password(mut self, identity: impl Into<String>, password: impl Into<Vec<u8>>) -> Self {
        let one = ServerCredentials::passwords(
            [(identity.into(), password.into())],
            session::auth::DEFAULT_ITERATIONS,
        );
        self.credentials.users.extend(one.users);
        self
    }

    /// Accepts `identity` with the password whose SCRAM entry this is (the user database
    /// `hawser passwd` writes).
    pub fn user(mut self, identity: impl Into<String>, entry: session::ScramEntry) -> Self {
        self.credentials.users.insert(identity.into(), entry);
        self
    }

    /// Accepts a client showing the TLS certificate whose pin (SHA-256 of its DER) this is
    /// as `identity`, with `EXTERNAL` (the server's TLS must ask for client certificates:
    /// [`ServerTls::with_client_certificates`](session::ServerTls::with_client_certificates)).
    pub fn client_cert(mut self, identity: impl Into<String>, pin: [u8; 32]) -> Self {
        self.credentials.client_certs.insert(identity.into(), pin);
        self
    }

    /// Offers `PLAIN` (over TLS only) to users besides SCRAM: for clients that cannot do
    /// SCRAM. Each PLAIN attempt costs the server a PBKDF2 of the user's iteration count.
    pub fn allow_plain(mut self, allow: bool) -> Self {
        self.credentials.allow_plain = allow;
        self
    }

    /// Offers TLS to clients (requires it if `tls.require`).
    pub fn tls(mut self, tls: session::ServerTls) -> Self {
        self.tls = Some(tls);
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

    /// Accepts local processes running as `uid` as `identity` when they authenticate
    /// with `EXTERNAL` over a Unix socket or shared memory (the kernel's credentials of
    /// the peer are the proof).
    pub fn peer_uid(mut self, identity: impl Into<String>, uid: u32) -> Self {
        self.credentials.peer_uids.insert(identity.into(), uid);
        self
    }

    /// Binds the TCP address `addr` (port 0 picks a free port) and starts serving.
    pub fn listen(self, addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<Server, ApiError> {
        let addr = resolve(addr)?;
        self.listen_on(&[Address::Tcp(addr)])
    }

    /// Listens on every address (any transport DSP composes on: TCP, Unix sockets,
    /// shared memory) and starts serving. A Unix or shared-memory socket file that a
    /// stopped server left behind is replaced; one a live server listens on is not.
    pub fn listen_on(self, addresses: &[Address]) -> Result<Server, ApiError> {
        if addresses.is_empty() {
            return Err(ApiError::Address(crate::address::AddressError {
                text: String::new(),
                why: "a server needs at least one address to listen on".into(),
            }));
        }
        let tls = self.tls.is_some();
        let pipelines = addresses
            .iter()
            .map(|a| ProtocolStack::session(a, tls))
            .collect::<Result<Vec<_>, _>>()?;
        let transports: Vec<_> = pipelines
            .iter()
            .map(|p| Arc::clone(p.transport()))
            .collect();
        let mut table = HandlerTable::default();
        for s in self.services {
            table.extend(s.table);
        }
        let mut credentials = self.credentials;
        credentials.allow_anonymous = anonymous_allowed(
            self.allow_anonymous,
            !credentials.users.is_empty()
                || !credentials.peer_uids.is_empty()
                || !credentials.client_certs.is_empty(),
            addresses,
        );
        let mut config = session::ServerConfig::new(credentials);
        config.compress = self.compress;
        config.limits = self.limits;
        if let Some(grace) = self.grace_period {
            config.grace_period = grace;
        }
        config.fore_limits.slots = self.slots;
        config.align_request_bodies_at = self.align_request_bodies_at;
        // Aligned bodies are written with O_DIRECT: huge pages make pinning them cheap.
        config.advise_body_storage = Some(hawser_shards::prefer_huge_pages);
        config.receive_budget = Some(session::ReceiveBudget::new(self.receive_budget));
        config.timers.frame_timeout = self.frame_timeout;
        config.tls = self.tls;
        if let Some(bytes) = self.max_request_size {
            config.fore_limits.max_request_size = bytes;
            config.back_limits.max_request_size = bytes;
        }
        let (shards, on) = match self.placement {
            Some((rt, mut on)) => {
                let last = rt.shards.len() - 1;
                on.iter_mut().for_each(|s| *s = (*s).min(last));
                on.dedup();
                (rt.shards, on)
            }
            None => (Arc::new(Shards::start(shards_config(1, None))?), vec![0]),
        };
        let (jobs_tx, jobs_rx) = channel::unbounded();
        let drain = Arc::new(Drain::default());
        let installed = driver::install_server(
            &shards,
            &on,
            config,
            Arc::new(table),
            jobs_tx,
            &transports,
            Arc::clone(&drain),
        )?;
        let workers =
            driver::spawn_workers(self.handler_threads, jobs_rx, &installed.hosts[0], &drain);
        Ok(Server {
            callers: installed.callers,
            shards: Some(shards),
            hosts: installed.hosts,
            addresses: installed.bound,
            workers,
            drain,
        })
    }
}

/// A running server. Dropping it stops it.
pub struct Server {
    /// Each host's caller (backchannel calls), in the order of `hosts`.
    callers: Vec<Arc<Caller>>,
    shards: Option<Arc<Shards>>,
    /// One per shard the server runs on (the first accepts).
    hosts: Vec<HostHandle>,
    addresses: Vec<Address>,
    workers: Vec<JoinHandle<()>>,
    /// Shared with the listeners and the handler threads.
    drain: Arc<Drain>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addresses", &self.addresses)
            .finish()
    }
}

impl Server {
    /// The TCP address it listens on: the first, if it listens on several (`0.0.0.0:0`
    /// if it listens on none: see [`addresses`](Self::addresses)).
    pub fn local_addr(&self) -> SocketAddr {
        self.addresses
            .iter()
            .find_map(|a| match a {
                Address::Tcp(a) => Some(*a),
                _ => None,
            })
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Every address it listens on, as bound (a TCP port 0 resolved).
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// Counters and histograms of every nexus and open connection.
    pub fn stats(&self) -> StatsReport {
        crate::stats::merged_stats(&self.host_commands())
    }

    fn host_commands(&self) -> Vec<(usize, crate::command::CommandSender)> {
        self.hosts
            .iter()
            .map(|h| (h.shard, h.commands.clone()))
            .collect()
    }

    /// The shards the server runs on, in order (the first accepts).
    pub fn shards_used(&self) -> Vec<usize> {
        self.hosts.iter().map(|h| h.shard).collect()
    }

    /// The caller of the host that holds `nexus` (the first host's if none does).
    fn caller_of(&self, nexus: NexusId) -> &Arc<Caller> {
        if self.callers.len() > 1 {
            for (host, caller) in self.hosts.iter().zip(&self.callers) {
                if host
                    .commands
                    .stats()
                    .nexuses
                    .iter()
                    .any(|(n, _)| *n == nexus)
                {
                    return caller;
                }
            }
        }
        &self.callers[0]
    }

    /// A handle that reads these statistics from any thread (a control-plane handler).
    pub fn stats_handle(&self) -> crate::StatsHandle {
        crate::StatsHandle(self.host_commands())
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
        Backchannel::new(Arc::clone(self.caller_of(nexus)), nexus)
    }

    /// Counters of each shard the server runs on (all of its runtime's shards).
    pub fn shard_stats(&self) -> Vec<StatsSnapshot> {
        self.shards
            .as_ref()
            .map_or_else(Vec::new, |s| (0..s.len()).map(|i| s.stats(i)).collect())
    }

    /// Replaces what the server accepts (users, mapped identities, PLAIN, anonymous
    /// clients) and its connection and nexus limits. Clients already logged in stay; the
    /// next handshake is checked against `credentials`. TLS settings cannot change here.
    pub fn reconfigure(&self, credentials: session::ServerCredentials, limits: ServerLimits) {
        for host in &self.hosts {
            host.commands
                .send(crate::command::HostCommand::Reconfigure {
                    credentials: Box::new(credentials.clone()),
                    limits,
                });
        }
    }

    /// Drains the server before it stops: new connections are refused, no further
    /// request is started, and the requests handlers are running finish (a block being
    /// written is written and journaled). Waits at most `timeout`; returns how many
    /// requests were still running then (0: drained).
    pub fn drain(&self, timeout: Duration) -> usize {
        self.drain.draining.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        loop {
            let running = self.drain.running.load(Ordering::SeqCst);
            if running == 0 || Instant::now() >= deadline {
                return running;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops accepting, closes every connection and joins the threads.
    pub fn shutdown(self) {}

    fn stop(&mut self) {
        if let Some(shards) = self.shards.take() {
            for host in &self.hosts {
                driver::uninstall(&shards, host);
            }
            // The socket files of Unix and shared-memory listeners: a later server on the
            // same path binds it afresh.
            for path in self.addresses.iter().filter_map(Address::path) {
                let _ = std::fs::remove_file(path);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_clients_are_accepted_by_default_only_on_loopback_without_secrets() {
        let a = |s: &str| Address::parse(s).unwrap();
        let loopback = [a("127.0.0.1:1")];
        let v6_loopback = [a("[::1]:1")];
        let any = [a("0.0.0.0:1")];
        let lan = [a("192.0.2.2:1")];
        let unix = [a("unix:///tmp/s"), a("shm://x"), a("127.0.0.1:2")];
        let mixed = [a("unix:///tmp/s"), a("192.0.2.2:1")];
        assert!(anonymous_allowed(None, false, &loopback));
        assert!(anonymous_allowed(None, false, &v6_loopback));
        assert!(anonymous_allowed(None, false, &unix));
        assert!(!anonymous_allowed(None, false, &any));
        assert!(!anonymous_allowed(None, false, &lan));
        assert!(!anonymous_allowed(None, false, &mixed));
        assert!(!anonymous_allowed(None, true, &loopback));
        assert!(anonymous_allowed(Some(true), true, &lan));
        assert!(!anonymous_allowed(Some(false), false, &loopback));
    }
}
