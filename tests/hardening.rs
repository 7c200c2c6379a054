//! Hostile peers over real sockets (issue 9, part 2), on both runtime backends:
//!
//! - slowloris: hundreds of idle TCP connections to an OR port are closed by the relay
//!   after `ChannelHandshakeTimeout`, its file descriptors come back, and a fetch through
//!   the network meanwhile arrives intact;
//! - flood: a raw OR-protocol origin (this file, using kistrel_engine's wire and crypto)
//!   builds many two-hop circuits through one relay process to a next hop that answers the
//!   link handshake and CREATE2 and then stops reading, and pushes cells until the relay's
//!   queues pass `MaxMemInQueues`: the OOM handler closes circuits (DESTROY to the origin),
//!   RSS stays bounded, the relay lives, and a circuit to a healthy next hop still carries
//!   data intact.
#![cfg(target_os = "linux")]

#[macro_use]
mod support;

use std::collections::{BTreeSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use kistrel_engine::crypto::ntor::{self, NtorKeypair};
use kistrel_engine::crypto::relay_crypto::{CipherCache, ClientLayer, RelayLayer};
use kistrel_engine::crypto::RelayId;
use kistrel_engine::wire::{
    emit_relay_cell, Cell, CellDecoder, ChanCell, ChanCmd, Create2, Created2, Destroy,
    DestroyReason, Extend2, Extended2, LinkSpec, Netinfo, RelayCellView, RelayCmd, Versions,
    CELL_BODY_LEN, RELAY_DATA_LEN,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{
    alive, fd_count, fetch, fetch_at, pid_listening_on, rss_bytes, serial, skip_without_tools,
    wait_for, Http, Net, RelayProcess, MIB,
};

// ----- slowloris ------------------------------------------------------------------------

fn idle_connections_are_closed_after_the_handshake_timeout(backend: &str) {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    let size = 16 * MIB;
    let http = Http::start(size, 41);
    let net = Net::start(backend, 3, &["-o", "ChannelHandshakeTimeout=1500ms"]);
    // Warm up: the circuit and its channels exist before we count descriptors.
    let warm = fetch(net.socks, "w", &http.url(), &net.dir.join("warm")).expect("warm-up fetch");
    assert_eq!(warm, (http.sha, size));
    let target = net.relays[0];
    let pid = pid_listening_on(target).expect("relay pid");
    let fds_before = fd_count(pid);
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(target).expect("connect to the OR port"))
        .collect();
    let (socks, url, out) = (net.socks, http.url(), net.dir.join("during"));
    let during = std::thread::spawn(move || fetch_at(socks, "w", &url, &out, Some("8M")));
    // Each idle connection is closed by the relay: EOF or reset, not our read timeout.
    for (i, mut s) in idle.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("connection {i}: the relay sent {n} bytes unasked"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("connection {i} still open after 15 s (timeout 1.5 s)")
            }
            Err(_) => {} // reset
        }
    }
    assert!(
        wait_for(Duration::from_secs(10), || fd_count(pid) == fds_before),
        "relay fds: {} now, {fds_before} before the idle connections",
        fd_count(pid)
    );
    let (sha, len) = during
        .join()
        .expect("thread")
        .expect("fetch during the attack");
    assert_eq!((sha, len), (http.sha, size));
    assert!(alive(pid));
    assert!(net.stop().success());
}

// ----- a raw origin and test-controlled next hops ----------------------------------------

const WAIT: Duration = Duration::from_secs(20);

/// Reads cells from `stream` on a thread and hands them over a channel until EOF.
fn cell_reader(mut stream: TcpStream) -> mpsc::Receiver<ChanCell> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut decoder = CellDecoder::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let Ok((used, cell)) = decoder.decode(rest) else {
                    return;
                };
                rest = &rest[used..];
                if let Some(cell) = cell {
                    if tx.send(cell).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// A circuit origin speaking raw cells to one relay.
struct Origin {
    stream: TcpStream,
    cells: mpsc::Receiver<ChanCell>,
    /// Cells that arrived while waiting for another one.
    stash: VecDeque<Cell>,
    rng: ChaCha8Rng,
}

impl Origin {
    fn connect(relay: SocketAddr) -> Origin {
        let mut stream = TcpStream::connect(relay).expect("connect to the relay");
        stream.set_nodelay(true).expect("nodelay");
        let cells = cell_reader(stream.try_clone().expect("clone"));
        stream
            .write_all(&kistrel_engine::harness::initiator_hello())
            .expect("hello");
        let first = cells.recv_timeout(WAIT).expect("VERSIONS");
        assert!(matches!(first, ChanCell::Var(ref v) if v.cmd == ChanCmd::VERSIONS));
        let second = cells.recv_timeout(WAIT).expect("NETINFO");
        assert!(matches!(second, ChanCell::Fixed(ref c) if c.cmd == ChanCmd::NETINFO));
        Origin {
            stream,
            cells,
            stash: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(8),
        }
    }

    fn send(&mut self, cell: &Cell) {
        let mut b = Vec::with_capacity(514);
        cell.append_to(&mut b);
        self.stream.write_all(&b).expect("write to the relay");
    }

    /// The next cell on `circ` with `cmd`; others are stashed.
    fn wait_for_cell(&mut self, circ: u32, cmd: ChanCmd) -> Cell {
        if let Some(i) = self
            .stash
            .iter()
            .position(|c| c.circ_id == circ && c.cmd == cmd)
        {
            return self.stash.remove(i).expect("index");
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.cells.recv_timeout(left) {
                Ok(ChanCell::Fixed(c)) if c.circ_id == circ && c.cmd == cmd => return c,
                Ok(ChanCell::Fixed(c)) => self.stash.push_back(c),
                Ok(ChanCell::Var(_)) => {}
                Err(e) => panic!("no {cmd:?} on circuit {circ:#x}: {e}"),
            }
        }
    }

    /// CREATE2 (ntor) to the relay itself; returns the hop's layer.
    fn create(&mut self, circ: u32, id: &RelayId, ntor_key: &[u8; 32]) -> ClientLayer {
        let (client, hdata) = ntor::client_create(&mut self.rng, id, ntor_key);
        let mut cell = Cell::new(circ, ChanCmd::CREATE2);
        Create2 {
            htype: ntor::HTYPE,
            hdata: &hdata,
        }
        .emit(&mut cell.body)
        .expect("CREATE2 fits");
        self.send(&cell);
        let reply = self.wait_for_cell(circ, ChanCmd::CREATED2);
        let created = Created2::parse(&reply.body).expect("CREATED2");
        ClientLayer::new(&client.finish(created.hdata).expect("ntor with the relay"))
    }

    /// EXTEND2 through `first` to the next hop; returns its layer.
    fn extend(&mut self, circ: u32, first: &mut ClientLayer, hop: &HopKeys) -> ClientLayer {
        let (client, hdata) = ntor::client_create(&mut self.rng, &hop.id, &hop.ntor_public);
        let mut data = [0u8; RELAY_DATA_LEN];
        let SocketAddr::V4(addr) = hop.addr else {
            panic!("IPv4 hops only")
        };
        let n = Extend2 {
            link_specs: vec![LinkSpec::Ipv4(addr), LinkSpec::LegacyId(hop.id)],
            htype: ntor::HTYPE,
            hdata: &hdata,
        }
        .emit(&mut data)
        .expect("EXTEND2 fits");
        let mut cell = Cell::new(circ, ChanCmd::RELAY_EARLY);
        emit_relay_cell(
            &mut cell.body,
            RelayCmd::EXTEND2,
            None,
            &data[..n],
            &mut self.rng,
        )
        .expect("relay cell");
        first.originate_forward(&mut cell.body);
        self.send(&cell);
        let mut reply = self.wait_for_cell(circ, ChanCmd::RELAY);
        assert!(
            first.decrypt_backward(&mut reply.body),
            "EXTENDED2 from hop 1"
        );
        let view = RelayCellView::new_checked(&reply.body[..]).expect("relay cell");
        assert_eq!(view.cmd(), RelayCmd::EXTENDED2);
        let ext = Extended2::parse(view.data()).expect("EXTENDED2");
        ClientLayer::new(&client.finish(ext.hdata).expect("ntor with hop 2"))
    }

    /// Every DESTROY received so far (waiting up to `quiet` for more), by circuit.
    fn destroyed(&mut self, quiet: Duration) -> Vec<(u32, DestroyReason)> {
        while let Ok(cell) = self.cells.recv_timeout(quiet) {
            if let ChanCell::Fixed(c) = cell {
                self.stash.push_back(c);
            }
        }
        let mut out = Vec::new();
        self.stash.retain(|c| {
            if c.cmd == ChanCmd::DESTROY {
                let reason = Destroy::parse(&c.body).map_or(DestroyReason(0), |d| d.reason);
                out.push((c.circ_id, reason));
                false
            } else {
                true
            }
        });
        out
    }
}

/// The public identity of a test-controlled next hop.
#[derive(Clone, Copy)]
struct HopKeys {
    addr: SocketAddr,
    id: RelayId,
    ntor_public: [u8; 32],
}

/// What a fake next hop does once its link is up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HopMode {
    /// Answers this many CREATE2 cells, then never reads again.
    StallAfter(usize),
    /// Answers CREATE2 and reports every RELAY cell recognized at it.
    Healthy,
}

/// A next hop played by the test: answers the relay's link handshake as a responder and its
/// CREATE2 cells with ntor, with keys the origin knows.
struct FakeHop {
    keys: HopKeys,
    /// Healthy mode: (circuit id on the hop's link, relay data) of recognized cells.
    data: mpsc::Receiver<(u32, Vec<u8>)>,
    stop: Arc<AtomicBool>,
}

impl FakeHop {
    fn start(seed: u64, mode: HopMode) -> FakeHop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let keypair = NtorKeypair::generate(&mut rng);
        let mut id = [0u8; 20];
        rng.fill_bytes(&mut id);
        let keys = HopKeys {
            addr,
            id,
            ntor_public: keypair.public(),
        };
        let (tx, data) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            listener.set_nonblocking(true).expect("nonblocking");
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut conn = loop {
                match listener.accept() {
                    Ok((c, _)) => break c,
                    Err(_) if Instant::now() < deadline && !stop2.load(Ordering::Relaxed) => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            };
            conn.set_nonblocking(false).expect("blocking");
            conn.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
            serve_hop(&mut conn, &id, &keypair, mode, &mut rng, &tx, &stop2);
            // Keep the socket open (unread) until the test is done.
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        FakeHop { keys, data, stop }
    }
}

impl Drop for FakeHop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_hop(
    conn: &mut TcpStream,
    id: &RelayId,
    keypair: &NtorKeypair,
    mode: HopMode,
    rng: &mut ChaCha8Rng,
    tx: &mpsc::Sender<(u32, Vec<u8>)>,
    stop: &AtomicBool,
) {
    let mut decoder = CellDecoder::new();
    let mut layers: std::collections::HashMap<u32, RelayLayer> = Default::default();
    let mut ciphers = CipherCache::new();
    let mut answered = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if let HopMode::StallAfter(n) = mode {
            if answered >= n {
                return; // stalled: never read again
            }
        }
        let n = match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        let mut rest = &buf[..n];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let Ok((used, cell)) = decoder.decode(rest) else {
                return;
            };
            rest = &rest[used..];
            match cell {
                Some(ChanCell::Var(v)) if v.cmd == ChanCmd::VERSIONS => {
                    Versions {
                        versions: vec![4, 5],
                    }
                    .to_var_cell()
                    .append_to(&mut out, 2);
                    let mut netinfo = Cell::new(0, ChanCmd::NETINFO);
                    Netinfo {
                        time: 0,
                        other_addr: None,
                        my_addrs: Vec::new(),
                    }
                    .emit(&mut netinfo.body)
                    .expect("netinfo");
                    netinfo.append_to(&mut out);
                }
                Some(ChanCell::Fixed(c)) if c.cmd == ChanCmd::CREATE2 => {
                    let create = Create2::parse(&c.body).expect("CREATE2 from the relay");
                    let (hdata, km) = ntor::server_respond(&mut *rng, id, keypair, create.hdata)
                        .expect("ntor from the origin");
                    let mut reply = Cell::new(c.circ_id, ChanCmd::CREATED2);
                    Created2 { hdata: &hdata }
                        .emit(&mut reply.body)
                        .expect("CREATED2");
                    reply.append_to(&mut out);
                    layers.insert(c.circ_id, RelayLayer::new(&km));
                    answered += 1;
                }
                Some(ChanCell::Fixed(mut c)) if c.cmd == ChanCmd::RELAY => {
                    if let Some(layer) = layers.get_mut(&c.circ_id) {
                        if layer.decrypt_forward(&mut ciphers, &mut c.body) {
                            let view = RelayCellView::new_checked(&c.body[..]).expect("relay cell");
                            let _ = tx.send((c.circ_id, view.data().to_vec()));
                        }
                    }
                }
                _ => {}
            }
        }
        if !out.is_empty() && conn.write_all(&out).is_err() {
            return;
        }
    }
}

/// A relay process with its own config and keys in a temp folder.
struct TestRelay {
    process: RelayProcess,
    addr: SocketAddr,
    id: RelayId,
    ntor_public: [u8; 32],
    _dir: tempfile::TempDir,
}

impl TestRelay {
    fn start(backend: &str, extra: &str) -> TestRelay {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = kistrel::keys::RelayKeyFile::generate(&mut ChaCha8Rng::seed_from_u64(61));
        keys.save(&dir.path().join("keys.toml")).expect("keys");
        let port = support::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let config = dir.path().join("relay.toml");
        std::fs::write(
            &config,
            format!(
                "Nickname = \"flooded\"\nORPort = \"{addr}\"\nKeyFile = \"keys.toml\"\n\
                 Workers = 1\nBackend = \"{backend}\"\n{extra}"
            ),
        )
        .expect("config");
        let process = RelayProcess::start(&config, &dir.path().join("relay.log"), &[]);
        assert!(
            wait_for(WAIT, || TcpStream::connect(addr).is_ok()),
            "relay did not start; log: {}",
            std::fs::read_to_string(dir.path().join("relay.log")).unwrap_or_default()
        );
        TestRelay {
            process,
            addr,
            id: keys.identity,
            ntor_public: keys.ntor_public(),
            _dir: dir,
        }
    }
}

// ----- flood ------------------------------------------------------------------------------

/// `MaxMemInQueues` of the flooded relay.
const LIMIT: u64 = 32 << 20;
/// Allowed RSS growth over the limit: 16 MiB for the io_uring provided-buffer ring (1024 x
/// 16 KiB, allocated at start but only touched once a flood arrives), 12 MiB for send
/// buffers, the allocator's slack and the queues' per-cell bookkeeping. Measured on the
/// 2-core CI box: 51 MiB growth with io_uring, 35 MiB with poll (the test prints it).
const MARGIN: u64 = 28 << 20;

fn stalled_next_hop_flood_is_bounded_by_max_mem_in_queues(backend: &str) {
    let _serial = serial();
    let relay = TestRelay::start(backend, "MaxMemInQueues = \"32 MB\"\n");
    let pid = relay.process.pid();
    let circuits: u32 = 60;
    let cells_per_circuit: usize = 2000; // below MaxCircuitQueueCells (2500)
    let stalled = FakeHop::start(71, HopMode::StallAfter(circuits as usize));
    let healthy = FakeHop::start(72, HopMode::Healthy);
    let mut origin = Origin::connect(relay.addr);

    // The healthy circuit first, then the ones to the stalled hop.
    let healthy_id = 0x8000_1000;
    let mut h1 = origin.create(healthy_id, &relay.id, &relay.ntor_public);
    let mut h2 = origin.extend(healthy_id, &mut h1, &healthy.keys);
    let ids: Vec<u32> = (0..circuits).map(|i| 0x8000_2000 + i).collect();
    for &id in &ids {
        let mut first = origin.create(id, &relay.id, &relay.ntor_public);
        let _ = origin.extend(id, &mut first, &stalled.keys);
    }

    let rss_before = rss_bytes(pid);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // Oldest first: circuit after circuit, each one's cells in one go. The bodies are
    // opaque to the relay (not recognized at hop 1), so it forwards them toward the stall.
    let mut batch = Vec::with_capacity(cells_per_circuit * 514);
    for &id in &ids {
        batch.clear();
        let mut cell = Cell::new(id, ChanCmd::RELAY);
        cell.body = [0x5a; CELL_BODY_LEN];
        for _ in 0..cells_per_circuit {
            cell.append_to(&mut batch);
        }
        origin.stream.write_all(&batch).expect("flood write");
    }
    let destroyed = origin.destroyed(Duration::from_secs(3));
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "{backend}: RSS before {} KiB, peak {} KiB; circuits destroyed (fill order): {:?}",
        rss_before >> 10,
        peak >> 10,
        destroyed
            .iter()
            .map(|(id, _)| id - ids[0])
            .collect::<Vec<_>>()
    );

    assert!(alive(pid), "the relay died under the flood");
    assert!(
        !destroyed.is_empty(),
        "no circuit was closed although {} MiB were pushed at a stalled hop",
        (circuits as usize * cells_per_circuit * 514) >> 20
    );
    let mut closed = BTreeSet::new();
    for (id, reason) in &destroyed {
        assert_eq!(*reason, DestroyReason::RESOURCELIMIT, "circuit {id:#x}");
        assert!(ids.contains(id), "only flooded circuits close: {id:#x}");
        closed.insert(*id);
    }
    // The OOM handler takes the circuits holding the oldest queued cells: a contiguous run
    // of the first ones filled, never the newest. The run may start after the first few:
    // those can have handed all their early cells to the kernel's send buffer toward the
    // stalled hop (autotuned, it can hold a circuit's worth), so their oldest *queued* cell
    // is younger than the next circuit's.
    let first = ids
        .iter()
        .position(|id| closed.contains(id))
        .expect("a closed circuit is a flooded one");
    let run: BTreeSet<u32> = ids[first..first + closed.len()].iter().copied().collect();
    assert_eq!(
        closed, run,
        "OOM victims are not a run of the oldest circuits"
    );
    assert!(first <= 2, "the first {first} circuits were spared");
    assert!(closed.len() < ids.len(), "every circuit was closed");
    assert!(
        peak <= rss_before + LIMIT + MARGIN,
        "RSS peak {} KiB > before {} KiB + MaxMemInQueues {} KiB + margin {} KiB",
        peak >> 10,
        rss_before >> 10,
        LIMIT >> 10,
        MARGIN >> 10
    );

    // The healthy circuit still carries data, intact and in order.
    send_and_check(&mut origin, &healthy, healthy_id, (&mut h1, &mut h2), 200);
    assert!(alive(pid));
}

/// Sends `cells` seeded relay cells on the two-hop circuit `circ` and checks that `hop`
/// (its second hop) recognizes all of them, unaltered and in order.
fn send_and_check(
    origin: &mut Origin,
    hop: &FakeHop,
    circ: u32,
    (h1, h2): (&mut ClientLayer, &mut ClientLayer),
    cells: usize,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut sent = Vec::new();
    for _ in 0..cells {
        let mut data = vec![0u8; RELAY_DATA_LEN];
        rng.fill_bytes(&mut data);
        let mut cell = Cell::new(circ, ChanCmd::RELAY);
        emit_relay_cell(&mut cell.body, RelayCmd::DROP, None, &data, &mut rng).expect("cell");
        h2.originate_forward(&mut cell.body);
        h1.encrypt_forward(&mut cell.body);
        origin.send(&cell);
        sent.push(data);
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        match hop.data.recv_timeout(WAIT) {
            Ok((_, data)) => got.push(data),
            Err(e) => panic!("second hop got {} of {} cells: {e}", got.len(), sent.len()),
        }
    }
    assert!(got == sent, "the circuit's cells arrived altered");
}

/// A peer sending CREATE2 far faster than `DoSCircuitCreationRate` allows gets the burst
/// (plus the rate) answered and the rest refused with DESTROY RESOURCELIMIT at once, while a
/// circuit built before keeps carrying data.
fn create2_flood_is_rate_limited_and_does_not_starve_a_circuit(backend: &str) {
    let _serial = serial();
    let (rate, burst) = (10u128, 100u128);
    let relay = TestRelay::start(
        backend,
        &format!("DoSCircuitCreationRate = {rate}\nDoSCircuitCreationBurst = {burst}\n"),
    );
    let pid = relay.process.pid();
    let healthy = FakeHop::start(73, HopMode::Healthy);
    let mut origin = Origin::connect(relay.addr);
    let started = Instant::now();
    let healthy_id = 0x8000_1000;
    let mut h1 = origin.create(healthy_id, &relay.id, &relay.ntor_public);
    let mut h2 = origin.extend(healthy_id, &mut h1, &healthy.keys);
    // 3000 valid CREATE2 in one write.
    let total: u32 = 3000;
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut flood = Vec::with_capacity(total as usize * 514);
    for i in 0..total {
        let (_, hdata) = ntor::client_create(&mut rng, &relay.id, &relay.ntor_public);
        let mut cell = Cell::new(0x8000_4000 + i, ChanCmd::CREATE2);
        Create2 {
            htype: ntor::HTYPE,
            hdata: &hdata,
        }
        .emit(&mut cell.body)
        .expect("CREATE2 fits");
        cell.append_to(&mut flood);
    }
    origin.stream.write_all(&flood).expect("flood");
    // Meanwhile the existing circuit carries data.
    send_and_check(&mut origin, &healthy, healthy_id, (&mut h1, &mut h2), 200);
    let (mut created, mut refused) = (0u128, 0u128);
    let deadline = Instant::now() + WAIT;
    while created + refused < u128::from(total) {
        let left = deadline.saturating_duration_since(Instant::now());
        let cell = match origin.stash.pop_front() {
            Some(c) => c,
            None => match origin.cells.recv_timeout(left) {
                Ok(ChanCell::Fixed(c)) => c,
                Ok(ChanCell::Var(_)) => continue,
                Err(e) => panic!("{created} created + {refused} refused of {total}: {e}"),
            },
        };
        match cell.cmd {
            ChanCmd::CREATED2 => created += 1,
            ChanCmd::DESTROY => {
                let reason = Destroy::parse(&cell.body).expect("DESTROY").reason;
                assert_eq!(reason, DestroyReason::RESOURCELIMIT);
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The bucket started full when our channel opened (after `started`); it cannot have
    // granted more than the burst plus the rate since (rounded up). The healthy circuit's
    // CREATE2 took one token too.
    let elapsed = started.elapsed();
    let ceiling = burst + rate * elapsed.as_millis() / 1000 + 1;
    let granted = created + 1;
    println!("{backend}: {created} CREATED2, {refused} refused in {elapsed:?}");
    assert!(granted >= burst, "the burst was not served: {created}");
    assert!(granted <= ceiling, "{created} created, ceiling {ceiling}");
    assert_eq!(created + refused, u128::from(total));
    assert!(alive(pid));
}

// ----- a peer that sends and never reads ---------------------------------------------------

/// A peer completes the link handshake, then sends CREATE2 after CREATE2 and never reads the
/// DESTROY(RESOURCELIMIT) answers. The relay stops reading that channel once its send queue
/// passes the high-water mark (4 MiB), so its memory stays bounded however much the peer
/// sends (before that fix, 98 MiB sent grew a relay by ~94 MiB), and it keeps serving others.
fn peer_that_never_reads_cannot_grow_the_relay(backend: &str) {
    let _serial = serial();
    // Every CREATE2 after the first is refused at once (no handshake): the cheapest reply
    // a peer can extract, so the relay's reading is not the limit.
    let relay = TestRelay::start(
        backend,
        "DoSCircuitCreationRate = 1\nDoSCircuitCreationBurst = 1\n",
    );
    let pid = relay.process.pid();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes(pid);
    let mut stream = TcpStream::connect(relay.addr).expect("connect");
    stream
        .write_all(&kistrel_engine::harness::initiator_hello())
        .expect("hello");
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    // 1024 CREATE2 per write, up to 160 MiB; a write that blocks for 3 s means the relay
    // stopped reading us.
    let mut batch = Vec::with_capacity(1024 * 514);
    for i in 0..1024u32 {
        let mut cell = Cell::new(0x8000_0000 | (i + 1), ChanCmd::CREATE2);
        Create2 {
            htype: ntor::HTYPE,
            hdata: &[7u8; 84],
        }
        .emit(&mut cell.body)
        .expect("CREATE2 fits");
        cell.append_to(&mut batch);
    }
    let mut sent: u64 = 0;
    let mut blocked = false;
    while sent < 160 * MIB as u64 {
        match stream.write_all(&batch) {
            Ok(()) => sent += batch.len() as u64,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                blocked = true;
                break;
            }
            Err(e) => panic!("write failed after {sent} bytes: {e}"),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_bytes(pid).saturating_sub(before);
    println!(
        "{backend}: sent {} MiB, relay stopped reading: {blocked}, RSS grew {} MiB",
        sent >> 20,
        grown >> 20
    );
    assert!(blocked, "the relay read all {} MiB", sent >> 20);
    // 4 MiB of queued replies, the receive buffers (16 MiB ring with io_uring), slack.
    assert!(grown < 32 * MIB as u64, "RSS grew {} MiB", grown >> 20);
    assert!(alive(pid));
    // Others are still served: a fresh channel completes its handshake.
    let _other = Origin::connect(relay.addr);
    drop(stream);
}

on_both_backends!(
    idle_connections_are_closed_after_the_handshake_timeout,
    stalled_next_hop_flood_is_bounded_by_max_mem_in_queues,
    create2_flood_is_rate_limited_and_does_not_starve_a_circuit,
    peer_that_never_reads_cannot_grow_the_relay,
);
