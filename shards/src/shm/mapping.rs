//! The one module that touches a link's shared memory: mapping and unmapping the region,
//! and every load and store into it.
//!
//! The peer can write any byte of the region at any moment. So nothing here ever makes a
//! Rust reference to the region as plain data: every access is atomic — index words with
//! acquire/release, flags and ring bytes relaxed (ordered by the index words around them) —
//! and the compiler may neither assume the memory holds still nor read twice what the code
//! reads once. A value read is only a value: the callers validate every index before using
//! it, and ring bytes are copied out before anything interprets them. Offsets and lengths
//! come from the caller's private copy of the layout, never from the region; the asserts
//! below guard against our own bugs, not the peer.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use bytes::BytesMut;

/// A shared, read-write mapping of a whole region.
pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("len", &self.len).finish()
    }
}

// SAFETY: the mapping is process memory that stays valid until `drop`, and every access
// to it is atomic, so whichever thread owns the `Mapping` may use it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd`, shared and read-write, and faults them in now.
    ///
    /// The caller has checked that the file is `len` bytes long and sealed against
    /// shrinking, so that no access within `len` can raise `SIGBUS` later.
    pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        assert!(len > 0, "empty region");
        // SAFETY: asks the kernel for a fresh mapping at an address of its choice; no
        // memory of ours is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping { base, len })
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn check(&self, offset: usize, len: usize) {
        assert!(
            offset <= self.len && len <= self.len - offset,
            "access beyond the shared region"
        );
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8);
        assert!(offset.is_multiple_of(8), "unaligned index word");
        // SAFETY: in bounds and 8-aligned (the base is page aligned); the memory lives as
        // long as `self`, and every access to it, ours and (by contract) the peer's, is
        // atomic. A hostile peer's plain stores give us garbage values, never UB here.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 4);
        assert!(offset.is_multiple_of(4), "unaligned flag word");
        // SAFETY: as in `u64_at`, for a 4-aligned word.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    /// An index word, with acquire ordering: bytes the writer stored before publishing it
    /// are visible after.
    #[inline]
    pub(crate) fn load_index(&self, offset: usize) -> u64 {
        self.u64_at(offset).load(Ordering::Acquire)
    }

    /// Publishes an index word, with release ordering: bytes stored (or read) before it
    /// are done before the peer sees it.
    #[inline]
    pub(crate) fn store_index(&self, offset: usize, value: u64) {
        self.u64_at(offset).store(value, Ordering::Release);
    }

    #[inline]
    pub(crate) fn load_flag(&self, offset: usize) -> u32 {
        self.u32_at(offset).load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn store_flag(&self, offset: usize, value: u32) {
        self.u32_at(offset).store(value, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn swap_flag(&self, offset: usize, value: u32) -> u32 {
        self.u32_at(offset).swap(value, Ordering::AcqRel)
    }

    /// Copies `dst.len()` bytes at `offset` out of the region.
    pub(crate) fn read(&self, offset: usize, dst: &mut [u8]) {
        self.check(offset, dst.len());
        // SAFETY: the range is in bounds; `dst` is writable for its length.
        unsafe { self.copy_out(offset, dst.as_mut_ptr(), dst.len()) };
    }

    /// Appends `n` bytes at `offset` to `dst`, which has room for them.
    pub(crate) fn read_append(&self, offset: usize, n: usize, dst: &mut BytesMut) {
        self.check(offset, n);
        let spare = dst.spare_capacity_mut();
        assert!(spare.len() >= n, "no room for the bytes");
        // SAFETY: the range is in bounds; the spare capacity is writable for `n` bytes
        // (MaybeUninit<u8> has u8's layout).
        unsafe { self.copy_out(offset, spare.as_mut_ptr().cast::<u8>(), n) };
        // SAFETY: the `n` bytes after the length were just written.
        unsafe { dst.set_len(dst.len() + n) };
    }

    /// Copies `src` into the region at `offset`.
    pub(crate) fn write(&self, offset: usize, src: &[u8]) {
        self.check(offset, src.len());
        // SAFETY: the range is in bounds.
        unsafe { self.copy_in(offset, src) };
    }

    /// Atomic relaxed loads: bytes up to 8-alignment, then words, then the tail.
    ///
    /// # Safety
    /// `offset..offset + len` is inside the region and `dst` is writable for `len` bytes.
    #[inline]
    unsafe fn copy_out(&self, offset: usize, dst: *mut u8, len: usize) {
        // SAFETY: (the whole block) every address read is inside the region (caller), aligned
        // for its width, and only accessed atomically; every address written is in `dst`.
        unsafe {
            let src = self.base.as_ptr().add(offset);
            let mut i = 0;
            while i < len && !(src as usize + i).is_multiple_of(8) {
                *dst.add(i) = AtomicU8::from_ptr(src.add(i)).load(Ordering::Relaxed);
                i += 1;
            }
            while len - i >= 32 {
                let w0 = AtomicU64::from_ptr(src.add(i).cast()).load(Ordering::Relaxed);
                let w1 = AtomicU64::from_ptr(src.add(i + 8).cast()).load(Ordering::Relaxed);
                let w2 = AtomicU64::from_ptr(src.add(i + 16).cast()).load(Ordering::Relaxed);
                let w3 = AtomicU64::from_ptr(src.add(i + 24).cast()).load(Ordering::Relaxed);
                dst.add(i).cast::<u64>().write_unaligned(w0);
                dst.add(i + 8).cast::<u64>().write_unaligned(w1);
                dst.add(i + 16).cast::<u64>().write_unaligned(w2);
                dst.add(i + 24).cast::<u64>().write_unaligned(w3);
                i += 32;
            }
            while len - i >= 8 {
                let w = AtomicU64::from_ptr(src.add(i).cast()).load(Ordering::Relaxed);
                dst.add(i).cast::<u64>().write_unaligned(w);
                i += 8;
            }
            while i < len {
                *dst.add(i) = AtomicU8::from_ptr(src.add(i)).load(Ordering::Relaxed);
                i += 1;
            }
        }
    }

    /// Atomic relaxed stores, in the same pattern as [`copy_out`](Self::copy_out).
    ///
    /// # Safety
    /// `offset..offset + src.len()` is inside the region.
    #[inline]
    unsafe fn copy_in(&self, offset: usize, src: &[u8]) {
        let len = src.len();
        let from = src.as_ptr();
        // SAFETY: (the whole block) every address written is inside the region (caller),
        // aligned for its width, and only accessed atomically; every read is in `src`.
        unsafe {
            let dst = self.base.as_ptr().add(offset);
            let mut i = 0;
            while i < len && !(dst as usize + i).is_multiple_of(8) {
                AtomicU8::from_ptr(dst.add(i)).store(*from.add(i), Ordering::Relaxed);
                i += 1;
            }
            while len - i >= 32 {
                let w0 = from.add(i).cast::<u64>().read_unaligned();
                let w1 = from.add(i + 8).cast::<u64>().read_unaligned();
                let w2 = from.add(i + 16).cast::<u64>().read_unaligned();
                let w3 = from.add(i + 24).cast::<u64>().read_unaligned();
                AtomicU64::from_ptr(dst.add(i).cast()).store(w0, Ordering::Relaxed);
                AtomicU64::from_ptr(dst.add(i + 8).cast()).store(w1, Ordering::Relaxed);
                AtomicU64::from_ptr(dst.add(i + 16).cast()).store(w2, Ordering::Relaxed);
                AtomicU64::from_ptr(dst.add(i + 24).cast()).store(w3, Ordering::Relaxed);
                i += 32;
            }
            while len - i >= 8 {
                let w = from.add(i).cast::<u64>().read_unaligned();
                AtomicU64::from_ptr(dst.add(i).cast()).store(w, Ordering::Relaxed);
                i += 8;
            }
            while i < len {
                AtomicU8::from_ptr(dst.add(i)).store(*from.add(i), Ordering::Relaxed);
                i += 1;
            }
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped; no reference into it outlives `self`
        // (accessors borrow `self`).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(len: usize) -> Mapping {
        let fd = crate::sys::memfd_create(c"hawser-test").unwrap();
        crate::sys::ftruncate(std::os::fd::AsFd::as_fd(&fd), len as u64).unwrap();
        Mapping::map(std::os::fd::AsFd::as_fd(&fd), len).unwrap()
    }

    #[test]
    fn bytes_round_trip_at_every_alignment_and_length() {
        let map = region(4096);
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for offset in 0..17 {
            for len in [0, 1, 7, 8, 9, 31, 32, 33, 64, 65, 200] {
                map.write(offset + 100, &data[..len]);
                let mut back = vec![0u8; len];
                map.read(offset + 100, &mut back);
                assert_eq!(back, &data[..len], "offset {offset} len {len}");
                let mut appended = BytesMut::with_capacity(len + 3);
                appended.extend_from_slice(b"abc");
                map.read_append(offset + 100, len, &mut appended);
                assert_eq!(&appended[3..], &data[..len]);
            }
        }
        map.store_index(8, 42);
        assert_eq!(map.load_index(8), 42);
        map.store_flag(16, 1);
        assert_eq!(map.swap_flag(16, 0), 1);
        assert_eq!(map.load_flag(16), 0);
    }

    #[test]
    #[should_panic(expected = "beyond the shared region")]
    fn an_access_past_the_end_panics_rather_than_faults() {
        let map = region(4096);
        map.write(4090, &[0; 8]);
    }
}
