//! Fixtures for the pure crates (kistrel-sched, kistrel-pathsel), shared by `micro.rs` and
//! `icount_pure.rs`. Deterministic: fixed seeds, virtual time that advances by a fixed step.

// Each bench binary uses a different subset of the fixtures.
#![allow(dead_code)]

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use kistrel_pathsel::dir::synthetic_directory;
use kistrel_pathsel::{
    CbtConfig, CbtEstimator, CbtFit, ExitTarget, Path, PathConfig, PathSelector,
};
use kistrel_sched::{
    Batch, CellEwma, CellSource, ChannelSnapshot, CircuitMux, EwmaConfig, Instant, Kist, Priority,
    QueueTimes, RunReport, SchedConfig, Scheduler, SocketSnapshot, TcpInfo, Vanilla, CELL_WIRE_LEN,
};

/// Cells written through the EWMA mux, or paths picked, per measured call.
pub const PICKS: usize = 64;
/// Circuits per channel in the KIST runs (1k circuits = 100 channels, 10k = 1000).
pub const CIRCUITS_PER_CHANNEL: u32 = 10;
/// Cells each channel is granted per KIST run (an empty window of this many cells).
pub const CELLS_PER_CHANNEL: u32 = 16;

// ----- EWMA --------------------------------------------------------------------------------

/// One channel's circuit mux with `circuits` active circuits, and its virtual clock.
pub struct MuxInput {
    pub mux: CircuitMux<u32>,
    pub ewma: Vec<CellEwma>,
    pub now: Instant,
}

pub fn mux_input(circuits: u32) -> MuxInput {
    let mut ewma = vec![CellEwma::new(); circuits as usize];
    let mut mux = CircuitMux::new(&EwmaConfig::default());
    for (circ, e) in (0..circuits).zip(ewma.iter_mut()) {
        mux.activate(Instant::ZERO, circ, e);
    }
    MuxInput {
        mux,
        ewma,
        now: Instant::from_millis(1),
    }
}

/// `PICKS` times: pick the quietest circuit and charge it one cell (Tor's EWMA circuitmux);
/// the clock moves 10 us per call. Returns the sum of the picked circuit ids.
pub fn run_mux(input: &mut MuxInput) -> u64 {
    input.now += Duration::from_micros(10);
    let mut sum = 0;
    for _ in 0..PICKS {
        let Some(circ) = input.mux.peek() else {
            panic!("every circuit stays active");
        };
        input
            .mux
            .note_written(input.now, circ, &mut input.ewma[circ as usize]);
        sum += u64::from(circ);
    }
    sum
}

// ----- KIST --------------------------------------------------------------------------------

/// Engine stand-in: every circuit of every channel always has cells (no queues), so a run
/// measures the scheduler and the muxes only.
pub struct Backlog {
    muxes: Vec<CircuitMux<u32>>,
    ewma: Vec<CellEwma>,
}

impl CellSource<u32> for Backlog {
    fn best_priority(&self, now: Instant, chan: u32) -> Option<Priority> {
        self.muxes.get(chan as usize)?.best_priority(now)
    }

    fn write_cells(
        &mut self,
        now: Instant,
        chan: u32,
        max_cells: u32,
        queue_times: &mut QueueTimes<'_>,
    ) -> Batch {
        let Some(mux) = self.muxes.get_mut(chan as usize) else {
            return Batch::default();
        };
        // The engine's loop (`Relay::write_cells`): one `peek` per stretch of one circuit's
        // cells, `note_written_top` per cell.
        let mut cells = 0;
        while cells < max_cells {
            let Some(circ) = mux.peek() else { break };
            let Some(ewma) = self.ewma.get_mut(circ as usize) else {
                break;
            };
            loop {
                let still_top = mux.note_written_top(now, ewma);
                queue_times.cell(now);
                cells += 1;
                if !still_top || cells == max_cells {
                    break;
                }
            }
        }
        Batch {
            cells,
            bytes: u64::from(cells) * u64::from(CELL_WIRE_LEN),
            more: !mux.is_empty(),
        }
    }

    fn flush(&mut self, _chan: u32) {}
}

/// Most cells a circuit's history holds (see [`give_history`]).
pub const HISTORY_MAX_CELLS: u32 = 200;

/// Gives circuit `circ` a past of 0 to [`HISTORY_MAX_CELLS`] written cells (a fixed hash of
/// its number), so that circuits and channels have different EWMA counts as on a real relay.
/// With equal counts every comparison of the schedulers' priority structures would tie, which
/// makes some of them look cheaper than they are.
fn give_history(cfg: &EwmaConfig, circ: u32, ewma: &mut CellEwma) {
    let cells = circ.wrapping_mul(2_654_435_761).rotate_right(7) % (HISTORY_MAX_CELLS + 1);
    let mut scratch = CircuitMux::new(cfg);
    scratch.activate(Instant::ZERO, circ, ewma);
    for _ in 0..cells {
        scratch.note_written(Instant::ZERO, circ, ewma);
    }
    scratch.deactivate(circ, ewma);
}

/// A warmed-up scheduler over `channels` channels of `CIRCUITS_PER_CHANNEL` backlogged
/// circuits, and snapshots granting exactly `CELLS_PER_CHANNEL` cells per channel.
pub struct SchedInput<S> {
    pub sched: S,
    pub source: Backlog,
    pub snaps: Vec<ChannelSnapshot<u32>>,
    pub now: Instant,
}

/// KIST over the backlog.
pub type KistInput = SchedInput<Kist<u32>>;
/// Vanilla over the same backlog, writing the same cells per channel per run (equal load).
pub type VanillaInput = SchedInput<Vanilla<u32>>;

impl<S> SchedInput<S> {
    pub fn cells_per_run(&self) -> u64 {
        self.snaps.len() as u64 * u64::from(CELLS_PER_CHANNEL)
    }
}

fn sched_input<S: Scheduler<u32>>(mut sched: S, channels: u32) -> SchedInput<S> {
    let ewma_cfg = EwmaConfig::default();
    let mut ewma = vec![CellEwma::new(); (channels * CIRCUITS_PER_CHANNEL) as usize];
    let mut muxes = Vec::new();
    for ch in 0..channels {
        let mut mux = CircuitMux::new(&ewma_cfg);
        for i in 0..CIRCUITS_PER_CHANNEL {
            let circ = ch * CIRCUITS_PER_CHANNEL + i;
            give_history(&ewma_cfg, circ, &mut ewma[circ as usize]);
            mux.activate(Instant::ZERO, circ, &mut ewma[circ as usize]);
        }
        muxes.push(mux);
        sched.channel_writable(Instant::ZERO, ch);
        sched.channel_has_cells(Instant::ZERO, ch);
    }
    let snaps = (0..channels)
        .map(|ch| ChannelSnapshot {
            channel: ch,
            socket: SocketSnapshot {
                tcp: Some(TcpInfo {
                    cwnd: CELLS_PER_CHANNEL,
                    unacked: 0,
                    mss: CELL_WIRE_LEN,
                    rtt_us: 20_000,
                }),
                notsent: Some(0),
            },
            outbuf: 0,
        })
        .collect();
    let mut input = SchedInput {
        sched,
        source: Backlog { muxes, ewma },
        snaps,
        now: Instant::from_millis(1),
    };
    // One run first, so the measured ones find their buffers and histograms already grown.
    run_sched(&mut input);
    input
}

pub fn kist_input(channels: u32) -> KistInput {
    // Factor 0: the grant is exactly the empty congestion window (cwnd - unacked) * mss.
    let cfg = SchedConfig {
        sock_buf_size_factor: 0.0,
        ..SchedConfig::default()
    };
    sched_input(Kist::new(&cfg), channels)
}

/// Vanilla with its per-write maximum set to `CELLS_PER_CHANNEL` cells, so a run writes
/// exactly what a KIST run writes: the difference is the scheduling work alone.
pub fn vanilla_input(channels: u32) -> VanillaInput {
    let cfg = SchedConfig {
        vanilla_max_write: CELLS_PER_CHANNEL * CELL_WIRE_LEN,
        ..SchedConfig::default()
    };
    sched_input(Vanilla::new(&cfg), channels)
}

/// One scheduling round as the worker does it: every channel's send completed, then one run
/// over all of them (KIST uses the snapshots, Vanilla ignores them). Panics unless every
/// channel wrote its `CELLS_PER_CHANNEL` cells.
pub fn run_sched<S: Scheduler<u32>>(input: &mut SchedInput<S>) -> RunReport {
    input.now += Duration::from_millis(1);
    for snap in &input.snaps {
        input.sched.channel_writable(input.now, snap.channel);
    }
    let report = input.sched.run(input.now, &input.snaps, &mut input.source);
    assert_eq!(report.cells, input.cells_per_run(), "every grant used");
    report
}

/// [`run_sched`] for KIST (the bench names stay as they were).
pub fn run_kist(input: &mut KistInput) -> RunReport {
    run_sched(input)
}

// ----- pathsel -----------------------------------------------------------------------------

/// A circuit build timeout estimator holding 1000 build times (a full ring, proposal 151's
/// `ncircuits_to_observe`) from a heavy-tailed spread, and those samples to feed again.
pub struct CbtInput {
    pub est: CbtEstimator,
    pub samples: Vec<u32>,
    pub next: usize,
}

pub fn cbt_input() -> CbtInput {
    let mut est = CbtEstimator::new(CbtConfig::default());
    // Deterministic Pareto-like build times: 300 ms / U^(1/2.5), U uniform in (0, 1] from an
    // LCG (Knuth's MMIX constants), capped at 60 s.
    let mut x: u64 = 0x9e37_79b9;
    let samples: Vec<u32> = (0..1000)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = ((x >> 33) as f64 + 1.0) / (1u64 << 31) as f64;
            (300.0 / u.powf(1.0 / 2.5)).min(60_000.0) as u32
        })
        .collect();
    for &ms in &samples {
        est.add_build(ms);
    }
    CbtInput {
        est,
        samples,
        next: 0,
    }
}

/// A build completed: record it and refit (the fit is cached until the next change, so
/// every call does a full fit over the 1000 samples). The samples are fed again in the order
/// they filled the ring, so each one replaces itself and the fitted data never drifts.
pub fn run_cbt_fit(input: &mut CbtInput) -> CbtFit {
    input.est.add_build(input.samples[input.next]);
    input.next = (input.next + 1) % input.samples.len();
    input.est.fit().expect("1000 spread-out samples fit")
}

/// A path selector over a 7000-relay synthetic directory and its RNG.
pub struct PathInput {
    pub sel: PathSelector,
    pub rng: ChaCha8Rng,
    pub target: ExitTarget,
}

pub fn path_input() -> PathInput {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let dir = synthetic_directory(7000, &mut rng);
    PathInput {
        sel: PathSelector::new(&dir, PathConfig::default()),
        rng,
        target: ExitTarget {
            addr: None,
            port: 443,
        },
    }
}

/// `PICKS` weighted guard/middle/exit picks for port 443; returns the last path.
pub fn run_path_pick(input: &mut PathInput) -> Path {
    let mut last = None;
    for _ in 0..PICKS {
        last = Some(
            input
                .sel
                .select_path(&mut input.rng, Some(input.target), None)
                .expect("7000 relays give a path"),
        );
    }
    last.expect("PICKS > 0")
}
