//! RESOLVE and RESOLVED (tor-spec 6.4): a host name lookup at the exit, without a stream.
//!
//! ```text
//! RESOLVE:  hostname (or an in-addr.arpa name) | NUL
//! RESOLVED: answers, each  Type u8 | Length u8 | Value [Length] | TTL u32
//!           Type: 0x00 hostname, 0x04 IPv4, 0x06 IPv6, 0xF0 transient error, 0xF1 error
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{Reader, Writer};
use super::{Error, Result};

/// RESOLVE payload: the name to look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolve<'a> {
    /// The name, without its NUL: non-empty ASCII after `parse`.
    pub host: &'a str,
}

impl<'a> Resolve<'a> {
    /// Fails on a missing NUL (`Truncated`) or an empty or non-ASCII name (`BadValue`).
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let nul = data.iter().position(|&b| b == 0).ok_or(Error::Truncated {
            field: "resolve hostname",
        })?;
        let name = &data[..nul];
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
            return Err(Error::BadValue {
                field: "resolve hostname",
            });
        }
        // ASCII is UTF-8.
        let host = core::str::from_utf8(name).map_err(|_| Error::BadValue {
            field: "resolve hostname",
        })?;
        Ok(Self { host })
    }

    /// Writes `host` and its NUL.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.bytes(self.host.as_bytes(), "resolve hostname")?;
        w.u8(0, "resolve hostname")?;
        Ok(w.written())
    }
}

/// One RESOLVED answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedAnswer {
    /// An address, valid for `ttl` seconds.
    Addr {
        /// The address.
        ip: IpAddr,
        /// Seconds the answer may be cached.
        ttl: u32,
    },
    /// A host name (a reverse lookup's answer), valid for `ttl` seconds.
    Hostname {
        /// The name, as sent (not NUL-terminated).
        name: Vec<u8>,
        /// Seconds the answer may be cached.
        ttl: u32,
    },
    /// The lookup failed; `transient` failures may succeed later.
    Error {
        /// 0xF0 rather than 0xF1.
        transient: bool,
        /// Seconds the failure may be cached.
        ttl: u32,
    },
    /// A type this version does not know (skipped by readers).
    Unknown {
        /// The type byte.
        ty: u8,
    },
}

mod ty {
    pub(super) const HOSTNAME: u8 = 0x00;
    pub(super) const IPV4: u8 = 0x04;
    pub(super) const IPV6: u8 = 0x06;
    pub(super) const ERROR_TRANSIENT: u8 = 0xF0;
    pub(super) const ERROR: u8 = 0xF1;
}

/// What C Tor puts in an error answer's value (tor-spec: readers ignore it).
const ERROR_TEXT: &[u8] = b"Error resolving hostname";

/// RESOLVED payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The answers, in order (tor-spec: an IPv4 answer first when there is one; an error
    /// answer alone).
    pub answers: Vec<ResolvedAnswer>,
}

impl Resolved {
    /// Reads answers until the data ends; `Truncated` inside one, `BadLength` for an
    /// address of the wrong length.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        let mut answers = Vec::new();
        while r.remaining() > 0 {
            let t = r.u8("resolved type")?;
            let len = r.u8("resolved length")?;
            let value = r.take(usize::from(len), "resolved value")?;
            let ttl = r.u32("resolved ttl")?;
            let bad_len = || Error::BadLength {
                field: "resolved address",
                len: value.len(),
            };
            answers.push(match t {
                ty::IPV4 => ResolvedAnswer::Addr {
                    ip: IpAddr::V4(Ipv4Addr::from(
                        <[u8; 4]>::try_from(value).map_err(|_| bad_len())?,
                    )),
                    ttl,
                },
                ty::IPV6 => ResolvedAnswer::Addr {
                    ip: IpAddr::V6(Ipv6Addr::from(
                        <[u8; 16]>::try_from(value).map_err(|_| bad_len())?,
                    )),
                    ttl,
                },
                ty::HOSTNAME => ResolvedAnswer::Hostname {
                    name: value.to_vec(),
                    ttl,
                },
                ty::ERROR_TRANSIENT | ty::ERROR => ResolvedAnswer::Error {
                    transient: t == ty::ERROR_TRANSIENT,
                    ttl,
                },
                other => ResolvedAnswer::Unknown { ty: other },
            });
        }
        Ok(Self { answers })
    }

    /// Writes the answers; `Unencodable` for an `Unknown` one (its value was not kept),
    /// `TooLong` for a name over 255 bytes, `NoSpace` if `out` is short.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        const FIELD: &str = "resolved answer";
        let mut w = Writer::new(out);
        for a in &self.answers {
            let (t, value, ttl): (u8, &[u8], u32) = match a {
                ResolvedAnswer::Addr {
                    ip: IpAddr::V4(v4),
                    ttl,
                } => {
                    w.bytes(&[ty::IPV4, 4], FIELD)?;
                    w.bytes(&v4.octets(), FIELD)?;
                    w.u32(*ttl, FIELD)?;
                    continue;
                }
                ResolvedAnswer::Addr {
                    ip: IpAddr::V6(v6),
                    ttl,
                } => {
                    w.bytes(&[ty::IPV6, 16], FIELD)?;
                    w.bytes(&v6.octets(), FIELD)?;
                    w.u32(*ttl, FIELD)?;
                    continue;
                }
                ResolvedAnswer::Hostname { name, ttl } => (ty::HOSTNAME, name, *ttl),
                ResolvedAnswer::Error { transient, ttl } => {
                    let t = if *transient {
                        ty::ERROR_TRANSIENT
                    } else {
                        ty::ERROR
                    };
                    (t, ERROR_TEXT, *ttl)
                }
                ResolvedAnswer::Unknown { .. } => return Err(Error::Unencodable { field: FIELD }),
            };
            let len = u8::try_from(value.len()).map_err(|_| Error::TooLong {
                field: FIELD,
                len: value.len(),
            })?;
            w.bytes(&[t, len], FIELD)?;
            w.bytes(value, FIELD)?;
            w.u32(ttl, FIELD)?;
        }
        Ok(w.written())
    }
}
