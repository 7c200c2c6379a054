//! Cell handling: the link handshake, CREATE2/CREATED2, relay cells in both directions,
//! DESTROY, SENDME flow control, and the stream API of circuit endpoints.
//!
//! ```text
//!   RELAY from prev --decrypt_forward--> recognized? --yes--> handle_at_relay (EXTEND2, BEGIN, DATA, ...)
//!                                                    --no---> queue toward next (or PROTOCOL close at the last hop)
//!   RELAY from next --encrypt_backward-> queue toward prev            (relayed circuit)
//!                   --decrypt layers---> handle_at_origin             (origin circuit)
//! ```

use std::net::SocketAddr;

use tracing::debug;

use crate::client::CircuitFailure;
use crate::crypto::relay_crypto::RelayLayer;
use crate::crypto::{fast, ntor};
use crate::exit::check_begin;
use crate::time::Instant;
use crate::wire::{
    emit_relay_cell, finish_relay_cell, Begin, Cell, ChanCell, ChanCmd, Connected, Create2,
    CreateFast, Created2, CreatedFast, Destroy, DestroyReason, End, EndReason, Extend2, Extended2,
    LinkSpec, Netinfo, RelayCellView, RelayCmd, Sendme, StreamId, Truncated, Versions,
    CELL_BODY_LEN, RELAY_DATA_LEN, RELAY_HEADER_LEN,
};

use super::channel::{negotiate, ChanState};
use super::circuit::{
    CircKind, Circuit, Dir, Hop, PendingExtend, CIRC_WINDOW_INCREMENT, MAX_RELAY_EARLY,
    STREAM_WINDOW_INCREMENT, STREAM_WINDOW_START,
};
use super::queue::QueuedCell;
use super::stream::{Stream, StreamState};
use super::{ApiError, ChanId, CircHandle, Event, Relay, StreamHandle};

/// Send a stream SENDME only while the application keeps the receive buffer below this, so
/// a stalled reader stops the sender instead of growing our buffer.
const STREAM_RX_LOW_WATER: usize = STREAM_WINDOW_INCREMENT as usize * RELAY_DATA_LEN;

/// Which end of a circuit is acting: the origin (talking to hop `n`), or the last relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Origin(usize),
    Exit,
}

impl Relay {
    pub(super) fn handle_cell(&mut self, now: Instant, chan: ChanId, cell: ChanCell) {
        let Some(state) = self.channels.get(chan.0).map(|c| c.state) else {
            return;
        };
        match (state, cell) {
            (ChanState::Open, ChanCell::Fixed(cell)) => self.handle_open_cell(now, chan, cell),
            (ChanState::Open, ChanCell::Var(v)) if v.cmd == ChanCmd::VPADDING => {}
            (ChanState::Open, ChanCell::Var(_)) => {
                self.reject_channel(now, chan, "variable-length cell on an open channel")
            }
            (ChanState::Handshaking, cell) => self.handle_handshake_cell(now, chan, cell),
            (ChanState::Connecting, _) => {
                self.reject_channel(now, chan, "cell before the connection was up")
            }
        }
    }

    fn reject_channel(&mut self, now: Instant, chan: ChanId, why: &'static str) {
        debug!(?chan, why, "closing channel: protocol violation");
        self.stats.channels_rejected += 1;
        self.drop_channel(now, chan, why, true);
    }

    fn reject_circuit(&mut self, now: Instant, circ: CircHandle, why: &'static str) {
        self.stats.circuits_rejected += 1;
        self.close_circuit(
            now,
            circ,
            DestroyReason::PROTOCOL,
            CircuitFailure::Protocol,
            why,
        );
    }

    // ----- link handshake ---------------------------------------------------------------

    fn handle_handshake_cell(&mut self, now: Instant, chan: ChanId, cell: ChanCell) {
        let Some(ch) = self.channels.get_mut(chan.0) else {
            return;
        };
        match cell {
            ChanCell::Var(v) if v.cmd == ChanCmd::VERSIONS => {
                if ch.version.is_some() {
                    return self.reject_channel(now, chan, "second VERSIONS cell");
                }
                let Ok(versions) = Versions::parse(&v.payload) else {
                    return self.reject_channel(now, chan, "malformed VERSIONS cell");
                };
                let Some(version) = negotiate(&versions.versions) else {
                    return self.reject_channel(now, chan, "no common link protocol version");
                };
                ch.version = Some(version);
                if !ch.sent_versions {
                    // Responder: our VERSIONS, then NETINFO (no CERTS / AUTH_CHALLENGE: no TLS).
                    ch.send_versions();
                    let netinfo = netinfo_cell(ch.peer, &self.cfg.my_addrs);
                    ch.queue_ctrl_cell(&netinfo);
                    self.mark_ready(chan);
                }
            }
            ChanCell::Var(v)
                if matches!(
                    v.cmd,
                    ChanCmd::CERTS
                        | ChanCmd::AUTH_CHALLENGE
                        | ChanCmd::AUTHENTICATE
                        | ChanCmd::VPADDING
                ) =>
            {
                // C Tor responders send CERTS and AUTH_CHALLENGE; we have no TLS to bind them to.
                if ch.version.is_none() {
                    self.reject_channel(now, chan, "handshake cell before VERSIONS");
                }
            }
            ChanCell::Fixed(c) if c.cmd == ChanCmd::NETINFO => {
                if ch.version.is_none() {
                    return self.reject_channel(now, chan, "NETINFO before VERSIONS");
                }
                if Netinfo::parse(&c.body).is_err() {
                    return self.reject_channel(now, chan, "malformed NETINFO cell");
                }
                if ch.initiator {
                    let netinfo = netinfo_cell(ch.peer, &self.cfg.my_addrs);
                    ch.queue_ctrl_cell(&netinfo);
                }
                ch.state = ChanState::Open;
                self.mark_ready(chan);
                self.channel_opened(now, chan);
            }
            ChanCell::Fixed(c) if c.cmd == ChanCmd::PADDING => {}
            _ => self.reject_channel(now, chan, "unexpected cell during the link handshake"),
        }
    }

    fn channel_opened(&mut self, now: Instant, chan: ChanId) {
        debug!(?chan, "channel open");
        let waiting = match self.channels.get_mut(chan.0) {
            Some(ch) => std::mem::take(&mut ch.waiting),
            None => return,
        };
        for circ in waiting {
            self.send_create(now, circ, chan);
        }
    }

    /// Sends the CREATE2 of `circ` (origin's first hop, or a relay's EXTEND2) on `chan`.
    pub(super) fn send_create(&mut self, now: Instant, circ: CircHandle, chan: ChanId) {
        let Some(id) = self.alloc_circ_id(chan) else {
            return self.close_circuit(
                now,
                circ,
                DestroyReason::RESOURCELIMIT,
                CircuitFailure::ChannelFailed,
                "no free circuit id",
            );
        };
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        let mut body = [0u8; CELL_BODY_LEN];
        let written = match &c.kind {
            CircKind::Origin(o) => Create2 {
                htype: ntor::HTYPE,
                hdata: &o.pending_hdata,
            }
            .emit(&mut body),
            CircKind::Relay {
                extend: Some(x), ..
            } => Create2 {
                htype: x.htype,
                hdata: &x.hdata,
            }
            .emit(&mut body),
            CircKind::Relay { extend: None, .. } => return,
        };
        if written.is_err() {
            return self.reject_circuit(now, circ, "handshake data too long for CREATE2");
        }
        c.next = Some(Hop { chan, id });
        c.waiting_on = None;
        if let Some(ch) = self.channels.get_mut(chan.0) {
            ch.circs.insert(id, circ);
        }
        self.enqueue(now, circ, Dir::Forward, ChanCmd::CREATE2, &body);
    }

    // ----- open channel -----------------------------------------------------------------

    fn handle_open_cell(&mut self, now: Instant, chan: ChanId, cell: Cell) {
        match cell.cmd {
            ChanCmd::PADDING => {}
            ChanCmd::CREATE2 | ChanCmd::CREATE_FAST => self.handle_create(now, chan, cell),
            ChanCmd::CREATED2 => self.handle_created(now, chan, cell),
            ChanCmd::RELAY | ChanCmd::RELAY_EARLY => self.handle_relay(now, chan, cell),
            ChanCmd::DESTROY => self.handle_destroy(now, chan, cell),
            ChanCmd::NETINFO => self.reject_channel(now, chan, "NETINFO on an open channel"),
            ChanCmd::CREATE => {
                // TAP is long gone from Tor; refuse the circuit, keep the channel. It still
                // costs a token, as in Tor (every CREATE counts toward the limit).
                let reason = if self.take_create_token(now, chan) {
                    DestroyReason::PROTOCOL
                } else {
                    DestroyReason::RESOURCELIMIT
                };
                if let (Some(id), Some(ch)) = (cell.circ(), self.channels.get_mut(chan.0)) {
                    ch.queue_destroy(id, reason);
                    self.mark_ready(chan);
                }
            }
            other => debug!(?chan, cmd = ?other, "ignoring cell with unhandled command"),
        }
    }

    fn handle_create(&mut self, now: Instant, chan: ChanId, cell: Cell) {
        let Some(id) = cell.circ() else {
            return self.reject_channel(now, chan, "CREATE with circuit id 0");
        };
        let Some(ch) = self.channels.get_mut(chan.0) else {
            return;
        };
        if ch.circs.contains_key(&id) {
            return self.reject_channel(now, chan, "CREATE for a circuit id in use");
        }
        // Over the rate limit: refuse before any handshake work or circuit state.
        if !self.take_create_token(now, chan) {
            if let Some(ch) = self.channels.get_mut(chan.0) {
                ch.queue_destroy(id, DestroyReason::RESOURCELIMIT);
                self.mark_ready(chan);
            }
            return;
        }
        let Some(ch) = self.channels.get_mut(chan.0) else {
            return;
        };
        // The side that opened the connection sets the top bit of the ids it allocates.
        let peer_opened = !ch.initiator;
        let top_bit = id.get() & 0x8000_0000 != 0;
        let refuse = if top_bit != peer_opened {
            Some("circuit id with the wrong top bit")
        } else if self.cfg.keys.is_none() {
            Some("not a relay")
        } else {
            None
        };
        if let Some(why) = refuse {
            debug!(?chan, ?id, why, "refusing CREATE");
            ch.queue_destroy(id, DestroyReason::PROTOCOL);
            self.mark_ready(chan);
            return;
        }
        let Some(keys) = self.cfg.keys.as_ref() else {
            return;
        };
        let mut reply = [0u8; CELL_BODY_LEN];
        let (reply_cmd, km) = if cell.cmd == ChanCmd::CREATE2 {
            let result = Create2::parse(&cell.body)
                .ok()
                .filter(|c| c.htype == ntor::HTYPE)
                .and_then(|c| {
                    ntor::server_respond(&mut self.rng, &keys.identity, &keys.ntor, c.hdata).ok()
                });
            let Some((hdata, km)) = result else {
                debug!(?chan, ?id, "refusing CREATE2: bad handshake");
                ch.queue_destroy(id, DestroyReason::PROTOCOL);
                self.mark_ready(chan);
                return;
            };
            if (Created2 { hdata: &hdata }).emit(&mut reply).is_err() {
                return;
            }
            (ChanCmd::CREATED2, km)
        } else {
            let result = CreateFast::parse(&cell.body)
                .ok()
                .and_then(|c| fast::server_respond(&mut self.rng, &c.x).ok());
            let Some((hdata, km)) = result else {
                ch.queue_destroy(id, DestroyReason::PROTOCOL);
                self.mark_ready(chan);
                return;
            };
            let mut y = [0u8; 20];
            let mut kh = [0u8; 20];
            y.copy_from_slice(&hdata[..20]);
            kh.copy_from_slice(&hdata[20..]);
            if (CreatedFast { y, kh }).emit(&mut reply).is_err() {
                return;
            }
            (ChanCmd::CREATED_FAST, km)
        };
        let kind = CircKind::Relay {
            layer: Box::new(RelayLayer::new(&km)),
            extend: None,
        };
        let circ = CircHandle(
            self.circuits
                .insert(Circuit::new(kind, Some(Hop { chan, id }))),
        );
        ch.circs.insert(id, circ);
        self.enqueue(now, circ, Dir::Backward, reply_cmd, &reply);
    }

    /// Takes one circuit-creation token of `chan`'s peer; false (and counted) when the
    /// limit is reached. Always true without a limit.
    fn take_create_token(&mut self, now: Instant, chan: ChanId) -> bool {
        let (Some(limit), Some(ch)) = (
            self.cfg.circuit_creation_limit.as_ref(),
            self.channels.get_mut(chan.0),
        ) else {
            return true;
        };
        let Some(bucket) = ch.create_bucket.as_mut() else {
            return true;
        };
        if bucket.try_take(now, limit) {
            return true;
        }
        self.stats.creates_refused += 1;
        tracing::trace!(?chan, "refusing CREATE: circuit creation rate limit");
        false
    }

    fn handle_created(&mut self, now: Instant, chan: ChanId, cell: Cell) {
        let Some(id) = cell.circ() else {
            return self.reject_channel(now, chan, "CREATED2 with circuit id 0");
        };
        let Some((circ, Dir::Backward)) = self.circuit_dir_of(chan, id) else {
            return debug!(?chan, ?id, "CREATED2 for an unknown circuit");
        };
        let Ok(created) = Created2::parse(&cell.body) else {
            return self.reject_circuit(now, circ, "malformed CREATED2");
        };
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        match &mut c.kind {
            CircKind::Origin(o) if o.hops.is_empty() && o.pending.is_some() => {
                if let Err(why) = o.finish_hop(created.hdata) {
                    debug!(?circ, ?why, "first hop failed its handshake");
                    return self.close_circuit(
                        now,
                        circ,
                        DestroyReason::PROTOCOL,
                        why,
                        "handshake failed",
                    );
                }
                self.continue_build(now, circ);
            }
            CircKind::Relay {
                extend: extend @ Some(_),
                ..
            } => {
                *extend = None;
                let mut data = [0u8; RELAY_DATA_LEN];
                match (Extended2 {
                    hdata: created.hdata,
                })
                .emit(&mut data)
                {
                    Ok(n) => {
                        self.send_from_endpoint(now, circ, RelayCmd::EXTENDED2, None, &data[..n])
                    }
                    Err(_) => self.reject_circuit(now, circ, "CREATED2 too long for EXTENDED2"),
                }
            }
            _ => self.reject_circuit(now, circ, "unexpected CREATED2"),
        }
    }

    /// Origin: after a hop completed, extend to the next one or report the circuit built.
    fn continue_build(&mut self, now: Instant, circ: CircHandle) {
        let Some(CircKind::Origin(o)) = self.circuits.get_mut(circ.0).map(|c| &mut c.kind) else {
            return;
        };
        if o.is_built() {
            let elapsed = now - o.started;
            debug!(?circ, ?elapsed, "circuit built");
            self.events.push_back(Event::CircuitBuilt { circ, elapsed });
            return;
        }
        let Some(hdata) = o.start_next_hop(&mut self.rng) else {
            return;
        };
        let Some(hop) = o.path.get(o.hops.len()) else {
            return;
        };
        let addr_spec = match hop.addr {
            SocketAddr::V4(a) => LinkSpec::Ipv4(a),
            SocketAddr::V6(a) => LinkSpec::Ipv6(a),
        };
        let extend = Extend2 {
            link_specs: vec![addr_spec, LinkSpec::LegacyId(hop.id)],
            htype: ntor::HTYPE,
            hdata: &hdata,
        };
        let mut data = [0u8; RELAY_DATA_LEN];
        match extend.emit(&mut data) {
            Ok(n) => self.send_origin(now, circ, true, RelayCmd::EXTEND2, None, &data[..n]),
            Err(_) => self.reject_circuit(now, circ, "EXTEND2 does not fit"),
        }
    }

    fn handle_destroy(&mut self, now: Instant, chan: ChanId, cell: Cell) {
        let Some(id) = cell.circ() else {
            return self.reject_channel(now, chan, "DESTROY with circuit id 0");
        };
        let Some((circ, dir)) = self.circuit_dir_of(chan, id) else {
            return;
        };
        let reason = Destroy::parse(&cell.body)
            .map(|d| d.reason)
            .unwrap_or(DestroyReason::NONE);
        debug!(?circ, ?reason, "DESTROY received");
        // The queue toward the side that sent DESTROY leaves that channel's mux first.
        let toward_sender = match dir {
            Dir::Forward => Dir::Backward,
            Dir::Backward => Dir::Forward,
        };
        self.detach_queue(circ, toward_sender);
        if let Some(ch) = self.channels.get_mut(chan.0) {
            ch.circs.remove(&id);
        }
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        let origin = matches!(c.kind, CircKind::Origin(_));
        match dir {
            Dir::Forward => {
                c.prev = None;
                self.free_circuit(
                    now,
                    circ,
                    None,
                    Some(reason),
                    CircuitFailure::Destroyed(reason.0),
                );
            }
            Dir::Backward => {
                c.next = None;
                let back = (!origin).then_some(DestroyReason::DESTROYED);
                self.free_circuit(now, circ, back, None, CircuitFailure::Destroyed(reason.0));
            }
        }
    }

    // ----- relay cells ------------------------------------------------------------------

    fn handle_relay(&mut self, now: Instant, chan: ChanId, cell: Cell) {
        let Some(id) = cell.circ() else {
            return self.reject_channel(now, chan, "RELAY cell with circuit id 0");
        };
        let Some((circ, dir)) = self.circuit_dir_of(chan, id) else {
            return debug!(?chan, ?id, "RELAY cell for an unknown circuit");
        };
        let early = cell.cmd == ChanCmd::RELAY_EARLY;
        let mut body = cell.body;
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        match (dir, &mut c.kind) {
            (Dir::Forward, CircKind::Relay { layer, .. }) => {
                if early {
                    c.relay_early_seen += 1;
                    if c.relay_early_seen > MAX_RELAY_EARLY {
                        return self.reject_circuit(now, circ, "more than 8 RELAY_EARLY cells");
                    }
                }
                if layer.decrypt_forward(&mut body) {
                    self.handle_at_exit(now, circ, early, &body);
                } else if c.next.is_some() {
                    self.enqueue(now, circ, Dir::Forward, cell.cmd, &body);
                } else {
                    self.reject_circuit(now, circ, "unrecognized relay cell at the last hop");
                }
            }
            (Dir::Backward, _) if early => {
                self.reject_circuit(now, circ, "RELAY_EARLY toward the origin")
            }
            (Dir::Backward, CircKind::Relay { layer, .. }) => {
                layer.encrypt_backward(&mut body);
                self.enqueue(now, circ, Dir::Backward, ChanCmd::RELAY, &body);
            }
            (Dir::Backward, CircKind::Origin(o)) => match o.decrypt_backward(&mut body) {
                Some(hop) => self.handle_at_origin(now, circ, hop, &body),
                None => self.reject_circuit(now, circ, "relay cell recognized by no hop"),
            },
            (Dir::Forward, CircKind::Origin(_)) => {
                self.reject_circuit(now, circ, "relay cell toward an origin's next hop")
            }
        }
    }

    /// A relay cell recognized at this relay (we are its last hop so far).
    fn handle_at_exit(
        &mut self,
        now: Instant,
        circ: CircHandle,
        early: bool,
        body: &[u8; CELL_BODY_LEN],
    ) {
        let Ok(view) = RelayCellView::new_checked(&body[..]) else {
            return self.reject_circuit(now, circ, "relay cell with a bad length");
        };
        let stream = view.stream_id();
        let data = view.data();
        match view.cmd() {
            RelayCmd::DATA => self.handle_data(now, circ, Endpoint::Exit, stream, data),
            RelayCmd::SENDME => self.handle_sendme(now, circ, stream, data),
            RelayCmd::BEGIN => self.handle_begin(now, circ, stream, data),
            RelayCmd::END => self.handle_end(now, circ, stream, data),
            RelayCmd::EXTEND2 => self.handle_extend2(now, circ, early, data),
            RelayCmd::TRUNCATE => self.handle_truncate(now, circ),
            RelayCmd::DROP => {}
            RelayCmd::CONNECTED | RelayCmd::EXTENDED2 | RelayCmd::TRUNCATED => {
                self.reject_circuit(now, circ, "origin-bound relay command sent toward the exit")
            }
            other => debug!(?circ, cmd = ?other, "ignoring unhandled relay command"),
        }
    }

    /// A relay cell recognized by the origin as coming from hop `hop`.
    fn handle_at_origin(
        &mut self,
        now: Instant,
        circ: CircHandle,
        hop: usize,
        body: &[u8; CELL_BODY_LEN],
    ) {
        let Ok(view) = RelayCellView::new_checked(&body[..]) else {
            return self.reject_circuit(now, circ, "relay cell with a bad length");
        };
        let last = match self.circuits.get(circ.0).map(|c| &c.kind) {
            Some(CircKind::Origin(o)) => o.hops.len() - 1,
            _ => return,
        };
        let stream = view.stream_id();
        let data = view.data();
        match view.cmd() {
            RelayCmd::EXTENDED2 if hop == last => self.handle_extended2(now, circ, data),
            RelayCmd::DROP => {}
            _ if hop != last => {
                self.reject_circuit(now, circ, "relay cell from an intermediate hop")
            }
            RelayCmd::DATA => self.handle_data(now, circ, Endpoint::Origin(hop), stream, data),
            RelayCmd::SENDME => self.handle_sendme(now, circ, stream, data),
            RelayCmd::CONNECTED => self.handle_connected(now, circ, stream),
            RelayCmd::END => self.handle_end(now, circ, stream, data),
            RelayCmd::TRUNCATED => {
                let reason = Truncated::parse(data)
                    .map(|t| t.reason)
                    .unwrap_or(DestroyReason::NONE);
                self.close_circuit(
                    now,
                    circ,
                    DestroyReason::REQUESTED,
                    CircuitFailure::Destroyed(reason.0),
                    "TRUNCATED",
                );
            }
            _ => self.reject_circuit(now, circ, "unexpected relay command at the origin"),
        }
    }

    fn handle_extended2(&mut self, now: Instant, circ: CircHandle, data: &[u8]) {
        let Ok(ext) = Extended2::parse(data) else {
            return self.reject_circuit(now, circ, "malformed EXTENDED2");
        };
        let Some(CircKind::Origin(o)) = self.circuits.get_mut(circ.0).map(|c| &mut c.kind) else {
            return;
        };
        if o.pending.is_none() || o.is_built() {
            return self.reject_circuit(now, circ, "unexpected EXTENDED2");
        }
        if let Err(why) = o.finish_hop(ext.hdata) {
            debug!(?circ, ?why, "hop failed its handshake");
            return self.close_circuit(now, circ, DestroyReason::PROTOCOL, why, "handshake failed");
        }
        self.continue_build(now, circ);
    }

    fn handle_extend2(&mut self, now: Instant, circ: CircHandle, early: bool, data: &[u8]) {
        if !early {
            return self.reject_circuit(now, circ, "EXTEND2 outside RELAY_EARLY");
        }
        let Ok(ext) = Extend2::parse(data) else {
            return self.reject_circuit(now, circ, "malformed EXTEND2");
        };
        let addr = ext.link_specs.iter().find_map(|s| match s {
            LinkSpec::Ipv4(a) => Some(SocketAddr::V4(*a)),
            LinkSpec::Ipv6(a) => Some(SocketAddr::V6(*a)),
            _ => None,
        });
        let id = ext.link_specs.iter().find_map(|s| match s {
            LinkSpec::LegacyId(id) => Some(*id),
            _ => None,
        });
        let (Some(addr), Some(id)) = (addr, id) else {
            return self.reject_circuit(now, circ, "EXTEND2 without an address and identity");
        };
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        let CircKind::Relay { extend, .. } = &mut c.kind else {
            return;
        };
        if c.next.is_some() || c.waiting_on.is_some() || extend.is_some() {
            return self.reject_circuit(
                now,
                circ,
                "EXTEND2 on a circuit that already has a next hop",
            );
        }
        *extend = Some(PendingExtend {
            htype: ext.htype,
            hdata: ext.hdata.to_vec(),
        });
        let chan = self.channel_to(now, addr, id);
        self.attach_next(now, circ, chan);
    }

    fn handle_truncate(&mut self, now: Instant, circ: CircHandle) {
        self.detach_queue(circ, Dir::Forward);
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        if let Some(next) = c.next.take() {
            let dropped = c.to_next.clear();
            self.queued_bytes -= dropped * crate::wire::CELL_LEN;
            if let Some(ch) = self.channels.get_mut(next.chan.0) {
                ch.circs.remove(&next.id);
                ch.queue_destroy(next.id, DestroyReason::REQUESTED);
                self.mark_ready(next.chan);
            }
        }
        let mut data = [0u8; RELAY_DATA_LEN];
        if let Ok(n) = (Truncated {
            reason: DestroyReason::REQUESTED,
        })
        .emit(&mut data)
        {
            self.send_from_endpoint(now, circ, RelayCmd::TRUNCATED, None, &data[..n]);
        }
    }

    // ----- flow control -----------------------------------------------------------------

    fn handle_data(
        &mut self,
        now: Instant,
        circ: CircHandle,
        end: Endpoint,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        let Some(sid) = stream else {
            return self.reject_circuit(now, circ, "DATA without a stream");
        };
        if c.flow.deliver_window == 0 {
            return self.reject_circuit(now, circ, "circuit window violated");
        }
        c.flow.deliver_window -= 1;
        c.flow.data_received += 1;
        let sendme_due = c.flow.data_received % u64::from(CIRC_WINDOW_INCREMENT) == 0;
        let sendme_digest = match (&c.kind, end) {
            (CircKind::Relay { layer, .. }, Endpoint::Exit) => layer.last_forward_digest(),
            (CircKind::Origin(o), Endpoint::Origin(hop)) => match o.hops.get(hop) {
                Some(layer) => layer.last_backward_digest(),
                None => return,
            },
            _ => return,
        };
        if let Some(s) = c.streams.get_mut(&sid) {
            if s.deliver_window == 0 {
                return self.reject_circuit(now, circ, "stream window violated");
            }
            s.deliver_window -= 1;
            let was_empty = s.rx.is_empty();
            s.rx.extend(data);
            if was_empty && !data.is_empty() {
                self.events.push_back(Event::StreamReadable {
                    stream: StreamHandle { circ, id: sid },
                });
            }
        }
        // Data for a stream we no longer know (closed on our side) still counts toward the
        // circuit window, as in Tor.
        if sendme_due {
            let mut msg = [0u8; RELAY_DATA_LEN];
            if let Ok(n) = (Sendme {
                digest: Some(sendme_digest),
            })
            .emit(&mut msg)
            {
                if let Some(c) = self.circuits.get_mut(circ.0) {
                    c.flow.deliver_window += CIRC_WINDOW_INCREMENT;
                }
                self.send_from_endpoint(now, circ, RelayCmd::SENDME, None, &msg[..n]);
            }
        }
        self.maybe_stream_sendme(now, StreamHandle { circ, id: sid });
    }

    fn handle_sendme(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Ok(msg) = Sendme::parse(data) else {
            return self.reject_circuit(now, circ, "malformed SENDME");
        };
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        match stream {
            None => {
                // Authenticated SENDME (v1) only: it must echo the digest we recorded.
                let Some(expected) = c.flow.expected_sendme.pop_front() else {
                    return self.reject_circuit(now, circ, "circuit SENDME beyond the window");
                };
                if msg.digest != Some(expected) {
                    return self.reject_circuit(now, circ, "circuit SENDME with a wrong digest");
                }
                c.flow.package_window += CIRC_WINDOW_INCREMENT;
                let circ_open = c.flow.package_window > 0;
                for (&id, s) in c.streams.iter_mut() {
                    if s.blocked && circ_open && s.package_window > 0 {
                        s.blocked = false;
                        self.events.push_back(Event::StreamWritable {
                            stream: StreamHandle { circ, id },
                        });
                    }
                }
            }
            Some(sid) => {
                let circ_open = c.flow.package_window > 0;
                let Some(s) = c.streams.get_mut(&sid) else {
                    return;
                };
                if s.package_window + STREAM_WINDOW_INCREMENT > STREAM_WINDOW_START {
                    return self.reject_circuit(now, circ, "stream SENDME beyond the window");
                }
                s.package_window += STREAM_WINDOW_INCREMENT;
                if s.blocked && circ_open {
                    s.blocked = false;
                    self.events.push_back(Event::StreamWritable {
                        stream: StreamHandle { circ, id: sid },
                    });
                }
            }
        }
    }

    /// Sends stream SENDMEs while the window is half used and the reader keeps up.
    fn maybe_stream_sendme(&mut self, now: Instant, stream: StreamHandle) {
        loop {
            let Some(s) = self
                .circuits
                .get_mut(stream.circ.0)
                .and_then(|c| c.streams.get_mut(&stream.id))
            else {
                return;
            };
            if s.state == StreamState::Ended
                || s.deliver_window > STREAM_WINDOW_START - STREAM_WINDOW_INCREMENT
                || s.rx.len() >= STREAM_RX_LOW_WATER
            {
                return;
            }
            s.deliver_window += STREAM_WINDOW_INCREMENT;
            self.send_from_endpoint(now, stream.circ, RelayCmd::SENDME, Some(stream.id), &[]);
        }
    }

    // ----- streams ----------------------------------------------------------------------

    fn handle_begin(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Some(sid) = stream else {
            return self.reject_circuit(now, circ, "BEGIN without a stream id");
        };
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        if c.streams.contains_key(&sid) {
            return self.reject_circuit(now, circ, "BEGIN for a stream id in use");
        }
        let target = match Begin::parse(data) {
            Ok(b) => check_begin(self.cfg.exit_policy.as_ref(), b.host, b.port),
            Err(_) => Err(EndReason::TORPROTOCOL),
        };
        match target {
            Ok(t) => {
                c.streams.insert(sid, Stream::new(StreamState::Connecting));
                let stream = StreamHandle { circ, id: sid };
                self.events.push_back(Event::ConnectStream {
                    stream,
                    host: t.host,
                    port: t.port,
                    ip: t.ip,
                });
            }
            Err(reason) => {
                debug!(?circ, ?sid, ?reason, "refusing BEGIN");
                self.send_end(now, circ, sid, reason);
            }
        }
    }

    fn handle_connected(&mut self, now: Instant, circ: CircHandle, stream: Option<StreamId>) {
        let Some(sid) = stream else {
            return self.reject_circuit(now, circ, "CONNECTED without a stream id");
        };
        let Some(s) = self
            .circuits
            .get_mut(circ.0)
            .and_then(|c| c.streams.get_mut(&sid))
        else {
            return;
        };
        if s.state != StreamState::Connecting {
            return self.reject_circuit(now, circ, "CONNECTED for a stream that is not connecting");
        }
        s.state = StreamState::Open;
        self.events.push_back(Event::StreamConnected {
            stream: StreamHandle { circ, id: sid },
        });
    }

    fn handle_end(
        &mut self,
        _now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Some(sid) = stream else { return };
        let reason = End::parse(data)
            .map(|e| e.reason)
            .unwrap_or(EndReason::MISC);
        let Some(s) = self
            .circuits
            .get_mut(circ.0)
            .and_then(|c| c.streams.get_mut(&sid))
        else {
            return;
        };
        s.state = StreamState::Ended;
        s.ended_reported = true;
        self.events.push_back(Event::StreamEnded {
            stream: StreamHandle { circ, id: sid },
            reason,
        });
    }

    fn send_end(&mut self, now: Instant, circ: CircHandle, sid: StreamId, reason: EndReason) {
        let mut data = [0u8; RELAY_DATA_LEN];
        if let Ok(n) = (End { reason }).emit(&mut data) {
            self.send_from_endpoint(now, circ, RelayCmd::END, Some(sid), &data[..n]);
        }
    }

    /// Origin: opens a stream to `host:port` through the exit of built circuit `circ`.
    /// [`Event::StreamConnected`] or [`Event::StreamEnded`] follows.
    pub fn open_stream(
        &mut self,
        now: Instant,
        circ: CircHandle,
        host: &str,
        port: u16,
    ) -> Result<StreamHandle, ApiError> {
        let c = self
            .circuits
            .get_mut(circ.0)
            .ok_or(ApiError::NoSuchCircuit)?;
        match &c.kind {
            CircKind::Origin(o) if o.is_built() => {}
            _ => return Err(ApiError::NotBuilt),
        }
        let mut id = None;
        for _ in 0..=u16::MAX {
            let candidate = StreamId::new(c.next_stream_id);
            c.next_stream_id = c.next_stream_id.wrapping_add(1);
            if let Some(sid) = candidate.filter(|s| !c.streams.contains_key(s)) {
                id = Some(sid);
                break;
            }
        }
        let sid = id.ok_or(ApiError::StreamIdsExhausted)?;
        let mut data = [0u8; RELAY_DATA_LEN];
        let n = (Begin {
            host,
            port,
            flags: 0,
        })
        .emit(&mut data)
        .map_err(|_| ApiError::NoSuchStream)?;
        c.streams.insert(sid, Stream::new(StreamState::Connecting));
        self.send_from_endpoint(now, circ, RelayCmd::BEGIN, Some(sid), &data[..n]);
        Ok(StreamHandle { circ, id: sid })
    }

    /// Exit: the runtime connected `stream` to `addr`; CONNECTED goes to the origin.
    pub fn handle_stream_connected(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        addr: SocketAddr,
    ) {
        let Some(s) = self
            .circuits
            .get_mut(stream.circ.0)
            .and_then(|c| c.streams.get_mut(&stream.id))
        else {
            return;
        };
        if s.state != StreamState::Connecting {
            return;
        }
        s.state = StreamState::Open;
        let mut data = [0u8; RELAY_DATA_LEN];
        // TTL as C Tor uses for addresses it will not cache (tor-spec: seconds).
        if let Ok(n) = (Connected {
            addr: Some((addr.ip(), 300)),
        })
        .emit(&mut data)
        {
            self.send_from_endpoint(
                now,
                stream.circ,
                RelayCmd::CONNECTED,
                Some(stream.id),
                &data[..n],
            );
        }
    }

    /// Exit: connecting `stream` failed (or its resolved address is refused by policy).
    pub fn handle_stream_failed(&mut self, now: Instant, stream: StreamHandle, reason: EndReason) {
        let Some(c) = self.circuits.get_mut(stream.circ.0) else {
            return;
        };
        if c.streams.remove(&stream.id).is_some() {
            self.send_end(now, stream.circ, stream.id, reason);
        }
    }

    /// Closes a stream from this side: END goes to the other end, local state is freed
    /// (unread bytes are discarded).
    pub fn stream_close(&mut self, now: Instant, stream: StreamHandle, reason: EndReason) {
        let Some(c) = self.circuits.get_mut(stream.circ.0) else {
            return;
        };
        let Some(s) = c.streams.remove(&stream.id) else {
            return;
        };
        if s.state != StreamState::Ended {
            self.send_end(now, stream.circ, stream.id, reason);
        }
    }

    /// Bytes from the application (origin) or the target server (exit) for `stream`.
    /// Packages as many DATA cells as the circuit and stream windows allow and returns how
    /// many bytes it took; when that is less than offered, [`Event::StreamWritable`] says
    /// when to offer the rest.
    pub fn handle_stream_data(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        mut data: &[u8],
    ) -> usize {
        let mut taken = 0;
        while !data.is_empty() {
            let Some(c) = self.circuits.get_mut(stream.circ.0) else {
                return taken;
            };
            let circ_window = c.flow.package_window;
            let Some(s) = c.streams.get_mut(&stream.id) else {
                return taken;
            };
            if s.state != StreamState::Open {
                return taken;
            }
            if circ_window == 0 || s.package_window == 0 {
                s.blocked = true;
                return taken;
            }
            s.package_window -= 1;
            let n = data.len().min(RELAY_DATA_LEN);
            let mut body = [0u8; CELL_BODY_LEN];
            body[RELAY_HEADER_LEN..RELAY_HEADER_LEN + n].copy_from_slice(&data[..n]);
            if finish_relay_cell(&mut body, RelayCmd::DATA, Some(stream.id), n, &mut self.rng)
                .is_err()
            {
                return taken;
            }
            self.send_data_body(now, stream.circ, &mut body);
            data = &data[n..];
            taken += n;
        }
        taken
    }

    /// Reads received bytes of `stream` into `buf`. `Some(0)`: nothing yet; `None`: the
    /// stream has ended and everything was read (its state is freed now), or it does not exist.
    pub fn stream_recv(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        buf: &mut [u8],
    ) -> Option<usize> {
        let c = self.circuits.get_mut(stream.circ.0)?;
        let s = c.streams.get_mut(&stream.id)?;
        let (front, back) = s.rx.as_slices();
        let a = front.len().min(buf.len());
        buf[..a].copy_from_slice(&front[..a]);
        let b = back.len().min(buf.len() - a);
        buf[a..a + b].copy_from_slice(&back[..b]);
        self.finish_recv(now, stream, a + b)
    }

    /// As [`Relay::stream_recv`], appending at most `max` bytes to `out` (no zero-filling of
    /// a buffer first: the runtime appends straight into a connection's send buffer).
    pub fn stream_recv_append(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Option<usize> {
        let c = self.circuits.get_mut(stream.circ.0)?;
        let s = c.streams.get_mut(&stream.id)?;
        let (front, back) = s.rx.as_slices();
        let a = front.len().min(max);
        out.extend_from_slice(&front[..a]);
        let b = back.len().min(max - a);
        out.extend_from_slice(&back[..b]);
        self.finish_recv(now, stream, a + b)
    }

    /// Drops `n` bytes the application took; frees an ended, drained stream (None).
    fn finish_recv(&mut self, now: Instant, stream: StreamHandle, n: usize) -> Option<usize> {
        let c = self.circuits.get_mut(stream.circ.0)?;
        let s = c.streams.get_mut(&stream.id)?;
        s.rx.drain(..n);
        if n == 0 && s.state == StreamState::Ended {
            c.streams.remove(&stream.id);
            return None;
        }
        self.maybe_stream_sendme(now, stream);
        Some(n)
    }

    /// Bytes waiting to be read on `stream`.
    pub fn stream_pending(&self, stream: StreamHandle) -> usize {
        self.circuits
            .get(stream.circ.0)
            .and_then(|c| c.streams.get(&stream.id))
            .map_or(0, |s| s.rx.len())
    }

    // ----- sending ----------------------------------------------------------------------

    /// A DATA cell (body complete, not yet encrypted) from this endpoint: counts it toward
    /// the circuit package window and records the SENDME digest every 100 cells.
    fn send_data_body(&mut self, now: Instant, circ: CircHandle, body: &mut [u8; CELL_BODY_LEN]) {
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        c.flow.package_window = c.flow.package_window.saturating_sub(1);
        c.flow.data_sent += 1;
        let record = c.flow.data_sent % u64::from(CIRC_WINDOW_INCREMENT) == 0;
        let (dir, cmd) = match &mut c.kind {
            CircKind::Relay { layer, .. } => {
                layer.originate_backward(body);
                if record {
                    c.flow
                        .expected_sendme
                        .push_back(layer.last_backward_digest());
                }
                (Dir::Backward, ChanCmd::RELAY)
            }
            CircKind::Origin(o) => {
                let Some(last) = o.hops.len().checked_sub(1) else {
                    return;
                };
                o.encrypt_forward(last, body);
                if record {
                    if let Some(layer) = o.hops.get(last) {
                        c.flow
                            .expected_sendme
                            .push_back(layer.last_forward_digest());
                    }
                }
                (Dir::Forward, ChanCmd::RELAY)
            }
        };
        self.enqueue(now, circ, dir, cmd, body);
    }

    /// A control relay message from this circuit endpoint to the other end (the last hop
    /// for an origin, the origin for a relay).
    fn send_from_endpoint(
        &mut self,
        now: Instant,
        circ: CircHandle,
        cmd: RelayCmd,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        match self.circuits.get(circ.0).map(|c| &c.kind) {
            Some(CircKind::Origin(_)) => self.send_origin(now, circ, false, cmd, stream, data),
            Some(CircKind::Relay { .. }) => {
                let mut body = [0u8; CELL_BODY_LEN];
                if emit_relay_cell(&mut body, cmd, stream, data, &mut self.rng).is_err() {
                    return;
                }
                let Some(CircKind::Relay { layer, .. }) =
                    self.circuits.get_mut(circ.0).map(|c| &mut c.kind)
                else {
                    return;
                };
                layer.originate_backward(&mut body);
                self.enqueue(now, circ, Dir::Backward, ChanCmd::RELAY, &body);
            }
            None => {}
        }
    }

    /// Origin: a relay message to the last completed hop.
    fn send_origin(
        &mut self,
        now: Instant,
        circ: CircHandle,
        early: bool,
        cmd: RelayCmd,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let mut body = [0u8; CELL_BODY_LEN];
        if emit_relay_cell(&mut body, cmd, stream, data, &mut self.rng).is_err() {
            return;
        }
        let Some(CircKind::Origin(o)) = self.circuits.get_mut(circ.0).map(|c| &mut c.kind) else {
            return;
        };
        let Some(last) = o.hops.len().checked_sub(1) else {
            return;
        };
        o.encrypt_forward(last, &mut body);
        let cell_cmd = if early {
            ChanCmd::RELAY_EARLY
        } else {
            ChanCmd::RELAY
        };
        self.enqueue(now, circ, Dir::Forward, cell_cmd, &body);
    }

    /// Queues a finished cell on `circ` toward its `dir` side. Enforces the per-circuit
    /// queue cap (closing the circuit) and the memory limit.
    pub(super) fn enqueue(
        &mut self,
        now: Instant,
        circ: CircHandle,
        dir: Dir,
        cmd: ChanCmd,
        body: &[u8; CELL_BODY_LEN],
    ) {
        let cap = self.cfg.max_circuit_queue_cells;
        let Some(c) = self.circuits.get_mut(circ.0) else {
            return;
        };
        let Some(hop) = c.out_hop(dir) else { return };
        let q = c.queue_mut(dir);
        if q.len() >= cap {
            return self.reject_circuit(now, circ, "circuit queue over its cap");
        }
        q.push(QueuedCell::new(hop.id.get(), cmd, body, now));
        self.queued_bytes += crate::wire::CELL_LEN;
        if !q.in_mux {
            if let Some(ch) = self.channels.get_mut(hop.chan.0) {
                q.in_mux = true;
                ch.mux.activate(now, (circ, dir), &mut q.ewma);
            }
        }
        self.mark_ready(hop.chan);
        self.check_oom(now);
    }
}

fn netinfo_cell(peer: Option<SocketAddr>, mine: &[std::net::IpAddr]) -> Cell {
    let mut cell = Cell::new(0, ChanCmd::NETINFO);
    // The sans-IO core has no wall clock: time 0, which C Tor accepts (spec: "Details confirmed").
    let netinfo = Netinfo {
        time: 0,
        other_addr: peer.map(|p| p.ip()),
        my_addrs: mine.to_vec(),
    };
    let _ = netinfo.emit(&mut cell.body[..]);
    cell
}
