//! `kistrel keygen --out DIR`: a fresh relay key file, for hand-written networks.

use std::path::PathBuf;

use base64::Engine as _;
use clap::Args;

use crate::error::CliError;
use crate::keys::{KeyError, RelayKeyFile};

/// `kistrel keygen` options.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// Folder to write the key file into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Key file name inside DIR.
    #[arg(long, default_value = "keys.toml", value_name = "NAME")]
    pub name: String,
}

/// Write `DIR/NAME` (never overwriting) and print what a directory entry needs:
/// `identity=<40 hex> ntor_key=<base64> file=<path>`.
pub fn run(args: KeygenArgs) -> Result<(), CliError> {
    std::fs::create_dir_all(&args.out).map_err(|source| KeyError::Write {
        path: args.out.clone(),
        source,
    })?;
    let path = args.out.join(&args.name);
    let keys = RelayKeyFile::generate_os()?;
    keys.save_new(&path)?;
    println!(
        "identity={} ntor_key={} file={}",
        hex::encode_upper(keys.identity),
        base64::engine::general_purpose::STANDARD.encode(keys.ntor_public()),
        path.display()
    );
    Ok(())
}
