//! `sys::socket_snapshot` against a real loopback connection with data in flight, and
//! against the ioctls it replaced (`sys::send_queue`).

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

/// A connected pair whose writer has filled its send queue (and the reader's receive queue)
/// without the reader reading. Returns the bytes written.
fn filled_pair() -> (TcpStream, TcpStream, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (reader, _) = listener.accept().unwrap();
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
    (writer, reader, written)
}

#[test]
fn one_getsockopt_equals_the_ioctls_on_a_stable_queue() {
    let (writer, _reader, written) = filled_pair();
    let fd = writer.as_raw_fd();
    // The reader does not read: once its window is closed the sender's queue stops moving
    // (only zero-window probes go out). Wait for two equal readings 20 ms apart.
    let mut last = sys::send_queue(fd).unwrap();
    assert!(poll_until(|| {
        std::thread::sleep(Duration::from_millis(20));
        let now = sys::send_queue(fd).unwrap();
        let stable = now == last && now.unsent.unwrap_or(0) > 0;
        last = now;
        stable
    }));

    let before = sys::send_queue(fd).unwrap();
    let snap = sys::socket_snapshot(fd).unwrap();
    let after = sys::send_queue(fd).unwrap();
    assert_eq!(before, after, "the queue moved during the check");
    // The old snapshot: the same TCP_INFO fields, notsent from SIOCOUTQNSD.
    assert_eq!(snap.notsent, before.unsent, "{snap:?} vs {before:?}");
    let queued = before.queued.expect("Linux reports SIOCOUTQ");
    let notsent = snap.notsent.unwrap();
    assert!(notsent > 0 && notsent <= queued, "{snap:?} {before:?}");
    assert!(queued as usize <= written, "{before:?} written {written}");
    let tcp = snap.tcp.expect("Linux reports TCP_INFO");
    assert!(tcp.cwnd > 0 && tcp.mss > 0, "{snap:?}");
    // Nothing moves, so a second snapshot is the same, field for field.
    assert_eq!(sys::socket_snapshot(fd).unwrap(), snap);
}

#[test]
fn snapshot_sees_queued_bytes_and_their_drain() {
    let (writer, mut reader, written) = filled_pair();
    let fd = writer.as_raw_fd();
    // The peer's receive window fills first; wait until the sender holds unsent bytes too.
    assert!(poll_until(|| {
        sys::socket_snapshot(fd).unwrap().notsent.unwrap_or(0) > 0
    }));

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
        s.notsent == Some(0) && s.tcp.is_some_and(|t| t.unacked == 0)
    }));
    let q = sys::send_queue(fd).unwrap();
    assert_eq!((q.queued, q.unsent), (Some(0), Some(0)));
}

#[test]
fn snapshot_of_a_non_socket_is_an_error() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = sys::socket_snapshot(file.as_raw_fd()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
    // The ioctls answer a non-socket with "not a tty": still an error, nothing read.
    let err = sys::send_queue(file.as_raw_fd()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTTY));
}

#[test]
fn snapshot_of_a_closed_descriptor_is_ebadf() {
    // Descriptor numbers no test opens (a just-closed number could be reused by another
    // test thread at once).
    for fd in [-1, 1 << 29] {
        let err = sys::socket_snapshot(fd).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "fd {fd}");
    }
}
