//! Quantities as the CLI prints them, in one unit system: decimal SI (1 MB = 10^6 bytes,
//! MB/s), as `--rate` reads them and the reports print them.

use std::time::Duration;

/// `n` bytes in the largest decimal unit that keeps the figure at least 1: `512 B`,
/// `12.3 kB`, `872.0 MB`, `1.90 GB`.
pub fn decimal_bytes(n: u64) -> String {
    const UNITS: [(f64, &str); 5] = [
        (1e15, "PB"),
        (1e12, "TB"),
        (1e9, "GB"),
        (1e6, "MB"),
        (1e3, "kB"),
    ];
    let x = n as f64;
    for (size, unit) in UNITS {
        if x >= size {
            let v = x / size;
            // Three significant digits below 10, one decimal above.
            return if v < 10.0 {
                format!("{v:.2} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} B")
}

/// A rate of `bytes_per_sec` as `319.2 MB/s` (decimal units, as [`decimal_bytes`]).
pub fn decimal_rate(bytes_per_sec: f64) -> String {
    let clamped = if bytes_per_sec.is_finite() {
        bytes_per_sec.clamp(0.0, u64::MAX as f64)
    } else {
        0.0
    };
    format!("{}/s", decimal_bytes(clamped as u64))
}

/// A duration as `H:MM:SS` (rsync's style), at most `9999:59:59`.
pub fn clock(d: Duration) -> String {
    let secs = d.as_secs().min(9999 * 3600 + 3599);
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_rates_use_decimal_units() {
        assert_eq!(decimal_bytes(0), "0 B");
        assert_eq!(decimal_bytes(999), "999 B");
        assert_eq!(decimal_bytes(1_000), "1.00 kB");
        assert_eq!(decimal_bytes(12_345), "12.3 kB");
        assert_eq!(decimal_bytes(872_000_000), "872.0 MB");
        assert_eq!(decimal_bytes(1_900_000_000), "1.90 GB");
        assert_eq!(decimal_bytes(u64::MAX), "18446.7 PB");
        assert_eq!(decimal_rate(319_240_000.0), "319.2 MB/s");
        assert_eq!(decimal_rate(f64::NAN), "0 B/s");
        assert_eq!(decimal_rate(-5.0), "0 B/s");
        assert_eq!(decimal_rate(f64::INFINITY), "0 B/s");
    }

    #[test]
    fn clocks_read_like_rsyncs() {
        assert_eq!(clock(Duration::from_secs(3)), "0:00:03");
        assert_eq!(clock(Duration::from_secs(3_725)), "1:02:05");
        assert_eq!(clock(Duration::MAX), "9999:59:59");
    }
}
