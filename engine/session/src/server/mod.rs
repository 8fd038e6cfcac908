//! The server side: accepts connections, authenticates them, and keeps nexuses.
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
//!
//! This module has the server's side of the [`Endpoint`], its connections and timers;
//! `handshake.rs` authenticates, `nexuses.rs` keeps the nexuses.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_wire::dsp::{
    BindConnection, Credit, Hello, NexusCreate, NexusDestroy, NexusDestroyed, NexusFeatures,
    NexusRecover, Status,
};

use crate::auth::ServerCredentials;
use crate::auth::server::{SaslServer, ServerExchange};
use crate::auth::{self, NONCE_LEN};
use crate::budget::Reservation;
use crate::client::CallOptions;
use crate::codec::Frame;
use crate::config::{ChannelAttributes, ServerConfig, ServerLimits};
use crate::deadlines::Deadlines;
use crate::endpoint::{Endpoint, Side};
use crate::error::{CallError, LinkCloseReason, ProtocolError};
use crate::event::{Event, IncomingRequest, Reply};
use crate::frames::{self, VERSION};
use crate::guard::{AuthThrottle, Source, SourceCounts, source_of};
use crate::link::{GoAwayCode, Link};
use crate::nexus::{Footprint, NexusCore};
use crate::peer::Peer;
use crate::stats::{ConnectionStats, NexusStats};
use crate::tls::{SecureChannel, TlsFailure};
use crate::types::{Channel, ExchangeId, IdMap, LinkId, NexusId, RequestId};
use handshake::Attempt;

mod handshake;
mod nexuses;

#[cfg(test)]
mod tests;

use nexuses::refused_create;

/// A NexusCreate as the client sent it.
#[derive(Debug, Clone, Copy)]
struct CreateRequest {
    fore: ChannelAttributes,
    back: ChannelAttributes,
    grace_ms: u32,
    features: NexusFeatures,
}

/// Where a server connection is in its handshake (opaque outside this module).
#[derive(Debug)]
pub struct ServerPhase(Phase);

#[derive(Debug)]
enum Phase {
    /// Accepted, this nonce ours; the client's Hello is next.
    AwaitHello { nonce: [u8; NONCE_LEN] },
    /// Hello exchanged and the mechanisms listed; the client's Auth is next.
    AwaitAuth,
    /// An Auth from a penalised source or for a penalised identity: checked and
    /// answered at `until`, not before, whatever the answer.
    AuthDelayed { until: Instant, attempt: Attempt },
    /// A multi-step mechanism sent its challenge; the client's AuthResponse is next.
    Authenticating {
        exchange: Box<ServerExchange>,
        attempt: Attempt,
    },
    /// An AuthResponse (the message a multi-step mechanism checks) from a penalised source
    /// or for a penalised identity: checked at `until`, not before.
    ResponseDelayed {
        until: Instant,
        exchange: Box<ServerExchange>,
        attempt: Attempt,
        response: Bytes,
    },
    /// Authenticated as `identity`; a NexusCreate, BindConnection or NexusRecover is next.
    Authenticated { identity: String },
    /// A NexusCreate waiting for the identity's previous nexus to go away (since
    /// `since`; at most the server's grace period).
    Held {
        identity: String,
        request: CreateRequest,
        since: Instant,
    },
    /// A member of `nexus`.
    Bound { nexus: NexusId },
}

impl Phase {
    fn is_authenticated(&self) -> bool {
        !matches!(
            self,
            Phase::AwaitHello { .. }
                | Phase::AwaitAuth
                | Phase::AuthDelayed { .. }
                | Phase::Authenticating { .. }
                | Phase::ResponseDelayed { .. }
        )
    }
}

#[derive(Debug)]
struct ServerNexus {
    core: NexusCore,
    identity: String,
    /// Who created it: the authenticated identity (shared with every handler of its
    /// requests) and the creating connection's peer.
    owner: NexusOwner,
    /// The grace period granted at creation.
    grace: Duration,
    /// When it expires, while it has no connection.
    expires_at: Option<Instant>,
    /// The receive budget held by large requests of this nexus until they are answered,
    /// by fore channel slot (see [`ReceiveBudget`](super::ReceiveBudget)).
    reservations: IdMap<u32, Reservation>,
    /// Created over TLS: every connection that joins or recovers it must run TLS too.
    tls: bool,
}

/// Who created a nexus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexusOwner {
    /// The identity it authenticated as (or claimed, if `anonymous`).
    pub identity: std::sync::Arc<str>,
    /// It authenticated with `ANONYMOUS`: its identity is a name, not a proof.
    pub anonymous: bool,
    /// The peer of the connection that created it.
    pub peer: Peer,
}

/// What the deadline queue tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Timer {
    /// Heartbeats, dead and handshake deadlines, a delayed answer, a held create's end.
    Link(LinkId),
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

/// The server's part of an [`Endpoint`]: every nexus of every client, and what guards
/// the server against its peers.
#[derive(Debug)]
pub struct ServerSide {
    config: ServerConfig,
    nexuses: IdMap<NexusId, ServerNexus>,
    by_identity: HashMap<String, NexusId>,
    /// Held creates by identity, oldest first.
    held: HashMap<String, VecDeque<LinkId>>,
    deadlines: Deadlines<Timer>,
    /// Reused by `handle_timeout`.
    due: Vec<Timer>,
    connections_by_source: SourceCounts,
    unauthenticated: usize,
    auth_throttle: AuthThrottle,
    sasl: SaslServer,
    /// Keys the dummy secrets of unknown identities; kept so a new user database
    /// answers unknown identities exactly as the old one did.
    dummy_key: auth::DummyKey,
    id_key: [u8; 32],
    ids_issued: u64,
    /// Connections not read until the receive budget has room for their next frame, in
    /// the order they started waiting.
    budget_waiters: VecDeque<LinkId>,
    /// Totals of the nexuses that ended, by identity (anonymous clients together, under
    /// an empty name: their names prove nothing and are not kept).
    ended_nexuses: HashMap<(std::sync::Arc<str>, bool), NexusStats>,
    /// Totals of the connections that closed.
    ended_connections: ConnectionStats,
}

/// The server endpoint, for every nexus of every client: an [`Endpoint`] with a
/// [`ServerSide`]. See the crate docs.
pub type ServerEndpoint = Endpoint<ServerSide>;

fn describe_source(source: Source) -> String {
    source.to_string()
}

impl Side for ServerSide {
    type Phase = ServerPhase;

    fn screen(phase: &ServerPhase, frame: &Frame) -> Result<(), ProtocolError> {
        if matches!(phase.0, Phase::AwaitHello { .. })
            && !matches!(frame, Frame::Hello(_) | Frame::GoAway(_))
        {
            // Nothing, not even a Ping, comes before the Hello exchange.
            return Err(ProtocolError::Unexpected(frame.kind().name()));
        }
        Ok(())
    }

    fn on_frame(
        ep: &mut ServerEndpoint,
        now: Instant,
        conn: LinkId,
        frame: Frame,
        reservation: Option<Reservation>,
    ) -> Result<(), ProtocolError> {
        let request = match (&frame, &reservation) {
            (Frame::Request(r), Some(_)) if r.channel == Channel::Fore => {
                Some((r.slot, RequestId(r.request_id)))
            }
            _ => None,
        };
        ep.handle_frame(now, conn, frame)?;
        if let (Some((slot, request)), Some(reservation)) = (request, reservation) {
            ep.hold_until_answered(conn, slot, request, reservation);
        }
        Ok(())
    }

    fn on_close(ep: &mut ServerEndpoint, now: Instant, conn: LinkId) {
        ep.link_closed(now, conn);
    }

    fn after_frames(ep: &mut ServerEndpoint, _now: Instant, conn: LinkId) {
        ep.schedule_link(conn);
    }

    fn after_lend(ep: &mut ServerEndpoint, conn: LinkId, lent: bool) {
        if let Some(link) = ep.links.get_mut(&conn)
            && !lent
            && link.waiting_for_budget()
            && !link.budget_queued
        {
            link.budget_queued = true;
            ep.side.budget_waiters.push_back(conn);
        }
        // A reservation granted or refused moves the link's frame and dead timers.
        ep.schedule_link(conn);
    }

    fn after_transmit(ep: &mut ServerEndpoint, conn: LinkId, sent: usize) {
        if sent > 0 {
            // What was sent may have moved the connection's deadline.
            ep.schedule_link(conn);
        }
    }

    fn after_forget(ep: &mut ServerEndpoint, conn: LinkId) {
        ep.side.deadlines.forget(Timer::Link(conn));
    }

    fn forgotten_stats(ep: &mut ServerEndpoint, stats: ConnectionStats) {
        ep.side.ended_connections.absorb(&stats);
    }

    fn poll_timeout(ep: &ServerEndpoint) -> Option<Instant> {
        ep.side.deadlines.next()
    }

    /// Visits only what is due: heartbeats, dead connections, handshake deadlines,
    /// delayed authentication answers, held creates, grace periods, throttling.
    fn handle_timeout(ep: &mut ServerEndpoint, now: Instant) {
        let mut due = std::mem::take(&mut ep.side.due);
        ep.side.deadlines.take_due(now, &mut due);
        for timer in due.drain(..) {
            match timer {
                Timer::Link(conn) => ep.link_timer(now, conn),
                Timer::Nexus(nexus) => ep.nexus_timer(now, nexus),
            }
        }
        crate::types::shrink_vec_if_sparse(&mut due);
        ep.side.due = due;
    }
}

impl Endpoint<ServerSide> {
    /// A server; `seed` (random, from the driver) keys the generator of nexus ids (so
    /// they cannot be predicted, even from earlier ones) and the dummy secrets of unknown
    /// identities. Binding also checks the authenticated identity, so ids are not secrets.
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        let dummy_key = auth::dummy_key(seed);
        Endpoint::with_side(ServerSide {
            sasl: SaslServer::new(&config.credentials, dummy_key),
            dummy_key,
            auth_throttle: AuthThrottle::new(config.auth_throttle),
            config,
            nexuses: IdMap::default(),
            by_identity: HashMap::new(),
            held: HashMap::new(),
            deadlines: Deadlines::default(),
            due: Vec::new(),
            connections_by_source: SourceCounts::default(),
            unauthenticated: 0,
            id_key: auth::derive_key(seed, b"hawser-nexus-ids"),
            ids_issued: 0,
            budget_waiters: VecDeque::new(),
            ended_nexuses: HashMap::new(),
            ended_connections: ConnectionStats::default(),
        })
    }

    /// The driver accepted a connection whose peer address it does not know; `nonce` must
    /// be fresh random bytes. See [`accept_from`](Self::accept_from).
    pub fn accept(&mut self, now: Instant, nonce: [u8; NONCE_LEN]) -> LinkId {
        self.accept_peer(now, nonce, Peer::Unknown)
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
    ) -> LinkId {
        self.accept_peer(now, nonce, Peer::from(peer))
    }

    /// The driver accepted a connection from `peer`: an IP address, or a local process's
    /// credentials (the unit of per-source limits is then its user id; `EXTERNAL`
    /// authentication checks them). See [`accept_from`](Self::accept_from).
    pub fn accept_peer(&mut self, now: Instant, nonce: [u8; NONCE_LEN], peer: Peer) -> LinkId {
        let config = &self.side.config;
        let (timers, align) = (config.timers, config.align_request_bodies_at);
        let advice = config.advise_body_storage;
        let budget = config.receive_budget.clone();
        let link = self.open_link(now, ServerPhase(Phase::AwaitHello { nonce }), timers);
        link.align_request_bodies_at(align, advice);
        link.peer = peer;
        link.set_budget(budget);
        let id = link.id;
        let source = source_of(peer);
        let from_source = self.side.connections_by_source.add(source);
        self.side.unauthenticated += 1;
        let limits = self.side.config.limits;
        if from_source > limits.connections_per_address {
            let text = format!(
                "too many connections from {}: at most {} per address \
                 (limits.connections_per_address)",
                describe_source(source),
                limits.connections_per_address
            );
            self.refuse_connection(now, id, text);
        } else if self.side.unauthenticated > limits.handshakes_in_progress as usize {
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

    /// The driver holds a connection from `peer` outside the session (one whose first
    /// bytes are awaited, or a service's direct connection): it counts against the
    /// per-address limit as the session's own do. False, and not counted, when the
    /// address has its limit already.
    pub fn admit_outside(&mut self, peer: Peer) -> bool {
        let source = source_of(peer);
        let n = self.side.connections_by_source.add(source);
        if n > self.side.config.limits.connections_per_address {
            self.side.connections_by_source.remove(source);
            return false;
        }
        true
    }

    /// A connection counted by [`admit_outside`](Self::admit_outside) closed, or is handed
    /// to the session (which counts it again).
    pub fn release_outside(&mut self, peer: Peer) {
        self.side.connections_by_source.remove(source_of(peer));
    }

    /// A connection waiting for the receive budget whose next frame now fits: the driver
    /// asks for its receive buffer again. Call after anything that may release budget
    /// (received frames, answers, closed connections, timers) until `None`.
    pub fn next_budget_wakeup(&mut self) -> Option<LinkId> {
        let budget = self.side.config.receive_budget.as_ref()?;
        while let Some(&conn) = self.side.budget_waiters.front() {
            let Some(link) = self.links.get_mut(&conn) else {
                self.side.budget_waiters.pop_front();
                continue;
            };
            let need = match link.budget_needed() {
                Some(need) if link.is_open() && link.waiting_for_budget() => need,
                _ => {
                    link.budget_queued = false;
                    self.side.budget_waiters.pop_front();
                    continue;
                }
            };
            if !budget.fits(need) && budget.used() > 0 {
                return None;
            }
            link.budget_queued = false;
            self.side.budget_waiters.pop_front();
            return Some(conn);
        }
        None
    }

    /// Answers a fore channel request. Returns false if the handle is stale (its nexus
    /// is gone, or it was answered already).
    pub fn respond(&mut self, _now: Instant, request: &IncomingRequest, reply: Reply) -> bool {
        let Some(n) = self.side.nexuses.get_mut(&request.nexus) else {
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
        let n = self
            .side
            .nexuses
            .get_mut(&nexus)
            .ok_or(CallError::NoNexus)?;
        let id = n.core.call(
            now,
            exchange,
            body,
            options,
            &mut self.links,
            &mut self.events,
        )?;
        if self.side.config.throttle.is_some() {
            self.schedule_nexus(nexus);
        }
        Ok(id)
    }

    /// Cancels a backchannel request.
    pub fn cancel(&mut self, _now: Instant, nexus: NexusId, request: RequestId) {
        if let Some(n) = self.side.nexuses.get_mut(&nexus) {
            n.core.cancel(request, &mut self.links, &mut self.events);
        }
    }

    /// Lowers (or restores) how many fore channel slots the client may use.
    pub fn set_credit(&mut self, nexus: NexusId, slots: u32) {
        let Some(n) = self.side.nexuses.get_mut(&nexus) else {
            return;
        };
        let slots = slots.clamp(1, n.core.responder.attributes().slots);
        if let Some(link) = n.core.members.first().and_then(|c| self.links.get_mut(c)) {
            link.send(&Frame::Credit(Credit {
                channel: Channel::Fore,
                slots,
            }));
        }
    }

    /// Every nexus alive now.
    pub fn nexuses(&self) -> impl Iterator<Item = NexusId> + '_ {
        self.side.nexuses.keys().copied()
    }

    /// The grace period granted to `nexus` at its creation.
    pub fn grace_period(&self, nexus: NexusId) -> Option<Duration> {
        self.side.nexuses.get(&nexus).map(|n| n.grace)
    }

    /// Statistics of one nexus.
    pub fn nexus_stats(&self, nexus: NexusId) -> Option<&NexusStats> {
        self.side.nexuses.get(&nexus).map(|n| &n.core.stats)
    }

    /// Who created `nexus`: its identity and the peer of the connection that created it
    /// (services bind what they grant a nexus, such as leases, to these).
    pub fn nexus_owner(&self, nexus: NexusId) -> Option<&NexusOwner> {
        self.side.nexuses.get(&nexus).map(|n| &n.owner)
    }

    /// The connections bound to `nexus`, in bind order.
    pub fn nexus_members(&self, nexus: NexusId) -> &[LinkId] {
        self.side
            .nexuses
            .get(&nexus)
            .map_or(&[], |n| n.core.members.as_slice())
    }

    /// Totals of every nexus that ended, by identity and whether it was anonymous (all
    /// anonymous clients under one empty identity).
    pub fn ended_nexus_stats(&self) -> impl Iterator<Item = (&str, bool, &NexusStats)> + '_ {
        self.side
            .ended_nexuses
            .iter()
            .map(|((identity, anonymous), stats)| (&**identity, *anonymous, stats))
    }

    /// Totals of every connection that closed.
    pub fn ended_connection_stats(&self) -> &ConnectionStats {
        &self.side.ended_connections
    }

    /// The peer of connection `conn` as the driver told it, while the server holds the
    /// connection (also when its [`Event::ConnectionClosed`] is polled).
    pub fn connection_peer(&self, conn: LinkId) -> Option<&Peer> {
        self.links.get(&conn).map(|l| &l.peer)
    }

    /// Memory held by one nexus (for bounds checks).
    pub fn footprint(&self, nexus: NexusId) -> Option<Footprint> {
        self.side
            .nexuses
            .get(&nexus)
            .map(|n| n.core.footprint(&self.links))
    }

    /// Replaces what the server accepts and its connection and nexus limits, as an
    /// operator's reload does. Connections already authenticated and nexuses already
    /// created are kept; every later handshake checks the new credentials, and the new
    /// limits apply from the next connection or nexus.
    pub fn reconfigure(&mut self, credentials: ServerCredentials, limits: ServerLimits) {
        self.side.sasl = SaslServer::new(&credentials, self.side.dummy_key);
        self.side.config.credentials = credentials;
        self.side.config.limits = limits;
    }

    /// Counts of what the server holds.
    pub fn load(&self) -> ServerLoad {
        ServerLoad {
            connections: self.links.len(),
            unauthenticated: self.side.unauthenticated,
            sources: self.side.connections_by_source.sources(),
            nexuses: self.side.nexuses.len(),
            held_creates: self.side.held.values().map(VecDeque::len).sum(),
            timer_entries: self.side.deadlines.entries(),
            throttled: self.side.auth_throttle.sizes(),
        }
    }

    /// When `link` needs attention next: its own timers, and its phase's.
    fn link_deadline(&self, link: &Link<ServerPhase>) -> Option<Instant> {
        let own = link.deadline()?;
        Some(match &link.phase.0 {
            Phase::AuthDelayed { until, .. } | Phase::ResponseDelayed { until, .. } => {
                own.min(*until)
            }
            Phase::Held {
                identity, since, ..
            } => {
                // The hold's bound, or the old nexus's expiry, which releases it.
                let expiry = self
                    .side
                    .by_identity
                    .get(identity)
                    .and_then(|old| self.side.nexuses.get(old))
                    .and_then(|n| n.expires_at);
                let bound = *since + self.side.config.grace_period;
                own.min(expiry.map_or(bound, |at| at.max(bound)))
            }
            _ => own,
        })
    }

    fn schedule_link(&mut self, conn: LinkId) {
        if let Some(at) = self.links.get(&conn).and_then(|l| self.link_deadline(l)) {
            self.side.deadlines.schedule(Timer::Link(conn), at);
        }
    }

    fn schedule_nexus(&mut self, nexus: NexusId) {
        let Some(n) = self.side.nexuses.get(&nexus) else {
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
            self.side.deadlines.schedule(Timer::Nexus(nexus), at);
        }
    }

    fn link_timer(&mut self, now: Instant, conn: LinkId) {
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
        let hold_over = match &link.phase.0 {
            Phase::ResponseDelayed { until, .. } if now >= *until => {
                let placeholder = Phase::AwaitAuth;
                if let Phase::ResponseDelayed {
                    exchange,
                    attempt,
                    response,
                    ..
                } = std::mem::replace(&mut link.phase.0, placeholder)
                {
                    self.check_response(now, conn, exchange, attempt, &response);
                }
                None
            }
            Phase::AuthDelayed { until, .. } if now >= *until => {
                let placeholder = Phase::AwaitHello {
                    nonce: [0; NONCE_LEN],
                };
                if let Phase::AuthDelayed { attempt, .. } =
                    std::mem::replace(&mut link.phase.0, placeholder)
                {
                    self.authenticate(now, conn, attempt);
                }
                None
            }
            // An old nexus without connections expires by now (it cannot have been
            // reinstated since: that refuses the hold): its timer releases the create.
            Phase::Held {
                identity, since, ..
            } if now >= *since + self.side.config.grace_period
                && self
                    .side
                    .by_identity
                    .get(identity)
                    .and_then(|old| self.side.nexuses.get(old))
                    .is_none_or(|n| n.expires_at.is_none()) =>
            {
                Some((
                    now.saturating_duration_since(*since).as_secs(),
                    self.side.by_identity.get(identity).copied(),
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
        let Some(n) = self.side.nexuses.get_mut(&nexus) else {
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

    /// Refuses a connection before anything happened on it.
    fn refuse_connection(&mut self, now: Instant, conn: LinkId, text: String) {
        self.close_link(
            now,
            conn,
            LinkCloseReason::Refused(text),
            Some(GoAwayCode::RESOURCE_EXHAUSTED),
        );
    }

    /// A connection was closed: settles what it counted for (its source, the handshakes
    /// in progress, a held create, its nexus).
    fn link_closed(&mut self, now: Instant, conn: LinkId) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        self.side.connections_by_source.remove(source_of(link.peer));
        if !link.phase.0.is_authenticated() {
            self.side.unauthenticated -= 1;
        }
        match &link.phase.0 {
            Phase::Held { identity, .. } => {
                if let Some(queue) = self.side.held.get_mut(identity) {
                    queue.retain(|c| *c != conn);
                    if queue.is_empty() {
                        self.side.held.remove(identity);
                    }
                }
            }
            Phase::Bound { nexus } => {
                let nexus = *nexus;
                if let Some(n) = self.side.nexuses.get_mut(&nexus) {
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

    fn handle_frame(
        &mut self,
        now: Instant,
        conn: LinkId,
        frame: Frame,
    ) -> Result<(), ProtocolError> {
        let Some(link) = self.links.get_mut(&conn) else {
            return Ok(());
        };
        match (&link.phase.0, frame) {
            (Phase::AwaitHello { nonce }, Frame::Hello(hello)) => {
                if let Some((text, code)) = hello_refusal(&self.side.config, &hello) {
                    self.close_link(now, conn, LinkCloseReason::Refused(text), Some(code));
                    return Ok(());
                }
                // The answer is what was agreed: digest as asked, lz4 if both want it, TLS
                // if asked and offered.
                let server_nonce = *nonce;
                let (digest, compress) = frames::hello_options(&hello);
                let compress = compress && self.side.config.compress;
                let asked = frames::hello_tls(&hello);
                let tls = self.side.config.tls.as_ref().filter(|_| asked);
                link.send(&frames::hello_with(
                    digest,
                    compress,
                    tls.is_some(),
                    None,
                    server_nonce,
                ));
                if let Some(tls) = tls {
                    let channel = SecureChannel::server(tls)?;
                    link.start_tls_send(channel);
                    link.start_tls_receive();
                }
                link.agree(digest, compress);
                let offered = self.side.config.credentials.offered(link.is_tls());
                link.send(&frames::mechanisms(&offered));
                link.phase = ServerPhase(Phase::AwaitAuth);
            }
            (Phase::AwaitAuth, Frame::Auth(auth)) => {
                self.on_auth(now, conn, Attempt::from_frame(auth));
            }
            (Phase::Authenticating { .. }, Frame::AuthResponse(response)) => {
                self.on_auth_response(now, conn, response.data);
            }
            (
                Phase::Authenticated { identity },
                Frame::NexusCreate(NexusCreate {
                    fore,
                    back,
                    grace_period_ms,
                    features,
                    client_identity: claimed,
                }),
            ) => {
                let identity = identity.clone();
                let request = CreateRequest {
                    fore: fore.into(),
                    back: back.into(),
                    grace_ms: grace_period_ms,
                    features,
                };
                self.on_create(now, conn, identity, &claimed, request);
            }
            (
                Phase::Authenticated { identity },
                Frame::BindConnection(BindConnection { nexus }),
            ) => {
                let identity = identity.clone();
                self.bind_or_refuse(now, conn, nexus.into(), identity, false);
            }
            // A Recover's identity field is informative: the authenticated identity rules.
            (
                Phase::Authenticated { identity },
                Frame::NexusRecover(NexusRecover { nexus, .. }),
            ) => {
                let identity = identity.clone();
                self.bind_or_refuse(now, conn, nexus.into(), identity, true);
            }
            (Phase::Bound { nexus }, Frame::NexusDestroy(NexusDestroy { nexus: target }))
                if *nexus == NexusId::from(target) =>
            {
                let target = NexusId::from(target);
                if let Some(link) = self.links.get_mut(&conn) {
                    link.send(&Frame::NexusDestroyed(NexusDestroyed {
                        status: Status::OK,
                        nexus: target.into(),
                        reason: String::new(),
                    }));
                }
                self.remove_nexus(now, target, &CallError::NexusDestroyed, Some(conn));
                self.events
                    .push_back(Event::NexusDestroyed { nexus: target });
            }
            (Phase::Bound { nexus }, frame) => {
                let nexus = *nexus;
                if let Some(n) = self.side.nexuses.get_mut(&nexus) {
                    n.core
                        .on_frame(now, conn, frame, &mut self.links, &mut self.events)?;
                    if self.side.config.throttle.is_some() {
                        self.schedule_nexus(nexus);
                    }
                }
            }
            (_, frame) => return Err(ProtocolError::Unexpected(frame.kind().name())),
        }
        Ok(())
    }
}

/// Why a client's Hello is refused, in words, with the GoAway code: no common version,
/// TLS required but not asked for, or no route where the server needs one.
fn hello_refusal(config: &ServerConfig, hello: &Hello) -> Option<(String, GoAwayCode)> {
    let (min, max) = (hello.min_version, hello.max_version);
    if !(min..=max).contains(&VERSION) {
        let text = format!(
            "no common protocol version: this server speaks version {VERSION}, the client \
             {min} to {max}"
        );
        return Some((text, GoAwayCode::VERSION_MISMATCH));
    }
    if !frames::hello_tls(hello) && config.tls.as_ref().is_some_and(|t| t.require) {
        return Some((TlsFailure::Required.to_string(), GoAwayCode::PROTOCOL_ERROR));
    }
    if config.requires_route && hello.capabilities.route().is_none() {
        let text = "this server keeps its nexuses on several shards and places a connection \
                    by the route in its Hello, which this client does not send: use a hawser \
                    client of this version or later";
        return Some((text.to_string(), GoAwayCode::PROTOCOL_ERROR));
    }
    None
}
