//! `kistrel net` as a supervisor, over a stand-in child program (these tests need no
//! runtime): the ready line, stopping everything, errors before and during start-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;

use support::{sigterm_and_wait, NetProcess};

fn kistrel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    c.env_remove("RUST_LOG");
    c
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A child that records its pid, then: `relay` sleeps (or, if its config names the relay in
/// $FAIL_RELAY, prints a line to stderr and exits 3); `client` prints the ready line and
/// sleeps. `exec` keeps the recorded pid.
const FAKE_CHILD: &str = r#"#!/bin/sh
while [ "$1" = "-v" ]; do shift; done
echo $$ >> "$PIDS"
case "$1" in
  relay)
    if [ -n "$FAIL_RELAY" ] && grep -q "Nickname = \"$FAIL_RELAY\"" "$3"; then
      echo "cannot bind: boom" >&2
      exit 3
    fi
    if grep -q MetricsPort "$3"; then
      n=$(sed -n 's/^Nickname = "relay\([0-9]*\)"/\1/p' "$3")
      echo "metrics addr=127.0.0.1:$((7000 + n))"
    fi
    or=$(sed -n 's/^ORPort = "\(.*\)"/\1/p' "$3")
    if [ -n "$COUNT_CONNECTS" ]; then
      # Listen on the ORPort and note every connection to it in $COUNT_CONNECTS.
      exec python3 -c '
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(16)
print("ready or=" + sys.argv[1], flush=True)
while True:
    c, peer = s.accept()
    with open(sys.argv[2], "a") as f:
        f.write(f"{peer}\n")
    c.close()
' "$or" "$COUNT_CONNECTS"
    fi
    if [ -z "$SILENT_RELAYS" ]; then echo "ready or=$or"; fi
    exec sleep 600 ;;
  client)
    if [ -n "$SILENT_CLIENT" ]; then exec sleep 600; fi
    echo "starting"
    if grep -q MetricsPort "$3"; then echo "metrics addr=127.0.0.1:7100"; fi
    echo "ready socks=127.0.0.1:4242"
    exec sleep 600 ;;
esac
exit 9
"#;

struct FakeNet {
    tmp: tempfile::TempDir,
}

impl FakeNet {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("fake-kistrel");
        std::fs::write(&exe, FAKE_CHILD).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeNet { tmp }
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut c = kistrel();
        c.arg("net")
            .args(["--dir", self.net_dir().to_str().unwrap()])
            .args(extra)
            .env(
                "KISTREL_NET_CHILD_EXE",
                self.tmp.path().join("fake-kistrel"),
            )
            .env("PIDS", self.tmp.path().join("pids"));
        if !extra.contains(&"--ready-timeout") {
            c.args(["--ready-timeout", "30s"]);
        }
        c
    }

    fn net_dir(&self) -> PathBuf {
        self.tmp.path().join("net")
    }

    /// `kistrel net EXTRA` over the stand-in children, up to its ready line.
    fn spawn(&self, extra: &[&str]) -> NetProcess {
        self.spawn_command(self.command(extra))
    }

    /// [`FakeNet::spawn`] with a command of [`FakeNet::command`] (given more environment).
    fn spawn_command(&self, mut cmd: Command) -> NetProcess {
        cmd.stderr(Stdio::piped());
        NetProcess::spawn(
            &mut cmd,
            std::time::Duration::from_secs(60),
            &self.net_dir(),
        )
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.tmp.path().join("pids"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    }
}

fn alive(pid: i32) -> bool {
    // Reaped children are gone from /proc (a zombie would still show: we want reaped).
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn net_prints_ready_then_stops_everything_on_sigterm() {
    let f = FakeNet::new();
    let mut net = f.spawn(&["--relays", "4"]);
    let line = format!("{}\n", net.ready.line);
    let dir = f.net_dir();
    let relays: Vec<String> = (1..=4)
        .map(|i| {
            let c =
                kistrel::config::RelayConf::load(&dir.join(format!("relay{i}.toml")), &[]).unwrap();
            format!("relay{i}:kistrel@{}", c.or_port)
        })
        .collect();
    assert_eq!(
        line,
        format!(
            "ready socks=127.0.0.1:4242 relays={} dir={}\n",
            relays.join(","),
            dir.display()
        )
    );
    let pids = f.pids();
    assert_eq!(pids.len(), 5, "4 relays and a client");
    assert!(pids.iter().all(|p| alive(*p)));
    assert_eq!(net.stop().code(), Some(0));
    for p in pids {
        assert!(!alive(p), "child {p} left behind");
    }
}

/// `kistrel net` learns that a relay listens from the relay's `ready or=` line, never by
/// connecting to its ORPort: such a connection is a channel to the relay, and the client's
/// first channels were placed around it (both on one worker of the relay).
#[test]
fn net_waits_for_relays_without_connecting_to_them() {
    let f = FakeNet::new();
    let connects = f.tmp.path().join("connects");
    let mut cmd = f.command(&[]);
    cmd.env("COUNT_CONNECTS", &connects);
    let mut net = f.spawn_command(cmd);
    // The stand-in relays listen on their ORPorts: each printed its ready line from there.
    for i in 1..=3 {
        let log = std::fs::read_to_string(f.net_dir().join(format!("relay{i}.log"))).unwrap();
        assert!(log.contains("ready or=127.0.0.1:"), "relay{i}: {log}");
    }
    assert_eq!(net.stop().code(), Some(0));
    let got = std::fs::read_to_string(&connects).unwrap_or_default();
    assert_eq!(got, "", "connections to the relays' ORPorts");
}

#[test]
fn net_metrics_puts_every_nodes_address_on_the_ready_line() {
    let f = FakeNet::new();
    let mut net = f.spawn(&["--metrics"]);
    let line = &net.ready.line;
    // Each config asks for port 0 on the node's own address.
    let relay = std::fs::read_to_string(f.net_dir().join("relay2.toml")).unwrap();
    assert!(relay.contains("MetricsPort = \"127.0.0.1:0\""), "{relay}");
    let client = std::fs::read_to_string(f.net_dir().join("client.toml")).unwrap();
    assert!(client.contains("MetricsPort = \"127.0.0.1:0\""), "{client}");
    assert!(
        line.trim_end().ends_with(
            " metrics=relay1@127.0.0.1:7001,relay2@127.0.0.1:7002,relay3@127.0.0.1:7003,client@127.0.0.1:7100"
        ),
        "{line}"
    );
    assert_eq!(
        net.ready
            .metrics
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["relay1", "relay2", "relay3", "client"]
    );
    assert_eq!(net.stop().code(), Some(0));
}

/// The one `kistrel: error: ...` line of `stderr`, after any `kistrel net:` placement line.
fn error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("kistrel net: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    lines[0].to_owned()
}

#[test]
fn net_reports_a_dead_child_and_stops_the_rest() {
    let f = FakeNet::new();
    let o = f.command(&[]).env("FAIL_RELAY", "relay2").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "no ready line: {}", stdout(&o));
    // The placement line (`kistrel net: not pinned: ...` here) may come first.
    let all = stderr(&o);
    let err = error_line(&all);
    let log = f.net_dir().join("relay2.log");
    assert!(err.starts_with("kistrel: error: relay2 (pid "), "{all}");
    assert!(
        err.trim_end().ends_with(&format!(
            "exited unexpectedly (exit status: 3); its log: {}; last line: cannot bind: boom",
            log.display()
        )),
        "{err}"
    );
    for p in f.pids() {
        assert!(!alive(p), "child {p} left behind");
    }
}

#[test]
fn net_bad_override_is_a_usage_error_before_any_child() {
    let f = FakeNet::new();
    let o = f.command(&["-o", "Wrokers=2"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown key `Wrokers` (did you mean `Workers`?)"));
    assert!(f.pids().is_empty());
}

#[test]
fn net_gives_up_when_the_client_is_never_ready() {
    let f = FakeNet::new();
    let o = f
        // The stand-in relays say they listen at once, so the client starts.
        .command(&["--ready-timeout", "5s"])
        .env("SILENT_CLIENT", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        error_line(&stderr(&o)),
        format!(
            "kistrel: error: the client did not report ready within 5 s; its log: {}",
            f.net_dir().join("client.log").display()
        )
    );
    let pids = f.pids();
    assert_eq!(pids.len(), 4);
    for p in pids {
        assert!(!alive(p), "child {p} left behind");
    }
}

#[test]
fn net_interrupted_during_start_up_stops_what_it_started_and_says_so() {
    let f = FakeNet::new();
    let mut child = f
        .command(&["--relays", "40", "--workers", "1"])
        .env("SILENT_RELAYS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first relay is up; the stand-ins never say they listen, so start-up is still
    // going on (the client comes after a 3 s wait for their ready lines).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while f.pids().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no child started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(sigterm_and_wait(&mut child), Some(1));
    let o = child.wait_with_output().unwrap();
    assert!(o.stdout.is_empty(), "no ready line: {}", stdout(&o));
    let pids = f.pids();
    assert!(
        pids.len() <= 40,
        "the client was never started: {} children",
        pids.len()
    );
    // A stand-in stopped before it wrote its pid is counted by net but not in the file.
    let err = error_line(&stderr(&o));
    let k: usize = err
        .strip_prefix("kistrel: error: interrupted during start-up: stopped the ")
        .and_then(|r| r.strip_suffix(" of 41 processes started; no network was left running"))
        .unwrap_or_else(|| panic!("{err}"))
        .parse()
        .unwrap();
    assert!(
        (pids.len().max(1)..=40).contains(&k),
        "{k} started, {} pids",
        pids.len()
    );
    for p in pids {
        assert!(!alive(p), "child {p} left behind");
    }
}

#[test]
fn net_ready_timeout_counts_from_the_start() {
    let f = FakeNet::new();
    let o = f
        .command(&["--ready-timeout", "1s"])
        .env("SILENT_RELAYS", "1")
        .output()
        .unwrap();
    // Relays that never say they listen: over before the 3 s listen wait ends, so the
    // client is never started.
    assert_eq!(o.status.code(), Some(1));
    assert!(error_line(&stderr(&o))
        .starts_with("kistrel: error: the client did not report ready within 1 s"));
    let pids = f.pids();
    assert_eq!(pids.len(), 3, "relays only");
    for p in pids {
        assert!(!alive(p), "child {p} left behind");
    }
}

#[test]
fn net_refuses_more_relays_than_the_machine_holds_before_starting_any() {
    let f = FakeNet::new();
    let o = f
        .command(&["--relays", "1000", "--workers", "1000"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        stderr(&o),
        format!(
            "kistrel: error: --relays 1000 is more than this machine can hold: 1001 nodes x \
             1000 worker(s) = 1001000 worker threads, over 64 per core ({cores} cores: {}); \
             use fewer relays or --workers 1\n",
            64 * cores
        )
    );
    assert!(f.pids().is_empty());
    assert!(!f.net_dir().exists());
}
