//! The statistics of every benchmark figure, in one place: the median and its spread (MAD)
//! over rounds, a bootstrap 95% interval of the median, the counterbalanced (ABBA) order of
//! conditions, and the rule for which percentiles a sample supports. Every bench job uses
//! these; no other median, quantile or interval function is written anywhere else.
//!
//! A benchmark run repeats its conditions in rounds; each ratio is computed *within* a round
//! (both conditions measured minutes apart at most, in alternating order) and the run reports
//! the median of the per-round ratios with a bootstrap interval:
//!
//! ```text
//! round 1: A B   -> r1 = A1/B1
//! round 2: B A   -> r2 = A2/B2        figure = median(r1..rn), 95% interval by
//! round 3: A B   -> r3 = A3/B3        resampling r1..rn with replacement (seeded)
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples per interval: enough that the 2.5% / 97.5% quantiles of the resampled
/// medians repeat to well under the figures' own spread.
pub const BOOTSTRAP_RESAMPLES: u32 = 10_000;

/// The seed of every interval a bench reports unless told otherwise: the same rounds always
/// give the same interval.
pub const DEFAULT_SEED: u64 = 2026;

/// The `q` quantile (0..=1) of `sorted` (ascending), interpolated linearly between order
/// statistics (Hyndman and Fan's type 7, the default of R and NumPy). `None` when empty.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let q = q.clamp(0.0, 1.0);
    let h = q * last as f64;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let (a, b) = (sorted[lo], sorted[hi.min(last)]);
    Some(a + (h - lo as f64) * (b - a))
}

/// `values` sorted ascending (total order: no value is dropped).
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The median: the middle value, or the mean of the two middle values of an even count.
/// `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    quantile_sorted(&sorted(values), 0.5)
}

/// The median absolute deviation from the median (unscaled: multiply by 1.4826 for a
/// normal distribution's standard deviation). `None` when empty.
pub fn mad(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let deviations: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
    median(&deviations)
}

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// The percentile-bootstrap interval of the median of `values` at `level` (e.g. 0.95):
/// `resamples` samples of `values.len()` drawn with replacement by a ChaCha8 generator seeded
/// with `seed`, the quantiles `(1 - level) / 2` and `(1 + level) / 2` of their medians. `None`
/// for fewer than 2 values (one value has no spread to resample).
pub fn bootstrap_median(values: &[f64], level: f64, resamples: u32, seed: u64) -> Option<Interval> {
    if values.len() < 2 || resamples == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = vec![0.0; values.len()];
    let mut medians = Vec::with_capacity(resamples as usize);
    for _ in 0..resamples {
        for slot in &mut sample {
            *slot = values[rng.random_range(0..values.len())];
        }
        medians.push(median(&sample)?);
    }
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    Some(Interval {
        low: quantile_sorted(&medians, tail)?,
        high: quantile_sorted(&medians, 1.0 - tail)?,
    })
}

/// One figure over the rounds of a run: its values in round order, their median, MAD and
/// 95% bootstrap interval of the median. This is the shape of every repeated figure in the
/// bench JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Rounds (values).
    pub n: usize,
    /// Median of `values`.
    pub median: f64,
    /// Median absolute deviation of `values` (unscaled).
    pub mad: f64,
    /// 95% percentile-bootstrap interval of the median; `None` with fewer than 2 values.
    pub ci95: Option<Interval>,
    /// The per-round values, in round order.
    pub values: Vec<f64>,
}

impl Estimate {
    /// The estimate of `values` (interval seeded with `seed`); `None` when there are no
    /// values or one of them is not finite (a ratio over a failed phase must not be averaged
    /// in silently).
    pub fn of(values: &[f64], seed: u64) -> Option<Estimate> {
        if values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        Some(Estimate {
            n: values.len(),
            median: median(values)?,
            mad: mad(values)?,
            ci95: bootstrap_median(values, 0.95, BOOTSTRAP_RESAMPLES, seed),
            values: values.to_vec(),
        })
    }

    /// `median [low, high] n=N` with `digits` decimals, for the human tables.
    pub fn display(&self, digits: usize) -> String {
        match self.ci95 {
            Some(ci) => format!(
                "{:.digits$} [{:.digits$}, {:.digits$}] n={}",
                self.median, ci.low, ci.high, self.n
            ),
            None => format!("{:.digits$} (n={}, no interval)", self.median, self.n),
        }
    }
}

/// `a / b`, `None` when `b` is not a positive finite number (a phase that moved nothing).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b.is_finite() && b > 0.0 && a.is_finite()).then(|| a / b)
}

/// The order of `conditions` in round `round` (0-based): as given in even rounds, reversed
/// in odd ones, so that over two rounds every pair of conditions runs once in each order
/// (A B, B A: "ABBA") and a drift in time (a warming machine, another job starting) falls on
/// both sides of every comparison.
pub fn abba_order<T: Clone>(conditions: &[T], round: usize) -> Vec<T> {
    let mut order = conditions.to_vec();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// Whether `n` samples support reporting the `q` quantile: at least `1 / (1 - q)` of them,
/// so that one sample lies beyond it on average (p50 needs 2, p90 10, p99 100). Below that
/// a table says n and shows the maximum instead.
pub fn quantile_supported(q: f64, n: u64) -> bool {
    if !(0.0..1.0).contains(&q) {
        return false;
    }
    // The smallest n with n * (1 - q) >= 1, computed without float drift (0.99 is not exact).
    let needed = (1.0 / (1.0 - q) - 1e-9).ceil();
    n as f64 >= needed
}

/// The median, p90 and p99 of a sample, each only where `n` supports it
/// ([`quantile_supported`]), and its maximum: what the latency columns of a table show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleQuantiles {
    /// Samples.
    pub n: usize,
    /// Median (n >= 2).
    pub p50: Option<f64>,
    /// 90th percentile (n >= 10).
    pub p90: Option<f64>,
    /// 99th percentile (n >= 100).
    pub p99: Option<f64>,
    /// Largest sample (n >= 1).
    pub max: Option<f64>,
}

impl SampleQuantiles {
    /// The quantiles of `values` (type 7, as [`quantile_sorted`]).
    pub fn of(values: &[f64]) -> SampleQuantiles {
        let v = sorted(values);
        let n = v.len();
        let q = |q: f64| {
            quantile_supported(q, n as u64)
                .then(|| quantile_sorted(&v, q))
                .flatten()
        };
        SampleQuantiles {
            n,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: v.last().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        // Two values: their mean, never the larger one.
        assert_eq!(median(&[10.0, 20.0]), Some(15.0));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn quantiles_interpolate_type_7() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // h = q * (n - 1): 0.25 * 3 = 0.75 -> 1 + 0.75 * (2 - 1).
        assert_eq!(quantile_sorted(&v, 0.25), Some(1.75));
        assert_eq!(quantile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(quantile_sorted(&v, 1.0), Some(4.0));
        assert!(close(quantile_sorted(&v, 0.9).unwrap(), 3.7));
        assert_eq!(quantile_sorted(&[], 0.5), None);
    }

    #[test]
    fn mad_ignores_one_outlier() {
        // Median 3; deviations 2, 1, 0, 1, 97 -> median 1.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), Some(1.0));
        assert_eq!(mad(&[5.0, 5.0, 5.0]), Some(0.0));
        // Median 2.5; deviations 1.5, 0.5, 0.5, 1.5 -> 1.0.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0]), Some(1.0));
    }

    #[test]
    fn bootstrap_of_few_values_by_hand() {
        // Two values 1, 3: resampled medians are 1 (1/4), 2 (1/2), 3 (1/4); the 2.5% and
        // 97.5% quantiles of 10,000 of them are 1 and 3.
        let ci = bootstrap_median(&[1.0, 3.0], 0.95, BOOTSTRAP_RESAMPLES, 1).unwrap();
        assert_eq!((ci.low, ci.high), (1.0, 3.0));
        // Three values 1, 2, 3: P(median = 1) = P(median = 3) = 7/27 > 2.5%.
        let ci = bootstrap_median(&[2.0, 3.0, 1.0], 0.95, BOOTSTRAP_RESAMPLES, 1).unwrap();
        assert_eq!((ci.low, ci.high), (1.0, 3.0));
        // A 40% interval of the same: P(median <= 1) = 7/27 = 0.26 < 0.3, so the 30% quantile
        // is 2; P(median <= 2) = 20/27 = 0.74 < 0.7 is false, so the 70% quantile is 2.
        let ci = bootstrap_median(&[2.0, 3.0, 1.0], 0.4, BOOTSTRAP_RESAMPLES, 1).unwrap();
        assert_eq!((ci.low, ci.high), (2.0, 2.0));
        // No spread, no width.
        let ci = bootstrap_median(&[5.0; 4], 0.95, 100, 9).unwrap();
        assert_eq!((ci.low, ci.high), (5.0, 5.0));
        assert_eq!(bootstrap_median(&[5.0], 0.95, 100, 9), None);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_median() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let a = bootstrap_median(&v, 0.95, BOOTSTRAP_RESAMPLES, 7).unwrap();
        let b = bootstrap_median(&v, 0.95, BOOTSTRAP_RESAMPLES, 7).unwrap();
        assert_eq!(a, b, "same seed, same interval");
        // The median 5.5 lies inside; the ends are the 3rd-4th and 7th-8th order statistics
        // (the binomial 95% range of the sample median's rank for n = 10).
        assert!(a.low <= 5.5 && 5.5 <= a.high, "{a:?}");
        assert!((2.5..=4.0).contains(&a.low), "{a:?}");
        assert!((7.0..=8.5).contains(&a.high), "{a:?}");
    }

    #[test]
    fn estimate_shape_and_refusals() {
        let e = Estimate::of(&[0.9, 1.1, 1.0], DEFAULT_SEED).unwrap();
        assert_eq!(e.n, 3);
        assert_eq!(e.median, 1.0);
        assert!(close(e.mad, 0.1));
        assert_eq!(
            e.ci95,
            Some(Interval {
                low: 0.9,
                high: 1.1
            })
        );
        assert_eq!(e.values, [0.9, 1.1, 1.0]);
        assert_eq!(e.display(2), "1.00 [0.90, 1.10] n=3");
        let one = Estimate::of(&[2.0], DEFAULT_SEED).unwrap();
        assert_eq!(one.ci95, None);
        assert_eq!(one.display(1), "2.0 (n=1, no interval)");
        assert_eq!(Estimate::of(&[], DEFAULT_SEED), None);
        assert_eq!(Estimate::of(&[1.0, f64::INFINITY], DEFAULT_SEED), None);
        assert_eq!(Estimate::of(&[1.0, f64::NAN], DEFAULT_SEED), None);
    }

    #[test]
    fn ratios_refuse_empty_denominators() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(3.0, f64::NAN), None);
        assert_eq!(ratio(f64::INFINITY, 1.0), None);
    }

    #[test]
    fn abba_alternates_and_balances_every_pair() {
        let c = ['A', 'B', 'C'];
        assert_eq!(abba_order(&c, 0), ['A', 'B', 'C']);
        assert_eq!(abba_order(&c, 1), ['C', 'B', 'A']);
        assert_eq!(abba_order(&c, 2), ['A', 'B', 'C']);
        let seq: String = (0..4).flat_map(|r| abba_order(&['A', 'B'], r)).collect();
        assert_eq!(seq, "ABBAABBA");
        // Over an even number of rounds each ordered pair occurs equally often.
        for (x, y) in [('A', 'B'), ('A', 'C'), ('B', 'C')] {
            let first = (0..4)
                .filter(|&r| {
                    let o = abba_order(&c, r);
                    o.iter().position(|&k| k == x) < o.iter().position(|&k| k == y)
                })
                .count();
            assert_eq!(first, 2, "{x} before {y}");
        }
    }

    #[test]
    fn sample_quantiles_only_where_supported() {
        let eight: Vec<f64> = (1..=8).map(f64::from).collect();
        let q = SampleQuantiles::of(&eight);
        assert_eq!(q.n, 8);
        assert_eq!(q.p50, Some(4.5));
        // n = 8: no p90 or p99 (the issue's "p90 = p99 = max with n = 8"), the max instead.
        assert_eq!((q.p90, q.p99, q.max), (None, None, Some(8.0)));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let q = SampleQuantiles::of(&hundred);
        assert!(close(q.p90.unwrap(), 90.1));
        assert!(close(q.p99.unwrap(), 99.01));
        let none = SampleQuantiles::of(&[]);
        assert_eq!((none.n, none.p50, none.max), (0, None, None));
    }

    #[test]
    fn percentiles_need_enough_samples() {
        assert!(!quantile_supported(0.5, 1));
        assert!(quantile_supported(0.5, 2));
        assert!(!quantile_supported(0.9, 9));
        assert!(quantile_supported(0.9, 10));
        assert!(!quantile_supported(0.99, 99));
        assert!(quantile_supported(0.99, 100));
        assert!(!quantile_supported(0.999, 999));
        assert!(quantile_supported(0.999, 1000));
        assert!(!quantile_supported(1.0, u64::MAX));
    }
}
