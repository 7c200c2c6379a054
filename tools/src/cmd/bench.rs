//! `kistrel bench`: brings up a local network (`kistrel net` as a child process: relays and a
//! client, each its own process), drives it with tgen, reports. One subcommand per job:
//!
//! - `run` (also `kistrel bench` with no subcommand): the main job, see [`run`];
//! - `check BASELINE`: the main job with both comparisons, checked against a baseline file
//!   ([`check`]);
//! - `soak DURATION`: long mixed traffic while relays are killed and restarted ([`soak`]);
//! - `experiment kist-vs-vanilla` (root): KIST against Vanilla on a shaped network
//!   ([`experiment`]);
//! - `relay`: one relay under test against a plain forwarder, and the scaling curve
//!   ([`relay`]; its load processes are the hidden `pump` and `sink`).
//!
//! Every job's network options are [`NodeArgs`]; each job has its own args struct.

use clap::{Args, Subcommand};

use crate::error::CliError;

pub mod check;
pub mod experiment;
mod job;
mod mix;
mod net_child;
pub mod nodes;
mod placement;
mod plot;
mod procs;
pub mod relay;
pub mod run;
pub mod schema;
pub mod soak;

pub use net_child::NodeArgs;
pub use nodes::{NodeSchedMetrics, Quantiles};

/// `kistrel bench [JOB]`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// The job (default: `run`).
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// `run`'s options, for `kistrel bench` without a subcommand.
    #[command(flatten)]
    pub run: run::RunArgs,
}

/// The bench jobs.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// The main job: N bulk transfers and two web flows through 3 hops, directly and through
    /// 3 plain TCP forwarders; throughput, TTFB/TTLB, CPU per GiB, scheduler figures.
    Run(run::RunArgs),
    /// The main job with the KIST/Vanilla and 2/1-worker comparisons, compared with a
    /// baseline file; exit 1 with a table when a figure regresses beyond its tolerance.
    Check(check::CheckArgs),
    /// Mixed tgen traffic through 5 relays for DURATION while relays are killed and
    /// restarted; transfers, verified bytes, RSS over time and fds (schema kistrel.soak/1).
    Soak(soak::SoakArgs),
    /// An experiment on a shaped network (root: network namespaces).
    Experiment(experiment::ExperimentArgs),
    /// One relay under test between load processes, beside a plain TCP forwarder process
    /// on the same CPUs and traffic, at each worker count: cells/s per core, CPU-s/GiB,
    /// relay / forwarder and the scaling curve.
    Relay(relay::RelayArgs),
    /// The load side's pump (started by `bench relay`; line protocol on stdin/stdout).
    #[command(hide = true)]
    Pump(crate::load::pump::PumpArgs),
    /// The load side's sink (started by `bench relay`; line protocol on stdin/stdout).
    #[command(hide = true)]
    Sink(crate::load::sink::SinkArgs),
}

/// Run the chosen job.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    match args.command {
        None => run::run(&args.run),
        Some(BenchCommand::Run(a)) => run::run(&a),
        Some(BenchCommand::Check(a)) => check::run(&a),
        Some(BenchCommand::Soak(a)) => soak::run(&a),
        Some(BenchCommand::Experiment(a)) => experiment::run(&a),
        Some(BenchCommand::Relay(a)) => relay::run(&a),
        Some(BenchCommand::Pump(a)) => {
            crate::parent::exit_with_parent();
            Ok(crate::load::pump::run(&a)?)
        }
        Some(BenchCommand::Sink(a)) => {
            crate::parent::exit_with_parent();
            Ok(crate::load::sink::run(&a)?)
        }
    }
}
