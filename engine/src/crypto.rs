//! Circuit cryptography: the ntor and CREATE_FAST handshakes and Tor's "tor1" relay crypto.
//!
//! ```text
//!  client                          relay
//!  ntor::client_create  --CREATE2-->  ntor::server_respond
//!  NtorClient::finish  <--CREATED2--      |
//!        |                                |
//!   KeyMaterial (Df Db Kf Kb KH)     KeyMaterial (identical)
//!        |                                |
//!   relay_crypto::ClientLayer        relay_crypto::RelayLayer
//! ```
//!
//! Everything here is built from RustCrypto crates (`aes`, `ctr`, `sha1`, `sha2`, `hmac`,
//! `hkdf`) and `x25519-dalek`; nothing is hand-written below the protocol level. Secrets are
//! zeroized on drop and never printed by `Debug`.

use subtle::ConstantTimeEq;
use zeroize::ZeroizeOnDrop;

use crate::{ErrorKind, HasKind};

pub mod fast;
pub mod identity;
pub mod ntor;
pub mod relay_crypto;
mod sha1_stream;

#[cfg(test)]
mod tests;

/// A relay's identity digest (SHA-1 of its identity key in Tor; 20 opaque bytes for us).
pub type RelayId = [u8; 20];

/// Length of a digest seed (Df, Db) and of KH: SHA-1 output.
pub const DIGEST_SEED_LEN: usize = 20;
/// Length of an AES-128 key (Kf, Kb).
pub const CIPHER_KEY_LEN: usize = 16;
/// Length of the key material a circuit handshake produces: `Df | Db | Kf | Kb | KH`.
pub const KEY_MATERIAL_LEN: usize = 3 * DIGEST_SEED_LEN + 2 * CIPHER_KEY_LEN;
const _: () = assert!(KEY_MATERIAL_LEN == 92);

/// Keys derived by a circuit handshake (tor-spec 5.2: `Df | Db | Kf | Kb | KH`).
///
/// Zeroized on drop; `Debug` prints no key bytes; `==` compares in constant time.
#[derive(ZeroizeOnDrop)]
pub struct KeyMaterial {
    /// Seed of the forward (toward the exit) running digest.
    pub df: [u8; 20],
    /// Seed of the backward (toward the client) running digest.
    pub db: [u8; 20],
    /// Forward AES-128-CTR key.
    pub kf: [u8; 16],
    /// Backward AES-128-CTR key.
    pub kb: [u8; 16],
    /// Derivative key data (CREATE_FAST's proof; otherwise reserved, e.g. for circuit binding).
    pub kh: [u8; 20],
}

impl KeyMaterial {
    /// Splits 92 bytes in the order `Df | Db | Kf | Kb | KH` (the ntor HKDF output order).
    pub fn from_bytes(b: &[u8; KEY_MATERIAL_LEN]) -> Self {
        let mut km = KeyMaterial {
            df: [0; 20],
            db: [0; 20],
            kf: [0; 16],
            kb: [0; 16],
            kh: [0; 20],
        };
        let (df, rest) = b.split_at(DIGEST_SEED_LEN);
        let (db, rest) = rest.split_at(DIGEST_SEED_LEN);
        let (kf, rest) = rest.split_at(CIPHER_KEY_LEN);
        let (kb, kh) = rest.split_at(CIPHER_KEY_LEN);
        km.df.copy_from_slice(df);
        km.db.copy_from_slice(db);
        km.kf.copy_from_slice(kf);
        km.kb.copy_from_slice(kb);
        km.kh.copy_from_slice(kh);
        km
    }

    /// The inverse of [`KeyMaterial::from_bytes`]. The caller owns (and should zeroize) the copy.
    pub fn to_bytes(&self) -> [u8; KEY_MATERIAL_LEN] {
        let mut out = [0; KEY_MATERIAL_LEN];
        let parts: [&[u8]; 5] = [&self.df, &self.db, &self.kf, &self.kb, &self.kh];
        let mut at = 0;
        for part in parts {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial").finish_non_exhaustive()
    }
}

impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        let same = self.df.ct_eq(&other.df)
            & self.db.ct_eq(&other.db)
            & self.kf.ct_eq(&other.kf)
            & self.kb.ct_eq(&other.kb)
            & self.kh.ct_eq(&other.kh);
        same.into()
    }
}

impl Eq for KeyMaterial {}

/// Why a circuit handshake failed. All variants but `Internal` are the peer's fault (or a
/// wrong directory entry); the relay answers with DESTROY (PROTOCOL), the client abandons the
/// circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The handshake data has the wrong length for its type.
    #[error("handshake data has the wrong length")]
    BadLength,
    /// The client addressed a relay identity or ntor onion key that is not ours.
    #[error("handshake is for another relay identity or onion key")]
    UnknownRelay,
    /// The server's proof (ntor AUTH or CREATE_FAST KH) did not verify.
    #[error("handshake authentication failed")]
    BadAuth,
    /// A Diffie-Hellman result was all zeros: the peer sent a low-order point.
    #[error("handshake produced an all-zero shared secret")]
    ZeroSharedSecret,
    /// A key-derivation primitive refused its input (HMAC key, HKDF output length). Our
    /// inputs are constants within its limits, so this is a bug in kistrel, never the peer's.
    #[error("handshake key derivation failed (internal error)")]
    Internal,
}

impl HasKind for HandshakeError {
    fn kind(&self) -> ErrorKind {
        match self {
            HandshakeError::BadLength
            | HandshakeError::UnknownRelay
            | HandshakeError::BadAuth
            | HandshakeError::ZeroSharedSecret => ErrorKind::PeerProtocol,
            HandshakeError::Internal => ErrorKind::Internal,
        }
    }
}
