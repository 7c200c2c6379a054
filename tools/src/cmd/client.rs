//! `kistrel client -c FILE`: placeholder so the CLI builds; the lead's client runtime
//! replaces this file (keep the signature: `run(ClientConf) -> Result<(), CliError>`; print
//! `ready socks=ADDR` on stdout, flushed, once a circuit is built: `kistrel net` waits for it).

use crate::config::ClientConf;
use crate::error::CliError;

/// Run a client until SIGINT/SIGTERM.
pub fn run(conf: ClientConf) -> Result<(), CliError> {
    tracing::debug!(?conf, "client config loaded");
    Err(CliError::NotBuilt("kistrel client"))
}
