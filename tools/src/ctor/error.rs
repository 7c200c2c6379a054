//! Why a C Tor network could not be set up or read.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use kistrel_base::{ErrorKind, HasKind};

/// Why a C Tor network could not be set up or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtorError {
    /// `tor` or `tor-gencert` is not installed.
    #[error(
        "`{program}` not found (looked in PATH and /usr/sbin; or set {env}): install the tor \
         package (Debian: apt-get install tor), which brings tor and tor-gencert"
    )]
    MissingProgram {
        /// `tor` or `tor-gencert`.
        program: &'static str,
        /// The variable that names it explicitly.
        env: &'static str,
    },
    /// A file or folder could not be made or read.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// "creating", "reading", ...
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool (`tor-gencert`, `tor --list-fingerprint`) could not run or failed.
    #[error("{} failed ({status}){}", program.display(), if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Tool {
        /// The program.
        program: PathBuf,
        /// How it ended.
        status: ExitStatus,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// A tool could not be started.
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file tor wrote lacks what it should hold.
    #[error("{} has no {what}", path.display())]
    Missing {
        /// What was looked for.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A directory document does not parse (tor-netdoc's error).
    #[error("cannot parse the {what} {}: {source}", path.display())]
    Document {
        /// "consensus", "microdescriptors", "authority certificates".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (boxed: tor-netdoc's error is large, and errors travel by value).
        #[source]
        source: Box<tor_netdoc::Error>,
    },
    /// The consensus is not signed by the network's own authorities, or not valid now.
    #[error("the consensus {} is not usable: {problem}", path.display())]
    Unverified {
        /// The consensus file.
        path: PathBuf,
        /// What failed: the signature check or the validity period.
        problem: &'static str,
    },
    /// The network did not reach a consensus listing every relay in time.
    #[error("the C Tor network was not ready within {} s: {}; logs under {}", waited.as_secs(), missing.join("; "), dir.display())]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// What was missing when we gave up.
        missing: Vec<String>,
        /// The network's folder.
        dir: PathBuf,
    },
}

impl HasKind for CtorError {
    fn kind(&self) -> ErrorKind {
        match self {
            CtorError::MissingProgram { .. } => ErrorKind::Unsupported,
            CtorError::Io { source, .. } | CtorError::Spawn { source, .. } => HasKind::kind(source),
            CtorError::Tool { .. }
            | CtorError::Missing { .. }
            | CtorError::Document { .. }
            | CtorError::Unverified { .. } => ErrorKind::Internal,
            CtorError::NotReady { .. } => ErrorKind::TimedOut,
        }
    }
}
