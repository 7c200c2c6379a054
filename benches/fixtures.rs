//! Inputs shared by the criterion bench (`micro.rs`) and the instruction-count bench
//! (`icount.rs`): every fixture is deterministic (fixed seeds, fixed secrets), so both benches
//! measure the same work and an instruction count only moves when the code does.
//!
//! Each `*_input` function does the setup (not measured); each `run_*` function is the measured
//! operation, with its result returned so nothing is optimised away.

// Each bench binary uses a different subset of the fixtures.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use kistrel_engine::crypto::ntor::{self, NtorKeypair};
use kistrel_engine::crypto::relay_crypto::{CipherCache, ClientLayer, RelayLayer, BODY_LEN};
use kistrel_engine::crypto::{KeyMaterial, RelayId, KEY_MATERIAL_LEN};
use kistrel_engine::harness::{transmit, App, LinkModel, Net, TargetKind, TARGET};
use kistrel_engine::relay::{ChanId, CircHandle, PlainLinkAuth, Relay};
use kistrel_engine::time::Instant;
use kistrel_engine::wire::{
    emit_relay_cell, Cell, CellDecoder, ChanCellRef, ChanCmd, Decoded, RelayCmd, StreamId,
    Versions, CELL_LEN, RELAY_DATA_LEN,
};

/// Cells per measured batch: a worker handles cells in batches of this order (docs/perf.md: one
/// syscall per 64 cells), and it amortises the fixed cost of one call.
pub const BATCH: usize = 64;

/// Bytes the 3-hop harness bench downloads through the in-memory network.
pub const NET_BYTES: u64 = 1 << 20;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn key_material(seed: u64) -> KeyMaterial {
    let mut bytes = [0u8; KEY_MATERIAL_LEN];
    rng(seed).fill_bytes(&mut bytes);
    KeyMaterial::from_bytes(&bytes)
}

/// `BATCH` RELAY cells with random bodies on circuit 0x8000_0001, as wire bytes.
fn relay_cell_bytes(seed: u64, circ_id: u32) -> Vec<u8> {
    let mut r = rng(seed);
    let mut out = Vec::with_capacity(BATCH * CELL_LEN);
    for _ in 0..BATCH {
        let mut cell = Cell::new(circ_id, ChanCmd::RELAY);
        r.fill_bytes(&mut cell.body);
        cell.append_to(&mut out);
    }
    out
}

// ----- wire ------------------------------------------------------------------------------

/// A decoder past the link handshake (VERSIONS read) and `BATCH` cells to decode.
pub struct DecodeInput {
    pub decoder: CellDecoder,
    pub bytes: Vec<u8>,
}

pub fn decode_input() -> DecodeInput {
    let mut decoder = CellDecoder::new();
    let mut versions = Vec::new();
    Versions {
        versions: vec![4, 5],
    }
    .to_var_cell()
    .append_to(&mut versions, 2);
    // The fixture itself is fixed; a failure here is a broken bench, not a measurement.
    let (used, cell) = decoder.decode(&versions).expect("VERSIONS decodes");
    assert!(used == versions.len() && cell.is_some());
    DecodeInput {
        decoder,
        bytes: relay_cell_bytes(1, 0x8000_0001),
    }
}

/// Decodes every cell of the batch as the relay does (viewed in place, `decode_ref`);
/// returns the sum of circuit ids (checked by the caller).
pub fn run_decode(input: &mut DecodeInput) -> u64 {
    let mut rest = &input.bytes[..];
    let mut sum = 0u64;
    while !rest.is_empty() {
        match input.decoder.decode_ref(rest) {
            Ok(Decoded::Cell {
                used,
                cell: ChanCellRef::Fixed(cell),
            }) => {
                sum += u64::from(cell.circ_id());
                rest = &rest[used..];
            }
            other => panic!("bench input must decode to fixed cells: {other:?}"),
        }
    }
    sum
}

/// `BATCH` cells to emit and an output buffer of the right size.
pub struct EncodeInput {
    pub cells: Vec<Cell>,
    pub out: Vec<[u8; CELL_LEN]>,
}

pub fn encode_input() -> EncodeInput {
    let mut r = rng(2);
    let cells = (0..BATCH)
        .map(|i| {
            let mut c = Cell::new(0x8000_0001 + i as u32, ChanCmd::RELAY);
            r.fill_bytes(&mut c.body);
            c
        })
        .collect();
    EncodeInput {
        cells,
        out: vec![[0; CELL_LEN]; BATCH],
    }
}

pub fn run_encode(input: &mut EncodeInput) -> u8 {
    for (cell, out) in input.cells.iter().zip(input.out.iter_mut()) {
        cell.emit(out);
    }
    input.out[BATCH - 1][4]
}

// ----- relay crypto ----------------------------------------------------------------------

/// A relay's layer for one hop and `BATCH` bodies passing through (not addressed to it).
pub struct HopInput {
    pub layer: RelayLayer,
    /// The worker's cipher cache, warm (as for a busy circuit).
    pub ciphers: CipherCache,
    pub bodies: Vec<[u8; BODY_LEN]>,
}

pub fn hop_forward_input() -> HopInput {
    let mut r = rng(3);
    let bodies = (0..BATCH)
        .map(|_| {
            let mut b = [0u8; BODY_LEN];
            r.fill_bytes(&mut b);
            b
        })
        .collect();
    let mut input = HopInput {
        layer: RelayLayer::new(&key_material(4)),
        ciphers: CipherCache::new(),
        bodies,
    };
    // One cell first: the measured ones find the layer's cipher in the cache.
    input
        .layer
        .decrypt_forward(&mut input.ciphers, &mut [0x11; BODY_LEN]);
    input
}

/// Removes one layer from every body; returns how many were recognized (0 expected: random
/// plaintexts almost never have `recognized == 0`, and never a matching digest).
pub fn run_hop_forward(input: &mut HopInput) -> usize {
    let mut recognized = 0;
    for body in &mut input.bodies {
        if input.layer.decrypt_forward(&mut input.ciphers, body) {
            recognized += 1;
        }
    }
    recognized
}

/// A relay's layer and `BATCH` DATA cells the client sealed for this very hop, in order (the
/// keystream and running digest go on across cells).
pub fn hop_recognize_input() -> HopInput {
    let keys = key_material(5);
    let mut client = ClientLayer::new(&keys);
    let mut r = rng(6);
    let data = [0x5a; RELAY_DATA_LEN];
    let mut bodies: Vec<_> = (0..=BATCH)
        .map(|_| {
            let mut b = [0u8; BODY_LEN];
            emit_relay_cell(&mut b, RelayCmd::DATA, StreamId::new(1), &data, &mut r)
                .expect("full DATA cell fits");
            client.originate_forward(&mut b);
            b
        })
        .collect();
    let mut input = HopInput {
        layer: RelayLayer::new(&keys),
        ciphers: CipherCache::new(),
        bodies: bodies.split_off(1),
    };
    // The first cell outside the measurement: the cipher is in the cache for the rest.
    let first = input
        .layer
        .decrypt_forward(&mut input.ciphers, &mut bodies[0]);
    assert!(first, "the first sealed cell is recognized");
    input
}

/// Decrypts and recognizes every body; returns how many were recognized (all of them).
pub fn run_hop_recognize(input: &mut HopInput) -> usize {
    run_hop_forward(input)
}

/// The client's three hop layers and `BATCH` plaintext DATA bodies for the third hop.
pub struct ClientInput {
    pub hops: [ClientLayer; 3],
    pub bodies: Vec<[u8; BODY_LEN]>,
}

pub fn client_input() -> ClientInput {
    let mut r = rng(7);
    let data = [0xa5; RELAY_DATA_LEN];
    let bodies = (0..BATCH)
        .map(|_| {
            let mut b = [0u8; BODY_LEN];
            emit_relay_cell(&mut b, RelayCmd::DATA, StreamId::new(1), &data, &mut r)
                .expect("full DATA cell fits");
            b
        })
        .collect();
    ClientInput {
        hops: [
            ClientLayer::new(&key_material(8)),
            ClientLayer::new(&key_material(9)),
            ClientLayer::new(&key_material(10)),
        ],
        bodies,
    }
}

/// Seals every body for hop 3, then adds the layers of hops 2 and 1 (tor-spec 5.5.2.1).
pub fn run_client_encrypt(input: &mut ClientInput) -> u8 {
    let [h1, h2, h3] = &mut input.hops;
    for b in &mut input.bodies {
        h3.originate_forward(b);
        h2.encrypt_forward(b);
        h1.encrypt_forward(b);
    }
    input.bodies[BATCH - 1][0]
}

// ----- ntor ------------------------------------------------------------------------------

/// A relay's identity and onion key, and the client's and server's ephemeral secrets.
pub struct NtorInput {
    pub id: RelayId,
    pub keys: NtorKeypair,
    pub x: [u8; 32],
    pub y: [u8; 32],
}

pub fn ntor_input() -> NtorInput {
    let mut r = rng(11);
    let mut id = [0u8; 20];
    r.fill_bytes(&mut id);
    let keys = NtorKeypair::generate(&mut r);
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    r.fill_bytes(&mut x);
    r.fill_bytes(&mut y);
    NtorInput { id, keys, x, y }
}

/// One whole ntor handshake: client CREATE2 data, server reply and keys, client check and
/// keys. Panics if the two sides disagree (a broken handshake is not a measurement).
pub fn run_ntor(input: &NtorInput) -> KeyMaterial {
    let (client, hdata) = ntor::client_create_with_secret(input.x, &input.id, &input.keys.public());
    let (reply, server_keys) =
        ntor::server_respond_with_secret(input.y, &input.id, &input.keys, &hdata)
            .expect("server accepts its own key");
    let client_keys = client.finish(&reply).expect("client accepts the reply");
    assert!(client_keys == server_keys, "ntor sides disagree");
    client_keys
}

// ----- relay state machine ---------------------------------------------------------------

/// A middle relay with one established circuit (client -> guard -> middle -> exit built in the
/// harness), taken out of the network, and `BATCH` forward RELAY cells as the guard would send
/// them on that circuit.
pub struct MiddleInput {
    pub relay: Relay,
    pub now: Instant,
    pub from_guard: ChanId,
    pub to_exit: ChanId,
    pub cells: Vec<u8>,
    pub out: Vec<u8>,
}

pub fn middle_input() -> MiddleInput {
    let mut net = Net::three_hop(21, LinkModel::default(), 3, TargetKind::Echo);
    let circ = net.build(0, &[1, 2, 3]);
    net.run_until(10_000, |n| n.is_built(0, circ));
    // The circuit id the guard uses toward the middle: read it off the wire when the client's
    // BEGIN passes the guard -> middle link (16 bytes echoed, then the stream ends).
    let seen = Rc::new(RefCell::new(Vec::<u8>::new()));
    let sink = Rc::clone(&seen);
    assert!(
        net.tamper(
            1,
            2,
            Box::new(move |b| sink.borrow_mut().extend_from_slice(b))
        ),
        "guard -> middle link exists"
    );
    let stream = net.open_stream(0, circ, TARGET, App::client(22, 16, 16));
    net.run_until(10_000, |n| n.apps[&(0, stream)].done());
    let circ_id = {
        let seen = seen.borrow();
        let first = seen
            .get(..CELL_LEN)
            .expect("a cell crossed guard -> middle");
        assert_eq!(
            first[4],
            ChanCmd::RELAY.0,
            "the first cell after build is RELAY"
        );
        u32::from_be_bytes([first[0], first[1], first[2], first[3]])
    };
    let from_guard = net.channel_between(2, 1).expect("middle-guard channel");
    let to_exit = net.channel_between(2, 3).expect("middle-exit channel");
    let now = net.now;
    let node = net.nodes.swap_remove(2);
    let mut input = MiddleInput {
        relay: node.relay,
        now,
        from_guard,
        to_exit,
        cells: relay_cell_bytes(23, circ_id),
        out: Vec::with_capacity(2 * BATCH * CELL_LEN),
    };
    // One batch first, so the measured ones find the circuit queue already grown.
    run_middle(&mut input);
    input
}

/// An exit relay with an open stream to a target, and 64 DATA cells' worth of bytes the
/// target "sent": the edge path that packages stream bytes into cells.
pub struct ExitInput {
    pub relay: Relay,
    pub now: Instant,
    pub stream: kistrel_engine::relay::StreamHandle,
    pub to_middle: ChanId,
    pub data: Vec<u8>,
    pub out: Vec<u8>,
}

pub fn exit_input() -> ExitInput {
    let mut net = Net::three_hop(
        24,
        LinkModel::default(),
        3,
        TargetKind::Sink { stall: false },
    );
    let circ = net.build(0, &[1, 2, 3]);
    net.run_until(10_000, |n| n.is_built(0, circ));
    let client = net.open_stream(0, circ, TARGET, App::client(25, 16, 0));
    net.run_until(10_000, |n| n.apps.keys().any(|(node, _)| *node == 3));
    net.run_until(10_000, |n| n.apps[&(0, client)].connected);
    let stream = net
        .apps
        .keys()
        .find_map(|&(node, s)| (node == 3).then_some(s))
        .expect("the exit's end of the stream");
    let to_middle = net.channel_between(3, 2).expect("exit-middle channel");
    let now = net.now;
    let node = net.nodes.swap_remove(3);
    let mut data = vec![0u8; BATCH * RELAY_DATA_LEN];
    rng(26).fill_bytes(&mut data);
    let mut input = ExitInput {
        relay: node.relay,
        now,
        stream,
        to_middle,
        data,
        out: Vec::with_capacity(2 * BATCH * CELL_LEN),
    };
    // One batch first, so the measured one finds the pool and queue grown (the stream window,
    // 500 cells, leaves room for both).
    run_exit(&mut input);
    input
}

/// Packages the batch's bytes into DATA cells at the exit (cell built, sealed, one AES layer,
/// queued) and drains the middle channel; returns the bytes transmitted (the whole batch).
pub fn run_exit(input: &mut ExitInput) -> usize {
    input.out.clear();
    let taken = input
        .relay
        .handle_stream_data(input.now, input.stream, &input.data);
    assert_eq!(taken, input.data.len(), "the windows take the whole batch");
    let n = transmit(
        &mut input.relay,
        input.now,
        input.to_middle,
        &mut input.out,
        usize::MAX,
    );
    assert_eq!(n, BATCH * CELL_LEN, "every cell packaged and sent");
    n
}

/// Feeds the batch to the middle relay (decode, one AES layer off, queue) and drains the exit
/// channel; returns the bytes transmitted (must be the whole batch).
pub fn run_middle(input: &mut MiddleInput) -> usize {
    input.out.clear();
    input
        .relay
        .handle_recv(input.now, input.from_guard, &input.cells, &PlainLinkAuth);
    let n = transmit(
        &mut input.relay,
        input.now,
        input.to_exit,
        &mut input.out,
        usize::MAX,
    );
    assert_eq!(n, BATCH * CELL_LEN, "every cell forwarded");
    n
}

/// A built 3-hop circuit in the in-memory harness, toward a target that sends
/// [`NET_BYTES`] bytes.
pub struct NetInput {
    pub net: Net,
    pub circ: CircHandle,
}

pub fn net_input() -> NetInput {
    let model = LinkModel {
        latency: Duration::from_millis(1),
        ..LinkModel::default()
    };
    let mut net = Net::three_hop(31, model, 3, TargetKind::Source(NET_BYTES));
    let circ = net.build(0, &[1, 2, 3]);
    net.run_until(10_000, |n| n.is_built(0, circ));
    NetInput { net, circ }
}

/// Downloads [`NET_BYTES`] from the exit's target to the client over the built circuit:
/// exit reads and seals, guard/middle forward, client removes three layers and checks.
pub fn run_net(input: &mut NetInput) -> u64 {
    let stream = input
        .net
        .open_stream(0, input.circ, TARGET, App::client(32, 0, NET_BYTES));
    input
        .net
        .run_until(1_000_000, |n| n.apps[&(0, stream)].done());
    let got = input.net.apps[&(0, stream)].received;
    assert_eq!(got, NET_BYTES, "whole download arrived");
    got
}

// ----- TLS records -----------------------------------------------------------------------

/// Two TLS links (TLS 1.3, AES-128-GCM as kistrel's responders pick) past their handshake,
/// `BATCH` cells to send from one to the other, and the send buffer (reused).
pub struct TlsInput {
    pub sender: kistrel_engine::runtime::Link,
    pub receiver: kistrel_engine::runtime::Link,
    pub cells: Vec<u8>,
    pub wire: Vec<u8>,
}

pub fn tls_input() -> TlsInput {
    use kistrel_engine::runtime::{KtlsSupport, Link, Links, TlsContext};
    let ctx = TlsContext::with_versions(
        &[&rustls::version::TLS13],
        KtlsSupport::Unavailable("bench".into()),
    )
    .expect("TLS context");
    let links = Links::Tls(std::sync::Arc::new(ctx));
    let mut sender = Link::connect(&links).expect("client link");
    let mut receiver = Link::accept(&links).expect("server link");
    for _ in 0..10 {
        let mut bytes = Vec::new();
        sender.write_out(&mut bytes);
        receiver.open(&mut bytes, |_| {}).expect("handshake");
        let mut bytes = Vec::new();
        receiver.write_out(&mut bytes);
        sender.open(&mut bytes, |_| {}).expect("handshake");
    }
    assert!(sender.is_open() && receiver.is_open(), "handshake done");
    TlsInput {
        sender,
        receiver,
        cells: relay_cell_bytes(21, 0x8000_0001),
        wire: Vec::with_capacity(2 * BATCH * CELL_LEN),
    }
}

/// One batch through TLS: each cell written into the send buffer as the scheduler writes it,
/// sealed into records at the end of the batch, then the records opened in place on the
/// other side; returns the plaintext bytes delivered.
pub fn run_tls_records(input: &mut TlsInput) -> usize {
    input.wire.clear();
    for cell in input.cells.chunks(CELL_LEN) {
        input
            .sender
            .cell_buf(&mut input.wire)
            .extend_from_slice(cell);
    }
    input.sender.seal(&mut input.wire).expect("seal");
    let mut delivered = 0;
    input
        .receiver
        .open(&mut input.wire, |d| {
            if let kistrel_engine::runtime::Delivery::Data { bytes, .. } = d {
                delivered += bytes.len();
            }
        })
        .expect("open");
    delivered
}
