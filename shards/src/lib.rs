//! # hawser-shards: thread-per-core io_uring shards
//!
//! The bottom of hawser's I/O stack, and a crate that imports nothing of the workspace:
//! `hawser-runtime` runs session endpoints on it, and anything else that speaks bytes over
//! sockets can too.
//!
//! A [`Shards`] instance runs `N` threads (optionally pinned to cores, see
//! [`ShardsConfig::pin`]), each driving its own `io_uring` (the `io-uring` crate, no runtime
//! on top). A shard's loop batches its submissions, processes completions, timers and
//! messages from other shards, and parks in `io_uring_enter` when there is nothing to do.
//! Everything a shard touches is its own:
//!
//! - **connections** (TCP, Unix stream, shared memory) live on one shard for life. Accepts
//!   are multishot; [`Shards::listen_tcp`] hands accepted connections round-robin to the
//!   shards, which balances the few long-lived connections hawser uses exactly
//!   ([`Shards::listen_tcp_reuseport`] lets the kernel's hash spread them instead);
//!   [`Shards::connect_tcp`] places an outbound connection on the shard the caller names.
//!   UDP sockets receive with multishot `recvmsg` and send batched `sendmsg`, with GSO and
//!   GRO as options.
//! - **shared-memory links** ([`Shards::listen_shm`], [`Shards::connect_shm`]) carry a
//!   byte stream through two rings in a sealed memfd the two sides map, for peers on one
//!   host; the rendezvous is a Unix socket (and stays the liveness channel), the
//!   handshakes run on helper threads, a parked side is woken through an eventfd rung
//!   only when it is parked, and a peer that scribbles over the memory closes its own
//!   connection, nothing else. The same [`Protocol`] drives them.
//! - **buffers** come from a per-shard pool registered with the ring (`register_buffers`).
//!   Part of the pool is offered to the kernel as a provided-buffer ring, and every
//!   connection receives with one multishot `recv` that picks buffers from it (a Unix
//!   socket with one single-shot `recv` at a time: a multishot one could miss its end of
//!   stream). A protocol can keep a received buffer (zero-copy), send pool buffers or
//!   shared [`bytes::Bytes`] without copying them, and lend a buffer to another shard:
//!   a [`BufHandle`] goes home to its owner when dropped, wherever that is. When the pool
//!   runs dry a connection stops reading until buffers come back — back-pressure instead
//!   of allocation.
//! - **protocols** are sans-IO state machines behind the [`Protocol`] trait (quinn-proto
//!   style): bytes and `now` in, bytes to send and the next deadline out.
//! - **messages** between shards travel over a mesh of bounded SPSC rings (`rtrb`), moved in
//!   one chunk per peer per loop iteration; a parked shard is woken through an eventfd
//!   doorbell, rung only when it is parked.
//! - **timers** (a heap per shard, waited on with the `io_uring_enter` timeout, microsecond
//!   resolution) drive protocol deadlines and [`ShardHandler::on_timer`].
//! - **files** are opened, read, written (fixed buffers), synced and preallocated through the
//!   ring ([`ShardCtx::open_file`] and friends), `O_DIRECT` optional.
//! - **stats** per shard ([`StatsSnapshot`]) are relaxed atomics written only by their shard
//!   and readable from any thread.
//!
//! ## Example: an echo server
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Instant;
//! use hawser_shards::{Protocol, Received, Shards, ShardsConfig, Transmit};
//!
//! /// Sends back what it receives, then closes when the peer has finished.
//! #[derive(Default)]
//! struct Echo {
//!     unsent: Vec<u8>,
//!     peer_done: bool,
//! }
//!
//! impl Protocol for Echo {
//!     fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
//!         self.unsent.extend_from_slice(&input);
//!     }
//!     fn handle_eof(&mut self, _now: Instant) {
//!         self.peer_done = true;
//!     }
//!     fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
//!         out.write(&self.unsent);
//!         self.unsent.clear();
//!     }
//!     fn wants_close(&self) -> bool {
//!         self.peer_done
//!     }
//! }
//!
//! let shards = Shards::start(ShardsConfig { shards: 2, ..ShardsConfig::default() })?;
//! let addr = shards.listen_tcp("127.0.0.1:0".parse()?, |_shard| Echo::default())?;
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.write_all(b"hello, hawser")?;
//! let mut back = [0u8; 13];
//! client.read_exact(&mut back)?;
//! assert_eq!(&back, b"hello, hawser");
//!
//! drop(client);
//! shards.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Plugging a protocol in
//!
//! Implement [`Protocol`]: `handle_input(now, Received)` gets bytes in place (read them, or
//! `retain()` the buffer), `poll_transmit(now, &mut Transmit)` queues output —
//! [`Transmit::write`] copies a small header, [`Transmit::write_buf`] and
//! [`Transmit::write_bytes`] queue a large body without copying (header and body go out in
//! one vectored `sendmsg`; with [`ShardsConfig::send_zc_threshold`] set, large sends use
//! `SENDMSG_ZC`). `poll_timeout`/`handle_timeout` drive deadlines; `handle_message` receives
//! work injected by the application ([`ShardCtx::send_to_connection`]).
//!
//! With the `demo` feature, the `demo` module holds ready-made protocols (echo, bulk
//! source and sink) and a loopback bulk run.
//!
//! ## Errors
//!
//! Problems come back as [`ShardError`] with a one-line fix: io_uring missing or disabled
//! (`/proc/sys/kernel/io_uring_disabled`), `RLIMIT_MEMLOCK` too small for the registered
//! pool, address already in use, a congestion control the kernel does not offer.

mod config;
mod error;
mod huge_buffer;
mod mapped_file;
mod mesh;
mod pool;
mod protocol;
mod shard;
mod shards;
mod shm;
mod stats;
mod stream_copy;
mod sys;

#[cfg(feature = "demo")]
pub mod demo;

pub use config::{ShardsConfig, ShmOptions, check_congestion_control};
pub use error::{Result, ShardError};
pub use huge_buffer::HugePageBuffer;
pub use mapped_file::{MAX_MAPPED_RANGES, MappedRange};
pub use mesh::{AppMessage, ShardTask};
pub use pool::BufHandle;
pub use protocol::{CloseReason, PeerCredentials, Protocol, Received, Transmit};
pub use shard::{
    ConnId, FileDone, GatherPiece, HandlerFactory, MAX_GATHER_PIECES, NoHandler, OpenOptions,
    ProtocolFactory, ROUTE_PEEK_MAX, Route, Router, ShardCtx, ShardHandler, UdpId, UdpOptions,
    wake_connection,
};
pub use shards::Shards;
pub use stats::{ShardStats, StatsSnapshot};
pub use stream_copy::copy_past_cache;
pub use sys::{open_fd_count, prefer_huge_pages, release_free_memory, reuse_freed_memory};
