//! `engine::uring` over real loopback sockets: echo, forwarding, short sends, ENOBUFS,
//! backlog spills, close with operations in flight, connect failure, timeouts.
//!
//! Every loop is bounded (a deadline that fails the test), every socket and thread is
//! closed or joined before the test returns.
#![cfg(target_os = "linux")]

#[path = "../examples/uring_forward/forwarder.rs"]
mod forwarder;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use kistrel_engine::sys;
use kistrel_engine::uring::{ConnId, Event, Ring, RingConfig, RxBuf, UringError};
use kistrel_engine::{ErrorKind, HasKind};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

const TICK: Option<Duration> = Some(Duration::from_millis(10));

/// A ring, or `None` (test skipped, reason printed) where io_uring is unusable.
fn ring(config: &RingConfig) -> Option<Ring> {
    match Ring::new(config) {
        Ok(r) => Some(r),
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            eprintln!("skipped: io_uring unavailable: {e}");
            None
        }
        Err(e) => panic!("ring setup: {e}"),
    }
}

/// Fails the test once `limit` has passed since `start`.
#[track_caller]
fn check_deadline(start: Instant, limit: Duration, what: &str) {
    assert!(start.elapsed() < limit, "timed out: {what}");
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Loop turns a wait may take (a hang guard, not a speed check): each turn ends at a
/// completion or after `TICK`, so this is at most ~10 s of waiting with nothing happening.
const ROUNDS: usize = 1000;

/// Runs the ring until the kernel has finished every operation; fails naming the
/// operations left after [`ROUNDS`] turns.
fn drain(ring: &mut Ring) {
    for _ in 0..ROUNDS {
        if ring.ops_in_flight() == 0 {
            return;
        }
        ring.run_once(TICK).unwrap();
        while ring.poll_event().is_some() {}
    }
    let left = ring.describe_ops_in_flight();
    assert!(left.is_empty(), "operations never finished: {left:?}");
}

/// A connection adopted by `ring` and its peer's end.
fn adopted_pair(ring: &mut Ring) -> (ConnId, TcpStream) {
    let l = TcpListener::bind(loopback()).unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (peer, _) = l.accept().unwrap();
    (ring.adopt(client).unwrap(), peer)
}

/// An echo server on its own ring and thread; returns its address and a stop switch.
fn spawn_ring_echo() -> (SocketAddr, Arc<AtomicBool>, thread::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let stop2 = Arc::clone(&stop);
    let handle = thread::spawn(move || {
        let mut ring = Ring::new(&RingConfig::default()).unwrap();
        let l = sys::reuseport_listener(loopback(), 64).unwrap();
        tx.send(l.local_addr().unwrap()).unwrap();
        let listener = ring.add_listener(l).unwrap();
        let start = Instant::now();
        let mut accepted = 0;
        while !(stop2.load(Ordering::Relaxed) && ring.conn_count() == 0) {
            check_deadline(start, Duration::from_secs(120), "echo server");
            ring.run_once(TICK).unwrap();
            while let Some(ev) = ring.poll_event() {
                match ev {
                    Event::Accepted { .. } => accepted += 1,
                    Event::Recv { conn, data } => ring.send(conn, &data).unwrap(),
                    Event::RecvClosed { conn, .. } => ring.close_when_flushed(conn).unwrap(),
                    Event::SendFailed { conn, .. } => ring.close(conn).unwrap(),
                    _ => {}
                }
            }
        }
        ring.close_listener(listener).unwrap();
        drain(&mut ring);
        accepted
    });
    (rx.recv().unwrap(), stop, handle)
}

#[test]
fn echo_64_mib_through_two_rings() {
    let Some(mut ring) = ring(&RingConfig::default()) else {
        return;
    };
    let (addr, stop, server) = spawn_ring_echo();
    const TOTAL: usize = 64 << 20;
    const CHUNK: usize = 256 << 10;
    let conn = ring.connect(addr).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(64);
    let (mut sent_hash, mut recv_hash) = (Sha256::new(), Sha256::new());
    let (mut sent, mut received) = (0usize, 0usize);
    let mut chunk = vec![0u8; CHUNK];
    let mut connected = false;
    let start = Instant::now();
    while received < TOTAL {
        check_deadline(start, Duration::from_secs(120), "64 MiB echo");
        // Keep at most ~1 MiB queued: backpressure through `queued_len`.
        while sent < TOTAL && ring.queued_len(conn).unwrap() < (1 << 20) {
            rng.fill_bytes(&mut chunk);
            sent_hash.update(&chunk);
            // Bytes queued before the connection is up go out once it is.
            ring.send_buf(conn).unwrap().extend_from_slice(&chunk);
            sent += CHUNK;
        }
        ring.run_once(TICK).unwrap();
        while let Some(ev) = ring.poll_event() {
            match ev {
                Event::Connected { conn: c } => {
                    assert_eq!(c, conn);
                    connected = true;
                }
                Event::Recv { conn: c, data } => {
                    assert_eq!(c, conn);
                    recv_hash.update(&data[..]);
                    received += data.len();
                }
                Event::SendDone { .. } | Event::Timeout => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(connected);
    assert_eq!(received, TOTAL);
    assert_eq!(sent_hash.finalize(), recv_hash.finalize());
    let stats = ring.stats();
    assert!(
        stats.sends > 0 && stats.sends < (TOTAL / 16384) as u64,
        "{stats:?}"
    );

    ring.close(conn).unwrap();
    assert!(matches!(
        ring.send(conn, b"x"),
        Err(UringError::NoSuchConn(c)) if c == conn
    ));
    drain(&mut ring);
    assert_eq!(ring.conn_count(), 0);
    assert_eq!(ring.buf_ring().outstanding(), 0);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(server.join().unwrap(), 1);
}

/// A std echo server for one connection at a time, until `conns` were served.
fn spawn_std_echo(conns: usize) -> (SocketAddr, thread::JoinHandle<()>) {
    let l = TcpListener::bind(loopback()).unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let mut workers = Vec::new();
        for _ in 0..conns {
            let (s, _) = l.accept().unwrap();
            workers.push(thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                std::io::copy(&mut r, &mut w).unwrap();
                // EOF from the forwarder: finish our half too.
                w.shutdown(Shutdown::Write).unwrap();
            }));
        }
        for w in workers {
            w.join().unwrap();
        }
    });
    (addr, h)
}

#[test]
fn forwarder_between_std_client_and_std_echo() {
    let Some(ring) = ring(&RingConfig::default()) else {
        return;
    };
    const CLIENTS: usize = 2;
    const TOTAL: usize = 16 << 20;
    let (echo_addr, echo) = spawn_std_echo(CLIENTS);
    let listener = sys::reuseport_listener(loopback(), 64).unwrap();
    let fwd_addr = listener.local_addr().unwrap();
    // A small queue limit, so receive pausing and resuming are exercised.
    let mut fwd = forwarder::Forwarder::new(ring, listener, echo_addr, 64 << 10).unwrap();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || {
                let data = pattern(100 + i as u64, TOTAL);
                let s = TcpStream::connect(fwd_addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut w = s.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    w.write_all(&data).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                    Sha256::digest(&data)
                });
                let mut back = Vec::with_capacity(TOTAL);
                let mut r = s;
                r.read_to_end(&mut back).unwrap(); // ends at the forwarded EOF
                (writer.join().unwrap(), Sha256::digest(&back), back.len())
            })
        })
        .collect();

    let start = Instant::now();
    // Closes are SQEs too: keep the ring running until the clients have seen their EOF.
    while fwd.pairs_done < CLIENTS as u64 || !clients.iter().all(|c| c.is_finished()) {
        check_deadline(start, Duration::from_secs(120), "forwarding");
        fwd.run_once(TICK).unwrap();
    }
    for c in clients {
        let (sent, back, len) = c.join().unwrap();
        assert_eq!(len, TOTAL);
        assert_eq!(sent, back);
    }
    echo.join().unwrap();
    assert_eq!(fwd.forwarded, 2 * (CLIENTS * TOTAL) as u64);
    fwd.close_listener().unwrap();
    drain(&mut fwd.ring);
    assert_eq!(fwd.pairs(), 0);
    assert_eq!(fwd.ring.buf_ring().outstanding(), 0);
}

#[test]
fn short_sends_resubmit_their_tail() {
    let Some(mut ring) = ring(&RingConfig::default()) else {
        return;
    };
    const TOTAL: usize = 4 << 20;
    let l = sys::reuseport_listener(loopback(), 16).unwrap();
    let addr = l.local_addr().unwrap();
    let listener = ring.add_listener(l).unwrap();
    let reader = thread::spawn(move || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut r = s;
        let (mut hash, mut got, mut buf) = (Sha256::new(), 0usize, [0u8; 4096]);
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            got += n;
            if got % (64 << 10) < n {
                thread::sleep(Duration::from_millis(1)); // a slow reader
            }
        }
        (got, hash.finalize())
    });
    let data = pattern(7, TOTAL);
    let start = Instant::now();
    let mut done = false;
    // The close is an SQE too: run until the reader has seen its EOF.
    while !done || !reader.is_finished() {
        check_deadline(start, Duration::from_secs(60), "short sends");
        ring.run_once(TICK).unwrap();
        while let Some(ev) = ring.poll_event() {
            match ev {
                Event::Accepted { conn, .. } => {
                    let fd = ring.conn_fd(conn).unwrap();
                    sys::set_send_buffer(fd, 4096).unwrap();
                    // One 4 MiB SEND into a ~8 KiB socket buffer.
                    ring.send(conn, &data).unwrap();
                    ring.close_when_flushed(conn).unwrap();
                }
                Event::SendDone { .. } => done = true,
                Event::Timeout => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let (got, hash) = reader.join().unwrap();
    assert_eq!(got, TOTAL);
    assert_eq!(hash, Sha256::digest(&data));
    let stats = ring.stats();
    assert_eq!(stats.sends, 1, "{stats:?}");
    assert!(stats.short_sends > 0, "{stats:?}");
    ring.close_listener(listener).unwrap();
    drain(&mut ring);
    assert_eq!(ring.conn_count(), 0);
}

#[test]
fn enobufs_and_backlog_with_a_tiny_buffer_ring() {
    let config = RingConfig {
        sq_entries: 8,
        buf_entries: 4,
        buf_size: 1024,
        ..RingConfig::default()
    };
    let Some(mut ring) = ring(&config) else {
        return;
    };
    const CLIENTS: usize = 16;
    const EACH: usize = 32 << 10;
    let l = sys::reuseport_listener(loopback(), 64).unwrap();
    let addr = l.local_addr().unwrap();
    let listener = ring.add_listener(l).unwrap();
    // All clients connect and write before the ring's first submit, so the first multishot
    // ACCEPT returns 16 sockets at once and their 16 RECVs overflow the 8-entry SQ.
    let mut clients = Vec::new();
    let mut by_port = HashMap::new();
    for i in 0..CLIENTS {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&pattern(i as u64, EACH)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        by_port.insert(s.local_addr().unwrap().port(), i);
        clients.push(s);
    }
    let mut conn_client: HashMap<ConnId, usize> = HashMap::new();
    let mut received: Vec<Vec<u8>> = vec![Vec::new(); CLIENTS];
    let mut eof = 0;
    // Held receive buffers, kept until the ring has run dry at least once.
    let mut held: Vec<(ConnId, RxBuf)> = Vec::new();
    let start = Instant::now();
    while eof < CLIENTS {
        check_deadline(start, Duration::from_secs(30), "tiny buffer ring");
        ring.run_once(TICK).unwrap();
        while let Some(ev) = ring.poll_event() {
            match ev {
                Event::Accepted { conn, peer, .. } => {
                    let port = peer.unwrap().port();
                    conn_client.insert(conn, by_port[&port]);
                }
                Event::Recv { conn, data } => {
                    assert!(data.len() <= 1024);
                    held.push((conn, data));
                }
                Event::RecvClosed { conn, err } => {
                    assert!(err.is_none(), "{err:?}");
                    ring.close(conn).unwrap();
                    eof += 1;
                }
                Event::Timeout => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        // Until the ring has run dry once, keep every buffer we were given.
        if ring.stats().enobufs > 0 {
            for (conn, data) in held.drain(..) {
                received[conn_client[&conn]].extend_from_slice(&data);
            }
        }
        assert_eq!(ring.buf_ring().outstanding() as usize, held.len());
    }
    for (i, r) in received.iter().enumerate() {
        assert_eq!(r.len(), EACH, "client {i}");
        assert!(*r == pattern(i as u64, EACH), "client {i} bytes differ");
    }
    let stats = ring.stats();
    assert!(stats.enobufs > 0, "{stats:?}");
    assert!(stats.backlog_spills > 0, "{stats:?}");
    ring.close_listener(listener).unwrap();
    drain(&mut ring);
    assert_eq!(ring.conn_count(), 0);
    assert_eq!(ring.buf_ring().available(), 4);
    drop(clients);
}

#[test]
fn the_buffer_window_bounds_each_wait_and_loses_nothing() {
    // 64 buffers of 1 KiB, two offered plus one per connection: a wait takes in at most
    // 3 KiB however much is waiting, the same three buffers cycle, and the other 61 are
    // never handed to the kernel.
    let config = RingConfig {
        buf_entries: 64,
        buf_size: 1024,
        buf_window: 2,
        ..RingConfig::default()
    };
    let Some(mut ring) = ring(&config) else {
        return;
    };
    const TOTAL: usize = 256 << 10;
    let data = pattern(7, TOTAL);
    let (conn, mut peer) = adopted_pair(&mut ring);
    // All of it waits in the socket before the first wait.
    peer.write_all(&data).unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let (mut got, mut most_per_wait, mut max_bid, mut recvs) = (Vec::new(), 0, 0, 0);
    let start = Instant::now();
    let mut eof = false;
    while !eof {
        check_deadline(start, Duration::from_secs(30), "buffer window");
        ring.run_once(TICK).unwrap();
        assert!(ring.buf_ring().available() <= 3);
        let mut this_wait = 0;
        while let Some(ev) = ring.poll_event() {
            match ev {
                Event::Recv { conn: c, data } => {
                    assert_eq!(c, conn);
                    this_wait += data.len();
                    max_bid = max_bid.max(data.bid().0);
                    recvs += 1;
                    got.extend_from_slice(&data);
                }
                Event::RecvClosed { err: None, .. } => eof = true,
                Event::Timeout => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        most_per_wait = most_per_wait.max(this_wait);
    }
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
    assert!(
        most_per_wait <= 3 * 1024,
        "{most_per_wait} bytes in one wait"
    );
    assert!(max_bid < 3, "buffer {max_bid} was offered");
    let stats = ring.stats();
    assert!(
        stats.enobufs > 0,
        "the window ran dry and the RECV was re-armed: {stats:?}"
    );
    assert_eq!(ring.buf_ring().window(), 3);
    assert_eq!(ring.buf_ring().idle(), 61);
    // The driver counters the metrics show (kistrel_io_*).
    let io = kistrel_engine::driver::Driver::stats(&ring);
    assert_eq!((io.recvs, io.recv_no_buffers), (recvs, stats.enobufs));
    assert_eq!(io.waits, stats.waits);
    ring.close(conn).unwrap();
    drain(&mut ring);
}

#[test]
fn close_with_operations_in_flight_frees_everything() {
    let Some(mut ring) = ring(&RingConfig::default()) else {
        return;
    };
    let (conn, mut peer) = adopted_pair(&mut ring);
    let listener = ring
        .add_listener(sys::reuseport_listener(loopback(), 16).unwrap())
        .unwrap();
    // A SEND far larger than the socket buffers: it stays in flight (the peer never reads).
    ring.send(conn, &vec![0xa5; 32 << 20]).unwrap();
    peer.write_all(b"hello").unwrap();
    let start = Instant::now();
    let held = loop {
        check_deadline(start, Duration::from_secs(5), "first receive");
        ring.run_once(TICK).unwrap();
        if let Some(Event::Recv { data, .. }) =
            std::iter::from_fn(|| ring.poll_event()).find(|e| matches!(e, Event::Recv { .. }))
        {
            break data;
        }
    };
    assert_eq!(&held[..], b"hello");
    assert!(ring.queued_len(conn).unwrap() > 0);
    // recv (multishot), send, accept (multishot), and the error-queue RECVMSG if the send
    // was a sampled one (its stamps are read through the ring).
    assert_eq!(ring.ops_in_flight(), 3 + errqueue_armed(&ring));
    assert_eq!(ring.buf_ring().outstanding(), 1);

    ring.close(conn).unwrap();
    ring.close_listener(listener).unwrap();
    let stale = ring.close(conn).unwrap_err();
    assert!(matches!(stale, UringError::NoSuchConn(c) if c == conn));
    assert_eq!(stale.kind(), ErrorKind::BadApiUsage);
    drop(held);
    drain(&mut ring);
    assert_eq!(ring.conn_count(), 0);
    assert_eq!(ring.listener_count(), 0);
    assert_eq!(ring.buf_ring().outstanding(), 0);
    assert_eq!(ring.pending_events(), 0);
    // The peer sees the connection end (EOF or reset) after what was sent.
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let _ = peer.read_to_end(&mut sink);
    assert!(sink.iter().all(|&b| b == 0xa5));
    assert!(sink.len() < 32 << 20);
}

/// `close` ends the TCP connection itself, not only the descriptor: the peer reads EOF
/// before the ring runs again, whatever operation may still hold the socket (a cancel the
/// kernel does not match leaves one holding it: `uring/close.rs`).
#[test]
fn close_ends_the_connection_before_the_ring_runs_again() {
    let Some(mut ring) = ring(&RingConfig::default()) else {
        return;
    };
    let (conn, mut peer) = adopted_pair(&mut ring);
    ring.send(conn, b"last words").unwrap();
    for _ in 0..ROUNDS {
        if ring.queued_len(conn).unwrap() == 0 {
            break;
        }
        ring.run_once(TICK).unwrap();
        while ring.poll_event().is_some() {}
    }
    assert_eq!(ring.queued_len(conn).unwrap(), 0, "the send went out");
    assert_eq!(
        ring.ops_in_flight(),
        1 + errqueue_armed(&ring),
        "the RECV is armed"
    );

    ring.close(conn).unwrap();
    // No run_once: the cancels and the CLOSE are not even submitted yet.
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).expect("EOF, not a timeout");
    assert_eq!(&got[..], b"last words");
    drain(&mut ring);
    assert_eq!(ring.buf_ring().outstanding(), 0);
}

#[test]
fn connect_refused_reports_and_frees_the_conn() {
    let Some(mut ring) = ring(&RingConfig::default()) else {
        return;
    };
    // A port that was just free: nobody listens there.
    let addr = TcpListener::bind(loopback()).unwrap().local_addr().unwrap();
    let conn = ring.connect(addr).unwrap();
    ring.send(conn, b"queued before connect").unwrap();
    let start = Instant::now();
    let err = loop {
        check_deadline(start, Duration::from_secs(5), "connect failure");
        ring.run_once(TICK).unwrap();
        match ring.poll_event() {
            Some(Event::ConnectFailed { conn: c, err }) => {
                assert_eq!(c, conn);
                break err;
            }
            Some(Event::Timeout) | None => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    assert!(matches!(ring.conn_fd(conn), Err(UringError::NoSuchConn(_))));
    drain(&mut ring);
    assert_eq!(ring.conn_count(), 0);
}

#[test]
fn timeout_event_in_both_wait_modes() {
    for ext_arg_wait in [true, false] {
        let config = RingConfig {
            ext_arg_wait,
            ..RingConfig::default()
        };
        let Some(mut ring) = ring(&config) else {
            return;
        };
        assert!(ext_arg_wait || !ring.features().ext_arg_wait);
        ring.run_once(Some(Duration::from_millis(5))).unwrap();
        assert!(matches!(ring.poll_event(), Some(Event::Timeout)));
        assert!(ring.poll_event().is_none());
        assert_eq!(ring.ops_in_flight(), 0);
    }
}

#[test]
fn paused_receive_holds_data_until_resumed() {
    // Also the fallback setups: plain flags, and TIMEOUT-op waits.
    for (defer_taskrun, ext_arg_wait) in [(true, true), (false, true), (false, false)] {
        let config = RingConfig {
            defer_taskrun,
            ext_arg_wait,
            ..RingConfig::default()
        };
        let Some(ring) = ring(&config) else {
            return;
        };
        assert!(defer_taskrun || !ring.features().defer_taskrun);
        pause_and_resume(ring);
    }
}

fn pause_and_resume(mut ring: Ring) {
    let l = TcpListener::bind(loopback()).unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    let conn = ring.adopt(client).unwrap();
    ring.set_recv_paused(conn, true).unwrap();
    drain(&mut ring); // the cancelled RECV completes
    assert_eq!(ring.ops_in_flight(), 0);
    peer.write_all(b"while paused").unwrap();
    for _ in 0..3 {
        ring.run_once(Some(Duration::from_millis(5))).unwrap();
        while let Some(ev) = ring.poll_event() {
            assert!(matches!(ev, Event::Timeout), "{ev:?}");
        }
    }
    ring.set_recv_paused(conn, false).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < 12 {
        check_deadline(start, Duration::from_secs(5), "resumed receive");
        ring.run_once(TICK).unwrap();
        while let Some(ev) = ring.poll_event() {
            if let Event::Recv { data, .. } = ev {
                got.extend_from_slice(&data);
            }
        }
    }
    assert_eq!(got, b"while paused");
    ring.close(conn).unwrap();
    drain(&mut ring);
}

#[test]
fn dropping_the_ring_closes_everything() {
    for (defer_taskrun, ext_arg_wait) in [(true, true), (true, false), (false, false)] {
        let config = RingConfig {
            defer_taskrun,
            ext_arg_wait,
            ..RingConfig::default()
        };
        let Some(ring) = ring(&config) else {
            return;
        };
        drop_busy_ring(ring);
    }
}

/// The error-queue RECVMSGs armed and not yet completed (0 or 1 per stamped connection).
fn errqueue_armed(ring: &Ring) -> usize {
    let s = ring.stats();
    let armed = usize::try_from(s.errqueue_arms - s.errqueue_recvs).unwrap();
    assert!(
        armed <= 1,
        "one error-queue op per connection at most, got {armed}"
    );
    armed
}

fn drop_busy_ring(mut ring: Ring) {
    let (conn, mut peer) = adopted_pair(&mut ring);
    let listener = ring
        .add_listener(sys::reuseport_listener(loopback(), 16).unwrap())
        .unwrap();
    let listen_addr = ring.listener_addr(listener).unwrap();
    ring.send(conn, &vec![0x3c; 32 << 20]).unwrap();
    for _ in 0..3 {
        ring.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    // recv, send (stuck: nobody reads), accept, and the error-queue RECVMSG if sampled
    assert_eq!(ring.ops_in_flight(), 3 + errqueue_armed(&ring));
    drop(ring);
    // The send was cancelled and the socket closed: the peer reads a prefix, then the end.
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let _ = peer.read_to_end(&mut sink);
    assert!(sink.len() < 32 << 20 && sink.iter().all(|&b| b == 0x3c));
    // The listener is gone too.
    let err = TcpStream::connect(listen_addr).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}
