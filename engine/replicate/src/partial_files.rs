//! Partial files of unfinished jobs under a target's root: how much they hold, expiring
//! the old ones, removing them all.
//!
//! A job writes each file under `.hawser-partial/` in the file's directory and renames it
//! into place once complete; a job that fails leaves its partial files and journals there
//! for a resume. A server sweeps its root at start and then periodically ([`Expiry`]),
//! removing those whose status changed longer ago than the maximum age (`st_ctime`: every
//! write, `fchmod` and rename updates it, and unlike the mtime a job never sets it into
//! the past, so a file being written is never old); [`remove_partials`] with no age
//! removes them all (`hawser serve --clean-partials`). A `.hawser-partial` folder left
//! empty is removed, and the mtime of the directory holding it put back.
//!
//! The walk goes through directory descriptors beneath the root and never follows a
//! symlink; directories it cannot read are skipped.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::FileType;

use super::beneath::{self, RootDir};
use super::target_path::PARTIAL_DIR;

/// How deep the sweep looks for partial folders.
const MAX_DEPTH: usize = 2048;

/// Partial files (and journals) counted or removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartialFiles {
    /// Files.
    pub files: u64,
    /// Bytes they take on the device.
    pub bytes: u64,
}

impl std::fmt::Display for PartialFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files, {} ({} bytes)",
            self.files,
            human_bytes(self.bytes),
            self.bytes
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Count,
    /// Remove those whose status changed before this many seconds since the epoch
    /// (`None`: all).
    Remove(Option<i64>),
}

/// Counts the partial files under `root`.
pub fn count_partials(root: &RootDir) -> io::Result<PartialFiles> {
    sweep(root, Action::Count)
}

/// Removes the partial files under `root` whose status last changed at or before
/// `changed_before` (to the second) (`None`: every one), and the partial folders left empty.
pub fn remove_partials(
    root: &RootDir,
    changed_before: Option<SystemTime>,
) -> io::Result<PartialFiles> {
    let cutoff = changed_before.map(|t| match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    });
    sweep(root, Action::Remove(cutoff))
}

fn sweep(root: &RootDir, action: Action) -> io::Result<PartialFiles> {
    let mut found = PartialFiles::default();
    visit(root.fd(), 0, action, &mut found)?;
    Ok(found)
}

fn visit(
    dir: BorrowedFd<'_>,
    depth: usize,
    action: Action,
    found: &mut PartialFiles,
) -> io::Result<()> {
    for (name, listed) in beneath::list(dir)? {
        if beneath::listed_kind(dir, &name, listed)? != Some(FileType::Directory) {
            continue;
        }
        if name == PARTIAL_DIR.as_bytes() {
            partial_folder(dir, action, found)?;
        } else if depth < MAX_DEPTH
            && let Ok(sub) = beneath::open_dir(dir, &name)
        {
            // An unreadable directory is skipped, not the whole sweep.
            let _ = visit(sub.as_fd(), depth + 1, action, found);
        }
    }
    Ok(())
}

fn partial_folder(
    parent: BorrowedFd<'_>,
    action: Action,
    found: &mut PartialFiles,
) -> io::Result<()> {
    let Ok(folder) = beneath::open_dir(parent, PARTIAL_DIR.as_bytes()) else {
        return Ok(());
    };
    let parent_before = beneath::fstat(parent)?;
    let mut kept = 0;
    for (name, _) in beneath::list(folder.as_fd())? {
        let Some(st) = beneath::stat(folder.as_fd(), &name)? else {
            continue;
        };
        let remove = match action {
            Action::Count => false,
            Action::Remove(None) => true,
            Action::Remove(Some(cutoff)) => beneath::ctime_secs(&st) <= cutoff,
        };
        if matches!(action, Action::Count) || remove {
            found.files += 1;
            found.bytes += beneath::allocated(&st);
        }
        if remove {
            beneath::remove_all(folder.as_fd(), &name)?;
        } else {
            kept += 1;
        }
    }
    if matches!(action, Action::Remove(_))
        && kept == 0
        && beneath::remove_dir(parent, PARTIAL_DIR.as_bytes()).is_ok()
    {
        // The folder's removal changed its parent's mtime, which is a replica's.
        let _ = beneath::set_mtime(parent, beneath::mtime_ns(&parent_before));
    }
    Ok(())
}

/// What a full device's error adds: how much the partial files under the root hold, and
/// how to remove them.
pub(crate) fn no_space_hint(root: &RootDir, partials: io::Result<PartialFiles>) -> String {
    let root = root.path().display();
    match partials {
        Ok(PartialFiles { files: 0, .. }) => {
            format!("no partial files of unfinished jobs are under {root}")
        }
        Ok(found) => format!(
            "partial files of unfinished jobs under {root}: {found}; `hawser serve \
             --clean-partials` removes them (a job's --resume needs them), and they expire \
             on their own after the server's partial_max_age"
        ),
        Err(e) => format!("the partial files under {root} could not be counted: {e}"),
    }
}

/// `bytes` in binary units with one decimal.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Removes the partial files older than a maximum age under a root, at start and then
/// periodically, on a thread of its own. Dropping it stops the thread (at once if it is
/// waiting; a sweep in progress finishes first).
#[derive(Debug)]
pub struct Expiry {
    _stop: mpsc::Sender<()>,
}

impl Expiry {
    /// Starts sweeping `root` now and every `every`, removing partial files unchanged
    /// for more than `max_age`; each sweep's outcome goes to `report`.
    pub fn start(
        root: RootDir,
        max_age: Duration,
        every: Duration,
        report: impl Fn(io::Result<PartialFiles>) + Send + 'static,
    ) -> io::Result<Expiry> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("hawser-expiry".into())
            .spawn(move || {
                loop {
                    let cutoff = SystemTime::now().checked_sub(max_age).unwrap_or(UNIX_EPOCH);
                    report(remove_partials(&root, Some(cutoff)));
                    match stopped.recv_timeout(every) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })?;
        Ok(Expiry { _stop: stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A root with partial folders at two depths (4 files, 3000 bytes of data), a
    /// replica file, a symlink named `.hawser-partial`, and a partial file outside the
    /// root reachable through a symlink.
    fn fixture(tag: &str) -> (Scratch, RootDir) {
        let base =
            std::env::temp_dir().join(format!("hawser-partials-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        for dir in [
            "a/.hawser-partial",
            "a/b/c/.hawser-partial",
            "elsewhere/.hawser-partial",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::create_dir_all(base.join("outside/.hawser-partial")).unwrap();
        std::fs::write(base.join("outside/.hawser-partial/x.part"), [1; 100]).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(
            base.join("outside/.hawser-partial"),
            root.join("a/b/.hawser-partial"),
        )
        .unwrap();
        std::fs::write(root.join("a/.hawser-partial/f.part"), [1; 1000]).unwrap();
        std::fs::write(root.join("a/.hawser-partial/f.journal"), [2; 500]).unwrap();
        std::fs::write(root.join("a/b/c/.hawser-partial/g.part"), [3; 1000]).unwrap();
        std::fs::write(root.join("a/b/c/.hawser-partial/h.link"), [4; 500]).unwrap();
        std::fs::write(root.join("a/kept"), b"replica").unwrap();
        let dir = RootDir::open(&root).unwrap();
        (Scratch(base), dir)
    }

    fn allocated(paths: &[PathBuf]) -> u64 {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().blocks() * 512)
            .sum()
    }

    fn partials_in(root: &Path) -> Vec<PathBuf> {
        [
            "a/.hawser-partial/f.part",
            "a/.hawser-partial/f.journal",
            "a/b/c/.hawser-partial/g.part",
            "a/b/c/.hawser-partial/h.link",
        ]
        .iter()
        .map(|p| root.join(p))
        .collect()
    }

    #[test]
    fn partial_files_are_counted_beneath_the_root_only() {
        let (scratch, root) = fixture("count");
        let bytes = allocated(&partials_in(root.path()));
        assert_eq!(
            count_partials(&root).unwrap(),
            PartialFiles { files: 4, bytes }
        );
        assert!(scratch.0.join("outside/.hawser-partial/x.part").exists());
    }

    /// The age is injected: a cutoff in the past removes nothing, one in the future
    /// everything, without waiting.
    #[test]
    fn old_partials_expire_and_empty_folders_go_with_their_parent_mtime_kept() {
        let (scratch, root) = fixture("expire");
        let week = Duration::from_secs(7 * 24 * 3600);
        let paths = partials_in(root.path());
        let bytes = allocated(&paths);
        let mtime = |p: &str| std::fs::metadata(root.path().join(p)).unwrap().mtime_nsec();
        let a_before = (
            std::fs::metadata(root.path().join("a")).unwrap().mtime(),
            mtime("a"),
        );
        let fresh = remove_partials(&root, Some(SystemTime::now() - week)).unwrap();
        assert_eq!(fresh, PartialFiles::default());
        assert!(paths.iter().all(|p| p.exists()));
        // A week later, all of them are old.
        let later = remove_partials(&root, Some(SystemTime::now() + week)).unwrap();
        assert_eq!(later, PartialFiles { files: 4, bytes });
        assert!(paths.iter().all(|p| !p.exists()));
        assert!(!root.path().join("a/.hawser-partial").exists());
        assert!(!root.path().join("a/b/c/.hawser-partial").exists());
        assert!(
            root.path().join("elsewhere").is_dir()
                && !root.path().join("elsewhere/.hawser-partial").exists()
        );
        let a_after = (
            std::fs::metadata(root.path().join("a")).unwrap().mtime(),
            mtime("a"),
        );
        assert_eq!(a_before, a_after, "the parent's mtime is put back");
        assert_eq!(
            std::fs::read(root.path().join("a/kept")).unwrap(),
            b"replica"
        );
        // Never through a symlink.
        assert!(scratch.0.join("outside/.hawser-partial/x.part").exists());
        assert!(std::fs::symlink_metadata(root.path().join("a/b/.hawser-partial")).is_ok());
    }

    #[test]
    fn cleaning_removes_every_partial_file() {
        let (scratch, root) = fixture("clean");
        let bytes = allocated(&partials_in(root.path()));
        assert_eq!(
            remove_partials(&root, None).unwrap(),
            PartialFiles { files: 4, bytes }
        );
        assert_eq!(count_partials(&root).unwrap(), PartialFiles::default());
        assert!(scratch.0.join("outside/.hawser-partial/x.part").exists());
    }

    #[test]
    fn a_full_device_names_what_partial_files_hold_and_how_to_remove_them() {
        let (_scratch, root) = fixture("hint");
        let hint = no_space_hint(
            &root,
            Ok(PartialFiles {
                files: 3,
                bytes: 5 << 30,
            }),
        );
        assert!(
            hint.contains("3 files, 5.0 GiB (5368709120 bytes)"),
            "{hint}"
        );
        assert!(hint.contains(&root.path().display().to_string()), "{hint}");
        assert!(hint.contains("hawser serve --clean-partials"), "{hint}");
        let none = no_space_hint(&root, Ok(PartialFiles::default()));
        assert!(none.starts_with("no partial files"), "{none}");
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn the_expiry_thread_sweeps_at_start_and_stops_when_dropped() {
        let (_scratch, root) = fixture("thread");
        let (tx, rx) = mpsc::channel();
        let expiry = Expiry::start(
            root.clone(),
            Duration::ZERO,
            Duration::from_secs(3600),
            move |r| {
                let _ = tx.send(r.map_err(|e| e.to_string()));
            },
        )
        .unwrap();
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(first.files, 4);
        drop(expiry);
        // The thread ends without a second sweep: its sender goes with it.
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_err());
    }
}
