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

mod channels;
pub mod error;
pub mod ewma;
pub mod kist;
pub mod limit;
pub mod make;
pub mod metrics;
pub mod scheduler;
pub mod socket;
pub mod time;
pub mod vanilla;

pub use error::SchedError;
pub use ewma::{CellEwma, CircuitMux, EwmaConfig, Priority};
pub use kist::{Kist, KistLite};
pub use limit::{kist_limit, LimitReason, CELL_WIRE_LEN};
pub use make::make_scheduler;
pub use metrics::{ExhaustedGrants, KernelStage, QueueTimes, SchedHistograms, SchedMetrics};
pub use scheduler::{
    Batch, CellSource, ChannelKey, ChannelSnapshot, ChannelState, RunReport, SchedConfig,
    Scheduler, SchedulerKind, WriteGrant,
};
pub use socket::{SocketSnapshot, TcpInfo};
pub use time::Instant;
pub use vanilla::Vanilla;
