//! The report of a publish or a consume: messages, bytes, rates and (consume) the
//! end-to-end latency from the publisher's timestamp.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyMicros {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl LatencyMicros {
    /// Of a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Some(LatencyMicros {
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            max: h.max() as f64 / 1000.0,
        })
    }
}

/// What a publish or a consume did.
#[derive(Debug, Clone, Serialize)]
pub struct MessagingReport {
    /// `publish` or `consume`.
    pub command: &'static str,
    /// The sink or feed.
    pub entity: String,
    /// Messages.
    pub messages: u64,
    /// Body bytes.
    pub bytes: u64,
    /// From the first message to the last.
    pub seconds: f64,
    /// Messages per second.
    pub messages_per_sec: f64,
    /// Megabytes (10^6) of bodies per second.
    pub mb_per_sec: f64,
    /// End to end, from the publisher's timestamp (consume only).
    pub latency_us: Option<LatencyMicros>,
    /// Messages skipped as malformed (consume only).
    pub malformed: u64,
}

impl MessagingReport {
    /// A report of `messages` and `bytes` over `elapsed`.
    pub fn new(
        command: &'static str,
        entity: &str,
        messages: u64,
        bytes: u64,
        elapsed: Duration,
        latency: Option<&Histogram<u64>>,
    ) -> Self {
        let seconds = elapsed.as_secs_f64();
        let per_sec = |n: f64| if seconds > 0.0 { n / seconds } else { 0.0 };
        MessagingReport {
            command,
            entity: entity.to_owned(),
            messages,
            bytes,
            seconds,
            messages_per_sec: per_sec(messages as f64),
            mb_per_sec: per_sec(bytes as f64) / 1e6,
            latency_us: latency.and_then(LatencyMicros::of),
            malformed: 0,
        }
    }

    /// Counts `n` messages skipped as malformed.
    pub fn with_malformed(mut self, n: u64) -> Self {
        self.malformed = n;
        self
    }

    /// The report as a line of text.
    pub fn text(&self) -> String {
        let mut line = format!(
            "{} {}: {} messages, {:.2} MB in {:.2} s: {:.0} messages/s, {:.2} MB/s",
            self.command,
            self.entity,
            self.messages,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.messages_per_sec,
            self.mb_per_sec
        );
        if self.malformed > 0 {
            line.push_str(&format!("; {} malformed messages skipped", self.malformed));
        }
        if let Some(l) = &self.latency_us {
            line.push_str(&format!(
                "; latency p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
                l.p50, l.p90, l.p99, l.p999, l.max
            ));
        }
        line
    }
}
