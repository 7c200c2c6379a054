//! A flat config file as key -> (value, where it came from), with `-o` overrides applied,
//! handed out in typed sections.
//!
//! ```text
//!  text --toml--> key -> (Value, line)  <-- -o KEY=VALUE (origin: override)
//!        check_known(every section's serde field names)  -> unknown key, "did you mean"
//!        take::<Section>()  -> serde derive (deny_unknown_fields, torrc renames); an error
//!                              names the key (serde_path_to_error) and its line
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::{Spanned, Value};

use super::error::{ConfigError, Origin};

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

/// The keys of one config file.
#[derive(Debug)]
pub(super) struct ConfSource {
    file: PathBuf,
    /// Keys not yet taken by a section.
    entries: BTreeMap<String, Value>,
    /// Where every key came from (kept after it is taken, for range errors).
    origins: BTreeMap<String, Origin>,
}

/// Line (1-based) of byte offset `at` in `text`.
pub(super) fn line_of(text: &str, at: usize) -> usize {
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

/// The config keys of a section: its serde field names (the torrc names it renames to).
pub(super) fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<T>()
}

impl ConfSource {
    /// Parse `text` (`file` names it in errors) and apply `overrides` over it.
    pub(super) fn new(
        file: &Path,
        text: &str,
        overrides: &[Override],
    ) -> Result<Self, ConfigError> {
        let raw: BTreeMap<String, Spanned<Value>> =
            toml::from_str(text).map_err(|e| ConfigError::Syntax {
                file: file.to_path_buf(),
                origin: e
                    .span()
                    .map_or(Origin::Unknown, |s| Origin::Line(line_of(text, s.start))),
                message: e.message().trim().to_owned(),
            })?;
        let mut src = ConfSource {
            file: file.to_path_buf(),
            entries: BTreeMap::new(),
            origins: BTreeMap::new(),
        };
        for (k, v) in raw {
            src.origins
                .insert(k.clone(), Origin::Line(line_of(text, v.span().start)));
            src.entries.insert(k, v.into_inner());
        }
        for o in overrides {
            src.origins.insert(o.key.clone(), Origin::Override);
            src.entries.insert(o.key.clone(), o.value.clone());
        }
        Ok(src)
    }

    /// Reject keys not in `known` (and sections: the file is flat).
    pub(super) fn check_known(&self, known: &[&'static str]) -> Result<(), ConfigError> {
        match self.entries.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(ConfigError::UnknownKey {
                file: self.file.clone(),
                origin: self.origin(key),
                key: key.clone(),
                suggestion: suggestion(key, known),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).copied().unwrap_or(Origin::Unknown)
    }

    /// Removes the keys of section `T` and deserializes them (absent keys take `T`'s
    /// defaults). An error names the key that caused it, at its line.
    pub(super) fn take<T: DeserializeOwned>(&mut self) -> Result<T, ConfigError> {
        let keys = keys_of::<T>();
        let mut table = toml::Table::new();
        for key in keys {
            if let Some(v) = self.entries.remove(*key) {
                table.insert((*key).to_owned(), v);
            }
        }
        serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
            let key = e
                .path()
                .iter()
                .find_map(|seg| match seg {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| keys.join("/"));
            let problem = e.inner().message().trim().to_owned();
            self.bad(&key, problem)
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

    /// A `MissingKey` error.
    pub(super) fn missing(&self, key: &'static str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.file.clone(),
            key,
        }
    }

    /// `path` (the value of `key`) resolved against the config file's folder, checked to be
    /// readable.
    pub(super) fn existing_file(
        &self,
        key: &'static str,
        path: &str,
    ) -> Result<PathBuf, ConfigError> {
        let resolved = relative_to(&self.file, path);
        match std::fs::File::open(&resolved) {
            Ok(_) => Ok(resolved),
            Err(source) => Err(ConfigError::MissingFile {
                file: self.file.clone(),
                origin: self.origin(key),
                key,
                path: resolved,
                source,
            }),
        }
    }
}

/// `path` taken relative to the folder holding `config` (absolute paths unchanged).
pub fn relative_to(config: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match config.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// Reads a config file.
pub(super) fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })
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
