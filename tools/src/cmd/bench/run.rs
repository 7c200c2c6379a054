//! `kistrel bench run`: the main job. Runs a fixed tgen mix through the client's SOCKS port
//! (N bulk transfers at once on N isolated circuits, plus two web flows fetching pages
//! meanwhile) and reports throughput, time to first / last byte per model, CPU seconds per
//! GiB for every relay and each node's scheduler figures (from its MetricsPort's
//! histograms). The same mix made directly (no hops) and through three plain TCP
//! forwarders in the same run give the baseline ratios, so the figures stay meaningful on a
//! noisy machine.
//!
//! ```text
//!   tgen flows --SOCKS5--> client --> relay1 --> relay2 --> relay3 (exit) --> tgen server
//!   tgen flows --> forwarder --> forwarder --> forwarder ---------------------> tgen server
//!   tgen flows ---------------------------------------------------------------> tgen server
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use kistrel_sched::SchedulerKind;

use super::job::{net_dir, write_json, METRICS_SETTLE};
use super::mix::{run_mix, MixResult, MixSpec, WEB_FLOWS};
use super::net_child::{NetChild, NetShape, NodeArgs};
use super::nodes::NodeSchedMetrics;
use super::procs::{self, ProcessCpu};
use crate::error::CliError;
use crate::tgen::Server;

mod links;
mod report;
mod table;

pub(super) use report::Report;
use report::{SchedulerComparison, Throughput, WorkersComparison};

/// `kistrel bench run` options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Also write the versioned machine-readable result (schema `kistrel.bench/1`) here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Parallel transfers, each on its own circuit (SOCKS isolation).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub circuits: u32,
    /// MiB per transfer.
    #[arg(long, value_name = "MIB", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub size: u32,
    /// The network.
    #[command(flatten)]
    pub nodes: NodeArgs,
    /// Also run the same transfers with KIST and with Vanilla on fresh networks, alternated
    /// twice (KIST, Vanilla, KIST, Vanilla), and report the KIST / Vanilla throughput ratio.
    #[arg(long)]
    pub compare_schedulers: bool,
    /// Also run the relayed transfers with 2 workers per node and report 2-worker / 1-worker.
    #[arg(long)]
    pub compare_workers: bool,
    /// Also run the same transfers over TLS links and over plain links (the benchmark mode)
    /// on fresh networks, alternated twice (TLS, plain, TLS, plain), and report the TLS /
    /// plain throughput ratio and the CPU-s/GiB TLS adds per node role.
    #[arg(long)]
    pub compare_links: bool,
}

/// What the comparisons to run are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Comparisons {
    pub workers: bool,
    pub schedulers: bool,
    pub links: bool,
}

/// Run the main job.
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let compare = Comparisons {
        workers: args.compare_workers,
        schedulers: args.compare_schedulers,
        links: args.compare_links,
    };
    let (report, failed) = measure(args, compare)?;
    finish(args, &report)?;
    fail_on(failed)
}

/// Prints the table and writes the JSON.
pub(super) fn finish(args: &RunArgs, report: &Report) -> Result<(), CliError> {
    table::print(report);
    match &args.json {
        Some(path) => write_json(path, report),
        None => Ok(()),
    }
}

/// An error when transfers failed.
pub(super) fn fail_on(failed: u64) -> Result<(), CliError> {
    if failed > 0 {
        return Err(CliError::runtime(
            "kistrel bench",
            format!("{failed} transfer(s) failed or arrived corrupted"),
        ));
    }
    Ok(())
}

/// The main phase and the comparisons asked for: the report and the failed transfers.
pub(super) fn measure(args: &RunArgs, compare: Comparisons) -> Result<(Report, u64), CliError> {
    let tmp = tempfile::tempdir().map_err(|e| CliError::runtime("creating a temp folder", e))?;
    let dir = net_dir(&args.nodes, tmp.path());
    let spec = MixSpec {
        circuits: args.circuits,
        bulk_bytes: u64::from(args.size) << 20,
        seed: 2026,
    };
    let server = Server::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| CliError::runtime("starting the tgen server", e))?;
    let target = server.addr();
    eprintln!(
        "kistrel bench: {} bulk transfers of {} MiB + {WEB_FLOWS} web flows, direct, through 3 plain forwarders and through 3 hops",
        args.circuits, args.size,
    );
    let direct = run_mix(target, None, spec, "direct")?;
    let chain = plain_forwarder_chain(target, 3)?;
    let forwarded = run_mix(chain, None, spec, "fwd")?;
    let net = NetChild::start(&args.nodes, &NetShape::three_hops(), &dir)?;
    let pids = net.pids();
    let cpu_before: Vec<f64> = pids.iter().map(|(_, p)| cpu_or_zero(*p)).collect();
    let started = Instant::now();
    let relayed = run_mix(target, Some(net.socks), spec, "bench")?;
    let cpu_after: Vec<f64> = pids.iter().map(|(_, p)| cpu_or_zero(*p)).collect();
    // Workers publish their figures once a second: let the last second's arrive.
    std::thread::sleep(METRICS_SETTLE);
    let scheduler_metrics = net.scheduler_figures(started.elapsed().as_secs_f64());
    net.stop();

    let phase = Phase { target, spec };
    let workers_comparison = compare
        .workers
        .then(|| compare_workers(&phase, args, &dir, &relayed))
        .transpose()?;
    let scheduler_comparison = compare
        .schedulers
        .then(|| compare_schedulers(&phase, args, &dir))
        .transpose()?;
    let links_comparison = compare
        .links
        .then(|| links::compare_links(&phase, args, &dir))
        .transpose()?;

    let gib = relayed.bytes_ok() as f64 / (1u64 << 30) as f64;
    let cpu = cpu_per_gib(&pids, &cpu_before, &cpu_after, gib);
    let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
    let report = Report {
        schema: "kistrel.bench/1",
        circuits: args.circuits,
        transfer_mib: args.size,
        workers: args.nodes.workers,
        backend: args.nodes.backend.name(),
        links: args.nodes.links.name(),
        scheduler: args
            .nodes
            .scheduler
            .unwrap_or(SchedulerKind::Kist)
            .name()
            .to_ascii_lowercase(),
        throughput: Throughput {
            throughput_mib_s: relayed.throughput_mib_s(),
            direct_throughput_mib_s: direct.throughput_mib_s(),
            ratio_vs_direct: ratio(relayed.throughput_mib_s(), direct.throughput_mib_s()),
            forwarders_throughput_mib_s: forwarded.throughput_mib_s(),
            ratio_vs_forwarders: ratio(relayed.throughput_mib_s(), forwarded.throughput_mib_s()),
        },
        bytes_verified: relayed.bytes_ok(),
        scheduler_comparison,
        workers_comparison,
        links_comparison,
        transfers: BTreeMap::from([
            ("direct", direct.summaries()),
            ("relayed", relayed.summaries()),
            ("forwarded", forwarded.summaries()),
        ]),
        cpu_s_per_gib: cpu,
        scheduler_metrics,
    };
    let failed = relayed.failed() + direct.failed() + forwarded.failed();
    Ok((report, failed))
}

fn cpu_or_zero(pid: i32) -> f64 {
    procs::cpu_seconds(pid).unwrap_or(0.0)
}

/// Each process's CPU seconds between two readings, and per GiB moved.
fn cpu_per_gib(pids: &[(String, i32)], before: &[f64], after: &[f64], gib: f64) -> Vec<ProcessCpu> {
    pids.iter()
        .zip(before.iter().zip(after))
        .map(|((role, pid), (b, a))| ProcessCpu {
            role: role.clone(),
            pid: *pid,
            cpu_s: a - b,
            cpu_s_per_gib: if gib > 0.0 { (a - b) / gib } else { 0.0 },
        })
        .collect()
}

fn compare_workers(
    phase: &Phase,
    args: &RunArgs,
    dir: &Path,
    one: &MixResult,
) -> Result<WorkersComparison, CliError> {
    let nodes = NodeArgs {
        workers: 2,
        ..args.nodes.clone()
    };
    let two = phase
        .run(&nodes, &dir.with_file_name("net-2-workers"), "w2")?
        .mix;
    let (one, two) = (one.throughput_mib_s(), two.throughput_mib_s());
    Ok(WorkersComparison {
        one_worker_mib_s: one,
        two_workers_mib_s: two,
        two_over_one: two / one.max(f64::MIN_POSITIVE),
    })
}

fn compare_schedulers(
    phase: &Phase,
    args: &RunArgs,
    dir: &Path,
) -> Result<SchedulerComparison, CliError> {
    let (mut kist, mut vanilla) = (Vec::new(), Vec::new());
    let mut by_phase = Vec::new();
    for round in 0..4 {
        let kind = if round % 2 == 0 {
            SchedulerKind::Kist
        } else {
            SchedulerKind::Vanilla
        };
        let nodes = NodeArgs {
            scheduler: Some(kind),
            ..args.nodes.clone()
        };
        let name = kind.name().to_ascii_lowercase();
        let phase_dir = dir.with_file_name(format!("net-{name}-{round}"));
        let PhaseRun { mix, figures, .. } =
            phase.run(&nodes, &phase_dir, &format!("cmp{round}"))?;
        by_phase.push(figures);
        match kind {
            SchedulerKind::Kist => kist.push(mix.throughput_mib_s()),
            _ => vanilla.push(mix.throughput_mib_s()),
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let ratio = mean(&kist) / mean(&vanilla).max(f64::MIN_POSITIVE);
    Ok(SchedulerComparison {
        kist_mib_s: kist,
        vanilla_mib_s: vanilla,
        scheduler_metrics_by_phase: by_phase,
        kist_over_vanilla: ratio,
    })
}

/// One extra relayed phase on a fresh network (comparisons): the same mix, checked.
struct Phase {
    target: SocketAddr,
    spec: MixSpec,
}

/// What one extra phase measured.
struct PhaseRun {
    mix: MixResult,
    figures: Vec<NodeSchedMetrics>,
    /// Each node process's CPU over the transfers.
    cpu: Vec<ProcessCpu>,
}

impl Phase {
    fn run(&self, nodes: &NodeArgs, dir: &Path, label: &str) -> Result<PhaseRun, CliError> {
        let net = NetChild::start(nodes, &NetShape::three_hops(), dir)?;
        let pids = net.pids();
        let before: Vec<f64> = pids.iter().map(|(_, p)| cpu_or_zero(*p)).collect();
        let started = Instant::now();
        let mix = run_mix(self.target, Some(net.socks), self.spec, label)?;
        let after: Vec<f64> = pids.iter().map(|(_, p)| cpu_or_zero(*p)).collect();
        let gib = mix.bytes_ok() as f64 / (1u64 << 30) as f64;
        let cpu = cpu_per_gib(&pids, &before, &after, gib);
        std::thread::sleep(METRICS_SETTLE);
        let figures = net.scheduler_figures(started.elapsed().as_secs_f64());
        net.stop();
        if mix.failed() > 0 {
            return Err(CliError::runtime(
                "kistrel bench",
                format!("{} transfer(s) of phase {label} failed", mix.failed()),
            ));
        }
        Ok(PhaseRun { mix, figures, cpu })
    }
}

/// `hops` chained plain TCP forwarders in front of `upstream` (a thread per direction and
/// connection, 64 KiB buffers): the same-run baseline of "moving bytes through three
/// processes' worth of sockets" without cells or crypto. Returns the first one's address.
fn plain_forwarder_chain(upstream: SocketAddr, hops: usize) -> Result<SocketAddr, CliError> {
    let mut next = upstream;
    for _ in 0..hops {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| CliError::runtime("binding a forwarder", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::runtime("forwarder address", e))?;
        let to = next;
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(down) = conn else { continue };
                let Ok(up) = TcpStream::connect(to) else {
                    continue;
                };
                if let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) {
                    pipe(down, up);
                    pipe(u2, d2);
                }
            }
        });
        next = addr;
    }
    Ok(next)
}

/// Copies `from` into `into` on a thread until EOF, then half-closes `into`.
fn pipe(mut from: TcpStream, mut into: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if into.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = into.shutdown(std::net::Shutdown::Write);
    });
}
