//! The first bytes of a channel, for raw peers in tests and tools: what a client initiator
//! sends, what a kistrel relay answers, and a relay initiator's whole side of the handshake
//! (all made by a real [`Relay`], so they are exactly the production handshake).

use std::time::SystemTime;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::client::HopSpec;
use crate::relay::{ApiError, ChanId, Event, LinkAuth, Relay, RelayConfig, RelayKeys};
use crate::time::Instant;
use crate::wire::{Cell, ChanCmd, Netinfo, Versions};

/// The link handshake a client initiator sends: VERSIONS (4 and 5, 2-byte circuit id) then
/// NETINFO (time 0, no addresses, as C Tor's clients send).
pub fn initiator_hello() -> Vec<u8> {
    let mut hello = Vec::new();
    Versions {
        versions: vec![4, 5],
    }
    .to_var_cell()
    .append_to(&mut hello, 2);
    let mut netinfo = Cell::new(0, ChanCmd::NETINFO);
    let empty = Netinfo {
        time: 0,
        other_addr: None,
        my_addrs: Vec::new(),
    };
    // An empty NETINFO always fits a cell body.
    let _ = empty.emit(&mut netinfo.body);
    netinfo.append_to(&mut hello);
    hello
}

/// What a relay with `keys` answers an initiator's VERSIONS with at wall time `wall`:
/// VERSIONS, CERTS (types 2, 7, 4, 5), AUTH_CHALLENGE and NETINFO; the type-5 certificate
/// certifies `tls_cert_sha256`, the digest of the TLS certificate the responder presents
/// (`None`: a plain link). For raw responders in tests (a fake next hop that must prove an
/// identity).
pub fn responder_hello(
    keys: &RelayKeys,
    wall: SystemTime,
    tls_cert_sha256: Option<[u8; 32]>,
) -> Vec<u8> {
    let cfg = RelayConfig {
        keys: Some(keys.clone()),
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(cfg, ChaCha12Rng::seed_from_u64(0));
    relay.set_wall_clock(wall);
    let chan = relay.accept_channel(Instant::ZERO, ([0, 0, 0, 0], 0).into());
    let hello = initiator_hello();
    let versions = &hello[..hello.len() - crate::wire::CELL_LEN];
    let tls = ResponderTls(tls_cert_sha256);
    relay.handle_recv(Instant::ZERO, chan, versions, &tls);
    let mut out = Vec::new();
    relay.take_ctrl(chan, &mut out);
    out
}

/// A responder's TLS layer as far as its first flight needs it: its own certificate.
struct ResponderTls(Option<[u8; 32]>);

impl LinkAuth for ResponderTls {
    fn peer_cert_sha256(&self) -> Option<[u8; 32]> {
        None
    }

    fn own_cert_sha256(&self) -> Option<[u8; 32]> {
        self.0
    }

    fn export_keying_material(&self, _label: &[u8], _context: &[u8]) -> Option<[u8; 32]> {
        None
    }
}

/// A relay's initiator side of one link, for raw peers in tests (an initiator that must
/// authenticate): a real [`Relay`] with its own keys that opens one channel to `target`
/// and answers the responder's first flight as production code does, with CERTS (types 2,
/// 7, 4, 6), AUTHENTICATE and NETINFO. The test carries the bytes (over TLS) and may tamper
/// with them.
#[derive(Debug)]
pub struct RelayInitiator {
    relay: Relay,
    chan: ChanId,
}

impl RelayInitiator {
    /// An initiator with `keys` at wall time `wall`, opening a channel to the relay
    /// `target` (whose CERTS must prove `target.id` and `target.ed_id`). Returns it and its
    /// first bytes (VERSIONS).
    pub fn connect(
        keys: &RelayKeys,
        wall: SystemTime,
        target: HopSpec,
    ) -> Result<(Self, Vec<u8>), ApiError> {
        let cfg = RelayConfig {
            keys: Some(keys.clone()),
            ..RelayConfig::default()
        };
        let mut relay = Relay::new(cfg, ChaCha12Rng::seed_from_u64(1));
        relay.set_wall_clock(wall);
        // A one-hop circuit is what makes a relay open a channel; its CREATE2 waits for
        // the channel to open and is never sent by [`RelayInitiator::answer`].
        relay.build_circuit(Instant::ZERO, vec![target])?;
        let chan = loop {
            match relay.poll_event() {
                Some(Event::OpenChannel { chan, .. }) => break chan,
                Some(_) => {}
                // A relay without channels opens one for its first circuit: a harness bug.
                None => panic!("the initiator's circuit opened no channel"),
            }
        };
        relay.handle_channel_connected(Instant::ZERO, chan);
        let mut hello = Vec::new();
        relay.take_ctrl(chan, &mut hello);
        Ok((RelayInitiator { relay, chan }, hello))
    }

    /// Feeds bytes from the responder (as the TLS layer `tls` delivered them) and returns
    /// the link-handshake cells the initiator sends in answer (possibly none yet).
    pub fn answer(&mut self, received: &[u8], tls: &dyn LinkAuth) -> Vec<u8> {
        self.relay
            .handle_recv(Instant::ZERO, self.chan, received, tls);
        let mut out = Vec::new();
        self.relay.take_ctrl(self.chan, &mut out);
        out
    }

    /// Why the initiator closed the channel, if it did (the responder's CERTS did not
    /// prove the target, ...).
    pub fn rejection(&self) -> Option<crate::relay::Rejection> {
        self.relay.last_rejection()
    }

    /// Whether the channel finished its handshake (the responder's NETINFO arrived).
    pub fn is_open(&self) -> bool {
        self.relay.channel_is_open(self.chan)
    }
}
