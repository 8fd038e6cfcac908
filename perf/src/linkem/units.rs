//! Parsers for the human units linkem's command line takes: durations (`50ms`), rates
//! (`10gbit`), queue sizes (`1bdp`, `64mb`) and probabilities (`0.01`, `1%`).

use std::time::Duration;

fn split_number(text: &str) -> Result<(f64, String), String> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number followed by a unit"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?}: must be a non-negative number"));
    }
    Ok((value, unit.trim().to_ascii_lowercase()))
}

/// `250us`, `50ms`, `1.5s`, `100ns`; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (value, unit) = split_number(text)?;
    let nanos_per_unit = match unit.as_str() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "" | "ms" => 1e6,
        "s" => 1e9,
        other => return Err(format!("{text:?}: unknown time unit {other:?}")),
    };
    Ok(Duration::from_nanos((value * nanos_per_unit).round() as u64))
}

/// Bits per second from `10gbit`, `500mbit`, `64kbit`, `1e9`-style plain `bit`, or
/// `125mbyte`/`125MB/s`-style bytes; decimal prefixes as for network rates.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let (value, unit) = split_number(text)?;
    let unit = unit.trim_end_matches("/s");
    let (prefix, bits_per_unit) = if let Some(prefix) = unit
        .strip_suffix("bit")
        .or_else(|| unit.strip_suffix("bps"))
    {
        (prefix, 1.0)
    } else if let Some(prefix) = unit.strip_suffix("byte") {
        (prefix, 8.0)
    } else if let Some(prefix) = unit.strip_suffix('b') {
        // `mb` could mean bits or bytes: refuse rather than guess.
        return Err(format!(
            "{text:?}: say `{prefix}bit` or `{prefix}byte`, `b` is ambiguous"
        ));
    } else {
        (unit, 1.0)
    };
    let multiplier = match prefix {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        other => return Err(format!("{text:?}: unknown rate prefix {other:?}")),
    };
    let bits = value * multiplier * bits_per_unit;
    if bits < 1.0 {
        return Err(format!("{text:?}: rate must be at least 1 bit/s"));
    }
    Ok(bits.round() as u64)
}

/// A queue limit: either bytes or a multiple of the bandwidth-delay product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueueSize {
    /// Absolute limit in bytes.
    Bytes(u64),
    /// Multiple of rate × RTT.
    BdpMultiple(f64),
}

impl QueueSize {
    /// The limit in bytes for a link with this BDP.
    pub fn bytes(self, bdp_bytes: u64) -> u64 {
        match self {
            Self::Bytes(bytes) => bytes,
            Self::BdpMultiple(multiple) => (bdp_bytes as f64 * multiple) as u64,
        }
    }
}

/// `1bdp`, `0.5bdp`, `64mb` / `64mib`, `100kb`, `150000` (bytes).
pub fn parse_queue_size(text: &str) -> Result<QueueSize, String> {
    let (value, unit) = split_number(text)?;
    let multiplier = match unit.as_str() {
        "bdp" => return Ok(QueueSize::BdpMultiple(value)),
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("{text:?}: unknown size unit {other:?}")),
    };
    Ok(QueueSize::Bytes((value * multiplier) as u64))
}

/// A probability `0.01` or a percentage `1%`, in `[0, 1]`.
pub fn parse_probability(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| format!("{text:?}: expected a probability like 0.01 or 1%"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("{text:?}: probability must be within [0, 1]"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_millis(20)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1ms").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10gbit"), Ok(10_000_000_000));
        assert_eq!(parse_rate("1.5Gbit/s"), Ok(1_500_000_000));
        assert_eq!(parse_rate("500mbit"), Ok(500_000_000));
        assert_eq!(parse_rate("125mbyte"), Ok(1_000_000_000));
        assert_eq!(parse_rate("1gbps"), Ok(1_000_000_000));
        assert!(parse_rate("1gb").is_err());
        assert!(parse_rate("0bit").is_err());
    }

    #[test]
    fn queue_sizes() {
        assert_eq!(parse_queue_size("1bdp"), Ok(QueueSize::BdpMultiple(1.0)));
        assert_eq!(parse_queue_size("64mb"), Ok(QueueSize::Bytes(64_000_000)));
        assert_eq!(parse_queue_size("1MiB"), Ok(QueueSize::Bytes(1 << 20)));
        assert_eq!(parse_queue_size("1500"), Ok(QueueSize::Bytes(1500)));
        assert_eq!(QueueSize::BdpMultiple(0.5).bytes(1000), 500);
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability("0.01"), Ok(0.01));
        assert_eq!(parse_probability("1%"), Ok(0.01));
        assert!(parse_probability("2").is_err());
        assert!(parse_probability("x").is_err());
    }
}
