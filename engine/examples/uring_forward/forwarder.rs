//! A plain TCP forwarder on `engine::uring::Ring`: accept, connect upstream, copy both ways,
//! with half-close and per-direction backpressure. The baseline a relay is compared with.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use kistrel_engine::uring::{ConnId, Event, ListenerId, Ring, UringError};

/// One end of a forwarded pair.
#[derive(Debug)]
struct Side {
    peer: ConnId,
    /// This side's peer sent EOF.
    eof: bool,
    /// Receiving paused because `peer`'s send queue is full.
    paused: bool,
}

/// Forwards every connection accepted on a listener to `upstream`.
#[derive(Debug)]
pub struct Forwarder {
    pub ring: Ring,
    listener: Option<ListenerId>,
    upstream: SocketAddr,
    sides: HashMap<ConnId, Side>,
    /// Pause a side's receiving while its peer has more than this queued.
    max_queued: usize,
    /// Bytes copied, both directions.
    pub forwarded: u64,
    /// Pairs fully closed.
    pub pairs_done: u64,
}

impl Forwarder {
    pub fn new(
        mut ring: Ring,
        listener: TcpListener,
        upstream: SocketAddr,
        max_queued: usize,
    ) -> Result<Self, UringError> {
        let listener = ring.add_listener(listener)?;
        Ok(Self {
            ring,
            listener: Some(listener),
            upstream,
            sides: HashMap::new(),
            max_queued,
            forwarded: 0,
            pairs_done: 0,
        })
    }

    /// Stops accepting (forwarded pairs go on).
    pub fn close_listener(&mut self) -> Result<(), UringError> {
        match self.listener.take() {
            Some(l) => self.ring.close_listener(l),
            None => Ok(()),
        }
    }

    /// Live forwarded pairs.
    pub fn pairs(&self) -> usize {
        self.sides.len() / 2
    }

    fn close_pair(&mut self, conn: ConnId) {
        if let Some(side) = self.sides.remove(&conn) {
            self.sides.remove(&side.peer);
            // Either may already be closed by the ring (ConnectFailed): ignore NoSuchConn.
            let _ = self.ring.close(conn);
            let _ = self.ring.close(side.peer);
            self.pairs_done += 1;
        }
    }

    /// One loop iteration.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> Result<(), UringError> {
        self.ring.run_once(timeout)?;
        while let Some(ev) = self.ring.poll_event() {
            match ev {
                Event::Accepted { conn, .. } => {
                    let up = self.ring.connect(self.upstream)?;
                    let new = |peer| Side {
                        peer,
                        eof: false,
                        paused: false,
                    };
                    self.sides.insert(conn, new(up));
                    self.sides.insert(up, new(conn));
                }
                Event::ConnectFailed { conn, .. } | Event::SendFailed { conn, .. } => {
                    self.close_pair(conn)
                }
                Event::Recv { conn, data } => {
                    let Some(side) = self.sides.get_mut(&conn) else {
                        continue;
                    };
                    self.forwarded += data.len() as u64;
                    self.ring.send(side.peer, &data)?;
                    if self.ring.queued_len(side.peer)? > self.max_queued && !side.paused {
                        side.paused = true;
                        self.ring.set_recv_paused(conn, true)?;
                    }
                }
                Event::SendDone { conn } => {
                    // `conn` drained: let its peer (which feeds it) receive again.
                    let Some(peer) = self.sides.get(&conn).map(|s| s.peer) else {
                        continue;
                    };
                    if let Some(feeder) = self.sides.get_mut(&peer) {
                        if feeder.paused {
                            feeder.paused = false;
                            self.ring.set_recv_paused(peer, false)?;
                        }
                    }
                }
                Event::RecvClosed { conn, err } => {
                    let Some(side) = self.sides.get_mut(&conn) else {
                        continue;
                    };
                    if err.is_some() {
                        self.close_pair(conn);
                        continue;
                    }
                    side.eof = true;
                    let peer = side.peer;
                    self.ring.shutdown_write_when_flushed(peer)?;
                    if self.sides.get(&peer).is_some_and(|p| p.eof) {
                        // Both directions ended: close once the last bytes are out.
                        self.sides.remove(&conn);
                        self.sides.remove(&peer);
                        self.ring.close_when_flushed(conn)?;
                        self.ring.close_when_flushed(peer)?;
                        self.pairs_done += 1;
                    }
                }
                // Plain sockets: never a kTLS record or a stopped receive.
                Event::Connected { .. }
                | Event::AcceptFailed { .. }
                | Event::Timeout
                | Event::TlsRecord { .. }
                | Event::RecvStopped { .. } => {}
            }
        }
        Ok(())
    }
}
