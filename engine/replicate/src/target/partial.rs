//! A file waiting for its data: what pieces it expects and has, and its descriptors in
//! `.hawser-partial` (the partial file, its journal, its `O_DIRECT` twin), opened by its
//! first Block or its Commit under the file's own lock.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{OFlags, Stat};

use super::dirs::DirHandle;
use super::job::{Job, OpenSlot, PieceCharge};
use crate::beneath;
use crate::direct::{DIRECT_MIN_PIECE, DirectFile, WriteMode};
use crate::error::TargetError;
use crate::journal::{self, Journal};
use crate::target_path::temp_name;

/// Suffixes of the names in `.hawser-partial`: a file's data, its journal, a symlink
/// before its rename.
pub(super) const PART: &str = "part";
pub(super) const JOURNAL: &str = "journal";
pub(super) const LINK: &str = "link";

/// Most pieces one file may have on the target (32 TiB in 8 MiB blocks): the target keeps
/// a small record per piece, so the claimed size of an entry must not decide its memory.
pub(super) const MAX_PIECES: u64 = 1 << 22;

/// A file the manifest named that needs data, until its Commit.
#[derive(Debug)]
pub(super) struct Partial {
    pub(super) size: u64,
    /// The pieces cover the whole file (it has no holes to keep): its `O_DIRECT` writes
    /// go into space reserved whole when it opens (see [`direct`](crate::direct)).
    pub(super) dense: bool,
    /// The file's directory, relative to the destination (shared by the files of one
    /// directory), and its name there.
    pub(super) dir: Arc<[u8]>,
    pub(super) name: Arc<[u8]>,
    /// Expected pieces by offset, with their length.
    pub(super) pieces: HashMap<u64, u32>,
    /// The pieces in the partial file, by offset, with the xxh3-64 their bytes were
    /// checked against (the whole-file digest is made of these; see `file_digest`).
    pub(super) received: HashMap<u64, u64>,
    /// The identity of the journal to create with the file (fresh files of more than one
    /// piece). A file of one piece has none: resuming it means sending that piece
    /// again, so its journal would only cost a file creation (the dearest step for
    /// small files).
    pub(super) new_journal: Option<journal::Identity>,
    /// Resume: the partial file and journal the manifest checked, reopened by the first
    /// Block (so a job's files hold no descriptors before their data comes).
    pub(super) resumed: Option<Resumed>,
    /// `None` until the first Block (or the Commit) of the file opens it, under the
    /// file's own lock (see the [`target`](super) docs).
    pub(super) open: Option<OpenPartial>,
    /// Its pieces' share of the job's [`TargetLimits::max_job_pieces`](super::TargetLimits::max_job_pieces).
    pub(super) _pieces: PieceCharge,
}

/// The partial file and journal a resume checked, by device and inode.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resumed {
    pub(super) file: Stat,
    pub(super) journal: Stat,
}

/// A file being written: its descriptors.
#[derive(Debug)]
pub(super) struct OpenPartial {
    pub(super) dir: Arc<DirHandle>,
    /// The `.hawser-partial` folder the file is named in; `None` for a file of one
    /// small piece, written unnamed in its directory (see [`Partial::open`]).
    pub(super) partial_dir: Option<Arc<OwnedFd>>,
    /// Shared with the blocks being written outside the file's lock.
    pub(super) file: Arc<File>,
    /// The `O_DIRECT` descriptor for large pieces (see [`direct`](crate::direct)),
    /// opened with the first large piece; `direct_tried` once that was attempted.
    direct: Option<Arc<DirectFile>>,
    direct_tried: bool,
    pub(super) journal: Option<Journal>,
    _slot: OpenSlot,
}

impl Partial {
    /// Opens the file's descriptors if they are not open yet: creates the partial file
    /// (and its journal), or reopens the ones a resume checked. A fresh file of one
    /// piece too small for `O_DIRECT` has nothing a resume could keep (it has no
    /// journal), so it is created unnamed in its own directory and linked there by its
    /// Commit: no entry in `.hawser-partial` to make and remove again, no rename from
    /// one directory to another, and nothing left behind if the job stops first.
    pub(super) fn open(&mut self, job: &Job) -> Result<&mut OpenPartial, TargetError> {
        if self.open.is_none() {
            let slot = job.open_slot()?;
            let opened = self.open_files(job, slot);
            let opened = opened.map_err(|e| job.io_error(&self.dir, &self.name, e))?;
            self.open = Some(opened);
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    fn open_files(&mut self, job: &Job, slot: OpenSlot) -> io::Result<OpenPartial> {
        let dir = job.dir(&self.dir, false, &mut 0)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the file's directory is gone")
        })?;
        let (partial_dir, file, journal) = match self.resumed.take() {
            Some(resumed) => {
                let (temp, journal_name) =
                    (temp_name(&self.name, PART), temp_name(&self.name, JOURNAL));
                let folder = dir.partial_dir()?;
                let file = beneath::open_regular(folder.as_fd(), &temp, OFlags::RDWR)?;
                let journal = beneath::open_regular(
                    folder.as_fd(),
                    &journal_name,
                    OFlags::RDWR | OFlags::APPEND,
                )?;
                if !beneath::same_file(&beneath::fstat(&file)?, &resumed.file)
                    || !beneath::same_file(&beneath::fstat(&journal)?, &resumed.journal)
                {
                    return Err(io::Error::other(
                        "the partial file or its journal was replaced since the manifest",
                    ));
                }
                let journal = Journal::resume(journal, job.options.fsync);
                (Some(folder), file, Some(journal))
            }
            None if self.new_journal.is_none()
                && self.pieces.len() <= 1
                && self.size < DIRECT_MIN_PIECE as u64
                && beneath::can_link_unnamed() =>
            {
                match beneath::create_unnamed(dir.fd(), 0o600) {
                    Ok(file) => {
                        // A dense file's one piece gives it its size.
                        if !self.dense {
                            file.set_len(self.size)?;
                        }
                        (None, file, None)
                    }
                    Err(e) if beneath::unnamed_unsupported(&e) => self.create_named(&dir, job)?,
                    Err(e) => return Err(e),
                }
            }
            None => self.create_named(&dir, job)?,
        };
        Ok(OpenPartial {
            dir,
            partial_dir,
            file: Arc::new(file),
            direct: None,
            direct_tried: false,
            journal,
            _slot: slot,
        })
    }

    /// Creates the partial file in `.hawser-partial` (and its journal, for a file of
    /// several pieces).
    fn create_named(
        &mut self,
        dir: &DirHandle,
        job: &Job,
    ) -> io::Result<(Option<Arc<OwnedFd>>, File, Option<Journal>)> {
        let (temp, journal_name) = (temp_name(&self.name, PART), temp_name(&self.name, JOURNAL));
        let (folder, file) = dir.create_temp(&temp)?;
        // Holes stay holes: only data pieces are ever written.
        file.set_len(self.size)?;
        let journal = match self.new_journal.take() {
            Some(identity) => {
                let created = beneath::create_exclusive(folder.as_fd(), &journal_name, 0o600)?;
                Some(Journal::start(created, identity, job.options.fsync)?)
            }
            None => None,
        };
        Ok((Some(folder), file, journal))
    }

    /// The descriptors a piece of `len` bytes is written through: the file (created if
    /// needed) and, for a large piece in [`WriteMode::Direct`], its `O_DIRECT` twin when
    /// the file system takes it.
    pub(super) fn writers(
        &mut self,
        job: &Job,
        len: usize,
    ) -> Result<(Arc<File>, Option<Arc<DirectFile>>), TargetError> {
        let (dir, name) = (Arc::clone(&self.dir), Arc::clone(&self.name));
        let reserve = self.dense.then_some(self.size);
        let open = self.open(job)?;
        if job.write_mode == WriteMode::Direct
            && len >= DIRECT_MIN_PIECE
            && !open.direct_tried
            && let Some(folder) = &open.partial_dir
        {
            open.direct_tried = true;
            open.direct = DirectFile::open(folder.as_fd(), &temp_name(&name, PART), &open.file)
                .map_err(|e| job.io_error(&dir, &name, e))?
                .map(Arc::new);
            if let (Some(direct), Some(size)) = (&open.direct, reserve) {
                direct
                    .reserve(size)
                    .map_err(|e| job.io_error(&dir, &name, e))?;
            }
        }
        let direct = open.direct.clone().filter(|_| len >= DIRECT_MIN_PIECE);
        Ok((Arc::clone(&open.file), direct))
    }
}
