//! The client endpoint: one nexus over a trunk of connections it keeps alive.
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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::auth::{self, ClientCredentials, NONCE_LEN};
use super::config::ClientConfig;
use super::error::{CallError, CloseReason, ProtocolError};
use super::event::{Event, IncomingRequest, Reply};
use super::frame::{Frame, SERVED_FEATURES, Status, VERSION};
use super::link::{GoAwayCode, Link, Received, TransmitSink, go_away_code};
use super::nexus::{Footprint, NexusCore};
use super::stats::{ConnectionStats, NexusStats};
use super::throttle::TokenBucket;
use super::types::{Channel, ConnId, ExchangeId, IdMap, NexusId, RequestId};

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
}

#[derive(Debug)]
enum ClientPhase {
    AwaitHelloAck {
        nonce: [u8; NONCE_LEN],
    },
    AwaitServerProof {
        client_nonce: [u8; NONCE_LEN],
        server_nonce: [u8; NONCE_LEN],
    },
    /// Authenticated, waiting for another connection to finish creating the nexus.
    Authenticated,
    /// NexusRecover of the nexus to replace sent (see [`ClientConfig::replace`]).
    RecoveringOld,
    /// That nexus recovered, NexusDestroy sent; its late traffic is ignored.
    DestroyingOld(NexusId),
    /// NexusCreate or BindConnection sent.
    AwaitNexus,
    Bound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NexusState {
    /// No nexus yet; the next authenticated connection creates it.
    Unestablished,
    /// NexusCreate sent on the leading connection.
    Creating(ConnId),
    Active,
    Destroying,
    Lost,
    Destroyed,
}

/// The client side of one nexus. See the module docs of [`session`](super).
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    links: IdMap<ConnId, Link<ClientPhase>>,
    next_conn: u64,
    core: NexusCore,
    state: NexusState,
    events: VecDeque<Event>,
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
}

/// Connections that may try to replace an earlier nexus before the client gives up on it.
const REPLACE_ATTEMPTS: u32 = 3;

impl Client {
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
        let mut client = Client {
            backoff: config.reconnect_min,
            replace: config.replace,
            config,
            links: IdMap::default(),
            next_conn: 1,
            core,
            state: NexusState::Unestablished,
            events: VecDeque::new(),
            pending_connects: 0,
            reconnect_at: None,
            unbound_since: None,
            replace_attempts: 0,
            granted_grace: None,
        };
        client.maintain_connections(now);
        client
    }

    /// The nexus id, once the server created it.
    pub fn nexus(&self) -> Option<NexusId> {
        match self.state {
            NexusState::Unestablished | NexusState::Creating(_) => None,
            _ => Some(self.core.id),
        }
    }

    /// The grace period the server granted the nexus: how long it keeps it without a
    /// connection.
    pub fn grace_period(&self) -> Option<Duration> {
        self.granted_grace
    }

    /// Whether calls are accepted (the nexus is being created or is alive).
    pub fn is_usable(&self) -> bool {
        matches!(
            self.state,
            NexusState::Unestablished | NexusState::Creating(_) | NexusState::Active
        )
    }

    /// Connections bound to the nexus now.
    pub fn bound_connections(&self) -> &[ConnId] {
        &self.core.members
    }

    /// The driver opened a transport connection (after [`Event::WantConnection`]);
    /// `nonce` must be fresh random bytes (the authentication challenge).
    pub fn add_connection(&mut self, now: Instant, nonce: [u8; NONCE_LEN]) -> ConnId {
        self.pending_connects = self.pending_connects.saturating_sub(1);
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let mut link = Link::new(
            id,
            ClientPhase::AwaitHelloAck { nonce },
            now,
            self.config.timers,
        );
        link.align_request_bodies_at(self.config.align_request_bodies_at);
        link.send(&Frame::Hello {
            versions: (VERSION, VERSION),
            digest: self.config.digest,
            compress: self.config.compress,
            nonce,
        });
        self.links.insert(id, link);
        id
    }

    /// The driver could not open a connection asked for.
    pub fn connect_failed(&mut self, now: Instant) {
        self.pending_connects = self.pending_connects.saturating_sub(1);
        self.schedule_reconnect(now);
        self.maintain_connections(now);
    }

    /// Bytes arrived on `conn`.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.receive(now, bytes);
        self.handle_frames(now, conn);
    }

    /// The receive buffer of `conn`, lent to a driver that receives straight into it (as
    /// [`Server::recv_buffer`](super::Server::recv_buffer) describes).
    pub fn recv_buffer(&mut self, now: Instant, conn: ConnId) -> Option<BytesMut> {
        self.links.get_mut(&conn)?.lend_rx(now)
    }

    /// The lent buffer came back with `filled` new bytes.
    pub fn handle_received(&mut self, now: Instant, conn: ConnId, buf: BytesMut, filled: usize) {
        if let Some(link) = self.links.get_mut(&conn) {
            link.return_rx(now, buf, filled);
            self.handle_frames(now, conn);
        }
    }

    /// Decodes and handles the complete frames waiting on `conn`.
    fn handle_frames(&mut self, now: Instant, conn: ConnId) {
        while let Some(link) = self.links.get_mut(&conn) {
            match link.next_frame() {
                // A client receives under no budget: nothing is reserved.
                Ok(Some((frame, _))) => {
                    if let Err(e) = self.handle_frame(now, conn, frame) {
                        self.fail_link(now, conn, e);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail_link(now, conn, e);
                    break;
                }
            }
        }
        self.maintain_connections(now);
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
            self.links.remove(&conn);
        }
        n
    }

    /// The transport of `conn` failed or was closed by the peer.
    pub fn connection_lost(&mut self, now: Instant, conn: ConnId) {
        if self.links.get(&conn).is_some_and(Link::is_open) {
            self.link_gone(now, conn, CloseReason::TransportLost, None);
        }
        self.links.remove(&conn);
        self.maintain_connections(now);
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.links.values().filter_map(Link::deadline).min();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.wants_more_connections() {
            consider(self.reconnect_at);
        }
        if self.state == NexusState::Active {
            consider(self.unbound_since.map(|t| t + self.config.recovery_timeout));
        }
        consider(
            self.core
                .initiator
                .throttle_deadline(&self.links, &self.core.members),
        );
        next
    }

    /// Runs timers that are due: heartbeats, dead connections, reconnection, recovery
    /// timeout, throttling.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut failed = Vec::new();
        for link in self.links.values_mut() {
            if let Err(e) = link.on_timeout(now) {
                failed.push((link.id, e));
            }
        }
        failed.sort_unstable_by_key(|(c, _)| *c);
        for (conn, e) in failed {
            self.fail_link(now, conn, e);
        }
        if self.state == NexusState::Active
            && self.core.members.is_empty()
            && self
                .unbound_since
                .is_some_and(|t| now >= t + self.config.recovery_timeout)
        {
            self.lose_nexus();
        }
        self.core.dispatch(now, &mut self.links, &mut self.events);
        self.maintain_connections(now);
    }

    /// The next event for the application or the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
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
            return Err(match self.state {
                NexusState::Destroying | NexusState::Destroyed => CallError::NexusDestroyed,
                _ => CallError::NexusLost,
            });
        }
        self.core.call(
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
        self.core.cancel(request, &mut self.links, &mut self.events);
    }

    /// Answers a backchannel request. Returns false if the handle is stale.
    pub fn respond(&mut self, _now: Instant, request: &IncomingRequest, reply: Reply) -> bool {
        self.core
            .respond(request, reply, &mut self.links, &mut self.events)
    }

    /// Destroys the nexus: outstanding requests fail with `NexusDestroyed`, the server
    /// stops the handlers still running.
    pub fn destroy(&mut self, now: Instant) {
        match self.state {
            NexusState::Active => {
                let target = self.core.members.first().copied();
                if let Some(link) = target.and_then(|c| self.links.get_mut(&c)) {
                    link.send(&Frame::Destroy {
                        nexus: self.core.id,
                    });
                    self.state = NexusState::Destroying;
                    self.core
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
        &self.core.stats
    }

    /// Statistics of one connection.
    pub fn connection_stats(&self, conn: ConnId) -> Option<&ConnectionStats> {
        self.links.get(&conn).map(|l| &l.stats)
    }

    /// Memory held (for bounds checks).
    pub fn footprint(&self) -> Footprint {
        let mut f = self.core.footprint(&self.links);
        f.link_buffers = self.links.values().map(Link::buffered).sum();
        f
    }

    fn finish_destroy(&mut self, _now: Instant) {
        let nexus = self.core.id;
        self.core
            .shut_down(&CallError::NexusDestroyed, &mut self.events);
        self.close_all(CloseReason::Local);
        self.state = NexusState::Destroyed;
        self.events.push_back(Event::NexusDestroyed { nexus });
    }

    fn lose_nexus(&mut self) {
        let nexus = self.core.id;
        self.core.shut_down(&CallError::NexusLost, &mut self.events);
        self.close_all(CloseReason::Local);
        self.state = NexusState::Lost;
        self.events.push_back(Event::NexusLost { nexus });
    }

    fn close_all(&mut self, reason: CloseReason) {
        let mut ids: Vec<ConnId> = self.links.keys().copied().collect();
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
        self.core.members.clear();
    }

    fn fail_link(&mut self, now: Instant, conn: ConnId, e: ProtocolError) {
        let code = go_away_code(&e);
        self.link_gone(now, conn, CloseReason::Protocol(e), Some(code));
    }

    /// Closes a connection and moves its work elsewhere.
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
        if self.state == NexusState::Creating(conn) {
            // The server may have created a nexus we never heard of; it expires there,
            // and it holds our next NexusCreate until then.
            self.state = NexusState::Unestablished;
        }
        let was_member = self.core.members.contains(&conn);
        self.core
            .on_link_lost(now, conn, &mut self.links, &mut self.events);
        if was_member && self.core.members.is_empty() {
            match self.state {
                NexusState::Active => self.unbound_since = Some(now),
                // The DestroyAck cannot arrive any more; the server expires the nexus.
                NexusState::Destroying => self.finish_destroy(now),
                _ => {}
            }
        }
        self.schedule_reconnect(now);
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        if self.reconnect_at.is_none() {
            self.reconnect_at = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(self.config.reconnect_max);
        }
    }

    fn target_connections(&self) -> usize {
        match self.state {
            NexusState::Active => self.config.connections.max(1),
            NexusState::Unestablished | NexusState::Creating(_) => 1,
            _ => 0,
        }
    }

    fn wants_more_connections(&self) -> bool {
        let live = self.links.values().filter(|l| l.is_open()).count() + self.pending_connects;
        live < self.target_connections()
    }

    fn maintain_connections(&mut self, now: Instant) {
        if !self.wants_more_connections() {
            return;
        }
        if self.reconnect_at.is_some_and(|t| now < t) {
            return;
        }
        self.reconnect_at = None;
        let live = self.links.values().filter(|l| l.is_open()).count() + self.pending_connects;
        for _ in live..self.target_connections() {
            self.pending_connects += 1;
            self.events.push_back(Event::WantConnection);
        }
    }

    fn connection_ready(&mut self) {
        self.backoff = self.config.reconnect_min;
        self.reconnect_at = None;
        self.unbound_since = None;
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
                ClientPhase::AwaitHelloAck { nonce },
                Frame::Hello {
                    versions,
                    digest,
                    compress,
                    nonce: server_nonce,
                },
            ) => {
                if versions != (VERSION, VERSION) {
                    return Err(ProtocolError::Version);
                }
                let client_nonce = *nonce;
                // The server may only turn options off, never on.
                link.agree(
                    digest && self.config.digest,
                    compress && self.config.compress,
                );
                let mechanism = self.config.credentials.mechanism();
                let proof = match &self.config.credentials {
                    ClientCredentials::Anonymous => Bytes::new(),
                    ClientCredentials::SharedSecret(secret) => {
                        Bytes::copy_from_slice(&auth::client_proof(
                            secret,
                            &server_nonce,
                            &client_nonce,
                            &self.config.identity,
                        ))
                    }
                };
                link.send(&Frame::Auth {
                    mechanism,
                    identity: self.config.identity.clone(),
                    proof,
                });
                link.phase = ClientPhase::AwaitServerProof {
                    client_nonce,
                    server_nonce,
                };
            }
            (
                ClientPhase::AwaitServerProof {
                    client_nonce,
                    server_nonce,
                },
                Frame::AuthResult {
                    status,
                    proof,
                    reason,
                },
            ) => {
                if !status.is_ok() {
                    // The server says why (and closes); a GoAway from us is moot.
                    let why = if reason.is_empty() {
                        format!("authentication refused: {status}")
                    } else {
                        reason
                    };
                    self.link_gone(now, conn, CloseReason::Refused(why), None);
                    return Ok(());
                }
                let ok = match &self.config.credentials {
                    ClientCredentials::Anonymous => proof.is_empty(),
                    ClientCredentials::SharedSecret(secret) => auth::verify_server_proof(
                        secret,
                        client_nonce,
                        server_nonce,
                        &self.config.identity,
                        &proof,
                    ),
                };
                if !ok {
                    return Err(ProtocolError::AuthFailed);
                }
                link.handshake_complete();
                link.phase = ClientPhase::Authenticated;
                self.after_auth(now, conn);
            }
            (
                ClientPhase::AwaitNexus,
                Frame::NexusCreated {
                    status: Status::HELD,
                    nexus,
                    grace_ms,
                    reason,
                    ..
                },
            ) if self.state == NexusState::Creating(conn) => {
                // The server answers again when the hold ends; the connection waits.
                let remaining =
                    (grace_ms != u32::MAX).then(|| Duration::from_millis(u64::from(grace_ms)));
                self.events.push_back(Event::NexusHeld {
                    nexus,
                    remaining,
                    reason,
                });
            }
            (ClientPhase::AwaitNexus, Frame::NexusCreated { status, reason, .. })
                if !status.is_ok() =>
            {
                // Refused (a held create whose old nexus was reinstated, an identity
                // mismatch): try again later on a new connection.
                self.link_gone(
                    now,
                    conn,
                    CloseReason::Refused(format!("{status}: {reason}")),
                    Some(GoAwayCode::NORMAL),
                );
            }
            (ClientPhase::AwaitNexus, Frame::BindAck { status, .. })
                if status == Status::UNKNOWN_NEXUS
                    && self.state == NexusState::Active
                    && self.core.members.is_empty()
                    && self.core.never_used() =>
            {
                // The server dropped a nexus on which nothing ever ran (it expires one soon
                // after its last connection goes): nothing can be lost by starting afresh
                // on this connection, queued calls included.
                self.state = NexusState::Unestablished;
                self.unbound_since = None;
                link.phase = ClientPhase::Authenticated;
                self.after_auth(now, conn);
            }
            (ClientPhase::RecoveringOld, Frame::BindAck { status, nexus, .. })
                if Some(nexus) == self.replace =>
            {
                if status.is_ok() {
                    // Bound to the old nexus until the destroy lands: its traffic may
                    // arrive meanwhile, at its negotiated sizes.
                    link.bound(self.core.max_payload());
                    link.send(&Frame::Destroy { nexus });
                    link.phase = ClientPhase::DestroyingOld(nexus);
                } else {
                    // Gone already: nothing to replace.
                    self.replace = None;
                    link.phase = ClientPhase::Authenticated;
                    self.state = NexusState::Unestablished;
                    self.after_auth(now, conn);
                }
            }
            (ClientPhase::DestroyingOld(old), Frame::DestroyAck { nexus }) if nexus == *old => {
                self.replace = None;
                link.phase = ClientPhase::Authenticated;
                self.state = NexusState::Unestablished;
                self.after_auth(now, conn);
            }
            // The old nexus's requests, responses and credits: moot.
            (ClientPhase::DestroyingOld(_), _) => {}
            (ClientPhase::AwaitNexus, Frame::BindAck { status, reason, .. }) if !status.is_ok() => {
                self.link_gone(
                    now,
                    conn,
                    CloseReason::Refused(format!("{status}: {reason}")),
                    Some(GoAwayCode::NORMAL),
                );
                if self.state == NexusState::Active
                    && matches!(status, Status::UNKNOWN_NEXUS | Status::IDENTITY_MISMATCH)
                {
                    // The server no longer knows the nexus: its state (and the reply
                    // cache) is gone, so outstanding requests cannot be retried safely.
                    self.lose_nexus();
                }
            }
            (
                ClientPhase::AwaitNexus,
                Frame::NexusCreated {
                    nexus,
                    fore,
                    back,
                    grace_ms,
                    ..
                },
            ) if self.state == NexusState::Creating(conn) => {
                // The server may only shrink what was proposed.
                if fore != self.config.fore.negotiate(&fore)
                    || back != self.config.back.negotiate(&back)
                {
                    return Err(ProtocolError::Unexpected("NexusCreated"));
                }
                self.core.id = nexus;
                self.granted_grace = Some(Duration::from_millis(u64::from(grace_ms)));
                self.core.initiator.set_attributes(fore);
                self.core.responder.set_attributes(back);
                self.state = NexusState::Active;
                self.events.push_back(Event::NexusEstablished { nexus });
                self.bind_link(now, conn);
                // Connections that authenticated meanwhile join now.
                let mut waiting: Vec<ConnId> = self
                    .links
                    .values()
                    .filter(|l| l.is_open() && matches!(l.phase, ClientPhase::Authenticated))
                    .map(|l| l.id)
                    .collect();
                waiting.sort_unstable();
                for c in waiting {
                    self.after_auth(now, c);
                }
            }
            (ClientPhase::AwaitNexus, Frame::BindAck { nexus, .. }) if nexus == self.core.id => {
                self.bind_link(now, conn);
            }
            (ClientPhase::Bound, Frame::DestroyAck { nexus })
                if nexus == self.core.id && self.state == NexusState::Destroying =>
            {
                self.finish_destroy(now);
            }
            (ClientPhase::Bound, frame) => {
                if self.state == NexusState::Destroying {
                    // Late answers to a destroyed nexus are moot.
                    return Ok(());
                }
                self.core
                    .on_frame(now, conn, frame, &mut self.links, &mut self.events)?;
            }
            (_, frame) => return Err(ProtocolError::Unexpected(frame.name())),
        }
        Ok(())
    }

    fn bind_link(&mut self, now: Instant, conn: ConnId) {
        let max_payload = self.core.max_payload();
        if let Some(link) = self.links.get_mut(&conn) {
            link.phase = ClientPhase::Bound;
            link.bound(max_payload);
        }
        self.core.members.push(conn);
        self.connection_ready();
        self.events.push_back(Event::ConnectionBound {
            conn,
            nexus: self.core.id,
        });
        self.core.dispatch(now, &mut self.links, &mut self.events);
    }

    /// An authenticated connection creates the nexus, joins it, or waits.
    fn after_auth(&mut self, _now: Instant, conn: ConnId) {
        let state = self.state;
        let nexus = self.core.id;
        let recover = self.core.members.is_empty();
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        match state {
            NexusState::Unestablished => {
                if self.replace.is_some() && self.replace_attempts >= REPLACE_ATTEMPTS {
                    // Its traffic keeps breaking our connections: create, and let the
                    // server hold the create if it must.
                    self.replace = None;
                }
                if let Some(old) = self.replace {
                    self.replace_attempts += 1;
                    link.send(&Frame::Recover {
                        nexus: old,
                        identity: self.config.identity.clone(),
                    });
                    link.phase = ClientPhase::RecoveringOld;
                } else {
                    let grace_ms = self.config.grace_period.map_or(0, |g| {
                        u32::try_from(g.as_millis()).unwrap_or(u32::MAX).max(1)
                    });
                    link.send(&Frame::NexusCreate {
                        fore: self.config.fore,
                        back: self.config.back,
                        grace_ms,
                        features: SERVED_FEATURES,
                        identity: self.config.identity.clone(),
                    });
                    link.phase = ClientPhase::AwaitNexus;
                }
                self.state = NexusState::Creating(conn);
            }
            NexusState::Creating(_) => link.phase = ClientPhase::Authenticated,
            NexusState::Active => {
                if recover {
                    link.send(&Frame::Recover {
                        nexus,
                        identity: self.config.identity.clone(),
                    });
                } else {
                    link.send(&Frame::Bind { nexus });
                }
                link.phase = ClientPhase::AwaitNexus;
            }
            NexusState::Destroying | NexusState::Lost | NexusState::Destroyed => {
                link.close(CloseReason::Local, Some(GoAwayCode::NORMAL));
                self.events.push_back(Event::ConnectionClosed {
                    conn,
                    reason: CloseReason::Local,
                });
            }
        }
    }
}
