//! Tor's AES-128-CTR (tor-spec 0.3: the whole 16-byte block is a big-endian counter starting
//! at zero), applied one 509-byte relay body at a time at a given keystream position.
//!
//! A direction's state is its key schedule plus a byte position: the part of the last block a
//! body does not use is recomputed by the next body rather than stored. On CPUs with AES
//! instructions the work is `sys::aes_ctr` (counter blocks made in registers, VAES where
//! present); elsewhere the 32 or 33 counter blocks a body touches go through the `aes`
//! crate's `encrypt_blocks`. Both store the body's keystream once and XOR it as one flat run. Why not the `ctr` crate: its
//! `Ctr128BE` keeps a partial-block buffer and runs a generic per-block loop (~1,025
//! instructions per body under callgrind). The tests check every path this CPU runs against
//! `ctr::Ctr128BE` at every alignment and against Tor's tor1 vectors (relay_crypto/tests.rs).

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Block;

use super::BODY_LEN;
use crate::sys::aes_ctr::Aes128Ctr;

/// An AES-128 key schedule for CTR (encrypt only: CTR never decrypts a block): on the CPU's
/// AES instructions where it has them (`sys::aes_ctr`, VAES or AES-NI), else the `aes`
/// crate's portable code (boxed: its ~700-byte schedule would size every cache slot; where it
/// is used, a cache miss allocates). Both zeroize their round keys on drop.
pub(super) enum Aes128 {
    Instructions(Aes128Ctr),
    Portable(Box<aes::Aes128Enc>),
}

impl Aes128 {
    /// The fastest schedule this CPU runs.
    pub(super) fn new(key: &[u8; 16]) -> Self {
        match Aes128Ctr::new(key) {
            Some(hw) => Aes128::Instructions(hw),
            None => Aes128::Portable(Box::new(aes::Aes128Enc::new(key.into()))),
        }
    }

    /// Every path this CPU can run, for tests that must cover each: the portable code, and
    /// AES-NI (with SSE, and with AVX2) and VAES where detected.
    #[cfg(test)]
    pub(super) fn every_path(key: &[u8; 16]) -> Vec<Self> {
        use crate::sys::aes_ctr::AesPath;
        let mut all = vec![Aes128::Portable(Box::new(aes::Aes128Enc::new(key.into())))];
        for path in [AesPath::NarrowSse, AesPath::Narrow] {
            all.extend(Aes128Ctr::with_path(key, path).map(Aes128::Instructions));
        }
        all.extend(
            Aes128Ctr::with_path(key, crate::sys::aes_ctr::AesPath::Fastest)
                .filter(Aes128Ctr::is_wide)
                .map(Aes128::Instructions),
        );
        all
    }
}

/// Blocks a body can touch: 509 bytes starting anywhere inside a block (32 + 1).
const MAX_BLOCKS: usize = BODY_LEN / 16 + 2;

/// XORs the keystream bytes `pos .. pos + 509` into `body`. `inline(always)`: with `inline`
/// it stayed a call of its own per body, two dispatches deep (15 instructions per forwarded
/// cell under callgrind, benches/BASELINE.md session 16).
#[inline(always)]
pub(super) fn apply(cipher: &Aes128, pos: u64, body: &mut [u8; BODY_LEN]) {
    match cipher {
        Aes128::Instructions(hw) => hw.apply(pos, body),
        Aes128::Portable(soft) => apply_portable(soft, pos, body),
    }
}

/// [`apply`] out of place: writes `src` XOR the keystream into `body`, the copy and the
/// cipher in one pass on AES instructions (the portable code copies, then XORs).
#[inline(always)]
pub(super) fn apply_from(
    cipher: &Aes128,
    pos: u64,
    src: &[u8; BODY_LEN],
    body: &mut [u8; BODY_LEN],
) {
    match cipher {
        Aes128::Instructions(hw) => hw.apply_from(pos, src, body),
        Aes128::Portable(soft) => {
            *body = *src;
            apply_portable(soft, pos, body)
        }
    }
}

/// [`apply`] through the `aes` crate's block interface.
fn apply_portable(cipher: &aes::Aes128Enc, pos: u64, body: &mut [u8; BODY_LEN]) {
    let first = u128::from(pos / 16);
    let skip = (pos % 16) as usize;
    let blocks = (skip + BODY_LEN).div_ceil(16);
    let mut ks: [Block; MAX_BLOCKS] =
        std::array::from_fn(|i| Block::from((first + i as u128).to_be_bytes()));
    cipher.encrypt_blocks(&mut ks[..blocks]);
    // One flat run of keystream bytes, so that the XOR is a single loop the compiler
    // vectorizes whatever the alignment.
    let mut flat = [0u8; MAX_BLOCKS * 16];
    for (dst, src) in flat.chunks_exact_mut(16).zip(&ks[..blocks]) {
        let src: &[u8; 16] = src.as_ref();
        dst.copy_from_slice(src);
    }
    for (b, k) in body.iter_mut().zip(&flat[skip..]) {
        *b ^= k;
    }
}

#[cfg(test)]
mod tests {
    use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// The same bytes as the `ctr` crate's big-endian 128-bit counter mode (zero IV), for a
    /// body starting at every offset inside a block and at positions past 2^32 blocks (the
    /// counter carries out of its low 32 bits), in place and out of place, on every path.
    #[test]
    fn matches_ctr_crate_at_every_alignment() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let key: [u8; 16] = rng.random();
        let paths = Aes128::every_path(&key);
        let block_starts = [0u64, 1, 31, (1 << 32) - 1, u64::MAX / 32];
        for start in block_starts {
            for skip in 0..16u64 {
                let pos = start * 16 + skip;
                let mut plain = [0u8; BODY_LEN];
                rng.fill(&mut plain[..]);
                let mut want = plain;
                let mut reference =
                    ctr::Ctr128BE::<aes::Aes128Enc>::new(&key.into(), &Default::default());
                reference.seek(pos);
                reference.apply_keystream(&mut want);
                for (n, cipher) in paths.iter().enumerate() {
                    let mut body = plain;
                    apply(cipher, pos, &mut body);
                    assert_eq!(body, want, "position {pos}, path {n}");
                    let mut slot = [0xa5; BODY_LEN];
                    apply_from(cipher, pos, &plain, &mut slot);
                    assert_eq!(slot, want, "out of place: position {pos}, path {n}");
                }
            }
        }
    }

    /// Consecutive bodies continue one keystream: applying at 0, 509, 1018, ... equals one
    /// `ctr` stream over all of them.
    #[test]
    fn consecutive_bodies_continue_the_stream() {
        let key = [7u8; 16];
        for (path, cipher) in Aes128::every_path(&key).iter().enumerate() {
            let mut reference =
                ctr::Ctr128BE::<aes::Aes128Enc>::new(&key.into(), &Default::default());
            for n in 0..40u64 {
                let mut body = [n as u8; BODY_LEN];
                let mut want = body;
                reference.apply_keystream(&mut want);
                apply(cipher, n * BODY_LEN as u64, &mut body);
                assert_eq!(body, want, "body {n}, path {path}");
            }
        }
    }
}
