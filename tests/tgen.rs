//! `kistrel tgen` against local servers: counts, sizes and verification; tampering and short
//! servers; histogram contents; deterministic open-loop schedules under a slow server; SOCKS
//! usernames per flow; the CLI's ready line, JSON report and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kistrel::tgen::proto::{PayloadStream, Request, HEADER_LEN};
use kistrel::tgen::server::Fault;
use kistrel::tgen::{
    flow_rng, run_client, Arrivals, ClientOptions, Metric, Model, ModelFlows, Outcome, Server,
    SizeChoice, TgenReport,
};
use kistrel_base::HasKind as _;

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn closed(name: &str, sizes: &[(u64, u32)]) -> Model {
    Model {
        name: name.into(),
        sizes: sizes
            .iter()
            .map(|&(bytes, weight)| SizeChoice {
                bytes,
                weight,
                timeout: Duration::from_secs(60),
            })
            .collect(),
        arrivals: Arrivals::Closed { think: None },
        count: None,
        duration: None,
    }
}

fn run(server: SocketAddr, models: Vec<(Model, u32)>, count: u64, seed: u64) -> TgenReport {
    let mut o = ClientOptions::new(server);
    o.models = models
        .into_iter()
        .map(|(model, flows)| ModelFlows { model, flows })
        .collect();
    o.count = Some(count);
    o.seed = seed;
    run_client(&o, &AtomicBool::new(false)).unwrap()
}

#[test]
fn direct_transfers_have_exact_counts_sizes_and_verify() {
    let server = Server::start(local()).unwrap();
    let a = closed("a", &[(1000, 1), (100_000, 1), (4099, 2)]);
    let b = closed("b", &[(70_000, 1)]);
    let r = run(server.addr(), vec![(a.clone(), 3), (b, 2)], 4, 77);
    assert_eq!(r.schema, "kistrel.tgen/1");
    assert_eq!(r.transfers.len(), 3 * 4 + 2 * 4);
    assert!(
        r.transfers
            .iter()
            .all(|t| t.outcome == Outcome::Ok && t.bytes == t.size),
        "{r:?}"
    );
    assert!(r.transfers.iter().all(|t| t.socks_user.is_none()));
    // Each flow of `a` fetched the sizes its seeded RNG picks, in order.
    for flow in 0..3 {
        let mut rng = flow_rng(77, 0, flow);
        let want: Vec<u64> = (0..4)
            .map(|_| a.sizes[a.pick_size(&mut rng)].bytes)
            .collect();
        let mut mine: Vec<_> = r
            .transfers
            .iter()
            .filter(|t| t.model == "a" && t.flow == flow)
            .collect();
        mine.sort_by_key(|t| t.index);
        assert_eq!(
            mine.iter().map(|t| t.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(mine.iter().map(|t| t.size).collect::<Vec<_>>(), want);
    }
    let sa = &r.models["a"];
    assert_eq!((sa.flows, sa.count, sa.ok), (3, 12, 12));
    assert!(sa.failed.is_empty());
    let a_bytes: u64 = r
        .transfers
        .iter()
        .filter(|t| t.model == "a")
        .map(|t| t.size)
        .sum();
    assert_eq!(sa.bytes, a_bytes);
    assert_eq!(r.models["b"].bytes, 8 * 70_000);
    assert_eq!(r.failed(), 0);
    // The server counts a transfer once its last write returned, which may be just after
    // the client read the last byte: wait for the count (bounded).
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while server.served() < 20 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.served(), 20);
    // The JSON round-trips into the same report (bench reads a child's report this way).
    let back: TgenReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn histograms_hold_every_ok_transfer() {
    let server = Server::start(local()).unwrap();
    let r = run(
        server.addr(),
        vec![(closed("h", &[(20_000, 1), (300_000, 1)]), 2)],
        10,
        3,
    );
    let h = r.histogram("h", Metric::Ttlb);
    let ok = r
        .transfers
        .iter()
        .filter(|t| t.outcome == Outcome::Ok)
        .count() as u64;
    assert_eq!(ok, 20);
    assert_eq!(h.len(), ok);
    assert_eq!(r.histogram("h", Metric::Ttfb).len(), ok);
    let largest = r
        .transfers
        .iter()
        .filter_map(|t| t.ttlb_s)
        .fold(0.0, f64::max);
    let largest_us = (largest * 1e6).round() as u64;
    assert!(
        h.equivalent(h.max(), largest_us),
        "max {} vs {largest_us}",
        h.max()
    );
    let p = r.models["h"].ttlb_s.unwrap();
    assert!(
        (p.max - largest).abs() <= largest * 1e-3 + 1e-6,
        "{} vs {largest}",
        p.max
    );
    assert!(p.p10 <= p.p50 && p.p50 <= p.p99 && p.p99 <= p.max);
}

#[test]
fn tampering_server_gives_corrupt_at_the_flipped_byte() {
    let server = Server::start_with_fault(local(), Fault::Tamper { at: 5000 }).unwrap();
    let r = run(server.addr(), vec![(closed("t", &[(10_000, 1)]), 1)], 2, 1);
    assert_eq!(r.transfers.len(), 2);
    for t in &r.transfers {
        assert_eq!(t.outcome, Outcome::Corrupt);
        assert_eq!(t.bytes, 5000);
        assert_eq!(t.ttlb_s, None);
    }
    assert_eq!(
        r.models["t"].failed,
        BTreeMap::from([("corrupt".to_owned(), 2)])
    );
    assert_eq!(r.models["t"].ok, 0);
    assert_eq!(r.models["t"].ttlb_s, None);
}

#[test]
fn short_server_gives_short() {
    let server = Server::start_with_fault(local(), Fault::Short { by: 123 }).unwrap();
    let r = run(server.addr(), vec![(closed("s", &[(10_000, 1)]), 2)], 1, 1);
    assert_eq!(r.transfers.len(), 2);
    assert!(r
        .transfers
        .iter()
        .all(|t| t.outcome == Outcome::Short && t.bytes == 10_000 - 123));
    assert_eq!(r.failed(), 2);
}

#[test]
fn nothing_listening_gives_connect() {
    let port = TcpListener::bind(local()).unwrap().local_addr().unwrap();
    let r = run(port, vec![(closed("c", &[(10, 1)]), 1)], 1, 1);
    assert_eq!(r.transfers[0].outcome, Outcome::Connect);
}

/// A server that waits `delay` after each request before answering correctly.
fn slow_server(delay: Duration) -> SocketAddr {
    let l = TcpListener::bind(local()).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut h = [0u8; HEADER_LEN];
                c.read_exact(&mut h).unwrap();
                let req = Request::parse(&h).unwrap();
                std::thread::sleep(delay);
                let mut s = PayloadStream::new(req.seed);
                let mut sent = 0u64;
                while sent < req.size {
                    let chunk = s.next_chunk((req.size - sent) as usize);
                    c.write_all(chunk).unwrap();
                    sent += chunk.len() as u64;
                }
            });
        }
    });
    addr
}

#[test]
fn open_loop_starts_follow_the_schedule_despite_a_slow_server() {
    let delay = Duration::from_millis(300);
    let server = slow_server(delay);
    let model = Model {
        name: "o".into(),
        sizes: vec![
            SizeChoice {
                bytes: 2000,
                weight: 3,
                timeout: Duration::from_secs(30),
            },
            SizeChoice {
                bytes: 9000,
                weight: 1,
                timeout: Duration::from_secs(30),
            },
        ],
        arrivals: Arrivals::Open { rate: 40.0 },
        count: None,
        duration: None,
    };
    let r = run(server, vec![(model.clone(), 2)], 12, 4242);
    assert_eq!(r.transfers.len(), 24);
    for flow in 0..2 {
        let want: Vec<(f64, u64)> = model
            .schedule(flow_rng(4242, 0, flow))
            .take(12)
            .map(|a| (a.at.as_secs_f64(), model.sizes[a.size].bytes))
            .collect();
        let mut mine: Vec<_> = r.transfers.iter().filter(|t| t.flow == flow).collect();
        mine.sort_by_key(|t| t.index);
        let got: Vec<(f64, u64)> = mine.iter().map(|t| (t.scheduled_start_s, t.size)).collect();
        assert_eq!(got, want);
        // Every transfer waited for the slow server, timed from its scheduled start.
        assert!(mine
            .iter()
            .all(|t| t.outcome == Outcome::Ok && t.ttfb_s.unwrap() >= delay.as_secs_f64()));
    }
}

/// A SOCKS5 proxy (user/password) that records the usernames and forwards to the target.
fn socks_proxy(users: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let l = TcpListener::bind(local()).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let users = Arc::clone(&users);
            std::thread::spawn(move || {
                let mut b = [0u8; 3];
                c.read_exact(&mut b).unwrap();
                assert_eq!(b, [5, 1, 2]);
                c.write_all(&[5, 2]).unwrap();
                let mut h = [0u8; 2];
                c.read_exact(&mut h).unwrap();
                let mut user = vec![0u8; h[1] as usize];
                c.read_exact(&mut user).unwrap();
                let mut plen = [0u8; 1];
                c.read_exact(&mut plen).unwrap();
                let mut pass = vec![0u8; plen[0] as usize];
                c.read_exact(&mut pass).unwrap();
                users.lock().unwrap().push(String::from_utf8(user).unwrap());
                c.write_all(&[1, 0]).unwrap();
                let mut req = [0u8; 10];
                c.read_exact(&mut req).unwrap();
                let ip = std::net::Ipv4Addr::new(req[4], req[5], req[6], req[7]);
                let port = u16::from_be_bytes([req[8], req[9]]);
                let up = TcpStream::connect((ip, port)).unwrap();
                c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
                let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                let mut up = up;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut up2);
                });
                let _ = std::io::copy(&mut up, &mut c);
            });
        }
    });
    addr
}

#[test]
fn socks_flows_each_have_their_own_username() {
    let server = Server::start(local()).unwrap();
    let users = Arc::new(Mutex::new(Vec::new()));
    let proxy = socks_proxy(Arc::clone(&users));
    let mut o = ClientOptions::new(server.addr());
    o.socks = Some(proxy);
    o.models = vec![
        ModelFlows {
            model: closed("web", &[(30_000, 1)]),
            flows: 3,
        },
        ModelFlows {
            model: closed("bulk", &[(200_000, 1)]),
            flows: 2,
        },
    ];
    o.count = Some(2);
    let r = run_client(&o, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.transfers.len(), 10);
    assert!(r.transfers.iter().all(|t| t.outcome == Outcome::Ok));
    let want: BTreeSet<String> = [
        "tgen-web-0",
        "tgen-web-1",
        "tgen-web-2",
        "tgen-bulk-0",
        "tgen-bulk-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let seen: Vec<String> = users.lock().unwrap().clone();
    assert_eq!(seen.len(), 10);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), want);
    for t in &r.transfers {
        assert_eq!(
            t.socks_user.as_deref(),
            Some(format!("tgen-{}-{}", t.model, t.flow).as_str())
        );
    }
}

#[test]
fn interval_log_has_a_header_and_tagged_histograms() {
    let server = Server::start(local()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("ttlb.hlog");
    let mut o = ClientOptions::new(server.addr());
    o.models = vec![ModelFlows {
        model: closed("m", &[(50_000, 1)]),
        flows: 2,
    }];
    o.count = Some(5);
    o.hdr_log = Some(log.clone());
    o.hdr_interval = Duration::from_millis(50);
    let r = run_client(&o, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.failed(), 0);
    let text = std::fs::read(&log).unwrap();
    let s = String::from_utf8_lossy(&text);
    assert!(s.contains("#[BaseTime: "), "{s}");
    // The intervals' counts add up to the transfers (parsed back with hdrhistogram).
    let mut total = BTreeMap::new();
    for e in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&text) {
        if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(i)) = e {
            let tag = i.tag().map(|t| t.as_str().to_owned()).unwrap();
            let bytes = base64_decode(i.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                .deserialize(&mut &bytes[..])
                .unwrap();
            *total.entry(tag).or_insert(0) += h.len();
        }
    }
    let want = BTreeMap::from([("m.ttfb".to_owned(), 10), ("m.ttlb".to_owned(), 10)]);
    assert_eq!(total, want);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

// ---- CLI ----

fn kistrel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    c.env_remove("RUST_LOG");
    c
}

/// `kistrel tgen server`, its address from the ready line.
struct CliServer(std::process::Child, SocketAddr);

impl CliServer {
    fn start(extra: &[&str]) -> CliServer {
        let mut child = kistrel()
            .args(["tgen", "server", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("ready addr=")
            .unwrap_or_else(|| panic!("{line:?}"));
        CliServer(child, addr.parse().unwrap())
    }

    fn stop(mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.0.wait().unwrap().code()
    }
}

fn write_model(dir: &Path) -> String {
    let p = dir.join("small.toml");
    std::fs::write(
        &p,
        "[[sizes]]\nbytes = \"40 KiB\"\nweight = 2\n[[sizes]]\nbytes = 1234\n",
    )
    .unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn cli_server_and_client_count_json() {
    let server = CliServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let model = write_model(tmp.path());
    let json = tmp.path().join("out.json");
    let o = kistrel()
        .args([
            "tgen",
            "client",
            "--server",
            &server.1.to_string(),
            "--model",
            &model,
            "--flows",
            "2",
        ])
        .args([
            "--model",
            "bulk",
            "--count",
            "3",
            "--seed",
            "9",
            "--json",
            json.to_str().unwrap(),
        ])
        .env("CI", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("small") && err.contains("bulk"), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "kistrel.tgen/1");
    assert_eq!(v["params"]["seed"], 9);
    assert_eq!(v["params"]["count"], 3);
    assert_eq!(v["models"]["small"]["flows"], 2);
    assert_eq!(v["models"]["small"]["count"], 6);
    assert_eq!(v["models"]["small"]["ok"], 6);
    assert_eq!(v["models"]["bulk"]["count"], 3);
    assert_eq!(v["models"]["bulk"]["bytes"], 3 * 5 * 1024 * 1024);
    for k in ["p10", "p25", "p50", "p75", "p90", "p99", "max"] {
        assert!(
            v["models"]["bulk"]["ttlb_s"][k].as_f64().unwrap() > 0.0,
            "{k}"
        );
    }
    let transfers = v["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 9);
    for t in transfers {
        assert_eq!(t["outcome"], "ok");
        assert_eq!(t["bytes"], t["size"]);
        for k in [
            "model",
            "flow",
            "index",
            "socks_user",
            "seed",
            "scheduled_start_s",
            "ttfb_s",
            "ttlb_s",
            "elapsed_s",
        ] {
            assert!(t.get(k).is_some(), "{k} missing in {t}");
        }
    }
    let r: TgenReport = serde_json::from_value(v).unwrap();
    assert_eq!(r.failed(), 0);
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn cli_failures_exit_1_unless_allowed() {
    let server = CliServer::start(&["--fault", "short:10"]);
    let addr = server.1.to_string();
    let args = [
        "tgen", "client", "--server", &addr, "--model", "bulk", "--count", "1",
    ];
    let o = kistrel().args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("kistrel: error: 1 of 1 transfers failed (--allow-failures to accept)"),
        "{err}"
    );
    assert!(err.contains("short=1"), "{err}");
    let o = kistrel()
        .args(args)
        .arg("--allow-failures")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn cli_bad_model_file_exits_2_naming_file_key_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("m.toml");
    std::fs::write(&p, "[[sizes]]\nbytes = 1\nweight = -3\n").unwrap();
    let o = kistrel()
        .args([
            "tgen",
            "client",
            "--server",
            "127.0.0.1:9",
            "--model",
            p.to_str().unwrap(),
            "--count",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!(
            "kistrel: error: {}:3: key `sizes[0].weight`: expected an integer from 1 to 4294967295",
            p.display()
        )
    );
    let o = kistrel()
        .args([
            "tgen",
            "client",
            "--server",
            "127.0.0.1:9",
            "--model",
            "web",
            "--flows",
            "1",
            "--flows",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn duration_ends_an_open_schedule_at_its_last_arrival_before_it() {
    let server = Server::start(local()).unwrap();
    let model = Model {
        name: "d".into(),
        sizes: vec![SizeChoice {
            bytes: 3000,
            weight: 1,
            timeout: Duration::from_secs(30),
        }],
        arrivals: Arrivals::Open { rate: 30.0 },
        count: None,
        duration: None,
    };
    let mut o = ClientOptions::new(server.addr());
    o.models = vec![ModelFlows {
        model: model.clone(),
        flows: 1,
    }];
    o.duration = Some(Duration::from_millis(400));
    o.seed = 11;
    let r = run_client(&o, &AtomicBool::new(false)).unwrap();
    let want: Vec<f64> = model
        .schedule(flow_rng(11, 0, 0))
        .take_while(|a| a.at < Duration::from_millis(400))
        .map(|a| a.at.as_secs_f64())
        .collect();
    assert!(!want.is_empty());
    let got: Vec<f64> = r.transfers.iter().map(|t| t.scheduled_start_s).collect();
    assert_eq!(got, want);
    assert_eq!(r.failed(), 0);
}

#[test]
fn a_set_stop_flag_starts_nothing() {
    let server = Server::start(local()).unwrap();
    let mut o = ClientOptions::new(server.addr());
    o.models = vec![ModelFlows {
        model: closed("x", &[(10, 1)]),
        flows: 2,
    }];
    let r = run_client(&o, &AtomicBool::new(true)).unwrap();
    assert!(r.transfers.is_empty());
    assert_eq!((r.models["x"].count, r.interrupted), (0, 0));
}

#[test]
fn bad_options_are_usage_errors() {
    let mut o = ClientOptions::new(local());
    let e = run_client(&o, &AtomicBool::new(false)).unwrap_err();
    assert_eq!(
        (e.to_string().as_str(), kistrel::exit::code(e.kind())),
        ("no model given", 2)
    );
    o.models = vec![
        ModelFlows {
            model: Model::web(),
            flows: 1,
        },
        ModelFlows {
            model: Model::web(),
            flows: 2,
        },
    ];
    let e = run_client(&o, &AtomicBool::new(false)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "model `web` given twice (use --flows, or a model file with another name)"
    );
}

#[test]
fn cli_think_override_and_web_model() {
    let server = CliServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("web.json");
    let o = kistrel()
        .args([
            "tgen",
            "client",
            "--server",
            &server.1.to_string(),
            "--model",
            "web",
            "--flows",
            "2",
        ])
        .args([
            "--think",
            "const:0.01",
            "--count",
            "3",
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: TgenReport = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r.transfers.len(), 6);
    assert!(r
        .transfers
        .iter()
        .all(|t| t.size == 320 * 1024 && t.outcome == Outcome::Ok));
    let think = Some(kistrel::tgen::ThinkTime::Constant { seconds: 0.01 });
    assert_eq!(
        r.params.models[0].model.arrivals,
        Arrivals::Closed { think }
    );
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn report_files_read_back_and_merge() {
    let server = Server::start(local()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for seed in [1, 2] {
        let r = run(
            server.addr(),
            vec![(closed("m", &[(30_000, 1)]), 2)],
            3,
            seed,
        );
        let p = tmp.path().join(format!("r{seed}.json"));
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        let back = TgenReport::read(&p).unwrap();
        assert_eq!(back, r);
        all.extend(back.transfers);
    }
    let h = kistrel::tgen::histogram(&all, "m", Metric::Ttlb);
    assert_eq!(h.len(), 12);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("r1.json")).unwrap())
            .unwrap();
    v["schema"] = "kistrel.tgen/2".into();
    let p = tmp.path().join("other.json");
    std::fs::write(&p, v.to_string()).unwrap();
    let e = TgenReport::read(&p).unwrap_err().to_string();
    let want = format!(
        "cannot read tgen report {}: schema `kistrel.tgen/2`, expected `kistrel.tgen/1`",
        p.display()
    );
    assert_eq!(e, want);
    std::fs::write(&p, r#"{"schema": "kistrel.tgen/1"}"#).unwrap();
    let e = TgenReport::read(&p).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "cannot read tgen report {}: missing field",
            p.display()
        )),
        "{e}"
    );
}
