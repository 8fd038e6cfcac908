//! The server endpoint: accepts connections, authenticates them, and keeps nexuses.
//!
//! The server is passive about nexus lifecycles: clients create, bind, recover and destroy.
//! A nexus survives the loss of all its connections for its grace period (the client's
//! proposal up to [`ServerConfig::grace_period`]; the handshake timeout for a pristine
//! nexus, on which nothing ever ran). A second NexusCreate from the same client identity
//! is held: answered `HELD` at once (naming the nexus it waits for and the time left),
//! then answered again when the first nexus is reinstated by a bind (refused), expires or
//! is destroyed (created), so the server never runs two generations of one client's work
//! side by side.
//!
//! Everything a client sends is hostile until proven otherwise: connections are counted
//! per source address and while unauthenticated, failed authentications are throttled per
//! source and per identity (`guard.rs`), nexuses are capped, and every limit's refusal
//! names the [`ServerLimits`](super::ServerLimits) field to raise. Timers (heartbeats,
//! handshake and grace deadlines, delayed answers) sit in one deadline queue, so no
//! operation visits every connection or nexus.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::auth::{self, Attempt, DummyKey, NONCE_LEN};
use super::budget::Reservation;
use super::client::CallOptions;
use super::config::{ChannelAttributes, ServerConfig};
use super::deadlines::Deadlines;
use super::error::{CallError, CloseReason, ProtocolError};
use super::event::{Event, IncomingRequest, Reply};
use super::frame::{Features, Frame, SERVED_FEATURES, Status, VERSION};
use super::guard::{AuthThrottle, Source, SourceCounts, source_of};
use super::link::{GoAwayCode, Link, Received, TransmitSink, go_away_code};
use super::nexus::{Footprint, NexusCore};
use super::stats::{ConnectionStats, NexusStats};
use super::throttle::TokenBucket;
use super::types::{Channel, ConnId, ExchangeId, IdMap, NexusId, RequestId};

/// A NexusCreate as the client sent it.
#[derive(Debug, Clone, Copy)]
struct CreateRequest {
    fore: ChannelAttributes,
    back: ChannelAttributes,
    grace_ms: u32,
    features: Features,
}

#[derive(Debug)]
enum ServerPhase {
    AwaitHello {
        nonce: [u8; NONCE_LEN],
    },
    /// Hello exchanged; the client's Auth is next.
    AwaitAuth {
        client_nonce: [u8; NONCE_LEN],
        server_nonce: [u8; NONCE_LEN],
    },
    /// An Auth from a penalised source or for a penalised identity: checked and
    /// answered at `until`, not before, whatever the answer.
    AuthDelayed {
        until: Instant,
        client_nonce: [u8; NONCE_LEN],
        server_nonce: [u8; NONCE_LEN],
        attempt: Attempt,
    },
    Authenticated {
        identity: String,
    },
    /// A NexusCreate waiting for the identity's previous nexus to go away (since
    /// `since`; at most the server's grace period).
    Held {
        identity: String,
        request: CreateRequest,
        since: Instant,
    },
    Bound {
        nexus: NexusId,
    },
}

impl ServerPhase {
    fn is_authenticated(&self) -> bool {
        !matches!(
            self,
            ServerPhase::AwaitHello { .. }
                | ServerPhase::AwaitAuth { .. }
                | ServerPhase::AuthDelayed { .. }
        )
    }
}

#[derive(Debug)]
struct ServerNexus {
    core: NexusCore,
    identity: String,
    /// The grace period granted at creation.
    grace: Duration,
    /// When it expires, while it has no connection.
    expires_at: Option<Instant>,
    /// The receive budget held by large requests of this nexus until they are answered,
    /// by fore channel slot (see [`ReceiveBudget`](super::ReceiveBudget)).
    reservations: IdMap<u32, Reservation>,
}

/// What the deadline queue tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Timer {
    /// Heartbeats, dead and handshake deadlines, a delayed answer, a held create's end.
    Link(ConnId),
    /// Grace expiry and the backchannel throttle.
    Nexus(NexusId),
}

/// How busy a server is, and how large its bookkeeping: for monitoring and for bounds
/// checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerLoad {
    /// Connections known (open or with last bytes to send).
    pub connections: usize,
    /// Open connections that have not authenticated yet.
    pub unauthenticated: usize,
    /// Source addresses with an open connection.
    pub sources: usize,
    /// Nexuses alive.
    pub nexuses: usize,
    /// Creates held.
    pub held_creates: usize,
    /// Entries in the deadline queue (stale ones included).
    pub timer_entries: usize,
    /// Sources and identities with failed authentications on record.
    pub throttled: (usize, usize),
}

/// The server side: every nexus of every client. See the module docs of
/// [`session`](super).
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    links: IdMap<ConnId, Link<ServerPhase>>,
    next_conn: u64,
    nexuses: IdMap<NexusId, ServerNexus>,
    by_identity: HashMap<String, NexusId>,
    /// Held creates by identity, oldest first.
    held: HashMap<String, VecDeque<ConnId>>,
    deadlines: Deadlines<Timer>,
    /// Reused by `handle_timeout`.
    due: Vec<Timer>,
    connections_by_source: SourceCounts,
    unauthenticated: usize,
    auth_throttle: AuthThrottle,
    dummy_key: DummyKey,
    id_key: [u8; 32],
    ids_issued: u64,
    events: VecDeque<Event>,
    /// Connections not read until the receive budget has room for their next frame, in
    /// the order they started waiting.
    budget_waiters: VecDeque<ConnId>,
}

/// `u32` milliseconds of `d`, saturating.
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn describe_source(source: Source) -> String {
    match source {
        Some(IpAddr::V6(v6)) => format!("{v6}/64"),
        Some(ip) => ip.to_string(),
        None => "unknown addresses".into(),
    }
}

impl Server {
    /// A server; `seed` (random, from the driver) keys the generator of nexus ids (so
    /// they cannot be predicted, even from earlier ones) and the dummy secrets of unknown
    /// identities. Binding also checks the authenticated identity, so ids are not secrets.
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        Server {
            auth_throttle: AuthThrottle::new(config.auth_throttle),
            config,
            links: IdMap::default(),
            next_conn: 1,
            nexuses: IdMap::default(),
            by_identity: HashMap::new(),
            held: HashMap::new(),
            deadlines: Deadlines::default(),
            due: Vec::new(),
            connections_by_source: SourceCounts::default(),
            unauthenticated: 0,
            dummy_key: auth::dummy_key(seed),
            id_key: auth::derive_key(seed, b"hawser-nexus-ids"),
            ids_issued: 0,
            events: VecDeque::new(),
            budget_waiters: VecDeque::new(),
        }
    }

    /// The driver accepted a connection whose peer address it does not know; `nonce` must
    /// be fresh random bytes. See [`accept_from`](Self::accept_from).
    pub fn accept(&mut self, now: Instant, nonce: [u8; NONCE_LEN]) -> ConnId {
        self.accept_from(now, nonce, None)
    }

    /// The driver accepted a connection from `peer` (its IP address: the unit of the
    /// server's per-source limits and throttling); `nonce` must be fresh random bytes.
    /// Over a limit, the connection is refused at once: a GoAway `RESOURCE_EXHAUSTED`
    /// naming the limit, then [`Event::ConnectionClosed`].
    pub fn accept_from(
        &mut self,
        now: Instant,
        nonce: [u8; NONCE_LEN],
        peer: Option<IpAddr>,
    ) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let mut link = Link::new(
            id,
            ServerPhase::AwaitHello { nonce },
            now,
            self.config.timers,
        );
        link.align_request_bodies_at(self.config.align_request_bodies_at);
        link.peer = peer;
        link.set_budget(self.config.receive_budget.clone());
        self.links.insert(id, link);
        let source = source_of(peer);
        let from_source = self.connections_by_source.add(source);
        self.unauthenticated += 1;
        let limits = self.config.limits;
        if from_source > limits.connections_per_address {
            let text = format!(
                "too many connections from {}: at most {} per address \
                 (limits.connections_per_address)",
                describe_source(source),
                limits.connections_per_address
            );
            self.refuse_connection(now, id, text);
        } else if self.unauthenticated > limits.handshakes_in_progress as usize {
            let text = format!(
                "too many connections are authenticating: at most {} at once \
                 (limits.handshakes_in_progress); try again shortly",
                limits.handshakes_in_progress
            );
            self.refuse_connection(now, id, text);
        }
        self.schedule_link(id);
        id
    }

    /// Bytes arrived on `conn`.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.receive(now, bytes);
        self.handle_frames(now, conn);
        self.schedule_link(conn);
    }

    /// The receive buffer of `conn`, for a driver that receives straight into its spare
    /// capacity instead of handing bytes to [`handle_input`](Self::handle_input): it has
    /// room for at least 64 KiB and for the rest of an incomplete frame, so a large body
    /// lands in its frame's storage without a copy. Give it back with
    /// [`handle_received`](Self::handle_received). `None` for an unknown or closing
    /// connection, and for one whose next frame must wait for the receive budget: the
    /// driver then does not read it until [`next_budget_wakeup`](Self::next_budget_wakeup)
    /// names it.
    pub fn recv_buffer(&mut self, now: Instant, conn: ConnId) -> Option<BytesMut> {
        let link = self.links.get_mut(&conn)?;
        let buf = link.lend_rx(now);
        if buf.is_none() && link.waiting_for_budget() && !link.budget_queued {
            link.budget_queued = true;
            self.budget_waiters.push_back(conn);
        }
        // A reservation granted or refused moves the link's frame and dead timers.
        self.schedule_link(conn);
        buf
    }

    /// A connection waiting for the receive budget whose next frame now fits: the driver
    /// asks for its receive buffer again. Call after anything that may release budget
    /// (received frames, answers, closed connections, timers) until `None`.
    pub fn next_budget_wakeup(&mut self) -> Option<ConnId> {
        let budget = self.config.receive_budget.as_ref()?;
        while let Some(&conn) = self.budget_waiters.front() {
            let Some(link) = self.links.get_mut(&conn) else {
                self.budget_waiters.pop_front();
                continue;
            };
            let need = match link.budget_needed() {
                Some(need) if link.is_open() && link.waiting_for_budget() => need,
                _ => {
                    link.budget_queued = false;
                    self.budget_waiters.pop_front();
                    continue;
                }
            };
            if !budget.fits(need) && budget.used() > 0 {
                return None;
            }
            link.budget_queued = false;
            self.budget_waiters.pop_front();
            return Some(conn);
        }
        None
    }

    /// The buffer from [`recv_buffer`](Self::recv_buffer) came back with `filled` new
    /// bytes: handles the frames they complete.
    pub fn handle_received(&mut self, now: Instant, conn: ConnId, buf: BytesMut, filled: usize) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.return_rx(now, buf, filled);
        self.handle_frames(now, conn);
        self.schedule_link(conn);
    }

    /// Decodes and handles the complete frames waiting on `conn`.
    fn handle_frames(&mut self, now: Instant, conn: ConnId) {
        while let Some(link) = self.links.get_mut(&conn) {
            match link.next_frame() {
                Ok(Some((frame, reservation))) => {
                    let request = match (&frame, &reservation) {
                        (
                            Frame::Request {
                                channel: Channel::Fore,
                                slot,
                                request,
                                ..
                            },
                            Some(_),
                        ) => Some((*slot, *request)),
                        _ => None,
                    };
                    if let Err(e) = self.handle_frame(now, conn, frame) {
                        self.fail_link(now, conn, e);
                        break;
                    }
                    if let (Some((slot, request)), Some(reservation)) = (request, reservation) {
                        self.hold_until_answered(conn, slot, request, reservation);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail_link(now, conn, e);
                    break;
                }
            }
        }
    }

    /// Keeps the budget reserved for a large request while the application has it (it
    /// was delivered, or waits for its ordered predecessors); a retry answered from the
    /// cache or a refused request gives it back at once.
    fn hold_until_answered(
        &mut self,
        conn: ConnId,
        slot: u32,
        request: RequestId,
        reservation: Reservation,
    ) {
        let Some(ServerPhase::Bound { nexus }) = self.links.get(&conn).map(|l| &l.phase) else {
            return;
        };
        if let Some(n) = self.nexuses.get_mut(nexus)
            && n.core.responder.executing(slot) == Some(request)
        {
            n.reservations.insert(slot, reservation);
        }
    }

    /// Moves bytes to send on `conn` into `out`; returns how many were added. After
    /// [`Event::ConnectionClosed`] for `conn`, the last bytes come out once and the
    /// connection is forgotten.
    pub fn poll_transmit(
        &mut self,
        _now: Instant,
        conn: ConnId,
        out: &mut impl TransmitSink,
    ) -> usize {
        let Some(link) = self.links.get_mut(&conn) else {
            return 0;
        };
        let n = link.poll_transmit(out);
        if !link.is_open() {
            self.forget_link(conn);
        } else if n > 0 {
            // What was sent may have moved the connection's deadline.
            self.schedule_link(conn);
        }
        n
    }

    /// The transport of `conn` failed or was closed by the peer.
    pub fn connection_lost(&mut self, now: Instant, conn: ConnId) {
        if self.links.get(&conn).is_some_and(Link::is_open) {
            self.link_gone(now, conn, CloseReason::TransportLost, None);
        }
        self.forget_link(conn);
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must run (at worst a
    /// little early: it then finds nothing due).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// Runs timers that are due: heartbeats, dead connections, handshake deadlines,
    /// delayed authentication answers, held creates, grace periods, throttling. Visits
    /// only what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        self.deadlines.take_due(now, &mut due);
        for timer in due.drain(..) {
            match timer {
                Timer::Link(conn) => self.link_timer(now, conn),
                Timer::Nexus(nexus) => self.nexus_timer(now, nexus),
            }
        }
        self.due = due;
    }

    /// The next event for the application or the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Answers a fore channel request. Returns false if the handle is stale (its nexus
    /// is gone, or it was answered already).
    pub fn respond(&mut self, _now: Instant, request: &IncomingRequest, reply: Reply) -> bool {
        let Some(n) = self.nexuses.get_mut(&request.nexus) else {
            return false;
        };
        let answered = n
            .core
            .respond(request, reply, &mut self.links, &mut self.events);
        if answered {
            // The handler is done with the body: its budget goes back.
            n.reservations.remove(&request.slot);
        }
        answered
    }

    /// Starts a backchannel request to the client of `nexus`.
    pub fn call(
        &mut self,
        now: Instant,
        nexus: NexusId,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
    ) -> Result<RequestId, CallError> {
        let n = self.nexuses.get_mut(&nexus).ok_or(CallError::NoNexus)?;
        let id = n.core.call(
            now,
            exchange,
            body,
            options,
            &mut self.links,
            &mut self.events,
        )?;
        if self.config.throttle.is_some() {
            self.schedule_nexus(nexus);
        }
        Ok(id)
    }

    /// Cancels a backchannel request.
    pub fn cancel(&mut self, _now: Instant, nexus: NexusId, request: RequestId) {
        if let Some(n) = self.nexuses.get_mut(&nexus) {
            n.core.cancel(request, &mut self.links, &mut self.events);
        }
    }

    /// Lowers (or restores) how many fore channel slots the client may use.
    pub fn set_credit(&mut self, nexus: NexusId, slots: u32) {
        let Some(n) = self.nexuses.get_mut(&nexus) else {
            return;
        };
        let slots = slots.clamp(1, n.core.responder.attributes().slots);
        if let Some(link) = n.core.members.first().and_then(|c| self.links.get_mut(c)) {
            link.send(&Frame::Credit {
                channel: Channel::Fore,
                slots,
            });
        }
    }

    /// Every nexus alive now.
    pub fn nexuses(&self) -> impl Iterator<Item = NexusId> + '_ {
        self.nexuses.keys().copied()
    }

    /// The grace period granted to `nexus` at its creation.
    pub fn grace_period(&self, nexus: NexusId) -> Option<Duration> {
        self.nexuses.get(&nexus).map(|n| n.grace)
    }

    /// Statistics of one nexus.
    pub fn nexus_stats(&self, nexus: NexusId) -> Option<&NexusStats> {
        self.nexuses.get(&nexus).map(|n| &n.core.stats)
    }

    /// Statistics of one connection.
    pub fn connection_stats(&self, conn: ConnId) -> Option<&ConnectionStats> {
        self.links.get(&conn).map(|l| &l.stats)
    }

    /// Memory held by one nexus (for bounds checks).
    pub fn footprint(&self, nexus: NexusId) -> Option<Footprint> {
        self.nexuses
            .get(&nexus)
            .map(|n| n.core.footprint(&self.links))
    }

    /// Connections known (open or with last bytes to send).
    pub fn connections(&self) -> usize {
        self.links.len()
    }

    /// Counts of what the server holds.
    pub fn load(&self) -> ServerLoad {
        ServerLoad {
            connections: self.links.len(),
            unauthenticated: self.unauthenticated,
            sources: self.connections_by_source.sources(),
            nexuses: self.nexuses.len(),
            held_creates: self.held.values().map(VecDeque::len).sum(),
            timer_entries: self.deadlines.entries(),
            throttled: self.auth_throttle.sizes(),
        }
    }

    /// When `link` needs attention next: its own timers, and its phase's.
    fn link_deadline(&self, link: &Link<ServerPhase>) -> Option<Instant> {
        let own = link.deadline()?;
        Some(match &link.phase {
            ServerPhase::AuthDelayed { until, .. } => own.min(*until),
            ServerPhase::Held {
                identity, since, ..
            } => {
                // The hold's bound, or the old nexus's expiry, which releases it.
                let expiry = self
                    .by_identity
                    .get(identity)
                    .and_then(|old| self.nexuses.get(old))
                    .and_then(|n| n.expires_at);
                let bound = *since + self.config.grace_period;
                own.min(expiry.map_or(bound, |at| at.max(bound)))
            }
            _ => own,
        })
    }

    fn schedule_link(&mut self, conn: ConnId) {
        if let Some(at) = self.links.get(&conn).and_then(|l| self.link_deadline(l)) {
            self.deadlines.schedule(Timer::Link(conn), at);
        }
    }

    fn schedule_nexus(&mut self, nexus: NexusId) {
        let Some(n) = self.nexuses.get(&nexus) else {
            return;
        };
        // Only while a connection could carry what the throttle lets go.
        let throttle = n
            .core
            .initiator
            .throttle_deadline(&self.links, &n.core.members);
        let at = match (n.expires_at, throttle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = at {
            self.deadlines.schedule(Timer::Nexus(nexus), at);
        }
    }

    /// Forgets a connection whose last bytes are out (or that can send nothing more).
    fn forget_link(&mut self, conn: ConnId) {
        self.links.remove(&conn);
        self.deadlines.forget(Timer::Link(conn));
    }

    fn link_timer(&mut self, now: Instant, conn: ConnId) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if !link.is_open() {
            return;
        }
        if let Err(e) = link.on_timeout(now) {
            self.fail_link(now, conn, e);
            return;
        }
        let hold_over = match &link.phase {
            ServerPhase::AuthDelayed { until, .. } if now >= *until => {
                let placeholder = ServerPhase::AwaitHello {
                    nonce: [0; NONCE_LEN],
                };
                if let ServerPhase::AuthDelayed {
                    client_nonce,
                    server_nonce,
                    attempt,
                    ..
                } = std::mem::replace(&mut link.phase, placeholder)
                {
                    self.authenticate(now, conn, client_nonce, server_nonce, attempt);
                }
                None
            }
            // An old nexus without connections expires by now (it cannot have been
            // reinstated since: that refuses the hold): its timer releases the create.
            ServerPhase::Held {
                identity, since, ..
            } if now >= *since + self.config.grace_period
                && self
                    .by_identity
                    .get(identity)
                    .and_then(|old| self.nexuses.get(old))
                    .is_none_or(|n| n.expires_at.is_none()) =>
            {
                Some((
                    now.saturating_duration_since(*since).as_secs(),
                    self.by_identity.get(identity).copied(),
                ))
            }
            _ => None,
        };
        if let Some((waited, old)) = hold_over {
            let reason = match old {
                Some(old) => format!(
                    "still held after {waited} s: the previous nexus {old} of this identity \
                     is in use; try again when it has ended, or replace it"
                ),
                None => format!("still held after {waited} s"),
            };
            self.refuse(now, conn, refused_create(Status::REFUSED, reason));
        }
        self.schedule_link(conn);
    }

    fn nexus_timer(&mut self, now: Instant, nexus: NexusId) {
        let Some(n) = self.nexuses.get_mut(&nexus) else {
            return;
        };
        if n.expires_at.is_some_and(|t| now >= t) {
            self.remove_nexus(now, nexus, &CallError::NexusLost, None);
            self.events.push_back(Event::NexusLost { nexus });
            return;
        }
        n.core.dispatch(now, &mut self.links, &mut self.events);
        self.schedule_nexus(nexus);
    }

    fn fail_link(&mut self, now: Instant, conn: ConnId, e: ProtocolError) {
        let code = go_away_code(&e);
        self.link_gone(now, conn, CloseReason::Protocol(e), Some(code));
    }

    /// Refuses a connection before anything happened on it.
    fn refuse_connection(&mut self, now: Instant, conn: ConnId, text: String) {
        self.link_gone(
            now,
            conn,
            CloseReason::Refused(text),
            Some(GoAwayCode::RESOURCE_EXHAUSTED),
        );
    }

    /// Closes a connection (with a GoAway when `code` is given) and settles what it
    /// counted for: its source, the handshakes in progress, a held create, its nexus.
    fn link_gone(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: CloseReason,
        code: Option<GoAwayCode>,
    ) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if !link.is_open() {
            return;
        }
        link.close(reason.clone(), code);
        self.events
            .push_back(Event::ConnectionClosed { conn, reason });
        self.connections_by_source.remove(source_of(link.peer));
        if !link.phase.is_authenticated() {
            self.unauthenticated -= 1;
        }
        match &link.phase {
            ServerPhase::Held { identity, .. } => {
                if let Some(queue) = self.held.get_mut(identity) {
                    queue.retain(|c| *c != conn);
                    if queue.is_empty() {
                        self.held.remove(identity);
                    }
                }
            }
            ServerPhase::Bound { nexus } => {
                let nexus = *nexus;
                if let Some(n) = self.nexuses.get_mut(&nexus) {
                    n.core
                        .on_link_lost(now, conn, &mut self.links, &mut self.events);
                    if n.core.members.is_empty() {
                        self.orphaned(now, nexus);
                    }
                }
            }
            _ => {}
        }
    }

    /// `nexus` lost its last connection: its grace period starts (a pristine nexus gets
    /// the handshake timeout: nothing ran, so nothing is protected by waiting).
    fn orphaned(&mut self, now: Instant, nexus: NexusId) {
        let Some(n) = self.nexuses.get_mut(&nexus) else {
            return;
        };
        let grace = if n.core.is_pristine() {
            n.grace.min(self.config.timers.handshake_timeout)
        } else {
            n.grace
        };
        n.expires_at = Some(now + grace);
        self.schedule_nexus(nexus);
    }

    fn next_nexus_id(&mut self) -> NexusId {
        loop {
            self.ids_issued += 1;
            let id = auth::prf_u128(&self.id_key, self.ids_issued);
            if id != 0 && !self.nexuses.contains_key(&NexusId(id)) {
                return NexusId(id);
            }
        }
    }

    /// The grace period a create asking for `grace_ms` gets: the ask (0: the default),
    /// at most the server's.
    fn granted_grace(&self, grace_ms: u32) -> Duration {
        let most = self.config.grace_period;
        match grace_ms {
            0 => most,
            ms => Duration::from_millis(u64::from(ms)).min(most),
        }
    }

    /// Checks an Auth, now or after the throttle's delay.
    fn on_auth(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_nonce: [u8; NONCE_LEN],
        server_nonce: [u8; NONCE_LEN],
        attempt: Attempt,
    ) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let source = source_of(link.peer);
        let key = self.auth_throttle.identity_key(&attempt.identity);
        let delay = self.auth_throttle.delay(now, source, key);
        if delay.is_zero() {
            self.authenticate(now, conn, client_nonce, server_nonce, attempt);
        } else if let Some(link) = self.links.get_mut(&conn) {
            link.phase = ServerPhase::AuthDelayed {
                until: now + delay,
                client_nonce,
                server_nonce,
                attempt,
            };
        }
    }

    /// Decides an authentication attempt and answers it: the one place every mechanism
    /// passes through, with the throttle around it.
    fn authenticate(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_nonce: [u8; NONCE_LEN],
        server_nonce: [u8; NONCE_LEN],
        attempt: Attempt,
    ) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let source = source_of(link.peer);
        let key = self.auth_throttle.identity_key(&attempt.identity);
        if self.auth_throttle.over_rate(now, source) {
            // Not checked: an answer, even a refusal, would tell a guesser something.
            self.auth_throttle.failure(now, source, key);
            let text = format!(
                "too many failed authentications from {} in the last second; this attempt \
                 was not checked: try again in a few seconds",
                describe_source(source)
            );
            self.link_gone(
                now,
                conn,
                CloseReason::Refused(text),
                Some(GoAwayCode::AUTH_FAILED),
            );
            return;
        }
        let decided = auth::check(
            &self.config.credentials,
            &self.dummy_key,
            &attempt,
            &server_nonce,
            &client_nonce,
        );
        match decided {
            Ok(proof) => {
                if attempt.proves_identity() {
                    self.auth_throttle.proven(key);
                }
                let Some(link) = self.links.get_mut(&conn) else {
                    return;
                };
                link.send(&Frame::AuthResult {
                    status: Status::OK,
                    proof,
                    reason: String::new(),
                });
                link.phase = ServerPhase::Authenticated {
                    identity: attempt.identity,
                };
                self.unauthenticated -= 1;
            }
            Err(refusal) => {
                self.auth_throttle.failure(now, source, key);
                if let Some(link) = self.links.get_mut(&conn) {
                    link.send(&Frame::AuthResult {
                        status: refusal.status(),
                        proof: Bytes::new(),
                        reason: refusal.reason().into(),
                    });
                }
                self.link_gone(
                    now,
                    conn,
                    CloseReason::Refused(refusal.reason().into()),
                    Some(GoAwayCode::AUTH_FAILED),
                );
            }
        }
    }

    /// A NexusCreate from an authenticated connection.
    fn on_create(
        &mut self,
        now: Instant,
        conn: ConnId,
        identity: String,
        claimed: &str,
        request: CreateRequest,
    ) {
        if claimed != identity {
            self.refuse(
                now,
                conn,
                refused_create(
                    Status::IDENTITY_MISMATCH,
                    "identity differs from the authenticated one".into(),
                ),
            );
            return;
        }
        match self.by_identity.get(&identity).copied() {
            Some(old) if self.nexuses.get(&old).is_some_and(|n| n.core.is_pristine()) => {
                // Nothing ever ran on the old nexus, so there is no remote activity to
                // protect: typically the leading connection died before its
                // NexusCreated arrived. Replace it instead of holding.
                self.remove_nexus(now, old, &CallError::NexusLost, None);
                self.events.push_back(Event::NexusLost { nexus: old });
                if self.by_identity.contains_key(&identity) {
                    // A held create of the same identity went first.
                    self.hold(now, conn, identity, request);
                } else {
                    self.create_nexus(now, conn, identity, request);
                }
            }
            Some(_) => self.hold(now, conn, identity, request),
            None => self.create_nexus(now, conn, identity, request),
        }
    }

    /// The `HELD` answer telling a held create which nexus it waits for and how long.
    fn held_answer(&self, now: Instant, identity: &str) -> Frame {
        let Some((old, n)) = self
            .by_identity
            .get(identity)
            .and_then(|old| Some((*old, self.nexuses.get(old)?)))
        else {
            return refused_create(Status::REFUSED, "held".into());
        };
        let (grace_ms, reason) = match n.expires_at {
            Some(at) => {
                let left = at.saturating_duration_since(now);
                (
                    millis(left),
                    format!(
                        "the previous nexus {old} of identity {identity:?} lost its \
                         connections and the server keeps it {} s more; this create goes \
                         ahead when it expires, unless that nexus is recovered first",
                        left.as_secs_f64().ceil()
                    ),
                )
            }
            None => (
                u32::MAX,
                format!(
                    "the previous nexus {old} of identity {identity:?} is in use by {} \
                     connection(s); this create goes ahead when it is destroyed or expires \
                     (waiting {} s at most)",
                    n.core.members.len(),
                    self.config.grace_period.as_secs()
                ),
            ),
        };
        Frame::NexusCreated {
            status: Status::HELD,
            nexus: old,
            fore: ChannelAttributes::zero(),
            back: ChannelAttributes::zero(),
            grace_ms,
            features: Features::default(),
            reason,
        }
    }

    /// Holds a create until the identity's nexus goes away, and says so at once.
    fn hold(&mut self, now: Instant, conn: ConnId, identity: String, request: CreateRequest) {
        let limit = self.config.limits.held_creates_per_identity;
        let queued = self.held.get(&identity).map_or(0, VecDeque::len);
        if queued >= limit as usize {
            let reason = format!(
                "{queued} creates of this identity are already held waiting for its previous \
                 nexus (limits.held_creates_per_identity = {limit})"
            );
            self.refuse(
                now,
                conn,
                refused_create(Status::RESOURCE_EXHAUSTED, reason),
            );
            return;
        }
        let answer = self.held_answer(now, &identity);
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.send(&answer);
        // The hold has its own bound (the grace period), not the handshake timeout.
        link.handshake_complete();
        self.held
            .entry(identity.clone())
            .or_default()
            .push_back(conn);
        link.phase = ServerPhase::Held {
            identity,
            request,
            since: now,
        };
    }

    fn create_nexus(
        &mut self,
        now: Instant,
        conn: ConnId,
        identity: String,
        request: CreateRequest,
    ) {
        let most = self.config.limits.nexuses;
        if self.nexuses.len() >= most as usize {
            let reason = format!(
                "the server holds its maximum of {most} nexuses (limits.nexuses); try again \
                 later"
            );
            self.refuse(
                now,
                conn,
                refused_create(Status::RESOURCE_EXHAUSTED, reason),
            );
            return;
        }
        let fore = request.fore.negotiate(&self.config.fore_limits);
        let back = request.back.negotiate(&self.config.back_limits);
        let grace = self.granted_grace(request.grace_ms);
        let features = request.features.intersect(SERVED_FEATURES);
        let id = self.next_nexus_id();
        let throttle = self.config.throttle.map(|t| TokenBucket::new(t, now));
        let core = NexusCore::new(id, Channel::Back, back, fore, throttle);
        self.nexuses.insert(
            id,
            ServerNexus {
                core,
                identity: identity.clone(),
                grace,
                expires_at: None,
                reservations: IdMap::default(),
            },
        );
        self.by_identity.insert(identity, id);
        if let Some(link) = self.links.get_mut(&conn) {
            link.send(&Frame::NexusCreated {
                status: Status::OK,
                nexus: id,
                fore,
                back,
                grace_ms: millis(grace),
                features,
                reason: String::new(),
            });
        }
        self.events.push_back(Event::NexusEstablished { nexus: id });
        self.bind(now, conn, id);
    }

    fn bind(&mut self, now: Instant, conn: ConnId, nexus: NexusId) {
        let Some(n) = self.nexuses.get_mut(&nexus) else {
            return;
        };
        let max_payload = n.core.max_payload();
        if let Some(link) = self.links.get_mut(&conn) {
            link.phase = ServerPhase::Bound { nexus };
            link.bound(max_payload);
            link.handshake_complete();
        }
        n.core.members.push(conn);
        n.expires_at = None;
        self.events
            .push_back(Event::ConnectionBound { conn, nexus });
        n.core.dispatch(now, &mut self.links, &mut self.events);
        self.schedule_nexus(nexus);
    }

    /// Removes a nexus (expired or destroyed), then lets a held create of its identity go.
    fn remove_nexus(
        &mut self,
        now: Instant,
        nexus: NexusId,
        error: &CallError,
        keep: Option<ConnId>,
    ) {
        let Some(mut n) = self.nexuses.remove(&nexus) else {
            return;
        };
        self.deadlines.forget(Timer::Nexus(nexus));
        n.core.shut_down(error, &mut self.events);
        if self.by_identity.get(&n.identity) == Some(&nexus) {
            self.by_identity.remove(&n.identity);
        }
        for &conn in &n.core.members {
            if Some(conn) == keep {
                if let Some(link) = self.links.get_mut(&conn) {
                    link.phase = ServerPhase::Authenticated {
                        identity: n.identity.clone(),
                    };
                    link.restart_handshake(now);
                }
                self.schedule_link(conn);
                continue;
            }
            self.link_gone(
                now,
                conn,
                CloseReason::Local,
                Some(GoAwayCode::NEXUS_DESTROYED),
            );
        }
        self.release_held(now, &n.identity);
    }

    /// The identity's nexus is gone: its oldest held create goes ahead; the others are
    /// told they now wait for that one.
    fn release_held(&mut self, now: Instant, identity: &str) {
        while !self.by_identity.contains_key(identity) {
            let Some(conn) = self.held.get_mut(identity).and_then(VecDeque::pop_front) else {
                break;
            };
            let request = match self.links.get_mut(&conn) {
                Some(link) if link.is_open() => match &link.phase {
                    ServerPhase::Held { request, .. } => *request,
                    _ => continue,
                },
                _ => continue,
            };
            if let Some(link) = self.links.get_mut(&conn) {
                link.phase = ServerPhase::Authenticated {
                    identity: identity.to_owned(),
                };
            }
            self.create_nexus(now, conn, identity.to_owned(), request);
        }
        let waiting: Vec<ConnId> = match self.held.get(identity) {
            Some(queue) if !queue.is_empty() => queue.iter().copied().collect(),
            Some(_) => {
                self.held.remove(identity);
                return;
            }
            None => return,
        };
        let answer = self.held_answer(now, identity);
        for conn in waiting {
            if let Some(link) = self.links.get_mut(&conn) {
                link.send(&answer);
            }
        }
    }

    /// Sends a refusal answer, then closes the connection.
    fn refuse(&mut self, now: Instant, conn: ConnId, answer: Frame) {
        let reason = match &answer {
            Frame::NexusCreated { status, reason, .. } | Frame::BindAck { status, reason, .. } => {
                format!("{status}: {reason}")
            }
            other => other.name().to_owned(),
        };
        if let Some(link) = self.links.get_mut(&conn) {
            link.send(&answer);
        }
        self.link_gone(
            now,
            conn,
            CloseReason::Refused(reason),
            Some(GoAwayCode::NORMAL),
        );
    }

    /// Joins `conn` to `nexus` if `identity` owns it (a recover reinstates it, refusing
    /// creates held for the identity). A refused bind leaves the connection authenticated
    /// and unbound, within its handshake timeout: it may still create or bind.
    fn bind_or_refuse(
        &mut self,
        now: Instant,
        conn: ConnId,
        nexus: NexusId,
        identity: String,
        recovered: bool,
    ) {
        let refusal = match self.nexuses.get(&nexus) {
            None => Some((
                Status::UNKNOWN_NEXUS,
                format!("{nexus} is unknown here: it never existed, expired or was destroyed"),
            )),
            Some(n) if n.identity != identity => Some((
                Status::IDENTITY_MISMATCH,
                format!("{nexus} belongs to another identity"),
            )),
            Some(_) => None,
        };
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if let Some((status, reason)) = refusal {
            link.send(&Frame::BindAck {
                status,
                nexus,
                recovered,
                reason,
            });
            return;
        }
        link.send(&Frame::BindAck {
            status: Status::OK,
            nexus,
            recovered,
            reason: String::new(),
        });
        self.bind(now, conn, nexus);
        // The nexus is reinstated: creates held for this identity are refused.
        for c in self.held.remove(&identity).unwrap_or_default() {
            self.refuse(
                now,
                c,
                refused_create(
                    Status::REFUSED,
                    format!(
                        "the previous nexus {nexus} of this identity was reinstated by a \
                         bind or recover, so no second one is created"
                    ),
                ),
            );
        }
    }

    fn handle_frame(
        &mut self,
        now: Instant,
        conn: ConnId,
        frame: Frame,
    ) -> Result<(), ProtocolError> {
        let Some(link) = self.links.get_mut(&conn) else {
            return Ok(());
        };
        if matches!(link.phase, ServerPhase::AwaitHello { .. })
            && !matches!(frame, Frame::Hello { .. } | Frame::GoAway { .. })
        {
            // Nothing, not even a Ping, comes before the Hello exchange.
            return Err(ProtocolError::Unexpected(frame.name()));
        }
        let frame = match link.triage(now, frame) {
            Received::Handled => return Ok(()),
            Received::GoneAway(reason) => {
                self.link_gone(now, conn, reason, None);
                return Ok(());
            }
            Received::Frame(frame) => frame,
        };
        match (&link.phase, frame) {
            (
                ServerPhase::AwaitHello { nonce },
                Frame::Hello {
                    versions: (min, max),
                    digest,
                    compress,
                    nonce: client_nonce,
                },
            ) => {
                if !(min..=max).contains(&VERSION) {
                    let text = format!(
                        "no common protocol version: this server speaks version {VERSION}, \
                         the client {min} to {max}"
                    );
                    self.link_gone(
                        now,
                        conn,
                        CloseReason::Refused(text),
                        Some(GoAwayCode::VERSION_MISMATCH),
                    );
                    return Ok(());
                }
                // The answer is what was agreed: digest as asked, lz4 if both want it.
                let server_nonce = *nonce;
                let compress = compress && self.config.compress;
                link.send(&Frame::Hello {
                    versions: (VERSION, VERSION),
                    digest,
                    compress,
                    nonce: server_nonce,
                });
                link.agree(digest, compress);
                link.phase = ServerPhase::AwaitAuth {
                    client_nonce,
                    server_nonce,
                };
            }
            (
                ServerPhase::AwaitAuth {
                    client_nonce,
                    server_nonce,
                },
                Frame::Auth {
                    mechanism,
                    identity,
                    proof,
                },
            ) => {
                let (client_nonce, server_nonce) = (*client_nonce, *server_nonce);
                let attempt = Attempt {
                    mechanism,
                    identity,
                    proof,
                };
                self.on_auth(now, conn, client_nonce, server_nonce, attempt);
            }
            (
                ServerPhase::Authenticated { identity },
                Frame::NexusCreate {
                    fore,
                    back,
                    grace_ms,
                    features,
                    identity: claimed,
                },
            ) => {
                let identity = identity.clone();
                let request = CreateRequest {
                    fore,
                    back,
                    grace_ms,
                    features,
                };
                self.on_create(now, conn, identity, &claimed, request);
            }
            (ServerPhase::Authenticated { identity }, Frame::Bind { nexus }) => {
                let identity = identity.clone();
                self.bind_or_refuse(now, conn, nexus, identity, false);
            }
            // A Recover's identity field is informative: the authenticated identity rules.
            (ServerPhase::Authenticated { identity }, Frame::Recover { nexus, .. }) => {
                let identity = identity.clone();
                self.bind_or_refuse(now, conn, nexus, identity, true);
            }
            (ServerPhase::Bound { nexus }, Frame::Destroy { nexus: target })
                if *nexus == target =>
            {
                if let Some(link) = self.links.get_mut(&conn) {
                    link.send(&Frame::DestroyAck { nexus: target });
                }
                self.remove_nexus(now, target, &CallError::NexusDestroyed, Some(conn));
                self.events
                    .push_back(Event::NexusDestroyed { nexus: target });
            }
            (ServerPhase::Bound { nexus }, frame) => {
                let nexus = *nexus;
                if let Some(n) = self.nexuses.get_mut(&nexus) {
                    n.core
                        .on_frame(now, conn, frame, &mut self.links, &mut self.events)?;
                    if self.config.throttle.is_some() {
                        self.schedule_nexus(nexus);
                    }
                }
            }
            (_, frame) => return Err(ProtocolError::Unexpected(frame.name())),
        }
        Ok(())
    }
}

/// A NexusCreated refusing (or, with `HELD`, holding) a create.
fn refused_create(status: Status, reason: String) -> Frame {
    Frame::NexusCreated {
        status,
        nexus: NexusId(0),
        fore: ChannelAttributes::zero(),
        back: ChannelAttributes::zero(),
        grace_ms: 0,
        features: Features::default(),
        reason,
    }
}
