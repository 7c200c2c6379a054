use super::*;
use proptest::prelude::*;

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap())
}

#[test]
fn test_parse_rule_fields() {
    let r: PolicyRule = "accept 127.0.0.0/8:80-443".parse().unwrap();
    assert_eq!(r.action, PolicyAction::Accept);
    assert_eq!(
        r.addr,
        AddrPattern::Prefix {
            addr: v4("127.0.0.0"),
            bits: 8
        }
    );
    assert_eq!((r.port_lo, r.port_hi), (80, 443));
    let r: PolicyRule = "reject *:*".parse().unwrap();
    assert_eq!(r.action, PolicyAction::Reject);
    assert_eq!(r.addr, AddrPattern::Any);
    assert_eq!((r.port_lo, r.port_hi), (1, 65535));
    let r: PolicyRule = "accept [2001:db8::1]/32:22".parse().unwrap();
    assert_eq!(
        r.addr,
        AddrPattern::Prefix {
            addr: "2001:db8::".parse().unwrap(),
            bits: 32
        }
    );
    assert_eq!((r.port_lo, r.port_hi), (22, 22));
}

#[test]
fn test_host_bits_are_cleared() {
    let r: PolicyRule = "accept 10.1.2.3/16:*".parse().unwrap();
    assert_eq!(r.to_string(), "accept 10.1.0.0/16:*");
}

#[test]
fn test_first_match_wins() {
    let p: ExitPolicy = "reject 127.0.0.1:80, accept 127.0.0.0/8:*, reject *:*"
        .parse()
        .unwrap();
    assert!(!p.allows(v4("127.0.0.1"), 80));
    assert!(p.allows(v4("127.0.0.1"), 81));
    assert!(p.allows(v4("127.9.9.9"), 80));
    assert!(!p.allows(v4("10.0.0.1"), 80));
    assert!(
        !p.allows("::1".parse().unwrap(), 80),
        "an IPv4 prefix never matches IPv6"
    );
}

#[test]
fn test_empty_policy_rejects_everything() {
    let p = ExitPolicy::default();
    assert!(!p.allows(v4("1.2.3.4"), 443));
    assert!(!p.allows_port(443));
    assert!(p.is_reject_all());
    assert_eq!("".parse::<ExitPolicy>().unwrap(), p);
}

#[test]
fn test_allows_port() {
    let p: ExitPolicy = "reject 10.0.0.0/8:*, accept *:443, reject *:*"
        .parse()
        .unwrap();
    assert!(p.allows_port(443));
    assert!(!p.allows_port(80));
    let p: ExitPolicy = "reject *:25, accept 1.2.3.4:*".parse().unwrap();
    assert!(!p.allows_port(25));
    assert!(p.allows_port(26));
    let p = ExitPolicy::accept_all();
    assert!(p.allows_port(1) && p.allows_port(65535));
}

#[test]
fn test_reject_rules() {
    for (bad, want) in [
        ("allow *:*", PolicyError::BadAction("allow *:*".into())),
        ("accept *", PolicyError::MissingPort("accept *".into())),
        (
            "accept 1.2.3:80",
            PolicyError::BadAddress("accept 1.2.3:80".into()),
        ),
        (
            "accept ::1:80",
            PolicyError::BadAddress("accept ::1:80".into()),
        ),
        (
            "accept 1.2.3.4/33:80",
            PolicyError::BadPrefix("accept 1.2.3.4/33:80".into()),
        ),
        (
            "accept 1.2.3.4/+3:80",
            PolicyError::BadPrefix("accept 1.2.3.4/+3:80".into()),
        ),
        ("accept *:0", PolicyError::BadPort("accept *:0".into())),
        (
            "accept *:90-80",
            PolicyError::BadPort("accept *:90-80".into()),
        ),
        (
            "accept *:65536",
            PolicyError::BadPort("accept *:65536".into()),
        ),
        ("accept *:+80", PolicyError::BadPort("accept *:+80".into())),
    ] {
        assert_eq!(bad.parse::<PolicyRule>(), Err(want), "{bad}");
    }
}

fn arb_rule() -> impl Strategy<Value = PolicyRule> {
    let addr = prop_oneof![
        Just(AddrPattern::Any),
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, b)| AddrPattern::new_prefix(IpAddr::V4(a.into()), b)),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, b)| AddrPattern::new_prefix(IpAddr::V6(a.into()), b)),
    ];
    (any::<bool>(), addr, 1u16..=65535, 1u16..=65535).prop_map(|(acc, addr, a, b)| PolicyRule {
        action: if acc {
            PolicyAction::Accept
        } else {
            PolicyAction::Reject
        },
        addr,
        port_lo: a.min(b),
        port_hi: a.max(b),
    })
}

proptest! {
    #[test]
    fn prop_policy_round_trips(rules in proptest::collection::vec(arb_rule(), 0..8)) {
        let p = ExitPolicy::new(rules);
        let text = p.to_string();
        prop_assert_eq!(text.parse::<ExitPolicy>(), Ok(p));
    }

    #[test]
    fn prop_rule_parser_never_panics(s in "\\PC{0,40}") {
        let _ = s.parse::<PolicyRule>();
    }
}
