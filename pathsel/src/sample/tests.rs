use super::*;
use crate::dir::synthetic_directory;
use crate::select::PathConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn sum(v: &[f64]) -> f64 {
    v.iter().sum()
}

#[test]
fn expected_shares_sum_to_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let sel = PathSelector::new(&synthetic_directory(500, &mut rng), PathConfig::default());
    for v in expected_shares(&sel) {
        assert!((sum(&v) - 1.0).abs() < 1e-9, "{}", sum(&v));
    }
}

/// The done criterion: on a 7000-relay synthetic directory, each relay's observed share is
/// within sampling error of its expected share in every position. Pearson chi-square at
/// significance 0.001, fixed seed; df = (cells with expected count >= 5, plus one pooled
/// cell) - 1, about 3100 for guards, 7000 for middles and 1700 for exits.
#[test]
fn chi_square_7000_relays() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let sel = PathSelector::new(&synthetic_directory(7000, &mut rng), PathConfig::default());
    let report = sample_paths(&sel, 200_000, &mut rng).unwrap();
    assert!(!report.approximate);
    for pos in [Position::Guard, Position::Middle, Position::Exit] {
        let c = report.chi_square(pos);
        assert!(c.df > 1000, "{pos:?}: df {}", c.df);
        assert!(
            c.passes(),
            "{pos:?}: chi2 {:.1} > {:.1} on {} df",
            c.statistic,
            c.critical_001,
            c.df
        );
    }
    let counts: u64 = report.relays.iter().map(|r| r.exit.count).sum();
    assert_eq!(counts, 200_000);
    let text = report.to_string();
    assert!(text.contains("chi-square exit:") && text.contains("r6999"));
}

/// The check has teeth: against a uniform exit model, or middle shares by bandwidth alone
/// (forgetting the position weights), it fails.
#[test]
fn chi_square_rejects_wrong_expectations() {
    let mut rng = ChaCha8Rng::seed_from_u64(2027);
    let sel = PathSelector::new(&synthetic_directory(2000, &mut rng), PathConfig::default());
    let mut report = sample_paths(&sel, 200_000, &mut rng).unwrap();
    let uniform = 1.0
        / report
            .relays
            .iter()
            .filter(|r| r.exit.expected > 0.0)
            .count() as f64;
    for r in &mut report.relays {
        if r.exit.expected > 0.0 {
            r.exit.expected = uniform;
        }
    }
    assert!(!report.chi_square(Position::Exit).passes());
    let dir = sel.directory();
    let total: f64 = dir.relays().iter().map(|r| f64::from(r.bandwidth)).sum();
    for r in &mut report.relays {
        r.middle.expected = f64::from(dir.relays()[r.index].bandwidth) / total;
    }
    assert!(
        !report.chi_square(Position::Middle).passes(),
        "bandwidth-only middle shares should be rejected"
    );
}

#[test]
fn report_serializes_to_json() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let sel = PathSelector::new(&synthetic_directory(50, &mut rng), PathConfig::default());
    let report = sample_paths(&sel, 1000, &mut rng).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["n"], 1000);
    assert_eq!(json["relays"].as_array().unwrap().len(), 50);
    assert!(json["relays"][0]["guard"]["expected"].is_number());
}
