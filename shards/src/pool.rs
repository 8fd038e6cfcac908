//! The per-shard pool of registered buffers, the handles that lend them out, and the
//! provided-buffer ring through which the kernel picks buffers for multishot receive.
//!
//! Ownership rule that keeps the kernel honest: a buffer id is always in exactly one place —
//! the free list, the provided ring (the kernel may write into it), a live [`BufHandle`], a
//! receive completion being processed, or a return message travelling back to its owner.
//! Only the owning shard moves ids between the free list and the provided ring, and the pool
//! memory outlives the ring (it is reference counted, and the ring is dropped first).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::RefCell;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use crossbeam::queue::ArrayQueue;
use io_uring::types::BufRingEntry;

use crate::mesh::Doorbell;

/// Alignment of every buffer: a page, so buffers are usable with `O_DIRECT`.
pub(crate) const BUFFER_ALIGN: usize = 4096;

/// Bytes a pool of `count` buffers of `buf_size` bytes pins (each rounded up to a page).
pub(crate) fn pool_bytes(count: u16, buf_size: usize) -> u64 {
    (buf_size.next_multiple_of(BUFFER_ALIGN) * usize::from(count)) as u64
}

/// The memory of one shard's pool: `count` buffers of `buf_size` bytes, page aligned.
pub(crate) struct PoolMemory {
    base: NonNull<u8>,
    buf_size: usize,
    count: u16,
    layout: Layout,
}

// SAFETY: the memory is plain bytes; access to each buffer is serialised by the id ownership
// rule described at the top of this module (one owner of an id at a time).
unsafe impl Send for PoolMemory {}
// SAFETY: as above; shared references only hand out pointers, never aliased slices.
unsafe impl Sync for PoolMemory {}

impl PoolMemory {
    pub(crate) fn new(count: u16, buf_size: usize) -> Self {
        assert!(count > 0 && buf_size > 0, "pool must not be empty");
        let buf_size = buf_size.next_multiple_of(BUFFER_ALIGN);
        let layout = Layout::from_size_align(buf_size * usize::from(count), BUFFER_ALIGN)
            .expect("pool size overflows");
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        let base = NonNull::new(base).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        // Before the ring registers (and so touches) it: receives copy into it.
        crate::sys::prefer_huge_pages(base.as_ptr(), layout.size());
        PoolMemory {
            base,
            buf_size,
            count,
            layout,
        }
    }

    pub(crate) fn buf_size(&self) -> usize {
        self.buf_size
    }

    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    /// Start of buffer `id`.
    pub(crate) fn ptr(&self, id: u16) -> *mut u8 {
        assert!(id < self.count, "buffer id out of range");
        // SAFETY: id < count, so the offset stays inside the allocation.
        unsafe { self.base.as_ptr().add(usize::from(id) * self.buf_size) }
    }

    /// One iovec per buffer, for `register_buffers` (buffer index == buffer id).
    pub(crate) fn iovecs(&self) -> Vec<libc::iovec> {
        (0..self.count)
            .map(|id| libc::iovec {
                iov_base: self.ptr(id).cast(),
                iov_len: self.buf_size,
            })
            .collect()
    }
}

impl Drop for PoolMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that registered it is gone
        // (it is dropped before the last reference to the pool).
        unsafe { dealloc(self.base.as_ptr(), self.layout) };
    }
}

/// The part of a pool other threads may touch: the memory and a return queue for buffers
/// dropped on threads that are not shards.
pub(crate) struct PoolShared {
    pub(crate) mem: PoolMemory,
    pub(crate) owner: usize,
    pub(crate) foreign_returns: ArrayQueue<u16>,
    pub(crate) doorbell: Arc<Doorbell>,
    /// Buffers currently lent out as handles (for stats only; written by any thread).
    pub(crate) handles_out: AtomicU16,
}

impl fmt::Debug for PoolShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolShared")
            .field("owner", &self.owner)
            .field("count", &self.mem.count)
            .finish()
    }
}

/// Per-thread lists of buffers dropped on a shard thread, drained by the loop once per
/// iteration: local ones go back to the pool, foreign ones travel home over the SPSC mesh.
pub(crate) struct ReturnLists {
    pub(crate) shard: usize,
    pub(crate) local: Vec<u16>,
    pub(crate) remote: Vec<(usize, u16)>,
}

thread_local! {
    pub(crate) static RETURNS: RefCell<ReturnLists> =
        const { RefCell::new(ReturnLists { shard: usize::MAX, local: Vec::new(), remote: Vec::new() }) };
}

/// A buffer of some shard's registered pool, owned exclusively by whoever holds the handle.
///
/// Handles are `Send`: lend one to another shard (or any thread) and it returns to its owner's
/// pool when dropped, wherever that happens. `len` is the number of valid bytes.
pub struct BufHandle {
    pool: Arc<PoolShared>,
    id: u16,
    /// Where the handle's bytes start inside the buffer (non-zero for a datagram payload
    /// that follows the kernel's recvmsg header).
    start: u32,
    len: u32,
}

impl fmt::Debug for BufHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufHandle")
            .field("owner", &self.pool.owner)
            .field("id", &self.id)
            .field("len", &self.len)
            .finish()
    }
}

impl BufHandle {
    pub(crate) fn new(pool: Arc<PoolShared>, id: u16, len: usize) -> Self {
        pool.handles_out.fetch_add(1, Ordering::Relaxed);
        BufHandle {
            pool,
            id,
            start: 0,
            len: len as u32,
        }
    }

    pub(crate) fn new_range(pool: Arc<PoolShared>, id: u16, start: usize, len: usize) -> Self {
        assert!(start + len <= pool.mem.buf_size(), "range beyond buffer");
        pool.handles_out.fetch_add(1, Ordering::Relaxed);
        BufHandle {
            pool,
            id,
            start: start as u32,
            len: len as u32,
        }
    }

    /// The shard whose pool this buffer belongs to.
    pub fn owner(&self) -> usize {
        self.pool.owner
    }

    /// Index of the buffer in its owner's pool (and in the ring's registered buffer table).
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Valid bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no byte is valid.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes available from the handle's start to the end of the buffer.
    pub fn capacity(&self) -> usize {
        self.pool.mem.buf_size() - self.start as usize
    }

    /// Sets the number of valid bytes (at most the capacity).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "length beyond buffer capacity");
        self.len = len as u32;
    }

    /// The valid bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: this handle owns buffer `id` exclusively (module invariant), the memory lives
        // as long as `pool`, and len <= capacity.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len as usize) }
    }

    /// The whole buffer, for filling; call [`set_len`](Self::set_len) afterwards.
    pub fn as_mut_full(&mut self) -> &mut [u8] {
        // SAFETY: exclusive ownership of buffer `id` through `&mut self`; memory outlives us.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.capacity()) }
    }

    /// Pointer to the start of the buffer, for ring operations.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        // SAFETY: start < buf_size (checked at construction), so this stays in the buffer.
        unsafe { self.pool.mem.ptr(self.id).add(self.start as usize) }
    }
}

impl Drop for BufHandle {
    fn drop(&mut self) {
        self.pool.handles_out.fetch_sub(1, Ordering::Relaxed);
        release(&self.pool, self.id);
    }
}

/// Sends buffer `id` home: to the local list when dropped on its owner, to the mesh when
/// dropped on another shard, to the owner's lock-free queue (plus doorbell) otherwise.
fn release(pool: &Arc<PoolShared>, id: u16) {
    let queued = RETURNS
        .try_with(|lists| {
            let Ok(mut lists) = lists.try_borrow_mut() else {
                return false;
            };
            if lists.shard == usize::MAX {
                false
            } else if lists.shard == pool.owner {
                lists.local.push(id);
                true
            } else {
                lists.remote.push((pool.owner, id));
                true
            }
        })
        .unwrap_or(false);
    if !queued {
        // Capacity equals the pool size and an id is returned once, so this cannot fail.
        let _ = pool.foreign_returns.push(id);
        pool.doorbell.ring_if_parked();
    }
}

/// The kernel-shared ring of provided buffers (`IORING_REGISTER_PBUF_RING`).
#[derive(Debug)]
pub(crate) struct ProvidedRing {
    base: NonNull<BufRingEntry>,
    layout: Layout,
    mask: u16,
    tail: u16,
    pub(crate) group: u16,
}

impl ProvidedRing {
    pub(crate) fn new(entries: u16, group: u16) -> Self {
        assert!(
            entries.is_power_of_two(),
            "provided ring size must be a power of two"
        );
        let layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            BUFFER_ALIGN,
        )
        .expect("ring layout");
        // SAFETY: non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        let base = NonNull::new(base.cast::<BufRingEntry>())
            .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        ProvidedRing {
            base,
            layout,
            mask: entries - 1,
            tail: 0,
            group,
        }
    }

    pub(crate) fn register(&self, ring: &io_uring::IoUring) -> std::io::Result<()> {
        // SAFETY: the ring memory is page aligned, `mask + 1` entries long, and lives until
        // after the io_uring instance is dropped (the shard drops the ring first).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                self.base.as_ptr() as u64,
                self.mask.wrapping_add(1),
                self.group,
                0,
            )
        }
    }

    /// Queues buffer `id` at `addr` for the kernel; visible after [`publish`](Self::publish).
    pub(crate) fn push(&mut self, id: u16, addr: *mut u8, len: u32) {
        let index = usize::from(self.tail & self.mask);
        // SAFETY: index <= mask, inside the ring allocation; the kernel only reads entries
        // between its head and the published tail, and this one is beyond the tail.
        let entry = unsafe { &mut *self.base.as_ptr().add(index) };
        entry.set_addr(addr as u64);
        entry.set_len(len);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed entries visible to the kernel.
    pub(crate) fn publish(&mut self) {
        // SAFETY: the tail field lives inside the first entry of our allocation and is only
        // written by us; the kernel reads it with acquire semantics.
        let tail = unsafe { &*(BufRingEntry::tail(self.base.as_ptr()) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for ProvidedRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring using it was dropped before.
        unsafe { dealloc(self.base.as_ptr().cast(), self.layout) };
    }
}

/// The owning shard's view of its pool.
#[derive(Debug)]
pub(crate) struct LocalPool {
    pub(crate) shared: Arc<PoolShared>,
    free: Vec<u16>,
    pub(crate) provided: ProvidedRing,
    in_ring: u16,
    recv_target: u16,
    dirty: bool,
}

impl LocalPool {
    pub(crate) fn new(shared: Arc<PoolShared>, recv_target: u16, group: u16) -> Self {
        let count = shared.mem.count();
        let entries = recv_target.max(1).next_power_of_two();
        let mut pool = LocalPool {
            free: Vec::with_capacity(usize::from(count)),
            provided: ProvidedRing::new(entries, group),
            in_ring: 0,
            recv_target,
            dirty: false,
            shared,
        };
        for id in (0..count).rev() {
            pool.free.push(id);
        }
        pool
    }

    /// Fills the provided ring up to its target from the free list.
    pub(crate) fn fill_ring(&mut self) {
        while self.in_ring < self.recv_target {
            let Some(id) = self.free.pop() else { break };
            self.push_ring(id);
        }
        self.publish();
    }

    fn push_ring(&mut self, id: u16) {
        let len = self.shared.mem.buf_size() as u32;
        let ptr = self.shared.mem.ptr(id);
        self.provided.push(id, ptr, len);
        self.in_ring += 1;
        self.dirty = true;
    }

    pub(crate) fn publish(&mut self) {
        if self.dirty {
            self.provided.publish();
            self.dirty = false;
        }
    }

    /// The kernel consumed buffer `id` from the provided ring for a receive.
    pub(crate) fn took_from_ring(&mut self) {
        self.in_ring = self.in_ring.saturating_sub(1);
    }

    /// A buffer came home: refill the receive ring first, the free list otherwise.
    pub(crate) fn recycle(&mut self, id: u16) {
        if self.in_ring < self.recv_target {
            self.push_ring(id);
        } else {
            self.free.push(id);
        }
    }

    pub(crate) fn alloc(&mut self) -> Option<BufHandle> {
        let id = self.free.pop()?;
        Some(BufHandle::new(self.shared.clone(), id, 0))
    }

    /// Takes a free buffer's id for the shard to fill itself and hand to a protocol as a
    /// received buffer ([`fill`](Self::fill), then [`received`](Self::received)): the id is
    /// then the shard's, as a receive completion's is, until recycled or made a handle.
    pub(crate) fn take_free(&mut self) -> Option<u16> {
        self.free.pop()
    }

    /// The whole of buffer `id`, which the caller took with [`take_free`](Self::take_free)
    /// and still holds.
    pub(crate) fn fill(&mut self, id: u16) -> &mut [u8] {
        let len = self.shared.mem.buf_size();
        // SAFETY: the caller owns buffer `id` (taken off the free list, not given away), so
        // nothing else reads or writes it; the pool memory lives as long as `self.shared`.
        unsafe { std::slice::from_raw_parts_mut(self.shared.mem.ptr(id), len) }
    }

    pub(crate) fn handle(&self, id: u16, len: usize) -> BufHandle {
        BufHandle::new(self.shared.clone(), id, len)
    }

    pub(crate) fn handle_range(&self, id: u16, start: usize, len: usize) -> BufHandle {
        BufHandle::new_range(self.shared.clone(), id, start, len)
    }

    /// Bytes the kernel received into buffer `id`.
    ///
    /// Only valid between the receive completion naming `id` (or the
    /// [`take_free`](Self::take_free) that took it) and the recycle of `id`.
    pub(crate) fn received(&self, id: u16, len: usize) -> &[u8] {
        let len = len.min(self.shared.mem.buf_size());
        // SAFETY: the completion handed buffer `id` to us (it left the provided ring), nothing
        // else owns it until we recycle it or turn it into a handle, and len <= buf_size.
        unsafe { std::slice::from_raw_parts(self.shared.mem.ptr(id), len) }
    }

    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    pub(crate) fn in_ring(&self) -> u16 {
        self.in_ring
    }

    pub(crate) fn recv_target(&self) -> u16 {
        self.recv_target
    }
}
