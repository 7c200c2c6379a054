//! The tgen server: one thread accepts, one thread per connection reads a request header
//! and writes the requested payload, then closes. Stops (and joins its accept thread) on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::TgenError;
use super::proto::{PayloadStream, Request, BLOCK, HEADER_LEN};

/// How long the accept loop sleeps when no connection is waiting (it polls a stop flag).
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// A client that sends no complete header within this time is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A deliberate server fault, for tests of the client's verification (hidden CLI flag
/// `--fault`). Not for real runs.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Serve correctly.
    #[default]
    None,
    /// Flip one bit of the byte at this offset (when the transfer is that long).
    Tamper {
        /// Offset of the flipped byte.
        at: u64,
    },
    /// Close this many bytes before the end (the whole transfer when it is shorter).
    Short {
        /// Bytes left out.
        by: u64,
    },
}

/// A running tgen server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `bind` (port 0 picks a free port) and serves until dropped.
    pub fn start(bind: SocketAddr) -> Result<Server, TgenError> {
        Self::start_with_fault(bind, Fault::None)
    }

    /// [`Server::start`] with a deliberate fault, for tests.
    #[doc(hidden)]
    pub fn start_with_fault(bind: SocketAddr, fault: Fault) -> Result<Server, TgenError> {
        let listener = TcpListener::bind(bind).map_err(|e| TgenError::Bind {
            addr: bind,
            source: e,
        })?;
        let addr = listener.local_addr().map_err(|e| TgenError::Bind {
            addr: bind,
            source: e,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| TgenError::Bind {
                addr: bind,
                source: e,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (stop2, served2) = (Arc::clone(&stop), Arc::clone(&served));
        let accept = std::thread::Builder::new()
            .name("tgen-accept".into())
            .spawn(move || accept_loop(&listener, &stop2, &served2, fault))
            .map_err(|e| TgenError::Bind {
                addr: bind,
                source: e,
            })?;
        Ok(Server {
            addr,
            stop,
            served,
            accept: Some(accept),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Transfers written to the end so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    stop: &Arc<AtomicBool>,
    served: &Arc<AtomicU64>,
    fault: Fault,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                let (stop, served) = (Arc::clone(stop), Arc::clone(served));
                let _ = std::thread::Builder::new()
                    .name("tgen-conn".into())
                    .spawn(move || {
                        if serve(conn, &stop, fault).is_ok() {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            // EMFILE and the like: back off and keep serving.
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Serves one connection. An error just closes it (the client sees `short` or `io`).
fn serve(mut conn: TcpStream, stop: &AtomicBool, fault: Fault) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(HEADER_TIMEOUT))?;
    let mut header = [0u8; HEADER_LEN];
    conn.read_exact(&mut header)?;
    let req = Request::parse(&header).map_err(std::io::Error::other)?;
    let send = match fault {
        Fault::Short { by } => req.size.saturating_sub(by),
        _ => req.size,
    };
    let mut stream = PayloadStream::new(req.seed);
    let mut buf = [0u8; BLOCK];
    let mut sent = 0u64;
    while sent < send {
        if stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("server stopping"));
        }
        let want = usize::try_from(send - sent).unwrap_or(BLOCK).min(BLOCK);
        let chunk = stream.next_chunk(want);
        let n = chunk.len();
        buf[..n].copy_from_slice(chunk);
        if let Fault::Tamper { at } = fault {
            if (sent..sent + n as u64).contains(&at) {
                let i = (at - sent) as usize;
                buf[i] ^= 0x01;
            }
        }
        conn.write_all(&buf[..n])?;
        sent += n as u64;
    }
    Ok(())
}
