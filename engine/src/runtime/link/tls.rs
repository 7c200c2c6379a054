//! One TLS link: rustls' unbuffered connection for the handshake, then records opened in
//! place in the receive buffers and sealed in place in the send buffer ([`super::record`]).
//!
//! ```text
//!   Handshake --(rustls done: dangerous_into_kernel_connection)--> Records --> Closed
//!     bytes gathered in `incoming` (small)     whole records opened where they landed;
//!     flights queued in `out`                  a record cut by the end of a receive
//!     app data before the switch: copied       buffer is finished in `staging`;
//!                                              cells written straight into the send
//!                                              buffer after a header, sealed per batch
//! ```

use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::kernel::KernelConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError, UnbufferedStatus};
use rustls::{ConnectionTrafficSecrets, ProtocolVersion};

use super::exporter::{Capture, Exporter};
use super::record::{record_len, ContentType, Direction, Framing, HEADER_LEN, MAX_PLAINTEXT};
use super::{Delivery, LinkError, TlsContext};
use crate::relay::LinkAuth;
use crate::wire::CELL_LEN;

mod ktls;

/// Records sealed under one key before a TLS 1.3 link renews it: AES-GCM's confidentiality
/// limit is 2^24.5 full records (RFC 8446 5.5); one limit for every suite keeps it simple.
const KEY_LIMIT: u64 = 1 << 24;

/// What the TLS layer tells the relay's link handshake ([`LinkAuth`]).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    peer_cert_sha256: Option<[u8; 32]>,
    own_cert_sha256: Option<[u8; 32]>,
    exporter: Option<Exporter>,
}

impl LinkAuth for Facts {
    fn peer_cert_sha256(&self) -> Option<[u8; 32]> {
        self.peer_cert_sha256
    }

    fn own_cert_sha256(&self) -> Option<[u8; 32]> {
        self.own_cert_sha256
    }

    fn export_keying_material(&self, label: &[u8], context: &[u8]) -> Option<[u8; 32]> {
        self.exporter.as_ref()?.export(label, context)
    }
}

/// Per-link record counters (the worker sums them into its link statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Records opened.
    pub records_in: u64,
    /// Of those, records that were cut by the end of a receive buffer and finished in the
    /// link's staging buffer (copied once) instead of being opened where they landed.
    pub records_staged: u64,
    /// Records sealed.
    pub records_out: u64,
    /// Records that overfilled (more than 16 KiB of plaintext written at once, e.g. a burst
    /// of control cells) and were split when sealed, at the cost of moving their tail.
    /// Circuit cells never get here: they are written within [`TlsLink::cell_buf_room`]'s room.
    pub records_split: u64,
}

enum Conn {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

enum Kernel {
    Client(KernelConnection<rustls::client::ClientConnectionData>),
    Server(KernelConnection<rustls::server::ServerConnectionData>),
}

impl Kernel {
    fn update_rx(&mut self) -> Result<(u64, ConnectionTrafficSecrets), rustls::Error> {
        match self {
            Kernel::Client(k) => k.update_rx_secret(),
            Kernel::Server(k) => k.update_rx_secret(),
        }
    }

    fn update_tx(&mut self) -> Result<(u64, ConnectionTrafficSecrets), rustls::Error> {
        match self {
            Kernel::Client(k) => k.update_tx_secret(),
            Kernel::Server(k) => k.update_tx_secret(),
        }
    }
}

struct Handshake {
    conn: Conn,
    capture: Arc<Capture>,
    /// Received bytes rustls has not consumed yet.
    incoming: Vec<u8>,
    /// Bytes were received (a responder checks the very first ones).
    started: bool,
}

struct Records {
    rx: Direction,
    tx: Direction,
    kernel: Kernel,
    /// kTLS: the send keys, kept (zeroed on drop) until the kernel takes them or refuses.
    tx_secrets: Option<ConnectionTrafficSecrets>,
    /// The kernel seals what we send (kTLS TX): cells go to the send buffer as they are.
    tx_kernel: bool,
    /// kTLS: the receive keys, kept (zeroed on drop) until the kernel takes them or refuses.
    rx_secrets: Option<ConnectionTrafficSecrets>,
    /// The kernel opens what we receive (kTLS RX): received bytes are plaintext.
    rx_kernel: bool,
    tls13: bool,
    /// A record cut by the end of a receive buffer: its first bytes, until the rest comes.
    staging: Vec<u8>,
}

enum Phase {
    Handshake(Box<Handshake>),
    Records(Box<Records>),
    Closed,
}

/// One TLS link (opaque: driven through [`super::Link`]). See the module docs.
pub struct TlsLink {
    facts: Facts,
    phase: Phase,
    /// Handshake flights and control records waiting for the send buffer.
    out: Vec<u8>,
    /// Plaintext written before the handshake was done: sealed once it is.
    early: Vec<u8>,
    /// Where the record being filled starts in the send buffer.
    open_record: Option<usize>,
    /// A sealing error met while handing out the cell buffer, reported by the next seal.
    deferred: Option<LinkError>,
    stats: RecordStats,
    /// The process may hand send keys to the kernel (kTLS probed at start).
    ktls_wanted: bool,
}

impl std::fmt::Debug for TlsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLink")
            .field("open", &self.is_open())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What one call to rustls' state machine asks for.
enum Step {
    Continue,
    NeedInput,
    Writable,
    PeerClosed,
}

impl TlsLink {
    /// The initiator's side: its ClientHello is ready in the output at once.
    pub(crate) fn connect(ctx: &TlsContext) -> Result<Self, LinkError> {
        let (conn, capture) = ctx.client_conn()?;
        let mut link = Self::new(Conn::Client(conn), capture, None);
        link.ktls_wanted = ctx.ktls().is_available();
        link.handshake(&mut |_| {})?;
        Ok(link)
    }

    /// The responder's side: waits for the ClientHello.
    pub(crate) fn accept(ctx: &TlsContext) -> Result<Self, LinkError> {
        let (conn, capture) = ctx.server_conn()?;
        let mut link = Self::new(Conn::Server(conn), capture, Some(ctx.own_cert_sha256()));
        link.ktls_wanted = ctx.ktls().is_available();
        Ok(link)
    }

    fn new(conn: Conn, capture: Arc<Capture>, own: Option<[u8; 32]>) -> Self {
        TlsLink {
            facts: Facts {
                own_cert_sha256: own,
                ..Facts::default()
            },
            phase: Phase::Handshake(Box::new(Handshake {
                conn,
                capture,
                incoming: Vec::new(),
                started: false,
            })),
            out: Vec::new(),
            early: Vec::new(),
            open_record: None,
            deferred: None,
            stats: RecordStats::default(),
            ktls_wanted: false,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Records(_))
    }

    pub(crate) fn stats(&self) -> RecordStats {
        self.stats
    }

    pub(crate) fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Handshake or control bytes wait for the send buffer.
    pub(crate) fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Moves the waiting handshake or control bytes into `send` (never while a record is
    /// open in it: the worker calls this right after [`TlsLink::open`]).
    pub(crate) fn write_out(&mut self, send: &mut Vec<u8>) {
        debug_assert!(self.open_record.is_none());
        send.extend_from_slice(&self.out);
        self.out.clear();
    }

    /// Received bytes: drives the handshake, or opens records, handing plaintext (and the
    /// moment the link became secure) to `deliver`.
    pub(crate) fn open(
        &mut self,
        received: &mut [u8],
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) -> Result<(), LinkError> {
        match &mut self.phase {
            Phase::Handshake(hs) => {
                let first = !hs.started && matches!(hs.conn, Conn::Server(_));
                let checked = if first {
                    check_first_record(received)
                } else {
                    Ok(())
                };
                if let Err(e) = checked {
                    self.phase = Phase::Closed;
                    return Err(e);
                }
                hs.started = true;
                hs.incoming.extend_from_slice(received);
                self.handshake(deliver)
            }
            Phase::Records(_) => self.open_records(received, deliver),
            Phase::Closed => Err(LinkError::Closed),
        }
    }

    /// Runs rustls until it needs input; on completion switches to the record phase.
    fn handshake(&mut self, deliver: &mut dyn FnMut(Delivery<'_>)) -> Result<(), LinkError> {
        // Application data that came with the last flight, for after `Secured`.
        let mut plain = Vec::new();
        loop {
            let Phase::Handshake(hs) = &mut self.phase else {
                return Err(LinkError::Closed);
            };
            let Handshake { conn, incoming, .. } = &mut **hs;
            let result = match conn {
                Conn::Client(c) => step(c.process_tls_records(incoming), &mut self.out, &mut plain),
                Conn::Server(c) => step(c.process_tls_records(incoming), &mut self.out, &mut plain),
            };
            let (discard, step) = match result {
                Ok(r) => r,
                Err(e) => {
                    self.phase = Phase::Closed;
                    return Err(e);
                }
            };
            incoming.drain(..discard);
            match step {
                Step::Continue => {}
                Step::NeedInput => return Ok(()),
                Step::PeerClosed => {
                    self.phase = Phase::Closed;
                    return Err(LinkError::PeerClosed);
                }
                Step::Writable => {
                    let handshaking = match conn {
                        Conn::Client(c) => c.is_handshaking(),
                        Conn::Server(c) => c.is_handshaking(),
                    };
                    if handshaking {
                        return Ok(());
                    }
                    break;
                }
            }
        }
        self.secure()?;
        deliver(Delivery::Secured);
        if !plain.is_empty() {
            deliver(Delivery::Data {
                bytes: &plain,
                auth: &self.facts,
            });
        }
        // A partial record that followed the last flight: finish it with later bytes.
        let mut leftover = match &mut self.phase {
            Phase::Records(r) => std::mem::take(&mut r.staging),
            _ => Vec::new(),
        };
        self.open_records(&mut leftover, deliver)
    }

    /// The handshake is done: takes the keys out of rustls and starts the record phase.
    fn secure(&mut self) -> Result<(), LinkError> {
        let Phase::Handshake(hs) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            return Err(LinkError::Closed);
        };
        let Handshake {
            conn,
            capture,
            incoming,
            ..
        } = *hs;
        let (secrets, kernel, version) = match conn {
            Conn::Client(c) => {
                let (s, k) = c
                    .dangerous_into_kernel_connection()
                    .map_err(LinkError::Tls)?;
                let v = k.protocol_version();
                (s, Kernel::Client(k), v)
            }
            Conn::Server(c) => {
                let (s, k) = c
                    .dangerous_into_kernel_connection()
                    .map_err(LinkError::Tls)?;
                let v = k.protocol_version();
                (s, Kernel::Server(k), v)
            }
        };
        let framing = match (version, &secrets.tx.1) {
            (ProtocolVersion::TLSv1_3, _) => Framing::Tls13,
            (_, ConnectionTrafficSecrets::Chacha20Poly1305 { .. }) => Framing::Tls12Chacha,
            _ => Framing::Tls12Gcm,
        };
        self.facts.peer_cert_sha256 = capture.peer_cert_sha256();
        self.facts.exporter = capture.take_exporter();
        let tls13 = framing == Framing::Tls13;
        // kTLS TX only where the kernel counts nonces as we do; RX for every suite (see
        // `crate::sys::ktls`).
        let ktls_tx_ok = self.ktls_wanted && framing != Framing::Tls12Gcm;
        let tx = Direction::new(framing, secrets.tx.0, &secrets.tx.1)?;
        let rx = Direction::new(framing, secrets.rx.0, &secrets.rx.1)?;
        self.phase = Phase::Records(Box::new(Records {
            rx,
            tx,
            kernel,
            tx_secrets: ktls_tx_ok.then_some(secrets.tx.1),
            tx_kernel: false,
            rx_secrets: self.ktls_wanted.then_some(secrets.rx.1),
            rx_kernel: false,
            tls13,
            staging: incoming,
        }));
        Ok(())
    }

    /// Opens the records in `received`: a staged record first, then every whole record in
    /// place; keeps a trailing partial record.
    fn open_records(
        &mut self,
        received: &mut [u8],
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) -> Result<(), LinkError> {
        let result = self.open_records_inner(received, deliver);
        if result.is_err() {
            self.phase = Phase::Closed;
        }
        result
    }

    fn open_records_inner(
        &mut self,
        received: &mut [u8],
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) -> Result<(), LinkError> {
        let TlsLink {
            facts,
            phase,
            out,
            stats,
            ..
        } = self;
        let Phase::Records(r) = phase else {
            return Err(LinkError::Closed);
        };
        if r.rx_kernel {
            // The kernel opened the records (kTLS RX): this is application data.
            deliver(Delivery::Data {
                bytes: received,
                auth: facts,
            });
            return Ok(());
        }
        let mut rest = received;
        if !r.staging.is_empty() {
            let (taken, whole) = fill_staging(&mut r.staging, rest)?;
            rest = &mut rest[taken..];
            if !whole {
                return Ok(());
            }
            stats.records_staged += 1;
            let mut staged = std::mem::take(&mut r.staging);
            let res = handle_record(r, &mut staged, facts, out, stats, deliver);
            staged.clear();
            r.staging = staged;
            res?;
        }
        while let Some(len) = record_len(rest)? {
            if len > rest.len() {
                break;
            }
            let (record, tail) = std::mem::take(&mut rest).split_at_mut(len);
            handle_record(r, record, facts, out, stats, deliver)?;
            rest = tail;
        }
        r.staging.extend_from_slice(rest);
        Ok(())
    }

    /// The buffer the next cell goes into: the send buffer after an open record's header
    /// (a new record is opened when the next cell might not fit), or, before the handshake
    /// is done, the link's own early buffer.
    #[inline]
    pub(crate) fn cell_buf<'a>(&'a mut self, send: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        self.cell_buf_room(send).0
    }

    /// [`TlsLink::cell_buf`], with how many cells fit in the open record (at least one;
    /// `u32::MAX` where no record bounds them: before the handshake, or under kTLS). Writing
    /// no more than that keeps every record within 16 KiB, sealed where it lies.
    #[inline]
    pub(crate) fn cell_buf_room<'a>(&'a mut self, send: &'a mut Vec<u8>) -> (&'a mut Vec<u8>, u32) {
        let prefix = match &self.phase {
            Phase::Records(r) if r.tx_kernel => return (send, u32::MAX),
            Phase::Records(r) => HEADER_LEN + r.tx.framing().explicit_len(),
            _ => return (&mut self.early, u32::MAX),
        };
        let start = match self.open_record {
            Some(start) if send.len() - start <= MAX_PLAINTEXT - CELL_LEN => start,
            Some(_) => {
                if let Err(e) = self.seal_open(send) {
                    self.deferred.get_or_insert(e);
                }
                self.start_record(send)
            }
            None => self.start_record(send),
        };
        let room = (start + prefix + MAX_PLAINTEXT - send.len()) / CELL_LEN;
        (send, room as u32)
    }

    /// Opens a record at the end of `send` (after handshake bytes waiting to go); returns
    /// where it starts. Only called in the records phase.
    fn start_record(&mut self, send: &mut Vec<u8>) -> usize {
        if !self.out.is_empty() {
            self.write_out(send);
        }
        let start = send.len();
        if let Phase::Records(r) = &self.phase {
            send.resize(start + HEADER_LEN + r.tx.framing().explicit_len(), 0);
            self.open_record = Some(start);
        }
        start
    }

    /// Whether [`TlsLink::seal`] has work.
    pub(crate) fn has_staged(&self) -> bool {
        self.open_record.is_some() || (!self.early.is_empty() && self.is_open())
    }

    /// Records sealed by the kernel (kTLS TX)?
    pub(crate) fn tx_in_kernel(&self) -> bool {
        matches!(&self.phase, Phase::Records(r) if r.tx_kernel)
    }

    /// Seals the open record (and plaintext written before the handshake was done).
    pub(crate) fn seal(&mut self, send: &mut Vec<u8>) -> Result<(), LinkError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if !self.is_open() {
            return Ok(());
        }
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            for chunk in early.chunks(MAX_PLAINTEXT - CELL_LEN) {
                self.cell_buf(send).extend_from_slice(chunk);
            }
        }
        self.seal_open(send)
    }

    fn seal_open(&mut self, send: &mut Vec<u8>) -> Result<(), LinkError> {
        let Some(start) = self.open_record.take() else {
            return Ok(());
        };
        self.seal_at(send, start)
    }

    /// Seals the record that starts at `start` in `send` (splitting it if it overfilled).
    fn seal_at(&mut self, send: &mut Vec<u8>, start: usize) -> Result<(), LinkError> {
        let Phase::Records(r) = &mut self.phase else {
            return Err(LinkError::Closed);
        };
        let prefix = HEADER_LEN + r.tx.framing().explicit_len();
        let plain = send.len().saturating_sub(start + prefix);
        if plain == 0 {
            send.truncate(start);
            return Ok(());
        }
        if r.tx.seq() >= KEY_LIMIT {
            // Renew our keys before AES-GCM's confidentiality limit (RFC 8446 5.5); TLS 1.2
            // cannot, so such a link ends (as rustls' own record layer would end it).
            if !r.tls13 {
                return Err(LinkError::SequenceExhausted);
            }
            let tail = send.split_off(start);
            key_update(r, send)?;
            let s = send.len();
            send.extend_from_slice(&tail);
            return self.seal_at(send, s);
        }
        if plain <= MAX_PLAINTEXT {
            self.stats.records_out += 1;
            return r.tx.seal(send, start, ContentType::APPLICATION_DATA);
        }
        // Rare: one write of many control cells overfilled the record; split it.
        self.stats.records_split += 1;
        let tail = send.split_off(start + prefix + MAX_PLAINTEXT);
        r.tx.seal(send, start, ContentType::APPLICATION_DATA)?;
        self.stats.records_out += 1;
        for chunk in tail.chunks(MAX_PLAINTEXT) {
            let s = send.len();
            send.resize(s + prefix, 0);
            send.extend_from_slice(chunk);
            r.tx.seal(send, s, ContentType::APPLICATION_DATA)?;
            self.stats.records_out += 1;
        }
        Ok(())
    }
}

/// Handles one rustls state; returns how many input bytes it consumed and what next.
fn step<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    out: &mut Vec<u8>,
    plain: &mut Vec<u8>,
) -> Result<(usize, Step), LinkError> {
    let UnbufferedStatus { mut discard, state } = status;
    let step = match state.map_err(LinkError::Tls)? {
        ConnectionState::EncodeTlsData(mut e) => {
            let start = out.len();
            let mut room = 4096;
            loop {
                out.resize(start + room, 0);
                match e.encode(&mut out[start..]) {
                    Ok(n) => {
                        out.truncate(start + n);
                        break;
                    }
                    Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                        room = required_size;
                    }
                    Err(_) => {
                        out.truncate(start);
                        return Err(LinkError::Encode);
                    }
                }
            }
            Step::Continue
        }
        // The flights go out with the worker's next submit.
        ConnectionState::TransmitTlsData(t) => {
            t.done();
            Step::Continue
        }
        ConnectionState::BlockedHandshake => Step::NeedInput,
        ConnectionState::ReadTraffic(mut r) => {
            while let Some(rec) = r.next_record() {
                let rec = rec.map_err(LinkError::Tls)?;
                discard += rec.discard;
                plain.extend_from_slice(rec.payload);
            }
            Step::Continue
        }
        ConnectionState::WriteTraffic(_) => Step::Writable,
        ConnectionState::PeerClosed | ConnectionState::Closed => Step::PeerClosed,
        _ => return Err(LinkError::EarlyData),
    };
    Ok((discard, step))
}

/// Names what a responder got instead of a ClientHello, before rustls would wait for more
/// or reject it: a plaintext Tor cell (VERSIONS: circuit id 0, command 7) or anything that
/// is not a handshake (22) or alert (21) record of TLS (major version 3).
fn check_first_record(first: &[u8]) -> Result<(), LinkError> {
    if first.starts_with(&[0, 0, 7]) {
        return Err(LinkError::PlaintextCell);
    }
    let typ = first.first().copied().unwrap_or(22);
    let major = first.get(1).copied().unwrap_or(3);
    if (typ == 21 || typ == 22) && major == 3 {
        Ok(())
    } else {
        Err(LinkError::NotTls(typ))
    }
}

/// Moves bytes from `rest` into `staging` until it holds one whole record; returns how many
/// it took and whether the record is whole.
fn fill_staging(staging: &mut Vec<u8>, rest: &[u8]) -> Result<(usize, bool), LinkError> {
    let mut taken = 0;
    if staging.len() < HEADER_LEN {
        let n = (HEADER_LEN - staging.len()).min(rest.len());
        staging.extend_from_slice(&rest[..n]);
        taken = n;
    }
    let Some(len) = record_len(staging)? else {
        return Ok((taken, false));
    };
    let n = (len - staging.len()).min(rest.len() - taken);
    staging.extend_from_slice(&rest[taken..taken + n]);
    Ok((taken + n, staging.len() == len))
}

/// Opens one whole record and acts on its content.
fn handle_record(
    r: &mut Records,
    record: &mut [u8],
    facts: &Facts,
    out: &mut Vec<u8>,
    stats: &mut RecordStats,
    deliver: &mut dyn FnMut(Delivery<'_>),
) -> Result<(), LinkError> {
    let (typ, range) = r.rx.open(record)?;
    stats.records_in += 1;
    let plain = &record[range];
    match typ {
        ContentType::APPLICATION_DATA if !plain.is_empty() => deliver(Delivery::Data {
            bytes: plain,
            auth: facts,
        }),
        ContentType::APPLICATION_DATA => {}
        ContentType::HANDSHAKE => post_handshake(r, plain, out)?,
        ContentType::ALERT => alert(plain)?,
        other => return Err(LinkError::UnexpectedRecord(other.0)),
    }
    Ok(())
}

/// Handshake messages after the handshake (RFC 8446 4.6): NewSessionTicket (ignored: no
/// resumption, tor-spec 2.2), KeyUpdate (new receive keys; a requested update of ours is
/// answered). TLS 1.2's HelloRequest is ignored (no renegotiation). Each message must be
/// whole in its record.
fn post_handshake(r: &mut Records, mut msgs: &[u8], out: &mut Vec<u8>) -> Result<(), LinkError> {
    const HELLO_REQUEST: u8 = 0;
    const NEW_SESSION_TICKET: u8 = 4;
    const KEY_UPDATE: u8 = 24;
    while let Some((&[typ, a, b, c], rest)) = msgs.split_first_chunk::<4>() {
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        let body = rest.get(..len).ok_or(LinkError::FragmentedHandshake)?;
        msgs = &rest[len..];
        let tls13 = r.rx.framing() == Framing::Tls13;
        match (typ, tls13) {
            (NEW_SESSION_TICKET, true) => {}
            (HELLO_REQUEST, false) => {}
            (KEY_UPDATE, true) => {
                let [request] = body else {
                    return Err(LinkError::BadKeyUpdate);
                };
                if r.rx_kernel {
                    return Err(LinkError::KeyUpdateOnKtlsRx);
                }
                let (seq, secrets) = r.kernel.update_rx().map_err(LinkError::Tls)?;
                r.rx = Direction::new(Framing::Tls13, seq, &secrets)?;
                match request {
                    0 => {}
                    1 => key_update(r, out)?,
                    _ => return Err(LinkError::BadKeyUpdate),
                }
            }
            _ => return Err(LinkError::UnexpectedHandshake(typ)),
        }
    }
    if msgs.is_empty() {
        Ok(())
    } else {
        Err(LinkError::FragmentedHandshake)
    }
}

/// Sends KeyUpdate(update_not_requested) under the current keys, then moves to new ones.
fn key_update(r: &mut Records, out: &mut Vec<u8>) -> Result<(), LinkError> {
    if r.tx_kernel {
        return Err(LinkError::KeyUpdateOnKtls);
    }
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    out.extend_from_slice(&[24, 0, 0, 1, 0]);
    r.tx.seal(out, start, ContentType::HANDSHAKE)?;
    let (seq, secrets) = r.kernel.update_tx().map_err(LinkError::Tls)?;
    r.tx = Direction::new(Framing::Tls13, seq, &secrets)?;
    Ok(())
}

/// An alert: close_notify ends the link, user_canceled is ignored, anything else fails it.
fn alert(body: &[u8]) -> Result<(), LinkError> {
    match body {
        [_, 0] => Err(LinkError::PeerClosed),
        [_, 90] => Ok(()),
        [_, desc] => Err(LinkError::Alert(*desc)),
        _ => Err(LinkError::BadRecord),
    }
}
