//! Starting and stopping a process's workers (one thread per worker, each with its own
//! SO_REUSEPORT listener(s) and its own I/O driver; with `CPUAffinity`, the process is
//! confined to its CPU set ([`confine`]) and worker *i* pinned to the set's *i*-th CPU) and
//! its control thread (`kistrel-control`), and watching them until a signal.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use kistrel_control::{ControlPlane, ControlThread, NoPublish, PathControl, Publish};
use kistrel_engine::relay::RelayConfig;
use kistrel_engine::runtime::{
    self, BackendChoice, Clock, Command, EventSender, Links, TlsContext, WorkerConfig, WorkerEvent,
    WorkerReport,
};
use kistrel_sched::{EwmaConfig, SchedConfig, SchedulerKind};

use crate::config::{Backend, ConfigError, LinksMode, RuntimeConf};
use crate::error::CliError;
use crate::metrics::MetricsServer;
use crate::placement::{self, CpuList, PlacementError};

/// Capacity of each worker's command queue and of the shared event queue.
const QUEUE: usize = 4096;

/// Worker threads are named this plus their index (`kistrel-w0`, ...).
pub const WORKER_THREAD_PREFIX: &str = "kistrel-w";

/// Workers started by [`start`].
#[derive(Debug)]
pub struct Workers {
    /// One command queue per worker.
    pub commands: Vec<Sender<Command>>,
    /// Events from all workers.
    pub events: Receiver<WorkerEvent>,
    handles: Vec<(usize, JoinHandle<Option<WorkerReport>>)>,
    /// The clock every worker uses.
    pub clock: Clock,
}

/// The scheduler settings of a config.
pub fn sched_config(rt: &RuntimeConf) -> (Vec<SchedulerKind>, SchedConfig, EwmaConfig) {
    let kinds = rt.schedulers.clone();
    let sched = SchedConfig {
        run_interval: rt.kist_sched_run_interval,
        sock_buf_size_factor: rt.kist_sock_buf_size_factor,
        ..SchedConfig::default()
    };
    (
        kinds,
        sched,
        EwmaConfig {
            halflife: rt.circuit_priority_halflife,
        },
    )
}

/// Binds `n` SO_REUSEPORT listeners on `addr` (all on the same port when `addr` has port
/// 0). A port already taken by anyone fails with `AddrInUse`: a plain bind is tried first,
/// since SO_REUSEPORT alone would happily share a port with another kistrel.
pub fn listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
    let probe = TcpListener::bind(addr)?;
    let addr = probe.local_addr()?;
    drop(probe);
    (0..n)
        .map(|_| kistrel_engine::sys::reuseport_listener(addr, 1024))
        .collect()
}

/// Binds `n` listeners for the config key `key` at `addr` and returns them with the address
/// they got. A port in use is a config error naming the file and key (exit 2).
pub fn bind(
    addr: SocketAddr,
    n: usize,
    key: &'static str,
    in_use: impl FnOnce(&'static str, SocketAddr) -> crate::config::ConfigError,
) -> Result<(Vec<TcpListener>, SocketAddr), CliError> {
    let listeners = listeners(addr, n).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => CliError::from(in_use(key, addr)),
        _ => CliError::runtime(format!("binding {key} {addr}"), e),
    })?;
    let bound = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .ok_or_else(|| CliError::runtime(format!("binding {key}"), "no listener"))?;
    Ok((listeners, bound))
}

/// Confines this process to `CPUAffinity` (of config `file`), before it starts any thread:
/// the threads it starts later (metrics, control) inherit the set, and [`start`] narrows
/// each worker to one CPU of it. CPUs outside the process's mask are a config error naming
/// the key (exit 2). Without the key, nothing happens.
pub fn confine(rt: &RuntimeConf, file: &std::path::Path) -> Result<(), CliError> {
    let Some(cpus) = &rt.cpu_affinity else {
        return Ok(());
    };
    placement::check_allowed(cpus).map_err(|e| match e {
        e @ PlacementError::NotAllowed { .. } => CliError::from(ConfigError::cpus(file, e)),
        e => CliError::from(e),
    })?;
    placement::pin_current_thread(cpus)?;
    let workers = rt.effective_workers();
    tracing::info!(cpus = %cpus, workers, "confined to CPUAffinity");
    if workers > cpus.len() {
        tracing::warn!(
            "{workers} workers on {} CPU(s) ({cpus}): workers share CPUs",
            cpus.len()
        );
    }
    Ok(())
}

/// Starts one worker per entry of `configs` on `backend` (`auto`: io_uring where it can be
/// set up, else poll with a warning; `uring` fails where it cannot). With `cpus`, worker *i*
/// is pinned to `cpus.for_worker(i)` before it sets up its driver; a pin the kernel refuses
/// fails the start.
pub fn start(
    configs: Vec<WorkerConfig>,
    backend: Backend,
    clock: Clock,
    cpus: Option<&CpuList>,
) -> Result<Workers, CliError> {
    let choice = match backend {
        Backend::Auto => BackendChoice::Auto,
        Backend::Uring => BackendChoice::Uring,
        Backend::Poll => BackendChoice::Poll,
    };
    let backend = runtime::select_backend(choice)
        .map_err(|e| CliError::runtime("choosing the runtime backend", e))?;
    let (ev_tx, ev_rx) = bounded(QUEUE);
    let mut commands = Vec::new();
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = bounded(configs.len());
    for (i, cfg) in configs.into_iter().enumerate() {
        let (cmd_tx, cmd_rx) = bounded(QUEUE);
        let events = EventSender::new(ev_tx.clone());
        let cpu = cpus.and_then(|c| CpuList::new([c.for_worker(i)]));
        let ready = ready_tx.clone();
        let index = cfg.index;
        let handle = std::thread::Builder::new()
            // At most 15 bytes (the kernel's comm): the bench finds workers by this name.
            .name(format!("{WORKER_THREAD_PREFIX}{index}"))
            .spawn(move || {
                if let Some(cpu) = &cpu {
                    if let Err(e) = placement::pin_current_thread(cpu) {
                        let _ = ready.send(Err(CliError::from(e)));
                        return None;
                    }
                    tracing::debug!(worker = index, %cpu, "pinned");
                }
                runtime::run_worker(backend, cfg, cmd_rx, events, |r| {
                    let _ = ready.send(r.map_err(|e| CliError::runtime("starting workers", e)));
                })
            })
            .map_err(|e| CliError::runtime("starting a worker thread", e))?;
        commands.push(cmd_tx);
        handles.push((index, handle));
    }
    for _ in 0..handles.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(CliError::runtime("starting workers", e)),
        }
    }
    Ok(Workers {
        commands,
        events: ev_rx,
        handles,
        clock,
    })
}

impl Workers {
    /// Whether a worker thread has ended on its own.
    pub fn any_finished(&self) -> Option<usize> {
        self.handles
            .iter()
            .find(|(_, h)| h.is_finished())
            .map(|(i, _)| *i)
    }

    /// Asks every worker to stop (DESTROY circuits, flush, close) and waits for them.
    pub fn stop(self) -> Vec<WorkerReport> {
        for c in &self.commands {
            let _ = c.send(Command::Shutdown);
        }
        self.handles
            .into_iter()
            .filter_map(|(_, h)| h.join().ok().flatten())
            .collect()
    }
}

/// A base `RelayConfig` from the runtime keys (scheduler priority) — callers fill the rest.
pub fn relay_config(rt: &RuntimeConf) -> RelayConfig {
    let (_, _, ewma) = sched_config(rt);
    RelayConfig {
        ewma,
        ..RelayConfig::default()
    }
}

/// The process's links (`Links`): TLS with a fresh link certificate (made here, once, for
/// every worker; says once whether kTLS takes the records), or plain, said once at start.
pub fn links(rt: &RuntimeConf) -> Result<Links, CliError> {
    match rt.links {
        LinksMode::Plain => {
            tracing::warn!(
                "Links = \"plain\": a benchmark mode; no encryption, no TLS binding of \
                 identities, and C Tor relays refuse these links"
            );
            Ok(Links::Plain)
        }
        LinksMode::Tls => {
            let ctx = TlsContext::new()
                .map_err(|e| CliError::runtime("setting up TLS for the links", e))?;
            match ctx.ktls() {
                runtime::KtlsSupport::Available => {
                    tracing::info!("links: TLS; kTLS available: the kernel seals records")
                }
                runtime::KtlsSupport::Unavailable(why) => {
                    tracing::info!("links: TLS with records in user space (rustls); no kTLS: {why}")
                }
            }
            Ok(Links::Tls(Arc::new(ctx)))
        }
    }
}

/// The iterations of [`kistrel_engine::relay::spin`] that take `cost` on this CPU
/// (`TestingCellCost`), calibrated now: the fastest of 5 timed runs, so a preempted run does
/// not shrink the cost. Zero for a zero cost.
pub fn spin_iterations(cost: Duration) -> u32 {
    if cost.is_zero() {
        return 0;
    }
    const PROBE: u32 = 200_000;
    let fastest = (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(kistrel_engine::relay::spin(PROBE));
            t.elapsed()
        })
        .min()
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_nanos(1));
    let per_iteration_ns = fastest.as_nanos() as f64 / f64::from(PROBE);
    let n = (cost.as_nanos() as f64 / per_iteration_ns).round();
    let n = if n >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        n as u32
    };
    tracing::warn!(
        ?cost,
        iterations = n,
        "TestingCellCost: burning CPU for every transmitted cell (testing only)"
    );
    n
}

/// SIGINT/SIGTERM as a flag.
pub fn stop_flag() -> Result<Arc<AtomicBool>, CliError> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(|e| CliError::runtime("installing signal handlers", e))?;
    }
    Ok(flag)
}

/// Whether the stop flag is set.
pub fn stopping(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// How often the supervising loops wake up to look at signals and threads.
pub const CONTROL_TICK: Duration = Duration::from_millis(100);

/// Starts the control loop for `workers` on its own thread: their queues, `paths` for a
/// client (none for a relay), figures to `metrics` when there is a MetricsPort.
pub fn start_control(
    workers: &Workers,
    paths: Option<PathControl>,
    metrics: Option<&MetricsServer>,
) -> Result<ControlThread, CliError> {
    let publish: Box<dyn Publish> = match metrics {
        Some(m) => Box::new(m.publisher()),
        None => Box::new(NoPublish),
    };
    let mut plane = ControlPlane::new(workers.events.clone(), workers.commands.clone(), publish);
    if let Some(p) = paths {
        plane = plane.with_paths(p);
    }
    ControlThread::spawn(plane, workers.clock)
        .map_err(|e| CliError::runtime("starting the control thread", e))
}

/// Runs until SIGINT/SIGTERM (`Ok`), or until a worker or the control thread ends on its own
/// (an error naming `who`); calls `ready` once, when the control thread says the node is.
pub fn supervise(
    who: &str,
    stop: &AtomicBool,
    workers: &Workers,
    control: &ControlThread,
    mut ready: impl FnMut(),
) -> Result<(), CliError> {
    loop {
        if stopping(stop) {
            return Ok(());
        }
        if let Some(i) = workers.any_finished() {
            let why = format!("worker {i} stopped unexpectedly");
            return Err(CliError::runtime(who, why));
        }
        if control.is_finished() {
            let why = "the control thread stopped unexpectedly";
            return Err(CliError::runtime(who, why));
        }
        if control.wait_ready(CONTROL_TICK) {
            ready();
        }
    }
}
