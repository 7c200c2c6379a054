//! Relay and client config files: flat TOML with Tor's torrc key names, plus `-o KEY=VALUE`
//! overrides applied before validation.
//!
//! ```toml
//! # relay.toml
//! Nickname = "guard1"
//! ORPort = "127.0.0.1:9001"
//! KeyFile = "guard1-keys.toml"        # relative to this file's folder
//! ExitPolicy = ["accept 127.0.0.0/8:*"] # absent: not an exit
//! Workers = 0                          # 0 = one per core
//! Schedulers = "KIST,KISTLite,Vanilla"
//! MaxMemInQueues = "512 MB"
//! ChannelHandshakeTimeout = "30 s"     # kistrel's: close links that do not finish VERSIONS/NETINFO
//! DoSCircuitCreationEnabled = 1        # per-channel CREATE limit (Tor's names, see below)
//! DoSCircuitCreationRate = 100         # CREATE cells per second, sustained
//! DoSCircuitCreationBurst = 2000       # CREATE cells at once
//! ```
//!
//! Every problem is a [`ConfigError`] naming the file, the line (or `-o`), the key and what
//! to do; all of them map to exit code 2.
//!
//! Each kind of config is a few serde sections (`deny_unknown_fields`, torrc names as
//! renames): the relay's or client's own keys, the runtime keys both share, and for the client
//! pathsel's `PathConfig` and `CbtConfig`. The source module reads the file with every key's
//! line, applies the overrides, rejects unknown keys (with a "did you mean") and hands each
//! section its keys; an error names the key and its line.
//!
//! Durations and sizes use [`crate::units`]: `"10 ms"`, `"30 s"`, `"512 MB"` (Tor's binary
//! units). A bare number is bytes for a size; for a duration it is allowed only where the
//! key has a unit (Tor's): `KISTSchedRunInterval` msec, `CircuitPriorityHalflife` seconds.

mod client;
mod effective;
mod error;
mod relay;
mod runtime;
mod source;
mod value;

pub use client::ClientConf;
pub use effective::Entry;
pub use error::{At, ConfigError, Origin};
pub use kistrel_sched::SchedulerKind;
pub use relay::RelayConf;
pub use runtime::{Backend, LinksMode, RuntimeConf};
pub use source::{relative_to, Override};

#[cfg(test)]
mod tests;
