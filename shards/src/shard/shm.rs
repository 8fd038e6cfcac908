//! Shared-memory connections of a shard (the link itself is [`crate::shm`]): listeners
//! whose handshakes run on helper threads, connects from the shard, moving bytes between
//! the rings and the protocols, the parked flags and doorbells, and what closing them
//! waits for.
//!
//! A shared-memory connection is a [`Conn`](super::conn::Conn) like a socket's — same
//! slot, id, protocol, transmit queue, deadline and close — whose `fd` is the rendezvous
//! socket and whose bytes go through its [`ShmConn`] instead of socket receives and sends.

use std::io;
use std::os::fd::{AsFd, IntoRawFd};
use std::path::Path;
use std::sync::Arc;

use super::Core;
use super::conn::{ConnId, ConnState};
use super::listener::ProtocolFactory;
use super::op::{OpKind, user_data};
use super::submit::DoorbellCounter;
use crate::protocol::{CloseReason, Protocol, Received};
use crate::shm::acceptor::{Acceptor, AcceptorSettings, MAX_HANDSHAKES, Outcome};
use crate::shm::ring::Corruption;
use crate::shm::{LinkParts, MAX_RINGS_IN_FLIGHT, ShmLink, handshake};
use crate::sys::{self, RawSockAddr};

/// The shared-memory state of a connection; boxed, so that the memory its operations
/// point to stays put.
pub(super) struct ShmConn {
    link: ShmLink,
    /// Where the read of our eventfd lands.
    counter: DoorbellCounter,
    /// Where the liveness receive on the socket lands (nothing should).
    probe: [u8; 8],
    probe_armed: bool,
    doorbell_armed: bool,
    rings_in_flight: u8,
    /// The peer closed its end (or the socket failed): deliver what is left in the ring,
    /// then the end of stream.
    peer_gone: bool,
}

impl ShmConn {
    /// Whether the kernel still holds memory of this state.
    pub(super) fn busy(&self) -> bool {
        self.probe_armed || self.doorbell_armed || self.rings_in_flight > 0
    }
}

impl Core {
    /// Adopts a listening Unix socket as a shared-memory listener: its acceptor thread
    /// runs the handshakes and posts each established link here.
    pub(super) fn add_shm_listener(
        &mut self,
        listen: std::os::fd::OwnedFd,
        factory: ProtocolFactory,
    ) -> io::Result<()> {
        let poster = self.poster.clone();
        let settings = AcceptorSettings {
            max_ring: self.settings.shm.ring_bytes,
            timeout: self.settings.shm.handshake_timeout,
            max_handshakes: MAX_HANDSHAKES,
        };
        let deliver = Arc::new(move |outcome: Outcome| {
            let factory = factory.clone();
            poster.run(Box::new(move |ctx| {
                ctx.core.on_shm_outcome(outcome, &factory)
            }));
        });
        let acceptor = Acceptor::spawn(listen, settings, deliver)?;
        self.shm_acceptors.push(acceptor);
        Ok(())
    }

    fn on_shm_outcome(&mut self, outcome: Outcome, factory: &ProtocolFactory) {
        match outcome {
            Outcome::Refused(e) => {
                self.stats.shm_refused += 1;
                tracing::warn!(shard = self.id, error = %e, "shared-memory handshake failed");
            }
            // The loop looks at `drained` again: a stopping shard may be done.
            Outcome::Stopped => {}
            // Dropping the link closes it: the client sees its socket end.
            Outcome::Established(_) if self.stopping => {}
            Outcome::Established(arrival) => {
                let mut proto = factory(self.id);
                if let Some(creds) = arrival.creds {
                    proto.on_peer_credentials(creds);
                }
                self.stats.accepts += 1;
                let fd = arrival.socket.into_raw_fd();
                let (slot, _) = self.new_conn(fd, proto, ConnState::Open);
                self.attach_shm(slot, arrival.parts);
                self.on_established(slot);
            }
        }
    }

    /// Stops every shared-memory listener (the shard is stopping).
    pub(super) fn stop_shm_acceptors(&mut self) {
        for acceptor in &self.shm_acceptors {
            acceptor.stop();
        }
    }

    /// Whether every shared-memory listener's thread has ended.
    pub(super) fn shm_acceptors_done(&self) -> bool {
        self.shm_acceptors.iter().all(Acceptor::is_stopped)
    }

    /// Opens a shared-memory connection to the listener at `path`. The handshake runs on
    /// a short-lived thread; the protocol sees `on_open` once it is done, or `on_close`
    /// with [`CloseReason::ConnectFailed`].
    pub(super) fn connect_shm(
        &mut self,
        path: &Path,
        proto: Box<dyn Protocol>,
    ) -> io::Result<ConnId> {
        let addr = RawSockAddr::from_unix(path)?;
        let socket = sys::owned_fd(sys::unix_socket()?);
        // The handshake thread works on its own descriptor of the socket, so that this
        // one can be closed whenever the connection is released; shutting the socket
        // down (closing the connection) still ends the thread's blocking calls.
        let helper = sys::dup(socket.as_fd())?;
        let fd = socket.into_raw_fd();
        let (slot, id) = self.new_conn(fd, proto, ConnState::Connecting);
        self.conns[slot as usize]
            .as_mut()
            .expect("just created")
            .shm_connecting = true;
        let poster = self.poster.clone();
        let (ring_bytes, timeout) = (
            self.settings.shm.ring_bytes,
            self.settings.shm.handshake_timeout,
        );
        let shown = path.display().to_string();
        let spawned = std::thread::Builder::new()
            .name("hawser-shm-connect".into())
            .spawn(move || {
                let result = handshake::connect(helper.as_fd(), &addr, ring_bytes, timeout)
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("shared-memory link to {shown}: {e}"))
                    });
                drop(helper);
                poster.run(Box::new(move |ctx| {
                    ctx.core.on_shm_connected(slot, id.generation, result);
                }));
            });
        if let Err(e) = spawned {
            self.discard_conn(slot);
            return Err(e);
        }
        Ok(id)
    }

    fn on_shm_connected(&mut self, slot: u32, generation: u32, result: io::Result<LinkParts>) {
        let Some(conn) = self.conn_for_cqe(slot, generation) else {
            return;
        };
        conn.shm_connecting = false;
        match result {
            _ if conn.state == ConnState::Closing => self.finish_close_if_idle(slot),
            Err(e) => self.request_close(slot, CloseReason::ConnectFailed(e)),
            Ok(parts) => {
                self.attach_shm(slot, parts);
                self.on_established(slot);
            }
        }
    }

    fn attach_shm(&mut self, slot: u32, parts: LinkParts) {
        if self.shm_scratch.is_empty() {
            // Where received bytes go when the pool has no free buffer: one per shard.
            self.shm_scratch = vec![0; self.pool.shared.mem.buf_size()];
        }
        let conn = self.conns[slot as usize].as_mut().expect("live slot");
        conn.shm = Some(Box::new(ShmConn {
            link: ShmLink::new(parts),
            counter: DoorbellCounter::new(),
            probe: [0; 8],
            probe_armed: false,
            doorbell_armed: false,
            rings_in_flight: 0,
            peer_gone: false,
        }));
        self.shm_slots.push(slot);
        self.stats.shm_connections += 1;
    }

    /// Called when a shared-memory connection is released.
    pub(super) fn detach_shm(&mut self, slot: u32) {
        if let Some(i) = self.shm_slots.iter().position(|&s| s == slot) {
            self.shm_slots.swap_remove(i);
            self.stats.shm_connections -= 1;
        }
    }

    /// Keeps the liveness receive and the doorbell read armed, and lets a connection whose
    /// protocol had no buffer try again (the next poll delivers).
    pub(super) fn arm_shm(&mut self, slot: u32) {
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        if conn.state != ConnState::Open {
            return;
        }
        conn.recv_paused = false;
        let Some(shm) = conn.shm.as_mut() else {
            return;
        };
        let generation = conn.id.generation;
        if !shm.probe_armed && !shm.peer_gone {
            shm.probe_armed = true;
            let ud = user_data(OpKind::ShmSocket, generation, slot);
            self.ring.recv_probe(conn.fd, &mut shm.probe, ud);
        }
        if !shm.doorbell_armed {
            shm.doorbell_armed = true;
            let ud = user_data(OpKind::ShmDoorbell, generation, slot);
            self.ring
                .read_doorbell(shm.link.own_doorbell(), &mut shm.counter, ud);
        }
    }

    /// Once per loop iteration: delivers what waits in the receive rings and queues a
    /// flush where output waits and room appeared (one or two atomic loads a connection).
    pub(super) fn poll_shm(&mut self) {
        let mut i = 0;
        while i < self.shm_slots.len() {
            let slot = self.shm_slots[i];
            i += 1;
            let (readable, writable) = self.shm_work(slot);
            if readable {
                self.shm_deliver(slot);
            }
            if writable {
                self.mark_dirty(slot);
            }
        }
    }

    /// Whether a connection has bytes to deliver, and whether it has output and room.
    #[inline]
    fn shm_work(&self, slot: u32) -> (bool, bool) {
        let Some(conn) = self.conns[slot as usize].as_ref() else {
            return (false, false);
        };
        let Some(shm) = conn.shm.as_ref() else {
            return (false, false);
        };
        if conn.state != ConnState::Open {
            return (false, false);
        }
        let readable =
            !conn.recv_paused && !conn.read_eof && (shm.peer_gone || shm.link.maybe_readable());
        let writable = !conn.tx.pending.is_empty() && shm.link.maybe_room();
        (readable, writable)
    }

    /// Whether any shared-memory connection has work (the re-check before parking).
    pub(super) fn shm_has_work(&self) -> bool {
        self.shm_slots.iter().any(|&slot| {
            let (r, w) = self.shm_work(slot);
            r || w
        })
    }

    /// Sets or clears every shared-memory connection's parked flag. The caller fences
    /// after setting, before re-checking the rings.
    pub(super) fn shm_set_parked(&self, parked: bool) {
        for &slot in &self.shm_slots {
            if let Some(shm) = self.conns[slot as usize]
                .as_ref()
                .and_then(|c| c.shm.as_ref())
            {
                shm.link.set_parked(parked);
            }
        }
    }

    /// Moves bytes from a connection's receive ring into its protocol: into its own
    /// buffer, or a pool buffer (or the shard's scratch buffer when the pool has none
    /// free), at most one ring's worth per call. Then the end of stream if the peer is
    /// gone and the ring is empty.
    pub(super) fn shm_deliver(&mut self, slot: u32) {
        let now = self.now;
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        if conn.state != ConnState::Open || conn.recv_paused || conn.read_eof {
            return;
        }
        let Some(shm) = conn.shm.as_mut() else {
            return;
        };
        let mut budget = shm.link.ring_bytes();
        let (mut moved, mut pieces) = (0usize, 0u64);
        let mut drained = false;
        let outcome: Result<(), Corruption> = loop {
            let available = match shm.link.rx_available() {
                Ok(n) => n as usize,
                Err(c) => break Err(c),
            };
            if available == 0 {
                drained = true;
                break Ok(());
            }
            if budget == 0 {
                break Ok(());
            }
            let want = available.min(budget);
            let n = if conn.own_recv {
                let Some(mut buf) = conn
                    .proto
                    .recv_buffer(now)
                    .filter(|b| b.capacity() > b.len())
                else {
                    conn.recv_paused = true;
                    break Ok(());
                };
                let n = want.min(buf.capacity() - buf.len());
                shm.link.read_append(n, &mut buf);
                conn.proto.handle_received(now, buf, n);
                n
            } else if let Some(id) = self.pool.take_free() {
                let n = want.min(self.pool.shared.mem.buf_size());
                shm.link.read(&mut self.pool.fill(id)[..n]);
                let mut retained = false;
                conn.proto
                    .handle_input(now, Received::from_pool(&self.pool, id, n, &mut retained));
                if !retained {
                    self.pool.recycle(id);
                }
                n
            } else {
                let n = want.min(self.shm_scratch.len());
                shm.link.read(&mut self.shm_scratch[..n]);
                conn.proto
                    .handle_input(now, Received::from_slice(&self.shm_scratch[..n]));
                n
            };
            moved += n;
            budget -= n;
            pieces += 1;
        };
        let mut wake = false;
        if moved > 0 {
            shm.link.publish_consumed();
            wake = shm.link.take_peer_wake();
            self.stats.bytes_in += moved as u64;
            self.stats.recv_ops += pieces;
        }
        let mut eof = false;
        match outcome {
            Err(c) => {
                self.shm_corrupted(slot, c);
                return;
            }
            Ok(()) if drained && shm.peer_gone => {
                conn.read_eof = true;
                conn.proto.handle_eof(now);
                eof = true;
            }
            Ok(()) => {}
        }
        if moved > 0 || eof {
            self.mark_dirty(slot);
        }
        if wake {
            self.ring_peer(slot);
        }
    }

    /// Copies as much of a connection's queued output as fits into its send ring; the rest
    /// waits for room (the poll, or the peer's ring if we park, says when).
    pub(super) fn shm_send(&mut self, slot: u32) {
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        let Some(shm) = conn.shm.as_mut() else {
            return;
        };
        let tx = &mut *conn.tx;
        if conn.state != ConnState::Open || tx.pending.is_empty() {
            return;
        }
        let room = match shm.link.tx_room() {
            Ok(room) => room as usize,
            Err(c) => return self.shm_corrupted(slot, c),
        };
        let (mut left, mut wrote) = (room, 0usize);
        while left > 0 {
            let Some(front) = tx.pending.segments.front() else {
                break;
            };
            let bytes = &tx.pending.segment_bytes(front)[tx.front_offset..];
            let n = bytes.len().min(left);
            shm.link.write(&bytes[..n]);
            tx.pending.consume(n, &mut tx.front_offset);
            left -= n;
            wrote += n;
        }
        if wrote == 0 {
            return;
        }
        shm.link.publish_produced();
        let wake = shm.link.take_peer_wake();
        self.stats.bytes_out += wrote as u64;
        self.stats.send_ops += 1;
        if tx.pending.is_empty() {
            // Everything went: the protocol may have more.
            self.mark_dirty(slot);
        }
        if wake {
            self.ring_peer(slot);
        }
    }

    /// Rings the peer's doorbell (its eventfd) through the ring.
    fn ring_peer(&mut self, slot: u32) {
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return;
        };
        let Some(shm) = conn.shm.as_mut() else {
            return;
        };
        if shm.rings_in_flight >= MAX_RINGS_IN_FLIGHT {
            return;
        }
        shm.rings_in_flight += 1;
        let ud = user_data(OpKind::ShmRing, conn.id.generation, slot);
        self.ring.ring_eventfd(shm.link.peer_doorbell(), ud);
        self.stats.shm_peer_wakes += 1;
    }

    fn shm_corrupted(&mut self, slot: u32, corruption: Corruption) {
        self.stats.shm_corrupted += 1;
        let error = corruption.into_io_error();
        tracing::warn!(shard = self.id, %error, "closing a shared-memory connection");
        self.request_close(slot, CloseReason::Error(error));
    }

    /// Closing: cancels the doorbell read and any peer rings (the socket's shutdown ends
    /// the liveness receive).
    pub(super) fn shm_cancel(&mut self, slot: u32) {
        let Some(conn) = self.conns[slot as usize].as_ref() else {
            return;
        };
        let Some(shm) = conn.shm.as_ref() else {
            return;
        };
        let generation = conn.id.generation;
        let cancel = user_data(OpKind::Cancel, 0, 0);
        if shm.doorbell_armed {
            let target = user_data(OpKind::ShmDoorbell, generation, slot);
            self.ring.cancel(target, cancel);
        }
        if shm.rings_in_flight > 0 {
            let target = user_data(OpKind::ShmRing, generation, slot);
            self.ring.cancel_all(target, cancel);
        }
    }

    /// The liveness receive ended: the peer is gone (end of stream, error), or it sent
    /// bytes over a socket that must stay silent.
    pub(super) fn on_shm_socket(&mut self, slot: u32, generation: u32, res: i32) {
        let Some(conn) = self.conn_for_cqe(slot, generation) else {
            return;
        };
        let Some(shm) = conn.shm.as_mut() else {
            return;
        };
        shm.probe_armed = false;
        if conn.state == ConnState::Open {
            if res > 0 {
                let error = io::Error::new(
                    io::ErrorKind::InvalidData,
                    "shared-memory peer sent bytes over the rendezvous socket after the handshake",
                );
                self.request_close(slot, CloseReason::Error(error));
            } else {
                shm.peer_gone = true;
                self.shm_deliver(slot);
                self.mark_dirty(slot);
            }
        }
        self.finish_close_if_idle(slot);
    }

    /// The peer rang our doorbell: deliver, flush, and wait for the next ring.
    pub(super) fn on_shm_doorbell(&mut self, slot: u32, generation: u32, res: i32) {
        let Some(conn) = self.conn_for_cqe(slot, generation) else {
            return;
        };
        let Some(shm) = conn.shm.as_mut() else {
            return;
        };
        shm.doorbell_armed = false;
        if conn.state == ConnState::Open {
            if res >= 0 || res == -libc::EINTR || res == -libc::EAGAIN {
                self.arm_shm(slot);
                self.shm_deliver(slot);
                self.mark_dirty(slot);
            } else {
                let error = io::Error::from_raw_os_error(-res);
                let error = io::Error::new(
                    error.kind(),
                    format!("reading the shared-memory doorbell: {error}"),
                );
                self.request_close(slot, CloseReason::Error(error));
            }
        }
        self.finish_close_if_idle(slot);
    }

    /// A ring of the peer's doorbell completed (its result does not matter: a peer that
    /// cannot be woken only stalls itself).
    pub(super) fn on_shm_ring(&mut self, slot: u32, generation: u32) {
        let Some(conn) = self.conn_for_cqe(slot, generation) else {
            return;
        };
        if let Some(shm) = conn.shm.as_mut() {
            shm.rings_in_flight = shm.rings_in_flight.saturating_sub(1);
        }
        self.finish_close_if_idle(slot);
    }
}
