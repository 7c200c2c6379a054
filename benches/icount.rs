//! Instruction counts of kistrel's hot paths under valgrind (callgrind), with Gungraun:
//! repeatable on a shared, noisy machine where wall time is not. Run it through
//! `benches/check-icount.sh`, which installs the matching runner, compares every count with
//! `benches/baseline/icount.txt` and fails on a regression (see benches/README.md).
//!
//! The pure crates' benches (scheduler, path selection) are in `icount_pure.rs`, a binary of
//! their own: in one binary with these, adding an engine bench moved Vanilla's count by 1.1%
//! with no scheduler change (code generation of the shared binary; benches/BASELINE.md).
//!
//! Every bench takes its input from a fixture (setup is not counted) and returns it (so
//! dropping it is not counted either); the counted part is exactly the `run_*` call.

use std::hint::black_box;

use gungraun::{library_benchmark, library_benchmark_group, main};

mod fixtures;

use fixtures::{
    ClientInput, DecodeInput, EncodeInput, ExitInput, HopInput, MiddleInput, NetInput, NtorInput,
    TlsInput,
};

#[library_benchmark]
#[bench::cells_64(fixtures::decode_input())]
fn wire_decode(mut input: DecodeInput) -> DecodeInput {
    black_box(fixtures::run_decode(&mut input));
    input
}

#[library_benchmark]
#[bench::cells_64(fixtures::encode_input())]
fn wire_encode(mut input: EncodeInput) -> EncodeInput {
    black_box(fixtures::run_encode(&mut input));
    input
}

#[library_benchmark]
#[bench::cells_64(fixtures::hop_forward_input())]
fn crypto_hop_forward(mut input: HopInput) -> HopInput {
    black_box(fixtures::run_hop_forward(&mut input));
    input
}

#[library_benchmark]
#[bench::cells_64(fixtures::hop_recognize_input())]
fn crypto_hop_recognize(mut input: HopInput) -> HopInput {
    let n = fixtures::run_hop_recognize(&mut input);
    assert_eq!(n, fixtures::BATCH, "every sealed cell is recognized");
    input
}

#[library_benchmark]
#[bench::cells_64(fixtures::client_input())]
fn crypto_client_3hop(mut input: ClientInput) -> ClientInput {
    black_box(fixtures::run_client_encrypt(&mut input));
    input
}

#[library_benchmark]
#[bench::handshake(fixtures::ntor_input())]
fn ntor(input: NtorInput) -> NtorInput {
    black_box(fixtures::run_ntor(&input));
    input
}

#[library_benchmark]
#[bench::cells_64(fixtures::middle_input())]
fn relay_middle_forward(mut input: MiddleInput) -> MiddleInput {
    black_box(fixtures::run_middle(&mut input));
    input
}

#[library_benchmark]
#[bench::cells_64(fixtures::exit_input())]
fn relay_exit_package(mut input: ExitInput) -> ExitInput {
    black_box(fixtures::run_exit(&mut input));
    input
}

#[library_benchmark]
#[bench::download_1mib(fixtures::net_input())]
fn harness_3hop(mut input: NetInput) -> NetInput {
    black_box(fixtures::run_net(&mut input));
    input
}

// TLS on a link: a batch of cells sealed into records in the send buffer, then opened in
// place (what TLS adds per cell batch on each side of a link).
#[library_benchmark]
#[bench::cells_64(fixtures::tls_input())]
fn tls_records(mut input: TlsInput) -> TlsInput {
    let n = fixtures::run_tls_records(&mut input);
    assert_eq!(
        n,
        fixtures::BATCH * kistrel_engine::wire::CELL_LEN,
        "every cell delivered"
    );
    input
}

library_benchmark_group!(
    name = engine;
    benchmarks = wire_decode, wire_encode, crypto_hop_forward, crypto_hop_recognize,
        crypto_client_3hop, ntor, relay_middle_forward, relay_exit_package, harness_3hop,
        tls_records
);

main!(library_benchmark_groups = engine);
