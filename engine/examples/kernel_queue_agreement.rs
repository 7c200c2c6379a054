//! Does the measured kernel queue time agree with an independent reading?
//!
//! One TCP connection on loopback. The receiver reads at a fixed rate, so the sender's
//! kernel queue stays full. The sender writes 16 KiB at a time and samples its sends
//! exactly as the workers do (`sys::txstamp::TxStamps`: about one send per 1,024 cells, stamps
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
//! `cargo run --release -p kistrel-engine --example kernel_queue_agreement -- [--shaped] [SECONDS] [RATE_MIB_S] [TOLERANCE]`
//! (defaults 10, 8, 0.3; Linux only; needs `ss` from iproute2).
//!
//! `--shaped` runs the connection between two network namespaces instead. A veth pair joins
//! them, and a tbf qdisc of RATE on the sender's side makes the bottleneck (root, `ip`,
//! `tc`). SND is stamped after the qdisc, so there the other reading adds the qdisc's backlog
//! (`tc -s -j qdisc`) to the unsent bytes.

use std::io::{self, IoSlice, Read, Write};
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
    let (mode, rest) = match args.first().map(String::as_str) {
        Some(m @ ("--shaped" | "--sender" | "--receiver")) => (m, &args[1..]),
        _ => ("--loopback", &args[..]),
    };
    let num = |i: usize, default: f64| {
        rest.get(i)
            .and_then(|a| a.parse::<f64>().ok())
            .unwrap_or(default)
    };
    let result = match mode {
        "--receiver" => {
            receive(rest.first().map_or("", String::as_str), num(1, 0.0)).map(|()| true)
        }
        "--sender" => {
            let addr = rest.first().map_or("", String::as_str);
            let dev = rest.get(3).map(String::as_str);
            send_and_compare(addr, secs(num(1, 10.0)), num(2, 0.3), dev, None)
        }
        "--shaped" => shaped(secs(num(0, 10.0)), num(1, 8.0), num(2, 0.3)),
        _ => loopback(secs(num(0, 10.0)), num(1, 8.0), num(2, 0.3)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kernel_queue_agreement: {e}");
            ExitCode::from(2)
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(1.0))
}

/// Loopback: a reader thread takes `rate_mib` MiB/s; the queue builds in the sender's socket.
fn loopback(length: Duration, rate_mib: f64, tolerance: f64) -> io::Result<bool> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = thread::spawn(move || read_at_rate(&listener, rate_mib));
    let agree = send_and_compare(&addr.to_string(), length, tolerance, None, Some(rate_mib));
    let _ = reader.join();
    agree
}

/// Connects to `addr`, writes for `length` and compares the measured write->SND with `ss`
/// (plus the backlog of `dev`'s qdisc, where the shaped run's queue also builds).
fn send_and_compare(
    addr: &str,
    length: Duration,
    tolerance: f64,
    dev: Option<&str>,
    reader_rate: Option<f64>,
) -> io::Result<bool> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    // A fixed send buffer (no autotuning): its unsent part is the queue being measured.
    sock.set_send_buffer_size(1 << 20)?;
    sock.connect(&addr.into())?;
    let mut stream: TcpStream = sock.into();
    let local = stream.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let ss = {
        let stop = stop.clone();
        let dev = dev.map(str::to_owned);
        thread::spawn(move || ss_readings(local, dev.as_deref(), &stop))
    };
    let measured = write_sampled(&mut stream, length)?;
    stop.store(true, Ordering::Relaxed);
    drop(stream);
    let readings = ss.join().unwrap_or_default();
    let setting = match (reader_rate, dev) {
        (Some(r), _) => format!("loopback, reader at {r} MiB/s, send buffer 1 MiB"),
        (None, Some(d)) => {
            format!("shaped: tbf on {d}, send buffer 1 MiB; queue = notsent + qdisc backlog")
        }
        (None, None) => "send buffer 1 MiB".to_owned(),
    };
    Ok(report(
        &setting,
        &measured,
        &ss_waits(&readings, true),
        &ss_waits(&readings, false),
        tolerance,
    ))
}

/// The shaped run: sender and receiver in two network namespaces joined by a veth pair whose
/// sender side has a tbf qdisc of `rate_mib` MiB/s (root, `ip`, `tc`). This program runs
/// itself in each namespace (`--receiver`, `--sender`); the namespaces are removed after.
fn shaped(length: Duration, rate_mib: f64, tolerance: f64) -> io::Result<bool> {
    let tag = std::process::id() % 100_000;
    let net = Netns {
        sender: format!("kqa{tag}s"),
        receiver: format!("kqa{tag}r"),
    };
    let dev = format!("kqa{tag}a");
    let kbit = (rate_mib * 1024.0 * 1024.0 * 8.0 / 1000.0).round();
    let me = std::env::current_exe()?;
    let me = me.to_string_lossy();
    net.setup(&dev, kbit)?;
    let mut receiver = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.receiver,
            &me,
            "--receiver",
            "10.213.0.2:9100",
            "0",
        ])
        .spawn()?;
    thread::sleep(Duration::from_millis(300));
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.sender,
            &me,
            "--sender",
            "10.213.0.2:9100",
        ])
        .arg(length.as_secs_f64().to_string())
        .arg(tolerance.to_string())
        .arg(&dev)
        .status();
    let _ = receiver.kill();
    let _ = receiver.wait();
    Ok(status?.success())
}

/// The two namespaces of the shaped run; deleted on drop.
struct Netns {
    sender: String,
    receiver: String,
}

impl Netns {
    fn setup(&self, dev: &str, kbit: f64) -> io::Result<()> {
        let (s, r) = (self.sender.as_str(), self.receiver.as_str());
        let peer = format!("{dev}b");
        let rate = format!("{kbit}kbit");
        let steps: [&[&str]; 9] = [
            &["ip", "netns", "add", s],
            &["ip", "netns", "add", r],
            &[
                "ip", "-n", s, "link", "add", dev, "type", "veth", "peer", "name", &peer, "netns",
                r,
            ],
            &["ip", "-n", s, "addr", "add", "10.213.0.1/30", "dev", dev],
            &["ip", "-n", r, "addr", "add", "10.213.0.2/30", "dev", &peer],
            &["ip", "-n", s, "link", "set", dev, "up"],
            &["ip", "-n", r, "link", "set", &peer, "up"],
            &["ip", "-n", r, "link", "set", "lo", "up"],
            &[
                "tc", "-n", s, "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst",
                "64kb", "latency", "2s",
            ],
        ];
        for step in steps {
            let status = Command::new(step[0]).args(&step[1..]).status()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "`{}` failed (the shaped run needs root, ip and tc)",
                    step.join(" ")
                )));
            }
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.sender, &self.receiver] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `--receiver ADDR RATE`: accepts one connection on ADDR and reads it (RATE MiB/s, 0 = as
/// fast as it comes) until it closes.
fn receive(addr: &str, rate_mib: f64) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    read_at_rate(&listener, rate_mib);
    Ok(())
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

/// Accepts one connection and reads it at `rate_mib` MiB/s (0: as fast as it comes) until
/// the writer closes it.
fn read_at_rate(listener: &TcpListener, rate_mib: f64) {
    let Ok((mut conn, _)) = listener.accept() else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    let start = Instant::now();
    let mut total = 0f64;
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        total += n as f64;
        if rate_mib > 0.0 {
            let due = Duration::from_secs_f64(total / (rate_mib * 1024.0 * 1024.0));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
}

/// One `ss -tin` reading of the writer's socket.
#[derive(Clone, Copy, Debug)]
struct SsReading {
    at: Instant,
    /// Unsent bytes in the socket plus the qdisc's backlog (shaped run).
    notsent: f64,
    bytes_acked: f64,
    /// `delivery_rate`, bytes/s (Linux's per-ACK rate sample).
    delivery_rate: f64,
}

/// Every 100 ms: `ss -tin` on the writer's socket (and `tc -s -j qdisc` on `dev`).
fn ss_readings(local: SocketAddr, dev: Option<&str>, stop: &AtomicBool) -> Vec<SsReading> {
    let mut readings = Vec::new();
    thread::sleep(Duration::from_millis(500));
    while !stop.load(Ordering::Relaxed) {
        let filter = format!("sport = :{}", local.port());
        if let Ok(out) = Command::new("ss").args(["-tin", &filter]).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(mut r) = parse_ss(&text, Instant::now()) {
                r.notsent += dev.map_or(0.0, qdisc_backlog);
                readings.push(r);
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    readings
}

/// Bytes queued in `dev`'s root qdisc (`tc -s -j qdisc show`; 0 if unreadable).
fn qdisc_backlog(dev: &str) -> f64 {
    let Ok(out) = Command::new("tc")
        .args(["-s", "-j", "qdisc", "show", "dev", dev])
        .output()
    else {
        return 0.0;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.find("\"backlog\":")
        .map(|at| {
            text[at + 10..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0)
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
    setting: &str,
    measured: &[f64],
    predicted: &[f64],
    per_ack: &[f64],
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
    println!("{setting}");
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
