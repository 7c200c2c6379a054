//! The portable runtime backend: one poll(2) per worker loop iteration over non-blocking
//! sockets, for targets without io_uring (and on Linux with `--backend poll`). Implements
//! [`crate::driver::Driver`] with the same semantics as [`crate::uring`] (on Linux), so the
//! worker and the sans-IO core above it are unchanged.
//!
//! ```text
//!   worker                               PollDriver
//!   ----------------------------------   ------------------------------------------------
//!   connect / add_listener             -> conns, listeners (generational slabs: ConnId, ..)
//!   send_buf(conn) (append cells)      -> conn.out; the conn goes on the dirty list
//!   run_once(timeout)                  -> 1. one writev per dirty conn (in flight + queued)
//!                                         2. rebuild the pollfd array if the set changed;
//!                                            refresh each entry's interest
//!                                         3. one poll(2) (no wait if events are queued)
//!                                         4. per ready fd: finish a connect (SO_ERROR),
//!                                            accept until EAGAIN, read up to the budget,
//!                                            one more writev if still queued
//!   poll_event() <- IoEvent            <- Accepted / Connected / Recv(RecvBuf) / SendDone ..
//! ```
//!
//! Rules, as in the io_uring backend: `SendDone` once every queued byte went to the kernel;
//! `RecvClosed` on EOF or a receive error (the connection stays open for sending until
//! closed); a paused connection is not polled for reading; `close_when_flushed` closes after
//! the last byte (or a failed send). On Linux the scheduler's snapshots read TCP_INFO as on
//! io_uring, so KIST runs here too; elsewhere there is none (`has_tcp_info` is false) and the
//! worker's scheduler falls back from KIST to KISTLite.
//!
//! No `unsafe` here: poll(2) and connect(2) go through [`crate::sys::poll_sys`].
//!
//! Writes use std's `write_vectored` (writev(2)), which, unlike the io_uring SEND, passes no
//! MSG_NOSIGNAL: a write to a reset peer returns EPIPE only because Rust programs start with
//! SIGPIPE ignored. A host program that restores SIGPIPE must not use this backend.

mod buf;
mod driver;
mod round;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use crate::driver::IoEvent;
use crate::slab::{GenSlab, Key};
use crate::sys;
use crate::sys::poll_sys::PollSet;
use crate::sys::txstamp::{KernelStage, TxStamps};

pub use buf::RecvBuf;

use buf::BufPool;

/// A connection owned by a [`PollDriver`]: a slab handle, dead once the connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(Key);

impl ConnId {
    /// The slot index, dense from 0 (check the whole id for staleness, not the index).
    pub fn index(self) -> usize {
        self.0.index() as usize
    }
}

impl crate::driver::ConnSlot for ConnId {
    fn slot(self) -> usize {
        self.index()
    }
}

/// A listener owned by a [`PollDriver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(Key);

/// What a [`PollDriver`] reports.
pub type PollEvent = IoEvent<ConnId, ListenerId, RecvBuf>;

/// Sizes of a [`PollDriver`]'s reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollConfig {
    /// Bytes per receive buffer (one `read`).
    pub recv_buf_size: usize,
    /// Most bytes read from one socket per `run_once` (bounded work per iteration; at least
    /// one buffer).
    pub recv_budget: usize,
    /// Free receive buffers kept for reuse.
    pub pool_keep: usize,
}

impl Default for PollConfig {
    fn default() -> Self {
        // 16 KiB buffers as the io_uring backend's buffer ring; 64 KiB per socket and round
        // keeps one busy socket from starving the others.
        PollConfig {
            recv_buf_size: 16 * 1024,
            recv_budget: 64 * 1024,
            pool_keep: 1024,
        }
    }
}

/// Counters for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    /// poll(2) calls.
    pub polls: u64,
    /// Rebuilds of the pollfd array (only when connections or listeners came or went).
    pub rebuilds: u64,
    /// writev calls that moved bytes.
    pub writes: u64,
    /// writev calls that left bytes queued (socket buffer full).
    pub short_writes: u64,
    /// reads that returned bytes.
    pub reads: u64,
    /// Sends sampled for kernel timestamps (sendmsg with the SO_TIMESTAMPING cmsg).
    pub stamped_sends: u64,
    /// recvmsg(MSG_ERRQUEUE) calls that read timestamps.
    pub errqueue_reads: u64,
}

/// What to do with a connection once its queued bytes are out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterFlush {
    Nothing,
    Close,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// A non-blocking connect is in progress: wait for POLLOUT, then check SO_ERROR.
    connecting: bool,
    recv_paused: bool,
    /// EOF or a receive error: never read again.
    recv_done: bool,
    /// Bytes handed to writev; `inflight[sent..]` is not yet taken by the kernel.
    /// INVARIANT: `sent <= inflight.len()`.
    inflight: Vec<u8>,
    sent: usize,
    /// Bytes appended since; go out after `inflight`, in the same writev.
    out: Vec<u8>,
    /// On `PollDriver::dirty`.
    dirty: bool,
    /// A write failed: no more bytes accepted.
    send_broken: bool,
    after_flush: AfterFlush,
    /// Kernel transmit timestamps of sampled sends.
    tx: TxStamps,
    /// The kernel opens the received TLS records (kTLS RX): a read's EIO means a record
    /// that is not application data, read again with its type.
    ktls_rx: bool,
    /// Accepted on a holding listener and never read since (`PollDriver::detach`).
    held: bool,
}

impl Conn {
    fn new(stream: TcpStream, connecting: bool) -> Self {
        Conn {
            stream,
            connecting,
            recv_paused: false,
            recv_done: false,
            inflight: Vec::new(),
            sent: 0,
            out: Vec::new(),
            dirty: false,
            send_broken: false,
            after_flush: AfterFlush::Nothing,
            tx: TxStamps::default(),
            ktls_rx: false,
            held: false,
        }
    }

    /// Turns kernel transmit timestamps on, once the socket is connected and before its
    /// first byte is written (their ids count bytes from here).
    fn enable_stamps(&mut self) {
        // A refusal marks the socket unavailable and is logged once by `TxStamps`.
        let _ = self.tx.enable(self.stream.as_raw_fd());
    }

    fn queued(&self) -> usize {
        self.inflight.len().saturating_sub(self.sent) + self.out.len()
    }
}

/// Whose is an entry of the pollfd array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Conn(ConnId),
    Listener(ListenerId),
}

/// One worker's poll(2) backend. Not `Send`: it lives on its worker's thread, as its
/// receive buffers do.
#[derive(Debug)]
pub struct PollDriver {
    conns: GenSlab<Conn>,
    listeners: GenSlab<TcpListener>,
    /// Listeners whose accepted connections start held (`PollDriver::hold_accepted`).
    holding: Vec<ListenerId>,
    pool: BufPool,
    config: PollConfig,
    /// The pollfd array; entry `i` belongs to `owners[i]`.
    set: PollSet,
    owners: Vec<Owner>,
    /// Connections or listeners came or went since `set` was built.
    set_changed: bool,
    /// Connections with bytes appended since the last `run_once`.
    dirty: Vec<ConnId>,
    events: VecDeque<PollEvent>,
    stats: PollStats,
    /// Measured kernel delays read on POLLERR, until the worker collects them (bounded:
    /// beyond [`STAMP_BACKLOG`] they are dropped).
    stamps: Vec<(KernelStage, u64)>,
}

/// Measured delays kept between two collections by the worker.
const STAMP_BACKLOG: usize = 1024;

impl PollDriver {
    /// A driver with the default [`PollConfig`].
    pub fn new() -> io::Result<Self> {
        Self::with_config(PollConfig::default())
    }

    /// A driver with `config`.
    pub fn with_config(config: PollConfig) -> io::Result<Self> {
        let config = PollConfig {
            recv_buf_size: config.recv_buf_size.max(1),
            recv_budget: config.recv_budget.max(config.recv_buf_size),
            ..config
        };
        Ok(PollDriver {
            conns: GenSlab::default(),
            listeners: GenSlab::default(),
            holding: Vec::new(),
            pool: BufPool::new(config.recv_buf_size, config.pool_keep),
            config,
            set: PollSet::new(),
            owners: Vec::new(),
            set_changed: true,
            dirty: Vec::new(),
            events: VecDeque::new(),
            stats: PollStats::default(),
            stamps: Vec::with_capacity(STAMP_BACKLOG),
        })
    }

    /// Reads the error queues of the sockets with samples outstanding and hands every
    /// measured kernel delay (also those read on POLLERR since the last call) to `record`.
    /// Once per worker tick, never per cell.
    pub fn drain_tx_stamps(&mut self, record: &mut dyn FnMut(KernelStage, u64)) {
        for (stage, us) in self.stamps.drain(..) {
            record(stage, us);
        }
        for (_, c) in self.conns.iter_mut() {
            let fd = c.stream.as_raw_fd();
            self.stats.errqueue_reads += u64::from(c.tx.drain(fd, record));
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PollStats {
        self.stats
    }

    /// Live connections.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Starts accepting on `listener` (made non-blocking).
    pub fn add_listener(&mut self, listener: TcpListener) -> io::Result<ListenerId> {
        listener.set_nonblocking(true)?;
        let key = self
            .listeners
            .try_insert(listener)
            .map_err(|_| too_many())?;
        self.set_changed = true;
        Ok(ListenerId(key))
    }

    /// Stops accepting on `listener` and closes it.
    pub fn close_listener(&mut self, listener: ListenerId) {
        if self.listeners.remove(listener.0).is_some() {
            self.set_changed = true;
        }
    }

    /// Starts a non-blocking connect to `addr`: [`IoEvent::Connected`] or
    /// [`IoEvent::ConnectFailed`] follows (also for an error connect(2) reports at once).
    /// Bytes sent before it connects are queued.
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        let fd = sys::tcp_socket(&addr)?;
        let started = sys::poll_sys::connect_nonblocking(fd.as_raw_fd(), &addr);
        let stream = TcpStream::from(fd);
        let connecting = !matches!(started, Ok(true));
        let mut conn = Conn::new(stream, connecting);
        if !connecting {
            conn.enable_stamps();
        }
        let id = ConnId(self.conns.try_insert(conn).map_err(|_| too_many())?);
        self.set_changed = true;
        match started {
            Ok(true) => self.events.push_back(IoEvent::Connected { conn: id }),
            Ok(false) => {}
            Err(err) => {
                self.close(id);
                self.events
                    .push_back(IoEvent::ConnectFailed { conn: id, err });
            }
        }
        Ok(id)
    }

    /// Takes over a connected stream (made non-blocking); it is read from the next round.
    pub fn adopt(&mut self, stream: TcpStream) -> io::Result<ConnId> {
        stream.set_nonblocking(true)?;
        let mut conn = Conn::new(stream, false);
        conn.enable_stamps();
        let id = ConnId(self.conns.try_insert(conn).map_err(|_| too_many())?);
        self.set_changed = true;
        Ok(id)
    }

    /// The connection's outgoing buffer (append only), or `None` if it is closed or a
    /// write failed. Its bytes go out in the next [`PollDriver::run_once`].
    pub fn send_buf(&mut self, conn: ConnId) -> Option<&mut Vec<u8>> {
        let c = self.conns.get_mut(conn.0)?;
        if c.send_broken {
            return None;
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
        Some(&mut c.out)
    }

    /// Bytes queued on `conn` that the kernel has not taken yet (0 if it is gone).
    pub fn queued_len(&self, conn: ConnId) -> usize {
        self.conns.get(conn.0).map_or(0, Conn::queued)
    }

    /// Stops (`true`) or resumes (`false`) reading from `conn`; bytes already read are
    /// still delivered.
    pub fn set_recv_paused(&mut self, conn: ConnId, paused: bool) {
        if let Some(c) = self.conns.get_mut(conn.0) {
            c.recv_paused = paused;
            c.held &= paused;
        }
    }

    /// Connections accepted on `listener` from now on start held: not read until
    /// [`PollDriver::set_recv_paused`]`(conn, false)`, or taken out by [`PollDriver::detach`].
    pub fn hold_accepted(&mut self, listener: ListenerId) {
        if !self.holding.contains(&listener) {
            self.holding.push(listener);
        }
    }

    /// Takes a held connection out (never read, nothing queued) and returns its socket;
    /// `None` otherwise, and the connection stays.
    pub fn detach(&mut self, conn: ConnId) -> Option<TcpStream> {
        let c = self.conns.get(conn.0)?;
        if !c.held || c.queued() > 0 {
            return None;
        }
        self.set_changed = true;
        self.conns.remove(conn.0).map(|c| c.stream)
    }

    /// Hands `conn`'s receive keys to the kernel (kTLS RX), if no read of it waits in the
    /// event queue (`WouldBlock` then): reads happen only in `run_once`, so the caller has
    /// seen every byte read so far.
    pub fn enable_ktls_rx(
        &mut self,
        conn: ConnId,
        info: &crate::sys::ktls::CryptoInfo,
    ) -> io::Result<()> {
        let undelivered = self
            .events
            .iter()
            .any(|e| matches!(e, IoEvent::Recv { conn: c, .. } if *c == conn));
        if undelivered {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let c = self
            .conns
            .get_mut(conn.0)
            .ok_or_else(crate::driver::no_such_conn)?;
        crate::sys::ktls::enable_rx(c.stream.as_raw_fd(), info)?;
        c.ktls_rx = true;
        Ok(())
    }

    /// Closes `conn` now; its queued bytes are dropped and no more events come for it.
    pub fn close(&mut self, conn: ConnId) {
        if self.conns.remove(conn.0).is_some() {
            self.set_changed = true;
        }
    }

    /// Closes `conn` once its queued bytes went to the kernel (or a write failed); at once
    /// if nothing is queued and it is not still connecting.
    pub fn close_when_flushed(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        c.after_flush = AfterFlush::Close;
        if !c.connecting && (c.queued() == 0 || c.send_broken) {
            self.close(conn);
        }
    }

    /// The socket of `conn`, e.g. for [`crate::sys::socket_snapshot`].
    pub fn conn_fd(&self, conn: ConnId) -> Option<RawFd> {
        self.conns.get(conn.0).map(|c| c.stream.as_raw_fd())
    }

    /// The stream of `conn`, for std socket calls (peer address, TCP_NODELAY, ..). Do not
    /// read or write through it.
    pub fn stream(&self, conn: ConnId) -> Option<&TcpStream> {
        self.conns.get(conn.0).map(|c| &c.stream)
    }

    /// The next event, if any; events are produced by [`PollDriver::run_once`] (and by
    /// [`PollDriver::connect`] when connect(2) finishes at once).
    pub fn poll_event(&mut self) -> Option<PollEvent> {
        self.events.pop_front()
    }
}

fn too_many() -> io::Error {
    io::Error::other("too many connections or listeners")
}
