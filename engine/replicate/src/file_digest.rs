//! The whole-file digest a Commit carries and the target checks before it renames a file
//! into place: xxh3-128 over the file's size and, for each data piece in offset order,
//! the piece's offset, length and xxh3-64 (the digest its Block carries).
//!
//! Both ends hash every byte once. The source reads a piece and computes its Block
//! digest; the target checks each Block's bytes against that digest as they arrive, in
//! whatever order the trunk delivers them. The file digest then comes from the verified
//! piece digests alone. A missing, misplaced, repeated or wrong piece, a wrong size or a
//! different piece layout all change it, so it ends the same end-to-end check as a hash of
//! the bytes; it cannot say anything about bytes outside the pieces, which are holes the
//! target never writes. A digest of the content itself would make each end hash every
//! byte twice, and the target hash in file order, holding blocks that arrive ahead of its
//! cursor in memory or reading them back from the disk.
//!
//! ```text
//! digest = xxh3_128( size u64 ‖ for each piece: offset u64 ‖ len u32 ‖ xxh3_64(data) u64 )
//! ```
//! (big-endian integers; see docs/PROTOCOL.md, Commit).

use std::collections::HashMap;
use std::fs::File;
use std::io;

use hawser_wire::xxh3::Hasher128;

use super::sparse::{self, Piece};

/// Builds the digest from the pieces' digests, fed in offset order.
#[derive(Clone)]
pub(crate) struct FileDigest {
    hasher: Hasher128,
    /// End of the last piece fed: the order is checked in debug builds.
    last_end: u64,
}

impl std::fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDigest")
            .field("last_end", &self.last_end)
            .finish_non_exhaustive()
    }
}

impl FileDigest {
    /// The digest of a file of `size` bytes, before its first piece.
    pub(crate) fn new(size: u64) -> Self {
        let mut hasher = Hasher128::new();
        hasher.update(&size.to_be_bytes());
        FileDigest {
            hasher,
            last_end: 0,
        }
    }

    /// Feeds the next piece and the xxh3-64 of its bytes.
    pub(crate) fn piece(&mut self, piece: Piece, digest: u64) {
        debug_assert!(piece.offset >= self.last_end, "pieces out of order");
        let mut record = [0u8; 20];
        record[..8].copy_from_slice(&piece.offset.to_be_bytes());
        record[8..12].copy_from_slice(&piece.len.to_be_bytes());
        record[12..].copy_from_slice(&digest.to_be_bytes());
        self.hasher.update(&record);
        self.last_end = piece.offset + u64::from(piece.len);
    }

    /// The digest of everything fed.
    pub(crate) fn finish(&self) -> u128 {
        self.hasher.digest128()
    }
}

/// The pieces of a length-by-offset table, in offset order (the digest's order).
pub(crate) fn sorted_pieces(pieces: &HashMap<u64, u32>) -> Vec<Piece> {
    let mut sorted: Vec<Piece> = pieces
        .iter()
        .map(|(&offset, &len)| Piece { offset, len })
        .collect();
    sorted.sort_unstable_by_key(|p| p.offset);
    sorted
}

/// The digest of a file of `size` bytes whose pieces (any order) have the digests in
/// `digests` by offset; `None` while a piece has none.
pub(crate) fn from_digests(
    size: u64,
    pieces: &HashMap<u64, u32>,
    digests: &HashMap<u64, u64>,
) -> Option<u128> {
    let mut digest = FileDigest::new(size);
    for piece in sorted_pieces(pieces) {
        digest.piece(piece, *digests.get(&piece.offset)?);
    }
    Some(digest.finish())
}

/// The digest of `pieces` (in offset order) of a file of `size` bytes as `file` holds
/// them now, reading each piece (`--verify`).
pub(crate) fn read_digest(file: &File, size: u64, pieces: &[Piece]) -> io::Result<u128> {
    let mut digest = FileDigest::new(size);
    let mut buf = Vec::new();
    for &piece in pieces {
        buf.resize(piece.len as usize, 0);
        digest.piece(piece, sparse::read_digested(file, piece.offset, &mut buf)?);
    }
    Ok(digest.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces() -> Vec<Piece> {
        vec![
            Piece { offset: 0, len: 8 },
            Piece { offset: 10, len: 2 },
            Piece { offset: 14, len: 9 },
        ]
    }

    fn digest_of(size: u64, pieces: &[(Piece, u64)]) -> u128 {
        let mut d = FileDigest::new(size);
        for &(p, h) in pieces {
            d.piece(p, h);
        }
        d.finish()
    }

    #[test]
    fn every_field_of_every_piece_and_the_size_count() {
        let p = pieces();
        let base: Vec<(Piece, u64)> = p.iter().map(|&p| (p, p.offset * 7 + 1)).collect();
        let want = digest_of(30, &base);
        assert_eq!(digest_of(30, &base), want, "deterministic");
        assert_ne!(digest_of(31, &base), want, "size");
        for i in 0..base.len() {
            let mut d = base.clone();
            d[i].1 ^= 1;
            assert_ne!(digest_of(30, &d), want, "digest of piece {i}");
            let mut l = base.clone();
            l[i].0.len += 1;
            assert_ne!(digest_of(30, &l), want, "length of piece {i}");
            let mut gone = base.clone();
            gone.remove(i);
            assert_ne!(digest_of(30, &gone), want, "piece {i} missing");
        }
        let mut moved = base.clone();
        moved[2].0.offset += 1;
        assert_ne!(digest_of(30, &moved), want, "offset");
    }

    #[test]
    fn digests_in_any_order_give_the_source_digest_and_a_missing_one_gives_none() {
        let p = pieces();
        let by_offset: HashMap<u64, u32> = p.iter().map(|p| (p.offset, p.len)).collect();
        let digests: HashMap<u64, u64> = p.iter().map(|p| (p.offset, p.offset + 3)).collect();
        let want = digest_of(
            30,
            &p.iter().map(|&p| (p, p.offset + 3)).collect::<Vec<_>>(),
        );
        assert_eq!(from_digests(30, &by_offset, &digests), Some(want));
        let mut partial = digests.clone();
        partial.remove(&10);
        assert_eq!(from_digests(30, &by_offset, &partial), None);
    }

    #[test]
    fn reading_a_file_back_gives_the_digest_of_its_pieces_bytes() {
        let path = std::env::temp_dir().join(format!("hawser-file-digest-{}", std::process::id()));
        let mut data: Vec<u8> = (0..30u8).map(|i| i * 3 + 1).collect();
        std::fs::write(&path, &data).unwrap();
        let p = pieces();
        let want = digest_of(
            30,
            &p.iter()
                .map(|&p| {
                    let bytes = &data[p.offset as usize..(p.offset + u64::from(p.len)) as usize];
                    (p, hawser_wire::xxh3::hash64(bytes))
                })
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            read_digest(&File::open(&path).unwrap(), 30, &p).unwrap(),
            want
        );
        data[15] = 0xff;
        std::fs::write(&path, &data).unwrap();
        let changed = read_digest(&File::open(&path).unwrap(), 30, &p).unwrap();
        assert_ne!(changed, want, "a changed byte");
        std::fs::remove_file(&path).unwrap();
    }
}
