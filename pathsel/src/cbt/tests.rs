use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Pareto};

fn approx(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() < tol
}

/// Tor's `test_circuit_timeout_xm_alpha` data (src/test/test.c): 110 slots, 9 modes, 10
/// abandoned; columns i = 0..9 of 100+i, 20+i, 1000+i, 500+i, 200+i, 5000+i, 30+i, 600+i,
/// 200+i, 300+i, then an abandoned circuit.
fn tor_xm_alpha_estimator(num_modes: usize) -> CbtEstimator {
    let cfg = CbtConfig {
        num_modes,
        min_circs: 0,
        ..CbtConfig::default()
    };
    let mut est = CbtEstimator::new(cfg);
    for i in 0..10 {
        for base in [100, 20, 1000, 500, 200, 5000, 30, 600, 200, 300] {
            est.add_build(base + i);
        }
        est.add_timeout();
    }
    est
}

#[test]
fn tor_golden_xm_and_alpha() {
    // Tor's expected (Xm, alpha) per cbtnummodes, CBT_ALPHA_PRECISION 0.00001.
    for (modes, xm, alpha) in [
        (1, 205, 1.394401),
        (3, 117, 0.902313),
        (5, 146, 1.049032),
        (10, 800, 4.851754),
        (15, 800, 4.851754),
        (20, 800, 4.851754),
    ] {
        let fit = tor_xm_alpha_estimator(modes).fit().unwrap();
        assert_eq!(fit.xm_ms, xm, "modes {modes}");
        assert!(
            approx(fit.alpha, alpha, 0.00001),
            "modes {modes}: alpha {}",
            fit.alpha
        );
        assert_eq!(fit.n, 100, "abandoned circuits stay out of the fit");
    }
    let est = tor_xm_alpha_estimator(10);
    assert_eq!((est.n_builds(), est.n_timeouts()), (100, 10));
}

#[test]
fn arti_golden_timeouts() {
    // Arti tor-circmgr timeouts/pareto.rs `pareto_estimate_timeout`: n_modes 2, no minimum.
    let cfg = CbtConfig {
        num_modes: 2,
        min_circs: 0,
        ..CbtConfig::default()
    };
    let mut est = CbtEstimator::new(cfg);
    for ms in [300, 500, 542, 305, 543, 307, 212, 203, 617, 413] {
        est.add_build(ms);
    }
    let fit = est.fit().unwrap();
    assert_eq!(fit.xm_ms, 401);
    assert!(approx(fit.timeout_ms, 493.170, 0.001), "{}", fit.timeout_ms);
    assert!(approx(fit.close_ms, 724.841, 0.001), "{}", fit.close_ms);
    assert_eq!(est.timeout().as_micros(), 493_169);
    assert_eq!(est.close_timeout().as_micros(), 724_841);
    let json = serde_json::to_value(fit).unwrap();
    for key in ["n", "xm_ms", "alpha", "timeout_ms", "close_ms"] {
        assert!(json[key].is_number(), "{key} in {json}");
    }
    assert_eq!(json["n"], 10);
}

#[test]
fn initial_timeout_until_min_circs_and_when_learning_off() {
    let mut est = CbtEstimator::new(CbtConfig::default());
    for i in 0..99 {
        est.add_build(200 + i);
    }
    assert_eq!(est.timeout(), Duration::from_secs(60));
    assert!(est.fit().is_some(), "the fit exists; it is not used yet");
    est.add_build(250);
    assert!(est.is_learned());
    assert!(est.timeout() < Duration::from_secs(1));
    let cfg = CbtConfig {
        learn: false,
        circuit_build_timeout_secs: 30,
        ..CbtConfig::default()
    };
    let mut est = CbtEstimator::new(cfg);
    for i in 0..500 {
        est.add_build(200 + i % 50);
    }
    assert_eq!(est.timeout(), Duration::from_secs(30));
    assert_eq!(est.close_timeout(), Duration::from_secs(30));
}

#[test]
fn minimum_timeout_is_10ms() {
    let cfg = CbtConfig {
        min_circs: 0,
        ..CbtConfig::default()
    };
    let mut est = CbtEstimator::new(cfg);
    // 150 builds of 1 ms and one of 12 ms: Xm = 5, alpha ~ 172, quantile ~ 5 ms.
    for _ in 0..150 {
        est.add_build(1);
    }
    est.add_build(12);
    let fit = est.fit().unwrap();
    assert_eq!(fit.xm_ms, 5);
    assert!(fit.quantile_ms(0.8) < 10.0);
    assert_eq!(fit.timeout_ms, 10.0);
    assert!(fit.close_ms >= 10.0);
}

#[test]
fn ring_keeps_the_last_1000() {
    let mut est = CbtEstimator::new(CbtConfig::default());
    for _ in 0..1000 {
        est.add_build(5000);
    }
    for _ in 0..1000 {
        est.add_build(100);
    }
    let fit = est.fit();
    // All 5000s evicted: every completed build is 100 ms, no spread, no fit.
    assert_eq!(fit, None);
    assert_eq!(est.n_builds(), 1000);
    est.add_build(300);
    let fit = est.fit().unwrap();
    assert_eq!(fit.xm_ms, 105);
    assert_eq!(fit.n, 1000);
}

#[test]
fn network_change_resets_and_doubles() {
    let mut est = CbtEstimator::new(CbtConfig::default());
    // 18 of 20 may time out: no reset yet.
    for _ in 0..2 {
        est.add_build(100);
    }
    for _ in 0..18 {
        est.add_timeout();
    }
    assert_eq!(est.n_builds(), 2);
    assert_eq!(est.timeout(), Duration::from_secs(60));
    // The 19th timeout in the window: history gone, fallback doubled (60 s was in use).
    est.add_timeout();
    assert_eq!((est.n_builds(), est.n_timeouts()), (0, 0));
    assert_eq!(est.timeout(), Duration::from_secs(120));
}

#[test]
fn a_measured_build_enters_the_fit_and_counts_as_a_timeout_for_liveness() {
    let cfg = CbtConfig {
        min_circs: 0,
        ..CbtConfig::default()
    };
    let mut est = CbtEstimator::new(cfg.clone());
    for ms in [100, 110, 120, 130] {
        est.add_build(ms);
    }
    // Past the timeout, then built after 900 ms: a build in the fit, no timed-out slot.
    est.note_timeout();
    assert_eq!((est.n_builds(), est.n_timeouts()), (4, 0), "no slot yet");
    est.add_measured(900);
    assert_eq!((est.n_builds(), est.n_timeouts()), (5, 0));
    assert!(est.state(BIN_WIDTH_MS).bins.contains(&(905, 1)));
    // Past the timeout, then closed at the close timeout: one abandoned slot.
    est.note_timeout();
    est.add_abandoned();
    assert_eq!((est.n_builds(), est.n_timeouts()), (5, 1));

    // Both noted timeouts count toward the network-change check: 17 more make 19 of 20.
    let mut live = CbtEstimator::new(cfg);
    live.add_build(100);
    live.note_timeout();
    live.add_measured(900);
    live.note_timeout();
    live.add_abandoned();
    for _ in 0..16 {
        live.add_timeout();
    }
    assert_eq!(live.n_builds(), 2, "18 timeouts of 20: kept");
    live.add_timeout();
    assert_eq!((live.n_builds(), live.n_timeouts()), (0, 0), "19: reset");
}

#[test]
fn nothing_recorded_while_network_down() {
    let mut est = CbtEstimator::new(CbtConfig::default());
    est.set_network_live(false);
    est.add_build(100);
    est.add_timeout();
    est.note_timeout();
    est.add_measured(900);
    est.add_abandoned();
    assert_eq!((est.n_builds(), est.n_timeouts()), (0, 0));
    est.set_network_live(true);
    est.add_build(100);
    assert_eq!(est.n_builds(), 1);
}

#[test]
fn parse_build_times_lines() {
    assert_eq!(
        parse_build_times("# header\n100\n\n  250 # slow\n7\n").unwrap(),
        vec![100, 250, 7]
    );
    assert_eq!(
        parse_build_times("100\n12.5\n"),
        Err(LineError {
            line: 2,
            reason: "expected a build time in whole milliseconds, found \"12.5\"".into()
        })
    );
    assert_eq!(parse_build_times("1\n2\n-3\n").unwrap_err().line, 3);
    assert_eq!(parse_build_times("99999999999\n").unwrap_err().line, 1);
    // Absurd but u32: refused, saying the range; an hour is the limit.
    let e = parse_build_times("100\n99999999\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(
        e.reason
            .starts_with("build time 99999999 ms is out of range: want 0 to 3600000 ms"),
        "{}",
        e.reason
    );
    assert_eq!(
        parse_build_times("3600000\n70000\n").unwrap(),
        [3_600_000, 70_000]
    );
}

fn pareto_cdf(xm: f64, alpha: f64) -> impl Fn(f64) -> f64 {
    move |x| {
        if x <= xm {
            0.0
        } else {
            1.0 - (xm / x).powf(alpha)
        }
    }
}

fn learned(samples: &[f64]) -> CbtEstimator {
    let mut est = CbtEstimator::new(CbtConfig::default());
    for &s in samples {
        est.add_build(s as u32);
    }
    est
}

/// Statistical check (docs/spec/pathsel.md section 1, Tor's `test_circuit_timeout`): fit 1000
/// build times from a known distribution and read the TRUE CDF at the learned timeout.
///
/// What the estimator can promise: Xm is the mean of the fullest 10 ms bins, which sits
/// above the true Xm, so the fitted tail starts late. For a Pareto the true CDF at the
/// fitted 80% quantile is then `1 - s * 5^-s` with `s = P(X > Xm_est)`: always in
/// [0.771, 0.800], and about 0.785 here (measured over seeds 0..20 for Pareto(500, 0.8):
/// mean 0.785, range 0.762-0.806). So a single fit is within 0.80 +/- 0.02 for roughly three
/// seeds in four; Tor's own test loops adding builds until it lands within 2%. We assert
/// the spec's 0.02 on the mean of 20 independent fits and 0.05 on every single fit, fresh
/// and after a save/reload through 10 ms and 50 ms bins.
fn check_distribution(
    sample: &dyn Fn(&mut ChaCha8Rng) -> f64,
    cdf: &dyn Fn(f64) -> f64,
    seeds: std::ops::Range<u64>,
) {
    let mut fresh = Vec::new();
    for seed in seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let samples: Vec<f64> = (0..1000).map(|_| sample(&mut rng)).collect();
        let est = learned(&samples);
        let p = cdf(est.timeout().as_secs_f64() * 1000.0);
        assert!(
            (p - 0.80).abs() <= 0.05,
            "seed {seed}: true CDF {p:.4} at the learned timeout"
        );
        fresh.push(p);
        for width in [10, 50] {
            let text = est.to_state_text(width);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfeed);
            let back =
                CbtEstimator::from_state_text(&text, CbtConfig::default(), &mut rng).unwrap();
            assert_eq!(back.n_builds(), est.n_builds());
            let p2 = cdf(back.timeout().as_secs_f64() * 1000.0);
            assert!(
                (p2 - 0.80).abs() <= 0.05,
                "seed {seed} width {width}: CDF {p2:.4} after reload"
            );
        }
    }
    let mean = fresh.iter().sum::<f64>() / fresh.len() as f64;
    assert!(
        (mean - 0.80).abs() <= 0.02,
        "mean true CDF {mean:.4} over {} fits",
        fresh.len()
    );
}

#[test]
fn statistical_check_pareto() {
    let dist = Pareto::new(500.0, 0.8).unwrap();
    check_distribution(&|rng| dist.sample(rng), &pareto_cdf(500.0, 0.8), 0..20);
}

#[test]
fn statistical_check_shifted_pareto() {
    // A floor of 100 ms (network RTT) under a Pareto tail.
    let dist = Pareto::new(400.0, 0.8).unwrap();
    let cdf = pareto_cdf(400.0, 0.8);
    check_distribution(
        &|rng| 100.0 + dist.sample(rng),
        &|x| cdf(x - 100.0),
        100..120,
    );
}

#[test]
fn statistical_check_mixed_pareto() {
    // Two guard populations: 70% Pareto(450, 0.9), 30% Pareto(600, 0.9).
    let (a, b) = (
        Pareto::new(450.0, 0.9).unwrap(),
        Pareto::new(600.0, 0.9).unwrap(),
    );
    let (ca, cb) = (pareto_cdf(450.0, 0.9), pareto_cdf(600.0, 0.9));
    check_distribution(
        &|rng| {
            if rng.random_bool(0.7) {
                a.sample(rng)
            } else {
                b.sample(rng)
            }
        },
        &|x| 0.7 * ca(x) + 0.3 * cb(x),
        200..220,
    );
}

/// The fit must be sensitive: a timeout learned from one distribution is wrong for another.
#[test]
fn statistical_check_can_fail() {
    let dist = Pareto::new(500.0, 0.8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let samples: Vec<f64> = (0..1000).map(|_| dist.sample(&mut rng)).collect();
    let t = learned(&samples).timeout().as_secs_f64() * 1000.0;
    let other = pareto_cdf(500.0, 1.6)(t);
    assert!((other - 0.80).abs() > 0.05, "{other}");
}

#[test]
fn state_text_round_trip_and_errors() {
    let est = tor_xm_alpha_estimator(10);
    let text = est.to_state_text(10);
    assert!(text.starts_with("TotalBuildTimes 110\nCircuitBuildAbandonedCount 10\n"));
    assert!(text.contains("CircuitBuildTimeBin 205 20\n"));
    let text50 = est.to_state_text(50);
    assert!(text50.starts_with("CircuitBuildTimeBinWidth 50\nTotalBuildTimes 110\n"));
    // 50 ms bins: [200, 250) holds the twenty 200-209 builds, [0, 50) the 20-39 ones.
    assert!(text50.contains("CircuitBuildTimeBin 225 20\n"));
    assert!(text50.contains("CircuitBuildTimeBin 25 20\n"));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let cfg = CbtConfig {
        min_circs: 0,
        ..CbtConfig::default()
    };
    let back = CbtEstimator::from_state_text(&text, cfg.clone(), &mut rng).unwrap();
    assert_eq!((back.n_builds(), back.n_timeouts()), (100, 10));
    assert_eq!(back.fit().unwrap().xm_ms, 800);
    for (bad, line) in [
        ("TotalBuildTimes 1\nCircuitBuildTimeBin 105 x\n", 2),
        ("CircuitBuildTimeBin 105\n", 1),
        ("Bogus 1\n", 1),
        ("CircuitBuildTimeBin 70000 1\n", 1),
        ("CircuitBuildTimeBin 5 2000000\n", 1),
        ("TotalBuildTimes 5\nCircuitBuildTimeBin 105 3\n", 1),
    ] {
        let err = CbtEstimator::from_state_text(bad, cfg.clone(), &mut rng).unwrap_err();
        assert_eq!(err.line, line, "{bad:?}: {err}");
    }
}
