//! `<scenario>.md`: the machine, the command, a table of medians with min/max and ratios
//! to the scenario's baseline, the rows that could not be measured, the plots and notes.

use std::fmt::Write;

use super::{JsonReport, Outcome, ResultRow, ratio};

/// A value in the unit people read: GB/s and Gbit/s for rates, µs for latencies.
pub fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "bytes/s" => format!("{:.2} GB/s ({:.2} Gbit/s)", value / 1e9, value * 8.0 / 1e9),
        "ns" => format!("{:.1} µs", value / 1e3),
        "fraction" => format!("{:.1}%", value * 100.0),
        "s" => format!("{value:.2} s"),
        "ms" => format!("{value:.1} ms"),
        "1/s" => format!("{value:.0}/s"),
        "core-s/GB" => format!("{value:.2} core-s/GB"),
        _ => format!("{value:.3} {unit}"),
    }
}

fn format_range(row: &ResultRow) -> String {
    let short = |v: f64| match row.unit.as_str() {
        "bytes/s" => format!("{:.2}", v / 1e9),
        "ns" => format!("{:.1}", v / 1e3),
        "fraction" => format!("{:.1}%", v * 100.0),
        "s" => format!("{v:.2}"),
        "ms" => format!("{v:.1}"),
        "core-s/GB" => format!("{v:.2}"),
        _ => format!("{v:.0}"),
    };
    format!("{} – {}", short(row.min), short(row.max))
}

/// Renders the Markdown report.
pub fn render(outcome: &Outcome, report: &JsonReport, plots: &[String]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", report.scenario);
    let machine = &report.machine;
    let _ = writeln!(
        md,
        "Machine: {} cores, Linux {}, {}.",
        machine.cores, machine.kernel, machine.cpu
    );
    if !outcome.started_utc.is_empty() {
        let _ = write!(md, "Run started {}", outcome.started_utc);
        if let (Some(first), Some(last)) =
            (outcome.load_samples.first(), outcome.load_samples.last())
        {
            let low = outcome
                .load_samples
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min);
            let high = outcome.load_samples.iter().copied().fold(0.0, f64::max);
            let _ = write!(
                md,
                "; load average (1 min) {first:.2} at the start, {last:.2} at the end, \
                 {low:.2}–{high:.2} over the rounds"
            );
        }
        let _ = writeln!(md, ".");
    }
    let _ = writeln!(
        md,
        "{} run(s) per tool, A/B alternated (every tool once per round).\n",
        outcome.runs
    );
    let _ = writeln!(md, "Reproduce:\n\n```\n{}\n```\n", report.command);

    let baseline_label = if outcome.baseline_of.is_empty() {
        outcome
            .baseline
            .as_ref()
            .map_or_else(|| "—".to_owned(), super::Subject::label)
    } else {
        "its baseline".to_owned()
    };
    let _ = writeln!(
        md,
        "| tool | variant | metric | median | min – max | runs | vs {baseline_label} |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for row in &report.results {
        let subject = super::Subject::new(row.tool.as_str(), row.variant.as_str());
        let baseline_row = outcome.baseline_for(&subject).and_then(|b| {
            report
                .results
                .iter()
                .find(|r| r.tool == b.tool && r.variant == b.variant && r.metric == row.metric)
        });
        let versus = match baseline_row {
            Some(b) if b.tool == row.tool && b.variant == row.variant => "baseline".to_owned(),
            Some(b) => ratio(row.median, b.median).map_or("—".to_owned(), |r| format!("{r:.2}×")),
            None => "—".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | **{}** | {} | {} | {} |",
            row.tool,
            row.variant,
            row.metric,
            format_value(row.median, &row.unit),
            format_range(row),
            row.runs.len(),
            versus
        );
    }
    for (subject, reason) in &outcome.unavailable {
        let _ = writeln!(
            md,
            "| {} | {} | — | not available: {reason} | | 0 | |",
            subject.tool, subject.variant
        );
    }
    let _ = writeln!(
        md,
        "\nRatios are median / baseline median of the same metric (for latencies and \
         elapsed times lower is better: a ratio below 1 means faster than the baseline)."
    );
    for (title, body) in &outcome.sections {
        let _ = writeln!(md, "\n## {title}\n\n{}", body.trim_end());
    }
    if !outcome.notes.is_empty() {
        let _ = writeln!(md, "\nNotes:\n");
        for note in &outcome.notes {
            let _ = writeln!(md, "- {note}");
        }
    }
    if !plots.is_empty() {
        let _ = writeln!(md);
        for plot in plots {
            let _ = writeln!(md, "![{plot}]({plot})\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::super::{Machine, Subject};
    use super::*;

    #[test]
    fn table_has_ratios_against_the_baseline() {
        let mut outcome = Outcome {
            scenario: "s".into(),
            command: "scripts/perf.sh s".into(),
            baseline: Some(Subject::new("iperf3", "-P 4")),
            runs: 2,
            ..Outcome::default()
        };
        let iperf = Subject::new("iperf3", "-P 4");
        let hawser = Subject::new("hawser", "bulk");
        outcome.record(&iperf, "throughput_bytes_per_sec", "bytes/s", 2e9);
        outcome.record(&iperf, "throughput_bytes_per_sec", "bytes/s", 2e9);
        outcome.record(&hawser, "throughput_bytes_per_sec", "bytes/s", 3e9);
        outcome.record(&hawser, "latency_p50_ns", "ns", 25_000.0);
        outcome.mark_unavailable(&Subject::new("hawser", "push"), "hawser push not built");
        let machine = Machine {
            cores: 2,
            kernel: "6.18".into(),
            cpu: "cpu".into(),
        };
        let md = render(&outcome, &outcome.json_report(&machine), &[]);
        assert!(md.contains("| iperf3 | -P 4 | throughput_bytes_per_sec | **2.00 GB/s (16.00 Gbit/s)** | 2.00 – 2.00 | 2 | baseline |"), "{md}");
        assert!(
            md.contains("| **3.00 GB/s (24.00 Gbit/s)** | 3.00 – 3.00 | 1 | 1.50× |"),
            "{md}"
        );
        assert!(
            md.contains("| latency_p50_ns | **25.0 µs** | 25.0 – 25.0 | 1 | — |"),
            "{md}"
        );
        assert!(md.contains("not available: hawser push not built"));
        assert!(md.contains("Linux 6.18"));
        assert!(
            !md.contains("\n## "),
            "no sections unless a scenario adds them"
        );
        outcome
            .sections
            .push(("Per cell".into(), "| a | b |\n|---|---|\n".into()));
        outcome.notes.push("a note".into());
        let md = render(&outcome, &outcome.json_report(&machine), &[]);
        let section = md
            .find("\n## Per cell\n\n| a | b |\n|---|---|\n")
            .expect(&md);
        assert!(section < md.find("Notes:").unwrap(), "{md}");
    }

    #[test]
    fn units() {
        assert_eq!(format_value(0.953, "fraction"), "95.3%");
        assert_eq!(format_value(2.5, "s"), "2.50 s");
        assert_eq!(format_value(47_000.0, "ns"), "47.0 µs");
        assert_eq!(format_value(12.345, "ms"), "12.3 ms");
        assert_eq!(format_value(0.456, "core-s/GB"), "0.46 core-s/GB");
    }
}
