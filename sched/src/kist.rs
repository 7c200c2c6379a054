//! KIST and KISTLite: one run loop, two ways to size a channel's grant.
//!
//! ```text
//!  run(now, snapshots):
//!    for each pending channel: limit = kist_limit(..) | high_water - outbuf;  written = 0
//!    heap <- (channel's best priority, seq, channel)
//!    loop: pop the lowest priority over ALL granted channels
//!          (switched away from a channel with > 8 cells staged? flush it)
//!          write ONE cell; charge it
//!          out of cells     -> WaitingForCells
//!          no room for one more cell -> WaitingToWrite (re-added as Pending after the run)
//!          else             -> push back with its new priority
//!    flush every channel with staged cells; re-add; next run <= now + run_interval
//! ```
//!
//! Which channels a run covers: when the tick (`run_interval` after a run that left channels
//! pending) is due, all pending channels; before it, an event-driven run covers only the
//! channels that events woke (cells for an idle channel, a completed send), so the per-run
//! snapshot cost follows the events, not the number of congested sockets.
//!
//! Per cell: one in-place update of the heap's top (O(log channels)) and the source's own O(log circuits);
//! no allocation (the run's buffers keep their capacity), no lookups by key.

use std::collections::binary_heap::PeekMut;
use std::collections::BinaryHeap;

use crate::channels::{Change, ChannelTable};
use crate::ewma::Priority;
use crate::limit::{
    kernel_queue_time_us, kist_limit_with_reason, kistlite_limit, LimitReason, CELL_WIRE_LEN,
    FLUSH_CELLS,
};
use crate::metrics::SchedMetrics;
use crate::scheduler::{
    CellSource, ChannelKey, ChannelSnapshot, ChannelState, RunReport, SchedConfig, Scheduler,
    SchedulerKind, WriteGrant,
};
use crate::time::Instant;

/// How grants are sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LimitMode {
    /// KIST: from TCP_INFO and SIOCOUTQNSD.
    Kernel,
    /// KISTLite: a staged-bytes high-water mark.
    HighWater,
}

/// One granted channel during a run.
#[derive(Clone, Copy, Debug)]
struct Granted<K> {
    chan: K,
    limit: u64,
    written: u64,
    staged_cells: u32,
    reason: LimitReason,
}

/// Heap entry: lowest priority first, then the order in which entries were queued, so equal
/// priorities (all of them under round robin) rotate between channels. Both are packed into
/// one `u128` (priority's total-order bits above the sequence number) so a heap comparison
/// is one integer compare; `seq` is unique, so keys never tie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeapKey {
    key: u128,
    idx: u32,
}

impl HeapKey {
    fn new(p: Priority, seq: u64, idx: u32) -> Self {
        HeapKey {
            key: (u128::from(p.order_bits()) << 64) | u128::from(seq),
            idx,
        }
    }
}

impl Ord for HeapKey {
    // Reversed: `BinaryHeap` is a max-heap and we want the lowest key on top.
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        other.key.cmp(&self.key)
    }
}

impl PartialOrd for HeapKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
struct KistCore<K> {
    mode: LimitMode,
    cfg: SchedConfig,
    table: ChannelTable<K>,
    /// A run for the channels events woke (event-driven mode): due at once.
    event_due: Option<Instant>,
    /// A run for every pending channel: `run_interval` after the run that re-added one.
    tick_due: Option<Instant>,
    last_run: Option<Instant>,
    granted: Vec<Granted<K>>,
    heap: BinaryHeap<HeapKey>,
    grants: Vec<WriteGrant<K>>,
    metrics: SchedMetrics,
}

impl<K: ChannelKey> KistCore<K> {
    fn new(mode: LimitMode, cfg: &SchedConfig) -> Self {
        KistCore {
            mode,
            cfg: *cfg,
            table: ChannelTable::new(),
            event_due: None,
            tick_due: None,
            last_run: None,
            granted: Vec::new(),
            heap: BinaryHeap::new(),
            grants: Vec::new(),
            metrics: SchedMetrics::new(),
        }
    }

    /// Something became runnable at `now`.
    fn wake(&mut self, now: Instant, change: Change) {
        if change == Change::None {
            return;
        }
        if self.cfg.event_driven {
            self.event_due = Some(self.event_due.map_or(now, |d| d.min(now)));
        } else {
            // Tor's timing: at most one run per interval, all pending channels in it.
            let at = self
                .last_run
                .map_or(now, |last| (last + self.cfg.run_interval).max(now));
            self.tick_due = Some(self.tick_due.map_or(at, |d| d.min(at)));
        }
    }

    fn next_run(&self) -> Option<Instant> {
        match (self.event_due, self.tick_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Channels for a run at `now`: all pending ones when the tick is due, otherwise only those
    /// an event woke, so that a send completing on one channel does not snapshot every
    /// congested socket again.
    fn pending_channels(&self, now: Instant, out: &mut Vec<K>) {
        let tick = self.tick_due.is_some_and(|t| t <= now);
        self.table.pending_into(!tick, out);
    }

    fn limit_for(&mut self, snap: &ChannelSnapshot<K>) -> (u64, LimitReason) {
        match (self.mode, snap.socket.tcp, snap.socket.notsent) {
            (LimitMode::Kernel, Some(tcp), Some(notsent)) => {
                if let Some(us) = kernel_queue_time_us(&tcp, notsent) {
                    self.metrics.record_kernel_queue_time(us);
                }
                kist_limit_with_reason(&tcp, notsent, snap.outbuf, self.cfg.sock_buf_size_factor)
            }
            // No kernel reading for this socket (KISTLite, or the getsockopt failed): use
            // KISTLite's high-water mark rather than stall the channel or write unbounded.
            _ => (
                kistlite_limit(snap.outbuf, self.cfg.kistlite_high_water),
                LimitReason::HighWater,
            ),
        }
    }

    fn run(
        &mut self,
        now: Instant,
        snaps: &[ChannelSnapshot<K>],
        source: &mut dyn CellSource<K>,
    ) -> RunReport {
        let seq = self.grant(now, snaps, source);
        let mut report = RunReport {
            channels: self.granted.len() as u32,
            ..RunReport::default()
        };
        self.write_cells(now, seq, source, &mut report);
        self.finish_run(now, source, &mut report);
        report
    }

    /// A grant for every snapshot of a pending channel; channels with cells and room for one
    /// go on the heap by their best priority. Returns the next heap sequence number.
    fn grant(
        &mut self,
        now: Instant,
        snaps: &[ChannelSnapshot<K>],
        source: &mut dyn CellSource<K>,
    ) -> u64 {
        self.granted.clear();
        self.heap.clear();
        self.grants.clear();
        let mut seq: u64 = 0;
        for snap in snaps {
            if self.table.state(snap.channel) != ChannelState::Pending {
                continue; // stale or duplicate entry
            }
            let (limit, reason) = self.limit_for(snap);
            self.metrics.record_grant(limit, reason);
            let idx = self.granted.len() as u32;
            self.granted.push(Granted {
                chan: snap.channel,
                limit,
                written: 0,
                staged_cells: 0,
                reason,
            });
            // Taken into this run; re-added below if it keeps cells.
            self.table.set(snap.channel, ChannelState::WaitingToWrite);
            if limit < u64::from(CELL_WIRE_LEN) {
                self.metrics.record_exhausted(reason);
                continue;
            }
            match source.best_priority(now, snap.channel) {
                Some(p) => {
                    self.heap.push(HeapKey::new(p, seq, idx));
                    seq += 1;
                }
                None => self.table.set(snap.channel, ChannelState::WaitingForCells),
            }
        }
        seq
    }

    /// The per-cell loop: always the lowest priority over all granted channels, one cell at a
    /// time, until every channel is out of cells or of grant. Always inlined into `run`: as a
    /// call of its own it cost ~0.5% more instructions per cell (benches/icount kist_run).
    #[inline(always)]
    fn write_cells(
        &mut self,
        now: Instant,
        mut seq: u64,
        source: &mut dyn CellSource<K>,
        report: &mut RunReport,
    ) {
        let mut last: Option<usize> = None;
        // The top entry is updated in place (one sift) rather than popped and pushed back.
        while let Some(mut top) = self.heap.peek_mut() {
            let idx = top.idx;
            let idx = idx as usize;
            if let Some(prev) = last.filter(|&p| p != idx) {
                if let Some(g) = self.granted.get_mut(prev) {
                    if g.staged_cells > FLUSH_CELLS {
                        source.flush(g.chan);
                        g.staged_cells = 0;
                        report.flushes += 1;
                    }
                }
            }
            last = Some(idx);
            let Some(g) = self.granted.get_mut(idx) else {
                PeekMut::pop(top);
                continue;
            };
            let Some(w) = source.write_one(now, g.chan) else {
                PeekMut::pop(top);
                self.table.set(g.chan, ChannelState::WaitingForCells);
                continue;
            };
            if let Some(t) = w.enqueued {
                self.metrics.record_relay_queue_time(t, now);
            }
            let charged = if w.bytes == 0 { CELL_WIRE_LEN } else { w.bytes };
            g.written = g.written.saturating_add(u64::from(charged));
            g.staged_cells += 1;
            report.cells += 1;
            report.bytes += u64::from(charged);
            match w.next {
                None => {
                    PeekMut::pop(top);
                    self.table.set(g.chan, ChannelState::WaitingForCells);
                }
                Some(p) if g.limit.saturating_sub(g.written) >= u64::from(CELL_WIRE_LEN) => {
                    *top = HeapKey::new(p, seq, idx as u32);
                    seq += 1;
                }
                Some(_) => {
                    PeekMut::pop(top);
                    self.metrics.record_exhausted(g.reason);
                }
            }
        }
    }

    /// Flush what is staged, record the grants, re-add channels that keep cells, and set the
    /// next tick.
    fn finish_run(&mut self, now: Instant, source: &mut dyn CellSource<K>, report: &mut RunReport) {
        for g in &mut self.granted {
            if g.staged_cells > 0 {
                source.flush(g.chan);
                g.staged_cells = 0;
                report.flushes += 1;
            }
            self.grants.push(WriteGrant {
                channel: g.chan,
                max_bytes: g.limit,
                limited_by: g.reason,
                written: g.written,
            });
            // Tor's `to_readd`: still has cells, so it is pending for the next run, which the
            // kernel will have given more room by then (or a send completion calls it sooner).
            if self.table.state(g.chan) == ChannelState::WaitingToWrite {
                self.table.set(g.chan, ChannelState::Pending);
            }
        }
        self.table.compact();
        self.last_run = Some(now);
        self.event_due = None;
        // Channels re-added by this run are retried within one interval; one that this run did
        // not take keeps its earlier tick.
        let retry = now + self.cfg.run_interval;
        self.tick_due = match self.tick_due {
            _ if !self.table.any_pending() => None,
            Some(t) if t > now => Some(t.min(retry)),
            _ => Some(retry),
        };
        self.metrics
            .record_run(report.cells, report.bytes, u64::from(report.flushes));
    }
}

macro_rules! kist_scheduler {
    ($name:ident, $mode:expr, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name<K>(KistCore<K>);

        impl<K: ChannelKey> $name<K> {
            /// A scheduler with no channels.
            pub fn new(cfg: &SchedConfig) -> Self {
                $name(KistCore::new($mode, cfg))
            }
        }

        impl<K: ChannelKey> Scheduler<K> for $name<K> {
            fn kind(&self) -> SchedulerKind {
                $kind
            }
            fn channel_has_cells(&mut self, now: Instant, chan: K) {
                let change = self.0.table.has_cells(chan);
                self.0.wake(now, change);
            }
            fn channel_writable(&mut self, now: Instant, chan: K) {
                let change = self.0.table.writable(chan);
                self.0.wake(now, change);
            }
            fn channel_closed(&mut self, chan: K) {
                self.0.table.closed(chan);
            }
            fn channel_state(&self, chan: K) -> ChannelState {
                self.0.table.state(chan)
            }
            fn pending_channels(&self, now: Instant, out: &mut Vec<K>) {
                self.0.pending_channels(now, out);
            }
            fn next_run(&self) -> Option<Instant> {
                self.0.next_run()
            }
            fn run(
                &mut self,
                now: Instant,
                snaps: &[ChannelSnapshot<K>],
                source: &mut dyn CellSource<K>,
            ) -> RunReport {
                self.0.run(now, snaps, source)
            }
            fn grants(&self) -> &[WriteGrant<K>] {
                &self.0.grants
            }
            fn metrics(&self) -> &SchedMetrics {
                &self.0.metrics
            }
            fn metrics_mut(&mut self) -> &mut SchedMetrics {
                &mut self.0.metrics
            }
        }
    };
}

kist_scheduler!(
    Kist,
    LimitMode::Kernel,
    SchedulerKind::Kist,
    "KIST: grants sized from the kernel's view of each socket (`kist_limit`)."
);
kist_scheduler!(
    KistLite,
    LimitMode::HighWater,
    SchedulerKind::KistLite,
    "KISTLite: KIST's loop with a fixed staged-bytes high-water mark (no kernel information)."
);
