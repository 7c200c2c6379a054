//! A flat config file as key -> (value, where it came from), with `-o` overrides applied.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Spanned, Value};

use super::ConfigError;

/// Where a config value came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The config file, 1-based line.
    Line(usize),
    /// A `-o KEY=VALUE` override on the command line.
    Override,
    /// Nowhere in particular (a default, or the toml crate gave no position).
    Unknown,
}

/// `FILE:LINE`, `FILE (-o)` or `FILE`: the prefix of every config error.
#[derive(Debug, Clone, Copy)]
pub struct At<'a>(pub &'a Path, pub Origin);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Origin::Line(line) => write!(f, "{}:{line}", self.0.display()),
            Origin::Override => write!(f, "{} (override -o)", self.0.display()),
            Origin::Unknown => write!(f, "{}", self.0.display()),
        }
    }
}

/// One `-o KEY=VALUE` override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The key, as in the file.
    pub key: String,
    /// The value: TOML when it parses as a TOML value, else the raw text as a string.
    pub value: Value,
}

impl Override {
    /// Parse `KEY=VALUE`. `VALUE` is read as a TOML value (`8`, `true`, `["a"]`,
    /// `"quoted"`); anything else is taken as a plain string, so `-o ORPort=127.0.0.1:9001`
    /// and `-o MaxMemInQueues=512 MB` work unquoted.
    pub fn parse(text: &str) -> Result<Override, ConfigError> {
        let bad = || ConfigError::BadOverride {
            text: text.to_owned(),
        };
        let (key, raw) = text.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad());
        }
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .filter(|t| t.len() == 1)
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(raw.to_owned()));
        Ok(Override {
            key: key.to_owned(),
            value,
        })
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    origin: Origin,
}

/// The keys of one config file.
#[derive(Debug)]
pub(super) struct ConfTable {
    file: PathBuf,
    entries: BTreeMap<String, Entry>,
}

/// Line (1-based) of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(at)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Levenshtein distance, for "did you mean" hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggestion(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(key))
        .or_else(|| {
            known
                .iter()
                .map(|k| {
                    (
                        edit_distance(&k.to_ascii_lowercase(), &key.to_ascii_lowercase()),
                        k,
                    )
                })
                .filter(|(d, _)| *d <= 2)
                .min_by_key(|(d, _)| *d)
                .map(|(_, k)| k)
        })
        .copied()
}

impl ConfTable {
    pub(super) fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: BTreeMap<String, Spanned<Value>> =
            toml::from_str(text).map_err(|e| ConfigError::Syntax {
                file: file.to_path_buf(),
                origin: e
                    .span()
                    .map_or(Origin::Unknown, |s| Origin::Line(line_of(text, s.start))),
                message: e.message().trim().to_owned(),
            })?;
        let entries = raw
            .into_iter()
            .map(|(k, v)| {
                let origin = Origin::Line(line_of(text, v.span().start));
                (
                    k,
                    Entry {
                        value: v.into_inner(),
                        origin,
                    },
                )
            })
            .collect();
        Ok(ConfTable {
            file: file.to_path_buf(),
            entries,
        })
    }

    pub(super) fn apply(&mut self, overrides: &[Override]) {
        for o in overrides {
            self.entries.insert(
                o.key.clone(),
                Entry {
                    value: o.value.clone(),
                    origin: Origin::Override,
                },
            );
        }
    }

    /// Reject keys not in `known` (and sections: the file is flat).
    pub(super) fn check_known(&self, known: &[&'static str]) -> Result<(), ConfigError> {
        for (key, entry) in &self.entries {
            if !known.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey {
                    file: self.file.clone(),
                    origin: entry.origin,
                    key: key.clone(),
                    suggestion: suggestion(key, known),
                });
            }
        }
        Ok(())
    }

    pub(super) fn origin(&self, key: &str) -> Origin {
        self.entries.get(key).map_or(Origin::Unknown, |e| e.origin)
    }

    /// Convert `key` if present.
    pub(super) fn get<T>(
        &self,
        key: &'static str,
        convert: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(entry) = self.entries.get(key) else {
            return Ok(None);
        };
        convert(&entry.value)
            .map(Some)
            .map_err(|problem| self.bad(key, problem))
    }

    /// Convert `key`, which must be present.
    pub(super) fn require<T>(
        &self,
        key: &'static str,
        convert: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.get(key, convert)?
            .ok_or_else(|| ConfigError::MissingKey {
                file: self.file.clone(),
                key,
            })
    }

    /// A `BadValue` error for `key` at its origin.
    pub(super) fn bad(&self, key: &str, problem: String) -> ConfigError {
        ConfigError::BadValue {
            file: self.file.clone(),
            origin: self.origin(key),
            key: key.to_owned(),
            problem,
        }
    }

    /// Deserialize the keys in `keys` that are present into a serde struct with defaults
    /// (pathsel's `PathConfig` / `CbtConfig`). Each key is first tried alone so an error
    /// names the key that caused it.
    pub(super) fn serde_subset<T: serde::de::DeserializeOwned>(
        &self,
        keys: &[&'static str],
    ) -> Result<T, ConfigError> {
        let mut all = toml::Table::new();
        for key in keys {
            if let Some(entry) = self.entries.get(*key) {
                let mut one = toml::Table::new();
                one.insert((*key).to_owned(), entry.value.clone());
                if let Err(e) = T::deserialize(Value::Table(one)) {
                    return Err(self.bad(key, e.message().trim().to_owned()));
                }
                all.insert((*key).to_owned(), entry.value.clone());
            }
        }
        T::deserialize(Value::Table(all)).map_err(|e| ConfigError::BadValue {
            file: self.file.clone(),
            origin: Origin::Unknown,
            key: keys.join("/"),
            problem: e.message().trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("orport", "orport"), 0);
        assert_eq!(edit_distance("orprt", "orport"), 1);
        assert_eq!(edit_distance("abc", "xyz"), 3);
    }

    #[test]
    fn suggestion_prefers_case_insensitive_match() {
        let known = ["ORPort", "Nickname"];
        assert_eq!(suggestion("orport", &known), Some("ORPort"));
        assert_eq!(suggestion("Nicknam", &known), Some("Nickname"));
        assert_eq!(suggestion("Bogus", &known), None);
    }
}
