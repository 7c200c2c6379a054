//! `kistrel relay -c FILE`: placeholder so the CLI builds; the lead's relay runtime replaces
//! this file (keep the signature: `run(RelayConf) -> Result<(), CliError>`).

use crate::config::RelayConf;
use crate::error::CliError;

/// Run a relay until SIGINT/SIGTERM.
pub fn run(conf: RelayConf) -> Result<(), CliError> {
    tracing::debug!(?conf, "relay config loaded");
    Err(CliError::NotBuilt("kistrel relay"))
}
