//! `kistrel bench` from the outside (issues #15 and #16): every argument checked before any
//! work (exit 2), a short real run whose JSON fits benches/bench-schema.txt, the table on
//! stdout and the logs on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use kistrel::cmd::bench::schema;

const BASELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/macro-baseline.toml");

fn kistrel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    c.env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    kistrel().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn bad_arguments_exit_2_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let missing_dir = tmp.path().join("no/such/folder/out.json");
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["bench", "--scheduler", "foo"],
            "invalid value 'foo' for '--scheduler",
        ),
        (
            vec!["bench", "run", "--backend", "epoll"],
            "invalid value 'epoll' for '--backend",
        ),
        (
            vec!["bench", "--size", "0"],
            "invalid value '0' for '--size",
        ),
        (
            vec!["bench", "--circuits", "0"],
            "invalid value '0' for '--circuits",
        ),
        (
            vec!["bench", "--rounds", "0"],
            "invalid value '0' for '--rounds",
        ),
        (
            vec!["bench", "--workers", "0"],
            "invalid value '0' for '--workers",
        ),
        (vec!["bench", "--testing-cell-cost", "5"], "no unit"),
        (
            vec!["bench", "--json", missing_dir.to_str().unwrap()],
            "its folder does not exist",
        ),
        (
            vec!["bench", "check", "/no/such/baseline.toml"],
            "baseline /no/such/baseline.toml",
        ),
    ];
    // Off Linux the poll backend has no TCP_INFO, so KIST on it is refused before measuring;
    // on Linux it reads TCP_INFO and KIST runs there (engine/tests/runtime_backends.rs).
    if !kistrel_engine::sys::SNAPSHOT_HAS_TCP_INFO {
        cases.push((
            vec!["bench", "--scheduler", "KIST", "--backend", "poll"],
            "KIST needs TCP_INFO, which the poll backend does not read",
        ));
        cases.push((
            vec!["bench", "check", BASELINE, "--backend", "poll"],
            "comparing schedulers on --backend poll: KIST needs TCP_INFO",
        ));
    }
    for (args, want) in cases {
        let o = run(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("round 1"),
            "{args:?} started measuring: {err}"
        );
        assert_eq!(text(&o.stdout), "", "{args:?}");
    }
    // A baseline with too few runs per figure is refused before measuring too.
    let few = tmp.path().join("few.toml");
    std::fs::write(
        &few,
        "k = 4\njob = { circuits = 8, size_mib = 32, rounds = 3, workers = 1 }\n[figures.r]\nbetter = \"higher\"\nruns = [1.0]\n",
    )
    .unwrap();
    let o = run(&["bench", "check", few.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("figure r: want at least 3 finite runs"));
    // The committed baseline is of the default job: other settings are refused.
    let o = run(&["bench", "check", BASELINE, "--size", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("its runs are of --circuits 8 --size 32 --rounds 3 --workers 1"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn help_explains_every_column() {
    let o = run(&["bench", "run", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = text(&o.stdout);
    for needle in [
        "95% interval  percentile bootstrap of the median",
        "n             rounds the figure comes from",
        "ratio (first / second",
        "p99 n >= 100",
        "'<0.01' is below the histogram's resolution",
        "TLS / plain links (with --compare-*)",
        "(busiest relay / busiest\nforwarder; 3 relays / 3 forwarders)",
        "add to the guard (relay1), the middle (relay2) and\nthe exit (relay3)",
        "--compare-links",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}

/// Two small rounds, names in any case, TLS links against plain ones: the JSON fits the
/// schema, the rounds alternate, every figure has n = 2, the table is on stdout and the
/// progress on stderr.
#[test]
fn a_short_run_reports_rounds_intervals_and_placement() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let o = run(&[
        "bench",
        "--rounds",
        "2",
        "--circuits",
        "1",
        "--size",
        "1",
        "--scheduler",
        "kist",
        "--backend",
        "AUTO",
        "--compare-links",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        schema::check(&r, schema::BENCH_SCHEMA),
        Vec::<String>::new()
    );
    assert_eq!(r["config"]["backend"], "auto");
    assert_eq!(r["config"]["base_condition"], "relayed-kist-w1");
    assert_eq!(r["config"]["links"], "tls");
    assert_eq!(
        r["conditions"],
        serde_json::json!([
            "direct",
            "forwarded",
            "relayed-kist-w1",
            "relayed-kist-w1-plain"
        ])
    );
    for name in [
        "tls_over_plain",
        "tls_added_guard_cpu_s_per_gib",
        "tls_added_middle_cpu_s_per_gib",
        "tls_added_exit_cpu_s_per_gib",
    ] {
        assert!(r["figures"][name]["median"].is_number(), "{name}");
    }
    assert!(r["figures"]["tls_over_plain"]["median"].as_f64().unwrap() > 0.0);
    let order = |i: usize| r["rounds"][i]["order"].as_array().unwrap().clone();
    let mut reversed = order(0);
    reversed.reverse();
    assert_eq!(order(1), reversed);
    for (name, f) in r["figures"].as_object().unwrap() {
        assert_eq!(f["n"], 2, "{name}");
        let (lo, hi) = (
            f["ci95"]["low"].as_f64().unwrap(),
            f["ci95"]["high"].as_f64().unwrap(),
        );
        let m = f["median"].as_f64().unwrap();
        assert!(lo <= m && m <= hi, "{name}: {f}");
    }
    assert!(
        r["figures"]["ratio_vs_forwarders"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(r["failed_transfers"], 0);
    // The forwarded phase's same-round CPU reference: each hop's copy threads, counted.
    let forwarded = r["rounds"][0]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["condition"] == "forwarded")
        .unwrap()
        .clone();
    let hops: Vec<_> = forwarded["cpu"].as_array().unwrap().clone();
    assert_eq!(hops.len(), 3, "{forwarded}");
    for (k, hop) in hops.iter().enumerate() {
        assert_eq!(hop["role"], format!("forwarder{}", k + 1));
        assert!(hop["cpu_s_per_gib"].as_f64().unwrap() > 0.0, "{hop}");
    }
    for name in [
        "relays_cpu_over_forwarders",
        "max_relay_cpu_over_forwarders",
    ] {
        assert!(
            r["figures"][name]["median"].as_f64().unwrap() > 0.0,
            "{name}"
        );
    }
    // Placement: pinned exactly when the machine has a CPU for each of the 6 nodes.
    let cpus = kistrel::placement::allowed_cpus().unwrap();
    assert_eq!(r["placement"]["pinned"], cpus.len() >= 6);
    assert_eq!(r["placement_differences"].as_array().unwrap().len(), 0);
    let relayed = &r["rounds"][0]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["condition"] == "relayed-kist-w1")
        .unwrap()
        .clone();
    assert_eq!(
        relayed["placement"].as_array().unwrap().len(),
        4,
        "{relayed}"
    );
    // The table on stdout with n and the interval; progress lines on stderr only.
    assert!(out.contains("kistrel / plain forwarders"), "{out}");
    assert!(out.contains("TLS links / plain links"), "{out}");
    assert!(out.contains("CPU per GiB TLS adds, exit"), "{out}");
    assert!(out.contains("ratio (higher is better)"), "{out}");
    assert!(out.contains("  2  MiB/s"), "{out}");
    assert!(
        err.contains("kistrel bench: round 2: relayed-kist-w1"),
        "{err}"
    );
    assert!(!out.contains("round 2:"), "{out}");
}

/// A network that cannot start fails the job (exit 1), and the folder its error names is
/// kept, with the logs in it.
#[test]
fn a_failed_network_keeps_the_folder_its_error_names() {
    let o = kistrel()
        .args(["bench", "--rounds", "1", "--circuits", "1", "--size", "1"])
        .env("KISTREL_NET_CHILD_EXE", "/bin/false")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let kept = err
        .lines()
        .find_map(|l| l.strip_prefix("kistrel bench: networks' files and logs kept in "))
        .unwrap_or_else(|| panic!("no kept folder in: {err}"));
    let kept = std::path::Path::new(kept);
    let named = err
        .lines()
        .find_map(|l| l.split("logs in ").nth(1))
        .map(|p| p.trim_end_matches(')'))
        .unwrap_or_else(|| panic!("no log folder named in: {err}"));
    assert!(
        std::path::Path::new(named).starts_with(kept),
        "{named} not under {kept:?}"
    );
    assert!(
        std::path::Path::new(named).join("relay1.log").is_file(),
        "{err}"
    );
    std::fs::remove_dir_all(kept).unwrap();
}
