//! The `/histograms` page: each worker's scheduler counters and HdrHistograms as data, so a
//! reader (the bench) merges histograms across workers and nodes and takes quantiles of the
//! merged distribution instead of averaging quantiles.
//!
//! ```json
//! {"schema": "kistrel.histograms/2",
//!  "workers": [{"worker": 0, "scheduler": "KIST",
//!               "counters": {"runs": 7, "grants": 9, "bytes_granted": 4626, "cells_written": 9,
//!                            "oom_closed": 0, "grants_exhausted": {"cwnd": 3, ...}},
//!               "histograms": {"relay_queue_us": "<base64 of HdrHistogram V2>", ...}}]}
//! ```
//!
//! Histogram names end in their unit: `cells_per_run`, `bytes_granted_per_run`,
//! `relay_queue_us`, the measured (SO_TIMESTAMPING) `kernel_queue_us` (write to SND),
//! `kernel_sched_us`, `kernel_ack_us`, and the model `kernel_queue_estimated_us`,
//! `kernel_queue_estimated_sampled_us` (microseconds). Schema 2: `kernel_queue_us` was the
//! model in schema 1.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use kistrel_base::{ErrorKind, HasKind};
use serde::{Deserialize, Serialize};

use super::figures::{Figures, WorkerFigures};

/// The page's schema name.
pub const SCHEMA: &str = "kistrel.histograms/2";

/// The whole page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramsPage {
    /// [`SCHEMA`].
    pub schema: String,
    /// Per worker, in order.
    pub workers: Vec<WorkerPage>,
}

/// One worker's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerPage {
    /// Its index.
    pub worker: usize,
    /// The scheduler it runs (torrc spelling), once it has reported.
    pub scheduler: Option<String>,
    /// Its counters.
    pub counters: SchedCounters,
    /// Histogram name -> base64 of its HdrHistogram V2 serialization.
    pub histograms: BTreeMap<String, String>,
}

/// A worker's scheduler counters (and the OOM count, which the bench reports beside them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedCounters {
    /// Scheduler runs.
    pub runs: u64,
    /// Per-channel grants.
    pub grants: u64,
    /// Bytes granted.
    pub bytes_granted: u64,
    /// Cells written by runs.
    pub cells_written: u64,
    /// Circuits closed by the out-of-memory handler.
    pub oom_closed: u64,
    /// Grants used up with cells left, by what limited them.
    pub grants_exhausted: BTreeMap<String, u64>,
}

/// A histogram on the page that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistogramError {
    /// The page's schema is not [`SCHEMA`].
    #[error("not a kistrel histograms page (schema {0:?})")]
    Schema(String),
    /// Not base64.
    #[error("histogram {name}: not base64: {source}")]
    Base64 {
        /// The histogram.
        name: String,
        /// Why.
        #[source]
        source: base64::DecodeError,
    },
    /// Not an HdrHistogram V2 serialization.
    #[error("histogram {name}: not an HdrHistogram V2 serialization: {problem}")]
    Decode {
        /// The histogram.
        name: String,
        /// Why (hdrhistogram's error, which is not `Error`).
        problem: String,
    },
}

impl HasKind for HistogramError {
    fn kind(&self) -> ErrorKind {
        // The page came from another process: it broke the format.
        ErrorKind::PeerProtocol
    }
}

/// The histograms of a worker, by their page names.
fn named(w: &WorkerFigures) -> [(&'static str, &Histogram<u64>); 8] {
    let m = &w.sched.histograms;
    [
        ("cells_per_run", &m.cells_per_run),
        ("bytes_granted_per_run", &m.bytes_granted_per_run),
        ("relay_queue_us", &m.relay_queue_us),
        ("kernel_queue_us", &m.kernel_queue_us),
        ("kernel_sched_us", &m.kernel_sched_us),
        ("kernel_ack_us", &m.kernel_ack_us),
        ("kernel_queue_estimated_us", &m.kernel_queue_estimated_us),
        (
            "kernel_queue_estimated_sampled_us",
            &m.kernel_queue_estimated_sampled_us,
        ),
    ]
}

/// The page for `figures`.
pub fn page(figures: &Figures) -> HistogramsPage {
    let mut serializer = V2Serializer::new();
    let workers = figures
        .iter()
        .map(|(&worker, w)| {
            let m = &w.sched;
            let histograms = named(w)
                .into_iter()
                .filter_map(|(name, h)| {
                    let mut bytes = Vec::new();
                    // Serializing into a Vec fails only on a bug (V2 has no size limit here).
                    serializer.serialize(h, &mut bytes).ok()?;
                    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
                    Some((name.to_owned(), text))
                })
                .collect();
            WorkerPage {
                worker,
                scheduler: w.scheduler.map(|k| k.name().to_owned()),
                counters: SchedCounters {
                    runs: m.runs,
                    grants: m.grants,
                    bytes_granted: m.bytes_granted,
                    cells_written: m.cells_written,
                    oom_closed: w.stats.oom_closed,
                    grants_exhausted: m
                        .exhausted
                        .by_reason()
                        .into_iter()
                        .map(|(by, n)| (by.label().to_owned(), n))
                        .collect(),
                },
                histograms,
            }
        })
        .collect();
    HistogramsPage {
        schema: SCHEMA.to_owned(),
        workers,
    }
}

impl HistogramsPage {
    /// Refuses a page of another schema.
    pub fn check_schema(&self) -> Result<(), HistogramError> {
        if self.schema == SCHEMA {
            Ok(())
        } else {
            Err(HistogramError::Schema(self.schema.clone()))
        }
    }
}

impl WorkerPage {
    /// The histogram `name`, decoded; `None` if the page does not have it.
    pub fn histogram(&self, name: &str) -> Result<Option<Histogram<u64>>, HistogramError> {
        let Some(text) = self.histograms.get(name) else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|source| HistogramError::Base64 {
                name: name.to_owned(),
                source,
            })?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map(Some)
            .map_err(|e| HistogramError::Decode {
                name: name.to_owned(),
                problem: format!("{e:?}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use kistrel_sched::SchedulerKind;

    use super::*;

    #[test]
    fn histograms_round_trip_through_the_page() {
        let mut figures = super::super::figures::zeroed(2);
        if let Some(w) = figures.get_mut(&1) {
            w.scheduler = Some(SchedulerKind::KistLite);
            w.sched.runs = 5;
            w.sched.exhausted.high_water = 2;
            w.sched.record_kernel_queue_estimate(2_000);
            w.sched.record_kernel_queue_estimate(50_000);
            w.stats.oom_closed = 3;
        }
        let page = page(&figures);
        let text = serde_json::to_string(&page).unwrap();
        let back: HistogramsPage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, page);
        back.check_schema().unwrap();
        assert_eq!(back.workers.len(), 2);
        let w = &back.workers[1];
        assert_eq!(w.scheduler.as_deref(), Some("KISTLite"));
        assert_eq!((w.counters.runs, w.counters.oom_closed), (5, 3));
        assert_eq!(w.counters.grants_exhausted["high_water"], 2);
        let h = w.histogram("kernel_queue_estimated_us").unwrap().unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            h.max(),
            figures[&1].sched.histograms.kernel_queue_estimated_us.max()
        );
        assert!(h.equivalent(h.min(), 2_000));
        // A worker that has recorded nothing: present, empty.
        assert_eq!(back.workers[0].scheduler, None);
        let empty = back.workers[0]
            .histogram("relay_queue_us")
            .unwrap()
            .unwrap();
        assert!(empty.is_empty());
        assert!(w.histogram("nope").unwrap().is_none());
    }

    #[test]
    fn bad_pages_are_refused() {
        let mut page = page(&super::super::figures::zeroed(1));
        page.workers[0]
            .histograms
            .insert("relay_queue_us".into(), "!!".into());
        assert!(matches!(
            page.workers[0].histogram("relay_queue_us"),
            Err(HistogramError::Base64 { .. })
        ));
        page.workers[0]
            .histograms
            .insert("relay_queue_us".into(), "AAAA".into());
        assert!(matches!(
            page.workers[0].histogram("relay_queue_us"),
            Err(HistogramError::Decode { .. })
        ));
        page.schema = "other/1".into();
        assert!(matches!(
            page.check_schema(),
            Err(HistogramError::Schema(_))
        ));
    }
}
