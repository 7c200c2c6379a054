//! Start the children, wait for the client's ready line, watch, stop.
//!
//! ```text
//! [--ctor-relays: spawn every tor -> wait (bounded) for a consensus listing them all
//!                 -> add them to the directory -> check the client config]
//! spawn relays -> wait (bounded) for their ORPorts -> spawn client -> client's ready line
//!   before every step and every 20 ms until ready:
//!                     signal flag? -> stop all, Err(Interrupted)  (exit 1, says so)
//!                     past --ready-timeout (from the start)? -> stop all, Err(NotReady)
//!                     a child exited? -> stop the rest, Err(ChildExited)
//!   print our ready line; then every 20 ms: signal flag? -> stop all, Ok
//!                     a child exited? -> stop the rest, Err (a relay with --keep-going: report)
//! ```
//!
//! Children run in their own process group, so a terminal's Ctrl-C reaches only us and we
//! stop them in order; each child also dies with us (see [`crate::parent`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::ctor::{extend_directory, relay_list, CtorPlan};
use super::error::NetError;
use super::layout::Layout;
use super::shaped::Shaped;
use crate::config::ClientConf;
use crate::ctor::{CtorError, CtorNet, Status};
use crate::parent::PARENT_PID_ENV;

const TICK: Duration = Duration::from_millis(20);
/// How long stopped children get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the C Tor network's consensus is read while waiting for it.
const CTOR_POLL: Duration = Duration::from_millis(250);
/// How long to wait for the relays' ORPorts before starting the client anyway (it retries).
const RELAY_LISTEN_WAIT: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    pub(super) program: PathBuf,
    pub(super) layout: Layout,
    pub(super) overrides: Vec<String>,
    pub(super) verbose: u8,
    pub(super) ready_timeout: Duration,
    /// After ready, a relay that dies is reported, not fatal (the client must not die).
    pub(super) keep_going: bool,
    /// Every node serves metrics on port 0: collect their `metrics addr=` lines into ours.
    pub(super) metrics: bool,
    /// Run the children in these namespaces (`--bottleneck`).
    pub(super) shaped: Option<&'a Shaped>,
    /// A C Tor network to start first (`--ctor-relays`).
    pub(super) ctor: Option<&'a CtorPlan>,
}

#[derive(Debug)]
struct Running {
    name: String,
    log: PathBuf,
    child: Child,
    /// Set once reaped.
    done: bool,
}

/// The children; dropping it stops and reaps any still running.
#[derive(Debug, Default)]
struct Children(Vec<Running>);

impl Children {
    /// Start `kistrel ARGS` (in the plan's namespace, with `-v`s) as child `name`.
    fn spawn(
        &mut self,
        plan: &Plan<'_>,
        name: &str,
        args: Vec<String>,
        log: &Path,
        stdout_piped: bool,
    ) -> Result<&mut Child, NetError> {
        let mut cmd = match plan.shaped {
            Some(s) => s.command(name, &plan.program)?,
            None => Command::new(&plan.program),
        };
        for _ in 0..plan.verbose {
            cmd.arg("-v");
        }
        cmd.args(args);
        self.spawn_command(name, cmd, log, stdout_piped)
    }

    /// Start `cmd` as child `name`: stdin closed, stderr (and stdout unless piped) into
    /// `log`, its own process group, told our pid.
    fn spawn_command(
        &mut self,
        name: &str,
        mut cmd: Command,
        log: &Path,
        stdout_piped: bool,
    ) -> Result<&mut Child, NetError> {
        let io_err = |source| NetError::Io {
            what: "creating log file",
            path: log.to_path_buf(),
            source,
        };
        let log_file = File::create(log).map_err(io_err)?;
        let stdout = if stdout_piped {
            Stdio::piped()
        } else {
            Stdio::from(log_file.try_clone().map_err(io_err)?)
        };
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(log_file))
            .env(PARENT_PID_ENV, std::process::id().to_string())
            .process_group(0);
        let child = cmd.spawn().map_err(|source| NetError::Spawn {
            name: name.to_owned(),
            program: PathBuf::from(cmd.get_program()),
            source,
        })?;
        tracing::info!(name, pid = child.id(), "started");
        self.0.push(Running {
            name: name.to_owned(),
            log: log.to_path_buf(),
            child,
            done: false,
        });
        let last = self.0.len() - 1;
        Ok(&mut self.0[last].child)
    }

    /// The first child found to have exited, reaped.
    fn exited(&mut self) -> Result<Option<NetError>, NetError> {
        for r in self.0.iter_mut().filter(|r| !r.done) {
            let status = r.child.try_wait().map_err(|source| NetError::Wait {
                name: r.name.clone(),
                source,
            })?;
            if let Some(status) = status {
                r.done = true;
                return Ok(Some(NetError::ChildExited {
                    name: r.name.clone(),
                    pid: r.child.id(),
                    status,
                    log: r.log.clone(),
                    last_line: last_line(&r.log),
                }));
            }
        }
        Ok(None)
    }

    /// SIGTERM all, wait up to [`STOP_GRACE`], SIGKILL leftovers, reap all.
    fn stop_all(&mut self) {
        for r in self.0.iter_mut().filter(|r| !r.done) {
            if let Ok(pid) = i32::try_from(r.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            for r in self.0.iter_mut().filter(|r| !r.done) {
                if let Ok(Some(status)) = r.child.try_wait() {
                    tracing::info!(name = %r.name, %status, "stopped");
                    r.done = true;
                }
            }
            if self.0.iter().all(|r| r.done) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(TICK);
        }
        for r in self.0.iter_mut().filter(|r| !r.done) {
            eprintln!(
                "kistrel net: {} (pid {}) ignored SIGTERM for {} s: killing it",
                r.name,
                r.child.id(),
                STOP_GRACE.as_secs()
            );
            let _ = r.child.kill();
            let _ = r.child.wait();
            r.done = true;
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if self.0.iter().any(|r| !r.done) {
            self.stop_all();
        }
    }
}

fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let line = line.trim();
    // Keep the error line short: one log line can be long.
    Some(line.chars().take(300).collect())
}

/// Parse a child's `metrics addr=ADDR` line.
pub(super) fn parse_metrics(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("metrics addr=")?.parse().ok()
}

/// The metrics address a relay printed into its log, if it has yet.
fn metrics_in_log(log: &Path) -> Option<SocketAddr> {
    find_in_log(log, parse_metrics)
}

/// The first line of a child's log that `parse` accepts, parsed; `None` while the log is
/// missing or holds no such line.
fn find_in_log<T>(log: &Path, parse: impl FnMut(&str) -> Option<T>) -> Option<T> {
    std::fs::read_to_string(log).ok()?.lines().find_map(parse)
}

/// Whether a relay printed its `ready or=ADDR` line (it listens) into its log. Read from
/// the log, not by connecting to the ORPort: a test connection is an inbound channel to the
/// relay, counted in the load of the worker that took it until its close is seen, and the
/// client's first channels, arriving meanwhile, were placed around it (`runtime::balance`):
/// with 2 workers, one worker then carried the relay's circuits (session 18, poll backend and
/// TLS links, in 2 of 3 rounds of benches/three-hop-throughput.sh).
fn relay_ready_in_log(log: &Path) -> bool {
    find_in_log(log, |l| {
        l.trim_start().starts_with("ready or=").then_some(())
    })
    .is_some()
}

/// Parse `ready socks=ADDR ...` from the client.
pub(super) fn parse_ready(line: &str) -> Option<SocketAddr> {
    let rest = line.trim().strip_prefix("ready ")?;
    rest.split_whitespace()
        .find_map(|t| t.strip_prefix("socks="))
        .and_then(|a| a.parse().ok())
}

/// Our ready line: every relay as `NAME:KIND@ADDR` (kind `kistrel` or `ctor`); `metrics`
/// (name, address) pairs become `metrics=NAME@ADDR,...`.
pub(super) fn ready_line(
    socks: SocketAddr,
    layout: &Layout,
    ctor: Option<&CtorNet>,
    metrics: &[(String, SocketAddr)],
) -> String {
    let relays = relay_list(layout, ctor);
    let mut line = format!(
        "ready socks={socks} relays={} dir={}",
        relays.join(","),
        layout.dir.display()
    );
    if !metrics.is_empty() {
        let m: Vec<String> = metrics.iter().map(|(n, a)| format!("{n}@{a}")).collect();
        line.push_str(&format!(" metrics={}", m.join(",")));
    }
    line
}

/// Each node's metrics address: relays from their logs (they print it before they listen
/// on the ORPort, so by the client's ready line it is there; bounded wait anyway).
fn collect_metrics(
    layout: &Layout,
    client: Option<SocketAddr>,
) -> Result<Vec<(String, SocketAddr)>, NetError> {
    let deadline = Instant::now() + RELAY_LISTEN_WAIT;
    let mut out = Vec::new();
    for r in &layout.relays {
        loop {
            if let Some(a) = metrics_in_log(&r.log) {
                out.push((r.nickname.clone(), a));
                break;
            }
            if Instant::now() >= deadline {
                return Err(NetError::Layout {
                    problem: format!(
                        "{} did not print its metrics address; its log: {}",
                        r.nickname,
                        r.log.display()
                    ),
                });
            }
            std::thread::sleep(TICK);
        }
    }
    if let Some(a) = client {
        out.push(("client".to_owned(), a));
    }
    Ok(out)
}

/// SIGINT/SIGTERM set the returned flag (instead of ending the process).
pub(super) fn register_signals() -> Result<Arc<AtomicBool>, NetError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(NetError::Signals)?;
    }
    Ok(stop)
}

/// Run the network until a signal (Ok) or a failure (Err). No child outlives this call.
pub(super) fn run(plan: &Plan<'_>, stop: &AtomicBool) -> Result<(), NetError> {
    let mut children = Children::default();
    let result = start_and_watch(plan, stop, &mut children);
    children.stop_all();
    result
}

/// Start-up's checks between two steps: a signal, the ready deadline, a dead child.
struct StartUp<'p> {
    plan: &'p Plan<'p>,
    stop: &'p AtomicBool,
    /// `--ready-timeout` counts from the start, not from the last child spawned.
    deadline: Instant,
    /// Progress on stderr, when it is a terminal.
    progress: bool,
}

impl StartUp<'_> {
    /// Nodes of the network: the relays, the client, and any C Tor nodes.
    fn total(&self) -> usize {
        let ctor = self.plan.ctor.map_or(0, |c| c.net.nodes.len());
        self.plan.layout.relays.len() + 1 + ctor
    }

    /// Err when start-up must end: interrupted (everything started is stopped by the
    /// caller), past the ready timeout, or a child died.
    fn check(&self, children: &mut Children) -> Result<(), NetError> {
        if self.stop.load(Ordering::Relaxed) {
            self.clear_progress();
            return Err(NetError::Interrupted {
                started: children.0.len(),
                total: self.total(),
            });
        }
        if Instant::now() >= self.deadline {
            self.clear_progress();
            return Err(NetError::NotReady {
                waited: self.plan.ready_timeout,
                log: self.plan.layout.client_log.clone(),
            });
        }
        match children.exited()? {
            Some(e) => {
                self.clear_progress();
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn show(&self, what: std::fmt::Arguments<'_>) {
        if self.progress {
            eprint!("\r\x1b[2Kkistrel net: {what}");
        }
    }

    fn clear_progress(&self) {
        if self.progress {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Starts the relays, waits for them to listen, starts the client, then watches them all.
/// A signal or the ready timeout ends start-up at any step (see [`StartUp::check`]).
fn start_and_watch(
    plan: &Plan<'_>,
    stop: &AtomicBool,
    children: &mut Children,
) -> Result<(), NetError> {
    use std::io::IsTerminal;
    let start = StartUp {
        plan,
        stop,
        deadline: Instant::now() + plan.ready_timeout,
        progress: std::io::stderr().is_terminal(),
    };
    let layout = &plan.layout;
    if let Some(ctor) = plan.ctor {
        if !start_ctor(plan, ctor, stop, children)? {
            // A signal: check says so (Interrupted).
            start.check(children)?;
        }
    }
    let n = layout.relays.len();
    for (i, r) in layout.relays.iter().enumerate() {
        start.check(children)?;
        start.show(format_args!("starting relay {}/{n}", i + 1));
        let mut args = vec!["relay".to_owned(), "-c".to_owned()];
        args.push(r.config.display().to_string());
        for o in &plan.overrides {
            args.push("-o".to_owned());
            args.push(o.clone());
        }
        children.spawn(plan, &r.nickname, args, &r.log, false)?;
    }
    // Give the relays a moment to listen so the client's first circuit need not retry.
    let listen_deadline = Instant::now() + RELAY_LISTEN_WAIT;
    for (i, r) in layout.relays.iter().enumerate() {
        start.show(format_args!("waiting for relay {}/{n} to listen", i + 1));
        while !relay_ready_in_log(&r.log) && Instant::now() < listen_deadline {
            start.check(children)?;
            std::thread::sleep(TICK);
        }
    }
    start.check(children)?;
    start.show(format_args!(
        "starting the client, waiting for its first circuit"
    ));
    let client_args = vec![
        "client".to_owned(),
        "-c".to_owned(),
        layout.client_config.display().to_string(),
    ];
    let client = children.spawn(plan, "client", client_args, &layout.client_log, true)?;
    let (ready_tx, ready_rx) = mpsc::channel();
    if let Some(out) = client.stdout.take() {
        std::thread::spawn(move || forward_client_stdout(out, ready_tx));
    }
    let ready = loop {
        start.check(children)?;
        if let Ok(ready) = ready_rx.recv_timeout(TICK) {
            break ready;
        }
    };
    start.clear_progress();
    announce_ready(plan, ready)?;
    watch(plan, stop, children)
}

/// Prints our ready line for the client's `ready` (its SOCKS and metrics addresses).
fn announce_ready(
    plan: &Plan<'_>,
    (socks, client_metrics): (SocketAddr, Option<SocketAddr>),
) -> Result<(), NetError> {
    let layout = &plan.layout;
    let metrics = if plan.metrics {
        collect_metrics(layout, client_metrics)?
    } else {
        Vec::new()
    };
    let mut out = std::io::stdout().lock();
    // If nobody reads our stdout any more, keep running: signals still stop us.
    let suffix = plan.shaped.map(Shaped::ready_suffix).unwrap_or_default();
    let line = ready_line(socks, layout, plan.ctor.map(|c| &c.net), &metrics);
    let _ = writeln!(out, "{line}{suffix}");
    let _ = out.flush();
    Ok(())
}

/// Starts every tor, waits (bounded by the ready timeout) for a consensus that lists them
/// all, then adds them to the directory and checks the client config against it. False: a
/// signal came first.
fn start_ctor(
    plan: &Plan<'_>,
    ctor: &CtorPlan,
    stop: &AtomicBool,
    children: &mut Children,
) -> Result<bool, NetError> {
    let started = Instant::now();
    for node in &ctor.net.nodes {
        children.spawn_command(
            node.nickname(),
            node.command(&ctor.tor),
            &node.stdout_log,
            false,
        )?;
    }
    let deadline = started + plan.ready_timeout;
    let relays = loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if let Some(e) = children.exited()? {
            return Err(e);
        }
        match ctor.net.status(SystemTime::now())? {
            Status::Ready(relays) => break relays,
            Status::Waiting(missing) if Instant::now() >= deadline => {
                return Err(CtorError::NotReady {
                    waited: plan.ready_timeout,
                    missing,
                    dir: ctor.net.dir.clone(),
                }
                .into());
            }
            Status::Waiting(_) => std::thread::sleep(CTOR_POLL),
        }
    };
    tracing::info!(
        relays = relays.len(),
        ms = started.elapsed().as_millis() as u64,
        "C Tor network ready"
    );
    extend_directory(&plan.layout, &relays)?;
    ClientConf::load(&plan.layout.client_config, &[])?.load_directory()?;
    Ok(true)
}

/// Reads the client's stdout: its `metrics addr=` and `ready socks=` lines go to `ready`,
/// the rest to the debug log.
fn forward_client_stdout(
    out: std::process::ChildStdout,
    ready: mpsc::Sender<(SocketAddr, Option<SocketAddr>)>,
) {
    let mut metrics = None;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        if let Some(addr) = parse_metrics(&line) {
            metrics = Some(addr);
            continue;
        }
        match parse_ready(&line) {
            Some(addr) => {
                if ready.send((addr, metrics)).is_err() {
                    break;
                }
            }
            None => tracing::debug!(target: "kistrel::net::client", "{line}"),
        }
    }
}

/// After ready, until a signal: fail when a child exits (a relay, with --keep-going:
/// report it and keep running).
fn watch(plan: &Plan<'_>, stop: &AtomicBool, children: &mut Children) -> Result<(), NetError> {
    loop {
        if stop.load(Ordering::Relaxed) {
            tracing::info!("signal received: stopping the network");
            return Ok(());
        }
        if let Some(e) = children.exited()? {
            let relay_died = matches!(&e, NetError::ChildExited { name, .. } if name != "client");
            if !(plan.keep_going && relay_died) {
                return Err(e);
            }
            eprintln!("kistrel net: {e} (--keep-going: the rest keeps running)");
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ready_takes_the_socks_token() {
        assert_eq!(
            parse_ready("ready socks=127.0.0.1:9050"),
            Some("127.0.0.1:9050".parse().unwrap())
        );
        assert_eq!(
            parse_ready("ready circuits=1 socks=[::1]:1080\n"),
            Some("[::1]:1080".parse().unwrap())
        );
        assert_eq!(parse_ready("ready socks=nonsense"), None);
        assert_eq!(parse_ready("building circuit socks=127.0.0.1:1"), None);
    }
}
