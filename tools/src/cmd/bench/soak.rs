//! `kistrel bench soak DURATION`: mixed tgen traffic through a 5-relay network for a long
//! time while relays are killed (-9) and restarted, watching for leaks.
//!
//! ```text
//! tgen server (host) <- exit <- middle <- guard <- client <- tgen flows: web x4, bulk x2, perf x1
//! every --kill-every: kill -9 the next relay (round robin), restart it 5 s later
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

use clap::Args;
use serde::Serialize;

use super::job::{net_dir, write_json};
use super::net_child::{NetChild, NetShape, NodeArgs};
use super::procs::{fd_count, rss_kib};
use crate::cmd::args::duration;
use crate::error::CliError;
use crate::tgen::{self, ClientOptions, Model, ModelFlows};

/// `kistrel bench soak` options.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// How long the traffic runs, e.g. 30min.
    #[arg(value_name = "DURATION", value_parser = duration)]
    pub duration: Duration,
    /// kill -9 one relay (round robin) this often; it is restarted 5 s later.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub kill_every: Duration,
    /// Also write the report (schema `kistrel.soak/1`) here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// The network.
    #[command(flatten)]
    pub nodes: NodeArgs,
}

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

/// Run the soak.
pub fn run(args: &SoakArgs) -> Result<(), CliError> {
    let (duration, kill_every) = (args.duration, args.kill_every);
    let tmp = tempfile::tempdir().map_err(|e| CliError::runtime("creating a temp folder", e))?;
    let dir = net_dir(&args.nodes, tmp.path());
    let server = tgen::Server::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| CliError::runtime("starting the tgen server", e))?;
    let shape = NetShape {
        relays: RELAYS,
        keep_going: true,
        ..NetShape::default()
    };
    let net = NetChild::start(&args.nodes, &shape, &dir)?;
    eprintln!(
        "kistrel bench soak: {} s of web x4 + bulk x2 + perf x1 through {RELAYS} relays, a relay killed every {} s; network in {}",
        duration.as_secs(),
        kill_every.as_secs(),
        dir.display()
    );
    let mut soak = Soak {
        net: &net,
        dir: &dir,
        start: Instant::now(),
        watches: Vec::new(),
        restarted: Vec::new(),
        kills: Vec::new(),
        victim: 0,
        pending_restart: None,
    };
    soak.refresh();
    for w in &mut soak.watches {
        w.fds_start = fd_count(w.pid);
    }
    let opts = traffic(server.addr(), net.socks, duration);
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|s| -> Result<tgen::TgenReport, CliError> {
        let traffic = s.spawn(|| tgen::run_client(&opts, &stop));
        let mut next_sample = soak.start;
        let mut next_kill = soak.start + kill_every;
        while !traffic.is_finished() {
            let now = Instant::now();
            if now >= next_sample {
                next_sample += SAMPLE_EVERY;
                soak.sample();
            }
            if soak.pending_restart.is_none()
                && now >= next_kill
                && now + kill_every < soak.start + duration
            {
                next_kill += kill_every;
                soak.kill_next(now);
            }
            soak.restart_due(now)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        traffic
            .join()
            .map_err(|_| CliError::runtime("kistrel bench soak", "the traffic thread panicked"))?
            .map_err(|e| CliError::runtime("tgen", e))
    })?;
    std::thread::sleep(SETTLE);
    let (start, watches, kills) = soak.finish();
    net.stop();
    drop(server);
    report_and_check(args, start, &report, &watches, kills)
}

/// The soak's traffic: web x4, bulk x2, perf x1 for `duration`.
fn traffic(server: SocketAddr, socks: SocketAddr, duration: Duration) -> ClientOptions {
    let mut opts = ClientOptions::new(server);
    opts.socks = Some(socks);
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
    opts
}

/// The watcher's state while the traffic runs.
struct Soak<'a> {
    net: &'a NetChild,
    dir: &'a Path,
    start: Instant,
    watches: Vec<ProcessWatch>,
    restarted: Vec<Child>,
    kills: Vec<Kill>,
    victim: u16,
    /// When to restart which role, and its entry in `kills`.
    pending_restart: Option<(Instant, String, usize)>,
}

impl Soak<'_> {
    /// Adds processes of the network not yet watched (the first call finds them all).
    fn refresh(&mut self) {
        for (role, pid) in self.net.pids() {
            if !self.watches.iter().any(|w| w.pid == pid) {
                self.watches.push(ProcessWatch::new(role, pid, self.start));
            }
        }
    }

    /// RSS of every live process (and a restarted one's fds at its first sample).
    fn sample(&mut self) {
        self.refresh();
        let t = self.start.elapsed().as_secs_f64();
        for w in self.watches.iter_mut().filter(|w| w.killed_at_s.is_none()) {
            if let Some(kib) = rss_kib(w.pid) {
                w.rss_kib.push((t, kib));
            }
            // A restarted relay's start: its first sample after the restart.
            if w.fds_start.is_none() {
                w.fds_start = fd_count(w.pid);
            }
        }
    }

    /// kill -9 the next relay in turn; its restart is due `DOWN_FOR` later.
    fn kill_next(&mut self, now: Instant) {
        let role = format!("relay{}", self.victim % RELAYS + 1);
        self.victim += 1;
        let Some(i) = self
            .watches
            .iter()
            .rposition(|w| w.role == role && w.killed_at_s.is_none())
        else {
            return;
        };
        let pid = self.watches[i].pid;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let at = self.start.elapsed().as_secs_f64();
        self.watches[i].killed_at_s = Some(at);
        self.kills.push(Kill {
            at_s: at,
            role: role.clone(),
            pid,
            restarted_pid: None,
        });
        self.pending_restart = Some((now + DOWN_FOR, role, self.kills.len() - 1));
    }

    fn restart_due(&mut self, now: Instant) -> Result<(), CliError> {
        let Some((when, role, k)) = &self.pending_restart else {
            return Ok(());
        };
        if now < *when {
            return Ok(());
        }
        let child = restart_relay(self.dir, role, self.restarted.len())?;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        self.kills[*k].restarted_pid = Some(pid);
        self.watches
            .push(ProcessWatch::new(role.clone(), pid, self.start));
        self.restarted.push(child);
        self.pending_restart = None;
        Ok(())
    }

    /// Final fds and RSS, then stop the restarted relays.
    fn finish(mut self) -> (Instant, Vec<ProcessWatch>, Vec<Kill>) {
        let t = self.start.elapsed().as_secs_f64();
        for w in self.watches.iter_mut().filter(|w| w.killed_at_s.is_none()) {
            w.fds_end = fd_count(w.pid);
            if let Some(kib) = rss_kib(w.pid) {
                w.rss_kib.push((t, kib));
            }
        }
        for mut c in self.restarted.drain(..) {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = c.wait();
        }
        (self.start, self.watches, self.kills)
    }
}

fn report_and_check(
    args: &SoakArgs,
    start: Instant,
    report: &tgen::TgenReport,
    watches: &[ProcessWatch],
    kills: Vec<Kill>,
) -> Result<(), CliError> {
    let mut failed = BTreeMap::new();
    let (mut ok, mut bytes) = (0, 0);
    for m in report.models.values() {
        ok += m.ok;
        bytes += m.bytes;
        for (k, n) in &m.failed {
            *failed.entry(k.clone()).or_insert(0) += n;
        }
    }
    let soak = SoakReport {
        schema: "kistrel.soak/1",
        duration_s: start.elapsed().as_secs_f64(),
        relays: RELAYS,
        transfers_ok: ok,
        transfers_failed: failed,
        bytes_verified: bytes,
        models: report.models.clone(),
        kills,
        processes: watches.iter().map(summarise).collect(),
    };
    print_soak(&soak);
    if let Some(path) = &args.json {
        write_json(path, &soak)?;
    }
    let corrupt = soak.transfers_failed.get("corrupt").copied().unwrap_or(0);
    if corrupt > 0 {
        return Err(CliError::runtime(
            "kistrel bench soak",
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

fn print_soak(r: &SoakReport) {
    println!(
        "kistrel bench soak  ({:.0} s, {} relays, {} kills)",
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
