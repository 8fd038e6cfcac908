//! One transport connection as the session layer sees it: receive and transmit buffers,
//! frame decoding, heartbeats, and where it is in its handshake (a phase type of the
//! endpoint's side).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use hawser_wire::dsp::{GoAway, Ping, Pong};

use super::budget::{BUDGETED_FRAME_MIN, ReceiveBudget, Reservation};
use super::codec::{Codec, Frame, SHARED_BODY_MIN};
use super::config::{StorageAdvice, Timers};
use super::error::{LinkCloseReason, ProtocolError};
use super::frames;
use super::stats::ConnectionStats;
use super::tls::{SecureChannel, TlsFailure};
use super::types::LinkId;

/// Spare capacity a lent receive buffer has at least, once traffic flows: one receive
/// takes up to this much when no frame needs more.
pub(crate) const RECV_CHUNK: usize = 64 * 1024;
/// What a quiet connection lends: handshake frames and heartbeats fit, and an idle
/// connection holds no more than this. Doubles up to [`RECV_CHUNK`] while receives fill
/// it.
const RECV_CHUNK_IDLE: usize = 4 * 1024;
/// The most a TLS connection lends for ciphertext in bulk: several records per receive.
const TLS_RECV_CHUNK: usize = 256 * 1024;
/// A transmit buffer larger than this is released once drained (after a burst of small
/// frames), so a connection that went quiet does not keep it.
const TX_KEEP: usize = 64 * 1024;

/// GoAway codes (the wire's).
pub(crate) use hawser_wire::dsp::GoAwayCode;

/// The GoAway code for closing a connection after `e`.
pub(crate) fn go_away_code(e: &ProtocolError) -> GoAwayCode {
    match e {
        ProtocolError::Frame(e) => GoAwayCode::from(*e),
        ProtocolError::Version => GoAwayCode::VERSION_MISMATCH,
        ProtocolError::AuthFailed | ProtocolError::AuthMechanism => GoAwayCode::AUTH_FAILED,
        ProtocolError::Dead
        | ProtocolError::HandshakeTimeout
        | ProtocolError::FrameTimeout { .. } => GoAwayCode::IDLE_TIMEOUT,
        ProtocolError::TooLarge => GoAwayCode::TOO_LARGE,
        _ => GoAwayCode::PROTOCOL_ERROR,
    }
}

/// A received frame after [`Link::triage`].
#[derive(Debug)]
pub(crate) enum Triaged {
    /// A heartbeat, answered or recorded: nothing left to do.
    Handled,
    /// The peer said GoAway: the connection is gone, for this reason.
    GoneAway(LinkCloseReason),
    /// The endpoint's to handle.
    Frame(Frame),
}

/// A connection, in handshake phase `P`.
#[derive(Debug)]
pub(crate) struct Link<P> {
    pub(crate) id: LinkId,
    /// Listed among the endpoint's changed links (see [`Links`](crate::links::Links)).
    pub(crate) changed: bool,
    pub(crate) phase: P,
    /// The peer's IP address, when the driver told it (accepted connections).
    pub(crate) peer: crate::peer::Peer,
    /// It authenticated with `ANONYMOUS`: its identity is claimed, not proven.
    pub(crate) anonymous: bool,
    codec: Codec,
    /// Digest and compression agreed in the hello exchange; applied once the connection
    /// joins a nexus (handshake frames are always digested).
    agreed: (bool, bool),
    /// Request bytes sent on this connection and not yet answered: the trunking load.
    pub(crate) outstanding_bytes: u64,
    pub(crate) stats: ConnectionStats,
    /// Set once the connection is finished; what is left in `tx` is its last words.
    pub(crate) closing: Option<LinkCloseReason>,
    rx: BytesMut,
    /// The capacity cut off `rx` while it is lent, so that a receive stops where
    /// [`Codec::receive_limit`] says; put back when the buffer returns.
    rx_rest: Option<BytesMut>,
    /// The least spare capacity the next lent buffer gets (adapts between
    /// `RECV_CHUNK_IDLE` and `RECV_CHUNK` to the traffic).
    recv_chunk: usize,
    /// The server-wide budget large frames are received under (servers only).
    budget: Option<Arc<ReceiveBudget>>,
    /// The budget reserved for the incomplete frame at the front of `rx`.
    reservation: Option<Reservation>,
    /// Since when the connection has not been read because the budget is full: its
    /// silence is then ours, not the peer's.
    waiting_since: Option<Instant>,
    /// In the endpoint's queue of connections waiting for the budget.
    pub(crate) budget_queued: bool,
    /// When the first byte of the incomplete frame at the front of `rx` arrived (or its
    /// reservation was granted): the frame must be complete within the frame timeout.
    frame_started: Option<Instant>,
    /// Encoded frames not yet handed to the driver, in order: runs of `tx_copied` and
    /// large bodies sent from where they lie.
    tx: VecDeque<TxPiece>,
    /// The copied bytes of `tx`'s `Copied` runs, front to back.
    tx_copied: BytesMut,
    /// Bytes in `tx`.
    tx_len: usize,
    /// The TLS layer, once the Hello exchange agreed to it: sent bytes pass through it
    /// from then on (our Hello went before, in clear text, from `clear_prefix`).
    secure: Option<Box<SecureChannel>>,
    /// Received bytes pass through `secure` (from the byte after the peer's Hello).
    tls_rx: bool,
    /// Our Hello, sent in clear text before the TLS layer's first bytes.
    clear_prefix: BytesMut,
    /// The ciphertext receive buffer lent to the driver while `tls_rx`.
    tls_in: BytesMut,
    /// Why the TLS layer failed; the connection closes with it.
    tls_failure: Option<TlsFailure>,
    opened: Instant,
    handshake_done: bool,
    last_rx: Instant,
    ping: Option<(u64, Instant)>,
    next_token: u64,
    timers: Timers,
}

impl<P> Link<P> {
    pub(crate) fn new(id: LinkId, phase: P, now: Instant, timers: Timers) -> Self {
        Link {
            id,
            changed: false,
            phase,
            peer: crate::peer::Peer::Unknown,
            anonymous: false,
            // Handshake frames are always digested: a corrupted identity or nexus id must
            // be caught, not acted upon. The negotiated setting applies after the hello.
            codec: Codec::default(),
            agreed: (true, false),
            outstanding_bytes: 0,
            stats: ConnectionStats::default(),
            closing: None,
            // Nothing is allocated until the first receive or send.
            rx: BytesMut::new(),
            rx_rest: None,
            recv_chunk: RECV_CHUNK_IDLE,
            budget: None,
            reservation: None,
            waiting_since: None,
            budget_queued: false,
            frame_started: None,
            tx: VecDeque::new(),
            tx_copied: BytesMut::new(),
            tx_len: 0,
            secure: None,
            tls_rx: false,
            clear_prefix: BytesMut::new(),
            tls_in: BytesMut::new(),
            tls_failure: None,
            opened: now,
            handshake_done: false,
            last_rx: now,
            ping: None,
            next_token: 1,
            timers,
        }
    }

    /// Large request bodies are received with `body[offset..]` on a page boundary (see
    /// [`Codec::align_request_bodies_at`]), into storage `advice` is told of.
    pub(crate) fn align_request_bodies_at(
        &mut self,
        offset: Option<usize>,
        advice: Option<StorageAdvice>,
    ) {
        self.codec.align_request_bodies_at(offset);
        self.codec.advise_storage_with(advice);
    }

    /// Receives large frames under `budget` (see [`ReceiveBudget`]).
    pub(crate) fn set_budget(&mut self, budget: Option<Arc<ReceiveBudget>>) {
        self.budget = budget;
    }

    /// Whether the connection is not read because the receive budget is full.
    pub(crate) fn waiting_for_budget(&self) -> bool {
        self.waiting_since.is_some()
    }

    /// The reservation the incomplete frame needs before it is read further, if any.
    pub(crate) fn budget_needed(&self) -> Option<usize> {
        if self.reservation.is_some() || self.budget.is_none() {
            return None;
        }
        self.codec
            .incomplete_len()
            .filter(|&len| len > BUDGETED_FRAME_MIN)
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

    /// Queues a frame whose body the caller compressed already (see
    /// [`CallOptions::precompressed`](crate::CallOptions)); false if this connection does
    /// not compress (the caller inflates it and sends it raw).
    pub(crate) fn send_compressed(&mut self, f: &Frame) -> bool {
        if self.closing.is_some() {
            return true;
        }
        let before = self.tx_copied.len();
        if !self.codec.encode_compressed(f, &mut self.tx_copied) {
            return false;
        }
        self.copied(self.tx_copied.len() - before);
        self.stats.frames_out += 1;
        true
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
    /// [`Endpoint::recv_buffer`](super::Endpoint::recv_buffer)): at least [`RECV_CHUNK`] of
    /// spare capacity, and room for the rest of an incomplete frame (the decoder reserved
    /// it, page-aligned where asked). `None` once the connection is closing.
    ///
    /// A large incomplete frame is read only under a reservation of the receive budget:
    /// when none can be had, `None`, and the connection waits (see
    /// [`waiting_for_budget`](Self::waiting_for_budget)).
    pub(crate) fn lend_rx(&mut self, now: Instant) -> Option<BytesMut> {
        if self.closing.is_some() {
            return None;
        }
        if let Some(need) = self.budget_needed() {
            let budget = self.budget.as_ref().expect("needed only with a budget");
            match budget.try_reserve(need) {
                Some(reservation) => {
                    self.reservation = Some(reservation);
                    if self.waiting_since.take().is_some() {
                        // The peer was not silent: we did not read.
                        self.last_rx = now;
                    }
                    self.frame_started = Some(now);
                }
                None => {
                    self.waiting_since.get_or_insert(now);
                    return None;
                }
            }
        }
        if self.tls_rx {
            // As much as the traffic takes (4 KiB when quiet, up to 256 KiB in bulk), and
            // what a burst made it hold given back once quiet.
            let want = self.recv_chunk;
            let mut ciphertext = std::mem::take(&mut self.tls_in);
            if ciphertext.capacity() > 2 * want {
                ciphertext = BytesMut::new();
            }
            if ciphertext.capacity() < want {
                ciphertext.reserve(want);
            }
            return Some(ciphertext);
        }
        self.codec.prepare_storage(&mut self.rx);
        let mut rx = std::mem::take(&mut self.rx);
        let limit = self.codec.receive_limit(rx.len());
        let want = limit.map_or(self.recv_chunk, |l| l.min(self.recv_chunk));
        if rx.is_empty() && rx.capacity() > 2 * RECV_CHUNK.max(want) {
            // A quiet connection gives back what a burst made it hold.
            rx = BytesMut::new();
        }
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
        if self.tls_rx {
            let mut ciphertext = rx;
            if filled > 0 {
                self.last_rx = now;
                self.stats.bytes_in += filled as u64;
                self.decrypt(&ciphertext);
            }
            ciphertext.clear();
            self.tls_in = ciphertext;
            self.adapt_recv_chunk(filled, TLS_RECV_CHUNK);
            return;
        }
        debug_assert!(self.rx.is_empty(), "receive buffer lent twice");
        self.rx = rx;
        if let Some(rest) = self.rx_rest.take() {
            self.rx.unsplit(rest);
        }
        if filled > 0 {
            self.last_rx = now;
            self.stats.bytes_in += filled as u64;
        }
        self.adapt_recv_chunk(filled, RECV_CHUNK);
    }

    /// Receives that fill what was lent ask for more next time (up to `most`); a trickle
    /// for less.
    fn adapt_recv_chunk(&mut self, filled: usize, most: usize) {
        if filled >= self.recv_chunk {
            self.recv_chunk = (self.recv_chunk * 2).min(most);
        } else if filled < self.recv_chunk / 8 {
            self.recv_chunk = (self.recv_chunk / 2).max(RECV_CHUNK_IDLE);
        }
    }

    /// Appends received bytes.
    pub(crate) fn receive(&mut self, now: Instant, bytes: &[u8]) {
        if self.closing.is_some() {
            return;
        }
        if self.tls_rx {
            self.decrypt(bytes);
        } else {
            self.rx.extend_from_slice(bytes);
        }
        self.last_rx = now;
        self.stats.bytes_in += bytes.len() as u64;
    }

    /// Passes received ciphertext through the TLS layer into the frame buffer.
    fn decrypt(&mut self, ciphertext: &[u8]) {
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        // The incomplete frame's storage at its full size first: growing it record by
        // record would move what arrived so far again and again.
        self.codec.prepare_storage(&mut self.rx);
        if let Err(failure) = secure.receive(ciphertext, &mut self.rx) {
            self.tls_failure.get_or_insert(failure);
        }
    }

    /// From now on, sent bytes pass through `channel` (what is queued, our Hello, goes
    /// first in clear text).
    pub(crate) fn start_tls_send(&mut self, channel: SecureChannel) {
        let mut clear = BytesMut::new();
        self.poll_transmit_clear(&mut clear);
        self.clear_prefix = clear;
        self.secure = Some(Box::new(channel));
    }

    /// From now on, received bytes pass through the TLS layer: what follows the peer's
    /// Hello in the buffer already is its first ciphertext.
    pub(crate) fn start_tls_receive(&mut self) {
        if self.secure.is_none() || self.tls_rx {
            return;
        }
        self.tls_rx = true;
        let rest = std::mem::take(&mut self.rx);
        if !rest.is_empty() {
            self.decrypt(&rest);
        }
    }

    /// Whether the connection runs TLS (its handshake may still be going on).
    pub(crate) fn is_tls(&self) -> bool {
        self.secure.is_some()
    }

    /// The next complete frame, if any, with the budget reserved for it (the endpoint
    /// keeps it while it holds the frame's body, or drops it).
    pub(crate) fn next_frame(
        &mut self,
    ) -> Result<Option<(Frame, Option<Reservation>)>, ProtocolError> {
        if self.closing.is_some() {
            return Ok(None);
        }
        if let Some(failure) = self.tls_failure.take() {
            return Err(ProtocolError::Tls(failure));
        }
        match self.codec.decode(&mut self.rx)? {
            Some(f) => {
                self.stats.frames_in += 1;
                self.frame_started = None;
                // At most one frame is incomplete at a time: a reservation is this one's.
                Ok(Some((f, self.reservation.take())))
            }
            None => {
                if !self.rx.is_empty() && self.frame_started.is_none() {
                    self.frame_started = Some(self.last_rx);
                }
                Ok(None)
            }
        }
    }

    /// Does with a received frame what every endpoint does alike: answers pings, records
    /// pong round trips, and turns the peer's GoAway into the reason the connection is
    /// gone. Anything else is handed back for the endpoint to handle.
    pub(crate) fn triage(&mut self, now: Instant, frame: Frame) -> Triaged {
        if self.handle_heartbeat(now, &frame) {
            return Triaged::Handled;
        }
        match frame {
            Frame::GoAway(GoAway { code, reason }) => {
                Triaged::GoneAway(LinkCloseReason::PeerGoAway {
                    code: code.0,
                    reason,
                })
            }
            frame => Triaged::Frame(frame),
        }
    }

    /// Answers pings, records pong round trips; false if the frame is not a heartbeat.
    fn handle_heartbeat(&mut self, now: Instant, f: &Frame) -> bool {
        match f {
            Frame::Ping(Ping { token }) => {
                self.send(&Frame::Pong(Pong { token: *token }));
                true
            }
            Frame::Pong(Pong { token }) => {
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

    /// Moves queued bytes into `out` (through the TLS layer when there is one); returns
    /// how many bytes `out` got.
    pub(crate) fn poll_transmit(&mut self, out: &mut impl TransmitSink) -> usize {
        let Some(mut secure) = self.secure.take() else {
            return self.poll_transmit_clear(out);
        };
        let mut n = self.clear_prefix.len();
        if n > 0 {
            out.put_slice(&self.clear_prefix);
            self.clear_prefix = BytesMut::new();
        }
        self.poll_transmit_clear(&mut Plaintext(&mut secure));
        n += secure.drain(out);
        self.secure = Some(secure);
        n
    }

    fn poll_transmit_clear(&mut self, out: &mut impl TransmitSink) -> usize {
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
        if self.tx_copied.is_empty() && self.tx_copied.capacity() > TX_KEEP {
            self.tx_copied = BytesMut::new();
        }
        n
    }

    /// Closes the connection, sending a GoAway first when `code` is given.
    pub(crate) fn close(&mut self, reason: LinkCloseReason, code: Option<GoAwayCode>) {
        if self.closing.is_some() {
            return;
        }
        if let Some(code) = code {
            let text = match &reason {
                LinkCloseReason::Protocol(e) => e.to_string(),
                LinkCloseReason::Refused(s) => s.clone(),
                _ => String::new(),
            };
            self.send(&frames::go_away(code, text));
        }
        self.closing = Some(reason);
        // Nothing more will be read; release the receive buffer and its budget now.
        self.rx = BytesMut::new();
        self.reservation = None;
        self.waiting_since = None;
        self.frame_started = None;
    }

    /// When [`on_timeout`](Self::on_timeout) must run next.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.closing.is_some() {
            return None;
        }
        let mut next = match self.ping {
            None => self.last_rx + self.timers.heartbeat_interval,
            Some((_, sent)) => sent + self.timers.heartbeat_interval,
        };
        if self.waiting_since.is_none() {
            next = next.min(self.last_rx + self.timers.dead_after);
            if let Some(started) = self.frame_started {
                next = next.min(started + self.timers.frame_timeout);
            }
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
        // Waiting for the receive budget, the connection is not read: neither its
        // silence nor a frame's slowness is the peer's doing.
        if self.waiting_since.is_none() {
            if now >= self.last_rx + self.timers.dead_after {
                return Err(ProtocolError::Dead);
            }
            if let Some(started) = self.frame_started
                && now >= started + self.timers.frame_timeout
            {
                return Err(ProtocolError::FrameTimeout {
                    len: self.codec.incomplete_len().unwrap_or(self.rx.len()),
                    received: self.rx.len(),
                    seconds: self.timers.frame_timeout.as_secs(),
                });
            }
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
            self.send(&Frame::Ping(Ping { token }));
        }
        Ok(())
    }

    /// The connection's TLS exporter for channel binding (RFC 9266), when it runs TLS.
    pub(crate) fn tls_exporter(&self) -> Option<[u8; 32]> {
        self.secure.as_ref().filter(|_| self.tls_rx)?.exporter()
    }

    /// The pin of the certificate the peer showed over TLS, if any.
    pub(crate) fn tls_peer_pin(&self) -> Option<[u8; 32]> {
        self.secure
            .as_ref()
            .filter(|_| self.tls_rx)?
            .peer_certificate_pin()
    }

    /// Bytes held in buffers (for the simulator's memory bound).
    pub(crate) fn buffered(&self) -> usize {
        self.rx.len() + self.tx_len + self.tls_in.len() + self.clear_prefix.len()
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

/// Frame bytes on their way into the TLS layer.
struct Plaintext<'a>(&'a mut SecureChannel);

impl TransmitSink for Plaintext<'_> {
    fn put_slice(&mut self, bytes: &[u8]) {
        self.0.send(bytes);
    }

    fn put_shared(&mut self, bytes: Bytes) {
        self.0.send(&bytes);
    }
}

/// Where an endpoint's output goes
/// ([`Endpoint::poll_transmit`](super::Endpoint::poll_transmit)): copied bytes and shared
/// ones, in order. A driver's transmit queue keeps shared bytes as they are and sends
/// them with a vectored write, so a large body is never copied in user space; `BytesMut`
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Found in review: a TLS connection kept a 256 KiB ciphertext buffer however quiet
    /// it was (a clear one lends 4 KiB when idle).
    #[test]
    fn an_idle_tls_link_lends_a_small_ciphertext_buffer() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let tls = crate::ServerTls::new(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let now = Instant::now();
        let mut secure: Link<()> = Link::new(LinkId(2), (), now, Timers::default());
        secure.start_tls_send(SecureChannel::server(&tls).unwrap());
        secure.start_tls_receive();
        for _ in 0..2 {
            let rx = secure.lend_rx(now).unwrap();
            assert!(rx.capacity() <= 2 * RECV_CHUNK_IDLE, "{}", rx.capacity());
            secure.return_rx(now, rx, 0);
        }
        // Receives that fill it grow it, to the bulk size at most.
        for _ in 0..10 {
            let mut rx = secure.lend_rx(now).unwrap();
            let n = rx.capacity();
            rx.resize(n, 0x17);
            secure.return_rx(now, rx, n);
        }
        let rx = secure.lend_rx(now);
        assert!(rx.is_none_or(|rx| rx.capacity() <= 2 * TLS_RECV_CHUNK));
    }
}
