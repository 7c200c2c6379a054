#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::mod_module_files)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cbt;
pub mod control;
pub mod dir;
pub mod guard;
pub mod policy;
pub mod sample;
pub mod select;
pub mod state;

pub use cbt::{CbtConfig, CbtEstimator, CbtFit};
pub use dir::{DirError, Directory, Flag, RelayFlags, RelayInfo};
pub use guard::{GuardError, GuardSet, GuardTicket};
pub use policy::ExitPolicy;
pub use select::{ExitTarget, FailureRule, Path, PathConfig, PathError, PathSelector};
pub use state::{State, StateFile, StateWarning};
