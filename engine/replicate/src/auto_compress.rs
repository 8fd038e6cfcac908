//! `--compress auto`: whether compressing blocks pays on this link, decided from what the
//! job measures.
//!
//! A push compresses its blocks on the job's compressing threads. On a link slower than
//! those threads' lz4, compressed blocks arrive sooner; on a faster one compression is the
//! bottleneck, and a push of data that shrinks little runs slower than uncompressed
//! (README, "Measured", has both cases). Which one a link is depends on the link, the
//! data and the host, so `auto` measures.
//!
//! Across a long link (the job's first exchange answered in [`LONG_PATH`] or more), for
//! data whose sample lz4 shrinks to [`SHRINKS`] or less, where the transport tells how
//! long the job's thread spends compressing (its share of the time is how busy the
//! compressors are):
//!
//! 1. blocks go compressed from the first one, so that a slow link carries nothing
//!    uncompressed while `auto` measures;
//! 2. link-bound, the job's thread waits for answers much of the time; lz4-bound, it
//!    compresses nearly all the time. From [`BUSY_SETTLE`] after the first acknowledged
//!    block (the window's first blocks are compressed back to back whatever the link),
//!    the compressors busy [`BUSY`] or more over two windows of [`BUSY_WINDOW`] or longer
//!    go to step 3 at once. Otherwise, once the compressed rate has settled ([`SETTLE`]
//!    after the first acknowledged block) and stops rising (windows of [`WINDOW`], a
//!    window less than [`PLATEAU`] times the one before, at most [`MAX_WINDOWS`]), the
//!    compressors busy less than [`BUSY`] of the time, on a host with CPU to spare
//!    ([`HOST_IDLE_MIN`]), mean the link is the bottleneck: uncompressed could only be
//!    slower, and compressing is chosen. Otherwise, step 3;
//! 3. the uncompressed rate is measured the same way, and compression kept only if its
//!    rate beat it by [`CONFIRM`].
//!
//! A target whose disk, not the link, is the bottleneck keeps the thread waiting too:
//! there compression is kept although it does not speed the job (it costs CPU on both
//! sides, not rate). A `--rate` cap counts bytes before compression, so the transport
//! does not tell the busy time under one.
//!
//! Across a short link (loopback, a LAN: the target is near, and may itself be what
//! compressing slows, its CPU shared or not), for data that does not shrink, or where the
//! transport cannot tell its compressing time, a decision starts uncompressed instead:
//! the uncompressed rate is measured; compression is tried if it promises to pay
//! (`min(lz4 speed, link rate / ratio)` beating that rate by [`MARGIN`], lz4's speed
//! counted once per compressing thread), and kept only if it then beats it by
//! [`CONFIRM`].
//!
//! Either way `auto` keeps watching, because links and data change during a long job:
//! uncompressed, two windows of [`WATCH`] in a row below [`DROP`] times the rate it chose
//! at (a WAN link now shared, a slower path) start a new decision; compressing, two
//! windows in a row with the compressors [`BUSY`] (the link became faster than lz4)
//! start one, and where the compressors cannot tell, or the uncompressed rate was
//! measured and lost, a new decision comes every [`RECHECK`]. Each new decision times
//! lz4 on a fresh sample. A job that ends before the first choice reports what it was
//! doing then (its trial).

use std::time::{Duration, Instant};

use crate::host_cpu;

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
/// Data whose sample compresses to this fraction or less goes compressed from the start
/// (where the compressors' busy time is known): less shrinking cannot make up for a
/// link that turns out faster than lz4.
pub(crate) const SHRINKS: f64 = 1.0 / MARGIN;
/// The share of a window the job's thread spent compressing from which lz4, not the
/// link, sets the rate (link-bound, it waits for acknowledgements instead; besides
/// compressing it reads and hashes the blocks, so lz4-bound is not quite 1).
pub(crate) const BUSY: f64 = 0.8;
/// Time after the first acknowledged block before the compressors' busy share counts:
/// the window's first blocks are compressed back to back, and acknowledgements come in
/// bursts while TCP ramps up (a shorter settling let a slow link with a long round trip
/// look lz4-bound).
pub(crate) const BUSY_SETTLE: Duration = Duration::from_millis(500);
/// How long a window of the compressors' busy share lasts: short, since while it is
/// measured a link faster than lz4 runs at lz4's rate.
pub(crate) const BUSY_WINDOW: Duration = Duration::from_millis(250);
/// The share of the host's CPU time idle, while compressed blocks were measured, below
/// which the job's thread waiting for answers does not prove the link the bottleneck
/// (the host may be what everything waits for), so uncompressed is measured too. A
/// second guard beside [`BUSY`], whose two cases lie close on a host with few cores.
pub(crate) const HOST_IDLE_MIN: f64 = 0.2;
/// The round trip of the job's first exchange (a small one) from which the target is
/// taken to be across a long link, where waiting for answers is waiting for the link.
/// Below it (loopback, a LAN) the target is near and may be what compressing slows (its
/// CPU, shared or not): there a decision measures uncompressed first, which a short
/// link's quick ramp-up makes cheap.
pub(crate) const LONG_PATH: Duration = Duration::from_millis(10);
/// Once chosen, the rate is watched in windows this long.
pub(crate) const WATCH: Duration = Duration::from_secs(2);
/// Uncompressed: two watched windows in a row below this fraction of the rate chosen at
/// start a new decision.
pub(crate) const DROP: f64 = 0.6;
/// Compressing without knowing how busy the compressors are, or after uncompressed
/// lost: a new decision after this long (it costs one uncompressed measurement, about
/// 1.5 s, per period).
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
    /// Uncompressed request bytes acknowledged per second (best settled window), if
    /// measured: compressing on a link slower than lz4 never sends uncompressed.
    pub raw_rate: Option<f64>,
    /// Request bytes (before compression) acknowledged per second while compressing,
    /// if it was tried.
    pub compressed_rate: Option<f64>,
    /// The share of the time the job's thread spent compressing while compressed blocks
    /// were measured, if the transport tells (near 1: lz4 is the bottleneck).
    pub compressor_busy: Option<f64>,
    /// The share of the host's CPU time idle while compressed blocks were measured, if
    /// known.
    pub host_idle: Option<f64>,
    /// lz4 input bytes per second on the sample: one thread's, times the compressing
    /// threads.
    pub lz4_speed: f64,
    /// Compressed / original size of the sample.
    pub lz4_ratio: f64,
    /// Decisions made in this job so far, this one included (more than 1: the rate or the
    /// data changed and `auto` measured again; 0: the job ended while `auto` measured,
    /// `compress` then says whether its last blocks went compressed).
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
struct BusyTrack {
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
    /// The host's CPU times at `since`, and where they are read.
    cpu_since: Option<host_cpu::CpuTimes>,
    host_cpu: fn() -> Option<host_cpu::CpuTimes>,
}

impl BusyTrack {
    fn new(
        now: Instant,
        busy: Duration,
        window: Duration,
        host_cpu: fn() -> Option<host_cpu::CpuTimes>,
    ) -> Self {
        BusyTrack {
            since: now,
            busy_since: busy,
            window: BusyWindow::new(now, busy, window),
            windows: 0,
            bytes: 0,
            last: now,
            busy_last: busy,
            cpu_since: host_cpu(),
            host_cpu,
        }
    }

    /// The share of the host's CPU time idle since `since`, if known.
    fn host_idle(&self) -> Option<f64> {
        self.cpu_since?.idle_share_until((self.host_cpu)()?)
    }

    /// Counts `bytes` acknowledged at `now` (the compressors busy `busy` in all): the
    /// rate over the track if lz4 has proved the bottleneck (busy [`BUSY`] of the track,
    /// two windows long at least: a single window may catch a burst of answers).
    fn lz4_bound(&mut self, now: Instant, busy: Duration, bytes: u64) -> Option<f64> {
        self.bytes += bytes;
        (self.last, self.busy_last) = (now, busy);
        self.window.add(now, busy, bytes)?;
        self.windows += 1;
        (self.windows >= 2 && self.share() >= BUSY).then(|| self.rate(now))
    }

    fn rate(&self, now: Instant) -> f64 {
        self.bytes as f64 / now.duration_since(self.since).as_secs_f64().max(1e-3)
    }

    /// The share of the track's time (up to the last acknowledgement) the compressors
    /// were busy.
    fn share(&self) -> f64 {
        let seconds = self.last.duration_since(self.since).as_secs_f64().max(1e-3);
        let busy = self.busy_last.saturating_sub(self.busy_since);
        (busy.as_secs_f64() / seconds).min(1.0)
    }
}

/// What a compressed trial measured, kept while uncompressed is measured against it.
#[derive(Debug, Clone, Copy)]
struct CompressedTrial {
    rate: f64,
    busy: f64,
    host_idle: Option<f64>,
}

#[derive(Debug)]
enum Phase {
    /// Before the first acknowledgement.
    Idle,
    /// Uncompressed, its rate measured; `compressed` is the compressed trial already
    /// measured (its waiting did not prove the link the bottleneck), to compare against.
    Raw {
        measuring: Measurement,
        compressed: Option<CompressedTrial>,
    },
    /// Compressed, its rate measured and the compressors' busy share watched;
    /// `raw_rate` is the uncompressed rate measured before, if it was.
    Compressed {
        raw_rate: Option<f64>,
        measuring: Measurement,
        /// When the compressors' busy share starts counting ([`BUSY_SETTLE`]).
        busy_from: Instant,
        /// From then, where the compressors' busy time is known.
        busy: Option<BusyTrack>,
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
    window: BusyWindow,
    low_windows: u32,
}

impl Watch {
    fn new(now: Instant, busy: Duration) -> Self {
        Watch {
            chosen_at: now,
            window: BusyWindow::new(now, busy, WATCH),
            low_windows: 0,
        }
    }

    /// Counts `bytes` acknowledged at `now`; whether `choice` should be made again.
    fn redecide(
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

/// The measurement in progress.
#[derive(Debug)]
pub(crate) struct AutoCompress {
    phase: Phase,
    sample: Option<(f64, f64)>,
    /// The last choice made (kept while a new decision is measured).
    last: Option<AutoChoice>,
    /// Threads compressing in parallel: the sample's speed counts this many times.
    threads: usize,
    /// How long the job's thread has compressed in all, if the transport tells.
    busy: Option<Duration>,
    /// The round trip of the job's first exchange, once answered: how long the path is.
    path_round_trip: Option<Duration>,
    /// Where the host's CPU times are read.
    host_cpu: fn() -> Option<host_cpu::CpuTimes>,
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
            busy: None,
            path_round_trip: None,
            host_cpu: host_cpu::read,
        }
    }

    /// Whether a new decision starts compressed: the data shrinks, the compressors' busy
    /// time will tell if lz4 is the bottleneck, and the target is across a long link (the
    /// job's first exchange, answered before any block goes, says).
    fn starts_compressed(&self) -> bool {
        let long_path = self.path_round_trip.is_some_and(|rtt| rtt >= LONG_PATH);
        long_path && self.busy.is_some() && self.sample.is_some_and(|(_, ratio)| ratio <= SHRINKS)
    }

    /// Whether requests should go compressed now.
    pub(crate) fn compressing(&self) -> bool {
        match &self.phase {
            Phase::Idle => self.starts_compressed(),
            Phase::Compressed { .. } => true,
            Phase::Chosen { choice, .. } => choice.compress,
            Phase::Raw { .. } => false,
        }
    }

    /// The latest choice, once one is made (a new decision being measured does not hide
    /// the one before).
    #[cfg(test)]
    fn choice(&self) -> Option<AutoChoice> {
        self.last
    }

    /// What the job did, for its report: the latest choice or, while the first decision
    /// is measured, what it was doing (`decisions` 0; `compress`: its blocks went
    /// compressed, which a report without a choice would hide).
    pub(crate) fn outcome(&self) -> Option<AutoChoice> {
        if self.last.is_some() {
            return self.last;
        }
        let (lz4_speed, lz4_ratio) = self.sample.unwrap_or((0.0, 1.0));
        let trial = AutoChoice {
            compress: self.compressing(),
            raw_rate: None,
            compressed_rate: None,
            compressor_busy: None,
            host_idle: None,
            lz4_speed,
            lz4_ratio,
            decisions: 0,
        };
        match &self.phase {
            Phase::Compressed { raw_rate, busy, .. } => Some(AutoChoice {
                raw_rate: *raw_rate,
                compressor_busy: busy.as_ref().map(BusyTrack::share),
                host_idle: busy.as_ref().and_then(BusyTrack::host_idle),
                ..trial
            }),
            Phase::Raw {
                compressed: Some(c),
                ..
            } => Some(AutoChoice {
                compressed_rate: Some(c.rate),
                compressor_busy: Some(c.busy),
                host_idle: c.host_idle,
                ..trial
            }),
            Phase::Idle if trial.compress => Some(trial),
            _ => None,
        }
    }

    /// The round trip of the job's first exchange (told once it is answered).
    pub(crate) fn path_round_trip(&mut self, round_trip: Duration) {
        self.path_round_trip = Some(round_trip);
    }

    /// The job's thread has spent `busy` compressing in all (told by the transport
    /// before each answer it hands over).
    pub(crate) fn compressor_busy(&mut self, busy: Duration) {
        self.busy = Some(busy);
    }

    fn choose(&mut self, now: Instant, choice: AutoChoice) {
        let choice = AutoChoice {
            decisions: self.last.map_or(1, |l| l.decisions + 1),
            ..choice
        };
        self.last = Some(choice);
        self.phase = Phase::Chosen {
            choice,
            watch: Watch::new(now, self.busy.unwrap_or_default()),
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

    /// A new decision from `now`: compressed first where that can be judged (data that
    /// shrinks, the compressors' busy time told, across a long link), else uncompressed.
    fn start_deciding(&mut self, now: Instant) {
        self.phase = if self.starts_compressed() {
            self.compressed_trial(now, None)
        } else {
            Phase::Raw {
                measuring: Measurement::new(now),
                compressed: None,
            }
        };
    }

    fn compressed_trial(&self, now: Instant, raw_rate: Option<f64>) -> Phase {
        Phase::Compressed {
            raw_rate,
            measuring: Measurement::new(now),
            busy_from: now + BUSY_SETTLE,
            busy: None,
        }
    }

    /// `bytes` of request (counted before compression) were acknowledged at `now`.
    pub(crate) fn acknowledged(&mut self, now: Instant, bytes: u64) {
        let (lz4_speed, lz4_ratio) = self.sample.unwrap_or((0.0, 1.0));
        let busy_total = self.busy;
        let host_cpu = self.host_cpu;
        let choice = |compress, raw_rate, compressed: Option<CompressedTrial>| AutoChoice {
            compress,
            raw_rate,
            compressed_rate: compressed.map(|c| c.rate),
            compressor_busy: compressed.map(|c| c.busy),
            host_idle: compressed.and_then(|c| c.host_idle),
            lz4_speed,
            lz4_ratio,
            decisions: 0,
        };
        match &mut self.phase {
            Phase::Idle => self.start_deciding(now),
            Phase::Raw {
                measuring,
                compressed,
            } => {
                let compressed = *compressed;
                let Some(raw_rate) = measuring.add(now, bytes) else {
                    return;
                };
                match compressed {
                    Some(c) => self.choose(
                        now,
                        choice(c.rate >= CONFIRM * raw_rate, Some(raw_rate), compressed),
                    ),
                    None if pays(raw_rate, lz4_speed, lz4_ratio) => {
                        self.phase = self.compressed_trial(now, Some(raw_rate));
                    }
                    None => self.choose(now, choice(false, Some(raw_rate), None)),
                }
            }
            Phase::Compressed {
                raw_rate,
                measuring,
                busy_from,
                busy,
            } => {
                let raw_rate = *raw_rate;
                let plateau = measuring.add(now, bytes);
                if let Some(total) = busy_total
                    && now >= *busy_from
                {
                    let track = busy
                        .get_or_insert_with(|| BusyTrack::new(now, total, BUSY_WINDOW, host_cpu));
                    if let Some(rate) = track.lz4_bound(now, total, bytes)
                        && raw_rate.is_none()
                    {
                        // lz4 sets the rate: measure uncompressed, and compare.
                        let trial = CompressedTrial {
                            rate,
                            busy: track.share(),
                            host_idle: track.host_idle(),
                        };
                        self.phase = Phase::Raw {
                            measuring: Measurement::new(now),
                            compressed: Some(trial),
                        };
                        return;
                    }
                }
                let Some(rate) = plateau else { return };
                let trial = busy.as_ref().map(|track| CompressedTrial {
                    rate,
                    busy: track.share(),
                    host_idle: track.host_idle(),
                });
                // Waiting proves the link the bottleneck (the trial runs across long
                // links only) if the compressors waited (busy over the whole trial:
                // lz4-bound, its last window just short) on a host with CPU to spare.
                let unproven = trial
                    .filter(|t| t.busy >= BUSY || t.host_idle.is_none_or(|i| i < HOST_IDLE_MIN));
                if raw_rate.is_none()
                    && let Some(trial) = unproven
                {
                    self.phase = Phase::Raw {
                        measuring: Measurement::new(now),
                        compressed: Some(trial),
                    };
                    return;
                }
                let compress = raw_rate.is_none_or(|raw| rate >= CONFIRM * raw);
                let compressed = trial.or(Some(CompressedTrial {
                    rate,
                    busy: 0.0,
                    host_idle: None,
                }));
                let mut chosen = choice(compress, raw_rate, compressed);
                chosen.compressor_busy = trial.map(|t| t.busy);
                self.choose(now, chosen);
            }
            Phase::Chosen { choice, watch } => {
                if watch.redecide(now, bytes, busy_total, choice) {
                    // On a fresh sample of the data.
                    self.sample = None;
                    self.phase = Phase::Idle;
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
        feed_busy(auto, start, seconds, rate, None)
    }

    /// As [`feed`], the compressors busy `share` of the time when it is given (the
    /// transport tells their busy time before each acknowledgement).
    fn feed_busy(
        auto: &mut AutoCompress,
        start: Instant,
        seconds: f64,
        rate: impl Fn(f64) -> f64,
        share: Option<f64>,
    ) -> Instant {
        let step = Duration::from_millis(10);
        let mut now = start;
        while now < start + Duration::from_secs_f64(seconds) {
            let t = now.duration_since(start).as_secs_f64();
            if let Some(share) = share {
                let busy = auto.busy.unwrap_or_default() + step.mul_f64(share);
                auto.compressor_busy(busy);
            }
            auto.acknowledged(now, (rate(t) * step.as_secs_f64()) as u64);
            host_runs(step);
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
        let raw = choice.raw_rate.expect("measured first");
        assert!((raw - 0.12 * GB).abs() < 0.02 * GB, "{choice:?}");
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
        assert!(choice.raw_rate.expect("measured") > 1.0 * GB, "{choice:?}");
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
        assert!(matches!(auto.phase, Phase::Idle), "{:?}", auto.phase);
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

    thread_local! {
        /// The played host's CPU times, and the share of its time idle as it goes on.
        static HOST: std::cell::Cell<(u64, u64, f64)> = const { std::cell::Cell::new((0, 0, 0.5)) };
    }

    fn played_host() -> Option<host_cpu::CpuTimes> {
        let (idle, total, _) = HOST.get();
        Some(host_cpu::CpuTimes::new(idle, total))
    }

    /// The played host goes on for `step`, idle its current share of it.
    fn host_runs(step: Duration) {
        let (idle, total, share) = HOST.get();
        let ticks = step.as_micros() as u64;
        HOST.set((idle + (ticks as f64 * share) as u64, total + ticks, share));
    }

    /// An `auto` whose transport tells the compressors' busy time, on log text, on a
    /// host idle half the time.
    fn text_with_busy_time() -> AutoCompress {
        HOST.set((0, 0, 0.5));
        AutoCompress {
            busy: Some(Duration::ZERO),
            host_cpu: played_host,
            path_round_trip: Some(LONG_PATH),
            ..text_sampled()
        }
    }

    #[test]
    fn shrinking_data_goes_compressed_from_the_first_block_on_a_slow_link() {
        let mut auto = text_with_busy_time();
        assert!(auto.compressing(), "before any acknowledgement");
        // 1 Gbit/s carries 0.4 GB/s of text shrunk to 0.3; lz4 at 0.6 GB/s per thread is
        // busy a third of the time: the job's thread mostly waits for the link.
        let mut t = Instant::now();
        while auto.choice().is_none() {
            assert!(auto.compressing(), "never uncompressed: {:?}", auto.phase);
            t = feed_busy(&mut auto, t, 0.1, |_| 0.4 * GB, Some(0.35));
        }
        let choice = auto.choice().expect("chosen");
        assert!(choice.compress && auto.compressing(), "{choice:?}");
        assert_eq!(choice.raw_rate, None, "uncompressed never measured");
        assert!(
            choice.compressed_rate.is_some_and(|r| r > 0.35 * GB),
            "{choice:?}"
        );
        assert!(
            choice.compressor_busy.is_some_and(|b| b < BUSY),
            "{choice:?}"
        );
    }

    #[test]
    fn the_window_filling_at_the_start_and_one_busy_window_are_not_lz4_bound() {
        let mut auto = text_with_busy_time();
        let (settle, window) = (BUSY_SETTLE.as_secs_f64(), BUSY_WINDOW.as_secs_f64());
        // The window's first blocks go back to back; then one burst of a busy window.
        let t = feed_busy(&mut auto, Instant::now(), settle, |_| 0.4 * GB, Some(1.0));
        let t = feed_busy(&mut auto, t, window, |_| 0.4 * GB, Some(0.9));
        let mut t = feed_busy(&mut auto, t, window, |_| 0.4 * GB, Some(0.5));
        while auto.choice().is_none() {
            assert!(auto.compressing(), "{:?}", auto.phase);
            t = feed_busy(&mut auto, t, 0.1, |_| 0.4 * GB, Some(0.5));
        }
        let choice = auto.choice().expect("chosen");
        assert!(choice.compress && choice.raw_rate.is_none(), "{choice:?}");
        let busy = choice.compressor_busy.expect("told");
        assert!((0.5..0.6).contains(&busy), "settled share only: {choice:?}");
    }

    #[test]
    fn waiting_on_a_host_without_spare_cpu_is_checked_against_uncompressed() {
        // Loopback: the target shares the host, and compressing starves it.
        let mut auto = text_with_busy_time();
        HOST.set((0, 0, 0.02));
        let mut t = Instant::now();
        while auto.compressing() {
            t = feed_busy(&mut auto, t, 0.1, |_| 0.5 * GB, Some(0.6));
            assert!(auto.choice().is_none(), "not chosen on waiting alone");
        }
        let trial = auto.outcome().expect("measuring");
        assert!(
            trial.host_idle.is_some_and(|idle| idle < HOST_IDLE_MIN),
            "{trial:?}"
        );
        // Uncompressed, the same host moves 1.2 GB/s.
        feed_busy(&mut auto, t, 3.0, |_| 1.2 * GB, Some(0.0));
        let choice = auto.choice().expect("chosen");
        assert!(!choice.compress && choice.raw_rate.is_some(), "{choice:?}");
    }

    #[test]
    fn a_short_path_measures_uncompressed_first() {
        // A 1 Gbit/s LAN: the target is near, so waiting may be for it, not the link.
        let mut auto = text_with_busy_time();
        auto.path_round_trip(Duration::from_micros(300));
        assert!(!auto.compressing(), "short: uncompressed first");
        let t = feed_busy(&mut auto, Instant::now(), 0.01, |_| 0.12 * GB, Some(0.0));
        assert!(!auto.compressing(), "short: uncompressed first");
        // Uncompressed 0.12 GB/s, then compressed 0.4: compressing wins, measured.
        let t = feed_busy(&mut auto, t, 2.0, |_| 0.12 * GB, Some(0.0));
        assert!(auto.compressing(), "{:?}", auto.phase);
        feed_busy(&mut auto, t, 2.0, |_| 0.4 * GB, Some(0.4));
        let choice = auto.choice().expect("chosen");
        assert!(
            choice.compress && choice.raw_rate.is_some_and(|r| r < 0.13 * GB),
            "{choice:?}"
        );
    }

    #[test]
    fn busy_compressors_on_a_fast_link_switch_to_uncompressed_at_once() {
        let mut auto = text_with_busy_time();
        let start = Instant::now();
        // 10 Gbit/s: lz4 delivers 0.5 GB/s and never rests.
        let lz4_proved = BUSY_SETTLE + 2 * BUSY_WINDOW + Duration::from_millis(50);
        let t = feed_busy(
            &mut auto,
            start,
            lz4_proved.as_secs_f64(),
            |_| 0.5 * GB,
            Some(0.95),
        );
        assert!(!auto.compressing(), "{:?}", auto.phase);
        let trial = auto.outcome().expect("what it does is reported");
        assert!(!trial.compress && trial.decisions == 0, "{trial:?}");
        assert!(
            trial
                .compressed_rate
                .is_some_and(|r| (r - 0.5 * GB).abs() < 0.05 * GB)
        );
        // Uncompressed, the link carries 1.2 GB/s: compression stays off.
        feed_busy(&mut auto, t, 3.0, |_| 1.2 * GB, Some(0.0));
        let choice = auto.choice().expect("chosen");
        assert!(!choice.compress && !auto.compressing(), "{choice:?}");
        assert!(choice.raw_rate.is_some_and(|r| r > 1.1 * GB), "{choice:?}");
    }

    #[test]
    fn busy_compressors_still_win_where_uncompressed_is_slower_yet() {
        // A slow host on a slow link: lz4 is the bottleneck, but uncompressed is worse.
        let mut auto = text_with_busy_time();
        let lz4_proved = BUSY_SETTLE + 2 * BUSY_WINDOW + Duration::from_millis(50);
        let t = feed_busy(
            &mut auto,
            Instant::now(),
            lz4_proved.as_secs_f64(),
            |_| 0.3 * GB,
            Some(0.9),
        );
        assert!(!auto.compressing(), "{:?}", auto.phase);
        feed_busy(&mut auto, t, 3.0, |_| 0.12 * GB, Some(0.0));
        let choice = auto.choice().expect("chosen");
        assert!(choice.compress && auto.compressing(), "{choice:?}");
        assert!(choice.raw_rate.is_some() && choice.compressed_rate.is_some());
    }

    #[test]
    fn data_that_does_not_shrink_starts_uncompressed() {
        let mut auto = AutoCompress {
            sample: Some((0.6 * GB, 0.95)),
            ..text_with_busy_time()
        };
        assert!(!auto.compressing());
        feed_busy(&mut auto, Instant::now(), 3.0, |_| 0.12 * GB, Some(0.0));
        let choice = auto.choice().expect("chosen");
        assert!(
            !choice.compress && choice.compressed_rate.is_none(),
            "{choice:?}"
        );
    }

    #[test]
    fn compressing_measures_again_once_the_compressors_become_the_bottleneck() {
        let mut auto = text_with_busy_time();
        let t = feed_busy(&mut auto, Instant::now(), 3.0, |_| 0.4 * GB, Some(0.3));
        let first = auto.choice().expect("chosen");
        assert!(first.compress && first.decisions == 1, "{first:?}");
        // One busy window is a burst, not a faster link.
        let t = feed_busy(&mut auto, t, WATCH.as_secs_f64(), |_| 0.5 * GB, Some(0.9));
        let t = feed_busy(
            &mut auto,
            t,
            2.0 * WATCH.as_secs_f64(),
            |_| 0.4 * GB,
            Some(0.3),
        );
        assert!(
            matches!(auto.phase, Phase::Chosen { .. }),
            "{:?}",
            auto.phase
        );
        // The link became faster than lz4 for good: a new decision, which measures
        // uncompressed once the compressors prove busy again, and chooses it.
        let mut t = feed_busy(
            &mut auto,
            t,
            3.0 * WATCH.as_secs_f64(),
            |_| 0.5 * GB,
            Some(0.9),
        );
        assert!(
            !matches!(auto.phase, Phase::Chosen { .. }),
            "{:?}",
            auto.phase
        );
        auto.sample = Some((0.6 * GB, 0.3));
        let start_again = t;
        while auto.choice() == Some(first) {
            let (rate, share) = if auto.compressing() {
                (0.5 * GB, 0.9)
            } else {
                (1.2 * GB, 0.0)
            };
            t = feed_busy(&mut auto, t, 0.01, |_| rate, Some(share));
            assert!(t.duration_since(start_again) < Duration::from_secs(5));
        }
        let second = auto.choice().expect("chosen again");
        assert!(!second.compress && second.decisions == 2, "{second:?}");
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
