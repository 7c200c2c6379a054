//! Bad signatures in the link handshake, over real sockets and TLS: a relay closes the one
//! link with a logged reason while a download through it finishes intact.
//!
//! ```text
//!   client A ── R1 ── R2 ── R3 ── http     (16 MiB, rate-limited: spans both failures)
//!   evil initiator ──TLS──> R1             CERTS + AUTHENTICATE with one signature bit flipped
//!   client B ── R1 ──TLS──> evil responder CERTS whose type-4 signature has one bit flipped
//! ```
//!
//! The evil initiator runs kistrel's own initiator handshake
//! (`kistrel_engine::harness::RelayInitiator`, fed the real TLS session's certificate and
//! exporter) and flips one bit of its AUTHENTICATE's signature; everything else in the cell
//! is right, so the only thing R1 can object to is the signature. The evil responder answers
//! with a real responder's first flight (`harness::responder_hello`) with one bit of its
//! Ed25519 signing certificate's signature flipped.
#![cfg(target_os = "linux")]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kistrel::keys::KeygenOptions;
use kistrel_base::control::HopSpec;
use kistrel_engine::harness::{responder_hello, RelayInitiator};
use kistrel_engine::relay::{LinkAuth, RelayKeys};
use kistrel_pathsel::Flag;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use support::relays::{keys, relay_info, Client, TestRelay};
use support::{fetch_at, serial, skip_without_tools, wait_for, Http, MIB};

const CERTS: u8 = 129;
const AUTHENTICATE: u8 = 131;
/// The Ed25519 identity -> signing-key certificate.
const ED_SIGNING_CERT: u8 = 4;

/// The payload ranges of the cells in `bytes` by command. `versions_first`: the first cell
/// is VERSIONS (2-byte circuit id); every other cell has a 4-byte one (link protocol 4+).
fn cells(bytes: &[u8], versions_first: bool) -> Vec<(u8, std::ops::Range<usize>)> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let id_len = if versions_first && at == 0 { 2 } else { 4 };
        let cmd = bytes[at + id_len];
        if cmd == 7 || cmd >= 128 {
            let len_at = at + id_len + 1;
            let len = u16::from_be_bytes([bytes[len_at], bytes[len_at + 1]]) as usize;
            found.push((cmd, len_at + 2..len_at + 2 + len));
            at = len_at + 2 + len;
        } else {
            found.push((cmd, at + id_len + 1..at + 514));
            at += 514;
        }
    }
    assert_eq!(at, bytes.len(), "whole cells");
    found
}

/// The payload range of the one `cmd` cell in `bytes`.
fn payload_of(bytes: &[u8], versions_first: bool, cmd: u8) -> std::ops::Range<usize> {
    let mut matching = cells(bytes, versions_first)
        .into_iter()
        .filter(|(c, _)| *c == cmd);
    let (_, range) = matching.next().expect("the cell is there");
    assert!(matching.next().is_none(), "one cell of command {cmd}");
    range
}

/// A responder's first flight with one bit of its type-4 certificate's signature (the
/// certificate's last 64 bytes) flipped.
fn with_bad_certs_signature(mut hello: Vec<u8>) -> Vec<u8> {
    let certs = payload_of(&hello, true, CERTS);
    let mut at = certs.start + 1;
    for _ in 0..hello[certs.start] {
        let (ty, len) = (
            hello[at],
            u16::from_be_bytes([hello[at + 1], hello[at + 2]]) as usize,
        );
        if ty == ED_SIGNING_CERT {
            hello[at + 3 + len - 1] ^= 0x01;
            return hello;
        }
        at += 3 + len;
    }
    panic!("no type-4 certificate in the responder's CERTS");
}

/// A test relay that is not a process: keys (its identities) and a listener.
struct EvilResponder {
    addr: SocketAddr,
    keys: RelayKeys,
    /// Connections on which the relay closed the link after our CERTS.
    closed_by_relay: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl EvilResponder {
    /// Answers every connection's VERSIONS with the bad CERTS, then waits for the close.
    fn start(seed: u64) -> EvilResponder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let keys = RelayKeys::generate(&mut ChaCha8Rng::seed_from_u64(seed), SystemTime::now())
            .expect("keys");
        let hello = with_bad_certs_signature(responder_hello(
            &keys,
            SystemTime::now(),
            Some(support::tls::own_cert_sha256()),
        ));
        let closed_by_relay = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (closed, stop2) = (closed_by_relay.clone(), stop.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(180);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        if serve_bad_certs(conn, &hello) {
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        EvilResponder {
            addr,
            keys,
            closed_by_relay,
            stop,
        }
    }

    fn info(&self) -> kistrel_pathsel::RelayInfo {
        relay_info(
            "Evil",
            self.addr,
            (
                self.keys.rsa_id(),
                self.keys.identity.ed_id(),
                self.keys.ntor.public(),
            ),
            &[],
        )
    }
}

impl Drop for EvilResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection of the evil responder: TLS, the relay's VERSIONS, our bad flight; then
/// whether the relay closed the link within 10 s.
fn serve_bad_certs(conn: TcpStream, hello: &[u8]) -> bool {
    conn.set_nonblocking(false).expect("blocking");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = support::tls::server_stream(conn);
    let mut buf = [0u8; 4096];
    // The relay's VERSIONS (the TLS handshake runs on this first read).
    if !matches!(tls.read(&mut buf), Ok(n) if n > 0) {
        return false;
    }
    if tls.write_all(hello).and_then(|()| tls.flush()).is_err() {
        return false;
    }
    until_closed(&mut tls)
}

/// Reads until the peer closes (true) or 10 s of silence pass (false).
fn until_closed(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            // A reset, or TCP's end without TLS close_notify: closed all the same.
            Err(_) => return true,
        }
    }
}

/// What the evil initiator's TLS session tells kistrel's handshake code.
struct ClientFacts<'a>(&'a rustls::ClientConnection);

impl LinkAuth for ClientFacts<'_> {
    fn peer_cert_sha256(&self) -> Option<[u8; 32]> {
        let cert = self.0.peer_certificates()?.first()?;
        Some(Sha256::digest(cert.as_ref()).into())
    }

    fn own_cert_sha256(&self) -> Option<[u8; 32]> {
        None
    }

    fn export_keying_material(&self, label: &[u8], context: &[u8]) -> Option<[u8; 32]> {
        self.0
            .export_keying_material([0u8; 32], label, Some(context))
            .ok()
    }
}

/// Connects to `relay` as a relay with its own identity, authenticates with a signature
/// bit flipped, and returns (our address, whether the relay closed the link within 10 s).
fn bad_authenticate(relay: &TestRelay) -> (SocketAddr, bool) {
    let keys =
        RelayKeys::generate(&mut ChaCha8Rng::seed_from_u64(77), SystemTime::now()).expect("keys");
    let target = HopSpec {
        id: relay.keys.rsa_id(),
        ed_id: relay.keys.ed_id(),
        ntor_key: relay.keys.ntor_public(),
        addr: relay.addr,
    };
    let (mut initiator, versions) =
        RelayInitiator::connect(&keys, SystemTime::now(), target).expect("initiator");
    let conn = TcpStream::connect(relay.addr).expect("connect to R1");
    let ours = conn.local_addr().expect("local addr");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = support::tls::client_stream(conn);
    tls.write_all(&versions).expect("VERSIONS");
    let mut buf = [0u8; 4096];
    let answer = loop {
        let n = tls.read(&mut buf).expect("R1's first flight");
        assert!(n > 0, "R1 closed before its first flight");
        let answer = initiator.answer(&buf[..n], &ClientFacts(&tls.conn));
        assert_eq!(initiator.rejection(), None, "R1's CERTS prove R1");
        if !answer.is_empty() {
            break answer;
        }
    };
    assert!(
        initiator.is_open(),
        "R1's NETINFO came with its first flight"
    );
    let mut answer = answer;
    let cmds: Vec<u8> = cells(&answer, false).iter().map(|(c, _)| *c).collect();
    assert_eq!(
        cmds,
        [CERTS, AUTHENTICATE, 8],
        "CERTS, AUTHENTICATE, NETINFO"
    );
    let auth = payload_of(&answer, false, AUTHENTICATE);
    // AUTH0003 ends with its 64-byte Ed25519 signature.
    answer[auth.end - 1] ^= 0x01;
    tls.write_all(&answer).expect("our answer");
    (ours, until_closed(&mut tls))
}

#[test]
fn bad_signatures_in_certs_and_authenticate_close_the_link_while_another_circuit_fetches() {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let r: Vec<TestRelay> = (1..=3)
        .map(|n| {
            TestRelay::start(
                dir,
                n,
                keys(200 + n as u64, &KeygenOptions::default()),
                n == 3,
            )
        })
        .collect();
    let (guard, middle, exit) = (&r[0], &r[1], &r[2]);
    let evil = EvilResponder::start(300);
    let a = Client::start(
        dir,
        "a",
        vec![
            guard.entry(&[Flag::Guard], None, None),
            middle.entry(&[], None, None),
            exit.entry(&[Flag::Exit], None, None),
        ],
    );
    // B's only middle is the evil responder.
    let b = Client::start(
        dir,
        "b",
        vec![
            guard.entry(&[Flag::Guard], None, None),
            evil.info(),
            exit.entry(&[Flag::Exit], None, None),
        ],
    );
    // A's download, rate-limited (8 s at least) so that it spans both failures.
    let http = Http::start(16 * MIB, 43);
    let (url, socks_a, out_a) = (http.url(), a.socks, dir.join("got-a"));
    let download = std::thread::spawn(move || fetch_at(socks_a, "a", &url, &out_a, Some("2M")));

    // 1. The bad AUTHENTICATE: R1 closes that link and says why, naming our address.
    let (ours, closed) = bad_authenticate(guard);
    assert!(closed, "R1 kept the link of a bad AUTHENTICATE open");
    let why = "AUTHENTICATE signature does not verify";
    assert!(
        wait_for(Duration::from_secs(10), || guard
            .log_text()
            .lines()
            .any(|l| l.contains(why) && l.contains(&ours.to_string()))),
        "R1 logged no reason naming {ours}:\n{}",
        guard.log_text()
    );

    // 2. The bad CERTS: every circuit of B fails at R1's extend to the evil responder.
    let why = "bad CERTS cell: certificate of type 4 has a bad signature";
    let evil_addr = evil.addr.to_string();
    let logged = || {
        guard
            .log_text()
            .lines()
            .any(|l| l.contains(why) && l.contains(&evil_addr))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    while !(logged() && evil.closed_by_relay.load(Ordering::Relaxed) > 0) {
        assert!(
            Instant::now() < deadline,
            "R1 did not refuse the evil responder's CERTS; R1 log:\n{}\nclient b log:\n{}",
            guard.log_text(),
            b.log_text()
        );
        let out = dir.join(format!("got-b{attempt}"));
        let ok = fetch_at(b.socks, &format!("b{attempt}"), &http.url(), &out, None).is_some();
        assert!(!ok, "no path of client b can work");
        attempt += 1;
    }
    assert!(
        !download.is_finished(),
        "both failures must happen during A's download"
    );

    let (sha, len) = download
        .join()
        .expect("download thread")
        .expect("client a's download through R1 finishes");
    assert_eq!((sha, len), (http.sha, 16 * MIB));
    // R1 never closed A's circuit: its client saw no failure.
    let a_log = a.log_text();
    assert!(!a_log.contains("circuit failed"), "{a_log}");
}
