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

pub mod cbt;
pub mod control;
pub mod dir;
pub mod guard;
/// Exit policies (defined in `kistrel-base`, shared with the engine).
pub mod policy {
    pub use kistrel_base::policy::{
        AddrPattern, ExitPolicy, PolicyAction, PolicyError, PolicyRule,
    };
}
pub mod sample;
pub mod select;
pub mod state;

pub use cbt::{CbtConfig, CbtEstimator, CbtFit};
pub use dir::{DirError, Directory, Flag, RelayFlags, RelayInfo};
pub use guard::{GuardError, GuardSet, GuardTicket};
pub use policy::ExitPolicy;
pub use select::{
    ExitTarget, FailureRule, NodeSet, NodeSpec, Path, PathConfig, PathError, PathSelector, PinError,
};
pub use state::{State, StateFile, StateWarning};
