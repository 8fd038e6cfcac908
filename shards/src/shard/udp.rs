//! UDP sockets of a shard: multishot `recvmsg` into provided buffers (GRO optional) and
//! datagram sends, one SQE each (GSO optional), all reaching the kernel in the loop's one
//! submission per iteration.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use bytes::Bytes;
use io_uring::{cqueue, types};

use super::op::{OpKind, user_data};
use super::submit::{DatagramSend, RecvMsgTemplate};
use super::{Core, RECV_GROUP};
use crate::pool::BufHandle;
use crate::sys::{self, RawSockAddr};

/// Names a UDP socket of a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpId {
    shard: u16,
    index: u32,
}

impl UdpId {
    /// The shard owning the socket.
    pub fn shard(&self) -> usize {
        usize::from(self.shard)
    }
}

/// Where a piece of a gathered datagram send comes from (see
/// [`ShardCtx::send_datagram_gathered`](crate::ShardCtx::send_datagram_gathered)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatherPiece {
    /// Bytes `start..start + len` of the send's own buffer (headers, tags).
    Head {
        /// First byte.
        start: usize,
        /// Bytes.
        len: usize,
    },
    /// Bytes `start..start + len` of the shared body (a mapped file range, say).
    Body {
        /// First byte.
        start: usize,
        /// Bytes.
        len: usize,
    },
}

/// Most pieces of one gathered send (the kernel takes up to 1024 iovecs).
pub const MAX_GATHER_PIECES: usize = 256;

/// Options of a UDP socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct UdpOptions {
    /// Generic receive offload: the kernel may coalesce consecutive datagrams from one
    /// sender into one payload (see the `segment_size` of
    /// [`ShardHandler::on_datagram`](crate::ShardHandler::on_datagram)).
    pub gro: bool,
    /// Socket receive buffer in bytes (`SO_RCVBUFFORCE` when permitted, else `SO_RCVBUF`,
    /// which the kernel caps at `net.core.rmem_max`). Bursts beyond it are dropped by the
    /// kernel, as UDP does.
    pub recv_buffer: Option<usize>,
    /// Socket send buffer in bytes (`SO_SNDBUFFORCE` when permitted, else `SO_SNDBUF`,
    /// capped at `net.core.wmem_max`): paced batches queue here while the device drains.
    pub send_buffer: Option<usize>,
}

pub(super) struct UdpSock {
    pub(super) fd: RawFd,
    recv_template: RecvMsgTemplate,
    pub(super) armed: bool,
    closing: bool,
    pub(super) starved: bool,
}

impl Core {
    /// Opens a UDP socket bound to `addr`.
    pub(super) fn bind_udp(
        &mut self,
        addr: SocketAddr,
        options: UdpOptions,
    ) -> io::Result<(UdpId, SocketAddr)> {
        let fd = sys::udp_socket(&addr)?;
        if let Some(bytes) = options.recv_buffer {
            let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
            if sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
                let _ = sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes);
            }
        }
        if let Some(bytes) = options.send_buffer {
            let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
            if sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, bytes).is_err() {
                let _ = sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes);
            }
        }
        let setup = (if options.gro {
            sys::set_int_opt(fd, sys::SOL_UDP, sys::UDP_GRO, 1)
        } else {
            Ok(())
        })
        .and_then(|_| sys::bind(fd, &RawSockAddr::from_inet(addr)))
        .and_then(|_| sys::local_addr(fd));
        match setup {
            Ok(local) => Ok((self.add_udp(fd, options), local)),
            Err(e) => {
                sys::close(fd);
                Err(e)
            }
        }
    }

    fn add_udp(&mut self, fd: RawFd, options: UdpOptions) -> UdpId {
        let index = self.udp.len() as u32;
        self.udp.push(Some(UdpSock {
            fd,
            recv_template: RecvMsgTemplate::new(options.gro),
            armed: false,
            closing: false,
            starved: false,
        }));
        self.arm_udp(index);
        UdpId {
            shard: self.id as u16,
            index,
        }
    }

    #[inline]
    pub(super) fn arm_udp(&mut self, index: u32) {
        let Some(sock) = self.udp.get_mut(index as usize).and_then(|u| u.as_mut()) else {
            return;
        };
        if sock.armed || sock.closing {
            return;
        }
        sock.armed = true;
        sock.starved = false;
        let ud = user_data(OpKind::UdpRecv, 0, index);
        self.ring
            .recvmsg_multishot(sock.fd, &sock.recv_template, RECV_GROUP, ud);
    }

    /// Closes a UDP socket of this shard (once its receive has ended).
    pub(super) fn close_udp(&mut self, socket: UdpId) {
        self.close_udp_at(socket.index);
    }

    pub(super) fn close_all_udp(&mut self) {
        for index in 0..self.udp.len() as u32 {
            self.close_udp_at(index);
        }
    }

    fn close_udp_at(&mut self, index: u32) {
        let Some(sock) = self.udp.get_mut(index as usize).and_then(|u| u.as_mut()) else {
            return;
        };
        if sock.closing {
            return;
        }
        sock.closing = true;
        if sock.armed {
            let target = user_data(OpKind::UdpRecv, 0, index);
            self.ring.cancel(target, user_data(OpKind::Cancel, 0, 0));
        } else {
            sys::close(sock.fd);
            self.udp[index as usize] = None;
        }
    }

    #[inline]
    pub(super) fn send_datagram(
        &mut self,
        socket: UdpId,
        to: SocketAddr,
        buf: BufHandle,
        segment_size: Option<u16>,
    ) {
        // A closed socket: dropping `buf` sends it home.
        let Some((fd, index)) = self.claim_udp_send_on(socket) else {
            return;
        };
        let op = &mut *self.udp_sends[index as usize];
        let ud = user_data(OpKind::UdpSend, 0, index);
        self.ring.send_datagram(fd, op, to, buf, segment_size, ud);
    }

    /// As [`send_datagram`](Self::send_datagram), the bytes gathered from `head` and
    /// `body` by `pieces`; refused if a piece lies outside its buffer or there are more
    /// than [`MAX_GATHER_PIECES`].
    pub(super) fn send_datagram_gathered(
        &mut self,
        socket: UdpId,
        to: SocketAddr,
        head: BufHandle,
        body: Bytes,
        pieces: &[GatherPiece],
        segment_size: Option<u16>,
    ) -> io::Result<()> {
        let within = |piece: &GatherPiece| match *piece {
            GatherPiece::Head { start, len } => {
                start.checked_add(len).is_some_and(|end| end <= head.len())
            }
            GatherPiece::Body { start, len } => {
                start.checked_add(len).is_some_and(|end| end <= body.len())
            }
        };
        if pieces.is_empty() || pieces.len() > MAX_GATHER_PIECES || !pieces.iter().all(within) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a gathered datagram send needs 1 to {MAX_GATHER_PIECES} pieces, each \
                     within its buffer"
                ),
            ));
        }
        // As a plain send to a closed socket: dropped.
        let Some((fd, index)) = self.claim_udp_send_on(socket) else {
            return Ok(());
        };
        let op = &mut *self.udp_sends[index as usize];
        let ud = user_data(OpKind::UdpSend, 0, index);
        self.ring
            .send_datagram_gathered(fd, op, to, head, body, pieces, segment_size, ud);
        Ok(())
    }

    /// The descriptor of `socket` (if it is this shard's and open) and a send op to use.
    fn claim_udp_send_on(&mut self, socket: UdpId) -> Option<(RawFd, u32)> {
        let fd = match self.udp.get(socket.index as usize).and_then(|u| u.as_ref()) {
            Some(sock) if usize::from(socket.shard) == self.id && !sock.closing => sock.fd,
            _ => return None,
        };
        let index = self.free_udp_sends.pop().unwrap_or_else(|| {
            self.udp_sends.push(DatagramSend::new());
            (self.udp_sends.len() - 1) as u32
        });
        Some((fd, index))
    }

    #[inline]
    pub(super) fn on_udp_send(&mut self, index: u32, res: i32) {
        let Some(op) = self.udp_sends.get_mut(index as usize) else {
            return;
        };
        let buf = op.finish();
        self.free_udp_sends.push(index);
        if res >= 0 {
            self.stats.bytes_out += res as u64;
            self.stats.send_ops += 1;
        } else {
            tracing::debug!(shard = self.id, error = %io::Error::from_raw_os_error(-res), "datagram send failed");
        }
        drop(buf);
    }

    #[inline]
    pub(super) fn on_udp_recv(&mut self, index: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.pool.took_from_ring();
        }
        let Some(sock) = self.udp.get_mut(index as usize).and_then(|u| u.as_mut()) else {
            if let Some(bid) = bid {
                self.pool.recycle(bid);
            }
            return;
        };
        if !more {
            sock.armed = false;
        }
        let mut delivery = None;
        if let (Some(bid), true) = (bid, res > 0) {
            let data = self.pool.received(bid, res as usize);
            match types::RecvMsgOut::parse(data, sock.recv_template.msghdr()) {
                Ok(out) if !sock.closing && !out.is_payload_truncated() => {
                    let start = out.payload_data().as_ptr() as usize - data.as_ptr() as usize;
                    let from = sys::sockaddr_from_bytes(out.name_data());
                    let segment = sys::parse_udp_gro_cmsg(out.control_data());
                    delivery = Some((
                        self.pool.handle_range(bid, start, out.payload_data().len()),
                        from,
                        segment,
                    ));
                }
                _ => self.pool.recycle(bid),
            }
        } else if let Some(bid) = bid {
            self.pool.recycle(bid);
        }
        if res == -libc::ENOBUFS {
            sock.starved = true;
            self.stats.recv_starved += 1;
        }
        let (closing, armed, starved, fd) = (sock.closing, sock.armed, sock.starved, sock.fd);
        if let Some((payload, from, segment)) = delivery {
            self.stats.bytes_in += payload.len() as u64;
            self.stats.recv_ops += 1;
            let id = UdpId {
                shard: self.id as u16,
                index,
            };
            self.with_handler(|h, ctx| h.on_datagram(ctx, id, from, payload, segment));
        }
        if !armed {
            if closing {
                sys::close(fd);
                self.udp[index as usize] = None;
            } else if !starved {
                self.arm_udp(index);
            }
        }
    }
}
