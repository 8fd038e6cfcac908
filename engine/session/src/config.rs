//! Configuration: per-channel attributes, timers, and the client and server settings.

use std::sync::Arc;
use std::time::Duration;

use hawser_wire::dsp::ChannelAttrs;

use super::auth::{ClientCredentials, Mechanism, ServerCredentials};
use super::budget::ReceiveBudget;
use super::throttle::ThrottleConfig;
use super::tls::{ClientTls, ServerTls};
use super::types::NexusId;

/// The operational parameters of one channel, negotiated independently for the fore
/// channel and the backchannel at nexus creation: the client proposes, the server answers
/// with the field-wise minimum of the proposal and its own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelAttributes {
    /// Slots in the table: the channel's concurrency and flow-control window.
    pub slots: u32,
    /// Largest request payload, in bytes.
    pub max_request_size: u32,
    /// Largest response payload, in bytes.
    pub max_response_size: u32,
    /// Largest response the responder keeps in its per-slot reply cache. A larger reply
    /// is still delivered, but a retry after its loss gets [`CallError::ReplyNotCached`].
    ///
    /// [`CallError::ReplyNotCached`]: super::CallError::ReplyNotCached
    pub max_cached_response_size: u32,
}

impl Default for ChannelAttributes {
    fn default() -> Self {
        ChannelAttributes {
            slots: 64,
            max_request_size: 4 << 20,
            max_response_size: 4 << 20,
            max_cached_response_size: 4 << 20,
        }
    }
}

impl From<ChannelAttrs> for ChannelAttributes {
    fn from(a: ChannelAttrs) -> Self {
        ChannelAttributes {
            slots: a.slots,
            max_request_size: a.max_request_size,
            max_response_size: a.max_response_size,
            max_cached_response_size: a.max_cached_response_size,
        }
    }
}

impl From<ChannelAttributes> for ChannelAttrs {
    fn from(a: ChannelAttributes) -> Self {
        ChannelAttrs {
            slots: a.slots,
            max_request_size: a.max_request_size,
            max_response_size: a.max_response_size,
            max_cached_response_size: a.max_cached_response_size,
        }
    }
}

impl ChannelAttributes {
    /// The attributes both sides can live with: the field-wise minimum, with at least one
    /// slot and a cache no larger than the largest response.
    pub fn negotiate(&self, limits: &ChannelAttributes) -> ChannelAttributes {
        let max_response_size = self.max_response_size.min(limits.max_response_size);
        ChannelAttributes {
            slots: self.slots.min(limits.slots).max(1),
            max_request_size: self.max_request_size.min(limits.max_request_size),
            max_response_size,
            max_cached_response_size: self
                .max_cached_response_size
                .min(limits.max_cached_response_size)
                .min(max_response_size),
        }
    }
}

/// Connection timers, shared by both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Send a ping after this long without receiving anything.
    pub heartbeat_interval: Duration,
    /// Declare the connection dead after this long without receiving anything: the
    /// configured bound on dead-connection detection.
    pub dead_after: Duration,
    /// The handshake (hello, authentication, nexus create/bind) must finish within this
    /// (a held create waits on its own terms, see `docs/PROTOCOL.md`). On a server, a
    /// pristine nexus whose connections are all gone expires after this too.
    pub handshake_timeout: Duration,
    /// A frame must arrive whole within this once its first byte has (a peer that
    /// trickles a frame is closed): 60 s lets the largest frames through at 1.1 MB/s.
    pub frame_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(60),
        }
    }
}

/// What is told of the storage a large aligned frame is received into: its address and
/// capacity, once allocated and before anything arrives in it (the sans-IO session
/// cannot advise the kernel itself).
pub type StorageAdvice = fn(*const u8, usize);

/// Settings of a [`ClientEndpoint`](super::ClientEndpoint).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client identity: a server holds a second nexus for one identity until the
    /// first is reinstated or expired.
    pub identity: String,
    /// How this client authenticates each connection.
    pub credentials: ClientCredentials,
    /// Run every connection over TLS, checking the server as this says; never fall back
    /// to clear text.
    pub tls: Option<ClientTls>,
    /// The SASL mechanism to use whatever else the server offers (`None`: the strongest
    /// offered that the credentials allow).
    pub sasl_mechanism: Option<Mechanism>,
    /// Proposed fore channel attributes (client → server requests).
    pub fore: ChannelAttributes,
    /// Proposed backchannel attributes (server → client requests).
    pub back: ChannelAttributes,
    /// Ask for a payload digest (xxh3-64) on every frame.
    pub digest: bool,
    /// Offer lz4 compression of request and response payloads (each frame is sent raw
    /// when compression does not pay: small or incompressible payloads).
    pub compress: bool,
    /// Connections to keep in the trunk; lost ones are replaced.
    pub connections: usize,
    /// First delay before replacing a lost connection; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Largest delay between reconnection attempts.
    pub reconnect_max: Duration,
    /// Give up on the nexus (failing outstanding requests with `NexusLost`) when no
    /// connection could be rebound for this long.
    pub recovery_timeout: Duration,
    /// Connection timers.
    pub timers: Timers,
    /// Optional byte-rate limit on requests this client sends.
    pub throttle: Option<ThrottleConfig>,
    /// Receive large backchannel request bodies so that `body[offset..]` starts on a
    /// page boundary, for an application writing them with `O_DIRECT` (see
    /// [`ServerConfig::align_request_bodies_at`]).
    pub align_request_bodies_at: Option<usize>,
    /// Called with each aligned frame's storage (address and capacity) when it is
    /// allocated, before anything is received into it: the runtime asks for huge pages
    /// there ([`StorageAdvice`]). `None`: nothing is asked.
    pub advise_body_storage: Option<StorageAdvice>,
    /// How long the server should keep the nexus after losing every connection; it
    /// grants at most its own maximum. `None`: the server's default.
    pub grace_period: Option<Duration>,
    /// A nexus of this identity left behind by an earlier run (a process that died):
    /// before creating its own, the client recovers it and destroys it, so that the
    /// server does not hold the create for its grace period. Nothing of the old nexus's
    /// work is kept. If the server no longer knows it, the client just creates.
    pub replace: Option<NexusId>,
}

impl ClientConfig {
    /// Defaults for `identity` with the given credentials.
    pub fn new(identity: impl Into<String>, credentials: ClientCredentials) -> Self {
        ClientConfig {
            identity: identity.into(),
            credentials,
            sasl_mechanism: None,
            tls: None,
            fore: ChannelAttributes::default(),
            back: ChannelAttributes::default(),
            digest: true,
            compress: false,
            connections: 4,
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            recovery_timeout: Duration::from_secs(60),
            timers: Timers::default(),
            throttle: None,
            align_request_bodies_at: None,
            advise_body_storage: None,
            grace_period: None,
            replace: None,
        }
    }
}

/// What a server lets its clients use at most. Each refusal names the field, which is
/// also the key under `[limits]` in `hawser serve`'s configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Open connections from one source address (unknown addresses share one count).
    pub connections_per_address: u32,
    /// Connections that have not authenticated yet, from anyone (sshd's `MaxStartups`).
    pub handshakes_in_progress: u32,
    /// Nexuses alive at once, from everyone.
    pub nexuses: u32,
    /// Creates one identity may have held at once (an identity has at most one nexus:
    /// further creates wait for it, see [`ServerConfig::grace_period`]).
    pub held_creates_per_identity: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            connections_per_address: 64,
            handshakes_in_progress: 256,
            nexuses: 4096,
            held_creates_per_identity: 4,
        }
    }
}

/// How a server slows down guessing: failed authentications are counted per source
/// address and per identity, in tables of bounded size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthThrottleConfig {
    /// Failures answered without delay.
    pub free_failures: u32,
    /// The delay of the first answer after `free_failures` failures; each further
    /// failure doubles it.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Failed attempts per second from one source address that are checked at all;
    /// beyond that, attempts are refused unchecked.
    pub failures_per_second: u32,
    /// A source or identity without a failure for this long starts afresh.
    pub forget_after: Duration,
    /// Entries kept per table (sources, identities); the least penalised go first.
    pub table_size: usize,
}

impl Default for AuthThrottleConfig {
    fn default() -> Self {
        AuthThrottleConfig {
            free_failures: 5,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            failures_per_second: 5,
            forget_after: Duration::from_secs(15 * 60),
            table_size: 4096,
        }
    }
}

/// Settings of a [`ServerEndpoint`](super::ServerEndpoint).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How connections must authenticate.
    pub credentials: ServerCredentials,
    /// Upper limits for the fore channel attributes clients may ask for.
    pub fore_limits: ChannelAttributes,
    /// Upper limits for the backchannel attributes.
    pub back_limits: ChannelAttributes,
    /// How long a nexus survives without any connection: the default, and the most a
    /// client may ask for. A pristine nexus (nothing ever ran) expires after the
    /// handshake timeout instead.
    pub grace_period: Duration,
    /// Accept lz4 compression when a client offers it.
    pub compress: bool,
    /// Connection timers.
    pub timers: Timers,
    /// Optional byte-rate limit on backchannel requests, per nexus.
    pub throttle: Option<ThrottleConfig>,
    /// Receive each uncompressed request body of 256 KiB or more so that
    /// `body[offset..]` starts on a page (4096-byte) boundary: an application writing the
    /// data after an `offset`-byte header of its own with `O_DIRECT` can then write it from
    /// where it arrived. The driver receives into the frame's storage anyway; this only
    /// chooses where that storage starts.
    pub align_request_bodies_at: Option<usize>,
    /// Called with each aligned frame's storage (address and capacity) when it is
    /// allocated, before anything is received into it: the runtime asks for huge pages
    /// there ([`StorageAdvice`]). `None`: nothing is asked.
    pub advise_body_storage: Option<StorageAdvice>,
    /// The bytes of large frames the server holds while they arrive and until they are
    /// answered, over all connections (see [`ReceiveBudget`]); share one budget between
    /// the endpoints of one server. `None`: unbounded.
    pub receive_budget: Option<Arc<ReceiveBudget>>,
    /// Connection and nexus limits.
    pub limits: ServerLimits,
    /// Throttling of failed authentications.
    pub auth_throttle: AuthThrottleConfig,
    /// TLS offered to clients (and required, if it says so).
    pub tls: Option<ServerTls>,
    /// Refuse a connection whose Hello carries no route: the server runs on several
    /// shards and places each connection on the shard of its identity's nexuses.
    pub requires_route: bool,
}

/// The receive budget of a server unless configured: enough for several jobs with 8 MiB
/// blocks in flight on a long fat link.
pub const DEFAULT_RECEIVE_BUDGET: usize = 512 << 20;

impl ServerConfig {
    /// Defaults with the given credentials.
    pub fn new(credentials: ServerCredentials) -> Self {
        ServerConfig {
            credentials,
            fore_limits: ChannelAttributes::default(),
            back_limits: ChannelAttributes::default(),
            grace_period: Duration::from_secs(120),
            compress: true,
            timers: Timers::default(),
            throttle: None,
            align_request_bodies_at: None,
            advise_body_storage: None,
            receive_budget: Some(ReceiveBudget::new(DEFAULT_RECEIVE_BUDGET)),
            limits: ServerLimits::default(),
            tls: None,
            requires_route: false,
            auth_throttle: AuthThrottleConfig::default(),
        }
    }
}
