//! Relay cells in both directions: one layer of relay crypto per hop, then either forward
//! the cell (not for us) or hand it to the endpoint logic (recognized); and packaging the
//! relay messages a circuit endpoint originates.
//!
//! ```text
//!   RELAY from prev --decrypt_forward--> recognized? --yes--> handle_at_exit (EXTEND2, BEGIN, DATA, ...)
//!                                                    --no---> queue toward next (or close at the last hop)
//!   RELAY from next --encrypt_backward-> queue toward prev            (relayed circuit)
//!                   --decrypt layers---> handle_at_origin             (origin circuit)
//! ```
//!
//! Forwarding is the per-cell path: the cell is read where it lies in the receive buffer,
//! decrypted or encrypted on its way into a pool slot (the keystream XORed with the received
//! body straight into the slot: the copy and the cipher are one pass), the outgoing circuit
//! id written, and its slot linked into the circuit queue (transmit copies it once more, into
//! the send buffer), with no allocation. Cells consumed here (last hop, origin) are
//! copied once, to the stack, instead. A DATA cell an endpoint originates is built in its
//! slot the same way: stream bytes copied once into it, sealed and encrypted there.

use tracing::debug;

use crate::time::Instant;
use crate::wire::{
    emit_relay_cell, CellRef, ChanCmd, DestroyReason, RelayCellView, RelayCmd, StreamId, Truncated,
    CELL_BODY_LEN,
};

use super::circuit::{CircKind, Dir, Endpoint, MAX_RELAY_EARLY};
use super::error::{CircuitClose, ForwardError};
use super::flow::CircuitFlow;
use super::ids::{ChanId, CircHandle};
use super::link::LinkError;
use super::transmit::outbox;
use super::{Relay, StreamHandle};

impl Relay {
    /// RELAY or RELAY_EARLY (`cmd`, as the dispatch read it: not read from the cell again)
    /// from `chan`, viewed in the receive buffer.
    pub(super) fn handle_relay(
        &mut self,
        now: Instant,
        chan: ChanId,
        cmd: ChanCmd,
        cell: &CellRef<'_>,
    ) {
        let Some(id) = cell.circ() else {
            return self.reject_channel(now, chan, LinkError::CircIdZero { cmd });
        };
        let found = Self::find_circuit(&self.channels, &mut self.circuits, chan, id);
        let Some((circ, dir, c)) = found else {
            return debug!(?chan, ?id, "RELAY cell for an unknown circuit");
        };
        let early = cmd == ChanCmd::RELAY_EARLY;
        match (dir, &mut c.kind) {
            (Dir::Forward, CircKind::Relay { layer, .. }) => {
                if early {
                    c.relay_early_seen += 1;
                    if c.relay_early_seen > MAX_RELAY_EARLY {
                        let e = ForwardError::TooManyRelayEarly;
                        return self.reject_circuit(now, circ, e.into());
                    }
                }
                let Some(next) = c.next else {
                    // The last hop: every cell must be for us, so no slot.
                    let mut body = *cell.body();
                    return if layer.decrypt_forward(&mut self.ciphers, &mut body) {
                        self.handle_at_exit(now, circ, early, &body)
                    } else {
                        let e = ForwardError::UnrecognizedAtLastHop;
                        self.reject_circuit(now, circ, e.into())
                    };
                };
                let Some((slot, body)) = self.cells.take(next.id.get(), cmd, now) else {
                    return;
                };
                if layer.decrypt_forward_from(&mut self.ciphers, cell.body(), body) {
                    // For this middle hop (rare: DROP, TRUNCATE): handled from a copy, as
                    // the handlers queue cells of their own.
                    let body = *body;
                    self.cells.release(slot);
                    self.handle_at_exit(now, circ, early, &body);
                } else {
                    let queued = outbox!(self).queue(now, (circ, Dir::Forward), c, slot);
                    self.after_queue(now, circ, queued);
                }
            }
            (Dir::Backward, _) if early => {
                self.reject_circuit(now, circ, ForwardError::RelayEarlyTowardOrigin.into())
            }
            (Dir::Backward, CircKind::Relay { layer, .. }) => {
                let Some(prev) = c.prev else { return };
                let Some((slot, body)) = self.cells.take(prev.id.get(), ChanCmd::RELAY, now) else {
                    return;
                };
                layer.encrypt_backward_from(&mut self.ciphers, cell.body(), body);
                let queued = outbox!(self).queue(now, (circ, Dir::Backward), c, slot);
                self.after_queue(now, circ, queued);
            }
            (Dir::Backward, CircKind::Origin(o)) => {
                let mut body = *cell.body();
                match o.decrypt_backward(&mut body) {
                    Some(hop) => self.handle_at_origin(now, circ, hop, &body),
                    None => {
                        let e = ForwardError::UnrecognizedAtOrigin;
                        self.reject_circuit(now, circ, e.into())
                    }
                }
            }
            (Dir::Forward, CircKind::Origin(_)) => {
                self.reject_circuit(now, circ, ForwardError::TowardOrigin.into())
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
            return self.reject_circuit(now, circ, ForwardError::BadLength.into());
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
            RelayCmd::RESOLVE => self.handle_resolve(now, circ, stream, data),
            RelayCmd::BEGIN_DIR => self.handle_begin_dir(now, circ, stream),
            RelayCmd::DROP => {}
            cmd @ (RelayCmd::CONNECTED
            | RelayCmd::EXTENDED2
            | RelayCmd::TRUNCATED
            | RelayCmd::RESOLVED) => {
                let e = ForwardError::OriginBoundCommand { cmd };
                self.reject_circuit(now, circ, e.into())
            }
            cmd if cmd.name().is_none() => self.unknown_relay_command(circ, cmd),
            other => debug!(?circ, cmd = ?other, "ignoring a relay command kistrel does not serve"),
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
            return self.reject_circuit(now, circ, ForwardError::BadLength.into());
        };
        let last = match self.circuits.get(circ).map(|c| &c.kind) {
            Some(CircKind::Origin(o)) => o.hops_done().saturating_sub(1),
            _ => return,
        };
        let stream = view.stream_id();
        let data = view.data();
        match view.cmd() {
            RelayCmd::EXTENDED2 if hop == last => self.handle_extended2(now, circ, data),
            RelayCmd::DROP => {}
            cmd if cmd.name().is_none() => self.unknown_relay_command(circ, cmd),
            _ if hop != last => {
                self.reject_circuit(now, circ, ForwardError::FromIntermediateHop.into())
            }
            RelayCmd::DATA => self.handle_data(now, circ, Endpoint::Origin(hop), stream, data),
            RelayCmd::SENDME => self.handle_sendme(now, circ, stream, data),
            RelayCmd::CONNECTED => self.handle_connected(now, circ, stream),
            RelayCmd::END => self.handle_end(now, circ, stream, data),
            RelayCmd::TRUNCATED => {
                let reason = Truncated::parse(data)
                    .map(|t| t.reason)
                    .unwrap_or(DestroyReason::NONE);
                self.close_circuit(now, circ, CircuitClose::Truncated(reason));
            }
            cmd => {
                let e = ForwardError::UnexpectedAtOrigin { cmd };
                self.reject_circuit(now, circ, e.into())
            }
        }
    }

    // ----- originating ------------------------------------------------------------------

    /// A DATA cell of `data` (at most [`crate::wire::RELAY_DATA_LEN`] bytes) on `stream`,
    /// from this endpoint, built in its pool slot: the data copied straight in (no stack
    /// body to zero-fill and copy), sealed and encrypted there, counted in the circuit's flow
    /// control (which remembers the digests SENDMEs will echo), and queued. False if there is
    /// no circuit or hop to send it to, or too much data: nothing was sent.
    pub(super) fn send_stream_data(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        data: &[u8],
    ) -> bool {
        let Some(c) = self.circuits.get_mut(stream.circ) else {
            return false;
        };
        // Where the cell goes, and at an origin the hop it is for: known before a slot is
        // taken, so only a failed emit gives one back.
        let (dir, last) = match &c.kind {
            CircKind::Relay { .. } => (Dir::Backward, 0),
            CircKind::Origin(o) => match o.hops_done().checked_sub(1) {
                Some(last) => (Dir::Forward, last),
                None => return false,
            },
        };
        let Some(hop) = c.out_hop(dir) else {
            return false;
        };
        let Some((slot, body)) = self.cells.take(hop.id.get(), ChanCmd::RELAY, now) else {
            return false;
        };
        if emit_relay_cell(body, RelayCmd::DATA, Some(stream.id), data, &mut self.rng).is_err() {
            self.cells.release(slot);
            return false;
        }
        match &mut c.kind {
            CircKind::Relay { layer, .. } => {
                layer.originate_backward(&mut self.ciphers, body);
                c.flow.on_data_sent(now, || layer.last_backward_digest());
            }
            CircKind::Origin(o) => {
                o.encrypt_forward(last, body);
                // `last` is a valid hop index: checked above.
                c.flow.on_data_sent(now, || {
                    o.hops
                        .get(last)
                        .map_or([0; 20], |l| l.last_forward_digest())
                });
            }
        }
        self.enqueue_slot(now, stream.circ, dir, slot);
        true
    }

    /// A control relay message from this circuit endpoint to the other end (the last hop
    /// for an origin, the origin for a relay).
    pub(super) fn send_from_endpoint(
        &mut self,
        now: Instant,
        circ: CircHandle,
        cmd: RelayCmd,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        match self.circuits.get(circ).map(|c| &c.kind) {
            Some(CircKind::Origin(_)) => self.send_origin(now, circ, false, cmd, stream, data),
            Some(CircKind::Relay { .. }) => {
                let mut body = [0u8; CELL_BODY_LEN];
                if emit_relay_cell(&mut body, cmd, stream, data, &mut self.rng).is_err() {
                    return;
                }
                let Some(CircKind::Relay { layer, .. }) =
                    self.circuits.get_mut(circ).map(|c| &mut c.kind)
                else {
                    return;
                };
                layer.originate_backward(&mut self.ciphers, &mut body);
                self.enqueue(now, circ, Dir::Backward, ChanCmd::RELAY, &body);
            }
            None => {}
        }
    }

    /// Origin: a relay message to the last completed hop.
    pub(super) fn send_origin(
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
        let Some(CircKind::Origin(o)) = self.circuits.get_mut(circ).map(|c| &mut c.kind) else {
            return;
        };
        let Some(last) = o.hops_done().checked_sub(1) else {
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
}
