//! Taking state down: DESTROY from a peer, channels that go away, circuits we close
//! (requested, rejected, shut down) and the out-of-memory handler.
//!
//! ```text
//!   DESTROY from prev ──> free circuit, DESTROY (reason as received) toward next
//!   DESTROY from next ──> free circuit, DESTROY (DESTROYED) toward prev; origin: CircuitClosed
//!   channel gone ───────> each circuit on it: DESTROY toward its other side
//!   close_circuit(why) ─> DESTROY (why's reason) both ways
//! ```
//!
//! Freeing a circuit frees everything it holds: its queues (and their bytes in the
//! `MaxMemInQueues` account), its streams and their unread bytes, its channel-map entries.

use tracing::{debug, trace};

use crate::client::CircuitFailure;
use crate::time::Instant;
use crate::wire::{CellRef, Destroy, DestroyReason, EndReason};

use super::circuit::{CircKind, Dir};
use super::error::{ChannelClose, CircuitClose, CircuitError, Rejection};
use super::event::Event;
use super::ids::{ChanId, CircHandle, StreamHandle};
use super::link::LinkError;
use super::Relay;

impl Relay {
    /// Graceful stop: every circuit gets a DESTROY (reason HIBERNATING) queued on its
    /// channels. The runtime then transmits what is pending and closes the sockets.
    pub fn shutdown(&mut self, now: Instant) {
        for circ in self.circuits.handles() {
            self.close_circuit(now, circ, CircuitClose::Shutdown);
        }
    }

    /// Closes a circuit (origin or relayed), sending DESTROY (REQUESTED) both ways.
    pub fn close_circuit_requested(&mut self, now: Instant, circ: CircHandle) {
        self.close_circuit(now, circ, CircuitClose::Requested);
    }

    pub(super) fn handle_destroy(&mut self, now: Instant, chan: ChanId, cell: &CellRef<'_>) {
        let Some(id) = cell.circ() else {
            return self.reject_channel(now, chan, LinkError::CircIdZero { cmd: cell.cmd() });
        };
        let Some((circ, dir)) = self.circuit_dir_of(chan, id) else {
            return;
        };
        let reason = Destroy::parse(cell.body())
            .map(|d| d.reason)
            .unwrap_or(DestroyReason::NONE);
        debug!(?circ, ?reason, "DESTROY received");
        // The queue toward the side that sent DESTROY leaves that channel's mux first.
        self.detach_queue(circ, dir.reverse());
        if let Some(ch) = self.channels.get_mut(chan) {
            ch.circs.remove(&id);
        }
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        let origin = matches!(c.kind, CircKind::Origin(_));
        let why = CircuitFailure::Destroyed(reason.0);
        match dir {
            Dir::Forward => {
                c.prev = None;
                self.free_circuit(now, circ, None, Some(reason), why);
            }
            Dir::Backward => {
                c.next = None;
                let back = (!origin).then_some(DestroyReason::DESTROYED);
                self.free_circuit(now, circ, back, None, why);
            }
        }
    }

    /// Removes a channel and everything on it. Circuits lose that side: the other side gets
    /// a DESTROY (CHANNEL_CLOSED toward the exit, DESTROYED toward the origin).
    pub(super) fn drop_channel(&mut self, now: Instant, chan: ChanId, why: ChannelClose) {
        let Some(mut ch) = self.channels.remove(chan) else {
            return;
        };
        debug!(?chan, %why, circuits = ch.circs.len(), "channel closed");
        // Circuits that waited for this channel to reach the relay their EXTEND2 named learn
        // when it proved to be another one (tor-spec 5.4: OR_IDENTITY).
        let wrong_relay = matches!(why, ChannelClose::Rejected(e) if e.is_identity_mismatch());
        let waiting_reason = if wrong_relay {
            DestroyReason::OR_IDENTITY
        } else {
            DestroyReason::DESTROYED
        };
        for circ in ch.waiting.drain(..) {
            self.circuit_side_lost(now, circ, chan, waiting_reason);
        }
        let circs: Vec<CircHandle> = ch.circs.values().copied().collect();
        for circ in circs {
            self.circuit_side_lost(now, circ, chan, DestroyReason::DESTROYED);
        }
        if why.tell_runtime() {
            self.events.push_back(Event::CloseChannel { chan });
        }
    }

    /// `chan` is gone under `circ`: tear the circuit down, telling the other side (the
    /// origin's side with `back`).
    fn circuit_side_lost(
        &mut self,
        now: Instant,
        circ: CircHandle,
        chan: ChanId,
        back: DestroyReason,
    ) {
        let Some(c) = self.circuits.get_mut(circ) else {
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
            Some(back),
            Some(DestroyReason::CHANNEL_CLOSED),
            CircuitFailure::ChannelFailed,
        );
    }

    /// Closes `circ` for a fault of a peer on it: DESTROY with the reason the error's kind
    /// gives, both ways.
    pub(super) fn reject_circuit(&mut self, now: Instant, circ: CircHandle, e: CircuitError) {
        self.stats.circuits_rejected += 1;
        self.last_rejection = Some(Rejection::Circuit(e));
        self.close_circuit(now, circ, CircuitClose::Rejected(e));
    }

    /// Closes a circuit we decided to close: DESTROY with `why`'s reason both ways.
    pub(super) fn close_circuit(&mut self, now: Instant, circ: CircHandle, why: CircuitClose) {
        if !self.circuits.contains(circ) {
            return;
        }
        let reason = why.destroy_reason();
        debug!(?circ, ?reason, %why, "closing circuit");
        self.free_circuit(now, circ, Some(reason), Some(reason), why.failure());
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
        let Some(mut c) = self.circuits.remove(circ) else {
            return;
        };
        if let CircKind::Relay { layer, .. } = &c.kind {
            layer.forget(&mut self.ciphers);
        }
        let dropped = self.cells.clear(&mut c.to_prev) + self.cells.clear(&mut c.to_next);
        self.memory.cells_gone(dropped);
        for (hop, reason) in [(c.prev, to_prev), (c.next, to_next)] {
            let Some(hop) = hop else { continue };
            let Some(ch) = self.channels.get_mut(hop.chan) else {
                continue;
            };
            ch.circs.remove(&hop.id);
            if let Some(reason) = reason {
                self.channels.queue_destroy(hop.chan, hop.id, reason);
            }
        }
        if let Some(ch) = c.waiting_on.and_then(|chan| self.channels.get_mut(chan)) {
            ch.waiting.retain(|w| *w != circ);
        }
        for (id, s) in c.streams.remove_all(&mut self.memory) {
            if !s.ended_reported {
                self.events.push_back(Event::StreamEnded {
                    stream: StreamHandle { circ, id },
                    reason: EndReason::DESTROY,
                });
            }
        }
        if let CircKind::Origin(o) = &c.kind {
            self.events.push_back(Event::CircuitClosed {
                circ,
                why,
                hops_done: o.hops_done(),
            });
        }
        trace!(?circ, "circuit freed");
    }

    /// Out-of-memory handling: while queued bytes (circuit queues and unread stream bytes)
    /// exceed `MaxMemInQueues`, close the circuits whose oldest queued byte is oldest, until
    /// usage is below 90% of the limit. Called per queued cell: the test inline, the
    /// handler out of line.
    #[inline]
    pub(super) fn check_oom(&mut self, now: Instant) {
        if self.memory.over_limit() {
            self.handle_oom(now);
        }
    }

    #[cold]
    #[inline(never)]
    fn handle_oom(&mut self, now: Instant) {
        for (_, circ) in self.circuits.by_oldest_byte() {
            if self.memory.below_target() {
                break;
            }
            self.stats.oom_closed += 1;
            self.close_circuit(now, circ, CircuitClose::OutOfMemory);
        }
    }
}
