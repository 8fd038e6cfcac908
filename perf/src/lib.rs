//! hawser-perf: hawser's end-to-end performance harness.
//!
//! # The link emulator (`hawser-perf linkem`)
//!
//! The build machines have no `sch_netem`, so the harness carries its own long-fat-network
//! emulator. `hawser-perf linkem` creates two network namespaces (`hawser-a`,
//! `hawser-b`), puts a TUN device `linkem0` in each (`198.18.0.1/30` and `198.18.0.2/30`,
//! the benchmarking range), and forwards the IP packets each side sends to the other in
//! user space — one thread, one io_uring, batched reads, a preallocated packet arena —
//! applying per direction: one-way delay (RTT/2), jitter, a rate cap with a tail-drop
//! queue, random loss and random bit corruption.
//!
//! ```text
//! hawser-perf linkem --rate 10gbit --rtt 50ms --realtime 10 --offload &   # root
//! ip netns exec hawser-b iperf3 -s -D
//! ip netns exec hawser-a iperf3 -c 198.18.0.2 -t 15
//! kill %1                                                  # namespaces removed
//! hawser-perf linkem --cleanup                             # leftovers after a SIGKILL
//! ```
//!
//! The queueing arithmetic is a pure model driven by virtual time ([`linkem::model`]),
//! which is how it is tested. For example a 1 Gbit/s link with 10 ms one-way delay and a
//! 3000-byte queue, offered three 1500-byte packets at once:
//!
//! ```
//! use hawser_perf::linkem::model::{DirectionConfig, DropCause, LinkDirection, Verdict};
//!
//! let config = DirectionConfig {
//!     rate_bits_per_sec: Some(1_000_000_000), // 1500 bytes take 12 µs
//!     queue_limit_bytes: 3000,
//!     ..DirectionConfig::delay_only(10_000_000) // 10 ms
//! };
//! let mut link = LinkDirection::new(config, 42);
//! let release = |v| match v {
//!     Verdict::Forward { release_at_ns, .. } => release_at_ns,
//!     Verdict::Drop(cause) => panic!("dropped: {cause:?}"),
//! };
//! let now = 0;
//! assert_eq!(release(link.on_packet(now, 1500)), 12_000 + 10_000_000);
//! assert_eq!(release(link.on_packet(now, 1500)), 24_000 + 10_000_000);
//! assert_eq!(link.on_packet(now, 1500), Verdict::Drop(DropCause::QueueFull));
//! // Once the first packet has been serialised there is room again.
//! assert_eq!(release(link.on_packet(12_000, 1500)), 36_000 + 10_000_000);
//! ```
//!
//! For throughput runs use `--realtime 10` (SCHED_FIFO forwarder: on a busy machine a
//! preempted forwarder looks like a slower, jittery link) and `--offload` (checksum and
//! segmentation offload through virtio-net headers; note it lets `--corrupt` flips
//! through undetected by TCP). Measured on the 2-core build machine while others were
//! compiling: one iperf3 stream through 10 Gbit/s × 50 ms held 9.6 Gbit/s in steady
//! state with both flags, 7.3 Gbit/s without (`perf/results/linkem-selftest.md`,
//! `scripts/linkem-iperf3.sh`). `scripts/netns.sh` wraps up/exec/down.
//!
//! Jitter never reorders packets: release times are kept monotonic per direction, so a
//! packet drawn late holds back the ones behind it (see [`linkem::model`]).
//!
//! Inside each namespace linkem raises the socket-buffer limits so TCP can fill a
//! 62.5 MB bandwidth-delay product ([`linkem::netns::NAMESPACE_SYSCTLS`]).
//!
//! All of the crate's `unsafe` (TUN ioctl, `setns`, signals, io_uring buffers) is in
//! [`sys`].
//!
//! # Scenarios (`hawser-perf scenario NAME`, `scripts/perf.sh NAME|all`)
//!
//! A scenario runs hawser and its baselines side by side, A/B alternated (each tool once
//! per round, `--runs` rounds, default 5), and writes into `--out` (default
//! `perf/results`): `<scenario>.json` (issue 6's schema: `{scenario, machine: {cores,
//! kernel, cpu}, command, results: [{tool, variant, metric, unit, median, min, max,
//! runs}]}`, `runs` being every run's value in order), `<scenario>.md` (medians, min–max,
//! ratios to the scenario's baseline, the rows it could not measure and why, the load
//! average over the rounds, the command to reproduce) and SVG plots made with `plotters`:
//! throughput over time from per-interval samples and an HdrHistogram-style latency
//! percentile curve (x = `1/(1-p)` on a log axis).
//!
//! | scenario | hawser | baselines |
//! |---|---|---|
//! | `loopback-bulk` | `hawser bench --mode bulk --connections 4` | `iperf3 -P 4`; the plain-socket ceiling (in-crate: one connection, two threads, 1 MiB writes) |
//! | `loopback-rpc` | `hawser bench --mode rpc`, ping-pong and 32 in flight | `sockperf ping-pong --tcp -m 64` (its half round trips doubled) |
//! | `replicate` | `hawser push` to `hawser serve` on loopback | `rsync -a` to an rsync daemon on loopback: one 4 GiB file, 20,000 small files; `xrdcp` to an `xrootd` (the 4 GiB file); `iperf3 -P 8` memory to memory; the O_DIRECT and page-cache write ceilings |
//! | `lfn-10g-50ms` | `hawser push` of one 8 GiB file, 1/4/8 connections | `iperf3 -P 1`, `-P 8`, `xrdcp --streams 8` through linkem 10 Gbit/s × 50 ms (root) |
//! | `lfn-loss` | as above, a 1 GiB file | the same through 1 Gbit/s × 100 ms, 1% loss (root) |
//! | `lfn-1g-100ms` | a DTP push beside one cubic TCP stream (each order), `push --compress off/auto/lz4` of 1 GiB of log text | `iperf3 -P 1`, `-P 8` through 1 Gbit/s × 100 ms, no loss (root) |
//! | `local-transports` | `hawser bench --connect` bulk (4 connections) and rpc ping-pong against one `hawser bench --serve` on TCP, a Unix socket and shared memory; `hawser push` of a 512 MiB file + 2,000 small files over TCP and a Unix socket | the TCP rows |
//! | `tls` | `hawser bench --mode bulk --tls`, `hawser push --tls --tls-pin` (a 1 KiB file: trunk setup; a 4 GiB file through linkem 10 Gbit/s × 50 ms, root; a 1 GiB file on loopback and through linkem) | the same without TLS; `scp` and `rsync -e ssh` to an sshd the scenario starts |
//! | `messaging` | `hawser bench --mode dmp` (publish → sink → feed → consume): max messages/s and latency at 10% load, 64 B and 1 KiB × 1 and 4 publishers | ZeroMQ PUSH/PULL, RabbitMQ (AMQP 0-9-1) and core NATS through `messaging-peer` (`perf/peers/messaging/`, its own workspace), brokers started by the scenario |
//!
//! `replicate` and the linkem scenarios also report each transfer's cost per byte:
//! core-seconds per GB of its client and server processes (from `/proc/PID/stat`,
//! [`scenario::process_cpu`]), side by side with iperf3's in a section of the report.
//!
//! Through linkem the metrics are `link_fraction` (steady-state receiver rate, after the
//! first third of the run, over the link rate) and `time_to_90pct_s` (end of the first
//! interval at 90% of the link rate). A tool that is not built (a hawser command) is
//! reported as "not available" and the baselines still run; a missing baseline is an
//! error naming `scripts/setup.sh`. Tool drivers and their output parsers are in
//! [`scenario::tools`]; the report writers in [`report`].

pub mod linkem;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod sys;
