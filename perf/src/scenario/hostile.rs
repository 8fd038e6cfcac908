//! `hostile`: `hawser serve` on loopback under the probes of [`crate::probe`], a fresh
//! server per round: its resident memory idle, while 64 connections hold 63 MiB of a
//! 64 MiB request each, during and after six rounds of 2,000 idle connections; the
//! nexus create rate over the first and the last 1,000 of 40,000 abandoned nexuses; and
//! how many SCRAM-SHA-256 attempts with a wrong password per second one source gets
//! answered (the user database holds one identity, from `hawser passwd`).
//!
//! The baseline of each memory figure is the same server's idle RSS in the same round.
//! `HAWSER_HOSTILE_NEXUSES` shrinks the churn for a quick try.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::hawser_tools;
use super::tools::{self, Background};
use super::{Context, settle};
use crate::probe::{self, Memory};
use crate::report::{Outcome, Subject};

/// Abandoned nexuses per round (`HAWSER_HOSTILE_NEXUSES`).
const NEXUSES: usize = 40_000;
const MIB: f64 = 1048576.0;

/// Runs the probes against a fresh `hawser serve` per round.
pub fn run(ctx: &Context, outcome: &mut Outcome) -> Result<()> {
    probe::raise_fd_limit();
    let binary = match hawser_tools::hawser_subcommand("serve")
        .and_then(|_| hawser_tools::hawser_subcommand("passwd"))
    {
        Ok(binary) => binary,
        Err(reason) => {
            outcome
                .unavailable
                .push((Subject::new("hawser", "serve"), reason));
            return Ok(());
        }
    };
    let user = user_entry(&binary, probe::GUESSED_IDENTITY)?;
    let nexuses = std::env::var("HAWSER_HOSTILE_NEXUSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NEXUSES);
    let serve = Subject::new(
        "hawser serve",
        "loopback, connection and nexus limits raised past the probes",
    );
    for round in 0..ctx.runs {
        eprintln!("hostile: round {}/{}", round + 1, ctx.runs);
        let root = ctx.scratch.join(format!("root-{round}"));
        std::fs::create_dir_all(&root)?;
        let port = tools::free_loopback_port()?;
        let config = ctx.scratch.join(format!("serve-{round}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\nroot = \"{}\"\n\
                 [limits]\nconnections_per_address = 5000\nhandshakes_in_progress = 5000\nnexuses = 50000\n\
                 {user}",
                root.display()
            ),
        )?;
        let mut command = Command::new(&binary);
        command.arg("serve").arg("--config").arg(&config);
        // A server with users refuses ANONYMOUS unless told: the memory probes use it.
        if server_takes("--allow-anonymous", &binary) {
            command.arg("--allow-anonymous");
        }
        let mut server = Background::spawn(command, "hawser serve")?;
        std::thread::sleep(Duration::from_millis(500));
        server.check_running()?;
        let target: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let pid = server.pid();
        let memory = || probe::memory_of(pid).ok();
        let idle = memory().context("reading the server's memory")?;
        outcome.record(&serve, "idle_rss", "MiB", idle.rss as f64 / MIB);

        let held = probe::held_frames(target, 64, 64 << 20, 63 << 20, memory)?;
        if let Some(m) = held.while_held {
            outcome.record(&serve, "held_frames_rss", "MiB", m.rss as f64 / MIB);
            outcome.record(&serve, "held_frames_peak_rss", "MiB", m.peak as f64 / MIB);
        }
        outcome.record(
            &serve,
            "held_frames_bytes_taken",
            "MiB",
            held.bytes_sent as f64 / MIB,
        );
        settle();

        let rounds = probe::idle_rounds(target, 2000, 6, memory)?;
        let top = |ms: &[Option<Memory>]| {
            ms.iter().flatten().map(|m| m.rss).max().unwrap_or(0) as f64 / MIB
        };
        outcome.record(&serve, "idle_conns_open_rss_max", "MiB", top(&rounds.open));
        // Freed memory goes back once a handler thread has been idle a few seconds.
        std::thread::sleep(Duration::from_secs(7));
        if let Some(after) = memory() {
            outcome.record(
                &serve,
                "idle_conns_after_rss",
                "MiB",
                after.rss as f64 / MIB,
            );
        }

        let churn = probe::nexus_churn(target, nexuses)?;
        outcome.record(
            &serve,
            "nexus_create_rate_first_1000",
            "per s",
            churn.first_rate,
        );
        outcome.record(
            &serve,
            "nexus_create_rate_last_1000",
            "per s",
            churn.last_rate,
        );
        outcome.record(
            &serve,
            "nexus_creates_refused",
            "count",
            churn.refused as f64,
        );
        if let Some(why) = churn.first_refusal {
            outcome
                .notes
                .push(format!("round {round}: first nexus refusal: {why}"));
        }
        if let Some(now) = memory() {
            outcome.record(&serve, "after_churn_rss", "MiB", now.rss as f64 / MIB);
        }
        // Abandoned nexuses that never ran anything expire after the handshake timeout
        // (10 s); an idle handler thread then gives their memory back.
        std::thread::sleep(Duration::from_secs(20));
        if let Some(after) = memory() {
            outcome.record(
                &serve,
                "after_churn_expired_rss",
                "MiB",
                after.rss as f64 / MIB,
            );
        }

        // Last in the round: the throttle holds the failures against the source, and
        // would delay the memory probes' anonymous handshakes from it as well.
        let guessing = probe::wrong_passwords(target, 16, Duration::from_secs(5))?;
        outcome.record(
            &serve,
            "wrong_passwords_answered",
            "per s",
            guessing.answered_per_sec,
        );
        outcome.record(
            &serve,
            "wrong_passwords_sent",
            "count",
            guessing.attempts as f64,
        );
        if round == 0
            && let Some(first) = guessing.first_answer
        {
            outcome
                .notes
                .push(format!("a wrong password is answered: {first}"));
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&root);
        settle();
    }
    outcome.notes.push(format!(
        "Per round a fresh `hawser serve` on loopback (a [users.{identity}] entry from `hawser passwd` \
         for the guessing probe, \
         anonymous allowed for the memory probes; `[limits]` connections_per_address and \
         handshakes_in_progress 5,000 and nexuses 50,000, so every probe connection and nexus is \
         taken rather than refused: the default limits, 64 per address, 256 handshakes and 4,096 \
         nexuses, would refuse most of them); probes: 64 connections each announcing a \
         64 MiB request and sending 63 MiB of it; 6 rounds of 2,000 idle TCP connections; {nexuses} nexuses \
         created and abandoned one after another; 16 parallel connections making SCRAM-SHA-256 attempts \
         as {identity} with a random client proof in place of the password's (the prober derives no keys, \
         so the rate is the server's throttle) for 5 s. Memory is the server's VmRSS/VmHWM from /proc.",
        identity = probe::GUESSED_IDENTITY,
    ));
    Ok(())
}

/// The `[users.IDENTITY]` table `hawser passwd IDENTITY` prints for a password the probes
/// never learn: they only guess wrong.
fn user_entry(binary: &std::path::Path, identity: &str) -> Result<String> {
    let output = Command::new(binary)
        .args(["passwd", identity])
        .env("HAWSER_PASSWORD", "correct horse battery staple")
        .stdin(std::process::Stdio::null())
        .output()
        .context("running hawser passwd")?;
    let entry = String::from_utf8(output.stdout).context("hawser passwd's output")?;
    if !output.status.success() || !entry.starts_with("[users.") {
        anyhow::bail!(
            "hawser passwd {identity} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(entry)
}

/// Whether `hawser serve --help` lists `flag`.
fn server_takes(flag: &str, binary: &std::path::Path) -> bool {
    Command::new(binary)
        .args(["serve", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
        .unwrap_or(false)
}
