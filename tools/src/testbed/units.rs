//! Parsing of the testbed's command-line values: rates (`25mbit`), durations (`42ms`) and
//! byte counts (`4MiB`).
//!
//! Rate units follow `tc` (tc-tbf(8), "UNITS"): `bit`, `kbit`, `mbit`, `gbit` are powers of
//! 1000 bits per second. `tc`'s `bps`/`kbps` mean *bytes* per second, a common slip, so they
//! are refused rather than guessed.

use std::time::Duration;

/// Why a value did not parse (the caller names the flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// Empty, or no leading number.
    #[error("{value:?}: expected a number followed by a unit ({units})")]
    NoNumber {
        /// The text.
        value: String,
        /// The units accepted.
        units: &'static str,
    },
    /// The unit is not one we know.
    #[error("{value:?}: unknown unit {unit:?} (use {units})")]
    UnknownUnit {
        /// The text.
        value: String,
        /// The unit given.
        unit: String,
        /// The units accepted.
        units: &'static str,
    },
    /// Zero, or too large.
    #[error("{value:?}: out of range ({why})")]
    OutOfRange {
        /// The text.
        value: String,
        /// Why.
        why: &'static str,
    },
}

const RATE_UNITS: &str = "bit, kbit, mbit or gbit, e.g. 25mbit";
const TIME_UNITS: &str = "us, ms or s, e.g. 42ms";
const BYTE_UNITS: &str = "bytes, K/KiB or M/MiB, e.g. 4MiB";

/// Split "12.5mbit" into (12.5, "mbit").
fn split_number<'a>(value: &'a str, units: &'static str) -> Result<(f64, &'a str), UnitError> {
    let v = value.trim();
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(end);
    let number = num.parse::<f64>().map_err(|_| UnitError::NoNumber {
        value: value.to_owned(),
        units,
    })?;
    Ok((number, unit.trim()))
}

fn scaled(value: &str, number: f64, factor: f64, max: f64) -> Result<u64, UnitError> {
    let x = (number * factor).round();
    // NaN cannot come from the digits-and-dots parse, but is refused here too.
    if x.is_nan() || x < 1.0 {
        return Err(UnitError::OutOfRange {
            value: value.to_owned(),
            why: "must be positive",
        });
    }
    if x > max {
        return Err(UnitError::OutOfRange {
            value: value.to_owned(),
            why: "too large",
        });
    }
    // In range [1, max] and integral: the cast is exact.
    Ok(x as u64)
}

/// A rate in bits per second: `25mbit` -> 25_000_000. A bare number is refused (tc would read
/// it as bytes per second).
pub fn parse_rate(value: &str) -> Result<u64, UnitError> {
    let (n, unit) = split_number(value, RATE_UNITS)?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => {
            return Err(UnitError::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                units: RATE_UNITS,
            })
        }
    };
    // 100 Gbit/s is far beyond what veths here carry; larger is a typo.
    scaled(value, n, factor, 1e11)
}

/// A duration: `42ms`, `1s`, `500us`.
pub fn parse_duration(value: &str) -> Result<Duration, UnitError> {
    let (n, unit) = split_number(value, TIME_UNITS)?;
    let micros_per_unit = match unit.to_ascii_lowercase().as_str() {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => {
            return Err(UnitError::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                units: TIME_UNITS,
            })
        }
    };
    // An hour of queue is a typo.
    let us = scaled(value, n, micros_per_unit, 3.6e9)?;
    Ok(Duration::from_micros(us))
}

/// A byte count: `4194304`, `4MiB`, `4M`, `64KiB`, `64K`.
pub fn parse_bytes(value: &str) -> Result<u32, UnitError> {
    let (n, unit) = split_number(value, BYTE_UNITS)?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        _ => {
            return Err(UnitError::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                units: BYTE_UNITS,
            })
        }
    };
    let b = scaled(value, n, factor, f64::from(i32::MAX))?;
    u32::try_from(b).map_err(|_| UnitError::OutOfRange {
        value: value.to_owned(),
        why: "too large",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_use_tc_units() {
        assert_eq!(parse_rate("25mbit"), Ok(25_000_000));
        assert_eq!(parse_rate("25Mbit"), Ok(25_000_000));
        assert_eq!(parse_rate("1.5gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("800kbit"), Ok(800_000));
        assert_eq!(parse_rate("9600bit"), Ok(9600));
        assert!(matches!(
            parse_rate("25"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_rate("25mbps"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_rate("mbit"),
            Err(UnitError::NoNumber { .. })
        ));
        assert!(matches!(parse_rate(""), Err(UnitError::NoNumber { .. })));
        assert!(matches!(
            parse_rate("0mbit"),
            Err(UnitError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_rate("1000gbit"),
            Err(UnitError::OutOfRange { .. })
        ));
    }

    #[test]
    fn durations_take_us_ms_s() {
        assert_eq!(parse_duration("42ms"), Ok(Duration::from_millis(42)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(matches!(
            parse_duration("42"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("0ms"),
            Err(UnitError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_duration("1.2.3ms"),
            Err(UnitError::NoNumber { .. })
        ));
    }

    #[test]
    fn bytes_take_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4MiB"), Ok(4 << 20));
        assert_eq!(parse_bytes("4M"), Ok(4 << 20));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert!(matches!(
            parse_bytes("4GiB"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_bytes("0"),
            Err(UnitError::OutOfRange { .. })
        ));
    }
}
