//! Token-bucket throttling of the bytes a nexus sends as requests.

use std::time::{Duration, Instant};

/// A byte-rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Sustained rate, in bytes per second (at least 1).
    pub bytes_per_second: u64,
    /// Bucket depth: how many bytes may go out in one burst.
    pub burst_bytes: u64,
}

/// A token bucket in virtual time: tokens accrue at the configured rate up to the burst.
/// A request larger than the burst may go when the bucket is full, driving it negative,
/// so that no request size can stall forever.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    config: ThrottleConfig,
    tokens: i128,
    updated: Instant,
}

impl TokenBucket {
    pub fn new(config: ThrottleConfig, now: Instant) -> Self {
        TokenBucket {
            config: ThrottleConfig {
                bytes_per_second: config.bytes_per_second.max(1),
                burst_bytes: config.burst_bytes.max(1),
            },
            tokens: i128::from(config.burst_bytes.max(1)),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        let earned =
            elapsed.as_nanos() as i128 * i128::from(self.config.bytes_per_second) / 1_000_000_000;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(i128::from(self.config.burst_bytes));
            self.updated = now;
        }
    }

    /// Takes `bytes` if the bucket allows it now.
    pub fn try_take(&mut self, now: Instant, bytes: u64) -> bool {
        self.refill(now);
        let need = i128::from(bytes.min(self.config.burst_bytes));
        if self.tokens >= need {
            self.tokens -= i128::from(bytes);
            true
        } else {
            false
        }
    }

    /// When `bytes` will be allowed, if not now.
    pub fn ready_at(&self, bytes: u64) -> Instant {
        let need = i128::from(bytes.min(self.config.burst_bytes)) - self.tokens;
        if need <= 0 {
            return self.updated;
        }
        let nanos = need * 1_000_000_000 / i128::from(self.config.bytes_per_second) + 1;
        self.updated + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_rate_and_allows_oversized_requests_when_full() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            ThrottleConfig {
                bytes_per_second: 1000,
                burst_bytes: 100,
            },
            t0,
        );
        assert!(b.try_take(t0, 100));
        assert!(!b.try_take(t0, 50));
        let at = b.ready_at(50);
        assert_eq!(at.duration_since(t0), Duration::from_nanos(50_000_001));
        assert!(b.try_take(at, 50));
        let later = at + Duration::from_secs(1);
        assert!(b.try_take(later, 5000), "oversized request goes when full");
        assert!(!b.try_take(later, 1));
    }
}
