//! Scheduler figures Tor does not export (docs/spec/kist.md, "What to measure"). One `SchedMetrics`
//! per worker; every recording call is O(1) and allocation-free (the histograms are sized once,
//! values beyond their range are clamped to it).

use core::fmt;

use hdrhistogram::Histogram;

use crate::limit::{kernel_queue_time_us, LimitReason};
use crate::socket::SocketSnapshot;
use crate::time::Instant;

/// Largest time the histograms resolve, in microseconds (60 s); longer waits are clamped.
pub const MAX_RECORDED_US: u64 = 60_000_000;
/// Largest per-run count recorded (cells per run).
pub const MAX_RECORDED_CELLS_PER_RUN: u64 = 1 << 24;
/// Largest per-run grant total recorded, bytes (1 GiB).
pub const MAX_RECORDED_BYTES_PER_RUN: u64 = 1 << 30;
/// Significant figures of every histogram.
const SIGFIG: u8 = 3;

/// Per-worker scheduler counters and histograms.
#[derive(Clone)]
pub struct SchedMetrics {
    /// Scheduling runs (Vanilla: write rounds).
    pub runs: u64,
    /// Channels given a grant, summed over runs.
    pub grants: u64,
    /// Bytes granted (sum of the grants' `max_bytes`, saturating).
    pub bytes_granted: u64,
    /// Cells written into channels.
    pub cells_written: u64,
    /// Bytes charged for those cells.
    pub bytes_written: u64,
    /// Flushes requested (SENDs queued).
    pub flushes: u64,
    /// Grants computed with the congestion window full (`unacked >= cwnd`).
    pub grants_cwnd_full: u64,
    /// Grants used up with cells left, by what limited them.
    pub exhausted: ExhaustedGrants,
    /// The distributions: per run, per cell, per socket.
    pub histograms: SchedHistograms,
    /// Bytes granted so far in the current run.
    run_bytes_granted: u64,
    /// This run's latest kernel queue estimates not yet in their histogram.
    run_estimates: EqualRun<u64>,
}

/// The latest run of equal values and its length, so that a histogram takes the whole run in
/// one `record_n` (queue times of cells enqueued at one instant, kernel queue estimates of
/// sockets with nothing unsent).
#[derive(Clone, Copy, Debug, Default)]
struct EqualRun<T>(Option<(T, u64)>);

impl<T: Copy + PartialEq> EqualRun<T> {
    /// Counts `v`; returns the run it ended, if any. One compare and an add when it continues.
    #[inline]
    fn push(&mut self, v: T) -> Option<(T, u64)> {
        match &mut self.0 {
            Some((at, n)) if *at == v => {
                *n += 1;
                None
            }
            run => run.replace((v, 1)),
        }
    }

    /// Ends the current run and returns it, if any.
    fn take(&mut self) -> Option<(T, u64)> {
        self.0.take()
    }
}

/// Grants whose channel used its whole grant with cells left, by the [`LimitReason`] that
/// sized the grant: which limit holds a relay's traffic back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExhaustedGrants {
    /// KIST, congestion window full.
    pub cwnd: u64,
    /// KIST, the socket-buffer rule.
    pub sock_buf: u64,
    /// KISTLite's high-water mark.
    pub high_water: u64,
    /// Vanilla's per-write maximum.
    pub vanilla_max: u64,
}

impl ExhaustedGrants {
    /// The count for `reason`.
    pub fn get(&self, reason: LimitReason) -> u64 {
        match reason {
            LimitReason::CongestionWindow => self.cwnd,
            LimitReason::SocketBuffer => self.sock_buf,
            LimitReason::HighWater => self.high_water,
            LimitReason::VanillaMax => self.vanilla_max,
        }
    }

    /// Every reason with its count, in [`LimitReason::ALL`]'s order.
    pub fn by_reason(&self) -> [(LimitReason, u64); 4] {
        LimitReason::ALL.map(|r| (r, self.get(r)))
    }

    fn count(&mut self, reason: LimitReason) {
        let counter = match reason {
            LimitReason::CongestionWindow => &mut self.cwnd,
            LimitReason::SocketBuffer => &mut self.sock_buf,
            LimitReason::HighWater => &mut self.high_water,
            LimitReason::VanillaMax => &mut self.vanilla_max,
        };
        *counter += 1;
    }
}

/// The scheduler's distributions. Field names end in their unit and are the names the
/// tools publish them under.
#[derive(Clone)]
pub struct SchedHistograms {
    /// Cells written per run.
    pub cells_per_run: Histogram<u64>,
    /// Bytes granted per run (sum of the run's grants, clamped to the histogram's range).
    pub bytes_granted_per_run: Histogram<u64>,
    /// Time a cell waited in the relay queue (enqueue to written), microseconds.
    pub relay_queue_us: Histogram<u64>,
    /// Measured (SO_TIMESTAMPING, sampled sends): write into the socket to the packet
    /// entering the qdisc (SCHED stamp), microseconds.
    pub kernel_sched_us: Histogram<u64>,
    /// Measured: write into the socket to the packet leaving the stack for the driver (SND
    /// stamp): the kernel send queue time, microseconds. The "kernel queue" figure.
    pub kernel_queue_us: Histogram<u64>,
    /// Measured: write into the socket to the byte's cumulative ACK, microseconds.
    pub kernel_ack_us: Histogram<u64>,
    /// Model, not a measurement: a socket's unsent bytes over its rate, notsent /
    /// (cwnd*mss/rtt), microseconds, one sample per KIST grant.
    pub kernel_queue_estimated_us: Histogram<u64>,
    /// The same model sampled by the engine on a timer for every busy socket, whatever the
    /// scheduler (Vanilla takes no snapshots of its own).
    pub kernel_queue_estimated_sampled_us: Histogram<u64>,
}

/// A point of the kernel's send path that a transmit timestamp marks, in the order a byte
/// passes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum KernelStage {
    /// The packet entered the qdisc (SCM_TSTAMP_SCHED).
    Sched = 0,
    /// The packet was handed to the driver (SCM_TSTAMP_SND).
    Sent = 1,
    /// The byte was acknowledged (SCM_TSTAMP_ACK).
    Acked = 2,
}

impl SchedHistograms {
    /// Empty histograms (about 100 KiB each).
    fn new() -> Self {
        SchedHistograms {
            cells_per_run: histogram(MAX_RECORDED_CELLS_PER_RUN),
            bytes_granted_per_run: histogram(MAX_RECORDED_BYTES_PER_RUN),
            relay_queue_us: histogram(MAX_RECORDED_US),
            kernel_sched_us: histogram(MAX_RECORDED_US),
            kernel_queue_us: histogram(MAX_RECORDED_US),
            kernel_ack_us: histogram(MAX_RECORDED_US),
            kernel_queue_estimated_us: histogram(MAX_RECORDED_US),
            kernel_queue_estimated_sampled_us: histogram(MAX_RECORDED_US),
        }
    }
}

impl fmt::Debug for SchedHistograms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sample counts only: the buckets are thousands of lines.
        f.debug_struct("SchedHistograms")
            .field("cells_per_run", &self.cells_per_run.len())
            .field("bytes_granted_per_run", &self.bytes_granted_per_run.len())
            .field("relay_queue_us", &self.relay_queue_us.len())
            .field("kernel_sched_us", &self.kernel_sched_us.len())
            .field("kernel_queue_us", &self.kernel_queue_us.len())
            .field("kernel_ack_us", &self.kernel_ack_us.len())
            .field(
                "kernel_queue_estimated_us",
                &self.kernel_queue_estimated_us.len(),
            )
            .field(
                "kernel_queue_estimated_sampled_us",
                &self.kernel_queue_estimated_sampled_us.len(),
            )
            .finish()
    }
}

impl fmt::Debug for SchedMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedMetrics")
            .field("runs", &self.runs)
            .field("grants", &self.grants)
            .field("cells_written", &self.cells_written)
            .field("bytes_written", &self.bytes_written)
            .field("flushes", &self.flushes)
            .field("exhausted", &self.exhausted)
            .field("histograms", &self.histograms)
            .finish_non_exhaustive()
    }
}

impl Default for SchedMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram(high: u64) -> Histogram<u64> {
    match Histogram::new_with_bounds(1, high, SIGFIG) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
        // sigfig <= 5); `metrics_construct` tests them.
        Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
    }
}

impl SchedMetrics {
    /// Zeroed metrics; allocates the histograms (about 100 KiB each).
    pub fn new() -> Self {
        SchedMetrics {
            runs: 0,
            grants: 0,
            bytes_granted: 0,
            cells_written: 0,
            bytes_written: 0,
            flushes: 0,
            grants_cwnd_full: 0,
            exhausted: ExhaustedGrants::default(),
            histograms: SchedHistograms::new(),
            run_bytes_granted: 0,
            run_estimates: EqualRun::default(),
        }
    }

    /// A cell queued at `enqueued` was written at `now`.
    pub fn record_relay_queue_time(&mut self, enqueued: Instant, now: Instant) {
        self.record_relay_queue_times(enqueued, now, 1);
    }

    /// `cells` cells queued at `enqueued` were written at `now` (one histogram update).
    pub fn record_relay_queue_times(&mut self, enqueued: Instant, now: Instant, cells: u64) {
        // u64 nanoseconds, not `Duration::as_micros` (u128 arithmetic).
        let us = now.as_nanos().saturating_sub(enqueued.as_nanos()) / 1000;
        self.histograms
            .relay_queue_us
            .saturating_record_n(us.clamp(1, MAX_RECORDED_US), cells);
    }

    /// A measured kernel delay of one sampled send: `us` from its write to `stage`. The
    /// engine measures it (the scheduler never reads a clock).
    pub fn record_kernel_stage(&mut self, stage: KernelStage, us: u64) {
        let h = match stage {
            KernelStage::Sched => &mut self.histograms.kernel_sched_us,
            KernelStage::Sent => &mut self.histograms.kernel_queue_us,
            KernelStage::Acked => &mut self.histograms.kernel_ack_us,
        };
        h.saturating_record(us.clamp(1, MAX_RECORDED_US));
    }

    /// An estimated kernel queue time for one socket (see `limit::kernel_queue_time_us`).
    pub fn record_kernel_queue_estimate(&mut self, us: u64) {
        self.record_kernel_queue_estimates(us.clamp(1, MAX_RECORDED_US), 1);
    }

    /// [`Self::record_kernel_queue_estimate`] inside a scheduler run: in the histogram once
    /// the run ends ([`Self::record_run`]), so equal values in a row (sockets with nothing
    /// unsent all estimate 0) cost one histogram update.
    #[inline]
    pub(crate) fn note_kernel_queue_estimate(&mut self, us: u64) {
        if let Some((value, count)) = self.run_estimates.push(us.clamp(1, MAX_RECORDED_US)) {
            self.record_kernel_queue_estimates(value, count);
        }
    }

    fn record_kernel_queue_estimates(&mut self, us: u64, count: u64) {
        self.histograms
            .kernel_queue_estimated_us
            .saturating_record_n(us, count);
    }

    /// One timer sample of a socket: records its estimated kernel queue time if the socket
    /// is busy (bytes unsent or unacknowledged) and its rate is known; idle sockets are not
    /// counted, so the distribution is over time spent sending. Returns whether it recorded.
    pub fn sample_kernel_queue(&mut self, socket: &SocketSnapshot) -> bool {
        let (Some(tcp), Some(notsent)) = (socket.tcp, socket.notsent) else {
            return false;
        };
        if notsent == 0 && tcp.unacked == 0 {
            return false;
        }
        let Some(us) = kernel_queue_time_us(&tcp, notsent) else {
            return false;
        };
        // A zero estimate is a real sample ("nothing waits"); the histogram's floor is 1 us.
        self.histograms
            .kernel_queue_estimated_sampled_us
            .saturating_record(us.clamp(1, MAX_RECORDED_US));
        true
    }

    pub(crate) fn record_grant(&mut self, max_bytes: u64, reason: LimitReason) {
        self.grants += 1;
        self.bytes_granted = self.bytes_granted.saturating_add(max_bytes);
        self.run_bytes_granted = self.run_bytes_granted.saturating_add(max_bytes);
        if reason == LimitReason::CongestionWindow {
            self.grants_cwnd_full += 1;
        }
    }

    pub(crate) fn record_exhausted(&mut self, reason: LimitReason) {
        self.exhausted.count(reason);
    }

    pub(crate) fn record_run(&mut self, cells: u64, bytes: u64, flushes: u64) {
        if let Some((value, count)) = self.run_estimates.take() {
            self.record_kernel_queue_estimates(value, count);
        }
        self.runs += 1;
        self.cells_written += cells;
        self.bytes_written = self.bytes_written.saturating_add(bytes);
        self.flushes += flushes;
        self.histograms
            .cells_per_run
            .saturating_record(cells.clamp(1, MAX_RECORDED_CELLS_PER_RUN));
        self.histograms
            .bytes_granted_per_run
            .saturating_record(self.run_bytes_granted.clamp(1, MAX_RECORDED_BYTES_PER_RUN));
        self.run_bytes_granted = 0;
    }
}

/// The relay-queue times of one batch of written cells, recorded per run of cells that were
/// queued at the same instant (cells that arrived in one receive share it), so the histogram
/// sees one update per run instead of one per cell. The counts are exact; what is left when
/// it is dropped is recorded then.
#[derive(Debug)]
pub struct QueueTimes<'a> {
    metrics: &'a mut SchedMetrics,
    now: Instant,
    /// The enqueue instant of the run being counted, and its length.
    run: EqualRun<Instant>,
}

impl<'a> QueueTimes<'a> {
    /// Collects the queue times of cells written at `now` into `metrics`.
    pub fn new(metrics: &'a mut SchedMetrics, now: Instant) -> Self {
        QueueTimes {
            metrics,
            now,
            run: EqualRun::default(),
        }
    }

    /// A cell that was queued at `enqueued` was written. Per cell: one compare and an add.
    #[inline]
    pub fn cell(&mut self, enqueued: Instant) {
        if let Some((at, n)) = self.run.push(enqueued) {
            self.metrics.record_relay_queue_times(at, self.now, n);
        }
    }
}

impl Drop for QueueTimes<'_> {
    fn drop(&mut self) {
        if let Some((at, n)) = self.run.take() {
            self.metrics.record_relay_queue_times(at, self.now, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn metrics_construct_and_record() {
        let mut m = SchedMetrics::new();
        let t0 = Instant::from_millis(100);
        m.record_relay_queue_time(t0, t0 + Duration::from_millis(5));
        m.record_relay_queue_time(t0, t0 + Duration::from_secs(3600));
        m.record_relay_queue_time(t0 + Duration::from_secs(1), t0);
        assert_eq!(m.histograms.relay_queue_us.len(), 3);
        assert_eq!(m.histograms.relay_queue_us.min(), 1);
        assert!(m
            .histograms
            .relay_queue_us
            .equivalent(m.histograms.relay_queue_us.max(), MAX_RECORDED_US));
        assert!(m
            .histograms
            .relay_queue_us
            .equivalent(m.histograms.relay_queue_us.value_at_quantile(0.5), 5000));
        m.record_grant(1000, LimitReason::CongestionWindow);
        m.record_grant(u64::MAX, LimitReason::SocketBuffer);
        assert_eq!(
            (m.grants, m.bytes_granted, m.grants_cwnd_full),
            (2, u64::MAX, 1)
        );
        m.record_exhausted(LimitReason::HighWater);
        m.record_run(0, 0, 0);
        m.record_run(12, 12 * 514, 2);
        assert_eq!((m.runs, m.cells_written, m.flushes), (2, 12, 2));
        assert_eq!(m.exhausted.high_water, 1);
        m.record_exhausted(LimitReason::VanillaMax);
        m.record_exhausted(LimitReason::VanillaMax);
        // The labels are the exported metric's `by` values: changing one breaks dashboards.
        let labelled = m.exhausted.by_reason().map(|(r, n)| (r.label(), n));
        assert_eq!(
            labelled,
            [
                ("cwnd", 0),
                ("sock_buf", 0),
                ("high_water", 1),
                ("vanilla_max", 2)
            ]
        );
        assert_eq!(m.histograms.cells_per_run.max(), 12);
        // The two grants went into the first run's total (clamped), none into the second.
        assert!(m.histograms.bytes_granted_per_run.equivalent(
            m.histograms.bytes_granted_per_run.max(),
            MAX_RECORDED_BYTES_PER_RUN
        ));
        assert_eq!(m.histograms.bytes_granted_per_run.min(), 1);
    }

    #[test]
    fn queue_times_are_recorded_exactly_per_run_of_equal_instants() {
        let mut m = SchedMetrics::new();
        let now = Instant::from_millis(10);
        {
            let mut q = QueueTimes::new(&mut m, now);
            for at in [7, 7, 7, 9, 9, 7] {
                q.cell(Instant::from_millis(at));
            }
        }
        let h = &m.histograms.relay_queue_us;
        assert_eq!(h.len(), 6);
        assert_eq!(h.count_at(3000), 4, "four cells waited 3 ms");
        assert_eq!(h.count_at(1000), 2, "two cells waited 1 ms");
        // Nothing written, nothing recorded.
        drop(QueueTimes::new(&mut m, now));
        assert_eq!(m.histograms.relay_queue_us.len(), 6);
    }

    #[test]
    fn kernel_queue_estimates_are_recorded_exactly_when_the_run_ends() {
        let mut m = SchedMetrics::new();
        for us in [0, 0, 0, 250, 250, 0] {
            m.note_kernel_queue_estimate(us);
        }
        assert_eq!(
            m.histograms.kernel_queue_estimated_us.len(),
            5,
            "the last run waits"
        );
        m.record_run(6, 6 * 514, 1);
        let h = &m.histograms.kernel_queue_estimated_us;
        assert_eq!(h.len(), 6);
        assert_eq!(
            h.count_at(1),
            4,
            "zero estimates are kept at the 1 us floor"
        );
        assert_eq!(h.count_at(250), 2);
        // A run without estimates adds none; outside a run one is recorded at once.
        m.record_run(0, 0, 0);
        assert_eq!(m.histograms.kernel_queue_estimated_us.len(), 6);
        m.record_kernel_queue_estimate(250);
        assert_eq!(m.histograms.kernel_queue_estimated_us.count_at(250), 3);
    }

    #[test]
    fn timer_samples_count_only_busy_sockets_with_a_known_rate() {
        use crate::socket::TcpInfo;
        let tcp = |unacked| TcpInfo {
            cwnd: 10,
            unacked,
            mss: 1448,
            rtt_us: 40_000,
        };
        let snap = |tcp, notsent| SocketSnapshot { tcp, notsent };
        let mut m = SchedMetrics::new();
        // 10 * 1448 bytes per 40 ms: 28,960 unsent bytes wait 80 ms.
        assert!(m.sample_kernel_queue(&snap(Some(tcp(3)), Some(28_960))));
        // Busy (in flight) with nothing unsent: a real zero-wait sample (floor 1 us).
        assert!(m.sample_kernel_queue(&snap(Some(tcp(3)), Some(0))));
        // Idle, unknown rate, or no TCP_INFO: not counted.
        assert!(!m.sample_kernel_queue(&snap(Some(tcp(0)), Some(0))));
        let no_rtt = TcpInfo {
            rtt_us: 0,
            ..tcp(3)
        };
        assert!(!m.sample_kernel_queue(&snap(Some(no_rtt), Some(100))));
        assert!(!m.sample_kernel_queue(&snap(None, Some(100))));
        assert_eq!(m.histograms.kernel_queue_estimated_sampled_us.len(), 2);
        assert!(m
            .histograms
            .kernel_queue_estimated_sampled_us
            .equivalent(m.histograms.kernel_queue_estimated_sampled_us.max(), 80_000));
        assert_eq!(m.histograms.kernel_queue_estimated_sampled_us.min(), 1);
        // The scheduler's own per-grant histogram is untouched, and so are the measured ones.
        assert!(m.histograms.kernel_queue_estimated_us.is_empty());
        assert!(m.histograms.kernel_queue_us.is_empty());
    }

    #[test]
    fn measured_stages_go_to_their_own_histograms() {
        let mut m = SchedMetrics::new();
        m.record_kernel_stage(KernelStage::Sched, 0);
        m.record_kernel_stage(KernelStage::Sent, 250);
        m.record_kernel_stage(KernelStage::Sent, 300);
        m.record_kernel_stage(KernelStage::Acked, 40_000);
        let h = &m.histograms;
        assert_eq!(
            (
                h.kernel_sched_us.len(),
                h.kernel_queue_us.len(),
                h.kernel_ack_us.len()
            ),
            (1, 2, 1)
        );
        assert_eq!(
            h.kernel_sched_us.min(),
            1,
            "a zero delay is floored at 1 us"
        );
        assert!(h.kernel_queue_us.equivalent(h.kernel_queue_us.max(), 300));
        assert!(h.kernel_ack_us.equivalent(h.kernel_ack_us.max(), 40_000));
        assert!(h.kernel_queue_estimated_us.is_empty());
        assert!(h.kernel_queue_estimated_sampled_us.is_empty());
    }
}
