//! The worker runtime over real loopback sockets, on both backends (one test body each,
//! run for `poll` and `uring` by `on_both_backends!`): three relay workers and a client
//! worker in this process, a SOCKS5 fetch through three hops from a local TCP server,
//! checked by SHA-256. Workers start through `runtime::run_worker`, as `kistrel relay` does.
//! Both run KIST, KISTLite and Vanilla on Linux; off Linux the portable poll(2) backend has
//! no TCP_INFO, so a KIST-first `Schedulers` list falls back to KISTLite there. The backends'
//! throughput is compared by `kistrel bench --backend poll|uring`, not here.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use kistrel_engine::client::HopSpec;
use kistrel_engine::poll::PollDriver;
use kistrel_engine::relay::{RelayConfig, RelayKeys};
use kistrel_engine::runtime::{
    self, Backend, BackendChoice, CircuitCommand, CircuitEvent, Clock, Command, EventSender,
    KtlsSupport, Links, TlsContext, Worker, WorkerConfig, WorkerError, WorkerEvent, WorkerReport,
};
use kistrel_engine::{ErrorKind, HasKind};
use kistrel_sched::{SchedConfig, SchedulerKind};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

struct Running {
    cmd: Sender<Command>,
    events: Receiver<WorkerEvent>,
    handle: JoinHandle<Option<WorkerReport>>,
}

/// Starts a worker on its own thread over `backend`, as the CLI does.
fn spawn(cfg: WorkerConfig, backend: Backend) -> Running {
    let (cmd_tx, cmd_rx) = bounded(64);
    let (ev_tx, ev_rx) = bounded(1024);
    let (ready_tx, ready_rx) = bounded(1);
    let handle = std::thread::spawn(move || {
        runtime::run_worker(backend, cfg, cmd_rx, EventSender::new(ev_tx), |r| {
            ready_tx.send(r).expect("ready")
        })
    });
    ready_rx
        .recv()
        .expect("worker thread")
        .expect("worker started");
    Running {
        cmd: cmd_tx,
        events: ev_rx,
        handle,
    }
}

/// `backend`, or `None` (the test skipped, reason printed) where it cannot run here.
fn usable(backend: Backend) -> Option<Backend> {
    let choice = match backend {
        Backend::Uring => BackendChoice::Uring,
        Backend::Poll => BackendChoice::Poll,
    };
    runtime::select_backend(choice)
        .map_err(|e| eprintln!("skipped: {e}"))
        .ok()
}

fn listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind")
}

fn worker_cfg(
    index: usize,
    relay: RelayConfig,
    or: Option<TcpListener>,
    socks: Option<TcpListener>,
    kinds: &[SchedulerKind],
    clock: Clock,
    links: Links,
) -> WorkerConfig {
    WorkerConfig {
        index,
        relay,
        seed: Some(index as u64 + 100),
        or_listener: or,
        socks_listener: socks,
        schedulers: kinds.to_vec(),
        sched: SchedConfig::default(),
        clock,
        links,
        siblings: None,
    }
}

/// One TLS context for the whole test process (as `kistrel relay` makes one per process).
fn tls_links() -> Links {
    static CTX: std::sync::OnceLock<std::sync::Arc<TlsContext>> = std::sync::OnceLock::new();
    Links::Tls(
        CTX.get_or_init(|| std::sync::Arc::new(TlsContext::new().expect("TLS context")))
            .clone(),
    )
}

/// A TLS context that claims kTLS whatever the probe says: where the kernel has no `tls`
/// ULP every switch is asked for and refused (io_uring drains its receive first), so the
/// links must go on in user space without losing or repeating a byte.
fn claimed_ktls_links() -> Links {
    static CTX: std::sync::OnceLock<std::sync::Arc<TlsContext>> = std::sync::OnceLock::new();
    let ctx = || TlsContext::with_versions(rustls::ALL_VERSIONS, KtlsSupport::Available);
    Links::Tls(
        CTX.get_or_init(|| std::sync::Arc::new(ctx().expect("TLS context")))
            .clone(),
    )
}

/// Which TLS context the fetch's workers share.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ktls {
    /// The probe's answer (as `kistrel relay`).
    Probed,
    /// [`claimed_ktls_links`].
    Claimed,
}

/// A server that sends `data` to every connection, then closes.
fn serve(data: Vec<u8>) -> (SocketAddr, JoinHandle<()>) {
    let l = listener();
    let addr = l.local_addr().expect("addr");
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        s.write_all(&data).expect("serve");
    });
    (addr, h)
}

fn socks_connect(socks: SocketAddr, target: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(socks).expect("connect socks");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&[5, 1, 0]).expect("greeting");
    let mut r = [0u8; 2];
    s.read_exact(&mut r).expect("method");
    assert_eq!(r, [5, 0]);
    let SocketAddr::V4(t) = target else {
        panic!("v4 only")
    };
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&t.ip().octets());
    req.extend_from_slice(&t.port().to_be_bytes());
    s.write_all(&req).expect("request");
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).expect("reply");
    assert_eq!(rep[1], 0, "SOCKS reply {:?}", rep);
    s
}

/// The 3-hop fetch of `size` bytes with every worker on `backend` and the scheduler list
/// `kinds`; checks the bytes and that every worker ran the first of `kinds` the backend can
/// run (KIST needs TCP_INFO: io_uring's sockets report it, and poll's on Linux).
fn run_fetch(backend: Backend, kinds: &[SchedulerKind], size: usize) {
    fetch(backend, kinds, size, Ktls::Probed)
}

/// As [`run_fetch`], with the TLS context `ktls`.
fn fetch(backend: Backend, kinds: &[SchedulerKind], size: usize, ktls: Ktls) {
    let Some(backend) = usable(backend) else {
        return;
    };
    if ktls == Ktls::Claimed && kistrel_engine::sys::ktls::probe().is_available() {
        eprintln!("skipped: this kernel has kTLS; the test needs it to refuse the keys");
        return;
    }
    let links = || match ktls {
        Ktls::Probed => tls_links(),
        Ktls::Claimed => claimed_ktls_links(),
    };
    let expect = kinds
        .iter()
        .copied()
        // io_uring exists only where snapshots carry TCP_INFO, so this covers both backends.
        .find(|&k| k != SchedulerKind::Kist || kistrel_engine::sys::SNAPSHOT_HAS_TCP_INFO)
        .expect("a usable scheduler");
    let clock = Clock::new();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut relays = Vec::new();
    let mut hops = Vec::new();
    for i in 0..3 {
        let keys = RelayKeys::generate(&mut rng, std::time::SystemTime::now()).expect("keys");
        let l = listener();
        let addr = l.local_addr().expect("addr");
        hops.push(HopSpec {
            id: keys.rsa_id(),
            ed_id: keys.identity.ed_id(),
            ntor_key: keys.ntor.public(),
            addr,
        });
        let exit_policy = (i == 2).then(|| "accept 127.0.0.0/8:*".parse().expect("policy"));
        let cfg = RelayConfig {
            keys: Some(keys),
            exit_policy,
            ..RelayConfig::default()
        };
        relays.push(spawn(
            worker_cfg(i, cfg, Some(l), None, kinds, clock, links()),
            backend,
        ));
    }
    let socks_l = listener();
    let socks = socks_l.local_addr().expect("addr");
    let client = spawn(
        worker_cfg(
            9,
            RelayConfig::default(),
            None,
            Some(socks_l),
            kinds,
            clock,
            links(),
        ),
        backend,
    );

    // The control thread's part: answer NeedCircuit with the fixed path; wait for a build.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut built = false;
    while !built {
        assert!(
            std::time::Instant::now() < deadline,
            "no circuit built in time"
        );
        match client.events.recv_timeout(Duration::from_millis(100)) {
            Ok(WorkerEvent::Circuit(CircuitEvent::NeedCircuit { circuit, .. })) => {
                let cmd = CircuitCommand::BuildCircuit {
                    circuit,
                    path: hops.clone(),
                    deadline: clock.now() + Duration::from_secs(10),
                };
                client.cmd.send(Command::Circuit(cmd)).expect("send");
            }
            Ok(WorkerEvent::Circuit(CircuitEvent::CircuitBuilt { .. })) => built = true,
            Ok(_) | Err(_) => {}
        }
    }

    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    let want: [u8; 32] = Sha256::digest(&data).into();
    let (target, server) = serve(data);
    let mut s = socks_connect(socks, target);
    let mut got = Vec::with_capacity(size);
    s.read_to_end(&mut got).expect("read");
    server.join().expect("server");
    assert_eq!(got.len(), size);
    let have: [u8; 32] = Sha256::digest(&got).into();
    assert_eq!(have, want, "payload corrupted");

    for (i, w) in relays.into_iter().chain([client]).enumerate() {
        w.cmd.send(Command::Shutdown).expect("shutdown");
        let report = w.handle.join().expect("worker thread").expect("report");
        assert_eq!(report.scheduler, expect);
        // Every hop ran over TLS: one link each for the client and the exit, two for the
        // guard and the middle; the payload went through records.
        println!("node {i}: {:?}", report.links);
        let links = report.links;
        let want = if i == 0 || i == 1 { 2 } else { 1 };
        assert_eq!(
            (links.tls_user, links.plain),
            (want, 0),
            "node {i}: {links:?}"
        );
        // Where the probe finds no `tls` ULP (these machines), neither side of any link
        // went to the kernel, on either backend: records stay in user space.
        if !kistrel_engine::sys::ktls::probe().is_available() {
            assert_eq!((links.ktls, links.ktls_rx), (0, 0), "node {i}: {links:?}");
        }
        let r = links.records;
        assert!(
            r.records_in + r.records_out > (size / 16384) as u64,
            "node {i}: {links:?}"
        );
        // The scheduler's grants are written a record's room at a time: no record had to
        // be split when sealed (a copy of its tail and an allocation each).
        assert_eq!(r.records_split, 0, "node {i}: {links:?}");
    }
}

/// Makes `poll::name` and (Linux) `uring::name` of each `name => |backend| body`.
/// A relay process with two workers on one port. With `both_listen`, as `kistrel relay`
/// starts them: the kernel hashes each connection to one worker's listener, and the workers
/// hand accepted channels to the one with fewer, so six peers connecting one after another
/// end up three per worker whichever listeners the kernel picked (by hashing alone, 3/3
/// happens 31% of the time). Without, only worker 0 listens, and must hand every other
/// channel to worker 1. Each peer sends its VERSIONS cell at once, before the decision, and
/// gets the relay's answer: nothing read before a handoff is lost.
fn channels_spread_over_two_workers(backend: Backend, both_listen: bool) {
    let Some(backend) = usable(backend) else {
        return;
    };
    let clock = Clock::new();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let keys = RelayKeys::generate(&mut rng, std::time::SystemTime::now()).expect("keys");
    let first =
        kistrel_engine::sys::reuseport_listener((Ipv4Addr::LOCALHOST, 0).into(), 64).expect("bind");
    let addr = first.local_addr().expect("addr");
    let second =
        both_listen.then(|| kistrel_engine::sys::reuseport_listener(addr, 64).expect("bind"));
    let mut siblings = runtime::siblings(2).into_iter();
    let workers: Vec<Running> = [Some(first), second]
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let relay = RelayConfig {
                keys: Some(keys.clone()),
                ..RelayConfig::default()
            };
            let mut cfg = worker_cfg(
                i,
                relay,
                l,
                None,
                &[SchedulerKind::Vanilla],
                clock,
                Links::Plain,
            );
            cfg.siblings = siblings.next();
            spawn(cfg, backend)
        })
        .collect();
    // VERSIONS (circuit id 0 in 2 bytes, command 7, length 4): link protocols 4 and 5.
    const VERSIONS: [u8; 9] = [0, 0, 7, 0, 4, 0, 4, 0, 5];
    let mut peers = Vec::new();
    for i in 0..6 {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(&VERSIONS).expect("versions");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut answer = [0u8; 3];
        s.read_exact(&mut answer)
            .unwrap_or_else(|e| panic!("peer {i}: no answer from the relay: {e}"));
        assert_eq!(
            answer,
            [0, 0, 7],
            "peer {i}: the answer starts with VERSIONS"
        );
        peers.push(s);
    }
    let reports: Vec<WorkerReport> = workers
        .into_iter()
        .map(|w| {
            w.cmd.send(Command::Shutdown).expect("shutdown");
            w.handle.join().expect("worker thread").expect("report")
        })
        .collect();
    let links: Vec<_> = reports.iter().map(|r| r.links).collect();
    println!("{links:?}");
    // A plain link counts as opened when its channel is bound: the channels per worker.
    assert_eq!((links[0].plain, links[1].plain), (3, 3), "{links:?}");
    let handed = links[0].handed_to_sibling + links[1].handed_to_sibling;
    let adopted = links[0].adopted_from_sibling + links[1].adopted_from_sibling;
    assert_eq!(handed, adopted, "{links:?}");
    if !both_listen {
        let moved = (links[0].handed_to_sibling, links[1].adopted_from_sibling);
        assert_eq!(moved, (3, 3), "{links:?}");
    }
}

/// A client process with two workers where only worker 0 listens for SOCKS: every other
/// SOCKS connection goes to worker 1 (its load, edges plus channels, is lower), which answers
/// the greeting sent before the decision.
fn socks_clients_spread_over_two_workers(backend: Backend) {
    let Some(backend) = usable(backend) else {
        return;
    };
    let clock = Clock::new();
    let socks_l = listener();
    let socks = socks_l.local_addr().expect("addr");
    let mut siblings = runtime::siblings(2).into_iter();
    let workers: Vec<Running> = [Some(socks_l), None]
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let kinds = [SchedulerKind::Vanilla];
            let relay = RelayConfig::default();
            let mut cfg = worker_cfg(i, relay, None, l, &kinds, clock, Links::Plain);
            cfg.siblings = siblings.next();
            spawn(cfg, backend)
        })
        .collect();
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut s = TcpStream::connect(socks).expect("connect");
        // SOCKS5, one method: no authentication.
        s.write_all(&[5, 1, 0]).expect("greeting");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut answer = [0u8; 2];
        s.read_exact(&mut answer)
            .unwrap_or_else(|e| panic!("client {i}: no answer: {e}"));
        assert_eq!(answer, [5, 0], "client {i}");
        clients.push(s);
    }
    let links: Vec<_> = workers
        .into_iter()
        .map(|w| {
            w.cmd.send(Command::Shutdown).expect("shutdown");
            w.handle
                .join()
                .expect("worker thread")
                .expect("report")
                .links
        })
        .collect();
    let moved = (links[0].handed_to_sibling, links[1].adopted_from_sibling);
    assert_eq!(moved, (2, 2), "{links:?}");
}

macro_rules! on_both_backends {
    ($($name:ident => $body:expr;)*) => {
        mod poll {
            use super::*;
            $(#[test] fn $name() { ($body)(Backend::Poll) })*
        }
        #[cfg(target_os = "linux")]
        mod uring {
            use super::*;
            $(#[test] fn $name() { ($body)(Backend::Uring) })*
        }
    };
}

on_both_backends! {
    two_workers_share_the_accepted_channels => |b| channels_spread_over_two_workers(b, true);
    one_listening_worker_hands_half_its_channels_over => |b| {
        channels_spread_over_two_workers(b, false)
    };
    one_socks_listener_hands_half_its_clients_over => socks_clients_spread_over_two_workers;
    three_hop_socks_fetch_kist_first => |b| {
        use SchedulerKind::{Kist, KistLite, Vanilla};
        run_fetch(b, &[Kist, KistLite, Vanilla], 8 << 20)
    };
    three_hop_socks_fetch_with_vanilla => |b| run_fetch(b, &[SchedulerKind::Vanilla], 8 << 20);
    three_hop_socks_fetch_with_kistlite => |b| run_fetch(b, &[SchedulerKind::KistLite], 2 << 20);
    // Every link asks for kTLS on both sides and the kernel refuses: after io_uring's drain
    // of its multishot receive (or at once on poll) the links go on in user space.
    three_hop_socks_fetch_with_ktls_refused => |b| {
        fetch(b, &[SchedulerKind::Vanilla], 8 << 20, Ktls::Claimed)
    };
}

/// KIST alone on the poll backend: a worker on Linux (TCP_INFO through the same getsockopt as
/// io_uring), `NoUsableScheduler` (kind `Unsupported`) where there is no TCP_INFO.
#[test]
fn kist_alone_on_poll_needs_tcp_info() {
    let cfg = worker_cfg(
        0,
        RelayConfig::default(),
        None,
        None,
        &[SchedulerKind::Kist],
        Clock::new(),
        tls_links(),
    );
    let (_cmd_tx, cmd_rx) = bounded(1);
    let (ev_tx, _ev_rx) = bounded(1);
    let poll = PollDriver::new().expect("poll driver");
    let worker = Worker::new(cfg, poll, cmd_rx, EventSender::new(ev_tx));
    if kistrel_engine::sys::SNAPSHOT_HAS_TCP_INFO {
        assert!(worker.is_ok(), "KIST on poll on Linux: {:?}", worker.err());
        return;
    }
    let err = worker.expect_err("KIST needs TCP_INFO");
    assert!(matches!(
        err,
        WorkerError::Scheduler(kistrel_sched::SchedError::NoUsableScheduler)
    ));
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}
