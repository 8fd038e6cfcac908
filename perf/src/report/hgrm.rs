//! Latency percentile curves and the HdrHistogram `.hgrm` text format.
//!
//! `.hgrm` is what `outputPercentileDistribution` prints (and `hawser bench --histogram`
//! writes): a header line, then `Value Percentile TotalCount 1/(1-Percentile)` rows with
//! the value in microseconds (the usual output scaling of 1000 for nanosecond
//! histograms), the last row without the `1/(1-p)` column, then `#[Mean ...]` footers.

use super::ReportError;

/// Latency at each percentile, in nanoseconds; percentiles as fractions in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencyCurve {
    /// (percentile as a fraction, latency in ns), percentiles ascending.
    pub points: Vec<(f64, f64)>,
}

impl LatencyCurve {
    /// The latency at the first point at or above `percentile` (a fraction).
    pub fn at(&self, percentile: f64) -> Option<f64> {
        self.points
            .iter()
            .find(|(p, _)| *p >= percentile - 1e-12)
            .map(|(_, ns)| *ns)
    }
}

/// Parses `.hgrm` text whose values are microseconds.
pub fn parse_hgrm(text: &str) -> Result<LatencyCurve, ReportError> {
    parse_hgrm_scaled(text, 1000.0)
}

/// Parses `.hgrm` text; `ns_per_unit` converts its values to nanoseconds.
pub fn parse_hgrm_scaled(text: &str, ns_per_unit: f64) -> Result<LatencyCurve, ReportError> {
    let mut points = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("Value") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(3..=4).contains(&fields.len()) {
            return Err(ReportError::Hgrm(format!(
                "line {}: expected 3 or 4 columns: {line:?}",
                number + 1
            )));
        }
        let parse = |field: &str| {
            field.parse::<f64>().map_err(|_| {
                ReportError::Hgrm(format!("line {}: not a number: {field:?}", number + 1))
            })
        };
        let value = parse(fields[0])?;
        let percentile = parse(fields[1])?;
        // TotalCount is checked too: a garbled row is an error, not a silent point.
        fields[2].parse::<u64>().map_err(|_| {
            ReportError::Hgrm(format!(
                "line {}: bad total count {:?}",
                number + 1,
                fields[2]
            ))
        })?;
        if !(0.0..=1.0).contains(&percentile) {
            return Err(ReportError::Hgrm(format!(
                "line {}: percentile {percentile} outside [0, 1]",
                number + 1
            )));
        }
        points.push((percentile, value * ns_per_unit));
    }
    if points.is_empty() {
        return Err(ReportError::Hgrm("no percentile rows".into()));
    }
    Ok(LatencyCurve { points })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The shape `hawser bench --histogram` writes (values in µs).
    pub(crate) const SAMPLE: &str = "       Value     Percentile TotalCount 1/(1-Percentile)

      20.479 0.000000000000          1           1.00
      25.023 0.500000000000       5012           2.00
      31.999 0.900000000000       9001          10.00
      47.103 0.990000000000       9901         100.00
     120.319 0.999000000000       9991        1000.00
     900.095 1.000000000000      10000
#[Mean    =       26.100, StdDeviation   =        9.000]
#[Max     =      900.095, Total count    =        10000]
#[Buckets =           20, SubBuckets     =         2048]
";

    #[test]
    fn parses_rows_and_converts_to_nanoseconds() {
        let curve = parse_hgrm(SAMPLE).unwrap();
        assert_eq!(curve.points.len(), 6);
        assert_eq!(curve.points[0], (0.0, 20_479.0));
        assert_eq!(curve.at(0.5), Some(25_023.0));
        assert_eq!(curve.at(0.999), Some(120_319.0));
        assert_eq!(curve.points[5], (1.0, 900_095.0));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_hgrm("").is_err());
        assert!(parse_hgrm("1.0 0.5 x 2.0").is_err());
        assert!(parse_hgrm("1.0 1.5 10 2.0").is_err());
        assert!(parse_hgrm("1.0 0.5").is_err());
    }
}
