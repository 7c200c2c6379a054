//! The bench's fixed tgen mix: `circuits` bulk flows fetching one `size` transfer each, all at
//! once (the throughput figure), and two web flows (320 KiB, 50-250 ms think time) fetching
//! pages while the bulk transfers run (latency under load). The web flows stop when the bulk
//! ones finish; a page cut by that stop is counted as interrupted, not as a failure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::CliError;
use crate::tgen::{
    self, Arrivals, ClientOptions, Model, ModelFlows, ModelSummary, SizeChoice, TgenReport,
    ThinkTime,
};

/// Web flows in the mix.
pub(super) const WEB_FLOWS: u32 = 2;

/// What one phase of the mix moves.
#[derive(Debug, Clone, Copy)]
pub(super) struct MixSpec {
    /// Bulk flows (each on its own circuit).
    pub circuits: u32,
    /// Bytes per bulk transfer.
    pub bulk_bytes: u64,
    /// Seed of the payloads and think times.
    pub seed: u64,
}

/// The two runs of a phase.
#[derive(Debug)]
pub(super) struct MixResult {
    pub bulk: TgenReport,
    pub web: TgenReport,
}

impl MixResult {
    /// Aggregate bulk payload rate: verified bulk bytes over the bulk run's wall time.
    pub(super) fn throughput_mib_s(&self) -> f64 {
        let bytes: u64 = self.bulk.models.values().map(|m| m.bytes).sum();
        if self.bulk.elapsed_s > 0.0 {
            bytes as f64 / f64::from(1u32 << 20) / self.bulk.elapsed_s
        } else {
            0.0
        }
    }

    /// Verified bytes of both runs.
    pub(super) fn bytes_ok(&self) -> u64 {
        self.bulk
            .models
            .values()
            .chain(self.web.models.values())
            .map(|m| m.bytes)
            .sum()
    }

    /// Transfers that failed (any reason), both runs.
    pub(super) fn failed(&self) -> u64 {
        self.bulk.failed() + self.web.failed()
    }

    /// Per-model summaries of both runs (`bulk`, `web`).
    pub(super) fn summaries(&self) -> BTreeMap<String, ModelSummary> {
        let mut out = self.bulk.models.clone();
        out.extend(self.web.models.clone());
        out
    }
}

fn bulk_model(bytes: u64) -> Model {
    Model {
        name: "bulk".into(),
        sizes: vec![SizeChoice {
            bytes,
            weight: 1,
            // Generous: a slow machine must not turn a benchmark into a failure.
            timeout: Duration::from_secs(600),
        }],
        arrivals: Arrivals::Closed { think: None },
        count: Some(1),
        duration: None,
    }
}

/// tgen's `web` model (320 KiB pages) with a think time uniform on `low..high` seconds.
pub(super) fn web_model(low: f64, high: f64) -> Model {
    Model {
        arrivals: Arrivals::Closed {
            think: Some(ThinkTime::Uniform { low, high }),
        },
        ..Model::web()
    }
}

/// Runs the mix against `server`, through `socks` (or directly / through whatever TCP path
/// `server` is the entry of). `label` prefixes the SOCKS usernames so each phase gets fresh
/// circuits.
pub(super) fn run_mix(
    server: SocketAddr,
    socks: Option<SocketAddr>,
    spec: MixSpec,
    label: &str,
) -> Result<MixResult, CliError> {
    let mut bulk = ClientOptions::new(server);
    bulk.socks = socks;
    bulk.seed = spec.seed;
    bulk.models = vec![ModelFlows {
        model: Model {
            name: format!("{label}-bulk"),
            ..bulk_model(spec.bulk_bytes)
        },
        flows: spec.circuits.max(1),
    }];
    let mut web = ClientOptions::new(server);
    web.socks = socks;
    web.seed = spec.seed.wrapping_add(1);
    web.models = vec![ModelFlows {
        model: Model {
            name: format!("{label}-web"),
            ..web_model(0.05, 0.25)
        },
        flows: WEB_FLOWS,
    }];
    let never = AtomicBool::new(false);
    let bulk_done = AtomicBool::new(false);
    let (bulk, web) = std::thread::scope(|s| {
        let web_run = s.spawn(|| tgen::run_client(&web, &bulk_done));
        let bulk_run = tgen::run_client(&bulk, &never);
        bulk_done.store(true, Ordering::Relaxed);
        let web_run = web_run
            .join()
            .map_err(|_| CliError::runtime("kistrel bench", "the web flows panicked"));
        (bulk_run, web_run)
    });
    let mut bulk = bulk.map_err(|e| CliError::runtime("tgen (bulk)", e))?;
    let mut web = web?.map_err(|e| CliError::runtime("tgen (web)", e))?;
    // Report under the plain model names; the label only kept the circuits apart.
    rename(&mut bulk, "bulk");
    rename(&mut web, "web");
    Ok(MixResult { bulk, web })
}

fn rename(r: &mut TgenReport, name: &str) {
    r.models = std::mem::take(&mut r.models)
        .into_values()
        .map(|m| (name.to_owned(), m))
        .collect();
    for t in &mut r.transfers {
        t.model = name.to_owned();
    }
}
