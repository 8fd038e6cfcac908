//! `lfn-10g-50ms`, `lfn-loss` and `lfn-1g-100ms`: through the link emulator (root). linkem runs as a
//! child process (`hawser-perf linkem`, this same binary) for the whole scenario; the
//! servers (iperf3's, `hawser serve`, `xrootd`) run in side b, their clients in side a.
//! Each TCP transfer's and each DTP push's cost per byte (core-seconds per GB of client
//! and server) is measured beside its rate.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::lfn_compress::CompressRows;
use super::lfn_share::{ShareRows, ShareRun};
use super::process_cpu::seconds_between;
use super::replicate::{empty_directory, write_random_file};
use super::tools::{self, Iperf3Setup};
use super::udp_movers::{self, DTP_PORT, UftpPace};
use super::xrootd::{XrdcpPeer, XrdcpSetup};
use super::{Context, add_series, cpu_cost, hawser_tools, is_root, settle};
use crate::linkem::netns::existing_namespaces;
use crate::linkem::rng::SeededRng;
use crate::report::{Outcome, Subject};

/// An emulated link and how a scenario measures through it.
#[derive(Debug, Clone)]
pub struct LinkProfile {
    /// Link rate per direction, bits per second (for `link_fraction`).
    pub rate_bits_per_sec: f64,
    /// linkem's `--rate`.
    pub rate: &'static str,
    /// linkem's `--rtt`.
    pub rtt: &'static str,
    /// linkem's `--loss`.
    pub loss: &'static str,
    /// Default seconds per run.
    pub default_seconds: f64,
    /// iperf3 stream counts compared.
    pub iperf3_streams: &'static [usize],
    /// hawser push connection counts.
    pub hawser_connections: &'static [usize],
    /// Size of the file hawser pushes, MiB: long enough at link rate to show a steady
    /// state (`HAWSER_LFN_PUSH_MIB` overrides it).
    pub push_file_mib: u64,
    /// TCP congestion control of every sender (iperf3 `-C`, hawser `--congestion`);
    /// `None`: the system's default (BBR on the build machines).
    pub congestion: Option<&'static str>,
    /// Why that congestion control, for the report's notes.
    pub congestion_why: &'static str,
    /// Also measure uftp (TFMCC and a fixed rate).
    pub udp_peers: bool,
    /// Also measure a DTP push sharing the link with one iperf3 stream, in both orders.
    pub dtp_beside_tcp: bool,
    /// Also measure `xrdcp --streams N` of the pushed file to an `xrootd`.
    pub xrdcp_streams: Option<usize>,
    /// Also push this many MiB of log text with `--compress off|auto|lz4`
    /// (`HAWSER_LFN_TEXT_MIB` overrides it).
    pub compress_text_mib: Option<u64>,
}

/// Issue 6 scenario 4: 10 Gbit/s, 50 ms RTT.
pub const TEN_GBIT_50MS: LinkProfile = LinkProfile {
    rate_bits_per_sec: 10e9,
    rate: "10gbit",
    rtt: "50ms",
    loss: "0",
    default_seconds: 15.0,
    iperf3_streams: &[1, 8],
    hawser_connections: &[1, 4, 8],
    push_file_mib: 8192,
    congestion: None,
    congestion_why: "",
    udp_peers: false,
    dtp_beside_tcp: false,
    xrdcp_streams: Some(8),
    compress_text_mib: Some(1024),
};

/// Issue 6 scenario 5: 1 Gbit/s, 100 ms RTT, 1% loss.
pub const ONE_GBIT_100MS_LOSS: LinkProfile = LinkProfile {
    rate_bits_per_sec: 1e9,
    rate: "1gbit",
    rtt: "100ms",
    loss: "1%",
    default_seconds: 20.0,
    iperf3_streams: &[1, 8],
    hawser_connections: &[1, 4, 8],
    push_file_mib: 1024,
    // Decision: the loss scenario is about how random loss limits a TCP stream, which is
    // what loss-based congestion control does; under BBR (this kernel's default) 1% loss
    // barely slows one stream (iperf3 reached 96.7%), so every sender uses cubic here.
    congestion: Some("cubic"),
    congestion_why: "loss limits a loss-based stream, which is what this scenario is \
                     about; under this kernel's default, BBR, 1% loss barely slows a \
                     single stream.",
    udp_peers: true,
    dtp_beside_tcp: true,
    xrdcp_streams: None,
    compress_text_mib: None,
};

/// The same path without random loss: where one TCP stream can fill the link alone, so
/// what a DTP push leaves it shows, and where `--compress auto`'s threads outrun the link.
pub const ONE_GBIT_100MS: LinkProfile = LinkProfile {
    rate_bits_per_sec: 1e9,
    rate: "1gbit",
    rtt: "100ms",
    loss: "0",
    default_seconds: 20.0,
    iperf3_streams: &[1, 8],
    hawser_connections: &[8],
    // Long enough that the two orders of sharing overlap for most of iperf3's run.
    push_file_mib: 2048,
    // Decision: a loss-based stream fills the bottleneck's queue, the case a delay-aware
    // sender must still leave room in; cubic, as in `lfn-loss`.
    congestion: Some("cubic"),
    congestion_why: "a loss-based stream keeps the bottleneck's queue full, the case in \
                     which a sender that watches the round trip must still leave it room.",
    udp_peers: false,
    dtp_beside_tcp: true,
    xrdcp_streams: None,
    compress_text_mib: Some(1024),
};

/// Flags that make linkem hold 10 Gbit/s on the loaded 2-core machine
/// (`perf/results/linkem-selftest.md`).
const LINKEM_THROUGHPUT_FLAGS: [&str; 3] = ["--realtime", "10", "--offload"];
/// linkem's namespaces: the senders run in a, the servers in b.
pub(super) const NS_A: &str = "hawser-a";
pub(super) const NS_B: &str = "hawser-b";
/// The address of side b, where the servers listen.
pub(super) const ADDRESS_B: &str = "198.18.0.2";
const IPERF3_PORT: u16 = 5201;
const HAWSER_PORT: u16 = 8415;
const BENCH_PORT: u16 = 8416;
/// XRootD's registered port.
const XROOTD_PORT: u16 = 1094;
/// Connections and calls in flight of the memory-to-memory row (`hawser bench --mode
/// bulk` through the link): 1 MiB requests, four times the bandwidth-delay product of
/// 10 Gbit/s x 50 ms. Under 8 BBR flows linkem's one-BDP queue stays full, so a call's
/// round trip is ~100 ms, not 50: with twice the BDP (128) in flight the row measured
/// its window (9.1 Gbit/s), not the trunk.
const BENCH_CONNECTIONS: usize = 8;
const BENCH_PIPELINE: usize = 256;
/// iperf3 reporting interval: the resolution of `time_to_90pct_s`.
const INTERVAL_S: f64 = 0.5;

impl LinkProfile {
    /// linkem's arguments for this link.
    pub fn linkem_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "linkem",
            "--ns-a",
            NS_A,
            "--ns-b",
            NS_B,
            "--rate",
            self.rate,
            "--rtt",
            self.rtt,
            "--loss",
            self.loss,
            "--json",
            "--report-interval",
            "1s",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(LINKEM_THROUGHPUT_FLAGS.iter().map(|s| (*s).to_owned()));
        args
    }
}

/// linkem running as a child; SIGTERM (its clean teardown) when dropped.
#[derive(Debug)]
pub(super) struct LinkemProcess {
    child: Child,
    log: PathBuf,
}

impl LinkemProcess {
    /// Starts linkem for `profile` (its logs in `scratch`) and waits until the link is up.
    pub(super) fn start(profile: &LinkProfile, scratch: &Path) -> Result<LinkemProcess> {
        let ready = scratch.join("linkem.ready");
        let log = scratch.join("linkem.log");
        let executable = std::env::current_exe().context("locating hawser-perf")?;
        let child = Command::new(executable)
            .args(profile.linkem_args())
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(scratch.join("linkem.stderr"))?)
            .spawn()
            .context("starting hawser-perf linkem")?;
        let mut linkem = LinkemProcess { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            if let Some(status) = linkem.child.try_wait()? {
                let stderr =
                    std::fs::read_to_string(scratch.join("linkem.stderr")).unwrap_or_default();
                bail!("linkem exited during setup ({status}): {}", stderr.trim());
            }
            if Instant::now() > deadline {
                bail!("linkem did not come up within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(linkem)
    }

    /// Stops linkem and returns its final counters line (JSON), if any.
    pub(super) fn stop(mut self) -> Option<String> {
        self.terminate();
        std::fs::read_to_string(&self.log)
            .ok()?
            .lines()
            .rev()
            .find(|l| l.contains("\"kind\":\"final\""))
            .map(str::to_owned)
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = crate::sys::terminate(self.child.id());
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Namespaces outlive a SIGKILL; `hawser-perf linkem --cleanup` removes them.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for LinkemProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Runs iperf3 and hawser push (when built) through linkem configured by `profile`,
/// alternated round by round.
pub fn run(context: &Context, outcome: &mut Outcome, profile: &LinkProfile) -> Result<()> {
    let seconds = context.seconds(profile.default_seconds);
    let link_bytes_per_sec = profile.rate_bits_per_sec / 8.0;
    // Ramp-up excluded: the first third of each run.
    let steady_from = seconds / 3.0;
    let hawser = match (
        hawser_tools::hawser_subcommand("push"),
        hawser_tools::hawser_subcommand("serve"),
    ) {
        (Ok(binary), Ok(_)) => Ok(binary),
        (Err(reason), _) | (_, Err(reason)) => Err(reason),
    };
    let hawser_subjects: Vec<(usize, Subject)> = profile
        .hawser_connections
        .iter()
        .map(|&connections| {
            let plural = if connections == 1 { "" } else { "s" };
            (
                connections,
                Subject::new("hawser", format!("push, {connections} connection{plural}")),
            )
        })
        .collect();
    if let Err(reason) = &hawser {
        for (_, subject) in &hawser_subjects {
            outcome.mark_unavailable(subject, reason);
        }
    }
    let subjects: Vec<(usize, Subject)> = profile
        .iperf3_streams
        .iter()
        .map(|&streams| (streams, Subject::new("iperf3", format!("-P {streams}"))))
        .collect();
    outcome.baseline = subjects.first().map(|(_, s)| s.clone());
    tools::require_program("iperf3")?;
    if !is_root() {
        bail!(
            "{} needs root (linkem creates network namespaces)",
            outcome.scenario
        );
    }
    let existing = existing_namespaces()?;
    if existing.iter().any(|n| n == NS_A || n == NS_B) {
        bail!(
            "namespaces {NS_A}/{NS_B} already exist: another linkem is running, or a \
             leftover (remove with `hawser-perf linkem --cleanup`)"
        );
    }
    outcome.notes.push(format!(
        "Link: `hawser-perf {}` (queue 1 BDP, MTU 65000, TCP senders with {}), iperf3 server \
         in {NS_B}, client in {NS_A}; each run `iperf3 -c {ADDRESS_B} -P N -t {seconds} -i \
         {INTERVAL_S} -J --get-server-output`, rates from the receiving server.",
        profile.linkem_args().join(" "),
        profile.congestion.unwrap_or("BBR, the system's default")
    ));
    outcome.notes.push(format!(
        "link_fraction = steady-state rate / link rate ({} Gbit/s per direction), \
         steady state = mean of the {INTERVAL_S}-s receiver intervals after the first {:.1} s; \
         time_to_90pct_s = end of the first {INTERVAL_S}-s interval at ≥ 90% of the link rate. \
         Rates are TCP payload (goodput); the link rate counts IP bytes, so the ceiling is about \
         99.9% with 64 KB packets. iperf3's clock starts once its connections are up (after \
         the 1-RTT handshake).",
        profile.rate_bits_per_sec / 1e9,
        steady_from
    ));
    let push_mib = std::env::var("HAWSER_LFN_PUSH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(profile.push_file_mib);
    let push_source = context.scratch.join("push-source");
    let push_target = context.scratch.join("push-target");
    let push_bytes = (push_mib << 20) as f64;
    let xrdcp_subject = profile
        .xrdcp_streams
        .map(|streams| Subject::new("xrdcp", format!("--streams {streams}")));
    if hawser.is_ok() || xrdcp_subject.is_some() {
        eprintln!("  writing the {push_mib} MiB file hawser pushes");
        std::fs::create_dir_all(&push_source)?;
        std::fs::create_dir_all(&push_target)?;
        write_random_file(
            &push_source.join("push.bin"),
            push_mib,
            &mut SeededRng::new(0x006c_666e),
        )?;
    }
    if hawser.is_ok() {
        outcome.notes.push(format!(
            "hawser: `hawser serve --allow-anonymous --listen {ADDRESS_B}:{HAWSER_PORT} --root TARGET` in \
             {NS_B}; each run empties TARGET, then `hawser push --connections N --compress off \
             --json FILE push.bin {ADDRESS_B}:{HAWSER_PORT}:runK` in {NS_A}: one {push_mib} MiB \
             incompressible file from the page cache. Its rate = file bytes / push duration \
             (from its report), intervals = bytes acknowledged per 1-s interval (so \
             time_to_90pct_s has 1-s resolution), steady state = intervals after the first \
             third of the push."
        ));
    }
    let text_mib = std::env::var("HAWSER_LFN_TEXT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .or(profile.compress_text_mib);
    let mut compress_rows = match (text_mib, &hawser) {
        (Some(mib), Ok(_)) => Some(CompressRows::prepare(&context.scratch, mib, outcome)?),
        _ => None,
    };
    let linkem = LinkemProcess::start(profile, &context.scratch)?;
    let xrootd_export = context.scratch.join("xrootd-target");
    let xrdcp_peer = match (&xrdcp_subject, profile.xrdcp_streams) {
        (Some(subject), Some(streams)) => {
            let setup = XrdcpSetup {
                client_namespace: Some(NS_A),
                server_namespace: Some(NS_B),
                host: ADDRESS_B,
                port: XROOTD_PORT,
                streams: Some(streams),
                sync_first: false,
            };
            let file = push_source.join("push.bin");
            match XrdcpPeer::start(subject, setup, &file, &xrootd_export, &context.scratch) {
                Ok(peer) => {
                    outcome.notes.push(format!(
                        "xrdcp: `xrootd -c CFG -R nobody -l LOG` in {NS_B} (CFG = `all.export \
                         DIR` and `xrd.port {XROOTD_PORT}`), started by the scenario; each run \
                         empties DIR, then `xrdcp --nopbar --streams {streams} push.bin \
                         root://{ADDRESS_B}:{XROOTD_PORT}//DIR/push.bin` in {NS_A}, and the \
                         copy is checked against push.bin (size and XXH3-128): a copy that \
                         differs fails its run. Rate = file bytes / wall time of xrdcp \
                         (connection setup and ramp-up included, as in hawser push's own \
                         rate); no intervals, so no steady state or time to 90%."
                    ));
                    Some(peer)
                }
                Err(error) => {
                    outcome.mark_unavailable(subject, &format!("{error:#}"));
                    None
                }
            }
        }
        _ => None,
    };
    let server = match &hawser {
        Ok(binary) => Some(udp_movers::start_serve_with_dtp(
            binary,
            Some(NS_B),
            &format!("{ADDRESS_B}:{HAWSER_PORT}"),
            &format!("{ADDRESS_B}:{DTP_PORT}"),
            &push_target,
        )?),
        Err(_) => None,
    };
    let dtp_subject = Subject::new("hawser", "push --transport dtp");
    let uftp_subjects = [
        (UftpPace::Tfmcc, Subject::new("uftp", "-C tfmcc")),
        (
            UftpPace::Fixed {
                kbps: (profile.rate_bits_per_sec * 0.95 / 1e3) as u64,
            },
            Subject::new("uftp", "-C none -R 95% of the link"),
        ),
    ];
    let uftp_received = context.scratch.join("uftp-received");
    let uftpd = if profile.udp_peers {
        std::fs::create_dir_all(&uftp_received)?;
        match udp_movers::start_uftpd(Some(NS_B), &uftp_received) {
            Ok(daemon) => Some(daemon),
            Err(error) => {
                for (_, subject) in &uftp_subjects {
                    outcome.mark_unavailable(subject, &format!("{error:#}"));
                }
                None
            }
        }
    } else {
        None
    };
    if hawser.is_ok() {
        outcome.notes.push(format!(
            "hawser DTP: the same server with `--dtp {ADDRESS_B}:{DTP_PORT}`; each run `hawser push --transport dtp --mtu {} --json FILE push.bin {ADDRESS_B}:{HAWSER_PORT}:dtpK` in {NS_A} (probe rate control; 1-s intervals of new bytes received).",
            udp_movers::DTP_MTU
        ));
    }
    if uftpd.is_some() {
        outcome.notes.push(format!(
            "uftp: `uftpd -d -q -B 100M -D DIR` in {NS_B}; each run `uftp -M {ADDRESS_B} -Y none -b 8800 -B 100M (-C tfmcc | -C none -R KBPS) push.bin` in {NS_A}, at most {:.0} s (a run stopped there is measured by the bytes that reached DIR). Rate = bytes / wall time of the uftp process (its announce and completion rounds included).",
            seconds * 2.0
        ));
    }
    let share_rows = (profile.dtp_beside_tcp && hawser.is_ok())
        .then(|| ShareRows::new(outcome, profile.congestion, seconds));
    let bench_subject = Subject::new(
        "hawser",
        format!("bench bulk (memory to memory, no files), {BENCH_CONNECTIONS} connections"),
    );
    let bench_server = match &hawser {
        Ok(binary) => Some(hawser_tools::start_hawser_bench_server(
            binary,
            Some(NS_B),
            &format!("{ADDRESS_B}:{BENCH_PORT}"),
        )?),
        Err(reason) => {
            outcome.mark_unavailable(&bench_subject, reason);
            None
        }
    };
    if bench_server.is_some() {
        outcome.notes.push(format!(
            "hawser bench bulk: `hawser bench --serve {ADDRESS_B}:{BENCH_PORT} --allow-anonymous` in {NS_B} and \
             `hawser bench --mode bulk --connect {ADDRESS_B}:{BENCH_PORT} --connections \
             {BENCH_CONNECTIONS} --pipeline {BENCH_PIPELINE} --duration {seconds}` in {NS_A}: \
             the session layer and its trunk without files or hashing (as iperf3 moves no file \
             data). Its intervals (0.5 s, payload bytes of the exchanges completed in each, \
             from the first call) give steady state and time to 90% as iperf3's do; its \
             throughput is the total over the measured part (after a 1-s warm-up)."
        ));
    }
    let push_report = context.scratch.join("push.json");
    let setup = Iperf3Setup {
        client_namespace: Some(NS_A),
        server_namespace: Some(NS_B),
        server_address: ADDRESS_B,
        port: IPERF3_PORT,
        congestion: profile.congestion,
    };
    if let Some(name) = profile.congestion {
        outcome.notes.push(format!(
            "Every sender uses TCP congestion control {name} (iperf3 `-C {name}`, hawser \
             `--congestion {name}`): {}",
            profile.congestion_why
        ));
    }
    let mut missed_target = Vec::new();
    let mut failure = None;
    'rounds: for round in 0..context.runs {
        super::sample_load(outcome);
        for (streams, subject) in &subjects {
            eprintln!("  round {round}: {}", subject.label());
            let result = match tools::run_iperf3(&setup, *streams, seconds, INTERVAL_S) {
                Ok(result) => result,
                Err(error) => {
                    failure = Some(error.context(format!("{} round {round}", subject.label())));
                    break 'rounds;
                }
            };
            let bytes = result
                .received_bytes
                .unwrap_or(result.received_bytes_per_sec * seconds);
            let run = LinkRun {
                subject,
                round,
                rate: result.received_bytes_per_sec,
                intervals: result.intervals,
                steady_from,
            };
            run.record(outcome, link_bytes_per_sec, &mut missed_target);
            if let Some(cpu) = result.cpu {
                cpu_cost::record_transfer(
                    outcome,
                    subject,
                    bytes,
                    Some(cpu.client_s),
                    Some(cpu.server_s),
                );
            }
            // A fresh TCP connection through a 50 ms path should not see the previous
            // run's queue: let it drain.
            settle();
        }
        if let (Ok(binary), Some(_)) = (&hawser, &bench_server) {
            eprintln!("  round {round}: {}", bench_subject.label());
            let connect = format!("{ADDRESS_B}:{BENCH_PORT}");
            let (connections, pipeline, duration) = (
                BENCH_CONNECTIONS.to_string(),
                BENCH_PIPELINE.to_string(),
                seconds.to_string(),
            );
            let args = [
                "--mode",
                "bulk",
                "--connect",
                &connect,
                "--connections",
                &connections,
                "--pipeline",
                &pipeline,
                "--duration",
                &duration,
            ];
            match hawser_tools::run_hawser_bench(binary, Some(NS_A), &args, None) {
                Ok(result) => {
                    let run = LinkRun {
                        subject: &bench_subject,
                        round,
                        rate: result.throughput_bytes_per_sec,
                        intervals: result.intervals,
                        steady_from,
                    };
                    run.record(outcome, link_bytes_per_sec, &mut missed_target);
                }
                Err(error) => outcome.notes.push(format!(
                    "{} round {round} failed: {error:#}",
                    bench_subject.label()
                )),
            }
            settle();
        }
        if let Ok(binary) = &hawser {
            for (connections, subject) in &hawser_subjects {
                eprintln!("  round {round}: {}", subject.label());
                empty_directory(&push_target)?;
                let serve_before = tools::background_cpu(server.as_ref());
                let pushed = hawser_tools::run_hawser_push(
                    binary,
                    Some(NS_A),
                    *connections,
                    &push_source.join("push.bin"),
                    &format!("{ADDRESS_B}:{HAWSER_PORT}:run{round}"),
                    &push_report,
                    hawser_tools::PushOptions {
                        congestion: profile.congestion,
                        ..hawser_tools::PushOptions::default()
                    },
                );
                settle();
                let serve_s = seconds_between(serve_before, tools::background_cpu(server.as_ref()));
                match pushed {
                    Ok(result) => {
                        let client_s = result.client_cpu_s;
                        let run = LinkRun {
                            subject,
                            round,
                            rate: result.bytes_per_sec,
                            intervals: result.intervals,
                            steady_from: result.seconds / 3.0,
                        };
                        run.record(outcome, link_bytes_per_sec, &mut missed_target);
                        cpu_cost::record_transfer(outcome, subject, push_bytes, client_s, serve_s);
                    }
                    Err(error) => outcome.notes.push(format!(
                        "{} round {round} failed: {error:#}",
                        subject.label()
                    )),
                }
            }
            eprintln!("  round {round}: {}", dtp_subject.label());
            empty_directory(&push_target)?;
            let serve_before = tools::background_cpu(server.as_ref());
            let pushed = udp_movers::run_dtp_push(
                binary,
                Some(NS_A),
                &push_source.join("push.bin"),
                &format!("{ADDRESS_B}:{HAWSER_PORT}:dtp{round}"),
                &push_report,
            );
            settle();
            let serve_s = seconds_between(serve_before, tools::background_cpu(server.as_ref()));
            match pushed {
                Ok(result) => {
                    let client_s = result.client_cpu_s;
                    LinkRun {
                        subject: &dtp_subject,
                        round,
                        rate: result.bytes_per_sec,
                        intervals: result.intervals,
                        steady_from: result.seconds / 3.0,
                    }
                    .record(outcome, link_bytes_per_sec, &mut missed_target);
                    cpu_cost::record_transfer(outcome, &dtp_subject, push_bytes, client_s, serve_s);
                }
                Err(error) => outcome.notes.push(format!(
                    "{} round {round} failed: {error:#}",
                    dtp_subject.label()
                )),
            }
            if let Some(rows) = &share_rows {
                let source = push_source.join("push.bin");
                let run = ShareRun {
                    binary,
                    setup: &setup,
                    seconds,
                    source: &source,
                    report: &push_report,
                };
                rows.run_round(
                    &run,
                    &format!("{ADDRESS_B}:{HAWSER_PORT}:shared{round}"),
                    round,
                    link_bytes_per_sec,
                    outcome,
                    &|| empty_directory(&push_target),
                )?;
            }
        }
        if let Some(peer) = &xrdcp_peer {
            eprintln!("  round {round}: {}", peer.subject().label());
            peer.run(outcome, round)?;
        }
        if let (Some(rows), Ok(binary)) = (&mut compress_rows, &hawser) {
            rows.run_round(
                binary,
                profile.congestion,
                server.as_ref(),
                HAWSER_PORT,
                &push_target,
                &push_report,
                round,
                link_bytes_per_sec,
                outcome,
            )?;
        }
        if uftpd.is_some() {
            for (pace, subject) in &uftp_subjects {
                eprintln!("  round {round}: {}", subject.label());
                empty_directory(&uftp_received)?;
                let limit = Duration::from_secs_f64(seconds * 2.0);
                match udp_movers::run_uftp(
                    Some(NS_A),
                    ADDRESS_B,
                    &push_source.join("push.bin"),
                    *pace,
                    &uftp_received.join("push.bin"),
                    limit,
                ) {
                    Ok(result) => {
                        let rate = result.bytes as f64 / result.seconds.max(1e-9);
                        outcome.record(subject, "throughput_bytes_per_sec", "bytes/s", rate);
                        outcome.record(
                            subject,
                            "link_fraction",
                            "fraction",
                            rate / link_bytes_per_sec,
                        );
                        if !result.completed {
                            outcome.notes.push(format!(
                                "{} round {round}: stopped at {:.0} s with {} bytes received",
                                subject.label(),
                                result.seconds,
                                result.bytes
                            ));
                        }
                    }
                    Err(error) => outcome.notes.push(format!(
                        "{} round {round} failed: {error:#}",
                        subject.label()
                    )),
                }
                udp_movers::quiet_uftp();
                settle();
            }
        }
    }
    drop(uftpd);
    drop(server);
    drop(bench_server);
    if let Some(peer) = xrdcp_peer {
        peer.stop()?;
    }
    if hawser.is_ok() {
        empty_directory(&push_target)?;
    }
    let counters = linkem.stop();
    if let Some(error) = failure {
        return Err(error);
    }
    if !missed_target.is_empty() {
        let mut counted: Vec<(String, usize)> = Vec::new();
        for label in missed_target {
            match counted.iter_mut().find(|(l, _)| *l == label) {
                Some((_, count)) => *count += 1,
                None => counted.push((label, 1)),
            }
        }
        let runs = context.runs;
        let listed: Vec<String> = counted
            .iter()
            .map(|(label, count)| format!("{label} in {count} of {runs} runs"))
            .collect();
        outcome.notes.push(format!(
            "Never reached 90% of the link rate (so no time_to_90pct_s value): {}.",
            listed.join("; ")
        ));
    }
    if let Some(rows) = compress_rows {
        rows.summarize(outcome);
    }
    if let Some(summary) = counters.as_deref().and_then(summarize_counters) {
        outcome.notes.push(summary);
    }
    summarize_costs(
        outcome,
        &subjects,
        &hawser_subjects,
        &dtp_subject,
        xrdcp_subject.as_ref().zip(profile.xrdcp_streams),
    );
    Ok(())
}

/// The cost-per-byte section (against iperf3 with the most streams) and the rate of a
/// push against xrdcp's with as many streams as it has connections.
fn summarize_costs(
    outcome: &mut Outcome,
    iperf3: &[(usize, Subject)],
    hawser: &[(usize, Subject)],
    dtp: &Subject,
    xrdcp: Option<(&Subject, usize)>,
) {
    let Some((_, reference)) = iperf3.iter().max_by_key(|(streams, _)| *streams) else {
        return;
    };
    let costed: Vec<Subject> = iperf3
        .iter()
        .chain(hawser)
        .map(|(_, s)| s.clone())
        .chain([dtp.clone()])
        .chain(xrdcp.map(|(s, _)| s.clone()))
        .collect();
    if let Some(table) = cpu_cost::section(outcome, &costed, reference) {
        outcome
            .sections
            .push(("Cost per byte (core-s/GB)".to_owned(), table));
        outcome.notes.push(cpu_cost::method_note());
    }
    let Some((xrdcp, streams)) = xrdcp else {
        return;
    };
    let throughput = "throughput_bytes_per_sec";
    let push = hawser
        .iter()
        .find(|(connections, _)| *connections == streams);
    if let (Some((_, push)), Some(xrdcp_rate)) = (push, outcome.median(xrdcp, throughput))
        && let Some(push_rate) = outcome.median(push, throughput)
    {
        outcome.notes.push(format!(
            "{} / {}: {:.2}x in bytes/s (medians of whole-transfer rates).",
            push.label(),
            xrdcp.label(),
            push_rate / xrdcp_rate
        ));
    }
}

/// One measured transfer through the link.
struct LinkRun<'a> {
    subject: &'a Subject,
    round: usize,
    /// Average rate over the whole transfer, bytes per second.
    rate: f64,
    /// (interval end in s, bytes per second).
    intervals: Vec<(f64, f64)>,
    /// Intervals ending after this belong to the steady state.
    steady_from: f64,
}

impl LinkRun<'_> {
    /// Records throughput, steady state, link fraction and time to 90%; notes a run that
    /// never reached 90%.
    fn record(self, outcome: &mut Outcome, link_bytes_per_sec: f64, missed: &mut Vec<String>) {
        let subject = self.subject;
        outcome.record(subject, "throughput_bytes_per_sec", "bytes/s", self.rate);
        if let Some(steady) = tools::steady_state_rate(&self.intervals, self.steady_from) {
            outcome.record(subject, "steady_state_bytes_per_sec", "bytes/s", steady);
            outcome.record(
                subject,
                "link_fraction",
                "fraction",
                steady / link_bytes_per_sec,
            );
        }
        match tools::time_to_reach(&self.intervals, 0.9 * link_bytes_per_sec) {
            Some(t) => outcome.record(subject, "time_to_90pct_s", "s", t),
            None => missed.push(subject.label()),
        }
        add_series(outcome, subject, self.round, self.intervals);
    }
}

/// One sentence from linkem's final JSON counters: what crossed a→b and what it dropped.
pub(super) fn summarize_counters(line: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    let forward = &json["a_to_b"];
    let count = |key: &str| forward[key].as_u64().unwrap_or(0);
    Some(format!(
        "linkem over its whole run ({:.0} s), a→b: {} packets, {:.1} GB forwarded; \
         dropped {} at the full queue, {} by random loss, {} for lack of a buffer.",
        json["elapsed_s"].as_f64().unwrap_or(0.0),
        count("forwarded_packets"),
        count("forwarded_bytes") as f64 / 1e9,
        count("dropped_queue_full"),
        count("dropped_random_loss"),
        count("dropped_no_buffer"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkem_arguments_carry_the_profile() {
        let args = TEN_GBIT_50MS.linkem_args().join(" ");
        assert!(
            args.starts_with("linkem --ns-a hawser-a --ns-b hawser-b --rate 10gbit --rtt 50ms")
        );
        assert!(args.ends_with("--realtime 10 --offload"));
        assert!(
            ONE_GBIT_100MS_LOSS
                .linkem_args()
                .join(" ")
                .contains("--loss 1%")
        );
    }

    #[test]
    fn counters_summary() {
        let line = r#"{"kind":"final","elapsed_s":14.8,"a_to_b":{"forwarded_packets":210919,
            "forwarded_bytes":13678240614,"dropped_queue_full":2275,"dropped_random_loss":3,
            "dropped_no_buffer":0},"b_to_a":{}}"#;
        assert_eq!(
            summarize_counters(line).unwrap(),
            "linkem over its whole run (15 s), a→b: 210919 packets, 13.7 GB forwarded; \
             dropped 2275 at the full queue, 3 by random loss, 0 for lack of a buffer."
        );
    }
}
