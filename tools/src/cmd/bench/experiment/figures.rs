//! The experiment's figures: per phase (web pages offered / completed / still in flight,
//! bulk bytes delivered per second, the worst relay's queue times), and per condition the
//! KIST / Vanilla ratio of each figure computed within each pair, summarised over pairs by the
//! shared statistics module (median, MAD, 95% bootstrap interval, n).

use std::collections::BTreeMap;

use serde::Serialize;

use super::setup::PhaseRun;
use crate::cmd::bench::nodes::{NodeSchedMetrics, Quantiles};
use crate::stats::{self, Estimate};
use crate::tgen::{Outcome, TgenReport, TransferRecord};

/// Web pages of one phase.
#[derive(Debug, Clone, Serialize)]
pub(super) struct WebFigures {
    /// Scheduled by the round's arrival schedule before the deadline.
    pub offered: u64,
    /// Started (completed + failed + in flight at the deadline).
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// Still loading at the deadline (cut; their bytes count in `bytes_delivered`).
    pub in_flight_at_end: u64,
    /// Verified bytes received, completed pages and cut ones alike.
    pub bytes_delivered: u64,
    /// Over the completed pages; `None` when none completed.
    pub ttfb_median_s: Option<f64>,
    pub ttlb_median_s: Option<f64>,
    pub ttlb_p90_s: Option<f64>,
}

/// Bulk transfers of one phase.
#[derive(Debug, Clone, Serialize)]
pub(super) struct BulkFigures {
    pub completed: u64,
    pub failed: u64,
    pub in_flight_at_end: u64,
    /// Verified bytes received by every bulk transfer, whether it completed, failed or was
    /// cut at the deadline.
    pub bytes_delivered: u64,
    /// The part of `bytes_delivered` from transfers cut at the deadline.
    pub in_flight_bytes: u64,
    /// `bytes_delivered` per second of the phase, MiB/s.
    pub goodput_mib_s: f64,
}

/// Queueing of one phase, worst relay.
#[derive(Debug, Clone, Serialize)]
pub(super) struct QueueFigures {
    /// p99 of the measured kernel send-queue time (`kernel_queue_ms`: write into the socket
    /// to the SND stamp, SO_TIMESTAMPING), worst relay; `None` when no relay has a sample
    /// (stamping unavailable).
    pub kernel_queue_p99_ms: Option<f64>,
    /// p99 of `kernel_queue_estimated_sampled_ms` (the notsent x srtt / (cwnd x mss) estimate sampled
    /// every 100 ms on busy channel sockets: an estimate, not a measurement).
    pub kernel_queue_estimate_p99_ms: f64,
    /// p99 of a cell's time in the relay queue.
    pub relay_queue_p99_ms: f64,
    /// Packets the bottleneck's tbf dropped.
    pub bottleneck_drops: Option<u64>,
}

/// One phase's figures (`phases[]` of the JSON).
#[derive(Debug, Clone, Serialize)]
pub(super) struct PhaseFigures {
    pub condition: &'static str,
    pub scheduler: &'static str,
    pub round: u32,
    /// 0 when this scheduler ran first in its pair, 1 when second.
    pub position: u32,
    pub elapsed_s: f64,
    pub web: WebFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkFigures>,
    pub queues: QueueFigures,
    /// Each node's scheduler counters and histograms (KIST grants per run, ...).
    pub nodes: Vec<NodeSchedMetrics>,
}

/// The completed transfers' values of `pick`.
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

/// The `q` quantile (type 7) of `values`, `None` when empty.
pub(super) fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    stats::quantile_sorted(&v, q)
}

/// The relay (not the client) with the largest p99 of `pick`.
pub(super) fn worst_relay(
    nodes: &[NodeSchedMetrics],
    pick: fn(&NodeSchedMetrics) -> &Quantiles,
) -> Quantiles {
    nodes
        .iter()
        .filter(|n| n.node.starts_with("relay"))
        .map(pick)
        .max_by(|a, b| a.p99.total_cmp(&b.p99))
        .cloned()
        .unwrap_or_default()
}

/// The largest p99 over the relays that have samples of a measured figure (`None`: none
/// has any, so the figure is unavailable rather than zero).
fn measured_p99(
    nodes: &[NodeSchedMetrics],
    pick: fn(&NodeSchedMetrics) -> &Quantiles,
) -> Option<f64> {
    nodes
        .iter()
        .filter(|n| n.node.starts_with("relay"))
        .map(pick)
        .filter(|q| q.samples > 0)
        .map(|q| q.p99)
        .max_by(f64::total_cmp)
}

fn count(t: &TgenReport, o: impl Fn(Outcome) -> bool) -> u64 {
    t.transfers.iter().filter(|r| o(r.outcome)).count() as u64
}

fn delivered(t: &TgenReport) -> u64 {
    t.transfers.iter().map(|r| r.bytes).sum::<u64>() + t.interrupted_bytes
}

/// The figures of one phase (`position`: its place in its pair).
pub(super) fn phase_figures(r: &PhaseRun, position: u32) -> PhaseFigures {
    let ok = |o: Outcome| o == Outcome::Ok;
    let web = WebFigures {
        offered: r.web_offered,
        started: r.web.transfers.len() as u64 + r.web.interrupted,
        completed: count(&r.web, ok),
        failed: r.web.failed(),
        in_flight_at_end: r.web.interrupted,
        bytes_delivered: delivered(&r.web),
        ttfb_median_s: quantile(&ok_times(&r.web.transfers, |t| t.ttfb_s), 0.5),
        ttlb_median_s: quantile(&ok_times(&r.web.transfers, |t| t.ttlb_s), 0.5),
        ttlb_p90_s: quantile(&ok_times(&r.web.transfers, |t| t.ttlb_s), 0.9),
    };
    let bulk = r.bulk.as_ref().map(|b| BulkFigures {
        completed: count(b, ok),
        failed: b.failed(),
        in_flight_at_end: b.interrupted,
        bytes_delivered: delivered(b),
        in_flight_bytes: b.interrupted_bytes,
        goodput_mib_s: mib_s(delivered(b), r.elapsed_s),
    });
    PhaseFigures {
        condition: r.condition,
        scheduler: r.scheduler,
        round: r.round,
        position,
        elapsed_s: r.elapsed_s,
        web,
        bulk,
        queues: QueueFigures {
            kernel_queue_p99_ms: measured_p99(&r.nodes, |n| &n.kernel.kernel_queue_ms),
            kernel_queue_estimate_p99_ms: worst_relay(&r.nodes, |n| {
                &n.kernel.kernel_queue_estimated_sampled_ms
            })
            .p99,
            relay_queue_p99_ms: worst_relay(&r.nodes, |n| &n.relay_queue_ms).p99,
            bottleneck_drops: r.bottleneck_drops,
        },
        nodes: r.nodes.clone(),
    }
}

/// `bytes` per `secs`, MiB/s (0 for no time).
pub(super) fn mib_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / f64::from(1u32 << 20) / secs
    } else {
        0.0
    }
}

/// A figure compared between the schedulers: its name in the JSON and how to read it off a
/// phase (`None`: the phase has no such figure, e.g. no page completed).
pub(super) struct Metric {
    pub name: &'static str,
    pub label: &'static str,
    pub pick: fn(&PhaseFigures) -> Option<f64>,
}

/// Every figure whose KIST / Vanilla ratio the experiment reports.
pub(super) const METRICS: [Metric; 9] = [
    Metric {
        name: "web_ttfb_median",
        label: "web TTFB median (s)",
        pick: |p| p.web.ttfb_median_s,
    },
    Metric {
        name: "web_ttlb_median",
        label: "web TTLB median (s)",
        pick: |p| p.web.ttlb_median_s,
    },
    Metric {
        name: "web_ttlb_p90",
        label: "web TTLB p90 (s)",
        pick: |p| p.web.ttlb_p90_s,
    },
    Metric {
        name: "web_pages_completed",
        label: "web pages completed",
        pick: |p| Some(p.web.completed as f64),
    },
    Metric {
        name: "bulk_goodput",
        label: "bulk goodput, bytes delivered (MiB/s)",
        pick: |p| p.bulk.as_ref().map(|b| b.goodput_mib_s),
    },
    Metric {
        name: "total_goodput",
        label: "web + bulk bytes delivered (MiB/s)",
        pick: |p| {
            let bulk = p.bulk.as_ref().map_or(0, |b| b.bytes_delivered);
            Some(mib_s(p.web.bytes_delivered + bulk, p.elapsed_s))
        },
    },
    Metric {
        name: "kernel_queue_p99",
        label: "kernel queue p99, measured write->SND (ms)",
        pick: |p| p.queues.kernel_queue_p99_ms,
    },
    Metric {
        name: "kernel_queue_estimate_p99",
        label: "kernel queue p99, notsent x srtt estimate (ms)",
        pick: |p| Some(p.queues.kernel_queue_estimate_p99_ms),
    },
    Metric {
        name: "relay_queue_p99",
        label: "relay queue p99 (ms)",
        pick: |p| Some(p.queues.relay_queue_p99_ms),
    },
];

/// One figure of one condition: each scheduler's median over its phases, and the
/// KIST / Vanilla ratio over the pairs where both phases have the figure.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Compared {
    /// Median over KIST's phases of the per-phase figure.
    pub kist: Option<f64>,
    /// Median over Vanilla's phases.
    pub vanilla: Option<f64>,
    /// Per-pair ratios (in round order), their median, MAD and 95% bootstrap interval.
    pub ratio: Option<Estimate>,
}

/// Per metric name, the comparison of `phases` (one condition's) over its pairs; figures no
/// phase has (bulk goodput without bulk load) are left out.
pub(super) fn compare(phases: &[PhaseFigures]) -> BTreeMap<&'static str, Compared> {
    let rounds: std::collections::BTreeSet<u32> = phases.iter().map(|p| p.round).collect();
    let of = |sched: &str, round: u32| {
        phases
            .iter()
            .find(|p| p.scheduler == sched && p.round == round)
    };
    METRICS
        .iter()
        .map(|m| {
            let per_sched = |sched: &str| {
                let v: Vec<f64> = phases
                    .iter()
                    .filter(|p| p.scheduler == sched)
                    .filter_map(m.pick)
                    .collect();
                stats::median(&v)
            };
            let ratios: Vec<f64> = rounds
                .iter()
                .filter_map(|&r| {
                    let k = (m.pick)(of("kist", r)?)?;
                    let v = (m.pick)(of("vanilla", r)?)?;
                    stats::ratio(k, v)
                })
                .collect();
            let compared = Compared {
                kist: per_sched("kist"),
                vanilla: per_sched("vanilla"),
                ratio: Estimate::of(&ratios, stats::DEFAULT_SEED),
            };
            (m.name, compared)
        })
        .filter(|(_, c)| c.kist.is_some() || c.vanilla.is_some())
        .collect()
}
