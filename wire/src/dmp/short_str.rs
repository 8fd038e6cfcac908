//! AMQP short strings: one length octet, then 0–255 bytes.

use std::fmt;

use bytes::BufMut;

use crate::reader::Reader;

/// A borrowed AMQP short string (`shortstr`): at most 255 bytes, not necessarily UTF-8.
///
/// The length limit is checked when the value is built, so encoding cannot fail.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShortStr<'a>(&'a [u8]);

impl<'a> ShortStr<'a> {
    /// The longest content a short string can carry.
    pub const MAX_LEN: usize = 255;

    /// Wraps `bytes`, or `None` if it is longer than 255 bytes.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() <= Self::MAX_LEN).then_some(Self(bytes))
    }

    /// Wraps a text, or `None` if it is longer than 255 bytes.
    pub fn text(text: &'a str) -> Option<Self> {
        Self::new(text.as_bytes())
    }

    /// The content, without the length octet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Bytes on the wire: the length octet plus the content.
    pub fn encoded_len(&self) -> usize {
        1 + self.0.len()
    }

    /// Writes the length octet and the content.
    pub fn encode(&self, buf: &mut impl BufMut) {
        // The constructor guarantees the length fits one octet.
        buf.put_u8(self.0.len() as u8);
        buf.put_slice(self.0);
    }

    /// Reads a short string; on failure the reader stays at the length octet, so the
    /// caller can report the offset of the field that did not fit.
    pub(crate) fn read(reader: &mut Reader<'a>) -> Option<Self> {
        let mut probe = *reader;
        let bytes = probe.short_bytes()?;
        *reader = probe;
        Some(Self(bytes))
    }
}

impl fmt::Debug for ShortStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}
