//! Runs: the cells one circuit writes in a row while it stays the mux's best.
//!
//! A scheduler that writes `n` cells to a channel asks the mux for the best circuit before
//! each cell and counts the cell after it (`peek` + `note_written`: one heap sift per cell).
//! Under EWMA the best circuit usually stays best for many cells: its count grows by one
//! cell's weight per cell, and it loses its place only when it passes the runner-up's. A run
//! computes that length up front, so the caller writes the run's cells with no mux call in
//! between, and the heap is sifted once per run instead of once per cell.
//!
//! The order of service is the same as cell by cell: the run's length is found with the same
//! floating-point additions and the same comparison `note_written` followed by `sift_down`
//! would make, and [`CircuitMux::end_run`] repeats the additions for the cells written.

use super::{finite_or_max, CellEwma, CircuitMux, EwmaQueue, HeapEntry, Policy};
use crate::time::Instant;
use core::fmt::Debug;

/// Cells the mux's best circuit may write in a row (see the module doc). Opaque: hand it back
/// to [`CircuitMux::end_run`] with the number written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a run's cells are counted only by end_run"]
pub struct Run<C> {
    circ: C,
    cells: u32,
}

impl<C: Copy> Run<C> {
    /// The circuit to write from.
    pub fn circ(&self) -> C {
        self.circ
    }

    /// How many cells it may write before another circuit would be offered (at least 1).
    pub fn cells(&self) -> u32 {
        self.cells
    }
}

impl<C: Copy + Eq + Ord + Debug> CircuitMux<C> {
    /// The circuit `peek` offers and how many cells it may write in a row, at most `max`
    /// (`max` >= 1). None if no circuit is active. Until [`end_run`](Self::end_run), the mux
    /// must not be asked to change (no other `note_written`, `activate` or `deactivate`).
    pub fn begin_run(&mut self, now: Instant, max: u32) -> Option<Run<C>> {
        let max = max.max(1);
        match &mut self.policy {
            Policy::RoundRobin(line) => {
                let circ = *line.front()?;
                // Strict rotation: one cell each, unless the circuit is alone in line.
                let cells = if line.len() == 1 { max } else { 1 };
                Some(Run { circ, cells })
            }
            Policy::Ewma(q) => {
                let weight = q.weight_now(now);
                let top = *q.heap.first()?;
                let cells = match q.runner_up() {
                    None => max,
                    Some(next) => {
                        // Cell j + 1 is written while the top, after j cells, still sorts
                        // before the runner-up (orders are unique: the sequence numbers).
                        let mut probe = top;
                        let mut cells = 1;
                        while cells < max {
                            probe.set_key(finite_or_max(probe.key + weight));
                            if !probe.before(&next) {
                                break;
                            }
                            cells += 1;
                        }
                        cells
                    }
                };
                Some(Run {
                    circ: top.circ,
                    cells,
                })
            }
        }
    }

    /// `written` cells of `run` were written (`written <= run.cells()`): counts them in
    /// `ewma` and in the mux's order, as `written` calls of `note_written` would.
    pub fn end_run(&mut self, now: Instant, run: Run<C>, written: u32, ewma: &mut CellEwma) {
        debug_assert!(written <= run.cells, "{written} cells of a {run:?}");
        if written == 0 {
            return;
        }
        match &mut self.policy {
            Policy::RoundRobin(line) => {
                debug_assert_eq!(
                    line.front(),
                    Some(&run.circ),
                    "run of a circuit not in front"
                );
                // Written cells rotate the line once: the circuit goes to the back whether it
                // was alone (no-op) or not (a run of one).
                if line.front() == Some(&run.circ) {
                    line.rotate_left(1);
                }
            }
            Policy::Ewma(q) => {
                let weight = q.weight_now(now);
                let epoch = q.epoch;
                let Some(top) = q.heap.first_mut().filter(|e| e.circ == run.circ) else {
                    // The caller broke the contract; count the cells the slow way.
                    debug_assert!(false, "mux changed during {run:?}");
                    for _ in 0..written {
                        self.note_written(now, run.circ, ewma);
                    }
                    return;
                };
                let mut key = top.key;
                for _ in 0..written {
                    key = finite_or_max(key + weight);
                }
                top.set_key(key);
                q.sift_down(0);
                ewma.value = key;
                ewma.epoch = epoch;
            }
        }
    }
}

impl<C: Copy> EwmaQueue<C> {
    /// The entry that would be the top if the top were removed: the smaller of its children.
    fn runner_up(&self) -> Option<HeapEntry<C>> {
        match (self.heap.get(1), self.heap.get(2)) {
            (Some(l), Some(r)) => Some(if r.before(l) { *r } else { *l }),
            (l, _) => l.copied(),
        }
    }
}
