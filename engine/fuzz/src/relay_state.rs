//! The stateful `relay_state` target's driver: one sans-IO `Relay` (an exit for
//! 127.0.0.0/8) and raw peers around it, driven by a fuzzer-chosen list of [`Action`]s.
//!
//! ```text
//!  inbound peers (clients / previous hops)        Relay         outbound peers (next hops)
//!  Accept, Hello, CreateFast, Create2 ──────────>  │  ──EXTEND2──> OpenChannel event
//!  Relay / Begin / Extend2 / Sendme (real keys)    │  <───────────  Hello, NextHop (CREATED2,
//!  Destroy, RawCell, Garbage, CloseChannel         │                 RELAY, DESTROY, raw)
//!  Stall (stop reading: queues grow)   Events (the runtime's answers), StreamData, Advance
//! ```
//!
//! Peers decode everything the relay sends (it must always decode) and keep the circuit
//! keys of the handshakes they complete, so relay cells are encrypted with the right keys
//! and reach the exit and forwarding logic. After every action the driver calls
//! `check_invariants()` (queued-bytes accounting, no half-freed circuit, mux consistency)
//! and checks that queued bytes stay within `MaxMemInQueues`; it panics if either fails.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;

use kistrel_engine::crypto::fast::{self, FastClient};
use kistrel_engine::crypto::ntor::{self, NtorClient};
use kistrel_engine::crypto::relay_crypto::ClientLayer;
use kistrel_engine::exit::ExitPolicy;
use kistrel_engine::harness::{initiator_hello, responder_hello, transmit};
use kistrel_engine::relay::{
    ChanId, Event, PlainLinkAuth, Relay, RelayConfig, RelayKeys, StreamHandle,
};
use kistrel_engine::time::Instant;
use kistrel_engine::wire::{
    emit_relay_cell, Begin, Cell, CellDecoder, ChanCell, ChanCmd, Create2, CreateFast, Created2,
    CreatedFast, Destroy, DestroyReason, EndReason, Extend2, LinkSpec, RelayCmd, Sendme, StreamId,
    CELL_BODY_LEN, RELAY_DATA_LEN,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::{ChaCha12Rng, ChaCha8Rng};

mod input;

pub use input::{encode, seed_scenarios, Action, Bytes, Scenario};

/// The seed of the relay's keys (fixed: the fuzzer must be able to address it; the harness
/// makes them once per process).
const RELAY_KEY_SEED: u64 = 7;

/// The seed of the next hop's keys: an EXTEND2 names this identity (or a wrong one), and
/// an outbound peer proves it with a real responder handshake.
const NEXT_HOP_KEY_SEED: u64 = 8;

/// The relay's keys.
pub fn relay_keys() -> RelayKeys {
    kistrel_engine::harness::relay_keys(RELAY_KEY_SEED)
}

/// The next hop's keys.
fn next_hop_keys() -> RelayKeys {
    kistrel_engine::harness::relay_keys(NEXT_HOP_KEY_SEED)
}

/// What a next hop answers the relay's VERSIONS with: a kistrel relay's own responder
/// handshake (VERSIONS, CERTS, AUTH_CHALLENGE, NETINFO) for the next hop's keys on a plain
/// link, made once per process (it is deterministic).
fn next_hop_hello() -> &'static [u8] {
    static HELLO: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    HELLO.get_or_init(|| responder_hello(&next_hop_keys(), kistrel_engine::harness::epoch(), None))
}
/// Most actions one input runs (keeps single executions fast).
const MAX_ACTIONS: usize = 256;
/// Most bytes one `StreamData` offers.
const MAX_STREAM_DATA: usize = 64 * RELAY_DATA_LEN;
/// Hosts a BEGIN may name: allowed by the exit policy, refused, IPv6, a name to resolve.
const HOSTS: [&str; 4] = ["127.0.0.1", "10.0.0.1", "::1", "example.com"];

/// Deepest states a run reached (for the seed generator, which keeps inputs that reach new
/// ones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    pub open_circuits: bool,
    pub streams: bool,
    pub outbound: bool,
    pub extended: bool,
    pub oom_closed: bool,
    pub circuits_rejected: bool,
    pub channels_rejected: bool,
    pub queued: bool,
}

enum Handshake {
    Fast(FastClient),
    Ntor(NtorClient),
}

enum CircState {
    Pending(Handshake),
    Open(Box<ClientLayer>),
    /// The handshake did not complete (taken out of `Pending` while the reply is checked).
    Failed,
}

/// A circuit an inbound peer created.
struct ClientCirc {
    peer: usize,
    id: u32,
    state: CircState,
    /// Backward digests after each DATA cell received (the relay wants the 100th, 200th,
    /// ... in circuit SENDMEs).
    data_digests: Vec<[u8; 20]>,
    sendmes: usize,
}

struct Peer {
    chan: ChanId,
    decoder: CellDecoder,
    outbound: bool,
    reading: bool,
    /// Outbound: we answered the relay's VERSIONS.
    hello_sent: bool,
    /// Outbound: circuit ids of CREATE2 cells not answered yet.
    pending_creates: VecDeque<u32>,
    /// Outbound: circuit ids the relay uses toward us.
    circ_ids: Vec<u32>,
}

struct Driver {
    relay: Relay,
    now: Instant,
    rng: ChaCha8Rng,
    peers: Vec<Peer>,
    circs: Vec<ClientCirc>,
    streams: Vec<StreamHandle>,
    reached: Reached,
    buf: Vec<u8>,
    /// Channels the relay listed as ready and not drained since (stalled peers keep theirs).
    ready: BTreeSet<ChanId>,
}

/// Runs a scenario; panics on an invariant violation or undecodable relay output.
pub fn run(scenario: &Scenario) -> Reached {
    let keys = relay_keys();
    let mut cfg = RelayConfig {
        keys: Some(keys),
        exit_policy: "accept 127.0.0.0/8:*".parse::<ExitPolicy>().ok(),
        ..RelayConfig::default()
    };
    if scenario.mem_limit != 0 {
        cfg.max_mem_in_queues =
            usize::from(scenario.mem_limit) * 4 * kistrel_engine::wire::CELL_LEN;
    }
    if scenario.queue_limit != 0 {
        cfg.max_circuit_queue_cells = usize::from(scenario.queue_limit) * 4;
    }
    let mut d = Driver {
        relay: Relay::new(cfg, ChaCha12Rng::seed_from_u64(1)),
        now: Instant::ZERO,
        rng: ChaCha8Rng::seed_from_u64(2),
        peers: Vec::new(),
        circs: Vec::new(),
        streams: Vec::new(),
        reached: Reached::default(),
        buf: Vec::new(),
        ready: BTreeSet::new(),
    };
    d.relay.set_wall_clock(kistrel_engine::harness::epoch());
    for action in scenario.actions.iter().take(MAX_ACTIONS) {
        d.act(action);
        d.drain_readers();
        if let Err(why) = d.relay.check_invariants() {
            panic!("invariant violated after {action:?}: {why}");
        }
        // Every enqueue runs the OOM handler, so no action leaves more than the limit queued.
        let limit = d.relay.config().max_mem_in_queues;
        assert!(
            d.relay.queued_bytes() <= limit,
            "{} bytes queued over MaxMemInQueues {limit} after {action:?}",
            d.relay.queued_bytes()
        );
        d.note();
    }
    d.reached
}

fn pick<T>(items: &[T], i: impl Into<usize>) -> Option<usize> {
    (!items.is_empty()).then(|| i.into() % items.len())
}

impl Driver {
    fn note(&mut self) {
        let s = self.relay.stats();
        let r = &mut self.reached;
        r.open_circuits |= self
            .circs
            .iter()
            .any(|c| matches!(c.state, CircState::Open(_)));
        r.streams |= !self.streams.is_empty();
        r.outbound |= self.peers.iter().any(|p| p.outbound);
        r.extended |= self.peers.iter().any(|p| !p.circ_ids.is_empty());
        r.oom_closed |= s.oom_closed > 0;
        r.circuits_rejected |= s.circuits_rejected > 0;
        r.channels_rejected |= s.channels_rejected > 0;
        r.queued |= self.relay.queued_bytes() > 0;
    }

    fn send(&mut self, peer: usize, bytes: &[u8]) {
        if let Some(p) = self.peers.get(peer) {
            self.relay
                .handle_recv(self.now, p.chan, bytes, &PlainLinkAuth);
        }
    }

    fn send_cell(&mut self, peer: usize, cell: &Cell) {
        let mut b = Vec::new();
        cell.append_to(&mut b);
        self.send(peer, &b);
    }

    fn open_circ(&self, i: u8) -> Option<usize> {
        let open: Vec<usize> = (0..self.circs.len())
            .filter(|&k| matches!(self.circs[k].state, CircState::Open(_)))
            .collect();
        pick(&open, i).map(|k| open[k])
    }

    /// Encrypts `body` for the relay on circuit `k` and sends it.
    fn send_relay_body(
        &mut self,
        k: usize,
        early: bool,
        originate: bool,
        mut body: [u8; CELL_BODY_LEN],
    ) {
        let c = &mut self.circs[k];
        let CircState::Open(layer) = &mut c.state else {
            return;
        };
        if originate {
            layer.originate_forward(&mut body);
        } else {
            layer.encrypt_forward(&mut body);
        }
        let cmd = if early {
            ChanCmd::RELAY_EARLY
        } else {
            ChanCmd::RELAY
        };
        let mut cell = Cell::new(c.id, cmd);
        cell.body = body;
        let peer = c.peer;
        self.send_cell(peer, &cell);
    }

    fn relay_msg(&mut self, k: usize, early: bool, cmd: RelayCmd, stream: u16, data: &[u8]) {
        let mut body = [0u8; CELL_BODY_LEN];
        let data = &data[..data.len().min(RELAY_DATA_LEN)];
        if emit_relay_cell(&mut body, cmd, StreamId::new(stream), data, &mut self.rng).is_ok() {
            self.send_relay_body(k, early, true, body);
        }
    }

    fn act(&mut self, action: &Action) {
        match action {
            Action::Accept { .. }
            | Action::Hello { .. }
            | Action::RawCell { .. }
            | Action::Garbage { .. }
            | Action::Stall { .. }
            | Action::CloseChannel { .. } => self.act_peer(action),
            Action::CreateFast { .. } | Action::Create2 { .. } | Action::Destroy { .. } => {
                self.act_create(action)
            }
            Action::Relay { .. }
            | Action::Begin { .. }
            | Action::Extend2 { .. }
            | Action::Sendme { .. } => self.act_circuit(action),
            Action::Events { .. }
            | Action::StreamData { .. }
            | Action::CloseStream { .. }
            | Action::NextHop { .. }
            | Action::Advance { .. }
            | Action::Shutdown => self.act_runtime(action),
        }
    }

    /// Connections and raw bytes from peers.
    fn act_peer(&mut self, action: &Action) {
        let now = self.now;
        match action {
            Action::Accept { hello } => {
                let addr = SocketAddr::from(([10, 1, 1, self.peers.len() as u8], 4000));
                let chan = self.relay.accept_channel(now, addr);
                self.peers.push(Peer::new(chan, false));
                if *hello {
                    self.send(self.peers.len() - 1, &initiator_hello());
                }
            }
            Action::Hello { peer } => {
                if let Some(p) = pick(&self.peers, *peer) {
                    self.send(p, &initiator_hello());
                }
            }
            Action::RawCell {
                peer,
                circ_id,
                cmd,
                body,
            } => {
                let Some(p) = pick(&self.peers, *peer) else {
                    return;
                };
                let mut cell = Cell::new(*circ_id, ChanCmd(*cmd));
                let n = body.len().min(CELL_BODY_LEN);
                cell.body[..n].copy_from_slice(&body[..n]);
                self.send_cell(p, &cell);
            }
            Action::Garbage { peer, bytes } => {
                if let Some(p) = pick(&self.peers, *peer) {
                    self.send(p, bytes);
                }
            }
            Action::Stall { peer } => {
                if let Some(p) = pick(&self.peers, *peer) {
                    self.peers[p].reading ^= true;
                }
            }
            Action::CloseChannel { peer } => {
                let Some(p) = pick(&self.peers, *peer) else {
                    return;
                };
                let chan = self.peers.remove(p).chan;
                self.circs.retain(|c| c.peer != p);
                for c in &mut self.circs {
                    if c.peer > p {
                        c.peer -= 1;
                    }
                }
                self.relay.handle_channel_closed(now, chan);
            }
            _ => {}
        }
    }

    /// Circuits made and unmade by inbound peers: CREATE_FAST, CREATE2, DESTROY.
    fn act_create(&mut self, action: &Action) {
        match action {
            Action::CreateFast { peer, circ } => {
                let Some(p) = pick(&self.peers, *peer) else {
                    return;
                };
                let id = 0x8000_0000 | u32::from(*circ);
                let (state, x) = fast::client_create(&mut self.rng);
                let mut cell = Cell::new(id, ChanCmd::CREATE_FAST);
                if (CreateFast { x }).emit(&mut cell.body).is_ok() {
                    self.add_circ(p, id, Handshake::Fast(state));
                    self.send_cell(p, &cell);
                }
            }
            Action::Create2 {
                peer,
                circ,
                x,
                wrong_key,
            } => {
                let Some(p) = pick(&self.peers, *peer) else {
                    return;
                };
                let id = 0x8000_0000 | u32::from(*circ);
                let keys = relay_keys();
                let mut b = keys.ntor.public();
                if *wrong_key {
                    b[0] ^= 1;
                }
                let (state, onion) = ntor::client_create_with_secret(*x, &keys.rsa_id(), &b);
                let mut cell = Cell::new(id, ChanCmd::CREATE2);
                let create = Create2 {
                    htype: ntor::HTYPE,
                    hdata: &onion,
                };
                if create.emit(&mut cell.body).is_ok() {
                    self.add_circ(p, id, Handshake::Ntor(state));
                    self.send_cell(p, &cell);
                }
            }
            Action::Destroy { circ, reason } => {
                let Some(k) = pick(&self.circs, *circ) else {
                    return;
                };
                let c = self.circs.remove(k);
                let mut cell = Cell::new(c.id, ChanCmd::DESTROY);
                if (Destroy {
                    reason: DestroyReason(*reason),
                })
                .emit(&mut cell.body)
                .is_ok()
                {
                    self.send_cell(c.peer, &cell);
                }
            }
            _ => {}
        }
    }

    /// Cells on circuits the peers created.
    fn act_circuit(&mut self, action: &Action) {
        match action {
            Action::Relay {
                circ,
                early,
                originate,
                cmd,
                stream,
                data,
            } => {
                let Some(k) = self.open_circ(*circ) else {
                    return;
                };
                if *originate {
                    self.relay_msg(k, *early, RelayCmd(*cmd), *stream, data);
                } else {
                    let mut body = [0u8; CELL_BODY_LEN];
                    let n = data.len().min(CELL_BODY_LEN);
                    body[..n].copy_from_slice(&data[..n]);
                    self.send_relay_body(k, *early, false, body);
                }
            }
            Action::Begin {
                circ,
                stream,
                host,
                port,
            } => {
                let Some(k) = self.open_circ(*circ) else {
                    return;
                };
                let begin = Begin {
                    host: HOSTS[usize::from(*host) % HOSTS.len()],
                    port: *port,
                    flags: 0,
                };
                let mut data = [0u8; RELAY_DATA_LEN];
                if let Ok(n) = begin.emit(&mut data) {
                    self.relay_msg(k, false, RelayCmd::BEGIN, *stream, &data[..n]);
                }
            }
            Action::Extend2 {
                circ,
                port,
                id,
                hdata,
            } => {
                let Some(k) = self.open_circ(*circ) else {
                    return;
                };
                let ext = Extend2 {
                    link_specs: vec![
                        LinkSpec::Ipv4(std::net::SocketAddrV4::new([127, 0, 0, 2].into(), *port)),
                        // Most ids name the next hop's real identity; one in four a wrong
                        // one, which its handshake must then fail to prove.
                        LinkSpec::LegacyId(if *id % 4 == 0 {
                            [*id; 20]
                        } else {
                            next_hop_keys().rsa_id()
                        }),
                    ],
                    htype: ntor::HTYPE,
                    hdata: &hdata[..hdata.len().min(RELAY_DATA_LEN - 40)],
                };
                let mut data = [0u8; RELAY_DATA_LEN];
                if let Ok(n) = ext.emit(&mut data) {
                    self.relay_msg(k, true, RelayCmd::EXTEND2, 0, &data[..n]);
                }
            }
            Action::Sendme {
                circ,
                stream,
                correct,
            } => {
                let Some(k) = self.open_circ(*circ) else {
                    return;
                };
                let c = &mut self.circs[k];
                let want = 100 * (c.sendmes + 1) - 1;
                let digest = match c.data_digests.get(want) {
                    Some(d) if *correct => *d,
                    _ => [0xab; 20],
                };
                c.sendmes += 1;
                let mut data = [0u8; RELAY_DATA_LEN];
                if let Ok(n) = (Sendme {
                    digest: Some(digest),
                })
                .emit(&mut data)
                {
                    self.relay_msg(k, false, RelayCmd::SENDME, *stream % 2, &data[..n]);
                }
            }
            _ => {}
        }
    }

    /// What the runtime and time do: events, stream data, next hops, timers.
    fn act_runtime(&mut self, action: &Action) {
        let now = self.now;
        match action {
            Action::Events { n, fail } => self.events(usize::from(*n), *fail),
            Action::StreamData { stream, len } => {
                let Some(s) = pick(&self.streams, *stream) else {
                    return;
                };
                let len = usize::from(*len).min(MAX_STREAM_DATA);
                let data = vec![0x5a; len];
                let taken = self.relay.handle_stream_data(now, self.streams[s], &data);
                assert!(taken <= len);
            }
            Action::CloseStream { stream } => {
                let Some(s) = pick(&self.streams, *stream) else {
                    return;
                };
                let s = self.streams.remove(s);
                self.relay.stream_close(now, s, EndReason::DONE);
            }
            Action::NextHop {
                peer,
                created,
                cmd,
                body,
            } => self.next_hop(*peer, *created, *cmd, body),
            Action::Advance { millis } => {
                self.now = now + std::time::Duration::from_millis(u64::from(*millis) * 16);
                let _ = self.relay.poll_timeout();
                self.relay.handle_timeout(self.now);
            }
            Action::Shutdown => self.relay.shutdown(now),
            _ => {}
        }
    }
    fn add_circ(&mut self, peer: usize, id: u32, hs: Handshake) {
        self.circs.retain(|c| !(c.peer == peer && c.id == id));
        self.circs.push(ClientCirc {
            peer,
            id,
            state: CircState::Pending(hs),
            data_digests: Vec::new(),
            sendmes: 0,
        });
    }

    fn next_hop(&mut self, peer: u8, created: bool, cmd: u8, body: &[u8]) {
        let outbound: Vec<usize> = (0..self.peers.len())
            .filter(|&p| self.peers[p].outbound)
            .collect();
        let Some(p) = pick(&outbound, peer).map(|i| outbound[i]) else {
            return;
        };
        let mut cell;
        if created {
            let Some(id) = self.peers[p].pending_creates.pop_front() else {
                return;
            };
            self.peers[p].circ_ids.push(id);
            cell = Cell::new(id, ChanCmd::CREATED2);
            let hdata = &body[..body.len().min(CELL_BODY_LEN - 2)];
            if (Created2 { hdata }).emit(&mut cell.body).is_err() {
                return;
            }
        } else {
            let ids = &self.peers[p].circ_ids;
            let Some(i) = pick(ids, usize::from(cmd)) else {
                return;
            };
            let chan_cmd = match cmd % 4 {
                0 | 1 => ChanCmd::RELAY,
                2 => ChanCmd::DESTROY,
                _ => ChanCmd(cmd),
            };
            cell = Cell::new(ids[i], chan_cmd);
            let n = body.len().min(CELL_BODY_LEN);
            cell.body[..n].copy_from_slice(&body[..n]);
        }
        self.send_cell(p, &cell);
    }

    fn events(&mut self, n: usize, fail: bool) {
        let now = self.now;
        for _ in 0..n {
            let Some(ev) = self.relay.poll_event() else {
                return;
            };
            match ev {
                Event::OpenChannel { chan, .. } => {
                    if fail {
                        self.relay.handle_channel_closed(now, chan);
                    } else {
                        self.peers.push(Peer::new(chan, true));
                        self.relay.handle_channel_connected(now, chan);
                    }
                }
                Event::CloseChannel { chan } => {
                    if let Some(p) = self.peers.iter().position(|p| p.chan == chan) {
                        self.peers.remove(p);
                        self.circs.retain(|c| c.peer != p);
                        for c in &mut self.circs {
                            if c.peer > p {
                                c.peer -= 1;
                            }
                        }
                    }
                }
                Event::ConnectStream { stream, .. } => {
                    if fail {
                        self.relay
                            .handle_stream_failed(now, stream, EndReason::CONNECTREFUSED);
                    } else {
                        let addr = SocketAddr::from(([127, 0, 0, 1], 80));
                        self.relay.handle_stream_connected(now, stream, addr);
                        self.streams.push(stream);
                    }
                }
                Event::StreamReadable { stream } => {
                    let mut buf = [0u8; 4096];
                    while let Some(k) = self.relay.stream_recv(now, stream, &mut buf) {
                        if k == 0 {
                            break;
                        }
                    }
                }
                Event::StreamEnded { stream, .. } => self.streams.retain(|s| *s != stream),
                _ => {}
            }
        }
    }

    /// Every reading peer takes what the relay has for it and reacts as a client would.
    fn drain_readers(&mut self) {
        // What a peer sends in answer can make the relay send more (a next hop's handshake
        // lets the queued CREATE2 go): a few rounds, until nobody got anything.
        for _ in 0..4 {
            if !self.drain_round() {
                return;
            }
        }
    }

    /// One pass over the reading peers; whether any of them got bytes. As the runtime does,
    /// only channels `poll_ready_channel` listed are drained, so a channel with output that
    /// is never listed shows up as a stuck peer (and trips the check below).
    fn drain_round(&mut self) -> bool {
        while let Some(chan) = self.relay.poll_ready_channel() {
            self.ready.insert(chan);
        }
        for p in &self.peers {
            assert!(
                !self.relay.has_output(p.chan) || self.ready.contains(&p.chan),
                "{:?} has output but was never listed ready",
                p.chan
            );
        }
        let mut got = false;
        for p in 0..self.peers.len() {
            let chan = self.peers[p].chan;
            if !self.peers[p].reading || !self.ready.remove(&chan) {
                continue;
            }
            self.buf.clear();
            let _ = transmit(&mut self.relay, self.now, chan, &mut self.buf, usize::MAX);
            let bytes = std::mem::take(&mut self.buf);
            got |= !bytes.is_empty();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let (used, cell) = self.peers[p]
                    .decoder
                    .decode(rest)
                    .unwrap_or_else(|e| panic!("relay output does not decode: {e}"));
                rest = &rest[used..];
                match cell {
                    Some(ChanCell::Fixed(cell)) => self.on_cell(p, cell),
                    // A next hop answers the relay's VERSIONS at once with a responder's
                    // handshake (not answering is what `Stall` and `CloseChannel` model).
                    Some(ChanCell::Var(v))
                        if v.cmd == ChanCmd::VERSIONS
                            && self.peers[p].outbound
                            && !self.peers[p].hello_sent =>
                    {
                        self.peers[p].hello_sent = true;
                        self.send(p, next_hop_hello());
                    }
                    _ => {}
                }
            }
            self.buf = bytes;
        }
        got
    }

    fn on_cell(&mut self, p: usize, mut cell: Cell) {
        if self.peers[p].outbound {
            let peer = &mut self.peers[p];
            match cell.cmd {
                ChanCmd::CREATE2 => peer.pending_creates.push_back(cell.circ_id),
                ChanCmd::DESTROY => {
                    peer.circ_ids.retain(|&id| id != cell.circ_id);
                    peer.pending_creates.retain(|&id| id != cell.circ_id);
                }
                _ => {}
            }
            return;
        }
        let Some(k) = self
            .circs
            .iter()
            .position(|c| c.peer == p && c.id == cell.circ_id)
        else {
            return;
        };
        match cell.cmd {
            ChanCmd::DESTROY => {
                self.circs.remove(k);
            }
            ChanCmd::CREATED_FAST | ChanCmd::CREATED2 => {
                let c = &mut self.circs[k];
                let CircState::Pending(hs) = std::mem::replace(&mut c.state, CircState::Failed)
                else {
                    return;
                };
                let keys = match (hs, cell.cmd) {
                    (Handshake::Fast(st), ChanCmd::CREATED_FAST) => {
                        CreatedFast::parse(&cell.body).ok().and_then(|r| {
                            let mut y_kh = [0u8; 40];
                            y_kh[..20].copy_from_slice(&r.y);
                            y_kh[20..].copy_from_slice(&r.kh);
                            st.finish(&y_kh).ok()
                        })
                    }
                    (Handshake::Ntor(st), ChanCmd::CREATED2) => Created2::parse(&cell.body)
                        .ok()
                        .and_then(|r| st.finish(r.hdata).ok()),
                    _ => None,
                };
                // A reply can fail to verify only when the fuzzer reused a circuit id (raw
                // cells, a second CREATE on a pending id): then the circuit is just dropped.
                match keys {
                    Some(keys) => c.state = CircState::Open(Box::new(ClientLayer::new(&keys))),
                    None => {
                        self.circs.remove(k);
                    }
                }
            }
            ChanCmd::RELAY | ChanCmd::RELAY_EARLY => {
                let c = &mut self.circs[k];
                if let CircState::Open(layer) = &mut c.state {
                    if layer.decrypt_backward(&mut cell.body) && cell.body[0] == RelayCmd::DATA.0 {
                        c.data_digests.push(layer.last_backward_digest());
                    }
                }
            }
            _ => {}
        }
    }
}

impl Peer {
    fn new(chan: ChanId, outbound: bool) -> Self {
        Peer {
            chan,
            decoder: CellDecoder::new(),
            outbound,
            reading: true,
            hello_sent: false,
            pending_creates: VecDeque::new(),
            circ_ids: Vec::new(),
        }
    }
}

/// Decodes fuzz input bytes as the `relay_state` target does (libfuzzer-sys's
/// `arbitrary_take_rest`).
pub fn decode(bytes: &[u8]) -> Option<Scenario> {
    arbitrary::Arbitrary::arbitrary_take_rest(arbitrary::Unstructured::new(bytes)).ok()
}

/// Random bytes for the seed generator's search.
pub fn random_input(rng: &mut impl RngCore, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}
