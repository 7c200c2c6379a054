//! End-to-end tests of the `kistrel` binary: exit codes, messages and `--json` output
//! (`kistrel net`'s supervisor with a stand-in child program: tests/net.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod support;

use support::sigterm_and_wait;

fn kistrel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    c.env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    kistrel().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

// ---- cbt fit ----

/// 50 builds at 105 ms and 50 at 205 ms: the two fullest 10 ms bins (midpoints 105 and
/// 205) give Xm = 155; times below Xm count as Xm, so alpha = 100 / (50 ln(205/155))
/// (Tor circuit_build_times_update_alpha); timeout = Xm / (1 - 0.8)^(1/alpha).
fn two_mode_times(dir: &Path) -> PathBuf {
    let mut text = String::from("# two modes\n");
    for i in 0..100 {
        text.push_str(if i % 2 == 0 { "105\n" } else { "205\n" });
    }
    let p = dir.join("times.txt");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn cbt_fit_json_has_the_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let file = two_mode_times(tmp.path());
    let o = run(&["cbt", "fit", file.to_str().unwrap(), "--json", "-"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "exactly one JSON object: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let alpha = 100.0 / (50.0 * (205.0f64 / 155.0).ln());
    assert_eq!(v["version"], 1);
    assert_eq!(v["n"], 100);
    assert_eq!(v["xm_ms"], 155);
    assert!(approx(v["alpha"].as_f64().unwrap(), alpha));
    let timeout = 155.0 / 0.2f64.powf(1.0 / alpha);
    let close = 155.0 / 0.01f64.powf(1.0 / alpha);
    assert!(approx(v["timeout_ms"].as_f64().unwrap(), timeout));
    assert!(approx(v["close_ms"].as_f64().unwrap(), close));
    assert_eq!(v["learned"], true);
}

#[test]
fn cbt_fit_human_and_quantile_option() {
    let tmp = tempfile::tempdir().unwrap();
    let file = two_mode_times(tmp.path());
    let o = run(&["cbt", "fit", file.to_str().unwrap(), "--quantile", "50"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let alpha = 100.0 / (50.0 * (205.0f64 / 155.0).ln());
    let timeout = 155.0 / 0.5f64.powf(1.0 / alpha);
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!(
            "n=100 Xm=155 ms alpha={alpha:.4} timeout={timeout:.0} ms (q=50%)"
        )),
        "{out}"
    );
}

#[test]
fn cbt_fit_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, "100\n# comment\nabc\n").unwrap();
    let o = run(&["cbt", "fit", bad.to_str().unwrap(), "--json", "-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o),
        format!(
            "kistrel: error: {}:3: expected a build time in whole milliseconds, found \"abc\"\n",
            bad.display()
        )
    );
    let flat = tmp.path().join("flat.txt");
    std::fs::write(&flat, "100\n100\n").unwrap();
    let o = run(&["cbt", "fit", flat.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "kistrel: error: {}: cannot fit a Pareto to 2 build time(s): need at least two different times\n",
            flat.display()
        )
    );
    let o = run(&["cbt", "fit", "/nonexistent/times.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o)
        .starts_with("kistrel: error: cannot read build times file /nonexistent/times.txt: "));
    let o = run(&["cbt", "fit", flat.to_str().unwrap(), "--quantile", "100"]);
    assert_eq!(o.status.code(), Some(2));
}

// ---- path sample ----

fn synthetic_dir(dir: &Path, n: usize) -> PathBuf {
    let d = kistrel_pathsel::dir::synthetic_directory(n, &mut ChaCha8Rng::seed_from_u64(11));
    let p = dir.join("directory.toml");
    std::fs::write(&p, d.to_toml()).unwrap();
    p
}

#[test]
fn path_sample_json_counts_every_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = synthetic_dir(tmp.path(), 40);
    let args = [
        "path",
        "sample",
        "--dir",
        dir.to_str().unwrap(),
        "-n",
        "3000",
        "--seed",
        "7",
        "--json",
        "-",
    ];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["seed"], 7);
    assert_eq!(v["n"], 3000);
    let relays = v["relays"].as_array().unwrap();
    assert_eq!(relays.len(), 40);
    for pos in ["guard", "middle", "exit"] {
        let total: u64 = relays
            .iter()
            .map(|r| r[pos]["count"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 3000, "{pos}");
        let expected: f64 = relays
            .iter()
            .map(|r| r[pos]["expected"].as_f64().unwrap())
            .sum();
        assert!(
            (expected - 1.0).abs() < 1e-9,
            "{pos} expected shares sum to {expected}"
        );
        assert!(v["chi_square"][pos]["df"].as_u64().unwrap() >= 1);
    }
    // Same seed, same output.
    assert_eq!(stdout(&run(&args)), out);
}

#[test]
fn path_sample_human_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = synthetic_dir(tmp.path(), 10);
    let o = run(&[
        "path",
        "sample",
        "--dir",
        dir.to_str().unwrap(),
        "-n",
        "100",
        "--seed",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("seed 3"));
    assert_eq!(lines.next(), Some("100 paths sampled"));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("chi-square ")).count(),
        3,
        "{out}"
    );
}

#[test]
fn path_sample_bad_directory_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("d.toml");
    std::fs::write(
        &p,
        "version = 1\n\n[[relay]]\nnickname = \"a\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let o = run(&[
        "path",
        "sample",
        "--dir",
        p.to_str().unwrap(),
        "-n",
        "1",
        "--seed",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "kistrel: error: {}: directory file line ",
            p.display()
        )),
        "{err}"
    );
    assert!(err.contains("colour"), "{err}");
}

// ---- relay/client config errors, usage (keygen: tests/newcomer.rs) ----

#[test]
fn config_errors_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("relay.toml");
    std::fs::write(&conf, "ORPort = \"127.0.0.1:9001\"\nNickName = \"x\"\n").unwrap();
    let o = run(&["relay", "-c", conf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "kistrel: error: {}:2: unknown key `NickName` (did you mean `Nickname`?)\n",
            conf.display()
        )
    );
    let o = run(&["client", "-c", "/nonexistent/client.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o)
        .starts_with("kistrel: error: cannot read config file /nonexistent/client.toml: "));
    let o = run(&["relay", "-c", conf.to_str().unwrap(), "-o", "novalue"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "kistrel: error: bad override \"novalue\": want -o KEY=VALUE, e.g. -o Workers=2\n"
    );
    // clap's own usage errors.
    assert_eq!(run(&["relay"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["net", "--relays", "2"]).status.code(), Some(2));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
}

#[test]
fn net_without_tor_names_the_package_and_makes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let o = kistrel()
        .env("KISTREL_TOR", tmp.path().join("no-tor-here"))
        .args(["net", "--ctor-relays", "2", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.starts_with("kistrel: error: `tor` not found (looked in PATH and /usr/sbin; or set KISTREL_TOR): install the tor package"),
        "{e}"
    );
    assert!(
        !dir.exists(),
        "nothing is made before the programs are found"
    );
    // The C Tor network is loopback only.
    let o = run(&["net", "--ctor-relays", "2", "--bottleneck", "10mbit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--ctor-relays cannot be combined with --bottleneck"));
    // --path wants three relays, and relays the directory has.
    let o = run(&["net", "--path", "relay1,relay2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("GUARD,MIDDLE,EXIT"), "{}", stderr(&o));
    let o = kistrel()
        .args(["net", "--path", "relay1,relay9,relay3", "--dir"])
        .arg(tmp.path().join("net2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("MiddleNodes: relay9 is not in the directory"),
        "{}",
        stderr(&o)
    );
}

// ---- net, with a stand-in child program ----

/// Parses the two metrics pages given as files with the Python Prometheus client's parsers
/// (0.0.4 text and OpenMetrics) and prints, per format, every family's type and samples.
const PROMETHEUS_PARSE: &str = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families as parse_004
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
except ImportError as e:
    print("SKIPPED: python3 module prometheus_client not installed (" + str(e) + ")")
    sys.exit(0)
out = {}
for fmt, parse, path in (("0.0.4", parse_004, sys.argv[1]), ("openmetrics", parse_om, sys.argv[2])):
    out[fmt] = {
        f.name: {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
        for f in parse(open(path).read())
    }
print(json.dumps(out))
"#;

/// One HTTP/1.0 exchange with the metrics port: (status line and headers, body).
fn http(addr: std::net::SocketAddr, request: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// Both pages of a metrics port, parsed by the real Prometheus parsers; `None` (after
/// SKIPPED) without the Python module.
fn parse_pages(addr: std::net::SocketAddr, dir: &Path) -> Option<serde_json::Value> {
    let (head, plain) = http(addr, "GET /metrics HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let om_request =
        "GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n";
    let (head, open) = http(addr, om_request);
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    std::fs::write(dir.join("plain.txt"), &plain).unwrap();
    std::fs::write(dir.join("open.txt"), &open).unwrap();
    let o = Command::new("python3")
        .args(["-c", PROMETHEUS_PARSE])
        .arg(dir.join("plain.txt"))
        .arg(dir.join("open.txt"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "parser: {}\n{plain}\n{open}",
        stderr(&o)
    );
    let text = stdout(&o);
    if let Some(skip) = text.lines().find(|l| l.starts_with("SKIPPED")) {
        println!("{skip}");
        return None;
    }
    Some(serde_json::from_str(&text).unwrap())
}

/// A real relay with `--metrics 127.0.0.1:0` prints where it serves; its page parses with
/// Prometheus' own parsers in both formats from the first request (every series there, at
/// zero), then shows the scheduler; HEAD is answered.
#[test]
fn relay_metrics_parse_with_prometheus_parsers_in_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["keygen", "--out", tmp.path().join("keys").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let conf = tmp.path().join("relay.toml");
    std::fs::write(
        &conf,
        "Nickname = \"m1\"\nORPort = \"127.0.0.1:0\"\nWorkers = 1\nSchedulers = [\"Vanilla\"]\n",
    )
    .unwrap();
    let mut relay = kistrel()
        .args([
            "relay",
            "-c",
            conf.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(relay.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("metrics addr=")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);
    let (head, body) = http(addr, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(body.is_empty(), "{body}");

    let have_parser = have_python();
    if let Some(first) = have_parser.then(|| parse_pages(addr, tmp.path())).flatten() {
        // The first scrape: counters and histograms of worker 0, at zero, in both formats.
        for fmt in ["0.0.4", "openmetrics"] {
            let cells = &first[fmt]["kistrel_cells_in"];
            assert_eq!(cells["type"], "counter", "{fmt}: {first}");
            let samples = cells["samples"].as_array().unwrap();
            assert_eq!(samples.len(), 1, "{fmt}: {cells}");
            assert_eq!(samples[0][0], "kistrel_cells_in_total");
            assert_eq!(samples[0][1]["worker"], "0");
            let h = &first[fmt]["kistrel_relay_queue_seconds"];
            assert_eq!(h["type"], "histogram", "{fmt}: {h}");
            assert!(
                h["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s[0] == "kistrel_relay_queue_seconds_bucket" && s[1]["le"] == "+Inf"),
                "{fmt}: {h}"
            );
        }
    }
    // Workers publish once a second; poll (bounded) until the scheduler shows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut page = String::new();
    while std::time::Instant::now() < deadline {
        page = http(addr, "GET /metrics HTTP/1.0\r\n\r\n").1;
        if page.contains("kistrel_scheduler_info{") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        page.contains("kistrel_scheduler_info{worker=\"0\",scheduler=\"Vanilla\"} 1"),
        "{page}"
    );
    if let Some(later) = have_parser.then(|| parse_pages(addr, tmp.path())).flatten() {
        let info = &later["openmetrics"]["kistrel_scheduler"];
        assert_eq!(info["type"], "info", "{later}");
        assert_eq!(info["samples"][0][1]["scheduler"], "Vanilla", "{info}");
        let gauge = &later["0.0.4"]["kistrel_scheduler_info"];
        assert_eq!(gauge["type"], "gauge", "{later}");
    }
    assert_eq!(sigterm_and_wait(&mut relay), Some(0));
}

/// python3 present (the parser check prints SKIPPED when its module is missing).
fn have_python() -> bool {
    let ok = support::have("python3");
    if !ok {
        println!("SKIPPED: python3 not installed");
    }
    ok
}
