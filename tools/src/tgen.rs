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
pub mod error;
pub mod model;
mod model_file;
pub mod proto;
pub mod report;
pub mod server;
pub mod socks;

pub use client::{flow_rng, run_client, socks_user, ClientOptions, ModelFlows};
pub use error::TgenError;
pub use model::{Arrival, Arrivals, Model, SizeChoice, ThinkTime};
pub use model_file::ModelError;
pub use report::{
    histogram, Metric, ModelSummary, Outcome, Percentiles, TgenReport, TransferRecord, SCHEMA,
};
pub use server::Server;
pub use socks::{socks_connect, socks_connect_timeout, SocksError};
