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
//! # Concurrency
//!
//! [`Target::handle_concurrent`] takes `&self`: the session runs a job's requests on
//! several handler threads, and Blocks and Commits of different files run in parallel.
//! A job keeps its file table under a lock held only to look a file up; each file has
//! its own lock for its bookkeeping and commit (a Block is hashed and written outside
//! it: the blocks of one file are checked and written in parallel). Manifest batches run
//! one at a time (they arrive ordered). A fresh file's partial file is created by its first Block
//! (or its Commit, for a file without data pieces) under that file's lock, not by the
//! Manifest: creating a file is the dearest step for small files, and this way
//! creations run in parallel. Delete and Finish wait for every Block, Commit and Manifest
//! in progress (a job-wide read/write gate), and requests after Finish find no job.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};

use super::direct::{DIRECT_MIN_PIECE, DirectFile, WriteMode};
use super::error::TargetError;
use super::file_digest;
use super::journal::{self, Journal};
use super::proto::{
    AnswerEntry, Begin, BeginAck, BlockAck, BlockHeader, BlockStatus, CommitAck, CommitFile,
    CommitStatus, DeleteList, DeleteRequest, EntryKind, Finish, FinishReport, JobOptions,
    ManifestAnswer, ManifestBatch, ManifestEntry, MessageKind, PROTOCOL_VERSION, RefusalKind,
    Verdict, block_digest,
};
use super::sparse::{self, Piece};
use super::target_path::{self, PARTIAL_DIR};
use super::write_behind::{self, WriteBehind};

/// The target of replication jobs: everything it writes is under `root`.
#[derive(Debug)]
pub struct Target {
    root: PathBuf,
    /// The current job; held only to take a reference to it.
    job: Mutex<Option<Arc<Job>>>,
    write_mode: WriteMode,
}

/// A file's state behind its own lock; `None` once committed.
type FileSlot = Arc<Mutex<Option<Partial>>>;

#[derive(Debug)]
struct Job {
    options: JobOptions,
    write_mode: WriteMode,
    dest: PathBuf,
    /// Read-held by every Manifest, Block and Commit while it runs; write-held by Delete
    /// and Finish, which so wait for those in progress. `true` once finished.
    gate: RwLock<bool>,
    /// Held by one Manifest, Delete or Finish at a time.
    tree: Mutex<Tree>,
    /// Held only to look a file up, insert or remove it.
    partials: Mutex<HashMap<u32, FileSlot>>,
    report: Mutex<FinishReport>,
    /// In [`WriteMode::Direct`], committed files leave the page cache once written
    /// (see [`write_behind`](super::write_behind)).
    write_behind: WriteBehind,
}

/// What the manifest learns about the tree, used by Delete and Finish.
#[derive(Debug, Default)]
struct Tree {
    /// Every path the manifest named, for `--delete`.
    seen: HashSet<Vec<u8>>,
    /// Directory metadata, applied at the end (writing inside changes a directory's mtime,
    /// and a read-only mode would stop the writes).
    dirs: Vec<(PathBuf, u32, i64)>,
    /// `.hawser-partial` folders this job created, removed at the end when empty.
    partial_dirs: HashSet<PathBuf>,
}

/// Most pieces one file may have on the target (32 TiB in 8 MiB blocks): the target keeps
/// a small record per piece, so the claimed size of an entry must not decide its memory.
pub(crate) const MAX_PIECES: u64 = 1 << 22;

#[derive(Debug)]
struct Partial {
    size: u64,
    final_path: PathBuf,
    temp_path: PathBuf,
    journal_path: PathBuf,
    /// `None` until the first Block (or the Commit) of a fresh file creates it, under
    /// the file's own lock (see the module docs). Shared with the blocks being written
    /// outside that lock.
    file: Option<Arc<File>>,
    /// The `O_DIRECT` descriptor for large pieces (see [`direct`](super::direct)),
    /// opened with the first large piece; `direct_tried` once that was attempted.
    direct: Option<Arc<DirectFile>>,
    direct_tried: bool,
    /// `None` for a file of one piece: resuming it means sending that piece again, so
    /// its journal would only cost a file creation (the dearest step for small files).
    journal: Option<Journal>,
    /// The identity of the journal to create with the file (fresh files of more than one
    /// piece).
    new_journal: Option<journal::Identity>,
    /// Expected pieces by offset, with their length.
    pieces: HashMap<u64, u32>,
    /// The pieces in the partial file, by offset, with the xxh3-64 their bytes were
    /// checked against (the whole-file digest is made of these; see `file_digest`).
    received: HashMap<u64, u64>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TargetError + '_ {
    move |source| TargetError::Io {
        path: path.to_owned(),
        source,
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

impl Partial {
    /// Creates the partial file (and its journal) if it is not open yet.
    fn open(&mut self, fsync: bool) -> Result<&Arc<File>, TargetError> {
        if self.file.is_none() {
            let file = File::options()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&self.temp_path)
                .map_err(io_err(&self.temp_path))?;
            // Holes stay holes: only data pieces are ever written.
            file.set_len(self.size).map_err(io_err(&self.temp_path))?;
            if let Some(identity) = self.new_journal.take() {
                self.journal = Some(
                    Journal::create(&self.journal_path, identity, fsync)
                        .map_err(io_err(&self.journal_path))?,
                );
            }
            self.file = Some(Arc::new(file));
        }
        Ok(self.file.as_ref().expect("opened above"))
    }

    /// The descriptors a piece of `len` bytes is written through: the file (created if
    /// needed) and, for a large piece in [`WriteMode::Direct`], its `O_DIRECT` twin when
    /// the file system takes it.
    fn writers(
        &mut self,
        fsync: bool,
        mode: WriteMode,
        len: usize,
    ) -> Result<(Arc<File>, Option<Arc<DirectFile>>), TargetError> {
        let file = self.open(fsync)?.clone();
        if mode == WriteMode::Direct && len >= DIRECT_MIN_PIECE && !self.direct_tried {
            self.direct_tried = true;
            self.direct = DirectFile::open(&self.temp_path)
                .map_err(io_err(&self.temp_path))?
                .map(Arc::new);
        }
        let direct = self.direct.clone().filter(|_| len >= DIRECT_MIN_PIECE);
        Ok((file, direct))
    }
}

fn refusal(kind: RefusalKind) -> impl FnOnce(io::Error) -> (RefusalKind, String) {
    move |e| (kind, e.to_string())
}

impl Target {
    /// A target writing under `root` (which must exist).
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Target {
            root: std::fs::canonicalize(root)?,
            job: Mutex::new(None),
            write_mode: WriteMode::default(),
        })
    }

    /// How file data is written ([`WriteMode::Direct`] by default: large pieces past
    /// the page cache where the file system allows it).
    pub fn with_write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = mode;
        self
    }

    /// The root everything is written under.
    pub fn root(&self) -> &Path {
        &self.root
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
        // An empty destination is the root itself.
        let mut dest_existed = true;
        let dest = if begin.dest.is_empty() || begin.dest == b"." {
            self.root.clone()
        } else {
            target_path::check_relative(begin.dest).map_err(|kind| TargetError::Destination {
                kind,
                detail: String::from_utf8_lossy(begin.dest).into_owned(),
            })?;
            let (dest, _) =
                target_path::prepare_parents(&self.root, begin.dest, begin.options.dry_run)
                    .map_err(|(kind, detail)| TargetError::Destination { kind, detail })?;
            match std::fs::symlink_metadata(&dest) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(TargetError::Destination {
                        kind: RefusalKind::SymlinkEscape,
                        detail: format!("{} is not a directory", dest.display()),
                    });
                }
                Err(_) if begin.options.dry_run => dest_existed = false,
                Err(_) => {
                    dest_existed = false;
                    std::fs::create_dir(&dest).map_err(io_err(&dest))?;
                }
            }
            dest
        };
        // A new Begin abandons a previous job's open files; their journals stay for resume.
        let job = Job {
            options: begin.options,
            write_mode: self.write_mode,
            dest,
            gate: RwLock::new(false),
            tree: Mutex::new(Tree::default()),
            partials: Mutex::new(HashMap::new()),
            report: Mutex::new(FinishReport::default()),
            write_behind: WriteBehind::default(),
        };
        job.note_partial_dir(&mut lock(&job.tree), &job.dest);
        *lock(&self.job) = Some(Arc::new(job));
        BeginAck {
            version: PROTOCOL_VERSION,
            dest_existed,
        }
        .encode(out);
        Ok(())
    }
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
            tree.seen.insert(entry.path.to_vec());
            let verdict = match self.entry(entry, tree, report) {
                Ok(verdict) => verdict,
                Err((kind, detail)) => {
                    report.refused += 1;
                    details.push(detail);
                    OwnedVerdict::Refused(kind, details.len() - 1)
                }
            };
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

    fn entry(
        &self,
        entry: &ManifestEntry<'_>,
        tree: &mut Tree,
        report: &mut FinishReport,
    ) -> Result<OwnedVerdict, (RefusalKind, String)> {
        target_path::check_relative(entry.path)
            .map_err(|kind| (kind, String::from_utf8_lossy(entry.path).into_owned()))?;
        let dry_run = self.options.dry_run;
        let (path, created) = target_path::prepare_parents(&self.dest, entry.path, dry_run)?;
        report.dirs_created += created;
        let existing = std::fs::symlink_metadata(&path).ok();
        match entry.kind {
            EntryKind::Dir => {
                tree.dirs.push((path.clone(), entry.mode, entry.mtime_ns));
                self.note_partial_dir(tree, &path);
                match existing {
                    Some(meta) if meta.is_dir() => {
                        report.up_to_date += 1;
                        Ok(OwnedVerdict::UpToDate)
                    }
                    _ if dry_run => Ok(OwnedVerdict::Done),
                    other => {
                        if let Some(meta) = other {
                            remove_any(&path, &meta).map_err(refusal(RefusalKind::Io))?;
                        }
                        std::fs::create_dir(&path).map_err(refusal(RefusalKind::Io))?;
                        report.dirs_created += 1;
                        Ok(OwnedVerdict::Done)
                    }
                }
            }
            EntryKind::Symlink => {
                let target = OsStr::from_bytes(entry.symlink_target);
                if let Some(meta) = &existing
                    && meta.file_type().is_symlink()
                    && std::fs::read_link(&path).is_ok_and(|t| t.as_os_str() == target)
                {
                    if !dry_run && mtime_ns(meta) != entry.mtime_ns {
                        set_mtime_nofollow(&path, entry.mtime_ns)
                            .map_err(refusal(RefusalKind::Io))?;
                    }
                    report.up_to_date += 1;
                    return Ok(OwnedVerdict::UpToDate);
                }
                if dry_run {
                    return Ok(OwnedVerdict::Done);
                }
                let temp = self
                    .temp_path(tree, &path, "link")
                    .map_err(refusal(RefusalKind::Io))?;
                let _ = std::fs::remove_file(&temp);
                std::os::unix::fs::symlink(target, &temp).map_err(refusal(RefusalKind::Io))?;
                set_mtime_nofollow(&temp, entry.mtime_ns).map_err(refusal(RefusalKind::Io))?;
                replace(&temp, &path, existing.as_ref(), self.options.fsync)
                    .map_err(refusal(RefusalKind::Io))?;
                report.symlinks_created += 1;
                Ok(OwnedVerdict::Done)
            }
            EntryKind::File => self.file_entry(entry, path, existing, tree, report),
        }
    }

    fn file_entry(
        &self,
        entry: &ManifestEntry<'_>,
        path: PathBuf,
        existing: Option<std::fs::Metadata>,
        tree: &mut Tree,
        report: &mut FinishReport,
    ) -> Result<OwnedVerdict, (RefusalKind, String)> {
        let dry_run = self.options.dry_run;
        if let Some(meta) = &existing
            && meta.is_file()
            && meta.len() == entry.size
        {
            let same = if self.options.checksum {
                let hash = File::open(&path).and_then(|f| sparse::hash_file(&f, entry.size));
                entry.content_hash.is_some() && hash.ok() == entry.content_hash
            } else {
                mtime_ns(meta) == entry.mtime_ns
            };
            if same {
                if !dry_run {
                    apply_metadata(&path, meta, entry.mode, entry.mtime_ns)
                        .map_err(refusal(RefusalKind::Io))?;
                }
                report.up_to_date += 1;
                return Ok(OwnedVerdict::UpToDate);
            }
        }
        if dry_run {
            return Ok(if entry.inline.is_some() {
                OwnedVerdict::Done
            } else {
                OwnedVerdict::NeedAll
            });
        }
        if entry.inline.is_none()
            && sparse::piece_count(&entry.data_extents(), self.options.block_size) > MAX_PIECES
        {
            return Err((
                RefusalKind::TooManyBlocks,
                String::from_utf8_lossy(entry.path).into_owned(),
            ));
        }
        let temp = self
            .temp_path(tree, &path, "part")
            .map_err(refusal(RefusalKind::Io))?;
        if let Some(data) = entry.inline {
            if entry.content_hash != Some(hawser_wire::xxh3::hash128(data)) {
                return Err((
                    RefusalKind::ContentMismatch,
                    String::from_utf8_lossy(entry.path).into_owned(),
                ));
            }
            let write = || -> io::Result<()> {
                let mut file = File::options()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(&temp)?;
                file.write_all(data)?;
                file.set_permissions(Permissions::from_mode(entry.mode))?;
                set_file_mtime(&file, entry.mtime_ns)?;
                if self.options.fsync {
                    file.sync_all()?;
                }
                replace(&temp, &path, existing.as_ref(), self.options.fsync)?;
                self.leave_cache(file);
                Ok(())
            };
            write().map_err(refusal(RefusalKind::Io))?;
            report.files_written += 1;
            report.bytes_received += data.len() as u64;
            return Ok(OwnedVerdict::Done);
        }
        self.open_partial(entry, path, temp, report)
            .map_err(refusal(RefusalKind::Io))
    }

    /// Opens (or, with resume, reopens) the partial file of an entry needing data.
    fn open_partial(
        &self,
        entry: &ManifestEntry<'_>,
        final_path: PathBuf,
        temp_path: PathBuf,
        report: &mut FinishReport,
    ) -> io::Result<OwnedVerdict> {
        let mut journal_path = temp_path.clone();
        journal_path.set_extension("journal");
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
        let fsync = self.options.fsync;
        let mut resumed = None;
        if self.options.resume
            && let Ok(file) = File::options().read(true).write(true).open(&temp_path)
            && file.metadata()?.len() == entry.size
            && let Some((journal, records)) = Journal::reopen(&journal_path, identity, fsync)?
        {
            // A record counts only if its piece is one of this file's and the bytes on
            // disk still match its digest (the data may not have reached the disk).
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
            resumed = Some((file, journal, received));
        }
        let resuming = resumed.is_some();
        // A fresh file is created by its first Block, under its own lock (module docs).
        let (file, journal, new_journal, received) = match resumed {
            Some((file, journal, received)) => (Some(file), Some(journal), None, received),
            None => (
                None,
                None,
                (pieces.len() > 1).then_some(identity),
                HashMap::new(),
            ),
        };
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
            final_path,
            temp_path,
            journal_path,
            file: file.map(Arc::new),
            direct: None,
            direct_tried: false,
            journal,
            new_journal,
            pieces,
            received,
        };
        lock(&self.partials).insert(entry.file_id, Arc::new(Mutex::new(Some(partial))));
        Ok(if resuming {
            OwnedVerdict::NeedBlocks(missing)
        } else {
            OwnedVerdict::NeedAll
        })
    }

    /// Remembers a partial folder left by an interrupted job, to remove it at the end if
    /// it is empty by then.
    fn note_partial_dir(&self, tree: &mut Tree, dir: &Path) {
        let partial = dir.join(PARTIAL_DIR);
        if !self.options.dry_run && std::fs::symlink_metadata(&partial).is_ok_and(|m| m.is_dir()) {
            tree.partial_dirs.insert(partial);
        }
    }

    /// `<dir>/.hawser-partial/<name>.<suffix>`, creating the folder.
    fn temp_path(&self, tree: &mut Tree, path: &Path, suffix: &str) -> io::Result<PathBuf> {
        let parent = path.parent().unwrap_or(&self.dest);
        let dir = parent.join(PARTIAL_DIR);
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) => {
                remove_any(&dir, &meta)?;
                std::fs::create_dir(&dir)?;
            }
            Err(_) => std::fs::create_dir(&dir)?,
        }
        tree.partial_dirs.insert(dir.clone());
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".");
        name.push(suffix);
        Ok(dir.join(name))
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
        let (file, direct, temp_path) = {
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
            let (file, direct) = partial.writers(fsync, self.write_mode, data.len())?;
            (file, direct, partial.temp_path.clone())
        };
        match &direct {
            Some(direct) => direct.write_at(&file, data, header.offset),
            None => file.write_all_at(data, header.offset),
        }
        .map_err(io_err(&temp_path))?;
        if fsync {
            file.sync_data().map_err(io_err(&temp_path))?;
        }
        let mut guard = lock(&slot);
        // The source commits a file only once all its blocks are acknowledged, and each
        // piece is written by one request at a time (exactly once), so the file is
        // still here.
        let partial = guard
            .as_mut()
            .ok_or(TargetError::UnknownFile(header.file_id))?;
        if let Some(journal) = &mut partial.journal {
            journal
                .append(journal::Record {
                    offset: header.offset,
                    len: data.len() as u32,
                    digest: header.digest,
                })
                .map_err(io_err(&partial.journal_path))?;
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
            partial.open(self.options.fsync)?;
        }
        // From here on the file is gone from the job, whatever the outcome (as before):
        // a block still waiting for its lock finds it unknown.
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
        let file = partial.file.take().expect("opened above");
        let temp = &partial.temp_path;
        // Every piece is in (checked above), each checked against its digest.
        let digest = file_digest::from_digests(partial.size, &partial.pieces, &partial.received);
        if digest != Some(commit.content_hash) {
            // The bytes are wrong as a whole: start over next time.
            let _ = std::fs::remove_file(temp);
            if partial.journal.is_some() {
                let _ = std::fs::remove_file(&partial.journal_path);
            }
            return Ok(ack(CommitStatus::ContentMismatch));
        }
        let file = &file;
        file.set_permissions(Permissions::from_mode(commit.mode))
            .map_err(io_err(temp))?;
        set_file_mtime(file, commit.mtime_ns).map_err(io_err(temp))?;
        if self.options.fsync {
            file.sync_all().map_err(io_err(temp))?;
        }
        let existing = std::fs::symlink_metadata(&partial.final_path).ok();
        replace(
            temp,
            &partial.final_path,
            existing.as_ref(),
            self.options.fsync,
        )
        .map_err(io_err(&partial.final_path))?;
        if partial.journal.is_some() {
            let _ = std::fs::remove_file(&partial.journal_path);
        }
        if self.options.verify {
            // Drop the cached pages (best effort) so the re-read comes from the device.
            write_behind::drop_cached(file);
            let pieces = file_digest::sorted_pieces(&partial.pieces);
            let reread = File::open(&partial.final_path)
                .and_then(|f| file_digest::read_digest(&f, commit.size, &pieces));
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
        self.sweep(
            &tree,
            &self.dest,
            &mut Vec::new(),
            request.max_listed as usize,
            &mut removed,
            &mut total,
        )?;
        lock(&self.report).deleted += total;
        DeleteList {
            total,
            paths: removed.iter().map(Vec::as_slice).collect(),
        }
        .encode(out)?;
        Ok(())
    }

    /// Removes (or, in a dry run, lists) what is under `dir` and was not in the manifest.
    fn sweep(
        &self,
        tree: &Tree,
        dir: &Path,
        rel: &mut Vec<u8>,
        max_listed: usize,
        removed: &mut Vec<Vec<u8>>,
        total: &mut u64,
    ) -> Result<(), TargetError> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(dir))?;
        names.sort();
        for name in names {
            if name == PARTIAL_DIR {
                continue;
            }
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            let path = dir.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
            if !tree.seen.contains(rel.as_slice()) {
                if !self.options.dry_run {
                    remove_any(&path, &meta).map_err(io_err(&path))?;
                }
                *total += 1;
                if removed.len() < max_listed {
                    removed.push(rel.clone());
                }
            } else if meta.is_dir() {
                self.sweep(tree, &path, rel, max_listed, removed, total)?;
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
        let mut tree = lock(&self.tree);
        if !self.options.dry_run {
            // Deepest first, so setting a parent's mtime comes after its children changed.
            tree.dirs
                .sort_by_key(|(path, _, _)| std::cmp::Reverse(path.components().count()));
            for (path, mode, mtime) in &tree.dirs {
                std::fs::set_permissions(path, Permissions::from_mode(*mode))
                    .map_err(io_err(path))?;
                set_mtime_nofollow(path, *mtime).map_err(io_err(path))?;
            }
        }
        // Partial folders of files that were all committed are empty now; others keep
        // their partial files and journals for a resume.
        for dir in &tree.partial_dirs {
            if std::fs::remove_dir(dir).is_ok()
                && let Some(parent) = dir.parent()
                && let Some((_, _, mtime)) = tree.dirs.iter().find(|(p, _, _)| p == parent)
            {
                let _ = set_mtime_nofollow(parent, *mtime);
            }
        }
        Ok(*lock(&self.report))
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

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

fn timestamps(mtime_ns: i64) -> rustix::fs::Timestamps {
    let mtime = rustix::fs::Timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    rustix::fs::Timestamps {
        // atime: leave it alone.
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: mtime,
    }
}

fn set_file_mtime(file: &File, mtime_ns: i64) -> io::Result<()> {
    rustix::fs::futimens(file, &timestamps(mtime_ns))?;
    Ok(())
}

fn set_mtime_nofollow(path: &Path, mtime_ns: i64) -> io::Result<()> {
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &timestamps(mtime_ns),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

fn apply_metadata(path: &Path, meta: &std::fs::Metadata, mode: u32, mtime: i64) -> io::Result<()> {
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, Permissions::from_mode(mode))?;
    }
    if mtime_ns(meta) != mtime {
        set_mtime_nofollow(path, mtime)?;
    }
    Ok(())
}

fn remove_any(path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    if meta.is_dir() {
        // Does not follow symlinks inside.
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Renames `temp` over `path` (a directory there is removed first: rename cannot replace
/// one with a file).
fn replace(
    temp: &Path,
    path: &Path,
    existing: Option<&std::fs::Metadata>,
    fsync: bool,
) -> io::Result<()> {
    if let Some(meta) = existing
        && meta.is_dir()
    {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::rename(temp, path)?;
    if fsync && let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}
