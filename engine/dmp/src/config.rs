//! What an operator sets for a server's DMP service: timers, limits, and the sinks,
//! feeds and bindings it declares at start.

use std::time::Duration;

use hawser_wire::dmp::wiring::FlowPolicy;

/// Default high-water mark of a feed's queue.
pub const DEFAULT_HIGH_WATER: u64 = 8 << 20;
/// Default of what all queues hold together.
pub const DEFAULT_MAX_QUEUED: u64 = 512 << 20;
/// Largest envelope (size field) a publisher may send by default.
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 1 << 20;

/// A sink the server declares at start (durable: it lives until deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkDeclaration {
    /// Its name.
    pub name: String,
}

/// A feed the server declares at start (durable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedDeclaration {
    /// Its name.
    pub name: String,
    /// What happens when its consumer is slower than its publishers.
    pub policy: FlowPolicy,
    /// Queue bytes at which the policy acts (0: the service's default).
    pub high_water: u64,
    /// Queue bytes below which blocked publishers resume (0: half the high-water mark).
    pub low_water: u64,
    /// The only identity that may consume it (`None`: any authenticated identity).
    pub consumer: Option<String>,
}

/// A binding the server makes at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingDeclaration {
    /// The feed that receives.
    pub feed: String,
    /// The sink it listens to.
    pub sink: String,
    /// The routing-key pattern (see `docs/PROTOCOL.md`, "DMP routing").
    pub pattern: String,
}

/// The DMP service's settings.
#[derive(Debug, Clone)]
pub struct DmpConfig {
    /// How long a lease may wait for its direct connection.
    pub lease_ttl: Duration,
    /// How long the preamble and the lease may take once a direct connection opened.
    pub handshake_timeout: Duration,
    /// A direct connection idle this long gets a null message.
    pub heartbeat: Duration,
    /// A direct connection silent this long is closed as dead.
    pub dead_after: Duration,
    /// Default high-water mark of a feed's queue, in bytes.
    pub high_water: u64,
    /// Largest envelope a publisher may send (its size field).
    pub max_message_size: u32,
    /// Bytes all feeds' queues and the publishers' receive buffers hold together at most:
    /// past it every publisher pauses until they drained to three quarters of it.
    pub max_queued_bytes: u64,
    /// The largest water mark a client may declare for a feed.
    pub max_high_water: u64,
    /// Most sinks, feeds, bindings (per sink), outstanding leases and direct connections.
    pub limits: DmpLimits,
    /// Set when direct connections must not be granted, with the reason (for example a
    /// server that requires TLS: direct connections run in clear text).
    pub refuse_direct: Option<String>,
    /// Declared at start.
    pub sinks: Vec<SinkDeclaration>,
    /// Declared at start.
    pub feeds: Vec<FeedDeclaration>,
    /// Made at start.
    pub bindings: Vec<BindingDeclaration>,
}

/// Bounds of what clients may make a server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmpLimits {
    /// Sinks.
    pub sinks: usize,
    /// Feeds.
    pub feeds: usize,
    /// Bindings of one sink.
    pub bindings_per_sink: usize,
    /// Leases granted and not yet used or expired.
    pub leases: usize,
    /// Open direct connections.
    pub direct_connections: usize,
    /// Direct connections before their lease (header and lease not yet read).
    pub handshakes: usize,
    /// Sinks and feeds one application (nexus) may declare.
    pub entities_per_app: usize,
    /// Leases one application may hold unused.
    pub leases_per_app: usize,
}

impl Default for DmpLimits {
    fn default() -> Self {
        DmpLimits {
            sinks: 1024,
            feeds: 1024,
            bindings_per_sink: 256,
            leases: 4096,
            direct_connections: 4096,
            handshakes: 256,
            entities_per_app: 64,
            leases_per_app: 64,
        }
    }
}

impl Default for DmpConfig {
    fn default() -> Self {
        DmpConfig {
            lease_ttl: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            high_water: DEFAULT_HIGH_WATER,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_queued_bytes: DEFAULT_MAX_QUEUED,
            max_high_water: 64 << 20,
            limits: DmpLimits::default(),
            refuse_direct: None,
            sinks: Vec::new(),
            feeds: Vec::new(),
            bindings: Vec::new(),
        }
    }
}

impl DmpConfig {
    /// Checks that the settings can work: timers in sane ranges (and a peer heard at
    /// least twice before it counts as dead), budgets and limits above zero.
    pub fn validate(&self) -> Result<(), String> {
        let hour = Duration::from_secs(3600);
        let ms = Duration::from_millis(10);
        if !(ms..=hour).contains(&self.heartbeat) {
            return Err(format!("heartbeat {:?}: 10 ms to 1 h", self.heartbeat));
        }
        if self.dead_after < 2 * self.heartbeat || self.dead_after > 24 * hour {
            return Err(format!(
                "dead_after {:?}: at least twice the heartbeat ({:?}), at most a day",
                self.dead_after, self.heartbeat
            ));
        }
        if !(ms..=24 * hour).contains(&self.lease_ttl)
            || !(ms..=hour).contains(&self.handshake_timeout)
        {
            return Err("lease_ttl 10 ms to a day, handshake_timeout 10 ms to 1 h".into());
        }
        if self.max_queued_bytes < 1 << 20 || self.max_message_size < 64 {
            return Err("max_queued at least 1 MiB, max_message_size at least 64 bytes".into());
        }
        let l = &self.limits;
        if [
            l.sinks,
            l.feeds,
            l.bindings_per_sink,
            l.leases,
            l.direct_connections,
            l.handshakes,
            l.entities_per_app,
            l.leases_per_app,
        ]
        .contains(&0)
        {
            return Err("every limit is at least 1".into());
        }
        Ok(())
    }

    /// The high- and low-water marks a feed gets for the ones asked (0: defaults); the
    /// low mark is below the high one.
    pub fn water_marks(&self, high: u64, low: u64) -> (u64, u64) {
        let high = if high == 0 { self.high_water } else { high }.max(1);
        let low = if low == 0 || low >= high {
            high / 2
        } else {
            low
        };
        (high, low)
    }
}
