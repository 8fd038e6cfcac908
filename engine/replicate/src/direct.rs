//! Writing large pieces past the page cache (`O_DIRECT`).
//!
//! A target writing a fresh multi-gigabyte file through the page cache pays for every
//! new cache page (allocate, zero-account, copy in, write back later), and that can be
//! the ceiling of the whole transfer, below what the sockets carry. An `O_DIRECT` write
//! with a few requests in flight skips all of it: the device copies from the buffer
//! instead of a core (README, "Measured", has the rates of both on the build machine).
//!
//! So the target writes the page-aligned middle of each large piece through a second
//! descriptor opened with `O_DIRECT`, and the unaligned head and tail (a piece that does
//! not start or end on a page boundary, such as a file's last block) through the normal
//! one. Pages never mix: a page is either wholly inside one piece's aligned middle
//! (direct) or touched through the page cache, and the kernel keeps the two coherent for
//! the reads that follow (a resume checking a piece, `--verify`). The range
//! is preallocated first (`fallocate`), which on ext4 lets direct writes to different
//! ranges of one file run in parallel (a write into unallocated blocks takes the inode
//! lock exclusively) and reports a full disk before any byte moves. A writer that knows
//! the file has no holes to keep reserves it whole once ([`DirectFile::reserve`]): ext4's
//! `fallocate` waits for every direct write in flight on the file, so one per piece
//! would put the writes of several threads back in a row.
//!
//! `O_DIRECT` needs the memory aligned too. A piece whose bytes are already page-aligned
//! in memory is written from where it lies; otherwise it goes through a bounce buffer of
//! [`BOUNCE_BYTES`] per writing thread (a memory copy into a buffer that stays mapped is
//! several times cheaper than populating new cache pages). A file system that refuses
//! `O_DIRECT` (tmpfs on older kernels, some FUSE and network file systems) gets the
//! buffered path, decided once per file when it is opened.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::beneath;

/// Alignment of memory, file offsets and lengths for direct writes: the page size, which
/// is a multiple of every block device's logical block size in use.
pub(crate) const DIRECT_ALIGN: usize = 4096;
/// Pieces shorter than this are written through the page cache: a direct write waits
/// for the device, which costs more than the cache for small writes.
pub(crate) const DIRECT_MIN_PIECE: usize = 1 << 20;
/// The bounce buffer of one writing thread.
pub(crate) const BOUNCE_BYTES: usize = 4 << 20;

/// How the target writes file data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Large pieces past the page cache (`O_DIRECT`) where the file system allows it,
    /// the rest through it, and each committed file's cached pages dropped once written
    /// (see `write_behind`).
    #[default]
    Direct,
    /// Everything through the page cache.
    Buffered,
}

/// The `O_DIRECT` descriptor of a file being received.
#[derive(Debug)]
pub struct DirectFile {
    file: File,
    /// Bytes from the start of the file allocated by [`reserve`](Self::reserve).
    reserved: AtomicU64,
}

impl DirectFile {
    /// Opens `name` in `dir` for direct writes: the file `buffered` has open (checked by
    /// device and inode; a name replaced meanwhile is an error), never through a
    /// symlink. `None` if its file system refuses `O_DIRECT`.
    pub(crate) fn open(
        dir: BorrowedFd<'_>,
        name: &[u8],
        buffered: &File,
    ) -> io::Result<Option<Self>> {
        let flags = rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::DIRECT;
        let file = match beneath::open_regular(dir, name, flags) {
            Ok(file) => file,
            Err(e) if beneath::is(&e, rustix::io::Errno::INVAL) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !beneath::same_file(&beneath::fstat(&file)?, &beneath::fstat(buffered)?) {
            return Err(io::Error::other(
                "the partial file was replaced while it was open",
            ));
        }
        Ok(Some(DirectFile {
            file,
            reserved: AtomicU64::new(0),
        }))
    }

    /// Allocates the first `len` bytes of the file now (keeping its size), so that the
    /// writes that follow into them allocate nothing: for a file written whole, never
    /// for one whose holes are to stay holes.
    pub fn reserve(&self, len: u64) -> io::Result<()> {
        if len > 0 {
            preallocate(&self.file, 0, len)?;
        }
        self.reserved.fetch_max(len, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `data` at `offset`: the page-aligned middle directly, the rest through
    /// `buffered` (the same file opened normally).
    pub fn write_at(&self, buffered: &File, data: &[u8], offset: u64) -> io::Result<()> {
        let Some(middle) = aligned_middle(offset, data.len()) else {
            return buffered.write_all_at(data, offset);
        };
        let (head, rest) = data.split_at(middle.start);
        let (body, tail) = rest.split_at(middle.len);
        if !head.is_empty() {
            buffered.write_all_at(head, offset)?;
        }
        let body_offset = offset + middle.start as u64;
        if body_offset + body.len() as u64 > self.reserved.load(Ordering::Relaxed) {
            preallocate(&self.file, body_offset, body.len() as u64)?;
        }
        if body.as_ptr().align_offset(DIRECT_ALIGN) == 0 {
            self.file.write_all_at(body, body_offset)?;
        } else {
            with_bounce(|bounce| -> io::Result<()> {
                let mut done = 0;
                for chunk in body.chunks(bounce.len()) {
                    let staged = &mut bounce[..chunk.len()];
                    staged.copy_from_slice(chunk);
                    self.file.write_all_at(staged, body_offset + done)?;
                    done += chunk.len() as u64;
                }
                Ok(())
            })?;
        }
        if !tail.is_empty() {
            buffered.write_all_at(tail, body_offset + body.len() as u64)?;
        }
        Ok(())
    }
}

/// The part of a write of `len` bytes at `offset` that is page-aligned at both ends, as
/// (start within the write, length); `None` when it has no whole page.
fn aligned_middle(offset: u64, len: usize) -> Option<Middle> {
    let align = DIRECT_ALIGN as u64;
    let first = offset.next_multiple_of(align);
    let end = (offset + len as u64) / align * align;
    (end > first).then(|| Middle {
        start: (first - offset) as usize,
        len: (end - first) as usize,
    })
}

#[derive(Debug, PartialEq, Eq)]
struct Middle {
    start: usize,
    len: usize,
}

/// Allocates the blocks of `[offset, offset + len)` (size unchanged); a file system
/// without `fallocate` is written as it is.
fn preallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

thread_local! {
    /// This thread's bounce buffer, allocated on its first direct write of unaligned
    /// memory and kept for the thread's life (one per handler thread: bounded).
    static BOUNCE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's page-aligned bounce buffer of [`BOUNCE_BYTES`].
fn with_bounce<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BOUNCE.with_borrow_mut(|storage| {
        if storage.is_empty() {
            storage.resize(BOUNCE_BYTES + DIRECT_ALIGN, 0);
        }
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
        f(&mut storage[start..start + BOUNCE_BYTES])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aligned_middle_skips_partial_pages_at_both_ends() {
        assert_eq!(
            aligned_middle(0, 8 << 20),
            Some(Middle {
                start: 0,
                len: 8 << 20
            })
        );
        assert_eq!(
            aligned_middle(100, 3 * 4096),
            Some(Middle {
                start: 3996,
                len: 2 * 4096
            })
        );
        // The last block of a file: aligned start, ragged end.
        assert_eq!(
            aligned_middle(8 << 20, 4096 + 17),
            Some(Middle {
                start: 0,
                len: 4096
            })
        );
        assert_eq!(aligned_middle(10, 4096), None);
        assert_eq!(aligned_middle(4096, 4095), None);
    }

    /// A fresh directory `hawser-TAG-PID` in the temporary directory with a file `file` of
    /// `size` bytes (all holes), opened for reading and writing.
    fn fresh_file(tag: &str, size: u64) -> (std::path::PathBuf, std::path::PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("hawser-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.set_len(size).unwrap();
        (dir, path, file)
    }

    /// Whatever the alignment of memory, offset and length, the file ends up with
    /// exactly the bytes written (direct middle, buffered ends), on a file system that
    /// takes `O_DIRECT` or, through the fallback, on one that does not.
    #[test]
    fn unaligned_pieces_land_byte_for_byte() {
        let size = 3 * BOUNCE_BYTES + 12_345;
        let (dir, path, buffered) = fresh_file("direct", size as u64);
        let expected: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4099) as u8).collect();
        let dir_fd = std::fs::File::open(&dir).unwrap();
        let direct =
            DirectFile::open(std::os::fd::AsFd::as_fd(&dir_fd), b"file", &buffered).unwrap();
        // Pieces cut at ragged places, written out of order, from memory that starts
        // one byte past a page boundary (so the bounce buffer is used).
        let cuts = [0, 1000, 4096 * 3, BOUNCE_BYTES + 5, 2 * BOUNCE_BYTES, size];
        let mut staging = vec![0u8; size + DIRECT_ALIGN + 1];
        let shift = staging.as_ptr().align_offset(DIRECT_ALIGN) + 1;
        staging[shift..shift + size].copy_from_slice(&expected);
        let source = &staging[shift..shift + size];
        for w in cuts.windows(2).rev() {
            let (start, end) = (w[0], w[1]);
            match &direct {
                Some(d) => d.write_at(&buffered, &source[start..end], start as u64),
                None => buffered.write_all_at(&source[start..end], start as u64),
            }
            .unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A reserved file has its blocks before any write, keeps its size, and takes the
    /// writes into them byte for byte.
    #[test]
    fn a_reserved_file_is_allocated_whole_and_written_as_usual() {
        use std::os::unix::fs::MetadataExt;
        let size = 2 * BOUNCE_BYTES;
        let (dir, path, buffered) = fresh_file("reserve", size as u64);
        let dir_fd = std::fs::File::open(&dir).unwrap();
        let Some(direct) =
            DirectFile::open(std::os::fd::AsFd::as_fd(&dir_fd), b"file", &buffered).unwrap()
        else {
            // This file system refuses O_DIRECT: nothing to reserve through.
            return std::fs::remove_dir_all(&dir).unwrap();
        };
        assert_eq!(buffered.metadata().unwrap().blocks(), 0);
        direct.reserve(size as u64).unwrap();
        let meta = buffered.metadata().unwrap();
        assert_eq!(meta.len(), size as u64);
        assert!(
            meta.blocks() * 512 >= size as u64,
            "{} blocks",
            meta.blocks()
        );
        let mut staging = vec![0u8; size + DIRECT_ALIGN];
        let shift = staging.as_ptr().align_offset(DIRECT_ALIGN);
        let piece = &mut staging[shift..shift + size];
        piece
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i % 251) as u8);
        direct.write_at(&buffered, piece, 0).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), *piece);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
