//! The fixed 32-byte frame header: layout, validation and checksum.

use std::fmt;

use crate::xxh3::hash64;

use super::DspError;
use crate::reader::Reader;

/// The two magic bytes every frame starts with: `HW`.
pub const MAGIC: u16 = 0x4857;
/// The frame format version this implementation writes and accepts.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Length of the optional payload digest trailer (xxh3-64, big-endian).
pub const DIGEST_LEN: usize = 8;
/// Bytes covered by the header checksum (everything before it).
const CHECKSUMMED_LEN: usize = 28;

/// Header flag bits (header bytes 4..6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// The body is an lz4 block preceded by its uncompressed length.
    pub const COMPRESSED: Flags = Flags(1 << 0);
    /// An 8-byte xxh3-64 digest of the payload (as sent) follows the payload.
    pub const DIGEST: Flags = Flags(1 << 1);
    /// The frame belongs to the backchannel (a server-initiated request, or the answer to
    /// one). Clear: the fore channel.
    pub const BACKCHANNEL: Flags = Flags(1 << 2);
    /// The request must be delivered in send order; its payload carries an order number.
    pub const ORDERED: Flags = Flags(1 << 3);
    /// Every bit this version defines; the others are reserved and must be 0.
    pub const KNOWN: Flags = Flags(0x000f);

    /// No flag set.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the bits of `other` set (`on`) or cleared.
    #[must_use]
    pub const fn with(self, other: Flags, on: bool) -> Flags {
        if on {
            Flags(self.0 | other.0)
        } else {
            Flags(self.0 & !other.0)
        }
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

macro_rules! frame_kinds {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        /// The frame kind (header byte 3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum FrameKind {
            $($(#[$doc])* $name = $code,)*
        }

        impl FrameKind {
            /// Every kind, in code order.
            pub const ALL: &'static [FrameKind] = &[$(FrameKind::$name,)*];

            /// The kind with this code, if it is one.
            pub const fn from_u8(code: u8) -> Option<FrameKind> {
                match code {
                    $($code => Some(FrameKind::$name),)*
                    _ => None,
                }
            }

            /// The kind's name as written in the specification.
            pub const fn name(self) -> &'static str {
                match self {
                    $(FrameKind::$name => stringify!($name),)*
                }
            }
        }
    };
}

frame_kinds! {
    /// Version and capability negotiation; the first frame each side sends.
    Hello = 0x01,
    /// SASL: mechanism choice and optional initial response (client).
    Auth = 0x08,
    /// SASL: server challenge.
    AuthChallenge = 0x09,
    /// SASL: client response to a challenge.
    AuthResponse = 0x0a,
    /// SASL: outcome, with optional additional data (server).
    AuthResult = 0x0b,
    /// Create a nexus (client).
    NexusCreate = 0x10,
    /// Answer to NexusCreate (server).
    NexusCreated = 0x11,
    /// Join this connection to a nexus (client).
    BindConnection = 0x12,
    /// Answer to BindConnection (server).
    BindAck = 0x13,
    /// Reinstate a nexus that lost all its connections (client).
    NexusRecover = 0x14,
    /// Answer to NexusRecover (server).
    NexusRecovered = 0x15,
    /// Destroy a nexus (client).
    NexusDestroy = 0x16,
    /// Answer to NexusDestroy (server).
    NexusDestroyed = 0x17,
    /// An exchange request on a channel.
    Request = 0x20,
    /// A successful response.
    Response = 0x21,
    /// A failed response carrying a remote exception.
    ResponseError = 0x22,
    /// Cancel an outstanding request.
    Cancel = 0x23,
    /// Flow-control grant.
    Credit = 0x24,
    /// Liveness / round-trip probe.
    Ping = 0x30,
    /// Answer to a Ping.
    Pong = 0x31,
    /// The sender is closing the connection.
    GoAway = 0x3f,
}

impl FrameKind {
    /// The flags this kind may carry (besides DIGEST, which every kind may carry).
    pub const fn allowed_flags(self) -> Flags {
        match self {
            FrameKind::Request => Flags(
                Flags::DIGEST.0 | Flags::COMPRESSED.0 | Flags::BACKCHANNEL.0 | Flags::ORDERED.0,
            ),
            FrameKind::Response | FrameKind::ResponseError => {
                Flags(Flags::DIGEST.0 | Flags::COMPRESSED.0 | Flags::BACKCHANNEL.0)
            }
            FrameKind::Cancel | FrameKind::Credit => Flags(Flags::DIGEST.0 | Flags::BACKCHANNEL.0),
            _ => Flags::DIGEST,
        }
    }

    /// True for the kinds that use the slot, sequence and request id header fields; on
    /// every other kind they must be 0.
    pub const fn uses_exchange_fields(self) -> bool {
        matches!(
            self,
            FrameKind::Request | FrameKind::Response | FrameKind::ResponseError | FrameKind::Cancel
        )
    }

    /// True for the kinds whose body may be lz4-compressed.
    pub const fn compressible(self) -> bool {
        self.allowed_flags().contains(Flags::COMPRESSED)
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded (or to-be-encoded) frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame kind.
    pub kind: FrameKind,
    /// The flag bits.
    pub flags: Flags,
    /// Nexus-relative slot id (exchange kinds), else 0.
    pub slot: u32,
    /// Sequence id within the slot (exchange kinds), else 0.
    pub sequence: u32,
    /// Request id (exchange kinds), else 0.
    pub request_id: u64,
    /// Payload length as sent: excludes the header and the digest trailer.
    pub payload_len: u32,
}

impl FrameHeader {
    /// Length of the whole frame on the wire: header, payload and digest trailer.
    pub fn frame_len(&self) -> usize {
        let trailer = if self.flags.contains(Flags::DIGEST) {
            DIGEST_LEN
        } else {
            0
        };
        usize::try_from(self.payload_len)
            .unwrap_or(usize::MAX)
            .saturating_add(HEADER_LEN + trailer)
    }

    /// True when a digest trailer follows the payload.
    pub fn has_digest(&self) -> bool {
        self.flags.contains(Flags::DIGEST)
    }

    /// True when the body is lz4-compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags.contains(Flags::COMPRESSED)
    }

    /// The 32 header bytes, checksum included.
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        encode_header(self, &mut out);
        out
    }
}

/// Writes `header` as 32 bytes, computing the header checksum. This is the primitive for
/// header-only encoding: a large body can then be sent from where it lies, by vectored
/// write, followed by [`payload_digest`](super::payload_digest) when DIGEST is set.
///
/// Nothing is validated: the caller owns the consistency of kind, flags and length.
#[inline]
pub fn encode_header(header: &FrameHeader, out: &mut [u8; HEADER_LEN]) {
    let mut w: &mut [u8] = out;
    // Writing 32 bytes into a 32-byte array cannot run out of room.
    use bytes::BufMut as _;
    w.put_u16(MAGIC);
    w.put_u8(VERSION);
    w.put_u8(header.kind as u8);
    w.put_u16(header.flags.bits());
    w.put_u16(0);
    w.put_u32(header.slot);
    w.put_u32(header.sequence);
    w.put_u64(header.request_id);
    w.put_u32(header.payload_len);
    let checksum = header_checksum(out.first_chunk::<CHECKSUMMED_LEN>());
    if let Some(tail) = out.last_chunk_mut::<4>() {
        *tail = checksum.to_be_bytes();
    }
}

/// The header checksum: the low 32 bits of xxh3-64 over header bytes 0..28. Cheap, and
/// it catches a corrupted length before anything trusts it.
fn header_checksum(bytes: Option<&[u8; CHECKSUMMED_LEN]>) -> u32 {
    // The caller always has the 28 bytes (it holds a 32-byte header); `None` cannot occur.
    let bytes: &[u8] = bytes.map_or(&[], |b| b.as_slice());
    // Truncation to the low half is the definition of the checksum.
    #[allow(clippy::cast_possible_truncation)]
    let low = hash64(bytes) as u32;
    low
}

/// Looks at the start of `buf` and returns the validated header once its 32 bytes are
/// there, so a receive loop can size its next read to [`FrameHeader::frame_len`].
///
/// `Ok(None)`: fewer than 32 bytes (but if two bytes are there and are not `HW`, the
/// answer is already [`DspError::BadMagic`]). Every header check is done here, including
/// `payload_len <= max_payload`, so nothing is ever allocated for an oversized frame.
#[inline]
pub fn peek_header(buf: &[u8], max_payload: u32) -> Result<Option<FrameHeader>, DspError> {
    if let Some(magic) = buf.first_chunk::<2>()
        && u16::from_be_bytes(*magic) != MAGIC
    {
        return Err(DspError::BadMagic);
    }
    match buf.first_chunk::<HEADER_LEN>() {
        Some(bytes) => parse_header(bytes, max_payload).map(Some),
        None => Ok(None),
    }
}

/// Validates the 32 header bytes. The order of the checks is part of the specification:
/// magic (wrong protocol), checksum (corruption), then the fields that a corrupt header
/// could otherwise have faked.
#[inline]
pub fn parse_header(bytes: &[u8; HEADER_LEN], max_payload: u32) -> Result<FrameHeader, DspError> {
    let mut r = Reader::new(bytes);
    // The reader cannot run short on a 32-byte array; the defaults are never used.
    let magic = r.u16().unwrap_or_default();
    let version = r.u8().unwrap_or_default();
    let kind = r.u8().unwrap_or_default();
    let flags = r.u16().unwrap_or_default();
    let reserved = r.u16().unwrap_or_default();
    let slot = r.u32().unwrap_or_default();
    let sequence = r.u32().unwrap_or_default();
    let request_id = r.u64().unwrap_or_default();
    let payload_len = r.u32().unwrap_or_default();
    let checksum = r.u32().unwrap_or_default();

    if magic != MAGIC {
        return Err(DspError::BadMagic);
    }
    if header_checksum(bytes.first_chunk::<CHECKSUMMED_LEN>()) != checksum {
        return Err(DspError::HeaderChecksum);
    }
    if version != VERSION {
        return Err(DspError::UnsupportedVersion(version));
    }
    if flags & !Flags::KNOWN.bits() != 0 {
        return Err(DspError::ReservedFlags(flags));
    }
    if reserved != 0 {
        return Err(DspError::ReservedField(reserved));
    }
    let kind = FrameKind::from_u8(kind).ok_or(DspError::UnknownKind(kind))?;
    let not_allowed = flags & !kind.allowed_flags().bits();
    if not_allowed != 0 {
        return Err(DspError::FlagNotAllowed {
            kind,
            flags: not_allowed,
        });
    }
    if !kind.uses_exchange_fields() && (slot != 0 || sequence != 0 || request_id != 0) {
        return Err(DspError::HeaderFieldNotZero(kind));
    }
    if payload_len > max_payload {
        return Err(DspError::TooLong {
            len: payload_len,
            max: max_payload,
        });
    }
    Ok(FrameHeader {
        kind,
        flags: Flags(flags),
        slot,
        sequence,
        request_id,
        payload_len,
    })
}
