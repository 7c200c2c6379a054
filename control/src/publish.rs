//! Where the control loop's figures go: a node's MetricsPort, or nowhere.

use kistrel_engine::runtime::WorkerStats;
use kistrel_pathsel::control::ControlStats;

/// The control thread's own figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlFigures {
    /// Commands dropped per worker (index) because its queue was full.
    pub commands_dropped: Vec<u64>,
    /// Path selection's counters (a client's; `None` for a relay).
    pub circuits: Option<ControlStats>,
}

/// Receives figures as the control loop learns them. Called on the control thread, never on
/// a worker's.
pub trait Publish: Send {
    /// A worker's latest figures (about once a second per worker).
    fn worker(&mut self, stats: &WorkerStats);
    /// The control thread's figures, after a turn that changed them.
    fn control(&mut self, figures: &ControlFigures);
}

/// Publishes nothing (no MetricsPort).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPublish;

impl Publish for NoPublish {
    fn worker(&mut self, _: &WorkerStats) {}
    fn control(&mut self, _: &ControlFigures) {}
}
