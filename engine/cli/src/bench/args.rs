//! The command line of `hawser bench`.

use crate::security::ClientSecurityArgs;
use std::path::PathBuf;

use crate::values::parse_size;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The embedded demo: a replication server on loopback, a generated data set pushed
    /// to it and verified byte for byte.
    Replicate,
    /// Small request/response exchanges.
    Rpc,
    /// Large requests.
    Bulk,
    /// The shards alone, no session layer: `--connections` loopback TCP connections,
    /// each streaming one shared 1 MiB body into a byte-counting sink (xxh3 over every
    /// byte with `--digest`), from each shard to the next: the ceiling `--mode bulk` is
    /// measured against.
    Raw,
    /// Messages through a DMP sink and feed on loopback: `--publishers` threads
    /// publishing `--size`-byte bodies (64 by default) to one consumer, as fast as they
    /// go or at `--rate` messages/s in total; messages/s and end-to-end latency.
    Dmp,
    /// A DTP pull on loopback: a generated `--size`-byte file (256 MiB by default) sent
    /// as UDP datagrams from a server in this process to a file here, paced by the probe
    /// rate control; MB/s, datagrams re-sent, and the digests compared.
    Dtp,
}

/// Arguments of `hawser bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Measure on loopback: replicate a generated data set, or the session layer, or the shards",
    long_about = "The loopback demo: without --mode, replicate a generated data set to a server in \
this process, verify it and report; --mode rpc|bulk measures the session layer (over \
loopback or against `hawser bench --serve`), --mode raw the shards alone."
)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value = "replicate")]
    pub mode: Mode,
    /// Measure against a running `hawser bench --serve` at ADDR instead of a loopback
    /// server in this process: HOST:PORT, tcp://HOST:PORT, unix:///PATH, shm://NAME or
    /// shm:///PATH.
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<String>,
    /// Serve the bench exchanges on ADDR until killed (no measurement; repeatable, any
    /// form --connect takes).
    ///
    /// Its clients are anonymous: on an address other machines can reach, give
    /// --allow-anonymous too.
    #[arg(long, value_name = "ADDR", conflicts_with = "connect")]
    pub serve: Vec<String>,
    /// With --serve: accept (anonymous) clients on an address other machines can reach.
    #[arg(long, requires = "serve")]
    pub allow_anonymous: bool,
    /// TLS: with --connect, as push and pull take it (--tls, --ca, --tls-pin); with
    /// --serve or the loopback server, --tls serves with a self-signed certificate made
    /// at start (its pin is printed; loopback clients trust it by the pin).
    #[command(flatten)]
    pub security: ClientSecurityArgs,
    /// Connections in each client's trunk.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Client nexuses measured at once, each keeping `--pipeline` calls in flight:
    /// nexus i's client runs on shard i and its loopback server on the next shard, so
    /// with one nexus per shard every shard both sends and receives (as each host of a
    /// real link does) instead of one shard sending everything.
    #[arg(long, default_value_t = 1)]
    pub nexuses: usize,
    /// Shards in this process: with 2 or more the loopback server runs on shard 1 and the
    /// client on shard 0; with 1 both share shard 0.
    ///
    /// With --serve: the server's shards, each holding the nexuses of the client
    /// identities routed to it.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Seconds to measure (after a short warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Calls in flight (default: 1 for rpc, i.e. ping-pong; 8 for bulk).
    #[arg(long)]
    pub pipeline: Option<usize>,
    /// Request size in bytes, with an optional K, M or G suffix (default: 64 for rpc,
    /// 1 MiB for bulk); for replicate, the data set's size (default 256 MiB).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    /// xxh3 digest on every frame.
    #[arg(long)]
    pub digest: bool,
    /// Offer lz4 compression.
    #[arg(long)]
    pub compress: bool,
    /// Who issues the calls: `shard` starts each next call from the previous one's
    /// completion, on the client's shard (`Client::call_then`: no thread hop, the
    /// thread-per-core form); `thread` calls from an application thread through the
    /// blocking API's pipeline (each answer crosses from the shard to that thread).
    #[arg(long, value_enum, default_value = "shard")]
    pub caller: CallerKind,
    /// With `--caller thread`: microseconds the caller polls for an answer before
    /// blocking (saves a thread wake-up per call; costs a busy core).
    #[arg(long, default_value_t = 0)]
    pub spin_us: u64,
    /// Microseconds each shard looks for work before sleeping in the kernel (saves the
    /// shards' wake-ups between exchanges; keeps their cores busy meanwhile); 0: sleep
    /// at once [default: 50 for rpc, 0 for bulk; with --serve, 0 unless given].
    #[arg(long, value_name = "MICROS")]
    pub busy_poll_us: Option<u64>,
    /// TCP congestion control of every connection, e.g. `cubic` or `bbr` (one of
    /// /proc/sys/net/ipv4/tcp_available_congestion_control) [default: the system's].
    ///
    /// On loopback it matters: it changes how close the session's bulk comes to the
    /// shards' raw streams (see README, "Measured").
    #[arg(long, value_name = "NAME")]
    pub congestion: Option<String>,
    /// With `--mode raw`: each sink sends 40 bytes back per MiB received, the traffic
    /// shape of the session's 1 MiB requests and their answers (data both ways on every
    /// connection), without the session.
    #[arg(long)]
    pub answers: bool,
    /// With `--mode dmp`: publishing threads (each its own direct connection).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// With `--mode dmp`: messages per second in total (paced publishers, for latency
    /// at a given load) [default: as fast as they go].
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = crate::messaging::parse_message_rate)]
    pub rate: Option<f64>,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Write the latency distribution to FILE (HdrHistogram `.hgrm` text).
    #[arg(long, value_name = "FILE")]
    pub histogram: Option<PathBuf>,
    /// Draw the latency by percentile, on log axes, into FILE (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

/// Who issues the bench's calls (see [`BenchArgs::caller`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerKind {
    /// Completion callbacks on the client's shard start the next calls.
    Shard,
    /// An application thread, through the blocking API.
    Thread,
}
