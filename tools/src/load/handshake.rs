//! Everything the load side does before data flows: the pump's links and circuits (blocking,
//! one reply awaited at a time) and the sink's answers (inside its event loop: the link
//! handshake as responder, CREATE2 with ntor, the start cell that names a circuit's
//! direction).
//!
//! ```text
//!   pump                                   relay                         sink
//!   VERSIONS NETINFO ------------------------>
//!   <------- VERSIONS CERTS AUTH_CHALLENGE NETINFO
//!                                            VERSIONS ------------------->
//!                                            <---- VERSIONS CERTS AUTH_CHALLENGE NETINFO
//!                                            CERTS AUTHENTICATE NETINFO ->
//!   CREATE2(ntor: relay) ------------------->
//!   <------------------------------ CREATED2        (layer 1)
//!   RELAY_EARLY(EXTEND2: sink) -------------> CREATE2(ntor: sink) ------->
//!   <------------------ RELAY(EXTENDED2) <--- CREATED2 <-----------------  (layer 2)
//!   ... every circuit of every link, then (the event loop):
//!   RELAY(DROP "start fwd|bwd", 2 layers) --> 1 layer off --------------->  recognized
//! ```
//!
//! With the forwarder baseline the pump's first hop is the sink itself and there is no
//! EXTEND2.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use kistrel_engine::crypto::ntor::{self, NtorKeypair};
use kistrel_engine::crypto::relay_crypto::{CipherCache, ClientLayer, RelayLayer};
use kistrel_engine::crypto::RelayId;
use kistrel_engine::relay::RelayKeys;
use kistrel_engine::wire::{
    emit_relay_cell, Cell, CellDecoder, ChanCell, ChanCmd, Create2, Created2, Destroy, Extend2,
    Extended2, LinkSpec, RelayCellView, RelayCmd, CELL_BODY_LEN, CELL_LEN, RELAY_DATA_LEN,
};
use rand::RngCore;

use super::window::Direction;
use super::{Fault, LoadError};

/// Longest the pump waits for one handshake reply.
const REPLY_WAIT: Duration = Duration::from_secs(20);

/// A hop's public keys and address, as a directory would list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopKeys {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its identity digest.
    pub id: RelayId,
    /// Its ntor onion key.
    pub ntor: [u8; 32],
}

/// A link the pump opened, during setup (blocking reads, one reply at a time).
#[derive(Debug)]
pub(super) struct PumpLink {
    pub(super) stream: TcpStream,
    decoder: CellDecoder,
    buf: Vec<u8>,
    /// Bytes of `buf` not decoded yet: `buf[at..filled]`.
    at: usize,
    filled: usize,
}

impl PumpLink {
    /// Connects to `addr` and runs the link handshake as initiator: our VERSIONS and
    /// NETINFO, then the responder's VERSIONS, anything else it sends, and its NETINFO.
    pub(super) fn open(addr: SocketAddr) -> Result<PumpLink, LoadError> {
        let stream =
            TcpStream::connect(addr).map_err(LoadError::io(format!("connecting to {addr}")))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(REPLY_WAIT)))
            .map_err(LoadError::io("setting up a pump socket"))?;
        let mut link = PumpLink {
            stream,
            decoder: CellDecoder::new(),
            buf: vec![0; 64 << 10],
            at: 0,
            filled: 0,
        };
        let hello = kistrel_engine::harness::initiator_hello();
        link.stream
            .write_all(&hello)
            .map_err(LoadError::io("sending VERSIONS"))?;
        loop {
            match link.next_cell()? {
                ChanCell::Fixed(c) if c.cmd == ChanCmd::NETINFO => return Ok(link),
                ChanCell::Var(_) => {} // VERSIONS, CERTS, AUTH_CHALLENGE, VPADDING
                ChanCell::Fixed(c) if c.cmd == ChanCmd::PADDING => {}
                ChanCell::Fixed(c) => return Err(Fault::Handshake { cmd: c.cmd.0 }.into()),
            }
        }
    }

    /// The next cell from the peer (blocking, up to [`REPLY_WAIT`]).
    fn next_cell(&mut self) -> Result<ChanCell, LoadError> {
        loop {
            while self.at < self.filled {
                let (used, cell) = self
                    .decoder
                    .decode(&self.buf[self.at..self.filled])
                    .map_err(Fault::Undecodable)?;
                self.at += used;
                if let Some(cell) = cell {
                    return Ok(cell);
                }
            }
            let n = self
                .stream
                .read(&mut self.buf)
                .map_err(LoadError::io("waiting for a handshake reply"))?;
            if n == 0 {
                return Err(Fault::Closed.into());
            }
            (self.at, self.filled) = (0, n);
        }
    }

    /// The next fixed cell on circuit `circ` with command `cmd`; PADDING is skipped, a
    /// DESTROY of `circ` or any other cell fails.
    fn wait_for(&mut self, circ: u32, cmd: ChanCmd) -> Result<Cell, LoadError> {
        loop {
            match self.next_cell()? {
                ChanCell::Fixed(c) if c.circ_id == circ && c.cmd == cmd => return Ok(c),
                ChanCell::Fixed(c) if c.cmd == ChanCmd::PADDING => {}
                ChanCell::Fixed(c) if c.cmd == ChanCmd::DESTROY => {
                    let reason = Destroy::parse(&c.body).map_or(0, |d| d.reason.0);
                    return Err(Fault::Destroyed {
                        circ: c.circ_id,
                        reason,
                    }
                    .into());
                }
                ChanCell::Fixed(c) => {
                    return Err(Fault::UnknownCircuit {
                        circ: c.circ_id,
                        cmd: c.cmd.0,
                    }
                    .into())
                }
                ChanCell::Var(v) => {
                    return Err(Fault::VarCellAfterHandshake { cmd: v.cmd.0 }.into())
                }
            }
        }
    }

    fn send(&mut self, cell: &Cell) -> Result<(), LoadError> {
        let mut bytes = Vec::with_capacity(CELL_LEN);
        cell.append_to(&mut bytes);
        self.stream
            .write_all(&bytes)
            .map_err(LoadError::io("sending a circuit handshake"))
    }

    /// Builds circuit `circ` through `first` (CREATE2) and, if given, on to `second`
    /// (EXTEND2 in a RELAY_EARLY cell). Returns the client layers, first hop first.
    pub(super) fn build(
        &mut self,
        circ: u32,
        first: &HopKeys,
        second: Option<&HopKeys>,
        rng: &mut impl RngCore,
    ) -> Result<Vec<ClientLayer>, LoadError> {
        let failed = || LoadError::from(Fault::CircuitHandshake { circ });
        let (client, hdata) = ntor::client_create(rng, &first.id, &first.ntor);
        let mut cell = Cell::new(circ, ChanCmd::CREATE2);
        Create2 {
            htype: ntor::HTYPE,
            hdata: &hdata,
        }
        .emit(&mut cell.body)
        .map_err(|_| failed())?;
        self.send(&cell)?;
        let reply = self.wait_for(circ, ChanCmd::CREATED2)?;
        let created = Created2::parse(&reply.body).map_err(|_| failed())?;
        let keys = client.finish(created.hdata).map_err(|_| failed())?;
        let mut layers = vec![ClientLayer::new(&keys)];
        let Some(hop) = second else {
            return Ok(layers);
        };
        let (client, hdata) = ntor::client_create(rng, &hop.id, &hop.ntor);
        let addr = match hop.addr {
            SocketAddr::V4(a) => LinkSpec::Ipv4(a),
            SocketAddr::V6(a) => LinkSpec::Ipv6(a),
        };
        let mut data = [0u8; RELAY_DATA_LEN];
        let n = Extend2 {
            link_specs: vec![addr, LinkSpec::LegacyId(hop.id)],
            htype: ntor::HTYPE,
            hdata: &hdata,
        }
        .emit(&mut data)
        .map_err(|_| failed())?;
        let mut cell = Cell::new(circ, ChanCmd::RELAY_EARLY);
        emit_relay_cell(&mut cell.body, RelayCmd::EXTEND2, None, &data[..n], rng)
            .map_err(|_| failed())?;
        layers[0].originate_forward(&mut cell.body);
        self.send(&cell)?;
        let mut reply = self.wait_for(circ, ChanCmd::RELAY)?;
        if !layers[0].decrypt_backward(&mut reply.body) {
            return Err(failed());
        }
        let view = RelayCellView::new_checked(&reply.body[..]).map_err(|_| failed())?;
        if view.cmd() != RelayCmd::EXTENDED2 {
            return Err(failed());
        }
        let ext = Extended2::parse(view.data()).map_err(|_| failed())?;
        let keys = client.finish(ext.hdata).map_err(|_| failed())?;
        layers.push(ClientLayer::new(&keys));
        Ok(layers)
    }

    /// Ends setup: the stream, which the event loop takes over. Fails if the peer sent
    /// anything not read yet (nothing may arrive before the start cells go out).
    pub(super) fn into_stream(self) -> Result<TcpStream, LoadError> {
        if self.at < self.filled || self.decoder.buffered_len() > 0 {
            return Err(Fault::Handshake { cmd: 0 }.into());
        }
        self.stream
            .set_read_timeout(None)
            .map_err(LoadError::io("ending pump setup"))?;
        Ok(self.stream)
    }
}

/// The start cell of circuit `circ`: a DROP naming `dir`, encrypted for the last layer (with
/// its digest) and then for each earlier one, as the whole cell (header and body).
pub(super) fn start_cell(
    circ: u32,
    layers: &mut [ClientLayer],
    dir: Direction,
    rng: &mut impl RngCore,
) -> Result<[u8; CELL_LEN], LoadError> {
    let mut cell = Cell::new(circ, ChanCmd::RELAY);
    emit_relay_cell(&mut cell.body, RelayCmd::DROP, None, dir.marker(), rng)
        .map_err(|_| Fault::StartCell { circ })?;
    if let Some((last, earlier)) = layers.split_last_mut() {
        last.originate_forward(&mut cell.body);
        for layer in earlier.iter_mut().rev() {
            layer.encrypt_forward(&mut cell.body);
        }
    }
    let mut out = [0u8; CELL_LEN];
    cell.emit(&mut out);
    Ok(out)
}

/// The sink's identity: what it proves in the link handshake (the relay under test checks
/// the identity its EXTEND2 named) and answers CREATE2 with.
#[derive(Debug)]
pub(super) struct SinkKeys {
    pub(super) id: RelayId,
    pub(super) ntor: NtorKeypair,
    /// The responder's first flight for every link: VERSIONS, CERTS, AUTH_CHALLENGE and
    /// NETINFO, made once by a real relay with these keys (plain links: no TLS certificate).
    hello: Vec<u8>,
}

impl SinkKeys {
    /// Fresh identities (RSA and Ed25519, certificates valid from now) and ntor key.
    pub(super) fn generate(rng: &mut impl RngCore) -> Result<SinkKeys, LoadError> {
        let now = SystemTime::now();
        let keys = RelayKeys::generate(rng, now)?;
        let hello = kistrel_engine::harness::responder_hello(&keys, now, None);
        Ok(SinkKeys {
            id: keys.identity.rsa_id(),
            ntor: keys.ntor,
            hello,
        })
    }

    /// Answers the CREATE2 `body` of circuit `circ`: appends CREATED2 to `out`, returns the
    /// circuit's layer.
    pub(super) fn answer_create2(
        &self,
        circ: u32,
        body: &[u8; CELL_BODY_LEN],
        rng: &mut impl RngCore,
        out: &mut Vec<u8>,
    ) -> Result<RelayLayer, LoadError> {
        let failed = || LoadError::from(Fault::CircuitHandshake { circ });
        let create = Create2::parse(body).map_err(|_| failed())?;
        let (hdata, keys) =
            ntor::server_respond(rng, &self.id, &self.ntor, create.hdata).map_err(|_| failed())?;
        let mut reply = Cell::new(circ, ChanCmd::CREATED2);
        Created2 { hdata: &hdata }
            .emit(&mut reply.body)
            .map_err(|_| failed())?;
        reply.append_to(out);
        Ok(RelayLayer::new(&keys))
    }
}

/// The direction a start cell names, after removing the sink's layer (digest checked).
pub(super) fn read_start_cell(
    layer: &mut RelayLayer,
    circ: u32,
    body: &[u8; CELL_BODY_LEN],
) -> Result<Direction, LoadError> {
    let mut body = *body;
    let bad = || LoadError::from(Fault::StartCell { circ });
    // Once per circuit, at setup: the layer's cipher is expanded for this one cell.
    let mut ciphers = CipherCache::new();
    if !layer.decrypt_forward(&mut ciphers, &mut body) {
        return Err(bad());
    }
    let view = RelayCellView::new_checked(&body[..]).map_err(|_| bad())?;
    if view.cmd() != RelayCmd::DROP {
        return Err(bad());
    }
    Direction::from_marker(view.data()).ok_or_else(bad)
}

/// The sink's side of a link handshake (it is always the responder): VERSIONS in, our first
/// flight ([`SinkKeys`]) out, then the peer's NETINFO opens the link (its CERTS and
/// AUTHENTICATE are not checked: the sink trusts the relay it measures).
#[derive(Debug, Default)]
pub(super) struct Responder {
    decoder: CellDecoder,
    answered: bool,
}

impl Responder {
    /// Decodes handshake cells from `bytes`, appending replies to `out`. Returns how many
    /// bytes were used and whether the link is open (the rest of `bytes` are fixed cells).
    pub(super) fn feed(
        &mut self,
        bytes: &[u8],
        keys: &SinkKeys,
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool), LoadError> {
        let mut used = 0;
        while used < bytes.len() {
            let (n, cell) = self
                .decoder
                .decode(&bytes[used..])
                .map_err(Fault::Undecodable)?;
            used += n;
            match cell {
                None => break,
                Some(ChanCell::Var(v)) if v.cmd == ChanCmd::VERSIONS && !self.answered => {
                    self.answered = true;
                    out.extend_from_slice(&keys.hello);
                }
                Some(ChanCell::Fixed(c)) if c.cmd == ChanCmd::NETINFO && self.answered => {
                    return Ok((used, true));
                }
                Some(ChanCell::Fixed(c)) if c.cmd == ChanCmd::PADDING => {}
                Some(ChanCell::Var(v)) if v.cmd != ChanCmd::VERSIONS => {}
                Some(other) => return Err(Fault::Handshake { cmd: other.cmd().0 }.into()),
            }
        }
        Ok((used, false))
    }
}
