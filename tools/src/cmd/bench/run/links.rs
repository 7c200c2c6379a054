//! `--compare-links`: the same transfers over TLS links and over plain links (the benchmark
//! mode), each on a fresh network, alternated (TLS, plain, TLS, plain): the throughput ratio
//! and, per node role, the CPU seconds per GiB in each mode and what TLS adds.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{Phase, RunArgs};
use crate::cmd::bench::net_child::NodeArgs;
use crate::config::LinksMode;
use crate::error::CliError;

/// One role's CPU per GiB with each kind of link (means over the phases).
#[derive(Debug, Serialize)]
pub(in crate::cmd::bench) struct RoleCpu {
    pub(in crate::cmd::bench) role: String,
    pub(in crate::cmd::bench) tls_cpu_s_per_gib: f64,
    pub(in crate::cmd::bench) plain_cpu_s_per_gib: f64,
    /// TLS minus plain.
    pub(in crate::cmd::bench) added_cpu_s_per_gib: f64,
}

/// TLS links against plain links on the same workload in the same run.
#[derive(Debug, Serialize)]
pub(in crate::cmd::bench) struct LinksComparison {
    pub(in crate::cmd::bench) tls_mib_s: Vec<f64>,
    pub(in crate::cmd::bench) plain_mib_s: Vec<f64>,
    /// Mean TLS throughput over mean plain throughput.
    pub(in crate::cmd::bench) tls_over_plain: f64,
    pub(in crate::cmd::bench) cpu_by_role: Vec<RoleCpu>,
}

/// Runs the four phases.
pub(super) fn compare_links(
    phase: &Phase,
    args: &RunArgs,
    dir: &Path,
) -> Result<LinksComparison, CliError> {
    let (mut tls, mut plain) = (Vec::new(), Vec::new());
    // role -> (sum of CPU-s/GiB, phases) per mode
    let mut cpu: BTreeMap<String, [(f64, u32); 2]> = BTreeMap::new();
    for round in 0..4 {
        let mode = if round % 2 == 0 {
            LinksMode::Tls
        } else {
            LinksMode::Plain
        };
        let nodes = NodeArgs {
            links: mode,
            ..args.nodes.clone()
        };
        let phase_dir = dir.with_file_name(format!("net-links-{}-{round}", mode.name()));
        let run = phase.run(&nodes, &phase_dir, &format!("links{round}"))?;
        let m = usize::from(mode == LinksMode::Plain);
        for c in &run.cpu {
            let slot = &mut cpu.entry(c.role.clone()).or_default()[m];
            slot.0 += c.cpu_s_per_gib;
            slot.1 += 1;
        }
        match mode {
            LinksMode::Tls => tls.push(run.mix.throughput_mib_s()),
            LinksMode::Plain => plain.push(run.mix.throughput_mib_s()),
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let avg = |(sum, n): (f64, u32)| sum / f64::from(n.max(1));
    Ok(LinksComparison {
        tls_over_plain: mean(&tls) / mean(&plain).max(f64::MIN_POSITIVE),
        tls_mib_s: tls,
        plain_mib_s: plain,
        cpu_by_role: cpu
            .into_iter()
            .map(|(role, [t, p])| RoleCpu {
                role,
                tls_cpu_s_per_gib: avg(t),
                plain_cpu_s_per_gib: avg(p),
                added_cpu_s_per_gib: avg(t) - avg(p),
            })
            .collect(),
    })
}
