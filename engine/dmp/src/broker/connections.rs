//! Leases and the direct connections they open: granting (Direct.Put and Direct.Get),
//! redeeming, detaching, the handshake count, and the applications whose entities live
//! as long as their last connection.

use std::sync::Arc;
use std::time::Instant;

use hawser_runtime::Peer;
use hawser_runtime::direct::ConnId;
use hawser_wire::dmp::ResponseCode;

use super::{Attached, Broker, Grant, Lease, Refusal, Requester, at_most, not_found};

/// A lease redeemed by a direct connection.
#[derive(Debug)]
pub struct Redeemed {
    /// What the connection is attached to.
    pub attached: Attached,
    /// The application (nexus) the lease was granted to.
    pub app: u128,
    /// That nexus's identity.
    pub identity: Arc<str>,
    /// The identity is claimed (`ANONYMOUS`), not proven.
    pub anonymous: bool,
}

impl Broker {
    pub(super) fn grant(
        &mut self,
        now: Instant,
        who: &Requester,
        grant: Grant,
    ) -> Result<String, Refusal> {
        if let Some(why) = &self.config.refuse_direct {
            return Err(Refusal::new(ResponseCode::NotAllowed, why.clone()));
        }
        self.app(who);
        let lease = Lease {
            grant,
            app: who.app,
            identity: Arc::clone(&who.identity),
            anonymous: who.anonymous,
            peer: who.peer,
            expires: now + self.config.lease_ttl,
        };
        let limits = self.config.limits;
        self.leases
            .grant(now, lease, limits.leases, limits.leases_per_app)
    }

    /// `Direct.Put`: a lease for one publishing connection to the sink.
    pub fn put(&mut self, now: Instant, who: &Requester, sink: &[u8]) -> Result<String, Refusal> {
        let name = Self::check_name(sink)?;
        let id = *self
            .sink_names
            .get(name)
            .ok_or_else(|| not_found("sink", name))?;
        self.grant(now, who, Grant::Put(id))
    }

    /// `Direct.Get`: a lease for the consuming connection of the feed, which the
    /// asking identity must own (or the configuration left to any).
    pub fn get(&mut self, now: Instant, who: &Requester, feed: &[u8]) -> Result<String, Refusal> {
        let name = Self::check_name(feed)?;
        let id = *self
            .feed_names
            .get(name)
            .ok_or_else(|| not_found("feed", name))?;
        let f = &self.feeds[&id];
        self.check_owner(&f.owner, who, "feed", name)?;
        if f.consumer.is_some() {
            return Err(Refusal::new(
                ResponseCode::NotAllowed,
                format!("feed \"{name}\" is exclusive and has a consumer already"),
            ));
        }
        self.grant(now, who, Grant::Get(id))
    }

    /// A direct connection presents its lease: it becomes a publisher of the sink or
    /// the consumer of the feed.
    pub fn redeem(
        &mut self,
        now: Instant,
        lease: &[u8],
        peer: Peer,
        conn: ConnId,
    ) -> Result<Redeemed, Refusal> {
        let lease = self.leases.redeem(now, lease, peer)?;
        at_most(
            self.direct_connections,
            self.config.limits.direct_connections,
            "direct connections",
        )?;
        let attached = match lease.grant {
            Grant::Put(id) => {
                let sink = self.sinks.get_mut(&id).ok_or_else(|| {
                    Refusal::new(ResponseCode::NotFound, "the lease's sink was deleted")
                })?;
                sink.publishers.push(conn);
                Attached::Put {
                    sink: id,
                    name: sink.name.clone(),
                }
            }
            Grant::Get(id) => {
                let feed = self.feeds.get_mut(&id).ok_or_else(|| {
                    Refusal::new(ResponseCode::NotFound, "the lease's feed was deleted")
                })?;
                if feed.consumer.is_some() {
                    return Err(Refusal::new(
                        ResponseCode::NotAllowed,
                        format!(
                            "feed \"{}\" is exclusive and has a consumer already",
                            feed.name
                        ),
                    ));
                }
                feed.consumer = Some(conn);
                // Messages may be waiting for it.
                self.wakes.push(conn);
                Attached::Get {
                    feed: id,
                    name: feed.name.clone(),
                }
            }
        };
        self.direct_connections += 1;
        let app = self.apps.entry(lease.app).or_default();
        app.direct += 1;
        Ok(Redeemed {
            attached,
            app: lease.app,
            identity: lease.identity,
            anonymous: lease.anonymous,
        })
    }

    /// A closed direct connection (attached for application `app`): it stops publishing or consuming, and its
    /// application's entities go if that was its last connection.
    pub fn detach(&mut self, conn: ConnId, attached: &Attached, app: u128) {
        match attached {
            Attached::Put { sink, .. } => {
                if let Some(s) = self.sinks.get_mut(sink) {
                    s.publishers.retain(|&c| c != conn);
                }
                for f in self.feeds.values_mut() {
                    f.waiting.retain(|&c| c != conn);
                }
                self.budget_waiting.retain(|&c| c != conn);
            }
            Attached::Get { feed, .. } => {
                if let Some(f) = self.feeds.get_mut(feed)
                    && f.consumer == Some(conn)
                {
                    f.consumer = None;
                }
            }
        }
        self.direct_connections = self.direct_connections.saturating_sub(1);
        if let Some(a) = self.apps.get_mut(&app) {
            a.direct = a.direct.saturating_sub(1);
        }
        self.end_app_if_unused(app);
    }

    /// The application's nexus is gone (destroyed, or expired after its grace period).
    pub fn nexus_ended(&mut self, app: u128) {
        self.leases.forget_app(app);
        if let Some(a) = self.apps.get_mut(&app) {
            a.nexus_alive = false;
        }
        self.end_app_if_unused(app);
    }

    pub(super) fn end_app_if_unused(&mut self, app: u128) {
        let Some(a) = self.apps.get(&app) else {
            return;
        };
        if a.nexus_alive || a.direct > 0 {
            return;
        }
        self.apps.remove(&app);
        let sinks: Vec<_> = self
            .sinks
            .values()
            .filter(|s| s.app == Some(app))
            .map(|s| s.id)
            .collect();
        let feeds: Vec<_> = self
            .feeds
            .values()
            .filter(|f| f.app == Some(app))
            .map(|f| f.id)
            .collect();
        for id in sinks {
            self.remove_sink(id);
        }
        for id in feeds {
            self.remove_feed(id);
        }
    }

    /// A direct connection opened: false when as many are in their handshake as allowed.
    pub fn begin_handshake(&mut self) -> bool {
        if self.handshakes >= self.config.limits.handshakes {
            return false;
        }
        self.handshakes += 1;
        true
    }

    /// A direct connection's handshake ended (its lease was read, or it closed).
    pub fn end_handshake(&mut self) {
        self.handshakes = self.handshakes.saturating_sub(1);
    }
}
