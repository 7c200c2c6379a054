//! Verification of a peer's CERTS cell (tor-spec 4.2), as C Tor 0.4.9 checks it
//! (`or_handshake_certs_ed25519_ok`): the Ed25519 chain, the RSA identity certificate and
//! the cross-certificate that binds the two identities.
//!
//! ```text
//!   type 2 (X.509) ──self-signed, RSA-1024, in date──> RSA key ─SHA-1─> rsa_id
//!   type 7 ──signed by the RSA key, names──> ed_id
//!   type 4 ──signed by ed_id (its signed-with-key extension)──> signing key
//!   type 5 (responder) ──signed by the signing key──> SHA-256 of the TLS certificate
//!   type 6 (initiator) ──signed by the signing key──> link-authentication key
//! ```

use std::time::SystemTime;

use ed25519_dalek::{Signature, VerifyingKey};
use rsa::RsaPublicKey;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::crypto::RelayId;
use crate::wire::{tor_cert::key_type, CertType, Certs, Ed25519Cert, RsaCrosscert};
use crate::{ErrorKind, HasKind};

use super::rsa_key::{public_der, verify_digest};
use super::x509::{check_identity_cert, X509Fault};
use super::{crosscert_digest, hours_to_time, Ed25519Id};

/// Which side's certificates are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertsRole {
    /// The responder's (we initiated): types 2, 4, 5, 7. `tls_cert_sha256` is the digest of
    /// the certificate the peer presented in TLS, which the type-5 certificate must
    /// certify; `None` on a plain link, where there is nothing to bind to.
    Responder {
        /// SHA-256 of the peer's TLS certificate.
        tls_cert_sha256: Option<[u8; 32]>,
    },
    /// An initiator's that wants to authenticate: types 2, 4, 6, 7.
    Initiator,
}

/// Why a peer's CERTS cell was refused. Small and `Copy`; every variant is the peer's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A certificate the role requires is absent.
    #[error("no certificate of type {}", .0 .0)]
    Missing(CertType),
    /// Two certificates of one type (tor-spec: at most one each).
    #[error("two certificates of type {}", .0 .0)]
    Duplicate(CertType),
    /// A certificate does not parse, or parses as another type or key type.
    #[error("certificate of type {} is malformed", .0 .0)]
    Malformed(CertType),
    /// A certificate's signature does not verify.
    #[error("certificate of type {} has a bad signature", .0 .0)]
    BadSignature(CertType),
    /// A certificate has expired (or, for X.509, is not yet valid).
    #[error("certificate of type {} has expired", .0 .0)]
    Expired(CertType),
    /// The RSA identity certificate's key is not a 1024-bit RSA key.
    #[error("the RSA identity key is not 1024 bits")]
    NotRsa1024,
    /// The type-4 certificate does not include the identity that signed it.
    #[error("the signing-key certificate does not name its identity key")]
    NoIdentityKey,
    /// The cross-certificate vouches for another Ed25519 identity than the type-4 one.
    #[error("the RSA->Ed25519 cross-certificate names another Ed25519 identity")]
    CrosscertMismatch,
    /// The type-5 certificate certifies another TLS certificate than the peer presented.
    #[error("the link certificate does not match the TLS certificate")]
    TlsCertMismatch,
}

impl HasKind for CertError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocol
    }
}

/// What a verified CERTS cell proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCerts {
    /// SHA-1 of the RSA identity key (the legacy id).
    pub rsa_id: RelayId,
    /// SHA-256 of the RSA identity key's PKCS#1 DER (AUTHENTICATE's CID / SID).
    pub rsa_der_sha256: [u8; 32],
    /// The Ed25519 master identity.
    pub ed_id: Ed25519Id,
    /// The link-authentication key an initiator's AUTHENTICATE must be signed with
    /// (`Initiator` role only).
    pub auth_key: Option<[u8; 32]>,
}

/// Checks `certs` for `role` at `now`. See the module docs for the chain.
pub fn verify_certs(
    certs: &Certs<'_>,
    role: CertsRole,
    now: SystemTime,
) -> Result<VerifiedCerts, CertError> {
    let leaf_type = match role {
        CertsRole::Responder { .. } => CertType::ED_SIGNING_LINK,
        CertsRole::Initiator => CertType::ED_SIGNING_AUTH,
    };
    let get = |ty| {
        certs
            .only(ty)
            .map_err(CertError::Duplicate)?
            .ok_or(CertError::Missing(ty))
    };
    let id_cert = get(CertType::RSA_ID)?;
    let cross = get(CertType::RSA_ED_CROSSCERT)?;
    let signing = get(CertType::ED_ID_SIGNING)?;
    let leaf = get(leaf_type)?;

    let rsa_key = check_identity_cert(id_cert, now).map_err(|f| match f {
        X509Fault::Malformed => CertError::Malformed(CertType::RSA_ID),
        X509Fault::NotRsa1024 => CertError::NotRsa1024,
        X509Fault::BadSignature => CertError::BadSignature(CertType::RSA_ID),
        X509Fault::Expired => CertError::Expired(CertType::RSA_ID),
    })?;
    let der = public_der(&rsa_key).ok_or(CertError::Malformed(CertType::RSA_ID))?;

    // Type 4: the signing key, signed by the identity it names.
    let c4 = parse_ed(signing, CertType::ED_ID_SIGNING, &[key_type::ED25519])?;
    let ed_id = c4.signed_with.ok_or(CertError::NoIdentityKey)?;
    check_ed(&c4, CertType::ED_ID_SIGNING, &ed_id, now)?;

    // Type 5 or 6: signed by the signing key.
    let leaf_key_types: &[u8] = match role {
        CertsRole::Responder { .. } => &[key_type::SHA256_OF_X509, key_type::ED25519],
        CertsRole::Initiator => &[key_type::ED25519],
    };
    let c_leaf = parse_ed(leaf, leaf_type, leaf_key_types)?;
    if c_leaf.signed_with.is_some_and(|k| k != c4.certified_key) {
        return Err(CertError::BadSignature(leaf_type));
    }
    check_ed(&c_leaf, leaf_type, &c4.certified_key, now)?;
    if let CertsRole::Responder {
        tls_cert_sha256: Some(digest),
    } = role
    {
        if c_leaf.certified_key != digest {
            return Err(CertError::TlsCertMismatch);
        }
    }

    check_crosscert(cross, &rsa_key, &ed_id, now)?;
    Ok(VerifiedCerts {
        rsa_id: Sha1::digest(&der).into(),
        rsa_der_sha256: Sha256::digest(&der).into(),
        ed_id,
        auth_key: (role == CertsRole::Initiator).then_some(c_leaf.certified_key),
    })
}

fn parse_ed<'a>(
    bytes: &'a [u8],
    ty: CertType,
    key_types: &[u8],
) -> Result<Ed25519Cert<'a>, CertError> {
    let cert = Ed25519Cert::parse(bytes).map_err(|_| CertError::Malformed(ty))?;
    if cert.cert_type != ty.0 || !key_types.contains(&cert.key_type) {
        return Err(CertError::Malformed(ty));
    }
    Ok(cert)
}

/// Expiry, then the signature by `signer` (expiry first: it is cheap).
fn check_ed(
    cert: &Ed25519Cert<'_>,
    ty: CertType,
    signer: &[u8; 32],
    now: SystemTime,
) -> Result<(), CertError> {
    if hours_to_time(cert.expiration_hours) < now {
        return Err(CertError::Expired(ty));
    }
    let key = VerifyingKey::from_bytes(signer).map_err(|_| CertError::BadSignature(ty))?;
    key.verify_strict(cert.signed, &Signature::from_bytes(&cert.signature))
        .map_err(|_| CertError::BadSignature(ty))
}

fn check_crosscert(
    bytes: &[u8],
    rsa_key: &RsaPublicKey,
    ed_id: &Ed25519Id,
    now: SystemTime,
) -> Result<(), CertError> {
    const TY: CertType = CertType::RSA_ED_CROSSCERT;
    let cc = RsaCrosscert::parse(bytes).map_err(|_| CertError::Malformed(TY))?;
    if &cc.ed_key != ed_id {
        return Err(CertError::CrosscertMismatch);
    }
    if hours_to_time(cc.expiration_hours) < now {
        return Err(CertError::Expired(TY));
    }
    if !verify_digest(rsa_key, &crosscert_digest(cc.signed), cc.signature) {
        return Err(CertError::BadSignature(TY));
    }
    Ok(())
}
