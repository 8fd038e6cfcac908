//! SVG plots with `plotters`: throughput over time and HdrHistogram-style latency
//! percentile curves.

use std::fmt::Display;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{LatencyCurve, ReportError, Subject, Summary, ThroughputSeries};

const SIZE: (u32, u32) = (960, 540);

fn plot_error(path: &Path, error: impl Display) -> ReportError {
    ReportError::Plot {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// Distinct colours per subject, in first-seen order.
fn subject_colors<'a>(subjects: impl Iterator<Item = &'a Subject>) -> Vec<(Subject, RGBColor)> {
    let mut colors: Vec<(Subject, RGBColor)> = Vec::new();
    for subject in subjects {
        if !colors.iter().any(|(s, _)| s == subject) {
            let (r, g, b) = Palette99::pick(colors.len()).rgb();
            colors.push((subject.clone(), RGBColor(r, g, b)));
        }
    }
    colors
}

fn white_area(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>, ReportError> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    Ok(root)
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
    for (subject, color) in &colors {
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
        let color = *color;
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

/// `1/(1-p)` back to a percentile label: 10 -> `90%`, 1000 -> `99.9%`.
pub fn percentile_label(inverse_tail: f64) -> String {
    let percent = (1.0 - 1.0 / inverse_tail) * 100.0;
    let text = format!("{percent:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Latency (µs, log axis) against percentile on the HdrHistogram log axis: x is
/// `1/(1-p)`, so 90%, 99%, 99.9% ... are equally spaced.
pub fn latency_percentiles(
    path: &Path,
    scenario: &str,
    curves: &[(Subject, LatencyCurve)],
) -> Result<(), ReportError> {
    let colors = subject_colors(curves.iter().map(|(s, _)| s));
    // p = 1 has no finite x; the largest value shows as the last finite point instead.
    let finite = |curve: &LatencyCurve| -> Vec<(f64, f64)> {
        curve
            .points
            .iter()
            .filter(|(p, ns)| *p < 1.0 && *ns > 0.0)
            .map(|&(p, ns)| (1.0 / (1.0 - p), ns / 1000.0))
            .collect()
    };
    let all: Vec<(f64, f64)> = curves.iter().flat_map(|(_, c)| finite(c)).collect();
    let x_max = all.iter().map(|p| p.0).fold(1000.0, f64::max);
    let x_max = 10f64.powf(x_max.log10().ceil());
    let y_min = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_max = all.iter().map(|p| p.1).fold(0.0, f64::max);
    let (y_min, y_max) = if y_min.is_finite() && y_max > 0.0 {
        (y_min / 1.5, y_max * 1.5)
    } else {
        (1.0, 1000.0)
    };
    let root = white_area(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{scenario}: latency by percentile"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("percentile (log scale of 1/(1-p))")
        .y_desc("latency, µs (log scale)")
        .x_label_formatter(&|v| percentile_label(*v))
        .y_label_formatter(&|v| {
            if *v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (subject, curve) in curves {
        let color = colors
            .iter()
            .find(|(s, _)| s == subject)
            .map_or(BLACK, |(_, c)| *c);
        chart
            .draw_series(LineSeries::new(finite(curve), color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(subject.label())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
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

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(100_000.0), "99.999%");
    }
}
