//! Helpers shared by the real-socket tests (`tests/e2e.rs`, `tests/faults.rs`,
//! `tests/hardening.rs`, `tests/testbed.rs`, `tests/cli.rs`, `tests/net.rs`): a `kistrel net`
//! process and its ready line, a python3 HTTP server, curl through SOCKS, a TLS tunnel for
//! raw Tor peers ([`tls::connect`]), `ss` lookups, SIGTERM and wait, and the
//! one-test-at-a-time lock. Each test binary uses a subset.
#![allow(dead_code, unused_macros)]

pub mod relays;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const MIB: usize = 1 << 20;

pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The tests share two cores: run them one at a time so each network gets the machine.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn skip_without_tools() -> bool {
    for tool in ["curl", "python3"] {
        if !have(tool) {
            println!("SKIPPED: {tool} not installed");
            return true;
        }
    }
    false
}

/// One relay of the ready line: `NAME:KIND@ADDR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyRelay {
    pub name: String,
    /// `kistrel` or `ctor`.
    pub kind: String,
    pub addr: SocketAddr,
}

/// `kistrel net`'s ready line, parsed: `ready socks=ADDR relays=NAME:KIND@ADDR,... dir=PATH
/// [metrics=NAME@ADDR,...] [netns=P host=IP]`.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The whole line (without the newline).
    pub line: String,
    pub socks: SocketAddr,
    /// Every relay's address, in ready-line order.
    pub relays: Vec<SocketAddr>,
    /// Every relay with its name and kind.
    pub relay_list: Vec<ReadyRelay>,
    pub dir: PathBuf,
    /// `metrics=`: each node's MetricsPort.
    pub metrics: Vec<(String, SocketAddr)>,
    /// `netns=`: the namespace prefix of a shaped network.
    pub netns: Option<String>,
    /// `host=`: this machine's address on a shaped network.
    pub host: Option<std::net::Ipv4Addr>,
}

impl Ready {
    /// The fields of a ready line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Ready> {
        let line = line.trim_end();
        if !line.starts_with("ready ") {
            return None;
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_owned)
        };
        let list = |name: &str| {
            field(name)
                .map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let relay_list: Vec<ReadyRelay> = list("relays=")
            .iter()
            .map(|e| {
                let (name_kind, addr) = e.split_once('@')?;
                let (name, kind) = name_kind.split_once(':')?;
                Some(ReadyRelay {
                    name: name.to_owned(),
                    kind: kind.to_owned(),
                    addr: addr.parse().ok()?,
                })
            })
            .collect::<Option<_>>()?;
        Some(Ready {
            line: line.to_owned(),
            socks: field("socks=")?.parse().ok()?,
            relays: relay_list.iter().map(|r| r.addr).collect(),
            relay_list,
            dir: PathBuf::from(field("dir=")?),
            metrics: list("metrics=")
                .iter()
                .map(|e| {
                    let (name, addr) = e.split_once('@')?;
                    Some((name.to_owned(), addr.parse().ok()?))
                })
                .collect::<Option<_>>()?,
            netns: field("netns="),
            host: field("host=").and_then(|h| h.parse().ok()),
        })
    }
}

/// A child stopped on drop: SIGTERM (so `kistrel net` tears its network down), then SIGKILL
/// after 20 s; reaped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's (piped) stdout, read on a thread so waits can be bounded.
pub fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded by `limit`) for `child` to exit on its own.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not exit in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `kistrel net` (or another command that prints a ready line): spawned, its
/// stdout read on a thread (so every wait is bounded), its ready line parsed. Dropping it
/// sends SIGTERM (so `kistrel net` tears its network down), then SIGKILL after 20 s, and
/// reaps it.
pub struct NetProcess {
    pub child: Reaped,
    pub ready: Ready,
    /// Later stdout lines.
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl NetProcess {
    /// Spawns `cmd` with stdout piped and waits up to `wait` for its ready line; panics with
    /// what it printed instead (and `logs`, where its logs are).
    pub fn spawn(cmd: &mut Command, wait: Duration, logs: &Path) -> NetProcess {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn kistrel net");
        let lines = lines_of(&mut child);
        let first = lines.recv_timeout(wait);
        let ready = first.as_deref().ok().and_then(Ready::parse);
        let Some(ready) = ready else {
            let _ = child.kill();
            let _ = child.wait();
            // The log folder is a temporary one, gone once the test unwinds: show its end.
            let text = std::fs::read_to_string(logs).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "no ready line (got {first:?}); the end of {}:\n{}",
                logs.display(),
                tail.join("\n")
            );
        };
        NetProcess {
            child: Reaped(child),
            ready,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Waits (bounded by `limit`) for it to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        wait_exit(&mut self.child.0, limit, "kistrel net")
    }

    /// SIGTERM, then wait (bounded) for its exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(20))
    }
}

/// `kistrel net` on loopback for the end-to-end tests, stopped with SIGTERM on drop.
pub struct Net {
    pub process: NetProcess,
    pub socks: SocketAddr,
    pub relays: Vec<SocketAddr>,
    pub dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
}

impl Net {
    pub fn start(backend: &str, relays: usize, extra: &[&str]) -> Net {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = match std::env::var_os("KISTREL_E2E_KEEP") {
            Some(base) => PathBuf::from(base)
                .join(format!("net-{}", std::process::id()))
                .join(
                    format!("{:?}", std::thread::current().id())
                        .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
                ),
            None => tmp.path().join("net"),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kistrel"));
        cmd.args([
            "-v",
            "net",
            "--backend",
            backend,
            "--relays",
            &relays.to_string(),
            "--workers",
            "1",
            "--dir",
        ])
        .arg(&dir)
        .args(extra)
        .stderr(Stdio::null());
        let process = NetProcess::spawn(&mut cmd, Duration::from_secs(120), &dir);
        Net {
            socks: process.ready.socks,
            relays: process.ready.relays.clone(),
            dir,
            process,
            tmp: Some(tmp),
        }
    }

    /// As [`Net::stop`], keeping the network's folder (logs, state file) for inspection.
    pub fn stop_and_keep(mut self) -> (std::process::ExitStatus, Option<tempfile::TempDir>) {
        let tmp = self.tmp.take();
        (self.stop(), tmp)
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.process.stop()
    }
}

/// A python3 http.server over a folder holding `file` (`size` random bytes).
pub struct Http {
    pub child: Child,
    pub port: u16,
    pub sha: [u8; 32],
    _tmp: tempfile::TempDir,
}

impl Http {
    pub fn start(size: usize, seed: u64) -> Http {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = seeded_data(size, seed);
        std::fs::write(tmp.path().join("file"), &data).expect("write");
        let sha = Sha256::digest(&data).into();
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Http {
            child,
            port,
            sha,
            _tmp: tmp,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/file", self.port)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `size` bytes [`Http::start`] serves for `seed`.
pub fn seeded_data(size: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut data = vec![0u8; size];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// curl through the SOCKS port (with a username for stream isolation); returns the SHA-256
/// of what arrived and its length, or None if curl failed.
pub fn fetch(socks: SocketAddr, user: &str, url: &str, out: &Path) -> Option<([u8; 32], usize)> {
    fetch_at(socks, user, url, out, None)
}

/// As [`fetch`], at most `rate` (curl's `--limit-rate`, e.g. "8M").
pub fn fetch_at(
    socks: SocketAddr,
    user: &str,
    url: &str,
    out: &Path,
    rate: Option<&str>,
) -> Option<([u8; 32], usize)> {
    let (ok, data) = fetch_prefix(socks, user, url, out, rate);
    ok.then(|| (Sha256::digest(&data).into(), data.len()))
}

/// The pid of the process listening on `addr`, from `ss`.
pub fn pid_listening_on(addr: SocketAddr) -> Option<i32> {
    let out = Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{}", addr.port())])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("pid=")? + 4;
    text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Relays (by OR address) that have an established connection to `peer`.
pub fn relays_connected_to(relays: &[SocketAddr], peer: SocketAddr) -> Vec<SocketAddr> {
    let out = Command::new("ss")
        .args(["-Htnp", "state", "established"])
        .output()
        .expect("ss");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    relays
        .iter()
        .copied()
        .filter(|r| {
            let Some(pid) = pid_listening_on(*r) else {
                return false;
            };
            text.lines().any(|l| {
                l.contains(&format!("pid={pid},"))
                    && l.contains(&format!("127.0.0.1:{} ", peer.port()))
            })
        })
        .collect()
}

/// curl through SOCKS without `-f` checks: whether curl succeeded and every byte that
/// reached the output file (a failed transfer leaves its received prefix there).
pub fn fetch_prefix(
    socks: SocketAddr,
    user: &str,
    url: &str,
    out: &Path,
    rate: Option<&str>,
) -> (bool, Vec<u8>) {
    let mut cmd = Command::new("curl");
    if let Some(rate) = rate {
        cmd.args(["--limit-rate", rate]);
    }
    let ok = cmd
        .args(["-s", "-f", "--max-time", "120", "--proxy"])
        .arg(match user {
            // No credentials: the client's pre-built circuit (tag 0).
            "" => format!("socks5h://{socks}"),
            user => format!("socks5h://{user}:x@{socks}"),
        })
        .arg("-o")
        .arg(out)
        .arg(url)
        .status()
        .expect("run curl")
        .success();
    (ok, std::fs::read(out).unwrap_or_default())
}

/// SIGKILL to `pid` (kill -9).
pub fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
}

/// Whether a process `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident set size of `pid` in bytes (`VmRSS` of /proc/PID/status).
pub fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// `text` without ANSI colour sequences (logs are written with colours, field names and
/// values separated by them).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (false, c) => out.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    out
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` has an established TCP connection to `port` on 127.0.0.1.
pub fn connected_to(pid: i32, port: u16) -> bool {
    let out = Command::new("ss")
        .args(["-Htnp", "state", "established"])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains(&format!("pid={pid},")) && l.contains(&format!("127.0.0.1:{port} ")))
}

/// A SOCKS5 CONNECT through `socks` to `target`, isolated by `user` (empty: no
/// credentials). Returns the stream once the client reported success.
pub fn socks_connect(
    socks: SocketAddr,
    user: &str,
    target: SocketAddr,
) -> std::io::Result<TcpStream> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(socks)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut r = [0u8; 2];
    if user.is_empty() {
        // No credentials: the client's pre-built circuit (tag 0).
        s.write_all(&[5, 1, 0])?;
        s.read_exact(&mut r)?;
    } else {
        s.write_all(&[5, 1, 2])?;
        s.read_exact(&mut r)?;
        let mut auth = vec![1, user.len() as u8];
        auth.extend_from_slice(user.as_bytes());
        auth.extend_from_slice(&[1, b'x']);
        s.write_all(&auth)?;
        s.read_exact(&mut r)?;
    }
    let SocketAddr::V4(t) = target else {
        return Err(std::io::Error::other("IPv4 targets only"));
    };
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&t.ip().octets());
    req.extend_from_slice(&t.port().to_be_bytes());
    s.write_all(&req)?;
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep)?;
    if rep[1] != 0 {
        return Err(std::io::Error::other(format!("SOCKS reply {}", rep[1])));
    }
    Ok(s)
}

/// Reads until EOF or an error (bounded by the stream's read timeout); returns the bytes
/// and whether it ended with an error (reset) rather than a clean EOF.
pub fn read_to_end_or_error(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

/// A `kistrel relay -c FILE` started by a test (e.g. a restarted relay), stopped with
/// SIGTERM (then SIGKILL) on drop.
pub struct RelayProcess {
    pub child: Child,
}

impl RelayProcess {
    /// Starts `kistrel relay -c config`, logging to `log`, with `-o` overrides.
    pub fn start(config: &Path, log: &Path, overrides: &[&str]) -> RelayProcess {
        let log = std::fs::File::create(log).expect("relay log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kistrel"));
        cmd.args(["-v", "relay", "-c"]).arg(config);
        for o in overrides {
            cmd.args(["-o", o]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kistrel relay");
        RelayProcess { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every scenario runs on both runtime backends, from the same code (the poll backend must
/// pass the whole real-socket suite too): `on_both_backends!(a, b)` makes `uring::a`,
/// `poll::a`, ...
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test] fn $name() { super::$name("uring") })*
        }
        mod poll {
            $(#[test] fn $name() { super::$name("poll") })*
        }
    };
}

/// Whether C Tor is here (`tor` and `tor-gencert` in PATH or /usr/sbin): if not, and we are
/// root with apt-get, install the Debian `tor` package (as .ci/run does). False (with a
/// `SKIPPED:` line) only when it cannot be had.
pub fn tor_available() -> bool {
    let found = || kistrel::ctor::Programs::find().is_ok();
    if found() {
        return true;
    }
    let root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    };
    if root && have_path("apt-get") {
        let quiet = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        // As .ci/run: no system tor service started by the package (policy-rc.d 101).
        let policy = Path::new("/usr/sbin/policy-rc.d");
        let own_policy =
            !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
        if own_policy {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755));
        }
        let _ = quiet(&["update", "-qq"]);
        let _ = quiet(&["install", "-y", "-qq", "tor"]);
        if own_policy {
            let _ = std::fs::remove_file(policy);
        }
        if found() {
            return true;
        }
    }
    println!(
        "SKIPPED: tor and tor-gencert are not installed and the tor package could not be installed"
    );
    false
}

fn have_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// A `kistrel client -c FILE` started by a test, its `ready socks=` line awaited; stopped
/// with SIGTERM (then SIGKILL) on drop.
pub struct ClientProcess {
    pub child: Reaped,
    pub socks: SocketAddr,
    pub log: PathBuf,
}

impl ClientProcess {
    /// Starts `kistrel -v client -c config` (stderr into `log`) and waits up to `wait` for
    /// its ready line; panics with the log's tail otherwise.
    pub fn start(config: &Path, log: &Path, wait: Duration) -> ClientProcess {
        let log_file = std::fs::File::create(log).expect("client log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kistrel"))
            .args(["-v", "client", "-c"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start kistrel client");
        let lines = lines_of(&mut child);
        let deadline = Instant::now() + wait;
        let child = Reaped(child);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let socks = line
                        .strip_prefix("ready socks=")
                        .and_then(|a| a.trim().parse().ok());
                    if let Some(socks) = socks {
                        return ClientProcess {
                            child,
                            socks,
                            log: log.to_path_buf(),
                        };
                    }
                }
                Err(_) => {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(15).collect();
                    panic!(
                        "client {} not ready in {wait:?}; its log ends:\n{}",
                        config.display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.0.id() as i32
    }
}

/// SIGTERM to a child, then its exit code.
pub fn sigterm_and_wait(child: &mut std::process::Child) -> Option<i32> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap().code()
}
