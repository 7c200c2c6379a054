//! TLS on the links of a real `kistrel net`, both backends: every link is TLS (the relays'
//! metrics count TLS links and no plain one), and each TLS-level failure at a relay's OR
//! port closes that connection with a logged reason while a circuit through the same relay
//! keeps fetching: TLS garbage, a plaintext VERSIONS cell, a peer that closes in the middle
//! of the handshake, and a handshake that stalls (bounded by `ChannelHandshakeTimeout`).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{fetch_at, serial, skip_without_tools, wait_for, Http, Net, MIB};

/// The relay's handshake timeout in these tests.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// The first bytes a real TLS client sends (a rustls ClientHello).
fn client_hello() -> Vec<u8> {
    let ctx = kistrel_engine::runtime::TlsContext::new().expect("TLS context");
    let name = rustls::pki_types::ServerName::try_from("kistrel.invalid").expect("name");
    let mut conn = rustls::ClientConnection::new(ctx.client_config(), name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("ClientHello");
    assert_eq!(hello[0], 22, "a handshake record");
    hello
}

/// Sends `bytes` (then half-closes if `then_close`) and waits for the relay to close the
/// connection; returns how long that took, or `None` if it stayed open for `limit`.
fn closed_after(
    target: SocketAddr,
    bytes: &[u8],
    then_close: bool,
    limit: Duration,
) -> Option<Duration> {
    let mut s = TcpStream::connect(target).expect("connect to the OR port");
    s.set_read_timeout(Some(limit)).expect("timeout");
    let start = Instant::now();
    s.write_all(bytes).expect("write");
    if then_close {
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
    }
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            // A TLS alert or a ServerHello may come first; the close is what counts.
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// Waits (bounded) until `log` has `want` in more lines than `before`.
fn logged(log: &Path, want: &str, before: usize) -> bool {
    wait_for(Duration::from_secs(10), || count(log, want) > before)
}

fn count(log: &Path, want: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(want))
        .count()
}

/// `GET /metrics` of a node: its text.
fn metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("metrics port");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut page = String::new();
    s.read_to_string(&mut page).expect("page");
    page
}

/// The sum over workers of counter `name` on a metrics page.
fn counter(page: &str, name: &str) -> u64 {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn tls_failures_close_one_link_each(backend: &str) {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    let size = 16 * MIB;
    let http = Http::start(size, 91);
    let timeout = format!(
        "ChannelHandshakeTimeout={}ms",
        HANDSHAKE_TIMEOUT.as_millis()
    );
    let net = Net::start(backend, 3, &["--metrics", "-o", &timeout]);
    // The circuit that must keep working: through every relay, slowed so that it spans the
    // failures below.
    let (socks, url, out) = (net.socks, http.url(), net.dir.join("during"));
    let download = std::thread::spawn(move || fetch_at(socks, "tls", &url, &out, Some("4M")));
    let target = net.relays[1];
    let log = net.dir.join("relay2.log");
    let hello = Arc::new(client_hello());
    let quick = Duration::from_secs(10);

    // 1. TLS garbage: a handshake record of random bytes. rustls refuses it.
    let mut garbage = vec![22, 3, 1, 0, 64];
    garbage.extend((0..64u8).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    let before = count(&log, "TLS handshake:");
    assert!(
        closed_after(target, &garbage, false, quick).is_some(),
        "garbage: still open"
    );
    assert!(
        logged(&log, "TLS handshake:", before),
        "garbage: no reason logged"
    );

    // 2. A plaintext VERSIONS cell (versions 4 and 5) to a TLS port.
    let before = count(&log, "plaintext Tor cell");
    let versions = [0u8, 0, 7, 0, 4, 0, 4, 0, 5];
    assert!(
        closed_after(target, &versions, false, quick).is_some(),
        "VERSIONS: still open"
    );
    assert!(
        logged(&log, "plaintext Tor cell", before),
        "VERSIONS: no reason logged"
    );

    // 3. A peer that closes in the middle of the handshake.
    let before = count(&log, "during the TLS handshake");
    let half = &hello[..hello.len() / 2];
    assert!(
        closed_after(target, half, true, quick).is_some(),
        "mid-handshake close: still open"
    );
    assert!(
        logged(&log, "during the TLS handshake", before),
        "mid-handshake close: no reason logged"
    );

    // 4. A handshake that stalls: half a ClientHello, then nothing.
    let before = count(
        &log,
        "TLS handshake not done within ChannelHandshakeTimeout",
    );
    let took =
        closed_after(target, half, false, HANDSHAKE_TIMEOUT * 5).expect("stalled: still open");
    assert!(
        took >= HANDSHAKE_TIMEOUT - Duration::from_millis(200),
        "closed after {took:?}, before the timeout"
    );
    assert!(
        logged(
            &log,
            "TLS handshake not done within ChannelHandshakeTimeout",
            before
        ),
        "stalled: no reason logged"
    );

    let (sha, len) = download
        .join()
        .expect("thread")
        .expect("the fetch through the attacked relay");
    assert_eq!((sha, len), (http.sha, size), "intact");

    // Without the kernel's `tls` ULP (these machines), one line at start says records stay
    // in user space, and why.
    let tls_ulp = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
        .unwrap_or_default()
        .split_whitespace()
        .any(|u| u == "tls");
    if !tls_ulp {
        let why = "records in user space (rustls); no kTLS: the kernel has no tls ULP";
        assert_eq!(count(&log, why), 1, "relay2: the kTLS probe's line");
    }

    // Every link of the network was TLS, and the four failures were counted at relay2.
    let nodes = net.process.ready.metrics.clone();
    assert_eq!(nodes.len(), 4, "{:?}", nodes);
    for (name, addr) in &nodes {
        let page = metrics(*addr);
        assert!(
            counter(&page, "kistrel_links_tls_user_total") >= 1,
            "{name}: {page}"
        );
        assert_eq!(counter(&page, "kistrel_links_plain_total"), 0, "{name}");
        if !tls_ulp {
            // No side of any link went to the kernel, on either backend.
            assert_eq!(counter(&page, "kistrel_links_ktls_total"), 0, "{name}");
            assert_eq!(counter(&page, "kistrel_links_ktls_rx_total"), 0, "{name}");
        }
        assert!(counter(&page, "kistrel_tls_records_in_total") > 0, "{name}");
        // Cells are written within the open record's room: no record had to be split.
        assert!(
            page.contains("kistrel_tls_records_split_total{"),
            "{name}: {page}"
        );
        assert_eq!(
            counter(&page, "kistrel_tls_records_split_total"),
            0,
            "{name}"
        );
        if name == "relay2" {
            // Workers publish their figures once a second: the stalled handshake's close
            // (the last failure) may not be on the page yet. (Until session 18, `kistrel
            // net`'s test connection to every relay added a fifth failure and hid this.)
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut page = page;
            while counter(&page, "kistrel_tls_handshakes_failed_total") < 4
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
                page = metrics(*addr);
            }
            assert!(
                counter(&page, "kistrel_tls_handshakes_failed_total") >= 4,
                "{page}"
            );
        }
    }
    assert!(net.stop().success());
}

/// Makes `poll::name` and `uring::name` of each test body.
macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod poll {
            $(#[test] fn $name() { super::$name("poll") })*
        }
        mod uring {
            $(#[test] fn $name() { super::$name("uring") })*
        }
    };
}

on_both_backends!(tls_failures_close_one_link_each);
