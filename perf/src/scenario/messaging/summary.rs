//! The `messaging` report's own parts: how each subject was measured (notes), a table per
//! cell, and the ratios the targets are stated in.

use std::fmt::Write as _;
use std::process::Command;

use super::{Cell, LATENCIES, LOAD_FRACTION, LOAD_RATE, MAX_RATE, PEER_WARMUP_S, System, subject};
use crate::report::{Outcome, Summary};

/// hawser's own target for 64 B messages from 1 publisher, messages per second.
pub(super) const HAWSER_64B_TARGET: f64 = 5e6;
/// Targets of hawser's maximum rate over each baseline's (at least).
pub(super) const RATE_TARGETS: [(System, f64); 3] = [
    (System::Zmq, 1.5),
    (System::Rabbitmq, 10.0),
    (System::Nats, 2.0),
];
/// Target of hawser's p99.9 at 10% load over zmq's (at most).
pub(super) const P999_TARGET: f64 = 1.0;

/// libzmq's version as pkg-config knows it.
pub(super) fn libzmq_version() -> Option<String> {
    let output = Command::new("pkg-config")
        .args(["--modversion", "libzmq"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The notes that say how every subject was measured.
pub(super) fn describe(outcome: &mut Outcome, seconds: f64, versions: &[String]) {
    let load = LOAD_FRACTION * 100.0;
    outcome.notes.push(format!(
        "Cells: {} B and {} B messages × {} and {} publishers, one consumer; publishers and \
         consumer in one process, on loopback. Per cell, first every subject's maximum rate \
         ({MAX_RATE}: publishers unpaced, messages the consumer received per second of a \
         {seconds} s window), every subject once per round; then every subject's end-to-end \
         latency at {load:.0}% of its own median maximum (publishers paced, the rate shared \
         evenly between them), the same alternation. Latency = receive time − send time \
         stamped in the first 8 bytes of the message (CLOCK_MONOTONIC, one process); the \
         percentiles are medians over the rounds. {LOAD_RATE} is what the consumer received \
         in the latency runs.",
        super::SIZES[0],
        super::SIZES[1],
        super::PUBLISHERS[0],
        super::PUBLISHERS[1],
    ));
    outcome.notes.push(format!(
        "hawser: `hawser bench --mode dmp --size BYTES --publishers N --duration {seconds} \
         [--rate R] --json` (direct message publish → sink → feed → consume, in one process)."
    ));
    outcome.notes.push(format!(
        "Baselines: `messaging-peer --system zmq|rabbitmq|nats --url URL --size BYTES \
         --publishers N --duration {seconds} --warmup {PEER_WARMUP_S} [--rate R]` \
         (perf/peers/messaging, its own workspace, built with `cargo build --release \
         --manifest-path perf/peers/messaging/Cargo.toml`): one thread and one connection \
         per publisher, one consumer thread. zmq: the `zmq` crate over the system's libzmq, \
         PUSH sockets connected to one PULL socket on tcp://127.0.0.1, default high-water \
         marks (a full pipe blocks the publisher: no loss). rabbitmq: `amqprs`, AMQP 0-9-1, \
         a direct exchange bound to one transient auto-delete queue, transient messages, no \
         publisher confirms, consumer with auto-ack and prefetch 65535; RabbitMQ's credit \
         flow throttles publishers that outrun the queue. nats: `async-nats`, core NATS \
         publish/subscribe on one subject (no JetStream); core NATS has no flow control, so \
         a consumer that falls behind loses messages (the rate counts those received). Paced \
         publishers keep an open-loop schedule (sleeping until each message is due, sending \
         what they owe back to back when late)."
    ));
    outcome.notes.push(
        "Servers, started by the scenario on free loopback ports with their files in its \
         scratch directory: `nats-server -a 127.0.0.1 -p PORT -l LOG`; RabbitMQ from \
         /usr/lib/rabbitmq/bin/rabbitmq-server (behind Debian's wrapper) with its own node \
         name, HOME, database, log and (empty) configuration, no plugins, and its own epmd \
         on a free port (ERL_EPMD_PORT), ready once `rabbitmqctl await_startup` returns, \
         stopped with `rabbitmqctl stop`."
            .to_owned(),
    );
    if !versions.is_empty() {
        outcome
            .notes
            .push(format!("Versions: {}.", versions.join(", ")));
    }
}

/// `5.12 M/s`, `72.3 k/s`.
fn rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M/s", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k/s", value / 1e3)
    } else {
        format!("{value:.0}/s")
    }
}

/// `12.3 µs`, `4.56 ms`.
fn latency(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn values<'a>(outcome: &'a Outcome, system: System, cell: Cell, metric: &str) -> Option<&'a [f64]> {
    let row = subject(system, cell);
    outcome
        .values
        .iter()
        .find(|(s, m, _, _)| *s == row && m == metric)
        .map(|(_, _, _, runs)| runs.as_slice())
}

fn median(outcome: &Outcome, system: System, cell: Cell, metric: &str) -> Option<f64> {
    outcome.median(&subject(system, cell), metric)
}

/// A ratio against its target: `2.10× (met)`.
fn judged(ratio: Option<f64>, target: f64, at_least: bool) -> String {
    match ratio {
        Some(r) if r.is_finite() => {
            let met = if at_least { r >= target } else { r <= target };
            format!("{r:.2}× ({})", if met { "met" } else { "not met" })
        }
        _ => "—".to_owned(),
    }
}

/// One cell's table: every subject's maximum rate and its latency at 10% load.
fn cell_table(outcome: &Outcome, cell: Cell) -> String {
    let load = LOAD_FRACTION * 100.0;
    let mut md = format!(
        "| subject | max messages/s (median) | min – max | vs zmq | at {load:.0}% load: \
         received | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    let zmq = median(outcome, System::Zmq, cell, MAX_RATE);
    for system in System::ALL {
        let row = subject(system, cell);
        if let Some(reason) = outcome
            .unavailable
            .iter()
            .find(|(s, _)| *s == row)
            .map(|(_, r)| r)
        {
            let _ = writeln!(
                md,
                "| {} | not available: {} | | | | | | | |",
                system.name(),
                reason.replace('|', "\\|")
            );
            continue;
        }
        let max = values(outcome, system, cell, MAX_RATE).and_then(Summary::of);
        let (max_text, range) = match &max {
            Some(s) => (
                format!("**{}**", rate(s.median)),
                format!("{} – {}", rate(s.min), rate(s.max)),
            ),
            None => ("—".to_owned(), String::new()),
        };
        let versus = match (max.as_ref().map(|s| s.median), zmq) {
            (_, _) if system == System::Zmq => "baseline".to_owned(),
            (Some(m), Some(z)) if z > 0.0 => format!("{:.2}×", m / z),
            _ => "—".to_owned(),
        };
        let received = median(outcome, system, cell, LOAD_RATE).map_or("—".to_owned(), rate);
        let percentiles: Vec<String> = LATENCIES
            .iter()
            .map(|metric| median(outcome, system, cell, metric).map_or("—".to_owned(), latency))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {max_text} | {range} | {versus} | {received} | {} |",
            system.name(),
            percentiles.join(" | ")
        );
    }
    md
}

/// The targets, one row per cell: hawser's rate, its ratios to each baseline's and its
/// p99.9 at 10% load over zmq's.
fn targets_table(outcome: &Outcome) -> String {
    let mut md = String::new();
    let first = Cell {
        size: 64,
        publishers: 1,
    };
    let hawser_64 = median(outcome, System::Hawser, first, MAX_RATE);
    let _ = writeln!(
        md,
        "hawser, {}: {} (target ≥ {}): {}.\n",
        first.label(),
        hawser_64.map_or("not measured".to_owned(), rate),
        rate(HAWSER_64B_TARGET),
        match hawser_64 {
            Some(r) if r >= HAWSER_64B_TARGET => "met",
            Some(_) => "not met",
            None => "—",
        }
    );
    let mut header = "| cell | hawser max messages/s |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for (system, target) in RATE_TARGETS {
        let _ = write!(header, " hawser / {} (≥ {target}×) |", system.name());
        rule.push_str("---|");
    }
    let _ = write!(
        header,
        " hawser p99.9 / zmq p99.9 at 10% load (≤ {P999_TARGET}×) |"
    );
    rule.push_str("---|");
    let _ = writeln!(md, "{header}\n{rule}");
    let p999 = LATENCIES[2];
    for cell in Cell::all() {
        let hawser = median(outcome, System::Hawser, cell, MAX_RATE);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let mut line = format!(
            "| {} | {} |",
            cell.label(),
            hawser.map_or("—".to_owned(), rate)
        );
        for (system, target) in RATE_TARGETS {
            let r = ratio(hawser, median(outcome, system, cell, MAX_RATE));
            let _ = write!(line, " {} |", judged(r, target, true));
        }
        let r = ratio(
            median(outcome, System::Hawser, cell, p999),
            median(outcome, System::Zmq, cell, p999),
        );
        let _ = write!(line, " {} |", judged(r, P999_TARGET, false));
        let _ = writeln!(md, "{line}");
    }
    md.push_str(
        "\nRatios of medians; \"—\" where a side was not measured (see the rows not \
         available above).\n",
    );
    md
}

/// Adds the per-cell tables and the targets to the report.
pub(super) fn sections(outcome: &mut Outcome) {
    let mut sections: Vec<(String, String)> = Cell::all()
        .into_iter()
        .map(|cell| (cell.label(), cell_table(outcome, cell)))
        .collect();
    sections.push(("Targets".to_owned(), targets_table(outcome)));
    outcome.sections.extend(sections);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(size: usize, publishers: usize) -> Cell {
        Cell { size, publishers }
    }

    #[test]
    fn tables_show_medians_ratios_and_what_is_missing() {
        let mut outcome = Outcome::default();
        let c = cell(64, 1);
        for (system, max) in [
            (System::Hawser, 6e6),
            (System::Zmq, 2e6),
            (System::Rabbitmq, 5e4),
        ] {
            outcome.record(&subject(system, c), MAX_RATE, "1/s", max);
            outcome.record(&subject(system, c), LOAD_RATE, "1/s", max / 10.0);
        }
        outcome.record(&subject(System::Zmq, c), MAX_RATE, "1/s", 4e6);
        outcome.record(&subject(System::Hawser, c), LATENCIES[2], "ns", 20_000.0);
        outcome.record(&subject(System::Zmq, c), LATENCIES[2], "ns", 40_000.0);
        outcome.mark_unavailable(&subject(System::Nats, c), "nats-server: no");
        let table = cell_table(&outcome, c);
        assert!(
            table.contains("| hawser | **6.00 M/s** | 6.00 M/s – 6.00 M/s | 2.00× | 600.0 k/s | — | — | 20.0 µs | — |"),
            "{table}"
        );
        assert!(
            table.contains("| zmq | **3.00 M/s** | 2.00 M/s – 4.00 M/s | baseline |"),
            "{table}"
        );
        assert!(table.contains("| rabbitmq | **50.0 k/s** |"), "{table}");
        assert!(
            table.contains("| nats | not available: nats-server: no |"),
            "{table}"
        );

        let targets = targets_table(&outcome);
        assert!(
            targets.contains(
                "hawser, 64 B, 1 publisher, 1 consumer: 6.00 M/s (target ≥ 5.00 M/s): met."
            ),
            "{targets}"
        );
        assert!(
            targets.contains("| 64 B, 1 publisher, 1 consumer | 6.00 M/s | 2.00× (met) | 120.00× (met) | — | 0.50× (met) |"),
            "{targets}"
        );
        assert!(
            targets.contains("| 1024 B, 4 publishers, 1 consumer | — | — | — | — | — |"),
            "{targets}"
        );

        sections(&mut outcome);
        assert_eq!(outcome.sections.len(), 5);
        assert_eq!(outcome.sections[4].0, "Targets");
    }

    #[test]
    fn units() {
        assert_eq!(rate(5_120_000.0), "5.12 M/s");
        assert_eq!(rate(72_345.0), "72.3 k/s");
        assert_eq!(rate(512.0), "512/s");
        assert_eq!(latency(12_345.0), "12.3 µs");
        assert_eq!(latency(4_560_000.0), "4.56 ms");
        assert_eq!(judged(Some(0.8), 1.0, false), "0.80× (met)");
        assert_eq!(judged(Some(1.2), 1.5, true), "1.20× (not met)");
        assert_eq!(judged(None, 1.5, true), "—");
    }
}
