//! The `/metrics` page: OpenMetrics 1.0.0 or Prometheus text 0.0.4, by `Accept`.
//!
//! Both are encoded by `prometheus-client` (which writes OpenMetrics); the 0.0.4 page is the
//! same samples with 0.0.4's family naming: a counter's family is named like its `_total`
//! sample, an info family becomes a gauge named `_info`, and there are no `# UNIT` or `# EOF`
//! lines. Families and series come in a fixed order (workers ascending).
//!
//! One histogram per quantity, its unit in its name: the HdrHistograms are exported as
//! Prometheus histograms with fixed 1-2-5 (or power-of-4) buckets; `_sum` is the histogram's
//! mean times its count (HdrHistogram keeps no exact sum).

use std::fmt;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::figures::{Figures, WorkerFigures};

/// The two page formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
    /// `text/plain; version=0.0.4` (Prometheus' classic text format).
    Text004,
}

impl Format {
    /// The `Content-Type` of a page in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: OpenMetrics when it lists
    /// `application/openmetrics-text` with a q-value at least that of any `text/plain`,
    /// else 0.0.4 (also for no header, as Prometheus' own exporters do).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text004;
        };
        let (mut open, mut plain) = (None::<f64>, None::<f64>);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            let slot = match media.as_str() {
                "application/openmetrics-text" => &mut open,
                "text/plain" | "text/*" | "*/*" => &mut plain,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        match (open, plain) {
            (Some(o), p) if o > 0.0 && o >= p.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::Text004,
        }
    }
}

/// The page for `figures` in `format`.
pub fn render(figures: &Figures, format: Format) -> String {
    let mut registry = Registry::with_prefix("kistrel");
    registry.register_collector(Box::new(FiguresCollector(figures.clone())));
    let mut open = String::new();
    if prometheus_client::encoding::text::encode(&mut open, &registry).is_err() {
        // Writing into a String cannot fail; an encoder error would be a bug in a family.
        tracing::error!("encoding the metrics page failed");
    }
    match format {
        Format::OpenMetrics => open,
        Format::Text004 => to_text_004(&open),
    }
}

/// OpenMetrics text (as `prometheus-client` writes it: `# HELP` then `# TYPE` then maybe
/// `# UNIT` per family) renamed to 0.0.4's conventions.
fn to_text_004(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut help: Option<(&str, &str)> = None;
    for line in open.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ');
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                other => (name.to_owned(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Encodes a snapshot of the figures at scrape time, in a fixed order.
#[derive(Debug)]
struct FiguresCollector(Figures);

type Counter = (
    &'static str,
    &'static str,
    Option<Unit>,
    fn(&WorkerFigures) -> u64,
);

/// The per-worker counters: name, help, unit, value.
fn counters() -> [Counter; 12] {
    [
        ("cells_in", "Cells received", None, |w| w.stats.cells_in),
        ("cells_out", "Cells handed to the kernel", None, |w| {
            w.stats.cells_out
        }),
        (
            "circuits_rejected",
            "Circuits closed for protocol violations",
            None,
            |w| w.stats.circuits_rejected,
        ),
        (
            "channels_rejected",
            "Channels closed for protocol violations",
            None,
            |w| w.stats.channels_rejected,
        ),
        (
            "oom_closed",
            "Circuits closed by the out-of-memory handler",
            None,
            |w| w.stats.oom_closed,
        ),
        (
            "creates_refused",
            "CREATE/CREATE2 refused by the circuit-creation rate limit (DESTROY RESOURCELIMIT)",
            None,
            |w| w.stats.creates_refused,
        ),
        (
            "sched_runs",
            "Scheduler runs (Vanilla: write rounds)",
            None,
            |w| w.sched.runs,
        ),
        ("sched_grants", "Per-channel write grants", None, |w| {
            w.sched.grants
        }),
        (
            "sched_granted",
            "Bytes granted by the scheduler",
            Some(Unit::Bytes),
            |w| w.sched.bytes_granted,
        ),
        (
            "sched_cells_written",
            "Cells written by scheduler runs",
            None,
            |w| w.sched.cells_written,
        ),
        (
            "control_events_dropped",
            "Events to the control thread dropped because its queue was full",
            None,
            |w| w.events_dropped,
        ),
        (
            "control_commands_dropped",
            "Commands from the control thread dropped because the worker's queue was full",
            None,
            |w| w.commands_dropped,
        ),
    ]
}

/// The per-worker link counters (links per kind, TLS records): name, help, unit, value.
fn link_counters() -> [Counter; 11] {
    [
        (
            "links_plain",
            "Plain (benchmark mode) links opened",
            None,
            |w| w.links.plain,
        ),
        (
            "links_tls_user",
            "TLS links opened, records sealed and opened in user space",
            None,
            |w| w.links.tls_user,
        ),
        (
            "links_ktls",
            "TLS links whose records the kernel seals (kTLS)",
            None,
            |w| w.links.ktls,
        ),
        (
            "links_ktls_rx",
            "TLS links whose received records the kernel opens (kTLS RX)",
            None,
            |w| w.links.ktls_rx,
        ),
        (
            "tls_handshakes_failed",
            "TLS handshakes that failed or timed out",
            None,
            |w| w.links.tls_handshake_failed,
        ),
        ("tls_records_in", "TLS records opened", None, |w| {
            w.links.records.records_in
        }),
        (
            "tls_records_staged",
            "TLS records cut by the end of a receive buffer, finished in a staging buffer",
            None,
            |w| w.links.records.records_staged,
        ),
        ("tls_records_out", "TLS records sealed", None, |w| {
            w.links.records.records_out
        }),
        (
            "tls_records_split",
            "TLS records overfilled by one write (a burst of control cells) and split when sealed",
            None,
            |w| w.links.records.records_split,
        ),
        (
            "channels_handed_to_sibling",
            "Accepted channels handed to a sibling worker with fewer channels",
            None,
            |w| w.links.handed_to_sibling,
        ),
        (
            "channels_adopted_from_sibling",
            "Channels a sibling worker handed to this one",
            None,
            |w| w.links.adopted_from_sibling,
        ),
    ]
}

/// The per-worker I/O driver counters: name, help, unit, value.
fn io_counters() -> [Counter; 5] {
    [
        (
            "io_waits",
            "Waits for I/O (io_uring_enter calls that waited, or poll calls)",
            None,
            |w| w.io.waits,
        ),
        ("io_recvs", "Receives that returned bytes", None, |w| {
            w.io.recvs
        }),
        ("io_sends", "Sends started", None, |w| w.io.sends),
        (
            "io_short_sends",
            "Sends the kernel took only part of",
            None,
            |w| w.io.short_sends,
        ),
        (
            "io_recv_no_buffers",
            "io_uring receives that found no receive buffer offered (ENOBUFS)",
            None,
            |w| w.io.recv_no_buffers,
        ),
    ]
}

/// 1-2-5 steps from `10^lo` to `5 * 10^hi`.
fn one_two_five(lo: i32, hi: i32) -> Vec<f64> {
    (lo..=hi)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
        .collect()
}

/// One exported histogram: name (unit appended by the encoder), help, unit, bucket upper
/// bounds in the exported unit, the factor from recorded to exported unit, and the source.
struct Hist {
    name: &'static str,
    help: &'static str,
    unit: Unit,
    bounds: Vec<f64>,
    scale: f64,
    pick: fn(&WorkerFigures) -> &Histogram<u64>,
}

fn histograms() -> [Hist; 8] {
    let seconds = one_two_five(-5, 1);
    [
        Hist {
            name: "sched_run",
            help: "Cells written per scheduler run",
            unit: Unit::Other("cells".into()),
            bounds: one_two_five(0, 6),
            scale: 1.0,
            pick: |w| &w.sched.histograms.cells_per_run,
        },
        Hist {
            name: "sched_run_granted",
            help: "Bytes granted per scheduler run",
            unit: Unit::Bytes,
            bounds: (0..11).map(|i| f64::from(512u32 << (2 * i))).collect(),
            scale: 1.0,
            pick: |w| &w.sched.histograms.bytes_granted_per_run,
        },
        Hist {
            name: "relay_queue",
            help: "Time a cell waited in the relay queue, enqueue to written",
            unit: Unit::Seconds,
            bounds: seconds.clone(),
            scale: 1e-6,
            pick: |w| &w.sched.histograms.relay_queue_us,
        },
        Hist {
            name: "kernel_queue",
            help: "Measured (SO_TIMESTAMPING SND stamps of sampled sends, about 1 in 1,024 cells per channel): time from a write into the socket to the packet leaving the stack for the driver, the kernel send queue; empty when the kernel refuses stamping",
            unit: Unit::Seconds,
            bounds: seconds.clone(),
            scale: 1e-6,
            pick: |w| &w.sched.histograms.kernel_queue_us,
        },
        Hist {
            name: "kernel_sched",
            help: "Measured (SO_TIMESTAMPING SCHED stamps of sampled sends): time from a write into the socket to the packet entering the qdisc",
            unit: Unit::Seconds,
            bounds: seconds.clone(),
            scale: 1e-6,
            pick: |w| &w.sched.histograms.kernel_sched_us,
        },
        Hist {
            name: "kernel_ack",
            help: "Measured (SO_TIMESTAMPING ACK stamps of sampled sends): time from a write into the socket to the byte's acknowledgement",
            unit: Unit::Seconds,
            bounds: seconds.clone(),
            scale: 1e-6,
            pick: |w| &w.sched.histograms.kernel_ack_us,
        },
        Hist {
            name: "kernel_queue_estimated",
            help: "Model, not a measurement: a socket's unsent bytes over its rate (notsent x srtt / (cwnd x mss)), per KIST grant",
            unit: Unit::Seconds,
            bounds: seconds.clone(),
            scale: 1e-6,
            pick: |w| &w.sched.histograms.kernel_queue_estimated_us,
        },
        Hist {
            name: "kernel_queue_estimated_sampled",
            help:
                "The same model sampled every 100 ms on every busy channel socket, any scheduler",
            unit: Unit::Seconds,
            bounds: seconds,
            scale: 1e-6,
            pick: |w| &w.sched.histograms.kernel_queue_estimated_sampled_us,
        },
    ]
}

/// (upper bound, count in this bucket) pairs for `encode_histogram`, the last one +Inf.
fn buckets(h: &Histogram<u64>, bounds: &[f64], scale: f64) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut below = 0u64;
    for &b in bounds {
        // Recorded values are integers in the recording unit.
        let upto = (b / scale).floor() as u64;
        let cumulative = if h.is_empty() {
            0
        } else {
            h.count_between(0, upto)
        };
        out.push((b, cumulative.saturating_sub(below)));
        below = below.max(cumulative);
    }
    out.push((f64::MAX, h.len().saturating_sub(below)));
    out
}

impl Collector for FiguresCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let all = counters().into_iter().chain(link_counters());
        for (name, help, unit, value) in all.chain(io_counters()) {
            let mut family =
                encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
            for (worker, w) in &self.0 {
                let labels = [("worker", worker.to_string())];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&value(w), None)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "sched_grants_exhausted",
            "Grants used up with cells left, by what limited them",
            None,
            MetricType::Counter,
        )?;
        for (worker, w) in &self.0 {
            for (by, n) in w.sched.exhausted.by_reason() {
                let labels = [
                    ("worker", worker.to_string()),
                    ("by", by.label().to_owned()),
                ];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "scheduler",
            "The scheduler a worker runs",
            None,
            MetricType::Info,
        )?;
        for (worker, w) in &self.0 {
            if let Some(kind) = w.scheduler {
                let labels = [
                    ("worker", worker.to_string()),
                    ("scheduler", kind.name().to_owned()),
                ];
                family.encode_info(&labels)?;
            }
        }
        for hist in histograms() {
            let mut family = encoder.encode_descriptor(
                hist.name,
                hist.help,
                Some(&hist.unit),
                MetricType::Histogram,
            )?;
            for (worker, w) in &self.0 {
                let h = (hist.pick)(w);
                let sum = if h.is_empty() {
                    0.0
                } else {
                    h.mean() * h.len() as f64 * hist.scale
                };
                let labels = [("worker", worker.to_string())];
                family
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(
                        sum,
                        h.len(),
                        &buckets(h, &hist.bounds, hist.scale),
                        None,
                    )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
