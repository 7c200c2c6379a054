//! Edge connections: SOCKS clients (at a circuit origin) and target servers (at an exit),
//! each bound to one stream.
//!
//! ```text
//!   socket bytes --handle_stream_data--> DATA cells   (windows full: keep the rest, pause reads)
//!   DATA cells   --stream_recv---------> socket       (send buffer full: wait for SendDone)
//! ```

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use tracing::debug;

use crate::relay::StreamHandle;
use crate::socks::{SocksProgress, SocksReply, SocksServer};
use crate::time::Instant;
use crate::wire::EndReason;

use super::worker::{Role, Worker};
use super::Driver;

/// Stop moving stream bytes into a socket's send buffer above this much queued.
const EDGE_SEND_HIGH_WATER: usize = 512 << 10;
/// Bytes read from a socket and kept while the stream's windows are closed, before reads
/// pause: one stream window (500 cells of 498 bytes) and a little more.
const EDGE_PENDING_HIGH_WATER: usize = 256 << 10;
/// Bytes read from the stream per copy into the send buffer.
const EDGE_CHUNK: usize = 64 << 10;

#[derive(Debug, Default)]
pub(super) struct Edge {
    /// The stream, once opened (origin) or requested (exit).
    pub stream: Option<StreamHandle>,
    /// Origin side: the SOCKS handshake, until the stream is connected.
    pub socks: Option<SocksServer>,
    /// Bytes read from the socket that the stream has not taken yet (windows closed).
    pub pending: Vec<u8>,
    /// The socket's peer finished sending.
    pub eof: bool,
    /// Reads are paused because `pending` is non-empty.
    pub paused: bool,
    /// Exit side: the address being connected to.
    pub target: Option<SocketAddr>,
}

/// Resolves host names off the worker thread (one short-lived thread per lookup).
#[derive(Debug)]
pub(super) struct Resolver {
    tx: crossbeam_channel::Sender<(StreamHandle, Option<IpAddr>, u16)>,
    rx: crossbeam_channel::Receiver<(StreamHandle, Option<IpAddr>, u16)>,
}

impl Resolver {
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Resolver { tx, rx }
    }

    fn resolve(&self, stream: StreamHandle, host: String, port: u16) {
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("kistrel-resolve".into())
            .spawn(move || {
                let ip = (host.as_str(), port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| a.ip());
                let _ = tx.send((stream, ip, port));
            });
        if spawned.is_err() {
            let _ = self.tx.send((stream, None, port));
        }
    }
}

impl<D: Driver> Worker<D> {
    // ----- exit side --------------------------------------------------------------------

    pub(super) fn exit_connect(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        host: String,
        port: u16,
        ip: Option<IpAddr>,
    ) {
        match ip {
            Some(ip) => self.exit_connect_addr(now, stream, SocketAddr::new(ip, port)),
            None => self.resolver.resolve(stream, host, port),
        }
    }

    pub(super) fn resolver_results(&mut self, now: Instant) {
        while let Ok((stream, ip, port)) = self.resolver.rx.try_recv() {
            match ip {
                None => self
                    .relay
                    .handle_stream_failed(now, stream, EndReason::RESOLVEFAILED),
                Some(ip) => {
                    // The port was checked already; the address can only be checked now.
                    if self.relay.exit_allows(ip, port) {
                        self.exit_connect_addr(now, stream, SocketAddr::new(ip, port));
                    } else {
                        self.relay
                            .handle_stream_failed(now, stream, EndReason::EXITPOLICY);
                    }
                }
            }
        }
    }

    fn exit_connect_addr(&mut self, now: Instant, stream: StreamHandle, addr: SocketAddr) {
        match self.driver.connect(addr) {
            Ok(conn) => {
                self.roles.insert(conn, Role::Edge);
                self.no_delay(conn);
                self.edges.insert(
                    conn,
                    Edge {
                        stream: Some(stream),
                        target: Some(addr),
                        ..Edge::default()
                    },
                );
                self.stream_conn.insert(stream, conn);
            }
            Err(e) => {
                debug!(?stream, %addr, error = %e, "exit connect failed to start");
                self.relay
                    .handle_stream_failed(now, stream, EndReason::CONNECTREFUSED);
            }
        }
    }

    pub(super) fn edge_connected(&mut self, now: Instant, conn: D::Conn) {
        let Some(edge) = self.edges.get(&conn) else {
            return;
        };
        if let (Some(stream), Some(addr)) = (edge.stream, edge.target) {
            self.relay.handle_stream_connected(now, stream, addr);
        }
    }

    pub(super) fn edge_connect_failed(&mut self, now: Instant, conn: D::Conn) {
        self.roles.remove(&conn);
        if let Some(edge) = self.edges.remove(&conn) {
            if let Some(stream) = edge.stream {
                self.stream_conn.remove(&stream);
                self.relay
                    .handle_stream_failed(now, stream, EndReason::CONNECTREFUSED);
            }
        }
    }

    // ----- both sides -------------------------------------------------------------------

    pub(super) fn accept_socks(&mut self, conn: D::Conn) {
        self.roles.insert(conn, Role::Edge);
        self.no_delay(conn);
        self.edges.insert(
            conn,
            Edge {
                socks: Some(SocksServer::new()),
                ..Edge::default()
            },
        );
    }

    pub(super) fn edge_recv(&mut self, now: Instant, conn: D::Conn, data: &[u8]) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            return;
        };
        let handshaking = edge.socks.as_ref().is_some_and(|s| !s.is_open());
        if handshaking {
            return self.socks_recv(now, conn, data);
        }
        if !edge.pending.is_empty() || edge.stream.is_none() {
            edge.pending.extend_from_slice(data);
            self.edge_backpressure(conn);
            return;
        }
        let Some(stream) = edge.stream else { return };
        let taken = self.relay.handle_stream_data(now, stream, data);
        if taken < data.len() {
            let edge = self.edges.get_mut(&conn).expect("edge present");
            edge.pending.extend_from_slice(&data[taken..]);
            self.edge_backpressure(conn);
        }
    }

    /// Stops reading a socket whose bytes the stream cannot take, but only once a window's
    /// worth is kept: then the next SENDME finds data ready instead of waiting a round trip
    /// for a re-armed receive.
    fn edge_backpressure(&mut self, conn: D::Conn) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            return;
        };
        if !edge.paused && edge.pending.len() >= EDGE_PENDING_HIGH_WATER {
            edge.paused = true;
            self.driver.set_recv_paused(conn, true);
        }
    }

    /// Offers bytes kept back to the stream again (its windows opened).
    pub(super) fn edge_offer_pending(&mut self, now: Instant, conn: D::Conn) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            return;
        };
        let Some(stream) = edge.stream else { return };
        if edge.socks.as_ref().is_some_and(|s| !s.is_open()) {
            return;
        }
        if !edge.pending.is_empty() {
            let pending = std::mem::take(&mut edge.pending);
            let taken = self.relay.handle_stream_data(now, stream, &pending);
            let edge = self.edges.get_mut(&conn).expect("edge present");
            edge.pending = pending;
            edge.pending.drain(..taken);
        }
        let edge = self.edges.get_mut(&conn).expect("edge present");
        if edge.pending.is_empty() {
            if edge.paused {
                edge.paused = false;
                self.driver.set_recv_paused(conn, false);
            }
            if edge.eof {
                self.relay.stream_close(now, stream, EndReason::DONE);
                self.forget_edge(conn);
                self.driver.close_when_flushed(conn);
            }
        }
    }

    pub(super) fn edge_eof(&mut self, now: Instant, conn: D::Conn) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            self.roles.remove(&conn);
            self.driver.close(conn);
            return;
        };
        edge.eof = true;
        if edge.stream.is_none() {
            self.forget_edge(conn);
            self.driver.close(conn);
            return;
        }
        self.edge_offer_pending(now, conn);
    }

    pub(super) fn edge_broken(&mut self, now: Instant, conn: D::Conn) {
        if let Some(stream) = self.edges.get(&conn).and_then(|e| e.stream) {
            self.relay.stream_close(now, stream, EndReason::CONNRESET);
        }
        self.forget_edge(conn);
        self.driver.close(conn);
    }

    fn forget_edge(&mut self, conn: D::Conn) {
        self.roles.remove(&conn);
        if let Some(edge) = self.edges.remove(&conn) {
            if let Some(stream) = edge.stream {
                self.stream_conn.remove(&stream);
            }
        }
        self.origins.forget_conn(conn);
    }

    /// Moves received stream bytes into the sockets that can take them.
    pub(super) fn deliver_streams(&mut self, now: Instant) {
        // Duplicates are harmless: a second pass finds nothing to read.
        let mut conns = std::mem::take(&mut self.readable);
        for conn in conns.drain(..) {
            let Some(stream) = self.edges.get(&conn).and_then(|e| e.stream) else {
                continue;
            };
            loop {
                if self.driver.queued_len(conn) >= EDGE_SEND_HIGH_WATER {
                    break; // SendDone brings us back.
                }
                let Some(buf) = self.driver.send_buf(conn) else {
                    break;
                };
                match self.relay.stream_recv_append(now, stream, buf, EDGE_CHUNK) {
                    Some(0) => break,
                    Some(_) => {}
                    None => {
                        // Ended and drained: close once the bytes are out.
                        self.forget_edge(conn);
                        self.driver.close_when_flushed(conn);
                        break;
                    }
                }
            }
        }
        self.readable = conns;
    }

    pub(super) fn stream_ended(&mut self, now: Instant, stream: StreamHandle, reason: EndReason) {
        let Some(&conn) = self.stream_conn.get(&stream) else {
            return;
        };
        let socks_waiting = self
            .edges
            .get(&conn)
            .and_then(|e| e.socks.as_ref())
            .is_some_and(|s| !s.is_open());
        if socks_waiting {
            self.socks_fail(conn, SocksReply::from_end_reason(reason));
            // The stream is ended at the relay; reading it frees it.
            let mut scratch = [0u8; 0];
            let _ = self.relay.stream_recv(now, stream, &mut scratch);
            return;
        }
        self.readable.push(conn);
    }

    // ----- SOCKS ------------------------------------------------------------------------

    fn socks_recv(&mut self, now: Instant, conn: D::Conn, data: &[u8]) {
        let Some(edge) = self.edges.get_mut(&conn) else {
            return;
        };
        let Some(socks) = edge.socks.as_mut() else {
            return;
        };
        let result = socks.handle(data);
        let mut out = Vec::new();
        socks.take_output(&mut out);
        if !out.is_empty() {
            if let Some(buf) = self.driver.send_buf(conn) {
                buf.extend_from_slice(&out);
            }
        }
        match result {
            Ok((_, SocksProgress::NeedMore)) => {}
            Ok((used, SocksProgress::Request(req))) => {
                let edge = self.edges.get_mut(&conn).expect("edge present");
                edge.pending.extend_from_slice(&data[used..]);
                let host = req.target.to_string();
                self.origins.request(conn, req.isolation, host, req.port);
                self.serve_requests(now);
            }
            Err(e) => {
                debug!(error = %e, "bad SOCKS request");
                self.forget_edge(conn);
                self.driver.close_when_flushed(conn);
            }
        }
    }

    pub(super) fn socks_connected(&mut self, now: Instant, stream: StreamHandle) {
        let Some(&conn) = self.stream_conn.get(&stream) else {
            return;
        };
        let Some(socks) = self.edges.get_mut(&conn).and_then(|e| e.socks.as_mut()) else {
            return;
        };
        socks.reply(SocksReply::Succeeded, SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut out = Vec::new();
        socks.take_output(&mut out);
        if let Some(buf) = self.driver.send_buf(conn) {
            buf.extend_from_slice(&out);
        }
        self.edge_offer_pending(now, conn);
    }

    pub(super) fn socks_fail(&mut self, conn: D::Conn, reply: SocksReply) {
        if let Some(socks) = self.edges.get_mut(&conn).and_then(|e| e.socks.as_mut()) {
            socks.reply(reply, SocketAddr::from(([0, 0, 0, 0], 0)));
            let mut out = Vec::new();
            socks.take_output(&mut out);
            if let Some(buf) = self.driver.send_buf(conn) {
                buf.extend_from_slice(&out);
            }
        }
        self.forget_edge(conn);
        self.driver.close_when_flushed(conn);
    }

    /// Binds an opened origin stream to its SOCKS connection.
    pub(super) fn bind_stream(&mut self, conn: D::Conn, stream: StreamHandle) {
        if let Some(edge) = self.edges.get_mut(&conn) {
            edge.stream = Some(stream);
            self.stream_conn.insert(stream, conn);
        }
    }
}
