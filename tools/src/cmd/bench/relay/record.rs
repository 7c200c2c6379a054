//! One phase's figures, computed from two snapshots (pure: tested with made-up counters).
//!
//! ```text
//!   cells      = relay cells delivered to pumps and sinks in the window (data and acks,
//!                both ways): each one went into the target and out again once
//!   per core   = per worker (each worker on a CPU of its own, unless shares_load_cpus)
//!   CPU-s/GiB  = target CPU seconds / (cells x 514 bytes / 2^30)
//!   demand     = (CPU + run-queue wait seconds of every thread) / (window x CPUs): the
//!                share of the window a process wanted to run (on a shared machine CPU
//!                time alone stays low for a process that is always runnable)
//!   limit      = what held the throughput: the target (CPU >= 90% of its cores), the
//!                load side (its busiest single-threaded process's demand, or its CPUs'
//!                use, >= 90% while the target's CPU was not), shared CPUs
//!                (target and load on the same CPUs, together >= 90% of them), or neither
//! ```

use serde::Serialize;

use super::plan::{Condition, Target};
use crate::placement::CpuList;

/// Bytes of one cell on the wire (link protocol v4/v5).
pub(in crate::cmd::bench) const CELL_BYTES: f64 = kistrel_engine::wire::CELL_LEN as f64;
/// A process using at least this fraction of its CPUs counts as busy.
pub(in crate::cmd::bench) const BUSY: f64 = 0.9;

/// One load process's CPU over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(in crate::cmd::bench) struct LoadCpu {
    /// `pump0`, `sink0`, ...
    pub process: String,
    /// The CPU it was pinned to (`None`: not pinned).
    pub cpus: Option<CpuList>,
    /// CPU seconds in the window (`None`: unreadable).
    pub cpu_s: Option<f64>,
    /// Seconds its threads waited on a run queue in the window (`None`: unreadable).
    pub wait_s: Option<f64>,
}

/// What a phase measured, before any arithmetic.
#[derive(Debug, Clone)]
pub(in crate::cmd::bench) struct PhaseInput {
    pub round: usize,
    pub condition: Condition,
    pub window_s: f64,
    /// Cells delivered (cumulative) at the window's start and end.
    pub delivered: [u64; 2],
    /// Forward data cells received by the sinks, start and end.
    pub forward: [u64; 2],
    /// Backward data cells received by the pumps, start and end.
    pub backward: [u64; 2],
    /// The target's CPU seconds (cumulative) at the start and end.
    pub target_cpu: [Option<f64>; 2],
    /// The target's run-queue wait seconds (cumulative) at the start and end.
    pub target_wait: [Option<f64>; 2],
    pub load_cpu: Vec<LoadCpu>,
    /// CPUs the load side can keep busy.
    pub load_capacity: usize,
    pub target_cpus: Option<CpuList>,
    pub shares_load_cpus: bool,
    /// CPUs of the target and the load side together (0: unknown).
    pub machine_cpus: usize,
    /// How long the drain took (`None`: cells were lost).
    pub drain_s: Option<f64>,
    /// Each worker's (thread's) share of the cells (bytes) over the phase.
    pub worker_shares: Vec<f64>,
}

/// What held a phase's throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(in crate::cmd::bench) enum Limit {
    /// The target used at least 90% of its cores: the figure is the target's.
    Target,
    /// The load side used at least 90% of its CPUs while the target did not: the figure
    /// is a lower bound of the target's.
    Load,
    /// Target and load side share CPUs and together kept them at least 90% busy.
    SharedCpus,
    /// Neither was busy (windows, latency), or the target's CPU is unknown (load-only).
    Neither,
}

/// A phase's throughput (the target's: every cell counted went into it and out again).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(in crate::cmd::bench) struct Throughput {
    /// Relay cells delivered in the window (data and acks, both ways).
    pub cells: u64,
    /// Of them, forward data cells (pump to sink).
    pub forward_data_cells: u64,
    /// Backward data cells (sink to pump).
    pub backward_data_cells: u64,
    /// `cells / window_s`.
    pub cells_per_s: f64,
    /// `cells_per_s x 514 x 8 / 1e9`.
    pub gbit_per_s: f64,
    /// `cells_per_s / workers`.
    pub cells_per_s_per_core: f64,
    /// `gbit_per_s / workers`.
    pub gbit_per_s_per_core: f64,
}

/// What the target process cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(in crate::cmd::bench) struct TargetCost {
    /// The target's CPU seconds in the window (`None`: it runs elsewhere).
    pub target_cpu_s: Option<f64>,
    /// `target_cpu_s / (window_s x workers)`.
    pub target_utilization: Option<f64>,
    /// (CPU + run-queue wait seconds of its threads) / (window_s x workers): how much of
    /// the window its threads wanted a CPU (a thread kept off its CPU by another process
    /// still counts as busy, so a shared machine does not hide a saturated process).
    pub target_demand: Option<f64>,
    /// Cells per CPU second of the target.
    pub cells_per_cpu_s: Option<f64>,
    /// Target CPU seconds per GiB of cells (514 bytes each).
    pub cpu_s_per_gib: Option<f64>,
    /// The target's CPUs (`None`: not pinned, or elsewhere).
    pub target_cpus: Option<CpuList>,
    /// Whether the target ran on CPUs of the load side too.
    pub shares_load_cpus: bool,
    /// Each worker's share of the cells (relay: cells written, from its metrics; forwarder:
    /// bytes per thread), over the whole phase.
    pub worker_shares: Vec<f64>,
}

/// What the load side cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(in crate::cmd::bench) struct LoadCost {
    /// Each load process's CPU.
    pub load: Vec<LoadCpu>,
    /// Load CPU seconds / (window_s x the CPUs it can keep busy).
    pub load_utilization: Option<f64>,
    /// The busiest load process's (CPU + run-queue wait) seconds / window_s (each is one
    /// thread, so one at >= 90% holds the load side back), or the load side's CPU seconds /
    /// (window_s x the CPUs it can keep busy) when that is larger (its CPUs are full).
    pub load_demand: Option<f64>,
}

/// One phase in the report (the groups are flattened in the JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(in crate::cmd::bench) struct PhaseRecord {
    /// 1-based round.
    pub round: usize,
    /// `relay-w1`, ...
    pub condition: String,
    /// `relay` or `forwarder`.
    pub target: Target,
    /// Workers (threads).
    pub workers: u32,
    /// The measured window, seconds.
    pub window_s: f64,
    /// Cells and bits per second.
    #[serde(flatten)]
    pub throughput: Throughput,
    /// The target's CPU.
    #[serde(flatten)]
    pub cost: TargetCost,
    /// The load side's CPU.
    #[serde(flatten)]
    pub load_cost: LoadCost,
    /// What held the throughput (the target on its CPU, the load side on its demand).
    pub limit: Limit,
    /// `limit == load`: the load side, not the target, was the bottleneck.
    pub load_limited: bool,
    /// Every cell sent arrived (the drain ended with sent == received, both ways).
    pub conserved: bool,
    /// How long the drain took, seconds.
    pub drain_s: Option<f64>,
}

/// `b - a` of two cumulative readings.
fn delta(r: [Option<f64>; 2]) -> Option<f64> {
    match r {
        [Some(a), Some(b)] => Some(b - a),
        _ => None,
    }
}

/// What held the throughput: the target's CPU utilization, the load side's demand, the
/// shared CPUs' utilization (see [`Limit`]).
fn limit_of(target: Option<f64>, load: Option<f64>, machine: Option<f64>) -> Limit {
    if target.is_some_and(|u| u >= BUSY) {
        Limit::Target
    } else if load.is_some_and(|u| u >= BUSY) {
        Limit::Load
    } else if machine.is_some_and(|u| u >= BUSY) {
        Limit::SharedCpus
    } else {
        Limit::Neither
    }
}

impl PhaseRecord {
    /// The figures of `m`.
    pub(in crate::cmd::bench) fn compute(m: &PhaseInput) -> PhaseRecord {
        let cells = m.delivered[1].saturating_sub(m.delivered[0]);
        let window = m.window_s.max(f64::MIN_POSITIVE);
        let workers = f64::from(m.condition.workers.max(1));
        let cells_per_s = cells as f64 / window;
        let gbit_per_s = cells_per_s * CELL_BYTES * 8.0 / 1e9;
        let target_cpu_s = delta(m.target_cpu);
        let target_busy_s = target_cpu_s.zip(delta(m.target_wait)).map(|(c, w)| c + w);
        let gib = cells as f64 * CELL_BYTES / f64::from(1u32 << 30);
        let load_cpus = window * m.load_capacity.max(1) as f64;
        let load_cpu: Option<f64> = m.load_cpu.iter().map(|l| l.cpu_s).sum();
        // Each load process is one thread: the busiest one holds the load side back, and
        // so do its CPUs when the load processes together fill them.
        let load_demand: Option<f64> = m
            .load_cpu
            .iter()
            .map(|l| l.cpu_s.zip(l.wait_s).map(|(c, w)| (c + w) / window))
            .try_fold(0.0_f64, |max, d| Some(max.max(d?)))
            .zip(load_cpu)
            .map(|(busiest, total)| busiest.max(total / load_cpus));
        let target_demand = target_busy_s.map(|b| b / (window * workers));
        let machine = match (target_cpu_s, load_cpu) {
            (Some(t), Some(l)) if m.shares_load_cpus && m.machine_cpus > 0 => {
                Some((t + l) / (window * m.machine_cpus as f64))
            }
            _ => None,
        };
        // The target counts as the limit only on its own CPU time (a target kept waiting by
        // other processes has not shown its capacity); the load side already when its
        // busiest process wanted a CPU all the time (its figure is then a lower bound,
        // whoever took the CPU): the error this leans to is a lower bound flagged as such.
        let target_utilization = target_cpu_s.map(|c| c / (window * workers));
        let limit = limit_of(target_utilization, load_demand, machine);
        PhaseRecord {
            round: m.round,
            condition: m.condition.label(),
            target: m.condition.target,
            workers: m.condition.workers,
            window_s: m.window_s,
            throughput: Throughput {
                cells,
                forward_data_cells: m.forward[1].saturating_sub(m.forward[0]),
                backward_data_cells: m.backward[1].saturating_sub(m.backward[0]),
                cells_per_s,
                gbit_per_s,
                cells_per_s_per_core: cells_per_s / workers,
                gbit_per_s_per_core: gbit_per_s / workers,
            },
            cost: TargetCost {
                target_cpu_s,
                target_utilization,
                target_demand,
                cells_per_cpu_s: target_cpu_s.filter(|c| *c > 0.0).map(|c| cells as f64 / c),
                cpu_s_per_gib: target_cpu_s.filter(|_| gib > 0.0).map(|c| c / gib),
                target_cpus: m.target_cpus.clone(),
                shares_load_cpus: m.shares_load_cpus,
                worker_shares: m.worker_shares.clone(),
            },
            load_cost: LoadCost {
                load: m.load_cpu.clone(),
                load_utilization: load_cpu.map(|c| c / load_cpus),
                load_demand,
            },
            limit,
            load_limited: limit == Limit::Load,
            conserved: m.drain_s.is_some(),
            drain_s: m.drain_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(target_cpu: f64, load_cpu: [f64; 2], shared: bool, workers: u32) -> PhaseInput {
        PhaseInput {
            round: 1,
            condition: Condition {
                target: Target::Relay,
                workers,
            },
            window_s: 2.0,
            delivered: [1_000, 2_001_000],
            forward: [400, 1_000_400],
            backward: [500, 990_500],
            target_cpu: [Some(10.0), Some(10.0 + target_cpu)],
            target_wait: [Some(1.0), Some(1.0)],
            load_cpu: load_cpu
                .iter()
                .enumerate()
                .map(|(k, c)| LoadCpu {
                    process: format!("p{k}"),
                    cpus: None,
                    cpu_s: Some(*c),
                    wait_s: Some(0.0),
                })
                .collect(),
            load_capacity: 1,
            target_cpus: Some(if shared { "0-1" } else { "0" }.parse().unwrap()),
            shares_load_cpus: shared,
            machine_cpus: 2,
            drain_s: Some(0.3),
            worker_shares: vec![1.0],
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    /// 2 M cells in 2 s on one worker that used 1.9 of 2 CPU-seconds.
    #[test]
    fn figures_by_hand() {
        let r = PhaseRecord::compute(&input(1.9, [0.5, 0.4], false, 1));
        assert_eq!(r.throughput.cells, 2_000_000);
        assert_eq!(
            (
                r.throughput.forward_data_cells,
                r.throughput.backward_data_cells
            ),
            (1_000_000, 990_000)
        );
        assert!(close(r.throughput.cells_per_s, 1e6));
        assert!(close(r.throughput.gbit_per_s, 1e6 * 514.0 * 8.0 / 1e9));
        assert!(close(r.throughput.cells_per_s_per_core, 1e6));
        assert!(close(r.cost.target_utilization.unwrap(), 0.95));
        assert!(close(r.cost.cells_per_cpu_s.unwrap(), 2e6 / 1.9));
        let gib = 2e6 * 514.0 / 1_073_741_824.0;
        assert!(close(r.cost.cpu_s_per_gib.unwrap(), 1.9 / gib));
        assert!(close(r.load_cost.load_utilization.unwrap(), 0.45));
        assert_eq!(r.limit, Limit::Target);
        assert!(!r.load_limited && r.conserved);
        // Two workers: per core halves.
        let r2 = PhaseRecord::compute(&input(1.9, [0.5, 0.4], false, 2));
        assert!(close(r2.throughput.cells_per_s_per_core, 5e5));
        assert!(close(r2.cost.target_utilization.unwrap(), 0.475));
    }

    #[test]
    fn the_limit_names_the_busy_side() {
        // The pump at 95% of a CPU, relay at 60%: load-limited.
        let r = PhaseRecord::compute(&input(1.2, [1.9, 0.3], false, 1));
        assert_eq!(r.limit, Limit::Load);
        assert!(r.load_limited);
        // Two workers on CPUs 0-1, the load on CPU 1: relay 2.7 of 4 CPU-s, load 1.0 of 2:
        // neither alone, but the 2 CPUs are (2.7 + 1.0) / 4 = 92.5% busy.
        let r = PhaseRecord::compute(&input(2.7, [0.5, 0.5], true, 2));
        assert_eq!(r.limit, Limit::SharedCpus);
        let r = PhaseRecord::compute(&input(2.0, [0.3, 0.3], true, 2));
        assert_eq!(r.limit, Limit::Neither);
        // Unknown target CPU (load-only mode): no CPU figures.
        let mut m = input(1.0, [0.1, 0.1], false, 1);
        m.target_cpu = [None, None];
        m.drain_s = None;
        let r = PhaseRecord::compute(&m);
        assert_eq!(
            (
                r.cost.target_cpu_s,
                r.cost.cpu_s_per_gib,
                r.cost.cells_per_cpu_s
            ),
            (None, None, None)
        );
        assert_eq!(r.limit, Limit::Neither);
        assert!(!r.conserved);
    }

    /// A load side kept off its CPU by other processes: a pump with 0.3 CPU-s plus 1.6 s
    /// waiting in the run queue over a 2 s window is 95% demand, beside an idle target:
    /// load-limited, although the load side's CPU time alone (30%) would say idle.
    #[test]
    fn run_queue_wait_counts_as_busy() {
        let mut m = input(0.4, [0.3, 0.3], false, 1);
        m.load_cpu[0].wait_s = Some(1.6);
        let r = PhaseRecord::compute(&m);
        assert!(close(r.load_cost.load_utilization.unwrap(), 0.3));
        assert!(close(r.load_cost.load_demand.unwrap(), 0.95));
        assert!(close(r.cost.target_demand.unwrap(), 0.2));
        assert_eq!(r.limit, Limit::Load);
        // The target waiting too: still not the limit (it has not shown its capacity).
        m.target_wait = [Some(0.0), Some(1.5)];
        let r = PhaseRecord::compute(&m);
        assert!(close(r.cost.target_demand.unwrap(), 0.95));
        assert_eq!(r.limit, Limit::Load);
        // Pump and sink each at half of their one CPU, together filling it: load-limited.
        let r = PhaseRecord::compute(&input(0.8, [0.95, 0.95], false, 1));
        assert!(close(r.load_cost.load_demand.unwrap(), 0.95));
        assert_eq!(r.limit, Limit::Load);
        // Unreadable wait: no demand, no limit.
        m.target_wait = [None, None];
        assert_eq!(PhaseRecord::compute(&m).cost.target_demand, None);
    }
}
