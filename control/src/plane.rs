//! One turn of the control loop at a given `now`: no clock, no blocking, so the same code
//! runs on the control thread ([`crate::thread`]) and in virtual time next to simulated
//! workers.
//!
//! ```text
//!   turn(now, wall):  every queued WorkerEvent ─► handle_event
//!                       Circuit(ev) ─► ControlCore::handle_event ─► commands ─► owner's queue
//!                       Stats(s)    ─► Publish::worker
//!                     ControlCore::handle_timeout (close deadlines) ─► CloseCircuit
//!                     the state file, when its minute is up
//!                     Publish::control, when the figures changed
//! ```

use std::path::PathBuf;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use kistrel_base::control::CircuitCommand;
use kistrel_base::Instant;
use kistrel_engine::runtime::{Command, WorkerEvent};
use kistrel_pathsel::control::ControlCore;
use kistrel_pathsel::{CbtConfig, Directory, PathConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use tracing::{debug, info, warn};

use crate::publish::{ControlFigures, Publish};
use crate::state::StateSaver;

/// A client's path selection on the control thread: the decision core, the randomness it
/// is given, and where its state is saved.
#[derive(Debug)]
pub struct PathControl {
    core: ControlCore,
    rng: ChaCha12Rng,
    saver: Option<StateSaver>,
    /// Whether the learned timeout was in use at the last build (logged when it starts).
    learned: bool,
}

impl PathControl {
    /// Path selection from `core`, drawing from `rng`; no state file.
    pub fn new(core: ControlCore, rng: ChaCha12Rng) -> Self {
        let learned = core.cbt().is_learned();
        PathControl {
            core,
            rng,
            saver: None,
            learned,
        }
    }

    /// Path selection over `dir` with guards and build times restored from the state file
    /// at `state_file` (saved there every minute and at exit), randomness from the OS.
    pub fn load(
        dir: &Directory,
        path: PathConfig,
        cbt: CbtConfig,
        state_file: impl Into<PathBuf>,
        now: Instant,
    ) -> Self {
        let (state, saver) = StateSaver::load(state_file, now);
        let mut rng = ChaCha12Rng::from_os_rng();
        let core = ControlCore::new(dir, path, cbt, &state, &mut rng);
        PathControl::new(core, rng).with_state_file(saver)
    }

    /// Saves through `saver`.
    #[must_use]
    pub fn with_state_file(mut self, saver: StateSaver) -> Self {
        self.saver = Some(saver);
        self
    }

    /// The decision core.
    pub fn core(&self) -> &ControlCore {
        &self.core
    }

    /// Logs the learned timeouts once they are in use.
    fn note_learning(&mut self) {
        let cbt = self.core.cbt();
        if cbt.is_learned() && !self.learned {
            info!(
                timeout_ms = cbt.timeout().as_millis() as u64,
                close_ms = cbt.close_timeout().as_millis() as u64,
                "learned circuit build timeout in use"
            );
        }
        self.learned = cbt.is_learned();
    }
}

/// The control loop's state between turns. See the module docs.
pub struct ControlPlane {
    events: Receiver<WorkerEvent>,
    /// One queue per worker, by index (a circuit key's `worker`).
    commands: Vec<Sender<Command>>,
    paths: Option<PathControl>,
    publish: Box<dyn Publish>,
    /// The figures as last published, unless `changed`.
    figures: ControlFigures,
    changed: bool,
    /// Commands of the event being handled, reused.
    out: Vec<CircuitCommand>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("workers", &self.commands.len())
            .field("paths", &self.paths)
            .field("figures", &self.figures)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A plane over the workers' queues: `events` from all of them, `commands[i]` to worker
    /// `i`. Without [`PathControl`] (a relay) it only publishes the workers' figures.
    pub fn new(
        events: Receiver<WorkerEvent>,
        commands: Vec<Sender<Command>>,
        publish: Box<dyn Publish>,
    ) -> Self {
        let figures = ControlFigures {
            commands_dropped: vec![0; commands.len()],
            circuits: None,
        };
        ControlPlane {
            events,
            commands,
            paths: None,
            publish,
            figures,
            changed: true,
            out: Vec::new(),
        }
    }

    /// Answers the workers' circuit requests with `paths`.
    #[must_use]
    pub fn with_paths(mut self, paths: PathControl) -> Self {
        self.figures.circuits = Some(paths.core.stats());
        self.paths = Some(paths);
        self.changed = true;
        self
    }

    /// Path selection, if this plane has it.
    pub fn paths(&self) -> Option<&PathControl> {
        self.paths.as_ref()
    }

    /// The control thread's figures.
    pub fn figures(&self) -> &ControlFigures {
        &self.figures
    }

    /// Whether the node can serve: a client once a circuit was built in time; a relay at
    /// once.
    pub fn is_ready(&self) -> bool {
        self.paths
            .as_ref()
            .is_none_or(|p| p.core.stats().circuits_built > 0)
    }

    /// The queue of the workers' events (the control thread waits on it).
    pub(crate) fn events(&self) -> &Receiver<WorkerEvent> {
        &self.events
    }

    /// When a turn has timed work: the earliest close deadline or state save.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let p = self.paths.as_ref()?;
        let save = p.saver.as_ref().map(StateSaver::next_save);
        [p.core.poll_timeout(), save].into_iter().flatten().min()
    }

    /// Handles every queued event, then the timers, at `now` (monotonic, the workers'
    /// clock) and `wall` (guard dates); publishes the figures if they changed.
    pub fn turn(&mut self, now: Instant, wall: SystemTime) {
        while let Ok(ev) = self.events.try_recv() {
            self.handle_event(now, wall, ev);
        }
        if let Some(p) = &mut self.paths {
            p.core.handle_timeout(now, wall, &mut self.out);
            if let Some(saver) = &mut p.saver {
                saver.save_if_due(now, wall, &mut p.core);
            }
        }
        self.send_commands();
        self.publish_figures();
    }

    /// Handles one worker event.
    pub fn handle_event(&mut self, now: Instant, wall: SystemTime, ev: WorkerEvent) {
        match ev {
            WorkerEvent::Stats(stats) => self.publish.worker(&stats),
            WorkerEvent::Circuit(ev) => {
                let Some(p) = &mut self.paths else {
                    debug!(?ev, "circuit event without path selection: ignored");
                    return;
                };
                p.core
                    .handle_event(now, wall, ev, &mut p.rng, &mut self.out);
                p.note_learning();
                self.send_commands();
            }
        }
    }

    /// Sends each command to the worker that owns its circuit; a full queue drops it and
    /// counts it (a dropped `BuildCircuit` is closed at its close deadline, which releases
    /// the worker's request; a dropped `CloseCircuit` leaves a measured circuit open until
    /// it completes or fails).
    fn send_commands(&mut self) {
        for cmd in self.out.drain(..) {
            let worker = cmd.circuit().worker;
            let Some(tx) = self.commands.get(worker) else {
                warn!(
                    worker,
                    ?cmd,
                    "command for a worker that does not exist: dropped"
                );
                continue;
            };
            match tx.try_send(Command::Circuit(cmd)) {
                Ok(()) => {}
                Err(TrySendError::Full(cmd)) => {
                    warn!(worker, ?cmd, "worker's command queue full: command dropped");
                    if let Some(n) = self.figures.commands_dropped.get_mut(worker) {
                        *n += 1;
                        self.changed = true;
                    }
                }
                // The worker is gone; the process is stopping or about to notice.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    fn publish_figures(&mut self) {
        let circuits = self.paths.as_ref().map(|p| p.core.stats());
        if circuits != self.figures.circuits {
            self.figures.circuits = circuits;
            self.changed = true;
        }
        if std::mem::take(&mut self.changed) {
            self.publish.control(&self.figures);
        }
    }

    /// The last turn: the state file saved at `wall`; the final figures.
    pub fn finish(mut self, now: Instant, wall: SystemTime) -> ControlFigures {
        self.turn(now, wall);
        if let Some(p) = &mut self.paths {
            if let Some(saver) = &p.saver {
                saver.save(wall, &mut p.core);
            }
        }
        self.figures
    }
}

#[cfg(test)]
mod tests;
