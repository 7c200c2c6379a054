//! Each node's tor1 crypto for a 3-hop download, alone in memory: what `three-hop-throughput.sh`
//! would measure per node if the kernel, the runtime and everything else in kistrel cost
//! nothing. It gives a run's CPU-s/GiB a reference taken on the same host at the same hour
//! (the guests this project is measured on change speed by a quarter within a session, and
//! SHA-1 is most of the exit's and the client's CPU).
//!
//! `cargo run --release -p kistrel-engine --example crypto_per_node -- [CELLS]`
//!
//! The engine's own code, in the order a download runs it, over batches of 1,024 DATA cells
//! of 498 bytes taken from a 64 KiB stream ring:
//! - relay3 (the exit): the DATA cell built from the ring (`emit_relay_cell`), then sealed
//!   and enciphered (`RelayLayer::originate_backward`);
//! - relay2 and relay1: the layer added on the way into a slot
//!   (`RelayLayer::encrypt_backward_from`);
//! - client: three layers removed (`ClientLayer::decrypt_backward`), the third one's
//!   digest checked; every cell must be recognized there, or the run fails.
//!
//! Each stage is timed over its whole batch. Prints ns per cell and CPU-s per GiB of stream
//! bytes (2^30 / 498 cells), one `name=value` pair per node.

use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use kistrel_engine::crypto::relay_crypto::{CipherCache, ClientLayer, RelayLayer, BODY_LEN};
use kistrel_engine::crypto::KeyMaterial;
use kistrel_engine::wire::{emit_relay_cell, RelayCmd, StreamId, RELAY_DATA_LEN};

const BATCH: usize = 1024;
const RING: usize = 64 * 1024;

fn keys(seed: u64) -> KeyMaterial {
    let mut bytes = [0u8; kistrel_engine::crypto::KEY_MATERIAL_LEN];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    KeyMaterial::from_bytes(&bytes)
}

/// Runs `f` and adds its wall time to `total`.
fn timed(total: &mut Duration, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    *total += t.elapsed();
}

fn main() {
    let cells: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(400_000);
    let batches = cells.div_ceil(BATCH).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ring = vec![0u8; RING];
    rng.fill_bytes(&mut ring);
    let (k1, k2, k3) = (keys(11), keys(12), keys(13));
    let (mut guard, mut middle, mut exit) = (
        RelayLayer::new(&k1),
        RelayLayer::new(&k2),
        RelayLayer::new(&k3),
    );
    // Each relay is its own process with its own worker's cache.
    let mut caches = [CipherCache::new(), CipherCache::new(), CipherCache::new()];
    let mut client = [
        ClientLayer::new(&k1),
        ClientLayer::new(&k2),
        ClientLayer::new(&k3),
    ];
    let stream = StreamId::new(1);
    let mut at_exit = vec![[0u8; BODY_LEN]; BATCH];
    let mut at_middle = vec![[0u8; BODY_LEN]; BATCH];
    let mut at_guard = vec![[0u8; BODY_LEN]; BATCH];
    let mut spent = [Duration::ZERO; 4];
    let mut offset = 0;
    let mut recognized = 0;
    for _ in 0..batches {
        timed(&mut spent[0], || {
            for body in &mut at_exit {
                if offset + RELAY_DATA_LEN > RING {
                    offset = 0;
                }
                let data = &ring[offset..offset + RELAY_DATA_LEN];
                offset += RELAY_DATA_LEN;
                emit_relay_cell(body, RelayCmd::DATA, stream, data, &mut rng)
                    .expect("a full DATA cell fits");
                exit.originate_backward(&mut caches[2], body);
            }
        });
        timed(&mut spent[1], || {
            for (src, body) in at_exit.iter().zip(&mut at_middle) {
                middle.encrypt_backward_from(&mut caches[1], src, body);
            }
        });
        timed(&mut spent[2], || {
            for (src, body) in at_middle.iter().zip(&mut at_guard) {
                guard.encrypt_backward_from(&mut caches[0], src, body);
            }
        });
        timed(&mut spent[3], || {
            for body in &mut at_guard {
                let [c1, c2, c3] = &mut client;
                let by_hop = [
                    c1.decrypt_backward(body),
                    c2.decrypt_backward(body),
                    c3.decrypt_backward(body),
                ];
                recognized += usize::from(by_hop == [false, false, true]);
            }
        });
    }
    let total = batches * BATCH;
    assert_eq!(
        recognized, total,
        "every cell recognized at the third hop only"
    );
    let cells_per_gib = (1u64 << 30) as f64 / RELAY_DATA_LEN as f64;
    let mut per_cell = String::new();
    let mut per_gib = String::new();
    for (name, d) in ["relay3", "relay2", "relay1", "client"].iter().zip(spent) {
        let ns = d.as_secs_f64() * 1e9 / total as f64;
        per_cell += &format!(" {name}={ns:.1}");
        per_gib += &format!(" {name}={:.3}", ns * 1e-9 * cells_per_gib);
    }
    println!("crypto alone, ns per cell ({total} cells):{per_cell}");
    println!("crypto alone, CPU-s/GiB:{per_gib}");
}
