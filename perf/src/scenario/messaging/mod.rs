//! `messaging`: hawser's direct message publish (DMP: publish → sink → feed → consume)
//! against real message systems installed from Debian, on loopback.
//!
//! Subjects: hawser (`hawser bench --mode dmp`), ZeroMQ PUSH/PULL (libzmq, no broker),
//! RabbitMQ (AMQP 0-9-1: a direct exchange bound to one queue, no publisher confirms,
//! auto-ack consumer) and core NATS publish/subscribe. The baselines are clients in
//! `perf/peers/messaging/` (`messaging-peer`, a crate outside hawser's workspace, built
//! here with cargo); the brokers run as children of the scenario ([`servers`]).
//!
//! Cells: 64 B and 1 KiB messages × 1 and 4 publishers, one consumer, the publishers and
//! the consumer in one process. Per cell, first every subject's maximum rate (publishers
//! unpaced, the consumer's received messages per second; every subject once per round,
//! `--runs` rounds, medians), then every subject's latency percentiles at 10% of its own
//! median maximum (publishers paced, the same alternation). A subject whose command
//! fails before it ever succeeded (hawser's DMP bench not built yet) is skipped for the
//! rest of the scenario and reported as not available; later failures are notes.
//! `HAWSER_MESSAGING_SYSTEMS=hawser,zmq` runs a subset.

pub mod peer;
pub mod servers;
mod summary;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::hawser_tools;
use super::local::RemoveOnDrop;
use super::tools::{free_loopback_port, require_program};
use super::{Context, sample_load, settle};
use crate::report::{Outcome, Subject};
use peer::{Measurement, build_peer, run_measurement};
use servers::{NatsServer, RabbitPrograms, RabbitServer};

/// Message sizes of the cells, bytes.
pub const SIZES: [usize; 2] = [64, 1024];
/// Publisher counts of the cells (one consumer each).
pub const PUBLISHERS: [usize; 2] = [1, 4];
/// The latency runs offer this fraction of the subject's own median maximum rate.
pub const LOAD_FRACTION: f64 = 0.1;
/// Warm-up of every `messaging-peer` run before its measured window, seconds.
pub const PEER_WARMUP_S: f64 = 1.0;
/// Picks the systems to run (comma-separated names).
pub const SYSTEMS_ENV: &str = "HAWSER_MESSAGING_SYSTEMS";

/// The consumer's received messages per second with unpaced publishers.
pub const MAX_RATE: &str = "messages_per_sec";
/// The rate the consumer received in the latency runs (what was offered, if kept up).
pub const LOAD_RATE: &str = "load_messages_per_sec";
/// Latency metrics of the runs at 10% load, in the order of [`Measurement::latency_ns`].
pub const LATENCIES: [&str; 4] = [
    "latency_p50_ns_at_10pct_load",
    "latency_p99_ns_at_10pct_load",
    "latency_p999_ns_at_10pct_load",
    "latency_max_ns_at_10pct_load",
];

/// A compared system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// `hawser bench --mode dmp`.
    Hawser,
    /// ZeroMQ PUSH/PULL.
    Zmq,
    /// RabbitMQ over AMQP 0-9-1.
    Rabbitmq,
    /// Core NATS.
    Nats,
}

impl System {
    /// Every system, in the order they run each round.
    pub const ALL: [System; 4] = [System::Hawser, System::Zmq, System::Rabbitmq, System::Nats];

    /// The tool name in the reports (and `--system` of the peer).
    pub fn name(self) -> &'static str {
        match self {
            System::Hawser => "hawser",
            System::Zmq => "zmq",
            System::Rabbitmq => "rabbitmq",
            System::Nats => "nats",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One cell of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Message size, bytes.
    pub size: usize,
    /// Publishers.
    pub publishers: usize,
}

impl Cell {
    /// Every cell, in the order they run.
    pub fn all() -> Vec<Cell> {
        SIZES
            .iter()
            .flat_map(|&size| {
                PUBLISHERS
                    .iter()
                    .map(move |&publishers| Cell { size, publishers })
            })
            .collect()
    }

    /// `64 B, 1 publisher`.
    pub fn label(self) -> String {
        format!(
            "{} B, {} publisher{}, 1 consumer",
            self.size,
            self.publishers,
            if self.publishers == 1 { "" } else { "s" }
        )
    }
}

/// The report row of `system` in `cell`.
pub fn subject(system: System, cell: Cell) -> Subject {
    Subject::new(system.name(), cell.label())
}

/// The systems `HAWSER_MESSAGING_SYSTEMS` selects (all when unset).
fn selected_systems() -> Result<Vec<System>> {
    let Ok(list) = std::env::var(SYSTEMS_ENV) else {
        return Ok(System::ALL.to_vec());
    };
    let mut systems = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let system = System::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .with_context(|| {
                format!("{SYSTEMS_ENV}: unknown system {name} (hawser, zmq, rabbitmq, nats)")
            })?;
        if !systems.contains(&system) {
            systems.push(system);
        }
    }
    if systems.is_empty() {
        bail!("{SYSTEMS_ENV} selects no system");
    }
    Ok(System::ALL
        .into_iter()
        .filter(|s| systems.contains(s))
        .collect())
}

/// Whether a run measures the maximum rate or the latency at a given total rate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Max,
    Load(u64),
}

impl Phase {
    fn label(self) -> String {
        match self {
            Phase::Max => "max rate".to_owned(),
            Phase::Load(rate) => format!("at {rate} msg/s"),
        }
    }
}

/// Runs the subjects and remembers which cannot run.
struct Runner {
    seconds: f64,
    peer: Option<PathBuf>,
    hawser: Option<PathBuf>,
    zmq: bool,
    nats: Option<String>,
    rabbitmq: Option<String>,
    /// Why a system is skipped for the rest of the scenario.
    disabled: [Option<String>; 4],
    /// Whether a system has succeeded at least once.
    succeeded: [bool; 4],
}

impl Runner {
    /// The command of one run, or `None` when the system is not set up.
    fn command(&self, system: System, cell: Cell, phase: Phase) -> Result<Option<Command>> {
        let duration = self.seconds.to_string();
        let size = cell.size.to_string();
        let publishers = cell.publishers.to_string();
        let peer_url = match system {
            System::Hawser => {
                let Some(binary) = &self.hawser else {
                    return Ok(None);
                };
                let mut command = Command::new(binary);
                command.args([
                    "bench",
                    "--mode",
                    "dmp",
                    "--size",
                    &size,
                    "--publishers",
                    &publishers,
                    "--duration",
                    &duration,
                ]);
                if let Phase::Load(rate) = phase {
                    command.args(["--rate", &rate.to_string()]);
                }
                command.arg("--json");
                return Ok(Some(command));
            }
            System::Zmq if self.zmq => format!("tcp://127.0.0.1:{}", free_loopback_port()?),
            System::Nats => match &self.nats {
                Some(url) => url.clone(),
                None => return Ok(None),
            },
            System::Rabbitmq => match &self.rabbitmq {
                Some(url) => url.clone(),
                None => return Ok(None),
            },
            System::Zmq => return Ok(None),
        };
        let Some(binary) = &self.peer else {
            return Ok(None);
        };
        let mut command = Command::new(binary);
        command.args([
            "--system",
            system.name(),
            "--url",
            &peer_url,
            "--size",
            &size,
            "--publishers",
            &publishers,
            "--duration",
            &duration,
            "--warmup",
            &PEER_WARMUP_S.to_string(),
        ]);
        if let Phase::Load(rate) = phase {
            command.args(["--rate", &rate.to_string()]);
        }
        Ok(Some(command))
    }

    /// One run; a failure is a note, and disables a system that never succeeded.
    fn measure(
        &mut self,
        outcome: &mut Outcome,
        (system, cell, phase): (System, Cell, Phase),
        round: usize,
    ) -> Result<Option<Measurement>> {
        if self.disabled[system.index()].is_some() {
            return Ok(None);
        }
        let Some(command) = self.command(system, cell, phase)? else {
            return Ok(None);
        };
        let label = subject(system, cell).label();
        eprintln!("  round {round}: {label}, {}", phase.label());
        let timeout = Duration::from_secs_f64(self.seconds + PEER_WARMUP_S + 60.0);
        let result = run_measurement(command, &label, timeout);
        settle();
        match result {
            Ok(measurement) => {
                self.succeeded[system.index()] = true;
                Ok(Some(measurement))
            }
            Err(error) => {
                let error = format!("{error:#}");
                eprintln!("    failed: {error}");
                if self.succeeded[system.index()] {
                    outcome.notes.push(format!(
                        "{label} round {round} ({}) failed: {error}",
                        phase.label()
                    ));
                } else {
                    let reason = format!("its first run failed, skipped: {error}");
                    for cell in Cell::all() {
                        outcome.mark_unavailable(&subject(system, cell), &reason);
                    }
                    self.disabled[system.index()] = Some(reason);
                }
                Ok(None)
            }
        }
    }
}

/// Marks every row of `system` as not available.
fn mark_system(outcome: &mut Outcome, system: System, reason: &str) {
    for cell in Cell::all() {
        outcome.mark_unavailable(&subject(system, cell), reason);
    }
}

/// Runs the comparison and writes the per-cell tables and target ratios.
pub fn run(context: &Context, outcome: &mut Outcome) -> Result<()> {
    let seconds = context.seconds(5.0);
    let systems = selected_systems()?;
    for cell in Cell::all() {
        for system in System::ALL {
            outcome
                .baseline_of
                .push((subject(system, cell), subject(System::Zmq, cell)));
        }
    }
    outcome.baseline = Some(subject(
        System::Zmq,
        Cell {
            size: 64,
            publishers: 1,
        },
    ));
    for system in System::ALL {
        if !systems.contains(&system) {
            mark_system(outcome, system, &format!("not selected ({SYSTEMS_ENV})"));
        }
    }
    let wants = |system| systems.contains(&system);

    // The programs first: a missing baseline is an error that names the fix.
    let nats_program = if wants(System::Nats) {
        Some(require_program("nats-server").context("nats-server (Debian: nats-server)")?)
    } else {
        None
    };
    let rabbit_programs = if wants(System::Rabbitmq) {
        Some(RabbitPrograms::find()?)
    } else {
        None
    };
    let peer = if [System::Zmq, System::Rabbitmq, System::Nats]
        .into_iter()
        .any(wants)
    {
        Some(build_peer().context("building the baselines' client (perf/peers/messaging)")?)
    } else {
        None
    };
    let hawser = if wants(System::Hawser) {
        match hawser_tools::hawser_subcommand("bench") {
            Ok(binary) if hawser_tools::hawser_takes(&binary, "bench", "--publishers") => {
                Some(binary)
            }
            Ok(_) => {
                mark_system(
                    outcome,
                    System::Hawser,
                    "this hawser bench has no --publishers (`--mode dmp` not built yet)",
                );
                None
            }
            Err(reason) => {
                mark_system(
                    outcome,
                    System::Hawser,
                    &format!("hawser bench not available ({reason})"),
                );
                None
            }
        }
    } else {
        None
    };

    let dir = context.scratch.join("messaging");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Declared first so it is dropped after the servers.
    let _remove = RemoveOnDrop(dir.clone());
    let mut versions = Vec::new();
    let nats = match &nats_program {
        Some(program) => {
            eprintln!("  starting nats-server");
            match NatsServer::start(program, &dir.join("nats")) {
                Ok(server) => {
                    versions.push(server.version.clone());
                    Some(server)
                }
                Err(error) => {
                    mark_system(outcome, System::Nats, &format!("nats-server: {error:#}"));
                    None
                }
            }
        }
        None => None,
    };
    let rabbitmq = match &rabbit_programs {
        Some(programs) => {
            eprintln!("  starting rabbitmq-server (takes a few seconds)");
            match RabbitServer::start(programs, &dir.join("rabbitmq")) {
                Ok(server) => {
                    eprintln!("    up after {:.1} s", server.boot.as_secs_f64());
                    versions.push(format!("RabbitMQ {}", server.version));
                    Some(server)
                }
                Err(error) => {
                    mark_system(
                        outcome,
                        System::Rabbitmq,
                        &format!("rabbitmq-server: {error:#}"),
                    );
                    None
                }
            }
        }
        None => None,
    };
    if let Some(version) = summary::libzmq_version() {
        versions.push(format!("libzmq {version}"));
    }
    summary::describe(outcome, seconds, &versions);

    let mut runner = Runner {
        seconds,
        peer,
        hawser,
        zmq: wants(System::Zmq),
        nats: nats.as_ref().map(|s| s.url.clone()),
        rabbitmq: rabbitmq.as_ref().map(|s| s.url.clone()),
        disabled: Default::default(),
        succeeded: [false; 4],
    };
    for cell in Cell::all() {
        eprintln!("  cell {}", cell.label());
        for round in 0..context.runs {
            sample_load(outcome);
            for system in System::ALL {
                if let Some(m) = runner.measure(outcome, (system, cell, Phase::Max), round)? {
                    outcome.record(&subject(system, cell), MAX_RATE, "1/s", m.messages_per_sec);
                }
            }
        }
        latency_rounds(context, outcome, &mut runner, cell)?;
    }
    if let Some(server) = &nats {
        eprintln!("  stopping nats-server (pid {})", server.pid());
    }
    drop(nats);
    if rabbitmq.is_some() {
        eprintln!("  stopping rabbitmq-server");
    }
    drop(rabbitmq);
    summary::sections(outcome);
    Ok(())
}

/// The latency runs of `cell`: each subject at 10% of its own median maximum.
fn latency_rounds(
    context: &Context,
    outcome: &mut Outcome,
    runner: &mut Runner,
    cell: Cell,
) -> Result<()> {
    let rates: Vec<(System, Option<u64>)> = System::ALL
        .into_iter()
        .map(|system| {
            let rate = outcome
                .median(&subject(system, cell), MAX_RATE)
                .map(|max| ((max * LOAD_FRACTION).round() as u64).max(1));
            (system, rate)
        })
        .collect();
    for &(system, rate) in &rates {
        if rate.is_none()
            && runner.disabled[system.index()].is_none()
            && !outcome.is_unavailable(&subject(system, cell))
        {
            outcome.notes.push(format!(
                "{}: no latency at {:.0}% load, no maximum rate was measured.",
                subject(system, cell).label(),
                LOAD_FRACTION * 100.0
            ));
        }
    }
    let mut slow = vec![0usize; System::ALL.len()];
    for round in 0..context.runs {
        sample_load(outcome);
        for &(system, rate) in &rates {
            let Some(rate) = rate else { continue };
            let Some(m) = runner.measure(outcome, (system, cell, Phase::Load(rate)), round)? else {
                continue;
            };
            let row = subject(system, cell);
            outcome.record(&row, LOAD_RATE, "1/s", m.messages_per_sec);
            for (metric, value) in LATENCIES.iter().zip(m.latency_ns) {
                outcome.record(&row, metric, "ns", value);
            }
            if m.messages_per_sec < 0.9 * rate as f64 {
                slow[system.index()] += 1;
            }
        }
    }
    for &(system, rate) in &rates {
        if let (Some(rate), true) = (rate, slow[system.index()] > 0) {
            outcome.notes.push(format!(
                "{}: in {} of the latency runs the consumer received less than 90% of the \
                 {rate} msg/s offered (the system did not keep up, or lost messages).",
                subject(system, cell).label(),
                slow[system.index()]
            ));
        }
    }
    Ok(())
}
