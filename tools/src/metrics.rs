//! `MetricsPort`: a node's counters and scheduler figures over HTTP.
//!
//! Tor's MetricsPort exports no scheduler figures; these are the ones that show KIST
//! working (runs, cells and bytes granted per run, grants limited by the congestion window vs
//! the socket buffer, the time a cell waits in the relay queue and, estimated, in the kernel),
//! from each worker's `SchedMetrics` HdrHistograms.
//!
//! ```text
//!  workers --Stats (1/s)--> control thread --Publish--> Figures (per worker, zeroed at start)
//!                                                            |
//!   GET|HEAD /metrics     Accept: application/openmetrics-text -> OpenMetrics 1.0.0
//!                         otherwise                            -> Prometheus text 0.0.4
//!   GET|HEAD /histograms  JSON: per worker, counters + base64 HDR V2 histograms (the bench
//!                         merges them; quantiles of merged histograms, never of quantiles)
//! ```
//!
//! Every page is rendered from the latest figures when asked (from the first request on:
//! every worker's series exist from the start, at zero), families and series in a fixed
//! order. The HTTP server is [`tiny_http`] on its own thread; nothing here touches the data
//! path.

pub mod exposition;
pub mod figures;
pub mod histograms;
mod server;

pub use exposition::{render, Format};
pub use figures::{Figures, WorkerFigures};
pub use histograms::{HistogramError, HistogramsPage, WorkerPage};
pub use server::{MetricsPublisher, MetricsServer};
