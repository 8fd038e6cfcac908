//! The target side: answers the source's requests by writing under its root.
//!
//! [`Target::handle`] takes one request body and returns the response body; it is the
//! handler the session binding registers for the replication exchanges. Files needing
//! data are written to `<dir>/.hawser-partial/<name>.part` at their pieces' offsets, with
//! a transfer [journal](super::journal) beside them; each Block's bytes are checked
//! against its xxh3-64 before they are written, and a commit checks the whole-file
//! digest (made of those piece digests, see [`file_digest`](super::file_digest)),
//! applies mode and mtime, and renames the file into place, so a reader never sees a
//! half file.
//!
//! # Staying under the root
//!
//! Every file-system operation runs relative to the root's directory descriptor, opened
//! once ([`RootDir`]), through [`beneath`]: the destination and each
//! entry's directory are opened beneath it with no symlink allowed anywhere on the way,
//! and everything else is an `*at` call with a single name on such a descriptor. Partial
//! files and journals are created `O_CREAT | O_EXCL | O_NOFOLLOW` in the descriptor of
//! their `.hawser-partial` folder (whatever has the name already is removed, never
//! followed), reopened with `O_NOFOLLOW` and checked by device and inode; a commit is a
//! `renameat` between two descriptors, and mode and mtime go through the file's own
//! descriptor. Directory metadata is applied at Finish by walking the destination through
//! descriptors: a directory that has become something else meanwhile is skipped, and
//! counted with the refused entries. A path named twice in one job is refused the second
//! time, so one name never stands for both a directory and a symlink.
//!
//! A job remembers a 16-byte key per path it named (for `--delete`, duplicates and
//! Finish), keeps the directories it works in open in a small cache (one `openat2` per
//! directory, not per file), and a file holds its descriptors from its first Block to
//! its Commit; [`TargetLimits`] bounds the paths and the files open at once.
//!
//! # Concurrency
//!
//! [`Target::handle_concurrent`] takes `&self`: the session runs a job's requests on
//! several handler threads, and Blocks and Commits of different files run in parallel.
//! A job keeps its file table under a lock held only to look a file up; each file has
//! its own lock for its bookkeeping and commit (a Block is hashed and written outside
//! it: the blocks of one file are checked and written in parallel). Manifest batches run
//! one at a time (they arrive ordered). A fresh file's partial file is created by its
//! first Block (or its Commit, for a file without data pieces) under that file's lock,
//! not by the Manifest: creating a file is the dearest step for small files, and this
//! way creations run in parallel. Delete and Finish wait for every Block, Commit and
//! Manifest in progress (a job-wide read/write gate), and requests after Finish find no
//! job.
//!
//! # Layout
//!
//! This file dispatches requests and opens jobs; [`job`] is a job's state and gate,
//! [`dirs`] its open directories, [`manifest`] and [`file_entry`] answer Manifest
//! entries, [`partial`] and [`resume`] are the files waiting for data, [`block`],
//! [`commit`], [`sweep`] (Delete) and [`finish`] answer the other requests, and
//! [`metadata`] brings an existing file's mode and mtime in line.

mod block;
mod commit;
mod dirs;
mod file_entry;
mod finish;
mod job;
mod manifest;
mod metadata;
mod partial;
mod resume;
mod sweep;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use rustix::io::Errno;

use super::beneath::{self, RootDir, is};
use super::direct::WriteMode;
use super::error::TargetError;
use super::proto::{
    Begin, BeginAck, BlockHeader, CommitFile, DeleteRequest, Finish, ManifestBatch, MessageKind,
    PROTOCOL_VERSION,
};
use super::target_path;
use dirs::{DirHandle, dir_refusal};
use job::{Job, lock, lossy};

/// How deep Delete and Finish walk (a replica's paths are at most 4096 bytes, so at most
/// 2048 directories deep).
const MAX_DEPTH: usize = 2048;

/// The target of replication jobs: everything it writes is beneath its root.
#[derive(Debug)]
pub struct Target {
    root: RootDir,
    /// The current job; held only to take a reference to it.
    job: Mutex<Option<Arc<Job>>>,
    write_mode: WriteMode,
    limits: TargetLimits,
}

/// What one job may make a target remember and hold open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetLimits {
    /// Paths one job may name. Each costs the target a 16-byte key until the job ends
    /// (about 50 bytes with the table around it), and a file waiting for its blocks its
    /// piece table; beyond it the Manifest fails (`hawser.replicate.Limit`).
    pub max_entries: u64,
    /// Files one job may be writing at once: from a file's first Block to its Commit it
    /// holds up to four descriptors. A source has a file in progress per request in
    /// flight at most (256 by default), so this only stops a peer that opens files and
    /// never commits them; beyond it the Block fails (`hawser.replicate.Limit`).
    pub max_open_files: usize,
    /// Pieces the files of one job that wait for their blocks may have in all: each
    /// costs a record (about 30 bytes with its table) from the Manifest naming its file
    /// to the Commit, and a 60-byte entry may claim millions; beyond it the entry is
    /// refused (`TooManyBlocks`). An honest job of 256 TiB in 8 MiB blocks fits the
    /// default.
    pub max_job_pieces: u64,
}

/// The default of [`TargetLimits::max_job_pieces`].
pub(crate) const MAX_JOB_PIECES: u64 = 1 << 25;

impl Default for TargetLimits {
    fn default() -> Self {
        TargetLimits {
            max_entries: 10_000_000,
            max_open_files: 1024,
            max_job_pieces: MAX_JOB_PIECES,
        }
    }
}

impl Target {
    /// A target writing beneath `root` (which must exist; opened once, here).
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::in_root(RootDir::open(root)?))
    }

    /// A target writing beneath an open root (several targets may share one).
    pub fn in_root(root: RootDir) -> Self {
        Target {
            root,
            job: Mutex::new(None),
            write_mode: WriteMode::default(),
            limits: TargetLimits::default(),
        }
    }

    /// How file data is written ([`WriteMode::Direct`] by default: large pieces past
    /// the page cache where the file system allows it).
    pub fn with_write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = mode;
        self
    }

    /// What one job may make the target remember and hold open.
    pub fn with_limits(mut self, limits: TargetLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The root everything is written under.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Answers one request: its response body, or a failure of the whole request (which
    /// travels back as a remote exception).
    pub fn handle(&mut self, body: &[u8]) -> Result<Bytes, TargetError> {
        self.answer(body)
    }

    /// [`handle`](Self::handle) for a target shared by several threads: Blocks and
    /// Commits of different files, and Blocks of one file, run in parallel (see the
    /// module docs).
    pub fn handle_concurrent(&self, body: &[u8]) -> Result<Bytes, TargetError> {
        self.answer(body)
    }

    fn answer(&self, body: &[u8]) -> Result<Bytes, TargetError> {
        let kind = MessageKind::of(body)?;
        let mut out = BytesMut::new();
        match kind {
            MessageKind::Begin => self.begin(Begin::decode(body)?, &mut out)?,
            MessageKind::Manifest => self
                .job()?
                .manifest(ManifestBatch::decode(body)?, &mut out)?,
            MessageKind::Block => {
                let (header, data) = BlockHeader::decode(body)?;
                self.job()?.block(header, data)?.encode(&mut out);
            }
            MessageKind::Commit => self
                .job()?
                .commit(CommitFile::decode(body)?)?
                .encode(&mut out),
            MessageKind::Delete => self.job()?.delete(DeleteRequest::decode(body)?, &mut out)?,
            MessageKind::Finish => {
                Finish::decode(body)?;
                let job = lock(&self.job).take().ok_or(TargetError::NoJob)?;
                job.finish()?.encode(&mut out);
            }
            other => return Err(TargetError::NotARequest(other.tag())),
        }
        Ok(out.freeze())
    }

    fn job(&self) -> Result<Arc<Job>, TargetError> {
        lock(&self.job).clone().ok_or(TargetError::NoJob)
    }

    fn begin(&self, begin: Begin<'_>, out: &mut BytesMut) -> Result<(), TargetError> {
        if begin.version != PROTOCOL_VERSION {
            return Err(TargetError::Version(begin.version));
        }
        let refused = |kind, detail| TargetError::Destination { kind, detail };
        let dry_run = begin.options.dry_run;
        // An empty destination is the root itself.
        let dest_rel = if begin.dest == b"." {
            &[][..]
        } else {
            begin.dest
        };
        if !dest_rel.is_empty() {
            target_path::check_relative(dest_rel).map_err(|kind| refused(kind, lossy(dest_rel)))?;
        }
        let mut options = begin.options;
        // A one-file job whose destination is not a directory writes the file as the
        // destination (cp, scp, rsync): the job's directory is then the parent.
        let (mut file_dest, mut file_existed) = (false, false);
        if options.dest_may_be_file
            && !dest_rel.is_empty()
            && let Err(e) = beneath::open_dir(self.root.fd(), dest_rel)
        {
            file_existed = is(&e, Errno::NOTDIR);
            file_dest = file_existed || is(&e, Errno::NOENT);
        }
        let dest_rel = if file_dest {
            // The job names one file in a directory it does not own: nothing to sweep.
            options.delete = false;
            target_path::split_last(dest_rel).0
        } else {
            dest_rel
        };
        let opened = match beneath::open_dir(self.root.fd(), dest_rel) {
            Ok(fd) => Ok(Some((fd, true))),
            Err(e) if is(&e, Errno::NOENT) && dry_run => Ok(None),
            Err(e) if is(&e, Errno::NOENT) => {
                beneath::create_dirs(self.root.fd(), dest_rel).map(|(fd, _)| Some((fd, false)))
            }
            Err(e) => Err(e),
        };
        let opened = opened.map_err(|e| {
            let (kind, detail) = dir_refusal(dest_rel, &e);
            refused(kind, detail)
        })?;
        // When the file's name is taken by a file, the source compares with it rather
        // than sending small files inline.
        let dest_existed = if file_dest {
            file_existed
        } else {
            opened.as_ref().is_some_and(|(_, existed)| *existed)
        };
        // A new Begin abandons a previous job's open files; their journals stay for resume.
        let dest = opened.map(|(fd, _)| Arc::new(DirHandle::new(fd, b"")));
        let job = Job::new(
            options,
            self.write_mode,
            self.limits,
            self.root.clone(),
            dest_rel.to_vec(),
            dest,
        );
        *lock(&self.job) = Some(Arc::new(job));
        BeginAck {
            version: PROTOCOL_VERSION,
            dest_existed,
            dest_is_file: file_dest,
        }
        .encode(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
