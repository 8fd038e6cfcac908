//! Submissions on UDP sockets: multishot `recvmsg` into provided buffers and datagram
//! sends, with the headers they reference.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use bytes::Bytes;
use io_uring::{opcode, types};

use super::Ring;
use crate::pool::BufHandle;
use crate::shard::udp::GatherPiece;
use crate::sys::{self, RawSockAddr};

/// Room for a recvmsg control message (a `UDP_GRO` cmsg needs 20 bytes).
const UDP_CONTROL_LEN: usize = 64;

impl Ring {
    /// Starts a multishot `recvmsg` laid out by `template`, into buffers of the provided
    /// ring `group`.
    #[inline]
    pub(in crate::shard) fn recvmsg_multishot(
        &mut self,
        fd: RawFd,
        template: &RecvMsgTemplate,
        group: u16,
        ud: u64,
    ) {
        let entry = opcode::RecvMsgMulti::new(types::Fd(fd), &*template.0, group)
            .build()
            .user_data(ud);
        // SAFETY: the template is boxed in the socket entry, which is only removed after the
        // multishot receive has ended.
        unsafe { self.push(entry) };
    }

    /// Sends `buf` to `to` as one datagram or, with `segment_size` (GSO), as datagrams of
    /// that size. `op` keeps the buffer and the headers until [`DatagramSend::finish`].
    #[inline]
    pub(in crate::shard) fn send_datagram(
        &mut self,
        fd: RawFd,
        op: &mut DatagramSend,
        to: SocketAddr,
        buf: BufHandle,
        segment_size: Option<u16>,
        ud: u64,
    ) {
        op.iovs.clear();
        op.iovs.push(libc::iovec {
            iov_base: buf.as_ptr().cast(),
            iov_len: buf.len(),
        });
        op.buf = Some(buf);
        self.push_send(fd, op, to, segment_size, ud);
    }

    /// Sends the bytes `pieces` gather from `head` and `body`, in order, as
    /// [`send_datagram`](Self::send_datagram) sends one buffer. The caller has checked
    /// every piece against the lengths of `head` and `body`.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::shard) fn send_datagram_gathered(
        &mut self,
        fd: RawFd,
        op: &mut DatagramSend,
        to: SocketAddr,
        head: BufHandle,
        body: Bytes,
        pieces: &[GatherPiece],
        segment_size: Option<u16>,
        ud: u64,
    ) {
        op.iovs.clear();
        for piece in pieces {
            let (base, start, len) = match *piece {
                GatherPiece::Head { start, len } => (head.as_ptr().cast_const(), start, len),
                GatherPiece::Body { start, len } => (body.as_ptr(), start, len),
            };
            // `start + len` lies within the buffer `base` starts (checked by the caller),
            // which the op keeps alive until the send completes.
            op.iovs.push(libc::iovec {
                iov_base: base.wrapping_add(start).cast_mut().cast(),
                iov_len: len,
            });
        }
        op.buf = Some(head);
        op.body = Some(body);
        self.push_send(fd, op, to, segment_size, ud);
    }

    fn push_send(
        &mut self,
        fd: RawFd,
        op: &mut DatagramSend,
        to: SocketAddr,
        segment_size: Option<u16>,
        ud: u64,
    ) {
        op.addr = RawSockAddr::from_inet(to);
        op.msg.msg_name = &mut op.addr.storage as *mut _ as *mut libc::c_void;
        op.msg.msg_namelen = op.addr.len;
        op.msg.msg_iov = op.iovs.as_mut_ptr();
        op.msg.msg_iovlen = op.iovs.len();
        match segment_size {
            Some(segment) => {
                op.msg.msg_controllen = sys::write_udp_segment_cmsg(&mut op.control, segment);
                op.msg.msg_control = op.control.as_mut_ptr().cast();
            }
            None => {
                op.msg.msg_controllen = 0;
                op.msg.msg_control = std::ptr::null_mut();
            }
        }
        let entry = opcode::SendMsg::new(types::Fd(fd), &op.msg)
            .build()
            .user_data(ud);
        // SAFETY: the msghdr, address, iovecs, control bytes and the buffers all live in
        // the boxed op, which is not reused until its completion puts it back on the free
        // list.
        unsafe { self.push(entry) };
    }
}

/// The layout the kernel gives each datagram of a multishot `recvmsg` (address and control
/// room); boxed so its address stays put.
pub(in crate::shard) struct RecvMsgTemplate(Box<libc::msghdr>);

impl RecvMsgTemplate {
    /// Room for the sender's address, and for a GRO control message when `gro`.
    pub(in crate::shard) fn new(gro: bool) -> Self {
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_controllen = if gro { UDP_CONTROL_LEN } else { 0 };
        RecvMsgTemplate(msg)
    }

    #[inline]
    pub(in crate::shard) fn msghdr(&self) -> &libc::msghdr {
        &self.0
    }
}

/// One datagram send: the buffer and every header the kernel reads. Boxed and reused.
pub(in crate::shard) struct DatagramSend {
    buf: Option<BufHandle>,
    /// The shared bytes of a gathered send.
    body: Option<Bytes>,
    addr: RawSockAddr,
    /// One entry for a plain send; one per piece for a gathered one (kept, so a reused op
    /// allocates nothing).
    iovs: Vec<libc::iovec>,
    msg: libc::msghdr,
    control: [u64; 4],
}

impl DatagramSend {
    pub(in crate::shard) fn new() -> Box<Self> {
        Box::new(DatagramSend {
            buf: None,
            body: None,
            addr: RawSockAddr::zeroed(),
            iovs: Vec::new(),
            // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
            msg: unsafe { std::mem::zeroed() },
            control: [0; 4],
        })
    }

    /// The send completed: hands the buffer back (to drop, which sends it home).
    #[inline]
    pub(in crate::shard) fn finish(&mut self) -> Option<BufHandle> {
        self.body = None;
        self.buf.take()
    }
}
