//! Relay-message payloads (tor-spec section 6): parse from `RelayCellView::data()`, emit into
//! the data area of a relay cell (`RELAY_DATA_LEN` bytes), returning the length written.
//!
//! TRUNCATE and DROP have empty bodies and need no type; DATA is the bytes themselves.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{Reader, Writer};
use super::{DestroyReason, EndReason, Error, LinkSpec, Result};

/// BEGIN payload: `"host:port\0"` then optional `flags u32` (tor-spec 6.2). An IPv6 literal
/// is bracketed on the wire (`"[::1]:443"`); `host` holds it without the brackets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Begin<'a> {
    /// Hostname, IPv4 literal or IPv6 literal (without brackets). After `parse`: non-empty
    /// ASCII, no NUL, `:` only in an IPv6 literal.
    pub host: &'a str,
    /// TCP port, 1..=65535 (0 is refused both ways).
    pub port: u16,
    /// tor-spec 6.2 flags, bit 1 the least significant: bit 1 IPv6 okay, bit 2 IPv4 not
    /// okay, bit 3 IPv6 preferred.
    pub flags: u32,
}

impl<'a> Begin<'a> {
    /// Fails on a missing NUL (`Truncated`), a non-ASCII or malformed address or a port
    /// outside 1..=65535 (`BadValue`). Flags are read when at least 4 bytes follow the NUL
    /// and are 0 otherwise, as C Tor's `begin_cell_parse` does.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let nul = data.iter().position(|&b| b == 0).ok_or(Error::Truncated {
            field: "begin address",
        })?;
        let (addrport, rest) = data.split_at(nul);
        if !addrport.is_ascii() {
            return Err(Error::BadValue {
                field: "begin address",
            });
        }
        let addrport = core::str::from_utf8(addrport).map_err(|_| Error::BadValue {
            field: "begin address",
        })?;
        let (host, port) = split_host_port(addrport)?;
        let mut r = Reader::new(rest.get(1..).unwrap_or_default());
        let flags = if r.remaining() >= 4 {
            r.u32("begin flags")?
        } else {
            0
        };
        Ok(Self { host, port, flags })
    }

    /// Flags are written only when non-zero (C Tor's and Arti's encoding). A host or port
    /// that `parse` would refuse is `Unencodable`.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        const FIELD: &str = "begin address";
        if self.port == 0 {
            return Err(Error::Unencodable {
                field: "begin port",
            });
        }
        let bracketed = check_host(self.host).map_err(|_| Error::Unencodable { field: FIELD })?;
        let mut w = Writer::new(out);
        if bracketed {
            w.u8(b'[', FIELD)?;
        }
        w.bytes(self.host.as_bytes(), FIELD)?;
        if bracketed {
            w.u8(b']', FIELD)?;
        }
        w.u8(b':', FIELD)?;
        let mut digits = [0u8; 5];
        w.bytes(decimal(self.port, &mut digits), FIELD)?;
        w.u8(0, FIELD)?;
        if self.flags != 0 {
            w.u32(self.flags, "begin flags")?;
        }
        Ok(w.written())
    }
}

/// Split `"host:port"` / `"[v6]:port"`, validating both.
fn split_host_port(addrport: &str) -> Result<(&str, u16)> {
    const HOST: Error = Error::BadValue {
        field: "begin address",
    };
    let (host, port) = if let Some(bracketed) = addrport.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(HOST)?;
        let port = after.strip_prefix(':').ok_or(HOST)?;
        (host, port)
    } else {
        addrport.split_once(':').ok_or(HOST)?
    };
    let bracketed = check_host(host)?;
    if bracketed != addrport.starts_with('[') {
        return Err(HOST);
    }
    Ok((host, parse_port(port)?))
}

/// Validate a host for BEGIN; `Ok(true)` if it is an IPv6 literal, written in brackets.
/// A host must be non-empty ASCII without NUL; `:`, `[` and `]` only in an IPv6 literal.
fn check_host(host: &str) -> Result<bool> {
    const HOST: Error = Error::BadValue {
        field: "begin address",
    };
    if host.is_empty() || !host.is_ascii() || host.contains('\0') {
        return Err(HOST);
    }
    if host.contains(':') {
        return host.parse::<Ipv6Addr>().map(|_| true).map_err(|_| HOST);
    }
    if host.contains(['[', ']']) {
        return Err(HOST);
    }
    Ok(false)
}

/// Decimal digits only (no sign, at most 5), 1..=65535.
fn parse_port(port: &str) -> Result<u16> {
    const PORT: Error = Error::BadValue {
        field: "begin port",
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PORT);
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(PORT),
        Ok(port) => Ok(port),
    }
}

/// Format `value` in decimal into `buf` without allocating.
fn decimal(mut value: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        // `value % 10` < 10, so the cast cannot truncate.
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buf[start..];
        }
    }
}

/// tor-spec 6.2 address type for the IPv6 form of CONNECTED.
const ATYPE_IPV6: u8 = 6;

/// CONNECTED payload: empty, `IPv4 | TTL u32`, or `0.0.0.0 | 6 | IPv6 [16] | TTL u32`.
/// Bytes after the TTL are ignored (C Tor does the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connected {
    /// The address the exit connected to and how long the client may cache it, in
    /// seconds; `None` for an empty payload. An IPv4 address here is never 0.0.0.0.
    pub addr: Option<(IpAddr, u32)>,
}

impl Connected {
    /// Parse a CONNECTED payload; `BadValue` for a 0.0.0.0 prefix not followed by type 6.
    pub fn parse(data: &[u8]) -> Result<Self> {
        if data.is_empty() {
            return Ok(Self { addr: None });
        }
        let mut r = Reader::new(data);
        let v4 = Ipv4Addr::from(r.array::<4>("connected address")?);
        let ip = if v4.is_unspecified() {
            if r.u8("connected address type")? != ATYPE_IPV6 {
                return Err(Error::BadValue {
                    field: "connected address type",
                });
            }
            IpAddr::V6(Ipv6Addr::from(r.array::<16>("connected address")?))
        } else {
            IpAddr::V4(v4)
        };
        let ttl = r.u32("connected ttl")?;
        Ok(Self {
            addr: Some((ip, ttl)),
        })
    }

    /// 0.0.0.0 cannot be sent (on the wire it announces the IPv6 form): `Unencodable`.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        match self.addr {
            None => {}
            Some((IpAddr::V4(v4), ttl)) => {
                if v4.is_unspecified() {
                    return Err(Error::Unencodable {
                        field: "connected address",
                    });
                }
                w.bytes(&v4.octets(), "connected address")?;
                w.u32(ttl, "connected ttl")?;
            }
            Some((IpAddr::V6(v6), ttl)) => {
                w.bytes(&[0, 0, 0, 0, ATYPE_IPV6], "connected address")?;
                w.bytes(&v6.octets(), "connected address")?;
                w.u32(ttl, "connected ttl")?;
            }
        }
        Ok(w.written())
    }
}

/// END payload: a reason byte. An empty payload means MISC (tor-spec 6.3); the address and
/// TTL that may follow EXITPOLICY are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// Why the stream closed (tor-spec 6.3); any byte is kept.
    pub reason: EndReason,
}

impl End {
    /// Never fails: an empty payload is MISC.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let reason = data.first().map_or(EndReason::MISC, |&b| EndReason(b));
        Ok(Self { reason })
    }

    /// Write the reason byte alone (no address or TTL).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.u8(self.reason.0, "end reason")?;
        Ok(w.written())
    }
}

/// SENDME payload (tor-spec 7.4, proposal 289): empty or version 0 (`digest: None`), or
/// version 1 with `DATA_LEN u16 = 20` and the 20-byte digest of the cell that triggered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sendme {
    /// For v1, the full 20-byte running digest after the cell that triggered this SENDME
    /// (the receiver's `last_*_digest`); `None` for v0.
    pub digest: Option<[u8; 20]>,
}

const SENDME_V1_DIGEST_LEN: u16 = 20;

impl Sendme {
    /// Parse v0 or v1; `BadValue` for another version, `BadLength` for a v1 data length
    /// other than 20.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        if r.remaining() == 0 {
            return Ok(Self { digest: None });
        }
        match r.u8("sendme version")? {
            0 => Ok(Self { digest: None }),
            1 => {
                let len = r.u16("sendme data length")?;
                if len != SENDME_V1_DIGEST_LEN {
                    return Err(Error::BadLength {
                        field: "sendme data length",
                        len: usize::from(len),
                    });
                }
                Ok(Self {
                    digest: Some(r.array("sendme digest")?),
                })
            }
            _ => Err(Error::BadValue {
                field: "sendme version",
            }),
        }
    }

    /// `None` is written as an empty payload (v0), `Some` as v1.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        if let Some(digest) = &self.digest {
            w.u8(1, "sendme version")?;
            w.u16(SENDME_V1_DIGEST_LEN, "sendme data length")?;
            w.bytes(digest, "sendme digest")?;
        }
        Ok(w.written())
    }
}

/// EXTEND2 payload: `nspec u8 | link specifiers | htype u16 | hlen u16 | hdata [hlen]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extend2<'a> {
    /// Where and who the next hop is, in the sender's order; at most 255 (a `u8` count).
    pub link_specs: Vec<LinkSpec>,
    /// Handshake type for the CREATE2 to send on (2 is ntor).
    pub htype: u16,
    /// The client's handshake data for the next hop, copied into that CREATE2.
    pub hdata: &'a [u8],
}

impl<'a> Extend2<'a> {
    /// Parse an EXTEND2 payload; a known link specifier of the wrong size is `BadLength`.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        let count = r.u8("extend2 nspec")?;
        let mut link_specs = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            link_specs.push(LinkSpec::read(&mut r)?);
        }
        let htype = r.u16("extend2 htype")?;
        let hlen = r.u16("extend2 hlen")?;
        let hdata = r.take(usize::from(hlen), "extend2 hdata")?;
        Ok(Self {
            link_specs,
            htype,
            hdata,
        })
    }

    /// Write the payload; `TooLong` for over 255 specifiers, `Unencodable` for an
    /// `Unrecognized` one, `NoSpace` if `out` is short.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        let count = u8::try_from(self.link_specs.len()).map_err(|_| Error::TooLong {
            field: "extend2 nspec",
            len: self.link_specs.len(),
        })?;
        w.u8(count, "extend2 nspec")?;
        for spec in &self.link_specs {
            spec.write(&mut w)?;
        }
        w.u16(self.htype, "extend2 htype")?;
        w.len_u16(self.hdata.len(), "extend2 hlen")?;
        w.bytes(self.hdata, "extend2 hdata")?;
        Ok(w.written())
    }
}

/// EXTENDED2 payload: `hlen u16 | hdata [hlen]` (the CREATED2 body it carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extended2<'a> {
    /// The next hop's handshake reply, as its CREATED2 carried it.
    pub hdata: &'a [u8],
}

impl<'a> Extended2<'a> {
    /// Parse an EXTENDED2 payload; `Truncated` if `hlen` runs past it.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        let hlen = r.u16("extended2 hlen")?;
        let hdata = r.take(usize::from(hlen), "extended2 hdata")?;
        Ok(Self { hdata })
    }

    /// Write the payload; `NoSpace` if `hdata` does not fit in `out` (a relay data area
    /// holds at most 496 bytes of it).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.len_u16(self.hdata.len(), "extended2 hlen")?;
        w.bytes(self.hdata, "extended2 hdata")?;
        Ok(w.written())
    }
}

/// TRUNCATED payload: a DESTROY reason byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// Why the circuit was cut after the sending hop (a DESTROY reason, tor-spec 5.4).
    pub reason: DestroyReason,
}

impl Truncated {
    /// Read the reason byte.
    pub fn parse(data: &[u8]) -> Result<Self> {
        Ok(Self {
            reason: DestroyReason(Reader::new(data).u8("truncated reason")?),
        })
    }

    /// Write the reason byte.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.u8(self.reason.0, "truncated reason")?;
        Ok(w.written())
    }
}
