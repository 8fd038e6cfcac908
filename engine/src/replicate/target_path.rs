//! Keeping the target's writes under its root.
//!
//! A path from the source must be relative, made of non-empty components other than `.`,
//! `..` and the target's reserved `.hawser-partial`, without NUL bytes. On the way to an
//! entry, every existing directory is checked with `lstat`: a symlink there refuses the
//! entry (**decision**: any symlink on the path, not only one pointing out of the root,
//! because resolving it would be racy and a consistent replica never needs one: the
//! source sends directories before their contents). The entry itself may be an existing
//! symlink: it is replaced by rename, never written through.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::proto::RefusalKind;

/// Name of the per-directory folder holding partial files and journals.
pub(crate) const PARTIAL_DIR: &str = ".hawser-partial";

/// Checks the shape of a relative path from the wire.
pub(crate) fn check_relative(path: &[u8]) -> Result<(), RefusalKind> {
    if path.is_empty() {
        return Err(RefusalKind::InvalidPath);
    }
    if path.starts_with(b"/") {
        return Err(RefusalKind::AbsolutePath);
    }
    for component in path.split(|&b| b == b'/') {
        match component {
            b".." => return Err(RefusalKind::ParentComponent),
            b"" | b"." => return Err(RefusalKind::InvalidPath),
            c if c.contains(&0) || c == PARTIAL_DIR.as_bytes() => {
                return Err(RefusalKind::InvalidPath);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Makes sure every directory above `rel` under `base` is a real directory (creating
/// missing ones unless `dry_run`). Returns the entry's full path and whether any
/// directory was created.
pub(crate) fn prepare_parents(
    base: &Path,
    rel: &[u8],
    dry_run: bool,
) -> Result<(PathBuf, u64), (RefusalKind, String)> {
    let mut path = base.to_owned();
    let mut created = 0;
    let components: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    let (last, parents) = components
        .split_last()
        .ok_or((RefusalKind::InvalidPath, String::new()))?;
    let mut missing = false;
    for component in parents {
        path.push(std::ffi::OsStr::from_bytes(component));
        if missing {
            continue;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err((
                    RefusalKind::SymlinkEscape,
                    format!("{} is a symlink", path.display()),
                ));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err((
                    RefusalKind::Io,
                    format!("{} is not a directory", path.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dry_run {
                    missing = true;
                } else {
                    std::fs::create_dir(&path)
                        .map_err(|e| (RefusalKind::Io, format!("{}: {e}", path.display())))?;
                    created += 1;
                }
            }
            Err(e) => return Err((RefusalKind::Io, format!("{}: {e}", path.display()))),
        }
    }
    path.push(std::ffi::OsStr::from_bytes(last));
    Ok((path, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(check_relative(b"a/b"), Ok(()));
        assert_eq!(
            check_relative(b"/etc/passwd"),
            Err(RefusalKind::AbsolutePath)
        );
        assert_eq!(
            check_relative(b"a/../../x"),
            Err(RefusalKind::ParentComponent)
        );
        assert_eq!(check_relative(b".."), Err(RefusalKind::ParentComponent));
        assert_eq!(check_relative(b"a//b"), Err(RefusalKind::InvalidPath));
        assert_eq!(check_relative(b"a/./b"), Err(RefusalKind::InvalidPath));
        assert_eq!(check_relative(b""), Err(RefusalKind::InvalidPath));
        assert_eq!(check_relative(b"a\0b"), Err(RefusalKind::InvalidPath));
        assert_eq!(
            check_relative(b"d/.hawser-partial/x"),
            Err(RefusalKind::InvalidPath)
        );
    }
}
