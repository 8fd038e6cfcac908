//! Shared-memory links through the public API: streams through small rings, ping-pong,
//! closes from either side, a peer process that dies, connects from a shard, credentials,
//! messages and deadlines, and the configuration's checks. (Handshake refusals and a
//! hostile peer are tested beside the code, in `src/shm/tests.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam::channel::{self, Receiver, Sender};
use hawser_shards::demo::{BulkSource, Echo};
use hawser_shards::{
    AppMessage, CloseReason, ConnId, PeerCredentials, Protocol, Received, ShardError, Shards,
    ShardsConfig, ShmOptions, Transmit,
};

const TIMEOUT: Duration = Duration::from_secs(60);

fn config(shards: usize, ring_bytes: usize) -> ShardsConfig {
    ShardsConfig {
        shards,
        buffers: 64,
        buffer_size: 16 * 1024,
        shm: ShmOptions {
            ring_bytes,
            ..ShmOptions::default()
        },
        ..ShardsConfig::default()
    }
}

/// A fresh socket path, unique per test and process.
fn socket_path(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("hawser-shm-{name}-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Removes the socket file when the test ends, however it ends.
struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Deterministic pseudo-random bytes.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    use rand_core::{Rng, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What a [`Checker`] saw.
#[derive(Debug)]
struct Checked {
    bytes: u64,
    /// The first offset where the stream differed from the expected one.
    first_difference: Option<u64>,
    eof: bool,
    /// xxh3 of everything received (a running hash, as a second opinion).
    digest: u64,
}

/// Checks an incoming stream against `body` repeated, as it arrives; reports on close.
/// Receives into its own buffer or through the pool, as asked.
struct Checker {
    body: Bytes,
    own_buffer: bool,
    buf: Option<BytesMut>,
    pos: u64,
    first_difference: Option<u64>,
    hasher: twox_hash::XxHash3_64,
    eof: bool,
    report: Option<Sender<Checked>>,
}

impl Checker {
    fn new(body: Bytes, own_buffer: bool, report: Sender<Checked>) -> Self {
        Checker {
            body,
            own_buffer,
            buf: Some(BytesMut::with_capacity(100_003)),
            pos: 0,
            first_difference: None,
            hasher: twox_hash::XxHash3_64::new(),
            eof: false,
            report: Some(report),
        }
    }

    fn check(&mut self, mut data: &[u8]) {
        std::hash::Hasher::write(&mut self.hasher, data);
        while !data.is_empty() {
            let at = (self.pos % self.body.len() as u64) as usize;
            let n = data.len().min(self.body.len() - at);
            if self.first_difference.is_none() && data[..n] != self.body[at..at + n] {
                self.first_difference = Some(self.pos);
            }
            self.pos += n as u64;
            data = &data[n..];
        }
    }
}

impl Protocol for Checker {
    fn receives_into_own_buffer(&self) -> bool {
        self.own_buffer
    }
    fn recv_buffer(&mut self, _now: Instant) -> Option<BytesMut> {
        self.buf.take()
    }
    fn handle_received(&mut self, _now: Instant, mut buf: BytesMut, filled: usize) {
        let start = buf.len() - filled;
        self.check(&buf[start..]);
        buf.clear();
        self.buf = Some(buf);
    }
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        self.check(&input);
    }
    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
    }
    fn poll_transmit(&mut self, _now: Instant, _out: &mut Transmit) {}
    fn wants_close(&self) -> bool {
        self.eof
    }
    fn on_close(&mut self, _now: Instant, _reason: &CloseReason) {
        if let Some(tx) = self.report.take() {
            let _ = tx.send(Checked {
                bytes: self.pos,
                first_difference: self.first_difference,
                eof: self.eof,
                digest: std::hash::Hasher::finish(&self.hasher),
            });
        }
    }
}

/// The xxh3 of `body` repeated up to `total` bytes.
fn expected_digest(body: &[u8], total: u64) -> u64 {
    let mut h = twox_hash::XxHash3_64::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(body.len() as u64) as usize;
        std::hash::Hasher::write(&mut h, &body[..n]);
        left -= n as u64;
    }
    std::hash::Hasher::finish(&h)
}

#[test]
fn a_large_stream_crosses_a_64k_ring_intact_in_both_directions() {
    // 256 MiB each way; a debug build moves (and checks) a quarter of it.
    let total: u64 = if cfg!(debug_assertions) {
        64 << 20
    } else {
        256 << 20
    };
    let shards = Shards::start(config(2, 64 << 10)).unwrap();
    let path = socket_path("large");
    let _cleanup = Cleanup(path.clone());
    // An odd body length so the stream's repeats fall anywhere in the ring.
    let up = Bytes::from(pattern(1, (1 << 20) + 13));
    let down = Bytes::from(pattern(2, (1 << 20) - 7));
    let (server_tx, server_rx) = channel::unbounded();
    let (client_tx, client_rx) = channel::unbounded();
    // Upstream: client source → server checker (own buffer). Downstream: server source
    // → client checker (pool buffers).
    let listen_up = up.clone();
    shards
        .listen_shm(0, &path, move |_| {
            Checker::new(listen_up.clone(), true, server_tx.clone())
        })
        .unwrap();
    shards
        .connect_shm(1, &path, BulkSource::new(up.clone(), total))
        .unwrap();
    let path_down = socket_path("large-down");
    let _cleanup_down = Cleanup(path_down.clone());
    let down_source = down.clone();
    shards
        .listen_shm(1, &path_down, move |_| {
            BulkSource::new(down_source.clone(), total)
        })
        .unwrap();
    shards
        .connect_shm(0, &path_down, Checker::new(down.clone(), false, client_tx))
        .unwrap();
    let started = Instant::now();
    for (name, rx, body) in [("up", server_rx, &up), ("down", client_rx, &down)] {
        let got = rx.recv_timeout(TIMEOUT).expect("a checker's report");
        assert_eq!(got.bytes, total, "{name}: bytes");
        assert_eq!(got.first_difference, None, "{name}: the stream differs");
        assert!(got.eof, "{name}: the end of stream came");
        assert_eq!(got.digest, expected_digest(body, total), "{name}: digest");
    }
    eprintln!(
        "{} MiB each way through 64 KiB rings in {:?}",
        total >> 20,
        started.elapsed()
    );
    // Shard 1 holds both sources (a client and a server), shard 0 both checkers.
    wait_until("the counters published", || {
        shards.stats(0).bytes_in == 2 * total && shards.stats(1).bytes_out == 2 * total
    });
    shards.shutdown();
}

/// Events of a [`Probe`] connection.
#[derive(Debug)]
enum Event {
    Credentials(PeerCredentials),
    Open(ConnId),
    Input(Vec<u8>),
    Message(u64),
    Timeout,
    Eof,
    Closed(String),
}

/// A connection that reports what happens to it and does what it is told: messages with
/// tag 1 queue `value` as 8 bytes, tag 2 asks to close, tag 3 sets a deadline `value` ms
/// ahead (which, when due, sends "tick").
struct Probe {
    events: Sender<Event>,
    out: Vec<u8>,
    close: bool,
    deadline: Option<Instant>,
}

impl Probe {
    fn new(events: Sender<Event>) -> Self {
        Probe {
            events,
            out: Vec::new(),
            close: false,
            deadline: None,
        }
    }
}

impl Protocol for Probe {
    fn on_peer_credentials(&mut self, creds: PeerCredentials) {
        let _ = self.events.send(Event::Credentials(creds));
    }
    fn on_open(&mut self, _now: Instant, conn: ConnId) {
        let _ = self.events.send(Event::Open(conn));
    }
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        let _ = self.events.send(Event::Input(input.to_vec()));
    }
    fn handle_eof(&mut self, _now: Instant) {
        let _ = self.events.send(Event::Eof);
    }
    fn handle_message(&mut self, now: Instant, msg: AppMessage) {
        let _ = self.events.send(Event::Message(msg.tag));
        match msg.tag {
            1 => self.out.extend_from_slice(&msg.value.to_le_bytes()),
            2 => self.close = true,
            3 => self.deadline = Some(now + Duration::from_millis(msg.value)),
            _ => {}
        }
    }
    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        out.write(&self.out);
        self.out.clear();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
    fn handle_timeout(&mut self, _now: Instant) {
        self.deadline = None;
        self.out.extend_from_slice(b"tick");
        let _ = self.events.send(Event::Timeout);
    }
    fn wants_close(&self) -> bool {
        self.close
    }
    fn on_close(&mut self, _now: Instant, reason: &CloseReason) {
        let _ = self.events.send(Event::Closed(format!("{reason:?}")));
    }
}

/// The next event, skipping inputs when `skip_input`.
fn next(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(TIMEOUT).expect("an event")
}

/// Collects input events until `n` bytes came.
fn input(rx: &Receiver<Event>, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        match next(rx) {
            Event::Input(b) => got.extend_from_slice(&b),
            other => panic!("expected input, got {other:?}"),
        }
    }
    got
}

fn open(rx: &Receiver<Event>) -> ConnId {
    loop {
        match next(rx) {
            Event::Open(id) => return id,
            Event::Credentials(_) => {}
            other => panic!("expected open, got {other:?}"),
        }
    }
}

#[test]
fn either_side_closing_is_seen_by_the_other_after_the_bytes_before_it() {
    let shards = Shards::start(config(2, 64 << 10)).unwrap();
    let path = socket_path("close");
    let _cleanup = Cleanup(path.clone());
    let (srv_tx, srv_rx) = channel::unbounded();
    shards
        .listen_shm(0, &path, move |_| Probe::new(srv_tx.clone()))
        .unwrap();
    for closer_is_client in [true, false] {
        let (cli_tx, cli_rx) = channel::unbounded();
        let client = shards.connect_shm(1, &path, Probe::new(cli_tx)).unwrap();
        let server = open(&srv_rx);
        assert_eq!(open(&cli_rx), client);
        // Bytes queued right before the close still arrive, then the end of stream.
        let (closer, closer_rx, other_rx) = if closer_is_client {
            (client, &cli_rx, &srv_rx)
        } else {
            (server, &srv_rx, &cli_rx)
        };
        shards
            .send_to_connection(closer, AppMessage::new(1, 0xfeed))
            .unwrap();
        shards
            .send_to_connection(closer, AppMessage::new(2, 0))
            .unwrap();
        assert_eq!(input(other_rx, 8), 0xfeedu64.to_le_bytes());
        assert!(matches!(next(other_rx), Event::Eof));
        assert!(matches!(next(other_rx), Event::Closed(r) if r == "Finished"));
        assert!(matches!(next(closer_rx), Event::Message(1)));
        assert!(matches!(next(closer_rx), Event::Message(2)));
        assert!(matches!(next(closer_rx), Event::Closed(r) if r == "Finished"));
    }
    // Closing through the id works as for sockets.
    let (cli_tx, cli_rx) = channel::unbounded();
    let client = shards.connect_shm(1, &path, Probe::new(cli_tx)).unwrap();
    open(&srv_rx);
    open(&cli_rx);
    shards.close(client).unwrap();
    assert!(matches!(next(&cli_rx), Event::Closed(r) if r == "Local"));
    assert!(matches!(next(&srv_rx), Event::Eof));
    wait_until("both sides released", || {
        shards.stats(0).connections == 0 && shards.stats(1).connections == 0
    });
    assert_eq!(shards.stats(0).shm_connections, 0);
    shards.shutdown();
}

/// Sends an 8-byte counter, waits for it to come back, sends the next, `rounds` times.
struct PingPong {
    rounds: u64,
    sent: u64,
    pending: Vec<u8>,
    done: Option<Sender<(u64, Duration)>>,
    started: Option<Instant>,
    received: Vec<u8>,
}

impl PingPong {
    fn new(rounds: u64, done: Sender<(u64, Duration)>) -> Self {
        PingPong {
            rounds,
            sent: 0,
            pending: Vec::new(),
            done: Some(done),
            started: None,
            received: Vec::new(),
        }
    }
}

impl Protocol for PingPong {
    fn on_open(&mut self, now: Instant, _conn: ConnId) {
        self.started = Some(now);
        self.pending.extend_from_slice(&0u64.to_le_bytes());
        self.sent = 1;
    }
    fn handle_input(&mut self, now: Instant, input: Received<'_>) {
        self.received.extend_from_slice(&input);
        while self.received.len() >= 8 {
            let back = u64::from_le_bytes(self.received[..8].try_into().unwrap());
            self.received.drain(..8);
            assert_eq!(back, self.sent - 1, "echoes come back in order");
            if self.sent == self.rounds {
                if let Some(tx) = self.done.take() {
                    let elapsed = now - self.started.expect("opened");
                    let _ = tx.send((self.sent, elapsed));
                }
            } else {
                self.pending.extend_from_slice(&self.sent.to_le_bytes());
                self.sent += 1;
            }
        }
    }
    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        out.write(&self.pending);
        self.pending.clear();
    }
    fn wants_close(&self) -> bool {
        self.done.is_none()
    }
}

fn ping_pong(busy_poll: Option<Duration>) {
    let rounds = 5_000;
    let cfg = ShardsConfig {
        busy_poll,
        ..config(2, 64 << 10)
    };
    let shards = Shards::start(cfg).unwrap();
    let path = socket_path("pingpong");
    let _cleanup = Cleanup(path.clone());
    shards.listen_shm(0, &path, |_| Echo::new()).unwrap();
    let (tx, rx) = channel::unbounded();
    shards
        .connect_shm(1, &path, PingPong::new(rounds, tx))
        .unwrap();
    let (n, elapsed) = rx.recv_timeout(TIMEOUT).expect("the ping-pong finished");
    assert_eq!(n, rounds);
    let (s0, s1) = (shards.stats(0), shards.stats(1));
    eprintln!(
        "{rounds} round trips (busy poll {busy_poll:?}): {:.1} µs each; peer wakes {} + {}, \
         busy-polled {} + {}",
        elapsed.as_secs_f64() * 1e6 / rounds as f64,
        s0.shm_peer_wakes,
        s1.shm_peer_wakes,
        s0.busy_polled,
        s1.busy_polled
    );
    if busy_poll.is_none() {
        // Each side parks between messages: the peer must ring it awake.
        assert!(
            s0.shm_peer_wakes > 0 && s1.shm_peer_wakes > 0,
            "{s0:?} {s1:?}"
        );
    } else {
        assert!(s0.busy_polled + s1.busy_polled > 0, "{s0:?} {s1:?}");
    }
    shards.shutdown();
}

#[test]
fn small_messages_ping_pong_with_parked_shards() {
    ping_pong(None);
}

#[test]
fn small_messages_ping_pong_with_busy_polling_shards() {
    ping_pong(Some(Duration::from_micros(200)));
}

#[test]
fn a_shard_connects_over_shared_memory_without_blocking_and_hears_of_failures() {
    let shards = Shards::start(config(2, 64 << 10)).unwrap();
    let path = socket_path("from-shard");
    let _cleanup = Cleanup(path.clone());
    let (srv_tx, srv_rx) = channel::unbounded();
    shards
        .listen_shm(1, &path, move |_| Probe::new(srv_tx.clone()))
        .unwrap();
    let (cli_tx, cli_rx) = channel::unbounded();
    let dialled = path.clone();
    let client = shards
        .call_on(0, move |ctx| {
            ctx.connect_shm(&dialled, Box::new(Probe::new(cli_tx)))
        })
        .unwrap()
        .unwrap();
    assert_eq!(client.shard(), 0);
    assert_eq!(open(&cli_rx), client);
    let server = open(&srv_rx);
    shards
        .send_to_connection(client, AppMessage::new(1, 42))
        .unwrap();
    assert_eq!(input(&srv_rx, 8), 42u64.to_le_bytes());
    shards
        .send_to_connection(server, AppMessage::new(1, 43))
        .unwrap();
    assert!(matches!(next(&cli_rx), Event::Message(1)));
    assert_eq!(input(&cli_rx, 8), 43u64.to_le_bytes());

    // Nobody listens there: the protocol hears why, and the shard goes on.
    let (bad_tx, bad_rx) = channel::unbounded();
    let missing = std::env::temp_dir().join("hawser-shm-nobody-listens-here.sock");
    let _ = std::fs::remove_file(&missing);
    let shown = missing.clone();
    shards
        .call_on(0, move |ctx| {
            ctx.connect_shm(&missing, Box::new(Probe::new(bad_tx)))
        })
        .unwrap()
        .unwrap();
    match next(&bad_rx) {
        Event::Closed(reason) => {
            assert!(reason.starts_with("ConnectFailed"), "{reason}");
            assert!(reason.contains(&shown.display().to_string()), "{reason}");
        }
        other => panic!("expected a failed connect, got {other:?}"),
    }
    // The shard answers at once.
    assert_eq!(shards.call_on(0, |ctx| ctx.shard_id()).unwrap(), 0);
    shards.shutdown();
}

#[test]
fn accepted_unix_and_shm_connections_learn_their_peers_credentials() {
    let shards = Shards::start(config(1, 64 << 10)).unwrap();
    let me = PeerCredentials {
        pid: std::process::id(),
        // SAFETY: getuid and getgid cannot fail.
        uid: unsafe { libc::getuid() },
        // SAFETY: as above.
        gid: unsafe { libc::getgid() },
    };
    let (tx, rx) = channel::unbounded();
    let shm_path = socket_path("creds-shm");
    let _c1 = Cleanup(shm_path.clone());
    let tx2 = tx.clone();
    shards
        .listen_shm(0, &shm_path, move |_| Probe::new(tx2.clone()))
        .unwrap();
    let (cli_tx, _cli_rx) = channel::unbounded();
    shards
        .connect_shm(0, &shm_path, Probe::new(cli_tx))
        .unwrap();
    assert!(matches!(next(&rx), Event::Credentials(c) if c == me));
    assert!(matches!(next(&rx), Event::Open(_)));

    let unix_path = socket_path("creds-unix");
    let _c2 = Cleanup(unix_path.clone());
    shards
        .listen_unix(0, &unix_path, move |_| Probe::new(tx.clone()))
        .unwrap();
    let _client = std::os::unix::net::UnixStream::connect(&unix_path).unwrap();
    assert!(matches!(next(&rx), Event::Credentials(c) if c == me));
    assert!(matches!(next(&rx), Event::Open(_)));
    shards.shutdown();
}

#[test]
fn messages_deadlines_and_counters_work_as_for_sockets() {
    let shards = Shards::start(config(1, 64 << 10)).unwrap();
    let path = socket_path("deadline");
    let _cleanup = Cleanup(path.clone());
    let (srv_tx, srv_rx) = channel::unbounded();
    shards
        .listen_shm(0, &path, move |_| Probe::new(srv_tx.clone()))
        .unwrap();
    let (cli_tx, cli_rx) = channel::unbounded();
    let client = shards.connect_shm(0, &path, Probe::new(cli_tx)).unwrap();
    open(&srv_rx);
    open(&cli_rx);
    wait_until("both ends counted", || {
        let s = shards.stats(0);
        s.connections == 2 && s.shm_connections == 2 && s.accepts == 1
    });
    let asked = Instant::now();
    shards
        .send_to_connection(client, AppMessage::new(3, 30))
        .unwrap();
    assert!(matches!(next(&cli_rx), Event::Message(3)));
    assert!(matches!(next(&cli_rx), Event::Timeout));
    assert!(asked.elapsed() >= Duration::from_millis(30));
    assert_eq!(input(&srv_rx, 4), b"tick");
    shards.shutdown();
    assert!(matches!(next(&cli_rx), Event::Closed(r) if r == "Shutdown"));
}

#[test]
fn configuration_and_paths_are_checked() {
    for ring_bytes in [1000, 32 << 10, 128 << 20, (64 << 10) + 1] {
        let err = Shards::start(config(1, ring_bytes)).unwrap_err();
        assert!(
            matches!(err, ShardError::InvalidShmOptions { .. }),
            "{ring_bytes}: {err}"
        );
    }
    let shards = Shards::start(config(1, 64 << 10)).unwrap();
    let path = socket_path("in-use");
    let _cleanup = Cleanup(path.clone());
    shards.listen_shm(0, &path, |_| Echo::new()).unwrap();
    let err = shards.listen_shm(0, &path, |_| Echo::new()).unwrap_err();
    assert!(matches!(err, ShardError::UnixPathInUse { .. }), "{err}");
    shards.shutdown();
}

/// The child side of [`a_peer_process_that_dies_without_closing_is_seen_gone`]: connects,
/// sends, sees the echo, and dies without closing anything.
fn child_connects_and_dies(path: &Path) -> ! {
    let shards = Shards::start(config(1, 64 << 10)).unwrap();
    let (tx, rx) = channel::unbounded();
    let client = shards.connect_shm(0, path, Probe::new(tx)).unwrap();
    open(&rx);
    shards
        .send_to_connection(client, AppMessage::new(1, 7))
        .unwrap();
    loop {
        if let Event::Input(_) = next(&rx) {
            break;
        }
    }
    std::process::abort();
}

#[test]
fn a_peer_process_that_dies_without_closing_is_seen_gone() {
    if let Some(path) = std::env::var_os("HAWSER_SHM_CHILD") {
        child_connects_and_dies(Path::new(&path));
    }
    let shards = Shards::start(config(1, 64 << 10)).unwrap();
    let path = socket_path("dies");
    let _cleanup = Cleanup(path.clone());
    let (tx, rx) = channel::unbounded();
    shards
        .listen_shm(0, &path, move |_| {
            let (probe_tx, probe_rx) = channel::unbounded::<Event>();
            let tx = tx.clone();
            // Echo, reporting what the probe sees.
            std::thread::spawn(move || {
                for e in probe_rx {
                    let _ = tx.send(e);
                }
            });
            EchoProbe {
                probe: Probe::new(probe_tx),
            }
        })
        .unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_peer_process_that_dies_without_closing_is_seen_gone",
            "--test-threads=1",
        ])
        .env("HAWSER_SHM_CHILD", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts");
    let mut saw = Vec::new();
    loop {
        let e = next(&rx);
        let done = matches!(e, Event::Closed(_));
        saw.push(format!("{e:?}"));
        if done {
            break;
        }
    }
    assert!(saw.iter().any(|e| e.starts_with("Input")), "{saw:?}");
    assert!(saw.iter().any(|e| e == "Eof"), "{saw:?}");
    assert_eq!(saw.last().map(String::as_str), Some("Closed(\"Finished\")"));
    wait_until("the connection released", || {
        shards.stats(0).connections == 0
    });
    shards.shutdown();
}

/// A [`Probe`] that echoes its input.
struct EchoProbe {
    probe: Probe,
}

impl Protocol for EchoProbe {
    fn on_open(&mut self, now: Instant, conn: ConnId) {
        self.probe.on_open(now, conn);
    }
    fn handle_input(&mut self, now: Instant, input: Received<'_>) {
        self.probe.out.extend_from_slice(&input);
        self.probe.handle_input(now, input);
    }
    fn handle_eof(&mut self, now: Instant) {
        self.probe.handle_eof(now);
    }
    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) {
        self.probe.poll_transmit(now, out);
    }
    fn on_close(&mut self, now: Instant, reason: &CloseReason) {
        self.probe.on_close(now, reason);
    }
}

#[test]
fn a_tcp_echo_on_the_same_shard_is_unaffected_by_a_stalled_link() {
    // A client that never reads: the server's output ring fills and that connection
    // stalls; the shard keeps serving everything else.
    struct Deaf;
    impl Protocol for Deaf {
        fn receives_into_own_buffer(&self) -> bool {
            true
        }
        fn handle_input(&mut self, _now: Instant, _input: Received<'_>) {}
        fn poll_transmit(&mut self, _now: Instant, _out: &mut Transmit) {}
    }
    let shards = Shards::start(config(2, 64 << 10)).unwrap();
    let path = socket_path("stalled");
    let _cleanup = Cleanup(path.clone());
    let body = Bytes::from(pattern(3, 1 << 20));
    let source = body.clone();
    shards
        .listen_shm(0, &path, move |_| BulkSource::new(source.clone(), 1 << 30))
        .unwrap();
    shards.connect_shm(1, &path, Deaf).unwrap();
    let tcp = shards
        .listen_tcp_on(0, "127.0.0.1:0".parse().unwrap(), |_| Echo::new())
        .unwrap();
    wait_until("the ring full", || shards.stats(0).bytes_out >= 64 << 10);
    let mut stream = TcpStream::connect(tcp).unwrap();
    for i in 0..50u32 {
        let started = Instant::now();
        stream.write_all(&i.to_le_bytes()).unwrap();
        let mut back = [0u8; 4];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, i.to_le_bytes());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // The link stalled at one ring's worth (plus the TCP echo's 200 bytes).
    wait_until("the counters published", || {
        shards.stats(0).bytes_out >= (64 << 10) + 200
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(shards.stats(0).bytes_out, (64 << 10) + 200);
    shards.shutdown();
}

#[test]
fn the_loopback_bulk_demo_runs_over_every_transport() {
    use hawser_shards::demo::{LoopbackBulk, LoopbackTransport, loopback_bulk_over};
    let run = LoopbackBulk {
        connections: 2,
        bytes: 16 << 20,
        digest: true,
        local: false,
        answers: true,
    };
    for transport in [
        LoopbackTransport::Tcp,
        LoopbackTransport::Unix,
        LoopbackTransport::Shm,
    ] {
        let rate = loopback_bulk_over(config(2, 1 << 20), &run, transport).unwrap();
        assert!(rate > 0.0, "{transport:?}");
    }
}

/// Not a test: rates of the loopback bulk demo over Unix sockets and shared memory, in
/// alternation (run with `--release --ignored --nocapture`).
#[test]
#[ignore = "a measurement; run by hand in release mode"]
fn loopback_bulk_rates_unix_versus_shm() {
    use hawser_shards::demo::{LoopbackBulk, LoopbackTransport, loopback_bulk_over};
    let bytes: u64 = std::env::var("HAWSER_SHM_BULK_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048)
        << 20;
    for local in [false, true] {
        for round in 0..3 {
            for transport in [LoopbackTransport::Unix, LoopbackTransport::Shm] {
                let run = LoopbackBulk {
                    connections: 2,
                    bytes,
                    digest: false,
                    local,
                    answers: false,
                };
                let cfg = ShardsConfig {
                    shards: 2,
                    ..ShardsConfig::default()
                };
                let rate = loopback_bulk_over(cfg, &run, transport).unwrap();
                eprintln!(
                    "round {round} local={local} {transport:?}: {:.2} GB/s",
                    rate / 1e9
                );
            }
        }
    }
}

/// Sends `data` in pieces of varying sizes and checks that the echo is the same bytes;
/// reports whether it was, then closes.
struct EchoCheck {
    data: Bytes,
    sent: usize,
    back: usize,
    piece: usize,
    same: bool,
    report: Option<Sender<bool>>,
}

impl Protocol for EchoCheck {
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        let end = self.back + input.len();
        self.same &= end <= self.data.len() && input[..] == self.data[self.back..end];
        self.back = end;
        if self.back >= self.data.len()
            && let Some(tx) = self.report.take()
        {
            let _ = tx.send(self.same);
        }
    }
    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        // Keep at most a few pieces queued: the echo must come back for more to go.
        while self.sent < self.data.len() && out.queued() < 3 * self.piece {
            let n = self.piece.min(self.data.len() - self.sent);
            out.write_bytes(self.data.slice(self.sent..self.sent + n));
            self.sent += n;
            self.piece = self.piece * 7 % 65_521 + 1;
        }
    }
    fn wants_close(&self) -> bool {
        self.report.is_none()
    }
}

#[test]
fn many_links_echo_at_once_across_shards_without_losing_a_wake_up() {
    let shards = Shards::start(config(2, 64 << 10)).unwrap();
    let paths: Vec<PathBuf> = (0..2).map(|i| socket_path(&format!("many-{i}"))).collect();
    let _cleanup: Vec<Cleanup> = paths.iter().cloned().map(Cleanup).collect();
    for (shard, path) in paths.iter().enumerate() {
        shards.listen_shm(shard, path, |_| Echo::new()).unwrap();
    }
    let (tx, rx) = channel::unbounded();
    let links = 16;
    for i in 0..links {
        let data = Bytes::from(pattern(100 + i as u64, 1_000_000 + i * 4099));
        shards
            .connect_shm(
                i % 2,
                &paths[(i / 2) % 2],
                EchoCheck {
                    data,
                    sent: 0,
                    back: 0,
                    piece: 1 + i * 997,
                    same: true,
                    report: Some(tx.clone()),
                },
            )
            .unwrap();
    }
    for _ in 0..links {
        assert!(
            rx.recv_timeout(TIMEOUT).expect("every link finishes"),
            "an echo differed"
        );
    }
    wait_until("every link closed", || {
        shards.stats(0).connections + shards.stats(1).connections == 0
    });
    shards.shutdown();
}
