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

pub mod control;
pub mod error;
pub mod policy;
pub mod time;

pub use error::{ErrorKind, HasKind};
pub use policy::ExitPolicy;
pub use time::Instant;
