//! A simulated network for [`Driver`]s in virtual time: no sockets, no threads, no clock.
//!
//! A [`SimNet`] holds nodes, listeners and connections; each node talks to it through a
//! [`SimDriver`], the same interface a worker has over io_uring or poll, so real `Worker`s
//! (relay, scheduler and all) run over it, next to scripted peers that use a `SimDriver`
//! directly. Each direction of a connection is a [`PipeConfig`]-shaped pipe: a send buffer,
//! a kernel queue, a bottleneck rate with a fixed congestion window, a round-trip time, and
//! the receiver's buffer; the driver reports its TCP_INFO / SIOCOUTQ / SIOCOUTQNSD figures.
//!
//! ```text
//!   test loop, per step:  worker.turn(); worker.wait(Some(ZERO))   (each node; bytes written
//!                         ...scripted peers...                      go to the net in run_once)
//!                         net.advance(step)   connects, acks, wire, kernel, events, time
//! ```
//!
//! Events follow the real backends' rules: `SendDone` once the kernel took everything sent,
//! `RecvClosed` after the peer's last byte (its FIN), bytes already turned into events are
//! delivered even when reads pause; a peer that is gone makes sending fail (ECONNRESET).

mod pipe;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use kistrel_sched::SocketSnapshot;

use super::{no_such_conn, Driver, EventOf, IoEvent};
use crate::slab::{GenSlab, Key};
use crate::time::Instant;

pub use pipe::PipeConfig;

use pipe::Pipe;

#[cfg(test)]
mod tests;

/// Bytes per `Recv` event (the real backends' buffer size).
const RECV_CHUNK: usize = 16 << 10;

/// A connection of a [`SimDriver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SimConn(Key);

impl super::ConnSlot for SimConn {
    fn slot(self) -> usize {
        self.0.index() as usize
    }
}

/// A listener of a [`SimDriver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SimListener(Key);

/// Received bytes.
#[derive(Debug)]
pub struct SimBuf(Vec<u8>);

impl std::ops::Deref for SimBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for SimBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// What a simulated node is told.
pub type SimEvent = IoEvent<SimConn, SimListener, SimBuf>;

/// The simulation's clock: the time [`SimNet::advance`] has reached.
#[derive(Clone, Debug)]
pub struct SimClock {
    now: Rc<Cell<Instant>>,
}

impl SimClock {
    /// The current virtual time (the runtime's `TimeSource`).
    pub fn now(&self) -> Instant {
        self.now.get()
    }
}

/// One end of a connection.
#[derive(Debug)]
struct Endpoint {
    node: usize,
    local: SocketAddr,
    /// The other end; `None` while connecting, and once it is gone.
    peer: Option<Key>,
    /// Our direction: bytes we send.
    pipe: Pipe,
    /// Bytes from the peer not yet turned into events.
    rx: VecDeque<u8>,
    /// The peer's FIN arrived (after all its bytes).
    rx_eof: bool,
    eof_told: bool,
    paused: bool,
    connecting: bool,
    close_when_flushed: bool,
    /// Our owner let go: no more events, no more sending; the kernel still sends what it
    /// has, then the FIN.
    closed: bool,
    fin_sent: bool,
    send_broken: bool,
}

impl Endpoint {
    fn new(node: usize, local: SocketAddr, pipe: PipeConfig, connecting: bool) -> Self {
        Endpoint {
            node,
            local,
            peer: None,
            pipe: Pipe::new(pipe),
            rx: VecDeque::new(),
            rx_eof: false,
            eof_told: false,
            paused: false,
            connecting,
            close_when_flushed: false,
            closed: false,
            fin_sent: false,
            send_broken: false,
        }
    }

    fn live(&self) -> bool {
        !self.closed
    }
}

#[derive(Debug)]
struct ListenerState {
    node: usize,
    addr: SocketAddr,
}

/// A connect to start at the next step.
#[derive(Debug)]
struct PendingConnect {
    conn: Key,
    addr: SocketAddr,
}

/// The shared state behind [`SimNet`] and every [`SimDriver`].
#[derive(Debug)]
struct Net {
    now: Rc<Cell<Instant>>,
    /// Per node: its address and its queued events.
    nodes: Vec<(IpAddr, VecDeque<SimEvent>)>,
    endpoints: GenSlab<Endpoint>,
    listeners: GenSlab<ListenerState>,
    by_addr: HashMap<SocketAddr, Key>,
    /// Pipes of connections to a listener address: (toward it, from it).
    shapes: HashMap<SocketAddr, (PipeConfig, PipeConfig)>,
    connects: Vec<PendingConnect>,
    next_port: u16,
}

/// A simulated network. Cloning gives another handle to the same network.
#[derive(Clone, Debug)]
pub struct SimNet {
    net: Rc<RefCell<Net>>,
}

impl SimNet {
    /// An empty network whose clock starts at `start`.
    pub fn new(start: Instant) -> Self {
        SimNet {
            net: Rc::new(RefCell::new(Net {
                now: Rc::new(Cell::new(start)),
                nodes: Vec::new(),
                endpoints: GenSlab::default(),
                listeners: GenSlab::default(),
                by_addr: HashMap::new(),
                shapes: HashMap::new(),
                connects: Vec::new(),
                next_port: 40_000,
            })),
        }
    }

    /// The network's clock, for workers.
    pub fn clock(&self) -> SimClock {
        SimClock {
            now: Rc::clone(&self.net.borrow().now),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.net.borrow().now.get()
    }

    /// A new node with address `ip`, and its driver.
    pub fn add_node(&self, ip: IpAddr) -> SimDriver {
        let mut net = self.net.borrow_mut();
        net.nodes.push((ip, VecDeque::new()));
        SimDriver {
            net: Rc::clone(&self.net),
            node: net.nodes.len() - 1,
            out: HashMap::new(),
        }
    }

    /// Connections made to `listener` from now on get pipe `to` toward the listener and
    /// `from` back (the default pipe otherwise).
    pub fn shape(&self, listener: SocketAddr, to: PipeConfig, from: PipeConfig) {
        self.net.borrow_mut().shapes.insert(listener, (to, from));
    }

    /// Moves time on by `dt`: starts connects, acknowledges, delivers, transmits at each
    /// pipe's rate, lets each kernel take bytes, and queues the nodes' events.
    pub fn advance(&self, dt: Duration) {
        let mut net = self.net.borrow_mut();
        let now = net.now.get() + dt;
        net.now.set(now);
        net.start_connects();
        net.move_bytes(now, dt);
        net.queue_recv_events();
        net.reap();
    }
}

impl Net {
    fn push_event(&mut self, node: usize, ev: SimEvent) {
        if let Some((_, q)) = self.nodes.get_mut(node) {
            q.push_back(ev);
        }
    }

    fn start_connects(&mut self) {
        for PendingConnect { conn, addr } in std::mem::take(&mut self.connects) {
            let Some(ep) = self.endpoints.get(conn) else {
                continue;
            };
            let (node, local) = (ep.node, ep.local);
            if ep.closed {
                continue;
            }
            let listener = self
                .by_addr
                .get(&addr)
                .and_then(|&l| self.listeners.get(l).map(|s| (l, s.node)));
            let Some((lkey, lnode)) = listener else {
                self.endpoints.remove(conn);
                let err = io::Error::from(io::ErrorKind::ConnectionRefused);
                self.push_event(
                    node,
                    IoEvent::ConnectFailed {
                        conn: SimConn(conn),
                        err,
                    },
                );
                continue;
            };
            let (to, from) = self.shapes.get(&addr).copied().unwrap_or_default();
            let mut accepted = Endpoint::new(lnode, addr, from, false);
            accepted.peer = Some(conn);
            let acc = self.endpoints.insert(accepted);
            if let Some(ep) = self.endpoints.get_mut(conn) {
                ep.peer = Some(acc);
                ep.connecting = false;
                ep.pipe = Pipe::new(to);
            }
            self.push_event(
                node,
                IoEvent::Connected {
                    conn: SimConn(conn),
                },
            );
            let ev = IoEvent::Accepted {
                listener: SimListener(lkey),
                conn: SimConn(acc),
                peer: Some(local),
            };
            self.push_event(lnode, ev);
        }
    }

    /// Every endpoint's sending side, then what reached each receiver by `now`, then FINs
    /// behind the last byte of closed endpoints.
    fn move_bytes(&mut self, now: Instant, dt: Duration) {
        let keys: Vec<Key> = self.endpoints.keys().collect();
        for &k in &keys {
            self.step_sender(k, now, dt);
        }
        let mut arrived: Vec<(Key, Vec<u8>)> = Vec::new();
        let mut fins = Vec::new();
        for &k in &keys {
            let Some(ep) = self.endpoints.get_mut(k) else {
                continue;
            };
            let peer = ep.peer;
            ep.pipe.arrivals(now, |bytes| {
                if let Some(p) = peer {
                    arrived.push((p, bytes));
                }
            });
            if ep.closed && !ep.fin_sent && ep.pipe.sending() == 0 && ep.pipe.drained() {
                ep.fin_sent = true;
                fins.extend(peer);
            }
        }
        for (k, bytes) in arrived {
            if let Some(ep) = self.endpoints.get_mut(k) {
                if ep.live() {
                    ep.rx.extend(bytes);
                }
            }
        }
        for k in fins {
            if let Some(ep) = self.endpoints.get_mut(k) {
                ep.rx_eof = true;
            }
        }
    }

    /// One endpoint's sending side: acknowledgements, the kernel taking the SEND in flight
    /// (`SendDone`, a pending close, or `SendFailed` when the peer is gone), then the wire,
    /// limited by the receiver's free buffer. A closed endpoint's kernel still sends.
    fn step_sender(&mut self, k: Key, now: Instant, dt: Duration) {
        let peer = self.endpoints.get(k).and_then(|ep| ep.peer);
        let peer_state = peer
            .and_then(|p| self.endpoints.get(p))
            .map(|p| (p.rx.len() as u64, p.live()));
        let Some(ep) = self.endpoints.get_mut(k) else {
            return;
        };
        ep.pipe.ack(now);
        let mut event = None;
        if !ep.closed && !ep.connecting {
            let peer_gone = !matches!(peer_state, Some((_, true)));
            if peer_gone && ep.pipe.sending() > 0 && !ep.send_broken {
                ep.send_broken = true;
                ep.pipe.drop_sending();
                let err = io::Error::from(io::ErrorKind::ConnectionReset);
                event = Some(IoEvent::SendFailed {
                    conn: SimConn(k),
                    err,
                });
            } else if ep.pipe.accept() {
                event = Some(IoEvent::SendDone { conn: SimConn(k) });
            }
            if ep.close_when_flushed && ep.pipe.sending() == 0 {
                ep.closed = true;
                event = None;
            }
        }
        let rx_free = match peer_state {
            Some((unread, _)) => ep
                .pipe
                .rcvbuf()
                .saturating_sub(unread + ep.pipe.wire_bytes()),
            None => u64::MAX, // nobody reads: bytes go out and are dropped
        };
        ep.pipe.transmit(now, dt, rx_free);
        let node = ep.node;
        if let Some(ev) = event {
            self.push_event(node, ev);
        }
    }

    /// Received bytes become `Recv` events (unless reads are paused), then the EOF.
    fn queue_recv_events(&mut self) {
        let keys: Vec<Key> = self.endpoints.keys().collect();
        for k in keys {
            let Some(ep) = self.endpoints.get_mut(k) else {
                continue;
            };
            if ep.closed || ep.paused {
                continue;
            }
            let mut events = Vec::new();
            while !ep.rx.is_empty() {
                let n = ep.rx.len().min(RECV_CHUNK);
                let data = SimBuf(ep.rx.drain(..n).collect());
                events.push(IoEvent::Recv {
                    conn: SimConn(k),
                    data,
                });
            }
            if ep.rx_eof && !ep.eof_told {
                ep.eof_told = true;
                events.push(IoEvent::RecvClosed {
                    conn: SimConn(k),
                    err: None,
                });
            }
            let node = ep.node;
            for ev in events {
                self.push_event(node, ev);
            }
        }
    }

    /// Frees endpoints whose owner let go and whose bytes and FIN are out.
    fn reap(&mut self) {
        let done: Vec<Key> = self
            .endpoints
            .iter()
            .filter(|(_, ep)| ep.closed && ep.fin_sent)
            .map(|(k, _)| k)
            .collect();
        for k in done {
            if let Some(ep) = self.endpoints.remove(k) {
                if let Some(p) = ep.peer.and_then(|p| self.endpoints.get_mut(p)) {
                    p.peer = None;
                }
            }
        }
    }

    fn owned(&self, node: usize, conn: SimConn) -> Option<&Endpoint> {
        self.endpoints
            .get(conn.0)
            .filter(|ep| ep.node == node && ep.live())
    }

    fn owned_mut(&mut self, node: usize, conn: SimConn) -> Option<&mut Endpoint> {
        self.endpoints
            .get_mut(conn.0)
            .filter(|ep| ep.node == node && ep.live())
    }
}

/// One node's driver on a [`SimNet`]. `run_once` hands the bytes written since to the
/// network; it never waits (time moves only with [`SimNet::advance`]).
#[derive(Debug)]
pub struct SimDriver {
    net: Rc<RefCell<Net>>,
    node: usize,
    /// Send buffers: bytes appended since the last `run_once`.
    out: HashMap<SimConn, Vec<u8>>,
}

impl SimDriver {
    /// Listens on `addr` (any address: the network is simulated).
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<SimListener> {
        let mut net = self.net.borrow_mut();
        if net.by_addr.contains_key(&addr) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        let key = net.listeners.insert(ListenerState {
            node: self.node,
            addr,
        });
        net.by_addr.insert(addr, key);
        Ok(SimListener(key))
    }

    /// Stops listening.
    pub fn close_listener(&mut self, listener: SimListener) {
        let mut net = self.net.borrow_mut();
        if let Some(l) = net.listeners.remove(listener.0) {
            net.by_addr.remove(&l.addr);
        }
    }

    /// The local address of `conn`.
    pub fn local_addr(&self, conn: SimConn) -> Option<SocketAddr> {
        Some(self.net.borrow().owned(self.node, conn)?.local)
    }
}

impl Driver for SimDriver {
    type Conn = SimConn;
    type Listener = SimListener;
    type Buf = SimBuf;

    fn add_listener(&mut self, _listener: TcpListener) -> io::Result<SimListener> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a simulated node listens with SimDriver::listen",
        ))
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<SimConn> {
        let mut net = self.net.borrow_mut();
        let ip = net
            .nodes
            .get(self.node)
            .map(|(ip, _)| *ip)
            .ok_or_else(no_such_conn)?;
        let port = net.next_port;
        net.next_port = net.next_port.checked_add(1).unwrap_or(40_000);
        let ep = Endpoint::new(
            self.node,
            SocketAddr::new(ip, port),
            PipeConfig::default(),
            true,
        );
        let conn = net.endpoints.insert(ep);
        net.connects.push(PendingConnect { conn, addr });
        Ok(SimConn(conn))
    }

    fn send_buf(&mut self, conn: SimConn) -> Option<&mut Vec<u8>> {
        let ok = self
            .net
            .borrow()
            .owned(self.node, conn)
            .is_some_and(|ep| !ep.send_broken && !ep.close_when_flushed);
        if !ok {
            return None;
        }
        Some(self.out.entry(conn).or_default())
    }

    fn queued_len(&self, conn: SimConn) -> usize {
        let local = self.out.get(&conn).map_or(0, Vec::len);
        let net = self.net.borrow();
        local + net.owned(self.node, conn).map_or(0, |ep| ep.pipe.sending())
    }

    fn set_recv_paused(&mut self, conn: SimConn, paused: bool) {
        if let Some(ep) = self.net.borrow_mut().owned_mut(self.node, conn) {
            ep.paused = paused;
        }
    }

    fn close(&mut self, conn: SimConn) {
        self.out.remove(&conn);
        if let Some(ep) = self.net.borrow_mut().owned_mut(self.node, conn) {
            ep.closed = true;
            ep.pipe.drop_sending();
        }
    }

    fn close_when_flushed(&mut self, conn: SimConn) {
        self.flush(conn);
        if let Some(ep) = self.net.borrow_mut().owned_mut(self.node, conn) {
            ep.close_when_flushed = true;
            if ep.pipe.sending() == 0 && !ep.connecting {
                ep.closed = true;
            }
        }
    }

    fn socket_snapshot(&self, conn: SimConn) -> io::Result<SocketSnapshot> {
        let net = self.net.borrow();
        let ep = net.owned(self.node, conn).ok_or_else(no_such_conn)?;
        Ok(ep.pipe.snapshot())
    }

    fn set_nodelay(&self, conn: SimConn, _on: bool) -> io::Result<()> {
        self.net
            .borrow()
            .owned(self.node, conn)
            .map(drop)
            .ok_or_else(no_such_conn)
    }

    fn poll_event(&mut self) -> Option<EventOf<Self>> {
        let mut net = self.net.borrow_mut();
        let (_, q) = net.nodes.get_mut(self.node)?;
        q.pop_front()
    }

    fn run_once(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        let conns: Vec<SimConn> = self.out.keys().copied().collect();
        for conn in conns {
            self.flush(conn);
        }
        Ok(())
    }

    fn has_tcp_info(&self) -> bool {
        true
    }
}

impl SimDriver {
    /// Hands `conn`'s send buffer to the network (kept while it is still connecting).
    fn flush(&mut self, conn: SimConn) {
        let mut net = self.net.borrow_mut();
        match net.owned_mut(self.node, conn) {
            Some(ep) if ep.connecting => {}
            Some(ep) => {
                if let Some(out) = self.out.remove(&conn) {
                    if !ep.send_broken {
                        ep.pipe.send(&out);
                    }
                }
            }
            None => {
                self.out.remove(&conn);
            }
        }
    }
}
