//! The load side of `kistrel bench relay`: a *pump* that builds circuits through the relay
//! under test and a *sink* at their far end, each its own process, both cheap per cell so
//! that the relay, not the load, is the limit.
//!
//! ```text
//!   pump ==C channels==> relay under test ==one channel per worker==> sink
//!     CREATE2 (ntor, the relay's keys) ->|
//!     RELAY_EARLY(EXTEND2 to the sink) ->|-- CREATE2 (ntor, the sink's keys) -->|
//!     RELAY(DROP "start fwd|bwd")  ----->|-- one AES layer off, forwarded ----->| decrypted: the
//!                                        |                                       | circuit's role
//!     forward data: RELAY cells, bodies of arbitrary bytes ------------------->| counted, dropped
//!     <---------------- backward data: RELAY cells, arbitrary bytes ------------|
//!     <--- one ack cell per 100 cells received (either way) ------------------>|
//! ```
//!
//! The relay does exactly its per-cell work on every data cell: one AES-CTR layer, the
//! `recognized` test, the queue and the scheduler, the send. Nothing checks a forwarded
//! cell's contents, so the pump never encrypts a data cell: it copies a prebuilt chunk of
//! 100 cells per circuit into its send buffer, and the receiving side reads 5 header bytes
//! per cell. The *start cell* of each circuit is real end-to-end crypto (two layers from the
//! pump, one removed by the relay, the last one by the sink, digest checked): a relay that
//! garbles cells fails the run at its first circuit.
//!
//! Flow control is Tor's circuit window: a sender may have [`window::WINDOW`] data cells
//! unacknowledged on a circuit and the receiver acks every [`window::ACK_EVERY`] cells
//! (Tor's 1000 / 100 circuit-level SENDME). Without it a load that ignores windows would
//! fill the relay's circuit queues until `MaxCircuitQueueCells` closes the circuits.
//!
//! With the forwarder baseline the same pump and sink talk through a plain TCP forwarder: the
//! pump's circuits are one hop, built with the sink itself, and everything else is the same.
//!
//! Both processes speak a line protocol with the bench on stdin/stdout ([`control`]): they
//! print `ready {...}`, answer `snap` with their counters, stop sending new data on `stop`
//! and print `final {...}` and exit on `quit` (or when stdin closes).

use kistrel_base::{ErrorKind, HasKind};

pub mod control;
mod endpoint;
mod handshake;
pub mod pump;
mod scan;
pub mod sink;
pub mod window;

pub use control::{Counters, Ready};

/// Why the load side failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A socket or the I/O driver failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The peer (the relay under test, the forwarder or the other load process) broke the
    /// protocol.
    #[error("{0}")]
    Protocol(#[from] Fault),
    /// An argument that cannot work (a bad key, an address the pump cannot extend to).
    #[error("{0}")]
    Usage(String),
    /// The bench's control lines could not be read or written.
    #[error("control channel: {0}")]
    Control(String),
    /// The sink's identity could not be made.
    #[error("making the sink's identity: {0}")]
    Identity(#[from] kistrel_engine::crypto::identity::IdentityError),
}

/// What a peer did that the load side cannot go on from. Each one ends the run: a relay
/// under test that loses, garbles or refuses cells has no throughput worth reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// A cell on a circuit this side never built or answered.
    #[error("cell (command {cmd}) for unknown circuit {circ:#010x}")]
    UnknownCircuit {
        /// The circuit id on this link.
        circ: u32,
        /// The cell's command byte.
        cmd: u8,
    },
    /// A variable-length cell after the link handshake (the load side reads fixed cells
    /// only from then on).
    #[error("variable-length cell (command {cmd}) after the link handshake")]
    VarCellAfterHandshake {
        /// The command byte.
        cmd: u8,
    },
    /// The bytes did not decode as cells during the link handshake.
    #[error("undecodable link handshake: {0}")]
    Undecodable(kistrel_engine::wire::Error),
    /// A cell that has no place in the link handshake.
    #[error("unexpected command {cmd} during the link handshake")]
    Handshake {
        /// The command byte.
        cmd: u8,
    },
    /// A circuit's start cell was not recognized at the sink: the relay's layer or digest
    /// was wrong, or the cell was not a start cell.
    #[error("start cell of circuit {circ:#010x} not recognized (bad relay crypto?)")]
    StartCell {
        /// The circuit id on the sink's link.
        circ: u32,
    },
    /// A CREATE2 / CREATED2 / EXTENDED2 that did not parse or verify.
    #[error("circuit handshake failed on circuit {circ:#010x}")]
    CircuitHandshake {
        /// The circuit id.
        circ: u32,
    },
    /// More acks on a circuit than data cells sent on it.
    #[error("ack beyond the window on circuit {circ:#010x}")]
    AckBeyondWindow {
        /// The circuit id.
        circ: u32,
    },
    /// The peer closed a circuit (DESTROY).
    #[error("circuit {circ:#010x} destroyed by the peer (reason {reason})")]
    Destroyed {
        /// The circuit id.
        circ: u32,
        /// The DESTROY reason byte.
        reason: u8,
    },
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
}

/// Confines this process (the calling thread and every thread it starts later) to `cpus`.
fn pin(cpus: &crate::placement::CpuList) -> Result<(), LoadError> {
    crate::placement::pin_current_thread(cpus).map_err(|e| LoadError::Usage(e.to_string()))
}

impl LoadError {
    /// An [`LoadError::Io`] saying what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LoadError {
        let what = what.into();
        move |source| LoadError::Io { what, source }
    }
}

impl HasKind for LoadError {
    fn kind(&self) -> ErrorKind {
        match self {
            LoadError::Io { source, .. } => HasKind::kind(source),
            LoadError::Protocol(_) => ErrorKind::PeerProtocol,
            LoadError::Usage(_) => ErrorKind::BadConfig,
            LoadError::Control(_) => ErrorKind::LocalIo,
            LoadError::Identity(e) => HasKind::kind(e),
        }
    }
}
