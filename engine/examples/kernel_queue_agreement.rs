//! Does the measured kernel queue time agree with an independent reading?
//!
//! One TCP connection on loopback. The receiver reads at a fixed rate, so the sender's
//! kernel queue stays full. The sender writes 16 KiB at a time and samples its sends
//! exactly as the workers do (`sys::txstamp::TxStamps`: about one send per 64 cells, stamps
//! read from the error queue). Each sample gives the time from the write to the SND
//! stamp, which is the figure the metrics page calls `kistrel_kernel_queue_seconds`.
//!
//! The independent reading comes from `ss -tin` on the same socket, run every 100 ms. The
//! time a newly written byte must wait is the unsent bytes ahead of it over the rate they
//! leave at: `notsent` / throughput, the throughput being the growth of `bytes_acked`
//! between two readings. (ss's `delivery_rate` is printed too but not compared: it is
//! Linux's rate sample of the last ACKed flight, which on loopback is the burst rate after
//! a window update, several times the connection's throughput.) The two medians must agree
//! within the tolerance; the exit status is 1 when they do not.
//!
//! `cargo run --release -p kistrel-engine --example kernel_queue_agreement -- [SECONDS] [RATE_MIB_S] [TOLERANCE]`
//! (defaults 10, 8, 0.3; Linux only; needs `ss` from iproute2).

use std::io::{IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kistrel_engine::sys::txstamp::{sendmsg_sampled, KernelStage, SampleCmsg, TxStamps};

/// Bytes per write: 32 cells.
const WRITE: usize = 32 * 514;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: f64| {
        args.get(i)
            .and_then(|a| a.parse::<f64>().ok())
            .unwrap_or(default)
    };
    let (secs, rate_mib, tolerance) = (arg(0, 10.0), arg(1, 8.0), arg(2, 0.3));
    match run(Duration::from_secs_f64(secs), rate_mib, tolerance) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kernel_queue_agreement: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(length: Duration, rate_mib: f64, tolerance: f64) -> std::io::Result<bool> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        thread::spawn(move || read_at_rate(&listener, rate_mib, &stop))
    };
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    // A fixed send buffer (no autotuning): its unsent part is the queue being measured.
    sock.set_send_buffer_size(1 << 20)?;
    sock.connect(&addr.into())?;
    let mut stream: TcpStream = sock.into();
    let local = stream.local_addr()?;
    let ss = {
        let stop = stop.clone();
        thread::spawn(move || ss_readings(local, &stop))
    };
    let measured = write_sampled(&mut stream, length)?;
    stop.store(true, Ordering::Relaxed);
    drop(stream);
    let _ = reader.join();
    let readings = ss.join().unwrap_or_default();
    Ok(report(
        &measured,
        &ss_waits(&readings, true),
        &ss_waits(&readings, false),
        rate_mib,
        tolerance,
    ))
}

/// Writes for `length`, sampling as the workers do; the write -> SND delays in ms.
fn write_sampled(stream: &mut TcpStream, length: Duration) -> std::io::Result<Vec<f64>> {
    let fd = stream.as_raw_fd();
    let mut stamps = TxStamps::default();
    stamps.enable(fd)?;
    let cmsg = SampleCmsg::new();
    let data = vec![0x5au8; WRITE];
    let mut measured = Vec::new();
    let mut record = |stage: KernelStage, us: u64| {
        if stage == KernelStage::Sent {
            measured.push(us as f64 / 1000.0);
        }
    };
    let start = Instant::now();
    let mut drained = Instant::now();
    while start.elapsed() < length {
        if stamps.sample(WRITE) {
            match sendmsg_sampled(fd, &[IoSlice::new(&data)], &cmsg) {
                Ok(n) => stamps.on_sent(n, true),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    stamps.on_sent(0, true);
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        } else {
            let n = stream.write(&data)?;
            stamps.on_sent(n, false);
        }
        if drained.elapsed() > Duration::from_millis(20) {
            stamps.drain(fd, &mut record);
            drained = Instant::now();
        }
    }
    // The last samples' SND stamps come within a queue's time.
    thread::sleep(Duration::from_millis(500));
    stamps.drain(fd, &mut record);
    Ok(measured)
}

/// Accepts one connection and reads it at `rate_mib` MiB/s until the writer closes it.
fn read_at_rate(listener: &TcpListener, rate_mib: f64, stop: &AtomicBool) {
    let Ok((mut conn, _)) = listener.accept() else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    let start = Instant::now();
    let mut total = 0f64;
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        total += n as f64;
        let due = Duration::from_secs_f64(total / (rate_mib * 1024.0 * 1024.0));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            thread::sleep(wait);
        }
        if stop.load(Ordering::Relaxed) && n == 0 {
            break;
        }
    }
}

/// One `ss -tin` reading of the writer's socket.
#[derive(Clone, Copy, Debug)]
struct SsReading {
    at: Instant,
    notsent: f64,
    bytes_acked: f64,
    /// `delivery_rate`, bytes/s (Linux's per-ACK rate sample).
    delivery_rate: f64,
}

/// Every 100 ms: `ss -tin` on the writer's socket.
fn ss_readings(local: SocketAddr, stop: &AtomicBool) -> Vec<SsReading> {
    let mut readings = Vec::new();
    thread::sleep(Duration::from_millis(500));
    while !stop.load(Ordering::Relaxed) {
        let filter = format!("sport = :{}", local.port());
        if let Ok(out) = Command::new("ss").args(["-tin", &filter]).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(r) = parse_ss(&text, Instant::now()) {
                readings.push(r);
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    readings
}

/// The fields of one `ss -tin` answer (`None` if it has no connection line).
fn parse_ss(text: &str, at: Instant) -> Option<SsReading> {
    let field = |name: &str| {
        let at = text.find(name)? + name.len();
        let value: String = text[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        Some(value)
    };
    let notsent: f64 = field("notsent:").map_or(Some(0.0), |v| v.parse().ok())?;
    let bytes_acked: f64 = field("bytes_acked:")?.parse().ok()?;
    let rate = field("delivery_rate ").unwrap_or_default();
    let number = rate.trim_end_matches("bps");
    let (digits, scale) = match number.chars().last() {
        Some('G') => (&number[..number.len() - 1], 1e9),
        Some('M') => (&number[..number.len() - 1], 1e6),
        Some('K' | 'k') => (&number[..number.len() - 1], 1e3),
        _ => (number, 1.0),
    };
    let delivery_rate = digits.parse::<f64>().unwrap_or(0.0) * scale / 8.0;
    Some(SsReading {
        at,
        notsent,
        bytes_acked,
        delivery_rate,
    })
}

/// Predicted waits in ms: each reading's notsent bytes over a rate, `throughput` (from
/// bytes_acked between this reading and the one before) or ss's own `delivery_rate`.
fn ss_waits(readings: &[SsReading], throughput: bool) -> Vec<f64> {
    readings
        .windows(2)
        .filter_map(|w| {
            let rate = if throughput {
                (w[1].bytes_acked - w[0].bytes_acked)
                    / w[1].at.duration_since(w[0].at).as_secs_f64()
            } else {
                w[1].delivery_rate
            };
            (rate > 0.0).then(|| w[1].notsent / rate * 1000.0)
        })
        .collect()
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Prints both figures; whether they agree within `tolerance` (relative).
fn report(
    measured: &[f64],
    predicted: &[f64],
    per_ack: &[f64],
    rate_mib: f64,
    tolerance: f64,
) -> bool {
    let (Some(m), Some(p)) = (median(measured), median(predicted)) else {
        println!(
            "not enough readings: {} SND stamps, {} ss readings",
            measured.len(),
            predicted.len()
        );
        return false;
    };
    let ratio = m / p;
    let agree = (ratio - 1.0).abs() <= tolerance;
    println!("reader rate                      {rate_mib} MiB/s, send buffer 1 MiB");
    println!(
        "measured write->SND (median)     {m:.1} ms  (n = {} sampled sends)",
        measured.len()
    );
    println!(
        "ss -tin notsent / throughput     {p:.1} ms  (n = {} readings; throughput from bytes_acked)",
        predicted.len()
    );
    if let Some(d) = median(per_ack) {
        println!(
            "ss -tin notsent / delivery_rate  {d:.1} ms  (not compared: Linux's per-ACK rate sample)"
        );
    }
    println!(
        "measured / ss                    {ratio:.3}  ({} within ±{tolerance})",
        if agree { "agrees" } else { "DOES NOT agree" }
    );
    agree
}
