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

pub mod linkem;
pub mod report;
pub mod scenario;
pub mod sys;
