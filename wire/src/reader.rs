//! A borrowed, bounds-checked cursor over `&[u8]` (the rustls `codec::Reader` idea).
//!
//! Every decoder in this crate reads through a [`Reader`], so no decoder indexes a slice
//! directly and none can panic on short input: a read past the end returns `None`, and the
//! decoder turns that into its own "need more bytes" or "truncated" answer.

/// A cursor over a borrowed byte slice. Reads advance the cursor; nothing is copied.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, offset: 0 }
    }

    /// Bytes consumed so far.
    pub fn used(&self) -> usize {
        self.offset
    }

    /// Bytes not yet consumed.
    pub fn left(&self) -> usize {
        self.buf.len() - self.offset
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// The unread remainder, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.offset..]
    }

    /// Consumes and returns the next `len` bytes, or `None` if fewer remain.
    pub fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.left() < len {
            return None;
        }
        let out = &self.buf[self.offset..self.offset + len];
        self.offset += len;
        Some(out)
    }

    /// Consumes everything that is left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let out = self.rest();
        self.offset = self.buf.len();
        out
    }

    /// Looks at the next `len` bytes without consuming them.
    pub fn peek(&self, len: usize) -> Option<&'a [u8]> {
        self.rest().get(..len)
    }

    /// Consumes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }

    /// Consumes one octet.
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    /// Consumes a big-endian (network order) `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    /// Consumes a big-endian (network order) `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    /// Consumes a big-endian (network order) `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// Consumes a length-prefixed byte string whose length is one octet (an AMQP short
    /// string, for example).
    pub fn short_bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    /// Consumes a byte string whose length is a big-endian `u16`.
    pub fn u16_bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// Consumes a byte string whose length is a big-endian `u32`.
    pub fn u32_bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_network_order_and_stops_at_the_end() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u32(), Some(0x0304_0506));
        assert_eq!(r.used(), 6);
        assert_eq!(r.u16(), None, "a short read must fail, not panic");
        assert_eq!(r.u8(), Some(0x07));
        assert!(r.is_empty());
    }

    #[test]
    fn length_prefixed_strings_are_bounds_checked() {
        let mut r = Reader::new(&[3, b'a', b'b', b'c', 9, b'x']);
        assert_eq!(r.short_bytes(), Some(&b"abc"[..]));
        assert_eq!(r.short_bytes(), None);
    }
}
