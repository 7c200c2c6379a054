//! `Ring`: the io_uring, its tables, and the calls the layer above makes.

use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::bufring::BufRing;
use super::config::{build_ring, RingConfig, RingFeatures, RingStats};
use super::ktls_rx::switch::RxSwitch;
use super::op::{Op, OpKey};
use super::stamp::Stamping;
use super::{ConnId, Event, ListenerId, UringError};
use crate::slab::GenSlab;
use crate::sys::{self, RawSockAddr};

/// One TCP connection's state.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    /// CONNECT in flight: no RECV or SEND yet.
    pub(super) connecting: bool,
    pub(super) connect_op: Option<OpKey>,
    /// The armed multishot RECV, if any.
    pub(super) recv_op: Option<OpKey>,
    pub(super) recv_paused: bool,
    /// EOF or a receive error: never re-armed.
    pub(super) recv_done: bool,
    /// The SEND in flight, if any (at most one, so bytes stay in order).
    pub(super) send_op: Option<OpKey>,
    /// Bytes of the SEND in flight not yet accepted by the kernel.
    pub(super) in_flight: usize,
    /// Bytes queued for the next SEND.
    pub(super) out: Vec<u8>,
    /// An empty buffer with capacity, swapped in for `out` when a SEND starts.
    pub(super) spare: Vec<u8>,
    /// On `Ring::dirty`.
    pub(super) dirty: bool,
    /// A SEND failed: no more bytes accepted.
    pub(super) send_broken: bool,
    /// What to do once `out` and the SEND in flight are done.
    pub(super) after_flush: AfterFlush,
    /// Kernel transmit timestamps of sampled sends.
    pub(super) stamping: Stamping,
    /// The switch of the receive side to kTLS RX (`ktls_rx`).
    pub(super) rx_switch: RxSwitch,
}

/// A connection's pending end, run when its last queued byte went to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AfterFlush {
    Nothing,
    ShutdownWrite,
    Close,
}

/// A listening socket with its multishot ACCEPT.
#[derive(Debug)]
pub(super) struct Listener {
    pub(super) listener: TcpListener,
    pub(super) accept_op: Option<OpKey>,
    /// Connections it accepts start with reads paused (`Ring::hold_accepted`).
    pub(super) hold: bool,
}

/// One worker's io_uring with its connections, listeners, in-flight operations and receive
/// buffers. Not `Send`: it lives and dies on its worker thread (a `RxBuf` shares the buffer
/// ring through an `Rc`).
///
/// The loop of the layer above:
/// ```no_run
/// # use kistrel_engine::uring::{Ring, RingConfig, Event};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut ring = Ring::new(&RingConfig::default())?;
/// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
/// ring.add_listener(l)?;
/// loop {
///     ring.run_once(Some(std::time::Duration::from_millis(10)))?;
///     while let Some(ev) = ring.poll_event() {
///         if let Event::Recv { conn, data } = ev {
///             ring.send(conn, &data)?; // echo
///         }
///     }
/// }
/// # }
/// ```
pub struct Ring {
    // Declared first so it is dropped first: the kernel lets go of the buffer ring before
    // `bufs` (and the memory behind it) can go.
    pub(super) ring: IoUring,
    pub(super) bufs: BufRing,
    pub(super) ops: GenSlab<Op>,
    pub(super) conns: GenSlab<Conn>,
    pub(super) listeners: GenSlab<Listener>,
    /// SQEs that did not fit in the SQ, in order; their memory is owned by their op slots.
    pub(super) backlog: VecDeque<squeue::Entry>,
    pub(super) events: VecDeque<Event>,
    /// Connections that may have bytes to send.
    pub(super) dirty: Vec<ConnId>,
    /// Connections whose RECV ended with ENOBUFS, re-armed once buffers are back.
    pub(super) starved: Vec<ConnId>,
    /// Listeners whose ACCEPT ended, re-armed on the next iteration.
    pub(super) accept_rearm: Vec<ListenerId>,
    pub(super) cqes: Vec<cqueue::Entry>,
    /// The deadline of the TIMEOUT op (fallback mode); boxed so its address is stable.
    timeout_ts: Box<Timespec>,
    pub(super) features: RingFeatures,
    pub(super) stats: RingStats,
    _not_send: PhantomData<*const ()>,
}

/// Sets up an io_uring with the operations this layer needs and its receive buffer ring.
/// The tuple drops in order: the io_uring lets go of the buffer ring before it is unmapped.
fn setup(config: &RingConfig) -> Result<(IoUring, BufRing, RingFeatures), UringError> {
    let (mut ring, defer_taskrun) = build_ring(config)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(UringError::Setup)?;
    for (code, name) in [
        (opcode::RecvMulti::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::AcceptMulti::CODE, "ACCEPT"),
        (opcode::Connect::CODE, "CONNECT"),
        (opcode::Close::CODE, "CLOSE"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Timeout::CODE, "TIMEOUT"),
    ] {
        if !probe.is_supported(code) {
            return Err(UringError::Unsupported(name));
        }
    }
    let ext_arg_wait = config.ext_arg_wait && ring.params().is_feature_ext_arg();
    let bufs = BufRing::new(
        &ring,
        config.buf_entries,
        config.buf_size,
        config.buf_group,
        config.buf_window,
    )
    .map_err(UringError::Setup)?;
    let features = RingFeatures {
        defer_taskrun,
        ext_arg_wait,
        sq_entries: ring.params().sq_entries(),
        cq_entries: ring.params().cq_entries(),
        tcp_info_cmd: super::sockopt::probe_tcp_info(&mut ring, &probe),
    };
    Ok((ring, bufs, features))
}

/// Whether a [`Ring`] can be set up here: a small ring with every operation the layer needs
/// and a buffer ring, made and dropped at once, logging at debug only. The runtime calls it once
/// per process to choose its backend.
pub fn probe() -> Result<RingFeatures, UringError> {
    let config = RingConfig {
        sq_entries: 4,
        cq_entries: 8,
        buf_entries: 1,
        buf_size: 64,
        ..RingConfig::default()
    };
    setup(&config).map(|(_, _, features)| features)
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("features", &self.features)
            .field("conns", &self.conns.len())
            .field("listeners", &self.listeners.len())
            .field("ops", &self.ops.len())
            .field("bufs", &self.bufs)
            .finish_non_exhaustive()
    }
}

impl Ring {
    /// Sets up the io_uring (probing what the kernel supports) and the receive buffer ring.
    ///
    /// Fails with [`UringError::Setup`]/[`UringError::Unsupported`] where io_uring is
    /// unusable; the caller then uses the portable backend.
    pub fn new(config: &RingConfig) -> Result<Self, UringError> {
        let (ring, bufs, features) = setup(config)?;
        tracing::info!(
            ?features,
            buf_entries = config.buf_entries,
            buf_size = config.buf_size,
            "io_uring ready"
        );
        Ok(Self {
            ring,
            bufs,
            ops: GenSlab::default(),
            conns: GenSlab::default(),
            listeners: GenSlab::default(),
            backlog: VecDeque::new(),
            // Sized for a full CQ up front, so reaping never grows them on the data path.
            events: VecDeque::with_capacity(features.cq_entries as usize),
            dirty: Vec::new(),
            starved: Vec::new(),
            accept_rearm: Vec::new(),
            cqes: Vec::with_capacity(features.cq_entries as usize),
            timeout_ts: Box::new(Timespec::new()),
            features,
            stats: RingStats::default(),
            _not_send: PhantomData,
        })
    }

    /// What the kernel gave us.
    pub fn features(&self) -> RingFeatures {
        self.features
    }

    /// Counters since creation.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// The receive buffer ring (for its `available`/`outstanding` counts).
    pub fn buf_ring(&self) -> &BufRing {
        &self.bufs
    }

    /// Live connections.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Live listeners.
    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// Operations the kernel has not finished with (orphans of closed connections included).
    pub fn ops_in_flight(&self) -> usize {
        self.ops.len()
    }

    /// Events waiting in the queue.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Queues an SQE, or spills it into the backlog if the SQ is full (or the backlog is not
    /// empty, to keep SQEs in order).
    ///
    /// # Safety
    ///
    /// Every pointer in `entry` must stay valid until the operation's last completion: it
    /// must point into memory owned by the op slot named by the entry's `user_data` (a send
    /// buffer's heap block, a boxed socket address), into the buffer ring, or into
    /// `self.timeout_ts`, and nothing may write that memory meanwhile.
    pub(super) unsafe fn push(&mut self, entry: squeue::Entry) {
        if self.backlog.is_empty() {
            // SAFETY: the caller guarantees the entry's memory outlives the operation.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
        }
        self.stats.backlog_spills += 1;
        self.backlog.push_back(entry);
    }

    /// Moves the backlog into the SQ, submitting (without waiting) to make room.
    fn drain_backlog(&mut self) -> Result<(), UringError> {
        while let Some(entry) = self.backlog.front() {
            // SAFETY: the entry met `push`'s contract when it was queued, and its owning op
            // slot stays in the slab until the operation completes, which it cannot have
            // done before being submitted.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.backlog.pop_front();
                continue;
            }
            self.stats.backlog_submits += 1;
            match self.ring.submit() {
                Ok(0) => return Ok(()), // the kernel takes nothing now; retry next iteration
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(UringError::Enter(e)),
            }
        }
        Ok(())
    }

    /// Builds an op key for a new slab entry.
    pub(super) fn insert_op(&mut self, op: Op) -> Result<OpKey, UringError> {
        let kind = op.kind();
        let key = self.ops.try_insert(op).map_err(|_| UringError::Full)?;
        Ok(OpKey::new(key.index(), kind))
    }

    fn insert_conn(&mut self, stream: TcpStream, connecting: bool) -> Result<ConnId, UringError> {
        let conn = Conn {
            stream,
            connecting,
            connect_op: None,
            recv_op: None,
            recv_paused: false,
            recv_done: false,
            send_op: None,
            in_flight: 0,
            out: Vec::new(),
            spare: Vec::new(),
            dirty: false,
            send_broken: false,
            after_flush: AfterFlush::Nothing,
            stamping: Stamping::default(),
            rx_switch: RxSwitch::default(),
        };
        let key = self.conns.try_insert(conn).map_err(|_| UringError::Full)?;
        self.reserve_per_conn();
        Ok(ConnId(key))
    }

    /// Grows the tables a connection's data path pushes into, so that path never allocates:
    /// five ops per connection (RECV, SEND, cancelled RECV, error-queue RECVMSG, CLOSE).
    fn reserve_per_conn(&mut self) {
        let conns = self.conns.len();
        self.ops
            .reserve_live(5 * conns + 2 * self.listeners.len() + 8);
        self.dirty.reserve(conns.saturating_sub(self.dirty.len()));
        self.starved
            .reserve(conns.saturating_sub(self.starved.len()));
    }

    pub(super) fn conn_mut(&mut self, id: ConnId) -> Result<&mut Conn, UringError> {
        self.conns.get_mut(id.0).ok_or(UringError::NoSuchConn(id))
    }

    fn conn(&self, id: ConnId) -> Result<&Conn, UringError> {
        self.conns.get(id.0).ok_or(UringError::NoSuchConn(id))
    }

    /// Arms the multishot RECV of `id` unless armed, paused, finished, connecting or held.
    pub(super) fn arm_recv(&mut self, id: ConnId) -> Result<(), UringError> {
        let Some(conn) = self.conns.get(id.0) else {
            return Ok(());
        };
        // Held: a kTLS RX switch drained it and waits for the link's verdict.
        let held = conn.rx_switch.holds_recv();
        if conn.recv_op.is_some() || conn.recv_paused || conn.recv_done || conn.connecting || held {
            return Ok(());
        }
        let fd = conn.stream.as_raw_fd();
        let key = self.insert_op(Op::Recv { conn: id })?;
        if let Some(conn) = self.conns.get_mut(id.0) {
            conn.recv_op = Some(key);
        }
        let entry = opcode::RecvMulti::new(Fd(fd), self.bufs.bgid())
            .build()
            .user_data(key.0);
        // SAFETY: a buffer-select RECV writes only into the registered buffer ring, which
        // stays mapped while the io_uring exists (`BufRing`'s INVARIANT); op slot `key`
        // owns nothing else.
        unsafe { self.push(entry) };
        Ok(())
    }

    fn arm_accept(&mut self, id: ListenerId) -> Result<(), UringError> {
        let Some(l) = self.listeners.get(id.0) else {
            return Ok(());
        };
        if l.accept_op.is_some() {
            return Ok(());
        }
        let fd = l.listener.as_raw_fd();
        let key = self.insert_op(Op::Accept { listener: id })?;
        if let Some(l) = self.listeners.get_mut(id.0) {
            l.accept_op = Some(key);
        }
        let entry = opcode::AcceptMulti::new(Fd(fd))
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(key.0);
        // SAFETY: a multishot ACCEPT without an address buffer carries no pointer.
        unsafe { self.push(entry) };
        Ok(())
    }

    /// Starts a SEND of `out` if the connection has bytes and none in flight.
    pub(super) fn start_send(&mut self, id: ConnId) -> Result<(), UringError> {
        let Some(conn) = self.conns.get_mut(id.0) else {
            return Ok(());
        };
        if conn.send_op.is_some() || conn.connecting || conn.send_broken || conn.out.is_empty() {
            return Ok(());
        }
        let fd = conn.stream.as_raw_fd();
        let spare = std::mem::take(&mut conn.spare);
        let buf = std::mem::replace(&mut conn.out, spare);
        let len = buf.len();
        // The heap block does not move when the Vec moves into the slab.
        let ptr = buf.as_ptr();
        let (entry, stamp) = conn.stamping.send_entry(fd, ptr, len);
        self.stats.stamped_sends += u64::from(stamp.is_some());
        let key = self.insert_op(Op::Send {
            conn: id,
            buf,
            sent: 0,
            stamp,
        })?;
        if let Some(conn) = self.conns.get_mut(id.0) {
            conn.send_op = Some(key);
            conn.in_flight = len;
        }
        self.stats.sends += 1;
        let entry = entry.user_data(key.0);
        // SAFETY: `ptr..ptr+len` is the heap block of the Vec owned by op slot `key`, which
        // is neither freed nor written until the SEND's completion; so is the SENDMSG
        // block of a sampled send (`stamp`, boxed, owned by the same op).
        unsafe { self.push(entry) };
        Ok(())
    }

    /// Accepts connections on `listener` (made non-blocking) with a multishot ACCEPT.
    pub fn add_listener(&mut self, listener: TcpListener) -> Result<ListenerId, UringError> {
        listener.set_nonblocking(true).map_err(UringError::Socket)?;
        let key = self
            .listeners
            .try_insert(Listener {
                listener,
                accept_op: None,
                hold: false,
            })
            .map_err(|_| UringError::Full)?;
        let id = ListenerId(key);
        self.arm_accept(id)?;
        Ok(id)
    }

    /// The listener's local address.
    pub fn listener_addr(&self, id: ListenerId) -> Result<SocketAddr, UringError> {
        let l = self
            .listeners
            .get(id.0)
            .ok_or(UringError::NoSuchListener(id))?;
        l.listener.local_addr().map_err(UringError::Socket)
    }

    /// Opens a connection to `addr`; [`Event::Connected`] or [`Event::ConnectFailed`] follows.
    /// Bytes sent before it connects are queued.
    pub fn connect(&mut self, addr: SocketAddr) -> Result<ConnId, UringError> {
        self.connect_with(addr, |_| Ok(()))
    }

    /// As [`Ring::connect`], calling `configure` on the new socket first (e.g. to set
    /// SO_SNDBUF or TCP_CONGESTION with `engine::sys`, which must precede the handshake).
    pub fn connect_with(
        &mut self,
        addr: SocketAddr,
        configure: impl FnOnce(RawFd) -> io::Result<()>,
    ) -> Result<ConnId, UringError> {
        let fd = sys::tcp_socket(&addr).map_err(UringError::Socket)?;
        configure(fd.as_raw_fd()).map_err(UringError::Socket)?;
        let stream = TcpStream::from(fd);
        let raw = stream.as_raw_fd();
        let id = self.insert_conn(stream, true)?;
        let addr = Box::new(RawSockAddr::new(&addr));
        let (ptr, len) = (addr.as_ptr(), addr.len());
        let key = match self.insert_op(Op::Connect { conn: id, addr }) {
            Ok(key) => key,
            Err(e) => {
                self.conns.remove(id.0);
                return Err(e);
            }
        };
        self.conn_mut(id)?.connect_op = Some(key);
        let entry = opcode::Connect::new(Fd(raw), ptr, len)
            .build()
            .user_data(key.0);
        // SAFETY: `ptr` points into the boxed address owned by op slot `key` until the
        // CONNECT completes.
        unsafe { self.push(entry) };
        Ok(id)
    }

    /// Takes over an already connected stream (made non-blocking) and arms its RECV.
    pub fn adopt(&mut self, stream: TcpStream) -> Result<ConnId, UringError> {
        stream.set_nonblocking(true).map_err(UringError::Socket)?;
        self.adopt_nonblocking(stream, false)
    }

    /// As [`Ring::adopt`] for a stream known to be non-blocking (accepted with
    /// SOCK_NONBLOCK): no extra system call. `held`: reads start paused, no RECV armed.
    pub(super) fn adopt_nonblocking(
        &mut self,
        stream: TcpStream,
        held: bool,
    ) -> Result<ConnId, UringError> {
        let fd = stream.as_raw_fd();
        let id = self.insert_conn(stream, false)?;
        if let Some(c) = self.conns.get_mut(id.0) {
            c.stamping.enable(fd);
            c.recv_paused = held;
        }
        self.arm_recv(id)?;
        Ok(id)
    }

    /// The socket of `conn`, e.g. for [`crate::sys::socket_snapshot`].
    pub fn conn_fd(&self, conn: ConnId) -> Result<RawFd, UringError> {
        Ok(self.conn(conn)?.stream.as_raw_fd())
    }

    /// The stream of `conn`, for std socket calls (peer address, TCP_NODELAY, ..). Do not
    /// read or write through it: the ring owns its data path.
    pub fn stream(&self, conn: ConnId) -> Result<&TcpStream, UringError> {
        Ok(&self.conn(conn)?.stream)
    }

    /// Appends `bytes` to the connection's outgoing buffer; it goes out in the next SEND
    /// (started by the next [`Ring::run_once`], or when the one in flight completes).
    pub fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), UringError> {
        self.send_buf(conn)?.extend_from_slice(bytes);
        Ok(())
    }

    /// The connection's outgoing buffer, to write cells into directly (no copy). Append
    /// only: everything in it is sent, in order, after the bytes already in flight.
    pub fn send_buf(&mut self, conn: ConnId) -> Result<&mut Vec<u8>, UringError> {
        let c = self.conn_mut(conn)?;
        if c.send_broken {
            return Err(UringError::SendClosed(conn));
        }
        let newly_dirty = !c.dirty;
        c.dirty = true;
        if newly_dirty {
            self.dirty.push(conn);
        }
        Ok(&mut self.conn_mut(conn)?.out)
    }

    /// Bytes queued on `conn` that the kernel has not taken yet (queued plus in flight):
    /// the upper layer's backpressure signal.
    pub fn queued_len(&self, conn: ConnId) -> Result<usize, UringError> {
        let c = self.conn(conn)?;
        Ok(c.out.len() + c.in_flight)
    }

    /// Stops (`true`) or resumes (`false`) receiving on `conn`. Pausing cancels the armed
    /// RECV; data already received is still delivered.
    pub fn set_recv_paused(&mut self, conn: ConnId, paused: bool) -> Result<(), UringError> {
        let c = self.conn_mut(conn)?;
        if c.recv_paused == paused {
            return Ok(());
        }
        c.recv_paused = paused;
        if paused {
            if let Some(key) = c.recv_op {
                self.push_cancel(key);
            }
            Ok(())
        } else {
            self.arm_recv(conn)
        }
    }

    /// The next event, if any. Events are produced by [`Ring::run_once`].
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// One loop iteration: start queued SENDs, re-arm what ended, submit everything and wait
    /// (one `io_uring_enter`) for at least one completion or `timeout`, then turn the
    /// completions into events. Does not wait if events are still queued.
    ///
    /// [`Event::Timeout`] is queued when the wait ended with no completion (a hint: compare
    /// your deadline with your clock after every call). With `timeout: None` and nothing in
    /// flight this blocks forever.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> Result<(), UringError> {
        let mut dirty = std::mem::take(&mut self.dirty);
        for id in dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(id.0) {
                c.dirty = false;
            }
            self.start_send(id)?;
        }
        self.dirty = dirty;

        self.bufs.fit_window(self.conns.len());
        if self.bufs.available() > 0 && !self.starved.is_empty() {
            let mut starved = std::mem::take(&mut self.starved);
            for id in starved.drain(..) {
                self.arm_recv(id)?;
            }
            self.starved = starved;
        }
        let mut rearm = std::mem::take(&mut self.accept_rearm);
        for id in rearm.drain(..) {
            self.arm_accept(id)?;
        }
        self.accept_rearm = rearm;

        self.drain_backlog()?;
        let events_pending = !self.events.is_empty();
        self.wait(if events_pending {
            Some(Duration::ZERO)
        } else {
            timeout
        })?;
        let reaped = self.reap()?;
        if timeout.is_some() && !events_pending && reaped == 0 {
            self.events.push_back(Event::Timeout);
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), UringError> {
        self.stats.waits += 1;
        let res = match timeout {
            None => self.ring.submit_and_wait(1),
            Some(d) if self.features.ext_arg_wait => {
                let ts = Timespec::from(d);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            Some(d) => {
                *self.timeout_ts = Timespec::from(d);
                let ts: *const Timespec = &*self.timeout_ts;
                // count 1: it also ends as soon as any other completion arrives, so it
                // never outlives this wait by more than a moment.
                let entry = opcode::Timeout::new(ts)
                    .count(1)
                    .build()
                    .user_data(OpKey::TIMEOUT);
                // SAFETY: `ts` points into `self.timeout_ts`, a Box owned by the ring and
                // only rewritten by the next wait; the kernel copies it when it prepares the
                // SQE, during the submit just below.
                unsafe { self.push(entry) };
                self.drain_backlog()?;
                self.ring.submit_and_wait(1)
            }
        };
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(UringError::Enter(e)),
        }
    }

    /// Drains the CQ; returns the number of non-sentinel completions.
    fn reap(&mut self) -> Result<usize, UringError> {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.ring.completion());
        self.stats.completions += cqes.len() as u64;
        let mut real = 0;
        let mut result = Ok(());
        for cqe in cqes.drain(..) {
            if !OpKey(cqe.user_data()).is_sentinel() {
                real += 1;
            }
            if let Err(e) = self.complete(cqe.user_data(), cqe.result(), cqe.flags()) {
                // Keep going: the remaining completions still free their slots.
                result = Err(e);
            }
        }
        self.cqes = cqes;
        result.map(|()| real)
    }

    /// Cancels and closes everything, then waits (bounded) until the kernel has finished
    /// every operation, so no buffer is freed under it.
    fn cancel_all_and_wait(&mut self) {
        let conns: Vec<ConnId> = self.conns.keys().map(ConnId).collect();
        for conn in conns {
            let _ = self.close(conn);
        }
        let listeners: Vec<ListenerId> = self.listeners.keys().map(ListenerId).collect();
        for listener in listeners {
            let _ = self.close_listener(listener);
        }
        let entry = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(OpKey::CANCEL);
        // SAFETY: ASYNC_CANCEL carries no pointer.
        unsafe { self.push(entry) };
        for _ in 0..200 {
            if self.ops.is_empty() && self.backlog.is_empty() {
                break;
            }
            if self.drain_backlog().is_err() {
                break;
            }
            if self.wait(Some(Duration::from_millis(10))).is_err() {
                break;
            }
            let _ = self.reap();
            self.events.clear();
        }
        self.events.clear();
        if !self.ops.is_empty() {
            tracing::warn!(
                ops = self.ops.len(),
                "io_uring dropped with operations in flight"
            );
        }
        let _ = self.ring.submitter().unregister_buf_ring(self.bufs.bgid());
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.cancel_all_and_wait();
    }
}
