//! The `sha1` crate's block function over `[u8; 64]` blocks, all in one call
//! (`crypto::sha1_stream` feeds it a relay body's whole blocks where they lie).
//!
//! The crate (0.10, feature `compress`) takes a slice of its own block type,
//! `GenericArray<u8, U64>`; a safe conversion exists only one block at a time, and a call per
//! block repeats the crate's CPU-feature dispatch for each. The slice is cast here instead, as
//! the crate itself casts its blocks to `[u8; 64]` inside.
#![allow(unsafe_code)]

use sha1::digest::generic_array::GenericArray;
use sha1::digest::typenum::U64;

/// Compresses `blocks` into `state` (FIPS 180-4 6.1.2), in order.
#[inline]
pub fn compress(state: &mut [u32; 5], blocks: &[[u8; 64]]) {
    // SAFETY: `GenericArray<u8, U64>` is `#[repr(transparent)]` over an array type of 64
    // `u8`s with alignment 1 (generic-array 0.14), so a slice of `[u8; 64]` and a slice of it
    // with the same length cover the same bytes; the borrow of `blocks` bounds the result.
    let blocks: &[GenericArray<u8, U64>] =
        unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast(), blocks.len()) };
    sha1::compress(state, blocks);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same size and alignment as the cast assumes, and the same state as one block at a
    /// time through the crate's safe conversion.
    #[test]
    fn cast_matches_one_block_at_a_time() {
        assert_eq!(size_of::<GenericArray<u8, U64>>(), 64);
        assert_eq!(align_of::<GenericArray<u8, U64>>(), 1);
        let blocks: Vec<[u8; 64]> = (0..5u8).map(|i| [i.wrapping_mul(37); 64]).collect();
        let mut at_once = [1, 2, 3, 4, 5];
        compress(&mut at_once, &blocks);
        let mut one_by_one = [1, 2, 3, 4, 5];
        for b in &blocks {
            sha1::compress(
                &mut one_by_one,
                std::slice::from_ref(GenericArray::from_slice(b)),
            );
        }
        assert_eq!(at_once, one_by_one);
    }
}
