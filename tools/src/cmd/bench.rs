//! `kistrel bench`: the main job. Brings up a local network (`kistrel net` as a child
//! process: relays and a client, each its own process), runs a fixed tgen mix through the
//! client's SOCKS port (N bulk transfers at once on N isolated circuits, plus two web flows
//! fetching pages meanwhile), and reports throughput, time to first / last byte per model,
//! CPU seconds per GiB for every relay (from `/proc/PID/stat`) and each node's scheduler
//! figures (from its MetricsPort). The same mix made directly (no hops) and through three
//! plain TCP forwarders in the same run give the baseline ratios, so the figures stay
//! meaningful on a noisy machine.
//!
//! ```text
//!   tgen flows --SOCKS5--> client --> relay1 --> relay2 --> relay3 (exit) --> tgen server
//!   tgen flows --> forwarder --> forwarder --> forwarder ---------------------> tgen server
//!   tgen flows ---------------------------------------------------------------> tgen server
//! ```
//!
//! `--soak` and `--experiment` are other jobs on the same pieces (see [`soak`], [`experiment`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::error::CliError;

mod experiment;
mod mix;
mod net_child;
mod plot;
mod scrape;
mod soak;

use mix::{run_mix, MixResult, MixSpec};

use net_child::NetChild;
pub use scrape::{NodeSchedMetrics, Quantiles};

/// `kistrel bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Also write the versioned machine-readable result (schema `kistrel.bench/1`) here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Parallel transfers, each on its own circuit (SOCKS isolation).
    #[arg(long, default_value_t = 8)]
    pub circuits: usize,
    /// MiB per transfer.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Worker threads per relay and client.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Scheduler for every node (kist, kistlite, vanilla).
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Runtime backend (uring, poll).
    #[arg(long, default_value = "uring")]
    pub backend: String,
    /// Folder for the network's files and logs (default: a fresh temp folder).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Also run the same transfers with KIST and with Vanilla on fresh networks, alternated
    /// twice (KIST, Vanilla, KIST, Vanilla), and report the KIST / Vanilla throughput ratio.
    #[arg(long)]
    pub compare_schedulers: bool,
    /// Also run the relayed transfers with 2 workers per node and report 2-worker / 1-worker.
    #[arg(long)]
    pub compare_workers: bool,
    /// Compare the run's ratios (and CPU per GiB) with a committed baseline file and exit 1
    /// with a table when one regresses beyond its tolerance. Implies the two comparisons.
    #[arg(long, value_name = "BASELINE")]
    pub check: Option<PathBuf>,
    /// Soak instead: mixed tgen traffic (web, bulk, perf) through 5 relays for DURATION
    /// (e.g. 30m) while relays are killed and restarted; reports transfers, verified bytes,
    /// RSS over time and file descriptors of every process (schema `kistrel.soak/1`).
    #[arg(long, value_name = "DURATION", value_parser = crate::cmd::tgen::parse_duration)]
    pub soak: Option<Duration>,
    /// With --soak: kill -9 one relay (round robin) this often, restart it 5 s later.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::cmd::tgen::parse_duration)]
    pub soak_kill_every: Duration,
    /// Run an experiment instead (root: network namespaces): `kist-vs-vanilla` runs the
    /// KIST papers' web + bulk mix over a shaped bottleneck per scheduler, alternated, under
    /// large fixed send buffers, default buffers and without bulk load, and writes
    /// experiment.json, SVG CDFs and report.md into --out.
    #[arg(long, value_enum, value_name = "NAME")]
    pub experiment: Option<ExperimentName>,
    /// Experiment: length of one phase.
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = crate::cmd::tgen::parse_duration)]
    pub phase: Duration,
    /// Experiment: phases per scheduler and condition (order flipped every pair).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub pairs: u32,
    /// Experiment: `kistrel net --bottleneck` value (spec/kist.md's C Tor testbed: 25 Mbit/s,
    /// ~42 ms of queue).
    #[arg(long, value_name = "RATE[,LATENCY]", default_value = "25mbit,42ms")]
    pub bottleneck: String,
    /// Experiment: web flows (320 KiB pages, think 0.5-3 s).
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub web_flows: u32,
    /// Experiment: bulk flows (5 MiB back to back).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub bulk_flows: u32,
    /// Experiment: only these conditions (default: all three).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub conditions: Vec<ConditionArg>,
    /// Experiment: folder for experiment.json, the SVG charts and report.md.
    #[arg(long, value_name = "DIR", default_value = "kistrel-experiment")]
    pub out: PathBuf,
}

/// `--experiment` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExperimentName {
    /// KIST vs Vanilla on a shaped network.
    KistVsVanilla,
}

/// `--conditions` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConditionArg {
    /// tcp_wmem 4 MiB fixed, web + bulk.
    LargeBuffers,
    /// Linux's default autotuning, web + bulk.
    DefaultBuffers,
    /// Default buffers, web only.
    Unloaded,
}

impl ConditionArg {
    fn name(self) -> &'static str {
        match self {
            ConditionArg::LargeBuffers => "large_buffers",
            ConditionArg::DefaultBuffers => "default_buffers",
            ConditionArg::Unloaded => "unloaded",
        }
    }
}

/// 2 workers against 1 on the same workload in the same run.
#[derive(Debug, Serialize)]
struct WorkersComparison {
    one_worker_mib_s: f64,
    two_workers_mib_s: f64,
    two_over_one: f64,
}

/// One figure of a `--check` baseline file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFigure {
    baseline: f64,
    /// "higher" (a ratio: fails below baseline * (1 - tolerance)) or "lower" (a cost:
    /// fails above baseline * (1 + tolerance)).
    better: String,
    tolerance: f64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    machine: Option<String>,
    figures: std::collections::BTreeMap<String, BaselineFigure>,
}

/// KIST against Vanilla on the same workload in the same run.
#[derive(Debug, Serialize)]
struct SchedulerComparison {
    kist_mib_s: Vec<f64>,
    vanilla_mib_s: Vec<f64>,
    /// Each phase's nodes' scheduler figures, in phase order (KIST, Vanilla, KIST, Vanilla).
    scheduler_metrics_by_phase: Vec<Vec<NodeSchedMetrics>>,
    /// Mean KIST throughput over mean Vanilla throughput.
    kist_over_vanilla: f64,
}

#[derive(Debug, Serialize)]
struct ProcessCpu {
    role: String,
    pid: i32,
    cpu_s: f64,
    cpu_s_per_gib: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    circuits: usize,
    transfer_mib: usize,
    workers: usize,
    backend: String,
    scheduler: String,
    throughput_mib_s: f64,
    direct_throughput_mib_s: f64,
    ratio_vs_direct: f64,
    /// Three chained plain TCP forwarders (no cells, no crypto), same transfers, same run.
    forwarders_throughput_mib_s: f64,
    ratio_vs_forwarders: f64,
    /// Verified payload bytes of the relayed phase (bulk and web).
    bytes_verified: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduler_comparison: Option<SchedulerComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers_comparison: Option<WorkersComparison>,
    /// Per phase (`relayed`, `direct`, `forwarded`), per model (`bulk`, `web`): counts,
    /// failures by reason, bytes, TTFB / TTLB percentiles (tgen's summaries).
    transfers: BTreeMap<&'static str, BTreeMap<String, crate::tgen::ModelSummary>>,
    cpu_s_per_gib: Vec<ProcessCpu>,
    /// Every node's scheduler figures from its MetricsPort at the end of the main phase.
    scheduler_metrics: Vec<NodeSchedMetrics>,
}

/// How long to wait before scraping, so the workers' once-a-second figures include the end.
const METRICS_SETTLE: Duration = Duration::from_millis(1100);

/// Run the benchmark.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    if let Some(d) = args.soak {
        return soak::run(&args, d, args.soak_kill_every);
    }
    if let Some(ExperimentName::KistVsVanilla) = args.experiment {
        let opts = experiment::ExperimentOptions {
            phase: args.phase,
            pairs: args.pairs.max(1),
            bottleneck: args.bottleneck.clone(),
            web_flows: args.web_flows,
            bulk_flows: args.bulk_flows,
            out: args.out.clone(),
            conditions: args.conditions.iter().map(|c| c.name()).collect(),
        };
        return experiment::run(&args, &opts);
    }
    let tmp = tempfile::tempdir().map_err(|e| CliError::runtime("creating a temp folder", e))?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().join("net"));
    let circuits = args.circuits.max(1);
    let spec = MixSpec {
        circuits: u32::try_from(circuits).unwrap_or(u32::MAX),
        bulk_bytes: (args.size.max(1) as u64) << 20,
        seed: 2026,
    };
    let server = crate::tgen::Server::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| CliError::runtime("starting the tgen server", e))?;
    let target = server.addr();

    eprintln!(
        "kistrel bench: {circuits} bulk transfers of {} MiB + {} web flows, direct, through 3 plain forwarders and through 3 hops",
        args.size,
        mix::WEB_FLOWS
    );
    let direct = run_mix(target, None, spec, "direct")?;
    let chain = plain_forwarder_chain(target, 3)?;
    let forwarded = run_mix(chain, None, spec, "fwd")?;
    let net = NetChild::start(&args, &dir)?;
    let pids = net.pids();
    let cpu_before: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let started = Instant::now();
    let relayed = run_mix(target, Some(net.socks), spec, "bench")?;
    let cpu_after: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    // Workers publish their figures once a second: let the last second's arrive.
    std::thread::sleep(METRICS_SETTLE);
    let scheduler_metrics = net.scrape(started.elapsed().as_secs_f64());
    net.stop();

    let mut comparison = None;
    let mut workers_cmp = None;
    if args.compare_workers || args.check.is_some() {
        let phase_args = BenchArgs {
            workers: 2,
            ..args.clone()
        };
        let phase = Phase { target, spec };
        let (two, _) = phase.run(&phase_args, &dir.with_file_name("net-2-workers"), "w2")?;
        let one = relayed.throughput_mib_s();
        let two = two.throughput_mib_s();
        workers_cmp = Some(WorkersComparison {
            one_worker_mib_s: one,
            two_workers_mib_s: two,
            two_over_one: two / one.max(f64::MIN_POSITIVE),
        });
    }
    if args.compare_schedulers || args.check.is_some() {
        let (mut kist, mut vanilla) = (Vec::new(), Vec::new());
        let mut by_phase = Vec::new();
        for round in 0..4 {
            let name = if round % 2 == 0 { "kist" } else { "vanilla" };
            let phase_args = BenchArgs {
                scheduler: Some(name.into()),
                ..args.clone()
            };
            let phase_dir = dir.with_file_name(format!("net-{name}-{round}"));
            let phase = Phase { target, spec };
            let (mix, nodes) = phase.run(&phase_args, &phase_dir, &format!("cmp{round}"))?;
            by_phase.push(nodes);
            if round % 2 == 0 {
                kist.push(mix.throughput_mib_s())
            } else {
                vanilla.push(mix.throughput_mib_s())
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let ratio = mean(&kist) / mean(&vanilla).max(f64::MIN_POSITIVE);
        comparison = Some(SchedulerComparison {
            kist_mib_s: kist,
            vanilla_mib_s: vanilla,
            scheduler_metrics_by_phase: by_phase,
            kist_over_vanilla: ratio,
        });
    }

    let gib = relayed.bytes_ok() as f64 / (1u64 << 30) as f64;
    let cpu = pids
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|((role, pid), (b, a))| ProcessCpu {
            role: role.clone(),
            pid: *pid,
            cpu_s: a - b,
            cpu_s_per_gib: if gib > 0.0 { (a - b) / gib } else { 0.0 },
        })
        .collect();
    let mut transfers = BTreeMap::new();
    transfers.insert("direct", direct.summaries());
    transfers.insert("relayed", relayed.summaries());
    transfers.insert("forwarded", forwarded.summaries());
    let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
    let report = Report {
        schema: "kistrel.bench/1",
        circuits,
        transfer_mib: args.size,
        workers: args.workers,
        backend: args.backend.clone(),
        scheduler: args.scheduler.clone().unwrap_or_else(|| "kist".into()),
        throughput_mib_s: relayed.throughput_mib_s(),
        direct_throughput_mib_s: direct.throughput_mib_s(),
        ratio_vs_direct: ratio(relayed.throughput_mib_s(), direct.throughput_mib_s()),
        forwarders_throughput_mib_s: forwarded.throughput_mib_s(),
        ratio_vs_forwarders: ratio(relayed.throughput_mib_s(), forwarded.throughput_mib_s()),
        bytes_verified: relayed.bytes_ok(),
        scheduler_comparison: comparison,
        workers_comparison: workers_cmp,
        transfers,
        cpu_s_per_gib: cpu,
        scheduler_metrics,
    };
    print_table(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::runtime("encoding JSON", e))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
    }
    if let Some(path) = &args.check {
        check_against(path, &report)?;
    }
    let failed = relayed.failed() + direct.failed() + forwarded.failed();
    if failed > 0 {
        return Err(CliError::runtime(
            "kistrel bench",
            format!("{failed} transfer(s) failed or arrived corrupted"),
        ));
    }
    Ok(())
}

/// One extra relayed phase on a fresh network (comparisons): the same mix, checked.
struct Phase {
    target: SocketAddr,
    spec: MixSpec,
}

impl Phase {
    fn run(
        &self,
        args: &BenchArgs,
        dir: &Path,
        label: &str,
    ) -> Result<(MixResult, Vec<NodeSchedMetrics>), CliError> {
        let net = NetChild::start(args, dir)?;
        let started = Instant::now();
        let mix = run_mix(self.target, Some(net.socks), self.spec, label)?;
        std::thread::sleep(METRICS_SETTLE);
        let nodes = net.scrape(started.elapsed().as_secs_f64());
        net.stop();
        if mix.failed() > 0 {
            return Err(CliError::runtime(
                "kistrel bench",
                format!("{} transfer(s) of phase {label} failed", mix.failed()),
            ));
        }
        Ok((mix, nodes))
    }
}

/// The figures `--check` compares, from a report.
fn figures(r: &Report) -> std::collections::BTreeMap<&'static str, f64> {
    let mut f = std::collections::BTreeMap::new();
    f.insert("ratio_vs_forwarders", r.ratio_vs_forwarders);
    if let Some(c) = &r.scheduler_comparison {
        f.insert("kist_over_vanilla", c.kist_over_vanilla);
    }
    if let Some(w) = &r.workers_comparison {
        f.insert("workers_two_over_one", w.two_over_one);
    }
    let relay_cpu = r
        .cpu_s_per_gib
        .iter()
        .filter(|c| c.role.starts_with("relay"))
        .map(|c| c.cpu_s_per_gib)
        .fold(0.0, f64::max);
    f.insert("max_relay_cpu_s_per_gib", relay_cpu);
    f
}

/// Compares the run with a baseline file; prints a table; Err on any regression.
fn check_against(path: &Path, r: &Report) -> Result<(), CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::runtime(format!("reading {}", path.display()), e))?;
    let base: BaselineFile = toml::from_str(&text)
        .map_err(|e| CliError::runtime(format!("parsing {}", path.display()), e))?;
    let now = figures(r);
    println!(
        "\ncheck against {} (baseline from {})",
        path.display(),
        base.machine.as_deref().unwrap_or("an unnamed machine")
    );
    println!(
        "  {:<26} {:>10} {:>10} {:>10}  status",
        "figure", "baseline", "now", "limit"
    );
    let mut regressed = Vec::new();
    for (name, b) in &base.figures {
        let Some(&value) = now.get(name.as_str()) else {
            regressed.push(format!("{name}: not measured"));
            println!(
                "  {name:<26} {:>10.3} {:>10} {:>10}  MISSING",
                b.baseline, "-", "-"
            );
            continue;
        };
        let (limit, ok) = match b.better.as_str() {
            "higher" => {
                let limit = b.baseline * (1.0 - b.tolerance);
                (limit, value >= limit)
            }
            "lower" => {
                let limit = b.baseline * (1.0 + b.tolerance);
                (limit, value <= limit)
            }
            other => {
                return Err(CliError::runtime(
                    format!("{}: figure {name}", path.display()),
                    format!("better = {other:?}: want \"higher\" or \"lower\""),
                ))
            }
        };
        println!(
            "  {name:<26} {:>10.3} {value:>10.3} {limit:>10.3}  {}",
            b.baseline,
            if ok { "OK" } else { "REGRESSED" }
        );
        if !ok {
            regressed.push(format!("{name} = {value:.3} (limit {limit:.3})"));
        }
    }
    if regressed.is_empty() {
        Ok(())
    } else {
        Err(CliError::runtime(
            "kistrel bench --check",
            format!("regressed: {}", regressed.join("; ")),
        ))
    }
}

fn print_table(r: &Report) {
    println!(
        "kistrel bench  ({} x {} MiB, {} worker(s), backend {}, scheduler {})",
        r.circuits, r.transfer_mib, r.workers, r.backend, r.scheduler
    );
    println!(
        "  throughput   3 hops {:8.1} MiB/s   direct {:8.1} MiB/s   ratio {:.3}",
        r.throughput_mib_s, r.direct_throughput_mib_s, r.ratio_vs_direct
    );
    println!(
        "  baseline     3 plain TCP forwarders {:8.1} MiB/s   kistrel / forwarders {:.3}",
        r.forwarders_throughput_mib_s, r.ratio_vs_forwarders
    );
    for (phase, models) in &r.transfers {
        for (model, m) in models {
            let (fb, lb) = (m.ttfb_s, m.ttlb_s);
            let p = |q: Option<crate::tgen::Percentiles>,
                     f: fn(&crate::tgen::Percentiles) -> f64| {
                q.map_or("-".to_owned(), |q| format!("{:.3}", f(&q)))
            };
            println!(
                "  {phase:<9} {model:<5} n={:<4} failed={:<2} ttfb p50/p90/p99 {}/{}/{} s   ttlb p50/p90/p99 {}/{}/{} s",
                m.count,
                m.count - m.ok,
                p(fb, |q| q.p50),
                p(fb, |q| q.p90),
                p(fb, |q| q.p99),
                p(lb, |q| q.p50),
                p(lb, |q| q.p90),
                p(lb, |q| q.p99),
            );
        }
    }
    if let Some(c) = &r.scheduler_comparison {
        println!(
            "  schedulers   KIST {:?} MiB/s   Vanilla {:?} MiB/s   KIST/Vanilla {:.3}",
            c.kist_mib_s
                .iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            c.vanilla_mib_s
                .iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            c.kist_over_vanilla
        );
    }
    if let Some(w) = &r.workers_comparison {
        println!(
            "  workers      1: {:.1} MiB/s   2: {:.1} MiB/s   2/1 {:.3}",
            w.one_worker_mib_s, w.two_workers_mib_s, w.two_over_one
        );
    }
    if !r.scheduler_metrics.is_empty() {
        println!("  scheduler    node     runs/s  cells/run p50  relay queue p50/p99 ms  kernel queue (sampled) p50/p99 ms");
    }
    for m in &r.scheduler_metrics {
        println!(
            "  {:<12} {:<8} {:7.0}  {:13.0}  {:9.2}/{:<9.2}     {:9.2}/{:<9.2}",
            m.scheduler,
            m.node,
            m.runs_per_s,
            m.cells_per_run.p50,
            m.relay_queue_ms.p50,
            m.relay_queue_ms.p99,
            m.kernel_queue_sampled_ms.p50,
            m.kernel_queue_sampled_ms.p99
        );
    }
    for c in &r.cpu_s_per_gib {
        println!(
            "  cpu  {:<8} pid {:<7} {:7.2} s  = {:6.2} CPU-s/GiB",
            c.role, c.pid, c.cpu_s, c.cpu_s_per_gib
        );
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
                let pipe = |mut from: TcpStream, mut into: TcpStream| {
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
                    })
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

/// User + system CPU seconds of a process so far (`/proc/PID/stat` fields 14 and 15).
fn cpu_seconds(pid: i32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After ')' the fields start at 3 (state): utime is field 14 -> index 11, stime index 12.
    let hz = 100.0; // USER_HZ, fixed at 100 on Linux
    (ticks(11) + ticks(12)) / hz
}
