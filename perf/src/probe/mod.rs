//! `hawser-perf probe`: what a hostile client does to a `hawser serve`, measured from the
//! outside (the server's memory through `/proc/PID/status`, rates at the client).
//!
//! - [`held_frames`]: connections that each start a large request and stop short of its
//!   end, holding the server's receive buffers.
//! - [`idle_rounds`]: rounds of many idle connections, opened and closed, with the
//!   server's RSS after each round (does the memory come back?).
//! - [`nexus_churn`]: nexuses created and abandoned one after another, with the create
//!   rate at the start and after tens of thousands.
//! - [`wrong_passwords`]: SCRAM-SHA-256 attempts with wrong proofs as fast as one source
//!   can make them, counting the attempts the server answers.
//!
//! Every probe talks to a server on loopback or in a namespace the caller created.

pub mod dsp_client;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use dsp_client::{Answer, RawConnection};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256StarStar;

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    /// `VmRSS`: resident now, bytes.
    pub rss: u64,
    /// `VmHWM`: the peak resident set, bytes.
    pub peak: u64,
}

/// Reads `pid`'s resident memory.
pub fn memory_of(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    Ok(Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
    })
}

/// Raises this process's open-file limit to its hard limit (idle rounds open thousands
/// of sockets).
pub fn raise_fd_limit() {
    crate::sys::raise_nofile_limit();
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeKind {
    /// Connections each holding most of a large request.
    HeldFrames,
    /// Rounds of idle connections opened and closed.
    IdleRounds,
    /// Nexuses created and abandoned.
    NexusChurn,
    /// SCRAM-SHA-256 attempts with wrong proofs from one source.
    WrongPasswords,
}

/// Options of `hawser-perf probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeOptions {
    /// Which probe.
    #[arg(value_enum)]
    pub kind: ProbeKind,
    /// The server (`hawser serve`) to probe.
    #[arg(long, default_value = "127.0.0.1:8415")]
    pub target: SocketAddr,
    /// The server's process id, to read its memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Connections (held-frames: 64; idle-rounds: 2000 per round; wrong-passwords: in
    /// parallel, 16).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Nexuses to create and abandon (nexus-churn).
    #[arg(long, default_value_t = 40_000)]
    pub nexuses: usize,
    /// Seconds the wrong-passwords probe runs.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
}

/// Runs one probe and prints what it measured.
pub fn run(options: &ProbeOptions) -> Result<()> {
    raise_fd_limit();
    let memory = || options.pid.map(memory_of).transpose();
    match options.kind {
        ProbeKind::HeldFrames => {
            let connections = options.connections.unwrap_or(64);
            let held = held_frames(options.target, connections, 64 << 20, 63 << 20, || {
                memory().ok().flatten()
            })?;
            println!("{held:#?}");
        }
        ProbeKind::IdleRounds => {
            let rounds = idle_rounds(
                options.target,
                options.connections.unwrap_or(2000),
                6,
                || memory().ok().flatten(),
            )?;
            println!("{rounds:#?}");
        }
        ProbeKind::NexusChurn => {
            let churn = nexus_churn(options.target, options.nexuses)?;
            println!("{churn:#?}");
        }
        ProbeKind::WrongPasswords => {
            let guessing = wrong_passwords(
                options.target,
                options.connections.unwrap_or(16),
                Duration::from_secs_f64(options.seconds),
            )?;
            println!("{guessing:#?}");
        }
    }
    Ok(())
}

/// What [`held_frames`] saw.
#[derive(Debug, Clone, Default)]
pub struct HeldFrames {
    /// Connections that got a nexus and started their request.
    pub connections: usize,
    /// Bytes of request bodies the server took (all connections).
    pub bytes_sent: u64,
    /// The server's memory while the frames were held (if its pid was given).
    pub while_held: Option<Memory>,
    /// Connections the server had closed by the end of the hold.
    pub closed_by_server: usize,
}

/// `connections` connections each get a nexus, announce a request of `frame_len` body
/// bytes and send `send_len` of them (as far as the server reads), then hold. The
/// server's memory is read with `memory` once every connection has sent what it could.
pub fn held_frames(
    target: SocketAddr,
    connections: usize,
    frame_len: usize,
    send_len: usize,
    memory: impl Fn() -> Option<Memory>,
) -> Result<HeldFrames> {
    let head = RawConnection::request_head(frame_len)?;
    let body = Arc::new(vec![0x5a_u8; send_len]);
    let sent = Arc::new(AtomicU64::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let run = format!("{:x}", u64::from(std::process::id()) ^ now_nanos());
    for i in 0..connections {
        let (head, body, sent, release) = (
            head.clone(),
            Arc::clone(&body),
            Arc::clone(&sent),
            Arc::clone(&release),
        );
        let identity = format!("held-{run}-{i}");
        threads.push(std::thread::spawn(move || -> Result<bool> {
            let mut conn = RawConnection::connect(target, Duration::from_secs(10))?;
            conn.anonymous_nexus(&identity, frame_len as u32 + 64)?;
            let stream = conn.stream();
            // The server may stop reading (back-pressure): send what it takes within
            // a few seconds, then hold.
            stream.set_write_timeout(Some(Duration::from_secs(3)))?;
            stream.write_all(&head)?;
            let mut offset = 0;
            while offset < body.len() {
                let end = (offset + (1 << 20)).min(body.len());
                match stream.write(&body[offset..end]) {
                    Ok(n) => {
                        offset += n;
                        sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
            }
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(50));
            }
            // Still open? A server that closed the connection makes this fail.
            let alive = stream.write(&[0u8]).is_ok() && stream.write(&[0u8]).is_ok();
            Ok(alive)
        }));
    }
    // Give the senders time to push what the server accepts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = sent.load(Ordering::Relaxed);
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    std::thread::sleep(Duration::from_secs(1));
    let while_held = memory();
    release.store(true, Ordering::Release);
    let mut outcome = HeldFrames {
        bytes_sent: sent.load(Ordering::Relaxed),
        while_held,
        ..HeldFrames::default()
    };
    for thread in threads {
        match thread.join() {
            Ok(Ok(alive)) => {
                outcome.connections += 1;
                if !alive {
                    outcome.closed_by_server += 1;
                }
            }
            Ok(Err(e)) => eprintln!("held-frames connection: {e:#}"),
            Err(_) => eprintln!("held-frames connection panicked"),
        }
    }
    Ok(outcome)
}

/// The server's memory after each round of [`idle_rounds`].
#[derive(Debug, Clone, Default)]
pub struct IdleRounds {
    /// Before the first round.
    pub before: Option<Memory>,
    /// While each round's connections were open.
    pub open: Vec<Option<Memory>>,
    /// After each round's connections closed.
    pub after: Vec<Option<Memory>>,
    /// Connections opened per round.
    pub connections: usize,
}

/// `rounds` times: opens `connections` TCP connections that say nothing, waits, reads the
/// server's memory, closes them, waits, reads it again.
pub fn idle_rounds(
    target: SocketAddr,
    connections: usize,
    rounds: usize,
    memory: impl Fn() -> Option<Memory>,
) -> Result<IdleRounds> {
    let mut outcome = IdleRounds {
        before: memory(),
        connections,
        ..IdleRounds::default()
    };
    for _ in 0..rounds {
        let mut open = Vec::with_capacity(connections);
        for _ in 0..connections {
            match TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
                Ok(stream) => open.push(stream),
                Err(e) => {
                    eprintln!("idle-rounds: connect failed after {}: {e}", open.len());
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        outcome.open.push(memory());
        drop(open);
        std::thread::sleep(Duration::from_secs(2));
        outcome.after.push(memory());
    }
    Ok(outcome)
}

/// Create rates of [`nexus_churn`].
#[derive(Debug, Clone, Default)]
pub struct NexusChurn {
    /// Creates per second over the first 1,000.
    pub first_rate: f64,
    /// Creates per second over the last 1,000.
    pub last_rate: f64,
    /// Nexuses the server created.
    pub created: usize,
    /// Creates the server refused, and the first refusal's text.
    pub refused: usize,
    /// The first refusal.
    pub first_refusal: Option<String>,
}

/// Creates `count` nexuses, one connection each, abandoning every one (the connection
/// closes without a destroy), and measures the create rate at the start and the end.
pub fn nexus_churn(target: SocketAddr, count: usize) -> Result<NexusChurn> {
    let window = 1000.min(count.max(1));
    let run = format!("{:x}", u64::from(std::process::id()) ^ now_nanos());
    let mut outcome = NexusChurn::default();
    let mut window_start = Instant::now();
    for i in 0..count {
        if i == count.saturating_sub(window) {
            window_start = Instant::now();
        }
        let mut conn = RawConnection::connect(target, Duration::from_secs(10))?;
        let identity = format!("churn-{run}-{i}");
        let answer = (|| -> Result<Answer> {
            for step in [
                conn.hello([3; 16])?,
                conn.auth("ANONYMOUS", identity.as_bytes())?,
            ] {
                if step != Answer::Ok {
                    return Ok(step);
                }
            }
            conn.create_nexus(&identity, 1 << 20)
        })()?;
        match answer {
            Answer::Ok => outcome.created += 1,
            Answer::Refused(why) => {
                outcome.refused += 1;
                outcome.first_refusal.get_or_insert(why);
            }
            Answer::Silent => {
                outcome.refused += 1;
                outcome.first_refusal.get_or_insert("no answer".into());
            }
        }
        if i + 1 == window {
            outcome.first_rate = window as f64 / window_start.elapsed().as_secs_f64();
        }
    }
    outcome.last_rate = window as f64 / window_start.elapsed().as_secs_f64();
    Ok(outcome)
}

/// The identity [`wrong_passwords`] claims: one the hostile scenario's server knows, so
/// its attempts fail on the proof.
pub const GUESSED_IDENTITY: &str = "alice";

/// What [`wrong_passwords`] counted.
#[derive(Debug, Clone, Default)]
pub struct WrongPasswords {
    /// Attempts sent (an Auth opening a SCRAM-SHA-256 exchange; its wrong proof follows
    /// when the server's first message comes back).
    pub attempts: u64,
    /// Attempts the server checked and answered (an AuthResult), per second.
    pub answered_per_sec: f64,
    /// Attempts left without an answer (connection closed or timed out).
    pub unanswered: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// The first answer's text.
    pub first_answer: Option<String>,
}

/// `parallel` connections at a time make SCRAM-SHA-256 attempts as [`GUESSED_IDENTITY`]
/// with wrong proofs, for `duration`; counts the answers. The proofs are random bytes,
/// not derived from a guessed password, so the rate is the server's, not the prober's
/// PBKDF2.
pub fn wrong_passwords(
    target: SocketAddr,
    parallel: usize,
    duration: Duration,
) -> Result<WrongPasswords> {
    // A server without users refuses SCRAM at once, and those refusals would be counted
    // as answered guesses.
    let mut check = RawConnection::connect(target, Duration::from_secs(5))?;
    if check.hello([5; 16])? != Answer::Ok {
        anyhow::bail!("{target}: no Hello and mechanism list from the server");
    }
    if !check.mechanisms().iter().any(|m| m == "SCRAM-SHA-256") {
        anyhow::bail!(
            "{target} does not offer SCRAM-SHA-256 (it offers {:?}): give it a [users] entry",
            check.mechanisms().join(" ")
        );
    }
    drop(check);

    let answered = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let end = started + duration;
    let threads: Vec<_> = (0..parallel)
        .map(|i| {
            let (answered, attempts, unanswered, first) = (
                Arc::clone(&answered),
                Arc::clone(&attempts),
                Arc::clone(&unanswered),
                Arc::clone(&first),
            );
            std::thread::spawn(move || {
                let mut rng = Xoshiro256StarStar::seed_from_u64(now_nanos() ^ i as u64);
                while Instant::now() < end {
                    let Ok(mut conn) = RawConnection::connect(target, Duration::from_secs(2))
                    else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    if conn.hello([5; 16]).ok() != Some(Answer::Ok) {
                        continue;
                    }
                    let nonce = printable_nonce(&mut rng);
                    let mut proof = [0u8; 32];
                    rng.fill_bytes(&mut proof);
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let text = match conn.scram_wrong_proof(GUESSED_IDENTITY, &nonce, &proof) {
                        // A GoAway without an AuthResult is an attempt the server did not
                        // check (over the source's rate): no verdict, nothing learnt.
                        Ok(Answer::Refused(why)) if why.starts_with("GoAway") => None,
                        Ok(Answer::Refused(why)) => Some(why),
                        Ok(Answer::Ok) => Some("accepted".to_owned()),
                        _ => None,
                    };
                    match text {
                        Some(text) if Instant::now() < end => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            let mut first = first.lock().unwrap_or_else(|e| e.into_inner());
                            first.get_or_insert(text);
                        }
                        _ => {
                            unanswered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let seconds = started.elapsed().as_secs_f64();
    let first_answer = first.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(WrongPasswords {
        attempts: attempts.load(Ordering::Relaxed),
        answered_per_sec: answered.load(Ordering::Relaxed) as f64 / seconds,
        unanswered: unanswered.load(Ordering::Relaxed),
        seconds,
        first_answer,
    })
}

/// A SCRAM client nonce of letters and digits (printable, no comma), fresh per attempt
/// as a real client's would be.
fn printable_nonce(rng: &mut Xoshiro256StarStar) -> String {
    const CHARS: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..24)
        .map(|_| char::from(CHARS[(rng.next_u64() % CHARS.len() as u64) as usize]))
        .collect()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
