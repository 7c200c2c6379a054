//! `kistrel bench --experiment kist-vs-vanilla` (root): KIST against Vanilla on a shaped
//! network, the way spec/kist.md measured C Tor on this machine.
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
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::net_child::NetChild;
use super::plot::{cdf_svg, Series};
use super::scrape::{NodeSchedMetrics, Quantiles};
use super::{cpu_seconds, BenchArgs, ProcessCpu};
use crate::error::CliError;
use crate::tgen::{
    self, ClientOptions, Model, ModelFlows, ModelSummary, Outcome, TgenReport, TransferRecord,
};

/// What to run.
#[derive(Debug, Clone)]
pub(super) struct ExperimentOptions {
    /// Length of one phase.
    pub phase: Duration,
    /// Phases per scheduler per condition.
    pub pairs: u32,
    /// `RATE[,LATENCY]` for `kistrel net --bottleneck`.
    pub bottleneck: String,
    /// Web flows.
    pub web_flows: u32,
    /// Bulk flows (loaded conditions).
    pub bulk_flows: u32,
    /// Folder for experiment.json, the SVGs and report.md.
    pub out: PathBuf,
    /// Conditions to run (names as in the module doc); empty = all three.
    pub conditions: Vec<&'static str>,
}

/// One condition of the experiment.
#[derive(Debug, Clone, Copy)]
struct Condition {
    name: &'static str,
    /// `--tcp-wmem` value.
    wmem: &'static str,
    bulk: bool,
    /// C Tor on the same testbed (spec/kist.md): (web TTFB K, V), (web TTLB K, V), bulk K/V.
    c_tor: CTor,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct CTor {
    web_ttfb_median_s: [f64; 2],
    web_ttlb_median_s: [f64; 2],
    bulk_throughput_ratio: Option<f64>,
}

const CONDITIONS: [Condition; 3] = [
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

const SCHEDULERS: [&str; 2] = ["kist", "vanilla"];

/// One phase's outcome.
#[derive(Debug)]
struct PhaseRun {
    condition: &'static str,
    scheduler: &'static str,
    round: u32,
    elapsed_s: f64,
    web: TgenReport,
    bulk: Option<TgenReport>,
    nodes: Vec<NodeSchedMetrics>,
    bottleneck_drops: Option<u64>,
    cpu: Vec<(String, f64)>,
}

/// `{"kist": .., "vanilla": ..}`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Pair {
    kist: f64,
    vanilla: f64,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.kist / self.vanilla.max(f64::MIN_POSITIVE)
    }
}

/// One condition's KIST / Vanilla figures.
#[derive(Debug, Serialize)]
struct Comparison {
    condition: &'static str,
    phases_per_scheduler: u32,
    web_ttlb_median_ratio: f64,
    web_ttfb_median_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bulk_throughput_ratio: Option<f64>,
    web_ttfb_median_s: Pair,
    web_ttlb_median_s: Pair,
    web_ttlb_p90_s: Pair,
    web_pages: Pair,
    #[serde(skip_serializing_if = "Option::is_none")]
    bulk_mib_s: Option<Pair>,
    /// Worst relay's p99 of the sampled kernel queue time, median over phases.
    kernel_queue_p99_ms: Pair,
    /// Worst relay's p99 of a cell's time in the relay queue, median over phases.
    relay_queue_p99_ms: Pair,
    bottleneck_drops: Pair,
    /// The same figures for C Tor 0.4.9 on this machine's testbed (spec/kist.md).
    c_tor: CTorComparison,
}

#[derive(Debug, Serialize)]
struct CTorComparison {
    web_ttfb_median_s: Pair,
    web_ttlb_median_s: Pair,
    web_ttfb_median_ratio: f64,
    web_ttlb_median_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bulk_throughput_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
struct PhaseSummary {
    condition: &'static str,
    scheduler: &'static str,
    round: u32,
    elapsed_s: f64,
    web_ok: u64,
    web_failed: u64,
    bulk_ok: u64,
    bulk_failed: u64,
    bulk_mib_s: f64,
    web_ttlb_median_s: f64,
    kernel_queue_p99_ms: f64,
    relay_queue_p99_ms: f64,
    bottleneck_drops: Option<u64>,
    nodes: Vec<NodeSchedMetrics>,
}

#[derive(Debug, Serialize)]
struct ExperimentReport {
    schema: &'static str,
    experiment: &'static str,
    bottleneck: String,
    phase_s: f64,
    pairs: u32,
    web_flows: u32,
    bulk_flows: u32,
    /// Aggregate verified payload rate over every phase (web and bulk).
    throughput_mib_s: f64,
    /// Per `condition/scheduler`, per model: tgen summaries over all its phases.
    transfers: BTreeMap<String, BTreeMap<String, ModelSummary>>,
    /// Per process role, over every phase.
    cpu_s_per_gib: Vec<ProcessCpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison_default_buffers: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison_unloaded: Option<Comparison>,
    phases: Vec<PhaseSummary>,
    plots: Vec<String>,
    report: String,
}

/// Run the experiment; writes everything into `opts.out` (and `--json` if given).
pub(super) fn run(args: &BenchArgs, opts: &ExperimentOptions) -> Result<(), CliError> {
    crate::testbed::exec::check_privileges_and_tools()
        .map_err(|e| CliError::from(crate::cmd::net::NetError::from(e)))?;
    let conditions: Vec<Condition> = CONDITIONS
        .iter()
        .copied()
        .filter(|c| opts.conditions.is_empty() || opts.conditions.contains(&c.name))
        .collect();
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| CliError::runtime(format!("creating {}", opts.out.display()), e))?;
    let tmp = tempfile::tempdir().map_err(|e| CliError::runtime("creating a temp folder", e))?;
    let base = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let total = conditions.len() as u32 * opts.pairs * 2;
    eprintln!(
        "kistrel bench --experiment kist-vs-vanilla: {} conditions x {} pairs x 2 schedulers = {total} phases of {} s, bottleneck {}",
        conditions.len(),
        opts.pairs,
        opts.phase.as_secs(),
        opts.bottleneck
    );
    let mut runs = Vec::new();
    for cond in &conditions {
        for round in 0..opts.pairs {
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
                runs.push(run_phase(args, opts, cond, sched, round, &dir)?);
            }
        }
    }
    let report = summarise(opts, &conditions, &runs)?;
    let text =
        serde_json::to_string_pretty(&report).map_err(|e| CliError::runtime("encoding JSON", e))?;
    for path in std::iter::once(opts.out.join("experiment.json")).chain(args.json.clone()) {
        std::fs::write(&path, text.clone() + "\n")
            .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
    }
    print_summary(&report);
    println!("  report: {}", opts.out.join(&report.report).display());
    let failed: u64 = runs
        .iter()
        .map(|r| r.web.failed() + r.bulk.as_ref().map_or(0, TgenReport::failed))
        .sum();
    if failed > 0 {
        eprintln!("kistrel bench --experiment: {failed} transfer(s) failed (see the JSON)");
    }
    Ok(())
}

fn run_phase(
    args: &BenchArgs,
    opts: &ExperimentOptions,
    cond: &Condition,
    sched: &'static str,
    round: u32,
    dir: &Path,
) -> Result<PhaseRun, CliError> {
    let extra = vec![
        "--bottleneck".to_owned(),
        opts.bottleneck.clone(),
        "--tcp-wmem".to_owned(),
        cond.wmem.to_owned(),
        "--congestion".to_owned(),
        "cubic".to_owned(),
    ];
    let phase_args = BenchArgs {
        scheduler: Some(sched.to_owned()),
        ..args.clone()
    };
    let net = NetChild::start_with(&phase_args, dir, 3, false, &extra)?;
    let Some(host) = net.host else {
        net.stop();
        return Err(CliError::runtime(
            "kistrel bench --experiment",
            "kistrel net --bottleneck gave no host= address",
        ));
    };
    let server = tgen::Server::start(SocketAddr::from((host, 0)))
        .map_err(|e| CliError::runtime("starting the tgen server", e))?;
    let pids = net.pids();
    let before: Vec<f64> = pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let options = |model: Model, flows: u32, seed: u64| {
        let mut o = ClientOptions::new(server.addr());
        o.socks = Some(net.socks);
        o.duration = Some(opts.phase);
        o.seed = seed;
        o.models = vec![ModelFlows { model, flows }];
        o
    };
    let seed = 1000 * u64::from(round) + 7;
    let web_opts = options(super::mix::web_model(0.5, 3.0), opts.web_flows.max(1), seed);
    let bulk_opts = options(Model::bulk(), opts.bulk_flows.max(1), seed + 1);
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
    let after: Vec<f64> = pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    std::thread::sleep(super::METRICS_SETTLE);
    let nodes = net.scrape(elapsed_s);
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
        nodes,
        bottleneck_drops,
        cpu: pids
            .iter()
            .zip(before.iter().zip(&after))
            .map(|((role, _), (b, a))| (role.clone(), a - b))
            .collect(),
    })
}

fn ok_times(records: &[TransferRecord], pick: fn(&TransferRecord) -> Option<f64>) -> Vec<f64> {
    records
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .filter_map(pick)
        .collect()
}

/// The `q` quantile of `v` (nearest rank on the sorted values; 0 when empty).
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The relay (not the client) with the largest p99 of `pick`.
fn worst_relay(nodes: &[NodeSchedMetrics], pick: fn(&NodeSchedMetrics) -> &Quantiles) -> Quantiles {
    nodes
        .iter()
        .filter(|n| n.node.starts_with("relay"))
        .map(pick)
        .max_by(|a, b| a.p99.total_cmp(&b.p99))
        .cloned()
        .unwrap_or_default()
}

/// Quantile-wise mean of quantile sets (for one CDF line over several phases).
fn mean_quantiles(qs: &[Quantiles]) -> Quantiles {
    let n = qs.len().max(1) as f64;
    let m = |f: fn(&Quantiles) -> f64| qs.iter().map(f).sum::<f64>() / n;
    Quantiles {
        p10: m(|q| q.p10),
        p25: m(|q| q.p25),
        p50: m(|q| q.p50),
        p75: m(|q| q.p75),
        p90: m(|q| q.p90),
        p99: m(|q| q.p99),
        p999: m(|q| q.p999),
    }
}

/// A summary over records merged from several phases.
fn merged_summary(records: &[TransferRecord], model: &str, flows: u32, secs: f64) -> ModelSummary {
    let mine: Vec<&TransferRecord> = records.iter().filter(|r| r.model == model).collect();
    let mut failed = BTreeMap::new();
    for r in mine.iter().filter(|r| r.outcome != Outcome::Ok) {
        *failed.entry(r.outcome.as_str().to_owned()).or_insert(0) += 1;
    }
    let ok: Vec<&&TransferRecord> = mine.iter().filter(|r| r.outcome == Outcome::Ok).collect();
    let bytes: u64 = ok.iter().map(|r| r.bytes).sum();
    ModelSummary {
        flows,
        count: mine.len() as u64,
        ok: ok.len() as u64,
        failed,
        bytes,
        goodput_mib_s: if secs > 0.0 {
            bytes as f64 / f64::from(1u32 << 20) / secs
        } else {
            0.0
        },
        ttfb_s: tgen::report::Percentiles::of(&tgen::report::histogram(
            records,
            model,
            tgen::report::Metric::Ttfb,
        )),
        ttlb_s: tgen::report::Percentiles::of(&tgen::report::histogram(
            records,
            model,
            tgen::report::Metric::Ttlb,
        )),
    }
}

struct SchedFigures {
    web: Vec<TransferRecord>,
    bulk: Vec<TransferRecord>,
    bulk_bytes: u64,
    secs: f64,
    kernel_p99: Vec<f64>,
    relay_p99: Vec<f64>,
    kernel_q: Vec<Quantiles>,
    relay_q: Vec<Quantiles>,
    drops: Vec<f64>,
}

fn figures_of(runs: &[&PhaseRun]) -> SchedFigures {
    let mut f = SchedFigures {
        web: Vec::new(),
        bulk: Vec::new(),
        bulk_bytes: 0,
        secs: 0.0,
        kernel_p99: Vec::new(),
        relay_p99: Vec::new(),
        kernel_q: Vec::new(),
        relay_q: Vec::new(),
        drops: Vec::new(),
    };
    for r in runs {
        f.web.extend(r.web.transfers.iter().cloned());
        if let Some(b) = &r.bulk {
            f.bulk.extend(b.transfers.iter().cloned());
            f.bulk_bytes += b.models.values().map(|m| m.bytes).sum::<u64>();
        }
        f.secs += r.elapsed_s;
        let k = worst_relay(&r.nodes, |n| &n.kernel_queue_sampled_ms);
        let q = worst_relay(&r.nodes, |n| &n.relay_queue_ms);
        f.kernel_p99.push(k.p99);
        f.relay_p99.push(q.p99);
        f.kernel_q.push(k);
        f.relay_q.push(q);
        f.drops.push(r.bottleneck_drops.unwrap_or(0) as f64);
    }
    f
}

fn compare(cond: &Condition, pairs: u32, k: &SchedFigures, v: &SchedFigures) -> Comparison {
    let med = |f: &SchedFigures, pick: fn(&TransferRecord) -> Option<f64>| {
        quantile(&ok_times(&f.web, pick), 0.5)
    };
    let pair = |a: f64, b: f64| Pair {
        kist: a,
        vanilla: b,
    };
    let ttfb = pair(med(k, |r| r.ttfb_s), med(v, |r| r.ttfb_s));
    let ttlb = pair(med(k, |r| r.ttlb_s), med(v, |r| r.ttlb_s));
    let mib = |f: &SchedFigures| {
        f.bulk_bytes as f64 / f64::from(1u32 << 20) / f.secs.max(f64::MIN_POSITIVE)
    };
    let bulk = cond.bulk.then(|| pair(mib(k), mib(v)));
    let ok_pages = |f: &SchedFigures| ok_times(&f.web, |r| r.ttlb_s).len() as f64;
    let c = cond.c_tor;
    let c_ttfb = pair(c.web_ttfb_median_s[0], c.web_ttfb_median_s[1]);
    let c_ttlb = pair(c.web_ttlb_median_s[0], c.web_ttlb_median_s[1]);
    Comparison {
        condition: cond.name,
        phases_per_scheduler: pairs,
        web_ttlb_median_ratio: ttlb.ratio(),
        web_ttfb_median_ratio: ttfb.ratio(),
        bulk_throughput_ratio: bulk.map(|b| b.ratio()),
        web_ttfb_median_s: ttfb,
        web_ttlb_median_s: ttlb,
        web_ttlb_p90_s: pair(
            quantile(&ok_times(&k.web, |r| r.ttlb_s), 0.9),
            quantile(&ok_times(&v.web, |r| r.ttlb_s), 0.9),
        ),
        web_pages: pair(ok_pages(k), ok_pages(v)),
        bulk_mib_s: bulk,
        kernel_queue_p99_ms: pair(quantile(&k.kernel_p99, 0.5), quantile(&v.kernel_p99, 0.5)),
        relay_queue_p99_ms: pair(quantile(&k.relay_p99, 0.5), quantile(&v.relay_p99, 0.5)),
        bottleneck_drops: pair(k.drops.iter().sum(), v.drops.iter().sum()),
        c_tor: CTorComparison {
            web_ttfb_median_ratio: c_ttfb.ratio(),
            web_ttlb_median_ratio: c_ttlb.ratio(),
            web_ttfb_median_s: c_ttfb,
            web_ttlb_median_s: c_ttlb,
            bulk_throughput_ratio: c.bulk_throughput_ratio,
        },
    }
}

fn write_svg(out: &Path, name: &str, svg: &str, plots: &mut Vec<String>) -> Result<(), CliError> {
    let path = out.join(name);
    std::fs::write(&path, svg)
        .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
    plots.push(name.to_owned());
    Ok(())
}

fn summarise(
    opts: &ExperimentOptions,
    conditions: &[Condition],
    runs: &[PhaseRun],
) -> Result<ExperimentReport, CliError> {
    let mut transfers = BTreeMap::new();
    let mut plots = Vec::new();
    let mut comparisons: BTreeMap<&str, Comparison> = BTreeMap::new();
    let mut md = format!(
        "# kistrel: KIST vs Vanilla on a shaped network\n\n\
         Bottleneck `{}` (tbf, toward the middle relay: exit -> middle is shaped), cubic, \
         {} web flows (320 KiB, think 0.5-3 s) and {} bulk flows (5 MiB back to back) per \
         loaded phase, {} phases of {} s per scheduler and condition, schedulers alternated \
         (K V, V K, ...), a fresh network per phase. C Tor 0.4.9 figures from the same \
         testbed on this machine (spec/kist.md).\n\n",
        opts.bottleneck,
        opts.web_flows,
        opts.bulk_flows,
        opts.pairs,
        opts.phase.as_secs()
    );
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
                merged_summary(&f.web, "web", opts.web_flows, f.secs),
            );
            if cond.bulk {
                models.insert(
                    "bulk".to_owned(),
                    merged_summary(&f.bulk, "bulk", opts.bulk_flows, f.secs),
                );
            }
            transfers.insert(format!("{}/{sched}", cond.name), models);
        }
        let c = compare(cond, opts.pairs, &k, &v);
        let two = |title: &str,
                   x: &str,
                   pick: fn(&TransferRecord) -> Option<f64>,
                   recs: fn(&SchedFigures) -> &Vec<TransferRecord>| {
            cdf_svg(
                title,
                x,
                &[
                    Series::cdf("KIST", &ok_times(recs(&k), pick)),
                    Series::cdf("Vanilla", &ok_times(recs(&v), pick)),
                ],
                None,
            )
        };
        let name = cond.name;
        let mut charts = vec![
            (
                format!("web_ttfb_{name}.svg"),
                two(
                    &format!("web time to first byte ({name})"),
                    "seconds",
                    |r| r.ttfb_s,
                    |f| &f.web,
                ),
            ),
            (
                format!("web_ttlb_{name}.svg"),
                two(
                    &format!("web time to last byte ({name})"),
                    "seconds",
                    |r| r.ttlb_s,
                    |f| &f.web,
                ),
            ),
        ];
        if cond.bulk {
            charts.push((
                format!("bulk_ttlb_{name}.svg"),
                two(
                    &format!("bulk 5 MiB time to last byte ({name})"),
                    "seconds",
                    |r| r.ttlb_s,
                    |f| &f.bulk,
                ),
            ));
        }
        let qchart = |title: &str, kq: &[Quantiles], vq: &[Quantiles]| {
            cdf_svg(
                title,
                "milliseconds (worst relay; quantiles 10..99.9, mean over phases)",
                &[
                    Series::quantiles("KIST", mean_quantiles(kq).points(), kq.len()),
                    Series::quantiles("Vanilla", mean_quantiles(vq).points(), vq.len()),
                ],
                None,
            )
        };
        charts.push((
            format!("kernel_queue_{name}.svg"),
            qchart(
                &format!("kernel queue time, sampled ({name})"),
                &k.kernel_q,
                &v.kernel_q,
            ),
        ));
        charts.push((
            format!("relay_queue_{name}.svg"),
            qchart(
                &format!("relay queue time per cell ({name})"),
                &k.relay_q,
                &v.relay_q,
            ),
        ));
        md.push_str(&format!(
            "## {name}\n\n| figure | KIST | Vanilla | KIST / Vanilla | C Tor K / V |\n|---|---:|---:|---:|---:|\n\
             | web TTFB median (s) | {:.3} | {:.3} | {:.2} | {:.3} / {:.3} ({:.2}) |\n\
             | web TTLB median (s) | {:.3} | {:.3} | {:.2} | {:.3} / {:.3} ({:.2}) |\n\
             | web TTLB p90 (s) | {:.3} | {:.3} | {:.2} | |\n\
             | web pages | {:.0} | {:.0} | | |\n",
            c.web_ttfb_median_s.kist,
            c.web_ttfb_median_s.vanilla,
            c.web_ttfb_median_ratio,
            c.c_tor.web_ttfb_median_s.kist,
            c.c_tor.web_ttfb_median_s.vanilla,
            c.c_tor.web_ttfb_median_ratio,
            c.web_ttlb_median_s.kist,
            c.web_ttlb_median_s.vanilla,
            c.web_ttlb_median_ratio,
            c.c_tor.web_ttlb_median_s.kist,
            c.c_tor.web_ttlb_median_s.vanilla,
            c.c_tor.web_ttlb_median_ratio,
            c.web_ttlb_p90_s.kist,
            c.web_ttlb_p90_s.vanilla,
            c.web_ttlb_p90_s.ratio(),
            c.web_pages.kist,
            c.web_pages.vanilla,
        ));
        if let Some(b) = c.bulk_mib_s {
            md.push_str(&format!(
                "| bulk goodput (MiB/s) | {:.2} | {:.2} | {:.2} | ({:.2}) |\n",
                b.kist,
                b.vanilla,
                b.ratio(),
                c.c_tor.bulk_throughput_ratio.unwrap_or(f64::NAN)
            ));
        }
        md.push_str(&format!(
            "| kernel queue p99 (ms) | {:.1} | {:.1} | {:.2} | |\n\
             | relay queue p99 (ms) | {:.1} | {:.1} | {:.2} | |\n\
             | bottleneck drops | {:.0} | {:.0} | | |\n\n",
            c.kernel_queue_p99_ms.kist,
            c.kernel_queue_p99_ms.vanilla,
            c.kernel_queue_p99_ms.ratio(),
            c.relay_queue_p99_ms.kist,
            c.relay_queue_p99_ms.vanilla,
            c.relay_queue_p99_ms.ratio(),
            c.bottleneck_drops.kist,
            c.bottleneck_drops.vanilla,
        ));
        for (file, svg) in charts {
            write_svg(&opts.out, &file, &svg, &mut plots)?;
            md.push_str(&format!("![{file}]({file})\n"));
        }
        md.push('\n');
        comparisons.insert(cond.name, c);
    }
    // CPU per role over every phase, per GiB of verified payload.
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
    let report_name = "report.md".to_owned();
    let path = opts.out.join(&report_name);
    std::fs::write(&path, md)
        .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
    Ok(ExperimentReport {
        schema: "kistrel.bench/1",
        experiment: "kist-vs-vanilla",
        bottleneck: opts.bottleneck.clone(),
        phase_s: opts.phase.as_secs_f64(),
        pairs: opts.pairs,
        web_flows: opts.web_flows,
        bulk_flows: opts.bulk_flows,
        throughput_mib_s: bytes as f64 / f64::from(1u32 << 20) / secs.max(f64::MIN_POSITIVE),
        transfers,
        cpu_s_per_gib: cpu
            .into_iter()
            .map(|(role, s)| ProcessCpu {
                role,
                pid: 0,
                cpu_s: s,
                cpu_s_per_gib: if gib > 0.0 { s / gib } else { 0.0 },
            })
            .collect(),
        comparison: comparisons.remove("large_buffers"),
        comparison_default_buffers: comparisons.remove("default_buffers"),
        comparison_unloaded: comparisons.remove("unloaded"),
        phases: runs.iter().map(phase_summary).collect(),
        plots,
        report: report_name,
    })
}

fn phase_summary(r: &PhaseRun) -> PhaseSummary {
    let count = |rep: Option<&TgenReport>| {
        rep.map_or((0, 0), |t| {
            let ok = t.models.values().map(|m| m.ok).sum::<u64>();
            (ok, t.failed())
        })
    };
    let (web_ok, web_failed) = count(Some(&r.web));
    let (bulk_ok, bulk_failed) = count(r.bulk.as_ref());
    let bulk_bytes: u64 = r
        .bulk
        .as_ref()
        .map_or(0, |b| b.models.values().map(|m| m.bytes).sum());
    PhaseSummary {
        condition: r.condition,
        scheduler: r.scheduler,
        round: r.round,
        elapsed_s: r.elapsed_s,
        web_ok,
        web_failed,
        bulk_ok,
        bulk_failed,
        bulk_mib_s: bulk_bytes as f64 / f64::from(1u32 << 20) / r.elapsed_s.max(f64::MIN_POSITIVE),
        web_ttlb_median_s: quantile(&ok_times(&r.web.transfers, |t| t.ttlb_s), 0.5),
        kernel_queue_p99_ms: worst_relay(&r.nodes, |n| &n.kernel_queue_sampled_ms).p99,
        relay_queue_p99_ms: worst_relay(&r.nodes, |n| &n.relay_queue_ms).p99,
        bottleneck_drops: r.bottleneck_drops,
        nodes: r.nodes.clone(),
    }
}

fn print_summary(r: &ExperimentReport) {
    println!(
        "kistrel bench --experiment kist-vs-vanilla  (bottleneck {}, {} x {:.0} s phases per scheduler and condition)",
        r.bottleneck, r.pairs, r.phase_s
    );
    println!(
        "  {:<16} {:>22} {:>22} {:>14} {:>22}",
        "condition",
        "web TTFB med K/V (s)",
        "web TTLB med K/V (s)",
        "bulk K/V",
        "kernel q p99 K/V (ms)"
    );
    for c in [
        &r.comparison,
        &r.comparison_default_buffers,
        &r.comparison_unloaded,
    ]
    .into_iter()
    .flatten()
    {
        println!(
            "  {:<16} {:>8.3}/{:<6.3} ({:.2}) {:>8.3}/{:<6.3} ({:.2}) {:>14} {:>9.1}/{:<9.1}",
            c.condition,
            c.web_ttfb_median_s.kist,
            c.web_ttfb_median_s.vanilla,
            c.web_ttfb_median_ratio,
            c.web_ttlb_median_s.kist,
            c.web_ttlb_median_s.vanilla,
            c.web_ttlb_median_ratio,
            c.bulk_throughput_ratio
                .map_or("-".to_owned(), |b| format!("{b:.2}")),
            c.kernel_queue_p99_ms.kist,
            c.kernel_queue_p99_ms.vanilla,
        );
        println!(
            "  {:<16} C Tor: TTFB ratio {:.2}, TTLB ratio {:.2}, bulk {}",
            "",
            c.c_tor.web_ttfb_median_ratio,
            c.c_tor.web_ttlb_median_ratio,
            c.c_tor
                .bulk_throughput_ratio
                .map_or("-".to_owned(), |b| format!("{b:.2}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_pairs() {
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, f64::NAN], 1.0), 3.0);
        let p = Pair {
            kist: 1.0,
            vanilla: 4.0,
        };
        assert_eq!(p.ratio(), 0.25);
        let m = mean_quantiles(&[
            Quantiles {
                p99: 2.0,
                ..Quantiles::default()
            },
            Quantiles {
                p99: 4.0,
                ..Quantiles::default()
            },
        ]);
        assert_eq!(m.p99, 3.0);
    }
}
