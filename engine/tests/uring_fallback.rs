//! Where io_uring cannot be set up, `Backend = "auto"` runs on poll with one warning saying
//! why, and `Backend = "uring"` fails with an error of kind `Unsupported`.
//!
//! The proof runs in a child process of this test binary that installs a seccomp filter
//! denying io_uring_setup with EPERM (what Docker's default profile does): there the
//! backend is chosen, a relay worker starts on it and answers a VERSIONS cell over
//! loopback, and the explicit choice fails. The parent checks the child's exit status,
//! its report and the one warning on its stderr. (`runtime::select_with` with an injected
//! failure is the unit test of the same rule, in engine/src/runtime/backend.rs.)
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command as Process;
use std::time::Duration;

use crossbeam_channel::bounded;
use kistrel_engine::relay::{RelayConfig, RelayKeys};
use kistrel_engine::runtime::{
    self, Backend, BackendChoice, Clock, Command, EventSender, WorkerConfig,
};
use kistrel_engine::{ErrorKind, HasKind};
use kistrel_sched::{SchedConfig, SchedulerKind};
use rand::SeedableRng;

/// Set in the child's environment.
const CHILD: &str = "KISTREL_SECCOMP_CHILD";

#[test]
fn io_uring_denied_by_seccomp_falls_back_to_poll_unless_asked_for() {
    let exe = std::env::current_exe().expect("test binary");
    let out = Process::new(exe)
        .args(["--ignored", "--exact", "seccomp_child", "--nocapture"])
        .args(["--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("child: relay on poll answered VERSIONS"),
        "{stdout}"
    );
    // (libtest may print the test's name on the same line first.)
    let uring = stdout
        .lines()
        .find_map(|l| l.split_once("child: uring error: ").map(|(_, e)| e))
        .expect("the explicit choice's error");
    assert!(
        uring.starts_with("Backend = \"uring\", but io_uring cannot be used here: ")
            && uring.contains("Operation not permitted")
            && uring.contains("seccomp"),
        "{uring}"
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("io_uring unavailable"))
        .collect();
    assert_eq!(warnings.len(), 1, "one line saying why:\n{stderr}");
    let w = warnings[0];
    assert!(w.contains("WARN"), "{w}");
    assert!(
        w.contains("Operation not permitted") && w.contains("seccomp"),
        "{w}"
    );
    assert!(w.contains("using the poll backend"), "{w}");
}

/// io_uring_setup fails with EPERM on every thread of this process from now on.
fn deny_io_uring_setup() {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let rules = [(libc::SYS_io_uring_setup, Vec::new())]
        .into_iter()
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().expect("a seccomp arch"),
    )
    .expect("filter");
    let program: BpfProgram = filter.try_into().expect("BPF");
    seccompiler::apply_filter_all_threads(&program).expect("install the filter");
}

#[test]
#[ignore = "the child process of io_uring_denied_by_seccomp_falls_back_to_poll_unless_asked_for"]
fn seccomp_child() {
    if std::env::var_os(CHILD).is_none() {
        return; // run by hand with --ignored: nothing to do outside the child
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .init();
    deny_io_uring_setup();
    assert!(
        kistrel_engine::uring::probe().is_err(),
        "the filter is in force"
    );

    let err = runtime::select_backend(BackendChoice::Uring).expect_err("uring refused");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    println!("child: uring error: {err}");
    let backend = runtime::select_backend(BackendChoice::Auto).expect("auto always starts");
    assert_eq!(backend, Backend::Poll);

    // A relay worker on it, as `kistrel relay` starts one.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let cfg = WorkerConfig {
        index: 0,
        relay: RelayConfig {
            keys: Some(RelayKeys::generate(&mut rng, std::time::SystemTime::now()).expect("keys")),
            ..RelayConfig::default()
        },
        seed: Some(1),
        or_listener: Some(listener),
        socks_listener: None,
        schedulers: vec![SchedulerKind::Kist, SchedulerKind::KistLite],
        sched: SchedConfig::default(),
        clock: Clock::new(),
        // The parent speaks plaintext VERSIONS: this test is about the backend, not TLS.
        links: runtime::Links::Plain,
        siblings: None,
    };
    let (cmd_tx, cmd_rx) = bounded(4);
    let (ev_tx, _ev_rx) = bounded(64);
    let (ready_tx, ready_rx) = bounded(1);
    let worker = std::thread::spawn(move || {
        runtime::run_worker(backend, cfg, cmd_rx, EventSender::new(ev_tx), |r| {
            ready_tx.send(r).expect("ready")
        })
    });
    ready_rx
        .recv()
        .expect("worker")
        .expect("the relay starts on poll");
    let mut peer = TcpStream::connect(addr).expect("connect");
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // VERSIONS (2-byte circuit id 0, command 7, length 4: versions 4 and 5).
    peer.write_all(&[0, 0, 7, 0, 4, 0, 4, 0, 5]).expect("send");
    let mut head = [0u8; 3];
    peer.read_exact(&mut head).expect("the relay answers");
    assert_eq!(head, [0, 0, 7], "a VERSIONS cell");
    cmd_tx.send(Command::Shutdown).expect("shutdown");
    let report = worker.join().expect("worker thread").expect("report");
    // The poll backend reads TCP_INFO on Linux (the same getsockopt as io_uring), so the
    // default list's first scheduler, KIST, runs there too.
    assert_eq!(report.scheduler, SchedulerKind::Kist, "KIST on poll");
    println!("child: relay on poll answered VERSIONS");
}
