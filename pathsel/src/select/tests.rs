use super::*;
use crate::dir::{synthetic_directory, PositionWeights, RelayFlags};
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

fn pinned(entry: &str, middle: &str, exit: &str) -> PathConfig {
    PathConfig {
        enforce_distinct_subnets: false,
        entry_nodes: NodeSet::parse_list(entry).unwrap(),
        middle_nodes: NodeSet::parse_list(middle).unwrap(),
        exit_nodes: NodeSet::parse_list(exit).unwrap(),
        ..PathConfig::default()
    }
}

#[test]
fn pinned_positions_take_only_the_named_relays() {
    let dir = small_dir();
    // n2 is a middle-only relay, n4 an exit on port 443; n5 (a plain relay) is never named.
    let sel = PathSelector::new(&dir, pinned("n1", "n2", "n3,n4"));
    sel.check_pins().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut exits = [0u32; 6];
    for _ in 0..200 {
        let p = sel.select_path(&mut rng, None, None).unwrap();
        assert_eq!((p.guard, p.middle), (1, 2));
        exits[p.exit] += 1;
    }
    assert!(
        exits[3] > 0 && exits[4] > 0,
        "both named exits used: {exits:?}"
    );
    assert_eq!(exits[3] + exits[4], 200);
    // The exit pin still obeys the target's port.
    let p = sel
        .select_path(
            &mut rng,
            Some(ExitTarget {
                addr: None,
                port: 443,
            }),
            None,
        )
        .unwrap();
    assert_eq!(p.exit, 4);
    // A fingerprint names a relay as well as a nickname does.
    let by_id = PathSelector::new(
        &dir,
        pinned(&format!("${}", hex::encode([0u8; 20])), "", ""),
    );
    for _ in 0..20 {
        assert_eq!(by_id.select_path(&mut rng, None, None).unwrap().guard, 0);
    }
}

#[test]
fn a_pinned_position_ignores_its_position_weight() {
    // Three exits that are also guards and one guard-only relay: with exits this scarce in a
    // middle position, Wmd may be 0; a pinned middle must still be chosen.
    let mut dir = small_dir();
    let relays: Vec<RelayInfo> = dir.relays().to_vec();
    let weights = PositionWeights {
        wmd: 0,
        wmg: 0,
        wme: 0,
        wmm: 0,
        ..*dir.weights()
    };
    dir = Directory::from_relays(relays, Some(weights)).unwrap();
    let unpinned = PathSelector::new(&dir, pinned("", "", ""));
    assert_eq!(unpinned.total_weight(Position::Middle), 0);
    let sel = PathSelector::new(&dir, pinned("", "n5", ""));
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    assert_eq!(sel.select_path(&mut rng, None, None).unwrap().middle, 5);
}

#[test]
fn pins_are_checked_against_the_directory() {
    let dir = small_dir();
    let e = PathSelector::new(&dir, pinned("n9", "", ""))
        .check_pins()
        .unwrap_err();
    assert_eq!(e.to_string(), "EntryNodes: n9 is not in the directory");
    // n2 has no Guard flag; n5's policy rejects everything.
    let e = PathSelector::new(&dir, pinned("n2", "", "")).check_pins();
    assert_eq!(
        e,
        Err(PinError::NoneEligible {
            key: "EntryNodes",
            set: "n2".into()
        })
    );
    let e = PathSelector::new(&dir, pinned("", "", "n5")).check_pins();
    assert!(matches!(
        e,
        Err(PinError::NoneEligible {
            key: "ExitNodes",
            ..
        })
    ));
    assert_eq!(
        PathSelector::new(&dir, pinned("n0", "n5", "n4")).check_pins(),
        Ok(())
    );
    // And a selection with a pin nobody can fill fails with the position's error.
    let sel = PathSelector::new(&dir, pinned("n2", "", ""));
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    assert_eq!(
        sel.select_path(&mut rng, None, None),
        Err(PathError::NoGuard)
    );
}

#[test]
fn pins_read_from_torrc_keys() {
    let cfg: PathConfig = toml::from_str(
        "EntryNodes = \"n1\"\nMiddleNodes = [\"n2\", \"n5\"]\nExitNodes = \"n3,n4\"\n",
    )
    .unwrap();
    assert_eq!(cfg.entry_nodes.to_string(), "n1");
    assert_eq!(cfg.middle_nodes.to_string(), "n2,n5");
    assert_eq!(cfg.exit_nodes.to_string(), "n3,n4");
    assert!(PathConfig::default().exit_nodes.is_empty());
}
