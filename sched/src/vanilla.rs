//! Vanilla: Tor's pre-KIST behaviour and KIST's baseline. Whenever a channel is writable and
//! has cells, write up to `vanilla_max_write` bytes (32 KiB, at most 63 cells of 514) at once,
//! circuits in EWMA order within the channel, and hand them to the kernel; then wait for the
//! send to complete (`channel_writable`) before writing more. No socket information is used,
//! so the kernel's send buffer, not the relay, is where data queues.

use crate::channels::{Change, ChannelTable};
use crate::limit::{LimitReason, CELL_WIRE_LEN};
use crate::metrics::{QueueTimes, SchedMetrics};
use crate::scheduler::{
    CellSource, ChannelKey, ChannelSnapshot, ChannelState, RunReport, SchedConfig, Scheduler,
    SchedulerKind, WriteGrant,
};
use crate::time::Instant;

/// The Vanilla scheduler. `run` serves every pending channel in the order they became
/// pending and ignores the snapshots (the caller need not take any).
#[derive(Debug)]
pub struct Vanilla<K> {
    max_write: u32,
    table: ChannelTable<K>,
    due: Option<Instant>,
    order: Vec<K>,
    grants: Vec<WriteGrant<K>>,
    metrics: SchedMetrics,
}

impl<K: ChannelKey> Vanilla<K> {
    /// A scheduler with no channels.
    pub fn new(cfg: &SchedConfig) -> Self {
        Vanilla {
            max_write: cfg.vanilla_max_write,
            table: ChannelTable::new(),
            due: None,
            order: Vec::new(),
            grants: Vec::new(),
            metrics: SchedMetrics::new(),
        }
    }

    fn wake(&mut self, now: Instant, change: Change) {
        if change == Change::BecamePending {
            self.due = Some(self.due.map_or(now, |d| d.min(now)));
        }
    }
}

impl<K: ChannelKey> Scheduler<K> for Vanilla<K> {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Vanilla
    }

    fn channel_has_cells(&mut self, now: Instant, chan: K) {
        let change = self.table.has_cells(chan);
        self.wake(now, change);
    }

    fn channel_writable(&mut self, now: Instant, chan: K) {
        let change = self.table.writable(chan);
        self.wake(now, change);
    }

    fn channel_closed(&mut self, chan: K) {
        self.table.closed(chan);
    }

    fn channel_state(&self, chan: K) -> ChannelState {
        self.table.state(chan)
    }

    fn pending_channels(&self, _now: Instant, out: &mut Vec<K>) {
        self.table.pending_into(false, out);
    }

    fn next_run(&self) -> Option<Instant> {
        self.due
    }

    fn run(
        &mut self,
        now: Instant,
        _snaps: &[ChannelSnapshot<K>],
        source: &mut dyn CellSource<K>,
    ) -> RunReport {
        self.grants.clear();
        self.order.clear();
        self.table.pending_into(false, &mut self.order);
        let limit = u64::from(self.max_write);
        let max_cells = self.max_write / CELL_WIRE_LEN;
        let mut report = RunReport::default();
        for &chan in &self.order {
            let batch = {
                let mut times = QueueTimes::new(&mut self.metrics, now);
                source.write_cells(now, chan, max_cells, &mut times)
            };
            let written = batch.bytes;
            report.cells += u64::from(batch.cells);
            report.bytes += batch.bytes;
            if batch.cells > 0 {
                source.flush(chan);
                report.flushes += 1;
            }
            let state = if batch.more {
                self.metrics.record_exhausted(LimitReason::VanillaMax);
                ChannelState::WaitingToWrite
            } else {
                ChannelState::WaitingForCells
            };
            self.table.set(chan, state);
            self.metrics.record_grant(limit, LimitReason::VanillaMax);
            self.grants.push(WriteGrant {
                channel: chan,
                max_bytes: limit,
                limited_by: LimitReason::VanillaMax,
                written,
            });
            report.channels += 1;
        }
        self.table.compact();
        self.due = None;
        self.metrics
            .record_run(report.cells, report.bytes, u64::from(report.flushes));
        report
    }

    fn grants(&self) -> &[WriteGrant<K>] {
        &self.grants
    }

    fn metrics(&self) -> &SchedMetrics {
        &self.metrics
    }

    fn metrics_mut(&mut self) -> &mut SchedMetrics {
        &mut self.metrics
    }
}
