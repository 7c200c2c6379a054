//! Benchmarks: CBT fit on 1000 build times (target <= 50 us) and one path pick on a
//! 7000-relay directory (target <= 2 us).

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use kistrel_pathsel::cbt::{CbtConfig, CbtEstimator};
use kistrel_pathsel::dir::synthetic_directory;
use kistrel_pathsel::guard::GuardSet;
use kistrel_pathsel::select::{ExitTarget, PathConfig, PathSelector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Pareto};

fn cbt_fit(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let dist = Pareto::new(500.0, 0.8).expect("valid Pareto parameters");
    let mut est = CbtEstimator::new(CbtConfig::default());
    let samples: Vec<u32> = (0..2000).map(|_| dist.sample(&mut rng) as u32).collect();
    for &s in &samples[..1000] {
        est.add_build(s);
    }
    let mut i = 1000;
    // Each iteration adds one build (evicting one, so the ring stays at 1000) and refits:
    // the add invalidates the cached fit.
    c.bench_function("cbt_fit_1000", |b| {
        b.iter(|| {
            est.add_build(samples[i % samples.len()]);
            i += 1;
            black_box(est.fit())
        })
    });
}

fn path_pick(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let dir = synthetic_directory(7000, &mut rng);
    let sel = PathSelector::new(&dir, PathConfig::default());
    c.bench_function("select_path_7000", |b| {
        b.iter(|| black_box(sel.select_path(&mut rng, None, None)))
    });
    let web = Some(ExitTarget {
        addr: None,
        port: 443,
    });
    c.bench_function("select_path_7000_port443", |b| {
        b.iter(|| black_box(sel.select_path(&mut rng, web, None)))
    });
    let guard = sel.select_path(&mut rng, None, None).map(|p| p.guard).ok();
    c.bench_function("select_path_7000_given_guard", |b| {
        b.iter(|| black_box(sel.select_path(&mut rng, None, guard)))
    });
}

fn guard_pick(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let dir = synthetic_directory(7000, &mut rng);
    let sel = PathSelector::new(&dir, PathConfig::default());
    let mut guards = GuardSet::new(PathConfig::default());
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // One guard pick plus the path around it: what the control thread does per circuit.
    c.bench_function("guard_pick_and_path_7000", |b| {
        b.iter(|| {
            let (g, ticket) = guards.pick(&sel, now, &mut rng).expect("guards available");
            let path = sel.select_path(&mut rng, None, Some(g));
            ticket.succeeded();
            black_box(path)
        })
    });
}

criterion_group!(benches, cbt_fit, path_pick, guard_pick);
criterion_main!(benches);
