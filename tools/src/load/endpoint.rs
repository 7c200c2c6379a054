//! The event loop both load processes run once their links are up: reads cells (5 header
//! bytes each), keeps every circuit's window, writes acks and prebuilt chunks of data
//! cells, and answers the bench's control lines.
//!
//! ```text
//!   loop: driver.run_once -> Recv: [sink: link handshake] -> CellScanner -> per cell:
//!            RELAY on a flowing circuit: window.on_cell -> data (ack every 100th) | ack
//!            RELAY on a pending circuit (sink): the start cell -> role, chunk built
//!            CREATE2 (sink): CREATED2 back, circuit pending
//!         fill: per link, while less than SEND_AHEAD is queued: next sending circuit
//!               with window -> one chunk of 100 cells (one copy, no per-cell work)
//!         control: snap -> counters; stop -> no new chunks; quit -> return
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use kistrel_engine::crypto::relay_crypto::RelayLayer;
use kistrel_engine::driver::{Driver, IoEvent};
use kistrel_engine::wire::{ChanCmd, Destroy, CELL_BODY_LEN, CELL_LEN};
use rand_chacha::ChaCha8Rng;

use super::control::{emit, Command, Counters};
use super::handshake::{read_start_cell, Responder, SinkKeys};
use super::scan::{CellRef, CellScanner};
use super::window::{Arrival, CircWindow, Direction, Role, ACK_EVERY};
use super::{Fault, LoadError};

/// Keep about this much queued per link (in the driver and the kernel's way): enough to
/// cover a loop iteration at tens of Gbit/s, little enough that acks do not wait long.
const SEND_AHEAD: usize = 256 << 10;
/// Longest the loop waits for I/O before it looks at the control lines again.
const IDLE_WAIT: Duration = Duration::from_millis(5);

/// The I/O backend of a load process.
#[derive(Debug)]
pub(super) enum LoadDriver {
    /// io_uring (Linux).
    #[cfg(target_os = "linux")]
    Uring(Box<kistrel_engine::uring::Ring>),
    /// poll(2).
    Poll(Box<kistrel_engine::poll::PollDriver>),
}

/// Receive buffers of the load side: larger than the relay's 16 KiB, so that a load process
/// spends fewer completions per cell than the relay it loads.
const LOAD_RECV_BUF: usize = 64 << 10;

impl LoadDriver {
    /// The driver for `backend` (`auto`: io_uring where it can be set up, else poll).
    pub(super) fn open(backend: crate::config::Backend) -> Result<LoadDriver, LoadError> {
        use crate::config::Backend;
        #[cfg(target_os = "linux")]
        if backend != Backend::Poll {
            let config = kistrel_engine::uring::RingConfig {
                buf_entries: 512,
                buf_size: LOAD_RECV_BUF as u32,
                ..Default::default()
            };
            match kistrel_engine::uring::Ring::new(&config) {
                Ok(ring) => return Ok(LoadDriver::Uring(Box::new(ring))),
                Err(e) if backend == Backend::Uring => {
                    return Err(LoadError::io("setting up io_uring")(io::Error::other(e)))
                }
                Err(e) => tracing::warn!("io_uring unavailable ({e}): using poll"),
            }
        }
        #[cfg(not(target_os = "linux"))]
        if backend == Backend::Uring {
            return Err(LoadError::Usage(
                "io_uring needs Linux: use --backend poll".into(),
            ));
        }
        let config = kistrel_engine::poll::PollConfig {
            recv_buf_size: LOAD_RECV_BUF,
            recv_budget: 4 * LOAD_RECV_BUF,
            ..Default::default()
        };
        kistrel_engine::poll::PollDriver::with_config(config)
            .map(|p| LoadDriver::Poll(Box::new(p)))
            .map_err(LoadError::io("setting up poll"))
    }
}

/// A driver that can also take over connected streams (both kistrel backends can).
pub(super) trait Adopt: Driver {
    /// Takes over `stream` and starts reading it.
    fn adopt_stream(&mut self, stream: TcpStream) -> io::Result<Self::Conn>;
}

#[cfg(target_os = "linux")]
impl Adopt for kistrel_engine::uring::Ring {
    fn adopt_stream(&mut self, stream: TcpStream) -> io::Result<Self::Conn> {
        self.adopt(stream).map_err(io::Error::other)
    }
}

impl Adopt for kistrel_engine::poll::PollDriver {
    fn adopt_stream(&mut self, stream: TcpStream) -> io::Result<Self::Conn> {
        self.adopt(stream)
    }
}

/// What one circuit end is doing.
#[derive(Debug)]
enum CircState {
    /// Sink: answered CREATE2, waiting for the start cell.
    Pending(Box<RelayLayer>),
    /// Data flowing (one way).
    Flowing(CircWindow),
}

/// The circuits of one link.
#[derive(Debug, Default)]
struct Circuits {
    states: Vec<(u32, CircState)>,
    by_id: HashMap<u32, usize>,
    /// The last circuit looked up: cells come in runs per circuit.
    last: Option<(u32, usize)>,
    /// Sending circuits (index into `states`) and their prebuilt chunks.
    senders: Vec<(usize, Box<[u8]>)>,
    /// Next sender to try.
    cursor: usize,
}

impl Circuits {
    fn index_of(&mut self, circ: u32) -> Option<usize> {
        if let Some((id, i)) = self.last {
            if id == circ {
                return Some(i);
            }
        }
        let i = *self.by_id.get(&circ)?;
        self.last = Some((circ, i));
        Some(i)
    }

    fn insert(&mut self, circ: u32, state: CircState) {
        self.by_id.insert(circ, self.states.len());
        self.states.push((circ, state));
    }

    /// Starts the data flow of circuit `i` in `role`; a sender gets its chunk.
    fn flow(&mut self, i: usize, role: Role, body: &[u8; CELL_BODY_LEN]) {
        let Some((circ, state)) = self.states.get_mut(i) else {
            return;
        };
        *state = CircState::Flowing(CircWindow::new(role));
        if role == Role::Send {
            let chunk: Vec<u8> = (0..ACK_EVERY)
                .flat_map(|_| cell_bytes(*circ, body))
                .collect();
            self.senders.push((i, chunk.into_boxed_slice()));
        }
    }

    fn flowing(&self) -> u64 {
        self.states
            .iter()
            .filter(|(_, s)| matches!(s, CircState::Flowing(_)))
            .count() as u64
    }
}

/// A RELAY cell of circuit `circ` with `body`, as wire bytes.
fn cell_bytes(circ: u32, body: &[u8; CELL_BODY_LEN]) -> [u8; CELL_LEN] {
    let mut cell = [0u8; CELL_LEN];
    cell[..4].copy_from_slice(&circ.to_be_bytes());
    cell[4] = ChanCmd::RELAY.0;
    cell[5..].copy_from_slice(body);
    cell
}

/// One link of the event loop.
#[derive(Debug, Default)]
struct Link {
    /// Sink: the link handshake, until it is done.
    responder: Option<Responder>,
    scanner: CellScanner,
    circuits: Circuits,
}

/// What the per-cell handler borrows besides the link's circuits.
struct CellCtx<'a> {
    out: &'a mut Vec<u8>,
    counters: &'a mut Counters,
    sink: Option<&'a SinkKeys>,
    rng: &'a mut ChaCha8Rng,
    body: &'a [u8; CELL_BODY_LEN],
    /// After `stop`: the run is over, the peer may tear circuits down.
    stopped: bool,
}

/// The event loop of a pump or a sink.
pub(super) struct Endpoint<D: Driver> {
    driver: D,
    links: HashMap<D::Conn, Link>,
    counters: Counters,
    sending: bool,
    /// Time burnt per chunk written (the load-limit test's deliberately slow pump).
    burn_per_chunk: Duration,
    /// The sink's keys (it answers CREATE2); `None` in the pump.
    sink: Option<SinkKeys>,
    rng: ChaCha8Rng,
    /// The body of every data and ack cell: arbitrary bytes, never read.
    body: Box<[u8; CELL_BODY_LEN]>,
}

impl<D: Driver> std::fmt::Debug for Endpoint<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("links", &self.links.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<D: Adopt> Endpoint<D> {
    /// An endpoint over `driver`; `sink` makes it answer CREATE2 and start cells.
    pub(super) fn new(driver: D, sink: Option<SinkKeys>, mut rng: ChaCha8Rng) -> Self {
        let mut body = Box::new([0u8; CELL_BODY_LEN]);
        rand::RngCore::fill_bytes(&mut rng, &mut body[..]);
        Endpoint {
            driver,
            links: HashMap::new(),
            counters: Counters::default(),
            sending: true,
            burn_per_chunk: Duration::ZERO,
            sink,
            rng,
            body,
        }
    }

    /// Burns `per_cell` of CPU per data cell sent (in chunks).
    pub(super) fn set_burn(&mut self, per_cell: Duration) {
        self.burn_per_chunk = per_cell * ACK_EVERY;
    }

    /// Sink: accept links on `listener`.
    pub(super) fn listen(&mut self, listener: TcpListener) -> Result<(), LoadError> {
        self.driver
            .add_listener(listener)
            .map(drop)
            .map_err(LoadError::io("listening"))
    }

    /// Pump: takes over a link whose circuits are built: `(circuit id, direction, start
    /// cell)` each. The start cells go out first, then data.
    pub(super) fn add_link(
        &mut self,
        stream: TcpStream,
        circuits: Vec<(u32, Direction, [u8; CELL_LEN])>,
    ) -> Result<(), LoadError> {
        let conn = self
            .driver
            .adopt_stream(stream)
            .map_err(LoadError::io("adopting a pump link"))?;
        let mut link = Link::default();
        let out = self.driver.send_buf(conn).ok_or_else(|| {
            LoadError::io("adopting a pump link")(io::ErrorKind::NotConnected.into())
        })?;
        for (circ, dir, start) in circuits {
            out.extend_from_slice(&start);
            let role = match dir {
                Direction::Forward => Role::Send,
                Direction::Backward => Role::Receive,
            };
            link.circuits
                .insert(circ, CircState::Flowing(CircWindow::new(role)));
            link.circuits
                .flow(link.circuits.states.len() - 1, role, &self.body);
        }
        self.links.insert(conn, link);
        self.counters.connections = self.links.len() as u64;
        self.counters.circuits = self.links.values().map(|l| l.circuits.flowing()).sum();
        Ok(())
    }

    /// Runs until [`Command::Quit`]; returns the final counters.
    pub(super) fn run(&mut self, commands: &Receiver<Command>) -> Result<Counters, LoadError> {
        loop {
            self.driver
                .run_once(Some(IDLE_WAIT))
                .map_err(LoadError::io("waiting for I/O"))?;
            while let Some(ev) = self.driver.poll_event() {
                self.on_event(ev)?;
            }
            if self.sending {
                self.fill();
            }
            while let Ok(cmd) = commands.try_recv() {
                match cmd {
                    Command::Snap => emit("counters", &self.counters)?,
                    Command::Stop => self.sending = false,
                    Command::Quit => return Ok(self.counters),
                }
            }
        }
    }

    fn on_event(&mut self, ev: IoEvent<D::Conn, D::Listener, D::Buf>) -> Result<(), LoadError> {
        match ev {
            IoEvent::Accepted { conn, .. } => {
                let _ = self.driver.set_nodelay(conn, true);
                let link = Link {
                    responder: Some(Responder::default()),
                    ..Link::default()
                };
                self.links.insert(conn, link);
                self.counters.connections = self.links.len() as u64;
                Ok(())
            }
            IoEvent::Recv { conn, data } => self.on_recv(conn, &data),
            IoEvent::RecvClosed { err: Some(e), .. }
            | IoEvent::SendFailed { err: e, .. }
            | IoEvent::ConnectFailed { err: e, .. } => Err(LoadError::io("a load link failed")(e)),
            // After `stop` the run is over: the other side may quit first.
            IoEvent::RecvClosed { conn, err: None } if !self.sending => {
                self.driver.close(conn);
                self.links.remove(&conn);
                Ok(())
            }
            IoEvent::RecvClosed { err: None, .. } => Err(Fault::Closed.into()),
            // The load side's links are plain: no kTLS records.
            IoEvent::Connected { .. }
            | IoEvent::SendDone { .. }
            | IoEvent::TlsRecord { .. }
            | IoEvent::RecvStopped { .. } => Ok(()),
        }
    }

    fn on_recv(&mut self, conn: D::Conn, mut bytes: &[u8]) -> Result<(), LoadError> {
        let Endpoint {
            driver,
            links,
            counters,
            sink,
            rng,
            body,
            sending,
            ..
        } = self;
        let Some(link) = links.get_mut(&conn) else {
            return Ok(());
        };
        let Some(out) = driver.send_buf(conn) else {
            return Ok(());
        };
        if let (Some(responder), Some(keys)) = (&mut link.responder, sink.as_ref()) {
            let (used, open) = responder.feed(bytes, keys, out)?;
            if !open {
                return Ok(());
            }
            link.responder = None;
            bytes = &bytes[used..];
        }
        let mut ctx = CellCtx {
            out,
            counters,
            sink: sink.as_ref(),
            rng,
            body,
            stopped: !*sending,
        };
        let circuits = &mut link.circuits;
        link.scanner
            .scan(bytes, |cell| on_cell(cell, circuits, &mut ctx))
    }

    /// Queues data chunks on every link until [`SEND_AHEAD`] is queued or no circuit has
    /// window left.
    fn fill(&mut self) {
        for (&conn, link) in &mut self.links {
            let c = &mut link.circuits;
            while self.driver.queued_len(conn) < SEND_AHEAD {
                let n = c.senders.len();
                let next = (0..n).map(|k| (c.cursor + k) % n).find(|&s| {
                    match c.states.get_mut(c.senders[s].0) {
                        Some((_, CircState::Flowing(w))) => w.take_chunk(),
                        _ => false,
                    }
                });
                let Some(s) = next else { break };
                c.cursor = (s + 1) % n;
                let Some(out) = self.driver.send_buf(conn) else {
                    break;
                };
                out.extend_from_slice(&c.senders[s].1);
                self.counters.data_sent += u64::from(ACK_EVERY);
                burn(self.burn_per_chunk);
            }
        }
    }
}

/// Spins for `d` (a CPU-bound pump on purpose).
fn burn(d: Duration) {
    if d.is_zero() {
        return;
    }
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// One cell from a link: the whole per-cell receive path.
#[inline]
fn on_cell(
    cell: CellRef<'_>,
    circuits: &mut Circuits,
    ctx: &mut CellCtx<'_>,
) -> Result<(), LoadError> {
    let relay = cell.cmd == ChanCmd::RELAY.0 || cell.cmd == ChanCmd::RELAY_EARLY.0;
    if !relay {
        return on_other_cell(cell, circuits, ctx);
    }
    let unknown = Fault::UnknownCircuit {
        circ: cell.circ,
        cmd: cell.cmd,
    };
    let i = circuits.index_of(cell.circ).ok_or(unknown)?;
    let Some((_, state)) = circuits.states.get_mut(i) else {
        return Err(unknown.into());
    };
    match state {
        CircState::Flowing(w) => match w.on_cell() {
            Ok(Arrival::Data { ack_due }) => {
                ctx.counters.data_received += 1;
                if ack_due {
                    ctx.out.extend_from_slice(&cell_bytes(cell.circ, ctx.body));
                    ctx.counters.acks_sent += 1;
                }
                Ok(())
            }
            Ok(Arrival::Ack) => {
                ctx.counters.acks_received += 1;
                Ok(())
            }
            Err(_) => Err(Fault::AckBeyondWindow { circ: cell.circ }.into()),
        },
        CircState::Pending(layer) => {
            let dir = read_start_cell(layer, cell.circ, cell.body)?;
            // The sink's role is the pump's mirror: forward data is the sink's to receive.
            let role = match dir {
                Direction::Forward => Role::Receive,
                Direction::Backward => Role::Send,
            };
            circuits.flow(i, role, ctx.body);
            ctx.counters.circuits += 1;
            Ok(())
        }
    }
}

/// A cell other than RELAY: CREATE2 (the sink answers), PADDING (ignored), DESTROY (fails
/// the run: the peer closed a circuit), anything else is a fault.
fn on_other_cell(
    cell: CellRef<'_>,
    circuits: &mut Circuits,
    ctx: &mut CellCtx<'_>,
) -> Result<(), LoadError> {
    match ChanCmd(cell.cmd) {
        ChanCmd::PADDING => Ok(()),
        ChanCmd::CREATE2 => {
            let Some(keys) = ctx.sink else {
                return Err(Fault::Handshake { cmd: cell.cmd }.into());
            };
            if circuits.by_id.contains_key(&cell.circ) {
                return Err(Fault::CircuitHandshake { circ: cell.circ }.into());
            }
            let layer = keys.answer_create2(cell.circ, cell.body, ctx.rng, ctx.out)?;
            circuits.insert(cell.circ, CircState::Pending(Box::new(layer)));
            Ok(())
        }
        ChanCmd::DESTROY if ctx.stopped => Ok(()),
        ChanCmd::DESTROY => Err(Fault::Destroyed {
            circ: cell.circ,
            reason: Destroy::parse(cell.body).map_or(0, |d| d.reason.0),
        }
        .into()),
        _ => Err(Fault::UnknownCircuit {
            circ: cell.circ,
            cmd: cell.cmd,
        }
        .into()),
    }
}
