//! What every system shares: the clock, the message stamp, the pacing of the publishers
//! and the consumer's window and histogram.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Bytes of the stamp at the front of every message: send time, then sequence number.
pub const STAMP_BYTES: usize = 16;

/// The largest latency the histogram tells apart (an hour): longer ones count as this.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's epoch, from `Instant` (CLOCK_MONOTONIC on Linux): the
/// publishers and the consumer are threads of one process, so they share it.
pub fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Writes the send time (now) and `sequence` into the first 16 bytes of `body`; returns
/// the send time.
pub fn stamp(body: &mut [u8], sequence: u64) -> u64 {
    let sent = now_ns();
    body[..8].copy_from_slice(&sent.to_le_bytes());
    body[8..STAMP_BYTES].copy_from_slice(&sequence.to_le_bytes());
    sent
}

/// The send time and sequence number of a message, if it is long enough to carry them.
pub fn read_stamp(body: &[u8]) -> Option<(u64, u64)> {
    let sent = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let sequence = u64::from_le_bytes(body.get(8..STAMP_BYTES)?.try_into().ok()?);
    Some((sent, sequence))
}

/// The measured window, in [`now_ns`] time: messages received in `[start, end)` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// End of the warm-up.
    pub start: u64,
    /// End of the run: publishers stop, the consumer stops counting.
    pub end: u64,
}

impl Window {
    /// The window that opens `warmup` after `now` and lasts `duration`.
    pub fn after(now: u64, warmup: Duration, duration: Duration) -> Window {
        let start = now.saturating_add(nanos(warmup));
        Window {
            start,
            end: start.saturating_add(nanos(duration)),
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// When a publisher sends its next message: as soon as it can, or on an even schedule.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Nanoseconds between two messages of this publisher, when paced.
    interval_ns: Option<f64>,
    /// The schedule's origin.
    origin: u64,
    /// Messages scheduled so far.
    scheduled: u64,
}

impl Pacer {
    /// Unpaced: every message as soon as the previous one is sent.
    pub fn unpaced() -> Pacer {
        Pacer {
            interval_ns: None,
            origin: 0,
            scheduled: 0,
        }
    }

    /// Publisher `index` of `publishers` sharing `total_rate` messages per second evenly,
    /// from `origin`: each sends `total_rate / publishers` per second, the publishers
    /// offset from one another by an equal share of the interval.
    pub fn paced(total_rate: f64, publishers: usize, index: usize, origin: u64) -> Pacer {
        let interval = 1e9 * publishers as f64 / total_rate;
        let offset = interval * index as f64 / publishers as f64;
        Pacer {
            interval_ns: Some(interval),
            origin: origin + offset as u64,
            scheduled: 0,
        }
    }

    /// When the next message is due (0 when unpaced: now), and counts it as scheduled.
    pub fn next_due(&mut self) -> u64 {
        let Some(interval) = self.interval_ns else {
            return 0;
        };
        let due = self.origin + (interval * self.scheduled as f64) as u64;
        self.scheduled += 1;
        due
    }

    /// Blocks the thread until the next message is due. A publisher that is late (the
    /// sleep overshot, the send blocked) sends the messages it owes back to back: the
    /// schedule is open-loop, so a stall shows up as latency rather than being skipped.
    pub fn wait(&mut self) {
        if self.interval_ns.is_none() {
            return;
        }
        let due = self.next_due();
        let now = now_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
        }
    }
}

/// One publisher's messages: pacing, stamping, the sequence and the count in the window.
#[derive(Debug)]
pub struct Feed {
    pacer: Pacer,
    window: Window,
    sequence: u64,
    /// Messages stamped inside the window.
    pub sent_in_window: u64,
}

impl Feed {
    /// A publisher's feed over `window`.
    pub fn new(pacer: Pacer, window: Window) -> Feed {
        Feed {
            pacer,
            window,
            sequence: 0,
            sent_in_window: 0,
        }
    }

    /// Waits for the next message's turn and stamps it into `body`; false once the
    /// window has ended (the publisher stops).
    pub fn next(&mut self, body: &mut [u8]) -> bool {
        self.pacer.wait();
        let sent = stamp(body, self.sequence);
        if sent >= self.window.end {
            return false;
        }
        self.sequence += 1;
        if sent >= self.window.start {
            self.sent_in_window += 1;
        }
        true
    }

    /// Whether the window has ended.
    pub fn over(&self) -> bool {
        now_ns() >= self.window.end
    }
}

/// The consumer's count and latency histogram over the window.
#[derive(Debug)]
pub struct Recorder {
    window: Window,
    /// Messages received in the window.
    pub messages: u64,
    /// Received messages too short to carry a stamp (none, unless a system truncates).
    pub malformed: u64,
    /// End-to-end latency of the messages received in the window, nanoseconds.
    pub latency: Histogram<u64>,
}

impl Recorder {
    /// An empty recorder for `window`.
    pub fn new(window: Window) -> Recorder {
        Recorder {
            window,
            messages: 0,
            malformed: 0,
            // 1 ns to an hour at 3 significant figures (saturating_record clamps to the
            // range: an auto-resizing histogram would clamp to its initial one).
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("valid histogram bounds"),
        }
    }

    /// Records a message received now; false once the window has ended (the consumer
    /// stops).
    pub fn on_message(&mut self, body: &[u8]) -> bool {
        let received = now_ns();
        self.record_at(body, received)
    }

    /// Records a message received at `received`.
    pub fn record_at(&mut self, body: &[u8], received: u64) -> bool {
        if received >= self.window.end {
            return false;
        }
        if received >= self.window.start {
            match read_stamp(body) {
                Some((sent, _)) => {
                    self.messages += 1;
                    self.latency
                        .saturating_record(received.saturating_sub(sent));
                }
                None => self.malformed += 1,
            }
        }
        true
    }

    /// Whether the window has ended.
    pub fn over(&self) -> bool {
        now_ns() >= self.window.end
    }

    /// Time left until the window ends.
    pub fn remaining(&self) -> Duration {
        Duration::from_nanos(self.window.end.saturating_sub(now_ns()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let mut body = vec![0u8; 64];
        let sent = stamp(&mut body, 7);
        assert_eq!(read_stamp(&body), Some((sent, 7)));
        assert_eq!(read_stamp(&body[..15]), None);
    }

    #[test]
    fn paced_publishers_share_the_rate_evenly() {
        // 4 publishers sharing 1000 msg/s: 250 each, 4 ms apart, offset by 1 ms.
        let mut pacers: Vec<Pacer> = (0..4).map(|i| Pacer::paced(1000.0, 4, i, 0)).collect();
        let first: Vec<u64> = pacers.iter_mut().map(Pacer::next_due).collect();
        assert_eq!(first, [0, 1_000_000, 2_000_000, 3_000_000]);
        assert_eq!(pacers[0].next_due(), 4_000_000);
        assert_eq!(Pacer::unpaced().next_due(), 0);
    }

    #[test]
    fn only_the_window_counts() {
        let window = Window {
            start: 100,
            end: 200,
        };
        let mut recorder = Recorder::new(window);
        let mut body = [0u8; 16];
        body[..8].copy_from_slice(&90u64.to_le_bytes());
        assert!(recorder.record_at(&body, 95)); // warm-up
        assert!(recorder.record_at(&body, 150));
        assert!(recorder.record_at(&body[..10], 160));
        assert!(!recorder.record_at(&body, 200));
        assert_eq!(recorder.messages, 1);
        assert_eq!(recorder.malformed, 1);
        assert_eq!(recorder.latency.max(), 60);
    }
}
