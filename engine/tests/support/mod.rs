//! Real workers on a simulated network, in virtual time: an exit relay worker and a client
//! worker (each a real `Worker`: relay, scheduler, edges, origins), plus scripted nodes —
//! target servers behind the exit and SOCKS applications in front of the client — that
//! talk through `SimDriver`s of their own. The test plays the control thread: it answers
//! `NeedCircuit` with a one-hop path through the exit.
//!
//! ```text
//!   apps (10.0.0.4) --SOCKS--> client worker (10.0.0.2) ==channel==> exit worker (10.0.0.1)
//!                                                      <== shaped ==    |
//!                                                                servers (10.0.0.3)
//! ```
#![allow(dead_code)] // each test file uses a part

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use kistrel_engine::client::HopSpec;
use kistrel_engine::driver::sim::{PipeConfig, SimClock, SimConn, SimDriver, SimEvent, SimNet};
use kistrel_engine::driver::{Driver, IoEvent};
use kistrel_engine::relay::RelayConfig;
use kistrel_engine::runtime::{
    CircuitCommand, CircuitEvent, Command, EventSender, Listeners, ResolverConfig, Worker,
    WorkerConfig, WorkerEvent,
};
use kistrel_engine::time::Instant;
use kistrel_sched::{SchedConfig, SchedulerKind};

pub const EXIT_OR: SocketAddr = addr(1, 9001);
pub const CLIENT_SOCKS: SocketAddr = addr(2, 1080);

pub const fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, last)), port)
}

/// A worker on the simulated network, with the control thread's ends of its queues.
pub struct SimWorker {
    pub worker: Worker<SimDriver, SimClock>,
    pub commands: Sender<Command>,
    pub events: Receiver<WorkerEvent>,
}

impl SimWorker {
    fn new(
        index: usize,
        net: &SimNet,
        mut driver: SimDriver,
        relay: RelayConfig,
        listeners: (Option<SocketAddr>, Option<SocketAddr>),
        kind: SchedulerKind,
    ) -> Self {
        let mut listen = |a: Option<SocketAddr>| a.map(|a| driver.listen(a).expect("listen"));
        let listeners = Listeners {
            or: listen(listeners.0),
            socks: listen(listeners.1),
        };
        let cfg = WorkerConfig {
            index,
            relay,
            seed: Some(100 + index as u64),
            or_listener: None,
            socks_listener: None,
            schedulers: vec![kind],
            sched: SchedConfig::default(),
            clock: net.clock(),
            links: tls_links(),
            siblings: None,
        };
        let (cmd_tx, cmd_rx) = bounded(1024);
        let (ev_tx, ev_rx) = bounded(1 << 16);
        let worker =
            Worker::with_listeners(cfg, driver, listeners, cmd_rx, EventSender::new(ev_tx))
                .expect("worker");
        SimWorker {
            worker,
            commands: cmd_tx,
            events: ev_rx,
        }
    }

    /// One turn, then the driver takes the bytes written.
    fn turn(&mut self) {
        if self.worker.turn().is_some() {
            self.worker.wait(Some(Duration::ZERO)).expect("sim driver");
        }
    }
}

/// The whole network. See the module docs.
pub struct SimTor {
    pub net: SimNet,
    pub exit: SimWorker,
    pub client: SimWorker,
    /// Scripted target servers (10.0.0.3).
    pub servers: SimDriver,
    /// Scripted SOCKS applications (10.0.0.4).
    pub apps: SimDriver,
    hop: HopSpec,
    pub circuits_built: usize,
}

impl SimTor {
    /// An exit and a client running scheduler `kind`, the exit → client direction of their
    /// channel shaped by `bottleneck` (the other direction has its round trip only).
    pub fn new(
        kind: SchedulerKind,
        bottleneck: PipeConfig,
        resolver: Option<ResolverConfig>,
    ) -> Self {
        let net = SimNet::new(Instant::from_millis(1));
        // Certificates valid at the simulation's wall clock (the harness epoch).
        let keys = kistrel_engine::harness::relay_keys(7);
        let hop = HopSpec {
            id: keys.rsa_id(),
            ed_id: keys.identity.ed_id(),
            ntor_key: keys.ntor.public(),
            addr: EXIT_OR,
        };
        let back = PipeConfig {
            rtt: bottleneck.rtt,
            ..PipeConfig::default()
        };
        net.shape(EXIT_OR, back, bottleneck);
        let exit_cfg = RelayConfig {
            keys: Some(keys),
            exit_policy: Some("accept 10.0.0.0/8:*".parse().expect("policy")),
            ..RelayConfig::default()
        };
        let exit_driver = net.add_node(EXIT_OR.ip());
        let mut exit = SimWorker::new(0, &net, exit_driver, exit_cfg, (Some(EXIT_OR), None), kind);
        if let Some(r) = resolver {
            exit.worker = exit.worker.with_resolver(r);
        }
        let client_driver = net.add_node(CLIENT_SOCKS.ip());
        let client = SimWorker::new(
            1,
            &net,
            client_driver,
            RelayConfig::default(),
            (None, Some(CLIENT_SOCKS)),
            kind,
        );
        let servers = net.add_node(addr(3, 0).ip());
        let apps = net.add_node(addr(4, 0).ip());
        SimTor {
            net,
            exit,
            client,
            servers,
            apps,
            hop,
            circuits_built: 0,
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// One turn of each worker, the control thread's answers, then `dt` of network time.
    /// The scripted nodes act between steps (their bytes go out with this step).
    pub fn step(&mut self, dt: Duration) {
        self.exit.turn();
        self.client.turn();
        while let Ok(ev) = self.client.events.try_recv() {
            match ev {
                WorkerEvent::Circuit(CircuitEvent::NeedCircuit { circuit, .. }) => {
                    let cmd = CircuitCommand::BuildCircuit {
                        circuit,
                        path: vec![self.hop.clone()],
                        deadline: self.now() + Duration::from_secs(60),
                    };
                    self.client
                        .commands
                        .send(Command::Circuit(cmd))
                        .expect("command");
                }
                WorkerEvent::Circuit(CircuitEvent::CircuitBuilt { .. }) => self.circuits_built += 1,
                _ => {}
            }
        }
        while self.exit.events.try_recv().is_ok() {}
        self.servers.run_once(None).expect("sim");
        self.apps.run_once(None).expect("sim");
        self.net.advance(dt);
    }
}

/// A SOCKS5 request with username/password `user` (the isolation key) for `host:port`,
/// pipelined: greeting, authentication, CONNECT (domain-name form for a name).
pub fn socks_request(user: &str, host: &str, port: u16) -> Vec<u8> {
    let mut b = vec![5, 1, 2, 1, user.len() as u8];
    b.extend_from_slice(user.as_bytes());
    b.extend_from_slice(&[1, b'x']);
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => {
            b.extend_from_slice(&[5, 1, 0, 1]);
            b.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            b.extend_from_slice(&[5, 1, 0, 3, host.len() as u8]);
            b.extend_from_slice(host.as_bytes());
        }
    }
    b.extend_from_slice(&port.to_be_bytes());
    b
}

/// Bytes of the replies to [`socks_request`]: method (2), auth (2), request (10).
pub const SOCKS_REPLIES_LEN: usize = 14;

/// One scripted SOCKS application connection.
#[derive(Debug)]
pub struct AppConn {
    pub conn: SimConn,
    /// Bytes received, replies included.
    pub rx: Vec<u8>,
    pub eof: bool,
}

impl AppConn {
    /// Connects to the client's SOCKS port and sends the request.
    pub fn open(apps: &mut SimDriver, request: &[u8]) -> Self {
        let conn = apps.connect(CLIENT_SOCKS).expect("connect");
        apps.send_buf(conn)
            .expect("send buf")
            .extend_from_slice(request);
        AppConn {
            conn,
            rx: Vec::new(),
            eof: false,
        }
    }

    /// The request reply code, once it arrived (0 = succeeded).
    pub fn reply(&self) -> Option<u8> {
        (self.rx.len() >= SOCKS_REPLIES_LEN).then(|| self.rx[5])
    }
}

/// Routes the events of a scripted node: bytes and EOFs to `on_recv`, new connections to
/// `on_accept`.
pub fn drain(
    d: &mut SimDriver,
    mut on_accept: impl FnMut(&mut SimDriver, SocketAddr, SimConn),
    mut on_recv: impl FnMut(SimConn, Option<&[u8]>),
) {
    while let Some(ev) = d.poll_event() {
        match ev {
            SimEvent::Accepted { conn, .. } => {
                let local = d.local_addr(conn).expect("accepted conn");
                on_accept(d, local, conn);
            }
            IoEvent::Recv { conn, data } => on_recv(conn, Some(&data)),
            IoEvent::RecvClosed { conn, .. } => on_recv(conn, None),
            _ => {}
        }
    }
}

/// One TLS context for the whole test process (as `kistrel relay` makes one per process):
/// simulated workers run real TLS over the simulated network.
pub fn tls_links() -> kistrel_engine::runtime::Links {
    static CTX: std::sync::OnceLock<std::sync::Arc<kistrel_engine::runtime::TlsContext>> =
        std::sync::OnceLock::new();
    kistrel_engine::runtime::Links::Tls(
        CTX.get_or_init(|| {
            std::sync::Arc::new(kistrel_engine::runtime::TlsContext::new().expect("TLS context"))
        })
        .clone(),
    )
}
