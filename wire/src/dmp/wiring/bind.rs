//! `Bind` and `Unbind`: route a sink's messages to a feed, or stop; both answered by
//! `Done`.

use bytes::BufMut;

use super::{ShortStr, WiringError, WiringKind, expect_end, expect_tag, short_str};
use crate::reader::Reader;

/// `tag 0x04, feed, sink, pattern`: messages put to `sink` whose routing key matches
/// `pattern` are also queued on `feed` (how a pattern matches is the server's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bind<'a> {
    /// The feed that receives.
    pub feed: ShortStr<'a>,
    /// The sink whose messages it receives.
    pub sink: ShortStr<'a>,
    /// Which of them, by routing key.
    pub pattern: ShortStr<'a>,
}

/// `tag 0x05, feed, sink, pattern`: removes the binding a [`Bind`] with the same three
/// strings made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unbind<'a> {
    /// The feed of the binding.
    pub feed: ShortStr<'a>,
    /// The sink of the binding.
    pub sink: ShortStr<'a>,
    /// The pattern of the binding.
    pub pattern: ShortStr<'a>,
}

/// `tag, feed, sink, pattern`.
fn encode_binding(out: &mut impl BufMut, kind: WiringKind, strings: [&ShortStr<'_>; 3]) {
    out.put_u8(kind.tag());
    for string in strings {
        string.encode(out);
    }
}

/// Reads `tag, feed, sink, pattern` and checks nothing follows.
fn decode_binding(body: &[u8], kind: WiringKind) -> Result<[ShortStr<'_>; 3], WiringError> {
    let mut r = Reader::new(body);
    expect_tag(&mut r, kind)?;
    let feed = short_str(&mut r)?;
    let sink = short_str(&mut r)?;
    let pattern = short_str(&mut r)?;
    expect_end(&r)?;
    Ok([feed, sink, pattern])
}

impl<'a> Bind<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_binding(
            out,
            WiringKind::Bind,
            [&self.feed, &self.sink, &self.pattern],
        );
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        let [feed, sink, pattern] = decode_binding(body, WiringKind::Bind)?;
        Ok(Self {
            feed,
            sink,
            pattern,
        })
    }
}

impl<'a> Unbind<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_binding(
            out,
            WiringKind::Unbind,
            [&self.feed, &self.sink, &self.pattern],
        );
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, WiringError> {
        let [feed, sink, pattern] = decode_binding(body, WiringKind::Unbind)?;
        Ok(Self {
            feed,
            sink,
            pattern,
        })
    }
}
