//! One source file read piece by piece, in order: each wanted piece into a pooled buffer
//! behind room for its Block header, each other piece only for the whole-file digest,
//! every byte hashed once as it is read.

use std::fs::File;
use std::path::PathBuf;

use bytes::Bytes;

use crate::error::ReplicateError;
use crate::file_digest::FileDigest;
use crate::pool::BlockPool;
use crate::proto::{BLOCK_HEADER_LEN, BlockHeader};
use crate::sparse::{self, Piece};
use crate::walk::{self, SourceEntry, SourceRoot};

/// A file being read into pieces.
pub(super) struct FileReader {
    file_id: u32,
    file: File,
    /// The file as errors name it.
    path: PathBuf,
    pieces: Vec<Piece>,
    next: usize,
    digest: FileDigest,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("file_id", &self.file_id)
            .field("path", &self.path)
            .field("next", &self.next)
            .field("pieces", &self.pieces.len())
            .finish_non_exhaustive()
    }
}

impl FileReader {
    /// Opens the entry `file_id` beneath `root` (refused if it became a symlink or
    /// something else since the walk) and cuts its data into pieces of `block_size`.
    pub(super) fn open(
        root: &SourceRoot,
        entry: &SourceEntry,
        file_id: u32,
        block_size: u32,
    ) -> Result<Self, ReplicateError> {
        Ok(FileReader {
            file_id,
            file: walk::open_file(root, &entry.rel)?,
            path: walk::display(root, &entry.rel),
            pieces: sparse::pieces(&entry.data_extents(), block_size),
            next: 0,
            digest: FileDigest::new(entry.size),
        })
    }

    /// The file's id in the job.
    pub(super) fn file_id(&self) -> u32 {
        self.file_id
    }

    /// The next piece to read, or `None` once every piece was read.
    pub(super) fn next_piece(&mut self) -> Option<Piece> {
        let piece = *self.pieces.get(self.next)?;
        self.next += 1;
        Some(piece)
    }

    /// Reads `piece` into a buffer from `pool`, behind its Block header: the body of the
    /// Block message, as it travels.
    pub(super) fn read_block(
        &mut self,
        piece: Piece,
        pool: &mut BlockPool,
    ) -> Result<Bytes, ReplicateError> {
        let mut buf = pool.take();
        // A reused buffer keeps its length: shrinking it costs nothing, and only a
        // buffer's first use (or a longer piece) zero-fills.
        buf.resize(BLOCK_HEADER_LEN + piece.len as usize, 0);
        let digest = sparse::read_digested(&self.file, piece.offset, &mut buf[BLOCK_HEADER_LEN..])
            .map_err(|source| self.io(source))?;
        self.digest.piece(piece, digest);
        let mut head = [0u8; BLOCK_HEADER_LEN];
        BlockHeader {
            file_id: self.file_id,
            offset: piece.offset,
            digest,
        }
        .write_into(&mut head);
        buf[..BLOCK_HEADER_LEN].copy_from_slice(&head);
        Ok(buf.freeze())
    }

    /// Reads `piece` (into `scratch`) only for the whole-file digest: the target has it
    /// already (it checked its bytes against this piece's digest at resume).
    pub(super) fn digest_only(
        &mut self,
        piece: Piece,
        scratch: &mut Vec<u8>,
    ) -> Result<(), ReplicateError> {
        scratch.resize(piece.len as usize, 0);
        let digest = sparse::read_digested(&self.file, piece.offset, scratch)
            .map_err(|source| self.io(source))?;
        self.digest.piece(piece, digest);
        Ok(())
    }

    /// The whole-file digest, once every piece was read.
    pub(super) fn finish(&self) -> u128 {
        self.digest.finish()
    }

    fn io(&self, source: std::io::Error) -> ReplicateError {
        ReplicateError::Io {
            path: self.path.clone(),
            source,
        }
    }
}
