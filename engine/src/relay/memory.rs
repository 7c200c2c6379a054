//! What `MaxMemInQueues` limits: bytes queued in circuit queues plus bytes received on
//! streams and not yet read by the application, counted in one place.
//!
//! Every change to a circuit queue or a stream receive buffer goes through this account,
//! and `Relay::check_invariants` compares it with the queues and buffers themselves.

use crate::wire::CELL_LEN;

/// Queued-bytes account of one `Relay`.
#[derive(Debug)]
pub(crate) struct QueueMemory {
    /// Bytes in all circuit queues. INVARIANT: `CELL_LEN` times the sum of queue lengths.
    cell_bytes: usize,
    /// Bytes in all stream receive buffers. INVARIANT: the sum of their lengths.
    stream_bytes: usize,
    /// `MaxMemInQueues`.
    limit: usize,
}

impl QueueMemory {
    /// An empty account with the given limit.
    pub(crate) fn new(limit: usize) -> Self {
        QueueMemory {
            cell_bytes: 0,
            stream_bytes: 0,
            limit,
        }
    }

    /// All queued bytes (what the limit applies to).
    pub(crate) fn total(&self) -> usize {
        self.cell_bytes + self.stream_bytes
    }

    /// Bytes in circuit queues.
    pub(crate) fn cell_bytes(&self) -> usize {
        self.cell_bytes
    }

    /// Bytes in stream receive buffers.
    pub(crate) fn stream_bytes(&self) -> usize {
        self.stream_bytes
    }

    /// Whether the OOM handler must run.
    pub(crate) fn over_limit(&self) -> bool {
        self.total() > self.limit
    }

    /// Whether the OOM handler may stop: usage below 90% of the limit.
    pub(crate) fn below_target(&self) -> bool {
        self.total() < self.limit / 10 * 9
    }

    /// One cell was queued.
    pub(crate) fn cell_queued(&mut self) {
        self.cell_bytes += CELL_LEN;
    }

    /// `n` cells left their queues (sent or dropped).
    pub(crate) fn cells_gone(&mut self, n: usize) {
        debug_assert!(n * CELL_LEN <= self.cell_bytes, "cell account underflow");
        self.cell_bytes = self.cell_bytes.saturating_sub(n * CELL_LEN);
    }

    /// `n` bytes arrived in a stream receive buffer.
    pub(crate) fn stream_buffered(&mut self, n: usize) {
        self.stream_bytes += n;
    }

    /// `n` bytes left a stream receive buffer (read or dropped).
    pub(crate) fn stream_gone(&mut self, n: usize) {
        debug_assert!(n <= self.stream_bytes, "stream account underflow");
        self.stream_bytes = self.stream_bytes.saturating_sub(n);
    }
}
