//! Shared-memory links against peers that do not play by the rules: handshakes refused
//! on either side (wrong magic, version, size, descriptors, seals, silence) and a hostile
//! peer that writes over the whole region. These play the peer by hand, with the crate's
//! own system-call wrappers, so they live beside the code.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::layout::{self, ClientHello, HELLO_BYTES, Refusal, Role, ServerHello, VERSION};
use super::{ShmLink, handshake};
use crate::demo::Echo;
use crate::sys::{self, RawSockAddr};
use crate::{CloseReason, ConnId, Protocol, Received, Shards, ShardsConfig, ShmOptions, Transmit};

const RING: usize = 64 << 10;
const WAIT: Duration = Duration::from_secs(20);

fn config(timeout: Duration) -> ShardsConfig {
    ShardsConfig {
        shards: 1,
        buffers: 32,
        buffer_size: 16 * 1024,
        shm: ShmOptions {
            ring_bytes: RING,
            handshake_timeout: timeout,
        },
        ..ShardsConfig::default()
    }
}

fn socket_path(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "hawser-shm-unit-{name}-{}-{n}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Echoes, and reports how its connection closed.
struct Recorder {
    out: Vec<u8>,
    closed: Sender<String>,
}

impl Protocol for Recorder {
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        self.out.extend_from_slice(&input);
    }
    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        out.write(&self.out);
        self.out.clear();
    }
    fn on_close(&mut self, _now: Instant, reason: &CloseReason) {
        let text = match reason {
            CloseReason::Error(e) => format!("Error: {e}"),
            CloseReason::ConnectFailed(e) => format!("ConnectFailed: {e}"),
            other => format!("{other:?}"),
        };
        let _ = self.closed.send(text);
    }
}

/// A server shard with a shared-memory listener (recording closes) and a TCP echo.
struct Server {
    shards: Shards,
    path: PathBuf,
    _cleanup: Cleanup,
    closed: Receiver<String>,
    tcp: std::net::SocketAddr,
}

fn server(name: &str, timeout: Duration) -> Server {
    let shards = Shards::start(config(timeout)).unwrap();
    let path = socket_path(name);
    let (tx, closed) = channel::unbounded();
    shards
        .listen_shm(0, &path, move |_| Recorder {
            out: Vec::new(),
            closed: tx.clone(),
        })
        .unwrap();
    let tcp = shards
        .listen_tcp_on(0, "127.0.0.1:0".parse().unwrap(), |_| Echo::new())
        .unwrap();
    Server {
        shards,
        _cleanup: Cleanup(path.clone()),
        path,
        closed,
        tcp,
    }
}

/// One TCP echo round trip, which must be quick: the shard is not blocked.
fn tcp_echo_is_prompt(addr: std::net::SocketAddr) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the shard took {:?} to echo",
        started.elapsed()
    );
}

/// A raw client socket connected to `path`.
fn raw_client(path: &Path) -> OwnedFd {
    OwnedFd::from(UnixStream::connect(path).unwrap())
}

/// Reads the server's answer to a hello: its status, then the end of the socket.
fn read_refusal(sock: &OwnedFd) -> u32 {
    sys::set_socket_timeouts(sock.as_fd(), Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; HELLO_BYTES];
    let mut got = 0;
    while got < HELLO_BYTES {
        let r = sys::recv_with_fds(sock.as_fd(), &mut buf[got..]).unwrap();
        assert!(r.fds.is_empty(), "a refusal carries no descriptors");
        assert!(r.len > 0, "the server closed without answering");
        got += r.len;
    }
    let hello = ServerHello::decode(&buf).expect("a server hello");
    let r = sys::recv_with_fds(sock.as_fd(), &mut buf).unwrap();
    assert_eq!(r.len, 0, "the server closes after refusing");
    hello.status
}

fn eventfd() -> OwnedFd {
    sys::eventfd_owned().unwrap()
}

#[test]
fn the_server_refuses_bad_hellos_with_a_reason_and_goes_on() {
    let srv = server("refusals", Duration::from_secs(5));
    let good = |ring: u64| {
        ClientHello {
            version: VERSION,
            ring_bytes: ring,
        }
        .encode()
    };
    let memfd = sys::memfd_create(c"not-an-eventfd").unwrap();
    let cases: Vec<(&str, [u8; HELLO_BYTES], Vec<RawFd>, Refusal)> = vec![
        (
            "wrong magic",
            [b'X'; HELLO_BYTES],
            vec![],
            Refusal::NotAHello,
        ),
        (
            "other version",
            ClientHello {
                version: VERSION + 1,
                ring_bytes: RING as u64,
            }
            .encode(),
            vec![],
            Refusal::Version,
        ),
        ("odd ring size", good(100_000), vec![], Refusal::RingSize),
        ("ring too large", good(1 << 30), vec![], Refusal::RingSize),
        (
            "no eventfd",
            good(RING as u64),
            vec![],
            Refusal::Descriptors,
        ),
        (
            "a memfd for an eventfd",
            good(RING as u64),
            vec![memfd.as_raw_fd()],
            Refusal::Descriptors,
        ),
    ];
    let (e1, e2) = (eventfd(), eventfd());
    let mut cases = cases;
    cases.push((
        "two eventfds",
        good(RING as u64),
        vec![e1.as_raw_fd(), e2.as_raw_fd()],
        Refusal::Descriptors,
    ));
    let n = cases.len() as u64;
    for (what, hello, fds, want) in cases {
        let sock = raw_client(&srv.path);
        sys::send_with_fds(sock.as_fd(), &hello, &fds).unwrap();
        assert_eq!(read_refusal(&sock), want as u32, "{what}");
    }
    wait_until("the refusals counted", || {
        srv.shards.stats(0).shm_refused == n
    });
    assert_eq!(srv.shards.stats(0).connections, 0);
    // The listener goes on: an honest client gets through.
    let mut link = Hostile::connect(&srv.path);
    link.exchange(b"still here");
    tcp_echo_is_prompt(srv.tcp);
    srv.shards.shutdown();
}

#[test]
fn silent_clients_time_out_without_holding_the_shard_or_other_handshakes() {
    let timeout = Duration::from_millis(1500);
    let srv = server("silent", timeout);
    // Fewer silent clients than handshake slots: an honest client is not held up.
    let started = Instant::now();
    let silent: Vec<OwnedFd> = (0..8).map(|_| raw_client(&srv.path)).collect();
    let mut link = Hostile::connect(&srv.path);
    link.exchange(b"past the silent ones");
    assert!(
        started.elapsed() < timeout / 2,
        "an honest handshake waited {:?} behind silent ones",
        started.elapsed()
    );
    tcp_echo_is_prompt(srv.tcp);
    // Each silent client is dropped at its deadline (the server closes: end of stream).
    for sock in &silent {
        sys::set_socket_timeouts(sock.as_fd(), Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 8];
        let r = sys::recv_with_fds(sock.as_fd(), &mut buf).unwrap();
        assert_eq!(r.len, 0);
    }
    assert!(started.elapsed() >= timeout);
    wait_until("the timeouts counted", || {
        srv.shards.stats(0).shm_refused >= 8
    });
    // More silent clients than slots: the honest one waits for a slot, at most about a
    // timeout, and the shard is never held.
    let started = Instant::now();
    let _silent: Vec<OwnedFd> = (0..20).map(|_| raw_client(&srv.path)).collect();
    std::thread::sleep(Duration::from_millis(50));
    tcp_echo_is_prompt(srv.tcp);
    let mut link = Hostile::connect(&srv.path);
    link.exchange(b"after the crowd");
    assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());
    tcp_echo_is_prompt(srv.tcp);
    drop(link);
    srv.shards.shutdown();
}

/// What a fake server does after reading the client's hello.
type Reply = Box<dyn FnOnce(&UnixStream) + Send>;

/// A one-shot fake server at `path` that reads a client hello, runs `reply`, and keeps
/// the socket open until the client closes it.
fn fake_server(path: &Path, reply: Reply) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; HELLO_BYTES];
        let r = sys::recv_with_fds(stream.as_fd(), &mut buf).unwrap();
        assert_eq!(r.len, HELLO_BYTES);
        assert!(ClientHello::decode(&buf).is_some());
        assert_eq!(r.fds.len(), 1);
        reply(&stream);
        let mut rest = Vec::new();
        let _ = (&stream).read_to_end(&mut rest);
    })
}

/// A memfd of `len` bytes with `seals` and the header of rings of `ring`.
fn region_fd(len: usize, seals: libc::c_int, ring: usize) -> OwnedFd {
    let fd = sys::memfd_create(c"fake-region").unwrap();
    sys::ftruncate(fd.as_fd(), len as u64).unwrap();
    let map = super::mapping::Mapping::map(fd.as_fd(), len).unwrap();
    map.write(0, &layout::header(ring));
    if seals != 0 {
        sys::add_seals(fd.as_fd(), seals).unwrap();
    }
    fd
}

fn send_hello(stream: &UnixStream, hello: ServerHello, fds: &[RawFd]) {
    sys::send_with_fds(stream.as_fd(), &hello.encode(), fds).unwrap();
}

/// Connects from a shard to a fake server and returns why the connect failed.
fn failed_connect(name: &str, timeout: Duration, reply: Reply) -> String {
    let shards = Shards::start(config(timeout)).unwrap();
    let path = socket_path(name);
    let _cleanup = Cleanup(path.clone());
    let fake = fake_server(&path, reply);
    let (tx, rx) = channel::unbounded();
    shards
        .connect_shm(
            0,
            &path,
            Recorder {
                out: Vec::new(),
                closed: tx,
            },
        )
        .unwrap();
    // The shard answers while its connect waits for the handshake.
    let asked = Instant::now();
    shards.call_on(0, |_| ()).unwrap();
    assert!(asked.elapsed() < Duration::from_millis(500));
    let why = rx.recv_timeout(WAIT).expect("the connect ends");
    fake.join().unwrap();
    // The counters are published at the end of the loop iteration that closed it.
    wait_until("the connection released", || {
        shards.stats(0).connections == 0
    });
    shards.shutdown();
    why
}

#[test]
fn a_client_refuses_what_a_bad_server_sends() {
    const SEALED: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    let len = layout::region_bytes(RING);
    let ok = ServerHello::accepted(RING);
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "wrong magic",
            Box::new(|s: &UnixStream| {
                sys::send_with_fds(s.as_fd(), &[b'Y'; HELLO_BYTES], &[]).unwrap();
            }),
            "does not start with the link's magic",
        ),
        (
            "refused",
            Box::new(|s: &UnixStream| send_hello(s, ServerHello::refused(Refusal::Version), &[])),
            "the server refused: it speaks version",
        ),
        (
            "no descriptors",
            Box::new(move |s: &UnixStream| send_hello(s, ok, &[])),
            "carried 0 descriptor(s), expected two",
        ),
        (
            "unsealed",
            Box::new(move |s: &UnixStream| {
                let (m, e) = (region_fd(len, 0, RING), eventfd());
                send_hello(s, ok, &[m.as_raw_fd(), e.as_raw_fd()]);
            }),
            "not sealed against shrinking and growing",
        ),
        (
            "only growth sealed",
            Box::new(move |s: &UnixStream| {
                let (m, e) = (region_fd(len, libc::F_SEAL_GROW, RING), eventfd());
                send_hello(s, ok, &[m.as_raw_fd(), e.as_raw_fd()]);
            }),
            "not sealed against shrinking and growing",
        ),
        (
            "wrong size",
            Box::new(move |s: &UnixStream| {
                let (m, e) = (region_fd(len + 4096, SEALED, RING), eventfd());
                send_hello(s, ok, &[m.as_raw_fd(), e.as_raw_fd()]);
            }),
            "its hello's layout says",
        ),
        (
            "hello and region disagree",
            Box::new(move |s: &UnixStream| {
                let (m, e) = (region_fd(len, SEALED, RING * 2), eventfd());
                send_hello(s, ok, &[m.as_raw_fd(), e.as_raw_fd()]);
            }),
            "differs from the server's hello",
        ),
        (
            "doorbell not an eventfd",
            Box::new(move |s: &UnixStream| {
                let (m, m2) = (region_fd(len, SEALED, RING), region_fd(len, SEALED, RING));
                send_hello(s, ok, &[m.as_raw_fd(), m2.as_raw_fd()]);
            }),
            "not an eventfd",
        ),
        (
            "more than asked",
            Box::new(|s: &UnixStream| {
                let big = ServerHello::accepted(RING * 2);
                let (m, e) = (
                    region_fd(layout::region_bytes(RING * 2), SEALED, RING * 2),
                    eventfd(),
                );
                send_hello(s, big, &[m.as_raw_fd(), e.as_raw_fd()]);
            }),
            "we asked for",
        ),
        ("silent", Box::new(|_: &UnixStream| {}), "no answer within"),
    ];
    for (what, reply, want) in cases {
        let why = failed_connect("bad-server", Duration::from_millis(500), reply);
        assert!(
            why.starts_with("ConnectFailed: shared-memory link to "),
            "{what}: {why}"
        );
        assert!(why.contains(want), "{what}: {why}");
    }
}

/// A peer playing the client by hand: the crate's handshake, then raw access to the
/// region.
struct Hostile {
    socket: OwnedFd,
    link: ShmLink,
}

impl Hostile {
    fn connect(path: &Path) -> Hostile {
        let socket = sys::owned_fd(sys::unix_socket().unwrap());
        let addr = RawSockAddr::from_unix(path).unwrap();
        let parts =
            handshake::connect(socket.as_fd(), &addr, RING, Duration::from_secs(10)).unwrap();
        Hostile {
            socket,
            link: ShmLink::new(parts),
        }
    }

    fn ring_server(&self) {
        sys::eventfd_ring(self.link.peer_doorbell());
    }

    /// Sends `msg` by the rules and waits for its echo.
    fn exchange(&mut self, msg: &[u8]) {
        let link = &mut self.link;
        assert!(link.tx_room().unwrap() as usize >= msg.len());
        link.write(msg);
        link.publish_produced();
        sys::eventfd_ring(link.peer_doorbell());
        let deadline = Instant::now() + WAIT;
        while (link.rx_available().unwrap() as usize) < msg.len() {
            assert!(Instant::now() < deadline, "no echo");
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut back = vec![0u8; msg.len()];
        link.read(&mut back);
        link.publish_consumed();
        assert_eq!(back, msg);
    }

    /// Whether the server closed the rendezvous socket.
    fn closed_by_server(&self) -> bool {
        let [readable] = sys::poll_readable([self.socket.as_fd()], Some(Duration::ZERO)).unwrap();
        readable
    }
}

/// Pings an echo over shared memory from its own shards as long as `run` holds, counting
/// the round trips.
struct Pinger {
    count: Arc<AtomicU64>,
    run: Arc<AtomicBool>,
    got: usize,
    due: bool,
}

impl Protocol for Pinger {
    fn on_open(&mut self, _now: Instant, _conn: ConnId) {
        self.due = true;
    }
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        self.got += input.len();
        if self.got >= 8 {
            self.got -= 8;
            self.count.fetch_add(1, Ordering::Relaxed);
            self.due = true;
        }
    }
    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        if self.due && self.run.load(Ordering::Relaxed) {
            out.write(&[7u8; 8]);
            self.due = false;
        }
    }
}

fn start_pinger(path: &Path) -> (Shards, Arc<AtomicU64>, Arc<AtomicBool>) {
    let client = Shards::start(config(Duration::from_secs(5))).unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let run = Arc::new(AtomicBool::new(true));
    client
        .connect_shm(
            0,
            path,
            Pinger {
                count: count.clone(),
                run: run.clone(),
                got: 0,
                due: false,
            },
        )
        .unwrap();
    wait_until("pings", || count.load(Ordering::Relaxed) > 10);
    (client, count, run)
}

/// The honest pinger makes progress now.
fn pings_continue(count: &AtomicU64) {
    let before = count.load(Ordering::Relaxed);
    wait_until("more pings", || count.load(Ordering::Relaxed) > before + 10);
}

#[test]
fn a_hostile_peer_scribbling_over_the_region_closes_only_its_own_connection() {
    let srv = server("hostile", Duration::from_secs(5));
    let (client, count, run) = start_pinger(&srv.path);
    let mut hostile = Hostile::connect(&srv.path);
    hostile.exchange(b"hello, honestly");
    let mine = Role::Client.offsets(RING);
    let region = hostile.link.region();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(14);
    let mut noise = vec![0u8; 4096];

    // Phase one: garbage everywhere but the indices the server reads (ring bytes, both
    // flags, the header, the words the server itself publishes). Garbage bytes are only
    // bytes; the server never reads its own words back; the link survives.
    for i in 0..2_000u32 {
        rng.fill_bytes(&mut noise);
        let len = 1 + rng.next_u32() as usize % 64;
        let at = match i % 6 {
            0 => mine.rx_ring + rng.next_u32() as usize % (RING - len),
            1 => mine.tx_ring + rng.next_u32() as usize % (RING - len),
            2 => {
                region.write(mine.my_parked, &noise[..4]);
                continue;
            }
            3 => {
                region.write(mine.peer_parked, &noise[..4]);
                continue;
            }
            4 => rng.next_u32() as usize % (128 - len.min(64)),
            _ => {
                // The server's own published indices.
                let word = [mine.tx_consumed, mine.rx_produced][rng.next_u32() as usize % 2];
                region.write(word, &noise[..8]);
                continue;
            }
        };
        region.write(at, &noise[..len]);
        if i.is_multiple_of(16) {
            hostile.ring_server();
        }
    }
    hostile.ring_server();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !hostile.closed_by_server(),
        "garbage bytes alone closed the link"
    );
    assert_eq!(srv.shards.stats(0).shm_corrupted, 0);
    pings_continue(&count);
    tcp_echo_is_prompt(srv.tcp);

    // Phase two: everything, the indices the server reads included, while an honest
    // link and a TCP echo share the shard.
    let started = Instant::now();
    let mut rounds = 0u64;
    while !hostile.closed_by_server() {
        assert!(started.elapsed() < WAIT, "the server never noticed");
        rng.fill_bytes(&mut noise);
        let at = rng.next_u32() as usize % (region.len() - 64);
        region.write(at, &noise[..1 + rng.next_u32() as usize % 64]);
        let word = [mine.tx_produced, mine.rx_consumed, mine.my_parked][rounds as usize % 3];
        region.write(word, &noise[64..72]);
        hostile.ring_server();
        rounds += 1;
        if rounds.is_multiple_of(256) {
            tcp_echo_is_prompt(srv.tcp);
        }
    }
    let why = srv.closed.recv_timeout(WAIT).unwrap();
    assert!(
        why.starts_with("Error: shared-memory peer corrupted the ring: its "),
        "{why}"
    );
    assert_eq!(srv.shards.stats(0).shm_corrupted, 1);
    // Nothing else was touched.
    pings_continue(&count);
    tcp_echo_is_prompt(srv.tcp);
    wait_until("only the honest link left", || {
        srv.shards.stats(0).shm_connections == 1
    });
    // Scribbling over a closed link's memory (still mapped here) changes nothing.
    for _ in 0..100 {
        rng.fill_bytes(&mut noise);
        region.write(HELLO_BYTES * 4, &noise);
        hostile.ring_server();
    }
    pings_continue(&count);
    run.store(false, Ordering::Relaxed);
    drop(hostile);
    client.shutdown();
    srv.shards.shutdown();
}

#[test]
fn a_peer_whose_doorbell_cannot_be_rung_does_not_block_the_shard() {
    let srv = server("unringable", Duration::from_secs(5));
    let mut hostile = Hostile::connect(&srv.path);
    // The eventfd the server rings to wake us: blocking, and one below its limit, so that
    // any write to it waits until we read it, which we never do.
    let bell = sys::dup(hostile.link.own_doorbell.as_fd()).unwrap();
    sys::set_nonblocking(bell.as_fd(), false).unwrap();
    std::fs::File::from(bell)
        .write_all(&(u64::MAX - 1).to_ne_bytes())
        .unwrap();
    // Ask to be woken after everything the server publishes, and give it things to echo.
    for i in 0..200u64 {
        let link = &mut hostile.link;
        link.set_parked(true);
        if link.tx_room().unwrap() >= 8 {
            link.write(&i.to_le_bytes());
            link.publish_produced();
        }
        // Consume the echoes so the server keeps publishing.
        let n = link.rx_available().unwrap() as usize;
        if n > 0 {
            let mut sink = vec![0u8; n];
            link.read(&mut sink);
            link.publish_consumed();
        }
        hostile.ring_server();
        std::thread::sleep(Duration::from_micros(300));
        if i.is_multiple_of(50) {
            tcp_echo_is_prompt(srv.tcp);
        }
    }
    // The server rang, and stopped at the rings in flight that never complete.
    let wakes = srv.shards.stats(0).shm_peer_wakes;
    assert!(
        wakes > 0 && wakes <= u64::from(super::MAX_RINGS_IN_FLIGHT),
        "{wakes} rings for a doorbell that takes none"
    );
    // Another link on the shard works meanwhile.
    let mut honest = Hostile::connect(&srv.path);
    honest.exchange(b"next door");
    // Going away releases the connection although its rings never completed.
    drop(hostile);
    assert_eq!(srv.closed.recv_timeout(WAIT).unwrap(), "Finished");
    wait_until("the link released", || {
        srv.shards.stats(0).shm_connections == 1
    });
    honest.exchange(b"still next door");
    drop(honest);
    srv.shards.shutdown();
}
