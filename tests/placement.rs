//! CPU placement end to end (issue #15): a relay's workers run on its `--cpus`, `kistrel net`
//! gives its nodes disjoint CPUs or pins none (and says which), bad CPU lists are refused
//! with exit 2 before anything starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kistrel::placement::{allowed_cpus, thread_affinity, CpuList};

mod support;

use support::{wait_for, NetProcess, RelayProcess};

fn kistrel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    c.env_remove("RUST_LOG");
    c
}

/// A relay config with `workers` workers on a free port, its key folder beside it.
fn relay_config(dir: &Path, workers: usize) -> std::path::PathBuf {
    let o = kistrel()
        .args(["keygen", "--out"])
        .arg(dir.join("keys"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let cfg = dir.join("relay.toml");
    std::fs::write(
        &cfg,
        format!("Nickname = \"pin\"\nORPort = \"127.0.0.1:0\"\nKeyDirectory = \"keys\"\nWorkers = {workers}\n"),
    )
    .unwrap();
    cfg
}

/// The CPUs each `kistrel-wN` thread of `pid` may run on, by N, once all `n` are up.
fn worker_cpus(pid: i32, n: usize) -> Vec<CpuList> {
    let mut found = Vec::new();
    let up = wait_for(Duration::from_secs(30), || {
        found = thread_affinity(pid)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.thread.starts_with("kistrel-w"))
            .collect();
        found.len() == n
    });
    assert!(up, "{n} worker threads of {pid}: found {found:?}");
    found.sort_by(|a, b| a.thread.cmp(&b.thread));
    found.into_iter().map(|t| t.cpus).collect()
}

#[test]
fn relay_workers_run_on_their_cpus() {
    let allowed = allowed_cpus().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = relay_config(tmp.path(), 2);
    // Both workers on the last CPU: they share it, and so do the relay's other threads.
    let last = CpuList::new([*allowed.cpus().last().unwrap()]).unwrap();
    let one = RelayProcess::start(
        &cfg,
        &tmp.path().join("one.log"),
        &[&format!("CPUAffinity={last}")],
    );
    assert_eq!(worker_cpus(one.pid(), 2), [last.clone(), last.clone()]);
    for t in thread_affinity(one.pid()).unwrap() {
        assert_eq!(t.cpus, last, "thread {} outside the relay's CPUs", t.thread);
    }
    drop(one);
    // One CPU each, in turn, with `--cpus` (the whole mask).
    let log = std::fs::File::create(tmp.path().join("two.log")).unwrap();
    let two = support::Reaped(
        kistrel()
            .args(["relay", "-c"])
            .arg(&cfg)
            .args(["--cpus", &allowed.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let want: Vec<CpuList> = (0..2)
        .map(|i| CpuList::new([allowed.for_worker(i)]).unwrap())
        .collect();
    assert_eq!(worker_cpus(two.0.id() as i32, 2), want);
}

/// The pid of the process started with config `file` on its command line.
fn pid_of_config(file: &Path) -> Option<i32> {
    let want = file.to_str()?;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.contains(&want.as_bytes()).then_some(pid)
    })
}

#[test]
fn cpus_the_process_may_not_use_are_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = relay_config(tmp.path(), 1);
    let allowed = allowed_cpus().unwrap();
    let o = kistrel()
        .args(["relay", "-c"])
        .arg(&cfg)
        .args(["--cpus", "1023"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        format!(
            "kistrel: error: {}: key `CPUAffinity`: CPU(s) 1023 asked for, but this process may run on {allowed} only (taskset, cgroup cpuset or an offline CPU)\n",
            cfg.display()
        )
    );
    for (args, want) in [
        (
            vec!["relay", "-c", "x.toml", "--cpus", "3-1"],
            "bad CPU range \"3-1\"",
        ),
        (vec!["net", "--cpus", "one"], "bad CPU list item \"one\""),
        (
            vec!["net", "--cpus", "0", "--no-pin"],
            "cannot be used with",
        ),
        (vec!["bench", "--cpus", ""], "empty CPU list"),
    ] {
        let o = kistrel().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // net refuses before it creates anything.
    let dir = tmp.path().join("net");
    let o = kistrel()
        .args(["net", "--cpus", "1023", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr)
        .unwrap()
        .starts_with("kistrel: error: --cpus: CPU(s) 1023 asked for"));
    assert!(!dir.exists());
}

/// `kistrel net` (real nodes): with at least as many CPUs as its 4 nodes, each node's
/// workers run on CPUs no other node has; with fewer, none is pinned and one line says so.
#[test]
fn net_nodes_never_share_a_pinned_cpu() {
    let allowed = allowed_cpus().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let err = tmp.path().join("net.err");
    let mut cmd = kistrel();
    cmd.args(["net", "--relays", "3", "--workers", "1", "--dir"])
        .arg(&dir)
        .stderr(std::fs::File::create(&err).unwrap());
    let mut net = NetProcess::spawn(&mut cmd, Duration::from_secs(120), &dir);
    let said = std::fs::read_to_string(&err).unwrap();
    let nodes: Vec<(String, i32)> = ["relay1", "relay2", "relay3", "client"]
        .iter()
        .map(|n| {
            let file = dir.join(format!("{n}.toml"));
            let pid = pid_of_config(&file).unwrap_or_else(|| panic!("no process for {n}"));
            ((*n).to_owned(), pid)
        })
        .collect();
    let seen: Vec<(String, CpuList)> = nodes
        .iter()
        .map(|(n, pid)| (n.clone(), worker_cpus(*pid, 1).remove(0)))
        .collect();
    net.stop();
    if allowed.len() >= 4 {
        assert!(said.contains("kistrel net: pinned: relay1 "), "{said}");
        for (i, (a, ca)) in seen.iter().enumerate() {
            assert_eq!(ca.len(), 1, "{a} pinned to one CPU");
            for (b, cb) in &seen[i + 1..] {
                assert!(!ca.overlaps(cb), "{a} ({ca}) and {b} ({cb}) share a CPU");
            }
        }
    } else {
        assert!(
            said.contains(&format!(
                "kistrel net: not pinned: 4 nodes (relay1, relay2, relay3, client) on {} CPU(s) ({allowed}): fewer CPUs than nodes",
                allowed.len()
            )),
            "{said}"
        );
        for (n, cpus) in &seen {
            assert_eq!(cpus, &allowed, "{n} is pinned");
        }
        let relay1 = std::fs::read_to_string(dir.join("relay1.toml")).unwrap();
        assert!(!relay1.contains("CPUAffinity"), "{relay1}");
    }
}
