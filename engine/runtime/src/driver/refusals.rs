//! Warnings for connections a server refused or closed for a protocol violation (failed
//! or throttled authentication, a limit hit, garbage), at most [`PER_SECOND`] a second:
//! the flood an attacker can cause must not become a flood of log lines. What is held
//! back is counted and said with the next warning.

use std::time::{Duration, Instant};

use hawser_session::{LinkCloseReason, Peer};

/// Warnings written per second at most.
const PER_SECOND: u32 = 20;

/// The budget of refusal warnings of one server, and the counts of what it saw.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    window_start: Option<Instant>,
    written: u32,
    held_back: u64,
    /// Connections refused (authentication, limits), logged or not.
    pub(crate) refused: u64,
    /// Connections closed for a protocol violation, logged or not.
    pub(crate) protocol_violations: u64,
}

impl RefusalLog {
    /// Logs that the connection from `peer` closed for `reason`, if that is a refusal
    /// or a protocol violation and the budget allows.
    pub(crate) fn closed(&mut self, now: Instant, peer: Option<&Peer>, reason: &LinkCloseReason) {
        let what = match reason {
            LinkCloseReason::Refused(_) => {
                self.refused += 1;
                "connection refused"
            }
            LinkCloseReason::Protocol(_) => {
                self.protocol_violations += 1;
                "connection closed for a protocol violation"
            }
            _ => return,
        };
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.written = 0;
        }
        if self.written >= PER_SECOND {
            self.held_back += 1;
            return;
        }
        self.written += 1;
        let peer = peer.map_or_else(|| "unknown".to_owned(), ToString::to_string);
        let held_back = std::mem::take(&mut self.held_back);
        tracing::warn!(
            target: "hawser::refusal",
            %peer,
            held_back,
            "{what}: {reason}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_budget_is_written_per_second_and_the_rest_counted() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        let refused = LinkCloseReason::Refused("authentication failed".into());
        for _ in 0..(PER_SECOND + 5) {
            log.closed(t0, None, &refused);
        }
        assert_eq!((log.written, log.held_back), (PER_SECOND, 5));
        log.closed(t0, None, &LinkCloseReason::TransportLost);
        assert_eq!(log.held_back, 5, "a lost connection is no refusal");
        log.closed(t0 + Duration::from_secs(1), None, &refused);
        assert_eq!((log.written, log.held_back), (1, 0));
        assert_eq!(
            (log.refused, log.protocol_violations),
            (u64::from(PER_SECOND) + 6, 0)
        );
    }
}
