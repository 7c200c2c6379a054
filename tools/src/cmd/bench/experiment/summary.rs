//! The experiment's figures: per condition and scheduler, over all its phases (medians of
//! per-transfer times, worst relay's queue-time p99 per phase), KIST against Vanilla, and the
//! JSON report's types.

use std::collections::BTreeMap;

use serde::Serialize;

use super::setup::{Condition, PhaseRun};
use crate::cmd::bench::nodes::{NodeSchedMetrics, Quantiles};
use crate::cmd::bench::procs::ProcessCpu;
use crate::tgen::{self, ModelSummary, Outcome, TgenReport, TransferRecord};

/// The experiment's parameters, as the report records them.
#[derive(Debug, Serialize)]
pub(super) struct Setup {
    pub bottleneck: String,
    pub phase_s: f64,
    pub pairs: u32,
    pub web_flows: u32,
    pub bulk_flows: u32,
}

/// `{"kist": .., "vanilla": ..}`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(super) struct Pair {
    pub kist: f64,
    pub vanilla: f64,
}

impl Pair {
    pub(super) fn ratio(&self) -> f64 {
        self.kist / self.vanilla.max(f64::MIN_POSITIVE)
    }
}

/// One condition's KIST / Vanilla figures.
#[derive(Debug, Serialize)]
pub(super) struct Comparison {
    pub condition: &'static str,
    pub phases_per_scheduler: u32,
    pub web_ttlb_median_ratio: f64,
    pub web_ttfb_median_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk_throughput_ratio: Option<f64>,
    pub web_ttfb_median_s: Pair,
    pub web_ttlb_median_s: Pair,
    pub web_ttlb_p90_s: Pair,
    pub web_pages: Pair,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk_mib_s: Option<Pair>,
    /// Worst relay's p99 of the sampled kernel queue time, median over phases.
    pub kernel_queue_p99_ms: Pair,
    /// Worst relay's p99 of a cell's time in the relay queue, median over phases.
    pub relay_queue_p99_ms: Pair,
    pub bottleneck_drops: Pair,
    /// The same figures for C Tor 0.4.9 on this machine's testbed (docs/spec/kist.md).
    pub c_tor: CTorComparison,
}

#[derive(Debug, Serialize)]
pub(super) struct CTorComparison {
    pub web_ttfb_median_s: Pair,
    pub web_ttlb_median_s: Pair,
    pub web_ttfb_median_ratio: f64,
    pub web_ttlb_median_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk_throughput_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(super) struct PhaseSummary {
    pub condition: &'static str,
    pub scheduler: &'static str,
    pub round: u32,
    pub elapsed_s: f64,
    pub web_ok: u64,
    pub web_failed: u64,
    pub bulk_ok: u64,
    pub bulk_failed: u64,
    pub bulk_mib_s: f64,
    pub web_ttlb_median_s: f64,
    pub kernel_queue_p99_ms: f64,
    pub relay_queue_p99_ms: f64,
    pub bottleneck_drops: Option<u64>,
    pub nodes: Vec<NodeSchedMetrics>,
}

#[derive(Debug, Serialize)]
pub(super) struct ExperimentReport {
    pub schema: &'static str,
    pub experiment: &'static str,
    #[serde(flatten)]
    pub setup: Setup,
    /// Aggregate verified payload rate over every phase (web and bulk).
    pub throughput_mib_s: f64,
    /// Per `condition/scheduler`, per model: tgen summaries over all its phases.
    pub transfers: BTreeMap<String, BTreeMap<String, ModelSummary>>,
    /// Per process role, over every phase.
    pub cpu_s_per_gib: Vec<ProcessCpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison_default_buffers: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison_unloaded: Option<Comparison>,
    pub phases: Vec<PhaseSummary>,
    pub plots: Vec<String>,
    pub report: String,
}

pub(super) fn ok_times(
    records: &[TransferRecord],
    pick: fn(&TransferRecord) -> Option<f64>,
) -> Vec<f64> {
    records
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .filter_map(pick)
        .collect()
}

/// The `q` quantile of `v` (nearest rank on the sorted values; 0 when empty).
pub(super) fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The relay (not the client) with the largest p99 of `pick`.
fn worst_relay(nodes: &[NodeSchedMetrics], pick: fn(&NodeSchedMetrics) -> &Quantiles) -> Quantiles {
    nodes
        .iter()
        .filter(|n| n.node.starts_with("relay"))
        .map(pick)
        .max_by(|a, b| a.p99.total_cmp(&b.p99))
        .cloned()
        .unwrap_or_default()
}

/// Quantile-wise mean of quantile sets (for one CDF line over several phases).
pub(super) fn mean_quantiles(qs: &[Quantiles]) -> Quantiles {
    let n = qs.len().max(1) as f64;
    let m = |f: fn(&Quantiles) -> f64| qs.iter().map(f).sum::<f64>() / n;
    Quantiles {
        p10: m(|q| q.p10),
        p25: m(|q| q.p25),
        p50: m(|q| q.p50),
        p75: m(|q| q.p75),
        p90: m(|q| q.p90),
        p99: m(|q| q.p99),
        p999: m(|q| q.p999),
        max: qs.iter().map(|q| q.max).fold(0.0, f64::max),
        samples: qs.iter().map(|q| q.samples).sum(),
    }
}

/// A summary over records merged from several phases.
pub(super) fn merged_summary(
    records: &[TransferRecord],
    model: &str,
    flows: u32,
    secs: f64,
) -> ModelSummary {
    let mine: Vec<&TransferRecord> = records.iter().filter(|r| r.model == model).collect();
    let mut failed = BTreeMap::new();
    for r in mine.iter().filter(|r| r.outcome != Outcome::Ok) {
        *failed.entry(r.outcome.as_str().to_owned()).or_insert(0) += 1;
    }
    let ok: Vec<&&TransferRecord> = mine.iter().filter(|r| r.outcome == Outcome::Ok).collect();
    let bytes: u64 = ok.iter().map(|r| r.bytes).sum();
    ModelSummary {
        flows,
        count: mine.len() as u64,
        ok: ok.len() as u64,
        failed,
        bytes,
        goodput_mib_s: if secs > 0.0 {
            bytes as f64 / f64::from(1u32 << 20) / secs
        } else {
            0.0
        },
        ttfb_s: tgen::report::Percentiles::of(&tgen::report::histogram(
            records,
            model,
            tgen::report::Metric::Ttfb,
        )),
        ttlb_s: tgen::report::Percentiles::of(&tgen::report::histogram(
            records,
            model,
            tgen::report::Metric::Ttlb,
        )),
    }
}

pub(super) struct SchedFigures {
    pub web: Vec<TransferRecord>,
    pub bulk: Vec<TransferRecord>,
    pub bulk_bytes: u64,
    pub secs: f64,
    pub kernel_p99: Vec<f64>,
    pub relay_p99: Vec<f64>,
    pub kernel_q: Vec<Quantiles>,
    pub relay_q: Vec<Quantiles>,
    pub drops: Vec<f64>,
}

pub(super) fn figures_of(runs: &[&PhaseRun]) -> SchedFigures {
    let mut f = SchedFigures {
        web: Vec::new(),
        bulk: Vec::new(),
        bulk_bytes: 0,
        secs: 0.0,
        kernel_p99: Vec::new(),
        relay_p99: Vec::new(),
        kernel_q: Vec::new(),
        relay_q: Vec::new(),
        drops: Vec::new(),
    };
    for r in runs {
        f.web.extend(r.web.transfers.iter().cloned());
        if let Some(b) = &r.bulk {
            f.bulk.extend(b.transfers.iter().cloned());
            f.bulk_bytes += b.models.values().map(|m| m.bytes).sum::<u64>();
        }
        f.secs += r.elapsed_s;
        let k = worst_relay(&r.nodes, |n| &n.kernel.kernel_queue_estimated_sampled_ms);
        let q = worst_relay(&r.nodes, |n| &n.relay_queue_ms);
        f.kernel_p99.push(k.p99);
        f.relay_p99.push(q.p99);
        f.kernel_q.push(k);
        f.relay_q.push(q);
        f.drops.push(r.bottleneck_drops.unwrap_or(0) as f64);
    }
    f
}

pub(super) fn compare(
    cond: &Condition,
    pairs: u32,
    k: &SchedFigures,
    v: &SchedFigures,
) -> Comparison {
    let med = |f: &SchedFigures, pick: fn(&TransferRecord) -> Option<f64>| {
        quantile(&ok_times(&f.web, pick), 0.5)
    };
    let pair = |a: f64, b: f64| Pair {
        kist: a,
        vanilla: b,
    };
    let ttfb = pair(med(k, |r| r.ttfb_s), med(v, |r| r.ttfb_s));
    let ttlb = pair(med(k, |r| r.ttlb_s), med(v, |r| r.ttlb_s));
    let mib = |f: &SchedFigures| {
        f.bulk_bytes as f64 / f64::from(1u32 << 20) / f.secs.max(f64::MIN_POSITIVE)
    };
    let bulk = cond.bulk.then(|| pair(mib(k), mib(v)));
    let ok_pages = |f: &SchedFigures| ok_times(&f.web, |r| r.ttlb_s).len() as f64;
    let c = cond.c_tor;
    let c_ttfb = pair(c.web_ttfb_median_s[0], c.web_ttfb_median_s[1]);
    let c_ttlb = pair(c.web_ttlb_median_s[0], c.web_ttlb_median_s[1]);
    Comparison {
        condition: cond.name,
        phases_per_scheduler: pairs,
        web_ttlb_median_ratio: ttlb.ratio(),
        web_ttfb_median_ratio: ttfb.ratio(),
        bulk_throughput_ratio: bulk.map(|b| b.ratio()),
        web_ttfb_median_s: ttfb,
        web_ttlb_median_s: ttlb,
        web_ttlb_p90_s: pair(
            quantile(&ok_times(&k.web, |r| r.ttlb_s), 0.9),
            quantile(&ok_times(&v.web, |r| r.ttlb_s), 0.9),
        ),
        web_pages: pair(ok_pages(k), ok_pages(v)),
        bulk_mib_s: bulk,
        kernel_queue_p99_ms: pair(quantile(&k.kernel_p99, 0.5), quantile(&v.kernel_p99, 0.5)),
        relay_queue_p99_ms: pair(quantile(&k.relay_p99, 0.5), quantile(&v.relay_p99, 0.5)),
        bottleneck_drops: pair(k.drops.iter().sum(), v.drops.iter().sum()),
        c_tor: CTorComparison {
            web_ttfb_median_ratio: c_ttfb.ratio(),
            web_ttlb_median_ratio: c_ttlb.ratio(),
            web_ttfb_median_s: c_ttfb,
            web_ttlb_median_s: c_ttlb,
            bulk_throughput_ratio: c.bulk_throughput_ratio,
        },
    }
}

pub(super) fn phase_summary(r: &PhaseRun) -> PhaseSummary {
    let count = |rep: Option<&TgenReport>| {
        rep.map_or((0, 0), |t| {
            let ok = t.models.values().map(|m| m.ok).sum::<u64>();
            (ok, t.failed())
        })
    };
    let (web_ok, web_failed) = count(Some(&r.web));
    let (bulk_ok, bulk_failed) = count(r.bulk.as_ref());
    let bulk_bytes: u64 = r
        .bulk
        .as_ref()
        .map_or(0, |b| b.models.values().map(|m| m.bytes).sum());
    PhaseSummary {
        condition: r.condition,
        scheduler: r.scheduler,
        round: r.round,
        elapsed_s: r.elapsed_s,
        web_ok,
        web_failed,
        bulk_ok,
        bulk_failed,
        bulk_mib_s: bulk_bytes as f64 / f64::from(1u32 << 20) / r.elapsed_s.max(f64::MIN_POSITIVE),
        web_ttlb_median_s: quantile(&ok_times(&r.web.transfers, |t| t.ttlb_s), 0.5),
        kernel_queue_p99_ms: worst_relay(&r.nodes, |n| &n.kernel.kernel_queue_estimated_sampled_ms)
            .p99,
        relay_queue_p99_ms: worst_relay(&r.nodes, |n| &n.relay_queue_ms).p99,
        bottleneck_drops: r.bottleneck_drops,
        nodes: r.nodes.clone(),
    }
}

pub(super) fn print_summary(r: &ExperimentReport) {
    println!(
        "kistrel bench experiment kist-vs-vanilla  (bottleneck {}, {} x {:.0} s phases per scheduler and condition)",
        r.setup.bottleneck, r.setup.pairs, r.setup.phase_s
    );
    println!(
        "  {:<16} {:>22} {:>22} {:>14} {:>22}",
        "condition",
        "web TTFB med K/V (s)",
        "web TTLB med K/V (s)",
        "bulk K/V",
        "kernel q p99 K/V (ms)"
    );
    for c in [
        &r.comparison,
        &r.comparison_default_buffers,
        &r.comparison_unloaded,
    ]
    .into_iter()
    .flatten()
    {
        println!(
            "  {:<16} {:>8.3}/{:<6.3} ({:.2}) {:>8.3}/{:<6.3} ({:.2}) {:>14} {:>9.1}/{:<9.1}",
            c.condition,
            c.web_ttfb_median_s.kist,
            c.web_ttfb_median_s.vanilla,
            c.web_ttfb_median_ratio,
            c.web_ttlb_median_s.kist,
            c.web_ttlb_median_s.vanilla,
            c.web_ttlb_median_ratio,
            c.bulk_throughput_ratio
                .map_or("-".to_owned(), |b| format!("{b:.2}")),
            c.kernel_queue_p99_ms.kist,
            c.kernel_queue_p99_ms.vanilla,
        );
        println!(
            "  {:<16} C Tor: TTFB ratio {:.2}, TTLB ratio {:.2}, bulk {}",
            "",
            c.c_tor.web_ttfb_median_ratio,
            c.c_tor.web_ttlb_median_ratio,
            c.c_tor
                .bulk_throughput_ratio
                .map_or("-".to_owned(), |b| format!("{b:.2}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_pairs() {
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, f64::NAN], 1.0), 3.0);
        let p = Pair {
            kist: 1.0,
            vanilla: 4.0,
        };
        assert_eq!(p.ratio(), 0.25);
        let m = mean_quantiles(&[
            Quantiles {
                p99: 2.0,
                ..Quantiles::default()
            },
            Quantiles {
                p99: 4.0,
                ..Quantiles::default()
            },
        ]);
        assert_eq!(m.p99, 3.0);
    }
}
