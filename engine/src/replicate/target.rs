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
//! once ([`RootDir`]), through [`beneath`](super::beneath): the destination and each
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

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};
use rustix::fs::{FileType, OFlags, Stat};
use rustix::io::Errno;

use super::beneath::{self, RootDir, is};
use super::direct::{DIRECT_MIN_PIECE, DirectFile, WriteMode};
use super::error::TargetError;
use super::file_digest;
use super::journal::{self, Journal};
use super::partial_files;
use super::proto::{
    AnswerEntry, Begin, BeginAck, BlockAck, BlockHeader, BlockStatus, CommitAck, CommitFile,
    CommitStatus, DeleteList, DeleteRequest, EntryKind, Finish, FinishReport, JobOptions,
    ManifestAnswer, ManifestBatch, ManifestEntry, MessageKind, PROTOCOL_VERSION, RefusalKind,
    Verdict, block_digest,
};
use super::sparse::{self, Piece};
use super::target_path::{self, PARTIAL_DIR, path_key, split_last, temp_name};
use super::write_behind::{self, WriteBehind};

/// Suffixes of the names in `.hawser-partial`: a file's data, its journal, a symlink
/// before its rename.
const PART: &str = "part";
const JOURNAL: &str = "journal";
const LINK: &str = "link";

/// Directories a job keeps open (least recently used ones are closed first).
const DIR_CACHE: usize = 256;

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
    /// [`MAX_JOB_PIECES`] (smaller in tests).
    max_job_pieces: u64,
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
}

impl Default for TargetLimits {
    fn default() -> Self {
        TargetLimits {
            max_entries: 10_000_000,
            max_open_files: 1024,
        }
    }
}

/// A file's state behind its own lock; `None` once committed.
type FileSlot = Arc<Mutex<Option<Partial>>>;

#[derive(Debug)]
struct Job {
    options: JobOptions,
    write_mode: WriteMode,
    limits: TargetLimits,
    root: RootDir,
    /// The destination relative to the root, for messages.
    dest_rel: Vec<u8>,
    /// The destination; `None` in a dry run whose destination does not exist yet.
    dest: Option<Arc<DirHandle>>,
    /// Read-held by every Manifest, Block and Commit while it runs; write-held by Delete
    /// and Finish, which so wait for those in progress. `true` once finished.
    gate: RwLock<bool>,
    /// Held by one Manifest, Delete or Finish at a time.
    tree: Mutex<Tree>,
    /// Directories in use, by path relative to the destination.
    dirs: Mutex<DirCache>,
    /// Held only to look a file up, insert or remove it.
    partials: Mutex<HashMap<u32, FileSlot>>,
    /// Files with descriptors open (see [`TargetLimits::max_open_files`]).
    open_files: Arc<AtomicUsize>,
    /// Pieces of the files waiting for blocks (see [`MAX_JOB_PIECES`]), and the most.
    pieces: Arc<AtomicU64>,
    max_pieces: u64,
    report: Mutex<FinishReport>,
    /// In [`WriteMode::Direct`], committed files leave the page cache once written
    /// (see [`write_behind`](super::write_behind)).
    write_behind: WriteBehind,
    /// What a full device's error says about partial files, counted once per job.
    no_space_hint: OnceLock<String>,
}

/// What the manifest learns about the tree, used by Delete and Finish.
#[derive(Debug, Default)]
struct Tree {
    /// Keys of the paths the manifest named (`true`) and of the directories on the way
    /// to them that it did not name (`false`): `--delete` keeps them, Finish walks them.
    seen: HashMap<u128, bool>,
    /// Directory metadata by path key, applied at Finish (writing inside changes a
    /// directory's mtime, and a read-only mode would stop the writes).
    dirs: HashMap<u128, (u32, i64)>,
}

/// An open directory of the destination (or the destination itself).
#[derive(Debug)]
struct DirHandle {
    fd: OwnedFd,
    /// Its path relative to the destination.
    rel: Arc<[u8]>,
    /// Its `.hawser-partial` folder, once opened.
    partial: Mutex<Option<Arc<OwnedFd>>>,
}

/// The directories a job keeps open, least recently used closed first.
#[derive(Debug, Default)]
struct DirCache {
    open: HashMap<Vec<u8>, (Arc<DirHandle>, u64)>,
    clock: u64,
}

/// Most pieces one file may have on the target (32 TiB in 8 MiB blocks): the target keeps
/// a small record per piece, so the claimed size of an entry must not decide its memory.
pub(crate) const MAX_PIECES: u64 = 1 << 22;

/// Most pieces the files of one job that wait for their blocks may have in all: each
/// costs a record (about 30 bytes with its table) from the Manifest naming the file to
/// its Commit, and a 60-byte entry may claim [`MAX_PIECES`], so without this a few
/// hundred entries of one small Manifest took tens of GB. A source names its files
/// before it sends their blocks; an honest job of 256 TiB in 8 MiB blocks fits.
pub(crate) const MAX_JOB_PIECES: u64 = 1 << 25;

#[derive(Debug)]
struct Partial {
    size: u64,
    /// The file's directory, relative to the destination (shared by the files of one
    /// directory), and its name there.
    dir: Arc<[u8]>,
    name: Arc<[u8]>,
    /// Expected pieces by offset, with their length.
    pieces: HashMap<u64, u32>,
    /// The pieces in the partial file, by offset, with the xxh3-64 their bytes were
    /// checked against (the whole-file digest is made of these; see `file_digest`).
    received: HashMap<u64, u64>,
    /// The identity of the journal to create with the file (fresh files of more than one
    /// piece). A file of one piece has none: resuming it means sending that piece
    /// again, so its journal would only cost a file creation (the dearest step for
    /// small files).
    new_journal: Option<journal::Identity>,
    /// Resume: the partial file and journal the manifest checked, reopened by the first
    /// Block (so a job's files hold no descriptors before their data comes).
    resumed: Option<Resumed>,
    /// `None` until the first Block (or the Commit) of the file opens it, under the
    /// file's own lock (see the module docs).
    open: Option<OpenPartial>,
    /// Its pieces' share of the job's [`MAX_JOB_PIECES`].
    _pieces: PieceCharge,
}

/// Pieces counted against a job's [`MAX_JOB_PIECES`], given back when dropped.
#[derive(Debug)]
struct PieceCharge(Arc<AtomicU64>, u64);

impl Drop for PieceCharge {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// The partial file and journal a resume checked, by device and inode.
#[derive(Debug, Clone, Copy)]
struct Resumed {
    file: Stat,
    journal: Stat,
}

/// A file being written: its descriptors.
#[derive(Debug)]
struct OpenPartial {
    dir: Arc<DirHandle>,
    partial_dir: Arc<OwnedFd>,
    /// Shared with the blocks being written outside the file's lock.
    file: Arc<File>,
    /// The `O_DIRECT` descriptor for large pieces (see [`direct`](super::direct)),
    /// opened with the first large piece; `direct_tried` once that was attempted.
    direct: Option<Arc<DirectFile>>,
    direct_tried: bool,
    journal: Option<Journal>,
    _slot: OpenSlot,
}

/// One of a job's open files ([`TargetLimits::max_open_files`]), given back when dropped.
#[derive(Debug)]
struct OpenSlot(Arc<AtomicUsize>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Locks `mutex`; a panic elsewhere while holding it does not stop the job.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn add_report(into: &mut FinishReport, more: &FinishReport) {
    into.files_written += more.files_written;
    into.up_to_date += more.up_to_date;
    into.dirs_created += more.dirs_created;
    into.symlinks_created += more.symlinks_created;
    into.deleted += more.deleted;
    into.refused += more.refused;
    into.bytes_received += more.bytes_received;
    into.bytes_resumed += more.bytes_resumed;
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

impl DirHandle {
    fn new(fd: OwnedFd, rel: &[u8]) -> Self {
        DirHandle {
            fd,
            rel: rel.into(),
            partial: Mutex::new(None),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The `.hawser-partial` folder, created if missing (whatever else has its name is
    /// removed first, never followed).
    fn partial_dir(&self) -> io::Result<Arc<OwnedFd>> {
        let mut slot = lock(&self.partial);
        if let Some(fd) = &*slot {
            return Ok(Arc::clone(fd));
        }
        let fd = Arc::new(open_partial_dir(self.fd(), true)?.ok_or(Errno::NOENT)?);
        *slot = Some(Arc::clone(&fd));
        Ok(fd)
    }

    /// The `.hawser-partial` folder if there is one (a resume looks in it).
    fn existing_partial_dir(&self) -> io::Result<Option<Arc<OwnedFd>>> {
        let mut slot = lock(&self.partial);
        if let Some(fd) = &*slot {
            return Ok(Some(Arc::clone(fd)));
        }
        let fd = open_partial_dir(self.fd(), false)?.map(Arc::new);
        slot.clone_from(&fd);
        Ok(fd)
    }

    /// Creates the partial file `name` (see [`beneath::create_exclusive`]). A folder
    /// removed since it was opened (the expiry sweep or another job's Finish removes
    /// empty ones) is created again.
    fn create_temp(&self, name: &[u8]) -> io::Result<(Arc<OwnedFd>, File)> {
        let folder = self.partial_dir()?;
        match beneath::create_exclusive(folder.as_fd(), name, 0o600) {
            Err(e) if is(&e, Errno::NOENT) => {
                *lock(&self.partial) = None;
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

    /// Forgets `rel` and everything under it (it was removed).
    fn forget(&mut self, rel: &[u8]) {
        self.open.retain(|open, _| {
            !(open.starts_with(rel) && (open.len() == rel.len() || open[rel.len()] == b'/'))
        });
    }
}

impl Partial {
    /// Opens the file's descriptors if they are not open yet: creates the partial file
    /// (and its journal), or reopens the ones a resume checked.
    fn open(&mut self, job: &Job) -> Result<&mut OpenPartial, TargetError> {
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
        let (temp, journal_name) = (temp_name(&self.name, PART), temp_name(&self.name, JOURNAL));
        let fsync = job.options.fsync;
        let (partial_dir, file, journal) = match self.resumed.take() {
            Some(resumed) => {
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
                (folder, file, Some(Journal::resume(journal, fsync)))
            }
            None => {
                let (folder, file) = dir.create_temp(&temp)?;
                // Holes stay holes: only data pieces are ever written.
                file.set_len(self.size)?;
                let journal = match self.new_journal.take() {
                    Some(identity) => {
                        let created =
                            beneath::create_exclusive(folder.as_fd(), &journal_name, 0o600)?;
                        Some(Journal::start(created, identity, fsync)?)
                    }
                    None => None,
                };
                (folder, file, journal)
            }
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

    /// The descriptors a piece of `len` bytes is written through: the file (created if
    /// needed) and, for a large piece in [`WriteMode::Direct`], its `O_DIRECT` twin when
    /// the file system takes it.
    fn writers(
        &mut self,
        job: &Job,
        len: usize,
    ) -> Result<(Arc<File>, Option<Arc<DirectFile>>), TargetError> {
        let (dir, name) = (Arc::clone(&self.dir), Arc::clone(&self.name));
        let open = self.open(job)?;
        if job.write_mode == WriteMode::Direct && len >= DIRECT_MIN_PIECE && !open.direct_tried {
            open.direct_tried = true;
            open.direct = DirectFile::open(
                open.partial_dir.as_fd(),
                &temp_name(&name, PART),
                &open.file,
            )
            .map_err(|e| job.io_error(&dir, &name, e))?
            .map(Arc::new);
        }
        let direct = open.direct.clone().filter(|_| len >= DIRECT_MIN_PIECE);
        Ok((Arc::clone(&open.file), direct))
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
            max_job_pieces: MAX_JOB_PIECES,
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
        let dest_existed = opened.as_ref().is_some_and(|(_, existed)| *existed);
        // A new Begin abandons a previous job's open files; their journals stay for resume.
        let job = Job {
            options: begin.options,
            write_mode: self.write_mode,
            limits: self.limits,
            root: self.root.clone(),
            dest_rel: dest_rel.to_vec(),
            dest: opened.map(|(fd, _)| Arc::new(DirHandle::new(fd, b""))),
            gate: RwLock::new(false),
            tree: Mutex::new(Tree::default()),
            dirs: Mutex::new(DirCache::default()),
            partials: Mutex::new(HashMap::new()),
            open_files: Arc::new(AtomicUsize::new(0)),
            pieces: Arc::new(AtomicU64::new(0)),
            max_pieces: self.max_job_pieces,
            report: Mutex::new(FinishReport::default()),
            write_behind: WriteBehind::default(),
            no_space_hint: OnceLock::new(),
        };
        *lock(&self.job) = Some(Arc::new(job));
        BeginAck {
            version: PROTOCOL_VERSION,
            dest_existed,
        }
        .encode(out);
        Ok(())
    }
}

/// The refusal for a directory `rel` that could not be opened or created.
fn dir_refusal(rel: &[u8], e: &io::Error) -> (RefusalKind, String) {
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

#[derive(Debug)]
enum OwnedVerdict {
    UpToDate,
    Done,
    NeedAll,
    NeedBlocks(Vec<u32>),
    Refused(RefusalKind, usize),
}

fn truncate(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

impl Job {
    /// Waits for Delete and Finish; fails once the job is finished.
    fn enter(&self) -> Result<std::sync::RwLockReadGuard<'_, bool>, TargetError> {
        let gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        if *gate {
            return Err(TargetError::NoJob);
        }
        Ok(gate)
    }

    /// Waits for every Manifest, Block and Commit in progress; fails once the job is
    /// finished.
    fn enter_alone(&self) -> Result<std::sync::RwLockWriteGuard<'_, bool>, TargetError> {
        let gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        if *gate {
            return Err(TargetError::NoJob);
        }
        Ok(gate)
    }

    /// `dir/name` under the root, for messages.
    fn display(&self, dir: &[u8], name: &[u8]) -> PathBuf {
        let under_dest = target_path::join(dir, name);
        self.root
            .display(&target_path::join(&self.dest_rel, &under_dest))
    }

    /// The error of an operation on `dir/name`; a full device says what partial files
    /// hold (see [`partial_files`]).
    fn io_error(&self, dir: &[u8], name: &[u8], source: io::Error) -> TargetError {
        let path = self.display(dir, name);
        if is(&source, Errno::NOSPC) || is(&source, Errno::DQUOT) {
            let hint = self.no_space_hint.get_or_init(|| {
                partial_files::no_space_hint(&self.root, partial_files::count_partials(&self.root))
            });
            TargetError::NoSpace {
                path,
                source,
                hint: hint.clone(),
            }
        } else {
            TargetError::Io { path, source }
        }
    }

    /// An entry's I/O error as its refusal.
    fn refusal<'a>(
        &'a self,
        path: &'a [u8],
    ) -> impl FnOnce(io::Error) -> (RefusalKind, String) + 'a {
        let (dir, name) = split_last(path);
        move |e| (RefusalKind::Io, self.io_error(dir, name, e).to_string())
    }

    /// Counts `count` pieces against the job's [`MAX_JOB_PIECES`]; `None` beyond it.
    fn charge_pieces(&self, count: u64) -> Option<PieceCharge> {
        let before = self.pieces.fetch_add(count, Ordering::AcqRel);
        let charge = PieceCharge(Arc::clone(&self.pieces), count);
        (before.saturating_add(count) <= self.max_pieces).then_some(charge)
    }

    /// Takes one of the job's open files.
    fn open_slot(&self) -> Result<OpenSlot, TargetError> {
        let max = self.limits.max_open_files;
        if self.open_files.fetch_add(1, Ordering::AcqRel) >= max {
            self.open_files.fetch_sub(1, Ordering::AcqRel);
            return Err(TargetError::TooManyOpenFiles(max));
        }
        Ok(OpenSlot(Arc::clone(&self.open_files)))
    }

    /// The directory `rel` of the destination, from the cache or opened beneath the
    /// destination (with `create`, missing ones are created and counted in `created`).
    /// `None`: it does not exist (only without `create`).
    fn dir(
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
    fn remove(&self, dir: &DirHandle, name: &[u8]) -> io::Result<()> {
        beneath::remove_all(dir.fd(), name)?;
        lock(&self.dirs).forget(&target_path::join(&dir.rel, name));
        Ok(())
    }

    /// Renames `temp` in `folder` to `name` in `dir` (a directory in the way is removed
    /// first: rename cannot replace one with a file or a symlink).
    fn replace(
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

    fn manifest(&self, batch: ManifestBatch<'_>, out: &mut BytesMut) -> Result<(), TargetError> {
        let _gate = self.enter()?;
        let mut tree = lock(&self.tree);
        let mut report = FinishReport::default();
        let result = self.manifest_entries(&batch, &mut tree, &mut report, out);
        add_report(&mut lock(&self.report), &report);
        result
    }

    fn manifest_entries(
        &self,
        batch: &ManifestBatch<'_>,
        tree: &mut Tree,
        report: &mut FinishReport,
        out: &mut BytesMut,
    ) -> Result<(), TargetError> {
        let mut answers = Vec::with_capacity(batch.entries.len());
        let mut details = Vec::new();
        for entry in &batch.entries {
            let verdict = match self.remember(entry.path, tree)? {
                None => self.entry(entry, tree, report),
                Some(refused) => Err(refused),
            };
            let verdict = verdict.unwrap_or_else(|(kind, detail)| {
                report.refused += 1;
                details.push(detail);
                OwnedVerdict::Refused(kind, details.len() - 1)
            });
            answers.push((entry.file_id, verdict));
        }
        let answer = ManifestAnswer {
            entries: answers
                .into_iter()
                .map(|(file_id, verdict)| AnswerEntry {
                    file_id,
                    verdict: match verdict {
                        OwnedVerdict::UpToDate => Verdict::UpToDate,
                        OwnedVerdict::Done => Verdict::Done,
                        OwnedVerdict::NeedAll => Verdict::NeedAll,
                        OwnedVerdict::NeedBlocks(blocks) => Verdict::NeedBlocks(blocks),
                        OwnedVerdict::Refused(kind, i) => Verdict::Refused {
                            kind,
                            // Details are bounded so the answer always encodes.
                            detail: truncate(details[i].as_bytes(), 1024),
                        },
                    },
                })
                .collect(),
        };
        answer.encode(out)?;
        Ok(())
    }

    /// Checks an entry's path and remembers it: a refusal for a malformed path or one
    /// named before, a failure of the whole request beyond the job's limit.
    fn remember(
        &self,
        path: &[u8],
        tree: &mut Tree,
    ) -> Result<Option<(RefusalKind, String)>, TargetError> {
        if let Err(kind) = target_path::check_relative(path) {
            return Ok(Some((kind, lossy(path))));
        }
        if tree.seen.len() as u64 >= self.limits.max_entries {
            return Err(TargetError::TooManyEntries(self.limits.max_entries));
        }
        if tree.seen.insert(path_key(path), true) == Some(true) {
            return Ok(Some((
                RefusalKind::DuplicatePath,
                format!("{} was named before in this job", lossy(path)),
            )));
        }
        // The directories on the way: a source names them first, others may not.
        let mut dir = split_last(path).0;
        while !dir.is_empty() {
            match tree.seen.entry(path_key(dir)) {
                std::collections::hash_map::Entry::Occupied(_) => break,
                std::collections::hash_map::Entry::Vacant(vacant) => vacant.insert(false),
            };
            dir = split_last(dir).0;
        }
        Ok(None)
    }

    fn entry(
        &self,
        entry: &ManifestEntry<'_>,
        tree: &mut Tree,
        report: &mut FinishReport,
    ) -> Result<OwnedVerdict, (RefusalKind, String)> {
        let dry_run = self.options.dry_run;
        let (dir_rel, name) = split_last(entry.path);
        let dir = self
            .dir(dir_rel, !dry_run, &mut report.dirs_created)
            .map_err(|e| dir_refusal(dir_rel, &e))?;
        let existing = match &dir {
            Some(dir) => beneath::stat(dir.fd(), name).map_err(self.refusal(entry.path))?,
            None => None,
        };
        let existing_kind = existing.as_ref().map(beneath::kind);
        match entry.kind {
            EntryKind::Dir => {
                let verdict = match (existing_kind, &dir) {
                    (Some(FileType::Directory), _) => {
                        report.up_to_date += 1;
                        OwnedVerdict::UpToDate
                    }
                    (_, Some(dir)) if !dry_run => {
                        if existing.is_some() {
                            self.remove(dir, name).map_err(self.refusal(entry.path))?;
                        }
                        beneath::mkdir(dir.fd(), name, 0o777).map_err(self.refusal(entry.path))?;
                        report.dirs_created += 1;
                        OwnedVerdict::Done
                    }
                    _ => OwnedVerdict::Done,
                };
                tree.dirs
                    .insert(path_key(entry.path), (entry.mode, entry.mtime_ns));
                Ok(verdict)
            }
            EntryKind::Symlink => {
                let target = entry.symlink_target;
                if let (Some(FileType::Symlink), Some(dir), Some(st)) =
                    (existing_kind, &dir, &existing)
                    && beneath::read_link(dir.fd(), name).is_ok_and(|t| t == target)
                {
                    if !dry_run && beneath::mtime_ns(st) != entry.mtime_ns {
                        beneath::set_symlink_mtime(dir.fd(), name, entry.mtime_ns)
                            .map_err(self.refusal(entry.path))?;
                    }
                    report.up_to_date += 1;
                    return Ok(OwnedVerdict::UpToDate);
                }
                let Some(dir) = dir.filter(|_| !dry_run) else {
                    return Ok(OwnedVerdict::Done);
                };
                let temp = temp_name(name, LINK);
                let create = || -> io::Result<()> {
                    let folder = dir.partial_dir()?;
                    beneath::remove_all(folder.as_fd(), &temp)?;
                    beneath::symlink(target, folder.as_fd(), &temp)?;
                    let placed = beneath::set_symlink_mtime(folder.as_fd(), &temp, entry.mtime_ns)
                        .and_then(|()| self.replace(folder.as_fd(), &temp, &dir, name));
                    if placed.is_err() {
                        let _ = beneath::unlink(folder.as_fd(), &temp);
                    }
                    placed
                };
                create().map_err(self.refusal(entry.path))?;
                report.symlinks_created += 1;
                Ok(OwnedVerdict::Done)
            }
            EntryKind::File => self.file_entry(entry, dir, existing, report),
        }
    }

    fn file_entry(
        &self,
        entry: &ManifestEntry<'_>,
        dir: Option<Arc<DirHandle>>,
        existing: Option<Stat>,
        report: &mut FinishReport,
    ) -> Result<OwnedVerdict, (RefusalKind, String)> {
        let dry_run = self.options.dry_run;
        let name = split_last(entry.path).1;
        if let (Some(st), Some(dir)) = (&existing, &dir)
            && beneath::kind(st) == FileType::RegularFile
            && beneath::size(st) == entry.size
        {
            let same = if self.options.checksum {
                let hash = beneath::open_regular(dir.fd(), name, OFlags::RDONLY)
                    .and_then(|f| sparse::hash_file(&f, entry.size));
                entry.content_hash.is_some() && hash.ok() == entry.content_hash
            } else {
                beneath::mtime_ns(st) == entry.mtime_ns
            };
            if same {
                if !dry_run {
                    apply_metadata(dir, name, st, entry.mode, entry.mtime_ns)
                        .map_err(self.refusal(entry.path))?;
                }
                report.up_to_date += 1;
                return Ok(OwnedVerdict::UpToDate);
            }
        }
        let Some(dir) = dir.filter(|_| !dry_run) else {
            return Ok(if entry.inline.is_some() {
                OwnedVerdict::Done
            } else {
                OwnedVerdict::NeedAll
            });
        };
        let mut charge = None;
        if entry.inline.is_none() {
            let count = sparse::piece_count(&entry.data_extents(), self.options.block_size);
            charge = (count <= MAX_PIECES)
                .then(|| self.charge_pieces(count))
                .flatten();
            if charge.is_none() {
                return Err((RefusalKind::TooManyBlocks, lossy(entry.path)));
            }
        }
        if let Some(data) = entry.inline {
            if entry.content_hash != Some(hawser_wire::xxh3::hash128(data)) {
                return Err((RefusalKind::ContentMismatch, lossy(entry.path)));
            }
            let temp = temp_name(name, PART);
            let write = || -> io::Result<File> {
                let (folder, mut file) = dir.create_temp(&temp)?;
                let placed = (|| {
                    file.write_all(data)?;
                    beneath::set_mode(&file, entry.mode)?;
                    beneath::set_mtime(&file, entry.mtime_ns)?;
                    if self.options.fsync {
                        file.sync_all()?;
                    }
                    self.replace(folder.as_fd(), &temp, &dir, name)
                })();
                if let Err(e) = placed {
                    let _ = beneath::unlink(folder.as_fd(), &temp);
                    return Err(e);
                }
                Ok(file)
            };
            let file = write().map_err(self.refusal(entry.path))?;
            self.leave_cache(file);
            report.files_written += 1;
            report.bytes_received += data.len() as u64;
            return Ok(OwnedVerdict::Done);
        }
        let charge = charge.expect("charged above for an entry without inline data");
        self.open_partial(entry, &dir, report, charge)
            .map_err(self.refusal(entry.path))
    }

    /// Registers a file needing data; with resume, checks the partial file and journal
    /// an interrupted job left and answers with the blocks still missing.
    fn open_partial(
        &self,
        entry: &ManifestEntry<'_>,
        dir: &DirHandle,
        report: &mut FinishReport,
        charge: PieceCharge,
    ) -> io::Result<OwnedVerdict> {
        let name = split_last(entry.path).1;
        let identity = journal::Identity {
            size: entry.size,
            mtime_ns: entry.mtime_ns,
            block_size: self.options.block_size,
        };
        let pieces: HashMap<u64, u32> =
            sparse::pieces(&entry.data_extents(), self.options.block_size)
                .into_iter()
                .map(|p| (p.offset, p.len))
                .collect();
        let mut resumed = None;
        if self.options.resume
            && let Some(found) = self.check_resumable(dir, name, identity, &pieces, report)?
        {
            resumed = Some(found);
        }
        let (resumed, received) = match resumed {
            Some((ids, received)) => (Some(ids), Some(received)),
            None => (None, None),
        };
        let resuming = received.is_some();
        let received = received.unwrap_or_default();
        let block_size = self.options.block_size;
        let mut missing: Vec<u32> = pieces
            .iter()
            .filter(|(offset, _)| !received.contains_key(offset))
            .map(|(&offset, &len)| Piece { offset, len }.block_index(block_size))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let partial = Partial {
            size: entry.size,
            dir: Arc::clone(&dir.rel),
            name: name.into(),
            new_journal: (!resuming && pieces.len() > 1).then_some(identity),
            pieces,
            received,
            resumed,
            open: None,
            _pieces: charge,
        };
        lock(&self.partials).insert(entry.file_id, Arc::new(Mutex::new(Some(partial))));
        Ok(if resuming {
            OwnedVerdict::NeedBlocks(missing)
        } else {
            OwnedVerdict::NeedAll
        })
    }

    /// The partial file and journal of `name` if an interrupted job left them for this
    /// content: their identities, and the pieces whose bytes on disk still match the
    /// journal's digest (the data of a record may not have reached the disk). Both are
    /// closed again: the first Block reopens them.
    fn check_resumable(
        &self,
        dir: &DirHandle,
        name: &[u8],
        identity: journal::Identity,
        pieces: &HashMap<u64, u32>,
        report: &mut FinishReport,
    ) -> io::Result<Option<(Resumed, HashMap<u64, u64>)>> {
        let Some(folder) = dir.existing_partial_dir()? else {
            return Ok(None);
        };
        let (temp, journal_name) = (temp_name(name, PART), temp_name(name, JOURNAL));
        let Ok(file) = beneath::open_regular(folder.as_fd(), &temp, OFlags::RDWR) else {
            return Ok(None);
        };
        let file_stat = beneath::fstat(&file)?;
        if beneath::size(&file_stat) != identity.size {
            return Ok(None);
        }
        let Ok(journal_file) =
            beneath::open_regular(folder.as_fd(), &journal_name, OFlags::RDWR | OFlags::APPEND)
        else {
            return Ok(None);
        };
        let journal_stat = beneath::fstat(&journal_file)?;
        let Some((_, records)) = Journal::load(journal_file, identity, self.options.fsync)? else {
            return Ok(None);
        };
        let mut received = HashMap::new();
        let mut buf = Vec::new();
        for record in records {
            if pieces.get(&record.offset) != Some(&record.len)
                || received.contains_key(&record.offset)
            {
                continue;
            }
            buf.resize(record.len as usize, 0);
            if file.read_exact_at(&mut buf, record.offset).is_ok()
                && block_digest(&buf) == record.digest
            {
                received.insert(record.offset, record.digest);
                report.bytes_resumed += u64::from(record.len);
            }
        }
        let resumed = Resumed {
            file: file_stat,
            journal: journal_stat,
        };
        Ok(Some((resumed, received)))
    }

    /// The lock of a file the manifest named and that is not committed yet.
    fn file(&self, file_id: u32) -> Result<FileSlot, TargetError> {
        lock(&self.partials)
            .get(&file_id)
            .cloned()
            .ok_or(TargetError::UnknownFile(file_id))
    }

    fn block(&self, header: BlockHeader, data: &[u8]) -> Result<BlockAck, TargetError> {
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

    fn commit(&self, commit: CommitFile) -> Result<CommitAck, TargetError> {
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
        let (name, folder) = (&partial.name, open.partial_dir.as_fd());
        let (temp, journal_name) = (temp_name(name, PART), temp_name(name, JOURNAL));
        let fail = |e| self.io_error(&partial.dir, name, e);
        // Every piece is in (checked above), each checked against its digest.
        let digest = file_digest::from_digests(partial.size, &partial.pieces, &partial.received);
        if digest != Some(commit.content_hash) {
            // The bytes are wrong as a whole: start over next time.
            let _ = beneath::unlink(folder, &temp);
            if open.journal.is_some() {
                let _ = beneath::unlink(folder, &journal_name);
            }
            return Ok(ack(CommitStatus::ContentMismatch));
        }
        let file = &open.file;
        beneath::set_mode(&**file, commit.mode).map_err(fail)?;
        beneath::set_mtime(&**file, commit.mtime_ns).map_err(fail)?;
        if self.options.fsync {
            file.sync_all().map_err(fail)?;
        }
        self.replace(folder, &temp, &open.dir, name).map_err(fail)?;
        if open.journal.is_some() {
            let _ = beneath::unlink(folder, &journal_name);
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

    fn delete(&self, request: DeleteRequest, out: &mut BytesMut) -> Result<(), TargetError> {
        let _gate = self.enter_alone()?;
        let tree = lock(&self.tree);
        let mut removed = Vec::new();
        let mut total = 0;
        if let Some(dest) = &self.dest {
            self.sweep(
                &tree,
                dest.fd(),
                &mut Vec::new(),
                request.max_listed as usize,
                &mut removed,
                &mut total,
                0,
            )?;
        }
        lock(&self.report).deleted += total;
        DeleteList {
            total,
            paths: removed.iter().map(Vec::as_slice).collect(),
        }
        .encode(out)?;
        Ok(())
    }

    /// Removes (or, in a dry run, lists) what is in `dir` (at `rel`) and under it and was
    /// not in the manifest, walking through descriptors.
    #[allow(clippy::too_many_arguments)]
    fn sweep(
        &self,
        tree: &Tree,
        dir: BorrowedFd<'_>,
        rel: &mut Vec<u8>,
        max_listed: usize,
        removed: &mut Vec<Vec<u8>>,
        total: &mut u64,
        depth: usize,
    ) -> Result<(), TargetError> {
        let entries = beneath::list(dir).map_err(|e| self.io_error(rel, b"", e))?;
        for (name, listed) in entries {
            if name == PARTIAL_DIR.as_bytes() {
                continue;
            }
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            if !tree.seen.contains_key(&path_key(rel)) {
                if !self.options.dry_run {
                    beneath::remove_all(dir, &name).map_err(|e| self.io_error(rel, b"", e))?;
                    lock(&self.dirs).forget(rel);
                }
                *total += 1;
                if removed.len() < max_listed {
                    removed.push(rel.clone());
                }
            } else if depth < MAX_DEPTH
                && beneath::listed_kind(dir, &name, listed)
                    .map_err(|e| self.io_error(rel, b"", e))?
                    == Some(FileType::Directory)
            {
                match beneath::open_dir(dir, &name) {
                    Ok(sub) => {
                        self.sweep(
                            tree,
                            sub.as_fd(),
                            rel,
                            max_listed,
                            removed,
                            total,
                            depth + 1,
                        )?;
                    }
                    // No longer a directory since it was listed: nothing in it to sweep.
                    Err(e)
                        if is(&e, Errno::LOOP) || is(&e, Errno::NOTDIR) || is(&e, Errno::NOENT) => {
                    }
                    Err(e) => return Err(self.io_error(rel, b"", e)),
                }
            }
            rel.truncate(len);
        }
        Ok(())
    }

    /// A committed file's pages leave the page cache once written, in
    /// [`WriteMode::Direct`] (the point of which is to keep received data out of it).
    fn leave_cache(&self, file: impl Into<Arc<File>>) {
        if self.write_mode == WriteMode::Direct {
            self.write_behind.written(file.into());
        }
    }

    fn finish(&self) -> Result<FinishReport, TargetError> {
        let mut gate = self.enter_alone()?;
        *gate = true;
        // Files not committed are closed; their partial files and journals stay.
        lock(&self.partials).clear();
        self.write_behind.finish();
        lock(&self.dirs).open.clear();
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

/// Brings an existing file's mode and mtime in line, through a descriptor of the very
/// file `st` describes.
fn apply_metadata(
    dir: &DirHandle,
    name: &[u8],
    st: &Stat,
    mode: u32,
    mtime_ns: i64,
) -> io::Result<()> {
    let (mode_differs, mtime_differs) = (
        beneath::mode(st) != mode & 0o7777,
        beneath::mtime_ns(st) != mtime_ns,
    );
    if !mode_differs && !mtime_differs {
        return Ok(());
    }
    let file = beneath::open_regular(dir.fd(), name, OFlags::RDONLY)?;
    if !beneath::same_file(&beneath::fstat(&file)?, st) {
        return Err(io::Error::other("replaced while it was being checked"));
    }
    if mode_differs {
        beneath::set_mode(&file, mode)?;
    }
    if mtime_differs {
        beneath::set_mtime(&file, mtime_ns)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `replicate_target` fuzz target: a Manifest entry may claim up to
    /// `MAX_PIECES` pieces (a 60-byte entry claiming 1 TiB in 1 MiB blocks took 35 MB and
    /// half a second), and the target keeps a record per piece until the file commits;
    /// the entries of a job must not add up past its piece budget. A commit gives its
    /// file's pieces back.
    #[test]
    fn the_pieces_of_a_jobs_waiting_files_are_bounded() {
        let base =
            std::env::temp_dir().join(format!("hawser-target-pieces-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let mut target = Target::new(&base).unwrap();
        target.max_job_pieces = 10;
        let mut body = BytesMut::new();
        let options = JobOptions {
            block_size: 4096,
            ..JobOptions::default()
        };
        Begin {
            version: PROTOCOL_VERSION,
            job_id: 1,
            options,
            dest: b"d",
        }
        .encode(&mut body)
        .unwrap();
        target.handle(&body).unwrap();
        let size = 4 * 4096;
        let entry = |file_id, path| ManifestEntry {
            file_id,
            path,
            kind: EntryKind::File,
            mode: 0o644,
            mtime_ns: 0,
            size,
            symlink_target: b"",
            extents: None,
            content_hash: None,
            inline: None,
        };
        let manifest = |target: &mut Target, entries| {
            let mut body = BytesMut::new();
            ManifestBatch { entries }.encode(&mut body).unwrap();
            let answer = target.handle(&body).unwrap();
            let answer = ManifestAnswer::decode(&answer).unwrap();
            answer
                .entries
                .iter()
                .map(|e| match &e.verdict {
                    Verdict::Refused { kind, .. } => Some(*kind),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let refused = manifest(
            &mut target,
            vec![entry(1, &b"a"[..]), entry(2, b"b"), entry(3, b"c")],
        );
        assert_eq!(refused, [None, None, Some(RefusalKind::TooManyBlocks)]);
        // File 1 arrives and commits: its 4 pieces go back to the budget.
        let data = [7u8; 4096];
        let mut digest = file_digest::FileDigest::new(size);
        for i in 0..4u64 {
            let mut body = BytesMut::new();
            let header = BlockHeader {
                file_id: 1,
                offset: i * 4096,
                digest: block_digest(&data),
            };
            header.encode(&mut body);
            body.extend_from_slice(&data);
            target.handle(&body).unwrap();
            let piece = Piece {
                offset: i * 4096,
                len: 4096,
            };
            digest.piece(piece, block_digest(&data));
        }
        let mut body = BytesMut::new();
        CommitFile {
            file_id: 1,
            size,
            content_hash: digest.finish(),
            mode: 0o644,
            mtime_ns: 0,
        }
        .encode(&mut body);
        let ack = CommitAck::decode(&target.handle(&body).unwrap()).unwrap();
        assert_eq!(ack.status, CommitStatus::Committed);
        let refused = manifest(&mut target, vec![entry(4, &b"e"[..]), entry(5, b"f")]);
        assert_eq!(refused, [None, Some(RefusalKind::TooManyBlocks)]);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A full device (the error injected: a test cannot fill a file system) fails the
    /// request with how much the partial files under the root hold and how to remove
    /// them; other errors stay plain I/O errors.
    #[test]
    fn a_full_device_says_what_partial_files_hold_under_the_root() {
        let base =
            std::env::temp_dir().join(format!("hawser-target-nospace-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("old/.hawser-partial")).unwrap();
        std::fs::write(
            base.join("old/.hawser-partial/f.part"),
            vec![1u8; 64 * 1024],
        )
        .unwrap();
        let target = Target::new(&base).unwrap();
        let mut out = BytesMut::new();
        let begin = Begin {
            version: PROTOCOL_VERSION,
            job_id: 1,
            options: JobOptions::default(),
            dest: b"new",
        };
        target.begin(begin, &mut out).unwrap();
        let job = target.job().unwrap();
        let full = job.io_error(b"dir", b"file", Errno::NOSPC.into());
        assert_eq!(full.type_name(), "hawser.replicate.NoSpace");
        let message = full.to_string();
        let root = target.root().display().to_string();
        assert!(
            message.starts_with(&format!("{root}/new/dir/file: ")),
            "{message}"
        );
        assert!(message.contains(": 1 files, 64.0 KiB"), "{message}");
        assert!(message.contains("--clean-partials"), "{message}");
        let quota = job.io_error(b"", b"file", Errno::DQUOT.into());
        assert_eq!(quota.type_name(), "hawser.replicate.NoSpace");
        let other = job.io_error(b"", b"file", Errno::ACCESS.into());
        assert_eq!(other.type_name(), "hawser.replicate.Io");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
