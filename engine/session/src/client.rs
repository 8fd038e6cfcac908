//! The client side: one nexus over a trunk of connections it keeps alive.
//!
//! The client owns every nexus lifecycle action (create, bind, recover, destroy). The
//! driver opens transport connections when asked ([`Event::WantConnection`]) and feeds
//! bytes and time in; the client does the rest: the hello and authentication step on each
//! connection, creating the nexus over the leading connection, binding the others to it,
//! spreading requests over them, replacing lost ones with exponential backoff, rebinding
//! ("recovering") the nexus after losing all connections, and retrying outstanding
//! requests on whatever connection is bound next.
//!
//! A create the server holds (the identity's previous nexus still exists) is reported
//! at once as [`Event::NexusHeld`]; with [`ClientConfig::replace`] the client recovers
//! and destroys that previous nexus first, so there is nothing to wait for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_wire::dsp::{
    AuthResult, BindAck, BindConnection, NexusCreate, NexusCreated, NexusDestroy, NexusDestroyed,
    NexusRecover, NexusRecovered, Status,
};

use super::auth::client::{ClientExchange, SaltedCache, choose};
use super::auth::{self, NONCE_LEN};
use super::budget::Reservation;
use super::codec::Frame;
use super::config::ClientConfig;
use super::endpoint::{Endpoint, Side};
use super::error::{CallError, LinkCloseReason, ProtocolError};
use super::event::{Event, IncomingRequest, Reply};
use super::frames::{self, SERVED_FEATURES, VERSION};
use super::link::{GoAwayCode, Link};
use super::nexus::{Footprint, NexusCore};
use super::stats::NexusStats;
use super::throttle::TokenBucket;
use super::tls::{SecureChannel, TlsFailure};
use super::types::{Channel, ExchangeId, LinkId, NexusId, RequestId};

/// Options of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Deliver this request to the remote handler only after every earlier ordered
    /// request of this nexus and direction (send order).
    pub ordered: bool,
    /// Send the body as it is even when the nexus compresses: for a body the caller
    /// knows will not shrink, or when compressing would cost more time than the bytes it
    /// saves (a fast link; see the replication source's `auto`).
    pub uncompressed: bool,
    /// The body is already in lz4 form (`u32 length ‖ lz4 block`, as
    /// [`hawser_wire::dsp::compress_body`] makes it): the caller compressed it on a thread
    /// of its own. It goes out flagged compressed, or inflated first on a connection that
    /// did not agree on lz4. The handler sees the original body. A body that is not what
    /// `compress_body` made is a corrupt frame to the peer, which closes the connection.
    pub precompressed: bool,
}

impl CallOptions {
    /// The size `body` has for the handler: a precompressed body's announced length (its
    /// first four bytes; a body too short to hold them counts as too large).
    pub fn body_size(&self, body: &[u8]) -> usize {
        if !self.precompressed {
            return body.len();
        }
        body.get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(usize::MAX, |b| u32::from_be_bytes(b) as usize)
    }
}

/// Where a client connection is in its handshake (opaque outside this module).
#[derive(Debug)]
pub struct ClientPhase(Phase);

#[derive(Debug)]
enum Phase {
    /// Hello sent; the server's Hello is next.
    AwaitHelloAck,
    /// Hello exchanged; the server's list of mechanisms is next.
    AwaitMechanisms,
    /// Auth sent; challenges or the result are next.
    Authenticating { exchange: Box<ClientExchange> },
    /// Authenticated, waiting for another connection to finish creating the nexus.
    Authenticated,
    /// NexusRecover of the nexus to replace sent (see [`ClientConfig::replace`]).
    RecoveringOld,
    /// That nexus recovered, NexusDestroy sent; its late traffic is ignored.
    DestroyingOld(NexusId),
    /// NexusCreate or BindConnection sent.
    AwaitNexus,
    /// A member of the nexus.
    Bound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NexusState {
    /// No nexus yet; the next authenticated connection creates it.
    Unestablished,
    /// NexusCreate sent on the leading connection.
    Creating(LinkId),
    Active,
    Destroying,
    Lost,
    Destroyed,
}

/// The client's part of an [`Endpoint`]: one nexus, the trunk it keeps, and what it is
/// waiting for.
#[derive(Debug)]
pub struct ClientSide {
    config: ClientConfig,
    core: NexusCore,
    state: NexusState,
    pending_connects: usize,
    backoff: Duration,
    reconnect_at: Option<Instant>,
    unbound_since: Option<Instant>,
    /// The earlier nexus still to replace before creating.
    replace: Option<NexusId>,
    /// Connections that tried to replace it; after a few the client just creates.
    replace_attempts: u32,
    /// The grace period the server granted.
    granted_grace: Option<Duration>,
    /// The password's SCRAM derivation, shared by every connection of the trunk.
    salted: Arc<SaltedCache>,
}

/// The client endpoint of one nexus: an [`Endpoint`] with a [`ClientSide`]. See the crate
/// docs.
pub type ClientEndpoint = Endpoint<ClientSide>;

/// Connections that may try to replace an earlier nexus before the client gives up on it.
const REPLACE_ATTEMPTS: u32 = 3;

impl Side for ClientSide {
    type Phase = ClientPhase;

    fn on_frame(
        ep: &mut ClientEndpoint,
        now: Instant,
        conn: LinkId,
        frame: Frame,
        // A client receives under no budget: nothing is reserved.
        _reservation: Option<Reservation>,
    ) -> Result<(), ProtocolError> {
        ep.handle_frame(now, conn, frame)
    }

    fn on_close(ep: &mut ClientEndpoint, now: Instant, conn: LinkId) {
        ep.link_closed(now, conn);
    }

    fn after_frames(ep: &mut ClientEndpoint, now: Instant, _conn: LinkId) {
        ep.maintain_connections(now);
    }

    fn after_lost(ep: &mut ClientEndpoint, now: Instant) {
        ep.maintain_connections(now);
    }

    fn poll_timeout(ep: &ClientEndpoint) -> Option<Instant> {
        let side = &ep.side;
        let mut next = ep.links.values().filter_map(Link::deadline).min();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if ep.wants_more_connections() {
            consider(side.reconnect_at);
        }
        if side.state == NexusState::Active {
            consider(side.unbound_since.map(|t| t + side.config.recovery_timeout));
        }
        consider(
            side.core
                .initiator
                .throttle_deadline(&ep.links, &side.core.members),
        );
        next
    }

    fn handle_timeout(ep: &mut ClientEndpoint, now: Instant) {
        let mut failed = Vec::new();
        for link in ep.links.values_mut() {
            if let Err(e) = link.on_timeout(now) {
                failed.push((link.id, e));
            }
        }
        failed.sort_unstable_by_key(|(conn, _)| *conn);
        for (conn, e) in failed {
            ep.fail_link(now, conn, e);
        }
        let side = &ep.side;
        if side.state == NexusState::Active
            && side.core.members.is_empty()
            && side
                .unbound_since
                .is_some_and(|t| now >= t + side.config.recovery_timeout)
        {
            ep.lose_nexus();
        }
        ep.side.core.dispatch(now, &mut ep.links, &mut ep.events);
        ep.maintain_connections(now);
    }
}

impl Endpoint<ClientSide> {
    /// A client that will ask for its leading connection (first [`Event::WantConnection`]).
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let throttle = config.throttle.map(|t| TokenBucket::new(t, now));
        let core = NexusCore::new(
            NexusId(0),
            Channel::Fore,
            config.fore,
            config.back,
            throttle,
        );
        let mut client = Endpoint::with_side(ClientSide {
            backoff: config.reconnect_min,
            replace: config.replace,
            config,
            core,
            state: NexusState::Unestablished,
            pending_connects: 0,
            reconnect_at: None,
            unbound_since: None,
            replace_attempts: 0,
            granted_grace: None,
            salted: Arc::default(),
        });
        client.maintain_connections(now);
        client
    }

    /// The nexus id, once the server created it.
    pub fn nexus(&self) -> Option<NexusId> {
        match self.side.state {
            NexusState::Unestablished | NexusState::Creating(_) => None,
            _ => Some(self.side.core.id),
        }
    }

    /// The grace period the server granted the nexus: how long it keeps it without a
    /// connection.
    pub fn grace_period(&self) -> Option<Duration> {
        self.side.granted_grace
    }

    /// Whether calls are accepted (the nexus is being created or is alive).
    pub fn is_usable(&self) -> bool {
        matches!(
            self.side.state,
            NexusState::Unestablished | NexusState::Creating(_) | NexusState::Active
        )
    }

    /// Connections bound to the nexus now.
    pub fn bound_connections(&self) -> &[LinkId] {
        &self.side.core.members
    }

    /// The driver opened a transport connection (after [`Event::WantConnection`]);
    /// `nonce` must be fresh random bytes (the authentication challenge).
    pub fn add_connection(&mut self, now: Instant, nonce: [u8; NONCE_LEN]) -> LinkId {
        let side = &mut self.side;
        side.pending_connects = side.pending_connects.saturating_sub(1);
        let (timers, align) = (side.config.timers, side.config.align_request_bodies_at);
        let advice = side.config.advise_body_storage;
        let tls = side.config.tls.clone();
        let hello = frames::hello_with(
            side.config.digest,
            side.config.compress,
            tls.is_some(),
            Some(hawser_wire::dsp::identity_route(&side.config.identity)),
            nonce,
        );
        let link = self.open_link(now, ClientPhase(Phase::AwaitHelloAck), timers);
        link.align_request_bodies_at(align, advice);
        link.send(&hello);
        let id = link.id;
        if let Some(tls) = tls {
            // The ClientHello follows our Hello at once: no round trip is spent on asking.
            match SecureChannel::client(&tls) {
                Ok(channel) => link.start_tls_send(channel),
                Err(failure) => self.fail_link(now, id, ProtocolError::Tls(failure)),
            }
        }
        id
    }

    /// The driver could not open a connection asked for.
    pub fn connect_failed(&mut self, now: Instant) {
        self.side.pending_connects = self.side.pending_connects.saturating_sub(1);
        self.schedule_reconnect(now);
        self.maintain_connections(now);
    }

    /// Starts a request on the fore channel. It completes with exactly one
    /// [`Event::Completed`] carrying the returned id.
    pub fn call(
        &mut self,
        now: Instant,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
    ) -> Result<RequestId, CallError> {
        if !self.is_usable() {
            return Err(match self.side.state {
                NexusState::Destroying | NexusState::Destroyed => CallError::NexusDestroyed,
                _ => CallError::NexusLost,
            });
        }
        self.side.core.call(
            now,
            exchange,
            body,
            options,
            &mut self.links,
            &mut self.events,
        )
    }

    /// Cancels an outstanding request (it still completes with one `Completed` event).
    pub fn cancel(&mut self, _now: Instant, request: RequestId) {
        self.side
            .core
            .cancel(request, &mut self.links, &mut self.events);
    }

    /// Answers a backchannel request. Returns false if the handle is stale.
    pub fn respond(&mut self, _now: Instant, request: &IncomingRequest, reply: Reply) -> bool {
        self.side
            .core
            .respond(request, reply, &mut self.links, &mut self.events)
    }

    /// Destroys the nexus: outstanding requests fail with `NexusDestroyed`, the server
    /// stops the handlers still running.
    pub fn destroy(&mut self, now: Instant) {
        match self.side.state {
            NexusState::Active => {
                let side = &mut self.side;
                let target = side.core.members.first().copied();
                if let Some(link) = target.and_then(|id| self.links.get_mut(&id)) {
                    link.send(&Frame::NexusDestroy(NexusDestroy {
                        nexus: side.core.id.into(),
                    }));
                    side.state = NexusState::Destroying;
                    side.core
                        .shut_down(&CallError::NexusDestroyed, &mut self.events);
                } else {
                    // Nothing to tell the server through: it expires the nexus.
                    self.finish_destroy(now);
                }
            }
            NexusState::Unestablished | NexusState::Creating(_) => self.finish_destroy(now),
            _ => {}
        }
    }

    /// Statistics of the nexus.
    pub fn stats(&self) -> &NexusStats {
        &self.side.core.stats
    }

    /// Memory held (for bounds checks).
    pub fn footprint(&self) -> Footprint {
        let mut f = self.side.core.footprint(&self.links);
        f.link_buffers = self.links.values().map(Link::buffered).sum();
        f
    }

    fn finish_destroy(&mut self, _now: Instant) {
        let nexus = self.side.core.id;
        self.side
            .core
            .shut_down(&CallError::NexusDestroyed, &mut self.events);
        self.close_all(LinkCloseReason::Local);
        self.side.state = NexusState::Destroyed;
        self.events.push_back(Event::NexusDestroyed { nexus });
    }

    fn lose_nexus(&mut self) {
        let nexus = self.side.core.id;
        self.side
            .core
            .shut_down(&CallError::NexusLost, &mut self.events);
        self.close_all(LinkCloseReason::Local);
        self.side.state = NexusState::Lost;
        self.events.push_back(Event::NexusLost { nexus });
    }

    /// Closes every connection without moving work elsewhere: the nexus is over.
    fn close_all(&mut self, reason: LinkCloseReason) {
        let mut ids: Vec<LinkId> = self.links.keys().copied().collect();
        ids.sort_unstable();
        for conn in ids {
            if let Some(link) = self.links.get_mut(&conn)
                && link.is_open()
            {
                link.close(reason.clone(), Some(GoAwayCode::NORMAL));
                self.events.push_back(Event::ConnectionClosed {
                    conn,
                    reason: reason.clone(),
                });
            }
        }
        self.side.core.members.clear();
    }

    /// A connection was closed: its work moves elsewhere, and a replacement is planned.
    fn link_closed(&mut self, now: Instant, conn: LinkId) {
        let side = &mut self.side;
        if side.state == NexusState::Creating(conn) {
            // The server may have created a nexus we never heard of; it expires there,
            // and it holds our next NexusCreate until then.
            side.state = NexusState::Unestablished;
        }
        let was_member = side.core.members.contains(&conn);
        side.core
            .on_link_lost(now, conn, &mut self.links, &mut self.events);
        if was_member && side.core.members.is_empty() {
            match side.state {
                NexusState::Active => side.unbound_since = Some(now),
                // The DestroyAck cannot arrive any more; the server expires the nexus.
                NexusState::Destroying => self.finish_destroy(now),
                _ => {}
            }
        }
        self.schedule_reconnect(now);
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        let side = &mut self.side;
        if side.reconnect_at.is_none() {
            side.reconnect_at = Some(now + side.backoff);
            side.backoff = (side.backoff * 2).min(side.config.reconnect_max);
        }
    }

    fn target_connections(&self) -> usize {
        match self.side.state {
            NexusState::Active => self.side.config.connections.max(1),
            NexusState::Unestablished | NexusState::Creating(_) => 1,
            _ => 0,
        }
    }

    fn live_connections(&self) -> usize {
        self.links.values().filter(|l| l.is_open()).count() + self.side.pending_connects
    }

    fn wants_more_connections(&self) -> bool {
        self.live_connections() < self.target_connections()
    }

    fn maintain_connections(&mut self, now: Instant) {
        if !self.wants_more_connections() {
            return;
        }
        if self.side.reconnect_at.is_some_and(|t| now < t) {
            return;
        }
        self.side.reconnect_at = None;
        for _ in self.live_connections()..self.target_connections() {
            self.side.pending_connects += 1;
            self.events.push_back(Event::WantConnection);
        }
    }

    fn connection_ready(&mut self) {
        let side = &mut self.side;
        side.backoff = side.config.reconnect_min;
        side.reconnect_at = None;
        side.unbound_since = None;
    }

    /// Refuses a connection's nexus operation as the server put it, and closes it: the
    /// client tries again later on a new connection.
    fn refused(&mut self, now: Instant, conn: LinkId, status: Status, reason: &str) {
        self.close_link(
            now,
            conn,
            LinkCloseReason::Refused(format!("{status}: {reason}")),
            Some(GoAwayCode::NORMAL),
        );
    }

    fn handle_frame(
        &mut self,
        now: Instant,
        conn: LinkId,
        frame: Frame,
    ) -> Result<(), ProtocolError> {
        let side = &mut self.side;
        let Some(link) = self.links.get_mut(&conn) else {
            return Ok(());
        };
        let old = side.replace.map(NexusId::into);
        let current = side.core.id.into();
        match (&link.phase.0, frame) {
            (Phase::AwaitHelloAck, Frame::Hello(hello)) => {
                if (hello.min_version, hello.max_version) != (VERSION, VERSION) {
                    return Err(ProtocolError::Version);
                }
                if link.is_tls() {
                    if !frames::hello_tls(&hello) {
                        return Err(ProtocolError::Tls(TlsFailure::NotOffered));
                    }
                    link.start_tls_receive();
                }
                // The server may only turn options off, never on.
                let (digest, compress) = frames::hello_options(&hello);
                link.agree(
                    digest && side.config.digest,
                    compress && side.config.compress,
                );
                link.phase = ClientPhase(Phase::AwaitMechanisms);
            }
            (Phase::AwaitMechanisms, Frame::AuthChallenge(list)) => {
                let offered = auth::parse_mechanism_list(&list.data);
                let config = &side.config;
                let exporter = link.tls_exporter();
                let started = choose(
                    &offered,
                    &config.credentials,
                    exporter.is_some(),
                    config.sasl_mechanism,
                )
                .and_then(|mechanism| {
                    ClientExchange::start(
                        mechanism,
                        &offered,
                        &config.identity,
                        &config.credentials,
                        exporter,
                        &side.salted,
                    )
                });
                match started {
                    Ok((exchange, initial)) => {
                        link.send(&frames::auth(exchange.mechanism(), initial));
                        link.phase = ClientPhase(Phase::Authenticating {
                            exchange: Box::new(exchange),
                        });
                    }
                    Err(e) => {
                        let why = LinkCloseReason::Refused(e.to_string());
                        self.close_link(now, conn, why, Some(GoAwayCode::NORMAL));
                    }
                }
            }
            (Phase::Authenticating { .. }, Frame::AuthChallenge(challenge)) => {
                let Phase::Authenticating { exchange } = &mut link.phase.0 else {
                    unreachable!("matched above")
                };
                match exchange.respond(&challenge.data) {
                    Ok(response) => link.send(&frames::auth_response(response)),
                    Err(e) => {
                        let why = LinkCloseReason::Refused(e.to_string());
                        self.close_link(now, conn, why, Some(GoAwayCode::AUTH_FAILED));
                    }
                }
            }
            (
                Phase::Authenticating { .. },
                Frame::AuthResult(AuthResult {
                    status,
                    additional_data,
                    reason,
                }),
            ) => {
                if !status.is_ok() {
                    // The server says why (and closes); a GoAway from us is moot.
                    let why = if reason.is_empty() {
                        format!("authentication refused: {status}")
                    } else {
                        reason
                    };
                    self.close_link(now, conn, LinkCloseReason::Refused(why), None);
                    return Ok(());
                }
                let Phase::Authenticating { exchange } = &mut link.phase.0 else {
                    unreachable!("matched above")
                };
                if let Err(e) = exchange.finish(&additional_data) {
                    let why = LinkCloseReason::Refused(e.to_string());
                    self.close_link(now, conn, why, Some(GoAwayCode::AUTH_FAILED));
                    return Ok(());
                }
                link.handshake_complete();
                link.phase = ClientPhase(Phase::Authenticated);
                self.after_auth(now, conn);
            }
            (
                Phase::AwaitNexus,
                Frame::NexusCreated(NexusCreated {
                    status: Status::HELD,
                    nexus,
                    grace_period_ms,
                    reason,
                    ..
                }),
            ) if side.state == NexusState::Creating(conn) => {
                // The server answers again when the hold ends; the connection waits.
                let remaining = (grace_period_ms != u32::MAX)
                    .then(|| Duration::from_millis(u64::from(grace_period_ms)));
                self.events.push_back(Event::NexusHeld {
                    nexus: nexus.into(),
                    remaining,
                    reason,
                });
            }
            (Phase::AwaitNexus, Frame::NexusCreated(NexusCreated { status, reason, .. }))
                if !status.is_ok() =>
            {
                // Refused (a held create whose old nexus was reinstated, an identity
                // mismatch): try again later on a new connection.
                self.refused(now, conn, status, &reason);
            }
            (
                Phase::AwaitNexus,
                Frame::BindAck(BindAck { status, .. })
                | Frame::NexusRecovered(NexusRecovered { status, .. }),
            ) if status == Status::UNKNOWN_NEXUS
                && side.state == NexusState::Active
                && side.core.members.is_empty()
                && side.core.never_used() =>
            {
                // The server dropped a nexus on which nothing ever ran (it expires one soon
                // after its last connection goes): nothing can be lost by starting afresh
                // on this connection, queued calls included.
                side.state = NexusState::Unestablished;
                side.unbound_since = None;
                link.phase = ClientPhase(Phase::Authenticated);
                self.after_auth(now, conn);
            }
            (Phase::RecoveringOld, Frame::NexusRecovered(NexusRecovered { status, nexus, .. }))
                if Some(nexus) == old =>
            {
                if status.is_ok() {
                    // Bound to the old nexus until the destroy lands: its traffic may
                    // arrive meanwhile, at its negotiated sizes.
                    link.bound(side.core.max_payload());
                    link.send(&Frame::NexusDestroy(NexusDestroy { nexus }));
                    link.phase = ClientPhase(Phase::DestroyingOld(nexus.into()));
                } else {
                    // Gone already: nothing to replace.
                    side.replace = None;
                    link.phase = ClientPhase(Phase::Authenticated);
                    side.state = NexusState::Unestablished;
                    self.after_auth(now, conn);
                }
            }
            (Phase::DestroyingOld(old), Frame::NexusDestroyed(NexusDestroyed { nexus, .. }))
                if NexusId::from(nexus) == *old =>
            {
                side.replace = None;
                link.phase = ClientPhase(Phase::Authenticated);
                side.state = NexusState::Unestablished;
                self.after_auth(now, conn);
            }
            // The old nexus's requests, responses and credits: moot.
            (Phase::DestroyingOld(_), _) => {}
            (
                Phase::AwaitNexus,
                Frame::BindAck(BindAck { status, reason, .. })
                | Frame::NexusRecovered(NexusRecovered { status, reason, .. }),
            ) if !status.is_ok() => {
                self.refused(now, conn, status, &reason);
                if self.side.state == NexusState::Active
                    && matches!(status, Status::UNKNOWN_NEXUS | Status::IDENTITY_MISMATCH)
                {
                    // The server no longer knows the nexus: its state (and the reply
                    // cache) is gone, so outstanding requests cannot be retried safely.
                    self.lose_nexus();
                }
            }
            (
                Phase::AwaitNexus,
                Frame::NexusCreated(NexusCreated {
                    nexus,
                    fore,
                    back,
                    grace_period_ms,
                    ..
                }),
            ) if side.state == NexusState::Creating(conn) => {
                let (fore, back) = (fore.into(), back.into());
                // The server may only shrink what was proposed.
                if fore != side.config.fore.negotiate(&fore)
                    || back != side.config.back.negotiate(&back)
                {
                    return Err(ProtocolError::Unexpected("NexusCreated"));
                }
                let nexus = nexus.into();
                side.core.id = nexus;
                side.granted_grace = Some(Duration::from_millis(u64::from(grace_period_ms)));
                side.core.initiator.set_attributes(fore);
                side.core.responder.set_attributes(back);
                side.state = NexusState::Active;
                self.events.push_back(Event::NexusEstablished { nexus });
                self.bind_link(now, conn);
                // Connections that authenticated meanwhile join now.
                let mut waiting: Vec<LinkId> = self
                    .links
                    .values()
                    .filter(|l| l.is_open() && matches!(l.phase.0, Phase::Authenticated))
                    .map(|l| l.id)
                    .collect();
                waiting.sort_unstable();
                for conn in waiting {
                    self.after_auth(now, conn);
                }
            }
            (
                Phase::AwaitNexus,
                Frame::BindAck(BindAck { nexus, .. })
                | Frame::NexusRecovered(NexusRecovered { nexus, .. }),
            ) if nexus == current => {
                self.bind_link(now, conn);
            }
            (Phase::Bound, Frame::NexusDestroyed(NexusDestroyed { nexus, .. }))
                if nexus == current && side.state == NexusState::Destroying =>
            {
                self.finish_destroy(now);
            }
            (Phase::Bound, frame) => {
                if side.state == NexusState::Destroying {
                    // Late answers to a destroyed nexus are moot.
                    return Ok(());
                }
                side.core
                    .on_frame(now, conn, frame, &mut self.links, &mut self.events)?;
            }
            (_, frame) => return Err(ProtocolError::Unexpected(frame.kind().name())),
        }
        Ok(())
    }

    fn bind_link(&mut self, now: Instant, conn: LinkId) {
        let max_payload = self.side.core.max_payload();
        if let Some(link) = self.links.get_mut(&conn) {
            link.phase = ClientPhase(Phase::Bound);
            link.bound(max_payload);
        }
        self.side.core.members.push(conn);
        self.connection_ready();
        self.events.push_back(Event::ConnectionBound {
            conn,
            nexus: self.side.core.id,
        });
        self.side
            .core
            .dispatch(now, &mut self.links, &mut self.events);
    }

    /// An authenticated connection creates the nexus, joins it, or waits.
    fn after_auth(&mut self, _now: Instant, conn: LinkId) {
        let side = &mut self.side;
        let nexus = side.core.id;
        let recover = side.core.members.is_empty();
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        match side.state {
            NexusState::Unestablished => {
                if side.replace.is_some() && side.replace_attempts >= REPLACE_ATTEMPTS {
                    // Its traffic keeps breaking our connections: create, and let the
                    // server hold the create if it must.
                    side.replace = None;
                }
                if let Some(old) = side.replace {
                    side.replace_attempts += 1;
                    link.send(&Frame::NexusRecover(NexusRecover {
                        nexus: old.into(),
                        client_identity: side.config.identity.clone(),
                    }));
                    link.phase = ClientPhase(Phase::RecoveringOld);
                } else {
                    let grace_period_ms = side.config.grace_period.map_or(0, |g| {
                        u32::try_from(g.as_millis()).unwrap_or(u32::MAX).max(1)
                    });
                    link.send(&Frame::NexusCreate(NexusCreate {
                        fore: side.config.fore.into(),
                        back: side.config.back.into(),
                        grace_period_ms,
                        features: SERVED_FEATURES,
                        client_identity: side.config.identity.clone(),
                    }));
                    link.phase = ClientPhase(Phase::AwaitNexus);
                }
                side.state = NexusState::Creating(conn);
            }
            NexusState::Creating(_) => link.phase = ClientPhase(Phase::Authenticated),
            NexusState::Active => {
                if recover {
                    link.send(&Frame::NexusRecover(NexusRecover {
                        nexus: nexus.into(),
                        client_identity: side.config.identity.clone(),
                    }));
                } else {
                    link.send(&Frame::BindConnection(BindConnection {
                        nexus: nexus.into(),
                    }));
                }
                link.phase = ClientPhase(Phase::AwaitNexus);
            }
            NexusState::Destroying | NexusState::Lost | NexusState::Destroyed => {
                link.close(LinkCloseReason::Local, Some(GoAwayCode::NORMAL));
                self.events.push_back(Event::ConnectionClosed {
                    conn,
                    reason: LinkCloseReason::Local,
                });
            }
        }
    }
}
