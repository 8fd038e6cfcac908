//! Rate control: how fast a sender paces its datagrams, from the receiver's periodic
//! feedback. A [`RateController`] sees each [`RateSample`] and answers with a rate; the
//! sender's pacer keeps to it. One file per controller:
//!
//! - [`Fixed`]: open loop at a set rate (the seed's server: packets per round, no feedback);
//! - [`Probe`]: finds the link's rate from the delivery rate the receiver measures, probes
//!   above it now and then, and gives way when the round trip grows (a queue is building),
//!   not when datagrams are lost (on a long lossy link most loss is not congestion).
//!
//! The algorithm and its reasons are in `docs/PROTOCOL.md` ("DTP rate control").

mod fixed;
mod probe;

use std::time::{Duration, Instant};

pub use fixed::Fixed;
pub use probe::{Probe, ProbeConfig};

/// What one feedback report says about the path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSample {
    /// When the report arrived.
    pub now: Instant,
    /// Bytes per second of new data the receiver took over its last interval.
    pub delivery_rate: u64,
    /// A round trip measured through the report's echo, if the echo could be matched.
    pub rtt: Option<Duration>,
    /// Fraction of the datagrams sent in the interval that did not arrive (0 to 1).
    pub loss: f64,
    /// How many datagrams that fraction is (a tenth of a handful is no evidence).
    pub lost: u64,
}

/// Decides a sender's rate.
pub trait RateController: std::fmt::Debug + Send {
    /// The rate to start at, bytes per second of datagrams.
    fn initial_rate(&self) -> u64;
    /// A report arrived: the rate to pace at from now on.
    fn on_sample(&mut self, sample: &RateSample) -> u64;
    /// No report came for `silence` (reports lost, or the receiver gone): the rate to
    /// pace at meanwhile.
    fn on_silence(&mut self, silence: Duration) -> u64;
    /// The controller's name, for reports.
    fn name(&self) -> &'static str;
}

/// The controllers an operator can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControllerKind {
    /// [`Probe`].
    #[default]
    Probe,
    /// [`Fixed`] at the transfer's rate limit.
    Fixed,
}

impl ControllerKind {
    /// Parses `probe` or `fixed`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "probe" => Some(Self::Probe),
            "fixed" => Some(Self::Fixed),
            _ => None,
        }
    }

    /// A controller of this kind that never exceeds `max_rate` bytes per second.
    pub fn build(self, max_rate: u64) -> Box<dyn RateController> {
        match self {
            Self::Probe => Box::new(Probe::new(ProbeConfig {
                max_rate,
                ..ProbeConfig::default()
            })),
            Self::Fixed => Box::new(Fixed::new(max_rate)),
        }
    }
}
