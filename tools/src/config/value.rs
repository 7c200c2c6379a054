//! Converters from TOML values to config types. Each returns a short problem text that
//! [`ConfigError::BadValue`](super::ConfigError::BadValue) puts after the file, line and key.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kistrel_pathsel::ExitPolicy;
use toml::Value;

use super::{Backend, SchedulerKind};

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn want(what: &str, v: &Value) -> String {
    format!("expected {what}, found {}", type_name(v))
}

pub(super) fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| want("a string", v))
}

pub(super) fn unsigned(v: &Value) -> Result<u64, String> {
    match v {
        Value::Integer(i) => {
            u64::try_from(*i).map_err(|_| format!("{i} is negative: want 0 or more"))
        }
        other => Err(want("a non-negative integer", other)),
    }
}

pub(super) fn usize_value(v: &Value) -> Result<usize, String> {
    let n = unsigned(v)?;
    usize::try_from(n).map_err(|_| format!("{n} is too large"))
}

pub(super) fn float(v: &Value) -> Result<f64, String> {
    let f = match v {
        Value::Float(f) => *f,
        Value::Integer(i) => *i as f64,
        other => return Err(want("a number", other)),
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err(format!("{f} is not a finite number"))
    }
}

pub(super) fn socket_addr(v: &Value) -> Result<SocketAddr, String> {
    let s = v
        .as_str()
        .ok_or_else(|| want("a quoted \"IP:PORT\" string", v))?;
    s.trim().parse().map_err(|_| {
        format!("bad address {s:?}: want IP:PORT, e.g. \"127.0.0.1:9001\" or \"[::1]:9001\"")
    })
}

fn ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("bad IP address {s:?}: want e.g. \"127.0.0.1\" or \"::1\""))
}

/// One address as a string, or an array of them.
pub(super) fn ip_list(v: &Value) -> Result<Vec<IpAddr>, String> {
    match v {
        Value::String(s) => s.split(',').map(ip).collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| want("IP address strings", item))
                    .and_then(ip)
            })
            .collect(),
        other => Err(want("an IP address string or an array of them", other)),
    }
}

/// An array of strings, or one comma-separated string.
fn string_list(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| want(what, item))
            })
            .collect(),
        other => Err(want(
            &format!("an array of {what} or a comma-separated string"),
            other,
        )),
    }
}

pub(super) fn exit_policy(v: &Value) -> Result<ExitPolicy, String> {
    let rules = string_list(v, "rule strings")?;
    if rules.is_empty() {
        return Err("empty policy: leave ExitPolicy out for a relay that is not an exit".into());
    }
    ExitPolicy::from_rules(&rules).map_err(|e| e.to_string())
}

pub(super) fn schedulers(v: &Value) -> Result<Vec<SchedulerKind>, String> {
    let names = string_list(v, "scheduler names")?;
    if names.is_empty() {
        return Err("no scheduler named: want some of KIST, KISTLite, Vanilla".into());
    }
    names
        .iter()
        .map(|n| {
            n.parse::<SchedulerKind>()
                .map_err(|_| format!("unknown scheduler {n:?}: want KIST, KISTLite or Vanilla"))
        })
        .collect()
}

pub(super) fn backend(v: &Value) -> Result<Backend, String> {
    let s = v.as_str().ok_or_else(|| want("\"uring\" or \"poll\"", v))?;
    Backend::from_name(s)
        .ok_or_else(|| format!("unknown backend {s:?}: want \"uring\" or \"poll\""))
}

/// Split `"512 MB"` / `"512MB"` into number and unit.
fn number_and_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let num: f64 = num.parse().ok()?;
    Some((num, unit.trim().to_ascii_lowercase()))
}

/// Byte unit multipliers. Tor's torrc units are powers of two (`KB` = 1024, config.c
/// `memory_units`), and so are ours; bit units (Tor's rate units, `KBits` = 128 bytes) only
/// for rates.
fn byte_unit(unit: &str, rate: bool) -> Option<u64> {
    let bytes = match unit {
        "" | "b" | "byte" | "bytes" => 1,
        "kb" | "kbyte" | "kbytes" | "kilobyte" | "kilobytes" | "kib" => 1 << 10,
        "mb" | "mbyte" | "mbytes" | "megabyte" | "megabytes" | "mib" => 1 << 20,
        "gb" | "gbyte" | "gbytes" | "gigabyte" | "gigabytes" | "gib" => 1 << 30,
        "tb" | "tbyte" | "tbytes" | "terabyte" | "terabytes" | "tib" => 1 << 40,
        _ if !rate => return None,
        "kbit" | "kbits" | "kilobit" | "kilobits" => 1 << 7,
        "mbit" | "mbits" | "megabit" | "megabits" => 1 << 17,
        "gbit" | "gbits" | "gigabit" | "gigabits" => 1 << 27,
        _ => return None,
    };
    Some(bytes)
}

fn byte_amount(v: &Value, rate: bool) -> Result<u64, String> {
    let example = if rate { "\"10 MB\"" } else { "\"512 MB\"" };
    match v {
        Value::Integer(_) => unsigned(v),
        Value::String(s) => {
            let (num, unit) = number_and_unit(s).ok_or_else(|| {
                format!("bad size {s:?}: want a number of bytes or e.g. {example}")
            })?;
            let mult = byte_unit(&unit, rate).ok_or_else(|| {
                format!(
                    "unknown unit {unit:?} in {s:?}: want bytes, KB, MB, GB or TB{}",
                    if rate {
                        " (or KBits, MBits, GBits)"
                    } else {
                        ""
                    }
                )
            })?;
            let total = num * mult as f64;
            if total >= u64::MAX as f64 {
                return Err(format!("{s:?} is too large"));
            }
            Ok(total as u64)
        }
        other => Err(want(
            &format!("a number of bytes or a string like {example}"),
            other,
        )),
    }
}

/// A size in bytes: an integer, or a string with a torrc unit ("512 MB").
pub(super) fn bytes(v: &Value) -> Result<u64, String> {
    byte_amount(v, false)
}

/// A rate in bytes per second: as [`bytes`], plus bit units ("100 MBits").
pub(super) fn byte_rate(v: &Value) -> Result<u64, String> {
    byte_amount(v, true)
}

/// A duration: an integer number of milliseconds, or a string with a unit ("10 ms",
/// "30 s", "2 min").
pub(super) fn millis(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Integer(_) => unsigned(v).map(Duration::from_millis),
        Value::String(s) => {
            let (num, unit) = number_and_unit(s).ok_or_else(|| {
                format!("bad duration {s:?}: want milliseconds or e.g. \"10 ms\"")
            })?;
            let secs = match unit.as_str() {
                "" | "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => num / 1000.0,
                "s" | "sec" | "secs" | "second" | "seconds" => num,
                "min" | "mins" | "minute" | "minutes" => num * 60.0,
                _ => return Err(format!("unknown unit {unit:?} in {s:?}: want ms, s or min")),
            };
            Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
        }
        other => Err(want("milliseconds or a string like \"10 ms\"", other)),
    }
}
