//! The guard lines of the state file.
//!
//! ```text
//! GuardWindowCircuits 17
//! Guard rsa_id=<40 hex> sampled_on=<unix s> confirmed_on=<unix s|-> circuits=N failures=N unreachable=N retry_at=<unix s|-> replaced=0|1
//! ```

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{from_unix_secs, unix_secs, GuardEntry, GuardSet};
use crate::cbt::LineError;
use crate::select::PathConfig;

/// The guard part of the state file, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardState {
    /// Circuits reported since proposal 151's rule last ran.
    pub window_circuits: u64,
    /// Sampled guards in sample order.
    pub entries: Vec<GuardEntry>,
}

impl GuardState {
    /// Parse guard lines; line numbers in errors count from `first_line`.
    pub fn parse(text: &str, first_line: usize) -> Result<Self, LineError> {
        let mut st = GuardState::default();
        for (i, raw) in text.lines().enumerate() {
            let line_no = first_line + i;
            let err = |reason: String| LineError {
                line: line_no,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            match words.next() {
                Some("GuardWindowCircuits") => {
                    st.window_circuits = words
                        .next()
                        .and_then(|w| w.parse().ok())
                        .ok_or_else(|| err("GuardWindowCircuits wants a number".into()))?;
                }
                Some("Guard") => {
                    let entry = parse_guard(words).map_err(err)?;
                    if st.entries.iter().any(|e| e.identity == entry.identity) {
                        return Err(err("guard listed twice".into()));
                    }
                    st.entries.push(entry);
                }
                _ => return Err(err(format!("unexpected guard line {line:?}"))),
            }
        }
        Ok(st)
    }

    /// The state lines.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "GuardWindowCircuits {}", self.window_circuits);
        let opt =
            |t: Option<SystemTime>| t.map_or_else(|| "-".to_owned(), |t| unix_secs(t).to_string());
        for e in &self.entries {
            let _ = writeln!(
                out,
                "Guard rsa_id={} sampled_on={} confirmed_on={} circuits={} failures={} unreachable={} retry_at={} replaced={}",
                hex::encode_upper(e.identity),
                unix_secs(e.sampled_on),
                opt(e.confirmed_on),
                e.circuits,
                e.failures,
                e.unreachable_count,
                opt(e.retry_at),
                u8::from(e.replaced),
            );
        }
        out
    }
}

impl GuardSet {
    /// A snapshot of the sample and statistics for the state file. Call
    /// [`process_reports`](Self::process_reports) first to include pending outcomes.
    pub fn state(&self) -> GuardState {
        GuardState {
            window_circuits: self.window_circuits,
            entries: self.sampled.clone(),
        }
    }

    /// A guard set restored from a state snapshot.
    pub fn from_state(cfg: PathConfig, state: &GuardState) -> Self {
        let mut gs = GuardSet::new(cfg);
        gs.sampled = state.entries.clone();
        gs.window_circuits = state.window_circuits;
        gs
    }

    /// The guard lines of the state file, in sample order.
    pub fn to_state_text(&self) -> String {
        self.state().to_text()
    }

    /// Replace the sample with the guard lines of a state file. Lines are numbered from
    /// `first_line` (the guard section's position in the whole file).
    pub fn load_state_text(&mut self, text: &str, first_line: usize) -> Result<(), LineError> {
        let st = GuardState::parse(text, first_line)?;
        self.sampled = st.entries;
        self.window_circuits = st.window_circuits;
        Ok(())
    }
}

fn parse_guard<'a>(words: impl Iterator<Item = &'a str>) -> Result<GuardEntry, String> {
    let (mut id, mut sampled_on) = (None, None);
    let mut e = GuardEntry::new([0; 20], SystemTime::UNIX_EPOCH);
    for word in words {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not key=value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("{k}: {v:?} is not a number"))
        };
        let time = || -> Result<Option<SystemTime>, String> {
            if v == "-" {
                Ok(None)
            } else {
                num().map(|s| Some(from_unix_secs(s)))
            }
        };
        match k {
            "rsa_id" => {
                let mut b = [0u8; 20];
                hex::decode_to_slice(v, &mut b)
                    .map_err(|_| format!("rsa_id {v:?} is not 40 hex digits"))?;
                id = Some(b);
            }
            "sampled_on" => sampled_on = Some(from_unix_secs(num()?)),
            "confirmed_on" => e.confirmed_on = time()?,
            "circuits" => e.circuits = num()?,
            "failures" => e.failures = num()?,
            "unreachable" => {
                e.unreachable_count = u32::try_from(num()?).map_err(|_| "unreachable too large")?
            }
            "retry_at" => e.retry_at = time()?,
            "replaced" => {
                e.replaced = match v {
                    "0" => false,
                    "1" => true,
                    _ => return Err(format!("replaced={v:?}: want 0 or 1")),
                }
            }
            _ => return Err(format!("unknown guard key {k:?}")),
        }
    }
    e.identity = id.ok_or("guard without rsa_id")?;
    e.sampled_on = sampled_on.ok_or("guard without sampled_on")?;
    if e.failures > e.circuits {
        return Err(format!("failures {} > circuits {}", e.failures, e.circuits));
    }
    Ok(e)
}
