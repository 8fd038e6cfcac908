//! The shards protocols of an endpoint's connections: each feeds the host's endpoint with
//! the bytes and `now` of its socket and takes the endpoint's output.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hawser_session as session;
use hawser_shards::{
    AppMessage, CloseReason as ShardClose, PeerCredentials, Protocol, Received, Transmit,
};

use super::host::{Host, Side};

/// Shared output larger than this is handed to the shard as it is (no copy); smaller
/// output is copied into the shard's transmit buffer (no allocation, fewer iovecs).
const SHARE_THRESHOLD: usize = 16 * 1024;
/// Stop pulling frames from the endpoint once this much waits for the socket: the rest
/// stays in the endpoint (which keeps retries and accounting exact) until the send drains.
const TX_HIGH_WATER: usize = 4 << 20;

/// The endpoint writes its output straight into a shard's transmit queue: large bodies
/// as shared pieces of the vectored send (never copied in user space), small frames
/// copied into the queue's buffer.
pub(crate) struct ShardSink<'a>(pub(crate) &'a mut Transmit);

impl session::TransmitSink for ShardSink<'_> {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    fn put_shared(&mut self, bytes: Bytes) {
        if bytes.len() >= SHARE_THRESHOLD {
            self.0.write_bytes(bytes);
        } else {
            self.0.write(&bytes);
        }
    }
}

/// One TCP connection of an endpoint: the shards protocol feeding the session endpoint.
pub(crate) struct SessionConn {
    host: Rc<RefCell<Host>>,
    conn: Option<session::LinkId>,
    /// An accepted connection's peer, told by the shard before `on_open`.
    peer: session::Peer,
    done: bool,
}

impl SessionConn {
    pub(crate) fn new(host: Rc<RefCell<Host>>) -> Self {
        SessionConn {
            host,
            conn: None,
            peer: session::Peer::Unknown,
            done: false,
        }
    }

    fn after(&self, h: &mut Host, now: Instant) {
        if h.pump(now, self.conn) {
            h.waker.wake();
        }
    }
}

impl Protocol for SessionConn {
    fn on_open(&mut self, now: Instant, socket: hawser_shards::ConnId) {
        let mut h = self.host.borrow_mut();
        if h.dead {
            self.done = true;
            return;
        }
        self.conn = Some(h.open(now, socket, self.peer));
        self.after(&mut h, now);
    }

    fn on_peer_address(&mut self, peer: SocketAddr) {
        self.peer = session::Peer::Inet(peer.ip());
    }

    fn on_peer_credentials(&mut self, creds: PeerCredentials) {
        self.peer = session::Peer::Local(session::LocalCredentials {
            pid: creds.pid,
            uid: creds.uid,
            gid: creds.gid,
        });
    }

    /// The session assembles frames of up to megabytes: the kernel writes each
    /// receive straight into the link's frame storage (no copy out of pool buffers).
    fn receives_into_own_buffer(&self) -> bool {
        true
    }

    fn recv_buffer(&mut self, now: Instant) -> Option<BytesMut> {
        let conn = self.conn?;
        let mut h = self.host.borrow_mut();
        if h.dead {
            return None;
        }
        h.side.recv_buffer(now, conn)
    }

    fn handle_received(&mut self, now: Instant, buf: BytesMut, filled: usize) {
        let Some(conn) = self.conn else { return };
        let mut h = self.host.borrow_mut();
        if h.dead {
            return;
        }
        h.side.handle_received(now, conn, buf, filled);
        if filled > 0 {
            self.after(&mut h, now);
        }
    }

    fn handle_input(&mut self, _now: Instant, _input: Received<'_>) {
        debug_assert!(false, "session connections receive into their own buffers");
    }

    fn handle_eof(&mut self, now: Instant) {
        let Some(conn) = self.conn else { return };
        let mut h = self.host.borrow_mut();
        if h.links.remove(&conn).is_some() {
            h.side.connection_lost(now, conn);
        }
        self.done = true;
        self.after(&mut h, now);
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) {
        let Some(conn) = self.conn else { return };
        let mut guard = self.host.borrow_mut();
        let h = &mut *guard;
        let Some(link) = h.links.get_mut(&conn) else {
            return;
        };
        out.append(&mut link.stash);
        let mut drained = false;
        while out.queued() < TX_HIGH_WATER {
            if h.side.poll_transmit(now, conn, out) == 0 {
                drained = true;
                break;
            }
        }
        if drained && link.closing {
            h.links.remove(&conn);
            self.done = true;
        }
    }

    fn handle_message(&mut self, _now: Instant, _msg: AppMessage) {
        // A wake-up: the shard calls poll_transmit next, which is the point.
    }

    fn wants_close(&self) -> bool {
        self.done
    }

    fn on_close(&mut self, now: Instant, reason: &ShardClose) {
        let mut h = self.host.borrow_mut();
        if h.dead {
            return;
        }
        match self.conn {
            Some(conn) => {
                if h.links.remove(&conn).is_some() {
                    h.side.connection_lost(now, conn);
                }
            }
            None => {
                if let (Side::Client(s), ShardClose::ConnectFailed(_) | ShardClose::Error(_)) =
                    (&mut h.side, reason)
                {
                    s.ep.connect_failed(now);
                }
            }
        }
        self.after(&mut h, now);
    }
}

/// What a server's listener gives a connection accepted after the server was shut down
/// on a runtime that lives on: closed at once.
pub(crate) struct RefusedConn;

impl Protocol for RefusedConn {
    fn handle_input(&mut self, _now: Instant, _input: Received<'_>) {}
    fn poll_transmit(&mut self, _now: Instant, _out: &mut Transmit) {}
    fn wants_close(&self) -> bool {
        true
    }
}
