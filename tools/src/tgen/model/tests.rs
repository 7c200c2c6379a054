use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

#[test]
fn builtin_models_have_the_published_shapes() {
    let web = Model::web();
    assert_eq!(web.sizes.len(), 1);
    assert_eq!(web.sizes[0].bytes, 320 * 1024);
    assert_eq!(
        web.arrivals,
        Arrivals::Closed {
            think: Some(ThinkTime::Uniform {
                low: 1.0,
                high: 60.0
            })
        }
    );
    let bulk = Model::bulk();
    assert_eq!(bulk.sizes[0].bytes, 5 << 20);
    assert_eq!(bulk.arrivals, Arrivals::Closed { think: None });
    let perf = Model::perf();
    let shape: Vec<(u64, u32, u64)> = perf
        .sizes
        .iter()
        .map(|s| (s.bytes, s.weight, s.timeout.as_secs()))
        .collect();
    assert_eq!(
        shape,
        vec![(50 << 10, 12, 15), (1 << 20, 2, 60), (5 << 20, 1, 120)]
    );
    assert!(matches!(perf.arrivals, Arrivals::Open { .. }));
}

#[test]
fn perf_sizes_follow_the_weights() {
    let perf = Model::perf();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut n = [0u32; 3];
    for _ in 0..15_000 {
        n[perf.pick_size(&mut rng)] += 1;
    }
    // Expected 12000 / 2000 / 1000; seeded, so this is one fixed draw, within 5 %.
    assert!((11_400..=12_600).contains(&n[0]), "{n:?}");
    assert!((1_900..=2_100).contains(&n[1]), "{n:?}");
    assert!((950..=1_050).contains(&n[2]), "{n:?}");
}

#[test]
fn pick_size_maps_the_draw_through_cumulative_weights() {
    // With weights 12:2:1, draw x in 0..15 gives 0 for x < 12, 1 for 12..14, 2 for 14.
    let perf = Model::perf();
    let mut a = ChaCha8Rng::seed_from_u64(5);
    let mut b = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..200 {
        let x: u64 = rand::Rng::random_range(&mut b, 0..15u64);
        let want = if x < 12 {
            0
        } else if x < 14 {
            1
        } else {
            2
        };
        assert_eq!(perf.pick_size(&mut a), want);
    }
}

#[test]
fn open_schedule_is_a_function_of_the_seed() {
    let mut m = Model::perf();
    m.arrivals = Arrivals::Open { rate: 10.0 };
    let a: Vec<Arrival> = m
        .schedule(ChaCha8Rng::seed_from_u64(9))
        .take(2000)
        .collect();
    let b: Vec<Arrival> = m
        .schedule(ChaCha8Rng::seed_from_u64(9))
        .take(2000)
        .collect();
    assert_eq!(a, b);
    let c: Vec<Arrival> = m
        .schedule(ChaCha8Rng::seed_from_u64(10))
        .take(2000)
        .collect();
    assert_ne!(a, c);
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    // Mean gap 1/rate = 0.1 s: 2000 arrivals end near 200 s.
    let end = a[1999].at.as_secs_f64();
    assert!((180.0..220.0).contains(&end), "{end}");
    assert!(Model::web()
        .schedule(ChaCha8Rng::seed_from_u64(1))
        .next()
        .is_none());
}

#[test]
fn think_times_sample_in_range() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let u = ThinkTime::Uniform {
        low: 1.0,
        high: 60.0,
    };
    for _ in 0..1000 {
        let d = u.sample(&mut rng);
        assert!(
            d >= Duration::from_secs(1) && d < Duration::from_secs(60),
            "{d:?}"
        );
    }
    let c = ThinkTime::Constant { seconds: 0.25 };
    assert_eq!(c.sample(&mut rng), Duration::from_millis(250));
    let p = ThinkTime::Pareto {
        scale: 2.0,
        shape: 1.5,
    };
    assert!((0..1000).all(|_| p.sample(&mut rng) >= Duration::from_secs(2)));
}

#[test]
fn think_cli_forms() {
    assert_eq!(
        ThinkTime::parse_cli("exp:2.5"),
        Ok(ThinkTime::Exponential { mean: 2.5 })
    );
    assert_eq!(
        ThinkTime::parse_cli("uniform:1,60"),
        Ok(ThinkTime::Uniform {
            low: 1.0,
            high: 60.0
        })
    );
    assert_eq!(
        ThinkTime::parse_cli("const:0"),
        Ok(ThinkTime::Constant { seconds: 0.0 })
    );
    assert_eq!(
        ThinkTime::parse_cli("uniform:5,1"),
        Err("`uniform:5,1`: uniform: need 0 <= low < high".into())
    );
    assert!(ThinkTime::parse_cli("gauss:1").is_err());
    assert!(ThinkTime::parse_cli("exp:x").is_err());
}

#[test]
fn perf_size_sequence_for_seed_2026() {
    // A fixed vector: the same seed must pick the same sizes in every build (reruns of an
    // experiment are comparable only then). Indices 0/1/2 = 50 KiB / 1 MiB / 5 MiB.
    let perf = Model::perf();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let got: Vec<usize> = (0..30).map(|_| perf.pick_size(&mut rng)).collect();
    let want = [
        0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 0,
    ];
    assert_eq!(got, want);
}
