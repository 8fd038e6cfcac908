//! Stream connections (TCP, Unix, shared memory) of a shard: their ids and slots, opening
//! (accepted, adopted or connected), and closing once the kernel holds nothing of them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Instant;

use super::op::{GENERATION_MASK, OpKind, user_data};
use super::send::TxState;
use super::shm::ShmConn;
use super::submit::RecvBufSlot;
use super::{Core, ShardSettings};
use crate::protocol::{CloseReason, Protocol};
use crate::sys::{self, RawSockAddr};

/// Names a connection: its shard, slot and generation (a closed connection's id never
/// matches a later one in the same slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(super) shard: u16,
    pub(super) slot: u32,
    pub(super) generation: u32,
}

impl ConnId {
    /// The shard owning the connection.
    pub fn shard(&self) -> usize {
        usize::from(self.shard)
    }

    /// An id for driving a protocol outside any shard (tests and simulators): `n` tells
    /// such ids apart; none names a connection of a running shard.
    pub fn detached(n: u32) -> Self {
        ConnId {
            shard: u16::MAX,
            slot: n,
            generation: u32::MAX,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnState {
    Connecting,
    Open,
    Closing,
}

pub(super) struct Conn {
    pub(super) id: ConnId,
    pub(super) fd: RawFd,
    pub(super) proto: Box<dyn Protocol>,
    pub(super) tx: Box<TxState>,
    pub(super) state: ConnState,
    pub(super) recv_armed: bool,
    /// Receives go into the protocol's own buffer (see `Protocol::receives_into_own_buffer`).
    pub(super) own_recv: bool,
    /// That buffer while a receive into it is in flight.
    pub(super) recv_buf: RecvBufSlot,
    /// An own-buffer connection whose protocol had no buffer to give: ask again after
    /// its next event.
    pub(super) recv_paused: bool,
    /// Receives into the pool one single-shot receive at a time instead of one multishot
    /// receive: a Unix stream socket's (see `arm_recv`).
    pub(super) recv_single: bool,
    pub(super) starved: bool,
    pub(super) read_eof: bool,
    pub(super) connect_addr: Option<Box<RawSockAddr>>,
    pub(super) connect_inflight: bool,
    pub(super) deadline: Option<Instant>,
    /// The earliest timer entry of this connection, so a deadline that keeps moving later
    /// (a heartbeat pushed back on every input) adds no entries: the entry is re-queued for
    /// the new deadline only when it comes due.
    pub(super) timer_queued: Option<Instant>,
    pub(super) dirty: bool,
    pub(super) close_reason: Option<CloseReason>,
    /// A shared-memory connection's link (then `fd` is its rendezvous socket).
    pub(super) shm: Option<Box<ShmConn>>,
    /// A shared-memory connect whose handshake thread has not reported back yet.
    pub(super) shm_connecting: bool,
}

impl ShardSettings {
    /// `TCP_NODELAY` (best effort) and the configured congestion control on `fd`.
    pub(super) fn apply_tcp_options(&self, fd: RawFd) -> io::Result<()> {
        if self.tcp_nodelay {
            let _ = sys::set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        }
        if let Some(name) = &self.tcp_congestion {
            sys::set_bytes_opt(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, name.as_bytes())
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("TCP congestion control {name:?}: {e}"))
                })?;
        }
        Ok(())
    }
}

impl Core {
    /// Opens a TCP connection to `addr`; the protocol sees `on_open` when connected.
    pub(super) fn connect_tcp(
        &mut self,
        addr: SocketAddr,
        proto: Box<dyn Protocol>,
    ) -> io::Result<ConnId> {
        let fd = sys::tcp_socket(&addr)?;
        if let Err(e) = self.settings.apply_tcp_options(fd) {
            sys::close(fd);
            return Err(e);
        }
        Ok(self.start_connect(fd, RawSockAddr::from_inet(addr), proto))
    }

    /// Opens a Unix stream connection to `path`.
    pub(super) fn connect_unix(
        &mut self,
        path: &Path,
        proto: Box<dyn Protocol>,
    ) -> io::Result<ConnId> {
        let raw = RawSockAddr::from_unix(path)?;
        let fd = sys::unix_socket()?;
        let id = self.start_connect(fd, raw, proto);
        if let Some(conn) = self.conns[id.slot as usize].as_mut() {
            conn.recv_single = true;
        }
        Ok(id)
    }

    fn alloc_slot(&mut self) -> (u32, u32) {
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        if self.next_generation == 0 {
            self.next_generation = 1;
        }
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                (self.conns.len() - 1) as u32
            }
        };
        (slot, generation)
    }

    pub(super) fn new_conn(
        &mut self,
        fd: RawFd,
        proto: Box<dyn Protocol>,
        state: ConnState,
    ) -> (u32, ConnId) {
        let (slot, generation) = self.alloc_slot();
        let id = ConnId {
            shard: self.id as u16,
            slot,
            generation,
        };
        self.conns[slot as usize] = Some(Conn {
            id,
            fd,
            proto,
            tx: TxState::new(),
            state,
            recv_armed: false,
            own_recv: false,
            recv_buf: RecvBufSlot::default(),
            recv_paused: false,
            recv_single: false,
            starved: false,
            read_eof: false,
            connect_addr: None,
            connect_inflight: false,
            deadline: None,
            timer_queued: None,
            dirty: false,
            close_reason: None,
            shm: None,
            shm_connecting: false,
        });
        self.stats.connections += 1;
        (slot, id)
    }

    /// Opens an accepted or adopted connection (the peer's address, or a Unix socket
    /// peer's credentials, go to the protocol first).
    pub(super) fn open_conn(&mut self, fd: RawFd, mut proto: Box<dyn Protocol>) -> ConnId {
        let mut unix = false;
        if let Ok(peer) = sys::peer_addr(fd) {
            proto.on_peer_address(peer);
        } else if sys::is_unix_socket(fd) {
            unix = true;
            if let Ok(creds) = sys::peer_credentials(fd) {
                proto.on_peer_credentials(creds);
            }
        }
        let (slot, id) = self.new_conn(fd, proto, ConnState::Open);
        if let Some(conn) = self.conns[slot as usize].as_mut() {
            conn.recv_single = unix;
        }
        self.on_established(slot);
        id
    }

    pub(super) fn on_established(&mut self, slot: u32) {
        let now = self.now;
        if let Some(conn) = self.conns[slot as usize].as_mut() {
            conn.state = ConnState::Open;
            let id = conn.id;
            conn.proto.on_open(now, id);
            conn.own_recv = conn.proto.receives_into_own_buffer();
        }
        self.arm_recv(slot);
        self.mark_dirty(slot);
    }

    fn start_connect(&mut self, fd: RawFd, addr: RawSockAddr, proto: Box<dyn Protocol>) -> ConnId {
        let (slot, id) = self.new_conn(fd, proto, ConnState::Connecting);
        let conn = self.conns[slot as usize].as_mut().expect("just created");
        conn.connect_inflight = true;
        let ud = user_data(OpKind::Connect, id.generation, slot);
        self.ring.connect(fd, addr, &mut conn.connect_addr, ud);
        id
    }

    #[inline]
    pub(super) fn on_connect(&mut self, slot: u32, generation: u32, res: i32) {
        let Some(conn) = self.conn_for_cqe(slot, generation) else {
            return;
        };
        conn.connect_inflight = false;
        conn.connect_addr = None;
        if conn.state == ConnState::Closing {
            self.finish_close_if_idle(slot);
        } else if res < 0 {
            let err = io::Error::from_raw_os_error(-res);
            self.request_close(slot, CloseReason::ConnectFailed(err));
        } else {
            self.on_established(slot);
        }
    }

    /// The slot of `id` if it names a live connection of this shard.
    #[inline]
    pub(super) fn slot_of(&self, id: ConnId) -> Option<u32> {
        if usize::from(id.shard) != self.id {
            return None;
        }
        let conn = self.conns.get(id.slot as usize)?.as_ref()?;
        (conn.id == id).then_some(id.slot)
    }

    /// The connection a completion or timer names, unless its slot was reused since.
    #[inline]
    pub(super) fn conn_for_cqe(&mut self, slot: u32, generation: u32) -> Option<&mut Conn> {
        let conn = self.conns.get_mut(slot as usize)?.as_mut()?;
        (conn.id.generation == generation).then_some(conn)
    }

    /// Queues the connection for a flush (protocol output, deadline) this iteration.
    #[inline]
    pub(super) fn mark_dirty(&mut self, slot: u32) {
        if let Some(conn) = self.conns[slot as usize].as_mut()
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Closes a connection of this shard now (queued bytes may be lost).
    pub(super) fn close_conn(&mut self, conn: ConnId) {
        if let Some(slot) = self.slot_of(conn) {
            self.request_close(slot, CloseReason::Local);
        }
    }

    /// Starts closing: shuts the socket down so in-flight operations complete promptly.
    pub(super) fn request_close(&mut self, slot: u32, reason: CloseReason) {
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        if conn.state == ConnState::Closing {
            return;
        }
        let was_connecting = conn.state == ConnState::Connecting;
        conn.state = ConnState::Closing;
        conn.close_reason = Some(reason);
        sys::shutdown(conn.fd);
        if was_connecting && conn.connect_inflight {
            let target = user_data(OpKind::Connect, conn.id.generation, slot);
            self.ring.cancel(target, user_data(OpKind::Cancel, 0, 0));
        }
        self.shm_cancel(slot);
        self.finish_close_if_idle(slot);
    }

    /// Releases a closing connection once the kernel holds nothing of it: this is what
    /// keeps the memory its operations point to alive (see `submit`).
    #[inline]
    pub(super) fn finish_close_if_idle(&mut self, slot: u32) {
        let Some(conn) = self.conns[slot as usize].as_ref() else {
            return;
        };
        if conn.state != ConnState::Closing
            || conn.recv_armed
            || conn.tx.in_flight
            || conn.connect_inflight
            || conn.shm_connecting
            || conn.shm.as_ref().is_some_and(|s| s.busy())
        {
            return;
        }
        self.release_conn(slot);
    }

    fn release_conn(&mut self, slot: u32) {
        let mut conn = self.conns[slot as usize]
            .take()
            .expect("checked by the caller");
        self.free_slots.push(slot);
        self.stats.connections -= 1;
        if conn.shm.is_some() {
            self.detach_shm(slot);
        }
        sys::close(conn.fd);
        if self
            .listeners
            .iter()
            .flatten()
            .any(|l| l.paused_until.is_some())
        {
            // A descriptor is free again: a listener that ran out may accept.
            self.resume_accepting(None, self.now);
        }
        let reason = conn.close_reason.take().unwrap_or(CloseReason::Local);
        conn.proto.on_close(self.now, &reason);
    }

    /// Forgets a connection that never got going (its helper thread could not start):
    /// closes its socket and drops its protocol without `on_close`, as a connect that
    /// fails before returning an id does.
    pub(super) fn discard_conn(&mut self, slot: u32) {
        if let Some(conn) = self.conns[slot as usize].take() {
            self.free_slots.push(slot);
            self.stats.connections -= 1;
            sys::close(conn.fd);
        }
    }
}
