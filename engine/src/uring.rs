//! The io_uring runtime layer (Linux): one [`Ring`] per worker thread moves bytes between
//! TCP sockets and the layer above, with one `io_uring_enter` per loop iteration.
//!
//! ```text
//!   upper layer (relay / forwarder)           Ring
//!   ------------------------------   ------------------------------------------------
//!   connect / add_listener / adopt -> conns, listeners (generational slabs: ConnId, ..)
//!   send(conn, bytes) / send_buf   -> conn.out (coalesced; at most one SEND in flight)
//!   run_once(timeout)              -> flush sends, re-arm, submit + wait (one syscall),
//!                                     reap completions -> ops slab (user_data = OpKey)
//!   poll_event() <- Event          <- Accepted / Connected / Recv(RxBuf) / SendDone / ..
//! ```
//!
//! Rules (docs/design.md "One worker loop", docs/perf.md "io_uring guidance"):
//! - every operation owns what the kernel may touch (send buffer, socket address) in its slab
//!   slot until its last completion, also after its connection was closed (orphaned);
//! - receives use one multishot RECV per connection over a provided-buffer ring
//!   ([`BufRing`]) that offers a window of its buffers (so one wait takes in a cache's worth);
//!   a completion without F_MORE re-arms; ENOBUFS waits for buffers to come back and re-arms;
//! - at most one SEND per connection is in flight; bytes queued meanwhile go out together in
//!   the next SEND; a short send resubmits its tail;
//! - a full submission queue spills into a backlog, never a panic;
//! - the switch of a receive side to kTLS RX drains the multishot RECV first (cancel, last
//!   completion, the link's verdict on its record boundary), see `ktls_rx`.
//!
//! `unsafe` is allowed in this module (and `engine::sys`) only; each block says why it holds.
#![allow(unsafe_code)]

mod bufring;
mod close;
mod complete;
mod config;
mod driver;
mod errqueue;
mod handoff;
mod ktls_rx;
mod op;
mod ring;
mod sockopt;
mod stamp;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;

use crate::slab::Key;
use crate::{ErrorKind, HasKind};

pub use bufring::{Bid, BufRing, RxBuf};
pub use config::{RingConfig, RingFeatures, RingStats};
pub use op::{OpKey, OpKind};
pub use ring::{probe, Ring};
pub use sockopt::TcpInfoCmd;

/// A connection owned by a [`Ring`]: a slab handle, dead once the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) Key);

impl ConnId {
    /// The slot index, dense from 0: usable to index the upper layer's own per-connection
    /// tables (check the whole `ConnId` for staleness, not the index).
    pub fn index(self) -> usize {
        self.0.index() as usize
    }
}

impl crate::driver::ConnSlot for ConnId {
    fn slot(self) -> usize {
        self.index()
    }
}

/// A listener owned by a [`Ring`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub(crate) Key);

/// What the ring reports to the layer above, drained with [`Ring::poll_event`].
#[derive(Debug)]
pub enum Event {
    /// A listener accepted a connection; its RECV is armed.
    Accepted {
        /// The listener.
        listener: ListenerId,
        /// The new connection.
        conn: ConnId,
        /// `None` if the peer was already gone when asked.
        peer: Option<SocketAddr>,
    },
    /// A listener's accept failed (e.g. EMFILE); it is re-armed on the next iteration.
    AcceptFailed {
        /// The listener.
        listener: ListenerId,
        /// Why.
        err: io::Error,
    },
    /// An outgoing connection is established; its RECV is armed and queued bytes go out.
    Connected {
        /// The connection.
        conn: ConnId,
    },
    /// An outgoing connection failed; the ring has closed it and `conn` is dead.
    ConnectFailed {
        /// The connection.
        conn: ConnId,
        /// Why.
        err: io::Error,
    },
    /// Bytes arrived. Drop `data` soon: it holds one buffer of the ring.
    Recv {
        /// The connection.
        conn: ConnId,
        /// The bytes, in one buffer of the ring.
        data: RxBuf,
    },
    /// A record that is not application data, opened by the kernel on a kTLS RX
    /// connection and read with its type (RECVMSG and TLS_GET_RECORD_TYPE).
    TlsRecord {
        /// The connection.
        conn: ConnId,
        /// Its TLS content type (`crate::sys::ktls::content_type`).
        content_type: u8,
        /// Its plaintext, in one buffer of the ring.
        data: RxBuf,
    },
    /// The RECV of `conn` stopped for a kTLS RX switch ([`Ring::enable_ktls_rx`]): every
    /// byte read came before this event; ask again once the link has opened them.
    RecvStopped {
        /// The connection.
        conn: ConnId,
    },
    /// The receive side ended: `err: None` is an orderly EOF from the peer. The connection
    /// stays open for sending until [`Ring::close`].
    RecvClosed {
        /// The connection.
        conn: ConnId,
        /// The receive error, if it was not an orderly EOF.
        err: Option<io::Error>,
    },
    /// All bytes queued on `conn` have been handed to the kernel.
    SendDone {
        /// The connection.
        conn: ConnId,
    },
    /// A SEND failed (e.g. EPIPE, ECONNRESET); queued bytes are dropped and further sends
    /// are refused. Close the connection.
    SendFailed {
        /// The connection.
        conn: ConnId,
        /// Why.
        err: io::Error,
    },
    /// The wait of [`Ring::run_once`] ended because its timeout expired.
    Timeout,
}

/// Errors of the ring layer.
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    /// Setting up the io_uring or the buffer ring failed (e.g. an old kernel, or a sandbox
    /// that forbids io_uring): use the poll backend.
    #[error("io_uring setup failed: {0}")]
    Setup(#[source] io::Error),
    /// The kernel lacks an operation this layer needs.
    #[error("io_uring lacks a needed operation: {0}")]
    Unsupported(&'static str),
    /// `io_uring_enter` failed.
    #[error("io_uring_enter failed: {0}")]
    Enter(#[source] io::Error),
    /// Creating or configuring a socket failed.
    #[error("socket setup failed: {0}")]
    Socket(#[source] io::Error),
    /// The handle names no live connection (closed, or from another ring).
    #[error("no such connection: {0:?}")]
    NoSuchConn(ConnId),
    /// The handle names no live listener.
    #[error("no such listener: {0:?}")]
    NoSuchListener(ListenerId),
    /// A previous SEND on this connection failed; it accepts no more bytes.
    #[error("connection {0:?} can no longer send")]
    SendClosed(ConnId),
    /// More than `u32::MAX` live entries in a table.
    #[error("too many connections or operations")]
    Full,
}

impl HasKind for UringError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The backend is unusable here: the runtime falls back to poll (`Backend` auto).
            UringError::Setup(_) | UringError::Unsupported(_) => ErrorKind::Unsupported,
            UringError::Enter(_) | UringError::Socket(_) => ErrorKind::LocalIo,
            UringError::NoSuchConn(_)
            | UringError::NoSuchListener(_)
            | UringError::SendClosed(_) => ErrorKind::BadApiUsage,
            UringError::Full => ErrorKind::ResourceExhausted,
        }
    }
}
