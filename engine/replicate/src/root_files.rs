//! Whole-file work beneath a [`RootDir`] for services that move one file at a time (DTP):
//! open a regular file, find (and create) the directory a new file goes in, and keep a
//! file and its companions (a temporary name, a journal) in that directory by name only,
//! never through a path a peer shaped.

use std::fs::File;
use std::io::{self, Read, Write};

use rustix::fs::{Mode, OFlags};

use crate::beneath::{self, RootDir};
use crate::direct::DirectFile;

impl RootDir {
    /// The directory's device and inode: two handles of one directory have the same,
    /// whatever path led to them.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        let st = beneath::fstat(self.fd())?;
        Ok((st.st_dev, st.st_ino))
    }

    /// Opens the regular file `rel` (a relative path, `/`-separated) beneath the root,
    /// read-only; a symlink anywhere on the way, or anything but a regular file, is
    /// refused.
    pub fn open_file(&self, rel: &[u8]) -> io::Result<File> {
        beneath::open_regular(self.fd(), rel, OFlags::RDONLY)
    }

    /// The directory that holds `rel` (created as needed) and `rel`'s last component.
    pub fn parent_of(&self, rel: &[u8]) -> io::Result<(RootDir, Vec<u8>)> {
        let (dir_part, name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(at) => (&rel[..at], &rel[at + 1..]),
            None => (&rel[..0], rel),
        };
        beneath::check_name(name)?;
        let (fd, _) = if dir_part.is_empty() {
            (beneath::open_dir(self.fd(), b"")?, 0)
        } else {
            beneath::create_dirs(self.fd(), dir_part)?
        };
        Ok((RootDir::from_fd(fd, self.display(dir_part)), name.to_vec()))
    }

    /// Opens `name` (the file `buffered` has open) a second time for writes past the page
    /// cache; `None` if its file system refuses `O_DIRECT`.
    pub fn open_direct(&self, name: &[u8], buffered: &File) -> io::Result<Option<DirectFile>> {
        beneath::check_name(name)?;
        DirectFile::open(self.fd(), name, buffered)
    }

    /// Opens the regular file `name` in this directory read-write, creating it (mode
    /// 0o644 less the umask) if it does not exist; a symlink or anything but a regular
    /// file by that name is refused.
    pub fn open_or_create(&self, name: &[u8]) -> io::Result<File> {
        beneath::check_name(name)?;
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            self.fd(),
            name,
            flags | OFlags::NONBLOCK,
            Mode::from_raw_mode(0o644),
        )?;
        if beneath::kind(&beneath::fstat(&fd)?) != rustix::fs::FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            ));
        }
        let status = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, status - OFlags::NONBLOCK)?;
        Ok(File::from(fd))
    }

    /// Renames `from` to `to`, both in this directory (replacing a file there).
    pub fn rename_within(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        beneath::rename(self.fd(), from, self.fd(), to)
    }

    /// Removes the file `name` from this directory; nothing by that name is fine.
    pub fn remove_file(&self, name: &[u8]) -> io::Result<()> {
        match beneath::unlink(self.fd(), name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// The bytes of the regular file `name` in this directory, if it exists and holds
    /// at most `max` bytes (a larger one is an error, read no further).
    pub fn read_small(&self, name: &[u8], max: usize) -> io::Result<Option<Vec<u8>>> {
        let file = match beneath::open_regular(self.fd(), name, OFlags::RDONLY) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other?,
        };
        let mut bytes = Vec::new();
        file.take(max as u64 + 1).read_to_end(&mut bytes)?;
        if bytes.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("over {max} bytes"),
            ));
        }
        Ok(Some(bytes))
    }

    /// Replaces the file `name` in this directory with `bytes`, through a temporary name
    /// and a rename: a killed process leaves the old bytes or the new, never half of them.
    /// Not synced (a journal written every second must not wait for the disk).
    pub fn replace_file(&self, name: &[u8], bytes: &[u8]) -> io::Result<()> {
        let mut temp = name.to_vec();
        temp.extend_from_slice(b".new");
        let mut file = beneath::create_exclusive(self.fd(), &temp, 0o600)?;
        file.write_all(bytes)?;
        drop(file);
        self.rename_within(&temp, name)
    }
}
