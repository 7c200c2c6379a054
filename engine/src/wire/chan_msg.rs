//! Channel-cell payloads: the bodies of VERSIONS, NETINFO, CREATE2/CREATED2,
//! CREATE_FAST/CREATED_FAST and DESTROY (tor-spec sections 4, 5).
//!
//! Each `parse` reads from the front of a body or payload; trailing bytes of a fixed body are
//! padding and ignored. Each `emit` writes into the front of `out` and returns the length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{Reader, Writer};
use super::{ChanCmd, DestroyReason, Error, Result, VarCell};

/// VERSIONS payload: the link protocol versions a side supports, u16 each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    /// Link protocol versions, in the sender's order (tor-spec 4.1). Non-empty after
    /// `parse`; kistrel offers and accepts 4 and 5.
    pub versions: Vec<u16>,
}

impl Versions {
    /// An odd payload length, or an empty list, is an error.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        if payload.is_empty() || !payload.len().is_multiple_of(2) {
            return Err(Error::BadLength {
                field: "versions",
                len: payload.len(),
            });
        }
        let versions = payload
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        Ok(Self { versions })
    }

    /// Write the versions as big-endian `u16`s; `NoSpace` if `out` is short.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        for version in &self.versions {
            w.u16(*version, "versions")?;
        }
        Ok(w.written())
    }

    /// The VERSIONS cell (circuit id 0), to be sent with a 2-byte circuit id.
    pub fn to_var_cell(&self) -> VarCell {
        let payload = self.versions.iter().flat_map(|v| v.to_be_bytes()).collect();
        VarCell {
            circ_id: 0,
            cmd: ChanCmd::VERSIONS,
            payload,
        }
    }

    /// The highest version both lists hold.
    pub fn best_common(&self, ours: &[u16]) -> Option<u16> {
        self.versions
            .iter()
            .copied()
            .filter(|v| ours.contains(v))
            .max()
    }
}

/// tor-spec address types in NETINFO (section 4.5): IPv4, IPv6.
const ATYPE_IPV4: u8 = 4;
const ATYPE_IPV6: u8 = 6;

/// NETINFO payload: `time u32 | other address | n u8 | my addresses [n]`.
///
/// An address is `type u8 | len u8 | value`; types other than IPv4 (4, len 4) and IPv6
/// (6, len 16) and known types with a wrong length are skipped, as C Tor and Arti do. An
/// unspecified `other_addr` (0.0.0.0 or ::) parses as `None`, and `None` is emitted as IPv4
/// 0.0.0.0 (Arti's captured client NETINFO: `00000000 04 04 00000000 00`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netinfo {
    /// The sender's clock, seconds since the Unix epoch (relays send it, clients send 0).
    pub time: u32,
    /// The address the sender sees us at; `None` when unspecified or of an unknown type.
    pub other_addr: Option<IpAddr>,
    /// The sender's own addresses, IPv4 and IPv6 only (other types are skipped on parse).
    /// At most 255 can be emitted (a `u8` count).
    pub my_addrs: Vec<IpAddr>,
}

impl Netinfo {
    /// Parse a NETINFO body; `Truncated` if it ends inside a field. Unknown address types
    /// are skipped, not rejected.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let time = r.u32("netinfo time")?;
        let other_addr =
            read_addr(&mut r, "netinfo other address")?.filter(|a| !a.is_unspecified());
        let count = r.u8("netinfo address count")?;
        let mut my_addrs = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            if let Some(addr) = read_addr(&mut r, "netinfo my address")? {
                my_addrs.push(addr);
            }
        }
        Ok(Self {
            time,
            other_addr,
            my_addrs,
        })
    }

    /// Fails with `TooLong` for more than 255 own addresses, `NoSpace` if `out` is short.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.u32(self.time, "netinfo time")?;
        let other = self.other_addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        write_addr(&mut w, other, "netinfo other address")?;
        let count = u8::try_from(self.my_addrs.len()).map_err(|_| Error::TooLong {
            field: "netinfo address count",
            len: self.my_addrs.len(),
        })?;
        w.u8(count, "netinfo address count")?;
        for addr in &self.my_addrs {
            write_addr(&mut w, *addr, "netinfo my address")?;
        }
        Ok(w.written())
    }
}

fn read_addr(r: &mut Reader<'_>, field: &'static str) -> Result<Option<IpAddr>> {
    let ty = r.u8(field)?;
    let len = r.u8(field)?;
    let value = r.take(usize::from(len), field)?;
    Ok(match (ty, value.len()) {
        (ATYPE_IPV4, 4) => {
            let octets: [u8; 4] = [value[0], value[1], value[2], value[3]];
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        (ATYPE_IPV6, 16) => {
            let mut octets = [0; 16];
            octets.copy_from_slice(value);
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    })
}

fn write_addr(w: &mut Writer<'_>, addr: IpAddr, field: &'static str) -> Result<()> {
    match addr {
        IpAddr::V4(v4) => {
            w.bytes(&[ATYPE_IPV4, 4], field)?;
            w.bytes(&v4.octets(), field)
        }
        IpAddr::V6(v6) => {
            w.bytes(&[ATYPE_IPV6, 16], field)?;
            w.bytes(&v6.octets(), field)
        }
    }
}

/// CREATE2 body: `htype u16 | hlen u16 | hdata [hlen]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Create2<'a> {
    /// Handshake type (tor-spec 5.1): 2 is ntor, the only one kistrel answers.
    pub htype: u16,
    /// The client's handshake data (ntor: 84 bytes `ID | B | X`).
    pub hdata: &'a [u8],
}

impl<'a> Create2<'a> {
    /// Parse a CREATE2 body; `Truncated` if `hlen` runs past it (the rest is padding).
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let htype = r.u16("create2 htype")?;
        let hlen = r.u16("create2 hlen")?;
        let hdata = r.take(usize::from(hlen), "create2 hdata")?;
        Ok(Self { htype, hdata })
    }

    /// Write the body; `NoSpace` if `hdata` does not fit in `out`.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.u16(self.htype, "create2 htype")?;
        w.len_u16(self.hdata.len(), "create2 hlen")?;
        w.bytes(self.hdata, "create2 hdata")?;
        Ok(w.written())
    }
}

/// CREATED2 body: `hlen u16 | hdata [hlen]`. (EXTENDED2 has the same layout.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created2<'a> {
    /// The relay's handshake reply (ntor: 64 bytes `Y | AUTH`).
    pub hdata: &'a [u8],
}

impl<'a> Created2<'a> {
    /// Parse a CREATED2 body; `Truncated` if `hlen` runs past it.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let hlen = r.u16("created2 hlen")?;
        let hdata = r.take(usize::from(hlen), "created2 hdata")?;
        Ok(Self { hdata })
    }

    /// Write the body; `NoSpace` if `hdata` does not fit in `out`.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.len_u16(self.hdata.len(), "created2 hlen")?;
        w.bytes(self.hdata, "created2 hdata")?;
        Ok(w.written())
    }
}

/// CREATE_FAST body: the client's 20 random bytes X (tor-spec 5.1.3, KDF-TOR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateFast {
    /// The client's key material X: 20 fresh random bytes.
    pub x: [u8; 20],
}

impl CreateFast {
    /// Read X from the front of the body (the rest is padding).
    pub fn parse(body: &[u8]) -> Result<Self> {
        Ok(Self {
            x: Reader::new(body).array("create_fast x")?,
        })
    }

    /// Write X (20 bytes).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.bytes(&self.x, "create_fast x")?;
        Ok(w.written())
    }
}

/// CREATED_FAST body: the relay's 20 random bytes Y, then the 20-byte derivative key KH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreatedFast {
    /// The relay's key material Y: 20 fresh random bytes.
    pub y: [u8; 20],
    /// KH, the first 20 bytes of KDF-TOR(X | Y): proves the relay derived the same keys.
    pub kh: [u8; 20],
}

impl CreatedFast {
    /// Read Y and KH from the front of the body (the rest is padding).
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let y = r.array("created_fast y")?;
        let kh = r.array("created_fast kh")?;
        Ok(Self { y, kh })
    }

    /// Write `Y | KH` (40 bytes).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.bytes(&self.y, "created_fast y")?;
        w.bytes(&self.kh, "created_fast kh")?;
        Ok(w.written())
    }
}

/// DESTROY body: one reason byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destroy {
    /// Why the sender tore the circuit down (tor-spec 5.4); any byte is kept.
    pub reason: DestroyReason,
}

impl Destroy {
    /// Read the reason byte (the rest of the body is padding).
    pub fn parse(body: &[u8]) -> Result<Self> {
        Ok(Self {
            reason: DestroyReason(Reader::new(body).u8("destroy reason")?),
        })
    }

    /// Write the reason byte.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.u8(self.reason.0, "destroy reason")?;
        Ok(w.written())
    }
}
