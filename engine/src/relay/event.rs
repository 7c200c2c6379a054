//! What a `Relay` tells its runtime: events to act on, local API errors, counters.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::client::CircuitFailure;
use crate::wire::EndReason;
use crate::{ErrorKind, HasKind};

use super::ids::{ChanId, CircHandle, StreamHandle};

/// Something the runtime must act on (drained with `Relay::poll_event`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Open a TCP connection to `addr` for `chan`; report with
    /// `Relay::handle_channel_connected` or `Relay::handle_channel_closed`.
    OpenChannel {
        /// The channel the connection is for.
        chan: ChanId,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Close `chan`'s socket. Its state is already gone; write what `take_ctrl` and
    /// `write_cells` gave first.
    CloseChannel {
        /// The channel whose socket to close.
        chan: ChanId,
    },
    /// Exit: connect `stream` to `host:port`; report with `Relay::handle_stream_connected`
    /// or `Relay::handle_stream_failed`. When `ip` is `None`, resolve `host` and check the
    /// address with `Relay::exit_allows` before connecting.
    ConnectStream {
        /// The stream to connect.
        stream: StreamHandle,
        /// Host name or address literal from the BEGIN.
        host: String,
        /// Target port.
        port: u16,
        /// The address, when `host` was a literal.
        ip: Option<IpAddr>,
    },
    /// Bytes are waiting in `stream`'s receive buffer: read them with `Relay::stream_recv`.
    StreamReadable {
        /// The stream with bytes.
        stream: StreamHandle,
    },
    /// The stream's windows opened again after `Relay::handle_stream_data` took less than
    /// it was offered.
    StreamWritable {
        /// The stream that may send again.
        stream: StreamHandle,
    },
    /// Origin: the exit connected the stream.
    StreamConnected {
        /// The connected stream.
        stream: StreamHandle,
    },
    /// The stream ended (END from the other side or its circuit closed). Bytes already
    /// received stay readable until `Relay::stream_recv` returns `None`.
    StreamEnded {
        /// The ended stream.
        stream: StreamHandle,
        /// END reason (DESTROY when the circuit went away).
        reason: EndReason,
    },
    /// Origin: a circuit is built.
    CircuitBuilt {
        /// The built circuit.
        circ: CircHandle,
        /// Time from `build_circuit` to the last hop's handshake.
        elapsed: Duration,
    },
    /// Origin: a circuit failed or closed. `hops_done` hops had completed their handshake,
    /// so while building, hop `hops_done` is the one that failed (0 = the guard).
    CircuitClosed {
        /// The closed circuit.
        circ: CircHandle,
        /// Why.
        why: CircuitFailure,
        /// Hops whose handshake had completed.
        hops_done: usize,
    },
}

/// Errors of the local API (misuse by the runtime or the application, not the peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The circuit does not exist (closed or never built).
    #[error("no such circuit")]
    NoSuchCircuit,
    /// The circuit is not finished building, or is not ours.
    #[error("circuit is not a built origin circuit")]
    NotBuilt,
    /// The stream does not exist.
    #[error("no such stream")]
    NoSuchStream,
    /// No free stream id on the circuit.
    #[error("no free stream id")]
    StreamIdsExhausted,
    /// A path needs at least one hop.
    #[error("empty path")]
    EmptyPath,
    /// A BEGIN for this host name does not fit in a relay cell.
    #[error("host name too long for a BEGIN cell")]
    HostTooLong,
}

impl HasKind for ApiError {
    fn kind(&self) -> ErrorKind {
        match self {
            ApiError::StreamIdsExhausted => ErrorKind::ResourceExhausted,
            ApiError::NoSuchCircuit
            | ApiError::NotBuilt
            | ApiError::NoSuchStream
            | ApiError::EmptyPath
            | ApiError::HostTooLong => ErrorKind::BadApiUsage,
        }
    }
}

/// Counters the runtime exports (monotonic, per worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Cells received (all commands).
    pub cells_in: u64,
    /// Cells handed to the runtime by `write_cells`.
    pub cells_out: u64,
    /// Circuits closed by the OOM handler.
    pub oom_closed: u64,
    /// Channels closed for protocol violations.
    pub channels_rejected: u64,
    /// Circuits closed for protocol violations.
    pub circuits_rejected: u64,
    /// CREATE/CREATE2/CREATE_FAST cells refused by the circuit-creation rate limit.
    pub creates_refused: u64,
}
