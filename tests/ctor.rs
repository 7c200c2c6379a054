//! Circuits that mix kistrel and C Tor relays (issue #14): `kistrel net --relays 3
//! --ctor-relays 3` (a private C Tor 0.4.9 network on 127.0.0.1: one authority, three exit
//! relays) is started once and shared by every path, and torn down at the end, also on
//! failure (the network's process is stopped on drop).
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
//! none may appear. With `KISTREL_CTOR_BUILD_TIMES=N` the test also builds N
//! circuits through K-K-K and N through C-C-C, alternated, with the same client program and
//! settings (one process pinned to each path), and prints the build times.
//!
//! kistrel's relays are not in the C Tor consensus: C Tor relays reach them through EXTEND2's
//! link specifiers (RSA and Ed25519 identity, address), and C Tor exits accept streams after
//! a kistrel middle because the network sets `RefuseUnknownExits 0` (see
//! `kistrel::ctor::torrc`).
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
    connected_to, fetch, serial, skip_without_tools, socks_connect, strip_ansi, tor_available,
    ClientProcess, Http, NetProcess, MIB,
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

/// The `build_us=` figures of the `circuit built` lines in a client log's text (coloured
/// or not), tag 0 (the client's first, pre-built circuit) left out.
fn build_times_us(log_text: &str) -> Vec<u64> {
    strip_ansi(log_text)
        .lines()
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
        let mut t = build_times_us(&std::fs::read_to_string(&c.log).unwrap_or_default());
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

/// The C Tor network comes up beside kistrel's relays and joins the directory and the ready
/// line; every mixed path carries 16 MiB with equal SHA-256 through a client that holds a
/// channel to its pinned guard only; the C Tor logs have no warning about the kistrel hops.
/// Needs TLS links and the CERTS / AUTH_CHALLENGE / AUTHENTICATE handshake: a C Tor relay
/// closes anything else.
#[test]
fn mixed_paths_carry_16_mib_and_c_tor_logs_no_warning_about_kistrel() {
    if skip_without_tools() || !tor_available() {
        return;
    }
    run_paths(&PATHS);
}

/// The build-time figures come from the client's coloured log lines.
#[test]
fn build_times_are_read_from_coloured_log_lines() {
    let log = "\x1b[2m2026-12-05T01:00:00Z\x1b[0m \x1b[32m INFO\x1b[0m origin: circuit built \
               \x1b[3mcircuit\x1b[0m\x1b[2m=\x1b[0m0/1 \x1b[3mtag\x1b[0m\x1b[2m=\x1b[0m0 \
               \x1b[3mbuild_ms\x1b[0m\x1b[2m=\x1b[0m9 \x1b[3mbuild_us\x1b[0m\x1b[2m=\x1b[0m9100\n\
               2026-12-05T01:00:01Z  INFO origin: circuit built circuit=0/2 tag=7 build_ms=4 \
               build_us=4321\n\
               \x1b[32m INFO\x1b[0m origin: circuit built \x1b[3mtag\x1b[0m\x1b[2m=\x1b[0m8 \
               \x1b[3mbuild_us\x1b[0m\x1b[2m=\x1b[0m5000\n\
               origin: circuit failed while building tag=9 build_us=1\n";
    assert_eq!(build_times_us(log), vec![4321, 5000]);
}

/// The log check flags what C Tor said about kistrel hops (the warnings a P-256 TLS key
/// caused, a bad CERTS cell, a line naming a kistrel relay) and passes the lines every tiny
/// C Tor test network logs on its own.
#[test]
fn the_c_tor_log_check_tells_kistrel_trouble_from_test_network_noise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = dir.path().join("ctor1");
    std::fs::create_dir(&node).expect("node folder");
    let kistrel = vec![(
        "relay3".to_owned(),
        SocketAddr::from(([127, 0, 0, 1], 44395)),
        "A".repeat(40),
    )];
    let noise = "Dec 05 01:40:08.866 [warn] Your ContactInfo config option is not set.\n\
                 Dec 05 01:40:13.000 [warn] Received http status code 404 (\"Not found\") from \
                 server 127.0.0.1:45831 while fetching consensus directory.\n\
                 Dec 05 01:40:19.000 [warn] Client asked me to extend back to the previous hop.\n\
                 Dec 05 01:40:19.000 [notice] Received a bad CERTS cell: at notice, not a warning\n";
    std::fs::write(node.join("notice.log"), noise).expect("log");
    assert_eq!(ctor_warnings(dir.path(), &kistrel), Vec::<String>::new());
    let trouble = [
        "Dec 05 01:40:18.000 [warn] TLS error: expecting an rsa key (in digital envelope \
         routines:(null):---)",
        "Dec 05 01:40:18.000 [warn] Received a bad CERTS cell from 10.0.0.9:9001: It couldn't \
         be parsed.",
        "Dec 05 01:40:18.000 [warn] Problem with 127.0.0.1:44395: it misbehaved",
        "Dec 05 01:40:18.000 [warn] Something about $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ];
    std::fs::write(node.join("info.log"), trouble.join("\n")).expect("log");
    let found = ctor_warnings(dir.path(), &kistrel);
    assert_eq!(found.len(), trouble.len(), "{found:#?}");
    for line in trouble {
        assert!(
            found.iter().any(|f| f.ends_with(line)),
            "{line} not flagged"
        );
    }
}
