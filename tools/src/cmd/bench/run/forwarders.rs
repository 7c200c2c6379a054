//! The same-run baseline: plain TCP forwarders chained in front of the tgen server, moving
//! the same bytes through the same number of sockets as kistrel's three hops, without cells
//! or crypto.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use crate::error::CliError;
use crate::placement::{self, CpuList};

/// Starts one forwarder per entry of `cpus` in front of `upstream` (the last entry's
/// forwarder connects to `upstream`, the first is the chain's entry); each runs its accept
/// loop and its copies on its CPUs when given (those of the relay it stands in for). A
/// thread per direction and connection, 64 KiB buffers. Returns the entry's address. The
/// forwarders live until the process ends; they keep no state between connections, so
/// every phase through them starts alike.
pub(super) fn chain(
    upstream: SocketAddr,
    cpus: &[Option<CpuList>],
) -> Result<SocketAddr, CliError> {
    let mut next = upstream;
    for hop_cpus in cpus.iter().rev() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| CliError::runtime("binding a forwarder", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::runtime("forwarder address", e))?;
        let to = next;
        let hop_cpus = hop_cpus.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Pinned before any copy thread starts, so they all inherit the CPUs.
            let pinned = hop_cpus
                .as_ref()
                .map_or(Ok(()), placement::pin_current_thread);
            let ok = pinned.is_ok();
            let _ = ready_tx.send(pinned);
            if ok {
                accept_loop(&listener, to);
            }
        });
        ready_rx
            .recv()
            .map_err(|e| CliError::runtime("starting a forwarder", e))??;
        next = addr;
    }
    Ok(next)
}

fn accept_loop(listener: &TcpListener, to: SocketAddr) {
    for conn in listener.incoming() {
        let Ok(down) = conn else { continue };
        let Ok(up) = TcpStream::connect(to) else {
            continue;
        };
        if let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) {
            pipe(down, up);
            pipe(u2, d2);
        }
    }
}

/// Copies `from` into `into` on a thread until EOF, then half-closes `into`.
fn pipe(mut from: TcpStream, mut into: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if into.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = into.shutdown(std::net::Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes go through three hops unchanged and the reply comes back.
    #[test]
    fn three_hops_carry_both_directions() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&got).unwrap();
        });
        let entry = chain(target, &[None, None, None]).unwrap();
        let mut c = TcpStream::connect(entry).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        c.write_all(&data).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        echo.join().unwrap();
        assert_eq!(back, data);
    }
}
