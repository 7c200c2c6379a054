#![doc = include_str!("../README.md")]
// kistrel lint header: the same lines open every crate (tests/lint_header.rs checks it).
#![deny(
    unsafe_code,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::mod_module_files)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod crypto;
pub mod driver;
pub mod exit;
pub mod harness;
pub mod poll;
pub mod relay;
pub mod runtime;
pub mod slab;
pub mod socks;
pub mod sys;
pub mod wire;

#[cfg(target_os = "linux")]
pub mod uring;

/// kistrel's time type (defined in `kistrel-base`, the lowest crate).
pub mod time {
    pub use kistrel_base::time::Instant;
}

pub use kistrel_base::error::{ErrorKind, HasKind};
