//! Open loop at a set rate, whatever the reports say: the seed's own server (a number of
//! packets per round), for links whose rate is known and reserved.

use std::time::Duration;

use super::{RateController, RateSample};

/// Paces at one rate.
#[derive(Debug, Clone)]
pub struct Fixed {
    rate: u64,
}

impl Fixed {
    /// At `rate` bytes per second.
    pub fn new(rate: u64) -> Self {
        Fixed { rate: rate.max(1) }
    }
}

impl RateController for Fixed {
    fn initial_rate(&self) -> u64 {
        self.rate
    }

    fn on_sample(&mut self, _sample: &RateSample) -> u64 {
        self.rate
    }

    fn on_silence(&mut self, _silence: Duration) -> u64 {
        self.rate
    }

    fn name(&self) -> &'static str {
        "fixed"
    }
}
