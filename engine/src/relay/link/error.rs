//! Why a channel is closed for what its peer sent (or, for two variants, what our own
//! transport could not give the handshake).

use core::fmt;

use crate::crypto::identity::{CertError, Ed25519Id};
use crate::crypto::RelayId;
use crate::wire::ChanCmd;
use crate::{ErrorKind, HasKind};

/// Bytes shown as upper-case hex, without allocating (identities in log lines).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex<const N: usize>(pub [u8; N]);

impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a channel is closed. All but [`LinkError::NoTlsExporter`] are the peer's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The bytes did not decode as cells.
    #[error("undecodable input: {0}")]
    Undecodable(crate::wire::Error),
    /// A cell arrived on an outbound channel before its connection was up.
    #[error("cell before the connection was up")]
    CellBeforeConnected,
    /// A second VERSIONS cell.
    #[error("second VERSIONS cell")]
    DuplicateVersions,
    /// A VERSIONS cell that does not parse.
    #[error("malformed VERSIONS cell")]
    MalformedVersions,
    /// No link protocol version both sides speak.
    #[error("no common link protocol version")]
    NoCommonVersion,
    /// A handshake cell (CERTS, NETINFO, ...) before VERSIONS.
    #[error("{cmd} before VERSIONS")]
    BeforeVersions {
        /// The early cell's command.
        cmd: ChanCmd,
    },
    /// A cell that needs the peer's CERTS first (AUTH_CHALLENGE or NETINFO from a
    /// responder, AUTHENTICATE from an initiator).
    #[error("{cmd} before CERTS")]
    BeforeCerts {
        /// The early cell's command.
        cmd: ChanCmd,
    },
    /// A second CERTS, AUTH_CHALLENGE or AUTHENTICATE.
    #[error("second {cmd} cell")]
    Duplicate {
        /// The repeated cell's command.
        cmd: ChanCmd,
    },
    /// A CERTS, AUTH_CHALLENGE, AUTHENTICATE or NETINFO cell that does not parse.
    #[error("malformed {cmd} cell: {error}")]
    Malformed {
        /// The cell's command.
        cmd: ChanCmd,
        /// What did not parse.
        error: crate::wire::Error,
    },
    /// The peer's certificates do not prove an identity (tor-spec 4.2).
    #[error("bad CERTS cell: {0}")]
    Certs(CertError),
    /// The responder proved another RSA identity than the one we meant to reach.
    #[error("wrong RSA identity: expected {expected}, got {got}")]
    WrongRsaIdentity {
        /// The identity EXTEND2 or the directory named.
        expected: Hex<20>,
        /// The identity the peer's certificates prove.
        got: Hex<20>,
    },
    /// The responder proved another Ed25519 identity than the one we meant to reach.
    #[error("wrong Ed25519 identity: expected {expected}, got {got}")]
    WrongEd25519Identity {
        /// The identity EXTEND2 or the directory named.
        expected: Hex<32>,
        /// The identity the peer's certificates prove.
        got: Hex<32>,
    },
    /// An AUTHENTICATE of a type we did not offer (we accept only 3).
    #[error("AUTHENTICATE of unsupported type {0}")]
    UnsupportedAuthType(u16),
    /// An AUTHENTICATE field that does not hold its only correct value (tor-spec 4.4.2).
    #[error("AUTHENTICATE field {field} is wrong")]
    AuthenticateMismatch {
        /// The field's name in tor-spec (`"CID"`, `"SLOG"`, `"TLSSECRETS"`, ...).
        field: &'static str,
    },
    /// The AUTHENTICATE signature does not verify with the type-6 key.
    #[error("AUTHENTICATE signature does not verify")]
    AuthenticateBadSignature,
    /// Our TLS layer has certificates but cannot export keying material, so AUTHENTICATE
    /// cannot be made or checked (a limit of our transport, not the peer's fault).
    #[error("the TLS layer cannot export keying material for AUTHENTICATE")]
    NoTlsExporter,
    /// Our own certificates could not be made (a local fault).
    #[error("cannot make our link certificates")]
    OwnCerts,
    /// A cell that has no place in the link handshake (CREATE2 before NETINFO, ...).
    #[error("unexpected {cmd} during the link handshake")]
    UnexpectedHandshakeCell {
        /// The cell's command.
        cmd: ChanCmd,
    },
    /// A variable-length cell other than VPADDING after the handshake.
    #[error("variable-length {cmd} cell on an open channel")]
    VarCellOnOpenChannel {
        /// The cell's command.
        cmd: ChanCmd,
    },
    /// NETINFO after the handshake.
    #[error("NETINFO on an open channel")]
    NetinfoOnOpenChannel,
    /// A circuit cell with circuit id 0.
    #[error("{cmd} with circuit id 0")]
    CircIdZero {
        /// The cell's command.
        cmd: ChanCmd,
    },
    /// A CREATE cell for a circuit id that is in use on the channel.
    #[error("{cmd} for a circuit id in use")]
    CircIdInUse {
        /// The cell's command.
        cmd: ChanCmd,
    },
}

impl LinkError {
    /// A wrong-RSA-identity error.
    pub(crate) fn wrong_rsa(expected: RelayId, got: RelayId) -> Self {
        LinkError::WrongRsaIdentity {
            expected: Hex(expected),
            got: Hex(got),
        }
    }

    /// A wrong-Ed25519-identity error.
    pub(crate) fn wrong_ed(expected: Ed25519Id, got: Ed25519Id) -> Self {
        LinkError::WrongEd25519Identity {
            expected: Hex(expected),
            got: Hex(got),
        }
    }

    /// Whether the peer is not the relay we meant to reach (EXTEND2 answers OR_IDENTITY).
    pub(crate) fn is_identity_mismatch(&self) -> bool {
        matches!(
            self,
            LinkError::WrongRsaIdentity { .. } | LinkError::WrongEd25519Identity { .. }
        )
    }
}

impl HasKind for LinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            LinkError::NoTlsExporter => ErrorKind::Unsupported,
            LinkError::OwnCerts => ErrorKind::Internal,
            _ => ErrorKind::PeerProtocol,
        }
    }
}
