use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, UNIX_EPOCH};

use kistrel_base::control::HopSpec;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::dir::{synthetic_directory, Flag, RelayFlags, RelayInfo};
use crate::policy::ExitPolicy;

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn key(seq: u64) -> CircuitKey {
    CircuitKey { worker: 1, seq }
}

fn cbt_cfg() -> CbtConfig {
    CbtConfig {
        min_circs: 10,
        ..CbtConfig::default()
    }
}

fn core(cfg: PathConfig) -> (ControlCore, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let dir = synthetic_directory(300, &mut rng);
    (
        ControlCore::new(&dir, cfg, cbt_cfg(), &State::default(), &mut rng),
        rng,
    )
}

fn event(core: &mut ControlCore, rng: &mut ChaCha8Rng, now: Instant, ev: CircuitEvent) {
    let mut out = Vec::new();
    core.handle_event(now, wall(), ev, rng, &mut out);
    assert!(out.is_empty(), "{ev:?} answered {out:?}");
}

/// Asks for circuit `seq` (for `target`) and returns the path and deadline of the answer.
fn launch_for(
    core: &mut ControlCore,
    rng: &mut ChaCha8Rng,
    now: Instant,
    seq: u64,
    target: Option<ExitTarget>,
) -> (Vec<HopSpec>, Instant) {
    let mut out = Vec::new();
    let ev = CircuitEvent::NeedCircuit {
        circuit: key(seq),
        target,
    };
    core.handle_event(now, wall(), ev, rng, &mut out);
    match out.as_slice() {
        [CircuitCommand::BuildCircuit {
            circuit,
            path,
            deadline,
        }] if *circuit == key(seq) => (path.clone(), *deadline),
        other => panic!("expected one BuildCircuit for {seq}, got {other:?}"),
    }
}

fn launch(core: &mut ControlCore, rng: &mut ChaCha8Rng, now: Instant, seq: u64) -> Instant {
    launch_for(core, rng, now, seq, None).1
}

fn built(seq: u64, ms: u64) -> CircuitEvent {
    CircuitEvent::CircuitBuilt {
        circuit: key(seq),
        build_time: Duration::from_millis(ms),
    }
}

/// A core whose estimator is learned: 12 builds of 200-475 ms.
fn learned() -> (ControlCore, ChaCha8Rng) {
    let (mut core, mut rng) = core(PathConfig::default());
    for i in 0..12u64 {
        launch(&mut core, &mut rng, at(0), 100 + i);
        event(&mut core, &mut rng, at(0), built(100 + i, 200 + i * 25));
    }
    assert!(core.cbt().is_learned());
    (core, rng)
}

#[test]
fn build_uses_the_guard_and_initial_timeout() {
    let (mut core, mut rng) = core(PathConfig::default());
    let now = at(5_000);
    let (path, deadline) = launch_for(&mut core, &mut rng, now, 7, None);
    let first = core.guards().sampled()[0].identity;
    assert_eq!(path.len(), 3);
    assert_eq!(path[0].id, first);
    let dir = core.selector().directory();
    for hop in &path {
        let relay = dir.relays().iter().find(|r| r.identity == hop.id).unwrap();
        assert_eq!((hop.ntor_key, hop.addr), (relay.ntor_key, relay.address));
    }
    assert_eq!(deadline, now + Duration::from_secs(60));
    assert_eq!(core.poll_timeout(), Some(now + Duration::from_secs(60)));
    // The same key again is a duplicate: no second build.
    event(
        &mut core,
        &mut rng,
        now,
        CircuitEvent::NeedCircuit {
            circuit: key(7),
            target: None,
        },
    );
    assert_eq!(core.stats().unknown_circuit_events, 1);
    assert_eq!(core.n_pending(), 1);
}

#[test]
fn events_feed_cbt_and_guard_stats() {
    let (mut core, mut rng) = learned();
    launch(&mut core, &mut rng, at(0), 1);
    let failed = CircuitEvent::CircuitFailed {
        circuit: key(1),
        hop: Some(2),
    };
    event(&mut core, &mut rng, at(0), failed);
    assert_eq!((core.cbt().n_builds(), core.cbt().n_timeouts()), (12, 0));
    let g = &core.guards().sampled()[0];
    assert_eq!((g.circuits, g.failures), (13, 1));
    // Learned now (cbtmincircs 10): the deadline follows the fit, not 60 s.
    let deadline = launch(&mut core, &mut rng, at(1_000), 2);
    assert!(deadline < at(3_000), "{deadline:?}");
    // A late duplicate is counted, not applied.
    event(&mut core, &mut rng, at(0), built(1, 1));
    assert_eq!(core.stats().unknown_circuit_events, 1);
    assert_eq!(core.cbt().n_builds(), 12);
    let s = core.stats();
    assert_eq!((s.circuits_built, s.circuits_failed), (12, 1));
}

#[test]
fn a_build_past_the_timeout_is_measured_until_the_close_deadline() {
    let (mut core, mut rng) = learned();
    let (timeout, close) = (core.cbt().timeout(), core.cbt().close_timeout());
    assert!(close > timeout, "{timeout:?} vs {close:?}");
    let deadline = launch(&mut core, &mut rng, at(10_000), 1);
    assert_eq!(deadline, at(10_000) + timeout);
    assert_eq!(core.poll_timeout(), Some(at(10_000) + close));
    // The worker passes the deadline: a timeout for liveness, no ring slot, still pending.
    let timed_out = CircuitEvent::CircuitTimedOut { circuit: key(1) };
    event(&mut core, &mut rng, deadline, timed_out);
    assert_eq!(core.n_pending(), 1);
    assert_eq!((core.cbt().n_builds(), core.cbt().n_timeouts()), (12, 0));
    // Nothing is closed before the close deadline.
    let mut out = Vec::new();
    let real = timeout + (close - timeout) / 2;
    core.handle_timeout(at(10_000) + real, wall(), &mut out);
    assert!(out.is_empty());
    // Built between the two: its real build time enters the fit.
    let ms = real.as_millis() as u64;
    event(&mut core, &mut rng, at(10_000) + real, built(1, ms));
    assert_eq!((core.cbt().n_builds(), core.cbt().n_timeouts()), (13, 0));
    let bin = (ms / 10 * 10 + 5) as u16;
    assert!(core.cbt().state(10).bins.contains(&(bin, 1)), "{ms} ms");
    let s = core.stats();
    assert_eq!((s.circuits_timed_out, s.circuits_measured), (1, 1));
    assert_eq!(s.circuits_built, 12, "measured, not built in time");
    assert_eq!(
        core.guards().sampled()[0].failures,
        0,
        "the guard succeeded"
    );
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn the_close_deadline_closes_the_circuit_and_records_it_abandoned() {
    let (mut core, mut rng) = learned();
    let close = core.cbt().close_timeout();
    launch(&mut core, &mut rng, at(0), 1);
    launch(&mut core, &mut rng, at(5), 2);
    let timed_out = CircuitEvent::CircuitTimedOut { circuit: key(1) };
    event(&mut core, &mut rng, at(1), timed_out);
    let mut out = Vec::new();
    core.handle_timeout(at(0) + (close - Duration::from_millis(1)), wall(), &mut out);
    assert!(out.is_empty());
    core.handle_timeout(at(0) + close, wall(), &mut out);
    assert_eq!(out, vec![CircuitCommand::CloseCircuit { circuit: key(1) }]);
    assert_eq!((core.cbt().n_builds(), core.cbt().n_timeouts()), (12, 1));
    assert_eq!(core.guards().sampled()[0].failures, 1);
    // Circuit 2 never said it timed out: at its close deadline it counts all the same.
    out.clear();
    core.handle_timeout(at(5) + close, wall(), &mut out);
    assert_eq!(out, vec![CircuitCommand::CloseCircuit { circuit: key(2) }]);
    assert_eq!(core.cbt().n_timeouts(), 2);
    assert_eq!(core.n_pending(), 0);
    // The workers confirm; a build report racing the close is not applied.
    event(&mut core, &mut rng, at(9_000), built(1, 900));
    let closed = CircuitEvent::CircuitClosed { circuit: key(1) };
    event(&mut core, &mut rng, at(9_000), closed);
    let s = core.stats();
    assert_eq!((s.circuits_timed_out, s.circuits_closed), (1, 2));
    assert_eq!((s.closes_confirmed, s.unknown_circuit_events), (1, 1));
    assert_eq!(core.cbt().n_builds(), 12);
}

#[test]
fn guard_unreachable_backs_off_and_next_circuit_uses_another() {
    let (mut core, mut rng) = core(PathConfig::default());
    let (path, _) = launch_for(&mut core, &mut rng, at(0), 1, None);
    let ev = CircuitEvent::GuardUnreachable { circuit: key(1) };
    event(&mut core, &mut rng, at(0), ev);
    let (path2, _) = launch_for(&mut core, &mut rng, at(0), 2, None);
    assert_ne!(path2[0].id, path[0].id);
}

fn relay(n: u8, flags: &[Flag], policy: &str) -> RelayInfo {
    RelayInfo {
        nickname: format!("r{n}"),
        identity: [n; 20],
        ed25519_identity: [n; 32],
        ntor_key: [n; 32],
        address: SocketAddr::new(IpAddr::from([10, n, 0, 1]), 9001),
        bandwidth: 100,
        flags: RelayFlags::from_flags(&[&[Flag::Running, Flag::Valid][..], flags].concat()),
        family: Vec::new(),
        exit_policy: policy.parse().unwrap_or(ExitPolicy::default()),
    }
}

/// A guard, a middle, a web exit (80 only) and a mail exit (25 only).
fn two_exits() -> (ControlCore, ChaCha8Rng) {
    let dir = Directory::from_relays(
        vec![
            relay(1, &[Flag::Guard], "reject *:*"),
            relay(2, &[], "reject *:*"),
            relay(3, &[Flag::Exit], "accept *:80, reject *:*"),
            relay(4, &[Flag::Exit], "accept 10.9.0.0/16:25, reject *:*"),
        ],
        None,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let core = ControlCore::new(
        &dir,
        PathConfig::default(),
        cbt_cfg(),
        &State::default(),
        &mut rng,
    );
    (core, rng)
}

#[test]
fn the_target_picks_an_exit_whose_policy_allows_it() {
    let (mut core, mut rng) = two_exits();
    let web = ExitTarget::from_host("example.com", 80);
    let mail = ExitTarget::from_host("10.9.8.7", 25);
    let mut any = [0; 2];
    for seq in 0..40 {
        let (path, _) = launch_for(&mut core, &mut rng, at(0), 3 * seq, Some(web));
        assert_eq!(path[2].id, [3; 20]);
        let (path, _) = launch_for(&mut core, &mut rng, at(0), 3 * seq + 1, Some(mail));
        assert_eq!(path[2].id, [4; 20]);
        let (path, _) = launch_for(&mut core, &mut rng, at(0), 3 * seq + 2, None);
        any[usize::from(path[2].id[0] == 4)] += 1;
    }
    assert!(any[0] > 0 && any[1] > 0, "no target: either exit {any:?}");
}

#[test]
fn a_target_no_exit_allows_is_answered_no_path() {
    let (mut core, mut rng) = two_exits();
    let mut out = Vec::new();
    // Port 25, but outside the mail exit's addresses.
    let target = Some(ExitTarget::from_host("192.0.2.1", 25));
    let ev = CircuitEvent::NeedCircuit {
        circuit: key(1),
        target,
    };
    core.handle_event(at(0), wall(), ev, &mut rng, &mut out);
    assert_eq!(out, vec![CircuitCommand::NoPath { circuit: key(1) }]);
    assert_eq!(core.stats().path_failures, 1);
    assert_eq!(core.n_pending(), 0);
}

#[test]
fn without_entry_guards_no_guard_set_is_used() {
    let (mut core, mut rng) = core(PathConfig {
        use_entry_guards: false,
        ..PathConfig::default()
    });
    for seq in 0..20 {
        launch(&mut core, &mut rng, at(0), seq);
    }
    assert!(core.guards().sampled().is_empty());
}

#[test]
fn state_survives_a_restart() {
    let (mut core, mut rng) = core(PathConfig::default());
    for i in 0..30u64 {
        launch(&mut core, &mut rng, at(0), i);
        event(&mut core, &mut rng, at(0), built(i, 300 + i * 10));
    }
    let state = core.state(wall());
    let dir = core.selector().directory().clone();
    let again = ControlCore::new(&dir, PathConfig::default(), cbt_cfg(), &state, &mut rng);
    assert_eq!(again.cbt().n_builds(), 30);
    // Builds come back at their 10 ms bin midpoints: same Xm, nearly the same timeout.
    assert_eq!(
        again.cbt().fit().unwrap().xm_ms,
        core.cbt().fit().unwrap().xm_ms
    );
    let (a, b) = (
        again.cbt().timeout().as_secs_f64(),
        core.cbt().timeout().as_secs_f64(),
    );
    assert!((a / b - 1.0).abs() < 0.05, "{a} vs {b}");
    assert_eq!(again.guards().sampled(), core.guards().sampled());
}

#[test]
fn no_path_warnings_back_off_to_every_five_minutes() {
    let mut log = NoPathLog::default();
    // A failure every second for an hour.
    let logged: Vec<(u64, u64)> = (0..3600)
        .filter_map(|s| log.due(at(s * 1000)).map(|suppressed| (s, suppressed)))
        .collect();
    let times: Vec<u64> = logged.iter().map(|(s, _)| *s).collect();
    // 1, 2, 4, ... 256 s apart, then 300 s.
    let mut want = vec![0, 1, 3, 7, 15, 31, 63, 127, 255, 511];
    while want.last().unwrap() + 300 < 3600 {
        want.push(want.last().unwrap() + 300);
    }
    assert_eq!(times, want);
    // Every failure is either logged or counted in the next logged one.
    let counted: u64 = logged.iter().map(|(_, n)| n + 1).sum::<u64>() + log.suppressed;
    assert_eq!(counted, 3600);
    // A path found starts over: the next failure is logged at once, then 1 s later.
    log.reset();
    assert_eq!(log.due(at(4_000_000)), Some(0));
    assert_eq!(log.due(at(4_000_500)), None);
    assert_eq!(log.due(at(4_001_000)), Some(1));
}
