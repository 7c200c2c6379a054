//! AES-128-CTR and SHA-1 over 509-byte relay bodies, one implementation per run:
//!
//! ```text
//! cargo build --release && target/release/crypto-impls {rc-ctr|rc-ctr-lazy|awslc-ctr|rc-sha1|awslc-sha1|ring-sha1|sizes} CELLS
//! ```
//!
//! Prints wall time per cell and per GiB; for instructions per cell run it under
//! `valgrind --tool=callgrind` with 1 and 1001 cells and divide the difference by 1000.
//! `rc-ctr-lazy` expands the key and seeks for every cell (the cost of a CipherCache miss).

use std::hint::black_box;
use std::time::Instant;

use aes::cipher::{KeyIvInit, StreamCipher};
use sha1::Digest;

const BODY: usize = 509;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args[1].as_str();
    let cells: usize = args[2].parse().unwrap();
    let key = [7u8; 16];
    let mut body = [0x5au8; BODY];
    let t0 = Instant::now();
    match which {
        "rc-ctr" => {
            let mut c = ctr::Ctr128BE::<aes::Aes128Enc>::new(&key.into(), &Default::default());
            for _ in 0..cells {
                c.apply_keystream(black_box(&mut body));
            }
        }
        "rc-ctr-lazy" => {
            use aes::cipher::StreamCipherSeek;
            let mut pos: u64 = 0;
            for _ in 0..cells {
                let mut c = ctr::Ctr128BE::<aes::Aes128Enc>::new(
                    black_box(&key).into(),
                    &Default::default(),
                );
                c.seek(pos);
                c.apply_keystream(black_box(&mut body));
                pos += BODY as u64;
            }
        }
        "awslc-ctr" => {
            use aws_lc_rs::cipher::*;
            let k = UnboundCipherKey::new(&AES_128, &key).unwrap();
            let ctx = EncryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from([0u8; 16]));
            let mut c = StreamingEncryptingKey::less_safe_ctr(k, ctx).unwrap();
            let mut out = [0u8; BODY + 16];
            for _ in 0..cells {
                let n = c
                    .less_safe_update(black_box(&body), &mut out)
                    .unwrap()
                    .written()
                    .len();
                black_box(&out[..n]);
            }
        }
        "rc-sha1" => {
            let mut d = sha1::Sha1::new();
            for _ in 0..cells {
                d.update(black_box(&body));
            }
            black_box(d.finalize());
        }
        "awslc-sha1" => {
            let mut d =
                aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
            for _ in 0..cells {
                d.update(black_box(&body));
            }
            black_box(d.finish());
        }
        "ring-sha1" => {
            let mut d = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
            for _ in 0..cells {
                d.update(black_box(&body));
            }
            black_box(d.finish());
        }
        "sizes" => {
            println!(
                "rc Ctr128BE<Aes128Enc> {}",
                std::mem::size_of::<ctr::Ctr128BE<aes::Aes128Enc>>()
            );
            println!("rc Sha1 {}", std::mem::size_of::<sha1::Sha1>());
            println!(
                "awslc StreamingEncryptingKey {} (+ heap EVP_CIPHER_CTX)",
                std::mem::size_of::<aws_lc_rs::cipher::StreamingEncryptingKey>()
            );
            println!(
                "awslc digest::Context {}",
                std::mem::size_of::<aws_lc_rs::digest::Context>()
            );
            println!(
                "ring digest::Context {}",
                std::mem::size_of::<ring::digest::Context>()
            );
            return;
        }
        _ => panic!("unknown"),
    }
    let dt = t0.elapsed();
    let per_cell = dt.as_secs_f64() / cells as f64;
    println!(
        "{which}: {:.1} ns/cell, {:.3} s/GiB",
        per_cell * 1e9,
        per_cell * (1u64 << 30) as f64 / BODY as f64
    );
}
