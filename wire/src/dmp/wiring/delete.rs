//! `Delete`: remove a sink or a feed; answered by `Done`.

use std::fmt;

use bytes::BufMut;

use super::{ShortStr, WiringError, WiringKind, expect_end, expect_tag, short_str};
use crate::reader::Reader;

/// What a [`Delete`] names: a sink or a feed (they have separate namespaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// A sink, where Put connections write. Wire value 0.
    Sink,
    /// A feed, which a Get connection reads. Wire value 1.
    Feed,
}

impl EntityKind {
    /// `sink` or `feed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sink => "sink",
            Self::Feed => "feed",
        }
    }

    /// Its octet on the wire.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Sink => 0,
            Self::Feed => 1,
        }
    }

    /// The kind whose octet is `value`.
    pub fn from_wire(value: u8) -> Result<Self, WiringError> {
        match value {
            0 => Ok(Self::Sink),
            1 => Ok(Self::Feed),
            other => Err(WiringError::UnknownEntityKind(other)),
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `tag 0x03, kind u8` (0 sink, 1 feed), `name`: removes a sink or a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delete<'a> {
    /// Sink or feed.
    pub kind: EntityKind,
    /// Its name.
    pub name: ShortStr<'a>,
}

impl<'a> Delete<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(WiringKind::Delete.tag());
        out.put_u8(self.kind.to_wire());
        self.name.encode(out);
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, WiringKind::Delete)?;
        let kind = EntityKind::from_wire(r.u8().ok_or(WiringError::FieldPastEnd)?)?;
        let name = short_str(&mut r)?;
        expect_end(&r)?;
        Ok(Self { kind, name })
    }
}
