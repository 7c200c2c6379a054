//! The runtime: a `Worker` per core drives one [`Relay`](crate::relay::Relay) and one
//! scheduler over an I/O [`Driver`] (io_uring on Linux; the portable poll backend is the
//! other implementation of the same trait).
//!
//! ```text
//!            control thread  <-- WorkerEvent (bounded; dropped + counted when full)
//!                 |          --> Command     (bounded; polled once per loop iteration)
//!   +-------------v----------------------------------------------------------------+
//!   | Worker (one thread, pinned):                                                 |
//!   |   driver.run_once(timeout)      one io_uring_enter per iteration             |
//!   |   IoEvent::Recv  -> relay.handle_recv / stream data / SOCKS                  |
//!   |   relay events   -> connect / close / exit connects / SOCKS replies          |
//!   |   scheduler run  -> relay.write_one_cell into the connection's send buffer   |
//!   +------------------------------------------------------------------------------+
//! ```
//!
//! Nothing here is shared between workers: each has its own listener (SO_REUSEPORT), its own
//! channels to peers and its own circuits. Only control messages cross threads.

mod edge;
mod origin;
#[cfg(target_os = "linux")]
mod uring_driver;
mod worker;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::time::Duration;

use crate::client::HopSpec;
use crate::crypto::RelayId;
use crate::relay::RelayStats;
use crate::time::Instant;

pub use worker::{Worker, WorkerConfig, WorkerReport};

/// One clock for all workers of a process, so deadlines sent between threads compare.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: std::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Clock {
            base: std::time::Instant::now(),
        }
    }

    /// The current time (one clock read).
    pub fn now(&self) -> Instant {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(nanos)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// What a backend reports to the worker.
#[derive(Debug)]
pub enum IoEvent<C, L, B> {
    /// A listener accepted a connection (its receive side is armed).
    Accepted {
        listener: L,
        conn: C,
        peer: Option<SocketAddr>,
    },
    /// An outgoing connection is up.
    Connected { conn: C },
    /// An outgoing connection failed; `conn` is dead.
    ConnectFailed { conn: C, err: io::Error },
    /// Bytes arrived.
    Recv { conn: C, data: B },
    /// The peer closed its sending side (`err: None`) or the connection broke.
    RecvClosed { conn: C, err: Option<io::Error> },
    /// Everything queued on `conn` was handed to the kernel.
    SendDone { conn: C },
    /// Sending failed; close the connection.
    SendFailed { conn: C, err: io::Error },
}

/// The I/O backend of a worker: moves bytes, nothing else. Implemented by
/// [`crate::uring::Ring`] (Linux) and by the portable poll backend.
pub trait Driver {
    /// Connection handle.
    type Conn: Copy + Eq + std::hash::Hash + std::fmt::Debug;
    /// Listener handle.
    type Listener: Copy + Eq + std::fmt::Debug;
    /// Received bytes (returned to the backend on drop).
    type Buf: std::ops::Deref<Target = [u8]>;

    /// Starts accepting on `listener`.
    fn add_listener(&mut self, listener: TcpListener) -> io::Result<Self::Listener>;
    /// Starts connecting to `addr`.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<Self::Conn>;
    /// The connection's outgoing buffer (append only), or None if it is gone or broken.
    fn send_buf(&mut self, conn: Self::Conn) -> Option<&mut Vec<u8>>;
    /// Bytes queued on `conn` and not yet taken by the kernel.
    fn queued_len(&self, conn: Self::Conn) -> usize;
    /// Stops or resumes reading from `conn` (backpressure).
    fn set_recv_paused(&mut self, conn: Self::Conn, paused: bool);
    /// Closes `conn` now.
    fn close(&mut self, conn: Self::Conn);
    /// Closes `conn` once its queued bytes are sent.
    fn close_when_flushed(&mut self, conn: Self::Conn);
    /// The socket, for `sys::socket_snapshot`.
    fn conn_fd(&self, conn: Self::Conn) -> Option<RawFd>;
    /// Next event.
    fn poll_event(&mut self) -> Option<IoEvent<Self::Conn, Self::Listener, Self::Buf>>;
    /// Submits everything queued and waits up to `timeout` for completions.
    fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// Whether the sockets offer TCP_INFO (KIST needs it).
    fn has_tcp_info(&self) -> bool;
}

/// Commands from the control thread to a worker.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Command {
    /// Build a circuit along `path` for requests tagged `tag`; give up at `deadline`
    /// (the learned circuit build timeout).
    BuildCircuit {
        tag: u64,
        path: Vec<HopSpec>,
        deadline: Instant,
    },
    /// No path could be found for `tag`: fail its waiting requests.
    NoPath { tag: u64 },
    /// Stop: DESTROY every circuit, flush, close, return.
    Shutdown,
}

/// Events from a worker to the control thread.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// The worker needs a circuit for requests tagged `tag`.
    NeedCircuit { worker: usize, tag: u64 },
    /// The circuit for `tag` was built in `build_ms`.
    CircuitBuilt {
        worker: usize,
        tag: u64,
        guard: RelayId,
        build_ms: u32,
    },
    /// The circuit for `tag` failed while building (`hop`: where, if known).
    CircuitFailed {
        worker: usize,
        tag: u64,
        guard: RelayId,
        hop: Option<usize>,
    },
    /// The circuit for `tag` passed its deadline while building and was closed.
    CircuitTimedOut {
        worker: usize,
        tag: u64,
        guard: RelayId,
    },
    /// The guard of the circuit for `tag` could not be reached at all.
    GuardUnreachable {
        worker: usize,
        tag: u64,
        guard: RelayId,
    },
    /// Periodic counters and scheduler metrics (once a second; boxed: the histograms are
    /// a few KiB and this is off the data path).
    Stats {
        worker: usize,
        stats: RelayStats,
        sched: Box<kistrel_sched::SchedMetrics>,
        kind: kistrel_sched::SchedulerKind,
    },
}

/// Sends worker events without ever blocking: a full queue drops the event and counts it.
#[derive(Debug)]
pub struct EventSender {
    tx: crossbeam_channel::Sender<WorkerEvent>,
    dropped: u64,
}

impl EventSender {
    /// Wraps the sending half of a bounded queue.
    pub fn new(tx: crossbeam_channel::Sender<WorkerEvent>) -> Self {
        EventSender { tx, dropped: 0 }
    }

    /// Sends, or drops and counts when the queue is full (or the receiver is gone).
    pub fn send(&mut self, ev: WorkerEvent) {
        if self.tx.try_send(ev).is_err() {
            self.dropped += 1;
        }
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
