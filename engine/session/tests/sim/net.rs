//! The simulated network: one server and any number of clients, connected by pipes with
//! a latency each, in virtual time. A seeded generator drives everything random (connect
//! delays and failures, latencies, jitter, corrupted bytes, nonces), so one seed is one
//! history; with [`Faults::none`] the network is a plain lockstep one whose tests decide
//! when connections die.
//!
//! Every event either endpoint emits is logged ([`Net::client_events`],
//! [`Net::server_events`]) after the network has done its part: connecting on
//! [`Event::WantConnection`], flushing and closing a pipe's end on
//! [`Event::ConnectionClosed`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hawser_session::{
    CallError, ClientConfig, ClientEndpoint, Event, IncomingRequest, LinkId, RequestId,
    ServerConfig, ServerEndpoint,
};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The simulation's one source of randomness.
#[derive(Debug, Clone)]
pub(crate) struct SimRng(Xoshiro256PlusPlus);

impl SimRng {
    pub(crate) fn new(seed: u64) -> Self {
        SimRng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A duration from `lo` to `hi` milliseconds, to the microsecond.
    pub(crate) fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_micros(1000 * lo + self.below(1000 * (hi - lo) + 1))
    }

    pub(crate) fn nonce(&mut self) -> [u8; 16] {
        let mut n = [0; 16];
        self.0.fill_bytes(&mut n);
        n
    }
}

/// How unreliable the network is.
#[derive(Debug, Clone)]
pub(crate) struct Faults {
    /// How long a connection takes to open, in milliseconds (`None`: at once, within the
    /// pump that asked for it).
    pub(crate) connect_delay_ms: Option<(u64, u64)>,
    /// Chance a connection cannot be opened, while faults are on.
    pub(crate) connect_fail: f64,
    /// One-way latency of each new pipe, in milliseconds.
    pub(crate) latency_ms: (u64, u64),
    /// Extra delay of each chunk, in milliseconds (TCP still keeps a pipe's order).
    pub(crate) jitter_ms: (u64, u64),
    /// Chance a transmitted chunk has one bit flipped, while faults are on.
    pub(crate) corrupt_chunk: f64,
    /// Faults stop after this much virtual time, so that a run can converge.
    pub(crate) faults_for: Duration,
}

impl Faults {
    /// A reliable network: connections open at once, 1 ms latency, nothing corrupted.
    pub(crate) fn none() -> Faults {
        Faults {
            connect_delay_ms: None,
            connect_fail: 0.0,
            latency_ms: (1, 1),
            jitter_ms: (0, 0),
            corrupt_chunk: 0.0,
            faults_for: Duration::ZERO,
        }
    }
}

/// One transport connection between client `client` and the server: bytes (or `None`,
/// end of stream) travelling each way, each with the instant it arrives.
#[derive(Debug)]
pub(crate) struct Pipe {
    pub(crate) client: usize,
    pub(crate) client_conn: LinkId,
    pub(crate) server_conn: LinkId,
    pub(crate) to_server: VecDeque<(Instant, Option<Vec<u8>>)>,
    pub(crate) to_client: VecDeque<(Instant, Option<Vec<u8>>)>,
    pub(crate) client_open: bool,
    pub(crate) server_open: bool,
    /// Black-holed: bytes vanish and nobody is told.
    pub(crate) silent: bool,
    /// One-way delay.
    pub(crate) latency: Duration,
}

impl Pipe {
    fn finished(&self) -> bool {
        !self.client_open
            && !self.server_open
            && self.to_client.is_empty()
            && self.to_server.is_empty()
    }
}

/// What the network itself counted.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NetStats {
    pub(crate) connections: u64,
    pub(crate) corruptions: u64,
}

/// A server, its clients, and the pipes between them.
pub(crate) struct Net {
    pub(crate) base: Instant,
    pub(crate) now: Instant,
    pub(crate) server: ServerEndpoint,
    pub(crate) clients: Vec<ClientEndpoint>,
    /// Whether each client gets the connections it asks for.
    pub(crate) connectable: Vec<bool>,
    pub(crate) pipes: Vec<Pipe>,
    /// Every event of each client, in order.
    pub(crate) client_events: Vec<Vec<Event>>,
    /// Every event of the server, in order.
    pub(crate) server_events: Vec<Event>,
    pub(crate) rng: SimRng,
    pub(crate) faults: Faults,
    pub(crate) stats: NetStats,
    /// Connections asked for and not opened yet: when, and for which client.
    connects: BTreeMap<(Instant, u64), usize>,
    connect_seq: u64,
    /// Print what happens (the `SIM_TRACE` environment variable).
    trace: bool,
    buf: BytesMut,
    /// Every byte that crossed the network, when a test asks for it (what an
    /// eavesdropper sees).
    pub(crate) captured: Option<Vec<u8>>,
}

impl Net {
    /// A reliable network around a server configured so.
    pub(crate) fn new(server: ServerConfig) -> Net {
        Net::with_faults(server, SimRng::new(42), Faults::none())
    }

    /// A network whose every random choice (the server's seed included) comes from `rng`.
    pub(crate) fn with_faults(server: ServerConfig, mut rng: SimRng, faults: Faults) -> Net {
        let base = Instant::now();
        Net {
            base,
            now: base,
            server: ServerEndpoint::new(server, rng.next()),
            clients: Vec::new(),
            connectable: Vec::new(),
            pipes: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            rng,
            faults,
            stats: NetStats::default(),
            connects: BTreeMap::new(),
            connect_seq: 0,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            buf: BytesMut::with_capacity(64 * 1024),
            captured: None,
        }
    }

    pub(crate) fn add_client(&mut self, config: ClientConfig) -> usize {
        self.clients.push(ClientEndpoint::new(config, self.now));
        self.connectable.push(true);
        self.client_events.push(Vec::new());
        self.clients.len() - 1
    }

    /// Whether faults (corruption, failed connects) are still on.
    pub(crate) fn faults_on(&self) -> bool {
        self.now < self.base + self.faults.faults_for
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.now.duration_since(self.base)
    }

    pub(crate) fn trace(&self, who: &str, what: &dyn std::fmt::Debug) {
        if self.trace {
            eprintln!("{:>10.3?} {who} {what:?}", self.elapsed());
        }
    }

    /// Handles the endpoints' events and moves transmitted bytes into pipes until nothing
    /// changes.
    pub(crate) fn pump(&mut self) {
        loop {
            let mut progressed = false;
            for c in 0..self.clients.len() {
                while let Some(e) = self.clients[c].poll_event() {
                    progressed = true;
                    self.trace("client", &e);
                    match &e {
                        Event::WantConnection => self.want_connection(c),
                        Event::ConnectionClosed { conn, .. } => self.close_client_side(c, *conn),
                        _ => {}
                    }
                    self.client_events[c].push(e);
                }
            }
            while let Some(e) = self.server.poll_event() {
                progressed = true;
                self.trace("server", &e);
                if let Event::ConnectionClosed { conn, .. } = &e {
                    self.close_server_side(*conn);
                }
                self.server_events.push(e);
            }
            for i in 0..self.pipes.len() {
                progressed |= self.transmit(i);
            }
            self.pipes.retain(|p| !p.finished());
            if !progressed {
                break;
            }
        }
    }

    fn want_connection(&mut self, c: usize) {
        match self.faults.connect_delay_ms {
            None => self.connect(c),
            Some((lo, hi)) => {
                let at = self.now + self.rng.ms(lo, hi);
                self.connect_seq += 1;
                self.connects.insert((at, self.connect_seq), c);
            }
        }
    }

    /// Opens the connection client `c` asked for, or tells it that it could not.
    fn connect(&mut self, c: usize) {
        if !self.connectable[c] || (self.faults_on() && self.rng.chance(self.faults.connect_fail)) {
            self.clients[c].connect_failed(self.now);
            return;
        }
        self.stats.connections += 1;
        let client_conn = self.clients[c].add_connection(self.now, self.rng.nonce());
        let server_conn = self.server.accept(self.now, self.rng.nonce());
        let (lo, hi) = self.faults.latency_ms;
        let latency = self.rng.ms(lo, hi);
        self.trace(
            "net",
            &format_args!("pipe client {c} {client_conn:?} <-> server {server_conn:?}"),
        );
        self.pipes.push(Pipe {
            client: c,
            client_conn,
            server_conn,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            client_open: true,
            server_open: true,
            silent: false,
            latency,
        });
    }

    /// Client `c` is done with `conn`: its last bytes go out, then the end of stream.
    fn close_client_side(&mut self, c: usize, conn: LinkId) {
        let open = |p: &Pipe| p.client == c && p.client_conn == conn && p.client_open;
        if let Some(i) = self.pipes.iter().position(open) {
            self.transmit(i);
            let now = self.now;
            let p = &mut self.pipes[i];
            p.client_open = false;
            if !p.silent {
                let at = (now + p.latency).max(p.to_server.back().map_or(now, |(t, _)| *t));
                p.to_server.push_back((at, None));
            }
        }
    }

    /// The server is done with `conn`: its last bytes go out, then the end of stream.
    fn close_server_side(&mut self, conn: LinkId) {
        let open = |p: &Pipe| p.server_conn == conn && p.server_open;
        if let Some(i) = self.pipes.iter().position(open) {
            self.transmit(i);
            let now = self.now;
            let p = &mut self.pipes[i];
            p.server_open = false;
            if !p.silent {
                let at = (now + p.latency).max(p.to_client.back().map_or(now, |(t, _)| *t));
                p.to_client.push_back((at, None));
            }
        }
    }

    /// Moves what both ends of pipe `i` have to send into it.
    fn transmit(&mut self, i: usize) -> bool {
        let mut any = false;
        for to_server in [true, false] {
            self.buf.clear();
            let p = &self.pipes[i];
            let n = match (to_server, p.client_open, p.server_open) {
                (true, true, _) => {
                    self.clients[p.client].poll_transmit(self.now, p.client_conn, &mut self.buf)
                }
                (false, _, true) => {
                    self.server
                        .poll_transmit(self.now, p.server_conn, &mut self.buf)
                }
                _ => 0,
            };
            if n == 0 {
                continue;
            }
            any = true;
            let mut bytes = self.buf.to_vec();
            if let Some(captured) = &mut self.captured {
                captured.extend_from_slice(&bytes);
            }
            if self.faults_on() && self.rng.chance(self.faults.corrupt_chunk) {
                let at = self.rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << self.rng.below(8);
                self.stats.corruptions += 1;
            }
            let (lo, hi) = self.faults.jitter_ms;
            let jitter = self.rng.ms(lo, hi);
            let now = self.now;
            let p = &mut self.pipes[i];
            if p.silent {
                continue;
            }
            let q = if to_server {
                &mut p.to_server
            } else {
                &mut p.to_client
            };
            // TCP keeps order within a connection; different connections reorder freely.
            let at = (now + p.latency + jitter).max(q.back().map_or(now, |(t, _)| *t));
            q.push_back((at, Some(bytes)));
        }
        any
    }

    /// Hands every endpoint what has arrived by now.
    fn deliver(&mut self) {
        for i in 0..self.pipes.len() {
            while let Some((t, _)) = self.pipes[i].to_server.front() {
                if *t > self.now {
                    break;
                }
                let (_, item) = self.pipes[i].to_server.pop_front().expect("a front");
                let p = &mut self.pipes[i];
                if !p.server_open {
                    continue;
                }
                match item {
                    Some(b) => self.server.handle_input(self.now, p.server_conn, &b),
                    None => {
                        p.server_open = false;
                        self.server.connection_lost(self.now, p.server_conn);
                    }
                }
            }
            while let Some((t, _)) = self.pipes[i].to_client.front() {
                if *t > self.now {
                    break;
                }
                let (_, item) = self.pipes[i].to_client.pop_front().expect("a front");
                let p = &mut self.pipes[i];
                if !p.client_open {
                    continue;
                }
                let client = &mut self.clients[p.client];
                match item {
                    Some(b) => client.handle_input(self.now, p.client_conn, &b),
                    None => {
                        p.client_open = false;
                        client.connection_lost(self.now, p.client_conn);
                    }
                }
            }
        }
    }

    /// When something next happens on the network or in an endpoint.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let arrivals = self
            .pipes
            .iter()
            .flat_map(|p| p.to_server.front().into_iter().chain(p.to_client.front()))
            .map(|(t, _)| *t);
        self.clients
            .iter()
            .filter_map(ClientEndpoint::poll_timeout)
            .chain(self.server.poll_timeout())
            .chain(arrivals)
            .chain(self.connects.keys().next().map(|(t, _)| *t))
            .min()
    }

    /// Moves virtual time to `to` (never backwards) and runs what is due then: arrivals,
    /// endpoint timers, connections that open.
    pub(crate) fn advance(&mut self, to: Instant) {
        self.now = self.now.max(to);
        self.deliver();
        for c in &mut self.clients {
            if c.poll_timeout().is_some_and(|t| t <= self.now) {
                c.handle_timeout(self.now);
            }
        }
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        while let Some(entry) = self.connects.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let c = entry.remove();
            self.connect(c);
        }
    }

    /// Runs the network for `d` of virtual time.
    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            match self.next_deadline() {
                Some(t) if t <= end => self.advance(t),
                _ => break,
            }
        }
        self.now = end;
        self.deliver();
        self.pump();
    }

    /// Pipe `i` fails: silently (a black hole: in-flight bytes vanish, nobody is told,
    /// heartbeats notice), or as a reset each side learns of after the pipe's latency.
    pub(crate) fn cut(&mut self, i: usize, silent: bool) {
        let (now, p) = (self.now, &mut self.pipes[i]);
        p.to_client.clear();
        p.to_server.clear();
        if silent {
            p.silent = true;
        } else {
            p.to_client.push_back((now + p.latency, None));
            p.to_server.push_back((now + p.latency, None));
        }
    }

    /// Resets every connection of client `c`, both sides told at once.
    pub(crate) fn reset_client(&mut self, c: usize) {
        for p in self.pipes.iter_mut().filter(|p| p.client == c) {
            p.to_client.clear();
            p.to_server.clear();
            if p.client_open {
                p.client_open = false;
                self.clients[c].connection_lost(self.now, p.client_conn);
            }
            if p.server_open {
                p.server_open = false;
                self.server.connection_lost(self.now, p.server_conn);
            }
        }
        self.pump();
    }

    /// The requests delivered to the server's handler since the last call.
    pub(crate) fn take_server_requests(&mut self) -> Vec<(IncomingRequest, Bytes)> {
        let mut out = Vec::new();
        self.server_events.retain(|e| match e {
            Event::Request { request, body } => {
                out.push((*request, body.clone()));
                false
            }
            _ => true,
        });
        out
    }

    /// Every completion client `c` has seen.
    pub(crate) fn completions(&self, c: usize) -> Vec<(RequestId, Result<Bytes, CallError>)> {
        self.client_events[c]
            .iter()
            .filter_map(|e| match e {
                Event::Completed {
                    request, result, ..
                } => Some((*request, result.clone())),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn server_saw(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.server_events.iter().any(pred)
    }
}
