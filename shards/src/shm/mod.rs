//! Shared-memory links: a stream transport whose bytes travel through memory two
//! processes (or two shards) map, driven on a shard by the same [`Protocol`] trait as TCP
//! and Unix sockets. The shard side lives in `shard::shm`; this module is the link itself.
//!
//! # Rendezvous
//!
//! A server listens on a Unix stream socket at a path ([`Shards::listen_shm`]); a client
//! connects to it ([`Shards::connect_shm`], [`ShardCtx::connect_shm`]). Over that socket:
//!
//! 1. the client sends its hello (magic, version, the ring size it asks for, a power of
//!    two from 64 KiB to 64 MiB) with its eventfd attached (`SCM_RIGHTS`);
//! 2. the server checks it (magic, version, size, exactly one eventfd), grants the size
//!    capped at its own [`ShmOptions::ring_bytes`], creates the region —
//!    `memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING)`, `ftruncate`, allocated, sealed with
//!    `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL` — writes its header and answers with its
//!    hello, the memfd and its own eventfd attached; or answers with a refusal status;
//! 3. the client checks what it received before mapping anything: exactly two
//!    descriptors, a regular file whose seals include `SHRINK` and `GROW` (a peer able to
//!    shrink the file could make our accesses fault with `SIGBUS`) and exclude write
//!    seals, whose size is the layout's, an eventfd; maps it, checks the header, and
//!    acknowledges.
//!
//! Every refusal is an error that says what was wrong. A handshake has a deadline
//! ([`ShmOptions::handshake_timeout`], 5 s by default) and never runs on a shard: the
//! listener's helper thread accepts and runs each handshake on a thread of its own (at
//! most 16 at once per listener; more clients wait in the listen backlog), and a connect
//! from a shard runs its handshake on a short-lived thread. Either way the established
//! link is posted to the shard as a task.
//!
//! After the handshake the socket stays open as the liveness channel: the shard keeps a
//! receive armed on it, and its end of stream (or an error) means the peer is gone;
//! closing our side shuts it down. The peer's `SO_PEERCRED` is reported to an accepted
//! connection's protocol ([`Protocol::on_peer_credentials`]).
//!
//! # The region
//!
//! A header page (see [`layout`]) with, per direction, a produced and a consumed index on
//! cache lines of their own and a `parked` flag per side; then two byte rings of the
//! granted size (client→server, server→client). The rings carry a plain byte stream, no
//! framing. There is no half-close: a link closes as a whole, and bytes already in the
//! ring when the peer closes are still delivered before the end of stream.
//!
//! # A hostile peer
//!
//! The peer can write any byte of the region at any time. So: each side keeps its own
//! indices privately and only publishes them; it loads the peer's index once per check
//! (acquire) and validates it ([`ring`]); a violation closes that connection with
//! "shared-memory peer corrupted the ring: ..." and nothing else. Bytes are copied out of
//! the ring into the protocol's buffer before the protocol sees them. The header is never
//! read after the handshake (sizes and offsets are private copies). Every access to the
//! region is atomic and lives in [`mapping`], the module's only unsafe code. A peer that
//! stops consuming only stalls its own connection. Ringing a peer's eventfd goes through
//! io_uring, so a peer that makes its eventfd unwritable cannot block the shard either.
//!
//! # Doorbells
//!
//! Each side has an eventfd; the shard keeps a read armed on its own one per connection.
//! While busy a shard polls its links every loop iteration (an atomic load or two each),
//! so the peer rings only when this side is parked: before parking, the shard sets every
//! link's `parked` flag, fences (`SeqCst`), and re-checks each ring (bytes to read, or room
//! while output waits), not parking if there is work; it clears the flags after waking. A
//! writer, after publishing bytes (or a reader after freeing room), fences and rings the
//! peer only if the peer's flag is set, swapping it to 0 first: the mesh
//! [`Doorbell`](crate::mesh) protocol, across processes.
//!
//! [`Protocol`]: crate::Protocol
//! [`Protocol::on_peer_credentials`]: crate::Protocol::on_peer_credentials
//! [`Shards::listen_shm`]: crate::Shards::listen_shm
//! [`Shards::connect_shm`]: crate::Shards::connect_shm
//! [`ShardCtx::connect_shm`]: crate::ShardCtx::connect_shm
//! [`ShmOptions::ring_bytes`]: crate::ShmOptions::ring_bytes
//! [`ShmOptions::handshake_timeout`]: crate::ShmOptions::handshake_timeout

pub(crate) mod acceptor;
pub(crate) mod handshake;
pub(crate) mod layout;
pub(crate) mod mapping;
pub(crate) mod ring;

#[cfg(test)]
mod tests;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{Ordering, fence};

use bytes::BytesMut;

use layout::Role;
use mapping::Mapping;
use ring::{Corruption, Reader, RingPlace, Writer};

/// Rings of a peer's doorbell a connection may have in flight. An honest peer's eventfd
/// takes a write at once; only one that stopped reading its eventfd keeps them waiting,
/// and then more rings would not wake it anyway.
pub(crate) const MAX_RINGS_IN_FLIGHT: u8 = 4;

/// What a handshake hands over: the mapped region and the two doorbells.
#[derive(Debug)]
pub(crate) struct LinkParts {
    pub(crate) map: Mapping,
    pub(crate) role: Role,
    /// Bytes per ring, as agreed (our private copy).
    pub(crate) ring_bytes: usize,
    /// The eventfd the peer rings to wake us; we read it.
    pub(crate) own_doorbell: OwnedFd,
    /// The eventfd we ring to wake the peer.
    pub(crate) peer_doorbell: OwnedFd,
}

/// One established link, seen from one side: the region, our private ends of both rings,
/// and the doorbells. Dropping it unmaps the region and closes the eventfds.
#[derive(Debug)]
pub(crate) struct ShmLink {
    map: Mapping,
    rx: Reader,
    tx: Writer,
    my_parked: usize,
    peer_parked: usize,
    ring_bytes: usize,
    own_doorbell: OwnedFd,
    peer_doorbell: OwnedFd,
}

impl ShmLink {
    pub(crate) fn new(parts: LinkParts) -> ShmLink {
        let LinkParts {
            map,
            role,
            ring_bytes,
            own_doorbell,
            peer_doorbell,
        } = parts;
        assert!(
            layout::region_bytes(ring_bytes) <= map.len(),
            "the region is smaller than its layout"
        );
        let o = role.offsets(ring_bytes);
        let link = ShmLink {
            rx: Reader::new(RingPlace {
                data: o.rx_ring,
                capacity: ring_bytes,
                produced_at: o.rx_produced,
                consumed_at: o.rx_consumed,
            }),
            tx: Writer::new(RingPlace {
                data: o.tx_ring,
                capacity: ring_bytes,
                produced_at: o.tx_produced,
                consumed_at: o.tx_consumed,
            }),
            my_parked: o.my_parked,
            peer_parked: o.peer_parked,
            ring_bytes,
            map,
            own_doorbell,
            peer_doorbell,
        };
        link.set_parked(false);
        link
    }

    /// Bytes per ring.
    pub(crate) fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// The eventfd to keep a read armed on.
    pub(crate) fn own_doorbell(&self) -> RawFd {
        self.own_doorbell.as_raw_fd()
    }

    /// The eventfd to write to wake the peer.
    pub(crate) fn peer_doorbell(&self) -> RawFd {
        self.peer_doorbell.as_raw_fd()
    }

    /// Validated bytes waiting in the receive ring.
    #[inline]
    pub(crate) fn rx_available(&mut self) -> Result<u64, Corruption> {
        self.rx.available(&self.map)
    }

    /// Copies the next `dst.len()` received bytes (validated by
    /// [`rx_available`](Self::rx_available)) into `dst`.
    #[inline]
    pub(crate) fn read(&mut self, dst: &mut [u8]) {
        self.rx.read(&self.map, dst);
    }

    /// Appends the next `n` received bytes to `dst`.
    #[inline]
    pub(crate) fn read_append(&mut self, n: usize, dst: &mut BytesMut) {
        self.rx.read_append(&self.map, n, dst);
    }

    /// Publishes how far we consumed.
    #[inline]
    pub(crate) fn publish_consumed(&self) {
        self.rx.publish(&self.map);
    }

    /// Validated room in the send ring.
    #[inline]
    pub(crate) fn tx_room(&mut self) -> Result<u64, Corruption> {
        self.tx.room(&self.map)
    }

    /// Copies `src` (within the validated room) into the send ring.
    #[inline]
    pub(crate) fn write(&mut self, src: &[u8]) {
        self.tx.write(&self.map, src);
    }

    /// Publishes how far we produced.
    #[inline]
    pub(crate) fn publish_produced(&self) {
        self.tx.publish(&self.map);
    }

    /// Whether the receive ring may hold bytes (one load; unvalidated).
    #[inline]
    pub(crate) fn maybe_readable(&self) -> bool {
        self.rx.maybe_readable(&self.map)
    }

    /// Whether the send ring may have room (at most one load; unvalidated).
    #[inline]
    pub(crate) fn maybe_room(&self) -> bool {
        self.tx.maybe_room(&self.map)
    }

    /// Says whether we are about to park (the peer rings us only then). The caller fences
    /// before re-checking the rings.
    #[inline]
    pub(crate) fn set_parked(&self, parked: bool) {
        self.map.store_flag(self.my_parked, u32::from(parked));
    }

    /// After publishing an index: whether the peer is parked and must be rung. Takes the
    /// request (swaps its flag to 0), so a parked peer is rung once.
    #[inline]
    pub(crate) fn take_peer_wake(&self) -> bool {
        // Pairs with the fence of a parking peer: either it sees what we just published
        // when it re-checks the rings, or we see its flag here.
        fence(Ordering::SeqCst);
        self.map.load_flag(self.peer_parked) != 0 && self.map.swap_flag(self.peer_parked, 0) != 0
    }

    /// The whole region, for tests that play a hostile peer.
    #[cfg(test)]
    pub(crate) fn region(&self) -> &Mapping {
        &self.map
    }
}
