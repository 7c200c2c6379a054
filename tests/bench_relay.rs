//! `kistrel bench relay` and `kistrel-forward` from the outside (issue #15 items 3 and 4):
//! the forwarder moves bytes exactly both ways, a short real run (real relay, forwarder,
//! pump and sink processes) fits benches/bench-relay-schema.txt and delivers every cell it
//! sent, a load side slowed on purpose is flagged as the limit, and bad arguments exit 2.
//!
//! The delivery rule: after each window the pumps and sinks stop sending, and the bench
//! waits until, per pump/sink pair, every count matches exactly (data and acks, both
//! ways: pump sent == sink received and back); a phase for which that does not happen
//! within 15 s is `conserved: false` and the run exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use kistrel::cmd::bench::schema;

fn kistrel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    c.env_remove("RUST_LOG");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// A short run: 1 worker, 2 rounds of 0.5 s windows, 2 links x 4 circuits.
fn short_run(json: &std::path::Path, extra: &[&str]) -> Output {
    kistrel()
        .args(["bench", "relay", "--workers", "1", "--rounds", "2"])
        .args(["--warmup", "300ms", "--duration", "500ms"])
        .args(["--connections", "2", "--circuits", "4", "--json"])
        .arg(json)
        .args(extra)
        .output()
        .unwrap()
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn phases(r: &serde_json::Value) -> Vec<&serde_json::Value> {
    r["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|round| round["phases"].as_array().unwrap())
        .collect()
}

/// 4 MiB of seeded bytes through `kistrel-forward` (2 threads) to an upstream that echoes
/// them: the upstream's SHA-256 of what arrived and the client's of what came back are
/// both the sender's; the `final` line counts every byte, both ways.
#[test]
fn the_forwarder_moves_bytes_exactly_both_ways() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = upstream.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = upstream.accept().unwrap();
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            s.write_all(&buf[..n]).unwrap();
        }
        s.shutdown(Shutdown::Write).unwrap();
        hash.finalize()
    });
    let mut fwd = Command::new(env!("CARGO_BIN_EXE_kistrel-forward"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up_addr.to_string(),
        ])
        .args(["--threads", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(fwd.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    let ready: serde_json::Value =
        serde_json::from_str(ready.strip_prefix("ready ").unwrap()).unwrap();
    assert_eq!(ready["threads"], 2);
    let addr = ready["addrs"][0].as_str().unwrap().to_owned();

    let mut data = vec![0u8; 4 << 20];
    rand_chacha::ChaCha8Rng::seed_from_u64(15).fill_bytes(&mut data);
    let sent = Sha256::digest(&data);
    let client = TcpStream::connect(&addr).unwrap();
    let mut reader = client.try_clone().unwrap();
    let back = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        got
    });
    let mut w = client;
    w.write_all(&data).unwrap();
    w.shutdown(Shutdown::Write).unwrap();
    let got = back.join().unwrap();
    assert_eq!(echo.join().unwrap(), sent, "what reached the upstream");
    assert_eq!(got.len(), data.len());
    assert_eq!(Sha256::digest(&got), sent, "what came back");

    drop(fwd.stdin.take());
    let last = lines.find_map(|l| l.ok()?.strip_prefix("final ").map(str::to_owned));
    let last: serde_json::Value = serde_json::from_str(&last.unwrap()).unwrap();
    let bytes: u64 = last["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(bytes, 2 * data.len() as u64, "{last}");
    assert!(fwd.wait().unwrap().success());
}

/// Real processes, tiny counts: the JSON fits the schema, the rounds ran in ABBA order,
/// every phase moved cells both ways and delivered every one it sent; the table is on
/// stdout, the progress on stderr.
#[test]
fn a_short_run_fits_the_schema_and_delivers_every_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("relay.json");
    let svg = tmp.path().join("curve.svg");
    let o = short_run(&json, &["--svg", svg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = read_json(&json);
    assert_eq!(
        schema::check(&r, schema::BENCH_RELAY_SCHEMA),
        Vec::<String>::new()
    );
    assert_eq!(r["schema"], "kistrel.bench-relay/1");
    assert_eq!(r["order"], "abba");
    assert_eq!(r["rounds"][0]["order"][0], "forwarder-w1");
    assert_eq!(r["rounds"][1]["order"][0], "relay-w1");
    assert_eq!(r["conserved"], true);
    let all = phases(&r);
    assert_eq!(all.len(), 4);
    for p in all {
        assert_eq!(p["conserved"], true, "{p}");
        assert!(p["forward_data_cells"].as_u64().unwrap() > 0, "{p}");
        assert!(p["backward_data_cells"].as_u64().unwrap() > 0, "{p}");
        let cells = p["cells"].as_u64().unwrap();
        assert!(
            cells
                >= p["forward_data_cells"].as_u64().unwrap()
                    + p["backward_data_cells"].as_u64().unwrap(),
            "{p}"
        );
        assert!(p["target_cpu_s"].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(p["load"].as_array().unwrap().len(), 2, "{p}");
    }
    let ratio = &r["figures"]["relay_vs_forwarder"];
    assert_eq!(ratio["n"], 2);
    assert!(ratio["median"].as_f64().unwrap() > 0.0);
    let out = text(&o.stdout);
    assert!(out.contains("relay/forwarder"), "{out}");
    assert!(out.contains("n=2"), "{out}");
    assert!(!text(&o.stderr).contains("relay/forwarder"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

/// A pump and sink that burn 50 us of CPU per data cell cannot keep the relay busy: every
/// phase says the load side was the limit, and the report says so.
#[test]
fn a_slow_load_side_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("relay.json");
    let o = short_run(&json, &["--load-burn-ns", "50000"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = read_json(&json);
    assert_eq!(r["load_limited"], true, "{r}");
    for p in phases(&r) {
        assert_eq!(p["limit"], "load", "{p}");
        assert!(p["load_demand"].as_f64().unwrap() >= 0.9, "{p}");
    }
    assert!(text(&o.stdout).contains("load-limited"));
}

#[test]
fn bad_arguments_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no/such/folder/r.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--workers", "0"], "not a worker count"),
        (vec!["--workers", "3-1"], "backwards"),
        (vec!["--rounds", "0"], "invalid value '0' for '--rounds"),
        (vec!["--relay", "127.0.0.1:9001"], "--relay-keys"),
        (vec!["--relay-keys", "AB,CD"], "--relay"),
        (vec!["--relay-cpus", "4096"], "--relay-cpus"),
        (vec!["--no-pin", "--load-cpus", "0"], "cannot be used with"),
        (
            vec!["--json", missing.to_str().unwrap()],
            "its folder does not exist",
        ),
    ];
    for (args, want) in cases {
        let o = kistrel()
            .args(["bench", "relay"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}
