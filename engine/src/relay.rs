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
//!   bytes from socket   -> handle_recv(now, chan, bytes, link)  (decode -> handle_cell;
//!                          `link`: what the TLS layer knows, for the link handshake)
//!   wall clock, per loop -> set_wall_clock(t)                   (NETINFO, cert expiry)
//!   which channels      <- poll_ready_channel()                 (each once, until drained)
//!   link-control cells  <- take_ctrl(chan, buf)                 (handshake, DESTROY)
//!   circuit cells       <- write_cells(now, chan, n, buf, ..)   (the scheduler's primitive)
//!   exit socket bytes   -> handle_stream_data(now, stream, bytes) -> bytes taken
//!   bytes for a stream  <- stream_recv(now, stream, buf)
//!   what to do next     <- poll_event()   (open/close sockets, connect streams, ...)
//!   timers              <- poll_timeout(), handle_timeout(now)
//! ```
//!
//! `take_ctrl` and `write_cells` are the only ways cells leave a `Relay`: the runtime's
//! scheduler, the in-memory harness, the fuzz target and the benches all drive them.
//!
//! Relay crypto is applied when a cell arrives; the cell is then queued on its circuit for the
//! outgoing channel with the outgoing circuit id already written, so transmitting is one copy.
//! Queues are per circuit and direction; each channel serves its active circuits in turn.
//!
//! # Parts and concerns
//!
//! `Relay` owns its parts and dispatches between them, as Arti's reactor does:
//!
//! ```text
//!   parts (state + their own methods)       concerns (cell handling, `impl Relay`)
//!   channel   Channels: slab, ready list    link      VERSIONS / CERTS / NETINFO (link.rs:
//!   circuit   Circuits: slab, OOM order               the per-channel handshake machine)
//!   streammap StreamMap per circuit         create    CREATE2 / CREATE_FAST / CREATED2
//!   flow      windows and SENDMEs           forward   relay cells both ways, relay crypto
//!   memory    MaxMemInQueues account        extend    EXTEND2 / EXTENDED2 / TRUNCATE, origin
//!   timer     the one timer table           stream    BEGIN / CONNECTED / DATA / END / SENDME
//!   error     typed rejections              transmit  queues -> channels (the one path out)
//!                                           teardown  DESTROY, closing, the OOM handler
//! ```
//!
//! Bad input never panics and never disturbs other circuits: a malformed cell closes its
//! circuit (DESTROY with a reason derived from a typed [`CircuitError`]) or, for link-level
//! faults, its channel ([`LinkError`]), with the error as the logged reason.

mod channel;
mod circ_ids;
mod circuit;
mod config;
mod create;
mod dos;
mod error;
mod event;
mod extend;
mod flow;
mod forward;
mod ids;
mod link;
mod memory;
mod queue;
mod resolve;
mod stream;
mod streammap;
mod teardown;
#[cfg(test)]
mod tests;
mod timer;
mod transmit;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use rand::RngCore;
use rand_chacha::ChaCha12Rng;
use tracing::{debug, info, warn};

use crate::crypto::relay_crypto::CipherCache;
use crate::time::Instant;
use crate::wire::{CellRef, ChanCellRef, ChanCmd, CircId, Decoded, CELL_LEN};
use crate::HasKind as _;

use channel::Channels;
use circuit::{Circuit, Circuits, Dir, Hop};
use error::ChannelClose;
use link::{LinkCtx, LinkKeys, LinkStep};
use memory::QueueMemory;
use queue::CellPool;
use timer::{Timer, Timers};

pub use config::{spin, RelayConfig, RelayKeys};
pub use dos::CircuitCreationLimit;
pub use error::{
    CircuitError, CreateError, ExtendError, ForwardError, InvariantError, Rejection, StreamError,
};
pub use event::{ApiError, Event, RelayStats};
pub use flow::FlowError;
pub use ids::{ChanId, CircHandle, StreamHandle};
pub use link::{Hex, LinkAuth, LinkError, PeerIds, PlainLinkAuth};
pub use streammap::StreamState;

/// The relay / origin state machine of one worker. See the module docs.
pub struct Relay {
    cfg: RelayConfig,
    rng: ChaCha12Rng,
    channels: Channels,
    circuits: Circuits,
    /// Where the cells of every circuit queue live.
    cells: CellPool,
    /// The expanded AES ciphers of the relay layers in use.
    ciphers: CipherCache,
    /// What `MaxMemInQueues` limits: circuit queues and stream receive buffers.
    memory: QueueMemory,
    timers: Timers,
    events: VecDeque<Event>,
    stats: RelayStats,
    /// The most recent rejection of peer input.
    last_rejection: Option<Rejection>,
    /// Our short-lived link certificates (types 5 and 6).
    link_keys: LinkKeys,
    /// The wall-clock time the runtime last gave (NETINFO, certificate expiry).
    wall: SystemTime,
}

impl core::fmt::Debug for Relay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Relay")
            .field("channels", &self.channels.len())
            .field("circuits", &self.circuits.len())
            .field("queued_bytes", &self.memory.total())
            .finish()
    }
}

impl Relay {
    /// A relay (or client-only node, without keys) with its own RNG (seeded by the caller:
    /// from the OS in production, from a fixed seed in tests).
    pub fn new(cfg: RelayConfig, mut rng: ChaCha12Rng) -> Self {
        let channels = Channels::new(rng.next_u64());
        Relay {
            memory: QueueMemory::new(cfg.max_mem_in_queues),
            cfg,
            rng,
            channels,
            circuits: Circuits::default(),
            cells: CellPool::default(),
            ciphers: CipherCache::new(),
            timers: Timers::default(),
            events: VecDeque::new(),
            stats: RelayStats::default(),
            last_rejection: None,
            link_keys: LinkKeys::default(),
            wall: SystemTime::UNIX_EPOCH,
        }
    }

    /// The wall-clock time, for NETINFO and certificate expiry. The runtime sets it once per
    /// loop (the sans-IO core reads no clock); until set it is the Unix epoch, at which no
    /// certificate verifies.
    pub fn set_wall_clock(&mut self, t: SystemTime) {
        self.wall = t;
    }

    /// Configuration in use.
    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// The most recent rejection of peer input (a closed channel or circuit, a refused
    /// CREATE), for diagnostics and tests. Each one is also logged at debug level.
    pub fn last_rejection(&self) -> Option<Rejection> {
        self.last_rejection
    }

    /// Who the peer of `chan` proved to be in the link handshake: `None` while the channel
    /// is not open, and for a client (which proves nothing).
    pub fn channel_peer(&self, chan: ChanId) -> Option<PeerIds> {
        self.channels.get(chan)?.link.peer()
    }

    /// Whether `chan` finished its link handshake.
    pub fn channel_is_open(&self, chan: ChanId) -> bool {
        self.channels.get(chan).is_some_and(|ch| ch.link.is_open())
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

    /// Bytes queued toward channels plus bytes received on streams and not yet read: what
    /// `MaxMemInQueues` limits.
    pub fn queued_bytes(&self) -> usize {
        self.memory.total()
    }

    /// The part of [`Relay::queued_bytes`] that waits in stream receive buffers.
    pub fn stream_buffered_bytes(&self) -> usize {
        self.memory.stream_bytes()
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
        let chan = self.channels.insert_inbound(
            now,
            peer,
            &self.cfg.ewma,
            self.cfg.circuit_creation_limit.as_ref(),
        );
        self.arm_handshake_deadline(now, chan);
        debug!(?chan, %peer, "inbound channel");
        chan
    }

    /// Our outbound connection for `chan` (from [`Event::OpenChannel`]) is up: start the
    /// link handshake.
    pub fn handle_channel_connected(&mut self, now: Instant, chan: ChanId) {
        let Some(ch) = self.channels.get_mut(chan) else {
            return;
        };
        let mut out = Vec::new();
        if ch.link.connected(&mut out) {
            self.channels.queue_ctrl_bytes(chan, &out);
            self.arm_handshake_deadline(now, chan);
        }
    }

    /// The socket of `chan` failed or was closed by the peer.
    pub fn handle_channel_closed(&mut self, now: Instant, chan: ChanId) {
        self.drop_channel(now, chan, ChannelClose::SocketClosed);
    }

    /// Closes a channel locally (e.g. at shutdown): DESTROY is not sent; use
    /// [`Relay::shutdown`] for a graceful stop.
    pub fn close_channel(&mut self, now: Instant, chan: ChanId) {
        self.drop_channel(now, chan, ChannelClose::Local);
    }

    /// Bytes received on `chan`'s socket. Decodes and handles every whole cell; keeps a
    /// partial cell for the next call. A decoding error closes the channel. `link` tells
    /// the link handshake what the transport knows (ignored once the channel is open).
    /// Cells are handled where they lie in `bytes` (see `CellDecoder::decode_ref`).
    pub fn handle_recv(
        &mut self,
        now: Instant,
        chan: ChanId,
        mut bytes: &[u8],
        link: &dyn LinkAuth,
    ) {
        while !bytes.is_empty() {
            let Some(ch) = self.channels.get_mut(chan) else {
                return;
            };
            // Read before decoding (decoding does not change it): a fixed cell on an open
            // channel, the per-cell case, goes straight to its handler, with no second
            // channel lookup.
            let open = ch.link.is_open();
            match ch.decoder.decode_ref(bytes) {
                Ok(Decoded::Cell { used, cell }) => {
                    bytes = bytes.get(used..).unwrap_or_default();
                    self.stats.cells_in += 1;
                    match cell {
                        ChanCellRef::Fixed(cell) if open => self.handle_open_cell(now, chan, &cell),
                        cell => self.handle_cell(now, chan, cell, link),
                    }
                }
                Ok(Decoded::Carried { used }) => {
                    bytes = bytes.get(used..).unwrap_or_default();
                    let Some(carried) = ch.decoder.take_carried() else {
                        continue;
                    };
                    match carried.cell() {
                        Ok(cell) => {
                            self.stats.cells_in += 1;
                            self.handle_cell(now, chan, cell, link);
                        }
                        Err(e) => return self.reject_channel(now, chan, LinkError::Undecodable(e)),
                    }
                    if let Some(ch) = self.channels.get_mut(chan) {
                        ch.decoder.restore(carried);
                    }
                }
                Ok(Decoded::Partial { .. }) => return,
                Err(e) => return self.reject_channel(now, chan, LinkError::Undecodable(e)),
            }
        }
    }

    fn handle_cell(
        &mut self,
        now: Instant,
        chan: ChanId,
        cell: ChanCellRef<'_>,
        link: &dyn LinkAuth,
    ) {
        let Some(ch) = self.channels.get_mut(chan) else {
            return;
        };
        if ch.link.is_open() {
            return match cell {
                ChanCellRef::Fixed(cell) => self.handle_open_cell(now, chan, &cell),
                ChanCellRef::Var(v) if v.cmd() == ChanCmd::VPADDING => {}
                ChanCellRef::Var(v) => {
                    self.reject_channel(now, chan, LinkError::VarCellOnOpenChannel { cmd: v.cmd() })
                }
            };
        }
        // The handshake: a few cells per channel, owned for the link state machine.
        let cell = cell.to_owned_cell();
        let mut ctx = LinkCtx {
            keys: self.cfg.keys.as_ref().map(|k| &*k.identity),
            link_keys: &mut self.link_keys,
            rng: &mut self.rng,
            wall: self.wall,
            auth: link,
            my_addrs: &self.cfg.my_addrs,
            peer: ch.peer,
        };
        let mut out = Vec::new();
        let step = ch.link.handle(&cell, &mut ctx, &mut out);
        self.channels.queue_ctrl_bytes(chan, &out);
        match step {
            Ok(LinkStep::Wait) => {}
            Ok(LinkStep::Opened { skew_secs }) => self.channel_opened(now, chan, skew_secs),
            Err(e) => self.reject_channel(now, chan, e),
        }
    }

    /// `chan` finished its handshake: the circuits waiting for it send their CREATE2.
    fn channel_opened(&mut self, now: Instant, chan: ChanId, skew_secs: Option<i64>) {
        /// C Tor warns about a NETINFO clock skew above an hour (NETINFO_NOTICE_SKEW).
        const SKEW_WARN_SECS: i64 = 3600;
        let (waiting, peer) = match self.channels.get_mut(chan) {
            Some(ch) => {
                let peer = ch.link.peer();
                debug!(?chan, version = ?ch.link.version(), ?peer, "channel open");
                if let Some(skew) = skew_secs.filter(|s| s.abs() > SKEW_WARN_SECS) {
                    warn!(?chan, addr = ?ch.peer, ?peer, skew_secs = skew,
                        "peer's NETINFO clock differs from ours by more than an hour");
                    self.stats.clock_skew_warnings += 1;
                }
                (std::mem::take(&mut ch.waiting), peer)
            }
            None => return,
        };
        if let Some(peer) = peer {
            self.channels.note_verified(chan, peer.rsa_id);
        }
        for circ in waiting {
            self.send_create(now, circ, chan);
        }
    }

    fn handle_open_cell(&mut self, now: Instant, chan: ChanId, cell: &CellRef<'_>) {
        match cell.cmd() {
            ChanCmd::PADDING => {}
            cmd @ (ChanCmd::RELAY | ChanCmd::RELAY_EARLY) => {
                self.handle_relay(now, chan, cmd, cell)
            }
            ChanCmd::CREATE2 | ChanCmd::CREATE_FAST => self.handle_create(now, chan, cell),
            ChanCmd::CREATED2 => self.handle_created(now, chan, cell),
            ChanCmd::DESTROY => self.handle_destroy(now, chan, cell),
            ChanCmd::CREATE => self.handle_tap_create(now, chan, cell),
            ChanCmd::NETINFO => self.reject_channel(now, chan, LinkError::NetinfoOnOpenChannel),
            other => debug!(?chan, cmd = ?other, "ignoring cell with unhandled command"),
        }
    }

    /// Closes `chan` for a link-level fault of its peer, logging the peer's address and the
    /// reason (identity errors carry expected and got). At info, as C Tor's protocol
    /// warnings: a peer can cause one per connection.
    fn reject_channel(&mut self, now: Instant, chan: ChanId, e: LinkError) {
        let peer = self.channels.get(chan).and_then(|ch| ch.peer);
        info!(?chan, ?peer, kind = e.kind().as_str(), error = %e, "closing channel");
        self.stats.channels_rejected += 1;
        self.last_rejection = Some(Rejection::Channel(e));
        self.drop_channel(now, chan, ChannelClose::Rejected(e));
    }

    /// The circuit `id` on `chan` names, and which way a cell from `chan` travels on it.
    fn circuit_dir_of(&mut self, chan: ChanId, id: CircId) -> Option<(CircHandle, Dir)> {
        let (circ, dir, _) = Self::find_circuit(&self.channels, &mut self.circuits, chan, id)?;
        Some((circ, dir))
    }

    /// [`Self::circuit_dir_of`] with the circuit in hand, from the two parts it reads: the
    /// per-cell path keeps the ciphers and the cell pool free to borrow beside it. One slab
    /// lookup gives both the direction and the state. `inline(always)`: left to LLVM, it
    /// stays out of line on the RELAY path (+19 instructions per forwarded cell).
    #[inline(always)]
    fn find_circuit<'c>(
        channels: &Channels,
        circuits: &'c mut Circuits,
        chan: ChanId,
        id: CircId,
    ) -> Option<(CircHandle, Dir, &'c mut Circuit)> {
        let circ = channels.get(chan)?.circs.get(&id)?;
        let c = circuits.get_mut(circ)?;
        let dir = c.dir_from(Hop { chan, id })?;
        Some((circ, dir, c))
    }

    // ----- timers and events ------------------------------------------------------------

    fn arm_handshake_deadline(&mut self, now: Instant, chan: ChanId) {
        self.timers
            .arm(now + self.cfg.handshake_timeout, Timer::LinkHandshake(chan));
    }

    /// Whether `timer` still has work when it fires.
    fn timer_live(channels: &Channels, timer: Timer) -> bool {
        match timer {
            Timer::LinkHandshake(chan) => channels.get(chan).is_some_and(|c| !c.link.is_open()),
        }
    }

    /// The earliest instant at which [`Relay::handle_timeout`] has work.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let channels = &self.channels;
        self.timers.next(|t| Self::timer_live(channels, t))
    }

    /// Runs timers due at `now`: closes channels whose handshake did not finish in time.
    /// Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            if !Self::timer_live(&self.channels, timer) {
                continue;
            }
            match timer {
                Timer::LinkHandshake(chan) => {
                    debug!(?chan, "closing channel: handshake timeout");
                    self.drop_channel(now, chan, ChannelClose::HandshakeTimeout);
                }
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

    // ----- invariants -------------------------------------------------------------------

    /// Checks the internal invariants (for tests and the fuzz target): the queued-byte
    /// account equals the queues' and receive buffers' contents; every circuit's channel
    /// entries point back at it; the muxes hold exactly the queues with cells.
    pub fn check_invariants(&self) -> Result<(), InvariantError> {
        let mut cells = 0;
        let mut stream_bytes = 0;
        let mut active = 0;
        for (circ, c) in self.circuits.iter() {
            cells += c.to_prev.len() + c.to_next.len();
            stream_bytes += c.streams.buffered();
            for dir in [Dir::Forward, Dir::Backward] {
                let q = c.queue(dir);
                active += usize::from(q.in_mux);
                if c.out_hop(dir).is_some() && q.in_mux == q.is_empty() {
                    return Err(InvariantError::MuxActivity);
                }
            }
            for hop in [c.prev, c.next].into_iter().flatten() {
                let ch = self
                    .channels
                    .get(hop.chan)
                    .ok_or(InvariantError::DeadChannel)?;
                if ch.circs.get(&hop.id) != Some(circ) {
                    return Err(InvariantError::ChannelMap);
                }
            }
        }
        if cells * CELL_LEN != self.memory.cell_bytes() {
            return Err(InvariantError::CellBytes);
        }
        if stream_bytes != self.memory.stream_bytes() {
            return Err(InvariantError::StreamBytes);
        }
        let mux_entries: usize = self.channels.iter().map(|(_, ch)| ch.mux.len()).sum();
        if mux_entries != active {
            return Err(InvariantError::MuxEntries);
        }
        let freed = self
            .channels
            .iter()
            .flat_map(|(_, ch)| ch.circs.values())
            .any(|circ| !self.circuits.contains(*circ));
        if freed {
            return Err(InvariantError::FreedCircuit);
        }
        Ok(())
    }
}
