//! SHA-1 compression of several independent messages at once ("lanes"), with the x86 SHA
//! extensions where the CPU has them.
//!
//! One SHA-1 stream is a chain: each `sha1rnds4` waits for the one before it, so a single
//! stream leaves the SHA unit idle most of the time. The running digests of different
//! circuits are independent, so the exit seals cells of several circuits in one pass, their
//! rounds interleaved. Measured here (benches/crypto-impls, 512-byte cells, AMD EPYC with
//! SHA-NI): one lane 248-253 ns per cell (the `sha1` crate: 239-247), two lanes 154-163, three
//! 126-142, four 118-122.
//!
//! This file holds `unsafe` for one reason: calling a `#[target_feature]` function, allowed
//! only once the CPU is known to have the feature. The kernel itself is safe code (the SHA
//! intrinsics are safe inside a function compiled for them, and blocks are read as integers,
//! not through pointers). Without SHA-NI (other CPUs, other architectures, valgrind) every
//! lane goes through the `sha1` crate's portable compression, one after the other.

/// One 64-byte SHA-1 message block.
pub type Block = [u8; 64];

/// Compresses `blocks[l]` into `states[l]` for every lane `l`. All lanes must have the same
/// number of blocks (the shorter ones are ignored beyond the shortest otherwise: callers pass
/// equal lengths).
pub fn sha1_compress_lanes<const N: usize>(states: &mut [[u32; 5]; N], blocks: [&[Block]; N]) {
    #[cfg(target_arch = "x86_64")]
    if has_sha_ni() {
        // SAFETY: `compress_shani` needs the sha, sse2, ssse3 and sse4.1 features, which
        // `has_sha_ni` has just confirmed this CPU has.
        unsafe { shani::compress_shani::<N>(states, blocks) };
        return;
    }
    let len = blocks.iter().map(|b| b.len()).min().unwrap_or(0);
    for (state, lane) in states.iter_mut().zip(blocks) {
        for block in &lane[..len] {
            sha1::compress(state, core::slice::from_ref(block.into()));
        }
    }
}

/// Whether this CPU runs the SHA-NI kernel (std caches the CPUID answer).
#[cfg(target_arch = "x86_64")]
fn has_sha_ni() -> bool {
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse2")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1")
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use super::Block;
    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_extract_epi32, _mm_set_epi32, _mm_set_epi64x,
        _mm_sha1msg1_epu32, _mm_sha1msg2_epu32, _mm_sha1nexte_epu32, _mm_sha1rnds4_epu32,
        _mm_shuffle_epi32, _mm_xor_si128,
    };

    /// Four rounds in every lane: `e` is the first quad's E + W (None) or derived from the
    /// state before the previous quad (`prev`) by `sha1nexte`.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn quad<const F: i32, const N: usize>(
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

    /// Message words `i*4 .. i*4+4` of a block, big-endian, first word in the top lane (what
    /// the SHA instructions expect).
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load_words(block: &Block, i: usize) -> __m128i {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&block[i * 16..i * 16 + 16]);
        let v = u128::from_be_bytes(bytes);
        _mm_set_epi64x((v >> 64) as i64, v as i64)
    }

    /// The SHA-NI compression of `blocks[l]` into `states[l]`, all lanes in step (the
    /// rounds of different lanes interleave; see the module docs).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) fn compress_shani<const N: usize>(
        states: &mut [[u32; 5]; N],
        blocks: [&[Block]; N],
    ) {
        let len = blocks.iter().map(|b| b.len()).min().unwrap_or(0);
        let mut abcd: [__m128i; N] = core::array::from_fn(|l| {
            let s = &states[l];
            _mm_set_epi32(s[0] as i32, s[1] as i32, s[2] as i32, s[3] as i32)
        });
        let mut e0: [__m128i; N] =
            core::array::from_fn(|l| _mm_set_epi32(states[l][4] as i32, 0, 0, 0));
        // `b` indexes the blocks of every lane at once.
        #[allow(clippy::needless_range_loop)]
        for b in 0..len {
            let (abcd_start, e0_start) = (abcd, e0);
            let mut w: [[__m128i; N]; 4] =
                core::array::from_fn(|i| core::array::from_fn(|l| load_words(&blocks[l][b], i)));
            let mut prev = abcd;
            for r in 0..20 {
                if r >= 4 {
                    // W[t] = rol1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), four at a time.
                    let mut next = w[r % 4];
                    for (l, n) in next.iter_mut().enumerate() {
                        let x = _mm_sha1msg1_epu32(w[r % 4][l], w[(r + 1) % 4][l]);
                        let x = _mm_xor_si128(x, w[(r + 2) % 4][l]);
                        *n = _mm_sha1msg2_epu32(x, w[(r + 3) % 4][l]);
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
                e0[l] = _mm_sha1nexte_epu32(prev[l], e0_start[l]);
                abcd[l] = _mm_add_epi32(abcd[l], abcd_start[l]);
            }
        }
        for l in 0..N {
            // abcd holds A in its top 32 bits; E is the top word of e0.
            let a = _mm_shuffle_epi32::<0x1B>(abcd[l]);
            states[l] = [
                _mm_extract_epi32::<0>(a) as u32,
                _mm_extract_epi32::<1>(a) as u32,
                _mm_extract_epi32::<2>(a) as u32,
                _mm_extract_epi32::<3>(a) as u32,
                _mm_extract_epi32::<3>(e0[l]) as u32,
            ];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(seed: u32, n: usize) -> Vec<Block> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                core::array::from_fn(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
            })
            .collect()
    }

    fn portable(state: &mut [u32; 5], lane: &[Block]) {
        for block in lane {
            sha1::compress(state, core::slice::from_ref(block.into()));
        }
    }

    fn check<const N: usize>(nblocks: usize) {
        let data: Vec<Vec<Block>> = (0..N).map(|l| blocks(l as u32 + 7, nblocks)).collect();
        let init: [[u32; 5]; N] = core::array::from_fn(|l| {
            [
                0x6745_2301,
                0xEFCD_AB89,
                0x98BA_DCFE,
                0x1032_5476,
                0xC3D2_E1F0 ^ l as u32,
            ]
        });
        let mut lanes = init;
        sha1_compress_lanes::<N>(&mut lanes, core::array::from_fn(|l| &data[l][..]));
        for l in 0..N {
            let mut want = init[l];
            portable(&mut want, &data[l]);
            assert_eq!(lanes[l], want, "lane {l} of {N}, {nblocks} blocks");
        }
    }

    #[test]
    fn every_lane_count_matches_the_portable_compression() {
        for nblocks in [0, 1, 2, 9] {
            check::<1>(nblocks);
            check::<2>(nblocks);
            check::<3>(nblocks);
            check::<4>(nblocks);
        }
    }

    #[test]
    fn a_known_digest_through_one_lane() {
        // FIPS 180-2 appendix A.1: SHA-1("abc"), one padded block.
        let mut block = [0u8; 64];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[63] = 24;
        let mut state = [[
            0x6745_2301,
            0xEFCD_AB89,
            0x98BA_DCFE,
            0x1032_5476,
            0xC3D2_E1F0,
        ]];
        sha1_compress_lanes::<1>(&mut state, [&[block][..]]);
        assert_eq!(
            state[0],
            [
                0xA999_3E36,
                0x4706_816A,
                0xBA3E_2571,
                0x7850_C26C,
                0x9CD0_D89D
            ]
        );
    }
}
