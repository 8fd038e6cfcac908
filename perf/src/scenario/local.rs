//! `local-transports` (issue 14): the same hawser exchanges between two processes of this
//! host over TCP on loopback, a Unix socket and shared memory.
//!
//! One `hawser bench --serve` listens on all three at once; per round `hawser bench
//! --connect` measures bulk (4 connections) and rpc ping-pong against each, and `hawser
//! push` sends one tree (a 512 MiB file and 2,000 small files; `HAWSER_REPLICATE_BIG_MIB`
//! and `HAWSER_REPLICATE_SMALL_FILES` resize it) to one `hawser serve` over TCP and over
//! its Unix socket. The TCP rows are the baseline. A transport a build cannot serve or
//! connect over (shared memory before it lands) gives a note or a "not available" row,
//! and the others still run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};

use super::hawser_tools;
use super::loopback::{BULK_CONNECTIONS, hawser_bench_run, record_latencies};
use super::replicate::{self, DataSet};
use super::tools::Background;
use super::{Context, add_series, settle};
use crate::report::{Outcome, Subject, parse_hgrm};

/// Size of the pushed tree's large file, MiB (`HAWSER_REPLICATE_BIG_MIB`).
pub const BIG_FILE_MIB: u64 = 512;
/// Number of the pushed tree's small files (`HAWSER_REPLICATE_SMALL_FILES`).
pub const SMALL_FILES: usize = 2_000;
/// Connections of `hawser push`'s trunk.
pub const PUSH_CONNECTIONS: usize = 4;
/// Busy polling of the rpc server's and client's shards, microseconds (the rpc default).
const RPC_BUSY_POLL: &str = "50";
/// `hawser bench --serve`'s own `--shards` default, which the server here keeps.
const BENCH_SERVER_SHARDS: usize = 2;

const THROUGHPUT: &str = "throughput_bytes_per_sec";

/// A transport between processes of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP on 127.0.0.1.
    Tcp,
    /// A Unix stream socket.
    Unix,
    /// Shared-memory rings set up over a Unix socket.
    Shm,
}

/// The transports in the order of the rows.
pub const TRANSPORTS: [Transport; 3] = [Transport::Tcp, Transport::Unix, Transport::Shm];

impl Transport {
    /// The transport an address printed by a hawser server names (a bare HOST:PORT is
    /// TCP).
    pub fn of(address: &str) -> Transport {
        if address.starts_with("unix://") {
            Transport::Unix
        } else if address.starts_with("shm://") {
            Transport::Shm
        } else {
            Transport::Tcp
        }
    }

    /// What a server is told to listen on for this transport, its sockets in `dir`;
    /// `file` names the socket (`b` for the bench server, `s` for `hawser serve`).
    fn listen(self, dir: &Path, file: &str) -> String {
        match self {
            Transport::Tcp => "127.0.0.1:0".to_owned(),
            Transport::Unix => format!("unix://{}", dir.join(format!("{file}.sock")).display()),
            Transport::Shm => format!("shm://{}", dir.join(format!("{file}.shm")).display()),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
            Transport::Shm => "shm",
        })
    }
}

/// The address a server printed for `transport`, if it printed one.
pub fn address_of(addresses: &[String], transport: Transport) -> Option<&str> {
    addresses
        .iter()
        .find(|a| Transport::of(a) == transport)
        .map(String::as_str)
}

fn bulk_subject(transport: Transport) -> Subject {
    Subject::new(
        "hawser",
        format!("bench bulk over {transport}, {BULK_CONNECTIONS} connections"),
    )
}

fn rpc_subject(transport: Transport) -> Subject {
    Subject::new(
        "hawser",
        format!("bench rpc ping-pong over {transport}, on-shard caller"),
    )
}

fn push_subject(transport: Transport, data: &str) -> Subject {
    Subject::new(
        "hawser",
        format!("push over {transport}, {PUSH_CONNECTIONS} connections, {data}"),
    )
}

/// Removes a directory when dropped, so an error does not leave the pushed data behind.
pub(super) struct RemoveOnDrop(pub(super) PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bench server on every transport it can serve: all three, else (a build without
/// shared memory) TCP and Unix with the shm rows marked unavailable in its words. `None`
/// (every bench row marked) if it cannot serve at all.
fn start_bench_server(
    binary: &Path,
    dir: &Path,
    (name, extra): (&str, &[&str]),
    subject_of: fn(Transport) -> Subject,
    outcome: &mut Outcome,
) -> Option<(Background, Vec<String>)> {
    let all: Vec<String> = TRANSPORTS.iter().map(|t| t.listen(dir, name)).collect();
    let error = match hawser_tools::start_hawser_bench_server_on(binary, &all, extra) {
        Ok(started) => return Some(started),
        Err(error) => error,
    };
    let shm = Transport::Shm.listen(dir, name);
    let reason = format!("`hawser bench --serve {shm}` failed: {error:#}");
    outcome.mark_unavailable(&subject_of(Transport::Shm), &reason);
    let without_shm: Vec<String> = all.into_iter().filter(|a| *a != shm).collect();
    match hawser_tools::start_hawser_bench_server_on(binary, &without_shm, extra) {
        Ok(started) => Some(started),
        Err(error) => {
            let reason = format!("`hawser bench --serve` failed: {error:#}");
            for transport in TRANSPORTS {
                outcome.mark_unavailable(&subject_of(transport), &reason);
            }
            None
        }
    }
}

/// "Ratio of medians, WHAT: Nx (target). Commands: ...", or why there is none.
pub(super) fn ratio_note(
    outcome: &Outcome,
    what: &str,
    metric: &str,
    (numerator, denominator): (&Subject, &Subject),
    target: &str,
    commands: &str,
) -> String {
    match (
        outcome.median(numerator, metric),
        outcome.median(denominator, metric),
    ) {
        (Some(n), Some(d)) if d > 0.0 => format!(
            "Ratio of medians, {what}: {:.2}x ({target}). Commands: {commands}.",
            n / d
        ),
        (n, d) => {
            let missing: Vec<String> = [(numerator, n), (denominator, d)]
                .iter()
                .filter(|(_, median)| median.is_none())
                .map(|(subject, _)| subject.label())
                .collect();
            format!(
                "Ratio of medians, {what}: not measured, no median of {metric} for {} (it \
                 failed or was not available, see above; {target}). Commands: {commands}.",
                if missing.is_empty() {
                    "a zero denominator".to_owned()
                } else {
                    missing.join(" nor ")
                }
            )
        }
    }
}

/// Runs bulk, rpc ping-pong and push over every local transport, alternated per round.
pub fn run(context: &Context, outcome: &mut Outcome) -> Result<()> {
    let seconds = context.seconds(5.0);
    let duration = seconds.to_string();
    let connections = BULK_CONNECTIONS.to_string();
    let big_mib = replicate::env_number("HAWSER_REPLICATE_BIG_MIB", BIG_FILE_MIB);
    let small_files = replicate::env_number("HAWSER_REPLICATE_SMALL_FILES", SMALL_FILES);
    let data_label = format!("{big_mib} MiB file + {small_files} small files");
    let push_transports = [Transport::Tcp, Transport::Unix];
    outcome.baseline = Some(bulk_subject(Transport::Tcp));
    for transport in TRANSPORTS {
        for (subject, baseline) in [
            (bulk_subject(transport), bulk_subject(Transport::Tcp)),
            (rpc_subject(transport), rpc_subject(Transport::Tcp)),
        ] {
            outcome.baseline_of.push((subject, baseline));
        }
    }
    for transport in push_transports {
        outcome.baseline_of.push((
            push_subject(transport, &data_label),
            push_subject(Transport::Tcp, &data_label),
        ));
    }

    // Sockets, the pushed tree and its target: removed at the end, on errors too (declared
    // first, so dropped after the servers).
    let dir = context.scratch.join("local-transports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _remove = RemoveOnDrop(dir.clone());

    let bench_binary = match hawser_tools::hawser_subcommand("bench") {
        Ok(binary) => Some(binary),
        Err(reason) => {
            let reason = format!("hawser bench not available ({reason})");
            for transport in TRANSPORTS {
                outcome.mark_unavailable(&bulk_subject(transport), &reason);
                outcome.mark_unavailable(&rpc_subject(transport), &reason);
            }
            None
        }
    };
    let push_binary = match (
        hawser_tools::hawser_subcommand("push"),
        hawser_tools::hawser_subcommand("serve"),
    ) {
        (Ok(binary), Ok(_)) => Some(binary),
        (Err(reason), _) | (_, Err(reason)) => {
            for transport in push_transports {
                outcome.mark_unavailable(&push_subject(transport, &data_label), &reason);
            }
            None
        }
    };

    let bench_server = bench_binary
        .as_deref()
        .and_then(|binary| start_bench_server(binary, &dir, ("b", &[]), bulk_subject, outcome));
    let bench_addresses: Vec<String> = bench_server
        .as_ref()
        .map(|(_, addresses)| addresses.clone())
        .unwrap_or_default();
    // The rpc server: one shard that busy-polls, as the rpc client's (two processes of one
    // shard each on two cores, thread per core); a parked server would measure its
    // wake-up, the same on every transport, rather than the transport.
    let rpc_server_args = ["--shards", "1", "--busy-poll-us", RPC_BUSY_POLL];
    let rpc_server = bench_binary.as_deref().and_then(|binary| {
        start_bench_server(binary, &dir, ("r", &rpc_server_args), rpc_subject, outcome)
    });
    let rpc_addresses: Vec<String> = rpc_server
        .as_ref()
        .map(|(_, addresses)| addresses.clone())
        .unwrap_or_default();
    let shm_listen = Transport::Shm.listen(&dir, "b");
    let listened: Vec<String> = TRANSPORTS
        .iter()
        .filter(|t| bench_addresses.is_empty() || address_of(&bench_addresses, **t).is_some())
        .map(|t| t.listen(&dir, "b"))
        .collect();
    outcome.notes.push(format!(
        "Each bench run measures {seconds} s (after the client's own short warm-up) against \
         one server started once: `hawser bench --serve {} --allow-anonymous` (its default \
         --shards {BENCH_SERVER_SHARDS}, shards that sleep at once between exchanges, no busy \
         poll; it served {}). bulk: `hawser bench --mode bulk --connect ADDR --connections \
         {BULK_CONNECTIONS} --duration {seconds} --json` (1 MiB requests, 8 in flight; the \
         rate counts request payload bytes). rpc, against a second server `hawser bench \
         --serve ... --allow-anonymous --shards 1 --busy-poll-us {RPC_BUSY_POLL}` (it served \
         {}): `hawser bench --mode rpc --connect ADDR --connections 1 --pipeline 1 --caller \
         shard --shards 1 --busy-poll-us {RPC_BUSY_POLL} --duration {seconds} --json` \
         (64-byte requests; one shard per process, both polling 50 µs before they sleep, so \
         a round trip measures the transport and the session rather than two thread \
         wake-ups); latencies are per call, submit to answer. Client and server are \
         separate processes sharing this host's two cores.",
        listened.join(" --serve "),
        if bench_addresses.is_empty() {
            "nothing".to_owned()
        } else {
            bench_addresses.join(", ")
        },
        if rpc_addresses.is_empty() {
            "nothing".to_owned()
        } else {
            rpc_addresses.join(", ")
        }
    ));
    if !bench_addresses.is_empty() && address_of(&bench_addresses, Transport::Shm).is_none() {
        outcome.notes.push(format!(
            "The bench server could not listen on {shm_listen} (its words are in the shm \
             rows), so it was started again on TCP and the Unix socket only."
        ));
    }

    // The push target and the tree, only when push can run.
    let target = dir.join("target");
    let mut push_setup: Option<(PathBuf, Background, Vec<String>, DataSet)> = None;
    if let Some(binary) = &push_binary {
        std::fs::create_dir_all(&target)?;
        let listen: Vec<String> = push_transports
            .iter()
            .map(|t| t.listen(&dir, "s"))
            .collect();
        match hawser_tools::start_hawser_serve_on(binary, &listen, &target) {
            Ok((server, addresses)) => {
                let data_root = dir.join("data");
                eprintln!(
                    "  generating {big_mib} MiB + {small_files} small files in {}",
                    data_root.display()
                );
                let sets = replicate::generate(&data_root, big_mib, small_files)?;
                let data = DataSet {
                    label: data_label.clone(),
                    source: data_root,
                    bytes: sets.iter().map(|s| s.bytes).sum(),
                    files: sets.iter().map(|s| s.files).sum(),
                    after_delete: false,
                };
                outcome.notes.push(format!(
                    "push: one tree of {} files, {:.0} MB (one {big_mib} MiB file and \
                     {small_files} files of 4-256 KiB, about 64 KiB on average, \
                     incompressible, generated once and left in the page cache; \
                     HAWSER_REPLICATE_BIG_MIB and HAWSER_REPLICATE_SMALL_FILES resize it), \
                     `hawser push --connections {PUSH_CONNECTIONS} --compress off --quiet \
                     --json FILE SOURCE ADDRESS:DEST` to one `hawser serve --allow-anonymous \
                     --listen {} --root TARGET` (listening on {}), into a fresh DEST each run, \
                     removed after the run (the target is synced before each run; one \
                     unmeasured push over TCP first, so that every measured one follows a \
                     removal). Rate = tree bytes / wall time of the client command (process \
                     start included).",
                    data.files,
                    data.bytes as f64 / 1e6,
                    listen.join(" --listen "),
                    addresses.join(", ")
                ));
                push_setup = Some((binary.clone(), server, addresses, data));
            }
            Err(error) => {
                let reason = format!("`hawser serve` failed: {error:#}");
                for transport in push_transports {
                    outcome.mark_unavailable(&push_subject(transport, &data_label), &reason);
                }
            }
        }
    }

    let histogram_of = |transport: Transport| context.scratch.join(format!("rpc-{transport}.hgrm"));
    let push_report = context.scratch.join("push.json");
    if let Some((binary, _, addresses, data)) = &push_setup {
        // One unmeasured push, removed like the others, so that every measured push
        // follows the removal of a copy: ext4 scans past recently freed inodes when it
        // allocates (see replicate.rs), which would otherwise slow every push but the
        // first.
        if let Some(address) = address_of(addresses, Transport::Tcp) {
            eprintln!("  warm-up push over tcp (not measured)");
            if let Err(error) = hawser_tools::run_hawser_push(
                binary,
                None,
                PUSH_CONNECTIONS,
                &data.source,
                &format!("{address}:warm-up"),
                &push_report,
                hawser_tools::PushOptions::default(),
            ) {
                outcome
                    .notes
                    .push(format!("The unmeasured warm-up push failed: {error:#}"));
            }
            replicate::empty_directory(&target)?;
            settle();
        }
    }
    let mut last_curves = Vec::new();
    for round in 0..context.runs {
        super::sample_load(outcome);
        if let Some(binary) = &bench_binary {
            for transport in TRANSPORTS {
                let subject = bulk_subject(transport);
                let Some(address) = address_of(&bench_addresses, transport) else {
                    continue;
                };
                let args = [
                    "--mode",
                    "bulk",
                    "--connect",
                    address,
                    "--connections",
                    &connections,
                    "--duration",
                    &duration,
                ];
                if let Some(result) =
                    hawser_bench_run(outcome, &subject, binary, &args, None, round)
                {
                    outcome.record(
                        &subject,
                        THROUGHPUT,
                        "bytes/s",
                        result.throughput_bytes_per_sec,
                    );
                    outcome.record(
                        &subject,
                        "exchanges_per_sec",
                        "1/s",
                        result.exchanges_per_sec,
                    );
                }
                settle();
            }
            for transport in TRANSPORTS {
                let subject = rpc_subject(transport);
                let Some(address) = address_of(&rpc_addresses, transport) else {
                    continue;
                };
                let args = [
                    "--mode",
                    "rpc",
                    "--connect",
                    address,
                    "--connections",
                    "1",
                    "--pipeline",
                    "1",
                    "--caller",
                    "shard",
                    "--shards",
                    "1",
                    "--busy-poll-us",
                    RPC_BUSY_POLL,
                    "--duration",
                    &duration,
                ];
                let histogram = histogram_of(transport);
                if let Some(result) =
                    hawser_bench_run(outcome, &subject, binary, &args, Some(&histogram), round)
                {
                    outcome.record(
                        &subject,
                        "exchanges_per_sec",
                        "1/s",
                        result.exchanges_per_sec,
                    );
                    record_latencies(outcome, &subject, &result.latency_ns);
                    if round + 1 == context.runs {
                        let text = std::fs::read_to_string(&histogram)
                            .with_context(|| format!("reading {}", histogram.display()))?;
                        last_curves.push((subject.clone(), parse_hgrm(&text)?));
                    }
                }
                settle();
            }
        }
        if let Some((binary, _, addresses, data)) = &push_setup {
            for transport in push_transports {
                let subject = push_subject(transport, &data.label);
                let Some(address) = address_of(addresses, transport) else {
                    outcome.mark_unavailable(
                        &subject,
                        &format!("`hawser serve` printed no {transport} address"),
                    );
                    continue;
                };
                eprintln!("  round {round}: {}", subject.label());
                replicate::flush_dirty_pages()?;
                let destination = format!("{address}:run{round}-{transport}");
                let started = Instant::now();
                match hawser_tools::run_hawser_push(
                    binary,
                    None,
                    PUSH_CONNECTIONS,
                    &data.source,
                    &destination,
                    &push_report,
                    hawser_tools::PushOptions::default(),
                ) {
                    Ok(result) => {
                        let elapsed = started.elapsed().as_secs_f64();
                        replicate::record_transfer(outcome, &subject, data, elapsed);
                        add_series(outcome, &subject, round, result.intervals);
                    }
                    Err(error) => outcome.notes.push(format!(
                        "{} round {round} failed: {error:#}",
                        subject.label()
                    )),
                }
                // The copy goes at once so that the disk does not fill.
                replicate::empty_directory(&target)?;
                settle();
            }
        }
    }
    outcome.latency = last_curves;
    let push_addresses = push_setup
        .as_ref()
        .map(|(_, _, addresses, _)| addresses.clone())
        .unwrap_or_default();
    drop(push_setup);
    drop(bench_server);
    drop(rpc_server);

    let command = |transport: Transport, kind: &str| match kind {
        "bulk" => {
            let address = address_of(&bench_addresses, transport)
                .map_or_else(|| transport.listen(&dir, "b"), str::to_owned);
            format!(
                "`hawser bench --mode bulk --connect {address} --connections \
                 {BULK_CONNECTIONS} --duration {seconds} --json`"
            )
        }
        _ => {
            let address = address_of(&rpc_addresses, transport)
                .map_or_else(|| transport.listen(&dir, "r"), str::to_owned);
            format!(
                "`hawser bench --mode rpc --connect {address} --connections 1 --pipeline 1 \
                 --caller shard --shards 1 --busy-poll-us {RPC_BUSY_POLL} --duration \
                 {seconds} --json`"
            )
        }
    };
    let pair = |kind: &str, a: Transport, b: Transport| {
        format!("{} vs {}", command(a, kind), command(b, kind))
    };
    let notes = [
        ratio_note(
            outcome,
            "shm / unix bulk throughput",
            THROUGHPUT,
            (
                &bulk_subject(Transport::Shm),
                &bulk_subject(Transport::Unix),
            ),
            "target ≥ 2x",
            &pair("bulk", Transport::Shm, Transport::Unix),
        ),
        ratio_note(
            outcome,
            "shm / unix rpc ping-pong p50 latency",
            "latency_p50_ns",
            (&rpc_subject(Transport::Shm), &rpc_subject(Transport::Unix)),
            "target ≤ 0.5x",
            &pair("rpc", Transport::Shm, Transport::Unix),
        ),
        ratio_note(
            outcome,
            "unix / tcp bulk throughput",
            THROUGHPUT,
            (
                &bulk_subject(Transport::Unix),
                &bulk_subject(Transport::Tcp),
            ),
            "target ≥ 1x",
            &pair("bulk", Transport::Unix, Transport::Tcp),
        ),
        ratio_note(
            outcome,
            "unix / tcp push wall time",
            "elapsed_s",
            (
                &push_subject(Transport::Unix, &data_label),
                &push_subject(Transport::Tcp, &data_label),
            ),
            "lower is better: below 1x the Unix socket is faster",
            &[Transport::Unix, Transport::Tcp]
                .map(|transport| {
                    let address = address_of(&push_addresses, transport)
                        .map_or_else(|| transport.listen(&dir, "s"), str::to_owned);
                    format!(
                        "`hawser push --connections {PUSH_CONNECTIONS} --compress off --quiet \
                         --json FILE SOURCE {address}:DEST`"
                    )
                })
                .join(" vs "),
        ),
    ];
    outcome.notes.extend(notes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_told_apart_by_their_scheme() {
        assert_eq!(Transport::of("127.0.0.1:4000"), Transport::Tcp);
        assert_eq!(Transport::of("[::1]:4000"), Transport::Tcp);
        assert_eq!(Transport::of("unix:///tmp/b.sock"), Transport::Unix);
        assert_eq!(Transport::of("shm:///tmp/b.shm"), Transport::Shm);
        let printed: Vec<String> = ["127.0.0.1:4000", "unix:///tmp/b.sock"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(address_of(&printed, Transport::Tcp), Some("127.0.0.1:4000"));
        assert_eq!(
            address_of(&printed, Transport::Unix),
            Some("unix:///tmp/b.sock")
        );
        assert_eq!(address_of(&printed, Transport::Shm), None);
    }

    #[test]
    fn listen_addresses_put_the_sockets_in_the_scratch_directory() {
        let dir = Path::new("/tmp/x");
        assert_eq!(Transport::Tcp.listen(dir, "b"), "127.0.0.1:0");
        assert_eq!(Transport::Unix.listen(dir, "b"), "unix:///tmp/x/b.sock");
        assert_eq!(Transport::Shm.listen(dir, "s"), "shm:///tmp/x/s.shm");
        for transport in TRANSPORTS {
            assert_eq!(Transport::of(&transport.listen(dir, "b")), transport);
        }
    }

    #[test]
    fn ratio_notes_say_which_median_is_missing() {
        let mut outcome = Outcome::default();
        let (unix, shm) = (bulk_subject(Transport::Unix), bulk_subject(Transport::Shm));
        outcome.record(&unix, THROUGHPUT, "bytes/s", 4e9);
        let note = ratio_note(&outcome, "shm / unix", THROUGHPUT, (&shm, &unix), "t", "c");
        assert!(note.contains("not measured"), "{note}");
        assert!(note.contains("bulk over shm"), "{note}");
        assert!(!note.contains("bulk over unix"), "{note}");
        outcome.record(&shm, THROUGHPUT, "bytes/s", 10e9);
        let note = ratio_note(&outcome, "shm / unix", THROUGHPUT, (&shm, &unix), "t", "c");
        assert!(note.contains(": 2.50x (t)"), "{note}");
    }
}
