//! The client's SOCKS5 port (RFC 1928, with RFC 1929 username/password), sans-IO.
//!
//! One [`SocksServer`] per accepted connection. It never reads a socket or a clock: the
//! runtime feeds it the client's bytes and sends what it queues.
//!
//! ```text
//!  SOCKS client                            SocksServer                    caller / circuit
//!  05 n methods ─────────────> handle() -> NeedMore     take_output(): 05 02 (or 05 00)
//!  01 ulen user plen pass ───> handle() -> NeedMore     take_output(): 01 00
//!  05 01 00 atyp addr port ──> handle() -> Request(req) ── BEGIN on a circuit chosen by
//!                                                          req.isolation ──> CONNECTED/END
//!                              reply(Succeeded | from_end_reason(r), bound)
//!                                                       take_output(): 05 00 00 01 ...
//!  stream data ──────────────> (not given to handle: the caller forwards it as DATA)
//! ```
//!
//! - Input may be split anywhere (one byte at a time works); at most one message
//!   ([`MAX_MESSAGE_LEN`] = 513 bytes) is buffered. `handle` consumes bytes only up to the
//!   end of the CONNECT request: anything after it is stream data (optimistic data) that the
//!   caller keeps and forwards once the stream is open.
//! - Method choice follows Tor: username/password when offered (its only use is stream
//!   isolation, so every username/password is accepted), else no-auth.
//! - On an error `handle` queues the reply RFC 1928/1929 defines for it, if any (`05 FF`,
//!   `01 01`, or a request reply with code 1, 7 or 8); the caller sends it and closes.
//! - After `SocksProgress::Request`, `handle` is not called again: a successful
//!   [`SocksServer::reply`] switches the connection to data mode, any other reply ends it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::wire::EndReason;

mod msg;

#[cfg(test)]
mod tests;

pub use msg::MAX_MESSAGE_LEN;

use msg::{
    ATYP_IPV4, ATYP_IPV6, AUTH_FAILURE, AUTH_SUCCESS, AUTH_VERSION, METHOD_NONE_ACCEPTABLE,
    METHOD_NO_AUTH, METHOD_USERNAME_PASSWORD, SOCKS_VERSION,
};

/// Why a SOCKS handshake failed. The caller sends the queued output and closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SocksError {
    /// The version byte of a greeting or request was not 5 (a SOCKS4 client sends 4).
    #[error("not a SOCKS5 message (version byte {0})")]
    BadVersion(u8),
    /// The greeting offered neither no-auth (0) nor username/password (2).
    #[error("client offered neither no-auth nor username/password authentication")]
    NoAcceptableMethod,
    /// The username/password request did not start with version 1 (RFC 1929).
    #[error("username/password sub-negotiation version {0}, expected 1")]
    BadAuthVersion(u8),
    /// ULEN was 0 (RFC 1929 requires a 1..=255 byte username).
    #[error("empty username in username/password authentication")]
    EmptyUsername,
    /// A command other than CONNECT (BIND is 2, UDP ASSOCIATE 3).
    #[error("SOCKS command {0} not supported, only CONNECT")]
    UnsupportedCommand(u8),
    /// The reserved byte of a request was not 0.
    #[error("reserved byte of the request is {0}, expected 0")]
    BadReserved(u8),
    /// An address type other than IPv4 (1), domain name (3) or IPv6 (4).
    #[error("address type {0} not supported")]
    UnsupportedAddressType(u8),
    /// A domain name that is empty, not UTF-8, or contains NUL.
    #[error("domain name is empty, not UTF-8, or contains NUL")]
    BadDomain,
    /// `handle` was called after the handshake ended (a request was returned, or an error).
    #[error("SOCKS handshake already over: bytes are stream data or the connection is closing")]
    HandshakeOver,
}

impl SocksError {
    /// The reply RFC 1928/1929 gives for this failure, if the client can understand one.
    fn reply_bytes(self) -> Option<ErrorReply> {
        match self {
            Self::NoAcceptableMethod => Some(ErrorReply::Method),
            Self::EmptyUsername => Some(ErrorReply::Auth),
            Self::UnsupportedCommand(_) => {
                Some(ErrorReply::Request(SocksReply::CommandNotSupported))
            }
            Self::UnsupportedAddressType(_) => {
                Some(ErrorReply::Request(SocksReply::AddressTypeNotSupported))
            }
            Self::BadReserved(_) | Self::BadDomain => {
                Some(ErrorReply::Request(SocksReply::GeneralFailure))
            }
            // A client that speaks another version (or another sub-negotiation) would not
            // parse a SOCKS5 reply; just close.
            Self::BadVersion(_) | Self::BadAuthVersion(_) | Self::HandshakeOver => None,
        }
    }
}

/// Which reply format an error is answered in.
enum ErrorReply {
    /// `05 FF`: no acceptable method.
    Method,
    /// `01 01`: sub-negotiation failed.
    Auth,
    /// A full request reply with this code and address 0.0.0.0:0.
    Request(SocksReply),
}

/// What a call to [`SocksServer::handle`] achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocksProgress {
    /// All input was consumed and the request is not complete yet.
    NeedMore,
    /// The CONNECT request; answer it with [`SocksServer::reply`].
    Request(ConnectRequest),
}

/// A parsed CONNECT request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Where to connect.
    pub target: TargetAddr,
    /// Target port, as sent (0 is passed through; BEGIN cannot carry it).
    pub port: u16,
    /// (username, password) when the client authenticated: streams with different pairs
    /// must not share a circuit (Tor's IsolateSOCKSAuth).
    pub isolation: Option<(Vec<u8>, Vec<u8>)>,
}

/// DST.ADDR of a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TargetAddr {
    /// An IPv4 or IPv6 literal (ATYP 1 or 4).
    Ip(IpAddr),
    /// A domain name (ATYP 3): 1..=255 bytes of UTF-8 without NUL, resolved by the exit.
    Domain(String),
}

/// The host as BEGIN takes it: the name, or the address with IPv6 unbracketed
/// (`wire::Begin` adds the brackets).
impl fmt::Display for TargetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => fmt::Display::fmt(ip, f),
            Self::Domain(name) => f.write_str(name),
        }
    }
}

/// The REP field of a request reply (RFC 1928 section 6), codes 0..=8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SocksReply {
    /// The stream is open.
    Succeeded = 0,
    /// General SOCKS server failure.
    GeneralFailure = 1,
    /// Connection not allowed by ruleset (the exit policy).
    NotAllowed = 2,
    /// Network unreachable.
    NetworkUnreachable = 3,
    /// Host unreachable (also: the name did not resolve).
    HostUnreachable = 4,
    /// Connection refused.
    ConnectionRefused = 5,
    /// TTL expired (Tor uses it for timeouts).
    TtlExpired = 6,
    /// Command not supported.
    CommandNotSupported = 7,
    /// Address type not supported.
    AddressTypeNotSupported = 8,
}

impl SocksReply {
    /// The code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reply for a stream the exit ended before CONNECTED, as C Tor's
    /// `connection_edge_end_reason_socks5_response` (src/core/or/reasons.c) maps it. DONE
    /// before CONNECTED means the far side closed early, so it is a refusal, as in Tor.
    pub fn from_end_reason(reason: EndReason) -> Self {
        match reason {
            EndReason::RESOLVEFAILED | EndReason::NOROUTE => Self::HostUnreachable,
            EndReason::CONNECTREFUSED | EndReason::DONE | EndReason::CONNRESET => {
                Self::ConnectionRefused
            }
            EndReason::EXITPOLICY => Self::NotAllowed,
            EndReason::TIMEOUT => Self::TtlExpired,
            _ => Self::GeneralFailure,
        }
    }
}

/// Where a connection is in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the method selection message.
    Greeting,
    /// Username/password was chosen; waiting for the RFC 1929 request.
    Auth,
    /// Waiting for the CONNECT request.
    Request,
    /// The request was returned; waiting for the caller's `reply`.
    AwaitingReply,
    /// Succeeded was sent: the connection carries stream data.
    Open,
    /// An error or a failure reply ended the handshake.
    Closed,
}

/// Server side of one SOCKS5 connection (see the module docs for the flow).
pub struct SocksServer {
    phase: Phase,
    /// The current message so far.
    /// INVARIANT: `partial_len <= MAX_MESSAGE_LEN`; every message is complete at
    /// `MAX_MESSAGE_LEN` bytes at the latest, and completion empties the buffer.
    partial: [u8; MAX_MESSAGE_LEN],
    partial_len: usize,
    /// Username/password from the sub-negotiation, until the request carries it out.
    isolation: Option<(Vec<u8>, Vec<u8>)>,
    /// Replies queued for the client (at most 2 + 2 + 22 bytes over a connection's life).
    output: Vec<u8>,
}

impl fmt::Debug for SocksServer {
    // Credentials and buffer contents stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocksServer")
            .field("phase", &self.phase)
            .field("buffered", &self.partial_len)
            .field("output", &self.output.len())
            .finish()
    }
}

impl Default for SocksServer {
    fn default() -> Self {
        Self::new()
    }
}

impl SocksServer {
    /// A server waiting for the client's greeting. Does not allocate.
    pub fn new() -> Self {
        Self {
            phase: Phase::Greeting,
            partial: [0; MAX_MESSAGE_LEN],
            partial_len: 0,
            isolation: None,
            output: Vec::new(),
        }
    }

    /// Feed bytes from the client. Returns how many were consumed and what happened.
    ///
    /// `NeedMore` consumes all of `input`. `Request` consumes exactly up to the end of the
    /// CONNECT request: the rest of `input` is stream data for the caller to keep. After
    /// `Request` or an error, further calls return [`SocksError::HandshakeOver`]. Drain
    /// [`take_output`](Self::take_output) after every call, errors included.
    pub fn handle(&mut self, input: &[u8]) -> Result<(usize, SocksProgress), SocksError> {
        if !matches!(self.phase, Phase::Greeting | Phase::Auth | Phase::Request) {
            return Err(SocksError::HandshakeOver);
        }
        // Byte by byte: a handshake is a few hundred bytes once per stream, and this way a
        // message never takes bytes that belong to the next one or to the stream.
        for (i, &byte) in input.iter().enumerate() {
            self.push(byte);
            match self.step() {
                Ok(None) => {}
                Ok(Some(request)) => return Ok((i + 1, SocksProgress::Request(request))),
                Err(err) => {
                    self.fail(err);
                    return Err(err);
                }
            }
        }
        Ok((input.len(), SocksProgress::NeedMore))
    }

    /// Append the bytes to send to the client now, leaving the queue empty.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.output);
    }

    /// Answer the request returned by `handle`. `bound` is BND.ADDR/BND.PORT (0.0.0.0:0 is
    /// fine: Tor sends that too). `Succeeded` switches to data mode; any other reply ends the
    /// connection once the output is sent. Without a pending request this does nothing.
    pub fn reply(&mut self, reply: SocksReply, bound: SocketAddr) {
        if self.phase != Phase::AwaitingReply {
            return;
        }
        write_request_reply(&mut self.output, reply, bound);
        self.phase = if reply == SocksReply::Succeeded {
            Phase::Open
        } else {
            Phase::Closed
        };
    }

    /// True once `Succeeded` was replied: the client's bytes are stream data from now on.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    fn push(&mut self, byte: u8) {
        debug_assert!(
            self.partial_len < MAX_MESSAGE_LEN,
            "message framing overran"
        );
        if let Some(slot) = self.partial.get_mut(self.partial_len) {
            *slot = byte;
            self.partial_len += 1;
        }
    }

    /// Act on the buffered message if it is complete.
    fn step(&mut self) -> Result<Option<ConnectRequest>, SocksError> {
        let message = self.partial.get(..self.partial_len).unwrap_or_default();
        match self.phase {
            Phase::Greeting => {
                let Some(methods) = msg::greeting(message)? else {
                    return Ok(None);
                };
                // Tor prefers username/password when offered, to isolate streams.
                let (method, next) = if methods.contains(&METHOD_USERNAME_PASSWORD) {
                    (METHOD_USERNAME_PASSWORD, Phase::Auth)
                } else if methods.contains(&METHOD_NO_AUTH) {
                    (METHOD_NO_AUTH, Phase::Request)
                } else {
                    return Err(SocksError::NoAcceptableMethod);
                };
                self.output.extend_from_slice(&[SOCKS_VERSION, method]);
                self.phase = next;
            }
            Phase::Auth => {
                let Some(credentials) = msg::auth(message)? else {
                    return Ok(None);
                };
                self.isolation =
                    Some((credentials.username.to_vec(), credentials.password.to_vec()));
                self.output.extend_from_slice(&[AUTH_VERSION, AUTH_SUCCESS]);
                self.phase = Phase::Request;
            }
            Phase::Request => {
                let Some((target, port)) = msg::request(message)? else {
                    return Ok(None);
                };
                self.partial_len = 0;
                self.phase = Phase::AwaitingReply;
                return Ok(Some(ConnectRequest {
                    target,
                    port,
                    isolation: self.isolation.take(),
                }));
            }
            Phase::AwaitingReply | Phase::Open | Phase::Closed => {
                return Err(SocksError::HandshakeOver)
            }
        }
        self.partial_len = 0;
        Ok(None)
    }

    /// Queue the reply for `err` (if it has one) and end the handshake.
    fn fail(&mut self, err: SocksError) {
        match err.reply_bytes() {
            Some(ErrorReply::Method) => self
                .output
                .extend_from_slice(&[SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]),
            Some(ErrorReply::Auth) => self.output.extend_from_slice(&[AUTH_VERSION, AUTH_FAILURE]),
            Some(ErrorReply::Request(reply)) => {
                write_request_reply(&mut self.output, reply, SocketAddr::from(([0, 0, 0, 0], 0)))
            }
            None => {}
        }
        self.partial_len = 0;
        self.isolation = None;
        self.phase = Phase::Closed;
    }
}

/// RFC 1928 section 6: `VER REP RSV ATYP BND.ADDR BND.PORT`.
fn write_request_reply(out: &mut Vec<u8>, reply: SocksReply, bound: SocketAddr) {
    out.extend_from_slice(&[SOCKS_VERSION, reply.code(), 0]);
    match bound.ip() {
        IpAddr::V4(ip) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&bound.port().to_be_bytes());
}
