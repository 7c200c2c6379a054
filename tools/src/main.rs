//! The `kistrel` binary: parse the command line, set up logging, run, map errors to exit codes.
// kistrel lint header: the same lines open every crate (tests/lint_header.rs checks it).
#![deny(
    unsafe_code,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::mod_module_files)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kistrel::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2 (0 for --help / --version).
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kistrel: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
