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
fn drain(o: &mut Origins<u32>) -> (Vec<CircuitEvent>, Vec<OriginAction<u32>>) {
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

fn key(seq: u64) -> CircuitKey {
    CircuitKey { worker: 2, seq }
}

fn need(circuit: CircuitKey, target: Option<ExitTarget>) -> CircuitEvent {
    CircuitEvent::NeedCircuit { circuit, target }
}

fn build(seq: u64, guard: u8, deadline: Instant) -> CircuitCommand {
    CircuitCommand::BuildCircuit {
        circuit: key(seq),
        path: path(guard),
        deadline,
    }
}

fn target(host: &str, port: u16) -> Option<ExitTarget> {
    Some(ExitTarget::from_host(host, port))
}

#[test]
fn a_client_keeps_a_circuit_and_serves_requests_once_it_is_built() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    o.handle_timeout(at(0), false, &mut r);
    o.handle_timeout(at(1), false, &mut r);
    assert_eq!(drain(&mut o).0, vec![need(key(0), None)], "asked once");

    o.handle_command(at(10), build(0, 7, at(5_000)), &mut r);
    assert_eq!(o.poll_timeout(), Some(at(5_000)));
    o.request(31, None, "example.com".into(), 443);
    o.serve_requests(at(11), &mut r);
    assert!(r.opened.is_empty(), "not built yet");
    assert!(drain(&mut o).0.is_empty(), "building: no second ask");

    let circ = r.built[0];
    o.handle_built(at(40), circ, Duration::from_millis(30), &mut r);
    let (events, rest) = drain(&mut o);
    let built = CircuitEvent::CircuitBuilt {
        circuit: key(0),
        build_time: Duration::from_millis(30),
    };
    assert_eq!(events, vec![built]);
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
    // The built circuit closes: the next request asks for a new one, for its target.
    o.handle_closed(at(70), circ, CircuitFailure::Destroyed(3), 1, &mut r);
    o.request(33, None, "10.1.2.3".into(), 25);
    o.serve_requests(at(71), &mut r);
    assert_eq!(drain(&mut o).0, vec![need(key(1), target("10.1.2.3", 25))]);
}

#[test]
fn isolation_keys_get_their_own_circuits_and_forgotten_clients_nothing() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    let alice = Some((b"alice".to_vec(), b"pw".to_vec()));
    let bob = Some((b"bob".to_vec(), b"pw".to_vec()));
    o.request(1, alice.clone(), "a.example".into(), 80);
    o.request(2, bob.clone(), "b.example".into(), 8080);
    o.request(3, alice, "c.example".into(), 443);
    o.serve_requests(at(0), &mut r);
    let (events, _) = drain(&mut o);
    assert_eq!(
        events,
        vec![
            need(key(0), target("a.example", 80)),
            need(key(1), target("b.example", 8080))
        ],
        "one ask per tag, for its first request's target"
    );

    o.forget_conn(3);
    o.handle_command(at(1), build(0, 4, at(9_000)), &mut r);
    o.handle_built(at(2), r.built[0], Duration::from_millis(1), &mut r);
    let (_, rest) = drain(&mut o);
    assert!(matches!(
        rest[..],
        [OriginAction::StreamOpened { conn: 1, .. }]
    ));
    assert_eq!(r.opened.len(), 1, "the forgotten request is not served");

    // No path for bob: his request fails, alice's circuit is untouched.
    let no_path = CircuitCommand::NoPath { circuit: key(1) };
    o.handle_command(at(3), no_path, &mut r);
    let (_, rest) = drain(&mut o);
    assert!(matches!(
        rest[..],
        [OriginAction::RequestFailed { conn: 2 }]
    ));
    // ... and the tag is not asked for again before the back-off.
    o.request(4, bob, "b.example".into(), 80);
    o.serve_requests(at(500), &mut r);
    assert!(drain(&mut o).0.is_empty());
    o.serve_requests(at(1_003), &mut r);
    let (events, _) = drain(&mut o);
    assert_eq!(events, vec![need(key(2), target("b.example", 80))]);
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
        let seq = i as u64;
        o.handle_command(at(10 * seq), build(seq, 9, at(60_000)), &mut r);
        let circ = r.built[i];
        o.handle_closed(at(10 * seq + 5), circ, why, hops_done, &mut r);
        let (events, rest) = drain(&mut o);
        let (circuit, again) = (key(seq), need(key(seq + 1), target("x.example", 80)));
        match i {
            0 => assert_eq!(
                events,
                vec![CircuitEvent::GuardUnreachable { circuit }, again],
                "the request still waits: ask again"
            ),
            1 => assert_eq!(
                events,
                vec![
                    CircuitEvent::CircuitFailed {
                        circuit,
                        hop: Some(1)
                    },
                    again
                ]
            ),
            _ => {
                let failed = CircuitEvent::CircuitFailed {
                    circuit,
                    hop: Some(2),
                };
                assert_eq!(events, vec![failed]);
                assert!(matches!(
                    rest[..],
                    [OriginAction::RequestFailed { conn: 8 }]
                ));
            }
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
fn a_build_past_its_deadline_is_measured_and_closed_once_built() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    o.handle_timeout(at(0), false, &mut r);
    let _ = drain(&mut o);
    o.handle_command(at(0), build(0, 5, at(1_000)), &mut r);
    o.request(3, None, "y.example".into(), 80);
    o.handle_timeout(at(999), false, &mut r);
    assert!(drain(&mut o).0.is_empty());
    o.handle_timeout(at(1_000), false, &mut r);
    assert!(r.closed.is_empty(), "past the deadline: kept");
    let (events, _) = drain(&mut o);
    assert_eq!(
        events,
        vec![
            CircuitEvent::CircuitTimedOut { circuit: key(0) },
            need(key(1), None),
        ],
        "tag 0 has no circuit on its way: ask again"
    );
    assert_eq!(o.poll_timeout(), None, "no deadline for a measured circuit");
    // The measured circuit completes: its real time is reported, it serves no stream and
    // closes without a CircuitClosed (the control thread did not ask).
    let measured = r.built[0];
    o.handle_built(at(1_700), measured, Duration::from_millis(1_700), &mut r);
    let built = CircuitEvent::CircuitBuilt {
        circuit: key(0),
        build_time: Duration::from_millis(1_700),
    };
    assert_eq!(drain(&mut o).0, vec![built]);
    assert_eq!(r.closed, vec![measured]);
    assert!(r.opened.is_empty());
    o.handle_closed(at(1_701), measured, CircuitFailure::Closed, 3, &mut r);
    assert!(drain(&mut o).0.is_empty());
    // The replacement serves the request.
    o.handle_command(at(1_702), build(1, 6, at(9_000)), &mut r);
    o.handle_built(at(1_750), r.built[1], Duration::from_millis(48), &mut r);
    assert_eq!(r.opened, vec![(r.built[1], "y.example".to_owned(), 80)]);
    o.handle_command(at(2_000), build(1, 6, at(9_000)), &mut r);
    assert_eq!(r.built.len(), 2, "a repeated answer builds nothing");
    // A measured circuit that fails is reported as a failure, and the tag keeps its circuit.
    o.request(
        4,
        Some((b"u".to_vec(), b"p".to_vec())),
        "w.example".into(),
        80,
    );
    o.serve_requests(at(2_001), &mut r);
    let _ = drain(&mut o);
    o.handle_command(at(2_002), build(2, 6, at(2_100)), &mut r);
    o.handle_timeout(at(2_100), false, &mut r);
    let why = CircuitFailure::Destroyed(2);
    o.handle_closed(at(2_200), r.built[2], why, 1, &mut r);
    let failed = CircuitEvent::CircuitFailed {
        circuit: key(2),
        hop: Some(1),
    };
    let (events, _) = drain(&mut o);
    assert_eq!(events[0], CircuitEvent::CircuitTimedOut { circuit: key(2) });
    assert_eq!(events[1], need(key(3), target("w.example", 80)));
    assert_eq!(events[2..], [failed]);
}

#[test]
fn close_circuit_closes_and_reports_once_the_relay_freed_it() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    o.handle_timeout(at(0), false, &mut r);
    o.handle_command(at(0), build(0, 5, at(1_000)), &mut r);
    o.handle_timeout(at(1_000), false, &mut r);
    let _ = drain(&mut o);
    // Measuring circuit 0, asked circuit 1 (its answer was lost): the control gives up on both.
    let close = |seq| CircuitCommand::CloseCircuit { circuit: key(seq) };
    o.handle_command(at(3_000), close(0), &mut r);
    assert_eq!(r.closed, r.built, "DESTROY");
    assert!(drain(&mut o).0.is_empty(), "reported once freed");
    o.handle_closed(at(3_000), r.built[0], CircuitFailure::Closed, 1, &mut r);
    let closed = |seq| CircuitEvent::CircuitClosed { circuit: key(seq) };
    assert_eq!(drain(&mut o).0, vec![closed(0)]);
    o.handle_command(at(3_001), close(1), &mut r);
    o.handle_timeout(at(3_002), false, &mut r);
    assert_eq!(
        drain(&mut o).0,
        vec![closed(1), need(key(2), None)],
        "withdrawn at once; tag 0 asks anew"
    );
    // A building circuit is closed too; the tag asks anew once it is gone.
    o.handle_command(at(3_003), build(2, 5, at(9_000)), &mut r);
    o.handle_command(at(3_004), close(2), &mut r);
    assert_eq!(r.closed.len(), 2);
    o.handle_closed(at(3_004), r.built[1], CircuitFailure::Closed, 0, &mut r);
    o.handle_timeout(at(3_005), false, &mut r);
    assert_eq!(drain(&mut o).0, vec![closed(2), need(key(3), None)]);
    // A built circuit carries streams: a close (crossing its CircuitBuilt) leaves it.
    o.handle_command(at(3_006), build(3, 5, at(9_000)), &mut r);
    o.handle_built(at(3_010), r.built[2], Duration::from_millis(4), &mut r);
    let _ = drain(&mut o);
    o.handle_command(at(3_011), close(3), &mut r);
    o.handle_command(at(3_011), close(99), &mut r);
    assert_eq!(r.closed.len(), 2);
    assert!(drain(&mut o).0.is_empty());
    // A NoPath for a circuit already answered is not an answer: ignored.
    o.handle_command(
        at(3_012),
        CircuitCommand::NoPath { circuit: key(3) },
        &mut r,
    );
    o.request(5, None, "z.example".into(), 80);
    o.serve_requests(at(3_013), &mut r);
    assert!(matches!(
        drain(&mut o).1[..],
        [OriginAction::StreamOpened { conn: 5, .. }]
    ));
}

#[test]
fn stale_answers_stopping_clients_and_relays() {
    let mut o = Origins::new(2, true);
    let mut r = FakeRelay::new();
    // An answer for a key never handed out builds nothing.
    o.handle_command(at(0), build(7, 5, at(1_000)), &mut r);
    assert!(r.built.is_empty());
    // A stopping client asks no more; a relay never asks.
    o.handle_timeout(at(0), true, &mut r);
    assert!(drain(&mut o).0.is_empty());
    let mut relay_side = Origins::<u32>::new(2, false);
    relay_side.handle_timeout(at(0), false, &mut r);
    assert!(drain(&mut relay_side).0.is_empty());
    // A build the relay refuses is a failure of that circuit and fails the tag at once.
    o.handle_timeout(at(1), false, &mut r);
    let _ = drain(&mut o);
    r.fail_build = true;
    o.request(3, None, "y.example".into(), 80);
    o.handle_command(at(2), build(0, 5, at(9_000)), &mut r);
    let (events, rest) = drain(&mut o);
    let failed = CircuitEvent::CircuitFailed {
        circuit: key(0),
        hop: None,
    };
    assert_eq!(events, vec![failed]);
    assert!(matches!(
        rest[..],
        [OriginAction::RequestFailed { conn: 3 }]
    ));
    assert_eq!(o.poll_timeout(), None);
}
