//! The shards protocol of one direct connection on the server.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use hawser_runtime::direct::{
    CloseReason, ConnId, PeerCredentials, Protocol, Received, Transmit, wake_connection,
};
use hawser_runtime::job_log::{JobFigures, JobLog, JobOutcome};
use hawser_runtime::{NexusId, Peer};
use hawser_wire::dmp::{Command, Preamble, ResponseCode};

use super::heartbeat::{Beat, Heartbeat, NULL_MESSAGE};
use super::{put_response, scan};
use crate::broker::{Attached, Broker, EntityId, MessageRef, Refusal};

/// Receive buffer of the dialog and of a consumer's connection (which sends only null
/// messages).
const SMALL_RECEIVE: usize = 512;
/// Largest receive of a publisher's connection: each receive is routed as a whole, so
/// this is also the most a publisher overshoots a feed's high-water mark by. A
/// publisher's receives start small and double while they come back full.
const PUBLISH_RECEIVE: usize = 256 << 10;
/// A publisher's first receive.
const PUBLISH_RECEIVE_MIN: usize = 4 << 10;
/// Stop taking from the feed once this much waits for the consumer's socket.
const SEND_BUDGET: usize = 1 << 20;

#[derive(Debug)]
enum Phase {
    Preamble,
    Lease,
    Put { sink: EntityId, name: Box<[u8]> },
    Get { feed: EntityId },
    Closing,
}

/// One direct connection: the dialog, then a publisher's or the consumer's messages.
pub struct DirectConn {
    broker: Rc<RefCell<Broker>>,
    conn: Option<ConnId>,
    peer: Peer,
    phase: Phase,
    rx: BytesMut,
    /// Responses and null messages to send, before any message data.
    pending: Vec<u8>,
    handshake_deadline: Option<Instant>,
    heartbeat: Option<Heartbeat>,
    /// What the lease attached it to, and for which application.
    attached: Option<(Attached, u128)>,
    /// The log of a publisher's or consumer's connection, what it moved, and why it was
    /// refused after it attached (if it was).
    job: Option<(JobLog, JobFigures, Option<String>)>,
    /// Feeds a paused publisher waits on.
    blocked_on: Vec<EntityId>,
    /// Paused until all queues together drain under the broker's budget.
    over_budget: bool,
    /// The size of a publisher's next receive.
    receive_size: usize,
    /// Counted among the broker's handshakes.
    in_handshake: bool,
    /// The whole size of the incomplete message at the end of `rx` (0: none known).
    next_len: usize,
    /// The receive buffer's capacity charged to the broker's budget.
    charged: usize,
    messages: Vec<MessageRef>,
    wakes: Vec<ConnId>,
}

impl std::fmt::Debug for DirectConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectConn")
            .field("conn", &self.conn)
            .field("phase", &self.phase)
            .finish()
    }
}

impl DirectConn {
    /// A connection of `broker`'s server, before its first bytes.
    pub fn new(broker: Rc<RefCell<Broker>>) -> Self {
        DirectConn {
            broker,
            conn: None,
            peer: Peer::Unknown,
            phase: Phase::Preamble,
            rx: BytesMut::new(),
            pending: Vec::new(),
            handshake_deadline: None,
            heartbeat: None,
            attached: None,
            job: None,
            blocked_on: Vec::new(),
            over_budget: false,
            receive_size: PUBLISH_RECEIVE_MIN,
            in_handshake: false,
            next_len: 0,
            charged: 0,
            messages: Vec::new(),
            wakes: Vec::new(),
        }
    }

    /// Whether it reads a feed (for tests).
    pub fn is_consumer(&self) -> bool {
        matches!(self.phase, Phase::Get { .. })
    }

    /// Whether it waits for a feed (or all queues) to drain.
    pub fn is_paused(&self) -> bool {
        !self.blocked_on.is_empty() || self.over_budget
    }

    fn end_handshake(&mut self) {
        if std::mem::take(&mut self.in_handshake) {
            self.broker.borrow_mut().end_handshake();
        }
    }

    fn refuse(&mut self, refusal: &Refusal) {
        tracing::debug!(peer = ?self.peer, %refusal, "direct connection refused");
        if let Some((_, _, why)) = &mut self.job {
            why.get_or_insert_with(|| refusal.to_string());
        }
        put_response(&mut self.pending, refusal.code, &refusal.text);
        self.close();
    }

    fn close(&mut self) {
        self.end_handshake();
        self.phase = Phase::Closing;
        self.heartbeat = None;
        self.handshake_deadline = None;
    }

    /// Runs the dialog and the messages over what `rx` holds.
    fn process(&mut self, now: Instant) {
        loop {
            match &self.phase {
                Phase::Preamble => {
                    let Ok(Some((preamble, n))) = Preamble::decode(&self.rx) else {
                        if self.rx.len() >= Preamble::LEN {
                            self.close();
                        }
                        return;
                    };
                    self.rx.advance(n);
                    if !preamble.is_dmp() {
                        let text = format!(
                            "protocol {}.{} version {}.{} is not served here: DMP/0.1 is \
                             (AMQP 10.1.0.1)",
                            preamble.protocol_id, preamble.instance, preamble.major, preamble.minor
                        );
                        self.refuse(&Refusal::new(ResponseCode::NotImplemented, text));
                        return;
                    }
                    put_response(&mut self.pending, ResponseCode::Ok, "DMP/0.1");
                    self.phase = Phase::Lease;
                }
                Phase::Lease => {
                    let Ok(Some((command, n))) = Command::decode(&self.rx) else {
                        return;
                    };
                    let lease = command.text.as_bytes().to_vec();
                    self.rx.advance(n);
                    self.redeem(now, &lease);
                    if matches!(self.phase, Phase::Closing) {
                        return;
                    }
                }
                Phase::Put { .. } => return self.publish(),
                Phase::Get { .. } => return self.consumer_input(),
                Phase::Closing => {
                    self.rx.clear();
                    return;
                }
            }
        }
    }

    fn redeem(&mut self, now: Instant, lease: &[u8]) {
        if lease.is_empty() {
            return self.refuse(&Refusal::new(
                ResponseCode::SyntaxError,
                "the command must be the lease granted by Direct.Put or Direct.Get",
            ));
        }
        let Some(conn) = self.conn else {
            return self.close();
        };
        self.end_handshake();
        let redeemed = self.broker.borrow_mut().redeem(now, lease, self.peer, conn);
        let redeemed = match redeemed {
            Ok(ok) => ok,
            Err(refusal) => {
                tracing::warn!(peer = %self.peer, %refusal, "direct connection refused");
                return self.refuse(&refusal);
            }
        };
        let (attached, app) = (redeemed.attached, redeemed.app);
        let kind = match attached {
            Attached::Put { .. } => "dmp-publish",
            Attached::Get { .. } => "dmp-consume",
        };
        let log = JobLog::start_for(
            kind,
            NexusId(app),
            &redeemed.identity,
            redeemed.anonymous,
            &self.peer,
        );
        self.job = Some((log, JobFigures::default(), None));
        let (heartbeat, dead_after) = {
            let broker = self.broker.borrow();
            (broker.config().heartbeat, broker.config().dead_after)
        };
        let (text, phase) = match &attached {
            Attached::Put { sink, name } => (
                format!("Ready to write to \"{name}\"{}", heartbeat_note(heartbeat)),
                Phase::Put {
                    sink: *sink,
                    name: name.as_bytes().into(),
                },
            ),
            Attached::Get { feed, name } => (
                format!("Ready to read from \"{name}\"{}", heartbeat_note(heartbeat)),
                Phase::Get { feed: *feed },
            ),
        };
        put_response(&mut self.pending, ResponseCode::Ok, &text);
        self.phase = phase;
        self.attached = Some((attached, app));
        self.handshake_deadline = None;
        self.heartbeat = Some(Heartbeat::new(now, heartbeat, dead_after));
    }

    fn publish(&mut self) {
        let Phase::Put { sink, name } = &self.phase else {
            return;
        };
        let sink = *sink;
        let max = self.broker.borrow().config().max_message_size;
        self.messages.clear();
        let scanned = match scan(&self.rx, max, name, &mut self.messages) {
            Ok(s) => s,
            Err(refusal) => return self.refuse(&refusal),
        };
        if scanned.consumed > 0 {
            if let Some((_, figures, _)) = &mut self.job {
                figures.bytes += scanned.consumed as u64;
                figures.messages += self.messages.len() as u64;
            }
            // The allocation the chunk's slices keep alive: the chunk and what follows it.
            let backing = scanned.consumed + self.rx.capacity() - self.rx.len();
            let chunk = self.rx.split_to(scanned.consumed).freeze();
            let mut broker = self.broker.borrow_mut();
            let published =
                broker.publish(sink, &chunk, backing, &self.messages, &mut self.blocked_on);
            if !published {
                drop(broker);
                return self.refuse(&Refusal::new(
                    ResponseCode::NotFound,
                    "the sink was deleted",
                ));
            }
            if let (false, Some(conn)) = (self.blocked_on.is_empty(), self.conn) {
                broker.wait_for(conn, &self.blocked_on);
            }
        }
        self.next_len = scanned.next_len.unwrap_or(0);
    }

    /// Sizes the receive buffer for `want` more bytes (and the whole of an incomplete
    /// message): exactly, so that the kernel never writes more than asked, and charged to
    /// the broker's budget.
    fn size_receive(&mut self, want: usize) {
        let want = want.max(self.next_len.saturating_sub(self.rx.len()));
        let spare = self.rx.capacity() - self.rx.len();
        let oversized = self.rx.is_empty() && self.rx.capacity() > 2 * want;
        if spare < want / 4 || oversized {
            let mut fresh = BytesMut::with_capacity(self.rx.len() + want);
            fresh.extend_from_slice(&self.rx);
            self.rx = fresh;
        }
        if matches!(self.phase, Phase::Put { .. }) {
            let capacity = self.rx.capacity();
            let more = capacity as i64 - self.charged as i64;
            if more != 0 {
                self.broker.borrow_mut().charge_receive(more);
                self.charged = capacity;
            }
        }
    }

    /// A consumer sends only null messages; anything else ends its connection.
    fn consumer_input(&mut self) {
        while self.rx.len() >= 4 {
            if self.rx[..4] != NULL_MESSAGE {
                tracing::debug!(peer = ?self.peer, "consumer sent data on a feed connection");
                return self.close();
            }
            self.rx.advance(4);
        }
    }

    /// Hands the broker's wake-ups to the shard.
    fn flush_wakes(&mut self) {
        self.broker.borrow_mut().take_wakes(&mut self.wakes);
        for conn in self.wakes.drain(..) {
            if Some(conn) != self.conn {
                wake_connection(conn);
            }
        }
    }
}

/// What the `Ready` response says of the heartbeat, for clients to keep to it.
fn heartbeat_note(interval: std::time::Duration) -> String {
    format!("; heartbeat {} ms", interval.as_millis())
}

impl Protocol for DirectConn {
    fn on_open(&mut self, now: Instant, conn: ConnId) {
        self.conn = Some(conn);
        let timeout = self.broker.borrow().config().handshake_timeout;
        self.handshake_deadline = Some(now + timeout);
        self.in_handshake = self.broker.borrow_mut().begin_handshake();
        if !self.in_handshake {
            let most = self.broker.borrow().config().limits.handshakes;
            self.refuse(&Refusal::new(
                ResponseCode::NotAllowed,
                format!("{most} direct connections are in their handshake already: try again"),
            ));
        }
    }

    fn on_peer_address(&mut self, peer: SocketAddr) {
        self.peer = Peer::Inet(peer.ip());
    }

    fn on_peer_credentials(&mut self, creds: PeerCredentials) {
        self.peer = Peer::Local(hawser_runtime::LocalCredentials {
            pid: creds.pid,
            uid: creds.uid,
            gid: creds.gid,
        });
    }

    fn receives_into_own_buffer(&self) -> bool {
        true
    }

    fn recv_buffer(&mut self, now: Instant) -> Option<BytesMut> {
        let want = match self.phase {
            Phase::Closing => return None,
            Phase::Put { .. } => {
                let conn = self.conn?;
                let was_paused = self.is_paused();
                if !self.blocked_on.is_empty() {
                    if !self.broker.borrow().unblocked(&self.blocked_on) {
                        return None;
                    }
                    self.blocked_on.clear();
                }
                self.over_budget = self.broker.borrow_mut().over_budget(conn);
                if self.over_budget {
                    return None;
                }
                if was_paused && let Some(hb) = &mut self.heartbeat {
                    // It could not hear its peer while paused.
                    hb.received(now);
                }
                self.receive_size
            }
            _ => SMALL_RECEIVE,
        };
        self.size_receive(want);
        Some(std::mem::take(&mut self.rx))
    }

    fn handle_received(&mut self, now: Instant, buf: BytesMut, filled: usize) {
        let offered = buf.capacity() - (buf.len() - filled);
        self.rx = buf;
        if filled == 0 {
            return;
        }
        if matches!(self.phase, Phase::Put { .. }) {
            // Receives that come back full ask for more room; small ones give it back.
            if filled >= offered / 4 * 3 {
                self.receive_size = (self.receive_size * 2).min(PUBLISH_RECEIVE);
            } else if filled < offered / 16 {
                self.receive_size = (self.receive_size / 2).max(PUBLISH_RECEIVE_MIN);
            }
        }
        if let Some(hb) = &mut self.heartbeat {
            hb.received(now);
        }
        self.process(now);
        self.flush_wakes();
    }

    fn handle_input(&mut self, _now: Instant, _input: Received<'_>) {
        debug_assert!(false, "direct connections receive into their own buffers");
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.close();
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) {
        if !self.pending.is_empty() {
            out.write(&self.pending);
            self.pending.clear();
            if let Some(hb) = &mut self.heartbeat {
                hb.sent(now);
            }
        }
        match self.phase {
            Phase::Get { feed } => {
                let Some(conn) = self.conn else { return };
                let budget = SEND_BUDGET.saturating_sub(out.queued());
                let mut bytes = 0u64;
                let taken = self.broker.borrow_mut().take_for(feed, conn, budget, |b| {
                    bytes += b.len() as u64;
                    out.write_bytes(b);
                });
                if let (Some((_, figures, _)), Some(messages)) = (&mut self.job, taken) {
                    figures.bytes += bytes;
                    figures.messages += messages;
                }
                match taken {
                    // Deleted, or disconnected as too slow.
                    None => self.close(),
                    Some(0) => {}
                    Some(_) => {
                        if let Some(hb) = &mut self.heartbeat {
                            hb.sent(now);
                        }
                    }
                }
            }
            Phase::Put { sink, .. } if self.broker.borrow().sink(sink).is_none() => {
                self.refuse(&Refusal::new(
                    ResponseCode::NotFound,
                    "the sink was deleted",
                ));
                out.write(&self.pending);
                self.pending.clear();
            }
            _ => {}
        }
        self.flush_wakes();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.handshake_deadline
            .or_else(|| self.heartbeat.as_ref().map(Heartbeat::deadline))
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            let text = match self.phase {
                Phase::Preamble => "no protocol header in time",
                _ => "no lease in time",
            };
            return self.refuse(&Refusal::new(ResponseCode::Invalid, text));
        }
        if self.is_paused()
            && let Some(hb) = &mut self.heartbeat
        {
            hb.received(now);
        }
        match self.heartbeat.as_ref().map(|hb| hb.poll(now)) {
            Some(Beat::Dead) => {
                tracing::debug!(peer = ?self.peer, "direct connection silent too long: closed");
                self.close();
            }
            Some(Beat::Send) => {
                self.pending.extend_from_slice(&NULL_MESSAGE);
                if let Some(hb) = &mut self.heartbeat {
                    hb.sent(now);
                }
            }
            _ => {}
        }
    }

    fn wants_close(&self) -> bool {
        matches!(self.phase, Phase::Closing)
    }

    fn on_close(&mut self, _now: Instant, _reason: &CloseReason) {
        self.close();
        if let Some((log, figures, refused)) = self.job.take() {
            match refused {
                None => log.end(JobOutcome::Ok, figures, None),
                Some(why) => log.end(JobOutcome::Failed, figures, Some(&why)),
            }
        }
        if self.charged > 0 {
            self.broker
                .borrow_mut()
                .charge_receive(-(std::mem::take(&mut self.charged) as i64));
        }
        if let (Some((attached, app)), Some(conn)) = (self.attached.take(), self.conn) {
            self.broker.borrow_mut().detach(conn, &attached, app);
            self.flush_wakes();
        }
    }
}
