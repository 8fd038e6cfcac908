//! iceoryx2 against hawser's shared-memory links (issue 14): bulk rate of 1 MiB messages
//! and round trips of 64-byte messages, every case once per run, the order reversed on
//! every other run, medians over the runs.
//!
//! ```text
//! cargo run --release --manifest-path benches/iceoryx2-compare/Cargo.toml -- [--bytes N] [--runs R] [--rounds K]
//! ```

mod hawser;
mod ice;

use std::time::Duration;

use hawser_shards::demo::LoopbackTransport;

pub(crate) const MIB: usize = 1 << 20;
/// Bytes of a ping-pong message.
pub(crate) const MSG: usize = 64;
/// Untimed round trips before a ping-pong's timed ones.
const WARMUP: u64 = 1_000;
/// How long the busy-polling hawser shards spin before parking.
const BUSY_POLL: Duration = Duration::from_micros(200);

pub(crate) type Res<T> = Result<T, String>;

/// Turns any error into this binary's string error, saying what failed.
pub(crate) trait WithContext<T> {
    fn ctx(self, what: &str) -> Res<T>;
}

impl<T, E: std::fmt::Debug> WithContext<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Res<T> {
        self.map_err(|e| format!("{what}: {e:?}"))
    }
}

/// The body every bulk message carries (hawser's loopback demo sends the same pattern).
pub(crate) fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// One measured case.
#[derive(Debug, Clone, Copy)]
enum Case {
    HawserBulk(LoopbackTransport),
    IceBulk(ice::Consume),
    HawserPingPong(hawser::Link, Option<Duration>),
    IcePingPong(ice::Wait),
}

impl Case {
    const ALL: [Case; 9] = [
        Case::HawserBulk(LoopbackTransport::Shm),
        Case::IceBulk(ice::Consume::CopyOut),
        Case::IceBulk(ice::Consume::InPlace),
        Case::HawserBulk(LoopbackTransport::Unix),
        Case::HawserPingPong(hawser::Link::Shm, Some(BUSY_POLL)),
        Case::IcePingPong(ice::Wait::Spin),
        Case::HawserPingPong(hawser::Link::Shm, None),
        Case::IcePingPong(ice::Wait::Event),
        Case::HawserPingPong(hawser::Link::Unix, Some(BUSY_POLL)),
    ];

    fn label(self) -> &'static str {
        match self {
            Case::HawserBulk(LoopbackTransport::Shm) => "hawser shm link, 1 MiB writes",
            Case::HawserBulk(LoopbackTransport::Unix) => "hawser Unix socket (reference)",
            Case::HawserBulk(LoopbackTransport::Tcp) => "hawser TCP loopback",
            Case::IceBulk(ice::Consume::CopyOut) => "iceoryx2 1 MiB samples, copied out",
            Case::IceBulk(ice::Consume::InPlace) => "iceoryx2 1 MiB samples, read in place",
            Case::HawserPingPong(hawser::Link::Shm, Some(_)) => "hawser shm, busy-polling shards",
            Case::HawserPingPong(hawser::Link::Shm, None) => "hawser shm, parked shards (eventfd)",
            Case::HawserPingPong(hawser::Link::Unix, _) => "hawser Unix socket, busy-polling",
            Case::IcePingPong(ice::Wait::Spin) => "iceoryx2 pub-sub pair, spinning receive",
            Case::IcePingPong(ice::Wait::Event) => "iceoryx2 pub-sub + event, blocking wait",
        }
    }

    fn is_bulk(self) -> bool {
        matches!(self, Case::HawserBulk(_) | Case::IceBulk(_))
    }

    /// GB/s for a bulk case, µs per round trip for a ping-pong.
    fn run(self, bytes: u64, rounds: u64) -> Res<f64> {
        let rtt_us = |d: Duration| d.as_secs_f64() * 1e6;
        Ok(match self {
            Case::HawserBulk(transport) => hawser::bulk(transport, bytes)? / 1e9,
            Case::IceBulk(consume) => ice::bulk(consume, bytes / MIB as u64)? / 1e9,
            Case::HawserPingPong(link, busy) => {
                rtt_us(hawser::ping_pong(link, busy, WARMUP, rounds)?)
            }
            Case::IcePingPong(wait) => rtt_us(ice::ping_pong(wait, WARMUP, rounds)?),
        })
    }
}

struct Args {
    bytes: u64,
    runs: usize,
    rounds: u64,
    /// Only the cases whose label contains this.
    only: Option<String>,
}

fn parse_size(s: &str) -> Res<u64> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().ctx("a size (bytes, or with K, M or G)")?;
    Ok(n << shift)
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        bytes: 8 << 30,
        runs: 5,
        rounds: 50_000,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--bytes" => args.bytes = parse_size(&value()?)?,
            "--runs" => args.runs = value()?.parse().ctx("--runs")?,
            "--rounds" => args.rounds = value()?.parse().ctx("--rounds")?,
            "--only" => args.only = Some(value()?),
            "-h" | "--help" => {
                println!(
                    "usage: iceoryx2-compare [--bytes N[K|M|G]] [--runs R] [--rounds K] \
                     [--only TEXT]\n\
                     bulk: N bytes (default 8G) in 1 MiB messages; ping-pong: K timed \
                     64-byte round trips (default 50000); R runs (default 5), medians; \
                     --only: the cases whose label contains TEXT"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    // Whole 1 MiB messages, at least one.
    args.bytes = (args.bytes / MIB as u64).max(1) * MIB as u64;
    if args.runs == 0 || args.rounds == 0 {
        return Err("--runs and --rounds must be at least 1".into());
    }
    Ok(args)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args = parse_args()?;
    // iceoryx2 warns on its own (for example about a missing config file); errors come back
    // as values here.
    iceoryx2::prelude::set_log_level(iceoryx2::prelude::LogLevel::Error);
    eprintln!(
        "bulk: {} MiB per case in 1 MiB messages; ping-pong: {} timed round trips of {MSG} \
         bytes after {WARMUP}; {} runs",
        args.bytes >> 20,
        args.rounds,
        args.runs
    );
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); Case::ALL.len()];
    for run in 0..args.runs {
        let mut order: Vec<usize> = (0..Case::ALL.len())
            .filter(|&i| {
                args.only
                    .as_deref()
                    .is_none_or(|only| Case::ALL[i].label().contains(only))
            })
            .collect();
        if run % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let case = Case::ALL[i];
            let value = case
                .run(args.bytes, args.rounds)
                .map_err(|e| format!("{}: {e}", case.label()))?;
            let unit = if case.is_bulk() { "GB/s" } else { "µs RTT" };
            eprintln!("run {run}: {:<42} {value:>8.2} {unit}", case.label());
            results[i].push(value);
        }
    }
    println!(
        "\n| case | median | min | max |\n|---|---:|---:|---:|\n| **bulk, GB/s (1 stream, 2 threads)** | | | |"
    );
    for (i, case) in Case::ALL.iter().enumerate() {
        if i == Case::ALL.iter().position(|c| !c.is_bulk()).unwrap_or(0) {
            println!("| **64-byte round trip, µs (mean)** | | | |");
        }
        let v = &results[i];
        if v.is_empty() {
            continue;
        }
        let (min, max) = v
            .iter()
            .fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
        println!(
            "| {} | {:.2} | {min:.2} | {max:.2} |",
            case.label(),
            median(v)
        );
    }
    Ok(())
}
