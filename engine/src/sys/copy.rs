//! The per-cell path's two copies (a body into its pool slot, a queued cell into the send
//! buffer) as fixed-size copies in 32-byte registers where the CPU has AVX.
//!
//! Why not `copy_from_slice` / `extend_from_slice`: both become a call to libc's `memcpy`
//! for a 509- or 514-byte copy (LLVM inlines only short copies), which pays a size dispatch
//! and a loop with a head and a tail for a length known when compiling. Here a cell is 16
//! unrolled loads and stores, the last pair overlapping the one before it when `N` is not a
//! multiple of 32 (the overlapping bytes are written twice with the same value). Measured in
//! benches/BASELINE.md ("The cell copies in registers", session 16).
//!
//! SAFETY overall: the AVX function is reached only after `is_x86_feature_detected!("avx")`,
//! reads exactly `N` bytes from its source and writes exactly `N` to its destination; the
//! callers pass a source array and either a destination array or a `Vec`'s spare capacity of
//! at least `N` bytes (reserved just before), which cannot overlap a shared borrow.
#![allow(unsafe_code)]

/// `*dst = *src`.
#[inline]
pub fn copy_fixed<const N: usize>(dst: &mut [u8; N], src: &[u8; N]) {
    // SAFETY: both are `N` bytes, and `&mut` and `&` do not overlap.
    unsafe { copy_raw::<N>(dst.as_mut_ptr(), src.as_ptr()) }
}

/// Appends `src` to `out` (the send buffer's form of [`copy_fixed`]).
#[inline]
pub fn extend_fixed<const N: usize>(out: &mut Vec<u8>, src: &[u8; N]) {
    out.reserve(N);
    let len = out.len();
    let spare = out.spare_capacity_mut();
    debug_assert!(spare.len() >= N);
    // SAFETY: `reserve(N)` left at least `N` bytes of spare capacity, which `src` (a shared
    // borrow, not of `out`) cannot overlap; after the copy they are initialized, so the length
    // may grow by `N`.
    unsafe {
        copy_raw::<N>(spare.as_mut_ptr().cast(), src.as_ptr());
        out.set_len(len + N);
    }
}

/// Copies `N` bytes from `src` to `dst`.
///
/// # Safety
/// `src` must be valid for `N` bytes of reads and `dst` for `N` bytes of writes, and the two
/// ranges must not overlap.
#[inline(always)]
unsafe fn copy_raw<const N: usize>(dst: *mut u8, src: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        if N >= 32 && std::is_x86_feature_detected!("avx") {
            // SAFETY: AVX was detected just above; the caller's contract is this one's.
            return unsafe { x86::copy_avx::<N>(dst, src) };
        }
    }
    // SAFETY: the caller's contract is `copy_nonoverlapping`'s.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, N) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_storeu_si256};

    /// [`super::copy_raw`] in 32-byte registers. For `N < 32` it would copy nothing past
    /// the last whole register: the caller takes `copy_nonoverlapping` then.
    ///
    /// # Safety
    /// AVX must be available, and [`super::copy_raw`]'s contract holds.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn copy_avx<const N: usize>(dst: *mut u8, src: *const u8) {
        let mut at = 0;
        while at + 32 <= N {
            // SAFETY: `at + 32 <= N`: inside both ranges (the caller's contract).
            unsafe { move32(dst.add(at), src.add(at)) };
            at += 32;
        }
        if at < N && N >= 32 {
            // SAFETY: `N >= 32`, so `N - 32 .. N` is inside both ranges; it overlaps the last
            // pair above, which wrote the same source bytes there.
            unsafe { move32(dst.add(N - 32), src.add(N - 32)) };
        }
    }

    /// One unaligned 32-byte load and store.
    ///
    /// # Safety
    /// AVX must be available; `src` readable and `dst` writable for 32 bytes.
    #[target_feature(enable = "avx")]
    #[inline]
    unsafe fn move32(dst: *mut u8, src: *const u8) {
        // SAFETY: the caller's contract; unaligned load and store need no alignment.
        unsafe {
            let v = _mm256_loadu_si256(src.cast::<__m256i>());
            _mm256_storeu_si256(dst.cast::<__m256i>(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern<const N: usize>(seed: u8) -> [u8; N] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
    }

    /// Every byte arrives, none beyond the end is touched: sizes below, at and between
    /// multiples of 32, including the cell's 509 and 514.
    #[test]
    fn copies_every_byte_and_nothing_else() {
        fn check<const N: usize>() {
            let src = pattern::<N>(7);
            let mut dst = [0u8; N];
            copy_fixed(&mut dst, &src);
            assert_eq!(dst, src, "copy_fixed {N}");

            let mut out = vec![0xEE; 3];
            extend_fixed(&mut out, &src);
            extend_fixed(&mut out, &src);
            assert_eq!(out.len(), 3 + 2 * N, "extend_fixed {N}");
            assert_eq!(&out[..3], &[0xEE; 3]);
            assert_eq!(&out[3..3 + N], &src[..]);
            assert_eq!(&out[3 + N..], &src[..]);
        }
        check::<1>();
        check::<31>();
        check::<32>();
        check::<33>();
        check::<64>();
        check::<509>();
        check::<514>();
    }

    /// `extend_fixed` grows the buffer when it has no room, keeping what it held.
    #[test]
    fn extend_fixed_grows_a_full_buffer() {
        let src = pattern::<514>(3);
        let mut out = Vec::with_capacity(600);
        out.extend_from_slice(&[1u8; 100]);
        for _ in 0..5 {
            extend_fixed(&mut out, &src);
        }
        assert_eq!(out.len(), 100 + 5 * 514);
        assert!(out[..100].iter().all(|&b| b == 1));
        assert!(out[100..].chunks_exact(514).all(|c| c == src));
    }
}
