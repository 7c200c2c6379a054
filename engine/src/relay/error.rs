//! Typed rejections of peer input, one enum per layer, and why channels and circuits close.
//!
//! ```text
//!   LinkError (link.rs) ......... the channel closes            -> channels_rejected
//!   CreateError ................. CREATE refused (DESTROY, no circuit made), or a circuit
//!   ExtendError, StreamError,     closes: CircuitError          -> circuits_rejected
//!   ForwardError, FlowError
//! ```
//!
//! Every error has a [`HasKind::kind`]; the DESTROY reason sent for it is derived from the
//! kind ([`destroy_reason`]), and the log line is its `Display`. Nothing here allocates:
//! the enums are small and `Copy`, so rejecting garbage costs nothing.

use crate::client::{CircuitFailure, HopError};
use crate::crypto::HandshakeError;
use crate::wire::{ChanCmd, DestroyReason, RelayCmd};
use crate::{ErrorKind, HasKind};

use super::flow::FlowError;
use super::link::LinkError;

/// The DESTROY reason for a fault of `kind` (tor-spec §5.4 reasons).
pub(crate) fn destroy_reason(kind: ErrorKind) -> DestroyReason {
    match kind {
        ErrorKind::PeerProtocol => DestroyReason::PROTOCOL,
        ErrorKind::ResourceExhausted => DestroyReason::RESOURCELIMIT,
        ErrorKind::TimedOut => DestroyReason::TIMEOUT,
        ErrorKind::Network => DestroyReason::CONNECTFAILED,
        _ => DestroyReason::INTERNAL,
    }
}

/// A refused CREATE, or a fault in a circuit's creation (CREATED2, the hop handshakes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The peer's circuit-creation tokens are used up (`DoSCircuitCreationRate`).
    #[error("circuit creation rate limit reached")]
    RateLimited,
    /// The circuit id's top bit says the wrong side allocated it.
    #[error("circuit id with the wrong top bit")]
    WrongTopBit,
    /// This node has no keys: it is a client and does not accept circuits.
    #[error("not a relay")]
    NotARelay,
    /// A CREATE cell: the TAP handshake is long gone from Tor.
    #[error("obsolete TAP CREATE")]
    ObsoleteCreate,
    /// A CREATE2 or CREATE_FAST that does not parse.
    #[error("malformed {cmd}")]
    Malformed {
        /// CREATE2 or CREATE_FAST.
        cmd: ChanCmd,
    },
    /// A CREATE2 with a handshake type other than ntor.
    #[error("unsupported handshake type {htype}")]
    UnsupportedHandshake {
        /// The HTYPE field.
        htype: u16,
    },
    /// The server side of the handshake refused the client's data.
    #[error("bad handshake: {0}")]
    BadHandshake(HandshakeError),
    /// A hop's reply to our handshake was not accepted (origin).
    #[error(transparent)]
    Hop(HopError),
    /// A CREATED2 that does not parse.
    #[error("malformed CREATED2")]
    MalformedCreated2,
    /// A CREATED2 for a circuit that is not waiting for one.
    #[error("unexpected CREATED2")]
    UnexpectedCreated2,
    /// The next hop's CREATED2 carries more than an EXTENDED2 can.
    #[error("CREATED2 too long for EXTENDED2")]
    Created2TooLong,
    /// The handshake data of an EXTEND2 does not fit in a CREATE2.
    #[error("handshake data too long for CREATE2")]
    Create2TooLong,
}

impl HasKind for CreateError {
    fn kind(&self) -> ErrorKind {
        match self {
            CreateError::RateLimited => ErrorKind::ResourceExhausted,
            _ => ErrorKind::PeerProtocol,
        }
    }
}

/// A fault in EXTEND2 / EXTENDED2 / TRUNCATE handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtendError {
    /// EXTEND2 must come in a RELAY_EARLY cell.
    #[error("EXTEND2 outside RELAY_EARLY")]
    NotEarly,
    /// An EXTEND2 that does not parse.
    #[error("malformed EXTEND2")]
    Malformed,
    /// An EXTEND2 without an IP address and a legacy identity link specifier.
    #[error("EXTEND2 without an address and identity")]
    NoTarget,
    /// An EXTEND2 on a circuit that has (or is getting) a next hop.
    #[error("EXTEND2 on a circuit that already has a next hop")]
    AlreadyExtended,
    /// An EXTENDED2 that does not parse.
    #[error("malformed EXTENDED2")]
    MalformedExtended2,
    /// An EXTENDED2 while no extension was pending.
    #[error("unexpected EXTENDED2")]
    UnexpectedExtended2,
    /// Our own EXTEND2 for the next hop does not fit a relay cell (origin).
    #[error("EXTEND2 does not fit")]
    Extend2TooLong,
}

impl HasKind for ExtendError {
    fn kind(&self) -> ErrorKind {
        match self {
            ExtendError::Extend2TooLong => ErrorKind::Internal,
            _ => ErrorKind::PeerProtocol,
        }
    }
}

/// A fault in BEGIN / CONNECTED / DATA / END handling at a circuit endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A stream message with stream id 0.
    #[error("{cmd} without a stream id")]
    NoStreamId {
        /// The relay command.
        cmd: RelayCmd,
    },
    /// A BEGIN for a stream id in use.
    #[error("BEGIN for a stream id in use")]
    StreamIdInUse,
    /// A CONNECTED for a stream that is not waiting for one.
    #[error("CONNECTED for a stream that is not connecting")]
    NotConnecting,
}

impl HasKind for StreamError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocol
    }
}

/// A fault in moving relay cells along the circuit (crypto, direction, queue limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// More than 8 RELAY_EARLY cells on one circuit.
    #[error("more than 8 RELAY_EARLY cells")]
    TooManyRelayEarly,
    /// A relay cell no hop recognized reached the last hop.
    #[error("unrecognized relay cell at the last hop")]
    UnrecognizedAtLastHop,
    /// RELAY_EARLY travels only away from the origin.
    #[error("RELAY_EARLY toward the origin")]
    RelayEarlyTowardOrigin,
    /// A backward cell that none of the origin's hops recognized.
    #[error("relay cell recognized by no hop")]
    UnrecognizedAtOrigin,
    /// A forward relay cell arrived at an origin (from its next hop's side).
    #[error("relay cell toward an origin's next hop")]
    TowardOrigin,
    /// A recognized relay cell whose length field is out of range.
    #[error("relay cell with a bad length")]
    BadLength,
    /// A command only an origin may receive arrived at the last hop.
    #[error("origin-bound {cmd} sent toward the exit")]
    OriginBoundCommand {
        /// The relay command.
        cmd: RelayCmd,
    },
    /// A non-DROP relay cell from a hop that is not the last one.
    #[error("relay cell from an intermediate hop")]
    FromIntermediateHop,
    /// A relay command the origin does not expect.
    #[error("unexpected {cmd} at the origin")]
    UnexpectedAtOrigin {
        /// The relay command.
        cmd: RelayCmd,
    },
    /// More cells queued toward one channel than `max_circuit_queue_cells`: the peers
    /// ignore the windows.
    #[error("circuit queue over its cap")]
    QueueOverCap,
}

impl HasKind for ForwardError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocol
    }
}

/// Why a circuit is closed for what a peer sent: one layer's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CircuitError {
    /// Creation layer.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// Extension layer.
    #[error(transparent)]
    Extend(#[from] ExtendError),
    /// Stream layer.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// Forwarding layer.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// Flow control.
    #[error(transparent)]
    Flow(#[from] FlowError),
}

impl HasKind for CircuitError {
    fn kind(&self) -> ErrorKind {
        match self {
            CircuitError::Create(e) => e.kind(),
            CircuitError::Extend(e) => e.kind(),
            CircuitError::Stream(e) => e.kind(),
            CircuitError::Forward(e) => e.kind(),
            CircuitError::Flow(e) => e.kind(),
        }
    }
}

impl CircuitError {
    /// What an origin reports for a circuit closed by this error.
    pub fn failure(&self) -> CircuitFailure {
        match *self {
            CircuitError::Create(CreateError::Hop(e)) => e.into(),
            _ => CircuitFailure::Protocol,
        }
    }
}

/// A rejection of peer input: what was refused and why (see `Relay::last_rejection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The channel was closed.
    #[error("channel closed: {0}")]
    Channel(LinkError),
    /// A CREATE was answered with DESTROY; no circuit was made.
    #[error("CREATE refused: {0}")]
    Create(CreateError),
    /// The circuit was closed.
    #[error("circuit closed: {0}")]
    Circuit(CircuitError),
}

impl HasKind for Rejection {
    fn kind(&self) -> ErrorKind {
        match self {
            Rejection::Channel(e) => e.kind(),
            Rejection::Create(e) => e.kind(),
            Rejection::Circuit(e) => e.kind(),
        }
    }
}

/// Why a channel goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChannelClose {
    /// Its peer broke the link protocol.
    #[error("{0}")]
    Rejected(LinkError),
    /// The link handshake did not finish in time.
    #[error("handshake timeout")]
    HandshakeTimeout,
    /// The runtime reported the socket closed or failed.
    #[error("socket closed")]
    SocketClosed,
    /// Closed by our own side.
    #[error("closed locally")]
    Local,
}

impl ChannelClose {
    /// Whether the runtime must be told to close the socket (it reported the others).
    pub(crate) fn tell_runtime(self) -> bool {
        self != ChannelClose::SocketClosed
    }
}

/// Why this node closes a circuit itself (DESTROY both ways).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CircuitClose {
    /// A peer broke the protocol on it.
    #[error("{0}")]
    Rejected(CircuitError),
    /// The application or the runtime asked.
    #[error("closed by request")]
    Requested,
    /// The relay is shutting down.
    #[error("shutdown")]
    Shutdown,
    /// The OOM handler picked it.
    #[error("out of memory")]
    OutOfMemory,
    /// No circuit id was free on the next hop's channel.
    #[error("no free circuit id")]
    NoFreeCircId,
    /// Origin: the last hop reports that the circuit was truncated behind it.
    #[error("TRUNCATED ({0:?})")]
    Truncated(DestroyReason),
}

impl CircuitClose {
    /// The DESTROY reason sent both ways.
    pub(crate) fn destroy_reason(self) -> DestroyReason {
        match self {
            CircuitClose::Rejected(e) => destroy_reason(e.kind()),
            CircuitClose::Requested | CircuitClose::Truncated(_) => DestroyReason::REQUESTED,
            CircuitClose::Shutdown => DestroyReason::HIBERNATING,
            CircuitClose::OutOfMemory | CircuitClose::NoFreeCircId => DestroyReason::RESOURCELIMIT,
        }
    }

    /// What an origin reports.
    pub(crate) fn failure(self) -> CircuitFailure {
        match self {
            CircuitClose::Rejected(e) => e.failure(),
            CircuitClose::Requested | CircuitClose::Shutdown => CircuitFailure::Closed,
            CircuitClose::OutOfMemory => CircuitFailure::OutOfMemory,
            CircuitClose::NoFreeCircId => CircuitFailure::ChannelFailed,
            CircuitClose::Truncated(reason) => CircuitFailure::Destroyed(reason.0),
        }
    }
}

/// A broken internal invariant (`Relay::check_invariants`, for tests and fuzzing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvariantError {
    /// A circuit queue with cells is not active in its channel's mux, or the reverse.
    #[error("a queue is active in its mux iff it has cells")]
    MuxActivity,
    /// A circuit names a channel that does not exist.
    #[error("circuit names a dead channel")]
    DeadChannel,
    /// A channel's circuit map does not point back at the circuit naming it.
    #[error("channel map does not point back at circuit")]
    ChannelMap,
    /// The queued-cell byte count differs from the queues' contents.
    #[error("queued cell bytes differ from the sum of queues")]
    CellBytes,
    /// The stream byte count differs from the receive buffers' contents.
    #[error("queued stream bytes differ from the sum of receive buffers")]
    StreamBytes,
    /// The muxes list more (or fewer) queues than are active.
    #[error("mux entries differ from the active queues")]
    MuxEntries,
    /// A channel maps a circuit id to a freed circuit.
    #[error("channel maps a freed circuit")]
    FreedCircuit,
}

impl HasKind for InvariantError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroy_reasons_follow_the_kind() {
        let cases: [(CircuitError, DestroyReason); 4] = [
            (
                FlowError::SendmeDigestMismatch.into(),
                DestroyReason::PROTOCOL,
            ),
            (ForwardError::QueueOverCap.into(), DestroyReason::PROTOCOL),
            (
                CreateError::RateLimited.into(),
                DestroyReason::RESOURCELIMIT,
            ),
            (ExtendError::Extend2TooLong.into(), DestroyReason::INTERNAL),
        ];
        for (e, want) in cases {
            assert_eq!(CircuitClose::Rejected(e).destroy_reason(), want, "{e}");
        }
        assert_eq!(destroy_reason(ErrorKind::TimedOut), DestroyReason::TIMEOUT);
    }

    #[test]
    fn origins_see_handshake_failures_with_their_hop() {
        let e: CircuitError = CreateError::Hop(HopError::Failed {
            hop: 2,
            error: HandshakeError::BadAuth,
        })
        .into();
        assert_eq!(
            CircuitClose::Rejected(e).failure(),
            CircuitFailure::HandshakeFailed {
                hop: 2,
                error: HandshakeError::BadAuth
            }
        );
        assert_eq!(
            CircuitClose::Rejected(StreamError::StreamIdInUse.into()).failure(),
            CircuitFailure::Protocol
        );
        assert_eq!(
            CircuitClose::Truncated(DestroyReason::REQUESTED).failure(),
            CircuitFailure::Destroyed(DestroyReason::REQUESTED.0)
        );
    }

    #[test]
    fn log_lines_name_the_layer_fault() {
        assert_eq!(
            Rejection::Channel(LinkError::CircIdZero {
                cmd: ChanCmd::CREATE2
            })
            .to_string(),
            "channel closed: CREATE2 with circuit id 0"
        );
        assert_eq!(
            Rejection::Circuit(FlowError::StreamWindowExceeded.into()).to_string(),
            "circuit closed: DATA beyond the stream window"
        );
        assert_eq!(
            Rejection::Create(CreateError::RateLimited).kind(),
            ErrorKind::ResourceExhausted
        );
    }
}
