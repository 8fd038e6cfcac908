//! The loop a shard thread runs: drain inputs, fire timers, poll the shared-memory rings,
//! flush connections, submit everything in one go, park in the kernel (or busy-poll)
//! until there is work, and dispatch the completions; then, once stopped, drain and exit.

use std::time::{Duration, Instant};

use super::Core;
use super::op::{OpKind, decode};
use crate::pool::RETURNS;
use crate::protocol::CloseReason;

/// How long a shard parks before retrying messages that did not fit a full SPSC ring.
const OUTBOX_RETRY: Duration = Duration::from_micros(20);
/// How long a stopping shard waits for the kernel to finish its operations.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Core {
    pub(super) fn run(&mut self) {
        self.with_handler(|h, ctx| h.on_start(ctx));
        loop {
            self.now = Instant::now();
            self.drain_inputs();
            self.fire_timers();
            self.poll_shm();
            self.flush_dirty();
            self.rearm_starved();
            self.pool.publish();
            self.mesh.flush();
            self.publish_stats();
            if self.stopping
                && (self.drained() || self.stop_deadline.is_some_and(|d| self.now >= d))
                && !self.mesh.has_outbound()
            {
                break;
            }
            self.wait();
            self.reap();
        }
        // Whatever the kernel did not release within the grace period is closed when the
        // core is dropped (see its `Drop`), after which the ring goes first.
        self.publish_stats();
        RETURNS.with(|r| r.borrow_mut().shard = usize::MAX);
    }

    fn flush_dirty(&mut self) {
        self.take_wakes();
        // Sending may make more connections dirty; those wait for the next iteration.
        std::mem::swap(&mut self.dirty, &mut self.dirty_spare);
        for i in 0..self.dirty_spare.len() {
            let slot = self.dirty_spare[i];
            self.flush_conn(slot);
        }
        self.dirty_spare.clear();
    }

    /// Submits without waiting. A submit runs sends inline (a UDP burst through the whole
    /// stack) and can take milliseconds: the completions reaped next see the time after it,
    /// or a peer's echo would be timed as arriving before it did.
    fn submit_without_parking(&mut self) {
        let _ = self.ring.submit();
        self.now = Instant::now();
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        self.stats.completions += cqes.len() as u64;
        for &(ud, res, flags) in &cqes {
            self.complete(ud, res, flags);
        }
        cqes.clear();
        self.cqes = cqes;
    }

    #[inline]
    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        let (kind, generation, slot) = decode(ud);
        match kind {
            k if k == OpKind::Recv as u8 => self.on_recv(slot, generation, res, flags),
            k if k == OpKind::Send as u8 => self.on_send(slot, generation, res, flags),
            k if k == OpKind::Connect as u8 => self.on_connect(slot, generation, res),
            k if k == OpKind::Accept as u8 => self.on_accept(slot, res, flags),
            k if k == OpKind::Doorbell as u8 && (!self.stopping || res >= 0) => self.arm_doorbell(),
            k if k == OpKind::File as u8 => self.on_file(slot, res),
            k if k == OpKind::UdpRecv as u8 => self.on_udp_recv(slot, res, flags),
            k if k == OpKind::UdpSend as u8 => self.on_udp_send(slot, res),
            k if k == OpKind::ShmSocket as u8 => self.on_shm_socket(slot, generation, res),
            k if k == OpKind::ShmDoorbell as u8 => self.on_shm_doorbell(slot, generation, res),
            k if k == OpKind::ShmRing as u8 => self.on_shm_ring(slot, generation),
            k if k == OpKind::RoutePoll as u8 => self.on_route_poll(slot, generation, res),
            _ => {}
        }
    }

    /// Starts stopping: listeners, connections and UDP sockets close; the loop ends once
    /// the kernel holds nothing more of them, or after a grace period.
    pub(super) fn begin_stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.stop_deadline = Some(self.now + STOP_GRACE);
        self.close_listeners();
        self.stop_shm_acceptors();
        for slot in 0..self.conns.len() as u32 {
            self.request_close(slot, CloseReason::Shutdown);
        }
        self.close_all_udp();
    }

    fn drained(&self) -> bool {
        self.conns.iter().all(Option::is_none)
            && self.listeners.iter().all(Option::is_none)
            && self.files.iter().all(Option::is_none)
            && self.udp.iter().all(Option::is_none)
            && self.free_udp_sends.len() == self.udp_sends.len()
            && self.shm_acceptors_done()
    }

    fn has_pending_work(&self) -> bool {
        !self.dirty.is_empty()
            || Self::wakes_pending()
            || !self.local_inbox.is_empty()
            || self.timers.next_at().is_some_and(|at| at <= self.now)
            || RETURNS.with(|r| {
                r.try_borrow()
                    .is_ok_and(|r| !r.local.is_empty() || !r.remote.is_empty())
            })
    }

    /// Whether other threads left work in shared memory: the mesh, commands, buffers.
    fn has_shared_input(&self) -> bool {
        self.mesh.has_inbound()
            || !self.commands.is_empty()
            || !self.pool.shared.foreign_returns.is_empty()
    }

    pub(super) fn publish_stats(&mut self) {
        self.stats.pool_free = self.pool.free_count() as u64;
        self.stats.pool_in_recv_ring = u64::from(self.pool.in_ring());
        self.stats.pool_lent = u64::from(
            self.pool
                .shared
                .handles_out
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        self.stats_shared.publish(&self.stats);
    }

    /// Looks for work without sleeping for up to `spin`: completions, task work the
    /// kernel holds for this ring, messages, commands, shared-memory rings. True if
    /// something came.
    fn busy_poll(&mut self, spin: Duration) -> bool {
        let _ = self.ring.submit();
        let until = Instant::now() + spin;
        loop {
            if !self.ring.completion().is_empty() {
                return true;
            }
            if self.ring.has_task_work() {
                // Entering the kernel runs the pending task work: its completions land.
                let _ = self.ring.submit();
                return true;
            }
            if self.has_shared_input() || self.shm_has_work() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Submits what the iteration queued and, unless work is already waiting, parks in
    /// the kernel until a completion, the doorbell or the next timer.
    ///
    /// Parking raises the mesh doorbell's flag and every shared-memory connection's
    /// `parked` flag, fences, and looks once more at what other threads and processes may
    /// have left (the mesh, commands, the rings): a producer publishes and then checks the
    /// flag, so either it sees the flag and rings, or we see its work here.
    fn wait(&mut self) {
        if self.has_pending_work() {
            self.submit_without_parking();
            return;
        }
        if let Some(spin) = self.settings.busy_poll
            && !self.stopping
            && self.busy_poll(spin)
        {
            self.now = Instant::now();
            self.stats.busy_polled += 1;
            return;
        }
        self.shm_set_parked(true);
        // Its fence also orders the shared-memory flags before the re-check.
        self.doorbell.begin_park();
        if self.has_shared_input() || self.shm_has_work() {
            self.doorbell.end_park();
            self.shm_set_parked(false);
            self.submit_without_parking();
            return;
        }
        let next = match (self.timers.next_at(), self.stop_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Messages waiting for room in a full ring: retry soon, without spinning.
        let next = if self.mesh.has_outbound() {
            let retry = self.now + OUTBOX_RETRY;
            Some(next.map_or(retry, |n| n.min(retry)))
        } else {
            next
        };
        let started = Instant::now();
        let result = self
            .ring
            .submit_and_wait(next.map(|at| at.saturating_duration_since(started)));
        self.doorbell.end_park();
        self.shm_set_parked(false);
        // The completions about to be reaped happened while parked: they must see the
        // time now, not the time before the park (a connection accepted after an idle
        // minute would otherwise start its handshake timer a minute in the past).
        self.now = Instant::now();
        if let Err(e) = result
            && !matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY)
            )
        {
            tracing::warn!(shard = self.id, error = %e, "io_uring wait failed");
        }
        self.stats.wakeups += 1;
        self.stats.parked_ns += started.elapsed().as_nanos() as u64;
    }
}
