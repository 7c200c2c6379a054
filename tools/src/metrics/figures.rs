//! What a node publishes: each worker's latest counters and scheduler metrics, and what was
//! dropped on the queues between it and the control thread.

use std::collections::BTreeMap;

use kistrel_engine::relay::RelayStats;
use kistrel_engine::runtime::{DriverStats, LinkStats};
use kistrel_sched::{SchedMetrics, SchedulerKind};

/// One worker's latest figures.
#[derive(Debug, Clone, Default)]
pub struct WorkerFigures {
    /// The relay state machine's counters.
    pub stats: RelayStats,
    /// The scheduler's counters and histograms.
    pub sched: SchedMetrics,
    /// The scheduler the worker runs; `None` until it has reported.
    pub scheduler: Option<SchedulerKind>,
    /// Links opened per kind (plain, TLS in user space, kTLS) and TLS record counters.
    pub links: LinkStats,
    /// The I/O driver's counters (waits, receives, sends, ENOBUFS).
    pub io: DriverStats,
    /// Events the worker dropped because the control thread's queue was full.
    pub events_dropped: u64,
    /// Commands the control thread dropped because the worker's queue was full.
    pub commands_dropped: u64,
}

/// Every worker's figures, by worker index (so pages list workers in order).
pub type Figures = BTreeMap<usize, WorkerFigures>;

/// Zeroed figures for workers `0..n`: what a node publishes before the first report.
pub fn zeroed(n: usize) -> Figures {
    (0..n).map(|w| (w, WorkerFigures::default())).collect()
}
