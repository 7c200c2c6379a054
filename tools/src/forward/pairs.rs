//! The forwarding threads: one [`Ring`] each, accepting on its own SO_REUSEPORT listener and
//! copying every accepted connection to a fresh upstream connection and back.
//!
//! ```text
//!   Accepted a -> connect b; sides a <-> b
//!   Recv on a  -> append to b's send buffer; b above MAX_QUEUED: pause a's reads
//!   SendDone b -> resume a's reads
//!   EOF on a   -> shut b's write side once flushed; both ended: close both once flushed
//! ```

use std::collections::HashMap;
use std::io::BufRead;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kistrel_engine::uring::{ConnId, Event, ListenerId, Ring, RingConfig, UringError};

use crate::placement::CpuList;

use super::{ForwardArgs, ForwardError, ForwardFinal, ForwardReady, ThreadTotals, MAX_QUEUED};

/// How often a thread looks at the stop flag when idle.
const TICK: Duration = Duration::from_millis(50);

/// One end of a forwarded pair.
#[derive(Debug)]
struct Side {
    peer: ConnId,
    /// This side's peer sent EOF.
    eof: bool,
    /// Receiving paused because `peer`'s send queue is full.
    paused: bool,
}

/// One thread's forwarder.
#[derive(Debug)]
struct Forwarder {
    ring: Ring,
    /// Each listener and where its connections go.
    routes: Vec<(ListenerId, SocketAddr)>,
    sides: HashMap<ConnId, Side>,
    totals: ThreadTotals,
}

fn ring_err(thread: u32) -> impl Fn(UringError) -> ForwardError {
    move |e| ForwardError::Ring {
        thread,
        source: std::io::Error::other(e),
    }
}

impl Forwarder {
    fn new(thread: u32, routes: Vec<(TcpListener, SocketAddr)>) -> Result<Self, ForwardError> {
        let mut ring = Ring::new(&RingConfig::default()).map_err(ring_err(thread))?;
        let mut ids = Vec::new();
        for (listener, upstream) in routes {
            ids.push((
                ring.add_listener(listener).map_err(ring_err(thread))?,
                upstream,
            ));
        }
        Ok(Forwarder {
            ring,
            routes: ids,
            sides: HashMap::new(),
            totals: ThreadTotals {
                thread,
                ..ThreadTotals::default()
            },
        })
    }

    fn close_pair(&mut self, conn: ConnId) {
        if let Some(side) = self.sides.remove(&conn) {
            self.sides.remove(&side.peer);
            // Either may already be closed by the ring (ConnectFailed).
            let _ = self.ring.close(conn);
            let _ = self.ring.close(side.peer);
        }
    }

    /// One loop iteration.
    fn run_once(&mut self) -> Result<(), UringError> {
        self.ring.run_once(Some(TICK))?;
        while let Some(ev) = self.ring.poll_event() {
            match ev {
                Event::Accepted { conn, listener, .. } => self.accepted(conn, listener)?,
                Event::ConnectFailed { conn, .. } | Event::SendFailed { conn, .. } => {
                    self.close_pair(conn)
                }
                Event::Recv { conn, data } => {
                    let Some(side) = self.sides.get_mut(&conn) else {
                        continue;
                    };
                    self.totals.bytes += data.len() as u64;
                    self.ring.send(side.peer, &data)?;
                    if !side.paused && self.ring.queued_len(side.peer)? > MAX_QUEUED {
                        side.paused = true;
                        self.ring.set_recv_paused(conn, true)?;
                    }
                }
                Event::SendDone { conn } => self.drained(conn)?,
                Event::RecvClosed { conn, err } => self.recv_closed(conn, err.is_some())?,
                // Plain sockets: never a kTLS record or a stopped receive.
                Event::Connected { .. }
                | Event::AcceptFailed { .. }
                | Event::Timeout
                | Event::TlsRecord { .. }
                | Event::RecvStopped { .. } => {}
            }
        }
        Ok(())
    }

    fn accepted(&mut self, conn: ConnId, listener: ListenerId) -> Result<(), UringError> {
        let Some(&(_, upstream)) = self.routes.iter().find(|(l, _)| *l == listener) else {
            return self.ring.close(conn);
        };
        let up = self.ring.connect(upstream)?;
        for c in [conn, up] {
            // The relay's channels run with TCP_NODELAY; so do both sides here.
            if let Ok(s) = self.ring.stream(c) {
                let _ = s.set_nodelay(true);
            }
        }
        let side = |peer| Side {
            peer,
            eof: false,
            paused: false,
        };
        self.sides.insert(conn, side(up));
        self.sides.insert(up, side(conn));
        self.totals.pairs += 1;
        Ok(())
    }

    /// `conn` drained: let its peer (which feeds it) receive again.
    fn drained(&mut self, conn: ConnId) -> Result<(), UringError> {
        let Some(peer) = self.sides.get(&conn).map(|s| s.peer) else {
            return Ok(());
        };
        if let Some(feeder) = self.sides.get_mut(&peer) {
            if feeder.paused {
                feeder.paused = false;
                self.ring.set_recv_paused(peer, false)?;
            }
        }
        Ok(())
    }

    fn recv_closed(&mut self, conn: ConnId, failed: bool) -> Result<(), UringError> {
        let Some(side) = self.sides.get_mut(&conn) else {
            return Ok(());
        };
        if failed {
            self.close_pair(conn);
            return Ok(());
        }
        side.eof = true;
        let peer = side.peer;
        self.ring.shutdown_write_when_flushed(peer)?;
        if self.sides.get(&peer).is_some_and(|p| p.eof) {
            // Both directions ended: close once the last bytes are out.
            self.sides.remove(&conn);
            self.sides.remove(&peer);
            self.ring.close_when_flushed(conn)?;
            self.ring.close_when_flushed(peer)?;
        }
        Ok(())
    }

    /// Runs until `stop`; returns the totals.
    fn run(mut self, stop: &AtomicBool) -> Result<ThreadTotals, ForwardError> {
        let thread = self.totals.thread;
        while !stop.load(Ordering::Relaxed) {
            self.run_once().map_err(ring_err(thread))?;
        }
        for (listener, _) in &self.routes {
            let _ = self.ring.close_listener(*listener);
        }
        Ok(self.totals)
    }
}

fn setup(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ForwardError {
    let what = what.into();
    move |source| ForwardError::Setup { what, source }
}

/// The stop flag: SIGINT, SIGTERM or the end of stdin set it.
fn stop_flag() -> Result<Arc<AtomicBool>, ForwardError> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(setup("installing signal handlers"))?;
    }
    let on_eof = Arc::clone(&flag);
    std::thread::Builder::new()
        .name("fwd-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line.map_or(true, |l| l.trim() == "quit") {
                    break;
                }
            }
            on_eof.store(true, Ordering::Relaxed);
        })
        .map_err(setup("starting the stdin reader"))?;
    Ok(flag)
}

/// Starts the threads, prints `ready`, waits for them, prints `final`.
pub(super) fn run(args: &ForwardArgs) -> Result<(), ForwardError> {
    if args.listen.len() != args.upstream.len() {
        return Err(ForwardError::Routes {
            listen: args.listen.len(),
            upstream: args.upstream.len(),
        });
    }
    let stop = stop_flag()?;
    let threads = args.threads as usize;
    // Per route, one SO_REUSEPORT listener per thread: per thread, one listener per route.
    let mut per_thread: Vec<Vec<(TcpListener, SocketAddr)>> =
        (0..threads).map(|_| Vec::new()).collect();
    let mut addrs = Vec::new();
    for (&listen, &upstream) in args.listen.iter().zip(&args.upstream) {
        let listeners = crate::runner::listeners(listen, threads)
            .map_err(setup(format!("binding {listen}")))?;
        let addr = listeners
            .first()
            .and_then(|l| l.local_addr().ok())
            .ok_or_else(|| setup("binding")(std::io::ErrorKind::AddrNotAvailable.into()))?;
        addrs.push(addr);
        for (slot, l) in per_thread.iter_mut().zip(listeners) {
            slot.push((l, upstream));
        }
    }
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(threads);
    for (i, routes) in (0u32..).zip(per_thread) {
        let stop = Arc::clone(&stop);
        let ready = ready_tx.clone();
        let cpu = args
            .cpus
            .as_ref()
            .and_then(|c| CpuList::new([c.for_worker(i as usize)]));
        // The ring is made on its own thread: SINGLE_ISSUER ties it to the thread that
        // creates it.
        let handle = std::thread::Builder::new()
            .name(format!("kistrel-fwd-{i}"))
            .spawn(move || {
                if let Some(cpu) = &cpu {
                    if let Err(e) = crate::placement::pin_current_thread(cpu) {
                        let _ = ready.send(Some(e.to_string()));
                        return Err(ForwardError::from(e));
                    }
                }
                let fwd = Forwarder::new(i, routes);
                let _ = ready.send(fwd.as_ref().err().map(ToString::to_string));
                fwd?.run(&stop)
            })
            .map_err(setup("starting a forwarding thread"))?;
        handles.push(handle);
    }
    for _ in 0..handles.len() {
        if let Ok(Some(e)) = ready_rx.recv() {
            stop.store(true, Ordering::Relaxed);
            tracing::error!("a forwarding thread failed to start: {e}");
            break;
        }
    }
    print_line(
        "ready",
        &ForwardReady {
            addrs,
            threads: args.threads,
        },
    );
    let mut totals = Vec::new();
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => totals.push(t),
            Ok(Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(ForwardError::Ring {
                    thread: u32::MAX,
                    source: std::io::Error::other("a forwarding thread panicked"),
                });
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    print_line("final", &ForwardFinal { threads: totals });
    Ok(())
}

fn print_line(word: &str, value: &impl serde::Serialize) {
    use std::io::Write;
    let json = serde_json::to_string(value).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{word} {json}").and_then(|()| out.flush());
}
