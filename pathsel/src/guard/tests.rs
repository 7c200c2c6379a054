use super::*;
use crate::dir::{synthetic_directory, Flag};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn t(days: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + DAY * days as u32
}

fn selector() -> PathSelector {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    PathSelector::new(&synthetic_directory(300, &mut rng), PathConfig::default())
}

#[test]
fn picks_guard_flagged_primaries() {
    let sel = selector();
    let mut gs = GuardSet::new(PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (g, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
    assert!(sel.directory().relays()[g].flags.contains(Flag::Guard));
    assert_eq!(gs.sampled().len(), 3, "NumEntryGuards primaries sampled");
    // NumPrimaryGuardsToUse 1: always the first primary.
    assert_eq!(ticket.identity(), gs.sampled()[0].identity);
    ticket.succeeded();
    for _ in 0..20 {
        let (g2, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
        assert_eq!(g2, g);
        ticket.failed();
    }
    gs.process_reports(t(0));
    let e = &gs.sampled()[0];
    assert_eq!((e.circuits, e.failures), (21, 20));
    assert_eq!(e.confirmed_on, Some(t(0)));
}

#[test]
fn dropped_ticket_is_abandoned_not_success() {
    let sel = selector();
    let mut gs = GuardSet::new(PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    {
        let (_g, _ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
    }
    gs.process_reports(t(0));
    let e = &gs.sampled()[0];
    assert_eq!((e.circuits, e.failures, e.confirmed_on), (0, 0, None));
}

#[test]
fn unreachable_guard_backs_off() {
    let sel = selector();
    let mut gs = GuardSet::new(PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (first, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
    ticket.unreachable();
    let (other, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
    assert_ne!(other, first, "the unreachable guard waits out its back-off");
    drop(ticket);
    assert_eq!(gs.sampled()[0].retry_at, Some(t(0) + RETRY_FIRST));
    let later = t(0) + RETRY_FIRST;
    let (again, ticket) = gs.pick(&sel, later, &mut rng).unwrap();
    assert_eq!(again, first, "retried once the back-off passed");
    ticket.unreachable();
    gs.process_reports(later);
    assert_eq!(
        gs.sampled()[0].retry_at,
        Some(later + RETRY_FIRST * 2),
        "back-off doubles"
    );
}

#[test]
fn lifetimes_expire_unconfirmed_keep_recently_confirmed() {
    let sel = selector();
    let mut gs = GuardSet::new(PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (_, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
    let first_id = ticket.identity();
    drop(ticket);
    let second_id = gs.sampled()[1].identity;
    // Confirm the first guard on day 100.
    gs.sampled[0].confirmed_on = Some(t(100));
    let (_, ticket) = gs.pick(&sel, t(121), &mut rng).unwrap();
    drop(ticket);
    let ids: Vec<_> = gs.sampled().iter().map(|e| e.identity).collect();
    assert!(ids.contains(&first_id), "confirmed 21 days ago: kept");
    assert!(
        !gs.sampled()
            .iter()
            .any(|e| e.identity == second_id && e.sampled_on == t(0)),
        "sampled 121 days ago, never confirmed: dropped"
    );
    let (_, ticket) = gs.pick(&sel, t(161), &mut rng).unwrap();
    drop(ticket);
    // (It may be sampled afresh; the old entry must be gone.)
    assert!(
        !gs.sampled()
            .iter()
            .any(|e| e.identity == first_id && e.sampled_on == t(0)),
        "confirmation 61 days old: dropped"
    );
}

/// Drive the 5 primaries of proposal 151 with deterministic failure patterns:
/// guard k fails `fails[k]` of every 100 circuits.
fn run_rule(rule: FailureRule, fails: [u64; 5]) -> Vec<bool> {
    let sel = selector();
    let cfg = PathConfig {
        guard_failure_rule: rule,
        ..PathConfig::proposal_151()
    };
    let mut gs = GuardSet::new(cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (_, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
    drop(ticket);
    let ids: Vec<[u8; 20]> = gs.sampled().iter().take(5).map(|e| e.identity).collect();
    assert_eq!(ids.len(), 5);
    let mut count = [0u64; 5];
    let mut picks = 0;
    // 999 reported circuits: the rule must not run before the 1000th.
    while count.iter().sum::<u64>() < 1000 {
        let (_, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
        picks += 1;
        let k = ids.iter().position(|id| *id == ticket.identity()).unwrap();
        let n = count[k];
        count[k] += 1;
        if count.iter().sum::<u64>() == 1000 {
            gs.process_reports(t(0));
            assert_eq!(gs.replaced_total(), 0, "rule ran early");
        }
        if n % 100 < fails[k] {
            ticket.failed();
        } else {
            ticket.succeeded();
        }
    }
    assert!(picks >= 1000);
    gs.process_reports(t(0));
    assert!(
        count.iter().all(|c| *c > 100),
        "circuits spread over all 5: {count:?}"
    );
    ids.iter()
        .map(|id| gs.sampled().iter().any(|e| e.identity == *id && e.replaced))
        .collect()
}

#[test]
fn proposal_151_rule_points_reading() {
    // Rates 40% and 10%: average 16%, limit 26 points: only the 40% guard goes.
    assert_eq!(
        run_rule(FailureRule::Points, [40, 10, 10, 10, 10]),
        [true, false, false, false, false]
    );
    // Rates 8% vs 4%: average 4.8%, limit 14.8%: nobody goes under the points reading...
    assert_eq!(run_rule(FailureRule::Points, [8, 4, 4, 4, 4]), [false; 5]);
}

#[test]
fn proposal_151_rule_relative_reading() {
    // ...but 8% > 4.8% * 1.1 = 5.28% under the relative reading.
    assert_eq!(
        run_rule(FailureRule::Relative, [8, 4, 4, 4, 4]),
        [true, false, false, false, false]
    );
    assert_eq!(run_rule(FailureRule::Off, [90, 0, 0, 0, 0]), [false; 5]);
}

#[test]
fn replaced_guard_is_never_picked_and_a_new_one_joins() {
    let sel = selector();
    let mut gs = GuardSet::new(PathConfig {
        guard_circuits_to_observe: 50,
        ..PathConfig::proposal_151()
    });
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (_, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
    let bad = ticket.identity();
    ticket.failed();
    for _ in 0..60 {
        let (_, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
        if ticket.identity() == bad {
            ticket.failed();
        } else {
            ticket.succeeded();
        }
    }
    gs.process_reports(t(0));
    assert_eq!(gs.replaced_total(), 1);
    assert_eq!(
        gs.sampled().len(),
        6,
        "a sixth guard sampled to keep 5 primaries"
    );
    for _ in 0..200 {
        let (_, ticket) = gs.pick(&sel, t(0), &mut rng).unwrap();
        assert_ne!(ticket.identity(), bad);
        ticket.succeeded();
    }
}

#[test]
fn state_round_trip_and_errors() {
    let sel = selector();
    let mut gs = GuardSet::new(PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (_, ticket) = gs.pick(&sel, t(3), &mut rng).unwrap();
    ticket.succeeded();
    let (_, ticket) = gs.pick(&sel, t(3), &mut rng).unwrap();
    ticket.unreachable();
    gs.process_reports(t(4));
    let text = gs.to_state_text();
    let mut back = GuardSet::new(PathConfig::default());
    back.load_state_text(&text, 1).unwrap();
    assert_eq!(back.sampled(), gs.sampled());
    assert_eq!(back.to_state_text(), text);
    for (bad, line) in [
        ("Guard rsa_id=zz sampled_on=1\n", 10),
        ("GuardWindowCircuits 1\nGuard sampled_on=1\n", 11),
        ("Guard rsa_id=0000000000000000000000000000000000000000 sampled_on=1 colour=red\n", 10),
        ("Guard rsa_id=0000000000000000000000000000000000000000 sampled_on=1 circuits=1 failures=2\n", 10),
        ("Bogus\n", 10),
    ] {
        let mut gs = GuardSet::new(PathConfig::default());
        assert_eq!(gs.load_state_text(bad, 10).unwrap_err().line, line, "{bad}");
    }
}

/// A directory whose only guard candidates are the sampled ones: when all of them are
/// backing off, or all were replaced, pick() retries them instead of failing for good.
#[test]
fn all_guards_down_or_replaced_are_retried_not_abandoned() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let sel = PathSelector::new(&synthetic_directory(12, &mut rng), PathConfig::default());
    let guards = (0..sel.directory().relays().len())
        .filter(|&i| sel.is_guard_candidate(i))
        .count();
    assert!(guards >= 1);
    let mut gs = GuardSet::new(PathConfig {
        guard_max_sample_size: guards,
        ..PathConfig::default()
    });
    // Every guard unreachable, one after another: each pick still finds one.
    for _ in 0..3 * guards {
        let (_, ticket) = gs
            .pick(&sel, t(0), &mut rng)
            .expect("a guard, even if all failed");
        ticket.unreachable();
    }
    gs.process_reports(t(0));
    assert!(gs.sampled().iter().all(|e| e.unreachable_count > 0));
    // Every sampled guard replaced, and no room to sample another: forgiven.
    gs.cfg.guard_max_sample_size = gs.sampled.len();
    for e in &mut gs.sampled {
        e.replaced = true;
    }
    let (_, ticket) = gs
        .pick(&sel, t(0), &mut rng)
        .expect("replaced guards reused");
    ticket.succeeded();
    assert!(gs.sampled().iter().all(|e| !e.replaced));
}
