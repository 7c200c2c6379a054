//! The state file (guards and build times): loaded when the control plane starts, saved
//! atomically (pathsel's `StateFile`: temp file, fsync, rename) on a timer and at exit.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kistrel_base::Instant;
use kistrel_pathsel::control::ControlCore;
use kistrel_pathsel::{State, StateFile};
use tracing::warn;

/// How often the state file is saved while running (Tor saves its state about as often).
pub const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Saves a core's state to one file, every [`SAVE_EVERY`] and when asked.
#[derive(Debug)]
pub struct StateSaver {
    path: PathBuf,
    every: Duration,
    /// When the last save was due (the first is due `every` after the start).
    last: Instant,
}

impl StateSaver {
    /// Reads the state at `path` (a missing file is a fresh start; a corrupt one is moved
    /// aside with a warning, as [`StateFile::load`] does) and a saver for it, its first
    /// save due [`SAVE_EVERY`] after `now`.
    pub fn load(path: impl Into<PathBuf>, now: Instant) -> (State, Self) {
        let path = path.into();
        let (state, warning) = StateFile::load(&path);
        if let Some(w) = warning {
            warn!("{w}");
        }
        let saver = StateSaver {
            path,
            every: SAVE_EVERY,
            last: now,
        };
        (state, saver)
    }

    /// Saves every `every` instead.
    #[must_use]
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When the next timed save is due.
    pub fn next_save(&self) -> Instant {
        self.last + self.every
    }

    /// Saves if a timed save is due at `now`.
    pub fn save_if_due(&mut self, now: Instant, wall: SystemTime, core: &mut ControlCore) {
        if now >= self.next_save() {
            self.last = now;
            self.save(wall, core);
        }
    }

    /// Saves now; a failure is logged (the next save tries again), never fatal.
    pub fn save(&self, wall: SystemTime, core: &mut ControlCore) {
        let state = core.state(wall);
        if let Err(e) = StateFile::save(&self.path, &state) {
            warn!(path = %self.path.display(), error = %e, "cannot save the state file");
        }
    }
}
