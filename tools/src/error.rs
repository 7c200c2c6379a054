//! The error every subcommand returns, and its exit code.

use crate::cmd::cbt::CbtCmdError;
use crate::cmd::net::NetError;
use crate::cmd::path::PathCmdError;
use crate::config::ConfigError;
use crate::keys::KeyError;

/// Exit code for bad usage, config or input (clap uses 2 for its own usage errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;

/// What a subcommand failed with. `main` prints it on one line as `kistrel: error: {self}`
/// and exits with [`CliError::exit_code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Config file or override problem, or a port already in use (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Key file problem (exit 2 to read, 1 to write).
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
    /// `kistrel tgen` (exit 2 for bad options or model files, 1 otherwise).
    #[error(transparent)]
    Tgen(#[from] crate::tgen::TgenError),
    /// A failure while running (exit 1): `what` says what was being done, e.g. "relay guard1:
    /// worker 2 setting up io_uring".
    #[error("{what}: {source}")]
    Runtime {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A subcommand this build does not have yet (exit 1).
    #[error("{0}: not built yet")]
    NotBuilt(&'static str),
}

impl CliError {
    /// A [`CliError::Runtime`].
    pub fn runtime(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CliError::Runtime {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The process exit code: [`EXIT_USAGE`] (2) for usage/config/input problems,
    /// [`EXIT_FAILURE`] (1) for run-time failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => EXIT_USAGE,
            CliError::Keys(e) => e.exit_code(),
            CliError::Cbt(e) => e.exit_code(),
            CliError::Path(e) => e.exit_code(),
            CliError::Net(e) => e.exit_code(),
            CliError::Tgen(e) => e.exit_code(),
            CliError::Runtime { .. } | CliError::NotBuilt(_) => EXIT_FAILURE,
        }
    }
}
