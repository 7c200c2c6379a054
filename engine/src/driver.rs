//! The seam between a worker and its I/O backend: the [`Driver`] trait and the [`IoEvent`]s
//! a backend reports.
//!
//! ```text
//!              runtime::Worker
//!                    |  Driver + IoEvent (this module)
//!      +-------------+--------------+---------------------+
//!   uring::Ring   poll::PollDriver   sim::SimDriver
//!   (Linux)       (portable)         (virtual time, no sockets: tests)
//! ```
//!
//! The runtime imports this module and no backend's internals; the backends implement it and
//! import nothing of the runtime. A driver moves bytes, opens and closes connections, and
//! answers for each connection what the kernel knows about its socket (the snapshot KIST
//! schedules by), so that a simulated driver can stand in for the kernel.

pub mod sim;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use kistrel_sched::SocketSnapshot;

/// What a backend reports to the worker.
#[derive(Debug)]
pub enum IoEvent<C, L, B> {
    /// A listener accepted a connection (its receive side is armed).
    Accepted {
        /// The listener.
        listener: L,
        /// The new connection.
        conn: C,
        /// The peer's address, if the backend still knew it.
        peer: Option<SocketAddr>,
    },
    /// An outgoing connection is up.
    Connected {
        /// The connection.
        conn: C,
    },
    /// An outgoing connection failed; `conn` is dead.
    ConnectFailed {
        /// The connection.
        conn: C,
        /// Why.
        err: io::Error,
    },
    /// Bytes arrived.
    Recv {
        /// The connection.
        conn: C,
        /// The bytes, in a buffer of the backend's (returned to it on drop).
        data: B,
    },
    /// A record that is not application data, opened by the kernel on a kTLS RX
    /// connection (a plain read refused it; the backend read it with its type).
    TlsRecord {
        /// The connection.
        conn: C,
        /// Its TLS content type (`crate::sys::ktls::content_type`).
        content_type: u8,
        /// Its plaintext, in a buffer of the backend's.
        data: B,
    },
    /// The backend stopped reading `conn` for a kTLS RX switch
    /// ([`Driver::enable_ktls_rx`]): every byte it read came before this event.
    RecvStopped {
        /// The connection.
        conn: C,
    },
    /// The peer closed its sending side (`err: None`) or the connection broke.
    RecvClosed {
        /// The connection.
        conn: C,
        /// The receive error, if it was not an orderly EOF.
        err: Option<io::Error>,
    },
    /// Everything queued on `conn` was handed to the kernel.
    SendDone {
        /// The connection.
        conn: C,
    },
    /// Sending failed; close the connection.
    SendFailed {
        /// The connection.
        conn: C,
        /// Why.
        err: io::Error,
    },
}

impl<C: Copy, L, B> IoEvent<C, L, B> {
    /// The connection the event is about (for `Accepted`, the new one).
    pub fn conn(&self) -> C {
        match self {
            IoEvent::Accepted { conn, .. }
            | IoEvent::Connected { conn }
            | IoEvent::ConnectFailed { conn, .. }
            | IoEvent::Recv { conn, .. }
            | IoEvent::TlsRecord { conn, .. }
            | IoEvent::RecvStopped { conn }
            | IoEvent::RecvClosed { conn, .. }
            | IoEvent::SendDone { conn }
            | IoEvent::SendFailed { conn, .. } => *conn,
        }
    }
}

/// The event type of driver `D`.
pub type EventOf<D> = IoEvent<<D as Driver>::Conn, <D as Driver>::Listener, <D as Driver>::Buf>;

/// A connection handle with a dense slot index (its driver's slab slot): the worker keeps its
/// per-connection tables in `Vec`s indexed by it. A slot is reused after its connection
/// closes, so a table compares the whole handle, not the slot.
pub trait ConnSlot: Copy + Eq {
    /// The slot index, dense from 0.
    fn slot(self) -> usize;
}

/// A driver's counters since it started (the `kistrel_io_*` metrics). Per wait, receive or
/// send, never per cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Waits for I/O: `io_uring_enter` calls that waited, or poll(2) calls.
    pub waits: u64,
    /// Receives that returned bytes (one per filled io_uring buffer, or per read).
    pub recvs: u64,
    /// Sends started: SEND operations, or writev calls that moved bytes.
    pub sends: u64,
    /// Sends the kernel took only part of (the rest resubmitted, or left queued).
    pub short_sends: u64,
    /// io_uring: receives that found no buffer offered (ENOBUFS), re-armed once buffers
    /// came back; many of them mean the buffer window is small for the load.
    pub recv_no_buffers: u64,
}

/// The I/O backend of a worker: moves bytes, nothing else. Implemented by
/// [`crate::uring::Ring`] (Linux), [`crate::poll::PollDriver`] and [`sim::SimDriver`].
pub trait Driver {
    /// Connection handle.
    type Conn: Copy + Eq + std::hash::Hash + std::fmt::Debug + ConnSlot;
    /// Listener handle.
    type Listener: Copy + Eq + std::fmt::Debug;
    /// Received bytes (returned to the backend on drop). Mutable, so that a link layer can
    /// open TLS records in place (`runtime::Link`).
    type Buf: std::ops::DerefMut<Target = [u8]>;

    /// Starts accepting on `listener`.
    fn add_listener(&mut self, listener: TcpListener) -> io::Result<Self::Listener>;
    /// Starts connecting to `addr`.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<Self::Conn>;
    /// The connection's outgoing buffer (append only; an empty one may be exchanged for a
    /// filled one, which is the same as appending), or None if it is gone or broken.
    fn send_buf(&mut self, conn: Self::Conn) -> Option<&mut Vec<u8>>;
    /// Bytes queued on `conn` and not yet taken by the kernel (0 if it is gone).
    fn queued_len(&self, conn: Self::Conn) -> usize;
    /// Stops or resumes reading from `conn` (backpressure).
    fn set_recv_paused(&mut self, conn: Self::Conn, paused: bool);
    /// Closes `conn` now.
    fn close(&mut self, conn: Self::Conn);
    /// Closes `conn` once its queued bytes are sent.
    fn close_when_flushed(&mut self, conn: Self::Conn);
    /// What the kernel knows about `conn`'s socket (TCP_INFO with its unsent bytes, where
    /// the platform has it). One system call on a real socket: call it for sockets with work
    /// only, never per cell.
    fn socket_snapshot(&self, conn: Self::Conn) -> io::Result<SocketSnapshot>;
    /// Turns Nagle's algorithm off (on) for `conn`.
    fn set_nodelay(&self, conn: Self::Conn, on: bool) -> io::Result<()>;
    /// Next event.
    fn poll_event(&mut self) -> Option<EventOf<Self>>;
    /// Submits everything queued and waits up to `timeout` for completions.
    fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// Reads the kernel's transmit timestamps of sampled sends (`sys::txstamp`) and hands
    /// each measured delay (write to SCHED, SND or ACK, microseconds) to `record`. Reads
    /// only sockets with samples outstanding: call it once per tick, never per cell.
    /// Nothing where the backend has no real socket.
    fn drain_tx_stamps(&mut self, record: &mut dyn FnMut(crate::sys::txstamp::KernelStage, u64)) {
        let _ = record;
    }
    /// Whether [`Driver::socket_snapshot`] reports TCP_INFO (KIST needs it).
    fn has_tcp_info(&self) -> bool;
    /// Counters since the driver started (zeros where the backend keeps none).
    fn stats(&self) -> DriverStats {
        DriverStats::default()
    }
    /// Connections accepted on `listener` from now on are held: nothing is read from them
    /// until the caller keeps one (`set_recv_paused(conn, false)`) or takes it out with
    /// [`Driver::detach`] for another worker. The default (a backend with no real sockets)
    /// holds nothing; keeping a connection that was never held changes nothing.
    fn hold_accepted(&mut self, listener: Self::Listener) {
        let _ = listener;
    }
    /// Takes a held connection out of the driver, as its socket, for another worker's
    /// driver to [`Driver::adopt`]: `None` (and the connection stays) unless nothing was read
    /// from it, nothing is queued on it and no operation of it is in flight.
    fn detach(&mut self, conn: Self::Conn) -> Option<std::net::TcpStream> {
        let _ = conn;
        None
    }
    /// Takes over a connected socket (one a sibling worker's driver detached); reading
    /// starts at once.
    fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<Self::Conn> {
        let _ = stream;
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Hands `conn`'s TLS send keys to the kernel (kTLS TX): from now on its bytes leave as
    /// TLS records sealed by the kernel. Call it only when nothing is queued on `conn`.
    /// Unsupported where the backend has no real socket.
    fn enable_ktls_tx(
        &mut self,
        conn: Self::Conn,
        info: &crate::sys::ktls::CryptoInfo,
    ) -> io::Result<()> {
        let _ = (conn, info);
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Hands `conn`'s TLS receive keys to the kernel (kTLS RX): from now on its received
    /// bytes are plaintext, and its records that are not application data come as
    /// [`IoEvent::TlsRecord`]. `info`: the link's receive crypto info when every byte
    /// delivered so far left it on a record boundary (nothing staged), `None` mid-record.
    ///
    /// `Ok`: the kernel took the keys. `WouldBlock`: not now, the worker asks again after
    /// its next received bytes or [`IoEvent::RecvStopped`] (a read of `conn` is still
    /// undelivered, the link is mid-record, or the backend is stopping a receive that reads
    /// ahead of the worker, as io_uring's multishot RECV does). Any other error: the link
    /// stays in user space (refused, no record boundary found, unsupported here).
    fn enable_ktls_rx(
        &mut self,
        conn: Self::Conn,
        info: Option<&crate::sys::ktls::CryptoInfo>,
    ) -> io::Result<()> {
        let _ = (conn, info);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The error a driver gives for a handle that names no live connection.
pub(crate) fn no_such_conn() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such connection")
}
