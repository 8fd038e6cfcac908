//! A job on the target: its settings, its file table and tree, the gate that lets Delete
//! and Finish wait for the requests in progress, and how its errors name their paths.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use rustix::io::Errno;

use super::TargetLimits;
use super::dirs::{DirCache, DirHandle};
use super::partial::Partial;
use crate::beneath::{RootDir, is};
use crate::direct::WriteMode;
use crate::error::TargetError;
use crate::partial_files;
use crate::proto::{FinishReport, JobOptions, RefusalKind};
use crate::target_path::{self, split_last};
use crate::write_behind::WriteBehind;

/// A file's state behind its own lock; `None` once committed.
pub(super) type FileSlot = Arc<Mutex<Option<Partial>>>;

/// One job: from its Begin to its Finish (or the next Begin).
#[derive(Debug)]
pub(super) struct Job {
    pub(super) options: JobOptions,
    pub(super) write_mode: WriteMode,
    pub(super) limits: TargetLimits,
    root: RootDir,
    /// The destination relative to the root, for messages.
    dest_rel: Vec<u8>,
    /// The destination; `None` in a dry run whose destination does not exist yet.
    pub(super) dest: Option<Arc<DirHandle>>,
    /// Read-held by every Manifest, Block and Commit while it runs; write-held by Delete
    /// and Finish, which so wait for those in progress. `true` once finished.
    gate: RwLock<bool>,
    /// Held by one Manifest, Delete or Finish at a time.
    pub(super) tree: Mutex<Tree>,
    /// Directories in use, by path relative to the destination.
    pub(super) dirs: Mutex<DirCache>,
    /// Held only to look a file up, insert or remove it.
    pub(super) partials: Mutex<HashMap<u32, FileSlot>>,
    /// Files with descriptors open (see [`TargetLimits::max_open_files`]).
    open_files: Arc<AtomicUsize>,
    /// Pieces of the files waiting for blocks (see [`TargetLimits::max_job_pieces`]).
    pieces: Arc<AtomicU64>,
    pub(super) report: Mutex<FinishReport>,
    /// In [`WriteMode::Direct`], committed files leave the page cache once written
    /// (see [`write_behind`](crate::write_behind)).
    pub(super) write_behind: WriteBehind,
    /// What a full device's error says about partial files, counted once per job.
    no_space_hint: OnceLock<String>,
}

/// What the manifest learns about the tree, used by Delete and Finish.
#[derive(Debug, Default)]
pub(super) struct Tree {
    /// Keys of the paths the manifest named (`true`) and of the directories on the way
    /// to them that it did not name (`false`): `--delete` keeps them, Finish walks them.
    pub(super) seen: HashMap<u128, bool>,
    /// Directory metadata by path key, applied at Finish (writing inside changes a
    /// directory's mtime, and a read-only mode would stop the writes).
    pub(super) dirs: HashMap<u128, (u32, i64)>,
    /// Keys of the directories this job made itself: nothing was in them before, so
    /// their entries are not looked up first (what another writer puts there meanwhile
    /// is found when a name is placed, and replaced as anything else would be).
    pub(super) fresh_dirs: HashSet<u128>,
}

/// One of a job's open files ([`TargetLimits::max_open_files`]), given back when dropped.
#[derive(Debug)]
pub(super) struct OpenSlot(Arc<AtomicUsize>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Pieces counted against a job's [`TargetLimits::max_job_pieces`], given back when
/// dropped (with the file's record, at its Commit or the job's end).
#[derive(Debug)]
pub(super) struct PieceCharge(Arc<AtomicU64>, u64);

impl Drop for PieceCharge {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// Locks `mutex`; a panic elsewhere while holding it does not stop the job.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A path for messages.
pub(super) fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

impl Job {
    /// A job writing to `dest` (`dest_rel` beneath the root), which it has opened.
    pub(super) fn new(
        options: JobOptions,
        write_mode: WriteMode,
        limits: TargetLimits,
        root: RootDir,
        dest_rel: Vec<u8>,
        dest: Option<Arc<DirHandle>>,
    ) -> Self {
        Job {
            options,
            write_mode,
            limits,
            root,
            dest_rel,
            dest,
            gate: RwLock::new(false),
            tree: Mutex::new(Tree::default()),
            dirs: Mutex::new(DirCache::default()),
            partials: Mutex::new(HashMap::new()),
            open_files: Arc::new(AtomicUsize::new(0)),
            pieces: Arc::new(AtomicU64::new(0)),
            report: Mutex::new(FinishReport::default()),
            write_behind: WriteBehind::default(),
            no_space_hint: OnceLock::new(),
        }
    }

    /// Waits for Delete and Finish; fails once the job is finished.
    pub(super) fn enter(&self) -> Result<RwLockReadGuard<'_, bool>, TargetError> {
        let gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        if *gate {
            return Err(TargetError::NoJob);
        }
        Ok(gate)
    }

    /// Waits for every Manifest, Block and Commit in progress; fails once the job is
    /// finished.
    pub(super) fn enter_alone(&self) -> Result<RwLockWriteGuard<'_, bool>, TargetError> {
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
    pub(super) fn io_error(&self, dir: &[u8], name: &[u8], source: io::Error) -> TargetError {
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
    pub(super) fn refusal<'a>(
        &'a self,
        path: &'a [u8],
    ) -> impl FnOnce(io::Error) -> (RefusalKind, String) + 'a {
        let (dir, name) = split_last(path);
        move |e| (RefusalKind::Io, self.io_error(dir, name, e).to_string())
    }

    /// Counts `count` pieces against the job's [`TargetLimits::max_job_pieces`];
    /// `None` beyond it.
    pub(super) fn charge_pieces(&self, count: u64) -> Option<PieceCharge> {
        let before = self.pieces.fetch_add(count, Ordering::AcqRel);
        let charge = PieceCharge(Arc::clone(&self.pieces), count);
        (before.saturating_add(count) <= self.limits.max_job_pieces).then_some(charge)
    }

    /// Takes one of the job's open files.
    pub(super) fn open_slot(&self) -> Result<OpenSlot, TargetError> {
        let max = self.limits.max_open_files;
        if self.open_files.fetch_add(1, Ordering::AcqRel) >= max {
            self.open_files.fetch_sub(1, Ordering::AcqRel);
            return Err(TargetError::TooManyOpenFiles(max));
        }
        Ok(OpenSlot(Arc::clone(&self.open_files)))
    }

    /// The lock of a file the manifest named and that is not committed yet.
    pub(super) fn file(&self, file_id: u32) -> Result<FileSlot, TargetError> {
        lock(&self.partials)
            .get(&file_id)
            .cloned()
            .ok_or(TargetError::UnknownFile(file_id))
    }

    /// A committed file's pages leave the page cache once written, in
    /// [`WriteMode::Direct`] (the point of which is to keep received data out of it).
    pub(super) fn leave_cache(&self, file: impl Into<Arc<File>>) {
        if self.write_mode == WriteMode::Direct {
            self.write_behind.written(file.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::super::Target;
    use super::*;
    use crate::proto::{Begin, PROTOCOL_VERSION};

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
