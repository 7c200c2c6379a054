//! `cargo run --release -p kistrel-engine --example uring_forward_bench -- [MIB] [STREAMS]
//! [RECV_BUF_KIB] [MAX_QUEUED_KIB]`
//!
//! Throughput of the plain io_uring forwarder against a direct loopback connection, measured
//! in the same run (docs/perf.md: every claim is a ratio against a baseline from the same
//! harness). Std clients write MIB MiB on each of STREAMS connections to a std sink that
//! discards; once directly, once through `uring_forward`'s `Forwarder` on its own thread.

#[cfg(target_os = "linux")]
#[path = "uring_forward/forwarder.rs"]
mod forwarder;

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("uring_forward_bench needs Linux (io_uring)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use kistrel_engine::sys;
    use kistrel_engine::uring::{Ring, RingConfig};

    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let streams: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let buf_kib: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    let queue_kib: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1024);

    // A sink that reads and discards, one thread per connection.
    let sink = TcpListener::bind("127.0.0.1:0")?;
    let sink_addr = sink.local_addr()?;
    thread::spawn(move || {
        for s in sink.incoming().flatten() {
            thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 256 << 10];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    let listener = sys::reuseport_listener("127.0.0.1:0".parse()?, 1024)?;
    let fwd_addr = listener.local_addr()?;
    let stop2 = Arc::clone(&stop);
    let fwd_thread = thread::spawn(move || -> Result<(u64, String), String> {
        let config = RingConfig {
            buf_size: buf_kib << 10,
            ..RingConfig::default()
        };
        let ring = Ring::new(&config).map_err(|e| e.to_string())?;
        let mut fwd = forwarder::Forwarder::new(ring, listener, sink_addr, queue_kib << 10)
            .map_err(|e| e.to_string())?;
        while !stop2.load(Ordering::Relaxed) {
            fwd.run_once(Some(Duration::from_millis(50)))
                .map_err(|e| e.to_string())?;
        }
        fwd.close_listener().map_err(|e| e.to_string())?;
        let open = fwd.pairs();
        Ok((
            fwd.forwarded,
            format!("{open} pairs open; {:?}", fwd.ring.stats()),
        ))
    });

    let run = |addr: SocketAddr| -> std::io::Result<f64> {
        let start = Instant::now();
        let writers: Vec<_> = (0..streams)
            .map(|_| {
                thread::spawn(move || -> std::io::Result<()> {
                    let mut s = TcpStream::connect(addr)?;
                    let chunk = vec![0x42u8; 256 << 10];
                    for _ in 0..mib * 4 {
                        s.write_all(&chunk)?;
                    }
                    s.shutdown(Shutdown::Write)?;
                    // Wait for the far end to close: all bytes went through.
                    let mut b = [0u8; 1];
                    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
                    Ok(())
                })
            })
            .collect();
        for w in writers {
            w.join()
                .map_err(|_| std::io::Error::other("writer panicked"))??;
        }
        let secs = start.elapsed().as_secs_f64();
        Ok((mib * streams) as f64 / secs)
    };

    let direct = run(sink_addr)?;
    let forwarded = run(fwd_addr)?;
    stop.store(true, Ordering::Relaxed);
    let (bytes, stats) = fwd_thread.join().map_err(|_| "forwarder panicked")??;
    println!("streams {streams}, {mib} MiB each, {buf_kib} KiB receive buffers, queue limit {queue_kib} KiB");
    println!("direct:    {direct:8.0} MiB/s");
    println!(
        "forwarder: {forwarded:8.0} MiB/s  (ratio {:.2})",
        forwarded / direct
    );
    println!("forwarded {} MiB; {stats}", bytes >> 20);
    Ok(())
}
