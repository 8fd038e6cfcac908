//! One endpoint on its shard: the host that feeds the sans-IO endpoint, runs its handlers
//! and calls, and queues the work that needs the shard's context.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use crossbeam::channel::{Receiver, Sender};
use hawser_session::{
    self as session, CallError, Event, IdMap, IncomingRequest, NexusId, RemoteException, Reply,
    RequestId,
};
use hawser_shards::{AppMessage, ShardCtx, ShardHandler, Transmit};

use super::conn::{SessionConn, ShardSink};
use super::refusals::RefusalLog;
use crate::command::{Caller, HostCommand, Readiness, ReplyTo, Waker};
use crate::service::{Handler, HandlerTable, Job, RequestContext, to_reply};
use crate::stats::StatsReport;
use crate::transport::Transport;

/// Limit of output stashed for a connection that is not the one being served.
const STASH_LIMIT: usize = 1 << 20;

/// Work that needs the shard context.
pub(crate) enum Action {
    Connect,
    Wake(hawser_shards::ConnId),
    /// Only the test hook closes a socket under the endpoint.
    #[cfg(feature = "testing")]
    Close(hawser_shards::ConnId),
    ArmTimer(Instant),
}

/// The driver's state for one connection of the endpoint.
pub(crate) struct ConnSlot {
    pub(crate) socket: Option<hawser_shards::ConnId>,
    /// Output pulled from the endpoint while another connection was being served.
    pub(crate) stash: Transmit,
    /// The endpoint is done with it: flush, then close.
    pub(crate) closing: bool,
    /// Its shard was woken to flush and close it: once is enough (a wake per pump for
    /// every closing connection piled up in the shard's inbox under a flood of refused
    /// connections).
    pub(crate) close_woken: bool,
}

pub(crate) struct ClientSide {
    pub(crate) ep: session::ClientEndpoint,
    /// What the trunk's connections are opened on (and reopened after a loss).
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) ready: Option<Sender<Readiness>>,
}

pub(crate) struct ServerSide {
    pub(crate) ep: session::ServerEndpoint,
}

/// Calls this endpoint initiated (client: fore channel; server: backchannel), keyed by
/// (nexus, request id): a server's request ids are per nexus. A client keys with nexus 0
/// (its calls may start before the nexus has an id).
#[derive(Default)]
pub(crate) struct Calls {
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
    pub(crate) running: HashMap<IncomingRequest, Arc<AtomicBool>>,
    /// A server's caller, handed to its handlers for backchannel calls.
    pub(crate) caller: Option<Arc<Caller>>,
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

pub(crate) enum Side {
    Client(Box<ClientSide>),
    Server(Box<ServerSide>),
}

impl Side {
    pub(crate) fn recv_buffer(&mut self, now: Instant, conn: session::LinkId) -> Option<BytesMut> {
        match self {
            Side::Client(s) => s.ep.recv_buffer(now, conn),
            Side::Server(s) => s.ep.recv_buffer(now, conn),
        }
    }
    pub(crate) fn handle_received(
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
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        conn: session::LinkId,
        out: &mut Transmit,
    ) -> usize {
        let out = &mut ShardSink(out);
        match self {
            Side::Client(s) => s.ep.poll_transmit(now, conn, out),
            Side::Server(s) => s.ep.poll_transmit(now, conn, out),
        }
    }
    /// The connections changed since the last call (only they can have output).
    pub(crate) fn drain_changed(&mut self, out: &mut Vec<session::LinkId>) {
        match self {
            Side::Client(s) => s.ep.drain_changed(out),
            Side::Server(s) => s.ep.drain_changed(out),
        }
    }
    pub(crate) fn connection_lost(&mut self, now: Instant, conn: session::LinkId) {
        match self {
            Side::Client(s) => s.ep.connection_lost(now, conn),
            Side::Server(s) => s.ep.connection_lost(now, conn),
        }
    }
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Side::Client(s) => s.ep.poll_timeout(),
            Side::Server(s) => s.ep.poll_timeout(),
        }
    }
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Side::Client(s) => s.ep.handle_timeout(now),
            Side::Server(s) => s.ep.handle_timeout(now),
        }
    }
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        match self {
            Side::Client(s) => s.ep.poll_event(),
            Side::Server(s) => s.ep.poll_event(),
        }
    }
    pub(crate) fn respond(
        &mut self,
        now: Instant,
        request: &IncomingRequest,
        reply: Reply,
    ) -> bool {
        match self {
            Side::Client(s) => s.ep.respond(now, request, reply),
            Side::Server(s) => s.ep.respond(now, request, reply),
        }
    }
    /// Who created `nexus` (a server's; `None` on a client).
    pub(crate) fn nexus_owner(&self, nexus: NexusId) -> Option<session::NexusOwner> {
        match self {
            Side::Client(_) => None,
            Side::Server(s) => s.ep.nexus_owner(nexus).cloned(),
        }
    }

    /// The key part naming the nexus of a call (see [`Calls`]).
    pub(crate) fn call_nexus_key(&self, nexus: NexusId) -> u128 {
        match self {
            Side::Client(_) => 0,
            Side::Server(_) => nexus.0,
        }
    }
}

/// One endpoint on its shard.
pub(crate) struct Host {
    pub(crate) id: u64,
    pub(crate) side: Side,
    pub(crate) calls: Calls,
    pub(crate) serving: Serving,
    pub(crate) links: IdMap<session::LinkId, ConnSlot>,
    pub(crate) actions: Vec<Action>,
    /// Connections to poll for output: those the endpoint changed, and those skipped
    /// while their stash was full.
    changed: Vec<session::LinkId>,
    deferred: Vec<session::LinkId>,
    pub(crate) timer_armed: Option<Instant>,
    pub(crate) commands: Receiver<HostCommand>,
    pub(crate) waker: Waker,
    pub(crate) dead: bool,
    /// See [`HostHandle::memory_freed`].
    pub(crate) memory_freed: Arc<AtomicBool>,
    /// Warnings for refused connections, rate-limited.
    refusals: RefusalLog,
}

thread_local! {
    pub(crate) static HOSTS: RefCell<Vec<(u64, Rc<RefCell<Host>>)>> = const { RefCell::new(Vec::new()) };
    /// The same hosts by id: timers and accepts find theirs without a scan.
    pub(crate) static HOSTS_BY_ID: RefCell<IdMap<u64, Rc<RefCell<Host>>>> = RefCell::new(IdMap::default());
}

pub(crate) fn host_by_id(id: u64) -> Option<Rc<RefCell<Host>>> {
    HOSTS_BY_ID.with(|h| h.borrow().get(&id).cloned())
}

pub(crate) fn random_nonce() -> [u8; 16] {
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
    pub(crate) fn new(
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
            changed: Vec::new(),
            deferred: Vec::new(),
            timer_armed: None,
            commands,
            waker,
            dead: false,
            memory_freed: Arc::new(AtomicBool::new(false)),
            refusals: RefusalLog::default(),
        }
    }

    pub(crate) fn open(
        &mut self,
        now: Instant,
        socket: hawser_shards::ConnId,
        peer: session::Peer,
    ) -> session::LinkId {
        let conn = match &mut self.side {
            Side::Client(s) => s.ep.add_connection(now, random_nonce()),
            Side::Server(s) => s.ep.accept_peer(now, random_nonce(), peer.canonical()),
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
    pub(crate) fn pump(&mut self, now: Instant, current: Option<session::LinkId>) -> bool {
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
        // Only connections the endpoint changed can have output: with thousands of idle
        // connections, an event costs what it touched, not a visit to every connection.
        let mut changed = std::mem::take(&mut self.changed);
        changed.append(&mut self.deferred);
        self.side.drain_changed(&mut changed);
        changed.sort_unstable();
        changed.dedup();
        for conn in changed.drain(..) {
            let Some(link) = self.links.get_mut(&conn) else {
                continue;
            };
            if Some(conn) == current {
                // Its caller takes its output now; kept for the next pump in case more
                // comes after that.
                self.deferred.push(conn);
                continue;
            }
            if link.stash.queued() >= STASH_LIMIT {
                self.deferred.push(conn);
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
                    // Its last bytes, and the wake that closes its socket.
                    self.changed.push(conn);
                }
                if let Side::Server(s) = &self.side {
                    self.refusals
                        .closed(now, s.ep.connection_peer(conn), &reason);
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
            Event::NexusLost { nexus } | Event::NexusDestroyed { nexus } => {
                self.memory_freed.store(true, Ordering::Release);
                if let Side::Server(_) = self.side {
                    for hook in &self.serving.handlers.nexus_end {
                        hook(nexus);
                    }
                }
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
            #[cfg(feature = "testing")]
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
                        report.totals = s.ep.connection_totals();
                        for conn in self.links.keys() {
                            if let Some(st) = s.ep.connection_stats(*conn) {
                                report.connections.push(st.clone());
                            }
                        }
                    }
                    Side::Server(s) => {
                        report.totals = s.ep.connection_totals();
                        for nexus in s.ep.nexuses() {
                            if let Some(st) = s.ep.nexus_stats(nexus) {
                                report.nexuses.push((nexus, st.clone()));
                            }
                            let (Some(owner), Some(footprint)) =
                                (s.ep.nexus_owner(nexus), s.ep.footprint(nexus))
                            else {
                                continue;
                            };
                            report.details.push(crate::NexusDetail {
                                nexus,
                                identity: owner.identity.to_string(),
                                anonymous: owner.anonymous,
                                peer: owner.peer.to_string(),
                                footprint,
                                connections: s
                                    .ep
                                    .nexus_members(nexus)
                                    .iter()
                                    .filter_map(|c| s.ep.connection_stats(*c).cloned())
                                    .collect(),
                                // Set by the server, which knows where each host runs.
                                shard: 0,
                            });
                            if let Some(owner) = s.ep.nexus_owner(nexus) {
                                report.owners.push((nexus, owner.clone()));
                            }
                        }
                        for conn in self.links.keys() {
                            if let Some(st) = s.ep.connection_stats(*conn) {
                                report.connections.push(st.clone());
                            }
                        }
                        report.ended_nexuses =
                            s.ep.ended_nexus_stats()
                                .map(|(identity, anonymous, st)| {
                                    (identity.to_owned(), anonymous, st.clone())
                                })
                                .collect();
                        report.ended_connections = s.ep.ended_connection_stats().clone();
                        report.load = Some(s.ep.load());
                        report.connections_refused = self.refusals.refused;
                        report.protocol_violations = self.refusals.protocol_violations;
                    }
                }
                let _ = reply.send(report);
            }
            HostCommand::Destroy => {
                if let Side::Client(s) = &mut self.side {
                    s.ep.destroy(now);
                }
            }
            HostCommand::Reconfigure {
                credentials,
                limits,
            } => {
                if let Side::Server(s) = &mut self.side {
                    s.ep.reconfigure(*credentials, limits);
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
                    owner: self.side.nexus_owner(request.nexus),
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
                        owner: self.side.nexus_owner(request.nexus),
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
pub(crate) fn shard_task(ctx: &mut ShardCtx<'_>) {
    let mut i = 0;
    while let Some(host) = HOSTS.with(|h| h.borrow().get(i).map(|x| x.1.clone())) {
        run_host(ctx, &host, false);
        i += 1;
    }
}

pub(crate) fn run_host(ctx: &mut ShardCtx<'_>, host: &Rc<RefCell<Host>>, timer: bool) {
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
        let (transport, id) = {
            let h = host.borrow();
            let transport = match &h.side {
                Side::Client(s) => Some(Arc::clone(&s.transport)),
                Side::Server(_) => None,
            };
            (transport, h.id)
        };
        for action in actions.drain(..) {
            match action {
                Action::Wake(socket) => ctx.send_to_connection(socket, AppMessage::new(0, 0)),
                #[cfg(feature = "testing")]
                Action::Close(socket) => ctx.close(socket),
                Action::ArmTimer(at) => ctx.set_timer(at, id),
                Action::Connect => {
                    let Some(transport) = &transport else {
                        continue;
                    };
                    let conn = SessionConn::new(host.clone());
                    if transport.connect(ctx, Box::new(conn)).is_err() {
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
