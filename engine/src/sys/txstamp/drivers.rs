//! Both real backends stamp sampled sends on loopback TCP: SCHED, SND and ACK delays come
//! back through `Driver::drain_tx_stamps`, about one sampled send per 1,024 cells, with no
//! extra system call on an unsampled send. Waits are bounded by rounds (hang guards, not
//! speed checks).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use super::{KernelStage, PENDING_SAMPLES, SAMPLE_EVERY_BYTES};
use crate::driver::Driver;

const CELL: usize = 514;
const ROUNDS: usize = 3000;

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

/// A reader thread that consumes `total` bytes from `peer`.
fn sink(mut peer: TcpStream, total: usize) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        peer.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < total {
            match peer.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    })
}

fn flush<D: Driver>(d: &mut D, conn: D::Conn) {
    for _ in 0..ROUNDS {
        d.run_once(Some(Duration::from_millis(1))).unwrap();
        while d.poll_event().is_some() {}
        if d.queued_len(conn) == 0 {
            return;
        }
    }
    panic!("not flushed");
}

/// One sampled batch: its three stamps, in order. Then 40 samples' worth of one-cell sends:
/// one sampled send per 1,024 cells, counted by `stamped` (the backend's counter of sampled
/// sends).
fn stamps_and_rate<D: Driver>(d: &mut D, conn: D::Conn, peer: TcpStream, stamped: fn(&D) -> u64) {
    let per = SAMPLE_EVERY_BYTES / CELL;
    let singles = 40 * per;
    let cells = per + singles;
    let reader = sink(peer, cells * CELL);
    d.send_buf(conn)
        .unwrap()
        .extend_from_slice(&vec![7u8; SAMPLE_EVERY_BYTES]);
    flush(d, conn);
    assert_eq!(stamped(d), 1, "a batch of 1,024 cells is sampled once");
    let mut got = Vec::new();
    for _ in 0..ROUNDS {
        d.run_once(Some(Duration::from_millis(1))).unwrap();
        while d.poll_event().is_some() {}
        d.drain_tx_stamps(&mut |stage, us| got.push((stage, us)));
        if got.len() >= 3 {
            break;
        }
    }
    let stages: Vec<_> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        stages,
        [KernelStage::Sched, KernelStage::Sent, KernelStage::Acked]
    );
    assert!(got[0].1 <= got[1].1 && got[1].1 <= got[2].1, "{got:?}");
    for _ in 0..singles {
        d.send_buf(conn).unwrap().extend_from_slice(&[8u8; CELL]);
        flush(d, conn);
        d.drain_tx_stamps(&mut |_, _| {});
    }
    assert_eq!(reader.join().unwrap(), cells * CELL);
    // 40 x 1,024 cells in single-cell sends: at most one sampled per 1,024, and one per
    // 1,024 while a slot is free (32 slots are free at the start).
    let n = stamped(d);
    assert!(
        (1 + PENDING_SAMPLES as u64..=1 + 40).contains(&n),
        "{n} sampled sends"
    );
}

#[test]
fn poll_backend_stamps_sampled_sends() {
    let mut d = crate::poll::PollDriver::new().unwrap();
    let (ours, peer) = pair();
    let conn = d.adopt(ours).unwrap();
    stamps_and_rate(&mut d, conn, peer, |d| d.stats().stamped_sends);
    let s = d.stats();
    // Every send was a single write (writev or sampled sendmsg): nothing extra per cell.
    assert_eq!(
        s.writes,
        1 + 40 * (SAMPLE_EVERY_BYTES / CELL) as u64,
        "{s:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn uring_backend_stamps_sampled_sends() {
    let mut ring = match crate::uring::Ring::new(&crate::uring::RingConfig::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("SKIPPED: io_uring unavailable: {e}");
            return;
        }
    };
    let (ours, peer) = pair();
    let conn = ring.adopt(ours).unwrap();
    stamps_and_rate(&mut ring, conn, peer, |r| r.stats().stamped_sends);
    let s = ring.stats();
    // One SEND (or sampled SENDMSG) per flushed batch, no extra submission per cell.
    assert_eq!(
        s.sends,
        1 + 40 * (SAMPLE_EVERY_BYTES / CELL) as u64,
        "{s:?}"
    );
    // The stamps came through the ring (a RECVMSG completion each), never by recvmsg(2).
    assert_eq!(s.errqueue_reads, 0, "{s:?}");
    assert!(s.errqueue_recvs >= 3, "{s:?}");
}
