//! The DTP receiver's copy of each datagram's payload into the run a direct write takes
//! to the disk: `hawser_shards::copy_past_cache` (non-temporal stores from 8 KiB up)
//! against `copy_from_slice`, for payloads of the 64 KB path (64,000 bytes), of jumbo
//! frames (8,940) and of Ethernet (1,440: the plain copy, as it should be), from a few
//! buffers the kernel has just filled (hot) into 2 MiB runs spread over 64 MiB (more
//! than the last-level cache, as a transfer's runs are by the time they are written).
//!
//! `cargo bench -p hawser-benches --bench stream_copy`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hawser_shards::{HugePageBuffer, copy_past_cache};

/// Payload sizes: the 64 KB path, jumbo frames, Ethernet.
const PAYLOADS: [usize; 3] = [64_000, 8_940, 1_440];
const RUN: usize = 2 << 20;
const RUNS: usize = 32;
/// Receive buffers the payloads come from, cycled (they stay in the cache).
const SOURCES: usize = 8;

/// Copies payloads of `len` bytes one after another into the runs, as a transfer
/// arriving in order.
fn fill(runs: &mut [HugePageBuffer], sources: &[Vec<u8>], len: usize, copy: fn(&mut [u8], &[u8])) {
    let mut source = 0;
    for run in runs.iter_mut() {
        let mut at = 0;
        while at + len <= RUN {
            copy(&mut run[at..at + len], &sources[source % SOURCES][..len]);
            source += 1;
            at += len;
        }
    }
}

fn plain(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}

fn bench(c: &mut Criterion) {
    let mut runs: Vec<HugePageBuffer> = (0..RUNS).map(|_| HugePageBuffer::zeroed(RUN)).collect();
    let sources: Vec<Vec<u8>> = (0..SOURCES).map(|i| vec![i as u8; PAYLOADS[0]]).collect();
    for len in PAYLOADS {
        let mut group = c.benchmark_group(format!("{len}-byte payloads into runs"));
        group.throughput(Throughput::Bytes((RUN / len * len * RUNS) as u64));
        group.bench_function("copy_from_slice", |b| {
            b.iter(|| fill(black_box(&mut runs), &sources, len, plain))
        });
        group.bench_function("copy_past_cache", |b| {
            b.iter(|| fill(black_box(&mut runs), &sources, len, copy_past_cache))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
