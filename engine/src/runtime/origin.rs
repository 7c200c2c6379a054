//! Circuit origin bookkeeping of a client worker: which circuit serves which SOCKS
//! isolation key, circuits being built (with their learned-timeout deadline), and the SOCKS
//! requests waiting for a circuit.
//!
//! Paths come from the control thread: the worker asks (`NeedCircuit { tag }`), the control
//! thread answers `BuildCircuit { tag, path, deadline }`. A tag stands for one isolation key
//! (SOCKS username/password, as Tor isolates streams); tag 0 is "no credentials", and a
//! client always keeps one circuit for it built or building, so the first request finds one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tracing::{debug, info};

use crate::client::{CircuitFailure, HopSpec};
use crate::crypto::RelayId;
use crate::relay::CircHandle;
use crate::socks::SocksReply;
use crate::time::Instant;

use super::worker::Worker;
use super::{Driver, WorkerEvent};

/// Builds that fail in a row before the waiting requests are failed.
const MAX_FAILURES: u32 = 3;

type IsolationKey = Option<(Vec<u8>, Vec<u8>)>;

struct Building {
    circ: CircHandle,
    guard: RelayId,
    deadline: Instant,
}

#[derive(Default)]
struct TagState {
    built: Option<CircHandle>,
    building: Option<Building>,
    asked: bool,
    failures: u32,
    /// After "no path", wait before asking again (the directory will not change by itself).
    retry_after: Option<Instant>,
}

/// How long to wait before asking again after the control thread found no path.
const NO_PATH_BACKOFF: Duration = Duration::from_secs(1);

struct Request<C> {
    conn: C,
    tag: u64,
    host: String,
    port: u16,
}

pub(super) struct Origins<C> {
    client: bool,
    tags: HashMap<IsolationKey, u64>,
    states: BTreeMap<u64, TagState>,
    by_circ: HashMap<CircHandle, u64>,
    requests: VecDeque<Request<C>>,
}

impl<C: Copy + Eq> Origins<C> {
    pub fn new(client: bool) -> Self {
        let mut tags = HashMap::new();
        tags.insert(None, 0);
        Origins {
            client,
            tags,
            states: BTreeMap::new(),
            by_circ: HashMap::new(),
            requests: VecDeque::new(),
        }
    }

    pub fn request(&mut self, conn: C, isolation: IsolationKey, host: String, port: u16) {
        let next = self.tags.len() as u64;
        let tag = *self.tags.entry(isolation).or_insert(next);
        self.requests.push_back(Request {
            conn,
            tag,
            host,
            port,
        });
    }

    pub fn forget_conn(&mut self, conn: C) {
        self.requests.retain(|r| r.conn != conn);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.states
            .values()
            .filter_map(|s| s.building.as_ref().map(|b| b.deadline))
            .min()
    }
}

impl<D: Driver> Worker<D> {
    fn ask_for_circuit(&mut self, now: Instant, tag: u64) {
        let state = self.origins.states.entry(tag).or_default();
        if state.asked || state.building.is_some() || state.retry_after.is_some_and(|t| now < t) {
            return;
        }
        state.asked = true;
        self.events.send(WorkerEvent::NeedCircuit {
            worker: self.index,
            tag,
        });
    }

    /// Opens streams for the requests whose circuit is built; asks for circuits otherwise.
    pub(super) fn serve_requests(&mut self, now: Instant) {
        let mut waiting = VecDeque::new();
        while let Some(req) = self.origins.requests.pop_front() {
            let built = self.origins.states.get(&req.tag).and_then(|s| s.built);
            match built {
                Some(circ) => match self.relay.open_stream(now, circ, &req.host, req.port) {
                    Ok(stream) => self.bind_stream(req.conn, stream),
                    Err(e) => {
                        debug!(error = %e, "cannot open stream");
                        self.socks_fail(req.conn, SocksReply::GeneralFailure);
                    }
                },
                None => {
                    self.ask_for_circuit(now, req.tag);
                    waiting.push_back(req);
                }
            }
        }
        self.origins.requests = waiting;
    }

    pub(super) fn build_for_tag(
        &mut self,
        now: Instant,
        tag: u64,
        path: Vec<HopSpec>,
        deadline: Instant,
    ) {
        let Some(guard) = path.first().map(|h| h.id) else {
            return self.fail_tag(now, tag);
        };
        let state = self.origins.states.entry(tag).or_default();
        state.asked = false;
        if state.building.is_some() {
            return; // A duplicate answer: one build per tag at a time.
        }
        match self.relay.build_circuit(now, path) {
            Ok(circ) => {
                self.origins.by_circ.insert(circ, tag);
                if let Some(state) = self.origins.states.get_mut(&tag) {
                    state.building = Some(Building {
                        circ,
                        guard,
                        deadline,
                    });
                }
            }
            Err(_) => self.fail_tag(now, tag),
        }
        self.handle_relay_events(now);
    }

    /// No circuit can be had for `tag`: fail the requests waiting for it.
    pub(super) fn fail_tag(&mut self, now: Instant, tag: u64) {
        if let Some(state) = self.origins.states.get_mut(&tag) {
            state.asked = false;
            state.retry_after = Some(now + NO_PATH_BACKOFF);
        }
        let (failed, kept): (Vec<_>, Vec<_>) =
            self.origins.requests.drain(..).partition(|r| r.tag == tag);
        self.origins.requests = kept.into();
        for req in failed {
            self.socks_fail(req.conn, SocksReply::GeneralFailure);
        }
    }

    pub(super) fn circuit_built(&mut self, now: Instant, circ: CircHandle, elapsed: Duration) {
        let Some(&tag) = self.origins.by_circ.get(&circ) else {
            return;
        };
        let Some(state) = self.origins.states.get_mut(&tag) else {
            return;
        };
        let Some(b) = state.building.take().filter(|b| b.circ == circ) else {
            return;
        };
        state.built = Some(circ);
        state.failures = 0;
        let build_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        info!(worker = self.index, tag, build_ms, "circuit built");
        self.events.send(WorkerEvent::CircuitBuilt {
            worker: self.index,
            tag,
            guard: b.guard,
            build_ms,
        });
        self.serve_requests(now);
    }

    pub(super) fn circuit_closed(
        &mut self,
        now: Instant,
        circ: CircHandle,
        why: CircuitFailure,
        hops_done: usize,
    ) {
        let Some(tag) = self.origins.by_circ.remove(&circ) else {
            return;
        };
        let Some(state) = self.origins.states.get_mut(&tag) else {
            return;
        };
        if state.built == Some(circ) {
            info!(worker = self.index, tag, ?why, "circuit closed");
            state.built = None;
            return self.serve_requests(now);
        }
        let Some(b) = state.building.take().filter(|b| b.circ == circ) else {
            return;
        };
        state.failures += 1;
        let failures = state.failures;
        info!(
            worker = self.index,
            tag,
            ?why,
            failures,
            "circuit failed while building"
        );
        // Only a failure at the first hop is the guard's: a dead middle must not count
        // against the guard (proposal 151's statistics would then replace a good guard).
        let ev = match why {
            CircuitFailure::ChannelFailed if hops_done == 0 => WorkerEvent::GuardUnreachable {
                worker: self.index,
                tag,
                guard: b.guard,
            },
            CircuitFailure::HandshakeFailed { hop, .. } => WorkerEvent::CircuitFailed {
                worker: self.index,
                tag,
                guard: b.guard,
                hop: Some(hop),
            },
            _ => WorkerEvent::CircuitFailed {
                worker: self.index,
                tag,
                guard: b.guard,
                hop: Some(hops_done),
            },
        };
        self.events.send(ev);
        if failures >= MAX_FAILURES {
            if let Some(state) = self.origins.states.get_mut(&tag) {
                state.failures = 0;
            }
            self.fail_tag(now, tag);
        }
        self.serve_requests(now);
    }

    /// Keeps a circuit for tag 0 (clients), and closes builds that passed their deadline.
    pub(super) fn origins_tick(&mut self, now: Instant) {
        if !self.origins.client {
            return;
        }
        let expired: Vec<(u64, CircHandle, RelayId)> = self
            .origins
            .states
            .iter()
            .filter_map(|(&tag, s)| {
                s.building
                    .as_ref()
                    .filter(|b| b.deadline <= now)
                    .map(|b| (tag, b.circ, b.guard))
            })
            .collect();
        for (tag, circ, guard) in expired {
            if let Some(state) = self.origins.states.get_mut(&tag) {
                state.building = None;
            }
            self.origins.by_circ.remove(&circ);
            info!(worker = self.index, tag, "circuit build timed out");
            self.relay.close_circuit_requested(now, circ);
            self.events.send(WorkerEvent::CircuitTimedOut {
                worker: self.index,
                tag,
                guard,
            });
        }
        let idle = self
            .origins
            .states
            .get(&0)
            .is_none_or(|s| s.built.is_none() && s.building.is_none());
        if idle && self.stopping_is_none() {
            self.ask_for_circuit(now, 0);
        }
        if !self.origins.requests.is_empty() {
            self.serve_requests(now);
        }
    }
}
