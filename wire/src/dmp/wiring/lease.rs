//! `Put` / `PutOk` and `Get` / `GetOk`: the seed's `Direct` class. The lease an answer
//! carries is what the client presents as the command of a direct connection
//! ([`Command`](crate::dmp::Command)).

use bytes::BufMut;

use super::{ShortStr, WiringError, WiringKind, expect_end, expect_tag, short_str};
use crate::reader::Reader;

/// `tag, short string`: the one shape of the four lease messages.
fn encode_one(out: &mut impl BufMut, kind: WiringKind, string: &ShortStr<'_>) {
    out.put_u8(kind.tag());
    string.encode(out);
}

/// Reads `tag, short string` and checks nothing follows.
fn decode_one(body: &[u8], kind: WiringKind) -> Result<ShortStr<'_>, WiringError> {
    let mut r = Reader::new(body);
    expect_tag(&mut r, kind)?;
    let string = short_str(&mut r)?;
    expect_end(&r)?;
    Ok(string)
}

/// `tag 0x06, sink`: asks for a lease to write to a sink over a direct connection (the
/// seed's `Direct.Put`; sinks are not exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Put<'a> {
    /// The sink's name; it must exist.
    pub sink: ShortStr<'a>,
}

impl<'a> Put<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_one(out, WiringKind::Put, &self.sink);
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        decode_one(body, WiringKind::Put).map(|sink| Self { sink })
    }
}

/// `tag 0x86, lease`: the answer to [`Put`] (the seed's `Direct.Put-Ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PutOk<'a> {
    /// What the client presents on the direct connection.
    pub lease: ShortStr<'a>,
}

impl<'a> PutOk<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_one(out, WiringKind::PutOk, &self.lease);
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        decode_one(body, WiringKind::PutOk).map(|lease| Self { lease })
    }
}

/// `tag 0x07, feed`: asks for a lease to read a feed over a direct connection (the seed's
/// `Direct.Get`; a feed has at most one reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Get<'a> {
    /// The feed's name; it must exist.
    pub feed: ShortStr<'a>,
}

impl<'a> Get<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_one(out, WiringKind::Get, &self.feed);
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        decode_one(body, WiringKind::Get).map(|feed| Self { feed })
    }
}

/// `tag 0x87, lease`: the answer to [`Get`] (the seed's `Direct.Get-Ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GetOk<'a> {
    /// What the client presents on the direct connection.
    pub lease: ShortStr<'a>,
}

impl<'a> GetOk<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_one(out, WiringKind::GetOk, &self.lease);
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        decode_one(body, WiringKind::GetOk).map(|lease| Self { lease })
    }
}
