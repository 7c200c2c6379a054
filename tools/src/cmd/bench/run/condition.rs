//! The conditions a run measures, and their order in each round.

use kistrel_sched::SchedulerKind;

/// One way of moving the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::cmd::bench) enum Condition {
    /// tgen client straight to the tgen server.
    Direct,
    /// Through three chained plain TCP forwarders.
    Forwarded,
    /// Through kistrel's three hops, every node with this scheduler and worker count.
    Relayed {
        /// Every node's scheduler.
        scheduler: SchedulerKind,
        /// Workers per node.
        workers: u16,
    },
}

impl Condition {
    /// The name in the JSON and the tables: `direct`, `forwarded`, `relayed-kist-w1`, ...
    pub(in crate::cmd::bench) fn label(self) -> String {
        match self {
            Condition::Direct => "direct".into(),
            Condition::Forwarded => "forwarded".into(),
            Condition::Relayed { scheduler, workers } => {
                format!(
                    "relayed-{}-w{workers}",
                    scheduler.name().to_ascii_lowercase()
                )
            }
        }
    }

    /// The relayed condition with another scheduler.
    fn with_scheduler(self, s: SchedulerKind) -> Condition {
        match self {
            Condition::Relayed { workers, .. } => Condition::Relayed {
                scheduler: s,
                workers,
            },
            other => other,
        }
    }

    /// The relayed condition with another worker count.
    fn with_workers(self, w: u16) -> Condition {
        match self {
            Condition::Relayed { scheduler, .. } => Condition::Relayed {
                scheduler,
                workers: w,
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
        let mut conditions = vec![Condition::Direct, Condition::Forwarded, base];
        for c in schedulers
            .into_iter()
            .chain(workers)
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIST1: Condition = Condition::Relayed {
        scheduler: SchedulerKind::Kist,
        workers: 1,
    };

    fn labels(p: &Plan) -> Vec<String> {
        p.conditions.iter().map(|c| c.label()).collect()
    }

    #[test]
    fn shared_conditions_run_once() {
        let none = Comparisons {
            workers: false,
            schedulers: false,
        };
        let p = Plan::new(KIST1, none);
        assert_eq!(labels(&p), ["direct", "forwarded", "relayed-kist-w1"]);
        assert_eq!((p.schedulers, p.workers), (None, None));

        let both = Comparisons {
            workers: true,
            schedulers: true,
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
}
