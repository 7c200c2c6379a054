//! Tor's AES-128-CTR (tor-spec 0.3: the whole 16-byte block is a big-endian counter starting
//! at zero), applied one 509-byte relay body at a time at a given keystream position.
//!
//! Why not the `ctr` crate: its `Ctr128BE` keeps a partial-block buffer and generates and
//! XORs its keystream through a generic per-block loop, ~1,025 instructions per body under
//! callgrind. Here the 32 or 33 counter blocks a body touches are written to the stack,
//! encrypted in one `encrypt_blocks` call (the `aes` crate's AES-NI backend runs them in
//! parallel), and XORed 16 bytes at a time; the part of the last block the body does not use
//! is recomputed by the next body rather than stored, so a direction's state is its key
//! schedule plus a byte position. The tests check it against `ctr::Ctr128BE` at every
//! alignment and against Tor's tor1 test vectors (relay_crypto/tests.rs).

use aes::cipher::BlockEncrypt;
use aes::Block;

use super::BODY_LEN;

/// AES-128 with the encrypt-only key schedule: CTR never decrypts a block.
pub(super) type Aes128 = aes::Aes128Enc;

/// Blocks a body can touch: 509 bytes starting anywhere inside a block (32 + 1).
const MAX_BLOCKS: usize = BODY_LEN / 16 + 2;

/// XORs the keystream bytes `pos .. pos + 509` into `body`.
#[inline]
pub(super) fn apply(cipher: &Aes128, pos: u64, body: &mut [u8; BODY_LEN]) {
    let first = u128::from(pos / 16);
    let skip = (pos % 16) as usize;
    let blocks = (skip + BODY_LEN).div_ceil(16);
    let mut ks: [Block; MAX_BLOCKS] =
        std::array::from_fn(|i| Block::from((first + i as u128).to_be_bytes()));
    cipher.encrypt_blocks(&mut ks[..blocks]);
    // One flat run of keystream bytes, so that the XOR is a single loop the compiler
    // vectorizes whatever the alignment. Measured under callgrind against XORing block by
    // block, encrypting in place in a flat buffer, and a buffer kept by the caller: this
    // shape counts the fewest instructions.
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
    use aes::cipher::{KeyInit, KeyIvInit, StreamCipher, StreamCipherSeek};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// The same bytes as the `ctr` crate's big-endian 128-bit counter mode (zero IV), for a
    /// body starting at every offset inside a block and at positions past 2^32 blocks (the
    /// counter carries out of its low 32 bits).
    #[test]
    fn matches_ctr_crate_at_every_alignment() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let key: [u8; 16] = rng.random();
        let cipher = Aes128::new(&key.into());
        let block_starts = [0u64, 1, 31, (1 << 32) - 1, u64::MAX / 32];
        for start in block_starts {
            for skip in 0..16u64 {
                let pos = start * 16 + skip;
                let mut body = [0u8; BODY_LEN];
                rng.fill(&mut body[..]);
                let mut want = body;
                let mut reference =
                    ctr::Ctr128BE::<aes::Aes128Enc>::new(&key.into(), &Default::default());
                reference.seek(pos);
                reference.apply_keystream(&mut want);
                apply(&cipher, pos, &mut body);
                assert_eq!(body, want, "position {pos}");
            }
        }
    }

    /// Consecutive bodies continue one keystream: applying at 0, 509, 1018, ... equals one
    /// `ctr` stream over all of them.
    #[test]
    fn consecutive_bodies_continue_the_stream() {
        let key = [7u8; 16];
        let cipher = Aes128::new(&key.into());
        let mut reference = ctr::Ctr128BE::<aes::Aes128Enc>::new(&key.into(), &Default::default());
        for n in 0..40u64 {
            let mut body = [n as u8; BODY_LEN];
            let mut want = body;
            reference.apply_keystream(&mut want);
            apply(&cipher, n * BODY_LEN as u64, &mut body);
            assert_eq!(body, want, "body {n}");
        }
    }
}
