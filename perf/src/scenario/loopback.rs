//! `loopback-bulk` and `loopback-rpc`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::hawser_tools;
use super::tools::{self, Iperf3Setup};
use super::{Context, add_series, settle};
use crate::report::{Outcome, Subject, parse_hgrm};

/// Connections on both sides of the bulk comparison: hawser's trunk and iperf3's `-P`.
pub const BULK_CONNECTIONS: usize = 4;
/// Calls in flight in the pipelined rpc variant.
pub const RPC_PIPELINE: usize = 256;
/// Busy polling of hawser's shards in the on-shard rpc variants (the bench's rpc
/// default), microseconds.
pub const RPC_BUSY_POLL_US: u64 = 50;
/// Request size of the rpc comparison (sockperf `-m`).
pub const RPC_MESSAGE_BYTES: usize = 64;

const THROUGHPUT: &str = "throughput_bytes_per_sec";

/// Runs `hawser bench`, recording a failure as a note instead of aborting the baselines.
pub(super) fn hawser_bench_run(
    outcome: &mut Outcome,
    subject: &Subject,
    binary: &std::path::Path,
    args: &[&str],
    histogram: Option<&std::path::Path>,
    round: usize,
) -> Option<hawser_tools::HawserBenchResult> {
    eprintln!("  round {round}: {}", subject.label());
    match hawser_tools::run_hawser_bench(binary, None, args, histogram) {
        Ok(result) => Some(result),
        Err(error) => {
            outcome.notes.push(format!(
                "{} round {round} failed: {error:#}",
                subject.label()
            ));
            None
        }
    }
}

/// The congestion control of the bulk scenario's second pair of rows.
const LOOPBACK_CUBIC: &str = "cubic";

/// `loopback-bulk`: `hawser bench --mode bulk` (one nexus; and with digest, one nexus per
/// shard) and the shards alone (`--mode raw`) vs `iperf3 -P 4` vs the plain-socket
/// ceiling.
pub fn bulk(context: &Context, outcome: &mut Outcome) -> Result<()> {
    let seconds = context.seconds(5.0);
    let connections = BULK_CONNECTIONS.to_string();
    let half_connections = (BULK_CONNECTIONS / 2).to_string();
    let duration = seconds.to_string();
    let hawser = Subject::new(
        "hawser",
        format!("bench bulk, 1 nexus of {BULK_CONNECTIONS} connections"),
    );
    let digest_label = format!(
        "bench bulk --digest, 2 nexuses of {} connections",
        BULK_CONNECTIONS / 2
    );
    let raw_label = format!("bench raw: shards only, {BULK_CONNECTIONS} connections");
    let hawser_digest = Subject::new("hawser", format!("{digest_label} (one per shard)"));
    let raw = Subject::new("hawser", format!("{raw_label}, no session layer"));
    // The same pair under cubic: on loopback under the kernel's default here (BBR) the
    // session falls further behind one-way raw streams (see the notes).
    let cubic_suffix = format!(", --congestion {LOOPBACK_CUBIC}");
    let hawser_digest_cubic = Subject::new("hawser", format!("{digest_label}{cubic_suffix}"));
    let raw_cubic = Subject::new("hawser", format!("{raw_label}{cubic_suffix}"));
    let iperf3 = Subject::new("iperf3", format!("-P {BULK_CONNECTIONS}"));
    let plain = Subject::new("plain-socket", "1 connection, 2 threads, 1 MiB writes");
    outcome.baseline = Some(iperf3.clone());
    let hawser_binary = hawser_tools::hawser_subcommand("bench")
        .map_err(|reason| {
            let reason = format!("hawser bench not available ({reason})");
            for subject in [
                &hawser,
                &hawser_digest,
                &raw,
                &hawser_digest_cubic,
                &raw_cubic,
            ] {
                outcome.mark_unavailable(subject, &reason);
            }
        })
        .ok();
    tools::require_program("iperf3")?;
    outcome.notes.push(format!(
        "Each run measures {seconds} s. hawser: `hawser bench --mode bulk --connections \
         {BULK_CONNECTIONS} --duration {seconds} --json` (1 MiB requests, 8 in flight, loopback \
         server and client on 2 shards in one process, after its own short warm-up); its rate \
         counts request payload bytes. With digest: `--digest --nexuses 2 --connections \
         {half}`: nexus i's client on shard i and its server on the other shard, so each \
         shard sends for one nexus and receives for the other (a single nexus lives on one \
         shard, which then does all the sending). raw: `hawser bench --mode raw \
         --connections {BULK_CONNECTIONS}`, the shards alone streaming a shared 1 MiB body \
         from each shard to the other into byte-counting sinks (issue 4's reference for the \
         session's bulk with digest). Both with the system's TCP congestion control, and \
         both again with `--congestion {LOOPBACK_CUBIC}`.",
        half = BULK_CONNECTIONS / 2
    ));
    outcome.notes.push(
        "Why the cubic rows: the system's default here is BBR, which paces every connection \
         from its delivery-rate samples, and on loopback under BBR the session falls further \
         behind one-way raw streams than under cubic. The cause is not pinned down: raw sinks \
         that send 40 bytes back per MiB (`hawser bench --mode raw --answers`, the session's \
         traffic shape) cost one connection 25% in one sitting and 0-8% in another, and 4 \
         connections nothing. Under cubic the ratio measures the session's own cost."
            .to_owned(),
    );
    outcome.notes.push(format!(
        "iperf3: `iperf3 -c 127.0.0.1 -P {BULK_CONNECTIONS} -t {seconds} -J \
         --get-server-output`, rate = receiver total; per-second samples from the server's \
         intervals."
    ));
    outcome.notes.push(
        "plain-socket: the in-crate ceiling (`perf/src/scenario/tools.rs`): one loopback TCP \
         connection, a thread writing 1 MiB buffers and a thread reading them, blocking \
         sockets, received bytes sampled every second."
            .to_owned(),
    );
    outcome.notes.push(
        "`hawser bench` reports only its total, so the throughput plot has no hawser line."
            .to_owned(),
    );
    for round in 0..context.runs {
        super::sample_load(outcome);
        if let Some(binary) = &hawser_binary {
            let digest_args = [
                "--mode",
                "bulk",
                "--digest",
                "--nexuses",
                "2",
                "--connections",
                &half_connections,
            ];
            let raw_args = ["--mode", "raw", "--connections", &connections];
            let cubic = ["--congestion", LOOPBACK_CUBIC];
            for (subject, variant) in [
                (
                    &hawser,
                    vec!["--mode", "bulk", "--connections", &connections],
                ),
                (&hawser_digest, digest_args.to_vec()),
                (&raw, raw_args.to_vec()),
                (&hawser_digest_cubic, [&digest_args[..], &cubic].concat()),
                (&raw_cubic, [&raw_args[..], &cubic].concat()),
            ] {
                let mut args = variant;
                args.extend(["--duration", &duration]);
                if let Some(result) = hawser_bench_run(outcome, subject, binary, &args, None, round)
                {
                    outcome.record(
                        subject,
                        THROUGHPUT,
                        "bytes/s",
                        result.throughput_bytes_per_sec,
                    );
                    if subject != &raw && subject != &raw_cubic {
                        outcome.record(
                            subject,
                            "exchanges_per_sec",
                            "1/s",
                            result.exchanges_per_sec,
                        );
                    }
                }
                settle();
            }
        }

        eprintln!("  round {round}: {}", iperf3.label());
        let setup = Iperf3Setup {
            congestion: None,
            client_namespace: None,
            server_namespace: None,
            server_address: "127.0.0.1",
            port: tools::free_loopback_port()?,
        };
        let result = tools::run_iperf3(&setup, BULK_CONNECTIONS, seconds, 1.0)
            .with_context(|| format!("iperf3 round {round}"))?;
        outcome.record(
            &iperf3,
            THROUGHPUT,
            "bytes/s",
            result.received_bytes_per_sec,
        );
        add_series(outcome, &iperf3, round, result.intervals);
        settle();

        eprintln!("  round {round}: {}", plain.label());
        let result =
            tools::run_plain_socket(Duration::from_secs_f64(seconds), Duration::from_secs(1))?;
        outcome.record(&plain, THROUGHPUT, "bytes/s", result.bytes_per_sec);
        add_series(outcome, &plain, round, result.intervals);
        settle();
    }
    for (digested, shards_only) in [(&hawser_digest, &raw), (&hawser_digest_cubic, &raw_cubic)] {
        if let (Some(d), Some(r)) = (
            outcome.median(digested, THROUGHPUT),
            outcome.median(shards_only, THROUGHPUT),
        ) {
            outcome.notes.push(format!(
                "Ratio of medians: {} / {}: {:.2}x.",
                digested.label(),
                shards_only.label(),
                d / r
            ));
        }
    }
    Ok(())
}

/// `loopback-rpc`: `hawser bench --mode rpc` ping-pong and pipelined vs `sockperf
/// ping-pong --tcp -m 64`, blocking and busy-polling.
pub fn rpc(context: &Context, outcome: &mut Outcome) -> Result<()> {
    let seconds = context.seconds(5.0);
    let duration = seconds.to_string();
    let pipeline = RPC_PIPELINE.to_string();
    let size = RPC_MESSAGE_BYTES.to_string();
    let busy_poll = RPC_BUSY_POLL_US.to_string();
    let hawser_runs: Vec<(Subject, Vec<&str>)> = vec![
        (
            Subject::new(
                "hawser",
                format!("ping-pong, on-shard caller, busy poll {RPC_BUSY_POLL_US} µs"),
            ),
            vec!["--connections", "1", "--pipeline", "1", "--caller", "shard"],
        ),
        (
            Subject::new("hawser", "ping-pong, blocking caller thread, no busy poll"),
            vec![
                "--connections",
                "1",
                "--pipeline",
                "1",
                "--caller",
                "thread",
                "--busy-poll-us",
                "0",
            ],
        ),
        (
            Subject::new(
                "hawser",
                format!("{RPC_PIPELINE} in flight, 4 connections, on-shard caller"),
            ),
            vec![
                "--connections",
                "4",
                "--pipeline",
                &pipeline,
                "--caller",
                "shard",
            ],
        ),
    ];
    let sockperf = Subject::new(
        "sockperf",
        format!("ping-pong --tcp -m {RPC_MESSAGE_BYTES}"),
    );
    let sockperf_polling = Subject::new(
        "sockperf",
        format!("ping-pong --tcp -m {RPC_MESSAGE_BYTES} --timeout 0 (both ends poll)"),
    );
    outcome.baseline = Some(sockperf.clone());
    let hawser_binary = match hawser_tools::hawser_subcommand("bench") {
        Ok(binary) => Some(binary),
        Err(reason) => {
            let reason = format!("hawser bench not available ({reason})");
            for (subject, _) in &hawser_runs {
                outcome.mark_unavailable(subject, &reason);
            }
            None
        }
    };
    tools::require_program("sockperf")?;
    outcome.notes.push(format!(
        "Each run measures {seconds} s with {RPC_MESSAGE_BYTES}-byte requests and responses. \
         Latencies are full round trips: sockperf prints half the round trip (its \
         \"latency\" is RTT/2), so its figures are doubled here; hawser's are per call \
         (submit to answer) from `hawser bench --json`/`--histogram`."
    ));
    outcome.notes.push(format!(
        "hawser: `hawser bench --mode rpc --size {RPC_MESSAGE_BYTES} --duration {seconds}` \
         with the variant's options; loopback, server and client on 2 shards in one \
         process. The on-shard caller starts each call from the previous one's completion \
         on the client's shard (`Client::call_then`) and the shards busy-poll \
         {RPC_BUSY_POLL_US} µs before sleeping (the rpc default); the blocking caller is \
         an application thread using `Client::pipeline`, with shards that sleep at once. \
         The pipelined variant's latencies include queueing behind the other calls in \
         flight. exchanges_per_sec of sockperf = round trips per second over its valid \
         (post-warm-up) duration."
    ));
    outcome
        .notes
        .push("The latency plot shows the last round of each subject.".to_owned());
    let histogram_of = |label: &str| -> PathBuf {
        context
            .scratch
            .join(format!("{}.hgrm", label.replace([' ', ','], "_")))
    };
    let mut last_curves = Vec::new();
    for round in 0..context.runs {
        super::sample_load(outcome);
        if let Some(binary) = &hawser_binary {
            for (subject, variant) in &hawser_runs {
                let mut args = vec!["--mode", "rpc"];
                args.extend(variant.iter().copied());
                args.extend(["--size", &size, "--duration", &duration]);
                if !variant.contains(&"--busy-poll-us") {
                    args.extend(["--busy-poll-us", &busy_poll]);
                }
                let histogram = histogram_of(&subject.label());
                let Some(result) =
                    hawser_bench_run(outcome, subject, binary, &args, Some(&histogram), round)
                else {
                    continue;
                };
                outcome.record(
                    subject,
                    "exchanges_per_sec",
                    "1/s",
                    result.exchanges_per_sec,
                );
                record_latencies(outcome, subject, &result.latency_ns);
                if round + 1 == context.runs {
                    let text = std::fs::read_to_string(&histogram)
                        .with_context(|| format!("reading {}", histogram.display()))?;
                    last_curves.push((subject.clone(), parse_hgrm(&text)?));
                }
                settle();
            }
        }

        for (subject, polling) in [(&sockperf, false), (&sockperf_polling, true)] {
            eprintln!("  round {round}: {}", subject.label());
            let result = tools::run_sockperf_ping_pong(seconds, RPC_MESSAGE_BYTES, polling)
                .with_context(|| format!("{} round {round}", subject.label()))?;
            outcome.record(
                subject,
                "exchanges_per_sec",
                "1/s",
                result.round_trips_per_sec,
            );
            let curve = &result.round_trip;
            let percentiles = [0.5, 0.9, 0.99, 0.999, 1.0].map(|p| curve.at(p).unwrap_or(f64::NAN));
            record_latencies(outcome, subject, &percentiles);
            if round + 1 == context.runs {
                last_curves.push((subject.clone(), result.round_trip));
            }
            settle();
        }
    }
    outcome.latency = last_curves;
    Ok(())
}

/// Records p50, p90, p99, p99.9 and max (nanoseconds).
pub(super) fn record_latencies(outcome: &mut Outcome, subject: &Subject, latency_ns: &[f64; 5]) {
    for (metric, value) in [
        "latency_p50_ns",
        "latency_p90_ns",
        "latency_p99_ns",
        "latency_p999_ns",
        "latency_max_ns",
    ]
    .iter()
    .zip(latency_ns)
    {
        outcome.record(subject, metric, "ns", *value);
    }
}
