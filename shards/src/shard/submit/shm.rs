//! Submissions of shared-memory links: the liveness receive on the rendezvous socket, and
//! the eventfd writes that ring a parked peer (the read of a link's own eventfd is
//! [`Ring::read_doorbell`]).

use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::Ring;

/// What a ring of a peer's doorbell adds to its eventfd. A static, so that its address
/// outlives every write that points at it.
static ONE: u64 = 1;

impl Ring {
    /// One receive into `probe` on a link's rendezvous socket: it completes when the peer
    /// closes (0), the socket fails, or the peer sends bytes it should not.
    #[inline]
    pub(in crate::shard) fn recv_probe(&mut self, fd: RawFd, probe: &mut [u8; 8], ud: u64) {
        let entry = opcode::Recv::new(types::Fd(fd), probe.as_mut_ptr(), probe.len() as u32)
            .build()
            .user_data(ud);
        // SAFETY: `probe` lives in the connection's boxed link state, which is not released
        // while this receive is armed.
        unsafe { self.push(entry) };
    }

    /// Adds one to a peer's eventfd. Through the ring rather than `write(2)`: the peer
    /// controls that eventfd (its blocking mode, its counter), and a write that cannot
    /// complete must wait in the kernel, not on the shard.
    #[inline]
    pub(in crate::shard) fn ring_eventfd(&mut self, fd: RawFd, ud: u64) {
        let entry = opcode::Write::new(types::Fd(fd), (&raw const ONE).cast::<u8>(), 8)
            .build()
            .user_data(ud);
        // SAFETY: the write reads 8 bytes from a static.
        unsafe { self.push(entry) };
    }

    /// Cancels every operation whose `user_data` is `target`.
    pub(in crate::shard) fn cancel_all(&mut self, target: u64, ud: u64) {
        let entry = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target).all())
            .build()
            .user_data(ud);
        // SAFETY: cancellation references no memory.
        unsafe { self.push(entry) };
    }
}
