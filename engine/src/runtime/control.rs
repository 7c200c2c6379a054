//! The messages between a worker and the control thread, and the never-blocking sender of
//! worker events.

use crate::client::HopSpec;
use crate::crypto::RelayId;
use crate::relay::RelayStats;
use crate::time::Instant;

/// Commands from the control thread to a worker.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Command {
    /// Build a circuit along `path` for requests tagged `tag`; give up at `deadline`
    /// (the learned circuit build timeout).
    BuildCircuit {
        /// The isolation tag the circuit is for.
        tag: u64,
        /// The hops, guard first.
        path: Vec<HopSpec>,
        /// When to give up building.
        deadline: Instant,
    },
    /// No path could be found for `tag`: fail its waiting requests.
    NoPath {
        /// The isolation tag.
        tag: u64,
    },
    /// Stop: DESTROY every circuit, flush, close, return.
    Shutdown,
}

/// Events from a worker to the control thread.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// The worker needs a circuit for requests tagged `tag`.
    NeedCircuit {
        /// The worker's index.
        worker: usize,
        /// The isolation tag.
        tag: u64,
    },
    /// The circuit for `tag` was built in `build_ms`.
    CircuitBuilt {
        /// The worker's index.
        worker: usize,
        /// The isolation tag.
        tag: u64,
        /// The circuit's first hop.
        guard: RelayId,
        /// Build time, milliseconds.
        build_ms: u32,
    },
    /// The circuit for `tag` failed while building (`hop`: where, if known).
    CircuitFailed {
        /// The worker's index.
        worker: usize,
        /// The isolation tag.
        tag: u64,
        /// The circuit's first hop.
        guard: RelayId,
        /// The hop that failed (0 = the guard), if known.
        hop: Option<usize>,
    },
    /// The circuit for `tag` passed its deadline while building and was closed.
    CircuitTimedOut {
        /// The worker's index.
        worker: usize,
        /// The isolation tag.
        tag: u64,
        /// The circuit's first hop.
        guard: RelayId,
    },
    /// The guard of the circuit for `tag` could not be reached at all.
    GuardUnreachable {
        /// The worker's index.
        worker: usize,
        /// The isolation tag.
        tag: u64,
        /// The guard that could not be reached.
        guard: RelayId,
    },
    /// Periodic counters and scheduler metrics (once a second; boxed: the histograms are
    /// a few KiB and this is off the data path).
    Stats {
        /// The worker's index.
        worker: usize,
        /// Relay counters.
        stats: RelayStats,
        /// Scheduler metrics.
        sched: Box<kistrel_sched::SchedMetrics>,
        /// The scheduler in use.
        kind: kistrel_sched::SchedulerKind,
        /// Link counters: links per kind, records.
        links: super::link::LinkStats,
    },
}

/// Sends worker events without ever blocking: a full queue drops the event and counts it.
#[derive(Debug)]
pub struct EventSender {
    tx: crossbeam_channel::Sender<WorkerEvent>,
    dropped: u64,
}

impl EventSender {
    /// Wraps the sending half of a bounded queue.
    pub fn new(tx: crossbeam_channel::Sender<WorkerEvent>) -> Self {
        EventSender { tx, dropped: 0 }
    }

    /// Sends, or drops and counts when the queue is full (or the receiver is gone).
    pub fn send(&mut self, ev: WorkerEvent) {
        if self.tx.try_send(ev).is_err() {
            self.dropped += 1;
        }
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
