//! The command line of `hawser serve`.

use std::path::PathBuf;

use hawser_replicate::WriteMode;

use crate::logging::LogFormat;
use crate::values::{AgeLimit, parse_age, parse_write_mode};

/// Arguments of `hawser serve`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Serve as a replication target and source: write what `hawser push` sends under \
--root, send what `hawser pull` asks for from under it",
    long_about = "Serve as a replication target: write what `hawser push` sends, only under \
--root, and send what `hawser pull` asks for, only from under --root. Every file-system \
operation runs beneath the root's directory descriptor, opened once: absolute paths, `..`, \
paths through a symlink and a path named twice in one job are refused with an error naming \
the path, and nothing outside the root is ever written, read or changed. A pull occupies one \
handler thread while it runs; at most handler_threads - 1 (at least 1) run at once, so pushes \
keep a thread. A job may name at most max_job_entries paths and write at most max_open_files \
files at once (config file). Files are written under .hawser-partial/ in their directory \
and renamed into place when complete (files under 1 MiB sent whole or in one block are \
written unnamed and linked under their name); what an unfinished job leaves there waits for a \
--resume and expires after --partial-max-age (swept at start and hourly); \
--clean-partials removes it all. Prints `listening on ADDR` for each address once bound (TCP \
as HOST:PORT; port 0 picks a \
free port), and logs on stderr what it serves with, each job's start and end, and what it \
warns of (RUST_LOG filters the log; info and above by default). SIGHUP re-reads the config \
file (users and limits change at once); SIGTERM or SIGINT drains (new connections refused, \
running requests finish, at most --drain-timeout) and exits with success."
)]
pub struct ServeArgs {
    /// Address to listen on, repeatable: HOST:PORT or tcp://HOST:PORT, unix:///PATH (a
    /// Unix socket), shm://NAME or shm:///PATH (shared memory, set up over a Unix socket
    /// at /dev/shm/hawser-NAME.sock or PATH) [default: 0.0.0.0:8415, or the config file's
    /// `listen`, one address or a list].
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Directory everything is written under [default: the current directory, or the
    /// config file's `root`].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Shard threads to start: each holds the nexuses of the client identities routed
    /// to it, and runs their connections (with --dmp, all nexuses stay on the first).
    ///
    /// Limits (`[limits]`, `--max-*`) apply per shard.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// TOML file of the server's settings; command-line options override it.
    ///
    /// It may hold `listen`, `root`, `shards`, `max_block_size`, `max_jobs`,
    /// `handler_threads`, `congestion`, `write_mode`, `max_job_entries` (paths one job
    /// may name, default 10000000; about 50 bytes of memory each while the job runs),
    /// `max_open_files` (files one job may be writing at once, default 1024),
    /// `partial_max_age` (as --partial-max-age, or a number of seconds),
    /// `receive_budget` (bytes of large frames held at once over all connections, from
    /// their first byte until answered; past it connections are not read; default 512M),
    /// `frame_timeout` (a frame must arrive whole this long after its first byte, e.g.
    /// 60s, the default), `allow_anonymous`, `grace_period_secs`, `tls_cert`, `tls_key`,
    /// `require_tls`, `allow_plain`, `[users.IDENTITY]` tables (the user database: SCRAM-SHA-256 salt,
    /// iterations and keys as `hawser passwd` prints them), a `[peer_uids]` table (identity = uid, see
    /// --allow-peer-uid), a `[client_certs]` table (identity = "sha256", see
    /// --allow-client-cert) and a `[limits]` table (`connections_per_address`,
    /// `handshakes_in_progress`, `nexuses`, `held_creates_per_identity`), a `[dmp]`
    /// table for the message service (see README, "Messages"), `metrics` and
    /// `drain_timeout`.
    ///
    /// SIGHUP reads it again and
    /// applies `[users]`, `[peer_uids]`, `[client_certs]`, `allow_plain`,
    /// `allow_anonymous` and `[limits]` at once; the other keys take a restart (a reload
    /// that changes one logs a warning naming it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accept anonymous clients (push/pull without --identity): anyone who can reach the
    /// address [default: only when every --listen address is local (loopback, unix://,
    /// shm://) and there are no users, or the config file's `allow_anonymous`].
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Let local processes running as user UID authenticate as IDENTITY over unix:// or
    /// shm:// without a password (SASL EXTERNAL: the kernel tells the server the peer's
    /// uid; clients use --external); repeatable [also: a `[peer_uids]` table in the
    /// config file, identity = uid].
    #[arg(long, value_name = "IDENTITY=UID")]
    pub allow_peer_uid: Vec<String>,
    /// Offer TLS 1.3 with this certificate chain (PEM, leaf first); clients connect with
    /// --tls and --ca or --tls-pin (the server logs its certificate's pin at start)
    /// [also: `tls_cert` in the config file].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1) [also: `tls_key`].
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse clients that do not use TLS [also: `require_tls = true`].
    #[arg(long)]
    pub require_tls: bool,
    /// Offer SASL PLAIN over TLS besides SCRAM, for clients that cannot do SCRAM (each
    /// PLAIN attempt costs the server a PBKDF2 of the user's iteration count) [also:
    /// `allow_plain = true`].
    #[arg(long)]
    pub allow_plain: bool,
    /// Also serve DMP message sinks and feeds (`hawser publish`, `hawser consume`) on the
    /// same addresses [also: a `[dmp]` table with `enabled = true`, or declaring sinks,
    /// feeds or bindings; see README, "Messages"].
    #[arg(long)]
    pub dmp: bool,
    /// Also serve DTP transfers (`push`/`pull --transport dtp`: data as UDP datagrams,
    /// paced and hole-repairing, for long lossy links), with the data socket bound at
    /// ADDR (`0.0.0.0:8416`, `[::]:8416`; port 0 picks one).
    ///
    /// Control goes over the nexus,
    /// so the same authentication applies; only the nexus peer's IP is heard on the
    /// data socket. Open ADDR's UDP port in the firewall.
    #[arg(long, value_name = "ADDR")]
    pub dtp: Option<std::net::SocketAddr>,
    /// Most bytes per second one DTP session sends (k, M, G, T suffixes are powers of
    /// 1000; `bit` for bits per second, e.g. `900Mbit`) [default: as fast as the path
    /// allows, found by the probe rate control].
    #[arg(long, value_name = "RATE", value_parser = crate::values::parse_rate)]
    pub dtp_rate: Option<u64>,
    /// An identity that may use the control plane (`hawser stats`, `hawser call`: the
    /// statistics of every nexus, running jobs, cancelling one); repeatable [default: no
    /// identity, only callers on this host (loopback or a Unix socket)].
    #[arg(long = "operator", value_name = "IDENTITY")]
    pub operators: Vec<String>,
    /// Let a client showing the TLS certificate whose SHA-256 (of its DER) this is log in
    /// as IDENTITY without a password (mutual TLS, SASL EXTERNAL; the client uses
    /// --tls-cert, --tls-key and --external); repeatable; needs --tls-cert [also: a
    /// `[client_certs]` table in the config file, identity = "sha256 hex"].
    #[arg(long, value_name = "IDENTITY=SHA256")]
    pub allow_client_cert: Vec<String>,
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
    /// Serve Prometheus metrics over HTTP at ADDR (`GET /metrics`, text format 0.0.4):
    /// totals of the server, counters of each shard, requests, bytes and jobs of each
    /// identity, latency histograms.
    ///
    /// Prints `metrics on ADDR` once bound (port 0 picks
    /// one). Anyone who reaches ADDR reads them: bind it to loopback or a management
    /// network [also: `metrics = "ADDR"` in the config file].
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// On SIGTERM or SIGINT the server refuses new connections, starts no new request and
    /// waits this long at most for the running ones (a block being written is written and
    /// journaled) before it exits with success; seconds, or a number followed by s, m, h
    /// or d; `off` exits at once [default: 30s, or the config file's `drain_timeout`].
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub drain_timeout: Option<AgeLimit>,
    /// How the log on stderr is written: `text` lines or `json` objects, one per event.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
