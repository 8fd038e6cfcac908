//! A bounded pool of block buffers, so steady-state sending does not allocate per block.
//!
//! A block body is read into a pooled `BytesMut` behind room for its header, frozen into
//! `Bytes` and handed to the transport. The source keeps a clone until the block is
//! acknowledged; by then the transport has dropped its references, so
//! `Bytes::try_into_mut` gets the allocation back without copying. If the transport
//! still holds one (a retry queued somewhere), the buffer is simply not reused.

use bytes::{Bytes, BytesMut};

#[derive(Debug)]
pub(crate) struct BlockPool {
    free: Vec<BytesMut>,
    capacity: usize,
    max_free: usize,
    allocated: u64,
}

impl BlockPool {
    pub(crate) fn new(capacity: usize, max_free: usize) -> Self {
        BlockPool {
            free: Vec::new(),
            capacity,
            max_free,
            allocated: 0,
        }
    }

    /// A buffer of the pool's capacity. A reused one keeps the length and bytes it had
    /// (the caller overwrites them), so that resizing it does not zero-fill again.
    pub(crate) fn take(&mut self) -> BytesMut {
        self.free.pop().unwrap_or_else(|| {
            self.allocated += 1;
            BytesMut::with_capacity(self.capacity)
        })
    }

    /// Returns a buffer whose last reference is `body`.
    pub(crate) fn give_back(&mut self, body: Bytes) {
        if self.free.len() < self.max_free
            && let Ok(buf) = body.try_into_mut()
            && buf.capacity() >= self.capacity
        {
            self.free.push(buf);
        }
    }

    /// Buffers allocated so far.
    pub(crate) fn allocated(&self) -> u64 {
        self.allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_buffer_once_its_bytes_are_unique() {
        let mut pool = BlockPool::new(1024, 4);
        let mut buf = pool.take();
        buf.extend_from_slice(&[1; 100]);
        let first = buf.as_ptr();
        let body = buf.freeze();
        let sent = body.clone();
        drop(sent);
        pool.give_back(body);
        let again = pool.take();
        assert_eq!(pool.allocated(), 1);
        assert_eq!(again.as_ptr(), first, "the same allocation comes back");
        // Its length stays, so that resizing it to the next block's size does not
        // zero-fill it again.
        assert_eq!(again.len(), 100);
        assert!(again.capacity() >= 1024);
    }
}
