//! `--verify` on the source side: after a file is committed, it is read again to check
//! it did not change while it was sent.

use super::Source;
use crate::error::{FailureReason, ReplicateError};
use crate::file_digest;
use crate::sparse;
use crate::walk;

impl Source {
    /// `--verify` on the source side: the file still hashes to what was sent.
    pub(super) fn verify_source(&mut self, file_id: u32, sent: u128) -> Result<(), ReplicateError> {
        let entry = &self.entries[file_id as usize];
        let root = &self.roots[entry.root];
        let io = |source| ReplicateError::Io {
            path: walk::display(root, &entry.rel),
            source,
        };
        let file = walk::open_file(root, &entry.rel)?;
        let size_now = file.metadata().map_err(io)?.len();
        // The target checked the digest the source computed while reading; if the file
        // reads differently now (its data, or where its holes are), it changed during
        // the transfer.
        let changed = size_now != entry.size
            || sparse::data_extents(&file, entry.size).map_err(io)? != entry.extents
            || file_digest::read_digest(
                &file,
                entry.size,
                &sparse::pieces(&entry.data_extents(), self.config.options.block_size),
            )
            .map_err(io)?
                != sent;
        if changed {
            self.fail(file_id, FailureReason::SourceChanged);
        }
        Ok(())
    }
}
