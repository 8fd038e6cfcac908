//! A shard's io_uring, and the one way into its submission queue: every SQE is pushed by
//! this module or the ones below it (stream sockets, datagram sockets, files), each next to
//! the memory its SQEs point the kernel at (send and datagram headers, receive buffers,
//! connect addresses, file paths, the doorbell's counters).
//!
//! The rule each push relies on: memory an operation references stays valid and unmoved
//! until the operation's last completion has been reaped. The holders below are boxed or
//! live in pool memory, and their owners keep them that long:
//!
//! - a connection (its [`SendHeader`], [`RecvBufSlot`], connect address and queued bytes)
//!   is released only when no receive, send or connect of it is in flight;
//! - a file operation keeps its buffer or path in the shard's op table until its completion;
//! - a [`DatagramSend`] goes back on its free list only at its completion;
//! - a UDP socket keeps its [`RecvMsgTemplate`] until its multishot receive has ended;
//! - the doorbell's [`DoorbellCounter`] and the pool live in the shard's core, which drops
//!   its [`Ring`] (declared first) before them, after cancelling everything in flight;
//! - a shared-memory connection's probe buffer and eventfd counter live in its boxed link
//!   state, released only when its probe, doorbell read and peer rings have completed
//!   (a peer ring reads a static).

mod datagram;
mod file;
mod shm;
mod stream;

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{CompletionQueue, IoUring, opcode, squeue, types};

use super::ShardSettings;
use crate::pool::LocalPool;

pub(in crate::shard) use datagram::{DatagramSend, RecvMsgTemplate};
pub(in crate::shard) use stream::{RecvBufSlot, SendHeader};

/// A shard's ring. Its queue is private to this module and the ones below, so no SQE
/// enters it elsewhere.
pub(in crate::shard) struct Ring {
    uring: IoUring,
    shard: usize,
}

impl Ring {
    /// Builds the ring and registers `pool` with it: every buffer as a fixed buffer (for
    /// file I/O), the receive part as the provided-buffer ring.
    pub(in crate::shard) fn new(
        shard: usize,
        settings: &ShardSettings,
        pool: &LocalPool,
    ) -> io::Result<Ring> {
        let entries = settings.ring_entries;
        let mut builder = IoUring::builder();
        builder.setup_cqsize(entries * 8).setup_single_issuer();
        if settings.defer_taskrun {
            builder.setup_defer_taskrun().setup_taskrun_flag();
        } else {
            // The task-run flag tells a busy-polling loop that completions wait to be
            // run (cooperative task work is only run on entering the kernel).
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        let uring = builder.build(entries)?;
        let iovecs = pool.shared.mem.iovecs();
        // SAFETY: the iovecs describe the pool memory, which the core's `LocalPool` keeps
        // alive until after this ring (declared before it in the core) is dropped.
        unsafe { uring.submitter().register_buffers(&iovecs)? };
        pool.provided.register(&uring)?;
        Ok(Ring { uring, shard })
    }

    /// Queues an SQE, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid (and unmoved) until the operation's final
    /// completion has been reaped.
    #[inline]
    unsafe fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: forwarded from the caller's contract.
            if unsafe { self.uring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.uring.submit() {
                tracing::warn!(shard = self.shard, error = %e, "io_uring submit failed");
            }
        }
    }

    /// Hands queued SQEs to the kernel without waiting.
    #[inline]
    pub(in crate::shard) fn submit(&self) -> io::Result<usize> {
        self.uring.submitter().submit()
    }

    /// Submits and sleeps until a completion arrives or `timeout` passes (`None`: no limit).
    pub(in crate::shard) fn submit_and_wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let submitter = self.uring.submitter();
        match timeout {
            Some(d) => {
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                submitter.submit_with_args(1, &args)
            }
            None => submitter.submit_and_wait(1),
        }
    }

    /// Completions waiting to be reaped.
    #[inline]
    pub(in crate::shard) fn completion(&mut self) -> CompletionQueue<'_> {
        self.uring.completion()
    }

    /// Whether the kernel holds task work for this ring (completions not yet posted).
    #[inline]
    pub(in crate::shard) fn has_task_work(&mut self) -> bool {
        self.uring.submission().taskrun()
    }

    /// Cancels every operation in flight and waits (up to `timeout`) until the kernel has
    /// let go of their memory.
    pub(in crate::shard) fn cancel_all_and_wait(&self, timeout: Duration) {
        let ts = types::Timespec::from(timeout);
        let _ = self
            .uring
            .submitter()
            .register_sync_cancel(Some(ts), types::CancelBuilder::any());
    }

    /// Cancels the operation whose `user_data` is `target`.
    pub(in crate::shard) fn cancel(&mut self, target: u64, ud: u64) {
        let entry = opcode::AsyncCancel::new(target).build().user_data(ud);
        // SAFETY: cancellation references no memory.
        unsafe { self.push(entry) };
    }

    /// Multishot accept on a listening socket.
    pub(in crate::shard) fn accept_multishot(&mut self, fd: RawFd, ud: u64) {
        let entry = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud);
        // SAFETY: multishot accept references no memory of ours.
        unsafe { self.push(entry) };
    }

    /// One-shot readiness poll (readable, or hung up) of a socket.
    pub(in crate::shard) fn poll_readable(&mut self, fd: RawFd, ud: u64) {
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(ud);
        // SAFETY: a poll references no memory of ours.
        unsafe { self.push(entry) };
    }

    /// Reads the doorbell eventfd's counter into `counter`.
    pub(in crate::shard) fn read_doorbell(
        &mut self,
        fd: RawFd,
        counter: &mut DoorbellCounter,
        ud: u64,
    ) {
        let ptr = &mut *counter.0 as *mut u64 as *mut u8;
        let entry = opcode::Read::new(types::Fd(fd), ptr, 8)
            .build()
            .user_data(ud);
        // SAFETY: the counter is boxed in the core, which outlives the ring's operations
        // (the ring is dropped first and cancels them).
        unsafe { self.push(entry) };
    }
}

/// Where the doorbell's eventfd read puts the counter; boxed so its address stays put.
pub(in crate::shard) struct DoorbellCounter(Box<u64>);

impl DoorbellCounter {
    pub(in crate::shard) fn new() -> Self {
        DoorbellCounter(Box::new(0))
    }
}
