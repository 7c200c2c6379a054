#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod channels;
pub mod ewma;
pub mod kist;
pub mod limit;
pub mod metrics;
pub mod scheduler;
pub mod socket;
pub mod time;
pub mod vanilla;

pub use ewma::{CellEwma, CircuitMux, EwmaConfig, Priority};
pub use kist::{Kist, KistLite};
pub use limit::{kist_limit, LimitReason, CELL_WIRE_LEN};
pub use metrics::SchedMetrics;
pub use scheduler::{
    make_scheduler, CellSource, ChannelKey, ChannelSnapshot, ChannelState, RunReport, SchedConfig,
    SchedError, Scheduler, SchedulerKind, WriteGrant, Written,
};
pub use socket::{SocketSnapshot, TcpInfo};
pub use time::Instant;
pub use vanilla::Vanilla;
