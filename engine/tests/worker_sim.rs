//! KIST's advantage for a low-volume circuit, shown through the real `Worker` (relay,
//! scheduler, edges, origins, link seam) over a simulated driver in virtual time: the
//! scenario of sched/tests/scheduler/sim.rs, end to end. Deterministic: no sockets, no
//! threads, no wall clock.
//!
//! ```text
//!   bulk servers (2 circuits x 2 streams) -+                       10 Mbit/s, 40 ms RTT,
//!   low-volume server (996 B every 50-150 ms) -> exit worker ==> cwnd 40, SO_SNDBUF 1 MiB
//!                                                  (EWMA + KIST | Vanilla)  ==> client worker
//!                                                                               -> SOCKS apps
//! ```
//!
//! The exit's channel to the client is the bottleneck. With Vanilla the exit hands the kernel
//! whatever its send buffer takes, so the low-volume circuit's cells wait behind up to the
//! bulk circuits' whole windows (~1 MB, ~0.8 s at the bottleneck); KIST writes about what the
//! congestion window can send, the bulk cells wait in the relay instead, and EWMA sends the
//! low-volume cells first.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use kistrel_engine::driver::sim::{PipeConfig, SimConn};
use kistrel_engine::driver::Driver;
use kistrel_engine::time::Instant;
use kistrel_sched::SchedulerKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use support::{addr, drain, socks_request, AppConn, SimTor, SOCKS_REPLIES_LEN};

const STEP: Duration = Duration::from_micros(250);
const WARMUP: Duration = Duration::from_secs(3);
const DURATION: Duration = Duration::from_secs(12);
/// One low-volume record: two DATA cells' worth, stamped with its send time.
const RECORD: usize = 996;
/// 10 Mbit/s.
const RATE: u64 = 1_250_000;

fn bottleneck() -> PipeConfig {
    PipeConfig {
        rate: Some(RATE),
        rtt: Duration::from_millis(40),
        cwnd: Some(40), // the path's BDP is 50 kB = 35 packets
        mss: 1448,
        sndbuf: 1 << 20, // Tor's era of large send buffers (the papers' setting)
        rcvbuf: 4 << 20,
    }
}

#[derive(Debug, Default)]
struct Outcome {
    /// Server-send to app-receive, of the low-volume records sent after warm-up, sorted.
    low_delays: Vec<Duration>,
    /// Bulk bytes the apps received after warm-up.
    bulk_bytes: u64,
    circuits: usize,
}

impl Outcome {
    fn median_low(&self) -> Duration {
        self.low_delays[self.low_delays.len() / 2]
    }
    fn bulk_rate(&self) -> f64 {
        self.bulk_bytes as f64 / (DURATION - WARMUP).as_secs_f64()
    }
}

fn simulate(kind: SchedulerKind) -> Outcome {
    let mut tor = SimTor::new(kind, bottleneck(), None);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    tor.servers.listen(addr(3, 80)).expect("bulk listener");
    tor.servers
        .listen(addr(3, 81))
        .expect("low-volume listener");
    // Two bulk circuits (isolation keys) with two streams each, one low-volume circuit.
    let mut apps: HashMap<SimConn, AppConn> = HashMap::new();
    for user in ["bulk-a", "bulk-a", "bulk-b", "bulk-b"] {
        let app = AppConn::open(&mut tor.apps, &socks_request(user, "10.0.0.3", 80));
        apps.insert(app.conn, app);
    }
    let low = AppConn::open(&mut tor.apps, &socks_request("low", "10.0.0.3", 81));
    let low_conn = low.conn;
    apps.insert(low_conn, low);

    let mut bulk_servers = Vec::new();
    let mut low_server = None;
    let start = tor.now();
    let (measure_from, end) = (start + WARMUP, start + DURATION);
    let mut next_low = start;
    let mut out = Outcome::default();
    let mut parsed = SOCKS_REPLIES_LEN;
    while tor.now() < end {
        let now = tor.now();
        drain(
            &mut tor.servers,
            |_, local, conn| match local.port() {
                80 => bulk_servers.push(conn),
                _ => low_server = Some(conn),
            },
            |_, _| {},
        );
        for &c in &bulk_servers {
            while tor.servers.queued_len(c) < 64 << 10 {
                let Some(buf) = tor.servers.send_buf(c) else {
                    break;
                };
                buf.extend_from_slice(&[0xb5; 16 << 10]);
            }
        }
        if let Some(c) = low_server.filter(|_| now >= next_low) {
            let mut record = [0u8; RECORD];
            record[..8].copy_from_slice(&now.as_nanos().to_be_bytes());
            tor.servers
                .send_buf(c)
                .expect("low server")
                .extend_from_slice(&record);
            next_low = now + Duration::from_millis(rng.random_range(50..150));
        }
        drain(
            &mut tor.apps,
            |_, _, _| {},
            |conn, data| {
                let Some(app) = apps.get_mut(&conn) else {
                    return;
                };
                match data {
                    None => app.eof = true,
                    Some(d) if conn == low_conn => app.rx.extend_from_slice(d),
                    Some(d) => {
                        let replies = SOCKS_REPLIES_LEN.saturating_sub(app.rx.len()).min(d.len());
                        app.rx.extend_from_slice(&d[..replies]);
                        if now >= measure_from {
                            out.bulk_bytes += (d.len() - replies) as u64;
                        }
                    }
                }
            },
        );
        let low = &apps[&low_conn];
        while low.rx.len() >= parsed + RECORD {
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(&low.rx[parsed..parsed + 8]);
            let sent = Instant::from_nanos(u64::from_be_bytes(stamp));
            if sent >= measure_from {
                out.low_delays.push(now - sent);
            }
            parsed += RECORD;
        }
        tor.step(STEP);
    }
    for app in apps.values() {
        assert_eq!(app.reply(), Some(0), "every SOCKS request succeeded");
        assert!(!app.eof);
    }
    out.circuits = tor.circuits_built;
    out.low_delays.sort();
    out
}

#[test]
fn kist_cuts_low_volume_delay_through_the_real_worker() {
    let kist = simulate(SchedulerKind::Kist);
    let vanilla = simulate(SchedulerKind::Vanilla);
    let (k, v) = (kist.median_low(), vanilla.median_low());
    eprintln!(
        "median low-volume delay: KIST {k:?}, Vanilla {v:?}; bulk KIST {:.0} B/s, Vanilla {:.0} B/s",
        kist.bulk_rate(),
        vanilla.bulk_rate()
    );
    // The client's standing circuit (no credentials) and one per isolation key, built once.
    assert_eq!((kist.circuits, vanilla.circuits), (4, 4));
    // About 90 records after warm-up (one per 100 ms).
    assert!(kist.low_delays.len() > 70 && vanilla.low_delays.len() > 70);
    assert!(
        k.as_secs_f64() < 0.5 * v.as_secs_f64(),
        "KIST {k:?} vs Vanilla {v:?}"
    );
    // Vanilla's delay is the bulk windows draining at the bottleneck (hundreds of ms).
    assert!(v > Duration::from_millis(300), "Vanilla {v:?}");
    // KIST keeps the kernel queue near one congestion window (40 x 1448 B = 46 ms here).
    assert!(k < Duration::from_millis(150), "KIST {k:?}");
    // Both keep the bottleneck busy with bulk data (less cell headers and the low circuit).
    let payload = RATE as f64 * 498.0 / 514.0;
    assert!(
        vanilla.bulk_rate() > 0.9 * payload,
        "{}",
        vanilla.bulk_rate()
    );
    let ratio = kist.bulk_rate() / vanilla.bulk_rate();
    assert!(
        (0.9..=1.1).contains(&ratio),
        "bulk throughput ratio {ratio}"
    );
}
