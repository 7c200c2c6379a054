//! `kistrel bench`: the main job. Brings up a local network (`kistrel net` as a child
//! process: relays and a client, each its own process), serves seeded data from an in-process
//! TCP server, fetches it through the client's SOCKS port on N isolated circuits at once, and
//! reports throughput, time to first / last byte, and CPU seconds per GiB for every relay
//! (from `/proc/PID/stat`). The same transfers made directly (no hops) in the same run give
//! the baseline ratio, so the figures stay meaningful on a noisy machine.
//!
//! ```text
//!   bench threads --SOCKS5--> client --> relay1 --> relay2 --> relay3 (exit) --> source server
//!   bench threads ------------------------------------------------------------> source server (direct)
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::CliError;

mod net_child;
mod scrape;
mod soak;

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

/// One transfer's outcome.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    ttfb: Duration,
    ttlb: Duration,
    bytes: u64,
    intact: bool,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    count: usize,
    failed: usize,
    ttfb_s: [f64; 3],
    ttlb_s: [f64; 3],
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
    bytes_verified: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduler_comparison: Option<SchedulerComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers_comparison: Option<WorkersComparison>,
    transfers: std::collections::BTreeMap<&'static str, Percentiles>,
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
    let tmp = tempfile::tempdir().map_err(|e| CliError::runtime("creating a temp folder", e))?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().join("net"));
    let size = args.size.max(1) << 20;
    let circuits = args.circuits.max(1);
    let mut data = vec![0u8; size];
    ChaCha8Rng::seed_from_u64(2026).fill_bytes(&mut data);
    let want: [u8; 32] = Sha256::digest(&data).into();
    let server = SourceServer::start(data)?;

    eprintln!(
        "kistrel bench: {circuits} transfers of {} MiB, direct and through 3 hops",
        args.size
    );
    let direct = run_transfers(circuits, |_| TcpStream::connect(server.addr), want)?;
    let chain = plain_forwarder_chain(server.addr, 3)?;
    let forwarded = run_transfers(circuits, |_| TcpStream::connect(chain), want)?;
    let net = NetChild::start(&args, &dir)?;
    let pids = net.pids();
    let cpu_before: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let socks = net.socks;
    let target = server.addr;
    let started = Instant::now();
    let relayed = run_transfers(
        circuits,
        |i| socks_connect(socks, &format!("bench{i}"), target),
        want,
    )?;
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
        let phase = Phase {
            circuits,
            target,
            want,
        };
        let (ts, _) = phase.run(&phase_args, &dir.with_file_name("net-2-workers"), "w2")?;
        let one = throughput(&relayed);
        let two = throughput(&ts);
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
            let phase = Phase {
                circuits,
                target,
                want,
            };
            let (ts, nodes) = phase.run(&phase_args, &phase_dir, &format!("cmp{round}"))?;
            by_phase.push(nodes);
            if round % 2 == 0 {
                kist.push(throughput(&ts))
            } else {
                vanilla.push(throughput(&ts))
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

    let gib = relayed
        .iter()
        .filter(|t| t.intact)
        .map(|t| t.bytes)
        .sum::<u64>() as f64
        / (1u64 << 30) as f64;
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
    let mut transfers = std::collections::BTreeMap::new();
    transfers.insert("direct", percentiles(&direct));
    transfers.insert("relayed", percentiles(&relayed));
    transfers.insert("forwarded", percentiles(&forwarded));
    let report = Report {
        schema: "kistrel.bench/1",
        circuits,
        transfer_mib: args.size,
        workers: args.workers,
        backend: args.backend.clone(),
        scheduler: args.scheduler.clone().unwrap_or_else(|| "kist".into()),
        throughput_mib_s: throughput(&relayed),
        direct_throughput_mib_s: throughput(&direct),
        ratio_vs_direct: throughput(&relayed) / throughput(&direct).max(f64::MIN_POSITIVE),
        forwarders_throughput_mib_s: throughput(&forwarded),
        ratio_vs_forwarders: throughput(&relayed) / throughput(&forwarded).max(f64::MIN_POSITIVE),
        bytes_verified: relayed.iter().filter(|t| t.intact).map(|t| t.bytes).sum(),
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
    let failed = relayed.iter().filter(|t| !t.intact).count();
    if failed > 0 {
        return Err(CliError::runtime(
            "kistrel bench",
            format!("{failed} transfer(s) failed or arrived corrupted"),
        ));
    }
    Ok(())
}

/// One extra relayed phase on a fresh network (comparisons): same transfers, checked.
struct Phase {
    circuits: usize,
    target: SocketAddr,
    want: [u8; 32],
}

impl Phase {
    fn run(
        &self,
        args: &BenchArgs,
        dir: &Path,
        label: &str,
    ) -> Result<(Vec<Transfer>, Vec<NodeSchedMetrics>), CliError> {
        let net = NetChild::start(args, dir)?;
        let socks = net.socks;
        let target = self.target;
        let started = Instant::now();
        let ts = run_transfers(
            self.circuits,
            |i| socks_connect(socks, &format!("{label}-{i}"), target),
            self.want,
        )?;
        std::thread::sleep(METRICS_SETTLE);
        let nodes = net.scrape(started.elapsed().as_secs_f64());
        net.stop();
        if ts.iter().any(|t| !t.intact) {
            return Err(CliError::runtime(
                "kistrel bench",
                format!("a transfer of phase {label} failed"),
            ));
        }
        Ok((ts, nodes))
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
    for (name, p) in &r.transfers {
        println!(
            "  {name:<8} n={:<3} failed={:<2} ttfb p50/p90/p99 {:.4}/{:.4}/{:.4} s   ttlb p50/p90/p99 {:.3}/{:.3}/{:.3} s",
            p.count, p.failed, p.ttfb_s[0], p.ttfb_s[1], p.ttfb_s[2], p.ttlb_s[0], p.ttlb_s[1], p.ttlb_s[2]
        );
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

fn throughput(ts: &[Transfer]) -> f64 {
    // All transfers start together: aggregate bytes over the slowest one's time.
    let bytes: u64 = ts.iter().filter(|t| t.intact).map(|t| t.bytes).sum();
    let wall = ts
        .iter()
        .map(|t| t.ttlb)
        .max()
        .unwrap_or_default()
        .as_secs_f64();
    if wall > 0.0 {
        bytes as f64 / (1 << 20) as f64 / wall
    } else {
        0.0
    }
}

fn percentiles(ts: &[Transfer]) -> Percentiles {
    let ok: Vec<&Transfer> = ts.iter().filter(|t| t.intact).collect();
    let pick = |mut v: Vec<f64>| -> [f64; 3] {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        [at(0.5), at(0.9), at(0.99)]
    };
    Percentiles {
        count: ts.len(),
        failed: ts.len() - ok.len(),
        ttfb_s: pick(ok.iter().map(|t| t.ttfb.as_secs_f64()).collect()),
        ttlb_s: pick(ok.iter().map(|t| t.ttlb.as_secs_f64()).collect()),
    }
}

/// Runs `n` transfers at once, each over the stream `connect(i)` gives.
fn run_transfers(
    n: usize,
    connect: impl Fn(usize) -> std::io::Result<TcpStream> + Sync,
    want: [u8; 32],
) -> Result<Vec<Transfer>, CliError> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let connect = &connect;
                s.spawn(move || -> Transfer {
                    let failed = Transfer {
                        ttfb: Duration::ZERO,
                        ttlb: start.elapsed(),
                        bytes: 0,
                        intact: false,
                    };
                    let Ok(mut stream) = connect(i) else {
                        return failed;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
                    let mut hash = Sha256::new();
                    let mut buf = vec![0u8; 256 << 10];
                    let mut bytes = 0u64;
                    let mut ttfb = None;
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) => break,
                            Ok(k) => {
                                ttfb.get_or_insert_with(|| start.elapsed());
                                hash.update(&buf[..k]);
                                bytes += k as u64;
                            }
                            Err(_) => return Transfer { bytes, ..failed },
                        }
                    }
                    let digest: [u8; 32] = hash.finalize().into();
                    Transfer {
                        ttfb: ttfb.unwrap_or_default(),
                        ttlb: start.elapsed(),
                        bytes,
                        intact: digest == want,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| CliError::runtime("kistrel bench", "a transfer thread panicked"))
            })
            .collect()
    })
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

/// A TCP server that sends the same bytes to every connection, then closes it.
struct SourceServer {
    addr: SocketAddr,
}

impl SourceServer {
    fn start(data: Vec<u8>) -> Result<Self, CliError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| CliError::runtime("binding the source server", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::runtime("source server address", e))?;
        let data = std::sync::Arc::new(data);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let data = std::sync::Arc::clone(&data);
                std::thread::spawn(move || {
                    let _ = conn.write_all(&data);
                });
            }
        });
        Ok(SourceServer { addr })
    }
}

/// SOCKS5 CONNECT (username/password for isolation) to an IPv4 target.
fn socks_connect(socks: SocketAddr, user: &str, target: SocketAddr) -> std::io::Result<TcpStream> {
    let bad = |what: &str| std::io::Error::other(format!("SOCKS: {what}"));
    let mut s = TcpStream::connect(socks)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(&[5, 1, 2])?;
    let mut r = [0u8; 2];
    s.read_exact(&mut r)?;
    if r != [5, 2] {
        return Err(bad("method refused"));
    }
    let mut auth = vec![1, user.len() as u8];
    auth.extend_from_slice(user.as_bytes());
    auth.extend_from_slice(&[1, b'x']);
    s.write_all(&auth)?;
    s.read_exact(&mut r)?;
    if r != [1, 0] {
        return Err(bad("auth refused"));
    }
    let SocketAddr::V4(t) = target else {
        return Err(bad("IPv4 target expected"));
    };
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&t.ip().octets());
    req.extend_from_slice(&t.port().to_be_bytes());
    s.write_all(&req)?;
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep)?;
    if rep[1] != 0 {
        return Err(bad(&format!("CONNECT failed with reply {}", rep[1])));
    }
    Ok(s)
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
