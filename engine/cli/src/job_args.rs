//! The options of a job, shared by `push`, `pull` and the replicate demo of `bench`, and
//! what they make: the source's configuration, the stall timeout, the log level.

use std::path::PathBuf;

use crate::security::ClientSecurityArgs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hawser_replicate::SourceConfig;
use hawser_replicate::proto::{CompressPolicy, JobOptions, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};
use hawser_replicate::service::session_source_config;
use hawser_runtime::NexusId;
use tracing_subscriber::filter::LevelFilter;

use crate::error::CliError;
use crate::nexus_record;
use crate::values::{parse_compress, parse_rate, parse_size};
use crate::window::auto_window;

/// Options of a job shared by `push`, `pull` and `bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    /// How file data travels: `tcp`, blocks over the trunk's connections (files and
    /// trees), or `dtp`, UDP datagrams paced by a rate control that finds the link's
    /// rate and is not slowed by random loss, holes re-sent until the file is whole
    /// (for a tree, its files of 4 MiB and more go so and the rest as with tcp; the
    /// server needs `serve --dtp`).
    ///
    /// Control goes over the nexus either way.
    #[arg(long, value_name = "TRANSPORT", default_value = "tcp", value_parser = ["tcp", "dtp"])]
    pub transport: String,
    /// Largest UDP payload of a DTP datagram: the path's MTU less 28 bytes of IP and UDP
    /// headers (1472 for Ethernet's 1500, 8972 for jumbo frames, up to 65000 where the
    /// path's MTU allows, as on loopback).
    ///
    /// A larger one is fragmented by IP, and one lost
    /// fragment loses the whole datagram.
    #[arg(long, value_name = "BYTES", default_value_t = 1472, value_parser = clap::value_parser!(u16).range(64..=65000))]
    pub mtu: u16,
    /// Connections in the trunk.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Block size large files are split into (bytes; K, M, G suffixes).
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    pub block_size: u64,
    /// Blocks in flight at most; each costs about --block-size of memory on each side.
    ///
    /// By default it is chosen from the round trip measured when connecting: enough blocks
    /// to keep twice the bandwidth-delay product of a 10 Gbit/s link in flight, at least
    /// 64 MiB (or half a second of --rate) and at most 160 MiB of blocks (8 on a LAN, 15 at
    /// 50 ms with 8 MiB blocks).
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
    /// shrink): `lz4` always, `off` never, `auto` where it makes the transfer faster.
    ///
    /// `auto` compresses data that shrinks from the first block across a long link, and
    /// keeps compressing while the link is the bottleneck (the compressing threads wait
    /// for it); once lz4 is the bottleneck instead (a link faster than lz4's 0.4-0.7 GB/s
    /// per compressing thread) it measures uncompressed and keeps the faster. Across a
    /// short link (loopback, a LAN), for data that does not shrink, or under a `--rate`
    /// cap it starts uncompressed and compresses only if measuring shows it pays. The
    /// report says what auto chose and what it measured.
    #[arg(long, default_value = "auto", value_parser = parse_compress)]
    pub compress: CompressPolicy,
    /// Threads that compress a push's blocks, beside the one that sends them (default:
    /// the host's cores, at most 4; 0 compresses on the sending thread).
    ///
    /// `auto` counts lz4's speed once per thread. A pull compresses on the server's
    /// threads.
    #[arg(long, value_name = "N")]
    pub compress_threads: Option<usize>,
    /// Cap the data rate (token bucket): bytes per second with an optional k, M, G or T
    /// suffix (powers of 1000: `500M` is 500 MB/s), or bits per second ending in `bit`
    /// (`4Gbit`).
    ///
    /// The sender paces itself (for a pull, the server does).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// TCP congestion control of the trunk's connections, e.g. `cubic` or `bbr` (one of
    /// /proc/sys/net/ipv4/tcp_available_congestion_control) [default: the system's].
    ///
    /// On a
    /// lossy path a loss-based one (cubic) slows each connection down, and the trunk's
    /// connections together keep the rate up.
    #[arg(long, value_name = "NAME")]
    pub congestion: Option<String>,
    /// Identity to authenticate as, with a password: from --secret-file, else the
    /// HAWSER_PASSWORD environment variable, else asked on the terminal (without any,
    /// the identity is stated anonymously).
    ///
    /// With --identity, the nexus of the run is
    /// remembered under $XDG_STATE_HOME/hawser/nexus/ (~/.local/state/...) until it ends
    /// cleanly, so that the next run replaces it if this one is killed.
    #[arg(long)]
    pub identity: Option<String>,
    /// File holding the password of --identity (its first line, without the line
    /// ending; spaces are part of it, as for `hawser passwd`).
    ///
    /// It is proven with SCRAM-SHA-256 and never sent (PLAIN, only if asked
    /// for with --sasl-mechanism, sends it inside TLS).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub security: ClientSecurityArgs,
    /// Authenticate as --identity without a password (SASL EXTERNAL): over unix:// and
    /// shm:// by this process's user id, which the kernel tells the server (granted
    /// with serve --allow-peer-uid IDENTITY=UID); over TLS by the client certificate of
    /// --tls-cert (granted with serve --allow-client-cert IDENTITY=SHA256).
    ///
    /// Needs
    /// --identity; not with --secret-file.
    #[arg(long, requires = "identity", conflicts_with = "secret_file")]
    pub external: bool,
    /// Recover and destroy this nexus (as the server's "held" message names it) before
    /// creating the run's own: for a run of the same identity that was killed and whose
    /// nexus the server still keeps.
    ///
    /// Its unfinished work is dropped (a push continues
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
    /// More detail: deleted and would-change paths in the report, and the log's info
    /// events (connecting, the job's figures); -vv adds its debug events (per-connection
    /// counters).
    ///
    /// RUST_LOG, when set, chooses the log's events instead.
    #[arg(short, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write the report as JSON to FILE (iperf3 -J-like: start, intervals, end, latency_ns).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the block round-trip latency distribution to FILE (HdrHistogram .hgrm).
    #[arg(long, value_name = "FILE")]
    pub histogram: Option<PathBuf>,
    /// Draw the block round-trip latency by percentile, on log axes, into FILE (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

impl JobArgs {
    /// The log level when `RUST_LOG` does not say: warnings (none with --quiet), info
    /// events with -v, debug events with -vv.
    pub fn log_level(&self) -> LevelFilter {
        match (self.quiet, self.verbose) {
            (_, 2..) => LevelFilter::DEBUG,
            (_, 1) => LevelFilter::INFO,
            (true, 0) => LevelFilter::ERROR,
            (false, 0) => LevelFilter::WARN,
        }
    }

    /// The job's stall timeout (`--timeout`).
    pub fn stall_timeout(&self) -> Result<Duration, CliError> {
        Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| CliError::Usage("--timeout must be a positive number of seconds".into()))
    }

    /// The configuration of a source sending to `dest`.
    pub fn source_config(&self, dest: String) -> Result<SourceConfig, CliError> {
        if self.block_size < u64::from(MIN_BLOCK_SIZE)
            || self.block_size > u64::from(MAX_BLOCK_SIZE)
        {
            return Err(CliError::Usage(format!(
                "--block-size must be between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE} bytes"
            )));
        }
        let options = JobOptions {
            block_size: self.block_size as u32,
            verify: self.verify,
            fsync: self.fsync,
            delete: self.delete,
            checksum: self.checksum,
            dry_run: self.dry_run,
            resume: self.resume,
            // As with cp, scp and rsync; the source keeps it only for a job of one
            // regular file and a destination without a trailing '/'.
            dest_may_be_file: true,
            compress: self.compress,
        };
        // Unique per run: the process and the time it started the job.
        let job_id = u128::from(std::process::id()) << 64
            | u128::from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
            );
        let mut config = session_source_config(
            options,
            dest,
            self.exclude.clone(),
            self.window
                .unwrap_or_else(|| auto_window(Duration::ZERO, self.block_size as u32, self.rate)),
            job_id,
        );
        if let Some(threads) = self.compress_threads {
            config.compress_threads = threads;
        }
        Ok(config)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct JobOnly {
        #[command(flatten)]
        job: JobArgs,
    }

    /// `args` parsed as job options.
    pub(crate) fn job(args: &[&str]) -> JobArgs {
        use clap::Parser;
        JobOnly::try_parse_from(std::iter::once("job").chain(args.iter().copied()))
            .expect("parses")
            .job
    }

    #[test]
    fn verbosity_and_quiet_choose_the_log_level() {
        assert_eq!(job(&[]).log_level(), LevelFilter::WARN);
        assert_eq!(job(&["-q"]).log_level(), LevelFilter::ERROR);
        assert_eq!(job(&["-v"]).log_level(), LevelFilter::INFO);
        assert_eq!(job(&["-vv"]).log_level(), LevelFilter::DEBUG);
        assert_eq!(job(&["-q", "-v"]).log_level(), LevelFilter::INFO);
    }

    #[test]
    fn documented_values_parse() {
        let j = job(&[
            "--block-size",
            "256K",
            "--rate",
            "4Gbit",
            "--compress",
            "off",
        ]);
        assert_eq!(j.block_size, 256 << 10);
        assert_eq!(j.rate, Some(500_000_000));
        assert_eq!(j.compress, CompressPolicy::Off);
        assert_eq!(job(&[]).block_size, 8 << 20);
        assert!(job(&["--timeout", "0"]).stall_timeout().is_err());
        assert_eq!(
            job(&["--timeout", "1.5"]).stall_timeout().ok(),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn block_sizes_outside_the_protocol_bounds_are_refused() {
        assert!(
            job(&["--block-size", "1"])
                .source_config("d".into())
                .is_err()
        );
        assert!(
            job(&["--block-size", "1G"])
                .source_config("d".into())
                .is_err()
        );
        assert!(
            job(&["--block-size", "1M"])
                .source_config("d".into())
                .is_ok()
        );
    }
}
