//! The directories a job works in: an open descriptor per directory (cached, so a
//! directory costs one `openat2` per job, not one per file), its `.hawser-partial`
//! folder, and placing an entry into a directory by rename.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use rustix::io::Errno;

use super::job::{Job, lock, lossy};
use super::partial::PART;
use crate::beneath::{self, is};
use crate::proto::RefusalKind;
use crate::target_path::{self, PARTIAL_DIR};

/// Directories a job keeps open (least recently used ones are closed first).
const DIR_CACHE: usize = 256;

/// An open directory of the destination (or the destination itself).
#[derive(Debug)]
pub(super) struct DirHandle {
    fd: OwnedFd,
    /// Its path relative to the destination.
    pub(super) rel: Arc<[u8]>,
    /// What the job knows of its `.hawser-partial` folder.
    partial: Mutex<PartialFolder>,
}

/// A directory's `.hawser-partial` folder as far as the job knows.
#[derive(Debug, Default)]
enum PartialFolder {
    #[default]
    NotLooked,
    /// There was none when the job looked (and the job has made none since).
    Absent,
    Open(Arc<OwnedFd>),
}

/// The directories a job keeps open, least recently used closed first.
#[derive(Debug, Default)]
pub(super) struct DirCache {
    open: HashMap<Vec<u8>, (Arc<DirHandle>, u64)>,
    clock: u64,
}

impl DirHandle {
    pub(super) fn new(fd: OwnedFd, rel: &[u8]) -> Self {
        DirHandle {
            fd,
            rel: rel.into(),
            partial: Mutex::new(PartialFolder::NotLooked),
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The `.hawser-partial` folder, created if missing (whatever else has its name is
    /// removed first, never followed).
    pub(super) fn partial_dir(&self) -> io::Result<Arc<OwnedFd>> {
        let mut slot = lock(&self.partial);
        if let PartialFolder::Open(fd) = &*slot {
            return Ok(Arc::clone(fd));
        }
        let fd = Arc::new(open_partial_dir(self.fd(), true)?.ok_or(Errno::NOENT)?);
        *slot = PartialFolder::Open(Arc::clone(&fd));
        Ok(fd)
    }

    /// The `.hawser-partial` folder if there is one (a resume looks in it); looked for
    /// once per job.
    pub(super) fn existing_partial_dir(&self) -> io::Result<Option<Arc<OwnedFd>>> {
        let mut slot = lock(&self.partial);
        match &*slot {
            PartialFolder::Open(fd) => return Ok(Some(Arc::clone(fd))),
            PartialFolder::Absent => return Ok(None),
            PartialFolder::NotLooked => {}
        }
        let fd = open_partial_dir(self.fd(), false)?.map(Arc::new);
        *slot = match &fd {
            Some(fd) => PartialFolder::Open(Arc::clone(fd)),
            None => PartialFolder::Absent,
        };
        Ok(fd)
    }

    /// Creates the partial file `name` (see [`beneath::create_exclusive`]). A folder
    /// removed since it was opened (the expiry sweep or another job's Finish removes
    /// empty ones) is created again.
    pub(super) fn create_temp(&self, name: &[u8]) -> io::Result<(Arc<OwnedFd>, File)> {
        let folder = self.partial_dir()?;
        match beneath::create_exclusive(folder.as_fd(), name, 0o600) {
            Err(e) if is(&e, Errno::NOENT) => {
                *lock(&self.partial) = PartialFolder::NotLooked;
                let folder = self.partial_dir()?;
                let file = beneath::create_exclusive(folder.as_fd(), name, 0o600)?;
                Ok((folder, file))
            }
            other => other.map(|file| (folder, file)),
        }
    }
}

/// Opens the `.hawser-partial` folder of `dir`. With `create`, a missing one is created
/// (mode 0700) and anything else by its name (a symlink someone planted, a file) is
/// removed first; without, those mean there is none.
fn open_partial_dir(dir: BorrowedFd<'_>, create: bool) -> io::Result<Option<OwnedFd>> {
    let name = PARTIAL_DIR.as_bytes();
    for _ in 0..4 {
        match beneath::open_dir(dir, name) {
            Ok(fd) => return Ok(Some(fd)),
            Err(e)
                if !create
                    && (is(&e, Errno::NOENT) || is(&e, Errno::LOOP) || is(&e, Errno::NOTDIR)) =>
            {
                return Ok(None);
            }
            Err(e) if is(&e, Errno::NOENT) => {}
            Err(e) if is(&e, Errno::LOOP) || is(&e, Errno::NOTDIR) => {
                beneath::remove_all(dir, name)?
            }
            Err(e) => return Err(e),
        }
        match beneath::mkdir(dir, name, 0o700) {
            Err(e) if !is(&e, Errno::EXIST) => return Err(e),
            _ => {}
        }
    }
    Err(io::Error::other("the partial folder keeps being replaced"))
}

impl DirCache {
    fn get(&mut self, rel: &[u8]) -> Option<Arc<DirHandle>> {
        self.clock += 1;
        let now = self.clock;
        self.open.get_mut(rel).map(|(handle, used)| {
            *used = now;
            Arc::clone(handle)
        })
    }

    fn insert(&mut self, handle: &Arc<DirHandle>) {
        if self.open.len() >= DIR_CACHE
            && let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(rel, _)| rel.clone())
        {
            self.open.remove(&oldest);
        }
        self.clock += 1;
        self.open
            .insert(handle.rel.to_vec(), (Arc::clone(handle), self.clock));
    }

    /// Closes every directory (the job is over).
    pub(super) fn close_all(&mut self) {
        self.open.clear();
    }

    /// Forgets `rel` and everything under it (it was removed).
    pub(super) fn forget(&mut self, rel: &[u8]) {
        self.open.retain(|open, _| {
            !(open.starts_with(rel) && (open.len() == rel.len() || open[rel.len()] == b'/'))
        });
    }
}

/// The refusal for a directory `rel` that could not be opened or created.
pub(super) fn dir_refusal(rel: &[u8], e: &io::Error) -> (RefusalKind, String) {
    let rel = lossy(rel);
    if is(e, Errno::LOOP) {
        (
            RefusalKind::SymlinkEscape,
            format!("a symlink is on the way to {rel}"),
        )
    } else if is(e, Errno::NOTDIR) {
        (
            RefusalKind::Io,
            format!("something on the way to {rel} is not a directory"),
        )
    } else {
        (RefusalKind::Io, format!("{rel}: {e}"))
    }
}

impl Job {
    /// The directory `rel` of the destination, from the cache or opened beneath the
    /// destination (with `create`, missing ones are created and counted in `created`).
    /// `None`: it does not exist (only without `create`).
    pub(super) fn dir(
        &self,
        rel: &[u8],
        create: bool,
        created: &mut u64,
    ) -> io::Result<Option<Arc<DirHandle>>> {
        if rel.is_empty() {
            return Ok(self.dest.clone());
        }
        if let Some(handle) = lock(&self.dirs).get(rel) {
            return Ok(Some(handle));
        }
        let Some(dest) = &self.dest else {
            return Ok(None);
        };
        let fd = if create {
            let (fd, made) = beneath::create_dirs(dest.fd(), rel)?;
            *created += made;
            fd
        } else {
            match beneath::open_dir(dest.fd(), rel) {
                Err(e) if is(&e, Errno::NOENT) => return Ok(None),
                other => other?,
            }
        };
        let handle = Arc::new(DirHandle::new(fd, rel));
        lock(&self.dirs).insert(&handle);
        Ok(Some(handle))
    }

    /// Removes `name` from `dir` (all of it, for a directory), never following a link.
    pub(super) fn remove(&self, dir: &DirHandle, name: &[u8]) -> io::Result<()> {
        beneath::remove_all(dir.fd(), name)?;
        lock(&self.dirs).forget(&target_path::join(&dir.rel, name));
        Ok(())
    }

    /// Links the unnamed `file` as `name` in `dir`. Where the name is taken (a link
    /// cannot replace), it is linked as its partial file first and renamed into place;
    /// a partial file an interrupted job left under the name is removed.
    pub(super) fn link_into_place(
        &self,
        file: &File,
        dir: &DirHandle,
        name: &[u8],
    ) -> io::Result<()> {
        match beneath::link_unnamed(file, dir.fd(), name) {
            Err(e) if is(&e, Errno::EXIST) => {
                let temp = target_path::temp_name(name, PART);
                let folder = dir.partial_dir()?;
                beneath::remove_all(folder.as_fd(), &temp)?;
                beneath::link_unnamed(file, folder.as_fd(), &temp)?;
                let placed = self.replace(folder.as_fd(), &temp, dir, name);
                if placed.is_err() {
                    let _ = beneath::unlink(folder.as_fd(), &temp);
                }
                placed
            }
            Err(e) => Err(e),
            Ok(()) => {
                // What an interrupted job left under this name is stale now (best
                // effort: the file is in place whatever happens to it).
                if let Ok(Some(folder)) = dir.existing_partial_dir() {
                    let _ = beneath::unlink(folder.as_fd(), &target_path::temp_name(name, PART));
                }
                if self.options.fsync {
                    beneath::sync(dir.fd())?;
                }
                Ok(())
            }
        }
    }

    /// Renames `temp` in `folder` to `name` in `dir` (a directory in the way is removed
    /// first: rename cannot replace one with a file or a symlink).
    pub(super) fn replace(
        &self,
        folder: BorrowedFd<'_>,
        temp: &[u8],
        dir: &DirHandle,
        name: &[u8],
    ) -> io::Result<()> {
        match beneath::rename(folder, temp, dir.fd(), name) {
            Err(e) if is(&e, Errno::ISDIR) || is(&e, Errno::NOTEMPTY) || is(&e, Errno::EXIST) => {
                self.remove(dir, name)?;
                beneath::rename(folder, temp, dir.fd(), name)?;
            }
            other => other?,
        }
        if self.options.fsync {
            beneath::sync(dir.fd())?;
        }
        Ok(())
    }
}
