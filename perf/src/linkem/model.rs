//! The emulated link as a pure, sans-IO model: one [`LinkDirection`] per direction.
//!
//! Time is virtual: the caller passes `now_ns` (nanoseconds on any monotonic origin) and
//! gets back a [`Verdict`] — drop, or forward at an absolute release time, perhaps with a
//! bit to flip. Nothing here reads a clock, sleeps, allocates per packet or touches a
//! socket, so the arithmetic is tested exactly in virtual time.
//!
//! The pipeline a packet goes through, in order:
//! 1. **random loss** with probability `loss_probability` (decided first, as netem does,
//!    so a lost packet takes no queue space or link time);
//! 2. **rate cap and queue**: the link serialises one packet at a time at
//!    `rate_bits_per_sec`. Bytes admitted but not yet serialised form the queue; a packet
//!    that would push the queue past `queue_limit_bytes` is tail-dropped (an empty queue
//!    always admits one packet, so a queue smaller than the MTU still passes traffic);
//! 3. **propagation delay**: the packet is released `one_way_delay_ns` after its last bit
//!    leaves the serialiser;
//! 4. **jitter**: a uniform offset in `[-jitter_ns, +jitter_ns]` is added, but release
//!    times never go backwards: a packet is released no earlier than the packet before
//!    it. So jitter never reorders (like a real path whose variation comes from queueing),
//!    and a late packet holds back the ones behind it, which skews the delay distribution
//!    slightly upward: its mean is a little above the configured delay when jitter is
//!    large compared with the packet spacing;
//! 5. **corruption** with probability `corrupt_probability`: one uniformly chosen bit of
//!    the packet (IP header included) is flipped; the kernel's checksums then drop it,
//!    which is what a flipped bit on a real link looks like to the endpoints.

use super::rng::SeededRng;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parameters of one direction of the emulated link.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionConfig {
    /// Propagation delay each packet sees (half the round-trip time when symmetric).
    pub one_way_delay_ns: u64,
    /// Half-width of the uniform jitter added to the delay.
    pub jitter_ns: u64,
    /// Rate cap of the serialiser; `None` means unlimited (no queue either).
    pub rate_bits_per_sec: Option<u64>,
    /// Tail-drop limit of the queue in front of the serialiser.
    pub queue_limit_bytes: u64,
    /// Probability that a packet is lost.
    pub loss_probability: f64,
    /// Probability that a forwarded packet gets one bit flipped.
    pub corrupt_probability: f64,
}

impl DirectionConfig {
    /// A plain delay line: no rate cap, no loss, no jitter.
    pub fn delay_only(one_way_delay_ns: u64) -> Self {
        Self {
            one_way_delay_ns,
            jitter_ns: 0,
            rate_bits_per_sec: None,
            queue_limit_bytes: u64::MAX,
            loss_probability: 0.0,
            corrupt_probability: 0.0,
        }
    }
}

/// Bandwidth-delay product in bytes of a link with this rate and round-trip time.
pub fn bdp_bytes(rate_bits_per_sec: u64, round_trip_ns: u64) -> u64 {
    (u128::from(rate_bits_per_sec) * u128::from(round_trip_ns) / (8 * NANOS_PER_SEC)) as u64
}

/// Why the model dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// The queue in front of the rate cap was full (tail drop).
    QueueFull,
    /// Random loss.
    RandomLoss,
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it at `release_at_ns`, after flipping bit `corrupt_bit` (counted from the
    /// most significant bit of byte 0) when set.
    Forward {
        /// Absolute virtual time at which the packet leaves the link.
        release_at_ns: u64,
        /// Bit to flip before delivery, if the packet is corrupted.
        corrupt_bit: Option<u64>,
    },
    /// Discard it.
    Drop(DropCause),
}

/// Counters of the decisions the model made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelCounters {
    /// Packets accepted for forwarding.
    pub admitted_packets: u64,
    /// Bytes accepted for forwarding.
    pub admitted_bytes: u64,
    /// Packets tail-dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Packets dropped by random loss.
    pub dropped_random_loss: u64,
    /// Admitted packets that had a bit flipped.
    pub corrupted: u64,
}

/// One direction of the emulated link.
#[derive(Debug, Clone)]
pub struct LinkDirection {
    config: DirectionConfig,
    rng: SeededRng,
    /// When the serialiser becomes idle, scaled by the rate (ns × bit/s) so that
    /// serialisation times add up exactly instead of rounding per packet.
    serializer_idle_at_scaled: u128,
    last_release_ns: u64,
    counters: ModelCounters,
}

impl LinkDirection {
    /// A direction with its own random sequence fixed by `seed`.
    pub fn new(config: DirectionConfig, seed: u64) -> Self {
        Self {
            config,
            rng: SeededRng::new(seed),
            serializer_idle_at_scaled: 0,
            last_release_ns: 0,
            counters: ModelCounters::default(),
        }
    }

    /// The configuration this direction applies.
    pub fn config(&self) -> &DirectionConfig {
        &self.config
    }

    /// Decisions taken so far.
    pub fn counters(&self) -> ModelCounters {
        self.counters
    }

    /// Bytes admitted but not yet serialised at `now_ns` (0 without a rate cap).
    pub fn queued_bytes(&self, now_ns: u64) -> u64 {
        let Some(rate) = self.config.rate_bits_per_sec else {
            return 0;
        };
        let now_scaled = u128::from(now_ns) * u128::from(rate);
        let pending_scaled = self.serializer_idle_at_scaled.saturating_sub(now_scaled);
        // pending_scaled / rate is seconds·1e9; × rate / 8 / 1e9 gives bytes.
        pending_scaled.div_ceil(8 * NANOS_PER_SEC) as u64
    }

    /// Decides the fate of a packet of `len` bytes arriving at `now_ns`. Calls must come
    /// with non-decreasing `now_ns`.
    pub fn on_packet(&mut self, now_ns: u64, len: usize) -> Verdict {
        if self.rng.chance(self.config.loss_probability) {
            self.counters.dropped_random_loss += 1;
            return Verdict::Drop(DropCause::RandomLoss);
        }
        let len_bytes = len as u64;
        let leaves_link_ns = match self.config.rate_bits_per_sec {
            None => now_ns,
            Some(rate) => {
                let queued = self.queued_bytes(now_ns);
                if queued > 0 && queued.saturating_add(len_bytes) > self.config.queue_limit_bytes {
                    self.counters.dropped_queue_full += 1;
                    return Verdict::Drop(DropCause::QueueFull);
                }
                let now_scaled = u128::from(now_ns) * u128::from(rate);
                let start_scaled = self.serializer_idle_at_scaled.max(now_scaled);
                self.serializer_idle_at_scaled =
                    start_scaled + u128::from(len_bytes) * 8 * NANOS_PER_SEC;
                self.serializer_idle_at_scaled.div_ceil(u128::from(rate)) as u64
            }
        };
        let mut release_at_ns = leaves_link_ns.saturating_add(self.config.one_way_delay_ns);
        if self.config.jitter_ns > 0 {
            let span = self.config.jitter_ns.saturating_mul(2).saturating_add(1);
            let offset = self.rng.below(span);
            release_at_ns = (release_at_ns.saturating_add(offset))
                .saturating_sub(self.config.jitter_ns)
                .max(now_ns);
        }
        // In-order release: jitter may delay a packet but never lets it overtake.
        release_at_ns = release_at_ns.max(self.last_release_ns);
        self.last_release_ns = release_at_ns;

        let corrupt_bit = if len > 0 && self.rng.chance(self.config.corrupt_probability) {
            self.counters.corrupted += 1;
            Some(self.rng.below(len_bytes * 8))
        } else {
            None
        };
        self.counters.admitted_packets += 1;
        self.counters.admitted_bytes += len_bytes;
        Verdict::Forward {
            release_at_ns,
            corrupt_bit,
        }
    }
}

/// Flips bit `bit` (0 = most significant bit of byte 0) of `packet`.
pub fn flip_bit(packet: &mut [u8], bit: u64) {
    let byte = (bit / 8) as usize;
    if let Some(b) = packet.get_mut(byte) {
        *b ^= 0x80 >> (bit % 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000_000_000;

    fn release(v: Verdict) -> u64 {
        match v {
            Verdict::Forward { release_at_ns, .. } => release_at_ns,
            Verdict::Drop(cause) => panic!("unexpected drop: {cause:?}"),
        }
    }

    #[test]
    fn delay_only_releases_exactly_one_way_delay_later() {
        let mut link = LinkDirection::new(DirectionConfig::delay_only(25 * MS), 1);
        for t in [0, 1, 7 * MS, 7 * MS, SEC, 3 * SEC + 17] {
            assert_eq!(release(link.on_packet(t, 1500)), t + 25 * MS);
        }
        assert_eq!(link.counters().admitted_packets, 6);
        assert_eq!(link.queued_bytes(SEC), 0);
    }

    #[test]
    fn underloaded_rate_adds_serialisation_time_only() {
        // 8 Mbit/s = 1 byte per microsecond: a 1000-byte packet takes 1 ms.
        let config = DirectionConfig {
            rate_bits_per_sec: Some(8_000_000),
            queue_limit_bytes: 10_000,
            ..DirectionConfig::delay_only(10 * MS)
        };
        let mut link = LinkDirection::new(config, 1);
        for i in 0..100 {
            let t = i * 2 * MS; // half the link rate
            assert_eq!(release(link.on_packet(t, 1000)), t + MS + 10 * MS);
        }
        assert_eq!(link.counters().dropped_queue_full, 0);
    }

    #[test]
    fn queue_tail_drops_at_its_byte_limit() {
        let config = DirectionConfig {
            rate_bits_per_sec: Some(8_000_000), // 1 byte/µs
            queue_limit_bytes: 3000,
            ..DirectionConfig::delay_only(0)
        };
        let mut link = LinkDirection::new(config, 1);
        assert_eq!(release(link.on_packet(0, 1500)), 1500 * 1000);
        assert_eq!(link.queued_bytes(0), 1500);
        assert_eq!(release(link.on_packet(0, 1500)), 3000 * 1000);
        assert_eq!(link.queued_bytes(0), 3000);
        assert_eq!(link.on_packet(0, 1), Verdict::Drop(DropCause::QueueFull));
        // 1.5 ms later half of it has drained.
        assert_eq!(link.queued_bytes(1500 * 1000), 1500);
        assert_eq!(release(link.on_packet(1500 * 1000, 1500)), 4500 * 1000);
        assert_eq!(link.counters().dropped_queue_full, 1);
        assert_eq!(link.counters().admitted_bytes, 4500);
    }

    #[test]
    fn empty_queue_admits_a_packet_larger_than_its_limit() {
        let config = DirectionConfig {
            rate_bits_per_sec: Some(1_000_000_000),
            queue_limit_bytes: 100,
            ..DirectionConfig::delay_only(0)
        };
        let mut link = LinkDirection::new(config, 1);
        assert!(matches!(link.on_packet(0, 65_000), Verdict::Forward { .. }));
        assert_eq!(link.on_packet(0, 64), Verdict::Drop(DropCause::QueueFull));
    }

    /// Offers `offered_factor` × the link rate for `seconds` of virtual time and returns
    /// (bytes released per virtual second in the steady-state middle, drop fraction).
    fn overload(rate: u64, offered_factor: u64, queue: u64, packet: u64) -> (f64, f64) {
        let delay = 25 * MS;
        let config = DirectionConfig {
            rate_bits_per_sec: Some(rate),
            queue_limit_bytes: queue,
            ..DirectionConfig::delay_only(delay)
        };
        let mut link = LinkDirection::new(config, 7);
        let offered_bits_per_sec = rate * offered_factor;
        let interval_ns = packet * 8 * SEC / offered_bits_per_sec;
        let (window_start, window_end) = (SEC + delay, 2 * SEC + delay);
        let mut released_in_window = 0u64;
        let mut previous = 0;
        let mut t = 0;
        while t < 3 * SEC {
            if let Verdict::Forward { release_at_ns, .. } = link.on_packet(t, packet as usize) {
                assert!(release_at_ns >= previous, "released out of order");
                previous = release_at_ns;
                if (window_start..window_end).contains(&release_at_ns) {
                    released_in_window += packet;
                }
            }
            t += interval_ns;
        }
        let counters = link.counters();
        let offered = counters.admitted_packets + counters.dropped_queue_full;
        (
            released_in_window as f64,
            counters.dropped_queue_full as f64 / offered as f64,
        )
    }

    #[test]
    fn rate_cap_releases_link_rate_bytes_per_second_under_overload() {
        let rate = 1_000_000_000; // 125 MB/s
        let (bytes_per_sec, _) = overload(rate, 2, 1_000_000, 1500);
        let expected = rate as f64 / 8.0;
        assert!(
            (bytes_per_sec - expected).abs() / expected < 0.001,
            "released {bytes_per_sec} B/s, expected {expected}"
        );
        let (bytes_per_sec, _) = overload(10_000_000_000, 3, 62_500_000, 65_000);
        let expected = 10_000_000_000f64 / 8.0;
        assert!(
            (bytes_per_sec - expected).abs() / expected < 0.001,
            "released {bytes_per_sec} B/s at 10G, expected {expected}"
        );
    }

    #[test]
    fn overload_drops_the_excess() {
        // Offering 2× the rate for 3 s through a 1 MB queue drops about half.
        let (_, drop_fraction) = overload(1_000_000_000, 2, 1_000_000, 1500);
        assert!(
            (drop_fraction - 0.5).abs() < 0.01,
            "drop fraction {drop_fraction}"
        );
        let (_, drop_fraction) = overload(1_000_000_000, 4, 1_000_000, 1500);
        assert!(
            (drop_fraction - 0.75).abs() < 0.01,
            "drop fraction {drop_fraction}"
        );
    }

    #[test]
    fn random_loss_matches_its_probability() {
        let config = DirectionConfig {
            loss_probability: 0.01,
            ..DirectionConfig::delay_only(MS)
        };
        let mut link = LinkDirection::new(config, 42);
        let packets = 1_000_000u64;
        for i in 0..packets {
            link.on_packet(i * 1000, 1500);
        }
        let counters = link.counters();
        let lost = counters.dropped_random_loss as f64 / packets as f64;
        assert!((lost - 0.01).abs() < 0.0005, "loss fraction {lost}");
        assert_eq!(
            counters.admitted_packets + counters.dropped_random_loss,
            packets
        );
    }

    #[test]
    fn same_seed_gives_same_decisions() {
        let config = DirectionConfig {
            loss_probability: 0.3,
            corrupt_probability: 0.3,
            jitter_ns: MS,
            ..DirectionConfig::delay_only(5 * MS)
        };
        let run = |seed| {
            let mut link = LinkDirection::new(config.clone(), seed);
            (0..1000)
                .map(|i| link.on_packet(i * 10_000, 100))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn corruption_flips_one_bit_inside_the_packet_at_its_probability() {
        let config = DirectionConfig {
            corrupt_probability: 0.05,
            ..DirectionConfig::delay_only(0)
        };
        let mut link = LinkDirection::new(config, 3);
        let packets = 200_000u64;
        let mut corrupted = 0u64;
        for i in 0..packets {
            if let Verdict::Forward {
                corrupt_bit: Some(bit),
                ..
            } = link.on_packet(i, 60)
            {
                assert!(bit < 60 * 8);
                corrupted += 1;
            }
        }
        assert_eq!(corrupted, link.counters().corrupted);
        let fraction = corrupted as f64 / packets as f64;
        assert!(
            (fraction - 0.05).abs() < 0.002,
            "corrupt fraction {fraction}"
        );

        let mut packet = [0u8; 4];
        flip_bit(&mut packet, 0);
        flip_bit(&mut packet, 31);
        assert_eq!(packet, [0x80, 0, 0, 0x01]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_never_reorders() {
        let delay = 25 * MS;
        let jitter = 2 * MS;
        let config = DirectionConfig {
            jitter_ns: jitter,
            ..DirectionConfig::delay_only(delay)
        };
        let mut link = LinkDirection::new(config, 5);
        let mut previous = 0;
        let mut total_delay = 0u64;
        let mut min_delay = u64::MAX;
        let mut max_delay = 0;
        let packets = 10_000u64;
        for i in 0..packets {
            // Packets 1 ms apart: jitter can hold a packet back behind its predecessor.
            let t = i * MS;
            let released = release(link.on_packet(t, 1500));
            assert!(released >= previous, "reordered");
            previous = released;
            let seen = released - t;
            min_delay = min_delay.min(seen);
            max_delay = max_delay.max(seen);
            total_delay += seen;
        }
        assert!(min_delay >= delay - jitter && min_delay < delay - jitter / 2);
        assert!(max_delay <= delay + jitter && max_delay > delay + jitter / 2);
        let mean = total_delay / packets;
        // Mean sits at or a little above the configured delay (held-back packets).
        assert!(
            mean >= delay - MS / 20 && mean < delay + MS / 2,
            "mean {mean}"
        );
    }

    #[test]
    fn bdp_of_ten_gigabit_fifty_milliseconds() {
        assert_eq!(bdp_bytes(10_000_000_000, 50 * MS), 62_500_000);
    }
}
