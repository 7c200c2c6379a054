//! CREATE_FAST / CREATED_FAST (tor-spec 5.1.5) with KDF-TOR (tor-spec 5.2.1).
//!
//! No public-key crypto: the client sends 20 random bytes X, the relay answers with 20 random
//! bytes Y and KH, and both expand `K0 = X | Y` with KDF-TOR into `KH | Df | Db | Kf | Kb`.
//! Only safe on a first hop whose link is already authenticated; we also use it to benchmark
//! forwarding without handshake cost.

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::sha1_stream::Sha1Stream;
use super::{HandshakeError, KeyMaterial, DIGEST_SEED_LEN, KEY_MATERIAL_LEN};

#[cfg(test)]
mod tests;

/// CREATE_FAST payload: `X [20]`.
pub const CLIENT_LEN: usize = 20;
/// CREATED_FAST payload: `Y [20] | KH [20]`.
pub const SERVER_LEN: usize = 40;

/// Longest output KDF-TOR can give: its one-byte counter runs from 0 to 255.
pub const KDF_TOR_MAX_LEN: usize = 256 * DIGEST_SEED_LEN;

/// Client state between CREATE_FAST and CREATED_FAST: the random X (zeroized on drop).
pub struct FastClient {
    x: [u8; CLIENT_LEN],
}

impl Drop for FastClient {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl std::fmt::Debug for FastClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastClient").finish_non_exhaustive()
    }
}

/// Starts a CREATE_FAST handshake: returns the state and the 20-byte payload X.
pub fn client_create<R: rand::RngCore + ?Sized>(rng: &mut R) -> (FastClient, [u8; CLIENT_LEN]) {
    let mut x = [0u8; CLIENT_LEN];
    rng.fill_bytes(&mut x);
    let out = client_create_with_secret(x);
    x.zeroize();
    out
}

/// [`client_create`] with a given X (deterministic; for known-answer tests).
pub fn client_create_with_secret(x: [u8; CLIENT_LEN]) -> (FastClient, [u8; CLIENT_LEN]) {
    (FastClient { x }, x)
}

impl FastClient {
    /// Checks CREATED_FAST (`Y | KH`) and derives the circuit keys.
    pub fn finish(self, reply: &[u8]) -> Result<KeyMaterial, HandshakeError> {
        let reply: &[u8; SERVER_LEN] = reply.try_into().map_err(|_| HandshakeError::BadLength)?;
        let (y, kh) = reply.split_at(CLIENT_LEN);
        let material = derive(&self.x, y);
        if bool::from(material.kh.ct_eq(kh)) {
            Ok(material)
        } else {
            Err(HandshakeError::BadAuth)
        }
    }
}

/// Answers a CREATE_FAST payload `x` with fresh randomness: the CREATED_FAST payload and keys.
pub fn server_respond<R: rand::RngCore + ?Sized>(
    rng: &mut R,
    x: &[u8],
) -> Result<([u8; SERVER_LEN], KeyMaterial), HandshakeError> {
    let mut y = [0u8; CLIENT_LEN];
    rng.fill_bytes(&mut y);
    let out = server_respond_with_secret(y, x);
    y.zeroize();
    out
}

/// [`server_respond`] with a given Y (deterministic; for known-answer tests).
/// [`HandshakeError::BadLength`] unless `x` is 20 bytes.
pub fn server_respond_with_secret(
    y: [u8; CLIENT_LEN],
    x: &[u8],
) -> Result<([u8; SERVER_LEN], KeyMaterial), HandshakeError> {
    let x: &[u8; CLIENT_LEN] = x.try_into().map_err(|_| HandshakeError::BadLength)?;
    let material = derive(x, &y);
    let mut reply = [0u8; SERVER_LEN];
    reply[..CLIENT_LEN].copy_from_slice(&y);
    reply[CLIENT_LEN..].copy_from_slice(&material.kh);
    Ok((reply, material))
}

/// KDF-TOR (tor-spec 5.2.1): `out = H(K0 | [00]) | H(K0 | [01]) | ...`, H = SHA-1, truncated
/// to `out.len()`.
///
/// # Panics
/// If `out` is longer than [`KDF_TOR_MAX_LEN`] (the counter would wrap); a caller bug, never
/// peer-controlled.
pub fn kdf_tor(k0: &[u8], out: &mut [u8]) {
    assert!(out.len() <= KDF_TOR_MAX_LEN, "KDF-TOR output too long");
    for (counter, chunk) in (0..=u8::MAX).zip(out.chunks_mut(DIGEST_SEED_LEN)) {
        let mut h = Sha1Stream::with_prefix(k0);
        h.update(&[counter]);
        let mut block = h.finish();
        chunk.copy_from_slice(&block[..chunk.len()]);
        // The hasher holds K0 in its partial block.
        h.zeroize();
        block.zeroize();
    }
}

/// Expands `X | Y` into keys. KDF-TOR puts KH first: `KH | Df | Db | Kf | Kb`.
fn derive(x: &[u8; CLIENT_LEN], y: &[u8]) -> KeyMaterial {
    let mut k0 = [0u8; 2 * CLIENT_LEN];
    k0[..CLIENT_LEN].copy_from_slice(x);
    k0[CLIENT_LEN..].copy_from_slice(y);
    let mut k = [0u8; KEY_MATERIAL_LEN];
    kdf_tor(&k0, &mut k);
    // Rotate into KeyMaterial's `Df | Db | Kf | Kb | KH` order.
    k.rotate_left(DIGEST_SEED_LEN);
    let material = KeyMaterial::from_bytes(&k);
    k.zeroize();
    k0.zeroize();
    material
}
