//! A client and its relays as real `Worker`s on the engine's simulated network, with the
//! real `ControlPlane` as their control thread, all in virtual time: no sockets, no threads,
//! no wall clock. The harness sits on the client's queues both ways, so a test sees every
//! circuit message with the time it passed.
//!
//! ```text
//!   apps (10.0.0.30) --SOCKS--> client worker (10.0.0.10) ==> relays 10.0.0.1, .2, ...
//!                                  |  ^                          (blackholes: accept,
//!                 WorkerEvent ---> log --> ControlPlane            never answer)
//!                 Command     <--- log <--     |                 servers (10.0.0.20)
//! ```
#![allow(dead_code)] // each test file uses a part

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender};
use kistrel_base::control::{CircuitCommand, CircuitEvent, CircuitKey};
use kistrel_control::{ControlPlane, NoPublish, PathControl};
use kistrel_engine::driver::sim::{PipeConfig, SimClock, SimConn, SimDriver, SimNet};
use kistrel_engine::driver::{Driver, IoEvent};
use kistrel_engine::relay::RelayConfig;
use kistrel_engine::runtime::{Command, EventSender, Listeners, Worker, WorkerConfig, WorkerEvent};
use kistrel_engine::time::Instant;
use kistrel_pathsel::control::ControlCore;
use kistrel_pathsel::{CbtConfig, Directory, Flag, PathConfig, RelayFlags, RelayInfo, State};
use kistrel_sched::{SchedConfig, SchedulerKind};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

pub const CLIENT_SOCKS: SocketAddr = addr(10, 1080);
/// Where the scripted target servers listen (any port).
pub const SERVERS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 20));
const APPS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 30));

pub const fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
}

/// One relay of the test network, as the directory lists it.
pub struct RelaySpec {
    /// Its address is 10.0.0.`n`:9001, its keys `harness::relay_keys(n)`.
    pub n: u8,
    pub flags: &'static [Flag],
    pub policy: &'static str,
    /// Listed, but a scripted node that accepts connections and never answers.
    pub blackhole: bool,
}

/// A real worker with the ends of its queues.
pub struct Node {
    pub worker: Worker<SimDriver, SimClock>,
    pub commands: Sender<Command>,
    pub events: Receiver<WorkerEvent>,
}

impl Node {
    /// A worker listening on `listen`: its OR port if it is a relay (has keys), else its
    /// SOCKS port.
    fn new(
        index: usize,
        net: &SimNet,
        mut driver: SimDriver,
        relay: RelayConfig,
        listen: SocketAddr,
    ) -> Self {
        let listener = driver.listen(listen).expect("listen");
        let is_relay = relay.keys.is_some();
        let listeners = Listeners {
            or: is_relay.then_some(listener),
            socks: (!is_relay).then_some(listener),
        };
        let cfg = WorkerConfig {
            index,
            relay,
            seed: Some(50 + index as u64),
            or_listener: None,
            socks_listener: None,
            schedulers: vec![SchedulerKind::Kist],
            sched: SchedConfig::default(),
            clock: net.clock(),
            links: tls_links(),
            siblings: None,
        };
        let (commands, cmd_rx) = bounded(1024);
        let (ev_tx, events) = bounded(1024);
        let worker =
            Worker::with_listeners(cfg, driver, listeners, cmd_rx, EventSender::new(ev_tx))
                .expect("worker");
        Node {
            worker,
            commands,
            events,
        }
    }

    fn turn(&mut self) {
        if self.worker.turn().is_some() {
            self.worker.wait(Some(Duration::ZERO)).expect("sim driver");
        }
    }
}

/// The wall clock of the simulation: a fixed date plus virtual time (guard dates only).
pub fn wall(now: Instant) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + (now - Instant::ZERO)
}

/// The network. See the module docs.
pub struct Tor {
    pub net: SimNet,
    pub relays: Vec<(u8, Node)>,
    /// Every listed relay's RSA identity digest, by `n`.
    pub ids: std::collections::HashMap<u8, [u8; 20]>,
    pub blackholes: Vec<SimDriver>,
    pub client: Node,
    pub plane: ControlPlane,
    /// Every circuit event the client sent and command it got, with the time it passed.
    pub events: Vec<(Instant, CircuitEvent)>,
    pub commands: Vec<(Instant, CircuitCommand)>,
    to_plane: Sender<WorkerEvent>,
    from_plane: Receiver<Command>,
    pub servers: SimDriver,
    pub apps: SimDriver,
}

impl Tor {
    /// `relays` as listed; every connection to one gets `pipe` both ways; the control
    /// plane's estimator starts from `state`.
    pub fn new(relays: &[RelaySpec], pipe: PipeConfig, cbt: CbtConfig, state: &State) -> Self {
        let net = SimNet::new(Instant::from_millis(1));
        let (mut nodes, mut blackholes, mut infos) = (Vec::new(), Vec::new(), Vec::new());
        let mut ids = std::collections::HashMap::new();
        for (i, spec) in relays.iter().enumerate() {
            // Real identities, certificates valid at the simulation's wall clock.
            let keys = kistrel_engine::harness::relay_keys(u64::from(spec.n));
            let or = addr(spec.n, 9001);
            ids.insert(spec.n, keys.rsa_id());
            net.shape(or, pipe, pipe);
            infos.push(RelayInfo {
                nickname: format!("r{}", spec.n),
                identity: keys.rsa_id(),
                ed25519_identity: keys.identity.ed_id(),
                ntor_key: keys.ntor.public(),
                address: or,
                bandwidth: 100,
                flags: RelayFlags::from_flags(
                    &[&[Flag::Running, Flag::Valid][..], spec.flags].concat(),
                ),
                family: Vec::new(),
                exit_policy: spec.policy.parse().expect("policy"),
            });
            let mut driver = net.add_node(or.ip());
            if spec.blackhole {
                driver.listen(or).expect("listen");
                blackholes.push(driver);
                continue;
            }
            let cfg = RelayConfig {
                keys: Some(keys),
                exit_policy: Some(spec.policy.parse().expect("policy")),
                ..RelayConfig::default()
            };
            nodes.push((spec.n, Node::new(1 + i, &net, driver, cfg, or)));
        }
        let dir = Directory::from_relays(infos, None).expect("directory");
        let client_driver = net.add_node(CLIENT_SOCKS.ip());
        let client = Node::new(0, &net, client_driver, RelayConfig::default(), CLIENT_SOCKS);
        let (to_plane, plane_events) = bounded(1024);
        let (plane_commands, from_plane) = bounded(1024);
        let path = PathConfig {
            enforce_distinct_subnets: false,
            ..PathConfig::default()
        };
        let mut rng = ChaCha12Rng::seed_from_u64(11);
        let core = ControlCore::new(&dir, path, cbt, state, &mut rng);
        let plane = ControlPlane::new(plane_events, vec![plane_commands], Box::new(NoPublish))
            .with_paths(PathControl::new(core, rng));
        Tor {
            servers: net.add_node(SERVERS),
            apps: net.add_node(APPS),
            net,
            relays: nodes,
            ids,
            blackholes,
            client,
            plane,
            events: Vec::new(),
            commands: Vec::new(),
            to_plane,
            from_plane,
        }
    }

    pub fn now(&self) -> Instant {
        self.net.now()
    }

    pub fn core(&self) -> &ControlCore {
        self.plane.paths().expect("paths").core()
    }

    /// The relay worker listed as 10.0.0.`n`.
    pub fn relay(&self, n: u8) -> &Worker<SimDriver, SimClock> {
        &self
            .relays
            .iter()
            .find(|(m, _)| *m == n)
            .expect("relay")
            .1
            .worker
    }

    /// One turn of every worker and of the control plane, then `dt` of network time. The
    /// scripted nodes act between steps.
    pub fn step(&mut self, dt: Duration) {
        for (_, node) in &mut self.relays {
            node.turn();
            while node.events.try_recv().is_ok() {} // Relays ask nothing: only figures.
        }
        self.client.turn();
        let now = self.now();
        while let Ok(ev) = self.client.events.try_recv() {
            if let WorkerEvent::Circuit(c) = &ev {
                self.events.push((now, *c));
            }
            self.to_plane.send(ev).expect("plane");
        }
        self.plane.turn(now, wall(now));
        while let Ok(cmd) = self.from_plane.try_recv() {
            if let Command::Circuit(c) = &cmd {
                self.commands.push((now, c.clone()));
            }
            self.client.commands.send(cmd).expect("client");
        }
        for b in &mut self.blackholes {
            while b.poll_event().is_some() {} // Accept, read, say nothing.
            b.run_once(None).expect("sim");
        }
        self.servers.run_once(None).expect("sim");
        self.apps.run_once(None).expect("sim");
        self.net.advance(dt);
    }

    /// Steps of `dt` until `done` or `limit` of virtual time has passed; the time it was done.
    pub fn run_until(
        &mut self,
        dt: Duration,
        limit: Duration,
        mut done: impl FnMut(&mut Tor) -> bool,
    ) -> Option<Instant> {
        let end = self.now() + limit;
        while self.now() < end {
            self.step(dt);
            if done(self) {
                return Some(self.now());
            }
        }
        None
    }

    /// When the client sent `ev`, if it did.
    pub fn sent(&self, ev: &CircuitEvent) -> Option<Instant> {
        self.events.iter().find(|(_, e)| e == ev).map(|(t, _)| *t)
    }

    /// The command the client got about `circuit` that `pick` matches, with its time.
    pub fn got(
        &self,
        circuit: CircuitKey,
        pick: impl Fn(&CircuitCommand) -> bool,
    ) -> Option<(Instant, CircuitCommand)> {
        self.commands
            .iter()
            .find(|(_, c)| c.circuit() == circuit && pick(c))
            .cloned()
    }
}

/// The build time the client reported for `circuit`, if it did.
pub fn build_time(tor: &Tor, circuit: CircuitKey) -> Option<Duration> {
    tor.events.iter().find_map(|(_, e)| match e {
        CircuitEvent::CircuitBuilt {
            circuit: c,
            build_time,
        } if *c == circuit => Some(*build_time),
        _ => None,
    })
}

/// A SOCKS5 request with username/password `user` (the isolation key) for `host:port`,
/// pipelined: greeting, authentication, CONNECT.
pub fn socks_request(user: &str, host: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut b = vec![5, 1, 2, 1, user.len() as u8];
    b.extend_from_slice(user.as_bytes());
    b.extend_from_slice(&[1, b'x', 5, 1, 0, 1]);
    b.extend_from_slice(&host.octets());
    b.extend_from_slice(&port.to_be_bytes());
    b
}

/// Bytes of the replies to [`socks_request`]: method (2), auth (2), request (10).
pub const SOCKS_REPLIES_LEN: usize = 14;

/// Connects a SOCKS application to the client and sends `request`.
pub fn open_app(apps: &mut SimDriver, request: &[u8]) -> SimConn {
    let conn = apps.connect(CLIENT_SOCKS).expect("connect");
    apps.send_buf(conn)
        .expect("send buf")
        .extend_from_slice(request);
    conn
}

/// Routes a scripted node's events: accepted connections (with the local address) to
/// `on_accept`, received bytes to `on_recv`.
pub fn drain(
    d: &mut SimDriver,
    mut on_accept: impl FnMut(&mut SimDriver, SocketAddr, SimConn),
    mut on_recv: impl FnMut(SimConn, &[u8]),
) {
    while let Some(ev) = d.poll_event() {
        match ev {
            IoEvent::Accepted { conn, .. } => {
                let local = d.local_addr(conn).expect("accepted conn");
                on_accept(d, local, conn);
            }
            IoEvent::Recv { conn, data } => on_recv(conn, &data),
            _ => {}
        }
    }
}

/// One TLS context for the whole test process (as `kistrel relay` makes one per process):
/// the simulated workers' links run real TLS over the simulated network.
fn tls_links() -> kistrel_engine::runtime::Links {
    static CTX: std::sync::OnceLock<std::sync::Arc<kistrel_engine::runtime::TlsContext>> =
        std::sync::OnceLock::new();
    kistrel_engine::runtime::Links::Tls(
        CTX.get_or_init(|| {
            std::sync::Arc::new(kistrel_engine::runtime::TlsContext::new().expect("TLS context"))
        })
        .clone(),
    )
}
