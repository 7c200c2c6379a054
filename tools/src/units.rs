//! One syntax for durations and one for sizes, in config files, on the command line and in
//! tgen model files.
//!
//! - **Durations** are humantime's: a number and a unit, `500ms`, `30s`, `1.5s`, `2min`,
//!   `1h 30min` (units `us`, `ms`, `s`, `min`/`m`, `h`, ...; space optional). A bare number
//!   is refused here: what it means depends on where it is written, so only a config key
//!   with a documented unit accepts one (Tor's `KISTSchedRunInterval` is in msec,
//!   `CircuitPriorityHalflife` in seconds; model files' numbers are seconds).
//! - **Sizes** are a number of bytes, or a number and a unit: `4096`, `64 KiB`, `1.5 MB`,
//!   `4M`. The binary units are powers of 1024, and so are `K`/`KB`, `M`/`MB`, `G`/`GB`,
//!   `T`/`TB`, as in Tor's torrc (config.c `memory_units`: `KB` is 1024 bytes); bytesize
//!   does the parsing. A bare number is bytes.
//! - **Rates** come in two kinds: [`parse_byte_rate`] (`BandwidthRate`: a size per second,
//!   or Tor's bit units, `KBits` = 1024 bits) and [`parse_bit_rate`] (`--bottleneck`, handed
//!   to `tc`, so tc's units: `kbit` = 1000 bits/s).

use std::time::Duration;

use bytesize::ByteSize;
use kistrel_base::{ErrorKind, HasKind};

/// A value that does not parse (the caller names the key or flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// A bare number where a unit is needed.
    #[error("{value:?} has no unit: write e.g. {example}")]
    NoUnit {
        /// The text.
        value: String,
        /// An example of what is wanted.
        example: &'static str,
    },
    /// Not a number with a unit we know.
    #[error("{value:?}: {problem}: want e.g. {example}")]
    Bad {
        /// The text.
        value: String,
        /// What is wrong (the parser's words).
        problem: String,
        /// An example of what is wanted.
        example: &'static str,
    },
    /// Zero where it must be positive, or too large.
    #[error("{value:?} is out of range ({why})")]
    OutOfRange {
        /// The text.
        value: String,
        /// Why.
        why: &'static str,
    },
}

impl HasKind for UnitError {
    fn kind(&self) -> ErrorKind {
        // A value the operator wrote.
        ErrorKind::BadConfig
    }
}

const DURATION_EXAMPLE: &str = "\"500ms\", \"30s\" or \"2min\"";
const SIZE_EXAMPLE: &str = "\"4096\", \"64 KiB\" or \"512 MB\"";

fn is_bare_number(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.parse::<f64>().is_ok()
}

/// A duration with its unit (see the module doc). Zero is allowed (`0s`).
pub fn parse_duration(value: &str) -> Result<Duration, UnitError> {
    if is_bare_number(value) {
        return Err(UnitError::NoUnit {
            value: value.to_owned(),
            example: DURATION_EXAMPLE,
        });
    }
    humantime::parse_duration(value.trim()).map_err(|e| UnitError::Bad {
        value: value.to_owned(),
        problem: e.to_string(),
        example: DURATION_EXAMPLE,
    })
}

/// The number and the unit of a size, the unit as written.
fn split_unit(value: &str) -> (&str, &str) {
    let v = value.trim();
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(end);
    (num, unit.trim())
}

/// Tor's spelling of a byte unit, as bytesize's binary one.
fn binary_unit(unit: &str) -> Option<&'static str> {
    let u = unit.to_ascii_lowercase();
    Some(match u.as_str() {
        "" | "b" | "byte" | "bytes" => "B",
        "k" | "kb" | "kib" | "kbyte" | "kbytes" | "kilobyte" | "kilobytes" => "KiB",
        "m" | "mb" | "mib" | "mbyte" | "mbytes" | "megabyte" | "megabytes" => "MiB",
        "g" | "gb" | "gib" | "gbyte" | "gbytes" | "gigabyte" | "gigabytes" => "GiB",
        "t" | "tb" | "tib" | "tbyte" | "tbytes" | "terabyte" | "terabytes" => "TiB",
        _ => return None,
    })
}

/// A size in bytes (see the module doc).
pub fn parse_size(value: &str) -> Result<u64, UnitError> {
    let (num, unit) = split_unit(value);
    let bad = |problem: String| UnitError::Bad {
        value: value.to_owned(),
        problem,
        example: SIZE_EXAMPLE,
    };
    if num.is_empty() {
        return Err(bad("no number".into()));
    }
    let unit = binary_unit(unit).ok_or_else(|| bad(format!("unknown unit {unit:?}")))?;
    let size: ByteSize = format!("{num} {unit}").parse().map_err(bad)?;
    if size.as_u64() == u64::MAX {
        return Err(UnitError::OutOfRange {
            value: value.to_owned(),
            why: "too large",
        });
    }
    Ok(size.as_u64())
}

/// A rate in bytes per second: a size (per second), or Tor's bit units (`KBits`, `MBits`,
/// `GBits`: 1024^n bits), e.g. `"10 MB"` or `"100 MBits"`.
pub fn parse_byte_rate(value: &str) -> Result<u64, UnitError> {
    let (num, unit) = split_unit(value);
    let lower = unit.to_ascii_lowercase();
    let bits = ["bit", "bits"]
        .iter()
        .find_map(|suffix| lower.strip_suffix(suffix))
        .filter(|prefix| ["k", "m", "g", "kilo", "mega", "giga"].contains(prefix));
    match bits {
        Some(prefix) => parse_size(&format!("{num} {}", &prefix[..1])).map(|b| b / 8),
        None => parse_size(value),
    }
}

const RATE_EXAMPLE: &str = "\"25mbit\"";

/// A rate in bits per second with tc's units (tc-tbf(8), "UNITS"): `bit`, `kbit`, `mbit`,
/// `gbit` are powers of 1000. A bare number is refused (tc would read it as bytes per
/// second), and so are tc's `bps`/`kbps` (bytes, a common slip).
pub fn parse_bit_rate(value: &str) -> Result<u64, UnitError> {
    let (num, unit) = split_unit(value);
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" if !num.is_empty() => {
            return Err(UnitError::NoUnit {
                value: value.to_owned(),
                example: RATE_EXAMPLE,
            })
        }
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        other => {
            return Err(UnitError::Bad {
                value: value.to_owned(),
                problem: format!("unknown unit {other:?} (bit, kbit, mbit or gbit)"),
                example: RATE_EXAMPLE,
            })
        }
    };
    let n: f64 = num.parse().map_err(|_| UnitError::Bad {
        value: value.to_owned(),
        problem: "no number".into(),
        example: RATE_EXAMPLE,
    })?;
    let bits = (n * factor).round();
    let range = |why| UnitError::OutOfRange {
        value: value.to_owned(),
        why,
    };
    if bits < 1.0 {
        return Err(range("must be positive"));
    }
    // 100 Gbit/s is far beyond what veths here carry; larger is a typo.
    if bits > 1e11 {
        return Err(range("too large"));
    }
    Ok(bits as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("10 ms"), Ok(ms(10)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("2min"), Ok(ms(120_000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h 30min"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bare in ["30", "1.5", " 7 "] {
            assert!(
                matches!(parse_duration(bare), Err(UnitError::NoUnit { .. })),
                "{bare}"
            );
        }
        let e = parse_duration("5 parsecs").unwrap_err();
        assert!(matches!(e, UnitError::Bad { .. }), "{e:?}");
        assert!(e.to_string().contains("want e.g. \"500ms\""), "{e}");
        assert_eq!(
            parse_duration("30").unwrap_err().to_string(),
            "\"30\" has no unit: write e.g. \"500ms\", \"30s\" or \"2min\""
        );
    }

    #[test]
    fn sizes_are_bytes_or_binary_units_as_in_tor() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64KB"), Ok(64 << 10));
        assert_eq!(parse_size("512 MB"), Ok(512 << 20));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("2GB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5 KB"), Ok(1536));
        assert_eq!(parse_size("3 bytes"), Ok(3));
        assert_eq!(parse_size("1 TB"), Ok(1 << 40));
        assert!(matches!(parse_size("512 XB"), Err(UnitError::Bad { .. })));
        assert!(matches!(parse_size("KiB"), Err(UnitError::Bad { .. })));
        assert!(matches!(parse_size(""), Err(UnitError::Bad { .. })));
        assert_eq!(
            parse_size("5 parsecs").unwrap_err().to_string(),
            "\"5 parsecs\": unknown unit \"parsecs\": want e.g. \"4096\", \"64 KiB\" or \"512 MB\""
        );
    }

    #[test]
    fn byte_rates_take_tor_bit_units() {
        assert_eq!(parse_byte_rate("10 MB"), Ok(10 << 20));
        // Tor: 1 MBit = 2^20 bits = 2^17 bytes.
        assert_eq!(parse_byte_rate("100 MBits"), Ok(100 << 17));
        assert_eq!(parse_byte_rate("8 KBits"), Ok(1024));
        assert!(parse_byte_rate("8 furlongs").is_err());
    }

    #[test]
    fn bit_rates_use_tc_units() {
        assert_eq!(parse_bit_rate("25mbit"), Ok(25_000_000));
        assert_eq!(parse_bit_rate("25Mbit"), Ok(25_000_000));
        assert_eq!(parse_bit_rate("1.5gbit"), Ok(1_500_000_000));
        assert_eq!(parse_bit_rate("800kbit"), Ok(800_000));
        assert_eq!(parse_bit_rate("9600bit"), Ok(9600));
        assert!(matches!(
            parse_bit_rate("25"),
            Err(UnitError::NoUnit { .. })
        ));
        assert!(matches!(
            parse_bit_rate("25mbps"),
            Err(UnitError::Bad { .. })
        ));
        assert!(matches!(parse_bit_rate("mbit"), Err(UnitError::Bad { .. })));
        assert!(matches!(parse_bit_rate(""), Err(UnitError::Bad { .. })));
        assert!(matches!(
            parse_bit_rate("0mbit"),
            Err(UnitError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_bit_rate("1000gbit"),
            Err(UnitError::OutOfRange { .. })
        ));
    }
}
