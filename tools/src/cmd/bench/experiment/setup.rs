//! What an experiment runs: its options, its conditions (with C Tor's reference figures, which
//! this command does not measure), the seeded web arrival schedule every phase of a round
//! shares, and what one phase produced.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cmd::args::duration;
use crate::cmd::bench::net_child::NodeArgs;
use crate::cmd::bench::nodes::NodeSchedMetrics;
use crate::tgen::{flow_rng, Arrivals, Model, TgenReport};

/// `kistrel bench experiment` options.
#[derive(Debug, Clone, Args)]
pub struct ExperimentArgs {
    /// The experiment: `kist-vs-vanilla` runs the KIST papers' web + bulk mix over a shaped
    /// bottleneck per scheduler, in counterbalanced pairs (K V, V K, ...), under large fixed
    /// send buffers, default buffers and without bulk load, and writes experiment.json, SVG
    /// CDFs and report.md into --out.
    #[arg(value_enum, value_name = "NAME")]
    pub name: ExperimentName,
    /// Length of one phase: it ends at this deadline; transfers still in flight count by the
    /// bytes they delivered.
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = duration)]
    pub phase: Duration,
    /// Pairs (one KIST and one Vanilla phase each) per condition; each KIST / Vanilla ratio
    /// is the median over pairs with a 95% bootstrap interval (at least 3 for an interval
    /// worth reading).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub pairs: u32,
    /// `kistrel net --bottleneck` value (docs/spec/kist.md's C Tor testbed: 25 Mbit/s, ~42 ms of
    /// queue).
    #[arg(long, value_name = "RATE[,LATENCY]", default_value = "25mbit,42ms")]
    pub bottleneck: String,
    /// Web flows (circuits; 320 KiB pages arriving open-loop, Poisson).
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub web_flows: u32,
    /// Web pages offered per second over all web flows (Poisson arrivals from a seeded
    /// schedule that both schedulers of a pair get, whatever they complete).
    #[arg(long, value_name = "PAGES_PER_S", default_value_t = 2.0, value_parser = positive_rate)]
    pub web_rate: f64,
    /// Bulk flows (5 MiB back to back).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub bulk_flows: u32,
    /// Only these conditions (default: all three).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub conditions: Vec<ConditionArg>,
    /// A note on the run's circumstances, kept in the JSON and shown in the report (e.g.
    /// "taken on a loaded machine (other builds running)").
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Folder for experiment.json, the SVG charts and report.md.
    #[arg(long, value_name = "DIR", default_value = "kistrel-experiment")]
    pub out: PathBuf,
    /// Also write experiment.json here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// The network.
    #[command(flatten)]
    pub nodes: NodeArgs,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("`{s}`: expected a number of pages per second > 0")),
    }
}

/// The experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExperimentName {
    /// KIST vs Vanilla on a shaped network.
    KistVsVanilla,
}

/// `--conditions` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConditionArg {
    /// tcp_wmem 4 MiB fixed, web + bulk.
    LargeBuffers,
    /// Linux's default autotuning, web + bulk.
    DefaultBuffers,
    /// Default buffers, web only.
    Unloaded,
}

impl ConditionArg {
    /// The condition's name in reports.
    pub(super) fn name(self) -> &'static str {
        match self {
            ConditionArg::LargeBuffers => "large_buffers",
            ConditionArg::DefaultBuffers => "default_buffers",
            ConditionArg::Unloaded => "unloaded",
        }
    }
}

/// One condition of the experiment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Condition {
    pub name: &'static str,
    /// `--tcp-wmem` value.
    pub wmem: &'static str,
    pub bulk: bool,
    /// C Tor's figures for this condition (not measured by this command).
    pub c_tor: CTor,
}

/// Where the C Tor figures come from: copied, never measured by this command.
pub(super) const C_TOR_SOURCE: &str = "docs/spec/kist.md, \"Measured here: C Tor 0.4.9 on a \
     shaped namespace testbed\" (closed-loop web clients, 45-60 s phases, 3 pairs; measured \
     once by hand, not rerun by this command)";

/// C Tor 0.4.9 on the same kind of testbed: (KIST, Vanilla) medians and the bulk ratio.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct CTor {
    pub web_ttfb_median_s: [f64; 2],
    pub web_ttlb_median_s: [f64; 2],
    pub bulk_throughput_ratio: Option<f64>,
}

pub(super) const CONDITIONS: [Condition; 3] = [
    Condition {
        name: "large_buffers",
        wmem: "4MiB,4MiB,4MiB",
        bulk: true,
        c_tor: CTor {
            web_ttfb_median_s: [0.224, 0.690],
            web_ttlb_median_s: [0.421, 1.240],
            bulk_throughput_ratio: Some(0.93),
        },
    },
    Condition {
        name: "default_buffers",
        wmem: "default",
        bulk: true,
        c_tor: CTor {
            web_ttfb_median_s: [0.224, 0.257],
            web_ttlb_median_s: [0.429, 0.464],
            bulk_throughput_ratio: Some(1.00),
        },
    },
    Condition {
        name: "unloaded",
        wmem: "default",
        bulk: false,
        c_tor: CTor {
            web_ttfb_median_s: [0.014, 0.005],
            web_ttlb_median_s: [0.176, 0.152],
            bulk_throughput_ratio: None,
        },
    },
];

pub(super) const SCHEDULERS: [&str; 2] = ["kist", "vanilla"];

/// The seed of every random choice of round `round` (web arrivals, sizes, payloads): a
/// function of the round alone, so the KIST and the Vanilla phase of a pair are offered the
/// same web arrivals at the same times.
pub(super) fn round_seed(round: u32) -> u64 {
    1000 * u64::from(round) + 7
}

/// The web model: 320 KiB pages arriving open-loop (Poisson) at `rate` per second and flow.
pub(super) fn web_model(rate: f64) -> Model {
    Model {
        arrivals: Arrivals::Open { rate },
        ..Model::web()
    }
}

/// The web pages offered in a phase of `phase` seeded `seed`: per flow, the arrival times
/// before the deadline, as tgen's client draws them (the web model is the client's first
/// model, flows 0..flows).
pub(super) fn offered_schedule(
    model: &Model,
    flows: u32,
    seed: u64,
    phase: Duration,
) -> Vec<Vec<Duration>> {
    (0..flows)
        .map(|f| {
            model
                .schedule(flow_rng(seed, 0, f))
                .map(|a| a.at)
                .take_while(|at| *at < phase)
                .collect()
        })
        .collect()
}

/// One phase's outcome.
#[derive(Debug)]
pub(super) struct PhaseRun {
    pub condition: &'static str,
    pub scheduler: &'static str,
    pub round: u32,
    /// Wall time from the clients' start until every transfer stopped (the deadline plus
    /// the moment the in-flight ones took to notice it).
    pub elapsed_s: f64,
    /// Web pages the schedule offered before the deadline.
    pub web_offered: u64,
    pub web: TgenReport,
    pub bulk: Option<TgenReport>,
    pub nodes: Vec<NodeSchedMetrics>,
    pub bottleneck_drops: Option<u64>,
    pub cpu: Vec<(String, f64)>,
}

/// A phase that did not run (its network did not start, a client could not run, ...).
#[derive(Debug, Clone, Serialize)]
pub(super) struct PhaseNotRun {
    pub condition: &'static str,
    pub scheduler: &'static str,
    pub round: u32,
    pub error: String,
}
