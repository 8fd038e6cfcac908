//! Submissions on stream sockets: receives (multishot into provided buffers, or into a
//! protocol's own buffer), connects and gathered sends, with the memory they reference.

use std::os::fd::RawFd;

use bytes::BytesMut;
use io_uring::{opcode, squeue, types};

use super::Ring;
use crate::protocol::Transmit;
use crate::sys::RawSockAddr;

/// Most iovecs gathered into one `sendmsg`.
const MAX_IOV: usize = 64;
/// `IORING_SEND_ZC_REPORT_USAGE`: ask the kernel whether a zero-copy send was copied.
const SEND_ZC_REPORT_USAGE: u16 = 8;

impl Ring {
    /// Multishot receive into buffers of the provided ring `group`.
    #[inline]
    pub(in crate::shard) fn recv_multishot(&mut self, fd: RawFd, group: u16, ud: u64) {
        let entry = opcode::RecvMulti::new(types::Fd(fd), group)
            .build()
            .user_data(ud);
        // SAFETY: the buffers come from the provided ring, whose memory (the pool) outlives
        // the ring.
        unsafe { self.push(entry) };
    }

    /// One receive into a buffer of the provided ring `group` (the kernel picks it when
    /// data is there, and clamps the length to it).
    #[inline]
    pub(in crate::shard) fn recv_pooled(&mut self, fd: RawFd, group: u16, ud: u64) {
        let entry = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), 0)
            .buf_group(group)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(ud);
        // SAFETY: the buffer comes from the provided ring, whose memory (the pool) outlives
        // the ring.
        unsafe { self.push(entry) };
    }

    /// Receives into the spare capacity of `buf` (after its length), which waits in `held`
    /// until [`RecvBufSlot::complete`] hands it back.
    #[inline]
    pub(in crate::shard) fn recv_into(
        &mut self,
        fd: RawFd,
        mut buf: BytesMut,
        held: &mut RecvBufSlot,
        ud: u64,
    ) {
        let spare = buf.spare_capacity_mut();
        let (ptr, len) = (
            spare.as_mut_ptr().cast::<u8>(),
            spare.len().min(u32::MAX as usize),
        );
        let entry = opcode::Recv::new(types::Fd(fd), ptr, len as u32)
            .build()
            .user_data(ud);
        // Moving the BytesMut moves its handle, not its heap storage, which `ptr` points into.
        held.0 = Some(buf);
        // SAFETY: the kernel writes at most `len` bytes at `ptr`, the spare capacity of the
        // buffer now kept in `held`; nothing takes it out before this receive's completion,
        // and the connection holding the slot is not released while the receive is armed.
        unsafe { self.push(entry) };
    }

    /// Connects `fd` to `addr`, which is kept in `held` until the completion.
    pub(in crate::shard) fn connect(
        &mut self,
        fd: RawFd,
        addr: RawSockAddr,
        held: &mut Option<Box<RawSockAddr>>,
        ud: u64,
    ) {
        let addr = held.insert(Box::new(addr));
        let entry = opcode::Connect::new(types::Fd(fd), addr.as_ptr(), addr.len)
            .build()
            .user_data(ud);
        // SAFETY: the sockaddr is boxed in the connection, which is not released while its
        // connect is in flight.
        unsafe { self.push(entry) };
    }

    /// Sends the bytes of `data` (skipping `skip` bytes of its first piece) with one
    /// gathered `sendmsg`, zero-copy when `zc_threshold` is set and reached. Returns
    /// whether it is zero-copy.
    #[inline]
    pub(in crate::shard) fn send(
        &mut self,
        fd: RawFd,
        header: &mut SendHeader,
        data: &Transmit,
        skip: usize,
        zc_threshold: Option<usize>,
        ud: u64,
    ) -> bool {
        let total = header.gather(data, skip);
        let zc = zc_threshold.is_some_and(|t| total >= t);
        let entry = if zc {
            opcode::SendMsgZc::new(types::Fd(fd), &header.msg)
                .ioprio(SEND_ZC_REPORT_USAGE)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        } else {
            opcode::SendMsg::new(types::Fd(fd), &header.msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        // SAFETY: the header lives in the connection's boxed send state, and the bytes it
        // points to are owned by `data`, that state's in-flight queue, which is not touched
        // until the send's last completion; the connection is not released while a send is
        // in flight.
        unsafe { self.push(entry.user_data(ud)) };
        zc
    }
}

/// A protocol's receive buffer while the kernel fills it (see [`Ring::recv_into`]).
#[derive(Default)]
pub(in crate::shard) struct RecvBufSlot(Option<BytesMut>);

impl RecvBufSlot {
    /// Takes the buffer back after its receive completed with `res`: its length grown by
    /// the bytes the kernel wrote, which are also returned. `None` when no receive into a
    /// buffer of this slot was in flight.
    #[inline]
    pub(in crate::shard) fn complete(&mut self, res: i32) -> Option<(BytesMut, usize)> {
        let mut buf = self.0.take()?;
        let filled = res.max(0) as usize;
        if filled > 0 {
            // SAFETY: the kernel wrote `filled` bytes into the spare capacity right after the
            // buffer's length (the receive was posted for at most that capacity).
            unsafe { buf.set_len(buf.len() + filled) };
        }
        Some((buf, filled))
    }
}

/// The gathered `sendmsg` header of one connection's sends.
pub(in crate::shard) struct SendHeader {
    iov: [libc::iovec; MAX_IOV],
    msg: libc::msghdr,
}

impl SendHeader {
    pub(in crate::shard) fn new() -> Self {
        SendHeader {
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOV],
            // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
            msg: unsafe { std::mem::zeroed() },
        }
    }

    /// Points the header at `data`'s pieces (at most [`MAX_IOV`]), skipping `skip` bytes of
    /// the first. Returns the bytes covered.
    #[inline]
    fn gather(&mut self, data: &Transmit, mut skip: usize) -> usize {
        let mut n = 0;
        let mut total = 0;
        for seg in &data.segments {
            if n == MAX_IOV {
                break;
            }
            let bytes = &data.segment_bytes(seg)[skip..];
            skip = 0;
            self.iov[n] = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            total += bytes.len();
            n += 1;
        }
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = n as _;
        total
    }
}
