//! `Relay`: the sans-IO state machine of a relay and of a circuit origin.
//!
//! One `Relay` runs per worker. It owns that worker's channels (one per TCP connection), the
//! circuits on them and their streams. It never does I/O and never reads a clock:
//!
//! ```text
//!   runtime                                   Relay
//!   -------                                   -----
//!   accept()            -> accept_channel(now, peer)             -> ChanId
//!   connect() done      -> handle_channel_connected(now, chan)
//!   bytes from socket   -> handle_recv(now, chan, bytes)        (decode -> handle_cell)
//!   socket writable     <- poll_transmit(now, chan, buf, max)   (whole cells appended)
//!   exit socket bytes   -> handle_stream_data(now, stream, bytes) -> bytes taken
//!   bytes for a stream  <- stream_recv(now, stream, buf)
//!   what to do next     <- poll_event()   (open/close sockets, connect streams, ...)
//!   timers              <- poll_timeout(), handle_timeout(now)
//! ```
//!
//! Relay crypto is applied when a cell arrives; the cell is then queued on its circuit for the
//! outgoing channel with the outgoing circuit id already written, so transmitting is one copy.
//! Queues are per circuit and direction; each channel serves its active circuits in turn.
//!
//! Bad input never panics and never disturbs other circuits: a malformed cell closes its
//! circuit (DESTROY with a reason) or, for link-level faults, its channel, with a logged reason.

mod cells;
mod channel;
mod circuit;
mod dos;
mod queue;
mod stream;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_chacha::ChaCha12Rng;
use tracing::{debug, trace};

use crate::client::{CircuitFailure, HopSpec, OriginCirc};
use crate::crypto::ntor::NtorKeypair;
use crate::crypto::RelayId;
use crate::exit::ExitPolicy;
use crate::time::Instant;
use crate::wire::{CellDecoder, CircId, DestroyReason, EndReason, StreamId, CELL_LEN};

use crate::slab::{GenSlab, Key};
use channel::{ChanState, Channel};
use circuit::{CircKind, Circuit, Dir, Hop};

pub use dos::CircuitCreationLimit;
pub use stream::StreamState;

/// Handle of a channel (one TCP connection to a peer) on this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChanId(Key);

impl ChanId {
    /// Dense slot index, for the runtime's side tables.
    pub fn index(self) -> u32 {
        self.0.index()
    }
}

/// Handle of a circuit on this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircHandle(Key);

/// Handle of a stream: its circuit and its stream id on that circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamHandle {
    /// The circuit carrying the stream.
    pub circ: CircHandle,
    /// The stream id (chosen by the origin).
    pub id: StreamId,
}

/// A relay's long-term keys.
#[derive(Debug)]
pub struct RelayKeys {
    /// Identity digest (what clients name us by in CREATE2 / EXTEND2).
    pub identity: RelayId,
    /// ntor onion key.
    pub ntor: NtorKeypair,
}

/// Configuration of one `Relay`. Names follow torrc where Tor has one.
#[derive(Debug)]
pub struct RelayConfig {
    /// Keys; `None` for a client-only node, which refuses CREATE2/CREATE_FAST.
    pub keys: Option<RelayKeys>,
    /// Exit policy; `None` = not an exit (every BEGIN gets END EXITPOLICY).
    pub exit_policy: Option<ExitPolicy>,
    /// Our addresses, announced in NETINFO.
    pub my_addrs: Vec<IpAddr>,
    /// Cells one circuit may queue toward one channel before it is closed (Tor: 2500).
    pub max_circuit_queue_cells: usize,
    /// `MaxMemInQueues`: above this many queued bytes the OOM handler closes circuits,
    /// oldest queued cell first, until usage is below 90%.
    pub max_mem_in_queues: usize,
    /// A channel that has not finished VERSIONS/NETINFO by then is closed
    /// (`ChannelHandshakeTimeout` in the config file).
    pub handshake_timeout: Duration,
    /// Per-channel limit on CREATE/CREATE2/CREATE_FAST (`DoSCircuitCreationRate`,
    /// `DoSCircuitCreationBurst`); `None` = unlimited. Excess cells get DESTROY
    /// (RESOURCELIMIT) without a handshake.
    pub circuit_creation_limit: Option<CircuitCreationLimit>,
    /// Circuit priority (`CircuitPriorityHalflife`; halflife 0 = round robin).
    pub ewma: kistrel_sched::EwmaConfig,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            keys: None,
            exit_policy: None,
            my_addrs: Vec::new(),
            max_circuit_queue_cells: 2500,
            max_mem_in_queues: 512 << 20,
            handshake_timeout: Duration::from_secs(30),
            circuit_creation_limit: Some(CircuitCreationLimit::default()),
            ewma: kistrel_sched::EwmaConfig::default(),
        }
    }
}

/// Something the runtime must act on (drained with [`Relay::poll_event`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Open a TCP connection to `addr` for `chan`; report with
    /// [`Relay::handle_channel_connected`] or [`Relay::handle_channel_closed`].
    OpenChannel { chan: ChanId, addr: SocketAddr },
    /// Close `chan`'s socket. Its state is already gone; write what `poll_transmit` gave first.
    CloseChannel { chan: ChanId },
    /// Exit: connect `stream` to `host:port`; report with [`Relay::handle_stream_connected`] or
    /// [`Relay::handle_stream_failed`]. When `ip` is `None`, resolve `host` and check the
    /// address with [`Relay::exit_allows`] before connecting.
    ConnectStream {
        stream: StreamHandle,
        host: String,
        port: u16,
        ip: Option<IpAddr>,
    },
    /// Bytes are waiting in `stream`'s receive buffer: read them with [`Relay::stream_recv`].
    StreamReadable { stream: StreamHandle },
    /// The stream's windows opened again after [`Relay::handle_stream_data`] took less than
    /// it was offered.
    StreamWritable { stream: StreamHandle },
    /// Origin: the exit connected the stream.
    StreamConnected { stream: StreamHandle },
    /// The stream ended (END from the other side or its circuit closed). Bytes already
    /// received stay readable until [`Relay::stream_recv`] returns `None`.
    StreamEnded {
        stream: StreamHandle,
        reason: EndReason,
    },
    /// Origin: a circuit is built.
    CircuitBuilt { circ: CircHandle, elapsed: Duration },
    /// Origin: a circuit failed or closed. `hops_done` hops had completed their handshake,
    /// so while building, hop `hops_done` is the one that failed (0 = the guard).
    CircuitClosed {
        circ: CircHandle,
        why: CircuitFailure,
        hops_done: usize,
    },
}

/// Errors of the local API (misuse by the runtime or the application, not the peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The circuit does not exist (closed or never built).
    #[error("no such circuit")]
    NoSuchCircuit,
    /// The circuit is not finished building, or is not ours.
    #[error("circuit is not a built origin circuit")]
    NotBuilt,
    /// The stream does not exist.
    #[error("no such stream")]
    NoSuchStream,
    /// No free stream id on the circuit.
    #[error("no free stream id")]
    StreamIdsExhausted,
    /// A path needs at least one hop.
    #[error("empty path")]
    EmptyPath,
}

/// Counters the runtime exports (monotonic, per worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Cells received (all commands).
    pub cells_in: u64,
    /// Cells handed to `poll_transmit` callers.
    pub cells_out: u64,
    /// Circuits closed by the OOM handler.
    pub oom_closed: u64,
    /// Channels closed for protocol violations.
    pub channels_rejected: u64,
    /// Circuits closed for protocol violations.
    pub circuits_rejected: u64,
    /// CREATE/CREATE2/CREATE_FAST cells refused by the circuit-creation rate limit.
    pub creates_refused: u64,
}

/// The relay / origin state machine of one worker. See the module docs.
pub struct Relay {
    cfg: RelayConfig,
    rng: ChaCha12Rng,
    channels: GenSlab<Channel>,
    circuits: GenSlab<Circuit>,
    /// Outbound channels we opened, by (address, identity), for reuse on EXTEND2.
    /// INVARIANT: every value is a live channel whose `target` is the key.
    outbound: HashMap<(SocketAddr, RelayId), ChanId>,
    events: VecDeque<Event>,
    /// Channels with output waiting. INVARIANT: a channel is here iff its `in_ready` is set.
    ready: VecDeque<ChanId>,
    /// Handshake deadlines, lazily invalidated (an entry for a gone or open channel is skipped).
    deadlines: BinaryHeap<Reverse<(Instant, ChanId)>>,
    /// Bytes in all circuit queues. INVARIANT: equals CELL_LEN times the sum of queue lengths.
    queued_bytes: usize,
    stats: RelayStats,
}

impl core::fmt::Debug for Relay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Relay")
            .field("channels", &self.channels.len())
            .field("circuits", &self.circuits.len())
            .field("queued_bytes", &self.queued_bytes)
            .finish()
    }
}

impl Relay {
    /// A relay (or client-only node, without keys) with its own RNG (seeded by the caller:
    /// from the OS in production, from a fixed seed in tests).
    pub fn new(cfg: RelayConfig, rng: ChaCha12Rng) -> Self {
        Relay {
            cfg,
            rng,
            channels: GenSlab::default(),
            circuits: GenSlab::default(),
            outbound: HashMap::new(),
            events: VecDeque::new(),
            ready: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            queued_bytes: 0,
            stats: RelayStats::default(),
        }
    }

    /// Configuration in use.
    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Number of live channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Number of live circuits (relayed and origin).
    pub fn circuit_count(&self) -> usize {
        self.circuits.len()
    }

    /// Number of live streams on all circuits.
    pub fn stream_count(&self) -> usize {
        self.circuits.iter().map(|(_, c)| c.streams.len()).sum()
    }

    /// Bytes queued in circuit queues (what `MaxMemInQueues` limits).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether the exit policy allows `ip:port` (for resolved host names).
    pub fn exit_allows(&self, ip: IpAddr, port: u16) -> bool {
        self.cfg
            .exit_policy
            .as_ref()
            .is_some_and(|p| p.allows(ip, port))
    }

    // ----- channels ---------------------------------------------------------------------

    /// A peer connected to us. Returns the new channel; it expects VERSIONS first.
    pub fn accept_channel(&mut self, now: Instant, peer: SocketAddr) -> ChanId {
        let ch = Channel::new(
            false,
            Some(peer),
            None,
            ChanState::Handshaking,
            &self.cfg.ewma,
            now,
            self.cfg.circuit_creation_limit.as_ref(),
        );
        let chan = ChanId(self.channels.insert(ch));
        self.arm_handshake_deadline(now, chan);
        debug!(?chan, %peer, "inbound channel");
        chan
    }

    /// Our outbound connection for `chan` (from [`Event::OpenChannel`]) is up: start the
    /// link handshake.
    pub fn handle_channel_connected(&mut self, now: Instant, chan: ChanId) {
        let Some(ch) = self.channels.get_mut(chan.0) else {
            return;
        };
        if ch.state != ChanState::Connecting {
            return;
        }
        ch.state = ChanState::Handshaking;
        ch.send_versions();
        self.mark_ready(chan);
        self.arm_handshake_deadline(now, chan);
    }

    /// The socket of `chan` failed or was closed by the peer.
    pub fn handle_channel_closed(&mut self, now: Instant, chan: ChanId) {
        self.drop_channel(now, chan, "socket closed", false);
    }

    /// Closes a channel locally (e.g. at shutdown): DESTROY is not sent; use
    /// [`Relay::shutdown`] for a graceful stop.
    pub fn close_channel(&mut self, now: Instant, chan: ChanId) {
        self.drop_channel(now, chan, "closed locally", true);
    }

    /// Graceful stop: every circuit gets a DESTROY (reason HIBERNATING) queued on its
    /// channels. The runtime then transmits what is pending and closes the sockets.
    pub fn shutdown(&mut self, now: Instant) {
        let circs: Vec<Key> = self.circuits.keys().collect();
        for c in circs {
            self.close_circuit(
                now,
                CircHandle(c),
                DestroyReason::HIBERNATING,
                CircuitFailure::Closed,
                "shutdown",
            );
        }
    }

    /// Bytes received on `chan`'s socket. Decodes and handles every whole cell; keeps a
    /// partial cell for the next call. A decoding error closes the channel.
    pub fn handle_recv(&mut self, now: Instant, chan: ChanId, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Some(ch) = self.channels.get_mut(chan.0) else {
                return;
            };
            match ch.decoder.decode(bytes) {
                Ok((used, cell)) => {
                    bytes = bytes.get(used..).unwrap_or_default();
                    match cell {
                        Some(cell) => {
                            self.stats.cells_in += 1;
                            self.handle_cell(now, chan, cell);
                        }
                        None if used == 0 => return,
                        None => {}
                    }
                }
                Err(e) => {
                    debug!(?chan, error = %e, "closing channel: undecodable input");
                    self.stats.channels_rejected += 1;
                    self.drop_channel(now, chan, "undecodable input", true);
                    return;
                }
            }
        }
    }

    /// Whether `chan` has cells waiting to be transmitted.
    pub fn has_output(&self, chan: ChanId) -> bool {
        self.channels.get(chan.0).is_some_and(|c| c.has_output())
    }

    /// Next channel with output waiting (each channel appears once until it is drained or
    /// transmitted from).
    #[must_use]
    pub fn poll_ready_channel(&mut self) -> Option<ChanId> {
        while let Some(chan) = self.ready.pop_front() {
            if let Some(ch) = self.channels.get_mut(chan.0) {
                ch.in_ready = false;
                if ch.has_output() {
                    return Some(chan);
                }
            }
        }
        None
    }

    /// Appends up to `max_bytes` of whole cells for `chan` to `out`: link-control cells
    /// first, then one cell at a time from each active circuit in turn. Returns the number
    /// of bytes appended. If output remains, the channel stays listed as ready.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        chan: ChanId,
        out: &mut Vec<u8>,
        max_bytes: usize,
    ) -> usize {
        let mut written = 0;
        let Some(ch) = self.channels.get_mut(chan.0) else {
            return 0;
        };
        written += ch.take_ctrl(out, max_bytes);
        while written + CELL_LEN <= max_bytes {
            match self.write_one_cell(now, chan, out) {
                Some((n, _)) => written += n,
                None => break,
            }
        }
        if self.has_output(chan) {
            self.mark_ready(chan);
        }
        written
    }

    /// Moves one cell of `chan`'s best circuit (lowest EWMA, see `CircuitPriorityHalflife`)
    /// into `out` and counts it in the circuit's EWMA. Returns the cell's size and when it
    /// was queued, or None if no circuit on `chan` has a queued cell. This is the
    /// scheduler's per-cell primitive: no allocation, one copy.
    pub fn write_one_cell(
        &mut self,
        now: Instant,
        chan: ChanId,
        out: &mut Vec<u8>,
    ) -> Option<(usize, Instant)> {
        let ch = self.channels.get_mut(chan.0)?;
        let key @ (circ, dir) = ch.mux.peek()?;
        let Some(c) = self.circuits.get_mut(circ.0) else {
            // INVARIANT violated (a freed circuit left active): repair rather than spin.
            debug_assert!(false, "freed circuit {circ:?} still active on {chan:?}");
            let mut scratch = kistrel_sched::CellEwma::new();
            ch.mux.deactivate(key, &mut scratch);
            return None;
        };
        let q = c.queue_mut(dir);
        let cell = q.pop()?;
        if q.is_empty() {
            q.in_mux = false;
            ch.mux.deactivate(key, &mut q.ewma);
        } else {
            ch.mux.note_written(now, key, &mut q.ewma);
        }
        #[cfg(feature = "inject-slowdown")]
        std::hint::black_box(cell.bytes.to_vec());
        out.extend_from_slice(&cell.bytes);
        self.queued_bytes -= CELL_LEN;
        self.stats.cells_out += 1;
        Some((CELL_LEN, cell.enqueued))
    }

    /// The priority of `chan`'s best circuit (for the scheduler's cross-channel order).
    pub fn best_priority(&self, now: Instant, chan: ChanId) -> Option<kistrel_sched::Priority> {
        self.channels.get(chan.0)?.mux.best_priority(now)
    }

    /// Whether `chan` has circuit cells queued (not counting link-control cells).
    pub fn has_circuit_cells(&self, chan: ChanId) -> bool {
        self.channels.get(chan.0).is_some_and(|c| !c.mux.is_empty())
    }

    /// Moves `chan`'s link-control cells (handshake, DESTROY of freed circuits) to `out`.
    /// They bypass the scheduler: few, small, and they must not wait behind data.
    pub fn take_ctrl(&mut self, chan: ChanId, out: &mut Vec<u8>) -> usize {
        self.channels
            .get_mut(chan.0)
            .map_or(0, |c| c.take_ctrl(out, usize::MAX))
    }

    /// Removes queue `dir` of `circ` from its channel's mux (before that side goes away).
    pub(crate) fn detach_queue(&mut self, circ: CircHandle, dir: Dir) {
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        let hop = c.out_hop(dir);
        let q = c.queue_mut(dir);
        if !q.in_mux {
            return;
        }
        q.in_mux = false;
        if let Some(ch) = hop.and_then(|h| self.channels.get_mut(h.chan.0)) {
            ch.mux.deactivate((circ, dir), &mut q.ewma);
        }
    }

    // ----- timers ---------------------------------------------------------------------

    /// The earliest instant at which [`Relay::handle_timeout`] has work.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, chan))) = self.deadlines.peek().copied() {
            match self.channels.get(chan.0) {
                Some(ch) if ch.state != ChanState::Open => return Some(at),
                _ => {
                    self.deadlines.pop();
                }
            }
        }
        None
    }

    /// Runs timers due at `now`: closes channels whose handshake did not finish in time.
    /// Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, chan))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if self
                .channels
                .get(chan.0)
                .is_some_and(|c| c.state != ChanState::Open)
            {
                debug!(?chan, "closing channel: handshake timeout");
                self.drop_channel(now, chan, "handshake timeout", true);
            }
        }
    }

    /// Whether events wait to be polled.
    pub fn has_pending_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Next event for the runtime.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- origin API -------------------------------------------------------------------

    /// Starts building a circuit along `path` (first hop first). Progress arrives as
    /// [`Event::CircuitBuilt`] or [`Event::CircuitClosed`].
    pub fn build_circuit(
        &mut self,
        now: Instant,
        path: Vec<HopSpec>,
    ) -> Result<CircHandle, ApiError> {
        let first = path.first().cloned().ok_or(ApiError::EmptyPath)?;
        let mut origin = OriginCirc::new(path, now);
        let _hdata = origin.start_next_hop(&mut self.rng);
        let circ = CircHandle(
            self.circuits
                .insert(Circuit::new(CircKind::Origin(Box::new(origin)), None)),
        );
        let chan = self.channel_to(now, first.addr, first.id);
        self.attach_next(now, circ, chan);
        Ok(circ)
    }

    /// Closes a circuit (origin or relayed), sending DESTROY (REQUESTED) both ways.
    pub fn close_circuit_requested(&mut self, now: Instant, circ: CircHandle) {
        self.close_circuit(
            now,
            circ,
            DestroyReason::REQUESTED,
            CircuitFailure::Closed,
            "closed by request",
        );
    }

    /// Whether `circ` is a built origin circuit.
    pub fn is_built(&self, circ: CircHandle) -> bool {
        self.circuits
            .get(circ.0)
            .is_some_and(|c| matches!(&c.kind, CircKind::Origin(o) if o.is_built()))
    }

    // ----- internals shared by the submodules -----------------------------------------

    fn arm_handshake_deadline(&mut self, now: Instant, chan: ChanId) {
        self.deadlines
            .push(Reverse((now + self.cfg.handshake_timeout, chan)));
    }

    fn mark_ready(&mut self, chan: ChanId) {
        if let Some(ch) = self.channels.get_mut(chan.0) {
            if !ch.in_ready {
                ch.in_ready = true;
                self.ready.push_back(chan);
            }
        }
    }

    /// An open or opening channel to `(addr, id)`, reusing one we opened before.
    fn channel_to(&mut self, now: Instant, addr: SocketAddr, id: RelayId) -> ChanId {
        if let Some(&chan) = self.outbound.get(&(addr, id)) {
            if self.channels.contains(chan.0) {
                return chan;
            }
        }
        let ch = Channel::new(
            true,
            Some(addr),
            Some((addr, id)),
            ChanState::Connecting,
            &self.cfg.ewma,
            now,
            self.cfg.circuit_creation_limit.as_ref(),
        );
        let chan = ChanId(self.channels.insert(ch));
        self.outbound.insert((addr, id), chan);
        self.events.push_back(Event::OpenChannel { chan, addr });
        chan
    }

    /// Makes `chan` the next hop of `circ`: sends its CREATE2 now if the channel is open,
    /// or when it opens.
    fn attach_next(&mut self, now: Instant, circ: CircHandle, chan: ChanId) {
        let open = match self.channels.get_mut(chan.0) {
            Some(ch) if ch.state == ChanState::Open => true,
            Some(ch) => {
                ch.waiting.push(circ);
                false
            }
            None => false,
        };
        if let Some(c) = self.circuits.get_mut(circ.0) {
            c.waiting_on = Some(chan);
        }
        if open {
            self.send_create(now, circ, chan);
        }
    }

    /// Allocates a circuit id on `chan` (top bit set iff we opened the connection).
    fn alloc_circ_id(&mut self, chan: ChanId) -> Option<CircId> {
        use rand::RngCore;
        let ch = self.channels.get(chan.0)?;
        for _ in 0..64 {
            let raw = self.rng.next_u32();
            let raw = if ch.initiator {
                raw | 0x8000_0000
            } else {
                raw & 0x7fff_ffff
            };
            if let Some(id) = CircId::new(raw) {
                if !ch.circs.contains_key(&id) {
                    return Some(id);
                }
            }
        }
        None
    }

    /// Removes a channel and everything on it. Circuits lose that side: the other side gets
    /// a DESTROY (CHANNEL_CLOSED toward the exit, DESTROYED toward the origin).
    fn drop_channel(&mut self, now: Instant, chan: ChanId, why: &'static str, tell_runtime: bool) {
        let Some(mut ch) = self.channels.remove(chan.0) else {
            return;
        };
        debug!(?chan, why, circuits = ch.circs.len(), "channel closed");
        if let Some(target) = ch.target {
            if self.outbound.get(&target) == Some(&chan) {
                self.outbound.remove(&target);
            }
        }
        for circ in ch.waiting.drain(..) {
            self.circuit_side_lost(now, circ, chan);
        }
        let circs: Vec<CircHandle> = ch.circs.values().copied().collect();
        for circ in circs {
            self.circuit_side_lost(now, circ, chan);
        }
        if tell_runtime {
            self.events.push_back(Event::CloseChannel { chan });
        }
    }

    /// `chan` is gone under `circ`: tear the circuit down, telling the other side.
    fn circuit_side_lost(&mut self, now: Instant, circ: CircHandle, chan: ChanId) {
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        if c.prev.is_some_and(|h| h.chan == chan) {
            c.prev = None;
        }
        if c.next.is_some_and(|h| h.chan == chan) || c.waiting_on == Some(chan) {
            c.next = None;
            c.waiting_on = None;
        }
        self.free_circuit(
            now,
            circ,
            Some(DestroyReason::DESTROYED),
            Some(DestroyReason::CHANNEL_CLOSED),
            CircuitFailure::ChannelFailed,
        );
    }

    /// Closes a circuit we decided to close: DESTROY with `reason` both ways.
    fn close_circuit(
        &mut self,
        now: Instant,
        circ: CircHandle,
        reason: DestroyReason,
        why: CircuitFailure,
        log: &'static str,
    ) {
        if !self.circuits.contains(circ.0) {
            return;
        }
        debug!(?circ, ?reason, log, "closing circuit");
        self.free_circuit(now, circ, Some(reason), Some(reason), why);
    }

    /// Frees a circuit and all its state: queues (and their byte count), streams, channel
    /// map entries. Sends DESTROY on the sides that still exist with the given reasons.
    fn free_circuit(
        &mut self,
        _now: Instant,
        circ: CircHandle,
        to_prev: Option<DestroyReason>,
        to_next: Option<DestroyReason>,
        why: CircuitFailure,
    ) {
        self.detach_queue(circ, Dir::Forward);
        self.detach_queue(circ, Dir::Backward);
        let Some(mut c) = self.circuits.remove(circ.0) else {
            return;
        };
        let dropped = c.to_prev.clear() + c.to_next.clear();
        self.queued_bytes -= dropped * CELL_LEN;
        for (hop, reason) in [(c.prev, to_prev), (c.next, to_next)] {
            let Some(hop) = hop else { continue };
            if let Some(ch) = self.channels.get_mut(hop.chan.0) {
                ch.circs.remove(&hop.id);
                if let Some(reason) = reason {
                    ch.queue_destroy(hop.id, reason);
                    self.mark_ready(hop.chan);
                }
            }
        }
        if let Some(chan) = c.waiting_on {
            if let Some(ch) = self.channels.get_mut(chan.0) {
                ch.waiting.retain(|w| *w != circ);
            }
        }
        for (id, s) in std::mem::take(&mut c.streams) {
            if !s.ended_reported {
                self.events.push_back(Event::StreamEnded {
                    stream: StreamHandle { circ, id },
                    reason: EndReason::DESTROY,
                });
            }
        }
        if let CircKind::Origin(o) = &c.kind {
            let hops_done = o.hops.len();
            self.events.push_back(Event::CircuitClosed {
                circ,
                why,
                hops_done,
            });
        }
        trace!(?circ, "circuit freed");
    }

    /// Checks the internal invariants (for tests and the fuzz target): the queued-byte
    /// count equals the queues' contents; every circuit's channel entries point back at it.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut cells = 0;
        let mut active = 0;
        for (key, c) in self.circuits.iter() {
            cells += c.to_prev.len() + c.to_next.len();
            for (q, hop) in [(&c.to_prev, c.prev), (&c.to_next, c.next)] {
                if q.in_mux {
                    active += 1;
                }
                if hop.is_some() && q.in_mux == q.is_empty() {
                    return Err("a queue is active in its mux iff it has cells");
                }
            }
            for hop in [c.prev, c.next].into_iter().flatten() {
                let ch = self
                    .channels
                    .get(hop.chan.0)
                    .ok_or("circuit names a dead channel")?;
                if ch.circs.get(&hop.id) != Some(&CircHandle(key)) {
                    return Err("channel map does not point back at circuit");
                }
            }
        }
        if cells * CELL_LEN != self.queued_bytes {
            return Err("queued_bytes differs from the sum of queues");
        }
        if self
            .channels
            .iter()
            .map(|(_, ch)| ch.mux.len())
            .sum::<usize>()
            != active
        {
            return Err("mux entries differ from the active queues");
        }
        for (_, ch) in self.channels.iter() {
            for circ in ch.circs.values() {
                if !self.circuits.contains(circ.0) {
                    return Err("channel maps a freed circuit");
                }
            }
        }
        Ok(())
    }

    /// Out-of-memory handling: while queued bytes exceed `MaxMemInQueues`, close the circuits
    /// whose oldest queued cell is oldest, until usage is below 90% of the limit.
    fn check_oom(&mut self, now: Instant) {
        if self.queued_bytes <= self.cfg.max_mem_in_queues {
            return;
        }
        let target = self.cfg.max_mem_in_queues / 10 * 9;
        let mut victims: Vec<(Instant, Key)> = self
            .circuits
            .iter()
            .filter_map(|(k, c)| {
                let oldest = match (c.to_prev.oldest(), c.to_next.oldest()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                oldest.map(|t| (t, k))
            })
            .collect();
        victims.sort();
        for (_, key) in victims {
            if self.queued_bytes < target {
                break;
            }
            self.stats.oom_closed += 1;
            self.close_circuit(
                now,
                CircHandle(key),
                DestroyReason::RESOURCELIMIT,
                CircuitFailure::OutOfMemory,
                "out of memory",
            );
        }
    }

    /// The stream state of `stream`, if it exists.
    pub fn stream_state(&self, stream: StreamHandle) -> Option<StreamState> {
        self.circuits
            .get(stream.circ.0)?
            .streams
            .get(&stream.id)
            .map(|s| s.state)
    }

    fn circuit_dir_of(&self, chan: ChanId, id: CircId) -> Option<(CircHandle, Dir)> {
        let circ = *self.channels.get(chan.0)?.circs.get(&id)?;
        let c = self.circuits.get(circ.0)?;
        if c.prev == Some(Hop { chan, id }) {
            Some((circ, Dir::Forward))
        } else if c.next == Some(Hop { chan, id }) {
            Some((circ, Dir::Backward))
        } else {
            None
        }
    }
}

fn fresh_decoder() -> CellDecoder {
    CellDecoder::new()
}
