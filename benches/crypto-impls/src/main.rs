//! AES-128-CTR and SHA-1 over 509-byte relay bodies, one implementation per run:
//!
//! ```text
//! cargo build --release && target/release/crypto-impls {rc-ctr|rc-ctr-lazy|kistrel-ctr|awslc-ctr|awslc-ctr-oneshot|rc-sha1|awslc-sha1|ring-sha1|sizes} CELLS
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
        "awslc-ctr-oneshot" => awslc_ctr_oneshot(&key, &mut body, cells),
        "kistrel-ctr" => kistrel_ctr(&key, &mut body, cells),
        "kistrel-ctr-09" => kistrel_ctr_09(&key, &mut body, cells),
        "shani1" => return shani_n::<1>(cells),
        "shani2" => return shani_n::<2>(cells),
        "shani3" => return shani_n::<3>(cells),
        "shani4" => return shani_n::<4>(cells),
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

/// aws-lc's one-shot CTR (AES_ctr128_encrypt, in place) from a block-aligned start: the head
/// of a body that starts inside a block comes from one more one-block call at the previous
/// counter.
fn awslc_ctr_oneshot(key: &[u8; 16], body: &mut [u8; BODY], cells: usize) {
    use aws_lc_rs::cipher::*;
    let k = EncryptingKey::ctr(UnboundCipherKey::new(&AES_128, key).unwrap()).unwrap();
    let mut pos: u64 = 0;
    for _ in 0..cells {
        let b = black_box(&mut *body);
        let block = u128::from(pos / 16);
        let skip = (pos % 16) as usize;
        let head = (16 - skip) % 16;
        if head > 0 {
            let mut ks = [0u8; 16];
            let iv = aws_lc_rs::iv::FixedLength::from(block.to_be_bytes());
            k.less_safe_encrypt(&mut ks, EncryptionContext::Iv128(iv))
                .unwrap();
            for (x, y) in b[..head].iter_mut().zip(&ks[skip..]) {
                *x ^= y;
            }
        }
        let next = block + u128::from(head > 0);
        let iv = aws_lc_rs::iv::FixedLength::from(next.to_be_bytes());
        k.less_safe_encrypt(&mut b[head..], EncryptionContext::Iv128(iv))
            .unwrap();
        pos += BODY as u64;
    }
}

/// The shape of the engine's crypto/relay_crypto/keystream.rs: the counter blocks of a body,
/// one encrypt_blocks call, the XOR as one flat run.
fn kistrel_ctr(key: &[u8; 16], body: &mut [u8; BODY], cells: usize) {
    use aes::cipher::{BlockEncrypt, KeyInit};
    let c = aes::Aes128Enc::new(key.into());
    let mut pos: u64 = 0;
    for _ in 0..cells {
        let b = black_box(&mut *body);
        let first = u128::from(pos / 16);
        let skip = (pos % 16) as usize;
        let blocks = (skip + BODY).div_ceil(16);
        let mut ks: [aes::Block; 33] =
            std::array::from_fn(|i| aes::Block::from((first + i as u128).to_be_bytes()));
        c.encrypt_blocks(&mut ks[..blocks]);
        let mut flat = [0u8; 33 * 16];
        for (d, s) in flat.chunks_exact_mut(16).zip(&ks[..blocks]) {
            d.copy_from_slice(s);
        }
        for (x, y) in b.iter_mut().zip(&flat[skip..]) {
            *x ^= y;
        }
        pos += BODY as u64;
    }
}

/// `kistrel_ctr` over `aes` 0.9, whose autodetection adds VAES-256/512 backends.
fn kistrel_ctr_09(key: &[u8; 16], body: &mut [u8; BODY], cells: usize) {
    use aes09::cipher::{BlockCipherEncrypt, KeyInit};
    let c = aes09::Aes128Enc::new(key.into());
    let mut pos: u64 = 0;
    for _ in 0..cells {
        let b = black_box(&mut *body);
        let first = u128::from(pos / 16);
        let skip = (pos % 16) as usize;
        let blocks = (skip + BODY).div_ceil(16);
        let mut ks: [aes09::Block; 33] =
            std::array::from_fn(|i| aes09::Block::from((first + i as u128).to_be_bytes()));
        c.encrypt_blocks(&mut ks[..blocks]);
        let mut flat = [0u8; 33 * 16];
        for (d, s) in flat.chunks_exact_mut(16).zip(&ks[..blocks]) {
            d.copy_from_slice(s);
        }
        for (x, y) in b.iter_mut().zip(&flat[skip..]) {
            *x ^= y;
        }
        pos += BODY as u64;
    }
}

/// SHA-1 compression with SHA-NI over `N` independent streams at once (one 64-byte block of
/// each per step), to see whether interleaving hides sha1rnds4's latency.
mod shani {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn quad<const F: i32, const N: usize>(
        abcd: &mut [__m128i; N],
        prev: &mut [__m128i; N],
        msg: &[__m128i; N],
        first: Option<&[__m128i; N]>,
    ) {
        for l in 0..N {
            let e = match first {
                Some(e0) => _mm_add_epi32(e0[l], msg[l]),
                None => _mm_sha1nexte_epu32(prev[l], msg[l]),
            };
            prev[l] = abcd[l];
            abcd[l] = _mm_sha1rnds4_epu32::<F>(abcd[l], e);
        }
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress<const N: usize>(states: &mut [[u32; 5]; N], blocks: [&[u8]; N]) {
        let mask = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
        let mut abcd: [__m128i; N] = std::array::from_fn(|l| {
            _mm_shuffle_epi32::<0x1B>(_mm_loadu_si128(states[l].as_ptr().cast()))
        });
        let mut e0: [__m128i; N] = std::array::from_fn(|l| _mm_set_epi32(states[l][4] as i32, 0, 0, 0));
        let nblocks = blocks[0].len() / 64;
        for b in 0..nblocks {
            let abcd_save = abcd;
            let e0_save = e0;
            let mut w: [[__m128i; N]; 4] = std::array::from_fn(|i| {
                std::array::from_fn(|l| {
                    _mm_shuffle_epi8(_mm_loadu_si128(blocks[l][b * 64 + i * 16..].as_ptr().cast()), mask)
                })
            });
            let mut prev = abcd;
            for r in 0..20 {
                if r >= 4 {
                    let mut next = w[0];
                    for l in 0..N {
                        let x = _mm_xor_si128(_mm_sha1msg1_epu32(w[r % 4][l], w[(r + 1) % 4][l]), w[(r + 2) % 4][l]);
                        next[l] = _mm_sha1msg2_epu32(x, w[(r + 3) % 4][l]);
                    }
                    w[r % 4] = next;
                }
                let m = w[r % 4];
                let first = if r == 0 { Some(&e0) } else { None };
                match r / 5 {
                    0 => quad::<0, N>(&mut abcd, &mut prev, &m, first),
                    1 => quad::<1, N>(&mut abcd, &mut prev, &m, first),
                    2 => quad::<2, N>(&mut abcd, &mut prev, &m, first),
                    _ => quad::<3, N>(&mut abcd, &mut prev, &m, first),
                }
            }
            for l in 0..N {
                e0[l] = _mm_sha1nexte_epu32(prev[l], e0_save[l]);
                abcd[l] = _mm_add_epi32(abcd[l], abcd_save[l]);
            }
        }
        for l in 0..N {
            let mut out = [0u32; 4];
            _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_shuffle_epi32::<0x1B>(abcd[l]));
            states[l][..4].copy_from_slice(&out);
            states[l][4] = _mm_extract_epi32::<3>(e0[l]) as u32;
        }
    }
}

fn shani_n<const N: usize>(cells: usize) {
    // Correctness first: against the sha1 crate's compression on pseudo-random blocks.
    let data: Vec<u8> = (0..512u32 * N as u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let init = [0x67452301u32, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut mine = [init; N];
    let blocks: [&[u8]; N] = std::array::from_fn(|l| &data[l * 512..(l + 1) * 512]);
    unsafe { shani::compress::<N>(&mut mine, blocks) };
    for l in 0..N {
        let mut theirs = init;
        let gb: Vec<_> = blocks[l].chunks(64).map(|c| *sha1::digest::generic_array::GenericArray::from_slice(c)).collect();
        sha1::compress(&mut theirs, &gb);
        assert_eq!(mine[l], theirs, "lane {l}");
    }
    let t0 = Instant::now();
    let mut st = [init; N];
    for _ in 0..cells / N {
        unsafe { shani::compress::<N>(black_box(&mut st), black_box(blocks)) };
    }
    black_box(st);
    let ns = t0.elapsed().as_nanos() as f64 / (cells / N * N) as f64;
    println!("shani x{N}: {ns:.1} ns per 512-byte cell");
}
