//! Edge connections, sans-IO: SOCKS clients (at a circuit origin) and target servers (at an
//! exit), each bound to one stream.
//!
//! ```text
//!   socket bytes --handle_recv--> StreamPort::stream_data  (windows full: keep the rest, pause)
//!   stream bytes --(worker: Relay::stream_recv_append into the send buffer)--> socket
//!   everything the socket side must do --------------------> EdgeAction (poll_action)
//! ```
//!
//! [`Edges`] never touches a socket: it takes what happened to a connection (`handle_*`),
//! calls the relay's stream API through [`StreamPort`] (a fake in the tests), and queues
//! what the worker must do to the connections as [`EdgeAction`]s. Moving stream bytes into
//! a socket's send buffer is the worker's (one copy, straight from the relay's buffer);
//! `Edges` says which connections to serve ([`Edges::take_readable`]).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;

use tracing::debug;

use crate::relay::{Relay, StreamHandle};
use crate::socks::{SocksProgress, SocksReply, SocksServer};
use crate::time::Instant;
use crate::wire::EndReason;

#[cfg(test)]
mod tests;

/// Bytes read from a socket and kept while the stream's windows are closed, before reads
/// pause: more than one stream SENDME's increment (50 cells of 498 bytes, 24,900 bytes), so
/// the next SENDME finds its cells' worth ready; the rest waits in the kernel's socket
/// buffer. A whole stream window (256 KiB, before session 14) cost 8x the memory per stream
/// for no throughput: 3 hops ran 0.93-1.03x on poll and 1.00-1.09x on io_uring with 32 KiB
/// against it, seven paired rounds (benches/BASELINE.md).
const EDGE_PENDING_HIGH_WATER: usize = 32 << 10;

/// The relay's stream API, as edges use it. `Relay` implements it; the tests use a fake.
pub(super) trait StreamPort {
    /// Bytes from the socket for `stream`; returns how many the stream took.
    fn stream_data(&mut self, now: Instant, stream: StreamHandle, data: &[u8]) -> usize;
    /// Ends `stream` from this side (END with `reason`).
    fn stream_close(&mut self, now: Instant, stream: StreamHandle, reason: EndReason);
    /// Exit: the target connection of `stream` is up.
    fn stream_connected(&mut self, now: Instant, stream: StreamHandle, addr: SocketAddr);
    /// Exit: connecting `stream` failed.
    fn stream_failed(&mut self, now: Instant, stream: StreamHandle, reason: EndReason);
    /// Frees an ended stream whose bytes nobody will read.
    fn stream_discard(&mut self, now: Instant, stream: StreamHandle);
}

impl StreamPort for Relay {
    fn stream_data(&mut self, now: Instant, stream: StreamHandle, data: &[u8]) -> usize {
        self.handle_stream_data(now, stream, data)
    }

    fn stream_close(&mut self, now: Instant, stream: StreamHandle, reason: EndReason) {
        Relay::stream_close(self, now, stream, reason);
    }

    fn stream_connected(&mut self, now: Instant, stream: StreamHandle, addr: SocketAddr) {
        self.handle_stream_connected(now, stream, addr);
    }

    fn stream_failed(&mut self, now: Instant, stream: StreamHandle, reason: EndReason) {
        self.handle_stream_failed(now, stream, reason);
    }

    fn stream_discard(&mut self, now: Instant, stream: StreamHandle) {
        // An ended stream is freed by the read that finds it drained.
        let _ = self.stream_recv(now, stream, &mut []);
    }
}

/// What the worker must do to an edge connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum EdgeAction<C> {
    /// Append `bytes` (a SOCKS reply) to the connection's send buffer.
    Send { conn: C, bytes: Vec<u8> },
    /// Stop (`true`) or resume reading the connection.
    PauseRecv { conn: C, paused: bool },
    /// Close the connection now.
    Close { conn: C },
    /// Close the connection once its queued bytes are out.
    CloseWhenFlushed { conn: C },
    /// Origin: a SOCKS client asks for a stream to `host:port` on a circuit of its
    /// isolation key.
    Request {
        conn: C,
        isolation: Option<(Vec<u8>, Vec<u8>)>,
        host: String,
        port: u16,
    },
    /// The edge is gone: forget the connection (its role, requests waiting for it).
    Forgotten { conn: C },
}

#[derive(Debug, Default)]
struct Edge {
    /// The stream, once opened (origin) or requested (exit).
    stream: Option<StreamHandle>,
    /// Origin side: the SOCKS handshake, until the stream is connected.
    socks: Option<SocksServer>,
    /// Bytes read from the socket that the stream has not taken yet (windows closed). A
    /// ring: taking bytes from its front moves nothing, where a `Vec`'s `drain(..taken)`
    /// moved the rest (up to the high water) every time a window opened.
    pending: VecDeque<u8>,
    /// The socket's peer finished sending.
    eof: bool,
    /// Reads are paused because `pending` is large.
    paused: bool,
    /// Exit side: the address being connected to.
    target: Option<SocketAddr>,
}

impl Edge {
    fn socks_handshaking(&self) -> bool {
        self.socks.as_ref().is_some_and(|s| !s.is_open())
    }
}

/// The edges of one worker. See the module docs.
#[derive(Debug)]
pub(super) struct Edges<C> {
    edges: HashMap<C, Edge>,
    /// INVARIANT: `by_stream[s] == c` iff `edges[c].stream == Some(s)`.
    by_stream: HashMap<StreamHandle, C>,
    /// Edges with stream bytes to deliver (duplicates are harmless).
    readable: Vec<C>,
    actions: VecDeque<EdgeAction<C>>,
}

impl<C> Default for Edges<C> {
    fn default() -> Self {
        Edges {
            edges: HashMap::new(),
            by_stream: HashMap::new(),
            readable: Vec::new(),
            actions: VecDeque::new(),
        }
    }
}

impl<C: Copy + Eq + Hash> Edges<C> {
    /// Live edges (SOCKS clients and exit connections).
    pub(super) fn len(&self) -> usize {
        self.edges.len()
    }

    /// The next thing the worker must do.
    #[must_use]
    pub(super) fn poll_action(&mut self) -> Option<EdgeAction<C>> {
        self.actions.pop_front()
    }

    /// Edges to serve stream bytes to (moved into `into`, which should be empty).
    pub(super) fn take_readable(&mut self, into: &mut Vec<C>) {
        std::mem::swap(&mut self.readable, into);
    }

    /// Whether edges wait for stream bytes to be delivered.
    pub(super) fn has_readable(&self) -> bool {
        !self.readable.is_empty()
    }

    /// The stream of `conn`, if it has one.
    pub(super) fn stream_of(&self, conn: C) -> Option<StreamHandle> {
        self.edges.get(&conn)?.stream
    }

    // ----- exit side --------------------------------------------------------------------

    /// Exit: `conn` is connecting to `addr` for `stream`.
    pub(super) fn add_exit(&mut self, conn: C, stream: StreamHandle, addr: SocketAddr) {
        let edge = Edge {
            stream: Some(stream),
            target: Some(addr),
            ..Edge::default()
        };
        self.edges.insert(conn, edge);
        self.by_stream.insert(stream, conn);
    }

    /// Exit: `conn` connected.
    pub(super) fn handle_connected(&mut self, now: Instant, conn: C, port: &mut impl StreamPort) {
        if let Some(Edge {
            stream: Some(stream),
            target: Some(addr),
            ..
        }) = self.edges.get(&conn)
        {
            port.stream_connected(now, *stream, *addr);
        }
    }

    /// Exit: `conn` could not connect (the driver closed it).
    pub(super) fn handle_connect_failed(
        &mut self,
        now: Instant,
        conn: C,
        port: &mut impl StreamPort,
    ) {
        if let Some(stream) = self.forget(conn) {
            port.stream_failed(now, stream, EndReason::CONNECTREFUSED);
        }
    }

    // ----- both sides -------------------------------------------------------------------

    /// Origin: `conn` is a new SOCKS client.
    pub(super) fn add_socks(&mut self, conn: C) {
        let edge = Edge {
            socks: Some(SocksServer::new()),
            ..Edge::default()
        };
        self.edges.insert(conn, edge);
    }

    /// Bytes from `conn`'s socket.
    pub(super) fn handle_recv(
        &mut self,
        now: Instant,
        conn: C,
        data: &[u8],
        port: &mut impl StreamPort,
    ) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            return;
        };
        if edge.socks_handshaking() {
            return self.socks_recv(conn, data);
        }
        let taken = match edge.stream {
            Some(stream) if edge.pending.is_empty() => port.stream_data(now, stream, data),
            _ => 0,
        };
        if let Some(rest) = data.get(taken..).filter(|r| !r.is_empty()) {
            edge.pending.extend(rest);
            if !edge.paused && edge.pending.len() >= EDGE_PENDING_HIGH_WATER {
                // Only once a SENDME's worth is kept: then the next SENDME finds data ready
                // instead of waiting a round trip for a re-armed receive.
                edge.paused = true;
                self.actions
                    .push_back(EdgeAction::PauseRecv { conn, paused: true });
            }
        }
    }

    /// Offers bytes kept back to the stream again (its windows opened); ends the stream once
    /// everything is taken after the socket's EOF.
    fn offer_pending(&mut self, now: Instant, conn: C, port: &mut impl StreamPort) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            return;
        };
        let Some(stream) = edge.stream else { return };
        if edge.socks_handshaking() {
            return;
        }
        if !edge.pending.is_empty() {
            // The ring's two halves in order; the second only if the stream took all of the
            // first. DATA cells are filled straight from these bytes.
            let (front, back) = edge.pending.as_slices();
            let mut taken = port.stream_data(now, stream, front);
            if taken == front.len() && !back.is_empty() {
                taken += port.stream_data(now, stream, back);
            }
            edge.pending.drain(..taken.min(edge.pending.len()));
        }
        if !edge.pending.is_empty() {
            return;
        }
        if edge.paused {
            edge.paused = false;
            self.actions.push_back(EdgeAction::PauseRecv {
                conn,
                paused: false,
            });
        }
        if edge.eof {
            port.stream_close(now, stream, EndReason::DONE);
            self.forget(conn);
            self.actions
                .push_back(EdgeAction::CloseWhenFlushed { conn });
        }
    }

    /// `conn`'s peer finished sending.
    pub(super) fn handle_eof(&mut self, now: Instant, conn: C, port: &mut impl StreamPort) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            self.actions.push_back(EdgeAction::Forgotten { conn });
            self.actions.push_back(EdgeAction::Close { conn });
            return;
        };
        edge.eof = true;
        if edge.stream.is_none() {
            self.forget(conn);
            self.actions.push_back(EdgeAction::Close { conn });
            return;
        }
        self.offer_pending(now, conn, port);
    }

    /// `conn` broke (a send failed).
    pub(super) fn handle_broken(&mut self, now: Instant, conn: C, port: &mut impl StreamPort) {
        if let Some(stream) = self.forget(conn) {
            port.stream_close(now, stream, EndReason::CONNRESET);
        }
        self.actions.push_back(EdgeAction::Close { conn });
    }

    /// The kernel took everything queued on `conn`: room for more stream bytes.
    pub(super) fn handle_send_done(&mut self, conn: C) {
        self.readable.push(conn);
    }

    /// `stream` has bytes to read, or its windows opened for bytes kept back.
    pub(super) fn handle_stream_ready(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        port: &mut impl StreamPort,
    ) {
        if let Some(&conn) = self.by_stream.get(&stream) {
            self.readable.push(conn);
            self.offer_pending(now, conn, port);
        }
    }

    /// `stream` ended. A SOCKS client still waiting for it gets the failure; otherwise its
    /// remaining bytes are delivered before the connection closes.
    pub(super) fn handle_stream_ended(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        reason: EndReason,
        port: &mut impl StreamPort,
    ) {
        let Some(&conn) = self.by_stream.get(&stream) else {
            return;
        };
        if self.edges.get(&conn).is_some_and(Edge::socks_handshaking) {
            self.socks_fail(conn, SocksReply::from_end_reason(reason));
            port.stream_discard(now, stream);
            return;
        }
        self.readable.push(conn);
    }

    /// The stream of `conn` ended and everything was delivered: close once the bytes are out.
    pub(super) fn handle_stream_drained(&mut self, conn: C) {
        self.forget(conn);
        self.actions
            .push_back(EdgeAction::CloseWhenFlushed { conn });
    }

    /// Removes `conn`'s edge; returns its stream.
    fn forget(&mut self, conn: C) -> Option<StreamHandle> {
        let edge = self.edges.remove(&conn);
        self.actions.push_back(EdgeAction::Forgotten { conn });
        let stream = edge?.stream?;
        self.by_stream.remove(&stream);
        Some(stream)
    }

    // ----- SOCKS ------------------------------------------------------------------------

    fn socks_recv(&mut self, conn: C, data: &[u8]) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            return;
        };
        let Some(socks) = edge.socks.as_mut() else {
            return;
        };
        let result = socks.handle(data);
        let mut bytes = Vec::new();
        socks.take_output(&mut bytes);
        if !bytes.is_empty() {
            self.actions.push_back(EdgeAction::Send { conn, bytes });
        }
        match result {
            Ok((_, SocksProgress::NeedMore)) => {}
            Ok((used, SocksProgress::Request(req))) => {
                // Bytes after the request are optimistic data for the stream.
                edge.pending.extend(data.get(used..).unwrap_or_default());
                self.actions.push_back(EdgeAction::Request {
                    conn,
                    isolation: req.isolation,
                    host: req.target.to_string(),
                    port: req.port,
                });
            }
            Err(e) => {
                debug!(error = %e, "bad SOCKS request");
                self.forget(conn);
                self.actions
                    .push_back(EdgeAction::CloseWhenFlushed { conn });
            }
        }
    }

    /// Origin: the stream of a SOCKS client connected: reply, then send what it sent early.
    pub(super) fn handle_socks_connected(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        port: &mut impl StreamPort,
    ) {
        let Some(&conn) = self.by_stream.get(&stream) else {
            return;
        };
        let Some(socks) = self.edges.get_mut(&conn).and_then(|e| e.socks.as_mut()) else {
            return;
        };
        socks.reply(SocksReply::Succeeded, SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut bytes = Vec::new();
        socks.take_output(&mut bytes);
        self.actions.push_back(EdgeAction::Send { conn, bytes });
        self.offer_pending(now, conn, port);
    }

    /// Origin: no stream can be had for SOCKS client `conn`: reply `reply` and close.
    pub(super) fn socks_fail(&mut self, conn: C, reply: SocksReply) {
        if let Some(socks) = self.edges.get_mut(&conn).and_then(|e| e.socks.as_mut()) {
            socks.reply(reply, SocketAddr::from(([0, 0, 0, 0], 0)));
            let mut bytes = Vec::new();
            socks.take_output(&mut bytes);
            self.actions.push_back(EdgeAction::Send { conn, bytes });
        }
        self.forget(conn);
        self.actions
            .push_back(EdgeAction::CloseWhenFlushed { conn });
    }

    /// Origin: binds an opened stream to its SOCKS client.
    pub(super) fn bind_stream(&mut self, conn: C, stream: StreamHandle) {
        if let Some(edge) = self.edges.get_mut(&conn) {
            edge.stream = Some(stream);
            self.by_stream.insert(stream, conn);
        }
    }
}
