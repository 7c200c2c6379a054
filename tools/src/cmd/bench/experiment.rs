//! `kistrel bench experiment kist-vs-vanilla` (root): KIST against Vanilla on a shaped
//! network, the way docs/spec/kist.md measured C Tor on this machine.
//!
//! ```text
//! tgen (host) --SOCKS--> client ns -> guard ns -> middle ns <=tbf= router <- exit ns -> tgen server (host)
//!                                                       bottleneck toward the middle: all circuits
//!                                                       share one congested exit -> middle channel
//! ```
//!
//! Three conditions, each run as phases on fresh networks (`kistrel net --bottleneck`),
//! schedulers alternated and the order flipped every pair (K V, V K, ...) so one noisy phase
//! cannot decide a ratio:
//! - `large_buffers`: `tcp_wmem` 4 MiB fixed in every namespace (the papers' era);
//! - `default_buffers`: Linux's autotuning;
//! - `unloaded`: default buffers, web flows only (C Tor's KIST tick made TTFB 14 vs 5 ms).
//!
//! The load is the KIST papers' mix: web flows (320 KiB pages; think time uniform 0.5-3 s
//! rather than the papers' 1-60 s, so minute-long phases collect enough pages) and bulk flows
//! (5 MiB back to back), each flow on its own circuit. Figures per scheduler: web TTFB / TTLB
//! (medians over every page of every phase), bulk goodput, and the relays' queue times from
//! their MetricsPorts (relay queue per cell; kernel queue sampled every 100 ms on every busy
//! channel socket, whatever the scheduler). Written next to each other: `experiment.json`,
//! SVG CDFs, and `report.md` embedding them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use kistrel_sched::SchedulerKind;

use super::job::{write_json, METRICS_SETTLE};
use super::mix::web_model;
use super::net_child::{NetChild, NetShape, NodeArgs};
use super::procs::{cpu_seconds, ProcessCpu};
use crate::error::CliError;
use crate::tgen::{self, ClientOptions, Model, ModelFlows, TgenReport};

mod markdown;
mod setup;
mod summary;

use setup::{Condition, PhaseRun, CONDITIONS, SCHEDULERS};
pub use setup::{ConditionArg, ExperimentArgs, ExperimentName};
use summary::{
    compare, figures_of, merged_summary, phase_summary, print_summary, ExperimentReport, Setup,
};

/// Run the experiment; writes everything into `--out` (and `--json` if given).
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
        args.phase.as_secs(),
        args.bottleneck
    );
    let mut runs = Vec::new();
    for cond in &conditions {
        for round in 0..args.pairs {
            // K V, V K, K V, ...: neither scheduler always runs first.
            let order = if round % 2 == 0 {
                SCHEDULERS
            } else {
                [SCHEDULERS[1], SCHEDULERS[0]]
            };
            for sched in order {
                let dir = base.join(format!("{}-{sched}-{round}", cond.name));
                eprintln!(
                    "  phase {}/{total}: {} {sched} (round {round})",
                    runs.len() + 1,
                    cond.name
                );
                runs.push(run_phase(args, cond, sched, round, &dir)?);
            }
        }
    }
    let report = summarise(args, &conditions, &runs)?;
    for path in std::iter::once(args.out.join("experiment.json")).chain(args.json.clone()) {
        write_json(&path, &report)?;
    }
    print_summary(&report);
    println!("  report: {}", args.out.join(&report.report).display());
    let failed: u64 = runs
        .iter()
        .map(|r| r.web.failed() + r.bulk.as_ref().map_or(0, TgenReport::failed))
        .sum();
    if failed > 0 {
        eprintln!("kistrel bench experiment: {failed} transfer(s) failed (see the JSON)");
    }
    Ok(())
}

/// One phase on a fresh shaped network: web (and bulk) flows for `args.phase`.
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
    let server = tgen::Server::start(SocketAddr::from((host, 0)))
        .map_err(|e| CliError::runtime("starting the tgen server", e))?;
    let pids = net.pids();
    let before: Vec<f64> = pids
        .iter()
        .map(|(_, p)| cpu_seconds(*p).unwrap_or(0.0))
        .collect();
    let options = |model: Model, flows: u32, seed: u64| {
        let mut o = ClientOptions::new(server.addr());
        o.socks = Some(net.socks);
        o.duration = Some(args.phase);
        o.seed = seed;
        o.models = vec![ModelFlows { model, flows }];
        o
    };
    let seed = 1000 * u64::from(round) + 7;
    let web_opts = options(web_model(0.5, 3.0), args.web_flows, seed);
    let bulk_opts = options(Model::bulk(), args.bulk_flows, seed + 1);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (web, bulk) = std::thread::scope(|s| {
        let bulk = cond
            .bulk
            .then(|| s.spawn(|| tgen::run_client(&bulk_opts, &stop)));
        let web = tgen::run_client(&web_opts, &stop);
        let bulk = bulk.map(|h| {
            h.join()
                .map_err(|_| CliError::runtime("kistrel bench", "the bulk flows panicked"))
        });
        (web, bulk)
    });
    let elapsed_s = started.elapsed().as_secs_f64();
    let after: Vec<f64> = pids
        .iter()
        .map(|(_, p)| cpu_seconds(*p).unwrap_or(0.0))
        .collect();
    std::thread::sleep(METRICS_SETTLE);
    let figures = net.scheduler_figures(elapsed_s);
    let bottleneck_drops = net
        .netns
        .as_deref()
        .and_then(|p| crate::cmd::net::shaped::bottleneck_stats(p).ok())
        .map(|q| q.drops);
    net.stop();
    drop(server);
    let web = web.map_err(|e| CliError::runtime("tgen (web)", e))?;
    let bulk = match bulk {
        Some(b) => Some(b?.map_err(|e| CliError::runtime("tgen (bulk)", e))?),
        None => None,
    };
    Ok(PhaseRun {
        condition: cond.name,
        scheduler: sched,
        round,
        elapsed_s,
        web,
        bulk,
        nodes: figures,
        bottleneck_drops,
        cpu: pids
            .iter()
            .zip(before.iter().zip(&after))
            .map(|((role, _), (b, a))| (role.clone(), a - b))
            .collect(),
    })
}

/// The report: per condition the comparison, merged transfer summaries, a report.md
/// section and charts; CPU per role over every phase.
fn summarise(
    args: &ExperimentArgs,
    conditions: &[Condition],
    runs: &[PhaseRun],
) -> Result<ExperimentReport, CliError> {
    let mut transfers = BTreeMap::new();
    let mut plots = Vec::new();
    let mut comparisons = BTreeMap::new();
    let mut md = markdown::header(args);
    for cond in conditions {
        let of = |sched: &str| {
            let mine: Vec<&PhaseRun> = runs
                .iter()
                .filter(|r| r.condition == cond.name && r.scheduler == sched)
                .collect();
            figures_of(&mine)
        };
        let (k, v) = (of("kist"), of("vanilla"));
        for (sched, f) in [("kist", &k), ("vanilla", &v)] {
            let mut models = BTreeMap::new();
            models.insert(
                "web".to_owned(),
                merged_summary(&f.web, "web", args.web_flows, f.secs),
            );
            if cond.bulk {
                models.insert(
                    "bulk".to_owned(),
                    merged_summary(&f.bulk, "bulk", args.bulk_flows, f.secs),
                );
            }
            transfers.insert(format!("{}/{sched}", cond.name), models);
        }
        let c = compare(cond, args.pairs, &k, &v);
        md.push_str(&markdown::condition(
            &args.out, cond, &c, &k, &v, &mut plots,
        )?);
        comparisons.insert(cond.name, c);
    }
    let report_name = "report.md".to_owned();
    let path = args.out.join(&report_name);
    std::fs::write(&path, md)
        .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
    let (throughput_mib_s, cpu_s_per_gib) = cpu_per_gib(runs);
    Ok(ExperimentReport {
        schema: "kistrel.bench/1",
        experiment: "kist-vs-vanilla",
        setup: Setup {
            bottleneck: args.bottleneck.clone(),
            phase_s: args.phase.as_secs_f64(),
            pairs: args.pairs,
            web_flows: args.web_flows,
            bulk_flows: args.bulk_flows,
        },
        throughput_mib_s,
        transfers,
        cpu_s_per_gib,
        comparison: comparisons.remove("large_buffers"),
        comparison_default_buffers: comparisons.remove("default_buffers"),
        comparison_unloaded: comparisons.remove("unloaded"),
        phases: runs.iter().map(phase_summary).collect(),
        plots,
        report: report_name,
    })
}

/// The aggregate verified payload rate over every phase, and CPU seconds per role over
/// every phase per GiB of that payload.
fn cpu_per_gib(runs: &[PhaseRun]) -> (f64, Vec<ProcessCpu>) {
    let bytes: u64 = runs
        .iter()
        .map(|r| {
            r.web.models.values().map(|m| m.bytes).sum::<u64>()
                + r.bulk
                    .as_ref()
                    .map_or(0, |b| b.models.values().map(|m| m.bytes).sum::<u64>())
        })
        .sum();
    let secs: f64 = runs.iter().map(|r| r.elapsed_s).sum();
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
    (
        bytes as f64 / f64::from(1u32 << 20) / secs.max(f64::MIN_POSITIVE),
        per_gib,
    )
}
