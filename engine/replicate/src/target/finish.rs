//! Finish: the job's open files closed (their partial files and journals stay for a
//! resume), directory metadata applied deepest first through descriptors, the partial
//! folders the job emptied removed, and the target's counters reported.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::FileType;

use super::MAX_DEPTH;
use super::job::{Job, Tree, lock};
use crate::beneath;
use crate::error::TargetError;
use crate::proto::FinishReport;
use crate::target_path::{PARTIAL_DIR, path_key};

impl Job {
    /// Ends the job: requests after it find no job.
    pub(super) fn finish(&self) -> Result<FinishReport, TargetError> {
        let mut gate = self.enter_alone()?;
        *gate = true;
        // Files not committed are closed; their partial files and journals stay.
        lock(&self.partials).clear();
        self.write_behind.finish();
        lock(&self.dirs).close_all();
        let tree = lock(&self.tree);
        if !self.options.dry_run
            && let Some(dest) = &self.dest
        {
            let mut applied = 0;
            self.finish_dir(&tree, dest.fd(), &mut Vec::new(), &mut applied, 0)?;
            // Named directories that are no longer directories (or gone) keep whatever
            // they are now: counted with the refused entries.
            lock(&self.report).refused += (tree.dirs.len() as u64).saturating_sub(applied);
        }
        Ok(*lock(&self.report))
    }

    /// Applies the metadata of the directories under `dir` (at `rel`), deepest first,
    /// then of `dir` itself, walking through descriptors (a symlink is never followed:
    /// what has become one is skipped); removes the partial folders the job emptied.
    fn finish_dir(
        &self,
        tree: &Tree,
        dir: BorrowedFd<'_>,
        rel: &mut Vec<u8>,
        applied: &mut u64,
        depth: usize,
    ) -> Result<(), TargetError> {
        let mut partial_folder = false;
        for (name, listed) in beneath::list(dir).map_err(|e| self.io_error(rel, b"", e))? {
            if name == PARTIAL_DIR.as_bytes() {
                partial_folder = true;
                continue;
            }
            if !matches!(listed, FileType::Directory | FileType::Unknown) || depth >= MAX_DEPTH {
                continue;
            }
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            if tree.seen.contains_key(&path_key(rel))
                && let Ok(sub) = beneath::open_dir(dir, &name)
            {
                self.finish_dir(tree, sub.as_fd(), rel, applied, depth + 1)?;
            }
            rel.truncate(len);
        }
        // Empty unless files of this or another job are still in progress there.
        if partial_folder {
            let _ = beneath::remove_dir(dir, PARTIAL_DIR.as_bytes());
        }
        if !rel.is_empty()
            && let Some(&(mode, mtime)) = tree.dirs.get(&path_key(rel))
        {
            beneath::set_mode(dir, mode)
                .and_then(|()| beneath::set_mtime(dir, mtime))
                .map_err(|e| self.io_error(rel, b"", e))?;
            *applied += 1;
        }
        Ok(())
    }
}
