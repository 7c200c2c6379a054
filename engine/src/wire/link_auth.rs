//! The link-authentication cell bodies (tor-spec 4.2-4.4): CERTS, AUTH_CHALLENGE and
//! AUTHENTICATE, and the AUTH0003 authenticator an AUTHENTICATE carries.
//!
//! ```text
//! CERTS:          N u8 | N x (CertType u8 | CLEN u16 | Certificate [CLEN])    (extra bytes ignored)
//! AUTH_CHALLENGE: Challenge [32] | N_Methods u16 | Methods [2 x N_Methods]      (extra bytes ignored)
//! AUTHENTICATE:   AuthType u16 | AuthLen u16 | Authentication [AuthLen]         (extra bytes ignored)
//! AUTH0003:       "AUTH0003" | CID | SID | CID_ED | SID_ED | SLOG | CLOG | SCERT | TLSSECRETS
//!                 (32 bytes each) | RAND [24] | ... | SIG [64]
//! ```
//!
//! These are formats only: which certificates a side must send and what an authenticator's
//! fields must hold is the link handshake's business (`relay::link`), signatures are
//! `crypto::identity`'s.

use super::bytes::{Reader, Writer};
use super::{ChanCmd, Error, Result, VarCell};

/// A certificate type in a CERTS cell (tor-spec 4.2). Open: unknown types are kept so the
/// receiver can skip them by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertType(
    /// The byte on the wire.
    pub u8,
);

impl CertType {
    /// 1: an X.509 link key certificate signed by the RSA identity (C Tor's TLS certificate).
    pub const RSA_LINK: Self = Self(1);
    /// 2: the self-signed X.509 certificate of the RSA-1024 identity key.
    pub const RSA_ID: Self = Self(2);
    /// 3: an X.509 RSA authentication key certificate (RSA-only AUTHENTICATE).
    pub const RSA_AUTH: Self = Self(3);
    /// 4: the Ed25519 signing key, certified by the Ed25519 master identity (cert-spec 2.1).
    pub const ED_ID_SIGNING: Self = Self(4);
    /// 5: the SHA-256 of the TLS link certificate, certified by the signing key.
    pub const ED_SIGNING_LINK: Self = Self(5);
    /// 6: the Ed25519 link-authentication key, certified by the signing key.
    pub const ED_SIGNING_AUTH: Self = Self(6);
    /// 7: the Ed25519 master identity, cross-certified by the RSA identity (cert-spec 2.3).
    pub const RSA_ED_CROSSCERT: Self = Self(7);
}

/// CERTS payload: the certificates a side presents, in its order, each as raw bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Certs<'a> {
    /// `(type, certificate bytes)` in cell order; duplicates are kept (the verifier
    /// rejects them) and unknown types too.
    pub certs: Vec<(CertType, &'a [u8])>,
}

impl<'a> Certs<'a> {
    /// Parse a CERTS payload; `Truncated` if a certificate runs past it. Bytes after the
    /// last certificate are ignored (tor-spec 4.2).
    pub fn parse(payload: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let n = r.u8("certs count")?;
        let mut certs = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let ty = CertType(r.u8("certs type")?);
            let len = r.u16("certs length")?;
            certs.push((ty, r.take(usize::from(len), "certs certificate")?));
        }
        Ok(Self { certs })
    }

    /// The only certificate of type `ty`: `Ok(None)` if absent, `Err` if present twice.
    pub fn only(&self, ty: CertType) -> core::result::Result<Option<&'a [u8]>, CertType> {
        let mut found = self.certs.iter().filter(|(t, _)| *t == ty).map(|(_, c)| *c);
        let first = found.next();
        match found.next() {
            Some(_) => Err(ty),
            None => Ok(first),
        }
    }

    /// Encoded length of the payload.
    pub fn buffer_len(&self) -> usize {
        1 + self.certs.iter().map(|(_, c)| 3 + c.len()).sum::<usize>()
    }

    /// Write the payload; `TooLong` for more than 255 certificates or one over 65535 bytes,
    /// `NoSpace` if `out` is short.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        let n = u8::try_from(self.certs.len()).map_err(|_| Error::TooLong {
            field: "certs count",
            len: self.certs.len(),
        })?;
        w.u8(n, "certs count")?;
        for (ty, cert) in &self.certs {
            w.u8(ty.0, "certs type")?;
            w.len_u16(cert.len(), "certs length")?;
            w.bytes(cert, "certs certificate")?;
        }
        Ok(w.written())
    }

    /// The CERTS cell (circuit id 0).
    pub fn to_var_cell(&self) -> Result<VarCell> {
        let mut payload = vec![0; self.buffer_len()];
        let n = self.emit(&mut payload)?;
        payload.truncate(n);
        Ok(VarCell {
            circ_id: 0,
            cmd: ChanCmd::CERTS,
            payload,
        })
    }
}

/// AUTH_CHALLENGE payload (tor-spec 4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthChallenge {
    /// Random bytes from the responder.
    pub challenge: [u8; 32],
    /// Authentication methods the responder accepts (3 = Ed25519-SHA256-RFC5705).
    pub methods: Vec<u16>,
}

impl AuthChallenge {
    /// Parse an AUTH_CHALLENGE payload; bytes after the methods are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let challenge = r.array("auth_challenge challenge")?;
        let n = r.u16("auth_challenge n_methods")?;
        let methods = (0..n)
            .map(|_| r.u16("auth_challenge methods"))
            .collect::<Result<_>>()?;
        Ok(Self { challenge, methods })
    }

    /// Write the payload; `TooLong` for more than 65535 methods.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.bytes(&self.challenge, "auth_challenge challenge")?;
        w.len_u16(self.methods.len(), "auth_challenge n_methods")?;
        for m in &self.methods {
            w.u16(*m, "auth_challenge methods")?;
        }
        Ok(w.written())
    }

    /// The AUTH_CHALLENGE cell (circuit id 0).
    pub fn to_var_cell(&self) -> Result<VarCell> {
        let mut payload = vec![0; 34 + 2 * self.methods.len()];
        let n = self.emit(&mut payload)?;
        payload.truncate(n);
        Ok(VarCell {
            circ_id: 0,
            cmd: ChanCmd::AUTH_CHALLENGE,
            payload,
        })
    }
}

/// AUTHENTICATE payload (tor-spec 4.4): the type and the authenticator, unparsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authenticate<'a> {
    /// 1 = RSA-SHA256-TLSSecret, 3 = Ed25519-SHA256-RFC5705.
    pub auth_type: u16,
    /// The authenticator ([`Auth3`] for type 3).
    pub auth: &'a [u8],
}

impl<'a> Authenticate<'a> {
    /// Ed25519-SHA256-RFC5705, the one type kistrel sends and accepts.
    pub const ED25519_SHA256_RFC5705: u16 = 3;

    /// Parse an AUTHENTICATE payload; `Truncated` if AuthLen runs past it.
    pub fn parse(payload: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let auth_type = r.u16("authenticate type")?;
        let len = r.u16("authenticate length")?;
        let auth = r.take(usize::from(len), "authenticate authenticator")?;
        Ok(Self { auth_type, auth })
    }

    /// The AUTHENTICATE cell (circuit id 0); `TooLong` for an authenticator over 65535 bytes.
    pub fn to_var_cell(&self) -> Result<VarCell> {
        let mut payload = vec![0; 4 + self.auth.len()];
        let mut w = Writer::new(&mut payload);
        w.u16(self.auth_type, "authenticate type")?;
        w.len_u16(self.auth.len(), "authenticate length")?;
        w.bytes(self.auth, "authenticate authenticator")?;
        Ok(VarCell {
            circ_id: 0,
            cmd: ChanCmd::AUTHENTICATE,
            payload,
        })
    }
}

/// The fixed fields of an AUTH0003 authenticator (tor-spec 4.4.2), all but RAND and SIG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth3Fields {
    /// SHA-256 of the initiator's RSA identity key (PKCS#1 DER).
    pub cid: [u8; 32],
    /// SHA-256 of the responder's RSA identity key (PKCS#1 DER).
    pub sid: [u8; 32],
    /// The initiator's Ed25519 identity.
    pub cid_ed: [u8; 32],
    /// The responder's Ed25519 identity.
    pub sid_ed: [u8; 32],
    /// SHA-256 of what the responder sent, up to and including AUTH_CHALLENGE.
    pub slog: [u8; 32],
    /// SHA-256 of what the initiator sent before AUTHENTICATE.
    pub clog: [u8; 32],
    /// SHA-256 of the responder's TLS certificate.
    pub scert: [u8; 32],
    /// The TLS session's RFC 5705 exporter value.
    pub tlssecrets: [u8; 32],
}

/// A parsed AUTH0003 authenticator: its fields, what the signature covers, the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth3<'a> {
    /// TYPE through TLSSECRETS.
    pub fields: Auth3Fields,
    /// RAND: the initiator's random bytes.
    pub rand: [u8; 24],
    /// Everything before SIG: the bytes SIG signs (RAND and any extra bytes included).
    pub signed: &'a [u8],
    /// SIG: the Ed25519 signature by the initiator's link-authentication key.
    pub sig: [u8; 64],
}

impl Auth3Fields {
    /// `"AUTH0003"`, the authenticator's first field.
    pub const TYPE: &'static [u8; 8] = b"AUTH0003";
    /// Length of TYPE through TLSSECRETS.
    pub const LEN: usize = 8 + 8 * 32;

    /// Writes TYPE through TLSSECRETS, then `rand`: the bytes the initiator signs.
    pub fn signed_bytes(&self, rand: &[u8; 24]) -> [u8; Auth3::SIGNED_LEN] {
        let mut out = [0; Auth3::SIGNED_LEN];
        let mut w = Writer::new(&mut out);
        let fields = [
            &self.cid,
            &self.sid,
            &self.cid_ed,
            &self.sid_ed,
            &self.slog,
            &self.clog,
            &self.scert,
            &self.tlssecrets,
        ];
        // The array is exactly SIGNED_LEN bytes: none of these writes can run out of room.
        let _ = w.bytes(Self::TYPE, "auth3 type");
        for f in fields {
            let _ = w.bytes(f, "auth3 field");
        }
        let _ = w.bytes(rand, "auth3 rand");
        out
    }
}

impl<'a> Auth3<'a> {
    /// Length of what C Tor and kistrel sign: the fields and RAND.
    pub const SIGNED_LEN: usize = Auth3Fields::LEN + 24;
    /// Length of the whole authenticator as kistrel sends it.
    pub const LEN: usize = Self::SIGNED_LEN + 64;

    /// Parse an authenticator: `BadValue` if TYPE is not "AUTH0003", `BadLength` if it is
    /// shorter than the fields, RAND and SIG. Bytes between RAND and SIG are signed data
    /// (tor-spec: the responder ignores them).
    pub fn parse(auth: &'a [u8]) -> Result<Self> {
        if auth.len() < Self::LEN {
            return Err(Error::BadLength {
                field: "auth3",
                len: auth.len(),
            });
        }
        let (signed, sig) = auth.split_at(auth.len() - 64);
        let mut r = Reader::new(signed);
        if r.take(8, "auth3 type")? != Auth3Fields::TYPE {
            return Err(Error::BadValue {
                field: "auth3 type",
            });
        }
        let fields = Auth3Fields {
            cid: r.array("auth3 cid")?,
            sid: r.array("auth3 sid")?,
            cid_ed: r.array("auth3 cid_ed")?,
            sid_ed: r.array("auth3 sid_ed")?,
            slog: r.array("auth3 slog")?,
            clog: r.array("auth3 clog")?,
            scert: r.array("auth3 scert")?,
            tlssecrets: r.array("auth3 tlssecrets")?,
        };
        let rand = r.array("auth3 rand")?;
        let mut sig_bytes = [0; 64];
        sig_bytes.copy_from_slice(sig);
        Ok(Self {
            fields,
            rand,
            signed,
            sig: sig_bytes,
        })
    }
}
