//! File-system operations beneath a directory: every path is resolved relative to an
//! open directory descriptor, never through a symlink and never above that directory.
//!
//! A path of several components is opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`: the kernel refuses a symlink anywhere
//! on the way, the last component included (`ELOOP`), in one call. Where `openat2` does
//! not exist (`ENOSYS`: kernels before 5.6, some sandboxes) the same walk runs one
//! component at a time with `openat(O_DIRECTORY | O_NOFOLLOW)`, and a symlink on the way
//! is reported as `ELOOP` too. Components are checked before any call: `..`, `.`, empty
//! names, `/` and NUL never reach the kernel.
//!
//! Single names are used with the `*at` calls on the descriptor of the directory holding
//! them, with `O_NOFOLLOW` or `AT_SYMLINK_NOFOLLOW`; recursive removal goes through
//! descriptors and never follows a link; metadata is applied through descriptors
//! (`fchmod`, `futimens`), and by name only to a symlink itself
//! (`utimensat(AT_SYMLINK_NOFOLLOW)`). Files are opened with `O_NONBLOCK` and checked to
//! be regular files, so a FIFO or device put in a file's place is neither waited on nor
//! read. A file written whole can be made unnamed (`O_TMPFILE`) in its directory and
//! linked under its name when complete: the new name is one checked component of that
//! directory, and `linkat` never replaces or follows what is there.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

/// Flags every directory is opened with here: readable (for listing, `fchmod`,
/// `futimens` and `fsync`), never a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How deep a recursive removal goes before it gives up (a directory tree deeper than
/// this is not something a replica holds, and each level holds a descriptor).
const MAX_DEPTH: usize = 4096;

/// An open directory everything is resolved beneath, and the path it was opened at (for
/// messages). Cloning shares the descriptor.
#[derive(Debug, Clone)]
pub struct RootDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

impl RootDir {
    /// Opens the directory at `path` (an operator's path: resolved as usual, symlinks
    /// included; only what is beneath it is resolved strictly).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = std::fs::canonicalize(path)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&path, flags, Mode::empty())?;
        Ok(RootDir {
            fd: Arc::new(fd),
            path,
        })
    }

    /// The directory's path when it was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A directory already opened (beneath another root), known as `path`.
    pub(crate) fn from_fd(fd: OwnedFd, path: PathBuf) -> Self {
        RootDir {
            fd: Arc::new(fd),
            path,
        }
    }

    /// `rel` under the root, for messages.
    pub(crate) fn display(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(OsStr::from_bytes(rel))
        }
    }
}

/// How a path of several components is resolved: [`Resolver::Openat2`] unless the kernel
/// lacks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolver {
    /// One `openat2` call with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`.
    Openat2,
    /// `openat(O_DIRECTORY | O_NOFOLLOW)` per component.
    Walk,
}

/// Set once `openat2` answered `ENOSYS`: every later resolution walks.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

/// True if `e` is the OS error `code`.
pub(crate) fn is(e: &io::Error, code: Errno) -> bool {
    errno(e) == Some(code)
}

fn not_a_name(name: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{:?} is not a file name", String::from_utf8_lossy(name)),
    )
}

/// Checks that `name` is one component: not empty, `.` or `..`, without `/` or NUL.
pub(crate) fn check_name(name: &[u8]) -> io::Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(not_a_name(name));
    }
    Ok(())
}

/// The components of a relative path, each checked with [`check_name`].
fn components(rel: &[u8]) -> io::Result<Vec<&[u8]>> {
    if rel.is_empty() {
        return Err(not_a_name(rel));
    }
    let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for part in &parts {
        check_name(part).map_err(|_| not_a_name(rel))?;
    }
    Ok(parts)
}

/// Opens `rel` beneath `base` with `flags` (`O_NOFOLLOW` and `O_CLOEXEC` are added):
/// `ELOOP` if a symlink is anywhere on the way, the last component included.
pub(crate) fn open_beneath(
    base: BorrowedFd<'_>,
    rel: &[u8],
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return open_with(Resolver::Walk, base, rel, flags, mode);
    }
    match open_with(Resolver::Openat2, base, rel, flags, mode) {
        Err(e) if is(&e, Errno::NOSYS) => {
            NO_OPENAT2.store(true, Ordering::Relaxed);
            open_with(Resolver::Walk, base, rel, flags, mode)
        }
        other => other,
    }
}

/// [`open_beneath`] with the resolver chosen by the caller (the tests use both).
pub(crate) fn open_with(
    resolver: Resolver,
    base: BorrowedFd<'_>,
    rel: &[u8],
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    let parts = components(rel)?;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match resolver {
        Resolver::Openat2 => {
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            // EAGAIN: a rename raced the lookup; the kernel asks to try again.
            let mut tries = 0;
            loop {
                match rustix::fs::openat2(base, rel, flags, mode, resolve) {
                    Err(Errno::AGAIN) if tries < 16 => tries += 1,
                    // O_DIRECTORY on a symlink says ENOTDIR: tell it from a file on the
                    // way (an O_PATH | O_NOFOLLOW open returns the link itself).
                    Err(Errno::NOTDIR) if flags.contains(OFlags::DIRECTORY) => {
                        let path = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                        let link =
                            match rustix::fs::openat2(base, rel, path, Mode::empty(), resolve) {
                                Err(Errno::LOOP) => true,
                                Ok(fd) => rustix::fs::fstat(&fd)
                                    .is_ok_and(|st| kind(&st) == FileType::Symlink),
                                Err(_) => false,
                            };
                        let code = if link { Errno::LOOP } else { Errno::NOTDIR };
                        return Err(code.into());
                    }
                    result => return result.map_err(Into::into),
                }
            }
        }
        Resolver::Walk => {
            let (last, parents) = parts.split_last().ok_or_else(|| not_a_name(rel))?;
            let mut dir: Option<OwnedFd> = None;
            for part in parents {
                let at = dir.as_ref().map_or(base, AsFd::as_fd);
                dir = Some(open_component(at, part, DIR_FLAGS, Mode::empty())?);
            }
            let at = dir.as_ref().map_or(base, AsFd::as_fd);
            open_component(at, last, flags, mode)
        }
    }
}

/// `openat` of one name with `O_NOFOLLOW`; a symlink refused by `O_DIRECTORY` (which
/// says `ENOTDIR`) is reported as `ELOOP`, as `openat2` reports it.
fn open_component(
    at: BorrowedFd<'_>,
    name: &[u8],
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    match rustix::fs::openat(at, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode) {
        Err(Errno::NOTDIR) if is_symlink(at, name) => Err(Errno::LOOP.into()),
        result => result.map_err(Into::into),
    }
}

fn is_symlink(dir: BorrowedFd<'_>, name: &[u8]) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// Opens the directory `rel` beneath `base` (`rel` empty: `base` itself, a new
/// descriptor).
pub(crate) fn open_dir(base: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    if rel.is_empty() {
        return Ok(rustix::fs::openat(base, c".", DIR_FLAGS, Mode::empty())?);
    }
    open_beneath(base, rel, DIR_FLAGS, Mode::empty())
}

/// Opens the directory `rel` beneath `base`, creating the missing ones (mode `0o777`
/// less the umask); returns it and how many directories were created.
pub(crate) fn create_dirs(base: BorrowedFd<'_>, rel: &[u8]) -> io::Result<(OwnedFd, u64)> {
    match open_dir(base, rel) {
        Err(e) if is(&e, Errno::NOENT) => {}
        other => return other.map(|fd| (fd, 0)),
    }
    let mut created = 0;
    let mut dir: Option<OwnedFd> = None;
    for part in components(rel)? {
        let at = dir.as_ref().map_or(base, AsFd::as_fd);
        let mut made = false;
        let next = loop {
            match open_component(at, part, DIR_FLAGS, Mode::empty()) {
                Err(e) if is(&e, Errno::NOENT) && !made => {
                    match rustix::fs::mkdirat(at, part, Mode::from_raw_mode(0o777)) {
                        Ok(()) => created += 1,
                        // Created meanwhile by someone else: open theirs.
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    made = true;
                }
                other => break other?,
            }
        };
        dir = Some(next);
    }
    let dir = dir.ok_or_else(|| not_a_name(rel))?;
    Ok((dir, created))
}

/// Opens the regular file `rel` beneath `base` with `flags`; anything but a regular file
/// is refused (opened with `O_NONBLOCK`, so a FIFO in its place is not waited on; the
/// flag is cleared once the file is known to be regular).
pub(crate) fn open_regular(base: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> io::Result<File> {
    let fd = open_beneath(base, rel, flags | OFlags::NONBLOCK, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let status = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, status - OFlags::NONBLOCK)?;
    Ok(File::from(fd))
}

/// Creates the file `name` in `dir` with `O_CREAT | O_EXCL | O_NOFOLLOW`, read-write.
/// Whatever has the name already (a stale file, a symlink someone planted, a
/// directory) is removed first, never followed.
pub(crate) fn create_exclusive(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<File> {
    check_name(name)?;
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for _ in 0..4 {
        match rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::EXIST) => remove_all(dir, name)?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::EXIST.into())
}

/// An unnamed regular file in `dir` (`O_TMPFILE`), read-write, mode `mode`: it takes no
/// name until [`link_unnamed`], and vanishes if closed before.
pub(crate) fn create_unnamed(dir: BorrowedFd<'_>, mode: u32) -> io::Result<File> {
    let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(
        dir,
        c".",
        flags,
        Mode::from_raw_mode(mode),
    )?))
}

/// Whether [`create_unnamed`] failed because the file system (or kernel) has no
/// `O_TMPFILE`: a named file has to do.
pub(crate) fn unnamed_unsupported(e: &io::Error) -> bool {
    is(e, Errno::OPNOTSUPP) || is(e, Errno::ISDIR) || is(e, Errno::INVAL)
}

/// Names the unnamed `file` `name` in `dir`. Fails with `EEXIST` if anything has the
/// name (it is neither replaced nor followed). Links through `/proc/self/fd`, which needs
/// no privilege (`AT_EMPTY_PATH` does); without `/proc` it fails with `ENOENT`.
pub(crate) fn link_unnamed(file: &File, dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    check_name(name)?;
    let own = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file));
    Ok(rustix::fs::linkat(
        rustix::fs::CWD,
        own.as_str(),
        dir,
        name,
        AtFlags::SYMLINK_FOLLOW,
    )?)
}

/// Whether [`link_unnamed`] can work here: it links through `/proc/self/fd`.
pub(crate) fn can_link_unnamed() -> bool {
    static PROC_FD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROC_FD.get_or_init(|| std::path::Path::new("/proc/self/fd").is_dir())
}

/// `lstat` of `name` in `dir`; `None` if there is nothing by that name.
pub(crate) fn stat(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    check_name(name)?;
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `fstat`.
pub(crate) fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// The kind of what `st` describes.
pub(crate) fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Whether two `stat`s are of the same file (device and inode).
pub(crate) fn same_file(a: &Stat, b: &Stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// Permission bits (`st_mode & 0o7777`).
pub(crate) fn mode(st: &Stat) -> u32 {
    st.st_mode & 0o7777
}

/// `stat` fields whose integer types differ between architectures, as one type.
#[allow(clippy::unnecessary_cast)]
mod fields {
    use super::Stat;

    /// Modification time in nanoseconds since the epoch.
    pub(crate) fn mtime_ns(st: &Stat) -> i64 {
        (st.st_mtime as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(st.st_mtime_nsec as i64)
    }

    /// Status change time in seconds since the epoch.
    pub(crate) fn ctime_secs(st: &Stat) -> i64 {
        st.st_ctime as i64
    }

    /// Size in bytes.
    pub(crate) fn size(st: &Stat) -> u64 {
        st.st_size as u64
    }

    /// Bytes allocated on the device.
    pub(crate) fn allocated(st: &Stat) -> u64 {
        (st.st_blocks as u64).saturating_mul(512)
    }
}
pub(crate) use fields::{allocated, ctime_secs, mtime_ns, size};

/// Creates the directory `name` in `dir`.
pub(crate) fn mkdir(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    check_name(name)?;
    Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
}

/// Removes the non-directory `name` from `dir` (a symlink itself, never its target).
pub(crate) fn unlink(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    check_name(name)?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Removes the empty directory `name` from `dir`.
pub(crate) fn remove_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    check_name(name)?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Removes `name` from `dir`, with everything in it if it is a directory; symlinks are
/// removed, never followed. Nothing by that name is not an error.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    check_name(name)?;
    remove_all_at(dir, name, 0)
}

fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8], depth: usize) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        // A directory (EISDIR on Linux, EPERM in POSIX's words).
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    if depth >= MAX_DEPTH {
        return Err(io::Error::other(format!(
            "more than {MAX_DEPTH} nested directories"
        )));
    }
    let sub = match open_component(dir, name, DIR_FLAGS, Mode::empty()) {
        Ok(sub) => sub,
        // Not a directory after all (replaced meanwhile, or EPERM meant what it says):
        // one more plain unlink decides.
        Err(e) if is(&e, Errno::NOTDIR) || is(&e, Errno::LOOP) => {
            return match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        Err(e) if is(&e, Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    for (child, _) in list(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &child, depth + 1)?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The names in the directory `dir` (without `.` and `..`), sorted, with their kind as
/// the directory reports it ([`FileType::Unknown`] on file systems that do not).
pub(crate) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, FileType)>> {
    let mut entries = Vec::new();
    let mut stream = Dir::read_from(dir)?;
    while let Some(entry) = stream.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            entries.push((name.to_vec(), entry.file_type()));
        }
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// The kind of `name` in `dir` as listed, asking the file system when the listing did
/// not say; `None` if it is gone.
pub(crate) fn listed_kind(
    dir: BorrowedFd<'_>,
    name: &[u8],
    listed: FileType,
) -> io::Result<Option<FileType>> {
    if listed != FileType::Unknown {
        return Ok(Some(listed));
    }
    Ok(stat(dir, name)?.map(|st| kind(&st)))
}

/// Renames `from` in `from_dir` to `to` in `to_dir` (replacing a file or symlink there).
pub(crate) fn rename(
    from_dir: BorrowedFd<'_>,
    from: &[u8],
    to_dir: BorrowedFd<'_>,
    to: &[u8],
) -> io::Result<()> {
    check_name(from)?;
    check_name(to)?;
    Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?)
}

/// Creates the symlink `name` in `dir`, pointing at `target` (stored as it is, never
/// resolved).
pub(crate) fn symlink(target: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    check_name(name)?;
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

/// The target of the symlink `name` in `dir`.
pub(crate) fn read_link(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    check_name(name)?;
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// `fchmod` to the permission bits `mode`.
pub(crate) fn set_mode(fd: impl AsFd, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))?)
}

fn timestamps(mtime_ns: i64) -> Timestamps {
    Timestamps {
        // atime: left alone.
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
        },
    }
}

/// `futimens`: sets the modification time (nanoseconds since the epoch).
pub(crate) fn set_mtime(fd: impl AsFd, mtime_ns: i64) -> io::Result<()> {
    Ok(rustix::fs::futimens(fd, &timestamps(mtime_ns))?)
}

/// Sets the modification time of the symlink `name` in `dir` itself.
pub(crate) fn set_symlink_mtime(dir: BorrowedFd<'_>, name: &[u8], mtime_ns: i64) -> io::Result<()> {
    check_name(name)?;
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &timestamps(mtime_ns),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `fsync` (of a directory: the names in it are on the device).
pub(crate) fn sync(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::fsync(fd)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `root/{dir/{file, sub/}, file, link_out -> outside, link_in -> dir}` and
    /// `outside/secret` beside the root.
    fn fixture() -> (Scratch, RootDir) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let base = std::env::temp_dir().join(format!(
            "hawser-beneath-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("dir/sub")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/secret"), b"secret").unwrap();
        std::fs::write(root.join("dir/file"), b"inside").unwrap();
        std::fs::write(root.join("file"), b"top").unwrap();
        std::os::unix::fs::symlink(base.join("outside"), root.join("link_out")).unwrap();
        std::os::unix::fs::symlink("dir", root.join("link_in")).unwrap();
        std::os::unix::fs::symlink("dir/file", root.join("file_link")).unwrap();
        let dir = RootDir::open(&root).unwrap();
        (Scratch(base), dir)
    }

    fn read(fd: OwnedFd) -> Vec<u8> {
        let mut out = Vec::new();
        File::from(fd).read_to_end(&mut out).unwrap();
        out
    }

    fn code(result: io::Result<OwnedFd>) -> Option<Errno> {
        errno(&result.expect_err("refused"))
    }

    /// Both resolvers: the `openat2` one and the per-component walk used where the
    /// kernel has no `openat2` (`ENOSYS`), exercised here explicitly.
    fn check_resolver(resolver: Resolver) {
        let (_scratch, root) = fixture();
        let open =
            |rel: &str, flags| open_with(resolver, root.fd(), rel.as_bytes(), flags, Mode::empty());
        assert_eq!(read(open("dir/file", OFlags::RDONLY).unwrap()), b"inside");
        assert_eq!(read(open("file", OFlags::RDONLY).unwrap()), b"top");
        assert!(open("dir/sub", OFlags::RDONLY | OFlags::DIRECTORY).is_ok());
        // A symlink anywhere on the way, the last component included, is ELOOP,
        // whether it leads out of the root or stays inside.
        for through in [
            "link_out/secret",
            "link_in/file",
            "link_in",
            "file_link",
            "link_out",
        ] {
            assert_eq!(
                code(open(through, OFlags::RDONLY)),
                Some(Errno::LOOP),
                "{through}"
            );
            assert_eq!(
                code(open(through, OFlags::RDONLY | OFlags::DIRECTORY)),
                Some(Errno::LOOP),
                "{through} as a directory"
            );
        }
        // A file on the way.
        assert_eq!(code(open("file/x", OFlags::RDONLY)), Some(Errno::NOTDIR));
        assert_eq!(code(open("dir/none", OFlags::RDONLY)), Some(Errno::NOENT));
        // Names that could climb or mean something else never reach the kernel.
        for bad in [
            "../outside/secret",
            "dir/../../outside",
            "/etc/passwd",
            "dir//file",
            "./file",
            "",
        ] {
            let err = open(bad, OFlags::RDONLY).expect_err(bad);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        // Creation through a resolved parent.
        let fd = open_with(
            resolver,
            root.fd(),
            b"dir/sub/new",
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o600),
        );
        File::from(fd.unwrap()).write_all(b"new").unwrap();
        assert_eq!(
            std::fs::read(root.path().join("dir/sub/new")).unwrap(),
            b"new"
        );
    }

    #[test]
    fn openat2_resolution_stays_beneath_and_refuses_symlinks() {
        check_resolver(Resolver::Openat2);
    }

    #[test]
    fn the_per_component_fallback_refuses_what_openat2_refuses() {
        check_resolver(Resolver::Walk);
    }

    #[test]
    fn missing_directories_are_created_but_never_through_a_symlink() {
        let (scratch, root) = fixture();
        let (_, created) = create_dirs(root.fd(), b"dir/a/b/c").unwrap();
        assert_eq!(created, 3);
        assert!(root.path().join("dir/a/b/c").is_dir());
        let (_, created) = create_dirs(root.fd(), b"dir/a/b/c").unwrap();
        assert_eq!(created, 0);
        let err = create_dirs(root.fd(), b"link_out/new").unwrap_err();
        assert!(is(&err, Errno::LOOP), "{err}");
        let err = create_dirs(root.fd(), b"link_in/new").unwrap_err();
        assert!(is(&err, Errno::LOOP), "{err}");
        assert!(!scratch.0.join("outside/new").exists());
        let err = create_dirs(root.fd(), b"file/new").unwrap_err();
        assert!(is(&err, Errno::NOTDIR), "{err}");
    }

    #[test]
    fn exclusive_creation_replaces_a_planted_symlink_without_following_it() {
        let (scratch, root) = fixture();
        let dir = open_dir(root.fd(), b"dir").unwrap();
        symlink(
            scratch.0.join("outside/secret").as_os_str().as_bytes(),
            dir.as_fd(),
            b"planted",
        )
        .unwrap();
        let mut file = create_exclusive(dir.as_fd(), b"planted", 0o600).unwrap();
        file.write_all(b"mine").unwrap();
        assert_eq!(
            std::fs::read(scratch.0.join("outside/secret")).unwrap(),
            b"secret"
        );
        assert_eq!(
            std::fs::read(root.path().join("dir/planted")).unwrap(),
            b"mine"
        );
        let meta = std::fs::symlink_metadata(root.path().join("dir/planted")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A planted symlink is not opened as a regular file either.
        symlink(b"../file", dir.as_fd(), b"again").unwrap();
        let err = open_regular(dir.as_fd(), b"again", OFlags::RDWR).unwrap_err();
        assert!(is(&err, Errno::LOOP), "{err}");
    }

    #[test]
    fn removal_never_follows_links_and_metadata_goes_through_descriptors() {
        let (scratch, root) = fixture();
        let outside = scratch.0.join("outside");
        let before = std::fs::metadata(&outside).unwrap().permissions().mode();
        // A directory holding a link out: the link goes, what it points at stays.
        let dir = open_dir(root.fd(), b"dir").unwrap();
        symlink(outside.as_os_str().as_bytes(), dir.as_fd(), b"out").unwrap();
        remove_all(root.fd(), b"dir").unwrap();
        assert!(!root.path().join("dir").exists());
        remove_all(root.fd(), b"link_out").unwrap();
        remove_all(root.fd(), b"nothing").unwrap();
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
        // A symlink's own mtime, not its target's.
        let target_mtime = mtime_ns(&rustix::fs::stat(&outside).unwrap());
        symlink(outside.as_os_str().as_bytes(), root.fd(), b"l").unwrap();
        set_symlink_mtime(root.fd(), b"l", 1_000_000_000_123).unwrap();
        let link = stat(root.fd(), b"l").unwrap().unwrap();
        assert_eq!(kind(&link), FileType::Symlink);
        assert_eq!(mtime_ns(&link), 1_000_000_000_123);
        assert_eq!(
            read_link(root.fd(), b"l").unwrap(),
            outside.as_os_str().as_bytes()
        );
        let outside_now = rustix::fs::stat(&outside).unwrap();
        assert_eq!(mtime_ns(&outside_now), target_mtime);
        assert_eq!(
            std::fs::metadata(&outside).unwrap().permissions().mode(),
            before
        );
        // Through a descriptor.
        let (sub, _) = create_dirs(root.fd(), b"new").unwrap();
        set_mode(&sub, 0o705).unwrap();
        set_mtime(&sub, 7_000_000_001).unwrap();
        let st = stat(root.fd(), b"new").unwrap().unwrap();
        assert_eq!((mode(&st), mtime_ns(&st)), (0o705, 7_000_000_001));
        let names: Vec<Vec<u8>> = list(root.fd())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [&b"file"[..], b"file_link", b"l", b"link_in", b"new"]
        );
    }

    #[test]
    fn an_unnamed_file_takes_its_name_only_when_linked_and_never_over_another() {
        let (_scratch, root) = fixture();
        let mut file = match create_unnamed(root.fd(), 0o600) {
            Err(e) if unnamed_unsupported(&e) => return, // no O_TMPFILE here
            other => other.unwrap(),
        };
        file.write_all(b"whole").unwrap();
        let before = list(root.fd()).unwrap();
        assert!(!before.iter().any(|(n, _)| n.as_slice() == b"new"));
        // A name taken (by a file, by a symlink leading out) is neither replaced nor
        // followed.
        for taken in [&b"file"[..], b"link_out"] {
            let e = link_unnamed(&file, root.fd(), taken).unwrap_err();
            assert!(is(&e, Errno::EXIST), "{e}");
        }
        assert_eq!(
            read(open_beneath(root.fd(), b"file", OFlags::RDONLY, Mode::empty()).unwrap()),
            b"top"
        );
        assert!(link_unnamed(&file, root.fd(), b"../escape").is_err());
        link_unnamed(&file, root.fd(), b"new").unwrap();
        assert_eq!(
            read(open_beneath(root.fd(), b"new", OFlags::RDONLY, Mode::empty()).unwrap()),
            b"whole"
        );
        // Closed before it is linked, an unnamed file leaves nothing behind.
        drop(create_unnamed(root.fd(), 0o600).unwrap());
        assert_eq!(list(root.fd()).unwrap().len(), before.len() + 1);
    }
}
