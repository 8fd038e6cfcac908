//! The reader of a fan-out: each file any target wants is read once, piece by piece, in
//! walk order, and each block goes as one shared buffer (`Bytes`, reference-counted) to
//! every target that wants it; the whole-file digest, computed once, goes to each of them
//! for its Commit.
//!
//! At most `window` blocks are out at once, however many targets hold them: a block
//! counts until every target it went to is done with it (written, given up, or the target
//! gone). A slow target therefore holds the reader back, and the others with it, instead
//! of making it buffer: memory stays at `window` blocks whatever the number of targets
//! (and the blocks a failed target's session still held when it was given up).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::blocks::{BlockKey, FileWork};
use super::fanout::Lane;
use super::file_reader::FileReader;
use crate::error::ReplicateError;
use crate::pool::BlockPool;
use crate::proto::BLOCK_HEADER_LEN;
use crate::walk::{SourceEntry, SourceRoot};

/// The file being read, and the targets (lane indexes) that want its data.
#[derive(Debug)]
struct SharedFile {
    reader: FileReader,
    /// Each lane that asked for the file, and the blocks it wants (`None`: all).
    wanting: Vec<(usize, Option<HashSet<u32>>)>,
}

/// A block some targets still hold.
#[derive(Debug)]
struct Held {
    /// The reader's own reference: the buffer goes back to the pool through it.
    body: Bytes,
    /// The lanes not done with it yet.
    holders: Vec<usize>,
}

/// Reads the files of a fan-out once for all its targets.
#[derive(Debug)]
pub(super) struct SharedReads {
    roots: Vec<SourceRoot>,
    entries: Vec<SourceEntry>,
    block_size: u32,
    window: usize,
    pool: BlockPool,
    scratch: Vec<u8>,
    current: Option<SharedFile>,
    held: HashMap<BlockKey, Held>,
    /// Source bytes read (wanted pieces and pieces read only for a digest).
    pub(super) bytes_read: u64,
    /// Pieces read.
    pub(super) pieces_read: u64,
    /// The most blocks out at once.
    pub(super) most_held: usize,
}

impl SharedReads {
    /// A reader of `entries` beneath `roots` in pieces of `block_size`, with at most
    /// `window` blocks out at once.
    pub(super) fn new(
        roots: Vec<SourceRoot>,
        entries: Vec<SourceEntry>,
        block_size: u32,
        window: usize,
    ) -> Self {
        let window = window.max(1);
        SharedReads {
            roots,
            entries,
            block_size,
            window,
            pool: BlockPool::new(BLOCK_HEADER_LEN + block_size as usize, window),
            scratch: Vec::new(),
            current: None,
            held: HashMap::new(),
            bytes_read: 0,
            pieces_read: 0,
            most_held: 0,
        }
    }

    /// Buffers the reader allocated: at most the window, reused after that.
    pub(super) fn buffers_allocated(&self) -> u64 {
        self.pool.allocated()
    }

    /// Reads the next block a target wants and offers it to each target that wants it
    /// (or finishes a file: its digest offered). `false` when nothing can be read now:
    /// every wanted file is read, a target has not said yet whether it wants the next
    /// file, or the window is full.
    pub(super) fn step(&mut self, lanes: &mut [Lane]) -> Result<bool, ReplicateError> {
        if self.current.is_none() && !self.start_next_file(lanes)? {
            return Ok(false);
        }
        let Some(current) = self.current.as_mut() else {
            return Ok(false);
        };
        let file_id = current.reader.file_id();
        loop {
            if self.held.len() >= self.window {
                return Ok(false);
            }
            let Some(piece) = current.reader.next_piece() else {
                let hash = current.reader.finish();
                for (lane, _) in &current.wanting {
                    if let Some(source) = lanes.get_mut(*lane).and_then(Lane::running) {
                        source.offer_file_digest(file_id, hash);
                    }
                }
                self.current = None;
                return Ok(true);
            };
            self.pieces_read += 1;
            self.bytes_read += u64::from(piece.len);
            let takers: Vec<usize> = current
                .wanting
                .iter()
                .filter(|(_, needed)| FileWork::wants(needed.as_ref(), piece, self.block_size))
                .map(|(lane, _)| *lane)
                .collect();
            if takers.is_empty() {
                current.reader.digest_only(piece, &mut self.scratch)?;
                continue;
            }
            let body = current.reader.read_block(piece, &mut self.pool)?;
            for lane in &takers {
                if let Some(source) = lanes.get_mut(*lane).and_then(Lane::running) {
                    source.offer_block(file_id, piece, body.clone());
                }
            }
            self.held.insert(
                (file_id, piece.offset),
                Held {
                    body,
                    holders: takers,
                },
            );
            self.most_held = self.most_held.max(self.held.len());
            return Ok(true);
        }
    }

    /// Opens the next file a running lane wants, once every running lane has said
    /// whether it wants it (so that it is read once for all of them).
    fn start_next_file(&mut self, lanes: &mut [Lane]) -> Result<bool, ReplicateError> {
        let running = || lanes.iter().filter_map(Lane::peek_running);
        let Some(file_id) = running().filter_map(|s| s.next_wanted_file()).min() else {
            return Ok(false);
        };
        if running().any(|s| s.verdicts_known_before() <= file_id as usize) {
            return Ok(false);
        }
        let Some(entry) = self.entries.get(file_id as usize) else {
            return Err(ReplicateError::Unexpected(
                "data asked for an entry of no walk",
            ));
        };
        let Some(root) = self.roots.get(entry.root) else {
            return Err(ReplicateError::Unexpected(
                "data asked for an entry of no walk",
            ));
        };
        let reader = FileReader::open(root, entry, file_id, self.block_size)?;
        let mut wanting = Vec::new();
        for (lane, state) in lanes.iter_mut().enumerate() {
            if let Some(source) = state.running()
                && source.next_wanted_file() == Some(file_id)
                && let Some(work) = source.take_wanted_file()
            {
                wanting.push((lane, work.needed));
            }
        }
        self.current = Some(SharedFile { reader, wanting });
        Ok(true)
    }

    /// Lane `lane` is done with the blocks `keys`.
    pub(super) fn release(&mut self, lane: usize, keys: &[BlockKey]) {
        for key in keys {
            if let Some(held) = self.held.get_mut(key) {
                held.holders.retain(|&l| l != lane);
                if held.holders.is_empty()
                    && let Some(done) = self.held.remove(key)
                {
                    self.pool.give_back(done.body);
                }
            }
        }
    }

    /// Lane `lane` ended: it holds no block and wants nothing more. A file no lane
    /// wants any longer is not read on.
    pub(super) fn lane_ended(&mut self, lane: usize) {
        let keys: Vec<BlockKey> = self
            .held
            .iter()
            .filter(|(_, held)| held.holders.contains(&lane))
            .map(|(key, _)| *key)
            .collect();
        self.release(lane, &keys);
        if let Some(current) = &mut self.current {
            current.wanting.retain(|(l, _)| *l != lane);
            if current.wanting.is_empty() {
                self.current = None;
            }
        }
    }
}
