//! Streams at the circuit endpoints: BEGIN (checked against the exit policy), CONNECTED,
//! DATA, END and SENDME handling, and the stream API the runtime and applications use.
//!
//! ```text
//!   origin                                          exit
//!   open_stream ── BEGIN ─────────────────────────> exit policy ── Event::ConnectStream
//!   Event::StreamConnected <──────── CONNECTED ──── handle_stream_connected
//!   handle_stream_data ── DATA (windows permitting) ─> receive buffer ── Event::StreamReadable
//!   stream_recv <── receive buffer <── DATA ─────── handle_stream_data
//!   stream_close ── END ──────────────────────────> Event::StreamEnded
//! ```
//!
//! Every window decision is `flow`'s; received bytes wait in the stream's receive buffer,
//! counted in the `MaxMemInQueues` account, until the application reads them.

use std::net::SocketAddr;

use tracing::debug;

use crate::exit::check_begin;
use crate::time::Instant;
use crate::wire::{Begin, Connected, End, EndReason, RelayCmd, Sendme, StreamId, RELAY_DATA_LEN};

use super::circuit::{CircKind, Endpoint};
use super::error::StreamError;
use super::event::{ApiError, Event};
use super::flow::{CircuitFlow, FlowError, StreamFlow};
use super::ids::{CircHandle, StreamHandle};
use super::streammap::StreamState;
use super::Relay;

impl Relay {
    // ----- cells from the other end -----------------------------------------------------

    /// DATA for stream `stream` of `circ`, recognized at endpoint `end`.
    pub(super) fn handle_data(
        &mut self,
        now: Instant,
        circ: CircHandle,
        end: Endpoint,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Some(sid) = self.stream_id(now, circ, stream, RelayCmd::DATA) else {
            return;
        };
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        let digest = match (&c.kind, end) {
            (CircKind::Relay { layer, .. }, Endpoint::Exit) => layer.last_forward_digest(),
            (CircKind::Origin(o), Endpoint::Origin(hop)) => match o.hops.get(hop) {
                Some(layer) => layer.last_backward_digest(),
                None => return,
            },
            _ => return,
        };
        let sendme = match c.flow.on_data_received(|| digest) {
            Ok(sendme) => sendme,
            Err(e) => return self.reject_circuit(now, circ, e.into()),
        };
        // Data for a stream we no longer know (closed on our side) still counts toward the
        // circuit window, as in Tor.
        if let Some(s) = c.streams.get_mut(sid) {
            if let Err(e) = s.flow.on_data_received() {
                return self.reject_circuit(now, circ, e.into());
            }
            let was_empty = s.buffered() == 0;
            s.buffer(now, data, &mut self.memory);
            if was_empty && !data.is_empty() {
                self.events.push_back(Event::StreamReadable {
                    stream: StreamHandle { circ, id: sid },
                });
            }
        }
        if let Some(digest) = sendme {
            let mut msg = [0u8; RELAY_DATA_LEN];
            if let Ok(n) = (Sendme {
                digest: Some(digest),
            })
            .emit(&mut msg)
            {
                self.send_from_endpoint(now, circ, RelayCmd::SENDME, None, &msg[..n]);
            }
        }
        self.send_stream_sendmes(now, StreamHandle { circ, id: sid });
        // Unread stream bytes count toward MaxMemInQueues too.
        self.check_oom(now);
    }

    /// A circuit SENDME (no stream id) or a stream SENDME.
    pub(super) fn handle_sendme(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Ok(msg) = Sendme::parse(data) else {
            return self.reject_circuit(now, circ, FlowError::MalformedSendme.into());
        };
        let Some(c) = self.circuits.get_mut(circ) else {
            return;
        };
        match stream {
            None => {
                if let Err(e) = c.flow.on_sendme(now, msg.digest.as_ref()) {
                    return self.reject_circuit(now, circ, e.into());
                }
                let circ_open = c.flow.can_send();
                for (id, s) in c.streams.iter_mut() {
                    if s.blocked && circ_open && s.flow.can_send() {
                        s.blocked = false;
                        self.events.push_back(Event::StreamWritable {
                            stream: StreamHandle { circ, id },
                        });
                    }
                }
            }
            Some(sid) => {
                let circ_open = c.flow.can_send();
                let Some(s) = c.streams.get_mut(sid) else {
                    return;
                };
                if let Err(e) = s.flow.on_sendme() {
                    return self.reject_circuit(now, circ, e.into());
                }
                if s.blocked && circ_open {
                    s.blocked = false;
                    self.events.push_back(Event::StreamWritable {
                        stream: StreamHandle { circ, id: sid },
                    });
                }
            }
        }
    }

    /// Sends the stream SENDMEs flow control asks for now.
    fn send_stream_sendmes(&mut self, now: Instant, stream: StreamHandle) {
        loop {
            let Some(s) = self
                .circuits
                .get_mut(stream.circ)
                .and_then(|c| c.streams.get_mut(stream.id))
            else {
                return;
            };
            let buffered = s.buffered();
            if s.state == StreamState::Ended || !s.flow.sendme_due(buffered) {
                return;
            }
            self.send_from_endpoint(now, stream.circ, RelayCmd::SENDME, Some(stream.id), &[]);
        }
    }

    /// The stream id of a stream cell (`cmd`); a cell without one closes `circ` (tor-spec:
    /// a protocol violation) and gives `None`.
    pub(super) fn stream_id(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        cmd: RelayCmd,
    ) -> Option<StreamId> {
        if stream.is_none() {
            self.reject_circuit(now, circ, StreamError::NoStreamId { cmd }.into());
        }
        stream
    }

    /// The id for a new stream on `circ` (BEGIN, RESOLVE): present and not in use; otherwise
    /// the circuit is closed and `None` (also `None` when the circuit is gone).
    pub(super) fn new_stream_id(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        cmd: RelayCmd,
    ) -> Option<StreamId> {
        let sid = self.stream_id(now, circ, stream, cmd)?;
        if self.circuits.get(circ)?.streams.contains(sid) {
            self.reject_circuit(now, circ, StreamError::StreamIdInUse.into());
            return None;
        }
        Some(sid)
    }

    /// Exit: a BEGIN. Allowed targets become [`Event::ConnectStream`]; refused ones get END.
    pub(super) fn handle_begin(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Some(sid) = self.new_stream_id(now, circ, stream, RelayCmd::BEGIN) else {
            return;
        };
        let target = match Begin::parse(data) {
            Ok(b) => check_begin(self.cfg.exit_policy.as_ref(), b.host, b.port),
            Err(_) => Err(EndReason::TORPROTOCOL),
        };
        match target {
            Ok(t) => {
                let Some(c) = self.circuits.get_mut(circ) else {
                    return;
                };
                c.streams.insert(sid, StreamState::Connecting);
                self.events.push_back(Event::ConnectStream {
                    stream: StreamHandle { circ, id: sid },
                    host: t.host,
                    port: t.port,
                    ip: t.ip,
                });
            }
            Err(reason) => {
                debug!(?circ, ?sid, ?reason, "refusing BEGIN");
                self.send_end(now, circ, sid, reason);
            }
        }
    }

    /// Origin: the exit connected the stream.
    pub(super) fn handle_connected(
        &mut self,
        now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
    ) {
        let Some(sid) = self.stream_id(now, circ, stream, RelayCmd::CONNECTED) else {
            return;
        };
        let Some(s) = self
            .circuits
            .get_mut(circ)
            .and_then(|c| c.streams.get_mut(sid))
        else {
            return;
        };
        if s.state != StreamState::Connecting {
            return self.reject_circuit(now, circ, StreamError::NotConnecting.into());
        }
        s.state = StreamState::Open;
        self.events.push_back(Event::StreamConnected {
            stream: StreamHandle { circ, id: sid },
        });
    }

    /// END from the other end: the stream is over (unread bytes stay readable).
    pub(super) fn handle_end(
        &mut self,
        _now: Instant,
        circ: CircHandle,
        stream: Option<StreamId>,
        data: &[u8],
    ) {
        let Some(sid) = stream else { return };
        let reason = End::parse(data)
            .map(|e| e.reason)
            .unwrap_or(EndReason::MISC);
        let Some(s) = self
            .circuits
            .get_mut(circ)
            .and_then(|c| c.streams.get_mut(sid))
        else {
            return;
        };
        s.state = StreamState::Ended;
        s.ended_reported = true;
        self.events.push_back(Event::StreamEnded {
            stream: StreamHandle { circ, id: sid },
            reason,
        });
    }

    pub(super) fn send_end(
        &mut self,
        now: Instant,
        circ: CircHandle,
        sid: StreamId,
        reason: EndReason,
    ) {
        let mut data = [0u8; RELAY_DATA_LEN];
        if let Ok(n) = (End { reason }).emit(&mut data) {
            self.send_from_endpoint(now, circ, RelayCmd::END, Some(sid), &data[..n]);
        }
    }

    // ----- the stream API ---------------------------------------------------------------

    /// Origin: opens a stream to `host:port` through the exit of built circuit `circ`.
    /// [`Event::StreamConnected`] or [`Event::StreamEnded`] follows.
    pub fn open_stream(
        &mut self,
        now: Instant,
        circ: CircHandle,
        host: &str,
        port: u16,
    ) -> Result<StreamHandle, ApiError> {
        let c = self.circuits.get_mut(circ).ok_or(ApiError::NoSuchCircuit)?;
        if !c.is_built_origin() {
            return Err(ApiError::NotBuilt);
        }
        let sid = c.streams.alloc_id().ok_or(ApiError::StreamIdsExhausted)?;
        let mut data = [0u8; RELAY_DATA_LEN];
        let n = (Begin {
            host,
            port,
            flags: 0,
        })
        .emit(&mut data)
        .map_err(|_| ApiError::HostTooLong)?;
        c.streams.insert(sid, StreamState::Connecting);
        self.send_from_endpoint(now, circ, RelayCmd::BEGIN, Some(sid), &data[..n]);
        Ok(StreamHandle { circ, id: sid })
    }

    /// Exit: the runtime connected `stream` to `addr`; CONNECTED goes to the origin.
    pub fn handle_stream_connected(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        addr: SocketAddr,
    ) {
        let Some(s) = self
            .circuits
            .get_mut(stream.circ)
            .and_then(|c| c.streams.get_mut(stream.id))
        else {
            return;
        };
        if s.state != StreamState::Connecting {
            return;
        }
        s.state = StreamState::Open;
        let mut data = [0u8; RELAY_DATA_LEN];
        // TTL as C Tor uses for addresses it will not cache (tor-spec: seconds).
        let connected = Connected {
            addr: Some((addr.ip(), 300)),
        };
        if let Ok(n) = connected.emit(&mut data) {
            let (circ, id) = (stream.circ, Some(stream.id));
            self.send_from_endpoint(now, circ, RelayCmd::CONNECTED, id, &data[..n]);
        }
    }

    /// Exit: connecting `stream` failed (or its resolved address is refused by policy).
    pub fn handle_stream_failed(&mut self, now: Instant, stream: StreamHandle, reason: EndReason) {
        let Some(c) = self.circuits.get_mut(stream.circ) else {
            return;
        };
        if c.streams.remove(stream.id, &mut self.memory).is_some() {
            self.send_end(now, stream.circ, stream.id, reason);
        }
    }

    /// Closes a stream from this side: END goes to the other end, local state is freed
    /// (unread bytes are discarded).
    pub fn stream_close(&mut self, now: Instant, stream: StreamHandle, reason: EndReason) {
        let Some(c) = self.circuits.get_mut(stream.circ) else {
            return;
        };
        let Some(s) = c.streams.remove(stream.id, &mut self.memory) else {
            return;
        };
        if s.state != StreamState::Ended {
            self.send_end(now, stream.circ, stream.id, reason);
        }
    }

    /// Bytes from the application (origin) or the target server (exit) for `stream`.
    /// Packages as many DATA cells as the circuit and stream windows allow and returns how
    /// many bytes it took; when that is less than offered, [`Event::StreamWritable`] says
    /// when to offer the rest.
    pub fn handle_stream_data(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        mut data: &[u8],
    ) -> usize {
        let mut taken = 0;
        while !data.is_empty() {
            let Some(c) = self.circuits.get_mut(stream.circ) else {
                return taken;
            };
            let circ_open = c.flow.can_send();
            let Some(s) = c.streams.get_mut(stream.id) else {
                return taken;
            };
            if s.state != StreamState::Open {
                return taken;
            }
            if !circ_open || !s.flow.can_send() {
                s.blocked = true;
                return taken;
            }
            s.flow.on_data_sent();
            let n = data.len().min(RELAY_DATA_LEN);
            if !self.send_stream_data(now, stream, &data[..n]) {
                return taken;
            }
            data = &data[n..];
            taken += n;
        }
        taken
    }

    /// Reads received bytes of `stream` into `buf`. `Some(0)`: nothing yet; `None`: the
    /// stream has ended and everything was read (its state is freed now), or it does not exist.
    pub fn stream_recv(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        buf: &mut [u8],
    ) -> Option<usize> {
        let c = self.circuits.get_mut(stream.circ)?;
        let s = c.streams.get_mut(stream.id)?;
        let (front, back) = s.rx_slices();
        let a = front.len().min(buf.len());
        buf[..a].copy_from_slice(&front[..a]);
        let b = back.len().min(buf.len() - a);
        buf[a..a + b].copy_from_slice(&back[..b]);
        s.consume(a + b, &mut self.memory);
        self.after_recv(now, stream, a + b)
    }

    /// As [`Relay::stream_recv`], moving the bytes to the end of `out` (the runtime hands it
    /// a connection's send buffer). An empty `out` takes the stream's whole buffer by
    /// exchange, without a copy; a partly filled one gets a copy of at most `max` bytes.
    pub fn stream_recv_append(
        &mut self,
        now: Instant,
        stream: StreamHandle,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Option<usize> {
        let c = self.circuits.get_mut(stream.circ)?;
        let s = c.streams.get_mut(stream.id)?;
        let n = s.move_into(out, max, &mut self.memory);
        self.after_recv(now, stream, n)
    }

    /// After the application took `n` bytes: frees an ended, drained stream (None), or
    /// sends the stream-level SENDMEs the read made due.
    fn after_recv(&mut self, now: Instant, stream: StreamHandle, n: usize) -> Option<usize> {
        let c = self.circuits.get_mut(stream.circ)?;
        let s = c.streams.get(stream.id)?;
        if n == 0 && s.state == StreamState::Ended {
            c.streams.remove(stream.id, &mut self.memory);
            return None;
        }
        self.send_stream_sendmes(now, stream);
        Some(n)
    }

    /// Bytes waiting to be read on `stream`.
    pub fn stream_pending(&self, stream: StreamHandle) -> usize {
        self.circuits
            .get(stream.circ)
            .and_then(|c| c.streams.get(stream.id))
            .map_or(0, |s| s.buffered())
    }

    /// The stream state of `stream`, if it exists.
    pub fn stream_state(&self, stream: StreamHandle) -> Option<StreamState> {
        self.circuits
            .get(stream.circ)?
            .streams
            .get(stream.id)
            .map(|s| s.state)
    }
}
