//! A Commit: every piece in, the whole-file digest made of the checked pieces compared
//! with the source's, mode and mtime applied through the file's descriptor, and the
//! partial file renamed into place (read back first under `--verify`).

use std::os::fd::AsFd;
use std::sync::Arc;

use super::job::{Job, lock};
use super::partial::{JOURNAL, PART};
use crate::beneath;
use crate::error::TargetError;
use crate::file_digest;
use crate::proto::{CommitAck, CommitFile, CommitStatus};
use crate::target_path::temp_name;
use crate::write_behind;

impl Job {
    /// Checks a file whose blocks are all acknowledged and renames it into place.
    pub(super) fn commit(&self, commit: CommitFile) -> Result<CommitAck, TargetError> {
        let _gate = self.enter()?;
        let slot_lock = self.file(commit.file_id)?;
        let mut slot = lock(&slot_lock);
        let ack = |status| CommitAck {
            file_id: commit.file_id,
            status,
        };
        {
            let partial = slot
                .as_mut()
                .ok_or(TargetError::UnknownFile(commit.file_id))?;
            if commit.size != partial.size {
                return Ok(ack(CommitStatus::ContentMismatch));
            }
            if partial.received.len() != partial.pieces.len() {
                return Ok(ack(CommitStatus::Incomplete));
            }
            // A file without data pieces has had no block to create it.
            partial.open(self)?;
        }
        // From here on the file is gone from the job, whatever the outcome: a block
        // still waiting for its lock finds it unknown.
        let mut partial = slot.take().expect("checked above");
        {
            let mut partials = lock(&self.partials);
            if partials
                .get(&commit.file_id)
                .is_some_and(|s| Arc::ptr_eq(s, &slot_lock))
            {
                partials.remove(&commit.file_id);
            }
        }
        let open = partial.open.take().expect("opened above");
        let name = &partial.name;
        let folder = open.partial_dir.as_ref().map(|folder| folder.as_fd());
        let (temp, journal_name) = (temp_name(name, PART), temp_name(name, JOURNAL));
        let fail = |e| self.io_error(&partial.dir, name, e);
        // Every piece is in (checked above), each checked against its digest.
        let digest = file_digest::from_digests(partial.size, &partial.pieces, &partial.received);
        if digest != Some(commit.content_hash) {
            // The bytes are wrong as a whole: start over next time (an unnamed file
            // goes with its descriptor).
            if let Some(folder) = folder {
                let _ = beneath::unlink(folder, &temp);
                if open.journal.is_some() {
                    let _ = beneath::unlink(folder, &journal_name);
                }
            }
            return Ok(ack(CommitStatus::ContentMismatch));
        }
        let file = &open.file;
        beneath::set_mode(&**file, commit.mode).map_err(fail)?;
        beneath::set_mtime(&**file, commit.mtime_ns).map_err(fail)?;
        if self.options.fsync {
            file.sync_all().map_err(fail)?;
        }
        match folder {
            Some(folder) => {
                self.replace(folder, &temp, &open.dir, name).map_err(fail)?;
                if open.journal.is_some() {
                    let _ = beneath::unlink(folder, &journal_name);
                }
            }
            None => self.link_into_place(file, &open.dir, name).map_err(fail)?,
        }
        if self.options.verify {
            // Read back through the descriptor the data went in by, its cached pages
            // dropped first (best effort) so the re-read comes from the device.
            write_behind::drop_cached(file);
            let pieces = file_digest::sorted_pieces(&partial.pieces);
            let reread = file_digest::read_digest(file, commit.size, &pieces);
            if reread.ok() != Some(commit.content_hash) {
                return Ok(ack(CommitStatus::VerifyFailed));
            }
        }
        drop(slot);
        self.leave_cache(Arc::clone(file));
        lock(&self.report).files_written += 1;
        Ok(ack(CommitStatus::Committed))
    }
}
