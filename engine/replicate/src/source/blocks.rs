//! A job's blocks: where they come from (the job's own reads of the wanted files, one
//! file at a time, or a fan-out's shared reader), each sent and acknowledged, sent again
//! after a digest mismatch, and the Commit queued once a file is read and all its blocks
//! acknowledged.

use std::collections::HashSet;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::file_reader::FileReader;
use super::{InFlight, Source};
use crate::error::{FailureReason, ReplicateError};
use crate::pool::BlockPool;
use crate::proto::{BlockAck, BlockStatus, CommitFile, MessageKind};
use crate::sparse::Piece;
use crate::transport::Request;

/// A block read attempt gives up after this many digest mismatches.
const MAX_BLOCK_ATTEMPTS: u32 = 4;

/// A block by its file and offset: unique within a job.
pub(super) type BlockKey = (u32, u64);

/// A block sent and not acknowledged yet: its buffer is sent again after a digest
/// mismatch, and goes back to the pool once the block is written.
#[derive(Debug)]
pub(super) struct SentBlock {
    file_id: u32,
    offset: u64,
    body: Bytes,
    sent_at: Instant,
    attempts: u32,
}

/// A file whose data is wanted.
#[derive(Debug)]
pub(super) struct FileWork {
    pub(super) file_id: u32,
    /// `None`: every block; otherwise the block indexes to send.
    pub(super) needed: Option<HashSet<u32>>,
}

impl FileWork {
    /// Whether the target wants the data of `piece`.
    pub(super) fn wants(needed: Option<&HashSet<u32>>, piece: Piece, block_size: u32) -> bool {
        needed.is_none_or(|set| set.contains(&piece.block_index(block_size)))
    }
}

/// Where a job's blocks come from.
#[derive(Debug)]
pub(super) enum Supply {
    /// The job reads the files it is asked for itself, into its own pool.
    Own {
        reading: Option<Box<Reading>>,
        pool: BlockPool,
        scratch: Vec<u8>,
    },
    /// A fan-out's shared reader reads each file once for every target and offers this
    /// job the blocks its target wants; the blocks the job is done with wait here until
    /// that reader takes the list.
    Fed { released: Vec<BlockKey> },
}

impl Supply {
    /// A job reading its own files into buffers of `pool`.
    pub(super) fn own(pool: BlockPool) -> Self {
        Supply::Own {
            reading: None,
            pool,
            scratch: Vec::new(),
        }
    }

    /// Whether the job is in the middle of reading a file itself.
    pub(super) fn is_reading(&self) -> bool {
        matches!(
            self,
            Supply::Own {
                reading: Some(_),
                ..
            }
        )
    }

    /// Buffers the job's own pool allocated (a fed job's are the shared reader's).
    pub(super) fn buffers_allocated(&self) -> u64 {
        match self {
            Supply::Own { pool, .. } => pool.allocated(),
            Supply::Fed { .. } => 0,
        }
    }
}

/// The file a job is reading itself, and the blocks of it its target wants.
#[derive(Debug)]
pub(super) struct Reading {
    reader: FileReader,
    needed: Option<HashSet<u32>>,
}

/// A file all of whose blocks are read, or being read, awaiting acknowledgements.
#[derive(Debug, Default)]
pub(super) struct Awaiting {
    outstanding: usize,
    hash: Option<u128>,
    failed: bool,
}

impl Source {
    /// Reads the next needed piece into a pooled buffer, or `None` when no file has data
    /// left to send (always `None` for a fed job: its blocks are offered to it).
    pub(super) fn next_block(&mut self) -> Result<Option<Request>, ReplicateError> {
        let block_size = self.config.options.block_size;
        loop {
            let Supply::Own {
                reading,
                pool,
                scratch,
            } = &mut self.supply
            else {
                return Ok(None);
            };
            if reading.is_none() {
                let Some(work) = self.work.pop_front() else {
                    return Ok(None);
                };
                let entry = &self.entries[work.file_id as usize];
                let reader =
                    FileReader::open(&self.roots[entry.root], entry, work.file_id, block_size)?;
                self.awaiting.insert(work.file_id, Awaiting::default());
                *reading = Some(Box::new(Reading {
                    reader,
                    needed: work.needed,
                }));
            }
            let Some(current) = reading.as_mut() else {
                continue;
            };
            let file_id = current.reader.file_id();
            let Some(piece) = current.reader.next_piece() else {
                // Every piece read: the whole-file digest is complete.
                let hash = current.reader.finish();
                *reading = None;
                self.file_read(file_id, hash);
                continue;
            };
            if !FileWork::wants(current.needed.as_ref(), piece, block_size) {
                current.reader.digest_only(piece, scratch)?;
                continue;
            }
            let body = current.reader.read_block(piece, pool)?;
            let (kind, body, what) = self.block_sent(file_id, piece, body);
            return Ok(Some(self.issue(kind, body, what, false)));
        }
    }

    /// Counts the block `body` (the data of `piece` of `file_id`) as sent: the request
    /// to issue for it.
    pub(super) fn block_sent(
        &mut self,
        file_id: u32,
        piece: Piece,
        body: Bytes,
    ) -> (MessageKind, Bytes, InFlight) {
        if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
            awaiting.outstanding += 1;
        }
        self.blocks_in_flight += 1;
        self.report.blocks_sent += 1;
        self.report.bytes_sent += u64::from(piece.len);
        let what = InFlight::Block(SentBlock {
            file_id,
            offset: piece.offset,
            body: body.clone(),
            sent_at: Instant::now(),
            attempts: 1,
        });
        (MessageKind::Block, body, what)
    }

    /// Every piece of `file_id` was read and hashed to `hash`: its Commit goes once its
    /// blocks are acknowledged.
    pub(super) fn file_read(&mut self, file_id: u32, hash: u128) {
        if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
            awaiting.hash = Some(hash);
        }
        self.maybe_commit(file_id);
    }

    /// Starts waiting for the blocks of `file_id`.
    pub(super) fn await_file(&mut self, file_id: u32) {
        self.awaiting.insert(file_id, Awaiting::default());
    }

    /// The block at `offset` of `file_id` is done with (written, or given up): its
    /// buffer goes back to where it came from.
    fn release_block(&mut self, file_id: u32, offset: u64, body: Bytes) {
        match &mut self.supply {
            Supply::Own { pool, .. } => pool.give_back(body),
            Supply::Fed { released } => released.push((file_id, offset)),
        }
    }

    /// Takes a Block's acknowledgement.
    pub(super) fn block_answer(
        &mut self,
        body: &[u8],
        sent: SentBlock,
    ) -> Result<(), ReplicateError> {
        let SentBlock {
            file_id,
            offset,
            body: sent,
            sent_at,
            attempts,
        } = sent;
        let ack = BlockAck::decode(body)?;
        if ack.file_id != file_id || ack.offset != offset {
            return Err(ReplicateError::Unexpected(
                "block acknowledgement for another block",
            ));
        }
        let rtt = sent_at.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        let _ = self.report.block_rtt_ns.record(rtt.max(1));
        match ack.status {
            BlockStatus::Written => {
                self.blocks_in_flight -= 1;
                if let Some(auto) = &mut self.auto {
                    auto.acknowledged(Instant::now(), sent.len() as u64);
                }
                self.release_block(file_id, offset, sent);
                if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
                    awaiting.outstanding -= 1;
                }
                self.maybe_commit(file_id);
            }
            BlockStatus::DigestMismatch if attempts < MAX_BLOCK_ATTEMPTS => {
                // The buffer still holds the data as read: send it again.
                self.report.block_retries += 1;
                self.report.blocks_sent += 1;
                let what = InFlight::Block(SentBlock {
                    file_id,
                    offset,
                    body: sent.clone(),
                    sent_at: Instant::now(),
                    attempts: attempts + 1,
                });
                self.ready.push_front((MessageKind::Block, sent, what));
            }
            BlockStatus::DigestMismatch => {
                self.blocks_in_flight -= 1;
                self.release_block(file_id, offset, sent);
                if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
                    awaiting.outstanding -= 1;
                    awaiting.failed = true;
                }
                self.fail(file_id, FailureReason::BlockRetries(offset));
                self.maybe_commit(file_id);
            }
        }
        Ok(())
    }

    /// Queues the commit of a file once it is fully read and every block acknowledged.
    fn maybe_commit(&mut self, file_id: u32) {
        let Some(awaiting) = self.awaiting.get(&file_id) else {
            return;
        };
        let Some(hash) = awaiting.hash else {
            return;
        };
        if awaiting.outstanding > 0 {
            return;
        }
        let failed = awaiting.failed;
        self.awaiting.remove(&file_id);
        if failed {
            return;
        }
        let entry = &self.entries[file_id as usize];
        let mut body = BytesMut::new();
        CommitFile {
            file_id,
            size: entry.size,
            content_hash: hash,
            mode: entry.mode,
            mtime_ns: entry.mtime_ns,
        }
        .encode(&mut body);
        self.ready.push_back((
            MessageKind::Commit,
            body.freeze(),
            InFlight::Commit { file_id, hash },
        ));
    }
}
