//! Progress of a running job: a spinner on a terminal, a line a second otherwise (both on
//! stderr, none with --quiet), and the per-second intervals the JSON report lists.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hawser_replicate::service::Progress;

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
            let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(&format!(
                        "{{spinner}} {{elapsed_precise}} {{bytes}} {verb}, \
                             {{binary_bytes_per_sec}} {{msg}}"
                    ))
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar
            });
            let begin = Instant::now();
            let mut intervals = Vec::new();
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
                            bytes: bytes - last_bytes,
                        });
                    }
                    if !quiet && bar.is_none() && !done {
                        eprintln!(
                            "{at:6.1}s {:>12} bytes {:>9.1} MB/s {} blocks",
                            bytes,
                            (bytes - last_bytes) as f64 / (at - last_at).max(1e-9) / 1e6,
                            progress.blocks.load(Ordering::Relaxed)
                        );
                    }
                    last_at = at;
                    last_bytes = bytes;
                    next += Duration::from_secs(1);
                }
                if let Some(bar) = &bar {
                    bar.set_position(progress.bytes.load(Ordering::Relaxed));
                    bar.set_message(format!(
                        "{} blocks",
                        progress.blocks.load(Ordering::Relaxed)
                    ));
                }
                if done {
                    if let Some(bar) = &bar {
                        bar.finish_and_clear();
                    }
                    return intervals;
                }
                std::thread::sleep(Duration::from_millis(100));
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
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}
