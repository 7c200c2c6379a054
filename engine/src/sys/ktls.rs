//! kTLS: handing a TLS session's send keys to the kernel, which then seals the records of
//! plain `send`s (Linux `tls` ULP: setsockopt TCP_ULP "tls", then SOL_TLS / TLS_TX with a
//! `tls12_crypto_info_*` struct).
//!
//! What kistrel does with it, and why:
//! - **Probe at start** ([`probe`]): `tls` must be listed in
//!   /proc/sys/net/ipv4/tcp_available_ulp, and a first loopback socket must take the ULP and
//!   a TLS_TX key. Otherwise links keep their records in user space, and the process says
//!   why once.
//! - **TX only.** With TLS_RX the kernel hands non-application records (TLS 1.3
//!   NewSessionTicket and KeyUpdate, alerts) to `recvmsg` as control messages, which the
//!   io_uring multishot receive cannot carry, and switching the receive side needs the
//!   receive path quiesced on a record boundary. kistrel opens records in place in its
//!   receive buffers anyway (no copy), so RX stays in user space.
//! - **TLS 1.3 and TLS 1.2 ChaCha20-Poly1305 only.** The kernel builds their nonces as rustls
//!   and the user-space record layer do (iv XOR sequence number), so the switch after the
//!   handshake (when the handshake already used sequence numbers) cannot repeat a nonce. TLS
//!   1.2 AES-GCM's explicit nonce is counted by the kernel as iv + n, by rustls as iv XOR n:
//!   those links stay in user space.
//! - A peer's KeyUpdate that asks for our keys to be renewed closes a kTLS link (the kernel
//!   holds the send keys; renewing them needs Linux 6.13's TLS_TX rekey).
//!
//! **Untested on the development kernel**, which has no `tls` ULP: the byte layout of the
//! crypto-info structs (checked against libc's definitions of the kernel's structs) and the
//! key, IV, salt and sequence extraction are unit-tested; the setsockopt path runs only where
//! the probe succeeds.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

use rustls::ConnectionTrafficSecrets;
use zeroize::Zeroize;

/// Where the kernel lists the TCP upper-layer protocols it can load.
const AVAILABLE_ULP: &str = "/proc/sys/net/ipv4/tcp_available_ulp";

/// Whether links may hand their send keys to the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KtlsSupport {
    /// The probe set a key on a first socket.
    Available,
    /// Not here, and why (said once at start).
    Unavailable(String),
}

impl KtlsSupport {
    /// Whether kTLS can be used.
    pub fn is_available(&self) -> bool {
        matches!(self, KtlsSupport::Available)
    }
}

/// TLS versions of the kernel's crypto info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KtlsVersion {
    /// TLS 1.2 (0x0303).
    Tls12,
    /// TLS 1.3 (0x0304).
    Tls13,
}

/// A `tls12_crypto_info_*` struct as the kernel reads it (every field a byte array after
/// the two native-endian u16 of `tls_crypto_info`), for one direction of one session.
/// Zeroed on drop.
pub struct CryptoInfo {
    bytes: [u8; Self::MAX_LEN],
    len: usize,
}

impl fmt::Debug for CryptoInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("CryptoInfo")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for CryptoInfo {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl CryptoInfo {
    /// The largest struct (AES-256-GCM and ChaCha20-Poly1305: 56 bytes).
    const MAX_LEN: usize = 56;

    /// The crypto info of a direction keyed by `secrets` whose next record is number
    /// `seq`; `None` for a suite or version kistrel does not hand to the kernel (see the
    /// module docs).
    pub fn new(version: KtlsVersion, secrets: &ConnectionTrafficSecrets, seq: u64) -> Option<Self> {
        let (cipher, key, iv, key_len, salt_len) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (
                libc::TLS_CIPHER_AES_GCM_128,
                key.as_ref(),
                iv.as_ref(),
                16,
                4,
            ),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (
                libc::TLS_CIPHER_AES_GCM_256,
                key.as_ref(),
                iv.as_ref(),
                32,
                4,
            ),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (
                libc::TLS_CIPHER_CHACHA20_POLY1305,
                key.as_ref(),
                iv.as_ref(),
                32,
                0,
            ),
            _ => return None,
        };
        if key.len() != key_len || (version == KtlsVersion::Tls12 && salt_len != 0) {
            return None;
        }
        let version = match version {
            KtlsVersion::Tls12 => libc::TLS_1_2_VERSION,
            KtlsVersion::Tls13 => libc::TLS_1_3_VERSION,
        };
        // RFC 8446 5.3: the 12-byte IV is salt (4, GCM) + iv (8), or all iv (ChaCha20).
        let (salt, iv) = iv.split_at_checked(salt_len)?;
        let mut info = CryptoInfo {
            bytes: [0; Self::MAX_LEN],
            len: 0,
        };
        let fields: [&[u8]; 6] = [
            &version.to_ne_bytes(),
            &cipher.to_ne_bytes(),
            iv,
            key,
            salt,
            &seq.to_be_bytes(),
        ];
        for f in fields {
            info.bytes
                .get_mut(info.len..info.len + f.len())?
                .copy_from_slice(f);
            info.len += f.len();
        }
        Some(info)
    }

    /// The struct's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Turns on the `tls` ULP of the connected TCP socket `fd` and gives the kernel its send
/// keys: from now on plain writes leave as TLS records.
pub fn enable_tx(fd: RawFd, info: &CryptoInfo) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        super::setsockopt_raw(fd, libc::SOL_TCP, libc::TCP_ULP, b"tls".as_ptr().cast(), 3)?;
        let bytes = info.as_bytes();
        super::setsockopt_raw(
            fd,
            libc::SOL_TLS,
            libc::TLS_TX,
            bytes.as_ptr().cast(),
            bytes.len(),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, info);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Probes kTLS once: the `tls` ULP listed, then taken with a TLS 1.3 AES-128-GCM key by a
/// first (loopback) socket.
/// (AES-256-GCM: the one key size rustls' public key type can be made with.)
pub fn probe() -> KtlsSupport {
    if !cfg!(target_os = "linux") {
        return KtlsSupport::Unavailable("kTLS is Linux only".into());
    }
    match std::fs::read_to_string(AVAILABLE_ULP) {
        Ok(list) if list.split_whitespace().any(|u| u == "tls") => {}
        Ok(list) => {
            return KtlsSupport::Unavailable(format!(
                "the kernel has no tls ULP ({AVAILABLE_ULP}: {:?}; try `modprobe tls`)",
                list.trim()
            ))
        }
        Err(e) => return KtlsSupport::Unavailable(format!("reading {AVAILABLE_ULP}: {e}")),
    }
    match probe_socket() {
        Ok(()) => KtlsSupport::Available,
        Err(e) => KtlsSupport::Unavailable(format!("a first socket refused kTLS: {e}")),
    }
}

fn probe_socket() -> io::Result<()> {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let stream = TcpStream::connect(listener.local_addr()?)?;
    let _peer = listener.accept()?;
    let secrets = ConnectionTrafficSecrets::Aes256Gcm {
        key: rustls::crypto::cipher::AeadKey::from([0; 32]),
        iv: rustls::crypto::cipher::Iv::from([0; 12]),
    };
    let info = CryptoInfo::new(KtlsVersion::Tls13, &secrets, 0)
        .ok_or_else(|| io::Error::other("no crypto info for the probe key"))?;
    enable_tx(stream.as_raw_fd(), &info)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::mem::{offset_of, size_of};

    use rustls::crypto::cipher::{AeadKey, Iv};

    use super::*;

    fn key(n: u8) -> AeadKey {
        let mut k = [0; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = n + i as u8;
        }
        AeadKey::from(k)
    }

    fn iv() -> Iv {
        Iv::from([
            0xa0, 0xa1, 0xa2, 0xa3, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
        ])
    }

    #[test]
    fn aes_256_gcm_layout_is_the_kernels() {
        type K = libc::tls12_crypto_info_aes_gcm_256;
        let secrets = ConnectionTrafficSecrets::Aes256Gcm {
            key: key(7),
            iv: iv(),
        };
        let info = CryptoInfo::new(KtlsVersion::Tls13, &secrets, 5).unwrap();
        let b = info.as_bytes();
        assert_eq!(b.len(), size_of::<K>());
        assert_eq!(b[2..4], libc::TLS_CIPHER_AES_GCM_256.to_ne_bytes());
        let key_at = offset_of!(K, key);
        assert_eq!(b[key_at..key_at + 32], (7..39).collect::<Vec<u8>>()[..]);
        let salt_at = offset_of!(K, salt);
        assert_eq!(b[salt_at..salt_at + 4], [0xa0, 0xa1, 0xa2, 0xa3]);
        let seq_at = offset_of!(K, rec_seq);
        assert_eq!(b[seq_at..], [0, 0, 0, 0, 0, 0, 0, 5]);
    }

    #[test]
    fn chacha20_layout_is_the_kernels_and_has_no_salt() {
        type K = libc::tls12_crypto_info_chacha20_poly1305;
        let secrets = ConnectionTrafficSecrets::Chacha20Poly1305 {
            key: key(0),
            iv: iv(),
        };
        for version in [KtlsVersion::Tls12, KtlsVersion::Tls13] {
            let info = CryptoInfo::new(version, &secrets, 9).unwrap();
            let b = info.as_bytes();
            assert_eq!(b.len(), size_of::<K>());
            assert_eq!(b[2..4], libc::TLS_CIPHER_CHACHA20_POLY1305.to_ne_bytes());
            let iv_at = offset_of!(K, iv);
            assert_eq!(b[iv_at..iv_at + 12], *iv().as_ref(), "the whole 12-byte IV");
            let seq_at = offset_of!(K, rec_seq);
            assert_eq!(b[seq_at..], [0, 0, 0, 0, 0, 0, 0, 9]);
        }
    }

    #[test]
    fn tls12_aes_gcm_stays_in_user_space_and_key_sizes_are_checked() {
        let secrets = ConnectionTrafficSecrets::Aes256Gcm {
            key: key(1),
            iv: iv(),
        };
        assert!(CryptoInfo::new(KtlsVersion::Tls12, &secrets, 1).is_none());
        let wrong = ConnectionTrafficSecrets::Aes128Gcm {
            key: key(1),
            iv: iv(),
        };
        assert!(
            CryptoInfo::new(KtlsVersion::Tls13, &wrong, 1).is_none(),
            "32-byte AES-128 key"
        );
    }

    #[test]
    fn probe_names_the_reason_when_unavailable() {
        match probe() {
            KtlsSupport::Available => {}
            KtlsSupport::Unavailable(why) => assert!(
                why.contains("tls ULP") || why.contains("refused") || why.contains("reading"),
                "{why}"
            ),
        }
    }
}
