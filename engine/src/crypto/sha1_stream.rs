//! A running SHA-1 (FIPS 180-4) that can be finished after every relay body and wiped on
//! demand: tor1's digests (tor-spec 6.1) and KDF-TOR (tor-spec 5.2.1).
//!
//! The block function is the `sha1` crate's (SHA-NI where the CPU has it, else portable). The
//! front end is this module's: a partial block, a count of whole blocks, and the padding rule
//! (FIPS 180-4 5.1.1). Why not the crate's hasher: tor1 needs the digest after every body,
//! and the crate finishes only a clone of the whole hasher (its block buffer included);
//! finishing here pads a copy of the partial block instead, 4-5% less time per sealed body
//! (`crypto-impls` `lean11-seal` against `rc-sha1-seal`, benches/BASELINE.md session 20). And
//! `sha1` 0.10 cannot wipe its state (0.11's `zeroize` feature would wipe every clone that is
//! dropped, one per cell for nothing: the finished state is the digest the caller keeps);
//! here the owner wipes the long-lived state ([`Zeroize`]), once.
//!
//! A body's whole blocks go to the block function in one call, viewed where they lie
//! (`as_chunks`; `sys::sha1_blocks` casts them to the crate's block type).

use zeroize::Zeroize;

use crate::sys::sha1_blocks::compress;

/// SHA-1's initial hash value (FIPS 180-4 5.3.1).
const H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// SHA-1 over everything fed so far, finishable at any point without being consumed. Not
/// wiped on drop by itself (copies of it are made per cell); its owner calls
/// [`Zeroize::zeroize`] when the state is no longer needed.
#[derive(Clone, Zeroize)]
pub(crate) struct Sha1Stream {
    state: [u32; 5],
    /// The partial block: `buf[..used]`.
    buf: [u8; 64],
    used: usize,
    /// Whole blocks compressed into `state`.
    blocks: u64,
}

impl Sha1Stream {
    pub(crate) fn new() -> Self {
        Sha1Stream {
            state: H0,
            buf: [0; 64],
            used: 0,
            blocks: 0,
        }
    }

    /// A stream that has already taken `prefix` (a tor1 digest seed, Df or Db).
    pub(crate) fn with_prefix(prefix: &[u8]) -> Self {
        let mut s = Self::new();
        s.update(prefix);
        s
    }

    /// Feeds `data`.
    #[inline]
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        if self.used > 0 {
            let n = (64 - self.used).min(data.len());
            self.buf[self.used..self.used + n].copy_from_slice(&data[..n]);
            self.used += n;
            data = &data[n..];
            if self.used < 64 {
                return;
            }
            compress(&mut self.state, std::slice::from_ref(&self.buf));
            self.blocks += 1;
            self.used = 0;
        }
        let (blocks, tail) = data.as_chunks::<64>();
        if !blocks.is_empty() {
            compress(&mut self.state, blocks);
            self.blocks += blocks.len() as u64;
        }
        self.buf[..tail.len()].copy_from_slice(tail);
        self.used = tail.len();
    }

    /// The SHA-1 of everything fed so far; the stream goes on unchanged.
    #[inline]
    pub(crate) fn finish(&self) -> [u8; 20] {
        let mut state = self.state;
        let bits = (self.blocks * 64 + self.used as u64).wrapping_mul(8);
        // The partial block, 0x80, zeros, and the length in bits in the last 8 bytes: one
        // block if that fits after the data (used < 56), else two.
        let mut pad = [[0u8; 64]; 2];
        pad[0][..self.used].copy_from_slice(&self.buf[..self.used]);
        pad[0][self.used] = 0x80;
        let n = if self.used < 56 { 1 } else { 2 };
        pad[n - 1][56..].copy_from_slice(&bits.to_be_bytes());
        compress(&mut state, &pad[..n]);
        let mut out = [0u8; 20];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use sha1::{Digest, Sha1};

    use super::*;

    fn hex(d: [u8; 20]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// FIPS 180 examples: "abc", the empty message, and the two-block 448-bit message.
    #[test]
    fn known_answers() {
        let digest = |m: &[u8]| Sha1Stream::with_prefix(m).finish();
        assert_eq!(
            hex(digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(digest(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(digest(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    /// Against the `sha1` crate after every update, for updates of random lengths (0 to 600
    /// bytes, so partial blocks of every fill, one- and two-block paddings, and whole blocks
    /// passed at once), finishing as tor1 does without disturbing the stream.
    #[test]
    fn matches_the_sha1_crate_after_every_update() {
        let mut rng = ChaCha8Rng::seed_from_u64(61);
        let mut ours = Sha1Stream::new();
        let mut theirs = Sha1::new();
        let mut fill = [0u8; 600];
        let mut ends = std::collections::HashSet::new();
        for i in 0..2_000 {
            let len = rng.random_range(0..=fill.len());
            rng.fill_bytes(&mut fill[..len]);
            ours.update(&fill[..len]);
            theirs.update(&fill[..len]);
            let want: [u8; 20] = theirs.clone().finalize().into();
            assert_eq!(ours.finish(), want, "update {i}, {len} bytes");
            ends.insert(ours.used);
        }
        // Every partial-block fill was finished from at least once.
        assert_eq!(ends.len(), 64);
    }

    /// Wiping leaves nothing of the state, the partial block or the count.
    #[test]
    fn zeroize_wipes_everything() {
        let mut s = Sha1Stream::with_prefix(&[0x5a; 100]);
        s.zeroize();
        assert_eq!(s.state, [0; 5]);
        assert_eq!(s.buf, [0; 64]);
        assert_eq!((s.used, s.blocks), (0, 0));
    }
}
