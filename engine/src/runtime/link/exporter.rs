//! The RFC 5705 keying-material exporter of a TLS 1.3 session (RFC 8446 7.5), which Tor's
//! AUTHENTICATE cell signs (tor-spec 4.4.2, TLSSECRETS).
//!
//! rustls' unbuffered connections have no `export_keying_material`, so the exporter master
//! secret is taken from the one place rustls hands it out, its `KeyLog` (`EXPORTER_SECRET`),
//! and the exporter is derived here; the tests check it against rustls' buffered
//! `export_keying_material` on the same session. TLS 1.2 sessions never log that secret (and
//! their PRF exporter needs the server random, which rustls does not expose), so they have no
//! exporter: C Tor 0.4.9 and kistrel both negotiate TLS 1.3.

use std::sync::{Mutex, OnceLock};

use aws_lc_rs::digest::{digest, SHA256, SHA384};
use aws_lc_rs::hkdf::{KeyType, Prk, HKDF_SHA256, HKDF_SHA384};
use zeroize::Zeroizing;

/// What a handshake reveals that the link keeps: the exporter master secret (from rustls'
/// key log) and the digest of the certificate the peer presented (from the verifier).
/// One per connection, shared by its config's key log and verifier.
#[derive(Default)]
pub(crate) struct Capture {
    exporter_secret: Mutex<Option<Zeroizing<Vec<u8>>>>,
    peer_cert_sha256: OnceLock<[u8; 32]>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Capture").finish_non_exhaustive()
    }
}

impl Capture {
    /// Records the digest of the peer's end-entity certificate (the first one wins).
    pub(crate) fn set_peer_cert(&self, der: &[u8]) {
        let _ = self.peer_cert_sha256.set(sha256(der));
    }

    /// The peer certificate's digest, if the verifier saw one.
    pub(crate) fn peer_cert_sha256(&self) -> Option<[u8; 32]> {
        self.peer_cert_sha256.get().copied()
    }

    /// Takes the exporter master secret (once the handshake is done).
    pub(crate) fn take_exporter(&self) -> Option<Exporter> {
        let secret = self.exporter_secret.lock().ok()?.take()?;
        Exporter::new(secret)
    }
}

impl rustls::KeyLog for Capture {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "EXPORTER_SECRET" {
            if let Ok(mut slot) = self.exporter_secret.lock() {
                *slot = Some(Zeroizing::new(secret.to_vec()));
            }
        }
    }

    fn will_log(&self, label: &str) -> bool {
        label == "EXPORTER_SECRET"
    }
}

/// The hash of the session's cipher suite, told by the secret's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
}

/// A TLS 1.3 session's exporter master secret and the derivation of RFC 8446 7.5.
pub(crate) struct Exporter {
    secret: Zeroizing<Vec<u8>>,
    hash: Hash,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl Exporter {
    /// The exporter of the session whose exporter master secret is `secret` (32 bytes for
    /// the SHA-256 suites, 48 for TLS_AES_256_GCM_SHA384).
    pub(crate) fn new(secret: Zeroizing<Vec<u8>>) -> Option<Self> {
        let hash = match secret.len() {
            32 => Hash::Sha256,
            48 => Hash::Sha384,
            _ => return None,
        };
        Some(Exporter { secret, hash })
    }

    /// TLS-Exporter(label, context, 32) (RFC 8446 7.5).
    pub(crate) fn export(&self, label: &[u8], context: &[u8]) -> Option<[u8; 32]> {
        let (hkdf, dig) = match self.hash {
            Hash::Sha256 => (HKDF_SHA256, &SHA256),
            Hash::Sha384 => (HKDF_SHA384, &SHA384),
        };
        let hash_len = dig.output_len();
        // Derive-Secret(Secret, label, "") = HKDF-Expand-Label(Secret, label, Hash(""), L).
        let empty = digest(dig, b"");
        let mut derived = Zeroizing::new(vec![0; hash_len]);
        expand_label(
            &Prk::new_less_safe(hkdf, &self.secret),
            label,
            empty.as_ref(),
            &mut derived,
        )?;
        let mut out = [0; 32];
        let context_hash = digest(dig, context);
        expand_label(
            &Prk::new_less_safe(hkdf, &derived),
            b"exporter",
            context_hash.as_ref(),
            &mut out,
        )?;
        Some(out)
    }
}

/// HKDF-Expand-Label (RFC 8446 7.1) into `out`.
fn expand_label(prk: &Prk, label: &[u8], context: &[u8], out: &mut [u8]) -> Option<()> {
    const PREFIX: &[u8] = b"tls13 ";
    let length = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(PREFIX.len() + label.len()).ok()?];
    let context_len = [u8::try_from(context.len()).ok()?];
    let info = [
        &length[..],
        &label_len[..],
        PREFIX,
        label,
        &context_len[..],
        context,
    ];
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest(&SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}
