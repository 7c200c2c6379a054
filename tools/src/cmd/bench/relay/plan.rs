//! What `bench relay` runs and where: the conditions (relay or forwarder, at each worker
//! count), their order per round, and the CPUs of the target and of the load processes.
//!
//! ```text
//! CPUs 0-1 (this box):  load 1 | relay w1: 0 | relay w2: 0,1 (shares CPU 1 with the load)
//! CPUs 0-31:            load 24-31 (a quarter) | relay wN: 0..N-1 | workers auto: 1 2 4 8 16 24
//! ```
//!
//! The load side keeps the same CPUs at every point of the curve, so a point differs from
//! the next by the relay's cores only. A target with more workers than relay CPUs spills
//! onto the load CPUs, and the point says so (`shares_load_cpus`).

use serde::Serialize;

use crate::placement::CpuList;

/// What a phase measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(in crate::cmd::bench) enum Target {
    /// A `kistrel relay` process (middle relay: one AES layer per cell).
    Relay,
    /// The `kistrel-forward` process (bytes only).
    Forwarder,
}

impl Target {
    /// `relay` or `forwarder`.
    pub(in crate::cmd::bench) fn name(self) -> &'static str {
        match self {
            Target::Relay => "relay",
            Target::Forwarder => "forwarder",
        }
    }
}

/// One condition: a target with a worker (thread) count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(in crate::cmd::bench) struct Condition {
    /// Relay or forwarder.
    pub target: Target,
    /// Workers (relay) or threads (forwarder), each on its own CPU where there are enough.
    pub workers: u32,
}

impl Condition {
    /// `relay-w2`, `forwarder-w1`.
    pub(in crate::cmd::bench) fn label(self) -> String {
        format!("{}-w{}", self.target.name(), self.workers)
    }
}

/// The conditions of every round, as listed (round 1's order; ABBA reverses odd rounds):
/// per worker count, the forwarder, then the relay.
pub(super) fn conditions(workers: &[u32], forwarder: bool) -> Vec<Condition> {
    workers
        .iter()
        .flat_map(|&w| {
            let f = forwarder.then_some(Condition {
                target: Target::Forwarder,
                workers: w,
            });
            f.into_iter().chain([Condition {
                target: Target::Relay,
                workers: w,
            }])
        })
        .collect()
}

/// The worker counts of `--workers auto`: 1, 2, 4, ... below `relay_cpus`, then
/// `relay_cpus` itself; at least 1 and 2 when the machine has 2 CPUs or more (the second
/// worker then shares a CPU with the load side).
pub(super) fn auto_workers(relay_cpus: usize, total_cpus: usize) -> Vec<u32> {
    let top = relay_cpus.max(total_cpus.min(2)).max(1);
    let top = u32::try_from(top).unwrap_or(u32::MAX);
    let mut out: Vec<u32> = std::iter::successors(Some(1u32), |w| w.checked_mul(2))
        .take_while(|&w| w < top)
        .collect();
    out.push(top);
    out
}

/// Parses `--workers`: `auto`, `N`, `A-B`, or a comma list of those (sorted, deduplicated).
pub(super) fn parse_workers(s: &str) -> Result<Option<Vec<u32>>, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let num = |t: &str| -> Result<u32, String> {
            match t.trim().parse::<u32>() {
                Ok(n) if (1..=1024).contains(&n) => Ok(n),
                _ => Err(format!("{t:?} is not a worker count (1-1024)")),
            }
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("{part:?}: the range runs backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

/// The CPUs of a job: the relay's (in the order workers take them) and the load side's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(in crate::cmd::bench) struct CpuPlan {
    /// The CPUs the job may use.
    pub available: CpuList,
    /// The target's CPUs, first worker first.
    pub relay: CpuList,
    /// The pumps' and sinks' CPUs.
    pub load: CpuList,
}

impl CpuPlan {
    /// The default split of `available`: the last quarter (at least one CPU) for the load
    /// side, the rest for the relay; with one CPU, both share it. `relay` / `load` override.
    pub(super) fn new(available: CpuList, relay: Option<CpuList>, load: Option<CpuList>) -> Self {
        let cpus = available.cpus().to_vec();
        let n_load = (cpus.len() / 4).max(1);
        let split = cpus.len().saturating_sub(n_load);
        let load = load.unwrap_or_else(|| {
            CpuList::new(cpus[split..].iter().copied()).unwrap_or_else(|| available.clone())
        });
        let relay = relay.unwrap_or_else(|| {
            let rest = cpus.iter().copied().filter(|c| !load.cpus().contains(c));
            CpuList::new(rest).unwrap_or_else(|| load.clone())
        });
        CpuPlan {
            available,
            relay,
            load,
        }
    }

    /// The CPUs of a target with `workers` workers: the relay CPUs in order, then the load
    /// CPUs, round and round; whether any of them is a load CPU.
    pub(super) fn target(&self, workers: u32) -> (CpuList, bool) {
        let order: Vec<u32> = self
            .relay
            .cpus()
            .iter()
            .chain(
                self.load
                    .cpus()
                    .iter()
                    .filter(|c| !self.relay.cpus().contains(c)),
            )
            .copied()
            .collect();
        let n = (workers as usize).min(order.len()).max(1);
        let set = CpuList::new(order[..n].iter().copied()).unwrap_or_else(|| self.relay.clone());
        let shared = set.overlaps(&self.load);
        (set, shared)
    }

    /// The CPU of load process `k` (pumps and sinks interleaved: pump0 sink0 pump1 ...).
    pub(super) fn load_process(&self, k: usize) -> CpuList {
        let cpus = self.load.cpus();
        CpuList::new([cpus[k % cpus.len()]]).unwrap_or_else(|| self.load.clone())
    }

    /// CPUs the load side can keep busy: its processes are single-threaded.
    pub(super) fn load_capacity(&self, processes: usize) -> usize {
        processes.min(self.load.len()).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> CpuList {
        s.parse().unwrap()
    }

    #[test]
    fn two_cpus_give_one_relay_cpu_and_a_shared_second_worker() {
        let plan = CpuPlan::new(list("0-1"), None, None);
        assert_eq!(
            (plan.relay.to_string(), plan.load.to_string()),
            ("0".into(), "1".into())
        );
        assert_eq!(plan.target(1), (list("0"), false));
        assert_eq!(plan.target(2), (list("0-1"), true));
        assert_eq!(auto_workers(plan.relay.len(), 2), [1, 2]);
        assert_eq!(plan.load_process(0), list("1"));
        assert_eq!(plan.load_process(1), list("1"));
        assert_eq!(plan.load_capacity(2), 1);
    }

    #[test]
    fn big_machines_keep_a_quarter_for_the_load_and_double_the_workers() {
        let plan = CpuPlan::new(list("0-31"), None, None);
        assert_eq!(plan.load, list("24-31"));
        assert_eq!(plan.relay, list("0-23"));
        assert_eq!(auto_workers(plan.relay.len(), 32), [1, 2, 4, 8, 16, 24]);
        assert_eq!(plan.target(4), (list("0-3"), false));
        assert_eq!(plan.target(25), (list("0-24"), true));
        assert_eq!(plan.load_process(9), list("25"));
        let one = CpuPlan::new(list("3"), None, None);
        assert_eq!(
            (one.relay.clone(), one.load.clone()),
            (list("3"), list("3"))
        );
        assert_eq!(auto_workers(1, 1), [1]);
        assert_eq!(one.target(2), (list("3"), true));
    }

    #[test]
    fn worker_lists_parse_and_bad_ones_say_why() {
        assert_eq!(parse_workers("auto"), Ok(None));
        assert_eq!(parse_workers("2,1,1-3"), Ok(Some(vec![1, 2, 3])));
        assert!(parse_workers("0")
            .unwrap_err()
            .contains("not a worker count"));
        assert!(parse_workers("4-2").unwrap_err().contains("backwards"));
        assert!(parse_workers("x").is_err());
    }

    #[test]
    fn every_worker_count_has_a_forwarder_then_a_relay() {
        let c: Vec<String> = conditions(&[1, 2], true)
            .iter()
            .map(|c| c.label())
            .collect();
        assert_eq!(c, ["forwarder-w1", "relay-w1", "forwarder-w2", "relay-w2"]);
        let c: Vec<String> = conditions(&[1], false).iter().map(|c| c.label()).collect();
        assert_eq!(c, ["relay-w1"]);
    }
}
