//! The emulator's seeded random draws (loss, corruption, jitter): `rand_xoshiro`'s
//! xoshiro256** seeded from one `u64`, so a model run is the same for the same seed. Not
//! meant for anything cryptographic.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256StarStar;

/// Deterministic pseudo-random generator.
#[derive(Debug, Clone)]
pub struct SeededRng {
    inner: Xoshiro256StarStar,
}

impl SeededRng {
    /// Creates a generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Xoshiro256StarStar::seed_from_u64(seed),
        }
    }

    /// Next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (`p <= 0` never, `p >= 1` always).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// Uniform in `[0, bound)`; `bound` must be non-zero. Uses the widening-multiply
    /// reduction, whose bias is below 2^-32 for the bounds used here.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}
