//! SVG plots with `plotters`: throughput over time here, and the HdrHistogram-style
//! latency percentile curves through [`hawser_plot`], which the CLI's `--plot` draws too.

use std::fmt::Display;
use std::path::Path;

use hawser_plot::{Curve, PlotError, color, white_area};
use plotters::prelude::*;

use super::{LatencyCurve, ReportError, Subject, Summary, ThroughputSeries};

fn plot_error(path: &Path, error: impl Display) -> ReportError {
    ReportError::from(hawser_plot::plot_error(path, error))
}

impl From<PlotError> for ReportError {
    fn from(e: PlotError) -> Self {
        ReportError::Plot {
            path: e.path,
            message: e.message,
        }
    }
}

/// Distinct colours per subject, in first-seen order: each subject's index into
/// [`color`].
fn subject_colors<'a>(subjects: impl Iterator<Item = &'a Subject>) -> Vec<(Subject, usize)> {
    let mut colors: Vec<(Subject, usize)> = Vec::new();
    for subject in subjects {
        if !colors.iter().any(|(s, _)| s == subject) {
            colors.push((subject.clone(), colors.len()));
        }
    }
    colors
}

/// Each sample is a rate over the interval that ends at its time: drawn as a step from
/// the previous sample's time (0 for the first), not as a slope between interval ends.
fn steps(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut start = 0.0;
    let mut out = Vec::with_capacity(points.len() * 2);
    for &(end, rate) in points {
        out.push((start, rate));
        out.push((end, rate));
        start = end;
    }
    out
}

/// Interval by interval, the median time and the median rate over the runs (runs of the
/// same length have the same number of intervals).
fn median_series(runs: &[&ThroughputSeries]) -> Vec<(f64, f64)> {
    let longest = runs.iter().map(|r| r.points.len()).max().unwrap_or(0);
    (0..longest)
        .filter_map(|i| {
            let at: Vec<(f64, f64)> = runs
                .iter()
                .filter_map(|r| r.points.get(i).copied())
                .collect();
            let times: Vec<f64> = at.iter().map(|p| p.0).collect();
            let rates: Vec<f64> = at.iter().map(|p| p.1).collect();
            Some((Summary::of(&times)?.median, Summary::of(&rates)?.median))
        })
        .collect()
}

/// Throughput (Gbit/s) over time, one colour per tool variant, one line per run.
pub fn throughput_over_time(
    path: &Path,
    scenario: &str,
    series: &[ThroughputSeries],
) -> Result<(), ReportError> {
    let colors = subject_colors(series.iter().map(|s| &s.subject));
    let points = || series.iter().flat_map(|s| s.points.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let y_max = points().map(|p| p.1 * 8.0 / 1e9).fold(0.1, f64::max) * 1.1;
    let root = white_area(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{scenario}: throughput over time (bold: median over runs; faint: each run)"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("seconds since the run started")
        .y_desc("Gbit/s (per interval)")
        .draw()
        .map_err(|e| plot_error(path, e))?;
    let gbit = |(t, bytes_per_sec): (f64, f64)| (t, bytes_per_sec * 8.0 / 1e9);
    for (subject, index) in &colors {
        let color = color(*index);
        let runs: Vec<&ThroughputSeries> =
            series.iter().filter(|s| &s.subject == subject).collect();
        // Every run faint and the median over runs bold: the spread stays visible without
        // hiding the typical course.
        for run in &runs {
            let line = LineSeries::new(
                steps(&run.points).into_iter().map(gbit),
                color.mix(0.3).stroke_width(1),
            );
            chart.draw_series(line).map_err(|e| plot_error(path, e))?;
        }
        let median = median_series(&runs);
        chart
            .draw_series(LineSeries::new(
                steps(&median).into_iter().map(gbit),
                color.stroke_width(3),
            ))
            .map_err(|e| plot_error(path, e))?
            .label(format!(
                "{} (median of {} runs)",
                subject.label(),
                runs.len()
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Latency (µs, log axis) against percentile on the HdrHistogram log axis, one curve
/// per subject (see [`hawser_plot::latency_percentiles`]).
pub fn latency_percentiles(
    path: &Path,
    scenario: &str,
    curves: &[(Subject, LatencyCurve)],
) -> Result<(), ReportError> {
    let colors = subject_colors(curves.iter().map(|(s, _)| s));
    let labels: Vec<String> = curves.iter().map(|(s, _)| s.label()).collect();
    let drawn: Vec<Curve<'_>> = curves
        .iter()
        .zip(&labels)
        .map(|((subject, curve), label)| Curve {
            label,
            points: &curve.points,
            color: colors
                .iter()
                .find(|(s, _)| s == subject)
                .map_or(0, |(_, i)| *i),
        })
        .collect();
    let title = format!("{scenario}: latency by percentile");
    Ok(hawser_plot::latency_percentiles(path, &title, &drawn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_over_runs_interval_by_interval() {
        let run = |points: Vec<(f64, f64)>| ThroughputSeries {
            subject: Subject::new("t", "v"),
            run: 0,
            points,
        };
        let runs = [
            run(vec![(1.0, 1.0), (2.0, 10.0)]),
            run(vec![(1.1, 3.0), (2.1, 30.0)]),
            run(vec![(0.9, 2.0)]),
        ];
        let refs: Vec<&ThroughputSeries> = runs.iter().collect();
        assert_eq!(median_series(&refs), vec![(1.0, 2.0), (2.05, 20.0)]);
    }

    #[test]
    fn interval_rates_become_steps() {
        assert_eq!(
            steps(&[(1.0, 5.0), (2.0, 7.0)]),
            vec![(0.0, 5.0), (1.0, 5.0), (1.0, 7.0), (2.0, 7.0)]
        );
    }
}
