//! Relay key folders (`KeyDirectory`, C Tor's option name): one file per key, mode 0600,
//! each written atomically, under C Tor's file names.
//!
//! ```text
//!   secret_id_key                  RSA-1024 identity, PKCS#1 PEM            (C Tor's format)
//!   ed25519_master_id_public_key   "== ed25519v1-public: type0 ==" | key    (C Tor's format)
//!   ed25519_master_id_secret_key   "== kistrel-seed: master ==" | seed
//!   ed25519_signing_secret_key     "== kistrel-seed: signing ==" | seed
//!   ed25519_signing_cert           "== ed25519v1-cert: type4 ==" | cert     (C Tor's format)
//!   secret_onion_key_ntor          "== c25519v1: onion ==" | secret | public (C Tor's format)
//! ```
//!
//! Binary files start with a 32-byte tag (the text, NUL-padded), as C Tor's do. C Tor keeps
//! Ed25519 secrets in their expanded 64-byte form, which cannot be turned back into the
//! 32-byte seed `ed25519-dalek` signs with, so kistrel's two secret Ed25519 files carry the
//! seed under a tag of their own. The type-2 (X.509) and type-7 certificates are not stored:
//! every start makes them from the RSA key, as C Tor does.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kistrel_base::{ErrorKind, HasKind};
use kistrel_engine::crypto::identity::{
    IdentityError, IdentityParts, Lifetimes, RelayIdentity, RsaIdentityKey,
};
use kistrel_engine::crypto::ntor::NtorKeypair;
use kistrel_engine::crypto::RelayId;
use kistrel_engine::relay::RelayKeys;
use rand::{RngCore, TryRngCore};
use zeroize::Zeroizing;

use crate::fsutil::write_atomic;

const RSA_ID: &str = "secret_id_key";
const MASTER_PUBLIC: &str = "ed25519_master_id_public_key";
const MASTER_SECRET: &str = "ed25519_master_id_secret_key";
const SIGNING_SECRET: &str = "ed25519_signing_secret_key";
const SIGNING_CERT: &str = "ed25519_signing_cert";
const NTOR: &str = "secret_onion_key_ntor";

const TAG_MASTER_PUBLIC: &str = "== ed25519v1-public: type0 ==";
const TAG_MASTER_SEED: &str = "== kistrel-seed: master ==";
const TAG_SIGNING_SEED: &str = "== kistrel-seed: signing ==";
const TAG_SIGNING_CERT: &str = "== ed25519v1-cert: type4 ==";
const TAG_NTOR: &str = "== c25519v1: onion ==";
const _: () = {
    let tags = [
        TAG_MASTER_PUBLIC,
        TAG_MASTER_SEED,
        TAG_SIGNING_SEED,
        TAG_SIGNING_CERT,
        TAG_NTOR,
    ];
    let mut i = 0;
    while i < tags.len() {
        assert!(tags[i].len() <= 32);
        i += 1;
    }
};

/// Why a key folder could not be read or written. Reading errors are config problems
/// (exit 2); writing and RNG errors are runtime failures (exit 1). Each names its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read key file {}: {source} (generate keys with `kistrel keygen --out DIR`)", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file's contents are not what its name says.
    #[error("key file {}: {what}", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
    /// The keys do not belong together, or certificates could not be made from them.
    #[error("key folder {}: {source}", path.display())]
    Identity {
        /// The key folder.
        path: PathBuf,
        /// What the engine found.
        #[source]
        source: IdentityError,
    },
    /// Refusing to overwrite an existing key file.
    #[error("key file {} already exists: remove the key folder first if you really want new keys", path.display())]
    Exists {
        /// The key file.
        path: PathBuf,
    },
    /// A file or folder could not be written.
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The OS RNG failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(#[source] rand::rand_core::OsError),
}

impl HasKind for KeyError {
    /// A bad or missing key file is the operator's to fix; writing or the RNG failing is not.
    fn kind(&self) -> ErrorKind {
        match self {
            KeyError::Write { .. } | KeyError::Rng(_) => ErrorKind::LocalIo,
            KeyError::Identity { source, .. } => match source.kind() {
                ErrorKind::BadConfig => ErrorKind::BadConfig,
                other => other,
            },
            _ => ErrorKind::BadConfig,
        }
    }
}

/// How `kistrel keygen` makes certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeygenOptions {
    /// Lifetime of the signing key's certificate (C Tor's `SigningKeyLifetime`).
    pub signing_cert_lifetime: Duration,
    /// Make the certificates as if it were this long ago (tests of expired certificates).
    pub backdate: Duration,
}

impl Default for KeygenOptions {
    fn default() -> Self {
        KeygenOptions {
            signing_cert_lifetime: Lifetimes::default().signing_cert,
            backdate: Duration::ZERO,
        }
    }
}

/// A relay's keys, as a key folder holds them.
#[derive(Clone)]
pub struct RelayKeyFolder {
    /// The identities and the signing key's certificate.
    pub parts: IdentityParts,
    /// The ntor onion key's secret scalar.
    pub ntor_secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for RelayKeyFolder {
    /// Secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayKeyFolder")
            .field("identity", &hex::encode_upper(self.rsa_id()))
            .finish_non_exhaustive()
    }
}

impl RelayKeyFolder {
    /// Fresh keys from `rng` (tests pass a seeded one), certificates made at `now`.
    pub fn generate<R: RngCore + ?Sized>(
        rng: &mut R,
        now: SystemTime,
        opts: &KeygenOptions,
    ) -> Result<Self, IdentityError> {
        let lifetimes = Lifetimes {
            signing_cert: opts.signing_cert_lifetime,
            ..Lifetimes::default()
        };
        let made = now
            .checked_sub(opts.backdate)
            .ok_or(IdentityError::TimeOutOfRange)?;
        let identity = RelayIdentity::generate(rng, made, &lifetimes)?;
        let ntor = NtorKeypair::generate(rng);
        Ok(RelayKeyFolder {
            parts: identity.to_parts(),
            ntor_secret: Zeroizing::new(ntor.secret_bytes()),
        })
    }

    /// Fresh keys from the OS RNG.
    pub fn generate_os(now: SystemTime, opts: &KeygenOptions) -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed[..])
            .map_err(KeyError::Rng)?;
        let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::from_seed(*seed);
        Self::generate(&mut rng, now, opts).map_err(|source| KeyError::Identity {
            path: PathBuf::new(),
            source,
        })
    }

    /// The RSA identity fingerprint (the directory's `identity`).
    pub fn rsa_id(&self) -> RelayId {
        self.parts.rsa.fingerprint()
    }

    /// The Ed25519 identity (the directory's `ed25519_identity`).
    pub fn ed_id(&self) -> [u8; 32] {
        self.parts.ed_id
    }

    /// The ntor public key (the directory's `ntor_key`).
    pub fn ntor_public(&self) -> [u8; 32] {
        NtorKeypair::from_secret(*self.ntor_secret).public()
    }

    /// The keys as the engine wants them, with type-2 and type-7 certificates made at
    /// `now`. `dir` names the folder in errors.
    pub fn relay_keys(&self, dir: &Path, now: SystemTime) -> Result<RelayKeys, KeyError> {
        let mut rng = rand::rngs::OsRng.unwrap_err();
        let identity = RelayIdentity::from_parts(&self.parts, &mut rng, now, &Lifetimes::default())
            .map_err(|source| KeyError::Identity {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(RelayKeys {
            identity: std::sync::Arc::new(identity),
            ntor: NtorKeypair::from_secret(*self.ntor_secret),
        })
    }

    /// Writes the folder (created if missing); fails with [`KeyError::Exists`] before
    /// writing anything if any key file is there already.
    pub fn save_new(&self, dir: &Path) -> Result<(), KeyError> {
        for name in [
            RSA_ID,
            MASTER_PUBLIC,
            MASTER_SECRET,
            SIGNING_SECRET,
            SIGNING_CERT,
            NTOR,
        ] {
            let path = dir.join(name);
            if path.exists() {
                return Err(KeyError::Exists { path });
            }
        }
        self.save(dir)
    }

    /// Writes the folder (created if missing), replacing key files that are there (each
    /// file atomically).
    pub fn save(&self, dir: &Path) -> Result<(), KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let pem = self
            .parts
            .rsa
            .to_pkcs1_pem()
            .map_err(|source| KeyError::Identity {
                path: dir.join(RSA_ID),
                source,
            })?;
        write(dir, RSA_ID, pem.as_bytes())?;
        write(
            dir,
            MASTER_PUBLIC,
            &tagged(TAG_MASTER_PUBLIC, &[&self.parts.ed_id]),
        )?;
        if let Some(seed) = &self.parts.master_seed {
            write(dir, MASTER_SECRET, &tagged(TAG_MASTER_SEED, &[&seed[..]]))?;
        }
        let signing = tagged(TAG_SIGNING_SEED, &[&self.parts.signing_seed[..]]);
        write(dir, SIGNING_SECRET, &signing)?;
        let cert = tagged(TAG_SIGNING_CERT, &[&self.parts.signing_cert]);
        write(dir, SIGNING_CERT, &cert)?;
        let public = self.ntor_public();
        let ntor = tagged(TAG_NTOR, &[&self.ntor_secret[..], &public]);
        write(dir, NTOR, &ntor)
    }

    /// Reads a key folder. The master secret key may be absent (kept offline).
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let pem = read(dir, RSA_ID)?;
        let pem = std::str::from_utf8(&pem).map_err(|_| malformed(dir, RSA_ID, "not PEM"))?;
        let rsa = RsaIdentityKey::from_pkcs1_pem(pem).map_err(|source| KeyError::Identity {
            path: dir.join(RSA_ID),
            source,
        })?;
        let ed_id = array(dir, MASTER_PUBLIC, TAG_MASTER_PUBLIC, 32)?;
        let master_seed = match std::fs::metadata(dir.join(MASTER_SECRET)) {
            Ok(_) => Some(array(dir, MASTER_SECRET, TAG_MASTER_SEED, 32)?),
            Err(_) => None,
        };
        let signing_seed = array(dir, SIGNING_SECRET, TAG_SIGNING_SEED, 32)?;
        let signing_cert = untag(dir, SIGNING_CERT, TAG_SIGNING_CERT, None)?;
        let ntor = untag(dir, NTOR, TAG_NTOR, Some(64))?;
        let ntor_secret = first_32(&ntor);
        if NtorKeypair::from_secret(*ntor_secret).public()[..] != ntor[32..] {
            return Err(malformed(
                dir,
                NTOR,
                "the public key does not match the secret",
            ));
        }
        Ok(RelayKeyFolder {
            parts: IdentityParts {
                rsa,
                master_seed: master_seed.map(|s| first_32(&s)),
                ed_id: *first_32(&ed_id),
                signing_seed: first_32(&signing_seed),
                signing_cert: signing_cert.to_vec(),
            },
            ntor_secret,
        })
    }
}

/// The engine's keys from the key folder `dir`, with the type-2 and type-7 certificates made
/// at `now`; warns when the signing certificate expires within a day (peers then refuse
/// the relay: make new keys).
pub fn load_relay_keys(dir: &Path, now: SystemTime) -> Result<RelayKeys, KeyError> {
    let keys = RelayKeyFolder::load(dir)?.relay_keys(dir, now)?;
    let expires = keys.identity.signing_cert_expiry();
    if expires < now + Duration::from_secs(86_400) {
        tracing::warn!(
            dir = %dir.display(),
            expires = %humantime::format_rfc3339_seconds(expires),
            "the Ed25519 signing certificate expires within a day (or has): peers refuse an \
             expired one; make new keys with `kistrel keygen`"
        );
    }
    Ok(keys)
}

fn first_32(bytes: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&bytes[..32]);
    out
}

fn malformed(dir: &Path, name: &str, what: &'static str) -> KeyError {
    KeyError::Malformed {
        path: dir.join(name),
        what,
    }
}

/// The 32-byte tag header C Tor's binary key files start with, then `parts`.
/// INVARIANT: every tag is at most 32 bytes (checked at compile time below).
fn tagged(tag: &str, parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; 32]);
    out[..tag.len()].copy_from_slice(tag.as_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), KeyError> {
    let path = dir.join(name);
    write_atomic(&path, bytes, 0o600).map_err(|source| KeyError::Write { path, source })
}

fn read(dir: &Path, name: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let path = dir.join(name);
    std::fs::read(&path)
        .map(Zeroizing::new)
        .map_err(|source| KeyError::Read { path, source })
}

/// A tagged file's body (after the 32-byte tag), of exactly `len` bytes when given.
fn untag(
    dir: &Path,
    name: &str,
    tag: &str,
    len: Option<usize>,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bytes = read(dir, name)?;
    let header = tagged(tag, &[]);
    if bytes.len() < 32 || bytes[..32] != header[..] {
        return Err(malformed(dir, name, "does not start with its tag"));
    }
    let body = Zeroizing::new(bytes[32..].to_vec());
    if len.is_some_and(|l| body.len() != l) || body.is_empty() {
        return Err(malformed(dir, name, "has the wrong length"));
    }
    Ok(body)
}

fn array(dir: &Path, name: &str, tag: &str, len: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    untag(dir, name, tag, Some(len))
}

#[cfg(test)]
mod tests;
