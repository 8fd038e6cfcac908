//! Finds the link's rate from what arrives, probes above it now and then, and gives way
//! to a growing queue.
//!
//! - **Startup**: the rate doubles every round trip (never above twice the best delivery
//!   rate) until the receiver's delivery rate stops growing (three round trips without a
//!   quarter more; then the rate is the best delivery rate seen), or the round trip grows
//!   by a queue (the smoothed round trip, or three measured in a row: the smoothed one
//!   lags by more than a round trip of doubling).
//! - **Drain**: after such an overshoot, half the delivery rate until the queue is gone
//!   (at most eight round trips), then cruise, climbing back as after a queue (below).
//! - **Cruise**: the rate is the best delivery rate of the last few round trips times a
//!   gain that cycles per round trip: 1.25 (probe: is there more?), 0.75 (drain what the
//!   probe queued), then six rounds at 1. The queue a probe makes, seen in its round, the
//!   drain's and the next, is not a queue to give way to.
//! - **Queue**: when the smoothed round trip exceeds the smallest one seen by more than
//!   the queue allowance (a quarter of the smallest, at least `queue_target`), or loss
//!   comes while the round trip stands at the top of its recent swing, the link
//!   is full: no probing, and each round trip the rate falls to 0.85 of the best delivery
//!   rate since the queue appeared (before it, for the first cut: a receiver that stalls
//!   reports a low rate with its long round trip) or of itself, whichever is lower, but
//!   not below half the delivery rate it had when the queue appeared and not while the
//!   round trip is already falling, until the queue drains; the delivery rates seen before are
//!   forgotten, and cruise resumes with a draining round. This is what leaves room to TCP
//!   flows sharing the link, without handing all of it to a loss-based flow that keeps
//!   the queue full. The smallest round trip is kept for two minutes, so such a queue
//!   does not become the new smallest.
//! - **Recovery**: after the draining round, the rate climbs back towards 0.9 of the best
//!   delivery rate before the queue, by a quarter of the delivery rate each round trip,
//!   and the cycle resumes once it is there. A receiver that falls behind now and then
//!   (one sharing its cores) makes such queues often, and the cycle's probes alone would
//!   take many round trips to climb back each time.
//! - **Random loss is not a signal**: a few percent of loss on a long link (radio, a
//!   congested peering) says nothing about the bottleneck's rate, and backing off for it
//!   is what keeps TCP at a few percent of such links. Heavy loss (over
//!   `overflow_loss`, and at least [`OVERFLOW_MIN_LOST`] datagrams) is: a queue
//!   overflowing under this sender. It ends startup, and in cruise it is treated as a
//!   queue. One datagram lost among startup's first few is a tenth of them, and no
//!   evidence of anything.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{RateController, RateSample};

/// Settings of [`Probe`].
#[derive(Debug, Clone, Copy)]
pub struct ProbeConfig {
    /// Never above this many bytes per second (0: no limit).
    pub max_rate: u64,
    /// Never below this many bytes per second.
    pub min_rate: u64,
    /// The rate before the first report.
    pub initial_rate: u64,
    /// The smallest queue (beyond the smallest round trip) taken as congestion.
    pub queue_target: Duration,
    /// Loss in a report interval above this fraction is a queue overflowing.
    pub overflow_loss: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            max_rate: 0,
            min_rate: 128 * 1024,
            initial_rate: 8 * 1024 * 1024,
            queue_target: Duration::from_millis(5),
            overflow_loss: 0.1,
        }
    }
}

/// Gains of the cruise cycle, one round trip each: the probe queues a quarter of a round
/// trip at most, the next round drains it.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// The rate's part of the delivery rate while startup's queue drains...
const DRAIN_GAIN: f64 = 0.5;
/// ...for at most this many round trips (a queue standing longer is another flow's).
const MAX_DRAIN_ROUNDS: u32 = 8;
/// Startup sends at most this many times the best delivery rate.
const STARTUP_HEADROOM: f64 = 2.0;
/// Rounds of a cycle, from its probe, whose queue is the probe's own: the probe's and the
/// drain's, and the one their round trips are reported in.
const OWN_QUEUE_ROUNDS: usize = 3;
/// Datagrams lost in a report's window below which no loss fraction reads as an overflow:
/// at 1% random loss, four of a startup window's dozen or so go about once in a hundred
/// thousand windows, while an overflow loses a tenth of many.
const OVERFLOW_MIN_LOST: u64 = 4;
/// The rate's factor per round trip while the round trip shows a queue.
const QUEUE_BACKOFF: f64 = 0.85;
/// The part of its delivery rate before a queue that a sender keeps however long the
/// queue stands.
const QUEUE_FLOOR: f64 = 0.5;
/// After a queue, the part of the delivery rate before it that the rate climbs back to...
const RECOVERY_TARGET: f64 = 0.9;
/// ...by this factor of the delivery rate per round trip (then the cruise cycle again).
const RECOVERY_GAIN: f64 = 1.25;
/// Round trips measured in a row above the queue allowance that end startup.
const RISING_SAMPLES: usize = 3;
/// Round trips the delivery-rate maximum is kept for.
const BANDWIDTH_WINDOW_ROUNDS: u32 = 10;
/// Round trips without a queue after which the floor of giving way is drawn afresh.
const CALM_ROUNDS: u32 = 20;
/// How long the smallest round trip stands before a new measurement replaces it: long,
/// because a queue another flow keeps standing must not become the new smallest.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(120);
/// The round trip assumed before the first measurement.
const DEFAULT_RTT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Startup {
        best: u64,
        rounds_without_growth: u32,
    },
    /// Startup overshot (the round trip shows its queue): sending at half the delivery
    /// rate until the queue is gone, the delivery rate meanwhile being the link's.
    Drain { rounds: u32 },
    Cruise {
        cycle: usize,
        /// This cycle began with a probe of this sender's (not with a queue's end).
        probed: bool,
    },
}

/// Delivery-rate probing with a queue guard.
#[derive(Debug, Clone)]
pub struct Probe {
    config: ProbeConfig,
    rate: f64,
    phase: Phase,
    /// Delivery rates with when they were reported, for the windowed maximum.
    delivered: VecDeque<(Instant, u64)>,
    /// Round trips of the same window, for the swing a deep queue makes.
    recent_rtts: VecDeque<(Instant, Duration)>,
    srtt: Option<Duration>,
    min_rtt: Option<(Duration, Instant)>,
    round_started: Option<Instant>,
    last_sample: Option<Instant>,
    /// While the round trip shows a queue: the rate given way down to.
    yield_floor: Option<f64>,
    /// Round trips since the round trip last showed a queue.
    calm_rounds: u32,
    /// The smoothed round trip when the rate was last cut for a queue: while it is lower
    /// the queue is draining, and the rate is not cut again.
    cut_at_srtt: Option<Duration>,
    /// Whether the last sample showed a queue.
    in_queue: bool,
    /// After a queue: the rate to climb back to, each round trip, before cycling again.
    recover_to: Option<f64>,
    /// The best delivery rate before the queue standing now, until its first cut.
    before_queue: Option<f64>,
}

impl Probe {
    /// A controller that has seen nothing yet.
    pub fn new(config: ProbeConfig) -> Self {
        Probe {
            rate: config.initial_rate as f64,
            config,
            phase: Phase::Startup {
                best: 0,
                rounds_without_growth: 0,
            },
            delivered: VecDeque::new(),
            recent_rtts: VecDeque::new(),
            srtt: None,
            min_rtt: None,
            round_started: None,
            last_sample: None,
            yield_floor: None,
            calm_rounds: 0,
            cut_at_srtt: None,
            in_queue: false,
            recover_to: None,
            before_queue: None,
        }
    }

    fn round_trip(&self) -> Duration {
        self.srtt.unwrap_or(DEFAULT_RTT)
    }

    fn clamp(&mut self) -> u64 {
        let max = if self.config.max_rate == 0 {
            f64::from(u32::MAX) * 1024.0
        } else {
            self.config.max_rate as f64
        };
        let min = (self.config.min_rate as f64).min(max);
        self.rate = self.rate.clamp(min, max);
        self.rate as u64
    }

    fn best_delivery(&self) -> u64 {
        self.delivered.iter().map(|&(_, r)| r).max().unwrap_or(0)
    }

    /// Whether the loss of this report is a queue overflowing rather than the path's own:
    /// it comes while the round trip stands at the top of its recent swing (a buffer
    /// full), outside this sender's own probing and draining rounds. Random loss strikes
    /// at any round trip; overflow, when the queue is at its longest.
    fn congestion_loss(&self, loss: f64) -> bool {
        let own_probe = matches!(self.phase, Phase::Cruise { cycle: 0 | 1, .. });
        let (Some(srtt), Some((min, _)), Some(max)) = (
            self.srtt,
            self.min_rtt,
            self.recent_rtts.iter().map(|&(_, r)| r).max(),
        ) else {
            return false;
        };
        let swing = max.saturating_sub(min);
        loss > 0.0
            && !own_probe
            && swing > (min / 4).max(self.config.queue_target)
            && srtt + swing / 4 >= max
    }

    fn note_rtt(&mut self, now: Instant, rtt: Duration) {
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(s) => (s * 7 + rtt) / 8,
        });
        let stale = self.min_rtt.is_none_or(|(min, at)| {
            rtt <= min || now.saturating_duration_since(at) > MIN_RTT_WINDOW
        });
        if stale {
            self.min_rtt = Some((rtt, now));
        }
    }

    /// Round trip beyond the smallest that reads as a queue.
    fn queue_allowance(&self, min: Duration) -> Duration {
        (min / 4).max(self.config.queue_target)
    }

    /// Whether the round trip shows a queue.
    fn queued(&self) -> bool {
        let (Some(srtt), Some((min, _))) = (self.srtt, self.min_rtt) else {
            return false;
        };
        srtt > min + self.queue_allowance(min)
    }

    /// Whether the last few round trips measured all show a queue: in startup, where the
    /// rate doubles each round trip, the smoothed round trip shows it too late.
    fn rising(&self) -> bool {
        let Some((min, _)) = self.min_rtt else {
            return false;
        };
        let limit = min + self.queue_allowance(min);
        self.recent_rtts.len() >= RISING_SAMPLES
            && (self.recent_rtts.iter().rev())
                .take(RISING_SAMPLES)
                .all(|&(_, r)| r > limit)
    }
}

impl RateController for Probe {
    fn initial_rate(&self) -> u64 {
        let mut copy = self.clone();
        copy.clamp()
    }

    fn on_sample(&mut self, s: &RateSample) -> u64 {
        if let Some(rtt) = s.rtt {
            self.note_rtt(s.now, rtt);
        }
        let round = self.round_trip();
        let window = (round * BANDWIDTH_WINDOW_ROUNDS).max(Duration::from_millis(200));
        if let Some(rtt) = s.rtt {
            self.recent_rtts.push_back((s.now, rtt));
        }
        while self
            .recent_rtts
            .front()
            .is_some_and(|&(at, _)| s.now.saturating_duration_since(at) > window)
        {
            self.recent_rtts.pop_front();
        }
        if self.recent_rtts.len() > 1024 {
            let highest = self.recent_rtts.iter().map(|&(_, r)| r).max();
            self.recent_rtts.retain(|&(_, r)| Some(r) == highest);
        }
        self.delivered.push_back((s.now, s.delivery_rate));
        while self
            .delivered
            .front()
            .is_some_and(|&(at, _)| s.now.saturating_duration_since(at) > window)
        {
            self.delivered.pop_front();
        }
        // Bounded whatever the report rate: the maximum survives the thinning.
        if self.delivered.len() > 1024 {
            let best = self.best_delivery();
            self.delivered.retain(|&(_, r)| r == best);
            self.delivered.push_back((s.now, s.delivery_rate));
        }
        let elapsed = self
            .last_sample
            .map_or(Duration::ZERO, |at| s.now.saturating_duration_since(at));
        self.last_sample = Some(s.now);
        let new_round = match self.round_started {
            Some(at) if s.now.saturating_duration_since(at) < round => false,
            _ => {
                self.round_started = Some(s.now);
                true
            }
        };
        let best = self.best_delivery();
        // A probe queues a little by design, and the drain after it takes it away.
        let own_queue =
            matches!(self.phase, Phase::Cruise { cycle, probed: true } if cycle < OWN_QUEUE_ROUNDS);
        let queued = (self.queued() && !own_queue)
            || (s.loss > self.config.overflow_loss && s.lost >= OVERFLOW_MIN_LOST)
            || self.congestion_loss(s.loss);
        let rising = self.rising();
        match &mut self.phase {
            Phase::Startup {
                best: seen,
                rounds_without_growth,
            } => {
                if new_round && best > 0 {
                    if best as f64 >= *seen as f64 * 1.25 {
                        *seen = best;
                        *rounds_without_growth = 0;
                    } else {
                        *rounds_without_growth += 1;
                    }
                }
                if queued || rising {
                    self.phase = Phase::Drain { rounds: 0 };
                    self.rate = best as f64 * DRAIN_GAIN;
                    // While the queue drains, the delivery rate is this sender's own:
                    // climb back after it.
                    self.recover_to = Some(best as f64 * RECOVERY_TARGET);
                } else if *rounds_without_growth >= 3 {
                    self.phase = Phase::Cruise {
                        cycle: 1,
                        probed: false,
                    };
                    self.rate = best as f64 * CYCLE[1];
                } else {
                    // Doubling on reports a round trip old: never above twice what
                    // arrives, or the overshoot fills the path's queue and then some.
                    let growth = 2f64.powf(elapsed.as_secs_f64() / round.as_secs_f64());
                    self.rate *= growth.min(2.0);
                    if best > 0 {
                        self.rate = self.rate.min(STARTUP_HEADROOM * best as f64);
                    }
                }
            }
            Phase::Drain { rounds } => {
                if new_round {
                    *rounds += 1;
                }
                if !queued {
                    // Drained: cruise at what the link delivered meanwhile.
                    self.phase = Phase::Cruise {
                        cycle: 2,
                        probed: false,
                    };
                    self.rate = best as f64;
                } else if *rounds >= MAX_DRAIN_ROUNDS {
                    // The queue stands: another flow's, given way to in cruise.
                    self.phase = Phase::Cruise {
                        cycle: 1,
                        probed: false,
                    };
                    self.rate = best as f64 * CYCLE[1];
                } else {
                    self.rate = best as f64 * DRAIN_GAIN;
                }
            }
            Phase::Cruise { cycle, probed } => {
                if new_round {
                    *cycle = (*cycle + 1) % CYCLE.len();
                    if *cycle == 0 {
                        *probed = true;
                    }
                }
                if queued {
                    // A standing queue: another flow wants the link, or this one overshot.
                    // Give way from what arrives now, round trip after round trip, down to
                    // a part of what this flow had before the queue (a loss-based flow
                    // would take it all otherwise), and forget the higher rates of before,
                    // so the queue's end does not bring them back; then a draining round.
                    let floor = *self.yield_floor.get_or_insert(best as f64 * QUEUE_FLOOR);
                    if !self.in_queue {
                        self.recover_to = Some(best as f64 * RECOVERY_TARGET);
                        self.before_queue = Some(best as f64);
                    }
                    // Cut again only while the queue is not draining: a queue this
                    // sender made drains after one cut; another flow's does not.
                    let draining = self
                        .cut_at_srtt
                        .zip(self.srtt)
                        .is_some_and(|(at, now)| now < at);
                    if new_round && !draining {
                        // The first cut from what the link delivered before the queue, the
                        // next ones from the best since: a receiver that stalled reports
                        // low rates that say nothing about the link's.
                        let from = self.before_queue.take().unwrap_or(best as f64);
                        self.rate = (self.rate.min(from) * QUEUE_BACKOFF).max(floor);
                        self.cut_at_srtt = self.srtt;
                    }
                    self.delivered.clear();
                    self.delivered.push_back((s.now, s.delivery_rate));
                    self.calm_rounds = 0;
                    *cycle = 1;
                    *probed = false;
                    self.in_queue = true;
                } else {
                    self.in_queue = false;
                    // The floor stands across the short calms a loss-based flow leaves
                    // when it halves, and goes only once the link stays free of queues.
                    self.cut_at_srtt = None;
                    if new_round {
                        self.calm_rounds += 1;
                    }
                    if self.calm_rounds >= CALM_ROUNDS {
                        self.yield_floor = None;
                    }
                    self.rate = best as f64 * CYCLE[*cycle];
                    // Past the draining round, back towards the rate the queue came at,
                    // as fast as the delivery rate follows: the rates of before were
                    // forgotten, and the cycle's probes alone would take seconds.
                    match self.recover_to {
                        Some(target) if best as f64 >= target => self.recover_to = None,
                        Some(target) if *cycle != 1 => {
                            self.rate = self.rate.max((best as f64 * RECOVERY_GAIN).min(target));
                        }
                        _ => {}
                    }
                }
            }
        }
        self.clamp()
    }

    fn on_silence(&mut self, _silence: Duration) -> u64 {
        // Reports stopped: the path may be gone or jammed; halve until they come back.
        self.rate /= 2.0;
        self.clamp()
    }

    fn name(&self) -> &'static str {
        "probe"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bottleneck of `link` bytes/s with a queue: the delivery rate is what it lets
    /// through, the round trip grows with what the sender queues beyond it.
    /// Datagrams of 64 kB lost in a round trip's window at `rate` (what the sender counts).
    fn lost_in_round(loss: f64, rate: f64, rtt: Duration) -> u64 {
        (loss * rate * rtt.as_secs_f64() / 64e3).round() as u64
    }

    fn drive(link: f64, base_rtt: Duration, seconds: f64) -> (Probe, Vec<u64>) {
        let mut probe = Probe::new(ProbeConfig::default());
        let mut rate = probe.initial_rate() as f64;
        let t0 = Instant::now();
        let step = Duration::from_millis(10);
        let mut queue = 0.0f64;
        let mut rates = Vec::new();
        let mut now = t0;
        while now.duration_since(t0).as_secs_f64() < seconds {
            now += step;
            let sent = rate * step.as_secs_f64();
            queue = (queue + sent - link * step.as_secs_f64()).max(0.0);
            let delivered = (rate.min(link) * 0.99) as u64;
            let rtt = base_rtt + Duration::from_secs_f64(queue / link);
            rate = probe.on_sample(&RateSample {
                now,
                delivery_rate: delivered,
                rtt: Some(rtt),
                loss: 0.01,
                lost: lost_in_round(0.01, rate, rtt),
            }) as f64;
            rates.push(rate as u64);
        }
        (probe, rates)
    }

    #[test]
    fn finds_the_link_rate_and_keeps_near_it_despite_random_loss() {
        let link = 125e6; // 1 Gbit/s
        let (probe, rates) = drive(link, Duration::from_millis(100), 20.0);
        assert!(matches!(probe.phase, Phase::Cruise { .. }));
        let last = &rates[rates.len() - 500..];
        let mean = last.iter().sum::<u64>() as f64 / last.len() as f64;
        assert!(
            (0.9 * link..1.2 * link).contains(&mean),
            "mean rate {mean} for a link of {link}"
        );
    }

    /// A path whose capacity swings around `link`, changing every 100 ms (a receiver
    /// sharing its cores, as through the emulator on two), its queue building
    /// whenever the sender outruns the capacity of the moment; returns the mean delivered
    /// share of `link` over the last half of `seconds`.
    fn share_of_a_swinging_path(link: f64, swing: f64, base_rtt: Duration, seconds: f64) -> f64 {
        let mut probe = Probe::new(ProbeConfig::default());
        let mut rate = probe.initial_rate() as f64;
        let (t0, step) = (Instant::now(), Duration::from_millis(10));
        let dt = step.as_secs_f64();
        let (mut now, mut queue, mut seed) = (t0, 0.0f64, 0x2545_f491_4f6c_dd1du64);
        let (mut late, mut samples_late) = (0.0, 0u32);
        let (mut capacity, mut steps) = (link, 0u32);
        while now.duration_since(t0).as_secs_f64() < seconds {
            now += step;
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            // The capacity holds for 100 ms at a time.
            if steps % 10 == 0 {
                capacity = link * (1.0 + swing * noise);
            }
            steps += 1;
            let offered = queue + rate * dt;
            let delivered = offered.min(capacity * dt);
            queue = offered - delivered;
            let rtt = base_rtt + Duration::from_secs_f64(queue / link);
            rate = probe.on_sample(&RateSample {
                now,
                delivery_rate: (delivered / dt) as u64,
                rtt: Some(rtt),
                loss: 0.0,
                lost: 0,
            }) as f64;
            if now.duration_since(t0).as_secs_f64() > seconds / 2.0 {
                late += delivered / dt / link;
                samples_late += 1;
            }
        }
        late / f64::from(samples_late)
    }

    #[test]
    fn keeps_most_of_a_path_whose_capacity_swings() {
        let share = share_of_a_swinging_path(1.0e9, 0.2, Duration::from_millis(50), 30.0);
        assert!(
            share >= 0.94,
            "delivered {share:.3} of the path's mean capacity"
        );
    }

    /// The link of `drive` shared with a loss-based TCP flow (additive increase of a
    /// twentieth of the path's bytes in flight per round trip, halving when the bottleneck's
    /// buffer of one bandwidth-delay product overflows); returns the mean shares of the
    /// link of this sender and of the TCP flow over the last half of `seconds`.
    fn share_with_tcp(link: f64, base_rtt: Duration, seconds: f64, dtp_starts: f64) -> (f64, f64) {
        let mut probe = Probe::new(ProbeConfig::default());
        let mut rate = probe.initial_rate() as f64;
        let bdp = link * base_rtt.as_secs_f64();
        let mut cwnd = bdp / 10.0;
        let (t0, step) = (Instant::now(), Duration::from_millis(10));
        let dt = step.as_secs_f64();
        let (mut now, mut queue, mut last_halving) = (t0, 0.0f64, t0);
        let (mut dtp_late, mut tcp_late, mut samples_late) = (0.0, 0.0, 0u32);
        while now.duration_since(t0).as_secs_f64() < seconds {
            now += step;
            let rtt = base_rtt + Duration::from_secs_f64(queue / link);
            let tcp_rate = cwnd / rtt.as_secs_f64();
            let dtp_on = now.duration_since(t0).as_secs_f64() >= dtp_starts;
            let dtp_rate = if dtp_on { rate } else { 0.0 };
            let offered = dtp_rate + tcp_rate;
            queue = (queue + (offered - link) * dt).max(0.0);
            // Through a full queue each flow gets its part of what it offers.
            let through = offered.min(link);
            let (dtp_got, tcp_got) = (through * dtp_rate / offered, through * tcp_rate / offered);
            let mut loss = 0.0;
            if queue > bdp {
                // What does not fit is dropped, from each flow alike.
                loss = (queue - bdp) / (offered * dt);
                queue = bdp;
                if now.duration_since(last_halving) > rtt {
                    cwnd /= 2.0;
                    last_halving = now;
                }
            } else {
                cwnd += bdp / 20.0 * dt / rtt.as_secs_f64();
            }
            if dtp_on {
                rate = probe.on_sample(&RateSample {
                    now,
                    delivery_rate: dtp_got as u64,
                    rtt: Some(rtt),
                    loss,
                    lost: lost_in_round(loss, dtp_rate, rtt),
                }) as f64;
            }
            if now.duration_since(t0).as_secs_f64() > seconds / 2.0 {
                dtp_late += dtp_got / link;
                tcp_late += tcp_got / link;
                samples_late += 1;
            }
        }
        let n = f64::from(samples_late);
        (dtp_late / n, tcp_late / n)
    }

    #[test]
    fn leaves_a_loss_based_tcp_flow_a_fair_part_of_the_link() {
        // This sender first, then the TCP flow. (When the TCP flow's queue stands before
        // this sender comes, the model never shows it the path empty and it takes the
        // link; through linkem the TCP flow kept 81-83% then: `scripts/dtp-share.sh`.)
        let (dtp, tcp) = share_with_tcp(125e6, Duration::from_millis(100), 120.0, 0.0);
        assert!(
            tcp >= 0.25 && dtp >= 0.2,
            "the TCP flow kept {tcp:.3} of the link, this sender {dtp:.3}"
        );
    }

    /// Reports every 10 ms from `t0`: at `at` ms, `delivery` bytes/s, a round trip of
    /// `rtt` ms.
    fn report(probe: &mut Probe, t0: Instant, at: u64, delivery: u64, rtt: u64) -> u64 {
        let ms = Duration::from_millis(1);
        probe.on_sample(&RateSample {
            now: t0 + ms * at as u32,
            delivery_rate: delivery,
            rtt: Some(ms * rtt as u32),
            loss: 0.0,
            lost: 0,
        })
    }

    /// A probe cruising at `delivery` on a 50 ms path, past the rounds of its own probe;
    /// the time reached, in ms.
    fn cruising(probe: &mut Probe, t0: Instant, delivery: u64) -> u64 {
        let mut at = 0;
        while at < 3000 || !matches!(probe.phase, Phase::Cruise { cycle: 3, .. }) {
            at += 10;
            report(probe, t0, at, delivery, 50);
        }
        at
    }

    #[test]
    fn a_queue_that_drains_after_one_cut_is_not_cut_again() {
        let mut probe = Probe::new(ProbeConfig::default());
        let t0 = Instant::now();
        let sample = |probe: &mut Probe, at: u64, rtt: u64| report(probe, t0, at, 100_000_000, rtt);
        let mut at = cruising(&mut probe, t0, 100_000_000);
        // A queue of 40 ms for a round trip, then draining over 300 ms.
        let mut rates = Vec::new();
        for step in 0..35u64 {
            at += 10;
            let rtt = if step < 5 { 90 } else { 90 - (step - 5) };
            rates.push(sample(&mut probe, at, rtt));
        }
        let lowest = *rates.iter().min().unwrap();
        assert!(lowest < 100_000_000, "the queue is given way to: {rates:?}");
        // Cut again each round while the smoothed round trip shows the queue, the rate
        // would reach the floor (50 MB/s) before the queue is gone.
        assert!(lowest >= 70_000_000, "cut while draining: {rates:?}");
    }

    #[test]
    fn a_receiver_that_stalls_is_not_taken_for_the_link() {
        let mut probe = Probe::new(ProbeConfig::default());
        let t0 = Instant::now();
        let mut at = cruising(&mut probe, t0, 1_000_000_000);
        // The receiver falls behind for 150 ms: its reports show little delivered and
        // round trips as long as its backlog; then it catches up.
        let mut rates = Vec::new();
        for step in 0..20u64 {
            at += 10;
            let (delivery, rtt) = if step < 15 {
                (300_000_000, 100)
            } else {
                (1_200_000_000, 75 - step)
            };
            rates.push(report(&mut probe, t0, at, delivery, rtt));
        }
        let lowest = *rates.iter().min().unwrap();
        assert!(
            lowest < 1_000_000_000,
            "the queue is given way to: {rates:?}"
        );
        assert!(
            lowest >= 800_000_000,
            "cut from what the link delivered, not from the stall's report: {rates:?}"
        );
    }

    #[test]
    fn never_exceeds_its_limit_and_halves_in_silence() {
        let mut probe = Probe::new(ProbeConfig {
            max_rate: 1_000_000,
            ..ProbeConfig::default()
        });
        assert_eq!(probe.initial_rate(), 1_000_000);
        let now = Instant::now();
        let r = probe.on_sample(&RateSample {
            now,
            delivery_rate: 50_000_000,
            rtt: Some(Duration::from_millis(10)),
            loss: 0.0,
            lost: 0,
        });
        assert_eq!(r, 1_000_000);
        assert_eq!(probe.on_silence(Duration::from_secs(1)), 500_000);
    }

    #[test]
    fn a_growing_queue_ends_startup() {
        let mut probe = Probe::new(ProbeConfig::default());
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        // Delivery grows with the rate: still starting up.
        for i in 1..=5 {
            probe.on_sample(&RateSample {
                now: t0 + ms * 20 * i,
                delivery_rate: 1_000_000 << i,
                rtt: Some(ms * 20),
                loss: 0.0,
                lost: 0,
            });
        }
        assert!(matches!(probe.phase, Phase::Startup { .. }));
        let rate = probe.on_sample(&RateSample {
            now: t0 + ms * 200,
            delivery_rate: 32_000_000,
            rtt: Some(ms * 200),
            loss: 0.0,
            lost: 0,
        });
        assert!(matches!(probe.phase, Phase::Drain { .. }));
        assert!(
            rate <= 16_000_000,
            "drains at half the delivery rate: {rate}"
        );
        // The queue gone (the smoothed round trip back), it cruises at the best the link
        // delivered meanwhile.
        let mut rate = 0;
        for i in 1..=40 {
            rate = probe.on_sample(&RateSample {
                now: t0 + ms * (200 + 5 * i),
                delivery_rate: if i == 1 { 40_000_000 } else { 8_000_000 },
                rtt: Some(ms * 20),
                loss: 0.0,
                lost: 0,
            });
            if matches!(probe.phase, Phase::Cruise { .. }) {
                break;
            }
        }
        assert!(matches!(probe.phase, Phase::Cruise { .. }));
        assert_eq!(rate, 40_000_000);
    }

    /// One datagram lost among startup's first few is a tenth of them and says nothing;
    /// a tenth of many is an overflow.
    #[test]
    fn startup_ends_on_an_overflow_not_on_one_early_loss() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let sample = |probe: &mut Probe, i: u32, loss: f64, lost: u64| {
            probe.on_sample(&RateSample {
                now: t0 + ms * 100 * i,
                delivery_rate: 8_000_000 << i,
                rtt: Some(ms * 100),
                loss,
                lost,
            })
        };
        let mut probe = Probe::new(ProbeConfig::default());
        sample(&mut probe, 1, 0.0, 0);
        sample(&mut probe, 2, 1.0 / 8.0, 1);
        sample(&mut probe, 3, 2.0 / 14.0, 2);
        assert!(
            matches!(probe.phase, Phase::Startup { .. }),
            "{:?}",
            probe.phase
        );
        // Doubled each round trip from the initial 8 MiB/s (the first report starts the
        // clock): 64 MiB/s.
        let rate = sample(&mut probe, 4, 0.0, 0);
        assert!(rate >= 64 << 20, "still doubling: {rate}");
        sample(&mut probe, 5, 0.3, 40);
        assert!(
            matches!(probe.phase, Phase::Drain { .. }),
            "{:?}",
            probe.phase
        );
    }
}
