//! `hawser serve`, `hawser push` and `hawser bench --mode replicate`: arguments, the
//! progress display and the report (shared with `hawser pull`, see [`super::pull`]).

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hawser_replicate::proto::{
    BLOCK_HEADER_LEN, CompressPolicy, JobOptions, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE,
};
use hawser_replicate::{
    ReplicateError, Report, RootDir, Source, SourceConfig, WriteMode, remove_partials, run,
};
use hawser_runtime::{
    ApiError, Client, ClientOptions, DEFAULT_PORT, NexusId, Runtime, Server, ServerBuilder,
    ServerLimits, Service, anonymous_allowed,
};

use hawser_replicate::service::{
    PipelineTransport, Progress, ServiceLimits, max_request_size, pull_service,
    replication_service, session_source_config,
};

use crate::nexus_record::{self, Previous};

/// Why a subcommand failed (the binary prints it and exits non-zero).
#[derive(Debug, thiserror::Error)]
pub enum MoverError {
    /// Bad arguments or configuration.
    #[error("{0}")]
    Usage(String),
    /// The server could not start, or the client could not reach it.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Nothing listens there (or it is unreachable).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The job failed.
    #[error(transparent)]
    Replicate(#[from] ReplicateError),
    /// A local file (root, config, report) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server holds the session: the identity's previous nexus still exists. The
    /// message says why and what to do.
    #[error("{message}")]
    Held {
        /// The server.
        addr: SocketAddr,
        /// The previous nexus.
        nexus: NexusId,
        /// The explanation and the advice.
        message: String,
    },
    /// The server refused or failed a pull (its message names the path and the reason).
    #[error("{addr}: {message}")]
    Server {
        /// The server.
        addr: SocketAddr,
        /// What it said.
        message: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MoverError + '_ {
    move |source| MoverError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Arguments of `hawser serve`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    long_about = "Serve as a replication target: write what `hawser push` sends, only under \
--root, and send what `hawser pull` asks for, only from under --root. Every file-system \
operation runs beneath the root's directory descriptor, opened once: absolute paths, `..`, \
paths through a symlink and a path named twice in one job are refused with an error naming \
the path, and nothing outside the root is ever written, read or changed. A pull occupies one \
handler thread while it runs; at most handler_threads - 1 (at least 1) run at once, so pushes \
keep a thread. A job may name at most max_job_entries paths and write at most max_open_files \
files at once (config file). Files are written under .hawser-partial/ in their directory \
and renamed into place when complete; what an unfinished job leaves there waits for a \
--resume and expires after --partial-max-age (swept at start and hourly); \
--clean-partials removes it all. Prints `listening on ADDR` once bound (port 0 picks a \
free port)."
)]
pub struct ServeArgs {
    /// Address to listen on [default: 0.0.0.0:8415, or the config file's `listen`].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory everything is written under [default: the current directory, or the
    /// config file's `root`].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Shard threads to start (the server's nexuses currently share one of them).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// TOML file with `listen`, `root`, `shards`, `max_block_size`, `max_jobs`,
    /// `handler_threads`, `congestion`, `write_mode`, `max_job_entries` (paths one job
    /// may name, default 10000000; about 50 bytes of memory each while the job runs),
    /// `max_open_files` (files one job may be writing at once, default 1024),
    /// `partial_max_age` (as --partial-max-age, or a number of seconds),
    /// `receive_budget` (bytes of large frames held at once over all connections, from
    /// their first byte until answered; past it connections are not read; default 512M),
    /// `frame_timeout` (a frame must arrive whole this long after its first byte, e.g.
    /// 60s, the default), `allow_anonymous`, `grace_period_secs`, a `[secrets]` table
    /// (identity = "secret") and a `[limits]` table (`connections_per_address`,
    /// `handshakes_in_progress`, `nexuses`, `held_creates_per_identity`); command-line
    /// options override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accept anonymous clients (push/pull without --identity): anyone who can reach the
    /// address [default: only on a loopback address without secrets, or the config
    /// file's `allow_anonymous`].
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Open connections from one address at most (an IPv6 /64 counts as one address)
    /// [default: 64, or `[limits] connections_per_address`].
    #[arg(long, value_name = "N")]
    pub max_connections_per_address: Option<u32>,
    /// Connections authenticating at once, from everyone; more are refused until some
    /// finish [default: 256, or `[limits] handshakes_in_progress`].
    #[arg(long, value_name = "N")]
    pub max_handshakes: Option<u32>,
    /// Nexuses (client sessions) alive at once [default: 4096, or `[limits] nexuses`].
    #[arg(long, value_name = "N")]
    pub max_nexuses: Option<u32>,
    /// TCP congestion control of the server's connections (what it sends with: pulls);
    /// one of /proc/sys/net/ipv4/tcp_available_congestion_control [default: the system's].
    #[arg(long, value_name = "NAME")]
    pub congestion: Option<String>,
    /// How received file data is written: `direct` writes blocks of 1 MiB and more past
    /// the page cache (O_DIRECT, preallocated; falls back to the cache on a file system
    /// that refuses it) and drops every committed file's cached pages once they are on
    /// the disk, `buffered` writes everything through the page cache and leaves it there
    /// [default: direct, or the config file's `write_mode`].
    #[arg(long, value_name = "MODE", value_parser = parse_write_mode)]
    pub write_mode: Option<WriteMode>,
    /// Remove partial files and journals of unfinished jobs once unchanged for this long
    /// (swept at start and hourly): seconds, or a number followed by s, m, h or d; `off`
    /// keeps them until a job resumes or replaces them [default: 7d, or the config
    /// file's `partial_max_age`].
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub partial_max_age: Option<AgeLimit>,
    /// Remove every partial file and journal unfinished jobs left under the root (what a
    /// --resume would continue from), print how many files and bytes, and exit without
    /// serving.
    #[arg(long)]
    pub clean_partials: bool,
}

/// `--partial-max-age`: an age, or `None` for "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeLimit(pub Option<Duration>);

/// `--partial-max-age`: seconds, or a number with `s`, `m`, `h` or `d`; `off`.
pub(crate) fn parse_age(text: &str) -> Result<AgeLimit, String> {
    let t = text.trim();
    if t == "off" {
        return Ok(AgeLimit(None));
    }
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let scale = match unit {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(24 * 3600),
        _ => None,
    };
    scale
        .zip(digits.trim().parse::<u64>().ok())
        .and_then(|(scale, n)| n.checked_mul(scale))
        .map(|secs| AgeLimit(Some(Duration::from_secs(secs))))
        .ok_or_else(|| format!("{text:?} is not an age (e.g. 7d, 12h, 3600 or off)"))
}

/// An age in the config file: seconds, or text as on the command line.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum AgeValue {
    Seconds(u64),
    Text(String),
}

/// `--write-mode`: `direct` or `buffered`.
pub(crate) fn parse_write_mode(text: &str) -> Result<WriteMode, String> {
    match text {
        "direct" => Ok(WriteMode::Direct),
        "buffered" => Ok(WriteMode::Buffered),
        _ => Err(format!("{text:?} is not a write mode (direct or buffered)")),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    listen: Option<String>,
    root: Option<PathBuf>,
    shards: Option<usize>,
    max_block_size: Option<u32>,
    max_jobs: Option<usize>,
    handler_threads: Option<usize>,
    congestion: Option<String>,
    write_mode: Option<String>,
    max_job_entries: Option<u64>,
    max_open_files: Option<usize>,
    partial_max_age: Option<AgeValue>,
    receive_budget: Option<SizeValue>,
    frame_timeout: Option<AgeValue>,
    allow_anonymous: Option<bool>,
    grace_period_secs: Option<u64>,
    #[serde(default)]
    secrets: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    limits: LimitsFile,
}

/// The `[limits]` table of `hawser serve --config` (the names of [`ServerLimits`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    connections_per_address: Option<u32>,
    handshakes_in_progress: Option<u32>,
    nexuses: Option<u32>,
    held_creates_per_identity: Option<u32>,
}

/// The limits `args` and `file` set, over the defaults.
fn serve_limits(args: &ServeArgs, file: &LimitsFile) -> ServerLimits {
    let d = ServerLimits::default();
    ServerLimits {
        connections_per_address: args
            .max_connections_per_address
            .or(file.connections_per_address)
            .unwrap_or(d.connections_per_address),
        handshakes_in_progress: args
            .max_handshakes
            .or(file.handshakes_in_progress)
            .unwrap_or(d.handshakes_in_progress),
        nexuses: args.max_nexuses.or(file.nexuses).unwrap_or(d.nexuses),
        held_creates_per_identity: file
            .held_creates_per_identity
            .unwrap_or(d.held_creates_per_identity),
    }
}

/// Refuses to start a server that would refuse every client: one without secrets that
/// does not accept anonymous clients either (by default, one listening on a non-loopback
/// address). `what` names the command for the advice.
pub(crate) fn check_someone_may_connect(
    listen: &str,
    allow_anonymous: Option<bool>,
    has_secrets: bool,
    what: &str,
) -> Result<(), MoverError> {
    let ip = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip());
    let Some(ip) = ip else {
        return Ok(()); // binding reports the bad address
    };
    if has_secrets || anonymous_allowed(allow_anonymous, has_secrets, ip) {
        return Ok(());
    }
    let advice = if what == "serve" {
        "give clients identities (a [secrets] table in --config; they connect with --identity \
         and --secret-file), or accept anonymous clients with --allow-anonymous \
         (allow_anonymous = true in the config file)"
    } else {
        "accept anonymous clients with --allow-anonymous, or listen on a loopback address"
    };
    let why = if ip.is_loopback() {
        "anonymous clients are refused"
    } else {
        "anonymous clients are refused on an address other machines can reach"
    };
    Err(MoverError::Usage(format!(
        "hawser {what} would refuse every client on {listen}: it has no secrets, and {why}; \
         {advice}"
    )))
}

/// A byte count in the config file: a number, or text with a K, M or G suffix.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    fn bytes(&self, key: &str) -> Result<u64, MoverError> {
        match self {
            SizeValue::Bytes(n) => Ok(*n),
            SizeValue::Text(text) => {
                parse_size(text).map_err(|e| MoverError::Usage(format!("{key}: {e}")))
            }
        }
    }
}

impl AgeValue {
    /// The age this value gives, `None` for `off`.
    fn age(&self, key: &str) -> Result<Option<Duration>, MoverError> {
        match self {
            AgeValue::Seconds(secs) => Ok(Some(Duration::from_secs(*secs))),
            AgeValue::Text(text) => Ok(parse_age(text)
                .map_err(|e| MoverError::Usage(format!("{key}: {e}")))?
                .0),
        }
    }
}

fn serve_file(args: &ServeArgs) -> Result<ServeFile, MoverError> {
    match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(io_err(path))?;
            toml::from_str(&text).map_err(|e| MoverError::Usage(format!("{}: {e}", path.display())))
        }
        None => Ok(ServeFile::default()),
    }
}

/// The limits of the replication service `args` and the config file describe.
fn service_limits(args: &ServeArgs, file: &ServeFile) -> Result<ServiceLimits, MoverError> {
    let defaults = ServiceLimits::default();
    let write_mode = match (args.write_mode, &file.write_mode) {
        (Some(mode), _) => mode,
        (None, Some(text)) => parse_write_mode(text).map_err(MoverError::Usage)?,
        (None, None) => WriteMode::default(),
    };
    let partial_max_age = match (args.partial_max_age, &file.partial_max_age) {
        (Some(AgeLimit(age)), _) => age,
        (None, Some(value)) => value.age("partial_max_age")?,
        (None, None) => defaults.partial_max_age,
    };
    let at_least_one = |value: Option<u64>, key: &str| match value {
        Some(0) => Err(MoverError::Usage(format!("{key} must be at least 1"))),
        other => Ok(other),
    };
    Ok(ServiceLimits {
        max_jobs: file.max_jobs.unwrap_or(defaults.max_jobs),
        write_mode,
        max_job_entries: at_least_one(file.max_job_entries, "max_job_entries")?
            .unwrap_or(defaults.max_job_entries),
        max_open_files: at_least_one(file.max_open_files.map(|n| n as u64), "max_open_files")?
            .map_or(defaults.max_open_files, |n| n as usize),
        partial_max_age,
    })
}

fn serve_root(args: &ServeArgs, file: &ServeFile) -> PathBuf {
    args.root
        .clone()
        .or_else(|| file.root.clone())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Starts the replication server `args` describe (the caller keeps it running).
pub fn start_server(args: &ServeArgs) -> Result<Server, MoverError> {
    let file = serve_file(args)?;
    let limits = service_limits(args, &file)?;
    let root = serve_root(args, &file);
    let listen = args
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_PORT}"));
    let shards = args.shards.or(file.shards).unwrap_or(1).max(1);
    let max_block = file.max_block_size.unwrap_or(MAX_BLOCK_SIZE);
    let service = replication_service(&root, limits).map_err(io_err(&root))?;
    let handler_threads = file.handler_threads.unwrap_or(4).max(1);
    let pulls =
        pull_service(&root, handler_threads.saturating_sub(1).max(1)).map_err(io_err(&root))?;
    let congestion = args.congestion.clone().or(file.congestion);
    if let Some(name) = &congestion {
        hawser_shards::check_congestion_control(name)
            .map_err(|e| MoverError::Usage(e.to_string()))?;
    }
    let allow_anonymous = if args.allow_anonymous {
        Some(true)
    } else {
        file.allow_anonymous
    };
    check_someone_may_connect(&listen, allow_anonymous, !file.secrets.is_empty(), "serve")?;
    let runtime = Runtime::with_tcp_congestion(shards, congestion.as_deref())?;
    let mut builder = ServerBuilder::new()
        .limits(serve_limits(args, &file.limits))
        .runtime(&runtime, 0)
        .service(service)
        .service(pulls)
        .handler_threads(handler_threads)
        .max_request_size(max_request_size(max_block))
        // Blocks are written past their header with O_DIRECT: receive them aligned.
        .align_request_bodies_at(BLOCK_HEADER_LEN);
    if let Some(budget) = &file.receive_budget {
        builder = builder.receive_budget(budget.bytes("receive_budget")? as usize);
    }
    if let Some(timeout) = &file.frame_timeout {
        let timeout = timeout.age("frame_timeout")?.ok_or_else(|| {
            MoverError::Usage(
                "frame_timeout: give a duration (e.g. 60s); off is not allowed".into(),
            )
        })?;
        builder = builder.frame_timeout(timeout);
    }
    for (identity, secret) in file.secrets {
        builder = builder.secret(identity, secret.into_bytes());
    }
    if let Some(allow) = allow_anonymous {
        builder = builder.allow_anonymous(allow);
    }
    if let Some(secs) = file.grace_period_secs {
        builder = builder.grace_period(Duration::from_secs(secs.max(1)));
    }
    Ok(builder.listen(listen.as_str())?)
}

/// `hawser serve`: serves until killed (with `--clean-partials`: cleans and exits).
pub fn serve(args: &ServeArgs) -> Result<(), MoverError> {
    if args.clean_partials {
        return clean_partials(args);
    }
    let server = start_server(args)?;
    println!("listening on {}", server.local_addr());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

/// `hawser serve --clean-partials`: removes every partial file and journal under the
/// root and says how many files and bytes went.
fn clean_partials(args: &ServeArgs) -> Result<(), MoverError> {
    let file = serve_file(args)?;
    let root = serve_root(args, &file);
    let opened = RootDir::open(&root).map_err(io_err(&root))?;
    let removed = remove_partials(&opened, None).map_err(io_err(&root))?;
    println!(
        "removed partial files and journals under {}: {removed}",
        opened.path().display()
    );
    Ok(())
}

/// Options of a job shared by `push`, `pull` and `bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    /// Connections in the trunk.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Block size large files are split into (bytes; K, M, G suffixes).
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    pub block_size: u64,
    /// Blocks in flight at most; each costs about --block-size of memory on each side.
    /// By default it is chosen from the round trip measured when connecting: enough blocks
    /// to keep twice the bandwidth-delay product of a 10 Gbit/s link in flight (4 on a
    /// LAN, 15 at 50 ms with 8 MiB blocks), at most 160 MiB of blocks.
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    /// Re-read each file on the target after writing it and compare its hash again.
    #[arg(long)]
    pub verify: bool,
    /// fsync data, journals and directories on the target.
    #[arg(long)]
    pub fsync: bool,
    /// Remove files on the target that the source no longer has.
    #[arg(long)]
    pub delete: bool,
    /// Skip files whose content already matches (xxh3-128) instead of size and mtime.
    #[arg(long)]
    pub checksum: bool,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip paths matching PATTERN (glob; repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Continue an interrupted push or pull: only the blocks the target lacks travel.
    #[arg(long)]
    pub resume: bool,
    /// Compression on the wire (lz4 per session frame, sent raw where it does not
    /// shrink): `lz4` always; `off` never; `auto` starts uncompressed, measures the link
    /// and lz4 on a sample of the data, and compresses only if that makes the transfer
    /// faster (a link slower than lz4's 0.4-0.7 GB/s on one thread, data that shrinks),
    /// checking that it did. The report says what auto chose.
    #[arg(long, default_value = "auto", value_parser = parse_compress)]
    pub compress: CompressPolicy,
    /// Cap the data rate (token bucket): bytes per second with an optional k, M, G or T
    /// suffix (powers of 1000: `500M` is 500 MB/s), or bits per second ending in `bit`
    /// (`4Gbit`). The sender paces itself: for a pull, the server.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// TCP congestion control of the trunk's connections, e.g. `cubic` or `bbr` (one of
    /// /proc/sys/net/ipv4/tcp_available_congestion_control) [default: the system's]. On a
    /// lossy path a loss-based one (cubic) slows each connection down, and the trunk's
    /// connections together keep the rate up.
    #[arg(long, value_name = "NAME")]
    pub congestion: Option<String>,
    /// Identity to authenticate as (with --secret-file).
    #[arg(long)]
    pub identity: Option<String>,
    /// File holding the shared secret of --identity (its bytes are the HMAC key; a
    /// trailing newline or spaces are dropped). With --identity, the nexus of the run is
    /// remembered under $XDG_STATE_HOME/hawser/nexus/ (~/.local/state/...) until it ends
    /// cleanly, so that the next run replaces it if this one is killed.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Recover and destroy this nexus (as the server's "held" message names it) before
    /// creating the run's own: for a run of the same identity that was killed and whose
    /// nexus the server still keeps. Its unfinished work is dropped (a push continues
    /// with --resume); never name the nexus of a run still going.
    #[arg(long, value_name = "NEXUS", value_parser = nexus_record::parse_nexus_id)]
    pub replace_nexus: Option<NexusId>,
    /// Seconds without any answer from the target (pull: without a connection to the
    /// server) before the job gives up (the session reconnects and retries meanwhile);
    /// continue later with --resume.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// No progress and no report.
    #[arg(long, short)]
    pub quiet: bool,
    /// More detail (deleted and would-change paths, per-connection counters).
    #[arg(short, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write the report as JSON to FILE (iperf3 -J-like: start, intervals, end, latency_ns).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the block round-trip latency distribution to FILE (HdrHistogram .hgrm).
    #[arg(long, value_name = "FILE")]
    pub histogram: Option<PathBuf>,
}

/// Arguments of `hawser push`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    long_about = "Replicate files and directory trees to a `hawser serve` target. DEST is \
relative to the server's --root (a leading '/' is the root itself). A SRC ending in '/' sends \
the directory's contents, otherwise the directory itself, as rsync does. Blocks travel \
pipelined over --connections trunked connections; every file is hashed end to end and \
renamed into place only when complete. An interrupted push continues with --resume.",
    override_usage = "hawser push [OPTIONS] SRC... HOST[:PORT]:DEST",
    after_help = "Examples:\n  hawser serve --root /srv/replica\n  hawser push ./dataset host:/dataset\n  hawser push --resume --connections 16 a b 10.0.0.2:9000:backup"
)]
pub struct PushArgs {
    /// Sources, then the destination HOST[:PORT]:DEST (port 8415 by default).
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    pub paths: Vec<String>,
    /// Job options.
    #[command(flatten)]
    pub job: JobArgs,
}

/// Parses `HOST[:PORT]:DEST` (`[v6]:PORT:DEST` for IPv6): the address and DEST relative
/// to the target's root (a leading `/` is dropped: it names the root).
pub fn parse_remote(spec: &str) -> Result<(String, u16, String), MoverError> {
    let (host, port, dest) = split_remote(spec, "DEST")?;
    Ok((host, port, dest.trim_start_matches('/').to_string()))
}

/// Splits `HOST[:PORT]:PATH` (`[v6]:PORT:PATH` for IPv6) into host, port (8415 by
/// default) and the path as written; `what` names the path in the usage error.
pub fn split_remote(spec: &str, what: &str) -> Result<(String, u16, String), MoverError> {
    let bad = || MoverError::Usage(format!("{spec:?} is not HOST[:PORT]:{what}"));
    let (host, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (host, rest) = after.split_once(']').ok_or_else(bad)?;
        (host.to_string(), rest.strip_prefix(':').ok_or_else(bad)?)
    } else {
        let (host, rest) = spec.split_once(':').ok_or_else(bad)?;
        (host.to_string(), rest)
    };
    if host.is_empty() {
        return Err(bad());
    }
    let (port, dest) = match rest.split_once(':') {
        Some((port, dest)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (port.parse().map_err(|_| bad())?, dest)
        }
        _ => (DEFAULT_PORT, rest),
    };
    Ok((host, port, dest.to_string()))
}

fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown size suffix in {text:?}")),
            };
            (&t[..i], scale)
        }
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{text:?} is not a size"))
}

/// `--rate`: bytes per second (decimal suffixes), or bits per second ending in `bit`.
fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (t, bits) = match t.strip_suffix("bit") {
        Some(rest) => (rest, true),
        None => (t, false),
    };
    let (digits, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale: u64 = match c.to_ascii_uppercase() {
                'K' => 1_000,
                'M' => 1_000_000,
                'G' => 1_000_000_000,
                'T' => 1_000_000_000_000,
                _ => return Err(format!("unknown rate suffix in {text:?}")),
            };
            (&t[..i], scale)
        }
        _ => (t, 1),
    };
    let value = digits
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("{text:?} is not a rate (e.g. 500M or 4Gbit)"))?;
    let bytes = value * scale as f64 / if bits { 8.0 } else { 1.0 };
    if bytes < 1.0 {
        return Err(format!("{text:?} is less than a byte per second"));
    }
    Ok(bytes as u64)
}

fn parse_compress(text: &str) -> Result<CompressPolicy, String> {
    match text {
        "auto" => Ok(CompressPolicy::Auto),
        "lz4" => Ok(CompressPolicy::Lz4),
        "off" => Ok(CompressPolicy::Off),
        _ => Err(format!("{text:?}: expected auto, lz4 or off")),
    }
}

/// Blocks in flight when `--window` is not given (see its help).
pub const DEFAULT_WINDOW: usize = 4;
/// The link rate the automatic window is sized for (10 Gbit/s, in bytes per second).
const AUTO_WINDOW_LINK_RATE: f64 = 1.25e9;
/// Most bytes of blocks the automatic window keeps in flight.
const AUTO_WINDOW_MAX_BYTES: u64 = 160 << 20;

/// The window `--window` defaults to for a path with round trip `rtt`: enough blocks of
/// `block_size` for twice the bandwidth-delay product of a 10 Gbit/s link (the second
/// half covers the target's time to write and acknowledge a block), between
/// [`DEFAULT_WINDOW`] and 160 MiB worth of blocks.
pub fn auto_window(rtt: Duration, block_size: u32) -> usize {
    let block = u64::from(block_size.max(1));
    let wanted = (2.0 * rtt.as_secs_f64() * AUTO_WINDOW_LINK_RATE / block as f64).ceil() as u64;
    let most = (AUTO_WINDOW_MAX_BYTES / block).max(DEFAULT_WINDOW as u64);
    wanted.clamp(DEFAULT_WINDOW as u64, most) as usize
}

/// `job.window`, or the automatic window for the round trip `rtt`.
pub fn window_for(job: &JobArgs, rtt: Duration, block_size: u32) -> usize {
    job.window.unwrap_or_else(|| auto_window(rtt, block_size))
}

/// Connects to `addr` as `job` says: a plain TCP probe first, so that "connection
/// refused" is reported as such at once instead of as a session timeout. Returns the
/// client and the probe's connect time (one round trip, for [`auto_window`]).
pub fn connect(
    addr: SocketAddr,
    job: &JobArgs,
    block_size: u32,
) -> Result<(Client, Duration), MoverError> {
    connect_serving(addr, job, block_size, None)
}

/// [`connect`], serving `backchannel` to the server (a pull's target).
pub fn connect_serving(
    addr: SocketAddr,
    job: &JobArgs,
    block_size: u32,
    backchannel: Option<Service>,
) -> Result<(Client, Duration), MoverError> {
    let probe_started = Instant::now();
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|source| MoverError::Connect { addr, source })?;
    let rtt = probe_started.elapsed();
    let secret = match &job.secret_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(io_err(path))?
                .trim_end()
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    let mut config = ClientOptions {
        connections: job.connections.max(1),
        // Blocks carry their own xxh3 and files an end-to-end xxh3-128: a frame digest
        // adds nothing the job does not check already.
        digest: false,
        // The task sends blocks as they are; lz4 happens per session frame, where the
        // session finds it pays (the policy's auto and lz4 both turn it on).
        compression: job.compress != CompressPolicy::Off,
        secret,
        max_request_size: max_request_size(block_size),
        // A pull's blocks arrive on the backchannel: aligned for the direct writes.
        align_backchannel_bodies_at: backchannel.is_some().then_some(BLOCK_HEADER_LEN),
        backchannel,
        tcp_congestion: job.congestion.clone(),
        ..ClientOptions::default()
    };
    if let Some(name) = &job.congestion {
        hawser_shards::check_congestion_control(name)
            .map_err(|e| MoverError::Usage(e.to_string()))?;
    }
    if let Some(identity) = &job.identity {
        config.identity = identity.clone();
    }
    // A nexus a killed run of this identity left behind is replaced, not waited for.
    let previous = match (&job.identity, nexus_record::record_dir()) {
        (Some(identity), Some(dir)) => nexus_record::previous_in(&dir, addr, identity),
        _ => Previous::None,
    };
    config.replace_nexus = job.replace_nexus.or(match previous {
        Previous::Abandoned(nexus) => Some(nexus),
        Previous::None | Previous::InUse(_) => None,
    });
    let client = Client::connect(addr, config).map_err(|e| held_advice(e, job, previous))?;
    if let (Some(identity), Some(dir), Some(nexus)) =
        (&job.identity, nexus_record::record_dir(), client.nexus())
        && let Err(e) = nexus_record::remember_in(&dir, addr, identity, nexus)
        && !job.quiet
    {
        eprintln!(
            "hawser: cannot record the session in {}: {e} (if this run is killed, the next \
             one may have to wait for the server to let its session go)",
            dir.display()
        );
    }
    // Blocks go to the connections bound when they are sent: wait for the trunk, or the
    // first window would all ride on the leading connection (on a lossy long path that
    // is one loss-limited stream for the whole first window). A connection that has not
    // joined by then (a lost SYN costs a second) takes later blocks.
    let wait = (rtt * 20).clamp(Duration::from_millis(500), Duration::from_secs(3));
    client.wait_for_trunk(job.connections.max(1), wait);
    Ok((client, rtt))
}

/// A held session as the user reads it: what happens, and what to do.
fn held_advice(e: ApiError, job: &JobArgs, previous: Previous) -> MoverError {
    let ApiError::Held {
        addr,
        nexus,
        remaining,
        reason,
    } = e
    else {
        return MoverError::Api(e);
    };
    let identity = job.identity.as_deref().unwrap_or("(this client)");
    let expiry = match remaining {
        Some(left) => format!(" (the server drops it in {} s)", left.as_secs().max(1)),
        None => String::new(),
    };
    let advice = if previous == Previous::InUse(nexus) {
        format!(
            "another hawser run with identity {identity:?} is still going against this server \
             and uses that session: wait for it to finish"
        )
    } else {
        format!(
            "if no other run with identity {identity:?} is still going (the earlier one was \
             killed or lost its connection), replace its session now, dropping its unfinished \
             work: run the same command with --replace-nexus {nexus} (a push then continues \
             with --resume); otherwise wait for that run to end{expiry}"
        )
    };
    MoverError::Held {
        addr,
        nexus,
        message: format!(
            "{addr} holds this run's session, because it never runs two sessions of one \
             identity side by side: {reason}\nwhat to do: {advice}"
        ),
    }
}

/// A job connected to `addr` ended and its client closed its nexus: the record kept in
/// case it died is removed.
pub(crate) fn job_ended(addr: SocketAddr, job: &JobArgs) {
    if let (Some(identity), Some(dir)) = (&job.identity, nexus_record::record_dir()) {
        nexus_record::forget_in(&dir, addr, identity);
    }
}

/// The source configuration `job` describes.
pub fn source_config(job: &JobArgs, dest: String) -> Result<SourceConfig, MoverError> {
    if job.block_size < u64::from(MIN_BLOCK_SIZE) || job.block_size > u64::from(MAX_BLOCK_SIZE) {
        return Err(MoverError::Usage(format!(
            "--block-size must be between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE} bytes"
        )));
    }
    let options = JobOptions {
        block_size: job.block_size as u32,
        verify: job.verify,
        fsync: job.fsync,
        delete: job.delete,
        checksum: job.checksum,
        dry_run: job.dry_run,
        resume: job.resume,
        compress: job.compress,
    };
    let job_id = u128::from(std::process::id()) << 64
        | u128::from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
    Ok(session_source_config(
        options,
        dest,
        job.exclude.clone(),
        job.window.unwrap_or(DEFAULT_WINDOW),
        job_id,
    ))
}

/// One second of the transfer.
#[derive(Debug, Clone, Copy)]
pub struct Interval {
    /// Seconds since the start, at its start.
    pub start: f64,
    /// Seconds since the start, at its end.
    pub end: f64,
    /// Bytes acknowledged in it.
    pub bytes: u64,
}

/// Shows progress while a job runs and records per-second intervals.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Interval>>>,
}

impl Ticker {
    /// Starts showing `progress`; `verb` says what happens to the bytes ("sent",
    /// "received").
    pub(crate) fn start(progress: Arc<Progress>, quiet: bool, verb: &'static str) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(&format!(
                        "{{spinner}} {{elapsed_precise}} {{bytes}} {verb}, \
                             {{binary_bytes_per_sec}} {{msg}}"
                    ))
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar
            });
            let begin = Instant::now();
            let mut intervals = Vec::new();
            let mut last_at = 0.0;
            let mut last_bytes = 0;
            let mut next = begin + Duration::from_secs(1);
            loop {
                let done = stopping.load(Ordering::Acquire);
                let now = Instant::now();
                if now >= next || done {
                    let at = now.duration_since(begin).as_secs_f64();
                    let bytes = progress.bytes.load(Ordering::Relaxed);
                    if at > last_at {
                        intervals.push(Interval {
                            start: last_at,
                            end: at,
                            bytes: bytes - last_bytes,
                        });
                    }
                    if !quiet && bar.is_none() && !done {
                        eprintln!(
                            "{at:6.1}s {:>12} bytes {:>9.1} MB/s {} blocks",
                            bytes,
                            (bytes - last_bytes) as f64 / (at - last_at).max(1e-9) / 1e6,
                            progress.blocks.load(Ordering::Relaxed)
                        );
                    }
                    last_at = at;
                    last_bytes = bytes;
                    next += Duration::from_secs(1);
                }
                if let Some(bar) = &bar {
                    bar.set_position(progress.bytes.load(Ordering::Relaxed));
                    bar.set_message(format!(
                        "{} blocks",
                        progress.blocks.load(Ordering::Relaxed)
                    ));
                }
                if done {
                    if let Some(bar) = &bar {
                        bar.finish_and_clear();
                    }
                    return intervals;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the display; the per-second intervals.
    pub(crate) fn finish(mut self) -> Vec<Interval> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// What a push or a pull did.
#[derive(Debug)]
pub struct JobOutcome {
    /// The source's report.
    pub report: Report,
    /// Per-second intervals.
    pub intervals: Vec<Interval>,
    /// Bytes the source side wrote to the trunk (frames, after session compression):
    /// a push's client wrote them, a pull's client received them.
    pub session_bytes_out: u64,
    /// Requests the source side's session retried (connection losses).
    pub session_retries: u64,
    /// Would-change paths (dry run) the report does not list (a pull's report travels
    /// as one bounded response).
    pub unlisted_changes: u64,
}

impl JobOutcome {
    /// Trunk bytes over request bytes: what session compression saved (frame headers
    /// make it slightly above 1 for data that does not compress).
    pub fn compression_ratio(&self) -> f64 {
        self.session_bytes_out as f64 / self.report.wire_bytes.max(1) as f64
    }
}

/// Runs one job from `sources` to `dest` on the server behind `client`.
pub fn push_with(
    client: &Client,
    sources: &[PathBuf],
    config: SourceConfig,
    quiet: bool,
    stall_timeout: Duration,
    rate: Option<u64>,
) -> Result<JobOutcome, MoverError> {
    let source = Source::new(config, sources)?;
    let progress = Arc::new(Progress::default());
    let ticker = Ticker::start(Arc::clone(&progress), quiet, "sent");
    let mut transport = PipelineTransport::new(client, progress)
        .stall_timeout(stall_timeout)
        .rate_limit(rate);
    let result = run(source, &mut transport);
    let intervals = ticker.finish();
    let stats = client.stats();
    Ok(JobOutcome {
        report: result?,
        intervals,
        session_bytes_out: stats.connections.iter().map(|c| c.bytes_out).sum(),
        session_retries: stats.nexuses.iter().map(|(_, n)| n.retries).sum(),
        unlisted_changes: 0,
    })
}

/// `hawser push`.
pub fn push(args: &PushArgs) -> Result<JobOutcome, MoverError> {
    let (remote, sources) = args
        .paths
        .split_last()
        .ok_or_else(|| MoverError::Usage("give SRC... HOST[:PORT]:DEST".into()))?;
    let (host, port, dest) = parse_remote(remote)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| MoverError::Usage(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| MoverError::Usage(format!("{host} has no address")))?;
    let sources: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
    for s in &sources {
        std::fs::symlink_metadata(s).map_err(io_err(s))?;
    }
    let mut config = source_config(&args.job, dest.clone())?;
    let (client, rtt) = connect(addr, &args.job, config.options.block_size)?;
    config.window_blocks = window_for(&args.job, rtt, config.options.block_size);
    if args.job.verbose > 0 {
        eprintln!(
            "connected in {:.2} ms: {} blocks of {} bytes in flight at most",
            rtt.as_secs_f64() * 1e3,
            config.window_blocks,
            config.options.block_size
        );
    }
    let outcome = push_with(
        &client,
        &sources,
        config,
        args.job.quiet,
        stall_timeout(&args.job)?,
        args.job.rate,
    );
    if args.job.verbose > 1 {
        eprintln!("{:?}", client.stats());
    }
    client.close();
    job_ended(addr, &args.job);
    let outcome = outcome?;
    if !args.job.quiet {
        print_report(&outcome, args.job.verbose);
    }
    write_outputs(&args.job, &outcome, &format!("{host}:{port}"), &dest)?;
    Ok(outcome)
}

/// The job's stall timeout.
pub fn stall_timeout(job: &JobArgs) -> Result<Duration, MoverError> {
    Duration::try_from_secs_f64(job.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| MoverError::Usage("--timeout must be a positive number of seconds".into()))
}

fn rate(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds.max(1e-9)
}

/// Prints the human report.
pub fn print_report(outcome: &JobOutcome, verbose: u8) {
    let report = &outcome.report;
    let seconds = report.duration.as_secs_f64();
    let rtt = report.block_rtt();
    println!(
        "{} files ({} up to date), {} dirs, {} symlinks; {} bytes, {} sent in {:.2} s: {:.1} MB/s",
        report.files,
        report.up_to_date,
        report.dirs,
        report.symlinks,
        report.bytes_total,
        report.bytes_sent,
        seconds,
        rate(report.bytes_sent, seconds) / 1e6
    );
    println!(
        "{} blocks, {} retried after a digest mismatch, {} deleted",
        report.blocks_sent, report.block_retries, report.deleted
    );
    println!(
        "wire: {} bytes on the trunk for {} bytes of requests (compression ratio {:.2}), {} \
         requests retried by the session",
        outcome.session_bytes_out,
        report.wire_bytes,
        outcome.compression_ratio(),
        outcome.session_retries
    );
    if let Some(auto) = &report.auto_compress {
        let tried = auto
            .compressed_rate
            .map(|r| format!(", {:.1} MB/s compressed", r / 1e6))
            .unwrap_or_default();
        let again = if auto.decisions > 1 {
            format!("; decision {} of the job: the rate changed", auto.decisions)
        } else {
            String::new()
        };
        println!(
            "compress auto: {} (uncompressed {:.1} MB/s{tried}; lz4 {:.1} MB/s on a sample, \
             ratio {:.2}{again})",
            if auto.compress {
                "compressing: the link is the bottleneck"
            } else {
                "not compressing: it would not pay"
            },
            auto.raw_rate / 1e6,
            auto.lz4_speed / 1e6,
            auto.lz4_ratio
        );
    }
    if report.blocks_sent > 0 {
        println!(
            "block round trip: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            rtt.p50 as f64 / 1e6,
            rtt.p90 as f64 / 1e6,
            rtt.p99 as f64 / 1e6,
            rtt.max as f64 / 1e6
        );
    }
    if verbose > 0 {
        for p in &report.deleted_paths {
            println!("deleted {p}");
        }
        for p in &report.would_change {
            println!("would change {p}");
        }
    } else if !report.would_change.is_empty() {
        println!(
            "{} entries would change (-v lists them)",
            report.would_change.len() as u64 + outcome.unlisted_changes
        );
    }
    if verbose > 0 && outcome.unlisted_changes > 0 {
        println!("... and {} more would change", outcome.unlisted_changes);
    }
}

/// The iperf3-like JSON report.
pub fn json_report(
    outcome: &JobOutcome,
    server: &str,
    dest: &str,
    job: &JobArgs,
) -> serde_json::Value {
    let r = &outcome.report;
    let seconds = r.duration.as_secs_f64();
    let intervals: Vec<_> = outcome
        .intervals
        .iter()
        .map(|i| {
            serde_json::json!({
                "start": i.start, "end": i.end, "seconds": i.end - i.start, "bytes": i.bytes,
                "bits_per_second": rate(i.bytes, i.end - i.start) * 8.0,
            })
        })
        .collect();
    let peak = outcome
        .intervals
        .iter()
        .map(|i| rate(i.bytes, i.end - i.start) * 8.0)
        .fold(0.0, f64::max);
    serde_json::json!({
        "start": {
            "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "connecting_to": server,
            "dest": dest,
            "connections": job.connections,
            "block_size": job.block_size,
            "options": {
                "verify": job.verify, "fsync": job.fsync, "delete": job.delete,
                "checksum": job.checksum, "dry_run": job.dry_run, "resume": job.resume,
            },
        },
        "intervals": intervals,
        "end": {
            "files": r.files, "up_to_date": r.up_to_date, "dirs": r.dirs, "symlinks": r.symlinks,
            "bytes_total": r.bytes_total, "bytes": r.bytes_sent, "wire_bytes": r.wire_bytes,
            "seconds": seconds, "bits_per_second": rate(r.bytes_sent, seconds) * 8.0,
            "peak_bits_per_second": peak, "compression_ratio": outcome.compression_ratio(),
            "blocks": r.blocks_sent, "retries": r.block_retries, "deleted": r.deleted,
            "session_wire_bytes": outcome.session_bytes_out,
            "session_retries": outcome.session_retries,
            "compress_auto": r.auto_compress.map(|a| serde_json::json!({
                "compress": a.compress, "raw_bytes_per_sec": a.raw_rate,
                "compressed_bytes_per_sec": a.compressed_rate,
                "lz4_bytes_per_sec": a.lz4_speed, "lz4_ratio": a.lz4_ratio,
                "decisions": a.decisions,
            })),
        },
        "latency_ns": r.block_rtt(),
    })
}

pub(crate) fn write_outputs(
    job: &JobArgs,
    outcome: &JobOutcome,
    server: &str,
    dest: &str,
) -> Result<(), MoverError> {
    if let Some(path) = &job.json {
        let text = serde_json::to_string_pretty(&json_report(outcome, server, dest, job))
            .map_err(|e| MoverError::Usage(e.to_string()))?;
        std::fs::write(path, text).map_err(io_err(path))?;
    }
    if let Some(path) = &job.histogram {
        let file = std::fs::File::create(path).map_err(io_err(path))?;
        let mut w = std::io::BufWriter::new(file);
        crate::bench::write_hgrm(&outcome.report.block_rtt_ns, &mut w)
            .and_then(|()| w.flush())
            .map_err(io_err(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u32 = 1 << 20;

    #[test]
    fn the_automatic_window_covers_twice_the_bandwidth_delay_product_within_bounds() {
        // A LAN or loopback: the minimum.
        assert_eq!(
            auto_window(Duration::from_micros(80), 8 * MIB),
            DEFAULT_WINDOW
        );
        // 50 ms at 10 Gbit/s is 62.5 MB: twice that in 8 MiB blocks is 15 blocks.
        assert_eq!(auto_window(Duration::from_millis(50), 8 * MIB), 15);
        // Smaller blocks, more of them for the same bytes.
        assert_eq!(auto_window(Duration::from_millis(50), MIB), 120);
        // A very long path stops at 160 MiB of blocks.
        assert_eq!(auto_window(Duration::from_secs(1), 8 * MIB), 20);
        assert_eq!(
            auto_window(Duration::from_secs(1), 64 * MIB),
            DEFAULT_WINDOW
        );
    }

    #[derive(clap::Parser)]
    struct JobOnly {
        #[command(flatten)]
        job: JobArgs,
    }

    fn job(args: &[&str]) -> JobArgs {
        use clap::Parser;
        JobOnly::try_parse_from(std::iter::once("job").chain(args.iter().copied()))
            .expect("parses")
            .job
    }

    #[test]
    fn rates_parse_as_bytes_or_bits_per_second() {
        assert_eq!(parse_rate("500M"), Ok(500_000_000));
        assert_eq!(parse_rate("4Gbit"), Ok(500_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("800kbit"), Ok(100_000));
        assert_eq!(parse_rate("12345"), Ok(12_345));
        for bad in ["", "fast", "5X", "-1M", "0", "4bit"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[derive(clap::Parser)]
    struct ServeOnly {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn limits_come_from_flags_then_the_config_file_then_defaults() {
        use clap::Parser;
        let args = ServeOnly::try_parse_from(["serve", "--max-nexuses", "7"])
            .expect("parses")
            .serve;
        let file: ServeFile = toml::from_str(
            "allow_anonymous = true\n[limits]\nnexuses = 9\nconnections_per_address = 3\n",
        )
        .expect("a valid file");
        assert_eq!(file.allow_anonymous, Some(true));
        let limits = serve_limits(&args, &file.limits);
        assert_eq!(limits.nexuses, 7, "the flag wins");
        assert_eq!(limits.connections_per_address, 3, "then the file");
        assert_eq!(
            limits.handshakes_in_progress,
            ServerLimits::default().handshakes_in_progress
        );
        assert!(toml::from_str::<ServeFile>("[limits]\nconnections = 3\n").is_err());
    }

    #[test]
    fn a_server_that_would_refuse_everyone_does_not_start() {
        let refused = check_someone_may_connect("0.0.0.0:8415", None, false, "serve");
        assert!(
            matches!(&refused, Err(MoverError::Usage(text)) if text.contains("--allow-anonymous")),
            "{refused:?}"
        );
        assert!(check_someone_may_connect("127.0.0.1:0", None, false, "serve").is_ok());
        assert!(check_someone_may_connect("0.0.0.0:8415", Some(true), false, "serve").is_ok());
        assert!(check_someone_may_connect("0.0.0.0:8415", None, true, "serve").is_ok());
        assert!(check_someone_may_connect("127.0.0.1:0", Some(false), false, "bench").is_err());
    }

    #[test]
    fn partial_ages_parse_with_a_unit_or_as_seconds_or_off() {
        let age = |secs| Ok(AgeLimit(Some(Duration::from_secs(secs))));
        assert_eq!(parse_age("7d"), age(7 * 24 * 3600));
        assert_eq!(parse_age("12h"), age(12 * 3600));
        assert_eq!(parse_age("30m"), age(1800));
        assert_eq!(parse_age("90s"), age(90));
        assert_eq!(parse_age("3600"), age(3600));
        assert_eq!(parse_age("off"), Ok(AgeLimit(None)));
        for bad in ["", "soon", "7w", "-1d", "1.5h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_explicit_window_wins() {
        let rtt = Duration::from_millis(50);
        assert_eq!(window_for(&job(&["--window", "7"]), rtt, 8 * MIB), 7);
        assert_eq!(window_for(&job(&[]), rtt, 8 * MIB), 15);
    }
}
