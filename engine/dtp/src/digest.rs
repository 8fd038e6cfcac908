//! The whole-payload digest a DTP transfer ends with, from digests of fixed blocks:
//!
//! ```text
//! digest = xxh3_128( size u64 ‖ for each block of 1 MiB (the last shorter): xxh3_64(block) u64 )
//! ```
//!
//! A receiver hashes each block once it is complete (its bytes are then final), in any
//! order, while holes elsewhere are still filled; a resumed receiver keeps the digests of
//! the blocks it journaled and re-reads them to check the disk still holds them.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use hawser_shards::MappedRange;

use twox_hash::{XxHash3_64, XxHash3_128};

/// Bytes of a digest block.
pub const BLOCK: u64 = 1 << 20;

/// Digests of a payload's blocks, as they become known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDigests {
    size: u64,
    digests: Vec<Option<u64>>,
}

impl BlockDigests {
    /// No digest yet for a payload of `size` bytes.
    pub fn new(size: u64) -> Self {
        BlockDigests {
            size,
            digests: vec![None; blocks(size) as usize],
        }
    }

    /// The payload's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many blocks the payload has.
    pub fn len(&self) -> u64 {
        self.digests.len() as u64
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The bytes of block `index` as (offset, length).
    pub fn range(&self, index: u64) -> (u64, u64) {
        let offset = index * BLOCK;
        (offset, BLOCK.min(self.size.saturating_sub(offset)))
    }

    /// Block `index`'s digest, if known.
    pub fn get(&self, index: u64) -> Option<u64> {
        self.digests.get(index as usize).copied().flatten()
    }

    /// Records block `index`'s digest (ignored beyond the payload).
    pub fn set(&mut self, index: u64, digest: u64) {
        if let Some(slot) = self.digests.get_mut(index as usize) {
            *slot = Some(digest);
        }
    }

    /// Forgets block `index`'s digest (its bytes are to be received again).
    pub fn clear(&mut self, index: u64) {
        if let Some(slot) = self.digests.get_mut(index as usize) {
            *slot = None;
        }
    }

    /// The known digests as (block, digest), ascending.
    pub fn known(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.digests
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (i as u64, d)))
    }

    /// Reads and hashes every block whose digest is unknown from `file`.
    pub fn complete_from(&mut self, file: &File, buf: &mut Vec<u8>) -> io::Result<()> {
        for index in 0..self.len() {
            if self.get(index).is_none() {
                let digest = hash_block(file, self.range(index), buf)?;
                self.set(index, digest);
            }
        }
        Ok(())
    }

    /// Reads and hashes from `file` every block not wholly inside `skip` (whose digests
    /// come from elsewhere: a push's first pass hashes the blocks it sends).
    pub fn complete_outside(
        &mut self,
        file: &File,
        skip: &hawser_wire::dtp::IntervalSet,
        buf: &mut Vec<u8>,
    ) -> io::Result<()> {
        for index in 0..self.len() {
            let (offset, len) = self.range(index);
            if self.get(index).is_none() && !skip.contains(offset, len) {
                let digest = hash_block(file, (offset, len), buf)?;
                self.set(index, digest);
            }
        }
        Ok(())
    }

    /// Takes every digest `other` knows and this one does not (of the same payload).
    pub fn fill_from(&mut self, other: &BlockDigests) {
        for (index, digest) in other.known() {
            if self.get(index).is_none() {
                self.set(index, digest);
            }
        }
    }

    /// The payload's digest, once every block's is known.
    pub fn payload_digest(&self) -> Option<u128> {
        let mut hasher = XxHash3_128::new();
        hasher.write(&self.size.to_be_bytes());
        for digest in &self.digests {
            hasher.write(&(*digest)?.to_be_bytes());
        }
        Some(hasher.finish_128())
    }
}

/// Blocks of a payload of `size` bytes.
pub fn blocks(size: u64) -> u64 {
    size.div_ceil(BLOCK)
}

/// Blocks at least this long are hashed where the page cache holds them.
const MAP_MIN: u64 = 64 * 1024;

/// xxh3-64 of the bytes `(offset, len)` of `file`: mapped, or read into `buf` where the
/// file cannot be mapped. A block past the file's end fails with `UnexpectedEof`.
pub fn hash_block(file: &File, (offset, len): (u64, u64), buf: &mut Vec<u8>) -> io::Result<u64> {
    if len >= MAP_MIN
        && let Ok(len) = usize::try_from(len)
        && let Ok(range) = MappedRange::map(file.as_fd(), offset, len, 0)
    {
        let digest = XxHash3_64::oneshot(range.data());
        if range.vanished() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ended before the block did",
            ));
        }
        return Ok(digest);
    }
    buf.resize(len as usize, 0);
    file.read_exact_at(buf, offset)?;
    Ok(XxHash3_64::oneshot(buf))
}

/// The digest of the first `size` bytes of `file`, read block by block.
pub fn digest_file(file: &File, size: u64) -> io::Result<u128> {
    let mut digests = BlockDigests::new(size);
    digests.complete_from(file, &mut Vec::with_capacity(BLOCK as usize))?;
    Ok(digests.payload_digest().unwrap_or_default())
}

/// Re-reads the blocks a journaled state has digests of: a block whose bytes on disk no
/// longer match (the file changed, a write was lost) is forgotten and received again.
pub fn verify_on_disk(file: &File, state: &mut crate::TransferState) -> io::Result<u64> {
    let mut buf = Vec::new();
    let mut dropped = 0;
    let known: Vec<(u64, u64)> = state.digests.known().collect();
    for (block, digest) in known {
        let range = state.digests.range(block);
        let matches = match hash_block(file, range, &mut buf) {
            Ok(d) => d == digest,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(e),
        };
        if !matches {
            state.digests.clear(block);
            let one = hawser_wire::dtp::IntervalSet::from_canonical(vec![
                hawser_wire::dtp::Interval::new(range.0, range.1).expect("a block is not empty"),
            ])
            .unwrap_or_default();
            state.received = one.missing_within(&state.received);
            dropped += 1;
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data` written to a file of the test's own; its path and the file opened.
    fn temp_file(name: &str, data: &[u8]) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("hawser-dtp-{name}-{}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        let file = File::open(&path).unwrap();
        (path, file)
    }

    #[test]
    fn a_mapped_block_hashes_as_read_and_one_past_the_end_fails() {
        let data: Vec<u8> = (0..BLOCK + 4096).map(|i| (i % 241) as u8).collect();
        let (path, file) = temp_file("mapped", &data);
        let mut buf = Vec::new();
        assert_eq!(
            hash_block(&file, (0, BLOCK), &mut buf).unwrap(),
            XxHash3_64::oneshot(&data[..BLOCK as usize])
        );
        assert!(
            buf.is_empty(),
            "a block of a mappable file is not read into the buffer"
        );
        let past = hash_block(&file, (BLOCK, BLOCK), &mut buf).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn digests_in_any_order_give_the_file_digest() {
        let data: Vec<u8> = (0..(2 * BLOCK + 77)).map(|i| (i % 251) as u8).collect();
        let (dir, file) = temp_file("digest", &data);
        let whole = digest_file(&file, data.len() as u64).unwrap();
        let mut parts = BlockDigests::new(data.len() as u64);
        for index in [2, 0, 1] {
            let (o, l) = parts.range(index);
            parts.set(
                index,
                XxHash3_64::oneshot(&data[o as usize..(o + l) as usize]),
            );
        }
        assert_eq!(parts.payload_digest(), Some(whole));
        parts.clear(1);
        assert_eq!(parts.payload_digest(), None);
        let mut changed = data.clone();
        changed[5] ^= 1;
        std::fs::write(&dir, &changed).unwrap();
        let file = File::open(&dir).unwrap();
        assert_ne!(digest_file(&file, data.len() as u64).unwrap(), whole);
        std::fs::remove_file(&dir).unwrap();
    }

    /// A resumed push: the blocks not wholly wanted come from the file, the others from
    /// the first pass; together they give the file's digest.
    #[test]
    fn blocks_outside_the_wanted_bytes_come_from_the_file() {
        let data: Vec<u8> = (0..(3 * BLOCK + 500)).map(|i| (i % 239) as u8).collect();
        let (path, file) = temp_file("outside", &data);
        let size = data.len() as u64;
        // Wanted: the second half of block 1 to the end (block 1 only partly).
        let wanted = hawser_wire::dtp::IntervalSet::from_canonical(vec![
            hawser_wire::dtp::Interval::new(BLOCK + BLOCK / 2, size - BLOCK - BLOCK / 2).unwrap(),
        ])
        .unwrap();
        let mut outside = BlockDigests::new(size);
        outside
            .complete_outside(&file, &wanted, &mut Vec::new())
            .unwrap();
        let known: Vec<u64> = outside.known().map(|(block, _)| block).collect();
        assert_eq!(
            known,
            vec![0, 1],
            "blocks 2 and 3 lie wholly inside the wanted bytes"
        );
        let mut sent = BlockDigests::new(size);
        for block in [2, 3] {
            let (o, l) = sent.range(block);
            sent.set(
                block,
                XxHash3_64::oneshot(&data[o as usize..(o + l) as usize]),
            );
        }
        sent.fill_from(&outside);
        assert_eq!(
            sent.payload_digest(),
            Some(digest_file(&file, size).unwrap())
        );
        std::fs::remove_file(&path).unwrap();
    }
}
