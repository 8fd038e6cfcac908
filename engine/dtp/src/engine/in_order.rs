//! Digests of blocks whose bytes arrive in order, taken from the datagrams as they pass.
//!
//! A receiver writing past the page cache cannot read a completed block back from memory:
//! reading it back would fetch it from the device into fresh cache pages, the cost the
//! direct write avoided. Datagrams mostly arrive in offset order, so each block is hashed
//! while its bytes stream through, and only a block that arrived out of order (a hole
//! filled later, a resumed transfer) is read back.

use std::hash::Hasher as _;

use twox_hash::XxHash3_64;

use crate::digest::BlockDigests;

/// The block being hashed as its bytes arrive in order.
#[derive(Default)]
pub(super) struct InOrderHash {
    current: Option<Streaming>,
}

struct Streaming {
    block: u64,
    /// The next offset of the block expected.
    next: u64,
    hasher: XxHash3_64,
}

impl std::fmt::Debug for InOrderHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InOrderHash")
            .field("block", &self.current.as_ref().map(|s| s.block))
            .finish()
    }
}

impl InOrderHash {
    /// New bytes `data` at `offset` (each byte of the payload is new once): continues the
    /// block in progress, starts one at a block's first byte, or gives up on the block
    /// until the next one starts. A block hashed whole gets its digest in `digests`.
    pub(super) fn on_data(&mut self, mut offset: u64, mut data: &[u8], digests: &mut BlockDigests) {
        while !data.is_empty() {
            let block = offset / crate::digest::BLOCK;
            let (start, len) = digests.range(block);
            let end = start + len;
            if end <= offset {
                return;
            }
            let take = data.len().min((end - offset) as usize);
            self.current = match self.current.take() {
                // Its bytes came out of order: it is read back once complete.
                Some(streaming) if streaming.block == block => {
                    (streaming.next == offset).then_some(streaming)
                }
                _ if offset == start && digests.get(block).is_none() => Some(Streaming {
                    block,
                    next: offset,
                    hasher: XxHash3_64::new(),
                }),
                // Bytes of another block (a resend filling a hole): the block in progress
                // goes on.
                other => other,
            };
            if let Some(streaming) = self.current.as_mut().filter(|s| s.block == block) {
                streaming.hasher.write(&data[..take]);
                streaming.next += take as u64;
                if streaming.next == end {
                    digests.set(block, streaming.hasher.finish());
                    self.current = None;
                }
            }
            offset += take as u64;
            data = &data[take..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::BLOCK;

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    fn want(data: &[u8], block: u64) -> u64 {
        let start = (block * BLOCK) as usize;
        let end = (start + BLOCK as usize).min(data.len());
        XxHash3_64::oneshot(&data[start..end])
    }

    #[test]
    fn blocks_received_in_order_are_hashed_as_they_pass() {
        let data = payload(2 * BLOCK as usize + 5000);
        let mut digests = BlockDigests::new(data.len() as u64);
        let mut hash = InOrderHash::default();
        // Datagrams of a size that does not divide a block, so some straddle two.
        for (i, chunk) in data.chunks(63_999).enumerate() {
            hash.on_data((i * 63_999) as u64, chunk, &mut digests);
        }
        for block in 0..3 {
            assert_eq!(
                digests.get(block),
                Some(want(&data, block)),
                "block {block}"
            );
        }
    }

    #[test]
    fn a_block_with_a_hole_is_left_to_be_read_back_and_the_next_is_hashed() {
        let data = payload(3 * BLOCK as usize);
        let mut digests = BlockDigests::new(data.len() as u64);
        let mut hash = InOrderHash::default();
        let chunks: Vec<(usize, &[u8])> = data
            .chunks(50_000)
            .enumerate()
            .map(|(i, c)| (i * 50_000, c))
            .collect();
        // The third datagram is lost and comes last, as a resend would.
        for &(offset, chunk) in chunks.iter().filter(|(o, _)| *o != 100_000) {
            hash.on_data(offset as u64, chunk, &mut digests);
        }
        hash.on_data(100_000, chunks[2].1, &mut digests);
        assert_eq!(digests.get(0), None, "its bytes did not all pass in order");
        for block in 1..3 {
            assert_eq!(
                digests.get(block),
                Some(want(&data, block)),
                "block {block}"
            );
        }
    }

    #[test]
    fn a_resend_into_an_earlier_block_does_not_stop_the_block_in_progress() {
        let data = payload(2 * BLOCK as usize);
        let mut digests = BlockDigests::new(data.len() as u64);
        let mut hash = InOrderHash::default();
        let half = BLOCK as usize + 4096;
        hash.on_data(BLOCK, &data[BLOCK as usize..half], &mut digests);
        hash.on_data(4096, &data[4096..8192], &mut digests);
        hash.on_data(half as u64, &data[half..], &mut digests);
        assert_eq!(digests.get(1), Some(want(&data, 1)));
        assert_eq!(digests.get(0), None);
    }

    #[test]
    fn a_block_already_known_is_not_hashed_again() {
        let data = payload(BLOCK as usize);
        let mut digests = BlockDigests::new(data.len() as u64);
        digests.set(0, 7);
        let mut hash = InOrderHash::default();
        hash.on_data(0, &data, &mut digests);
        assert_eq!(digests.get(0), Some(7));
    }
}
