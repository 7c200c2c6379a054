//! Reading a node's `MetricsPort` page back into numbers for the bench report.
//!
//! The page is our own Prometheus text (tools/src/metrics.rs): counters summed over a node's
//! workers; histogram quantiles cannot be merged across workers, so a node reports the
//! largest (worst) worker's value for each quantile.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Quantiles of one histogram, in the unit its name says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// 10th percentile.
    pub p10: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Quantiles {
    /// (value, fraction) points, for a CDF drawn from quantiles.
    pub fn points(&self) -> Vec<(f64, f64)> {
        vec![
            (0.0, 0.0),
            (self.p10, 0.1),
            (self.p25, 0.25),
            (self.p50, 0.5),
            (self.p75, 0.75),
            (self.p90, 0.9),
            (self.p99, 0.99),
            (self.p999, 0.999),
        ]
    }
}

/// One node's scheduler figures at the end of a phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSchedMetrics {
    /// `relay1`, ..., `client`.
    pub node: String,
    /// The scheduler its workers run.
    pub scheduler: String,
    /// Scheduler runs (Vanilla: write rounds), all workers.
    pub runs: u64,
    /// Runs per second of the phase.
    pub runs_per_s: f64,
    /// Cells written by runs.
    pub cells_written: u64,
    /// Bytes granted by runs.
    pub bytes_granted: u64,
    /// Grants used up with cells left, by what limited them (cwnd, sock_buf, high_water,
    /// vanilla_max).
    pub grants_exhausted: BTreeMap<String, u64>,
    /// Cells per run.
    pub cells_per_run: Quantiles,
    /// Bytes granted per run.
    pub bytes_granted_per_run: Quantiles,
    /// A cell's time in the relay queue, milliseconds.
    pub relay_queue_ms: Quantiles,
    /// Estimated kernel queue time per KIST grant, milliseconds (KIST only).
    pub kernel_queue_ms: Quantiles,
    /// Estimated kernel queue time of every busy channel socket, sampled every 100 ms
    /// whatever the scheduler, milliseconds: the figure that compares schedulers.
    pub kernel_queue_sampled_ms: Quantiles,
    /// Circuits closed by the out-of-memory handler.
    pub oom_closed: u64,
}

/// `GET /metrics` from `addr` (bounded: 2 s to connect, 5 s to read).
pub(super) fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: kistrel\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!(
            "unexpected reply from {addr}: {}",
            text.lines().next().unwrap_or("")
        ))),
    }
}

/// One sample line's labels, as (key, value) pairs.
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// One sample line: name, labels, value. Comments and malformed lines give `None`.
fn sample(line: &str) -> Option<(&str, Labels<'_>, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}')?;
            let labels = inner
                .split(',')
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            (name, labels)
        }
        None => (series, Vec::new()),
    };
    Some((name, labels, value))
}

fn label<'a>(labels: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Summarise a node's page; `seconds` is the phase's length (for runs/s).
pub(super) fn summarise(node: &str, text: &str, seconds: f64) -> NodeSchedMetrics {
    let mut m = NodeSchedMetrics {
        node: node.to_owned(),
        ..NodeSchedMetrics::default()
    };
    let mut schedulers: Vec<&str> = Vec::new();
    for line in text.lines() {
        let Some((name, labels, v)) = sample(line) else {
            continue;
        };
        let count = v.max(0.0) as u64;
        match name {
            "kistrel_sched_runs_total" => m.runs += count,
            "kistrel_sched_cells_written_total" => m.cells_written += count,
            "kistrel_sched_bytes_granted_total" => m.bytes_granted += count,
            "kistrel_oom_closed_total" => m.oom_closed += count,
            "kistrel_sched_grants_exhausted_total" => {
                if let Some(by) = label(&labels, "by") {
                    *m.grants_exhausted.entry(by.to_owned()).or_default() += count;
                }
            }
            "kistrel_scheduler_info" => {
                if let Some(s) = label(&labels, "scheduler") {
                    if !schedulers.contains(&s) {
                        schedulers.push(s);
                    }
                }
            }
            "kistrel_sched_quantile" => {
                let (Some(h), Some(q)) = (label(&labels, "histogram"), label(&labels, "quantile"))
                else {
                    continue;
                };
                let (target, scale) = match h {
                    "cells_per_run" => (&mut m.cells_per_run, 1.0),
                    "bytes_granted_per_run" => (&mut m.bytes_granted_per_run, 1.0),
                    "relay_queue_seconds" => (&mut m.relay_queue_ms, 1e3),
                    "kernel_queue_seconds" => (&mut m.kernel_queue_ms, 1e3),
                    "kernel_queue_sampled_seconds" => (&mut m.kernel_queue_sampled_ms, 1e3),
                    _ => continue,
                };
                let slot = match q {
                    "0.1" => &mut target.p10,
                    "0.25" => &mut target.p25,
                    "0.5" => &mut target.p50,
                    "0.75" => &mut target.p75,
                    "0.9" => &mut target.p90,
                    "0.99" => &mut target.p99,
                    "0.999" => &mut target.p999,
                    _ => continue,
                };
                *slot = slot.max(v * scale);
            }
            _ => {}
        }
    }
    m.scheduler = schedulers.join(",");
    m.runs_per_s = if seconds > 0.0 {
        m.runs as f64 / seconds
    } else {
        0.0
    };
    m
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kistrel_engine::relay::RelayStats;
    use kistrel_sched::{SchedMetrics, SchedulerKind};

    use super::*;

    /// The page our MetricsPort renders reads back into the numbers that went in.
    #[test]
    fn reads_back_what_the_metrics_port_renders() {
        let mut workers = BTreeMap::new();
        for (w, runs, kq_us) in [(0usize, 10u64, 2_000u64), (1, 30, 50_000)] {
            let mut m = SchedMetrics::new();
            m.runs = runs;
            m.cells_written = runs * 4;
            m.exhausted_by_cwnd = w as u64 + 1;
            m.record_kernel_queue_time(kq_us);
            let stats = RelayStats {
                oom_closed: 2,
                ..RelayStats::default()
            };
            workers.insert(w, (stats, m, SchedulerKind::Kist));
        }
        let text = crate::metrics::render(&workers);
        let s = summarise("relay2", &text, 4.0);
        assert_eq!(s.node, "relay2");
        assert_eq!(s.scheduler, "KIST");
        assert_eq!((s.runs, s.cells_written, s.oom_closed), (40, 160, 4));
        assert_eq!(s.runs_per_s, 10.0);
        assert_eq!(s.grants_exhausted.get("cwnd"), Some(&3));
        assert_eq!(s.grants_exhausted.get("sock_buf"), Some(&0));
        // The worst worker's quantile: 50 ms (HdrHistogram, 3 significant digits).
        assert!((s.kernel_queue_ms.p99 - 50.0).abs() < 0.05, "{s:?}");
        // Nothing sampled: zeros, not garbage.
        assert_eq!(s.kernel_queue_sampled_ms, Quantiles::default());
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "# HELP x\nkistrel_sched_runs_total{worker=\"0\"} 5\nnot a sample\n\
                    kistrel_sched_runs_total{worker=\"1\" 7\nkistrel_sched_runs_total 2\n";
        assert_eq!(summarise("n", text, 0.0).runs, 7);
    }
}
