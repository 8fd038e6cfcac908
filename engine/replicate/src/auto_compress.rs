//! `--compress auto`: whether compressing blocks pays on this link, decided from what the
//! job measures.
//!
//! A push compresses its blocks on the job's compressing threads. On a link slower than
//! those threads' lz4, compressed blocks arrive sooner; on a faster one compression is the
//! bottleneck, and a push of data that shrinks little runs slower than uncompressed
//! (README, "Measured", has both cases). Which one a link is
//! depends on the link, the data and the host, so `auto`:
//!
//! 1. sends uncompressed and, once the transfer has settled ([`SETTLE`] after the first
//!    acknowledged block), measures the acknowledged rate in windows of [`WINDOW`] until
//!    it stops rising (a window less than [`PLATEAU`] times the one before; at most
//!    [`MAX_WINDOWS`]), keeping the best window as the uncompressed rate;
//! 2. times lz4 on a sample of the data, in this thread, and counts that speed once per
//!    compressing thread of the job;
//! 3. compresses if the link is clearly slower than lz4 and the data clearly shrinks:
//!    compressed, the rate could become `min(lz4 speed, link rate / ratio)`, and that
//!    must beat the uncompressed rate by [`MARGIN`];
//! 4. having switched, measures the compressed rate the same way and goes back to
//!    uncompressed unless it beat the uncompressed one by [`CONFIRM`];
//! 5. keeps watching, because links and data change during a long job: uncompressed, two
//!    windows of [`WATCH`] in a row below [`DROP`] times the rate it chose at (a WAN link
//!    now shared, a slower path) start the decision again from step 1; compressing, it
//!    decides again every [`RECHECK`] (the link may have become faster than lz4, which a
//!    compressed rate cannot show). Each new decision times lz4 on a fresh sample.
//!
//! A job that ends before the first choice stays uncompressed.

use std::time::{Duration, Instant};

/// Time after the first acknowledged block (or after switching) before measuring: TCP's
/// ramp-up, the blocks already in flight.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);
/// One measuring window.
pub(crate) const WINDOW: Duration = Duration::from_millis(500);
/// A window at most this factor above the one before ends the measurement.
pub(crate) const PLATEAU: f64 = 1.1;
/// Windows measured at most before choosing anyway.
pub(crate) const MAX_WINDOWS: u32 = 8;
/// Compression must promise this factor over the uncompressed rate.
pub(crate) const MARGIN: f64 = 1.25;
/// And, once on, deliver this factor.
pub(crate) const CONFIRM: f64 = 1.1;
/// Once chosen, the rate is watched in windows this long.
pub(crate) const WATCH: Duration = Duration::from_secs(2);
/// Uncompressed: two watched windows in a row below this fraction of the rate chosen at
/// start a new decision.
pub(crate) const DROP: f64 = 0.6;
/// Compressing: a new decision after this long (it costs one uncompressed measurement,
/// about 1.5 s, per period).
pub(crate) const RECHECK: Duration = Duration::from_secs(30);
/// Bytes of a request body lz4 is timed on.
const SAMPLE_LEN: usize = 1 << 20;
/// Bodies shorter than this are not sampled.
const SAMPLE_MIN: usize = 64 * 1024;

/// What `auto` measured and chose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoChoice {
    /// Compressing (for the rest of the job).
    pub compress: bool,
    /// Uncompressed request bytes acknowledged per second (best settled window).
    pub raw_rate: f64,
    /// Request bytes (before compression) acknowledged per second while compressing,
    /// if it was tried.
    pub compressed_rate: Option<f64>,
    /// lz4 input bytes per second on the sample: one thread's, times the compressing
    /// threads.
    pub lz4_speed: f64,
    /// Compressed / original size of the sample.
    pub lz4_ratio: f64,
    /// Decisions made in this job so far, this one included (more than 1: the rate or the
    /// data changed and `auto` measured again; 0: compression was on trial, unconfirmed,
    /// when the job ended).
    pub decisions: u32,
}

/// Whether compressing promises to pay: `min(lz4_speed, raw_rate / ratio)` beats
/// `raw_rate` by [`MARGIN`].
pub(crate) fn pays(raw_rate: f64, lz4_speed: f64, lz4_ratio: f64) -> bool {
    raw_rate > 0.0 && lz4_ratio > 0.0 && lz4_speed.min(raw_rate / lz4_ratio) >= MARGIN * raw_rate
}

/// The best settled window rate of one mode.
#[derive(Debug)]
struct Measurement {
    /// When counting starts (after [`SETTLE`]).
    from: Instant,
    window_start: Instant,
    window_bytes: u64,
    last: Option<f64>,
    best: f64,
    windows: u32,
}

impl Measurement {
    fn new(start: Instant) -> Self {
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
    fn add(&mut self, now: Instant, bytes: u64) -> Option<f64> {
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

#[derive(Debug)]
enum Phase {
    /// Before the first acknowledgement.
    Idle,
    Raw(Measurement),
    Compressed {
        raw_rate: f64,
        measuring: Measurement,
    },
    Chosen {
        choice: AutoChoice,
        watch: Watch,
    },
}

/// The rate after a choice, in windows of [`WATCH`].
#[derive(Debug)]
struct Watch {
    chosen_at: Instant,
    window_start: Instant,
    window_bytes: u64,
    low_windows: u32,
}

impl Watch {
    fn new(now: Instant) -> Self {
        Watch {
            chosen_at: now,
            window_start: now,
            window_bytes: 0,
            low_windows: 0,
        }
    }

    /// Counts `bytes` acknowledged at `now`; whether `choice` should be made again.
    fn redecide(&mut self, now: Instant, bytes: u64, choice: &AutoChoice) -> bool {
        if choice.compress {
            return now.duration_since(self.chosen_at) >= RECHECK;
        }
        self.window_bytes += bytes;
        let elapsed = now.duration_since(self.window_start);
        if elapsed < WATCH {
            return false;
        }
        let rate = self.window_bytes as f64 / elapsed.as_secs_f64();
        self.window_start = now;
        self.window_bytes = 0;
        if rate < DROP * choice.raw_rate {
            self.low_windows += 1;
        } else {
            self.low_windows = 0;
        }
        self.low_windows >= 2
    }
}

/// The measurement in progress.
#[derive(Debug)]
pub(crate) struct AutoCompress {
    phase: Phase,
    sample: Option<(f64, f64)>,
    /// The last choice made (kept while a new decision is measured).
    last: Option<AutoChoice>,
    /// Threads compressing in parallel: the sample's speed counts this many times.
    threads: usize,
}

impl Default for AutoCompress {
    fn default() -> Self {
        AutoCompress::new(1)
    }
}

impl AutoCompress {
    /// For a job compressing on `threads` threads.
    pub(crate) fn new(threads: usize) -> Self {
        AutoCompress {
            phase: Phase::Idle,
            sample: None,
            last: None,
            threads: threads.max(1),
        }
    }

    /// Whether requests should go compressed now.
    pub(crate) fn compressing(&self) -> bool {
        match &self.phase {
            Phase::Compressed { .. } => true,
            Phase::Chosen { choice, .. } => choice.compress,
            Phase::Idle | Phase::Raw(_) => false,
        }
    }

    /// The latest choice, once one is made (a new decision being measured does not hide
    /// the one before).
    #[cfg(test)]
    fn choice(&self) -> Option<AutoChoice> {
        self.last
    }

    /// What the job did, for its report: the latest choice or, while compression is on
    /// trial before any choice, the trial (`compress`, no `compressed_rate` yet,
    /// `decisions` 0). A job that ends during its trial sent its blocks compressed from
    /// the switch on, which a report without a choice would hide.
    pub(crate) fn outcome(&self) -> Option<AutoChoice> {
        match (&self.phase, self.last) {
            (Phase::Compressed { raw_rate, .. }, None) => {
                let (lz4_speed, lz4_ratio) = self.sample.unwrap_or((0.0, 1.0));
                Some(AutoChoice {
                    compress: true,
                    raw_rate: *raw_rate,
                    compressed_rate: None,
                    lz4_speed,
                    lz4_ratio,
                    decisions: 0,
                })
            }
            (_, last) => last,
        }
    }

    fn choose(&mut self, now: Instant, choice: AutoChoice) {
        let choice = AutoChoice {
            decisions: self.last.map_or(1, |l| l.decisions + 1),
            ..choice
        };
        self.last = Some(choice);
        self.phase = Phase::Chosen {
            choice,
            watch: Watch::new(now),
        };
    }

    /// Offers a request body about to be sent: the first one long enough is the sample
    /// lz4 is timed on.
    pub(crate) fn offer_sample(&mut self, body: &[u8]) {
        if self.sample.is_some() || body.len() < SAMPLE_MIN {
            return;
        }
        let len = body.len().min(SAMPLE_LEN);
        let start = (body.len() - len) / 2;
        let sample = &body[start..start + len];
        let mut scratch = vec![0; lz4_flex::block::get_maximum_output_size(len)];
        let started = Instant::now();
        let Ok(compressed) = lz4_flex::block::compress_into(sample, &mut scratch) else {
            return;
        };
        let seconds = started.elapsed().as_secs_f64().max(1e-6);
        let speed = len as f64 / seconds * self.threads as f64;
        self.sample = Some((speed, compressed as f64 / len as f64));
    }

    /// `bytes` of request (counted before compression) were acknowledged at `now`.
    pub(crate) fn acknowledged(&mut self, now: Instant, bytes: u64) {
        let (lz4_speed, lz4_ratio) = self.sample.unwrap_or((0.0, 1.0));
        match &mut self.phase {
            Phase::Idle => self.phase = Phase::Raw(Measurement::new(now)),
            Phase::Raw(m) => {
                if let Some(raw_rate) = m.add(now, bytes) {
                    if pays(raw_rate, lz4_speed, lz4_ratio) {
                        self.phase = Phase::Compressed {
                            raw_rate,
                            measuring: Measurement::new(now),
                        };
                    } else {
                        self.choose(
                            now,
                            AutoChoice {
                                compress: false,
                                raw_rate,
                                compressed_rate: None,
                                lz4_speed,
                                lz4_ratio,
                                decisions: 0,
                            },
                        );
                    }
                }
            }
            Phase::Compressed {
                raw_rate,
                measuring,
            } => {
                let raw_rate = *raw_rate;
                if let Some(rate) = measuring.add(now, bytes) {
                    self.choose(
                        now,
                        AutoChoice {
                            compress: rate >= CONFIRM * raw_rate,
                            raw_rate,
                            compressed_rate: Some(rate),
                            lz4_speed,
                            lz4_ratio,
                            decisions: 0,
                        },
                    );
                }
            }
            Phase::Chosen { choice, watch } => {
                if watch.redecide(now, bytes, choice) {
                    // From step 1, on a fresh sample of the data.
                    self.sample = None;
                    self.phase = Phase::Raw(Measurement::new(now));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: f64 = 1e9;

    #[test]
    fn compression_pays_only_on_a_link_slower_than_lz4_and_data_that_shrinks() {
        // 1 Gbit/s WAN, text that halves: lz4 at 0.5 GB/s lifts 0.125 to 0.25 GB/s.
        assert!(pays(0.125 * GB, 0.5 * GB, 0.5));
        // Loopback or 10 Gbit/s: lz4 would be the bottleneck.
        assert!(!pays(1.2 * GB, 0.5 * GB, 0.12));
        // A slow link, but the data barely shrinks.
        assert!(!pays(0.125 * GB, 0.5 * GB, 0.9));
        // Incompressible, or nothing measured.
        assert!(!pays(0.1 * GB, 2.0 * GB, 1.0));
        assert!(!pays(0.0, 0.5 * GB, 0.5));
    }

    /// An `auto` that timed lz4 at 0.6 GB/s shrinking the data to 0.3 (log text).
    fn text_sampled() -> AutoCompress {
        AutoCompress {
            sample: Some((0.6 * GB, 0.3)),
            ..AutoCompress::default()
        }
    }

    /// Feeds `rate(t)` bytes per second as 10 ms acknowledgements from `start` for
    /// `seconds`; returns the time reached.
    fn feed(
        auto: &mut AutoCompress,
        start: Instant,
        seconds: f64,
        rate: impl Fn(f64) -> f64,
    ) -> Instant {
        let step = Duration::from_millis(10);
        let mut now = start;
        while now < start + Duration::from_secs_f64(seconds) {
            let t = now.duration_since(start).as_secs_f64();
            auto.acknowledged(now, (rate(t) * step.as_secs_f64()) as u64);
            now += step;
        }
        now
    }

    #[test]
    fn a_slow_link_compresses_once_compression_proves_itself() {
        let mut auto = text_sampled();
        let t = feed(&mut auto, Instant::now(), 2.0, |_| 0.12 * GB);
        assert!(auto.compressing(), "switched: {:?}", auto.phase);
        assert_eq!(auto.choice(), None, "not confirmed yet");
        let trial = auto.outcome().expect("on trial");
        assert!(
            trial.compress && trial.compressed_rate.is_none() && trial.decisions == 0,
            "{trial:?}"
        );
        // Compressed, the link carries 0.12 GB/s of 0.3-sized frames: 0.4 GB/s of data.
        feed(&mut auto, t, 2.0, |_| 0.4 * GB);
        let choice = auto.choice().expect("confirmed");
        assert!(choice.compress && auto.compressing(), "{choice:?}");
        assert_eq!(auto.outcome(), Some(choice));
        assert!(
            (choice.raw_rate - 0.12 * GB).abs() < 0.02 * GB,
            "{choice:?}"
        );
    }

    #[test]
    fn compression_that_does_not_deliver_is_turned_off_again() {
        let mut auto = text_sampled();
        let t = feed(&mut auto, Instant::now(), 2.0, |_| 0.12 * GB);
        assert!(auto.compressing());
        // The target's disk was the bottleneck all along: no faster compressed.
        feed(&mut auto, t, 2.0, |_| 0.125 * GB);
        let choice = auto.choice().expect("chosen");
        assert!(!choice.compress && !auto.compressing(), "{choice:?}");
    }

    #[test]
    fn a_ramping_rate_is_measured_at_its_plateau_and_a_fast_link_stays_uncompressed() {
        let mut auto = text_sampled();
        // A long fat link ramping up to 1.2 GB/s over 2.5 s: early windows alone would
        // make lz4 look worth it.
        feed(&mut auto, Instant::now(), 6.0, |t| {
            (0.2 + t * 0.4).min(1.2) * GB
        });
        let choice = auto.choice().expect("chosen");
        assert!(!choice.compress && !auto.compressing(), "{choice:?}");
        assert!(choice.raw_rate > 1.0 * GB, "{choice:?}");
    }

    #[test]
    fn a_link_that_slows_down_is_measured_again_and_then_compressed() {
        let mut auto = text_sampled();
        let t = feed(&mut auto, Instant::now(), 3.0, |_| 1.2 * GB);
        let first = auto.choice().expect("chosen");
        assert!(!first.compress && first.decisions == 1, "{first:?}");
        // A dip of half a window lowers at most one window: not a new link.
        let t = feed(&mut auto, t, WATCH.as_secs_f64() / 2.0, |_| 0.12 * GB);
        let mut t = feed(&mut auto, t, 2.0 * WATCH.as_secs_f64(), |_| 1.2 * GB);
        assert!(
            matches!(auto.phase, Phase::Chosen { .. }),
            "{:?}",
            auto.phase
        );
        // The path is now shared: 0.12 GB/s for good. Two slow windows in a row (the first
        // may have started before the slowdown) start a new decision.
        let slow_from = t;
        while matches!(auto.phase, Phase::Chosen { .. }) {
            t = feed(&mut auto, t, 0.01, |_| 0.12 * GB);
            assert!(
                t.duration_since(slow_from) <= 3 * WATCH + Duration::from_millis(50),
                "still {:?}",
                auto.phase
            );
        }
        assert!(
            t.duration_since(slow_from) >= WATCH,
            "one whole slow window at least"
        );
        assert!(matches!(auto.phase, Phase::Raw(_)), "{:?}", auto.phase);
        assert_eq!(auto.sample, None, "a new decision samples the data again");
        assert_eq!(auto.choice(), Some(first), "the last choice stays visible");
        auto.sample = Some((0.6 * GB, 0.3));
        let t = feed(&mut auto, t, 2.0, |_| 0.12 * GB);
        assert!(auto.compressing(), "{:?}", auto.phase);
        feed(&mut auto, t, 2.0, |_| 0.4 * GB);
        let second = auto.choice().expect("confirmed");
        assert!(second.compress && second.decisions == 2, "{second:?}");
    }

    #[test]
    fn compressing_is_rechecked_and_dropped_once_the_link_outruns_lz4() {
        let mut auto = text_sampled();
        let t = feed(&mut auto, Instant::now(), 2.0, |_| 0.12 * GB);
        let t = feed(&mut auto, t, 2.0, |_| 0.4 * GB);
        assert!(auto.choice().expect("chosen").compress);
        // Compressed blocks keep arriving at 0.4 GB/s: no sign of the faster link.
        let t = feed(&mut auto, t, RECHECK.as_secs_f64() + 0.1, |_| 0.4 * GB);
        assert!(!auto.compressing(), "measuring uncompressed again");
        auto.sample = Some((0.6 * GB, 0.3));
        feed(&mut auto, t, 3.0, |_| 1.2 * GB);
        let choice = auto.choice().expect("chosen again");
        assert!(!choice.compress && choice.decisions == 2, "{choice:?}");
        assert!(!auto.compressing());
    }

    #[test]
    fn lz4_is_timed_on_the_first_long_enough_body() {
        let mut auto = AutoCompress::default();
        auto.offer_sample(&[7; 1000]);
        assert_eq!(auto.sample, None, "too short");
        let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog; "
            .iter()
            .copied()
            .cycle()
            .take(2 << 20)
            .collect();
        auto.offer_sample(&text);
        let (speed, ratio) = auto.sample.expect("sampled");
        assert!(speed > 0.0 && ratio < 0.5, "{speed} {ratio}");
    }
}
