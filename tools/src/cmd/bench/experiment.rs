//! `kistrel bench experiment kist-vs-vanilla` (root): KIST against Vanilla on a shaped
//! network, the way docs/spec/kist.md measured C Tor on this machine.
//!
//! ```text
//! tgen (host) --SOCKS--> client ns -> guard ns -> middle ns <=tbf= router <- exit ns -> tgen server (host)
//!                                                       bottleneck toward the middle: all circuits
//!                                                       share one congested exit -> middle channel
//! ```
//!
//! Three conditions, each run as `--pairs` pairs of phases on fresh networks
//! (`kistrel net --bottleneck`), one KIST and one Vanilla phase per pair, the order flipped
//! every pair (K V, V K, ...: ABBA) so a drift on the machine falls on both sides:
//! - `large_buffers`: `tcp_wmem` 4 MiB fixed in every namespace (the papers' era);
//! - `default_buffers`: Linux's autotuning;
//! - `unloaded`: default buffers, web flows only (C Tor's KIST tick made TTFB 14 vs 5 ms).
//!
//! The load is the KIST papers' mix: web pages (320 KiB) arriving open-loop at `--web-rate`
//! from a schedule seeded per pair (both schedulers of a pair are offered the same pages at
//! the same times, whatever they complete), and bulk flows (5 MiB back to back), each flow on
//! its own circuit. A phase ends at its deadline; transfers still running are cut and count
//! by the bytes they delivered. Per phase: web pages offered / completed / in flight, TTFB and
//! TTLB of completed pages, bulk bytes delivered per second, and the relays' queue times from
//! their MetricsPorts. Each KIST / Vanilla ratio is computed within a pair and reported as the
//! median over pairs with a 95% bootstrap interval (crate::stats). Written next to each other:
//! `experiment.json`, SVG CDFs, and `report.md` drawn from the JSON. Exits 1 when a transfer
//! failed or a phase did not run (after writing everything).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use kistrel_sched::SchedulerKind;

use super::job::{write_json, METRICS_SETTLE};
use super::net_child::{NetChild, NetShape, NodeArgs};
use super::procs::{cpu_seconds, loadavg_1m, ProcessCpu};
use crate::error::CliError;
use crate::stats::abba_order;
use crate::tgen;

mod figures;
mod markdown;
mod phase;
mod setup;
mod summary;
#[cfg(test)]
mod tests;

use figures::{mib_s, phase_figures, PhaseFigures};
use phase::{drive, PhaseClients};
use setup::{Condition, PhaseNotRun, PhaseRun, CONDITIONS, SCHEDULERS};
pub use setup::{ConditionArg, ExperimentArgs, ExperimentName};
use summary::{condition_report, print_summary, ExperimentReport, SCHEMA};

/// Run the experiment; writes everything into `--out` (and `--json` if given). Err when the
/// run could not start, and also (after writing) when a transfer failed or a phase did not
/// run.
pub fn run(args: &ExperimentArgs) -> Result<(), CliError> {
    let ExperimentName::KistVsVanilla = args.name;
    crate::testbed::exec::check_privileges_and_tools()
        .map_err(|e| CliError::from(crate::cmd::net::NetError::from(e)))?;
    let names: Vec<&str> = args.conditions.iter().map(|c| c.name()).collect();
    let conditions: Vec<Condition> = CONDITIONS
        .iter()
        .copied()
        .filter(|c| names.is_empty() || names.contains(&c.name))
        .collect();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::runtime(format!("creating {}", args.out.display()), e))?;
    let tmp = tempfile::tempdir().map_err(|e| CliError::runtime("creating a temp folder", e))?;
    let base = args
        .nodes
        .dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let total = conditions.len() as u32 * args.pairs * 2;
    eprintln!(
        "kistrel bench experiment kist-vs-vanilla: {} conditions x {} pairs x 2 schedulers = {total} phases of {} s, bottleneck {}",
        conditions.len(),
        args.pairs,
        args.phase.as_secs_f64(),
        args.bottleneck
    );
    let load_start = loadavg_1m();
    let mut runs = Vec::new();
    let mut not_run = Vec::new();
    let mut done = 0;
    for cond in &conditions {
        for round in 0..args.pairs {
            for sched in abba_order(&SCHEDULERS, round as usize) {
                done += 1;
                eprintln!(
                    "  phase {done}/{total}: {} {sched} (round {round})",
                    cond.name
                );
                let dir = base.join(format!("{}-{sched}-{round}", cond.name));
                match run_phase(args, cond, sched, round, &dir) {
                    Ok(r) => runs.push(r),
                    Err(e) => {
                        eprintln!("  phase {done}/{total} did not run: {e}");
                        not_run.push(PhaseNotRun {
                            condition: cond.name,
                            scheduler: sched,
                            round,
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
    }
    let cpus = crate::placement::allowed_cpus()?;
    let machine = super::run::Machine::describe(cpus, [load_start, loadavg_1m()]);
    let report = summarise(args, &conditions, &runs, not_run, machine)?;
    for path in std::iter::once(args.out.join("experiment.json")).chain(args.json.clone()) {
        write_json(&path, &report)?;
    }
    let path = args.out.join(&report.report);
    std::fs::write(&path, markdown::render(&report))
        .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
    print_summary(&report);
    println!("  report: {}", path.display());
    report.verdict()
}

/// One phase on a fresh shaped network: web (and bulk) flows until the phase's deadline.
fn run_phase(
    args: &ExperimentArgs,
    cond: &Condition,
    sched: &'static str,
    round: u32,
    dir: &Path,
) -> Result<PhaseRun, CliError> {
    let extra = vec![
        "--bottleneck".to_owned(),
        args.bottleneck.clone(),
        "--tcp-wmem".to_owned(),
        cond.wmem.to_owned(),
        "--congestion".to_owned(),
        "cubic".to_owned(),
    ];
    let nodes = NodeArgs {
        scheduler: Some(if sched == "kist" {
            SchedulerKind::Kist
        } else {
            SchedulerKind::Vanilla
        }),
        ..args.nodes.clone()
    };
    let shape = NetShape {
        extra,
        ..NetShape::three_hops()
    };
    let net = NetChild::start(&nodes, &shape, dir)?;
    let Some(host) = net.host else {
        net.stop();
        return Err(CliError::runtime(
            "kistrel bench experiment",
            "kistrel net --bottleneck gave no host= address",
        ));
    };
    let server = match tgen::Server::start(SocketAddr::from((host, 0))) {
        Ok(s) => s,
        Err(e) => {
            net.stop();
            return Err(CliError::runtime("starting the tgen server", e));
        }
    };
    let clients = PhaseClients::new(args, cond, round, server.addr(), Some(net.socks));
    let pids = net.pids();
    let cpu_now = || -> Vec<f64> {
        pids.iter()
            .map(|(_, p)| cpu_seconds(*p).unwrap_or(0.0))
            .collect()
    };
    let before = cpu_now();
    let driven = drive(&clients);
    let after = cpu_now();
    std::thread::sleep(METRICS_SETTLE);
    let elapsed_s = driven.as_ref().map_or(0.0, |d| d.elapsed_s);
    let figures = net.scheduler_figures(elapsed_s);
    let bottleneck_drops = net
        .netns
        .as_deref()
        .and_then(|p| crate::cmd::net::shaped::bottleneck_stats(p).ok())
        .map(|q| q.drops);
    net.stop();
    drop(server);
    let driven = driven?;
    Ok(PhaseRun {
        condition: cond.name,
        scheduler: sched,
        round,
        elapsed_s,
        web_offered: clients.web_offered(),
        web: driven.web,
        bulk: driven.bulk,
        nodes: figures,
        bottleneck_drops,
        cpu: pids
            .iter()
            .zip(before.iter().zip(&after))
            .map(|((role, _), (b, a))| (role.clone(), a - b))
            .collect(),
    })
}

/// The report: per condition the comparison and charts, every phase's figures, CPU per role.
fn summarise(
    args: &ExperimentArgs,
    conditions: &[Condition],
    runs: &[PhaseRun],
    phases_not_run: Vec<PhaseNotRun>,
    machine: super::run::Machine,
) -> Result<ExperimentReport, CliError> {
    let phases: Vec<PhaseFigures> = runs.iter().map(|r| phase_figures(r, position(r))).collect();
    let mut plots = Vec::new();
    let mut reports = Vec::new();
    for cond in conditions {
        let mine: Vec<PhaseFigures> = phases
            .iter()
            .filter(|p| p.condition == cond.name)
            .cloned()
            .collect();
        let mine_runs: Vec<&PhaseRun> = runs.iter().filter(|r| r.condition == cond.name).collect();
        plots.extend(markdown::write_charts(
            &args.out, cond.name, cond.bulk, &mine_runs,
        )?);
        reports.push(condition_report(cond, &mine));
    }
    let (throughput_mib_s, cpu_s_per_gib) = cpu_per_gib(&phases, runs);
    Ok(ExperimentReport {
        schema: SCHEMA,
        experiment: "kist-vs-vanilla",
        setup: summary::setup(args),
        machine,
        conditions: reports,
        throughput_mib_s,
        cpu_s_per_gib,
        transfers_failed: phases
            .iter()
            .map(|p| p.web.failed + p.bulk.as_ref().map_or(0, |b| b.failed))
            .sum(),
        phases_not_run,
        phases,
        plots,
        report: "report.md".to_owned(),
    })
}

/// 0 when `r`'s scheduler ran first in its pair (the ABBA order of its round), else 1.
fn position(r: &PhaseRun) -> u32 {
    let order = abba_order(&SCHEDULERS, r.round as usize);
    u32::from(order[0] != r.scheduler)
}

/// Bytes delivered per second over every phase, and CPU seconds per role over every phase
/// per GiB of them.
fn cpu_per_gib(phases: &[PhaseFigures], runs: &[PhaseRun]) -> (f64, Vec<ProcessCpu>) {
    let bytes: u64 = phases
        .iter()
        .map(|p| p.web.bytes_delivered + p.bulk.as_ref().map_or(0, |b| b.bytes_delivered))
        .sum();
    let secs: f64 = phases.iter().map(|p| p.elapsed_s).sum();
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let mut cpu: BTreeMap<String, f64> = BTreeMap::new();
    for r in runs {
        for (role, s) in &r.cpu {
            *cpu.entry(role.clone()).or_default() += s;
        }
    }
    let per_gib = cpu
        .into_iter()
        .map(|(role, s)| ProcessCpu {
            role,
            pid: 0,
            cpu_s: s,
            cpu_s_per_gib: if gib > 0.0 { s / gib } else { 0.0 },
        })
        .collect();
    (mib_s(bytes, secs), per_gib)
}
