//! Circuit origin bookkeeping of a client worker, sans-IO: which circuit serves which SOCKS
//! isolation key, circuits being built (with their learned-timeout deadline), and the SOCKS
//! requests waiting for a circuit.
//!
//! Paths come from the control thread: the worker asks (`NeedCircuit { tag }`), the control
//! thread answers `BuildCircuit { tag, path, deadline }`. A tag stands for one isolation key
//! (SOCKS username/password, as Tor isolates streams); tag 0 is "no credentials", and a
//! client always keeps one circuit for it built or building, so the first request finds one.
//!
//! ```text
//!   Command / relay Event --handle_*--> Origins --CircuitPort--> Relay (build, open, close)
//!                                          \--poll_action--> OriginAction (events for the
//!                                              control thread, streams for SOCKS clients)
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tracing::{debug, info};

use crate::client::{CircuitFailure, HopSpec};
use crate::crypto::RelayId;
use crate::relay::{ApiError, CircHandle, Relay, StreamHandle};
use crate::time::Instant;

use super::control::WorkerEvent;

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
    /// Closes `circ` (its build timed out).
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
    Event(WorkerEvent),
    /// A stream for SOCKS client `conn` was opened.
    StreamOpened { conn: C, stream: StreamHandle },
    /// No stream can be had for SOCKS client `conn`: fail it.
    RequestFailed { conn: C },
}

#[derive(Debug)]
struct Building {
    circ: CircHandle,
    guard: RelayId,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct TagState {
    built: Option<CircHandle>,
    building: Option<Building>,
    asked: bool,
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
    /// The worker's index, for the events.
    worker: usize,
    /// A client keeps a circuit for tag 0; a relay builds none.
    client: bool,
    tags: HashMap<IsolationKey, u64>,
    states: BTreeMap<u64, TagState>,
    by_circ: HashMap<CircHandle, u64>,
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
            tags,
            states: BTreeMap::new(),
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
        self.states
            .values()
            .filter_map(|s| s.building.as_ref().map(|b| b.deadline))
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

    fn ask_for_circuit(&mut self, now: Instant, tag: u64) {
        let state = self.states.entry(tag).or_default();
        if state.asked || state.building.is_some() || state.retry_after.is_some_and(|t| now < t) {
            return;
        }
        state.asked = true;
        let ev = WorkerEvent::NeedCircuit {
            worker: self.worker,
            tag,
        };
        self.actions.push_back(OriginAction::Event(ev));
    }

    /// Opens streams for the requests whose circuit is built; asks for circuits otherwise.
    pub(super) fn serve_requests(&mut self, now: Instant, port: &mut impl CircuitPort) {
        let mut waiting = VecDeque::new();
        while let Some(req) = self.requests.pop_front() {
            let built = self.states.get(&req.tag).and_then(|s| s.built);
            match built {
                Some(circ) => match port.open_stream(now, circ, &req.host, req.port) {
                    Ok(stream) => self.actions.push_back(OriginAction::StreamOpened {
                        conn: req.conn,
                        stream,
                    }),
                    Err(e) => {
                        debug!(error = %e, "cannot open stream");
                        let conn = req.conn;
                        self.actions.push_back(OriginAction::RequestFailed { conn });
                    }
                },
                None => {
                    self.ask_for_circuit(now, req.tag);
                    waiting.push_back(req);
                }
            }
        }
        self.requests = waiting;
    }

    /// The control thread's answer to `NeedCircuit`: build along `path` until `deadline`.
    pub(super) fn handle_build(
        &mut self,
        now: Instant,
        tag: u64,
        path: Vec<HopSpec>,
        deadline: Instant,
        port: &mut impl CircuitPort,
    ) {
        let Some(guard) = path.first().map(|h| h.id) else {
            return self.handle_no_path(now, tag);
        };
        let state = self.states.entry(tag).or_default();
        state.asked = false;
        if state.building.is_some() {
            return; // A duplicate answer: one build per tag at a time.
        }
        match port.build_circuit(now, path) {
            Ok(circ) => {
                self.by_circ.insert(circ, tag);
                state.building = Some(Building {
                    circ,
                    guard,
                    deadline,
                });
            }
            Err(_) => self.handle_no_path(now, tag),
        }
    }

    /// No circuit can be had for `tag`: fail the requests waiting for it.
    pub(super) fn handle_no_path(&mut self, now: Instant, tag: u64) {
        if let Some(state) = self.states.get_mut(&tag) {
            state.asked = false;
            state.retry_after = Some(now + NO_PATH_BACKOFF);
        }
        let (failed, kept): (Vec<_>, Vec<_>) = self.requests.drain(..).partition(|r| r.tag == tag);
        self.requests = kept.into();
        for req in failed {
            let conn = req.conn;
            self.actions.push_back(OriginAction::RequestFailed { conn });
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
        let Some(&tag) = self.by_circ.get(&circ) else {
            return;
        };
        let Some(state) = self.states.get_mut(&tag) else {
            return;
        };
        let Some(b) = state.building.take_if(|b| b.circ == circ) else {
            return;
        };
        state.built = Some(circ);
        state.failures = 0;
        let build_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        let build_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        info!(
            worker = self.worker,
            tag, build_ms, build_us, "circuit built"
        );
        self.actions
            .push_back(OriginAction::Event(WorkerEvent::CircuitBuilt {
                worker: self.worker,
                tag,
                guard: b.guard,
                build_ms,
            }));
        self.serve_requests(now, port);
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
        let Some(tag) = self.by_circ.remove(&circ) else {
            return;
        };
        let Some(state) = self.states.get_mut(&tag) else {
            return;
        };
        if state.built == Some(circ) {
            info!(worker = self.worker, tag, ?why, "circuit closed");
            state.built = None;
            return self.serve_requests(now, port);
        }
        let Some(b) = state.building.take_if(|b| b.circ == circ) else {
            return;
        };
        state.failures += 1;
        let failures = state.failures;
        if failures >= MAX_FAILURES {
            state.failures = 0;
        }
        info!(
            worker = self.worker,
            tag,
            ?why,
            failures,
            "circuit failed while building"
        );
        let (worker, guard) = (self.worker, b.guard);
        // Only a failure at the first hop is the guard's: a dead middle must not count
        // against the guard (proposal 151's statistics would then replace a good guard).
        let ev = match why {
            CircuitFailure::ChannelFailed if hops_done == 0 => {
                WorkerEvent::GuardUnreachable { worker, tag, guard }
            }
            CircuitFailure::HandshakeFailed { hop, .. } => WorkerEvent::CircuitFailed {
                worker,
                tag,
                guard,
                hop: Some(hop),
            },
            _ => WorkerEvent::CircuitFailed {
                worker,
                tag,
                guard,
                hop: Some(hops_done),
            },
        };
        self.actions.push_back(OriginAction::Event(ev));
        if failures >= MAX_FAILURES {
            self.handle_no_path(now, tag);
        }
        self.serve_requests(now, port);
    }

    /// Closes builds that passed their deadline; keeps a circuit for tag 0 (clients, unless
    /// `stopping`); serves waiting requests.
    pub(super) fn handle_timeout(
        &mut self,
        now: Instant,
        stopping: bool,
        port: &mut impl CircuitPort,
    ) {
        if !self.client {
            return;
        }
        for (&tag, state) in &mut self.states {
            let Some(b) = state.building.take_if(|b| b.deadline <= now) else {
                continue;
            };
            self.by_circ.remove(&b.circ);
            info!(worker = self.worker, tag, "circuit build timed out");
            port.close_circuit(now, b.circ);
            self.actions
                .push_back(OriginAction::Event(WorkerEvent::CircuitTimedOut {
                    worker: self.worker,
                    tag,
                    guard: b.guard,
                }));
        }
        let idle = self
            .states
            .get(&0)
            .is_none_or(|s| s.built.is_none() && s.building.is_none());
        if idle && !stopping {
            self.ask_for_circuit(now, 0);
        }
        if !self.requests.is_empty() {
            self.serve_requests(now, port);
        }
    }
}
