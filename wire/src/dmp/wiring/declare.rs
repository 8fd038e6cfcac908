//! `DeclareSink` and `DeclareFeed`: create a sink or a feed (or check that it exists with
//! the same settings); both are answered by `Declared`.

use std::fmt;
use std::str::FromStr;

use bytes::BufMut;

use super::{ShortStr, WiringError, WiringKind, expect_end, expect_tag, flag_octet, short_str};
use crate::reader::Reader;

/// `tag 0x01, name, flags u8` (bit 0 durable, other bits reserved): declares a sink, where
/// Put connections write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeclareSink<'a> {
    /// The sink's name.
    pub name: ShortStr<'a>,
    /// The sink outlives its client; otherwise it goes when the last of the client's
    /// connections (nexus or direct) closes, the seed's lifespan-tied entity.
    pub durable: bool,
}

impl<'a> DeclareSink<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(WiringKind::DeclareSink.tag());
        self.name.encode(out);
        out.put_u8(u8::from(self.durable));
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, WiringKind::DeclareSink)?;
        let name = short_str(&mut r)?;
        let durable = flag_octet(&mut r, "flags")?;
        expect_end(&r)?;
        Ok(Self { name, durable })
    }
}

/// What a feed does when its queued bytes reach the high-water mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowPolicy {
    /// Take no more messages until the queue falls to the low-water mark. Wire value 0.
    Block,
    /// Drop the oldest queued messages to make room. Wire value 1.
    DropOldest,
    /// Close the feed's Get connection. Wire value 2.
    Disconnect,
}

impl FlowPolicy {
    /// Every policy, in wire order.
    pub const ALL: [Self; 3] = [Self::Block, Self::DropOldest, Self::Disconnect];

    /// Its name: `block`, `drop-oldest` or `disconnect` (what [`FromStr`] takes).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::DropOldest => "drop-oldest",
            Self::Disconnect => "disconnect",
        }
    }

    /// Its octet on the wire.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Block => 0,
            Self::DropOldest => 1,
            Self::Disconnect => 2,
        }
    }

    /// The policy whose octet is `value`.
    pub fn from_wire(value: u8) -> Result<Self, WiringError> {
        Ok(match value {
            0 => Self::Block,
            1 => Self::DropOldest,
            2 => Self::Disconnect,
            other => return Err(WiringError::UnknownPolicy(other)),
        })
    }
}

impl fmt::Display for FlowPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`FlowPolicy`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown flow policy (expected block, drop-oldest or disconnect)")]
pub struct ParseFlowPolicyError;

impl FromStr for FlowPolicy {
    type Err = ParseFlowPolicyError;

    /// Takes the names [`FlowPolicy::as_str`] gives, exactly (lower case).
    fn from_str(s: &str) -> Result<Self, ParseFlowPolicyError> {
        Self::ALL
            .into_iter()
            .find(|policy| policy.as_str() == s)
            .ok_or(ParseFlowPolicyError)
    }
}

/// `tag 0x02, name, flags u8` (bit 0 durable, other bits reserved), `policy u8,
/// high_water u64, low_water u64`: declares a feed, which a Get connection reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeclareFeed<'a> {
    /// The feed's name.
    pub name: ShortStr<'a>,
    /// The feed outlives its client; otherwise it goes when the last of the client's
    /// connections (nexus or direct) closes, the seed's lifespan-tied entity.
    pub durable: bool,
    /// What happens when the queued bytes reach `high_water`.
    pub policy: FlowPolicy,
    /// Queued bytes at which `policy` applies; 0 asks for the server's default.
    pub high_water: u64,
    /// Queued bytes below which a blocked feed takes messages again; 0 asks for the
    /// server's default.
    pub low_water: u64,
}

impl<'a> DeclareFeed<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(WiringKind::DeclareFeed.tag());
        self.name.encode(out);
        out.put_u8(u8::from(self.durable));
        out.put_u8(self.policy.to_wire());
        out.put_u64(self.high_water);
        out.put_u64(self.low_water);
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, WiringKind::DeclareFeed)?;
        let name = short_str(&mut r)?;
        let durable = flag_octet(&mut r, "flags")?;
        let policy = FlowPolicy::from_wire(r.u8().ok_or(WiringError::FieldPastEnd)?)?;
        let high_water = r.u64().ok_or(WiringError::FieldPastEnd)?;
        let low_water = r.u64().ok_or(WiringError::FieldPastEnd)?;
        expect_end(&r)?;
        Ok(Self {
            name,
            durable,
            policy,
            high_water,
            low_water,
        })
    }
}

/// `tag 0x81, created u8` (0 or 1; other values refused): the answer to [`DeclareSink`]
/// and [`DeclareFeed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Declared {
    /// True if the declaration created the entity; false if it existed already with the
    /// same settings (different settings are refused with a remote exception).
    pub created: bool,
}

impl Declared {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(WiringKind::Declared.tag());
        out.put_u8(u8::from(self.created));
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, WiringError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, WiringKind::Declared)?;
        let created = flag_octet(&mut r, "created")?;
        expect_end(&r)?;
        Ok(Self { created })
    }
}
