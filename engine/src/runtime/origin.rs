//! Circuit origin bookkeeping of a client worker, sans-IO: the circuits it asked the control
//! thread for, builds, measures and uses, which of them serves which SOCKS isolation key,
//! and the SOCKS requests waiting for a circuit.
//!
//! A tag stands for one isolation key (SOCKS username/password, as Tor isolates streams);
//! tag 0 is "no credentials", and a client always keeps one circuit for it built or
//! building, so the first request finds one. For a tag with no circuit the worker hands out
//! a new [`CircuitKey`] and asks (`NeedCircuit`, with the waiting stream's target); every
//! later message about that circuit, both ways, carries the key.
//!
//! ```text
//!          NeedCircuit{K}        BuildCircuit{K}            relay: built
//!  (none) ───────────────► Asked ─────────────► Building ───────────────► Built (the tag's)
//!                            │ NoPath{K}:         │ deadline: CircuitTimedOut{K}, the tag
//!                            ▼ requests fail      ▼ asks anew
//!                          (gone)              Measuring ──relay: built──► CircuitBuilt{K}
//!                                                 │                        (real time), close
//!  CloseCircuit{K} on Asked, Building or Measuring: DESTROY ──relay: freed──► CircuitClosed{K}
//! ```
//!
//! A build past its deadline is not abandoned (proposal 151): no stream will use it, but it
//! keeps building so the control thread's estimator learns its real time; the control
//! thread closes it at its close timeout (`CloseCircuit`), or the worker does once it is
//! built (Tor closes its measurement circuits the same way).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tracing::{debug, info};

use crate::client::{CircuitFailure, HopSpec};
use crate::relay::{ApiError, CircHandle, Relay, StreamHandle};
use crate::time::Instant;

use super::control::{CircuitCommand, CircuitEvent, CircuitKey, ExitTarget};

#[cfg(test)]
mod tests;

/// Builds that fail in a row before the waiting requests are failed.
const MAX_FAILURES: u32 = 3;
/// How long to wait before asking again after the control thread found no path.
const NO_PATH_BACKOFF: Duration = Duration::from_secs(1);

/// A SOCKS username/password pair, or none.
pub(super) type IsolationKey = Option<(Vec<u8>, Vec<u8>)>;

/// The relay's origin API, as origins use it. `Relay` implements it; the tests use a fake.
pub(super) trait CircuitPort {
    /// Starts building a circuit along `path`.
    fn build_circuit(&mut self, now: Instant, path: Vec<HopSpec>) -> Result<CircHandle, ApiError>;
    /// Opens a stream to `host:port` on built circuit `circ`.
    fn open_stream(
        &mut self,
        now: Instant,
        circ: CircHandle,
        host: &str,
        port: u16,
    ) -> Result<StreamHandle, ApiError>;
    /// Closes `circ` (DESTROY); the relay reports it closed.
    fn close_circuit(&mut self, now: Instant, circ: CircHandle);
}

impl CircuitPort for Relay {
    fn build_circuit(&mut self, now: Instant, path: Vec<HopSpec>) -> Result<CircHandle, ApiError> {
        Relay::build_circuit(self, now, path)
    }

    fn open_stream(
        &mut self,
        now: Instant,
        circ: CircHandle,
        host: &str,
        port: u16,
    ) -> Result<StreamHandle, ApiError> {
        Relay::open_stream(self, now, circ, host, port)
    }

    fn close_circuit(&mut self, now: Instant, circ: CircHandle) {
        self.close_circuit_requested(now, circ);
    }
}

/// What the worker must do for the origin side.
#[derive(Clone, Debug)]
pub(super) enum OriginAction<C> {
    /// Send this to the control thread.
    Event(CircuitEvent),
    /// A stream for SOCKS client `conn` was opened.
    StreamOpened { conn: C, stream: StreamHandle },
    /// No stream can be had for SOCKS client `conn`: fail it.
    RequestFailed { conn: C },
}

/// Where one circuit of this worker is (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `NeedCircuit` sent; waiting for the control thread's answer.
    Asked,
    /// Building the control thread's path; the tag's circuit once built.
    Building { circ: CircHandle, deadline: Instant },
    /// Past its deadline: no stream will use it; kept so its build time is measured.
    Measuring { circ: CircHandle },
    /// Built: carries the tag's streams.
    Built { circ: CircHandle },
    /// Being closed by this worker; `report`: the control thread asked and waits for
    /// `CircuitClosed`.
    Closing { circ: CircHandle, report: bool },
}

#[derive(Debug)]
struct Launch {
    tag: u64,
    phase: Phase,
}

#[derive(Debug, Default)]
struct TagState {
    /// The tag's built circuit.
    built: Option<CircuitKey>,
    /// The tag's circuit asked for or building (one at a time).
    pending: Option<CircuitKey>,
    failures: u32,
    /// After "no path", wait before asking again (the directory will not change by itself).
    retry_after: Option<Instant>,
}

#[derive(Debug)]
struct Request<C> {
    conn: C,
    tag: u64,
    host: String,
    port: u16,
}

/// The origin side of one worker. See the module docs.
#[derive(Debug)]
pub(super) struct Origins<C> {
    /// The worker's index, the first half of its circuit keys.
    worker: usize,
    /// A client keeps a circuit for tag 0; a relay builds none.
    client: bool,
    /// The second half of the next circuit key.
    next_seq: u64,
    tags: HashMap<IsolationKey, u64>,
    states: BTreeMap<u64, TagState>,
    /// Every circuit from its request until the relay frees it.
    /// INVARIANT: `by_circ` maps exactly the circuits of the launches not in `Asked`.
    launches: BTreeMap<CircuitKey, Launch>,
    by_circ: HashMap<CircHandle, CircuitKey>,
    requests: VecDeque<Request<C>>,
    actions: VecDeque<OriginAction<C>>,
}

impl<C: Copy + Eq> Origins<C> {
    pub(super) fn new(worker: usize, client: bool) -> Self {
        let mut tags = HashMap::new();
        tags.insert(None, 0);
        Origins {
            worker,
            client,
            next_seq: 0,
            tags,
            states: BTreeMap::new(),
            launches: BTreeMap::new(),
            by_circ: HashMap::new(),
            requests: VecDeque::new(),
            actions: VecDeque::new(),
        }
    }

    /// The next thing the worker must do.
    #[must_use]
    pub(super) fn poll_action(&mut self) -> Option<OriginAction<C>> {
        self.actions.pop_front()
    }

    /// The earliest build deadline, when [`Origins::handle_timeout`] has work.
    #[must_use]
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.launches
            .values()
            .filter_map(|l| match l.phase {
                Phase::Building { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// SOCKS client `conn` asks for a stream to `host:port`; served by
    /// [`Origins::serve_requests`].
    pub(super) fn request(&mut self, conn: C, isolation: IsolationKey, host: String, port: u16) {
        let next = self.tags.len() as u64;
        let tag = *self.tags.entry(isolation).or_insert(next);
        self.requests.push_back(Request {
            conn,
            tag,
            host,
            port,
        });
    }

    /// SOCKS client `conn` is gone.
    pub(super) fn forget_conn(&mut self, conn: C) {
        self.requests.retain(|r| r.conn != conn);
    }

    fn event(&mut self, ev: CircuitEvent) {
        self.actions.push_back(OriginAction::Event(ev));
    }

    /// Asks for a circuit for `tag` (for streams to `target`) unless one is on its way.
    fn ask_for_circuit(&mut self, now: Instant, tag: u64, target: Option<ExitTarget>) {
        let state = self.states.entry(tag).or_default();
        if state.pending.is_some() || state.retry_after.is_some_and(|t| now < t) {
            return;
        }
        let circuit = CircuitKey {
            worker: self.worker,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        state.pending = Some(circuit);
        let phase = Phase::Asked;
        self.launches.insert(circuit, Launch { tag, phase });
        self.event(CircuitEvent::NeedCircuit { circuit, target });
    }

    /// The built circuit of `tag`, if any.
    fn built_circ(&self, tag: u64) -> Option<CircHandle> {
        let key = self.states.get(&tag)?.built?;
        match self.launches.get(&key)?.phase {
            Phase::Built { circ } => Some(circ),
            _ => None,
        }
    }

    /// Opens streams for the requests whose circuit is built; asks for circuits otherwise.
    pub(super) fn serve_requests(&mut self, now: Instant, port: &mut impl CircuitPort) {
        let mut waiting = VecDeque::new();
        while let Some(req) = self.requests.pop_front() {
            let Some(circ) = self.built_circ(req.tag) else {
                let target = ExitTarget::from_host(&req.host, req.port);
                self.ask_for_circuit(now, req.tag, Some(target));
                waiting.push_back(req);
                continue;
            };
            let conn = req.conn;
            match port.open_stream(now, circ, &req.host, req.port) {
                Ok(stream) => self
                    .actions
                    .push_back(OriginAction::StreamOpened { conn, stream }),
                Err(e) => {
                    debug!(error = %e, "cannot open stream");
                    self.actions.push_back(OriginAction::RequestFailed { conn });
                }
            }
        }
        self.requests = waiting;
    }

    /// A command of the control thread about one of this worker's circuits.
    pub(super) fn handle_command(
        &mut self,
        now: Instant,
        cmd: CircuitCommand,
        port: &mut impl CircuitPort,
    ) {
        match cmd {
            CircuitCommand::BuildCircuit {
                circuit,
                path,
                deadline,
            } => self.handle_build(now, circuit, path, deadline, port),
            CircuitCommand::NoPath { circuit } => {
                // Only a request still waiting for its answer can be refused.
                let asked = self
                    .launches
                    .get(&circuit)
                    .filter(|l| l.phase == Phase::Asked);
                if let Some(tag) = asked.map(|l| l.tag) {
                    self.launches.remove(&circuit);
                    self.no_path(now, tag, circuit);
                }
            }
            CircuitCommand::CloseCircuit { circuit } => self.handle_close(now, circuit, port),
        }
    }

    /// The answer to `NeedCircuit`: build along `path` until `deadline`.
    fn handle_build(
        &mut self,
        now: Instant,
        circuit: CircuitKey,
        path: Vec<HopSpec>,
        deadline: Instant,
        port: &mut impl CircuitPort,
    ) {
        let Some(launch) = self.launches.get_mut(&circuit) else {
            debug!(%circuit, "path for a circuit no longer asked for");
            return;
        };
        if launch.phase != Phase::Asked {
            return; // A duplicate answer.
        }
        match port.build_circuit(now, path) {
            Ok(circ) => {
                launch.phase = Phase::Building { circ, deadline };
                self.by_circ.insert(circ, circuit);
            }
            Err(e) => {
                debug!(%circuit, error = %e, "cannot build the path");
                let tag = launch.tag;
                self.event(CircuitEvent::CircuitFailed { circuit, hop: None });
                self.launches.remove(&circuit);
                self.no_path(now, tag, circuit);
            }
        }
    }

    /// No circuit can be had for `tag` (request `circuit` is gone): fail its waiting
    /// requests and wait before asking again.
    fn no_path(&mut self, now: Instant, tag: u64, circuit: CircuitKey) {
        if let Some(state) = self.states.get_mut(&tag) {
            state.pending.take_if(|k| *k == circuit);
            state.retry_after = Some(now + NO_PATH_BACKOFF);
        }
        let (failed, kept): (Vec<_>, Vec<_>) = self.requests.drain(..).partition(|r| r.tag == tag);
        self.requests = kept.into();
        for req in failed {
            let conn = req.conn;
            self.actions.push_back(OriginAction::RequestFailed { conn });
        }
    }

    /// The control thread stopped waiting for `circuit`: close it (DESTROY); the relay's
    /// report of it closed completes the close. A built circuit carries streams and stays
    /// (its `CircuitBuilt` was lost on the way, the close crossed it).
    fn handle_close(&mut self, now: Instant, circuit: CircuitKey, port: &mut impl CircuitPort) {
        let Some(launch) = self.launches.get_mut(&circuit) else {
            debug!(%circuit, "close for a circuit already gone");
            return;
        };
        let tag = launch.tag;
        match launch.phase {
            Phase::Asked => {
                self.launches.remove(&circuit);
                self.event(CircuitEvent::CircuitClosed { circuit });
            }
            Phase::Building { circ, .. } | Phase::Measuring { circ } => {
                info!(%circuit, "closing circuit: the control thread gave up on it");
                launch.phase = Phase::Closing { circ, report: true };
                port.close_circuit(now, circ);
            }
            Phase::Built { .. } | Phase::Closing { .. } => {
                debug!(%circuit, "close for a built or closing circuit: nothing to do");
                return;
            }
        }
        if let Some(state) = self.states.get_mut(&tag) {
            state.pending.take_if(|k| *k == circuit);
        }
    }

    /// A circuit finished building in `elapsed`.
    pub(super) fn handle_built(
        &mut self,
        now: Instant,
        circ: CircHandle,
        elapsed: Duration,
        port: &mut impl CircuitPort,
    ) {
        let Some(&circuit) = self.by_circ.get(&circ) else {
            return;
        };
        let Some(launch) = self.launches.get_mut(&circuit) else {
            return;
        };
        let build_time = elapsed;
        match launch.phase {
            Phase::Building { .. } => {
                launch.phase = Phase::Built { circ };
                let state = self.states.entry(launch.tag).or_default();
                state.pending.take_if(|k| *k == circuit);
                state.built = Some(circuit);
                state.failures = 0;
                let build_ms = elapsed.as_millis() as u64;
                let build_us = elapsed.as_micros() as u64;
                info!(%circuit, tag = launch.tag, build_ms, build_us, "circuit built");
                self.event(CircuitEvent::CircuitBuilt {
                    circuit,
                    build_time,
                });
                self.serve_requests(now, port);
            }
            Phase::Measuring { .. } => {
                let build_ms = elapsed.as_millis() as u64;
                info!(%circuit, build_ms, "circuit built past its deadline: measured, closed");
                launch.phase = Phase::Closing {
                    circ,
                    report: false,
                };
                self.event(CircuitEvent::CircuitBuilt {
                    circuit,
                    build_time,
                });
                port.close_circuit(now, circ);
            }
            Phase::Asked | Phase::Built { .. } | Phase::Closing { .. } => {}
        }
    }

    /// A circuit closed (while building: it failed at hop `hops_done`).
    pub(super) fn handle_closed(
        &mut self,
        now: Instant,
        circ: CircHandle,
        why: CircuitFailure,
        hops_done: usize,
        port: &mut impl CircuitPort,
    ) {
        let Some(circuit) = self.by_circ.remove(&circ) else {
            return;
        };
        let Some(Launch { tag, phase }) = self.launches.remove(&circuit) else {
            return;
        };
        match phase {
            Phase::Built { .. } => {
                info!(%circuit, tag, ?why, "circuit closed");
                if let Some(state) = self.states.get_mut(&tag) {
                    state.built.take_if(|k| *k == circuit);
                }
            }
            Phase::Closing { report, .. } => {
                if report {
                    self.event(CircuitEvent::CircuitClosed { circuit });
                }
            }
            Phase::Measuring { .. } => {
                info!(%circuit, ?why, "circuit failed while measured");
                self.event(failure_event(circuit, why, hops_done));
            }
            Phase::Building { .. } => {
                return self.build_failed(now, tag, circuit, why, hops_done, port)
            }
            Phase::Asked => {}
        }
        self.serve_requests(now, port);
    }

    /// `circuit`, the one `tag` waits for, failed while building.
    fn build_failed(
        &mut self,
        now: Instant,
        tag: u64,
        circuit: CircuitKey,
        why: CircuitFailure,
        hops_done: usize,
        port: &mut impl CircuitPort,
    ) {
        let state = self.states.entry(tag).or_default();
        state.pending.take_if(|k| *k == circuit);
        state.failures += 1;
        let failures = state.failures;
        if failures >= MAX_FAILURES {
            state.failures = 0;
        }
        info!(%circuit, tag, ?why, failures, "circuit failed while building");
        self.event(failure_event(circuit, why, hops_done));
        if failures >= MAX_FAILURES {
            self.no_path(now, tag, circuit);
        }
        self.serve_requests(now, port);
    }

    /// Moves builds past their deadline aside (measured, no longer the tag's); keeps a
    /// circuit for tag 0 (clients, unless `stopping`); serves waiting requests.
    pub(super) fn handle_timeout(
        &mut self,
        now: Instant,
        stopping: bool,
        port: &mut impl CircuitPort,
    ) {
        if !self.client {
            return;
        }
        let mut timed_out = Vec::new();
        for (&circuit, launch) in &mut self.launches {
            if let Phase::Building { circ, deadline } = launch.phase {
                if deadline <= now {
                    launch.phase = Phase::Measuring { circ };
                    timed_out.push((circuit, launch.tag));
                }
            }
        }
        for (circuit, tag) in timed_out {
            info!(%circuit, tag, "circuit build timed out: measured until closed");
            if let Some(state) = self.states.get_mut(&tag) {
                state.pending.take_if(|k| *k == circuit);
            }
            self.event(CircuitEvent::CircuitTimedOut { circuit });
        }
        let idle = self
            .states
            .get(&0)
            .is_none_or(|s| s.built.is_none() && s.pending.is_none());
        if idle && !stopping {
            self.ask_for_circuit(now, 0, None);
        }
        if !self.requests.is_empty() {
            self.serve_requests(now, port);
        }
    }
}

/// What the control thread hears of a circuit that failed with `hops_done` hops built. Only a
/// failure at the first hop is the guard's: a dead middle must not count against the guard
/// (proposal 151's statistics would then replace a good guard).
fn failure_event(circuit: CircuitKey, why: CircuitFailure, hops_done: usize) -> CircuitEvent {
    let hop = match why {
        CircuitFailure::ChannelFailed if hops_done == 0 => {
            return CircuitEvent::GuardUnreachable { circuit }
        }
        CircuitFailure::HandshakeFailed { hop, .. } => hop,
        _ => hops_done,
    };
    CircuitEvent::CircuitFailed {
        circuit,
        hop: u8::try_from(hop).ok(),
    }
}
