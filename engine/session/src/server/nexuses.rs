//! The nexuses a server keeps for its clients: creating one (or holding the create
//! while the identity's previous nexus exists), binding and recovering connections,
//! destroying and expiring, and the refusals in between.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hawser_wire::dsp::{self as wire, Status};

use super::{CreateRequest, NexusOwner, Phase, ServerEndpoint, ServerNexus, ServerPhase, Timer};
use crate::auth;
use crate::budget::Reservation;
use crate::codec::Frame;
use crate::error::{CallError, LinkCloseReason};
use crate::event::Event;
use crate::frames::{self, SERVED_FEATURES};
use crate::link::GoAwayCode;
use crate::nexus::NexusCore;
use crate::peer::Peer;
use crate::throttle::TokenBucket;
use crate::types::shrink_if_sparse;
use crate::types::{Channel, IdMap, LinkId, NexusId, RequestId};

impl ServerEndpoint {
    /// Keeps the budget reserved for a large request while the application has it (it
    /// was delivered, or waits for its ordered predecessors); a retry answered from the
    /// cache or a refused request gives it back at once.
    pub(super) fn hold_until_answered(
        &mut self,
        conn: LinkId,
        slot: u32,
        request: RequestId,
        reservation: Reservation,
    ) {
        let Some(Phase::Bound { nexus }) = self.links.get(&conn).map(|l| &l.phase.0) else {
            return;
        };
        if let Some(n) = self.side.nexuses.get_mut(nexus)
            && n.core.responder.executing(slot) == Some(request)
        {
            n.reservations.insert(slot, reservation);
        }
    }

    /// `nexus` lost its last connection: its grace period starts (a pristine nexus gets
    /// the handshake timeout: nothing ran, so nothing is protected by waiting).
    pub(super) fn orphaned(&mut self, now: Instant, nexus: NexusId) {
        let Some(n) = self.side.nexuses.get_mut(&nexus) else {
            return;
        };
        let grace = if n.core.is_pristine() {
            n.grace.min(self.side.config.timers.handshake_timeout)
        } else {
            n.grace
        };
        n.expires_at = Some(now + grace);
        self.schedule_nexus(nexus);
    }

    pub(super) fn next_nexus_id(&mut self) -> NexusId {
        loop {
            self.side.ids_issued += 1;
            let id = auth::prf_u128(&self.side.id_key, self.side.ids_issued);
            if id != 0 && !self.side.nexuses.contains_key(&NexusId(id)) {
                return NexusId(id);
            }
        }
    }

    /// The grace period a create asking for `grace_ms` gets: the ask (0: the default),
    /// at most the server's.
    pub(super) fn granted_grace(&self, grace_ms: u32) -> Duration {
        let most = self.side.config.grace_period;
        match grace_ms {
            0 => most,
            ms => Duration::from_millis(u64::from(ms)).min(most),
        }
    }

    /// A NexusCreate from an authenticated connection.
    pub(super) fn on_create(
        &mut self,
        now: Instant,
        conn: LinkId,
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
        match self.side.by_identity.get(&identity).copied() {
            Some(old)
                if self
                    .side
                    .nexuses
                    .get(&old)
                    .is_some_and(|n| n.core.is_pristine()) =>
            {
                // Nothing ever ran on the old nexus, so there is no remote activity to
                // protect: typically the leading connection died before its
                // NexusCreated arrived. Replace it instead of holding.
                self.remove_nexus(now, old, &CallError::NexusLost, None);
                self.events.push_back(Event::NexusLost { nexus: old });
                if self.side.by_identity.contains_key(&identity) {
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
    pub(super) fn held_answer(&self, now: Instant, identity: &str) -> Frame {
        let Some((old, n)) = self
            .side
            .by_identity
            .get(identity)
            .and_then(|old| Some((*old, self.side.nexuses.get(old)?)))
        else {
            return frames::create_refused(Status::REFUSED, None, 0, "held".into());
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
                    self.side.config.grace_period.as_secs()
                ),
            ),
        };
        frames::create_refused(Status::HELD, Some(old), grace_ms, reason)
    }

    /// Holds a create until the identity's nexus goes away, and says so at once.
    pub(super) fn hold(
        &mut self,
        now: Instant,
        conn: LinkId,
        identity: String,
        request: CreateRequest,
    ) {
        let limit = self.side.config.limits.held_creates_per_identity;
        let queued = self.side.held.get(&identity).map_or(0, VecDeque::len);
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
        self.side
            .held
            .entry(identity.clone())
            .or_default()
            .push_back(conn);
        link.phase = ServerPhase(Phase::Held {
            identity,
            request,
            since: now,
        });
    }

    pub(super) fn create_nexus(
        &mut self,
        now: Instant,
        conn: LinkId,
        identity: String,
        request: CreateRequest,
    ) {
        let most = self.side.config.limits.nexuses;
        if self.side.nexuses.len() >= most as usize {
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
        let fore = request.fore.negotiate(&self.side.config.fore_limits);
        let back = request.back.negotiate(&self.side.config.back_limits);
        let grace = self.granted_grace(request.grace_ms);
        let features = request.features.intersect(SERVED_FEATURES);
        let id = self.next_nexus_id();
        let throttle = self.side.config.throttle.map(|t| TokenBucket::new(t, now));
        let core = NexusCore::new(id, Channel::Back, back, fore, throttle);
        self.side.nexuses.insert(
            id,
            ServerNexus {
                core,
                owner: NexusOwner {
                    identity: identity.as_str().into(),
                    anonymous: self.links.get(&conn).is_none_or(|l| l.anonymous),
                    peer: self.links.get(&conn).map_or(Peer::Unknown, |l| l.peer),
                },
                identity: identity.clone(),
                grace,
                expires_at: None,
                reservations: IdMap::default(),
                tls: self.links.get(&conn).is_some_and(|l| l.is_tls()),
            },
        );
        self.side.by_identity.insert(identity, id);
        if let Some(link) = self.links.get_mut(&conn) {
            link.send(&frames::nexus_created(
                id,
                fore,
                back,
                millis(grace),
                features,
            ));
        }
        self.events.push_back(Event::NexusEstablished { nexus: id });
        self.bind(now, conn, id);
    }

    pub(super) fn bind(&mut self, now: Instant, conn: LinkId, nexus: NexusId) {
        let Some(n) = self.side.nexuses.get_mut(&nexus) else {
            return;
        };
        let max_payload = n.core.max_payload();
        if let Some(link) = self.links.get_mut(&conn) {
            link.phase = ServerPhase(Phase::Bound { nexus });
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
    pub(super) fn remove_nexus(
        &mut self,
        now: Instant,
        nexus: NexusId,
        error: &CallError,
        keep: Option<LinkId>,
    ) {
        let Some(mut n) = self.side.nexuses.remove(&nexus) else {
            return;
        };
        shrink_if_sparse(&mut self.side.nexuses);
        self.side.deadlines.forget(Timer::Nexus(nexus));
        n.core.shut_down(error, &mut self.events);
        let owner = if n.owner.anonymous {
            (std::sync::Arc::from(""), true)
        } else {
            (n.owner.identity.clone(), false)
        };
        self.side
            .ended_nexuses
            .entry(owner)
            .or_default()
            .absorb(&n.core.stats);
        if self.side.by_identity.get(&n.identity) == Some(&nexus) {
            self.side.by_identity.remove(&n.identity);
            shrink_if_sparse(&mut self.side.by_identity);
        }
        for &conn in &n.core.members {
            if Some(conn) == keep {
                if let Some(link) = self.links.get_mut(&conn) {
                    link.phase = ServerPhase(Phase::Authenticated {
                        identity: n.identity.clone(),
                    });
                    link.restart_handshake(now);
                }
                self.schedule_link(conn);
                continue;
            }
            self.close_link(
                now,
                conn,
                LinkCloseReason::Local,
                Some(GoAwayCode::NEXUS_DESTROYED),
            );
        }
        self.release_held(now, &n.identity);
    }

    /// The identity's nexus is gone: its oldest held create goes ahead; the others are
    /// told they now wait for that one.
    pub(super) fn release_held(&mut self, now: Instant, identity: &str) {
        while !self.side.by_identity.contains_key(identity) {
            let Some(conn) = self
                .side
                .held
                .get_mut(identity)
                .and_then(VecDeque::pop_front)
            else {
                break;
            };
            let request = match self.links.get_mut(&conn) {
                Some(link) if link.is_open() => match &link.phase.0 {
                    Phase::Held { request, .. } => *request,
                    _ => continue,
                },
                _ => continue,
            };
            if let Some(link) = self.links.get_mut(&conn) {
                link.phase = ServerPhase(Phase::Authenticated {
                    identity: identity.to_owned(),
                });
            }
            self.create_nexus(now, conn, identity.to_owned(), request);
        }
        let waiting: Vec<LinkId> = match self.side.held.get(identity) {
            Some(queue) if !queue.is_empty() => queue.iter().copied().collect(),
            Some(_) => {
                self.side.held.remove(identity);
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
    pub(super) fn refuse(&mut self, now: Instant, conn: LinkId, answer: Frame) {
        let reason = match &answer {
            Frame::NexusCreated(wire::NexusCreated { status, reason, .. })
            | Frame::BindAck(wire::BindAck { status, reason, .. }) => format!("{status}: {reason}"),
            other => other.kind().name().to_owned(),
        };
        if let Some(link) = self.links.get_mut(&conn) {
            link.send(&answer);
        }
        self.close_link(
            now,
            conn,
            LinkCloseReason::Refused(reason),
            Some(GoAwayCode::NORMAL),
        );
    }

    /// Joins `conn` to `nexus` if `identity` owns it (a recover reinstates it, refusing
    /// creates held for the identity). A refused bind leaves the connection authenticated
    /// and unbound, within its handshake timeout: it may still create or bind.
    pub(super) fn bind_or_refuse(
        &mut self,
        now: Instant,
        conn: LinkId,
        nexus: NexusId,
        identity: String,
        recovered: bool,
    ) {
        let refusal = match self.side.nexuses.get(&nexus) {
            None => Some((
                Status::UNKNOWN_NEXUS,
                format!("{nexus} is unknown here: it never existed, expired or was destroyed"),
            )),
            Some(n) if n.identity != identity => Some((
                Status::IDENTITY_MISMATCH,
                format!("{nexus} belongs to another identity"),
            )),
            // A session that began encrypted stays encrypted on every connection.
            Some(n) if n.tls && !self.links.get(&conn).is_some_and(|l| l.is_tls()) => Some((
                Status::REFUSED,
                format!("{nexus} was created over TLS: its connections must run TLS too"),
            )),
            Some(_) => None,
        };
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if let Some((status, reason)) = refusal {
            link.send(&frames::bind_answer(status, nexus, recovered, reason));
            return;
        }
        link.send(&frames::bind_answer(
            Status::OK,
            nexus,
            recovered,
            String::new(),
        ));
        self.bind(now, conn, nexus);
        // The nexus is reinstated: creates held for this identity are refused.
        for c in self.side.held.remove(&identity).unwrap_or_default() {
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
}

/// `u32` milliseconds of `d`, saturating.
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// A NexusCreated refusing a create.
pub(super) fn refused_create(status: Status, reason: String) -> Frame {
    frames::create_refused(status, None, 0, reason)
}
