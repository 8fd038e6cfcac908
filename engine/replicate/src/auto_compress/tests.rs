//! `auto`'s decisions played in virtual time: rates, busy shares, a played host.

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
