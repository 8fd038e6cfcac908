//! Liveness of a direct connection: a null message after `interval` without sending,
//! and the peer declared dead after `dead_after` without receiving.

use std::time::{Duration, Instant};

/// The four zero octets of a null message.
pub const NULL_MESSAGE: [u8; 4] = [0; 4];

/// What a heartbeat asks for when its deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Nothing yet.
    Idle,
    /// Send a null message.
    Send,
    /// The peer has been silent too long.
    Dead,
}

/// The heartbeat of one connection, in the caller's time.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    interval: Duration,
    dead_after: Duration,
    last_sent: Instant,
    last_received: Instant,
}

impl Heartbeat {
    /// Starts at `now` as if both sides had just spoken.
    pub fn new(now: Instant, interval: Duration, dead_after: Duration) -> Self {
        Heartbeat {
            interval,
            dead_after,
            last_sent: now,
            last_received: now,
        }
    }

    /// Bytes went out.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// Bytes came in (or the caller chose not to read: a paused reader cannot hear).
    pub fn received(&mut self, now: Instant) {
        self.last_received = now;
    }

    /// When [`poll`](Self::poll) next has something to say.
    pub fn deadline(&self) -> Instant {
        (self.last_sent + self.interval).min(self.last_received + self.dead_after)
    }

    /// What to do at `now`.
    pub fn poll(&self, now: Instant) -> Beat {
        if now >= self.last_received + self.dead_after {
            Beat::Dead
        } else if now >= self.last_sent + self.interval {
            Beat::Send
        } else {
            Beat::Idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_while_the_peer_talks_and_declares_it_dead_when_silent() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut hb = Heartbeat::new(t0, 5 * s, 15 * s);
        assert_eq!(hb.deadline(), t0 + 5 * s);
        assert_eq!(hb.poll(t0 + 4 * s), Beat::Idle);
        assert_eq!(hb.poll(t0 + 5 * s), Beat::Send);
        hb.sent(t0 + 5 * s);
        hb.received(t0 + 9 * s);
        assert_eq!(hb.poll(t0 + 10 * s), Beat::Send);
        hb.sent(t0 + 10 * s);
        assert_eq!(hb.deadline(), t0 + 15 * s);
        hb.sent(t0 + 20 * s);
        assert_eq!(hb.poll(t0 + 23 * s), Beat::Idle);
        assert_eq!(hb.poll(t0 + 24 * s), Beat::Dead);
    }
}
