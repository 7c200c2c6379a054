//! The worker loop: one thread, one driver, one `Relay`, one scheduler.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use crossbeam_channel::Receiver;
use kistrel_sched::{
    make_scheduler, CellSource, ChannelSnapshot, Priority, SchedConfig, SchedMetrics, Scheduler,
    SchedulerKind, SocketSnapshot, Written,
};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use tracing::{debug, info, warn};

use crate::relay::{ChanId, Event, Relay, RelayConfig, RelayStats, StreamHandle};
use crate::time::Instant;

use super::edge::Edge;
use super::origin::Origins;
use super::{Clock, Command, Driver, EventSender, IoEvent, WorkerEvent};

/// Longest the loop sleeps without checking the control queue.
const MAX_WAIT: Duration = Duration::from_millis(1);
/// How long a stopping worker waits for its DESTROYs and queued bytes to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How often the kernel queue of busy channel sockets is sampled for the metrics, whatever
/// the scheduler (one TCP_INFO + two ioctls per channel: a timer cost, never per cell).
const KERNEL_SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// At most this many sockets per sample (a cursor walks the rest on later samples).
const KERNEL_SAMPLE_MAX: usize = 256;
/// A channel whose send queue (bytes the kernel has not taken) grows past this stops being
/// read until it drains below [`CHANNEL_SEND_LOW_WATER`]. Scheduled cells never get near it
/// (KIST and Vanilla grant only what the socket takes); what can is replies to a peer that
/// sends and never reads (DESTROYs for refused CREATEs, CREATED2s), which would otherwise
/// grow without bound outside `MaxMemInQueues`.
const CHANNEL_SEND_HIGH_WATER: usize = 4 << 20;
/// See [`CHANNEL_SEND_HIGH_WATER`].
const CHANNEL_SEND_LOW_WATER: usize = 1 << 20;

/// Everything a worker needs, built by the process that starts it.
#[derive(Debug)]
pub struct WorkerConfig {
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
    /// The process-wide clock.
    pub clock: Clock,
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
}

/// What a connection is to the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// A channel to another relay or a client.
    Channel(ChanId),
    /// An application-side connection: a SOCKS client or an exit's target server.
    Edge,
}

/// One worker. See the module docs of [`crate::runtime`].
pub struct Worker<D: Driver> {
    pub(super) index: usize,
    pub(super) driver: D,
    pub(super) relay: Relay,
    pub(super) sched: Box<dyn Scheduler<ChanId>>,
    pub(super) clock: Clock,
    pub(super) or_listener: Option<D::Listener>,
    pub(super) socks_listener: Option<D::Listener>,
    pub(super) roles: HashMap<D::Conn, Role>,
    /// Channel -> connection, indexed by the channel's slot.
    chan_conn: Vec<Option<(ChanId, D::Conn)>>,
    pub(super) edges: HashMap<D::Conn, Edge>,
    pub(super) stream_conn: HashMap<StreamHandle, D::Conn>,
    /// Edges with bytes to deliver from their stream.
    pub(super) readable: Vec<D::Conn>,
    pub(super) origins: Origins<D::Conn>,
    pub(super) resolver: super::edge::Resolver,
    commands: Receiver<Command>,
    pub(super) events: EventSender,
    pending: Vec<ChanId>,
    snaps: Vec<ChannelSnapshot<ChanId>>,
    stopping: Option<Instant>,
    /// Next slot of `chan_conn` the kernel-queue sampler looks at.
    sample_cursor: usize,
    /// Channel connections not being read: their send queue is over the high-water mark.
    recv_paused: std::collections::HashSet<D::Conn>,
}

impl<D: Driver> core::fmt::Debug for Worker<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("relay", &self.relay)
            .finish()
    }
}

impl<D: Driver> Worker<D> {
    /// Sets up a worker over `driver`. Fails if no scheduler in the list is usable here.
    pub fn new(
        cfg: WorkerConfig,
        mut driver: D,
        commands: Receiver<Command>,
        events: EventSender,
    ) -> Result<Self, String> {
        let (sched, kind) =
            make_scheduler::<ChanId>(&cfg.schedulers, driver.has_tcp_info(), &cfg.sched)
                .map_err(|e| e.to_string())?;
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
        let or_listener = match cfg.or_listener {
            Some(l) => Some(
                driver
                    .add_listener(l)
                    .map_err(|e| format!("OR listener: {e}"))?,
            ),
            None => None,
        };
        let socks_listener = match cfg.socks_listener {
            Some(l) => Some(
                driver
                    .add_listener(l)
                    .map_err(|e| format!("SOCKS listener: {e}"))?,
            ),
            None => None,
        };
        let is_client = socks_listener.is_some();
        Ok(Worker {
            index: cfg.index,
            driver,
            relay: Relay::new(cfg.relay, rng),
            sched,
            clock: cfg.clock,
            or_listener,
            socks_listener,
            roles: HashMap::new(),
            chan_conn: Vec::new(),
            edges: HashMap::new(),
            stream_conn: HashMap::new(),
            readable: Vec::new(),
            origins: Origins::new(is_client),
            resolver: super::edge::Resolver::new(),
            commands,
            events,
            pending: Vec::new(),
            snaps: Vec::new(),
            stopping: None,
            sample_cursor: 0,
            recv_paused: std::collections::HashSet::new(),
        })
    }

    pub(super) fn stopping_is_none(&self) -> bool {
        self.stopping.is_none()
    }

    /// The scheduler in use.
    pub fn scheduler_kind(&self) -> SchedulerKind {
        self.sched.kind()
    }

    /// Runs until a `Shutdown` command (or the control side hanging up) and the grace period.
    pub fn run(mut self) -> WorkerReport {
        let mut last_stats = self.clock.now();
        let mut last_sample = last_stats;
        loop {
            let now = self.clock.now();
            if let Some(since) = self.stopping {
                if now - since >= SHUTDOWN_GRACE || self.flushed() {
                    break;
                }
            }
            self.handle_commands(now);
            self.handle_io(now);
            self.handle_relay_events(now);
            self.resolver_results(now);
            self.deliver_streams(now);
            self.origins_tick(now);
            self.relay.handle_timeout(now);
            self.handle_relay_events(now);
            self.schedule(now);
            if now - last_sample >= KERNEL_SAMPLE_EVERY {
                last_sample = now;
                self.sample_kernel_queues();
            }
            if now - last_stats >= Duration::from_secs(1) {
                last_stats = now;
                let stats = self.relay.stats();
                let sched = Box::new(self.sched.metrics().clone());
                let kind = self.sched.kind();
                self.events.send(WorkerEvent::Stats {
                    worker: self.index,
                    stats,
                    sched,
                    kind,
                });
            }
            let wait = self.next_wait(now);
            if let Err(e) = self.driver.run_once(Some(wait)) {
                warn!(worker = self.index, error = %e, "driver failed; stopping worker");
                break;
            }
        }
        WorkerReport {
            stats: self.relay.stats(),
            scheduler: self.sched.kind(),
            metrics: self.sched.metrics().clone(),
            events_dropped: self.events.dropped(),
        }
    }

    /// Records the estimated kernel queue time of up to [`KERNEL_SAMPLE_MAX`] busy channel
    /// sockets (`SchedMetrics::sample_kernel_queue`): the scheduler-neutral figure that
    /// compares KIST with Vanilla, which takes no snapshots of its own.
    fn sample_kernel_queues(&mut self) {
        let slots = self.chan_conn.len();
        if slots == 0 {
            return;
        }
        let metrics = self.sched.metrics_mut();
        for step in 0..slots.min(KERNEL_SAMPLE_MAX) {
            let slot = (self.sample_cursor + step) % slots;
            let Some(Some((_, conn))) = self.chan_conn.get(slot) else {
                continue;
            };
            let Some(fd) = self.driver.conn_fd(*conn) else {
                continue;
            };
            if let Ok(snap) = crate::sys::socket_snapshot(fd) {
                metrics.sample_kernel_queue(&snap);
            }
        }
        self.sample_cursor = (self.sample_cursor + KERNEL_SAMPLE_MAX) % slots;
    }

    fn flushed(&self) -> bool {
        self.roles.keys().all(|&c| self.driver.queued_len(c) == 0)
    }

    fn next_wait(&mut self, now: Instant) -> Duration {
        let mut wait = MAX_WAIT;
        let deadlines = [
            self.relay.poll_timeout(),
            self.sched.next_run(),
            self.origins.next_deadline(),
        ];
        for t in deadlines.into_iter().flatten() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if self.relay.has_pending_events() || !self.readable.is_empty() {
            wait = Duration::ZERO;
        }
        wait
    }

    fn handle_commands(&mut self, now: Instant) {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Shutdown) => self.begin_shutdown(now),
                Ok(Command::BuildCircuit {
                    tag,
                    path,
                    deadline,
                }) => self.build_for_tag(now, tag, path, deadline),
                Ok(Command::NoPath { tag }) => self.fail_tag(now, tag),
                Err(crossbeam_channel::TryRecvError::Empty) => return,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    if self.stopping.is_none() {
                        self.begin_shutdown(now);
                    }
                    return;
                }
            }
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        info!(
            worker = self.index,
            circuits = self.relay.circuit_count(),
            "shutting down"
        );
        self.stopping = Some(now);
        self.relay.shutdown(now);
        self.handle_relay_events(now);
        // Queue the DESTROYs, then close every connection once its bytes are out.
        while let Some(chan) = self.relay.poll_ready_channel() {
            if let Some(conn) = self.conn_of(chan) {
                if let Some(buf) = self.driver.send_buf(conn) {
                    self.relay.take_ctrl(chan, buf);
                }
            }
        }
        let conns: Vec<D::Conn> = self.roles.keys().copied().collect();
        for conn in conns {
            self.driver.close_when_flushed(conn);
        }
    }

    pub(super) fn conn_of(&self, chan: ChanId) -> Option<D::Conn> {
        match self.chan_conn.get(chan.index() as usize) {
            Some(Some((c, conn))) if *c == chan => Some(*conn),
            _ => None,
        }
    }

    fn bind_channel(&mut self, chan: ChanId, conn: D::Conn) {
        let i = chan.index() as usize;
        if self.chan_conn.len() <= i {
            self.chan_conn.resize(i + 1, None);
        }
        self.chan_conn[i] = Some((chan, conn));
        self.roles.insert(conn, Role::Channel(chan));
        self.no_delay(conn);
    }

    /// Turns Nagle's algorithm off: we batch cells ourselves (one send per connection per
    /// loop iteration), and Nagle holding back a small write (a SENDME) until the previous
    /// segment is acknowledged meets the peer's delayed ACK: a 40 ms stall per window.
    pub(super) fn no_delay(&self, conn: D::Conn) {
        if let Some(fd) = self.driver.conn_fd(conn) {
            if let Err(e) = crate::sys::set_tcp_nodelay(fd, true) {
                debug!(error = %e, "TCP_NODELAY failed");
            }
        }
    }

    fn unbind_channel(&mut self, chan: ChanId) -> Option<D::Conn> {
        let conn = self.conn_of(chan)?;
        self.chan_conn[chan.index() as usize] = None;
        self.roles.remove(&conn);
        self.recv_paused.remove(&conn);
        self.sched.channel_closed(chan);
        Some(conn)
    }

    // ----- I/O events -------------------------------------------------------------------

    fn handle_io(&mut self, now: Instant) {
        while let Some(ev) = self.driver.poll_event() {
            match ev {
                IoEvent::Accepted {
                    listener,
                    conn,
                    peer,
                } => {
                    if Some(listener) == self.or_listener && self.stopping.is_none() {
                        let peer = peer.unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
                        let chan = self.relay.accept_channel(now, peer);
                        self.bind_channel(chan, conn);
                    } else if Some(listener) == self.socks_listener && self.stopping.is_none() {
                        self.accept_socks(conn);
                    } else {
                        self.driver.close(conn);
                    }
                }
                IoEvent::Connected { conn } => match self.roles.get(&conn).copied() {
                    Some(Role::Channel(chan)) => self.relay.handle_channel_connected(now, chan),
                    Some(Role::Edge) => self.edge_connected(now, conn),
                    None => {}
                },
                IoEvent::ConnectFailed { conn, err } => match self.roles.get(&conn).copied() {
                    Some(Role::Channel(chan)) => {
                        debug!(?chan, %err, "channel connect failed");
                        self.unbind_channel(chan);
                        self.relay.handle_channel_closed(now, chan);
                    }
                    Some(Role::Edge) => self.edge_connect_failed(now, conn),
                    None => {}
                },
                IoEvent::Recv { conn, data } => match self.roles.get(&conn).copied() {
                    Some(Role::Channel(chan)) => self.relay.handle_recv(now, chan, &data),
                    Some(Role::Edge) => self.edge_recv(now, conn, &data),
                    None => {}
                },
                IoEvent::RecvClosed { conn, err } => match self.roles.get(&conn).copied() {
                    Some(Role::Channel(chan)) => {
                        debug!(?chan, err = ?err, "channel closed by peer");
                        self.unbind_channel(chan);
                        self.driver.close(conn);
                        self.relay.handle_channel_closed(now, chan);
                    }
                    Some(Role::Edge) => self.edge_eof(now, conn),
                    None => {}
                },
                IoEvent::SendDone { conn } => match self.roles.get(&conn).copied() {
                    Some(Role::Channel(chan)) => {
                        if self.recv_paused.contains(&conn)
                            && self.driver.queued_len(conn) <= CHANNEL_SEND_LOW_WATER
                        {
                            self.recv_paused.remove(&conn);
                            self.driver.set_recv_paused(conn, false);
                        }
                        self.sched.channel_writable(now, chan)
                    }
                    Some(Role::Edge) => self.readable.push(conn),
                    None => {}
                },
                IoEvent::SendFailed { conn, err } => match self.roles.get(&conn).copied() {
                    Some(Role::Channel(chan)) => {
                        debug!(?chan, %err, "channel send failed");
                        self.unbind_channel(chan);
                        self.driver.close(conn);
                        self.relay.handle_channel_closed(now, chan);
                    }
                    Some(Role::Edge) => self.edge_broken(now, conn),
                    None => {}
                },
            }
        }
    }

    // ----- relay events -----------------------------------------------------------------

    pub(super) fn handle_relay_events(&mut self, now: Instant) {
        while let Some(ev) = self.relay.poll_event() {
            match ev {
                Event::OpenChannel { chan, addr } => match self.driver.connect(addr) {
                    Ok(conn) => self.bind_channel(chan, conn),
                    Err(e) => {
                        debug!(?chan, %addr, error = %e, "cannot start connect");
                        self.relay.handle_channel_closed(now, chan);
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
                Event::StreamReadable { stream } | Event::StreamWritable { stream } => {
                    if let Some(&conn) = self.stream_conn.get(&stream) {
                        self.readable.push(conn);
                        self.edge_offer_pending(now, conn);
                    }
                }
                Event::StreamConnected { stream } => self.socks_connected(now, stream),
                Event::StreamEnded { stream, reason } => self.stream_ended(now, stream, reason),
                Event::CircuitBuilt { circ, elapsed } => self.circuit_built(now, circ, elapsed),
                Event::CircuitClosed {
                    circ,
                    why,
                    hops_done,
                } => self.circuit_closed(now, circ, why, hops_done),
            }
        }
    }

    // ----- scheduling -------------------------------------------------------------------

    fn schedule(&mut self, now: Instant) {
        while let Some(chan) = self.relay.poll_ready_channel() {
            let Some(conn) = self.conn_of(chan) else {
                continue;
            };
            if let Some(buf) = self.driver.send_buf(conn) {
                self.relay.take_ctrl(chan, buf);
            }
            if self.driver.queued_len(conn) > CHANNEL_SEND_HIGH_WATER
                && self.recv_paused.insert(conn)
            {
                debug!(?chan, "peer is not reading: pausing reads until it drains");
                self.driver.set_recv_paused(conn, true);
            }
            if self.relay.has_circuit_cells(chan) {
                self.sched.channel_has_cells(now, chan);
            }
        }
        if self.sched.next_run().is_none_or(|t| t > now) {
            return;
        }
        self.pending.clear();
        self.sched.pending_channels(now, &mut self.pending);
        self.snaps.clear();
        let tcp_info = self.sched.needs_tcp_info();
        for &chan in &self.pending {
            let Some(conn) = self.conn_of(chan) else {
                continue;
            };
            let socket = match (tcp_info, self.driver.conn_fd(conn)) {
                (true, Some(fd)) => crate::sys::socket_snapshot(fd).unwrap_or_default(),
                _ => SocketSnapshot::default(),
            };
            let outbuf = u32::try_from(self.driver.queued_len(conn)).unwrap_or(u32::MAX);
            self.snaps.push(ChannelSnapshot {
                channel: chan,
                socket,
                outbuf,
            });
        }
        let mut source = Source {
            relay: &mut self.relay,
            driver: &mut self.driver,
            chan_conn: &self.chan_conn,
        };
        self.sched.run(now, &self.snaps, &mut source);
    }
}

/// The scheduler's view of the relay's queues: cells go straight into the connection's
/// owned send buffer, which the driver hands to the kernel in this iteration's submit.
struct Source<'a, D: Driver> {
    relay: &'a mut Relay,
    driver: &'a mut D,
    chan_conn: &'a [Option<(ChanId, D::Conn)>],
}

impl<D: Driver> Source<'_, D> {
    fn conn(&self, chan: ChanId) -> Option<D::Conn> {
        match self.chan_conn.get(chan.index() as usize) {
            Some(Some((c, conn))) if *c == chan => Some(*conn),
            _ => None,
        }
    }
}

impl<D: Driver> CellSource<ChanId> for Source<'_, D> {
    fn best_priority(&self, now: Instant, chan: ChanId) -> Option<Priority> {
        self.relay.best_priority(now, chan)
    }

    fn write_one(&mut self, now: Instant, chan: ChanId) -> Option<Written> {
        let conn = self.conn(chan)?;
        let buf = self.driver.send_buf(conn)?;
        let (n, enqueued) = self.relay.write_one_cell(now, chan, buf)?;
        Some(Written {
            bytes: u32::try_from(n).unwrap_or(u32::MAX),
            next: self.relay.best_priority(now, chan),
            enqueued: Some(enqueued),
        })
    }

    fn flush(&mut self, _chan: ChanId) {
        // Every connection's buffer goes out in this iteration's single submit.
    }
}
