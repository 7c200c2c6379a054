//! Relay key files.
//!
//! ```toml
//! # kistrel relay keys: keep this file secret
//! identity = "<40 hex digits>"
//! ntor_secret = "<base64 of 32 bytes>"
//! ```
//!
//! `identity` stands for Tor's RSA identity fingerprint (the SHA-1 of the relay's RSA key),
//! which clients name a relay by in EXTEND2. kistrel has no RSA key (links carry no TLS and
//! no CERTS; the ntor handshake proves the identity), so the identity is 20 random bytes
//! from the OS RNG, fixed for the life of the key file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kistrel_base::{ErrorKind, HasKind};
use kistrel_engine::crypto::ntor::NtorKeypair;
use kistrel_engine::crypto::RelayId;
use kistrel_engine::relay::RelayKeys;
use rand::{RngCore, TryRngCore};
use serde::Deserialize;

use crate::fsutil::write_atomic;

/// Why a key file could not be read or written. Reading errors are config problems (exit 2);
/// writing and RNG errors are runtime failures (exit 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read key file {}: {source} (generate one with `kistrel keygen --out DIR`)", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, a missing or unknown key, a wrong type.
    #[error("key file {}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// `identity` is not 40 hex digits.
    #[error("key file {}: identity must be 40 hex digits (20 bytes)", path.display())]
    BadIdentity {
        /// The key file.
        path: PathBuf,
    },
    /// `ntor_secret` is not base64 of 32 bytes.
    #[error("key file {}: ntor_secret must be base64 of 32 bytes", path.display())]
    BadNtorSecret {
        /// The key file.
        path: PathBuf,
    },
    /// Refusing to overwrite an existing key file.
    #[error("key file {} already exists: remove it first if you really want new keys", path.display())]
    Exists {
        /// The key file.
        path: PathBuf,
    },
    /// The file could not be written.
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
            _ => ErrorKind::BadConfig,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    identity: String,
    ntor_secret: String,
}

/// The contents of a relay key file.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayKeyFile {
    /// The relay's identity digest.
    pub identity: RelayId,
    /// The ntor onion key's secret scalar.
    pub ntor_secret: [u8; 32],
}

impl std::fmt::Debug for RelayKeyFile {
    /// The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayKeyFile")
            .field("identity", &hex::encode_upper(self.identity))
            .field("ntor_secret", &"<secret>")
            .finish()
    }
}

impl RelayKeyFile {
    /// Fresh keys from `rng` (tests pass a seeded one).
    pub fn generate<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut identity = [0u8; 20];
        rng.fill_bytes(&mut identity);
        let ntor = NtorKeypair::generate(rng);
        RelayKeyFile {
            identity,
            ntor_secret: ntor.secret_bytes(),
        }
    }

    /// Fresh keys from the OS RNG.
    pub fn generate_os() -> Result<Self, KeyError> {
        let mut identity = [0u8; 20];
        let mut secret = [0u8; 32];
        let mut os = rand::rngs::OsRng;
        os.try_fill_bytes(&mut identity).map_err(KeyError::Rng)?;
        os.try_fill_bytes(&mut secret).map_err(KeyError::Rng)?;
        // Store the clamped scalar, as NtorKeypair::secret_bytes gives it back.
        let ntor_secret = NtorKeypair::from_secret(secret).secret_bytes();
        Ok(RelayKeyFile {
            identity,
            ntor_secret,
        })
    }

    /// The ntor public key (what the directory lists as `ntor_key`).
    pub fn ntor_public(&self) -> [u8; 32] {
        NtorKeypair::from_secret(self.ntor_secret).public()
    }

    /// The keys as the engine wants them.
    pub fn relay_keys(&self) -> RelayKeys {
        RelayKeys {
            identity: self.identity,
            ntor: NtorKeypair::from_secret(self.ntor_secret),
        }
    }

    /// The file text.
    pub fn to_toml(&self) -> String {
        format!(
            "# kistrel relay keys: keep this file secret\nidentity = \"{}\"\nntor_secret = \"{}\"\n",
            hex::encode_upper(self.identity),
            base64::engine::general_purpose::STANDARD.encode(self.ntor_secret)
        )
    }

    /// Parse file text; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, KeyError> {
        let raw: RawKeyFile = toml::from_str(text).map_err(|e| KeyError::Malformed {
            path: path.to_path_buf(),
            line: e.span().map(|s| {
                text.as_bytes()
                    .iter()
                    .take(s.start)
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1
            }),
            message: e.message().trim().to_owned(),
        })?;
        let mut identity = [0u8; 20];
        hex::decode_to_slice(raw.identity.trim(), &mut identity).map_err(|_| {
            KeyError::BadIdentity {
                path: path.to_path_buf(),
            }
        })?;
        let ntor_secret = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(raw.ntor_secret.trim().trim_end_matches('='))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| KeyError::BadNtorSecret {
                path: path.to_path_buf(),
            })?;
        Ok(RelayKeyFile {
            identity,
            ntor_secret,
        })
    }

    /// Read and parse a key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Write atomically with mode 0600, replacing any file at `path`.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        write_atomic(path, self.to_toml().as_bytes(), 0o600).map_err(|source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// As [`RelayKeyFile::save`], but fail with [`KeyError::Exists`] if `path` exists.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        if path.exists() {
            return Err(KeyError::Exists {
                path: path.to_path_buf(),
            });
        }
        self.save(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::os::unix::fs::PermissionsExt;

    fn keys() -> RelayKeyFile {
        RelayKeyFile::generate(&mut ChaCha8Rng::seed_from_u64(7))
    }

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.toml");
        let k = keys();
        k.save_new(&p).unwrap();
        assert_eq!(RelayKeyFile::load(&p).unwrap(), k);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(k.save_new(&p), Err(KeyError::Exists { .. })));
    }

    #[test]
    fn public_key_matches_engine_keypair() {
        let k = keys();
        let engine = k.relay_keys();
        assert_eq!(engine.identity, k.identity);
        assert_eq!(engine.ntor.public(), k.ntor_public());
        assert_eq!(engine.ntor.secret_bytes(), k.ntor_secret);
    }

    #[test]
    fn os_keys_differ_and_round_trip() {
        let a = RelayKeyFile::generate_os().unwrap();
        let b = RelayKeyFile::generate_os().unwrap();
        assert_ne!(a.identity, b.identity);
        let p = Path::new("k.toml");
        assert_eq!(RelayKeyFile::parse(p, &a.to_toml()).unwrap(), a);
    }

    #[test]
    fn errors_name_the_problem() {
        let p = Path::new("/x/keys.toml");
        let e = RelayKeyFile::parse(p, "identity = \"00\"\nntor_secret = \"AA==\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "key file /x/keys.toml: identity must be 40 hex digits (20 bytes)"
        );
        let id = "AB".repeat(20);
        let e = RelayKeyFile::parse(p, &format!("identity = \"{id}\"\nntor_secret = \"AAAA\"\n"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "key file /x/keys.toml: ntor_secret must be base64 of 32 bytes"
        );
        let e = RelayKeyFile::parse(p, &format!("identity = \"{id}\"\nbogus = 1\n")).unwrap_err();
        match &e {
            KeyError::Malformed { line, message, .. } => {
                assert_eq!(*line, Some(2));
                assert!(message.contains("unknown field `bogus`"), "{message}");
            }
            other => panic!("wrong error {other:?}"),
        }
        assert_eq!(e.kind(), ErrorKind::BadConfig);
        let e = RelayKeyFile::load(Path::new("/nonexistent/keys.toml")).unwrap_err();
        assert!(matches!(e, KeyError::Read { .. }));
        assert!(e
            .to_string()
            .starts_with("cannot read key file /nonexistent/keys.toml: "));
        assert!(e
            .to_string()
            .ends_with("(generate one with `kistrel keygen --out DIR`)"));
    }
}
