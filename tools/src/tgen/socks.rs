//! A SOCKS5 CONNECT client (RFC 1928), with no authentication or with username/password
//! (RFC 1929). kistrel's client, like Tor's `IsolateSOCKSAuth`, builds one circuit per
//! distinct username, so the username is the isolation tag of a flow.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kistrel_base::{ErrorKind, HasKind};

/// Time a SOCKS handshake may take by default (it includes building a circuit).
pub const DEFAULT_SOCKS_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a SOCKS connection failed.
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    /// The TCP connection to the SOCKS port failed.
    #[error("connecting to the SOCKS port {addr}: {source}")]
    Connect {
        /// The SOCKS port.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the handshake failed (a timeout included).
    #[error("SOCKS handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The proxy does not speak SOCKS5 or refused our authentication method.
    #[error("SOCKS: method refused (reply {0:#04x})")]
    MethodRefused(u8),
    /// The proxy refused the username/password.
    #[error("SOCKS: authentication refused (status {0})")]
    AuthRefused(u8),
    /// A username longer than 255 bytes.
    #[error("SOCKS: username longer than 255 bytes")]
    UserTooLong,
    /// The CONNECT reply was not success (RFC 1928 section 6 reply codes).
    #[error("SOCKS: CONNECT failed with reply {0}")]
    ConnectFailed(u8),
    /// A malformed reply.
    #[error("SOCKS: malformed reply ({0})")]
    BadReply(&'static str),
}

impl SocksError {
    /// Whether the deadline ran out: a connect that timed out, or a handshake read that
    /// did (a socket read timeout is `WouldBlock` on Unix, `TimedOut` elsewhere).
    pub fn is_timeout(&self) -> bool {
        let timed_out = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        };
        match self {
            SocksError::Connect { source, .. } => timed_out(source),
            SocksError::Io(e) => timed_out(e),
            _ => false,
        }
    }
}

impl HasKind for SocksError {
    fn kind(&self) -> ErrorKind {
        match self {
            SocksError::Connect { source, .. } | SocksError::Io(source) => HasKind::kind(source),
            // The proxy answered, but not as SOCKS5 does.
            SocksError::MethodRefused(_) | SocksError::BadReply(_) => ErrorKind::PeerProtocol,
            SocksError::AuthRefused(_) => ErrorKind::BadConfig,
            SocksError::UserTooLong => ErrorKind::BadApiUsage,
            // The proxy could not reach the target (RFC 1928 reply codes).
            SocksError::ConnectFailed(_) => ErrorKind::Unavailable,
        }
    }
}

/// SOCKS5 CONNECT to `target` through `socks`, authenticating as `user` (password "x") when
/// given, with [`DEFAULT_SOCKS_TIMEOUT`]. The returned stream carries the target's bytes.
pub fn socks_connect(
    socks: SocketAddr,
    user: Option<&str>,
    target: SocketAddr,
) -> Result<TcpStream, SocksError> {
    socks_connect_timeout(socks, user, target, DEFAULT_SOCKS_TIMEOUT)
}

/// [`socks_connect`] with a bound on the whole handshake.
pub fn socks_connect_timeout(
    socks: SocketAddr,
    user: Option<&str>,
    target: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, SocksError> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut s = TcpStream::connect_timeout(&socks, left()).map_err(|e| SocksError::Connect {
        addr: socks,
        source: e,
    })?;
    s.set_nodelay(true)?;
    let step = |s: &mut TcpStream, out: &[u8], reply: &mut [u8]| -> Result<(), SocksError> {
        s.set_read_timeout(Some(left()))?;
        s.write_all(out)?;
        s.read_exact(reply)?;
        Ok(())
    };
    let method = if user.is_some() { 2 } else { 0 };
    let mut r = [0u8; 2];
    step(&mut s, &[5, 1, method], &mut r)?;
    if r != [5, method] {
        return Err(SocksError::MethodRefused(r[1]));
    }
    if let Some(user) = user {
        let len = u8::try_from(user.len()).map_err(|_| SocksError::UserTooLong)?;
        let mut auth = Vec::with_capacity(user.len() + 4);
        auth.extend_from_slice(&[1, len]);
        auth.extend_from_slice(user.as_bytes());
        auth.extend_from_slice(&[1, b'x']);
        step(&mut s, &auth, &mut r)?;
        if r[1] != 0 {
            return Err(SocksError::AuthRefused(r[1]));
        }
    }
    let mut req = vec![5, 1, 0];
    match target {
        SocketAddr::V4(t) => {
            req.push(1);
            req.extend_from_slice(&t.ip().octets());
        }
        SocketAddr::V6(t) => {
            req.push(4);
            req.extend_from_slice(&t.ip().octets());
        }
    }
    req.extend_from_slice(&target.port().to_be_bytes());
    let mut head = [0u8; 4];
    step(&mut s, &req, &mut head)?;
    if head[0] != 5 {
        return Err(SocksError::BadReply("version"));
    }
    if head[1] != 0 {
        return Err(SocksError::ConnectFailed(head[1]));
    }
    // The bound address: its length depends on its type.
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len)?;
            usize::from(len[0]) + 2
        }
        _ => return Err(SocksError::BadReply("address type")),
    };
    let mut skip = [0u8; 257];
    s.read_exact(&mut skip[..rest])?;
    s.set_read_timeout(None)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot fake SOCKS proxy: checks the bytes it gets, answers `replies` in order.
    fn fake(
        expect: Vec<Vec<u8>>,
        replies: Vec<Vec<u8>>,
    ) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            for (want, reply) in expect.iter().zip(&replies) {
                let mut got = vec![0u8; want.len()];
                c.read_exact(&mut got).unwrap();
                assert_eq!(&got, want);
                c.write_all(reply).unwrap();
            }
        });
        (addr, h)
    }

    #[test]
    fn a_silent_proxy_is_a_timeout_and_a_refused_port_is_not() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = l.local_addr().unwrap();
        let target: SocketAddr = "10.1.2.3:80".parse().unwrap();
        // Accepted by the kernel's backlog, never answered.
        let e = socks_connect_timeout(silent, None, target, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, SocksError::Io(_)), "{e:?}");
        assert!(e.is_timeout(), "{e:?}");
        drop(l);
        let e = socks_connect_timeout(silent, None, target, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, SocksError::Connect { .. }), "{e:?}");
        assert!(!e.is_timeout(), "{e:?}");
        assert!(!SocksError::MethodRefused(0xff).is_timeout());
    }

    #[test]
    fn user_password_connect_sends_rfc1929_and_ipv4_request() {
        let target: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        let (addr, h) = fake(
            vec![
                vec![5, 1, 2],
                vec![1, 3, b'f', b'l', b'1', 1, b'x'],
                vec![5, 1, 0, 1, 10, 1, 2, 3, 0x1f, 0x90],
            ],
            vec![vec![5, 2], vec![1, 0], vec![5, 0, 0, 1, 0, 0, 0, 0, 0, 0]],
        );
        let s = socks_connect(addr, Some("fl1"), target);
        assert!(s.is_ok(), "{s:?}");
        h.join().unwrap();
    }

    #[test]
    fn no_auth_and_connect_refused() {
        let target: SocketAddr = "[::1]:80".parse().unwrap();
        let mut req = vec![5, 1, 0, 4];
        req.extend_from_slice(&[0; 15]);
        req.extend_from_slice(&[1, 0, 80]);
        let (addr, h) = fake(
            vec![vec![5, 1, 0], req],
            vec![vec![5, 0], vec![5, 5, 0, 1, 0, 0, 0, 0, 0, 0]],
        );
        let e = socks_connect(addr, None, target).unwrap_err();
        assert!(matches!(e, SocksError::ConnectFailed(5)), "{e:?}");
        h.join().unwrap();
    }

    #[test]
    fn refused_method_and_auth() {
        let t: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (addr, h) = fake(vec![vec![5, 1, 2]], vec![vec![5, 0xff]]);
        let e = socks_connect(addr, Some("u"), t).unwrap_err();
        assert!(matches!(e, SocksError::MethodRefused(0xff)), "{e:?}");
        h.join().unwrap();
        let (addr, h) = fake(
            vec![vec![5, 1, 2], vec![1, 1, b'u', 1, b'x']],
            vec![vec![5, 2], vec![1, 1]],
        );
        let e = socks_connect(addr, Some("u"), t).unwrap_err();
        assert!(matches!(e, SocksError::AuthRefused(1)), "{e:?}");
        h.join().unwrap();
    }
}
