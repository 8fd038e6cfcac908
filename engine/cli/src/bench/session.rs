//! `hawser bench --mode rpc|bulk`: exchanges over the session layer, between clients and
//! loopback servers in this process (or a `hawser bench --serve` elsewhere), timed per
//! call, with the throughput sampled every [`INTERVAL`] from the nexus counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_runtime::{
    Address, ApiError, Client, ClientOptions, Runtime, RuntimeConfig, Server, ServerBuilder,
};

use crate::bench::args::{BenchArgs, CallerKind, Mode};
use crate::bench::callers::{measure_on_shard, measure_threads};
use crate::bench::report::{BenchInterval, BenchReport, INTERVAL, Latency};
use crate::bench::service::{BENCH_ECHO, BENCH_SINK, bench_service};

/// Samples the exchanges the clients completed every [`INTERVAL`] (from their nexus
/// counters, off the hot path) until `stop` is set; `bytes_per_exchange` turns counts
/// into bytes.
fn sample_intervals(
    clients: &[Client],
    bytes_per_exchange: u64,
    stop: &AtomicBool,
) -> Vec<BenchInterval> {
    let completed = || -> u64 {
        clients
            .iter()
            .map(|c| {
                c.stats()
                    .nexuses
                    .first()
                    .map_or(0, |(_, n)| n.requests_completed)
            })
            .sum()
    };
    let start = Instant::now();
    let mut intervals = Vec::new();
    let (mut last_at, mut last_count) = (0.0, completed());
    loop {
        let wake = start + INTERVAL.mul_f64(intervals.len() as f64 + 1.0);
        while Instant::now() < wake {
            if stop.load(Ordering::Acquire) {
                return intervals;
            }
            std::thread::sleep(Duration::from_millis(10).min(wake - Instant::now()));
        }
        let (at, count) = (start.elapsed().as_secs_f64(), completed());
        let bytes = (count - last_count) * bytes_per_exchange;
        intervals.push(BenchInterval {
            start: last_at,
            end: at,
            bytes,
            bits_per_second: bytes as f64 * 8.0 / (at - last_at),
        });
        (last_at, last_count) = (at, count);
    }
}

/// Measures `--mode rpc` or `bulk` as `args` say, on `shards` shards that busy-poll
/// `busy_poll_us` before sleeping.
pub(crate) fn run(
    args: &BenchArgs,
    shards: usize,
    busy_poll_us: u64,
) -> Result<BenchReport, ApiError> {
    let runtime = Runtime::start(RuntimeConfig {
        shards,
        tcp_congestion: args.congestion.clone(),
        busy_poll: (busy_poll_us > 0).then(|| Duration::from_micros(busy_poll_us)),
        ..RuntimeConfig::default()
    })?;
    let nexuses = args.nexuses.max(1);
    // Nexus i: its client on shard i, its server (loopback) on the next shard, so with
    // as many nexuses as shards every shard sends for one nexus and receives for another.
    let mut servers: Vec<Server> = Vec::new();
    let mut addrs = Vec::with_capacity(nexuses);
    let connect = args.connect.as_deref().map(Address::parse).transpose()?;
    // The loopback servers' certificate, and the pin their clients trust.
    let own_tls = match (&connect, args.security.wants_tls()) {
        (None, true) => Some(super::tls::self_signed()?),
        _ => None,
    };
    let client_tls = match (&connect, &own_tls) {
        (Some(a), _) => {
            let text = args.connect.as_deref().unwrap_or_default();
            args.security
                .client_tls(&crate::security::tls_host(text, a))
                .map_err(|e| ApiError::Config(e.to_string()))?
        }
        (None, Some((_, pin))) => Some(super::tls::pinned(pin)?),
        (None, None) => None,
    };
    for i in 0..nexuses {
        match &connect {
            Some(a) => addrs.push(a.clone()),
            None => {
                let mut builder = ServerBuilder::new()
                    .service(bench_service())
                    .runtime(&runtime, (i + 1) % shards);
                if let Some((tls, _)) = &own_tls {
                    builder = builder.tls(tls.clone());
                }
                let s = builder.listen("127.0.0.1:0")?;
                addrs.push(Address::Tcp(s.local_addr()));
                servers.push(s);
            }
        }
    }
    let (exchange, size, depth) = match args.mode {
        Mode::Rpc => (
            BENCH_ECHO,
            args.size.map_or(64, |s| s as usize),
            args.pipeline.unwrap_or(1),
        ),
        // `bench::run` hands replicate, raw, dmp and dtp elsewhere; here they would measure as
        // bulk.
        Mode::Bulk | Mode::Replicate | Mode::Raw | Mode::Dmp | Mode::Dtp => (
            BENCH_SINK,
            args.size.map_or(1 << 20, |s| s as usize),
            args.pipeline.unwrap_or(8),
        ),
    };
    let config = ClientOptions {
        connections: args.connections.max(1),
        digest: args.digest,
        compression: args.compress,
        slots: depth.max(64) as u32,
        spin: Duration::from_micros(args.spin_us),
        connect_timeout: Duration::from_secs(5),
        tls: client_tls,
        sasl_mechanism: args.security.sasl_mechanism,
        ..ClientOptions::default()
    };
    let mut clients = Vec::with_capacity(nexuses);
    for (i, addr) in addrs.iter().enumerate() {
        let config = ClientOptions {
            identity: format!("hawser-bench-{}-{i}", std::process::id()),
            ..config.clone()
        };
        clients.push(Client::connect_to_with(addr, config, &runtime, i % shards)?);
    }
    // Compressible but not trivial: a repeating 251-byte pattern.
    // Leaked once per run so that cloning the body per call is free (a static `Bytes`
    // has no reference count to bump).
    let body: &'static [u8] = Vec::leak((0..size).map(|i| (i % 251) as u8).collect());
    let body = Bytes::from_static(body);
    let response_size = if exchange == BENCH_ECHO { size } else { 0 };

    let warmup = Duration::from_secs_f64((args.duration * 0.1).clamp(0.2, 1.0));
    let measured = Duration::from_secs_f64(args.duration.max(0.1));
    let stop = AtomicBool::new(false);
    let bytes_per_exchange = (size + response_size) as u64;
    let ((histogram, exchanges, errors, elapsed), intervals) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_intervals(&clients, bytes_per_exchange, &stop));
        let measured = match args.caller {
            CallerKind::Thread => {
                measure_threads(&clients, exchange, &body, depth, warmup);
                measure_threads(&clients, exchange, &body, depth, measured)
            }
            CallerKind::Shard => {
                measure_on_shard(&clients, exchange, &body, depth, warmup);
                measure_on_shard(&clients, exchange, &body, depth, measured)
            }
        };
        stop.store(true, Ordering::Release);
        (measured, sampler.join().unwrap_or_default())
    });
    let retries = clients
        .iter()
        .map(|c| c.stats().nexuses.first().map_or(0, |(_, n)| n.retries))
        .sum();
    for client in clients {
        client.close();
    }
    drop(servers);
    let secs = elapsed.as_secs_f64();
    Ok(BenchReport {
        mode: match args.mode {
            Mode::Rpc => "rpc",
            Mode::Bulk | Mode::Replicate | Mode::Raw | Mode::Dmp | Mode::Dtp => "bulk",
        },
        size,
        pipeline: depth,
        connections: args.connections.max(1),
        nexuses,
        shards,
        caller: args.caller,
        busy_poll_us,
        congestion: args.congestion.clone(),
        answers: false,
        digest: args.digest,
        compress: args.compress,
        duration_sec: secs,
        exchanges,
        errors,
        exchanges_per_sec: exchanges as f64 / secs,
        throughput_bytes_per_sec: (exchanges * (size + response_size) as u64) as f64 / secs,
        latency_ns: Latency::of(&histogram),
        retries,
        intervals,
        histogram,
    })
}
