//! The link handshake in the harness (virtual time, simulated TLS): relays and clients
//! authenticate as tor-spec 4 says, and every certificate or AUTHENTICATE fault closes its
//! channel with the right error while a transfer on another channel goes on intact.

use std::cell::Cell as StdCell;
use std::rc::Rc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::client::CircuitFailure;
use crate::crypto::identity::{CertError, Lifetimes};
use crate::harness::{
    epoch, initiator_hello, relay_keys, relay_keys_at, transmit, App, LinkModel, Net,
    RelayInitiator, Tamper, TargetKind, TlsLie, TARGET,
};
use crate::relay::{
    ChanId, Event, LinkError, PeerIds, PlainLinkAuth, Rejection, Relay, RelayConfig, StreamHandle,
};
use crate::time::Instant;
use crate::wire::{Cell, CellDecoder, CertType, Certs, ChanCell, ChanCmd, DestroyReason, VarCell};

const MIB: u64 = 1 << 20;
/// The relay the failing channels go to; 1-2-3 carry the background transfer.
const TARGET_RELAY: usize = 4;

/// Client 0, relays 1-2-3 (3 an exit), relay 4; a 4 MiB echo transfer on 1-2-3 under way.
fn scene(seed: u64) -> (Net, StreamHandle) {
    scene_with(seed, |net| net.add_relay(false))
}

fn scene_with(seed: u64, add_fourth: impl FnOnce(&mut Net) -> usize) -> (Net, StreamHandle) {
    let mut net = Net::three_hop(seed, LinkModel::default(), 3, TargetKind::Echo);
    assert_eq!(add_fourth(&mut net), TARGET_RELAY);
    let circ = net.build(0, &[1, 2, 3]);
    net.run_until(10_000, |n| n.is_built(0, circ));
    let stream = net.open_stream(0, circ, TARGET, App::client(1, 4 * MIB, 4 * MIB));
    (net, stream)
}

/// Runs until node `at` rejected a channel; returns the error. The background transfer
/// must still be under way then, and must finish intact afterwards.
fn rejection(net: &mut Net, at: usize, stream: StreamHandle) -> LinkError {
    net.run_until(200_000, |n| n.nodes[at].relay.last_rejection().is_some());
    let err = match net.nodes[at].relay.last_rejection() {
        Some(Rejection::Channel(e)) => e,
        other => panic!("node {at}: expected a channel rejection, got {other:?}"),
    };
    assert!(
        net.apps[&(0, stream)].received < 4 * MIB,
        "the failure must happen during the transfer"
    );
    net.run_until(2_000_000, |n| n.apps[&(0, stream)].done());
    let app = &net.apps[&(0, stream)];
    assert_eq!(app.received, 4 * MIB);
    assert_eq!(app.sent_digest(), app.recv_digest());
    err
}

fn peer_ids(net: &Net, i: usize) -> PeerIds {
    PeerIds {
        rsa_id: net.nodes[i].id,
        ed_id: net.nodes[i].ed_id,
    }
}

#[test]
fn relays_authenticate_each_other_and_clients_stay_anonymous() {
    for plain in [false, true] {
        let mut net = Net::three_hop(1, LinkModel::default(), 3, TargetKind::Echo);
        net.set_plain_links(plain);
        let circ = net.build(0, &[1, 2, 3]);
        net.run_until(10_000, |n| n.is_built(0, circ));
        let (c01, c10) = (
            net.channel_between(0, 1).unwrap(),
            net.channel_between(1, 0).unwrap(),
        );
        let (c12, c21) = (
            net.channel_between(1, 2).unwrap(),
            net.channel_between(2, 1).unwrap(),
        );
        // The client knows its guard; the guard knows nothing of the client.
        assert_eq!(
            net.nodes[0].relay.channel_peer(c01),
            Some(peer_ids(&net, 1))
        );
        assert_eq!(net.nodes[1].relay.channel_peer(c10), None);
        assert!(net.nodes[1].relay.channel_is_open(c10));
        // Relay to relay: both ends proved who they are (CERTS + AUTHENTICATE).
        assert_eq!(
            net.nodes[1].relay.channel_peer(c12),
            Some(peer_ids(&net, 2))
        );
        assert_eq!(
            net.nodes[2].relay.channel_peer(c21),
            Some(peer_ids(&net, 1))
        );
        for i in 0..4 {
            assert_eq!(
                net.nodes[i].relay.last_rejection(),
                None,
                "plain={plain} node {i}"
            );
            assert_eq!(net.nodes[i].relay.stats().clock_skew_warnings, 0);
        }
    }
}

#[test]
fn wrong_rsa_identity_closes_the_channel() {
    let (mut net, stream) = scene(2);
    let mut hop = net.hop(TARGET_RELAY);
    hop.id = [0xAB; 20];
    let circ = net.nodes[0]
        .relay
        .build_circuit(net.now, vec![hop])
        .unwrap();
    let err = rejection(&mut net, 0, stream);
    assert_eq!(
        err,
        LinkError::wrong_rsa([0xAB; 20], net.nodes[TARGET_RELAY].id)
    );
    assert_eq!(
        err.to_string(),
        format!(
            "wrong RSA identity: expected {}, got {}",
            "AB".repeat(20),
            hex::encode_upper(net.nodes[TARGET_RELAY].id)
        )
    );
    assert_eq!(net.closed_why(0, circ), Some(CircuitFailure::ChannelFailed));
}

#[test]
fn wrong_ed25519_identity_closes_the_channel() {
    let (mut net, stream) = scene(3);
    let mut hop = net.hop(TARGET_RELAY);
    hop.ed_id = net.nodes[2].ed_id;
    let circ = net.nodes[0]
        .relay
        .build_circuit(net.now, vec![hop])
        .unwrap();
    let err = rejection(&mut net, 0, stream);
    assert_eq!(
        err,
        LinkError::wrong_ed(net.nodes[2].ed_id, net.nodes[TARGET_RELAY].ed_id)
    );
    assert_eq!(net.closed_why(0, circ), Some(CircuitFailure::ChannelFailed));
}

#[test]
fn extend2_to_a_relay_with_another_ed25519_identity_answers_or_identity() {
    let (mut net, stream) = scene(4);
    let guard = net.hop(1);
    let mut wrong = net.hop(TARGET_RELAY);
    wrong.ed_id = [0x55; 32];
    let circ = net.nodes[0]
        .relay
        .build_circuit(net.now, vec![guard, wrong])
        .unwrap();
    let err = rejection(&mut net, 1, stream);
    assert_eq!(
        err,
        LinkError::wrong_ed([0x55; 32], net.nodes[TARGET_RELAY].ed_id)
    );
    assert_eq!(
        net.closed_why(0, circ),
        Some(CircuitFailure::Destroyed(DestroyReason::OR_IDENTITY.0))
    );
}

/// Walks the whole cells of each chunk on a pipe (the harness sends whole cells; the first
/// chunk of a responder starts with its 2-byte-id VERSIONS when `versions_first`) and lets
/// `f` rewrite each cell's bytes.
fn rewrite_cells(
    versions_first: bool,
    mut f: impl FnMut(ChanCmd, &mut Vec<u8>) + 'static,
) -> Tamper {
    let first = Rc::new(StdCell::new(versions_first));
    Box::new(move |bytes: &mut Vec<u8>| {
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        while at < bytes.len() {
            let id_len = if first.replace(false) { 2 } else { 4 };
            let cmd = ChanCmd(bytes[at + id_len]);
            let len = if cmd.is_var() {
                let l = &bytes[at + id_len + 1..at + id_len + 3];
                id_len + 3 + usize::from(u16::from_be_bytes([l[0], l[1]]))
            } else {
                514
            };
            let mut cell = bytes[at..at + len].to_vec();
            f(cmd, &mut cell);
            out.extend_from_slice(&cell);
            at += len;
        }
        *bytes = out;
    })
}

/// Rewrites the CERTS cell's certificate of type `ty` with `f(type byte, certificate)`.
fn rewrite_cert(ty: CertType, f: impl Fn(&mut u8, &mut [u8]) + 'static) -> Tamper {
    rewrite_cells(true, move |cmd, cell| {
        if cmd != ChanCmd::CERTS {
            return;
        }
        let payload = cell[7..].to_vec();
        let certs = Certs::parse(&payload).unwrap();
        let body = certs.only(ty).unwrap().unwrap();
        let start = 7 + (body.as_ptr() as usize - payload.as_ptr() as usize);
        let (head, cert) = cell.split_at_mut(start);
        f(&mut head[start - 3], &mut cert[..body.len()]);
    })
}

/// Client -> relay 4 with the responder's bytes rewritten; the client's rejection.
fn client_sees(seed: u64, tamper: Tamper) -> LinkError {
    let (mut net, stream) = scene(seed);
    let hop = net.hop(TARGET_RELAY);
    let circ = net.nodes[0]
        .relay
        .build_circuit(net.now, vec![hop])
        .unwrap();
    net.run_until(10_000, |n| n.channel_between(TARGET_RELAY, 0).is_some());
    assert!(net.tamper(TARGET_RELAY, 0, tamper));
    let err = rejection(&mut net, 0, stream);
    assert_eq!(net.closed_why(0, circ), Some(CircuitFailure::ChannelFailed));
    err
}

#[test]
fn certs_with_a_bad_signature_closes_the_channel() {
    let flip_sig = rewrite_cert(CertType::ED_ID_SIGNING, |_, cert| {
        let last = cert.len() - 1;
        cert[last] ^= 0x01;
    });
    assert_eq!(
        client_sees(5, flip_sig),
        LinkError::Certs(CertError::BadSignature(CertType::ED_ID_SIGNING))
    );
}

#[test]
fn missing_and_duplicate_certificate_types_close_the_channel() {
    let to_dup = rewrite_cert(CertType::ED_SIGNING_LINK, |ty, _| *ty = 4);
    assert_eq!(
        client_sees(6, to_dup),
        LinkError::Certs(CertError::Duplicate(CertType::ED_ID_SIGNING))
    );
    let to_unknown = rewrite_cert(CertType::ED_SIGNING_LINK, |ty, _| *ty = 9);
    assert_eq!(
        client_sees(7, to_unknown),
        LinkError::Certs(CertError::Missing(CertType::ED_SIGNING_LINK))
    );
}

#[test]
fn an_expired_certificate_closes_the_channel() {
    // Made 40 days before the network's epoch: the 30-day signing certificate has expired.
    let made = epoch() - Duration::from_secs(40 * 86_400);
    let (mut net, stream) = scene_with(8, |net| {
        net.add_relay_with_keys(relay_keys_at(808, made, &Lifetimes::default()))
    });
    let hop = net.hop(TARGET_RELAY);
    net.nodes[0]
        .relay
        .build_circuit(net.now, vec![hop])
        .unwrap();
    assert_eq!(
        rejection(&mut net, 0, stream),
        LinkError::Certs(CertError::Expired(CertType::ED_ID_SIGNING))
    );
}

#[test]
fn the_tls_certificate_must_be_the_one_certs_certifies() {
    let (mut net, stream) = scene(9);
    net.set_tls_lie(0, TlsLie::PeerCert);
    let hop = net.hop(TARGET_RELAY);
    net.nodes[0]
        .relay
        .build_circuit(net.now, vec![hop])
        .unwrap();
    assert_eq!(
        rejection(&mut net, 0, stream),
        LinkError::Certs(CertError::TlsCertMismatch)
    );
}

/// Guard 1 extends to relay 4 (a relay-to-relay channel, so 1 authenticates) with
/// `setup` applied; returns relay `at`'s rejection and the client's circuit outcome.
fn extend_to_4(
    seed: u64,
    at: usize,
    setup: impl FnOnce(&mut Net),
) -> (LinkError, Option<CircuitFailure>) {
    let (mut net, stream) = scene(seed);
    let path = vec![net.hop(1), net.hop(TARGET_RELAY)];
    let circ = net.nodes[0].relay.build_circuit(net.now, path).unwrap();
    net.run_until(10_000, |n| n.channel_between(1, TARGET_RELAY).is_some());
    setup(&mut net);
    let err = rejection(&mut net, at, stream);
    net.run_idle(100_000);
    (err, net.closed_why(0, circ))
}

#[test]
fn an_authenticate_with_a_bad_signature_closes_the_channel() {
    let (err, why) = extend_to_4(10, TARGET_RELAY, |net| {
        let flip_last = rewrite_cells(false, |cmd, cell| {
            if cmd == ChanCmd::AUTHENTICATE {
                let last = cell.len() - 1;
                cell[last] ^= 0x80;
            }
        });
        assert!(net.tamper(1, TARGET_RELAY, flip_last));
    });
    assert_eq!(err, LinkError::AuthenticateBadSignature);
    assert_eq!(
        why,
        Some(CircuitFailure::Destroyed(DestroyReason::DESTROYED.0))
    );
}

#[test]
fn authenticate_is_bound_to_the_tls_session_and_to_every_handshake_byte() {
    // Another TLS session (a relaying man in the middle): TLSSECRETS differs.
    let (err, _) = extend_to_4(11, TARGET_RELAY, |net| net.set_tls_lie(1, TlsLie::Exporter));
    assert_eq!(
        err,
        LinkError::AuthenticateMismatch {
            field: "TLSSECRETS"
        }
    );
    // A VPADDING slipped in before the responder's CERTS: the initiator's SLOG has it.
    let (err, _) = extend_to_4(12, TARGET_RELAY, |net| {
        let pad = VarCell {
            circ_id: 0,
            cmd: ChanCmd::VPADDING,
            payload: vec![0; 3],
        };
        let insert = rewrite_cells(true, move |cmd, cell| {
            if cmd == ChanCmd::CERTS {
                let mut padded = Vec::new();
                pad.append_to(&mut padded, 4);
                padded.extend_from_slice(cell);
                *cell = padded;
            }
        });
        assert!(net.tamper(TARGET_RELAY, 1, insert));
    });
    assert_eq!(err, LinkError::AuthenticateMismatch { field: "SLOG" });
    // A TLS layer that cannot export: the initiator refuses to send a hollow AUTHENTICATE.
    let (err, _) = extend_to_4(13, 1, |net| net.set_tls_lie(1, TlsLie::NoExporter));
    assert_eq!(err, LinkError::NoTlsExporter);
}

#[test]
fn a_skewed_peer_clock_is_logged_not_fatal() {
    let (mut net, stream) = scene(14);
    net.set_clock_offset(TARGET_RELAY, 2 * 3600);
    let hop = net.hop(TARGET_RELAY);
    let circ = net.nodes[0]
        .relay
        .build_circuit(net.now, vec![hop])
        .unwrap();
    net.run_until(10_000, |n| n.is_built(0, circ));
    // The client initiated: the relay's clock matters to it. The relay ignores the client's
    // (clients send 0).
    assert_eq!(net.nodes[0].relay.stats().clock_skew_warnings, 1);
    assert_eq!(net.nodes[TARGET_RELAY].relay.stats().clock_skew_warnings, 0);
    net.run_until(2_000_000, |n| n.apps[&(0, stream)].done());
}

/// A relay and an inbound channel to it, driven by raw cells.
fn raw_responder() -> (Relay, ChanId) {
    let cfg = RelayConfig {
        keys: Some(relay_keys(31)),
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(cfg, ChaCha12Rng::seed_from_u64(1));
    relay.set_wall_clock(epoch());
    let chan = relay.accept_channel(Instant::ZERO, "10.1.1.1:4000".parse().unwrap());
    (relay, chan)
}

fn var(cmd: ChanCmd, payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    VarCell {
        circ_id: 0,
        cmd,
        payload,
    }
    .append_to(&mut out, 4);
    out
}

fn versions() -> Vec<u8> {
    let hello = initiator_hello();
    hello[..hello.len() - 514].to_vec()
}

/// Feeds `cells` after VERSIONS; the rejection, if the channel was closed.
fn responder_rejects(cells: &[Vec<u8>]) -> Option<LinkError> {
    let (mut relay, chan) = raw_responder();
    relay.handle_recv(Instant::ZERO, chan, &versions(), &PlainLinkAuth);
    for c in cells {
        relay.handle_recv(Instant::ZERO, chan, c, &PlainLinkAuth);
    }
    match relay.last_rejection() {
        Some(Rejection::Channel(e)) => Some(e),
        _ => None,
    }
}

#[test]
fn cells_out_of_order_close_the_channel() {
    let authenticate = var(ChanCmd::AUTHENTICATE, vec![0, 3, 0, 0]);
    assert_eq!(
        responder_rejects(&[authenticate]),
        Some(LinkError::BeforeCerts {
            cmd: ChanCmd::AUTHENTICATE
        })
    );
    let challenge = var(ChanCmd::AUTH_CHALLENGE, vec![0; 34]);
    assert_eq!(
        responder_rejects(&[challenge]),
        Some(LinkError::UnexpectedHandshakeCell {
            cmd: ChanCmd::AUTH_CHALLENGE
        })
    );
    let garbage_certs = var(ChanCmd::CERTS, vec![1, 2, 0, 5, 1]);
    assert!(matches!(
        responder_rejects(&[garbage_certs]),
        Some(LinkError::Malformed {
            cmd: ChanCmd::CERTS,
            ..
        })
    ));
    let mut create = Vec::new();
    Cell::new(0x8000_0001, ChanCmd::CREATE2).append_to(&mut create);
    assert_eq!(
        responder_rejects(&[create]),
        Some(LinkError::UnexpectedHandshakeCell {
            cmd: ChanCmd::CREATE2
        })
    );

    // An initiator (a client here) that gets NETINFO before the responder's CERTS.
    let mut client = Relay::new(RelayConfig::default(), ChaCha12Rng::seed_from_u64(2));
    client.set_wall_clock(epoch());
    let mut hop = crate::harness::Net::new(1, LinkModel::default());
    let relay = hop.add_relay(false);
    let spec = hop.hop(relay);
    client.build_circuit(Instant::ZERO, vec![spec]).unwrap();
    let Some(Event::OpenChannel { chan, .. }) = client.poll_event() else {
        panic!("the circuit opens a channel");
    };
    client.handle_channel_connected(Instant::ZERO, chan);
    let mut netinfo = versions();
    Cell::new(0, ChanCmd::NETINFO).append_to(&mut netinfo);
    client.handle_recv(Instant::ZERO, chan, &netinfo, &PlainLinkAuth);
    assert_eq!(
        client.last_rejection(),
        Some(Rejection::Channel(LinkError::BeforeCerts {
            cmd: ChanCmd::NETINFO
        }))
    );
    assert_eq!(client.channel_count(), 0);
}

#[test]
fn vpadding_and_authorize_are_allowed_anywhere_in_the_handshake() {
    let (mut relay, chan) = raw_responder();
    let mut bytes = versions();
    bytes.extend(var(ChanCmd::VPADDING, vec![0; 10]));
    bytes.extend(var(ChanCmd(132), vec![1, 2, 3]));
    let hello = initiator_hello();
    bytes.extend_from_slice(&hello[hello.len() - 514..]);
    relay.handle_recv(Instant::ZERO, chan, &bytes, &PlainLinkAuth);
    assert_eq!(relay.last_rejection(), None);
    assert!(relay.channel_is_open(chan));
    // What the responder sent: VERSIONS, CERTS (2, 7, 4, 5), AUTH_CHALLENGE (method 3),
    // NETINFO with its clock.
    let mut out = Vec::new();
    transmit(&mut relay, Instant::ZERO, chan, &mut out, usize::MAX);
    let mut decoder = CellDecoder::new();
    let mut rest = &out[..];
    let mut cells = Vec::new();
    while !rest.is_empty() {
        let (used, cell) = decoder.decode(rest).unwrap();
        rest = &rest[used..];
        cells.extend(cell);
    }
    let cmds: Vec<ChanCmd> = cells.iter().map(ChanCell::cmd).collect();
    assert_eq!(
        cmds,
        [
            ChanCmd::VERSIONS,
            ChanCmd::CERTS,
            ChanCmd::AUTH_CHALLENGE,
            ChanCmd::NETINFO
        ]
    );
    let ChanCell::Var(certs) = &cells[1] else {
        panic!("CERTS is a var cell")
    };
    let types: Vec<u8> = Certs::parse(&certs.payload)
        .unwrap()
        .certs
        .iter()
        .map(|c| c.0 .0)
        .collect();
    assert_eq!(types, [2, 7, 4, 5]);
    let ChanCell::Var(ac) = &cells[2] else {
        panic!("AUTH_CHALLENGE is a var cell")
    };
    assert_eq!(&ac.payload[32..], &[0, 1, 0, 3]);
    let ChanCell::Fixed(ni) = &cells[3] else {
        panic!("NETINFO is fixed")
    };
    let ni = crate::wire::Netinfo::parse(&ni.body).unwrap();
    assert_eq!(u64::from(ni.time), crate::harness::EPOCH_SECS);
    assert_eq!(ni.other_addr, Some("10.1.1.1".parse().unwrap()));
}

#[test]
fn extend2_reuses_a_channel_only_when_its_proven_identities_match() {
    let mut net = Net::three_hop(15, LinkModel::default(), 3, TargetKind::Echo);
    // Client -> 2 -> 1: relay 1 accepts a channel from relay 2, which authenticates.
    let a = net.build(0, &[2, 1]);
    net.run_until(10_000, |n| n.is_built(0, a));
    let inbound = net.channel_between(1, 2).unwrap();
    assert_eq!(
        net.nodes[1].relay.channel_peer(inbound),
        Some(peer_ids(&net, 2))
    );
    let before = net.nodes[1].relay.channel_count();
    // Client -> 1 -> 2: relay 1 extends over that authenticated inbound channel.
    let b = net.build(0, &[1, 2]);
    net.run_until(10_000, |n| n.is_built(0, b));
    assert_eq!(
        net.nodes[1].relay.channel_count(),
        before + 1,
        "only the client's new channel"
    );
    // Client -> 1 -> 2 naming another Ed25519 identity: the proven channel is not used; a
    // new one is opened, proves relay 2's real identity, and the extend fails.
    let guard = net.hop(1);
    let mut wrong = net.hop(2);
    wrong.ed_id = [0x77; 32];
    let now = net.now;
    let c = net.nodes[0]
        .relay
        .build_circuit(now, vec![guard, wrong])
        .unwrap();
    net.run_idle(100_000);
    assert_eq!(
        net.closed_why(0, c),
        Some(CircuitFailure::Destroyed(DestroyReason::OR_IDENTITY.0))
    );
    assert!(
        net.nodes[1].relay.channel_is_open(inbound),
        "the good channel stays"
    );
    assert!(net.closed_why(0, b).is_none() && net.closed_why(0, a).is_none());
}

#[test]
fn the_harness_relay_initiator_authenticates_and_its_flipped_signature_is_refused() {
    let target = crate::client::HopSpec {
        id: relay_keys(31).rsa_id(),
        ed_id: relay_keys(31).identity.ed_id(),
        ntor_key: relay_keys(31).ntor.public(),
        addr: "10.1.1.1:4000".parse().unwrap(),
    };
    for flip in [false, true] {
        let (mut responder, chan) = raw_responder();
        let (mut initiator, hello) =
            RelayInitiator::connect(&relay_keys(32), epoch(), target.clone()).unwrap();
        responder.handle_recv(Instant::ZERO, chan, &hello, &PlainLinkAuth);
        let mut flight = Vec::new();
        responder.take_ctrl(chan, &mut flight);
        let mut answer = initiator.answer(&flight, &PlainLinkAuth);
        assert!(initiator.is_open() && initiator.rejection().is_none());
        // CERTS, AUTHENTICATE, NETINFO (4-byte circuit ids): the signature ends the second.
        let var_len =
            |at: usize| 7 + usize::from(u16::from_be_bytes([answer[at + 5], answer[at + 6]]));
        let certs_len = var_len(0);
        let auth_len = var_len(certs_len);
        assert_eq!(
            (answer[4], answer[certs_len + 4]),
            (ChanCmd::CERTS.0, ChanCmd::AUTHENTICATE.0)
        );
        assert_eq!(answer.len(), certs_len + auth_len + 514, "then NETINFO");
        if flip {
            answer[certs_len + auth_len - 1] ^= 0x01;
        }
        responder.handle_recv(Instant::ZERO, chan, &answer, &PlainLinkAuth);
        if flip {
            assert_eq!(
                responder.last_rejection(),
                Some(Rejection::Channel(LinkError::AuthenticateBadSignature))
            );
            assert_eq!(responder.channel_count(), 0);
        } else {
            assert_eq!(responder.last_rejection(), None);
            assert_eq!(
                responder.channel_peer(chan),
                Some(PeerIds {
                    rsa_id: relay_keys(32).rsa_id(),
                    ed_id: relay_keys(32).identity.ed_id(),
                })
            );
        }
    }
}
