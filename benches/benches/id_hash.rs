//! Hashing of the session's id maps (`hawser_session::IdMap`), whose keys are chosen
//! locally: u64 request ids, `(u128, u64)` nexus and request pairs (the runtime's
//! pending calls) and `LinkId`-like newtypes. rustc-hash's `FxBuildHasher`, what
//! `IdMap` uses, against `MulXor`, a hand-written one-multiply-per-word hasher: lookups
//! of every key of a map of consecutive ids, and the insert/remove churn of requests
//! coming and going.
//!
//! `cargo bench -p hawser-benches --bench id_hash`.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustc_hash::FxBuildHasher;

/// Keys in each map: a window of requests in flight.
const KEYS: u64 = 1024;

/// Xor the word in, multiply by the golden ratio; the state is the hash.
#[derive(Debug, Default, Clone, Copy)]
struct MulXor(u64);

impl Hasher for MulXor {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A connection handle, as `hawser_session::LinkId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LinkId(u64);

/// The `i`th key of each kind.
trait Key: Copy + Eq + Hash {
    fn nth(i: u64) -> Self;
}

impl Key for u64 {
    fn nth(i: u64) -> Self {
        i
    }
}

impl Key for (u128, u64) {
    fn nth(i: u64) -> Self {
        // One nexus id (random-looking), consecutive request ids.
        (0x8d3f_11aa_0c47_9e21_5b60_f2d4_7a19_c3e5, i)
    }
}

impl Key for LinkId {
    fn nth(i: u64) -> Self {
        LinkId(i)
    }
}

fn lookups<K: Key, S: BuildHasher + Default>(c: &mut Criterion, key: &str, hasher: &str) {
    let map: HashMap<K, u64, S> = (0..KEYS).map(|i| (K::nth(i), i)).collect();
    let keys: Vec<K> = (0..KEYS).map(K::nth).collect();
    let mut group = c.benchmark_group("id_hash_lookup");
    group.throughput(Throughput::Elements(KEYS));
    group.bench_function(BenchmarkId::new(hasher, key), |b| {
        b.iter(|| {
            let mut sum = 0;
            for k in &keys {
                sum += map.get(black_box(k)).copied().unwrap_or(0);
            }
            black_box(sum)
        })
    });
    group.finish();
}

fn churn<K: Key, S: BuildHasher + Default>(c: &mut Criterion, key: &str, hasher: &str) {
    let mut group = c.benchmark_group("id_hash_churn");
    group.throughput(Throughput::Elements(KEYS));
    group.bench_function(BenchmarkId::new(hasher, key), |b| {
        let mut map: HashMap<K, u64, S> = (0..KEYS).map(|i| (K::nth(i), i)).collect();
        let mut next = KEYS;
        b.iter(|| {
            // Each new request goes in as the oldest one completes.
            for _ in 0..KEYS {
                map.insert(K::nth(next), next);
                black_box(map.remove(&K::nth(next - KEYS)));
                next += 1;
            }
        })
    });
    group.finish();
}

fn both<K: Key>(c: &mut Criterion, key: &str) {
    lookups::<K, FxBuildHasher>(c, key, "fx");
    lookups::<K, BuildHasherDefault<MulXor>>(c, key, "mulxor");
    churn::<K, FxBuildHasher>(c, key, "fx");
    churn::<K, BuildHasherDefault<MulXor>>(c, key, "mulxor");
}

fn id_hash(c: &mut Criterion) {
    both::<u64>(c, "request_id");
    both::<(u128, u64)>(c, "nexus_request");
    both::<LinkId>(c, "link_id");
}

criterion_group!(benches, id_hash);
criterion_main!(benches);
