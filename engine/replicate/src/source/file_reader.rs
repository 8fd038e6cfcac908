//! One source file read piece by piece, in order: each wanted piece into a pooled buffer
//! behind room for its Block header, each other piece only for the whole-file digest,
//! every byte hashed once as it is read.
//!
//! A large piece at a page-aligned offset is not copied at all: it is mapped where the
//! page cache holds it, behind a page that carries its Block header
//! ([`MappedRange`]), hashed there, and the socket send copies it from there: the copy out
//! of the page cache is saved. A file the file system cannot map is read as any other.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use bytes::Bytes;
use hawser_runtime::MappedRange;

use crate::error::ReplicateError;
use crate::file_digest::FileDigest;
use crate::pool::BlockPool;
use crate::proto::{BLOCK_HEADER_LEN, BlockHeader, block_digest};
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
    /// Large pieces are mapped rather than read (false once mapping failed).
    map_pieces: bool,
}

/// Pieces at least this long are mapped: below it, setting a mapping up and tearing it
/// down costs more than the copy it saves.
pub(crate) const MAP_MIN_PIECE: u32 = 1 << 20;

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
            map_pieces: true,
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
        if let Some((mut mapped, digest)) = self.map_digested(piece, BLOCK_HEADER_LEN)? {
            let head: &mut [u8; BLOCK_HEADER_LEN] = mapped
                .prefix_mut()
                .try_into()
                .expect("the prefix holds a Block header");
            self.header(piece, digest).write_into(head);
            return Ok(Bytes::from_owner(mapped));
        }
        let mut buf = pool.take();
        // A reused buffer keeps its length: shrinking it costs nothing, and only a
        // buffer's first use (or a longer piece) zero-fills.
        buf.resize(BLOCK_HEADER_LEN + piece.len as usize, 0);
        let digest = sparse::read_digested(&self.file, piece.offset, &mut buf[BLOCK_HEADER_LEN..])
            .map_err(|source| self.io(source))?;
        self.digest.piece(piece, digest);
        let mut head = [0u8; BLOCK_HEADER_LEN];
        self.header(piece, digest).write_into(&mut head);
        buf[..BLOCK_HEADER_LEN].copy_from_slice(&head);
        Ok(buf.freeze())
    }

    fn header(&self, piece: Piece, digest: u64) -> BlockHeader {
        BlockHeader {
            file_id: self.file_id,
            offset: piece.offset,
            digest,
        }
    }

    /// `piece` mapped behind `prefix` bytes and hashed, its digest counted for the file;
    /// `None` (read it instead) for a piece too small to be worth it or not on a page
    /// boundary, and for a file the file system does not map. An error if the file shrank
    /// under the mapping while it was hashed.
    fn map_digested(
        &mut self,
        piece: Piece,
        prefix: usize,
    ) -> Result<Option<(MappedRange, u64)>, ReplicateError> {
        if !self.map_pieces || piece.len < MAP_MIN_PIECE {
            return Ok(None);
        }
        let mapped =
            match MappedRange::map(self.file.as_fd(), piece.offset, piece.len as usize, prefix) {
                Ok(mapped) => mapped,
                // Every range mapped already (many jobs at once), or an offset off a page
                // boundary (a sparse file's extent): this piece is read.
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::OutOfMemory | io::ErrorKind::InvalidInput
                    ) =>
                {
                    return Ok(None);
                }
                Err(_) => {
                    self.map_pieces = false;
                    return Ok(None);
                }
            };
        let digest = block_digest(mapped.data());
        if mapped.vanished() {
            return Err(self.io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being read (another process truncated it); \
                 push it again once it is no longer being rewritten",
            )));
        }
        self.digest.piece(piece, digest);
        Ok(Some((mapped, digest)))
    }

    /// Reads `piece` (into `scratch`) only for the whole-file digest: the target has it
    /// already (it checked its bytes against this piece's digest at resume).
    pub(super) fn digest_only(
        &mut self,
        piece: Piece,
        scratch: &mut Vec<u8>,
    ) -> Result<(), ReplicateError> {
        if self.map_digested(piece, 0)?.is_some() {
            return Ok(());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::excludes::Excludes;
    use crate::testing::{TempDir, random_bytes};

    fn reader_of(dir: &TempDir, data: &[u8], block: u32) -> FileReader {
        std::fs::write(dir.path().join("f"), data).unwrap();
        let root = SourceRoot::local(&dir.path().join("f")).unwrap();
        let entries = walk::walk(std::slice::from_ref(&root), &Excludes::default()).unwrap();
        FileReader::open(&root, &entries[0], 7, block).unwrap()
    }

    #[test]
    fn mapped_and_read_pieces_carry_the_same_bytes_header_and_digest() {
        let dir = TempDir::new("file-reader");
        let data = random_bytes(5, 3 * MAP_MIN_PIECE as usize + 1000);
        let mut pool = BlockPool::new(BLOCK_HEADER_LEN + MAP_MIN_PIECE as usize, 4);
        let mut bodies = Vec::new();
        for map_pieces in [true, false] {
            let mut reader = reader_of(&dir, &data, MAP_MIN_PIECE);
            reader.map_pieces = map_pieces;
            let mut these = Vec::new();
            while let Some(piece) = reader.next_piece() {
                these.push(reader.read_block(piece, &mut pool).unwrap());
            }
            assert_eq!(these.len(), 4);
            bodies.push((these, reader.finish()));
        }
        assert_eq!(bodies[0], bodies[1]);
        let (blocks, _) = &bodies[0];
        assert_eq!(
            blocks[1][BLOCK_HEADER_LEN..],
            data[MAP_MIN_PIECE as usize..2 * MAP_MIN_PIECE as usize]
        );
        let (header, _) = BlockHeader::decode(&blocks[1]).unwrap();
        assert_eq!(
            (header.file_id, header.offset),
            (7, u64::from(MAP_MIN_PIECE))
        );
    }

    #[test]
    fn a_file_truncated_under_its_mapping_is_an_error_not_a_signal() {
        let dir = TempDir::new("file-reader-shrink");
        let data = random_bytes(6, 2 * MAP_MIN_PIECE as usize);
        let mut reader = reader_of(&dir, &data, 2 * MAP_MIN_PIECE);
        let piece = reader.next_piece().unwrap();
        let mut pool = BlockPool::new(BLOCK_HEADER_LEN + piece.len as usize, 1);
        let writer = std::fs::File::options()
            .write(true)
            .open(dir.path().join("f"))
            .unwrap();
        writer.set_len(4096).unwrap();
        let error = reader.read_block(piece, &mut pool).unwrap_err();
        assert!(error.to_string().contains("shrank"), "{error}");
    }
}
