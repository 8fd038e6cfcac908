//! A zeroed byte buffer aligned to a huge page, whose memory is advised into huge pages
//! before it is first touched: for buffers that are copied into at link rate and pinned
//! for `O_DIRECT` writes, where 4 KiB pages cost a TLB miss per page and a pin per page.

use std::alloc::{Layout, alloc, dealloc};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::sys::{HUGE_PAGE, prefer_huge_pages};

/// `len` zeroed bytes starting on a huge-page boundary (so also page aligned).
pub struct HugePageBuffer {
    base: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: the buffer owns its memory alone, as a `Box<[u8]>` does.
unsafe impl Send for HugePageBuffer {}
// SAFETY: shared references only read, as for `Box<[u8]>`.
unsafe impl Sync for HugePageBuffer {}

impl HugePageBuffer {
    /// `len` zeroed bytes. The allocation is rounded up to whole huge pages; the part
    /// past `len` is never touched, so it costs no memory.
    pub fn zeroed(len: usize) -> Self {
        let size = len.max(1).next_multiple_of(HUGE_PAGE);
        let layout = Layout::from_size_align(size, HUGE_PAGE).expect("buffer size overflows");
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc(layout) };
        let base = NonNull::new(base).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        // Advised first, so that the zeroing below faults in huge pages where THP allows.
        prefer_huge_pages(base.as_ptr(), size);
        // SAFETY: `base` points to `size` ≥ `len` writable bytes allocated just above.
        unsafe { base.as_ptr().write_bytes(0, len) };
        HugePageBuffer { base, len, layout }
    }
}

impl Deref for HugePageBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `len` ≤ the allocation's size, its bytes initialized in `zeroed`, and
        // the memory lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl DerefMut for HugePageBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

impl Drop for HugePageBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout, and no slice of it outlives
        // `self`.
        unsafe { dealloc(self.base.as_ptr(), self.layout) };
    }
}

impl std::fmt::Debug for HugePageBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugePageBuffer")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_zeroed_huge_page_aligned_and_keeps_what_is_written() {
        let mut buffer = HugePageBuffer::zeroed(HUGE_PAGE + 5);
        assert_eq!(buffer.len(), HUGE_PAGE + 5);
        assert_eq!(buffer.as_ptr().addr() % HUGE_PAGE, 0);
        assert!(buffer.iter().all(|&b| b == 0));
        buffer[HUGE_PAGE + 4] = 7;
        buffer[..3].copy_from_slice(b"abc");
        assert_eq!(&buffer[..3], b"abc");
        assert_eq!(buffer[HUGE_PAGE + 4], 7);
        let empty = HugePageBuffer::zeroed(0);
        assert!(empty.is_empty());
    }
}
