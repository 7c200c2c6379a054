//! Per-circuit, per-direction cell queues.
//!
//! Cells are queued after relay crypto has been applied and with the outgoing circuit id
//! already written, so moving one to a channel's send buffer is a single copy.

use std::collections::VecDeque;

use kistrel_sched::CellEwma;

use crate::time::Instant;
use crate::wire::{ChanCmd, CELL_BODY_LEN, CELL_LEN};

/// One cell ready for the wire, and when it was queued (for queue-time metrics and the OOM
/// handler, which closes the circuits holding the oldest cells first).
#[derive(Clone)]
pub(crate) struct QueuedCell {
    pub(crate) bytes: [u8; CELL_LEN],
    pub(crate) enqueued: Instant,
}

impl QueuedCell {
    pub(crate) fn new(
        circ_id: u32,
        cmd: ChanCmd,
        body: &[u8; CELL_BODY_LEN],
        now: Instant,
    ) -> Self {
        let mut bytes = [0u8; CELL_LEN];
        bytes[..4].copy_from_slice(&circ_id.to_be_bytes());
        bytes[4] = cmd.0;
        bytes[5..].copy_from_slice(body);
        QueuedCell {
            bytes,
            enqueued: now,
        }
    }
}

/// The queue of cells one circuit has for one of its two channels.
#[derive(Default)]
pub(crate) struct CellQueue {
    cells: VecDeque<QueuedCell>,
    /// INVARIANT: true iff this queue is active in its channel's `CircuitMux`.
    pub(crate) in_mux: bool,
    /// EWMA of cells written from this queue (circuit priority, CircuitPriorityHalflife).
    pub(crate) ewma: CellEwma,
}

impl CellQueue {
    pub(crate) fn len(&self) -> usize {
        self.cells.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub(crate) fn push(&mut self, cell: QueuedCell) {
        self.cells.push_back(cell);
    }

    pub(crate) fn pop(&mut self) -> Option<QueuedCell> {
        self.cells.pop_front()
    }

    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.cells.front().map(|c| c.enqueued)
    }

    /// Drops every cell, returning how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.cells.len();
        self.cells.clear();
        self.cells.shrink_to_fit();
        n
    }
}
