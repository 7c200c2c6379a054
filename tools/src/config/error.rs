//! Why a config could not be used, and where in it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kistrel_base::{ErrorKind, HasKind};
use kistrel_pathsel::{DirError, NoPathCause};

use crate::placement::PlacementError;

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

/// Why a config could not be used. Every variant is a usage/config problem (exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source} (check the path given to -c)", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{}: TOML syntax error: {message}", At(file, *origin))]
    Syntax {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The toml crate's message.
        message: String,
    },
    /// A key this kind of config does not have.
    #[error("{}: unknown key `{key}`{}", At(file, *origin), suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The key as written.
        key: String,
        /// A known key spelled alike.
        suggestion: Option<&'static str>,
    },
    /// A required key is absent.
    #[error("{}: missing required key `{key}`", file.display())]
    MissingKey {
        /// The config file.
        file: PathBuf,
        /// The key.
        key: &'static str,
    },
    /// A value of the wrong type or out of range.
    #[error("{}: key `{key}`: {problem}", At(file, *origin))]
    BadValue {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The key.
        key: String,
        /// What is wrong and what is wanted.
        problem: String,
    },
    /// A path-valued key names a file that cannot be read.
    #[error("{}: key `{key}`: cannot open {}: {source}", At(file, *origin), path.display())]
    MissingFile {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The key.
        key: &'static str,
        /// The path as resolved (relative paths are taken from the config file's folder).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `DirectoryFile` names a malformed directory.
    #[error("{}: key `DirectoryFile`: {} {source}", At(file, *origin), path.display())]
    Directory {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The directory file.
        path: PathBuf,
        /// What is wrong in it (with its line).
        #[source]
        source: DirError,
    },
    /// The directory can never give this client a path (checked at start, exhaustively).
    #[error("{}: the directory {} gives no path: {cause}", file.display(), path.display())]
    NoPath {
        /// The client's config file.
        file: PathBuf,
        /// The directory file.
        path: PathBuf,
        /// Why, with what to change.
        cause: NoPathCause,
    },
    /// `EntryNodes`/`MiddleNodes`/`ExitNodes` that the directory cannot fill.
    #[error("{}: {source} (directory {})", file.display(), directory.display())]
    Pins {
        /// The config file.
        file: PathBuf,
        /// The directory file.
        directory: PathBuf,
        /// Which key and what is wrong.
        #[source]
        source: kistrel_pathsel::PinError,
    },
    /// `-o` text that is not `KEY=VALUE`.
    #[error("bad override {text:?}: want -o KEY=VALUE, e.g. -o Workers=2")]
    BadOverride {
        /// The text given.
        text: String,
    },
    /// A listen address is taken. The runtime returns this when `bind` fails with
    /// `EADDRINUSE`, so the user hears which key to change.
    #[error("{}: key `{key}`: address {addr} is already in use (pick another port or stop the process using it)", file.display())]
    PortInUse {
        /// The config file.
        file: PathBuf,
        /// `ORPort`, `SocksPort` or `MetricsPort`.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
    },
    /// `CPUAffinity` names CPUs this process may not run on. Checked when the node starts,
    /// not when the file loads, so a config written for another machine still loads.
    #[error("{}: key `CPUAffinity`: {source}", file.display())]
    Cpus {
        /// The config file.
        file: PathBuf,
        /// What the kernel or the mask said.
        #[source]
        source: PlacementError,
    },
}

/// `CPUAffinity` at start: see [`ConfigError::Cpus`].
impl ConfigError {
    /// `CPUAffinity` of `file` could not be applied: a CPU outside this process's mask is the
    /// operator's to fix, so it stays a config error (exit 2).
    pub fn cpus(file: &Path, source: PlacementError) -> Self {
        ConfigError::Cpus {
            file: file.to_path_buf(),
            source,
        }
    }
}

impl HasKind for ConfigError {
    /// Every config problem is the operator's to fix (a taken port included: pick another).
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadConfig
    }
}
