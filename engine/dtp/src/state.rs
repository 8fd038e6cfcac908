//! A receiver's transfer state as bytes: what a client journals so that a transfer
//! interrupted (or killed) resumes with only what is missing.
//!
//! `"HDTPST02"`, session id (u32), total size (u64), datagram form (u8), the intervals
//! asked for and the intervals received (each: count u32, then offset u64 and length
//! u64 per interval, canonical), the digests of complete blocks (count u32, then block
//! number u64 and xxh3-64 u64, ascending, each block received whole), then an XXH3-64 of
//! everything before it. Big-endian.

use hawser_wire::dtp::{DatagramForm, Interval, IntervalSet};

use crate::digest::BlockDigests;

const MAGIC: &[u8; 8] = b"HDTPST02";

/// What a receiver knows of its transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferState {
    /// The session.
    pub session_id: u32,
    /// The payload's size.
    pub total_size: u64,
    /// The datagrams' form.
    pub form: DatagramForm,
    /// What was asked for (empty: the whole payload).
    pub wanted: IntervalSet,
    /// What arrived.
    pub received: IntervalSet,
    /// Digests of blocks received whole (to check the disk still holds them on resume).
    pub digests: BlockDigests,
}

/// Why saved bytes do not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not a transfer state of this version.
    #[error("not a DTP transfer state (HDTPST02)")]
    NotAState,
    /// The bytes end early, or go on after the checksum.
    #[error("the transfer state is cut short or has bytes after its end")]
    Length,
    /// The checksum does not match: the file was damaged.
    #[error("the transfer state's checksum does not match (damaged)")]
    Checksum,
    /// An interval list is not canonical, or reaches past the payload.
    #[error("the transfer state's intervals are not canonical or reach past the payload")]
    Intervals,
    /// An unknown datagram form.
    #[error("unknown datagram form {0}")]
    Form(u8),
    /// The fields do not fit together: bytes received outside what was asked, or the
    /// basic form (32-bit offsets) for a payload over 4 GiB.
    #[error("the transfer state's fields contradict each other")]
    Inconsistent,
}

fn put_intervals(out: &mut Vec<u8>, set: &IntervalSet) {
    out.extend_from_slice(&(set.len() as u32).to_be_bytes());
    for i in set.as_slice() {
        out.extend_from_slice(&i.offset().to_be_bytes());
        out.extend_from_slice(&i.length().to_be_bytes());
    }
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(StateError::Length)?;
        self.0 = rest;
        Ok(*head)
    }

    fn intervals(&mut self, total: u64) -> Result<IntervalSet, StateError> {
        let count = u32::from_be_bytes(self.take()?) as usize;
        // Checked against what is left before anything is allocated.
        if count > self.0.len() / 16 {
            return Err(StateError::Length);
        }
        let mut intervals = Vec::with_capacity(count);
        for _ in 0..count {
            let offset = u64::from_be_bytes(self.take()?);
            let length = u64::from_be_bytes(self.take()?);
            let i = Interval::new(offset, length).ok_or(StateError::Intervals)?;
            if i.end() > total {
                return Err(StateError::Intervals);
            }
            intervals.push(i);
        }
        IntervalSet::from_canonical(intervals).map_err(|_| StateError::Intervals)
    }
}

impl Cursor<'_> {
    fn digests(&mut self, total: u64, received: &IntervalSet) -> Result<BlockDigests, StateError> {
        let count = u32::from_be_bytes(self.take()?) as usize;
        if count > self.0.len() / 16 {
            return Err(StateError::Length);
        }
        let mut digests = BlockDigests::new(total);
        let mut next = 0;
        for _ in 0..count {
            let block = u64::from_be_bytes(self.take()?);
            let digest = u64::from_be_bytes(self.take()?);
            let (offset, length) = digests.range(block);
            if block < next || block >= digests.len() || !received.contains(offset, length) {
                return Err(StateError::Inconsistent);
            }
            digests.set(block, digest);
            next = block + 1;
        }
        Ok(digests)
    }
}

impl TransferState {
    /// The bytes to journal.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 16 * (self.wanted.len() + self.received.len()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.session_id.to_be_bytes());
        out.extend_from_slice(&self.total_size.to_be_bytes());
        out.push(self.form as u8);
        put_intervals(&mut out, &self.wanted);
        put_intervals(&mut out, &self.received);
        let known: Vec<(u64, u64)> = self.digests.known().collect();
        out.extend_from_slice(&(known.len() as u32).to_be_bytes());
        for (block, digest) in known {
            out.extend_from_slice(&block.to_be_bytes());
            out.extend_from_slice(&digest.to_be_bytes());
        }
        let sum = twox_hash::XxHash3_64::oneshot(&out);
        out.extend_from_slice(&sum.to_be_bytes());
        out
    }

    /// Loads journaled bytes, checking everything.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        if !bytes.starts_with(MAGIC) {
            return Err(StateError::NotAState);
        }
        let body_len = bytes.len().checked_sub(8).ok_or(StateError::Length)?;
        let (body, sum) = bytes.split_at(body_len);
        let sum = u64::from_be_bytes(sum.try_into().map_err(|_| StateError::Length)?);
        if twox_hash::XxHash3_64::oneshot(body) != sum {
            return Err(StateError::Checksum);
        }
        let mut c = Cursor(&body[MAGIC.len()..]);
        let session_id = u32::from_be_bytes(c.take()?);
        let total_size = u64::from_be_bytes(c.take()?);
        let [form] = c.take()?;
        let form = DatagramForm::from_number(form).ok_or(StateError::Form(form))?;
        let wanted = c.intervals(total_size)?;
        let received = c.intervals(total_size)?;
        let digests = c.digests(total_size, &received)?;
        if !c.0.is_empty() {
            return Err(StateError::Length);
        }
        let outside_wanted = !wanted.is_empty()
            && received
                .as_slice()
                .iter()
                .any(|i| !wanted.contains(i.offset(), i.length()));
        let basic_too_large =
            form == DatagramForm::Basic && total_size > DatagramForm::BASIC_MAX_PAYLOAD;
        if outside_wanted || basic_too_large {
            return Err(StateError::Inconsistent);
        }
        Ok(TransferState {
            session_id,
            total_size,
            form,
            wanted,
            received,
            digests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(pairs: &[(u64, u64)]) -> IntervalSet {
        let mut s = IntervalSet::new();
        for &(o, l) in pairs {
            s.insert(Interval::new(o, l).unwrap());
        }
        s
    }

    /// Digests for the blocks `received` holds whole.
    fn digests_within(total: u64, received: &IntervalSet) -> BlockDigests {
        let mut d = BlockDigests::new(total);
        for block in 0..d.len() {
            let (o, l) = d.range(block);
            if received.contains(o, l) {
                d.set(block, block * 31);
            }
        }
        d
    }

    #[test]
    fn a_digest_of_a_block_not_received_whole_is_refused() {
        let mut digests = BlockDigests::new(3 << 20);
        digests.set(1, 7);
        let state = TransferState {
            session_id: 1,
            total_size: 3 << 20,
            form: DatagramForm::Basic,
            wanted: IntervalSet::new(),
            received: set(&[(1 << 20, 1 << 20)]),
            digests,
        };
        assert_eq!(TransferState::decode(&state.encode()), Ok(state.clone()));
        let short = TransferState {
            received: set(&[(1 << 20, 1000)]),
            ..state
        };
        assert_eq!(
            TransferState::decode(&short.encode()),
            Err(StateError::Inconsistent)
        );
    }

    proptest! {
        #[test]
        fn states_round_trip(
            session in any::<u32>(),
            wanted in proptest::collection::vec((0u64..1_000_000, 1u64..1000), 0..20),
            received in proptest::collection::vec((0u64..1_000_000, 1u64..1000), 0..50),
        ) {
            let wanted = set(&wanted);
            let mut received = set(&received);
            if !wanted.is_empty() {
                // What arrives lies within what was asked: received ∩ wanted.
                received = wanted.missing_within(&received).missing_within(&received);
            }
            let state = TransferState {
                session_id: session,
                total_size: 1_001_000,
                form: DatagramForm::Extended,
                wanted,
                digests: digests_within(1_001_000, &received),
                received,
            };
            prop_assert_eq!(TransferState::decode(&state.encode()), Ok(state));
        }

        #[test]
        fn damaged_bytes_never_load_silently(flip in 0usize..200, bit in 0u8..8) {
            let state = TransferState {
                session_id: 3,
                total_size: 10_000,
                form: DatagramForm::Basic,
                wanted: IntervalSet::new(),
                received: set(&[(0, 100), (500, 20), (9000, 1000)]),
                digests: BlockDigests::new(10_000),
            };
            let mut bytes = state.encode();
            let at = flip % bytes.len();
            bytes[at] ^= 1 << bit;
            prop_assert!(TransferState::decode(&bytes).is_err());
        }
    }

    #[test]
    fn states_whose_fields_contradict_each_other_are_refused() {
        let outside = TransferState {
            session_id: 1,
            total_size: 1000,
            form: DatagramForm::Basic,
            wanted: set(&[(0, 100)]),
            received: set(&[(500, 10)]),
            digests: BlockDigests::new(1000),
        };
        assert_eq!(
            TransferState::decode(&outside.encode()),
            Err(StateError::Inconsistent)
        );
        let basic_5g = TransferState {
            total_size: 5 << 30,
            wanted: IntervalSet::new(),
            received: IntervalSet::new(),
            digests: BlockDigests::new(5 << 30),
            ..outside
        };
        assert_eq!(
            TransferState::decode(&basic_5g.encode()),
            Err(StateError::Inconsistent)
        );
    }

    #[test]
    fn truncated_and_foreign_bytes_are_refused() {
        let state = TransferState {
            session_id: 3,
            total_size: 10,
            form: DatagramForm::Basic,
            wanted: IntervalSet::new(),
            received: set(&[(0, 5)]),
            digests: BlockDigests::new(10),
        };
        let bytes = state.encode();
        for cut in 0..bytes.len() {
            assert!(
                TransferState::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(
            TransferState::decode(b"something else"),
            Err(StateError::NotAState)
        );
    }
}
