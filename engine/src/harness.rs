//! An in-memory network of `Relay`s in virtual time, for tests, fuzzing and demos.
//!
//! Modelled on quinn-proto's `Pair`: every node is a real [`Relay`]; TCP connections are
//! simulated pipes with a one-way latency and a bandwidth; exit targets are in-memory
//! applications. [`Net::step`] delivers what is due, lets every relay transmit, and when
//! nothing is due jumps the clock to the next delivery or timer. Everything is deterministic
//! from the seed: iteration is in index order and all randomness comes from seeded RNGs.
//!
//! ```text
//!   client node --pipe--> guard --pipe--> middle --pipe--> exit --app--> target (echo / source / sink)
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::client::HopSpec;
use crate::crypto::identity::Ed25519Id;
use crate::crypto::RelayId;
use crate::exit::ExitPolicy;
use crate::relay::{
    ChanId, CircHandle, Event, LinkAuth, PlainLinkAuth, Relay, RelayConfig, RelayKeys, StreamHandle,
};
use crate::time::Instant;
use crate::wire::{EndReason, CELL_LEN};

mod app;
mod hello;
mod keys;
mod tls;

pub use app::{App, TargetKind};
pub use hello::{initiator_hello, responder_hello, RelayInitiator};
pub use keys::{epoch, relay_keys, relay_keys_at, wall_clock, EPOCH_SECS};
use kistrel_base::policy::{AddrPattern, PolicyAction, PolicyRule};
pub use tls::TlsLie;
use tls::{SimEnd, SimTls};

/// Link properties of the simulated network.
#[derive(Clone, Copy, Debug)]
pub struct LinkModel {
    /// One-way delay of every pipe.
    pub latency: Duration,
    /// Bytes per second of every pipe direction.
    pub bandwidth: u64,
    /// Bytes a relay may hand to a pipe at once (the simulated socket buffer).
    pub send_chunk: usize,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel {
            latency: Duration::from_millis(5),
            bandwidth: 100 << 20,
            send_chunk: 64 << 10,
        }
    }
}

/// A node of the network.
#[derive(Debug)]
pub struct Node {
    /// The state machine under test.
    pub relay: Relay,
    /// Its OR address.
    pub addr: SocketAddr,
    /// RSA identity (relays only; zeros for a client).
    pub id: RelayId,
    /// Ed25519 identity (relays only).
    pub ed_id: Ed25519Id,
    /// ntor public key.
    pub ntor_public: [u8; 32],
    /// Events that the harness did not consume itself (circuit built/closed, ...), in order.
    pub log: Vec<Event>,
    /// Killed nodes take no part any more.
    pub dead: bool,
    /// Channels `poll_ready_channel` listed and that still have output (the runtime's
    /// scheduler keeps the same set).
    ready: BTreeSet<ChanId>,
}

/// Rewrites bytes in flight (tests of tampering peers).
pub type Tamper = Box<dyn FnMut(&mut Vec<u8>)>;

struct Pipe {
    in_flight: VecDeque<(Instant, Vec<u8>)>,
    busy_until: Instant,
    tamper: Option<Tamper>,
}

impl Pipe {
    fn new() -> Self {
        Pipe {
            in_flight: VecDeque::new(),
            busy_until: Instant::ZERO,
            tamper: None,
        }
    }
}

struct Link {
    /// (node, channel) at each end; `a` opened the connection.
    ends: [(usize, ChanId); 2],
    /// pipes[0]: a -> b, pipes[1]: b -> a.
    pipes: [Pipe; 2],
    closed: bool,
    /// What each end's transport reports (ends[0] is the initiator).
    auth: [SimEnd; 2],
}

/// The simulated network. See the module docs.
pub struct Net {
    /// Current virtual time.
    pub now: Instant,
    /// The nodes: index 0 is the client when built with [`Net::three_hop`].
    pub nodes: Vec<Node>,
    links: Vec<Link>,
    targets: BTreeMap<SocketAddr, TargetKind>,
    /// Apps by (node, stream).
    pub apps: BTreeMap<(usize, StreamHandle), App>,
    model: LinkModel,
    seed: u64,
    next_app_seed: u64,
    buf: Vec<u8>,
    /// Whether links are (simulated) TLS; false: plain, as the benchmark mode.
    tls: bool,
    /// Nodes whose transport reports something else than its peer's (failure tests).
    lies: BTreeMap<usize, TlsLie>,
    /// Names the exits' resolver knows (RESOLVE).
    names: BTreeMap<String, IpAddr>,
    /// Nodes whose wall clock is off by this many seconds (clock-skew tests).
    clock_offsets: BTreeMap<usize, i64>,
    next_tls: u64,
}

impl core::fmt::Debug for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// What a runtime does with a writable connection of `chan`: all link-control cells, then
/// as many circuit cells (best circuit first) as whole cells fit in `max_bytes`, in one
/// batch. Appends to `out`; returns the bytes appended. For the harness, tests, the fuzz
/// target and benches: the same two calls the runtime's scheduler makes.
pub fn transmit(
    relay: &mut Relay,
    now: Instant,
    chan: ChanId,
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> usize {
    let ctrl = relay.take_ctrl(chan, out);
    let room = max_bytes.saturating_sub(ctrl) / CELL_LEN;
    let max_cells = u32::try_from(room).unwrap_or(u32::MAX);
    let (cells, _) = relay.write_cells(now, chan, max_cells, out, |_| {});
    ctrl + cells as usize * CELL_LEN
}

/// Address of the in-memory exit target in networks made by [`Net::three_hop`].
pub const TARGET: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 80)), 80);

impl Net {
    /// An empty network with the given link model and seed.
    pub fn new(seed: u64, model: LinkModel) -> Self {
        Net {
            now: Instant::ZERO,
            nodes: Vec::new(),
            links: Vec::new(),
            targets: BTreeMap::new(),
            apps: BTreeMap::new(),
            model,
            seed,
            next_app_seed: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            buf: Vec::new(),
            tls: true,
            lies: BTreeMap::new(),
            clock_offsets: BTreeMap::new(),
            names: BTreeMap::new(),
            next_tls: seed,
        }
    }

    /// Makes later links plain (no TLS facts: the handshake's TLS binding is skipped), as
    /// `Links = "plain"`.
    pub fn set_plain_links(&mut self, plain: bool) {
        self.tls = !plain;
    }

    /// Teaches the exits' resolver that `host` is at `ip` (other names fail to resolve).
    pub fn add_name(&mut self, host: &str, ip: IpAddr) {
        self.names.insert(host.to_owned(), ip);
    }

    /// Sets node `i`'s wall clock `secs` seconds ahead of the others (behind if negative).
    pub fn set_clock_offset(&mut self, i: usize, secs: i64) {
        self.clock_offsets.insert(i, secs);
    }

    /// Makes node `i`'s transport lie on every link (existing and later ones).
    pub fn set_tls_lie(&mut self, i: usize, lie: TlsLie) {
        self.lies.insert(i, lie);
        for link in &mut self.links {
            for (end, auth) in link.ends.iter().zip(link.auth.iter_mut()) {
                if end.0 == i {
                    auth.lie = Some(lie);
                }
            }
        }
    }

    /// A client (node 0) plus `relays` relays (nodes 1..) whose last one is an exit allowing
    /// 127.0.0.0/8, and an in-memory target of `kind` at [`TARGET`].
    pub fn three_hop(seed: u64, model: LinkModel, relays: usize, kind: TargetKind) -> Self {
        let mut net = Net::new(seed, model);
        net.add_client();
        for i in 0..relays {
            let exit = i + 1 == relays;
            net.add_relay(exit);
        }
        net.add_target(TARGET, kind);
        net
    }

    /// Adds a client-only node; returns its index.
    pub fn add_client(&mut self) -> usize {
        let idx = self.nodes.len();
        let cfg = RelayConfig::default();
        self.push_node(cfg, idx)
    }

    /// Adds a relay (an exit for 127.0.0.0/8 if `exit`); returns its index.
    pub fn add_relay(&mut self, exit: bool) -> usize {
        let idx = self.nodes.len();
        let keys = relay_keys(self.seed ^ (idx as u64) << 32);
        // "accept 127.0.0.0/8:*"
        let exit_policy = exit.then(|| {
            ExitPolicy::new(vec![PolicyRule {
                action: PolicyAction::Accept,
                addr: AddrPattern::Prefix {
                    addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    bits: 8,
                },
                port_lo: 1,
                port_hi: u16::MAX,
            }])
        });
        let cfg = RelayConfig {
            keys: Some(keys),
            exit_policy,
            ..RelayConfig::default()
        };
        self.push_node(cfg, idx)
    }

    /// Adds a relay with the given keys (e.g. [`relay_keys_at`] with expired certificates);
    /// returns its index.
    pub fn add_relay_with_keys(&mut self, keys: RelayKeys) -> usize {
        let idx = self.nodes.len();
        let cfg = RelayConfig {
            keys: Some(keys),
            ..RelayConfig::default()
        };
        self.push_node(cfg, idx)
    }

    /// Adds a node with a caller-made configuration; its identities are its keys'.
    pub fn push_node(&mut self, cfg: RelayConfig, idx: usize) -> usize {
        let (id, ed_id, ntor_public) = match &cfg.keys {
            Some(k) => (k.rsa_id(), k.identity.ed_id(), k.ntor.public()),
            None => ([0; 20], [0; 32], [0; 32]),
        };
        let rng = ChaCha12Rng::seed_from_u64(self.seed.wrapping_add(idx as u64 + 1));
        let octet = u8::try_from(idx + 1).unwrap_or(u8::MAX);
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, octet)), 9001);
        let mut relay = Relay::new(cfg, rng);
        relay.set_wall_clock(wall_clock(self.now));
        self.nodes.push(Node {
            relay,
            addr,
            id,
            ed_id,
            ntor_public,
            log: Vec::new(),
            dead: false,
            ready: BTreeSet::new(),
        });
        self.nodes.len() - 1
    }

    /// Registers an in-memory server at `addr`.
    pub fn add_target(&mut self, addr: SocketAddr, kind: TargetKind) {
        self.targets.insert(addr, kind);
    }

    /// The path spec of relay node `i`.
    pub fn hop(&self, i: usize) -> HopSpec {
        let n = &self.nodes[i];
        HopSpec {
            id: n.id,
            ed_id: n.ed_id,
            ntor_key: n.ntor_public,
            addr: n.addr,
        }
    }

    /// Starts building a circuit from node `client` through the given relay nodes.
    ///
    /// # Panics
    ///
    /// If `path` is empty (a test bug, reported like a failed assertion).
    pub fn build(&mut self, client: usize, path: &[usize]) -> CircHandle {
        let hops = path.iter().map(|&i| self.hop(i)).collect();
        let now = self.now;
        match self.nodes[client].relay.build_circuit(now, hops) {
            Ok(circ) => circ,
            Err(e) => panic!("cannot build a circuit along {path:?}: {e}"),
        }
    }

    /// Opens a stream on a built circuit and attaches `app` to it.
    ///
    /// # Panics
    ///
    /// If `circ` is not a built circuit of node `client` (a test bug).
    pub fn open_stream(
        &mut self,
        client: usize,
        circ: CircHandle,
        target: SocketAddr,
        app: App,
    ) -> StreamHandle {
        let now = self.now;
        let host = target.ip().to_string();
        let stream = match self.nodes[client]
            .relay
            .open_stream(now, circ, &host, target.port())
        {
            Ok(stream) => stream,
            Err(e) => panic!("cannot open a stream on {circ:?}: {e}"),
        };
        self.apps.insert((client, stream), app);
        stream
    }

    /// Installs a byte rewriter on the pipe from node `from` to node `to` (first link found).
    pub fn tamper(&mut self, from: usize, to: usize, f: Tamper) -> bool {
        for link in &mut self.links {
            for dir in 0..2 {
                if link.ends[dir].0 == from && link.ends[1 - dir].0 == to {
                    link.pipes[dir].tamper = Some(f);
                    return true;
                }
            }
        }
        false
    }

    /// Kills node `i` as `kill -9` would: its connections drop, nothing is sent any more.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].dead = true;
        for l in 0..self.links.len() {
            if self.links[l].ends.iter().any(|e| e.0 == i) {
                self.close_link(l);
            }
        }
    }

    /// Feeds raw bytes into node `i`'s channel `chan` as if they came from the peer.
    pub fn inject(&mut self, i: usize, chan: ChanId, bytes: &[u8]) {
        let now = self.now;
        let auth = self
            .links
            .iter()
            .flat_map(|l| l.ends.iter().zip(l.auth.iter()))
            .find(|(end, _)| **end == (i, chan))
            .map(|(_, auth)| *auth);
        let auth: &dyn LinkAuth = match &auth {
            Some(a) => a,
            None => &PlainLinkAuth,
        };
        self.nodes[i].relay.handle_recv(now, chan, bytes, auth);
    }

    /// Runs steps until `done(self)` holds. Panics after `max_steps` (a livelock or a hang
    /// is a test failure, never an endless loop).
    pub fn run_until(&mut self, max_steps: usize, mut done: impl FnMut(&Net) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            if !self.step() {
                assert!(
                    done(self),
                    "network went idle at {:?} before the condition held",
                    self.now
                );
                return;
            }
        }
        panic!(
            "condition not reached within {max_steps} steps (t = {:?})",
            self.now
        );
    }

    /// Runs until nothing is left to do (or `max_steps`); returns the steps taken.
    pub fn run_idle(&mut self, max_steps: usize) -> usize {
        for n in 0..max_steps {
            if !self.step() {
                return n;
            }
        }
        panic!("network still busy after {max_steps} steps");
    }

    /// One step: handle events, run apps, transmit, deliver, run timers; if nothing was due,
    /// advance the clock to the next due thing. Returns false when fully idle.
    pub fn step(&mut self) -> bool {
        let wall = wall_clock(self.now);
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let offset = self.clock_offsets.get(&i).copied().unwrap_or(0);
            let off = Duration::from_secs(offset.unsigned_abs());
            let t = if offset >= 0 { wall + off } else { wall - off };
            node.relay.set_wall_clock(t);
        }
        let mut progress = false;
        progress |= self.handle_events();
        progress |= self.pump_apps();
        progress |= self.transmit();
        progress |= self.deliver();
        progress |= self.run_timers();
        if progress {
            return true;
        }
        match self.next_due() {
            Some(t) => {
                self.now = t.max(self.now);
                true
            }
            None => false,
        }
    }

    fn next_due(&mut self) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        let mut note = |t: Instant| due = Some(due.map_or(t, |d| d.min(t)));
        for link in &self.links {
            for (dir, pipe) in link.pipes.iter().enumerate() {
                if let Some((t, _)) = pipe.in_flight.front() {
                    note(*t);
                }
                let (node, chan) = link.ends[dir];
                if !link.closed
                    && pipe.busy_until > self.now
                    && self.nodes[node].relay.has_output(chan)
                {
                    note(pipe.busy_until);
                }
            }
        }
        for node in &mut self.nodes {
            if let Some(t) = node.relay.poll_timeout() {
                note(t);
            }
        }
        due
    }

    fn handle_events(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.nodes.len() {
            while let Some(ev) = self.nodes[i].relay.poll_event() {
                progress = true;
                self.handle_event(i, ev);
            }
        }
        progress
    }

    fn handle_event(&mut self, i: usize, ev: Event) {
        let now = self.now;
        match ev {
            Event::OpenChannel { chan, addr } => {
                let peer = self.nodes.iter().position(|n| n.addr == addr && !n.dead);
                match peer {
                    Some(j) => {
                        let from = self.nodes[i].addr;
                        let their = self.nodes[j].relay.accept_channel(now, from);
                        let auth = self.sim_tls(i, j);
                        self.links.push(Link {
                            ends: [(i, chan), (j, their)],
                            pipes: [Pipe::new(), Pipe::new()],
                            closed: false,
                            auth,
                        });
                        self.nodes[i].relay.handle_channel_connected(now, chan);
                    }
                    None => self.nodes[i].relay.handle_channel_closed(now, chan),
                }
            }
            Event::CloseChannel { chan } => {
                if let Some(l) = self
                    .links
                    .iter()
                    .position(|l| !l.closed && l.ends.contains(&(i, chan)))
                {
                    // Bytes already in flight still arrive; the peer then sees the close.
                    self.links[l].closed = true;
                    let other = if self.links[l].ends[0] == (i, chan) {
                        self.links[l].ends[1]
                    } else {
                        self.links[l].ends[0]
                    };
                    self.nodes[other.0]
                        .relay
                        .handle_channel_closed(now, other.1);
                }
            }
            Event::ConnectStream {
                stream,
                host,
                port,
                ip,
            } => {
                let target = ip
                    .or_else(|| host.parse().ok())
                    .map(|ip| SocketAddr::new(ip, port));
                match target.and_then(|t| self.targets.get(&t).copied().map(|k| (t, k))) {
                    Some((addr, kind)) => {
                        let seed = self.next_app_seed;
                        self.next_app_seed = self.next_app_seed.wrapping_add(1);
                        self.apps.insert((i, stream), App::target(seed, kind));
                        self.nodes[i]
                            .relay
                            .handle_stream_connected(now, stream, addr);
                    }
                    None => self.nodes[i].relay.handle_stream_failed(
                        now,
                        stream,
                        EndReason::CONNECTREFUSED,
                    ),
                }
            }
            Event::ResolveStream { stream, host } => {
                let ip = self.names.get(&host).copied();
                self.nodes[i].relay.handle_resolved(now, stream, ip);
            }
            Event::StreamConnected { stream } => {
                if let Some(app) = self.apps.get_mut(&(i, stream)) {
                    app.connected = true;
                }
                self.nodes[i].log.push(Event::StreamConnected { stream });
            }
            Event::StreamEnded { stream, reason } => {
                if let Some(app) = self.apps.get_mut(&(i, stream)) {
                    app.ended = Some(reason);
                }
                self.nodes[i]
                    .log
                    .push(Event::StreamEnded { stream, reason });
            }
            Event::StreamReadable { .. } | Event::StreamWritable { .. } => {}
            other => self.nodes[i].log.push(other),
        }
    }

    /// Moves bytes between apps and their streams. Returns whether anything moved.
    fn pump_apps(&mut self) -> bool {
        let now = self.now;
        let mut progress = false;
        let mut chunk = [0u8; 16 << 10];
        for (&(i, stream), app) in self.apps.iter_mut() {
            if !self.nodes[i].dead {
                progress |= app.pump(&mut self.nodes[i].relay, now, stream, &mut chunk);
            }
        }
        progress
    }

    /// Each free pipe takes what its channel has, as the runtime does with a writable
    /// socket: `poll_ready_channel` says which channels have output, [`transmit`] moves it.
    fn transmit(&mut self) -> bool {
        let now = self.now;
        for node in &mut self.nodes {
            while let Some(chan) = node.relay.poll_ready_channel() {
                node.ready.insert(chan);
            }
        }
        let mut progress = false;
        for link in &mut self.links {
            if link.closed {
                continue;
            }
            for dir in 0..2 {
                let (node, chan) = link.ends[dir];
                let pipe = &mut link.pipes[dir];
                let node = &mut self.nodes[node];
                if pipe.busy_until > now || node.dead || !node.ready.contains(&chan) {
                    continue;
                }
                self.buf.clear();
                let n = transmit(
                    &mut node.relay,
                    now,
                    chan,
                    &mut self.buf,
                    self.model.send_chunk,
                );
                if !node.relay.has_output(chan) {
                    node.ready.remove(&chan);
                }
                if n == 0 {
                    continue;
                }
                progress = true;
                let nanos =
                    (n as u128 * 1_000_000_000 / u128::from(self.model.bandwidth.max(1))) as u64;
                let done = now + Duration::from_nanos(nanos);
                pipe.busy_until = done;
                let mut bytes = std::mem::take(&mut self.buf);
                if let Some(t) = pipe.tamper.as_mut() {
                    t(&mut bytes);
                }
                pipe.in_flight.push_back((done + self.model.latency, bytes));
            }
        }
        for node in &mut self.nodes {
            let relay = &node.relay;
            node.ready.retain(|&chan| relay.has_output(chan));
        }
        progress
    }

    fn deliver(&mut self) -> bool {
        let now = self.now;
        let mut progress = false;
        for l in 0..self.links.len() {
            for dir in 0..2 {
                let (to_node, to_chan) = self.links[l].ends[1 - dir];
                while let Some((t, _)) = self.links[l].pipes[dir].in_flight.front() {
                    if *t > now {
                        break;
                    }
                    let Some((_, bytes)) = self.links[l].pipes[dir].in_flight.pop_front() else {
                        break;
                    };
                    progress = true;
                    if !self.nodes[to_node].dead {
                        let auth = self.links[l].auth[1 - dir];
                        self.nodes[to_node]
                            .relay
                            .handle_recv(now, to_chan, &bytes, &auth);
                    }
                }
            }
        }
        progress
    }

    fn run_timers(&mut self) -> bool {
        let now = self.now;
        let mut progress = false;
        for node in &mut self.nodes {
            if node.relay.poll_timeout().is_some_and(|t| t <= now) {
                node.relay.handle_timeout(now);
                progress = true;
            }
        }
        progress
    }

    fn close_link(&mut self, l: usize) {
        if self.links[l].closed {
            return;
        }
        let now = self.now;
        self.links[l].closed = true;
        for dir in 0..2 {
            self.links[l].pipes[dir].in_flight.clear();
        }
        for (node, chan) in self.links[l].ends {
            if !self.nodes[node].dead {
                self.nodes[node].relay.handle_channel_closed(now, chan);
            }
        }
    }

    /// The transports of a new link from node `i` (initiator) to node `j`.
    fn sim_tls(&mut self, i: usize, j: usize) -> [SimEnd; 2] {
        let mut rng = ChaCha12Rng::seed_from_u64(self.next_tls);
        self.next_tls = self.next_tls.wrapping_add(1);
        let tls = self.tls.then(|| {
            let mut t = SimTls {
                responder_cert: [0; 32],
                secret: [0; 32],
            };
            rng.fill_bytes(&mut t.responder_cert);
            rng.fill_bytes(&mut t.secret);
            t
        });
        [(i, true), (j, false)].map(|(node, initiator)| SimEnd {
            tls,
            initiator,
            lie: self.lies.get(&node).copied(),
        })
    }

    /// The channel node `i` uses for its link to node `j` (first found).
    pub fn channel_between(&self, i: usize, j: usize) -> Option<ChanId> {
        self.links.iter().find_map(|l| {
            if l.closed {
                None
            } else if l.ends[0].0 == i && l.ends[1].0 == j {
                Some(l.ends[0].1)
            } else if l.ends[1].0 == i && l.ends[0].0 == j {
                Some(l.ends[1].1)
            } else {
                None
            }
        })
    }

    /// Whether node `i`'s log has a CircuitBuilt for `circ`.
    pub fn is_built(&self, i: usize, circ: CircHandle) -> bool {
        self.nodes[i]
            .log
            .iter()
            .any(|e| matches!(e, Event::CircuitBuilt { circ: c, .. } if *c == circ))
    }

    /// The CircuitClosed reason logged at node `i` for `circ`, if any.
    pub fn closed_why(&self, i: usize, circ: CircHandle) -> Option<crate::client::CircuitFailure> {
        self.nodes[i].log.iter().find_map(|e| match e {
            Event::CircuitClosed { circ: c, why, .. } if *c == circ => Some(*why),
            _ => None,
        })
    }
}
