//! Wall-time micro benches of kistrel's hot paths, for humans: `cargo bench --bench micro`
//! (filter with e.g. `cargo bench --bench micro -- crypto`). Times on the shared 2-core machine
//! vary by 10-50% run to run; the repeatable figures are the instruction counts of
//! `benches/icount.rs` (see benches/README.md). The fixtures are shared with that bench.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

mod fixtures;
mod pure_fixtures;

use fixtures::{BATCH, NET_BYTES};

/// Short runs: these benches are for orientation, and CI counts instructions instead.
fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("decode_64_cells", |b| {
        b.iter_batched_ref(
            fixtures::decode_input,
            |input| black_box(fixtures::run_decode(input)),
            BatchSize::SmallInput,
        )
    });
    let mut enc = fixtures::encode_input();
    g.bench_function("encode_64_cells", |b| {
        b.iter(|| black_box(fixtures::run_encode(&mut enc)))
    });
    g.finish();
}

fn crypto(c: &mut Criterion) {
    let mut g = c.benchmark_group("crypto");
    g.throughput(Throughput::Elements(BATCH as u64));
    // Stateful (the keystream runs on), but every body costs the same: no setup per batch.
    let mut hop = fixtures::hop_forward_input();
    g.bench_function("hop_forward_64_cells", |b| {
        b.iter(|| black_box(fixtures::run_hop_forward(&mut hop)))
    });
    // Recognizing needs cells sealed in order for a fresh layer: new input per batch.
    g.bench_function("hop_recognize_64_cells", |b| {
        b.iter_batched_ref(
            fixtures::hop_recognize_input,
            |input| {
                let n = fixtures::run_hop_recognize(input);
                assert_eq!(n, BATCH);
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    let mut client = fixtures::client_input();
    g.bench_function("client_3hop_encrypt_64_cells", |b| {
        b.iter(|| black_box(fixtures::run_client_encrypt(&mut client)))
    });
    g.throughput(Throughput::Elements(1));
    let ntor = fixtures::ntor_input();
    g.bench_function("ntor_client_server_handshake", |b| {
        b.iter(|| black_box(fixtures::run_ntor(&ntor)))
    });
    g.finish();
}

fn relay(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut middle = fixtures::middle_input();
    g.bench_function("middle_forward_64_cells", |b| {
        b.iter(|| black_box(fixtures::run_middle(&mut middle)))
    });
    g.throughput(Throughput::Bytes(NET_BYTES));
    g.sample_size(10);
    g.bench_function("harness_3hop_download_1mib", |b| {
        b.iter_batched_ref(
            fixtures::net_input,
            |input| black_box(fixtures::run_net(input)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn sched(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched");
    g.throughput(Throughput::Elements(pure_fixtures::PICKS as u64));
    let mut mux = pure_fixtures::mux_input(1000);
    g.bench_function("ewma_pick_64_of_1k_circuits", |b| {
        b.iter(|| black_box(pure_fixtures::run_mux(&mut mux)))
    });
    for (label, channels) in [
        ("kist_run_1k_circuits", 100),
        ("kist_run_10k_circuits", 1000),
    ] {
        let mut run = pure_fixtures::kist_input(channels);
        g.throughput(Throughput::Elements(run.cells_per_run()));
        g.bench_function(label, |b| {
            b.iter(|| black_box(pure_fixtures::run_kist(&mut run)))
        });
    }
    // Same cells per run as KIST: the CPU KIST costs over Vanilla at equal load.
    for (label, channels) in [
        ("vanilla_run_1k_circuits", 100),
        ("vanilla_run_10k_circuits", 1000),
    ] {
        let mut run = pure_fixtures::vanilla_input(channels);
        g.throughput(Throughput::Elements(run.cells_per_run()));
        g.bench_function(label, |b| {
            b.iter(|| black_box(pure_fixtures::run_sched(&mut run)))
        });
    }
    g.finish();
}

fn pathsel(c: &mut Criterion) {
    let mut g = c.benchmark_group("pathsel");
    let mut cbt = pure_fixtures::cbt_input();
    g.bench_function("cbt_fit_1000_samples", |b| {
        b.iter(|| black_box(pure_fixtures::run_cbt_fit(&mut cbt)))
    });
    let mut path = pure_fixtures::path_input();
    g.throughput(Throughput::Elements(pure_fixtures::PICKS as u64));
    g.bench_function("path_pick_64_of_7000_relays", |b| {
        b.iter(|| black_box(pure_fixtures::run_path_pick(&mut path)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = wire, crypto, relay, sched, pathsel
}
criterion_main!(benches);
