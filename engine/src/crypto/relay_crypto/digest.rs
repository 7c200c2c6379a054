//! tor1's running SHA-1 per hop and direction, with seals of several circuits computed at
//! once.
//!
//! Every relay body sealed or recognized at a hop advances that direction's SHA-1, and the
//! digest *after* the body (SHA-1 finalized on a copy of the state) goes into the cell. So a
//! body costs its 7-8 message blocks plus 1-2 padding blocks for the copy's finalization.
//! The state is kistrel's own (chaining value, partial block, length) rather than the
//! `sha1` crate's hasher, for two reasons: seals of different circuits can then share one
//! pass of the SHA instructions ([`seal_lanes`], over [`crate::sys::sha1_lanes`]), and the
//! state, derived from the Df/Db key material, is wiped on drop.

use zeroize::Zeroize;

use super::{BODY_LEN, DIGEST, RECOGNIZED};
use crate::sys::sha1_lanes::{sha1_compress_lanes, Block};

/// SHA-1's initial chaining value (FIPS 180-4 5.3.1).
const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// Blocks the buffered bytes (up to 63) and one body span: 8 complete at most, plus the
/// partial one (copied from here into the padding).
const MAX_DATA_BLOCKS: usize = (63 + BODY_LEN).div_ceil(64);

/// Seals computed in one pass at most (more lanes gain little: see sys::sha1_lanes).
pub(crate) const MAX_LANES: usize = 4;

/// One direction's running digest and the digest after its last cell.
pub(super) struct RunningDigest {
    /// Chaining value after the complete blocks fed so far.
    h: [u32; 5],
    /// The bytes of the incomplete block; INVARIANT: `buf_len < 64`.
    buf: [u8; 64],
    buf_len: usize,
    /// Bytes fed in total (the seed included).
    len: u64,
    /// INVARIANT: zeros until the first body is sealed or recognized; after that, the
    /// finalized digest of everything fed (the two change together).
    pub(super) last: [u8; 20],
}

impl Drop for RunningDigest {
    fn drop(&mut self) {
        self.h.zeroize();
        self.buf.zeroize();
        self.last.zeroize();
    }
}

/// One body's SHA-1 work, prepared so that several can run in one pass: the message blocks
/// the body completes and the padding blocks of the finalized copy.
pub(crate) struct SealWork {
    /// The chaining value: before the data blocks, then after them, then (in `digest`) the
    /// finalized copy's.
    state: [u32; 5],
    digest: [u32; 5],
    data: [Block; MAX_DATA_BLOCKS],
    ndata: usize,
    /// The finalization: the bytes left in the partial block, 0x80, zeros, the bit length.
    pad: [Block; 2],
    npad: usize,
    /// The partial block after the body (`pad`'s first bytes): the new `buf`.
    rest: usize,
}

impl SealWork {
    /// An empty work item, for arrays of lanes.
    pub(crate) fn new() -> Self {
        SealWork {
            state: [0; 5],
            digest: [0; 5],
            data: [[0; 64]; MAX_DATA_BLOCKS],
            ndata: 0,
            pad: [[0; 64]; 2],
            npad: 0,
            rest: 0,
        }
    }
}

impl RunningDigest {
    /// SHA-1 fed with the 20-byte seed (Df or Db).
    pub(super) fn new(seed: &[u8; 20]) -> Self {
        let mut buf = [0u8; 64];
        buf[..seed.len()].copy_from_slice(seed);
        RunningDigest {
            h: SHA1_IV,
            buf,
            buf_len: seed.len(),
            len: seed.len() as u64,
            last: [0; 20],
        }
    }

    /// Fills `work` with what feeding `body` (its digest field taken as zeros) and then
    /// finalizing a copy takes. Changes nothing here: [`RunningDigest::commit`] does.
    pub(super) fn prepare(&self, body: &[u8; BODY_LEN], work: &mut SealWork) {
        let total = self.buf_len + BODY_LEN;
        let flat = work.data.as_flattened_mut();
        flat[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        flat[self.buf_len..total].copy_from_slice(body);
        let at = self.buf_len + DIGEST.start;
        flat[at..at + DIGEST.len()].fill(0);
        work.ndata = total / 64;
        work.rest = total % 64;
        let pad = work.pad.as_flattened_mut();
        pad.fill(0);
        pad[..work.rest].copy_from_slice(&flat[work.ndata * 64..total]);
        pad[work.rest] = 0x80;
        work.npad = if work.rest < 56 { 1 } else { 2 };
        let bits = (self.len + BODY_LEN as u64) * 8;
        pad[work.npad * 64 - 8..work.npad * 64].copy_from_slice(&bits.to_be_bytes());
        work.state = self.h;
    }

    /// Takes the result of a prepared and computed `work`: the state advances over the body
    /// and `last` becomes the digest after it.
    fn commit(&mut self, work: &SealWork) {
        self.h = work.state;
        self.buf[..work.rest].copy_from_slice(&work.pad.as_flattened()[..work.rest]);
        self.buf_len = work.rest;
        self.len += BODY_LEN as u64;
        self.last = digest_bytes(&work.digest);
    }

    /// Zeroes `recognized` and `digest`, advances the running digest over the body and writes
    /// the first 4 bytes of it into the digest field.
    pub(super) fn seal(&mut self, body: &mut [u8; BODY_LEN]) {
        let mut work = [SealWork::new()];
        zero_fields(body);
        self.prepare(body, &mut work[0]);
        seal_lanes(&mut work);
        self.finish_seal(&work[0], body);
    }

    /// The end of a seal computed by [`seal_lanes`]: commit and write the digest field.
    pub(super) fn finish_seal(&mut self, work: &SealWork, body: &mut [u8; BODY_LEN]) {
        self.commit(work);
        body[DIGEST].copy_from_slice(&self.last[..DIGEST.len()]);
    }

    /// True (and the digest advanced) if the plaintext `body` is addressed to this hop.
    pub(super) fn check(&mut self, body: &[u8; BODY_LEN]) -> bool {
        // Cheap test first: a cell passing through has random bytes here.
        if body[RECOGNIZED] != [0, 0] {
            return false;
        }
        let mut work = [SealWork::new()];
        self.prepare(body, &mut work[0]);
        seal_lanes(&mut work);
        let full = digest_bytes(&work[0].digest);
        // Digests are public once sent; a plain comparison leaks nothing secret (as before,
        // through `subtle`, for uniformity with the other checks).
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            &full[..DIGEST.len()],
            &body[DIGEST],
        )) {
            self.commit(&work[0]);
            true
        } else {
            false
        }
    }
}

/// Sets `recognized` and `digest` to zero, as a body is before it is sealed.
pub(super) fn zero_fields(body: &mut [u8; BODY_LEN]) {
    body[RECOGNIZED].fill(0);
    body[DIGEST].fill(0);
}

/// Computes prepared seals (see [`RunningDigest::prepare`]) of different directions in one
/// pass: the data blocks every lane has, then each lane's extra block alone, then the same
/// for the padding of the finalized copies.
pub(crate) fn seal_lanes(works: &mut [SealWork]) {
    for chunk in works.chunks_mut(MAX_LANES) {
        let common = chunk.iter().map(|w| w.ndata).min().unwrap_or(0);
        compress(chunk, 0..common, |w| &w.data);
        for w in chunk.iter_mut() {
            let mut s = [w.state];
            sha1_compress_lanes::<1>(&mut s, [&w.data[common..w.ndata]]);
            w.state = s[0];
            w.digest = w.state;
        }
        // `digest` keeps the state after the data (the new running state); the finalized
        // copy is computed in `state`, then the two trade places.
        compress(chunk, 0..1, |w| &w.pad);
        for w in chunk.iter_mut() {
            if w.npad == 2 {
                let mut s = [w.state];
                sha1_compress_lanes::<1>(&mut s, [&w.pad[1..2]]);
                w.state = s[0];
            }
            std::mem::swap(&mut w.state, &mut w.digest);
        }
    }
}

/// Compresses blocks `range` of `blocks(w)` into `w.state` for every work item of `chunk`
/// (at most [`MAX_LANES`]) in one pass.
fn compress(
    chunk: &mut [SealWork],
    range: std::ops::Range<usize>,
    blocks: fn(&SealWork) -> &[Block],
) {
    macro_rules! lanes {
        ($n:literal) => {{
            let mut states: [[u32; 5]; $n] = core::array::from_fn(|l| chunk[l].state);
            let input: [&[Block]; $n] = core::array::from_fn(|l| &blocks(&chunk[l])[range.clone()]);
            sha1_compress_lanes::<$n>(&mut states, input);
            for (w, s) in chunk.iter_mut().zip(states) {
                w.state = s;
            }
        }};
    }
    match chunk.len() {
        0 => {}
        1 => lanes!(1),
        2 => lanes!(2),
        3 => lanes!(3),
        _ => lanes!(4),
    }
}

/// A chaining value as the 20 digest bytes (big-endian words).
fn digest_bytes(h: &[u32; 5]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (o, w) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests;
