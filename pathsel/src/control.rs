//! The control thread's pure core and its bounded queues.
//!
//! ```text
//!  worker ──EventSender::try_send──► [bounded queue] ──► ControlCore::handle_event(now, ev)
//!     ▲   (full: event dropped + counted, never blocks)          │ owns PathSelector,
//!     └──────────── [bounded queue] ◄── CommandSender::try_send ─┘ GuardSet, CbtEstimator
//! ```
//!
//! The lead's thread loop: drain events into `handle_event`, call `handle_timeout` when
//! `poll_timeout` says, send the commands, save [`ControlCore::state`] on a timer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rand::Rng;

use crate::cbt::{CbtConfig, CbtEstimator};
use crate::dir::Directory;
use crate::guard::{GuardError, GuardSet, GuardTicket};
use crate::select::{ExitTarget, Path, PathConfig, PathError, PathSelector};
use crate::state::State;

/// A circuit being built: the worker that builds it and the control thread's id for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CircuitKey {
    /// Worker (core) index.
    pub worker: u16,
    /// Unique per control core.
    pub id: u64,
}

/// What workers tell the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A worker needs a circuit (for a stream to `target`, if known).
    NeedCircuit {
        /// The asking worker.
        worker: u16,
        /// Where its streams go.
        target: Option<ExitTarget>,
    },
    /// The circuit's last hop answered after `build_ms` ms.
    CircuitBuilt {
        /// Which circuit.
        circuit: CircuitKey,
        /// First CREATE to last CREATED/EXTENDED, ms.
        build_ms: u32,
    },
    /// The circuit failed at `hop` (0 = guard).
    CircuitFailed {
        /// Which circuit.
        circuit: CircuitKey,
        /// Failing hop, 0-based.
        hop: u8,
    },
    /// The circuit passed its close deadline unbuilt (while the network showed life).
    CircuitTimedOut {
        /// Which circuit.
        circuit: CircuitKey,
    },
    /// The guard could not be reached.
    GuardUnreachable {
        /// Which circuit.
        circuit: CircuitKey,
    },
}

/// What the control thread tells a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Build this path. Past `deadline` the circuit counts as timed out (not used for
    /// streams); past `close_deadline` the worker gives up and reports `CircuitTimedOut`.
    BuildCircuit {
        /// The key for the worker's later events.
        circuit: CircuitKey,
        /// The relays.
        path: Path,
        /// Monotonic time (same clock as `now`) of the learned timeout.
        deadline: Duration,
        /// Monotonic time of the close timeout.
        close_deadline: Duration,
    },
    /// Tear the circuit down: the control thread stopped waiting for it.
    CloseCircuit {
        /// Which circuit.
        circuit: CircuitKey,
    },
}

/// Why a circuit request got no path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No guard.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// No path.
    #[error(transparent)]
    Path(#[from] PathError),
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlStats {
    /// Circuits requested and sent out.
    pub circuits_launched: u64,
    /// Requests with no path (or guard).
    pub path_failures: u64,
    /// Events for circuits the core no longer tracks (late or duplicate).
    pub unknown_circuit_events: u64,
    /// Circuits given up on by `handle_timeout`.
    pub circuits_expired: u64,
}

#[derive(Debug)]
struct Pending {
    close_deadline: Duration,
    ticket: Option<GuardTicket>,
}

/// The control thread's state machine: path selection, guards, and the CBT estimator.
#[derive(Debug)]
pub struct ControlCore {
    selector: PathSelector,
    guards: GuardSet,
    cbt: CbtEstimator,
    cfg: PathConfig,
    pending: HashMap<CircuitKey, Pending>,
    next_id: u64,
    stats: ControlStats,
}

impl ControlCore {
    /// A core over `dir`, restoring guards and build times from `state` (`rng` shuffles the
    /// restored build times, as Tor does).
    pub fn new<R: Rng + ?Sized>(
        dir: &Directory,
        path_cfg: PathConfig,
        cbt_cfg: CbtConfig,
        state: &State,
        rng: &mut R,
    ) -> Self {
        let cbt = match &state.cbt {
            Some(s) => CbtEstimator::from_state(s, cbt_cfg, rng),
            None => CbtEstimator::new(cbt_cfg),
        };
        ControlCore {
            selector: PathSelector::new(dir, path_cfg.clone()),
            guards: GuardSet::from_state(path_cfg.clone(), &state.guards),
            cbt,
            cfg: path_cfg,
            pending: HashMap::new(),
            next_id: 0,
            stats: ControlStats::default(),
        }
    }

    /// Swap in a new directory (guards are kept by identity).
    pub fn set_directory(&mut self, dir: &Directory) {
        self.selector = PathSelector::new(dir, self.cfg.clone());
    }

    /// The estimator.
    pub fn cbt(&self) -> &CbtEstimator {
        &self.cbt
    }

    /// The guards.
    pub fn guards(&self) -> &GuardSet {
        &self.guards
    }

    /// The selector.
    pub fn selector(&self) -> &PathSelector {
        &self.selector
    }

    /// Counters.
    pub fn stats(&self) -> ControlStats {
        self.stats
    }

    /// Circuits being built.
    pub fn n_pending(&self) -> usize {
        self.pending.len()
    }

    /// What to persist now.
    pub fn state(&mut self, wall: SystemTime) -> State {
        self.guards.process_reports(wall);
        State {
            guards: self.guards.state(),
            cbt: Some(self.cbt.state(crate::cbt::BIN_WIDTH_MS)),
        }
    }

    /// Handle one worker event at monotonic `now` and wall-clock `wall` (guard dates);
    /// commands go to `out`.
    pub fn handle_event<R: Rng + ?Sized>(
        &mut self,
        now: Duration,
        wall: SystemTime,
        event: Event,
        rng: &mut R,
        out: &mut Vec<Command>,
    ) {
        match event {
            Event::NeedCircuit { worker, target } => {
                match self.launch(now, wall, worker, target, rng) {
                    Ok(cmd) => out.push(cmd),
                    Err(e) => {
                        self.stats.path_failures += 1;
                        tracing::warn!(error = %e, "no path for a new circuit");
                    }
                }
            }
            Event::CircuitBuilt { circuit, build_ms } => {
                if let Some(p) = self.take(circuit) {
                    self.cbt.add_build(build_ms);
                    if let Some(t) = p.ticket {
                        t.succeeded();
                    }
                }
            }
            Event::CircuitFailed { circuit, .. } => {
                if let Some(t) = self.take(circuit).and_then(|p| p.ticket) {
                    t.failed();
                }
            }
            Event::CircuitTimedOut { circuit } => {
                if let Some(p) = self.take(circuit) {
                    self.cbt.add_timeout();
                    if let Some(t) = p.ticket {
                        t.failed();
                    }
                }
            }
            Event::GuardUnreachable { circuit } => {
                if let Some(t) = self.take(circuit).and_then(|p| p.ticket) {
                    t.unreachable();
                }
            }
        }
        self.guards.process_reports(wall);
    }

    fn take(&mut self, circuit: CircuitKey) -> Option<Pending> {
        let p = self.pending.remove(&circuit);
        if p.is_none() {
            self.stats.unknown_circuit_events += 1;
        }
        p
    }

    fn launch<R: Rng + ?Sized>(
        &mut self,
        now: Duration,
        wall: SystemTime,
        worker: u16,
        target: Option<ExitTarget>,
        rng: &mut R,
    ) -> Result<Command, ControlError> {
        let (guard, ticket) = if self.cfg.use_entry_guards {
            let (g, t) = self.guards.pick(&self.selector, wall, rng)?;
            (Some(g), Some(t))
        } else {
            (None, None)
        };
        // A path error drops the ticket: reported as abandoned, not as a guard failure.
        let path = self.selector.select_path(rng, target, guard)?;
        let circuit = CircuitKey {
            worker,
            id: self.next_id,
        };
        self.next_id += 1;
        let deadline = now + self.cbt.timeout();
        let close_deadline = now + self.cbt.close_timeout();
        self.pending.insert(
            circuit,
            Pending {
                close_deadline,
                ticket,
            },
        );
        self.stats.circuits_launched += 1;
        Ok(Command::BuildCircuit {
            circuit,
            path,
            deadline,
            close_deadline,
        })
    }

    /// Give up on circuits whose close deadline passed without any event: their tickets are
    /// dropped (abandoned, not failures: the worker never said what happened) and the
    /// workers are told to close them.
    pub fn handle_timeout(&mut self, now: Duration, wall: SystemTime, out: &mut Vec<Command>) {
        let expired: Vec<CircuitKey> = self
            .pending
            .iter()
            .filter(|(_, p)| p.close_deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for circuit in expired {
            self.pending.remove(&circuit);
            self.stats.circuits_expired += 1;
            out.push(Command::CloseCircuit { circuit });
        }
        self.guards.process_reports(wall);
    }

    /// The earliest close deadline among pending circuits, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.pending.values().map(|p| p.close_deadline).min()
    }
}

/// Worker side of a bounded event queue. Cloneable; `try_send` never blocks.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: Sender<Event>,
    dropped: Arc<AtomicU64>,
}

/// Control side of the event queue.
#[derive(Debug)]
pub struct EventReceiver {
    rx: Receiver<Event>,
    dropped: Arc<AtomicU64>,
}

/// A bounded event queue of `capacity` events (at least 1).
pub fn event_queue(capacity: usize) -> (EventSender, EventReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        EventSender {
            tx,
            dropped: dropped.clone(),
        },
        EventReceiver { rx, dropped },
    )
}

impl EventSender {
    /// Queue `event`; when the queue is full (or the control thread is gone) drop it, count
    /// it, and return false. Never blocks.
    pub fn try_send(&self, event: Event) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Events dropped so far by all senders of this queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl EventReceiver {
    /// The next queued event, without waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Wait up to `timeout` for an event (for the control thread's loop).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Control side of a worker's bounded command queue.
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: Sender<Command>,
    dropped: Arc<AtomicU64>,
}

/// Worker side of the command queue.
#[derive(Debug)]
pub struct CommandReceiver {
    rx: Receiver<Command>,
}

/// A bounded command queue of `capacity` commands (at least 1), one per worker.
pub fn command_queue(capacity: usize) -> (CommandSender, CommandReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    (
        CommandSender {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        CommandReceiver { rx },
    )
}

impl CommandSender {
    /// Queue `cmd`; when full, drop and count it (the circuit then expires in
    /// `handle_timeout`). Never blocks.
    pub fn try_send(&self, cmd: Command) -> bool {
        match self.tx.try_send(cmd) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Commands dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl CommandReceiver {
    /// The next command, without waiting (polled once per worker loop iteration).
    pub fn try_recv(&self) -> Option<Command> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests;
