//! The tgen client: one thread per flow; a closed-loop flow fetches, thinks, fetches again;
//! an open-loop flow walks its precomputed arrival schedule and starts each transfer on its
//! own thread at its scheduled time, so a slow transfer never delays the next arrival, and
//! times every transfer from its scheduled start (no coordinated omission).
//!
//! ```text
//!   flow thread (closed): [pick size] -> transfer -> [think] -> transfer -> ...
//!   flow thread (open):   sleep to at[0] -> spawn transfer; sleep to at[1] -> spawn; ...
//!   transfer:             connect (direct | SOCKS5 user tgen-MODEL-FLOW) -> header ->
//!                         read + verify every byte against the regenerated stream
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::error::TgenError;
use super::model::{Arrivals, Model, SizeChoice};
use super::proto::{PayloadStream, Request};
use super::report::{
    IntervalLog, ModelParams, Outcome, RunParams, TgenReport, TransferRecord, MAX_FAILURE_REASONS,
};
use super::socks::{socks_connect_timeout, SocksError};

/// How often waiting threads look at the stop flag, and the longest single socket read wait.
const POLL: Duration = Duration::from_millis(100);
/// Read buffer per transfer.
const READ_BUF: usize = 64 << 10;
/// A closed-loop flow's first wait after a failed connect; doubled per failure up to
/// [`CONNECT_BACKOFF_MAX`], reset by a transfer that connects. A flow against a port where
/// nothing listens makes about 1 attempt a second, not thousands.
const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between two connect attempts of one flow.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One model and how many flows run it.
#[derive(Debug, Clone)]
pub struct ModelFlows {
    /// The model.
    pub model: Model,
    /// Flows (each its own thread, SOCKS username and so circuit).
    pub flows: u32,
}

/// What [`run_client`] does.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The tgen server.
    pub server: SocketAddr,
    /// A SOCKS5 port to go through (`None`: connect directly, the baseline).
    pub socks: Option<SocketAddr>,
    /// The models; names must differ.
    pub models: Vec<ModelFlows>,
    /// Transfers per flow; overrides each model's own `count`.
    pub count: Option<u64>,
    /// Run length (no transfer starts after it; running ones finish); overrides the models'.
    pub duration: Option<Duration>,
    /// Seed of every random choice (see [`flow_rng`]).
    pub seed: u64,
    /// Write an HdrHistogram interval log of TTFB and TTLB (µs, tags `MODEL.ttfb`,
    /// `MODEL.ttlb`) here.
    pub hdr_log: Option<PathBuf>,
    /// Interval of that log.
    pub hdr_interval: Duration,
    /// Ticked once per finished transfer (the CLI's progress bar on a TTY); its message
    /// counts the failures.
    pub progress: Option<indicatif::ProgressBar>,
    /// A peer that sends no byte this long after the request is not a tgen server (or is
    /// hung): the transfer fails as `protocol`, saying so.
    pub first_byte_timeout: Duration,
}

impl ClientOptions {
    /// Options with no models yet, direct, seed 1, 1 s log interval.
    pub fn new(server: SocketAddr) -> Self {
        ClientOptions {
            server,
            socks: None,
            models: Vec::new(),
            count: None,
            duration: None,
            seed: 1,
            hdr_log: None,
            hdr_interval: Duration::from_secs(1),
            progress: None,
            first_byte_timeout: Duration::from_secs(30),
        }
    }

    /// The parameters a report records.
    pub fn params(&self) -> RunParams {
        RunParams {
            server: self.server.to_string(),
            socks: self.socks.map(|s| s.to_string()),
            seed: self.seed,
            count: self.count,
            duration_s: self.duration.map(|d| d.as_secs_f64()),
            models: self
                .models
                .iter()
                .map(|m| ModelParams {
                    flows: m.flows,
                    model: m.model.clone(),
                })
                .collect(),
        }
    }
}

/// The RNG of flow `flow` of the `model_index`-th model: its sizes, think times and arrival
/// schedule (ChaCha8 stream `2 * (model_index << 32 | flow)`); payload seeds come from the
/// next stream, so they do not shift the schedule.
pub fn flow_rng(seed: u64, model_index: usize, flow: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_id(model_index, flow));
    rng
}

fn payload_rng(seed: u64, model_index: usize, flow: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_id(model_index, flow) + 1);
    rng
}

fn stream_id(model_index: usize, flow: u32) -> u64 {
    ((model_index as u64) << 32 | u64::from(flow)) << 1
}

/// The SOCKS username of a flow: `tgen-MODEL-FLOW` (one circuit per flow).
pub fn socks_user(model: &str, flow: u32) -> String {
    format!("tgen-{model}-{flow}")
}

/// Shared by the flows of one run.
struct Run<'a> {
    opts: &'a ClientOptions,
    start: Instant,
    stop: &'a AtomicBool,
    records: Mutex<Vec<TransferRecord>>,
    interrupted: AtomicU64,
    /// Verified bytes the interrupted transfers had received.
    interrupted_bytes: AtomicU64,
    log: Option<&'a IntervalLog>,
    failed: AtomicU64,
    failure_reasons: Mutex<BTreeMap<String, u64>>,
}

/// Runs the flows to their end (count, duration, or `stop` set), then reports. Transfers cut
/// by `stop` are counted in `interrupted` (their verified bytes in `interrupted_bytes`), not
/// recorded.
pub fn run_client(opts: &ClientOptions, stop: &AtomicBool) -> Result<TgenReport, TgenError> {
    if opts.models.is_empty() {
        return Err(TgenError::Usage("no model given".into()));
    }
    for (i, m) in opts.models.iter().enumerate() {
        if m.flows == 0 {
            return Err(TgenError::Usage(format!(
                "model `{}`: flows must be >= 1",
                m.model.name
            )));
        }
        if opts.models[..i]
            .iter()
            .any(|o| o.model.name == m.model.name)
        {
            return Err(TgenError::Usage(format!(
                "model `{}` given twice (use --flows, or a model file with another name)",
                m.model.name
            )));
        }
    }
    let log = match &opts.hdr_log {
        Some(path) => Some(IntervalLog::create(
            path,
            opts.models.iter().map(|m| m.model.name.clone()),
        )?),
        None => None,
    };
    let run = Run {
        opts,
        start: Instant::now(),
        stop,
        records: Mutex::new(Vec::new()),
        interrupted: AtomicU64::new(0),
        interrupted_bytes: AtomicU64::new(0),
        log: log.as_ref(),
        failed: AtomicU64::new(0),
        failure_reasons: Mutex::new(BTreeMap::new()),
    };
    let flows_done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let logger = run.log.map(|log| {
            let (flows_done, start) = (&flows_done, run.start);
            s.spawn(move || log.run(start, opts.hdr_interval, flows_done))
        });
        let flows: Vec<_> = opts
            .models
            .iter()
            .enumerate()
            .flat_map(|(mi, mf)| (0..mf.flows).map(move |f| (mi, mf, f)))
            .map(|(mi, mf, f)| {
                let run = &run;
                s.spawn(move || match mf.model.arrivals {
                    Arrivals::Closed { .. } => run.closed_flow(mi, &mf.model, f),
                    Arrivals::Open { .. } => run.open_flow(mi, &mf.model, f),
                })
            })
            .collect();
        for f in flows {
            let _ = f.join();
        }
        flows_done.store(true, Ordering::Relaxed);
        if let Some(l) = logger {
            let _ = l.join();
        }
    });
    let elapsed = run.start.elapsed();
    if let Some(log) = &log {
        log.finish()?;
    }
    let mut records = run.records.into_inner().unwrap_or_else(|p| p.into_inner());
    records.sort_by(|a, b| {
        a.scheduled_start_s
            .total_cmp(&b.scheduled_start_s)
            .then_with(|| a.model.cmp(&b.model))
            .then(a.flow.cmp(&b.flow))
            .then(a.index.cmp(&b.index))
    });
    let mut report = TgenReport::build(
        opts.params(),
        elapsed,
        run.interrupted.into_inner(),
        records,
    );
    report.interrupted_bytes = run.interrupted_bytes.into_inner();
    report.failure_reasons = run
        .failure_reasons
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(report)
}

impl Run<'_> {
    fn count(&self, model: &Model) -> Option<u64> {
        self.opts.count.or(model.count)
    }

    fn duration(&self, model: &Model) -> Option<Duration> {
        self.opts.duration.or(model.duration)
    }

    fn over(&self, model: &Model) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self
                .duration(model)
                .is_some_and(|d| self.start.elapsed() >= d)
    }

    /// Sleeps until `at`; false if the stop flag came first.
    fn sleep_until(&self, at: Instant) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= at {
                return true;
            }
            std::thread::sleep((at - now).min(POLL));
        }
    }

    fn closed_flow(&self, mi: usize, model: &Model, flow: u32) {
        let Arrivals::Closed { think } = model.arrivals else {
            return;
        };
        let mut rng = flow_rng(self.opts.seed, mi, flow);
        let mut payload = payload_rng(self.opts.seed, mi, flow);
        let mut index = 0u64;
        let mut backoff = Duration::ZERO;
        while self.count(model).is_none_or(|c| index < c) && !self.over(model) {
            let size = model.sizes.get(model.pick_size(&mut rng)).copied();
            let Some(size) = size else { return };
            let outcome = self.transfer(model, flow, index, size, payload.random(), Instant::now());
            index += 1;
            if self.count(model).is_some_and(|c| index >= c) {
                return; // no think time after the last transfer
            }
            // Capped exponential back-off after a failed connect (open-loop flows are bounded
            // by their arrival rate instead).
            if matches!(outcome, Some(Outcome::Connect | Outcome::Socks)) {
                backoff = (backoff * 2).clamp(CONNECT_BACKOFF_MIN, CONNECT_BACKOFF_MAX);
                let mut wake = Instant::now() + backoff;
                if let Some(d) = self.duration(model) {
                    wake = wake.min(self.start + d);
                }
                if !self.sleep_until(wake) {
                    return;
                }
                continue;
            }
            backoff = Duration::ZERO;
            if let Some(t) = think {
                let mut wake = Instant::now() + t.sample(&mut rng);
                if let Some(d) = self.duration(model) {
                    wake = wake.min(self.start + d); // the loop test then ends the flow
                }
                if !self.sleep_until(wake) {
                    return;
                }
            }
        }
    }

    fn open_flow(&self, mi: usize, model: &Model, flow: u32) {
        let mut payload = payload_rng(self.opts.seed, mi, flow);
        let count = self.count(model);
        let duration = self.duration(model);
        std::thread::scope(|s| {
            for (index, arrival) in model
                .schedule(flow_rng(self.opts.seed, mi, flow))
                .enumerate()
            {
                let index = index as u64;
                if count.is_some_and(|c| index >= c) || duration.is_some_and(|d| arrival.at >= d) {
                    break;
                }
                let at = self.start + arrival.at;
                // Only the stop flag: an arrival scheduled before the end runs even if this
                // thread wakes late.
                if !self.sleep_until(at) {
                    break;
                }
                let Some(size) = model.sizes.get(arrival.size).copied() else {
                    break;
                };
                let seed: u64 = payload.random();
                let spawned = std::thread::Builder::new()
                    .name("tgen-transfer".into())
                    .spawn_scoped(s, move || self.transfer(model, flow, index, size, seed, at));
                if spawned.is_err() {
                    // Out of threads: run it here (still timed from its scheduled start).
                    self.transfer(model, flow, index, size, seed, at);
                }
            }
        });
    }

    /// One transfer, recorded (unless cut by the stop flag: then `None`).
    fn transfer(
        &self,
        model: &Model,
        flow: u32,
        index: u64,
        size: SizeChoice,
        seed: u64,
        scheduled: Instant,
    ) -> Option<Outcome> {
        let user = self.opts.socks.map(|_| socks_user(&model.name, flow));
        let deadline = scheduled + size.timeout;
        let target = Target {
            server: self.opts.server,
            socks: self.opts.socks,
            user: user.as_deref(),
            first_byte_timeout: self.opts.first_byte_timeout,
        };
        let t = fetch(&target, size.bytes, seed, scheduled, deadline, self.stop);
        let outcome = match t.outcome {
            Fetched::Done(o) => o,
            Fetched::Interrupted => {
                self.interrupted.fetch_add(1, Ordering::Relaxed);
                self.interrupted_bytes.fetch_add(t.bytes, Ordering::Relaxed);
                return None;
            }
        };
        let ok = outcome == Outcome::Ok;
        if !ok {
            self.note_failure(t.why.clone());
        }
        let rec = TransferRecord {
            model: model.name.clone(),
            flow,
            index,
            socks_user: user,
            size: size.bytes,
            bytes: t.bytes,
            seed,
            scheduled_start_s: scheduled
                .saturating_duration_since(self.start)
                .as_secs_f64(),
            ttfb_s: t.ttfb.map(|d| d.as_secs_f64()),
            ttlb_s: if ok {
                Some(t.elapsed.as_secs_f64())
            } else {
                None
            },
            elapsed_s: t.elapsed.as_secs_f64(),
            outcome,
        };
        if let (Some(log), true, Some(ttfb)) = (self.log, ok, t.ttfb) {
            log.record(&model.name, ttfb, t.elapsed);
        }
        if let Some(p) = &self.opts.progress {
            p.inc(1);
        }
        if let Ok(mut r) = self.records.lock() {
            r.push(rec);
        }
        Some(outcome)
    }

    /// Counts a failure and keeps its reason (the first few distinct ones); the progress
    /// bar shows the count.
    fn note_failure(&self, why: Option<String>) {
        let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(p) = &self.opts.progress {
            p.set_message(format!(", {failed} failed"));
        }
        let Some(why) = why else { return };
        if let Ok(mut reasons) = self.failure_reasons.lock() {
            if reasons.len() < MAX_FAILURE_REASONS || reasons.contains_key(&why) {
                *reasons.entry(why).or_insert(0) += 1;
            }
        }
    }
}

/// Where a transfer goes.
struct Target<'a> {
    server: SocketAddr,
    socks: Option<SocketAddr>,
    user: Option<&'a str>,
    first_byte_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetched {
    Done(Outcome),
    Interrupted,
}

struct Fetch {
    outcome: Fetched,
    bytes: u64,
    ttfb: Option<Duration>,
    elapsed: Duration,
    /// Why it failed, in words, when there is more to say than the outcome.
    why: Option<String>,
}

/// Connects, asks for `size` bytes of `seed`'s stream, and verifies them as they arrive.
/// Times are from `scheduled`. A failure says why in [`Fetch::why`]: the address and the
/// OS error of a failed connect, or that the peer does not speak tgen (its first bytes are
/// not the stream, or it sent nothing within the first-byte timeout).
fn fetch(
    to: &Target<'_>,
    size: u64,
    seed: u64,
    scheduled: Instant,
    deadline: Instant,
    stop: &AtomicBool,
) -> Fetch {
    let server = to.server;
    let mut bytes = 0u64;
    let mut ttfb = None;
    let done = |o: Fetched, bytes: u64, ttfb: Option<Duration>, why: Option<String>| Fetch {
        outcome: o,
        bytes,
        ttfb,
        elapsed: scheduled.elapsed(),
        why,
    };
    let failed =
        |o: Outcome, bytes: u64, ttfb, why: String| done(Fetched::Done(o), bytes, ttfb, Some(why));
    let left = || deadline.saturating_duration_since(Instant::now());
    if left().is_zero() {
        return done(Fetched::Done(Outcome::Timeout), 0, None, None);
    }
    let conn = connect(to, left());
    let mut conn = match conn {
        Ok(c) => c,
        Err((o, why)) => return failed(o, 0, None, why),
    };
    let _ = conn.set_nodelay(true);
    if let Err(e) = conn.write_all(&Request { size, seed }.emit()) {
        return failed(
            Outcome::Io,
            0,
            None,
            format!("sending the request to {server}: {e}"),
        );
    }
    let first_byte_by = Instant::now() + to.first_byte_timeout;
    let mut expect = PayloadStream::new(seed);
    let mut buf = vec![0u8; READ_BUF];
    while bytes < size {
        if stop.load(Ordering::Relaxed) {
            return done(Fetched::Interrupted, bytes, ttfb, None);
        }
        let wait = left();
        if wait.is_zero() {
            return done(Fetched::Done(Outcome::Timeout), bytes, ttfb, None);
        }
        if ttfb.is_none() && Instant::now() >= first_byte_by {
            let why = format!(
                "{server} sent nothing within {} s of the request: not a tgen server? \
                 (start one with `kistrel tgen server`)",
                to.first_byte_timeout.as_secs_f64()
            );
            return failed(Outcome::Protocol, 0, None, why);
        }
        if conn.set_read_timeout(Some(wait.min(POLL))).is_err() {
            return done(Fetched::Done(Outcome::Io), bytes, ttfb, None);
        }
        let want = usize::try_from(size - bytes)
            .unwrap_or(READ_BUF)
            .min(READ_BUF);
        match conn.read(&mut buf[..want]) {
            Ok(0) => {
                let why = format!("{server} closed the connection after {bytes} of {size} bytes");
                return failed(Outcome::Short, bytes, ttfb, why);
            }
            Ok(n) => {
                ttfb.get_or_insert_with(|| scheduled.elapsed());
                if let Some(bad) = expect.verify(&buf[..n]) {
                    if bytes == 0 && bad == 0 {
                        let first = String::from_utf8_lossy(&buf[..n.min(32)]).into_owned();
                        let why = format!("{server} does not speak tgen: it answered {first:?}");
                        return failed(Outcome::Protocol, 0, ttfb, why);
                    }
                    let why = format!(
                        "byte {} from {server} differs from the stream",
                        bytes + bad as u64
                    );
                    return failed(Outcome::Corrupt, bytes + bad as u64, ttfb, why);
                }
                bytes += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return failed(
                    Outcome::Io,
                    bytes,
                    ttfb,
                    format!("reading from {server}: {e}"),
                );
            }
        }
    }
    done(Fetched::Done(Outcome::Ok), bytes, ttfb, None)
}

/// The connection of a transfer: direct, or through the SOCKS port; a failure says to where
/// and why (the OS error, or the SOCKS reply).
fn connect(to: &Target<'_>, timeout: Duration) -> Result<TcpStream, (Outcome, String)> {
    let server = to.server;
    match to.socks {
        None => TcpStream::connect_timeout(&server, timeout).map_err(|e| {
            let o = if e.kind() == std::io::ErrorKind::TimedOut {
                Outcome::Timeout
            } else {
                Outcome::Connect
            };
            (o, format!("connect to {server}: {e}"))
        }),
        Some(proxy) => socks_connect_timeout(proxy, to.user, server, timeout).map_err(|e| {
            let o = match e {
                _ if e.is_timeout() => Outcome::Timeout,
                SocksError::Connect { .. } => Outcome::Connect,
                _ => Outcome::Socks,
            };
            (o, format!("to {server} through SOCKS {proxy}: {e}"))
        }),
    }
}
