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

pub mod plane;
pub mod publish;
pub mod state;
pub mod thread;

pub use plane::{ControlPlane, PathControl};
pub use publish::{ControlFigures, NoPublish, Publish};
pub use state::StateSaver;
pub use thread::{ControlReport, ControlThread};
