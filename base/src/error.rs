//! `ErrorKind`: what kind of fault an error is, the same vocabulary in every kistrel crate.
//!
//! Each crate keeps its own precise `thiserror` enums (one per layer); every one of them
//! implements [`HasKind`], so callers can act on an error without matching its variants: the
//! relay maps kinds to DESTROY reasons and counters, the CLI maps them to exit codes.
//! Kinds are split by *where the fault is and what the receiver can do about it*, never by the
//! code path that found it (Arti's `tor-error` rule).

use core::fmt;

/// The kind of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer broke the protocol: malformed bytes, a message in the wrong state, a bad
    /// handshake or certificate. Close what the peer controls (its circuit or channel).
    PeerProtocol,
    /// The network failed between us and a peer: refused, reset, unreachable.
    Network,
    /// Something took longer than allowed (a handshake, a circuit build).
    TimedOut,
    /// A limit was reached: memory for queues, a rate limit, a table full.
    ResourceExhausted,
    /// What was asked for cannot be found or served: no usable path, no such relay.
    Unavailable,
    /// This machine or platform lacks a feature (an io_uring opcode, the kernel `tls` ULP).
    Unsupported,
    /// Our own I/O failed: a file, a socket we set up, a thread we spawned.
    LocalIo,
    /// The operator's configuration or arguments are invalid.
    BadConfig,
    /// The API was used in a way it does not allow (a handle that does not exist, ...).
    BadApiUsage,
    /// A bug in kistrel.
    Internal,
}

impl ErrorKind {
    /// A short stable name (for logs and metrics labels).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::PeerProtocol => "peer_protocol",
            ErrorKind::Network => "network",
            ErrorKind::TimedOut => "timed_out",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::LocalIo => "local_io",
            ErrorKind::BadConfig => "bad_config",
            ErrorKind::BadApiUsage => "bad_api_usage",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its [`ErrorKind`].
pub trait HasKind {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}

impl HasKind for std::io::Error {
    fn kind(&self) -> ErrorKind {
        use std::io::ErrorKind as Io;
        match std::io::Error::kind(self) {
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::BrokenPipe
            | Io::UnexpectedEof
            | Io::AddrNotAvailable
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::NetworkDown => ErrorKind::Network,
            Io::TimedOut | Io::WouldBlock => ErrorKind::TimedOut,
            Io::Unsupported => ErrorKind::Unsupported,
            Io::OutOfMemory => ErrorKind::ResourceExhausted,
            Io::InvalidInput => ErrorKind::BadApiUsage,
            _ => ErrorKind::LocalIo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_by_where_the_fault_is() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(HasKind::kind(&refused), ErrorKind::Network);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(HasKind::kind(&denied), ErrorKind::LocalIo);
        assert_eq!(ErrorKind::PeerProtocol.to_string(), "peer_protocol");
    }
}
