//! The control plane with real workers on the simulated network, in virtual time.

mod support;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kistrel_base::control::{CircuitCommand, CircuitEvent, CircuitKey};
use kistrel_base::Instant;
use kistrel_engine::driver::sim::{PipeConfig, SimConn};
use kistrel_engine::driver::Driver;
use kistrel_pathsel::cbt::BIN_WIDTH_MS;
use kistrel_pathsel::{CbtConfig, CbtEstimator, Flag, State};

use support::{
    build_time, drain, open_app, socks_request, RelaySpec, Tor, SERVERS, SOCKS_REPLIES_LEN,
};

const STEP: Duration = Duration::from_millis(1);

/// A history of 200 builds at the quantiles of a Pareto(`xm` ms, `alpha`): learned, with
/// the timeout near `xm * 5^(1/alpha)` and the close timeout near `xm * 100^(1/alpha)`.
fn learned_state(xm: f64, alpha: f64) -> State {
    let times: Vec<u32> = (0..200)
        .map(|i| {
            let u = (f64::from(i) + 0.5) / 200.0;
            (xm / (1.0 - u).powf(1.0 / alpha)) as u32
        })
        .collect();
    let est = CbtEstimator::from_build_times(&times, CbtConfig::default());
    State {
        cbt: Some(est.state(BIN_WIDTH_MS)),
        ..State::default()
    }
}

fn pipe(rtt_ms: u64) -> PipeConfig {
    PipeConfig {
        rtt: Duration::from_millis(rtt_ms),
        ..PipeConfig::default()
    }
}

const GUARD: RelaySpec = RelaySpec {
    n: 1,
    flags: &[Flag::Guard],
    policy: "reject *:*",
    blackhole: false,
};
const MIDDLE: RelaySpec = RelaySpec {
    n: 2,
    flags: &[],
    policy: "reject *:*",
    blackhole: false,
};
const EXIT: RelaySpec = RelaySpec {
    n: 3,
    flags: &[Flag::Exit],
    policy: "accept 10.0.0.0/8:*, reject *:*",
    blackhole: false,
};

fn key(seq: u64) -> CircuitKey {
    CircuitKey { worker: 0, seq }
}

fn is_close(c: &CircuitCommand) -> bool {
    matches!(c, CircuitCommand::CloseCircuit { .. })
}

fn is_build(c: &CircuitCommand) -> bool {
    matches!(c, CircuitCommand::BuildCircuit { .. })
}

/// The deadline `BuildCircuit` gave `circuit`, and when the client got it.
fn deadline_of(tor: &Tor, circuit: CircuitKey) -> (Instant, Instant) {
    match tor.got(circuit, is_build) {
        Some((at, CircuitCommand::BuildCircuit { deadline, .. })) => (at, deadline),
        other => panic!("no BuildCircuit for {circuit}: {other:?}"),
    }
}

/// Proposal 151's tail: a build that passes the learned (80%) timeout is not abandoned; no
/// stream uses it, it keeps building, and its real build time reaches the estimator.
#[test]
fn a_build_past_the_learned_timeout_is_measured_until_the_close_quantile() {
    let mut tor = Tor::new(
        &[GUARD, MIDDLE, EXIT],
        pipe(40),
        CbtConfig::default(),
        &learned_state(80.0, 1.2),
    );
    let cbt = tor.core().cbt();
    let (timeout, close) = (cbt.timeout(), cbt.close_timeout());
    let (builds, abandoned) = (cbt.n_builds(), cbt.n_timeouts());
    let bins_before = cbt.state(BIN_WIDTH_MS).bins;
    tor.run_until(STEP, Duration::from_secs(5), |t| {
        build_time(t, key(0)).is_some()
    })
    .expect("circuit 0 built");

    // Asked at once (tag 0), answered with the learned timeout as the deadline.
    let (asked, deadline) = deadline_of(&tor, key(0));
    assert_eq!(deadline, asked + timeout);
    let timed_out = tor
        .sent(&CircuitEvent::CircuitTimedOut { circuit: key(0) })
        .expect("timed out");
    assert!(
        timed_out >= deadline && timed_out - deadline <= STEP,
        "{timed_out:?}"
    );
    // ... and a replacement asked for at the same moment, for the streams.
    let replacement = CircuitEvent::NeedCircuit {
        circuit: key(1),
        target: None,
    };
    assert_eq!(tor.sent(&replacement), Some(timed_out));
    // Built between the two quantiles: measured with its real time.
    let real = build_time(&tor, key(0)).expect("build time");
    assert!(
        timeout < real && real < close,
        "{timeout:?} < {real:?} < {close:?}"
    );
    let cbt = tor.core().cbt();
    assert_eq!(cbt.n_timeouts(), abandoned, "not abandoned");
    let bin = (real.as_millis() as u16) / 10 * 10 + 5;
    let count = |bins: &[(u16, u32)]| bins.iter().find(|b| b.0 == bin).map_or(0, |b| b.1);
    assert_eq!(
        count(&cbt.state(BIN_WIDTH_MS).bins),
        count(&bins_before) + 1,
        "{real:?} in bin {bin}"
    );
    let stats = tor.core().stats();
    assert_eq!((stats.circuits_timed_out, stats.circuits_measured), (1, 1));
    assert!(cbt.n_builds() > builds);

    // Past the close deadline nothing is closed: the measured circuit was settled, and the
    // worker closed it itself once built (it carries no streams).
    let end = asked + close + Duration::from_millis(100);
    tor.run_until(STEP, end - tor.now(), |_| false);
    assert!(tor.got(key(0), is_close).is_none());
    assert_eq!(tor.core().stats().circuits_closed, 0);
    let built_1 = build_time(&tor, key(1)).expect("the replacement is built");
    assert!(built_1 < timeout, "the replacement in time: {built_1:?}");
    assert_eq!(
        tor.client.worker.relay().circuit_count(),
        1,
        "circuit 1 only"
    );
    assert_eq!(tor.relay(1).relay().circuit_count(), 1, "the guard too");
}

/// The control thread's close timeout closes a circuit that never completes: the worker
/// sends DESTROY, the circuit is freed there and at the guard, and the estimator records it
/// abandoned.
#[test]
fn the_close_timeout_closes_a_stuck_circuit_and_the_worker_destroys_it() {
    let blackhole = RelaySpec {
        blackhole: true,
        ..MIDDLE
    };
    // A narrow tail (close / timeout = 1.25): the replacement asked at circuit 0's timeout
    // is still building, not yet timed out, when circuit 0 is closed.
    let mut tor = Tor::new(
        &[GUARD, blackhole, EXIT],
        pipe(40),
        CbtConfig::default(),
        &learned_state(200.0, 6.0),
    );
    let cbt = tor.core().cbt();
    let (timeout, close) = (cbt.timeout(), cbt.close_timeout());
    let (builds, abandoned) = (cbt.n_builds(), cbt.n_timeouts());
    let closed = |t: &mut Tor| t.got(key(0), is_close).is_some();
    tor.run_until(STEP, Duration::from_secs(5), closed)
        .expect("CloseCircuit sent");

    let (asked, deadline) = deadline_of(&tor, key(0));
    assert_eq!(deadline, asked + timeout);
    let timed_out = CircuitEvent::CircuitTimedOut { circuit: key(0) };
    assert!(tor.sent(&timed_out).is_some_and(|t| t - deadline <= STEP));
    let (close_at, _) = tor.got(key(0), is_close).expect("close");
    assert!(close_at >= asked + close && close_at - (asked + close) <= STEP);
    let (_, replacement_deadline) = deadline_of(&tor, key(1));
    assert!(replacement_deadline > close_at + Duration::from_millis(100));
    // Still open, the worker about to get the command: circuit 0 (measured) and its
    // replacement 1 (stuck as well) at the client and at the guard.
    assert_eq!(tor.client.worker.relay().circuit_count(), 2);
    assert_eq!(tor.relay(1).relay().circuit_count(), 2);

    let freed = CircuitEvent::CircuitClosed { circuit: key(0) };
    tor.run_until(STEP, Duration::from_secs(1), |t| t.sent(&freed).is_some())
        .expect("CircuitClosed reported");
    let reported = tor.sent(&freed).expect("reported");
    assert_eq!(reported - close_at, STEP, "at the worker's next turn");
    assert_eq!(tor.client.worker.relay().circuit_count(), 1, "freed");
    // The DESTROY reaches the guard half a round trip later; it frees its half.
    tor.run_until(STEP, Duration::from_millis(30), |_| false);
    assert_eq!(tor.relay(1).relay().circuit_count(), 1);
    assert!(tor.relay(1).relay().check_invariants().is_ok());
    let cbt = tor.core().cbt();
    assert_eq!(cbt.n_timeouts(), abandoned + 1, "abandoned");
    assert_eq!(cbt.n_builds(), builds);
    let stats = tor.core().stats();
    assert_eq!((stats.circuits_closed, stats.closes_confirmed), (1, 1));
    assert!(build_time(&tor, key(0)).is_none());
}

/// A SOCKS request's target travels in `NeedCircuit`; path selection picks an exit whose
/// policy allows it, and the stream gets through.
#[test]
fn a_stream_target_picks_an_exit_that_allows_it() {
    let web = RelaySpec {
        n: 3,
        flags: &[Flag::Exit],
        policy: "accept 10.0.0.0/8:80, reject *:*",
        blackhole: false,
    };
    let tls = RelaySpec {
        n: 4,
        policy: "accept 10.0.0.0/8:443, reject *:*",
        ..web
    };
    let mut tor = Tor::new(
        &[GUARD, MIDDLE, web, tls],
        pipe(10),
        CbtConfig::default(),
        &State::default(),
    );
    tor.servers
        .listen(SocketAddr::new(SERVERS, 80))
        .expect("80");
    tor.servers
        .listen(SocketAddr::new(SERVERS, 443))
        .expect("443");
    let IpAddr::V4(server) = SERVERS else {
        unreachable!()
    };
    let ports = [80, 443, 443, 80, 443, 80];
    let mut apps: HashMap<SimConn, (u16, Vec<u8>)> = HashMap::new();
    for (i, port) in ports.into_iter().enumerate() {
        let conn = open_app(
            &mut tor.apps,
            &socks_request(&format!("u{i}"), server, port),
        );
        apps.insert(conn, (port, Vec::new()));
    }
    let greeting = |port: u16| format!("hello from {port}").into_bytes();
    let all_served = |apps: &HashMap<SimConn, (u16, Vec<u8>)>| {
        apps.values()
            .all(|(port, rx)| rx.len() >= SOCKS_REPLIES_LEN + greeting(*port).len())
    };
    tor.run_until(STEP, Duration::from_secs(10), |t| {
        drain(
            &mut t.servers,
            |d, local, conn| {
                let hello = greeting(local.port());
                d.send_buf(conn).expect("send").extend_from_slice(&hello);
            },
            |_, _| {},
        );
        drain(
            &mut t.apps,
            |_, _, _| {},
            |conn, bytes| {
                if let Some(app) = apps.get_mut(&conn) {
                    app.1.extend_from_slice(bytes);
                }
            },
        );
        all_served(&apps)
    })
    .expect("every stream served");

    for (port, rx) in apps.values() {
        assert_eq!(rx[SOCKS_REPLIES_LEN - 9], 0, "SOCKS success");
        assert_eq!(rx[SOCKS_REPLIES_LEN..], greeting(*port)[..]);
    }
    // One request per user, each with its target; each answered with a fitting exit.
    let mut seen = Vec::new();
    for (_, ev) in &tor.events {
        let CircuitEvent::NeedCircuit {
            circuit,
            target: Some(target),
        } = ev
        else {
            continue;
        };
        assert_eq!(target.addr, Some(SERVERS));
        let Some((_, CircuitCommand::BuildCircuit { path, .. })) = tor.got(*circuit, is_build)
        else {
            panic!("no path for {circuit}");
        };
        let exit = tor.ids[if target.port == 80 { &3 } else { &4 }];
        assert_eq!(path[2].id, exit, "{target:?}");
        seen.push(target.port);
    }
    seen.sort_unstable();
    assert_eq!(seen, [80, 80, 80, 443, 443, 443]);
}
