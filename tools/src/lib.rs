//! The `kistrel` command-line tool: relay, client, local testbed, traffic generator, benchmarks.
//!
//! [`cli`] holds the command-line syntax and dispatch; [`cmd`] one module per subcommand
//! group; [`config`] the relay/client TOML configs (torrc key names); [`keys`] relay key
//! files; [`error`] the error type, [`exit`] exit codes; [`tgen`] the traffic generator;
//! [`units`] the one duration and size syntax; [`metrics`] the MetricsPort; [`placement`]
//! which CPUs each node's workers run on; [`stats`] the statistics of every bench figure;
//! [`load`] the load side of `kistrel bench relay` (pump and sink); [`forward`] the plain
//! TCP forwarder it compares with; [`ctor`] a private C Tor network beside kistrel's relays.
// kistrel lint header: the same lines open every crate (tests/lint_header.rs checks it).
#![deny(
    unsafe_code,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::mod_module_files)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod cmd;
pub mod config;
pub mod ctor;
pub mod error;
pub mod exit;
pub mod forward;
pub mod fsutil;
pub mod keys;
pub mod load;
pub mod metrics;
pub mod parent;
pub mod placement;
pub mod runner;
pub mod stats;
pub mod testbed;
pub mod tgen;
pub mod units;
