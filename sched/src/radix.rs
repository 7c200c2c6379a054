//! The sort behind KIST's service order: one most-significant-digit radix pass over `u64`
//! keys into 256 buckets, then a comparison sort inside each bucket, for runs with many
//! channels.
//!
//! KIST sorts one `u64` per granted channel per run (`kist::OrderKeys`). `sort_unstable`
//! alone counted ~91 instructions per key at 1,000 channels under callgrind, most of KIST's
//! cost over Vanilla (benches/BASELINE.md). Here one pass finds the highest bit in which the
//! keys differ, a second counts the keys per value of the 8 bits from there down, a third
//! moves them into those buckets in order, and `sort_unstable` finishes each bucket. A
//! bucket's keys are equal in every bit above its 8 and below the next bucket's there, so
//! the buckets in order, each sorted, are the whole sorted; if every key falls into one
//! bucket the cost is one comparison sort plus three linear passes. Below [`RADIX_MIN`]
//! keys `sort_unstable` alone is cheaper.
//!
//! Tried and dropped (callgrind, `kist_run` at 1,000 channels): an LSD radix sort of all
//! eight bytes (it needed seven passes on KIST's keys and counted more than `sort_unstable`),
//! 11-bit buckets (the 2,048 counters cost more than the bucket sorts they save), and a
//! second radix pass inside large buckets (no bucket was large enough to take it).
//!
//! Not a crate: `radsort` and `voracious_radix_sort` allocate their scratch per call, and a run
//! must not allocate once warm. Here the caller keeps the scratch `Vec` between runs.

/// Fewer keys than this go to `sort_unstable` alone (the 256 counters are a fixed cost).
pub(crate) const RADIX_MIN: usize = 256;

/// Sorts `keys` ascending. `scratch` is working space: its contents are overwritten and it
/// keeps its capacity (after the first large run, sorting allocates nothing).
pub(crate) fn sort_u64(keys: &mut Vec<u64>, scratch: &mut Vec<u64>) {
    if keys.len() < RADIX_MIN {
        keys.sort_unstable();
        return;
    }
    let first = keys.first().copied().unwrap_or_default();
    let differ = keys.iter().fold(0u64, |acc, &k| acc | (k ^ first));
    if differ == 0 {
        return; // all equal
    }
    // The 8 bits whose top is the highest differing bit (or the lowest 8 bits).
    let top = u64::BITS - 1 - differ.leading_zeros();
    let shift = top.saturating_sub(7);
    let bucket = |k: u64| usize::from((k >> shift) as u8);
    // Counts per bucket, then (prefix sums) where each bucket starts. u32: a run has at most
    // 2^32 grants (u32 indices).
    let mut at = [0u32; 256];
    for &k in keys.iter() {
        at[bucket(k)] += 1;
    }
    let mut sum = 0u32;
    for a in at.iter_mut() {
        let count = *a;
        *a = sum;
        sum += count;
    }
    scratch.clear();
    scratch.resize(keys.len(), 0);
    for &k in keys.iter() {
        let b = bucket(k);
        // In bounds: `at[b]` counts the keys before this one in bucket b, below `len`.
        if let Some(slot) = scratch.get_mut(at[b] as usize) {
            *slot = k;
        }
        at[b] += 1;
    }
    // `at[b]` is now where bucket b ends.
    let mut start = 0;
    for &end in &at {
        let end = end as usize;
        if end - start > 1 {
            if let Some(run) = scratch.get_mut(start..end) {
                run.sort_unstable();
            }
        }
        start = end;
    }
    std::mem::swap(keys, scratch);
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn check(mut keys: Vec<u64>, scratch: &mut Vec<u64>) {
        let mut want = keys.clone();
        want.sort_unstable();
        sort_u64(&mut keys, scratch);
        assert_eq!(keys, want, "{} keys", want.len());
    }

    /// Random keys at sizes around the switch from the comparison sort, with duplicates.
    #[test]
    fn sorts_like_sort_unstable() {
        let mut rng = ChaCha8Rng::seed_from_u64(151);
        let mut scratch = Vec::new();
        for n in [0, 1, 2, 255, 256, 257, 1000, 4099] {
            check((0..n).map(|_| rng.random()).collect(), &mut scratch);
            // Few distinct values: runs of equal keys.
            check(
                (0..n).map(|_| rng.random_range(0..5u64)).collect(),
                &mut scratch,
            );
        }
    }

    /// KIST's keys: positive f64 bits above a 10-bit index, so the top bytes are shared (the
    /// passes that would not move anything are skipped) and the order is the priorities'.
    #[test]
    fn sorts_priority_keys_with_shared_high_bytes() {
        let mut rng = ChaCha8Rng::seed_from_u64(24);
        let mut scratch = Vec::new();
        let keys: Vec<u64> = (0..1000u64)
            .map(|i| (rng.random_range(1.0..2.0f64).to_bits() >> 10 << 10) | i)
            .collect();
        check(keys.clone(), &mut scratch);
        // One outlier puts every other key into bucket 0: the comparison sort does it all.
        let mut outlier: Vec<u64> = (0..999u64).map(|i| (i * 7919) % 1000).collect();
        outlier.push(u64::MAX - 3);
        check(outlier, &mut scratch);
        // Every byte the same but the lowest (indices only).
        check(
            (0..300u64)
                .rev()
                .map(|i| 0x4000_0000_0000_0000 | i)
                .collect(),
            &mut scratch,
        );
        // Sorted already, and reversed.
        let mut sorted = keys;
        sorted.sort_unstable();
        check(sorted.clone(), &mut scratch);
        sorted.reverse();
        check(sorted, &mut scratch);
    }

    /// Once the scratch has grown, sorting the same number of keys again does not reallocate
    /// either buffer (the run loop's no-allocation rule).
    #[test]
    fn warm_buffers_keep_their_allocations() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut keys: Vec<u64> = (0..1000).map(|_| rng.random()).collect();
        let mut scratch = Vec::new();
        sort_u64(&mut keys, &mut scratch);
        let mut ptrs = [keys.as_ptr(), scratch.as_ptr()];
        ptrs.sort_unstable();
        for _ in 0..3 {
            for k in keys.iter_mut() {
                *k = rng.random();
            }
            sort_u64(&mut keys, &mut scratch);
            assert!(keys.is_sorted());
            let mut now = [keys.as_ptr(), scratch.as_ptr()];
            now.sort_unstable();
            assert_eq!(now, ptrs, "a buffer was reallocated");
        }
    }
}
