//! What an experiment runs: its options, its conditions (with C Tor's figures on the same
//! testbed), and what one phase produced.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cmd::args::duration;
use crate::cmd::bench::net_child::NodeArgs;
use crate::cmd::bench::nodes::NodeSchedMetrics;
use crate::tgen::TgenReport;

/// `kistrel bench experiment` options.
#[derive(Debug, Clone, Args)]
pub struct ExperimentArgs {
    /// The experiment: `kist-vs-vanilla` runs the KIST papers' web + bulk mix over a shaped
    /// bottleneck per scheduler, alternated, under large fixed send buffers, default buffers
    /// and without bulk load, and writes experiment.json, SVG CDFs and report.md into --out.
    #[arg(value_enum, value_name = "NAME")]
    pub name: ExperimentName,
    /// Length of one phase.
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = duration)]
    pub phase: Duration,
    /// Phases per scheduler and condition (order flipped every pair).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub pairs: u32,
    /// `kistrel net --bottleneck` value (docs/spec/kist.md's C Tor testbed: 25 Mbit/s, ~42 ms of
    /// queue).
    #[arg(long, value_name = "RATE[,LATENCY]", default_value = "25mbit,42ms")]
    pub bottleneck: String,
    /// Web flows (320 KiB pages, think 0.5-3 s).
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub web_flows: u32,
    /// Bulk flows (5 MiB back to back).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub bulk_flows: u32,
    /// Only these conditions (default: all three).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub conditions: Vec<ConditionArg>,
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
    /// C Tor on the same testbed (docs/spec/kist.md): (web TTFB K, V), (web TTLB K, V), bulk K/V.
    pub c_tor: CTor,
}

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

/// One phase's outcome.
#[derive(Debug)]
pub(super) struct PhaseRun {
    pub condition: &'static str,
    pub scheduler: &'static str,
    pub round: u32,
    pub elapsed_s: f64,
    pub web: TgenReport,
    pub bulk: Option<TgenReport>,
    pub nodes: Vec<NodeSchedMetrics>,
    pub bottleneck_drops: Option<u64>,
    pub cpu: Vec<(String, f64)>,
}
