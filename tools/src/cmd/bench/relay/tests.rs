//! `bench relay`'s report from made-up phases: the ratios taken within a round, the curve,
//! the JSON against benches/bench-relay-schema.txt, the table and the SVG.

use super::plan::{conditions, Condition, CpuPlan, Target};
use super::record::{LoadCpu, PhaseInput, PhaseRecord};
use super::report::{self, RelayConfig, RelayPlacement, RelayReport, RoundRecord, SCHEMA};
use super::table;
use crate::cmd::bench::run::Machine;
use crate::cmd::bench::schema;
use crate::stats::abba_order;

/// A 1 s phase of `c` that delivered `cells` with the target at `cpu` CPU-seconds.
fn phase(round: usize, c: Condition, cells: u64, cpu: f64, plan: &CpuPlan) -> PhaseRecord {
    let (set, shared) = plan.target(c.workers);
    PhaseRecord::compute(&PhaseInput {
        round,
        condition: c,
        window_s: 1.0,
        delivered: [0, cells],
        forward: [0, cells / 2],
        backward: [0, cells / 2 - 10],
        target_cpu: [Some(0.0), Some(cpu)],
        target_wait: [Some(0.0), Some(0.0)],
        load_cpu: vec![LoadCpu {
            process: "pump0".into(),
            cpus: Some(plan.load_process(0)),
            cpu_s: Some(0.5),
            wait_s: Some(0.1),
        }],
        load_capacity: 1,
        target_cpus: Some(set),
        shares_load_cpus: shared,
        machine_cpus: 2,
        drain_s: Some(0.2),
        worker_shares: vec![1.0 / f64::from(c.workers); c.workers as usize],
    })
}

/// Per round (w1 forwarder, w1 relay, w2 forwarder, w2 relay) cells in one second.
const CELLS: [[u64; 4]; 3] = [
    [1_000_000, 800_000, 2_000_000, 1_600_000],
    [1_000_000, 900_000, 2_000_000, 1_710_000],
    [1_000_000, 1_000_000, 2_000_000, 2_000_000],
];

fn made_up() -> RelayReport {
    let plan = CpuPlan::new("0-1".parse().unwrap(), None, None);
    let workers = [1, 2];
    let conds = conditions(&workers, true);
    let rounds: Vec<RoundRecord> = (0..3)
        .map(|r| {
            let order = abba_order(&conds, r);
            let phases = order
                .iter()
                .map(|c| {
                    let k = conds.iter().position(|x| x == c).unwrap();
                    let cpu = if c.target == Target::Relay { 0.9 } else { 0.3 };
                    phase(r + 1, *c, CELLS[r][k], cpu * f64::from(c.workers), &plan)
                })
                .collect();
            RoundRecord {
                round: r + 1,
                order: order.iter().map(|c| c.label()).collect(),
                phases,
            }
        })
        .collect();
    let points = report::points(&rounds, &workers, true, Some(&plan), 7);
    RelayReport {
        schema: SCHEMA,
        config: RelayConfig {
            mode: "local",
            rounds: 3,
            warmup_s: 1.0,
            window_s: 1.0,
            workers: workers.to_vec(),
            pumps: 1,
            connections_per_pump: 2,
            circuits_per_connection: 4,
            directions: "both",
            backend: "uring",
            links: "plain",
            seed: 7,
            load_burn_ns: 0,
        },
        machine: Machine::describe(plan.available.clone(), [Some(0.5), None]),
        placement: RelayPlacement {
            pinned: true,
            cpus: Some(plan.clone()),
            note: Some("2 worker(s): shared".into()),
        },
        order: "abba",
        conditions: conds.iter().map(|c| c.label()).collect(),
        figures: report::figures(&points),
        points,
        rounds,
        load_limited: false,
        conserved: true,
        notes: vec!["2 worker(s): shared".into()],
    }
}

/// Ratios are per round, then the median: relay/forwarder 0.8, 0.9, 1.0 -> 0.9; relay
/// speedup w2/w1 2.0, 1.9, 2.0 -> 2.0; the rounds ran in ABBA order.
#[test]
fn ratios_are_taken_within_rounds() {
    let r = made_up();
    assert_eq!(r.rounds[0].order[0], "forwarder-w1");
    assert_eq!(r.rounds[1].order[0], "relay-w2");
    let w1 = &r.points[0];
    let ratio = w1.relay_vs_forwarder.as_ref().unwrap();
    assert_eq!(ratio.n, 3);
    assert!((ratio.median - 0.9).abs() < 1e-12);
    assert_eq!(ratio.values.len(), 3);
    assert!((ratio.values[0] - 0.8).abs() < 1e-12);
    let speedup = r.points[1].relay_speedup.as_ref().unwrap();
    assert!((speedup.median - 2.0).abs() < 1e-12);
    assert!((speedup.values[1] - 1.9).abs() < 1e-12);
    // Per core: w2's relay cells/s halved; CPU per GiB from 0.9 CPU-s per 900k cells.
    let per_core = r.points[1].relay.cells_per_s_per_core.as_ref().unwrap();
    assert!((per_core.median - 855_000.0).abs() < 1e-6);
    let gib = 900_000.0 * 514.0 / f64::from(1u32 << 30);
    let cost = r.points[0].relay.cpu_s_per_gib.as_ref().unwrap();
    assert!((cost.median - 0.9 / gib).abs() < 1e-9);
    assert!(r.points[1].shares_load_cpus && !r.points[0].shares_load_cpus);
    assert!(r.figures.contains_key("relay_speedup_w2_vs_w1"));
    assert!(r.figures.contains_key("relay_vs_forwarder"));
}

/// The JSON has exactly the shape benches/bench-relay-schema.txt describes; a renamed
/// field is caught.
#[test]
fn json_fits_the_schema() {
    let v = serde_json::to_value(made_up()).unwrap();
    assert_eq!(v["schema"], "kistrel.bench-relay/1");
    assert_eq!(
        schema::check(&v, schema::BENCH_RELAY_SCHEMA),
        Vec::<String>::new()
    );
    let mut renamed = v.clone();
    let phase = renamed["rounds"][0]["phases"][0].as_object_mut().unwrap();
    let cells = phase.remove("cells").unwrap();
    phase.insert("cell_count".into(), cells);
    assert_eq!(
        schema::check(&renamed, schema::BENCH_RELAY_SCHEMA),
        ["rounds[].phases[].cell_count: not in the schema"]
    );
}

/// The table says n and the interval, marks the shared point, and gives the ratios.
#[test]
fn table_and_svg() {
    let r = made_up();
    let text = table::render(&r);
    assert!(text.contains("n=3"), "{text}");
    assert!(text.contains("relay        2* "), "{text}");
    assert!(text.contains("w=1   relay/forwarder 0.900 ["), "{text}");
    assert!(text.contains("relay speedup 2.000 ["), "{text}");
    assert!(text.contains("(ideal 2.00)"), "{text}");
    assert!(text.contains("note: 2 worker(s): shared"), "{text}");
    assert!(!text.contains("FAILED"), "{text}");
    let curves = report::curves(&r);
    assert_eq!(curves.len(), 2);
    assert_eq!(curves[0].points.len(), 2);
    let svg = crate::cmd::bench::plot::curves_svg("t", "workers", "Mcells/s", &curves);
    assert!(
        svg.starts_with("<svg") && svg.contains("plain TCP forwarder"),
        "{svg}"
    );
}
