//! The `kistrel.bench/4` report of the main job: every figure the median of its per-round
//! values with a 95% bootstrap interval ([`crate::stats::Estimate`]), the rounds and their
//! order, the placement, the machine's load.

use std::collections::BTreeMap;

use serde::Serialize;

use super::condition::{Condition, Plan};
use super::phase::PhaseRecord;
use crate::cmd::bench::placement::PlacementSummary;
use crate::placement::CpuList;
use crate::stats::{self, Estimate, SampleQuantiles};
use crate::tgen::Outcome;

/// The schema name; bump the number when the shape changes (tests check the shape).
pub(in crate::cmd::bench) const SCHEMA: &str = "kistrel.bench/4";

/// What was asked for.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct RunConfig {
    /// Bulk transfers at once, each on its own circuit.
    pub circuits: u32,
    /// MiB per bulk transfer.
    pub transfer_mib: u32,
    /// Web flows beside them.
    pub web_flows: u32,
    /// Workers per node of the base condition.
    pub workers: u16,
    /// Runtime backend.
    pub backend: &'static str,
    /// Scheduler of the base condition.
    pub scheduler: String,
    /// Links of the base condition: `tls` (Tor's link protocol) or `plain` (the benchmark
    /// mode).
    pub links: &'static str,
    /// The base condition's label (the relayed condition the main figures are of).
    pub base_condition: String,
    /// Rounds.
    pub rounds: usize,
    /// Seed of the bootstrap intervals.
    pub seed: u64,
    /// `--testing-cell-cost` in ns (0: none): the injected slowdown of a self-check.
    pub testing_cell_cost_ns: u64,
}

/// The machine during the run.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct Machine {
    /// The CPU model (`/proc/cpuinfo`; `None` off Linux).
    pub cpu_model: Option<String>,
    /// The kernel release (`/proc/sys/kernel/osrelease`; `None` off Linux).
    pub kernel: Option<String>,
    /// kistrel's version.
    pub kistrel: &'static str,
    /// CPUs the job could use.
    pub cpus: CpuList,
    /// 1-minute load average at the start and at the end (`None` off Linux).
    pub loadavg_1m: [Option<f64>; 2],
}

impl Machine {
    /// This machine now, with the job's CPUs and the load at its start and end.
    pub(in crate::cmd::bench) fn describe(cpus: CpuList, loadavg_1m: [Option<f64>; 2]) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map(|(_, m)| m.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|k| k.trim().to_owned());
        Machine {
            cpu_model,
            kernel,
            kistrel: env!("CARGO_PKG_VERSION"),
            cpus,
            loadavg_1m,
        }
    }
}

/// One figure: its meaning and its estimate over rounds.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct Figure {
    /// Unit of the values.
    pub unit: &'static str,
    /// `higher` or `lower` is better.
    pub better: &'static str,
    /// What it is, in one line.
    pub definition: &'static str,
    /// Median, MAD, 95% interval, n, the per-round values.
    #[serde(flatten)]
    pub estimate: Estimate,
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

impl RoundRecord {
    fn phase(&self, c: Condition) -> Option<&PhaseRecord> {
        let label = c.label();
        self.phases.iter().find(|p| p.condition == label)
    }
}

/// Time to first and last byte of one model under one condition, pooled over rounds.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct Latency {
    /// Condition label.
    pub condition: String,
    /// `bulk` or `web`.
    pub model: String,
    /// Seconds from the request to the first byte, ok transfers.
    pub ttfb_s: SampleQuantiles,
    /// Seconds from the request to the last byte, ok transfers.
    pub ttlb_s: SampleQuantiles,
}

/// The `kistrel.bench/4` report.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// What was asked for.
    pub config: RunConfig,
    /// The machine.
    pub machine: Machine,
    /// Where the nodes and the load generator ran (the base condition's plan).
    pub placement: PlacementSummary,
    /// How conditions were ordered: `abba` (round 1 as listed, round 2 reversed, ...).
    pub order: &'static str,
    /// The condition labels, in round 1's order.
    pub conditions: Vec<String>,
    /// The figures by name (see `kistrel bench run --help`).
    pub figures: BTreeMap<&'static str, Figure>,
    /// Each condition's throughput over rounds, MiB/s.
    pub throughput_by_condition: BTreeMap<String, Estimate>,
    /// Latency by condition and model, pooled over rounds.
    pub latency: Vec<Latency>,
    /// Verified bytes over every phase.
    pub bytes_verified: u64,
    /// Failed transfers over every phase.
    pub failed_transfers: u64,
    /// Placement differences over every phase (empty when the kernel applied the plan).
    pub placement_differences: Vec<String>,
    /// The rounds.
    pub rounds: Vec<RoundRecord>,
}

/// The figures' fixed descriptions: name, unit, better, definition.
const FIGURES: [(&str, &str, &str, &str); 16] = [
    (
        "throughput_mib_s",
        "MiB/s",
        "higher",
        "bulk payload rate through kistrel's 3 hops (base condition)",
    ),
    (
        "direct_throughput_mib_s",
        "MiB/s",
        "higher",
        "bulk payload rate, tgen client straight to the server",
    ),
    (
        "forwarders_throughput_mib_s",
        "MiB/s",
        "higher",
        "bulk payload rate through 3 chained plain TCP forwarders",
    ),
    (
        "ratio_vs_direct",
        "ratio",
        "higher",
        "kistrel 3 hops / direct, per round (1.0 = no cost)",
    ),
    (
        "ratio_vs_forwarders",
        "ratio",
        "higher",
        "kistrel 3 hops / 3 plain forwarders, per round (1.0 = as fast as plain TCP relaying)",
    ),
    (
        "max_relay_cpu_s_per_gib",
        "CPU-s/GiB",
        "lower",
        "the busiest relay's CPU seconds per GiB of verified payload (base condition)",
    ),
    (
        "relays_cpu_s_per_gib",
        "CPU-s/GiB",
        "lower",
        "the 3 relays' CPU seconds together per GiB of verified payload (base condition)",
    ),
    (
        "forwarders_cpu_s_per_gib",
        "CPU-s/GiB",
        "lower",
        "the 3 plain forwarders' CPU seconds together per GiB of verified payload (same round)",
    ),
    (
        "max_relay_cpu_over_forwarders",
        "ratio",
        "lower",
        "the busiest relay's CPU per GiB / the busiest forwarder's, per round (a slow host lowers it)",
    ),
    (
        "relays_cpu_over_forwarders",
        "ratio",
        "lower",
        "the 3 relays' CPU per GiB / the 3 forwarders', per round (a slow host lowers it)",
    ),
    (
        "kist_over_vanilla",
        "ratio",
        "higher",
        "KIST / Vanilla throughput, per round (same worker count)",
    ),
    (
        "workers_two_over_one",
        "ratio",
        "higher",
        "2 / 1 workers per node throughput, per round (same scheduler)",
    ),
    (
        "tls_over_plain",
        "ratio",
        "higher",
        "TLS links / plain links throughput, per round (same scheduler and workers)",
    ),
    (
        "tls_added_guard_cpu_s_per_gib",
        "CPU-s/GiB",
        "lower",
        "CPU seconds per GiB TLS links add to the guard (relay1): TLS minus plain, per round",
    ),
    (
        "tls_added_middle_cpu_s_per_gib",
        "CPU-s/GiB",
        "lower",
        "CPU seconds per GiB TLS links add to the middle (relay2): TLS minus plain, per round",
    ),
    (
        "tls_added_exit_cpu_s_per_gib",
        "CPU-s/GiB",
        "lower",
        "CPU seconds per GiB TLS links add to the exit (relay3): TLS minus plain, per round",
    ),
];

/// The relays by role on the pinned path ([`super::phase::PINNED_PATH`]), with the name of
/// the figure of what TLS links add to each.
const ROLES: [(&str, &str); 3] = [
    ("relay1", "tls_added_guard_cpu_s_per_gib"),
    ("relay2", "tls_added_middle_cpu_s_per_gib"),
    ("relay3", "tls_added_exit_cpu_s_per_gib"),
];

/// Assembles the report; `seed` seeds every interval.
pub(in crate::cmd::bench) fn build(
    config: RunConfig,
    machine: Machine,
    placement: PlacementSummary,
    plan: &Plan,
    rounds: Vec<RoundRecord>,
) -> Report {
    let seed = config.seed;
    let throughput = |r: &RoundRecord, c: Condition| r.phase(c).map(|p| p.throughput_mib_s);
    let ratio = |a: Condition, b: Condition| {
        move |r: &RoundRecord| stats::ratio(throughput(r, a)?, throughput(r, b)?)
    };
    let base = plan.base;
    let mut values: BTreeMap<&'static str, Vec<Option<f64>>> = BTreeMap::new();
    let mut add = |name: &'static str, f: &dyn Fn(&RoundRecord) -> Option<f64>| {
        values.insert(name, rounds.iter().map(f).collect());
    };
    add("throughput_mib_s", &|r| throughput(r, base));
    add("direct_throughput_mib_s", &|r| {
        throughput(r, Condition::Direct)
    });
    add("forwarders_throughput_mib_s", &|r| {
        throughput(r, Condition::Forwarded)
    });
    add("ratio_vs_direct", &ratio(base, Condition::Direct));
    add("ratio_vs_forwarders", &ratio(base, Condition::Forwarded));
    add("max_relay_cpu_s_per_gib", &|r| {
        r.phase(base)?.max_cpu_s_per_gib("relay")
    });
    add("relays_cpu_s_per_gib", &|r| {
        r.phase(base)?.total_cpu_s_per_gib("relay")
    });
    add("forwarders_cpu_s_per_gib", &|r| {
        r.phase(Condition::Forwarded)?
            .total_cpu_s_per_gib("forwarder")
    });
    add("max_relay_cpu_over_forwarders", &|r| {
        let busiest = r
            .phase(Condition::Forwarded)?
            .max_cpu_s_per_gib("forwarder")?;
        stats::ratio(r.phase(base)?.max_cpu_s_per_gib("relay")?, busiest)
    });
    add("relays_cpu_over_forwarders", &|r| {
        let all = r
            .phase(Condition::Forwarded)?
            .total_cpu_s_per_gib("forwarder")?;
        stats::ratio(r.phase(base)?.total_cpu_s_per_gib("relay")?, all)
    });
    if let Some((kist, vanilla)) = plan.schedulers {
        add("kist_over_vanilla", &ratio(kist, vanilla));
    }
    if let Some((one, two)) = plan.workers {
        add("workers_two_over_one", &ratio(two, one));
    }
    if let Some((tls, plain)) = plan.links {
        add("tls_over_plain", &ratio(tls, plain));
        for (role, name) in ROLES {
            let cpu = |r: &RoundRecord, c| r.phase(c)?.cpu_s_per_gib_of(role);
            add(name, &|r| Some(cpu(r, tls)? - cpu(r, plain)?));
        }
    }
    let figures = FIGURES
        .iter()
        .filter_map(|&(name, unit, better, definition)| {
            // A round without the value (a phase that moved nothing) leaves the figure out:
            // `bench check` then reports it as not measured.
            let v: Option<Vec<f64>> = values.get(name)?.iter().copied().collect();
            let estimate = Estimate::of(&v?, seed)?;
            Some((
                name,
                Figure {
                    unit,
                    better,
                    definition,
                    estimate,
                },
            ))
        })
        .collect();
    let throughput_by_condition = plan
        .conditions
        .iter()
        .filter_map(|&c| {
            let v: Vec<f64> = rounds.iter().filter_map(|r| throughput(r, c)).collect();
            Some((c.label(), Estimate::of(&v, seed)?))
        })
        .collect();
    let phases = || rounds.iter().flat_map(|r| &r.phases);
    Report {
        schema: SCHEMA,
        config,
        machine,
        placement,
        order: "abba",
        conditions: plan.conditions.iter().map(|c| c.label()).collect(),
        figures,
        throughput_by_condition,
        latency: latency(plan, &rounds),
        bytes_verified: phases().map(|p| p.bytes_verified).sum(),
        failed_transfers: phases().map(|p| p.failed).sum(),
        placement_differences: phases()
            .flat_map(|p| p.placement_differences.iter().cloned())
            .collect(),
        rounds,
    }
}

/// TTFB / TTLB of every condition and model, ok transfers pooled over rounds.
fn latency(plan: &Plan, rounds: &[RoundRecord]) -> Vec<Latency> {
    let mut out = Vec::new();
    for c in &plan.conditions {
        let records: Vec<_> = rounds
            .iter()
            .filter_map(|r| r.phase(*c))
            .flat_map(|p| &p.records)
            .filter(|t| t.outcome == Outcome::Ok)
            .collect();
        for model in ["bulk", "web"] {
            let mine = || records.iter().filter(|t| t.model == model);
            let ttfb: Vec<f64> = mine().filter_map(|t| t.ttfb_s).collect();
            let ttlb: Vec<f64> = mine().filter_map(|t| t.ttlb_s).collect();
            out.push(Latency {
                condition: c.label(),
                model: model.to_owned(),
                ttfb_s: SampleQuantiles::of(&ttfb),
                ttlb_s: SampleQuantiles::of(&ttlb),
            });
        }
    }
    out
}
