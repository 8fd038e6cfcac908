//! Progress of a running job: on a terminal a bar of the bytes done of the total, with
//! the files done, percentage, rate and time left (as rsync's `--info=progress2`);
//! otherwise a line a second. Both on stderr, none with --quiet; and the per-second
//! intervals the JSON report lists. Every figure is in decimal units (MB, MB/s), as in
//! the final report.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hawser_replicate::service::Progress;

use crate::units::{clock, decimal_bytes, decimal_rate};

/// One second of the transfer.
#[derive(Debug, Clone, Copy)]
pub struct Interval {
    /// Seconds since the start, at its start.
    pub start: f64,
    /// Seconds since the start, at its end.
    pub end: f64,
    /// Bytes acknowledged in it.
    pub bytes: u64,
}

/// The rate shown is over this much of the recent past: steady, yet it follows a change.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Longest time left the bar predicts (99 hours).
const MAX_ETA_SECS: f64 = 99.0 * 3600.0;

/// What the bar shows at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) bytes_done: u64,
    /// 0 while unknown (a pull before its first manifest batch).
    pub(crate) bytes_total: u64,
    pub(crate) files_done: u64,
    pub(crate) files_total: u64,
    /// Bytes per second lately.
    pub(crate) rate: f64,
}

impl Snapshot {
    fn of(progress: &Progress, rate: f64) -> Snapshot {
        Snapshot {
            bytes_done: progress.bytes_done(),
            bytes_total: progress.bytes_total.load(Ordering::Relaxed),
            files_done: progress.files_done.load(Ordering::Relaxed),
            files_total: progress.files_total.load(Ordering::Relaxed),
            rate,
        }
    }
}

/// The text beside the bar: `872.0 MB / 1.90 GB  46%  319.2 MB/s  ETA 0:00:03  12/40
/// files` (short enough to leave the bar room on 80 columns); without a known total,
/// what is done (`verb`: "sent", "received") and the rate.
pub(crate) fn status_line(s: &Snapshot, verb: &str) -> String {
    let rate = decimal_rate(s.rate);
    if s.bytes_total == 0 {
        return format!(
            "{} {verb}  {rate}  {} files",
            decimal_bytes(s.bytes_done),
            s.files_done
        );
    }
    let done = s.bytes_done.min(s.bytes_total);
    let percent = done as f64 * 100.0 / s.bytes_total as f64;
    let left = s.bytes_total - done;
    // Beyond a few days the rate is too small to predict anything (a stall, the start).
    let seconds_left = left as f64 / s.rate;
    let eta = if left == 0 {
        clock(Duration::ZERO)
    } else if seconds_left.is_finite() && (0.0..MAX_ETA_SECS).contains(&seconds_left) {
        clock(Duration::from_secs_f64(seconds_left))
    } else {
        "-:--:--".to_string()
    };
    format!(
        "{} / {}  {percent:3.0}%  {rate}  ETA {eta}  {}/{} files",
        decimal_bytes(done),
        decimal_bytes(s.bytes_total),
        s.files_done,
        s.files_total
    )
}

/// Bytes per second over the samples of the last [`RATE_WINDOW`].
#[derive(Debug, Default)]
struct RecentRate {
    samples: VecDeque<(Instant, u64)>,
}

impl RecentRate {
    fn sample(&mut self, now: Instant, bytes: u64) -> f64 {
        self.samples.push_back((now, bytes));
        while let Some(&(at, _)) = self.samples.front() {
            if now.duration_since(at) > RATE_WINDOW && self.samples.len() > 2 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
                b1.saturating_sub(b0) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// The terminal's bar: its length is the total bytes once known.
fn terminal_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{wide_bar} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Shows progress while a job runs and records per-second intervals.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Interval>>>,
}

impl Ticker {
    /// Starts showing `progress`; `verb` says what happens to the bytes ("sent",
    /// "received").
    pub(crate) fn start(progress: Arc<Progress>, quiet: bool, verb: &'static str) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let bar = (!quiet && std::io::stderr().is_terminal()).then(terminal_bar);
            let begin = Instant::now();
            let mut intervals = Vec::new();
            let mut recent = RecentRate::default();
            let mut last_at = 0.0;
            let mut last_bytes = 0;
            let mut next = begin + Duration::from_secs(1);
            loop {
                let done = stopping.load(Ordering::Acquire);
                let now = Instant::now();
                if now >= next || done {
                    let at = now.duration_since(begin).as_secs_f64();
                    let bytes = progress.bytes.load(Ordering::Relaxed);
                    if at > last_at {
                        intervals.push(Interval {
                            start: last_at,
                            end: at,
                            bytes: bytes.saturating_sub(last_bytes),
                        });
                    }
                    if !quiet && bar.is_none() && !done {
                        eprintln!(
                            "{at:6.1}s {:>12} bytes {:>9.1} MB/s {} blocks",
                            bytes,
                            bytes.saturating_sub(last_bytes) as f64
                                / (at - last_at).max(1e-9)
                                / 1e6,
                            progress.blocks.load(Ordering::Relaxed)
                        );
                    }
                    last_at = at;
                    last_bytes = bytes;
                    next += Duration::from_secs(1);
                }
                if let Some(bar) = &bar {
                    let rate = recent.sample(now, progress.bytes_done());
                    let snapshot = Snapshot::of(&progress, rate);
                    bar.set_length(snapshot.bytes_total);
                    bar.set_position(snapshot.bytes_done);
                    bar.set_message(status_line(&snapshot, verb));
                }
                if done {
                    if let Some(bar) = &bar {
                        bar.finish_and_clear();
                    }
                    return intervals;
                }
                // Woken early by `finish`, so a job's end does not wait for a tick.
                std::thread::park_timeout(Duration::from_millis(100));
            }
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the display; the per-second intervals.
    pub(crate) fn finish(mut self) -> Vec<Interval> {
        self.stop.store(true, Ordering::Release);
        let thread = self.thread.take();
        if let Some(thread) = &thread {
            thread.thread().unpark();
        }
        thread.and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(bytes_done: u64, bytes_total: u64, rate: f64) -> Snapshot {
        Snapshot {
            bytes_done,
            bytes_total,
            files_done: 12,
            files_total: 40,
            rate,
        }
    }

    #[test]
    fn the_status_shows_done_of_total_percentage_rate_eta_and_files() {
        assert_eq!(
            status_line(&snapshot(872_000_000, 1_900_000_000, 319_240_000.0), "sent"),
            "872.0 MB / 1.90 GB   46%  319.2 MB/s  ETA 0:00:03  12/40 files"
        );
        // No rate yet: no ETA; all done: none left.
        assert!(status_line(&snapshot(0, 1000, 0.0), "sent").contains("ETA -:--:--"));
        let crawling = status_line(&snapshot(38, 40_000_000, 38.0), "sent");
        assert!(crawling.contains("ETA -:--:--"), "{crawling}");
        let done = status_line(&snapshot(1000, 1000, 5.0), "received");
        assert!(
            done.contains("100%") && done.contains("ETA 0:00:00"),
            "{done}"
        );
        // Never past the total, whatever the counters say.
        assert!(status_line(&snapshot(5000, 1000, 5.0), "sent").starts_with("1.00 kB / 1.00 kB"));
        // A total not known yet (a pull before its manifest): what is done and the rate.
        assert_eq!(
            status_line(&snapshot(2_500_000, 0, 1e6), "received"),
            "2.50 MB received  1.00 MB/s  12 files"
        );
    }

    #[test]
    fn the_rate_is_over_the_recent_window() {
        let mut recent = RecentRate::default();
        let t0 = Instant::now();
        assert_eq!(recent.sample(t0, 0), 0.0);
        // 100 MB/s for ten seconds, then stalled for six: the window sees the stall.
        for s in 1..=10 {
            recent.sample(t0 + Duration::from_secs(s), s * 100_000_000);
        }
        let steady = recent.sample(t0 + Duration::from_secs(10), 1_000_000_000);
        assert!((steady - 1e8).abs() < 1.0, "{steady}");
        let stalled = recent.sample(t0 + Duration::from_secs(16), 1_000_000_000);
        assert!(stalled < 2e7, "{stalled}");
    }
}
