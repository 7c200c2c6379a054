//! `kistrel bench --soak DURATION`: mixed tgen traffic through a 5-relay network for a long
//! time while relays are killed (-9) and restarted, watching for leaks.
//!
//! ```text
//! tgen server (host) <- exit <- middle <- guard <- client <- tgen flows: web x4, bulk x2, perf x1
//! every --soak-kill-every: kill -9 the next relay (round robin), restart it 5 s later
//!                          from its own config (same keys, same port)
//! every 10 s:              RSS of every process
//! at the start and end:    open file descriptors of every process (end: after 5 s of quiet)
//! ```
//!
//! The report (`kistrel.soak/1`): transfers ok / failed by reason, verified bytes, the kills,
//! RSS start / end / max and its trend (least-squares KiB per minute) per process, and fds
//! at start and end. Not run in CI (it is long by design); documented in the README.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::net_child::NetChild;
use super::BenchArgs;
use crate::error::CliError;
use crate::tgen::{self, ClientOptions, Model, ModelFlows};

/// Relays in the soak network (enough that a path avoids any one dead relay).
const RELAYS: u16 = 5;
/// How often RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How long a killed relay stays down.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// Quiet time before the final fd count (circuits to closed streams wind down).
const SETTLE: Duration = Duration::from_secs(5);

/// One process instance (a restarted relay is a new instance of its role).
#[derive(Debug, Serialize)]
struct ProcessWatch {
    role: String,
    pid: i32,
    /// Seconds after the soak's start when it was first seen.
    since_s: f64,
    rss_kib: Vec<(f64, u64)>,
    fds_start: Option<usize>,
    fds_end: Option<usize>,
    killed_at_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct ProcessSummary {
    role: String,
    pid: i32,
    rss_start_kib: u64,
    rss_end_kib: u64,
    rss_max_kib: u64,
    /// Least-squares slope of RSS over the second half of the instance's samples (after
    /// warm-up: buffers and histograms grow at first), KiB per minute.
    rss_trend_kib_per_min: f64,
    fds_start: Option<usize>,
    fds_end: Option<usize>,
    killed: bool,
}

#[derive(Debug, Serialize)]
struct Kill {
    at_s: f64,
    role: String,
    pid: i32,
    restarted_pid: Option<i32>,
}

#[derive(Debug, Serialize)]
struct SoakReport {
    schema: &'static str,
    duration_s: f64,
    relays: u16,
    transfers_ok: u64,
    transfers_failed: BTreeMap<String, u64>,
    bytes_verified: u64,
    models: BTreeMap<String, tgen::ModelSummary>,
    kills: Vec<Kill>,
    processes: Vec<ProcessSummary>,
}

/// Run the soak for `duration`.
pub(super) fn run(
    args: &BenchArgs,
    duration: Duration,
    kill_every: Duration,
) -> Result<(), CliError> {
    let tmp = tempfile::tempdir().map_err(|e| CliError::runtime("creating a temp folder", e))?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().join("net"));
    let server = tgen::Server::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| CliError::runtime("starting the tgen server", e))?;
    let net = NetChild::start_with(args, &dir, RELAYS, true, &[])?;
    eprintln!(
        "kistrel bench --soak: {} s of web x4 + bulk x2 + perf x1 through {RELAYS} relays, a relay killed every {} s; network in {}",
        duration.as_secs(),
        kill_every.as_secs(),
        dir.display()
    );
    let start = Instant::now();
    let mut watches: Vec<ProcessWatch> = Vec::new();
    let mut restarted: Vec<Child> = Vec::new();
    let mut kills = Vec::new();
    refresh(&net, &dir, &mut watches, start);
    for w in &mut watches {
        w.fds_start = fd_count(w.pid);
    }

    let mut opts = ClientOptions::new(server.addr());
    opts.socks = Some(net.socks);
    opts.duration = Some(duration);
    opts.seed = 2026;
    opts.models = vec![
        ModelFlows {
            model: Model::web(),
            flows: 4,
        },
        ModelFlows {
            model: Model::bulk(),
            flows: 2,
        },
        ModelFlows {
            model: Model::perf(),
            flows: 1,
        },
    ];
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|s| -> Result<tgen::TgenReport, CliError> {
        let traffic = s.spawn(|| tgen::run_client(&opts, &stop));
        let mut next_sample = start;
        let mut next_kill = start + kill_every;
        let mut victim = 0u16;
        let mut pending_restart: Option<(Instant, String, usize)> = None;
        while !traffic.is_finished() {
            let now = Instant::now();
            if now >= next_sample {
                next_sample += SAMPLE_EVERY;
                refresh(&net, &dir, &mut watches, start);
                for w in watches.iter_mut().filter(|w| w.killed_at_s.is_none()) {
                    if let Some(kib) = rss_kib(w.pid) {
                        w.rss_kib.push((start.elapsed().as_secs_f64(), kib));
                    }
                    // A restarted relay's start: its first sample after the restart.
                    if w.fds_start.is_none() {
                        w.fds_start = fd_count(w.pid);
                    }
                }
            }
            if pending_restart.is_none() && now >= next_kill && now + kill_every < start + duration
            {
                next_kill += kill_every;
                let role = format!("relay{}", victim % RELAYS + 1);
                victim += 1;
                if let Some(i) = watches
                    .iter()
                    .rposition(|w| w.role == role && w.killed_at_s.is_none())
                {
                    let pid = watches[i].pid;
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let at = start.elapsed().as_secs_f64();
                    watches[i].killed_at_s = Some(at);
                    kills.push(Kill {
                        at_s: at,
                        role: role.clone(),
                        pid,
                        restarted_pid: None,
                    });
                    pending_restart = Some((now + DOWN_FOR, role, kills.len() - 1));
                }
            }
            if let Some((when, role, k)) = &pending_restart {
                if now >= *when {
                    let child = restart_relay(&dir, role, restarted.len())?;
                    let pid = i32::try_from(child.id()).unwrap_or(0);
                    kills[*k].restarted_pid = Some(pid);
                    watches.push(ProcessWatch::new(role.clone(), pid, start));
                    restarted.push(child);
                    pending_restart = None;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        traffic
            .join()
            .map_err(|_| CliError::runtime("kistrel bench --soak", "the traffic thread panicked"))?
            .map_err(|e| CliError::runtime("tgen", e))
    })?;
    std::thread::sleep(SETTLE);
    for w in watches.iter_mut().filter(|w| w.killed_at_s.is_none()) {
        w.fds_end = fd_count(w.pid);
        if let Some(kib) = rss_kib(w.pid) {
            w.rss_kib.push((start.elapsed().as_secs_f64(), kib));
        }
    }
    for mut c in restarted {
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = c.wait();
    }
    net.stop();
    drop(server);

    let mut failed = BTreeMap::new();
    let (mut ok, mut bytes) = (0, 0);
    for m in report.models.values() {
        ok += m.ok;
        bytes += m.bytes;
        for (k, n) in &m.failed {
            *failed.entry(k.clone()).or_insert(0) += n;
        }
    }
    let processes: Vec<ProcessSummary> = watches.iter().map(summarise).collect();
    let soak = SoakReport {
        schema: "kistrel.soak/1",
        duration_s: start.elapsed().as_secs_f64(),
        relays: RELAYS,
        transfers_ok: ok,
        transfers_failed: failed,
        bytes_verified: bytes,
        models: report.models.clone(),
        kills,
        processes,
    };
    print_soak(&soak);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&soak)
            .map_err(|e| CliError::runtime("encoding JSON", e))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
    }
    let corrupt = soak.transfers_failed.get("corrupt").copied().unwrap_or(0);
    if corrupt > 0 {
        return Err(CliError::runtime(
            "kistrel bench --soak",
            format!("{corrupt} transfer(s) delivered corrupted bytes"),
        ));
    }
    Ok(())
}

impl ProcessWatch {
    fn new(role: String, pid: i32, start: Instant) -> Self {
        ProcessWatch {
            role,
            pid,
            since_s: start.elapsed().as_secs_f64(),
            rss_kib: Vec::new(),
            fds_start: None,
            fds_end: None,
            killed_at_s: None,
        }
    }
}

/// Adds processes of the network not yet watched (the first call finds them all).
fn refresh(net: &NetChild, _dir: &Path, watches: &mut Vec<ProcessWatch>, start: Instant) {
    for (role, pid) in net.pids() {
        if !watches.iter().any(|w| w.pid == pid) {
            watches.push(ProcessWatch::new(role, pid, start));
        }
    }
}

fn restart_relay(dir: &Path, role: &str, n: usize) -> Result<Child, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::runtime("finding the kistrel executable", e))?;
    let config: PathBuf = dir.join(format!("{role}.toml"));
    let log_path = dir.join(format!("{role}-restart{n}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| CliError::runtime(format!("creating {}", log_path.display()), e))?;
    let err = log
        .try_clone()
        .map_err(|e| CliError::runtime("log file", e))?;
    Command::new(exe)
        .arg("relay")
        .arg("-c")
        .arg(&config)
        .env(
            crate::parent::PARENT_PID_ENV,
            std::process::id().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| CliError::runtime(format!("restarting {role}"), e))
}

fn summarise(w: &ProcessWatch) -> ProcessSummary {
    let first = w.rss_kib.first().map_or(0, |s| s.1);
    let last = w.rss_kib.last().map_or(0, |s| s.1);
    let max = w.rss_kib.iter().map(|s| s.1).max().unwrap_or(0);
    ProcessSummary {
        role: w.role.clone(),
        pid: w.pid,
        rss_start_kib: first,
        rss_end_kib: last,
        rss_max_kib: max,
        rss_trend_kib_per_min: slope_per_min(&w.rss_kib[w.rss_kib.len() / 2..]),
        fds_start: w.fds_start,
        fds_end: w.fds_end,
        killed: w.killed_at_s.is_some(),
    }
}

/// Least-squares slope of (seconds, KiB) points, in KiB per minute (0 with < 2 points).
fn slope_per_min(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 as f64 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx * 60.0
    }
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Open file descriptors of a process.
fn fd_count(pid: i32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn print_soak(r: &SoakReport) {
    println!(
        "kistrel bench --soak  ({:.0} s, {} relays, {} kills)",
        r.duration_s,
        r.relays,
        r.kills.len()
    );
    println!(
        "  transfers ok {}   failed {:?}   verified {:.1} MiB",
        r.transfers_ok,
        r.transfers_failed,
        r.bytes_verified as f64 / (1u64 << 20) as f64
    );
    println!(
        "  process   pid      RSS start/end/max MiB      trend KiB/min   fds start/end   killed"
    );
    for p in &r.processes {
        println!(
            "  {:<8} {:<8} {:6.1}/{:6.1}/{:6.1}        {:9.1}      {:>4}/{:<4}        {}",
            p.role,
            p.pid,
            p.rss_start_kib as f64 / 1024.0,
            p.rss_end_kib as f64 / 1024.0,
            p.rss_max_kib as f64 / 1024.0,
            p.rss_trend_kib_per_min,
            p.fds_start.map_or("-".into(), |v| v.to_string()),
            p.fds_end.map_or("-".into(), |v| v.to_string()),
            if p.killed { "yes" } else { "" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        // +60 KiB per 60 s = 60 KiB/min.
        let line: Vec<(f64, u64)> = (0..10).map(|i| (i as f64 * 10.0, 1000 + i * 10)).collect();
        assert!((slope_per_min(&line) - 60.0).abs() < 1e-9);
        assert_eq!(slope_per_min(&[(0.0, 5)]), 0.0);
        let flat: Vec<(f64, u64)> = (0..10)
            .map(|i| (i as f64, if i % 2 == 0 { 100 } else { 102 }))
            .collect();
        assert!(slope_per_min(&flat).abs() < 15.0);
    }
}
