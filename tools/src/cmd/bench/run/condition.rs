//! The conditions a run measures, and their order in each round.

use kistrel_sched::SchedulerKind;

use crate::config::LinksMode;

/// One way of moving the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::cmd::bench) enum Condition {
    /// tgen client straight to the tgen server.
    Direct,
    /// Through three chained plain TCP forwarders.
    Forwarded,
    /// Through kistrel's three hops, every node with this scheduler, worker count and links.
    Relayed {
        /// Every node's scheduler.
        scheduler: SchedulerKind,
        /// Workers per node.
        workers: u16,
        /// TLS links (Tor's link protocol), or plain ones (the benchmark mode).
        links: LinksMode,
    },
}

impl Condition {
    /// The name in the JSON and the tables: `direct`, `forwarded`, `relayed-kist-w1` (TLS
    /// links, the default), `relayed-kist-w1-plain` (plain links), ...
    pub(in crate::cmd::bench) fn label(self) -> String {
        match self {
            Condition::Direct => "direct".into(),
            Condition::Forwarded => "forwarded".into(),
            Condition::Relayed {
                scheduler,
                workers,
                links,
            } => {
                let links = match links {
                    LinksMode::Tls => "",
                    LinksMode::Plain => "-plain",
                };
                format!(
                    "relayed-{}-w{workers}{links}",
                    scheduler.name().to_ascii_lowercase()
                )
            }
        }
    }

    /// The relayed condition with another scheduler.
    fn with_scheduler(self, s: SchedulerKind) -> Condition {
        match self {
            Condition::Relayed { workers, links, .. } => Condition::Relayed {
                scheduler: s,
                workers,
                links,
            },
            other => other,
        }
    }

    /// The relayed condition with another worker count.
    fn with_workers(self, w: u16) -> Condition {
        match self {
            Condition::Relayed {
                scheduler, links, ..
            } => Condition::Relayed {
                scheduler,
                workers: w,
                links,
            },
            other => other,
        }
    }

    /// The relayed condition with other links.
    fn with_links(self, l: LinksMode) -> Condition {
        match self {
            Condition::Relayed {
                scheduler, workers, ..
            } => Condition::Relayed {
                scheduler,
                workers,
                links: l,
            },
            other => other,
        }
    }
}

/// The comparisons a run makes besides kistrel against direct and the forwarders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::cmd::bench) struct Comparisons {
    /// 2 workers per node against 1 (with the base scheduler).
    pub workers: bool,
    /// KIST against Vanilla (with the base worker count).
    pub schedulers: bool,
    /// TLS links against plain links (with the base scheduler and worker count).
    pub links: bool,
}

/// What one run measures: every condition once per round, and which of them each figure
/// compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::cmd::bench) struct Plan {
    /// Each condition once, in the order of round 1 (later rounds: [`crate::stats::abba_order`]).
    pub conditions: Vec<Condition>,
    /// The relayed condition the main figures are of.
    pub base: Condition,
    /// (KIST, Vanilla), when compared.
    pub schedulers: Option<(Condition, Condition)>,
    /// (1 worker, 2 workers), when compared.
    pub workers: Option<(Condition, Condition)>,
    /// (TLS links, plain links), when compared.
    pub links: Option<(Condition, Condition)>,
}

impl Plan {
    /// The plan for a base relayed condition and the comparisons asked for. A condition two
    /// comparisons share (KIST with 1 worker is the base, the KIST side and the 1-worker
    /// side by default) is measured once per round.
    pub(in crate::cmd::bench) fn new(base: Condition, compare: Comparisons) -> Plan {
        let schedulers = compare.schedulers.then(|| {
            (
                base.with_scheduler(SchedulerKind::Kist),
                base.with_scheduler(SchedulerKind::Vanilla),
            )
        });
        let workers = compare
            .workers
            .then(|| (base.with_workers(1), base.with_workers(2)));
        let links = compare.links.then(|| {
            (
                base.with_links(LinksMode::Tls),
                base.with_links(LinksMode::Plain),
            )
        });
        let mut conditions = vec![Condition::Direct, Condition::Forwarded, base];
        for c in schedulers
            .into_iter()
            .chain(workers)
            .chain(links)
            .flat_map(|(a, b)| [a, b])
        {
            if !conditions.contains(&c) {
                conditions.push(c);
            }
        }
        Plan {
            conditions,
            base,
            schedulers,
            workers,
            links,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIST1: Condition = Condition::Relayed {
        scheduler: SchedulerKind::Kist,
        workers: 1,
        links: LinksMode::Tls,
    };

    fn labels(p: &Plan) -> Vec<String> {
        p.conditions.iter().map(|c| c.label()).collect()
    }

    #[test]
    fn shared_conditions_run_once() {
        let none = Comparisons {
            workers: false,
            schedulers: false,
            links: false,
        };
        let p = Plan::new(KIST1, none);
        assert_eq!(labels(&p), ["direct", "forwarded", "relayed-kist-w1"]);
        assert_eq!((p.schedulers, p.workers, p.links), (None, None, None));

        let both = Comparisons {
            workers: true,
            schedulers: true,
            links: false,
        };
        let p = Plan::new(KIST1, both);
        assert_eq!(
            labels(&p),
            [
                "direct",
                "forwarded",
                "relayed-kist-w1",
                "relayed-vanilla-w1",
                "relayed-kist-w2"
            ]
        );
        assert_eq!(p.schedulers.unwrap().0, KIST1);
        assert_eq!(p.workers.unwrap().0, KIST1);

        // A Vanilla base with 4 workers: KIST-w4 and Vanilla-w1/w2 are extra conditions.
        let base = Condition::Relayed {
            scheduler: SchedulerKind::Vanilla,
            workers: 4,
            links: LinksMode::Tls,
        };
        let p = Plan::new(base, both);
        assert_eq!(
            labels(&p),
            [
                "direct",
                "forwarded",
                "relayed-vanilla-w4",
                "relayed-kist-w4",
                "relayed-vanilla-w1",
                "relayed-vanilla-w2"
            ]
        );
    }

    /// `--compare-links` adds the base with plain links; a plain base adds the TLS one.
    #[test]
    fn links_are_part_of_a_relayed_condition() {
        let all = Comparisons {
            workers: true,
            schedulers: true,
            links: true,
        };
        let p = Plan::new(KIST1, all);
        assert_eq!(
            labels(&p),
            [
                "direct",
                "forwarded",
                "relayed-kist-w1",
                "relayed-vanilla-w1",
                "relayed-kist-w2",
                "relayed-kist-w1-plain"
            ]
        );
        assert_eq!(p.links.unwrap().0, KIST1);
        // The other comparisons keep the base's links.
        let plain = KIST1.with_links(LinksMode::Plain);
        let p = Plan::new(plain, all);
        assert_eq!(
            labels(&p),
            [
                "direct",
                "forwarded",
                "relayed-kist-w1-plain",
                "relayed-vanilla-w1-plain",
                "relayed-kist-w2-plain",
                "relayed-kist-w1"
            ]
        );
        assert_eq!(p.links, Some((KIST1, plain)));
    }
}
