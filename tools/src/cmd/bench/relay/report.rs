//! The `kistrel.bench-relay/1` report: every phase as measured, and per worker count (a
//! point of the scaling curve) the median of each figure over rounds with its 95%
//! bootstrap interval and n; every ratio taken within a round.
//!
//! ```text
//!   round r:  forwarder-w1 relay-w1 forwarder-w2 relay-w2     (ABBA: odd rounds reversed)
//!   point w:  relay / forwarder      = median_r( relay-wN_r / forwarder-wN_r )
//!             relay speedup vs w1    = median_r( relay-wN_r / relay-w1_r )
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use super::plan::{Condition, CpuPlan, Target};
use super::record::PhaseRecord;
use crate::cmd::bench::plot::{Curve, CurvePoint};
use crate::cmd::bench::run::{Figure, Machine};
use crate::placement::CpuList;
use crate::stats::{ratio, Estimate};

/// The schema name; bump the number when the shape changes (a test checks the shape
/// against benches/bench-relay-schema.txt).
pub(in crate::cmd::bench) const SCHEMA: &str = "kistrel.bench-relay/1";

/// What was asked for.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct RelayConfig {
    /// `local` (this bench starts relay and forwarder) or `load-only` (they run elsewhere).
    pub mode: &'static str,
    /// Rounds.
    pub rounds: usize,
    /// Warm-up before each window, seconds.
    pub warmup_s: f64,
    /// The measured window of each phase, seconds.
    pub window_s: f64,
    /// Worker counts (the points of the curve).
    pub workers: Vec<u32>,
    /// Pump/sink pairs.
    pub pumps: usize,
    /// Links per pump.
    pub connections_per_pump: u32,
    /// Circuits per link.
    pub circuits_per_connection: u32,
    /// `forward`, `backward` or `both`.
    pub directions: &'static str,
    /// The relay's and the load side's I/O backend.
    pub backend: &'static str,
    /// `plain`: the relay under test runs `Links = "plain"` (the load side speaks no TLS).
    pub links: &'static str,
    /// Seed of the bootstrap intervals.
    pub seed: u64,
    /// CPU burnt per data cell by the load side, ns (0: none; the load-limit test).
    pub load_burn_ns: u64,
}

/// Where things ran.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct RelayPlacement {
    /// Whether target and load processes were pinned.
    pub pinned: bool,
    /// The split (`None` when not pinned).
    pub cpus: Option<CpuPlan>,
    /// Why not pinned, or what is shared.
    pub note: Option<String>,
}

/// One round: its order and its phases.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct RoundRecord {
    /// 1-based.
    pub round: usize,
    /// Condition labels in the order run.
    pub order: Vec<String>,
    /// The phases, in that order.
    pub phases: Vec<PhaseRecord>,
}

/// One target's figures at one point, over rounds (`None`: no finite value in some round).
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct TargetFigures {
    /// Relay cells delivered per second.
    pub cells_per_s: Option<Estimate>,
    /// Per worker.
    pub cells_per_s_per_core: Option<Estimate>,
    /// Gbit/s of cells (514 bytes) per worker.
    pub gbit_per_s_per_core: Option<Estimate>,
    /// Cells per CPU second of the target.
    pub cells_per_cpu_s: Option<Estimate>,
    /// CPU seconds per GiB of cells.
    pub cpu_s_per_gib: Option<Estimate>,
    /// Fraction of the target's cores busy.
    pub target_utilization: Option<Estimate>,
    /// Fraction of the load side's CPUs busy.
    pub load_utilization: Option<Estimate>,
    /// The target's demand (CPU + run-queue wait) per core.
    pub target_demand: Option<Estimate>,
    /// The load side's demand per CPU it can keep busy.
    pub load_demand: Option<Estimate>,
    /// Rounds in which the load side was the limit.
    pub load_limited_rounds: usize,
}

/// One point of the scaling curve.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct Point {
    /// Workers (relay) and threads (forwarder).
    pub workers: u32,
    /// The target's CPUs (`None`: not pinned).
    pub cpus: Option<CpuList>,
    /// Whether the target shared CPUs with the load side.
    pub shares_load_cpus: bool,
    /// The relay.
    pub relay: TargetFigures,
    /// The forwarder (`None` in load-only mode without `--forwarder`).
    pub forwarder: Option<TargetFigures>,
    /// Relay cells/s / forwarder cells/s, per round.
    pub relay_vs_forwarder: Option<Estimate>,
    /// Relay cells per CPU-s / forwarder cells per CPU-s, per round (independent of which
    /// side was the limit).
    pub efficiency_vs_forwarder: Option<Estimate>,
    /// Relay cells/s here / relay cells/s at the first point, per round.
    pub relay_speedup: Option<Estimate>,
    /// Forwarder cells/s here / at the first point, per round.
    pub forwarder_speedup: Option<Estimate>,
}

/// The `kistrel.bench-relay/1` report.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct RelayReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// What was asked for.
    pub config: RelayConfig,
    /// The machine.
    pub machine: Machine,
    /// Where things ran.
    pub placement: RelayPlacement,
    /// `abba`: round 1 as listed, round 2 reversed, ...
    pub order: &'static str,
    /// Condition labels, round 1's order.
    pub conditions: Vec<String>,
    /// The headline figures (see `kistrel bench relay --help`).
    pub figures: BTreeMap<String, Figure>,
    /// The scaling curve.
    pub points: Vec<Point>,
    /// Every phase.
    pub rounds: Vec<RoundRecord>,
    /// Some phase was load-limited.
    pub load_limited: bool,
    /// Every phase delivered every cell it sent.
    pub conserved: bool,
    /// Remarks a reader needs (shared CPUs, load-limited phases).
    pub notes: Vec<String>,
}

/// Every phase of condition `c`, in round order.
fn phases_of<'a>(rounds: &'a [RoundRecord], c: &Condition) -> Vec<Option<&'a PhaseRecord>> {
    let label = c.label();
    rounds
        .iter()
        .map(|r| r.phases.iter().find(|p| p.condition == label))
        .collect()
}

/// The estimate of `f` over `phases` (every round must have the phase and a value).
fn over(
    phases: &[Option<&PhaseRecord>],
    seed: u64,
    f: impl Fn(&PhaseRecord) -> Option<f64>,
) -> Option<Estimate> {
    let values: Option<Vec<f64>> = phases.iter().map(|p| p.and_then(&f)).collect();
    Estimate::of(&values?, seed)
}

/// The estimate of `f(a) / f(b)` per round.
fn ratio_over(
    a: &[Option<&PhaseRecord>],
    b: &[Option<&PhaseRecord>],
    seed: u64,
    f: impl Fn(&PhaseRecord) -> Option<f64>,
) -> Option<Estimate> {
    let values: Option<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(x, y)| ratio(x.and_then(&f)?, y.and_then(&f)?))
        .collect();
    Estimate::of(&values?, seed)
}

fn target_figures(phases: &[Option<&PhaseRecord>], seed: u64) -> TargetFigures {
    TargetFigures {
        cells_per_s: over(phases, seed, |p| Some(p.throughput.cells_per_s)),
        cells_per_s_per_core: over(phases, seed, |p| Some(p.throughput.cells_per_s_per_core)),
        gbit_per_s_per_core: over(phases, seed, |p| Some(p.throughput.gbit_per_s_per_core)),
        cells_per_cpu_s: over(phases, seed, |p| p.cost.cells_per_cpu_s),
        cpu_s_per_gib: over(phases, seed, |p| p.cost.cpu_s_per_gib),
        target_utilization: over(phases, seed, |p| p.cost.target_utilization),
        load_utilization: over(phases, seed, |p| p.load_cost.load_utilization),
        target_demand: over(phases, seed, |p| p.cost.target_demand),
        load_demand: over(phases, seed, |p| p.load_cost.load_demand),
        load_limited_rounds: phases.iter().flatten().filter(|p| p.load_limited).count(),
    }
}

/// The points of the curve, one per worker count, from the rounds.
pub(super) fn points(
    rounds: &[RoundRecord],
    workers: &[u32],
    forwarder: bool,
    plan: Option<&CpuPlan>,
    seed: u64,
) -> Vec<Point> {
    let cond = |target, workers| Condition { target, workers };
    let first = workers.first().copied().unwrap_or(1);
    let relay_first = phases_of(rounds, &cond(Target::Relay, first));
    let fwd_first = phases_of(rounds, &cond(Target::Forwarder, first));
    workers
        .iter()
        .map(|&w| {
            let relay = phases_of(rounds, &cond(Target::Relay, w));
            let fwd = phases_of(rounds, &cond(Target::Forwarder, w));
            let (cpus, shares) = match plan.map(|p| p.target(w)) {
                Some((c, s)) => (Some(c), s),
                None => (None, false),
            };
            Point {
                workers: w,
                cpus,
                shares_load_cpus: shares,
                relay: target_figures(&relay, seed),
                forwarder: forwarder.then(|| target_figures(&fwd, seed)),
                relay_vs_forwarder: forwarder
                    .then(|| ratio_over(&relay, &fwd, seed, |p| Some(p.throughput.cells_per_s)))
                    .flatten(),
                efficiency_vs_forwarder: forwarder
                    .then(|| ratio_over(&relay, &fwd, seed, |p| p.cost.cells_per_cpu_s))
                    .flatten(),
                relay_speedup: ratio_over(&relay, &relay_first, seed, |p| {
                    Some(p.throughput.cells_per_s)
                }),
                forwarder_speedup: forwarder
                    .then(|| ratio_over(&fwd, &fwd_first, seed, |p| Some(p.throughput.cells_per_s)))
                    .flatten(),
            }
        })
        .collect()
}

fn figure(
    unit: &'static str,
    better: &'static str,
    definition: &'static str,
    e: Option<&Estimate>,
) -> Option<Figure> {
    Some(Figure {
        unit,
        better,
        definition,
        estimate: e?.clone(),
    })
}

/// The headline figures: the first point's relay figures and ratio, and each later
/// point's speedup over the first.
pub(super) fn figures(points: &[Point]) -> BTreeMap<String, Figure> {
    let mut out = BTreeMap::new();
    let Some(p) = points.first() else {
        return out;
    };
    let mut put = |name: String, f: Option<Figure>| {
        if let Some(f) = f {
            out.insert(name, f);
        }
    };
    let r = &p.relay;
    put(
        "relay_vs_forwarder".into(),
        figure(
            "ratio",
            "higher",
            "relay cells/s / forwarder cells/s, first worker count, per round",
            p.relay_vs_forwarder.as_ref(),
        ),
    );
    put(
        "relay_efficiency_vs_forwarder".into(),
        figure(
            "ratio",
            "higher",
            "relay cells per CPU-s / forwarder cells per CPU-s, first worker count",
            p.efficiency_vs_forwarder.as_ref(),
        ),
    );
    put(
        "relay_cells_per_s_per_core".into(),
        figure(
            "cells/s",
            "higher",
            "relay cells delivered per second per worker, first worker count",
            r.cells_per_s_per_core.as_ref(),
        ),
    );
    put(
        "relay_gbit_per_s_per_core".into(),
        figure(
            "Gbit/s",
            "higher",
            "relay cell bits (514 bytes a cell) per second per worker, first worker count",
            r.gbit_per_s_per_core.as_ref(),
        ),
    );
    put(
        "relay_cpu_s_per_gib".into(),
        figure(
            "CPU-s/GiB",
            "lower",
            "relay CPU seconds per 2^30 bytes of cells, first worker count",
            r.cpu_s_per_gib.as_ref(),
        ),
    );
    put(
        "relay_cells_per_cpu_s".into(),
        figure(
            "cells/CPU-s",
            "higher",
            "relay cells per CPU second of the relay process, first worker count",
            r.cells_per_cpu_s.as_ref(),
        ),
    );
    let first = p.workers;
    for q in points.iter().skip(1) {
        put(
            format!("relay_speedup_w{}_vs_w{first}", q.workers),
            figure(
                "ratio",
                "higher",
                "relay cells/s at this worker count / at the first, per round",
                q.relay_speedup.as_ref(),
            ),
        );
    }
    out
}

/// The scaling curves of `r` for the SVG: relay and forwarder Mcells/s against workers, the
/// relay's with its ideal line.
pub(super) fn curves(r: &RelayReport) -> Vec<Curve> {
    let point = |w: u32, e: Option<&Estimate>| {
        e.map(|e| CurvePoint {
            x: f64::from(w),
            median: e.median / 1e6,
            interval: e.ci95.map(|c| (c.low / 1e6, c.high / 1e6)),
            n: e.n,
        })
    };
    let relay = Curve {
        label: "relay".into(),
        points: r
            .points
            .iter()
            .filter_map(|p| point(p.workers, p.relay.cells_per_s.as_ref()))
            .collect(),
        ideal: true,
    };
    let forwarder = Curve {
        label: "plain TCP forwarder".into(),
        points: r
            .points
            .iter()
            .filter_map(|p| point(p.workers, p.forwarder.as_ref()?.cells_per_s.as_ref()))
            .collect(),
        ideal: false,
    };
    [relay, forwarder]
        .into_iter()
        .filter(|c| !c.points.is_empty())
        .collect()
}
