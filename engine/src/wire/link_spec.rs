//! Link specifiers in EXTEND2 (tor-spec section 5.1.2): `type u8 | len u8 | value [len]`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::bytes::{Reader, Writer};
use super::{Error, Result};

mod ty {
    pub(super) const IPV4: u8 = 0;
    pub(super) const IPV6: u8 = 1;
    pub(super) const LEGACY_ID: u8 = 2;
    pub(super) const ED25519: u8 = 3;
}

/// One link specifier: where, and who, the next relay is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkSpec {
    /// Type 0: IPv4 address and port (6 bytes).
    Ipv4(SocketAddrV4),
    /// Type 1: IPv6 address and port (18 bytes).
    Ipv6(SocketAddrV6),
    /// Type 2: the relay's legacy identity, SHA-1 of its RSA key (20 bytes).
    LegacyId([u8; 20]),
    /// Type 3: the relay's Ed25519 identity (32 bytes).
    Ed25519([u8; 32]),
    /// Any other type: skipped on parse, recorded so the caller can see it was there. It
    /// cannot be emitted (its value was not kept).
    Unrecognized {
        /// The specifier type byte; never 0..=3, which parse into the variants above.
        ty: u8,
        /// Its declared value length, in bytes (the value itself was skipped).
        len: u8,
    },
}

impl LinkSpec {
    /// Read one specifier. A known type with the wrong length is `BadLength`.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let ty = r.u8("link specifier type")?;
        let len = r.u8("link specifier length")?;
        let value = r.take(usize::from(len), "link specifier")?;
        let expected = match ty {
            ty::IPV4 => 6,
            ty::IPV6 => 18,
            ty::LEGACY_ID => 20,
            ty::ED25519 => 32,
            _ => return Ok(Self::Unrecognized { ty, len }),
        };
        if value.len() != expected {
            return Err(Error::BadLength {
                field: "link specifier",
                len: value.len(),
            });
        }
        let mut v = Reader::new(value);
        Ok(match ty {
            ty::IPV4 => {
                let ip = Ipv4Addr::from(v.array::<4>("link specifier")?);
                Self::Ipv4(SocketAddrV4::new(ip, v.u16("link specifier")?))
            }
            ty::IPV6 => {
                let ip = Ipv6Addr::from(v.array::<16>("link specifier")?);
                Self::Ipv6(SocketAddrV6::new(ip, v.u16("link specifier")?, 0, 0))
            }
            ty::LEGACY_ID => Self::LegacyId(v.array("link specifier")?),
            _ => Self::Ed25519(v.array("link specifier")?),
        })
    }

    /// Write one specifier. `Unrecognized` is `Unencodable`: its value was not kept. An IPv6
    /// address's flow info and scope id are not on the wire and are dropped.
    pub(super) fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        const FIELD: &str = "link specifier";
        match self {
            Self::Ipv4(addr) => {
                w.bytes(&[ty::IPV4, 6], FIELD)?;
                w.bytes(&addr.ip().octets(), FIELD)?;
                w.u16(addr.port(), FIELD)
            }
            Self::Ipv6(addr) => {
                w.bytes(&[ty::IPV6, 18], FIELD)?;
                w.bytes(&addr.ip().octets(), FIELD)?;
                w.u16(addr.port(), FIELD)
            }
            Self::LegacyId(id) => {
                w.bytes(&[ty::LEGACY_ID, 20], FIELD)?;
                w.bytes(id, FIELD)
            }
            Self::Ed25519(id) => {
                w.bytes(&[ty::ED25519, 32], FIELD)?;
                w.bytes(id, FIELD)
            }
            Self::Unrecognized { .. } => Err(Error::Unencodable { field: FIELD }),
        }
    }
}
