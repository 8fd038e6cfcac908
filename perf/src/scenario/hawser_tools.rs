//! Drivers of hawser itself in the scenarios: `hawser bench` runs and their JSON,
//! `hawser serve` and `hawser bench --serve` started in the background once they say
//! they listen (`hawser serve` with TLS too), `hawser push` runs with their reports, and
//! which flags a build takes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use super::tools::{
    Announces, Background, command_in, find_program, run_output, run_output_with_cpu,
};

// ---------------------------------------------------------------------------------------
// hawser bench

/// The figures of `hawser bench --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct HawserBenchResult {
    /// Payload bytes (requests + responses) per second.
    pub throughput_bytes_per_sec: f64,
    /// Exchanges per second.
    pub exchanges_per_sec: f64,
    /// Latency percentiles in ns: p50, p90, p99, p999, max.
    pub latency_ns: [f64; 5],
    /// Per-interval payload bytes per second: (interval end in s, bytes per second),
    /// from the first call; empty for `--mode raw`.
    pub intervals: Vec<(f64, f64)>,
}

/// Parses the object `hawser bench --json` prints.
pub fn parse_hawser_bench_json(text: &str) -> Result<HawserBenchResult> {
    let json: Value =
        serde_json::from_str(text.trim()).context("hawser bench output is not JSON")?;
    let number = |v: &Value, name: &str| {
        v.as_f64()
            .with_context(|| format!("hawser bench JSON has no number {name}"))
    };
    let latency = &json["latency_ns"];
    Ok(HawserBenchResult {
        throughput_bytes_per_sec: number(
            &json["throughput_bytes_per_sec"],
            "throughput_bytes_per_sec",
        )?,
        exchanges_per_sec: number(&json["exchanges_per_sec"], "exchanges_per_sec")?,
        latency_ns: [
            number(&latency["p50"], "latency_ns.p50")?,
            number(&latency["p90"], "latency_ns.p90")?,
            number(&latency["p99"], "latency_ns.p99")?,
            number(&latency["p999"], "latency_ns.p999")?,
            number(&latency["max"], "latency_ns.max")?,
        ],
        intervals: parse_intervals(&json["intervals"]),
    })
}

/// iperf3-style `intervals` (`start`, `end`, `bits_per_second`) as (end, bytes per
/// second), without a trailing fragment much shorter than the nominal interval (as with
/// iperf3, it says little about the rate).
fn parse_intervals(list: &Value) -> Vec<(f64, f64)> {
    let raw: Vec<(f64, f64, f64)> = list
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| {
                    Some((
                        i["start"].as_f64()?,
                        i["end"].as_f64()?,
                        i["bits_per_second"].as_f64()? / 8.0,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let nominal = raw.iter().map(|(s, e, _)| e - s).fold(0.0, f64::max);
    raw.into_iter()
        .filter(|(start, end, _)| end - start >= nominal / 2.0)
        .map(|(_, end, rate)| (end, rate))
        .collect()
}

/// The `hawser` binary: `$HAWSER_BIN`, else next to this executable (same cargo target
/// directory), else on `PATH`.
pub fn hawser_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HAWSER_BIN") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("hawser")))
        .filter(|p| p.is_file())
        .or_else(|| find_program("hawser"))
}

/// Whether `hawser SUBCOMMAND --help` works: `Err(reason)` when it does not.
pub fn hawser_subcommand(subcommand: &str) -> std::result::Result<PathBuf, String> {
    let binary = hawser_binary().ok_or_else(|| {
        "hawser binary not found (build with `cargo build --release -p hawser` or set HAWSER_BIN)".to_owned()
    })?;
    match Command::new(&binary)
        .args([subcommand, "--help"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) if output.status.success() => Ok(binary),
        _ => Err(format!("hawser {subcommand} not built")),
    }
}

/// Whether a `--help` text lists `flag` as a whole option (`--tls` is not listed by a
/// help that has only `--tls-pin`).
pub fn help_lists(help: &str, flag: &str) -> bool {
    let option_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        !before.is_some_and(option_char) && !after.is_some_and(option_char)
    })
}

/// Whether `hawser SUBCOMMAND --help` lists `flag` (a flag lands in the help with its
/// parser, so a build without it says so here rather than failing each run).
pub fn hawser_takes(binary: &Path, subcommand: &str, flag: &str) -> bool {
    Command::new(binary)
        .args([subcommand, "--help"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && help_lists(&String::from_utf8_lossy(&o.stdout), flag))
}

/// Runs `hawser bench ARGS --json` (plus `--histogram FILE` when given).
pub fn run_hawser_bench(
    binary: &Path,
    namespace: Option<&str>,
    args: &[&str],
    histogram: Option<&Path>,
) -> Result<HawserBenchResult> {
    let mut command = command_in(namespace, &binary.to_string_lossy());
    command.arg("bench").args(args).arg("--json");
    if let Some(path) = histogram {
        command.arg("--histogram").arg(path);
    }
    let output = run_output(&mut command, &format!("hawser bench {}", args.join(" ")))?;
    parse_hawser_bench_json(&String::from_utf8_lossy(&output.stdout))
}

// ---------------------------------------------------------------------------------------
// hawser push / serve

/// What `hawser push --json` reported.
#[derive(Debug, Clone, PartialEq)]
pub struct HawserPushResult {
    /// Data bytes sent per second over the whole job.
    pub bytes_per_sec: f64,
    /// Seconds the job took.
    pub seconds: f64,
    /// Per-interval acknowledged bytes per second: (interval end in s, bytes per second).
    pub intervals: Vec<(f64, f64)>,
    /// Bytes on the trunk / bytes of requests (1.0 without compression).
    pub compression_ratio: f64,
    /// What `--compress auto` chose: `Some(true)` compressing, `Some(false)` not, `None`
    /// another policy or no choice before the end (the job ended while it measured).
    pub auto_compressed: Option<bool>,
    /// CPU seconds the `hawser push` process used (not in the report: measured by the
    /// harness when it ran the push).
    pub client_cpu_s: Option<f64>,
}

/// Parses the iperf3-like report of `hawser push --json FILE`.
pub fn parse_hawser_push_json(text: &str) -> Result<HawserPushResult> {
    let json: Value = serde_json::from_str(text).context("hawser push report is not JSON")?;
    let end = &json["end"];
    let intervals = parse_intervals(&json["intervals"]);
    Ok(HawserPushResult {
        bytes_per_sec: end["bits_per_second"]
            .as_f64()
            .context("hawser push report has no end.bits_per_second")?
            / 8.0,
        seconds: end["seconds"]
            .as_f64()
            .context("hawser push report has no end.seconds")?,
        intervals,
        compression_ratio: end["compression_ratio"].as_f64().unwrap_or(1.0),
        // A job that ended while `auto` measured reports what it did then (decisions 0).
        auto_compressed: end["compress_auto"]["compress"]
            .as_bool()
            .filter(|_| end["compress_auto"]["decisions"].as_u64() != Some(0)),
        client_cpu_s: None,
    })
}

/// `hawser serve --listen ADDR --root DIR --allow-anonymous` in the background (the
/// clients of the scenarios are anonymous, and the address may not be a loopback one).
pub fn start_hawser_serve(
    binary: &Path,
    namespace: Option<&str>,
    listen: &str,
    root: &Path,
) -> Result<Background> {
    let mut command = command_in(namespace, &binary.to_string_lossy());
    command
        .args(["serve", "--allow-anonymous", "--listen", listen, "--root"])
        .arg(root);
    let mut server = Background::spawn(command, "hawser serve")?;
    std::thread::sleep(Duration::from_millis(500));
    server.check_running()?;
    Ok(server)
}

/// The certificate `hawser serve` presents (`--tls-cert`, `--tls-key`) and whether it
/// refuses clients without TLS (`--require-tls`).
#[derive(Debug, Clone, Copy)]
pub struct ServeTls<'a> {
    /// PEM certificate.
    pub cert: &'a Path,
    /// PEM private key.
    pub key: &'a Path,
    /// `--require-tls`.
    pub require: bool,
}

/// `hawser serve --allow-anonymous --listen LISTEN --root DIR --tls-cert C --tls-key K
/// [--require-tls]` in `namespace`, once it has printed its `listening on` line.
pub fn start_hawser_serve_tls(
    binary: &Path,
    namespace: Option<&str>,
    listen: &str,
    root: &Path,
    tls: ServeTls<'_>,
) -> Result<Background> {
    let mut command = command_in(namespace, &binary.to_string_lossy());
    command
        .args(["serve", "--allow-anonymous", "--listen", listen, "--root"])
        .arg(root)
        .arg("--tls-cert")
        .arg(tls.cert)
        .arg("--tls-key")
        .arg(tls.key);
    if tls.require {
        command.arg("--require-tls");
    }
    let (server, _) = Background::spawn_announced(
        command,
        "hawser serve --tls-cert",
        Announces::Stdout,
        |lines| lines.iter().any(|l| parse_listening(l).is_some()),
        ANNOUNCE_TIMEOUT,
    )?;
    Ok(server)
}

/// `hawser bench --serve LISTEN --allow-anonymous` (the bench exchanges, no files) in
/// `namespace`.
pub fn start_hawser_bench_server(
    binary: &Path,
    namespace: Option<&str>,
    listen: &str,
) -> Result<Background> {
    let mut command = command_in(namespace, &binary.to_string_lossy());
    command.args(["bench", "--serve", listen, "--allow-anonymous"]);
    let mut server = Background::spawn(command, "hawser bench --serve")?;
    std::thread::sleep(Duration::from_millis(500));
    server.check_running()?;
    Ok(server)
}

/// What `hawser bench --serve` prints on stderr once it serves.
const BENCH_SERVING: &str = "hawser bench: serving the bench exchanges on ";

/// The addresses of `hawser bench --serve`'s line "hawser bench: serving the bench
/// exchanges on A, B, C" (TCP as HOST:PORT, the others with their scheme); `None` for
/// any other line.
pub fn parse_bench_serving(line: &str) -> Option<Vec<String>> {
    let list = line.trim().strip_prefix(BENCH_SERVING)?;
    Some(
        list.split(", ")
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// The address of one of `hawser serve`'s `listening on ADDR` lines; `None` for any
/// other line.
pub fn parse_listening(line: &str) -> Option<String> {
    let address = line.trim().strip_prefix("listening on ")?.trim();
    (!address.is_empty()).then(|| address.to_owned())
}

/// How long a server may take to print that it is ready.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);

/// `hawser bench --serve A --serve B ... --allow-anonymous` in this namespace, once it has
/// said it serves; returns it and the addresses it printed (in the order given; a
/// `127.0.0.1:0` shows its port).
pub fn start_hawser_bench_server_on(
    binary: &Path,
    listen: &[String],
    extra: &[&str],
) -> Result<(Background, Vec<String>)> {
    let mut command = Command::new(binary);
    command.arg("bench");
    for address in listen {
        command.args(["--serve", address]);
    }
    command.arg("--allow-anonymous").args(extra);
    let (server, lines) = Background::spawn_announced(
        command,
        "hawser bench --serve",
        Announces::Stderr,
        |lines| lines.iter().any(|l| parse_bench_serving(l).is_some()),
        ANNOUNCE_TIMEOUT,
    )?;
    let addresses = lines
        .iter()
        .find_map(|l| parse_bench_serving(l))
        .unwrap_or_default();
    Ok((server, addresses))
}

/// `hawser serve --listen A --listen B ... --root DIR --allow-anonymous` in this
/// namespace, once it has printed a `listening on` line per address; returns it and
/// those addresses (in the order given; a `127.0.0.1:0` shows its port).
pub fn start_hawser_serve_on(
    binary: &Path,
    listen: &[String],
    root: &Path,
) -> Result<(Background, Vec<String>)> {
    let mut command = Command::new(binary);
    command.args(["serve", "--allow-anonymous"]);
    for address in listen {
        command.args(["--listen", address]);
    }
    command.arg("--root").arg(root);
    let wanted = listen.len();
    let (server, lines) = Background::spawn_announced(
        command,
        "hawser serve",
        Announces::Stdout,
        |lines| lines.iter().filter_map(|l| parse_listening(l)).count() >= wanted,
        ANNOUNCE_TIMEOUT,
    )?;
    Ok((
        server,
        lines.iter().filter_map(|l| parse_listening(l)).collect(),
    ))
}

/// How [`run_hawser_push`] runs: `--compress` policy, TCP congestion control, TLS.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions<'a> {
    /// `off`, `auto` or `lz4`.
    pub compress: &'a str,
    /// `--congestion NAME`, if any.
    pub congestion: Option<&'a str>,
    /// `--tls --tls-pin PIN` (the server certificate's SHA-256, hex), if any.
    pub tls_pin: Option<&'a str>,
}

impl Default for PushOptions<'_> {
    fn default() -> Self {
        PushOptions {
            compress: "off",
            congestion: None,
            tls_pin: None,
        }
    }
}

/// `hawser push --connections N [--congestion NAME] [--tls --tls-pin PIN] --compress C
/// --quiet --json FILE SOURCE DESTINATION`.
pub fn run_hawser_push(
    binary: &Path,
    namespace: Option<&str>,
    connections: usize,
    source: &Path,
    destination: &str,
    report: &Path,
    options: PushOptions<'_>,
) -> Result<HawserPushResult> {
    let mut command = command_in(namespace, &binary.to_string_lossy());
    command
        .args(["push", "--connections", &connections.to_string()])
        .args(
            options
                .congestion
                .map(|name| ["--congestion", name])
                .into_iter()
                .flatten(),
        )
        .args(
            options
                .tls_pin
                .map(|pin| ["--tls", "--tls-pin", pin])
                .into_iter()
                .flatten(),
        )
        .args(["--compress", options.compress, "--quiet", "--json"])
        .arg(report)
        .arg(source)
        .arg(destination);
    let (_, cpu) = run_output_with_cpu(&mut command, "hawser push", None)?;
    let text =
        std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    let mut result = parse_hawser_push_json(&text)?;
    result.client_cpu_s = cpu;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hawser_push_json() {
        let text = r#"{"start": {"connections": 8},
            "intervals": [{"start": 0.0, "end": 1.0, "seconds": 1.0, "bytes": 100, "bits_per_second": 800.0},
                          {"start": 1.0, "end": 2.0, "seconds": 1.0, "bytes": 300, "bits_per_second": 2400.0},
                          {"start": 2.0, "end": 2.1, "seconds": 0.1, "bytes": 1, "bits_per_second": 80.0}],
            "end": {"files": 1, "bytes": 400, "seconds": 2.0, "bits_per_second": 1600.0},
            "latency_ns": {"p50": 1}}"#;
        let result = parse_hawser_push_json(text).unwrap();
        assert_eq!(result.bytes_per_sec, 200.0);
        assert_eq!(result.seconds, 2.0);
        assert_eq!(result.intervals, vec![(1.0, 100.0), (2.0, 300.0)]);
        assert!(parse_hawser_push_json(r#"{"end": {}}"#).is_err());
        assert_eq!(result.auto_compressed, None);
        let auto = r#"{"intervals": [], "end": {"bytes": 400, "seconds": 2.0,
            "bits_per_second": 1600.0, "compression_ratio": 0.5,
            "compress_auto": {"compress": true, "decisions": 1}}}"#;
        let result = parse_hawser_push_json(auto).unwrap();
        assert_eq!(result.auto_compressed, Some(true));
        assert_eq!(result.compression_ratio, 0.5);
        let trial = auto.replace(r#""decisions": 1"#, r#""decisions": 0"#);
        assert_eq!(
            parse_hawser_push_json(&trial).unwrap().auto_compressed,
            None
        );
    }

    #[test]
    fn help_lists_whole_options_only() {
        let help = "Options:\n      --tls-pin <SHA256HEX>  Pin the certificate\n      \
                    --ca <FILE>  Trust this CA\n";
        assert!(help_lists(help, "--tls-pin"));
        assert!(help_lists(help, "--ca"));
        assert!(!help_lists(help, "--tls"));
        assert!(help_lists("  --tls\n", "--tls"));
        assert!(help_lists("  --tls  Use TLS", "--tls"));
        assert!(!help_lists("  --no-tls  Plain", "--tls"));
        assert!(!help_lists("", "--tls"));
    }

    #[test]
    fn bench_serving_line_lists_every_address() {
        let line = "hawser bench: serving the bench exchanges on 127.0.0.1:40123, \
                    unix:///tmp/x/b.sock, shm:///tmp/x/b.shm\n";
        assert_eq!(
            parse_bench_serving(line).unwrap(),
            vec![
                "127.0.0.1:40123",
                "unix:///tmp/x/b.sock",
                "shm:///tmp/x/b.shm"
            ]
        );
        assert_eq!(
            parse_bench_serving("hawser bench: serving the bench exchanges on [::1]:9").unwrap(),
            vec!["[::1]:9"]
        );
        assert_eq!(parse_bench_serving("hawser bench: address in use"), None);
    }

    #[test]
    fn listening_lines_give_the_address() {
        assert_eq!(
            parse_listening("listening on 127.0.0.1:35001\n").as_deref(),
            Some("127.0.0.1:35001")
        );
        assert_eq!(
            parse_listening("listening on unix:///tmp/s.sock").as_deref(),
            Some("unix:///tmp/s.sock")
        );
        assert_eq!(parse_listening("listening on "), None);
        assert_eq!(parse_listening("2026-12-05 INFO serving"), None);
    }

    #[test]
    fn a_server_is_ready_when_it_says_so_and_fails_when_it_exits_first() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo starting; echo 'listening on 127.0.0.1:7'; exec sleep 30",
        ]);
        let (server, lines) = Background::spawn_announced(
            command,
            "sh",
            Announces::Stdout,
            |lines| lines.iter().any(|l| parse_listening(l).is_some()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(lines, vec!["starting", "listening on 127.0.0.1:7"]);
        drop(server);
        let mut command = Command::new("sh");
        command.args(["-c", "echo 'cannot bind' >&2; exit 3"]);
        let error = Background::spawn_announced(
            command,
            "sh",
            Announces::Stderr,
            |_| false,
            Duration::from_secs(10),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("exited early") && error.contains("cannot bind"),
            "{error}"
        );
    }

    #[test]
    fn hawser_bench_json() {
        let text = r#"{"mode":"rpc","size":64,"pipeline":1,"connections":1,"shards":2,
            "digest":false,"compress":false,"duration_sec":5.0,"exchanges":100,"errors":0,
            "exchanges_per_sec":40000.0,"throughput_bytes_per_sec":5120000.0,
            "latency_ns":{"p50":25000,"p90":30000,"p99":60000,"p999":120000,"max":900000},
            "retries":0,"intervals":[{"start":0.0,"end":0.5,"bytes":50,"bits_per_second":800.0},
            {"start":0.5,"end":1.0,"bytes":100,"bits_per_second":1600.0},
            {"start":1.0,"end":1.1,"bytes":1,"bits_per_second":80.0}]}"#;
        let result = parse_hawser_bench_json(text).unwrap();
        assert_eq!(result.exchanges_per_sec, 40000.0);
        // The short trailing fragment is left out.
        assert_eq!(result.intervals, vec![(0.5, 100.0), (1.0, 200.0)]);
        assert_eq!(
            result.latency_ns,
            [25000.0, 30000.0, 60000.0, 120000.0, 900000.0]
        );
        assert!(parse_hawser_bench_json("{}").is_err());
    }
}
