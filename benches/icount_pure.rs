//! Instruction counts of the pure crates' hot paths (scheduler, path selection) under
//! valgrind (callgrind), with Gungraun; run through `benches/check-icount.sh` with the engine's
//! (`icount.rs`). A binary of its own, so that engine benches added or changed there do not
//! change how the generic scheduler code is compiled here: in one binary, adding an engine
//! bench moved Vanilla's count by 1.1% with no scheduler change (benches/BASELINE.md).
//!
//! Every bench takes its input from a fixture (setup is not counted) and returns it (so
//! dropping it is not counted either); the counted part is exactly the `run_*` call.

use std::hint::black_box;

use gungraun::{library_benchmark, library_benchmark_group, main};

mod pure_fixtures;

use pure_fixtures::{CbtInput, KistInput, MuxInput, PathInput, VanillaInput};

#[library_benchmark]
#[bench::picks_64_of_1k(pure_fixtures::mux_input(1000))]
fn ewma_pick(mut input: MuxInput) -> MuxInput {
    black_box(pure_fixtures::run_mux(&mut input));
    input
}

#[library_benchmark]
#[bench::circuits_1k(pure_fixtures::kist_input(100))]
#[bench::circuits_10k(pure_fixtures::kist_input(1000))]
fn kist_run(mut input: KistInput) -> KistInput {
    black_box(pure_fixtures::run_kist(&mut input));
    input
}

// Vanilla writing the same cells per run as `kist_run` (equal load).
#[library_benchmark]
#[bench::circuits_1k(pure_fixtures::vanilla_input(100))]
#[bench::circuits_10k(pure_fixtures::vanilla_input(1000))]
fn vanilla_run(mut input: VanillaInput) -> VanillaInput {
    black_box(pure_fixtures::run_sched(&mut input));
    input
}

#[library_benchmark]
#[bench::samples_1000(pure_fixtures::cbt_input())]
fn cbt_fit(mut input: CbtInput) -> CbtInput {
    black_box(pure_fixtures::run_cbt_fit(&mut input));
    input
}

#[library_benchmark]
#[bench::picks_64_of_7000(pure_fixtures::path_input())]
fn path_pick(mut input: PathInput) -> PathInput {
    black_box(pure_fixtures::run_path_pick(&mut input));
    input
}

library_benchmark_group!(
    name = pure;
    benchmarks = ewma_pick, kist_run, vanilla_run, cbt_fit, path_pick
);

main!(library_benchmark_groups = pure);
