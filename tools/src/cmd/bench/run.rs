//! `kistrel bench run`: the main job. Runs a fixed tgen mix (N bulk transfers at once on N
//! isolated circuits, plus two web flows fetching pages meanwhile) under several conditions
//! and reports throughput, time to first / last byte per model, CPU seconds per GiB for
//! every relay and each node's scheduler figures. Every figure is the median over rounds
//! with a 95% bootstrap interval; every ratio is taken within a round.
//!
//! ```text
//!   direct:     tgen flows -----------------------------------------------> tgen server
//!   forwarded:  tgen flows --> forwarder --> forwarder --> forwarder -------> tgen server
//!   relayed:    tgen flows --SOCKS5--> client --> relay1 --> relay2 --> relay3 --> tgen server
//!
//!   round 1: direct forwarded relayed [vanilla] [2 workers] [plain links]
//!   round 2: the same, reversed          (ABBA: each pair once in each order per 2 rounds)
//!   ...
//! ```
//!
//! Every relayed phase runs on a fresh network (its own `kistrel net`, new keys, new
//! circuits, the path pinned to relay1 (guard), relay2 (middle), relay3 (exit)); the
//! forwarders and the tgen server keep no state between connections, so every phase starts
//! from the same state.

use std::path::{Path, PathBuf};

use clap::Args;
use kistrel_engine::sys::SNAPSHOT_HAS_TCP_INFO;
use kistrel_sched::SchedulerKind;

use super::job::write_json;
use super::mix::{MixSpec, WEB_FLOWS};
use super::net_child::NodeArgs;
use super::placement::JobPlacement;
use crate::config::Backend;
use crate::error::CliError;
use crate::placement::CpuList;
use crate::stats::{abba_order, DEFAULT_SEED};
use crate::tgen::Server;

mod condition;
mod forwarders;
mod phase;
mod report;
mod table;
#[cfg(test)]
mod tests;

pub(super) use condition::{Comparisons, Condition, Plan};
use phase::Phases;
pub(super) use report::Report;
pub(super) use report::{Figure, Machine};
use report::{RoundRecord, RunConfig};

/// What every column of the table means (`--help` and benches/README.md).
pub const COLUMNS: &str = "\
The table (stdout; progress and logs go to stderr):
  figure        each figure is the median of its per-round values; ratios are taken
                within a round (both sides measured minutes apart, in ABBA order)
  median        the median over the rounds
  95% interval  percentile bootstrap of the median over rounds (10,000 resamples, seeded)
  n             rounds the figure comes from
  unit          MiB/s (payload, 2^20 bytes per second), ratio (first / second, so >1
                means the first is faster), CPU-s/GiB (CPU seconds per 2^30 payload bytes)
  (better)      whether a higher or a lower figure is better
Figures: throughput (bulk payload bytes verified / bulk wall time) through kistrel's 3 hops,
direct, and through 3 plain TCP forwarders; kistrel / direct; kistrel / plain forwarders;
KIST / Vanilla, 2 workers / 1 worker and TLS / plain links (with --compare-*); the busiest
relay's CPU-s/GiB and the 3 relays' together; the 3 forwarders' CPU-s/GiB (their copy
threads), and the relays' CPU over the forwarders' within a round (busiest relay / busiest
forwarder; 3 relays / 3 forwarders), which a slower or busier host moves much less; with
--compare-links, the CPU-s/GiB TLS links add to the guard (relay1), the middle (relay2) and
the exit (relay3): TLS minus plain within a round.
Latency: time to first byte (ttfb) and to last byte (ttlb) in seconds, ok transfers of all
rounds pooled; p50 needs n >= 2, p90 n >= 10, p99 n >= 100, otherwise '-' (max is shown).
Scheduler (the base condition, last round): runs/s; cells per run (p50); relay queue and
sampled kernel queue time in ms (p50/p99; '<0.01' is below the histogram's resolution,
p99 needs 100 samples, else the max and n).";

/// `kistrel bench run` options.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = COLUMNS)]
pub struct RunArgs {
    /// Also write the versioned machine-readable result (schema `kistrel.bench/4`) here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Parallel transfers, each on its own circuit (SOCKS isolation).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub circuits: u32,
    /// MiB per transfer.
    #[arg(long, value_name = "MIB", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub size: u32,
    /// Rounds: every figure is the median of this many per-round values (default 3; at
    /// least 3 for an interval worth reading; an even number balances the ABBA order
    /// exactly). `bench check`: the baseline's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
    /// The network.
    #[command(flatten)]
    pub nodes: NodeArgs,
    /// Also run every round with KIST and with Vanilla (each on a fresh network) and report
    /// KIST / Vanilla.
    #[arg(long)]
    pub compare_schedulers: bool,
    /// Also run every round with 1 and 2 workers per node and report 2 / 1.
    #[arg(long)]
    pub compare_workers: bool,
    /// Also run every round over plain links (the benchmark mode) beside TLS links, each on
    /// a fresh network, and report TLS / plain throughput and the CPU-s/GiB TLS adds to the
    /// guard, the middle and the exit.
    #[arg(long)]
    pub compare_links: bool,
}

/// Rounds when `--rounds` is not given (`bench run`).
pub const DEFAULT_ROUNDS: u32 = 3;

impl RunArgs {
    /// `--rounds`, or [`DEFAULT_ROUNDS`].
    pub fn rounds(&self) -> u32 {
        self.rounds.unwrap_or(DEFAULT_ROUNDS)
    }

    /// Checks what clap cannot before any work starts: the JSON file's folder exists, and
    /// the poll backend is not asked to run KIST where it has no TCP_INFO (off Linux).
    pub(super) fn validate(&self, compare: Comparisons) -> Result<(), CliError> {
        if self.nodes.backend == Backend::Poll && !SNAPSHOT_HAS_TCP_INFO {
            let kist = "KIST needs TCP_INFO, which the poll backend does not read";
            if self.nodes.scheduler == Some(SchedulerKind::Kist) {
                return Err(CliError::usage(
                    "--scheduler KIST --backend poll",
                    format!("{kist}: pick KISTLite or Vanilla, or --backend uring"),
                ));
            }
            if compare.schedulers {
                return Err(CliError::usage(
                    "comparing schedulers on --backend poll",
                    format!("{kist}: compare on --backend uring"),
                ));
            }
        }
        if let Some(path) = &self.json {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|p| !p.is_dir()) {
                return Err(CliError::usage(
                    format!("--json {}", path.display()),
                    "its folder does not exist",
                ));
            }
        }
        Ok(())
    }
}

/// Run the main job.
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let compare = Comparisons {
        workers: args.compare_workers,
        schedulers: args.compare_schedulers,
        links: args.compare_links,
    };
    args.validate(compare)?;
    let report = measure(args, compare)?;
    finish(args, &report)?;
    fail_on(&report)
}

/// Prints the table and writes the JSON.
pub(super) fn finish(args: &RunArgs, report: &Report) -> Result<(), CliError> {
    table::print(report);
    match &args.json {
        Some(path) => write_json(path, report),
        None => Ok(()),
    }
}

/// An error when transfers failed or a node did not run where it was placed.
pub(super) fn fail_on(report: &Report) -> Result<(), CliError> {
    if report.failed_transfers > 0 {
        return Err(CliError::runtime(
            "kistrel bench",
            format!(
                "{} transfer(s) failed or arrived corrupted",
                report.failed_transfers
            ),
        ));
    }
    if let Some(d) = report.placement_differences.first() {
        return Err(CliError::runtime(
            "kistrel bench",
            format!(
                "{} placement difference(s), e.g. {d}",
                report.placement_differences.len()
            ),
        ));
    }
    Ok(())
}

/// The base condition of `nodes`: its scheduler, workers and links. Without `--scheduler`, the
/// first of Tor's default list (KIST, KISTLite, Vanilla) the backend can run: KIST, or
/// KISTLite on poll off Linux (no TCP_INFO there). Every relayed phase names its scheduler
/// exactly, so a label never hides a fallback.
fn base_condition(nodes: &NodeArgs) -> Condition {
    let default = match nodes.backend {
        Backend::Poll if !SNAPSHOT_HAS_TCP_INFO => SchedulerKind::KistLite,
        Backend::Auto | Backend::Uring | Backend::Poll => SchedulerKind::Kist,
    };
    Condition::Relayed {
        scheduler: nodes.scheduler.unwrap_or(default),
        workers: nodes.workers,
        links: nodes.links,
    }
}

/// Every round of the job: the report (whatever the transfers' outcomes).
pub(super) fn measure(args: &RunArgs, compare: Comparisons) -> Result<Report, CliError> {
    // Before any folder exists: a bad --cpus is a usage error that leaves nothing behind.
    let placement = JobPlacement::new(&args.nodes, 3)?;
    let tmp = tempfile::Builder::new()
        .prefix("kistrel-bench-")
        .tempdir()
        .map_err(|e| CliError::runtime("creating a temp folder", e))?;
    let root = args
        .nodes
        .dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let result = measure_in(args, compare, &root, &placement);
    if result.is_err() && args.nodes.dir.is_none() {
        // The error names a log under `root`: keep it.
        let kept = tmp.keep();
        eprintln!(
            "kistrel bench: networks' files and logs kept in {}",
            kept.display()
        );
    }
    result
}

fn measure_in(
    args: &RunArgs,
    compare: Comparisons,
    root: &Path,
    placement: &JobPlacement,
) -> Result<Report, CliError> {
    let plan = Plan::new(base_condition(&args.nodes), compare);
    let machine_cpus = placement.summary(args.nodes.workers).cpus_available;
    let load_before = crate::cmd::bench::procs::loadavg_1m();
    eprintln!(
        "kistrel bench: {} x {} MiB bulk + {WEB_FLOWS} web flows, {} round(s) of {}; {}",
        args.circuits,
        args.size,
        args.rounds(),
        plan.conditions
            .iter()
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join(", "),
        placement.describe(args.nodes.workers)
    );
    let server = placement
        .as_server(|| {
            Server::start(std::net::SocketAddr::from((
                std::net::Ipv4Addr::LOCALHOST,
                0,
            )))
        })?
        .map_err(|e| CliError::runtime("starting the tgen server", e))?;
    let hops: Vec<Option<CpuList>> = (0..3)
        .map(|hop| placement.forwarder_cpus(args.nodes.workers, hop))
        .collect();
    let chain = forwarders::chain(server.addr(), &hops)?;
    let phases = Phases {
        target: server.addr(),
        forwarders: &chain,
        spec: MixSpec {
            circuits: args.circuits,
            bulk_bytes: u64::from(args.size) << 20,
            seed: 2026,
        },
        nodes: &args.nodes,
        root: root.to_path_buf(),
        placement,
    };
    let mut rounds = Vec::new();
    for round in 0..args.rounds() as usize {
        let order = abba_order(&plan.conditions, round);
        let mut record = RoundRecord {
            round: round + 1,
            order: order.iter().map(|c| c.label()).collect(),
            phases: Vec::new(),
        };
        for c in order {
            record.phases.push(phases.run(c, round + 1)?);
        }
        rounds.push(record);
    }
    let config = RunConfig {
        circuits: args.circuits,
        transfer_mib: args.size,
        web_flows: WEB_FLOWS,
        workers: args.nodes.workers,
        backend: args.nodes.backend.name(),
        scheduler: args
            .nodes
            .scheduler
            .unwrap_or(SchedulerKind::Kist)
            .name()
            .to_owned(),
        links: args.nodes.links.name(),
        base_condition: plan.base.label(),
        rounds: rounds.len(),
        seed: DEFAULT_SEED,
        testing_cell_cost_ns: args
            .nodes
            .testing_cell_cost
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    };
    let machine = Machine::describe(
        machine_cpus,
        [load_before, crate::cmd::bench::procs::loadavg_1m()],
    );
    Ok(report::build(
        config,
        machine,
        placement.summary(args.nodes.workers),
        &plan,
        rounds,
    ))
}
