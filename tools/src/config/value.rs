//! Converters from TOML values to config types, and their serde adapters (for
//! `#[serde(deserialize_with = ...)]` on the config sections). Each converter returns a short
//! problem text that [`ConfigError::BadValue`](super::error::ConfigError::BadValue) puts
//! after the file, line and key.
//!
//! Durations and sizes go through [`crate::units`]: a size may be a bare number (bytes); a
//! duration may be one only where its key has a unit (Tor's: msec for
//! `KISTSchedRunInterval`, seconds for `CircuitPriorityHalflife`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kistrel_pathsel::ExitPolicy;
use kistrel_sched::SchedulerKind;
use toml::Value;

use crate::placement::{CpuList, MAX_CPUS};
use crate::units;

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

/// Split off the bare-number case of a duration or size.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// A duration whose key has a unit: a bare number is `unit`s, a string has its own unit.
fn duration_in(v: &Value, unit: Duration, name: &str) -> Result<Duration, String> {
    match (number(v), v) {
        (Some(n), _) if n >= 0.0 && n.is_finite() => {
            Duration::try_from_secs_f64(n * unit.as_secs_f64()).map_err(|e| e.to_string())
        }
        (Some(n), _) => Err(format!("{n} is negative: want 0 or more {name}")),
        (None, Value::String(s)) => units::parse_duration(s).map_err(|e| e.to_string()),
        (None, other) => Err(want(
            &format!("a number of {name} or a string like \"10 ms\""),
            other,
        )),
    }
}

/// `KISTSchedRunInterval`: msec, as Tor's MSEC_INTERVAL.
pub(super) fn duration_msec(v: &Value) -> Result<Duration, String> {
    duration_in(v, Duration::from_millis(1), "milliseconds")
}

/// `CircuitPriorityHalflife`: seconds, as Tor's (a float).
pub(super) fn duration_secs(v: &Value) -> Result<Duration, String> {
    duration_in(v, Duration::from_secs(1), "seconds")
}

/// A duration of a key with no unit of its own: a string with its unit ("30 s").
pub(super) fn duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => units::parse_duration(s).map_err(|e| e.to_string()),
        Value::Integer(_) | Value::Float(_) => Err(format!(
            "{v} has no unit: write e.g. \"500 ms\" or \"30 s\" (a quoted string)"
        )),
        other => Err(want("a string like \"30 s\"", other)),
    }
}

/// A size in bytes: an integer, or a string with a unit ("512 MB": Tor's binary units).
pub(super) fn bytes(v: &Value) -> Result<u64, String> {
    match v {
        Value::Integer(_) => unsigned(v),
        Value::String(s) => units::parse_size(s).map_err(|e| e.to_string()),
        other => Err(want("a number of bytes or a string like \"512 MB\"", other)),
    }
}

/// A rate in bytes per second: as [`bytes`], plus Tor's bit units ("100 MBits").
pub(super) fn byte_rate(v: &Value) -> Result<u64, String> {
    match v {
        Value::Integer(_) => unsigned(v),
        Value::String(s) => units::parse_byte_rate(s).map_err(|e| e.to_string()),
        other => Err(want("a number of bytes or a string like \"10 MB\"", other)),
    }
}

/// `CPUAffinity`: a CPU list string (`"0,2-3"`) or one CPU number.
pub(super) fn cpu_list(v: &Value) -> Result<CpuList, String> {
    match v {
        Value::String(s) => s
            .parse()
            .map_err(|e: crate::placement::CpuListError| e.to_string()),
        Value::Integer(_) => {
            let n = unsigned(v)?;
            u32::try_from(n)
                .ok()
                .and_then(|c| CpuList::new([c]))
                .ok_or_else(|| format!("CPU {n} is out of range: want 0 to {}", MAX_CPUS - 1))
        }
        other => Err(want("a CPU list like \"0,2-3\" or a CPU number", other)),
    }
}

/// Serde adapters: each deserializes the raw TOML value and converts it with the converter
/// of the same name, its problem text becoming the error message.
pub(super) mod de {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use kistrel_pathsel::ExitPolicy;
    use kistrel_sched::SchedulerKind;
    use serde::{Deserialize, Deserializer};
    use toml::Value;

    use crate::config::value as convert;
    use crate::placement::CpuList;

    fn with<'de, D: Deserializer<'de>, T>(
        d: D,
        convert: fn(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, D::Error> {
        let v = Value::deserialize(d)?;
        convert(&v).map(Some).map_err(serde::de::Error::custom)
    }

    macro_rules! adapters {
        ($($name:ident -> $t:ty;)*) => {$(
            pub(in crate::config) fn $name<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Option<$t>, D::Error> {
                with(d, convert::$name)
            }
        )*};
    }

    adapters! {
        string -> String;
        unsigned -> u64;
        usize_value -> usize;
        float -> f64;
        socket_addr -> SocketAddr;
        ip_list -> Vec<IpAddr>;
        exit_policy -> ExitPolicy;
        schedulers -> Vec<SchedulerKind>;
        duration_msec -> Duration;
        duration_secs -> Duration;
        duration -> Duration;
        bytes -> u64;
        byte_rate -> u64;
        cpu_list -> CpuList;
    }
}
