//! Read-only mappings of file ranges: a sender reads and hashes a file's bytes where the
//! page cache holds them, and its socket send copies them from there, instead of copying
//! them into a buffer of its own first.
//!
//! A mapped page whose file shrank under it (another process truncated the file) raises
//! `SIGBUS` when touched, which would end the process. So every range mapped here is
//! registered, and a `SIGBUS` handler, installed with the first mapping, replaces a
//! vanished page of a registered range by a page of zeros and marks the range. The reader
//! sees zeros, asks [`MappedRange::vanished`] once it is done, and reports the file as
//! changed. A `SIGBUS` anywhere else goes on to the handler that was installed before (the
//! standard library's) or to the default action. The kernel's own reads of a mapping (a
//! `send` from it) fail with `EFAULT` instead of raising the signal: a connection whose
//! send faults has [`make_readable`] touch the pages it was sending (each vanished page of
//! a registered range becomes zeros) and sends again. The zeros then fail the message's
//! own digest at the receiver, and the sender, reading the range again, finds it vanished.
//!
//! A range can have a writable prefix of up to one page right before its first byte, in
//! the same allocation, so that a message header and the file bytes behind it form one
//! contiguous buffer.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// Ranges mapped at once, at most; [`MappedRange::map`] refuses more (the caller reads
/// the range instead).
pub const MAX_MAPPED_RANGES: usize = 1024;

/// One registered range: `[start, end)` while `start` is not zero.
struct Slot {
    claimed: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    vanished: AtomicBool,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            claimed: AtomicBool::new(false),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            vanished: AtomicBool::new(false),
        }
    }
}

/// The ranges the `SIGBUS` handler may repair; it only reads atomics, as a signal handler
/// must.
static REGISTRY: [Slot; MAX_MAPPED_RANGES] = [const { Slot::new() }; MAX_MAPPED_RANGES];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
/// Whether the handler is installed (installing can fail; mapping is then refused).
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The `SIGBUS` action that was installed before ours, set before ours is installed.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// A mapped file range (see the module documentation).
pub struct MappedRange {
    /// The start of the whole mapping: one page for the prefix, then the file's pages.
    base: NonNull<u8>,
    /// Length of the whole mapping.
    total: usize,
    /// The file's first byte (one page into the mapping).
    data: NonNull<u8>,
    /// Length of the prefix right before the file's first byte.
    prefix: usize,
    /// Length of the file range.
    len: usize,
    slot: usize,
}

impl std::fmt::Debug for MappedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedRange")
            .field("prefix", &self.prefix)
            .field("len", &self.len)
            .field("vanished", &self.vanished())
            .finish()
    }
}

// SAFETY: the mapping is process memory, valid until `drop`; shared access only reads it
// and the prefix is written only through `&mut self`.
unsafe impl Send for MappedRange {}
// SAFETY: as above: `&self` methods only read.
unsafe impl Sync for MappedRange {}

impl MappedRange {
    /// Maps `len` bytes of `fd` from `offset` (a multiple of the page size), read-only
    /// (pages are faulted in as they are read), behind a zeroed writable prefix of
    /// `prefix` bytes (at most a page).
    ///
    /// Fails if the file system cannot map the file, if `MAX_MAPPED_RANGES` are mapped
    /// already, or if the arguments are out of range (zero length, unaligned offset).
    pub fn map(fd: BorrowedFd<'_>, offset: u64, len: usize, prefix: usize) -> io::Result<Self> {
        let page = page_size();
        if len == 0 || prefix > page || !offset.is_multiple_of(page as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a mapped range needs a length, a page-aligned offset and a prefix of at most a page",
            ));
        }
        install_handler()?;
        let file_len = len
            .checked_next_multiple_of(page)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range too long"))?;
        let total = file_len + page;
        let slot = claim_slot()?;
        // SAFETY: asks for a fresh anonymous mapping at an address of the kernel's choice;
        // no memory of ours is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            release_slot(slot);
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `base + page` lies inside the mapping just made (total = page + file_len).
        let file_start = unsafe { base.cast::<u8>().add(page) };
        // SAFETY: replaces the pages after the first of the anonymous mapping just made,
        // which nothing else references yet, by the file's pages.
        let mapped = unsafe {
            libc::mmap(
                file_start.cast::<c_void>(),
                file_len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if mapped == libc::MAP_FAILED {
            let error = io::Error::last_os_error();
            // SAFETY: unmaps the mapping made above, which nothing references.
            unsafe { libc::munmap(base, total) };
            release_slot(slot);
            return Err(error);
        }
        let entry = &REGISTRY[slot];
        entry.vanished.store(false, Ordering::Relaxed);
        entry
            .end
            .store(file_start as usize + file_len, Ordering::Release);
        entry.start.store(file_start as usize, Ordering::Release);
        Ok(MappedRange {
            base: NonNull::new(base.cast::<u8>()).expect("mmap succeeded"),
            total,
            data: NonNull::new(file_start).expect("inside a mapping"),
            prefix,
            len,
            slot,
        })
    }

    /// The file's bytes. They are zeros where the file shrank under them, which
    /// [`vanished`](Self::vanished) tells afterwards.
    pub fn data(&self) -> &[u8] {
        // SAFETY: the file range starts at `data` and lives as long as `self`; it is only
        // read here. Another process may write the file meanwhile: the bytes are then a
        // torn snapshot, as a `read` racing that write would give.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    /// The prefix followed by the file's bytes, contiguous.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: as in `data`; the prefix is the end of the first (anonymous) page, right
        // before `data`.
        unsafe {
            std::slice::from_raw_parts(self.data.as_ptr().sub(self.prefix), self.prefix + self.len)
        }
    }

    /// The writable prefix right before the file's bytes.
    pub fn prefix_mut(&mut self) -> &mut [u8] {
        // SAFETY: the prefix is the end of the first page, private anonymous memory of
        // this mapping, borrowed mutably through `&mut self` only.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr().sub(self.prefix), self.prefix) }
    }

    /// Whether a page of the range was gone when read (the file shrank): its bytes read as
    /// zeros.
    pub fn vanished(&self) -> bool {
        REGISTRY[self.slot].vanished.load(Ordering::Acquire)
    }
}

impl AsRef<[u8]> for MappedRange {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for MappedRange {
    fn drop(&mut self) {
        let entry = &REGISTRY[self.slot];
        entry.start.store(0, Ordering::Release);
        // SAFETY: unmaps this range's own mapping; no reference into it outlives `self`.
        unsafe { libc::munmap(self.base.as_ptr().cast::<c_void>(), self.total) };
        release_slot(self.slot);
    }
}

/// Reads one byte of every page of `bytes`, so that each page of a registered range the
/// file no longer has is replaced by zeros (see the module documentation) and a kernel
/// copy from `bytes` no longer faults. Memory outside registered ranges is always readable.
pub(crate) fn make_readable(bytes: &[u8]) {
    let page = page_size();
    let start = bytes.as_ptr() as usize;
    let mut at = 0;
    while at < bytes.len() {
        // SAFETY: `at` is within `bytes`; a volatile read so that the touch happens.
        unsafe { std::ptr::read_volatile(bytes.as_ptr().add(at)) };
        at += page - (start + at) % page;
    }
}

fn page_size() -> usize {
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf only reads a system constant.
            let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let size = usize::try_from(size).unwrap_or(4096).max(4096);
            PAGE_SIZE.store(size, Ordering::Relaxed);
            size
        }
        size => size,
    }
}

fn claim_slot() -> io::Result<usize> {
    REGISTRY
        .iter()
        .position(|slot| {
            slot.claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("{MAX_MAPPED_RANGES} file ranges are mapped already"),
            )
        })
}

fn release_slot(slot: usize) {
    REGISTRY[slot].claimed.store(false, Ordering::Release);
}

fn install_handler() -> io::Result<()> {
    INSTALL.call_once(|| {
        page_size();
        // SAFETY: an all-zero sigaction is a valid value to be filled in below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: sa_mask is a plain signal set owned by `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: an all-zero sigaction is a valid value for the kernel to fill in.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: reads the current action only; ours is installed below, after PREVIOUS
        // is written, so the handler never sees it unwritten.
        if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) } != 0 {
            return;
        }
        let _ = PREVIOUS.set(previous);
        // SAFETY: installs our handler; `action` is fully initialised.
        if unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) } == 0 {
            INSTALLED.store(true, Ordering::Release);
        }
    });
    if INSTALLED.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(io::Error::other(
            "cannot install the SIGBUS handler mapped files need",
        ))
    }
}

/// Repairs a fault in a registered range (a page of zeros in place of the vanished one),
/// or passes the signal on.
extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: the kernel hands an SA_SIGINFO handler a valid siginfo.
    let address = unsafe { (*info).si_addr() } as usize;
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    for slot in &REGISTRY {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 || address < start || address >= slot.end.load(Ordering::Acquire) {
            continue;
        }
        let at = address & !(page - 1);
        // SAFETY: replaces one page of a registered range, which its owner only reads, by
        // a private page of zeros; the range stays mapped until its owner drops it.
        let zeros = unsafe {
            libc::mmap(
                at as *mut c_void,
                page,
                libc::PROT_READ,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if zeros != libc::MAP_FAILED {
            slot.vanished.store(true, Ordering::Release);
            return;
        }
        break;
    }
    match PREVIOUS.get().copied() {
        Some(previous)
            if previous.sa_sigaction != libc::SIG_DFL && previous.sa_sigaction != libc::SIG_IGN =>
        {
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed as an SA_SIGINFO handler of
                // this signature; it gets what the kernel gave us.
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(previous.sa_sigaction) };
                handler(signal, info, context);
            } else {
                // SAFETY: the previous handler was installed as a plain handler.
                let handler: extern "C" fn(libc::c_int) =
                    unsafe { std::mem::transmute(previous.sa_sigaction) };
                handler(signal);
            }
        }
        _ => {
            // SAFETY: restores the default action, so the faulting access, repeated on
            // return, ends the process as it would have without us.
            let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
            default.sa_sigaction = libc::SIG_DFL;
            // SAFETY: installs the default action; `default` is fully initialised.
            unsafe { libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    fn file_of(name: &str, bytes: &[u8]) -> (std::path::PathBuf, File) {
        let path =
            std::env::temp_dir().join(format!("hawser-mapped-{name}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        (path, file)
    }

    #[test]
    fn maps_a_range_behind_a_writable_prefix() {
        let page = page_size();
        let bytes: Vec<u8> = (0..page * 3 + 100).map(|i| (i % 251) as u8).collect();
        let (path, file) = file_of("prefix", &bytes);
        let mut range = MappedRange::map(file.as_fd(), page as u64, page + 50, 21).unwrap();
        assert_eq!(range.data(), &bytes[page..page * 2 + 50]);
        assert!(range.prefix_mut().iter().all(|&b| b == 0));
        range.prefix_mut().copy_from_slice(&[7; 21]);
        assert_eq!(&range.bytes()[..21], &[7; 21]);
        assert_eq!(&range.bytes()[21..], range.data());
        assert!(!range.vanished());
        drop(range);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_file_that_shrinks_under_a_range_reads_as_zeros_and_says_so() {
        let page = page_size();
        let bytes = vec![0xabu8; page * 4];
        let (path, file) = file_of("shrink", &bytes);
        let range = MappedRange::map(file.as_fd(), 0, page * 4, 0).unwrap();
        file.set_len(page as u64).unwrap();
        let data = range.data();
        assert!(data[..page].iter().all(|&b| b == 0xab));
        assert!(
            data[page..].iter().all(|&b| b == 0),
            "vanished pages read as zeros"
        );
        assert!(range.vanished());
        let other = MappedRange::map(file.as_fd(), 0, page, 0).unwrap();
        assert!(!other.vanished(), "another range keeps its own mark");
        drop(range);
        drop(other);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn made_readable_a_range_reads_as_zeros_where_the_file_shrank() {
        let page = page_size();
        let (path, file) = file_of("readable", &vec![3u8; page * 3]);
        let range = MappedRange::map(file.as_fd(), 0, page * 3, 8).unwrap();
        file.set_len(0).unwrap();
        make_readable(range.bytes());
        assert!(range.vanished());
        assert!(range.data().iter().all(|&b| b == 0));
        drop(range);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn refuses_unaligned_offsets_and_empty_ranges() {
        let (path, file) = file_of("refuse", &[1; 8192]);
        assert!(MappedRange::map(file.as_fd(), 100, 10, 0).is_err());
        assert!(MappedRange::map(file.as_fd(), 0, 0, 0).is_err());
        assert!(MappedRange::map(file.as_fd(), 0, 10, page_size() + 1).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
