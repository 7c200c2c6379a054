//! The experiment's accounting without a shaped network: phases cut at their deadline (on
//! loopback, a real tgen server), the pair's shared schedule, medians of even counts, the exit
//! status, the JSON schema and the report drawn from the JSON.

use std::time::Duration;

use clap::Parser;

use super::figures::{compare, phase_figures};
use super::phase::{drive, PhaseClients};
use super::setup::{offered_schedule, ExperimentArgs, PhaseNotRun, PhaseRun, CONDITIONS};
use super::*;
use crate::cmd::bench::nodes::{NodeSchedMetrics, Quantiles};
use crate::cmd::bench::schema;
use crate::tgen::{ClientOptions, Outcome, TgenReport, TransferRecord};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ExperimentArgs,
}

fn args(extra: &[&str]) -> ExperimentArgs {
    let mut argv = vec!["x", "kist-vs-vanilla"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).unwrap().args
}

fn server() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

#[test]
fn defaults_are_three_pairs_of_40_s() {
    let a = args(&[]);
    assert_eq!(
        (a.pairs, a.phase, a.web_rate),
        (3, Duration::from_secs(40), 2.0)
    );
    assert!(Cli::try_parse_from(["x", "kist-vs-vanilla", "--web-rate", "0"]).is_err());
}

/// The web arrivals of a pair depend on its round alone: both schedulers (and every
/// condition) get the same schedule; another round gets another.
#[test]
fn a_pair_is_offered_one_schedule() {
    let a = args(&["--web-flows", "3", "--web-rate", "3"]);
    let schedule = |cond: usize, round: u32| {
        let c = PhaseClients::new(&a, &CONDITIONS[cond], round, server(), None);
        let m = &c.web.models[0];
        (
            offered_schedule(&m.model, m.flows, c.web.seed, c.phase),
            c.web_offered(),
        )
    };
    let (r1, n1) = schedule(0, 1);
    assert_eq!(r1.len(), 3);
    // About 3 pages/s for 40 s; the exact count is the seed's.
    assert!((60..=200).contains(&n1), "{n1}");
    assert_eq!(schedule(0, 1), (r1.clone(), n1));
    assert_eq!(schedule(2, 1).0, r1, "unloaded: the same web arrivals");
    assert_ne!(schedule(0, 2).0, r1);
    assert!(r1.iter().flatten().all(|at| *at < a.phase));
}

/// A phase ends at its deadline: a bulk transfer far too large to finish is cut and counted
/// by the bytes it delivered; web pages start only on the schedule's times.
#[test]
fn a_phase_ends_at_its_deadline_and_counts_bytes_in_flight() {
    let srv = crate::tgen::Server::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let a = args(&[
        "--phase",
        "1500ms",
        "--web-flows",
        "2",
        "--web-rate",
        "8",
        "--bulk-flows",
        "2",
    ]);
    let mut clients = PhaseClients::new(&a, &CONDITIONS[0], 0, srv.addr(), None);
    if let Some(bulk) = clients.bulk.as_mut() {
        let size = &mut bulk.models[0].model.sizes[0];
        size.bytes = crate::tgen::proto::MAX_SIZE; // 1 TiB: never done in 1.5 s
        size.timeout = Duration::from_secs(3600);
    }
    let d = drive(&clients).unwrap();
    let bulk = d.bulk.as_ref().unwrap();
    assert_eq!((bulk.transfers.len(), bulk.interrupted), (0, 2));
    assert!(bulk.interrupted_bytes > 0);
    let run = PhaseRun {
        condition: "large_buffers",
        scheduler: "kist",
        round: 0,
        elapsed_s: d.elapsed_s,
        web_offered: clients.web_offered(),
        web: d.web,
        bulk: d.bulk,
        nodes: Vec::new(),
        bottleneck_drops: None,
        cpu: Vec::new(),
    };
    let f = phase_figures(&run, 0);
    let b = f.bulk.as_ref().unwrap();
    assert_eq!((b.completed, b.failed, b.in_flight_at_end), (0, 0, 2));
    assert_eq!(b.bytes_delivered, b.in_flight_bytes);
    assert_eq!(b.bytes_delivered, bulk_bytes(&run));
    assert!(b.goodput_mib_s > 0.0);
    // Every page started was offered, at its scheduled time.
    let m = &clients.web.models[0];
    let offered = offered_schedule(&m.model, m.flows, clients.web.seed, clients.phase);
    for r in &run.web.transfers {
        let at = offered[r.flow as usize][r.index as usize].as_secs_f64();
        assert!((r.scheduled_start_s - at).abs() < 1e-6, "{r:?} vs {at}");
    }
    assert_eq!(
        f.web.offered,
        offered.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert!(
        f.web.started <= f.web.offered && f.web.started > 0,
        "{:?}",
        f.web
    );
    assert_eq!(
        f.web.started,
        f.web.completed + f.web.failed + f.web.in_flight_at_end
    );
    assert_eq!(f.web.failed, 0);
}

fn bulk_bytes(r: &PhaseRun) -> u64 {
    r.bulk.as_ref().map_or(0, |b| b.interrupted_bytes)
}

fn record(model: &str, index: u64, ttlb: f64, outcome: Outcome) -> TransferRecord {
    TransferRecord {
        model: model.into(),
        flow: 0,
        index,
        socks_user: None,
        size: 1000,
        bytes: if outcome == Outcome::Ok { 1000 } else { 10 },
        seed: index,
        scheduled_start_s: index as f64,
        ttfb_s: Some(ttlb / 2.0),
        ttlb_s: (outcome == Outcome::Ok).then_some(ttlb),
        elapsed_s: ttlb,
        outcome,
    }
}

fn report(model: crate::tgen::Model, records: Vec<TransferRecord>, cut: (u64, u64)) -> TgenReport {
    let mut o = ClientOptions::new(server());
    o.models = vec![crate::tgen::ModelFlows { model, flows: 1 }];
    let mut t = TgenReport::build(o.params(), Duration::from_secs(10), cut.0, records);
    t.interrupted_bytes = cut.1;
    t
}

/// A made-up phase: web pages with these TTLBs, bulk with `bulk_bytes` cut in flight.
fn fake(sched: &'static str, round: u32, ttlbs: &[f64], bulk_bytes: u64) -> PhaseRun {
    let web = ttlbs
        .iter()
        .enumerate()
        .map(|(i, t)| record("web", i as u64, *t, Outcome::Ok))
        .collect();
    let relay = |p99: f64| NodeSchedMetrics {
        node: "relay3".into(),
        scheduler: sched.into(),
        runs: 10,
        relay_queue_ms: Quantiles {
            p99,
            ..Quantiles::default()
        },
        ..NodeSchedMetrics::default()
    };
    PhaseRun {
        condition: "large_buffers",
        scheduler: sched,
        round,
        elapsed_s: 10.0,
        web_offered: ttlbs.len() as u64 + 1,
        web: report(crate::tgen::Model::web(), web, (1, 5)),
        bulk: Some(report(
            crate::tgen::Model::bulk(),
            Vec::new(),
            (2, bulk_bytes),
        )),
        nodes: vec![relay(f64::from(round) + 1.0)],
        bottleneck_drops: Some(3),
        cpu: vec![("relay1".into(), 1.0)],
    }
}

/// Medians of even counts are the mean of the two middle values: four pages per phase, two
/// phases per scheduler, two per-pair ratios.
#[test]
fn medians_of_even_counts_are_means_of_the_middle_two() {
    let runs = [
        fake("kist", 0, &[1.0, 2.0, 3.0, 4.0], 10 << 20),
        fake("vanilla", 0, &[2.0, 4.0, 6.0, 8.0], 20 << 20),
        fake("vanilla", 1, &[1.0, 1.0, 2.0, 2.0], 10 << 20),
        fake("kist", 1, &[1.0, 1.0, 3.0, 3.0], 10 << 20),
    ];
    let phases: Vec<_> = runs.iter().map(|r| phase_figures(r, position(r))).collect();
    assert_eq!(phases[0].web.ttlb_median_s, Some(2.5));
    assert_eq!(phases[0].web.in_flight_at_end, 1);
    assert_eq!(phases[0].web.bytes_delivered, 4000 + 5);
    assert_eq!(phases[0].bulk.as_ref().unwrap().goodput_mib_s, 1.0);
    assert_eq!(
        (phases[2].position, phases[3].position),
        (0, 1),
        "V K in round 1"
    );
    let c = compare(&phases);
    let ttlb = &c["web_ttlb_median"];
    // KIST's phase medians 2.5 and 2, Vanilla's 5 and 1.5.
    assert_eq!((ttlb.kist, ttlb.vanilla), (Some(2.25), Some(3.25)));
    // Pair ratios 2.5 / 5 = 0.5 and 2 / 1.5; their median is their mean.
    let r = ttlb.ratio.as_ref().unwrap();
    assert_eq!(r.values, [0.5, 2.0 / 1.5]);
    assert!((r.median - (0.5 + 2.0 / 1.5) / 2.0).abs() < 1e-12);
    assert_eq!(r.n, 2);
    let bulk = c["bulk_goodput"].ratio.as_ref().unwrap();
    assert_eq!(bulk.values, [0.5, 1.0]);
    assert_eq!(bulk.median, 0.75);
}

fn built(runs: &[PhaseRun], not_run: Vec<PhaseNotRun>) -> (ExperimentReport, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let a = args(&["--pairs", "2", "--out", dir.path().to_str().unwrap()]);
    let cpus = "0".parse().unwrap();
    let machine = crate::cmd::bench::run::Machine::describe(cpus, [Some(0.5), None]);
    let r = summarise(&a, &CONDITIONS[..1], runs, not_run, machine).unwrap();
    (r, dir)
}

fn two_pairs() -> Vec<PhaseRun> {
    vec![
        fake("kist", 0, &[1.0, 2.0], 10 << 20),
        fake("vanilla", 0, &[2.0, 4.0], 20 << 20),
        fake("vanilla", 1, &[1.0, 2.0], 10 << 20),
        fake("kist", 1, &[1.0, 3.0], 10 << 20),
    ]
}

#[test]
fn a_failed_transfer_or_a_phase_not_run_exits_1() {
    let (r, _d) = built(&two_pairs(), Vec::new());
    assert_eq!((r.transfers_failed, r.conditions[0].pairs_complete), (0, 2));
    assert!(r.verdict().is_ok());

    let mut runs = two_pairs();
    runs[1].web = report(
        crate::tgen::Model::web(),
        vec![
            record("web", 0, 1.0, Outcome::Ok),
            record("web", 1, 1.0, Outcome::Short),
        ],
        (0, 0),
    );
    let (r, _d) = built(&runs, Vec::new());
    assert_eq!(r.transfers_failed, 1);
    assert_eq!(r.verdict().unwrap_err().exit_code(), 1);

    let mut runs = two_pairs();
    runs.pop();
    let gone = PhaseNotRun {
        condition: "large_buffers",
        scheduler: "kist",
        round: 1,
        error: "kistrel net did not start".into(),
    };
    let (r, _d) = built(&runs, vec![gone]);
    assert_eq!(r.conditions[0].pairs_complete, 1);
    assert_eq!(
        r.conditions[0].figures["web_ttlb_median"]
            .ratio
            .as_ref()
            .unwrap()
            .n,
        1
    );
    let e = r.verdict().unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("1 phase(s) did not run"), "{e}");
}

/// The JSON fits benches/bench-experiment-schema.txt (and a renamed field is caught); the
/// report's numbers are the JSON's; C Tor's figures are labelled a reference.
#[test]
fn json_fits_its_schema_and_the_report_is_drawn_from_it() {
    let gone = PhaseNotRun {
        condition: "large_buffers",
        scheduler: "kist",
        round: 2,
        error: "x".into(),
    };
    let (r, dir) = built(&two_pairs(), vec![gone]);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["schema"], "kistrel.bench-experiment/2");
    assert_eq!(
        schema::check(&v, schema::BENCH_EXPERIMENT_SCHEMA),
        Vec::<String>::new()
    );
    let mut renamed = v.clone();
    let bulk = renamed["phases"][0]["bulk"].take();
    renamed["phases"][0]["bulk_figures"] = bulk;
    assert!(!schema::check(&renamed, schema::BENCH_EXPERIMENT_SCHEMA).is_empty());
    let reference = &v["conditions"][0]["reference"];
    assert_eq!(reference["kind"], "reference");
    assert!(reference["source"]
        .as_str()
        .unwrap()
        .contains("docs/spec/kist.md"));

    let md = markdown::render(&r);
    let bulk = r.conditions[0].figures["bulk_goodput"]
        .ratio
        .as_ref()
        .unwrap();
    assert!(md.contains(&bulk.display(2)), "{md}");
    assert!(md.contains("Reference figures, not measured by this run (C Tor 0.4.9"));
    // Bulk 0.5 and 1.0 per pair: median 0.75 < 0.95, so the report says so.
    assert!(
        md.contains("**Bulk goodput is below 0.95x Vanilla's**"),
        "{md}"
    );
    assert!(md.contains("- not run: large_buffers kist round 2: x"));
    for plot in &r.plots {
        assert!(md.contains(&format!("![{plot}]({plot})")), "{plot}");
        let svg = std::fs::read_to_string(dir.path().join(plot)).unwrap();
        assert!(svg.starts_with("<svg"), "{plot}");
    }
}
