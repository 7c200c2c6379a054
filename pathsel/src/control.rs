//! The control thread's decision core: path selection, guards and the learned circuit build
//! timeout, driven by the workers' circuit messages (`kistrel_base::control`).
//!
//! ```text
//!   CircuitEvent ──handle_event(now, wall, ev)──► ControlCore ──► CircuitCommand (to `out`)
//!   the clock    ──handle_timeout(now, wall)───►  PathSelector, GuardSet, CbtEstimator,
//!                ◄─poll_timeout(): the earliest   one Pending per circuit key
//!                  close deadline
//! ```
//!
//! Timeouts as proposal 151 and Tor's `circuitstats.c` have them: the worker stops using a
//! circuit at its `deadline` (the learned timeout, the 80% quantile) and reports
//! `CircuitTimedOut`, which counts for the estimator's network-change check; the circuit is
//! kept and measured. Built before the close deadline (the 99% quantile), its real build
//! time enters the fit; otherwise this core sends `CloseCircuit` at the close deadline and
//! records it as abandoned. The thread around the core (queues, clock, state file, metrics)
//! is the `kistrel-control` crate; this module never reads a clock.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use kistrel_base::control::{CircuitCommand, CircuitEvent, CircuitKey, ExitTarget};
use kistrel_base::Instant;
use rand::Rng;

use crate::cbt::{CbtConfig, CbtEstimator};
use crate::diagnose::{explain, Target};
use crate::dir::Directory;
use crate::guard::{GuardError, GuardSet, GuardTicket};
use crate::select::{PathConfig, PathError, PathSelector};
use crate::state::State;

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
    /// Requests answered with a path.
    pub circuits_launched: u64,
    /// Requests answered with `NoPath` (no guard or no path).
    pub path_failures: u64,
    /// Circuits built before their deadline.
    pub circuits_built: u64,
    /// Circuits past their deadline (reported `CircuitTimedOut`).
    pub circuits_timed_out: u64,
    /// Circuits past their deadline that completed before the close deadline: measured.
    pub circuits_measured: u64,
    /// Circuits that failed or whose guard was unreachable.
    pub circuits_failed: u64,
    /// Circuits given up at the close deadline (`CloseCircuit` sent).
    pub circuits_closed: u64,
    /// Closes the workers confirmed (`CircuitClosed`).
    pub closes_confirmed: u64,
    /// Events for circuits the core does not track (late, duplicate, or unknown).
    pub unknown_circuit_events: u64,
}

/// A circuit between the answer to its request and its outcome.
#[derive(Debug)]
struct Pending {
    /// When the core stops waiting and closes it (the close quantile after the request).
    close_deadline: Instant,
    /// The guard's outcome report, when entry guards are in use.
    ticket: Option<GuardTicket>,
    /// The worker reported it past its deadline (the estimator has counted the timeout).
    timed_out: bool,
}

/// The control thread's state machine: path selection, guards, and the CBT estimator.
#[derive(Debug)]
pub struct ControlCore {
    selector: PathSelector,
    guards: GuardSet,
    cbt: CbtEstimator,
    cfg: PathConfig,
    pending: HashMap<CircuitKey, Pending>,
    stats: ControlStats,
    no_path_log: NoPathLog,
}

/// When to warn about requests that got no path: at once, then after 1 s, 2 s, 4 s, ... at
/// most every [`NoPathLog::MAX_INTERVAL`], with the count of failures not logged in between;
/// a request that gets a path starts over. A client asking every second for a path that
/// cannot exist logs a dozen lines an hour, not 3600.
#[derive(Debug, Default)]
struct NoPathLog {
    /// The next failure at or after this is logged (`None`: the next one).
    next: Option<Instant>,
    /// The wait after the next logged failure.
    interval: Duration,
    /// Failures since the last logged one.
    suppressed: u64,
}

impl NoPathLog {
    const FIRST_INTERVAL: Duration = Duration::from_secs(1);
    const MAX_INTERVAL: Duration = Duration::from_secs(300);

    /// Whether a failure at `now` is logged; if so, the failures suppressed before it.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        self.interval = self.interval.max(Self::FIRST_INTERVAL);
        self.next = Some(now.saturating_add(self.interval));
        self.interval = (self.interval * 2).min(Self::MAX_INTERVAL);
        Some(suppressed)
    }

    fn reset(&mut self) {
        *self = NoPathLog::default();
    }
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
            stats: ControlStats::default(),
            no_path_log: NoPathLog::default(),
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

    /// Circuits answered and not yet settled.
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
        now: Instant,
        wall: SystemTime,
        event: CircuitEvent,
        rng: &mut R,
        out: &mut Vec<CircuitCommand>,
    ) {
        match event {
            CircuitEvent::NeedCircuit { circuit, target } => {
                if self.pending.contains_key(&circuit) {
                    // A key is asked for once; a repeat must not start a second build.
                    self.stats.unknown_circuit_events += 1;
                } else {
                    out.push(self.answer(now, wall, circuit, target, rng));
                }
            }
            CircuitEvent::CircuitBuilt {
                circuit,
                build_time,
            } => {
                if let Some(p) = self.take(circuit) {
                    let ms = u32::try_from(build_time.as_millis()).unwrap_or(u32::MAX);
                    if p.timed_out {
                        self.cbt.add_measured(ms);
                        self.stats.circuits_measured += 1;
                    } else {
                        self.cbt.add_build(ms);
                        self.stats.circuits_built += 1;
                    }
                    if let Some(t) = p.ticket {
                        t.succeeded();
                    }
                }
            }
            CircuitEvent::CircuitTimedOut { circuit } => self.timed_out(circuit),
            CircuitEvent::CircuitFailed { circuit, .. } => {
                if let Some(p) = self.take(circuit) {
                    self.stats.circuits_failed += 1;
                    if let Some(t) = p.ticket {
                        t.failed();
                    }
                }
            }
            CircuitEvent::GuardUnreachable { circuit } => {
                if let Some(p) = self.take(circuit) {
                    self.stats.circuits_failed += 1;
                    if let Some(t) = p.ticket {
                        t.unreachable();
                    }
                }
            }
            CircuitEvent::CircuitClosed { circuit } => {
                // The answer to our CloseCircuit; the circuit was settled when it was sent.
                self.stats.closes_confirmed += 1;
                self.pending.remove(&circuit);
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

    /// The worker stopped using `circuit` at its deadline and keeps measuring it.
    fn timed_out(&mut self, circuit: CircuitKey) {
        let Some(p) = self.pending.get_mut(&circuit) else {
            self.stats.unknown_circuit_events += 1;
            return;
        };
        if !p.timed_out {
            p.timed_out = true;
            self.cbt.note_timeout();
            self.stats.circuits_timed_out += 1;
        }
    }

    /// `BuildCircuit` with a path for `target`, or `NoPath`.
    fn answer<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        wall: SystemTime,
        circuit: CircuitKey,
        target: Option<ExitTarget>,
        rng: &mut R,
    ) -> CircuitCommand {
        match self.launch(now, wall, circuit, target, rng) {
            Ok(cmd) => {
                self.no_path_log.reset();
                cmd
            }
            Err(e) => {
                self.stats.path_failures += 1;
                if let Some(suppressed) = self.no_path_log.due(now) {
                    // The cause, not just the step that failed (see `diagnose`).
                    let cause = explain(&self.selector, target, None)
                        .map_or_else(|| e.to_string(), |c| c.to_string());
                    tracing::warn!(
                        %circuit,
                        target = %Target(target),
                        failures_since_last_warning = suppressed,
                        "no path for a new circuit: {cause}"
                    );
                }
                CircuitCommand::NoPath { circuit }
            }
        }
    }

    fn launch<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        wall: SystemTime,
        circuit: CircuitKey,
        target: Option<ExitTarget>,
        rng: &mut R,
    ) -> Result<CircuitCommand, ControlError> {
        let (guard, ticket) = if self.cfg.use_entry_guards {
            let (g, t) = self.guards.pick(&self.selector, wall, rng)?;
            (Some(g), Some(t))
        } else {
            (None, None)
        };
        // A path error drops the ticket: reported as abandoned, not as a guard failure.
        let path = self.selector.select_path(rng, target, guard)?;
        let dir = self.selector.directory();
        let path = [path.guard, path.middle, path.exit]
            .into_iter()
            .filter_map(|i| dir.relay(i).map(|r| r.hop_spec()))
            .collect();
        self.pending.insert(
            circuit,
            Pending {
                close_deadline: now + self.cbt.close_timeout(),
                ticket,
                timed_out: false,
            },
        );
        self.stats.circuits_launched += 1;
        Ok(CircuitCommand::BuildCircuit {
            circuit,
            path,
            deadline: now + self.cbt.timeout(),
        })
    }

    /// Gives up on circuits whose close deadline passed: each is recorded as abandoned (a
    /// timeout too, if its worker has not said so: it is past its deadline all the same),
    /// its guard ticket fails, and its worker is told to close it.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        wall: SystemTime,
        out: &mut Vec<CircuitCommand>,
    ) {
        let mut expired: Vec<CircuitKey> = self
            .pending
            .iter()
            .filter(|(_, p)| p.close_deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        expired.sort_unstable();
        for circuit in expired {
            let Some(p) = self.pending.remove(&circuit) else {
                continue;
            };
            if !p.timed_out {
                self.cbt.note_timeout();
            }
            self.cbt.add_abandoned();
            if let Some(t) = p.ticket {
                t.failed();
            }
            self.stats.circuits_closed += 1;
            out.push(CircuitCommand::CloseCircuit { circuit });
        }
        self.guards.process_reports(wall);
    }

    /// The earliest close deadline among pending circuits, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.close_deadline).min()
    }
}

#[cfg(test)]
mod tests;
