//! Tor's own certificate formats (cert-spec): the Ed25519 certificate (2.1) and the
//! RSA->Ed25519 cross-certificate (2.3). Formats only; `crypto::identity` signs and checks.
//!
//! ```text
//! Ed25519 cert:  VERSION 01 | CERT_TYPE u8 | EXPIRATION u32 (hours) | CERT_KEY_TYPE u8 |
//!                CERTIFIED_KEY [32] | N_EXTENSIONS u8 | extensions | SIGNATURE [64]
//!   extension:   ExtLength u16 | ExtType u8 | ExtFlags u8 | ExtData [ExtLength]
//! cross-cert:    ED25519_KEY [32] | EXPIRATION u32 (hours) | SIGLEN u8 | SIGNATURE [SIGLEN]
//! ```

use super::bytes::{Reader, Writer};
use super::{Error, Result};

/// Extension type 4: the Ed25519 key that signed the certificate (cert-spec 2.2.1).
const EXT_SIGNED_WITH_KEY: u8 = 4;
/// Extension flag: the receiver must understand the extension to accept the certificate.
const EXT_AFFECTS_VALIDATION: u8 = 1;

/// CERT_KEY_TYPE values (cert-spec A.4).
pub mod key_type {
    /// An Ed25519 public key.
    pub const ED25519: u8 = 1;
    /// The SHA-256 of an X.509 certificate (type-5 certificates since Tor 0.4.5; older
    /// ones say 1, which readers must accept).
    pub const SHA256_OF_X509: u8 = 3;
}

/// A parsed Ed25519 certificate. Unknown extensions without the AFFECTS_VALIDATION flag
/// are skipped; one with it makes the certificate unparseable (C Tor's `tor_cert_parse`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Cert<'a> {
    /// CERT_TYPE: 4 (identity -> signing), 5 (signing -> TLS link), 6 (signing -> auth).
    pub cert_type: u8,
    /// Hours since the Unix epoch after which the certificate is invalid.
    pub expiration_hours: u32,
    /// CERT_KEY_TYPE ([`key_type`]).
    pub key_type: u8,
    /// The certified key (or digest).
    pub certified_key: [u8; 32],
    /// The signed-with-ed25519-key extension: the signer's public key.
    pub signed_with: Option<[u8; 32]>,
    /// That extension's flags byte, kept as parsed so that the parsed certificate emits the
    /// bytes it was signed over (the flags of a known extension change nothing here; Tor's
    /// test vector has 0, which is what kistrel writes).
    pub signed_with_flags: u8,
    /// The bytes the signature covers: everything but the last 64 (empty when emitting).
    pub signed: &'a [u8],
    /// SIGNATURE (all zeros when emitting: [`Ed25519Cert::emit_unsigned`] leaves it out).
    pub signature: [u8; 64],
}

impl<'a> Ed25519Cert<'a> {
    /// Parse a whole certificate: `BadValue` for a version other than 1, a duplicate
    /// signed-with-key extension, or an unknown extension that affects validation;
    /// `BadLength` for trailing bytes or a malformed signed-with-key extension.
    pub fn parse(cert: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(cert);
        if r.u8("ed25519 cert version")? != 1 {
            return Err(Error::BadValue {
                field: "ed25519 cert version",
            });
        }
        let cert_type = r.u8("ed25519 cert type")?;
        let expiration_hours = r.u32("ed25519 cert expiration")?;
        let key_type = r.u8("ed25519 cert key type")?;
        let certified_key = r.array("ed25519 cert certified key")?;
        let n_ext = r.u8("ed25519 cert extension count")?;
        let mut signed_with = None;
        let mut signed_with_flags = 0;
        for _ in 0..n_ext {
            let len = r.u16("ed25519 cert extension length")?;
            let ty = r.u8("ed25519 cert extension type")?;
            let flags = r.u8("ed25519 cert extension flags")?;
            let data = r.take(usize::from(len), "ed25519 cert extension")?;
            if ty == EXT_SIGNED_WITH_KEY {
                let key = <[u8; 32]>::try_from(data).map_err(|_| Error::BadLength {
                    field: "ed25519 cert signed-with-key extension",
                    len: data.len(),
                })?;
                if signed_with.replace(key).is_some() {
                    return Err(Error::BadValue {
                        field: "ed25519 cert signed-with-key extension",
                    });
                }
                signed_with_flags = flags;
            } else if flags & EXT_AFFECTS_VALIDATION != 0 {
                return Err(Error::BadValue {
                    field: "ed25519 cert extension",
                });
            }
        }
        let signed_len = cert.len() - r.remaining();
        let signature = r.array("ed25519 cert signature")?;
        if r.remaining() != 0 {
            return Err(Error::BadLength {
                field: "ed25519 cert",
                len: cert.len(),
            });
        }
        Ok(Self {
            cert_type,
            expiration_hours,
            key_type,
            certified_key,
            signed_with,
            signed_with_flags,
            signed: &cert[..signed_len],
            signature,
        })
    }

    /// Length of the part before the signature.
    pub fn unsigned_len(&self) -> usize {
        let ext = if self.signed_with.is_some() {
            4 + 32
        } else {
            0
        };
        1 + 1 + 4 + 1 + 32 + 1 + ext
    }

    /// Write everything but the signature (the bytes to sign); the caller appends the
    /// 64-byte signature.
    pub fn emit_unsigned(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.u8(1, "ed25519 cert version")?;
        w.u8(self.cert_type, "ed25519 cert type")?;
        w.u32(self.expiration_hours, "ed25519 cert expiration")?;
        w.u8(self.key_type, "ed25519 cert key type")?;
        w.bytes(&self.certified_key, "ed25519 cert certified key")?;
        match &self.signed_with {
            Some(key) => {
                w.u8(1, "ed25519 cert extension count")?;
                w.u16(32, "ed25519 cert extension length")?;
                w.bytes(
                    &[EXT_SIGNED_WITH_KEY, self.signed_with_flags],
                    "ed25519 cert extension type",
                )?;
                w.bytes(key, "ed25519 cert signed-with-key extension")?;
            }
            None => w.u8(0, "ed25519 cert extension count")?,
        }
        Ok(w.written())
    }
}

/// Length of a cross-certificate's signed part: the key and the expiration.
const CROSSCERT_SIGNED_LEN: usize = 36;

/// A parsed RSA->Ed25519 cross-certificate (CERTS type 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RsaCrosscert<'a> {
    /// The Ed25519 master identity the RSA key vouches for.
    pub ed_key: [u8; 32],
    /// Hours since the Unix epoch after which the cross-certificate is invalid.
    pub expiration_hours: u32,
    /// The bytes the signature covers (key and expiration).
    pub signed: &'a [u8],
    /// The RSA signature (SIGLEN bytes).
    pub signature: &'a [u8],
}

impl<'a> RsaCrosscert<'a> {
    /// Length of the signed part.
    pub const SIGNED_LEN: usize = CROSSCERT_SIGNED_LEN;

    /// Parse a whole cross-certificate; trailing bytes are `BadLength` (as C Tor).
    pub fn parse(cert: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(cert);
        let ed_key = r.array("crosscert ed25519 key")?;
        let expiration_hours = r.u32("crosscert expiration")?;
        let siglen = r.u8("crosscert signature length")?;
        let signature = r.take(usize::from(siglen), "crosscert signature")?;
        if r.remaining() != 0 {
            return Err(Error::BadLength {
                field: "crosscert",
                len: cert.len(),
            });
        }
        Ok(Self {
            ed_key,
            expiration_hours,
            signed: &cert[..Self::SIGNED_LEN],
            signature,
        })
    }

    /// The signed part of a cross-certificate for `ed_key` expiring at `expiration_hours`.
    pub fn signed_part(ed_key: &[u8; 32], expiration_hours: u32) -> [u8; CROSSCERT_SIGNED_LEN] {
        let mut out = [0; Self::SIGNED_LEN];
        out[..32].copy_from_slice(ed_key);
        out[32..].copy_from_slice(&expiration_hours.to_be_bytes());
        out
    }

    /// The whole cross-certificate: the signed part, SIGLEN and `signature`; `TooLong` for
    /// a signature over 255 bytes.
    pub fn encode(signed: &[u8; CROSSCERT_SIGNED_LEN], signature: &[u8]) -> Result<Vec<u8>> {
        let siglen = u8::try_from(signature.len()).map_err(|_| Error::TooLong {
            field: "crosscert signature",
            len: signature.len(),
        })?;
        let mut out = Vec::with_capacity(Self::SIGNED_LEN + 1 + signature.len());
        out.extend_from_slice(signed);
        out.push(siglen);
        out.extend_from_slice(signature);
        Ok(out)
    }
}
