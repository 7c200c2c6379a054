//! KIST and KISTLite: one run loop, two ways to size a channel's grant.
//!
//! ```text
//!  run(now, snapshots):
//!    for each pending channel: limit = kist_limit(..) | high_water - outbuf
//!    order the granted channels with cells by their best circuit's priority (one sort)
//!    for each, quietest first:
//!          write_cells(chan, limit / CELL_WIRE_LEN)   the source's loop, mux order
//!          flush(chan)                                its SEND is queued now
//!          out of cells -> WaitingForCells, else WaitingToWrite (re-added as Pending)
//!    next run <= now + run_interval
//! ```
//!
//! # Channel batches instead of Tor's cell-by-cell loop
//!
//! Tor's KIST pops the channel with the globally quietest circuit, writes ONE cell, pushes
//! the channel back, and flushes a channel it switches away from with more than 8 cells
//! staged. Here each granted channel writes its whole grant in one batch, channels in the
//! order of their best circuit's EWMA priority at the start of the run, and its send is
//! queued at the end of its batch. What this keeps and what it changes:
//! - Which cells a run writes is the same: every channel has its own grant, and within a
//!   channel the cells come in its mux's order either way, so cross-channel interleaving
//!   never changes what a channel sends in a run, only when inside the run.
//! - Inside the run, "when" is the order in which sends reach the kernel. With one send in
//!   flight per socket there is one send per channel per run, queued in priority order: the
//!   channel with the quietest circuit is handed to the kernel first, as in Tor.
//! - The cost: a sort per run instead of a heap sift per cell, and one call into the engine
//!   per channel instead of one per cell, so KIST costs about what Vanilla costs per cell.
//!
//! Which channels a run covers: when the tick (`run_interval` after a run that left channels
//! pending) is due, all pending channels; before it, an event-driven run covers only the
//! channels that events woke (cells for an idle channel, a completed send), so the per-run
//! snapshot cost follows the events, not the number of congested sockets.
//!
//! No allocation per run once warm (the run's vectors keep their capacity), no lookup by key
//! per cell.

use crate::channels::{Change, ChannelTable};
use crate::limit::{
    kernel_queue_time_us, kist_limit_with_reason, kistlite_limit, LimitReason, CELL_WIRE_LEN,
};
use crate::metrics::{QueueTimes, SchedMetrics};
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

/// A run's service order in one `u64`: the channel's best priority (its total-order bits)
/// above its index in `grants`, so that one integer sort orders channels by priority and equal
/// priorities (all of them under round robin) by snapshot order.
///
/// The index takes the low `idx_bits` bits (just enough for the run's snapshots), so the
/// priority keeps its top `64 - idx_bits` bits: the sign, the exponent and at least 20
/// mantissa bits even with 2^32 channels, 42 with a thousand. Priorities that differ only
/// below that (a relative difference under 2^-20 and 2^-42 respectively) count as equal and
/// keep snapshot order. A `u128` key kept every bit, and sorting it cost twice as much: at
/// 1,000 channels the sort was the largest part of KIST's cost over Vanilla.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OrderKeys {
    idx_bits: u32,
}

impl OrderKeys {
    /// Keys for a run over at most `channels` snapshots.
    fn for_channels(channels: usize) -> Self {
        let highest_idx = u64::try_from(channels.saturating_sub(1)).unwrap_or(u64::MAX);
        // At most 32: `grants` indices are u32.
        let idx_bits = (u64::BITS - highest_idx.leading_zeros()).min(32);
        OrderKeys { idx_bits }
    }

    fn key(self, priority_bits: u64, idx: u32) -> u64 {
        // `idx_bits <= 32`: both shifts are in range.
        (priority_bits >> self.idx_bits << self.idx_bits) | u64::from(idx)
    }

    fn index(self, key: u64) -> usize {
        let mask = (1u64 << self.idx_bits) - 1;
        (key & mask) as usize
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
    /// This run's channels with cells and room, as [`OrderKeys`] keys.
    order: Vec<u64>,
    keys: OrderKeys,
    /// This run's grants, in snapshot order; `written` is filled in as the run goes.
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
            order: Vec::new(),
            keys: OrderKeys::for_channels(0),
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
                    self.metrics.note_kernel_queue_estimate(us);
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
        self.grant(now, snaps, source);
        let mut report = RunReport {
            channels: self.grants.len() as u32,
            ..RunReport::default()
        };
        // Unique keys (the index is part of them): unstable sort gives a stable order.
        self.order.sort_unstable();
        for &key in &self.order {
            let idx = self.keys.index(key);
            let Some(g) = self.grants.get_mut(idx) else {
                continue;
            };
            let max_cells =
                u32::try_from(g.max_bytes / u64::from(CELL_WIRE_LEN)).unwrap_or(u32::MAX);
            let batch = {
                let mut times = QueueTimes::new(&mut self.metrics, now);
                source.write_cells(now, g.channel, max_cells, &mut times)
            };
            g.written = batch.bytes;
            report.cells += u64::from(batch.cells);
            report.bytes += batch.bytes;
            if batch.cells > 0 {
                source.flush(g.channel);
                report.flushes += 1;
            }
            if !batch.more {
                self.table.set(g.channel, ChannelState::WaitingForCells);
            } else {
                self.metrics.record_exhausted(g.limited_by);
            }
        }
        self.finish_run(now, &mut report);
        report
    }

    /// A grant for every snapshot of a pending channel; channels with cells and room for one
    /// go into the run's order by their best priority.
    fn grant(
        &mut self,
        now: Instant,
        snaps: &[ChannelSnapshot<K>],
        source: &mut dyn CellSource<K>,
    ) {
        self.order.clear();
        self.grants.clear();
        self.keys = OrderKeys::for_channels(snaps.len());
        self.table.begin_run();
        for snap in snaps {
            // Taken into this run (it stays pending unless it runs out of cells); a stale or
            // duplicate entry is skipped.
            if !self.table.take_pending(snap.channel) {
                continue;
            }
            let (limit, reason) = self.limit_for(snap);
            self.metrics.record_grant(limit, reason);
            let idx = self.grants.len() as u32;
            self.grants.push(WriteGrant {
                channel: snap.channel,
                max_bytes: limit,
                limited_by: reason,
                written: 0,
            });
            if limit < u64::from(CELL_WIRE_LEN) {
                self.metrics.record_exhausted(reason);
                continue;
            }
            match source.best_priority(now, snap.channel) {
                Some(p) => self.order.push(self.keys.key(p.order_bits(), idx)),
                None => self.table.set(snap.channel, ChannelState::WaitingForCells),
            }
        }
    }

    /// Set the next tick. A granted channel that keeps cells is still `Pending` (Tor's
    /// `to_readd`): it is pending for the next run, which the kernel will have given more room
    /// by then (or a send completion calls it sooner).
    fn finish_run(&mut self, now: Instant, report: &mut RunReport) {
        self.table.compact();
        self.last_run = Some(now);
        self.event_due = None;
        // Channels left pending by this run are retried within one interval; one that this
        // run did not take keeps its earlier tick.
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

#[cfg(test)]
mod tests {
    use super::OrderKeys;
    use crate::ewma::Priority;

    fn bits(count: f64) -> u64 {
        Priority::from_count(count).order_bits()
    }

    #[test]
    fn index_bits_fit_the_run() {
        let idx_bits = |n| OrderKeys::for_channels(n).idx_bits;
        assert_eq!(idx_bits(0), 0);
        assert_eq!(idx_bits(1), 0);
        assert_eq!(idx_bits(2), 1);
        assert_eq!(idx_bits(1000), 10);
        assert_eq!(idx_bits(1024), 10);
        assert_eq!(idx_bits(1025), 11);
        assert_eq!(idx_bits(usize::MAX), 32);
    }

    #[test]
    fn keys_order_by_priority_then_snapshot_index() {
        let keys = OrderKeys::for_channels(1000);
        let mut order = [
            keys.key(bits(7.5), 0),
            keys.key(bits(0.25), 999),
            keys.key(bits(7.5), 3),
            keys.key(bits(0.0), 512),
            keys.key(bits(1e300), 1),
        ];
        order.sort_unstable();
        let idx: Vec<usize> = order.iter().map(|&k| keys.index(k)).collect();
        assert_eq!(idx, [512, 999, 0, 3, 1]);
    }

    #[test]
    fn priorities_equal_in_the_kept_bits_keep_snapshot_order() {
        let keys = OrderKeys::for_channels(1000);
        // 1.0 and the next f64 above it differ only in the last mantissa bit, which the
        // index took: they tie, so the lower index goes first whichever is quieter.
        let above_one = f64::from_bits(1.0f64.to_bits() + 1);
        let (a, b) = (keys.key(bits(above_one), 4), keys.key(bits(1.0), 9));
        assert!(a < b);
        // A difference above the index bits still orders them.
        let clearly_above = f64::from_bits(1.0f64.to_bits() + (1 << 10));
        assert!(keys.key(bits(clearly_above), 4) > keys.key(bits(1.0), 9));
    }
}
