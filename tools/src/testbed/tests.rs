//! Unit tests of the parts that need no root: spec checks, tbf arguments, tc's JSON.
//! (Building real testbeds is tested in tests/testbed.rs.)

use super::*;

fn spec() -> TestbedSpec {
    TestbedSpec {
        hosts: vec![
            "client".into(),
            "guard".into(),
            "middle".into(),
            "exit".into(),
        ],
        bottleneck: Some(Bottleneck {
            toward: "middle".into(),
            rate_bit_s: 25_000_000,
            latency: Duration::from_millis(42),
        }),
        congestion: Some("cubic".into()),
        tcp_wmem: Some([4 << 20; 3]),
    }
}

fn problem(s: &TestbedSpec) -> String {
    match s.validate() {
        Err(TestbedError::BadSpec { problem }) => problem,
        other => panic!("expected BadSpec, got {other:?}"),
    }
}

#[test]
fn a_good_spec_validates() {
    spec().validate().unwrap();
    let plain = TestbedSpec {
        hosts: vec!["a".into()],
        bottleneck: None,
        congestion: None,
        tcp_wmem: None,
    };
    plain.validate().unwrap();
}

#[test]
fn bad_specs_say_what_is_wrong() {
    let mut s = spec();
    s.hosts.push("guard".into());
    assert_eq!(problem(&s), "host \"guard\" is listed twice");

    let mut s = spec();
    s.hosts[0] = "router".into();
    assert!(problem(&s).starts_with("host name \"router\""));
    s.hosts[0] = "Client".into();
    assert!(problem(&s).starts_with("host name \"Client\""));
    s.hosts[0] = "a/b".into();
    assert!(problem(&s).starts_with("host name \"a/b\""));

    let mut s = spec();
    s.hosts.clear();
    assert_eq!(problem(&s), "0 hosts (1 to 250 allowed)");
    s.hosts = (0..251).map(|i| format!("h{i}")).collect();
    s.bottleneck = None;
    assert_eq!(problem(&s), "251 hosts (1 to 250 allowed)");

    let mut s = spec();
    if let Some(b) = s.bottleneck.as_mut() {
        b.toward = "nowhere".into();
    }
    assert_eq!(problem(&s), "bottleneck toward \"nowhere\": no such host");
    let mut s = spec();
    if let Some(b) = s.bottleneck.as_mut() {
        b.rate_bit_s = 0;
    }
    assert_eq!(problem(&s), "bottleneck rate and latency must be positive");

    let mut s = spec();
    s.congestion = Some("cubic; reboot".into());
    assert_eq!(problem(&s), "congestion control name \"cubic; reboot\"");

    let mut s = spec();
    s.tcp_wmem = Some([4096, 8192, 4096]);
    assert_eq!(
        problem(&s),
        "tcp_wmem 4096 8192 4096: need 0 < min <= default <= max"
    );
    s.tcp_wmem = Some([0, 0, 0]);
    assert!(problem(&s).starts_with("tcp_wmem 0 0 0"));
}

#[test]
fn tbf_arguments_carry_rate_burst_and_latency() {
    let b = Bottleneck {
        toward: "m".into(),
        rate_bit_s: 25_000_000,
        latency: Duration::from_millis(42),
    };
    // 4 ms of 25 Mbit/s is 12500 bytes, under the 10-frame floor.
    assert_eq!(b.burst_bytes(), 15_140);
    assert_eq!(
        b.tbf_args(),
        [
            "tbf",
            "rate",
            "25000000bit",
            "burst",
            "15140",
            "latency",
            "42000us"
        ]
    );
    let fast = Bottleneck {
        rate_bit_s: 1_000_000_000,
        ..b
    };
    assert_eq!(fast.burst_bytes(), 500_000);
}

/// Output of `tc -s -j qdisc show dev h3` (iproute2 6.1) on this machine.
const TC_JSON: &str = r#"[{"kind":"tbf","handle":"8001:","root":true,"refcnt":3,"options":{"rate":1250000,"burst":15140,"lat":42000},"bytes":2264210,"packets":1502,"drops":7,"overlimits":1321,"requeues":2,"backlog":3028,"qlen":2}]"#;

#[test]
fn tc_json_counters_are_read() {
    let s = QdiscStats::from_tc_json(TC_JSON).unwrap();
    assert_eq!(
        s,
        QdiscStats {
            kind: "tbf".into(),
            bytes: 2_264_210,
            packets: 1502,
            drops: 7,
            overlimits: 1321,
            requeues: 2,
            backlog_bytes: 3028,
            backlog_packets: 2,
        }
    );
}

#[test]
fn unreadable_tc_output_is_a_typed_error() {
    for (text, problem) in [
        ("qdisc tbf 8001: root", "not JSON"),
        ("{}", "not a list"),
        (r#"[{"kind":"noqueue","root":false}]"#, "no root qdisc"),
        (
            r#"[{"kind":"tbf","root":true,"bytes":1}]"#,
            "no counter \"packets\"",
        ),
    ] {
        match QdiscStats::from_tc_json(text) {
            Err(TestbedError::TcOutput { problem: p, .. }) => {
                assert!(p.starts_with(problem), "{text}: {p}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn exit_codes_put_environment_problems_at_2() {
    let code = |e: TestbedError| crate::exit::code(kistrel_base::HasKind::kind(&e));
    assert_eq!(code(TestbedError::NeedsRoot { euid: Some(1000) }), 2);
    assert_eq!(code(TestbedError::MissingTool { tool: "tc".into() }), 2);
    assert_eq!(
        code(TestbedError::NoFreeRange {
            first: 77,
            last: 126
        }),
        1
    );
    let msg = TestbedError::NeedsRoot { euid: Some(1000) }.to_string();
    assert!(msg.contains("needs root") && msg.contains("1000"), "{msg}");
}
