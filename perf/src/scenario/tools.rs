//! Drivers of the baseline tools: iperf3, sockperf, the in-crate plain-socket and
//! file-write ceilings, each with a parser of its output that the unit tests cover; and
//! the background processes every scenario starts (hawser's own in `hawser_tools`).

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::process_cpu::{self, CpuTimes};
use crate::report::LatencyCurve;

/// Where a command runs: in this network namespace or in a named one (`ip netns exec`).
pub fn command_in(namespace: Option<&str>, program: &str) -> Command {
    match namespace {
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns, program]);
            command
        }
        None => Command::new(program),
    }
}

/// The path of `program` if it is an executable on `PATH` (or a path that exists).
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// Fails with the fix when a baseline tool is missing.
pub fn require_program(program: &str) -> Result<PathBuf> {
    find_program(program).with_context(|| {
        format!("{program} is not installed: run scripts/setup.sh (installs iperf3, sockperf, rsync, hyperfine, OpenSSH, openssl, uftp, XRootD)")
    })
}

/// The output stream on which a server says it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announces {
    /// Standard output (`hawser serve`'s `listening on ADDR`).
    Stdout,
    /// Standard error (`hawser bench --serve`'s serving line).
    Stderr,
}

/// A background process (a server) killed and reaped when dropped.
#[derive(Debug)]
pub struct Background {
    child: Child,
    what: String,
}

impl Background {
    /// Starts `command` with its output discarded.
    pub fn spawn(mut command: Command, what: &str) -> Result<Background> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        Ok(Background {
            child,
            what: what.to_owned(),
        })
    }

    /// Starts `command` and waits until `ready` accepts the lines it has printed so far
    /// on `stream` (its other output is discarded), at most `timeout`; returns those
    /// lines. A thread keeps reading the stream afterwards so the process never blocks
    /// on a full pipe. Fails with the lines printed if the process exits first.
    pub fn spawn_announced(
        mut command: Command,
        what: &str,
        stream: Announces,
        ready: impl Fn(&[String]) -> bool,
        timeout: Duration,
    ) -> Result<(Background, Vec<String>)> {
        command.stdin(Stdio::null());
        match stream {
            Announces::Stdout => command.stdout(Stdio::piped()).stderr(Stdio::null()),
            Announces::Stderr => command.stdout(Stdio::null()).stderr(Stdio::piped()),
        };
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let pipe: Box<dyn Read + Send> = match stream {
            Announces::Stdout => Box::new(child.stdout.take().context("no stdout pipe")?),
            Announces::Stderr => Box::new(child.stderr.take().context("no stderr pipe")?),
        };
        let mut background = Background {
            child,
            what: what.to_owned(),
        };
        let (sender, lines_in) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                // Once nobody listens the lines are only drained.
                let _ = sender.send(line);
            }
        });
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            if ready(&lines) {
                return Ok((background, lines));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_in.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => bail!(
                    "{what} did not announce itself within {timeout:?}; it printed: {}",
                    lines.join(" / ")
                ),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = background.child.wait()?;
                    bail!("{what} exited early ({status}): {}", lines.join(" / "))
                }
            }
        }
    }

    /// The process id (to read its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its CPU times so far (final once it has exited: it is reaped only when dropped).
    pub fn cpu(&self) -> Result<CpuTimes> {
        process_cpu::read_process(self.pid())
            .map(|stat| stat.cpu)
            .with_context(|| format!("reading the CPU times of {}", self.what))
    }

    /// Its CPU times once it has exited by itself (a one-shot server after its client),
    /// or after `limit` if it is still running then.
    pub fn cpu_when_exited(&self, limit: Duration) -> Result<CpuTimes> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match process_cpu::read_process(self.pid()) {
                Ok(stat) if stat.exited() => return Ok(stat.cpu),
                Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        self.cpu()
    }

    /// Fails if the process already exited (e.g. could not bind).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.what);
        }
        Ok(())
    }
}

/// The CPU times of a server that may not be running (`None` then, or if unreadable).
pub fn background_cpu(server: Option<&Background>) -> Option<CpuTimes> {
    server.and_then(|s| s.cpu().ok())
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback (bound and released; good enough for a test harness).
pub fn free_loopback_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs `command` like [`run_output`] and returns its final CPU seconds too (`None` if
/// `/proc` could not be read); kills it after `limit`.
pub(super) fn run_output_with_cpu(
    command: &mut Command,
    what: &str,
    limit: Option<Duration>,
) -> Result<(Output, Option<f64>)> {
    let measured =
        process_cpu::output_with_cpu(command, limit).with_context(|| format!("running {what}"))?;
    let output = measured.output;
    if measured.timed_out {
        bail!(
            "{what} was stopped after {:?}: {}",
            limit.unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout)
                .chars()
                .take(2000)
                .collect::<String>()
        );
    }
    Ok((output, measured.cpu.map(CpuTimes::total_s)))
}

pub(super) fn run_output(command: &mut Command, what: &str) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout)
                .chars()
                .take(2000)
                .collect::<String>()
        );
    }
    Ok(output)
}

// ---------------------------------------------------------------------------------------
// iperf3

/// One iperf3 test as measured by the receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Iperf3Result {
    /// Average received payload rate over the whole test, bytes per second.
    pub received_bytes_per_sec: f64,
    /// Payload bytes received over the whole test (`end.sum_received.bytes`).
    pub received_bytes: Option<f64>,
    /// Per-interval received rate: (interval end in s, bytes per second). Intervals much
    /// shorter than the nominal one (iperf3's trailing fragment) are left out.
    pub intervals: Vec<(f64, f64)>,
    /// CPU seconds of the client (`iperf3 -c`) and of the one-shot server over the test,
    /// when measured.
    pub cpu: Option<ClientServerCpu>,
}

/// CPU seconds of a transfer's two processes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientServerCpu {
    /// The client's total.
    pub client_s: f64,
    /// The server's over the transfer.
    pub server_s: f64,
}

fn interval_points(intervals: &Value) -> Vec<(f64, f64, f64)> {
    intervals
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|interval| {
                    let sum = &interval["sum"];
                    Some((
                        sum["start"].as_f64()?,
                        sum["end"].as_f64()?,
                        sum["bits_per_second"].as_f64()? / 8.0,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses the client's `iperf3 -J --get-server-output` JSON (server started with `-J`):
/// per-interval rates from the receiving server when present, else the client's (sender)
/// intervals; the average from `end.sum_received`.
pub fn parse_iperf3_json(text: &str) -> Result<Iperf3Result> {
    let json: Value = serde_json::from_str(text).context("iperf3 output is not JSON")?;
    if let Some(error) = json["error"].as_str() {
        bail!("iperf3: {error}");
    }
    let received = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 JSON has no end.sum_received.bits_per_second")?
        / 8.0;
    let server_intervals = interval_points(&json["server_output_json"]["intervals"]);
    let raw = if server_intervals.is_empty() {
        interval_points(&json["intervals"])
    } else {
        server_intervals
    };
    let nominal = raw
        .iter()
        .map(|(start, end, _)| end - start)
        .fold(0.0, f64::max);
    let intervals = raw
        .into_iter()
        .filter(|(start, end, _)| end - start >= nominal / 2.0)
        .map(|(_, end, rate)| (end, rate))
        .collect();
    Ok(Iperf3Result {
        received_bytes_per_sec: received,
        received_bytes: json["end"]["sum_received"]["bytes"].as_f64(),
        intervals,
        cpu: None,
    })
}

/// Where an iperf3 test runs.
#[derive(Debug, Clone)]
pub struct Iperf3Setup<'a> {
    /// Namespace of the client (sender), `None` for this one.
    pub client_namespace: Option<&'a str>,
    /// Namespace of the server (receiver).
    pub server_namespace: Option<&'a str>,
    /// Address the server binds and the client connects to.
    pub server_address: &'a str,
    /// Port.
    pub port: u16,
    /// TCP congestion control of the client's streams (`iperf3 -C`); `None`: the default.
    pub congestion: Option<&'a str>,
}

/// Runs one `iperf3 -c` test with `streams` parallel streams for `seconds`, reporting every
/// `interval_s`; starts and stops a one-shot server for it.
pub fn run_iperf3(
    setup: &Iperf3Setup<'_>,
    streams: usize,
    seconds: f64,
    interval_s: f64,
) -> Result<Iperf3Result> {
    let iperf3 = require_program("iperf3")?;
    let iperf3 = iperf3.to_string_lossy();
    let mut server_command = command_in(setup.server_namespace, &iperf3);
    server_command.args([
        "-s",
        "-1",
        "-J",
        "-i",
        &interval_s.to_string(),
        "-B",
        setup.server_address,
        "-p",
        &setup.port.to_string(),
    ]);
    let mut server = Background::spawn(server_command, "iperf3 server")?;
    // iperf3 has no readiness signal short of parsing its output; half a second is plenty
    // on an idle port and the client retries nothing, so a too-early start fails loudly.
    std::thread::sleep(Duration::from_millis(500));
    server.check_running()?;
    let mut client = command_in(setup.client_namespace, &iperf3);
    client.args([
        "-c",
        setup.server_address,
        "-p",
        &setup.port.to_string(),
        "-P",
        &streams.to_string(),
        "-t",
        &seconds.to_string(),
        "-i",
        &interval_s.to_string(),
        "-J",
        "--get-server-output",
    ]);
    if let Some(name) = setup.congestion {
        client.args(["-C", name]);
    }
    // A test that has not ended well after its duration is stuck (a lost connection).
    let limit = Duration::from_secs_f64(seconds * 2.0 + 30.0);
    let measured =
        process_cpu::output_with_cpu(&mut client, Some(limit)).context("running iperf3 -c")?;
    let output = measured.output;
    let text = String::from_utf8_lossy(&output.stdout);
    let parsed = parse_iperf3_json(&text);
    if !output.status.success() && parsed.is_err() {
        bail!(
            "iperf3 -c failed ({}{}): {}",
            output.status,
            if measured.timed_out {
                ", stopped at its time limit"
            } else {
                ""
            },
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // The one-shot server exits once it has sent its results to the client.
    let server_cpu = server.cpu_when_exited(Duration::from_secs(2)).ok();
    drop(server);
    let mut result = parsed?;
    if let (Some(client), Some(server)) = (measured.cpu, server_cpu) {
        result.cpu = Some(ClientServerCpu {
            client_s: client.total_s(),
            server_s: server.total_s(),
        });
    }
    Ok(result)
}

/// Mean rate of the intervals that end after `from_s` (the steady state once ramp-up is
/// over); `None` without such intervals.
pub fn steady_state_rate(intervals: &[(f64, f64)], from_s: f64) -> Option<f64> {
    let steady: Vec<f64> = intervals
        .iter()
        .filter(|(end, _)| *end > from_s + 1e-9)
        .map(|(_, rate)| *rate)
        .collect();
    (!steady.is_empty()).then(|| steady.iter().sum::<f64>() / steady.len() as f64)
}

/// End of the first interval whose rate reached `target`: the time to reach it, at the
/// interval's resolution; `None` if no interval did.
pub fn time_to_reach(intervals: &[(f64, f64)], target: f64) -> Option<f64> {
    intervals
        .iter()
        .find(|(_, rate)| *rate >= target)
        .map(|(end, _)| *end)
}

// ---------------------------------------------------------------------------------------
// sockperf

/// A sockperf ping-pong run.
#[derive(Debug, Clone, PartialEq)]
pub struct SockperfResult {
    /// Round trips per second over the valid (post-warm-up) duration.
    pub round_trips_per_sec: f64,
    /// Round-trip latency by percentile, nanoseconds (sockperf's half round trips × 2).
    pub round_trip: LatencyCurve,
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte (a letter).
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(|c: char| c == ';' || c.is_whitespace())
        .find(|s| !s.is_empty())
}

/// Parses `sockperf ping-pong` output. sockperf reports latency as half the round trip
/// (its "latency" is RTT/2); the curve returned is the full round trip (× 2).
pub fn parse_sockperf(text: &str) -> Result<SockperfResult> {
    let text = strip_ansi(text);
    let mut round_trips_per_sec = None;
    let mut points = Vec::new();
    for line in text.lines() {
        if line.contains("[Valid Duration]") {
            let runtime: f64 = field_after(line, "RunTime=")
                .and_then(|s| s.parse().ok())
                .context("sockperf: no RunTime in [Valid Duration]")?;
            let received: f64 = field_after(line, "ReceivedMessages=")
                .and_then(|s| s.parse().ok())
                .context("sockperf: no ReceivedMessages in [Valid Duration]")?;
            if runtime > 0.0 {
                round_trips_per_sec = Some(received / runtime);
            }
        } else if let Some((left, value)) =
            line.split_once("--->").and_then(|(_, r)| r.split_once('='))
        {
            let half_rtt_us: f64 = value
                .trim()
                .parse()
                .with_context(|| format!("sockperf: bad value in {line:?}"))?;
            let left = left.trim();
            let percentile = if left.contains("<MAX>") {
                1.0
            } else if left.contains("<MIN>") {
                0.0
            } else if let Some(p) = left.strip_prefix("percentile") {
                p.trim()
                    .parse::<f64>()
                    .with_context(|| format!("sockperf: bad percentile in {line:?}"))?
                    / 100.0
            } else {
                continue;
            };
            points.push((percentile, half_rtt_us * 2.0 * 1000.0));
        }
    }
    if points.is_empty() {
        bail!("sockperf output has no percentile lines");
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    // `percentile 99.999` and `<MAX>` often coincide; keep one point per percentile.
    points.dedup_by(|later, earlier| later.0 == earlier.0);
    Ok(SockperfResult {
        round_trips_per_sec: round_trips_per_sec
            .context("sockperf output has no [Valid Duration] line")?,
        round_trip: LatencyCurve { points },
    })
}

/// `sockperf ping-pong --tcp -m 64` against a sockperf server on loopback.
/// `polling`: both ends busy-poll (`--timeout 0`: epoll without sleeping) instead of
/// blocking in `epoll_wait`.
pub fn run_sockperf_ping_pong(
    seconds: f64,
    message_bytes: usize,
    polling: bool,
) -> Result<SockperfResult> {
    let sockperf = require_program("sockperf")?;
    let port = free_loopback_port()?.to_string();
    let poll_args: &[&str] = if polling { &["--timeout", "0"] } else { &[] };
    let mut server_command = Command::new(&sockperf);
    server_command.args(["server", "--tcp", "-i", "127.0.0.1", "-p", &port]);
    server_command.args(poll_args);
    let mut server = Background::spawn(server_command, "sockperf server")?;
    std::thread::sleep(Duration::from_millis(500));
    server.check_running()?;
    let seconds = (seconds.round() as u64).max(1).to_string();
    let output = run_output(
        Command::new(&sockperf)
            .args([
                "ping-pong",
                "--tcp",
                "-i",
                "127.0.0.1",
                "-p",
                &port,
                "-m",
                &message_bytes.to_string(),
                "-t",
                &seconds,
            ])
            .args(poll_args),
        "sockperf ping-pong",
    )?;
    drop(server);
    // sockperf prints its report on stdout or stderr depending on version.
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    parse_sockperf(&text)
}

// ---------------------------------------------------------------------------------------
// Plain-socket ceiling

/// What the plain-socket loop measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainSocketResult {
    /// Bytes received per second over the whole run.
    pub bytes_per_sec: f64,
    /// Per-interval rate: (interval end in s, bytes per second).
    pub intervals: Vec<(f64, f64)>,
}

const PLAIN_WRITE_BYTES: usize = 1 << 20;

/// The plain-socket ceiling: one TCP connection over loopback, a sender thread writing
/// 1 MiB buffers and a receiver thread reading 1 MiB buffers, for `duration`; this thread
/// samples the receiver's byte count every `interval`. Kernel-bound: it is what blocking
/// sockets with large writes reach on this machine, the bar an engine should meet.
pub fn run_plain_socket(duration: Duration, interval: Duration) -> Result<PlainSocketResult> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let received = Arc::clone(&received);
        std::thread::spawn(move || -> std::io::Result<()> {
            let (mut stream, _) = listener.accept()?;
            let mut buffer = vec![0u8; PLAIN_WRITE_BYTES];
            loop {
                let n = stream.read(&mut buffer)?;
                if n == 0 {
                    return Ok(());
                }
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    let sender = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut stream = TcpStream::connect(address)?;
            let body: Vec<u8> = (0..PLAIN_WRITE_BYTES).map(|i| (i % 251) as u8).collect();
            while !stop.load(Ordering::Relaxed) {
                stream.write_all(&body)?;
            }
            Ok(())
        })
    };
    let start = Instant::now();
    let mut intervals = Vec::new();
    let (mut last_bytes, mut last_time) = (0u64, start);
    let mut next = start + interval;
    let end = start + duration;
    while next <= end + Duration::from_millis(1) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        let bytes = received.load(Ordering::Relaxed);
        intervals.push((
            (now - start).as_secs_f64(),
            (bytes - last_bytes) as f64 / (now - last_time).as_secs_f64(),
        ));
        (last_bytes, last_time) = (bytes, now);
        next += interval;
    }
    let total = received.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("plain-socket sender panicked"))??;
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("plain-socket receiver panicked"))??;
    Ok(PlainSocketResult {
        bytes_per_sec: total as f64 / elapsed.as_secs_f64(),
        intervals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPERF3: &str = r#"{
      "start": {},
      "intervals": [
        {"streams": [], "sum": {"start": 0, "end": 0.5, "bits_per_second": 8e9, "sender": true}},
        {"streams": [], "sum": {"start": 0.5, "end": 1.0, "bits_per_second": 16e9, "sender": true}}
      ],
      "end": {"sum_sent": {"bits_per_second": 12.5e9}, "sum_received": {"bytes": 1.5e9, "bits_per_second": 12e9}},
      "server_output_json": {
        "intervals": [
          {"sum": {"start": 0, "end": 0.5, "bits_per_second": 4e9, "sender": false}},
          {"sum": {"start": 0.5, "end": 1.0, "bits_per_second": 12e9, "sender": false}},
          {"sum": {"start": 1.0, "end": 1.004, "bits_per_second": 80e9, "sender": false}}
        ]
      }
    }"#;

    #[test]
    fn iperf3_prefers_receiver_intervals_and_drops_the_trailing_fragment() {
        let result = parse_iperf3_json(IPERF3).unwrap();
        assert_eq!(result.received_bytes_per_sec, 1.5e9);
        assert_eq!(result.received_bytes, Some(1.5e9));
        assert_eq!(result.intervals, vec![(0.5, 0.5e9), (1.0, 1.5e9)]);
    }

    #[test]
    fn iperf3_falls_back_to_sender_intervals_and_reports_errors() {
        let without_server: Value = {
            let mut v: Value = serde_json::from_str(IPERF3).unwrap();
            v.as_object_mut().unwrap().remove("server_output_json");
            v
        };
        let result = parse_iperf3_json(&without_server.to_string()).unwrap();
        assert_eq!(result.intervals, vec![(0.5, 1e9), (1.0, 2e9)]);
        let error = parse_iperf3_json(r#"{"error": "unable to connect to server"}"#).unwrap_err();
        assert!(error.to_string().contains("unable to connect"));
    }

    #[test]
    fn steady_state_and_time_to_target() {
        let intervals = [(1.0, 2.0), (2.0, 8.0), (3.0, 9.5), (4.0, 9.0), (5.0, 10.0)];
        assert_eq!(steady_state_rate(&intervals, 2.0), Some(9.5));
        assert_eq!(steady_state_rate(&intervals, 5.0), None);
        assert_eq!(time_to_reach(&intervals, 9.0), Some(3.0));
        assert_eq!(time_to_reach(&intervals, 11.0), None);
    }

    const SOCKPERF: &str = "sockperf: \u{1b}[2;35m== version #3.7-no.git == \u{1b}[0m
sockperf: [Total Run] RunTime=2.008 sec; Warm up time=400 msec; SentMessages=34484; ReceivedMessages=34483
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=1.540 sec; SentMessages=27598; ReceivedMessages=27566
sockperf: \u{1b}[2;35m====> avg-latency=27.874 (std-dev=323.664)\u{1b}[0m
sockperf: Summary: Latency is 27.874 usec
sockperf: \u{1b}[2;35mTotal 27598 observations\u{1b}[0m; each percentile contains 275.98 observations
sockperf: ---> <MAX> observation = 19139.779
sockperf: ---> percentile 99.999 = 19139.779
sockperf: ---> percentile 99.990 = 9925.676
sockperf: ---> percentile 99.900 = 5239.404
sockperf: ---> percentile 99.000 =   25.169
sockperf: ---> percentile 90.000 =    7.908
sockperf: ---> percentile 75.000 =    7.443
sockperf: ---> percentile 50.000 =    3.176
sockperf: ---> percentile 25.000 =    2.966
sockperf: ---> <MIN> observation =    2.484
";

    #[test]
    fn sockperf_half_round_trips_become_round_trips() {
        let result = parse_sockperf(SOCKPERF).unwrap();
        assert!((result.round_trips_per_sec - 27566.0 / 1.540).abs() < 1e-6);
        let curve = &result.round_trip;
        assert_eq!(curve.points.first(), Some(&(0.0, 4968.0)));
        assert_eq!(curve.at(0.5), Some(6352.0));
        assert!((curve.at(0.999).unwrap() - 10_478_808.0).abs() < 1e-6);
        assert_eq!(curve.points.last(), Some(&(1.0, 38_279_558.0)));
        assert_eq!(curve.points.len(), 10);
        assert!(curve.points.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn sockperf_without_percentiles_is_an_error() {
        assert!(parse_sockperf("sockperf: connection refused").is_err());
    }
}

// ---------------------------------------------------------------------------------------
// File-write ceilings

/// How [`run_file_write_ceiling`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCeiling {
    /// Through the page cache, one thread, 8 MiB writes (what a buffered receiver pays).
    Buffered,
    /// `O_DIRECT`, [`DIRECT_WRITERS`] threads with 8 MiB writes each into a file
    /// allocated first (the device's rate with a few requests in flight, as
    /// `fio --direct=1 --iodepth=4` measures it, laying the file out before it writes).
    Direct,
}

/// Writers of the direct ceiling (requests in flight).
pub const DIRECT_WRITERS: usize = 4;
const CEILING_WRITE_BYTES: usize = 8 << 20;

/// Writes `bytes` of a fixed pattern into a new file `path` and returns bytes per second
/// (time until the last write returned; not synced, like the transfers it bounds). The
/// file is removed afterwards.
pub fn run_file_write_ceiling(path: &Path, bytes: u64, mode: WriteCeiling) -> Result<f64> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(true);
    if mode == WriteCeiling::Direct {
        options.custom_flags(libc::O_DIRECT);
    }
    let file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let writers = match mode {
        WriteCeiling::Buffered => 1,
        WriteCeiling::Direct => DIRECT_WRITERS,
    };
    let blocks = bytes.div_ceil(CEILING_WRITE_BYTES as u64);
    if mode == WriteCeiling::Direct {
        // Without it the writers take turns: on ext4 a direct write that allocates holds
        // the file's lock alone. A target writing a file whole allocates it first too.
        crate::sys::preallocate(&file, blocks * CEILING_WRITE_BYTES as u64)
            .with_context(|| format!("allocating {}", path.display()))?;
    }
    let next = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                scope.spawn(|| -> std::io::Result<()> {
                    // Page-aligned for O_DIRECT: a slice of a larger allocation.
                    let mut storage = vec![0x5au8; CEILING_WRITE_BYTES + 4096];
                    let start = storage.as_ptr().align_offset(4096);
                    let buffer = &mut storage[start..start + CEILING_WRITE_BYTES];
                    loop {
                        let block = next.fetch_add(1, Ordering::Relaxed);
                        if block >= blocks {
                            return Ok(());
                        }
                        buffer[..8].copy_from_slice(&block.to_le_bytes());
                        file.write_all_at(buffer, block * CEILING_WRITE_BYTES as u64)?;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("writer panicked"))?
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    Ok((blocks * CEILING_WRITE_BYTES as u64) as f64 / elapsed)
}
