//! The ntor circuit handshake (tor-spec 5.1.4, "ntor-curve25519-sha256-1"), CREATE2 HTYPE 2.
//!
//! ```text
//! client: X = x*G           CREATE2  ID | B | X   ------>  relay checks ID, B are its own
//!                                                           Y = y*G
//!                                                           secret_input = xy | xb | ID | B | X | Y | PROTOID
//! client recomputes,      <------  CREATED2  Y | AUTH       AUTH = H(verify | ID | B | Y | X | PROTOID | "Server", t_mac)
//! checks AUTH (constant time)
//! both: HKDF-SHA256(salt t_key, secret_input, info m_expand) -> Df | Db | Kf | Kb | KH
//! ```

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroize;

use super::{HandshakeError, KeyMaterial, RelayId, KEY_MATERIAL_LEN};

#[cfg(test)]
mod tests;

/// CREATE2 handshake type of ntor.
pub const HTYPE: u16 = 2;
/// Client handshake data: `ID [20] | B [32] | X [32]`.
pub const CLIENT_HDATA_LEN: usize = ID_LEN + 2 * KEY_LEN;
/// Server handshake data: `Y [32] | AUTH [32]`.
pub const SERVER_HDATA_LEN: usize = KEY_LEN + AUTH_LEN;

const ID_LEN: usize = 20;
const KEY_LEN: usize = 32;
const AUTH_LEN: usize = 32;

// Protocol strings from tor-spec 5.1.4.
const PROTOID: &[u8] = b"ntor-curve25519-sha256-1";
const T_MAC: &[u8] = b"ntor-curve25519-sha256-1:mac";
const T_KEY: &[u8] = b"ntor-curve25519-sha256-1:key_extract";
const T_VERIFY: &[u8] = b"ntor-curve25519-sha256-1:verify";
const M_EXPAND: &[u8] = b"ntor-curve25519-sha256-1:key_expand";
const SERVER_STR: &[u8] = b"Server";

/// `EXP(X,y) | EXP(X,b) | ID | B | X | Y | PROTOID`.
const SECRET_INPUT_LEN: usize = 2 * KEY_LEN + ID_LEN + 3 * KEY_LEN + PROTOID.len();
/// `verify | ID | B | Y | X | PROTOID | "Server"`.
const AUTH_INPUT_LEN: usize = 32 + ID_LEN + 3 * KEY_LEN + PROTOID.len() + SERVER_STR.len();

// RFC 5869 caps HKDF-SHA256 output at 255 hash lengths; ours is far below, so expand cannot fail.
const _: () = assert!(KEY_MATERIAL_LEN <= 255 * 32);

/// A relay's ntor onion key pair (`b`, `B`). The secret is zeroized on drop. `Clone` so each
/// worker thread can hold its own copy.
#[derive(Clone)]
pub struct NtorKeypair {
    /// The onion key secret `b`.
    secret: StaticSecret,
    /// INVARIANT: `PublicKey::from(&secret)`, the `B` clients put in CREATE2.
    public: PublicKey,
}

impl NtorKeypair {
    /// A fresh key pair from 32 random bytes (x25519 clamps them).
    pub fn generate<R: rand::RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let keys = Self::from_secret(bytes);
        bytes.zeroize();
        keys
    }

    /// The key pair for a stored secret (as written by [`NtorKeypair::secret_bytes`]).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret);
        NtorKeypair { secret, public }
    }

    /// The secret scalar bytes, for writing key files.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// The public onion key `B`, as published in the directory.
    pub fn public(&self) -> [u8; 32] {
        self.public.to_bytes()
    }
}

impl std::fmt::Debug for NtorKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtorKeypair")
            .field("public", &self.public.as_bytes())
            .finish_non_exhaustive()
    }
}

/// Client state between sending CREATE2 and receiving CREATED2. Holds the ephemeral secret
/// `x` (zeroized on drop).
pub struct NtorClient {
    /// The ephemeral secret `x`.
    x: StaticSecret,
    /// INVARIANT: `PublicKey::from(&x)`, the `X` sent in CREATE2.
    x_public: PublicKey,
    /// The relay identity `ID` sent in CREATE2.
    relay_id: RelayId,
    /// The relay's onion key `B` sent in CREATE2.
    relay_b: PublicKey,
}

impl std::fmt::Debug for NtorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtorClient")
            .field("relay_id", &self.relay_id)
            .finish_non_exhaustive()
    }
}

/// Starts a handshake with the relay `relay_id` whose onion key is `relay_ntor_public`.
/// Returns the state to keep and the CREATE2 HDATA to send.
pub fn client_create<R: rand::RngCore + ?Sized>(
    rng: &mut R,
    relay_id: &RelayId,
    relay_ntor_public: &[u8; 32],
) -> (NtorClient, [u8; CLIENT_HDATA_LEN]) {
    let mut x = [0u8; 32];
    rng.fill_bytes(&mut x);
    let out = client_create_with_secret(x, relay_id, relay_ntor_public);
    x.zeroize();
    out
}

/// [`client_create`] with a given ephemeral secret `x` (deterministic; for known-answer tests).
pub fn client_create_with_secret(
    x: [u8; 32],
    relay_id: &RelayId,
    relay_ntor_public: &[u8; 32],
) -> (NtorClient, [u8; CLIENT_HDATA_LEN]) {
    let x = StaticSecret::from(x);
    let x_public = PublicKey::from(&x);
    let mut hdata = [0u8; CLIENT_HDATA_LEN];
    hdata[..ID_LEN].copy_from_slice(relay_id);
    hdata[ID_LEN..ID_LEN + KEY_LEN].copy_from_slice(relay_ntor_public);
    hdata[ID_LEN + KEY_LEN..].copy_from_slice(x_public.as_bytes());
    let client = NtorClient {
        x,
        x_public,
        relay_id: *relay_id,
        relay_b: PublicKey::from(*relay_ntor_public),
    };
    (client, hdata)
}

impl NtorClient {
    /// Checks the relay's CREATED2 HDATA (`Y | AUTH`) and derives the circuit keys.
    pub fn finish(self, server_hdata: &[u8]) -> Result<KeyMaterial, HandshakeError> {
        let (y_bytes, auth) = split_server_hdata(server_hdata)?;
        let y_public = PublicKey::from(y_bytes);
        let xy = self.x.diffie_hellman(&y_public);
        let xb = self.x.diffie_hellman(&self.relay_b);
        let parties = Parties {
            id: &self.relay_id,
            b: &self.relay_b,
            x: &self.x_public,
            y: &y_public,
        };
        let (expected_auth, keys) = derive(&xy, &xb, &parties)?;
        if bool::from(expected_auth.ct_eq(&auth)) {
            Ok(keys)
        } else {
            Err(HandshakeError::BadAuth)
        }
    }
}

/// Answers a CREATE2 HDATA with fresh randomness. Returns the CREATED2 HDATA and the keys.
pub fn server_respond<R: rand::RngCore + ?Sized>(
    rng: &mut R,
    my_id: &RelayId,
    keys: &NtorKeypair,
    client_hdata: &[u8],
) -> Result<([u8; SERVER_HDATA_LEN], KeyMaterial), HandshakeError> {
    let mut y = [0u8; 32];
    rng.fill_bytes(&mut y);
    let out = server_respond_with_secret(y, my_id, keys, client_hdata);
    y.zeroize();
    out
}

/// [`server_respond`] with a given ephemeral secret `y` (deterministic; for known-answer tests).
///
/// Errors: [`HandshakeError::BadLength`] unless `client_hdata` is 84 bytes;
/// [`HandshakeError::UnknownRelay`] if its ID or B is not ours;
/// [`HandshakeError::ZeroSharedSecret`] if X is a low-order point.
pub fn server_respond_with_secret(
    y: [u8; 32],
    my_id: &RelayId,
    keys: &NtorKeypair,
    client_hdata: &[u8],
) -> Result<([u8; SERVER_HDATA_LEN], KeyMaterial), HandshakeError> {
    let (id, b, x_bytes) = split_client_hdata(client_hdata)?;
    // ID and B are public; no need for constant time here.
    if id != *my_id || b != keys.public() {
        return Err(HandshakeError::UnknownRelay);
    }
    let y = StaticSecret::from(y);
    let y_public = PublicKey::from(&y);
    let x_public = PublicKey::from(x_bytes);
    let xy = y.diffie_hellman(&x_public);
    let xb = keys.secret.diffie_hellman(&x_public);
    let parties = Parties {
        id: my_id,
        b: &keys.public,
        x: &x_public,
        y: &y_public,
    };
    let (auth, material) = derive(&xy, &xb, &parties)?;
    let mut reply = [0u8; SERVER_HDATA_LEN];
    reply[..KEY_LEN].copy_from_slice(y_public.as_bytes());
    reply[KEY_LEN..].copy_from_slice(&auth);
    Ok((reply, material))
}

/// The public values both sides hash.
struct Parties<'a> {
    id: &'a RelayId,
    b: &'a PublicKey,
    x: &'a PublicKey,
    y: &'a PublicKey,
}

/// Computes AUTH and the key material from the two Diffie-Hellman results (`EXP(Y,x)` =
/// `EXP(X,y)` and `EXP(B,x)` = `EXP(X,b)`). Rejects all-zero results as Tor does.
fn derive(
    xy: &SharedSecret,
    xb: &SharedSecret,
    p: &Parties<'_>,
) -> Result<([u8; AUTH_LEN], KeyMaterial), HandshakeError> {
    if !xy.was_contributory() || !xb.was_contributory() {
        return Err(HandshakeError::ZeroSharedSecret);
    }
    let mut secret_input = [0u8; SECRET_INPUT_LEN];
    concat_into(
        &mut secret_input,
        &[
            xy.as_bytes(),
            xb.as_bytes(),
            p.id,
            p.b.as_bytes(),
            p.x.as_bytes(),
            p.y.as_bytes(),
            PROTOID,
        ],
    );
    // Zeroized whether or not the derivation succeeds.
    let derived = derive_from_secret(&secret_input, p);
    secret_input.zeroize();
    derived
}

/// AUTH and the key material from `secret_input`; every intermediate secret is zeroized.
fn derive_from_secret(
    secret_input: &[u8; SECRET_INPUT_LEN],
    p: &Parties<'_>,
) -> Result<([u8; AUTH_LEN], KeyMaterial), HandshakeError> {
    let mut verify = hmac_sha256(T_VERIFY, secret_input)?;
    let mut auth_input = [0u8; AUTH_INPUT_LEN];
    concat_into(
        &mut auth_input,
        &[
            &verify,
            p.id,
            p.b.as_bytes(),
            p.y.as_bytes(),
            p.x.as_bytes(),
            PROTOID,
            SERVER_STR,
        ],
    );
    verify.zeroize();
    let auth = hmac_sha256(T_MAC, &auth_input);
    auth_input.zeroize();
    let auth = auth?;

    let mut okm = [0u8; KEY_MATERIAL_LEN];
    // Cannot fail: 92 bytes is far below RFC 5869's limit (asserted above).
    let expanded = Hkdf::<Sha256>::new(Some(T_KEY), secret_input).expand(M_EXPAND, &mut okm);
    let material = KeyMaterial::from_bytes(&okm);
    okm.zeroize();
    expanded.map_err(|_| HandshakeError::Internal)?;
    Ok((auth, material))
}

/// tor-spec's `H(x, t)` = HMAC-SHA256 with key `t` over message `x`. HMAC takes keys of any
/// length and ours are constant tweak strings, so `Internal` cannot happen.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Result<[u8; 32], HandshakeError> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| HandshakeError::Internal)?;
    mac.update(msg);
    Ok(mac.finalize().into_bytes().into())
}

/// Writes `parts` back to back into `out`; their lengths must add up to `out.len()`.
fn concat_into(out: &mut [u8], parts: &[&[u8]]) {
    let mut at = 0;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    debug_assert_eq!(at, out.len());
}

fn split_client_hdata(hdata: &[u8]) -> Result<(RelayId, [u8; 32], [u8; 32]), HandshakeError> {
    let hdata: &[u8; CLIENT_HDATA_LEN] = hdata.try_into().map_err(|_| HandshakeError::BadLength)?;
    let mut id = [0u8; ID_LEN];
    let mut b = [0u8; KEY_LEN];
    let mut x = [0u8; KEY_LEN];
    id.copy_from_slice(&hdata[..ID_LEN]);
    b.copy_from_slice(&hdata[ID_LEN..ID_LEN + KEY_LEN]);
    x.copy_from_slice(&hdata[ID_LEN + KEY_LEN..]);
    Ok((id, b, x))
}

fn split_server_hdata(hdata: &[u8]) -> Result<([u8; 32], [u8; 32]), HandshakeError> {
    let hdata: &[u8; SERVER_HDATA_LEN] = hdata.try_into().map_err(|_| HandshakeError::BadLength)?;
    let mut y = [0u8; KEY_LEN];
    let mut auth = [0u8; AUTH_LEN];
    y.copy_from_slice(&hdata[..KEY_LEN]);
    auth.copy_from_slice(&hdata[KEY_LEN..]);
    Ok((y, auth))
}
