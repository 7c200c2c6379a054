//! The X.509 certificate of the RSA identity key (CERTS type 2): made self-signed as C Tor
//! makes it, and checked as C Tor's `tor_tls_cert_is_valid(.., check_rsa_1024 = 1)` does.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use rand::RngCore;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use sha1::Sha1;
use sha2::Sha256;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::GeneralizedTime;
use x509_cert::der::referenced::OwnedToRef;
use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use super::rsa_key::{RsaIdentityKey, BITS};
use super::IdentityError;

/// How far past its end C Tor still accepts an X.509 certificate (`TOR_X509_PAST_SLOP`).
const PAST_SLOP: Duration = Duration::from_secs(2 * 86_400);
/// How far before its start C Tor already accepts one (`TOR_X509_FUTURE_SLOP`).
const FUTURE_SLOP: Duration = Duration::from_secs(30 * 86_400);

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");

/// The self-signed certificate of `key`, valid from a day before `now` (as C Tor and Arti
/// backdate theirs) for `lifetime`, with a random serial number and a web-like name.
pub(super) fn make_identity_cert<R: RngCore + ?Sized>(
    key: &RsaIdentityKey,
    rng: &mut R,
    now: SystemTime,
    lifetime: Duration,
) -> Result<Vec<u8>, IdentityError> {
    const DAY: Duration = Duration::from_secs(86_400);
    let start = now.checked_sub(DAY).ok_or(IdentityError::TimeOutOfRange)?;
    let validity = Validity {
        not_before: der_time(start)?,
        not_after: der_time(start + lifetime)?,
    };
    let mut serial = [0u8; 16];
    rng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // a positive INTEGER
    let serial = SerialNumber::new(&serial).map_err(|_| IdentityError::X509("serial number"))?;
    let subject = Name::from_str(&format!("CN=www.{}.net", random_label(rng)))
        .map_err(|_| IdentityError::X509("subject name"))?;
    let spki = SubjectPublicKeyInfoOwned::from_key(key.public_key())
        .map_err(|_| IdentityError::X509("public key"))?;
    let signer = SigningKey::<Sha256>::new(key.private().clone());
    let builder = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signer)
        .map_err(|_| IdentityError::X509("builder"))?;
    let cert = builder
        .build::<Signature>()
        .map_err(|_| IdentityError::X509("signing"))?;
    cert.to_der()
        .map_err(|_| IdentityError::X509("DER encoding"))
}

fn der_time(t: SystemTime) -> Result<Time, IdentityError> {
    let since = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| IdentityError::TimeOutOfRange)?;
    // Whole seconds: DER times have no fractions.
    let secs = Duration::from_secs(since.as_secs());
    GeneralizedTime::from_unix_duration(secs)
        .map(Time::GeneralTime)
        .map_err(|_| IdentityError::TimeOutOfRange)
}

/// 12 lowercase letters and digits, like C Tor's random host names.
fn random_label<R: RngCore + ?Sized>(rng: &mut R) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..12)
        .map(|_| char::from(ALPHABET[(rng.next_u32() % 32) as usize]))
        .collect()
}

/// Why a peer's type-2 certificate was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum X509Fault {
    /// Not DER X.509, or its key is not RSA.
    Malformed,
    /// Not a 1024-bit RSA key.
    NotRsa1024,
    /// The self-signature does not verify (or uses an algorithm Tor does not).
    BadSignature,
    /// Outside its validity period, even with C Tor's slop.
    Expired,
}

/// Checks a peer's RSA identity certificate at `now` and returns its key.
pub(super) fn check_identity_cert(der: &[u8], now: SystemTime) -> Result<RsaPublicKey, X509Fault> {
    let cert = Certificate::from_der(der).map_err(|_| X509Fault::Malformed)?;
    let tbs = &cert.tbs_certificate;
    let key = RsaPublicKey::try_from(tbs.subject_public_key_info.owned_to_ref())
        .map_err(|_| X509Fault::Malformed)?;
    if key.n().bits() != BITS {
        return Err(X509Fault::NotRsa1024);
    }
    let signed = tbs.to_der().map_err(|_| X509Fault::Malformed)?;
    let sig = cert
        .signature
        .as_bytes()
        .and_then(|b| Signature::try_from(b).ok())
        .ok_or(X509Fault::BadSignature)?;
    let alg = cert.signature_algorithm.oid;
    let good = if alg == SHA256_WITH_RSA {
        VerifyingKey::<Sha256>::new(key.clone())
            .verify(&signed, &sig)
            .is_ok()
    } else if alg == SHA1_WITH_RSA {
        VerifyingKey::<Sha1>::new(key.clone())
            .verify(&signed, &sig)
            .is_ok()
    } else {
        false
    };
    if !good {
        return Err(X509Fault::BadSignature);
    }
    let not_before = SystemTime::UNIX_EPOCH + tbs.validity.not_before.to_unix_duration();
    let not_after = SystemTime::UNIX_EPOCH + tbs.validity.not_after.to_unix_duration();
    if not_before > now + FUTURE_SLOP || not_after + PAST_SLOP < now {
        return Err(X509Fault::Expired);
    }
    Ok(key)
}
