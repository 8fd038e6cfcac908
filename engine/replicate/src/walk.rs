//! Walking the source trees into manifest entries.
//!
//! Each tree is read beneath a directory opened once, its [`SourceRoot`]: the directory
//! whose contents are sent, or the one holding the entry sent under its name. The walk
//! goes through descriptors (`openat(O_DIRECTORY | O_NOFOLLOW)`, `fstatat(
//! AT_SYMLINK_NOFOLLOW)`, `readlinkat`), and the source later opens each file beneath
//! that directory with no symlink allowed on the way (see
//! [`beneath`]): a file or directory replaced by a symlink between the
//! walk and the read is refused, never followed. A server sending a pull reads only
//! beneath its root this way; a push reads the paths its user named the same way, from
//! the directory that holds them.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use super::beneath::{self, RootDir};
use super::error::ReplicateError;
use super::excludes::Excludes;
use super::proto::{EntryKind, Extent};
use super::sparse;

/// Where one source tree is read from: a directory opened once, and what of it is sent.
#[derive(Debug, Clone)]
pub struct SourceRoot {
    anchor: RootDir,
    /// `None`: the directory's contents; otherwise the entry of that name in it, sent
    /// under its name.
    name: Option<Vec<u8>>,
}

impl SourceRoot {
    /// A path the user named: with a trailing `/` a directory's contents, otherwise the
    /// entry itself under its name (as rsync does). The path is the user's own and is
    /// resolved as usual; what lies beneath it is read through descriptors.
    pub fn local(path: &Path) -> Result<Self, ReplicateError> {
        let io = |source| ReplicateError::Io {
            path: path.to_owned(),
            source,
        };
        let contents_only = path.as_os_str().as_bytes().ends_with(b"/");
        let meta = std::fs::symlink_metadata(path).map_err(io)?;
        if contents_only && meta.is_dir() {
            return Ok(SourceRoot::contents(RootDir::open(path).map_err(io)?));
        }
        let name = path.file_name().ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "source has no file name",
            ))
        })?;
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let anchor = RootDir::open(parent).map_err(io)?;
        Ok(SourceRoot::entry(anchor, name.as_bytes().to_vec()))
    }

    /// The contents of `dir`.
    pub(crate) fn contents(dir: RootDir) -> Self {
        SourceRoot {
            anchor: dir,
            name: None,
        }
    }

    /// The entry `name` of `dir`, under its name.
    pub(crate) fn entry(dir: RootDir, name: Vec<u8>) -> Self {
        SourceRoot {
            anchor: dir,
            name: Some(name),
        }
    }

    /// The directory the tree is read beneath.
    pub fn dir(&self) -> &Path {
        self.anchor.path()
    }

    /// The entry sent under its name, or `None` for the directory's contents.
    pub fn name(&self) -> Option<&[u8]> {
        self.name.as_deref()
    }
}

/// One entry of the source trees, with what the manifest needs about it.
#[derive(Debug, Clone)]
pub(crate) struct SourceEntry {
    /// Path relative to the destination, as it travels; also its path beneath its
    /// root's directory.
    pub(crate) rel: Vec<u8>,
    /// Which [`SourceRoot`] it is read beneath.
    pub(crate) root: usize,
    pub(crate) kind: EntryKind,
    pub(crate) mode: u32,
    pub(crate) mtime_ns: i64,
    pub(crate) size: u64,
    pub(crate) link_target: Vec<u8>,
    /// Data extents when the file is sparse.
    pub(crate) extents: Option<Vec<Extent>>,
    /// The path it travels under when that is not `rel`: a one-file job whose
    /// destination names the file sends it under the destination's name.
    pub(crate) sent_as: Option<Vec<u8>>,
    /// Its content's xxh3-128 for `checksum`, when hashed already (a fan-out hashes each
    /// file once for all its targets).
    pub(crate) content_hash: Option<u128>,
}

impl SourceEntry {
    /// Its path relative to the destination, as it travels.
    pub(crate) fn sent_path(&self) -> &[u8] {
        self.sent_as.as_deref().unwrap_or(&self.rel)
    }

    /// The data extents: the sparse map, or the whole file.
    pub(crate) fn data_extents(&self) -> Vec<Extent> {
        match &self.extents {
            Some(extents) => extents.clone(),
            None if self.size > 0 => vec![Extent {
                offset: 0,
                len: self.size,
            }],
            None => Vec::new(),
        }
    }
}

/// Opens the regular file `rel` beneath `root`: refused (never followed) if it, or a
/// directory on the way, has become a symlink since the walk, or it is no longer a
/// regular file.
pub(crate) fn open_file(root: &SourceRoot, rel: &[u8]) -> Result<std::fs::File, ReplicateError> {
    beneath::open_regular(root.anchor.fd(), rel, OFlags::RDONLY).map_err(|e| {
        let source = if beneath::is(&e, rustix::io::Errno::LOOP) {
            std::io::Error::other("a symlink is in its place or on the way: not followed")
        } else {
            e
        };
        ReplicateError::Io {
            path: root.anchor.display(rel),
            source,
        }
    })
}

/// Walks `roots` in order. Symlinks are entries, never followed. Children are visited in
/// name order, a directory before its contents; the entries come back with every
/// directory first (in walk order, so each after the one it is in), then the rest in
/// walk order.
///
/// Directories first lets a target make its whole tree before any file's data takes up
/// blocks. ext4 places a new directory in a block group with at least average free
/// blocks: made while the files' data fills the groups, a copy's directories spread
/// over the groups its own writes filled, which after a delete are the groups holding
/// the inodes just freed, and on a file system without a journal every file created
/// there scans those inodes one by one (`recently_deleted`).
pub(crate) fn walk(
    roots: &[SourceRoot],
    excludes: &Excludes,
) -> Result<Vec<SourceEntry>, ReplicateError> {
    let mut out = Vec::new();
    for (index, root) in roots.iter().enumerate() {
        let walker = Walker {
            root,
            index,
            excludes,
        };
        match &root.name {
            None => walker.children(root.anchor.fd(), &[], &mut out)?,
            Some(name) => walker.visit(root.anchor.fd(), name, name.clone(), &mut out)?,
        }
    }
    let (mut ordered, rest): (Vec<_>, Vec<_>) =
        out.into_iter().partition(|e| e.kind == EntryKind::Dir);
    ordered.extend(rest);
    Ok(ordered)
}

struct Walker<'a> {
    root: &'a SourceRoot,
    index: usize,
    excludes: &'a Excludes,
}

impl Walker<'_> {
    fn io(&self, rel: &[u8]) -> impl FnOnce(std::io::Error) -> ReplicateError + '_ {
        let path = self.root.anchor.display(rel);
        move |source| ReplicateError::Io { path, source }
    }

    /// The entry `name` of `dir`, at `rel` (and what is under it).
    fn visit(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: Vec<u8>,
        out: &mut Vec<SourceEntry>,
    ) -> Result<(), ReplicateError> {
        if self.excludes.is_excluded(&rel) {
            return Ok(());
        }
        let st = beneath::stat(dir, name)
            .map_err(self.io(&rel))?
            .ok_or_else(|| self.io(&rel)(std::io::ErrorKind::NotFound.into()))?;
        let mut entry = SourceEntry {
            rel,
            root: self.index,
            kind: EntryKind::File,
            mode: beneath::mode(&st),
            mtime_ns: beneath::mtime_ns(&st),
            size: 0,
            link_target: Vec::new(),
            extents: None,
            sent_as: None,
            content_hash: None,
        };
        match beneath::kind(&st) {
            FileType::Symlink => {
                entry.kind = EntryKind::Symlink;
                entry.link_target = beneath::read_link(dir, name).map_err(self.io(&entry.rel))?;
                out.push(entry);
            }
            FileType::Directory => {
                entry.kind = EntryKind::Dir;
                let sub = beneath::open_dir(dir, name).map_err(self.io(&entry.rel))?;
                let rel = entry.rel.clone();
                out.push(entry);
                self.children(sub.as_fd(), &rel, out)?;
            }
            FileType::RegularFile => {
                entry.size = beneath::size(&st);
                // Only a file with fewer allocated blocks than its size can have holes: the
                // others are not even opened here (20,000 small files, 20,000 opens saved).
                if beneath::allocated(&st) < entry.size {
                    let file = beneath::open_regular(dir, name, OFlags::RDONLY)
                        .map_err(self.io(&entry.rel))?;
                    entry.extents =
                        sparse::data_extents(&file, entry.size).map_err(self.io(&entry.rel))?;
                }
                out.push(entry);
            }
            // Sockets, fifos and devices are not replicated.
            _ => {}
        }
        Ok(())
    }

    /// The entries of the directory `dir`, at `rel`.
    fn children(
        &self,
        dir: BorrowedFd<'_>,
        rel: &[u8],
        out: &mut Vec<SourceEntry>,
    ) -> Result<(), ReplicateError> {
        for (name, _) in beneath::list(dir).map_err(self.io(rel))? {
            let mut child = rel.to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            self.visit(dir, &name, child, out)?;
        }
        Ok(())
    }
}

/// `rel` beneath the root's directory, for messages.
pub(crate) fn display(root: &SourceRoot, rel: &[u8]) -> PathBuf {
    root.anchor.display(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_come_first_each_after_its_parent_then_the_rest_in_walk_order() {
        let base = std::env::temp_dir().join(format!("hawser-walk-order-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for dir in ["t/b", "t/c/d"] {
            std::fs::create_dir_all(base.join(dir)).unwrap();
        }
        for file in ["t/a", "t/b/x", "t/c/d/y", "t/z"] {
            std::fs::write(base.join(file), file).unwrap();
        }
        std::os::unix::fs::symlink("a", base.join("t/c/l")).unwrap();
        let order = |root: &str| {
            let root = SourceRoot::local(&base.join(root)).unwrap();
            walk(&[root], &Excludes::default())
                .unwrap()
                .into_iter()
                .map(|e| String::from_utf8(e.rel).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order("t/"),
            ["b", "c", "c/d", "a", "b/x", "c/d/y", "c/l", "z"]
        );
        assert_eq!(
            order("t"),
            [
                "t", "t/b", "t/c", "t/c/d", "t/a", "t/b/x", "t/c/d/y", "t/c/l", "t/z"
            ]
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
