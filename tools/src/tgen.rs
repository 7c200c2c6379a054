//! `kistrel tgen`: a traffic generator modelled on the Tor community's tools (Shadow's tgen,
//! OnionPerf, the KIST papers' web/bulk clients), as a library (`kistrel bench` drives it)
//! and a CLI ([`crate::cmd::tgen`]).
//!
//! ```text
//!   run_client: flows --(direct | SOCKS5, user tgen-MODEL-FLOW)--> Server
//!                 request header (size, seed)  ------------------>
//!                 <------------------  size bytes of ChaCha8(seed), verified as they arrive
//! ```
//!
//! # Protocol
//!
//! The client connects (directly, or through SOCKS5 with a username per flow so that each
//! flow gets its own circuit) and sends a 24-byte header: magic `b"KTGN"`, version 1, three
//! zero bytes, the size (u64 big-endian) and a seed (u64 big-endian) (layout in [`proto`]).
//! The server answers with exactly `size` bytes of the ChaCha8 stream of that seed
//! (`rand_chacha::ChaCha8Rng::seed_from_u64(seed)`) and closes. The client regenerates the
//! stream and compares every byte as it arrives (nothing buffered beyond one read), so a
//! transfer is `ok` only when all `size` bytes arrived and matched; otherwise it is `short`
//! (closed early), `corrupt` (a byte differed), `timeout`, `connect`, `socks` or `io`.
//!
//! # Library entry points
//!
//! - [`Server::start`]`(bind) -> Result<Server, TgenError>`, [`Server::addr`]; stops on drop.
//! - [`Model`]: [`Model::web`], [`Model::bulk`], [`Model::perf`], [`Model::load`] (TOML).
//! - [`ClientOptions`] + [`run_client`]`(&opts, &stop) -> Result<TgenReport, TgenError>`.
//! - [`TgenReport`] (`Serialize + Deserialize`, schema `kistrel.tgen/1`): parameters, a
//!   [`ModelSummary`] per model, every [`TransferRecord`].
//! - [`socks_connect`]`(socks, user, target)`.

pub mod client;
pub mod model;
mod model_toml;
pub mod proto;
pub mod report;
pub mod server;
pub mod socks;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use client::{flow_rng, run_client, socks_user, ClientOptions, ModelFlows};
pub use model::{Arrival, Arrivals, Model, ModelError, SizeChoice, ThinkTime};
pub use model_toml::parse_size;
pub use report::{
    histogram, Metric, ModelSummary, Outcome, Percentiles, TgenReport, TransferRecord, SCHEMA,
};
pub use server::Server;
pub use socks::{socks_connect, socks_connect_timeout, SocksError};

use crate::error::{EXIT_FAILURE, EXIT_USAGE};

/// What a tgen run or server failed with.
#[derive(Debug, thiserror::Error)]
pub enum TgenError {
    /// A bad model name or model file (exit 2).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Bad options (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server could not listen (exit 1).
    #[error("tgen server: cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be written (exit 1).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A report file could not be read or is not a tgen report (exit 1).
    #[error("cannot read tgen report {}: {problem}", path.display())]
    Report {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Some transfers failed and failures were not allowed (exit 1).
    #[error("{failed} of {total} transfers failed (--allow-failures to accept)")]
    Failures {
        /// Failed transfers.
        failed: u64,
        /// All transfers.
        total: u64,
    },
}

impl TgenError {
    /// 2 for usage and model-file problems, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            TgenError::Model(_) | TgenError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}
