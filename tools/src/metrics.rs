//! `MetricsPort`: the relay's counters and scheduler figures in Prometheus text format.
//!
//! Tor's MetricsPort exports no scheduler figures; these are the ones that show KIST
//! working (spec/kist.md "What to measure"): runs, cells and bytes granted per run, grants
//! limited by the congestion window vs the socket buffer, and the time a cell waits in the
//! relay queue and (estimated) in the kernel, as quantiles of per-worker HdrHistograms.
//!
//! The control thread renders a snapshot once a second from the workers' `Stats` events; a
//! small HTTP thread serves the latest one on `GET /metrics`. Nothing here touches the data
//! path.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use kistrel_engine::relay::RelayStats;
use kistrel_sched::{SchedMetrics, SchedulerKind};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The quantiles published of every histogram (enough points to draw a CDF from).
pub const QUANTILES: [f64; 7] = [0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999];

/// Serves the latest rendering on `GET /metrics`.
#[derive(Debug)]
pub struct MetricsServer {
    text: Arc<Mutex<String>>,
    latest: Mutex<BTreeMap<usize, (RelayStats, SchedMetrics, SchedulerKind)>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and starts the HTTP thread.
    pub fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let text = Arc::new(Mutex::new(String::new()));
        let shared = Arc::clone(&text);
        std::thread::Builder::new().name("kistrel-metrics".into()).spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut req = [0u8; 1024];
                let n = conn.read(&mut req).unwrap_or(0);
                let head = String::from_utf8_lossy(&req[..n]);
                let (status, body) = if head.starts_with("GET /metrics") {
                    let body = shared.lock().map(|t| t.clone()).unwrap_or_default();
                    ("200 OK", body)
                } else {
                    ("404 Not Found", "try GET /metrics\n".to_owned())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
        Ok(MetricsServer {
            text,
            latest: Mutex::new(BTreeMap::new()),
            addr,
        })
    }

    /// Starts the server for a `MetricsPort` of a config (if set) and prints
    /// `metrics addr=ADDR` on stdout, so a parent that asked for port 0 learns the port.
    /// `in_use` builds the config error for a taken port (exit 2).
    pub fn for_config(
        addr: Option<SocketAddr>,
        in_use: impl FnOnce(&'static str, SocketAddr) -> crate::config::ConfigError,
    ) -> Result<Option<Self>, crate::error::CliError> {
        let Some(addr) = addr else { return Ok(None) };
        let server = Self::start(addr).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                crate::error::CliError::from(in_use("MetricsPort", addr))
            }
            _ => crate::error::CliError::runtime(format!("binding MetricsPort {addr}"), e),
        })?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "metrics addr={}", server.addr());
        let _ = out.flush();
        Ok(Some(server))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Takes a worker's latest figures and re-renders the page.
    pub fn update(
        &self,
        worker: usize,
        stats: RelayStats,
        sched: SchedMetrics,
        kind: SchedulerKind,
    ) {
        let Ok(mut latest) = self.latest.lock() else {
            return;
        };
        latest.insert(worker, (stats, sched, kind));
        let page = render(&latest);
        if let Ok(mut text) = self.text.lock() {
            *text = page;
        }
    }
}

/// Prometheus text for every worker's latest figures.
pub fn render(workers: &BTreeMap<usize, (RelayStats, SchedMetrics, SchedulerKind)>) -> String {
    let mut registry = Registry::with_prefix("kistrel");
    let counter = |registry: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Counter>::default();
        registry.register(name, help, f.clone());
        f
    };
    let cells_in = counter(&mut registry, "cells_in", "Cells received");
    let cells_out = counter(&mut registry, "cells_out", "Cells handed to the kernel");
    let circuits_rejected = counter(
        &mut registry,
        "circuits_rejected",
        "Circuits closed for protocol violations",
    );
    let channels_rejected = counter(
        &mut registry,
        "channels_rejected",
        "Channels closed for protocol violations",
    );
    let oom_closed = counter(
        &mut registry,
        "oom_closed",
        "Circuits closed by the out-of-memory handler",
    );
    let creates_refused = counter(
        &mut registry,
        "creates_refused",
        "CREATE/CREATE2 refused by the circuit-creation rate limit (DESTROY RESOURCELIMIT)",
    );
    let runs = counter(&mut registry, "sched_runs", "Scheduler runs");
    let grants = counter(&mut registry, "sched_grants", "Per-channel write grants");
    let bytes_granted = counter(
        &mut registry,
        "sched_bytes_granted",
        "Bytes granted by the scheduler",
    );
    let cells_written = counter(
        &mut registry,
        "sched_cells_written",
        "Cells written by scheduler runs",
    );
    let limited = counter(
        &mut registry,
        "sched_grants_exhausted",
        "Grants used up, by what limited them",
    );
    let quantiles = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    registry.register(
        "sched_quantile",
        "Per-worker HdrHistogram quantiles: cells_per_run, bytes_granted_per_run, relay_queue_seconds, kernel_queue_seconds (per KIST grant), kernel_queue_sampled_seconds (every busy channel socket each 100 ms, any scheduler)",
        quantiles.clone(),
    );
    let info = Family::<Labels, Gauge>::default();
    registry.register(
        "scheduler_info",
        "The scheduler in use (value 1)",
        info.clone(),
    );

    for (worker, (stats, m, kind)) in workers {
        let w = vec![("worker".to_owned(), worker.to_string())];
        cells_in.get_or_create(&w).inc_by(stats.cells_in);
        cells_out.get_or_create(&w).inc_by(stats.cells_out);
        circuits_rejected
            .get_or_create(&w)
            .inc_by(stats.circuits_rejected);
        channels_rejected
            .get_or_create(&w)
            .inc_by(stats.channels_rejected);
        oom_closed.get_or_create(&w).inc_by(stats.oom_closed);
        creates_refused
            .get_or_create(&w)
            .inc_by(stats.creates_refused);
        runs.get_or_create(&w).inc_by(m.runs);
        grants.get_or_create(&w).inc_by(m.grants);
        bytes_granted.get_or_create(&w).inc_by(m.bytes_granted);
        cells_written.get_or_create(&w).inc_by(m.cells_written);
        for (by, n) in [
            ("cwnd", m.exhausted_by_cwnd),
            ("sock_buf", m.exhausted_by_sock_buf),
            ("high_water", m.exhausted_by_high_water),
            ("vanilla_max", m.exhausted_by_vanilla_max),
        ] {
            let mut l = w.clone();
            l.push(("by".to_owned(), by.to_owned()));
            limited.get_or_create(&l).inc_by(n);
        }
        let mut l = w.clone();
        l.push(("scheduler".to_owned(), kind.name().to_owned()));
        info.get_or_create(&l).set(1);
        for (name, h, scale) in [
            ("cells_per_run", &m.cells_per_run, 1.0),
            ("bytes_granted_per_run", &m.bytes_granted_per_run, 1.0),
            ("relay_queue_seconds", &m.relay_queue_us, 1e-6),
            ("kernel_queue_seconds", &m.kernel_queue_us, 1e-6),
            (
                "kernel_queue_sampled_seconds",
                &m.kernel_queue_sampled_us,
                1e-6,
            ),
        ] {
            if h.is_empty() {
                continue;
            }
            for q in QUANTILES {
                let mut l = w.clone();
                l.push(("histogram".to_owned(), name.to_owned()));
                l.push(("quantile".to_owned(), q.to_string()));
                quantiles
                    .get_or_create(&l)
                    .set(h.value_at_quantile(q) as f64 * scale);
            }
        }
    }
    let mut out = String::new();
    if encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_quantiles_per_worker() {
        let mut m = SchedMetrics::new();
        m.runs = 7;
        m.exhausted_by_cwnd = 3;
        m.record_kernel_queue_time(2_000);
        let stats = RelayStats {
            cells_in: 10,
            cells_out: 9,
            creates_refused: 4,
            ..RelayStats::default()
        };
        let mut workers = BTreeMap::new();
        workers.insert(1, (stats, m, SchedulerKind::Kist));
        let text = render(&workers);
        assert!(
            text.contains("kistrel_cells_in_total{worker=\"1\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("kistrel_sched_runs_total{worker=\"1\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("kistrel_creates_refused_total{worker=\"1\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("kistrel_sched_grants_exhausted_total{worker=\"1\",by=\"cwnd\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("kistrel_scheduler_info{worker=\"1\",scheduler=\"KIST\"} 1"),
            "{text}"
        );
        // 2 ms recorded: every quantile of the kernel queue is ~0.002 s (HdrHistogram, 3 digits).
        let line = text
            .lines()
            .find(|l| l.contains("kernel_queue_seconds") && l.contains("quantile=\"0.5\""))
            .unwrap_or_default();
        let v: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!((v - 0.002).abs() < 0.00001, "{line}");
        assert!(text.ends_with("# EOF\n"));
    }
}
