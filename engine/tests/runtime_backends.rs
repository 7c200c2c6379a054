//! The worker runtime over real loopback sockets, on both backends: three relay workers and
//! a client worker in this process, a SOCKS5 fetch through three hops from a local TCP
//! server, checked by SHA-256. io_uring runs KIST, KISTLite and Vanilla; the portable poll(2)
//! backend has no TCP_INFO, so a KIST-first `Schedulers` list falls back to KISTLite there.
//! The backends' throughput is compared by `kistrel bench --backend poll|uring`, not here.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use kistrel_engine::client::HopSpec;
use kistrel_engine::crypto::ntor::NtorKeypair;
use kistrel_engine::poll::PollDriver;
use kistrel_engine::relay::{RelayConfig, RelayKeys};
use kistrel_engine::runtime::{
    Clock, Command, Driver, EventSender, Worker, WorkerConfig, WorkerEvent, WorkerReport,
};
use kistrel_sched::{SchedConfig, SchedulerKind};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

struct Running {
    cmd: Sender<Command>,
    events: Receiver<WorkerEvent>,
    handle: JoinHandle<WorkerReport>,
}

/// Starts a worker on its own thread over the driver `make` builds there.
fn spawn<D: Driver + 'static>(cfg: WorkerConfig, make: fn() -> D) -> Running {
    let (cmd_tx, cmd_rx) = bounded(64);
    let (ev_tx, ev_rx) = bounded(1024);
    let handle = std::thread::spawn(move || {
        let worker = Worker::new(cfg, make(), cmd_rx, EventSender::new(ev_tx)).expect("worker");
        worker.run()
    });
    Running {
        cmd: cmd_tx,
        events: ev_rx,
        handle,
    }
}

fn poll_driver() -> PollDriver {
    PollDriver::new().expect("poll driver")
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
    }
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

/// The 3-hop fetch of `size` bytes with every worker over the driver `make` builds and the
/// scheduler list `kinds`; checks the bytes and that every worker ran `expect`. Returns the
/// time from the SOCKS request to the last byte (for the throughput comparison only).
fn run_fetch<D: Driver + 'static>(
    make: fn() -> D,
    kinds: &[SchedulerKind],
    expect: SchedulerKind,
    size: usize,
) -> Duration {
    let clock = Clock::new();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut relays = Vec::new();
    let mut hops = Vec::new();
    for i in 0..3 {
        let ntor = NtorKeypair::generate(&mut rng);
        let mut id = [0u8; 20];
        rng.fill_bytes(&mut id);
        let l = listener();
        let addr = l.local_addr().expect("addr");
        hops.push(HopSpec {
            id,
            ntor_key: ntor.public(),
            addr,
        });
        let exit_policy = (i == 2).then(|| "accept 127.0.0.0/8:*".parse().expect("policy"));
        let cfg = RelayConfig {
            keys: Some(RelayKeys { identity: id, ntor }),
            exit_policy,
            ..RelayConfig::default()
        };
        relays.push(spawn(worker_cfg(i, cfg, Some(l), None, kinds, clock), make));
    }
    let socks_l = listener();
    let socks = socks_l.local_addr().expect("addr");
    let client = spawn(
        worker_cfg(9, RelayConfig::default(), None, Some(socks_l), kinds, clock),
        make,
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
            Ok(WorkerEvent::NeedCircuit { tag, .. }) => {
                let cmd = Command::BuildCircuit {
                    tag,
                    path: hops.clone(),
                    deadline: clock.now() + Duration::from_secs(10),
                };
                client.cmd.send(cmd).expect("send");
            }
            Ok(WorkerEvent::CircuitBuilt { .. }) => built = true,
            Ok(_) | Err(_) => {}
        }
    }

    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    let want: [u8; 32] = Sha256::digest(&data).into();
    let (target, server) = serve(data);
    let start = std::time::Instant::now();
    let mut s = socks_connect(socks, target);
    let mut got = Vec::with_capacity(size);
    s.read_to_end(&mut got).expect("read");
    let elapsed = start.elapsed();
    server.join().expect("server");
    assert_eq!(got.len(), size);
    let have: [u8; 32] = Sha256::digest(&got).into();
    assert_eq!(have, want, "payload corrupted");

    for w in relays.into_iter().chain([client]) {
        w.cmd.send(Command::Shutdown).expect("shutdown");
        let report = w.handle.join().expect("worker thread");
        assert_eq!(report.scheduler, expect);
    }
    elapsed
}

#[test]
fn three_hop_socks_fetch_kist_falls_back_to_kistlite() {
    use SchedulerKind::{Kist, KistLite, Vanilla};
    run_fetch(poll_driver, &[Kist, KistLite, Vanilla], KistLite, 8 << 20);
}

#[test]
fn three_hop_socks_fetch_with_vanilla() {
    run_fetch(
        poll_driver,
        &[SchedulerKind::Vanilla],
        SchedulerKind::Vanilla,
        8 << 20,
    );
}

#[test]
fn three_hop_socks_fetch_with_kistlite() {
    run_fetch(
        poll_driver,
        &[SchedulerKind::KistLite],
        SchedulerKind::KistLite,
        2 << 20,
    );
}

#[test]
fn kist_alone_is_not_usable_without_tcp_info() {
    let cfg = worker_cfg(
        0,
        RelayConfig::default(),
        None,
        None,
        &[SchedulerKind::Kist],
        Clock::new(),
    );
    let (_cmd_tx, cmd_rx) = bounded(1);
    let (ev_tx, _ev_rx) = bounded(1);
    let err = Worker::new(cfg, poll_driver(), cmd_rx, EventSender::new(ev_tx))
        .expect_err("KIST needs TCP_INFO");
    assert_eq!(
        err,
        kistrel_sched::SchedError::NoUsableScheduler.to_string()
    );
}

#[cfg(target_os = "linux")]
fn ring() -> kistrel_engine::uring::Ring {
    kistrel_engine::uring::Ring::new(&kistrel_engine::uring::RingConfig::default())
        .expect("io_uring available")
}

#[cfg(target_os = "linux")]
#[test]
fn uring_three_hop_socks_fetch_with_kist() {
    run_fetch(ring, &[SchedulerKind::Kist], SchedulerKind::Kist, 8 << 20);
}

#[cfg(target_os = "linux")]
#[test]
fn uring_three_hop_socks_fetch_with_vanilla() {
    run_fetch(
        ring,
        &[SchedulerKind::Vanilla],
        SchedulerKind::Vanilla,
        8 << 20,
    );
}

#[cfg(target_os = "linux")]
#[test]
fn uring_three_hop_socks_fetch_with_kistlite() {
    run_fetch(
        ring,
        &[SchedulerKind::KistLite],
        SchedulerKind::KistLite,
        2 << 20,
    );
}
