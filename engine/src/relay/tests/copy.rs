//! The per-cell path's copies: a forwarded cell arrives exactly, in both directions, wherever
//! a receive buffer boundary splits it (the decoder's carry path), and cells that are not
//! forwarded take no pool slot.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::{transmit, LinkModel, Net, TargetKind};
use crate::relay::{ChanId, ForwardError, PlainLinkAuth, Rejection, Relay};
use crate::time::Instant;
use crate::wire::{Cell, ChanCmd, DestroyReason, VarCell, CELL_LEN};

/// A middle relay taken out of a 3-hop harness run with one circuit built through it.
struct Middle {
    relay: Relay,
    now: Instant,
    /// Its channels toward the guard and the exit.
    guard: ChanId,
    exit: ChanId,
    /// The circuit's ids on those channels.
    guard_id: u32,
    exit_id: u32,
}

impl Middle {
    fn new(seed: u64) -> Self {
        let mut net = Net::three_hop(seed, LinkModel::default(), 3, TargetKind::Echo);
        let circ = net.build(0, &[1, 2, 3]);
        net.run_until(10_000, |n| n.is_built(0, circ));
        let guard = net.channel_between(2, 1).expect("middle-guard channel");
        let exit = net.channel_between(2, 3).expect("middle-exit channel");
        let now = net.now;
        let relay = net.nodes.swap_remove(2).relay;
        let circs: Vec<_> = relay
            .circuits
            .iter()
            .map(|(_, c)| (c.prev, c.next))
            .collect();
        let [(Some(prev), Some(next))] = circs[..] else {
            panic!("one relayed circuit at the middle: {circs:?}");
        };
        assert_eq!((prev.chan, next.chan), (guard, exit));
        Middle {
            relay,
            now,
            guard,
            exit,
            guard_id: prev.id.get(),
            exit_id: next.id.get(),
        }
    }

    /// Feeds `bytes` to the relay on `from` as two receive buffers split at `at`, then
    /// drains `to`.
    fn forward(&mut self, from: ChanId, to: ChanId, bytes: &[u8], at: usize) -> Vec<u8> {
        let (a, b) = bytes.split_at(at);
        self.relay.handle_recv(self.now, from, a, &PlainLinkAuth);
        self.relay.handle_recv(self.now, from, b, &PlainLinkAuth);
        let mut out = Vec::new();
        transmit(&mut self.relay, self.now, to, &mut out, usize::MAX);
        out
    }

    /// (slots in the pool, slots holding a cell)
    fn pool(&self) -> (usize, usize) {
        (self.relay.cells.capacity(), self.relay.cells.used())
    }
}

fn relay_cell(rng: &mut ChaCha8Rng, circ_id: u32, cmd: ChanCmd) -> Vec<u8> {
    let mut cell = Cell::new(circ_id, cmd);
    rng.fill_bytes(&mut cell.body);
    let mut bytes = Vec::new();
    cell.append_to(&mut bytes);
    bytes
}

/// FNV-1a, to name a mismatch briefly.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
fn forwarded_cells_arrive_exactly_across_every_receive_buffer_split() {
    // Two identical middles (the harness is seeded): one gets every cell split at an offset,
    // the other gets it whole; their output must match byte for byte.
    let (mut split, mut whole) = (Middle::new(31), Middle::new(31));
    assert_eq!(
        (split.guard_id, split.exit_id),
        (whole.guard_id, whole.exit_id)
    );
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let ways = [
        (split.guard, split.exit, split.guard_id, split.exit_id),
        (split.exit, split.guard, split.exit_id, split.guard_id),
    ];
    for (from, to, in_id, out_id) in ways {
        for at in 0..=CELL_LEN {
            let cell = relay_cell(&mut rng, in_id, ChanCmd::RELAY);
            let got = split.forward(from, to, &cell, at);
            let want = whole.forward(from, to, &cell, CELL_LEN);
            assert_eq!(got.len(), CELL_LEN, "split at {at}: one cell out");
            assert_eq!(
                &got[..4],
                &out_id.to_be_bytes(),
                "split at {at}: outgoing id"
            );
            assert_eq!(got[4], ChanCmd::RELAY.0);
            assert_eq!(checksum(&got), checksum(&want), "split at {at}, {in_id:#x}");
            assert_eq!(got, want);
            assert_ne!(&got[5..], &cell[5..], "one layer of crypto applied");
            assert_eq!(split.pool().1, 0, "the slot went back once sent");
        }
    }
    // Several cells in one buffer, split across three buffers mid-cell, also arrive whole.
    let many: Vec<u8> = (0..4)
        .flat_map(|_| relay_cell(&mut rng, split.guard_id, ChanCmd::RELAY))
        .collect();
    let (a, rest) = many.split_at(CELL_LEN + 100);
    let (b, c) = rest.split_at(CELL_LEN + 300);
    for part in [a, b, c] {
        split
            .relay
            .handle_recv(split.now, split.guard, part, &PlainLinkAuth);
    }
    let mut got = Vec::new();
    transmit(
        &mut split.relay,
        split.now,
        split.exit,
        &mut got,
        usize::MAX,
    );
    let want = whole.forward(whole.guard, whole.exit, &many, many.len());
    assert_eq!((got.len(), checksum(&got)), (4 * CELL_LEN, checksum(&want)));
}

#[test]
fn cells_not_forwarded_take_no_pool_slot() {
    let mut m = Middle::new(32);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    // One forwarded cell first, so the pool has a free slot to (not) take.
    let cell = relay_cell(&mut rng, m.guard_id, ChanCmd::RELAY);
    assert_eq!(m.forward(m.guard, m.exit, &cell, 0).len(), CELL_LEN);
    let before = m.pool();
    assert_eq!(before, (1, 0));
    let unknown = relay_cell(&mut rng, m.guard_id ^ 0x0100, ChanCmd::RELAY);
    assert!(m.forward(m.guard, m.exit, &unknown, 7).is_empty());
    let unhandled = relay_cell(&mut rng, m.guard_id, ChanCmd(99));
    assert!(m.forward(m.guard, m.exit, &unhandled, 300).is_empty());
    let mut vpadding = Vec::new();
    VarCell {
        circ_id: 0,
        cmd: ChanCmd::VPADDING,
        payload: vec![0; 9],
    }
    .append_to(&mut vpadding, 4);
    assert!(m.forward(m.guard, m.exit, &vpadding, 3).is_empty());
    assert_eq!(
        m.pool(),
        before,
        "unknown circuit, unhandled command, VPADDING"
    );
    assert_eq!(
        m.relay.circuits.iter().count(),
        1,
        "the circuit is untouched"
    );
    // RELAY_EARLY toward the origin closes the circuit, still without a slot.
    let early = relay_cell(&mut rng, m.exit_id, ChanCmd::RELAY_EARLY);
    m.forward(m.exit, m.guard, &early, CELL_LEN);
    assert_eq!(m.pool(), before, "rejected RELAY_EARLY");
    assert_eq!(m.relay.circuits.iter().count(), 0, "that circuit closed");
}

/// A middle relay's queue toward a side that does not read, at `max_circuit_queue_cells`:
/// the next forwarded cell closes the circuit (the per-cell path's over-cap branch), every
/// queued cell's slot goes back, and both sides get a DESTROY (PROTOCOL).
#[test]
fn a_forwarded_cell_over_the_queue_cap_closes_the_circuit() {
    let mut m = Middle::new(33);
    m.relay.cfg.max_circuit_queue_cells = 10;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    // Nothing is transmitted toward the exit: each cell waits in the circuit's queue.
    for k in 1..=10 {
        let cell = relay_cell(&mut rng, m.guard_id, ChanCmd::RELAY);
        m.relay.handle_recv(m.now, m.guard, &cell, &PlainLinkAuth);
        assert_eq!(m.pool().1, k, "cell {k} queued");
    }
    assert_eq!(m.relay.queued_bytes(), 10 * CELL_LEN);
    assert_eq!(m.relay.last_rejection(), None);
    let cell = relay_cell(&mut rng, m.guard_id, ChanCmd::RELAY);
    m.relay.handle_recv(m.now, m.guard, &cell, &PlainLinkAuth);
    assert_eq!(m.relay.circuits.iter().count(), 0, "the circuit closed");
    assert_eq!(m.pool().1, 0, "every queued slot went back");
    assert_eq!(m.relay.stats().circuits_rejected, 1);
    assert_eq!(
        m.relay.last_rejection(),
        Some(Rejection::Circuit(ForwardError::QueueOverCap.into()))
    );
    for (chan, id) in [(m.guard, m.guard_id), (m.exit, m.exit_id)] {
        let mut out = Vec::new();
        transmit(&mut m.relay, m.now, chan, &mut out, usize::MAX);
        assert_eq!(out.len(), CELL_LEN, "only the DESTROY toward {id:#x}");
        assert_eq!(&out[..4], &id.to_be_bytes());
        assert_eq!(out[4], ChanCmd::DESTROY.0);
        assert_eq!(out[5], DestroyReason::PROTOCOL.0);
    }
    assert_eq!(m.relay.queued_bytes(), 0);
    m.relay.check_invariants().expect("invariants");
}
