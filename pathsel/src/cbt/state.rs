//! The CBT part of the state file: Tor's histogram lines.
//!
//! ```text
//! CircuitBuildTimeBinWidth 50          (ours; absent = 10 ms, Tor's width)
//! TotalBuildTimes 110
//! CircuitBuildAbandonedCount 10
//! CircuitBuildTimeBin 205 20           (bin midpoint ms, count)
//! ```

use std::fmt::Write as _;

use rand::seq::SliceRandom;
use rand::Rng;

use super::{CbtConfig, CbtEstimator, LineError, BIN_WIDTH_MS, MAX_BUILD_MS, TIMED_OUT};

/// Most samples a state file may carry before it is called corrupt (far above any ring).
const MAX_STATE_SAMPLES: u64 = 1_000_000;

/// The estimator's history as a histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbtState {
    /// Bin width, ms (10 as Tor today, 50 as proposal 151's on-disk histogram).
    pub bin_width_ms: u32,
    /// (bin midpoint ms, count), ascending.
    pub bins: Vec<(u16, u32)>,
    /// Circuits that timed out (ring slots outside the fit).
    pub abandoned: u32,
}

impl CbtState {
    /// Total samples (builds and timeouts).
    pub fn total(&self) -> u64 {
        self.bins.iter().map(|(_, c)| u64::from(*c)).sum::<u64>() + u64::from(self.abandoned)
    }

    /// The state lines.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.bin_width_ms != BIN_WIDTH_MS {
            let _ = writeln!(out, "CircuitBuildTimeBinWidth {}", self.bin_width_ms);
        }
        let _ = writeln!(out, "TotalBuildTimes {}", self.total());
        let _ = writeln!(out, "CircuitBuildAbandonedCount {}", self.abandoned);
        for (mid, count) in &self.bins {
            let _ = writeln!(out, "CircuitBuildTimeBin {mid} {count}");
        }
        out
    }

    /// Parse state lines; errors count lines from `first_line`. Unknown keys, bins past the
    /// 16-bit ceiling, absurd totals and a `TotalBuildTimes` that disagrees with the bins are
    /// errors: a wrong timeout is worse than none.
    pub fn parse(text: &str, first_line: usize) -> Result<Self, LineError> {
        let mut st = CbtState {
            bin_width_ms: BIN_WIDTH_MS,
            bins: Vec::new(),
            abandoned: 0,
        };
        let mut total: Option<(u64, usize)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = first_line + i;
            let err = |reason: String| LineError {
                line: line_no,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let key = words.next().unwrap_or("");
            let nums: Vec<u64> = words
                .map(|w| {
                    w.parse::<u64>()
                        .map_err(|_| err(format!("{key}: {w:?} is not a number")))
                })
                .collect::<Result<_, _>>()?;
            match (key, nums.as_slice()) {
                ("TotalBuildTimes", [n]) => total = Some((*n, line_no)),
                ("CircuitBuildTimeBinWidth", [w])
                    if st.bins.is_empty() && (1..=1000).contains(w) =>
                {
                    st.bin_width_ms = *w as u32;
                }
                ("CircuitBuildAbandonedCount", [n]) if *n <= MAX_STATE_SAMPLES => {
                    st.abandoned = *n as u32
                }
                ("CircuitBuildTimeBin", [ms, count]) => {
                    if *ms > u64::from(MAX_BUILD_MS) {
                        return Err(err(format!("bin {ms} ms is above {MAX_BUILD_MS} ms")));
                    }
                    if *count > MAX_STATE_SAMPLES {
                        return Err(err(format!("more than {MAX_STATE_SAMPLES} samples")));
                    }
                    st.bins.push((*ms as u16, *count as u32));
                }
                _ => return Err(err(format!("unexpected line {line:?}"))),
            }
            if st.total() > MAX_STATE_SAMPLES {
                return Err(err(format!("more than {MAX_STATE_SAMPLES} samples")));
            }
        }
        if let Some((t, line)) = total {
            if t != st.total() {
                return Err(LineError {
                    line,
                    reason: format!(
                        "TotalBuildTimes {t} but the bins and abandoned count hold {}",
                        st.total()
                    ),
                });
            }
        }
        Ok(st)
    }
}

impl CbtEstimator {
    /// The history as a histogram of `bin_width_ms` bins.
    pub fn state(&self, bin_width_ms: u32) -> CbtState {
        let width = bin_width_ms.clamp(1, 1000);
        let mut sorted: Vec<u16> = self
            .ring
            .iter()
            .copied()
            .filter(|t| *t != TIMED_OUT)
            .collect();
        sorted.sort_unstable();
        let mut bins: Vec<(u16, u32)> = Vec::new();
        for t in sorted {
            // The ceiling bin's midpoint would pass the ceiling: clamp it.
            let mid =
                ((u32::from(t) / width) * width + width / 2).min(u32::from(MAX_BUILD_MS)) as u16;
            match bins.last_mut() {
                Some((m, c)) if *m == mid => *c += 1,
                _ => bins.push((mid, 1)),
            }
        }
        CbtState {
            bin_width_ms: width,
            bins,
            abandoned: self.n_timeouts() as u32,
        }
    }

    /// [`state`](Self::state) as text.
    pub fn to_state_text(&self, bin_width_ms: u32) -> String {
        self.state(bin_width_ms).to_text()
    }

    /// An estimator refilled from a histogram. Samples are shuffled with `rng` before they
    /// fill the ring, as Tor does, so eviction order does not follow bin order; more samples
    /// than the ring holds are subsampled. Bins wider than 10 ms spread their builds
    /// uniformly over the bin (else one 50 ms bin would pose as one sharp 10 ms mode).
    pub fn from_state<R: Rng + ?Sized>(state: &CbtState, cfg: CbtConfig, rng: &mut R) -> Self {
        let width = u64::from(state.bin_width_ms.max(1));
        let mut samples: Vec<u16> =
            Vec::with_capacity(state.total().min(MAX_STATE_SAMPLES) as usize);
        for &(mid, count) in &state.bins {
            if width <= u64::from(BIN_WIDTH_MS) {
                samples.extend(std::iter::repeat_n(mid, count as usize));
            } else {
                let lo = u64::from(mid).saturating_sub(width / 2);
                for _ in 0..count {
                    let v = (lo + rng.random_range(0..width)).min(u64::from(MAX_BUILD_MS));
                    samples.push(v as u16);
                }
            }
        }
        samples.extend(std::iter::repeat_n(TIMED_OUT, state.abandoned as usize));
        samples.shuffle(rng);
        let mut est = CbtEstimator::new(cfg);
        let keep = samples.len().min(est.cfg.ncircuits_to_observe);
        for &s in samples.iter().take(keep) {
            est.push_slot(s);
        }
        est
    }

    /// Parse state text (lines numbered from 1) and refill an estimator from it.
    pub fn from_state_text<R: Rng + ?Sized>(
        text: &str,
        cfg: CbtConfig,
        rng: &mut R,
    ) -> Result<Self, LineError> {
        Ok(Self::from_state(&CbtState::parse(text, 1)?, cfg, rng))
    }
}
