//! tor1's AES-128-CTR (tor-spec 0.3: the 16-byte block is a big-endian counter from zero) on
//! the CPU's AES instructions, for x86-64 with AES-NI: VAES on 256-bit registers (two blocks
//! per instruction) where the CPU has it, else AES-NI on 128-bit ones, with the keystream
//! XORed 32 bytes at a time where the CPU has AVX2 (most x86-64 servers without VAES: Intel
//! up to Cascade Lake, AMD Zen 1-2), 16 otherwise.
//!
//! Why not the `aes` crate's backend (the engine's before this): its `encrypt_blocks` takes
//! counter blocks from memory, and its VAES backend (0.9) measured slower than its AES-NI one
//! on this machine's 33-block bodies (benches/BASELINE.md). Here the counter blocks are made
//! in registers, all the blocks of a body are encrypted in groups of up to 8 registers with
//! the round keys held in registers, stored once, and XORed into the body as one run. (XORing
//! each block as it comes out of the last round, with the two partial blocks at the ends
//! handled apart, measured slower and counted more instructions.)
//!
//! The counter's high 64 bits are always zero: a keystream position is a `u64` of bytes, so
//! the block index `pos / 16` is below 2^60 and never carries out of the low half.
//!
//! Checked against the `ctr` crate's `Ctr128BE<Aes128>` at every alignment and length, on both
//! paths (here and in `crypto/relay_crypto/keystream.rs`), against FIPS-197 appendix A.1's
//! key schedule (below), and through the relay crypto against Tor's tor1 vectors.
//!
//! SAFETY overall: the instruction-set functions are only reached through [`Aes128Ctr`], whose
//! constructor returns `None` unless the CPU reports the features they are compiled for, and
//! whose `isa` names only instructions the CPU reported. The data is touched
//! through safe slices only; the `unsafe` memory accesses are 16-byte loads and stores of
//! round keys and constants, and the (zeroed, then filled) keystream buffer viewed as bytes.
#![allow(unsafe_code)]

use zeroize::Zeroize;

/// An AES-128 encryption key schedule for counter mode on AES instructions. Zeroized on drop.
pub struct Aes128Ctr {
    round_keys: [[u8; 16]; 11],
    isa: Isa,
}

/// The instructions a schedule runs, each detected before it is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// VAES + AVX2: two blocks per AES instruction.
    Vaes,
    /// AES-NI, with the keystream XORed in AVX2's 32-byte registers: 50 instructions fewer
    /// per body than SSE2's 16 (callgrind, `crypto_hop_forward`).
    AesNiAvx2,
    /// AES-NI and SSE only.
    AesNi,
}

impl std::fmt::Debug for Aes128Ctr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aes128Ctr")
            .field("isa", &self.isa)
            .finish_non_exhaustive()
    }
}

impl Drop for Aes128Ctr {
    fn drop(&mut self) {
        self.round_keys.zeroize();
    }
}

/// Which instructions a schedule may use (tests force each one the CPU has, to cover all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AesPath {
    /// VAES on 256-bit registers where detected, else [`AesPath::Narrow`].
    Fastest,
    /// AES-NI on 128-bit registers even where VAES is detected; the XOR on AVX2 where
    /// detected.
    Narrow,
    /// AES-NI and SSE only, as on a CPU without AVX2.
    NarrowSse,
}

/// Runs the instruction-set function of `$aes`'s schedule: `dst ^= keystream`, or with
/// `$copy`, `dst = src ^ keystream`. Expanded in [`Aes128Ctr::apply`] and
/// [`Aes128Ctr::apply_from`], so that each inlines straight to its instruction-set call.
macro_rules! dispatch {
    ($aes:expr, $copy:literal, $pos:expr, $src:expr, $dst:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            let (rk, pos, src, dst) = (&$aes.round_keys, $pos, $src, $dst);
            match $aes.isa {
                // SAFETY: `Vaes` is chosen only where VAES, AVX2, AES-NI and SSSE3 were
                // detected.
                Isa::Vaes => unsafe { x86::apply_wide::<$copy>(rk, pos, src, dst) },
                // SAFETY: `AesNiAvx2` only where AVX2 was detected beside AES-NI and SSSE3.
                Isa::AesNiAvx2 => unsafe { x86::apply_narrow_avx2::<$copy>(rk, pos, src, dst) },
                // SAFETY: a schedule exists only where AES-NI and SSSE3 were detected.
                Isa::AesNi => unsafe { x86::apply_narrow::<$copy>(rk, pos, src, dst) },
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _: (&Aes128Ctr, u64, &[u8], &mut [u8]) = ($aes, $pos, $src, $dst);
            unreachable!("no Aes128Ctr is built off x86-64");
        }
    }};
}

impl Aes128Ctr {
    /// The key schedule of `key`, or `None` if this CPU has no AES-NI (the caller then uses
    /// portable code).
    pub fn new(key: &[u8; 16]) -> Option<Self> {
        Self::with_path(key, AesPath::Fastest)
    }

    /// [`Aes128Ctr::new`] restricted to `path`'s instructions.
    pub fn with_path(key: &[u8; 16], path: AesPath) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if !(std::is_x86_feature_detected!("aes") && std::is_x86_feature_detected!("ssse3")) {
                return None;
            }
            let avx2 = path != AesPath::NarrowSse && std::is_x86_feature_detected!("avx2");
            let vaes = path == AesPath::Fastest && std::is_x86_feature_detected!("vaes");
            let isa = match (vaes, avx2) {
                (true, true) => Isa::Vaes,
                (false, true) => Isa::AesNiAvx2,
                _ => Isa::AesNi,
            };
            // SAFETY: AES-NI and SSSE3 were detected just above.
            let round_keys = unsafe { x86::expand_key(key) };
            Some(Aes128Ctr { round_keys, isa })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (key, path);
            None
        }
    }

    /// True if this schedule runs VAES (two blocks per instruction).
    pub fn is_wide(&self) -> bool {
        self.isa == Isa::Vaes
    }

    /// XORs the keystream bytes `pos .. pos + data.len()` into `data`.
    /// `pos + data.len()` must not pass `u64::MAX` (a circuit never moves 2^64 bytes).
    #[inline]
    pub fn apply(&self, pos: u64, data: &mut [u8]) {
        dispatch!(self, false, pos, &[], data);
    }

    /// [`Aes128Ctr::apply`] out of place: `dst = src ^ keystream`, the copy of `src` and the
    /// cipher in one pass over the bytes (a relay's received body goes into its queue slot
    /// this way, already decrypted or encrypted). Panics unless the lengths are equal.
    #[inline]
    pub fn apply_from(&self, pos: u64, src: &[u8], dst: &mut [u8]) {
        assert_eq!(
            src.len(),
            dst.len(),
            "apply_from: source and destination lengths"
        );
        dispatch!(self, true, pos, src, dst);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The instruction-set functions. Each is compiled for the features it names; the public
    //! type calls them only where those features were detected.

    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Keystream blocks per pass: a 509-byte body at any offset needs 33 (an even count, so a
    /// pass is whole 256-bit registers too).
    const PASS: usize = 34;

    /// Shuffle from the counter register (block index in the low 64-bit lane, little-endian)
    /// to the counter block (8 zero bytes, then the index big-endian); 0x80 writes a zero.
    const TO_BLOCK: [i8; 16] = [
        -128, -128, -128, -128, -128, -128, -128, -128, 7, 6, 5, 4, 3, 2, 1, 0,
    ];

    /// One pass over a stream: data bytes `at .. at + len` take keystream bytes from `skip`
    /// in the pass's blocks, which start at block index `block`.
    #[derive(Clone, Copy)]
    struct Pass {
        block: u64,
        skip: usize,
        at: usize,
        len: usize,
    }

    impl Pass {
        /// Keystream blocks this pass must compute.
        fn blocks(&self) -> usize {
            (self.skip + self.len).div_ceil(16)
        }
    }

    /// The passes that cover `len` bytes from keystream position `pos`: each at most
    /// [`PASS`] blocks, the first starting inside its block, the others at block boundaries.
    fn passes(pos: u64, len: usize) -> impl Iterator<Item = Pass> {
        let mut next = Pass {
            block: pos / 16,
            skip: (pos % 16) as usize,
            at: 0,
            len: 0,
        };
        std::iter::from_fn(move || {
            if next.at >= len {
                return None;
            }
            next.len = (len - next.at).min(PASS * 16 - next.skip);
            let this = next;
            next = Pass {
                block: this.block + this.blocks() as u64,
                skip: 0,
                at: this.at + this.len,
                len: 0,
            };
            Some(this)
        })
    }

    /// `dst ^= ks`, or with `COPY`, `dst = src ^ ks`, over equal lengths (`src` is not read
    /// without `COPY`): 32 bytes at a time, then one step each of 16, 8, 4, 2 and 1 for the
    /// tail. Plain code on purpose: inlined into the callers below, each fixed-size step is
    /// one vector or integer operation with their features (SSE2, AVX2), and `COPY`, a const,
    /// leaves no test behind. A single byte loop left the tail (up to 31 bytes of a 509-byte
    /// body) to a 16-byte epilogue and a byte-at-a-time one: ~96 instructions per body
    /// against ~60 here.
    #[inline(always)]
    fn xor<const COPY: bool>(dst: &mut [u8], src: &[u8], ks: &[u8]) {
        let mut d = dst.chunks_exact_mut(32);
        let mut k = ks.chunks_exact(32);
        let mut s = src.chunks_exact(32);
        for (d, k) in (&mut d).zip(&mut k) {
            let s = if COPY {
                s.next().unwrap_or_default()
            } else {
                &[]
            };
            xor_n::<32, COPY>(d, s, k);
        }
        let rest = (d.into_remainder(), s.remainder(), k.remainder());
        let rest = xor_step::<16, COPY>(rest);
        let rest = xor_step::<8, COPY>(rest);
        let rest = xor_step::<4, COPY>(rest);
        let rest = xor_step::<2, COPY>(rest);
        xor_step::<1, COPY>(rest);
    }

    /// The bytes left of a [`xor`]: destination, source (empty without `COPY`), keystream.
    type XorRest<'d, 's, 'k> = (&'d mut [u8], &'s [u8], &'k [u8]);

    /// Does the first `N` bytes if all have that many, and returns the rest of each.
    #[inline(always)]
    fn xor_step<'d, 's, 'k, const N: usize, const COPY: bool>(
        (d, s, k): XorRest<'d, 's, 'k>,
    ) -> XorRest<'d, 's, 'k> {
        if d.len() < N || k.len() < N || (COPY && s.len() < N) {
            return (d, s, k);
        }
        let (dh, dt) = d.split_at_mut(N);
        let (kh, kt) = k.split_at(N);
        let (sh, st) = if COPY { s.split_at(N) } else { (s, s) };
        xor_n::<N, COPY>(dh, sh, kh);
        (dt, st, kt)
    }

    /// `d ^= k`, or with `COPY`, `d = s ^ k`, for their first `N` bytes (each at least `N`
    /// long).
    #[inline(always)]
    fn xor_n<const N: usize, const COPY: bool>(d: &mut [u8], s: &[u8], k: &[u8]) {
        let (Some(d), Some(k)) = (d.first_chunk_mut::<N>(), k.first_chunk::<N>()) else {
            return;
        };
        let s: [u8; N] = if COPY {
            match s.first_chunk::<N>() {
                Some(s) => *s,
                None => return,
            }
        } else {
            *d
        };
        for ((d, s), k) in d.iter_mut().zip(s).zip(k) {
            *d = s ^ k;
        }
    }

    /// The first `regs` registers of a keystream buffer as bytes.
    ///
    /// The buffer is left uninitialized: zeroing it was a 544-byte memset per body, ~99
    /// instructions of a forwarded cell's ~1,620 (benches/BASELINE.md, session 12). So only
    /// the registers `fill!` wrote may be read: the caller passes their count.
    #[inline]
    fn written_bytes<T: Copy>(ks: &[MaybeUninit<T>], regs: usize) -> &[u8] {
        let regs = &ks[..regs];
        // SAFETY: the caller's `fill!` wrote every register of `regs` (a SIMD integer vector:
        // plain bytes, no padding), so its `size_of_val` bytes are initialized; u8 has no
        // alignment to meet, and the slice borrows `ks`.
        unsafe { std::slice::from_raw_parts(regs.as_ptr().cast(), size_of_val(regs)) }
    }

    #[target_feature(enable = "aes,ssse3")]
    pub(super) fn expand_key(key: &[u8; 16]) -> [[u8; 16]; 11] {
        /// One AES-128 key-schedule step (FIPS-197 5.2): `prev`'s words prefix-XORed, then
        /// XORed with `assist`'s RotWord(SubWord(w3)) ^ Rcon, broadcast from its top word.
        #[target_feature(enable = "aes,ssse3")]
        fn step(prev: __m128i, assist: __m128i) -> __m128i {
            let assist = _mm_shuffle_epi32::<0xff>(assist);
            let mut k = prev;
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            _mm_xor_si128(k, assist)
        }
        let mut rk = [load16(key); 11];
        macro_rules! round {
            ($i:literal, $rcon:literal) => {
                rk[$i] = step(rk[$i - 1], _mm_aeskeygenassist_si128::<$rcon>(rk[$i - 1]));
            };
        }
        round!(1, 0x01);
        round!(2, 0x02);
        round!(3, 0x04);
        round!(4, 0x08);
        round!(5, 0x10);
        round!(6, 0x20);
        round!(7, 0x40);
        round!(8, 0x80);
        round!(9, 0x1b);
        round!(10, 0x36);
        let mut out = [[0u8; 16]; 11];
        for (o, k) in out.iter_mut().zip(rk) {
            // SAFETY: an unaligned 16-byte store into a 16-byte array.
            unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), k) };
        }
        out
    }

    #[target_feature(enable = "sse2")]
    #[inline]
    fn load16<T: Copy>(bytes: &[T; 16]) -> __m128i {
        const { assert!(size_of::<T>() == 1) };
        // SAFETY: an unaligned 16-byte load from a 16-byte array.
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
    }

    /// AES-128's rounds 1-10 on every register of `$b` (round 0, the XOR with `rk[0]`, is done
    /// with the counter blocks), with the round instructions of one register width. The four
    /// blocks functions differ only in how they make counter blocks; a const parameter for
    /// that instead of two functions per width counted 16 instructions more per forwarded
    /// cell (an inlining change around the AES loop, session 16).
    macro_rules! rounds {
        ($b:ident, $rk:ident, $enc:ident, $last:ident) => {
            for k in &$rk[1..10] {
                for x in $b.iter_mut() {
                    *x = $enc(*x, *k);
                }
            }
            for x in $b.iter_mut() {
                *x = $last(*x, $rk[10]);
            }
        };
    }

    /// `N` keystream blocks from counter register `ctr` (then advanced by `N`), AES-NI.
    #[target_feature(enable = "aes,ssse3")]
    #[inline]
    fn blocks_narrow<const N: usize>(rk: &[__m128i; 11], ctr: &mut __m128i) -> [__m128i; N] {
        let to_block = load16(&TO_BLOCK);
        let one = _mm_set_epi64x(0, 1);
        let mut b = [_mm_setzero_si128(); N];
        for x in b.iter_mut() {
            *x = _mm_xor_si128(_mm_shuffle_epi8(*ctr, to_block), rk[0]);
            *ctr = _mm_add_epi64(*ctr, one);
        }
        rounds!(b, rk, _mm_aesenc_si128, _mm_aesenclast_si128);
        b
    }

    /// [`blocks_narrow`] from a counter register that already holds the counter block
    /// (`ctr_block`): no byte shuffle per block. Adding one to the block's last byte is an add
    /// of 2^56 to its high 64-bit lane, right as long as that byte does not wrap, which the
    /// caller checks for the whole pass ([`no_wrap`]).
    #[target_feature(enable = "aes,ssse3")]
    #[inline]
    fn blocks_narrow_be<const N: usize>(rk: &[__m128i; 11], ctr: &mut __m128i) -> [__m128i; N] {
        let one = _mm_set_epi64x(1 << 56, 0);
        let mut b = [_mm_setzero_si128(); N];
        for x in b.iter_mut() {
            *x = _mm_xor_si128(*ctr, rk[0]);
            *ctr = _mm_add_epi64(*ctr, one);
        }
        rounds!(b, rk, _mm_aesenc_si128, _mm_aesenclast_si128);
        b
    }

    /// [`blocks_wide`] from counter blocks already in place, as [`blocks_narrow_be`].
    #[target_feature(enable = "vaes,avx2,aes,ssse3")]
    #[inline]
    fn blocks_wide_be<const N: usize>(rk: &[__m256i; 11], ctr: &mut __m256i) -> [__m256i; N] {
        let two = _mm256_set_epi64x(2 << 56, 0, 2 << 56, 0);
        let mut b = [_mm256_setzero_si256(); N];
        for x in b.iter_mut() {
            *x = _mm256_xor_si256(*ctr, rk[0]);
            *ctr = _mm256_add_epi64(*ctr, two);
        }
        rounds!(b, rk, _mm256_aesenc_epi128, _mm256_aesenclast_epi128);
        b
    }

    /// The counter block of block index `block` (8 zero bytes, then the index big-endian)
    /// as the high 64-bit lane of a register holds it.
    fn ctr_block(block: u64) -> i64 {
        block.swap_bytes() as i64
    }

    /// True if blocks `first .. first + n` share all but the last byte of their index, so
    /// that [`blocks_narrow_be`] and [`blocks_wide_be`] may count in that byte alone: all but
    /// one pass in ~8 (a 33-block pass wraps the byte 33 times in 256).
    fn no_wrap(first: u64, n: usize) -> bool {
        (first & 0xff) + n as u64 <= 0x100
    }

    /// `2 * N` keystream blocks, two per register, from counter register `ctr` (lanes: index,
    /// index + 1; then advanced by `2 * N`), VAES.
    #[target_feature(enable = "vaes,avx2,aes,ssse3")]
    #[inline]
    fn blocks_wide<const N: usize>(rk: &[__m256i; 11], ctr: &mut __m256i) -> [__m256i; N] {
        let to_block = _mm256_broadcastsi128_si256(load16(&TO_BLOCK));
        let two = _mm256_set_epi64x(0, 2, 0, 2);
        let mut b = [_mm256_setzero_si256(); N];
        for x in b.iter_mut() {
            *x = _mm256_xor_si256(_mm256_shuffle_epi8(*ctr, to_block), rk[0]);
            *ctr = _mm256_add_epi64(*ctr, two);
        }
        rounds!(b, rk, _mm256_aesenc_epi128, _mm256_aesenclast_epi128);
        b
    }

    /// Writes `blocks` into `out` (of the same length).
    #[inline(always)]
    fn put<T: Copy, const N: usize>(out: &mut [MaybeUninit<T>], blocks: [T; N]) {
        for (o, b) in out.iter_mut().zip(blocks) {
            o.write(b);
        }
    }

    /// Fills `out` with keystream in as few groups as its length allows (8 registers at a time
    /// keep the AES units busy: 4-cycle latency, 2 per cycle; independent groups overlap).
    /// Writes every register of `out`.
    macro_rules! fill {
        ($blocks:ident, $rk:expr, $ctr:expr, $out:expr) => {{
            let out = $out;
            let mut r = 0;
            while out.len() - r >= 8 {
                put(&mut out[r..r + 8], $blocks::<8>($rk, $ctr));
                r += 8;
            }
            let left = out.len() - r;
            if left & 4 != 0 {
                put(&mut out[r..r + 4], $blocks::<4>($rk, $ctr));
                r += 4;
            }
            if left & 2 != 0 {
                put(&mut out[r..r + 2], $blocks::<2>($rk, $ctr));
                r += 2;
            }
            if left & 1 != 0 {
                out[r].write($blocks::<1>($rk, $ctr)[0]);
            }
        }};
    }

    /// Counter mode on AES-NI, 128-bit registers, compiled once per feature set in `$features`
    /// (the XOR below is vectorized with the widest registers they allow). `#[inline]` (here
    /// and in `apply_wide`): inlined into `keystream::apply`, a pass-through body counts 825
    /// instructions instead of 1,013 under callgrind (benches/BASELINE.md, session 10).
    macro_rules! apply_narrow {
        ($name:ident, $features:literal) => {
            #[target_feature(enable = $features)]
            #[inline]
            pub(super) fn $name<const COPY: bool>(
                round_keys: &[[u8; 16]; 11],
                pos: u64,
                src: &[u8],
                data: &mut [u8],
            ) {
                // A plain loop, not `array::map`: `map` is a call LLVM may leave out of line
                // when the callers around it grow (a 150-instruction swing per body, seen
                // under callgrind).
                let mut rk = [_mm_setzero_si128(); 11];
                for (r, k) in rk.iter_mut().zip(round_keys) {
                    *r = load16(k);
                }
                let mut ks = [MaybeUninit::<__m128i>::uninit(); PASS];
                for p in passes(pos, data.len()) {
                    let regs = p.blocks();
                    if no_wrap(p.block, regs) {
                        let mut ctr = _mm_set_epi64x(ctr_block(p.block), 0);
                        fill!(blocks_narrow_be, &rk, &mut ctr, &mut ks[..regs]);
                    } else {
                        let mut ctr = _mm_set_epi64x(0, p.block as i64);
                        fill!(blocks_narrow, &rk, &mut ctr, &mut ks[..regs]);
                    }
                    xor::<COPY>(
                        &mut data[p.at..p.at + p.len],
                        if COPY { &src[p.at..p.at + p.len] } else { &[] },
                        &written_bytes(&ks, regs)[p.skip..p.skip + p.len],
                    );
                }
            }
        };
    }

    apply_narrow!(apply_narrow, "aes,ssse3");
    apply_narrow!(apply_narrow_avx2, "aes,ssse3,avx2");

    /// Counter mode on VAES, two blocks per 256-bit register.
    #[target_feature(enable = "vaes,avx2,aes,ssse3")]
    #[inline]
    pub(super) fn apply_wide<const COPY: bool>(
        round_keys: &[[u8; 16]; 11],
        pos: u64,
        src: &[u8],
        data: &mut [u8],
    ) {
        let mut rk = [_mm256_setzero_si256(); 11];
        for (r, k) in rk.iter_mut().zip(round_keys) {
            *r = _mm256_broadcastsi128_si256(load16(k));
        }
        let mut ks = [MaybeUninit::<__m256i>::uninit(); PASS / 2];
        for p in passes(pos, data.len()) {
            let regs = p.blocks().div_ceil(2);
            if no_wrap(p.block, 2 * regs) {
                let (a, b) = (ctr_block(p.block), ctr_block(p.block + 1));
                let mut ctr = _mm256_set_epi64x(b, 0, a, 0);
                fill!(blocks_wide_be, &rk, &mut ctr, &mut ks[..regs]);
            } else {
                let first = p.block as i64;
                let mut ctr = _mm256_set_epi64x(0, first.wrapping_add(1), 0, first);
                fill!(blocks_wide, &rk, &mut ctr, &mut ks[..regs]);
            }
            xor::<COPY>(
                &mut data[p.at..p.at + p.len],
                if COPY { &src[p.at..p.at + p.len] } else { &[] },
                &written_bytes(&ks, regs)[p.skip..p.skip + p.len],
            );
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// FIPS-197 appendix A.1: the AES-128 key schedule of 2b7e1516 28aed2a6 abf71588 09cf4f3c
    /// ends in round key d014f9a8 c9ee2589 e13f0cc8 b6630ca6 (also the key of SP 800-38A's
    /// CTR vectors).
    #[test]
    fn key_schedule_matches_fips_197() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let Some(aes) = Aes128Ctr::with_path(&key, AesPath::Narrow) else {
            return;
        };
        assert_eq!(aes.round_keys[0], key);
        assert_eq!(aes.round_keys[1], hex("a0fafe1788542cb123a339392a6c7605"));
        assert_eq!(aes.round_keys[10], hex("d014f9a8c9ee2589e13f0cc8b6630ca6"));
    }

    /// Every path against the `ctr` crate for every length from 0 to 300 bytes, starting at
    /// every offset inside a block, with a block index that carries out of its low 32 bits,
    /// in place and out of place.
    #[test]
    fn every_length_and_alignment_matches_the_ctr_crate() {
        let key: [u8; 16] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for path in [AesPath::NarrowSse, AesPath::Narrow, AesPath::Fastest] {
            let Some(aes) = Aes128Ctr::with_path(&key, path) else {
                return;
            };
            for start in [0u64, (1 << 32) - 2] {
                for skip in 0..16 {
                    let pos = start * 16 + skip;
                    for len in 0..=data.len() {
                        let want = reference(&key, pos, &data[..len]);
                        let mut got = data[..len].to_vec();
                        aes.apply(pos, &mut got);
                        assert_eq!(got, want, "{path:?} {:?} pos {pos} len {len}", aes.isa);
                        // Out of place: every byte of the destination written.
                        let mut out = vec![0xa5; len];
                        aes.apply_from(pos, &data[..len], &mut out);
                        assert_eq!(
                            out, want,
                            "from: {path:?} {:?} pos {pos} len {len}",
                            aes.isa
                        );
                    }
                }
            }
        }
    }

    /// Bodies whose blocks cross a wrap of the index's last byte (counted with a shuffle per
    /// block) and bodies that do not (counted in that byte), on every path, against the
    /// `ctr` crate: every start from block 200 to 260 at three offsets in the block.
    #[test]
    fn bodies_across_the_last_byte_wrap_match_the_ctr_crate() {
        let key: [u8; 16] = std::array::from_fn(|i| (i * 13 + 5) as u8);
        let plain: Vec<u8> = (0..509u32).map(|i| (i * 11 + 1) as u8).collect();
        for path in [AesPath::NarrowSse, AesPath::Narrow, AesPath::Fastest] {
            let Some(aes) = Aes128Ctr::with_path(&key, path) else {
                return;
            };
            for block in (200u64..=260).chain([(1 << 40) + 250, u64::MAX / 16 - 40]) {
                for skip in [0, 7, 15] {
                    let pos = block * 16 + skip;
                    let want = reference(&key, pos, &plain);
                    let mut got = plain.clone();
                    aes.apply(pos, &mut got);
                    assert_eq!(got, want, "{:?} block {block} skip {skip}", aes.isa);
                }
            }
        }
    }

    /// Out of place, the source and destination lengths must agree.
    #[test]
    #[should_panic(expected = "apply_from: source and destination lengths")]
    fn apply_from_refuses_unequal_lengths() {
        let Some(aes) = Aes128Ctr::new(&[3; 16]) else {
            panic!("apply_from: source and destination lengths (no AES-NI here)");
        };
        aes.apply_from(0, &[0; 32], &mut [0; 31]);
    }

    /// Each path runs exactly the instructions it names that the CPU reports: VAES only for
    /// the fastest, the AVX2 XOR unless SSE is asked for.
    #[test]
    fn each_path_runs_the_detected_instructions() {
        if Aes128Ctr::new(&[0; 16]).is_none() {
            return;
        }
        let avx2 = std::is_x86_feature_detected!("avx2");
        let vaes = avx2 && std::is_x86_feature_detected!("vaes");
        let narrow = if avx2 { Isa::AesNiAvx2 } else { Isa::AesNi };
        let isa = |path| Aes128Ctr::with_path(&[0; 16], path).unwrap().isa;
        assert_eq!(isa(AesPath::Fastest), if vaes { Isa::Vaes } else { narrow });
        assert_eq!(isa(AesPath::Narrow), narrow);
        assert_eq!(isa(AesPath::NarrowSse), Isa::AesNi);
        assert_eq!(Aes128Ctr::new(&[0; 16]).unwrap().is_wide(), vaes);
    }

    /// `data` XORed with the `ctr` crate's big-endian 128-bit counter mode from byte `pos`.
    fn reference(key: &[u8; 16], pos: u64, data: &[u8]) -> Vec<u8> {
        use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
        let mut out = data.to_vec();
        let mut c = ctr::Ctr128BE::<aes::Aes128Enc>::new(key.into(), &Default::default());
        c.seek(pos);
        c.apply_keystream(&mut out);
        out
    }

    fn hex(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
