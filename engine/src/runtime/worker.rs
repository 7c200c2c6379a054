//! The worker loop: one thread, one driver, one `Relay`, one scheduler, and the tables that
//! connect them (connections, edges, origins). Everything that decides lives in a sans-IO
//! part ([`Relay`], the scheduler, [`Edges`], [`Origins`]); this file moves events between
//! them and the driver, and performs the actions they return.

mod balance;
mod links;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Duration;

use crossbeam_channel::Receiver;
use kistrel_sched::{
    make_scheduler, SchedConfig, SchedError, SchedMetrics, Scheduler, SchedulerKind,
};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use tracing::{debug, info, warn};

use crate::driver::{Driver, IoEvent};
use crate::relay::{ChanId, Event, Relay, RelayConfig, RelayStats, StreamHandle};
use crate::socks::SocksReply;
use crate::time::Instant;
use crate::wire::EndReason;
use crate::{ErrorKind, HasKind};

use super::balance::{Accepted, Siblings};
use super::clock::{Clock, TimeSource};
use super::conns::{ConnTable, ReadGate, Role};
use super::control::{Command, EventSender, WorkerEvent, WorkerStats};
use super::edge::{EdgeAction, Edges};
use super::link::{LinkMaker, LinkStats, Links};
use super::origin::{OriginAction, Origins};
use super::resolve::{Resolver, ResolverConfig};
use super::transmit::{Parts, Transmit, KERNEL_SAMPLE_EVERY};

/// Longest the loop sleeps without checking the control queue.
const MAX_WAIT: Duration = Duration::from_millis(1);
/// How long a stopping worker waits for its DESTROYs and queued bytes to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How often the worker reports its counters to the control thread.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Stop moving stream bytes into an edge socket's send buffer above this much queued.
const EDGE_SEND_HIGH_WATER: usize = 512 << 10;
/// Bytes read from a stream per copy into an edge socket's send buffer.
const EDGE_CHUNK: usize = 64 << 10;

/// Everything a worker needs, built by the process that starts it.
#[derive(Debug)]
pub struct WorkerConfig<C = Clock> {
    /// Index of this worker (for events and logs).
    pub index: usize,
    /// The relay state machine's configuration (keys cloned per worker).
    pub relay: RelayConfig,
    /// Seed for the worker's RNG; None = from the OS.
    pub seed: Option<u64>,
    /// OR port listener (relays): an SO_REUSEPORT socket of this worker's own.
    pub or_listener: Option<TcpListener>,
    /// SOCKS listener (clients).
    pub socks_listener: Option<TcpListener>,
    /// `Schedulers`, in order of preference.
    pub schedulers: Vec<SchedulerKind>,
    /// Scheduler settings.
    pub sched: SchedConfig,
    /// Where `now` comes from: the process-wide clock, or a simulation's virtual time.
    pub clock: C,
    /// How channels are carried: TLS (the default of every node) or plain (benchmarks).
    pub links: Links,
    /// The process's other workers, to spread accepted connections (channels, SOCKS
    /// clients) over (`runtime::balance`); `None` keeps every accepted connection on the
    /// worker that accepted it.
    pub siblings: Option<Siblings>,
}

/// The listeners of a worker, as handles of its driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listeners<L> {
    /// Accepts channels from relays and clients.
    pub or: Option<L>,
    /// Accepts SOCKS clients.
    pub socks: Option<L>,
}

/// What a worker reports when it stops.
#[derive(Debug)]
pub struct WorkerReport {
    /// Relay counters.
    pub stats: RelayStats,
    /// The scheduler in use.
    pub scheduler: SchedulerKind,
    /// Scheduler metrics.
    pub metrics: SchedMetrics,
    /// Control events dropped because the queue was full.
    pub events_dropped: u64,
    /// Link counters (per kind, records).
    pub links: LinkStats,
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// No scheduler of the `Schedulers` list can run here, or its settings are invalid.
    #[error(transparent)]
    Scheduler(#[from] SchedError),
    /// A listener could not be handed to the driver.
    #[error("{which} listener: {source}")]
    Listener {
        /// `OR` or `SOCKS`.
        which: &'static str,
        /// The driver's error.
        #[source]
        source: io::Error,
    },
    /// The I/O backend could not be set up.
    #[error("setting up the {backend} backend: {source}")]
    Backend {
        /// `io_uring` or `poll`.
        backend: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// The cause's kind.
        kind: ErrorKind,
    },
}

impl HasKind for WorkerError {
    fn kind(&self) -> ErrorKind {
        match self {
            WorkerError::Scheduler(SchedError::NoUsableScheduler) => ErrorKind::Unsupported,
            WorkerError::Scheduler(_) => ErrorKind::BadConfig,
            WorkerError::Listener { source, .. } => HasKind::kind(source),
            WorkerError::Backend { kind, .. } => *kind,
        }
    }
}

/// The control thread's queues, as a worker sees them.
#[derive(Debug)]
struct Control {
    commands: Receiver<Command>,
    events: EventSender,
}

/// When the loop last did its periodic work, and since when it is stopping.
#[derive(Debug)]
struct Timers<C> {
    stopping: Option<Instant>,
    last_stats: Instant,
    last_sample: Instant,
    /// Reused by the stream delivery pass.
    scratch: Vec<C>,
}

/// One worker. See the module docs of [`crate::runtime`].
pub struct Worker<D: Driver, C: TimeSource = Clock> {
    index: usize,
    driver: D,
    clock: C,
    relay: Relay,
    sched: Box<dyn Scheduler<ChanId>>,
    listeners: Listeners<D::Listener>,
    conns: ConnTable<D::Conn>,
    edges: Edges<D::Conn>,
    origins: Origins<D::Conn>,
    resolver: Resolver,
    control: Control,
    transmit: Transmit,
    timers: Timers<D::Conn>,
    links: LinkMaker,
    siblings: Option<Siblings>,
}

impl<D: Driver, C: TimeSource> core::fmt::Debug for Worker<D, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("relay", &self.relay)
            .field("scheduler", &self.sched.kind())
            .finish_non_exhaustive()
    }
}

impl<D: Driver, C: TimeSource> Worker<D, C> {
    /// Sets up a worker over `driver`, handing it the listeners of `cfg`. Fails if no
    /// scheduler in the list is usable here or a listener cannot be added.
    pub fn new(
        mut cfg: WorkerConfig<C>,
        mut driver: D,
        commands: Receiver<Command>,
        events: EventSender,
    ) -> Result<Self, WorkerError> {
        let mut add = |l: Option<TcpListener>, which| {
            l.map(|l| driver.add_listener(l))
                .transpose()
                .map_err(|source| WorkerError::Listener { which, source })
        };
        let listeners = Listeners {
            or: add(cfg.or_listener.take(), "OR")?,
            socks: add(cfg.socks_listener.take(), "SOCKS")?,
        };
        // Accepted connections wait for the decision of `place_accepted`.
        if cfg.siblings.as_ref().is_some_and(Siblings::has_peers) {
            for l in [listeners.or, listeners.socks].into_iter().flatten() {
                driver.hold_accepted(l);
            }
        }
        Self::with_listeners(cfg, driver, listeners, commands, events)
    }

    /// Sets up a worker over `driver` whose listeners were added already (a simulated
    /// driver's, say); listeners in `cfg` are ignored.
    pub fn with_listeners(
        mut cfg: WorkerConfig<C>,
        driver: D,
        listeners: Listeners<D::Listener>,
        commands: Receiver<Command>,
        events: EventSender,
    ) -> Result<Self, WorkerError> {
        let (sched, kind) =
            make_scheduler::<ChanId>(&cfg.schedulers, driver.has_tcp_info(), &cfg.sched)?;
        if cfg.schedulers.first() != Some(&kind) {
            info!(
                worker = cfg.index,
                chosen = kind.name(),
                "first scheduler in Schedulers not usable here; fell back"
            );
        }
        let rng = match cfg.seed {
            Some(s) => ChaCha12Rng::seed_from_u64(s),
            None => ChaCha12Rng::from_os_rng(),
        };
        let now = cfg.clock.now();
        let links = LinkMaker::new(cfg.links, cfg.relay.handshake_timeout);
        Ok(Worker {
            index: cfg.index,
            driver,
            clock: cfg.clock,
            relay: Relay::new(cfg.relay, rng),
            sched,
            listeners,
            conns: ConnTable::default(),
            edges: Edges::default(),
            origins: Origins::new(cfg.index, listeners.socks.is_some()),
            resolver: Resolver::new(ResolverConfig::default()),
            control: Control { commands, events },
            transmit: Transmit::default(),
            timers: Timers {
                stopping: None,
                last_stats: now,
                last_sample: now,
                scratch: Vec::new(),
            },
            links,
            siblings: cfg.siblings.take(),
        })
    }

    /// Uses `config` for host name lookups (exits) instead of the default pool.
    #[must_use]
    pub fn with_resolver(mut self, config: ResolverConfig) -> Self {
        self.resolver = Resolver::new(config);
        self
    }

    /// The scheduler in use.
    pub fn scheduler_kind(&self) -> SchedulerKind {
        self.sched.kind()
    }

    /// The relay state machine (for counters and tests).
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Host name lookup threads started so far.
    pub fn resolver_threads(&self) -> usize {
        self.resolver.threads()
    }

    /// Runs until a `Shutdown` command (or the control side hanging up) and the grace period.
    pub fn run(mut self) -> WorkerReport {
        while let Some(wait) = self.turn() {
            if let Err(e) = self.wait(Some(wait)) {
                warn!(worker = self.index, error = %e, "driver failed; stopping worker");
                break;
            }
        }
        self.report()
    }

    /// One loop iteration without the driver's wait: handles what the driver, the control
    /// queue and the timers have, schedules, and returns how long the worker may wait for
    /// I/O before its next turn; `None` once it has stopped. [`Worker::run`] is this and
    /// `Driver::run_once` in a loop; a simulation calls it between moves of its network.
    pub fn turn(&mut self) -> Option<Duration> {
        let now = self.clock.now();
        self.relay.set_wall_clock(self.clock.wall(now));
        if let Some(since) = self.timers.stopping {
            if now - since >= SHUTDOWN_GRACE || self.flushed() {
                return None;
            }
        }
        self.handle_commands(now);
        self.adopt_handoffs(now);
        self.handle_io(now);
        self.handle_relay_events(now);
        self.handle_answers(now);
        self.deliver_streams(now);
        let stopping = self.timers.stopping.is_some();
        self.origins.handle_timeout(now, stopping, &mut self.relay);
        self.settle(now);
        self.expire_handshakes(now);
        self.relay.handle_timeout(now);
        self.handle_relay_events(now);
        self.transmit(now);
        self.periodic(now);
        self.publish_load();
        Some(self.next_wait(now))
    }

    /// Hands the bytes of the last turn to the driver and waits up to `timeout` for I/O
    /// (`Driver::run_once`; a simulated driver never waits).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.driver.run_once(timeout)
    }

    /// What the worker reports when it stops.
    pub fn report(&self) -> WorkerReport {
        WorkerReport {
            stats: self.relay.stats(),
            scheduler: self.sched.kind(),
            metrics: self.sched.metrics().clone(),
            events_dropped: self.control.events.dropped(),
            links: self.link_stats(),
        }
    }

    fn flushed(&self) -> bool {
        self.conns.conns().all(|c| self.driver.queued_len(c) == 0)
    }

    fn next_wait(&mut self, now: Instant) -> Duration {
        let deadlines = [
            self.relay.poll_timeout(),
            self.sched.next_run(),
            self.origins.poll_timeout(),
            self.links.next_deadline(),
        ];
        let mut wait = MAX_WAIT;
        for t in deadlines.into_iter().flatten() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if self.relay.has_pending_events() || self.edges.has_readable() {
            wait = Duration::ZERO;
        }
        wait
    }

    /// Kernel queue samples and the counters for the control thread, when due.
    fn periodic(&mut self, now: Instant) {
        if now - self.timers.last_sample >= KERNEL_SAMPLE_EVERY {
            self.timers.last_sample = now;
            self.transmit.sample_kernel_queues(Parts {
                relay: &mut self.relay,
                driver: &mut self.driver,
                conns: &mut self.conns,
                sched: self.sched.as_mut(),
            });
        }
        if now - self.timers.last_stats >= STATS_EVERY {
            self.timers.last_stats = now;
            self.control
                .events
                .send(WorkerEvent::Stats(Box::new(WorkerStats {
                    worker: self.index,
                    relay: self.relay.stats(),
                    sched: self.sched.metrics().clone(),
                    scheduler: self.sched.kind(),
                    events_dropped: self.control.events.dropped(),
                    links: self.link_stats(),
                    io: self.driver.stats(),
                })));
        }
    }

    // ----- control ----------------------------------------------------------------------

    fn handle_commands(&mut self, now: Instant) {
        loop {
            match self.control.commands.try_recv() {
                Ok(Command::Shutdown) => self.begin_shutdown(now),
                Ok(Command::Circuit(cmd)) => {
                    self.origins.handle_command(now, cmd, &mut self.relay);
                    self.settle(now);
                    self.handle_relay_events(now);
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.begin_shutdown(now);
                    return;
                }
            }
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.timers.stopping.is_some() {
            return;
        }
        info!(
            worker = self.index,
            circuits = self.relay.circuit_count(),
            "shutting down"
        );
        self.timers.stopping = Some(now);
        self.relay.shutdown(now);
        self.handle_relay_events(now);
        // Queue the DESTROYs, then close every connection once its bytes are out.
        while let Some(chan) = self.relay.poll_ready_channel() {
            let Some((conn, link)) = self.conns.channel(chan) else {
                continue;
            };
            if let Some(send) = self.driver.send_buf(conn) {
                self.relay.take_ctrl(chan, link.cell_buf(send));
                if let Err(e) = link.seal(send) {
                    debug!(?chan, error = %e, "link failed while shutting down");
                }
            }
        }
        let conns: Vec<D::Conn> = self.conns.conns().collect();
        for conn in conns {
            self.driver.close_when_flushed(conn);
        }
    }

    // ----- I/O events -------------------------------------------------------------------

    fn handle_io(&mut self, now: Instant) {
        while let Some(ev) = self.driver.poll_event() {
            if let IoEvent::Accepted {
                listener,
                conn,
                peer,
            } = ev
            {
                self.accepted(now, listener, conn, peer);
                continue;
            }
            match self.conns.role(ev.conn()) {
                Some(Role::Channel(chan)) => self.channel_io(now, chan, ev),
                Some(Role::Edge) => self.edge_io(now, ev),
                None => {}
            }
            self.settle(now);
        }
    }

    fn accepted(&mut self, now: Instant, l: D::Listener, conn: D::Conn, peer: Option<SocketAddr>) {
        let accepting = self.timers.stopping.is_none();
        let peer = peer.unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
        if accepting && Some(l) == self.listeners.or {
            self.place_accepted(now, conn, peer, Accepted::Channel);
        } else if accepting && Some(l) == self.listeners.socks {
            self.place_accepted(now, conn, peer, Accepted::Socks);
        } else {
            self.driver.close(conn);
        }
    }

    fn channel_io(
        &mut self,
        now: Instant,
        chan: ChanId,
        ev: IoEvent<D::Conn, D::Listener, D::Buf>,
    ) {
        match ev {
            IoEvent::Connected { .. } => {
                // A TLS link's ClientHello is queued already; the relay hears of the channel
                // when the link is secure (`Delivery::Secured`).
                if self
                    .conns
                    .channel(chan)
                    .is_some_and(|(_, link)| link.is_open())
                {
                    self.relay.handle_channel_connected(now, chan);
                }
            }
            IoEvent::Recv { conn, mut data } => self.channel_recv(now, chan, conn, &mut data),
            IoEvent::TlsRecord {
                conn,
                content_type,
                data,
            } => self.channel_tls_record(now, chan, conn, content_type, &data),
            IoEvent::RecvStopped { conn } => self.try_ktls_rx(chan, conn),
            IoEvent::SendDone { conn } => {
                let queued = self.driver.queued_len(conn);
                if self.conns.after_sending(conn, queued) == Some(ReadGate::Resume) {
                    self.driver.set_recv_paused(conn, false);
                }
                if self
                    .conns
                    .channel(chan)
                    .is_some_and(|(_, l)| l.ktls_pending())
                {
                    self.try_ktls(chan, conn);
                }
                self.sched.channel_writable(now, chan);
            }
            IoEvent::ConnectFailed { err, .. } => {
                // The driver closed the connection already.
                debug!(?chan, %err, "channel connect failed");
                self.unbind_channel(chan);
                self.relay.handle_channel_closed(now, chan);
            }
            IoEvent::RecvClosed { conn, err } => {
                if self.conns.channel(chan).is_some_and(|(_, l)| !l.is_open()) {
                    info!(?chan, err = ?err, "closing channel: the peer closed it during the TLS handshake");
                    self.links.stats_mut().tls_handshake_failed += 1;
                } else {
                    debug!(?chan, err = ?err, "channel closed by peer");
                }
                self.close_channel(now, chan, conn);
            }
            IoEvent::SendFailed { conn, err } => {
                debug!(?chan, %err, "channel send failed");
                self.close_channel(now, chan, conn);
            }
            IoEvent::Accepted { .. } => {}
        }
    }

    fn edge_io(&mut self, now: Instant, ev: IoEvent<D::Conn, D::Listener, D::Buf>) {
        let relay = &mut self.relay;
        match ev {
            IoEvent::Connected { conn } => self.edges.handle_connected(now, conn, relay),
            IoEvent::ConnectFailed { conn, .. } => {
                self.edges.handle_connect_failed(now, conn, relay)
            }
            IoEvent::Recv { conn, data } => self.edges.handle_recv(now, conn, &data, relay),
            // Edges are plain TCP: never kTLS.
            IoEvent::TlsRecord { .. } | IoEvent::RecvStopped { .. } => {}
            IoEvent::RecvClosed { conn, .. } => self.edges.handle_eof(now, conn, relay),
            IoEvent::SendDone { conn } => self.edges.handle_send_done(conn),
            IoEvent::SendFailed { conn, .. } => self.edges.handle_broken(now, conn, relay),
            IoEvent::Accepted { .. } => {}
        }
    }

    // ----- connections ------------------------------------------------------------------

    fn add_edge(&mut self, conn: D::Conn) {
        self.conns.add_edge(conn);
        self.no_delay(conn);
    }

    /// Turns Nagle's algorithm off: we batch cells ourselves (one send per connection per
    /// loop iteration), and Nagle holding back a small write (a SENDME) until the previous
    /// segment is acknowledged meets the peer's delayed ACK: a 40 ms stall per window.
    fn no_delay(&self, conn: D::Conn) {
        if let Err(e) = self.driver.set_nodelay(conn, true) {
            debug!(error = %e, "TCP_NODELAY failed");
        }
    }

    fn unbind_channel(&mut self, chan: ChanId) -> Option<D::Conn> {
        let (conn, link) = self.conns.unbind_channel(chan)?;
        self.links.stats_mut().add_records(link.record_stats());
        self.sched.channel_closed(chan);
        Some(conn)
    }

    /// The connection of `chan` broke or ended: close it and tell the relay.
    fn close_channel(&mut self, now: Instant, chan: ChanId, conn: D::Conn) {
        self.unbind_channel(chan);
        self.driver.close(conn);
        self.relay.handle_channel_closed(now, chan);
    }

    // ----- relay events and the actions of edges and origins -----------------------------

    fn handle_relay_events(&mut self, now: Instant) {
        while let Some(ev) = self.relay.poll_event() {
            let relay = &mut self.relay;
            match ev {
                Event::OpenChannel { chan, addr } => match self.driver.connect(addr) {
                    Ok(conn) => self.bind_channel(now, chan, conn, true),
                    Err(e) => {
                        debug!(?chan, %addr, error = %e, "cannot start connect");
                        relay.handle_channel_closed(now, chan);
                    }
                },
                Event::CloseChannel { chan } => {
                    if let Some(conn) = self.unbind_channel(chan) {
                        self.driver.close_when_flushed(conn);
                    }
                }
                Event::ConnectStream {
                    stream,
                    host,
                    port,
                    ip,
                } => self.exit_connect(now, stream, host, port, ip),
                Event::ResolveStream { stream, host } => self.exit_resolve(now, stream, host),
                Event::StreamReadable { stream } | Event::StreamWritable { stream } => {
                    self.edges.handle_stream_ready(now, stream, relay)
                }
                Event::StreamConnected { stream } => {
                    self.edges.handle_socks_connected(now, stream, relay)
                }
                Event::StreamEnded { stream, reason } => {
                    self.edges.handle_stream_ended(now, stream, reason, relay)
                }
                Event::CircuitBuilt { circ, elapsed } => {
                    self.origins.handle_built(now, circ, elapsed, relay)
                }
                Event::CircuitClosed {
                    circ,
                    why,
                    hops_done,
                } => self.origins.handle_closed(now, circ, why, hops_done, relay),
            }
            self.settle(now);
        }
    }

    /// Performs what edges and origins asked for, until neither has more.
    fn settle(&mut self, now: Instant) {
        loop {
            if let Some(action) = self.edges.poll_action() {
                self.edge_action(now, action);
            } else if let Some(action) = self.origins.poll_action() {
                match action {
                    OriginAction::Event(ev) => self.control.events.send(WorkerEvent::Circuit(ev)),
                    OriginAction::StreamOpened { conn, stream } => {
                        self.edges.bind_stream(conn, stream)
                    }
                    OriginAction::RequestFailed { conn } => {
                        self.edges.socks_fail(conn, SocksReply::GeneralFailure)
                    }
                }
            } else {
                return;
            }
        }
    }

    fn edge_action(&mut self, now: Instant, action: EdgeAction<D::Conn>) {
        match action {
            EdgeAction::Send { conn, bytes } => {
                if let Some(buf) = self.driver.send_buf(conn) {
                    buf.extend_from_slice(&bytes);
                }
            }
            EdgeAction::PauseRecv { conn, paused } => self.driver.set_recv_paused(conn, paused),
            EdgeAction::Close { conn } => self.driver.close(conn),
            EdgeAction::CloseWhenFlushed { conn } => self.driver.close_when_flushed(conn),
            EdgeAction::Request {
                conn,
                isolation,
                host,
                port,
            } => {
                self.origins.request(conn, isolation, host, port);
                self.origins.serve_requests(now, &mut self.relay);
            }
            EdgeAction::Forgotten { conn } => {
                self.conns.remove_edge(conn);
                self.origins.forget_conn(conn);
            }
        }
    }

    // ----- exit side --------------------------------------------------------------------

    fn exit_connect(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        host: String,
        port: u16,
        ip: Option<IpAddr>,
    ) {
        if let Some(ip) = ip {
            return self.exit_connect_addr(now, stream, SocketAddr::new(ip, port));
        }
        if let Err(e) = self.resolver.resolve(stream, host, port) {
            debug!(?stream, error = %e, "host name lookup refused");
            self.relay
                .handle_stream_failed(now, stream, EndReason::RESOURCELIMIT);
        }
    }

    /// A RESOLVE: the same bounded resolver as BEGIN's names; a refused lookup is answered
    /// at once with a transient error.
    fn exit_resolve(&mut self, now: Instant, stream: StreamHandle, host: String) {
        if let Err(e) = self.resolver.resolve(stream, host, 0) {
            debug!(?stream, error = %e, "RESOLVE lookup refused");
            self.relay.handle_resolved(now, stream, None);
        }
    }

    fn handle_answers(&mut self, now: Instant) {
        while let Some(answer) = self.resolver.poll_answer() {
            let (stream, port) = (answer.stream, answer.port);
            if self.relay.handle_resolved(now, stream, answer.ip) {
                continue;
            }
            match answer.ip {
                None => self
                    .relay
                    .handle_stream_failed(now, stream, EndReason::RESOLVEFAILED),
                // The port was checked already; the address can only be checked now.
                Some(ip) if self.relay.exit_allows(ip, port) => {
                    self.exit_connect_addr(now, stream, SocketAddr::new(ip, port))
                }
                Some(_) => self
                    .relay
                    .handle_stream_failed(now, stream, EndReason::EXITPOLICY),
            }
        }
    }

    fn exit_connect_addr(&mut self, now: Instant, stream: StreamHandle, addr: SocketAddr) {
        match self.driver.connect(addr) {
            Ok(conn) => {
                self.add_edge(conn);
                self.edges.add_exit(conn, stream, addr);
            }
            Err(e) => {
                debug!(?stream, %addr, error = %e, "exit connect failed to start");
                self.relay
                    .handle_stream_failed(now, stream, EndReason::CONNECTREFUSED);
            }
        }
    }

    /// Moves received stream bytes into the edge sockets that can take them: the relay's
    /// stream buffer becomes an empty send buffer (no copy), or is copied into a partly
    /// filled one.
    fn deliver_streams(&mut self, now: Instant) {
        let mut conns = std::mem::take(&mut self.timers.scratch);
        self.edges.take_readable(&mut conns);
        for conn in conns.drain(..) {
            let Some(stream) = self.edges.stream_of(conn) else {
                continue;
            };
            while self.driver.queued_len(conn) < EDGE_SEND_HIGH_WATER {
                let Some(buf) = self.driver.send_buf(conn) else {
                    break;
                };
                match self.relay.stream_recv_append(now, stream, buf, EDGE_CHUNK) {
                    Some(0) => break,
                    Some(_) => {}
                    None => {
                        // Ended and drained: close once the bytes are out.
                        self.edges.handle_stream_drained(conn);
                        break;
                    }
                }
            } // else: SendDone brings the connection back.
        }
        self.timers.scratch = conns;
        self.settle(now);
    }

    // ----- scheduling -------------------------------------------------------------------

    fn transmit(&mut self, now: Instant) {
        self.transmit.run(
            now,
            Parts {
                relay: &mut self.relay,
                driver: &mut self.driver,
                conns: &mut self.conns,
                sched: self.sched.as_mut(),
            },
        );
        while let Some((chan, err)) = self.transmit.pop_broken() {
            if let Some(conn) = self.conns.conn_of(chan) {
                self.link_failed(now, chan, conn, err);
            }
        }
    }
}
