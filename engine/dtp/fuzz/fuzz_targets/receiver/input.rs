//! The input read as operations and their operands.

/// Operations, by bits 0–3 of the selector byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A place, then the data when flag 0 is set (else a pattern): a datagram sealed with
    /// the session's key. Flag 1: a u8 `x` follows, the session id is xored with `x + 1`
    /// (extended form: refused). Flag 2: delivered twice. Flag 3: a report is polled after.
    Sealed,
    /// A place (and data, flag 0), then `how` and its operands: the datagram sealed with
    /// another key (`how % 4 == 0`, a u8 changes byte `(how >> 2) % 32` of the key), a byte
    /// changed (1: u16 position, u8 xor mask), bytes cut off the end (2: u8, 1..=length) or
    /// added after (3: length, bytes). It must be `Unauthentic`.
    Forged,
    /// Length (255: a u16 follows), bytes: a packet as it comes (unauthentic unless its
    /// last 8 bytes happen to be the tag of the rest).
    Raw,
    /// Length (255: a u16 follows), bytes: sealed with the session's key as they are (any
    /// header, any data).
    SealedRaw,
    /// A place whose length is ignored, a count − 1 (u8), a chunk (u16, 0: 1400): datagrams
    /// of one chunk each from the place on, like a sender's first pass, to the end of the
    /// payload at most. Flag 0: sent last first; flag 1: every other one only; flag 2:
    /// 100 µs pass and a report is polled after each.
    Burst,
    /// A u16: `16 µs` times it pass, and a report is polled. Flag 0: polled twice.
    Advance,
    /// The receiver's state through `encode` and `decode`, and the target continues with
    /// `Receiver::from_state` of it. Flag 0: a u16 position and a u8 xor mask change a
    /// byte of the encoding before its checksum, the checksum is fixed, and it is decoded
    /// (flag 1: continued with, if it loads and fits, see [`Harness::decoded`]). Flag 2: a
    /// u16 position and a u8 mask change a byte of the encoding: it must not load.
    RoundTrip,
    /// Length (255: a u16 follows), bytes: `TransferState::decode` of them. Flag 0: the
    /// target continues with the state, if it loads and fits.
    DecodeRaw,
    /// Length (255: a u16 follows), bytes: `TransferState::decode` of `HDTPST01`, the
    /// bytes, and their checksum. Flag 0: the target continues with the state, if it loads
    /// and fits.
    DecodeFramed,
}

pub(crate) const OPS: [Op; 16] = [
    Op::Sealed,
    Op::Sealed,
    Op::Sealed,
    Op::Sealed,
    Op::Sealed,
    Op::Forged,
    Op::Forged,
    Op::Raw,
    Op::SealedRaw,
    Op::Burst,
    Op::Burst,
    Op::Advance,
    Op::Advance,
    Op::RoundTrip,
    Op::DecodeRaw,
    Op::DecodeFramed,
];

pub(crate) struct Input<'a>(pub(crate) &'a [u8]);

impl<'a> Input<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    /// An unsigned integer of `n` bytes (at most 8), big-endian.
    pub(crate) fn uint(&mut self, n: usize) -> u64 {
        (0..n).fold(0, |v, _| v << 8 | u64::from(self.byte()))
    }

    /// A length: one byte, or 255 and a u16.
    pub(crate) fn length(&mut self) -> usize {
        match self.byte() {
            255 => self.uint(2) as usize,
            n => usize::from(n),
        }
    }
}
