//! AES-128-CTR and SHA-1 over 509-byte relay bodies, one implementation per run:
//!
//! ```text
//! cargo build --release && target/release/crypto-impls {rc-ctr|rc-ctr-lazy|kistrel-ctr|kistrel-ctr-09|kistrel-aesni|kistrel-aesni-sse|kistrel-vaes|big-aesni|big-vaes|awslc-ctr|awslc-ctr-oneshot|rc-sha1|rc-sha1-seal|rc-sha1-check|stream-seal|rc-sha1-one|rc-sha1-two|awslc-sha1|awslc-gcm128|awslc-gcm256|ring-sha1|copy-sys|copy-libc|forward-copy-then-aes|forward-aes-from|exit-build-only|exit-build-then-seal|exit-build-ahead|sizes} CELLS
//! ```
//!
//! Prints wall time per cell and per GiB; for instructions per cell run it under
//! `valgrind --tool=callgrind` with 1 and 1001 cells and divide the difference by 1000.
//! `rc-ctr-lazy` expands the key and seeks for every cell (the cost of a CipherCache miss).
//! `rc-sha1-one` / `rc-sha1-two`: the `sha1` crate's block function over 8 blocks per body,
//! one running state, or two states fed block by block in turn (two circuits' digests in
//! step: the CPU overlaps the two dependency chains; ns per body is per body of either).
//! `rc-sha1-seal` / `rc-sha1-check`: the running digest finalized per body on the crate's
//! hasher, as the engine did it before session 20 (a clone of the hasher, then padding);
//! `stream-seal` the engine's `Sha1Stream` (crypto/sha1_stream.rs, included by path): only the
//! partial block copied for the padding (checked against the crate's digest first; it
//! replaced session 19's `lean-seal`, which called the block function once per block).
//! `forward-copy-then-aes` / `forward-aes-from`: a middle's received body into its slot with
//! AES-CTR, as a copy then AES in place or as one pass (`apply_from`, session 20). `awslc-gcm128` / `awslc-gcm256`: TLS records
//! of 16 KiB sealed in place (AES-GCM, tag apart), reported per 509-byte body of record.
//! `exit-build-only` / `exit-build-then-seal` / `exit-build-ahead`: an exit's DATA cell built
//! from stream bytes (data copied in, header fields set), then sealed and enciphered (session
//! 21: building one cell ahead so the digest never reads bytes still in the store buffer).
//! `copy-sys` / `copy-libc`: a middle relay's two copies per cell (a 509-byte body from a
//! receive buffer into a pool slot, the 514-byte slot onto a send buffer), with the engine's
//! `sys::copy` and with `copy_from_slice` / `extend_from_slice` (libc's memcpy).

use std::hint::black_box;
use std::time::Instant;

use aes::cipher::{KeyIvInit, StreamCipher};
use sha1::Digest;

const BODY: usize = 509;

/// The engine's own AES-CTR on AES instructions, compiled here from its source.
#[path = "../../../engine/src/sys/aes_ctr.rs"]
#[allow(dead_code)] // the engine's whole API; the benches use part of it
mod aes_ctr;

/// The engine's fixed-size cell copies, compiled here from its source.
#[path = "../../../engine/src/sys/copy.rs"]
mod copy;
// The engine's running SHA-1 (session 20) and the block-function cast it uses, by path as
// above.
#[path = "../../../engine/src/sys/sha1_blocks.rs"]
pub mod sha1_blocks;
mod sys {
    pub use super::sha1_blocks;
}
#[path = "../../../engine/src/crypto/sha1_stream.rs"]
#[allow(dead_code)] // `with_prefix` and `Zeroize` are the engine's, unused here
mod sha1_stream;

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
        "big-aesni" => kistrel_sys_long(&key, cells, aes_ctr::AesPath::Narrow),
        "big-vaes" => kistrel_sys_long(&key, cells, aes_ctr::AesPath::Fastest),
        "kistrel-aesni" => kistrel_sys(&key, &mut body, cells, aes_ctr::AesPath::Narrow),
        "kistrel-aesni-sse" => kistrel_sys(&key, &mut body, cells, aes_ctr::AesPath::NarrowSse),
        "kistrel-vaes" => kistrel_sys(&key, &mut body, cells, aes_ctr::AesPath::Fastest),
        "rc-sha1" => {
            let mut d = sha1::Sha1::new();
            for _ in 0..cells {
                d.update(black_box(&body));
            }
            black_box(d.finalize());
        }
        "rc-sha1-seal" => sha1_seal(&body, cells),
        "rc-sha1-check" => sha1_check(&body, cells),
        "stream-seal" => stream_seal(&body, cells),
        "awslc-gcm128" => gcm_records(&aws_lc_rs::aead::AES_128_GCM, cells),
        "awslc-gcm256" => gcm_records(&aws_lc_rs::aead::AES_256_GCM, cells),
        "rc-sha1-one" => sha1_blocks(cells, 1),
        "rc-sha1-two" => sha1_blocks(cells, 2),
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
        "copy-sys" => cell_copies(cells, true),
        "copy-libc" => cell_copies(cells, false),
        "forward-copy-then-aes" => forward_cells(&key, cells, false),
        "forward-aes-from" => forward_cells(&key, cells, true),
        "exit-build-only" => exit_cells(&key, cells, ExitWork::BodyOnly),
        "exit-build-then-seal" => exit_cells(&key, cells, ExitWork::SealAfterBuild),
        "exit-build-ahead" => exit_cells(&key, cells, ExitWork::SealOneBehind),
        "sizes" => return sizes(),
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

/// `cells` bodies of 8 SHA-1 blocks each through `lanes` running states, the states taking
/// one block each in turn.
/// As the engine's `RunningDigest::seal`: the running digest finalized per body.
fn sha1_seal(body: &[u8; BODY], cells: usize) {
    let mut d = sha1::Sha1::new();
    let mut last = [0u8; 20];
    for _ in 0..cells {
        d.update(black_box(body));
        last = d.clone().finalize().into();
        black_box(&last);
    }
    black_box(last);
}

/// As the engine's `RunningDigest::check` on a cell addressed to this hop.
fn sha1_check(body: &[u8; BODY], cells: usize) {
    let mut d = sha1::Sha1::new();
    let mut last = [0u8; 20];
    for _ in 0..cells {
        let b = black_box(body);
        let mut candidate = d.clone();
        candidate.update(&b[..5]);
        candidate.update([0u8; 4]);
        candidate.update(&b[9..]);
        last = candidate.clone().finalize().into();
        black_box(&last);
        d = candidate;
    }
    black_box(last);
}

/// The engine's `Sha1Stream` (crypto/sha1_stream.rs) finished per body, as
/// `RunningDigest::seal` does it since session 20; checked against the crate's digest first.
fn stream_seal(body: &[u8; BODY], cells: usize) {
    let mut check = (sha1_stream::Sha1Stream::new(), sha1::Sha1::new());
    for _ in 0..3 {
        check.0.update(body);
        check.1.update(body);
        assert_eq!(
            check.0.finish(),
            <[u8; 20]>::from(check.1.clone().finalize())
        );
    }
    let mut d = sha1_stream::Sha1Stream::new();
    let mut last = [0u8; 20];
    for _ in 0..cells {
        d.update(black_box(body));
        last = d.finish();
        black_box(&last);
    }
    black_box(last);
}

/// TLS records as a link seals them: 16 KiB in place, tag apart; `cells` counts bodies, so
/// the figure per body compares with the relay crypto's.
fn gcm_records(alg: &'static aws_lc_rs::aead::Algorithm, cells: usize) {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(UnboundKey::new(alg, &vec![7u8; alg.key_len()]).unwrap());
    let mut rec = vec![0x5au8; 1 << 14];
    let records = cells * BODY / rec.len();
    for i in 0..records {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([23u8, 3, 3, 64, 0]),
                black_box(&mut rec),
            )
            .unwrap();
        black_box(&tag);
    }
}

fn sha1_blocks(cells: usize, lanes: usize) {
    let blocks: Vec<sha1::digest::generic_array::GenericArray<u8, _>> =
        (0..8u8).map(|i| [0x5a ^ i; 64].into()).collect();
    let mut states = vec![
        [
            0x6745_2301u32,
            0xEFCD_AB89,
            0x98BA_DCFE,
            0x1032_5476,
            0xC3D2_E1F0
        ];
        lanes
    ];
    for _ in 0..cells / lanes {
        for b in &blocks {
            for s in states.iter_mut() {
                sha1::compress(s, std::slice::from_ref(black_box(b)));
            }
        }
    }
    black_box(states);
}

/// The engine's `sys::aes_ctr` (session 8) on `path`'s instructions, one body per call.
fn kistrel_sys(key: &[u8; 16], body: &mut [u8; BODY], cells: usize, path: aes_ctr::AesPath) {
    let c = sys_cipher(key, path);
    let mut pos: u64 = 0;
    for _ in 0..cells {
        c.apply(pos, black_box(&mut *body));
        pos += BODY as u64;
    }
}

/// `sys::aes_ctr` restricted to `path`, refusing to run a VAES bench on AES-NI.
fn sys_cipher(key: &[u8; 16], path: aes_ctr::AesPath) -> aes_ctr::Aes128Ctr {
    let c = aes_ctr::Aes128Ctr::with_path(key, path).expect("no AES-NI");
    assert_eq!(c.is_wide(), path == aes_ctr::AesPath::Fastest, "no VAES");
    c
}

/// A middle relay's two copies per cell over 1,024 pool slots and a 32-cell receive buffer:
/// the body into a slot, then the whole slot onto a send buffer drained every 32 cells.
fn cell_copies(cells: usize, sys: bool) {
    middle_cells(cells, sys, |_, src, dst| {
        if sys {
            copy::copy_fixed(dst, src);
        } else {
            dst.copy_from_slice(src);
        }
    });
}

/// A middle relay's work per cell on `sys::aes_ctr`'s fastest path, as [`cell_copies`], with
/// the layer's keystream applied on the way into the slot. `fused`: `apply_from` (the copy
/// and the cipher in one pass, session 20); else `copy_fixed` and `apply` in place, as before.
fn forward_cells(key: &[u8; 16], cells: usize, fused: bool) {
    let c = sys_cipher(key, aes_ctr::AesPath::Fastest);
    middle_cells(cells, true, |i, src, dst| {
        let pos = (i * BODY) as u64;
        if fused {
            c.apply_from(pos, src, dst);
        } else {
            copy::copy_fixed(dst, src);
            c.apply(pos, dst);
        }
    });
}

/// 1,024 pool slots and a 32-cell receive buffer: `into_slot(i, body, slot)` puts cell `i`'s
/// received body into its slot, then the whole slot goes onto a send buffer drained every 32
/// cells (`sys_out`: `sys::copy::extend_fixed`, else `extend_from_slice`).
fn middle_cells(
    cells: usize,
    sys_out: bool,
    mut into_slot: impl FnMut(usize, &[u8; BODY], &mut [u8; BODY]),
) {
    const CELL: usize = 514;
    let rx: Vec<u8> = (0..CELL * 32).map(|i| i as u8).collect();
    let mut slots = vec![[0u8; CELL]; 1024];
    let mut out = Vec::with_capacity(CELL * 32);
    for i in 0..cells {
        let at = (i % 32) * CELL;
        let src: &[u8; BODY] = rx[at + 5..at + CELL].try_into().unwrap();
        let slot = &mut slots[i % 1024];
        let (_, dst) = slot.split_last_chunk_mut::<BODY>().unwrap();
        into_slot(i, black_box(src), dst);
        if sys_out {
            copy::extend_fixed(&mut out, black_box(&*slot));
        } else {
            out.extend_from_slice(black_box(&slot[..]));
        }
        if out.len() == CELL * 32 {
            black_box(&out);
            out.clear();
        }
    }
}

/// What [`exit_cells`] does per cell.
#[derive(Clone, Copy, PartialEq)]
enum ExitWork {
    /// The body built only.
    BodyOnly,
    /// Each body built, then sealed and enciphered, as the engine does it.
    SealAfterBuild,
    /// The body of cell `i + 1` built before cell `i` is sealed, so the digest reads bytes
    /// stored a whole cell earlier (no store waiting to be forwarded to the digest's loads).
    SealOneBehind,
}

/// An exit's work per DATA cell over 1,024 slots: 498 bytes from a 64 KiB stream ring into
/// a slot's body (libc's memcpy, as `emit_relay_cell`), the relay header's fields, then the
/// running digest sealed over the body (`Sha1Stream`) and AES-CTR in place (VAES).
fn exit_cells(key: &[u8; 16], cells: usize, work: ExitWork) {
    const DATA: usize = 498;
    let c = sys_cipher(key, aes_ctr::AesPath::Fastest);
    let ring: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
    let mut slots = vec![[0u8; BODY]; 1024];
    let mut d = sha1_stream::Sha1Stream::new();
    let build = |i: usize, body: &mut [u8; BODY]| {
        let at = (i * DATA) % (65536 - DATA);
        body[11..].copy_from_slice(black_box(&ring[at..at + DATA]));
        body[0] = 2;
        body[1..3].copy_from_slice(&[0, 0]);
        body[3..5].copy_from_slice(&(i as u16).to_be_bytes());
        body[5..9].copy_from_slice(&[0; 4]);
        body[9..11].copy_from_slice(&(DATA as u16).to_be_bytes());
    };
    let mut seal = |i: usize, body: &mut [u8; BODY]| {
        if work == ExitWork::BodyOnly {
            black_box(&*body);
            return;
        }
        body[1..3].fill(0);
        body[5..9].fill(0);
        d.update(&body[..]);
        let last = d.finish();
        body[5..9].copy_from_slice(&last[..4]);
        c.apply((i * BODY) as u64, body);
        black_box(&*body);
    };
    let ahead = work == ExitWork::SealOneBehind;
    if ahead {
        build(0, &mut slots[0]);
    }
    for i in 0..cells {
        if ahead {
            build(i + 1, &mut slots[(i + 1) % 1024]);
        } else {
            build(i, &mut slots[i % 1024]);
        }
        seal(i, &mut slots[i % 1024]);
    }
}

/// Sizes of the implementations' state types.
fn sizes() {
    println!(
        "rc Ctr128BE<Aes128Enc> {}",
        std::mem::size_of::<ctr::Ctr128BE<aes::Aes128Enc>>()
    );
    println!("rc Sha1 {}", std::mem::size_of::<sha1::Sha1>());
    println!(
        "kistrel sys::aes_ctr::Aes128Ctr {}",
        std::mem::size_of::<aes_ctr::Aes128Ctr>()
    );
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
}

/// `sys::aes_ctr` over 128 bodies at a time (one 65,152-byte run per call): its steady rate,
/// without the per-body start and end.
fn kistrel_sys_long(key: &[u8; 16], cells: usize, path: aes_ctr::AesPath) {
    let c = sys_cipher(key, path);
    let mut run = vec![0u8; BODY * 128];
    for i in 0..cells / 128 {
        c.apply(i as u64 * run.len() as u64, black_box(&mut run));
    }
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
/// one encrypt_blocks call, the XOR as one flat run. Written once over an `aes` crate
/// version and its encrypt trait (0.8: `BlockEncrypt`; 0.9: `BlockCipherEncrypt`).
macro_rules! kistrel_ctr_over {
    ($name:ident, $aes:ident, $encrypt:ident) => {
        fn $name(key: &[u8; 16], body: &mut [u8; BODY], cells: usize) {
            use $aes::cipher::{$encrypt, KeyInit};
            let c = $aes::Aes128Enc::new(key.into());
            let mut pos: u64 = 0;
            for _ in 0..cells {
                let b = black_box(&mut *body);
                let first = u128::from(pos / 16);
                let skip = (pos % 16) as usize;
                let blocks = (skip + BODY).div_ceil(16);
                let mut ks: [$aes::Block; 33] =
                    std::array::from_fn(|i| $aes::Block::from((first + i as u128).to_be_bytes()));
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
    };
}

kistrel_ctr_over!(kistrel_ctr, aes, BlockEncrypt);
// `aes` 0.9, whose autodetection adds VAES-256/512 backends.
kistrel_ctr_over!(kistrel_ctr_09, aes09, BlockCipherEncrypt);
