//! What a newcomer meets first, checked: a client whose directory can never give a path
//! says why and exits 2 before binding anything; `--print-config`; `kistrel relay`'s ready
//! line; no ANSI colours off a terminal; absurd arguments refused with exit 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;

use support::{free_port, lines_of, wait_exit, Reaped};

fn kistrel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kistrel"));
    c.env_remove("RUST_LOG");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// A copy of docs/examples in a temp folder.
fn examples() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    std::fs::create_dir_all(tmp.path().join("keys/guard1")).unwrap();
    for name in ["relay.toml", "client.toml", "directory.toml"] {
        std::fs::copy(from.join(name), tmp.path().join(name)).unwrap();
    }
    for key in std::fs::read_dir(from.join("keys/guard1")).unwrap() {
        let key = key.unwrap().path();
        let to = tmp
            .path()
            .join("keys/guard1")
            .join(key.file_name().unwrap());
        std::fs::copy(&key, to).unwrap();
    }
    tmp
}

const SAME_SUBNET: &str = "every path would put two relays in one IPv4 /16 (or IPv6 /32), \
    which EnforceDistinctSubnets forbids; on a one-machine network set \
    EnforceDistinctSubnets = false (kistrel path sample: --allow-same-subnet)";

#[test]
fn client_without_a_possible_path_says_why_and_exits_2_at_start() {
    let tmp = examples();
    let port = free_port();
    let o = kistrel()
        .args([
            "client",
            "-c",
            "client.toml",
            "-o",
            "EnforceDistinctSubnets=true",
        ])
        .args(["-o", &format!("SocksPort=127.0.0.1:{port}")])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o.stdout), "", "no ready line");
    assert_eq!(
        text(&o.stderr),
        format!("kistrel: error: client.toml: the directory directory.toml gives no path: {SAME_SUBNET}\n")
    );
    // It stopped before binding or writing anything.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    assert!(!tmp.path().join("client-data").exists());
    // `path sample` names the same cause.
    let o = kistrel()
        .args([
            "path",
            "sample",
            "--directory",
            "directory.toml",
            "-n",
            "10",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        format!("kistrel: error: directory.toml: cannot pick a path: {SAME_SUBNET}\n")
    );
}

#[test]
fn print_config_prints_every_key_and_loads_back() {
    let tmp = examples();
    for (kind, file) in [("relay", "relay.toml"), ("client", "client.toml")] {
        let o = kistrel()
            .args([kind, "-c", file, "--print-config", "-o", "Workers=3"])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let printed = text(&o.stdout);
        assert!(printed.contains("\nWorkers = 3\n"), "{printed}");
        // Loading the printed configuration prints it again, unchanged (but the header).
        let again = tmp.path().join(format!("printed-{file}"));
        std::fs::write(&again, &printed).unwrap();
        let o = kistrel()
            .args([
                kind,
                "-c",
                again.file_name().unwrap().to_str().unwrap(),
                "--print-config",
            ])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&text(&o.stdout)), body(&printed));
    }
}

#[test]
fn relay_prints_its_ready_line_with_the_chosen_ports() {
    let tmp = examples();
    let mut child = kistrel()
        .args([
            "relay",
            "-c",
            "relay.toml",
            "-o",
            "ORPort=127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let mut child = Reaped(child);
    let metrics = lines.recv_timeout(Duration::from_secs(30)).unwrap();
    let ready = lines.recv_timeout(Duration::from_secs(30)).unwrap();
    let m: std::net::SocketAddr = metrics
        .strip_prefix("metrics addr=")
        .unwrap()
        .parse()
        .unwrap();
    let rest = ready.strip_prefix("ready or=").unwrap();
    let (or, metrics_again) = rest.split_once(" metrics=").unwrap();
    let or: std::net::SocketAddr = or.parse().unwrap();
    assert_ne!(or.port(), 0);
    assert_eq!(metrics_again.parse::<std::net::SocketAddr>().unwrap(), m);
    std::net::TcpStream::connect(or).expect("the ORPort listens once ready");
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut child.0, Duration::from_secs(20), "relay").success());
}

#[test]
fn logs_off_a_terminal_have_no_colour_codes() {
    let tmp = examples();
    let log: PathBuf = tmp.path().join("relay.log");
    let mut child = kistrel()
        .args([
            "-v",
            "relay",
            "-c",
            "relay.toml",
            "-o",
            "ORPort=127.0.0.1:0",
        ])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let mut child = Reaped(child);
    assert!(lines
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .starts_with("ready or="));
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut child.0, Duration::from_secs(20), "relay").success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains(" INFO "), "{logged}");
    assert!(
        !logged.contains('\u{1b}'),
        "colour codes in a log file:\n{logged:?}"
    );
}

fn usage_error(args: &[&str]) -> Output {
    let o = kistrel().args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
    o
}

#[test]
fn absurd_arguments_are_refused_with_exit_2() {
    let tmp = examples();
    let dir = tmp.path().join("directory.toml");
    let o = usage_error(&["path", "sample", "--dir", dir.to_str().unwrap(), "-n", "0"]);
    assert!(
        text(&o.stderr).contains("0 is not in 1.."),
        "{}",
        text(&o.stderr)
    );
    let times = tmp.path().join("times.txt");
    std::fs::write(&times, "100\n99999999\n").unwrap();
    let o = usage_error(&["cbt", "fit", times.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert!(
        err.contains(":2: build time 99999999 ms is out of range"),
        "{err}"
    );
}

#[test]
fn json_takes_a_file_or_dash_everywhere() {
    let tmp = examples();
    let times = tmp.path().join("times.txt");
    std::fs::write(&times, "100\n200\n150\n").unwrap();
    let file = tmp.path().join("fit.json");
    // `--json FILE`: the file holds the JSON, stdout the human summary.
    let o = kistrel()
        .args([
            "cbt",
            "fit",
            times.to_str().unwrap(),
            "--json",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("n=3 "), "{}", text(&o.stdout));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(v["n"], 3);
    // `--json -`: stdout is the JSON alone.
    let o = kistrel()
        .args([
            "path",
            "sample",
            "--directory",
            "directory.toml",
            "-n",
            "5",
            "--seed",
            "1",
        ])
        .args(["--allow-same-subnet", "--json", "-"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(v["seed"], 1);
}

#[test]
fn a_client_without_data_directory_says_where_its_state_goes() {
    let tmp = examples();
    let port = free_port();
    std::fs::write(
        tmp.path().join("nodata.toml"),
        format!(
            "SocksPort = \"127.0.0.1:{port}\"\nDirectoryFile = \"directory.toml\"\n\
             EnforceDistinctSubnets = false\n"
        ),
    )
    .unwrap();
    let mut child = kistrel()
        .args(["client", "-c", "nodata.toml"])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let mut child = Reaped(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let warning = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a warning line");
        if line.contains("DataDirectory") {
            break line;
        }
    };
    // Run from the config's folder: the state file is `./state` there.
    assert!(
        warning.ends_with(
            "DataDirectory is not set: the state file (guards, build times) is ./state, in the \
             config file's folder; set DataDirectory to choose"
        ),
        "{warning}"
    );
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut child.0, Duration::from_secs(20), "client").success());
}

#[test]
fn child_of_a_dead_supervisor_exits() {
    // The named parent is not our parent: as if `kistrel net` died before the child set
    // its parent-death signal.
    let o = kistrel()
        .args(["relay", "-c", "/nonexistent/relay.toml"])
        .env("KISTREL_PARENT_PID", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "kistrel: parent process 1 is gone; exiting\n"
    );
}

#[test]
fn keygen_writes_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("k");
    let o = kistrel()
        .args(["keygen", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let line = text(&o.stdout);
    let k = kistrel::keys::RelayKeyFolder::load(&out).unwrap();
    let id = hex::encode_upper(k.rsa_id());
    let ed = base64::engine::general_purpose::STANDARD.encode(k.ed_id());
    let ntor = base64::engine::general_purpose::STANDARD.encode(k.ntor_public());
    assert_eq!(
        line.trim_end(),
        format!(
            "identity={id} ed25519_identity={ed} ntor_key={ntor} dir={}",
            out.display()
        )
    );
    let o = kistrel()
        .args(["keygen", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        format!(
            "kistrel: error: key file {} already exists: remove the key folder first if you really want new keys\n",
            out.join("secret_id_key").display()
        )
    );
}
