//! Exit DATA cells sealed in batches: the SHA-1 of cells of different circuits in one pass.
//!
//! An exit seals every DATA cell it originates with its circuit's running SHA-1, a chain
//! that keeps the CPU's SHA unit mostly waiting (crypto::relay_crypto::digest). With
//! batching on, [`Relay::handle_stream_data`] only builds each cell (into its pool slot) and
//! counts it in the windows; [`Relay::flush_seals`] then seals, encrypts and queues them, up
//! to [`MAX_LANES`] circuits per pass, each circuit's cells in their order.
//!
//! ```text
//!   handle_stream_data: body -> pool slot, windows counted -> pending (circ, slot)
//!   flush_seals:        waves of <= 4 circuits: prepare -> seal_lanes -> finish (encrypt)
//!                       -> SENDME digest recorded -> enqueue_slot
//! ```
//!
//! Order rules: a circuit's cells are sealed in the order they were built, and nothing else
//! is sealed on a circuit while cells of it wait (every other backward origination flushes
//! first). Cells wait only within one worker turn (the worker flushes before it schedules);
//! [`SEAL_BATCH_MAX`] bounds them. A circuit that closed meanwhile is skipped (its handle is
//! generational) and its slots go back to the pool.

use crate::crypto::relay_crypto::{seal_lanes, SealWork, MAX_LANES};
use crate::time::Instant;
use crate::wire::{ChanCmd, CELL_BODY_LEN};

use super::circuit::{CircKind, Dir};
use super::flow::CircuitFlow;
use super::ids::CircHandle;
use super::queue::SlotId;
use super::Relay;

/// Cells built and not yet sealed, at most: flushed when reached (256 cells, 135 KiB of pool).
pub(crate) const SEAL_BATCH_MAX: usize = 256;

/// A DATA cell waiting for its seal.
#[derive(Debug)]
struct PendingSeal {
    circ: CircHandle,
    /// The pool slot holding the cell (outgoing circuit id written, body not sealed); taken
    /// when the cell is queued or released.
    slot: Option<SlotId>,
    /// A SENDME will acknowledge it: its digest goes to the circuit's flow control.
    record: bool,
}

/// The cells waiting to be sealed and whether the runtime asked for batching.
#[derive(Debug, Default)]
pub(super) struct SealQueue {
    batching: bool,
    pending: Vec<PendingSeal>,
    /// Scratch for `flush`: the pending list while it is processed (its capacity is kept).
    spare: Vec<PendingSeal>,
    /// Cells sealed by `flush` and the SHA-1 passes that took (cells / passes: lanes used).
    sealed: u64,
    passes: u64,
}

impl SealQueue {
    pub(super) fn batching(&self) -> bool {
        self.batching
    }
}

impl Relay {
    /// Seal the exit's DATA cells of a turn in batches (see the module docs). The caller
    /// then calls [`Relay::flush_seals`] before it transmits; off (the default), every cell
    /// is sealed as it is built.
    pub fn set_batch_seals(&mut self, on: bool) {
        self.seals.batching = on;
    }

    /// Cells built but not sealed yet.
    pub fn pending_seals(&self) -> usize {
        self.seals.pending.len()
    }

    /// Cells sealed in batches so far and the passes that took (their ratio is the mean
    /// number of circuits sealed together).
    pub fn seal_batches(&self) -> (u64, u64) {
        (self.seals.sealed, self.seals.passes)
    }

    /// Queues a built DATA cell of `circ` (a circuit ending here) for [`Relay::flush_seals`].
    /// The caller has counted it in the stream window; this counts it in the circuit's.
    pub(super) fn defer_seal(
        &mut self,
        now: Instant,
        circ: CircHandle,
        body: &[u8; CELL_BODY_LEN],
    ) {
        if self.seals.pending.len() >= SEAL_BATCH_MAX {
            self.flush_seals(now);
        }
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        let Some(hop) = c.out_hop(Dir::Backward) else {
            return;
        };
        let Some(slot) = self.cells.fill(hop.id.get(), ChanCmd::RELAY, body, now) else {
            return;
        };
        let record = c.flow.on_data_packaged(now);
        self.seals.pending.push(PendingSeal {
            circ,
            slot: Some(slot),
            record,
        });
    }

    /// Seals, encrypts and queues every cell [`Relay::defer_seal`] kept, in waves of up to
    /// [`MAX_LANES`] circuits (each circuit's cells in order).
    pub fn flush_seals(&mut self, now: Instant) {
        if self.seals.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.seals.spare);
        std::mem::swap(&mut pending, &mut self.seals.pending);
        let mut works: [SealWork; MAX_LANES] = std::array::from_fn(|_| SealWork::new());
        // Runs of one circuit's consecutive cells; up to MAX_LANES runs advance together.
        let mut next = 0;
        let mut active: [(usize, usize); MAX_LANES] = [(0, 0); MAX_LANES];
        let mut nactive = 0;
        loop {
            // Activate runs in order while lanes are free and the next run's circuit is
            // not already active (its earlier cells must be sealed first).
            while nactive < MAX_LANES && next < pending.len() {
                let circ = pending[next].circ;
                if active[..nactive]
                    .iter()
                    .any(|&(i, _)| pending[i].circ == circ)
                {
                    break;
                }
                let end = next
                    + pending[next..]
                        .iter()
                        .take_while(|p| p.circ == circ)
                        .count();
                active[nactive] = (next, end);
                nactive += 1;
                next = end;
            }
            if nactive == 0 {
                break;
            }
            let lanes: [usize; MAX_LANES] = std::array::from_fn(|l| active[l].0);
            self.seal_wave(now, &mut pending, &lanes[..nactive], &mut works[..nactive]);
            self.seals.sealed += nactive as u64;
            self.seals.passes += 1;
            // Advance every run by one cell; drop the finished ones, keeping order.
            let mut kept = 0;
            for l in 0..nactive {
                let (i, end) = active[l];
                if i + 1 < end {
                    active[kept] = (i + 1, end);
                    kept += 1;
                }
            }
            nactive = kept;
        }
        pending.clear();
        self.seals.spare = pending;
    }

    /// Seals the cells `pending[lanes[..]]` (of distinct circuits) in one pass and queues
    /// them.
    fn seal_wave(
        &mut self,
        now: Instant,
        pending: &mut [PendingSeal],
        lanes: &[usize],
        works: &mut [SealWork],
    ) {
        let mut live = [false; MAX_LANES];
        for ((&i, w), live) in lanes.iter().zip(works.iter_mut()).zip(&mut live) {
            let Some(p) = pending.get(i) else {
                continue;
            };
            let Some(CircKind::Relay { layer, .. }) = self.circuits.get(p.circ).map(|c| &c.kind)
            else {
                continue;
            };
            if let Some(body) = p.slot.as_ref().and_then(|s| self.cells.body_mut(s)) {
                layer.prepare_backward(body, w);
                *live = true;
            }
        }
        seal_lanes(works);
        for ((&i, w), &live) in lanes.iter().zip(works.iter()).zip(&live) {
            let Some(p) = pending.get_mut(i) else {
                continue;
            };
            let Some(slot) = p.slot.take() else {
                continue;
            };
            let circuit = self.circuits.get_mut(p.circ).filter(|_| live);
            let Some((c, layer)) = circuit.and_then(|c| match &mut c.kind {
                CircKind::Relay { layer, .. } => Some((&mut c.flow, layer)),
                CircKind::Origin(_) => None,
            }) else {
                self.cells.release(slot);
                continue;
            };
            if let Some(body) = self.cells.body_mut(&slot) {
                layer.finish_backward(&mut self.ciphers, w, body);
            }
            if p.record {
                c.record_digest(layer.last_backward_digest());
            }
            self.enqueue_slot(now, p.circ, Dir::Backward, slot);
        }
    }
}
