//! Circuits that mix kistrel and C Tor relays (issue #14): `kistrel net --relays 3
//! --ctor-relays 3` (a private C Tor 0.4.9 network on 127.0.0.1: one authority, three exit
//! relays) is started once per test and shared by all of its paths, and torn down at the
//! end, also on failure (the network's process is stopped on drop).
//!
//! ```text
//! kistrel relays: relay1 (guard), relay2 (guard), relay3 (exit)   C Tor: auth1, ctor1..3
//! K-C-K  relay1 ctor1 relay3   (the net's own client, pinned by `--path`)
//! C-K-C  ctor1  relay2 ctor2   (a `kistrel client` pinned by EntryNodes/MiddleNodes/...)
//! C-C-K  ctor2  ctor3  relay3
//! K-K-C  relay1 relay2 ctor3
//! K-K-K  relay1 relay2 relay3
//! ```
//!
//! Each path carries a 16 MiB fetch whose SHA-256 must equal the served file's, through a
//! client that holds a channel to its pinned guard and to no other relay; afterwards every
//! C Tor node's log is searched for warnings about the kistrel hops (see [`ctor_warnings`]):
//! none may appear. With `KISTREL_CTOR_BUILD_TIMES=N` the mixed-path test also builds N
//! circuits through K-K-K and N through C-C-C, alternated, with the same client program and
//! settings (one process pinned to each path), and prints the build times.
//!
//! Until kistrel's links speak TLS and the Tor link handshake (issue #14 items 1 and 4), only
//! the K-K-K test runs (the C Tor network beside kistrel's relays, pins, the log check); the
//! mixed-path test is `#[ignore]`d with that reason.
//!
//! Without `tor` the tests install the Debian package if they can, and print `SKIPPED:` only
//! when that fails.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{
    connected_to, fetch, serial, skip_without_tools, socks_connect, tor_available, ClientProcess,
    Http, NetProcess, MIB,
};

const SIZE: usize = 16 * MIB;

/// The network's paths: label, guard, middle, exit. The first runs through the net's own
/// client (pinned with `--path`), the rest through clients pinned in their configs.
const PATHS: [(&str, [&str; 3]); 5] = [
    ("K-C-K", ["relay1", "ctor1", "relay3"]),
    ("C-K-C", ["ctor1", "relay2", "ctor2"]),
    ("C-C-K", ["ctor2", "ctor3", "relay3"]),
    ("K-K-C", ["relay1", "relay2", "ctor3"]),
    ("K-K-K", ["relay1", "relay2", "relay3"]),
];

/// A client config pinned to `path`, beside the network's own (same directory file).
fn pinned_client(dir: &Path, label: &str, path: [&str; 3]) -> PathBuf {
    let file = dir.join(format!("client-{label}.toml"));
    let socks = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let text = format!(
        "SocksPort = \"{socks}\"\nDirectoryFile = \"directory.toml\"\n\
         DataDirectory = \"client-{label}-data\"\nEnforceDistinctSubnets = false\n\
         Workers = 1\nEntryNodes = [\"{}\"]\nMiddleNodes = [\"{}\"]\nExitNodes = [\"{}\"]\n",
        path[0], path[1], path[2]
    );
    std::fs::write(&file, text).expect("client config");
    file
}

/// What one path did.
struct Outcome {
    label: &'static str,
    problem: Option<String>,
}

/// Fetch through `socks` and check the digest; and that the client holds a channel to its
/// pinned guard and to no other relay of the network.
fn fetch_checked(
    label: &'static str,
    socks: SocketAddr,
    client_pid: i32,
    http: &Http,
    guard: SocketAddr,
    others: &[SocketAddr],
    out: &Path,
) -> Outcome {
    let problem = match fetch(socks, label, &http.url(), out) {
        None => Some("curl failed".to_owned()),
        Some((_, n)) if n != SIZE => Some(format!("{n} bytes arrived of {SIZE}")),
        Some((sha, _)) if sha != http.sha => Some("SHA-256 differs".to_owned()),
        Some(_) if !connected_to(client_pid, guard.port()) => {
            Some(format!("the client has no channel to its guard {guard}"))
        }
        Some(_) => others
            .iter()
            .find(|a| **a != guard && connected_to(client_pid, a.port()))
            .map(|a| format!("the client also has a channel to {a}, not its guard")),
    };
    let _ = std::fs::remove_file(out);
    Outcome { label, problem }
}

/// `[warn]`/`[err]` lines of the C Tor logs under `ctor_dir` that name a kistrel relay
/// (address, fingerprint or nickname) or speak of the link protocol. The lines every test
/// network logs (DirAuthority in use, running as root, first-consensus 404s) match neither.
fn ctor_warnings(ctor_dir: &Path, kistrel: &[(String, SocketAddr, String)]) -> Vec<String> {
    const PROTOCOL: [&str; 10] = [
        "rotocol",
        "CERTS",
        "AUTH_CHALLENGE",
        "AUTHENTICATE",
        "NETINFO",
        "VERSIONS",
        "handshake",
        "TLS",
        "certificate",
        "Unexpected",
    ];
    let mut found = Vec::new();
    let Ok(nodes) = std::fs::read_dir(ctor_dir) else {
        return vec![format!("no C Tor folder {}", ctor_dir.display())];
    };
    for node in nodes.flatten() {
        for log in ["notice.log", "info.log", "stdout.log"] {
            let path = node.path().join(log);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text
                .lines()
                .filter(|l| l.contains("[warn]") || l.contains("[err]"))
            {
                let names_kistrel = kistrel.iter().any(|(nick, addr, fpr)| {
                    line.contains(&addr.to_string())
                        || line.contains(fpr.as_str())
                        || line.contains(&format!("${fpr}"))
                        || line.contains(&format!("{nick} "))
                });
                if names_kistrel || PROTOCOL.iter().any(|p| line.contains(p)) {
                    found.push(format!("{}: {line}", path.display()));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The kistrel relays of the directory: nickname, address, uppercase hex fingerprint.
fn kistrel_relays(dir: &Path, ready: &support::Ready) -> Vec<(String, SocketAddr, String)> {
    let directory = kistrel_pathsel::Directory::load(dir.join("directory.toml")).expect("dir");
    ready
        .relay_list
        .iter()
        .filter(|r| r.kind == "kistrel")
        .map(|r| {
            let info = directory
                .relays()
                .iter()
                .find(|i| i.nickname == r.name)
                .expect("listed relay in the directory");
            (r.name.clone(), r.addr, hex::encode_upper(info.identity))
        })
        .collect()
}

/// The `build_us=` figures of the `circuit built` lines in a client log, tag 0 (the
/// client's first, pre-built circuit) left out.
fn build_times_us(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("circuit built") && !l.contains(" tag=0 "))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("build_us="))
                .and_then(|v| v.parse().ok())
        })
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// `KISTREL_CTOR_BUILD_TIMES=N`: N circuits through K-K-K and N through C-C-C, alternated.
fn compare_build_times(dir: &Path, http: &Http, n: usize) -> String {
    let target = SocketAddr::from(([127, 0, 0, 1], http.port));
    let kkk = ["relay1", "relay2", "relay3"];
    let ccc = ["ctor1", "ctor2", "ctor3"];
    let clients: Vec<(&str, ClientProcess)> = [("K-K-K", kkk), ("C-C-C", ccc)]
        .into_iter()
        .map(|(label, path)| {
            let label_bt = if label == "K-K-K" { "bt-kkk" } else { "bt-ccc" };
            let config = pinned_client(dir, label_bt, path);
            let log = dir.join(format!("client-{label_bt}.log"));
            (
                label,
                ClientProcess::start(&config, &log, Duration::from_secs(60)),
            )
        })
        .collect();
    for i in 0..n {
        for (label, c) in &clients {
            // A new SOCKS username is a new isolation tag: one fresh circuit.
            if let Err(e) = socks_connect(c.socks, &format!("build{i}"), target) {
                panic!("{label}: SOCKS connect {i} failed: {e}");
            }
        }
    }
    let mut report = format!("circuit build time, {n} builds per path, alternated:\n");
    let mut medians = Vec::new();
    for (label, c) in &clients {
        let mut t = build_times_us(&c.log);
        t.sort_unstable();
        assert_eq!(
            t.len(),
            n,
            "{label}: {} builds logged in {}",
            t.len(),
            c.log.display()
        );
        let med = percentile(&t, 0.5);
        medians.push(med);
        let _ = writeln!(
            report,
            "  {label}: median {med:.2} ms, p10 {:.2} ms, p90 {:.2} ms, min {:.2} ms, max {:.2} ms",
            percentile(&t, 0.1),
            percentile(&t, 0.9),
            percentile(&t, 0.0),
            percentile(&t, 1.0)
        );
    }
    let _ = writeln!(
        report,
        "  median ratio K-K-K / C-C-C: {:.2}",
        medians[0] / medians[1]
    );
    report
}

/// Start the network (its own client pinned to `paths[0]` by `--path`), fetch through
/// every path, search the C Tor logs, stop the network; panic naming what failed.
fn run_paths(paths: &[(&'static str, [&'static str; 3])]) {
    let _g = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = match std::env::var_os("KISTREL_E2E_KEEP") {
        Some(base) => PathBuf::from(base).join(format!("ctor-{}", std::process::id())),
        None => tmp.path().join("net"),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    cmd.args([
        "-v",
        "net",
        "--relays",
        "3",
        "--ctor-relays",
        "3",
        "--workers",
        "1",
        "--ready-timeout",
        "180s",
        "--path",
        &paths[0].1.join(","),
        "--dir",
    ])
    .arg(&dir)
    .stderr(std::fs::File::create(tmp.path().join("net.stderr")).expect("stderr file"));
    let net = NetProcess::spawn(
        &mut cmd,
        Duration::from_secs(400),
        &tmp.path().join("net.stderr"),
    );

    // The ready line lists every relay with its kind.
    let listed: Vec<(String, String)> = net
        .ready
        .relay_list
        .iter()
        .map(|r| (r.name.clone(), r.kind.clone()))
        .collect();
    let want: Vec<(String, String)> = [
        ("relay1", "kistrel"),
        ("relay2", "kistrel"),
        ("relay3", "kistrel"),
        ("auth1", "ctor"),
        ("ctor1", "ctor"),
        ("ctor2", "ctor"),
        ("ctor3", "ctor"),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), k.to_string()))
    .collect();
    assert_eq!(listed, want, "{}", net.ready.line);
    let addr_of = |nick: &str| {
        net.ready
            .relay_list
            .iter()
            .find(|r| r.name == nick)
            .map(|r| r.addr)
            .expect("listed")
    };
    let all: Vec<SocketAddr> = net.ready.relays.clone();

    let http = Http::start(SIZE, 14);
    let mut outcomes = Vec::new();
    for (i, (label, path)) in paths.iter().enumerate() {
        let out = dir.join(format!("fetch-{label}"));
        let guard = addr_of(path[0]);
        if i == 0 {
            let pid = support::pid_listening_on(net.ready.socks).expect("net's client pid");
            outcomes.push(fetch_checked(
                label,
                net.ready.socks,
                pid,
                &http,
                guard,
                &all,
                &out,
            ));
            continue;
        }
        let config = pinned_client(&dir, label, *path);
        let client = ClientProcess::start(
            &config,
            &dir.join(format!("client-{label}.log")),
            Duration::from_secs(90),
        );
        outcomes.push(fetch_checked(
            label,
            client.socks,
            client.pid(),
            &http,
            guard,
            &all,
            &out,
        ));
    }
    let build_report = std::env::var("KISTREL_CTOR_BUILD_TIMES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map(|n| compare_build_times(&dir, &http, n));

    let warnings = ctor_warnings(&dir.join("ctor"), &kistrel_relays(&dir, &net.ready));
    drop(net);
    for o in &outcomes {
        println!(
            "{}: {}",
            o.label,
            o.problem.as_deref().unwrap_or("16 MiB, SHA-256 equal")
        );
    }
    if let Some(r) = build_report {
        println!("{r}");
    }
    for w in &warnings {
        println!("C Tor warning: {w}");
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.problem.as_ref().map(|p| format!("{}: {p}", o.label)))
        .collect();
    assert!(
        failed.is_empty(),
        "paths failed: {failed:?}; logs in {}",
        dir.display()
    );
    assert!(
        warnings.is_empty(),
        "C Tor logged {} warnings about kistrel hops",
        warnings.len()
    );
}

/// The C Tor network comes up, joins the directory and the ready line, and a pinned K-K-K
/// path carries 16 MiB beside it; the C Tor logs stay clean. (Subsumed by the mixed-path
/// test below once that runs: then this one goes.)
#[test]
fn c_tor_network_comes_up_beside_kistrel_and_pins_hold() {
    if skip_without_tools() || !tor_available() {
        return;
    }
    run_paths(&PATHS[4..]);
}

/// Every mixed path. Needs TLS links (helper LB) and the CERTS / AUTH_CHALLENGE /
/// AUTHENTICATE handshake (helper LA) on main: a C Tor relay refuses kistrel's plain links.
#[test]
#[ignore = "needs kistrel's TLS links and Tor link handshake (issue #14 items 1 and 4): un-ignore when both are on main"]
fn mixed_paths_carry_16_mib_and_c_tor_logs_no_warning_about_kistrel() {
    if skip_without_tools() || !tor_available() {
        return;
    }
    run_paths(&PATHS);
}
