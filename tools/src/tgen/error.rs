//! What a tgen run or server fails with.

use std::net::SocketAddr;
use std::path::PathBuf;

use kistrel_base::{ErrorKind, HasKind};

use super::model_file::ModelError;

/// What a tgen run or server failed with.
#[derive(Debug, thiserror::Error)]
pub enum TgenError {
    /// A bad model name or model file.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Bad options.
    #[error("{0}")]
    Usage(String),
    /// The server could not listen.
    #[error("tgen server: cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A report file could not be read or is not a tgen report.
    #[error("cannot read tgen report {}: {problem}", path.display())]
    Report {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Some transfers failed and failures were not allowed.
    #[error("{failed} of {total} transfers failed (--allow-failures to accept)")]
    Failures {
        /// Failed transfers.
        failed: u64,
        /// All transfers.
        total: u64,
    },
}

impl HasKind for TgenError {
    /// Usage and model-file problems are the operator's to fix; the rest failed while running.
    fn kind(&self) -> ErrorKind {
        match self {
            TgenError::Model(_) | TgenError::Usage(_) => ErrorKind::BadConfig,
            TgenError::Bind { source, .. } | TgenError::Write { source, .. } => {
                HasKind::kind(source)
            }
            TgenError::Report { .. } => ErrorKind::LocalIo,
            TgenError::Failures { .. } => ErrorKind::Network,
        }
    }
}
