//! `cargo run --release -p kistrel-engine --example uring_forward -- LISTEN UPSTREAM [SECONDS]`
//!
//! A plain io_uring TCP forwarder (accept on LISTEN, connect to UPSTREAM, copy both ways):
//! the baseline to run beside a kistrel relay in the same benchmark.

#[cfg(target_os = "linux")]
mod forwarder;

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("uring_forward needs Linux (io_uring)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use kistrel_engine::sys;
    use kistrel_engine::uring::{Ring, RingConfig};

    let mut args = std::env::args().skip(1);
    let usage = "usage: uring_forward LISTEN_ADDR UPSTREAM_ADDR [SECONDS]";
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let seconds: Option<u64> = args.next().map(|s| s.parse()).transpose()?;

    let ring = Ring::new(&RingConfig::default())?;
    eprintln!("io_uring features: {:?}", ring.features());
    let listener = sys::reuseport_listener(listen, 1024)?;
    let mut fwd = forwarder::Forwarder::new(ring, listener, upstream, 1 << 20)?;
    let start = Instant::now();
    let end = seconds.map(|s| start + Duration::from_secs(s));
    let mut last_report = start;
    loop {
        fwd.run_once(Some(Duration::from_millis(100)))?;
        let now = Instant::now();
        if now.duration_since(last_report) >= Duration::from_secs(1) {
            last_report = now;
            eprintln!(
                "{:.0}s: {} MiB forwarded, {} pairs open, {} closed, {:?}",
                now.duration_since(start).as_secs_f64(),
                fwd.forwarded >> 20,
                fwd.pairs(),
                fwd.pairs_done,
                fwd.ring.stats()
            );
        }
        if end.is_some_and(|e| now >= e) {
            // Stop accepting; dropping the ring then cancels and closes the rest.
            fwd.close_listener()?;
            fwd.run_once(Some(Duration::ZERO))?;
            return Ok(());
        }
    }
}
