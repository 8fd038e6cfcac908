//! The whole-file xxh3-128 a target checks before it commits a file, computed while the
//! blocks arrive instead of by reading the whole file back at the commit.
//!
//! Blocks travel over several connections, so they arrive roughly but not exactly in
//! file order. A cursor walks the file's pieces in order: a block landing at the cursor
//! is hashed at once, from the memory it arrived in. A block landing past the cursor is
//! held (its bytes are shared with the request, not copied) while the job's hold budget
//! allows, and hashed when the cursor reaches it; one that cannot be held, or that was
//! written by an earlier run (`resume`), is read back from the file when the cursor gets
//! there. Whatever is left at the commit is read back then, as before.
//!
//! The budget is shared by all files of a job and bounded by configuration, so memory
//! stays bounded however the blocks are reordered.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use hawser_wire::xxh3::{Hasher64, Hasher128};

use super::sparse::{self, Piece};

/// Bytes of out-of-order blocks a job may hold for hashing (see the module docs).
pub(crate) const DEFAULT_HOLD_BYTES: usize = 64 << 20;

/// Room left for held blocks, shared by the running hashes of one job.
#[derive(Debug, Clone)]
pub(crate) struct HoldBudget(Arc<AtomicUsize>);

impl HoldBudget {
    pub(crate) fn new(bytes: usize) -> Self {
        HoldBudget(Arc::new(AtomicUsize::new(bytes)))
    }

    fn try_take(&self, bytes: usize) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |room| {
                room.checked_sub(bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn room(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The hash of one file being received.
pub(crate) struct RunningHash {
    hasher: Hasher128,
    /// The file's pieces in file order.
    pieces: Vec<Piece>,
    /// Index of the next piece to hash.
    next: usize,
    /// Offset up to which the file (holes included) is hashed.
    hashed_to: u64,
    /// Data of pieces past the cursor, by offset.
    held: HashMap<u64, Bytes>,
    budget: HoldBudget,
}

impl std::fmt::Debug for RunningHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningHash")
            .field("next", &self.next)
            .field("hashed_to", &self.hashed_to)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl RunningHash {
    pub(crate) fn new(mut pieces: Vec<Piece>, budget: HoldBudget) -> Self {
        pieces.sort_unstable_by_key(|p| p.offset);
        RunningHash {
            hasher: Hasher128::new(),
            pieces,
            next: 0,
            hashed_to: 0,
            held: HashMap::new(),
            budget,
        }
    }

    /// Whether `data`, arriving for the piece at `offset`, has the xxh3-64 `digest`. A
    /// piece at the cursor is also hashed into the file's hash in the same pass over its
    /// bytes (and only if the digest matches), so the target reads each block from memory
    /// once for both checks.
    pub(crate) fn check(&mut self, offset: u64, data: &[u8], digest: u64) -> bool {
        let Some(&piece) = self.pieces.get(self.next).filter(|p| p.offset == offset) else {
            return hawser_wire::xxh3::hash64(data) == digest;
        };
        let mut block = Hasher64::new();
        let mut file = self.hasher.clone();
        sparse::hash_zeros(&mut file, piece.offset - self.hashed_to);
        for chunk in data.chunks(sparse::HASH_CHUNK) {
            block.update(chunk);
            file.update(chunk);
        }
        if block.digest() != digest {
            return false;
        }
        self.hasher = file;
        self.hashed_to = piece.offset + u64::from(piece.len);
        self.next += 1;
        true
    }

    /// The piece at `offset` was written (and recorded in `on_disk`) with `data`: hashes
    /// it if the cursor is there, or holds `shared` (the same bytes) if the budget
    /// allows; then moves the cursor over every following piece that is held or on disk
    /// (a piece [`check`](Self::check) hashed is behind the cursor already).
    pub(crate) fn written(
        &mut self,
        offset: u64,
        data: &[u8],
        shared: Option<&Bytes>,
        file: &File,
        on_disk: &HashSet<u64>,
    ) -> io::Result<()> {
        match self.pieces.get(self.next) {
            Some(piece) if piece.offset == offset => {
                self.hash_piece(*piece, data);
                self.advance(file, on_disk)?;
            }
            Some(piece) if piece.offset < offset => {
                if let Some(shared) = shared
                    && !self.held.contains_key(&offset)
                    && self.budget.try_take(data.len())
                {
                    self.held.insert(offset, shared.clone());
                }
            }
            // Behind the cursor (hashed by `check`, or a piece written again).
            _ => self.advance(file, on_disk)?,
        }
        Ok(())
    }

    /// The hash of the whole file of `size` bytes once every piece is in `on_disk`:
    /// hashes what the cursor has not reached yet, reading back what is not held.
    pub(crate) fn finish(
        mut self,
        file: &File,
        size: u64,
        on_disk: &HashSet<u64>,
    ) -> io::Result<u128> {
        self.advance(file, on_disk)?;
        if self.next < self.pieces.len() {
            return Err(io::Error::other("a piece is missing from the file"));
        }
        sparse::hash_zeros(&mut self.hasher, size.saturating_sub(self.hashed_to));
        Ok(self.hasher.digest128())
    }

    fn advance(&mut self, file: &File, on_disk: &HashSet<u64>) -> io::Result<()> {
        let mut buf = Vec::new();
        while let Some(&piece) = self.pieces.get(self.next) {
            if let Some(data) = self.held.remove(&piece.offset) {
                self.budget.give_back(data.len());
                self.hash_piece(piece, &data);
            } else if on_disk.contains(&piece.offset) {
                buf.resize(piece.len as usize, 0);
                sparse::hash_zeros(&mut self.hasher, piece.offset - self.hashed_to);
                sparse::read_in_chunks(file, piece.offset, &mut buf, |chunk| {
                    self.hasher.update(chunk);
                })?;
                self.hashed_to = piece.offset + u64::from(piece.len);
                self.next += 1;
            } else {
                break;
            }
        }
        Ok(())
    }

    fn hash_piece(&mut self, piece: Piece, data: &[u8]) {
        sparse::hash_zeros(&mut self.hasher, piece.offset - self.hashed_to);
        self.hasher.update(data);
        self.hashed_to = piece.offset + u64::from(piece.len);
        self.next += 1;
    }
}

impl Drop for RunningHash {
    fn drop(&mut self) {
        let held: usize = self.held.values().map(Bytes::len).sum();
        self.budget.give_back(held);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    struct Case {
        path: std::path::PathBuf,
        file: File,
        data: Vec<u8>,
        pieces: Vec<Piece>,
    }

    /// A 10-piece file of `len`-byte pieces with a hole between pieces 4 and 5.
    fn case(name: &str, len: u32) -> Case {
        let path = std::env::temp_dir().join(format!("hawser-rh-{name}-{}", std::process::id()));
        let mut pieces = Vec::new();
        let mut offset = 0u64;
        for i in 0..10 {
            if i == 5 {
                offset += 3 * u64::from(len);
            }
            pieces.push(Piece { offset, len });
            offset += u64::from(len);
        }
        let size = offset + 7; // a trailing hole too
        let mut data = vec![0u8; size as usize];
        for p in &pieces {
            for i in p.offset..p.offset + u64::from(p.len) {
                data[i as usize] = (i * 31 % 251) as u8 + 1;
            }
        }
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.set_len(size).unwrap();
        Case {
            path,
            file,
            data,
            pieces,
        }
    }

    impl Case {
        fn bytes(&self, p: Piece) -> Bytes {
            Bytes::copy_from_slice(
                &self.data[p.offset as usize..(p.offset + u64::from(p.len)) as usize],
            )
        }

        /// Writes the pieces in `order`, feeding the running hash as the target does.
        fn run(&self, order: &[usize], budget: &HoldBudget, hold: bool) -> u128 {
            let mut hash = RunningHash::new(self.pieces.clone(), budget.clone());
            let mut on_disk = HashSet::new();
            for &i in order {
                let p = self.pieces[i];
                let bytes = self.bytes(p);
                let digest = hawser_wire::xxh3::hash64(&bytes);
                // A corrupted copy first: refused, and the hash is left as it was.
                let mut corrupt = bytes.to_vec();
                corrupt[0] ^= 1;
                assert!(!hash.check(p.offset, &corrupt, digest));
                assert!(hash.check(p.offset, &bytes, digest));
                self.file.write_all_at(&bytes, p.offset).unwrap();
                on_disk.insert(p.offset);
                hash.written(
                    p.offset,
                    &bytes,
                    hold.then_some(&bytes),
                    &self.file,
                    &on_disk,
                )
                .unwrap();
            }
            hash.finish(&self.file, self.data.len() as u64, &on_disk)
                .unwrap()
        }
    }

    impl Drop for Case {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    #[test]
    fn any_arrival_order_gives_the_whole_file_hash() {
        let c = case("orders", 1000);
        let want = hawser_wire::xxh3::hash128(&c.data);
        let orders: [&[usize]; 4] = [
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
            &[1, 0, 3, 2, 5, 4, 7, 6, 9, 8],
            &[4, 9, 0, 2, 7, 1, 5, 3, 8, 6],
        ];
        for order in orders {
            for hold in [true, false] {
                let budget = HoldBudget::new(1 << 20);
                assert_eq!(c.run(order, &budget, hold), want, "{order:?} hold {hold}");
                assert_eq!(budget.room(), 1 << 20, "every held byte given back");
            }
        }
    }

    #[test]
    fn a_small_budget_reads_back_what_it_cannot_hold() {
        let c = case("budget", 1000);
        let want = hawser_wire::xxh3::hash128(&c.data);
        // Room for two pieces: the rest of the reversed order is read back.
        let budget = HoldBudget::new(2000);
        assert_eq!(c.run(&[9, 8, 7, 6, 5, 4, 3, 2, 1, 0], &budget, true), want);
        assert_eq!(budget.room(), 2000);
    }

    #[test]
    fn finish_fails_while_a_piece_is_missing_and_returns_the_budget_when_dropped() {
        let c = case("missing", 1000);
        let budget = HoldBudget::new(1 << 20);
        let mut hash = RunningHash::new(c.pieces.clone(), budget.clone());
        let mut on_disk = HashSet::new();
        for i in 1..10 {
            let p = c.pieces[i];
            let bytes = c.bytes(p);
            on_disk.insert(p.offset);
            hash.written(p.offset, &bytes, Some(&bytes), &c.file, &on_disk)
                .unwrap();
        }
        assert_eq!(budget.room(), (1 << 20) - 9000, "nine pieces held");
        assert!(hash.finish(&c.file, c.data.len() as u64, &on_disk).is_err());
        assert_eq!(budget.room(), 1 << 20);
    }
}
