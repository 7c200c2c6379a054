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

use std::ops::Range;

use aes::cipher::{KeyIvInit, StreamCipher};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::KeyMaterial;
use crate::wire::{CELL_BODY_LEN, RELAY_DIGEST, RELAY_RECOGNIZED};

#[cfg(test)]
mod tests;

/// Length of a relay cell body (the payload of a 514-byte RELAY / RELAY_EARLY cell).
pub const BODY_LEN: usize = CELL_BODY_LEN;

/// `recognized u16` in the relay header (`cmd u8 | recognized u16 | stream u16 | digest [4]`).
const RECOGNIZED: Range<usize> = RELAY_RECOGNIZED;
/// `digest [4]` in the relay header.
const DIGEST: Range<usize> = RELAY_DIGEST;

/// AES-128 in CTR mode with the whole 16-byte block as a big-endian counter (Tor's AES-CTR).
/// The encrypt-only key schedule is enough for CTR and half the size.
type Aes128Ctr = ctr::Ctr128BE<aes::Aes128Enc>;

/// One direction of one hop: cipher, running digest and the digest after the last cell.
struct HopDirection {
    /// AES-128-CTR keyed with Kf or Kb; its keystream position is the number of bodies
    /// this direction has processed times 509.
    cipher: Aes128Ctr,
    /// SHA-1 seeded with Df or Db, then fed every body sealed or recognized here.
    digest: Sha1,
    /// INVARIANT: zeros until the first body is sealed or recognized; after that, equal to
    /// `digest` finalized (the two change together, and nothing else feeds `digest`).
    last: [u8; 20],
}

impl HopDirection {
    fn new(key: &[u8; 16], digest_seed: &[u8; 20]) -> Self {
        HopDirection {
            cipher: Aes128Ctr::new(key.into(), &Default::default()),
            digest: Sha1::new_with_prefix(digest_seed),
            last: [0; 20],
        }
    }

    fn apply_keystream(&mut self, body: &mut [u8; BODY_LEN]) {
        self.cipher.apply_keystream(body);
    }

    /// Zeroes `recognized` and `digest`, advances the running digest over the body and writes
    /// the first 4 bytes of it into the digest field.
    fn seal(&mut self, body: &mut [u8; BODY_LEN]) {
        body[RECOGNIZED].fill(0);
        body[DIGEST].fill(0);
        self.digest.update(&body[..]);
        self.last = self.digest.clone().finalize().into();
        body[DIGEST].copy_from_slice(&self.last[..DIGEST.len()]);
    }

    /// True (and the digest advanced) if the plaintext `body` is addressed to this hop.
    fn check(&mut self, body: &[u8; BODY_LEN]) -> bool {
        // Cheap test first: a cell passing through has random bytes here.
        if body[RECOGNIZED] != [0, 0] {
            return false;
        }
        let mut candidate = self.digest.clone();
        candidate.update(&body[..DIGEST.start]);
        candidate.update([0u8; DIGEST.end - DIGEST.start]);
        candidate.update(&body[DIGEST.end..]);
        let full: [u8; 20] = candidate.clone().finalize().into();
        if bool::from(full[..DIGEST.len()].ct_eq(&body[DIGEST])) {
            self.digest = candidate;
            self.last = full;
            true
        } else {
            false
        }
    }
}

/// The relay's side of one hop of a circuit: removes forward layers, adds backward ones.
pub struct RelayLayer {
    fwd: HopDirection,
    back: HopDirection,
}

impl RelayLayer {
    /// Keys the layer from a handshake's output (Kf/Df forward, Kb/Db backward).
    pub fn new(keys: &KeyMaterial) -> Self {
        RelayLayer {
            fwd: HopDirection::new(&keys.kf, &keys.df),
            back: HopDirection::new(&keys.kb, &keys.db),
        }
    }

    /// A forward (toward the exit) cell arrived: remove this hop's layer. Returns true if the
    /// cell is now recognized here (recognized == 0 and the digest field matches the forward
    /// running digest over the body with the digest field zeroed); in that case the running
    /// digest has advanced. Otherwise the digest state is unchanged and the caller forwards
    /// the cell.
    pub fn decrypt_forward(&mut self, body: &mut [u8; BODY_LEN]) -> bool {
        self.fwd.apply_keystream(body);
        self.fwd.check(body)
    }

    /// A backward cell originated at this hop: zero `recognized` and `digest` (the caller
    /// normally has), advance the backward digest, write its first 4 bytes, then encrypt.
    pub fn originate_backward(&mut self, body: &mut [u8; BODY_LEN]) {
        self.back.seal(body);
        self.back.apply_keystream(body);
    }

    /// A backward cell from further along the circuit: add this hop's layer.
    pub fn encrypt_backward(&mut self, body: &mut [u8; BODY_LEN]) {
        self.back.apply_keystream(body);
    }

    /// Full running digest right after the last cell recognized forward (zeros before any).
    /// Authenticated SENDME v1: what the client's SENDME to us must carry.
    pub fn last_forward_digest(&self) -> [u8; 20] {
        self.fwd.last
    }

    /// Full running digest right after the last cell originated backward (zeros before any).
    /// Authenticated SENDME v1: remember it at every 100th DATA cell sent, and expect it back.
    pub fn last_backward_digest(&self) -> [u8; 20] {
        self.back.last
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
        self.fwd.seal(body);
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
        self.back.check(body)
    }

    /// Full running digest right after the last cell originated forward (zeros before any).
    pub fn last_forward_digest(&self) -> [u8; 20] {
        self.fwd.last
    }

    /// Full running digest right after the last cell recognized backward (zeros before any).
    pub fn last_backward_digest(&self) -> [u8; 20] {
        self.back.last
    }
}

impl std::fmt::Debug for ClientLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLayer").finish_non_exhaustive()
    }
}
