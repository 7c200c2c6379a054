//! `kistrel client -c FILE`: a circuit origin with a SOCKS5 port.
//!
//! The workers carry the streams; this thread is the control thread of DESIGN.md: it owns
//! path selection, the guards and the circuit build-timeout estimator (pathsel's
//! `ControlCore`), answers the workers' `NeedCircuit` with paths and learned deadlines, feeds
//! their build outcomes back, and saves the state file (atomically) every minute and at exit.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use kistrel_engine::client::HopSpec;
use kistrel_engine::runtime::{Clock, Command, WorkerConfig, WorkerEvent};
use kistrel_engine::time::Instant;
use kistrel_pathsel::control::{self, CircuitKey, ControlCore};
use kistrel_pathsel::{Directory, StateFile};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use tracing::{info, warn};

use crate::config::ClientConf;
use crate::error::CliError;
use crate::runner;

/// How often the state file is saved while running.
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Runs a client until SIGINT/SIGTERM. Prints `ready socks=ADDR` on stdout once the first
/// circuit is built (`kistrel net` waits for that line).
pub fn run(conf: ClientConf) -> Result<(), CliError> {
    let dir = conf.load_directory()?;
    runner::confine(&conf.runtime, &conf.file)?;
    std::fs::create_dir_all(&conf.data_directory).map_err(|e| {
        CliError::runtime(
            format!("creating DataDirectory {}", conf.data_directory.display()),
            e,
        )
    })?;
    let state_path = conf.data_directory.join("state");
    let (state, warning) = StateFile::load(&state_path);
    if let Some(w) = warning {
        warn!("{w}");
    }
    let mut rng = ChaCha12Rng::from_os_rng();
    let mut core = ControlCore::new(&dir, conf.path.clone(), conf.cbt.clone(), &state, &mut rng);

    let n = conf.runtime.effective_workers();
    let (listeners, socks) = runner::bind(conf.socks_port, n, "SocksPort", |key, a| {
        conf.port_in_use(key, a)
    })?;
    let (kinds, sched, _) = runner::sched_config(&conf.runtime);
    let clock = Clock::new();
    let configs = listeners
        .into_iter()
        .enumerate()
        .map(|(index, l)| WorkerConfig {
            index,
            relay: runner::relay_config(&conf.runtime),
            seed: None,
            or_listener: None,
            socks_listener: Some(l),
            schedulers: kinds.clone(),
            sched,
            clock,
        })
        .collect();
    let metrics = crate::metrics::MetricsServer::for_config(conf.metrics_port, n, |key, a| {
        conf.port_in_use(key, a)
    })?;
    let stop = runner::stop_flag()?;
    let workers = runner::start(
        configs,
        conf.runtime.backend,
        clock,
        conf.runtime.cpu_affinity.as_ref(),
    )?;
    info!(%socks, workers = n, relays = dir.relays().len(), "client running");

    let mut control = Control {
        core: &mut core,
        dir: &dir,
        clock,
        pending: HashMap::new(),
        out: Vec::new(),
    };
    let mut ready = false;
    let mut last_save = std::time::Instant::now();
    let result = loop {
        if runner::stopping(&stop) {
            break Ok(());
        }
        if let Some(i) = workers.any_finished() {
            break Err(CliError::runtime(
                "client",
                format!("worker {i} stopped unexpectedly"),
            ));
        }
        if let Ok(ev) = workers.events.recv_timeout(runner::CONTROL_TICK) {
            if let (
                WorkerEvent::Stats {
                    worker,
                    stats,
                    sched,
                    kind,
                },
                Some(m),
            ) = (&ev, &metrics)
            {
                m.update(*worker, *stats, (**sched).clone(), *kind);
            }
            let built = matches!(ev, WorkerEvent::CircuitBuilt { .. });
            control.handle(ev, &mut rng, &workers.commands);
            if built && !ready {
                ready = true;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ready socks={socks}");
                let _ = out.flush();
            }
        }
        control.tick();
        if last_save.elapsed() >= SAVE_EVERY {
            last_save = std::time::Instant::now();
            save_state(&state_path, control.core);
        }
    };
    let _ = workers.stop();
    save_state(&state_path, &mut core);
    result
}

fn save_state(path: &std::path::Path, core: &mut ControlCore) {
    let state = core.state(SystemTime::now());
    if let Err(e) = StateFile::save(path, &state) {
        warn!(path = %path.display(), error = %e, "cannot save the state file");
    }
}

/// Glue between the workers' events and pathsel's control core.
struct Control<'a> {
    core: &'a mut ControlCore,
    dir: &'a Directory,
    clock: Clock,
    /// The control core's key for the circuit each (worker, tag) is building.
    pending: HashMap<(usize, u64), CircuitKey>,
    out: Vec<control::Command>,
}

impl Control<'_> {
    fn now(&self) -> Duration {
        self.clock.now() - Instant::ZERO
    }

    fn handle(
        &mut self,
        ev: WorkerEvent,
        rng: &mut ChaCha12Rng,
        commands: &[crossbeam_channel::Sender<Command>],
    ) {
        let now = self.now();
        let wall = SystemTime::now();
        let event = match ev {
            WorkerEvent::NeedCircuit { worker, tag } => {
                let worker16 = u16::try_from(worker).unwrap_or(u16::MAX);
                self.out.clear();
                self.core.handle_event(
                    now,
                    wall,
                    control::Event::NeedCircuit {
                        worker: worker16,
                        target: None,
                    },
                    rng,
                    &mut self.out,
                );
                let mut sent = false;
                for cmd in self.out.drain(..) {
                    let control::Command::BuildCircuit {
                        circuit,
                        path,
                        deadline,
                        ..
                    } = cmd
                    else {
                        continue;
                    };
                    let hops: Vec<HopSpec> = [path.guard, path.middle, path.exit]
                        .into_iter()
                        .filter_map(|i| self.dir.relay(i))
                        .map(|r| HopSpec {
                            id: r.identity,
                            ntor_key: r.ntor_key,
                            addr: r.address,
                        })
                        .collect();
                    let deadline =
                        Instant::from_nanos(u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX));
                    self.pending.insert((worker, tag), circuit);
                    if let Some(tx) = commands.get(worker) {
                        sent |= tx
                            .try_send(Command::BuildCircuit {
                                tag,
                                path: hops,
                                deadline,
                            })
                            .is_ok();
                    }
                }
                if !sent {
                    warn!(worker, tag, "no path available");
                    if let Some(tx) = commands.get(worker) {
                        let _ = tx.try_send(Command::NoPath { tag });
                    }
                }
                return;
            }
            WorkerEvent::CircuitBuilt {
                worker,
                tag,
                build_ms,
                ..
            } => {
                let Some(circuit) = self.pending.remove(&(worker, tag)) else {
                    return;
                };
                control::Event::CircuitBuilt { circuit, build_ms }
            }
            WorkerEvent::CircuitFailed {
                worker, tag, hop, ..
            } => {
                let Some(circuit) = self.pending.remove(&(worker, tag)) else {
                    return;
                };
                let hop = hop.and_then(|h| u8::try_from(h).ok()).unwrap_or(0);
                control::Event::CircuitFailed { circuit, hop }
            }
            WorkerEvent::CircuitTimedOut { worker, tag, .. } => {
                let Some(circuit) = self.pending.remove(&(worker, tag)) else {
                    return;
                };
                control::Event::CircuitTimedOut { circuit }
            }
            WorkerEvent::GuardUnreachable { worker, tag, .. } => {
                let Some(circuit) = self.pending.remove(&(worker, tag)) else {
                    return;
                };
                control::Event::GuardUnreachable { circuit }
            }
            _ => return,
        };
        let built = matches!(event, control::Event::CircuitBuilt { .. });
        self.out.clear();
        self.core.handle_event(now, wall, event, rng, &mut self.out);
        if built {
            let cbt = self.core.cbt();
            if cbt.is_learned() {
                info!(
                    timeout_ms = cbt.timeout().as_millis() as u64,
                    close_ms = cbt.close_timeout().as_millis() as u64,
                    "learned circuit build timeout"
                );
            }
        }
    }

    fn tick(&mut self) {
        let now = self.now();
        self.out.clear();
        self.core
            .handle_timeout(now, SystemTime::now(), &mut self.out);
    }
}
