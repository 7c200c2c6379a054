//! The error every subcommand returns, and its exit code.
//!
//! Each layer keeps its own error type with a [`HasKind`] impl; [`CliError`] only gathers
//! them, and its exit code comes from the kind ([`crate::exit::code`]). Nothing below the
//! subcommands imports this module.

use kistrel_base::{ErrorKind, HasKind};

use crate::cmd::cbt::CbtCmdError;
use crate::cmd::net::NetError;
use crate::cmd::path::PathCmdError;
use crate::config::ConfigError;
use crate::keys::KeyError;
use crate::load::LoadError;
use crate::placement::PlacementError;
use crate::tgen::TgenError;

/// What a subcommand failed with. `main` prints it on one line as `kistrel: error: {self}`
/// and exits with [`CliError::exit_code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Config file or override problem, or a port already in use.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Key file problem.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// `kistrel cbt`.
    #[error(transparent)]
    Cbt(#[from] CbtCmdError),
    /// `kistrel path`.
    #[error(transparent)]
    Path(#[from] PathCmdError),
    /// `kistrel net`.
    #[error(transparent)]
    Net(#[from] NetError),
    /// `kistrel tgen`.
    #[error(transparent)]
    Tgen(#[from] TgenError),
    /// The load side of `kistrel bench relay` (pump, sink).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// CPU affinity could not be read or set.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// A failure while running: `what` says what was being done, e.g. "relay guard1:
    /// worker 2 setting up io_uring".
    #[error("{what}: {source}")]
    Runtime {
        /// What was being done.
        what: String,
        /// The kind: the source's if it is an I/O error, else [`ErrorKind::LocalIo`].
        kind: ErrorKind,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CliError {
    /// A [`CliError::Runtime`].
    pub fn runtime(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = source.into();
        let kind = source
            .downcast_ref::<std::io::Error>()
            .map_or(ErrorKind::LocalIo, HasKind::kind);
        CliError::Runtime {
            what: what.into(),
            kind,
            source,
        }
    }

    /// A [`CliError::Runtime`] that is the user's to fix (a bad argument found only when
    /// checked against the machine or a file): kind [`ErrorKind::BadConfig`], exit 2.
    pub fn usage(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CliError::Runtime {
            what: what.into(),
            kind: ErrorKind::BadConfig,
            source: source.into(),
        }
    }

    /// The process exit code (see [`crate::exit::code`]).
    pub fn exit_code(&self) -> u8 {
        crate::exit::code(self.kind())
    }
}

impl HasKind for CliError {
    fn kind(&self) -> ErrorKind {
        match self {
            CliError::Config(e) => e.kind(),
            CliError::Keys(e) => e.kind(),
            CliError::Cbt(e) => e.kind(),
            CliError::Path(e) => e.kind(),
            CliError::Net(e) => e.kind(),
            CliError::Tgen(e) => e.kind(),
            CliError::Load(e) => e.kind(),
            CliError::Placement(e) => e.kind(),
            CliError::Runtime { kind, .. } => *kind,
        }
    }
}
