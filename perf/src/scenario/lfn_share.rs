//! The sharing rows of the linkem scenarios: a DTP push and one iperf3 TCP stream through
//! the same link, in both orders (the TCP stream first and the push joining it, the push
//! first and the stream joining), and the share of the link each took while both ran.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::lfn::NS_A;
use super::tools::{self, Iperf3Setup};
use super::udp_movers;
use crate::report::{Outcome, Subject};

/// How long the first transfer runs alone before the second joins.
const JOIN_AFTER: Duration = Duration::from_secs(3);
/// The first second of the joining transfer (its ramp-up) is not counted.
const JOIN_RAMP_S: f64 = 1.0;

/// Which transfer starts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    TcpFirst,
    DtpFirst,
}

/// The two shares of a link one iperf3 TCP stream and a DTP push shared.
#[derive(Debug, Clone, Copy)]
struct Shares {
    /// iperf3's mean received rate while both ran, bytes per second.
    tcp: f64,
    /// The push's rate while both ran, bytes per second.
    dtp: f64,
}

/// The rows, one per order.
#[derive(Debug)]
pub(super) struct ShareRows {
    rows: [(Order, Subject); 2],
}

impl ShareRows {
    /// The rows' subjects, and the note saying how they are measured.
    pub(super) fn new(outcome: &mut Outcome, congestion: Option<&str>, seconds: f64) -> Self {
        outcome.notes.push(format!(
            "Sharing, two orders: `iperf3 -P 1 -C {}` for {seconds} s with a DTP push of \
             push.bin joining {} s into it (\"beside iperf3 -P 1\"), and the push first with \
             iperf3 joining {} s into it (\"iperf3 -P 1 joining\"). The shares are each \
             transfer's mean rate while both ran, from the joining one's second second to \
             the end of the one that ended first (iperf3's 0.5-s receiver intervals, the \
             push's 1-s intervals), each / the link rate.",
            congestion.unwrap_or("default"),
            JOIN_AFTER.as_secs(),
            JOIN_AFTER.as_secs(),
        ));
        ShareRows {
            rows: [
                (
                    Order::TcpFirst,
                    Subject::new("hawser", "push --transport dtp beside iperf3 -P 1"),
                ),
                (
                    Order::DtpFirst,
                    Subject::new("hawser", "push --transport dtp, iperf3 -P 1 joining"),
                ),
            ],
        }
    }

    /// One run of each order: `run.source` pushed to `destination` (`HOST:PORT:NAME`,
    /// NAME suffixed per order) of a server whose target `empty` clears.
    pub(super) fn run_round(
        &self,
        run: &ShareRun<'_>,
        destination: &str,
        round: usize,
        link_bytes_per_sec: f64,
        outcome: &mut Outcome,
        empty: &dyn Fn() -> Result<()>,
    ) -> Result<()> {
        for (order, subject) in &self.rows {
            eprintln!("  round {round}: {}", subject.label());
            empty()?;
            let destination = match order {
                Order::TcpFirst => format!("{destination}-tcp-first"),
                Order::DtpFirst => format!("{destination}-dtp-first"),
            };
            match share_run(*order, run, &destination) {
                Ok(shares) => {
                    let dtp = shares.dtp / link_bytes_per_sec;
                    outcome.record(subject, "link_fraction", "fraction", dtp);
                    let tcp = shares.tcp / link_bytes_per_sec;
                    outcome.record(subject, "tcp_link_fraction", "fraction", tcp);
                }
                Err(error) => outcome.notes.push(format!(
                    "{} round {round} failed: {error:#}",
                    subject.label()
                )),
            }
            super::settle();
        }
        Ok(())
    }
}

/// What the sharing runs use.
pub(super) struct ShareRun<'a> {
    /// The `hawser` binary.
    pub binary: &'a Path,
    /// Where iperf3's client and server run.
    pub setup: &'a Iperf3Setup<'a>,
    /// iperf3's run time.
    pub seconds: f64,
    /// The file pushed.
    pub source: &'a Path,
    /// The push's `--json` report.
    pub report: &'a Path,
}

/// One iperf3 TCP stream and a DTP push through the same link, `order` saying which
/// starts first: the shares each took while both ran.
fn share_run(order: Order, run: &ShareRun<'_>, destination: &str) -> Result<Shares> {
    let started = Instant::now();
    let push =
        || udp_movers::run_dtp_push(run.binary, Some(NS_A), run.source, destination, run.report);
    let iperf3 = || tools::run_iperf3(run.setup, 1, run.seconds, 0.5);
    let (tcp, tcp_at, pushed, pushed_at) = match order {
        Order::TcpFirst => {
            let (tcp, pushed, pushed_at) = first_then_join(started, iperf3, push)?;
            (tcp, 0.0, pushed, pushed_at)
        }
        Order::DtpFirst => {
            let (pushed, tcp, tcp_at) = first_then_join(started, push, iperf3)?;
            (tcp, tcp_at, pushed, 0.0)
        }
    };
    // Both on the scenario's clock: from the joining one's second second to the end of
    // whichever ended first.
    let tcp_end = tcp_at + tcp.intervals.last().map_or(0.0, |(end, _)| *end);
    let from = tcp_at.max(pushed_at) + JOIN_RAMP_S;
    let to = tcp_end.min(pushed_at + pushed.seconds);
    let tcp_rate = mean_within(&tcp.intervals, from - tcp_at, to - tcp_at)
        .context("iperf3 had no interval while both ran")?;
    let dtp = mean_within(&pushed.intervals, from - pushed_at, to - pushed_at)
        .context("the push had no interval while both ran")?;
    Ok(Shares { tcp: tcp_rate, dtp })
}

/// Runs `first` and, [`JOIN_AFTER`] into it, `then`: both results, and when `then` started
/// (seconds since `started`).
fn first_then_join<A: Send, B>(
    started: Instant,
    first: impl FnOnce() -> Result<A> + Send,
    then: impl FnOnce() -> Result<B>,
) -> Result<(A, B, f64)> {
    std::thread::scope(|scope| {
        let first = scope.spawn(first);
        std::thread::sleep(JOIN_AFTER);
        let joined_at = started.elapsed().as_secs_f64();
        let then = then();
        let first = first
            .join()
            .map_err(|_| anyhow::anyhow!("the first transfer's thread panicked"))??;
        Ok((first, then?, joined_at))
    })
}

/// The mean rate over the intervals (end in s, bytes per second) ending within
/// `[from, to]` seconds.
fn mean_within(intervals: &[(f64, f64)], from: f64, to: f64) -> Option<f64> {
    let inside: Vec<f64> = intervals
        .iter()
        .filter(|(end, _)| *end > from + 1e-9 && *end <= to + 1e-9)
        .map(|(_, rate)| *rate)
        .collect();
    (!inside.is_empty()).then(|| inside.iter().sum::<f64>() / inside.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_the_rate_while_both_ran() {
        let intervals = [
            (0.5, 100.0),
            (1.0, 100.0),
            (1.5, 40.0),
            (2.0, 60.0),
            (2.5, 100.0),
        ];
        assert_eq!(mean_within(&intervals, 1.0, 2.0), Some(50.0));
        assert_eq!(mean_within(&intervals, 3.0, 4.0), None);
    }
}
