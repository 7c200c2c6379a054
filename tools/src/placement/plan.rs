//! Which CPUs each node of one machine gets: disjoint sets when there are at least as many
//! CPUs as nodes, nothing pinned otherwise.
//!
//! ```text
//! CPUs 0-7, nodes relay1..3 (1 worker each), client (1), tgen-server (1), tgen-client (1):
//!   relay1 0 | relay2 1 | relay3 2 | client 3 | tgen-server 4 | tgen-client 5 | 6-7 idle
//! CPUs 0-3, same nodes: 6 nodes > 4 CPUs -> Unpinned ("fewer CPUs than nodes")
//! ```
//!
//! Two nodes pinned to one CPU would compete for it while other CPUs idle (the bug of
//! "worker i on CPU i in every process"); leaving them all unpinned lets the kernel balance
//! instead, which is the better of the two bad choices on a machine that is too small.

use super::cpu_list::CpuList;

/// One node asking for CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDemand {
    /// `relay1`, `client`, `tgen-server`, ...
    pub name: String,
    /// CPUs it can use (its worker count; at least 1 is given to every node).
    pub want: usize,
}

impl NodeDemand {
    /// A node named `name` wanting `want` CPUs.
    pub fn new(name: impl Into<String>, want: usize) -> Self {
        NodeDemand {
            name: name.into(),
            want,
        }
    }
}

/// Where the nodes of one machine run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Every node on its own CPUs, in the order asked; no CPU is in two sets.
    Pinned(Vec<(String, CpuList)>),
    /// Nothing pinned: the kernel places every thread. `reason` says why, in one line.
    Unpinned {
        /// Why (for the log line and the bench JSON).
        reason: String,
    },
}

impl Placement {
    /// The CPUs of node `name`, when pinned.
    pub fn cpus_of(&self, name: &str) -> Option<&CpuList> {
        match self {
            Placement::Pinned(sets) => sets.iter().find(|(n, _)| n == name).map(|(_, c)| c),
            Placement::Unpinned { .. } => None,
        }
    }

    /// One line for a log: `relay1 0, relay2 1, ...` or `not pinned: REASON`.
    pub fn describe(&self) -> String {
        match self {
            Placement::Pinned(sets) => {
                let parts: Vec<String> = sets.iter().map(|(n, c)| format!("{n} {c}")).collect();
                format!("pinned: {}", parts.join(", "))
            }
            Placement::Unpinned { reason } => format!("not pinned: {reason}"),
        }
    }
}

/// Disjoint CPU sets for `nodes` out of `cpus`: with at least one CPU per node, every node
/// gets one, then the CPUs left go one at a time to the nodes still wanting more, in node
/// order, round after round; each node's CPUs are consecutive in `cpus`. CPUs nobody wants
/// stay idle. With fewer CPUs than nodes, [`Placement::Unpinned`].
pub fn plan(cpus: &CpuList, nodes: &[NodeDemand]) -> Placement {
    if nodes.len() > cpus.len() {
        return Placement::Unpinned {
            reason: format!(
                "{} nodes ({}) on {} CPU(s) ({cpus}): fewer CPUs than nodes",
                nodes.len(),
                nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                cpus.len()
            ),
        };
    }
    let mut share = vec![1usize; nodes.len()];
    let mut left = cpus.len() - nodes.len();
    while left > 0 {
        let before = left;
        for (s, n) in share.iter_mut().zip(nodes) {
            if left > 0 && *s < n.want {
                *s += 1;
                left -= 1;
            }
        }
        if left == before {
            break; // everyone has what they want
        }
    }
    let mut next = 0;
    let sets = nodes
        .iter()
        .zip(share)
        .filter_map(|(n, s)| {
            let set = CpuList::new(cpus.cpus()[next..next + s].iter().copied())?;
            next += s;
            Some((n.name.clone(), set))
        })
        .collect();
    Placement::Pinned(sets)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn nodes(wants: &[usize]) -> Vec<NodeDemand> {
        wants
            .iter()
            .enumerate()
            .map(|(i, &w)| NodeDemand::new(format!("n{i}"), w))
            .collect()
    }

    fn sets(p: &Placement) -> Vec<String> {
        match p {
            Placement::Pinned(s) => s.iter().map(|(_, c)| c.to_string()).collect(),
            Placement::Unpinned { reason } => panic!("unpinned: {reason}"),
        }
    }

    #[test]
    fn one_cpu_each_then_the_rest_to_who_wants_more() {
        let eight = CpuList::first(8).unwrap();
        // The bench on 8 CPUs: 3 relays, client, tgen server and client, 1 worker each.
        let p = plan(&eight, &nodes(&[1, 1, 1, 1, 1, 1]));
        assert_eq!(sets(&p), ["0", "1", "2", "3", "4", "5"]);
        // 2 workers per node: 4 nodes want 2, the tgen sides 1: 10 wanted, 8 there.
        let p = plan(&eight, &nodes(&[2, 2, 2, 2, 1, 1]));
        assert_eq!(sets(&p), ["0-1", "2-3", "4", "5", "6", "7"]);
        // Odd CPU numbers only (a cpuset), want 0 still gets one.
        let odd: CpuList = "1,3,5,7".parse().unwrap();
        let p = plan(&odd, &nodes(&[0, 3]));
        assert_eq!(sets(&p), ["1", "3,5,7"]);
        assert_eq!(p.cpus_of("n1").unwrap().to_string(), "3,5,7");
        assert_eq!(p.describe(), "pinned: n0 1, n1 3,5,7");
    }

    #[test]
    fn fewer_cpus_than_nodes_pins_nothing_and_says_why() {
        let two = CpuList::first(2).unwrap();
        let p = plan(&two, &nodes(&[1, 1, 1]));
        assert_eq!(
            p,
            Placement::Unpinned {
                reason: "3 nodes (n0, n1, n2) on 2 CPU(s) (0-1): fewer CPUs than nodes".into()
            }
        );
        assert_eq!(p.cpus_of("n0"), None);
        assert!(p.describe().starts_with("not pinned: 3 nodes"));
    }

    proptest! {
        /// Two nodes never share a CPU; every set is non-empty, inside the CPUs given and no
        /// larger than wanted (beyond the one every node gets); a node gets all it wants
        /// whenever the wants fit.
        #[test]
        fn sets_are_disjoint_and_fair(
            n_cpus in 1u32..64,
            wants in proptest::collection::vec(0usize..6, 1..20),
        ) {
            let cpus = CpuList::first(n_cpus).unwrap();
            let demand = nodes(&wants);
            match plan(&cpus, &demand) {
                Placement::Unpinned { .. } => prop_assert!(wants.len() > n_cpus as usize),
                Placement::Pinned(s) => {
                    prop_assert!(wants.len() <= n_cpus as usize);
                    prop_assert_eq!(s.len(), wants.len());
                    let wanted = wants.iter().map(|&w| w.max(1)).sum::<usize>();
                    let fits = wanted <= n_cpus as usize;
                    let given = s.iter().map(|(_, c)| c.len()).sum::<usize>();
                    prop_assert_eq!(given, wanted.min(n_cpus as usize));
                    for (i, (name, set)) in s.iter().enumerate() {
                        prop_assert_eq!(name, &demand[i].name);
                        prop_assert!(set.is_subset(&cpus));
                        prop_assert!(set.len() <= wants[i].max(1));
                        if fits {
                            prop_assert_eq!(set.len(), wants[i].max(1));
                        }
                        for (_, other) in &s[i + 1..] {
                            prop_assert!(!set.overlaps(other));
                        }
                    }
                }
            }
        }
    }
}
