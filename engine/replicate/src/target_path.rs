//! The shape of the paths a target accepts, and the names of its partial files.
//!
//! A path from the source must be relative, made of non-empty components other than `.`,
//! `..` and the target's reserved `.hawser-partial`, without NUL bytes, each at most
//! `NAME_MAX` (255) bytes and the whole at most `PATH_MAX` (4096). The target resolves it
//! beneath its destination's directory descriptor with no symlink allowed on the way
//! (see [`beneath`](super::beneath); **decision**: any symlink on the path refuses the
//! entry, not only one pointing out of the root: a consistent replica never needs one,
//! since the source sends directories before their contents). The entry itself may be an
//! existing symlink: it is replaced by rename, never written through.

use super::proto::RefusalKind;

/// Name of the per-directory folder holding partial files and journals.
pub(crate) const PARTIAL_DIR: &str = ".hawser-partial";

/// Longest file name (Linux's `NAME_MAX`).
pub(crate) const NAME_MAX: usize = 255;
/// Longest path accepted (Linux's `PATH_MAX`): what a source can name by path.
pub(crate) const PATH_MAX: usize = 4096;

/// Checks the shape of a relative path from the wire.
pub(crate) fn check_relative(path: &[u8]) -> Result<(), RefusalKind> {
    if path.is_empty() || path.len() > PATH_MAX {
        return Err(RefusalKind::InvalidPath);
    }
    if path.starts_with(b"/") {
        return Err(RefusalKind::AbsolutePath);
    }
    for component in path.split(|&b| b == b'/') {
        match component {
            b".." => return Err(RefusalKind::ParentComponent),
            b"" | b"." => return Err(RefusalKind::InvalidPath),
            c if c.contains(&0) || c == PARTIAL_DIR.as_bytes() || c.len() > NAME_MAX => {
                return Err(RefusalKind::InvalidPath);
            }
            _ => {}
        }
    }
    Ok(())
}

/// `path` split into its directory (empty for a top-level name) and its name.
pub(crate) fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(at) => (&path[..at], &path[at + 1..]),
        None => (&[], path),
    }
}

/// `dir/name` (just `name` when `dir` is empty).
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        path.extend_from_slice(dir);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// The key a job remembers a path by (xxh3-128 of its bytes): 16 bytes whatever the
/// path's length.
pub(crate) fn path_key(path: &[u8]) -> u128 {
    hawser_wire::xxh3::hash128(path)
}

/// The name of a partial file of `name` in its directory's `.hawser-partial`:
/// `<name>.<suffix>`, or, when that would exceed [`NAME_MAX`], as much of `name` as fits
/// with `~`, the xxh3-64 of the whole name in hex and `.<suffix>` (the same name for the
/// same file every time, so a resume finds it).
pub(crate) fn temp_name(name: &[u8], suffix: &str) -> Vec<u8> {
    let plain = name.len() + 1 + suffix.len();
    let mut temp = Vec::with_capacity(plain.min(NAME_MAX));
    if plain <= NAME_MAX {
        temp.extend_from_slice(name);
    } else {
        let keep = NAME_MAX - (1 + 16 + 1 + suffix.len());
        temp.extend_from_slice(&name[..keep.min(name.len())]);
        temp.push(b'~');
        temp.extend_from_slice(format!("{:016x}", hawser_wire::xxh3::hash64(name)).as_bytes());
    }
    temp.push(b'.');
    temp.extend_from_slice(suffix.as_bytes());
    temp
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
        let longest = vec![b'n'; NAME_MAX];
        assert_eq!(check_relative(&longest), Ok(()));
        assert_eq!(
            check_relative(&[&longest[..], b"x"].concat()),
            Err(RefusalKind::InvalidPath)
        );
        let deep: Vec<u8> = std::iter::repeat_n(&b"abc/"[..], PATH_MAX / 4)
            .flatten()
            .copied()
            .chain(*b"x")
            .collect();
        assert_eq!(check_relative(&deep), Err(RefusalKind::InvalidPath));
    }

    #[test]
    fn partial_names_never_exceed_name_max_and_stay_distinct() {
        assert_eq!(temp_name(b"file", "part"), b"file.part");
        assert_eq!(temp_name(b"file", "journal"), b"file.journal");
        let long = vec![b'a'; NAME_MAX];
        let mut other = long.clone();
        other[NAME_MAX - 1] = b'b';
        for suffix in ["part", "journal", "link"] {
            let temp = temp_name(&long, suffix);
            assert_eq!(temp.len(), NAME_MAX, "{suffix}");
            assert!(temp.ends_with(format!(".{suffix}").as_bytes()));
            assert_ne!(temp, temp_name(&other, suffix), "same prefix, other name");
            assert_eq!(temp, temp_name(&long, suffix), "stable for a resume");
        }
        // The longest name that keeps its plain form.
        let fits = vec![b'c'; NAME_MAX - ".journal".len()];
        assert_eq!(temp_name(&fits, "journal").len(), NAME_MAX);
        assert!(temp_name(&fits, "journal").starts_with(&fits));
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        assert_eq!(join(b"", b"c"), b"c");
    }
}
