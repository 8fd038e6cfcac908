//! [`ShardCtx`]: what tasks and handlers running on a shard may do there.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;

use super::Core;
use super::conn::ConnId;
use super::file::OpenOptions;
use super::listener::ProtocolFactory;
use super::timer::APP_TOKEN_LIMIT;
use super::udp::{GatherPiece, UdpId, UdpOptions};
use crate::mesh::{AppMessage, Envelope, ShardTask};
use crate::pool::BufHandle;
use crate::protocol::Protocol;
use crate::stats::StatsSnapshot;

/// A shard's context, given to tasks and handlers running on it.
pub struct ShardCtx<'a> {
    pub(super) core: &'a mut Core,
}

impl std::fmt::Debug for ShardCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCtx")
            .field("shard", &self.core.id)
            .finish()
    }
}

impl ShardCtx<'_> {
    /// This shard's index.
    #[inline]
    pub fn shard_id(&self) -> usize {
        self.core.id
    }

    /// How many shards run.
    #[inline]
    pub fn shard_count(&self) -> usize {
        self.core.settings.shard_count
    }

    /// The loop's current time.
    #[inline]
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// A free buffer of this shard's pool, or `None` when the pool is exhausted (apply
    /// back-pressure: try again after buffers come home).
    #[inline]
    pub fn alloc_buffer(&mut self) -> Option<BufHandle> {
        self.core.pool.alloc()
    }

    /// Sends a message to shard `to`'s handler (batched into the SPSC ring this iteration).
    #[inline]
    pub fn send_to_shard(&mut self, to: usize, msg: AppMessage) {
        let from = self.core.id;
        self.core.post(to, Envelope::App { from, msg });
    }

    /// Sends a message to a connection's protocol, on whichever shard owns it.
    #[inline]
    pub fn send_to_connection(&mut self, conn: ConnId, msg: AppMessage) {
        self.core.post(conn.shard(), Envelope::ToConn { conn, msg });
    }

    /// Runs `task` on shard `to` (boxed: for control, not per-operation work).
    #[inline]
    pub fn run_on(&mut self, to: usize, task: ShardTask) {
        self.core.post(to, Envelope::Task(task));
    }

    /// Opens a TCP connection from this shard; the protocol sees `on_open` when connected.
    #[inline]
    pub fn connect_tcp(
        &mut self,
        addr: SocketAddr,
        proto: Box<dyn Protocol>,
    ) -> io::Result<ConnId> {
        self.core.connect_tcp(addr, proto)
    }

    /// Opens a Unix stream connection from this shard.
    #[inline]
    pub fn connect_unix(&mut self, path: &Path, proto: Box<dyn Protocol>) -> io::Result<ConnId> {
        self.core.connect_unix(path, proto)
    }

    /// Opens a shared-memory connection from this shard to the listener at `path` (see
    /// [`Shards::listen_shm`](crate::Shards::listen_shm)). The handshake runs on a helper
    /// thread, never on the shard: the protocol sees `on_open` once the link is up, or
    /// `on_close` with [`CloseReason::ConnectFailed`](crate::CloseReason::ConnectFailed)
    /// saying why not.
    #[inline]
    pub fn connect_shm(&mut self, path: &Path, proto: Box<dyn Protocol>) -> io::Result<ConnId> {
        self.core.connect_shm(path, proto)
    }

    /// Adopts a listening Unix socket as a shared-memory listener: a helper thread accepts
    /// on it and runs the handshakes; links come to this shard with `factory`'s protocols.
    pub(crate) fn accept_shm(
        &mut self,
        listen: std::os::fd::OwnedFd,
        factory: ProtocolFactory,
    ) -> io::Result<()> {
        self.core.add_shm_listener(listen, factory)
    }

    /// Adopts a listening socket: accepts on it (multishot) with `factory`'s protocols.
    #[inline]
    pub fn accept_on(&mut self, listen_fd: RawFd, factory: ProtocolFactory) {
        self.core.add_listener(listen_fd, factory, false, None);
    }

    /// Adopts a listening socket as the acceptor of all shards: accepted connections are
    /// handed round-robin to every shard (this one included) over the mesh.
    #[inline]
    pub fn accept_and_spread(&mut self, listen_fd: RawFd, factory: ProtocolFactory) {
        self.core.add_listener(listen_fd, factory, true, None);
    }

    /// Adopts a listening socket whose connections are placed by their first bytes:
    /// `router` says on which shard each opens (see [`Route`](super::Route)).
    #[inline]
    pub fn accept_routed(
        &mut self,
        listen_fd: RawFd,
        factory: ProtocolFactory,
        router: super::Router,
    ) {
        self.core
            .add_listener(listen_fd, factory, false, Some(router));
    }

    /// Adopts an already connected stream socket.
    #[inline]
    pub fn adopt(&mut self, fd: RawFd, proto: Box<dyn Protocol>) -> ConnId {
        self.core.open_conn(fd, proto)
    }

    /// Closes a connection of this shard now (queued bytes may be lost).
    #[inline]
    pub fn close(&mut self, conn: ConnId) {
        self.core.close_conn(conn);
    }

    /// Calls the handler's `on_timer(token)` at `at` (microsecond resolution). `token` must
    /// be below 2^62.
    #[inline]
    pub fn set_timer(&mut self, at: Instant, token: u64) {
        assert!(token < APP_TOKEN_LIMIT, "timer token too large");
        self.core.timers.push_app(at, token);
    }

    /// Opens a file; `on_file` receives the fd as the result.
    #[inline]
    pub fn open_file(&mut self, path: &Path, options: OpenOptions, token: u64) -> io::Result<()> {
        self.core.open_file(path, options, token)
    }

    /// Reads up to `len` bytes at `offset` into `buf` (a fixed-buffer read when `buf` is
    /// from this shard's pool). `on_file` hands the buffer back with its length set.
    #[inline]
    pub fn read_file(&mut self, fd: RawFd, offset: u64, buf: BufHandle, len: usize, token: u64) {
        self.core.read_file(fd, offset, buf, len, token);
    }

    /// Writes `buf`'s valid bytes at `offset` (fixed-buffer write when `buf` is ours).
    #[inline]
    pub fn write_file(&mut self, fd: RawFd, offset: u64, buf: BufHandle, token: u64) {
        self.core.write_file(fd, offset, buf, token);
    }

    /// `fsync` (or `fdatasync` when `data_only`).
    #[inline]
    pub fn fsync_file(&mut self, fd: RawFd, data_only: bool, token: u64) {
        self.core.fsync_file(fd, data_only, token);
    }

    /// `fallocate(fd, mode, offset, len)`.
    #[inline]
    pub fn fallocate_file(&mut self, fd: RawFd, offset: u64, len: u64, mode: i32, token: u64) {
        self.core.fallocate_file(fd, offset, len, mode, token);
    }

    /// Closes a file descriptor through the ring.
    #[inline]
    pub fn close_file(&mut self, fd: RawFd, token: u64) {
        self.core.close_file(fd, token);
    }

    /// Opens a UDP socket bound to `addr` on this shard; datagrams arrive through
    /// [`ShardHandler::on_datagram`](crate::ShardHandler::on_datagram) (multishot recvmsg
    /// into provided buffers).
    #[inline]
    pub fn bind_udp(
        &mut self,
        addr: SocketAddr,
        options: UdpOptions,
    ) -> io::Result<(UdpId, SocketAddr)> {
        self.core.bind_udp(addr, options)
    }

    /// Sends `buf` as one datagram to `to` or, with `segment_size` (GSO), as consecutive
    /// datagrams of that size. Each send is one SQE; all sends queued in one loop iteration
    /// reach the kernel in one `io_uring_enter`. The buffer returns to its pool afterwards.
    #[inline]
    pub fn send_datagram(
        &mut self,
        socket: UdpId,
        to: SocketAddr,
        buf: BufHandle,
        segment_size: Option<u16>,
    ) {
        self.core.send_datagram(socket, to, buf, segment_size);
    }

    /// Sends, as [`send_datagram`](Self::send_datagram) sends one buffer, the bytes that
    /// `pieces` gather in order from `head` (each datagram's own bytes: headers, tags) and
    /// `body` (bytes shared with others, e.g. a mapped file range the kernel copies from
    /// directly). Both are kept until the send completes. Refused (nothing is sent) if a
    /// piece lies outside its buffer or there are more than
    /// [`MAX_GATHER_PIECES`](crate::MAX_GATHER_PIECES).
    #[inline]
    pub fn send_datagram_gathered(
        &mut self,
        socket: UdpId,
        to: SocketAddr,
        head: BufHandle,
        body: Bytes,
        pieces: &[GatherPiece],
        segment_size: Option<u16>,
    ) -> io::Result<()> {
        self.core
            .send_datagram_gathered(socket, to, head, body, pieces, segment_size)
    }

    /// Closes a UDP socket of this shard.
    #[inline]
    pub fn close_udp(&mut self, socket: UdpId) {
        self.core.close_udp(socket);
    }

    /// This shard's counters as of the last loop iteration.
    #[inline]
    pub fn stats(&self) -> StatsSnapshot {
        self.core.stats
    }

    /// Stops this shard: listeners close, connections close, the thread exits.
    #[inline]
    pub fn stop(&mut self) {
        self.core.begin_stop();
    }
}
