//! The broker and its direct connections in virtual time, without sockets: seeded
//! random receive sizes, consumer stalls, silent peers. Every message arrives once and
//! in its publisher's order under `block`; the queue stays bounded; heartbeats beat and
//! dead peers are found at the configured time.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hawser_dmp::broker::{Broker, Requester};
use hawser_dmp::direct::DirectConn;
use hawser_dmp::{DmpConfig, FlowPolicy};
use hawser_runtime::Peer;
use hawser_runtime::direct::{CloseReason, ConnId, Protocol, Transmit};
use hawser_wire::dmp::{Direction, Item, Message, StreamDecoder};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

struct Rng64(Xoshiro256PlusPlus);

impl Rng64 {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }
}

/// One simulated socket end at the server: the protocol, the bytes the client sent
/// that the server has not read, and the bytes the server sent.
struct End {
    proto: DirectConn,
    inbound: Vec<u8>,
    outbound: Vec<u8>,
    closed: bool,
}

impl End {
    fn open(broker: &Rc<RefCell<Broker>>, id: u32, now: Instant, hello: &[u8]) -> Self {
        let mut proto = DirectConn::new(Rc::clone(broker));
        proto.on_open(now, ConnId::detached(id));
        End {
            proto,
            inbound: hello.to_vec(),
            outbound: Vec::new(),
            closed: false,
        }
    }

    /// The shard's receive: up to `most` bytes into the protocol's own buffer.
    fn receive(&mut self, now: Instant, most: usize) {
        if self.closed || self.inbound.is_empty() {
            return;
        }
        let Some(mut buf): Option<BytesMut> = self.proto.recv_buffer(now) else {
            return;
        };
        let room = buf.capacity() - buf.len();
        let n = most.min(room).min(self.inbound.len());
        buf.extend_from_slice(&self.inbound[..n]);
        self.inbound.drain(..n);
        self.proto.handle_received(now, buf, n);
    }

    fn transmit(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let mut out = Transmit::new();
        self.proto.poll_transmit(now, &mut out);
        self.outbound.extend_from_slice(&out.to_vec());
        if self.proto.wants_close() {
            self.closed = true;
            self.proto.on_close(now, &CloseReason::Finished);
        }
    }

    fn timers(&mut self, now: Instant) {
        if !self.closed && self.proto.poll_timeout().is_some_and(|t| t <= now) {
            self.proto.handle_timeout(now);
        }
    }
}

fn hello(lease: &str) -> Vec<u8> {
    let mut v = b"AMQP\x0a\x01\x00\x01".to_vec();
    v.push(lease.len() as u8);
    v.extend_from_slice(lease.as_bytes());
    v
}

fn envelope(publisher: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut body = vec![publisher; len.max(5)];
    body[1..5].copy_from_slice(&seq.to_be_bytes());
    let mut out = Vec::new();
    Message::Envelope(hawser_wire::dmp::Envelope {
        routing_key: hawser_wire::dmp::ShortStr::text("k").unwrap(),
        body: &body,
        ..Default::default()
    })
    .encode(&mut out)
    .unwrap();
    out
}

/// Decodes what a consumer received: `(publisher, seq)` of each message.
fn delivered(bytes: &[u8]) -> Vec<(u8, u32)> {
    let mut d = StreamDecoder::new(Direction::ServerToClient);
    let mut rest = bytes;
    let mut out = Vec::new();
    while let Some((item, n)) = d.decode(rest).unwrap() {
        if let Item::Message(Message::Envelope(e)) = item {
            out.push((
                e.body[0],
                u32::from_be_bytes(e.body[1..5].try_into().unwrap()),
            ));
        }
        rest = &rest[n..];
    }
    out
}

/// The one application of these tests, logged in as `app`.
fn app() -> Requester {
    Requester {
        app: 1,
        identity: "app".into(),
        anonymous: false,
        peer: Peer::Unknown,
    }
}

fn broker_with_feed(policy: FlowPolicy, high: u64) -> (Rc<RefCell<Broker>>, Requester) {
    let config = Arc::new(DmpConfig {
        heartbeat: Duration::from_secs(5),
        dead_after: Duration::from_secs(15),
        ..DmpConfig::default()
    });
    let broker = Rc::new(RefCell::new(Broker::new(config).unwrap()));
    let who = app();
    {
        let mut b = broker.borrow_mut();
        b.declare_sink(&who, b"s", false).unwrap();
        b.declare_feed(&who, b"f", false, policy, high, high / 4)
            .unwrap();
        b.bind(&who, b"f", b"s", b"#").unwrap();
    }
    (broker, who)
}

fn run_block(seed: u64) {
    let mut rng = Rng64(Xoshiro256PlusPlus::seed_from_u64(seed));
    let high = 32 << 10;
    let (broker, who) = broker_with_feed(FlowPolicy::Block, high);
    let t0 = Instant::now();
    let mut now = t0;
    let get = broker.borrow_mut().get(now, &who, b"f").unwrap();
    let mut consumer = End::open(&broker, 0, now, &hello(&get));
    let publishers = 3u8;
    let per = 3000u32;
    let mut ends: Vec<End> = (0..publishers)
        .map(|i| {
            let put = broker.borrow_mut().put(now, &who, b"s").unwrap();
            let mut e = End::open(&broker, u32::from(i) + 1, now, &hello(&put));
            for seq in 0..per {
                let len = 5 + rng.below(300) as usize;
                e.inbound.extend_from_slice(&envelope(i, seq, len));
                if rng.below(50) == 0 {
                    e.inbound.extend_from_slice(&[0, 0, 0, 0]);
                }
            }
            e
        })
        .collect();
    let mut max_queued = 0;
    let mut stalled_until = t0;
    for _ in 0..200_000 {
        now += Duration::from_micros(1 + rng.below(200));
        for e in &mut ends {
            let most = 1 + rng.below(70_000) as usize;
            e.receive(now, most);
            e.transmit(now);
            e.timers(now);
        }
        consumer.receive(now, 64);
        if now >= stalled_until {
            consumer.transmit(now);
            if rng.below(500) == 0 {
                stalled_until = now + Duration::from_millis(rng.below(3000));
            }
        }
        consumer.timers(now);
        let queued = broker.borrow().stats().feeds[0].queued_bytes;
        max_queued = max_queued.max(queued);
        if ends.iter().all(|e| e.inbound.is_empty()) && queued == 0 {
            break;
        }
    }
    let got = delivered(&consumer.outbound);
    let mut next = vec![0u32; usize::from(publishers)];
    for (p, seq) in &got {
        assert_eq!(
            *seq,
            next[usize::from(*p)],
            "seed {seed}: order of publisher {p}"
        );
        next[usize::from(*p)] += 1;
    }
    assert!(
        next.iter().all(|&n| n == per),
        "seed {seed}: every message arrived: {next:?}"
    );
    // The mark, plus at most one receive (256 KiB) per publisher.
    let bound = high + u64::from(publishers) * (256 << 10);
    assert!(
        max_queued <= bound,
        "seed {seed}: queued {max_queued} > {bound}"
    );
    assert!(
        !consumer.closed,
        "seed {seed}: the consumer stayed alive through stalls"
    );
    let counters = broker.borrow().stats().feeds[0].counters;
    assert!(
        counters.blocked > 0,
        "seed {seed}: the publishers were blocked: {counters:?}"
    );
    assert_eq!(counters.dropped, 0);
}

#[test]
fn block_delivers_everything_in_order_under_random_receives_and_stalls() {
    for seed in 0..6 {
        run_block(seed);
    }
}

#[test]
fn heartbeats_beat_on_idle_connections_and_silent_peers_are_dropped_on_time() {
    let (broker, who) = broker_with_feed(FlowPolicy::Block, 1 << 20);
    let t0 = Instant::now();
    let get = broker.borrow_mut().get(t0, &who, b"f").unwrap();
    let put = broker.borrow_mut().put(t0, &who, b"s").unwrap();
    let mut consumer = End::open(&broker, 1, t0, &hello(&get));
    let mut publisher = End::open(&broker, 2, t0, &hello(&put));
    for e in [&mut consumer, &mut publisher] {
        e.receive(t0, 1 << 20);
        e.transmit(t0);
    }
    let greeting_len = consumer.outbound.len();
    // Virtual seconds: the publisher sends a null message every 5 s (alive), the
    // consumer sends nothing (silent).
    let mut now = t0;
    let mut closed_at = None;
    for second in 1..=30u64 {
        now = t0 + Duration::from_secs(second);
        if second % 5 == 0 {
            publisher.inbound.extend_from_slice(&[0, 0, 0, 0]);
        }
        for e in [&mut consumer, &mut publisher] {
            e.receive(now, 1 << 20);
            e.timers(now);
            e.transmit(now);
        }
        if consumer.closed && closed_at.is_none() {
            closed_at = Some(second);
        }
    }
    assert_eq!(closed_at, Some(15), "dead after 15 s of silence");
    let beats = &consumer.outbound[greeting_len..];
    assert_eq!(beats, &[0u8; 8][..], "null messages at 5 s and 10 s");
    assert!(!publisher.closed, "a peer that heartbeats lives");
    assert!(
        publisher.outbound.len() > greeting_len,
        "the server heartbeats publishers too"
    );
    let _ = now;
    let stats = broker.borrow().stats();
    assert!(
        !stats.feeds[0].consumer,
        "the dead consumer let go of its feed"
    );
}

#[test]
fn the_handshake_times_out_in_virtual_time() {
    let (broker, _) = broker_with_feed(FlowPolicy::Block, 1 << 20);
    let t0 = Instant::now();
    let mut e = End::open(&broker, 1, t0, b"AMQP\x0a\x01\x00\x01");
    e.receive(t0, 100);
    e.transmit(t0);
    e.timers(t0 + Duration::from_secs(9));
    e.transmit(t0 + Duration::from_secs(9));
    assert!(!e.closed);
    e.timers(t0 + Duration::from_secs(10));
    e.transmit(t0 + Duration::from_secs(10));
    assert!(e.closed);
    assert!(e.outbound.ends_with(b"503 INVALID no lease in time"));
}

#[test]
fn all_queues_together_stay_within_the_budget() {
    let config = Arc::new(DmpConfig {
        max_queued_bytes: 1 << 20,
        ..DmpConfig::default()
    });
    let broker = Rc::new(RefCell::new(Broker::new(config).unwrap()));
    let who = app();
    {
        let mut b = broker.borrow_mut();
        b.declare_sink(&who, b"s", false).unwrap();
        for feed in [&b"a"[..], b"b", b"c"] {
            // Each feed alone would hold 8 MiB before blocking.
            b.declare_feed(&who, feed, false, FlowPolicy::Block, 8 << 20, 0)
                .unwrap();
            b.bind(&who, feed, b"s", b"#").unwrap();
        }
    }
    let t0 = Instant::now();
    let put = broker.borrow_mut().put(t0, &who, b"s").unwrap();
    let mut publisher = End::open(&broker, 1, t0, &hello(&put));
    for seq in 0..40_000 {
        publisher.inbound.extend_from_slice(&envelope(0, seq, 200));
    }
    let mut most = 0;
    for step in 0..10_000u64 {
        let now = t0 + Duration::from_micros(step * 10);
        publisher.receive(now, 1 << 20);
        publisher.transmit(now);
        most = most.max(broker.borrow().queued_bytes());
    }
    assert!(
        publisher.proto.is_paused(),
        "the publisher waits for the queues"
    );
    // The budget, plus one receive routed to each of the three feeds.
    assert!(most <= (1 << 20) + 3 * (256 << 10), "{most}");
    assert!(!publisher.inbound.is_empty(), "and is not read meanwhile");
}
