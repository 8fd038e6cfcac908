//! Digests of the blocks a sender's first pass sends, hashed from the datagrams as they
//! go: a push's whole-payload digest then costs no second read of the file. The first
//! pass sends the wanted bytes in offset order, so each block it sends whole is hashed in
//! order ([`InOrderHash`]); resends are bytes of earlier blocks and leave it be. Once the
//! first pass is over (or the session ends), the digests go to the transfer's owner, who
//! reads from the file only the blocks not hashed this way (a resumed transfer's, a block
//! whose bytes a resend interleaved).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::in_order::InOrderHash;
use crate::digest::BlockDigests;

/// The sending session's side: hashes what it sends until it hands the digests over.
pub(super) struct FirstPassDigests {
    in_order: InOrderHash,
    /// `None` once handed over.
    digests: Option<BlockDigests>,
}

impl FirstPassDigests {
    /// Hashes the blocks of a `total`-byte payload, if `hash`.
    pub(super) fn new(total: u64, hash: bool) -> Self {
        FirstPassDigests {
            in_order: InOrderHash::default(),
            digests: hash.then(|| BlockDigests::new(total)),
        }
    }

    /// `data` at `offset` is being sent.
    pub(super) fn on_sent(&mut self, offset: u64, data: &[u8]) {
        if let Some(digests) = self.digests.as_mut() {
            self.in_order.on_data(offset, data, digests);
        }
    }

    /// Hands the digests to `to` (once).
    pub(super) fn hand_over(&mut self, to: &SentDigests) {
        if let Some(digests) = self.digests.take() {
            to.publish(digests);
        }
    }
}

/// Where a sender's first-pass digests wait for the transfer's owner.
#[derive(Debug, Default)]
pub struct SentDigests {
    slot: Mutex<Option<BlockDigests>>,
    ready: Condvar,
}

impl SentDigests {
    fn publish(&self, digests: BlockDigests) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(digests);
        self.ready.notify_all();
    }

    /// The digests, waiting up to `timeout` for them; `None` if not handed over yet.
    pub(super) fn take(&self, timeout: Duration) -> Option<BlockDigests> {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut slot, _) = self
            .ready
            .wait_timeout_while(slot, timeout, |slot| slot.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        slot.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::BLOCK;

    /// Blocks sent whole and in order get their digest, whatever the datagram size; a
    /// block a resend interleaved, or one not sent whole, gets none.
    #[test]
    fn blocks_sent_whole_in_order_are_hashed_and_others_left_to_the_file() {
        let total = 3 * BLOCK + 1000;
        let payload: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        let mut first = FirstPassDigests::new(total, true);
        let chunk = 61_000usize;
        let mut offset = 0u64;
        while offset < total {
            let len = chunk.min((total - offset) as usize);
            // A resend of block 0's bytes in the middle of block 2: block 2 goes on.
            if offset > 2 * BLOCK && offset < 2 * BLOCK + 200_000 {
                first.on_sent(0, &payload[..1000]);
            }
            // Block 1 skips a datagram (the first pass did not want it).
            if !(offset > BLOCK && offset < BLOCK + 100_000) {
                first.on_sent(offset, &payload[offset as usize..offset as usize + len]);
            }
            offset += len as u64;
        }
        let shared = SentDigests::default();
        assert!(shared.take(Duration::ZERO).is_none());
        first.hand_over(&shared);
        let digests = shared.take(Duration::ZERO).expect("handed over");
        let block = |i: u64| {
            let (o, l) = digests.range(i);
            twox_hash::XxHash3_64::oneshot(&payload[o as usize..(o + l) as usize])
        };
        assert_eq!(digests.get(0), Some(block(0)));
        assert_eq!(digests.get(1), None);
        assert_eq!(digests.get(2), Some(block(2)));
        assert_eq!(digests.get(3), Some(block(3)));
        // Handed over once.
        first.hand_over(&shared);
        assert!(shared.take(Duration::ZERO).is_none());
    }
}
