//! Configuration: per-channel attributes, timers, and the client and server settings.

use std::sync::Arc;
use std::time::Duration;

use super::auth::{ClientCredentials, ServerCredentials};
use super::budget::ReceiveBudget;
use super::throttle::ThrottleConfig;

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
    /// The handshake (hello, authentication, nexus create/bind) must finish within this.
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

/// Settings of a [`Client`](super::Client).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client identity: a server holds a second nexus for one identity until the
    /// first is reinstated or expired.
    pub identity: String,
    /// How this client authenticates each connection.
    pub credentials: ClientCredentials,
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
}

impl ClientConfig {
    /// Defaults for `identity` with the given credentials.
    pub fn new(identity: impl Into<String>, credentials: ClientCredentials) -> Self {
        ClientConfig {
            identity: identity.into(),
            credentials,
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
        }
    }
}

/// Settings of a [`Server`](super::Server).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How connections must authenticate.
    pub credentials: ServerCredentials,
    /// Upper limits for the fore channel attributes clients may ask for.
    pub fore_limits: ChannelAttributes,
    /// Upper limits for the backchannel attributes.
    pub back_limits: ChannelAttributes,
    /// How long a nexus survives without any connection.
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
    /// The bytes of large frames the server holds while they arrive and until they are
    /// answered, over all connections (see [`ReceiveBudget`]); share one budget between
    /// the endpoints of one server. `None`: unbounded.
    pub receive_budget: Option<Arc<ReceiveBudget>>,
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
            receive_budget: Some(ReceiveBudget::new(DEFAULT_RECEIVE_BUDGET)),
        }
    }
}
