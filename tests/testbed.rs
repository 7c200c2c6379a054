//! The shaped namespace testbed (`kistrel::testbed`) and `kistrel net --bottleneck`.
//!
//! Needs root, `ip`, `tc` and `sysctl` (and python3 / curl for the transfers); each test
//! checks first and prints `SKIPPED: <why>` when something is missing. Tests run one at a
//! time (they share the host's allowed-CC list and the machine's two cores); every namespace,
//! server and child is removed by guards, also when an assertion fails. Assertions are about
//! behaviour (bytes, hashes, counters, names), never about time; every wait is bounded.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kistrel::testbed::{exec, stale, sysctl, Bottleneck, Testbed, TestbedError, TestbedSpec};
use sha2::{Digest, Sha256};

mod support;

use support::{have, lines_of, seeded_data as seeded, serial, wait_exit, NetProcess, Reaped, MIB};

const WAIT: Duration = Duration::from_secs(60);

/// True (after printing SKIPPED) when this machine cannot build a testbed or lacks `extra`.
fn skip(extra: &[&str]) -> bool {
    if let Err(e) = exec::check_privileges_and_tools() {
        println!("SKIPPED: {e}");
        return true;
    }
    for tool in extra {
        if !have(tool) {
            println!("SKIPPED: {tool} not installed");
            return true;
        }
    }
    false
}

fn namespaces_with(prefix: &str) -> Vec<String> {
    stale::namespaces()
        .expect("ip netns list")
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn two_hosts(rate_bit_s: u64) -> TestbedSpec {
    TestbedSpec {
        hosts: vec!["a".into(), "b".into()],
        bottleneck: Some(Bottleneck {
            toward: "b".into(),
            rate_bit_s,
            latency: Duration::from_millis(40),
        }),
        congestion: Some("cubic".into()),
        tcp_wmem: None,
    }
}

/// `kistrel ARGS --dir DIR` (a shaped `net`), up to its ready line.
fn shaped_net(args: &[&str], dir: &std::path::Path, stderr: Stdio) -> NetProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    cmd.args(args).arg("--dir").arg(dir).stderr(stderr);
    NetProcess::spawn(&mut cmd, WAIT, dir)
}

const RECEIVER: &str = r#"
import hashlib, socket, sys
s = socket.socket()
s.bind((sys.argv[1], 5001))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest(), flush=True)
"#;

const SENDER: &str = r#"
import socket, sys
d = sys.stdin.buffer.read()
s = socket.create_connection((sys.argv[1], 5001))
s.sendall(d)
s.close()
"#;

#[test]
fn a_transfer_crosses_the_bottleneck_whole() {
    let _g = serial();
    if skip(&["python3"]) {
        return;
    }
    let tb = Testbed::create(&two_hosts(10_000_000)).expect("testbed");
    let b = tb.addr("b").unwrap();
    assert_eq!(tb.addr("a").unwrap().octets()[..2], b.octets()[..2]);
    assert_eq!(b.octets()[2..], [2, 2]);
    let before = tb.qdisc_stats().expect("stats");
    assert_eq!(before.kind, "tbf");

    let mut rx_cmd = tb.command("b", "python3").unwrap();
    let mut receiver = Reaped(
        rx_cmd
            .args(["-c", RECEIVER, &b.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("receiver"),
    );
    let lines = lines_of(&mut receiver.0);
    assert_eq!(lines.recv_timeout(WAIT).as_deref(), Ok("listening"));

    let data = seeded(2 * MIB, 10);
    let mut tx_cmd = tb.command("a", "python3").unwrap();
    let mut sender = Reaped(
        tx_cmd
            .args(["-c", SENDER, &b.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .expect("sender"),
    );
    let mut stdin = sender.0.stdin.take().expect("stdin");
    stdin.write_all(&data).expect("feed the sender");
    drop(stdin);
    assert!(wait_exit(&mut sender.0, WAIT, "sender").success());

    let got = lines.recv_timeout(WAIT).expect("receiver's result");
    let want = format!("{} {}", data.len(), hex::encode(Sha256::digest(&data)));
    assert_eq!(got, want);
    let after = tb.qdisc_stats().expect("stats");
    assert!(
        after.bytes - before.bytes >= data.len() as u64,
        "tbf sent {} bytes for a {}-byte transfer",
        after.bytes - before.bytes,
        data.len()
    );
    assert!(after.packets > before.packets);
    tb.teardown().expect("teardown");
}

#[test]
fn sysctls_read_back_and_the_host_list_is_restored() {
    let _g = serial();
    if skip(&[]) {
        return;
    }
    let allowed_before = sysctl::read_allowed().unwrap();
    let host_wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
    let host_wmem = host_wmem.split_whitespace().collect::<Vec<_>>().join(" ");

    let mut spec = two_hosts(50_000_000);
    spec.tcp_wmem = Some([4 << 20; 3]);
    let tb = Testbed::create(&spec).expect("testbed");
    for h in ["a", "b"] {
        assert_eq!(
            tb.sysctl(h, "net.ipv4.tcp_congestion_control").unwrap(),
            "cubic"
        );
        assert_eq!(
            tb.sysctl(h, "net.ipv4.tcp_wmem").unwrap(),
            "4194304 4194304 4194304"
        );
    }
    assert!(sysctl::read_allowed()
        .unwrap()
        .split_whitespace()
        .any(|c| c == "cubic"));
    // Our own namespace keeps its settings.
    let root_wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
    assert_eq!(
        root_wmem.split_whitespace().collect::<Vec<_>>().join(" "),
        host_wmem
    );
    tb.teardown().expect("teardown");
    assert_eq!(sysctl::read_allowed().unwrap(), allowed_before);

    // Without settings, namespaces keep the kernel's defaults (copied from the host's).
    let plain = TestbedSpec {
        hosts: vec!["a".into()],
        bottleneck: None,
        congestion: None,
        tcp_wmem: None,
    };
    let tb = Testbed::create(&plain).expect("testbed");
    assert_eq!(tb.sysctl("a", "net.ipv4.tcp_wmem").unwrap(), host_wmem);
    assert!(matches!(tb.qdisc_stats(), Err(TestbedError::NoBottleneck)));
    assert!(matches!(
        tb.addr("zz"),
        Err(TestbedError::UnknownHost { host }) if host == "zz"
    ));
    tb.teardown().expect("teardown");
    assert_eq!(sysctl::read_allowed().unwrap(), allowed_before);
}

#[test]
fn drop_removes_everything_even_after_a_panic() {
    let _g = serial();
    if skip(&[]) {
        return;
    }
    let allowed_before = sysctl::read_allowed().unwrap();
    let (tx, rx) = mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let tb = Testbed::create(&two_hosts(10_000_000)).expect("testbed");
        let prefix = tb.prefix().to_owned();
        let link = prefix.trim_end_matches('-').to_owned();
        tx.send((prefix.clone(), link)).unwrap();
        let mut made = namespaces_with(&prefix);
        made.sort();
        assert_eq!(
            made,
            [
                format!("{prefix}a"),
                format!("{prefix}b"),
                format!("{prefix}router")
            ]
        );
        panic!("test body fails while the testbed is up");
    });
    assert!(result.is_err());
    let (prefix, link) = rx.recv().unwrap();
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    let link_gone = Command::new("ip")
        .args(["link", "show", &link])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!link_gone.success(), "root link {link} is still there");
    assert_eq!(sysctl::read_allowed().unwrap(), allowed_before);
}

/// Deletes a namespace on drop (for a fake stale one, should the test fail).
struct NsGuard(String);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn stale_namespaces_of_dead_owners_are_removed() {
    let _g = serial();
    if skip(&[]) {
        return;
    }
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    assert!(!stale::pid_alive(dead_pid));
    let stale_ns = NsGuard(format!("kt{dead_pid}-x"));
    exec_ok(&["netns", "add", &stale_ns.0]);
    // One of a live owner (us) must survive the sweep.
    let live_ns = NsGuard(format!("kt{}s999-y", std::process::id()));
    exec_ok(&["netns", "add", &live_ns.0]);

    let tb = Testbed::create(&TestbedSpec {
        hosts: vec!["a".into()],
        bottleneck: None,
        congestion: None,
        tcp_wmem: None,
    })
    .expect("testbed");
    let all = stale::namespaces().unwrap();
    assert!(!all.contains(&stale_ns.0), "{all:?}");
    assert!(all.contains(&live_ns.0), "{all:?}");
    tb.teardown().unwrap();
}

/// Puts the host's allowed-CC list back on drop.
struct AllowedGuard(String);

impl Drop for AllowedGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(sysctl::ALLOWED_CC, &self.0);
    }
}

#[test]
fn an_allowed_list_addition_of_a_dead_owner_is_undone() {
    let _g = serial();
    if skip(&[]) {
        return;
    }
    let original = sysctl::read_allowed().unwrap();
    let _restore = AllowedGuard(original.clone());
    let Some(with_cubic) = sysctl::list_with(&original, "cubic") else {
        println!("SKIPPED: cubic is on the host's allowed list already");
        return;
    };
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    // What a testbed killed with SIGKILL leaves: its marker and the extended list.
    std::fs::create_dir_all(sysctl::MARKER_DIR).unwrap();
    let marker = std::path::Path::new(sysctl::MARKER_DIR).join(format!("kt{dead_pid}-cc"));
    std::fs::write(&marker, "cubic").unwrap();
    std::fs::write(sysctl::ALLOWED_CC, &with_cubic).unwrap();

    let tb = Testbed::create(&TestbedSpec {
        hosts: vec!["a".into()],
        bottleneck: None,
        congestion: None,
        tcp_wmem: None,
    })
    .expect("testbed");
    assert_eq!(sysctl::read_allowed().unwrap(), original);
    assert!(!marker.exists());
    tb.teardown().unwrap();
}

fn exec_ok(args: &[&str]) {
    let s = Command::new("ip").args(args).status().unwrap();
    assert!(s.success(), "ip {args:?}");
}

/// An HTTP/1.0 server on 0.0.0.0 answering every GET with `body`, until dropped.
struct Server {
    port: u16,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Server {
    fn start(body: Vec<u8>) -> Server {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let body = body.clone();
                        std::thread::spawn(move || {
                            s.set_nonblocking(false).ok();
                            s.set_read_timeout(Some(WAIT)).ok();
                            let mut req = [0u8; 4096];
                            let _ = s.read(&mut req);
                            let head = format!(
                                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            );
                            let _ = s.write_all(head.as_bytes());
                            let _ = s.write_all(&body);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server { port, done }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Pids of processes started by the `kistrel net` with pid `net` (their environment names it).
fn children_of_net(net: u32) -> Vec<u32> {
    let needle = format!("KISTREL_PARENT_PID={net}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

#[test]
fn net_with_a_bottleneck_serves_curl_and_cleans_up() {
    let _g = serial();
    if skip(&["curl"]) {
        return;
    }
    let body = seeded(MIB, 20);
    let server = Server::start(body.clone());
    let tmp = tempfile::tempdir().unwrap();
    let mut net = shaped_net(
        &["-v", "net", "--bottleneck", "20mbit,40ms", "--workers", "1"],
        tmp.path(),
        Stdio::null(),
    );
    let net_pid = net.pid();
    let ready = net.ready.clone();
    let socks = ready.socks;
    let host: Ipv4Addr = ready.host.expect("host= on a shaped network");
    let prefix = ready.netns.clone().expect("netns= on a shaped network");
    assert_eq!(prefix, format!("kt{net_pid}-"));
    assert_eq!(ready.dir, tmp.path());
    assert_eq!(ready.relays.len(), 3);
    let mut made = namespaces_with(&prefix);
    made.sort();
    let want: Vec<String> = ["client", "exit", "guard", "middle", "router"]
        .iter()
        .map(|h| format!("{prefix}{h}"))
        .collect();
    assert_eq!(made, want);
    assert_eq!(children_of_net(net_pid).len(), 4, "3 relays and a client");

    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--socks5"])
        .arg(socks.to_string())
        .arg(format!("http://{host}:{}/", server.port))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl: {}; logs in {}",
        String::from_utf8_lossy(&out.stderr),
        tmp.path().display()
    );
    assert_eq!(out.stdout.len(), body.len());
    assert_eq!(Sha256::digest(&out.stdout), Sha256::digest(&body));
    // The download went exit -> middle through the tbf (router device h3: the middle is the
    // third host).
    let stats = kistrel::cmd::net::shaped::bottleneck_stats(&prefix).unwrap();
    assert_eq!(stats.kind, "tbf");
    assert!(stats.bytes >= body.len() as u64, "{stats:?}");

    let status = net.stop();
    assert_eq!(status.code(), Some(0));
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    assert_eq!(children_of_net(net_pid), Vec::<u32>::new());
}

#[test]
fn net_with_a_bottleneck_tears_down_when_a_relay_dies() {
    let _g = serial();
    if skip(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut net = shaped_net(
        &[
            "net",
            "--bottleneck",
            "20mbit",
            "--workers",
            "1",
            "--congestion",
            "reno",
            "--tcp-wmem",
            "4096,16384,1MiB",
        ],
        tmp.path(),
        Stdio::piped(),
    );
    let net_pid = net.pid();
    let prefix = format!("kt{net_pid}-");
    assert_eq!(net.ready.netns.as_deref(), Some(prefix.as_str()));
    // The flags reached the namespaces.
    for (key, want) in [
        ("net.ipv4.tcp_congestion_control", "reno"),
        ("net.ipv4.tcp_wmem", "4096 16384 1048576"),
    ] {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{prefix}exit"),
                "sysctl",
                "-n",
                key,
            ])
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got.split_whitespace().collect::<Vec<_>>().join(" "), want);
    }
    let kids = children_of_net(net_pid);
    assert_eq!(kids.len(), 4);
    let victim = nix::unistd::Pid::from_raw(kids[0] as i32);
    nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGKILL).unwrap();
    let status = net.wait_exit(WAIT);
    let mut err = String::new();
    if let Some(mut e) = net.child.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("exited unexpectedly"), "{err}");
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    assert_eq!(children_of_net(net_pid), Vec::<u32>::new());
}

#[test]
fn a_bad_bottleneck_value_is_a_usage_error() {
    let _g = serial();
    for (args, flag) in [
        (&["net", "--bottleneck", "25mbps,42ms"][..], "--bottleneck"),
        (
            &["net", "--bottleneck", "25mbit,forever"][..],
            "--bottleneck",
        ),
        (&["net", "--tcp-wmem", "default"][..], "--bottleneck"),
        (
            &["net", "--bottleneck", "25mbit", "--tcp-wmem", "1,2"][..],
            "--tcp-wmem",
        ),
        (
            &["net", "--bottleneck", "25mbit", "--congestion", "vegas"][..],
            "--congestion",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kistrel"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn without_root_the_privilege_check_refuses() {
    let e = exec::require_root_uid(Some(65534)).unwrap_err();
    assert_eq!(kistrel::exit::code(kistrel_base::HasKind::kind(&e)), 2);
    assert!(e.to_string().contains("needs root"), "{e}");
    assert!(exec::require_root_uid(Some(0)).is_ok());
}

#[test]
fn net_without_root_exits_2() {
    let _g = serial();
    if exec::effective_uid() != Some(0) {
        // Already unprivileged: run it directly.
        let out = Command::new(env!("CARGO_BIN_EXE_kistrel"))
            .args(["net", "--bottleneck", "20mbit"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
        return;
    }
    if !have("setpriv") {
        println!("SKIPPED: setpriv not installed");
        return;
    }
    // A copy nobody can execute (the target folder may be private to root).
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = tmp.path().join("kistrel");
    std::fs::copy(env!("CARGO_BIN_EXE_kistrel"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["net", "--bottleneck", "20mbit,40ms"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root") && err.contains("65534"), "{err}");
    // Nothing was left behind: no folder made, no namespace of that process.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("kistrel")]);
}

/// `kistrel bench experiment kist-vs-vanilla`, short: one condition, two pairs (K V, V K) of
/// 5 s phases. Checks the JSON against its schema, that both schedulers moved web and bulk
/// traffic within the fixed phases, the charts and the report, and that nothing is left
/// behind. The figures themselves are a benchmark's business, not this test's.
#[test]
fn experiment_writes_comparisons_charts_and_a_report() {
    let _g = serial();
    if skip(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exp");
    let json = tmp.path().join("exp.json");
    let o = Command::new(env!("CARGO_BIN_EXE_kistrel"))
        .args([
            "bench",
            "experiment",
            "kist-vs-vanilla",
            "--phase",
            "5s",
            "--pairs",
            "2",
            "--web-flows",
            "3",
            "--web-rate",
            "3",
            "--bulk-flows",
            "2",
            "--conditions",
            "large-buffers",
            "--note",
            "a test run",
            "--out",
            out.to_str().unwrap(),
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
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        kistrel::cmd::bench::schema::check(
            &r,
            kistrel::cmd::bench::schema::BENCH_EXPERIMENT_SCHEMA
        ),
        Vec::<String>::new()
    );
    assert_eq!(r["experiment"], "kist-vs-vanilla");
    assert_eq!(r["setup"]["note"], "a test run");
    let c = &r["conditions"][0];
    assert_eq!(
        (c["condition"].as_str(), c["pairs_complete"].as_u64()),
        (Some("large_buffers"), Some(2))
    );
    let offered = &c["web_pages_offered"];
    assert_eq!(offered["kist"], offered["vanilla"], "one schedule per pair");
    for key in ["web_ttlb_median", "bulk_goodput", "total_goodput"] {
        let ratio = &c["figures"][key]["ratio"];
        assert_eq!(ratio["n"], 2, "{key}: {c}");
        assert!(ratio["median"].as_f64().unwrap() > 0.0, "{key}: {c}");
    }
    let phases = r["phases"].as_array().unwrap();
    let order: Vec<(&str, u64)> = phases
        .iter()
        .map(|p| {
            (
                p["scheduler"].as_str().unwrap(),
                p["position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [("kist", 0), ("vanilla", 1), ("vanilla", 0), ("kist", 1)]
    );
    for p in phases {
        let e = p["elapsed_s"].as_f64().unwrap();
        // Fixed length: the deadline plus the moment running transfers take to notice it
        // (generous bound: a loaded machine); the back-to-back bulk transfers running at the
        // deadline were cut and their bytes counted, not waited for.
        assert!((5.0..15.0).contains(&e), "{p}");
        let bulk = &p["bulk"];
        assert!(bulk["in_flight_at_end"].as_u64().unwrap() >= 1, "{p}");
        assert!(bulk["in_flight_bytes"].as_u64().unwrap() > 0, "{p}");
        assert!(p["web"]["completed"].as_u64().unwrap() >= 1, "{p}");
    }
    assert_eq!(
        (
            r["transfers_failed"].as_u64(),
            r["phases_not_run"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let roles: Vec<&str> = r["cpu_s_per_gib"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["client", "relay1", "relay2", "relay3"]);
    for plot in r["plots"].as_array().unwrap() {
        let svg = std::fs::read_to_string(out.join(plot.as_str().unwrap())).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{plot}"
        );
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## large_buffers") && report.contains("**a test run.**"));
    assert!(report.contains("![web_ttlb_large_buffers.svg](web_ttlb_large_buffers.svg)"));
    assert!(report.contains("Reference figures, not measured by this run"));
    assert!(namespaces_with("kt").is_empty(), "namespaces left behind");
}
