//! Model TOML files (format in [`super::model`]) through serde: the file's shape is the
//! derive (`deny_unknown_fields`), every value type checks itself (sizes and durations
//! through [`crate::units`]), and an error names the file, the line and the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kistrel_base::{ErrorKind, HasKind};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::model::{Arrivals, Model, SizeChoice, ThinkTime};
use crate::units;

/// Why a model could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Not a built-in name nor a `.toml` file.
    #[error("unknown model `{0}` (built-in: web, bulk, perf; or a FILE.toml)")]
    Unknown(String),
    /// The file could not be read.
    #[error("{}: cannot read model file: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not a model: a syntax error, an unknown or missing key, a bad value.
    #[error("{}{}: {}{message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// The key (dotted path, `sizes[0].bytes`), when the problem is in one.
        key: Option<String>,
        /// What is wrong and what is wanted.
        message: String,
    },
}

impl HasKind for ModelError {
    fn kind(&self) -> ErrorKind {
        // A model name or file the operator gave.
        ErrorKind::BadConfig
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A model file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: Option<Spanned<Name>>,
    arrivals: Option<Spanned<ArrivalKind>>,
    rate: Option<Spanned<Rate>>,
    timeout: Option<Positive>,
    count: Option<Spanned<Count>>,
    duration: Option<Spanned<Positive>>,
    think: Option<Spanned<ThinkTime>>,
    sizes: Spanned<Vec<SizeEntry>>,
}

/// One `[[sizes]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeEntry {
    bytes: Bytes,
    #[serde(default)]
    weight: Weight,
    timeout: Option<Positive>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ArrivalKind {
    #[default]
    Closed,
    Open,
}

/// Defines a newtype whose `Deserialize` reads `$raw` and checks it with `$check`.
macro_rules! checked {
    ($(#[$doc:meta])* $name:ident($t:ty) from $raw:ty, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        struct $name($t);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <$raw>::deserialize(d)?;
                let check: fn($raw) -> Result<$t, String> = $check;
                check(raw).map($name).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A number (seconds) or a duration string (`"500ms"`, `"2min"`), as TOML gives it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(f64),
    Text(String),
}

/// An integer (bytes) or a size string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

checked!(
    /// A model name: letters, digits, `-` and `_`.
    Name(String) from String, |s| {
        if valid_name(&s) {
            Ok(s)
        } else {
            Err("expected a non-empty string of letters, digits, '-' or '_'".into())
        }
    }
);
checked!(
    /// Open-loop arrivals per second, > 0.
    Rate(f64) from f64, |r| {
        if r.is_finite() && r > 0.0 {
            Ok(r)
        } else {
            Err("expected arrivals per second > 0".into())
        }
    }
);
checked!(
    /// Transfers per flow, >= 1.
    Count(u64) from i64, |n| u64::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| "expected an integer >= 1".into())
);
checked!(
    /// A size weight, 1 to u32::MAX.
    Weight(u32) from i64, |w| u32::try_from(w)
        .ok()
        .filter(|w| *w >= 1)
        .ok_or_else(|| "expected an integer from 1 to 4294967295".into())
);
checked!(
    /// A duration > 0: seconds, or a string with a unit.
    Positive(Duration) from RawDuration, |raw| {
        let d = match raw {
            RawDuration::Seconds(s) if s.is_finite() && s >= 0.0 => {
                Duration::try_from_secs_f64(s).map_err(|e| e.to_string())?
            }
            RawDuration::Seconds(_) => return Err("expected a number of seconds >= 0".into()),
            RawDuration::Text(t) => units::parse_duration(&t).map_err(|e| e.to_string())?,
        };
        if d.is_zero() {
            Err("must be > 0".into())
        } else {
            Ok(d)
        }
    }
);
checked!(
    /// A size > 0: bytes, or a string with a unit.
    Bytes(u64) from RawSize, |raw| {
        let n = match raw {
            RawSize::Bytes(n) => u64::try_from(n).map_err(|_| "expected a size > 0".to_owned())?,
            RawSize::Text(t) => units::parse_size(&t).map_err(|e| e.to_string())?,
        };
        if n == 0 {
            Err("expected a size > 0".into())
        } else {
            Ok(n)
        }
    }
);

impl Default for Weight {
    fn default() -> Self {
        Weight(1)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Model {
    /// A built-in model by name, or a model file when `spec` ends in `.toml`.
    pub fn from_spec(spec: &str) -> Result<Model, ModelError> {
        match spec {
            "web" => Ok(Model::web()),
            "bulk" => Ok(Model::bulk()),
            "perf" => Ok(Model::perf()),
            s if s.ends_with(".toml") => Model::load(Path::new(s)),
            s => Err(ModelError::Unknown(s.to_owned())),
        }
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Read {
            file: path.to_path_buf(),
            source: e,
        })?;
        Model::parse(path, &text)
    }

    /// Parses model TOML; `file` names it in errors and gives the default name.
    pub fn parse(file: &Path, text: &str) -> Result<Model, ModelError> {
        let line = |at: usize| 1 + text.bytes().take(at).filter(|b| *b == b'\n').count();
        let raw: ModelFile = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                // `Spanned` fields show up in the path as the toml crate's private key.
                let path = e
                    .path()
                    .to_string()
                    .replace(".$__serde_spanned_private_value", "");
                ModelError::Invalid {
                    file: file.to_path_buf(),
                    line: e.inner().span().map(|s| line(s.start)),
                    key: (path != ".").then_some(path),
                    message: toml_message(e.inner()),
                }
            })?;
        let invalid = |key: &str, at: usize, message: &str| ModelError::Invalid {
            file: file.to_path_buf(),
            line: Some(line(at)),
            key: Some(key.to_owned()),
            message: message.to_owned(),
        };
        from_file(raw, file, &invalid)
    }
}

/// The toml crate's message; some syntax errors come without one.
fn toml_message(e: &toml::de::Error) -> String {
    match e.message().trim() {
        "" => "TOML syntax error".to_owned(),
        m => m.to_owned(),
    }
}

/// The model a parsed file describes; the checks that involve more than one key.
fn from_file(
    raw: ModelFile,
    file: &Path,
    invalid: &dyn Fn(&str, usize, &str) -> ModelError,
) -> Result<Model, ModelError> {
    let name = match raw.name {
        Some(n) => n.into_inner().0,
        None => {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !valid_name(&stem) {
                return Err(ModelError::Invalid {
                    file: file.to_path_buf(),
                    line: None,
                    key: None,
                    message: "missing field `name` (the file name is not a valid model name)"
                        .into(),
                });
            }
            stem
        }
    };
    if let (Some(_), Some(d)) = (&raw.count, &raw.duration) {
        return Err(invalid(
            "duration",
            d.span().start,
            "give `count` or `duration`, not both",
        ));
    }
    let kind = raw
        .arrivals
        .as_ref()
        .map_or(ArrivalKind::Closed, |a| *a.get_ref());
    let arrivals = match (kind, raw.rate, raw.think) {
        (ArrivalKind::Closed, Some(rate), _) => {
            return Err(invalid(
                "rate",
                rate.span().start,
                "only for arrivals = \"open\"",
            ))
        }
        (ArrivalKind::Closed, None, think) => {
            let think = match think {
                Some(t) => {
                    let at = t.span().start;
                    let t = t.into_inner();
                    t.validate().map_err(|p| invalid("think", at, &p))?;
                    Some(t)
                }
                None => None,
            };
            Arrivals::Closed { think }
        }
        (ArrivalKind::Open, _, Some(think)) => {
            return Err(invalid(
                "think",
                think.span().start,
                "only for arrivals = \"closed\" (open arrivals have a rate)",
            ))
        }
        (ArrivalKind::Open, None, None) => {
            let at = raw.arrivals.as_ref().map_or(0, |a| a.span().start);
            return Err(invalid(
                "arrivals",
                at,
                "\"open\" needs `rate` (arrivals per second)",
            ));
        }
        (ArrivalKind::Open, Some(rate), None) => Arrivals::Open {
            rate: rate.into_inner().0,
        },
    };
    let sizes_at = raw.sizes.span().start;
    let sizes = raw.sizes.into_inner();
    if sizes.is_empty() {
        return Err(invalid(
            "sizes",
            sizes_at,
            "expected one or more [[sizes]] tables",
        ));
    }
    let timeout = raw.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    Ok(Model {
        name,
        sizes: sizes
            .into_iter()
            .map(|s| SizeChoice {
                bytes: s.bytes.0,
                weight: s.weight.0,
                timeout: s.timeout.map_or(timeout, |t| t.0),
            })
            .collect(),
        arrivals,
        count: raw.count.map(|c| c.into_inner().0),
        duration: raw.duration.map(|d| d.into_inner().0),
    })
}

#[cfg(test)]
mod tests;
