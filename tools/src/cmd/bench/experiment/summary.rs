//! The experiment's JSON report (`kistrel.bench-experiment/2`, spec in
//! benches/bench-experiment-schema.txt): setup, machine, per condition each figure's
//! per-scheduler medians and per-pair KIST / Vanilla ratios, C Tor's reference figures
//! (labelled as such), every phase, and what failed. The console table and report.md are
//! both drawn from it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::figures::{compare, Compared, PhaseFigures};
use super::setup::{Condition, ExperimentArgs, PhaseNotRun, C_TOR_SOURCE};
use crate::cmd::bench::procs::ProcessCpu;
use crate::cmd::bench::run::Machine;
use crate::error::CliError;

/// The report's schema name: bumped from `kistrel.bench/1` when phases became fixed-length,
/// web arrivals open-loop and ratios per-pair estimates.
pub(super) const SCHEMA: &str = "kistrel.bench-experiment/2";

/// The experiment's parameters, as the report records them.
#[derive(Debug, Serialize)]
pub(super) struct Setup {
    pub bottleneck: String,
    pub phase_s: f64,
    pub pairs: u32,
    /// `K V, V K, ...`: KIST first in even rounds, Vanilla first in odd ones.
    pub order: &'static str,
    pub web_flows: u32,
    /// Pages offered per second over all web flows (Poisson, seeded per round).
    pub web_rate_per_s: f64,
    pub bulk_flows: u32,
    /// The run's circumstances (`--note`), e.g. a loaded machine.
    pub note: Option<String>,
}

/// `{"kist": .., "vanilla": ..}`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Pair {
    pub kist: f64,
    pub vanilla: f64,
}

/// Figures copied from elsewhere, never measured by this command.
#[derive(Debug, Serialize)]
pub(super) struct Reference {
    /// Always `"reference"`.
    pub kind: &'static str,
    pub source: &'static str,
    pub implementation: &'static str,
    pub web_ttfb_median_s: Pair,
    pub web_ttlb_median_s: Pair,
    pub bulk_throughput_ratio: Option<f64>,
}

/// One condition's comparison.
#[derive(Debug, Serialize)]
pub(super) struct ConditionReport {
    pub condition: &'static str,
    /// `--tcp-wmem` of every namespace.
    pub tcp_wmem: &'static str,
    pub bulk: bool,
    /// Pairs where both phases ran.
    pub pairs_complete: u32,
    /// Web pages offered per scheduler, summed over its phases.
    pub web_pages_offered: Pair,
    /// Per figure (`web_ttfb_median`, `bulk_goodput`, ...).
    pub figures: BTreeMap<&'static str, Compared>,
    pub reference: Reference,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub(super) struct ExperimentReport {
    pub schema: &'static str,
    pub experiment: &'static str,
    pub setup: Setup,
    pub machine: Machine,
    pub conditions: Vec<ConditionReport>,
    /// Verified bytes delivered (web and bulk, cut transfers included) per second of phase,
    /// over every phase.
    pub throughput_mib_s: f64,
    /// Per process role, over every phase.
    pub cpu_s_per_gib: Vec<ProcessCpu>,
    /// Transfers that failed (not counting those cut at a deadline), every phase.
    pub transfers_failed: u64,
    pub phases_not_run: Vec<PhaseNotRun>,
    pub phases: Vec<PhaseFigures>,
    pub plots: Vec<String>,
    pub report: String,
}

impl ExperimentReport {
    /// Err (exit status 1) when a transfer failed or a phase did not run: the figures of
    /// such a run are not comparable, though the report is still written.
    pub(super) fn verdict(&self) -> Result<(), CliError> {
        let failed = self.transfers_failed;
        let not_run = self.phases_not_run.len();
        if failed == 0 && not_run == 0 {
            return Ok(());
        }
        Err(CliError::runtime(
            "kistrel bench experiment",
            format!(
                "{failed} transfer(s) failed and {not_run} phase(s) did not run \
                 (see transfers_failed and phases_not_run in the JSON)"
            ),
        ))
    }
}

/// The setup of `args`.
pub(super) fn setup(args: &ExperimentArgs) -> Setup {
    Setup {
        bottleneck: args.bottleneck.clone(),
        phase_s: args.phase.as_secs_f64(),
        pairs: args.pairs,
        order: "K V, V K, ... (ABBA)",
        web_flows: args.web_flows,
        web_rate_per_s: args.web_rate,
        bulk_flows: args.bulk_flows,
        note: args.note.clone(),
    }
}

/// One condition's comparison from its phases (and how many pairs it was to have).
pub(super) fn condition_report(cond: &Condition, phases: &[PhaseFigures]) -> ConditionReport {
    let rounds = |sched: &str| -> Vec<u32> {
        phases
            .iter()
            .filter(|p| p.scheduler == sched)
            .map(|p| p.round)
            .collect()
    };
    let vanilla = rounds("vanilla");
    let pairs_complete = rounds("kist")
        .iter()
        .filter(|r| vanilla.contains(r))
        .count() as u32;
    let offered = |sched: &str| {
        phases
            .iter()
            .filter(|p| p.scheduler == sched)
            .map(|p| p.web.offered as f64)
            .sum()
    };
    let c = cond.c_tor;
    ConditionReport {
        condition: cond.name,
        tcp_wmem: cond.wmem,
        bulk: cond.bulk,
        pairs_complete,
        web_pages_offered: Pair {
            kist: offered("kist"),
            vanilla: offered("vanilla"),
        },
        figures: compare(phases),
        reference: Reference {
            kind: "reference",
            source: C_TOR_SOURCE,
            implementation: "C Tor 0.4.9",
            web_ttfb_median_s: Pair {
                kist: c.web_ttfb_median_s[0],
                vanilla: c.web_ttfb_median_s[1],
            },
            web_ttlb_median_s: Pair {
                kist: c.web_ttlb_median_s[0],
                vanilla: c.web_ttlb_median_s[1],
            },
            bulk_throughput_ratio: c.bulk_throughput_ratio,
        },
    }
}

/// The console table: per condition, each figure's medians and ratio.
pub(super) fn print_summary(r: &ExperimentReport) {
    println!(
        "kistrel bench experiment kist-vs-vanilla  (bottleneck {}, {} pairs of {:.0} s phases per condition, {})",
        r.setup.bottleneck, r.setup.pairs, r.setup.phase_s, r.setup.order
    );
    for c in &r.conditions {
        println!(
            "  {} ({} of {} pairs complete)",
            c.condition, c.pairs_complete, r.setup.pairs
        );
        for (name, f) in &c.figures {
            let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
            println!(
                "    {name:<28} K {:>9}  V {:>9}  K/V {}",
                show(f.kist),
                show(f.vanilla),
                f.ratio.as_ref().map_or("-".to_owned(), |e| e.display(2))
            );
        }
    }
}
