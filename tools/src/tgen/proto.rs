//! The wire protocol: a fixed request header, then `size` bytes of a seeded ChaCha8 stream.
//!
//! ```text
//!   offset  len  field
//!   0       4    magic   b"KTGN"
//!   4       1    version 1
//!   5       3    reserved, zero
//!   8       8    size    u64 big-endian: bytes the server sends
//!   16      8    seed    u64 big-endian: ChaCha8Rng::seed_from_u64(seed) makes the payload
//! ```
//!
//! The payload is the byte output of `ChaCha8Rng::seed_from_u64(seed)` (rand_chacha), taken
//! in [`BLOCK`]-byte `fill_bytes` calls on both sides: `fill_bytes` drops the unused bytes of
//! a partly used 32-bit word, so both ends must cut the stream at the same multiples of 4.

use kistrel_base::{ErrorKind, HasKind};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The first four bytes of every request.
pub const MAGIC: [u8; 4] = *b"KTGN";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Length of the request header.
pub const HEADER_LEN: usize = 24;
/// Payload generation block (a multiple of 4, see the module doc).
pub const BLOCK: usize = 4096;
/// Largest transfer a server accepts (1 TiB): a bound on what a peer can make it send.
pub const MAX_SIZE: u64 = 1 << 40;

/// Why a request header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first four bytes are not [`MAGIC`].
    #[error("bad magic")]
    BadMagic,
    /// A version this build does not speak.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// Reserved bytes not zero.
    #[error("reserved bytes not zero")]
    Reserved,
    /// More than [`MAX_SIZE`].
    #[error("size {0} above the limit")]
    TooLarge(u64),
}

impl HasKind for HeaderError {
    fn kind(&self) -> ErrorKind {
        // The other side sent a header this protocol does not allow.
        ErrorKind::PeerProtocol
    }
}

/// One transfer request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Bytes the server sends.
    pub size: u64,
    /// Seed of the payload stream.
    pub seed: u64,
}

impl Request {
    /// The header bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[8..16].copy_from_slice(&self.size.to_be_bytes());
        b[16..24].copy_from_slice(&self.seed.to_be_bytes());
        b
    }

    /// Parses a header (a fixed-size array: no length to check).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Self, HeaderError> {
        let (magic, rest) = b.split_at(4);
        if magic != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let (version, rest) = rest.split_at(1);
        if version != [VERSION] {
            return Err(HeaderError::BadVersion(
                version.first().copied().unwrap_or(0),
            ));
        }
        let (reserved, rest) = rest.split_at(3);
        if reserved != [0, 0, 0] {
            return Err(HeaderError::Reserved);
        }
        let (size, seed) = rest.split_at(8);
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_be_bytes(w)
        };
        let size = word(size);
        if size > MAX_SIZE {
            return Err(HeaderError::TooLarge(size));
        }
        Ok(Request {
            size,
            seed: word(seed),
        })
    }
}

/// The payload stream of one seed, handed out in pieces of any length.
#[derive(Debug)]
pub struct PayloadStream {
    rng: ChaCha8Rng,
    block: Box<[u8; BLOCK]>,
    /// INVARIANT: `pos <= BLOCK`; `block[pos..]` are the next bytes of the stream.
    pos: usize,
}

impl PayloadStream {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        PayloadStream {
            rng: ChaCha8Rng::seed_from_u64(seed),
            block: Box::new([0u8; BLOCK]),
            pos: BLOCK,
        }
    }

    /// The next `min(max, BLOCK - used)` bytes (never empty when `max > 0`).
    pub fn next_chunk(&mut self, max: usize) -> &[u8] {
        if self.pos == BLOCK {
            self.rng.fill_bytes(&mut self.block[..]);
            self.pos = 0;
        }
        let take = max.min(BLOCK - self.pos);
        let start = self.pos;
        self.pos += take;
        &self.block[start..start + take]
    }

    /// Compares `got` with the next `got.len()` bytes of the stream: `None` if all match,
    /// else the index in `got` of the first byte that differs.
    pub fn verify(&mut self, got: &[u8]) -> Option<usize> {
        let mut done = 0;
        while done < got.len() {
            let want = self.next_chunk(got.len() - done);
            let n = want.len();
            let have = &got[done..done + n];
            if have != want {
                let off = have.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                return Some(done + off);
            }
            done += n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_round_trip() {
        let r = Request {
            size: 0x0102_0304_0506_0708,
            seed: 42,
        };
        let b = r.emit();
        assert_eq!(
            b,
            [b'K', b'T', b'G', b'N', 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 42]
        );
        assert_eq!(Request::parse(&b), Err(HeaderError::TooLarge(r.size)));
        let small = Request { size: 5, seed: 9 };
        assert_eq!(Request::parse(&small.emit()), Ok(small));
    }

    #[test]
    fn header_errors() {
        let good = Request { size: 1, seed: 1 }.emit();
        let mut b = good;
        b[0] = b'X';
        assert_eq!(Request::parse(&b), Err(HeaderError::BadMagic));
        let mut b = good;
        b[4] = 2;
        assert_eq!(Request::parse(&b), Err(HeaderError::BadVersion(2)));
        let mut b = good;
        b[6] = 1;
        assert_eq!(Request::parse(&b), Err(HeaderError::Reserved));
    }

    #[test]
    fn stream_is_the_chacha8_output_whatever_the_chunking() {
        let mut whole = vec![0u8; 3 * BLOCK + 100];
        ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut whole);
        let mut s = PayloadStream::new(7);
        let mut got = Vec::new();
        for len in [1, 3, 4095, 5000, 17, 9000].iter().cycle() {
            if got.len() >= whole.len() {
                break;
            }
            got.extend_from_slice(s.next_chunk(*len));
        }
        got.truncate(whole.len());
        assert_eq!(got, whole);
    }

    #[test]
    fn verify_finds_the_first_bad_byte() {
        let mut whole = vec![0u8; 2 * BLOCK];
        ChaCha8Rng::seed_from_u64(3).fill_bytes(&mut whole);
        let mut s = PayloadStream::new(3);
        assert_eq!(s.verify(&whole[..10]), None);
        let mut rest = whole[10..].to_vec();
        rest[BLOCK + 5] ^= 0x40;
        assert_eq!(s.verify(&rest), Some(BLOCK + 5));
    }
}
