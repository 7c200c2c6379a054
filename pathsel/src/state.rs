//! The state file: guards and the CBT histogram, human-readable, written atomically.
//!
//! ```text
//! # kistrel state file: guards and circuit build times
//! KistrelStateVersion 1
//! [guards]
//! GuardWindowCircuits 17
//! Guard rsa_id=... sampled_on=... ...
//! [cbt]
//! TotalBuildTimes 110
//! CircuitBuildAbandonedCount 10
//! CircuitBuildTimeBin 205 20
//! ```
//!
//! Saving writes `<file>.tmp`, fsyncs it, renames it over the file and fsyncs the directory,
//! so a crash leaves the old or the new file, never half of one. Loading never fails: a
//! missing file is a fresh start; an unreadable or corrupt one is moved aside to
//! `<file>.corrupt` (or `.corrupt.N`) with a warning, and the client starts fresh rather
//! than run on a wrong timeout.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::cbt::{CbtState, LineError};
use crate::guard::GuardState;

/// The only state file version this crate reads and writes.
pub const STATE_VERSION: u32 = 1;

/// Everything the control thread persists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Sampled guards and their statistics.
    pub guards: GuardState,
    /// The build-time histogram, if any was saved.
    pub cbt: Option<CbtState>,
}

impl State {
    /// The file text.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# kistrel state file: guards and circuit build times\n");
        out.push_str(&format!("KistrelStateVersion {STATE_VERSION}\n[guards]\n"));
        out.push_str(&self.guards.to_text());
        if let Some(cbt) = &self.cbt {
            out.push_str("[cbt]\n");
            out.push_str(&cbt.to_text());
        }
        out
    }

    /// Parse the file text; errors name the line.
    pub fn parse(text: &str) -> Result<Self, LineError> {
        #[derive(PartialEq)]
        enum Section {
            Head,
            Guards,
            Cbt,
        }
        let mut section = Section::Head;
        let mut version_seen = false;
        // (first line number, body) of each section.
        let mut guards: Option<(usize, String)> = None;
        let mut cbt: Option<(usize, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            let err = |reason: String| LineError {
                line: line_no,
                reason,
            };
            match line {
                "[guards]" if guards.is_none() => {
                    section = Section::Guards;
                    guards = Some((line_no + 1, String::new()));
                    continue;
                }
                "[cbt]" if cbt.is_none() => {
                    section = Section::Cbt;
                    cbt = Some((line_no + 1, String::new()));
                    continue;
                }
                _ => {}
            }
            match section {
                Section::Head => {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    match line.strip_prefix("KistrelStateVersion ") {
                        Some(v) if v.trim() == STATE_VERSION.to_string() => version_seen = true,
                        Some(v) => return Err(err(format!("unsupported state version {v:?}"))),
                        None => return Err(err(format!("unexpected line {line:?}"))),
                    }
                }
                Section::Guards => push_line(&mut guards, raw),
                Section::Cbt => push_line(&mut cbt, raw),
            }
        }
        if !version_seen {
            return Err(LineError {
                line: 1,
                reason: "no KistrelStateVersion line".into(),
            });
        }
        let guards = match guards {
            Some((first, body)) => GuardState::parse(&body, first)?,
            None => GuardState::default(),
        };
        let cbt = match cbt {
            Some((first, body)) => Some(CbtState::parse(&body, first)?),
            None => None,
        };
        Ok(State { guards, cbt })
    }
}

fn push_line(section: &mut Option<(usize, String)>, raw: &str) {
    if let Some((_, body)) = section {
        body.push_str(raw);
        body.push('\n');
    }
}

/// Why the state file was not used.
#[derive(Debug)]
pub struct StateWarning {
    /// The state file.
    pub path: PathBuf,
    /// Where the bad file went, if it could be moved.
    pub moved_to: Option<PathBuf>,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for StateWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state file {} not used ({}); starting fresh",
            self.path.display(),
            self.reason
        )?;
        match &self.moved_to {
            Some(p) => write!(f, "; the bad file was moved to {}", p.display()),
            None => write!(f, "; it could not be moved aside and will be overwritten"),
        }
    }
}

/// Loading and atomic saving of the state file.
#[derive(Debug, Clone, Copy)]
pub struct StateFile;

impl StateFile {
    /// Read the state. Never fails: a missing file gives the empty state and no warning; an
    /// unreadable or corrupt one is moved aside and gives the empty state and a warning.
    pub fn load(path: impl AsRef<Path>) -> (State, Option<StateWarning>) {
        let path = path.as_ref();
        let reason = match fs::read(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (State::default(), None),
            Err(e) => format!("cannot read it: {e}"),
            Ok(bytes) => match String::from_utf8(bytes) {
                Err(_) => "it is not UTF-8 text".to_owned(),
                Ok(text) => match State::parse(&text) {
                    Ok(state) => return (state, None),
                    Err(e) => e.to_string(),
                },
            },
        };
        let moved_to = move_aside(path);
        let warning = StateWarning {
            path: path.to_path_buf(),
            moved_to,
            reason,
        };
        tracing::warn!("{warning}");
        (State::default(), Some(warning))
    }

    /// Write the state atomically: temp file, fsync, rename, fsync of the directory.
    pub fn save(path: impl AsRef<Path>, state: &State) -> io::Result<()> {
        let path = path.as_ref();
        let tmp = with_suffix(path, ".tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(state.to_text().as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is; best effort where the
        // platform cannot open directories.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Rename a bad file to `<file>.corrupt`, or `.corrupt.1` ... `.corrupt.99` if taken.
fn move_aside(path: &Path) -> Option<PathBuf> {
    for n in 0..100 {
        let target = if n == 0 {
            with_suffix(path, ".corrupt")
        } else {
            with_suffix(path, &format!(".corrupt.{n}"))
        };
        if target.exists() {
            continue;
        }
        return fs::rename(path, &target).ok().map(|()| target);
    }
    None
}

#[cfg(test)]
mod tests;
