//! Steady state allocates nothing: a counting global allocator counts allocations made on
//! shard threads while echo and bulk traffic run (over sockets and shared memory).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::time::Instant;

use hawser_shards::demo::{BulkSink, BulkSource, Echo};
use hawser_shards::{Protocol, Received, Shards, ShardsConfig, Transmit};

/// Echo with a heartbeat deadline pushed back on every input, as a session protocol does.
struct HeartbeatEcho {
    echo: Echo,
    deadline: Option<Instant>,
}

impl Protocol for HeartbeatEcho {
    fn handle_input(&mut self, now: Instant, input: Received<'_>) {
        self.deadline = Some(now + Duration::from_secs(5));
        self.echo.handle_input(now, input);
    }
    fn handle_eof(&mut self, now: Instant) {
        self.echo.handle_eof(now);
    }
    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) {
        self.echo.poll_transmit(now, out);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
    fn handle_timeout(&mut self, _now: Instant) {
        self.deadline = None;
    }
    fn wants_close(&self) -> bool {
        self.echo.wants_close()
    }
}

struct Counting;

static SHARD_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; the counting touches only a const-initialised
// thread-local and an atomic, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNT_HERE.try_with(Cell::get).unwrap_or(false) {
            SHARD_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNT_HERE.try_with(Cell::get).unwrap_or(false) {
            SHARD_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn ping_pong(s: &mut std::net::TcpStream, rounds: usize, size: usize) {
    let out = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    for _ in 0..rounds {
        s.write_all(&out).unwrap();
        s.read_exact(&mut back).unwrap();
    }
}

#[test]
fn steady_state_echo_with_moving_deadlines_does_not_allocate_per_operation() {
    let shards = Shards::start(ShardsConfig {
        shards: 2,
        buffers: 64,
        buffer_size: 16 * 1024,
        ..Default::default()
    })
    .unwrap();
    let addr = shards
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_| HeartbeatEcho {
            echo: Echo::new(),
            deadline: None,
        })
        .unwrap();
    let mut clients: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Warm up: connection state, queues and the protocol reach their working sizes.
    for c in &mut clients {
        ping_pong(c, 200, 100);
        ping_pong(c, 50, 60_000);
    }
    for shard in 0..2 {
        shards
            .call_on(shard, |_| COUNT_HERE.with(|c| c.set(true)))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(10));
    let start = SHARD_ALLOCS.load(Ordering::Relaxed);
    let recv_before: u64 = (0..2).map(|i| shards.stats(i).recv_ops).sum();
    for c in &mut clients {
        ping_pong(c, 2000, 100);
        ping_pong(c, 100, 60_000);
    }
    let allocs = SHARD_ALLOCS.load(Ordering::Relaxed) - start;
    let recvs: u64 = (0..2).map(|i| shards.stats(i).recv_ops).sum::<u64>() - recv_before;
    assert!(recvs >= 8000, "only {recvs} receive operations");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations on shard threads over {recvs} receives"
    );
    drop(clients);

    // Bulk between shards: a shared body sent zero-copy, counted by a sink.
    let sink = shards
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_| {
            BulkSink::new(false, None)
        })
        .unwrap();
    let body = bytes::Bytes::from(vec![0xa5u8; 1 << 20]);
    let bulk: Vec<_> = (0..2)
        .map(|shard| {
            shards
                .connect_tcp(shard, sink, BulkSource::new(body.clone(), 1 << 40))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let start = SHARD_ALLOCS.load(Ordering::Relaxed);
    let bytes_before: u64 = (0..2).map(|i| shards.stats(i).bytes_in).sum();
    std::thread::sleep(Duration::from_millis(300));
    let allocs = SHARD_ALLOCS.load(Ordering::Relaxed) - start;
    let moved: u64 = (0..2).map(|i| shards.stats(i).bytes_in).sum::<u64>() - bytes_before;
    assert!(moved > 10 << 20, "bulk moved only {moved} bytes");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations on shard threads while moving {moved} bytes"
    );

    // The same over shared memory, across shards (rings, doorbells, pool buffers), once
    // the sockets are gone.
    for id in bulk {
        shards.close(id).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..2).any(|i| shards.stats(i).connections > 0) {
        assert!(Instant::now() < deadline, "the bulk sockets did not close");
        std::thread::sleep(Duration::from_millis(5));
    }
    let path = std::env::temp_dir().join(format!("hawser-noalloc-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    shards
        .listen_shm(0, &path, |_| BulkSink::new(false, None))
        .unwrap();
    shards
        .connect_shm(1, &path, BulkSource::new(body.clone(), 1 << 40))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = SHARD_ALLOCS.load(Ordering::Relaxed);
    let shm_before = shards.stats(0).bytes_in;
    std::thread::sleep(Duration::from_millis(300));
    let allocs = SHARD_ALLOCS.load(Ordering::Relaxed) - start;
    let moved = shards.stats(0).bytes_in - shm_before;
    assert!(moved > 10 << 20, "shared memory moved only {moved} bytes");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations on shard threads while moving {moved} bytes over shared memory"
    );
    shards.shutdown();
    let _ = std::fs::remove_file(&path);
}
