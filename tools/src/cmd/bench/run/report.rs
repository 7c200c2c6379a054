//! The `kistrel.bench/1` report of the main job.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cmd::bench::nodes::NodeSchedMetrics;
use crate::cmd::bench::procs::ProcessCpu;
use crate::tgen::ModelSummary;

/// 2 workers against 1 on the same workload in the same run.
#[derive(Debug, Serialize)]
pub(in crate::cmd::bench) struct WorkersComparison {
    pub(in crate::cmd::bench) one_worker_mib_s: f64,
    pub(in crate::cmd::bench) two_workers_mib_s: f64,
    pub(in crate::cmd::bench) two_over_one: f64,
}

/// KIST against Vanilla on the same workload in the same run.
#[derive(Debug, Serialize)]
pub(in crate::cmd::bench) struct SchedulerComparison {
    pub(in crate::cmd::bench) kist_mib_s: Vec<f64>,
    pub(in crate::cmd::bench) vanilla_mib_s: Vec<f64>,
    /// Each phase's nodes' scheduler figures, in phase order (KIST, Vanilla, KIST, Vanilla).
    pub(in crate::cmd::bench) scheduler_metrics_by_phase: Vec<Vec<NodeSchedMetrics>>,
    /// Mean KIST throughput over mean Vanilla throughput.
    pub(in crate::cmd::bench) kist_over_vanilla: f64,
}

pub(in crate::cmd::bench) use super::links::LinksComparison;

/// The main phase's throughput figures: relayed, direct and through plain forwarders.
#[derive(Debug, Serialize)]
pub(in crate::cmd::bench) struct Throughput {
    pub(in crate::cmd::bench) throughput_mib_s: f64,
    pub(in crate::cmd::bench) direct_throughput_mib_s: f64,
    pub(in crate::cmd::bench) ratio_vs_direct: f64,
    /// Three chained plain TCP forwarders (no cells, no crypto), same transfers, same run.
    pub(in crate::cmd::bench) forwarders_throughput_mib_s: f64,
    pub(in crate::cmd::bench) ratio_vs_forwarders: f64,
}

/// The `kistrel.bench/1` report.
#[derive(Debug, Serialize)]
pub(in crate::cmd::bench) struct Report {
    pub(in crate::cmd::bench) schema: &'static str,
    pub(in crate::cmd::bench) circuits: u32,
    pub(in crate::cmd::bench) transfer_mib: u32,
    pub(in crate::cmd::bench) workers: u16,
    pub(in crate::cmd::bench) backend: &'static str,
    /// `tls` or `plain`: the links of the main phase.
    pub(in crate::cmd::bench) links: &'static str,
    pub(in crate::cmd::bench) scheduler: String,
    #[serde(flatten)]
    pub(in crate::cmd::bench) throughput: Throughput,
    /// Verified payload bytes of the relayed phase (bulk and web).
    pub(in crate::cmd::bench) bytes_verified: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::cmd::bench) scheduler_comparison: Option<SchedulerComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::cmd::bench) workers_comparison: Option<WorkersComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::cmd::bench) links_comparison: Option<LinksComparison>,
    /// Per phase (`relayed`, `direct`, `forwarded`), per model (`bulk`, `web`): counts,
    /// failures by reason, bytes, TTFB / TTLB percentiles (tgen's summaries).
    pub(in crate::cmd::bench) transfers: BTreeMap<&'static str, BTreeMap<String, ModelSummary>>,
    pub(in crate::cmd::bench) cpu_s_per_gib: Vec<ProcessCpu>,
    /// Every node's scheduler figures from its MetricsPort at the end of the main phase.
    pub(in crate::cmd::bench) scheduler_metrics: Vec<NodeSchedMetrics>,
}
