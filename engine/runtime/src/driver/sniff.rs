//! One listening port for DSP and the direct-connection protocols of a server's services
//! (DMP's `AMQP` header): the first bytes of an accepted connection tell which protocol
//! it speaks, and the connection is handed to it with those bytes as its first receive.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hawser_shards::{
    AppMessage, CloseReason, ConnId, PeerCredentials, Protocol, Received, Transmit,
};

use super::conn::SessionConn;
use super::host::{Host, Side};
use crate::service::DirectFactory;

/// How long an accepted connection may stay silent before its first bytes.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read to decide: the magics are four bytes; a few more save a receive.
const SNIFF_LEN: usize = 8;

enum Mode {
    /// Waiting for the first bytes.
    Sniffing {
        read: BytesMut,
        deadline: Option<Instant>,
    },
    /// Handed over.
    Chosen(Box<dyn Protocol>),
    /// Closed before choosing (silent too long, or gone).
    Closed,
}

/// An accepted connection until its first bytes say which protocol it speaks.
pub(crate) struct SniffConn {
    mode: Mode,
    host: Rc<RefCell<Host>>,
    direct: Arc<[([u8; 4], DirectFactory)]>,
    socket: Option<ConnId>,
    peer_address: Option<SocketAddr>,
    peer_credentials: Option<PeerCredentials>,
    /// Counted against its address's connection limit (until it closes, or the session
    /// takes it and counts it itself).
    counted: bool,
}

impl SniffConn {
    pub(crate) fn new(host: Rc<RefCell<Host>>, direct: Arc<[([u8; 4], DirectFactory)]>) -> Self {
        SniffConn {
            mode: Mode::Sniffing {
                read: BytesMut::new(),
                deadline: None,
            },
            host,
            direct,
            socket: None,
            peer_address: None,
            peer_credentials: None,
            counted: false,
        }
    }

    fn peer(&self) -> hawser_session::Peer {
        match (self.peer_address, self.peer_credentials) {
            (Some(a), _) => hawser_session::Peer::Inet(a.ip()).canonical(),
            (None, Some(c)) => hawser_session::Peer::Local(hawser_session::LocalCredentials {
                pid: c.pid,
                uid: c.uid,
                gid: c.gid,
            }),
            (None, None) => hawser_session::Peer::Unknown,
        }
    }

    /// Stops counting it against its address's limit.
    fn uncount(&mut self) {
        if std::mem::take(&mut self.counted) {
            let peer = self.peer();
            if let Side::Server(s) = &mut self.host.borrow_mut().side {
                s.ep.release_outside(peer);
            }
        }
    }

    /// The protocol `read` starts, once enough of it is there to tell (`None` while a
    /// magic may still match), and whether it is the session's.
    fn choose(&self, read: &[u8]) -> Option<(Box<dyn Protocol>, bool)> {
        let mut undecided = false;
        for (magic, factory) in self.direct.iter() {
            let known = read.len().min(magic.len());
            if read[..known] == magic[..known] {
                if known == magic.len() {
                    return Some((factory(), false));
                }
                undecided = true;
            }
        }
        if undecided && read.len() < 4 {
            return None;
        }
        Some((Box::new(SessionConn::new(Rc::clone(&self.host))), true))
    }

    /// Opens `chosen` as if it had accepted the connection and gives it `read`.
    fn hand_over(
        &mut self,
        now: Instant,
        mut chosen: Box<dyn Protocol>,
        read: &[u8],
        session: bool,
    ) {
        debug_assert!(chosen.receives_into_own_buffer());
        if session {
            self.uncount();
        }
        if let Some(peer) = self.peer_address {
            chosen.on_peer_address(peer);
        }
        if let Some(creds) = self.peer_credentials {
            chosen.on_peer_credentials(creds);
        }
        if let Some(socket) = self.socket {
            chosen.on_open(now, socket);
        }
        if let Some(mut buf) = chosen.recv_buffer(now) {
            buf.extend_from_slice(read);
            chosen.handle_received(now, buf, read.len());
        }
        self.mode = Mode::Chosen(chosen);
    }
}

impl Protocol for SniffConn {
    fn on_open(&mut self, now: Instant, conn: ConnId) {
        self.socket = Some(conn);
        let peer = self.peer();
        self.counted = match &mut self.host.borrow_mut().side {
            Side::Server(s) => s.ep.admit_outside(peer),
            Side::Client(_) => false,
        };
        if !self.counted {
            // Its address has as many connections as allowed (limits.connections_per_address).
            self.mode = Mode::Closed;
            return;
        }
        if let Mode::Sniffing { deadline, .. } = &mut self.mode {
            *deadline = Some(now + FIRST_BYTES_TIMEOUT);
        }
    }

    fn on_peer_address(&mut self, peer: SocketAddr) {
        self.peer_address = Some(peer);
    }

    fn on_peer_credentials(&mut self, creds: PeerCredentials) {
        self.peer_credentials = Some(creds);
    }

    fn receives_into_own_buffer(&self) -> bool {
        true
    }

    fn recv_buffer(&mut self, now: Instant) -> Option<BytesMut> {
        match &mut self.mode {
            Mode::Sniffing { read, .. } => {
                let mut buf = std::mem::take(read);
                buf.reserve(SNIFF_LEN - buf.len().min(SNIFF_LEN));
                Some(buf)
            }
            Mode::Chosen(p) => p.recv_buffer(now),
            Mode::Closed => None,
        }
    }

    fn handle_received(&mut self, now: Instant, buf: BytesMut, filled: usize) {
        match &mut self.mode {
            Mode::Sniffing { read, .. } => {
                *read = buf;
                if filled == 0 {
                    return;
                }
                let read = std::mem::take(read);
                match self.choose(&read) {
                    Some((chosen, session)) => self.hand_over(now, chosen, &read, session),
                    None => {
                        if let Mode::Sniffing { read: keep, .. } = &mut self.mode {
                            *keep = read;
                        }
                    }
                }
            }
            Mode::Chosen(p) => p.handle_received(now, buf, filled),
            Mode::Closed => {}
        }
    }

    fn handle_input(&mut self, now: Instant, input: Received<'_>) {
        if let Mode::Chosen(p) = &mut self.mode {
            p.handle_input(now, input);
        }
    }

    fn handle_eof(&mut self, now: Instant) {
        match &mut self.mode {
            Mode::Chosen(p) => p.handle_eof(now),
            _ => self.mode = Mode::Closed,
        }
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) {
        if let Mode::Chosen(p) = &mut self.mode {
            p.poll_transmit(now, out);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Sniffing { deadline, .. } => *deadline,
            Mode::Chosen(p) => p.poll_timeout(),
            Mode::Closed => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match &mut self.mode {
            Mode::Sniffing { deadline, .. } => {
                if deadline.is_some_and(|d| now >= d) {
                    self.mode = Mode::Closed;
                }
            }
            Mode::Chosen(p) => p.handle_timeout(now),
            Mode::Closed => {}
        }
    }

    fn handle_message(&mut self, now: Instant, msg: AppMessage) {
        if let Mode::Chosen(p) = &mut self.mode {
            p.handle_message(now, msg);
        }
    }

    fn wants_close(&self) -> bool {
        match &self.mode {
            Mode::Sniffing { .. } => false,
            Mode::Chosen(p) => p.wants_close(),
            Mode::Closed => true,
        }
    }

    fn on_close(&mut self, now: Instant, reason: &CloseReason) {
        if let Mode::Chosen(p) = &mut self.mode {
            p.on_close(now, reason);
        }
        if !self.host.borrow().dead {
            self.uncount();
        }
    }
}
