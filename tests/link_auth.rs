//! Link authentication over real sockets: relays with real key folders (`kistrel relay`),
//! clients with hand-written directories (`kistrel client`), curl through SOCKS.
//!
//! Two clients share guard R1 and exit R3. Client A's directory lists only good relays and
//! downloads through R1-R2-R3 while client B's directory offers as middles only relays its
//! guard must refuse: R4 under another RSA identity, R5 under another Ed25519 identity, R6
//! whose signing certificate has expired. R1 closes each bad channel with a logged reason
//! (expected vs got), and A's download finishes intact through the same guard.
#![cfg(target_os = "linux")]

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use kistrel::keys::KeygenOptions;
use kistrel_pathsel::Flag;
use support::relays::{keys, Client, TestRelay};
use support::{fetch_at, serial, skip_without_tools, Http, MIB};

#[test]
fn wrong_identities_and_an_expired_certificate_close_the_link_while_another_circuit_fetches() {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let good = KeygenOptions::default();
    // Made 40 days ago with the default 30-day signing certificate: expired.
    let expired = KeygenOptions {
        backdate: Duration::from_secs(40 * 86_400),
        ..KeygenOptions::default()
    };
    let r: Vec<TestRelay> = (1..=6)
        .map(|n| {
            let opts = if n == 6 { &expired } else { &good };
            TestRelay::start(dir, n, keys(100 + n as u64, opts), n == 3)
        })
        .collect();
    let (guard, middle, exit) = (&r[0], &r[1], &r[2]);
    let wrong_rsa = [0xAB; 20];
    let wrong_ed = [0xCD; 32];

    let a = Client::start(
        dir,
        "a",
        vec![
            guard.entry(&[Flag::Guard], None, None),
            middle.entry(&[], None, None),
            exit.entry(&[Flag::Exit], None, None),
        ],
    );
    let b = Client::start(
        dir,
        "b",
        vec![
            guard.entry(&[Flag::Guard], None, None),
            r[3].entry(&[], Some(wrong_rsa), None),
            r[4].entry(&[], None, Some(wrong_ed)),
            r[5].entry(&[], None, None),
            exit.entry(&[Flag::Exit], None, None),
        ],
    );

    // A's download, rate-limited so it spans B's attempts.
    let http = Http::start(16 * MIB, 41);
    let (url, socks_a, out_a) = (http.url(), a.socks, dir.join("got-a"));
    let download = std::thread::spawn(move || fetch_at(socks_a, "a", &url, &out_a, Some("4M")));

    let reasons = [
        format!(
            "wrong RSA identity: expected {}, got {}",
            hex::encode_upper(wrong_rsa),
            hex::encode_upper(r[3].keys.rsa_id())
        ),
        format!(
            "wrong Ed25519 identity: expected {}, got {}",
            hex::encode_upper(wrong_ed),
            hex::encode_upper(r[4].keys.ed_id())
        ),
        "bad CERTS cell: certificate of type 4 has expired".to_owned(),
    ];
    let guard_log = || std::fs::read_to_string(&guard.log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut attempt = 0;
    while !reasons.iter().all(|why| guard_log().contains(why.as_str())) {
        assert!(
            Instant::now() < deadline,
            "R1 did not log every refusal; R1 log:\n{}\nclient b log:\n{}",
            guard_log(),
            std::fs::read_to_string(&b.log).unwrap_or_default()
        );
        // Every circuit of B fails at its middle: the fetch is expected to fail.
        let out = dir.join(format!("got-b{attempt}"));
        let url = http.url();
        let ok = fetch_at(b.socks, &format!("b{attempt}"), &url, &out, None).is_some();
        assert!(!ok, "no path of client b can work");
        attempt += 1;
    }
    // The refusals name the peer's address with the reason.
    for (why, bad) in reasons.iter().zip(&r[3..]) {
        let line = guard_log()
            .lines()
            .find(|l| l.contains(why.as_str()))
            .map(str::to_owned)
            .expect("logged");
        assert!(line.contains(&bad.addr.to_string()), "{line}");
    }

    let (sha, len) = download
        .join()
        .expect("download thread")
        .expect("client a's download through R1 finishes");
    assert_eq!(len, 16 * MIB);
    assert_eq!(sha, http.sha);
    // R1 never closed A's circuit: its client saw no failure.
    let a_log = std::fs::read_to_string(&a.log).unwrap_or_default();
    assert!(!a_log.contains("circuit failed"), "{a_log}");
}
