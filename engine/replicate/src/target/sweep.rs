//! Delete (`--delete`): what is under the destination and was not named by the job's
//! manifest is removed (or, in a dry run, only listed), walking through descriptors and
//! never following a link.

use std::os::fd::{AsFd, BorrowedFd};

use bytes::BytesMut;
use rustix::fs::FileType;
use rustix::io::Errno;

use super::MAX_DEPTH;
use super::job::{Job, Tree, lock};
use crate::beneath::{self, is};
use crate::error::TargetError;
use crate::proto::{DeleteList, DeleteRequest};
use crate::target_path::{PARTIAL_DIR, path_key};

/// One Delete's walk and what it found.
struct Sweep<'a> {
    job: &'a Job,
    tree: &'a Tree,
    /// Paths listed in the answer at most.
    max_listed: usize,
    removed: Vec<Vec<u8>>,
    total: u64,
}

impl Job {
    /// Answers a Delete with what it removed.
    pub(super) fn delete(
        &self,
        request: DeleteRequest,
        out: &mut BytesMut,
    ) -> Result<(), TargetError> {
        let _gate = self.enter_alone()?;
        let tree = lock(&self.tree);
        let mut sweep = Sweep {
            job: self,
            tree: &tree,
            max_listed: request.max_listed as usize,
            removed: Vec::new(),
            total: 0,
        };
        if let Some(dest) = &self.dest {
            sweep.dir(dest.fd(), &mut Vec::new(), 0)?;
        }
        let Sweep { removed, total, .. } = sweep;
        lock(&self.report).deleted += total;
        DeleteList {
            total,
            paths: removed.iter().map(Vec::as_slice).collect(),
        }
        .encode(out)?;
        Ok(())
    }
}

impl Sweep<'_> {
    /// Removes (or, in a dry run, lists) what is in `dir` (at `rel`) and under it and was
    /// not in the manifest.
    fn dir(
        &mut self,
        dir: BorrowedFd<'_>,
        rel: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), TargetError> {
        let job = self.job;
        let entries = beneath::list(dir).map_err(|e| job.io_error(rel, b"", e))?;
        for (name, listed) in entries {
            if name == PARTIAL_DIR.as_bytes() {
                continue;
            }
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            if !self.tree.seen.contains_key(&path_key(rel)) {
                if !job.options.dry_run {
                    beneath::remove_all(dir, &name).map_err(|e| job.io_error(rel, b"", e))?;
                    lock(&job.dirs).forget(rel);
                }
                self.total += 1;
                if self.removed.len() < self.max_listed {
                    self.removed.push(rel.clone());
                }
            } else if depth < MAX_DEPTH
                && beneath::listed_kind(dir, &name, listed)
                    .map_err(|e| job.io_error(rel, b"", e))?
                    == Some(FileType::Directory)
            {
                match beneath::open_dir(dir, &name) {
                    Ok(sub) => self.dir(sub.as_fd(), rel, depth + 1)?,
                    // No longer a directory since it was listed: nothing in it to sweep.
                    Err(e)
                        if is(&e, Errno::LOOP) || is(&e, Errno::NOTDIR) || is(&e, Errno::NOENT) => {
                    }
                    Err(e) => return Err(job.io_error(rel, b"", e)),
                }
            }
            rel.truncate(len);
        }
        Ok(())
    }
}
