//! The windows `auto` measures in: a mode's best settled rate, the compressors' busy
//! share, and the watch over a choice made.

use std::time::{Duration, Instant};

use super::{AutoChoice, BUSY, DROP, MAX_WINDOWS, PLATEAU, RECHECK, SETTLE, WATCH, WINDOW};
use crate::host_cpu::CpuTimes;

/// The best settled window rate of one mode.
#[derive(Debug)]
pub(super) struct Measurement {
    /// When counting starts (after [`SETTLE`]).
    pub(super) from: Instant,
    window_start: Instant,
    window_bytes: u64,
    last: Option<f64>,
    pub(super) best: f64,
    windows: u32,
}

impl Measurement {
    pub(super) fn new(start: Instant) -> Self {
        let from = start + SETTLE;
        Measurement {
            from,
            window_start: from,
            window_bytes: 0,
            last: None,
            best: 0.0,
            windows: 0,
        }
    }

    /// Counts `bytes` acknowledged at `now`; the best rate once it has plateaued.
    pub(super) fn add(&mut self, now: Instant, bytes: u64) -> Option<f64> {
        if now < self.from {
            return None;
        }
        self.window_bytes += bytes;
        let elapsed = now.duration_since(self.window_start);
        if elapsed < WINDOW {
            return None;
        }
        let rate = self.window_bytes as f64 / elapsed.as_secs_f64();
        self.windows += 1;
        self.best = self.best.max(rate);
        let plateau = self.last.is_some_and(|last| rate < PLATEAU * last);
        self.last = Some(rate);
        self.window_start = now;
        self.window_bytes = 0;
        (plateau || self.windows >= MAX_WINDOWS).then_some(self.best)
    }
}

/// A window of the compressors' busy time and the bytes acknowledged in it.
#[derive(Debug, Clone, Copy)]
struct BusyWindow {
    start: Instant,
    busy_at_start: Duration,
    bytes: u64,
    length: Duration,
}

/// A busy window that ended: the compressors' share of it, and its rate.
#[derive(Debug, Clone, Copy)]
struct Busy {
    share: f64,
    rate: f64,
}

impl BusyWindow {
    fn new(now: Instant, busy: Duration, length: Duration) -> Self {
        BusyWindow {
            start: now,
            busy_at_start: busy,
            bytes: 0,
            length,
        }
    }

    /// Counts `bytes` acknowledged at `now`, the compressors busy for `busy` in all;
    /// the window's share and rate once it is over (and a new one starts).
    fn add(&mut self, now: Instant, busy: Duration, bytes: u64) -> Option<Busy> {
        self.bytes += bytes;
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < self.length {
            return None;
        }
        let seconds = elapsed.as_secs_f64();
        let share = busy.saturating_sub(self.busy_at_start).as_secs_f64() / seconds;
        let ended = Busy {
            share: share.min(1.0),
            rate: self.bytes as f64 / seconds,
        };
        *self = BusyWindow::new(now, busy, self.length);
        Some(ended)
    }
}

/// The compressors' busy time over a compressed trial, from the end of its settling.
#[derive(Debug, Clone, Copy)]
pub(super) struct BusyTrack {
    since: Instant,
    busy_since: Duration,
    window: BusyWindow,
    /// Windows ended.
    windows: u32,
    /// Bytes acknowledged since `since`.
    bytes: u64,
    /// The last acknowledgement counted, and the busy time then.
    last: Instant,
    busy_last: Duration,
    /// The host's CPU times at `since`.
    cpu_since: Option<CpuTimes>,
}

impl BusyTrack {
    /// From `now`, the compressors busy `busy` in all and the host's CPU times `cpu`.
    pub(super) fn new(
        now: Instant,
        busy: Duration,
        window: Duration,
        cpu: Option<CpuTimes>,
    ) -> Self {
        BusyTrack {
            since: now,
            busy_since: busy,
            window: BusyWindow::new(now, busy, window),
            windows: 0,
            bytes: 0,
            last: now,
            busy_last: busy,
            cpu_since: cpu,
        }
    }

    /// The share of the host's CPU time idle from `since` to the times `cpu`, if known.
    pub(super) fn host_idle(&self, cpu: Option<CpuTimes>) -> Option<f64> {
        self.cpu_since?.idle_share_until(cpu?)
    }

    /// Counts `bytes` acknowledged at `now` (the compressors busy `busy` in all): the
    /// rate over the track if lz4 has proved the bottleneck (busy [`BUSY`] of the track,
    /// two windows long at least: a single window may catch a burst of answers).
    pub(super) fn lz4_bound(&mut self, now: Instant, busy: Duration, bytes: u64) -> Option<f64> {
        self.bytes += bytes;
        (self.last, self.busy_last) = (now, busy);
        self.window.add(now, busy, bytes)?;
        self.windows += 1;
        (self.windows >= 2 && self.share() >= BUSY).then(|| self.rate(now))
    }

    pub(super) fn rate(&self, now: Instant) -> f64 {
        self.bytes as f64 / now.duration_since(self.since).as_secs_f64().max(1e-3)
    }

    /// The share of the track's time (up to the last acknowledgement) the compressors
    /// were busy.
    pub(super) fn share(&self) -> f64 {
        let seconds = self.last.duration_since(self.since).as_secs_f64().max(1e-3);
        let busy = self.busy_last.saturating_sub(self.busy_since);
        (busy.as_secs_f64() / seconds).min(1.0)
    }
}

/// The rate after a choice, in windows of [`WATCH`].
#[derive(Debug)]
pub(super) struct Watch {
    chosen_at: Instant,
    window: BusyWindow,
    low_windows: u32,
}

impl Watch {
    pub(super) fn new(now: Instant, busy: Duration) -> Self {
        Watch {
            chosen_at: now,
            window: BusyWindow::new(now, busy, WATCH),
            low_windows: 0,
        }
    }

    /// Counts `bytes` acknowledged at `now`; whether `choice` should be made again.
    pub(super) fn redecide(
        &mut self,
        now: Instant,
        bytes: u64,
        busy: Option<Duration>,
        choice: &AutoChoice,
    ) -> bool {
        let recheck_due = now.duration_since(self.chosen_at) >= RECHECK;
        let Some(window) = self.window.add(now, busy.unwrap_or_default(), bytes) else {
            return false;
        };
        let low = if choice.compress {
            // The link was the bottleneck when this was chosen: it no longer is once the
            // compressors are busy. Unknown, or after uncompressed lost: periodically.
            let busy_known = busy.is_some() && choice.raw_rate.is_none();
            if !busy_known {
                return recheck_due;
            }
            window.share >= BUSY
        } else {
            window.rate < DROP * choice.raw_rate.unwrap_or(0.0)
        };
        self.low_windows = if low { self.low_windows + 1 } else { 0 };
        self.low_windows >= 2
    }
}
