//! SPSC ring between two threads: throughput and round-trip latency of `rtrb` (one push at a
//! time, and the chunk API in batches of 64 as the shards use it) against
//! `crossbeam::channel::bounded`. Items are 16 bytes, like a buffer handle plus a tag.
//!
//! Waiting threads spin 64 times, then yield: the build machines are shared, and a pinned
//! spinner that never yields can starve the very thread it waits for.
//!
//! Run: `cargo bench -p hawser-benches --bench spsc`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

type Item = [u64; 2];
const ITEMS: u64 = 1 << 20;
const CAPACITY: usize = 1024;
const BATCH: usize = 64;

/// Waits politely: spin briefly, then give the core away (the build machines are shared,
/// and a pinned spinner that never yields starves the thread it waits for).
struct Backoff(u32);

impl Backoff {
    fn new() -> Self {
        Backoff(0)
    }
    fn snooze(&mut self) {
        self.0 += 1;
        if self.0 < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
}

fn pin(core: usize) {
    if let Some(ids) = core_affinity_ids() {
        core_affinity::set_for_current(ids[core % ids.len()]);
    }
}

fn core_affinity_ids() -> Option<Vec<core_affinity::CoreId>> {
    core_affinity::get_core_ids().filter(|v| !v.is_empty())
}

fn rtrb_single(total: u64) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<Item>::new(CAPACITY);
    let consumer = std::thread::spawn(move || {
        pin(1);
        let mut sum = 0u64;
        let mut got = 0;
        let mut backoff = Backoff::new();
        while got < total {
            if let Ok(v) = c.pop() {
                sum = sum.wrapping_add(v[0]);
                got += 1;
                backoff.reset();
            } else {
                backoff.snooze();
            }
        }
        black_box(sum);
    });
    pin(0);
    let start = Instant::now();
    let mut i = 0;
    let mut backoff = Backoff::new();
    while i < total {
        if p.push([i, i]).is_ok() {
            i += 1;
            backoff.reset();
        } else {
            backoff.snooze();
        }
    }
    consumer.join().unwrap();
    start.elapsed()
}

fn rtrb_chunked(total: u64) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<Item>::new(CAPACITY);
    let consumer = std::thread::spawn(move || {
        pin(1);
        let mut sum = 0u64;
        let mut got = 0u64;
        let mut backoff = Backoff::new();
        while got < total {
            let n = c.slots();
            if n == 0 {
                backoff.snooze();
                continue;
            }
            backoff.reset();
            let chunk = c.read_chunk(n).unwrap();
            let (a, b) = chunk.as_slices();
            for v in a.iter().chain(b) {
                sum = sum.wrapping_add(v[0]);
            }
            chunk.commit_all();
            got += n as u64;
        }
        black_box(sum);
    });
    pin(0);
    let start = Instant::now();
    let mut i = 0u64;
    let mut backoff = Backoff::new();
    while i < total {
        let n = (p.slots().min(BATCH) as u64).min(total - i) as usize;
        if n == 0 {
            backoff.snooze();
            continue;
        }
        backoff.reset();
        let chunk = p.write_chunk_uninit(n).unwrap();
        let base = i;
        chunk.fill_from_iter((0..n as u64).map(|k| [base + k, k]));
        i += n as u64;
    }
    consumer.join().unwrap();
    start.elapsed()
}

fn crossbeam_bounded(total: u64) -> Duration {
    let (tx, rx) = crossbeam::channel::bounded::<Item>(CAPACITY);
    let consumer = std::thread::spawn(move || {
        pin(1);
        let mut sum = 0u64;
        for _ in 0..total {
            sum = sum.wrapping_add(rx.recv().unwrap()[0]);
        }
        black_box(sum);
    });
    pin(0);
    let start = Instant::now();
    for i in 0..total {
        tx.send([i, i]).unwrap();
    }
    consumer.join().unwrap();
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_throughput");
    group.throughput(Throughput::Elements(ITEMS));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("rtrb_push_one", |b| {
        b.iter_custom(|iters| rtrb_single(ITEMS * iters))
    });
    group.bench_function("rtrb_chunk_64", |b| {
        b.iter_custom(|iters| rtrb_chunked(ITEMS * iters))
    });
    group.bench_function("crossbeam_bounded", |b| {
        b.iter_custom(|iters| crossbeam_bounded(ITEMS * iters))
    });
    group.finish();
}

fn rtrb_round_trips(n: u64) -> Duration {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<Item>::new(CAPACITY);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<Item>::new(CAPACITY);
    let echo = std::thread::spawn(move || {
        pin(1);
        let mut backoff = Backoff::new();
        for _ in 0..n {
            backoff.reset();
            let v = loop {
                if let Ok(v) = ping_rx.pop() {
                    break v;
                }
                backoff.snooze();
            };
            while pong_tx.push(v).is_err() {}
        }
    });
    pin(0);
    let start = Instant::now();
    let mut backoff = Backoff::new();
    for i in 0..n {
        while ping_tx.push([i, i]).is_err() {}
        backoff.reset();
        loop {
            if pong_rx.pop().is_ok() {
                break;
            }
            backoff.snooze();
        }
    }
    let elapsed = start.elapsed();
    echo.join().unwrap();
    elapsed
}

fn crossbeam_round_trips(n: u64) -> Duration {
    let (ping_tx, ping_rx) = crossbeam::channel::bounded::<Item>(CAPACITY);
    let (pong_tx, pong_rx) = crossbeam::channel::bounded::<Item>(CAPACITY);
    let echo = std::thread::spawn(move || {
        pin(1);
        for _ in 0..n {
            pong_tx.send(ping_rx.recv().unwrap()).unwrap();
        }
    });
    pin(0);
    let start = Instant::now();
    for i in 0..n {
        ping_tx.send([i, i]).unwrap();
        pong_rx.recv().unwrap();
    }
    let elapsed = start.elapsed();
    echo.join().unwrap();
    elapsed
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_round_trip");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("rtrb_spin", |b| b.iter_custom(rtrb_round_trips));
    group.bench_function("crossbeam_bounded", |b| {
        b.iter_custom(crossbeam_round_trips)
    });
    group.finish();
}

criterion_group!(benches, throughput, round_trip);
criterion_main!(benches);
