//! Tor's "tor1" relay-cell crypto (tor-spec 5.5 and 6.1).
//!
//! Per hop and direction: AES-128-CTR with a zero IV whose keystream runs on across cells for
//! the life of the circuit, and a running SHA-1 seeded with Df (forward) or Db (backward) over
//! every relay body originated at / recognized by that hop, with the 4-byte digest field zeroed.
//!
//! ```text
//! forward:  client: seal(hop3) enc3 enc2 enc1 --> R1 dec1 --> R2 dec2 --> R3 dec3, recognized
//! backward: R3: seal enc3 --> R2 enc2 --> R1 enc1 --> client: dec1 (no) dec2 (no) dec3 (yes)
//! ```
//!
//! The per-cell path allocates nothing; the SHA-1 state is cloned only when the cheap
//! `recognized == 0` test passes (1 in 65536 for a cell passing through).
//!
//! # Memory: one AES key schedule where it is used
//!
//! An expanded AES-128 key is 176 bytes of round keys on AES instructions
//! (`sys::aes_ctr`) and ~700 bytes in the `aes` crate's portable code, per direction; a relay
//! holds two directions per circuit, idle or not. So a relay's layer ([`RelayLayer`]) keeps
//! only the 16-byte key and the keystream position per direction, and the expanded cipher of
//! the directions in use lives in the worker's [`CipherCache`] (direct-mapped,
//! [`CIPHER_CACHE_SLOTS`] entries): a busy circuit finds its key schedule there; an idle one
//! costs nothing; a miss expands the key (the keystream position is the layer's own, so
//! nothing needs seeking). The origin's [`ClientLayer`] keeps its ciphers (a client has few
//! circuits). Keys and key schedules are zeroized on drop (`sys::aes_ctr`'s own `Drop`, the
//! `aes` `zeroize` feature), and so are the running digests' SHA-1 states, seeded with Df /
//! Db ([`RunningDigest`]'s `Drop`). The keystream of a body and the copies of a digest state
//! made per cell live on the stack for one call and are not wiped.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::sha1_stream::Sha1Stream;
use super::KeyMaterial;
use crate::wire::{CELL_BODY_LEN, RELAY_DIGEST, RELAY_RECOGNIZED};

mod keystream;
#[cfg(test)]
mod tests;

use keystream::Aes128;

/// Length of a relay cell body (the payload of a 514-byte RELAY / RELAY_EARLY cell).
pub const BODY_LEN: usize = CELL_BODY_LEN;

/// `recognized u16` in the relay header (`cmd u8 | recognized u16 | stream u16 | digest [4]`).
const RECOGNIZED: Range<usize> = RELAY_RECOGNIZED;
/// `digest [4]` in the relay header.
const DIGEST: Range<usize> = RELAY_DIGEST;

/// Expanded ciphers a worker keeps for the relay layers in use. 512 entries of 192 bytes on
/// CPUs with AES instructions (the portable schedule is boxed): ~96 KiB per worker, allocated
/// on first use, against ~1.5 KiB per circuit otherwise.
pub const CIPHER_CACHE_SLOTS: usize = 512;

/// Names a relay layer's direction in the cache; unique for the life of the process.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

struct CachedCipher {
    owner: u64,
    cipher: Aes128,
}

/// The expanded AES-CTR states of the relay-layer directions a worker used most recently
/// (see the module docs). One per worker (the `Relay` owns it); only a cache: any entry may
/// be dropped at any time, the layer's key and position rebuild it.
#[derive(Default)]
pub struct CipherCache {
    slots: Vec<Option<CachedCipher>>,
    /// Lookups that had to expand a key.
    misses: u64,
}

impl std::fmt::Debug for CipherCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CipherCache")
            .field("misses", &self.misses)
            .finish_non_exhaustive()
    }
}

impl CipherCache {
    /// An empty cache (it allocates its slots on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Lookups so far that found no cipher and expanded the key.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// XORs `stream`'s keystream into `body` and advances it by one body.
    #[inline]
    fn apply(&mut self, stream: &mut Keystream, body: &mut [u8; BODY_LEN]) {
        match self.cached(stream) {
            Some(cipher) => keystream::apply(cipher, stream.pos, body),
            None => self.apply_missed(stream, None, body),
        }
        stream.pos += BODY_LEN as u64;
    }

    /// [`CipherCache::apply`] out of place: writes `src` XOR `stream`'s keystream into
    /// `body`, one pass over the bytes. `inline(always)`: a forwarding relay's per-cell call,
    /// small (a slot compare around the instruction-set call), and left out of line by LLVM
    /// with only `#[inline]` in some builds (session 20).
    #[inline(always)]
    fn apply_from(
        &mut self,
        stream: &mut Keystream,
        src: &[u8; BODY_LEN],
        body: &mut [u8; BODY_LEN],
    ) {
        match self.cached(stream) {
            Some(cipher) => keystream::apply_from(cipher, stream.pos, src, body),
            None => self.apply_missed(stream, Some(src), body),
        }
        stream.pos += BODY_LEN as u64;
    }

    /// `stream`'s expanded cipher, if its slot holds it.
    #[inline]
    fn cached(&self, stream: &Keystream) -> Option<&Aes128> {
        let i = (stream.owner % CIPHER_CACHE_SLOTS as u64) as usize;
        match self.slots.get(i) {
            Some(Some(e)) if e.owner == stream.owner => Some(&e.cipher),
            _ => None,
        }
    }

    /// [`CipherCache::apply`] without the cipher at hand: expand it into slot `i` (kept out
    /// of line, so the hit path stays small enough to inline the keystream loop).
    #[cold]
    #[inline(never)]
    fn apply_missed(
        &mut self,
        stream: &Keystream,
        src: Option<&[u8; BODY_LEN]>,
        body: &mut [u8; BODY_LEN],
    ) {
        self.misses += 1;
        if self.slots.is_empty() {
            self.slots.resize_with(CIPHER_CACHE_SLOTS, || None);
        }
        let cipher = stream.expand();
        match src {
            Some(src) => keystream::apply_from(&cipher, stream.pos, src, body),
            None => keystream::apply(&cipher, stream.pos, body),
        }
        let i = (stream.owner % CIPHER_CACHE_SLOTS as u64) as usize;
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(CachedCipher {
                owner: stream.owner,
                cipher,
            });
        }
    }

    /// Drops (and so zeroizes) the cached cipher of `stream`, if any.
    fn forget(&mut self, stream: &Keystream) {
        let i = (stream.owner % CIPHER_CACHE_SLOTS as u64) as usize;
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.as_ref().is_some_and(|e| e.owner == stream.owner) {
                *slot = None;
            }
        }
    }
}

/// A relay-layer direction's AES-CTR: the key and how far the keystream has run. INVARIANT:
/// `pos` is the number of bodies processed times 509, also in the cached cipher if any.
struct Keystream {
    key: [u8; 16],
    pos: u64,
    owner: u64,
}

impl Keystream {
    fn new(key: &[u8; 16]) -> Self {
        Keystream {
            key: *key,
            pos: 0,
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The expanded key schedule (the position stays in `pos`).
    fn expand(&self) -> Aes128 {
        Aes128::new(&self.key)
    }
}

impl Drop for Keystream {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// One direction's running digest and the digest after its last cell; both wiped on drop.
#[derive(ZeroizeOnDrop)]
struct RunningDigest {
    /// SHA-1 seeded with Df or Db, then fed every body sealed or recognized here.
    digest: Sha1Stream,
    /// INVARIANT: zeros until the first body is sealed or recognized; after that, equal to
    /// `digest` finalized (the two change together, and nothing else feeds `digest`).
    last: [u8; 20],
}

impl RunningDigest {
    fn new(seed: &[u8; 20]) -> Self {
        RunningDigest {
            digest: Sha1Stream::with_prefix(seed),
            last: [0; 20],
        }
    }

    /// Zeroes `recognized` and `digest`, advances the running digest over the body and writes
    /// the first 4 bytes of it into the digest field.
    fn seal(&mut self, body: &mut [u8; BODY_LEN]) {
        body[RECOGNIZED].fill(0);
        body[DIGEST].fill(0);
        self.digest.update(&body[..]);
        self.last = self.digest.finish();
        body[DIGEST].copy_from_slice(&self.last[..DIGEST.len()]);
    }

    /// True (and the digest advanced) if the plaintext `body` is addressed to this hop.
    /// `#[inline]` for the cheap test, which a cell passing through fails (random bytes in
    /// `recognized`); the digest itself is out of line ([`RunningDigest::check_digest`]).
    /// `body` comes back as it went in.
    #[inline]
    fn check(&mut self, body: &mut [u8; BODY_LEN]) -> bool {
        body[RECOGNIZED] == [0, 0] && self.check_digest(body)
    }

    /// [`RunningDigest::check`] past its cheap test. The digest covers the body with its
    /// digest field zeroed: the field is zeroed where it lies and put back afterwards, so
    /// the body goes to the hash in one update (three, around a separate run of zeros, cost
    /// two more partial-block copies per cell).
    #[inline(never)]
    fn check_digest(&mut self, body: &mut [u8; BODY_LEN]) -> bool {
        let mut claimed = [0u8; DIGEST.end - DIGEST.start];
        claimed.copy_from_slice(&body[DIGEST]);
        body[DIGEST].fill(0);
        let mut candidate = self.digest.clone();
        candidate.update(&body[..]);
        body[DIGEST].copy_from_slice(&claimed);
        let full = candidate.finish();
        if bool::from(full[..DIGEST.len()].ct_eq(&claimed)) {
            self.digest = candidate;
            self.last = full;
            true
        } else {
            false
        }
    }
}

/// One direction of the origin's layer for one hop: its own cipher and digest.
struct HopDirection {
    /// AES-128 keyed with Kf or Kb.
    cipher: Aes128,
    /// Keystream position: the number of bodies this direction has processed times 509.
    pos: u64,
    digest: RunningDigest,
}

impl HopDirection {
    fn new(key: &[u8; 16], digest_seed: &[u8; 20]) -> Self {
        HopDirection {
            cipher: Aes128::new(key),
            pos: 0,
            digest: RunningDigest::new(digest_seed),
        }
    }

    fn apply_keystream(&mut self, body: &mut [u8; BODY_LEN]) {
        keystream::apply(&self.cipher, self.pos, body);
        self.pos += BODY_LEN as u64;
    }
}

/// One direction of a relay's layer for one hop: key and position, digest.
struct RelayDirection {
    stream: Keystream,
    digest: RunningDigest,
}

impl RelayDirection {
    fn new(key: &[u8; 16], digest_seed: &[u8; 20]) -> Self {
        RelayDirection {
            stream: Keystream::new(key),
            digest: RunningDigest::new(digest_seed),
        }
    }
}

/// The relay's side of one hop of a circuit: removes forward layers, adds backward ones.
/// Its ciphers live in the worker's [`CipherCache`], passed to every call.
pub struct RelayLayer {
    fwd: RelayDirection,
    back: RelayDirection,
}

impl RelayLayer {
    /// Keys the layer from a handshake's output (Kf/Df forward, Kb/Db backward).
    pub fn new(keys: &KeyMaterial) -> Self {
        RelayLayer {
            fwd: RelayDirection::new(&keys.kf, &keys.df),
            back: RelayDirection::new(&keys.kb, &keys.db),
        }
    }

    /// A forward (toward the exit) cell arrived: remove this hop's layer. Returns true if the
    /// cell is now recognized here (recognized == 0 and the digest field matches the forward
    /// running digest over the body with the digest field zeroed); in that case the running
    /// digest has advanced. Otherwise the digest state is unchanged and the caller forwards
    /// the cell.
    pub fn decrypt_forward(
        &mut self,
        ciphers: &mut CipherCache,
        body: &mut [u8; BODY_LEN],
    ) -> bool {
        ciphers.apply(&mut self.fwd.stream, body);
        self.fwd.digest.check(body)
    }

    /// [`RelayLayer::decrypt_forward`] of the body `src` (in a receive buffer) into `body`
    /// (the cell's queue slot): the copy and the decryption are one pass over the bytes.
    #[inline]
    pub fn decrypt_forward_from(
        &mut self,
        ciphers: &mut CipherCache,
        src: &[u8; BODY_LEN],
        body: &mut [u8; BODY_LEN],
    ) -> bool {
        ciphers.apply_from(&mut self.fwd.stream, src, body);
        self.fwd.digest.check(body)
    }

    /// A backward cell originated at this hop: zero `recognized` and `digest` (the caller
    /// normally has), advance the backward digest, write its first 4 bytes, then encrypt.
    pub fn originate_backward(&mut self, ciphers: &mut CipherCache, body: &mut [u8; BODY_LEN]) {
        self.back.digest.seal(body);
        ciphers.apply(&mut self.back.stream, body);
    }

    /// A backward cell from further along the circuit: add this hop's layer.
    pub fn encrypt_backward(&mut self, ciphers: &mut CipherCache, body: &mut [u8; BODY_LEN]) {
        ciphers.apply(&mut self.back.stream, body);
    }

    /// [`RelayLayer::encrypt_backward`] of the body `src` into `body`, in one pass (as
    /// [`RelayLayer::decrypt_forward_from`]).
    #[inline]
    pub fn encrypt_backward_from(
        &mut self,
        ciphers: &mut CipherCache,
        src: &[u8; BODY_LEN],
        body: &mut [u8; BODY_LEN],
    ) {
        ciphers.apply_from(&mut self.back.stream, src, body);
    }

    /// The circuit is gone: drop its ciphers from the cache now rather than when their
    /// entries are reused.
    pub fn forget(&self, ciphers: &mut CipherCache) {
        ciphers.forget(&self.fwd.stream);
        ciphers.forget(&self.back.stream);
    }

    /// Full running digest right after the last cell recognized forward (zeros before any).
    /// Authenticated SENDME v1: what the client's SENDME to us must carry.
    pub fn last_forward_digest(&self) -> [u8; 20] {
        self.fwd.digest.last
    }

    /// Full running digest right after the last cell originated backward (zeros before any).
    /// Authenticated SENDME v1: remember it at every 100th DATA cell sent, and expect it back.
    pub fn last_backward_digest(&self) -> [u8; 20] {
        self.back.digest.last
    }
}

impl std::fmt::Debug for RelayLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayLayer").finish_non_exhaustive()
    }
}

/// The circuit origin's state for one hop.
pub struct ClientLayer {
    fwd: HopDirection,
    back: HopDirection,
}

impl ClientLayer {
    /// Keys the layer from a handshake's output (Kf/Df forward, Kb/Db backward).
    pub fn new(keys: &KeyMaterial) -> Self {
        ClientLayer {
            fwd: HopDirection::new(&keys.kf, &keys.df),
            back: HopDirection::new(&keys.kb, &keys.db),
        }
    }

    /// A cell the client sends to THIS hop: zero `recognized` and `digest`, advance the
    /// forward digest, set the digest field, encrypt. The caller then calls
    /// [`ClientLayer::encrypt_forward`] on every earlier hop, nearest-to-target first.
    pub fn originate_forward(&mut self, body: &mut [u8; BODY_LEN]) {
        self.fwd.digest.seal(body);
        self.fwd.apply_keystream(body);
    }

    /// Add this hop's layer only (for cells destined to later hops).
    pub fn encrypt_forward(&mut self, body: &mut [u8; BODY_LEN]) {
        self.fwd.apply_keystream(body);
    }

    /// Remove this hop's layer from a backward cell; true if recognized as from this hop
    /// (digest advanced), false otherwise (digest unchanged, try the next hop).
    pub fn decrypt_backward(&mut self, body: &mut [u8; BODY_LEN]) -> bool {
        self.back.apply_keystream(body);
        self.back.digest.check(body)
    }

    /// Full running digest right after the last cell originated forward (zeros before any).
    pub fn last_forward_digest(&self) -> [u8; 20] {
        self.fwd.digest.last
    }

    /// Full running digest right after the last cell recognized backward (zeros before any).
    pub fn last_backward_digest(&self) -> [u8; 20] {
        self.back.digest.last
    }
}

impl std::fmt::Debug for ClientLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLayer").finish_non_exhaustive()
    }
}
