//! Scenario reports: the machine-readable JSON, the Markdown table and the SVG plots.
//!
//! A scenario produces an [`Outcome`]: per-run values of each (tool, variant, metric), the
//! per-interval throughput samples of each run, latency percentile curves, and the rows it
//! could not measure (with the reason). [`write_reports`] turns it into
//! `<scenario>.json`, `<scenario>.md`, `<scenario>-throughput.svg` and
//! `<scenario>-latency.svg`.

pub mod hgrm;
pub mod markdown;
pub mod plot;
pub mod stats;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use hgrm::{LatencyCurve, parse_hgrm};
pub use stats::{Summary, ratio};

/// Errors writing a report.
#[derive(Debug, Error)]
pub enum ReportError {
    /// Writing a report file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Encoding the JSON failed.
    #[error("encoding the JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// Drawing a plot failed.
    #[error("drawing {path}: {message}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// The plotting library's error.
        message: String,
    },
    /// A `.hgrm` file could not be parsed.
    #[error("parsing .hgrm: {0}")]
    Hgrm(String),
}

/// The machine a scenario ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Online CPUs.
    pub cores: usize,
    /// `uname -r`.
    pub kernel: String,
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: String,
}

impl Machine {
    /// Describes this machine.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, name)| name.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine { cores, kernel, cpu }
    }
}

/// One row of the JSON report: a metric of one tool variant over all runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// The tool (`hawser`, `iperf3`, `sockperf`, `plain-socket`, ...).
    pub tool: String,
    /// How it was run (`-P 4`, `ping-pong`, ...).
    pub variant: String,
    /// The metric name, e.g. `throughput_bytes_per_sec`.
    pub metric: String,
    /// Its unit: `bytes/s`, `ns`, `s`, `fraction`, `1/s`.
    pub unit: String,
    /// Median over the runs.
    pub median: f64,
    /// Smallest run.
    pub min: f64,
    /// Largest run.
    pub max: f64,
    /// Every run's value, in the order they ran.
    pub runs: Vec<f64>,
}

/// The JSON report, exactly the shape issue 6 specifies for dashboards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonReport {
    /// Scenario name.
    pub scenario: String,
    /// Where it ran.
    pub machine: Machine,
    /// The command that reproduces it.
    pub command: String,
    /// One row per (tool, variant, metric).
    pub results: Vec<ResultRow>,
}

/// A tool variant, the unit of A/B alternation and of the report's rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    /// The tool.
    pub tool: String,
    /// How it was run.
    pub variant: String,
}

impl Subject {
    /// A subject from its tool and variant.
    pub fn new(tool: impl Into<String>, variant: impl Into<String>) -> Self {
        Subject {
            tool: tool.into(),
            variant: variant.into(),
        }
    }

    /// `tool variant`, for legends and tables.
    pub fn label(&self) -> String {
        if self.variant.is_empty() {
            self.tool.clone()
        } else {
            format!("{} {}", self.tool, self.variant)
        }
    }
}

/// Throughput samples of one run: (seconds since the run started, bytes per second over
/// the interval ending then).
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputSeries {
    /// Whose samples.
    pub subject: Subject,
    /// Which run (0-based).
    pub run: usize,
    /// (interval end in seconds, bytes per second).
    pub points: Vec<(f64, f64)>,
}

/// Everything a scenario measured, before it is summarised.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// The command that reproduces it.
    pub command: String,
    /// The subject the ratios are relative to.
    pub baseline: Option<Subject>,
    /// Baselines of particular subjects, overriding `baseline` (e.g. per data set:
    /// `hawser push` of the small files against `rsync` of the small files).
    pub baseline_of: Vec<(Subject, Subject)>,
    /// Per-run values: (subject, metric, unit) -> values in run order.
    pub values: Vec<(Subject, String, String, Vec<f64>)>,
    /// Per-interval throughput of each run.
    pub series: Vec<ThroughputSeries>,
    /// Latency percentile curves (one per subject, from one representative run).
    pub latency: Vec<(Subject, LatencyCurve)>,
    /// Subjects that were not measured, with the reason.
    pub unavailable: Vec<(Subject, String)>,
    /// Free-form lines for the Markdown report (setup, caveats, definitions).
    pub notes: Vec<String>,
    /// Extra Markdown sections (title, body) after the main table and before the notes:
    /// a scenario's own summary tables.
    pub sections: Vec<(String, String)>,
    /// Load average (1 min) sampled before the scenario, at each round and after it: the
    /// machine is shared, and this says how busy it was.
    pub load_samples: Vec<f64>,
    /// UTC start time, as `date -u` prints it.
    pub started_utc: String,
    /// Runs per subject that were asked for.
    pub runs: usize,
}

impl Outcome {
    /// Records one run's value of `metric` for `subject`.
    pub fn record(&mut self, subject: &Subject, metric: &str, unit: &str, value: f64) {
        if !value.is_finite() {
            return;
        }
        match self
            .values
            .iter_mut()
            .find(|(s, m, _, _)| s == subject && m == metric)
        {
            Some((_, _, _, values)) => values.push(value),
            None => self.values.push((
                subject.clone(),
                metric.to_owned(),
                unit.to_owned(),
                vec![value],
            )),
        }
    }

    /// The median of `subject`'s runs of `metric`, if it has any.
    pub fn median(&self, subject: &Subject, metric: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(s, m, _, _)| s == subject && m == metric)
            .and_then(|(_, _, _, runs)| Summary::of(runs))
            .map(|summary| summary.median)
    }

    /// The subject `subject`'s ratios are relative to.
    pub fn baseline_for(&self, subject: &Subject) -> Option<&Subject> {
        self.baseline_of
            .iter()
            .find(|(s, _)| s == subject)
            .map(|(_, baseline)| baseline)
            .or(self.baseline.as_ref())
    }

    /// Marks `subject` as not measured, once.
    pub fn mark_unavailable(&mut self, subject: &Subject, reason: &str) {
        if !self.unavailable.iter().any(|(s, _)| s == subject) {
            self.unavailable.push((subject.clone(), reason.to_owned()));
        }
    }

    /// Whether `subject` was marked unavailable.
    pub fn is_unavailable(&self, subject: &Subject) -> bool {
        self.unavailable.iter().any(|(s, _)| s == subject)
    }

    /// The JSON report: one row per (subject, metric) with at least one value.
    pub fn json_report(&self, machine: &Machine) -> JsonReport {
        let results = self
            .values
            .iter()
            .filter_map(|(subject, metric, unit, runs)| {
                let summary = Summary::of(runs)?;
                Some(ResultRow {
                    tool: subject.tool.clone(),
                    variant: subject.variant.clone(),
                    metric: metric.clone(),
                    unit: unit.clone(),
                    median: summary.median,
                    min: summary.min,
                    max: summary.max,
                    runs: runs.clone(),
                })
            })
            .collect();
        JsonReport {
            scenario: self.scenario.clone(),
            machine: machine.clone(),
            command: self.command.clone(),
            results,
        }
    }
}

/// The files [`write_reports`] wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `<scenario>.json`.
    pub json: PathBuf,
    /// `<scenario>.md`.
    pub markdown: PathBuf,
    /// The SVG plots written (none when there was nothing to plot).
    pub plots: Vec<PathBuf>,
}

fn write_file(path: &Path, contents: &str) -> Result<(), ReportError> {
    std::fs::write(path, contents).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes the JSON, Markdown and SVG reports of `outcome` into `dir`.
pub fn write_reports(
    outcome: &Outcome,
    machine: &Machine,
    dir: &Path,
) -> Result<ReportFiles, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let json_path = dir.join(format!("{}.json", outcome.scenario));
    let report = outcome.json_report(machine);
    write_file(&json_path, &(serde_json::to_string_pretty(&report)? + "\n"))?;

    let mut plots = Vec::new();
    if !outcome.series.is_empty() {
        let path = dir.join(format!("{}-throughput.svg", outcome.scenario));
        plot::throughput_over_time(&path, &outcome.scenario, &outcome.series)?;
        plots.push(path);
    }
    if !outcome.latency.is_empty() {
        let path = dir.join(format!("{}-latency.svg", outcome.scenario));
        plot::latency_percentiles(&path, &outcome.scenario, &outcome.latency)?;
        plots.push(path);
    }
    let markdown_path = dir.join(format!("{}.md", outcome.scenario));
    let plot_names: Vec<String> = plots
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    write_file(
        &markdown_path,
        &markdown::render(outcome, &report, &plot_names),
    )?;
    Ok(ReportFiles {
        json: json_path,
        markdown: markdown_path,
        plots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_outcome() -> Outcome {
        let mut outcome = Outcome {
            scenario: "loopback-bulk".into(),
            command: "scripts/perf.sh loopback-bulk".into(),
            baseline: Some(Subject::new("iperf3", "-P 4")),
            ..Outcome::default()
        };
        let iperf = Subject::new("iperf3", "-P 4");
        let hawser = Subject::new("hawser", "bench bulk");
        for v in [3.0e9, 1.0e9, 2.0e9] {
            outcome.record(&iperf, "throughput_bytes_per_sec", "bytes/s", v);
        }
        for v in [4.0e9, 5.0e9] {
            outcome.record(&hawser, "throughput_bytes_per_sec", "bytes/s", v);
        }
        outcome.record(&hawser, "latency_p50_ns", "ns", f64::NAN); // dropped
        outcome
    }

    #[test]
    fn json_has_exactly_the_issue_schema() {
        let machine = Machine {
            cores: 2,
            kernel: "6.18.0".into(),
            cpu: "test cpu".into(),
        };
        let report = sample_outcome().json_report(&machine);
        let value = serde_json::to_value(&report).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&value), ["command", "machine", "results", "scenario"]);
        assert_eq!(keys(&value["machine"]), ["cores", "cpu", "kernel"]);
        assert!(value["machine"]["cores"].is_u64());
        let rows = value["results"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "the NaN-only metric has no row");
        for row in rows {
            assert_eq!(
                keys(row),
                [
                    "max", "median", "metric", "min", "runs", "tool", "unit", "variant"
                ]
            );
            for number in ["median", "min", "max"] {
                assert!(row[number].is_f64(), "{number} is a number");
            }
            assert!(row["runs"].as_array().unwrap().iter().all(|r| r.is_f64()));
        }
        assert_eq!(rows[0]["median"], 2.0e9);
        assert_eq!(rows[0]["min"], 1.0e9);
        assert_eq!(rows[0]["max"], 3.0e9);
        assert_eq!(rows[1]["median"], 4.5e9);
        // And it reads back.
        let back: JsonReport = serde_json::from_value(value).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn writes_all_three_kinds_of_file() {
        let dir = std::env::temp_dir().join(format!("hawser-report-test-{}", std::process::id()));
        let mut outcome = sample_outcome();
        outcome.series.push(ThroughputSeries {
            subject: Subject::new("iperf3", "-P 4"),
            run: 0,
            points: vec![(1.0, 1e9), (2.0, 2e9), (3.0, 2.5e9)],
        });
        let curve = parse_hgrm(hgrm::tests::SAMPLE).unwrap();
        outcome
            .latency
            .push((Subject::new("hawser", "ping-pong"), curve));
        outcome.mark_unavailable(&Subject::new("hawser", "push"), "hawser push not built");
        let files = write_reports(&outcome, &Machine::detect(), &dir).unwrap();
        assert_eq!(files.plots.len(), 2);
        for path in files.plots.iter().chain([&files.json, &files.markdown]) {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(!text.is_empty(), "{}", path.display());
        }
        let svg = std::fs::read_to_string(&files.plots[0]).unwrap();
        assert!(svg.starts_with("<svg"));
        let md = std::fs::read_to_string(&files.markdown).unwrap();
        assert!(md.contains("hawser push not built"));
        assert!(md.contains("loopback-bulk-throughput.svg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
