//! Each node's scheduler figures for the report, from its MetricsPort's `/histograms` page:
//! counters summed over the node's workers, histograms merged (HdrHistogram `add`) and the
//! quantiles taken of the merged distribution.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use kistrel_base::{ErrorKind, HasKind};
use serde::{Deserialize, Serialize};

use crate::metrics::{HistogramError, HistogramsPage};

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
    /// Largest value recorded.
    pub max: f64,
    /// Values recorded (a table shows p99 only from 100 on).
    pub samples: u64,
}

impl Quantiles {
    /// The quantiles of `h`, its values multiplied by `scale` (zeros when empty).
    pub fn of(h: &Histogram<u64>, scale: f64) -> Quantiles {
        if h.is_empty() {
            return Quantiles::default();
        }
        let q = |q: f64| h.value_at_quantile(q) as f64 * scale;
        Quantiles {
            p10: q(0.1),
            p25: q(0.25),
            p50: q(0.5),
            p75: q(0.75),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64 * scale,
            samples: h.len(),
        }
    }

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
    /// Kernel queue times, measured and modelled (flattened: the JSON keeps one level).
    #[serde(flatten)]
    pub kernel: KernelQueueMs,
    /// Circuits closed by the out-of-memory handler.
    pub oom_closed: u64,
}

/// A node's kernel queue figures, milliseconds. The measured ones come from
/// SO_TIMESTAMPING stamps of sampled sends (about one per 1,024 cells per channel); no
/// samples (`samples == 0`) means unavailable (the kernel refused stamping, or nothing was
/// sent), not zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelQueueMs {
    /// Measured: write into the socket to the packet leaving the stack for the driver (SND
    /// stamp): the kernel send queue time. The "kernel queue" figure.
    pub kernel_queue_ms: Quantiles,
    /// Measured: write to the packet entering the qdisc (SCHED stamp).
    pub kernel_sched_ms: Quantiles,
    /// Measured: write to the byte's ACK.
    pub kernel_ack_ms: Quantiles,
    /// Model (notsent x srtt / (cwnd x mss)) per KIST grant (KIST only).
    pub kernel_queue_estimated_ms: Quantiles,
    /// The same model sampled every 100 ms on every busy channel socket, any scheduler.
    pub kernel_queue_estimated_sampled_ms: Quantiles,
}

/// Why a node's page could not be had.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    /// The HTTP request failed.
    #[error("GET /histograms: {0}")]
    Http(#[from] ureq::Error),
    /// Not the JSON we serve.
    #[error("GET /histograms: not a histograms page: {0}")]
    Json(#[from] serde_json::Error),
    /// A histogram on it is unreadable.
    #[error(transparent)]
    Histogram(#[from] HistogramError),
}

impl HasKind for FetchError {
    fn kind(&self) -> ErrorKind {
        match self {
            FetchError::Http(ureq::Error::Io(e)) => HasKind::kind(e),
            FetchError::Http(ureq::Error::Timeout(_)) => ErrorKind::TimedOut,
            FetchError::Http(_) => ErrorKind::Network,
            FetchError::Json(_) => ErrorKind::PeerProtocol,
            FetchError::Histogram(e) => e.kind(),
        }
    }
}

/// `GET /histograms` from a node's MetricsPort (bounded: 5 s in all).
pub(super) fn fetch(addr: SocketAddr) -> Result<HistogramsPage, FetchError> {
    let text = ureq::get(format!("http://{addr}/histograms"))
        .config()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .call()?
        .body_mut()
        .read_to_string()?;
    let page: HistogramsPage = serde_json::from_str(&text)?;
    page.check_schema()?;
    Ok(page)
}

/// The histograms summarised per node: page name, report unit scale (recorded -> reported).
const HISTOGRAMS: [(&str, f64); 8] = [
    ("cells_per_run", 1.0),
    ("bytes_granted_per_run", 1.0),
    ("relay_queue_us", 1e-3),
    ("kernel_queue_us", 1e-3),
    ("kernel_sched_us", 1e-3),
    ("kernel_ack_us", 1e-3),
    ("kernel_queue_estimated_us", 1e-3),
    ("kernel_queue_estimated_sampled_us", 1e-3),
];

/// Summarise a node's page; `seconds` is the phase's length (for runs/s).
pub(super) fn summarise(
    node: &str,
    page: &HistogramsPage,
    seconds: f64,
) -> Result<NodeSchedMetrics, HistogramError> {
    let mut m = NodeSchedMetrics {
        node: node.to_owned(),
        ..NodeSchedMetrics::default()
    };
    let mut schedulers: Vec<&str> = Vec::new();
    let mut merged: [Option<Histogram<u64>>; 8] = Default::default();
    for w in &page.workers {
        let c = &w.counters;
        m.runs += c.runs;
        m.cells_written += c.cells_written;
        m.bytes_granted += c.bytes_granted;
        m.oom_closed += c.oom_closed;
        for (by, n) in &c.grants_exhausted {
            *m.grants_exhausted.entry(by.clone()).or_default() += n;
        }
        if let Some(s) = w.scheduler.as_deref() {
            if !schedulers.contains(&s) {
                schedulers.push(s);
            }
        }
        for ((name, _), slot) in HISTOGRAMS.iter().zip(&mut merged) {
            let Some(h) = w.histogram(name)? else {
                continue;
            };
            match slot {
                // Workers record with the same bounds, so `add` cannot fail; a page from a
                // different build that did would only lose that worker's samples.
                Some(acc) => {
                    let _ = acc.add(&h);
                }
                None => *slot = Some(h),
            }
        }
    }
    let q = |i: usize| {
        merged[i]
            .as_ref()
            .map_or_else(Quantiles::default, |h| Quantiles::of(h, HISTOGRAMS[i].1))
    };
    m.cells_per_run = q(0);
    m.bytes_granted_per_run = q(1);
    m.relay_queue_ms = q(2);
    m.kernel = KernelQueueMs {
        kernel_queue_ms: q(3),
        kernel_sched_ms: q(4),
        kernel_ack_ms: q(5),
        kernel_queue_estimated_ms: q(6),
        kernel_queue_estimated_sampled_ms: q(7),
    };
    m.scheduler = schedulers.join(",");
    m.runs_per_s = if seconds > 0.0 {
        m.runs as f64 / seconds
    } else {
        0.0
    };
    Ok(m)
}

#[cfg(test)]
mod tests {
    use kistrel_sched::{KernelStage, SchedulerKind};

    use super::*;
    use crate::metrics::figures::zeroed;
    use crate::metrics::histograms::page;

    /// Two workers' pages read back into one node's figures: counters summed, quantiles of
    /// the merged histograms (not the worst worker's, not a mean of quantiles).
    #[test]
    fn merges_workers_histograms() {
        let mut figures = zeroed(2);
        for (w, runs, samples) in [(0usize, 10u64, 90u64), (1, 30, 10)] {
            let f = figures.get_mut(&w).unwrap();
            f.scheduler = Some(SchedulerKind::Kist);
            f.sched.runs = runs;
            f.sched.cells_written = runs * 4;
            f.sched.exhausted.cwnd = w as u64 + 1;
            f.stats.oom_closed = 2;
            // Worker 0: 90 samples of 2 ms; worker 1: 10 samples of 50 ms.
            for _ in 0..samples {
                f.sched
                    .record_kernel_queue_estimate(if w == 0 { 2_000 } else { 50_000 });
                f.sched
                    .record_kernel_stage(KernelStage::Sent, if w == 0 { 300 } else { 9_000 });
            }
        }
        let s = summarise("relay2", &page(&figures), 4.0).unwrap();
        assert_eq!(s.node, "relay2");
        assert_eq!(s.scheduler, "KIST");
        assert_eq!((s.runs, s.cells_written, s.oom_closed), (40, 160, 4));
        assert_eq!(s.runs_per_s, 10.0);
        assert_eq!(s.grants_exhausted.get("cwnd"), Some(&3));
        assert_eq!(s.grants_exhausted.get("sock_buf"), Some(&0));
        // Merged: 90 % of samples at 2 ms, so p50 and p90 are 2 ms, p99 is 50 ms (3
        // significant digits). Averaging the workers' medians would give 26 ms.
        let k = &s.kernel.kernel_queue_estimated_ms;
        assert!((k.p50 - 2.0).abs() < 0.01, "{k:?}");
        assert!((k.p90 - 2.0).abs() < 0.01, "{k:?}");
        assert!((k.p99 - 50.0).abs() < 0.05, "{k:?}");
        assert!((k.max - 50.0).abs() < 0.05, "{k:?}");
        assert_eq!(k.samples, 100);
        // The measured kernel queue (SND stamps) is its own figure, merged the same way.
        let m = &s.kernel.kernel_queue_ms;
        assert!((m.p50 - 0.3).abs() < 0.001, "{m:?}");
        assert!((m.p99 - 9.0).abs() < 0.01, "{m:?}");
        assert_eq!(m.samples, 100);
        // Nothing sampled: no samples (shown as unavailable), not garbage.
        assert_eq!(
            s.kernel.kernel_queue_estimated_sampled_ms,
            Quantiles::default()
        );
        assert_eq!(s.kernel.kernel_ack_ms, Quantiles::default());
        // The JSON stays flat: the figures sit beside the other histograms.
        let v = serde_json::to_value(&s).unwrap();
        for name in ["kernel_queue_ms", "kernel_sched_ms", "kernel_ack_ms"] {
            assert!(v[name]["samples"].is_u64(), "{name}");
        }
        assert!(v.get("kernel").is_none());
    }

    #[test]
    fn a_bad_histogram_is_an_error() {
        let mut p = page(&zeroed(1));
        p.workers[0]
            .histograms
            .insert("relay_queue_us".into(), "AAAA".into());
        assert!(summarise("n", &p, 1.0).is_err());
    }
}
