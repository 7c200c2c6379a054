//! Channels: one per TCP connection to a peer, with its link state, the circuits on it and
//! its output; and the table of all channels of a `Relay` with its ready list.
//!
//! A channel's output is its link-control bytes (handshake cells, DESTROYs) plus the
//! circuit queues active in its mux. Everything that adds output goes through
//! [`Channels`], which lists the channel as ready, so the runtime learns of every channel
//! with output from `Relay::poll_ready_channel`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use kistrel_sched::{CellEwma, CircuitMux, EwmaConfig};

use crate::crypto::identity::Ed25519Id;
use crate::crypto::RelayId;
use crate::time::Instant;
use crate::wire::{Cell, CellDecoder, ChanCmd, CircId, Destroy, DestroyReason};

use super::circ_ids::CircIdMap;
use super::circuit::Dir;
use super::dos::{CircuitCreationLimit, CreateBucket};
use super::ids::{ChanId, CircHandle};
use super::link::{Expected, Link};
use crate::slab::GenSlab;

/// One channel.
pub(crate) struct Channel {
    /// Link handshake state (and whether we opened the connection).
    pub(crate) link: Link,
    pub(crate) peer: Option<SocketAddr>,
    /// For channels we opened: the (address, identity) we opened it to.
    pub(crate) target: Option<(SocketAddr, RelayId)>,
    pub(crate) decoder: CellDecoder,
    /// Circuits on this channel by the id used on it.
    pub(crate) circs: CircIdMap,
    /// Circuits waiting for this channel to open to send their CREATE2.
    pub(crate) waiting: Vec<CircHandle>,
    /// Link-control bytes (handshake cells, DESTROYs of freed circuits): sent before
    /// circuit cells. Always whole cells.
    ctrl: Vec<u8>,
    /// Circuit queues with cells for this channel, lowest EWMA first.
    /// INVARIANT: (c, d) is active here iff circuit c's queue d has cells and `in_mux` set.
    pub(crate) mux: CircuitMux<(CircHandle, Dir)>,
    /// INVARIANT: set iff this channel is in the table's ready list.
    in_ready: bool,
    /// Circuit-creation tokens of this peer (`None` when the relay has no limit).
    pub(crate) create_bucket: Option<CreateBucket>,
}

impl Channel {
    fn new(
        link: Link,
        peer: Option<SocketAddr>,
        target: Option<(SocketAddr, RelayId)>,
        ewma: &EwmaConfig,
        now: Instant,
        create_limit: Option<&CircuitCreationLimit>,
        seed: u64,
    ) -> Self {
        Channel {
            circs: CircIdMap::new(link.initiator(), seed),
            link,
            peer,
            target,
            decoder: CellDecoder::new(),
            waiting: Vec::new(),
            ctrl: Vec::new(),
            mux: CircuitMux::new(ewma),
            in_ready: false,
            create_bucket: create_limit.map(|l| CreateBucket::new(now, l)),
        }
    }

    /// Whether anything waits to be transmitted.
    pub(crate) fn has_output(&self) -> bool {
        !self.ctrl.is_empty() || !self.mux.is_empty()
    }
}

/// All channels of a relay, the outbound ones by target, and the ready list.
pub(crate) struct Channels {
    slab: GenSlab<Channel>,
    /// Seeds each channel's hash of peer-chosen circuit ids (from the relay's RNG, then
    /// stepped per channel).
    seed: u64,
    /// Outbound channels we opened, by (address, identity), for reuse on EXTEND2.
    /// INVARIANT: every value is a live channel whose `target` is the key.
    outbound: HashMap<(SocketAddr, RelayId), ChanId>,
    /// Open channels whose peer proved its identities (either direction), by RSA identity:
    /// the ones EXTEND2 may reuse. INVARIANT: every value is a live, open channel whose
    /// link's `peer()` has this RSA identity.
    verified: HashMap<RelayId, ChanId>,
    /// Channels with output waiting. INVARIANT: a channel is here iff its `in_ready` is set.
    ready: VecDeque<ChanId>,
}

impl Channels {
    /// No channels; `seed` (from the relay's RNG) keys the circuit-id hashes.
    pub(crate) fn new(seed: u64) -> Self {
        Channels {
            slab: GenSlab::default(),
            seed,
            outbound: HashMap::new(),
            verified: HashMap::new(),
            ready: VecDeque::new(),
        }
    }

    fn next_seed(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.seed
    }

    /// A channel a peer opened to us.
    pub(crate) fn insert_inbound(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        ewma: &EwmaConfig,
        create_limit: Option<&CircuitCreationLimit>,
    ) -> ChanId {
        let seed = self.next_seed();
        let ch = Channel::new(
            Link::inbound(),
            Some(peer),
            None,
            ewma,
            now,
            create_limit,
            seed,
        );
        ChanId(self.slab.insert(ch))
    }

    /// A channel we open to the relay `expected` at `addr`; later EXTEND2s to the same
    /// target reuse it.
    pub(crate) fn insert_outbound(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        expected: Expected,
        ewma: &EwmaConfig,
        create_limit: Option<&CircuitCreationLimit>,
    ) -> ChanId {
        let seed = self.next_seed();
        let target = (addr, expected.rsa_id);
        let ch = Channel::new(
            Link::outbound(expected),
            Some(target.0),
            Some(target),
            ewma,
            now,
            create_limit,
            seed,
        );
        let chan = ChanId(self.slab.insert(ch));
        self.outbound.insert(target, chan);
        chan
    }

    /// A channel we are still opening to `target` that expects the same Ed25519 identity
    /// (a channel expecting none cannot stand in for one that must prove it).
    pub(crate) fn opening_to(
        &self,
        target: &(SocketAddr, RelayId),
        ed_id: Option<Ed25519Id>,
    ) -> Option<ChanId> {
        let chan = *self.outbound.get(target)?;
        let ch = self.slab.get(chan.0)?;
        let expected = ch.link.expected()?;
        (!ch.link.is_open() && expected.ed_id == ed_id).then_some(chan)
    }

    /// An open channel whose peer proved `rsa_id` (and `ed_id`, when given).
    pub(crate) fn verified_to(&self, rsa_id: &RelayId, ed_id: Option<Ed25519Id>) -> Option<ChanId> {
        let chan = *self.verified.get(rsa_id)?;
        let peer = self.slab.get(chan.0)?.link.peer()?;
        let ed_ok = ed_id.is_none_or(|ed| ed == peer.ed_id);
        (peer.rsa_id == *rsa_id && ed_ok).then_some(chan)
    }

    /// `chan` opened and its peer proved its identities: EXTEND2s may reuse it.
    pub(crate) fn note_verified(&mut self, chan: ChanId, rsa_id: RelayId) {
        self.verified.insert(rsa_id, chan);
    }

    /// Removes a channel (and its outbound and verified entries).
    pub(crate) fn remove(&mut self, chan: ChanId) -> Option<Channel> {
        let ch = self.slab.remove(chan.0)?;
        if let Some(target) = ch.target {
            if self.outbound.get(&target) == Some(&chan) {
                self.outbound.remove(&target);
            }
        }
        if let Some(peer) = ch.link.peer() {
            if self.verified.get(&peer.rsa_id) == Some(&chan) {
                self.verified.remove(&peer.rsa_id);
            }
        }
        Some(ch)
    }

    pub(crate) fn get(&self, chan: ChanId) -> Option<&Channel> {
        self.slab.get(chan.0)
    }

    pub(crate) fn get_mut(&mut self, chan: ChanId) -> Option<&mut Channel> {
        self.slab.get_mut(chan.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ChanId, &Channel)> {
        self.slab.iter().map(|(k, ch)| (ChanId(k), ch))
    }

    /// Next listed channel that still has output.
    pub(crate) fn poll_ready(&mut self) -> Option<ChanId> {
        while let Some(chan) = self.ready.pop_front() {
            if let Some(ch) = self.slab.get_mut(chan.0) {
                ch.in_ready = false;
                if ch.has_output() {
                    return Some(chan);
                }
            }
        }
        None
    }

    /// Queues whole cells (handshake output) on `chan`.
    pub(crate) fn queue_ctrl_bytes(&mut self, chan: ChanId, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(ch) = self.slab.get_mut(chan.0) {
            ch.ctrl.extend_from_slice(bytes);
            list_ready(&mut self.ready, chan, ch);
        }
    }

    /// Queues a link-control cell on `chan`.
    pub(crate) fn queue_ctrl_cell(&mut self, chan: ChanId, cell: &Cell) {
        if let Some(ch) = self.slab.get_mut(chan.0) {
            cell.append_to(&mut ch.ctrl);
            list_ready(&mut self.ready, chan, ch);
        }
    }

    /// Queues a DESTROY for circuit `id` on `chan`.
    pub(crate) fn queue_destroy(&mut self, chan: ChanId, id: CircId, reason: DestroyReason) {
        let mut cell = Cell::new(id.get(), ChanCmd::DESTROY);
        // A one-byte body cannot fail to fit.
        let _ = Destroy { reason }.emit(&mut cell.body[..]);
        self.queue_ctrl_cell(chan, &cell);
    }

    /// Moves all of `chan`'s control bytes to `out` (they are few and must not wait
    /// behind data). Returns how many.
    pub(crate) fn take_ctrl(&mut self, chan: ChanId, out: &mut Vec<u8>) -> usize {
        let Some(ch) = self.slab.get_mut(chan.0) else {
            return 0;
        };
        let n = ch.ctrl.len();
        out.append(&mut ch.ctrl);
        n
    }

    /// A circuit cell was queued for `chan` on queue `key`: activates the queue in the mux
    /// unless it is `active` already, and lists the channel as ready. Returns whether the
    /// queue is active now (false only when the channel is gone). `#[inline]`: once per
    /// queued cell (see `Relay::enqueue_slot`).
    #[inline]
    pub(crate) fn cell_queued(
        &mut self,
        now: Instant,
        chan: ChanId,
        key: (CircHandle, Dir),
        ewma: &mut CellEwma,
        active: bool,
    ) -> bool {
        let Some(ch) = self.slab.get_mut(chan.0) else {
            return active;
        };
        if !active {
            ch.mux.activate(now, key, ewma);
        }
        list_ready(&mut self.ready, chan, ch);
        true
    }
}

fn list_ready(ready: &mut VecDeque<ChanId>, chan: ChanId, ch: &mut Channel) {
    if !ch.in_ready {
        ch.in_ready = true;
        ready.push_back(chan);
    }
}
