//! The measured commands of the `messaging` scenario: `messaging-peer` (the baselines,
//! built from `perf/peers/messaging/`, a crate outside hawser's workspace) and `hawser
//! bench --mode dmp`, each printing one JSON line of the same shape.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::super::tools::find_program;

/// The peer binary's name.
pub const PEER_BINARY: &str = "messaging-peer";
/// Overrides the peer binary (no build then).
pub const PEER_ENV: &str = "HAWSER_MESSAGING_PEER";

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Messages the consumer received in the measured window.
    pub messages: f64,
    /// Those per second.
    pub messages_per_sec: f64,
    /// End-to-end latency, ns: p50, p99, p99.9, max.
    pub latency_ns: [f64; 4],
}

/// Parses the JSON line of `messaging-peer` or `hawser bench --mode dmp --json` (the last
/// line of `stdout` that is a JSON object): `messages`, `messages_per_sec` and
/// `latency_us.{p50,p99,p999,max}` in microseconds.
pub fn parse_measurement(stdout: &str) -> Result<Measurement> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .context("no JSON line in the output")?;
    let json: Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
    let number = |v: &Value, name: &str| {
        v.as_f64()
            .with_context(|| format!("the JSON line has no number {name}: {line}"))
    };
    let latency = &json["latency_us"];
    let micros = |name: &str| -> Result<f64> {
        Ok(number(&latency[name], &format!("latency_us.{name}"))? * 1e3)
    };
    Ok(Measurement {
        messages: number(&json["messages"], "messages")?,
        messages_per_sec: number(&json["messages_per_sec"], "messages_per_sec")?,
        latency_ns: [
            micros("p50")?,
            micros("p99")?,
            micros("p999")?,
            micros("max")?,
        ],
    })
}

/// The last `lines` lines of `text`, joined.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" / ")
}

fn drain(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `command` (stdin closed, output captured), killing it after `timeout`; parses its
/// JSON line. Fails with the end of its stderr when it exits non-zero.
pub fn run_measurement(mut command: Command, what: &str, timeout: Duration) -> Result<Measurement> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let stdout = drain(child.stdout.take().context("no stdout pipe")?);
    let stderr = drain(child.stderr.take().context("no stderr pipe")?);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        None => bail!(
            "{what} did not finish within {timeout:?} (killed); stderr: {}",
            tail(&stderr, 3)
        ),
        Some(status) if !status.success() => {
            let output = if stderr.trim().is_empty() {
                &stdout
            } else {
                &stderr
            };
            bail!("{what} failed ({status}): {}", tail(output, 3))
        }
        Some(_) => parse_measurement(&stdout)
            .with_context(|| format!("{what}: stderr: {}", tail(&stderr, 2))),
    }
}

/// `perf/peers/messaging/Cargo.toml`: next to this crate's sources, else under the
/// current directory (the repository root, where `scripts/perf.sh` runs).
pub fn peer_manifest() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/messaging/Cargo.toml");
    if here.is_file() {
        here
    } else {
        PathBuf::from("perf/peers/messaging/Cargo.toml")
    }
}

/// The cargo target directory of the peer crate (`cargo metadata`: honours
/// `CARGO_TARGET_DIR` and cargo configuration).
fn target_directory(cargo: &Path, manifest: &Path) -> Result<PathBuf> {
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    let json: Value = serde_json::from_slice(&output.stdout).context("cargo metadata output")?;
    json["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// The `messaging-peer` binary: `$HAWSER_MESSAGING_PEER`, else built (release) from
/// `perf/peers/messaging/` with cargo — a no-op when it is up to date.
pub fn build_peer() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(PEER_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{PEER_ENV}={} is not a file", path.display());
        }
        return Ok(path);
    }
    let manifest = peer_manifest();
    if !manifest.is_file() {
        bail!(
            "{} not found: run from the repository root or set {PEER_ENV}",
            manifest.display()
        );
    }
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .or_else(|| find_program("cargo"))
        .context("cargo not found: it builds messaging-peer (or set HAWSER_MESSAGING_PEER)")?;
    eprintln!(
        "  building {PEER_BINARY} (cargo build --release --manifest-path {})",
        manifest.display()
    );
    let status = Command::new(&cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!(
            "building {PEER_BINARY} failed ({status}): it needs libzmq3-dev and pkg-config, \
             run scripts/setup.sh"
        );
    }
    let binary = target_directory(&cargo, &manifest)?
        .join("release")
        .join(PEER_BINARY);
    if !binary.is_file() {
        bail!(
            "cargo built {PEER_BINARY} but {} is missing",
            binary.display()
        );
    }
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_json_line() {
        let text = "warming up\n{\"system\":\"zmq\",\"size\":64,\"publishers\":1,\"rate\":null,\
                    \"seconds\":5.0,\"messages\":1000,\"messages_per_sec\":200.0,\"latency_us\":\
                    {\"p50\":1.5,\"p99\":20.0,\"p999\":35.25,\"max\":100.0}}\n";
        let m = parse_measurement(text).unwrap();
        assert_eq!(m.messages, 1000.0);
        assert_eq!(m.messages_per_sec, 200.0);
        assert_eq!(m.latency_ns, [1500.0, 20_000.0, 35_250.0, 100_000.0]);
        assert!(parse_measurement("no json").is_err());
        let no_latency = "{\"messages\":1,\"messages_per_sec\":1.0,\"latency_us\":null}";
        let error = format!("{:#}", parse_measurement(no_latency).unwrap_err());
        assert!(error.contains("latency_us.p50"), "{error}");
    }

    #[test]
    fn runs_and_times_out() {
        let mut ok = Command::new("sh");
        ok.args([
            "-c",
            "echo '{\"messages\":4,\"messages_per_sec\":2,\"latency_us\":{\"p50\":1,\"p99\":2,\"p999\":3,\"max\":4}}'",
        ]);
        let m = run_measurement(ok, "sh", Duration::from_secs(10)).unwrap();
        assert_eq!(m.messages_per_sec, 2.0);
        let mut failing = Command::new("sh");
        failing.args(["-c", "echo 'unknown flag --publishers' >&2; exit 2"]);
        let error = format!(
            "{:#}",
            run_measurement(failing, "sh", Duration::from_secs(10)).unwrap_err()
        );
        assert!(error.contains("unknown flag --publishers"), "{error}");
        let mut slow = Command::new("sleep");
        slow.arg("10");
        let started = Instant::now();
        let error = run_measurement(slow, "sleep", Duration::from_millis(200)).unwrap_err();
        assert!(format!("{error}").contains("did not finish"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn tails_skip_blank_lines() {
        assert_eq!(tail("a\nb\n\nc\n", 2), "b / c");
        assert_eq!(tail("", 2), "");
    }
}
