//! kTLS: handing a TLS session's record keys to the kernel, which then seals the records of
//! plain `send`s (TLS_TX) and opens received records before `recv` sees them (TLS_RX)
//! (Linux `tls` ULP: setsockopt TCP_ULP "tls", then SOL_TLS / TLS_TX or TLS_RX with a
//! `tls12_crypto_info_*` struct, the same layout both ways: [`CryptoInfo`]).
//!
//! What kistrel does with it, and why:
//! - **Probe at start** ([`probe`]): `tls` must be listed in
//!   /proc/sys/net/ipv4/tcp_available_ulp, and a first loopback socket must take the ULP and
//!   a TLS_TX key. Otherwise links keep their records in user space, and the process says
//!   why once.
//! - **TX: TLS 1.3 and TLS 1.2 ChaCha20-Poly1305 only.** The kernel builds their nonces as
//!   rustls and the user-space record layer do (iv XOR sequence number), so the switch after
//!   the handshake (when the handshake already used sequence numbers) cannot repeat a nonce.
//!   TLS 1.2 AES-GCM's explicit nonce is counted by the kernel as iv + n, by rustls as
//!   iv XOR n: those links send from user space. A peer's KeyUpdate that asks for our keys
//!   to be renewed closes a kTLS TX link (renewing them needs Linux 6.13's TLS_TX rekey).
//! - **RX: every suite** ([`CryptoInfo::new_rx`]): a receiver takes TLS 1.2's explicit nonce
//!   from each record, so nothing is counted. The switch must happen on a record boundary
//!   with no received byte left unopened in user space (the caller's job: the link has
//!   nothing staged and the backend has no read of the socket in flight). After it, `recv`
//!   returns plaintext of application-data records; a record of another type makes a plain
//!   `recv` fail with EIO, and [`recv_record`] then reads it with its type from the
//!   TLS_GET_RECORD_TYPE control message ([`record_type`]). The link ignores a TLS 1.3
//!   NewSessionTicket and closes, with a logged reason, on an alert or a KeyUpdate (the
//!   kernel holds the receive keys; renewing them needs Linux 6.13's TLS_RX rekey).
//!
//! **Untested on the development kernel**, which has no `tls` ULP: the byte layout of the
//! crypto-info structs (checked against libc's definitions of the kernel's structs), the
//! key, IV, salt and sequence extraction and the control-message parsing are unit-tested;
//! the setsockopt and recvmsg paths run only where the probe succeeds.

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

    /// The crypto info of the send direction keyed by `secrets` whose next record is
    /// number `seq` (TLS_TX); `None` for a suite or version kistrel does not hand to the
    /// kernel to seal (TLS 1.2 AES-GCM, see the module docs).
    pub fn new(version: KtlsVersion, secrets: &ConnectionTrafficSecrets, seq: u64) -> Option<Self> {
        Self::layout(version, secrets, seq, false)
    }

    /// The crypto info of the receive direction keyed by `secrets` whose next record is
    /// number `seq` (TLS_RX): every suite the kernel knows, TLS 1.2 AES-GCM included (the
    /// kernel reads that nonce from each record).
    pub fn new_rx(
        version: KtlsVersion,
        secrets: &ConnectionTrafficSecrets,
        seq: u64,
    ) -> Option<Self> {
        Self::layout(version, secrets, seq, true)
    }

    /// The struct for either direction: `tls_crypto_info` (version, cipher), then the
    /// cipher's iv, key, salt and record sequence number.
    fn layout(
        version: KtlsVersion,
        secrets: &ConnectionTrafficSecrets,
        seq: u64,
        tls12_gcm: bool,
    ) -> Option<Self> {
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
        if key.len() != key_len || (version == KtlsVersion::Tls12 && salt_len != 0 && !tls12_gcm) {
            return None;
        }
        let version = match version {
            KtlsVersion::Tls12 => libc::TLS_1_2_VERSION,
            KtlsVersion::Tls13 => libc::TLS_1_3_VERSION,
        };
        // RFC 8446 5.3: the 12-byte IV is salt (4, GCM) + iv (8), or all iv (ChaCha20).
        // TLS 1.2 GCM (RFC 5288): the salt is the implicit nonce; the kernel's iv field is
        // the first explicit nonce when sending, unused when receiving.
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
    set_key(fd, TlsDirection::Tx, info)
}

/// Turns on the `tls` ULP of the connected TCP socket `fd` (if TX did not already) and gives
/// the kernel its receive keys: from now on reads return the plaintext of application-data
/// records, and [`recv_record`] reads the others. Call it only on a record boundary (see the
/// module docs).
pub fn enable_rx(fd: RawFd, info: &CryptoInfo) -> io::Result<()> {
    set_key(fd, TlsDirection::Rx, info)
}

#[derive(Clone, Copy)]
enum TlsDirection {
    Tx,
    Rx,
}

/// The ULP (once per socket: EEXIST when the other direction set it) and one direction's key.
fn set_key(fd: RawFd, dir: TlsDirection, info: &CryptoInfo) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        match super::setsockopt_raw(fd, libc::SOL_TCP, libc::TCP_ULP, b"tls".as_ptr().cast(), 3) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            other => other?,
        }
        let name = match dir {
            TlsDirection::Tx => libc::TLS_TX,
            TlsDirection::Rx => libc::TLS_RX,
        };
        let bytes = info.as_bytes();
        super::setsockopt_raw(fd, libc::SOL_TLS, name, bytes.as_ptr().cast(), bytes.len())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, dir, info);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// TLS content types (RFC 8446 5.1) as [`recv_record`] reports them.
pub mod content_type {
    /// An alert.
    pub const ALERT: u8 = 21;
    /// Handshake messages (after the handshake: NewSessionTicket, KeyUpdate).
    pub const HANDSHAKE: u8 = 22;
    /// Application data.
    pub const APPLICATION_DATA: u8 = 23;
}

/// One record a kTLS RX socket opened, read by [`recv_record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KtlsRecord {
    /// Its content type ([`content_type`]).
    pub content_type: u8,
    /// Bytes of its plaintext read into the caller's buffer.
    pub len: usize,
}

/// Reads from a kTLS RX socket with room for the TLS_GET_RECORD_TYPE control message: what
/// a plain `recv` refuses with EIO (a record that is not application data) arrives here
/// with its type. Without the control message the bytes are application data. One system
/// call, made only after such an EIO (rare: post-handshake messages and alerts).
pub fn recv_record(fd: RawFd, buf: &mut [u8]) -> io::Result<KtlsRecord> {
    #[cfg(target_os = "linux")]
    {
        // Room for a few control messages, aligned as `cmsghdr`.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `msghdr` is plain data (pointers and integers, padding on some libcs), for
        // which all-zero bytes are a valid value: no name, no iovec, no control buffer.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` points at `iov` (which covers `buf`, writable, `buf.len()` bytes) and
        // at `control` (writable, `msg_controllen` bytes); all outlive the call, and the
        // kernel writes at most those lengths.
        let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
        let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        let mut bytes = [0u8; 64];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(control) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        // `size_t` on glibc, `socklen_t` on musl; never more than we offered.
        let used = (msg.msg_controllen as usize).min(bytes.len());
        Ok(KtlsRecord {
            content_type: record_type(&bytes[..used]).unwrap_or(content_type::APPLICATION_DATA),
            len,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, buf);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The record type in a control buffer that `recvmsg` filled for a kTLS socket: the byte
/// of its SOL_TLS / TLS_GET_RECORD_TYPE message; `None` when there is none (or the buffer
/// is malformed). Walks the messages as `CMSG_FIRSTHDR` / `CMSG_NXTHDR` do.
#[cfg(target_os = "linux")]
pub fn record_type(control: &[u8]) -> Option<u8> {
    use std::mem::{offset_of, size_of};
    /// CMSG_ALIGN: to the size of `size_t` (glibc) / `long` (musl).
    const ALIGN: usize = size_of::<usize>();
    fn field_size<T>(_: fn(&libc::cmsghdr) -> &T) -> usize {
        size_of::<T>()
    }
    fn ne_int(bytes: &[u8]) -> Option<u64> {
        Some(match bytes.len() {
            4 => u64::from(u32::from_ne_bytes(bytes.try_into().ok()?)),
            8 => u64::from_ne_bytes(bytes.try_into().ok()?),
            _ => return None,
        })
    }
    let align = |n: usize| n.checked_add(ALIGN - 1).map(|n| n & !(ALIGN - 1));
    let hdr_len = size_of::<libc::cmsghdr>();
    let data_at = align(hdr_len)?;
    let field = |h: &[u8], at: usize, size: usize| ne_int(h.get(at..at + size)?);
    let mut at = 0;
    while let Some(h) = control.get(at..at + hdr_len) {
        let len = field(
            h,
            offset_of!(libc::cmsghdr, cmsg_len),
            field_size(|c| &c.cmsg_len),
        )?;
        let level = field(h, offset_of!(libc::cmsghdr, cmsg_level), 4)?;
        let typ = field(h, offset_of!(libc::cmsghdr, cmsg_type), 4)?;
        let len = usize::try_from(len).ok().filter(|l| *l >= data_at)?;
        let data = control.get(at + data_at..at + len)?;
        if level == libc::SOL_TLS as u64 && typ == libc::TLS_GET_RECORD_TYPE as u64 {
            return data.first().copied();
        }
        at = at.checked_add(align(len)?)?;
    }
    None
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
    fn rx_takes_every_suite_with_the_layout_of_tx() {
        // (AES-128-GCM keys come only from real sessions: runtime/link/tests.rs.)
        // AES-256-GCM and ChaCha20, both versions: RX is byte for byte what TX would be
        // where TX takes the suite (one layout for both directions).
        let suites = [
            ConnectionTrafficSecrets::Aes256Gcm {
                key: key(7),
                iv: iv(),
            },
            ConnectionTrafficSecrets::Chacha20Poly1305 {
                key: key(9),
                iv: iv(),
            },
        ];
        for secrets in &suites {
            for version in [KtlsVersion::Tls12, KtlsVersion::Tls13] {
                let rx = CryptoInfo::new_rx(version, secrets, 11).unwrap();
                match CryptoInfo::new(version, secrets, 11) {
                    Some(tx) => assert_eq!(tx.as_bytes(), rx.as_bytes()),
                    None => {
                        assert_eq!(version, KtlsVersion::Tls12, "only TLS 1.2 GCM is TX-only");
                        type K256 = libc::tls12_crypto_info_aes_gcm_256;
                        let b = rx.as_bytes();
                        assert_eq!(b.len(), size_of::<K256>());
                        let seq_at = offset_of!(K256, rec_seq);
                        assert_eq!(b[seq_at..], 11u64.to_be_bytes());
                    }
                }
            }
        }
    }

    /// A control buffer as the kernel writes it, made with libc's CMSG macros: each
    /// (level, type, data) in turn.
    fn control_buffer(msgs: &[(i32, i32, &[u8])]) -> Vec<u8> {
        let mut buf = vec![0u64; 16];
        // SAFETY: `msghdr` is plain data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = (buf.len() * 8) as _;
        let mut used = 0;
        // SAFETY: `msg` describes `buf` (128 writable bytes, 8-aligned); CMSG_FIRSTHDR and
        // CMSG_NXTHDR return a header inside it or null, and each message written fits
        // (the test's messages total far less than 128 bytes).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            for (level, typ, data) in msgs {
                assert!(!c.is_null());
                (*c).cmsg_level = *level;
                (*c).cmsg_type = *typ;
                (*c).cmsg_len = libc::CMSG_LEN(data.len() as u32) as _;
                std::ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(c), data.len());
                used = c.cast::<u8>().offset_from(buf.as_ptr().cast::<u8>()) as usize
                    + libc::CMSG_SPACE(data.len() as u32) as usize;
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        buf.iter()
            .flat_map(|w| w.to_ne_bytes())
            .take(used)
            .collect()
    }

    #[test]
    fn record_type_is_read_from_the_tls_control_message() {
        let tls = |t: u8| (libc::SOL_TLS, libc::TLS_GET_RECORD_TYPE, vec![t]);
        let one = control_buffer(&[(tls(21).0, tls(21).1, &[21])]);
        assert_eq!(record_type(&one), Some(content_type::ALERT));
        // After another message (a timestamp's worth of bytes at another level).
        let two = control_buffer(&[
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &[7; 16]),
            (libc::SOL_TLS, libc::TLS_GET_RECORD_TYPE, &[22]),
        ]);
        assert_eq!(record_type(&two), Some(content_type::HANDSHAKE));
        // None: empty, another level only, cut short, a length below the header.
        assert_eq!(record_type(&[]), None);
        let other = control_buffer(&[(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &[7; 16])]);
        assert_eq!(record_type(&other), None);
        assert_eq!(record_type(&one[..one.len() - 8]), None, "data cut off");
        let mut bad = one.clone();
        bad[..8].fill(0);
        bad[offset_of!(libc::cmsghdr, cmsg_len)] = 3;
        assert_eq!(record_type(&bad), None, "cmsg_len below the header");
    }

    #[test]
    fn recv_record_reads_application_data_without_a_control_message() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        tx.write_all(b"cells").unwrap();
        let mut buf = [0u8; 16];
        // No kTLS on this socket: no record type comes, so the bytes are data.
        let got = recv_record(rx.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(
            got,
            KtlsRecord {
                content_type: content_type::APPLICATION_DATA,
                len: 5
            }
        );
        assert_eq!(&buf[..5], b"cells");
        drop(tx);
        assert_eq!(recv_record(rx.as_raw_fd(), &mut buf).unwrap().len, 0, "EOF");
        // A closed descriptor: the error, not a record.
        assert!(recv_record(-1, &mut buf).is_err());
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
