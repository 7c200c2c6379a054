//! The first bytes of a channel, for raw peers in tests and tools: what a client initiator
//! sends, and what a kistrel relay answers (made by a real [`Relay`], so it is exactly the
//! production handshake).

use std::time::SystemTime;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::relay::{LinkAuth, Relay, RelayConfig, RelayKeys};
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
