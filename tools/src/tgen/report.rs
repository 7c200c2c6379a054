//! The run report (versioned JSON, schema [`SCHEMA`]), its per-model summaries from
//! HdrHistograms, the human table, and the HdrHistogram interval log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::error::TgenError;
use super::model::Model;

/// The `schema` of a tgen report.
pub const SCHEMA: &str = "kistrel.tgen/1";
/// Histogram precision: 3 significant digits (0.1 % relative error), values in µs.
const SIGFIGS: u8 = 3;

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every byte arrived and matched.
    Ok,
    /// The TCP connection (to the server, or to the SOCKS port) failed.
    Connect,
    /// The SOCKS handshake failed or the proxy refused the CONNECT.
    Socks,
    /// Not done by its deadline (scheduled start + the size's timeout).
    Timeout,
    /// The server closed before `size` bytes.
    Short,
    /// A byte differed from the seeded stream.
    Corrupt,
    /// Another socket error.
    Io,
    /// The peer does not speak tgen: its first bytes are not the stream asked for, or it
    /// sent nothing within the first-byte timeout.
    Protocol,
}

impl Outcome {
    /// The lowercase name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Connect => "connect",
            Outcome::Socks => "socks",
            Outcome::Timeout => "timeout",
            Outcome::Short => "short",
            Outcome::Corrupt => "corrupt",
            Outcome::Io => "io",
            Outcome::Protocol => "protocol",
        }
    }
}

/// One transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// Model name.
    pub model: String,
    /// Flow number within the model.
    pub flow: u32,
    /// Sequence number within the flow (0, 1, ...).
    pub index: u64,
    /// SOCKS username, i.e. which circuit (`None` when direct).
    pub socks_user: Option<String>,
    /// Bytes asked for.
    pub size: u64,
    /// Bytes received and verified (up to the first bad byte for `corrupt`).
    pub bytes: u64,
    /// Payload seed (the transfer can be replayed).
    pub seed: u64,
    /// Scheduled start, seconds after the run's start (the actual start for closed loops).
    pub scheduled_start_s: f64,
    /// Time to first byte from the scheduled start, if a byte came.
    pub ttfb_s: Option<f64>,
    /// Time to last byte from the scheduled start, for `ok` transfers.
    pub ttlb_s: Option<f64>,
    /// Time from the scheduled start to the end, whatever the outcome.
    pub elapsed_s: f64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Percentiles of one metric, in seconds (HdrHistogram, 3 significant digits).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// 10th percentile.
    pub p10: f64,
    /// 25th.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th.
    pub p75: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of µs; `None` when empty.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1e6;
        Some(Percentiles {
            p10: q(0.10),
            p25: q(0.25),
            p50: q(0.50),
            p75: q(0.75),
            p90: q(0.90),
            p99: q(0.99),
            max: h.max() as f64 / 1e6,
        })
    }
}

/// One model's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Flows that ran it.
    pub flows: u32,
    /// Transfers recorded.
    pub count: u64,
    /// Of which `ok`.
    pub ok: u64,
    /// Failures by outcome name (`timeout`, `short`, ...); absent kinds are left out.
    pub failed: BTreeMap<String, u64>,
    /// Verified bytes of `ok` transfers.
    pub bytes: u64,
    /// `bytes` in MiB over the run's elapsed time.
    pub goodput_mib_s: f64,
    /// TTFB of `ok` transfers (`None` when there is none).
    pub ttfb_s: Option<Percentiles>,
    /// TTLB of `ok` transfers.
    pub ttlb_s: Option<Percentiles>,
}

/// A model as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelParams {
    /// Its flows.
    pub flows: u32,
    /// The model.
    pub model: Model,
}

/// The run's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunParams {
    /// The tgen server.
    pub server: String,
    /// SOCKS port, `None` when direct.
    pub socks: Option<String>,
    /// The seed.
    pub seed: u64,
    /// `--count` (per flow).
    pub count: Option<u64>,
    /// `--duration` in seconds.
    pub duration_s: Option<f64>,
    /// The models.
    pub models: Vec<ModelParams>,
}

/// What a run produced: `{"schema": "kistrel.tgen/1", "params", "elapsed_s", "interrupted",
/// "models": {NAME: summary}, "transfers": [record, ...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TgenReport {
    /// [`SCHEMA`].
    pub schema: String,
    /// Run parameters.
    pub params: RunParams,
    /// Wall time of the run.
    pub elapsed_s: f64,
    /// Transfers cut by SIGINT/SIGTERM (not in `transfers`).
    pub interrupted: u64,
    /// Verified bytes those interrupted transfers had received when cut (what a fixed-length
    /// run counts as delivered beside the recorded transfers' bytes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interrupted_bytes: u64,
    /// Per model.
    pub models: BTreeMap<String, ModelSummary>,
    /// Every transfer, by scheduled start.
    pub transfers: Vec<TransferRecord>,
    /// Why transfers failed, in words (`connect to ADDR: Connection refused (os error
    /// 111)`), with how many failed so; the first [`MAX_FAILURE_REASONS`] distinct reasons.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failure_reasons: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Distinct failure reasons a report keeps (the rest are still counted per outcome).
pub const MAX_FAILURE_REASONS: usize = 8;

/// Which time a histogram holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Time to first byte.
    Ttfb,
    /// Time to last byte.
    Ttlb,
}

impl TgenReport {
    /// Summarises `records` of a run with `params`.
    pub fn build(
        params: RunParams,
        elapsed: Duration,
        interrupted: u64,
        records: Vec<TransferRecord>,
    ) -> Self {
        let mut models = BTreeMap::new();
        for mf in &params.models {
            let name = &mf.model.name;
            let mine = || records.iter().filter(|r| &r.model == name);
            let mut failed = BTreeMap::new();
            for r in mine().filter(|r| r.outcome != Outcome::Ok) {
                *failed.entry(r.outcome.as_str().to_owned()).or_insert(0) += 1;
            }
            let bytes: u64 = mine()
                .filter(|r| r.outcome == Outcome::Ok)
                .map(|r| r.bytes)
                .sum();
            let secs = elapsed.as_secs_f64();
            models.insert(
                name.clone(),
                ModelSummary {
                    flows: mf.flows,
                    count: mine().count() as u64,
                    ok: mine().filter(|r| r.outcome == Outcome::Ok).count() as u64,
                    failed,
                    bytes,
                    goodput_mib_s: if secs > 0.0 {
                        bytes as f64 / f64::from(1 << 20) / secs
                    } else {
                        0.0
                    },
                    ttfb_s: Percentiles::of(&histogram(&records, name, Metric::Ttfb)),
                    ttlb_s: Percentiles::of(&histogram(&records, name, Metric::Ttlb)),
                },
            );
        }
        TgenReport {
            schema: SCHEMA.into(),
            params,
            elapsed_s: elapsed.as_secs_f64(),
            interrupted,
            interrupted_bytes: 0,
            models,
            transfers: records,
            failure_reasons: BTreeMap::new(),
        }
    }

    /// Reads a report written by `kistrel tgen client --json` (e.g. by a child process),
    /// refusing other schemas.
    pub fn read(path: &Path) -> Result<TgenReport, TgenError> {
        let bad = |problem: String| TgenError::Report {
            path: path.to_path_buf(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let r: TgenReport = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if r.schema != SCHEMA {
            return Err(bad(format!("schema `{}`, expected `{SCHEMA}`", r.schema)));
        }
        Ok(r)
    }

    /// Failed transfers over all models.
    pub fn failed(&self) -> u64 {
        self.transfers
            .iter()
            .filter(|r| r.outcome != Outcome::Ok)
            .count() as u64
    }

    /// A histogram (µs) of one metric over one model's `ok` transfers.
    pub fn histogram(&self, model: &str, metric: Metric) -> Histogram<u64> {
        histogram(&self.transfers, model, metric)
    }

    /// The human summary: one line per model.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<10} {:>6} {:>6} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}  failures",
            "model", "count", "ok", "MiB", "MiB/s", "ttfb p50", "ttfb p99", "ttlb p50", "ttlb p99"
        );
        for (name, m) in &self.models {
            let ms = |p: Option<Percentiles>, f: fn(&Percentiles) -> f64| {
                p.map_or_else(|| "-".to_owned(), |p| format!("{:.1}ms", f(&p) * 1e3))
            };
            let fails: Vec<String> = m.failed.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                t,
                "{:<10} {:>6} {:>6} {:>7.1} {:>10.2} {:>9} {:>9} {:>9} {:>9}  {}",
                name,
                m.count,
                m.ok,
                m.bytes as f64 / f64::from(1 << 20),
                m.goodput_mib_s,
                ms(m.ttfb_s, |p| p.p50),
                ms(m.ttfb_s, |p| p.p99),
                ms(m.ttlb_s, |p| p.p50),
                ms(m.ttlb_s, |p| p.p99),
                if fails.is_empty() {
                    "-".to_owned()
                } else {
                    fails.join(" ")
                }
            );
        }
        for (reason, n) in &self.failure_reasons {
            let _ = writeln!(t, "failed {n}x: {reason}");
        }
        t
    }
}

#[allow(clippy::expect_used)]
fn new_histogram() -> Histogram<u64> {
    // A constant precision in hdrhistogram's valid range 0..=5: creation cannot fail.
    let mut h = Histogram::new(SIGFIGS).expect("3 significant figures is a valid precision");
    // Auto-resize: any µs value records (no upper bound to guess).
    h.auto(true);
    h
}

fn micros(s: f64) -> u64 {
    (s * 1e6).round().max(1.0) as u64
}

/// A histogram (µs, 3 significant digits) of one metric over `model`'s `ok` transfers in
/// `records`: for figures over merged runs (several reports' `transfers`).
pub fn histogram(records: &[TransferRecord], model: &str, metric: Metric) -> Histogram<u64> {
    let mut h = new_histogram();
    for r in records
        .iter()
        .filter(|r| r.model == model && r.outcome == Outcome::Ok)
    {
        let v = match metric {
            Metric::Ttfb => r.ttfb_s,
            Metric::Ttlb => r.ttlb_s,
        };
        if let Some(v) = v {
            let _ = h.record(micros(v));
        }
    }
    h
}

/// An HdrHistogram interval log (V2 deflate, the Java HdrHistogram's `.hlog`) of the `ok`
/// transfers' times in µs: per interval, one histogram tagged `MODEL.ttfb` and one tagged
/// `MODEL.ttlb` per model.
#[derive(Debug)]
pub struct IntervalLog {
    path: PathBuf,
    file: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
    current: Mutex<BTreeMap<String, Histogram<u64>>>,
}

impl IntervalLog {
    /// Creates the file and writes the log header.
    pub fn create(path: &Path, models: impl Iterator<Item = String>) -> Result<Self, TgenError> {
        let io = |e: std::io::Error| TgenError::Write {
            path: path.to_path_buf(),
            source: e,
        };
        let base = SystemTime::now();
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        let mut ser = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(
                "kistrel tgen: time to first / last byte (MODEL.ttfb / MODEL.ttlb), microseconds",
            )
            .with_start_time(base)
            .with_base_time(base)
            .begin_log_with(&mut file, &mut ser)
            .map_err(io)?;
        Ok(IntervalLog {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
            current: Mutex::new(
                models
                    .flat_map(|m| [format!("{m}.ttfb"), format!("{m}.ttlb")])
                    .map(|tag| (tag, new_histogram()))
                    .collect(),
            ),
        })
    }

    /// Adds one `ok` transfer's times.
    pub fn record(&self, model: &str, ttfb: Duration, ttlb: Duration) {
        if let Ok(mut c) = self.current.lock() {
            for (metric, d) in [("ttfb", ttfb), ("ttlb", ttlb)] {
                if let Some(h) = c.get_mut(&format!("{model}.{metric}")) {
                    let _ = h.record(micros(d.as_secs_f64()));
                }
            }
        }
    }

    /// Writes an interval every `every` until `done`, then a last one.
    pub fn run(&self, start: Instant, every: Duration, done: &AtomicBool) {
        let every = every.max(Duration::from_millis(10));
        let mut from = start;
        let mut next = start + every;
        loop {
            let finished = done.load(Ordering::Relaxed);
            if finished || Instant::now() >= next {
                let now = Instant::now();
                let _ = self.write_interval(from.duration_since(start), now.duration_since(from));
                from = now;
                next = now + every;
                if finished {
                    return;
                }
            }
            std::thread::sleep(
                Duration::from_millis(10).min(next.saturating_duration_since(Instant::now())),
            );
        }
    }

    fn write_interval(&self, offset: Duration, length: Duration) -> std::io::Result<()> {
        let taken: Vec<(String, Histogram<u64>)> = match self.current.lock() {
            Ok(mut c) => c
                .iter_mut()
                .map(|(k, h)| (k.clone(), std::mem::replace(h, new_histogram())))
                .collect(),
            Err(_) => return Ok(()),
        };
        let Ok(mut guard) = self.file.lock() else {
            return Ok(());
        };
        let Some(file) = guard.as_mut() else {
            return Ok(());
        };
        let mut ser = V2DeflateSerializer::new();
        // The header was written once by `create`; a bare builder writes no header lines.
        let mut w = IntervalLogWriterBuilder::new().begin_log_with(&mut *file, &mut ser)?;
        for (model, h) in &taken {
            let tag = Tag::new(model);
            w.write_histogram(h, offset, length, tag)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        Ok(())
    }

    /// Flushes and closes the file.
    pub fn finish(&self) -> Result<(), TgenError> {
        let io = |e: std::io::Error| TgenError::Write {
            path: self.path.clone(),
            source: e,
        };
        if let Ok(mut g) = self.file.lock() {
            if let Some(mut f) = g.take() {
                f.flush().map_err(io)?;
            }
        }
        Ok(())
    }
}
