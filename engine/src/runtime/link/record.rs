//! TLS records after the handshake: opened and sealed in place with the provider's AEAD
//! (aws-lc-rs), the way the kernel's kTLS does them.
//!
//! ```text
//!   open:  [hdr 5][explicit nonce 8, TLS 1.2 GCM][ciphertext ...][tag 16]   (in the recv buffer)
//!              -> plaintext decrypted where the ciphertext was; TLS 1.3 strips the inner type
//!   seal:  [hdr placeholder][explicit placeholder][plaintext written by the cell writer]
//!              -> header and nonce filled in, plaintext encrypted where it is, tag appended
//! ```
//!
//! Why not rustls' own record layer: in rustls 0.23 the unbuffered API decrypts in place but
//! then copies every record into a new `Vec` (`received_plaintext`), and its
//! `MessageEncrypter` allocates a buffer per record; the cell path wants neither. So rustls
//! does the handshake and the key schedule (`dangerous_into_kernel_connection`, which also
//! derives the keys of a TLS 1.3 KeyUpdate), and this file does what kTLS would: nonce and
//! additional data per RFC 8446 5.2-5.3 (TLS 1.3) and RFC 5288 / RFC 7905 (TLS 1.2). The
//! tests check it against rustls' own record layer in both directions.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::aead::{CHACHA20_POLY1305, NONCE_LEN};
use rustls::ConnectionTrafficSecrets;

use super::LinkError;

/// Bytes of a record header: type, legacy version, length.
pub(crate) const HEADER_LEN: usize = 5;
/// Largest plaintext of one record (RFC 8446 5.1).
pub(crate) const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest record body a peer may send (RFC 8446 5.2: 2^14 + 256; TLS 1.2 allows 2^14 +
/// 2048, which no AEAD suite needs).
pub(crate) const MAX_BODY: usize = MAX_PLAINTEXT + 256;
/// AEAD tag of every suite we negotiate.
pub(crate) const TAG_LEN: usize = 16;
/// The explicit nonce of a TLS 1.2 AES-GCM record.
const EXPLICIT_NONCE_LEN: usize = 8;
/// TLS 1.2's legacy record version, and the one TLS 1.3 records carry.
const VERSION_TLS12: [u8; 2] = [3, 3];

/// Record content types (RFC 8446 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContentType(pub(crate) u8);

impl ContentType {
    pub(crate) const ALERT: ContentType = ContentType(21);
    pub(crate) const HANDSHAKE: ContentType = ContentType(22);
    pub(crate) const APPLICATION_DATA: ContentType = ContentType(23);
}

/// The record protection of a TLS version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// TLS 1.3: nonce = iv ^ seq, AAD = the header, the real type inside the plaintext.
    Tls13,
    /// TLS 1.2 AES-GCM: an 8-byte explicit nonce in the record, salt = iv[..4].
    Tls12Gcm,
    /// TLS 1.2 ChaCha20-Poly1305: nonce = iv ^ seq, no explicit nonce.
    Tls12Chacha,
}

impl Framing {
    /// Bytes between the header and the plaintext of a sealed record.
    pub(crate) fn explicit_len(self) -> usize {
        match self {
            Framing::Tls12Gcm => EXPLICIT_NONCE_LEN,
            Framing::Tls13 | Framing::Tls12Chacha => 0,
        }
    }
}

/// One direction's key, static IV and record sequence number.
pub(crate) struct Direction {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    /// INVARIANT: the sequence number of the next record (RFC 8446 5.3).
    seq: u64,
    framing: Framing,
}

impl std::fmt::Debug for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or IV.
        f.debug_struct("Direction")
            .field("seq", &self.seq)
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl Direction {
    /// The direction keyed by `secrets` (from rustls), whose next record is number `seq`.
    pub(crate) fn new(
        framing: Framing,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
    ) -> Result<Self, LinkError> {
        let (alg, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
            _ => return Err(LinkError::UnsupportedSuite),
        };
        let key = UnboundKey::new(alg, key.as_ref()).map_err(|_| LinkError::UnsupportedSuite)?;
        let iv: [u8; NONCE_LEN] = iv
            .as_ref()
            .try_into()
            .map_err(|_| LinkError::UnsupportedSuite)?;
        Ok(Direction {
            key: LessSafeKey::new(key),
            iv,
            seq,
            framing,
        })
    }

    /// A direction from raw parts (tests: what the kernel would build from a crypto info).
    #[cfg(test)]
    pub(crate) fn from_parts(
        chacha: bool,
        key: &[u8],
        iv: [u8; NONCE_LEN],
        seq: u64,
        framing: Framing,
    ) -> Self {
        let alg = match (chacha, key.len()) {
            (true, _) => &CHACHA20_POLY1305,
            (false, 16) => &AES_128_GCM,
            (false, _) => &AES_256_GCM,
        };
        Direction {
            key: LessSafeKey::new(UnboundKey::new(alg, key).expect("key")),
            iv,
            seq,
            framing,
        }
    }

    /// The sequence number of the next record (records sealed or opened under this key).
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The framing of this direction's records.
    pub(crate) fn framing(&self) -> Framing {
        self.framing
    }

    /// iv XOR the sequence number, right-aligned (RFC 8446 5.3; RFC 5288 uses its result
    /// as the explicit nonce, as rustls does).
    fn xor_nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, s) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        nonce
    }

    fn next_seq(&mut self) -> Result<(), LinkError> {
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or(LinkError::SequenceExhausted)?;
        Ok(())
    }

    /// TLS 1.2's additional data: seq, type, version, plaintext length.
    fn aad12(&self, typ: ContentType, plain_len: usize) -> [u8; 13] {
        let mut aad = [0; 13];
        aad[..8].copy_from_slice(&self.seq.to_be_bytes());
        aad[8] = typ.0;
        aad[9..11].copy_from_slice(&VERSION_TLS12);
        aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
        aad
    }

    /// Opens the record `record` (header included, exactly one record) in place; returns
    /// its content type and where its plaintext is in `record`.
    pub(crate) fn open(
        &mut self,
        record: &mut [u8],
    ) -> Result<(ContentType, std::ops::Range<usize>), LinkError> {
        let (header, body) = record
            .split_first_chunk_mut::<HEADER_LEN>()
            .ok_or(LinkError::BadRecord)?;
        let outer = ContentType(header[0]);
        let body_len = body.len();
        let (typ, start, len) = match self.framing {
            Framing::Tls13 => {
                if outer != ContentType::APPLICATION_DATA {
                    return Err(LinkError::UnexpectedPlaintextRecord(outer.0));
                }
                let nonce = Nonce::assume_unique_for_key(self.xor_nonce());
                let plain = self
                    .key
                    .open_in_place(nonce, Aad::from(*header), body)
                    .map_err(|_| LinkError::Decrypt)?;
                // RFC 8446 5.4: the real type is the last non-zero byte; zeros are padding.
                let end = plain
                    .iter()
                    .rposition(|&b| b != 0)
                    .ok_or(LinkError::BadRecord)?;
                (ContentType(plain[end]), HEADER_LEN, end)
            }
            Framing::Tls12Gcm => {
                let plain_len = body_len
                    .checked_sub(EXPLICIT_NONCE_LEN + TAG_LEN)
                    .ok_or(LinkError::BadRecord)?;
                let (explicit, sealed) = body.split_at_mut(EXPLICIT_NONCE_LEN);
                let mut nonce = self.iv;
                nonce[4..].copy_from_slice(explicit);
                let aad = self.aad12(outer, plain_len);
                let nonce = Nonce::assume_unique_for_key(nonce);
                self.key
                    .open_in_place(nonce, Aad::from(aad), sealed)
                    .map_err(|_| LinkError::Decrypt)?;
                (outer, HEADER_LEN + EXPLICIT_NONCE_LEN, plain_len)
            }
            Framing::Tls12Chacha => {
                let plain_len = body_len.checked_sub(TAG_LEN).ok_or(LinkError::BadRecord)?;
                let aad = self.aad12(outer, plain_len);
                let nonce = Nonce::assume_unique_for_key(self.xor_nonce());
                self.key
                    .open_in_place(nonce, Aad::from(aad), body)
                    .map_err(|_| LinkError::Decrypt)?;
                (outer, HEADER_LEN, plain_len)
            }
        };
        self.next_seq()?;
        Ok((typ, start..start + len))
    }

    /// Seals the record that starts at `start` in `buf`: `buf[start..start + prefix]` is
    /// room for the header (and explicit nonce), and the rest of `buf` its plaintext, at
    /// most [`MAX_PLAINTEXT`] bytes (the caller's rule). Encrypts in place and appends the
    /// tag.
    pub(crate) fn seal(
        &mut self,
        buf: &mut Vec<u8>,
        start: usize,
        typ: ContentType,
    ) -> Result<(), LinkError> {
        let prefix = HEADER_LEN + self.framing.explicit_len();
        let plain_len = buf
            .len()
            .checked_sub(start + prefix)
            .ok_or(LinkError::BadRecord)?;
        debug_assert!(
            plain_len <= MAX_PLAINTEXT,
            "record plaintext over the limit"
        );
        let (outer, aad13, nonce) = match self.framing {
            Framing::Tls13 => {
                buf.push(typ.0);
                (ContentType::APPLICATION_DATA, true, self.xor_nonce())
            }
            Framing::Tls12Gcm | Framing::Tls12Chacha => (typ, false, self.xor_nonce()),
        };
        let body_len = buf.len() - start - HEADER_LEN + TAG_LEN;
        let len = u16::try_from(body_len).map_err(|_| LinkError::BadRecord)?;
        let header = [
            outer.0,
            VERSION_TLS12[0],
            VERSION_TLS12[1],
            (len >> 8) as u8,
            len as u8,
        ];
        let region = buf.get_mut(start..).ok_or(LinkError::BadRecord)?;
        region[..HEADER_LEN].copy_from_slice(&header);
        if self.framing == Framing::Tls12Gcm {
            region[HEADER_LEN..prefix].copy_from_slice(&nonce[4..]);
        }
        let plain = &mut region[prefix..];
        let nonce = Nonce::assume_unique_for_key(nonce);
        let tag = if aad13 {
            self.key
                .seal_in_place_separate_tag(nonce, Aad::from(header), plain)
        } else {
            let aad = self.aad12(typ, plain_len);
            self.key
                .seal_in_place_separate_tag(nonce, Aad::from(aad), plain)
        }
        .map_err(|_| LinkError::Encrypt)?;
        buf.extend_from_slice(tag.as_ref());
        self.next_seq()
    }
}

/// The length of the record at the start of `bytes`, header included, once its header is
/// there; rejects a body over [`MAX_BODY`].
pub(crate) fn record_len(bytes: &[u8]) -> Result<Option<usize>, LinkError> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let body = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if body > MAX_BODY {
        return Err(LinkError::RecordTooLong(body));
    }
    if header[1] != 3 {
        return Err(LinkError::NotTls(header[0]));
    }
    Ok(Some(HEADER_LEN + body))
}
