//! `kistrel tgen client` against peers that are not a tgen server: nothing listening (capped
//! exponential back-off, the address and the OS error in the report), a server that answers
//! something else, and one that answers nothing (detected within the first-byte timeout).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};

fn tgen_client(server: SocketAddr, extra: &[&str], json: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kistrel"))
        .env_remove("RUST_LOG")
        .args(["tgen", "client", "--server", &server.to_string()])
        .args(["--model", "web", "--flows", "1", "--json"])
        .arg(json)
        .args(extra)
        .output()
        .unwrap()
}

fn report(json: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

#[test]
fn nothing_listening_backs_off_and_names_the_address_and_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("report.json");
    // A port nothing listens on: bound, then closed.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = tgen_client(addr, &["--duration", "3s"], &json);
    assert_eq!(o.status.code(), Some(1), "failures fail the run");
    let r = report(&json);
    let attempts = r["transfers"].as_array().unwrap().len() as u64;
    // Waits of 50, 100, 200, 400, 800 ms, then 1 s: about 7 attempts in 3 s (without the
    // back-off: tens of thousands). Bounded generously for a loaded machine.
    assert!((2..=12).contains(&attempts), "{attempts} attempts in 3 s");
    let reason = format!("connect to {addr}: Connection refused (os error 111)");
    assert_eq!(
        r["failure_reasons"][&reason], attempts,
        "{}",
        r["failure_reasons"]
    );
    assert!(r["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["outcome"] == "connect"));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains(&format!("failed {attempts}x: {reason}\n")),
        "{err}"
    );
}

/// A server that answers every connection with `reply` (and then holds it open), or with
/// nothing when `reply` is empty.
fn fake_server(reply: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in l.incoming().flatten() {
            let mut req = [0u8; 24];
            let _ = s.read_exact(&mut req);
            let _ = s.write_all(reply);
            held.push(s);
        }
    });
    addr
}

#[test]
fn a_server_that_answers_something_else_is_reported_as_not_tgen() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("report.json");
    let addr = fake_server(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    let o = tgen_client(addr, &["--count", "2"], &json);
    assert_eq!(o.status.code(), Some(1));
    let r = report(&json);
    let reason =
        format!("{addr} does not speak tgen: it answered \"HTTP/1.0 400 Bad Request\\r\\n\\r\\n\"");
    assert_eq!(r["failure_reasons"][&reason], 2, "{}", r["failure_reasons"]);
    assert_eq!(r["transfers"][0]["outcome"], "protocol");
}

#[test]
fn a_server_that_answers_nothing_is_detected_within_the_first_byte_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("report.json");
    let addr = fake_server(b"");
    let o = tgen_client(addr, &["--count", "1", "--first-byte-timeout", "1s"], &json);
    assert_eq!(o.status.code(), Some(1));
    let r = report(&json);
    let reason = format!(
        "{addr} sent nothing within 1 s of the request: not a tgen server? \
         (start one with `kistrel tgen server`)"
    );
    assert_eq!(r["failure_reasons"][&reason], 1, "{}", r["failure_reasons"]);
    assert_eq!(r["transfers"][0]["outcome"], "protocol");
}
