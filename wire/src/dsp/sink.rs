//! Where payload fields are written: a byte counter (to size the header before writing
//! it), or a tee into the output buffer and the digest at once (so any `BufMut` works,
//! without reading back what was written).

use crate::xxh3::Hasher64;
use bytes::BufMut;

/// Receives encoded payload bytes.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn put_u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn put_u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
}

/// Counts bytes.
#[derive(Debug, Default)]
pub(crate) struct Count(pub(crate) usize);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// Writes into a `BufMut`, feeding the digest on the way when there is one.
pub(crate) struct Tee<'o, B> {
    pub(crate) out: &'o mut B,
    pub(crate) digest: Option<Hasher64>,
}

impl<B: BufMut> Sink for Tee<'_, B> {
    fn put(&mut self, bytes: &[u8]) {
        self.out.put_slice(bytes);
        if let Some(d) = &mut self.digest {
            d.update(bytes);
        }
    }
}

/// Writes into a fixed slice, remembering whether it overflowed (never panics).
pub(crate) struct SliceSink<'o> {
    pub(crate) buf: &'o mut [u8],
    pub(crate) len: usize,
    pub(crate) overflow: bool,
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.overflow = true,
        }
    }
}
