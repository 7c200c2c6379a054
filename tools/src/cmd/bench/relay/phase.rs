//! One phase of `bench relay`: the target (a fresh relay or forwarder) and the load
//! processes started, a warm-up, a measured window between two snapshots, then a drain
//! until every cell sent has arrived, and the processes stopped.
//!
//! ```text
//!   sinks ready -> target ready -> pumps ready (circuits built) -> warm-up
//!   snapshot 0 (counters of every load process, CPU of every process)
//!   window
//!   snapshot 1
//!   stop -> drain: until every pump's sent == its sink's received and back (exact)
//!   quit load, stop target; worker shares from the relay's metrics / forwarder totals
//! ```

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use super::child::{ChildProc, LoadProc, ANSWER_WAIT};
use super::plan::{Condition, Target};
use super::record::{LoadCpu, PhaseInput, PhaseRecord};
use super::Job;
use crate::cmd::bench::procs::{cpu_seconds, run_queue_wait_seconds};
use crate::error::CliError;
use crate::forward::{ForwardFinal, ForwardReady};
use crate::load::{Counters, Ready};

/// Longest the drain may take before the phase is reported as losing cells.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);
/// How often the drain looks at the counters.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// One pump and the sink at the far end of its circuits.
#[derive(Debug)]
struct Pair {
    pump: LoadProc,
    sink: LoadProc,
}

/// The target process (none in load-only mode: it runs elsewhere).
#[derive(Debug)]
struct Running {
    proc: Option<ChildProc>,
    /// Where the pumps connect, one per pair.
    addrs: Vec<SocketAddr>,
    metrics: Option<SocketAddr>,
}

/// What the load side reports at one instant.
#[derive(Debug, Clone)]
struct Snapshot {
    at: Instant,
    pumps: Vec<Counters>,
    sinks: Vec<Counters>,
    /// The target's (CPU, run-queue wait) seconds.
    target: (Option<f64>, Option<f64>),
    /// Each load process's (CPU, run-queue wait) seconds, pump0 sink0 pump1 ...
    load: Vec<(Option<f64>, Option<f64>)>,
}

/// Runs one phase of condition `c` in round `round` (1-based).
pub(super) fn run(job: &Job, c: Condition, round: usize) -> Result<PhaseRecord, CliError> {
    let dir = job.dir.join(format!("r{round}-{}", c.label()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::runtime(format!("creating {}", dir.display()), e))?;
    let mut sinks = Vec::new();
    for i in 0..job.load.pumps {
        sinks.push(start_sink(job, i, &dir)?);
    }
    let sink_ready: Vec<Ready> = sinks
        .iter_mut()
        .map(|s| s.proc.answer("ready"))
        .collect::<Result<_, _>>()?;
    let mut target = start_target(job, c, &dir, &sink_ready)?;
    let mut pairs = Vec::new();
    for (i, (sink, ready)) in sinks.into_iter().zip(&sink_ready).enumerate() {
        let pump = start_pump(job, c, i, &dir, &target, ready)?;
        pairs.push(Pair { pump, sink });
    }
    for p in &mut pairs {
        let _: Ready = p.pump.proc.answer("ready")?;
    }
    std::thread::sleep(job.warmup);
    let first = snapshot(&mut pairs, &target)?;
    std::thread::sleep(job.duration);
    let last = snapshot(&mut pairs, &target)?;
    let drain = drain(&mut pairs)?;
    let shares = finish(&mut pairs, &mut target, c)?;
    let (target_cpus, shares_load_cpus, machine_cpus) = match &job.cpus {
        Some(plan) => {
            let (set, shared) = plan.target(c.workers);
            let union = crate::placement::CpuList::union([&set, &plan.load]).map_or(0, |u| u.len());
            (Some(set), shared, union)
        }
        None => (None, false, 0),
    };
    Ok(PhaseRecord::compute(&PhaseInput {
        round,
        condition: c,
        window_s: last.at.duration_since(first.at).as_secs_f64(),
        delivered: [delivered(&first), delivered(&last)],
        forward: [forward(&first), forward(&last)],
        backward: [backward(&first), backward(&last)],
        target_cpu: [first.target.0, last.target.0],
        target_wait: [first.target.1, last.target.1],
        load_cpu: load_cpu(job, &first, &last),
        load_capacity: job.load_capacity(),
        target_cpus,
        shares_load_cpus,
        machine_cpus,
        drain_s: drain.map(|d| d.as_secs_f64()),
        worker_shares: shares,
    }))
}

fn delivered(s: &Snapshot) -> u64 {
    s.pumps
        .iter()
        .chain(&s.sinks)
        .map(Counters::cells_received)
        .sum()
}

fn forward(s: &Snapshot) -> u64 {
    s.sinks.iter().map(|c| c.data_received).sum()
}

fn backward(s: &Snapshot) -> u64 {
    s.pumps.iter().map(|c| c.data_received).sum()
}

/// Each load process's CPU seconds over the window.
fn load_cpu(job: &Job, first: &Snapshot, last: &Snapshot) -> Vec<LoadCpu> {
    let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    first
        .load
        .iter()
        .zip(&last.load)
        .enumerate()
        .map(|(k, (a, b))| LoadCpu {
            process: format!("{}{}", if k % 2 == 0 { "pump" } else { "sink" }, k / 2),
            cpus: job.cpus.as_ref().map(|p| p.load_process(k)),
            cpu_s: delta(a.0, b.0),
            wait_s: delta(a.1, b.1),
        })
        .collect()
}

fn start_sink(job: &Job, i: usize, dir: &std::path::Path) -> Result<LoadProc, CliError> {
    let mut cmd = Command::new(&job.kistrel);
    let listen = job.remote.as_ref().map_or_else(
        || "127.0.0.1:0".to_owned(),
        |r| r.sink_listen(i).to_string(),
    );
    cmd.args(["bench", "sink", "--listen", &listen]);
    job.load_args(&mut cmd, 2 * i + 1);
    let proc = ChildProc::spawn(&format!("sink{i}"), cmd, dir)?;
    Ok(LoadProc { proc })
}

fn start_pump(
    job: &Job,
    c: Condition,
    i: usize,
    dir: &std::path::Path,
    target: &Running,
    sink: &Ready,
) -> Result<LoadProc, CliError> {
    let missing = || CliError::runtime(format!("sink{i}"), "its ready line lacks its keys");
    let keys = format!(
        "{},{}",
        sink.identity.as_deref().ok_or_else(missing)?,
        sink.ntor_key.as_deref().ok_or_else(missing)?
    );
    let sink_addr = match &job.remote {
        Some(r) => r.sink_advertise(i),
        None => sink.addr.ok_or_else(missing)?,
    };
    let connect = target.addrs.get(i).or(target.addrs.first()).copied();
    let connect = connect.ok_or_else(|| CliError::runtime("pump", "no target address"))?;
    let mut cmd = Command::new(&job.kistrel);
    cmd.args(["bench", "pump", "--connect", &connect.to_string()]);
    match c.target {
        Target::Relay => {
            cmd.args(["--first", &job.relay_keys]);
            cmd.args(["--extend-to", &format!("{sink_addr},{keys}")]);
        }
        Target::Forwarder => {
            cmd.args(["--first", &keys]);
        }
    }
    cmd.args(["--connections", &job.load.connections.to_string()]);
    cmd.args(["--circuits", &job.load.circuits.to_string()]);
    cmd.args(["--directions", job.load.directions_name()]);
    job.load_args(&mut cmd, 2 * i);
    let proc = ChildProc::spawn(&format!("pump{i}"), cmd, dir)?;
    Ok(LoadProc { proc })
}

/// Starts the relay or the forwarder of condition `c` (nothing in load-only mode).
fn start_target(
    job: &Job,
    c: Condition,
    dir: &std::path::Path,
    sinks: &[Ready],
) -> Result<Running, CliError> {
    if let Some(remote) = &job.remote {
        let addrs = match c.target {
            Target::Relay => vec![remote.relay],
            Target::Forwarder => remote.forwarders.clone(),
        };
        return Ok(Running {
            proc: None,
            addrs,
            metrics: None,
        });
    }
    let cpus = job.cpus.as_ref().map(|p| p.target(c.workers).0);
    match c.target {
        Target::Relay => {
            let config = job.relay_config(dir, c.workers, cpus.as_ref())?;
            let mut cmd = Command::new(&job.kistrel);
            cmd.args(["relay", "-c"]).arg(&config.file);
            cmd.args(["--metrics", "127.0.0.1:0"]);
            let mut proc = ChildProc::spawn("relay", cmd, dir)?;
            // The ORPort listeners are bound before the metrics server starts.
            let metrics = proc.expect(ANSWER_WAIT, "metrics addr", |l| {
                l.trim().strip_prefix("metrics addr=")?.parse().ok()
            })?;
            Ok(Running {
                proc: Some(proc),
                addrs: vec![config.or_port],
                metrics: Some(metrics),
            })
        }
        Target::Forwarder => {
            let mut cmd = Command::new(&job.forward_bin);
            for s in sinks {
                let up = s
                    .addr
                    .ok_or_else(|| CliError::runtime("sink", "no address"))?;
                cmd.args(["--listen", "127.0.0.1:0", "--upstream", &up.to_string()]);
            }
            cmd.args(["--threads", &c.workers.to_string()]);
            if let Some(cpus) = &cpus {
                cmd.args(["--cpus", &cpus.to_string()]);
            }
            let mut proc = ChildProc::spawn("forwarder", cmd, dir)?;
            let ready: ForwardReady = proc.answer("ready")?;
            Ok(Running {
                proc: Some(proc),
                addrs: ready.addrs,
                metrics: None,
            })
        }
    }
}

/// Counters of every load process and CPU of every process, as close to one instant as
/// the line protocol allows (all questions first, then all answers).
fn snapshot(pairs: &mut [Pair], target: &Running) -> Result<Snapshot, CliError> {
    let at = Instant::now();
    for p in pairs.iter_mut() {
        p.pump.proc.send("snap")?;
        p.sink.proc.send("snap")?;
    }
    let times = |pid: i32| (cpu_seconds(pid), run_queue_wait_seconds(pid));
    let target_times = target
        .proc
        .as_ref()
        .map_or((None, None), |t| times(t.pid()));
    let mut load = Vec::new();
    for p in pairs.iter() {
        load.push(times(p.pump.proc.pid()));
        load.push(times(p.sink.proc.pid()));
    }
    let mut pumps = Vec::new();
    let mut sinks = Vec::new();
    for p in pairs.iter_mut() {
        pumps.push(p.pump.proc.answer("counters")?);
        sinks.push(p.sink.proc.answer("counters")?);
    }
    Ok(Snapshot {
        at,
        pumps,
        sinks,
        target: target_times,
        load,
    })
}

/// Whether every cell sent between a pump and its sink has arrived, both ways.
fn conserved(pump: &Counters, sink: &Counters) -> bool {
    pump.data_sent == sink.data_received
        && sink.data_sent == pump.data_received
        && pump.acks_sent == sink.acks_received
        && sink.acks_sent == pump.acks_received
}

/// Stops new data and waits until every cell sent has arrived. `None` when that did not
/// happen within [`DRAIN_LIMIT`] (cells were lost).
fn drain(pairs: &mut [Pair]) -> Result<Option<Duration>, CliError> {
    let start = Instant::now();
    for p in pairs.iter_mut() {
        p.pump.stop()?;
        p.sink.stop()?;
    }
    loop {
        let mut all = true;
        for p in pairs.iter_mut() {
            all &= conserved(&p.pump.snap()?, &p.sink.snap()?);
        }
        if all {
            return Ok(Some(start.elapsed()));
        }
        if start.elapsed() > DRAIN_LIMIT {
            return Ok(None);
        }
        std::thread::sleep(DRAIN_POLL);
    }
}

/// Quits the load processes (sinks first), reads the relay's per-worker cells or the
/// forwarder's per-thread bytes, and stops the target. Returns each worker's share.
fn finish(pairs: &mut [Pair], target: &mut Running, c: Condition) -> Result<Vec<f64>, CliError> {
    let mut shares = Vec::new();
    if let (Target::Relay, Some(addr)) = (c.target, target.metrics) {
        // Workers report once a second: wait for a report that covers the drain.
        std::thread::sleep(crate::cmd::bench::job::METRICS_SETTLE);
        if let Ok(page) = crate::cmd::bench::nodes::fetch(addr) {
            let cells: Vec<f64> = page
                .workers
                .iter()
                .map(|w| w.counters.cells_written as f64)
                .collect();
            shares = fractions(&cells);
        }
    }
    for p in pairs.iter_mut() {
        p.sink.quit()?;
        p.pump.quit()?;
    }
    if let Some(proc) = &mut target.proc {
        match c.target {
            Target::Relay => {
                proc.terminate();
                if !proc.wait(Duration::from_secs(10)) {
                    return Err(proc.failed("did not stop cleanly"));
                }
            }
            Target::Forwarder => {
                proc.close_stdin();
                let last: ForwardFinal = proc.answer("final")?;
                let bytes: Vec<f64> = last.threads.iter().map(|t| t.bytes as f64).collect();
                shares = fractions(&bytes);
                if !proc.wait(Duration::from_secs(10)) {
                    return Err(proc.failed("did not stop cleanly"));
                }
            }
        }
    }
    Ok(shares)
}

/// `values` as fractions of their sum (empty when the sum is 0).
fn fractions(values: &[f64]) -> Vec<f64> {
    let total: f64 = values.iter().sum();
    if total > 0.0 {
        values.iter().map(|v| v / total).collect()
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conservation_needs_every_count_to_match_both_ways() {
        let pump = Counters {
            data_sent: 500,
            data_received: 300,
            acks_sent: 3,
            acks_received: 5,
            ..Counters::default()
        };
        let sink = Counters {
            data_sent: 300,
            data_received: 500,
            acks_sent: 5,
            acks_received: 3,
            ..Counters::default()
        };
        assert!(conserved(&pump, &sink));
        let short = Counters {
            data_received: 499,
            ..sink
        };
        assert!(!conserved(&pump, &short));
        assert_eq!(fractions(&[1.0, 3.0]), [0.25, 0.75]);
        assert!(fractions(&[0.0, 0.0]).is_empty());
    }
}
