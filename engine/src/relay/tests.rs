//! Behaviour of the relay state machine, proven in the in-memory harness (virtual time,
//! seeded) and with a hand-driven raw peer for protocol violations.

mod copy;
mod dos;
mod raw;

use std::cell::Cell as StdCell;
use std::rc::Rc;

use crate::client::CircuitFailure;
use crate::crypto::HandshakeError;
use crate::harness::{App, LinkModel, Net, TargetKind, TARGET};
use crate::relay::Event;
use crate::wire::{ChanCmd, DestroyReason, EndReason};

const MIB: u64 = 1 << 20;

fn built_three_hop(seed: u64, kind: TargetKind) -> (Net, crate::relay::CircHandle) {
    let mut net = Net::three_hop(seed, LinkModel::default(), 3, kind);
    let circ = net.build(0, &[1, 2, 3]);
    net.run_until(10_000, |n| n.is_built(0, circ));
    (net, circ)
}

fn assert_clean(net: &Net, nodes: &[usize]) {
    for &i in nodes {
        let r = &net.nodes[i].relay;
        assert_eq!(r.circuit_count(), 0, "node {i} still has circuits");
        assert_eq!(r.stream_count(), 0, "node {i} still has streams");
        assert_eq!(r.queued_bytes(), 0, "node {i} still has queued cells");
        r.check_invariants().expect("invariants hold");
    }
}

#[test]
fn three_hop_echo_moves_16_mib_both_ways_intact() {
    let (mut net, circ) = built_three_hop(1, TargetKind::Echo);
    let size = 16 * MIB;
    let stream = net.open_stream(0, circ, TARGET, App::client(7, size, size));
    net.run_until(2_000_000, |n| n.apps[&(0, stream)].done());
    let client = &net.apps[&(0, stream)];
    assert_eq!(client.sent, size);
    assert_eq!(client.received, size);
    assert_eq!(
        client.sent_digest(),
        client.recv_digest(),
        "echoed bytes differ"
    );
    // The exit-side app saw exactly what the client sent.
    let exit_app = net
        .apps
        .iter()
        .find(|((i, _), _)| *i == 3)
        .map(|(_, a)| a)
        .expect("exit app");
    assert_eq!(exit_app.received, size);
    assert_eq!(exit_app.recv_digest(), client.sent_digest());
    for i in 0..4 {
        net.nodes[i]
            .relay
            .check_invariants()
            .expect("invariants hold");
    }
}

#[test]
fn download_from_exit_target_arrives_intact() {
    let (mut net, circ) = built_three_hop(2, TargetKind::Source(16 * MIB));
    let stream = net.open_stream(0, circ, TARGET, App::client(1, 0, 16 * MIB));
    net.run_until(2_000_000, |n| n.apps[&(0, stream)].done());
    let client = &net.apps[&(0, stream)];
    let source = net
        .apps
        .iter()
        .find(|((i, _), _)| *i == 3)
        .map(|(_, a)| a)
        .expect("exit app");
    assert_eq!(client.received, 16 * MIB);
    assert_eq!(source.sent, 16 * MIB);
    assert_eq!(client.recv_digest(), source.sent_digest());
    // Closing the stream freed it on both ends; the circuit itself stays.
    net.run_idle(100_000);
    assert_eq!(net.nodes[0].relay.stream_count(), 0);
    assert_eq!(net.nodes[3].relay.stream_count(), 0);
}

#[test]
fn hundred_circuits_share_channels_and_all_arrive() {
    let mut net = Net::three_hop(3, LinkModel::default(), 3, TargetKind::Echo);
    let circs: Vec<_> = (0..100).map(|_| net.build(0, &[1, 2, 3])).collect();
    net.run_until(100_000, |n| circs.iter().all(|&c| n.is_built(0, c)));
    let size = 64 * 1024 + 17;
    let streams: Vec<_> = circs
        .iter()
        .enumerate()
        .map(|(k, &c)| net.open_stream(0, c, TARGET, App::client(k as u64, size, size)))
        .collect();
    net.run_until(2_000_000, |n| {
        streams.iter().all(|s| n.apps[&(0, *s)].done())
    });
    for s in &streams {
        let a = &net.apps[&(0, *s)];
        assert_eq!(a.received, size);
        assert_eq!(a.sent_digest(), a.recv_digest());
    }
    // One channel per neighbour: the client has 1, the guard and middle 2, the exit 1.
    assert_eq!(net.nodes[0].relay.channel_count(), 1);
    assert_eq!(net.nodes[1].relay.channel_count(), 2);
    assert_eq!(net.nodes[2].relay.channel_count(), 2);
    assert_eq!(net.nodes[3].relay.channel_count(), 1);
    assert_eq!(net.nodes[2].relay.circuit_count(), 100);
}

#[test]
fn destroy_mid_stream_frees_all_state_on_every_hop() {
    let (mut net, circ) = built_three_hop(4, TargetKind::Source(64 * MIB));
    let stream = net.open_stream(0, circ, TARGET, App::client(1, 0, 64 * MIB));
    net.run_until(1_000_000, |n| n.apps[&(0, stream)].received > 2 * MIB);
    let now = net.now;
    net.nodes[0].relay.close_circuit_requested(now, circ);
    net.run_idle(100_000);
    assert_clean(&net, &[0, 1, 2, 3]);
    assert!(net.apps[&(0, stream)].received < 64 * MIB);
    // The exit's stream saw the circuit go away.
    let exit_log = &net.nodes[3].log;
    assert!(
        exit_log.iter().any(|e| matches!(
            e,
            Event::StreamEnded {
                reason: EndReason::DESTROY,
                ..
            }
        )),
        "{exit_log:?}"
    );
    // Channels stay up for reuse.
    assert_eq!(net.nodes[2].relay.channel_count(), 2);
}

#[test]
fn middle_relay_killed_fails_the_circuit_and_frees_the_guard() {
    let (mut net, circ) = built_three_hop(5, TargetKind::Source(64 * MIB));
    let stream = net.open_stream(0, circ, TARGET, App::client(1, 0, 64 * MIB));
    net.run_until(1_000_000, |n| n.apps[&(0, stream)].received > MIB);
    net.kill(2);
    net.run_idle(100_000);
    assert_eq!(
        net.closed_why(0, circ),
        Some(CircuitFailure::Destroyed(DestroyReason::DESTROYED.0))
    );
    assert_eq!(net.apps[&(0, stream)].ended, Some(EndReason::DESTROY));
    assert_clean(&net, &[0, 1, 3]);
    // A new circuit through another middle works.
    let m2 = net.add_relay(false);
    let circ2 = net.build(0, &[1, m2, 3]);
    net.run_until(10_000, |n| n.is_built(0, circ2));
}

/// Flips a bit of the AUTH of the first CREATED2 on a pipe. Each chunk the harness sends is
/// whole cells, and the first chunk starts with the responder's VERSIONS (2-byte circuit
/// id), so the cells are found by walking their headers. CREATED2: header 5, HLEN 2, Y 32,
/// then AUTH.
fn corrupt_first_created2_auth() -> crate::harness::Tamper {
    let done = Rc::new(StdCell::new(false));
    let first = Rc::new(StdCell::new(true));
    Box::new(move |bytes: &mut Vec<u8>| {
        let mut at = 0;
        while at < bytes.len() {
            let id_len = if first.replace(false) { 2 } else { 4 };
            let cmd = bytes[at + id_len];
            let len = if cmd == 7 || cmd >= 128 {
                let l = &bytes[at + id_len + 1..at + id_len + 3];
                id_len + 3 + usize::from(u16::from_be_bytes([l[0], l[1]]))
            } else {
                514
            };
            if cmd == ChanCmd::CREATED2.0 && !done.replace(true) {
                bytes[at + 5 + 2 + 32 + 3] ^= 0x40;
            }
            at += len;
        }
    })
}

#[test]
fn lying_first_hop_fails_the_circuit() {
    let mut net = Net::three_hop(6, LinkModel::default(), 3, TargetKind::Echo);
    // Connect the client to the guard with a throwaway circuit first, so the pipe exists.
    let c0 = net.build(0, &[1]);
    net.run_until(10_000, |n| n.is_built(0, c0));
    let now = net.now;
    net.nodes[0].relay.close_circuit_requested(now, c0);
    net.run_idle(10_000);
    // The next CREATED2 on the guard -> client pipe is the 1st cell after nothing: count from now.
    let seen = Rc::new(StdCell::new(0usize));
    let s2 = seen.clone();
    net.tamper(
        1,
        0,
        Box::new(move |bytes: &mut Vec<u8>| {
            // CREATED2: header 5, HLEN 2, Y 32, AUTH 32. Corrupt AUTH[0] of the first cell.
            if s2.get() == 0 && bytes.len() >= 40 && bytes[4] == 11 {
                bytes[5 + 2 + 32] ^= 1;
            }
            s2.set(s2.get() + bytes.len());
        }),
    );
    let circ = net.build(0, &[1, 2, 3]);
    net.run_idle(10_000);
    assert!(seen.get() > 0 || !net.is_built(0, circ));
    assert_eq!(
        net.closed_why(0, circ),
        Some(CircuitFailure::HandshakeFailed {
            hop: 0,
            error: HandshakeError::BadAuth
        })
    );
    assert_clean(&net, &[0, 1, 2, 3]);
}

#[test]
fn lying_middle_hop_fails_the_circuit() {
    let mut net = Net::three_hop(7, LinkModel::default(), 3, TargetKind::Echo);
    let circ = net.build(0, &[1, 2, 3]);
    // Run until the guard -> middle link exists, then corrupt the middle's CREATED2.
    net.run_until(10_000, |n| n.channel_between(2, 1).is_some());
    assert!(net.tamper(2, 1, corrupt_first_created2_auth()));
    net.run_idle(10_000);
    assert_eq!(
        net.closed_why(0, circ),
        Some(CircuitFailure::HandshakeFailed {
            hop: 1,
            error: HandshakeError::BadAuth
        })
    );
    assert!(!net.is_built(0, circ));
    assert_clean(&net, &[0, 1, 2, 3]);
}

#[test]
fn extend_to_unreachable_relay_reaches_the_client_as_destroy() {
    let mut net = Net::three_hop(8, LinkModel::default(), 3, TargetKind::Echo);
    let mut ghost = net.hop(2);
    ghost.addr = "10.9.9.9:9001".parse().expect("addr");
    let path = vec![net.hop(1), ghost, net.hop(3)];
    let now = net.now;
    let circ = net.nodes[0].relay.build_circuit(now, path).expect("path");
    net.run_idle(10_000);
    assert_eq!(
        net.closed_why(0, circ),
        Some(CircuitFailure::Destroyed(DestroyReason::DESTROYED.0))
    );
    assert_clean(&net, &[0, 1]);
}

#[test]
fn exit_policy_refuses_other_addresses_and_non_exits_refuse_all() {
    let (mut net, circ) = built_three_hop(9, TargetKind::Echo);
    net.add_target("192.0.2.1:80".parse().expect("addr"), TargetKind::Echo);
    let s = net.open_stream(
        0,
        circ,
        "192.0.2.1:80".parse().expect("addr"),
        App::client(1, 10, 10),
    );
    net.run_idle(10_000);
    assert_eq!(net.apps[&(0, s)].ended, Some(EndReason::EXITPOLICY));
    assert!(!net.apps[&(0, s)].connected);
    // A 2-hop circuit ends at the middle, which is no exit.
    let c2 = net.build(0, &[1, 2]);
    net.run_until(10_000, |n| n.is_built(0, c2));
    let s2 = net.open_stream(0, c2, TARGET, App::client(1, 10, 10));
    net.run_idle(10_000);
    assert_eq!(net.apps[&(0, s2)].ended, Some(EndReason::EXITPOLICY));
    // A closed port at an allowed address: CONNECTREFUSED from the runtime.
    let s3 = net.open_stream(
        0,
        circ,
        "127.0.0.80:81".parse().expect("addr"),
        App::client(1, 10, 10),
    );
    net.run_idle(10_000);
    assert_eq!(net.apps[&(0, s3)].ended, Some(EndReason::CONNECTREFUSED));
}

#[test]
fn garbage_on_one_channel_does_not_disturb_a_transfer() {
    let (mut net, circ) = built_three_hop(10, TargetKind::Echo);
    let size = 4 * MIB;
    let stream = net.open_stream(0, circ, TARGET, App::client(3, size, size));
    net.run_until(1_000_000, |n| n.apps[&(0, stream)].received > MIB);
    let now = net.now;
    let before = net.nodes[2].relay.stats().channels_rejected;
    let bad = net.nodes[2]
        .relay
        .accept_channel(now, "10.0.0.99:5555".parse().expect("addr"));
    net.inject(
        2,
        bad,
        &[
            0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        ],
    );
    assert_eq!(net.nodes[2].relay.stats().channels_rejected, before + 1);
    assert_eq!(net.nodes[2].relay.channel_count(), 2);
    net.run_until(2_000_000, |n| n.apps[&(0, stream)].done());
    let a = &net.apps[&(0, stream)];
    assert_eq!(a.received, size);
    assert_eq!(a.sent_digest(), a.recv_digest());
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let (mut net, circ) = built_three_hop(seed, TargetKind::Source(MIB));
        let s = net.open_stream(0, circ, TARGET, App::client(1, 0, MIB));
        net.run_until(1_000_000, |n| n.apps[&(0, s)].done());
        (net.now, net.apps[&(0, s)].recv_digest())
    };
    assert_eq!(run(11), run(11));
}

#[test]
fn handshake_timeout_closes_silent_channels() {
    let mut net = Net::three_hop(12, LinkModel::default(), 1, TargetKind::Echo);
    let now = net.now;
    let chan = net.nodes[1]
        .relay
        .accept_channel(now, "10.0.0.77:1".parse().expect("addr"));
    assert_eq!(net.nodes[1].relay.channel_count(), 1);
    net.run_idle(1000);
    assert_eq!(net.nodes[1].relay.channel_count(), 0);
    assert!(net.now >= crate::time::Instant::from_millis(30_000));
    let _ = chan;
}
