//! The learned circuit build timeout (proposal 151, as refined by Tor's `circuitstats.c` and
//! Arti's `tor-circmgr` Pareto estimator; docs/spec/pathsel.md section 1).
//!
//! ```text
//!  add_build(ms) ──► 1000-slot ring of u16 ms ──► 10 ms histogram (kept in step)
//!  add_measured(ms) ► same ring, for a build that passed the timeout and completed anyway
//!  add_abandoned() ─► same ring, slot marked TIMED_OUT (not in the fit): closed at the
//!                     close timeout; note_timeout() counts the timeout for liveness
//!                     │
//!  fit(): Xm = weighted mean of the midpoints of the `cbtnummodes` fullest bins
//!         alpha = n / sum(ln(max(t, Xm) / Xm))          (MLE over completed builds;
//!                 builds at the 65.5 s ceiling are right-censored: in the sum, not in n)
//!         timeout = Xm / (1 - 0.80)^(1/alpha), close = Xm / (1 - 0.99)^(1/alpha)
//! ```
//!
//! Until `cbtmincircs` builds are seen, or with `LearnCircuitBuildTimeout 0`, the timeout is
//! `CircuitBuildTimeout` (60 s). Liveness: if more than `cbtmaxtimeouts` of the last
//! `cbtrecentcount` circuits timed out, the network changed under us: forget the history
//! and double the fallback timeout (Tor and Arti) rather than learn from a dead network;
//! while the caller says the network is down, nothing is recorded at all.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Ring slot value of a circuit that timed out (Tor's `CBT_BUILD_ABANDONED`).
const TIMED_OUT: u16 = u16::MAX;
/// Largest recordable build time; longer builds saturate here (16-bit ms, proposal 151).
pub const MAX_BUILD_MS: u16 = u16::MAX - 1;
/// Largest build time [`parse_build_times`] accepts: 1 hour, in ms.
pub const MAX_PLAUSIBLE_BUILD_MS: u32 = 3_600_000;
/// In-memory histogram bin width (Tor's `CBT_BIN_WIDTH`).
pub const BIN_WIDTH_MS: u32 = 10;
const N_BINS: usize = (MAX_BUILD_MS as usize) / (BIN_WIDTH_MS as usize) + 1;
/// Largest fallback timeout after repeated doubling (Arti's `MAX_FALLBACK_TIMEOUT`).
const MAX_FALLBACK: Duration = Duration::from_secs(7200);

/// Estimator configuration: torrc and Tor consensus-parameter names as serde keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CbtConfig {
    /// `LearnCircuitBuildTimeout`: learn the timeout (else always `CircuitBuildTimeout`).
    #[serde(rename = "LearnCircuitBuildTimeout")]
    pub learn: bool,
    /// `CircuitBuildTimeout`, seconds: the timeout before enough builds are seen, and the
    /// fixed timeout when learning is off.
    #[serde(rename = "CircuitBuildTimeout")]
    pub circuit_build_timeout_secs: u32,
    /// `cbtquantile`, percent: the timeout quantile (80).
    #[serde(rename = "cbtquantile")]
    pub quantile_pct: f64,
    /// `cbtclosequantile`, percent: the close (abandon) quantile (99).
    #[serde(rename = "cbtclosequantile")]
    pub close_quantile_pct: f64,
    /// `cbtmincircs`: builds needed before the learned timeout is used (100).
    #[serde(rename = "cbtmincircs")]
    pub min_circs: usize,
    /// `cbtnummodes`: histogram modes averaged into Xm (10; Tor allows 1-20).
    #[serde(rename = "cbtnummodes")]
    pub num_modes: usize,
    /// `cbtmintimeout`, ms: the smallest timeout ever used (10).
    #[serde(rename = "cbtmintimeout")]
    pub min_timeout_ms: u32,
    /// `cbtrecentcount`: circuits in the liveness window (20).
    #[serde(rename = "cbtrecentcount")]
    pub recent_count: usize,
    /// `cbtmaxtimeouts`: timeouts in the window that mean the network changed (18).
    #[serde(rename = "cbtmaxtimeouts")]
    pub max_timeouts: usize,
    /// Proposal 151's `ncircuits_to_observe`: ring size (1000).
    #[serde(rename = "ncircuits_to_observe")]
    pub ncircuits_to_observe: usize,
}

impl Default for CbtConfig {
    fn default() -> Self {
        CbtConfig {
            learn: true,
            circuit_build_timeout_secs: 60,
            quantile_pct: 80.0,
            close_quantile_pct: 99.0,
            min_circs: 100,
            num_modes: 10,
            min_timeout_ms: 10,
            recent_count: 20,
            max_timeouts: 18,
            ncircuits_to_observe: 1000,
        }
    }
}

/// A fitted Pareto distribution and the timeouts it gives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CbtFit {
    /// Completed builds in the fit (timeouts excluded).
    pub n: usize,
    /// Xm, ms (integer, as Tor).
    pub xm_ms: u32,
    /// Pareto shape alpha.
    pub alpha: f64,
    /// Timeout at the `cbtquantile`, ms (at least `cbtmintimeout`).
    pub timeout_ms: f64,
    /// Close timeout at the `cbtclosequantile`, ms (at least the timeout).
    pub close_ms: f64,
}

impl CbtFit {
    /// The Pareto quantile `Xm / (1-q)^(1/alpha)`, ms; `q` is clamped to [0, 1).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let q = q.clamp(0.0, 0.999_999_999);
        f64::from(self.xm_ms) / (1.0 - q).powf(1.0 / self.alpha)
    }

    /// The fitted CDF at `ms`.
    pub fn cdf(&self, ms: f64) -> f64 {
        if ms <= f64::from(self.xm_ms) {
            0.0
        } else {
            1.0 - (f64::from(self.xm_ms) / ms).powf(self.alpha)
        }
    }
}

/// A line of a build-times file or state file that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parse one build time in ms per line; blank lines and `#` comments are skipped.
pub fn parse_build_times(text: &str) -> Result<Vec<u32>, LineError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if !line.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LineError {
                line: i + 1,
                reason: format!("expected a build time in whole milliseconds, found {line:?}"),
            });
        }
        // Builds over MAX_BUILD_MS (65.534 s) are recorded at that ceiling (right-censored);
        // beyond an hour a value is a typo or a unit mix-up, not a circuit build.
        let ms = line
            .parse::<u32>()
            .ok()
            .filter(|ms| *ms <= MAX_PLAUSIBLE_BUILD_MS)
            .ok_or_else(|| LineError {
                line: i + 1,
                reason: format!(
                    "build time {line} ms is out of range: want 0 to {MAX_PLAUSIBLE_BUILD_MS} ms \
                     (1 hour; times above {MAX_BUILD_MS} ms count as censored at that ceiling)"
                ),
            })?;
        out.push(ms);
    }
    Ok(out)
}

/// Proposal 151 / Tor circuit build time estimator.
#[derive(Debug, Clone)]
pub struct CbtEstimator {
    cfg: CbtConfig,
    /// INVARIANT: `ring.len() <= cfg.ncircuits_to_observe`; `next` indexes the slot to
    /// overwrite once full.
    ring: Vec<u16>,
    next: usize,
    /// INVARIANT: `hist[b]` = completed, unsaturated builds in `ring` with `ms / 10 == b`.
    hist: Vec<u16>,
    /// Completed builds in the ring.
    n_completed: usize,
    /// Last `recent_count` outcomes: true = built, false = timed out.
    recent: VecDeque<bool>,
    /// The timeout used until the learned one is ready (doubles on network change).
    fallback: Duration,
    network_live: bool,
    /// Cached fit, cleared on every change (the control thread asks per circuit).
    cached: Cell<Option<Option<CbtFit>>>,
}

impl CbtEstimator {
    /// An empty estimator.
    pub fn new(mut cfg: CbtConfig) -> Self {
        cfg.ncircuits_to_observe = cfg.ncircuits_to_observe.clamp(1, usize::from(u16::MAX));
        cfg.num_modes = cfg.num_modes.clamp(1, 20);
        cfg.recent_count = cfg.recent_count.max(1);
        let fallback = Duration::from_secs(u64::from(cfg.circuit_build_timeout_secs));
        CbtEstimator {
            ring: Vec::with_capacity(cfg.ncircuits_to_observe),
            next: 0,
            hist: vec![0; N_BINS],
            n_completed: 0,
            recent: VecDeque::with_capacity(cfg.recent_count),
            fallback,
            network_live: true,
            cached: Cell::new(None),
            cfg,
        }
    }

    /// An estimator fed `times` (ms) in order, e.g. from [`parse_build_times`]; only the
    /// last `ncircuits_to_observe` stay in the ring. For `kistrel cbt fit`, set
    /// `min_circs: 0` to read the fit of a short file.
    pub fn from_build_times(times: &[u32], cfg: CbtConfig) -> Self {
        let mut est = CbtEstimator::new(cfg);
        for &t in times {
            est.add_build(t);
        }
        est
    }

    /// The configuration.
    pub fn config(&self) -> &CbtConfig {
        &self.cfg
    }

    fn push_slot(&mut self, v: u16) {
        if self.ring.len() < self.cfg.ncircuits_to_observe {
            self.ring.push(v);
        } else if let Some(slot) = self.ring.get_mut(self.next) {
            let old = std::mem::replace(slot, v);
            if old != TIMED_OUT {
                if old != MAX_BUILD_MS {
                    let b = usize::from(old) / BIN_WIDTH_MS as usize;
                    if let Some(c) = self.hist.get_mut(b) {
                        *c = c.saturating_sub(1);
                    }
                }
                self.n_completed -= 1;
            }
            self.next = (self.next + 1) % self.cfg.ncircuits_to_observe;
        }
        if v != TIMED_OUT {
            // Saturated builds are censored (true time unknown, >= 65.5 s): they count in
            // alpha at the ceiling but stay out of the histogram, where a pile-up at the
            // ceiling would pose as a mode and drag Xm up.
            if v != MAX_BUILD_MS {
                let b = usize::from(v) / BIN_WIDTH_MS as usize;
                if let Some(c) = self.hist.get_mut(b) {
                    *c = c.saturating_add(1);
                }
            }
            self.n_completed += 1;
        }
        self.cached.set(None);
    }

    fn push_recent(&mut self, built: bool) {
        if self.recent.len() == self.cfg.recent_count {
            self.recent.pop_front();
        }
        self.recent.push_back(built);
    }

    /// Record a completed build of `ms` milliseconds (saturating at [`MAX_BUILD_MS`]).
    pub fn add_build(&mut self, ms: u32) {
        if !self.network_live {
            return;
        }
        let ms = u16::try_from(ms).unwrap_or(MAX_BUILD_MS).min(MAX_BUILD_MS);
        self.push_slot(ms);
        self.push_recent(true);
    }

    /// Record a circuit that timed out and was given up at once: [`add_abandoned`] and
    /// [`note_timeout`] in one.
    ///
    /// [`add_abandoned`]: Self::add_abandoned
    /// [`note_timeout`]: Self::note_timeout
    pub fn add_timeout(&mut self) {
        self.add_abandoned();
        self.note_timeout();
    }

    /// A build passed the timeout (Tor's `circuit_build_times_count_timeout`): it counts
    /// toward the network-change check now; its ring slot comes with its outcome, a real
    /// build time ([`add_measured`](Self::add_measured)) or the close timeout
    /// ([`add_abandoned`](Self::add_abandoned)).
    pub fn note_timeout(&mut self) {
        if !self.network_live {
            return;
        }
        self.push_recent(false);
        let timeouts = self.recent.iter().filter(|b| !**b).count();
        if timeouts > self.cfg.max_timeouts {
            self.network_changed();
        }
    }

    /// A build that had passed the timeout completed after `ms` milliseconds: its real time
    /// enters the fit (proposal 151: measure the tail), but it was a timeout for the
    /// network-change check, so the recent window is not touched again.
    pub fn add_measured(&mut self, ms: u32) {
        if !self.network_live {
            return;
        }
        let ms = u16::try_from(ms).unwrap_or(MAX_BUILD_MS).min(MAX_BUILD_MS);
        self.push_slot(ms);
    }

    /// A build that had passed the timeout reached the close timeout and was closed (Tor's
    /// `circuit_build_times_count_close`): it takes a ring slot but stays out of the fit.
    pub fn add_abandoned(&mut self) {
        if !self.network_live {
            return;
        }
        self.push_slot(TIMED_OUT);
    }

    /// Tell the estimator whether the network shows signs of life (cells arriving). While
    /// it does not, builds and timeouts are not recorded (proposal 151: stop collecting).
    pub fn set_network_live(&mut self, live: bool) {
        self.network_live = live;
    }

    /// Many recent timeouts: forget the history; if the timeout in use was already at least
    /// the fallback, double the fallback (up to 2 hours), as Tor and Arti do.
    fn network_changed(&mut self) {
        let current = self.timeout();
        self.ring.clear();
        self.next = 0;
        self.hist.iter_mut().for_each(|c| *c = 0);
        self.n_completed = 0;
        self.recent.clear();
        self.cached.set(None);
        if current >= self.fallback {
            self.fallback = (self.fallback * 2).min(MAX_FALLBACK);
        }
        tracing::info!(
            fallback_ms = self.fallback.as_millis() as u64,
            "CBT: network changed, history reset"
        );
    }

    /// Completed builds in the ring.
    pub fn n_builds(&self) -> usize {
        self.n_completed
    }

    /// Timed-out slots in the ring.
    pub fn n_timeouts(&self) -> usize {
        self.ring.len() - self.n_completed
    }

    /// Whether the learned timeout is in use (learning on and `cbtmincircs` builds seen).
    pub fn is_learned(&self) -> bool {
        self.cfg.learn && self.n_completed >= self.cfg.min_circs
    }

    /// Fit a Pareto to the completed builds; `None` with no builds or no spread above Xm.
    pub fn fit(&self) -> Option<CbtFit> {
        if let Some(f) = self.cached.get() {
            return f;
        }
        let f = self.compute_fit();
        self.cached.set(Some(f));
        f
    }

    fn compute_fit(&self) -> Option<CbtFit> {
        let xm = self.estimate_xm()?;
        let ln_xm = f64::from(xm).ln();
        let mut sum = 0.0;
        let (mut n, mut censored) = (0usize, 0usize);
        for &t in self.ring.iter().filter(|t| **t != TIMED_OUT) {
            // Times below Xm count as Xm (Tor: circuit_build_times_update_alpha).
            sum += f64::from(u32::from(t).max(xm)).ln() - ln_xm;
            n += 1;
            censored += usize::from(t == MAX_BUILD_MS);
        }
        if n == censored || sum <= 0.0 {
            return None;
        }
        // Right-censored MLE: a build that hit the 16-bit ceiling took at least that long,
        // so it adds its ln(ceiling / Xm) to the sum but not to the count. Without this,
        // heavy tails past 65.5 s would inflate alpha and shrink the timeout.
        let alpha = (n - censored) as f64 / sum;
        let mut fit = CbtFit {
            n,
            xm_ms: xm,
            alpha,
            timeout_ms: 0.0,
            close_ms: 0.0,
        };
        let min = f64::from(self.cfg.min_timeout_ms);
        fit.timeout_ms = fit.quantile_ms(self.cfg.quantile_pct / 100.0).max(min);
        fit.close_ms = fit
            .quantile_ms(self.cfg.close_quantile_pct / 100.0)
            .max(fit.timeout_ms);
        Some(fit)
    }

    /// Xm: the count-weighted mean of the midpoints of the `cbtnummodes` fullest 10 ms bins,
    /// ties going to the faster bin, integer division (Tor `circuit_build_times_get_xm`,
    /// Arti `estimate_xm`).
    fn estimate_xm(&self) -> Option<u32> {
        let k = self.cfg.num_modes;
        // (count, bin), kept sorted by count descending; bins scanned ascending, so a tie
        // never displaces an earlier (faster) bin.
        let mut top: Vec<(u16, usize)> = Vec::with_capacity(k + 1);
        for (bin, &count) in self.hist.iter().enumerate() {
            if count == 0 || (top.len() == k && top.last().is_some_and(|l| l.0 >= count)) {
                continue;
            }
            let pos = top.partition_point(|e| e.0 >= count);
            top.insert(pos, (count, bin));
            top.truncate(k);
        }
        let (mut weighted, mut total) = (0u64, 0u64);
        for &(count, bin) in &top {
            let mid = bin as u64 * u64::from(BIN_WIDTH_MS) + u64::from(BIN_WIDTH_MS / 2);
            weighted += mid * u64::from(count);
            total += u64::from(count);
        }
        (total > 0).then(|| (weighted / total) as u32)
    }

    /// The timeout to use now: learned when ready, else the fallback (`CircuitBuildTimeout`,
    /// doubled after network changes).
    pub fn timeout(&self) -> Duration {
        match self.learned_fit() {
            Some(f) => Duration::from_secs_f64(f.timeout_ms / 1000.0),
            None => self.fallback,
        }
    }

    /// When to give up on a circuit that passed [`timeout`](Self::timeout) (the close
    /// quantile); the fallback when not learned (Tor closes at the same 60 s).
    pub fn close_timeout(&self) -> Duration {
        match self.learned_fit() {
            Some(f) => Duration::from_secs_f64(f.close_ms / 1000.0),
            None => self.fallback,
        }
    }

    fn learned_fit(&self) -> Option<CbtFit> {
        if self.is_learned() {
            self.fit()
        } else {
            None
        }
    }
}

mod state;
pub use state::CbtState;

#[cfg(test)]
mod tests;
