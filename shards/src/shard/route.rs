//! Placing an accepted connection by its first bytes: a routed listener waits until the
//! connection is readable, peeks at what the peer sent (nothing is consumed) and asks
//! its [`Router`] which shard the connection belongs on; the connection then opens there
//! and reads those bytes as if it had been accepted there.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Core;
use super::listener::ProtocolFactory;
use super::op::{OpKind, user_data};
use crate::mesh::Envelope;
use crate::sys;

/// Where a routed connection goes, by the bytes it sent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To this shard (taken modulo the shard count).
    To(usize),
    /// To any shard (round-robin): the bytes say nothing about placement.
    Any,
    /// Not enough bytes yet to tell.
    NeedMore,
}

/// Decides a connection's shard from up to [`ROUTE_PEEK_MAX`] bytes it sent first.
pub type Router = Arc<dyn Fn(&[u8]) -> Route + Send + Sync>;

/// Bytes peeked at most.
pub const ROUTE_PEEK_MAX: usize = 64;
/// How long a connection may take to send enough bytes; then it goes to any shard,
/// whose protocol applies its own timeouts.
const ROUTE_WAIT: Duration = Duration::from_secs(5);
/// The pause before peeking again at a connection that sent part of what is needed (a
/// readiness poll would fire at once on the bytes already there).
const ROUTE_RETRY: Duration = Duration::from_millis(2);

/// An accepted connection waiting to be placed.
pub(super) struct PendingRoute {
    fd: OwnedFd,
    factory: ProtocolFactory,
    router: Router,
    deadline: Instant,
    generation: u32,
}

impl Core {
    /// Starts placing the accepted connection `fd`.
    pub(super) fn start_route(&mut self, fd: OwnedFd, factory: ProtocolFactory, router: Router) {
        let slot = match self.free_routes.pop() {
            Some(slot) => slot,
            None => {
                self.routes.push(None);
                (self.routes.len() - 1) as u32
            }
        };
        self.route_generation = self.route_generation.wrapping_add(1) & super::op::GENERATION_MASK;
        let generation = self.route_generation;
        let raw = fd.as_raw_fd();
        let deadline = self.now + ROUTE_WAIT;
        self.routes[slot as usize] = Some(PendingRoute {
            fd,
            factory,
            router,
            deadline,
            generation,
        });
        self.ring
            .poll_readable(raw, user_data(OpKind::RoutePoll, generation, slot));
        // A peer that sends nothing is placed anyway then: silent connections never pile
        // up here (its protocol's own timeouts close it where it goes).
        self.timers.push_route(deadline, generation, slot);
    }

    /// The connection in `slot` became readable (or its poll ended).
    pub(super) fn on_route_poll(&mut self, slot: u32, generation: u32, res: i32) {
        if res < 0 || self.stopping {
            // Dropping the fd closes it.
            drop(self.take_route(slot, generation));
            return;
        }
        self.try_route(slot, generation);
    }

    /// The retry timer or the deadline of the connection in `slot` fired (its readiness
    /// poll may still be armed: its completion then finds the slot moved on).
    pub(super) fn on_route_timer(&mut self, slot: u32, generation: u32) {
        self.try_route(slot, generation);
    }

    /// Peeks at the connection in `slot` (if it is still the one of `generation`) and
    /// places it, or peeks again shortly if its first bytes do not tell yet.
    fn try_route(&mut self, slot: u32, generation: u32) {
        let now = self.now;
        let Some(pending) = self.pending_route(slot, generation) else {
            return;
        };
        let mut first = [0u8; ROUTE_PEEK_MAX];
        let route = match sys::recv_peek(pending.fd.as_raw_fd(), &mut first) {
            // The peer closed or failed: its protocol will see that wherever it goes.
            Ok(0) => Route::Any,
            Ok(n) => (pending.router)(&first[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Route::NeedMore,
            Err(_) => Route::Any,
        };
        let shard = match route {
            Route::NeedMore if now < pending.deadline => {
                self.timers.push_route(now + ROUTE_RETRY, generation, slot);
                return;
            }
            Route::To(shard) => shard % self.settings.shard_count,
            Route::NeedMore | Route::Any => {
                let shard = self.next_route_target;
                self.next_route_target = (shard + 1) % self.settings.shard_count;
                shard
            }
        };
        if let Some(pending) = self.take_route(slot, generation) {
            self.place(shard, pending);
        }
    }

    fn pending_route(&self, slot: u32, generation: u32) -> Option<&PendingRoute> {
        self.routes
            .get(slot as usize)?
            .as_ref()
            .filter(|p| p.generation == generation)
    }

    fn take_route(&mut self, slot: u32, generation: u32) -> Option<PendingRoute> {
        self.pending_route(slot, generation)?;
        let pending = self.routes[slot as usize].take();
        self.free_routes.push(slot);
        pending
    }

    fn place(&mut self, shard: usize, pending: PendingRoute) {
        let PendingRoute { fd, factory, .. } = pending;
        if shard == self.id {
            let proto = factory(self.id);
            self.stats.accepts += 1;
            self.open_conn(fd.into_raw_fd(), proto);
        } else {
            self.post(shard, Envelope::Adopt { fd, factory });
        }
    }
}
