//! Encode and decode throughput of DSP Request frames (64 B, 4 KiB, 1 MiB bodies), plain,
//! with digest, and with lz4 on a compressible and an incompressible body.
//!
//! `cargo bench -p hawser-benches --bench wire_dsp -- decode` runs the decode half (with
//! a digest, the digest dominates: the body is never copied). Targets and figures: README,
//! "Measured".

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hawser_wire::dsp::{
    Channel, Compression, EncodeOptions, Frame, FrameDecoder, FrameEncoder, Request,
};

const SIZES: [usize; 3] = [64, 4 * 1024, 1024 * 1024];

/// Deterministic noise: lz4 cannot shrink it.
fn incompressible(len: usize) -> Vec<u8> {
    use rand_core::{Rng, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1).fill_bytes(&mut bytes);
    bytes
}

/// Text-like data with repetition, as control payloads and many files are.
fn compressible(len: usize) -> Vec<u8> {
    b"hawser replicates datasets over trunked connections; "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

struct Variant {
    name: &'static str,
    options: EncodeOptions,
    body: fn(usize) -> Vec<u8>,
}

fn variants() -> [Variant; 4] {
    [
        Variant {
            name: "plain",
            options: EncodeOptions {
                digest: false,
                compression: Compression::Off,
            },
            body: incompressible,
        },
        Variant {
            name: "digest",
            options: EncodeOptions {
                digest: true,
                compression: Compression::Off,
            },
            body: incompressible,
        },
        Variant {
            name: "lz4_compressible",
            options: EncodeOptions {
                digest: true,
                compression: Compression::Lz4,
            },
            body: compressible,
        },
        Variant {
            name: "lz4_incompressible",
            options: EncodeOptions {
                digest: true,
                compression: Compression::Lz4,
            },
            body: incompressible,
        },
    ]
}

fn request(body: &[u8]) -> Frame<'_> {
    Frame::Request(Request {
        channel: Channel::Fore,
        slot: 7,
        sequence: 1234,
        request_id: 0x0102_0304,
        exchange: 42,
        order: None,
        body,
    })
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("dsp_encode_request");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for variant in variants() {
        for size in SIZES {
            let body = (variant.body)(size);
            let frame = request(&body);
            let mut encoder = FrameEncoder::new(variant.options);
            let mut out = Vec::with_capacity(size + 64);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(variant.name, size), |b| {
                b.iter(|| {
                    out.clear();
                    let header = encoder.encode(black_box(&frame), &mut out);
                    black_box((header, out.len()))
                })
            });
        }
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("dsp_decode_request");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for variant in variants() {
        for size in SIZES {
            let body = (variant.body)(size);
            let mut wire = Vec::new();
            FrameEncoder::new(variant.options)
                .encode(&request(&body), &mut wire)
                .expect("encodes");
            let mut decoder = FrameDecoder::new(2 << 20);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(variant.name, size), |b| {
                b.iter(|| {
                    let decoded = decoder.decode(black_box(&wire));
                    match decoded {
                        Ok(Some((Frame::Request(r), consumed))) => {
                            black_box((r.body.len(), consumed));
                        }
                        other => panic!("bench frame did not decode: {other:?}"),
                    }
                })
            });
        }
    }
    // The floor under "decode with digest": xxh3-64 alone over the same bytes, measured in
    // the same run, so the codec's own cost shows as the gap (the machine is noisy).
    for size in SIZES {
        let body = incompressible(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("xxh3_only_reference", size), |b| {
            b.iter(|| black_box(hawser_wire::xxh3::hash64(black_box(&body))))
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
