//! What queues and publishers' receive buffers hold against the broker's budget, and the
//! consumers' side of the queues: taking from a feed, lifting blocks.

use hawser_runtime::direct::ConnId;

use super::{Broker, EntityId};

impl Broker {
    /// Takes up to about `budget` bytes of the feed's queue for its consumer `conn`
    /// (nothing if `conn` no longer consumes it); wakes blocked publishers once it
    /// drained to the low-water mark.
    pub fn take_for(
        &mut self,
        feed: EntityId,
        conn: ConnId,
        budget: usize,
        send: impl FnMut(bytes::Bytes),
    ) -> Option<u64> {
        let f = self.feeds.get_mut(&feed)?;
        if f.consumer != Some(conn) {
            return None;
        }
        let before = f.queue.bytes();
        let n = f.queue.take(budget, send);
        f.counters.delivered += n;
        if f.blocked && f.drained() {
            f.blocked = false;
            self.wakes.append(&mut f.waiting);
        }
        let taken = before - f.queue.bytes();
        self.release_queued(taken);
        Some(n)
    }

    /// `bytes` left the queues: publishers paused on the budget go on once they are under
    /// three quarters of it.
    pub(super) fn release_queued(&mut self, bytes: u64) {
        self.queued = self.queued.saturating_sub(bytes);
        self.wake_if_under_budget();
    }

    pub(super) fn wake_if_under_budget(&mut self) {
        if !self.budget_waiting.is_empty()
            && self.queued + self.receiving <= self.config.max_queued_bytes / 4 * 3
        {
            self.wakes.append(&mut self.budget_waiting);
        }
    }

    /// A publisher's receive buffer grew (`more > 0`) or shrank: publishers' buffers
    /// count against the same budget as the queues.
    pub fn charge_receive(&mut self, more: i64) {
        self.receiving = self.receiving.saturating_add_signed(more);
        if more < 0 {
            self.wake_if_under_budget();
        }
    }

    /// Whether queues and publishers' buffers together hold the budget
    /// (`max_queued_bytes`): a publisher `conn` must not be read then, and is woken once
    /// they drained.
    pub fn over_budget(&mut self, conn: ConnId) -> bool {
        if self.queued + self.receiving < self.config.max_queued_bytes {
            return false;
        }
        if !self.budget_waiting.contains(&conn) {
            self.budget_waiting.push(conn);
        }
        true
    }

    /// Bytes all queues hold.
    pub fn queued_bytes(&self) -> u64 {
        self.queued
    }

    /// Whether a publisher paused on `feeds` may read again (none of them is blocked).
    pub fn unblocked(&self, feeds: &[EntityId]) -> bool {
        feeds
            .iter()
            .all(|id| self.feeds.get(id).is_none_or(|f| !f.blocked))
    }
}
