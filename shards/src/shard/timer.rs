//! A shard's timers: one heap of deadlines for connections' protocols, paused listeners
//! and the handler's own timers, waited on through the ring's wait timeout.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::Core;

/// Marks a handler's timer (its token in the low bits).
const APP_TIMER_BIT: u64 = 1 << 63;
/// Marks a listener's resume timer (its index in the low bits).
const LISTENER_TIMER_BIT: u64 = 1 << 62;
/// With [`LISTENER_TIMER_BIT`]: a routed connection's retry (generation and slot in the
/// low bits).
const ROUTE_TIMER_BIT: u64 = 1 << 56;
/// Tokens of the handler's timers stay below this.
pub(super) const APP_TOKEN_LIMIT: u64 = LISTENER_TIMER_BIT;

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct TimerEntry {
    at: Instant,
    /// What is due: a connection (generation and slot), a listener or a handler token.
    key: u64,
}

/// The heap, earliest first.
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl Timers {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Timers {
            heap: BinaryHeap::with_capacity(capacity),
        }
    }

    /// A connection's protocol deadline.
    #[inline]
    pub(super) fn push_conn(&mut self, at: Instant, generation: u32, slot: u32) {
        let key = u64::from(generation) << 32 | u64::from(slot);
        self.heap.push(Reverse(TimerEntry { at, key }));
    }

    /// The end of a listener's pause.
    pub(super) fn push_listener(&mut self, at: Instant, index: u32) {
        let key = LISTENER_TIMER_BIT | u64::from(index);
        self.heap.push(Reverse(TimerEntry { at, key }));
    }

    /// The next peek at a connection a routed listener is placing.
    pub(super) fn push_route(&mut self, at: Instant, generation: u32, slot: u32) {
        let key =
            LISTENER_TIMER_BIT | ROUTE_TIMER_BIT | u64::from(generation) << 32 | u64::from(slot);
        self.heap.push(Reverse(TimerEntry { at, key }));
    }

    /// A handler's timer; `token` is below [`APP_TOKEN_LIMIT`].
    pub(super) fn push_app(&mut self, at: Instant, token: u64) {
        let key = APP_TIMER_BIT | token;
        self.heap.push(Reverse(TimerEntry { at, key }));
    }

    /// When the earliest timer is due.
    #[inline]
    pub(super) fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|t| t.0.at)
    }

    #[inline]
    fn pop_due(&mut self, now: Instant) -> Option<TimerEntry> {
        if self.heap.peek()?.0.at > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }
}

impl Core {
    /// Runs every timer due by the loop's `now`.
    pub(super) fn fire_timers(&mut self) {
        let now = self.now;
        while let Some(entry) = self.timers.pop_due(now) {
            if entry.key & APP_TIMER_BIT != 0 {
                let token = entry.key & !APP_TIMER_BIT;
                self.with_handler(|h, ctx| h.on_timer(ctx, token));
                continue;
            }
            if entry.key & LISTENER_TIMER_BIT != 0 && entry.key & ROUTE_TIMER_BIT != 0 {
                let generation = ((entry.key >> 32) as u32) & super::op::GENERATION_MASK;
                self.on_route_timer(entry.key as u32, generation);
                continue;
            }
            if entry.key & LISTENER_TIMER_BIT != 0 {
                self.resume_accepting(Some((entry.key & !LISTENER_TIMER_BIT) as u32), now);
                continue;
            }
            let slot = entry.key as u32;
            let generation = (entry.key >> 32) as u32;
            let Some(conn) = self.conn_for_cqe(slot, generation) else {
                continue;
            };
            if conn.timer_queued == Some(entry.at) {
                conn.timer_queued = None;
            }
            match conn.deadline {
                Some(at) if at <= now => {
                    conn.deadline = None;
                    conn.proto.handle_timeout(now);
                    self.mark_dirty(slot);
                }
                Some(at) if conn.timer_queued.is_none() => {
                    // The deadline moved later since this entry was queued: follow it.
                    conn.timer_queued = Some(at);
                    self.timers.push_conn(at, generation, slot);
                }
                _ => {}
            }
        }
    }
}
