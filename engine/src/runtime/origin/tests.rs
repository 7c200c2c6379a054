//! `Origins` without sockets: a fake relay records builds, streams and closes.

use rand::SeedableRng;

use super::*;
use crate::relay::RelayConfig;
use crate::wire::StreamId;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn path(guard: u8) -> Vec<HopSpec> {
    vec![HopSpec {
        id: [guard; 20],
        ed_id: [3; 32],
        ntor_key: [2; 32],
        addr: ([10, 0, 0, guard], 9001).into(),
    }]
}

/// Mints real circuit handles from an inner relay; records what the origins asked for.
struct FakeRelay {
    relay: Relay,
    fail_build: bool,
    built: Vec<CircHandle>,
    opened: Vec<(CircHandle, String, u16)>,
    closed: Vec<CircHandle>,
}

impl FakeRelay {
    fn new() -> Self {
        FakeRelay {
            relay: Relay::new(
                RelayConfig::default(),
                rand_chacha::ChaCha12Rng::seed_from_u64(9),
            ),
            fail_build: false,
            built: Vec::new(),
            opened: Vec::new(),
            closed: Vec::new(),
        }
    }
}

impl CircuitPort for FakeRelay {
    fn build_circuit(&mut self, now: Instant, path: Vec<HopSpec>) -> Result<CircHandle, ApiError> {
        if self.fail_build {
            return Err(ApiError::EmptyPath);
        }
        let circ = self.relay.build_circuit(now, path)?;
        self.built.push(circ);
        Ok(circ)
    }
    fn open_stream(
        &mut self,
        _: Instant,
        circ: CircHandle,
        host: &str,
        port: u16,
    ) -> Result<StreamHandle, ApiError> {
        self.opened.push((circ, host.to_owned(), port));
        let id = StreamId::new(self.opened.len() as u16).ok_or(ApiError::StreamIdsExhausted)?;
        Ok(StreamHandle { circ, id })
    }
    fn close_circuit(&mut self, _: Instant, circ: CircHandle) {
        self.closed.push(circ);
    }
}

/// Events for the control thread, and the other actions, separately.
fn drain(o: &mut Origins<u32>) -> (Vec<WorkerEvent>, Vec<OriginAction<u32>>) {
    let mut events = Vec::new();
    let mut rest = Vec::new();
    while let Some(a) = o.poll_action() {
        match a {
            OriginAction::Event(ev) => events.push(ev),
            other => rest.push(other),
        }
    }
    (events, rest)
}

fn need(ev: &WorkerEvent) -> Option<u64> {
    match ev {
        WorkerEvent::NeedCircuit { worker: 2, tag } => Some(*tag),
        _ => None,
    }
}

#[test]
fn a_client_keeps_a_circuit_and_serves_requests_once_it_is_built() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    o.handle_timeout(at(0), false, &mut r);
    o.handle_timeout(at(1), false, &mut r);
    let (events, _) = drain(&mut o);
    assert_eq!(
        events.iter().filter_map(need).collect::<Vec<_>>(),
        vec![0],
        "asked once"
    );

    o.handle_build(at(10), 0, path(7), at(5_000), &mut r);
    assert_eq!(o.poll_timeout(), Some(at(5_000)));
    o.request(31, None, "example.com".into(), 443);
    o.serve_requests(at(11), &mut r);
    assert!(r.opened.is_empty(), "not built yet");
    assert!(drain(&mut o).0.is_empty(), "building: no second ask");

    let circ = r.built[0];
    o.handle_built(at(40), circ, Duration::from_millis(30), &mut r);
    let (events, rest) = drain(&mut o);
    assert!(matches!(
        events[..],
        [WorkerEvent::CircuitBuilt { worker: 2, tag: 0, guard, build_ms: 30 }] if guard == [7; 20]
    ));
    assert_eq!(r.opened, vec![(circ, "example.com".to_owned(), 443)]);
    assert!(matches!(
        rest[..],
        [OriginAction::StreamOpened { conn: 31, .. }]
    ));
    assert_eq!(o.poll_timeout(), None);
    // Built: no more asking, and a new request is served at once.
    o.request(32, None, "example.org".into(), 80);
    o.serve_requests(at(50), &mut r);
    o.handle_timeout(at(60), false, &mut r);
    let (events, rest) = drain(&mut o);
    assert!(events.is_empty());
    assert!(matches!(
        rest[..],
        [OriginAction::StreamOpened { conn: 32, .. }]
    ));
}

#[test]
fn isolation_keys_get_their_own_circuits_and_forgotten_clients_nothing() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    let alice = Some((b"alice".to_vec(), b"pw".to_vec()));
    o.request(1, alice.clone(), "a.example".into(), 80);
    o.request(
        2,
        Some((b"bob".to_vec(), b"pw".to_vec())),
        "b.example".into(),
        80,
    );
    o.request(3, alice, "c.example".into(), 80);
    o.serve_requests(at(0), &mut r);
    let (events, _) = drain(&mut o);
    assert_eq!(
        events.iter().filter_map(need).collect::<Vec<_>>(),
        vec![1, 2]
    );

    o.forget_conn(3);
    o.handle_build(at(1), 1, path(4), at(9_000), &mut r);
    o.handle_built(at(2), r.built[0], Duration::from_millis(1), &mut r);
    let (_, rest) = drain(&mut o);
    assert!(matches!(
        rest[..],
        [OriginAction::StreamOpened { conn: 1, .. }]
    ));
    assert_eq!(r.opened.len(), 1, "the forgotten request is not served");

    // No path for bob: his request fails, alice's circuit is untouched.
    o.handle_no_path(at(3), 2);
    let (_, rest) = drain(&mut o);
    assert!(matches!(
        rest[..],
        [OriginAction::RequestFailed { conn: 2 }]
    ));
    // ... and the tag is not asked for again before the back-off.
    o.request(
        4,
        Some((b"bob".to_vec(), b"pw".to_vec())),
        "b.example".into(),
        80,
    );
    o.serve_requests(at(500), &mut r);
    assert!(drain(&mut o).0.is_empty());
    o.serve_requests(at(1_003), &mut r);
    assert_eq!(
        drain(&mut o).0.iter().filter_map(need).collect::<Vec<_>>(),
        vec![2]
    );
}

#[test]
fn failures_are_reported_by_hop_and_three_in_a_row_fail_the_requests() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    o.request(8, None, "x.example".into(), 80);
    o.serve_requests(at(0), &mut r);
    let _ = drain(&mut o);
    let reasons = [
        (CircuitFailure::ChannelFailed, 0),
        (CircuitFailure::ChannelFailed, 1),
        (CircuitFailure::Destroyed(6), 2),
    ];
    for (i, (why, hops_done)) in reasons.into_iter().enumerate() {
        o.handle_build(at(10 * i as u64), 0, path(9), at(60_000), &mut r);
        let circ = r.built[i];
        o.handle_closed(at(10 * i as u64 + 5), circ, why, hops_done, &mut r);
        let (events, rest) = drain(&mut o);
        match (i, &events[..]) {
            (0, [WorkerEvent::GuardUnreachable { tag: 0, guard, .. }, need_again]) => {
                assert_eq!(guard, &[9; 20]);
                assert_eq!(
                    need(need_again),
                    Some(0),
                    "the request still waits: ask again"
                );
            }
            (1, [WorkerEvent::CircuitFailed { hop: Some(1), .. }, need_again]) => {
                assert_eq!(need(need_again), Some(0))
            }
            (2, [WorkerEvent::CircuitFailed { hop: Some(2), .. }]) => {
                assert!(matches!(
                    rest[..],
                    [OriginAction::RequestFailed { conn: 8 }]
                ))
            }
            (i, evs) => panic!("failure {i}: {evs:?}"),
        }
        if i < 2 {
            assert!(rest.is_empty(), "failure {i}: requests wait");
        }
    }
    // A late CircuitClosed for a circuit already accounted for changes nothing.
    o.handle_closed(at(100), r.built[0], CircuitFailure::Closed, 0, &mut r);
    assert!(drain(&mut o).0.is_empty());
}

#[test]
fn builds_past_their_deadline_are_closed_and_replaced() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    o.handle_timeout(at(0), false, &mut r);
    let _ = drain(&mut o);
    o.handle_build(at(0), 0, path(5), at(1_000), &mut r);
    // A duplicate answer while building is ignored.
    o.handle_build(at(1), 0, path(6), at(1_000), &mut r);
    assert_eq!(r.built.len(), 1);
    o.handle_timeout(at(999), false, &mut r);
    assert!(drain(&mut o).0.is_empty());
    o.handle_timeout(at(1_000), false, &mut r);
    assert_eq!(r.closed, r.built);
    let (events, _) = drain(&mut o);
    assert!(
        matches!(events[0], WorkerEvent::CircuitTimedOut { tag: 0, guard, .. } if guard == [5; 20])
    );
    assert_eq!(need(&events[1]), Some(0), "tag 0 is idle again: ask");
    // A stopping client asks no more; a relay never asks.
    o.handle_timeout(at(2_000), true, &mut r);
    let mut relay_side = Origins::<u32>::new(2, false);
    relay_side.handle_timeout(at(0), false, &mut r);
    assert!(drain(&mut relay_side).0.is_empty());
    // A build the relay refuses fails the tag at once.
    r.fail_build = true;
    o.request(3, None, "y.example".into(), 80);
    o.handle_build(at(2_001), 0, path(5), at(9_000), &mut r);
    let (_, rest) = drain(&mut o);
    assert!(matches!(
        rest[..],
        [OriginAction::RequestFailed { conn: 3 }]
    ));
    // An empty path is "no path" too.
    o.handle_build(at(2_002), 0, Vec::new(), at(9_000), &mut r);
    assert_eq!(o.poll_timeout(), None);
}
