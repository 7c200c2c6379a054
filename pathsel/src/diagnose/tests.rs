use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use rand::SeedableRng;

use super::*;

/// A directory of `(address, flags, exit policy)` relays.
fn dir(relays: &[(&str, &str, &str)]) -> Directory {
    let mut text = String::from("version = 1\n");
    for (i, (addr, flags, policy)) in relays.iter().enumerate() {
        text.push_str(&format!(
            "[[relay]]\nnickname = \"r{i}\"\nidentity = \"{:040X}\"\n\
             ed25519_identity = \"{}\"\n\
             ntor_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n\
             address = \"{addr}\"\nbandwidth = 1000\nflags = [{flags}]\n",
            i + 1,
            base64::engine::general_purpose::STANDARD.encode([i as u8 + 1; 32])
        ));
        if !policy.is_empty() {
            text.push_str(&format!("exit_policy = [\"{policy}\"]\n"));
        }
    }
    Directory::parse(&text).unwrap()
}

const GUARD: &str = "\"Guard\", \"Fast\", \"Running\", \"Valid\"";
const PLAIN: &str = "\"Fast\", \"Running\", \"Valid\"";
const EXIT: &str = "\"Exit\", \"Fast\", \"Running\", \"Valid\"";

fn one_machine() -> Directory {
    dir(&[
        ("127.0.0.1:9001", GUARD, ""),
        ("127.0.0.1:9002", GUARD, ""),
        ("127.0.0.1:9003", EXIT, "accept 127.0.0.0/8:*"),
    ])
}

fn web(port: u16) -> Option<ExitTarget> {
    Some(ExitTarget {
        addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port,
    })
}

#[test]
fn one_machine_with_distinct_subnets_names_the_subnet_rule() {
    let sel = PathSelector::new(&one_machine(), PathConfig::default());
    // With the guard fixed first (entry guards), select_path says NoExit: the cause is the
    // subnet, and explain says so for both ways of asking.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    assert_eq!(
        sel.select_path(&mut rng, web(80), Some(0)),
        Err(PathError::NoExit)
    );
    assert_eq!(sel.any_path(web(80), Some(0)), Err(PathError::NoGuard));
    assert_eq!(
        explain(&sel, web(80), Some(0)),
        Some(NoPathCause::SameSubnet)
    );
    assert_eq!(explain(&sel, None, None), Some(NoPathCause::SameSubnet));
    let text = NoPathCause::SameSubnet.to_string();
    assert!(
        text.contains("set EnforceDistinctSubnets = false"),
        "{text}"
    );
    let relaxed = PathConfig {
        enforce_distinct_subnets: false,
        ..PathConfig::default()
    };
    let sel = PathSelector::new(&one_machine(), relaxed);
    assert_eq!(sel.any_path(web(80), Some(0)), Ok(()));
    assert_eq!(explain(&sel, None, None), None);
}

#[test]
fn no_exit_policy_allows_the_target() {
    let relaxed = PathConfig {
        enforce_distinct_subnets: false,
        ..PathConfig::default()
    };
    let d = dir(&[
        ("127.0.0.1:9001", GUARD, ""),
        ("127.0.0.1:9002", PLAIN, ""),
        ("127.0.0.1:9003", EXIT, "accept 10.0.0.0/8:443"),
    ]);
    let sel = PathSelector::new(&d, relaxed);
    let cause = explain(&sel, web(80), None).unwrap();
    assert_eq!(
        cause.to_string(),
        "no usable relay's exit policy allows 127.0.0.1:80 (1 usable relays have an exit policy)"
    );
    assert_eq!(explain(&sel, None, None), None);
}

#[test]
fn no_guard_flag_and_too_few_relays() {
    let relaxed = PathConfig {
        enforce_distinct_subnets: false,
        ..PathConfig::default()
    };
    let d = dir(&[
        ("127.0.0.1:9001", PLAIN, ""),
        ("127.0.0.1:9002", PLAIN, ""),
        ("127.0.0.1:9003", EXIT, "accept *:*"),
    ]);
    let sel = PathSelector::new(&d, relaxed.clone());
    assert_eq!(explain(&sel, None, None), Some(NoPathCause::NoGuardFlag));
    let d = dir(&[
        ("127.0.0.1:9001", GUARD, ""),
        ("127.0.0.1:9003", EXIT, "accept *:*"),
    ]);
    let sel = PathSelector::new(&d, relaxed);
    assert_eq!(
        explain(&sel, None, None).map(|c| c.to_string()).as_deref(),
        Some("a path needs 3 usable (Running and Valid) relays; the directory has 2")
    );
}

#[test]
fn distinct_subnets_on_distinct_machines_is_fine() {
    let d = dir(&[
        ("10.1.0.1:9001", GUARD, ""),
        ("10.2.0.1:9001", PLAIN, ""),
        ("10.3.0.1:9001", EXIT, "accept *:*"),
    ]);
    let sel = PathSelector::new(&d, PathConfig::default());
    assert_eq!(explain(&sel, web(80), None), None);
    assert_eq!(explain(&sel, web(80), Some(0)), None);
}
