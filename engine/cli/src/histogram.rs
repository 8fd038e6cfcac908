//! Latency histograms: the bounds every hawser latency is recorded with, the classic
//! HdrHistogram `.hgrm` text that `--histogram FILE` writes (push, pull and bench), and
//! the percentile curve that `--plot FILE.svg` draws beside it.

use std::io::Write;
use std::path::Path;

use hdrhistogram::Histogram;

/// A histogram of nanoseconds from 1 ns to 10 minutes, 3 significant digits.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3).expect("constant bounds")
}

/// Writes `h` (nanoseconds) as an HdrHistogram percentile distribution in microseconds,
/// the classic `.hgrm` text of `outputPercentileDistribution(out, 5, 1000.0)`.
pub fn write_hgrm(h: &Histogram<u64>, out: &mut impl Write) -> std::io::Result<()> {
    const SCALE: f64 = 1000.0;
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / SCALE;
        if q < 1.0 {
            writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(out, "{value:12.3} {q:2.12} {total:10}")?;
        }
    }
    let sub_buckets = (2.0 * 10f64.powi(i32::from(h.sigfig())))
        .log2()
        .ceil()
        .exp2() as u64;
    writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    )?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    )
}

/// The percentile curve of `h` (nanoseconds): (percentile as a fraction, nanoseconds),
/// the rows [`write_hgrm`] lists.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    h.iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to() as f64))
        .collect()
}

/// Draws the latency percentile curve of `h` (nanoseconds) on log axes, as the perf
/// harness does, into the SVG file `path`; `label` names the curve.
pub fn write_plot_file(
    h: &Histogram<u64>,
    title: &str,
    label: &str,
    path: &Path,
) -> Result<(), hawser_plot::PlotError> {
    let points = percentile_points(h);
    let curve = hawser_plot::Curve {
        label,
        points: &points,
        color: 0,
    };
    hawser_plot::latency_percentiles(path, title, &[curve])
}

/// [`write_hgrm`] into a new file at `path`.
pub fn write_hgrm_file(h: &Histogram<u64>, path: &Path) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    write_hgrm(h, &mut w)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_text_has_the_classic_header_and_footer() {
        let mut h = new_latency_histogram();
        for ns in [1_000, 2_000, 3_000, 1_000_000] {
            h.record(ns).unwrap();
        }
        let mut out = Vec::new();
        write_hgrm(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(text.contains("#[Max     ="));
        assert!(text.contains("Total count    =            4]"));
        assert!(text.contains("#[Buckets ="));
        let last = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
        assert!(last.contains("1.000000000000"), "{last}");
    }

    #[test]
    fn the_plot_is_an_svg_with_the_percentile_curve() {
        let mut h = new_latency_histogram();
        for i in 1..=10_000u64 {
            h.record(i * 1_000).unwrap();
        }
        let points = percentile_points(&h);
        assert!(points.len() > 10 && points.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(points.last().unwrap().0, 1.0);
        let dir = std::env::temp_dir().join(format!("hawser-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("latency.svg");
        write_plot_file(&h, "push: block round trip", "block round trip", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert!(svg.contains("block round trip") && svg.contains("99.9%"));
        // The curve: one polyline with a point per finite percentile.
        let curve = svg
            .lines()
            .find(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\""))
            .expect("a curve");
        let drawn = curve
            .split(" points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(drawn.split(' ').count() >= points.len() - 1, "{curve}");
        // Not a file: an error, not a panic.
        assert!(write_plot_file(&h, "t", "l", &dir.join("missing/x.svg")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
