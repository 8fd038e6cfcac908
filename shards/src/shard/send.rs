//! Sending on stream connections: after each event a connection's protocol queues output
//! and names its next deadline; one gathered `sendmsg` (zero-copy above a threshold) at a
//! time carries the queued bytes out (a shared-memory connection copies them into its
//! ring instead, see `shm`).

use std::io;

use io_uring::cqueue;

use super::Core;
use super::conn::ConnState;
use super::op::{OpKind, user_data};
use super::submit::SendHeader;
use crate::protocol::{CloseReason, Transmit};

/// Pieces a connection's transmit queues have room for before they grow.
const TX_SEGMENTS: usize = 16;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, set in a notification's result when data was copied.
const NOTIF_USAGE_ZC_COPIED: i32 = i32::MIN;

/// A connection's send side; boxed so the header given to the kernel never moves.
pub(super) struct TxState {
    /// Filled by the protocol.
    pub(super) pending: Transmit,
    /// Owned by the kernel while `in_flight`.
    inflight: Transmit,
    /// Bytes of the front piece already gone: of `inflight` for a socket, of `pending`
    /// for a shared-memory connection (which copies straight from it).
    pub(super) front_offset: usize,
    pub(super) in_flight: bool,
    zc_notif_pending: bool,
    zc_sent: usize,
    /// Sends in a row that failed with `EFAULT` (see `on_send`).
    faults: u8,
    header: SendHeader,
}

/// Sends in a row that may fault (`EFAULT`) before the connection is closed.
const MAX_FAULTS: u8 = 3;

impl TxState {
    pub(super) fn new() -> Box<Self> {
        Box::new(TxState {
            // Room for the pieces of a few frames; the copy buffers grow with the first
            // sends, so an idle connection holds almost nothing.
            pending: Transmit::with_capacity(TX_SEGMENTS, 0),
            inflight: Transmit::with_capacity(TX_SEGMENTS, 0),
            front_offset: 0,
            in_flight: false,
            zc_notif_pending: false,
            zc_sent: 0,
            faults: 0,
            header: SendHeader::new(),
        })
    }

    fn idle_and_empty(&self) -> bool {
        !self.in_flight && self.pending.is_empty() && self.inflight.is_empty()
    }
}

impl Core {
    /// Gives the protocol a chance to queue bytes, then starts a send if none is in flight.
    #[inline]
    pub(super) fn flush_conn(&mut self, slot: u32) {
        let now = self.now;
        let zc_threshold = self.settings.send_zc_threshold;
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        conn.dirty = false;
        if conn.state != ConnState::Open {
            return;
        }
        if conn.recv_paused {
            self.arm_recv(slot);
        }
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        conn.proto.poll_transmit(now, &mut conn.tx.pending);
        let deadline = conn.proto.poll_timeout();
        if deadline != conn.deadline {
            conn.deadline = deadline;
            if let Some(at) = deadline
                && conn.timer_queued.is_none_or(|queued| at < queued)
            {
                conn.timer_queued = Some(at);
                self.timers.push_conn(at, conn.id.generation, slot);
            }
        }
        let conn = self.conns[slot as usize].as_mut().expect("still here");
        if conn.shm.is_some() {
            self.shm_send(slot);
            let conn = self.conns[slot as usize].as_mut().expect("still here");
            // No half-close over shared memory: once the peer is gone nobody reads what
            // is still queued.
            if conn.state == ConnState::Open
                && (conn.read_eof || (conn.proto.wants_close() && conn.tx.pending.is_empty()))
            {
                self.request_close(slot, CloseReason::Finished);
            }
            return;
        }
        let tx = &mut *conn.tx;
        if !tx.in_flight {
            if tx.inflight.is_empty() {
                std::mem::swap(&mut tx.pending, &mut tx.inflight);
                tx.front_offset = 0;
            }
            if !tx.inflight.is_empty() {
                let ud = user_data(OpKind::Send, conn.id.generation, slot);
                // Set before the push: the connection is not released while it is.
                tx.in_flight = true;
                let zc = self.ring.send(
                    conn.fd,
                    &mut tx.header,
                    &tx.inflight,
                    tx.front_offset,
                    zc_threshold,
                    ud,
                );
                if zc {
                    self.stats.send_zc += 1;
                }
                return;
            }
        }
        if (conn.read_eof || conn.proto.wants_close()) && conn.tx.idle_and_empty() {
            self.request_close(slot, CloseReason::Finished);
        }
    }

    #[inline]
    pub(super) fn on_send(&mut self, slot: u32, generation: u32, res: i32, flags: u32) {
        let Some(conn) = self.conns.get_mut(slot as usize).and_then(|c| c.as_mut()) else {
            return;
        };
        if conn.id.generation != generation {
            return;
        }
        let tx = &mut *conn.tx;
        if cqueue::notif(flags) {
            // Only now does the kernel let go of a zero-copy send's memory.
            let sent = std::mem::take(&mut tx.zc_sent);
            tx.inflight.consume(sent, &mut tx.front_offset);
            tx.zc_notif_pending = false;
            tx.in_flight = false;
            if res & NOTIF_USAGE_ZC_COPIED != 0 {
                self.stats.send_zc_copied += 1;
            }
        } else {
            let sent = res.max(0) as usize;
            self.stats.bytes_out += sent as u64;
            self.stats.send_ops += 1;
            if cqueue::more(flags) {
                tx.zc_sent = sent;
                tx.zc_notif_pending = true;
            } else {
                tx.inflight.consume(sent, &mut tx.front_offset);
                tx.in_flight = false;
            }
            if res == -libc::EFAULT && tx.faults < MAX_FAULTS && conn.state == ConnState::Open {
                // Nothing of this send went out, and the stream is intact: a page of a
                // mapped file shrank away under a queued message. Touching the queued
                // bytes turns such pages into zeros (`mapped_file`), which the message's
                // digest then refuses at the receiver, and the send goes again.
                tx.faults += 1;
                for segment in &tx.inflight.segments {
                    crate::mapped_file::make_readable(tx.inflight.segment_bytes(segment));
                }
            } else if res < 0 && conn.state == ConnState::Open {
                let err = io::Error::from_raw_os_error(-res);
                self.request_close(slot, CloseReason::Error(err));
            } else if res > 0 {
                tx.faults = 0;
            }
        }
        self.mark_dirty(slot);
        self.finish_close_if_idle(slot);
    }
}
