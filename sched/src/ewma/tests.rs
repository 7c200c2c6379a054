use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const HALF: EwmaConfig = EwmaConfig {
    halflife: Duration::from_secs(30),
};

/// The one float comparison of these tests: relative tolerance 1e-9.
#[track_caller]
fn assert_approx(got: f64, want: f64) {
    let tol = 1e-9 * want.abs().max(1e-300);
    assert!((got - want).abs() <= tol, "got {got}, want {want}");
}

fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1000)
}

fn write_n(mux: &mut CircuitMux<u32>, now: Instant, circ: u32, ewma: &mut CellEwma, n: u32) {
    for _ in 0..n {
        mux.note_written(now, circ, ewma);
    }
}

#[test]
fn count_decays_by_half_each_halflife() {
    let mut mux = CircuitMux::new(&HALF);
    let mut a = CellEwma::new();
    mux.activate(secs(0), 1, &mut a);
    write_n(&mut mux, secs(0), 1, &mut a, 4);
    assert_approx(a.count_at(&HALF, secs(0)), 4.0);
    assert_approx(a.count_at(&HALF, secs(30)), 2.0);
    assert_approx(a.count_at(&HALF, secs(60)), 1.0);
    assert_approx(a.count_at(&HALF, secs(15)), 4.0 * 0.5f64.sqrt());
    mux.note_written(secs(30), 1, &mut a);
    assert_approx(a.count_at(&HALF, secs(30)), 3.0);
    assert_approx(
        mux.best_priority(secs(30)).map_or(-1.0, Priority::count),
        3.0,
    );
    assert_approx(
        mux.best_priority(secs(60)).map_or(-1.0, Priority::count),
        1.5,
    );
}

#[test]
fn quiet_circuit_is_served_before_bulk() {
    let mut mux = CircuitMux::new(&HALF);
    let (mut bulk, mut quiet) = (CellEwma::new(), CellEwma::new());
    mux.activate(secs(0), 1, &mut bulk);
    write_n(&mut mux, secs(0), 1, &mut bulk, 100);
    assert_eq!(mux.peek(), Some(1));
    mux.activate(secs(1), 2, &mut quiet);
    assert_eq!(mux.peek(), Some(2));
    // The quiet circuit keeps the lead until its own count passes the bulk one's.
    write_n(&mut mux, secs(1), 2, &mut quiet, 97);
    assert_eq!(mux.peek(), Some(2));
    let bulk_now = bulk.count_at(&HALF, secs(1));
    assert_approx(bulk_now, 100.0 * 0.5f64.powf(1.0 / 30.0)); // 97.72
    mux.note_written(secs(1), 2, &mut quiet);
    assert_eq!(mux.peek(), Some(1));
    assert_eq!(mux.len(), 2);
}

#[test]
fn decay_reorders_old_bulk_behind_recent_burst() {
    let mut mux = CircuitMux::new(&HALF);
    let (mut a, mut b) = (CellEwma::new(), CellEwma::new());
    mux.activate(secs(0), 1, &mut a);
    mux.activate(secs(0), 2, &mut b);
    write_n(&mut mux, secs(0), 1, &mut a, 8);
    assert_eq!(mux.peek(), Some(2));
    write_n(&mut mux, secs(60), 2, &mut b, 3);
    // At 60 s: a = 8 / 4 = 2, b = 3.
    assert_eq!(mux.peek(), Some(1));
    assert_approx(
        mux.best_priority(secs(60)).map_or(-1.0, Priority::count),
        2.0,
    );
}

#[test]
fn ties_go_to_the_circuit_activated_first() {
    let mut mux = CircuitMux::new(&HALF);
    let mut e = [CellEwma::new(); 3];
    for (i, ewma) in e.iter_mut().enumerate() {
        mux.activate(secs(0), 10 - i as u32, ewma);
    }
    assert_eq!(mux.peek(), Some(10));
    mux.note_written(secs(0), 10, &mut e[0]);
    assert_eq!(mux.peek(), Some(9));
}

#[test]
fn count_persists_while_inactive() {
    let mut mux = CircuitMux::new(&HALF);
    let (mut a, mut b) = (CellEwma::new(), CellEwma::new());
    mux.activate(secs(0), 1, &mut a);
    write_n(&mut mux, secs(0), 1, &mut a, 10);
    mux.deactivate(1, &mut a);
    assert!(!a.is_active());
    assert!(mux.is_empty());
    assert_eq!(mux.peek(), None);
    assert_eq!(mux.best_priority(secs(0)), None);
    mux.activate(secs(30), 2, &mut b);
    write_n(&mut mux, secs(30), 2, &mut b, 6);
    mux.activate(secs(30), 1, &mut a);
    // a = 10 / 2 = 5 < b = 6.
    assert_eq!(mux.peek(), Some(1));
    assert_approx(
        mux.best_priority(secs(30)).map_or(-1.0, Priority::count),
        5.0,
    );
    // Deactivating twice, or an inactive circuit, changes nothing.
    mux.deactivate(1, &mut a);
    mux.deactivate(1, &mut a);
    assert_eq!(mux.peek(), Some(2));
    assert_eq!(mux.len(), 1);
}

#[test]
fn note_written_for_a_non_head_circuit_reorders() {
    let mut mux = CircuitMux::new(&HALF);
    let mut e = [CellEwma::new(); 3];
    for (i, ewma) in e.iter_mut().enumerate() {
        mux.activate(secs(0), i as u32, ewma);
        write_n(&mut mux, secs(0), i as u32, ewma, i as u32 + 1);
    }
    assert_eq!(mux.peek(), Some(0));
    // Circuit 2 (3 cells) writes again; circuit 0 keeps the lead.
    mux.note_written(secs(0), 2, &mut e[2]);
    assert_eq!(mux.peek(), Some(0));
    assert_approx(e[2].count_at(&HALF, secs(0)), 4.0);
}

#[test]
fn halflife_zero_is_round_robin() {
    let cfg = EwmaConfig::ROUND_ROBIN;
    let mut mux = CircuitMux::new(&cfg);
    assert!(mux.is_round_robin());
    let mut e = [CellEwma::new(); 4];
    for c in 0..3 {
        mux.activate(secs(0), c, &mut e[c as usize]);
    }
    let mut order = Vec::new();
    for _ in 0..6 {
        let c = mux.peek().unwrap_or(99);
        order.push(c);
        mux.note_written(secs(0), c, &mut e[c as usize]);
    }
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    // A bulk history gives no disadvantage: only the rotation counts.
    mux.deactivate(1, &mut e[1]);
    mux.activate(secs(1), 3, &mut e[3]);
    let mut order = Vec::new();
    for _ in 0..6 {
        let c = mux.peek().unwrap_or(99);
        order.push(c);
        mux.note_written(secs(1), c, &mut e[c as usize]);
    }
    assert_eq!(order, [0, 2, 3, 0, 2, 3]);
    assert_eq!(mux.best_priority(secs(1)), Some(Priority::ROUND_ROBIN));
    assert_eq!(e[0].count_at(&cfg, secs(1)), 0.0);
    // Writing a non-head circuit sends it to the back.
    mux.note_written(secs(1), 2, &mut e[2]);
    assert_eq!(mux.peek(), Some(0));
    mux.note_written(secs(1), 0, &mut e[0]);
    assert_eq!(mux.peek(), Some(3));
}

#[test]
fn priorities_compare_across_muxes_and_epochs() {
    // Epoch length is 64 * 30 s = 1920 s; cross it with one mux only.
    let mut m1 = CircuitMux::new(&HALF);
    let mut m2 = CircuitMux::new(&HALF);
    let (mut a, mut b) = (CellEwma::new(), CellEwma::new());
    m1.activate(secs(1900), 1, &mut a);
    write_n(&mut m1, secs(1900), 1, &mut a, 60);
    m2.activate(secs(1930), 2, &mut b);
    write_n(&mut m2, secs(1930), 2, &mut b, 50);
    let now = secs(1935);
    let p1 = m1.best_priority(now).map_or(-1.0, Priority::count);
    let p2 = m2.best_priority(now).map_or(-1.0, Priority::count);
    assert_approx(p1, 60.0 * 0.5f64.powf(35.0 / 30.0));
    assert_approx(p2, 50.0 * 0.5f64.powf(5.0 / 30.0));
    // 26.7 < 44.5: the larger but older burst has decayed more.
    assert!(m1.best_priority(now) < m2.best_priority(now));
    // After m1 is touched in the new epoch (rescaled), the answers are unchanged.
    let mut c = CellEwma::new();
    m1.activate(now, 3, &mut c);
    m1.deactivate(3, &mut c);
    assert_approx(m1.best_priority(now).map_or(-1.0, Priority::count), p1);
    // Both decay at the same rate: an hour later the order and the ratio are the same.
    let later = secs(1935 + 3600);
    assert_approx(
        m1.best_priority(later).map_or(-1.0, Priority::count),
        60.0 * 0.5f64.powf(3635.0 / 30.0),
    );
    assert!(m1.best_priority(later) < m2.best_priority(later));
    let ratio = |t| {
        m1.best_priority(t).map_or(-1.0, Priority::count)
            / m2.best_priority(t).map_or(-1.0, Priority::count)
    };
    assert_approx(ratio(later), ratio(now));
}

#[test]
fn ten_hours_of_virtual_time_stay_finite_and_ordered() {
    let mut mux = CircuitMux::new(&HALF);
    // Circuit i writes 10 / (i + 1) cells per second (every 100 ms scaled).
    let mut e = [CellEwma::new(); 3];
    for (i, ewma) in e.iter_mut().enumerate() {
        mux.activate(Instant::ZERO, i as u32, ewma);
    }
    let step = Duration::from_millis(100);
    let mut now = Instant::ZERO;
    let end = secs(10 * 3600);
    let mut tick: u64 = 0;
    while now < end {
        for (i, ewma) in e.iter_mut().enumerate() {
            if tick.is_multiple_of(i as u64 + 1) {
                mux.note_written(now, i as u32, ewma);
            }
        }
        let p = mux.best_priority(now).map_or(f64::NAN, Priority::count);
        assert!(p.is_finite() && p >= 0.0, "priority {p} at {now:?}");
        now += step;
        tick += 1;
    }
    // Steady state: rate r cells/s gives about r * halflife / ln 2.
    for (i, ewma) in e.iter().enumerate() {
        let rate = 10.0 / (i as f64 + 1.0);
        let want = rate * 30.0 / core::f64::consts::LN_2;
        let got = ewma.count_at(&HALF, now);
        assert!(
            (got - want).abs() < 0.05 * want,
            "circuit {i}: {got} vs {want}"
        );
    }
    assert_eq!(mux.peek(), Some(2));
}

#[test]
fn heap_matches_a_reference_model() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut mux = CircuitMux::new(&HALF);
    let mut e = [CellEwma::new(); 16];
    let mut now = Instant::ZERO;
    for _ in 0..20_000 {
        now += Duration::from_millis(rng.random_range(0..2_000));
        let c = rng.random_range(0..16u32);
        match rng.random_range(0..10) {
            0 => mux.activate(now, c, &mut e[c as usize]),
            1 => mux.deactivate(c, &mut e[c as usize]),
            _ => {
                if let Some(head) = mux.peek() {
                    mux.note_written(now, head, &mut e[head as usize]);
                }
            }
        }
        let active: Vec<u32> = (0..16).filter(|&i| e[i as usize].is_active()).collect();
        assert_eq!(mux.len(), active.len());
        let Some(head) = mux.peek() else {
            assert!(active.is_empty());
            continue;
        };
        let head_count = e[head as usize].count_at(&HALF, now);
        assert_approx(
            mux.best_priority(now).map_or(-1.0, Priority::count),
            head_count,
        );
        for &i in &active {
            let other = e[i as usize].count_at(&HALF, now);
            assert!(
                head_count <= other * (1.0 + 1e-9),
                "{head} {head_count} vs {i} {other}"
            );
        }
    }
}

#[test]
fn order_bits_follow_total_order() {
    let values = [
        f64::NEG_INFINITY,
        -1.5,
        -0.0,
        0.0,
        f64::from_bits(1),
        1.0,
        2.5e10,
        f64::MAX,
        f64::INFINITY,
    ];
    for w in values.windows(2) {
        let (a, b) = (Priority(w[0]), Priority(w[1]));
        assert!(a < b && a.order_bits() < b.order_bits(), "{a:?} {b:?}");
    }
}

/// Writes up to `max` cells through `mux`, one `peek` + `note_written` per cell (what a
/// scheduler did before runs), taking them from `queued`; returns the circuits served in order.
fn serve_cell_by_cell(
    mux: &mut CircuitMux<u32>,
    now: Instant,
    max: u32,
    queued: &mut [u32],
    e: &mut [CellEwma],
) -> Vec<u32> {
    let mut served = Vec::new();
    while served.len() < max as usize {
        let Some(c) = mux.peek() else { break };
        let i = c as usize;
        mux.note_written(now, c, &mut e[i]);
        served.push(c);
        queued[i] -= 1;
        if queued[i] == 0 {
            mux.deactivate(c, &mut e[i]);
        }
    }
    served
}

/// The same as a batching scheduler does it: `peek` once per stretch of cells from one
/// circuit, `note_written_top` per cell.
fn serve_in_runs(
    mux: &mut CircuitMux<u32>,
    now: Instant,
    max: u32,
    queued: &mut [u32],
    e: &mut [CellEwma],
) -> Vec<u32> {
    let mut served = Vec::new();
    'runs: while served.len() < max as usize {
        let Some(c) = mux.peek() else { break };
        let i = c as usize;
        loop {
            let still_top = mux.note_written_top(now, &mut e[i]);
            served.push(c);
            queued[i] -= 1;
            if queued[i] == 0 {
                mux.deactivate(c, &mut e[i]);
                continue 'runs;
            }
            if !still_top || served.len() == max as usize {
                continue 'runs;
            }
            assert_eq!(mux.peek(), Some(c), "still the top");
        }
    }
    served
}

#[test]
fn runs_serve_the_same_cells_in_the_same_order_as_cell_by_cell() {
    for cfg in [HALF, EwmaConfig::ROUND_ROBIN] {
        let mut rng = ChaCha8Rng::seed_from_u64(0x7a11);
        let (mut by_cell, mut by_run) = (CircuitMux::new(&cfg), CircuitMux::new(&cfg));
        let (mut e1, mut e2) = ([CellEwma::new(); 12], [CellEwma::new(); 12]);
        let (mut q1, mut q2) = ([0u32; 12], [0u32; 12]);
        let mut now = Instant::ZERO;
        let mut long_runs = 0;
        for step in 0..5_000 {
            now += Duration::from_millis(rng.random_range(0..500));
            if rng.random_range(0..3) == 0 {
                let c = rng.random_range(0..12u32);
                let k = rng.random_range(1..60);
                for (mux, q, e) in [
                    (&mut by_cell, &mut q1, &mut e1),
                    (&mut by_run, &mut q2, &mut e2),
                ] {
                    q[c as usize] += k;
                    mux.activate(now, c, &mut e[c as usize]);
                }
            } else {
                let max = rng.random_range(1..80);
                let a = serve_cell_by_cell(&mut by_cell, now, max, &mut q1, &mut e1);
                let b = serve_in_runs(&mut by_run, now, max, &mut q2, &mut e2);
                assert_eq!(a, b, "step {step}: served");
                long_runs += usize::from(b.windows(8).any(|w| w.iter().all(|&c| c == w[0])));
            }
            // Bit-for-bit the same counts: the runs make the same additions.
            assert_eq!(e1, e2, "step {step}: counts");
            assert_eq!(q1, q2);
            assert_eq!(by_cell.peek(), by_run.peek(), "step {step}: next");
        }
        assert!(
            long_runs > 100,
            "runs of one circuit were exercised: {long_runs}"
        );
    }
}

#[test]
fn the_top_stays_until_the_runner_up_takes_over() {
    let mut mux = CircuitMux::new(&HALF);
    let (mut a, mut b) = (CellEwma::new(), CellEwma::new());
    mux.activate(secs(0), 1, &mut a);
    write_n(&mut mux, secs(0), 1, &mut a, 5);
    mux.activate(secs(0), 2, &mut b);
    // Circuit 2 has written nothing: it is best while its count is below 5 (at 5 the tie
    // goes to 1, active first), so its 5th cell hands over.
    assert_eq!(mux.peek(), Some(2));
    let tops: Vec<bool> = (0..5)
        .map(|_| mux.note_written_top(secs(0), &mut b))
        .collect();
    assert_eq!(tops, [true, true, true, true, false]);
    assert_approx(b.count_at(&HALF, secs(0)), 5.0);
    assert_eq!(mux.peek(), Some(1));
    // Alone in the mux a circuit stays the top.
    mux.deactivate(2, &mut b);
    assert!((0..3).all(|_| mux.note_written_top(secs(0), &mut a)));
    assert_approx(a.count_at(&HALF, secs(0)), 8.0);
    // Under round robin the top hands over after every cell, unless it is alone.
    let mut rr = CircuitMux::new(&EwmaConfig::ROUND_ROBIN);
    let (mut x, mut y) = (CellEwma::new(), CellEwma::new());
    rr.activate(secs(0), 7, &mut x);
    assert!(rr.note_written_top(secs(0), &mut x));
    rr.activate(secs(0), 8, &mut y);
    assert!(!rr.note_written_top(secs(0), &mut x));
    assert_eq!(rr.peek(), Some(8));
    // Nothing active: nothing counted.
    let mut empty = CircuitMux::<u32>::new(&HALF);
    let mut z = CellEwma::new();
    assert!(!empty.note_written_top(secs(0), &mut z));
    assert_eq!(z, CellEwma::new());
}
