//! Where a bench job's processes run, planned together: its load generator (the tgen server
//! and client threads of this process, which are nodes too) and `kistrel net`'s nodes.
//!
//! ```text
//! CPUs 0-7, 1 worker:  tgen-server 0 | tgen-client 1 | relay1 2 | relay2 3 | relay3 4 | client 5
//! CPUs 0-1:            6 nodes > 2 CPUs: nothing pinned (the JSON and the table say so)
//! ```
//!
//! The load generator comes first in the plan, so its CPUs are the same whatever the
//! nodes' worker counts. The tgen server's threads inherit the CPUs of the thread that starts
//! it, and so do the client's flows: [`JobPlacement::as_server`] and
//! [`JobPlacement::as_client`] pin the calling thread around those calls and restore it
//! after. The plain forwarders' hops run on the CPUs of the relays they stand in for.
//! After a phase, [`JobPlacement::observe`] reads back what the kernel applied to every
//! node's worker threads, and any difference from the plan is reported.

use serde::Serialize;

use super::net_child::{NetCpus, NodeArgs};
use crate::cmd::net::cpus::nodes as net_nodes;
use crate::error::CliError;
use crate::placement::{
    self, thread_affinity, CpuList, NodeDemand, Placement, PlacementError, ThreadAffinity,
};
use crate::runner::WORKER_THREAD_PREFIX;

/// The load generator's nodes, first in every plan.
const TGEN_SERVER: &str = "tgen-server";
const TGEN_CLIENT: &str = "tgen-client";

/// The placement of one bench job.
#[derive(Debug, Clone)]
pub(super) struct JobPlacement {
    /// The CPUs the job may use (`--cpus`, or this process's mask).
    available: CpuList,
    /// Relays in each network.
    relays: usize,
    /// Why nothing is pinned, or `None` when nodes are pinned.
    unpinned: Option<String>,
}

/// What the job's report says about placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct PlacementSummary {
    /// Whether nodes are pinned.
    pub pinned: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// The CPUs the job used.
    pub cpus_available: CpuList,
    /// Each node's CPUs for the base condition (empty when unpinned).
    pub nodes: Vec<PlannedNode>,
}

/// A node and its CPUs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct PlannedNode {
    /// `tgen-server`, `relay1`, ...
    pub node: String,
    /// Its CPUs.
    pub cpus: CpuList,
}

/// One node of a phase as the kernel placed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct ObservedNode {
    /// `relay1`, ..., `client`.
    pub node: String,
    /// Its planned CPUs (`None`: unpinned, its workers may run on every available CPU).
    pub planned: Option<CpuList>,
    /// Its worker threads and the CPUs each may run on, read from `/proc`.
    pub workers: Vec<ThreadAffinity>,
}

impl JobPlacement {
    /// Decides for a job whose networks have `relays` relays. `--cpus` must be CPUs this
    /// process may use (exit 2 otherwise); the job's process is confined to them.
    pub(super) fn new(args: &NodeArgs, relays: usize) -> Result<Self, CliError> {
        let available = match &args.cpus {
            Some(c) => {
                placement::check_allowed(c).map_err(|e| CliError::usage("--cpus", e))?;
                placement::pin_current_thread(c)?;
                c.clone()
            }
            None => placement::allowed_cpus()?,
        };
        let mut job = JobPlacement {
            available,
            relays,
            unpinned: None,
        };
        job.unpinned = if args.no_pin {
            Some("--no-pin".into())
        } else {
            match job.plan(usize::from(args.workers)) {
                Placement::Unpinned { reason } => Some(reason),
                Placement::Pinned(_) => None,
            }
        };
        Ok(job)
    }

    /// The nodes of the job with `workers` workers per kistrel node: the load generator
    /// first (one CPU each), then the network's.
    fn nodes(&self, workers: usize) -> Vec<NodeDemand> {
        let mut n = vec![
            NodeDemand::new(TGEN_SERVER, 1),
            NodeDemand::new(TGEN_CLIENT, 1),
        ];
        n.extend(net_nodes(self.relays, workers));
        n
    }

    /// The plan with `workers` workers per node (node count, and so pinned or not, does not
    /// depend on it).
    fn plan(&self, workers: usize) -> Placement {
        if let Some(reason) = &self.unpinned {
            return Placement::Unpinned {
                reason: reason.clone(),
            };
        }
        placement::plan(&self.available, &self.nodes(workers))
    }

    /// For the report: the plan with `workers` workers per node.
    pub(super) fn summary(&self, workers: u16) -> PlacementSummary {
        let plan = self.plan(usize::from(workers));
        let nodes = match &plan {
            Placement::Pinned(sets) => sets
                .iter()
                .map(|(node, cpus)| PlannedNode {
                    node: node.clone(),
                    cpus: cpus.clone(),
                })
                .collect(),
            Placement::Unpinned { .. } => Vec::new(),
        };
        PlacementSummary {
            pinned: self.unpinned.is_none(),
            reason: self.unpinned.clone(),
            cpus_available: self.available.clone(),
            nodes,
        }
    }

    /// One line for the log.
    pub(super) fn describe(&self, workers: u16) -> String {
        self.plan(usize::from(workers)).describe()
    }

    /// What `kistrel net` is told for a network with `workers` workers per node: the union
    /// of its nodes' CPUs (net's own plan over them is the same as ours), or `--no-pin`.
    pub(super) fn net_cpus(&self, workers: u16) -> NetCpus {
        let plan = self.plan(usize::from(workers));
        let Placement::Pinned(sets) = &plan else {
            return NetCpus::NoPin;
        };
        let theirs = sets
            .iter()
            .filter(|(n, _)| n != TGEN_SERVER && n != TGEN_CLIENT)
            .map(|(_, c)| c);
        CpuList::union(theirs).map_or(NetCpus::NoPin, NetCpus::Only)
    }

    /// The CPUs of the relay the `hop`-th (0-based) plain forwarder stands in for.
    pub(super) fn forwarder_cpus(&self, workers: u16, hop: usize) -> Option<CpuList> {
        self.plan(usize::from(workers))
            .cpus_of(&format!("relay{}", hop + 1))
            .cloned()
    }

    /// Runs `f` on the calling thread pinned to `node`'s CPUs (when pinned), so that the
    /// threads it starts inherit them; restores the thread to the job's CPUs after.
    fn on<T>(&self, node: &str, f: impl FnOnce() -> T) -> Result<T, CliError> {
        let Some(cpus) = self.plan(1).cpus_of(node).cloned() else {
            return Ok(f());
        };
        placement::pin_current_thread(&cpus)?;
        let out = f();
        placement::pin_current_thread(&self.available)?;
        Ok(out)
    }

    /// Runs `f` (which starts the tgen server) on the tgen server's CPUs.
    pub(super) fn as_server<T>(&self, f: impl FnOnce() -> T) -> Result<T, CliError> {
        self.on(TGEN_SERVER, f)
    }

    /// Runs `f` (which runs tgen flows) on the tgen client's CPUs.
    pub(super) fn as_client<T>(&self, f: impl FnOnce() -> T) -> Result<T, CliError> {
        self.on(TGEN_CLIENT, f)
    }

    /// Reads back where the kernel lets every node's worker threads run (`pids`: role and
    /// pid of a network with `workers` workers per node) and compares with the plan: the
    /// observed nodes, and one line per difference.
    pub(super) fn observe(
        &self,
        workers: u16,
        pids: &[(String, i32)],
    ) -> Result<(Vec<ObservedNode>, Vec<String>), PlacementError> {
        let plan = self.plan(usize::from(workers));
        let mut nodes = Vec::new();
        let mut wrong = Vec::new();
        for (node, pid) in pids {
            let planned = plan.cpus_of(node).cloned();
            let workers_seen: Vec<ThreadAffinity> = thread_affinity(*pid)?
                .into_iter()
                .filter(|t| t.thread.starts_with(WORKER_THREAD_PREFIX))
                .collect();
            wrong.extend(differences(
                node,
                planned.as_ref(),
                &self.available,
                &workers_seen,
            ));
            if workers_seen.len() != usize::from(workers) {
                wrong.push(format!(
                    "{node}: {} worker thread(s) found, {workers} expected",
                    workers_seen.len()
                ));
            }
            nodes.push(ObservedNode {
                node: node.clone(),
                planned,
                workers: workers_seen,
            });
        }
        Ok((nodes, wrong))
    }
}

/// How `workers` (threads `kistrel-wI`) differ from the plan: pinned, worker `I` on exactly
/// `planned.for_worker(I)`; unpinned, every worker free to run on all `available` CPUs.
fn differences(
    node: &str,
    planned: Option<&CpuList>,
    available: &CpuList,
    workers: &[ThreadAffinity],
) -> Vec<String> {
    workers
        .iter()
        .filter_map(|t| {
            let index: usize = t.thread.strip_prefix(WORKER_THREAD_PREFIX)?.parse().ok()?;
            let want = match planned {
                Some(p) => CpuList::new([p.for_worker(index)])?,
                None => available.clone(),
            };
            (t.cpus != want).then(|| {
                format!(
                    "{node}: worker thread {} may run on CPU(s) {}, planned {want}",
                    t.thread, t.cpus
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(cpus: u32, no_pin: bool) -> JobPlacement {
        let available = CpuList::first(cpus).unwrap();
        let mut j = JobPlacement {
            available,
            relays: 3,
            unpinned: None,
        };
        j.unpinned = if no_pin {
            Some("--no-pin".into())
        } else {
            match j.plan(1) {
                Placement::Unpinned { reason } => Some(reason),
                Placement::Pinned(_) => None,
            }
        };
        j
    }

    /// With 8 CPUs every node of the bench, the load generator included, has its own CPUs,
    /// and the load generator's do not move when the nodes get 2 workers; net is told the
    /// rest.
    #[test]
    fn eight_cpus_pin_every_node_apart() {
        let j = job(8, false);
        let s = j.summary(1);
        assert!(s.pinned);
        let names: Vec<(&str, String)> = s
            .nodes
            .iter()
            .map(|n| (n.node.as_str(), n.cpus.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("tgen-server", "0".into()),
                ("tgen-client", "1".into()),
                ("relay1", "2".into()),
                ("relay2", "3".into()),
                ("relay3", "4".into()),
                ("client", "5".into()),
            ]
        );
        for (i, a) in s.nodes.iter().enumerate() {
            for b in &s.nodes[i + 1..] {
                assert!(!a.cpus.overlaps(&b.cpus), "{a:?} {b:?}");
            }
        }
        let two = j.summary(2);
        assert_eq!(two.nodes[0].cpus.to_string(), "0");
        assert_eq!(two.nodes[1].cpus.to_string(), "1");
        assert_eq!(two.nodes[2].cpus.to_string(), "2-3");
        assert_eq!(j.net_cpus(1), NetCpus::Only("2-5".parse().unwrap()));
        assert_eq!(j.net_cpus(2), NetCpus::Only("2-7".parse().unwrap()));
        assert_eq!(j.forwarder_cpus(1, 0).unwrap().to_string(), "2");
        assert_eq!(j.forwarder_cpus(1, 2).unwrap().to_string(), "4");
    }

    /// net's own plan over the CPUs it is given reproduces the bench's sets for its nodes.
    #[test]
    fn net_replans_the_same_sets() {
        for (cpus, workers) in [(6, 1usize), (8, 2), (13, 3), (40, 4)] {
            let j = job(cpus, false);
            let NetCpus::Only(given) = j.net_cpus(workers as u16) else {
                panic!("unpinned at {cpus}")
            };
            let theirs = placement::plan(&given, &net_nodes(3, workers));
            for n in net_nodes(3, workers) {
                assert_eq!(
                    theirs.cpus_of(&n.name),
                    j.plan(workers).cpus_of(&n.name),
                    "{cpus} CPUs, {workers} workers, {}",
                    n.name
                );
            }
        }
    }

    #[test]
    fn two_cpus_pin_nothing() {
        let j = job(2, false);
        let s = j.summary(1);
        assert!(!s.pinned && s.nodes.is_empty());
        assert!(s.reason.unwrap().starts_with(
            "6 nodes (tgen-server, tgen-client, relay1, relay2, relay3, client) on 2 CPU(s)"
        ));
        assert_eq!(j.net_cpus(1), NetCpus::NoPin);
        assert_eq!(j.forwarder_cpus(1, 0), None);
        let j = job(8, true);
        assert_eq!(j.summary(1).reason.as_deref(), Some("--no-pin"));
        assert_eq!(j.net_cpus(1), NetCpus::NoPin);
    }

    #[test]
    fn differences_name_the_thread_and_both_sets() {
        let t = |name: &str, cpus: &str| ThreadAffinity {
            thread: name.into(),
            cpus: cpus.parse().unwrap(),
        };
        let planned: CpuList = "2-3".parse().unwrap();
        let all = CpuList::first(8).unwrap();
        let ok = [
            t("kistrel-w0", "2"),
            t("kistrel-w1", "3"),
            t("kistrel-w2", "2"),
        ];
        assert!(differences("relay1", Some(&planned), &all, &ok).is_empty());
        let bad = [t("kistrel-w0", "0"), t("kistrel-w1", "3")];
        assert_eq!(
            differences("relay1", Some(&planned), &all, &bad),
            ["relay1: worker thread kistrel-w0 may run on CPU(s) 0, planned 2"]
        );
        // Unpinned: a worker pinned anyway is a difference too.
        let pinned_anyway = [t("kistrel-w0", "0-7"), t("kistrel-w1", "1")];
        assert_eq!(
            differences("client", None, &all, &pinned_anyway),
            ["client: worker thread kistrel-w1 may run on CPU(s) 1, planned 0-7"]
        );
    }
}
