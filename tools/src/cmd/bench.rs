//! `kistrel bench`: the lead fills this in (bring up `net`, drive it with `tgen`, report).

use clap::Args;

use crate::error::CliError;

/// `kistrel bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Print a versioned JSON result instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// Run the benchmark.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    let _ = args;
    Err(CliError::NotBuilt("kistrel bench"))
}
