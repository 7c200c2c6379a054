//! `kistrel client -c FILE`: a circuit origin with a SOCKS5 port.
//!
//! Loads the config and the directory (exit 2 when the directory can never give a path,
//! saying why), starts the workers (which carry the streams) and the
//! control thread (`kistrel-control`: path selection, guards, the learned circuit build
//! timeout, the state file in `DataDirectory`, metrics), prints `ready socks=ADDR` once the
//! first circuit is built, and runs until SIGINT/SIGTERM.

use std::io::Write;

use kistrel_control::PathControl;
use kistrel_engine::runtime::{Clock, WorkerConfig};
use tracing::info;

use crate::config::ClientConf;
use crate::error::CliError;
use crate::runner;

/// Runs a client until SIGINT/SIGTERM. Prints `ready socks=ADDR` on stdout once the first
/// circuit is built (`kistrel net` waits for that line).
pub fn run(conf: ClientConf) -> Result<(), CliError> {
    let dir = conf.load_directory()?;
    conf.check_paths(&dir)?;
    runner::confine(&conf.runtime, &conf.file)?;
    std::fs::create_dir_all(&conf.data_directory).map_err(|e| {
        CliError::runtime(
            format!("creating DataDirectory {}", conf.data_directory.display()),
            e,
        )
    })?;
    let n = conf.runtime.effective_workers();
    let (listeners, socks) = runner::bind(conf.socks_port, n, "SocksPort", |key, a| {
        conf.port_in_use(key, a)
    })?;
    let (kinds, sched, _) = runner::sched_config(&conf.runtime);
    let links = runner::links(&conf.runtime)?;
    let clock = Clock::new();
    let mut siblings = kistrel_engine::runtime::siblings(n).into_iter();
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
            links: links.clone(),
            siblings: siblings.next(),
        })
        .collect();
    let metrics = crate::metrics::MetricsServer::for_config(conf.metrics_port, n, |key, a| {
        conf.port_in_use(key, a)
    })?;
    let stop = runner::stop_flag()?;
    let state_file = conf.data_directory.join("state");
    if !conf.data_directory_set {
        tracing::warn!(
            "DataDirectory is not set: the state file (guards, build times) is {}, in the \
             config file's folder; set DataDirectory to choose",
            state_file.display()
        );
    }
    let paths = PathControl::load(&dir, conf.path, conf.cbt, state_file, clock.now());
    let workers = runner::start(
        configs,
        conf.runtime.backend,
        clock,
        conf.runtime.cpu_affinity.as_ref(),
    )?;
    let control = runner::start_control(&workers, Some(paths), metrics.as_ref())?;
    info!(%socks, workers = n, relays = dir.relays().len(), "client running");
    let result = runner::supervise("client", &stop, &workers, &control, || {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready socks={socks}");
        let _ = out.flush();
    });
    let _ = workers.stop();
    let report = control.stop();
    if let Some(c) = report.circuits {
        info!(
            launched = c.circuits_launched,
            built = c.circuits_built,
            timed_out = c.circuits_timed_out,
            measured = c.circuits_measured,
            closed = c.circuits_closed,
            failed = c.circuits_failed,
            "client stopped"
        );
    }
    result
}
