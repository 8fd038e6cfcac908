//! Steady state allocates nothing: a counting global allocator counts allocations made on
//! shard threads while echo and bulk traffic run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hawser_shards::{Echo, Shards, ShardsConfig};

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
fn steady_state_echo_does_not_allocate_per_operation() {
    let shards = Shards::start(ShardsConfig {
        shards: 2,
        buffers: 64,
        buffer_size: 16 * 1024,
        ..Default::default()
    })
    .unwrap();
    let addr = shards
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_| Echo::new())
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
    shards.shutdown();
}
