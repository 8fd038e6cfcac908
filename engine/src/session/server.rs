//! The server endpoint: accepts connections, authenticates them, and keeps nexuses.
//!
//! The server is passive about nexus lifecycles: clients create, bind, recover and destroy.
//! A nexus survives the loss of all its connections for the grace period; a second
//! NexusCreate from the same client identity is held (not answered) until the first nexus
//! is reinstated by a bind — then the held create is refused — or expires, so the server
//! never runs two generations of one client's work side by side.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::auth::{self, Mechanism, NONCE_LEN};
use super::budget::Reservation;
use super::client::CallOptions;
use super::config::{ChannelAttributes, ServerConfig};
use super::error::{CallError, CloseReason, ProtocolError};
use super::event::{Event, IncomingRequest, Reply};
use super::frame::Frame;
use super::frame::Status;
use super::link::{GoAwayCode, Link, Received, TransmitSink, go_away_code};
use super::nexus::{Footprint, NexusCore};
use super::stats::{ConnectionStats, NexusStats};
use super::throttle::TokenBucket;
use super::types::{Channel, ConnId, ExchangeId, IdMap, NexusId, RequestId};

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
    Authenticated {
        identity: String,
    },
    /// A NexusCreate waiting for the identity's previous nexus to go away.
    Held {
        identity: String,
        fore: ChannelAttributes,
        back: ChannelAttributes,
    },
    Bound {
        nexus: NexusId,
    },
}

#[derive(Debug)]
struct ServerNexus {
    core: NexusCore,
    identity: String,
    /// When the last connection went away.
    orphaned_since: Option<Instant>,
    /// The receive budget held by large requests of this nexus until they are answered,
    /// by fore channel slot (see [`ReceiveBudget`](super::ReceiveBudget)).
    reservations: IdMap<u32, Reservation>,
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
    id_state: u64,
    events: VecDeque<Event>,
    /// Connections not read until the receive budget has room for their next frame, in
    /// the order they started waiting.
    budget_waiters: VecDeque<ConnId>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Server {
    /// A server; `seed` (random, from the driver) makes nexus ids hard to guess across
    /// restarts. Binding also checks the authenticated identity, so ids are not secrets.
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        Server {
            config,
            links: IdMap::default(),
            next_conn: 1,
            nexuses: IdMap::default(),
            by_identity: HashMap::new(),
            id_state: seed,
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
        id
    }

    /// Bytes arrived on `conn`.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.receive(now, bytes);
        self.handle_frames(now, conn);
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
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links.values().filter_map(Link::deadline);
        let grace = self
            .nexuses
            .values()
            .filter_map(|n| n.orphaned_since.map(|t| t + self.config.grace_period));
        let throttle = self.nexuses.values().filter_map(|n| {
            n.core
                .initiator
                .throttle_deadline(&self.links, &n.core.members)
        });
        links.chain(grace).chain(throttle).min()
    }

    /// Runs timers that are due: heartbeats, dead connections, grace periods, throttling.
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
        let mut expired: Vec<NexusId> = self
            .nexuses
            .values()
            .filter(|n| {
                n.orphaned_since
                    .is_some_and(|t| now >= t + self.config.grace_period)
            })
            .map(|n| n.core.id)
            .collect();
        expired.sort_unstable();
        for nexus in expired {
            self.remove_nexus(now, nexus, &CallError::NexusLost, None);
            self.events.push_back(Event::NexusLost { nexus });
        }
        for n in self.nexuses.values_mut() {
            n.core.dispatch(now, &mut self.links, &mut self.events);
        }
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
        n.core.call(
            now,
            exchange,
            body,
            options,
            &mut self.links,
            &mut self.events,
        )
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

    fn fail_link(&mut self, now: Instant, conn: ConnId, e: ProtocolError) {
        let code = go_away_code(&e);
        self.link_gone(now, conn, CloseReason::Protocol(e), Some(code));
    }

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
        if let ServerPhase::Bound { nexus } = link.phase
            && let Some(n) = self.nexuses.get_mut(&nexus)
        {
            n.core
                .on_link_lost(now, conn, &mut self.links, &mut self.events);
            if n.core.members.is_empty() {
                n.orphaned_since = Some(now);
            }
        }
    }

    fn next_nexus_id(&mut self) -> NexusId {
        loop {
            let id = u128::from(splitmix(&mut self.id_state)) << 64
                | u128::from(splitmix(&mut self.id_state));
            if id != 0 && !self.nexuses.contains_key(&NexusId(id)) {
                return NexusId(id);
            }
        }
    }

    fn create_nexus(
        &mut self,
        now: Instant,
        conn: ConnId,
        identity: String,
        fore: ChannelAttributes,
        back: ChannelAttributes,
    ) {
        let fore = fore.negotiate(&self.config.fore_limits);
        let back = back.negotiate(&self.config.back_limits);
        let id = self.next_nexus_id();
        let throttle = self.config.throttle.map(|t| TokenBucket::new(t, now));
        let core = NexusCore::new(id, Channel::Back, back, fore, throttle);
        self.nexuses.insert(
            id,
            ServerNexus {
                core,
                identity: identity.clone(),
                orphaned_since: None,
                reservations: IdMap::default(),
            },
        );
        self.by_identity.insert(identity.clone(), id);
        if let Some(link) = self.links.get_mut(&conn) {
            link.send(&Frame::NexusCreated {
                status: Status::OK,
                nexus: id,
                fore,
                back,
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
        }
        n.core.members.push(conn);
        n.orphaned_since = None;
        self.events
            .push_back(Event::ConnectionBound { conn, nexus });
        n.core.dispatch(now, &mut self.links, &mut self.events);
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
        n.core.shut_down(error, &mut self.events);
        if self.by_identity.get(&n.identity) == Some(&nexus) {
            self.by_identity.remove(&n.identity);
        }
        for conn in n.core.members.clone() {
            if Some(conn) == keep {
                if let Some(link) = self.links.get_mut(&conn) {
                    link.phase = ServerPhase::Authenticated {
                        identity: n.identity.clone(),
                    };
                }
                continue;
            }
            if let Some(link) = self.links.get_mut(&conn)
                && link.is_open()
            {
                link.close(CloseReason::Local, Some(GoAwayCode::NEXUS_DESTROYED));
                self.events.push_back(Event::ConnectionClosed {
                    conn,
                    reason: CloseReason::Local,
                });
            }
        }
        // The oldest held create of this identity goes ahead.
        let held = self
            .links
            .values()
            .filter(|l| l.is_open())
            .filter_map(|l| match &l.phase {
                ServerPhase::Held {
                    identity,
                    fore,
                    back,
                } if *identity == n.identity => Some((l.id, identity.clone(), *fore, *back)),
                _ => None,
            })
            .min_by_key(|(c, ..)| *c);
        if let Some((conn, identity, fore, back)) = held {
            self.create_nexus(now, conn, identity, fore, back);
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
    /// creates held for the identity); refuses otherwise.
    fn bind_or_refuse(
        &mut self,
        now: Instant,
        conn: ConnId,
        nexus: NexusId,
        identity: String,
        recovered: bool,
    ) {
        let status = match self.nexuses.get(&nexus) {
            None => Status::UNKNOWN_NEXUS,
            Some(n) if n.identity != identity => Status::IDENTITY_MISMATCH,
            Some(_) => Status::OK,
        };
        if !status.is_ok() {
            self.refuse(
                now,
                conn,
                Frame::BindAck {
                    status,
                    nexus,
                    recovered,
                    reason: format!("{nexus}"),
                },
            );
            return;
        }
        if let Some(link) = self.links.get_mut(&conn) {
            link.send(&Frame::BindAck {
                status: Status::OK,
                nexus,
                recovered,
                reason: String::new(),
            });
        }
        self.bind(now, conn, nexus);
        // The nexus is reinstated: creates held for this identity are refused.
        let mut held: Vec<(ConnId, ChannelAttributes, ChannelAttributes)> = self
            .links
            .values()
            .filter(|l| l.is_open())
            .filter_map(|l| match &l.phase {
                ServerPhase::Held {
                    identity: i,
                    fore,
                    back,
                } if *i == identity => Some((l.id, *fore, *back)),
                _ => None,
            })
            .collect();
        held.sort_unstable_by_key(|(c, ..)| *c);
        for (c, fore, back) in held {
            self.refuse(
                now,
                c,
                Frame::NexusCreated {
                    status: Status::REFUSED,
                    nexus: NexusId(0),
                    fore,
                    back,
                    reason: format!("{nexus} of this identity was reinstated"),
                },
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
                    digest,
                    compress,
                    nonce: client_nonce,
                },
            ) => {
                // The answer is what was agreed: digest as asked, lz4 if both want it.
                let server_nonce = *nonce;
                let compress = compress && self.config.compress;
                link.send(&Frame::Hello {
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
                let answer = match mechanism {
                    Mechanism::Anonymous if self.config.credentials.allow_anonymous => Bytes::new(),
                    Mechanism::HmacSha256 => {
                        let secret = self
                            .config
                            .credentials
                            .secrets
                            .get(&identity)
                            .ok_or(ProtocolError::AuthMechanism)?;
                        if !auth::verify_client_proof(
                            secret,
                            &server_nonce,
                            &client_nonce,
                            &identity,
                            &proof,
                        ) {
                            return Err(ProtocolError::AuthFailed);
                        }
                        Bytes::copy_from_slice(&auth::server_proof(
                            secret,
                            &client_nonce,
                            &server_nonce,
                            &identity,
                        ))
                    }
                    _ => return Err(ProtocolError::AuthMechanism),
                };
                link.send(&Frame::AuthResult {
                    status: Status::OK,
                    proof: answer,
                });
                link.handshake_complete();
                link.phase = ServerPhase::Authenticated { identity };
            }
            (
                ServerPhase::Authenticated { identity },
                Frame::NexusCreate {
                    fore,
                    back,
                    identity: claimed,
                },
            ) => {
                let identity = identity.clone();
                if claimed != identity {
                    self.refuse(
                        now,
                        conn,
                        Frame::NexusCreated {
                            status: Status::IDENTITY_MISMATCH,
                            nexus: NexusId(0),
                            fore,
                            back,
                            reason: "identity differs from the authenticated one".into(),
                        },
                    );
                    return Ok(());
                }
                match self.by_identity.get(&identity).copied() {
                    Some(old) if self.nexuses.get(&old).is_some_and(|n| n.core.is_pristine()) => {
                        // Nothing ever ran on the old nexus, so there is no remote activity
                        // to protect: typically the leading connection died before its
                        // NexusCreated arrived. Replace it instead of holding for the grace
                        // period.
                        self.remove_nexus(now, old, &CallError::NexusLost, None);
                        self.events.push_back(Event::NexusLost { nexus: old });
                        if !self.by_identity.contains_key(&identity) {
                            self.create_nexus(now, conn, identity, fore, back);
                        } else if let Some(link) = self.links.get_mut(&conn) {
                            // A held create of the same identity went first.
                            link.phase = ServerPhase::Held {
                                identity,
                                fore,
                                back,
                            };
                        }
                    }
                    Some(_) => {
                        if let Some(link) = self.links.get_mut(&conn) {
                            link.phase = ServerPhase::Held {
                                identity,
                                fore,
                                back,
                            };
                        }
                    }
                    None => self.create_nexus(now, conn, identity, fore, back),
                }
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
                }
            }
            (_, frame) => return Err(ProtocolError::Unexpected(frame.name())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::{Bytes, BytesMut};

    use super::Server;
    use crate::session::{
        CallOptions, Client, ClientConfig, ClientCredentials, ExchangeId, ServerConfig,
        ServerCredentials, ThrottleConfig,
    };

    /// Found by the `session_server` fuzz target: backchannel calls queued behind the
    /// throttle on a nexus whose connections are gone left `poll_timeout` at an instant
    /// `handle_timeout` could not move past, so a driver would spin until the grace
    /// period ended.
    #[test]
    fn an_orphaned_nexus_with_throttled_calls_has_no_due_timer() {
        let now = Instant::now();
        let mut config = ServerConfig::new(ServerCredentials::anonymous());
        config.throttle = Some(ThrottleConfig {
            bytes_per_second: 1000,
            burst_bytes: 100,
        });
        let mut server = Server::new(config, 7);
        let mut client_config = ClientConfig::new("c", ClientCredentials::Anonymous);
        client_config.connections = 1;
        let mut client = Client::new(client_config, now);
        let c = client.add_connection(now, [1; 16]);
        let s = server.accept(now, [2; 16]);
        let mut buf = BytesMut::new();
        for _ in 0..4 {
            buf.clear();
            client.poll_transmit(now, c, &mut buf);
            server.handle_input(now, s, &buf);
            buf.clear();
            server.poll_transmit(now, s, &mut buf);
            client.handle_input(now, c, &buf);
        }
        let nexus = server.nexuses().next().expect("a nexus");
        server.connection_lost(now, s);
        for _ in 0..3 {
            server
                .call(
                    now,
                    nexus,
                    ExchangeId(1),
                    Bytes::from_static(b"x"),
                    CallOptions::default(),
                )
                .unwrap();
        }
        let later = now + Duration::from_secs(1);
        server.handle_timeout(later);
        let next = server.poll_timeout().expect("the grace period");
        assert!(next > later, "a timer still due: {next:?} <= {later:?}");
    }
}
