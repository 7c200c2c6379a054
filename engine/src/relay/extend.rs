//! Growing circuits: the origin's hop-by-hop build, EXTEND2 at relays (opening or reusing
//! a channel to the next hop), EXTENDED2 back at the origin, and TRUNCATE.
//!
//! ```text
//!   origin: build_circuit ── CREATE2 ──> first hop (channel opened or reused)
//!           CREATED2 / EXTENDED2 ──> continue_build ── RELAY_EARLY(EXTEND2) ──> last hop
//!   relay:  EXTEND2 ──> channel_to(addr, id) ──> attach_next: CREATE2 now, or when the
//!           channel opens; its CREATED2 goes back as EXTENDED2 (create.rs)
//! ```

use std::net::SocketAddr;

use tracing::debug;

use crate::client::{HopSpec, OriginCirc};
use crate::crypto::{ntor, RelayId};
use crate::time::Instant;
use crate::wire::{
    DestroyReason, Extend2, Extended2, LinkSpec, RelayCmd, Truncated, RELAY_DATA_LEN,
};

use super::circuit::{CircKind, Circuit, Dir, PendingExtend};
use super::error::{CreateError, ExtendError};
use super::event::{ApiError, Event};
use super::ids::{ChanId, CircHandle};
use super::Relay;

impl Relay {
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
        let circ = self
            .circuits
            .insert(Circuit::new(CircKind::Origin(Box::new(origin)), None));
        let chan = self.channel_to(now, first.addr, first.id);
        self.attach_next(now, circ, chan);
        Ok(circ)
    }

    /// Whether `circ` is a built origin circuit.
    pub fn is_built(&self, circ: CircHandle) -> bool {
        self.circuits
            .get(circ)
            .is_some_and(Circuit::is_built_origin)
    }

    /// An open or opening channel to `(addr, id)`, reusing one we opened before.
    fn channel_to(&mut self, now: Instant, addr: SocketAddr, id: RelayId) -> ChanId {
        if let Some(chan) = self.channels.outbound_to(&(addr, id)) {
            return chan;
        }
        let chan = self.channels.insert_outbound(
            now,
            (addr, id),
            &self.cfg.ewma,
            self.cfg.circuit_creation_limit.as_ref(),
        );
        self.events.push_back(Event::OpenChannel { chan, addr });
        chan
    }

    /// Makes `chan` the next hop of `circ`: sends its CREATE2 now if the channel is open,
    /// or when it opens.
    fn attach_next(&mut self, now: Instant, circ: CircHandle, chan: ChanId) {
        let open = match self.channels.get_mut(chan) {
            Some(ch) if ch.link.is_open() => true,
            Some(ch) => {
                ch.waiting.push(circ);
                false
            }
            None => false,
        };
        if let Some(c) = self.circuits.get_mut(circ) {
            c.waiting_on = Some(chan);
        }
        if open {
            self.send_create(now, circ, chan);
        }
    }

    /// Origin: after a hop completed, extend to the next one or report the circuit built.
    pub(super) fn continue_build(&mut self, now: Instant, circ: CircHandle) {
        let Some(CircKind::Origin(o)) = self.circuits.get_mut(circ).map(|c| &mut c.kind) else {
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
            Err(_) => self.reject_circuit(now, circ, ExtendError::Extend2TooLong.into()),
        }
    }

    /// Origin: the last hop extended the circuit.
    pub(super) fn handle_extended2(&mut self, now: Instant, circ: CircHandle, data: &[u8]) {
        let Ok(ext) = Extended2::parse(data) else {
            return self.reject_circuit(now, circ, ExtendError::MalformedExtended2.into());
        };
        let Some(CircKind::Origin(o)) = self.circuits.get_mut(circ).map(|c| &mut c.kind) else {
            return;
        };
        if o.pending.is_none() || o.is_built() {
            return self.reject_circuit(now, circ, ExtendError::UnexpectedExtended2.into());
        }
        if let Err(e) = o.finish_hop(ext.hdata) {
            return self.reject_circuit(now, circ, CreateError::Hop(e).into());
        }
        self.continue_build(now, circ);
    }

    /// Relay: the origin asks us to extend the circuit to a next hop.
    pub(super) fn handle_extend2(
        &mut self,
        now: Instant,
        circ: CircHandle,
        early: bool,
        data: &[u8],
    ) {
        if !early {
            return self.reject_circuit(now, circ, ExtendError::NotEarly.into());
        }
        let Ok(ext) = Extend2::parse(data) else {
            return self.reject_circuit(now, circ, ExtendError::Malformed.into());
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
            return self.reject_circuit(now, circ, ExtendError::NoTarget.into());
        };
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        let CircKind::Relay { extend, .. } = &mut c.kind else {
            return;
        };
        if c.next.is_some() || c.waiting_on.is_some() || extend.is_some() {
            return self.reject_circuit(now, circ, ExtendError::AlreadyExtended.into());
        }
        *extend = Some(PendingExtend {
            htype: ext.htype,
            hdata: ext.hdata.to_vec(),
        });
        let chan = self.channel_to(now, addr, id);
        self.attach_next(now, circ, chan);
    }

    /// Relay: the origin cuts the circuit after us; the next hop gets DESTROY (REQUESTED)
    /// and the origin TRUNCATED.
    pub(super) fn handle_truncate(&mut self, now: Instant, circ: CircHandle) {
        self.detach_queue(circ, Dir::Forward);
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        if let Some(next) = c.next.take() {
            let dropped = self.cells.clear(&mut c.to_next);
            self.memory.cells_gone(dropped);
            if let Some(ch) = self.channels.get_mut(next.chan) {
                ch.circs.remove(&next.id);
                self.channels
                    .queue_destroy(next.chan, next.id, DestroyReason::REQUESTED);
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
}
