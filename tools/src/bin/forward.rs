//! The `kistrel-forward` binary: the plain TCP forwarder `kistrel bench relay` compares a
//! relay with (see `kistrel::forward`).
// kistrel lint header: the same lines open every crate (tests/lint_header.rs checks it).
#![deny(
    unsafe_code,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::mod_module_files)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;

use clap::Parser;
use kistrel::forward::{self, ForwardArgs};
use kistrel_base::HasKind;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = ForwardArgs::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    kistrel::parent::exit_with_parent();
    match forward::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kistrel-forward: error: {e}");
            ExitCode::from(kistrel::exit::code(e.kind()))
        }
    }
}
