//! Bringing an existing file's mode and mtime in line with its manifest entry, through a
//! descriptor of the very file that was checked.

use std::io;

use rustix::fs::{OFlags, Stat};

use super::dirs::DirHandle;
use crate::beneath;

/// Brings an existing file's mode and mtime in line, through a descriptor of the very
/// file `st` describes.
pub(super) fn apply_metadata(
    dir: &DirHandle,
    name: &[u8],
    st: &Stat,
    mode: u32,
    mtime_ns: i64,
) -> io::Result<()> {
    let (mode_differs, mtime_differs) = (
        beneath::mode(st) != mode & 0o7777,
        beneath::mtime_ns(st) != mtime_ns,
    );
    if !mode_differs && !mtime_differs {
        return Ok(());
    }
    let file = beneath::open_regular(dir.fd(), name, OFlags::RDONLY)?;
    if !beneath::same_file(&beneath::fstat(&file)?, st) {
        return Err(io::Error::other("replaced while it was being checked"));
    }
    if mode_differs {
        beneath::set_mode(&file, mode)?;
    }
    if mtime_differs {
        beneath::set_mtime(&file, mtime_ns)?;
    }
    Ok(())
}
