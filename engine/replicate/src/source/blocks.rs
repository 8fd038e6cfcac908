//! Reading the files the target wants into blocks: one file at a time, each needed piece
//! read into a pooled buffer behind room for its header and hashed as it is read; the
//! acknowledgements, retries after a digest mismatch, and the Commit queued once a file
//! is read and all its blocks acknowledged.

use std::collections::HashSet;
use std::fs::File;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{InFlight, Source};
use crate::error::{FailureReason, ReplicateError};
use crate::file_digest::FileDigest;
use crate::proto::{BLOCK_HEADER_LEN, BlockAck, BlockHeader, BlockStatus, CommitFile, MessageKind};
use crate::sparse::{self, Piece};
use crate::transport::Request;
use crate::walk;

/// A block read attempt gives up after this many digest mismatches.
const MAX_BLOCK_ATTEMPTS: u32 = 4;

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

/// The file being read into blocks.
pub(super) struct Reading {
    file_id: u32,
    file: File,
    pieces: Vec<Piece>,
    next: usize,
    needed: Option<HashSet<u32>>,
    digest: FileDigest,
}

impl std::fmt::Debug for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reading")
            .field("file_id", &self.file_id)
            .field("next", &self.next)
            .field("pieces", &self.pieces.len())
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
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
    /// left to send.
    pub(super) fn next_block(&mut self) -> Result<Option<Request>, ReplicateError> {
        loop {
            if self.reading.is_none() {
                let Some(work) = self.work.pop_front() else {
                    return Ok(None);
                };
                let entry = &self.entries[work.file_id as usize];
                let file = walk::open_file(&self.roots[entry.root], &entry.rel)?;
                self.awaiting.insert(work.file_id, Awaiting::default());
                self.reading = Some(Reading {
                    file_id: work.file_id,
                    file,
                    pieces: sparse::pieces(&entry.data_extents(), self.config.options.block_size),
                    next: 0,
                    needed: work.needed,
                    digest: FileDigest::new(entry.size),
                });
            }
            let block_size = self.config.options.block_size;
            let Some(reading) = self.reading.as_mut() else {
                continue;
            };
            let entry = &self.entries[reading.file_id as usize];
            let root = &self.roots[entry.root];
            let io = |source| ReplicateError::Io {
                path: walk::display(root, &entry.rel),
                source,
            };
            let Some(&piece) = reading.pieces.get(reading.next) else {
                // Every piece read: the whole-file digest is complete.
                let file_id = reading.file_id;
                let hash = reading.digest.finish();
                self.reading = None;
                if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
                    awaiting.hash = Some(hash);
                }
                self.maybe_commit(file_id);
                continue;
            };
            reading.next += 1;
            let wanted = reading
                .needed
                .as_ref()
                .is_none_or(|set| set.contains(&piece.block_index(block_size)));
            if !wanted {
                // Complete on the target already; read it only for the whole-file digest
                // (the target checked its bytes against this piece's digest at resume).
                self.scratch.resize(piece.len as usize, 0);
                let digest = sparse::read_digested(&reading.file, piece.offset, &mut self.scratch)
                    .map_err(io)?;
                reading.digest.piece(piece, digest);
                continue;
            }
            let mut buf = self.pool.take();
            // A reused buffer keeps its length: shrinking it costs nothing, and only a
            // buffer's first use (or a longer piece) zero-fills.
            buf.resize(BLOCK_HEADER_LEN + piece.len as usize, 0);
            let digest =
                sparse::read_digested(&reading.file, piece.offset, &mut buf[BLOCK_HEADER_LEN..])
                    .map_err(io)?;
            reading.digest.piece(piece, digest);
            let header = BlockHeader {
                file_id: reading.file_id,
                offset: piece.offset,
                digest,
            };
            let mut head = [0u8; BLOCK_HEADER_LEN];
            header.write_into(&mut head);
            buf[..BLOCK_HEADER_LEN].copy_from_slice(&head);
            let file_id = reading.file_id;
            if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
                awaiting.outstanding += 1;
            }
            let body = buf.freeze();
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
            return Ok(Some(self.issue(MessageKind::Block, body, what, false)));
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
                self.pool.give_back(sent);
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
