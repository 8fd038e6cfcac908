//! The sans-IO driver interface: how a protocol state machine plugs into a shard.
//!
//! The shard owns the socket; the protocol owns the meaning of the bytes. The shard calls
//! [`Protocol::handle_input`] with received bytes and the loop's `now`, then
//! [`Protocol::poll_transmit`] to collect what to send, and [`Protocol::poll_timeout`] to
//! learn the next deadline (fed back through [`Protocol::handle_timeout`]). Work injected by
//! the application on the shard arrives through [`Protocol::handle_message`]. Nothing here
//! does I/O, so the same state machine runs unchanged in a deterministic simulator.

use std::collections::VecDeque;
use std::io;
use std::ops::Deref;
use std::time::Instant;

use bytes::Bytes;

use crate::mesh::AppMessage;
use crate::pool::{BufHandle, LocalPool};

/// Why a connection closed.
#[derive(Debug)]
pub enum CloseReason {
    /// The protocol asked to close (and everything queued was sent), or the peer finished
    /// sending and nothing was left to send.
    Finished,
    /// The application closed it through its [`ConnId`](crate::ConnId).
    Local,
    /// The shard is shutting down.
    Shutdown,
    /// Connecting failed.
    ConnectFailed(io::Error),
    /// A socket error (reset, broken pipe, ...), or a shared-memory peer that broke the
    /// ring's rules ("shared-memory peer corrupted the ring: ...").
    Error(io::Error),
}

/// Who is at the other end of a Unix-socket or shared-memory connection: the peer
/// process's credentials as the kernel recorded them when it connected (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// Process id (0 when the peer is in a PID namespace that ours cannot see).
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// A state machine driven by a shard for one connection.
///
/// Every method receives `now` from the loop (one clock read per iteration) so the machine
/// never reads a clock itself.
pub trait Protocol {
    /// The connection is established (accepted, or the connect completed). `conn` names it
    /// for messages from the application ([`ShardCtx::send_to_connection`](crate::ShardCtx::send_to_connection)).
    fn on_open(&mut self, _now: Instant, _conn: crate::ConnId) {}

    /// An accepted connection's peer address, told right before
    /// [`on_open`](Self::on_open) (not called for connections this side opened, nor when
    /// the address cannot be read).
    fn on_peer_address(&mut self, _peer: std::net::SocketAddr) {}

    /// An accepted Unix-socket or shared-memory connection's peer credentials, told right
    /// before [`on_open`](Self::on_open) (not called for connections this side opened, nor
    /// when the kernel cannot say).
    fn on_peer_credentials(&mut self, _creds: PeerCredentials) {}

    /// Bytes arrived. Read them through `Deref`, or keep the buffer with
    /// [`Received::retain`] (zero-copy; the shard's pool shrinks until the handle drops).
    fn handle_input(&mut self, now: Instant, input: Received<'_>);

    /// Whether this connection receives into memory the protocol provides
    /// ([`recv_buffer`](Self::recv_buffer), [`handle_received`](Self::handle_received))
    /// instead of the shard's pool ([`handle_input`](Self::handle_input)). Asked once, when
    /// the connection opens.
    ///
    /// With the pool, a protocol that assembles messages larger than a pool buffer copies
    /// each piece into place; with its own buffer the kernel writes the bytes where the
    /// protocol wants them (for example straight into a 1 MiB frame's storage). The pool
    /// path suits small messages and zero-copy consumers of single buffers.
    fn receives_into_own_buffer(&self) -> bool {
        false
    }

    /// The buffer the next receive appends to: the kernel fills its spare capacity (after
    /// its length). The shard owns it until the receive completes and gives it back
    /// through [`handle_received`](Self::handle_received). `None`, or no spare capacity:
    /// do not read now (back-pressure; asked again after this connection's next event).
    fn recv_buffer(&mut self, _now: Instant) -> Option<bytes::BytesMut> {
        None
    }

    /// A receive into the buffer from [`recv_buffer`](Self::recv_buffer) finished: `buf`
    /// has `filled` new bytes after what it held. Also called with `filled == 0` when the
    /// receive ended without data (end of stream, error), so the buffer comes home.
    fn handle_received(&mut self, _now: Instant, _buf: bytes::BytesMut, _filled: usize) {}

    /// The peer will send no more bytes. The connection closes once everything queued has
    /// been sent, after one more [`poll_transmit`](Self::poll_transmit).
    fn handle_eof(&mut self, _now: Instant) {}

    /// Queue bytes to send into `out`. Called after every event of this connection and
    /// whenever a send completes; queue as much or as little as wanted (see
    /// [`Transmit::queued`] to bound what is waiting).
    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit);

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) must be called.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The deadline from [`poll_timeout`](Self::poll_timeout) passed.
    fn handle_timeout(&mut self, _now: Instant) {}

    /// A message from the application (possibly from another shard, possibly lending a
    /// buffer).
    fn handle_message(&mut self, _now: Instant, _msg: AppMessage) {}

    /// Whether the connection should close once queued bytes are sent.
    fn wants_close(&self) -> bool {
        false
    }

    /// The connection is closed; the protocol is dropped right after.
    fn on_close(&mut self, _now: Instant, _reason: &CloseReason) {}
}

/// Received bytes, in place in a registered pool buffer.
#[derive(Debug)]
pub struct Received<'a> {
    data: &'a [u8],
    origin: Option<(&'a LocalPool, u16, &'a mut bool)>,
}

impl<'a> Received<'a> {
    /// Bytes not backed by a pool buffer (for tests and simulators driving a protocol
    /// directly); [`retain`](Self::retain) returns `None` for them.
    pub fn from_slice(data: &'a [u8]) -> Self {
        Received { data, origin: None }
    }

    pub(crate) fn from_pool(
        pool: &'a LocalPool,
        id: u16,
        len: usize,
        retained: &'a mut bool,
    ) -> Self {
        Received {
            data: pool.received(id, len),
            origin: Some((pool, id, retained)),
        }
    }

    /// Whether the bytes are in a pool buffer (so [`retain`](Self::retain) keeps them).
    #[cfg(feature = "demo")]
    pub(crate) fn is_pooled(&self) -> bool {
        self.origin.is_some()
    }

    /// Keeps the buffer beyond this call, zero-copy. It returns to the pool when the handle
    /// drops (on any thread). `None` when the bytes are not in a pool buffer.
    pub fn retain(self) -> Option<BufHandle> {
        let (pool, id, retained) = self.origin?;
        *retained = true;
        Some(pool.handle(id, self.data.len()))
    }
}

impl Deref for Received<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

/// One piece of an outgoing byte stream.
pub(crate) enum Segment {
    /// A range of the transmit's own copy buffer.
    Copied { start: usize, end: usize },
    /// A pool buffer (sent in place).
    Pooled(BufHandle),
    /// Shared immutable bytes (sent in place).
    Shared(Bytes),
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Segment::Copied { start, end } => write!(f, "Copied({start}..{end})"),
            Segment::Pooled(b) => write!(f, "Pooled({b:?})"),
            Segment::Shared(b) => write!(f, "Shared({} bytes)", b.len()),
        }
    }
}

/// Bytes queued for sending: small copied pieces (headers) interleaved with large bodies
/// sent in place, gathered into one vectored send.
#[derive(Debug, Default)]
pub struct Transmit {
    copied: Vec<u8>,
    pub(crate) segments: VecDeque<Segment>,
    queued: usize,
}

impl Transmit {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue with room for `segments` pieces and `copied_bytes` of copies, so that
    /// steady-state use does not allocate.
    pub fn with_capacity(segments: usize, copied_bytes: usize) -> Self {
        Transmit {
            copied: Vec::with_capacity(copied_bytes),
            segments: VecDeque::with_capacity(segments),
            queued: 0,
        }
    }

    /// Queues a copy of `bytes` (for headers and small messages).
    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.copied.len();
        self.copied.extend_from_slice(bytes);
        let end = self.copied.len();
        if let Some(Segment::Copied { end: last_end, .. }) = self.segments.back_mut()
            && *last_end == start
        {
            *last_end = end;
        } else {
            self.segments.push_back(Segment::Copied { start, end });
        }
        self.queued += bytes.len();
    }

    /// Queues a pool buffer's valid bytes without copying them.
    pub fn write_buf(&mut self, buf: BufHandle) {
        if buf.is_empty() {
            return;
        }
        self.queued += buf.len();
        self.segments.push_back(Segment::Pooled(buf));
    }

    /// Queues shared bytes without copying them (a large body, a file mapped once, ...).
    pub fn write_bytes(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.queued += bytes.len();
        self.segments.push_back(Segment::Shared(bytes));
    }

    /// Moves everything queued in `other` to the end of this queue, in order: shared and
    /// pooled pieces move as they are, copied ones are copied over. `other` is left empty
    /// (with its allocations kept for reuse).
    pub fn append(&mut self, other: &mut Transmit) {
        for seg in other.segments.drain(..) {
            match seg {
                Segment::Copied { start, end } => self.write(&other.copied[start..end]),
                Segment::Pooled(buf) => self.write_buf(buf),
                Segment::Shared(bytes) => self.write_bytes(bytes),
            }
        }
        other.copied.clear();
        other.queued = 0;
    }

    /// Bytes queued and not yet handed to the kernel.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// A copy of everything queued, in order (for tests and simulators).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.queued);
        for seg in &self.segments {
            out.extend_from_slice(self.segment_bytes(seg));
        }
        out
    }

    /// Drops everything queued (keeps the allocations for reuse).
    pub fn clear(&mut self) {
        self.copied.clear();
        self.segments.clear();
        self.queued = 0;
    }

    pub(crate) fn segment_bytes<'s>(&'s self, seg: &'s Segment) -> &'s [u8] {
        match seg {
            Segment::Copied { start, end } => &self.copied[*start..*end],
            Segment::Pooled(b) => b.as_slice(),
            Segment::Shared(b) => b,
        }
    }

    /// Forgets `n` bytes sent from the front. Returns whether the queue is now empty.
    pub(crate) fn consume(&mut self, mut n: usize, front_offset: &mut usize) -> bool {
        self.queued -= n;
        while n > 0 {
            let front = self.segments.front().expect("sent more than queued");
            let len = self.segment_bytes(front).len() - *front_offset;
            if n >= len {
                n -= len;
                *front_offset = 0;
                self.segments.pop_front();
            } else {
                *front_offset += n;
                n = 0;
            }
        }
        if self.segments.is_empty() {
            self.copied.clear();
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_keeps_the_order_and_moves_shared_bytes_without_copying() {
        let body = Bytes::from(vec![7u8; 100]);
        let mut stash = Transmit::new();
        stash.write(b"head");
        stash.write_bytes(body.clone());
        stash.write(b"tail");
        let mut out = Transmit::new();
        out.write(b"first-");
        out.append(&mut stash);
        assert!(stash.is_empty() && stash.segments.is_empty());
        assert_eq!(out.queued(), 6 + 4 + 100 + 4);
        let mut want = b"first-head".to_vec();
        want.extend_from_slice(&body);
        want.extend_from_slice(b"tail");
        assert_eq!(out.to_vec(), want);
        assert!(
            out.segments
                .iter()
                .any(|s| matches!(s, Segment::Shared(b) if b.as_ptr() == body.as_ptr())),
            "the shared body is moved, not copied"
        );
        assert_eq!(out.segments.len(), 3, "head joins the copied run before it");
    }
}
