//! One transport connection as the session layer sees it: receive and transmit buffers,
//! frame decoding, heartbeats, and the handshake phase (a type chosen by the endpoint).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use super::config::Timers;
use super::error::{CloseReason, ProtocolError};
use super::frame::{Codec, Frame, SHARED_BODY_MIN};
use super::stats::ConnectionStats;
use super::types::ConnId;

/// Spare capacity a lent receive buffer has at least: one receive takes up to this much
/// when no frame needs more.
pub(crate) const RECV_CHUNK: usize = 64 * 1024;

/// GoAway codes (the wire's).
pub(crate) use hawser_wire::dsp::GoAwayCode;

/// The GoAway code for closing a connection after `e`.
pub(crate) fn go_away_code(e: &ProtocolError) -> GoAwayCode {
    match e {
        ProtocolError::Frame(e) => GoAwayCode::from(*e),
        ProtocolError::Version => GoAwayCode::VERSION_MISMATCH,
        ProtocolError::AuthFailed | ProtocolError::AuthMechanism => GoAwayCode::AUTH_FAILED,
        ProtocolError::Dead | ProtocolError::HandshakeTimeout => GoAwayCode::IDLE_TIMEOUT,
        ProtocolError::TooLarge => GoAwayCode::TOO_LARGE,
        _ => GoAwayCode::PROTOCOL_ERROR,
    }
}

/// A received frame after [`Link::triage`].
#[derive(Debug)]
pub(crate) enum Received {
    /// A heartbeat, answered or recorded: nothing left to do.
    Handled,
    /// The peer said GoAway: the connection is gone, for this reason.
    GoneAway(CloseReason),
    /// The endpoint's to handle.
    Frame(Frame),
}

/// A connection, in handshake phase `P`.
#[derive(Debug)]
pub(crate) struct Link<P> {
    pub(crate) id: ConnId,
    pub(crate) phase: P,
    /// The peer's IP address, when the driver told it (accepted connections).
    pub(crate) peer: Option<std::net::IpAddr>,
    codec: Codec,
    /// Digest and compression agreed in the hello exchange; applied once the connection
    /// joins a nexus (handshake frames are always digested).
    agreed: (bool, bool),
    /// Request bytes sent on this connection and not yet answered: the trunking load.
    pub(crate) outstanding_bytes: u64,
    pub(crate) stats: ConnectionStats,
    /// Set once the connection is finished; what is left in `tx` is its last words.
    pub(crate) closing: Option<CloseReason>,
    rx: BytesMut,
    /// The capacity cut off `rx` while it is lent, so that a receive stops where
    /// [`Codec::receive_limit`] says; put back when the buffer returns.
    rx_rest: Option<BytesMut>,
    /// Encoded frames not yet handed to the driver, in order: runs of `tx_copied` and
    /// large bodies sent from where they lie.
    tx: VecDeque<TxPiece>,
    /// The copied bytes of `tx`'s `Copied` runs, front to back.
    tx_copied: BytesMut,
    /// Bytes in `tx`.
    tx_len: usize,
    opened: Instant,
    handshake_done: bool,
    last_rx: Instant,
    ping: Option<(u64, Instant)>,
    next_token: u64,
    timers: Timers,
}

impl<P> Link<P> {
    pub(crate) fn new(id: ConnId, phase: P, now: Instant, timers: Timers) -> Self {
        Link {
            id,
            phase,
            peer: None,
            // Handshake frames are always digested: a corrupted identity or nexus id must
            // be caught, not acted upon. The negotiated setting applies after the hello.
            codec: Codec::default(),
            agreed: (true, false),
            outstanding_bytes: 0,
            stats: ConnectionStats::default(),
            closing: None,
            rx: BytesMut::with_capacity(16 * 1024),
            rx_rest: None,
            tx: VecDeque::new(),
            tx_copied: BytesMut::with_capacity(16 * 1024),
            tx_len: 0,
            opened: now,
            handshake_done: false,
            last_rx: now,
            ping: None,
            next_token: 1,
            timers,
        }
    }

    /// Large request bodies are received with `body[offset..]` on a page boundary (see
    /// [`Codec::align_request_bodies_at`]).
    pub(crate) fn align_request_bodies_at(&mut self, offset: Option<usize>) {
        self.codec.align_request_bodies_at(offset);
    }

    /// Records what the hello exchange agreed.
    pub(crate) fn agree(&mut self, digest: bool, compress: bool) {
        self.agreed = (digest, compress);
    }

    /// The connection joined a nexus: negotiated options and payload limit apply.
    pub(crate) fn bound(&mut self, max_payload: u32) {
        self.codec.set_options(self.agreed.0, self.agreed.1);
        self.codec.set_max_payload(max_payload);
    }

    pub(crate) fn is_open(&self) -> bool {
        self.closing.is_none()
    }

    /// The handshake finished: the handshake timeout no longer applies.
    pub(crate) fn handshake_complete(&mut self) {
        self.handshake_done = true;
    }

    /// The connection is unbound again (its nexus was destroyed under it): it must
    /// create or bind within a fresh handshake timeout.
    pub(crate) fn restart_handshake(&mut self, now: Instant) {
        self.opened = now;
        self.handshake_done = false;
    }

    /// Queues a frame (dropped if the connection is closing).
    pub(crate) fn send(&mut self, f: &Frame) {
        self.send_with(f, true);
    }

    /// [`send`](Self::send), never compressing the frame's body.
    pub(crate) fn send_uncompressed(&mut self, f: &Frame) {
        self.send_with(f, false);
    }

    fn send_with(&mut self, f: &Frame, may_compress: bool) {
        if self.closing.is_some() {
            return;
        }
        let before = self.tx_copied.len();
        let shared = self.codec.encode(f, may_compress, &mut self.tx_copied);
        self.copied(self.tx_copied.len() - before);
        if let Some(shared) = shared {
            self.tx_len += shared.body.len();
            self.tx_copied.extend_from_slice(shared.trailer());
            let trailer_len = shared.trailer().len();
            self.tx.push_back(TxPiece::Shared(shared.body));
            self.copied(trailer_len);
        }
        self.stats.frames_out += 1;
    }

    /// Records `n` bytes just appended to `tx_copied`.
    fn copied(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.tx_len += n;
        match self.tx.back_mut() {
            Some(TxPiece::Copied(run)) => *run += n,
            _ => self.tx.push_back(TxPiece::Copied(n)),
        }
    }

    /// Bytes queued and not yet handed to the driver.
    pub(crate) fn queued(&self) -> usize {
        self.tx_len
    }

    /// Lends the receive buffer to a driver that receives straight into it (see
    /// [`Server::recv_buffer`](super::Server::recv_buffer)): at least [`RECV_CHUNK`] of
    /// spare capacity, and room for the rest of an incomplete frame (the decoder reserved
    /// it, page-aligned where asked). `None` once the connection is closing.
    pub(crate) fn lend_rx(&mut self) -> Option<BytesMut> {
        if self.closing.is_some() {
            return None;
        }
        let mut rx = std::mem::take(&mut self.rx);
        let limit = self.codec.receive_limit(rx.len());
        let want = limit.map_or(RECV_CHUNK, |l| l.min(RECV_CHUNK));
        if rx.capacity() - rx.len() < want {
            rx.reserve(want);
        }
        if let Some(limit) = limit
            && rx.capacity() - rx.len() > limit
        {
            // The rest of the storage comes back in `return_rx`, in O(1): it is the same
            // allocation, cut at the end of what the kernel may fill.
            self.rx_rest = Some(rx.split_off(rx.len() + limit));
        }
        Some(rx)
    }

    /// Takes back the buffer from [`lend_rx`](Self::lend_rx) with `filled` new bytes.
    pub(crate) fn return_rx(&mut self, now: Instant, rx: BytesMut, filled: usize) {
        debug_assert!(self.rx.is_empty(), "receive buffer lent twice");
        self.rx = rx;
        if let Some(rest) = self.rx_rest.take() {
            self.rx.unsplit(rest);
        }
        if filled > 0 {
            self.last_rx = now;
            self.stats.bytes_in += filled as u64;
        }
    }

    /// Appends received bytes.
    pub(crate) fn receive(&mut self, now: Instant, bytes: &[u8]) {
        if self.closing.is_some() {
            return;
        }
        self.rx.extend_from_slice(bytes);
        self.last_rx = now;
        self.stats.bytes_in += bytes.len() as u64;
    }

    /// The next complete frame, if any.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if self.closing.is_some() {
            return Ok(None);
        }
        let f = self.codec.decode(&mut self.rx)?;
        if f.is_some() {
            self.stats.frames_in += 1;
        }
        Ok(f)
    }

    /// Does with a received frame what every endpoint does alike: answers pings, records
    /// pong round trips, and turns the peer's GoAway into the reason the connection is
    /// gone. Anything else is handed back for the endpoint to handle.
    pub(crate) fn triage(&mut self, now: Instant, frame: Frame) -> Received {
        if self.handle_heartbeat(now, &frame) {
            return Received::Handled;
        }
        match frame {
            Frame::GoAway { code, reason } => Received::GoneAway(CloseReason::PeerGoAway {
                code: code.0,
                reason,
            }),
            frame => Received::Frame(frame),
        }
    }

    /// Answers pings, records pong round trips; false if the frame is not a heartbeat.
    fn handle_heartbeat(&mut self, now: Instant, f: &Frame) -> bool {
        match f {
            Frame::Ping { token } => {
                self.send(&Frame::Pong { token: *token });
                true
            }
            Frame::Pong { token } => {
                if let Some((expected, sent)) = self.ping
                    && expected == *token
                {
                    self.stats.record_rtt(now.saturating_duration_since(sent));
                    self.ping = None;
                }
                true
            }
            _ => false,
        }
    }

    /// Moves queued bytes into `out`; returns how many.
    pub(crate) fn poll_transmit(&mut self, out: &mut impl TransmitSink) -> usize {
        let n = self.tx_len;
        while let Some(piece) = self.tx.pop_front() {
            match piece {
                TxPiece::Shared(body) => out.put_shared(body),
                // A long run (compressed bodies, many frames) is handed over without a
                // copy; short ones are copied into the sink, which then allocates nothing.
                TxPiece::Copied(run) if run >= SHARED_BODY_MIN => {
                    out.put_shared(self.tx_copied.split_to(run).freeze());
                }
                TxPiece::Copied(run) => {
                    out.put_slice(&self.tx_copied[..run]);
                    self.tx_copied.advance(run);
                }
            }
        }
        self.tx_len = 0;
        self.stats.bytes_out += n as u64;
        n
    }

    /// Closes the connection, sending a GoAway first when `code` is given.
    pub(crate) fn close(&mut self, reason: CloseReason, code: Option<GoAwayCode>) {
        if self.closing.is_some() {
            return;
        }
        if let Some(code) = code {
            let text = match &reason {
                CloseReason::Protocol(e) => e.to_string(),
                CloseReason::Refused(s) => s.clone(),
                _ => String::new(),
            };
            self.send(&Frame::GoAway { code, reason: text });
        }
        self.closing = Some(reason);
        // Nothing more will be read; release the receive buffer now.
        self.rx = BytesMut::new();
    }

    /// When [`on_timeout`](Self::on_timeout) must run next.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.closing.is_some() {
            return None;
        }
        let dead = self.last_rx + self.timers.dead_after;
        let mut next = dead;
        match self.ping {
            None => next = next.min(self.last_rx + self.timers.heartbeat_interval),
            Some((_, sent)) => next = next.min(sent + self.timers.heartbeat_interval),
        }
        if !self.handshake_done {
            next = next.min(self.opened + self.timers.handshake_timeout);
        }
        Some(next)
    }

    /// Sends a ping when the peer has been quiet; fails when it has been quiet too long.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Result<(), ProtocolError> {
        if self.closing.is_some() {
            return Ok(());
        }
        if !self.handshake_done && now >= self.opened + self.timers.handshake_timeout {
            return Err(ProtocolError::HandshakeTimeout);
        }
        if now >= self.last_rx + self.timers.dead_after {
            return Err(ProtocolError::Dead);
        }
        let due = match self.ping {
            None => now >= self.last_rx + self.timers.heartbeat_interval,
            // Re-probe each interval while unanswered; the dead timer decides.
            Some((_, sent)) => now >= sent + self.timers.heartbeat_interval,
        };
        if due {
            let token = self.next_token;
            self.next_token += 1;
            self.ping = Some((token, now));
            self.send(&Frame::Ping { token });
        }
        Ok(())
    }

    /// Bytes held in buffers (for the simulator's memory bound).
    pub(crate) fn buffered(&self) -> usize {
        self.rx.len() + self.tx_len
    }
}

/// A piece of a connection's queued output.
#[derive(Debug)]
enum TxPiece {
    /// This many bytes from the front of the copied buffer.
    Copied(usize),
    /// A body sent from where it lies.
    Shared(Bytes),
}

/// Where an endpoint's output goes ([`Client::poll_transmit`](super::Client::poll_transmit),
/// [`Server::poll_transmit`](super::Server::poll_transmit)): copied bytes and shared
/// ones, in order. A driver's transmit queue keeps shared bytes as they are and sends them
/// with a vectored write, so a large body is never copied in user space; `BytesMut`
/// simply appends everything (tests, simulators).
pub trait TransmitSink {
    /// Appends a copy of `bytes`.
    fn put_slice(&mut self, bytes: &[u8]);
    /// Appends `bytes`, keeping them rather than copying them where the sink can.
    fn put_shared(&mut self, bytes: Bytes);
}

impl TransmitSink for BytesMut {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_shared(&mut self, bytes: Bytes) {
        if self.is_empty() {
            // Takes the allocation over when nothing else shares it: no copy.
            match bytes.try_into_mut() {
                Ok(owned) => *self = owned,
                Err(bytes) => self.extend_from_slice(&bytes),
            }
        } else {
            self.extend_from_slice(&bytes);
        }
    }
}
