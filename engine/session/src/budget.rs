//! The server-wide receive budget: how many bytes of large frames a server may hold
//! between the first byte of a frame and the answer to it.
//!
//! A frame larger than [`BUDGETED_FRAME_MIN`] is read only once the whole frame's size is
//! reserved here; a connection that cannot reserve is not read (TCP back-pressure) until
//! the budget has room. The reservation lives until the frame is complete, or, for a
//! request the server executes, until it is answered (including while an ordered request
//! waits for its predecessors). So what peers send can make a server hold at most the
//! budget in large frames, however many connections they open. Smaller frames fit a
//! connection's own receive buffer, bounded by the connection limits.
//!
//! The budget is shared (`Arc`) by every endpoint of a server, whatever shard it runs on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Frames longer than this (header, payload and digest) need a reservation: one
/// connection's ordinary receive buffer holds smaller ones.
pub const BUDGETED_FRAME_MIN: usize = 64 * 1024;

/// A cap on the bytes of large frames being received or waiting for their answer.
#[derive(Debug)]
pub struct ReceiveBudget {
    limit: usize,
    used: AtomicUsize,
}

impl ReceiveBudget {
    /// A budget of `limit` bytes (at least one frame of [`BUDGETED_FRAME_MIN`]).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(ReceiveBudget {
            limit: limit.max(BUDGETED_FRAME_MIN),
            used: AtomicUsize::new(0),
        })
    }

    /// The cap, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Whether `bytes` would fit now.
    pub fn fits(&self, bytes: usize) -> bool {
        self.used().saturating_add(bytes) <= self.limit
    }

    /// Reserves `bytes` if they fit. A frame larger than the whole budget gets a
    /// reservation only while nothing else is reserved, so no frame size can stall
    /// forever and the budget is overrun by at most that one frame.
    pub(crate) fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let fits = used.saturating_add(bytes) <= self.limit || used == 0;
            if !fits {
                return None;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Reservation {
                        budget: Arc::clone(self),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }
}

/// Bytes taken from a [`ReceiveBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ReceiveBudget>,
    bytes: usize,
}

impl Reservation {
    /// The bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_limit_and_come_back_when_dropped() {
        let budget = ReceiveBudget::new(1 << 20);
        let a = budget.try_reserve(624 << 10).expect("fits");
        assert!(budget.try_reserve(600 << 10).is_none(), "over the limit");
        let b = budget.try_reserve(400 << 10).expect("fits exactly");
        assert_eq!(budget.used(), 1 << 20);
        drop(a);
        assert_eq!(budget.used(), 400 << 10);
        assert!(budget.fits(600 << 10));
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_frame_larger_than_the_budget_goes_alone() {
        let budget = ReceiveBudget::new(1 << 20);
        let small = budget.try_reserve(100 << 10).unwrap();
        assert!(
            budget.try_reserve(4 << 20).is_none(),
            "waits for an empty budget"
        );
        drop(small);
        let big = budget.try_reserve(4 << 20).expect("alone it goes");
        assert!(budget.try_reserve(BUDGETED_FRAME_MIN).is_none());
        drop(big);
        assert_eq!(budget.used(), 0);
    }
}
