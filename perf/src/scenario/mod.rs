//! `hawser-perf scenario NAME`: runs hawser and its baselines side by side, A/B
//! alternated (every subject once per round, `--runs` rounds), and writes the reports.
//!
//! A subject that cannot run (hawser's command not built yet) is reported as "not
//! available" with the reason and the baselines still run; a missing baseline tool is an
//! error that names `scripts/setup.sh`.

pub mod certificate;
pub mod cpu_cost;
pub mod hawser_tools;
pub mod hostile;
pub mod lfn;
mod lfn_compress;
mod lfn_share;
pub mod local;
pub mod loopback;
pub mod messaging;
pub mod process_cpu;
pub mod replicate;
mod replicate_pair;
pub mod ssh;
pub mod tls;
pub mod tools;
pub mod udp_movers;
pub mod xrootd;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use crate::report::{self, Machine, Outcome, ReportFiles, Subject, ThroughputSeries};

/// The scenarios of issue 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// `hawser bench --mode bulk` vs iperf3 (same connection count) vs the plain-socket
    /// ceiling, over loopback.
    LoopbackBulk,
    /// `hawser bench --mode rpc` ping-pong and pipelined vs sockperf ping-pong.
    LoopbackRpc,
    /// `hawser push` of a large file and of many small files vs rsync (daemon on
    /// loopback): waits for `hawser push`.
    Replicate,
    /// Through linkem at 10 Gbit/s, 50 ms RTT: iperf3 1 and 8 streams (hawser push when
    /// built). Root.
    #[value(name = "lfn-10g-50ms")]
    Lfn10g50ms,
    /// Through linkem at 1 Gbit/s, 100 ms RTT, 1% loss: the same comparison. Root.
    LfnLoss,
    /// Through linkem at 1 Gbit/s, 100 ms RTT without loss: DTP sharing the link with
    /// one TCP stream in both orders, and `--compress` on a link slower than lz4. Root.
    #[value(name = "lfn-1g-100ms")]
    Lfn1g100ms,
    /// `hawser serve` under hostile clients: memory with held frames and idle
    /// connections, nexus create rate under churn, answered wrong passwords.
    Hostile,
    /// `hawser bench` bulk and rpc ping-pong and `hawser push` between two processes of
    /// this host over TCP on loopback, a Unix socket and shared memory (issue 14).
    LocalTransports,
    /// What TLS costs (bench bulk, trunk setup on loopback, a large push through linkem
    /// when root) and `hawser push --tls` vs scp and rsync over ssh (issue 15).
    Tls,
    /// hawser's direct message publish (`hawser bench --mode dmp`) vs ZeroMQ PUSH/PULL,
    /// RabbitMQ and NATS on loopback: max rate and latency at 10% load.
    Messaging,
}

impl ScenarioName {
    /// The name on the command line and in the report file names.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::LoopbackBulk => "loopback-bulk",
            ScenarioName::LoopbackRpc => "loopback-rpc",
            ScenarioName::Replicate => "replicate",
            ScenarioName::Lfn10g50ms => "lfn-10g-50ms",
            ScenarioName::LfnLoss => "lfn-loss",
            ScenarioName::Lfn1g100ms => "lfn-1g-100ms",
            ScenarioName::Hostile => "hostile",
            ScenarioName::LocalTransports => "local-transports",
            ScenarioName::Tls => "tls",
            ScenarioName::Messaging => "messaging",
        }
    }
}

/// Options of `hawser-perf scenario`.
#[derive(Debug, Clone, Args)]
pub struct ScenarioOptions {
    /// Which scenario.
    #[arg(value_enum)]
    pub name: ScenarioName,
    /// Rounds: each subject runs this many times, alternating with the others.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Directory for `<scenario>.json`, `.md` and the SVG plots.
    #[arg(long, default_value = "perf/results")]
    pub out: PathBuf,
    /// Seconds per measured run (default: the scenario's own, 5 s on loopback, 15 s
    /// through linkem).
    #[arg(long)]
    pub duration: Option<f64>,
    /// A sentence for the report's notes (e.g. what else the machine was doing).
    #[arg(long)]
    pub note: Option<String>,
}

/// Environment variables that shrink or grow a scenario's data (or, for
/// `HAWSER_TLS_SKIP_LINK` and `HAWSER_MESSAGING_SYSTEMS`, leave a part out).
pub const SIZE_OVERRIDES: [&str; 11] = [
    "HAWSER_HOSTILE_NEXUSES",
    "HAWSER_LFN_PUSH_MIB",
    "HAWSER_LFN_TEXT_MIB",
    "HAWSER_MESSAGING_SYSTEMS",
    "HAWSER_REPLICATE_BIG_MIB",
    "HAWSER_REPLICATE_SMALL_FILES",
    "HAWSER_REPLICATE_TEXT_MIB",
    "HAWSER_TLS_HANDSHAKES",
    "HAWSER_TLS_LFN_PUSH_MIB",
    "HAWSER_TLS_SKIP_LINK",
    "HAWSER_TLS_SSH_MIB",
];

/// What a scenario needs while it runs.
#[derive(Debug)]
pub struct Context {
    /// Rounds.
    pub runs: usize,
    /// Seconds per measured run, if overridden.
    pub duration: Option<f64>,
    /// Scratch directory for histograms and logs.
    pub scratch: PathBuf,
}

impl Context {
    /// The run length: the override or the scenario's default.
    pub fn seconds(&self, default: f64) -> f64 {
        self.duration.unwrap_or(default)
    }
}

/// One-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Adds the current load average to the report (call at each round).
pub fn sample_load(outcome: &mut Outcome) {
    outcome.load_samples.extend(load_average());
}

/// Whether this process runs as root (linkem needs it), from `/proc/self/status`.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Adds one run's per-interval samples of `subject`.
pub fn add_series(outcome: &mut Outcome, subject: &Subject, run: usize, points: Vec<(f64, f64)>) {
    if !points.is_empty() {
        outcome.series.push(ThroughputSeries {
            subject: subject.clone(),
            run,
            points,
        });
    }
}

/// Runs the scenario and writes its reports; returns the files written.
pub fn run(options: &ScenarioOptions) -> Result<ReportFiles> {
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let name = options.name.as_str();
    let scratch = std::env::temp_dir().join(format!("hawser-perf-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    // Gigabytes of data sets and targets: removed however the scenario ends.
    let _remove_scratch = RemoveOnDrop(scratch.clone());
    let context = Context {
        runs: options.runs,
        duration: options.duration,
        scratch: scratch.clone(),
    };
    let command = std::env::var("HAWSER_PERF_COMMAND").unwrap_or_else(|_| {
        let mut command = format!("hawser-perf scenario {name} --runs {}", options.runs);
        if let Some(seconds) = options.duration {
            command += &format!(" --duration {seconds}");
        }
        command
    });
    // Data-size overrides change what is measured: they belong in the command.
    let overrides: String = SIZE_OVERRIDES
        .iter()
        .filter_map(|var| {
            std::env::var(var)
                .ok()
                .map(|value| format!("{var}={value} "))
        })
        .collect();
    let command = overrides + &command;
    let mut outcome = Outcome {
        scenario: name.to_owned(),
        command,
        runs: options.runs,
        started_utc: utc_now(),
        ..Outcome::default()
    };
    sample_load(&mut outcome);
    eprintln!(
        "scenario {name}: {} rounds, load average {}",
        options.runs,
        outcome
            .load_samples
            .first()
            .map_or("?".into(), |l| format!("{l:.2}"))
    );
    if let Some(note) = &options.note {
        outcome.notes.insert(0, note.clone());
    }
    match options.name {
        ScenarioName::LoopbackBulk => loopback::bulk(&context, &mut outcome)?,
        ScenarioName::LoopbackRpc => loopback::rpc(&context, &mut outcome)?,
        ScenarioName::Replicate => replicate::run(&context, &mut outcome)?,
        ScenarioName::Lfn10g50ms => lfn::run(&context, &mut outcome, &lfn::TEN_GBIT_50MS)?,
        ScenarioName::LfnLoss => lfn::run(&context, &mut outcome, &lfn::ONE_GBIT_100MS_LOSS)?,
        ScenarioName::Lfn1g100ms => lfn::run(&context, &mut outcome, &lfn::ONE_GBIT_100MS)?,
        ScenarioName::Hostile => hostile::run(&context, &mut outcome)?,
        ScenarioName::LocalTransports => local::run(&context, &mut outcome)?,
        ScenarioName::Tls => tls::run(&context, &mut outcome)?,
        ScenarioName::Messaging => messaging::run(&context, &mut outcome)?,
    }
    sample_load(&mut outcome);
    Ok(report::write_reports(
        &outcome,
        &Machine::detect(),
        &options.out,
    )?)
}

/// Removes a directory tree when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sleeps between subjects so one run's tail (TIME_WAIT, a server exiting) does not
/// overlap the next run.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}
