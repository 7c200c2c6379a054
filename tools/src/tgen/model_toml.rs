//! Model TOML files (format in [`super::model`]): parsed by hand from a `toml::Table` so that
//! every error names the file, the key and the problem.

use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

use super::model::{Arrivals, Model, ModelError, SizeChoice, ThinkTime};

const TOP_KEYS: &[&str] = &[
    "name", "arrivals", "rate", "timeout", "count", "duration", "think", "sizes",
];
const SIZE_KEYS: &[&str] = &["bytes", "weight", "timeout"];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn bad(&self, key: &str, problem: impl Into<String>) -> ModelError {
        ModelError::BadValue {
            file: self.file.to_path_buf(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    fn unknown(&self, t: &Table, known: &[&str], prefix: &str) -> Result<(), ModelError> {
        match t.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ModelError::UnknownKey {
                file: self.file.to_path_buf(),
                key: format!("{prefix}{k}"),
            }),
            None => Ok(()),
        }
    }

    fn missing(&self, key: &str) -> ModelError {
        ModelError::MissingKey {
            file: self.file.to_path_buf(),
            key: key.to_owned(),
        }
    }

    /// A non-negative number of seconds (integer or float).
    fn seconds(&self, key: &str, v: &Value) -> Result<f64, ModelError> {
        let x = match v {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            _ => return Err(self.bad(key, "expected a number of seconds")),
        };
        if !x.is_finite() || x < 0.0 {
            return Err(self.bad(key, "expected a number of seconds >= 0"));
        }
        Ok(x)
    }

    fn number(&self, key: &str, v: Option<&Value>) -> Result<f64, ModelError> {
        match v {
            Some(Value::Integer(i)) => Ok(*i as f64),
            Some(Value::Float(f)) => Ok(*f),
            Some(_) => Err(self.bad(key, "expected a number")),
            None => Err(self.missing(key)),
        }
    }

    fn positive_duration(&self, key: &str, v: &Value) -> Result<Duration, ModelError> {
        let s = self.seconds(key, v)?;
        if s == 0.0 {
            return Err(self.bad(key, "must be > 0"));
        }
        Duration::try_from_secs_f64(s).map_err(|_| self.bad(key, "out of range"))
    }

    fn bytes(&self, key: &str, v: &Value) -> Result<u64, ModelError> {
        let n = match v {
            Value::Integer(i) => u64::try_from(*i).ok(),
            Value::String(s) => parse_size(s),
            _ => None,
        };
        match n {
            Some(n) if n > 0 => Ok(n),
            _ => Err(self.bad(
                key,
                "expected a size > 0: an integer (bytes) or \"N B|KiB|MiB|GiB\"",
            )),
        }
    }
}

/// "N", "N B", "N KiB", "N MiB", "N GiB" (space optional).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub(super) fn parse(file: &Path, text: &str) -> Result<Model, ModelError> {
    let cx = Ctx { file };
    let t: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ModelError::Syntax {
            file: file.to_path_buf(),
            // 1-based line of the error, as the relay/client config errors give it.
            line: e
                .span()
                .map(|sp| 1 + text.bytes().take(sp.start).filter(|b| *b == b'\n').count()),
            message: e.message().trim().to_owned(),
        })?;
    cx.unknown(&t, TOP_KEYS, "")?;

    let name = match t.get("name") {
        Some(Value::String(s)) if valid_name(s) => s.clone(),
        Some(_) => {
            return Err(cx.bad(
                "name",
                "expected a non-empty string of letters, digits, '-' or '_'",
            ))
        }
        None => {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !valid_name(&stem) {
                return Err(cx.missing("name"));
            }
            stem
        }
    };
    let timeout = match t.get("timeout") {
        Some(v) => cx.positive_duration("timeout", v)?,
        None => DEFAULT_TIMEOUT,
    };
    let count = match t.get("count") {
        Some(Value::Integer(n)) if *n >= 1 => Some(*n as u64),
        Some(_) => return Err(cx.bad("count", "expected an integer >= 1")),
        None => None,
    };
    let duration = match t.get("duration") {
        Some(v) => Some(cx.positive_duration("duration", v)?),
        None => None,
    };
    if count.is_some() && duration.is_some() {
        return Err(cx.bad("duration", "give `count` or `duration`, not both"));
    }

    let kind = match t.get("arrivals") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(cx.bad("arrivals", "expected \"closed\" or \"open\"")),
        None => "closed",
    };
    let arrivals = match kind {
        "closed" => {
            if t.contains_key("rate") {
                return Err(cx.bad("rate", "only for arrivals = \"open\""));
            }
            let think = match t.get("think") {
                Some(Value::Table(th)) => Some(think(&cx, th)?),
                Some(_) => return Err(cx.bad("think", "expected a table ([think])")),
                None => None,
            };
            Arrivals::Closed { think }
        }
        "open" => {
            if t.contains_key("think") {
                return Err(cx.bad(
                    "think",
                    "only for arrivals = \"closed\" (open arrivals have a rate)",
                ));
            }
            let rate = cx.number("rate", t.get("rate"))?;
            if !(rate.is_finite() && rate > 0.0) {
                return Err(cx.bad("rate", "expected arrivals per second > 0"));
            }
            Arrivals::Open { rate }
        }
        _ => return Err(cx.bad("arrivals", "expected \"closed\" or \"open\"")),
    };

    let sizes = match t.get("sizes") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(_) => return Err(cx.bad("sizes", "expected one or more [[sizes]] tables")),
        None => return Err(cx.missing("sizes")),
    };
    let sizes = sizes
        .iter()
        .enumerate()
        .map(|(i, v)| size(&cx, i, v, timeout))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Model {
        name,
        sizes,
        arrivals,
        count,
        duration,
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn size(
    cx: &Ctx<'_>,
    i: usize,
    v: &Value,
    default_timeout: Duration,
) -> Result<SizeChoice, ModelError> {
    let prefix = format!("sizes[{i}].");
    let Value::Table(s) = v else {
        return Err(cx.bad(&format!("sizes[{i}]"), "expected a table"));
    };
    cx.unknown(s, SIZE_KEYS, &prefix)?;
    let key = |k: &str| format!("{prefix}{k}");
    let bytes = match s.get("bytes") {
        Some(v) => cx.bytes(&key("bytes"), v)?,
        None => return Err(cx.missing(&key("bytes"))),
    };
    let weight = match s.get("weight") {
        Some(Value::Integer(w)) => u32::try_from(*w)
            .ok()
            .filter(|w| *w >= 1)
            .ok_or_else(|| cx.bad(&key("weight"), "expected an integer from 1 to 4294967295"))?,
        Some(_) => return Err(cx.bad(&key("weight"), "expected an integer from 1 to 4294967295")),
        None => 1,
    };
    let timeout = match s.get("timeout") {
        Some(v) => cx.positive_duration(&key("timeout"), v)?,
        None => default_timeout,
    };
    Ok(SizeChoice {
        bytes,
        weight,
        timeout,
    })
}

fn think(cx: &Ctx<'_>, th: &Table) -> Result<ThinkTime, ModelError> {
    let dist = match th.get("distribution") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(cx.bad("think.distribution", "expected a string")),
        None => return Err(cx.missing("think.distribution")),
    };
    let params: &[&str] = match dist {
        "constant" => &["seconds"],
        "uniform" => &["low", "high"],
        "exponential" => &["mean"],
        "lognormal" => &["mu", "sigma"],
        "pareto" => &["scale", "shape"],
        _ => {
            return Err(cx.bad(
                "think.distribution",
                format!(
                "unknown distribution `{dist}` (constant, uniform, exponential, lognormal, pareto)"
            ),
            ))
        }
    };
    let mut known = vec!["distribution"];
    known.extend_from_slice(params);
    cx.unknown(th, &known, "think.")?;
    let p = |k: &str| cx.number(&format!("think.{k}"), th.get(k));
    let t = match dist {
        "constant" => ThinkTime::Constant {
            seconds: p("seconds")?,
        },
        "uniform" => ThinkTime::Uniform {
            low: p("low")?,
            high: p("high")?,
        },
        "exponential" => ThinkTime::Exponential { mean: p("mean")? },
        "lognormal" => ThinkTime::Lognormal {
            mu: p("mu")?,
            sigma: p("sigma")?,
        },
        _ => ThinkTime::Pareto {
            scale: p("scale")?,
            shape: p("shape")?,
        },
    };
    t.validate().map_err(|problem| cx.bad("think", problem))?;
    Ok(t)
}
