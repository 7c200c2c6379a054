//! Per-circuit, per-direction cell queues, and the pool their cells live in.
//!
//! Cells are queued after relay crypto has been applied and with the outgoing circuit id
//! already written, so moving one to a channel's send buffer is a single copy.
//!
//! ```text
//!   CellPool: [slot 0][slot 1][slot 2] ...   528-byte slots in one Vec, free ones chained
//!   CellQueue (per circuit and direction):   head -> slot -> slot -> tail, 48 bytes
//! ```
//!
//! A cell is written once, straight into its slot (header and body), and copied once out of
//! it into the send buffer; it is never moved in between. A queue is three slot numbers and
//! an `Instant`, so an idle circuit holds no queue memory at all, and a busy one takes slots
//! from the free list without allocating. The pool keeps its high-water mark of slots (at
//! most `MaxMemInQueues` worth, which the OOM handler enforces).

use kistrel_sched::CellEwma;

use crate::time::Instant;
use crate::wire::{ChanCmd, CELL_BODY_LEN, CELL_LEN};

/// No slot.
const NIL: u32 = u32::MAX;

/// One cell ready for the wire, when it was queued (for queue-time metrics and the OOM
/// handler, which closes the circuits holding the oldest cells first), and the next slot of
/// its queue or of the free list.
struct Slot {
    bytes: [u8; CELL_LEN],
    enqueued: Instant,
    next: u32,
}

/// The cells of every queue of one `Relay`. See the module docs.
#[derive(Default)]
pub(crate) struct CellPool {
    slots: Vec<Slot>,
    /// Head of the free list. INVARIANT: every slot is on exactly one queue, on this list, or
    /// taken by one `SlotId`.
    free: Option<u32>,
    /// Slots not on the free list.
    used: u32,
}

impl core::fmt::Debug for CellPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CellPool")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// The queue of cells one circuit has for one of its two channels.
#[derive(Debug)]
pub(crate) struct CellQueue {
    /// First and last slot; `NIL` when empty.
    head: u32,
    tail: u32,
    len: u32,
    /// When the head cell was queued (meaningless when empty).
    head_enqueued: Instant,
    /// INVARIANT: true iff this queue is active in its channel's `CircuitMux`.
    pub(crate) in_mux: bool,
    /// EWMA of cells written from this queue (circuit priority, CircuitPriorityHalflife).
    pub(crate) ewma: CellEwma,
}

impl Default for CellQueue {
    fn default() -> Self {
        CellQueue {
            head: NIL,
            tail: NIL,
            len: 0,
            head_enqueued: Instant::ZERO,
            in_mux: false,
            ewma: CellEwma::new(),
        }
    }
}

impl CellQueue {
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn oldest(&self) -> Option<Instant> {
        (self.len > 0).then_some(self.head_enqueued)
    }
}

/// A pool slot holding one cell that is on no queue yet (the small handle a forwarded cell
/// travels by between its copy out of the receive buffer and its queue).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a taken slot must be queued or released"]
pub(crate) struct SlotId(u32);

impl CellPool {
    /// Queues a cell on `q`: the header (`circ_id`, `cmd`) and `body` are written straight
    /// into a free slot.
    #[cfg(test)]
    pub(crate) fn push(
        &mut self,
        q: &mut CellQueue,
        circ_id: u32,
        cmd: ChanCmd,
        body: &[u8; CELL_BODY_LEN],
        now: Instant,
    ) {
        if let Some(slot) = self.fill(circ_id, cmd, body, now) {
            self.append(q, slot);
        }
    }

    /// Takes a free slot and writes the cell into it: header (`circ_id`, `cmd`) and `body`,
    /// the cell's one copy into the pool. `None` as for [`CellPool::take`].
    pub(crate) fn fill(
        &mut self,
        circ_id: u32,
        cmd: ChanCmd,
        body: &[u8],
        now: Instant,
    ) -> Option<SlotId> {
        let (slot, b) = self.take(circ_id, cmd, now)?;
        b.copy_from_slice(body);
        Some(slot)
    }

    /// Takes a free slot (growing the pool only past its high-water mark), writes the cell's
    /// header (`circ_id`, `cmd`) into it and returns it with its body. The body keeps
    /// whatever the slot held: the caller writes every byte of it before the slot is queued.
    /// `None` only at 2^32 slots (memory ran out long before: MaxMemInQueues).
    #[inline]
    pub(crate) fn take(
        &mut self,
        circ_id: u32,
        cmd: ChanCmd,
        now: Instant,
    ) -> Option<(SlotId, &mut [u8; CELL_BODY_LEN])> {
        let i = match self.free {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Slot {
                    bytes: [0; CELL_LEN],
                    enqueued: now,
                    next: NIL,
                });
                i
            }
        };
        let slot = self.slots.get_mut(i as usize)?;
        let (header, body) = slot.bytes.split_last_chunk_mut::<CELL_BODY_LEN>()?;
        header[..4].copy_from_slice(&circ_id.to_be_bytes());
        header[4] = cmd.0;
        if self.free == Some(i) {
            self.free = (slot.next != NIL).then_some(slot.next);
        }
        slot.enqueued = now;
        slot.next = NIL;
        self.used += 1;
        Some((SlotId(i), body))
    }

    /// Puts a taken slot back on the free list (its cell was consumed here, not queued).
    pub(crate) fn release(&mut self, slot: SlotId) {
        let free = self.free.unwrap_or(NIL);
        if let Some(s) = self.slots.get_mut(slot.0 as usize) {
            s.next = free;
            self.free = Some(slot.0);
            self.used -= 1;
        }
    }

    /// Queues a taken slot at the tail of `q`.
    pub(crate) fn append(&mut self, q: &mut CellQueue, slot: SlotId) {
        let i = slot.0;
        let Some(now) = self.slots.get(i as usize).map(|s| s.enqueued) else {
            return;
        };
        match self.slots.get_mut(q.tail as usize) {
            Some(tail) if q.len > 0 => tail.next = i,
            _ => {
                q.head = i;
                q.head_enqueued = now;
            }
        }
        q.tail = i;
        q.len += 1;
    }

    /// Takes the head cell of `q`: its wire bytes (valid until the next `fill` or `take`) and
    /// when it was queued. Its slot goes back on the free list.
    pub(crate) fn pop(&mut self, q: &mut CellQueue) -> Option<(&[u8; CELL_LEN], Instant)> {
        if q.len == 0 {
            return None;
        }
        let i = q.head;
        let next = self.slots.get(i as usize)?.next;
        q.len -= 1;
        q.head = next;
        if q.len == 0 {
            q.tail = NIL;
        } else if let Some(n) = self.slots.get(next as usize) {
            q.head_enqueued = n.enqueued;
        }
        let free = self.free.unwrap_or(NIL);
        self.free = Some(i);
        self.used -= 1;
        let slot = self.slots.get_mut(i as usize)?;
        slot.next = free;
        Some((&slot.bytes, slot.enqueued))
    }

    /// Drops every cell of `q`, returning how many there were.
    pub(crate) fn clear(&mut self, q: &mut CellQueue) -> usize {
        let n = q.len();
        while self.pop(q).is_some() {}
        n
    }

    /// Overwrites every byte after the header of every free slot with `byte` (a test that
    /// new cells write all of their slot); returns how many slots it wrote.
    #[cfg(test)]
    pub(crate) fn scribble_free(&mut self, byte: u8) -> usize {
        let mut n = 0;
        let mut next = self.free.unwrap_or(NIL);
        while let Some(slot) = self.slots.get_mut(next as usize) {
            slot.bytes[CELL_LEN - CELL_BODY_LEN..].fill(byte);
            next = slot.next;
            n += 1;
        }
        n
    }

    /// Slots the pool holds (queued and free).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Slots holding a cell (queued, or taken and not yet queued).
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(b: u8) -> [u8; CELL_BODY_LEN] {
        [b; CELL_BODY_LEN]
    }

    #[test]
    fn queues_keep_order_share_slots_and_reuse_freed_ones() {
        let mut pool = CellPool::default();
        let (mut a, mut b) = (CellQueue::default(), CellQueue::default());
        let t = |ms| Instant::from_millis(ms);
        pool.push(&mut a, 7, ChanCmd::RELAY, &body(1), t(1));
        pool.push(&mut b, 9, ChanCmd::DESTROY, &body(2), t(2));
        pool.push(&mut a, 7, ChanCmd::RELAY_EARLY, &body(3), t(3));
        assert_eq!(
            (a.len(), b.len(), a.oldest(), b.oldest()),
            (2, 1, Some(t(1)), Some(t(2)))
        );
        let (bytes, at) = pool.pop(&mut a).unwrap();
        assert_eq!(at, t(1));
        assert_eq!(&bytes[..6], &[0, 0, 0, 7, ChanCmd::RELAY.0, 1]);
        assert_eq!(bytes[CELL_LEN - 1], 1);
        assert_eq!(a.oldest(), Some(t(3)), "the next head's time");
        // The freed slot is reused before the pool grows.
        pool.push(&mut b, 9, ChanCmd::RELAY, &body(4), t(4));
        assert_eq!(pool.capacity(), 3);
        let (bytes, _) = pool.pop(&mut b).unwrap();
        assert_eq!(bytes[4], ChanCmd::DESTROY.0);
        let (bytes, at) = pool.pop(&mut b).unwrap();
        assert_eq!((bytes[5], at), (4, t(4)));
        assert!(pool.pop(&mut b).is_none() && b.is_empty() && b.oldest().is_none());
        assert_eq!(pool.clear(&mut a), 1);
        assert!(a.is_empty());
        // Everything is free: new cells take the three slots, no fourth.
        let mut c = CellQueue::default();
        for i in 0..3 {
            pool.push(&mut c, 1, ChanCmd::RELAY, &body(i), t(5));
        }
        assert_eq!((pool.capacity(), c.len()), (3, 3));
        let firsts: Vec<u8> = std::iter::from_fn(|| pool.pop(&mut c).map(|(b, _)| b[5])).collect();
        assert_eq!(firsts, [0, 1, 2]);
    }
}
