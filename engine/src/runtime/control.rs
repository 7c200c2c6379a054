//! The queues between a worker and the control thread: the circuit messages of
//! `kistrel_base::control` (the same types path selection's decision core handles), plus
//! what only a process's own threads say to each other (the periodic figures, `Shutdown`),
//! and the never-blocking sender of worker events.

use kistrel_sched::{SchedMetrics, SchedulerKind};

use crate::relay::RelayStats;

pub use kistrel_base::control::{CircuitCommand, CircuitEvent, CircuitKey, ExitTarget};

/// What the control thread sends a worker.
#[derive(Clone, Debug)]
pub enum Command {
    /// About one of the worker's circuits (`circuit.worker` is this worker).
    Circuit(CircuitCommand),
    /// Stop: DESTROY every circuit, flush, close, return.
    Shutdown,
}

/// What a worker sends the control thread.
#[derive(Clone, Debug)]
pub enum WorkerEvent {
    /// About one of the worker's circuits.
    Circuit(CircuitEvent),
    /// The worker's figures, once a second (boxed: the histograms are a few KiB and this is
    /// off the data path).
    Stats(Box<WorkerStats>),
}

/// A worker's periodic figures.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    /// The worker's index.
    pub worker: usize,
    /// Relay counters.
    pub relay: RelayStats,
    /// Scheduler metrics.
    pub sched: SchedMetrics,
    /// The scheduler in use.
    pub scheduler: SchedulerKind,
    /// Events this worker dropped so far because the queue was full.
    pub events_dropped: u64,
    /// Link counters: links opened per kind, TLS records.
    pub links: super::link::LinkStats,
    /// The I/O driver's counters.
    pub io: crate::driver::DriverStats,
}

/// Sends worker events without ever blocking: a full queue drops the event and counts it
/// (the count travels in the next [`WorkerStats`] that gets through).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let mut events = EventSender::new(tx);
        let closed = |seq| {
            WorkerEvent::Circuit(CircuitEvent::CircuitClosed {
                circuit: CircuitKey { worker: 0, seq },
            })
        };
        for seq in 0..5 {
            events.send(closed(seq));
        }
        assert_eq!(events.dropped(), 3);
        let got: Vec<u64> = rx
            .try_iter()
            .map(|ev| match ev {
                WorkerEvent::Circuit(ev) => ev.circuit().seq,
                WorkerEvent::Stats(_) => u64::MAX,
            })
            .collect();
        assert_eq!(got, vec![0, 1], "the first two kept, in order");
        drop(rx);
        events.send(closed(5));
        assert_eq!(events.dropped(), 4, "no receiver: dropped and counted");
    }
}
