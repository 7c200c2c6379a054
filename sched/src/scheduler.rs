//! The `Scheduler` trait the worker drives, the types it exchanges, configuration, and the
//! names of the schedulers (`Schedulers KIST,KISTLite,Vanilla`; [`crate::make`] builds one).
//!
//! ```text
//!  engine events ──> channel_has_cells / channel_writable / channel_closed
//!                                   │ (channel states, next_run)
//!  next_run() <= now ? ──> pending_channels(now) ──> socket snapshots (only those)
//!                                   │
//!  run(now, snapshots, &mut CellSource) ──> per channel: write_cells(chan, n), flush(chan)
//!                                   └──> RunReport, grants(), metrics()
//! ```
//!
//! The trait is object-safe so a worker can hold `Box<dyn Scheduler<K>>` chosen at start-up;
//! `pending_channels` therefore fills a caller's `Vec` instead of returning an iterator.

use core::fmt::Debug;
use core::hash::Hash;
use core::str::FromStr;
use core::time::Duration;

use crate::error::SchedError;
use crate::ewma::Priority;
use crate::limit::{LimitReason, DEFAULT_SOCK_BUF_SIZE_FACTOR};
use crate::metrics::{QueueTimes, SchedMetrics};
use crate::socket::SocketSnapshot;
use crate::time::Instant;

/// What a channel key must be. The engine's slab key newtype (`ChannelKey`) qualifies.
pub trait ChannelKey: Copy + Eq + Hash + Debug {}
impl<T: Copy + Eq + Hash + Debug> ChannelKey for T {}

/// A channel's scheduling state (Tor's `SCHED_CHAN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelState {
    /// Nothing queued and not known to be writable (also: a channel the scheduler never saw).
    Idle,
    /// Writable, nothing queued.
    WaitingForCells,
    /// Cells queued, but the socket has no room now.
    WaitingToWrite,
    /// Cells queued and may be written: takes part in the next run.
    Pending,
}

/// Which scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Kernel-informed: needs TCP_INFO and SIOCOUTQNSD (Linux).
    Kist,
    /// KIST's loop with a fixed high-water mark instead of kernel information.
    KistLite,
    /// Write up to a fixed amount whenever a channel is writable and has cells.
    Vanilla,
}

impl SchedulerKind {
    /// Tor's `Schedulers` default order.
    pub const TOR_DEFAULT: [SchedulerKind; 3] = [
        SchedulerKind::Kist,
        SchedulerKind::KistLite,
        SchedulerKind::Vanilla,
    ];

    /// The torrc spelling.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Kist => "KIST",
            SchedulerKind::KistLite => "KISTLite",
            SchedulerKind::Vanilla => "Vanilla",
        }
    }

    /// Parses a torrc `Schedulers` value such as `KIST,KISTLite,Vanilla` (names are
    /// case-insensitive, as in Tor; spaces around commas are allowed).
    pub fn parse_list(list: &str) -> Result<Vec<SchedulerKind>, SchedError> {
        list.split(',').map(|s| s.trim().parse()).collect()
    }
}

impl FromStr for SchedulerKind {
    type Err = SchedError;
    fn from_str(s: &str) -> Result<Self, SchedError> {
        SchedulerKind::TOR_DEFAULT
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| SchedError::UnknownScheduler { name: s.to_owned() })
    }
}

/// Scheduler configuration (torrc names in the field docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SchedConfig {
    /// `KISTSchedRunInterval`: the longest a pending channel waits for a run. Tor's default is
    /// 10 ms and the live network uses 2-3 ms; ours is 2 ms, and with `event_driven` most runs
    /// happen earlier, on events.
    pub run_interval: Duration,
    /// `KISTSockBufSizeFactor` (Tor default 1.0).
    pub sock_buf_size_factor: f64,
    /// KISTLite's staged-bytes high-water mark (Tor: 32 KiB of output buffer).
    pub kistlite_high_water: u32,
    /// Vanilla's bytes per write (32 KiB).
    pub vanilla_max_write: u32,
    /// Run KIST/KISTLite as soon as a channel becomes pending or a pending channel's send
    /// completes, with `run_interval` only as the bound (ours). `false` gives Tor's timing: a
    /// run at most once per `run_interval`.
    pub event_driven: bool,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            run_interval: Duration::from_millis(2),
            sock_buf_size_factor: DEFAULT_SOCK_BUF_SIZE_FACTOR,
            kistlite_high_water: 32 * 1024,
            vanilla_max_write: 32 * 1024,
            event_driven: true,
        }
    }
}

impl SchedConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), SchedError> {
        use crate::limit::CELL_WIRE_LEN;
        if !self.sock_buf_size_factor.is_finite() || self.sock_buf_size_factor < 0.0 {
            return Err(SchedError::BadSockBufSizeFactor(self.sock_buf_size_factor));
        }
        if self.run_interval.is_zero() {
            return Err(SchedError::ZeroRunInterval);
        }
        for (name, got) in [
            ("kistlite_high_water", self.kistlite_high_water),
            ("vanilla_max_write", self.vanilla_max_write),
        ] {
            if got < CELL_WIRE_LEN {
                return Err(SchedError::LimitBelowOneCell {
                    name,
                    got,
                    min: CELL_WIRE_LEN,
                });
            }
        }
        Ok(())
    }
}

/// A pending channel's socket reading for one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSnapshot<K> {
    /// The channel.
    pub channel: K,
    /// Kernel state (KISTLite and Vanilla ignore it; `SocketSnapshot::default()` is fine).
    pub socket: SocketSnapshot,
    /// Bytes the relay has staged for this socket but not yet handed to the kernel.
    pub outbuf: u32,
}

/// What one [`CellSource::write_cells`] call moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Cells written.
    pub cells: u32,
    /// Bytes those cells took in the staged send buffer (normally `cells * CELL_WIRE_LEN`).
    pub bytes: u64,
    /// Whether the channel still has cells queued afterwards.
    pub more: bool,
}

/// The engine side of a run: per-channel circuit queues and muxes.
///
/// The scheduler calls it once per channel per run, never per cell: the per-cell loop is
/// the source's own (no dynamic call, one channel lookup per batch).
pub trait CellSource<K> {
    /// The priority of `chan`'s best circuit (its `CircuitMux::best_priority`), `None` if it
    /// has no cells.
    fn best_priority(&self, now: Instant, chan: K) -> Option<Priority>;
    /// Moves up to `max_cells` cells of `chan` into the channel's staged send buffer, each
    /// from the circuit its mux offers at that moment (lowest EWMA; `note_written` after
    /// every cell), and reports each cell's relay-queue time to `queue_times`.
    fn write_cells(
        &mut self,
        now: Instant,
        chan: K,
        max_cells: u32,
        queue_times: &mut QueueTimes<'_>,
    ) -> Batch;
    /// The channel's grant for this run is used: hand its staged bytes to the kernel now
    /// (the engine queues the channel's SEND, so sends go out in the order of the run).
    fn flush(&mut self, chan: K);
}

/// What one channel was allowed in a run, and what it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteGrant<K> {
    /// The channel.
    pub channel: K,
    /// Bytes it could be given (the run writes whole cells, never past this).
    pub max_bytes: u64,
    /// What bounded `max_bytes`.
    pub limited_by: LimitReason,
    /// Bytes actually written.
    pub written: u64,
}

/// Totals of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Channels given a grant.
    pub channels: u32,
    /// Cells written.
    pub cells: u64,
    /// Bytes charged for them.
    pub bytes: u64,
    /// Flushes requested.
    pub flushes: u32,
}

/// A cell scheduler. One per worker; all calls take the worker's `now`.
pub trait Scheduler<K>: Debug {
    /// Which one this is.
    fn kind(&self) -> SchedulerKind;
    /// Whether `run` needs `SocketSnapshot::tcp` and `notsent` (KIST).
    fn needs_tcp_info(&self) -> bool {
        self.kind() == SchedulerKind::Kist
    }
    /// Cells were queued on `chan` (its mux became non-empty).
    fn channel_has_cells(&mut self, now: Instant, chan: K);
    /// `chan` can take more bytes: a send completed, or the channel just opened.
    fn channel_writable(&mut self, now: Instant, chan: K);
    /// `chan` closed: forget it.
    fn channel_closed(&mut self, chan: K);
    /// `chan`'s state (`Idle` if unknown).
    fn channel_state(&self, chan: K) -> ChannelState;
    /// Appends the channels to snapshot for a run at `now`: only `Pending` ones, never all
    /// sockets (KIST before its tick: only those that events woke since the last run).
    fn pending_channels(&self, now: Instant, out: &mut Vec<K>);
    /// When the next run is due (`<= now` means run now), `None` if nothing is pending.
    #[must_use]
    fn next_run(&self) -> Option<Instant>;
    /// One run: grants per pending channel, then cells in priority order through `source`.
    /// Calling it early or with stale snapshots is harmless (non-pending entries are skipped).
    fn run(
        &mut self,
        now: Instant,
        snaps: &[ChannelSnapshot<K>],
        source: &mut dyn CellSource<K>,
    ) -> RunReport;
    /// The last run's grants.
    fn grants(&self) -> &[WriteGrant<K>];
    /// Figures since creation.
    fn metrics(&self) -> &SchedMetrics;
    /// For the engine's timer samples (`SchedMetrics::sample_kernel_queue`).
    fn metrics_mut(&mut self) -> &mut SchedMetrics;
}
