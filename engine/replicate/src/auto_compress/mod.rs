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

mod windows;

use windows::{BusyTrack, Measurement, Watch};

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

/// What a compressed trial measured, kept while uncompressed is measured against it.
#[derive(Debug, Clone, Copy)]
struct CompressedTrial {
    rate: f64,
    /// The compressors' busy share, where told.
    busy: Option<f64>,
    host_idle: Option<f64>,
}

impl CompressedTrial {
    /// The trial at `rate`, with what `track` showed if it was kept.
    fn measured(
        rate: f64,
        track: Option<&BusyTrack>,
        host_cpu: fn() -> Option<host_cpu::CpuTimes>,
    ) -> Self {
        let (busy, host_idle) = busy_and_idle(track, host_cpu);
        CompressedTrial {
            rate,
            busy,
            host_idle,
        }
    }
}

/// The compressors' busy share and the host's idle share over `track`, if it was kept
/// (the host's CPU times are read only then).
fn busy_and_idle(
    track: Option<&BusyTrack>,
    host_cpu: fn() -> Option<host_cpu::CpuTimes>,
) -> (Option<f64>, Option<f64>) {
    (
        track.map(BusyTrack::share),
        track.and_then(|t| t.host_idle(host_cpu())),
    )
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

impl Phase {
    /// Compressed from `now`, after the uncompressed rate `raw_rate` if it was measured.
    fn compressed_trial(now: Instant, raw_rate: Option<f64>) -> Phase {
        Phase::Compressed {
            raw_rate,
            measuring: Measurement::new(now),
            busy_from: now + BUSY_SETTLE,
            busy: None,
        }
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
            Phase::Compressed { raw_rate, busy, .. } => {
                let (compressor_busy, host_idle) = busy_and_idle(busy.as_ref(), self.host_cpu);
                Some(AutoChoice {
                    raw_rate: *raw_rate,
                    compressor_busy,
                    host_idle,
                    ..trial
                })
            }
            Phase::Raw {
                compressed: Some(c),
                ..
            } => Some(AutoChoice {
                compressed_rate: Some(c.rate),
                compressor_busy: c.busy,
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
            Phase::compressed_trial(now, None)
        } else {
            Phase::Raw {
                measuring: Measurement::new(now),
                compressed: None,
            }
        };
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
            compressor_busy: compressed.and_then(|c| c.busy),
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
                        self.phase = Phase::compressed_trial(now, Some(raw_rate));
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
                        .get_or_insert_with(|| BusyTrack::new(now, total, BUSY_WINDOW, host_cpu()));
                    if let Some(rate) = track.lz4_bound(now, total, bytes)
                        && raw_rate.is_none()
                    {
                        // lz4 sets the rate: measure uncompressed, and compare.
                        let trial = CompressedTrial::measured(rate, Some(track), host_cpu);
                        self.phase = Phase::Raw {
                            measuring: Measurement::new(now),
                            compressed: Some(trial),
                        };
                        return;
                    }
                }
                let Some(rate) = plateau else { return };
                let trial = CompressedTrial::measured(rate, busy.as_ref(), host_cpu);
                // Waiting proves the link the bottleneck (the trial runs across long
                // links only) if the compressors waited (busy under [`BUSY`] over the
                // whole trial: busier is lz4-bound, its last window just short) on a host
                // with CPU to spare. Otherwise, measure uncompressed too.
                let proven = trial.busy.is_some_and(|b| b < BUSY)
                    && trial.host_idle.is_some_and(|idle| idle >= HOST_IDLE_MIN);
                if raw_rate.is_none() && !proven {
                    self.phase = Phase::Raw {
                        measuring: Measurement::new(now),
                        compressed: Some(trial),
                    };
                    return;
                }
                let compress = raw_rate.is_none_or(|raw| rate >= CONFIRM * raw);
                self.choose(now, choice(compress, raw_rate, Some(trial)));
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
mod tests;
