//! One module per subcommand group (as Arti's `crates/arti/src/subcommands/`).

pub mod args;
pub mod bench;
pub mod cbt;
pub mod client;
pub mod keygen;
pub mod net;
pub mod path;
pub mod relay;
pub mod tgen;
