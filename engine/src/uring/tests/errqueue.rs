//! The error queue read through the ring (`uring/errqueue.rs`) on real loopback sockets: a
//! sampled send's SCHED, SND and ACK stamps arrive as RECVMSG completions with no
//! recvmsg(2) of ours, and a connection closed with its RECVMSG armed frees it. Waits are
//! bounded by rounds (hang guards, not speed checks).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

use crate::driver::Driver;
use crate::sys::txstamp::{KernelStage, SAMPLE_EVERY_BYTES};
use crate::uring::{Event, Ring, RingConfig};

const ROUNDS: usize = 3000;

/// One loop turn of the ring: run it for at most 1 ms, take its events and the stamps read.
/// Returns the bytes received.
fn turn(ring: &mut Ring, stamps: &mut Vec<(KernelStage, u64)>) -> usize {
    ring.run_once(Some(Duration::from_millis(1))).unwrap();
    let mut received = 0;
    while let Some(ev) = ring.poll_event() {
        if let Event::Recv { data, .. } = ev {
            received += data.len();
        }
    }
    ring.drain_tx_stamps(&mut |stage, us| stamps.push((stage, us)));
    received
}

fn ring() -> Option<Ring> {
    match Ring::new(&RingConfig::default()) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("SKIPPED: io_uring unavailable: {e}");
            None
        }
    }
}

/// A connected pair; `peer_rcvbuf` sets the accepting side's SO_RCVBUF before the handshake.
fn pair(peer_rcvbuf: Option<u32>) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    if let Some(bytes) = peer_rcvbuf {
        crate::sys::set_recv_buffer(l.as_raw_fd(), bytes).unwrap();
    }
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

#[test]
fn sampled_send_is_stamped_through_the_ring_without_recvmsg() {
    let Some(mut ring) = ring() else { return };
    let (ours, mut peer) = pair(None);
    let reader = thread::spawn(move || {
        peer.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut buf = vec![0u8; SAMPLE_EVERY_BYTES];
        peer.read_exact(&mut buf).unwrap();
        (buf, peer) // kept open: the connection's RECV stays armed
    });
    let conn = ring.adopt(ours).unwrap();
    ring.send(conn, &vec![5u8; SAMPLE_EVERY_BYTES]).unwrap();
    let mut got = Vec::new();
    for _ in 0..ROUNDS {
        turn(&mut ring, &mut got);
        if got.len() >= 3 {
            break;
        }
    }
    let (bytes, _peer) = reader.join().unwrap();
    assert!(bytes.iter().all(|&b| b == 5));
    let stages: Vec<_> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        stages,
        [KernelStage::Sched, KernelStage::Sent, KernelStage::Acked]
    );
    assert!(got[0].1 <= got[1].1 && got[1].1 <= got[2].1, "{got:?}");
    let s = ring.stats();
    assert_eq!(s.stamped_sends, 1, "{s:?}");
    assert_eq!(s.errqueue_reads, 0, "no recvmsg(2): {s:?}");
    assert_eq!(s.errqueue_recvs, 3, "one RECVMSG per stamp: {s:?}");
    assert_eq!(
        s.errqueue_arms, 3,
        "armed once per stamp, not after the ACK: {s:?}"
    );
    assert_eq!(s.stamps_missing, 0, "{s:?}");
    // The ACK freed the sample: nothing is armed beyond the connection's RECV.
    assert_eq!(ring.ops_in_flight(), 1);
}

#[test]
fn closing_with_the_errqueue_armed_frees_its_block() {
    let Some(mut ring) = ring() else { return };
    // The peer's window is far smaller than the sampled send and the peer never reads: the
    // send's last byte is never transmitted, so its stamps never come and the RECVMSG stays
    // armed until the connection closes.
    let (ours, peer) = pair(Some(4096));
    crate::sys::set_send_buffer(ours.as_raw_fd(), 4 << 20).unwrap();
    let conn = ring.adopt(ours).unwrap();
    ring.send(conn, &vec![6u8; SAMPLE_EVERY_BYTES]).unwrap();
    for _ in 0..ROUNDS {
        ring.run_once(Some(Duration::from_millis(1))).unwrap();
        while ring.poll_event().is_some() {}
        if ring.stats().errqueue_arms > 0 {
            break;
        }
    }
    ring.drain_tx_stamps(&mut |stage, us| panic!("no stamp expected: {stage:?} {us}"));
    let s = ring.stats();
    assert_eq!((s.stamped_sends, s.errqueue_arms), (1, 1), "{s:?}");
    assert_eq!(s.errqueue_recvs, 0, "{s:?}");
    assert_eq!(ring.ops_in_flight(), 2, "RECV and the error-queue RECVMSG");
    ring.close(conn).unwrap();
    for _ in 0..ROUNDS {
        if ring.ops_in_flight() == 0 {
            break;
        }
        ring.run_once(Some(Duration::from_millis(1))).unwrap();
        while ring.poll_event().is_some() {}
    }
    assert_eq!(
        ring.ops_in_flight(),
        0,
        "cancelled ops freed, blocks with them"
    );
    assert_eq!(ring.conn_count(), 0);
    assert_eq!(ring.stats().errqueue_recvs, 0);
    drop(peer);
}

/// A connection that receives while its sample is outstanding: ordinary data wakes the
/// error-queue RECVMSG (io_uring polls it for EPOLLRDNORM too), and none of those wakeups may
/// end it in a way that moves the connection onto recvmsg(2). Which stamps the kernel makes
/// under two-way load varies from run to run (any of SCHED, SND and ACK can be missing, and
/// the error queue is empty after the run), so the test asserts that those that came were
/// read through the ring, one RECVMSG each, in stage order.
#[test]
fn incoming_data_keeps_the_error_queue_on_the_ring() {
    let Some(mut ring) = ring() else { return };
    let (ours, mut peer) = pair(None);
    const CHUNKS: usize = 256;
    const CHUNK: usize = 16 << 10;
    let writer = thread::spawn(move || {
        for _ in 0..CHUNKS {
            peer.write_all(&[9u8; CHUNK]).unwrap();
        }
        let mut buf = vec![0u8; SAMPLE_EVERY_BYTES];
        peer.read_exact(&mut buf).unwrap();
        peer
    });
    let conn = ring.adopt(ours).unwrap();
    ring.send(conn, &vec![5u8; SAMPLE_EVERY_BYTES]).unwrap();
    let mut got = Vec::new();
    let mut received = 0;
    let mut after_writer = 0;
    for _ in 0..ROUNDS {
        received += turn(&mut ring, &mut got);
        if received == CHUNKS * CHUNK && (got.len() >= 3 || after_writer == 100) {
            break;
        }
        after_writer += usize::from(writer.is_finished());
    }
    let _peer = writer.join().unwrap();
    assert_eq!(received, CHUNKS * CHUNK);
    let s = ring.stats();
    assert!(!got.is_empty(), "{s:?}");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{got:?}");
    assert_eq!(s.errqueue_reads, 0, "no recvmsg(2): {s:?}");
    assert_eq!(s.errqueue_recvs as usize, got.len(), "{s:?}");
}
