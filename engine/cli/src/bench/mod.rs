//! `hawser bench`: the data mover's loopback demo, and measurements of the session layer
//! and of the shards beneath it, over loopback (servers and clients in one process) or
//! against a server started with `hawser bench --serve ADDR` ([`service`]).
//!
//! - no `--mode` (replicate): the embedded demo ([`replicate`]), a generated data set
//!   pushed to a replication server in this process and verified byte for byte.
//! - `--mode rpc` ([`session`]): 64-byte exchanges (echo). `--pipeline 1` (default) is
//!   ping-pong: one call in flight, so the latency is the round trip; `--pipeline N`
//!   keeps N in flight.
//! - `--mode bulk` ([`session`]): 1 MiB requests into a sink that answers with an empty
//!   body, 8 in flight by default.
//! - `--mode raw` ([`raw`]): the shards alone, without the session layer: the ceiling
//!   bulk is measured against.
//!
//! `throughput_bytes_per_sec` counts payload bytes in both directions (request plus
//! response bodies; frame headers not included). Latency is measured per call by the
//! caller, from submission to completion, and recorded in an HDR histogram (3
//! significant digits), which `--histogram FILE` writes in the classic `.hgrm`
//! percentile-distribution text format (values in microseconds). `--json` also carries
//! `intervals` as iperf3's (`start`, `end`, `bytes`, `bits_per_second`, every 0.5 s from
//! the first call, the warm-up included), sampled from the nexus counters off the hot
//! path, so a ramp-up over a long fat link shows ([`report`]).
//!
//! Callers ([`callers`]): by default (`--caller shard`) each call is started by the
//! previous one's completion on the client's shard
//! ([`Client::call_then`](hawser_runtime::Client::call_then)), so an exchange wakes only
//! the two shards, as a socket ping-pong wakes its two threads; `--caller thread` calls
//! from an application thread through
//! [`Client::pipeline`](hawser_runtime::Client::pipeline) (every answer then crosses from
//! the shard to that thread). In rpc mode the shards also busy-poll before sleeping
//! (`--busy-poll-us`), which saves their wake-ups between exchanges.

pub mod args;
pub mod callers;
pub mod dmp;
mod dtp;
pub mod raw;
pub mod replicate;
pub mod report;
pub mod service;
pub mod session;
mod tls;

use std::process::ExitCode;

use hawser_runtime::ApiError;

pub use args::{BenchArgs, CallerKind, Mode};
pub use report::{BenchInterval, BenchReport, INTERVAL, Latency, print_summary};
pub use service::{BENCH_ECHO, BENCH_SINK, bench_service};

/// Measures `--mode rpc`, `bulk` or `raw` as `args` describe.
pub fn run(args: &BenchArgs) -> Result<BenchReport, ApiError> {
    let shards = args.shards.max(1);
    let busy_poll_us = args.busy_poll_us.unwrap_or(match args.mode {
        Mode::Rpc => 50,
        Mode::Bulk | Mode::Replicate | Mode::Raw | Mode::Dmp | Mode::Dtp => 0,
    });
    match args.mode {
        Mode::Raw => raw::run(args, shards, busy_poll_us),
        Mode::Rpc | Mode::Bulk | Mode::Replicate | Mode::Dmp | Mode::Dtp => {
            session::run(args, shards, busy_poll_us)
        }
    }
}

/// `hawser bench` from the command line.
pub fn run_cli(args: &BenchArgs) -> ExitCode {
    if let Some(name) = &args.congestion
        && let Err(e) = hawser_shards::check_congestion_control(name)
    {
        eprintln!("hawser bench: --congestion: {e}");
        return ExitCode::from(2);
    }
    if !args.serve.is_empty() {
        return service::serve(args, &args.serve);
    }
    if args.mode == Mode::Replicate {
        return replicate::run_cli(args);
    }
    if args.mode == Mode::Dmp {
        return dmp::run_cli(args);
    }
    if args.mode == Mode::Dtp {
        return dtp::run_cli(args);
    }
    let measured = run(args).map_err(|e| e.to_string());
    match measured.and_then(|report| report::output(&report, args).map(|()| report)) {
        Ok(report) if report.errors > 0 => ExitCode::FAILURE,
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hawser bench: {e}");
            ExitCode::FAILURE
        }
    }
}
