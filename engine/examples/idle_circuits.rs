//! Resident memory per idle circuit: opens N circuits (CREATE_FAST) on one relay over one
//! channel, drains the replies, and reports the growth of this process's RSS per circuit.
//!
//! `cargo run --release -p kistrel-engine --example idle_circuits -- 100000`

use rand::SeedableRng;
use rand_chacha::{ChaCha12Rng, ChaCha8Rng};

use kistrel_engine::crypto::fast;
use kistrel_engine::crypto::ntor::NtorKeypair;
use kistrel_engine::relay::{Relay, RelayConfig, RelayKeys};
use kistrel_engine::time::Instant;
use kistrel_engine::wire::{Cell, ChanCmd, CreateFast};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut krng = ChaCha12Rng::seed_from_u64(1);
    let keys = RelayKeys {
        identity: [1; 20],
        ntor: NtorKeypair::generate(&mut krng),
    };
    let cfg = RelayConfig {
        keys: Some(keys),
        // One peer opens every circuit here: no per-peer creation limit.
        circuit_creation_limit: None,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(cfg, ChaCha12Rng::seed_from_u64(2));
    let now = Instant::ZERO;
    let chan = relay.accept_channel(now, "10.0.0.1:1".parse().expect("addr"));
    let hello = kistrel_engine::harness::initiator_hello();
    relay.handle_recv(now, chan, &hello);
    let mut out = Vec::new();
    kistrel_engine::harness::transmit(&mut relay, now, chan, &mut out, usize::MAX);

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let before = rss_bytes();
    let mut batch = Vec::with_capacity(514 * 1024);
    for i in 0..n {
        let (_, x) = fast::client_create(&mut rng);
        let mut cell = Cell::new(0x8000_0000 | (i + 1), ChanCmd::CREATE_FAST);
        CreateFast { x }.emit(&mut cell.body).expect("create_fast");
        cell.append_to(&mut batch);
        if batch.len() >= 514 * 1024 || i + 1 == n {
            relay.handle_recv(now, chan, &batch);
            batch.clear();
            out.clear();
            kistrel_engine::harness::transmit(&mut relay, now, chan, &mut out, usize::MAX);
        }
    }
    let after = rss_bytes();
    assert_eq!(
        relay.circuit_count(),
        n as usize,
        "{:?}",
        relay.last_rejection()
    );
    println!(
        "idle circuits: {n}; RSS {} -> {} MiB; {:.0} bytes per circuit",
        before >> 20,
        after >> 20,
        (after.saturating_sub(before)) as f64 / f64::from(n)
    );
}
