//! `sys::socket_snapshot` against a real loopback connection with data in flight.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use kistrel_engine::sys;

/// Polls `cond` every millisecond for up to two seconds.
fn poll_until(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

#[test]
fn snapshot_sees_queued_bytes_and_their_drain() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut reader, _) = listener.accept().unwrap();

    // Fill the send queue (and the peer's receive queue) without the peer reading.
    writer.set_nonblocking(true).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut written = 0usize;
    while written < 4 << 20 {
        match writer.write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(written > 0);

    let fd = writer.as_raw_fd();
    let mut snap = sys::socket_snapshot(fd).unwrap();
    // The peer's receive window fills first; wait until the sender holds bytes too.
    assert!(poll_until(|| {
        snap = sys::socket_snapshot(fd).unwrap();
        snap.outq.unwrap_or(0) > 0
    }));
    let tcp = snap.tcp.expect("Linux reports TCP_INFO");
    assert!(tcp.cwnd > 0, "{snap:?}");
    assert!(tcp.mss > 0, "{snap:?}");
    let outq = snap.outq.unwrap();
    let notsent = snap.notsent.expect("Linux reports SIOCOUTQNSD");
    assert!(
        outq > 0 && outq as usize <= written,
        "{snap:?} written {written}"
    );
    assert!(notsent <= outq, "{snap:?}");

    // The peer drains everything: the send queue must empty.
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0usize;
    reader
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    while got < written {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "early EOF");
        assert!(buf[..n].iter().all(|&b| b == 0x5a));
        got += n;
    }
    assert_eq!(got, written);
    assert!(poll_until(|| {
        let s = sys::socket_snapshot(fd).unwrap();
        s.outq == Some(0) && s.notsent == Some(0)
    }));
    let s = sys::socket_snapshot(fd).unwrap();
    assert_eq!(s.tcp.unwrap().unacked, 0, "{s:?}");
}

#[test]
fn snapshot_of_a_non_socket_is_an_error() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = sys::socket_snapshot(file.as_raw_fd()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
}
