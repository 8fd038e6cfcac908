//! The broker of one server: sinks, feeds, bindings, leases, and the applications
//! (nexuses) whose entities live as long as their last connection. Sans-IO: the wiring
//! handlers and the direct connections call it on the server's shard, with `now`.

mod budget;
mod connections;
mod feed;
mod lease;
mod owner;
mod publish;
mod sink;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;

use hawser_runtime::direct::ConnId;
use hawser_wire::dmp::ResponseCode;
use hawser_wire::dmp::wiring::{EntityKind, FlowPolicy};
use serde::Serialize;

use crate::config::DmpConfig;
use crate::pattern::Pattern;

pub use connections::Redeemed;
pub use feed::{Feed, FeedCounters, FeedQueue, Overflow};
pub use lease::{Grant, LEASE_LEN, Lease, LeaseTable, lease_text, parse_lease};
pub use owner::{Owner, Requester};
pub use publish::MessageRef;
pub use sink::{Binding, Sink};
pub use stats::{BrokerStats, FeedStats};

/// Names a sink or feed for its whole life (a name declared again is a new entity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EntityId(pub u64);

/// A refusal: a DMP response code and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub code: ResponseCode,
    /// The explanation.
    pub text: String,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: ResponseCode, text: impl Into<String>) -> Self {
        Refusal {
            code,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.code(),
            self.code.indicator(),
            self.text
        )
    }
}

/// What a redeemed lease attached a direct connection to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attached {
    /// A publisher of this sink.
    Put {
        /// The sink.
        sink: EntityId,
        /// Its name (envelopes may name it).
        name: String,
    },
    /// The consumer of this feed.
    Get {
        /// The feed.
        feed: EntityId,
        /// Its name.
        name: String,
    },
}

/// An application's connections: its nexus, and its direct connections.
#[derive(Debug, Default)]
struct App {
    nexus_alive: bool,
    direct: u32,
}

/// Every sink and feed of one server.
#[derive(Debug)]
pub struct Broker {
    config: Arc<DmpConfig>,
    next_id: u64,
    sinks: HashMap<EntityId, Sink>,
    sink_names: HashMap<String, EntityId>,
    feeds: HashMap<EntityId, Feed>,
    feed_names: HashMap<String, EntityId>,
    leases: LeaseTable,
    apps: HashMap<u128, App>,
    direct_connections: usize,
    /// Connections to poll again (their feed has data, their block is lifted, or they
    /// must close); the direct connections hand them to the shard.
    wakes: Vec<ConnId>,
    /// Reused by `publish`: which messages of a chunk some feed took.
    routed: Vec<bool>,
    /// Bytes in every feed's queue together.
    queued: u64,
    /// Bytes of the publishers' receive buffers.
    receiving: u64,
    /// A policy dropped messages during `publish`: see whether paused publishers may go.
    wake_if_under_budget_later: bool,
    /// Publishers paused until `queued` drains under three quarters of the budget.
    budget_waiting: Vec<ConnId>,
    /// Direct connections before their lease.
    handshakes: usize,
}

/// A refusal unless fewer than `most` of `what` are held (`count`).
fn at_most(count: usize, most: usize, what: &str) -> Result<(), Refusal> {
    if count < most {
        return Ok(());
    }
    Err(Refusal::new(
        ResponseCode::NotAllowed,
        format!("the server holds its maximum of {most} {what}"),
    ))
}

/// What a feed is declared with.
#[derive(Debug, Clone, Copy)]
struct FeedSettings {
    durable: bool,
    policy: FlowPolicy,
    high_water: u64,
    low_water: u64,
}

fn not_found(kind: &str, name: &str) -> Refusal {
    Refusal::new(
        ResponseCode::NotFound,
        format!("no {kind} named \"{name}\" on this server: declare it first"),
    )
}

impl Broker {
    /// A broker with what `config` declares.
    pub fn new(config: Arc<DmpConfig>) -> Result<Self, Refusal> {
        config
            .validate()
            .map_err(|e| Refusal::new(ResponseCode::InternalError, e))?;
        let mut broker = Broker {
            config: Arc::clone(&config),
            next_id: 1,
            sinks: HashMap::new(),
            sink_names: HashMap::new(),
            feeds: HashMap::new(),
            feed_names: HashMap::new(),
            leases: LeaseTable::default(),
            apps: HashMap::new(),
            direct_connections: 0,
            wakes: Vec::new(),
            routed: Vec::new(),
            queued: 0,
            receiving: 0,
            wake_if_under_budget_later: false,
            budget_waiting: Vec::new(),
            handshakes: 0,
        };
        for sink in &config.sinks {
            let owner = Owner::Server { consumer: None };
            broker.add_sink(&sink.name, true, None, owner)?;
        }
        for feed in &config.feeds {
            let (high, low) = config.water_marks(feed.high_water, feed.low_water);
            let owner = Owner::Server {
                consumer: feed.consumer.as_deref().map(Arc::from),
            };
            let settings = FeedSettings {
                durable: true,
                policy: feed.policy,
                high_water: high,
                low_water: low,
            };
            broker.add_feed(&feed.name, settings, None, owner)?;
        }
        for b in &config.bindings {
            broker.bind_ids(&b.feed, &b.sink, b.pattern.as_bytes())?;
        }
        Ok(broker)
    }

    /// The service's settings.
    pub fn config(&self) -> &Arc<DmpConfig> {
        &self.config
    }

    fn next_id(&mut self) -> EntityId {
        self.next_id += 1;
        EntityId(self.next_id)
    }

    fn app(&mut self, who: &Requester) {
        self.apps.entry(who.app).or_default().nexus_alive = true;
    }

    fn check_name(name: &[u8]) -> Result<&str, Refusal> {
        let name = std::str::from_utf8(name)
            .map_err(|_| Refusal::new(ResponseCode::SyntaxError, "a name must be UTF-8 text"))?;
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(Refusal::new(
                ResponseCode::SyntaxError,
                "a name must be non-empty text without control characters",
            ));
        }
        Ok(name)
    }

    fn add_sink(
        &mut self,
        name: &str,
        durable: bool,
        app: Option<u128>,
        owner: Owner,
    ) -> Result<bool, Refusal> {
        if let Some(id) = self.sink_names.get(name) {
            let sink = &self.sinks[id];
            if sink.durable != durable {
                return Err(Refusal::new(
                    ResponseCode::NotAllowed,
                    format!(
                        "sink \"{name}\" exists with durable = {}: declare it as it is, or \
                         delete it first",
                        sink.durable
                    ),
                ));
            }
            return Ok(false);
        }
        at_most(
            self.sinks.len(),
            self.config.limits.sinks,
            "sinks; delete unused ones",
        )?;
        let id = self.next_id();
        self.sink_names.insert(name.to_owned(), id);
        self.sinks.insert(
            id,
            Sink {
                id,
                name: name.to_owned(),
                durable,
                app: if durable { None } else { app },
                owner,
                bindings: Vec::new(),
                publishers: Vec::new(),
                messages: 0,
                unrouted: 0,
            },
        );
        Ok(true)
    }

    fn add_feed(
        &mut self,
        name: &str,
        settings: FeedSettings,
        app: Option<u128>,
        owner: Owner,
    ) -> Result<bool, Refusal> {
        let FeedSettings {
            durable,
            policy,
            high_water,
            low_water,
        } = settings;
        if let Some(id) = self.feed_names.get(name) {
            let f = &self.feeds[id];
            if (f.durable, f.policy, f.high_water, f.low_water)
                != (durable, policy, high_water, low_water)
            {
                return Err(Refusal::new(
                    ResponseCode::NotAllowed,
                    format!(
                        "feed \"{name}\" exists with other settings ({}, high {} B, low {} B, \
                         durable = {}): declare it as it is, or delete it first",
                        f.policy.as_str(),
                        f.high_water,
                        f.low_water,
                        f.durable
                    ),
                ));
            }
            return Ok(false);
        }
        at_most(
            self.feeds.len(),
            self.config.limits.feeds,
            "feeds; delete unused ones",
        )?;
        let id = self.next_id();
        self.feed_names.insert(name.to_owned(), id);
        self.feeds.insert(
            id,
            Feed {
                id,
                name: name.to_owned(),
                policy,
                high_water,
                low_water,
                durable,
                app: if durable { None } else { app },
                owner,
                queue: FeedQueue::default(),
                consumer: None,
                blocked: false,
                waiting: Vec::new(),
                counters: FeedCounters::default(),
            },
        );
        Ok(true)
    }

    /// `Declare-Sink`: true if it was made, false if it existed alike.
    pub fn declare_sink(
        &mut self,
        who: &Requester,
        name: &[u8],
        durable: bool,
    ) -> Result<bool, Refusal> {
        let name = Self::check_name(name)?;
        self.check_may_declare(who, durable, self.sink_names.contains_key(name))?;
        self.app(who);
        self.add_sink(name, durable, Some(who.app), Owner::of(who))
    }

    /// What an application may declare: durable entities only with a proven identity,
    /// and at most `limits.entities_per_app` of its own.
    fn check_may_declare(
        &self,
        who: &Requester,
        durable: bool,
        exists: bool,
    ) -> Result<(), Refusal> {
        if durable && who.anonymous {
            return Err(Refusal::new(
                ResponseCode::NoAccess,
                "an anonymous client declares only what lives as long as it does (durable = 0); \
                 log in with an identity to declare durable sinks and feeds",
            ));
        }
        let most = self.config.limits.entities_per_app;
        let owned = self
            .sinks
            .values()
            .filter(|s| s.app == Some(who.app))
            .count()
            + self
                .feeds
                .values()
                .filter(|f| f.app == Some(who.app))
                .count();
        if !exists && owned >= most {
            return Err(Refusal::new(
                ResponseCode::NotAllowed,
                format!("this client has declared its maximum of {most} sinks and feeds"),
            ));
        }
        Ok(())
    }

    /// `Declare-Feed`: true if it was made, false if it existed alike. Only its
    /// declaring identity may bind, consume or delete it.
    pub fn declare_feed(
        &mut self,
        who: &Requester,
        name: &[u8],
        durable: bool,
        policy: FlowPolicy,
        high: u64,
        low: u64,
    ) -> Result<bool, Refusal> {
        let name = Self::check_name(name)?;
        if let Some(id) = self.feed_names.get(name) {
            self.check_owner(&self.feeds[id].owner, who, "feed", name)?;
        }
        self.check_may_declare(who, durable, self.feed_names.contains_key(name))?;
        let most = self.config.max_high_water;
        if high > most || low > most {
            return Err(Refusal::new(
                ResponseCode::NotAllowed,
                format!("a feed's water marks are at most {most} bytes on this server"),
            ));
        }
        self.app(who);
        let (high, low) = self.config.water_marks(high, low);
        let settings = FeedSettings {
            durable,
            policy,
            high_water: high,
            low_water: low,
        };
        self.add_feed(name, settings, Some(who.app), Owner::of(who))
    }

    fn check_owner(
        &self,
        owner: &Owner,
        who: &Requester,
        kind: &str,
        name: &str,
    ) -> Result<(), Refusal> {
        if owner.admits(who) {
            return Ok(());
        }
        Err(Refusal::new(
            ResponseCode::NoAccess,
            format!("{kind} \"{name}\" belongs to another identity"),
        ))
    }

    /// `Delete`: a sink (its publishers are disconnected) or a feed (its consumer is).
    pub fn delete(
        &mut self,
        who: &Requester,
        kind: EntityKind,
        name: &[u8],
    ) -> Result<(), Refusal> {
        let name = Self::check_name(name)?;
        let (owner, id) = match kind {
            EntityKind::Sink => {
                let id = *self
                    .sink_names
                    .get(name)
                    .ok_or_else(|| not_found("sink", name))?;
                (self.sinks[&id].owner.clone(), id)
            }
            EntityKind::Feed => {
                let id = *self
                    .feed_names
                    .get(name)
                    .ok_or_else(|| not_found("feed", name))?;
                (self.feeds[&id].owner.clone(), id)
            }
        };
        if matches!(owner, Owner::Server { .. }) {
            return Err(Refusal::new(
                ResponseCode::NoAccess,
                format!("\"{name}\" is declared by the server's configuration"),
            ));
        }
        self.check_owner(&owner, who, "entity", name)?;
        match kind {
            EntityKind::Sink => self.remove_sink(id),
            EntityKind::Feed => self.remove_feed(id),
        }
        Ok(())
    }

    fn remove_sink(&mut self, id: EntityId) {
        if let Some(sink) = self.sinks.remove(&id) {
            self.sink_names.remove(&sink.name);
            // Each sees its sink gone when polled, and closes.
            self.wakes.extend(sink.publishers);
        }
    }

    fn remove_feed(&mut self, id: EntityId) {
        let Some(feed) = self.feeds.remove(&id) else {
            return;
        };
        self.feed_names.remove(&feed.name);
        self.release_queued(feed.queue.bytes());
        for sink in self.sinks.values_mut() {
            sink.bindings.retain(|b| b.feed != id);
        }
        self.wakes.extend(feed.consumer);
        self.wakes.extend(feed.waiting);
    }

    fn bind_ids(&mut self, feed: &str, sink: &str, pattern: &[u8]) -> Result<(), Refusal> {
        let feed_id = *self
            .feed_names
            .get(feed)
            .ok_or_else(|| not_found("feed", feed))?;
        let sink_id = *self
            .sink_names
            .get(sink)
            .ok_or_else(|| not_found("sink", sink))?;
        let pattern = Pattern::parse(pattern)
            .map_err(|e| Refusal::new(ResponseCode::SyntaxError, e.to_string()))?;
        let most = self.config.limits.bindings_per_sink;
        let s = self.sinks.get_mut(&sink_id).expect("named sink exists");
        let patterns: usize = s.bindings.iter().map(|b| b.patterns.len()).sum();
        let existing = s.bindings.iter().position(|b| b.feed == feed_id);
        if let Some(i) = existing
            && s.bindings[i].patterns.contains(&pattern)
        {
            return Ok(());
        }
        if patterns >= most {
            return Err(Refusal::new(
                ResponseCode::NotAllowed,
                format!("sink \"{sink}\" has its maximum of {most} bindings"),
            ));
        }
        match existing {
            Some(i) => s.bindings[i].patterns.push(pattern),
            None => s.bindings.push(Binding {
                feed: feed_id,
                patterns: vec![pattern],
            }),
        }
        Ok(())
    }

    /// `Bind`: routes the sink's messages whose key `pattern` matches to the feed.
    pub fn bind(
        &mut self,
        who: &Requester,
        feed: &[u8],
        sink: &[u8],
        pattern: &[u8],
    ) -> Result<(), Refusal> {
        let feed = Self::check_name(feed)?;
        let sink = Self::check_name(sink)?;
        let id = self
            .feed_names
            .get(feed)
            .ok_or_else(|| not_found("feed", feed))?;
        self.check_owner(&self.feeds[id].owner, who, "feed", feed)?;
        // Binding reads a sink's traffic: its owner's (or anyone's, for a sink of the
        // configuration or of an anonymous client).
        if let Some(sink_id) = self.sink_names.get(sink) {
            self.check_owner(&self.sinks[sink_id].owner, who, "sink", sink)?;
        }
        self.bind_ids(feed, sink, pattern)
    }

    /// `Unbind`.
    pub fn unbind(
        &mut self,
        who: &Requester,
        feed: &[u8],
        sink: &[u8],
        pattern: &[u8],
    ) -> Result<(), Refusal> {
        let feed = Self::check_name(feed)?;
        let sink = Self::check_name(sink)?;
        let feed_id = *self
            .feed_names
            .get(feed)
            .ok_or_else(|| not_found("feed", feed))?;
        self.check_owner(&self.feeds[&feed_id].owner, who, "feed", feed)?;
        let sink_id = *self
            .sink_names
            .get(sink)
            .ok_or_else(|| not_found("sink", sink))?;
        let s = self.sinks.get_mut(&sink_id).expect("named sink exists");
        let before: usize = s.bindings.iter().map(|b| b.patterns.len()).sum();
        for b in s.bindings.iter_mut().filter(|b| b.feed == feed_id) {
            b.patterns.retain(|p| p.text() != pattern);
        }
        s.bindings.retain(|b| !b.patterns.is_empty());
        let after: usize = s.bindings.iter().map(|b| b.patterns.len()).sum();
        // Publishers paused on the feed may no longer route to it.
        let publishers = s.publishers.clone();
        self.wakes.extend(publishers);
        if after == before {
            return Err(Refusal::new(
                ResponseCode::NotFound,
                format!("feed \"{feed}\" is not bound to sink \"{sink}\" with that pattern"),
            ));
        }
        Ok(())
    }

    /// The sink, while it exists.
    pub fn sink(&self, id: EntityId) -> Option<&Sink> {
        self.sinks.get(&id)
    }

    /// The feed, while it exists.
    pub fn feed(&self, id: EntityId) -> Option<&Feed> {
        self.feeds.get(&id)
    }

    /// The id of the feed named `name`.
    pub fn feed_id(&self, name: &str) -> Option<EntityId> {
        self.feed_names.get(name).copied()
    }

    /// The id of the sink named `name`.
    pub fn sink_id(&self, name: &str) -> Option<EntityId> {
        self.sink_names.get(name).copied()
    }

    /// Connections to poll again.
    pub fn take_wakes(&mut self, into: &mut Vec<ConnId>) {
        into.append(&mut self.wakes);
    }
}
