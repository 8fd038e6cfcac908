//! `hawser bench`: request/response and bulk throughput and latency of the session layer
//! on shards, over loopback (server and client in one process) or against a server
//! started with `hawser bench --serve ADDR`.
//!
//! - no `--mode` (replicate): the embedded demo, see `crate::bench::replicate`.
//! - `--mode rpc`: 64-byte exchanges (echo). `--pipeline 1` (default) is ping-pong: one
//!   call in flight, so the latency is the round trip; `--pipeline N` keeps N in flight.
//! - `--mode bulk`: 1 MiB requests into a sink that answers with an empty body, 8 in
//!   flight by default.
//!
//! `throughput_bytes_per_sec` counts payload bytes in both directions (request plus
//! response bodies; frame headers not included). Latency is measured per call by the
//! caller, from submission to completion, and recorded in an HDR histogram (3
//! significant digits), which `--histogram FILE` writes in the classic `.hgrm`
//! percentile-distribution text format (values in microseconds). `--json` also carries
//! `intervals` as iperf3's (`start`, `end`, `bytes`, `bits_per_second`, every 0.5 s from
//! the first call, the warm-up included), sampled from the nexus counters off the hot
//! path, so a ramp-up over a long fat link shows.
//!
//! Callers: by default (`--caller shard`) each call is started by the previous one's
//! completion on the client's shard ([`Client::call_then`]), so an exchange wakes only
//! the two shards, as a socket ping-pong wakes its two threads; `--caller thread` calls
//! from an application thread through [`Client::pipeline`] (every answer then crosses
//! from the shard to that thread). In rpc mode the shards also busy-poll 50 µs before
//! sleeping (`--busy-poll-us`; a wake-up costs ~20 µs on the build machine's VM).
//!
//! # Measured (2026-12-02, the 2-core build VM, host shared: figures swing up to 2x)
//!
//! `scripts/perf.sh loopback-rpc` (5 alternated rounds, medians; sockperf's half round
//! trips doubled):
//!
//! | subject | p50 RTT | p99.9 RTT | exchanges/s |
//! |---|---|---|---|
//! | hawser ping-pong, on-shard caller, busy poll 50 µs | 14.3 µs | 186 µs | 58,600 |
//! | hawser ping-pong, blocking caller thread, no busy poll | 104 µs | 1,355 µs | 8,400 |
//! | hawser, 256 in flight, 4 connections, on-shard caller | 169 µs | 1,778 µs | 1,308,000 (1.14-1.43 M) |
//! | sockperf ping-pong --tcp -m 64 | 78.1 µs | 818 µs | 12,000 |
//! | sockperf, both ends polling (`--timeout 0`) | 81.7 µs | 1,363 µs | 11,400 |
//!
//! Bulk (`scripts/perf.sh loopback-bulk`, 1 MiB requests, 8 in flight, 2 shards, run of
//! 2026-12-02 evening): with digest over two nexuses (`--nexuses 2`, one per shard, so each
//! shard sends for one and receives for the other) 6.13 GB/s = 0.86x the shards alone
//! (`--mode raw`, 7.16 GB/s), both with `--congestion cubic`; 3.74 vs 5.78 GB/s = 0.65x
//! under this machine's default, BBR. Without digest two nexuses move 1.05x the shards'
//! rate under cubic (medians of 4 single runs); the digest is two xxh3 passes over every
//! byte (sender and receiver), about 15% of the two cores at these rates, which is the
//! gap. Under BBR (which paces every connection from its delivery-rate samples) the
//! session falls further behind one-way raw streams on loopback, for a cause not pinned
//! down: raw sinks sending 40 bytes back per MiB (`--mode raw --answers`, the session's
//! traffic shape) cost one connection 25% in one sitting and 0-8% in another, and 4
//! connections nothing. Receiving each frame straight into its storage took one nexus
//! from 2.3 to 3.0-3.9 GB/s; receiving a large frame up to its last byte (the next
//! frame's start then never has to move) took the session's own copies from 3.5% to 0.6%
//! of the CPU. With one nexus the client's shard sends every byte and is the busier one
//! (on loopback the sender's core also runs the receiving TCP stack).
//!
//! Reproduce: `sockperf server --tcp -i 127.0.0.1 -p 11111 &`, then
//! `sockperf ping-pong --tcp -i 127.0.0.1 -p 11111 -m 64 -t 5`,
//! `hawser bench --mode rpc --json`, `hawser bench --mode rpc --pipeline 256 --json`,
//! `hawser bench --mode bulk --digest --json`, and
//! `HAWSER_BULK_ONLY=shards cargo bench -p hawser-benches --bench loopback_bulk`.

pub mod replicate;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use hawser_runtime::{
    ApiError, CallError, Client, ClientOptions, ExchangeId, Runtime, RuntimeConfig, Server,
    ServerBuilder, Service, ShardCaller,
};

/// The echo exchange of the bench service.
pub const BENCH_ECHO: ExchangeId = ExchangeId(0xBE01);
/// The sink exchange of the bench service (answers with an empty body).
pub const BENCH_SINK: ExchangeId = ExchangeId(0xBE02);

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The embedded demo: a replication server on loopback, a generated data set pushed
    /// to it and verified byte for byte (see `crate::bench::replicate`).
    Replicate,
    /// Small request/response exchanges.
    Rpc,
    /// Large requests.
    Bulk,
    /// The shards alone, no session layer: `--connections` loopback TCP connections,
    /// each streaming one shared 1 MiB body into a byte-counting sink (xxh3 over every
    /// byte with `--digest`), from each shard to the next: the ceiling `--mode bulk` is
    /// measured against.
    Raw,
}

/// Arguments of `hawser bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value = "replicate")]
    pub mode: Mode,
    /// Measure against a running `hawser bench --serve` at HOST:PORT instead of a
    /// loopback server in this process.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// Serve the bench exchanges on ADDR until killed (no measurement). Its clients are
    /// anonymous: on an address other than a loopback one, give --allow-anonymous too.
    #[arg(long, value_name = "ADDR", conflicts_with = "connect")]
    pub serve: Option<String>,
    /// With --serve: accept (anonymous) clients on an address other machines can reach.
    #[arg(long, requires = "serve")]
    pub allow_anonymous: bool,
    /// Connections in each client's trunk.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Client nexuses measured at once, each keeping `--pipeline` calls in flight:
    /// nexus i's client runs on shard i and its loopback server on the next shard, so
    /// with one nexus per shard every shard both sends and receives (as each host of a
    /// real link does) instead of one shard sending everything.
    #[arg(long, default_value_t = 1)]
    pub nexuses: usize,
    /// Shards in this process: with 2 or more the loopback server runs on shard 1 and the
    /// client on shard 0; with 1 both share shard 0.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Seconds to measure (after a short warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Calls in flight (default: 1 for rpc, i.e. ping-pong; 8 for bulk).
    #[arg(long)]
    pub pipeline: Option<usize>,
    /// Request size in bytes (default: 64 for rpc, 1 MiB for bulk); for replicate, the
    /// data set's size (default 256 MiB).
    #[arg(long)]
    pub size: Option<usize>,
    /// xxh3 digest on every frame.
    #[arg(long)]
    pub digest: bool,
    /// Offer lz4 compression.
    #[arg(long)]
    pub compress: bool,
    /// Who issues the calls: `shard` starts each next call from the previous one's
    /// completion, on the client's shard (`Client::call_then`: no thread hop, the
    /// thread-per-core form); `thread` calls from an application thread through the
    /// blocking API's pipeline (each answer crosses from the shard to that thread).
    #[arg(long, value_enum, default_value = "shard")]
    pub caller: CallerKind,
    /// With `--caller thread`: microseconds the caller polls for an answer before
    /// blocking (saves a thread wake-up per call; costs a busy core).
    #[arg(long, default_value_t = 0)]
    pub spin_us: u64,
    /// Microseconds each shard looks for work before sleeping in the kernel (saves the
    /// shards' wake-ups between exchanges; keeps their cores busy meanwhile); 0: sleep
    /// at once [default: 50 for rpc, 0 for bulk].
    #[arg(long, value_name = "MICROS")]
    pub busy_poll_us: Option<u64>,
    /// TCP congestion control of every connection, e.g. `cubic` or `bbr` (one of
    /// /proc/sys/net/ipv4/tcp_available_congestion_control) [default: the system's].
    /// On loopback it matters: with digest the session's bulk measured 0.65x the shards'
    /// raw streams under BBR and 0.86x under cubic (see README, "Measured").
    #[arg(long, value_name = "NAME")]
    pub congestion: Option<String>,
    /// With `--mode raw`: each sink sends 40 bytes back per MiB received, the traffic
    /// shape of the session's 1 MiB requests and their answers (data both ways on every
    /// connection), without the session.
    #[arg(long)]
    pub answers: bool,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Write the latency distribution to FILE (HdrHistogram `.hgrm` text).
    #[arg(long, value_name = "FILE")]
    pub histogram: Option<PathBuf>,
}

/// Who issues the bench's calls (see [`BenchArgs::caller`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerKind {
    /// Completion callbacks on the client's shard start the next calls.
    Shard,
    /// An application thread, through the blocking API.
    Thread,
}

/// The measured figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// `rpc` or `bulk`.
    pub mode: &'static str,
    /// Request size in bytes.
    pub size: usize,
    /// Calls in flight.
    pub pipeline: usize,
    /// Connections in each nexus's trunk.
    pub connections: usize,
    /// Client nexuses measured at once.
    pub nexuses: usize,
    /// Shards in this process.
    pub shards: usize,
    /// Who issued the calls.
    pub caller: CallerKind,
    /// Microseconds the shards busy-polled before sleeping (0: not at all).
    pub busy_poll_us: u64,
    /// TCP congestion control asked for (`None`: the system's).
    pub congestion: Option<String>,
    /// Raw sinks answered (`--answers`).
    pub answers: bool,
    /// Digest on.
    pub digest: bool,
    /// Compression offered.
    pub compress: bool,
    /// Seconds measured.
    pub duration_sec: f64,
    /// Exchanges completed in the measured interval.
    pub exchanges: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Exchanges per second.
    pub exchanges_per_sec: f64,
    /// Payload bytes (requests + responses) per second.
    pub throughput_bytes_per_sec: f64,
    /// Per-call latency percentiles, nanoseconds.
    pub latency_ns: Latency,
    /// Retries the client made (connection losses).
    pub retries: u64,
    /// Payload bytes completed per interval of [`INTERVAL`], from the first call (the
    /// warm-up included, so a ramp-up shows), as iperf3's `intervals`.
    pub intervals: Vec<BenchInterval>,
    #[serde(skip)]
    histogram: Histogram<u64>,
}

/// How often [`BenchReport::intervals`] are sampled.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Bytes completed in one interval (seconds since the first call).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BenchInterval {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Payload bytes (requests + responses) of the exchanges completed in it.
    pub bytes: u64,
    /// `bytes` as a rate, bits per second.
    pub bits_per_second: f64,
}

/// Samples the exchanges the clients completed every [`INTERVAL`] (from their nexus
/// counters, off the hot path) until `stop` is set; `bytes_per_exchange` turns counts
/// into bytes.
fn sample_intervals(
    clients: &[Client],
    bytes_per_exchange: u64,
    stop: &std::sync::atomic::AtomicBool,
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
            if stop.load(AtomicOrdering::Acquire) {
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

impl BenchReport {
    /// The latency histogram (nanoseconds).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }
}

/// Latency percentiles in nanoseconds, the same shape as every hawser report's.
pub use hawser_replicate::Percentiles as Latency;

/// The service `hawser bench` calls.
pub fn bench_service() -> Service {
    Service::new("bench")
        .handler(BENCH_ECHO, "bench.echo", |_, body| Ok(body))
        .handler(BENCH_SINK, "bench.sink", |_, _| Ok(Bytes::new()))
}

/// Runs the benchmark described by `args`.
pub fn run(args: &BenchArgs) -> Result<BenchReport, ApiError> {
    let shards = args.shards.max(1);
    let busy_poll_us = args.busy_poll_us.unwrap_or(match args.mode {
        Mode::Rpc => 50,
        Mode::Bulk | Mode::Replicate | Mode::Raw => 0,
    });
    if args.mode == Mode::Raw {
        return run_raw(args, shards, busy_poll_us);
    }
    let runtime = Runtime::start(RuntimeConfig {
        shards,
        tcp_congestion: args.congestion.clone(),
        busy_poll: (busy_poll_us > 0).then(|| Duration::from_micros(busy_poll_us)),
    })?;
    let nexuses = args.nexuses.max(1);
    // Nexus i: its client on shard i, its server (loopback) on the next shard, so with
    // as many nexuses as shards every shard sends for one nexus and receives for another.
    let mut servers: Vec<Server> = Vec::new();
    let mut addrs = Vec::with_capacity(nexuses);
    for i in 0..nexuses {
        match &args.connect {
            Some(a) => addrs.push(a.clone()),
            None => {
                let s = ServerBuilder::new()
                    .service(bench_service())
                    .runtime(&runtime, (i + 1) % shards)
                    .listen("127.0.0.1:0")?;
                addrs.push(s.local_addr().to_string());
                servers.push(s);
            }
        }
    }
    let (exchange, size, depth) = match args.mode {
        Mode::Rpc => (
            BENCH_ECHO,
            args.size.unwrap_or(64),
            args.pipeline.unwrap_or(1),
        ),
        // `run_cli` hands replicate to `crate::bench::replicate`; here it measures as bulk.
        Mode::Bulk | Mode::Replicate | Mode::Raw => (
            BENCH_SINK,
            args.size.unwrap_or(1 << 20),
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
        ..ClientOptions::default()
    };
    let mut clients = Vec::with_capacity(nexuses);
    for (i, addr) in addrs.iter().enumerate() {
        let config = ClientOptions {
            identity: format!("hawser-bench-{}-{i}", std::process::id()),
            ..config.clone()
        };
        clients.push(Client::connect_with(
            addr.as_str(),
            config,
            &runtime,
            i % shards,
        )?);
    }
    // Compressible but not trivial: a repeating 251-byte pattern.
    // Leaked once per run so that cloning the body per call is free (a static `Bytes`
    // has no reference count to bump).
    let body: &'static [u8] = Vec::leak((0..size).map(|i| (i % 251) as u8).collect());
    let body = Bytes::from_static(body);
    let response_size = if exchange == BENCH_ECHO { size } else { 0 };

    let warmup = Duration::from_secs_f64((args.duration * 0.1).clamp(0.2, 1.0));
    let measured = Duration::from_secs_f64(args.duration.max(0.1));
    let stop = std::sync::atomic::AtomicBool::new(false);
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
        stop.store(true, AtomicOrdering::Release);
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
            Mode::Bulk | Mode::Replicate | Mode::Raw => "bulk",
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

/// `--mode raw`: the shards' bulk throughput without the session layer, in the same
/// shard configuration as the session runs (unpinned, the driver's pool).
fn run_raw(args: &BenchArgs, shards: usize, busy_poll_us: u64) -> Result<BenchReport, ApiError> {
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
    // about the session's warm-up (at 4 GB/s) warms up as the session runs do and gives the
    // rate that sizes the measured run to about `--duration` (this machine moves anything
    // from 4 to 12 GB/s, depending on the hour and the congestion control).
    let warmup = (args.duration * 0.1).clamp(0.2, 1.0);
    run.bytes = (4e9 * warmup) as u64;
    let estimate = hawser_shards::demo::loopback_bulk(config.clone(), &run)?;
    run.bytes = (estimate * args.duration.max(0.1)) as u64;
    let rate = hawser_shards::demo::loopback_bulk(config, &run)?;
    let histogram = new_histogram();
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

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3).expect("constant bounds")
}

/// One of the `depth` call chains of [`measure_on_shard`]: each completion records its
/// latency and starts the chain's next call, on the client's shard.
struct Chain {
    caller: ShardCaller,
    exchange: ExchangeId,
    body: Bytes,
    end: Instant,
    done: u64,
    failed: u64,
    /// Chains still running; the last one to finish hands in the shard's histogram.
    running: Arc<AtomicUsize>,
    finished: std::sync::mpsc::Sender<ChainEnd>,
}

/// What a chain reports when it stops: its counts, and from the last chain the latencies
/// of them all.
struct ChainEnd {
    done: u64,
    failed: u64,
    histogram: Option<Histogram<u64>>,
}

thread_local! {
    /// The latencies recorded by the chains, on the client's shard thread: one histogram
    /// that stays in the cache instead of one per chain.
    static SHARD_LATENCIES: RefCell<Option<Histogram<u64>>> = const { RefCell::new(None) };
}

fn fire(mut chain: Box<Chain>) {
    // Read before submitting, as in `measure`.
    let t0 = Instant::now();
    if t0 >= chain.end {
        let histogram = (chain.running.fetch_sub(1, AtomicOrdering::AcqRel) == 1)
            .then(|| SHARD_LATENCIES.with_borrow_mut(Option::take))
            .flatten();
        let _ = chain.finished.send(ChainEnd {
            done: chain.done,
            failed: chain.failed,
            histogram,
        });
        return;
    }
    let (caller, body) = (chain.caller.clone(), chain.body.clone());
    caller.call_then(chain.exchange, body, move |result| {
        let latency = t0.elapsed().as_nanos().max(1) as u64;
        SHARD_LATENCIES.with_borrow_mut(|h| {
            h.get_or_insert_with(new_histogram)
                .saturating_record(latency);
        });
        match result {
            Ok(_) => chain.done += 1,
            Err(_) => chain.failed += 1,
        }
        fire(chain);
    });
}

/// Keeps `depth` call chains going on each client's shard for `duration` (each call
/// started by the previous one's completion); returns the latencies, (completed,
/// failed) and the elapsed time.
fn measure_on_shard(
    clients: &[Client],
    exchange: ExchangeId,
    body: &Bytes,
    depth: usize,
    duration: Duration,
) -> (Histogram<u64>, u64, u64, Duration) {
    let (finished, ends) = std::sync::mpsc::channel();
    let depth = depth.max(1);
    let start = Instant::now();
    for client in clients {
        // Per client: its chains all run on its shard's thread, whose histogram the
        // client's last chain hands in.
        let running = Arc::new(AtomicUsize::new(depth));
        for _ in 0..depth {
            fire(Box::new(Chain {
                caller: client.shard_caller(),
                exchange,
                body: body.clone(),
                end: start + duration,
                done: 0,
                failed: 0,
                running: Arc::clone(&running),
                finished: finished.clone(),
            }));
        }
    }
    drop(finished);
    let mut histogram = new_histogram();
    let (mut done, mut failed) = (0, 0);
    // Every chain reports once its last call completes (or the client is gone).
    for end in ends.iter() {
        if let Some(h) = end.histogram {
            let _ = histogram.add(&h);
        }
        done += end.done;
        failed += end.failed;
    }
    (histogram, done, failed, start.elapsed())
}

/// [`measure`] on every client at once, one caller thread each; returns the merged
/// latencies, (completed, failed) and the elapsed time.
fn measure_threads(
    clients: &[Client],
    exchange: ExchangeId,
    body: &Bytes,
    depth: usize,
    duration: Duration,
) -> (Histogram<u64>, u64, u64, Duration) {
    let start = Instant::now();
    let per_client: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .map(|client| {
                scope.spawn(move || {
                    let mut histogram = new_histogram();
                    let (done, failed, _) = measure(
                        client,
                        exchange,
                        body,
                        depth,
                        duration,
                        Some(&mut histogram),
                    );
                    (histogram, done, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("caller thread"))
            .collect()
    });
    let mut histogram = new_histogram();
    let (mut done, mut failed) = (0, 0);
    for (h, d, f) in per_client {
        let _ = histogram.add(&h);
        done += d;
        failed += f;
    }
    (histogram, done, failed, start.elapsed())
}

/// Keeps `depth` calls in flight for `duration`; returns (completed, failed, elapsed).
fn measure(
    client: &Client,
    exchange: ExchangeId,
    body: &Bytes,
    depth: usize,
    duration: Duration,
    mut histogram: Option<&mut Histogram<u64>>,
) -> (u64, u64, Duration) {
    let mut pipe = client.pipeline();
    let mut started: HashMap<u64, Instant> = HashMap::default();
    let start = Instant::now();
    let end = start + duration;
    let (mut done, mut failed) = (0u64, 0u64);
    let mut now = start;
    loop {
        while now < end && pipe.outstanding() < depth.max(1) {
            // The clock is read before submitting: the submission may wake a shard that
            // preempts this thread until the answer is back.
            let t0 = Instant::now();
            let token = pipe.submit(exchange, body.clone());
            started.insert(token, t0);
            now = t0;
        }
        let Some((token, result)) = pipe.next_completion() else {
            break;
        };
        now = Instant::now();
        if let Some(t0) = started.remove(&token)
            && let Some(h) = histogram.as_deref_mut()
        {
            h.saturating_record((now - t0).as_nanos().max(1) as u64);
        }
        match result {
            Ok(_) => done += 1,
            Err(CallError::Cancelled) | Err(_) => failed += 1,
        }
    }
    (done, failed, start.elapsed())
}

/// Writes `h` (nanoseconds) as an HdrHistogram percentile distribution in microseconds,
/// the classic `.hgrm` text of `outputPercentileDistribution(out, 5, 1000.0)`.
pub fn write_hgrm(h: &Histogram<u64>, out: &mut impl Write) -> std::io::Result<()> {
    const SCALE: f64 = 1000.0;
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / SCALE;
        if q < 1.0 {
            writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(out, "{value:12.3} {q:2.12} {total:10}")?;
        }
    }
    let sub_buckets = (2.0 * 10f64.powi(i32::from(h.sigfig())))
        .log2()
        .ceil()
        .exp2() as u64;
    writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    )?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    )
}

fn human_bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB/s", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB/s", b / 1e6)
    } else {
        format!("{:.1} kB/s", b / 1e3)
    }
}

fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

/// Prints the report as the human summary.
pub fn print_summary(r: &BenchReport) {
    if r.mode == "raw" {
        println!(
            "hawser bench raw: shards only, {} connections across {} shards, xxh3 {}{}: {} in {:.2} s",
            r.connections,
            r.shards,
            if r.digest { "on" } else { "off" },
            if r.answers { ", answering" } else { "" },
            human_bytes(r.throughput_bytes_per_sec),
            r.duration_sec
        );
        return;
    }
    println!(
        "hawser bench {}: {} B requests, {} in flight ({} caller, busy poll {} µs), {} nexus(es) of {} connections, {} shards, digest {}, compress {}",
        r.mode,
        r.size,
        r.pipeline,
        match r.caller {
            CallerKind::Shard => "on-shard",
            CallerKind::Thread => "thread",
        },
        r.busy_poll_us,
        r.nexuses,
        r.connections,
        r.shards,
        if r.digest { "on" } else { "off" },
        if r.compress { "on" } else { "off" },
    );
    println!(
        "  {} exchanges in {:.2} s ({} failed, {} retries): {:.0} exchanges/s, {}",
        r.exchanges,
        r.duration_sec,
        r.errors,
        r.retries,
        r.exchanges_per_sec,
        human_bytes(r.throughput_bytes_per_sec)
    );
    let l = r.latency_ns;
    println!(
        "  latency p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        micros(l.p50),
        micros(l.p90),
        micros(l.p99),
        micros(l.p999),
        micros(l.max)
    );
}

/// `hawser bench` from the command line.
pub fn run_cli(args: &BenchArgs) -> ExitCode {
    if let Some(name) = &args.congestion
        && let Err(e) = hawser_shards::check_congestion_control(name)
    {
        eprintln!("hawser bench: --congestion: {e}");
        return ExitCode::from(2);
    }
    if args.mode == Mode::Replicate && args.serve.is_none() {
        return crate::bench::replicate::run_cli(args);
    }
    if let Some(addr) = &args.serve {
        let allow = args.allow_anonymous.then_some(true);
        if let Err(e) = crate::mover::check_someone_may_connect(addr, allow, false, "bench") {
            eprintln!("hawser bench: {e}");
            return ExitCode::from(2);
        }
        let served = Runtime::with_tcp_congestion(args.shards.max(1), args.congestion.as_deref())
            .and_then(|runtime| {
                // Anonymous clients: on loopback by default, elsewhere when asked for.
                let builder = ServerBuilder::new().service(bench_service());
                let builder = match allow {
                    Some(allow) => builder.allow_anonymous(allow),
                    None => builder,
                };
                builder.runtime(&runtime, 0).listen(addr.as_str())
            });
        return match served {
            Ok(server) => {
                eprintln!(
                    "hawser bench: serving the bench exchanges on {}",
                    server.local_addr()
                );
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                eprintln!("hawser bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let report = match run(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hawser bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.histogram {
        let written = std::fs::File::create(path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            write_hgrm(&report.histogram, &mut w)?;
            w.flush()
        });
        if let Err(e) = written {
            eprintln!("hawser bench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("hawser bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_summary(&report);
    }
    if report.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
