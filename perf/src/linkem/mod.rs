//! `hawser-perf linkem`: a user-space long-fat-network emulator between two network
//! namespaces it creates. See the crate documentation for the overview.

pub mod forwarder;
pub mod model;
pub mod netns;
pub mod rng;
pub mod units;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use forwarder::{Forwarder, ForwarderConfig, LinkemReport, SMALL_SLOT_BYTES};
use model::{DirectionConfig, LinkDirection, bdp_bytes};
use netns::Side;
use units::{QueueSize, parse_duration, parse_probability, parse_queue_size, parse_rate};

/// Options of `hawser-perf linkem`. Every impairment applies to both directions.
#[derive(Debug, Clone, Args)]
pub struct LinkemOptions {
    /// Namespace of side a (the sender in the usual setup).
    #[arg(long, default_value = "hawser-a")]
    pub ns_a: String,
    /// Namespace of side b.
    #[arg(long, default_value = "hawser-b")]
    pub ns_b: String,
    /// Address of side a, with prefix (benchmarking range 198.18.0.0/15).
    #[arg(long, default_value = "198.18.0.1/30")]
    pub addr_a: String,
    /// Address of side b, with prefix.
    #[arg(long, default_value = "198.18.0.2/30")]
    pub addr_b: String,
    /// Name of the TUN interface inside each namespace.
    #[arg(long, default_value = "linkem0")]
    pub interface: String,
    /// MTU of both TUNs. Large MTUs mean fewer packets per byte: the user-space hop costs
    /// per packet, so 65000 is what lets it reach 10 Gbit/s.
    #[arg(long, default_value_t = 65000)]
    pub mtu: u32,
    /// Round-trip time; each direction delays by half of it (e.g. `50ms`).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub rtt: Duration,
    /// Jitter: uniform ± this much on each direction's delay; never reorders.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub jitter: Duration,
    /// Checksum and segmentation offload through a virtio-net header on both TUNs: the
    /// stacks skip checksums and hand over 64 KiB TCP segments even with a small MTU, which
    /// roughly halves the kernel work per byte. Caveat: a bit flipped by `--corrupt` is
    /// then not caught by TCP/UDP checksums (no one verifies them, as behind a NIC that
    /// computes them) and reaches the application — a test of end-to-end digests; without
    /// offload the receiver's checksum drops corrupted packets as on a real link.
    #[arg(long)]
    pub offload: bool,
    /// Rate cap per direction (e.g. `10gbit`, `500mbit`); unlimited if absent.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// Queue in front of the rate cap: bytes (`64mb`) or a BDP multiple (`1bdp`).
    #[arg(long, default_value = "1bdp", value_parser = parse_queue_size)]
    pub queue: QueueSize,
    /// Random loss probability per packet (`0.01` or `1%`).
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub loss: f64,
    /// Probability per packet of flipping one random bit.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    pub corrupt: f64,
    /// Seed of the random decisions (direction b->a uses seed + 1).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print counters this often (`0` for only at exit).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub report_interval: Duration,
    /// Print reports as JSON lines on stdout instead of text on stderr.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (e.g. `30s`); runs until SIGINT/SIGTERM otherwise.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write this file (containing the pid) once the link is up; removed at exit.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Arena per direction in MiB for full-size packets, plus a third more for small
    /// ones (default: sized from rate × delay + queue).
    #[arg(long)]
    pub arena_mb: Option<u64>,
    /// Reads kept posted on each TUN. Every posted read is woken by each arriving packet
    /// (all but one re-arm), so a few is enough: at 0 ms RTT one stream measured 13.4
    /// Gbit/s with 1, 9.8 with 8 and 11.7 with 64 (noisy, shared machine); 1 vs 4 at
    /// 50 ms RTT was within the noise.
    #[arg(long, default_value_t = 4)]
    pub reads_in_flight: usize,
    /// Run the forwarder under SCHED_FIFO at this priority (e.g. 10). On a busy machine
    /// preemption of the forwarder shows up as extra delay and lost throughput (measured:
    /// 3.8 vs 8.3 Gbit/s for one iperf3 stream at 10 Gbit/s × 50 ms with load 6 on 2 cores).
    #[arg(long, value_name = "PRIORITY")]
    pub realtime: Option<i32>,
    /// Remove leftover namespaces (`--ns-a`, `--ns-b`) and exit.
    #[arg(long)]
    pub cleanup: bool,
}

impl LinkemOptions {
    /// The model configuration of one direction.
    pub fn direction_config(&self) -> DirectionConfig {
        let one_way = (self.rtt / 2).as_nanos() as u64;
        let bdp = self
            .rate
            .map_or(0, |rate| bdp_bytes(rate, self.rtt.as_nanos() as u64));
        DirectionConfig {
            one_way_delay_ns: one_way,
            jitter_ns: self.jitter.as_nanos() as u64,
            rate_bits_per_sec: self.rate,
            queue_limit_bytes: self.queue.bytes(bdp).max(u64::from(self.mtu)),
            loss_probability: self.loss,
            corrupt_probability: self.corrupt,
        }
    }

    /// Slot counts per direction: enough for everything the model can hold in flight —
    /// rate × (delay + jitter) on the wire plus a full queue — with a quarter spare.
    /// Without a rate cap the wire is assumed to carry at most 20 Gbit/s (TCP bursts above
    /// its average rate).
    pub fn forwarder_config(&self) -> ForwarderConfig {
        let config = self.direction_config();
        let assumed_rate = config.rate_bits_per_sec.unwrap_or(20_000_000_000);
        let wire_ns = config.one_way_delay_ns + config.jitter_ns;
        let queue = if config.rate_bits_per_sec.is_some() {
            config.queue_limit_bytes
        } else {
            0
        };
        let budget = match self.arena_mb {
            Some(mb) => mb << 20,
            None => (bdp_bytes(assumed_rate, wire_ns) + queue) / 4 * 5 + (16 << 20),
        };
        let capacity = if self.offload {
            u64::from(self.mtu.max(65_536))
        } else {
            u64::from(self.mtu.max(SMALL_SLOT_BYTES))
        };
        // The budget in full-size packets, plus a third more for small ones (ACKs,
        // datagrams) so a mix never starves the big packets.
        let big_slots = (budget / capacity) as usize + self.reads_in_flight;
        let small_slots = (budget / 3 / u64::from(SMALL_SLOT_BYTES)) as usize;
        ForwarderConfig {
            mtu: self.mtu,
            packet_header_bytes: if self.offload {
                crate::sys::VNET_HEADER_BYTES as u32
            } else {
                0
            },
            big_slots,
            small_slots,
            reads_in_flight: self.reads_in_flight,
            report_interval: (!self.report_interval.is_zero()).then_some(self.report_interval),
            run_for: self.duration,
        }
    }
}

fn emit(report: &LinkemReport, json: bool) {
    if json {
        let mut stdout = std::io::stdout().lock();
        if let Ok(line) = serde_json::to_string(report) {
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    } else {
        eprintln!("{}", report.human());
    }
}

/// Runs `hawser-perf linkem` with these options: sets up, forwards until interrupted
/// (or `--duration`), tears down. Returns the final report.
pub fn run(options: &LinkemOptions) -> Result<Option<LinkemReport>> {
    if options.cleanup {
        let removed = netns::remove_namespaces(&[&options.ns_a, &options.ns_b])?;
        eprintln!("linkem: removed namespaces {removed:?}");
        return Ok(None);
    }
    // Install first so an interrupt during setup still reaches the teardown below.
    let stop = crate::sys::install_stop_handler().context("installing signal handlers")?;
    let side_a = Side {
        namespace: options.ns_a.clone(),
        address: options.addr_a.clone(),
    };
    let side_b = Side {
        namespace: options.ns_b.clone(),
        address: options.addr_b.clone(),
    };
    let (namespaces, [tun_a, tun_b]) = netns::create(
        &side_a,
        &side_b,
        &options.interface,
        options.mtu,
        options.offload,
    )?;
    let direction = options.direction_config();
    let models = [
        LinkDirection::new(direction.clone(), options.seed),
        LinkDirection::new(direction.clone(), options.seed.wrapping_add(1)),
    ];
    let forwarder_config = options.forwarder_config();
    let mut forwarder = Forwarder::new(
        tun_a.as_raw_fd(),
        tun_b.as_raw_fd(),
        models,
        forwarder_config.clone(),
    )?;
    eprintln!(
        "linkem: up: {} {} <-> {} {} on {} (mtu {}), rtt {:?} jitter {:?}, rate {}, queue {} B, \
         loss {}, corrupt {}, offload {}; arena {} big + {} small slots per direction",
        side_a.namespace,
        side_a.address,
        side_b.namespace,
        side_b.address,
        options.interface,
        options.mtu,
        options.rtt,
        options.jitter,
        options
            .rate
            .map_or("unlimited".to_owned(), |r| format!("{r} bit/s")),
        direction.queue_limit_bytes,
        options.loss,
        options.corrupt,
        options.offload,
        forwarder_config.big_slots,
        forwarder_config.small_slots,
    );
    if let Some(priority) = options.realtime {
        crate::sys::set_realtime_priority(priority)
            .with_context(|| format!("SCHED_FIFO priority {priority}"))?;
    }
    if let Some(path) = &options.ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let outcome = forwarder.run(stop, |report| emit(report, options.json));
    drop(forwarder);
    drop(tun_a);
    drop(tun_b);
    let teardown = namespaces.remove();
    if let Some(path) = &options.ready_file {
        let _ = std::fs::remove_file(path);
    }
    let report = outcome?;
    emit(&report, options.json);
    teardown.context("removing namespaces")?;
    Ok(Some(report))
}
