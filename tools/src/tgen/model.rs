//! Traffic models: what a flow fetches (sizes with weights and timeouts), when (closed loop
//! with a think time, or open-loop Poisson arrivals), and for how long (count or duration).
//!
//! Built-in models (sources cited at each constructor): `web`, `bulk`, `perf`. A custom model
//! comes from a TOML file (read by the model_file module):
//!
//! ```toml
//! name = "chat"            # optional: the file stem by default
//! arrivals = "closed"      # "closed" (think after each transfer, default) or "open"
//! rate = 0.5               # open only, required: arrivals per second per flow
//! timeout = 60             # per transfer (default 60 s); a size may override it
//! count = 100              # transfers per flow; or `duration = 300`; optional
//!                          # timeout, duration: a number of seconds or "2min", "500ms"
//!
//! [think]                  # closed only; absent = back to back
//! distribution = "lognormal"   # constant (seconds) | uniform (low, high) |
//! mu = 1.0                     # exponential (mean) | lognormal (mu, sigma) |
//! sigma = 0.5                  # pareto (scale, shape); all in seconds
//!
//! [[sizes]]                # at least one
//! bytes = "50 KiB"         # an integer (bytes) or a size with a unit ("1.5 MB")
//! weight = 12              # integer >= 1, default 1
//! timeout = 15             # optional
//! ```
//!
//! Random draws, in order, from the flow's own RNG (so a seed fixes every flow's sequence):
//! closed loop: size index, then the think time after that transfer; open loop: the gap to
//! the next arrival (exponential), then its size index. A size index is
//! `random_range(0..total_weight)` mapped through the cumulative weights.

use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal, Pareto, Uniform};
use serde::{Deserialize, Serialize};

/// Longest think time or arrival gap a distribution may produce (a day): heavy tails stay
/// finite.
const MAX_WAIT_S: f64 = 86_400.0;

/// A think-time distribution, parameters in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "lowercase", deny_unknown_fields)]
pub enum ThinkTime {
    /// Always `seconds`.
    Constant {
        /// The time.
        seconds: f64,
    },
    /// Uniform on `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Exponential with this mean.
    Exponential {
        /// The mean.
        mean: f64,
    },
    /// exp(N(mu, sigma^2)).
    Lognormal {
        /// Mean of the underlying normal.
        mu: f64,
        /// Standard deviation of the underlying normal.
        sigma: f64,
    },
    /// Pareto with minimum `scale` and tail index `shape`.
    Pareto {
        /// The minimum.
        scale: f64,
        /// The tail index.
        shape: f64,
    },
}

impl ThinkTime {
    /// Checks the parameters; the problem in words.
    pub fn validate(&self) -> Result<(), String> {
        let ok = match *self {
            ThinkTime::Constant { seconds } => seconds.is_finite() && seconds >= 0.0,
            ThinkTime::Uniform { low, high } => {
                low.is_finite() && low >= 0.0 && high > low && high.is_finite()
            }
            ThinkTime::Exponential { mean } => mean.is_finite() && mean > 0.0,
            ThinkTime::Lognormal { mu, sigma } => LogNormal::new(mu, sigma).is_ok() && sigma > 0.0,
            ThinkTime::Pareto { scale, shape } => Pareto::new(scale, shape).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                ThinkTime::Constant { .. } => "constant: seconds must be >= 0".into(),
                ThinkTime::Uniform { .. } => "uniform: need 0 <= low < high".into(),
                ThinkTime::Exponential { .. } => "exponential: mean must be > 0".into(),
                ThinkTime::Lognormal { .. } => "lognormal: sigma must be > 0".into(),
                ThinkTime::Pareto { .. } => "pareto: scale and shape must be > 0".into(),
            })
        }
    }

    /// One draw (0 for parameters [`ThinkTime::validate`] refuses).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let s = match *self {
            ThinkTime::Constant { seconds } => seconds,
            ThinkTime::Uniform { low, high } => {
                Uniform::new(low, high).map_or(0.0, |d| d.sample(rng))
            }
            ThinkTime::Exponential { mean } => Exp::new(1.0 / mean).map_or(0.0, |d| d.sample(rng)),
            ThinkTime::Lognormal { mu, sigma } => {
                LogNormal::new(mu, sigma).map_or(0.0, |d| d.sample(rng))
            }
            ThinkTime::Pareto { scale, shape } => {
                Pareto::new(scale, shape).map_or(0.0, |d| d.sample(rng))
            }
        };
        wait(s)
    }

    /// Parses the CLI form: `const:S`, `uniform:LO,HI`, `exp:MEAN`, `lognormal:MU,SIGMA`,
    /// `pareto:SCALE,SHAPE` (seconds).
    pub fn parse_cli(s: &str) -> Result<ThinkTime, String> {
        let (kind, args) = s.split_once(':').unwrap_or((s, ""));
        let nums: Result<Vec<f64>, _> = args.split(',').map(|a| a.trim().parse::<f64>()).collect();
        let nums = nums.map_err(|_| format!("`{s}`: parameters must be numbers"))?;
        let t = match (kind, nums.as_slice()) {
            ("const" | "constant", [x]) => ThinkTime::Constant { seconds: *x },
            ("uniform", [low, high]) => ThinkTime::Uniform { low: *low, high: *high },
            ("exp" | "exponential", [mean]) => ThinkTime::Exponential { mean: *mean },
            ("lognormal", [mu, sigma]) => ThinkTime::Lognormal { mu: *mu, sigma: *sigma },
            ("pareto", [scale, shape]) => ThinkTime::Pareto { scale: *scale, shape: *shape },
            _ => {
                return Err(format!(
                    "`{s}`: expected const:S, uniform:LO,HI, exp:MEAN, lognormal:MU,SIGMA or pareto:SCALE,SHAPE"
                ))
            }
        };
        t.validate().map_err(|p| format!("`{s}`: {p}"))?;
        Ok(t)
    }
}

fn wait(seconds: f64) -> Duration {
    Duration::from_secs_f64(if seconds.is_finite() {
        seconds.clamp(0.0, MAX_WAIT_S)
    } else {
        MAX_WAIT_S
    })
}

/// When a flow starts its transfers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Arrivals {
    /// One transfer at a time; after each, wait a think time (`None`: back to back).
    Closed {
        /// The think time.
        think: Option<ThinkTime>,
    },
    /// Poisson arrivals at `rate` per second, scheduled in advance from the seed, each its
    /// own connection whatever the earlier ones are doing.
    Open {
        /// Arrivals per second.
        rate: f64,
    },
}

/// One transfer size a model may pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeChoice {
    /// Bytes to fetch.
    pub bytes: u64,
    /// Relative weight (>= 1).
    pub weight: u32,
    /// A transfer not finished this long after its (scheduled) start fails as `timeout`.
    #[serde(with = "secs")]
    pub timeout: Duration,
}

/// A traffic model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Name in reports and SOCKS usernames (`tgen-NAME-FLOW`).
    pub name: String,
    /// Sizes to pick from (never empty).
    pub sizes: Vec<SizeChoice>,
    /// Closed or open loop.
    pub arrivals: Arrivals,
    /// Transfers per flow (the CLI's `--count` overrides it).
    pub count: Option<u64>,
    /// Run length (the CLI's `--duration` overrides it).
    #[serde(with = "opt_secs")]
    pub duration: Option<Duration>,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

impl Model {
    /// `web`: 320 KiB, then a think time uniform on 1..60 s: the KIST papers' Shadow web
    /// clients (Jansen et al., "Never Been KIST", USENIX Security 2014, section 5: 320 KiB
    /// downloads separated by pauses of 1 to 60 s chosen uniformly at random). Shadow's tgen
    /// draws from the integers 1..=60; a continuous uniform has the same mean (30.5 s) and
    /// no ties. `--think` overrides it. Timeout 60 s (OnionPerf's for 1 MiB, a bound for a
    /// 320 KiB page).
    pub fn web() -> Model {
        Model {
            name: "web".into(),
            sizes: vec![SizeChoice {
                bytes: 320 * KIB,
                weight: 1,
                timeout: Duration::from_secs(60),
            }],
            arrivals: Arrivals::Closed {
                think: Some(ThinkTime::Uniform {
                    low: 1.0,
                    high: 60.0,
                }),
            },
            count: None,
            duration: None,
        }
    }

    /// `bulk`: 5 MiB back to back (the same papers' bulk clients). Timeout 120 s (OnionPerf's
    /// for 5 MiB).
    pub fn bulk() -> Model {
        Model {
            name: "bulk".into(),
            sizes: vec![SizeChoice {
                bytes: 5 * MIB,
                weight: 1,
                timeout: Duration::from_secs(120),
            }],
            arrivals: Arrivals::Closed { think: None },
            count: None,
            duration: None,
        }
    }

    /// `perf`: OnionPerf's sizes 50 KiB / 1 MiB / 5 MiB with timeouts 15 / 60 / 120 s and
    /// weights 12:2:1 (Torperf fetched 50 KiB every 5 min, 1 MiB every 30 min and 5 MiB every
    /// 60 min: 12, 2 and 1 per hour), open-loop at their total rate, 15 per hour per flow
    /// (`--rate` overrides).
    pub fn perf() -> Model {
        Model {
            name: "perf".into(),
            sizes: vec![
                SizeChoice {
                    bytes: 50 * KIB,
                    weight: 12,
                    timeout: Duration::from_secs(15),
                },
                SizeChoice {
                    bytes: MIB,
                    weight: 2,
                    timeout: Duration::from_secs(60),
                },
                SizeChoice {
                    bytes: 5 * MIB,
                    weight: 1,
                    timeout: Duration::from_secs(120),
                },
            ],
            arrivals: Arrivals::Open {
                rate: 15.0 / 3600.0,
            },
            count: None,
            duration: None,
        }
    }

    /// Index into [`Model::sizes`] for one draw.
    pub fn pick_size<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let total: u64 = self.sizes.iter().map(|s| u64::from(s.weight)).sum();
        if total == 0 {
            return 0;
        }
        let mut x = rng.random_range(0..total);
        for (i, s) in self.sizes.iter().enumerate() {
            let w = u64::from(s.weight);
            if x < w {
                return i;
            }
            x -= w;
        }
        self.sizes.len().saturating_sub(1)
    }

    /// The open-loop arrival schedule drawn from `rng` (empty for a closed model).
    pub fn schedule<R: Rng>(&self, rng: R) -> Schedule<'_, R> {
        Schedule {
            model: self,
            rng,
            at: Duration::ZERO,
        }
    }
}

/// One scheduled open-loop arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Offset from the run's start.
    pub at: Duration,
    /// Index into the model's sizes.
    pub size: usize,
}

/// An endless open-loop arrival schedule (see [`Model::schedule`]).
#[derive(Debug)]
pub struct Schedule<'m, R> {
    model: &'m Model,
    rng: R,
    at: Duration,
}

impl<R: Rng> Iterator for Schedule<'_, R> {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        let Arrivals::Open { rate } = self.model.arrivals else {
            return None;
        };
        let gap = Exp::new(rate).map_or(MAX_WAIT_S, |d| d.sample(&mut self.rng));
        self.at = self.at.saturating_add(wait(gap));
        let size = self.model.pick_size(&mut self.rng);
        Some(Arrival { at: self.at, size })
    }
}

/// Serde for a `Duration` as float seconds.
mod secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let v = <f64 as serde::Deserialize>::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// Serde for an `Option<Duration>` as float seconds or null.
mod opt_secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let v = <Option<f64> as serde::Deserialize>::deserialize(d)?;
        v.map(|v| Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests;
