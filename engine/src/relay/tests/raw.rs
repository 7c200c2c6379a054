//! A hand-driven peer speaking raw cells to one `Relay`, for behaviour a well-behaved kistrel
//! client never produces: window violations, forged SENDMEs, RELAY_EARLY floods, bad link
//! handshakes.

use rand::SeedableRng;
use rand_chacha::{ChaCha12Rng, ChaCha8Rng};

use crate::crypto::fast;
use crate::crypto::relay_crypto::ClientLayer;
use crate::exit::ExitPolicy;
use crate::harness::transmit;
use crate::relay::{
    ChanId, CircuitError, CreateError, Event, ExtendError, FlowError, ForwardError, LinkError,
    PlainLinkAuth, Rejection, Relay, RelayConfig, StreamHandle,
};
use crate::time::Instant;
use crate::wire::{
    emit_relay_cell, Begin, Cell, CellDecoder, ChanCell, ChanCmd, CreateFast, CreatedFast, Destroy,
    DestroyReason, EndReason, RelayCmd, Sendme, StreamId, VarCell, Versions, CELL_BODY_LEN,
    CELL_LEN, RELAY_DATA_LEN, RELAY_HEADER_LEN,
};

const CIRC: u32 = 0x8000_0001;

struct RawPeer {
    relay: Relay,
    chan: ChanId,
    decoder: CellDecoder,
    rng: ChaCha8Rng,
    layer: Option<ClientLayer>,
    now: Instant,
    /// The circuit id our relay cells go to.
    circ: u32,
}

impl RawPeer {
    /// An exit relay for 127.0.0.0/8 and an open channel from us to it.
    fn connect() -> Self {
        Self::connect_with(|_| {})
    }

    fn connect_with(tune: impl FnOnce(&mut RelayConfig)) -> Self {
        let keys = crate::harness::relay_keys(99);
        let mut cfg = RelayConfig {
            keys: Some(keys),
            exit_policy: Some(
                "accept 127.0.0.0/8:*"
                    .parse::<ExitPolicy>()
                    .expect("policy"),
            ),
            ..RelayConfig::default()
        };
        tune(&mut cfg);
        let mut relay = Relay::new(cfg, ChaCha12Rng::seed_from_u64(1));
        relay.set_wall_clock(crate::harness::epoch());
        let now = Instant::ZERO;
        let chan = relay.accept_channel(now, "10.1.1.1:4000".parse().expect("addr"));
        let mut p = RawPeer {
            relay,
            chan,
            decoder: CellDecoder::new(),
            rng: ChaCha8Rng::seed_from_u64(2),
            layer: None,
            now,
            circ: CIRC,
        };
        let hello = crate::harness::initiator_hello();
        p.send_bytes(&hello);
        let got = p.recv();
        assert!(
            matches!(&got[0], ChanCell::Var(v) if v.cmd == ChanCmd::VERSIONS),
            "{got:?}"
        );
        let cmds: Vec<ChanCmd> = got.iter().map(ChanCell::cmd).collect();
        assert_eq!(
            cmds,
            [
                ChanCmd::VERSIONS,
                ChanCmd::CERTS,
                ChanCmd::AUTH_CHALLENGE,
                ChanCmd::NETINFO
            ]
        );
        p
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        let now = self.now;
        self.relay
            .handle_recv(now, self.chan, bytes, &PlainLinkAuth);
    }

    fn send_cell(&mut self, cell: &Cell) {
        let mut b = Vec::new();
        cell.append_to(&mut b);
        self.send_bytes(&b);
    }

    /// Everything the relay has for us, decoded.
    fn recv(&mut self) -> Vec<ChanCell> {
        let mut out = Vec::new();
        let now = self.now;
        transmit(&mut self.relay, now, self.chan, &mut out, usize::MAX);
        let mut cells = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let (used, cell) = self.decoder.decode(rest).expect("relay output decodes");
            rest = &rest[used..];
            cells.extend(cell);
        }
        cells
    }

    /// CREATE_FAST on circuit `CIRC`.
    fn create(&mut self) {
        self.create_on(CIRC);
    }

    /// CREATE_FAST on circuit `circ`; later relay cells of this peer go there.
    fn create_on(&mut self, circ: u32) {
        self.circ = circ;
        let (state, x) = fast::client_create(&mut self.rng);
        let mut cell = Cell::new(circ, ChanCmd::CREATE_FAST);
        CreateFast { x }.emit(&mut cell.body).expect("create_fast");
        self.send_cell(&cell);
        let got = self.recv();
        let reply = got
            .iter()
            .find_map(|c| match c {
                ChanCell::Fixed(c) if c.cmd == ChanCmd::CREATED_FAST && c.circ_id == circ => {
                    Some(c)
                }
                _ => None,
            })
            .expect("CREATED_FAST");
        let created = CreatedFast::parse(&reply.body).expect("created_fast");
        let mut y_kh = [0u8; 40];
        y_kh[..20].copy_from_slice(&created.y);
        y_kh[20..].copy_from_slice(&created.kh);
        let keys = state.finish(&y_kh).expect("handshake");
        self.layer = Some(ClientLayer::new(&keys));
    }

    fn relay_cell(&mut self, early: bool, cmd: RelayCmd, stream: u16, data: &[u8]) {
        let mut body = [0u8; CELL_BODY_LEN];
        emit_relay_cell(&mut body, cmd, StreamId::new(stream), data, &mut self.rng).expect("emit");
        self.layer
            .as_mut()
            .expect("created")
            .originate_forward(&mut body);
        let mut cell = Cell::new(
            self.circ,
            if early {
                ChanCmd::RELAY_EARLY
            } else {
                ChanCmd::RELAY
            },
        );
        cell.body = body;
        self.send_cell(&cell);
    }

    /// BEGIN to 127.0.0.1:80 on stream 1, and the runtime "connects" it.
    fn begin(&mut self) -> StreamHandle {
        let mut data = [0u8; RELAY_DATA_LEN];
        let n = Begin {
            host: "127.0.0.1",
            port: 80,
            flags: 0,
        }
        .emit(&mut data)
        .expect("begin");
        self.relay_cell(false, RelayCmd::BEGIN, 1, &data[..n]);
        let stream = match self.relay.poll_event() {
            Some(Event::ConnectStream {
                stream, port: 80, ..
            }) => stream,
            other => panic!("expected ConnectStream, got {other:?}"),
        };
        let now = self.now;
        self.relay
            .handle_stream_connected(now, stream, "127.0.0.1:80".parse().expect("addr"));
        stream
    }

    /// The circuit error the relay last closed a circuit for.
    fn rejected(&self) -> Option<CircuitError> {
        match self.relay.last_rejection() {
            Some(Rejection::Circuit(e)) => Some(e),
            _ => None,
        }
    }

    fn destroyed_with(&mut self) -> Option<DestroyReason> {
        self.recv().into_iter().find_map(|c| match c {
            ChanCell::Fixed(c) if c.cmd == ChanCmd::DESTROY && c.circ_id == CIRC => {
                Destroy::parse(&c.body).ok().map(|d| d.reason)
            }
            _ => None,
        })
    }
}

#[test]
fn stream_window_violation_closes_the_circuit() {
    let mut p = RawPeer::connect();
    p.create();
    let _stream = p.begin();
    // Nobody reads the stream at the exit, so no stream SENDME comes: cell 501 violates.
    for _ in 0..500 {
        p.relay_cell(false, RelayCmd::DATA, 1, &[0x55; RELAY_DATA_LEN]);
    }
    assert_eq!(p.relay.circuit_count(), 1);
    p.relay_cell(false, RelayCmd::DATA, 1, &[0x55; 10]);
    assert_eq!(p.destroyed_with(), Some(DestroyReason::PROTOCOL));
    assert_eq!(p.rejected(), Some(FlowError::StreamWindowExceeded.into()));
    assert_eq!(p.relay.circuit_count(), 0);
    assert_eq!(p.relay.stream_count(), 0);
    assert_eq!(p.relay.queued_bytes(), 0);
    assert_eq!(
        p.relay.channel_count(),
        1,
        "only the circuit closes, not the channel"
    );
}

#[test]
fn circuit_sendme_without_data_sent_closes_the_circuit() {
    let mut p = RawPeer::connect();
    p.create();
    let mut data = [0u8; RELAY_DATA_LEN];
    let n = Sendme {
        digest: Some([1; 20]),
    }
    .emit(&mut data)
    .expect("sendme");
    p.relay_cell(false, RelayCmd::SENDME, 0, &data[..n]);
    assert_eq!(p.destroyed_with(), Some(DestroyReason::PROTOCOL));
    assert_eq!(p.relay.circuit_count(), 0);
    assert_eq!(p.rejected(), Some(FlowError::UnexpectedSendme.into()));
}

#[test]
fn sendme_with_wrong_digest_closes_the_circuit() {
    let mut p = RawPeer::connect();
    p.create();
    let stream = p.begin();
    let now = p.now;
    // The exit sends 100 DATA cells to us, so it expects one authenticated SENDME back.
    let taken = p
        .relay
        .handle_stream_data(now, stream, &vec![9u8; 100 * RELAY_DATA_LEN]);
    assert_eq!(taken, 100 * RELAY_DATA_LEN);
    let _ = p.recv();
    let mut data = [0u8; RELAY_DATA_LEN];
    let n = Sendme {
        digest: Some([0xab; 20]),
    }
    .emit(&mut data)
    .expect("sendme");
    p.relay_cell(false, RelayCmd::SENDME, 0, &data[..n]);
    assert_eq!(p.destroyed_with(), Some(DestroyReason::PROTOCOL));
    assert_eq!(p.rejected(), Some(FlowError::SendmeDigestMismatch.into()));
}

#[test]
fn correct_sendme_reopens_the_package_window() {
    let mut p = RawPeer::connect();
    p.create();
    let stream = p.begin();
    let now = p.now;
    // 1000 cells is the circuit window, but the stream window (500) stops us first.
    let offered = vec![3u8; 600 * RELAY_DATA_LEN];
    let taken = p.relay.handle_stream_data(now, stream, &offered);
    assert_eq!(taken, 500 * RELAY_DATA_LEN);
    // Read the cells like a client would, checking the 100th digest.
    let cells = p.recv();
    let layer = p.layer.as_mut().expect("layer");
    let mut digest_after_100th = None;
    let mut data_cells = 0;
    for c in cells {
        let ChanCell::Fixed(mut c) = c else { continue };
        if c.cmd != ChanCmd::RELAY {
            continue;
        }
        assert!(
            layer.decrypt_backward(&mut c.body),
            "every cell is from our only hop"
        );
        if c.body[0] == RelayCmd::DATA.0 {
            data_cells += 1;
            if data_cells == 100 {
                digest_after_100th = Some(layer.last_backward_digest());
            }
        }
    }
    assert_eq!(data_cells, 500);
    let mut data = [0u8; RELAY_DATA_LEN];
    let n = Sendme {
        digest: digest_after_100th,
    }
    .emit(&mut data)
    .expect("sendme");
    p.relay_cell(false, RelayCmd::SENDME, 0, &data[..n]);
    assert_eq!(
        p.relay.circuit_count(),
        1,
        "a correct SENDME keeps the circuit"
    );
    // A stream SENDME (v0) reopens the stream window by 50 cells.
    p.relay_cell(false, RelayCmd::SENDME, 1, &[]);
    let more = p.relay.handle_stream_data(now, stream, &offered[taken..]);
    assert_eq!(more, 50 * RELAY_DATA_LEN);
}

#[test]
fn ninth_relay_early_closes_the_circuit() {
    let mut p = RawPeer::connect();
    p.create();
    for _ in 0..8 {
        p.relay_cell(true, RelayCmd::DROP, 0, &[]);
    }
    assert_eq!(p.relay.circuit_count(), 1);
    p.relay_cell(true, RelayCmd::DROP, 0, &[]);
    assert_eq!(p.destroyed_with(), Some(DestroyReason::PROTOCOL));
    assert_eq!(p.rejected(), Some(ForwardError::TooManyRelayEarly.into()));
}

#[test]
fn extend2_outside_relay_early_closes_the_circuit() {
    let mut p = RawPeer::connect();
    p.create();
    p.relay_cell(false, RelayCmd::EXTEND2, 0, &[0]);
    assert_eq!(p.destroyed_with(), Some(DestroyReason::PROTOCOL));
    assert_eq!(p.rejected(), Some(ExtendError::NotEarly.into()));
}

#[test]
fn relay_cells_for_unknown_circuits_are_dropped_without_closing() {
    let mut p = RawPeer::connect();
    p.create();
    let mut cell = Cell::new(0x8000_0777, ChanCmd::RELAY);
    cell.body[0] = RelayCmd::DATA.0;
    p.send_cell(&cell);
    assert_eq!(p.relay.channel_count(), 1);
    assert_eq!(p.relay.circuit_count(), 1);
}

#[test]
fn create_with_wrong_top_bit_is_refused() {
    let mut p = RawPeer::connect();
    let (_, x) = fast::client_create(&mut p.rng);
    // We opened the connection, so our ids must have the top bit set.
    let mut cell = Cell::new(0x0000_0005, ChanCmd::CREATE_FAST);
    CreateFast { x }.emit(&mut cell.body).expect("emit");
    p.send_cell(&cell);
    let got = p.recv();
    assert!(got
        .iter()
        .any(|c| matches!(c, ChanCell::Fixed(c) if c.cmd == ChanCmd::DESTROY && c.circ_id == 5)));
    assert_eq!(p.relay.circuit_count(), 0);
    assert_eq!(
        p.relay.last_rejection(),
        Some(Rejection::Create(CreateError::WrongTopBit))
    );
    assert_eq!(p.relay.channel_count(), 1, "only the CREATE is refused");
}

#[test]
fn destroy_from_the_client_frees_the_circuit() {
    let mut p = RawPeer::connect();
    p.create();
    let _ = p.begin();
    let mut cell = Cell::new(CIRC, ChanCmd::DESTROY);
    Destroy {
        reason: DestroyReason::REQUESTED,
    }
    .emit(&mut cell.body)
    .expect("emit");
    p.send_cell(&cell);
    assert_eq!(p.relay.circuit_count(), 0);
    assert_eq!(p.relay.stream_count(), 0);
    p.relay.check_invariants().expect("invariants");
}

/// Feeds `bytes` to a fresh inbound channel; the link error it was closed for, if it was.
fn handshake_rejection(bytes: Vec<u8>) -> Option<LinkError> {
    let mut relay = Relay::new(RelayConfig::default(), ChaCha12Rng::seed_from_u64(1));
    let chan = relay.accept_channel(Instant::ZERO, "10.1.1.1:1".parse().expect("addr"));
    relay.handle_recv(Instant::ZERO, chan, &bytes, &PlainLinkAuth);
    let closed = matches!(relay.poll_event(), Some(Event::CloseChannel { chan: c }) if c == chan);
    assert_eq!(closed, relay.channel_count() == 0);
    match relay.last_rejection() {
        Some(Rejection::Channel(e)) if closed => Some(e),
        _ => None,
    }
}

#[test]
fn bad_link_handshakes_close_the_channel() {
    // VERSIONS with no common version.
    let mut b = Vec::new();
    Versions {
        versions: vec![1, 2, 3],
    }
    .to_var_cell()
    .append_to(&mut b, 2);
    assert_eq!(handshake_rejection(b), Some(LinkError::NoCommonVersion));
    // A first cell that is not VERSIONS.
    let mut b = Vec::new();
    Cell::new(0, ChanCmd::NETINFO).append_to(&mut b);
    assert!(matches!(
        handshake_rejection(b),
        Some(LinkError::Undecodable(_))
    ));
    // A 65535-byte variable-length cell.
    let mut b = vec![0, 0, ChanCmd::VERSIONS.0, 0xff, 0xff];
    b.extend(std::iter::repeat_n(0, 100));
    assert!(matches!(
        handshake_rejection(b),
        Some(LinkError::Undecodable(_))
    ));
    // CREATE2 before NETINFO.
    let mut b = Vec::new();
    Versions { versions: vec![4] }
        .to_var_cell()
        .append_to(&mut b, 2);
    Cell::new(CIRC, ChanCmd::CREATE2).append_to(&mut b);
    assert_eq!(
        handshake_rejection(b),
        Some(LinkError::UnexpectedHandshakeCell {
            cmd: ChanCmd::CREATE2
        })
    );
    // A second VERSIONS (after the first, circuit ids are 4 bytes).
    let mut b = Vec::new();
    for circ_id_len in [2, 4] {
        Versions { versions: vec![4] }
            .to_var_cell()
            .append_to(&mut b, circ_id_len);
    }
    assert_eq!(handshake_rejection(b), Some(LinkError::DuplicateVersions));
    // A variable-length cell after the handshake.
    let mut p = RawPeer::connect();
    let mut b = Vec::new();
    VarCell {
        circ_id: 0,
        cmd: ChanCmd::CERTS,
        payload: vec![0; 8],
    }
    .append_to(&mut b, 4);
    p.send_bytes(&b);
    assert_eq!(p.relay.channel_count(), 0);
    assert_eq!(
        p.relay.last_rejection(),
        Some(Rejection::Channel(LinkError::VarCellOnOpenChannel {
            cmd: ChanCmd::CERTS
        }))
    );
}

#[test]
fn circuit_queue_over_its_cap_closes_the_circuit() {
    let mut p = RawPeer::connect_with(|c| c.max_circuit_queue_cells = 100);
    p.create();
    let stream = p.begin();
    let now = p.now;
    // We never read: everything the exit packages stays queued toward us.
    p.relay
        .handle_stream_data(now, stream, &vec![1u8; 150 * RELAY_DATA_LEN]);
    assert_eq!(p.relay.circuit_count(), 0);
    assert_eq!(p.relay.stats().circuits_rejected, 1);
    assert_eq!(p.relay.queued_bytes(), 0);
    assert_eq!(p.destroyed_with(), Some(DestroyReason::PROTOCOL));
    assert_eq!(p.rejected(), Some(ForwardError::QueueOverCap.into()));
    p.relay.check_invariants().expect("invariants");
}

#[test]
fn oom_handler_closes_the_oldest_circuits_until_below_90_percent() {
    let limit = 1 << 20;
    let mut p = RawPeer::connect_with(|c| c.max_mem_in_queues = limit);
    let mut streams = Vec::new();
    for i in 0..6u32 {
        p.create_on(0x8000_0100 + i);
        streams.push(p.begin());
    }
    let _ = p.recv(); // the last CONNECTED: nothing older than the data stays queued
                      // A stalled peer: each circuit's exit packages a full stream window (500 cells, 257 KB)
                      // toward us, one circuit after the other, and we read nothing.
    for (k, stream) in streams.iter().enumerate() {
        p.now = Instant::from_millis(k as u64 + 1);
        let now = p.now;
        p.relay
            .handle_stream_data(now, *stream, &vec![2u8; 500 * RELAY_DATA_LEN]);
        assert!(
            p.relay.queued_bytes() <= limit,
            "over the limit after circuit {k}"
        );
    }
    let stats = p.relay.stats();
    assert!(stats.oom_closed >= 2, "{stats:?}");
    assert_eq!(p.relay.circuit_count(), 6 - stats.oom_closed as usize);
    // The circuits holding the oldest cells went first, in order.
    let destroyed: Vec<u32> = p
        .recv()
        .into_iter()
        .filter_map(|c| match c {
            ChanCell::Fixed(c) if c.cmd == ChanCmd::DESTROY => Some(c.circ_id),
            _ => None,
        })
        .collect();
    let expected: Vec<u32> = (0..stats.oom_closed as u32)
        .map(|i| 0x8000_0100 + i)
        .collect();
    assert_eq!(destroyed, expected);
    p.relay.check_invariants().expect("invariants");
}

#[test]
fn unread_stream_bytes_are_queued_bytes_and_the_oom_handler_frees_them() {
    // Room for 300 cells' worth of data: MaxMemInQueues counts receive buffers too.
    let limit = 300 * RELAY_DATA_LEN;
    let mut p = RawPeer::connect_with(|c| c.max_mem_in_queues = limit);
    p.create();
    let first = p.begin();
    let _ = p.recv();
    // Nobody reads the stream at the exit: every DATA byte waits in its receive buffer.
    p.now = Instant::from_millis(1);
    for k in 1..=250 {
        p.relay_cell(false, RelayCmd::DATA, 1, &[0x55; RELAY_DATA_LEN]);
        assert_eq!(p.relay.stream_buffered_bytes(), k * RELAY_DATA_LEN);
        // Besides the data, only the circuit SENDMEs (one per 100 cells) wait for us.
        let sendmes = k / 100;
        assert_eq!(
            p.relay.queued_bytes(),
            k * RELAY_DATA_LEN + sendmes * CELL_LEN,
            "after {k} cells"
        );
    }
    p.relay.check_invariants().expect("invariants");
    // Reading takes bytes off the count.
    let mut buf = [0u8; 1000];
    assert_eq!(p.relay.stream_recv(p.now, first, &mut buf), Some(1000));
    assert_eq!(p.relay.stream_buffered_bytes(), 250 * RELAY_DATA_LEN - 1000);
    p.relay.check_invariants().expect("invariants");
    // A second circuit's stream, later: together they pass the limit, and the OOM handler
    // closes the circuit whose unread bytes are oldest.
    while p.relay.poll_event().is_some() {}
    p.create_on(CIRC + 1);
    let second = p.begin();
    let _ = p.recv();
    p.now = Instant::from_millis(2);
    let mut sent = 0;
    while p.relay.stats().oom_closed == 0 {
        assert!(sent < 100, "the OOM handler never ran");
        p.relay_cell(false, RelayCmd::DATA, 1, &[0x66; RELAY_DATA_LEN]);
        sent += 1;
    }
    assert_eq!(p.relay.stats().oom_closed, 1);
    assert_eq!(p.relay.circuit_count(), 1);
    assert!(p.relay.queued_bytes() <= limit);
    assert_eq!(p.relay.stream_buffered_bytes(), sent * RELAY_DATA_LEN);
    assert_eq!(p.relay.stream_pending(second), sent * RELAY_DATA_LEN);
    assert_eq!(p.relay.stream_state(first), None);
    let events: Vec<Event> = std::iter::from_fn(|| p.relay.poll_event()).collect();
    assert!(
        events.contains(&Event::StreamEnded {
            stream: first,
            reason: EndReason::DESTROY
        }),
        "{events:?}"
    );
    assert_eq!(p.destroyed_with(), Some(DestroyReason::RESOURCELIMIT));
    p.relay.check_invariants().expect("invariants");
}

impl RawPeer {
    /// The relay cells the exit sent back on our circuit, decrypted: (command, stream, data).
    fn relay_replies(&mut self) -> Vec<(RelayCmd, u16, Vec<u8>)> {
        let mut out = Vec::new();
        for cell in self.recv() {
            let ChanCell::Fixed(mut c) = cell else {
                continue;
            };
            if c.cmd != ChanCmd::RELAY || c.circ_id != self.circ {
                continue;
            }
            let layer = self.layer.as_mut().expect("created");
            assert!(layer.decrypt_backward(&mut c.body), "a cell from the exit");
            let view = crate::wire::RelayCellView::new_checked(&c.body[..]).expect("relay cell");
            let sid = view.stream_id().map_or(0, StreamId::get);
            out.push((view.cmd(), sid, view.data().to_vec()));
        }
        out
    }
}

fn resolve_data(host: &str) -> Vec<u8> {
    let mut data = [0u8; RELAY_DATA_LEN];
    let n = crate::wire::Resolve { host }
        .emit(&mut data)
        .expect("resolve");
    data[..n].to_vec()
}

#[test]
fn resolve_is_answered_with_resolved_and_makes_no_stream() {
    use crate::wire::{Resolved, ResolvedAnswer};
    let mut p = RawPeer::connect();
    p.create();
    // A literal is answered at once.
    p.relay_cell(false, RelayCmd::RESOLVE, 5, &resolve_data("127.0.0.9"));
    let replies = p.relay_replies();
    assert_eq!(replies.len(), 1);
    let (cmd, sid, data) = &replies[0];
    assert_eq!((*cmd, *sid), (RelayCmd::RESOLVED, 5));
    assert_eq!(
        Resolved::parse(data).unwrap().answers,
        [ResolvedAnswer::Addr {
            ip: "127.0.0.9".parse().unwrap(),
            ttl: 300
        }]
    );
    // A name goes to the runtime's resolver; its answer comes back as RESOLVED.
    p.relay_cell(false, RelayCmd::RESOLVE, 6, &resolve_data("example.test"));
    let stream = match p.relay.poll_event() {
        Some(Event::ResolveStream { stream, host }) if host == "example.test" => stream,
        other => panic!("expected ResolveStream, got {other:?}"),
    };
    assert_eq!(p.relay.stream_count(), 1, "the id is held while resolving");
    let now = p.now;
    assert!(p
        .relay
        .handle_resolved(now, stream, Some("10.9.8.7".parse().unwrap())));
    let replies = p.relay_replies();
    assert_eq!(replies[0].0, RelayCmd::RESOLVED);
    assert_eq!(
        Resolved::parse(&replies[0].2).unwrap().answers[0],
        ResolvedAnswer::Addr {
            ip: "10.9.8.7".parse().unwrap(),
            ttl: 300
        }
    );
    assert_eq!(p.relay.stream_count(), 0, "no stream is made");
    // A failed lookup is a transient error; a second answer for the id is not ours.
    p.relay_cell(false, RelayCmd::RESOLVE, 7, &resolve_data("nowhere.test"));
    let Some(Event::ResolveStream { stream, .. }) = p.relay.poll_event() else {
        panic!("expected ResolveStream");
    };
    assert!(p.relay.handle_resolved(now, stream, None));
    assert!(!p.relay.handle_resolved(now, stream, None));
    let replies = p.relay_replies();
    assert_eq!(
        Resolved::parse(&replies[0].2).unwrap().answers,
        [ResolvedAnswer::Error {
            transient: true,
            ttl: 300
        }]
    );
    assert_eq!(p.relay.circuit_count(), 1);
    p.relay.check_invariants().unwrap();
}

#[test]
fn resolve_at_a_non_exit_and_begin_dir_get_end_with_their_reasons() {
    let mut p = RawPeer::connect_with(|cfg| cfg.exit_policy = None);
    p.create();
    p.relay_cell(false, RelayCmd::RESOLVE, 3, &resolve_data("example.test"));
    p.relay_cell(false, RelayCmd::BEGIN_DIR, 4, &[]);
    let replies = p.relay_replies();
    let ends: Vec<(u16, EndReason)> = replies
        .iter()
        .filter(|(cmd, ..)| *cmd == RelayCmd::END)
        .map(|(_, sid, data)| (*sid, crate::wire::End::parse(data).unwrap().reason))
        .collect();
    assert_eq!(
        ends,
        [(3, EndReason::EXITPOLICY), (4, EndReason::NOTDIRECTORY)]
    );
    assert_eq!(p.relay.circuit_count(), 1);
    assert_eq!(p.relay.stream_count(), 0);
}

#[test]
fn unknown_relay_commands_are_dropped_and_counted_not_fatal() {
    let mut p = RawPeer::connect();
    p.create();
    p.relay_cell(false, RelayCmd(200), 1, b"from the future");
    p.relay_cell(false, RelayCmd(42), 0, &[]);
    assert_eq!(p.relay.circuit_count(), 1, "the circuit stays");
    assert_eq!(p.relay.stats().unknown_relay_commands, 2);
    assert!(p.relay_replies().is_empty(), "nothing is answered");
    // The cells still counted toward the digest: the circuit keeps working.
    let stream = p.begin();
    assert_eq!(p.relay.stream_count(), 1);
    let _ = stream;
}

/// DATA cells are built in pool slots that held earlier cells: every byte of a new cell is
/// written (header, data, zero then random padding), so none of a slot's old bytes shows
/// through. Two identical runs, one with the free slots scribbled over before the new cells
/// take them, must put the same bytes on the wire.
#[test]
fn data_cells_in_reused_slots_carry_exactly_their_own_bytes() {
    fn run(scribble: bool) -> Vec<[u8; CELL_BODY_LEN]> {
        let mut p = RawPeer::connect();
        p.create();
        let stream = p.begin();
        let now = p.now;
        let old = vec![0xEE; 3 * RELAY_DATA_LEN];
        assert_eq!(p.relay.handle_stream_data(now, stream, &old), old.len());
        let replies = p.relay_replies();
        let data_cells = replies.iter().filter(|r| r.0 == RelayCmd::DATA).count();
        assert_eq!(data_cells, 3, "three full DATA cells (after CONNECTED)");
        if scribble {
            assert_eq!(p.relay.cells.scribble_free(0xA5), 4, "four free slots");
        }
        let chunks: [&[u8]; 3] = [b"hello", b"x", &[7u8; 100]];
        for chunk in chunks {
            assert_eq!(p.relay.handle_stream_data(now, stream, chunk), chunk.len());
        }
        let mut bodies = Vec::new();
        for cell in p.recv() {
            let ChanCell::Fixed(c) = cell else { continue };
            assert_eq!((c.cmd, c.circ_id), (ChanCmd::RELAY, CIRC));
            bodies.push(c.body);
        }
        let layer = p.layer.as_mut().expect("created");
        for (body, chunk) in bodies.iter().zip(chunks) {
            let mut plain = *body;
            assert!(layer.decrypt_backward(&mut plain), "sealed by the exit");
            let view = crate::wire::RelayCellView::new_checked(&plain[..]).expect("relay cell");
            assert_eq!(view.cmd(), RelayCmd::DATA);
            assert_eq!(view.stream_id().map(StreamId::get), Some(1));
            assert_eq!(view.data(), chunk);
            assert_eq!(
                plain[RELAY_HEADER_LEN + chunk.len()..][..4],
                [0; 4],
                "four zero bytes of padding"
            );
        }
        assert_eq!(bodies.len(), chunks.len());
        bodies
    }
    let (clean, scribbled) = (run(false), run(true));
    let differ = clean
        .iter()
        .zip(&scribbled)
        .enumerate()
        .find_map(|(i, (a, b))| {
            let j = a.iter().zip(b).position(|(x, y)| x != y)?;
            Some((i, j))
        });
    assert_eq!(
        differ, None,
        "(cell, byte) where the old slot bytes show through"
    );
}
