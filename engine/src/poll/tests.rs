//! The poll backend over real loopback sockets. Every wait is bounded by a number of
//! rounds (a hang guard, not a speed check).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::*;
use crate::driver::Driver;

const ROUND: Duration = Duration::from_millis(10);
const MAX_ROUNDS: usize = 3000;

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// Runs rounds, handing every event to `f`, until `f` returns true.
fn pump(d: &mut PollDriver, mut f: impl FnMut(&mut PollDriver, PollEvent) -> bool) {
    for _ in 0..MAX_ROUNDS {
        d.run_once(Some(ROUND)).unwrap();
        while let Some(ev) = d.poll_event() {
            if f(d, ev) {
                return;
            }
        }
    }
    panic!("condition not reached in {MAX_ROUNDS} rounds");
}

/// A driver with one accepted connection from a std client.
fn accepted_pair(d: &mut PollDriver) -> (ConnId, TcpStream) {
    let l = listener();
    let addr = l.local_addr().unwrap();
    let lid = d.add_listener(l).unwrap();
    let peer = TcpStream::connect(addr).unwrap();
    let mut conn = None;
    pump(d, |_, ev| match ev {
        IoEvent::Accepted {
            listener,
            conn: c,
            peer: p,
        } => {
            assert_eq!(listener, lid);
            assert_eq!(p, Some(peer.local_addr().unwrap()));
            conn = Some(c);
            true
        }
        other => panic!("unexpected {other:?}"),
    });
    (conn.unwrap(), peer)
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// Echoes `size` bytes through a driver-side echo of an accepted connection; returns
/// the digest of what came back, the digest of what was sent, and the driver's counters.
fn echo(size: usize) -> ([u8; 32], [u8; 32], PollStats) {
    const HIGH_WATER: usize = 1 << 20;
    let mut d = PollDriver::new().unwrap();
    let (conn, peer) = accepted_pair(&mut d);
    let data = random(size, 64);
    let want: [u8; 32] = Sha256::digest(&data).into();
    let mut tx = peer.try_clone().unwrap();
    let writer = thread::spawn(move || {
        tx.write_all(&data).unwrap();
        tx.shutdown(Shutdown::Write).unwrap();
    });
    let mut rx = peer;
    let reader = thread::spawn(move || {
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = rx.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            total += n;
        }
        (total, <[u8; 32]>::from(hash.finalize()))
    });
    let mut paused = false;
    pump(&mut d, |d, ev| {
        match ev {
            IoEvent::Recv { conn: c, data } => {
                assert_eq!(c, conn);
                d.send_buf(conn).unwrap().extend_from_slice(&data);
                if d.queued_len(conn) > HIGH_WATER && !paused {
                    paused = true;
                    d.set_recv_paused(conn, true);
                }
            }
            IoEvent::SendDone { conn: c } => {
                // Not `queued_len == 0`: a Recv handled after this event was produced may
                // already have queued more (events are drained in batches).
                assert_eq!(c, conn);
                if paused {
                    paused = false;
                    d.set_recv_paused(conn, false);
                }
            }
            IoEvent::RecvClosed { conn: c, err } => {
                assert_eq!(c, conn);
                assert!(err.is_none(), "{err:?}");
                d.close_when_flushed(conn);
                return true;
            }
            other => panic!("unexpected {other:?}"),
        }
        false
    });
    // Flush the tail; the connection closes itself once it is out.
    for _ in 0..MAX_ROUNDS {
        if d.conn_count() == 0 {
            break;
        }
        d.run_once(Some(ROUND)).unwrap();
        while let Some(ev) = d.poll_event() {
            assert!(matches!(ev, IoEvent::SendDone { .. }), "unexpected {ev:?}");
        }
    }
    assert_eq!(d.conn_count(), 0);
    writer.join().unwrap();
    let (total, have) = reader.join().unwrap();
    assert_eq!(total, size);
    // The driver counters the metrics show (kistrel_io_*) are these.
    let (s, io) = (d.stats(), Driver::stats(&d));
    assert_eq!(
        (
            io.waits,
            io.recvs,
            io.sends,
            io.short_sends,
            io.recv_no_buffers
        ),
        (s.polls, s.reads, s.writes, s.short_writes, 0)
    );
    (have, want, s)
}

#[test]
fn echoes_64_mib_intact() {
    let (have, want, stats) = echo(64 << 20);
    assert_eq!(have, want, "echoed bytes differ");
    // The pollfd array was laid out for the listener, then for the accepted connection,
    // then after the close: not per round.
    assert!(stats.rebuilds <= 3, "{stats:?}");
    assert!(stats.polls > stats.rebuilds);
    assert!(stats.writes > 0 && stats.reads > 0);
}

#[test]
fn queued_bytes_go_out_after_connect_then_close_when_flushed() {
    let l = listener();
    let addr = l.local_addr().unwrap();
    let mut d = PollDriver::new().unwrap();
    let conn = d.connect(addr).unwrap();
    let payload = random(3 << 20, 1);
    // Queued while connecting: nothing is taken by the kernel yet.
    d.send_buf(conn).unwrap().extend_from_slice(&payload);
    assert_eq!(d.queued_len(conn), payload.len());
    d.close_when_flushed(conn);
    assert!(
        d.conn_fd(conn).is_some(),
        "not closed before the bytes are out"
    );
    let server = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let mut connected = false;
    pump(&mut d, |_, ev| match ev {
        IoEvent::Connected { conn: c } => {
            assert_eq!(c, conn);
            connected = true;
            false
        }
        IoEvent::SendDone { conn: c } => {
            assert!(connected);
            assert_eq!(c, conn);
            true
        }
        other => panic!("unexpected {other:?}"),
    });
    // Closed with its last byte: the handle is dead.
    assert_eq!(d.conn_fd(conn), None);
    assert!(d.send_buf(conn).is_none());
    assert_eq!(d.queued_len(conn), 0);
    assert_eq!(server.join().unwrap(), payload);
}

#[test]
fn refused_connect_is_reported_and_the_handle_dies() {
    let addr: SocketAddr = listener().local_addr().unwrap(); // listener dropped: port closed
    let mut d = PollDriver::new().unwrap();
    let conn = d.connect(addr).unwrap();
    pump(&mut d, |_, ev| match ev {
        IoEvent::ConnectFailed { conn: c, err } => {
            assert_eq!(c, conn);
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
            true
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(d.conn_count(), 0);
    assert_eq!(d.conn_fd(conn), None);
    assert!(d.send_buf(conn).is_none());
}

#[test]
fn eof_gives_recv_closed_and_sending_goes_on() {
    let mut d = PollDriver::new().unwrap();
    let (conn, mut peer) = accepted_pair(&mut d);
    peer.write_all(b"hello").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    pump(&mut d, |_, ev| match ev {
        IoEvent::Recv { conn: c, data } => {
            assert_eq!(c, conn);
            got.extend_from_slice(&data);
            false
        }
        IoEvent::RecvClosed { conn: c, err } => {
            assert_eq!(c, conn);
            assert!(err.is_none());
            true
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(got, b"hello");
    d.send_buf(conn).unwrap().extend_from_slice(b"bye");
    d.close_when_flushed(conn);
    pump(
        &mut d,
        |_, ev| matches!(ev, IoEvent::SendDone { conn: c } if c == conn),
    );
    let mut back = Vec::new();
    peer.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"bye");
}

#[test]
fn a_paused_connection_is_not_read() {
    let mut d = PollDriver::new().unwrap();
    let (conn, mut peer) = accepted_pair(&mut d);
    d.set_recv_paused(conn, true);
    peer.write_all(b"later").unwrap();
    for _ in 0..5 {
        d.run_once(Some(ROUND)).unwrap();
        assert!(d.poll_event().is_none(), "read while paused");
    }
    d.set_recv_paused(conn, false);
    pump(&mut d, |_, ev| match ev {
        IoEvent::Recv { data, .. } => {
            assert_eq!(&*data, b"later");
            true
        }
        other => panic!("unexpected {other:?}"),
    });
}

#[test]
fn reads_are_bounded_per_round() {
    let config = PollConfig {
        recv_buf_size: 1024,
        recv_budget: 4096,
        pool_keep: 8,
    };
    let mut d = PollDriver::with_config(config).unwrap();
    let (conn, mut peer) = accepted_pair(&mut d);
    peer.write_all(&random(64 * 1024, 2)).unwrap();
    let mut rounds_with_data = 0;
    let mut total = 0;
    while total < 64 * 1024 {
        assert!(rounds_with_data < MAX_ROUNDS);
        d.run_once(Some(ROUND)).unwrap();
        let mut this_round = 0;
        while let Some(ev) = d.poll_event() {
            let IoEvent::Recv { conn: c, data } = ev else {
                panic!("unexpected {ev:?}")
            };
            assert_eq!(c, conn);
            assert!(data.len() <= 1024);
            this_round += data.len();
        }
        assert!(this_round <= 4096, "read {this_round} bytes in one round");
        if this_round > 0 {
            rounds_with_data += 1;
        }
        total += this_round;
    }
    assert_eq!(total, 64 * 1024);
    assert!(rounds_with_data >= 16);
    // Buffers came back to the pool when the events were dropped.
    assert!(d.pool.free_count() > 0);
}

#[test]
fn close_kills_the_handle_and_the_peer_sees_eof() {
    let mut d = PollDriver::new().unwrap();
    let (conn, mut peer) = accepted_pair(&mut d);
    d.send_buf(conn).unwrap().extend_from_slice(b"dropped");
    d.close(conn);
    d.close(conn); // twice is harmless
    assert_eq!(d.conn_fd(conn), None);
    assert_eq!(d.queued_len(conn), 0);
    d.set_recv_paused(conn, true);
    d.run_once(Some(Duration::ZERO)).unwrap();
    assert!(d.poll_event().is_none());
    let mut back = Vec::new();
    peer.read_to_end(&mut back).unwrap();
    assert!(
        back.is_empty(),
        "queued bytes of a closed connection were sent"
    );
}

#[test]
fn send_to_a_reset_peer_fails() {
    let mut d = PollDriver::new().unwrap();
    let (conn, peer) = accepted_pair(&mut d);
    drop(peer);
    // Keep sending until the kernel reports the reset (the first write may still succeed).
    let mut failed = false;
    for _ in 0..MAX_ROUNDS {
        if let Some(buf) = d.send_buf(conn) {
            buf.extend_from_slice(&[7; 4096]);
        }
        d.run_once(Some(ROUND)).unwrap();
        while let Some(ev) = d.poll_event() {
            match ev {
                IoEvent::SendFailed { conn: c, .. } => {
                    assert_eq!(c, conn);
                    failed = true;
                }
                IoEvent::SendDone { .. } | IoEvent::RecvClosed { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        if failed {
            break;
        }
    }
    assert!(failed);
    assert!(
        d.send_buf(conn).is_none(),
        "a broken connection takes no bytes"
    );
    assert_eq!(d.queued_len(conn), 0);
}

/// On Linux the poll backend reads TCP_INFO (so KIST runs on it): the snapshot of an
/// accepted connection carries it, with nothing unsent. Elsewhere it has none.
#[test]
fn tcp_info_on_linux_only() {
    let mut d = PollDriver::new().unwrap();
    let linux = cfg!(any(target_os = "linux", target_os = "android"));
    assert_eq!(Driver::has_tcp_info(&d), linux);
    assert_eq!(crate::sys::SNAPSHOT_HAS_TCP_INFO, linux);
    let (conn, _peer) = accepted_pair(&mut d);
    let snap = Driver::socket_snapshot(&d, conn).unwrap();
    if linux {
        let tcp = snap.tcp.expect("TCP_INFO on Linux");
        assert!(tcp.mss > 0 && tcp.cwnd > 0, "{tcp:?}");
        assert_eq!(snap.notsent, Some(0));
    } else {
        assert_eq!(snap.tcp, None);
    }
}
