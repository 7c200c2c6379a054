//! `kistrel keygen --out DIR`: a fresh relay key folder, for hand-written networks.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use clap::Args;

use crate::error::CliError;
use crate::keys::{KeygenOptions, RelayKeyFolder};

/// `kistrel keygen` options.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// Key folder to write (created if missing; existing key files are never overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Lifetime of the Ed25519 signing key's certificate (C Tor's `SigningKeyLifetime`).
    #[arg(long, default_value = "30days", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub signing_key_lifetime: Duration,
    /// Testing only: make the certificates as if it were DURATION ago (with a shorter
    /// signing-key lifetime, the relay presents an expired certificate).
    #[arg(long, hide = true, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub testing_backdate: Option<Duration>,
}

/// Write the key folder and print what a directory entry needs:
/// `identity=<40 hex> ed25519_identity=<base64> ntor_key=<base64> dir=<path>`.
pub fn run(args: KeygenArgs) -> Result<(), CliError> {
    let opts = KeygenOptions {
        signing_cert_lifetime: args.signing_key_lifetime,
        backdate: args.testing_backdate.unwrap_or_default(),
    };
    let keys = RelayKeyFolder::generate_os(SystemTime::now(), &opts)?;
    keys.save_new(&args.out)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    println!(
        "identity={} ed25519_identity={} ntor_key={} dir={}",
        hex::encode_upper(keys.rsa_id()),
        b64.encode(keys.ed_id()),
        b64.encode(keys.ntor_public()),
        args.out.display()
    );
    Ok(())
}
