//! The three client messages of a SOCKS5 handshake, parsed from the bytes received so far.
//!
//! Each function looks at the start of one message (possibly incomplete) and returns
//! `Ok(None)` while more bytes are needed, `Err` as soon as the prefix already breaks a rule
//! (a SOCKS4 client is rejected on its first byte), or the parsed message once it is
//! complete. Every access is a slice pattern or a checked split, so no input can panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{SocksError, TargetAddr};

/// RFC 1928 section 3: the VER field of every SOCKS5 message.
pub(super) const SOCKS_VERSION: u8 = 5;
/// RFC 1929 section 2: the VER field of the username/password sub-negotiation.
pub(super) const AUTH_VERSION: u8 = 1;
/// RFC 1928 section 3 method codes.
pub(super) const METHOD_NO_AUTH: u8 = 0x00;
pub(super) const METHOD_USERNAME_PASSWORD: u8 = 0x02;
pub(super) const METHOD_NONE_ACCEPTABLE: u8 = 0xff;
/// RFC 1929 section 2: STATUS 0 is success, anything else failure (we use 1).
pub(super) const AUTH_SUCCESS: u8 = 0;
pub(super) const AUTH_FAILURE: u8 = 1;
/// RFC 1928 section 4 commands (only CONNECT is served).
const CMD_CONNECT: u8 = 1;
/// RFC 1928 section 5 address types.
pub(super) const ATYP_IPV4: u8 = 1;
pub(super) const ATYP_DOMAIN: u8 = 3;
pub(super) const ATYP_IPV6: u8 = 4;

/// The longest client message: the RFC 1929 request `VER ULEN UNAME[255] PLEN PASSWD[255]`.
/// The greeting is at most 2 + 255 bytes and a CONNECT request 4 + 1 + 255 + 2.
pub const MAX_MESSAGE_LEN: usize = 3 + 2 * u8::MAX as usize;
const _: () = assert!(MAX_MESSAGE_LEN == 513);
const _: () = assert!(2 + u8::MAX as usize <= MAX_MESSAGE_LEN);
const _: () = assert!(4 + 1 + u8::MAX as usize + 2 <= MAX_MESSAGE_LEN);

/// Method selection (RFC 1928 section 3): `VER NMETHODS METHODS[NMETHODS]`; returns METHODS.
pub(super) fn greeting(b: &[u8]) -> Result<Option<&[u8]>, SocksError> {
    match b {
        [version, ..] if *version != SOCKS_VERSION => Err(SocksError::BadVersion(*version)),
        [_, n_methods, methods @ ..] => Ok(methods.get(..usize::from(*n_methods))),
        _ => Ok(None),
    }
}

/// Username/password request (RFC 1929 section 2): `VER ULEN UNAME PLEN PASSWD`, with
/// ULEN 1..=255 and PLEN 0..=255.
pub(super) fn auth(b: &[u8]) -> Result<Option<Credentials<'_>>, SocksError> {
    let (ulen, rest) = match b {
        [version, ..] if *version != AUTH_VERSION => {
            return Err(SocksError::BadAuthVersion(*version))
        }
        [_, 0, ..] => return Err(SocksError::EmptyUsername),
        [_, ulen, rest @ ..] => (usize::from(*ulen), rest),
        _ => return Ok(None),
    };
    let Some((username, rest)) = rest.split_at_checked(ulen) else {
        return Ok(None);
    };
    let [plen, rest @ ..] = rest else {
        return Ok(None);
    };
    Ok(rest
        .get(..usize::from(*plen))
        .map(|password| Credentials { username, password }))
}

/// UNAME and PASSWD of an RFC 1929 request.
pub(super) struct Credentials<'a> {
    pub(super) username: &'a [u8],
    pub(super) password: &'a [u8],
}

/// CONNECT request (RFC 1928 sections 4 and 5): `VER CMD RSV ATYP DST.ADDR DST.PORT`.
/// Returns the target and port.
pub(super) fn request(b: &[u8]) -> Result<Option<(TargetAddr, u16)>, SocksError> {
    let (atyp, rest) = match b {
        [version, ..] if *version != SOCKS_VERSION => return Err(SocksError::BadVersion(*version)),
        [_, cmd, ..] if *cmd != CMD_CONNECT => return Err(SocksError::UnsupportedCommand(*cmd)),
        [_, _, rsv, ..] if *rsv != 0 => return Err(SocksError::BadReserved(*rsv)),
        [_, _, _, atyp, rest @ ..] => (*atyp, rest),
        _ => return Ok(None),
    };
    // The raw address and what follows it; the domain is validated only once the whole
    // request is here, so byte-at-a-time input does not re-check it on every byte.
    let (addr, rest) = match atyp {
        ATYP_IPV4 => match rest.split_first_chunk::<4>() {
            Some((a, rest)) => (RawAddr::V4(*a), rest),
            None => return Ok(None),
        },
        ATYP_IPV6 => match rest.split_first_chunk::<16>() {
            Some((a, rest)) => (RawAddr::V6(*a), rest),
            None => return Ok(None),
        },
        ATYP_DOMAIN => match rest {
            [0, ..] => return Err(SocksError::BadDomain),
            [len, rest @ ..] => match rest.split_at_checked(usize::from(*len)) {
                Some((name, rest)) => (RawAddr::Name(name), rest),
                None => return Ok(None),
            },
            [] => return Ok(None),
        },
        other => return Err(SocksError::UnsupportedAddressType(other)),
    };
    let Some((port, _)) = rest.split_first_chunk::<2>() else {
        return Ok(None);
    };
    let port = u16::from_be_bytes(*port);
    let target = match addr {
        RawAddr::V4(octets) => TargetAddr::Ip(IpAddr::V4(Ipv4Addr::from(octets))),
        RawAddr::V6(octets) => TargetAddr::Ip(IpAddr::V6(Ipv6Addr::from(octets))),
        RawAddr::Name(name) => domain(name)?,
    };
    Ok(Some((target, port)))
}

/// DST.ADDR as received, before the domain is checked.
enum RawAddr<'a> {
    V4([u8; 4]),
    V6([u8; 16]),
    Name(&'a [u8]),
}

/// A domain name must be UTF-8 without NUL: it ends up in a NUL-terminated BEGIN.
fn domain(name: &[u8]) -> Result<TargetAddr, SocksError> {
    match core::str::from_utf8(name) {
        Ok(name) if !name.is_empty() && !name.contains('\0') => {
            Ok(TargetAddr::Domain(name.to_owned()))
        }
        _ => Err(SocksError::BadDomain),
    }
}
