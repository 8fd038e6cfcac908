//! Keeping a source that serves pulls inside its root.
//!
//! A pulled path comes from the network: it names something under the serving side's
//! root, with the same rules the target applies to the paths it writes (relative, no `..`,
//! no empty or `.` components, no NUL, no `.hawser-partial`; see `target_path`), and the
//! same **decision** on symlinks: a symlink on the way to the entry refuses it. It is
//! resolved beneath the root's directory descriptor (see [`beneath`]),
//! and the tree is then walked and read beneath the directory found
//! ([`SourceRoot`]), so nothing outside the root is ever read, whatever changes
//! meanwhile. The entry itself may be a symlink: it is sent as a symlink, never
//! followed, except that a trailing `/` (send the directory's contents) on a symlink is
//! refused, since listing it would follow the link.

use rustix::fs::FileType;
use rustix::io::Errno;

use super::beneath::{self, RootDir};
use super::proto::RefusalKind;
use super::target_path;
use super::walk::SourceRoot;

/// Why a pulled source path was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SourcePathError {
    /// The path is malformed or leaves the root.
    #[error("source {path:?} refused: {kind}{}", detail_suffix(.detail))]
    Refused {
        /// The path as asked for (lossy UTF-8).
        path: String,
        /// Why.
        kind: RefusalKind,
        /// Details (which component), possibly empty.
        detail: String,
    },
    /// Nothing by that name under the root.
    #[error("source {path:?}: no such file or directory")]
    NotFound {
        /// The path as asked for (lossy UTF-8).
        path: String,
    },
    /// The entry could not be examined.
    #[error("source {path:?}: {source}")]
    Io {
        /// The path as asked for (lossy UTF-8).
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// What a pull of `requested` sends from beneath `root`, as [`Source::from_roots`]
/// takes it: a trailing `/` sends the directory's contents, otherwise the entry itself
/// under its name. An empty path, `.` or `./` is the root, whose contents are sent.
/// Leading `./` components are dropped.
///
/// [`Source::from_roots`]: super::Source::from_roots
pub fn resolve_pull_source(
    root: &RootDir,
    requested: &[u8],
) -> Result<SourceRoot, SourcePathError> {
    let shown = || String::from_utf8_lossy(requested).into_owned();
    let refused = |kind: RefusalKind, detail: String| SourcePathError::Refused {
        path: shown(),
        kind,
        detail,
    };
    let failed = |rel: &[u8], e: std::io::Error| {
        if beneath::is(&e, Errno::LOOP) {
            refused(
                RefusalKind::SymlinkEscape,
                format!(
                    "a symlink is on the way to {}",
                    String::from_utf8_lossy(rel)
                ),
            )
        } else if beneath::is(&e, Errno::NOENT) {
            SourcePathError::NotFound { path: shown() }
        } else {
            // A file where a directory should be, or an unreadable one.
            SourcePathError::Io {
                path: shown(),
                source: e,
            }
        }
    };
    if requested.starts_with(b"/") {
        return Err(refused(
            RefusalKind::AbsolutePath,
            "sources are relative to the server's root".into(),
        ));
    }
    let mut rel = requested;
    while let Some(rest) = rel.strip_prefix(b"./") {
        rel = rest;
    }
    let contents_only = rel.ends_with(b"/") || rel.is_empty() || rel == b".";
    let rel = rel.strip_suffix(b"/").unwrap_or(rel);
    if rel.is_empty() || rel == b"." {
        return Ok(SourceRoot::contents(root.clone()));
    }
    target_path::check_relative(rel).map_err(|kind| refused(kind, String::new()))?;
    let (parent, name) = target_path::split_last(rel);
    let dir = if parent.is_empty() {
        root.clone()
    } else {
        let fd = beneath::open_dir(root.fd(), parent).map_err(|e| failed(parent, e))?;
        RootDir::from_fd(fd, root.display(parent))
    };
    let st = beneath::stat(dir.fd(), name)
        .map_err(|e| failed(rel, e))?
        .ok_or_else(|| SourcePathError::NotFound { path: shown() })?;
    match beneath::kind(&st) {
        FileType::Directory if contents_only => {
            let fd = beneath::open_dir(dir.fd(), name).map_err(|e| failed(rel, e))?;
            Ok(SourceRoot::contents(RootDir::from_fd(
                fd,
                root.display(rel),
            )))
        }
        FileType::Symlink if contents_only => Err(refused(
            RefusalKind::SymlinkEscape,
            format!("{} is a symlink", String::from_utf8_lossy(rel)),
        )),
        _ => Ok(SourceRoot::entry(dir, name.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn root() -> (Dir, RootDir) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let base = std::env::temp_dir().join(format!(
            "hawser-source-path-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("dir/sub")).unwrap();
        std::fs::write(root.join("dir/file"), b"x").unwrap();
        std::fs::write(base.join("outside"), b"secret").unwrap();
        std::os::unix::fs::symlink(&base, root.join("escape")).unwrap();
        std::os::unix::fs::symlink("dir", root.join("inner_link")).unwrap();
        let opened = RootDir::open(&root).unwrap();
        (Dir(base), opened)
    }

    fn kind(result: Result<SourceRoot, SourcePathError>) -> RefusalKind {
        match result {
            Err(SourcePathError::Refused { kind, .. }) => kind,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// (directory read beneath, entry name or `None` for its contents)
    fn at(root: &RootDir, path: &str) -> (PathBuf, Option<String>) {
        let found = resolve_pull_source(root, path.as_bytes()).unwrap();
        (
            found.dir().to_owned(),
            found
                .name()
                .map(|n| String::from_utf8_lossy(n).into_owned()),
        )
    }

    #[test]
    fn entries_and_contents_resolve_under_the_root() {
        let (_dir, root) = root();
        let r = root.path();
        let entry = |dir: &Path, name: &str| (dir.to_owned(), Some(name.to_owned()));
        assert_eq!(at(&root, "dir"), entry(r, "dir"));
        assert_eq!(at(&root, "./dir/file"), entry(&r.join("dir"), "file"));
        assert_eq!(at(&root, "dir/"), (r.join("dir"), None));
        assert_eq!(at(&root, "dir/sub/"), (r.join("dir/sub"), None));
        for whole in ["", ".", "./"] {
            assert_eq!(at(&root, whole), (r.to_owned(), None));
        }
        // A symlink named without '/' travels as a symlink (never followed).
        assert_eq!(at(&root, "escape"), entry(r, "escape"));
        // A file named with '/' is the file.
        assert_eq!(at(&root, "dir/file/"), entry(&r.join("dir"), "file"));
    }

    #[test]
    fn escapes_are_refused_and_missing_sources_named() {
        let (_dir, root) = root();
        let at = |p: &str| resolve_pull_source(&root, p.as_bytes());
        assert_eq!(kind(at("/etc")), RefusalKind::AbsolutePath);
        assert_eq!(kind(at("../outside")), RefusalKind::ParentComponent);
        assert_eq!(kind(at("dir/../../outside")), RefusalKind::ParentComponent);
        assert_eq!(kind(at("escape/outside")), RefusalKind::SymlinkEscape);
        assert_eq!(kind(at("escape/")), RefusalKind::SymlinkEscape);
        assert_eq!(kind(at("inner_link/file")), RefusalKind::SymlinkEscape);
        assert_eq!(kind(at("inner_link/")), RefusalKind::SymlinkEscape);
        assert_eq!(kind(at("dir//file")), RefusalKind::InvalidPath);
        assert!(matches!(
            at("nothing"),
            Err(SourcePathError::NotFound { .. })
        ));
        assert!(matches!(
            at("dir/none/deeper"),
            Err(SourcePathError::NotFound { .. })
        ));
        assert!(matches!(at("dir/file/x"), Err(SourcePathError::Io { .. })));
        let message = at("../outside").unwrap_err().to_string();
        assert!(message.contains("\"../outside\" refused"), "{message}");
    }
}
