//! Scheduling cost: ns per granted cell for KIST vs Vanilla at equal load (10k active circuits
//! over 1k channels), one small deterministic KIST run (fixed input, no allocation in the
//! measured loop: suits instruction counting), and the per-cell EWMA mux update.
//!
//! `cargo bench -p kistrel-sched --bench sched_cost`

use core::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use kistrel_sched::{
    CellEwma, ChannelSnapshot, CircuitMux, EwmaConfig, Instant, Kist, SchedConfig, Scheduler,
    Vanilla, CELL_WIRE_LEN,
};

#[path = "support/backlogged.rs"]
mod backlogged;
use backlogged::{snap, Backlogged};

const CHANNELS: u32 = 1000;
const CIRCUITS_PER_CHANNEL: u32 = 10;
/// Cells per channel per run: Vanilla's 32 KiB rounded up to whole cells, for equal load.
const CELLS_PER_GRANT: u32 = 64;

fn cfg() -> SchedConfig {
    SchedConfig {
        sock_buf_size_factor: 0.0,
        vanilla_max_write: CELLS_PER_GRANT * CELL_WIRE_LEN,
        ..SchedConfig::default()
    }
}

/// One round as the worker does it: every channel's send completed (writable), then one run.
fn round(
    sched: &mut dyn Scheduler<u32>,
    source: &mut Backlogged,
    snaps: &[ChannelSnapshot<u32>],
    now: Instant,
) -> u64 {
    for ch in 0..CHANNELS {
        sched.channel_writable(now, ch);
    }
    sched.run(now, snaps, source).cells
}

fn setup(sched: &mut dyn Scheduler<u32>, ewma: &EwmaConfig) -> Backlogged {
    let source = Backlogged::new(CHANNELS, CIRCUITS_PER_CHANNEL, ewma);
    for ch in 0..CHANNELS {
        sched.channel_writable(Instant::ZERO, ch);
        sched.channel_has_cells(Instant::ZERO, ch);
    }
    source
}

fn equal_load(c: &mut Criterion) {
    let cells = u64::from(CHANNELS * CELLS_PER_GRANT);
    let mut group = c.benchmark_group("run_10k_circuits_1k_channels");
    group.throughput(Throughput::Elements(cells));
    group.sample_size(20);
    let snaps: Vec<_> = (0..CHANNELS).map(|ch| snap(ch, CELLS_PER_GRANT)).collect();
    for (label, ewma) in [
        ("ewma", EwmaConfig::default()),
        ("round_robin", EwmaConfig::ROUND_ROBIN),
    ] {
        let mut kist = Kist::<u32>::new(&cfg());
        let mut source = setup(&mut kist, &ewma);
        let mut now = Instant::from_millis(1);
        group.bench_function(BenchmarkId::new("kist", label), |b| {
            b.iter(|| {
                now += Duration::from_millis(1);
                let n = round(&mut kist, &mut source, &snaps, now);
                assert_eq!(n, cells);
                black_box(n)
            })
        });
        let mut vanilla = Vanilla::<u32>::new(&cfg());
        let mut source = setup(&mut vanilla, &ewma);
        let mut now = Instant::from_millis(1);
        group.bench_function(BenchmarkId::new("vanilla", label), |b| {
            b.iter(|| {
                now += Duration::from_millis(1);
                let n = round(&mut vanilla, &mut source, &snaps, now);
                assert_eq!(n, cells);
                black_box(n)
            })
        });
    }
    group.finish();
}

/// One KIST run over 100 channels x 10 circuits, 8 cells each (plus the 100 send-completion
/// events before it). Every iteration does the same work on a warmed-up scheduler (buffers
/// and histograms already touched), so it suits instruction counting.
fn one_kist_run(c: &mut Criterion) {
    let snaps: Vec<_> = (0..100).map(|ch| snap(ch, 8)).collect();
    let mut group = c.benchmark_group("kist_one_run");
    group.throughput(Throughput::Elements(800));
    let mut kist = Kist::<u32>::new(&cfg());
    let mut source = Backlogged::new(100, 10, &EwmaConfig::default());
    for ch in 0..100 {
        kist.channel_writable(Instant::ZERO, ch);
        kist.channel_has_cells(Instant::ZERO, ch);
    }
    let mut now = Instant::from_millis(1);
    group.bench_function("100ch_10circ_8cells", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            for ch in 0..100 {
                kist.channel_writable(now, ch);
            }
            let report = kist.run(now, &snaps, &mut source);
            assert_eq!(report.cells, 800);
            black_box(report)
        })
    });
    group.finish();
}

fn mux_note_written(c: &mut Criterion) {
    let mut group = c.benchmark_group("mux_note_written");
    group.throughput(Throughput::Elements(1));
    for circuits in [10u32, 1000] {
        let mut ewma = vec![CellEwma::new(); circuits as usize];
        let mut mux = CircuitMux::new(&EwmaConfig::default());
        for i in 0..circuits {
            mux.activate(Instant::ZERO, i, &mut ewma[i as usize]);
        }
        let mut tick: u64 = 0;
        group.bench_function(BenchmarkId::from_parameter(circuits), |b| {
            b.iter(|| {
                // A new `now` every 64 cells, as in runs of 64 cells.
                tick += 1;
                let now = Instant::from_nanos(1_000_000 + (tick >> 6) * 1_000);
                let head = mux.peek().unwrap_or(0);
                mux.note_written(now, head, &mut ewma[head as usize]);
                black_box(mux.best_priority(now))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, equal_load, one_kist_run, mux_note_written);
criterion_main!(benches);
