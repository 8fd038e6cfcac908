//! Per-shard counters. The owning shard is the only writer (plain relaxed stores, published
//! once per loop iteration); any thread reads them without locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) recv_ops: AtomicU64,
    pub(crate) send_ops: AtomicU64,
    pub(crate) accepts: AtomicU64,
    pub(crate) accept_pauses: AtomicU64,
    pub(crate) completions: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) parked_ns: AtomicU64,
    pub(crate) busy_polled: AtomicU64,
    pub(crate) mesh_in: AtomicU64,
    pub(crate) mesh_out: AtomicU64,
    pub(crate) mesh_occupancy: AtomicU64,
    pub(crate) pool_free: AtomicU64,
    pub(crate) pool_in_recv_ring: AtomicU64,
    pub(crate) pool_lent: AtomicU64,
    pub(crate) buffers_returned_from_peers: AtomicU64,
    pub(crate) recv_starved: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) file_ops: AtomicU64,
    pub(crate) send_zc: AtomicU64,
    pub(crate) send_zc_copied: AtomicU64,
    pub(crate) shm_connections: AtomicU64,
    pub(crate) shm_refused: AtomicU64,
    pub(crate) shm_corrupted: AtomicU64,
    pub(crate) shm_peer_wakes: AtomicU64,
}

/// A copy of a shard's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Bytes received on connections (sockets and shared-memory rings).
    pub bytes_in: u64,
    /// Bytes sent on connections (sockets and shared-memory rings).
    pub bytes_out: u64,
    /// Receive completions carrying data (and pieces taken from shared-memory rings).
    pub recv_ops: u64,
    /// Send operations completed (and copies into shared-memory rings).
    pub send_ops: u64,
    /// Connections accepted.
    pub accepts: u64,
    /// Times accepting paused because the process or system ran out of file descriptors
    /// (`EMFILE`, `ENFILE`).
    pub accept_pauses: u64,
    /// Completion queue entries processed.
    pub completions: u64,
    /// Times the loop came back from waiting in the kernel.
    pub wakeups: u64,
    /// Nanoseconds spent parked in `submit_and_wait`.
    pub parked_ns: u64,
    /// Times busy polling ([`ShardsConfig::busy_poll`](crate::ShardsConfig::busy_poll))
    /// found work before the loop would have parked.
    pub busy_polled: u64,
    /// Messages received over the SPSC mesh.
    pub mesh_in: u64,
    /// Messages sent over the SPSC mesh.
    pub mesh_out: u64,
    /// Messages waiting in inbound rings at the last iteration.
    pub mesh_occupancy: u64,
    /// Buffers on the pool's free list.
    pub pool_free: u64,
    /// Buffers offered to the kernel for receive.
    pub pool_in_recv_ring: u64,
    /// Buffers out as handles (retained by protocols, lent, or in file/send operations).
    pub pool_lent: u64,
    /// Buffers that came home over the mesh from other shards.
    pub buffers_returned_from_peers: u64,
    /// Times a connection stopped reading because the receive pool ran dry.
    pub recv_starved: u64,
    /// Open connections (shared-memory ones included).
    pub connections: u64,
    /// File operations completed.
    pub file_ops: u64,
    /// `SEND_ZC` operations issued.
    pub send_zc: u64,
    /// `SEND_ZC` operations the kernel completed by copying (always so on loopback).
    pub send_zc_copied: u64,
    /// Open shared-memory connections (also counted in `connections`).
    pub shm_connections: u64,
    /// Shared-memory handshakes a listener of this shard refused or that failed.
    pub shm_refused: u64,
    /// Shared-memory connections closed because the peer corrupted a ring.
    pub shm_corrupted: u64,
    /// Doorbells rung to wake a parked shared-memory peer.
    pub shm_peer_wakes: u64,
}

impl StatsSnapshot {
    /// Average completions handled per wake-up.
    pub fn completions_per_wakeup(&self) -> f64 {
        if self.wakeups == 0 {
            0.0
        } else {
            self.completions as f64 / self.wakeups as f64
        }
    }
}

impl ShardStats {
    /// Reads every counter (relaxed; fields may be from slightly different instants).
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            bytes_in: r(&self.bytes_in),
            bytes_out: r(&self.bytes_out),
            recv_ops: r(&self.recv_ops),
            send_ops: r(&self.send_ops),
            accepts: r(&self.accepts),
            accept_pauses: r(&self.accept_pauses),
            completions: r(&self.completions),
            wakeups: r(&self.wakeups),
            parked_ns: r(&self.parked_ns),
            busy_polled: r(&self.busy_polled),
            mesh_in: r(&self.mesh_in),
            mesh_out: r(&self.mesh_out),
            mesh_occupancy: r(&self.mesh_occupancy),
            pool_free: r(&self.pool_free),
            pool_in_recv_ring: r(&self.pool_in_recv_ring),
            pool_lent: r(&self.pool_lent),
            buffers_returned_from_peers: r(&self.buffers_returned_from_peers),
            recv_starved: r(&self.recv_starved),
            connections: r(&self.connections),
            file_ops: r(&self.file_ops),
            send_zc: r(&self.send_zc),
            send_zc_copied: r(&self.send_zc_copied),
            shm_connections: r(&self.shm_connections),
            shm_refused: r(&self.shm_refused),
            shm_corrupted: r(&self.shm_corrupted),
            shm_peer_wakes: r(&self.shm_peer_wakes),
        }
    }

    /// Publishes a shard-local snapshot (single writer, so plain stores suffice).
    pub(crate) fn publish(&self, s: &StatsSnapshot) {
        let w = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        w(&self.bytes_in, s.bytes_in);
        w(&self.bytes_out, s.bytes_out);
        w(&self.recv_ops, s.recv_ops);
        w(&self.send_ops, s.send_ops);
        w(&self.accepts, s.accepts);
        w(&self.accept_pauses, s.accept_pauses);
        w(&self.completions, s.completions);
        w(&self.wakeups, s.wakeups);
        w(&self.parked_ns, s.parked_ns);
        w(&self.busy_polled, s.busy_polled);
        w(&self.mesh_in, s.mesh_in);
        w(&self.mesh_out, s.mesh_out);
        w(&self.mesh_occupancy, s.mesh_occupancy);
        w(&self.pool_free, s.pool_free);
        w(&self.pool_in_recv_ring, s.pool_in_recv_ring);
        w(&self.pool_lent, s.pool_lent);
        w(
            &self.buffers_returned_from_peers,
            s.buffers_returned_from_peers,
        );
        w(&self.recv_starved, s.recv_starved);
        w(&self.connections, s.connections);
        w(&self.file_ops, s.file_ops);
        w(&self.send_zc, s.send_zc);
        w(&self.send_zc_copied, s.send_zc_copied);
        w(&self.shm_connections, s.shm_connections);
        w(&self.shm_refused, s.shm_refused);
        w(&self.shm_corrupted, s.shm_corrupted);
        w(&self.shm_peer_wakes, s.shm_peer_wakes);
    }
}
