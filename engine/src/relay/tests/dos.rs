//! The circuit-creation rate limit (`DoSCircuitCreationRate` / `Burst`) in virtual time: a
//! flooding channel is answered at the limit's pace while a transfer on another channel of
//! the same relay goes on untouched.

use std::collections::HashMap;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::crypto::ntor::{self, NtorClient};
use crate::harness::{initiator_hello, transmit, App, LinkModel, Net, TargetKind, TARGET};
use crate::relay::{ChanId, CircuitCreationLimit, RelayConfig};
use crate::wire::{
    Cell, CellDecoder, ChanCell, ChanCmd, Create2, Created2, Destroy, DestroyReason,
};

const MIB: u64 = 1 << 20;

/// Client (0), a guard (1) with `limit`, a middle (2), an exit (3) serving `source` bytes.
fn net_with_limited_guard(limit: CircuitCreationLimit, source: u64) -> Net {
    let mut net = Net::new(21, LinkModel::default());
    net.add_client();
    let cfg = RelayConfig {
        keys: Some(crate::harness::relay_keys(77)),
        circuit_creation_limit: Some(limit),
        ..RelayConfig::default()
    };
    assert_eq!(net.push_node(cfg, 1), 1);
    net.add_relay(false);
    net.add_relay(true);
    net.add_target(TARGET, TargetKind::Source(source));
    net
}

/// What came back to the flooder.
#[derive(Default, Debug)]
struct Replies {
    created: u32,
    resource_limit: u32,
    other: u32,
}

/// Everything `chan` of node 1 has for the flooder, classified; CREATED2 answers are
/// checked to complete the ntor handshake of the circuit they answer.
fn drain(
    net: &mut Net,
    chan: ChanId,
    decoder: &mut CellDecoder,
    pending: &mut HashMap<u32, NtorClient>,
    replies: &mut Replies,
) {
    let mut out = Vec::new();
    let now = net.now;
    transmit(&mut net.nodes[1].relay, now, chan, &mut out, usize::MAX);
    let mut rest = &out[..];
    while !rest.is_empty() {
        let (used, cell) = decoder.decode(rest).expect("relay output decodes");
        rest = &rest[used..];
        let Some(ChanCell::Fixed(c)) = cell else {
            continue;
        };
        match c.cmd {
            ChanCmd::CREATED2 => {
                let client = pending.remove(&c.circ_id).expect("CREATED2 for a CREATE2");
                let created = Created2::parse(&c.body).expect("CREATED2 parses");
                client
                    .finish(created.hdata)
                    .expect("ntor handshake completes");
                replies.created += 1;
            }
            ChanCmd::DESTROY => {
                assert!(
                    pending.remove(&c.circ_id).is_some(),
                    "one answer per CREATE2"
                );
                match Destroy::parse(&c.body).expect("DESTROY parses").reason {
                    DestroyReason::RESOURCELIMIT => replies.resource_limit += 1,
                    _ => replies.other += 1,
                }
            }
            _ => replies.other += 1,
        }
    }
}

#[test]
fn create2_flood_is_limited_to_burst_plus_rate_and_a_transfer_stays_intact() {
    let limit = CircuitCreationLimit {
        rate: 20,
        burst: 50,
    };
    let size = 16 * MIB;
    let mut net = net_with_limited_guard(limit, size);
    let circ = net.build(0, &[1, 2, 3]);
    net.run_until(10_000, |n| n.is_built(0, circ));
    let stream = net.open_stream(0, circ, TARGET, App::client(1, 0, size));

    // The flooder: its own channel into the guard, link handshake done.
    let t0 = net.now;
    let flood = net.nodes[1]
        .relay
        .accept_channel(t0, "10.9.9.9:5555".parse().expect("addr"));
    net.inject(1, flood, &initiator_hello());
    let mut decoder = CellDecoder::new();
    let mut handshake = Vec::new();
    let _ = transmit(
        &mut net.nodes[1].relay,
        t0,
        flood,
        &mut handshake,
        usize::MAX,
    );
    let mut rest = &handshake[..];
    let mut link_cells = 0;
    while !rest.is_empty() {
        let (used, cell) = decoder.decode(rest).expect("handshake decodes");
        rest = &rest[used..];
        link_cells += usize::from(cell.is_some());
    }
    assert_eq!(link_cells, 4, "VERSIONS, CERTS, AUTH_CHALLENGE and NETINFO");

    // 5000 valid CREATE2 (ntor), 100 every 10 ms of virtual time, while the transfer runs.
    let total: u32 = 5000;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let guard = net.hop(1);
    let mut pending = HashMap::new();
    let mut replies = Replies::default();
    let mut sent: u32 = 0;
    let mut next_batch = t0;
    let mut last_batch = t0;
    let mut received_at_flood_end = None;
    for _ in 0..5_000_000 {
        if sent < total && net.now >= next_batch {
            let mut bytes = Vec::new();
            for _ in 0..100 {
                sent += 1;
                let id = 0x8000_0000 | sent;
                let (client, hdata) = ntor::client_create(&mut rng, &guard.id, &guard.ntor_key);
                let mut cell = Cell::new(id, ChanCmd::CREATE2);
                Create2 {
                    htype: ntor::HTYPE,
                    hdata: &hdata,
                }
                .emit(&mut cell.body)
                .expect("CREATE2 fits");
                cell.append_to(&mut bytes);
                pending.insert(id, client);
            }
            net.inject(1, flood, &bytes);
            last_batch = net.now;
            next_batch = net.now + Duration::from_millis(10);
            drain(&mut net, flood, &mut decoder, &mut pending, &mut replies);
            if sent == total {
                received_at_flood_end = Some(net.apps[&(0, stream)].received);
            }
        }
        let done = net.apps[&(0, stream)].done();
        if done && sent == total {
            break;
        }
        if !net.step() {
            // Only the flood is left to do: jump to its next batch.
            net.now = net.now.max(next_batch);
        }
    }
    drain(&mut net, flood, &mut decoder, &mut pending, &mut replies);

    // The transfer overlapped the whole flood and arrived intact.
    let received_then = received_at_flood_end.expect("flood finished");
    assert!(received_then < size, "the transfer was still running");
    let client = &net.apps[&(0, stream)];
    assert_eq!(client.received, size);
    let source = net
        .apps
        .iter()
        .find(|((i, _), _)| *i == 3)
        .map(|(_, a)| a)
        .expect("exit app");
    assert_eq!(client.recv_digest(), source.sent_digest());

    // Exactly burst + rate * elapsed answered with CREATED2, every other one refused.
    let elapsed = last_batch.saturating_duration_since(t0);
    let allowed = limit.burst as u128 + limit.rate as u128 * elapsed.as_nanos() / 1_000_000_000;
    // `elapsed` is the harness's virtual clock (deterministic, not wall time): the 50 batches
    // 10 ms apart span at least 490 ms of it, so the rate, not only the burst, was tested.
    assert!(elapsed >= Duration::from_millis(490), "virtual {elapsed:?}");
    assert_eq!(
        u128::from(replies.created),
        allowed,
        "{replies:?} after {elapsed:?}"
    );
    assert_eq!(replies.created + replies.resource_limit, total);
    assert_eq!(replies.other, 0);
    assert!(pending.is_empty(), "every CREATE2 was answered");
    let guard = &net.nodes[1].relay;
    assert_eq!(
        guard.stats().creates_refused,
        u64::from(replies.resource_limit)
    );
    // State exists for the accepted circuits (and the transfer's) only.
    assert_eq!(guard.circuit_count(), 1 + replies.created as usize);
    for node in &net.nodes {
        node.relay.check_invariants().expect("invariants hold");
    }
    // The flooder leaves: its circuits go with its channel.
    let now = net.now;
    net.nodes[1].relay.handle_channel_closed(now, flood);
    assert_eq!(net.nodes[1].relay.circuit_count(), 1);
    assert_eq!(net.nodes[1].relay.channel_count(), 2);
    net.nodes[1]
        .relay
        .check_invariants()
        .expect("invariants hold");
}

#[test]
fn refused_create_fast_and_tap_create_get_resourcelimit() {
    let limit = CircuitCreationLimit { rate: 0, burst: 1 };
    let mut net = net_with_limited_guard(limit, MIB);
    let now = net.now;
    let chan = net.nodes[1]
        .relay
        .accept_channel(now, "10.9.9.9:1".parse().expect("addr"));
    net.inject(1, chan, &initiator_hello());
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut bytes = Vec::new();
    for (id, cmd) in [
        (0x8000_0001, ChanCmd::CREATE_FAST),
        (0x8000_0002, ChanCmd::CREATE_FAST),
        (0x8000_0003, ChanCmd::CREATE),
    ] {
        let mut cell = Cell::new(id, cmd);
        if cmd == ChanCmd::CREATE_FAST {
            let (_, x) = crate::crypto::fast::client_create(&mut rng);
            crate::wire::CreateFast { x }
                .emit(&mut cell.body)
                .expect("fits");
        }
        cell.append_to(&mut bytes);
    }
    net.inject(1, chan, &bytes);
    let mut out = Vec::new();
    let _ = transmit(&mut net.nodes[1].relay, now, chan, &mut out, usize::MAX);
    let mut decoder = CellDecoder::new();
    let mut rest = &out[..];
    let mut answers = Vec::new();
    while !rest.is_empty() {
        let (used, cell) = decoder.decode(rest).expect("decodes");
        rest = &rest[used..];
        if let Some(ChanCell::Fixed(c)) = cell {
            let reason = (c.cmd == ChanCmd::DESTROY)
                .then(|| Destroy::parse(&c.body).expect("destroy").reason);
            answers.push((c.circ_id, c.cmd, reason));
        }
    }
    answers.retain(|a| a.1 != ChanCmd::NETINFO);
    // Link-control cells (DESTROY) go out before circuit cells: compare by circuit.
    answers.sort_by_key(|a| a.0);
    assert_eq!(
        answers,
        vec![
            (0x8000_0001, ChanCmd::CREATED_FAST, None),
            (
                0x8000_0002,
                ChanCmd::DESTROY,
                Some(DestroyReason::RESOURCELIMIT)
            ),
            (
                0x8000_0003,
                ChanCmd::DESTROY,
                Some(DestroyReason::RESOURCELIMIT)
            ),
        ]
    );
    assert_eq!(net.nodes[1].relay.stats().creates_refused, 2);
    assert_eq!(net.nodes[1].relay.circuit_count(), 1);
}
