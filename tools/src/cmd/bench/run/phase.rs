//! One phase: the mix moved once under one condition, on a fresh network for a relayed
//! condition, with everything measured about it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::condition::Condition;
use super::forwarders::Chain;
use crate::cmd::bench::job::METRICS_SETTLE;
use crate::cmd::bench::mix::{run_mix, MixResult, MixSpec};
use crate::cmd::bench::net_child::{NetChild, NetShape, NodeArgs};
use crate::cmd::bench::nodes::NodeSchedMetrics;
use crate::cmd::bench::placement::{JobPlacement, ObservedNode};
use crate::cmd::bench::procs::{self, ProcessCpu};
use crate::error::CliError;
use crate::tgen::{ModelSummary, TransferRecord};

/// What one phase measured.
#[derive(Debug, Clone, Serialize)]
pub(in crate::cmd::bench) struct PhaseRecord {
    /// The condition's label.
    pub condition: String,
    /// Verified bulk bytes over the bulk transfers' wall time, MiB/s.
    pub throughput_mib_s: f64,
    /// Verified bytes, bulk and web.
    pub bytes_verified: u64,
    /// Transfers that failed or arrived corrupted.
    pub failed: u64,
    /// tgen's per-model summaries (`bulk`, `web`).
    pub transfers: BTreeMap<String, ModelSummary>,
    /// Relayed: each node's CPU seconds over the transfers, per GiB moved.
    pub cpu: Vec<ProcessCpu>,
    /// Relayed: each node's scheduler figures at the end.
    pub scheduler_metrics: Vec<NodeSchedMetrics>,
    /// Relayed: where the kernel let each node's worker threads run.
    pub placement: Vec<ObservedNode>,
    /// Relayed: how the placement differs from the plan (empty when it does not).
    pub placement_differences: Vec<String>,
    /// Every transfer (pooled over rounds for the latency figures).
    #[serde(skip)]
    pub records: Vec<TransferRecord>,
}

impl PhaseRecord {
    /// The busiest of the nodes whose role starts with `kind` (`relay`, `forwarder`): its
    /// CPU seconds per GiB; `None` when there is none or one's CPU time could not be read.
    pub(in crate::cmd::bench) fn max_cpu_s_per_gib(&self, kind: &str) -> Option<f64> {
        self.cpu_s_per_gib_of_kind(kind)?
            .into_iter()
            .reduce(f64::max)
    }

    /// Node `role`'s (`relay1`, ...) CPU seconds per GiB; `None` when it could not be read.
    pub(in crate::cmd::bench) fn cpu_s_per_gib_of(&self, role: &str) -> Option<f64> {
        let c = self.cpu.iter().find(|c| c.role == role)?;
        c.cpu_s_per_gib.is_finite().then_some(c.cpu_s_per_gib)
    }

    /// The CPU seconds per GiB of the nodes whose role starts with `kind`, together; `None`
    /// when there is none or one's CPU time could not be read.
    pub(in crate::cmd::bench) fn total_cpu_s_per_gib(&self, kind: &str) -> Option<f64> {
        Some(self.cpu_s_per_gib_of_kind(kind)?.into_iter().sum())
    }

    /// Every `kind` node's figure, or `None` if there is none or one is unknown (a partial
    /// set would make the busiest or the sum look cheaper than it is).
    fn cpu_s_per_gib_of_kind(&self, kind: &str) -> Option<Vec<f64>> {
        let v: Vec<f64> = (self.cpu.iter())
            .filter(|c| c.role.starts_with(kind))
            .map(|c| c.cpu_s_per_gib)
            .collect();
        (!v.is_empty() && v.iter().all(|x| x.is_finite())).then_some(v)
    }

    fn of(condition: Condition, mix: &MixResult) -> PhaseRecord {
        let mut records = mix.bulk.transfers.clone();
        records.extend(mix.web.transfers.iter().cloned());
        PhaseRecord {
            condition: condition.label(),
            throughput_mib_s: mix.throughput_mib_s(),
            bytes_verified: mix.bytes_ok(),
            failed: mix.failed(),
            transfers: mix.summaries(),
            cpu: Vec::new(),
            scheduler_metrics: Vec::new(),
            placement: Vec::new(),
            placement_differences: Vec::new(),
            records,
        }
    }
}

/// Each node's CPU seconds over a phase (`after - before`, in `nodes`' order) and per GiB of
/// the phase's verified payload (NaN when nothing was verified).
fn cpu_over(
    nodes: impl Iterator<Item = (String, i32)>,
    before: &[f64],
    after: &[f64],
    bytes_verified: u64,
) -> Vec<ProcessCpu> {
    let gib = bytes_verified as f64 / f64::from(1u32 << 30);
    nodes
        .zip(before.iter().zip(after))
        .map(|((role, pid), (b, a))| ProcessCpu {
            role,
            pid,
            cpu_s: a - b,
            cpu_s_per_gib: if gib > 0.0 { (a - b) / gib } else { f64::NAN },
        })
        .collect()
}

/// How long a forwarder hop's account may wait for the copy threads of a phase's last
/// connections to end (they end as the half-closes arrive, milliseconds after the transfer).
const FORWARDERS_SETTLE: Duration = Duration::from_secs(5);

/// The path of every circuit of a relayed phase: guard, middle, exit.
pub(in crate::cmd::bench) const PINNED_PATH: &str = "relay1,relay2,relay3";

/// Runs phases: the same mix, target and placement every time.
#[derive(Debug)]
pub(in crate::cmd::bench) struct Phases<'a> {
    /// The tgen server.
    pub target: SocketAddr,
    /// The forwarder chain (its entry and each hop's CPU account).
    pub forwarders: &'a Chain,
    /// The mix.
    pub spec: MixSpec,
    /// The network options every relayed phase starts from.
    pub nodes: &'a NodeArgs,
    /// Where each relayed phase's network folder goes (`ROOT/rN-LABEL`).
    pub root: PathBuf,
    /// Where the load generator and the nodes run.
    pub placement: &'a JobPlacement,
}

impl Phases<'_> {
    /// Runs `condition` as round `round` (1-based).
    pub(in crate::cmd::bench) fn run(
        &self,
        condition: Condition,
        round: usize,
    ) -> Result<PhaseRecord, CliError> {
        let label = format!("r{round}-{}", condition.label());
        eprintln!("kistrel bench: round {round}: {}", condition.label());
        let mix = |to: SocketAddr, socks: Option<SocketAddr>| {
            self.placement
                .as_client(|| run_mix(to, socks, self.spec, &label))?
        };
        match condition {
            Condition::Direct => Ok(PhaseRecord::of(condition, &mix(self.target, None)?)),
            Condition::Forwarded => self.forwarded(condition, &mix),
            Condition::Relayed {
                scheduler,
                workers,
                links,
            } => {
                let nodes = NodeArgs {
                    scheduler: Some(scheduler),
                    workers,
                    links,
                    ..self.nodes.clone()
                };
                let shape = NetShape {
                    relays: 3,
                    cpus: self.placement.net_cpus(workers),
                    // Fixed roles, so each relay's figures are a guard's, a middle's, an exit's.
                    extra: vec!["--path".into(), PINNED_PATH.into()],
                    ..NetShape::default()
                };
                let net = NetChild::start(&nodes, &shape, &self.root.join(&label))?;
                let result = self.relayed(condition, &net, workers, &mix);
                net.stop();
                result
            }
        }
    }

    /// The plain-forwarder phase, with each hop's CPU seconds per GiB (roles `forwarder1`
    /// to `forwarder3`, in the bench's own process).
    fn forwarded(
        &self,
        condition: Condition,
        mix: &dyn Fn(SocketAddr, Option<SocketAddr>) -> Result<MixResult, CliError>,
    ) -> Result<PhaseRecord, CliError> {
        let cpu_now = || -> Vec<f64> {
            self.forwarders
                .hops
                .iter()
                .map(|h| h.settled_seconds(FORWARDERS_SETTLE).unwrap_or(f64::NAN))
                .collect()
        };
        let before = cpu_now();
        let result = mix(self.forwarders.entry, None)?;
        let after = cpu_now();
        let mut record = PhaseRecord::of(condition, &result);
        let bench = i32::try_from(std::process::id()).unwrap_or(-1);
        let hops = (1..=after.len()).map(|hop| (format!("forwarder{hop}"), bench));
        record.cpu = cpu_over(hops, &before, &after, record.bytes_verified);
        Ok(record)
    }

    /// The measured part of a relayed phase on a running network.
    fn relayed(
        &self,
        condition: Condition,
        net: &NetChild,
        workers: u16,
        mix: &dyn Fn(SocketAddr, Option<SocketAddr>) -> Result<MixResult, CliError>,
    ) -> Result<PhaseRecord, CliError> {
        let pids = net.pids();
        let cpu_now = || -> Vec<f64> {
            pids.iter()
                .map(|(_, p)| procs::cpu_seconds(*p).unwrap_or(f64::NAN))
                .collect()
        };
        let before = cpu_now();
        let started = Instant::now();
        let result = mix(self.target, Some(net.socks))?;
        let after = cpu_now();
        let (placement, differences) = self.placement.observe(workers, &pids)?;
        // Workers publish their figures once a second: let the last second's arrive.
        std::thread::sleep(METRICS_SETTLE);
        let mut record = PhaseRecord::of(condition, &result);
        record.scheduler_metrics = net.scheduler_figures(started.elapsed().as_secs_f64());
        record.cpu = cpu_over(pids.iter().cloned(), &before, &after, record.bytes_verified);
        record.placement = placement;
        record.placement_differences = differences;
        Ok(record)
    }
}
