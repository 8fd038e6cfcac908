//! Option values in the syntax the help texts document: byte sizes (`8M`), rates (`500M`,
//! `4Gbit`), ages (`7d`, `3600`, `off`), write modes and compression policies.
//!
//! Sizes and rates are read by `parse-size` and ages by `humantime`; the wrappers add what
//! those crates do not read (bits per second, bare seconds, `off`) and the CLI's messages.

use std::time::Duration;

use hawser_replicate::WriteMode;
use hawser_replicate::proto::CompressPolicy;
use parse_size::{ByteSuffix, Config};

/// Sizes: K, M, G... are powers of 1024, as block sizes are.
const SIZE: Config = Config::new().with_binary();
/// Rates: k, M, G, T are powers of 1000, as link rates are; a trailing `b` is refused so
/// that `4Gb` (bits or bytes?) is not read as bytes.
const RATE: Config = Config::new()
    .with_decimal()
    .with_byte_suffix(ByteSuffix::Deny);

/// A byte count: a number with an optional K, M or G suffix (powers of 1024), e.g. `8M`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    SIZE.parse_size(text.trim())
        .map_err(|_| format!("{text:?} is not a size"))
}

/// `--rate`: bytes per second with an optional k, M, G or T suffix (powers of 1000), or
/// bits per second ending in `bit` (`4Gbit`).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, bits) = match t.strip_suffix("bit") {
        Some(rest) => (rest, true),
        None => (t, false),
    };
    let value = RATE
        .parse_size(number)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{text:?} is not a rate (e.g. 500M or 4Gbit)"))?;
    let bytes = if bits { value / 8 } else { value };
    if bytes == 0 {
        return Err(format!("{text:?} is less than a byte per second"));
    }
    Ok(bytes)
}

/// `--partial-max-age`: an age, or `None` for "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeLimit(pub Option<Duration>);

/// An age: seconds, or a number with a unit (`7d`, `12h`, `30m`, `90s`, `1h30m`); `off`.
pub fn parse_age(text: &str) -> Result<AgeLimit, String> {
    let t = text.trim();
    if t == "off" {
        return Ok(AgeLimit(None));
    }
    // humantime wants a unit; a bare number has always meant seconds here.
    let age = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().ok().map(Duration::from_secs)
    } else {
        humantime::parse_duration(t).ok()
    };
    age.map(|age| AgeLimit(Some(age)))
        .ok_or_else(|| format!("{text:?} is not an age (e.g. 7d, 12h, 3600 or off)"))
}

/// An age as [`parse_age`] reads it back (`off` for none).
pub fn age_text(age: Option<Duration>) -> String {
    age.map_or_else(
        || "off".into(),
        |age| humantime::format_duration(age).to_string(),
    )
}

/// `--write-mode`: `direct` or `buffered`.
pub fn parse_write_mode(text: &str) -> Result<WriteMode, String> {
    match text {
        "direct" => Ok(WriteMode::Direct),
        "buffered" => Ok(WriteMode::Buffered),
        _ => Err(format!("{text:?} is not a write mode (direct or buffered)")),
    }
}

/// The name `--write-mode` gives `mode`.
pub fn write_mode_name(mode: WriteMode) -> &'static str {
    match mode {
        WriteMode::Direct => "direct",
        WriteMode::Buffered => "buffered",
    }
}

/// `--compress`: `auto`, `lz4` or `off`.
pub fn parse_compress(text: &str) -> Result<CompressPolicy, String> {
    match text {
        "auto" => Ok(CompressPolicy::Auto),
        "lz4" => Ok(CompressPolicy::Lz4),
        "off" => Ok(CompressPolicy::Off),
        _ => Err(format!("{text:?}: expected auto, lz4 or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("256k"), Ok(256 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size(" 64K "), Ok(64 << 10));
        for bad in ["", "big", "8X", "-1M", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_size("8Q"), Err("\"8Q\" is not a size".into()));
    }

    #[test]
    fn rates_parse_as_bytes_or_bits_per_second() {
        assert_eq!(parse_rate("500M"), Ok(500_000_000));
        assert_eq!(parse_rate("500m"), Ok(500_000_000));
        assert_eq!(parse_rate("4Gbit"), Ok(500_000_000));
        assert_eq!(parse_rate("32Mbit"), Ok(4_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("1.5Gbit"), Ok(187_500_000));
        assert_eq!(parse_rate("800kbit"), Ok(100_000));
        assert_eq!(parse_rate("2T"), Ok(2_000_000_000_000));
        assert_eq!(parse_rate("12345"), Ok(12_345));
        for bad in ["", "fast", "5X", "-1M", "0", "0bit", "4Gb", "4GB"] {
            assert_eq!(
                parse_rate(bad),
                Err(format!("{bad:?} is not a rate (e.g. 500M or 4Gbit)")),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_rate("4bit"),
            Err("\"4bit\" is less than a byte per second".into())
        );
    }

    #[test]
    fn ages_parse_with_a_unit_or_as_seconds_or_off() {
        let age = |secs| Ok(AgeLimit(Some(Duration::from_secs(secs))));
        assert_eq!(parse_age("7d"), age(7 * 24 * 3600));
        assert_eq!(parse_age("12h"), age(12 * 3600));
        assert_eq!(parse_age("30m"), age(1800));
        assert_eq!(parse_age("90s"), age(90));
        assert_eq!(parse_age("0s"), age(0));
        assert_eq!(parse_age("3600"), age(3600));
        assert_eq!(parse_age("1h30m"), age(5400));
        assert_eq!(parse_age("2w"), age(14 * 24 * 3600));
        assert_eq!(parse_age("1.5h"), age(5400));
        assert_eq!(parse_age("off"), Ok(AgeLimit(None)));
        for written in [
            None,
            Some(Duration::from_secs(7 * 24 * 3600)),
            Some(Duration::ZERO),
        ] {
            assert_eq!(parse_age(&age_text(written)), Ok(AgeLimit(written)));
        }
        for bad in [
            "",
            "soon",
            "7x",
            "-1d",
            "99999999999999999999d",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_age(bad),
                Err(format!("{bad:?} is not an age (e.g. 7d, 12h, 3600 or off)")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn write_modes_and_compression_policies_parse_by_name() {
        assert_eq!(parse_write_mode("direct"), Ok(WriteMode::Direct));
        assert_eq!(parse_write_mode("buffered"), Ok(WriteMode::Buffered));
        assert!(parse_write_mode("sync").is_err());
        for mode in [WriteMode::Direct, WriteMode::Buffered] {
            assert_eq!(parse_write_mode(write_mode_name(mode)), Ok(mode));
        }
        assert_eq!(parse_compress("auto"), Ok(CompressPolicy::Auto));
        assert_eq!(parse_compress("lz4"), Ok(CompressPolicy::Lz4));
        assert_eq!(parse_compress("off"), Ok(CompressPolicy::Off));
        assert!(parse_compress("zstd").is_err());
    }
}
