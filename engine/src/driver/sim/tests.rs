//! The simulated network on its own: two nodes, scripted through their drivers.

use super::*;

const STEP: Duration = Duration::from_millis(1);

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], port))
}

fn events(d: &mut SimDriver) -> Vec<SimEvent> {
    std::iter::from_fn(|| d.poll_event()).collect()
}

/// A connected pair: (net, client driver, its conn, server driver, its conn).
fn pair(to: PipeConfig, from: PipeConfig) -> (SimNet, SimDriver, SimConn, SimDriver, SimConn) {
    let net = SimNet::new(Instant::from_millis(0));
    let mut a = net.add_node([10, 0, 0, 1].into());
    let mut b = net.add_node([10, 0, 0, 2].into());
    let l = b.listen(addr(2, 80)).unwrap();
    net.shape(addr(2, 80), to, from);
    let c = a.connect(addr(2, 80)).unwrap();
    assert!(events(&mut a).is_empty(), "connects take a step");
    net.advance(STEP);
    assert!(matches!(events(&mut a)[..], [IoEvent::Connected { conn }] if conn == c));
    let evs = events(&mut b);
    let [IoEvent::Accepted {
        listener,
        conn: s,
        peer,
    }] = evs[..]
    else {
        panic!("{evs:?}")
    };
    assert_eq!((listener, peer), (l, a.local_addr(c)));
    (net, a, c, b, s)
}

fn recv_all(d: &mut SimDriver) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    let mut eof = false;
    for ev in events(d) {
        match ev {
            IoEvent::Recv { data, .. } => bytes.extend_from_slice(&data),
            IoEvent::RecvClosed { err: None, .. } => eof = true,
            _ => {}
        }
    }
    (bytes, eof)
}

#[test]
fn bytes_flow_in_order_then_eof_and_a_refused_connect_fails() {
    let (net, mut a, c, mut b, s) = pair(PipeConfig::default(), PipeConfig::default());
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    a.send_buf(c).unwrap().extend_from_slice(&data);
    assert_eq!(a.queued_len(c), 50_000);
    a.run_once(None).unwrap();
    a.close_when_flushed(c);
    assert!(a.send_buf(c).is_none(), "closing: no more bytes");
    net.advance(STEP);
    assert!(
        events(&mut a).is_empty(),
        "a closed connection tells its owner nothing"
    );
    let (got, eof) = recv_all(&mut b);
    assert!(got == data, "{} bytes, not the 50000 sent", got.len());
    assert!(eof, "the FIN follows the last byte");
    // Answering a peer that is gone fails.
    b.send_buf(s).unwrap().extend_from_slice(b"late");
    b.run_once(None).unwrap();
    net.advance(STEP);
    assert!(matches!(
        events(&mut b)[..],
        [IoEvent::SendFailed { conn, ref err }] if conn == s && err.kind() == io::ErrorKind::ConnectionReset
    ));

    let x = a.connect(addr(9, 9)).unwrap();
    net.advance(STEP);
    assert!(matches!(
        events(&mut a)[..],
        [IoEvent::ConnectFailed { conn, ref err }] if conn == x && err.kind() == io::ErrorKind::ConnectionRefused
    ));
    assert!(a.send_buf(x).is_none());
    assert!(a.socket_snapshot(x).is_err());
}

#[test]
fn a_shaped_direction_holds_its_rate_and_reports_its_queues() {
    let shaped = PipeConfig {
        rate: Some(1_250_000), // 10 Mbit/s
        rtt: Duration::from_millis(40),
        cwnd: Some(40),
        sndbuf: 1 << 20,
        ..PipeConfig::default()
    };
    let (net, mut a, c, mut b, s) = pair(PipeConfig::default(), shaped);
    b.send_buf(s).unwrap().extend_from_slice(&vec![1; 2 << 20]);
    b.run_once(None).unwrap();
    let mut got = 0;
    let mut send_done = false;
    for _ in 0..1000 {
        net.advance(STEP);
        got += recv_all(&mut a).0.len();
        send_done |= events(&mut b)
            .iter()
            .any(|e| matches!(e, IoEvent::SendDone { .. }));
    }
    // 1 s at 1.25 MB/s, less the first half round trip.
    assert!((1_200_000..=1_250_000).contains(&got), "{got}");
    assert!(
        send_done,
        "the kernel took the whole 2 MiB once 1 MiB had left"
    );
    let snap = b.socket_snapshot(s).unwrap();
    let tcp = snap.tcp.unwrap();
    assert_eq!((tcp.cwnd, tcp.rtt_us), (40, 40_000));
    assert!(tcp.unacked >= 30, "a full window in flight: {tcp:?}");
    let notsent = u64::from(snap.notsent.unwrap());
    assert!(notsent > 0, "{snap:?}");
    assert!(got as u64 + notsent < 2 << 20);
    // The other direction is unshaped.
    a.send_buf(c).unwrap().extend_from_slice(b"ack");
    a.run_once(None).unwrap();
    net.advance(STEP);
    assert_eq!(recv_all(&mut b).0, b"ack");
}

#[test]
fn paused_reads_stop_the_sender_at_the_receive_buffer() {
    let small = PipeConfig {
        rcvbuf: 64 << 10,
        sndbuf: 64 << 10,
        ..PipeConfig::default()
    };
    let (net, mut a, c, mut b, s) = pair(small, PipeConfig::default());
    b.set_recv_paused(s, true);
    a.send_buf(c).unwrap().extend_from_slice(&vec![3; 1 << 20]);
    a.run_once(None).unwrap();
    for _ in 0..10 {
        net.advance(STEP);
    }
    assert!(recv_all(&mut b).0.is_empty());
    // The receiver holds 64 KiB, the sender's kernel 64 KiB; the rest waits in the SEND.
    assert_eq!(a.queued_len(c), (1 << 20) - (128 << 10));
    b.set_recv_paused(s, false);
    let mut got = 0;
    for _ in 0..100 {
        net.advance(STEP);
        got += recv_all(&mut b).0.len();
    }
    assert_eq!(got, 1 << 20);
    assert_eq!(a.queued_len(c), 0);
}
