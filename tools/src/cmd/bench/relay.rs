//! `kistrel bench relay`: one middle relay under test, pinned to its own CPUs, between
//! load processes on the others, beside a plain TCP forwarder process on the same CPUs,
//! connections and traffic; at each worker count, so the rounds give the scaling curve.
//!
//! ```text
//!   pump --C links--> relay (W workers, CPUs 0..W-1) --one link per worker--> sink
//!   pump --C links--> kistrel-forward (W threads, same CPUs) --C links-------> sink
//!   round r: every condition once, in ABBA order; per phase: fresh target, warm-up,
//!            window between two snapshots, drain (every cell sent must arrive)
//! ```
//!
//! The load side is described in [`crate::load`], the forwarder in [`crate::forward`].
//! With `--relay ADDR` the bench only runs the load side, against a relay (and forwarders)
//! on another machine: see benches/README.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use clap::Args;

use super::job::write_json;
use crate::config::Backend;
use crate::error::CliError;
use crate::keys::RelayKeyFolder;
use crate::load::pump::Directions;
use crate::placement::{self, CpuList};
use crate::stats::{abba_order, DEFAULT_SEED};

mod child;
mod phase;
mod plan;
mod record;
mod report;
mod table;
#[cfg(test)]
mod tests;

use plan::{Condition, CpuPlan};
pub(super) use report::RelayReport;
use report::{RelayConfig, RelayPlacement, RoundRecord, SCHEMA};

/// What every column of the table means (`--help` and benches/README.md).
pub const COLUMNS: &str = "\
The table (stdout; progress goes to stderr), one row per target and worker count:
  target        relay (a `kistrel relay` middle relay) or forwarder (`kistrel-forward`,
                a plain TCP forwarder on the same io_uring loop, CPUs, connections, traffic)
  w             workers (relay) or threads (forwarder), each pinned to its own CPU; '*'
                marks a point whose CPUs include the load side's (too few CPUs)
  Mcells/s      relay cells delivered per second, both directions, data and acks (each
                cell went into the target and out again once); 514 bytes a cell
  cells/s/core  Mcells/s per worker;  Gbit/s/core: the same in bits of cells
  CPU-s/GiB     the target process's CPU seconds per 2^30 bytes of cells (/proc, the
                process only; '-' when it runs on another machine)
  util          fraction of the target's cores busy (CPU time);  load: of the load side's
                CPUs (pumps and sinks are single-threaded: one CPU each at most)
  lim           rounds in which the load side, not the target, was the limit: the load
                side's busiest process wanted a CPU (CPU + run-queue wait, so that time
                taken by other processes counts) >= 90% of the window, or its processes
                together used >= 90% of its CPUs, while the target's CPU time was < 90% of
                its cores; such a figure is a lower bound
Every figure is the median over rounds with its 95% interval (percentile bootstrap over
rounds, 10,000 resamples, seeded) and n; ratios are taken within a round (ABBA order):
  relay/forwarder   relay Mcells/s / forwarder Mcells/s (target >= 0.8)
  efficiency        relay cells per CPU-s / forwarder cells per CPU-s
  speedup           Mcells/s at w / Mcells/s at the first worker count (the scaling curve;
                    ideal: w / first)";

/// `kistrel bench relay` options.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = COLUMNS)]
pub struct RelayArgs {
    /// Worker counts to measure: `auto` (1, 2, 4, ... up to the relay's CPUs), `N`, `A-B` or
    /// a comma list.
    #[arg(long, default_value = "auto", value_parser = parse_workers_arg)]
    pub workers: WorkerList,
    /// Rounds: every figure is the median of this many per-round values (an even number
    /// balances the ABBA order exactly).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Warm-up of each phase before its window.
    #[arg(long, default_value = "2s", value_parser = crate::cmd::args::duration)]
    pub warmup: Duration,
    /// The measured window of each phase.
    #[arg(long, default_value = "5s", value_parser = crate::cmd::args::duration)]
    pub duration: Duration,
    /// The relay's and the load side's I/O backend (the forwarder always runs io_uring).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Backend::Uring)]
    pub backend: Backend,
    /// The load side.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Where things run.
    #[command(flatten)]
    pub pin: PinArgs,
    /// Load-only mode.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Also write the versioned machine-readable result (schema `kistrel.bench-relay/1`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the scaling curve as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Seed of the bootstrap intervals.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
}

/// `bench relay`: the load side's shape.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Pump/sink pairs (each a process; default: one per two load CPUs, at least one).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub pumps: Option<u32>,
    /// Links each pump opens to the target.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,
    /// Circuits per link (each carrying data one way).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub circuits: u32,
    /// Which way data flows.
    #[arg(long, value_enum, default_value_t = Directions::Both)]
    pub directions: Directions,
    /// CPU burnt per data cell by the pumps and sinks, ns: makes the load side the
    /// bottleneck on purpose (tests the load-limit flag).
    #[arg(long, default_value_t = 0, hide = true)]
    pub load_burn_ns: u64,
}

/// `bench relay`: CPU placement.
#[derive(Debug, Clone, Args)]
pub struct PinArgs {
    /// CPUs of the relay under test (default: all but the load side's).
    #[arg(long, value_name = "LIST")]
    pub relay_cpus: Option<CpuList>,
    /// CPUs of the load side (default: the last quarter, at least one).
    #[arg(long, value_name = "LIST")]
    pub load_cpus: Option<CpuList>,
    /// Pin nothing.
    #[arg(long, conflicts_with_all = ["relay_cpus", "load_cpus"])]
    pub no_pin: bool,
}

/// `bench relay`: load-only mode (the relay and forwarders run on another machine).
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Load only: the relay under test runs elsewhere, at this address.
    #[arg(long, value_name = "ADDR", requires_all = ["relay_keys", "sink_advertise"])]
    pub relay: Option<SocketAddr>,
    /// Load only: the relay's `IDENTITY_HEX,NTOR_BASE64` (as `kistrel keygen` prints them).
    #[arg(long, value_name = "ID,NTOR", requires = "relay")]
    pub relay_keys: Option<String>,
    /// Load only: the relay's worker count (for the per-core figures).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub relay_workers: u32,
    /// Load only: a forwarder on the relay's machine, one per pump, each forwarding to that
    /// pump's sink (`--sink-advertise`); repeat for several pumps.
    #[arg(long, value_name = "ADDR", requires = "relay")]
    pub forwarder: Vec<SocketAddr>,
    /// Load only: where sink *i* listens (port + i).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9200")]
    pub sink_listen: SocketAddr,
    /// Load only: the address the relay and forwarders reach sink *i* at (port + i).
    #[arg(long, value_name = "ADDR", requires = "relay")]
    pub sink_advertise: Option<SocketAddr>,
}

/// A parsed `--workers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerList(Option<Vec<u32>>);

fn parse_workers_arg(s: &str) -> Result<WorkerList, String> {
    plan::parse_workers(s).map(WorkerList)
}

/// The load side's settings, as every pump and sink gets them.
#[derive(Debug, Clone)]
struct LoadSettings {
    pumps: usize,
    connections: u32,
    circuits: u32,
    directions: Directions,
    backend: Backend,
    burn_ns: u64,
}

impl LoadSettings {
    fn directions_name(&self) -> &'static str {
        match self.directions {
            Directions::Forward => "forward",
            Directions::Backward => "backward",
            Directions::Both => "both",
        }
    }
}

/// Load-only mode: where the target and the sinks are.
#[derive(Debug, Clone)]
struct Remote {
    relay: SocketAddr,
    forwarders: Vec<SocketAddr>,
    sink_listen: SocketAddr,
    sink_advertise: SocketAddr,
}

impl Remote {
    fn nth(addr: SocketAddr, i: usize) -> SocketAddr {
        let mut a = addr;
        a.set_port(
            addr.port()
                .saturating_add(u16::try_from(i).unwrap_or(u16::MAX)),
        );
        a
    }

    fn sink_listen(&self, i: usize) -> SocketAddr {
        Self::nth(self.sink_listen, i)
    }

    fn sink_advertise(&self, i: usize) -> SocketAddr {
        Self::nth(self.sink_advertise, i)
    }
}

/// A relay config written for one phase.
#[derive(Debug)]
struct RelayFile {
    file: PathBuf,
    or_port: SocketAddr,
}

/// Everything the phases of one job share.
#[derive(Debug)]
struct Job {
    dir: PathBuf,
    kistrel: PathBuf,
    forward_bin: PathBuf,
    /// The relay's key folder (local mode).
    key_dir: PathBuf,
    /// `IDENTITY_HEX,NTOR_BASE64` of the relay.
    relay_keys: String,
    cpus: Option<CpuPlan>,
    load: LoadSettings,
    backend: Backend,
    warmup: Duration,
    duration: Duration,
    remote: Option<Remote>,
}

impl Job {
    /// Adds the options every load process `k` (pump0 sink0 pump1 ...) gets.
    fn load_args(&self, cmd: &mut Command, k: usize) {
        cmd.args(["--backend", self.load.backend.name()]);
        cmd.args(["--burn-ns", &self.load.burn_ns.to_string()]);
        if let Some(plan) = &self.cpus {
            cmd.args(["--cpus", &plan.load_process(k).to_string()]);
        }
    }

    /// CPUs the load side can keep busy.
    fn load_capacity(&self) -> usize {
        match &self.cpus {
            Some(plan) => plan.load_capacity(2 * self.load.pumps),
            None => 2 * self.load.pumps,
        }
    }

    /// Writes the relay config of a phase with `workers` workers on `cpus`.
    fn relay_config(
        &self,
        dir: &Path,
        workers: u32,
        cpus: Option<&CpuList>,
    ) -> Result<RelayFile, CliError> {
        let or_port = free_port()?;
        let mut text = format!(
            "Nickname = \"undertest\"\nORPort = \"{or_port}\"\nKeyDirectory = \"{}\"\n\
             Workers = {workers}\nBackend = \"{}\"\nLinks = \"plain\"\n",
            self.key_dir.display(),
            self.backend.name()
        );
        if let Some(cpus) = cpus {
            text.push_str(&format!("CPUAffinity = \"{cpus}\"\n"));
        }
        let file = dir.join("relay.toml");
        std::fs::write(&file, text)
            .map_err(|e| CliError::runtime(format!("writing {}", file.display()), e))?;
        Ok(RelayFile { file, or_port })
    }
}

/// A loopback port free now (the relay binds it a moment later).
fn free_port() -> Result<SocketAddr, CliError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| CliError::runtime("finding a free port", e))?;
    l.local_addr()
        .map_err(|e| CliError::runtime("finding a free port", e))
}

/// Runs `kistrel bench relay`.
pub fn run(args: &RelayArgs) -> Result<(), CliError> {
    validate(args)?;
    let tmp = tempfile::Builder::new()
        .prefix("kistrel-bench-relay-")
        .tempdir()
        .map_err(|e| CliError::runtime("creating a temporary folder", e))?;
    let (job, workers, placement) = setup(args, tmp.path())?;
    let report = measure(args, &job, &workers, placement)?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if let Some(path) = &args.svg {
        let svg = super::plot::curves_svg(
            "kistrel bench relay: scaling (median, 95% interval)",
            "workers (relay) / threads (forwarder)",
            "Mcells/s",
            &report::curves(&report),
        );
        std::fs::write(path, svg)
            .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
    }
    print!("{}", table::render(&report));
    if !report.conserved {
        return Err(CliError::runtime(
            "bench relay",
            "cells were lost: a phase's drain did not end with every cell delivered (see the JSON's rounds[].phases[].conserved)",
        ));
    }
    Ok(())
}

/// Checks what clap cannot, before any work.
fn validate(args: &RelayArgs) -> Result<(), CliError> {
    if let Some(path) = args.json.iter().chain(&args.svg).find(|p| {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .is_some_and(|d| !d.is_dir())
    }) {
        return Err(CliError::usage(
            format!("{}", path.display()),
            "its folder does not exist",
        ));
    }
    if let Some(keys) = &args.remote.relay_keys {
        crate::load::pump::parse_keys(keys).map_err(|e| CliError::usage("--relay-keys", e))?;
    }
    for cpus in args.pin.relay_cpus.iter().chain(&args.pin.load_cpus) {
        placement::check_allowed(cpus)
            .map_err(|e| CliError::usage("--relay-cpus/--load-cpus", e))?;
    }
    if args.remote.relay.is_some() && !args.remote.forwarder.is_empty() {
        let pumps = args.load.pumps.unwrap_or(1) as usize;
        if args.remote.forwarder.len() != pumps {
            return Err(CliError::usage(
                "--forwarder",
                format!(
                    "{} forwarders for {pumps} pumps: give one per pump",
                    args.remote.forwarder.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The job's processes, keys and CPUs; the worker counts; the placement to report.
fn setup(args: &RelayArgs, dir: &Path) -> Result<(Job, Vec<u32>, RelayPlacement), CliError> {
    let kistrel =
        std::env::current_exe().map_err(|e| CliError::runtime("finding this executable", e))?;
    let forward_bin =
        kistrel.with_file_name(format!("kistrel-forward{}", std::env::consts::EXE_SUFFIX));
    let remote = args.remote.relay.map(|relay| Remote {
        relay,
        forwarders: args.remote.forwarder.clone(),
        sink_listen: args.remote.sink_listen,
        sink_advertise: args
            .remote
            .sink_advertise
            .unwrap_or(args.remote.sink_listen),
    });
    if remote.is_none() && !forward_bin.is_file() {
        return Err(CliError::usage(
            format!("{}", forward_bin.display()),
            "kistrel-forward is not beside kistrel: build both (cargo build --release --bins)",
        ));
    }
    let key_dir = dir.join("keys");
    let relay_keys = match &args.remote.relay_keys {
        Some(k) => k.clone(),
        None => {
            let keys = RelayKeyFolder::generate_os(SystemTime::now(), &Default::default())?;
            keys.save(&key_dir)?;
            use base64::Engine as _;
            format!(
                "{},{}",
                hex::encode_upper(keys.rsa_id()),
                base64::engine::general_purpose::STANDARD.encode(keys.ntor_public())
            )
        }
    };
    let available = placement::allowed_cpus()?;
    let cpus = (remote.is_none() && !args.pin.no_pin).then(|| {
        CpuPlan::new(
            available.clone(),
            args.pin.relay_cpus.clone(),
            args.pin.load_cpus.clone(),
        )
    });
    let workers = match (&remote, &args.workers.0, &cpus) {
        (Some(_), _, _) => vec![args.remote.relay_workers],
        (None, Some(list), _) => list.clone(),
        (None, None, Some(plan)) => plan::auto_workers(plan.relay.len(), available.len()),
        (None, None, None) => plan::auto_workers(available.len(), available.len()),
    };
    let load_cpus = cpus.as_ref().map_or(available.len(), |p| p.load.len());
    let pumps = args
        .load
        .pumps
        .map_or((load_cpus / 2).max(1), |p| p as usize);
    let placement = placement_note(args, cpus.as_ref(), &workers, remote.is_some());
    let job = Job {
        dir: dir.to_path_buf(),
        kistrel,
        forward_bin,
        key_dir,
        relay_keys,
        cpus,
        load: LoadSettings {
            pumps,
            connections: args.load.connections,
            circuits: args.load.circuits,
            directions: args.load.directions,
            backend: args.backend,
            burn_ns: args.load.load_burn_ns,
        },
        backend: args.backend,
        warmup: args.warmup,
        duration: args.duration,
        remote,
    };
    Ok((job, workers, placement))
}

/// What the report says about where things ran.
fn placement_note(
    args: &RelayArgs,
    cpus: Option<&CpuPlan>,
    workers: &[u32],
    remote: bool,
) -> RelayPlacement {
    let note = match cpus {
        None if remote => {
            Some("load only: the relay runs elsewhere; the load side is not pinned".into())
        }
        None if args.pin.no_pin => Some("--no-pin".into()),
        None => None,
        Some(plan) => {
            let shared: Vec<String> = workers
                .iter()
                .filter(|&&w| plan.target(w).1)
                .map(|w| w.to_string())
                .collect();
            (!shared.is_empty()).then(|| {
                format!(
                    "{} worker(s): the target shares CPU(s) {} with the load side ({} CPUs are too few for a clean point)",
                    shared.join(", "),
                    plan.load,
                    plan.available.len()
                )
            })
        }
    };
    RelayPlacement {
        pinned: cpus.is_some(),
        cpus: cpus.cloned(),
        note,
    }
}

/// Runs every round and builds the report.
fn measure(
    args: &RelayArgs,
    job: &Job,
    workers: &[u32],
    placement: RelayPlacement,
) -> Result<RelayReport, CliError> {
    let forwarder = job.remote.as_ref().is_none_or(|r| !r.forwarders.is_empty());
    let conditions: Vec<Condition> = plan::conditions(workers, forwarder);
    let loadavg_start = super::procs::loadavg_1m();
    let mut rounds = Vec::new();
    for round in 0..args.rounds as usize {
        let order = abba_order(&conditions, round);
        let mut phases = Vec::new();
        for c in &order {
            eprintln!("round {}/{}: {}", round + 1, args.rounds, c.label());
            let p = phase::run(job, *c, round + 1)?;
            eprintln!(
                "  {:.3} Mcells/s, target CPU {}, limit {:?}{}",
                p.throughput.cells_per_s / 1e6,
                p.cost
                    .target_utilization
                    .map_or("-".into(), |u| format!("{:.0}%", u * 100.0)),
                p.limit,
                if p.conserved { "" } else { ", CELLS LOST" }
            );
            phases.push(p);
        }
        rounds.push(RoundRecord {
            round: round + 1,
            order: order.iter().map(|c| c.label()).collect(),
            phases,
        });
    }
    let points = report::points(&rounds, workers, forwarder, job.cpus.as_ref(), args.seed);
    let all = || rounds.iter().flat_map(|r| &r.phases);
    let load_limited = all().any(|p| p.load_limited);
    let mut notes: Vec<String> = placement.note.iter().cloned().collect();
    if load_limited {
        let n = all().filter(|p| p.load_limited).count();
        notes.push(format!(
            "{n} phase(s) were load-limited: their figures are lower bounds of the target's"
        ));
    }
    let cpus = placement::allowed_cpus()?;
    let loadavg = [loadavg_start, super::procs::loadavg_1m()];
    if let Some(busy) = loadavg.iter().flatten().copied().reduce(f64::max) {
        if busy > cpus.len() as f64 {
            notes.push(format!(
                "the machine was busy with other work (1-min load average up to {busy:.1} on {} CPUs): \
                 processes waited for CPUs (see target_demand/load_demand), so these figures \
                 are not the target's capacity",
                cpus.len()
            ));
        }
    }
    let machine = super::run::Machine::describe(cpus, loadavg);
    Ok(RelayReport {
        schema: SCHEMA,
        config: RelayConfig {
            mode: if job.remote.is_some() {
                "load-only"
            } else {
                "local"
            },
            rounds: rounds.len(),
            warmup_s: args.warmup.as_secs_f64(),
            window_s: args.duration.as_secs_f64(),
            workers: workers.to_vec(),
            pumps: job.load.pumps,
            connections_per_pump: args.load.connections,
            circuits_per_connection: args.load.circuits,
            directions: job.load.directions_name(),
            backend: args.backend.name(),
            links: "plain",
            seed: args.seed,
            load_burn_ns: args.load.load_burn_ns,
        },
        machine,
        placement,
        order: "abba",
        conditions: conditions.iter().map(|c| c.label()).collect(),
        figures: report::figures(&points),
        conserved: all().all(|p| p.conserved),
        load_limited,
        points,
        rounds,
        notes,
    })
}
