//! DMP wiring: the bodies of the DSP exchanges with which a client, over its nexus,
//! declares and deletes message sinks and feeds, binds feeds to sinks, and asks for the
//! leases of direct connections (the seed's `Direct.Put` / `Direct.Get`).
//!
//! The seed forks DMP connections off an AMQP connection that "performs authentication and
//! wiring"; in hawser the nexus does both, and these messages are the wiring. Every message
//! is binary and big-endian, and starts with a one-byte tag that names its kind ([`WiringKind`]).
//! Each request is answered by one answer; a refusal travels as a DSP remote exception, not
//! as a wiring message. Names, patterns and leases are AMQP short strings ([`ShortStr`]).
//! Decoders take a whole body, borrow from it (nothing is allocated), never panic, and
//! answer bad input with a [`WiringError`]; encoders write into any [`bytes::BufMut`] and
//! cannot fail. The bytes are specified in `docs/PROTOCOL.md` ("DMP wiring exchanges").
//!
//! | request (client → server) | tag | answer (server → client) | tag |
//! |---|---|---|---|
//! | [`DeclareSink`] | `01` | [`Declared`] | `81` |
//! | [`DeclareFeed`] | `02` | [`Declared`] | `81` |
//! | [`Delete`] | `03` | [`Done`] | `80` |
//! | [`Bind`] | `04` | [`Done`] | `80` |
//! | [`Unbind`] | `05` | [`Done`] | `80` |
//! | [`Put`] | `06` | [`PutOk`] | `86` |
//! | [`Get`] | `07` | [`GetOk`] | `87` |
//!
//! ```
//! use hawser_wire::dmp::ShortStr;
//! use hawser_wire::dmp::wiring::{DeclareFeed, FlowPolicy, WiringKind, request_kind};
//!
//! let declare = DeclareFeed {
//!     name: ShortStr::text("f1").unwrap(),
//!     durable: false,
//!     policy: FlowPolicy::Block,
//!     high_water: 1 << 20,
//!     low_water: 512 << 10,
//! };
//! let mut body = Vec::new();
//! declare.encode(&mut body);
//! assert_eq!(body.len(), 1 + 3 + 1 + 1 + 8 + 8);
//!
//! // A server dispatches on the tag, then decodes the whole body.
//! assert_eq!(request_kind(&body), Some(WiringKind::DeclareFeed));
//! let decoded = DeclareFeed::decode(&body).unwrap();
//! assert_eq!(decoded, declare);
//! assert_eq!(decoded.name.as_bytes(), b"f1"); // borrowed from `body`
//! ```

mod bind;
mod declare;
mod delete;
mod done;
mod error;
mod lease;
#[cfg(test)]
mod tests;

pub use bind::{Bind, Unbind};
pub use declare::{DeclareFeed, DeclareSink, Declared, FlowPolicy, ParseFlowPolicyError};
pub use delete::{Delete, EntityKind};
pub use done::Done;
pub use error::WiringError;
pub use lease::{Get, GetOk, Put, PutOk};

use super::ShortStr;
use crate::reader::Reader;

/// The kind of a wiring message: its first byte on the wire. Requests have tags below
/// `0x80`, answers `0x80` and above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WiringKind {
    /// [`DeclareSink`]: create a sink, or check an existing one.
    DeclareSink = 0x01,
    /// [`DeclareFeed`]: create a feed, or check an existing one.
    DeclareFeed = 0x02,
    /// [`Delete`]: remove a sink or a feed.
    Delete = 0x03,
    /// [`Bind`]: route a sink's messages whose key matches a pattern to a feed.
    Bind = 0x04,
    /// [`Unbind`]: remove a binding.
    Unbind = 0x05,
    /// [`Put`]: ask for the lease of a direct connection writing to a sink.
    Put = 0x06,
    /// [`Get`]: ask for the lease of a direct connection reading a feed.
    Get = 0x07,
    /// [`Done`]: the answer to [`Delete`], [`Bind`] and [`Unbind`].
    Done = 0x80,
    /// [`Declared`]: the answer to [`DeclareSink`] and [`DeclareFeed`].
    Declared = 0x81,
    /// [`PutOk`]: the answer to [`Put`].
    PutOk = 0x86,
    /// [`GetOk`]: the answer to [`Get`].
    GetOk = 0x87,
}

impl WiringKind {
    /// Every kind, requests first, in tag order.
    pub const ALL: [Self; 11] = [
        Self::DeclareSink,
        Self::DeclareFeed,
        Self::Delete,
        Self::Bind,
        Self::Unbind,
        Self::Put,
        Self::Get,
        Self::Done,
        Self::Declared,
        Self::PutOk,
        Self::GetOk,
    ];

    /// The kind whose tag is `tag`, or `None` if no wiring message has it.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            0x01 => Self::DeclareSink,
            0x02 => Self::DeclareFeed,
            0x03 => Self::Delete,
            0x04 => Self::Bind,
            0x05 => Self::Unbind,
            0x06 => Self::Put,
            0x07 => Self::Get,
            0x80 => Self::Done,
            0x81 => Self::Declared,
            0x86 => Self::PutOk,
            0x87 => Self::GetOk,
            _ => return None,
        })
    }

    /// The kind of the message in `body`, request or answer, from its first byte.
    pub fn of(body: &[u8]) -> Option<Self> {
        body.first().copied().and_then(Self::from_tag)
    }

    /// Its tag byte.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// True for the messages a client sends.
    pub fn is_request(self) -> bool {
        self.tag() < 0x80
    }

    /// The kind of the answer a request of this kind expects; `None` for an answer.
    pub fn answer(self) -> Option<Self> {
        match self {
            Self::DeclareSink | Self::DeclareFeed => Some(Self::Declared),
            Self::Delete | Self::Bind | Self::Unbind => Some(Self::Done),
            Self::Put => Some(Self::PutOk),
            Self::Get => Some(Self::GetOk),
            Self::Done | Self::Declared | Self::PutOk | Self::GetOk => None,
        }
    }
}

/// The kind of the request in `body`, from its first byte: what a server dispatches on
/// before decoding the body with that kind's `decode`. `None` for an empty body, an
/// unknown tag, or the tag of an answer.
pub fn request_kind(body: &[u8]) -> Option<WiringKind> {
    WiringKind::of(body).filter(|kind| kind.is_request())
}

/// Reads the tag byte and checks it is `expected`.
fn expect_tag(reader: &mut Reader<'_>, expected: WiringKind) -> Result<(), WiringError> {
    let found = reader.u8().ok_or(WiringError::FieldPastEnd)?;
    if found == expected.tag() {
        Ok(())
    } else {
        Err(WiringError::WrongTag {
            expected: expected.tag(),
            found,
        })
    }
}

/// Fails with `TrailingBytes` if anything is left.
fn expect_end(reader: &Reader<'_>) -> Result<(), WiringError> {
    match reader.left() {
        0 => Ok(()),
        n => Err(WiringError::TrailingBytes(n)),
    }
}

/// Reads a short string.
fn short_str<'a>(reader: &mut Reader<'a>) -> Result<ShortStr<'a>, WiringError> {
    ShortStr::read(reader).ok_or(WiringError::FieldPastEnd)
}

/// Reads an octet whose bit 0 is a boolean and whose other bits are reserved (zero).
fn flag_octet(reader: &mut Reader<'_>, field: &'static str) -> Result<bool, WiringError> {
    let octet = reader.u8().ok_or(WiringError::FieldPastEnd)?;
    match octet & !1 {
        0 => Ok(octet & 1 == 1),
        bits => Err(WiringError::ReservedBits { field, bits }),
    }
}
