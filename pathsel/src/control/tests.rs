use super::*;
use crate::dir::synthetic_directory;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::UNIX_EPOCH;

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn core(cfg: PathConfig) -> (ControlCore, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let dir = synthetic_directory(300, &mut rng);
    let cbt = CbtConfig {
        min_circs: 10,
        ..CbtConfig::default()
    };
    (
        ControlCore::new(&dir, cfg, cbt, &State::default(), &mut rng),
        rng,
    )
}

fn launch(
    core: &mut ControlCore,
    rng: &mut ChaCha8Rng,
    now: Duration,
) -> (CircuitKey, Path, Duration, Duration) {
    let mut out = Vec::new();
    core.handle_event(
        now,
        wall(),
        Event::NeedCircuit {
            worker: 1,
            target: None,
        },
        rng,
        &mut out,
    );
    match out.as_slice() {
        [Command::BuildCircuit {
            circuit,
            path,
            deadline,
            close_deadline,
        }] => (*circuit, *path, *deadline, *close_deadline),
        other => panic!("expected one BuildCircuit, got {other:?}"),
    }
}

#[test]
fn build_uses_the_guard_and_initial_timeout() {
    let (mut core, mut rng) = core(PathConfig::default());
    let now = Duration::from_secs(5);
    let (key, path, deadline, close) = launch(&mut core, &mut rng, now);
    assert_eq!(key.worker, 1);
    let first = core.guards().sampled()[0].identity;
    assert_eq!(
        core.selector().directory().relays()[path.guard].identity,
        first
    );
    assert_eq!(deadline, now + Duration::from_secs(60));
    assert_eq!(close, now + Duration::from_secs(60));
    assert_eq!(core.poll_timeout(), Some(close));
}

#[test]
fn events_feed_cbt_and_guard_stats() {
    let (mut core, mut rng) = core(PathConfig::default());
    let mut out = Vec::new();
    for i in 0..12u32 {
        let (key, ..) = launch(&mut core, &mut rng, Duration::ZERO);
        core.handle_event(
            Duration::ZERO,
            wall(),
            Event::CircuitBuilt {
                circuit: key,
                build_ms: 200 + i * 25,
            },
            &mut rng,
            &mut out,
        );
    }
    let (key, ..) = launch(&mut core, &mut rng, Duration::ZERO);
    core.handle_event(
        Duration::ZERO,
        wall(),
        Event::CircuitFailed {
            circuit: key,
            hop: 2,
        },
        &mut rng,
        &mut out,
    );
    let (key, ..) = launch(&mut core, &mut rng, Duration::ZERO);
    core.handle_event(
        Duration::ZERO,
        wall(),
        Event::CircuitTimedOut { circuit: key },
        &mut rng,
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!((core.cbt().n_builds(), core.cbt().n_timeouts()), (12, 1));
    let g = &core.guards().sampled()[0];
    assert_eq!((g.circuits, g.failures), (14, 2));
    // Learned now (cbtmincircs 10): the deadline follows the fit, not 60 s.
    let (_, _, deadline, _) = launch(&mut core, &mut rng, Duration::from_secs(1));
    assert!(deadline < Duration::from_secs(3), "{deadline:?}");
    // A late duplicate is counted, not applied.
    core.handle_event(
        Duration::ZERO,
        wall(),
        Event::CircuitBuilt {
            circuit: key,
            build_ms: 1,
        },
        &mut rng,
        &mut out,
    );
    assert_eq!(core.stats().unknown_circuit_events, 1);
    assert_eq!(core.cbt().n_builds(), 12);
}

#[test]
fn guard_unreachable_backs_off_and_next_circuit_uses_another() {
    let (mut core, mut rng) = core(PathConfig::default());
    let mut out = Vec::new();
    let (key, path, ..) = launch(&mut core, &mut rng, Duration::ZERO);
    core.handle_event(
        Duration::ZERO,
        wall(),
        Event::GuardUnreachable { circuit: key },
        &mut rng,
        &mut out,
    );
    let (_, path2, ..) = launch(&mut core, &mut rng, Duration::ZERO);
    assert_ne!(path2.guard, path.guard);
}

#[test]
fn expired_circuits_are_closed_and_abandoned() {
    let (mut core, mut rng) = core(PathConfig::default());
    let (key, _, _, close) = launch(&mut core, &mut rng, Duration::ZERO);
    let mut out = Vec::new();
    core.handle_timeout(close - Duration::from_millis(1), wall(), &mut out);
    assert!(out.is_empty());
    core.handle_timeout(close, wall(), &mut out);
    assert_eq!(out, vec![Command::CloseCircuit { circuit: key }]);
    assert_eq!(core.n_pending(), 0);
    let g = &core.guards().sampled()[0];
    assert_eq!((g.circuits, g.failures), (0, 0), "abandoned: no statistics");
    assert_eq!(core.cbt().n_timeouts(), 0);
}

#[test]
fn without_entry_guards_no_guard_set_is_used() {
    let (mut core, mut rng) = core(PathConfig {
        use_entry_guards: false,
        ..PathConfig::default()
    });
    for _ in 0..20 {
        launch(&mut core, &mut rng, Duration::ZERO);
    }
    assert!(core.guards().sampled().is_empty());
}

#[test]
fn state_survives_a_restart() {
    let (mut core, mut rng) = core(PathConfig::default());
    let mut out = Vec::new();
    for i in 0..30u32 {
        let (key, ..) = launch(&mut core, &mut rng, Duration::ZERO);
        core.handle_event(
            Duration::ZERO,
            wall(),
            Event::CircuitBuilt {
                circuit: key,
                build_ms: 300 + i * 10,
            },
            &mut rng,
            &mut out,
        );
    }
    let state = core.state(wall());
    let dir = core.selector().directory().clone();
    let cbt = CbtConfig {
        min_circs: 10,
        ..CbtConfig::default()
    };
    let again = ControlCore::new(&dir, PathConfig::default(), cbt, &state, &mut rng);
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
fn full_queue_drops_and_counts() {
    let (tx, rx) = event_queue(2);
    let tx2 = tx.clone();
    let ev = Event::CircuitTimedOut {
        circuit: CircuitKey { worker: 0, id: 1 },
    };
    assert!(tx.try_send(ev));
    assert!(tx2.try_send(ev));
    assert!(!tx.try_send(ev), "full: dropped, not blocked");
    assert!(!tx2.try_send(ev));
    assert_eq!((tx.dropped(), rx.dropped()), (2, 2));
    assert_eq!(rx.try_recv(), Some(ev));
    assert!(tx.try_send(ev));
    assert_eq!(rx.try_recv(), Some(ev));
    assert_eq!(rx.try_recv(), Some(ev));
    assert_eq!(rx.try_recv(), None);
    drop(rx);
    assert!(!tx.try_send(ev), "disconnected: dropped and counted");
    assert_eq!(tx.dropped(), 3);

    let (ctx, crx) = command_queue(1);
    let cmd = Command::CloseCircuit {
        circuit: CircuitKey { worker: 0, id: 1 },
    };
    assert!(ctx.try_send(cmd));
    assert!(!ctx.try_send(cmd));
    assert_eq!(ctx.dropped(), 1);
    assert_eq!(crx.try_recv(), Some(cmd));
}
