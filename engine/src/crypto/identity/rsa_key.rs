//! The RSA-1024 identity key (tor-spec 1.1 KP_relayid_rsa): generation, PKCS#1 encodings,
//! fingerprints, and Tor's unprefixed PKCS#1 v1.5 signatures.

use rand::RngCore;
use rand_chacha_03::rand_core::SeedableRng as _;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::IdentityError;
use crate::crypto::RelayId;

/// Tor's identity keys are exactly 1024 bits (tor-spec 1.1, checked by C Tor).
pub(super) const BITS: usize = 1024;
/// ... with the public exponent 65537.
const EXPONENT: u64 = 65_537;

/// A relay's RSA identity key pair. `Debug` prints the fingerprint only.
#[derive(Clone)]
pub struct RsaIdentityKey {
    key: RsaPrivateKey,
    /// INVARIANT: the PKCS#1 DER of `key`'s public half (what fingerprints hash).
    public_der: Vec<u8>,
    /// INVARIANT: SHA-1 of `public_der` (computed once: every CREATE2 names it).
    fingerprint: RelayId,
}

impl std::fmt::Debug for RsaIdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaIdentityKey")
            .field("fingerprint", &super::hex_upper(&self.fingerprint()))
            .finish_non_exhaustive()
    }
}

impl RsaIdentityKey {
    /// A fresh 1024-bit key. `rsa` draws primes from a rand_core 0.6 RNG, so a ChaCha20 of
    /// that generation is seeded from `rng`: the same seed gives the same key.
    pub fn generate<R: RngCore + ?Sized>(rng: &mut R) -> Result<Self, IdentityError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        let mut prime_rng = rand_chacha_03::ChaCha20Rng::from_seed(*seed);
        let key = RsaPrivateKey::new_with_exp(&mut prime_rng, BITS, &BigUint::from(EXPONENT))
            .map_err(|_| IdentityError::Rsa("key generation"))?;
        Self::from_key(key)
    }

    /// A stored key (PKCS#1 DER), which must be 1024 bits with exponent 65537.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, IdentityError> {
        let key = RsaPrivateKey::from_pkcs1_der(der)
            .map_err(|_| IdentityError::BadRsaKey("not a PKCS#1 RSA private key"))?;
        key.validate()
            .map_err(|_| IdentityError::BadRsaKey("inconsistent key"))?;
        Self::from_key(key)
    }

    fn from_key(key: RsaPrivateKey) -> Result<Self, IdentityError> {
        if key.n().bits() != BITS || key.e() != &BigUint::from(EXPONENT) {
            return Err(IdentityError::BadRsaKey(
                "not a 1024-bit key with exponent 65537",
            ));
        }
        let public_der = public_der(&key.to_public_key())
            .ok_or(IdentityError::BadRsaKey("public key does not encode"))?;
        let fingerprint = Sha1::digest(&public_der).into();
        Ok(RsaIdentityKey {
            key,
            public_der,
            fingerprint,
        })
    }

    /// The private key as PKCS#1 DER (for the key file).
    pub fn to_pkcs1_der(&self) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
        let doc = self
            .key
            .to_pkcs1_der()
            .map_err(|_| IdentityError::Rsa("PKCS#1 encoding"))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// A stored key in C Tor's `secret_id_key` format (PKCS#1 PEM, "RSA PRIVATE KEY").
    pub fn from_pkcs1_pem(pem: &str) -> Result<Self, IdentityError> {
        let key = RsaPrivateKey::from_pkcs1_pem(pem)
            .map_err(|_| IdentityError::BadRsaKey("not a PEM PKCS#1 RSA private key"))?;
        key.validate()
            .map_err(|_| IdentityError::BadRsaKey("inconsistent key"))?;
        Self::from_key(key)
    }

    /// The private key in C Tor's `secret_id_key` format (PKCS#1 PEM).
    pub fn to_pkcs1_pem(&self) -> Result<Zeroizing<String>, IdentityError> {
        self.key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|_| IdentityError::Rsa("PKCS#1 encoding"))
    }

    /// The public key as PKCS#1 DER (RSAPublicKey).
    pub fn public_der(&self) -> &[u8] {
        &self.public_der
    }

    /// The public key.
    pub fn public_key(&self) -> RsaPublicKey {
        self.key.to_public_key()
    }

    /// SHA-1 of the public key's PKCS#1 DER: the relay's 20-byte legacy identity.
    pub fn fingerprint(&self) -> RelayId {
        self.fingerprint
    }

    /// SHA-256 of the public key's PKCS#1 DER (AUTHENTICATE's CID / SID).
    pub fn der_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.public_der).into()
    }

    /// Tor's RSA signature of a digest: PKCS#1 v1.5 padding without the DigestInfo prefix.
    pub(super) fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, IdentityError> {
        self.key
            .sign(Pkcs1v15Sign::new_unprefixed(), digest)
            .map_err(|_| IdentityError::Rsa("signing"))
    }

    /// The key for the X.509 builder.
    pub(super) fn private(&self) -> &RsaPrivateKey {
        &self.key
    }
}

/// PKCS#1 DER of a public key.
pub(super) fn public_der(key: &RsaPublicKey) -> Option<Vec<u8>> {
    key.to_pkcs1_der().ok().map(|d| d.as_bytes().to_vec())
}

/// Checks Tor's RSA signature of `digest` (unprefixed PKCS#1 v1.5) by `key`.
pub(super) fn verify_digest(key: &RsaPublicKey, digest: &[u8; 32], sig: &[u8]) -> bool {
    key.verify(Pkcs1v15Sign::new_unprefixed(), digest, sig)
        .is_ok()
}
