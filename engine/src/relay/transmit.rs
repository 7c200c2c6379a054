//! How cells reach a channel and leave the `Relay`: the one transmit path.
//!
//! ```text
//!   enqueue(circ, dir, cell) -> circuit queue (crypto done, outgoing id written)
//!                            -> queue active in the channel's mux, channel listed ready
//!   runtime: poll_ready_channel() -> take_ctrl(chan)          link-control cells, all
//!            scheduler grant      -> write_cells(chan, n)      circuit cells, n at most,
//!                                                             lowest EWMA circuit first
//! ```
//!
//! `take_ctrl` and `write_cells` are the only ways cells leave; the runtime, the harness,
//! the fuzz target and the benches all drive them. A cell is copied once, from its queue
//! into the caller's send buffer.

use kistrel_sched::Priority;

use crate::sys::copy::extend_fixed;
use crate::time::Instant;
use crate::wire::{ChanCmd, CELL_BODY_LEN, CELL_LEN};

use super::channel::Channels;
use super::circuit::{Circuit, Dir};
use super::error::ForwardError;
use super::ids::{ChanId, CircHandle};
use super::memory::QueueMemory;
use super::queue::{CellPool, SlotId};
use super::Relay;

impl Relay {
    /// Whether `chan` has cells waiting to be transmitted.
    pub fn has_output(&self, chan: ChanId) -> bool {
        self.channels.get(chan).is_some_and(|c| c.has_output())
    }

    /// Next channel with output waiting (each channel appears once until it is drained or
    /// gets new output). A channel with output is always either listed here or was
    /// returned by an earlier call and not drained since.
    #[must_use]
    pub fn poll_ready_channel(&mut self) -> Option<ChanId> {
        self.channels.poll_ready()
    }

    /// Moves `chan`'s link-control cells (handshake, DESTROY of freed circuits) to `out`;
    /// returns how many bytes. They bypass the scheduler: few, small, and they must not
    /// wait behind data.
    pub fn take_ctrl(&mut self, chan: ChanId, out: &mut Vec<u8>) -> usize {
        self.channels.take_ctrl(chan, out)
    }

    /// Whether `chan` has circuit cells queued (not counting link-control cells).
    pub fn has_circuit_cells(&self, chan: ChanId) -> bool {
        self.channels.get(chan).is_some_and(|c| !c.mux.is_empty())
    }

    /// The priority of `chan`'s best circuit (for the scheduler's cross-channel order).
    pub fn best_priority(&self, now: Instant, chan: ChanId) -> Option<Priority> {
        self.channels.get(chan)?.mux.best_priority(now)
    }

    /// Moves one cell of `chan`'s best circuit (lowest EWMA, see `CircuitPriorityHalflife`)
    /// into `out` and counts it in the circuit's EWMA. Returns the cell's size and when it
    /// was queued, or None if no circuit on `chan` has a queued cell.
    pub fn write_one_cell(
        &mut self,
        now: Instant,
        chan: ChanId,
        out: &mut Vec<u8>,
    ) -> Option<(usize, Instant)> {
        let mut enqueued = None;
        let (cells, _) = self.write_cells(now, chan, 1, out, |t| enqueued = Some(t));
        (cells == 1).then_some((CELL_LEN, enqueued?))
    }

    /// Moves up to `max_cells` cells of `chan` into `out`, each from the circuit its mux
    /// offers at that moment (lowest EWMA first; every cell is counted in its circuit's
    /// EWMA), and calls `on_cell` with each cell's enqueue instant. Returns the number of
    /// cells moved and whether `chan` has more. This is the scheduler's primitive: one
    /// channel lookup per batch, one copy and no allocation per cell (once `out` has grown).
    pub fn write_cells(
        &mut self,
        now: Instant,
        chan: ChanId,
        max_cells: u32,
        out: &mut Vec<u8>,
        mut on_cell: impl FnMut(Instant),
    ) -> (u32, bool) {
        let Some(ch) = self.channels.get_mut(chan) else {
            return (0, false);
        };
        let mut cells = 0;
        // One `peek` and one queue lookup per stretch of cells from one circuit: the mux says
        // after each cell whether the circuit is still its best (no heap sift until not).
        'circuits: while cells < max_cells {
            let Some(key @ (circ, dir)) = ch.mux.peek() else {
                break;
            };
            let Some(q) = self.circuits.get_mut(circ).map(|c| c.queue_mut(dir)) else {
                // INVARIANT violated (a freed circuit left active): repair rather than spin.
                debug_assert!(false, "freed circuit {circ:?} still active on {chan:?}");
                ch.mux.deactivate(key, &mut kistrel_sched::CellEwma::new());
                continue;
            };
            loop {
                let Some((bytes, enqueued)) = self.cells.pop(q) else {
                    debug_assert!(false, "empty queue {key:?} active on {chan:?}");
                    q.in_mux = false;
                    ch.mux.deactivate(key, &mut q.ewma);
                    continue 'circuits;
                };
                #[cfg(feature = "inject-slowdown")]
                std::hint::black_box(bytes.to_vec());
                if self.cfg.testing_spin_per_cell > 0 {
                    std::hint::black_box(super::config::spin(self.cfg.testing_spin_per_cell));
                }
                extend_fixed(out, bytes);
                let still_top = ch.mux.note_written_top(now, &mut q.ewma);
                on_cell(enqueued);
                cells += 1;
                if q.is_empty() {
                    q.in_mux = false;
                    ch.mux.deactivate(key, &mut q.ewma);
                    continue 'circuits;
                }
                if !still_top || cells == max_cells {
                    continue 'circuits;
                }
            }
        }
        let more = !ch.mux.is_empty();
        self.memory.cells_gone(cells as usize);
        self.stats.cells_out += u64::from(cells);
        (cells, more)
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
        let Some(hop) = self.circuits.get(circ).and_then(|c| c.out_hop(dir)) else {
            return;
        };
        if let Some(slot) = self.cells.fill(hop.id.get(), cmd, body, now) {
            self.enqueue_slot(now, circ, dir, slot);
        }
    }

    /// Queues the cell in `slot` (filled with `circ`'s outgoing id toward `dir`, crypto
    /// done) on `circ` toward its `dir` side; the slot is linked in, not copied. Enforces
    /// the per-circuit queue cap (closing the circuit) and the memory limit; a refused
    /// cell's slot goes back to the pool. `#[inline]`: every cell an endpoint originates comes
    /// here, and without the hint whether it is inlined depends on how the crate's codegen
    /// units happen to split (session 20: an unrelated change left it out of line).
    #[inline]
    pub(super) fn enqueue_slot(&mut self, now: Instant, circ: CircHandle, dir: Dir, slot: SlotId) {
        let Some(c) = self.circuits.get_mut(circ) else {
            return self.cells.release(slot);
        };
        let queued = outbox!(self).queue(now, (circ, dir), c, slot);
        self.after_queue(now, circ, queued);
    }

    /// What follows [`Outbox::queue`]: the memory check for a queued cell, the circuit's
    /// close for one over the cap.
    #[inline(always)]
    pub(super) fn after_queue(&mut self, now: Instant, circ: CircHandle, queued: Queued) {
        match queued {
            Queued::Yes => self.check_oom(now),
            Queued::OverCap => self.reject_circuit(now, circ, ForwardError::QueueOverCap.into()),
            Queued::NoHop => {}
        }
    }

    /// Removes queue `dir` of `circ` from its channel's mux (before that side goes away).
    pub(super) fn detach_queue(&mut self, circ: CircHandle, dir: Dir) {
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        let hop = c.out_hop(dir);
        let q = c.queue_mut(dir);
        if !q.in_mux {
            return;
        }
        q.in_mux = false;
        if let Some(ch) = hop.and_then(|h| self.channels.get_mut(h.chan)) {
            ch.mux.deactivate((circ, dir), &mut q.ewma);
        }
    }
}

/// The parts of a relay a queued cell touches besides its circuit: the per-cell path holds the
/// circuit already (from `Relay::find_circuit`) and queues with these, with no second circuit
/// lookup.
pub(super) struct Outbox<'r> {
    pub(super) cells: &'r mut CellPool,
    pub(super) memory: &'r mut QueueMemory,
    pub(super) channels: &'r mut Channels,
    /// `max_circuit_queue_cells`.
    pub(super) cap: usize,
}

/// A relay's [`Outbox`], borrowing its fields beside a circuit already borrowed from its
/// slab (a method would borrow the whole relay).
macro_rules! outbox {
    ($relay:ident) => {
        $crate::relay::transmit::Outbox {
            cells: &mut $relay.cells,
            memory: &mut $relay.memory,
            channels: &mut $relay.channels,
            cap: $relay.cfg.max_circuit_queue_cells,
        }
    };
}
pub(super) use outbox;

/// What [`Outbox::queue`] did with a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Queued {
    /// Linked into the queue; the memory limit is to be checked.
    Yes,
    /// The circuit has no side that way (the slot went back to the pool).
    NoHop,
    /// The queue is at its cap (the slot went back; the circuit is to close).
    OverCap,
}

impl Outbox<'_> {
    /// Links `slot` into `c`'s queue toward `key`'s side and makes the queue active on that
    /// side's channel. `inline(always)`: left to LLVM, the same step stayed out of line on the
    /// per-cell path (session 15, +29 instructions per cell).
    #[inline(always)]
    pub(super) fn queue(
        self,
        now: Instant,
        key @ (_, dir): (CircHandle, Dir),
        c: &mut Circuit,
        slot: SlotId,
    ) -> Queued {
        let Some(hop) = c.out_hop(dir) else {
            self.cells.release(slot);
            return Queued::NoHop;
        };
        let q = c.queue_mut(dir);
        if q.len() >= self.cap {
            self.cells.release(slot);
            return Queued::OverCap;
        }
        self.cells.append(q, slot);
        self.memory.cell_queued();
        q.in_mux = self
            .channels
            .cell_queued(now, hop.chan, key, &mut q.ewma, q.in_mux);
        Queued::Yes
    }
}
