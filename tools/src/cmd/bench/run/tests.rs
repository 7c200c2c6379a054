//! The report built from made-up rounds: figures by hand, the JSON against the schema.

use std::collections::BTreeMap;

use kistrel_sched::SchedulerKind;

use super::condition::{Comparisons, Condition, Plan};
use super::phase::PhaseRecord;
use super::report::{build, Machine, Report, RoundRecord, RunConfig};
use crate::cmd::bench::nodes::NodeSchedMetrics;
use crate::cmd::bench::placement::{ObservedNode, PlacementSummary, PlannedNode};
use crate::cmd::bench::procs::ProcessCpu;
use crate::cmd::bench::schema;
use crate::config::LinksMode;
use crate::placement::{CpuList, ThreadAffinity};
use crate::stats::{abba_order, Interval};
use crate::tgen::{ModelSummary, Outcome, Percentiles, TransferRecord};

const KIST1: Condition = Condition::Relayed {
    scheduler: SchedulerKind::Kist,
    workers: 1,
    links: LinksMode::Tls,
};

const ALL: Comparisons = Comparisons {
    workers: true,
    schedulers: true,
    links: true,
};

fn record(model: &str, ttfb: f64, outcome: Outcome) -> TransferRecord {
    TransferRecord {
        model: model.into(),
        flow: 0,
        index: 0,
        socks_user: None,
        size: 1,
        bytes: 1,
        seed: 0,
        scheduled_start_s: 0.0,
        ttfb_s: Some(ttfb),
        ttlb_s: (outcome == Outcome::Ok).then_some(ttfb * 2.0),
        elapsed_s: ttfb * 2.0,
        outcome,
    }
}

/// `cpu`: a relayed phase's busiest relay's CPU per GiB, or the forwarded phase's busiest
/// hop's (the other two hops have half of it).
fn phase(c: Condition, mib_s: f64, cpu: f64) -> PhaseRecord {
    let relay_cpu = cpu;
    let relayed = matches!(c, Condition::Relayed { .. });
    let p = Percentiles {
        p10: 0.1,
        p25: 0.1,
        p50: 0.2,
        p75: 0.3,
        p90: 0.4,
        p99: 0.5,
        max: 0.6,
    };
    let summary = ModelSummary {
        flows: 1,
        count: 2,
        ok: 1,
        failed: BTreeMap::from([("timeout".to_owned(), 1)]),
        bytes: 100,
        goodput_mib_s: 1.0,
        ttfb_s: Some(p),
        ttlb_s: Some(p),
    };
    let cpus: CpuList = "0-1".parse().unwrap();
    PhaseRecord {
        condition: c.label(),
        throughput_mib_s: mib_s,
        bytes_verified: 1 << 20,
        failed: 0,
        transfers: BTreeMap::from([("bulk".to_owned(), summary)]),
        cpu: if relayed {
            ["relay1", "relay2", "relay3", "client"]
                .iter()
                .enumerate()
                .map(|(i, role)| ProcessCpu {
                    role: (*role).into(),
                    pid: 10 + i as i32,
                    cpu_s: 1.0,
                    // relay2 is the busiest relay; the client's larger figure is not a relay's.
                    cpu_s_per_gib: [relay_cpu / 2.0, relay_cpu, relay_cpu / 4.0, 99.0][i],
                })
                .collect()
        } else if c == Condition::Forwarded {
            (1..=3)
                .map(|hop| ProcessCpu {
                    role: format!("forwarder{hop}"),
                    pid: 1,
                    cpu_s: 1.0,
                    cpu_s_per_gib: if hop == 2 { cpu } else { cpu / 2.0 },
                })
                .collect()
        } else {
            Vec::new()
        },
        scheduler_metrics: if relayed {
            vec![NodeSchedMetrics {
                node: "relay1".into(),
                scheduler: "KIST".into(),
                grants_exhausted: BTreeMap::from([("cwnd".to_owned(), 1)]),
                ..NodeSchedMetrics::default()
            }]
        } else {
            Vec::new()
        },
        placement: if relayed {
            vec![ObservedNode {
                node: "relay1".into(),
                planned: None,
                workers: vec![ThreadAffinity {
                    thread: "kistrel-w0".into(),
                    cpus: cpus.clone(),
                }],
            }]
        } else {
            Vec::new()
        },
        placement_differences: Vec::new(),
        records: vec![
            record("bulk", 0.1 * mib_s, Outcome::Ok),
            record("web", 0.05, Outcome::Ok),
            record("web", 9.0, Outcome::Timeout),
        ],
    }
}

/// Three rounds with throughputs chosen so every figure's median is known by hand.
fn report(placement: PlacementSummary) -> Report {
    let plan = Plan::new(KIST1, ALL);
    let vanilla = Condition::Relayed {
        scheduler: SchedulerKind::Vanilla,
        workers: 1,
        links: LinksMode::Tls,
    };
    let two = Condition::Relayed {
        scheduler: SchedulerKind::Kist,
        workers: 2,
        links: LinksMode::Tls,
    };
    let plain = Condition::Relayed {
        scheduler: SchedulerKind::Kist,
        workers: 1,
        links: LinksMode::Plain,
    };
    // Per round: direct, forwarded, KIST-1, Vanilla-1, KIST-2 MiB/s, busiest relay CPU,
    // then KIST-1 over plain links: MiB/s and busiest relay CPU; the busiest forwarder's CPU.
    let table = [
        [400.0, 200.0, 50.0, 40.0, 60.0, 4.0, 25.0, 2.0, 2.0],
        [500.0, 250.0, 50.0, 50.0, 100.0, 5.0, 50.0, 4.0, 2.0],
        [400.0, 100.0, 40.0, 50.0, 40.0, 3.0, 50.0, 3.0, 1.0],
    ];
    let rounds = table
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let order = abba_order(&plan.conditions, i);
            let speed = |c: Condition| match c {
                Condition::Direct => t[0],
                Condition::Forwarded => t[1],
                c if c == KIST1 => t[2],
                c if c == vanilla => t[3],
                c if c == two => t[4],
                c if c == plain => t[6],
                _ => unreachable!(),
            };
            let cpu = |c: Condition| match c {
                Condition::Forwarded => t[8],
                c if c == plain => t[7],
                _ => t[5],
            };
            RoundRecord {
                round: i + 1,
                order: order.iter().map(|c| c.label()).collect(),
                phases: order.iter().map(|&c| phase(c, speed(c), cpu(c))).collect(),
            }
        })
        .collect();
    let config = RunConfig {
        circuits: 2,
        transfer_mib: 1,
        web_flows: 2,
        workers: 1,
        backend: "auto",
        scheduler: "KIST".into(),
        links: "tls",
        base_condition: KIST1.label(),
        rounds: 3,
        seed: 1,
        testing_cell_cost_ns: 0,
    };
    let machine = Machine {
        cpu_model: Some("a CPU".into()),
        kernel: Some("6.18".into()),
        kistrel: "0.1.0",
        cpus: "0-1".parse().unwrap(),
        loadavg_1m: [Some(0.5), Some(1.5)],
    };
    build(config, machine, placement, &plan, rounds)
}

fn unpinned() -> PlacementSummary {
    PlacementSummary {
        pinned: false,
        reason: Some("6 nodes on 2 CPU(s)".into()),
        cpus_available: "0-1".parse().unwrap(),
        nodes: Vec::new(),
    }
}

#[test]
fn figures_are_medians_of_per_round_values() {
    let r = report(unpinned());
    let f = |name: &str| &r.figures[name].estimate;
    // Per-round ratios: kistrel / forwarders 0.25, 0.2, 0.4 -> median 0.25.
    assert_eq!(f("ratio_vs_forwarders").values, [0.25, 0.2, 0.4]);
    assert_eq!(f("ratio_vs_forwarders").median, 0.25);
    assert_eq!(
        f("ratio_vs_forwarders").ci95,
        Some(Interval {
            low: 0.2,
            high: 0.4
        })
    );
    // kistrel / direct 0.125, 0.1, 0.1 -> 0.1 (not the ratio of the medians, 50/400).
    assert_eq!(f("ratio_vs_direct").median, 0.1);
    // KIST / Vanilla 1.25, 1.0, 0.8 -> 1.0; 2 / 1 workers 1.2, 2.0, 1.0 -> 1.2.
    assert_eq!(f("kist_over_vanilla").median, 1.0);
    assert_eq!(f("workers_two_over_one").median, 1.2);
    assert_eq!(f("throughput_mib_s").values, [50.0, 50.0, 40.0]);
    assert_eq!(f("max_relay_cpu_s_per_gib").values, [4.0, 5.0, 3.0]);
    // relay1 has half of relay2's, relay3 a quarter; the client is not a relay.
    assert_eq!(f("relays_cpu_s_per_gib").values, [7.0, 8.75, 5.25]);
    assert_eq!(r.figures["max_relay_cpu_s_per_gib"].better, "lower");
    // The forwarders' hops: busiest 2, 2, 1 and the other two half of it, so 4, 4, 2 in all.
    // Within each round: busiest relay / busiest hop 4/2, 5/2, 3/1; relays / hops 7/4,
    // 8.75/4, 5.25/2.
    assert_eq!(f("forwarders_cpu_s_per_gib").values, [4.0, 4.0, 2.0]);
    assert_eq!(f("max_relay_cpu_over_forwarders").values, [2.0, 2.5, 3.0]);
    assert_eq!(
        f("relays_cpu_over_forwarders").values,
        [1.75, 2.1875, 2.625]
    );
    assert_eq!(r.figures["relays_cpu_over_forwarders"].better, "lower");
    assert_eq!(r.throughput_by_condition["relayed-vanilla-w1"].median, 50.0);
    // TLS / plain links 2.0, 1.0, 0.8 -> 1.0; what TLS adds per role is TLS minus plain
    // within a round: the middle (relay2) 2, 1, 0; the guard half of it, the exit a quarter.
    assert_eq!(f("tls_over_plain").values, [2.0, 1.0, 0.8]);
    assert_eq!(f("tls_over_plain").median, 1.0);
    assert_eq!(f("tls_added_middle_cpu_s_per_gib").values, [2.0, 1.0, 0.0]);
    assert_eq!(f("tls_added_guard_cpu_s_per_gib").median, 0.5);
    assert_eq!(f("tls_added_exit_cpu_s_per_gib").values, [0.5, 0.25, 0.0]);
    assert_eq!(r.figures["tls_added_exit_cpu_s_per_gib"].better, "lower");
    assert_eq!(
        r.throughput_by_condition["relayed-kist-w1-plain"].median,
        50.0
    );
    // The rounds alternate; bytes and failures add up over all 18 phases.
    assert_eq!(r.rounds[1].order[0], "relayed-kist-w1-plain");
    assert_eq!(r.bytes_verified, 18 << 20);
    // Latency: ok transfers only, pooled over the 3 rounds.
    let web = r
        .latency
        .iter()
        .find(|l| l.condition == "relayed-kist-w1" && l.model == "web")
        .unwrap();
    assert_eq!((web.ttfb_s.n, web.ttfb_s.max), (3, Some(0.05)));
    assert_eq!(web.ttfb_s.p90, None);
}

#[test]
fn a_round_without_a_value_leaves_the_figure_out() {
    let mut r = report(unpinned());
    // Rebuild with one forwarded phase that moved nothing: no ratio for that round.
    for p in &mut r.rounds[0].phases {
        if p.condition == "forwarded" {
            p.throughput_mib_s = 0.0;
        }
    }
    let plan = Plan::new(KIST1, ALL);
    let again = build(r.config, r.machine, r.placement, &plan, r.rounds);
    assert!(!again.figures.contains_key("ratio_vs_forwarders"));
    assert!(again.figures.contains_key("ratio_vs_direct"));
}

/// The JSON has exactly the shape benches/bench-schema.txt describes, pinned or not.
#[test]
fn json_fits_the_schema() {
    let r = report(unpinned());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["schema"], "kistrel.bench/4");
    assert_eq!(
        schema::check(&v, schema::BENCH_SCHEMA),
        Vec::<String>::new()
    );
    let pinned = PlacementSummary {
        pinned: true,
        reason: None,
        cpus_available: "0-7".parse().unwrap(),
        nodes: vec![PlannedNode {
            node: "relay1".into(),
            cpus: "2".parse().unwrap(),
        }],
    };
    let v = serde_json::to_value(report(pinned)).unwrap();
    assert_eq!(
        schema::check(&v, schema::BENCH_SCHEMA),
        Vec::<String>::new()
    );
    // A renamed field is caught.
    let mut renamed = v.clone();
    let figures = renamed["figures"].as_object_mut().unwrap();
    let f = figures["ratio_vs_forwarders"].as_object_mut().unwrap();
    let median = f.remove("median").unwrap();
    f.insert("p50".into(), median);
    assert_eq!(
        schema::check(&renamed, schema::BENCH_SCHEMA),
        ["figures.ratio_vs_forwarders.p50: not in the schema"]
    );
}

/// The human table says n, the interval, the unit and the direction of every figure, and
/// leaves unsupported percentiles out.
#[test]
fn table_rows() {
    let text = super::table::render(&report(unpinned()));
    assert!(
        text.contains("kistrel / plain forwarders            0.250  [0.200, 0.400]           3  ratio (higher is better)"),
        "{text}"
    );
    assert!(text.contains("busiest relay CPU per GiB              4.00  [3.00, 5.00]             3  CPU-s/GiB (lower is better)"), "{text}");
    assert!(
        text.contains("TLS links / plain links               1.000  [0.800, 2.000]           3  ratio (higher is better)"),
        "{text}"
    );
    assert!(text.contains("CPU per GiB TLS adds, middle           1.00  [0.00, 2.00]             3  CPU-s/GiB (lower is better)"), "{text}");
    assert!(text.contains("links tls, scheduler KIST"), "{text}");
    assert!(
        text.contains("placement: not pinned: 6 nodes on 2 CPU(s)"),
        "{text}"
    );
    assert!(
        text.contains(
            "relayed-kist-w1            web   ttfb     3    0.050        -        -    0.050"
        ),
        "{text}"
    );
}

/// A node whose CPU time could not be read leaves the busiest and the sum unknown rather
/// than smaller than they are.
#[test]
fn an_unread_cpu_time_leaves_the_cpu_figures_out() {
    let mut p = phase(KIST1, 50.0, 4.0);
    assert_eq!(p.max_cpu_s_per_gib("relay"), Some(4.0));
    assert_eq!(p.total_cpu_s_per_gib("relay"), Some(7.0));
    p.cpu[0].cpu_s_per_gib = f64::NAN;
    assert_eq!(p.max_cpu_s_per_gib("relay"), None);
    assert_eq!(p.total_cpu_s_per_gib("relay"), None);
    // The client is no relay, and a phase without forwarders has no forwarder figure.
    assert_eq!(p.max_cpu_s_per_gib("forwarder"), None);
    let f = phase(Condition::Forwarded, 100.0, 2.0);
    assert_eq!(f.total_cpu_s_per_gib("forwarder"), Some(4.0));
}
