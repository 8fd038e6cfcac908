//! The UDP movers of the long-link scenarios: hawser's DTP push (`push --transport dtp`
//! to a `serve --dtp`), uftp (Debian's `uftp` sender and `uftpd` receiver: a UDP file
//! mover with its own rate control, TFMCC, or a fixed rate).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::hawser_tools::{HawserPushResult, parse_hawser_push_json};
use super::tools::{self, Background, command_in, run_output_with_cpu};

/// The UDP port of hawser's DTP data socket in the scenarios.
pub(super) const DTP_PORT: u16 = 8417;
/// DTP's datagrams on the emulated link (MTU 65000), as large as TCP's 64 KB packets
/// there: linkem's queue holds packets, not bytes, so smaller datagrams would get a
/// fraction of the queue TCP gets.
pub(super) const DTP_MTU: &str = "64000";
/// uftp's data block on that link (its largest).
const UFTP_BLOCK: &str = "8800";
/// uftp's and uftpd's UDP buffers (their largest).
const UFTP_BUFFER: &str = "104857600";

/// `hawser serve --allow-anonymous --listen LISTEN --dtp DTP --root ROOT` in `namespace`.
pub(super) fn start_serve_with_dtp(
    binary: &Path,
    namespace: Option<&str>,
    listen: &str,
    dtp: &str,
    root: &Path,
) -> Result<Background> {
    let mut command = command_in(namespace, &binary.to_string_lossy());
    command
        .args([
            "serve",
            "--allow-anonymous",
            "--listen",
            listen,
            "--dtp",
            dtp,
            "--root",
        ])
        .arg(root);
    let mut server = Background::spawn(command, "hawser serve --dtp")?;
    std::thread::sleep(Duration::from_millis(500));
    server.check_running()?;
    Ok(server)
}

/// `hawser push --transport dtp --mtu 8972 --quiet --json REPORT SOURCE DESTINATION`.
pub(super) fn run_dtp_push(
    binary: &Path,
    namespace: Option<&str>,
    source: &Path,
    destination: &str,
    report: &Path,
) -> Result<HawserPushResult> {
    let mut command = command_in(namespace, &binary.to_string_lossy());
    command
        .args([
            "push",
            "--transport",
            "dtp",
            "--mtu",
            DTP_MTU,
            "--quiet",
            "--json",
        ])
        .arg(report)
        .arg(source)
        .arg(destination);
    let (_, cpu) = run_output_with_cpu(&mut command, "hawser push --transport dtp", None)?;
    let text =
        std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    let mut result = parse_hawser_push_json(&text)?;
    result.client_cpu_s = cpu;
    Ok(result)
}

/// How uftp paces.
#[derive(Debug, Clone, Copy)]
pub(super) enum UftpPace {
    /// `-C tfmcc`: its congestion control (TCP-friendly, loss-based).
    Tfmcc,
    /// `-C none -R KBPS`: open loop at a fixed rate.
    Fixed { kbps: u64 },
}

impl UftpPace {
    fn args(self) -> Vec<String> {
        match self {
            UftpPace::Tfmcc => vec!["-C".into(), "tfmcc".into()],
            UftpPace::Fixed { kbps } => {
                vec!["-C".into(), "none".into(), "-R".into(), kbps.to_string()]
            }
        }
    }
}

/// `uftpd -d -q -D DIR` in `namespace` (its receiver; unicast sessions to its address).
pub(super) fn start_uftpd(namespace: Option<&str>, dir: &Path) -> Result<Background> {
    let uftpd = tools::require_program("uftpd")?;
    let mut command = command_in(namespace, &uftpd.to_string_lossy());
    command.args(["-d", "-q", "-B", UFTP_BUFFER, "-D"]).arg(dir);
    let mut server = Background::spawn(command, "uftpd")?;
    std::thread::sleep(Duration::from_millis(300));
    server.check_running()?;
    Ok(server)
}

/// What a uftp run moved.
#[derive(Debug, Clone, Copy)]
pub(super) struct UftpResult {
    /// Bytes of the file at the receiver when the run ended.
    pub bytes: u64,
    /// Seconds from the start to the end (or to the time limit).
    pub seconds: f64,
    /// Whether it completed within the limit.
    pub completed: bool,
}

/// `uftp -M ADDRESS -Y none -b 8800 -B 100M PACE FILE` in `namespace`, at most `limit`:
/// a run still going at the limit is killed and measured by what reached the receiver.
pub(super) fn run_uftp(
    namespace: Option<&str>,
    address: &str,
    file: &Path,
    pace: UftpPace,
    received: &Path,
    limit: Duration,
) -> Result<UftpResult> {
    let uftp = tools::require_program("uftp")?;
    let mut command = command_in(namespace, &uftp.to_string_lossy());
    command
        .args([
            "-M",
            address,
            "-Y",
            "none",
            "-b",
            UFTP_BLOCK,
            "-B",
            UFTP_BUFFER,
        ])
        .args(pace.args())
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = command.spawn().context("starting uftp")?;
    let completed = loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("uftp exited with {status}");
            }
            break true;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(received).map(|m| m.len()).unwrap_or(0);
    Ok(UftpResult {
        bytes,
        seconds,
        completed,
    })
}

/// Kills every uftp left in `namespace`'s process tree (a run stopped at its limit).
pub(super) fn quiet_uftp() {
    let _ = Command::new("pkill").args(["-x", "uftp"]).status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uftp_paces_with_tfmcc_or_a_fixed_rate() {
        assert_eq!(UftpPace::Tfmcc.args(), ["-C", "tfmcc"]);
        assert_eq!(
            UftpPace::Fixed { kbps: 950_000 }.args(),
            ["-C", "none", "-R", "950000"]
        );
    }
}
