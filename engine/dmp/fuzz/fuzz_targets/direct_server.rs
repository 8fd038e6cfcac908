//! The server side of DMP direct connections, without sockets: up to four
//! `hawser_dmp::direct::DirectConn`s on one `Broker` (a sink `s` bound to a feed `f`,
//! sometimes a second feed `g` nobody reads), driven the way a shard drives them (receives
//! into the protocol's own buffer, transmits, timers, end of stream, resets) in virtual
//! time, with the client side's bytes, its socket's pace and the wiring from the input.
//!
//! After every step:
//! - nothing panicked, and no timer stays due after `handle_timeout` (the shard would spin);
//! - every feed's queued bytes stay at most its high-water mark, plus one publish receive
//!   (256 KiB) per publisher, plus the largest message allowed (size field included);
//! - what each connection sent its client decodes with
//!   `StreamDecoder::new(Direction::ServerToClient)`: the two dialog responses, then for
//!   the consumer (`Ready to read`) whole messages and null messages only, for a publisher
//!   (`Ready to write`) null messages and at most one final refusal; nothing follows a
//!   refusal;
//! - a connection that sent a non-200 response is closed.
//!
//! Once the input is used up every connection still open is reset, and the broker must
//! count no direct connection and no consumer.
//!
//! `HAWSER_DMP_FUZZ_TRACE=1` prints each receive, and each run's connections and broker
//! figures (to see what an input does). The server reads an envelope only as far as
//! routing needs (size, exchange, routing key: `docs/PROTOCOL.md`, "DMP service"), so a
//! message the consumer receives may be malformed inside its size field: such a message
//! is skipped (consumers must not trust envelope contents), while the framing (size
//! fields) is always checked. `HAWSER_DMP_FUZZ_STRICT=1` fails on such a message instead.
//! One switch relaxes a check past a finding, so that a campaign can look for others:
//! - `HAWSER_DMP_FUZZ_RELAXED_BOUND=1`: the queue bound counts, per publisher, its largest
//!   receive (at least 256 KiB) plus one held-back partial message, instead of 256 KiB
//!   each plus one message in all (a publisher's receive buffer once offered more than
//!   256 KiB: `BytesMut::reserve` gave more than asked).
//!
//! # Input
//!
//! - Byte 0, the setup: bits 0–1 connections − 1; bits 2–3 the feeds' policy (block,
//!   drop-oldest, disconnect, block); bits 4–5 the binding's pattern (`#`, `k`, `a.*`,
//!   `*.y.#`); bit 6 a second feed `g` bound with `#` that nobody reads; bit 7 limits of
//!   two direct connections and two handshakes.
//! - One byte per connection: bits 0–2 how its stream starts (Put lease, Get lease, raw
//!   bytes, protocol header then raw bytes, an earlier connection's lease again; see
//!   [`Start`]); bits 3–4 where it connects from (bit 4 alone: the lease's host as an
//!   IPv4-mapped IPv6 address; bits 3 and 4: another host); bit 5: a Get lease is for `g`.
//! - Then operations, one selector byte each: bits 0–1 the connection (modulo their
//!   count), bits 2–5 the operation ([`OPS`]), followed by its operands (missing bytes
//!   read as zero). A connection opens (`on_open`) at its first operation other than
//!   `Advance` and `Wiring`.

#![no_main]

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hawser_dmp::broker::{Broker, Requester};
use hawser_dmp::direct::DirectConn;
use hawser_dmp::{DmpConfig, DmpLimits, FlowPolicy};
use hawser_runtime::Peer;
use hawser_runtime::direct::{CloseReason, ConnId, Protocol, Transmit};
use hawser_wire::dmp::wiring::EntityKind;
use hawser_wire::dmp::{
    Direction, DmpErrorKind, Envelope, Item, Message, Properties, Response, ShortStr, StreamDecoder,
};
use libfuzzer_sys::fuzz_target;

/// The feeds' high-water mark.
const HIGH_WATER: u64 = 64 << 10;
/// Their low-water mark.
const LOW_WATER: u64 = 16 << 10;
/// The largest size field a publisher may send.
const MAX_MESSAGE: u32 = 64 << 10;
/// What a publisher's receive buffer asks for (`PUBLISH_RECEIVE` in `direct/conn.rs`):
/// the most one publisher overshoots a feed's high-water mark by, per that file.
const PUBLISH_RECEIVE: u64 = 256 << 10;
/// Most bytes the `Messages` operations of one input may generate.
const GENERATED_BUDGET: usize = 8 << 20;

const PROTOCOL_HEADER: &[u8] = b"AMQP\x0a\x01\x00\x01";

/// The routing patterns the binding of `f` may have.
const PATTERNS: [&[u8]; 4] = [b"#", b"k", b"a.*", b"*.y.#"];
/// Routing keys of generated messages.
const KEYS: [&str; 4] = ["k", "a.b", "x.y.z", ""];
/// Exchanges of generated messages (`t` is not the connection's sink: refused).
const EXCHANGES: [&str; 4] = ["", "s", "", "t"];

/// The largest message allowed, size field included.
fn max_message() -> u64 {
    u64::from(MAX_MESSAGE) + 4
}

/// Whether the environment variable `name` is set (and not to `0`).
fn switch(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v != "0")
}

/// Malformed envelopes the consumer receives are skipped (unless
/// `HAWSER_DMP_FUZZ_STRICT=1`).
fn lenient() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !switch("HAWSER_DMP_FUZZ_STRICT"))
}

/// The queue bound counts actual receives (`HAWSER_DMP_FUZZ_RELAXED_BOUND=1`).
fn relaxed_bound() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| switch("HAWSER_DMP_FUZZ_RELAXED_BOUND"))
}

/// Whether to print each receive, and each run's connections and figures
/// (`HAWSER_DMP_FUZZ_TRACE=1`).
fn trace() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| switch("HAWSER_DMP_FUZZ_TRACE"))
}

/// How a connection's stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The protocol header and a Put lease for `s`.
    Put,
    /// The protocol header and a Get lease for `f` (or `g`).
    Get,
    /// Nothing: the input's bytes from the first.
    Raw,
    /// The protocol header, then the input's bytes (a lease of its own).
    Header,
    /// The protocol header and the lease of the latest connection before it that had
    /// one (a Put lease if none did).
    Replay,
}

const STARTS: [Start; 8] = [
    Start::Put,
    Start::Put,
    Start::Get,
    Start::Raw,
    Start::Header,
    Start::Replay,
    Start::Put,
    Start::Get,
];

/// Operations, by bits 2–5 of the selector byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `length` (255: a u16 follows), `bytes`: the client sends them, and the server
    /// receives what its receive buffer takes of everything unread.
    Data,
    /// `size`: the server receives up to `2^(size % 20) + size` bytes of what the client
    /// sent.
    Receive,
    /// `count, size, shape`: the client sends `count + 1` well-formed messages (key,
    /// exchange, properties and fill from `shape`; at most 8 MiB per input), not
    /// received yet.
    Messages,
    /// `amount`: virtual time passes.
    Advance,
    /// The client stops or starts reading its socket.
    Stall,
    /// `amount`: the client reads `(amount + 1) × 4 KiB` of a stalled socket.
    Drain,
    /// The client shuts its sending side (end of stream).
    Eof,
    /// `what`: the application deletes the sink or the feed, its nexus ends, it declares
    /// and binds them again, or it unbinds.
    Wiring,
    /// The socket fails: the shard closes the connection.
    Reset,
}

const OPS: [Op; 16] = [
    Op::Data,
    Op::Data,
    Op::Data,
    Op::Data,
    Op::Data,
    Op::Receive,
    Op::Receive,
    Op::Messages,
    Op::Messages,
    Op::Advance,
    Op::Advance,
    Op::Stall,
    Op::Drain,
    Op::Eof,
    Op::Wiring,
    Op::Reset,
];

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// What the server sent one connection, as far as checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Before the verdict on the lease.
    Dialog,
    /// `200 OK Ready to write ...`.
    Publisher,
    /// `200 OK Ready to read ...`.
    Consumer,
    /// After a refusal: nothing more may come.
    Refused,
}

/// One connection at the server, and its client's side of the socket.
struct Conn {
    index: usize,
    proto: DirectConn,
    peer: IpAddr,
    opened: bool,
    closed: bool,
    /// The client shut its side: no more receives.
    eof: bool,
    /// What the client sent; the server read `read` bytes of it.
    inbound: Vec<u8>,
    read: usize,
    /// The protocol's receive buffer while the shard holds it (a receive is armed).
    armed: Option<BytesMut>,
    /// The shard's send queue.
    tx: Transmit,
    /// The client does not read its socket.
    stalled: bool,
    /// What reached the client, and how far it was checked.
    out: Vec<u8>,
    checked: usize,
    decoder: StreamDecoder,
    responses: usize,
    role: Role,
    /// Refused before any verdict of 200 (it never wrote to the sink).
    dialog_refused: bool,
    /// Largest receive handed to the protocol (for reports).
    largest_receive: usize,
}

impl Conn {
    fn pending(&self) -> &[u8] {
        &self.inbound[self.read..]
    }

    fn open(&mut self, now: Instant) {
        if self.opened {
            return;
        }
        self.opened = true;
        self.proto
            .on_peer_address(SocketAddr::new(self.peer, 40_000 + self.index as u16));
        self.proto
            .on_open(now, ConnId::detached(self.index as u32 + 1));
    }

    fn live(&self) -> bool {
        self.opened && !self.closed
    }

    /// A receive of up to `most` bytes completes, if one is armed and the client sent
    /// anything unread.
    fn receive(&mut self, now: Instant, most: usize) {
        if !self.live() || self.eof || self.pending().is_empty() {
            return;
        }
        let Some(mut buf) = self.armed.take() else {
            return;
        };
        let room = buf.capacity() - buf.len();
        let n = most.min(room).min(self.pending().len());
        if n == 0 {
            self.armed = Some(buf);
            return;
        }
        buf.extend_from_slice(&self.inbound[self.read..self.read + n]);
        self.read += n;
        if self.read == self.inbound.len() {
            self.inbound.clear();
            self.read = 0;
        }
        self.largest_receive = self.largest_receive.max(n);
        if trace() {
            eprintln!("conn {} receives {n} bytes (room {room})", self.index);
        }
        self.proto.handle_received(now, buf, n);
    }

    /// The client shuts its sending side.
    fn eof(&mut self, now: Instant) {
        if !self.live() || self.eof {
            return;
        }
        self.eof = true;
        if let Some(buf) = self.armed.take() {
            self.proto.handle_received(now, buf, 0);
        }
        self.proto.handle_eof(now);
    }

    /// The socket fails.
    fn reset(&mut self, now: Instant) {
        if !self.live() {
            return;
        }
        self.closed = true;
        self.armed = None;
        let reason = CloseReason::Error(std::io::ErrorKind::ConnectionReset.into());
        self.proto.on_close(now, &reason);
    }

    /// Up to `most` queued bytes reach the client.
    fn send(&mut self, most: usize) {
        if self.tx.is_empty() {
            return;
        }
        let queued = self.tx.to_vec();
        let n = most.min(queued.len());
        self.out.extend_from_slice(&queued[..n]);
        self.tx.clear();
        self.tx.write(&queued[n..]);
    }

    /// What the shard does after an event: due timers, a transmit, the socket's send,
    /// the close the protocol asks for, and arming the next receive.
    fn service(&mut self, now: Instant) {
        if !self.live() {
            return;
        }
        if self.proto.poll_timeout().is_some_and(|t| t <= now) {
            self.proto.handle_timeout(now);
            assert!(
                self.proto.wants_close() || self.proto.poll_timeout().is_none_or(|t| t > now),
                "conn {}: its timer is still due after handle_timeout: the shard would spin",
                self.index
            );
        }
        self.proto.poll_transmit(now, &mut self.tx);
        let closing = self.proto.wants_close();
        if !self.stalled || closing {
            // A closing connection's queue goes out before the close.
            self.send(usize::MAX);
        }
        if closing {
            self.closed = true;
            self.armed = None;
            self.proto.on_close(now, &CloseReason::Finished);
            return;
        }
        if self.armed.is_none() && !self.eof {
            // As the shard: no spare capacity means "do not read now".
            self.armed = self
                .proto
                .recv_buffer(now)
                .filter(|b| b.capacity() > b.len());
        }
    }

    /// Checks what reached the client since the last check.
    fn check_output(&mut self) {
        let id = self.index;
        loop {
            let rest = &self.out[self.checked..];
            if rest.is_empty() {
                break;
            }
            match self.role {
                Role::Dialog | Role::Consumer | Role::Refused => match self.decoder.decode(rest) {
                    Ok(None) => break,
                    Ok(Some((item, n))) => {
                        match item {
                            Item::Response(r) => {
                                assert_ne!(
                                    self.role,
                                    Role::Consumer,
                                    "conn {id}: a response after the consumer's Ready"
                                );
                                self.responses += 1;
                                let explanation = r.explanation().unwrap_or_default();
                                if !r.code().is_success() {
                                    self.dialog_refused = self.role == Role::Dialog;
                                    self.role = Role::Refused;
                                } else if self.responses == 2 {
                                    self.role = if explanation.starts_with(b"Ready to write") {
                                        Role::Publisher
                                    } else if explanation.starts_with(b"Ready to read") {
                                        Role::Consumer
                                    } else {
                                        panic!("conn {id}: a verdict that is neither: {r:?}")
                                    };
                                }
                            }
                            Item::Message(_) => {
                                assert_eq!(self.role, Role::Consumer, "conn {id}: a message");
                            }
                            other => panic!("conn {id}: a client item from the server: {other:?}"),
                        }
                        self.checked += n;
                    }
                    Err(e) => {
                        if self.role == Role::Consumer && lenient() && inside_envelope(e.kind) {
                            let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                            let len = 4 + size as usize;
                            if size <= MAX_MESSAGE && rest.len() >= len {
                                self.checked += len;
                                continue;
                            }
                        }
                        panic!(
                            "conn {id} ({:?}): what the server sent does not decode: {e}; \
                             the bytes from there: {:02x?}",
                            self.role,
                            &rest[..rest.len().min(64)]
                        );
                    }
                },
                Role::Publisher => {
                    // Null messages, then perhaps one refusal.
                    if rest[0] == 0 {
                        if rest.len() < 4 {
                            break;
                        }
                        assert_eq!(&rest[..4], &[0; 4], "conn {id}: not a null message");
                        self.checked += 4;
                        continue;
                    }
                    match Response::decode(rest) {
                        Ok(None) => break,
                        Ok(Some((r, n))) => {
                            assert!(
                                !r.code().is_success(),
                                "conn {id}: a success response after Ready: {r:?}"
                            );
                            self.role = Role::Refused;
                            // The decoder is past the dialog: make it expect no more.
                            self.decoder = refused_decoder();
                            self.checked += n;
                        }
                        Err(e) => panic!(
                            "conn {id}: a publisher got neither a null message nor a \
                             response: {e}: {:02x?}",
                            &rest[..rest.len().min(64)]
                        ),
                    }
                }
            }
        }
        if self.role == Role::Refused {
            assert!(self.closed, "conn {id}: refused (non-200) but not closed");
        }
    }
}

/// A server-to-client decoder that has seen a refusal: any further byte is an error.
fn refused_decoder() -> StreamDecoder {
    let mut d = StreamDecoder::new(Direction::ServerToClient);
    let mut refusal = Vec::new();
    Response::new(hawser_wire::dmp::ResponseCode::Invalid, None)
        .expect("fits")
        .encode(&mut refusal);
    d.decode(&refusal).expect("a refusal decodes");
    d
}

/// Errors of an envelope's inside, its size field being within bounds.
fn inside_envelope(kind: DmpErrorKind) -> bool {
    matches!(
        kind,
        DmpErrorKind::FieldPastEnd
            | DmpErrorKind::TrailingBytes(_)
            | DmpErrorKind::PropertyContinuation
            | DmpErrorKind::ReservedPropertyFlag
            | DmpErrorKind::ReservedOptionBits(_)
    )
}

fn hello(lease: &str) -> Vec<u8> {
    let mut v = PROTOCOL_HEADER.to_vec();
    v.push(lease.len() as u8);
    v.extend_from_slice(lease.as_bytes());
    v
}

/// `count` well-formed messages, their body size from `size` and the rest from `shape`.
fn messages(out: &mut Vec<u8>, count: usize, size: u8, shape: u8, budget: &mut usize) {
    let body_len = match size >> 6 {
        0 => usize::from(size & 63),
        1 => usize::from(size & 63) * 64,
        2 => usize::from(size & 63) * 1024,
        // Around the largest size allowed (size field = 9 + body without properties).
        _ => MAX_MESSAGE as usize - 9 - 16 + usize::from(size & 31),
    };
    let body = vec![shape; body_len];
    let properties = if shape & 0x10 != 0 {
        Properties {
            content_type: ShortStr::text("text/plain"),
            priority: Some(shape & 7),
            headers: Some(&b"\x01a"[..]),
            ..Properties::default()
        }
    } else {
        Properties::default()
    };
    let envelope = Envelope {
        exchange: ShortStr::text(EXCHANGES[usize::from(shape >> 2) & 3]).expect("short"),
        routing_key: ShortStr::text(KEYS[usize::from(shape) & 3]).expect("short"),
        properties,
        body: &body,
        ..Envelope::default()
    };
    let mut one = Vec::new();
    Message::Envelope(envelope)
        .encode(&mut one)
        .expect("encodes");
    for _ in 0..count {
        if *budget < one.len() {
            return;
        }
        *budget -= one.len();
        out.extend_from_slice(&one);
    }
}

fn duration(b: u8) -> Duration {
    let n = u64::from(b & 63);
    match b >> 6 {
        0 => Duration::from_millis(n),
        1 => Duration::from_millis(n * 100),
        2 => Duration::from_secs(n),
        _ => Duration::from_secs(n * 10),
    }
}

struct World {
    broker: Rc<RefCell<Broker>>,
    who: Requester,
    policy: FlowPolicy,
    pattern: &'static [u8],
    second_feed: bool,
    conns: Vec<Conn>,
}

impl World {
    fn declare(&self) {
        let mut b = self.broker.borrow_mut();
        let who = &self.who;
        let _ = b.declare_sink(who, b"s", false);
        let _ = b.declare_feed(who, b"f", false, self.policy, HIGH_WATER, LOW_WATER);
        let _ = b.bind(who, b"f", b"s", self.pattern);
        if self.second_feed {
            let _ = b.declare_feed(who, b"g", false, self.policy, HIGH_WATER, LOW_WATER);
            let _ = b.bind(who, b"g", b"s", b"#");
        }
    }

    fn service(&mut self, now: Instant) {
        for c in &mut self.conns {
            c.service(now);
        }
        for c in &mut self.conns {
            c.check_output();
        }
        self.check_queues("after the transmits");
    }

    fn check_queues(&self, when: &str) {
        // Connections that may have written to the sink (closed since or not): all that
        // opened, but for the consumer and those refused in the dialog (what the server
        // sent may still wait in a stalled socket, so the client may not know yet).
        let publishers = self
            .conns
            .iter()
            .filter(|c| c.opened && c.role != Role::Consumer && !c.dialog_refused);
        let bound = if relaxed_bound() {
            // Each publisher's last receive, whatever its size, plus the partial message
            // it held back: what `block` must still bound.
            HIGH_WATER
                + publishers
                    .map(|c| (c.largest_receive as u64).max(PUBLISH_RECEIVE) + max_message())
                    .sum::<u64>()
        } else {
            HIGH_WATER + publishers.count() as u64 * PUBLISH_RECEIVE + max_message()
        };
        for feed in &self.broker.borrow().stats().feeds {
            assert!(
                feed.queued_bytes <= bound,
                "{when}: feed {:?} ({}) queues {} bytes > {bound} (high water {HIGH_WATER}); \
                 largest receives: {:?}, roles: {:?}",
                feed.name,
                feed.policy,
                feed.queued_bytes,
                self.conns
                    .iter()
                    .map(|c| c.largest_receive)
                    .collect::<Vec<_>>(),
                self.conns.iter().map(|c| c.role).collect::<Vec<_>>()
            );
        }
    }
}

fn run(data: &[u8]) {
    let mut input = Input(data);
    let setup = input.byte();
    let n = usize::from(setup & 3) + 1;
    let policy = match (setup >> 2) & 3 {
        1 => FlowPolicy::DropOldest,
        2 => FlowPolicy::Disconnect,
        _ => FlowPolicy::Block,
    };
    let config = Arc::new(DmpConfig {
        lease_ttl: Duration::from_secs(30),
        handshake_timeout: Duration::from_secs(10),
        heartbeat: Duration::from_secs(5),
        dead_after: Duration::from_secs(15),
        high_water: HIGH_WATER,
        max_message_size: MAX_MESSAGE,
        // The least allowed, so that the budget of all queues pauses publishers too.
        max_queued_bytes: 1 << 20,
        limits: DmpLimits {
            direct_connections: if setup & 0x80 != 0 { 2 } else { 4096 },
            handshakes: if setup & 0x80 != 0 { 2 } else { 256 },
            ..DmpLimits::default()
        },
        ..DmpConfig::default()
    });
    let home = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut world = World {
        broker: Rc::new(RefCell::new(Broker::new(config).expect("an empty broker"))),
        who: Requester {
            app: 1,
            identity: "app".into(),
            anonymous: false,
            peer: Peer::Inet(home),
        },
        policy,
        pattern: PATTERNS[usize::from(setup >> 4) & 3],
        second_feed: setup & 0x40 != 0,
        conns: Vec::new(),
    };
    world.declare();

    let t0 = Instant::now();
    let mut now = t0;
    let mut last_lease: Option<String> = None;
    for index in 0..n {
        let mode = input.byte();
        let start = STARTS[usize::from(mode & 7)];
        let peer = match (mode >> 3) & 3 {
            0 | 1 => home,
            2 => IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
            _ => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        };
        let feed: &[u8] = if mode & 0x20 != 0 && world.second_feed {
            b"g"
        } else {
            b"f"
        };
        let mut b = world.broker.borrow_mut();
        let put = |b: &mut Broker| b.put(now, &world.who, b"s").expect("a Put lease");
        let inbound = match start {
            Start::Put => {
                let lease = put(&mut b);
                last_lease = Some(lease.clone());
                hello(&lease)
            }
            Start::Get => {
                let lease = b.get(now, &world.who, feed).expect("a Get lease");
                last_lease = Some(lease.clone());
                hello(&lease)
            }
            Start::Replay => hello(&last_lease.clone().unwrap_or_else(|| put(&mut b))),
            Start::Header => PROTOCOL_HEADER.to_vec(),
            Start::Raw => Vec::new(),
        };
        drop(b);
        world.conns.push(Conn {
            index,
            proto: DirectConn::new(Rc::clone(&world.broker)),
            peer,
            opened: false,
            closed: false,
            eof: false,
            inbound,
            read: 0,
            armed: None,
            tx: Transmit::new(),
            stalled: false,
            out: Vec::new(),
            checked: 0,
            decoder: StreamDecoder::new(Direction::ServerToClient)
                .with_max_message_size(MAX_MESSAGE),
            responses: 0,
            role: Role::Dialog,
            dialog_refused: false,
            largest_receive: 0,
        });
    }

    let mut budget = GENERATED_BUDGET;
    while !input.0.is_empty() {
        let selector = input.byte();
        let i = usize::from(selector & 3) % n;
        let op = OPS[usize::from(selector >> 2) & 15];
        if !world.conns[i].opened && op != Op::Wiring && op != Op::Advance {
            world.conns[i].open(now);
            world.conns[i].service(now);
        }
        let c = &mut world.conns[i];
        match op {
            Op::Data => {
                let mut len = usize::from(input.byte());
                if len == 255 {
                    len = usize::from(u16::from_be_bytes([input.byte(), input.byte()]));
                }
                let bytes = input.bytes(len);
                if c.live() && !c.eof {
                    c.inbound.extend_from_slice(bytes);
                }
                c.receive(now, usize::MAX);
            }
            Op::Receive => {
                let b = input.byte();
                let most = (1usize << (b % 20)) + usize::from(b);
                c.receive(now, most);
            }
            Op::Messages => {
                let count = usize::from(input.byte()) + 1;
                let size = input.byte();
                let shape = input.byte();
                if c.live() && !c.eof {
                    messages(&mut c.inbound, count, size, shape, &mut budget);
                }
            }
            Op::Advance => now += duration(input.byte()),
            Op::Stall => c.stalled = !c.stalled,
            Op::Drain => {
                let kib = usize::from(input.byte()) + 1;
                c.send(kib * 4096);
            }
            Op::Eof => c.eof(now),
            Op::Wiring => {
                let what = input.byte();
                let mut b = world.broker.borrow_mut();
                let who = &world.who;
                match what % 5 {
                    0 => drop(b.delete(who, EntityKind::Sink, b"s")),
                    1 => drop(b.delete(who, EntityKind::Feed, b"f")),
                    2 => b.nexus_ended(who.app),
                    3 => {
                        drop(b);
                        world.declare();
                    }
                    _ => drop(b.unbind(who, b"f", b"s", world.pattern)),
                }
            }
            Op::Reset => c.reset(now),
        }
        world.check_queues("after the operation");
        world.service(now);
    }

    if trace() {
        for c in &world.conns {
            eprintln!(
                "conn {}: {:?}, closed {}, largest receive {}, {} bytes to the client: {:?}",
                c.index,
                c.role,
                c.closed,
                c.largest_receive,
                c.out.len(),
                String::from_utf8_lossy(&c.out[..c.out.len().min(160)])
            );
        }
        eprintln!("{:?}", world.broker.borrow().stats());
    }
    for c in &mut world.conns {
        c.reset(now);
    }
    let stats = world.broker.borrow().stats();
    assert_eq!(
        stats.direct_connections, 0,
        "every connection closed, yet the broker counts some: {stats:?}"
    );
    for f in &stats.feeds {
        assert!(
            !f.consumer,
            "feed {:?} has a consumer after every connection closed",
            f.name
        );
    }
}

fuzz_target!(|data: &[u8]| run(data));
