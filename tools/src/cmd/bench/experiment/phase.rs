//! One phase's clients, run to a fixed deadline: the web flows walk the round's seeded
//! open-loop schedule, the bulk flows fetch back to back, and at the deadline a stop flag cuts
//! whatever is in flight (tgen counts those transfers' verified bytes as `interrupted_bytes`).
//!
//! ```text
//! t=0                                              deadline (phase)
//!  |-- web arrivals (schedule of the round) ---------|  no arrival starts after it
//!  |-- bulk 5 MiB -- bulk 5 MiB -- bulk 5 MiB -- bul|  cut: bytes so far count
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::setup::{round_seed, web_model, Condition, ExperimentArgs};
use crate::error::CliError;
use crate::tgen::{self, ClientOptions, Model, ModelFlows, TgenReport};

/// How often the deadline timer looks whether the clients already ended.
const TICK: Duration = Duration::from_millis(50);

/// The tgen clients of one phase.
#[derive(Debug, Clone)]
pub(super) struct PhaseClients {
    pub web: ClientOptions,
    pub bulk: Option<ClientOptions>,
    /// The deadline, from the clients' start.
    pub phase: Duration,
}

impl PhaseClients {
    /// The clients of round `round` of `cond`: the same for both schedulers (nothing here
    /// depends on the scheduler), so a pair is offered the same load.
    pub(super) fn new(
        args: &ExperimentArgs,
        cond: &Condition,
        round: u32,
        server: SocketAddr,
        socks: Option<SocketAddr>,
    ) -> Self {
        let seed = round_seed(round);
        let per_flow = args.web_rate / f64::from(args.web_flows);
        let options = |model: Model, flows: u32, seed: u64| {
            let mut o = ClientOptions::new(server);
            o.socks = socks;
            o.duration = Some(args.phase);
            o.seed = seed;
            o.models = vec![ModelFlows { model, flows }];
            o
        };
        PhaseClients {
            web: options(web_model(per_flow), args.web_flows, seed),
            bulk: cond
                .bulk
                .then(|| options(Model::bulk(), args.bulk_flows, seed + 1)),
            phase: args.phase,
        }
    }

    /// Web pages the schedule offers before the deadline.
    pub(super) fn web_offered(&self) -> u64 {
        self.web.models.first().map_or(0, |m| {
            super::setup::offered_schedule(&m.model, m.flows, self.web.seed, self.phase)
                .iter()
                .map(|f| f.len() as u64)
                .sum()
        })
    }
}

/// What the clients of a phase did.
#[derive(Debug)]
pub(super) struct Driven {
    pub web: TgenReport,
    pub bulk: Option<TgenReport>,
    /// From the clients' start until the last transfer stopped.
    pub elapsed_s: f64,
}

/// Runs `clients` until their deadline, then stops every transfer still running.
pub(super) fn drive(clients: &PhaseClients) -> Result<Driven, CliError> {
    let stop = AtomicBool::new(false);
    let ended = AtomicBool::new(false);
    let started = Instant::now();
    let deadline = started + clients.phase;
    let (web, bulk) = std::thread::scope(|s| {
        s.spawn(|| {
            while !ended.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= deadline {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep((deadline - now).min(TICK));
            }
        });
        let bulk = clients
            .bulk
            .as_ref()
            .map(|b| s.spawn(|| tgen::run_client(b, &stop)));
        let web = tgen::run_client(&clients.web, &stop);
        let bulk = bulk.map(|h| {
            h.join()
                .map_err(|_| CliError::runtime("kistrel bench", "the bulk flows panicked"))
        });
        ended.store(true, Ordering::Relaxed);
        (web, bulk)
    });
    let elapsed_s = started.elapsed().as_secs_f64();
    let web = web.map_err(|e| CliError::runtime("tgen (web)", e))?;
    let bulk = match bulk {
        Some(b) => Some(b?.map_err(|e| CliError::runtime("tgen (bulk)", e))?),
        None => None,
    };
    Ok(Driven {
        web,
        bulk,
        elapsed_s,
    })
}
