//! SVG charts with `plotters`, shared by the `hawser` CLI (`--plot`) and the perf
//! harness: the latency percentile curve on log axes as HdrHistogram plots it, and the
//! white canvas and colours every chart starts from. A leaf crate: it imports nothing of
//! the workspace.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

/// Size of every chart, in pixels.
pub const SIZE: (u32, u32) = (960, 540);

/// A chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("plotting {path}: {message}")]
pub struct PlotError {
    /// The SVG file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// A [`PlotError`] for `path`.
pub fn plot_error(path: &Path, error: impl Display) -> PlotError {
    PlotError {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// The `index`th of a set of distinct colours.
pub fn color(index: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(index).rgb();
    RGBColor(r, g, b)
}

/// A white SVG canvas of [`SIZE`] writing to `path`.
pub fn white_area(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>, PlotError> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    Ok(root)
}

/// One latency curve: its legend and its points (percentile as a fraction in `[0, 1]`,
/// latency in nanoseconds), percentiles ascending.
#[derive(Debug, Clone, Copy)]
pub struct Curve<'a> {
    /// The legend.
    pub label: &'a str,
    /// (percentile, nanoseconds).
    pub points: &'a [(f64, f64)],
    /// Its colour, an index into [`color`].
    pub color: usize,
}

/// `1/(1-p)` back to a percentile label: 10 -> `90%`, 1000 -> `99.9%`.
pub fn percentile_label(inverse_tail: f64) -> String {
    let percent = (1.0 - 1.0 / inverse_tail) * 100.0;
    let text = format!("{percent:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The points of `curve` as drawn: x is `1/(1-p)`, y microseconds. p = 1 has no finite
/// x, and what is not a positive finite latency has no place on a log axis: both are
/// left out (the largest value shows as the last finite point).
pub fn drawn_points(curve: &Curve<'_>) -> Vec<(f64, f64)> {
    curve
        .points
        .iter()
        .filter(|(p, ns)| (0.0..1.0).contains(p) && ns.is_finite() && *ns > 0.0)
        .map(|&(p, ns)| (1.0 / (1.0 - p), ns / 1000.0))
        .collect()
}

/// Draws latency (µs, log axis) against percentile on the HdrHistogram log axis into
/// the SVG file `path`: x is `1/(1-p)`, so 90%, 99%, 99.9% ... are equally spaced.
pub fn latency_percentiles(
    path: &Path,
    title: &str,
    curves: &[Curve<'_>],
) -> Result<(), PlotError> {
    let all: Vec<(f64, f64)> = curves.iter().flat_map(drawn_points).collect();
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
        .caption(title, ("sans-serif", 20))
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
    for curve in curves {
        let color = color(curve.color);
        chart
            .draw_series(LineSeries::new(drawn_points(curve), color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(curve.label)
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
    fn percentile_labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(100_000.0), "99.999%");
    }

    #[test]
    fn points_without_a_place_on_log_axes_are_left_out() {
        let points = [
            (0.0, 2000.0),
            (0.9, 0.0),
            (0.99, f64::NAN),
            (0.999, 5000.0),
            (1.0, 9000.0),
            (-1.0, 10.0),
        ];
        let curve = Curve {
            label: "x",
            points: &points,
            color: 0,
        };
        let drawn = drawn_points(&curve);
        assert_eq!(drawn.len(), 2);
        assert_eq!(drawn[0], (1.0, 2.0));
        assert!((drawn[1].0 - 1000.0).abs() < 1e-6 && drawn[1].1 == 5.0);
    }
}
