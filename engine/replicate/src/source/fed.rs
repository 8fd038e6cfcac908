//! A job whose blocks a fan-out's shared reader supplies: it tells the reader which
//! files its target wants and which blocks it is done with, and takes the blocks and
//! whole-file digests the reader offers.

use bytes::Bytes;

use super::blocks::{BlockKey, FileWork, Supply};
use super::{InFlight, Source, SourceConfig};
use crate::error::ReplicateError;
use crate::sparse::Piece;
use crate::walk::{SourceEntry, SourceRoot};

impl Source {
    /// A job over a walk already made whose blocks are offered to it.
    pub(super) fn fed(
        config: SourceConfig,
        roots: Vec<SourceRoot>,
        entries: Vec<SourceEntry>,
    ) -> Result<Self, ReplicateError> {
        Self::from_walk(
            config,
            roots,
            entries,
            Supply::Fed {
                released: Vec::new(),
            },
        )
    }

    /// Every entry before this index has the target's verdict: whether the target wants
    /// one of them is known.
    pub(super) fn verdicts_known_before(&self) -> usize {
        self.in_flight
            .values()
            .filter_map(|what| match what {
                InFlight::Manifest { first, .. } => Some(*first),
                _ => None,
            })
            .min()
            .unwrap_or(self.next_entry)
    }

    /// The next file whose data the target wants, in the order the target asked.
    pub(super) fn next_wanted_file(&self) -> Option<u32> {
        self.work.front().map(|work| work.file_id)
    }

    /// Takes the next wanted file to be read for this job: its blocks and digest will
    /// be offered.
    pub(super) fn take_wanted_file(&mut self) -> Option<FileWork> {
        let work = self.work.pop_front()?;
        self.await_file(work.file_id);
        Some(work)
    }

    /// Queues the block `body` (`piece` of `file_id`) to be sent.
    pub(super) fn offer_block(&mut self, file_id: u32, piece: Piece, body: Bytes) {
        let block = self.block_sent(file_id, piece, body);
        self.ready.push_back(block);
    }

    /// Every piece of `file_id` was read: its whole-file digest.
    pub(super) fn offer_file_digest(&mut self, file_id: u32, hash: u128) {
        self.file_read(file_id, hash);
    }

    /// The blocks this job is done with since the last call.
    pub(super) fn take_released(&mut self) -> Vec<BlockKey> {
        match &mut self.supply {
            Supply::Fed { released } => std::mem::take(released),
            Supply::Own { .. } => Vec::new(),
        }
    }
}
