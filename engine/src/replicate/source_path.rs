//! Keeping a source that serves pulls inside its root.
//!
//! A pulled path comes from the network: it names something under the serving side's
//! root, with the same rules the target applies to the paths it writes (relative, no `..`,
//! no empty or `.` components, no NUL, no `.hawser-partial`; see `target_path`), and the
//! same **decision** on symlinks: a symlink on the way to the entry refuses it (resolving
//! it would be racy). The entry itself may be a symlink: it is sent as a symlink, never
//! followed, except that a trailing `/` (send the directory's contents) on a symlink is
//! refused, since listing it would follow the link.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::proto::RefusalKind;
use super::target_path;

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

/// The path under `root` (canonical, as [`Target::root`](super::Target::root) keeps it)
/// that a pull of `requested` reads, in the form [`Source::new`](super::Source::new)
/// takes: a trailing `/` sends the directory's contents, otherwise the entry itself
/// under its name. An empty path, `.` or `./` is the root, whose contents are sent.
/// Leading `./` components are dropped.
pub fn resolve_pull_source(root: &Path, requested: &[u8]) -> Result<PathBuf, SourcePathError> {
    let shown = || String::from_utf8_lossy(requested).into_owned();
    let refused = |kind: RefusalKind, detail: String| SourcePathError::Refused {
        path: shown(),
        kind,
        detail,
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
        let mut path = root.as_os_str().to_owned();
        path.push("/");
        return Ok(PathBuf::from(path));
    }
    target_path::check_relative(rel).map_err(|kind| refused(kind, String::new()))?;
    // Dry run: the check creates nothing; a missing directory on the way shows as a
    // missing entry below.
    let (path, _) = target_path::prepare_parents(root, rel, true).map_err(|(kind, detail)| {
        if kind == RefusalKind::Io {
            // A file where a directory should be, or an unreadable one.
            SourcePathError::Io {
                path: shown(),
                source: std::io::Error::other(detail),
            }
        } else {
            refused(kind, detail)
        }
    })?;
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound) => {
            return Err(SourcePathError::NotFound { path: shown() });
        }
        Err(source) => {
            return Err(SourcePathError::Io {
                path: shown(),
                source,
            });
        }
    };
    if !contents_only {
        return Ok(path);
    }
    if meta.file_type().is_symlink() {
        return Err(refused(
            RefusalKind::SymlinkEscape,
            format!("{} is a symlink", path.display()),
        ));
    }
    let mut with_slash = path.into_os_string();
    if meta.is_dir() {
        with_slash.push("/");
    }
    debug_assert!(!with_slash.as_bytes().ends_with(b"//"));
    Ok(PathBuf::from(with_slash))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn root() -> Dir {
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
        Dir(base)
    }

    fn kind(result: Result<PathBuf, SourcePathError>) -> RefusalKind {
        match result {
            Err(SourcePathError::Refused { kind, .. }) => kind,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn entries_and_contents_resolve_under_the_root() {
        let dir = root();
        let root = std::fs::canonicalize(dir.0.join("root")).unwrap();
        let at = |p: &str| resolve_pull_source(&root, p.as_bytes()).unwrap();
        assert_eq!(at("dir"), root.join("dir"));
        assert_eq!(at("./dir/file"), root.join("dir/file"));
        assert_eq!(
            at("dir/").as_os_str().as_bytes(),
            format!("{}/dir/", root.display()).as_bytes()
        );
        for whole in ["", ".", "./"] {
            assert_eq!(
                at(whole).as_os_str().as_bytes(),
                format!("{}/", root.display()).as_bytes()
            );
        }
        // A symlink named without '/' travels as a symlink (never followed).
        assert_eq!(at("escape"), root.join("escape"));
    }

    #[test]
    fn escapes_are_refused_and_missing_sources_named() {
        let dir = root();
        let root = std::fs::canonicalize(dir.0.join("root")).unwrap();
        let at = |p: &str| resolve_pull_source(&root, p.as_bytes());
        assert_eq!(kind(at("/etc")), RefusalKind::AbsolutePath);
        assert_eq!(kind(at("../outside")), RefusalKind::ParentComponent);
        assert_eq!(kind(at("dir/../../outside")), RefusalKind::ParentComponent);
        assert_eq!(kind(at("escape/outside")), RefusalKind::SymlinkEscape);
        assert_eq!(kind(at("escape/")), RefusalKind::SymlinkEscape);
        assert_eq!(kind(at("inner_link/file")), RefusalKind::SymlinkEscape);
        assert_eq!(kind(at("dir//file")), RefusalKind::InvalidPath);
        assert!(matches!(
            at("nothing"),
            Err(SourcePathError::NotFound { .. })
        ));
        assert!(matches!(
            at("dir/none/deeper"),
            Err(SourcePathError::NotFound { .. })
        ));
        let message = at("../outside").unwrap_err().to_string();
        assert!(message.contains("\"../outside\" refused"), "{message}");
    }
}
