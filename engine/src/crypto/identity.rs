//! Relay identities (tor-spec 1.1, cert-spec): the RSA-1024 identity key, the Ed25519 master
//! identity, the signing key it certifies, the certificates a CERTS cell carries, and the
//! verification of a peer's CERTS.
//!
//! ```text
//!   RSA-1024 identity ──X.509, self-signed (type 2)──> itself      fingerprint = SHA-1(PKCS#1 DER)
//!         └──cross-cert (type 7)──> Ed25519 master identity
//!                                     └──cert (type 4)──> Ed25519 signing key
//!                                          ├──cert (type 5)──> SHA-256 of the TLS certificate
//!                                          └──cert (type 6)──> Ed25519 link-authentication key
//! ```
//!
//! [`RelayIdentity`] holds the long-term part (made by `kistrel keygen`, kept in the key
//! folder); [`LinkCerts`] holds the short-lived part (types 5 and 6), made at start and
//! renewed before expiry by the relay. [`verify_certs`] checks a peer's CERTS as C Tor's
//! `or_handshake_certs_ed25519_ok` does. Signatures come from `rsa` (PKCS#1 v1.5; the
//! cross-cert's without the DigestInfo prefix, as Tor signs) and `ed25519-dalek`; X.509 from
//! `x509-cert`. Nothing here reads a clock: every function that needs the time takes it.

use std::time::{Duration, SystemTime};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::wire::{tor_cert::key_type, CertType, Ed25519Cert, RsaCrosscert};
use crate::{ErrorKind, HasKind};

use super::RelayId;

mod rsa_key;
mod verify;
mod x509;

#[cfg(test)]
mod tests;

pub use rsa_key::RsaIdentityKey;
pub use verify::{verify_certs, CertError, CertsRole, VerifiedCerts};

/// A relay's Ed25519 master identity: its public key.
pub type Ed25519Id = [u8; 32];

/// The prefix Tor hashes before the RSA->Ed25519 cross-certificate (cert-spec 2.3).
const CROSSCERT_PREFIX: &[u8] = b"Tor TLS RSA/Ed25519 cross-certificate";

/// How long the certificates made here are valid. Tor's defaults: the signing key 30 days
/// (`SigningKeyLifetime`), the link and authentication certificates 2 days, the
/// cross-certificate and the X.509 identity certificate a year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// Type 4 (master identity -> signing key).
    pub signing_cert: Duration,
    /// Types 5 and 6 (signing key -> TLS link certificate, -> authentication key).
    pub link_certs: Duration,
    /// Type 7 and the type-2 X.509 certificate.
    pub identity_certs: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Lifetimes {
            signing_cert: Duration::from_secs(30 * DAY),
            link_certs: Duration::from_secs(2 * DAY),
            identity_certs: Duration::from_secs(365 * DAY),
        }
    }
}

/// Why keys or certificates could not be made or loaded. All are local faults.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// RSA key generation or signing failed.
    #[error("RSA {0} failed")]
    Rsa(&'static str),
    /// A stored RSA key is not a 1024-bit key with exponent 65537, or does not decode.
    #[error("RSA identity key: {0}")]
    BadRsaKey(&'static str),
    /// Building or encoding the X.509 identity certificate failed.
    #[error("X.509 identity certificate: {0}")]
    X509(&'static str),
    /// A stored Ed25519 certificate does not parse, is not of its type, or was not made by
    /// the stored keys.
    #[error("Ed25519 {0} certificate does not match the stored keys")]
    CertMismatch(&'static str),
    /// A time outside what the certificate formats can encode (before 1970, after 2106).
    #[error("time out of range for a certificate")]
    TimeOutOfRange,
}

impl HasKind for IdentityError {
    fn kind(&self) -> ErrorKind {
        match self {
            IdentityError::BadRsaKey(_) | IdentityError::CertMismatch(_) => ErrorKind::BadConfig,
            _ => ErrorKind::Internal,
        }
    }
}

/// Seconds since the Unix epoch, rounded up to whole hours (the certificates' unit).
fn expiry_hours(t: SystemTime) -> Result<u32, IdentityError> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| IdentityError::TimeOutOfRange)?
        .as_secs();
    u32::try_from(secs.div_ceil(3600)).map_err(|_| IdentityError::TimeOutOfRange)
}

/// The end of hour `hours` as a time.
fn hours_to_time(hours: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(hours) * 3600)
}

/// Makes an Ed25519 certificate of `cert_type` for `certified`, signed by `signer`,
/// expiring at `expires` (rounded up to the hour); `with_signer` adds the signed-with-key
/// extension (C Tor includes it in type-4 certificates only).
fn make_ed_cert(
    signer: &SigningKey,
    cert_type: CertType,
    cert_key_type: u8,
    certified: [u8; 32],
    expires: SystemTime,
    with_signer: bool,
) -> Result<Vec<u8>, IdentityError> {
    let cert = Ed25519Cert {
        cert_type: cert_type.0,
        expiration_hours: expiry_hours(expires)?,
        key_type: cert_key_type,
        certified_key: certified,
        signed_with: with_signer.then(|| signer.verifying_key().to_bytes()),
        signed_with_flags: 0,
        signed: &[],
        signature: [0; 64],
    };
    let mut out = vec![0; cert.unsigned_len() + 64];
    let n = cert
        .emit_unsigned(&mut out)
        .map_err(|_| IdentityError::X509("sizing an Ed25519 certificate"))?;
    let sig = signer.sign(&out[..n]);
    out[n..].copy_from_slice(&sig.to_bytes());
    Ok(out)
}

/// A fresh Ed25519 key from `rng`.
fn ed_key<R: RngCore + ?Sized>(rng: &mut R) -> SigningKey {
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut seed[..]);
    SigningKey::from_bytes(&seed)
}

/// A relay's long-term keys and the certificates made from them: everything in its CERTS
/// cell but the short-lived link and authentication certificates. `Debug` prints no secret.
pub struct RelayIdentity {
    rsa: RsaIdentityKey,
    /// KS_relayid_ed; `None` when the master key is kept offline (only its certificates
    /// are needed to run).
    master: Option<SigningKey>,
    /// INVARIANT: the key the type-4 certificate certifies.
    signing: SigningKey,
    ed_id: Ed25519Id,
    /// Type 4, signed by the master key.
    signing_cert: Vec<u8>,
    signing_cert_expiry: SystemTime,
    /// Type 7, signed by the RSA key.
    crosscert: Vec<u8>,
    /// Type 2: the X.509 certificate of the RSA key, self-signed.
    rsa_id_cert: Vec<u8>,
}

impl std::fmt::Debug for RelayIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayIdentity")
            .field("rsa_id", &hex_upper(&self.rsa_id()))
            .field("ed_id", &hex_upper(&self.ed_id))
            .finish_non_exhaustive()
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The stored parts of a [`RelayIdentity`] (what the key folder holds). The type-2 and
/// type-7 certificates are not stored: they are made again at each start (as C Tor does),
/// from the RSA key. Secrets are zeroized on drop.
#[derive(Clone)]
pub struct IdentityParts {
    /// The RSA identity key.
    pub rsa: RsaIdentityKey,
    /// The Ed25519 master identity's secret seed, if kept online.
    pub master_seed: Option<Zeroizing<[u8; 32]>>,
    /// The Ed25519 master identity (public).
    pub ed_id: Ed25519Id,
    /// The Ed25519 signing key's secret seed.
    pub signing_seed: Zeroizing<[u8; 32]>,
    /// The type-4 certificate of the signing key.
    pub signing_cert: Vec<u8>,
}

impl std::fmt::Debug for IdentityParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityParts")
            .field("ed_id", &hex_upper(&self.ed_id))
            .finish_non_exhaustive()
    }
}

impl RelayIdentity {
    /// Fresh keys and certificates valid from `now` for `lifetimes`. RSA key generation
    /// takes tens of milliseconds.
    pub fn generate<R: RngCore + ?Sized>(
        rng: &mut R,
        now: SystemTime,
        lifetimes: &Lifetimes,
    ) -> Result<Self, IdentityError> {
        let rsa = RsaIdentityKey::generate(rng)?;
        let master = ed_key(rng);
        let ed_id = master.verifying_key().to_bytes();
        let crosscert = make_crosscert(&rsa, &ed_id, now + lifetimes.identity_certs)?;
        let rsa_id_cert = x509::make_identity_cert(&rsa, rng, now, lifetimes.identity_certs)?;
        let signing = ed_key(rng);
        let expiry = now + lifetimes.signing_cert;
        let signing_cert = make_signing_cert(&master, &signing, expiry)?;
        Ok(RelayIdentity {
            rsa,
            master: Some(master),
            signing,
            ed_id,
            signing_cert,
            signing_cert_expiry: hours_to_time(expiry_hours(expiry)?),
            crosscert,
            rsa_id_cert,
        })
    }

    /// A new signing key and type-4 certificate valid from `now` (the master key must be
    /// online). The old signing key's link certificates become useless: renew those too.
    pub fn renew_signing_key<R: RngCore + ?Sized>(
        &mut self,
        rng: &mut R,
        now: SystemTime,
        lifetimes: &Lifetimes,
    ) -> Result<(), IdentityError> {
        let master = self
            .master
            .as_ref()
            .ok_or(IdentityError::CertMismatch("signing (master key offline)"))?;
        let signing = ed_key(rng);
        let expiry = now + lifetimes.signing_cert;
        self.signing_cert = make_signing_cert(master, &signing, expiry)?;
        self.signing_cert_expiry = hours_to_time(expiry_hours(expiry)?);
        self.signing = signing;
        Ok(())
    }

    /// Rebuilds an identity from its stored parts, checking that the certificate belongs to
    /// the keys (a mixed-up key folder is a clear error, not a relay nobody accepts), and
    /// makes fresh type-2 and type-7 certificates valid from `now`.
    pub fn from_parts<R: RngCore + ?Sized>(
        parts: &IdentityParts,
        rng: &mut R,
        now: SystemTime,
        lifetimes: &Lifetimes,
    ) -> Result<Self, IdentityError> {
        let master = parts
            .master_seed
            .as_ref()
            .map(|seed| SigningKey::from_bytes(seed));
        if let Some(m) = &master {
            if m.verifying_key().to_bytes() != parts.ed_id {
                return Err(IdentityError::CertMismatch("master identity"));
            }
        }
        let signing = SigningKey::from_bytes(&parts.signing_seed);
        let cert = Ed25519Cert::parse(&parts.signing_cert)
            .map_err(|_| IdentityError::CertMismatch("signing"))?;
        let master_pk = VerifyingKey::from_bytes(&parts.ed_id)
            .map_err(|_| IdentityError::CertMismatch("master identity"))?;
        let sig = ed25519_dalek::Signature::from_bytes(&cert.signature);
        let good = cert.cert_type == CertType::ED_ID_SIGNING.0
            && cert.certified_key == signing.verifying_key().to_bytes()
            && master_pk.verify_strict(cert.signed, &sig).is_ok();
        if !good {
            return Err(IdentityError::CertMismatch("signing"));
        }
        let rsa = parts.rsa.clone();
        let crosscert = make_crosscert(&rsa, &parts.ed_id, now + lifetimes.identity_certs)?;
        let rsa_id_cert = x509::make_identity_cert(&rsa, rng, now, lifetimes.identity_certs)?;
        Ok(RelayIdentity {
            rsa,
            master,
            signing,
            ed_id: parts.ed_id,
            signing_cert_expiry: hours_to_time(cert.expiration_hours),
            signing_cert: parts.signing_cert.clone(),
            crosscert,
            rsa_id_cert,
        })
    }

    /// The parts to store.
    pub fn to_parts(&self) -> IdentityParts {
        IdentityParts {
            rsa: self.rsa.clone(),
            master_seed: self.master.as_ref().map(|m| Zeroizing::new(m.to_bytes())),
            ed_id: self.ed_id,
            signing_seed: Zeroizing::new(self.signing.to_bytes()),
            signing_cert: self.signing_cert.clone(),
        }
    }

    /// The RSA identity fingerprint: SHA-1 of the PKCS#1 DER public key (the 20-byte id
    /// EXTEND2's legacy link specifier and CREATE2's ntor handshake name).
    pub fn rsa_id(&self) -> RelayId {
        self.rsa.fingerprint()
    }

    /// SHA-256 of the PKCS#1 DER public key (AUTHENTICATE's CID / SID).
    pub fn rsa_der_sha256(&self) -> [u8; 32] {
        self.rsa.der_sha256()
    }

    /// The Ed25519 master identity.
    pub fn ed_id(&self) -> Ed25519Id {
        self.ed_id
    }

    /// When the type-4 certificate expires.
    pub fn signing_cert_expiry(&self) -> SystemTime {
        self.signing_cert_expiry
    }

    /// The RSA identity key.
    pub fn rsa_key(&self) -> &RsaIdentityKey {
        &self.rsa
    }

    /// The certificates of a CERTS cell (types 2, 7, 4) that do not depend on the link.
    pub fn long_term_certs(&self) -> [(CertType, &[u8]); 3] {
        [
            (CertType::RSA_ID, &self.rsa_id_cert),
            (CertType::RSA_ED_CROSSCERT, &self.crosscert),
            (CertType::ED_ID_SIGNING, &self.signing_cert),
        ]
    }

    /// Fresh short-lived certificates valid from `now`: a new authentication key with its
    /// type-6 certificate, and a type-5 certificate for `tls_cert_sha256`.
    pub fn link_certs<R: RngCore + ?Sized>(
        &self,
        rng: &mut R,
        now: SystemTime,
        lifetimes: &Lifetimes,
        tls_cert_sha256: [u8; 32],
    ) -> Result<LinkCerts, IdentityError> {
        // Never past the signing key's own certificate: a peer checks both.
        let expires = (now + lifetimes.link_certs).min(self.signing_cert_expiry);
        let auth_key = ed_key(rng);
        let auth_cert = make_ed_cert(
            &self.signing,
            CertType::ED_SIGNING_AUTH,
            key_type::ED25519,
            auth_key.verifying_key().to_bytes(),
            expires,
            false,
        )?;
        let mut certs = LinkCerts {
            auth_key,
            auth_cert,
            tls_cert_sha256,
            link_cert: Vec::new(),
            expires: hours_to_time(expiry_hours(expires)?),
        };
        certs.link_cert = self.make_link_cert(tls_cert_sha256, expires)?;
        Ok(certs)
    }

    /// A type-5 certificate for `tls_cert_sha256` that expires with `certs`, replacing the
    /// one `certs` holds (the TLS layer changed its certificate).
    pub fn recertify_tls(
        &self,
        certs: &mut LinkCerts,
        tls_cert_sha256: [u8; 32],
    ) -> Result<(), IdentityError> {
        certs.link_cert = self.make_link_cert(tls_cert_sha256, certs.expires)?;
        certs.tls_cert_sha256 = tls_cert_sha256;
        Ok(())
    }

    fn make_link_cert(
        &self,
        tls_cert_sha256: [u8; 32],
        expires: SystemTime,
    ) -> Result<Vec<u8>, IdentityError> {
        make_ed_cert(
            &self.signing,
            CertType::ED_SIGNING_LINK,
            key_type::SHA256_OF_X509,
            tls_cert_sha256,
            expires,
            false,
        )
    }
}

fn make_signing_cert(
    master: &SigningKey,
    signing: &SigningKey,
    expires: SystemTime,
) -> Result<Vec<u8>, IdentityError> {
    make_ed_cert(
        master,
        CertType::ED_ID_SIGNING,
        key_type::ED25519,
        signing.verifying_key().to_bytes(),
        expires,
        true,
    )
}

/// The type-7 cross-certificate: the RSA key signs SHA-256(prefix | ed_id | expiration).
fn make_crosscert(
    rsa: &RsaIdentityKey,
    ed_id: &Ed25519Id,
    expires: SystemTime,
) -> Result<Vec<u8>, IdentityError> {
    let signed = RsaCrosscert::signed_part(ed_id, expiry_hours(expires)?);
    let sig = rsa.sign_digest(&crosscert_digest(&signed))?;
    RsaCrosscert::encode(&signed, &sig).map_err(|_| IdentityError::Rsa("cross-certificate"))
}

/// What the cross-certificate's RSA signature covers.
fn crosscert_digest(signed: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CROSSCERT_PREFIX);
    h.update(signed);
    h.finalize().into()
}

/// The short-lived certificates of a relay: the link-authentication key with its type-6
/// certificate, and the type-5 certificate of the TLS certificate in use.
pub struct LinkCerts {
    /// KS_link_ed: signs AUTHENTICATE cells.
    auth_key: SigningKey,
    /// Type 6.
    auth_cert: Vec<u8>,
    /// What `link_cert` certifies.
    tls_cert_sha256: [u8; 32],
    /// Type 5.
    link_cert: Vec<u8>,
    /// When both expire.
    expires: SystemTime,
}

impl std::fmt::Debug for LinkCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCerts")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl LinkCerts {
    /// When the certificates expire.
    pub fn expires(&self) -> SystemTime {
        self.expires
    }

    /// The TLS certificate digest the type-5 certificate certifies.
    pub fn tls_cert_sha256(&self) -> [u8; 32] {
        self.tls_cert_sha256
    }

    /// The type-5 certificate.
    pub fn link_cert(&self) -> &[u8] {
        &self.link_cert
    }

    /// The type-6 certificate.
    pub fn auth_cert(&self) -> &[u8] {
        &self.auth_cert
    }

    /// Signs an AUTHENTICATE authenticator's signed part.
    pub fn sign_auth(&self, signed: &[u8]) -> [u8; 64] {
        self.auth_key.sign(signed).to_bytes()
    }
}
