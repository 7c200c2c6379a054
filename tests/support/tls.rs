//! Links are TLS: a test that speaks raw Tor cells to a relay does it through [`connect`], a
//! tunnel that gives the test a plain loopback `TcpStream` (clone it, peek, time out, reset
//! it, as before) and carries its bytes to the relay over TLS (rustls, the client
//! configuration kistrel's own links use: any certificate, no resumption).
//!
//! ```text
//!   test --plain TCP--> tunnel (2 threads: one per direction) --TLS--> relay's OR port
//! ```
//!
//! A test's own next hop (a relay connects to it) speaks TLS through [`server_stream`].
//!
//! Closing or resetting the test's stream ends the relay's connection (close_notify, FIN);
//! the relay closing ends the test's stream (FIN). Back-pressure passes through: each
//! direction blocks on its socket as a direct connection would.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};

use kistrel_engine::runtime::TlsContext;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, ServerConnection};

fn ctx() -> &'static TlsContext {
    static CTX: OnceLock<TlsContext> = OnceLock::new();
    CTX.get_or_init(|| TlsContext::new().expect("TLS context"))
}

/// SHA-256 of the DER of the TLS certificate [`server_stream`] presents (what a test
/// responder's type-5 certificate certifies).
pub fn own_cert_sha256() -> [u8; 32] {
    ctx().own_cert_sha256()
}

/// A stream to `relay` over TLS, once the TLS handshake is done (the Tor link handshake is
/// the test's own).
pub fn connect(relay: SocketAddr) -> std::io::Result<TcpStream> {
    let up = TcpStream::connect(relay)?;
    up.set_nodelay(true)?;
    let name = ServerName::try_from("kistrel.invalid").expect("name");
    let conn = ClientConnection::new(ctx().client_config(), name).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let test_side = TcpStream::connect(listener.local_addr()?)?;
    let (down, _) = listener.accept()?;
    pump(conn.into(), up, down)?;
    Ok(test_side)
}

/// A test's own next hop's side of a connection a relay opened: TLS with this process's
/// certificate (the handshake runs on the first read or write).
pub fn server_stream(relay: TcpStream) -> rustls::StreamOwned<ServerConnection, TcpStream> {
    let conn = ServerConnection::new(ctx().server_config()).expect("TLS server connection");
    rustls::StreamOwned::new(conn, relay)
}

/// Completes the TLS handshake on `up`, then starts the two directions between `up` (TLS)
/// and `down` (plain).
fn pump(mut conn: Connection, mut up: TcpStream, down: TcpStream) -> std::io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(&mut up)?;
    }
    // Each direction drains what it encrypts at once: no limit needed (nor wanted: a full
    // buffer makes `write_all` fail rather than block).
    conn.set_buffer_limit(None);
    down.set_nodelay(true)?;
    let conn = Arc::new(Mutex::new(conn));
    let up_writer = Arc::new(Mutex::new(up.try_clone()?));
    {
        let (conn, up_writer, down, up) = (
            conn.clone(),
            up_writer.clone(),
            down.try_clone()?,
            up.try_clone()?,
        );
        std::thread::spawn(move || to_relay(down, up, &conn, &up_writer));
    }
    std::thread::spawn(move || from_relay(up, down, &conn, &up_writer));
    Ok(())
}

/// Encrypts what the test writes; on its EOF or reset, closes TLS and the relay connection.
fn to_relay(mut down: TcpStream, up: TcpStream, conn: &Mutex<Connection>, w: &Mutex<TcpStream>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match down.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut out = Vec::new();
        let mut writer = w.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            if c.writer().write_all(&buf[..n]).is_err() {
                break;
            }
            while c.wants_write() {
                let _ = c.write_tls(&mut out);
            }
        }
        if writer.write_all(&out).is_err() {
            break;
        }
    }
    {
        let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
        c.send_close_notify();
        let mut out = Vec::new();
        while c.wants_write() {
            let _ = c.write_tls(&mut out);
        }
        let _ = w.lock().unwrap_or_else(|e| e.into_inner()).write_all(&out);
    }
    let _ = up.shutdown(Shutdown::Both);
    let _ = down.shutdown(Shutdown::Read);
}

/// Decrypts what the relay sends for the test; on the relay's EOF, ends the test's stream.
fn from_relay(
    mut up: TcpStream,
    mut down: TcpStream,
    conn: &Mutex<Connection>,
    w: &Mutex<TcpStream>,
) {
    let mut buf = vec![0u8; 64 << 10];
    // Application data can arrive with the last handshake flight: pass it on first.
    let mut n = 0;
    loop {
        let mut rd = &buf[..n];
        loop {
            let Some((plain, tls_out)) = decrypt(conn, &mut rd) else {
                let _ = down.shutdown(Shutdown::Write);
                return;
            };
            if !tls_out.is_empty() {
                let _ = w
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write_all(&tls_out);
            }
            if down.write_all(&plain).is_err() {
                return;
            }
            if rd.is_empty() {
                break;
            }
        }
        n = match up.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
    }
    let _ = down.shutdown(Shutdown::Write);
}

/// Feeds some of `rd` to rustls; returns the plaintext and any TLS bytes it wants to send,
/// or `None` when the session failed.
fn decrypt(conn: &Mutex<Connection>, rd: &mut &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
    if !rd.is_empty() && c.read_tls(rd).is_err() {
        return None;
    }
    c.process_new_packets().ok()?;
    let mut plain = Vec::new();
    match c.reader().read_to_end(&mut plain) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(_) => return None,
    }
    let mut tls_out = Vec::new();
    while c.wants_write() {
        let _ = c.write_tls(&mut tls_out);
    }
    Some((plain, tls_out))
}

/// A test initiator's own TLS session to `relay` (kistrel's client configuration; the
/// handshake runs on the first read or write), for tests that need the session itself
/// (its exporter, the certificate the relay presented).
pub fn client_stream(relay: TcpStream) -> rustls::StreamOwned<ClientConnection, TcpStream> {
    let name = ServerName::try_from("kistrel.invalid").expect("name");
    let conn = ClientConnection::new(ctx().client_config(), name).expect("TLS client connection");
    rustls::StreamOwned::new(conn, relay)
}
