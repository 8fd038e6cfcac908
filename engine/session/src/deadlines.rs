//! A deadline queue: when each timer-bearing object of an endpoint (a connection, a
//! nexus) next needs attention, kept in a binary heap so that finding the next deadline
//! and registering a change cost O(log n) however many objects exist.
//!
//! Entries are invalidated lazily. A key keeps its earliest entry; a later deadline adds
//! nothing (the earlier entry fires, the owner finds nothing due and schedules again),
//! an earlier one adds an entry and leaves the old one to be skipped when it comes up.
//! Skipped entries are dropped as soon as they reach the top, so the next deadline is
//! always a live one; when they outnumber the live ones, the heap is rebuilt, so its size
//! stays within twice the live keys plus a constant.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;
use std::time::Instant;

use super::types::IdMap;

/// Stale entries tolerated beyond the live ones before the heap is rebuilt.
const SLACK: usize = 64;

/// Deadlines by key `K`.
#[derive(Debug)]
pub(crate) struct Deadlines<K> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    /// The earliest entry in `heap` of every scheduled key.
    earliest: IdMap<K, Instant>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
            earliest: IdMap::default(),
        }
    }
}

impl<K: Copy + Ord + Hash> Deadlines<K> {
    /// Makes sure `key` comes up no later than `at`.
    pub(crate) fn schedule(&mut self, key: K, at: Instant) {
        if self.earliest.get(&key).is_some_and(|&t| t <= at) {
            return;
        }
        self.earliest.insert(key, at);
        self.heap.push(Reverse((at, key)));
        if self.heap.len() > 2 * self.earliest.len() + SLACK {
            self.rebuild();
        }
    }

    /// `key` needs no more attention (its object is gone).
    pub(crate) fn forget(&mut self, key: K) {
        if self.earliest.remove(&key).is_some() {
            crate::types::shrink_if_sparse(&mut self.earliest);
            self.drop_stale_top();
        }
    }

    /// Rebuilds the heap from the live entries (dropping the skipped ones and, after a
    /// burst, the room they took).
    fn rebuild(&mut self) {
        self.heap = self
            .earliest
            .iter()
            .map(|(&key, &at)| Reverse((at, key)))
            .collect();
    }

    /// The earliest deadline of a scheduled key.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops skipped entries off the top, so that [`next`](Self::next) is a live one.
    fn drop_stale_top(&mut self) {
        while let Some(&Reverse((at, key))) = self.heap.peek() {
            if self.earliest.get(&key) == Some(&at) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Moves the keys due at `now` into `due`, each once, earliest first; they are no
    /// longer scheduled.
    pub(crate) fn take_due(&mut self, now: Instant, due: &mut Vec<K>) {
        while let Some(&Reverse((at, key))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.earliest.get(&key) == Some(&at) {
                self.earliest.remove(&key);
                due.push(key);
            }
        }
        self.drop_stale_top();
        crate::types::shrink_if_sparse(&mut self.earliest);
        if self.heap.capacity() > 256 && self.heap.len() * 4 < self.heap.capacity() {
            self.heap.shrink_to((self.heap.len() * 2).max(256));
        }
    }

    /// Entries in the heap, skipped ones included (for bounds checks).
    pub(crate) fn entries(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn keys_come_up_once_at_their_earliest_deadline() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = Deadlines::default();
        d.schedule(1u64, ms(10));
        d.schedule(1, ms(30)); // later: nothing added
        d.schedule(2, ms(20));
        d.schedule(2, ms(5)); // earlier: the 20 ms entry goes stale
        d.schedule(3, ms(1));
        d.forget(3);
        assert_eq!(
            d.next(),
            Some(ms(5)),
            "a forgotten key's entry is never next"
        );
        let mut due = Vec::new();
        d.take_due(ms(25), &mut due);
        assert_eq!(due, vec![2, 1]);
        d.take_due(ms(100), &mut due);
        assert_eq!(due, vec![2, 1], "stale and forgotten entries are skipped");
        assert_eq!(d.next(), None);
    }

    /// However often deadlines move earlier, the heap stays within twice the live keys
    /// plus the slack.
    #[test]
    fn stale_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        for round in 0..10_000u64 {
            for key in 0..10u64 {
                d.schedule(key, t0 + Duration::from_secs(1_000_000 - round));
            }
            assert!(d.entries() <= 2 * 10 + SLACK + 1, "{}", d.entries());
        }
        let mut due = Vec::new();
        d.take_due(t0 + Duration::from_secs(2_000_000), &mut due);
        assert_eq!(due.len(), 10);
    }
}
