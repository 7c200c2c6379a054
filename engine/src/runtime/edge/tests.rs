//! `Edges` without sockets or a relay: a fake stream port records every call.

use std::net::SocketAddr;

use rand::SeedableRng;

use super::*;
use crate::client::HopSpec;
use crate::relay::RelayConfig;
use crate::wire::StreamId;

const NOW: Instant = Instant::from_millis(5);

/// Stream handles of real circuits (minted by a relay; nothing is sent anywhere).
fn streams(n: u16) -> Vec<StreamHandle> {
    let mut relay = Relay::new(
        RelayConfig::default(),
        rand_chacha::ChaCha12Rng::seed_from_u64(3),
    );
    let hop = HopSpec {
        id: [1; 20],
        ed_id: [3; 32],
        ntor_key: [2; 32],
        addr: ([10, 0, 0, 1], 9001).into(),
    };
    let circ = relay.build_circuit(NOW, vec![hop]).unwrap();
    (1..=n)
        .map(|i| StreamHandle {
            circ,
            id: StreamId::new(i).unwrap(),
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
enum Call {
    Data(StreamHandle, usize),
    Close(StreamHandle, EndReason),
    Connected(StreamHandle, SocketAddr),
    Failed(StreamHandle, EndReason),
    Discard(StreamHandle),
}

/// Takes at most `take` bytes per call; keeps what it took.
struct FakePort {
    take: usize,
    taken: Vec<u8>,
    calls: Vec<Call>,
}

impl FakePort {
    fn new(take: usize) -> Self {
        FakePort {
            take,
            taken: Vec::new(),
            calls: Vec::new(),
        }
    }
}

impl StreamPort for FakePort {
    fn stream_data(&mut self, _: Instant, stream: StreamHandle, data: &[u8]) -> usize {
        let n = data.len().min(self.take);
        self.taken.extend_from_slice(&data[..n]);
        self.calls.push(Call::Data(stream, data.len()));
        n
    }
    fn stream_close(&mut self, _: Instant, stream: StreamHandle, reason: EndReason) {
        self.calls.push(Call::Close(stream, reason));
    }
    fn stream_connected(&mut self, _: Instant, stream: StreamHandle, addr: SocketAddr) {
        self.calls.push(Call::Connected(stream, addr));
    }
    fn stream_failed(&mut self, _: Instant, stream: StreamHandle, reason: EndReason) {
        self.calls.push(Call::Failed(stream, reason));
    }
    fn stream_discard(&mut self, _: Instant, stream: StreamHandle) {
        self.calls.push(Call::Discard(stream));
    }
}

fn actions(e: &mut Edges<u32>) -> Vec<EdgeAction<u32>> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn exit_edge_keeps_what_the_stream_cannot_take_and_ends_after_eof() {
    let [s] = streams(1)[..] else { unreachable!() };
    let target: SocketAddr = ([192, 0, 2, 7], 80).into();
    let mut e = Edges::default();
    let mut port = FakePort::new(100);
    e.add_exit(7, s, target);
    e.handle_connected(NOW, 7, &mut port);
    assert_eq!(port.calls, vec![Call::Connected(s, target)]);

    // The windows take 100 of 300 bytes: 200 are kept, nothing paused yet.
    let first = pattern(300, 1);
    e.handle_recv(NOW, 7, &first, &mut port);
    assert_eq!(port.calls[1], Call::Data(s, 300));
    assert!(actions(&mut e).is_empty());
    // While bytes are kept, new ones queue behind them without being offered.
    let second = pattern(EDGE_PENDING_HIGH_WATER, 2);
    e.handle_recv(NOW, 7, &second, &mut port);
    assert_eq!(port.calls.len(), 2);
    assert_eq!(
        actions(&mut e),
        vec![EdgeAction::PauseRecv {
            conn: 7,
            paused: true
        }],
        "the high water kept: reads pause, once"
    );
    e.handle_recv(NOW, 7, b"tail", &mut port);
    assert!(actions(&mut e).is_empty());

    // EOF with bytes still kept: the stream stays until they are taken.
    e.handle_eof(NOW, 7, &mut port);
    assert!(actions(&mut e).is_empty());
    assert_eq!(e.stream_of(7), Some(s));

    // The windows open: everything is taken, in order, reads resume, the stream ends.
    port.take = usize::MAX;
    e.handle_stream_ready(NOW, s, &mut port);
    let mut all = first.clone();
    all.extend_from_slice(&second);
    all.extend_from_slice(b"tail");
    assert_eq!(port.taken, all);
    assert_eq!(port.calls.last(), Some(&Call::Close(s, EndReason::DONE)));
    assert_eq!(
        actions(&mut e),
        vec![
            EdgeAction::PauseRecv {
                conn: 7,
                paused: false
            },
            EdgeAction::Forgotten { conn: 7 },
            EdgeAction::CloseWhenFlushed { conn: 7 },
        ]
    );
    assert_eq!(e.stream_of(7), None);
    let mut readable = Vec::new();
    e.take_readable(&mut readable);
    assert_eq!(readable, vec![7]);
    assert!(!e.has_readable());
}

#[test]
fn kept_bytes_are_offered_in_order_across_the_rings_wrap_point() {
    let [s] = streams(1)[..] else { unreachable!() };
    let mut e = Edges::default();
    let mut port = FakePort::new(0);
    e.add_exit(7, s, ([192, 0, 2, 7], 80).into());
    e.handle_connected(NOW, 7, &mut port);
    let mut sent = Vec::new();
    // Keep bytes, take part of them, keep more (the ring wraps), take again: what the
    // stream gets is the socket's byte order, whatever the ring's layout.
    for (round, take) in [(0u8, 700), (1, 333), (2, 1), (3, 5000)] {
        let chunk = pattern(900, round);
        port.take = 0;
        e.handle_recv(NOW, 7, &chunk, &mut port);
        sent.extend_from_slice(&chunk);
        port.take = take;
        e.handle_stream_ready(NOW, s, &mut port);
        assert_eq!(port.taken[..], sent[..port.taken.len()], "round {round}");
    }
    port.take = usize::MAX;
    e.handle_stream_ready(NOW, s, &mut port);
    assert_eq!(port.taken, sent);
}

#[test]
fn socks_client_is_answered_and_its_early_bytes_follow_the_reply() {
    let [s] = streams(1)[..] else { unreachable!() };
    let mut e = Edges::default();
    let mut port = FakePort::new(usize::MAX);
    e.add_socks(3);
    e.handle_recv(NOW, 3, &[5, 1, 0], &mut port);
    assert_eq!(
        actions(&mut e),
        vec![EdgeAction::Send {
            conn: 3,
            bytes: vec![5, 0]
        }]
    );
    let mut req = vec![5, 1, 0, 1, 10, 0, 0, 1, 0, 80];
    req.extend_from_slice(b"early");
    e.handle_recv(NOW, 3, &req, &mut port);
    assert_eq!(
        actions(&mut e),
        vec![EdgeAction::Request {
            conn: 3,
            isolation: None,
            host: "10.0.0.1".into(),
            port: 80
        }]
    );
    assert!(port.calls.is_empty(), "no stream yet");

    e.bind_stream(3, s);
    e.handle_socks_connected(NOW, s, &mut port);
    assert_eq!(
        actions(&mut e),
        vec![EdgeAction::Send {
            conn: 3,
            bytes: vec![5, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        }]
    );
    assert_eq!(port.taken, b"early");
    e.handle_recv(NOW, 3, b"more", &mut port);
    assert_eq!(port.taken, b"earlymore");
    // Bytes for the client: delivered by the worker when the connection can take them.
    e.handle_send_done(3);
    assert!(e.has_readable());
}

#[test]
fn a_waiting_socks_client_gets_the_end_reason_of_its_stream() {
    let [s] = streams(1)[..] else { unreachable!() };
    let mut e = Edges::default();
    let mut port = FakePort::new(usize::MAX);
    e.add_socks(4);
    e.handle_recv(
        NOW,
        4,
        &[5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 1, 1, 187],
        &mut port,
    );
    let _ = actions(&mut e);
    e.bind_stream(4, s);
    e.handle_stream_ended(NOW, s, EndReason::EXITPOLICY, &mut port);
    assert_eq!(
        port.calls,
        vec![Call::Discard(s)],
        "the ended stream is freed"
    );
    assert_eq!(
        actions(&mut e),
        vec![
            // REP 2: connection not allowed by ruleset.
            EdgeAction::Send {
                conn: 4,
                bytes: vec![5, 2, 0, 1, 0, 0, 0, 0, 0, 0]
            },
            EdgeAction::Forgotten { conn: 4 },
            EdgeAction::CloseWhenFlushed { conn: 4 },
        ]
    );
    // The stream is forgotten: a late event for it finds nothing.
    e.handle_stream_ended(NOW, s, EndReason::DONE, &mut port);
    e.handle_stream_ready(NOW, s, &mut port);
    assert!(actions(&mut e).is_empty());
    assert!(!e.has_readable());
}

#[test]
fn bad_socks_broken_and_unknown_connections_are_handled_cases() {
    let [s, t] = streams(2)[..] else {
        unreachable!()
    };
    let mut e = Edges::default();
    let mut port = FakePort::new(usize::MAX);
    // A SOCKS4 client gets no SOCKS5 reply: forgotten and closed.
    e.add_socks(1);
    e.handle_recv(NOW, 1, &[4, 1, 0, 80, 10, 0, 0, 1, 0], &mut port);
    assert_eq!(
        actions(&mut e),
        vec![
            EdgeAction::Forgotten { conn: 1 },
            EdgeAction::CloseWhenFlushed { conn: 1 }
        ]
    );
    // Connections the edges do not know: no call, no panic; EOF and breakage still close.
    e.handle_recv(NOW, 99, b"x", &mut port);
    e.handle_connected(NOW, 99, &mut port);
    e.handle_connect_failed(NOW, 98, &mut port);
    assert_eq!(actions(&mut e), vec![EdgeAction::Forgotten { conn: 98 }]);
    e.handle_eof(NOW, 99, &mut port);
    assert_eq!(
        actions(&mut e),
        vec![
            EdgeAction::Forgotten { conn: 99 },
            EdgeAction::Close { conn: 99 }
        ]
    );
    assert!(port.calls.is_empty());

    // An exit target that refuses, and one that breaks after connecting.
    let addr: SocketAddr = ([192, 0, 2, 1], 443).into();
    e.add_exit(5, s, addr);
    e.handle_connect_failed(NOW, 5, &mut port);
    e.add_exit(6, t, addr);
    e.handle_broken(NOW, 6, &mut port);
    assert_eq!(
        port.calls,
        vec![
            Call::Failed(s, EndReason::CONNECTREFUSED),
            Call::Close(t, EndReason::CONNRESET)
        ]
    );
    assert_eq!(
        actions(&mut e),
        vec![
            EdgeAction::Forgotten { conn: 5 },
            EdgeAction::Forgotten { conn: 6 },
            EdgeAction::Close { conn: 6 }
        ]
    );
    // A stream that ended and was drained: close once flushed.
    e.add_exit(8, s, addr);
    e.handle_stream_drained(8);
    assert_eq!(
        actions(&mut e),
        vec![
            EdgeAction::Forgotten { conn: 8 },
            EdgeAction::CloseWhenFlushed { conn: 8 }
        ]
    );
    // An EOF before any stream (a SOCKS client that hung up mid-handshake).
    e.add_socks(9);
    e.handle_eof(NOW, 9, &mut port);
    assert_eq!(
        actions(&mut e),
        vec![
            EdgeAction::Forgotten { conn: 9 },
            EdgeAction::Close { conn: 9 }
        ]
    );
}
