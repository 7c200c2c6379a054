//! The circuits of one channel by circuit id, found without SipHash on the per-cell path.
//!
//! A channel carries ids from two sources (tor-spec 5.1.1: the side that opened the
//! connection sets the top bit of the ids it allocates, the other side clears it):
//!
//! ```text
//!   id with our top bit    -> ours[slot]      slot = low SLOT_BITS - 1; the stored id must match
//!   id with the peer's bit -> theirs (hash)   foldhash, seeded from the relay's RNG
//! ```
//!
//! - Ids this relay allocates come from a dense range, so they index a `Vec`: the low
//!   [`SLOT_BITS`] bits are a reusable slot number plus one (never 0), the bits above them a
//!   counter bumped per allocation, so a slot reused after a DESTROY gets an id the peer has
//!   not seen recently. A lookup is one bounds check and one compare. The ids say nothing the
//!   peer could not count anyway (it sees every CREATE2 on the link).
//! - Ids the peer chose are arbitrary: a hash map, with foldhash instead of std's SipHash (a
//!   few instructions per `u32` instead of ~100). The seed comes from the relay's own RNG
//!   (OS-seeded in production), so a peer cannot aim its ids at one bucket; in tests it is
//!   deterministic like the rest of the relay.

use std::cell::Cell;
use std::collections::HashMap;

use crate::wire::CircId;

use super::ids::CircHandle;

/// Low bits of an id we allocate that hold its slot plus one.
pub(crate) const SLOT_BITS: u32 = 20;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// The connection initiator's bit (tor-spec 5.1.1).
const TOP_BIT: u32 = 0x8000_0000;
/// Bits between the slot and the top bit: the allocation counter.
const EPOCH_MASK: u32 = !(SLOT_MASK | TOP_BIT);

/// Hasher of the peer-chosen ids.
type Seeded = foldhash::fast::FixedState;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct CircIdMap {
    /// Circuits on ids we allocated, by slot. INVARIANT: `ours[s]` holds an id whose slot
    /// bits are `s + 1`, and a free slot is `None` and listed in `free` once.
    ours: Vec<Option<(CircId, CircHandle)>>,
    free: Vec<u32>,
    /// Circuits on ids the peer allocated. INVARIANT: no key has our top bit.
    theirs: HashMap<CircId, CircHandle, Seeded>,
    /// The entry of `theirs` found last: cells come in runs of one circuit, so most lookups
    /// of a peer's id need no hash. INVARIANT: `None` or an entry of `theirs`.
    last_theirs: Cell<Option<(CircId, CircHandle)>>,
    /// `TOP_BIT` if we opened the connection, else 0.
    our_bit: u32,
    /// Goes into the next allocated id's epoch bits.
    epoch: u32,
}

impl CircIdMap {
    /// An empty map for a channel we opened (`initiator`) or accepted; `seed` keys the hash
    /// of the peer's ids.
    pub(crate) fn new(initiator: bool, seed: u64) -> Self {
        CircIdMap {
            ours: Vec::new(),
            free: Vec::new(),
            theirs: HashMap::with_hasher(Seeded::with_seed(seed)),
            last_theirs: Cell::new(None),
            our_bit: if initiator { TOP_BIT } else { 0 },
            epoch: 0,
        }
    }

    fn is_ours(&self, id: CircId) -> bool {
        id.get() & TOP_BIT == self.our_bit
    }

    /// The circuit on `id`.
    #[inline]
    pub(crate) fn get(&self, id: &CircId) -> Option<CircHandle> {
        if self.is_ours(*id) {
            let slot = (id.get() & SLOT_MASK).checked_sub(1)?;
            match self.ours.get(slot as usize) {
                Some(Some((have, circ))) if have == id => Some(*circ),
                _ => None,
            }
        } else {
            match self.last_theirs.get() {
                Some((have, circ)) if have == *id => Some(circ),
                _ => self.find_theirs(*id),
            }
        }
    }

    /// The map lookup behind `get`'s last-found entry. Out of line so that `get` stays small
    /// enough to be inlined into the per-cell path: when it was not (session 19, after an
    /// unrelated change elsewhere in the crate), a middle relay counted 30 more instructions
    /// per forwarded cell.
    #[inline(never)]
    fn find_theirs(&self, id: CircId) -> Option<CircHandle> {
        let circ = *self.theirs.get(&id)?;
        self.last_theirs.set(Some((id, circ)));
        Some(circ)
    }

    /// Drops the last-found entry if it is `id`'s (its entry in `theirs` is changing).
    fn forget_last(&self, id: CircId) {
        if self.last_theirs.get().is_some_and(|(have, _)| have == id) {
            self.last_theirs.set(None);
        }
    }

    /// Whether `id` names a circuit here.
    pub(crate) fn contains_key(&self, id: &CircId) -> bool {
        self.get(id).is_some()
    }

    /// Records `circ` on an id the peer chose (the caller checked it is free and carries the
    /// peer's top bit). An id with our top bit is refused (returns false).
    pub(crate) fn insert(&mut self, id: CircId, circ: CircHandle) -> bool {
        if self.is_ours(id) {
            return false;
        }
        self.forget_last(id);
        self.theirs.insert(id, circ);
        true
    }

    /// Allocates an id of ours for `circ`; `None` when all 2^20 - 1 slots are taken.
    pub(crate) fn alloc(&mut self, circ: CircHandle) -> Option<CircId> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.ours.len()).ok()?;
                if slot >= SLOT_MASK {
                    return None;
                }
                self.ours.push(None);
                slot
            }
        };
        self.epoch = self.epoch.wrapping_add(1 << SLOT_BITS) & EPOCH_MASK;
        let id = CircId::new(self.our_bit | self.epoch | (slot + 1))?;
        match self.ours.get_mut(slot as usize) {
            Some(entry) => *entry = Some((id, circ)),
            None => return None,
        }
        Some(id)
    }

    /// Forgets `id`; returns its circuit.
    pub(crate) fn remove(&mut self, id: &CircId) -> Option<CircHandle> {
        if !self.is_ours(*id) {
            self.forget_last(*id);
            return self.theirs.remove(id);
        }
        let slot = (id.get() & SLOT_MASK).checked_sub(1)?;
        let entry = self.ours.get_mut(slot as usize)?;
        match *entry {
            Some((have, circ)) if have == *id => {
                *entry = None;
                self.free.push(slot);
                Some(circ)
            }
            _ => None,
        }
    }

    /// Circuits on this channel.
    pub(crate) fn len(&self) -> usize {
        self.theirs.len() + self.ours.len() - self.free.len()
    }

    /// Every circuit on this channel (ours in slot order, then the peer's in hash order).
    pub(crate) fn values(&self) -> impl Iterator<Item = &CircHandle> + '_ {
        self.ours
            .iter()
            .filter_map(|e| e.as_ref().map(|(_, circ)| circ))
            .chain(self.theirs.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::GenSlab;

    fn handles(n: usize) -> Vec<CircHandle> {
        let mut slab = GenSlab::default();
        (0..n).map(|i| CircHandle(slab.insert(i))).collect()
    }

    fn id(raw: u32) -> CircId {
        CircId::new(raw).unwrap()
    }

    #[test]
    fn our_ids_carry_our_top_bit_index_a_slot_and_change_when_reused() {
        let h = handles(3);
        for initiator in [true, false] {
            let mut m = CircIdMap::new(initiator, 7);
            let a = m.alloc(h[0]).unwrap();
            let b = m.alloc(h[1]).unwrap();
            assert_eq!(a.get() & TOP_BIT != 0, initiator);
            assert_eq!((a.get() & SLOT_MASK, b.get() & SLOT_MASK), (1, 2));
            assert_eq!((m.get(&a), m.get(&b)), (Some(h[0]), Some(h[1])));
            assert_eq!(m.len(), 2);
            assert_eq!(m.remove(&a), Some(h[0]));
            assert_eq!(m.get(&a), None);
            assert_eq!(m.remove(&a), None);
            // The freed slot is reused under a new id; the old id finds nothing.
            let c = m.alloc(h[2]).unwrap();
            assert_eq!(c.get() & SLOT_MASK, 1);
            assert_ne!(c, a);
            assert_eq!((m.get(&a), m.get(&c)), (None, Some(h[2])));
            assert_eq!(m.values().copied().collect::<Vec<_>>(), [h[2], h[1]]);
            // Slot 0 and out-of-range slots with our bit find nothing.
            let ours = a.get() & TOP_BIT;
            assert_eq!(m.get(&id(ours | 1 << SLOT_BITS)), None);
            assert_eq!(m.get(&id(ours | SLOT_MASK)), None);
        }
    }

    #[test]
    fn peer_ids_are_hashed_and_may_not_carry_our_bit() {
        let h = handles(2);
        let mut m = CircIdMap::new(false, 1);
        assert!(m.insert(id(0x8000_0005), h[0]));
        assert!(
            !m.insert(id(5), h[1]),
            "our top bit: not the peer's to choose"
        );
        let ours = m.alloc(h[1]).unwrap();
        assert_eq!(m.get(&id(0x8000_0005)), Some(h[0]));
        assert!(m.contains_key(&ours) && !m.contains_key(&id(6)));
        assert_eq!(m.len(), 2);
        assert_eq!(m.remove(&id(0x8000_0005)), Some(h[0]));
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [h[1]]);
    }

    /// The last-found cache of the peer's ids answers only for a live entry: a removed id
    /// finds nothing, and an id given to another circuit finds that one.
    #[test]
    fn the_last_found_peer_id_follows_removal_and_reuse() {
        let h = handles(3);
        let mut m = CircIdMap::new(false, 9);
        let (a, b) = (id(0x8000_0007), id(0x8000_0009));
        assert!(m.insert(a, h[0]) && m.insert(b, h[1]));
        assert_eq!((m.get(&a), m.get(&a)), (Some(h[0]), Some(h[0])));
        assert_eq!(m.get(&b), Some(h[1]));
        assert_eq!(m.get(&a), Some(h[0]));
        // `a` is the cached one now: removing it must not leave it findable.
        assert_eq!(m.remove(&a), Some(h[0]));
        assert_eq!(m.get(&a), None);
        assert!(m.insert(a, h[2]));
        assert_eq!(m.get(&a), Some(h[2]));
        // Removing another id keeps the cached entry right.
        assert_eq!(m.remove(&b), Some(h[1]));
        assert_eq!((m.get(&a), m.get(&b)), (Some(h[2]), None));
    }

    #[test]
    fn allocation_stops_when_every_slot_is_taken() {
        let h = handles(1);
        let mut m = CircIdMap::new(true, 0);
        m.ours.resize(SLOT_MASK as usize - 1, Some((id(1), h[0])));
        assert!(m.alloc(h[0]).is_some());
        assert_eq!(m.alloc(h[0]), None);
        assert_eq!(m.len(), SLOT_MASK as usize);
    }
}
