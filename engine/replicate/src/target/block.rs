//! A Block: its bytes checked against their digest and written at their offset, outside
//! the file's lock (the blocks of one file are checked and written in parallel), through
//! the `O_DIRECT` descriptor for large pieces; then recorded in the file's journal.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::job::{Job, lock};
use super::partial::JOURNAL;
use crate::error::TargetError;
use crate::journal;
use crate::proto::{BlockAck, BlockHeader, BlockStatus, block_digest};
use crate::target_path::temp_name;

impl Job {
    /// Writes one Block's `data`.
    pub(super) fn block(&self, header: BlockHeader, data: &[u8]) -> Result<BlockAck, TargetError> {
        let _gate = self.enter()?;
        let fsync = self.options.fsync;
        let slot = self.file(header.file_id)?;
        let mut ack = BlockAck {
            file_id: header.file_id,
            offset: header.offset,
            status: BlockStatus::Written,
        };
        // Hashed and written outside the file's lock, so the blocks of one large file are
        // checked and reach the disk in parallel (several writes in flight is what a
        // direct write needs to run at the device's rate).
        let intact = block_digest(data) == header.digest;
        let (file, direct, dir, name) = {
            let mut partial = lock(&slot);
            // Committed while this block waited for the file's lock.
            let partial = partial
                .as_mut()
                .ok_or(TargetError::UnknownFile(header.file_id))?;
            if partial.pieces.get(&header.offset).map(|&len| len as usize) != Some(data.len()) {
                return Err(TargetError::NotAPiece {
                    file_id: header.file_id,
                    offset: header.offset,
                    len: data.len(),
                });
            }
            if !intact {
                ack.status = BlockStatus::DigestMismatch;
                return Ok(ack);
            }
            let (file, direct) = partial.writers(self, data.len())?;
            (
                file,
                direct,
                Arc::clone(&partial.dir),
                Arc::clone(&partial.name),
            )
        };
        match &direct {
            Some(direct) => direct.write_at(&file, data, header.offset),
            None => file.write_all_at(data, header.offset),
        }
        .and_then(|()| if fsync { file.sync_data() } else { Ok(()) })
        .map_err(|e| self.io_error(&dir, &name, e))?;
        let mut guard = lock(&slot);
        // The source commits a file only once all its blocks are acknowledged, and each
        // piece is written by one request at a time (exactly once), so the file is
        // still here.
        let partial = guard
            .as_mut()
            .ok_or(TargetError::UnknownFile(header.file_id))?;
        if let Some(journal) = partial.open.as_mut().and_then(|open| open.journal.as_mut()) {
            journal
                .append(journal::Record {
                    offset: header.offset,
                    len: data.len() as u32,
                    digest: header.digest,
                })
                .map_err(|e| self.io_error(&dir, &temp_name(&name, JOURNAL), e))?;
        }
        partial.received.insert(header.offset, header.digest);
        drop(guard);
        lock(&self.report).bytes_received += data.len() as u64;
        Ok(ack)
    }
}
