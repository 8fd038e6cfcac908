//! Small value types carried in DSP payloads.

use std::fmt;

use super::{DspError, FrameKind};
use crate::reader::Reader;

/// Which channel of the nexus an exchange frame belongs to (the BACKCHANNEL flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Channel {
    /// Requests from the client to the server, and their responses.
    #[default]
    Fore,
    /// Requests from the server to the client, and their responses.
    Back,
}

/// A nexus id: 128 bits chosen by the server (random), independent of connections, so it
/// stays unique across server restarts without coordination and cannot be guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NexusId(pub [u8; 16]);

impl NexusId {
    /// The id as a 128-bit integer (big-endian, as on the wire).
    pub const fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The id of a 128-bit integer (big-endian, as on the wire).
    pub const fn from_u128(id: u128) -> Self {
        NexusId(id.to_be_bytes())
    }
}

impl fmt::Display for NexusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.to_u128())
    }
}

/// The operational parameters of one channel (16 bytes on the wire). Proposed by the
/// client in NexusCreate, answered by the server in NexusCreated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChannelAttrs {
    /// Slots in the slot table: the channel's concurrency and flow-control window.
    pub slots: u32,
    /// Largest request payload (uncompressed), in bytes.
    pub max_request_size: u32,
    /// Largest response payload (uncompressed), in bytes.
    pub max_response_size: u32,
    /// Largest response the responder keeps in its per-slot reply cache.
    pub max_cached_response_size: u32,
}

impl ChannelAttrs {
    /// Length on the wire.
    pub const LEN: usize = 16;

    pub(crate) fn put<S: super::sink::Sink>(&self, s: &mut S) {
        s.put_u32(self.slots);
        s.put_u32(self.max_request_size);
        s.put_u32(self.max_response_size);
        s.put_u32(self.max_cached_response_size);
    }

    pub(crate) fn read(r: &mut Reader<'_>, kind: FrameKind) -> Result<Self, DspError> {
        let mut field = || r.u32().ok_or(DspError::Truncated(kind));
        Ok(ChannelAttrs {
            slots: field()?,
            max_request_size: field()?,
            max_response_size: field()?,
            max_cached_response_size: field()?,
        })
    }
}

/// Which end of a connection a limit is computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that created (or joined) the nexus.
    Client,
    /// The side that accepted the connection.
    Server,
}

/// The receive limit (`max_payload` of a [`FrameDecoder`](super::FrameDecoder)) once a
/// connection is bound to a nexus with these negotiated attributes: the largest payload
/// the peer may legally send this side. Channel attributes bound bodies, so a Request may
/// exceed its limit by its fixed fields; the handshake limit stays the floor so control
/// frames always fit.
pub fn max_payload_after_bind(role: Role, fore: &ChannelAttrs, back: &ChannelAttrs) -> u32 {
    let request_fixed = super::Request::<&[u8]>::MAX_FIXED_LEN as u32;
    let (requests_in, responses_in) = match role {
        // The server receives fore-channel requests and backchannel responses.
        Role::Server => (fore.max_request_size, back.max_response_size),
        Role::Client => (back.max_request_size, fore.max_response_size),
    };
    requests_in
        .saturating_add(request_fixed)
        .max(responses_in)
        .max(super::HANDSHAKE_MAX_PAYLOAD)
}

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident($repr:ty) { $($(#[$cdoc:meta])* $const:ident = $val:literal,)* }) => {
        $(#[$doc])*
        ///
        /// Unknown values are kept as they are (the type is a transparent newtype), so a
        /// newer peer's code survives decoding and re-encoding.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub $repr);

        impl $name {
            $($(#[$cdoc])* pub const $const: $name = $name($val);)*

            /// The code's name, or `None` for a value this version does not define.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($const)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

code_type! {
    /// The outcome octet of an answer frame (AuthResult, NexusCreated, BindAck,
    /// NexusRecovered, NexusDestroyed).
    Status(u8) {
        /// Success.
        OK = 0,
        /// Refused by policy, no more specific reason.
        REFUSED = 1,
        /// Authentication failed (bad credentials or proof).
        AUTH_FAILED = 2,
        /// The SASL mechanism is not offered by the server.
        MECHANISM_UNSUPPORTED = 3,
        /// The connection has not authenticated yet.
        NOT_AUTHENTICATED = 4,
        /// No nexus with this id (never existed, expired or destroyed).
        UNKNOWN_NEXUS = 5,
        /// The nexus belongs to another client identity.
        IDENTITY_MISMATCH = 6,
        /// The proposed attributes or features cannot be served.
        BAD_ATTRIBUTES = 7,
        /// A server limit (nexus count, connections per nexus, memory) was reached.
        RESOURCE_EXHAUSTED = 8,
        /// A provisional answer to NexusCreate: the identity's previous nexus still
        /// exists, so the create waits. The nexus field names that nexus, the grace field
        /// the milliseconds until it expires (`u32::MAX`: not expiring, it has
        /// connections); the final answer follows on the same connection.
        HELD = 9,
    }
}

impl Status {
    /// True for [`Status::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }
}

code_type! {
    /// Why a connection is being closed (GoAway).
    GoAwayCode(u16) {
        /// Orderly close, no error.
        NORMAL = 0,
        /// The peer broke the protocol (unexpected frame, malformed payload).
        PROTOCOL_ERROR = 1,
        /// A header checksum or payload digest did not match.
        CORRUPT_FRAME = 2,
        /// No common protocol version.
        VERSION_MISMATCH = 3,
        /// Authentication failed.
        AUTH_FAILED = 4,
        /// Nothing was received within the heartbeat deadline.
        IDLE_TIMEOUT = 5,
        /// The sender is shutting down.
        SHUTTING_DOWN = 6,
        /// A frame exceeded the negotiated maximum.
        TOO_LARGE = 7,
        /// The nexus this connection belonged to was destroyed.
        NEXUS_DESTROYED = 8,
        /// The sender hit a local error unrelated to the peer.
        INTERNAL_ERROR = 9,
        /// A server limit (connections per address, handshakes in progress) was reached;
        /// the reason names the limit.
        RESOURCE_EXHAUSTED = 10,
    }
}

impl From<DspError> for GoAwayCode {
    /// The code to send before closing a connection whose input failed with this error.
    fn from(e: DspError) -> Self {
        match e {
            DspError::HeaderChecksum | DspError::DigestMismatch | DspError::Decompress => {
                GoAwayCode::CORRUPT_FRAME
            }
            DspError::UnsupportedVersion(_) => GoAwayCode::VERSION_MISMATCH,
            DspError::TooLong { .. }
            | DspError::DecompressedTooLong { .. }
            | DspError::PayloadTooLarge => GoAwayCode::TOO_LARGE,
            _ => GoAwayCode::PROTOCOL_ERROR,
        }
    }
}

macro_rules! bit_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$cdoc:meta])* $const:ident = $bit:literal,)* }) => {
        $(#[$doc])*
        ///
        /// Unknown bits are kept on decoding (a newer peer may set them) and ignored when
        /// negotiating: the answer is always an intersection.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub u32);

        impl $name {
            $($(#[$cdoc])* pub const $const: $name = $name(1 << $bit);)*

            /// Every bit defined by this version.
            pub const KNOWN: $name = $name(0 $(| (1 << $bit))*);

            /// True when every bit of `other` is set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// The bits set in both (the negotiation rule).
            #[must_use]
            pub const fn intersect(self, other: $name) -> $name {
                $name(self.0 & other.0)
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }
    };
}

bit_set! {
    /// What a side of a connection can do, announced in Hello.
    Capabilities {
        /// Verifies and sends payload digests (xxh3-64).
        DIGEST = 0,
        /// Decompresses and sends lz4-compressed bodies.
        LZ4 = 1,
        /// Can upgrade the connection to TLS right after Hello.
        TLS = 2,
        /// Serves or uses DTP offset-datagram transfers.
        DTP = 3,
        /// Serves or uses DMP direct-message connections.
        DMP = 4,
        /// Serves requests on the backchannel (client side) / sends them (server side).
        BACKCHANNEL = 5,
        /// A client's Hello: bits 16-31 carry its route ([`identity_route`]), which a
        /// server on several shards reads to hand the connection to the shard that holds
        /// the identity's nexuses. Never set by a server.
        ROUTED = 6,
    }
}

impl Capabilities {
    /// These capabilities with [`ROUTED`](Self::ROUTED) and `route` in bits 16-31.
    #[must_use]
    pub const fn with_route(self, route: u16) -> Self {
        Capabilities((self.0 & 0xffff) | Self::ROUTED.0 | (route as u32) << 16)
    }

    /// The route a client's Hello carries, if it carries one.
    pub const fn route(self) -> Option<u16> {
        if self.contains(Self::ROUTED) {
            Some((self.0 >> 16) as u16)
        } else {
            None
        }
    }
}

/// The route of a client identity: the low 16 bits of the xxh3-64 of its UTF-8 bytes. A
/// server on `n` shards keeps the identity's nexuses on shard `route % n`.
pub fn identity_route(identity: &str) -> u16 {
    crate::xxh3::hash64(identity.as_bytes()) as u16
}

bit_set! {
    /// Per-nexus features: requested in NexusCreate, granted in NexusCreated.
    NexusFeatures {
        /// Every frame of the nexus carries a payload digest.
        DIGEST = 0,
        /// Bodies may be lz4-compressed (each sender still skips incompressible bodies).
        COMPRESSION = 1,
        /// The backchannel is open: the server may send requests.
        BACKCHANNEL = 2,
        /// Ordered exchanges are used on this nexus.
        ORDERED = 3,
    }
}
