//! The same-run baseline: plain TCP forwarders chained in front of the tgen server, moving
//! the same bytes through the same number of sockets as kistrel's three hops, without cells
//! or crypto. Each hop counts the CPU time of its copy threads, so a round has a reference
//! CPU cost (the kernel's TCP work for the same bytes) measured minutes, not sessions, away
//! from the relays'.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::CliError;
use crate::placement::{self, CpuList};

/// A started chain: its entry and each hop's CPU account, first hop first.
#[derive(Debug)]
pub(super) struct Chain {
    pub entry: SocketAddr,
    pub hops: Vec<Arc<HopCpu>>,
}

/// CPU time of one hop's copy threads. A thread adds its own CPU time (its thread CPU
/// clock) when it ends, so the account is complete only while no copy thread runs.
#[derive(Debug, Default)]
pub(super) struct HopCpu {
    ended_ns: AtomicU64,
    running: AtomicUsize,
    clock_failed: AtomicBool,
}

impl HopCpu {
    /// CPU seconds of every copy thread this hop has run, once none is running (waiting up
    /// to `wait` for the last connections' threads to end). `None` if some still run then or
    /// a thread could not read its clock: a partial sum would understate the hop's cost.
    pub(super) fn settled_seconds(&self, wait: Duration) -> Option<f64> {
        let until = Instant::now() + wait;
        while self.running.load(Ordering::Acquire) > 0 {
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.clock_failed.load(Ordering::Acquire) {
            return None;
        }
        Some(self.ended_ns.load(Ordering::Acquire) as f64 * 1e-9)
    }

    /// The calling thread's CPU time so far, added as it ends.
    fn add_this_thread(&self) {
        match this_thread_cpu_ns() {
            Some(ns) => {
                self.ended_ns.fetch_add(ns, Ordering::AcqRel);
            }
            None => self.clock_failed.store(true, Ordering::Release),
        }
    }
}

/// The calling thread's CPU time, ns (user + system).
fn this_thread_cpu_ns() -> Option<u64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    let secs = u64::try_from(t.tv_sec()).ok()?;
    let nanos = u64::try_from(t.tv_nsec()).ok()?;
    Some(secs * 1_000_000_000 + nanos)
}

/// Starts one forwarder per entry of `cpus` in front of `upstream` (the last entry's
/// forwarder connects to `upstream`, the first is the chain's entry); each runs its accept
/// loop and its copies on its CPUs when given (those of the relay it stands in for). A
/// thread per direction and connection, 64 KiB buffers. The forwarders live until the
/// process ends; they keep no state between connections, so every phase through them starts
/// alike.
pub(super) fn chain(upstream: SocketAddr, cpus: &[Option<CpuList>]) -> Result<Chain, CliError> {
    let mut next = upstream;
    let mut hops = Vec::with_capacity(cpus.len());
    for hop_cpus in cpus.iter().rev() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| CliError::runtime("binding a forwarder", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::runtime("forwarder address", e))?;
        let to = next;
        let hop_cpus = hop_cpus.clone();
        let cpu = Arc::new(HopCpu::default());
        let account = Arc::clone(&cpu);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Pinned before any copy thread starts, so they all inherit the CPUs.
            let pinned = hop_cpus
                .as_ref()
                .map_or(Ok(()), placement::pin_current_thread);
            let ok = pinned.is_ok();
            let _ = ready_tx.send(pinned);
            if ok {
                accept_loop(&listener, to, &account);
            }
        });
        ready_rx
            .recv()
            .map_err(|e| CliError::runtime("starting a forwarder", e))??;
        next = addr;
        hops.push(cpu);
    }
    hops.reverse();
    Ok(Chain { entry: next, hops })
}

fn accept_loop(listener: &TcpListener, to: SocketAddr, cpu: &Arc<HopCpu>) {
    for conn in listener.incoming() {
        let Ok(down) = conn else { continue };
        let Ok(up) = TcpStream::connect(to) else {
            continue;
        };
        if let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) {
            pipe(down, up, Arc::clone(cpu));
            pipe(u2, d2, Arc::clone(cpu));
        }
    }
}

/// Copies `from` into `into` on a thread until EOF, then half-closes `into`; the thread's
/// CPU time goes to `cpu` as it ends.
fn pipe(mut from: TcpStream, mut into: TcpStream, cpu: Arc<HopCpu>) {
    cpu.running.fetch_add(1, Ordering::AcqRel);
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
        cpu.add_this_thread();
        cpu.running.fetch_sub(1, Ordering::AcqRel);
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
        let chain = chain(target, &[None, None, None]).unwrap();
        let mut c = TcpStream::connect(chain.entry).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        c.write_all(&data).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        echo.join().unwrap();
        assert_eq!(back, data);
        // Every hop's two copy threads ended and counted their CPU time.
        assert_eq!(chain.hops.len(), 3);
        for hop in &chain.hops {
            let s = hop
                .settled_seconds(Duration::from_secs(10))
                .expect("threads ended");
            assert!(s > 0.0 && s < 10.0, "{s}");
        }
    }

    /// A hop whose copy threads still run has no settled figure: part of its cost would be
    /// missing. Once the connection ends, it has one.
    #[test]
    fn a_running_copy_thread_keeps_the_account_open() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let chain = chain(target, &[None]).unwrap();
        let c = TcpStream::connect(chain.entry).unwrap();
        let (upstream, _) = server.accept().unwrap();
        let hop = &chain.hops[0];
        // The accept loop starts both copy threads just after it connected upstream.
        let until = Instant::now() + Duration::from_secs(10);
        while hop.running.load(Ordering::Acquire) < 2 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(hop.settled_seconds(Duration::from_millis(20)), None);
        drop(c);
        drop(upstream);
        assert!(hop.settled_seconds(Duration::from_secs(10)).is_some());
    }
}
