//! `kistrel relay -c FILE`: a relay with one worker per core until SIGINT/SIGTERM; prints
//! `ready or=ADDR [metrics=ADDR]` on stdout once it listens.

use std::io::Write;

use kistrel_engine::relay::RelayConfig;
use kistrel_engine::runtime::{Clock, WorkerConfig};
use tracing::{info, warn};

use crate::config::RelayConf;
use crate::error::CliError;
use crate::keys::load_relay_keys;
use crate::runner;

/// Runs a relay until SIGINT/SIGTERM, then stops gracefully (DESTROY on every circuit,
/// flush, close) and returns.
pub fn run(conf: RelayConf) -> Result<(), CliError> {
    // Loaded once: the identities are shared by every worker.
    let keys = load_relay_keys(&conf.key_dir, std::time::SystemTime::now())?;
    runner::confine(&conf.runtime, &conf.file)?;
    let n = conf.runtime.effective_workers();
    let (listeners, addr) =
        runner::bind(conf.or_port, n, "ORPort", |key, a| conf.port_in_use(key, a))?;
    let (kinds, sched, _) = runner::sched_config(&conf.runtime);
    let links = runner::links(&conf.runtime)?;
    let clock = Clock::new();
    let testing_spin_per_cell = runner::spin_iterations(conf.testing_cell_cost);
    let my_addrs = if conf.address.is_empty() {
        vec![addr.ip()]
    } else {
        conf.address.clone()
    };
    let mut siblings = kistrel_engine::runtime::siblings(n).into_iter();
    let configs = listeners
        .into_iter()
        .enumerate()
        .map(|(index, l)| WorkerConfig {
            index,
            relay: RelayConfig {
                keys: Some(keys.clone()),
                exit_policy: conf.exit_policy.clone(),
                my_addrs: my_addrs.clone(),
                max_circuit_queue_cells: conf.max_circuit_queue_cells,
                // Workers share nothing, so each gets its share of the memory limit.
                max_mem_in_queues: usize::try_from(conf.max_mem_in_queues).unwrap_or(usize::MAX)
                    / n,
                handshake_timeout: conf.channel_handshake_timeout,
                circuit_creation_limit: conf.circuit_creation_limit,
                testing_spin_per_cell,
                ..runner::relay_config(&conf.runtime)
            },
            seed: None,
            or_listener: Some(l),
            socks_listener: None,
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
    let workers = runner::start(
        configs,
        conf.runtime.backend,
        clock,
        conf.runtime.cpu_affinity.as_ref(),
    )?;
    let control = runner::start_control(&workers, None, metrics.as_ref())?;
    info!(nickname = %conf.nickname, %addr, workers = n, exit = conf.exit_policy.is_some(), "relay running");
    let who = format!("relay {}", conf.nickname);
    // As the client's `ready socks=ADDR`: the bound addresses (port 0 resolved), once the
    // workers listen.
    let metrics_addr = metrics.as_ref().map(|m| m.addr());
    let result = runner::supervise(&who, &stop, &workers, &control, || {
        let mut out = std::io::stdout().lock();
        let _ = match metrics_addr {
            Some(m) => writeln!(out, "ready or={addr} metrics={m}"),
            None => writeln!(out, "ready or={addr}"),
        };
        let _ = out.flush();
    });
    info!(nickname = %conf.nickname, "stopping: closing circuits");
    let reports = workers.stop();
    let _ = control.stop();
    for (i, r) in reports.iter().enumerate() {
        info!(
            worker = i,
            scheduler = r.scheduler.name(),
            cells_in = r.stats.cells_in,
            cells_out = r.stats.cells_out,
            links_tls = r.links.tls_user + r.links.ktls,
            links_plain = r.links.plain,
            "worker stopped"
        );
        if r.events_dropped > 0 {
            warn!(
                worker = i,
                dropped = r.events_dropped,
                "control events dropped (queue full)"
            );
        }
    }
    result
}
