//! `hawser bench --mode raw`: the shards' bulk throughput without the session layer, the
//! ceiling `--mode bulk` is measured against.

use std::time::Duration;

use hawser_runtime::ApiError;

use crate::bench::args::BenchArgs;
use crate::bench::report::{BenchReport, Latency};
use crate::histogram::new_latency_histogram;

/// Measures the shards in the configuration the session runs them in (unpinned, the
/// driver's pool).
pub(crate) fn run(
    args: &BenchArgs,
    shards: usize,
    busy_poll_us: u64,
) -> Result<BenchReport, ApiError> {
    let config = hawser_shards::ShardsConfig {
        shards,
        pin: false,
        busy_poll: (busy_poll_us > 0).then(|| Duration::from_micros(busy_poll_us)),
        tcp_congestion: args.congestion.clone(),
        ..hawser_shards::ShardsConfig::default()
    };
    let mut run = hawser_shards::demo::LoopbackBulk {
        connections: args.connections.max(1),
        bytes: 0,
        digest: args.digest,
        local: false,
        answers: args.answers,
    };
    // The shards move a byte count, timed from connect to the last byte. A first run of
    // about the session's warm-up (guessing 4 GB/s) warms up as the session runs do and
    // gives the rate that sizes the measured run to about `--duration` (the rate varies
    // severalfold with the machine's load and the congestion control).
    let warmup = (args.duration * 0.1).clamp(0.2, 1.0);
    run.bytes = (4e9 * warmup) as u64;
    let estimate = hawser_shards::demo::loopback_bulk(config.clone(), &run)?;
    run.bytes = (estimate * args.duration.max(0.1)) as u64;
    let rate = hawser_shards::demo::loopback_bulk(config, &run)?;
    let histogram = new_latency_histogram();
    Ok(BenchReport {
        mode: "raw",
        size: 1 << 20,
        pipeline: 0,
        connections: run.connections,
        nexuses: 0,
        shards,
        caller: args.caller,
        busy_poll_us,
        congestion: args.congestion.clone(),
        answers: args.answers,
        digest: args.digest,
        compress: false,
        duration_sec: run.bytes as f64 / rate,
        exchanges: 0,
        errors: 0,
        exchanges_per_sec: 0.0,
        throughput_bytes_per_sec: rate,
        latency_ns: Latency::of(&histogram),
        retries: 0,
        // The shards report only their total.
        intervals: Vec::new(),
        histogram,
    })
}
