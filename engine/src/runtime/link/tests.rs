//! TLS links tested against each other and against rustls' own (buffered) connections, in
//! memory: handshake, records in place and across buffers, the exporter, KeyUpdate, alerts,
//! tampering, and the kTLS crypto info of real sessions.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::crypto::aws_lc_rs::cipher_suite as cs;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConnection, ServerConnection, SupportedCipherSuite, SupportedProtocolVersion};

use super::exporter::{sha256, Capture};
use super::*;
use crate::sys::ktls::{CryptoInfo, KtlsSupport, KtlsVersion};
use crate::HasKind;

const TOR_LABEL: &[u8] = b"EXPORTER FOR TOR TLS CLIENT BINDING AUTH0003";

fn no_ktls() -> KtlsSupport {
    KtlsSupport::Unavailable("test".into())
}

fn ctx(versions: &[&'static SupportedProtocolVersion]) -> Arc<TlsContext> {
    Arc::new(TlsContext::with_versions(versions, KtlsSupport::Unavailable("test".into())).unwrap())
}

/// What one side's `open` handed over.
#[derive(Debug, Default)]
struct Got {
    secured: usize,
    data: Vec<u8>,
}

fn open(link: &mut Link, bytes: &mut [u8], got: &mut Got) -> Result<(), LinkError> {
    link.open(bytes, |d| match d {
        Delivery::Secured => {
            assert!(got.data.is_empty(), "Secured comes before any data");
            got.secured += 1
        }
        Delivery::Data { bytes, .. } => got.data.extend_from_slice(bytes),
    })
}

/// Moves every handshake byte between two links until neither has more.
fn handshake(client: &mut Link, server: &mut Link) -> (Got, Got) {
    let (mut gc, mut gs) = (Got::default(), Got::default());
    for _ in 0..10 {
        let mut to_server = Vec::new();
        client.write_out(&mut to_server);
        open(server, &mut to_server, &mut gs).unwrap();
        let mut to_client = Vec::new();
        server.write_out(&mut to_client);
        open(client, &mut to_client, &mut gc).unwrap();
        if client.is_open() && server.is_open() && !client.wants_write() && !server.wants_write() {
            break;
        }
    }
    assert!(client.is_open() && server.is_open());
    (gc, gs)
}

fn pair(versions: &[&'static SupportedProtocolVersion]) -> (Arc<TlsContext>, Link, Link) {
    let ctx = ctx(versions);
    let links = Links::Tls(ctx.clone());
    let mut client = Link::connect(&links).unwrap();
    let mut server = Link::accept(&links).unwrap();
    assert!(client.wants_write(), "the ClientHello is ready at once");
    let (gc, gs) = handshake(&mut client, &mut server);
    assert_eq!((gc.secured, gs.secured), (1, 1));
    (ctx, client, server)
}

/// `n` fixed cells with recognisable bytes.
fn cells(n: usize) -> Vec<u8> {
    (0..n * crate::wire::CELL_LEN)
        .map(|i| (i * 7 + i / 514) as u8)
        .collect()
}

/// Writes `plain` cell by cell through the link as the scheduler does, then seals.
fn send_cells(link: &mut Link, plain: &[u8]) -> Vec<u8> {
    let mut send = Vec::new();
    for cell in plain.chunks(crate::wire::CELL_LEN) {
        link.cell_buf(&mut send).extend_from_slice(cell);
    }
    assert!(link.has_staged());
    link.seal(&mut send).unwrap();
    assert!(!link.has_staged());
    send
}

#[test]
fn tls13_and_tls12_links_carry_cells_and_bind_the_certificate() {
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let (ctx, mut client, mut server) = pair(versions);
        assert_eq!(client.kind(), LinkKind::TlsUser);
        assert_eq!(
            client.auth().peer_cert_sha256(),
            Some(ctx.own_cert_sha256())
        );
        assert_eq!(ctx.own_cert_sha256(), sha256(ctx.own_cert_der()));
        assert_eq!(
            client.auth().own_cert_sha256(),
            None,
            "no client certificates"
        );
        assert_eq!(server.auth().own_cert_sha256(), Some(ctx.own_cert_sha256()));
        assert_eq!(server.auth().peer_cert_sha256(), None);
        let exported = client
            .auth()
            .export_keying_material(TOR_LABEL, b"ed25519 id");
        if versions[0] == &TLS13 {
            assert!(exported.is_some());
            assert_eq!(
                exported,
                server
                    .auth()
                    .export_keying_material(TOR_LABEL, b"ed25519 id")
            );
            assert_ne!(
                exported,
                server.auth().export_keying_material(TOR_LABEL, b"other id"),
                "the context matters"
            );
        } else {
            assert_eq!(exported, None, "no exporter for TLS 1.2");
        }
        // 100 cells: 31 per record, so 4 records; then the other way.
        let plain = cells(100);
        let mut wire = send_cells(&mut client, &plain);
        assert_eq!(client.record_stats().records_out, 4);
        assert!(!wire.windows(64).any(|w| plain.windows(64).any(|p| p == w)));
        let mut got = Got::default();
        open(&mut server, &mut wire, &mut got).unwrap();
        assert_eq!(got.data, plain);
        assert_eq!(server.record_stats().records_in, 4);
        assert_eq!(
            server.record_stats().records_staged,
            0,
            "whole records in one buffer"
        );
        let mut back = send_cells(&mut server, &plain[..514 * 3]);
        let mut got = Got::default();
        open(&mut client, &mut back, &mut got).unwrap();
        assert_eq!(got.data, plain[..514 * 3]);
    }
}

#[test]
fn plaintext_is_delivered_where_it_was_decrypted() {
    let (_, mut client, mut server) = pair(&[&TLS13]);
    let mut wire = send_cells(&mut client, &cells(2));
    let range = wire.as_ptr_range();
    let mut runs = Vec::new();
    server
        .open(&mut wire, |d| {
            if let Delivery::Data { bytes, .. } = d {
                runs.push(bytes.as_ptr_range());
            }
        })
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert!(
        range.contains(&runs[0].start) && runs[0].end <= range.end,
        "in place"
    );
}

#[test]
fn records_cut_across_receive_buffers_are_finished_in_staging() {
    let (_, mut client, mut server) = pair(&[&TLS13]);
    let plain = cells(200);
    let wire = send_cells(&mut client, &plain);
    for chunk in [1, 5, 6, 700, 4096, 16 * 1024, 16 * 1024 + 22] {
        let (_, mut client, mut server2) = pair(&[&TLS13]);
        let wire = send_cells(&mut client, &plain);
        let mut got = Got::default();
        for piece in wire.chunks(chunk) {
            let mut piece = piece.to_vec();
            open(&mut server2, &mut piece, &mut got).unwrap();
        }
        assert_eq!(got.data, plain, "chunks of {chunk}");
        let stats = server2.record_stats();
        assert_eq!(stats.records_in, 7);
        assert!(stats.records_staged >= 1 && stats.records_staged <= stats.records_in);
    }
    // Whole: none staged.
    let mut wire = wire;
    let mut got = Got::default();
    open(&mut server, &mut wire, &mut got).unwrap();
    assert_eq!(
        (server.record_stats().records_staged, got.data.len()),
        (0, plain.len())
    );
}

#[test]
fn a_large_burst_of_control_cells_is_split_into_records() {
    let (_, mut client, mut server) = pair(&[&TLS12]);
    let burst = cells(70);
    let mut send = Vec::new();
    client.cell_buf(&mut send).extend_from_slice(&burst); // one take_ctrl of 70 cells
    client.seal(&mut send).unwrap();
    assert_eq!(client.record_stats().records_out, 3);
    assert_eq!(client.record_stats().records_split, 1);
    let mut got = Got::default();
    open(&mut server, &mut send, &mut got).unwrap();
    assert_eq!(got.data, burst);
}

#[test]
fn a_grant_written_within_the_room_fills_records_without_splitting() {
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let (_, mut client, mut server) = pair(versions);
        let grant = cells(100);
        let mut send = Vec::new();
        let mut rooms = Vec::new();
        let mut rest = &grant[..];
        while !rest.is_empty() {
            // As the scheduler's write_cells: at most `room` cells per step.
            let (out, room) = client.cell_buf_room(&mut send);
            rooms.push(room);
            let n = (room as usize * crate::wire::CELL_LEN).min(rest.len());
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        client.seal(&mut send).unwrap();
        // 16,384 bytes of plaintext hold 31 cells of 514.
        assert_eq!(rooms, [31, 31, 31, 31]);
        let stats = client.record_stats();
        assert_eq!((stats.records_out, stats.records_split), (4, 0));
        let mut got = Got::default();
        open(&mut server, &mut send, &mut got).unwrap();
        assert_eq!(got.data, grant);
    }
}

#[test]
fn a_plain_link_and_an_unfinished_handshake_bound_no_cells() {
    let mut send = Vec::new();
    assert_eq!(Link::Plain.cell_buf_room(&mut send).1, u32::MAX);
    let ctx = ctx(&[&TLS13]);
    let mut client = Link::connect(&Links::Tls(ctx)).unwrap();
    // Cells written before the handshake wait in the link's own buffer, not in records.
    let (out, room) = client.cell_buf_room(&mut send);
    out.extend_from_slice(b"early");
    assert_eq!(room, u32::MAX);
    assert!(send.is_empty());
}

#[test]
fn cells_written_before_the_handshake_go_out_after_it() {
    let ctx = ctx(&[&TLS13]);
    let links = Links::Tls(ctx);
    let mut client = Link::connect(&links).unwrap();
    let mut server = Link::accept(&links).unwrap();
    let mut send = Vec::new();
    client.cell_buf(&mut send).extend_from_slice(b"early");
    assert!(send.is_empty() && !client.has_staged());
    client.seal(&mut send).unwrap();
    handshake(&mut client, &mut server);
    assert!(client.has_staged());
    client.seal(&mut send).unwrap();
    let mut got = Got::default();
    open(&mut server, &mut send, &mut got).unwrap();
    assert_eq!(got.data, b"early");
}

#[test]
fn a_tampered_record_fails_the_link_for_good() {
    let (_, mut client, mut server) = pair(&[&TLS13]);
    let mut wire = send_cells(&mut client, &cells(3));
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let mut got = Got::default();
    assert!(matches!(
        open(&mut server, &mut wire, &mut got),
        Err(LinkError::Decrypt)
    ));
    assert!(got.data.is_empty());
    let mut more = send_cells(&mut client, &cells(1));
    assert!(matches!(
        open(&mut server, &mut more, &mut got),
        Err(LinkError::Closed)
    ));
}

#[test]
fn a_responder_names_what_it_got_instead_of_tls() {
    let links = Links::Tls(ctx(&[&TLS13]));
    // A plaintext VERSIONS cell (circuit id 0, command 7, versions 4 and 5).
    let mut versions = [0u8, 0, 7, 0, 4, 0, 4, 0, 5];
    let mut server = Link::accept(&links).unwrap();
    let err = open(&mut server, &mut versions, &mut Got::default()).unwrap_err();
    assert!(matches!(err, LinkError::PlaintextCell), "{err}");
    assert_eq!(crate::HasKind::kind(&err), crate::ErrorKind::PeerProtocol);
    // An application-data record header before any handshake: refused at once.
    let mut early = [0x17u8, 3, 3, 0, 0x40, 0xde, 0xad];
    let mut server = Link::accept(&links).unwrap();
    let err = open(&mut server, &mut early, &mut Got::default()).unwrap_err();
    assert!(matches!(err, LinkError::NotTls(0x17)), "{err}");
    let mut garbage = *b"GET / HTTP/1.1\r\n";
    let mut server = Link::accept(&links).unwrap();
    let err = open(&mut server, &mut garbage, &mut Got::default()).unwrap_err();
    assert!(matches!(err, LinkError::NotTls(b'G')), "{err}");
    // A record header that looks like TLS, then garbage: rustls refuses it.
    let mut fake = [22u8, 3, 1, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    let mut server = Link::accept(&links).unwrap();
    let err = open(&mut server, &mut fake, &mut Got::default()).unwrap_err();
    assert!(matches!(err, LinkError::Tls(_)), "{err}");
}

/// Our link on one side, rustls' buffered connection on the other.
struct Peer {
    conn: rustls::Connection,
}

impl Peer {
    fn feed(&mut self, bytes: &[u8]) {
        let mut rd = bytes;
        while !rd.is_empty() {
            self.conn.read_tls(&mut rd).unwrap();
            self.conn.process_new_packets().unwrap();
        }
    }

    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut out).unwrap();
        }
        out
    }

    fn read_plain(&mut self) -> Vec<u8> {
        let mut plain = Vec::new();
        let _ = self.conn.reader().read_to_end(&mut plain);
        plain
    }
}

/// Handshakes our client link with a rustls server (or our server with a rustls client).
fn with_rustls_peer(ctx: &Arc<TlsContext>, we_are_client: bool) -> (Link, Peer, Arc<Capture>) {
    let capture = Arc::new(Capture::default());
    let (ccfg, scfg) = ctx.configs(capture.clone());
    let links = Links::Tls(ctx.clone());
    let (mut ours, conn): (Link, rustls::Connection) = if we_are_client {
        let conn = ServerConnection::new(Arc::new(scfg)).unwrap();
        (Link::connect(&links).unwrap(), conn.into())
    } else {
        let name = rustls::pki_types::ServerName::try_from("kistrel.invalid").unwrap();
        let conn = ClientConnection::new(Arc::new(ccfg), name).unwrap();
        (Link::accept(&links).unwrap(), conn.into())
    };
    let mut peer = Peer { conn };
    for _ in 0..10 {
        let mut mine = Vec::new();
        ours.write_out(&mut mine);
        peer.feed(&mine);
        let mut theirs = peer.drain();
        open(&mut ours, &mut theirs, &mut Got::default()).unwrap();
        if ours.is_open() && !peer.conn.is_handshaking() && !ours.wants_write() {
            break;
        }
    }
    assert!(ours.is_open());
    (ours, peer, capture)
}

fn suites() -> Vec<(SupportedCipherSuite, &'static SupportedProtocolVersion)> {
    vec![
        (cs::TLS13_AES_128_GCM_SHA256, &TLS13),
        (cs::TLS13_AES_256_GCM_SHA384, &TLS13),
        (cs::TLS13_CHACHA20_POLY1305_SHA256, &TLS13),
        (cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, &TLS12),
        (cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, &TLS12),
        (cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, &TLS12),
    ]
}

#[test]
fn the_record_layer_talks_to_rustls_in_every_suite_both_ways() {
    for (suite, version) in suites() {
        let ctx = Arc::new(TlsContext::with_suites(vec![suite], &[version], no_ktls()).unwrap());
        for we_are_client in [true, false] {
            let (mut ours, mut peer, capture) = with_rustls_peer(&ctx, we_are_client);
            let name = format!("{:?} client={we_are_client}", suite.suite());
            let plain = cells(40);
            let wire = send_cells(&mut ours, &plain);
            peer.feed(&wire);
            assert_eq!(peer.read_plain(), plain, "{name}: ours -> rustls");
            peer.conn.writer().write_all(&plain[..3000]).unwrap();
            let mut theirs = peer.drain();
            let mut got = Got::default();
            open(&mut ours, &mut theirs, &mut got).unwrap();
            assert_eq!(got.data, plain[..3000], "{name}: rustls -> ours");
            // The exporter: ours against rustls' own, on the same session.
            if version == &TLS13 {
                let want = peer
                    .conn
                    .export_keying_material([0; 32], TOR_LABEL, Some(b"context"))
                    .unwrap();
                let ours_x = ours.auth().export_keying_material(TOR_LABEL, b"context");
                assert_eq!(ours_x, Some(want), "{name}: exporter");
                let theirs_x = capture
                    .take_exporter()
                    .and_then(|e| e.export(TOR_LABEL, b"context"));
                assert_eq!(
                    theirs_x,
                    Some(want),
                    "{name}: exporter from the peer's key log"
                );
            }
        }
    }
}

#[test]
fn a_key_update_from_the_peer_is_followed_and_answered() {
    let ctx = ctx(&[&TLS13]);
    let (mut ours, mut peer, _) = with_rustls_peer(&ctx, true);
    peer.conn.refresh_traffic_keys().unwrap(); // KeyUpdate(update_requested)
    peer.conn.writer().write_all(b"after update").unwrap();
    let mut theirs = peer.drain();
    let mut got = Got::default();
    open(&mut ours, &mut theirs, &mut got).unwrap();
    assert_eq!(got.data, b"after update");
    assert!(ours.wants_write(), "our KeyUpdate answer");
    let mut answer = Vec::new();
    ours.write_out(&mut answer);
    answer.extend(send_cells(&mut ours, &cells(2)));
    peer.feed(&answer);
    assert_eq!(peer.read_plain(), cells(2), "sent under our new keys");
}

#[test]
fn close_notify_ends_the_link() {
    let ctx = ctx(&[&TLS13]);
    let (mut ours, mut peer, _) = with_rustls_peer(&ctx, false);
    peer.conn.send_close_notify();
    let mut theirs = peer.drain();
    let err = open(&mut ours, &mut theirs, &mut Got::default()).unwrap_err();
    assert!(matches!(err, LinkError::PeerClosed));
}

#[test]
fn ktls_crypto_info_comes_from_the_sessions_secrets() {
    for (suite, version) in suites() {
        let ctx = TlsContext::with_suites(vec![suite], &[version], no_ktls()).unwrap();
        let capture = Arc::new(Capture::default());
        let (mut ccfg, mut scfg) = ctx.configs(capture);
        ccfg.enable_secret_extraction = true;
        scfg.enable_secret_extraction = true;
        let name = rustls::pki_types::ServerName::try_from("kistrel.invalid").unwrap();
        let mut c = Peer {
            conn: ClientConnection::new(Arc::new(ccfg), name).unwrap().into(),
        };
        let mut s = Peer {
            conn: ServerConnection::new(Arc::new(scfg)).unwrap().into(),
        };
        while c.conn.is_handshaking() || s.conn.is_handshaking() {
            let b = c.drain();
            s.feed(&b);
            let b = s.drain();
            c.feed(&b);
        }
        let (rustls::Connection::Client(c), rustls::Connection::Server(s)) = (c.conn, s.conn)
        else {
            unreachable!()
        };
        let secrets = c.dangerous_extract_secrets().unwrap();
        let server = s.dangerous_extract_secrets().unwrap();
        let kv = if version == &TLS13 {
            KtlsVersion::Tls13
        } else {
            KtlsVersion::Tls12
        };
        let (seq, tx) = &secrets.tx;
        let info = CryptoInfo::new(kv, tx, *seq);
        let gcm = !matches!(
            tx,
            rustls::ConnectionTrafficSecrets::Chacha20Poly1305 { .. }
        );
        if kv == KtlsVersion::Tls12 && gcm {
            assert!(info.is_none(), "TLS 1.2 AES-GCM sends from user space");
        } else {
            assert_layout(info.unwrap().as_bytes(), tx, *seq, &format!("{suite:?} TX"));
        }
        // RX takes every suite, with the receive secrets: the peer's send secrets.
        let (rx_seq, rx) = &secrets.rx;
        let info = CryptoInfo::new_rx(kv, rx, *rx_seq).unwrap();
        assert_layout(info.as_bytes(), rx, *rx_seq, &format!("{suite:?} RX"));
        let peer_tx = CryptoInfo::new_rx(kv, &server.tx.1, server.tx.0).unwrap();
        assert_eq!(info.as_bytes(), peer_tx.as_bytes(), "{suite:?}");
        if kv == KtlsVersion::Tls12 {
            assert_eq!(
                (*seq, *rx_seq),
                (1, 1),
                "each Finished used the first sequence number: {suite:?}"
            );
        }
    }
}

/// `b` is the kernel's crypto info of `secrets` at `seq`: version, cipher | iv (after the
/// salt) | key | salt | rec_seq (big-endian).
fn assert_layout(b: &[u8], secrets: &rustls::ConnectionTrafficSecrets, seq: u64, what: &str) {
    let (key, iv, salt_len) = match secrets {
        rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (key.as_ref(), iv.as_ref(), 4),
        rustls::ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (key.as_ref(), iv.as_ref(), 0)
        }
        _ => unreachable!(),
    };
    let iv_len = 12 - salt_len;
    assert_eq!(b[4..4 + iv_len], iv[salt_len..], "{what}");
    assert_eq!(b[4 + iv_len..4 + iv_len + key.len()], *key, "{what}");
    let salt_at = 4 + iv_len + key.len();
    assert_eq!(b[salt_at..salt_at + salt_len], iv[..salt_len], "{what}");
    assert_eq!(b[salt_at + salt_len..], seq.to_be_bytes(), "{what}");
    assert_eq!(b.len(), salt_at + salt_len + 8, "{what}");
}

/// What the kernel would do with a `CryptoInfo` (TLS_TX): parse it as the kernel's struct and
/// seal records with it (the user-space record layer stands in for the kernel's).
fn kernel_sealer(info: &CryptoInfo, tls13: bool) -> record::Direction {
    let b = info.as_bytes();
    let cipher = u16::from_ne_bytes([b[2], b[3]]);
    let (iv_len, key_len, salt_len) = match cipher {
        51 => (8, 16, 4),
        52 => (8, 32, 4),
        54 => (12, 32, 0),
        other => panic!("cipher {other}"),
    };
    let iv = &b[4..4 + iv_len];
    let key = &b[4 + iv_len..4 + iv_len + key_len];
    let salt = &b[4 + iv_len + key_len..4 + iv_len + key_len + salt_len];
    let seq = u64::from_be_bytes(b[b.len() - 8..].try_into().unwrap());
    let mut nonce = [0u8; 12];
    nonce[..salt_len].copy_from_slice(salt);
    nonce[salt_len..].copy_from_slice(iv);
    let framing = match (tls13, cipher) {
        (true, _) => record::Framing::Tls13,
        (false, 54) => record::Framing::Tls12Chacha,
        (false, _) => record::Framing::Tls12Gcm,
    };
    record::Direction::from_parts(cipher == 54, key, nonce, seq, framing)
}

#[test]
fn after_the_switch_to_ktls_the_kernel_seals_what_the_peer_opens() {
    for (suite, version) in suites() {
        let ktls = KtlsSupport::Available;
        let ctx = Arc::new(TlsContext::with_suites(vec![suite], &[version], ktls).unwrap());
        let links = Links::Tls(ctx);
        let mut client = Link::connect(&links).unwrap();
        let mut server = Link::accept(&links).unwrap();
        handshake(&mut client, &mut server);
        let tls12_gcm = version == &TLS12 && !format!("{:?}", suite.suite()).contains("CHACHA");
        if tls12_gcm {
            assert!(
                !client.ktls_pending(),
                "TLS 1.2 AES-GCM stays in user space"
            );
            continue;
        }
        assert!(client.ktls_pending(), "{suite:?}");
        // Some records in user space first: the kernel goes on from their sequence number.
        let mut wire = send_cells(&mut client, &cells(40));
        let info = client
            .ktls_tx_info()
            .expect("nothing staged: the switch can happen");
        client.ktls_tx_done(true);
        assert_eq!(client.kind(), LinkKind::Ktls);
        assert!(!client.ktls_pending());
        let mut send = Vec::new();
        let plain = cells(5);
        for cell in plain.chunks(crate::wire::CELL_LEN) {
            client.cell_buf(&mut send).extend_from_slice(cell);
        }
        assert!(!client.has_staged());
        client.seal(&mut send).unwrap();
        assert_eq!(send, plain, "plaintext for the kernel");
        let mut kernel = kernel_sealer(&info, version == &TLS13);
        let start = wire.len();
        wire.resize(start + record::HEADER_LEN, 0);
        wire.extend_from_slice(&send);
        kernel
            .seal(&mut wire, start, record::ContentType::APPLICATION_DATA)
            .unwrap();
        let mut got = Got::default();
        open(&mut server, &mut wire, &mut got).unwrap();
        let mut want = cells(40);
        want.extend_from_slice(&plain);
        assert_eq!(got.data, want, "{suite:?}");
    }
}

#[test]
fn after_the_switch_to_ktls_rx_the_kernel_opens_what_the_peer_sealed() {
    for (suite, version) in suites() {
        let ctx = Arc::new(
            TlsContext::with_suites(vec![suite], &[version], KtlsSupport::Available).unwrap(),
        );
        let links = Links::Tls(ctx);
        let mut client = Link::connect(&links).unwrap();
        let mut server = Link::accept(&links).unwrap();
        handshake(&mut client, &mut server);
        // Every suite, TLS 1.2 AES-GCM included: the kernel reads that nonce from the record.
        assert!(client.ktls_rx_pending(), "{suite:?}");
        // Some records opened in user space first; half a record staged: not a boundary.
        let mut first = send_cells(&mut server, &cells(40));
        let mut got = Got::default();
        let half = first.len() / 2;
        open(&mut client, &mut first[..half], &mut got).unwrap();
        assert!(
            client.ktls_rx_info().is_none(),
            "a partial record is staged"
        );
        open(&mut client, &mut first[half..], &mut got).unwrap();
        assert_eq!(got.data, cells(40));
        let info = client.ktls_rx_info().expect("on a record boundary");
        client.ktls_rx_done(true);
        assert!(!client.ktls_rx_pending());
        // The kernel (the record layer, keyed from the crypto info as the kernel parses it)
        // opens the peer's next records; the link passes their plaintext through.
        let mut wire = send_cells(&mut server, &cells(5));
        let mut kernel = kernel_sealer(&info, version == &TLS13);
        let mut plain = Vec::new();
        let mut rest = &mut wire[..];
        while let Some(len) = record::record_len(rest).unwrap() {
            let (rec, tail) = std::mem::take(&mut rest).split_at_mut(len);
            let (typ, range) = kernel.open(rec).expect("the kernel's keys open it");
            assert_eq!(typ, record::ContentType::APPLICATION_DATA);
            plain.extend_from_slice(&rec[range]);
            rest = tail;
        }
        let mut got = Got::default();
        open(&mut client, &mut plain, &mut got).unwrap();
        assert_eq!(got.data, cells(5), "{suite:?}");
    }
}

#[test]
fn records_the_kernel_opens_are_data_tickets_alerts_or_a_fatal_key_update() {
    let rx_link = || {
        let ctx = Arc::new(TlsContext::with_versions(&[&TLS13], KtlsSupport::Available).unwrap());
        let links = Links::Tls(ctx);
        let mut client = Link::connect(&links).unwrap();
        let mut server = Link::accept(&links).unwrap();
        handshake(&mut client, &mut server);
        // Before the switch the kernel hands the link nothing.
        let early = client.open_kernel_record(23, b"x", |_| {});
        assert!(matches!(early, Err(LinkError::UnexpectedRecord(23))));
        let mut client = Link::connect(&links).unwrap();
        handshake(&mut client, &mut Link::accept(&links).unwrap());
        assert!(client.ktls_rx_pending());
        client.ktls_rx_done(true);
        client
    };
    let kernel = |link: &mut Link, typ: u8, body: &[u8], got: &mut Got| {
        link.open_kernel_record(typ, body, |d| {
            if let Delivery::Data { bytes, .. } = d {
                got.data.extend_from_slice(bytes);
            }
        })
    };
    let mut link = rx_link();
    let mut got = Got::default();
    // Application data read with its type; a NewSessionTicket (type 4) is ignored.
    kernel(&mut link, 23, b"cells", &mut got).unwrap();
    kernel(&mut link, 22, &[4, 0, 0, 3, 1, 2, 3], &mut got).unwrap();
    kernel(&mut link, 23, b"more", &mut got).unwrap();
    assert_eq!(got.data, b"cellsmore");
    // A KeyUpdate: the kernel holds the receive keys, so the link closes.
    let err = kernel(&mut link, 22, &[24, 0, 0, 1, 0], &mut got).unwrap_err();
    assert!(matches!(err, LinkError::KeyUpdateOnKtlsRx), "{err:?}");
    assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
    assert!(matches!(
        kernel(&mut link, 23, b"after", &mut got),
        Err(LinkError::Closed)
    ));
    assert_eq!(got.data, b"cellsmore", "nothing after the failure");
    // Alerts: close_notify ends the link, a fatal alert fails it; unknown types fail it.
    for (typ, body, want) in [
        (21, &[1u8, 0][..], "the peer closed the TLS session"),
        (21, &[2, 40][..], "TLS alert 40 from the peer"),
        (20, &[1][..], "TLS record of type 20 after the handshake"),
        (
            22,
            &[2, 0, 0, 0][..],
            "TLS handshake message 2 after the handshake",
        ),
    ] {
        let err = kernel(&mut rx_link(), typ, body, &mut Got::default()).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}
