use super::*;
use crate::dir::{synthetic_directory, RelayFlags};
use crate::policy::ExitPolicy;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;

fn relay(i: u8, addr: &str, flags: &[Flag], policy: &str, family: &[&str]) -> RelayInfo {
    let mut all = vec![Flag::Running, Flag::Valid];
    all.extend_from_slice(flags);
    RelayInfo {
        nickname: format!("n{i}"),
        identity: [i; 20],
        ed25519_identity: [i ^ 0x80; 32],
        ntor_key: [i; 32],
        address: addr.parse::<SocketAddr>().unwrap(),
        bandwidth: 100,
        flags: RelayFlags::from_flags(&all),
        family: family.iter().map(|s| s.to_string()).collect(),
        exit_policy: policy.parse::<ExitPolicy>().unwrap(),
    }
}

fn small_dir() -> Directory {
    Directory::from_relays(
        vec![
            relay(0, "1.1.0.1:1", &[Flag::Guard], "", &["n3"]),
            relay(1, "1.2.0.1:1", &[Flag::Guard], "", &[]),
            relay(2, "1.3.0.1:1", &[], "", &[]),
            relay(
                3,
                "1.4.0.1:1",
                &[Flag::Exit],
                "accept *:80, reject *:*",
                &["n0"],
            ),
            relay(
                4,
                "1.1.9.9:1",
                &[Flag::Exit],
                "accept *:443, reject *:*",
                &[],
            ),
            relay(5, "1.5.0.1:1", &[], "", &[]),
        ],
        None,
    )
    .unwrap()
}

#[test]
fn exit_follows_the_target_policy() {
    let sel = PathSelector::new(&small_dir(), PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..200 {
        let p = sel
            .select_path(
                &mut rng,
                Some(ExitTarget {
                    addr: None,
                    port: 80,
                }),
                None,
            )
            .unwrap();
        assert_eq!(p.exit, 3);
        let p = sel
            .select_path(
                &mut rng,
                Some(ExitTarget {
                    addr: Some("9.9.9.9".parse().unwrap()),
                    port: 443,
                }),
                None,
            )
            .unwrap();
        assert_eq!(p.exit, 4);
    }
    assert_eq!(
        sel.select_path(
            &mut rng,
            Some(ExitTarget {
                addr: None,
                port: 22
            }),
            None
        ),
        Err(PathError::NoExit)
    );
}

#[test]
fn no_relay_twice_no_family_no_subnet() {
    let sel = PathSelector::new(&small_dir(), PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for _ in 0..500 {
        let p = sel.select_path(&mut rng, None, None).unwrap();
        assert!(p.guard != p.middle && p.middle != p.exit && p.guard != p.exit);
        // n0 and n3 are mutual family; n0 and n4 share 1.1/16.
        for (a, b) in [(p.guard, p.exit), (p.guard, p.middle), (p.middle, p.exit)] {
            assert!(
                !(a.min(b) == 0 && a.max(b) == 3),
                "family in one path: {p:?}"
            );
            assert!(
                !(a.min(b) == 0 && a.max(b) == 4),
                "same /16 in one path: {p:?}"
            );
        }
    }
}

#[test]
fn subnet_rule_can_be_switched_off() {
    let cfg = PathConfig {
        enforce_distinct_subnets: false,
        ..PathConfig::default()
    };
    let sel = PathSelector::new(&small_dir(), cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let port443 = Some(ExitTarget {
        addr: None,
        port: 443,
    });
    // Exit must be n4; with the /16 rule off n0 (same /16) becomes a possible guard.
    let saw_n0 = (0..300).any(|_| sel.select_path(&mut rng, port443, None).unwrap().guard == 0);
    assert!(saw_n0);
    let sel = PathSelector::new(&small_dir(), PathConfig::default());
    assert!((0..300).all(|_| sel.select_path(&mut rng, port443, None).unwrap().guard == 1));
}

#[test]
fn given_guard_is_used_and_exit_avoids_it() {
    let sel = PathSelector::new(&small_dir(), PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for _ in 0..200 {
        let p = sel.select_path(&mut rng, None, Some(1)).unwrap();
        assert_eq!(p.guard, 1);
        assert!(p.exit == 3 || p.exit == 4);
    }
    // Guard n0: n3 is its family and n4 its /16, so no exit is compatible.
    assert_eq!(
        sel.select_path(&mut rng, None, Some(0)),
        Err(PathError::NoExit)
    );
    let cfg = PathConfig {
        enforce_distinct_subnets: false,
        ..PathConfig::default()
    };
    let sel = PathSelector::new(&small_dir(), cfg);
    for _ in 0..50 {
        assert_eq!(sel.select_path(&mut rng, None, Some(0)).unwrap().exit, 4);
    }
}

#[test]
fn bad_guard_is_rejected() {
    let sel = PathSelector::new(&small_dir(), PathConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    assert_eq!(
        sel.select_path(&mut rng, None, Some(2)),
        Err(PathError::BadGuard(2))
    );
    assert_eq!(
        sel.select_path(&mut rng, None, Some(99)),
        Err(PathError::BadGuard(99))
    );
}

#[test]
fn same_seed_same_paths() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let dir = synthetic_directory(500, &mut rng);
    let sel = PathSelector::new(&dir, PathConfig::default());
    let run = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..50)
            .map(|_| sel.select_path(&mut rng, None, None).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn config_uses_torrc_names() {
    let cfg: PathConfig = toml::from_str(
        "EnforceDistinctSubnets = false\nUseEntryGuards = true\nNumEntryGuards = 5\nGuardFailureRule = \"relative\"\n",
    )
    .unwrap();
    assert!(!cfg.enforce_distinct_subnets);
    assert_eq!(cfg.num_entry_guards, 5);
    assert_eq!(cfg.guard_failure_rule, FailureRule::Relative);
    assert_eq!(
        cfg.guard_failure_margin, 0.10,
        "unset keys keep their defaults"
    );
    assert!(
        toml::from_str::<PathConfig>("EnforceDistinctSubnet = false\n").is_err(),
        "typo rejected"
    );
    let cbt: crate::cbt::CbtConfig = toml::from_str(
        "LearnCircuitBuildTimeout = false\nCircuitBuildTimeout = 30\ncbtnummodes = 3\n",
    )
    .unwrap();
    assert!(!cbt.learn);
    assert_eq!(cbt.circuit_build_timeout_secs, 30);
    assert_eq!(cbt.num_modes, 3);
    assert_eq!(cbt.quantile_pct, 80.0);
}
