//! Receiving on stream connections: one multishot receive per connection into the pool's
//! provided buffers (single-shot ones on Unix sockets), or single receives into a
//! protocol's own buffer; and re-arming the receives that stopped when the pool ran dry.

use std::io;

use bytes::BytesMut;
use io_uring::cqueue;

use super::conn::ConnState;
use super::op::{OpKind, user_data};
use super::{Core, RECV_GROUP};
use crate::protocol::{CloseReason, Received};

impl Core {
    /// Starts receiving on an open connection, unless a receive is armed already (for a
    /// shared-memory connection: keeps its doorbell and liveness receive armed).
    #[inline]
    pub(super) fn arm_recv(&mut self, slot: u32) {
        let now = self.now;
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        if conn.shm.is_some() {
            return self.arm_shm(slot);
        }
        if conn.recv_armed || conn.state != ConnState::Open || conn.read_eof {
            return;
        }
        let ud = user_data(OpKind::Recv, conn.id.generation, slot);
        if conn.own_recv {
            let Some(buf) = conn
                .proto
                .recv_buffer(now)
                .filter(|b| b.capacity() > b.len())
            else {
                conn.recv_paused = true;
                return;
            };
            conn.recv_paused = false;
            conn.recv_armed = true;
            self.ring.recv_into(conn.fd, buf, &mut conn.recv_buf, ud);
            return;
        }
        conn.recv_armed = true;
        conn.starved = false;
        if conn.recv_single {
            // Not multishot on a Unix stream socket: there such a receive can miss the end
            // of the stream. Since Linux 6.17 a Unix socket tells io_uring how many bytes are
            // left after a read; when none are, a multishot receive goes back to waiting
            // instead of reading again, and if the wake-up of the peer's shutdown was counted
            // as consumed meanwhile, it waits forever on a socket at end of stream (seen on
            // 6.18 at the end of long bulk transfers, see tests/unix_eof.rs; upstream
            // a68ed2df7213 fixes one such race in io_uring's poll). TCP counts a received FIN
            // as a byte left, so its receive reads again and sees it. A single-shot receive
            // looks at the socket afresh each time it is armed.
            self.ring.recv_pooled(conn.fd, RECV_GROUP, ud);
        } else {
            self.ring.recv_multishot(conn.fd, RECV_GROUP, ud);
        }
    }

    #[inline]
    pub(super) fn on_recv(&mut self, slot: u32, generation: u32, res: i32, flags: u32) {
        let now = self.now;
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.pool.took_from_ring();
        }
        let Some(conn) = self.conns.get_mut(slot as usize).and_then(|c| c.as_mut()) else {
            if let Some(bid) = bid {
                self.pool.recycle(bid);
            }
            return;
        };
        if conn.id.generation != generation {
            if let Some(bid) = bid {
                self.pool.recycle(bid);
            }
            return;
        }
        if !more {
            conn.recv_armed = false;
        }
        if let Some((buf, filled)) = conn.recv_buf.complete(res) {
            self.on_recv_owned(slot, res, buf, filled);
            return;
        }
        if res > 0 {
            let len = res as usize;
            self.stats.bytes_in += len as u64;
            self.stats.recv_ops += 1;
            let bid = bid.expect("data without a provided buffer");
            if conn.state == ConnState::Open {
                let mut retained = false;
                conn.proto.handle_input(
                    now,
                    Received::from_pool(&self.pool, bid, len, &mut retained),
                );
                if !retained {
                    self.pool.recycle(bid);
                }
            } else {
                self.pool.recycle(bid);
            }
            self.mark_dirty(slot);
            if !more {
                self.arm_recv(slot);
            }
        } else {
            if let Some(bid) = bid {
                self.pool.recycle(bid);
            }
            if res == 0 {
                if conn.state == ConnState::Open && !conn.read_eof {
                    conn.read_eof = true;
                    conn.proto.handle_eof(now);
                }
                self.mark_dirty(slot);
            } else if res == -libc::ENOBUFS {
                conn.starved = true;
                self.stats.recv_starved += 1;
                self.starved.push(slot);
            } else if conn.state == ConnState::Open {
                let err = io::Error::from_raw_os_error(-res);
                self.request_close(slot, CloseReason::Error(err));
            }
        }
        self.finish_close_if_idle(slot);
    }

    /// A receive into a protocol's own buffer completed (the connection is current):
    /// `buf` holds `filled` new bytes.
    #[inline]
    fn on_recv_owned(&mut self, slot: u32, res: i32, buf: BytesMut, filled: usize) {
        let now = self.now;
        let conn = self.conns[slot as usize]
            .as_mut()
            .expect("the caller found it");
        if filled > 0 {
            self.stats.bytes_in += filled as u64;
            self.stats.recv_ops += 1;
        }
        if conn.state == ConnState::Open {
            conn.proto.handle_received(now, buf, filled);
        }
        if res == 0 && conn.state == ConnState::Open && !conn.read_eof {
            conn.read_eof = true;
            conn.proto.handle_eof(now);
        } else if res < 0 && conn.state == ConnState::Open {
            let err = io::Error::from_raw_os_error(-res);
            self.request_close(slot, CloseReason::Error(err));
        }
        self.mark_dirty(slot);
        if res > 0 {
            self.arm_recv(slot);
        }
        self.finish_close_if_idle(slot);
    }

    /// Re-arms receives (UDP and stream) that stopped because the pool ran dry, once the
    /// receive ring has buffers again.
    pub(super) fn rearm_starved(&mut self) {
        if self.pool.in_ring() > 0 {
            for index in 0..self.udp.len() as u32 {
                if self.udp[index as usize]
                    .as_ref()
                    .is_some_and(|u| u.starved && !u.armed)
                {
                    self.arm_udp(index);
                }
            }
        }
        if self.starved.is_empty() {
            return;
        }
        // Wait for a few buffers so a starved connection does not flap on every one.
        let low_water = (self.pool.recv_target() / 8).max(1);
        if self.pool.in_ring() < low_water {
            return;
        }
        while let Some(slot) = self.starved.pop() {
            if let Some(conn) = self.conns[slot as usize].as_mut()
                && conn.starved
            {
                conn.starved = false;
                self.arm_recv(slot);
            }
        }
    }
}
