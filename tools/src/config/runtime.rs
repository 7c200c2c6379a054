//! Keys shared by relay and client: threads, backend, scheduling.

use std::time::Duration;

use kistrel_sched::SchedulerKind;
use serde::{Deserialize, Deserializer};

use super::error::ConfigError;
use super::source::ConfSource;
use super::value::de;
use crate::placement::CpuList;

/// Runtime backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// io_uring where it can be set up, else `Poll` with a warning saying why (the default).
    Auto,
    /// io_uring (Linux), or fail to start where it cannot be set up.
    Uring,
    /// Portable readiness polling.
    Poll,
}

impl Backend {
    /// `"auto"`, `"uring"` or `"poll"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Uring => "uring",
            Backend::Poll => "poll",
        }
    }

    /// Case-insensitive inverse of [`Backend::name`].
    pub fn from_name(s: &str) -> Option<Backend> {
        [Backend::Auto, Backend::Uring, Backend::Poll]
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl<'de> Deserialize<'de> for Backend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let s = v.as_str().ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected \"auto\", \"uring\" or \"poll\", found {}",
                v.type_str()
            ))
        })?;
        Backend::from_name(s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown backend {s:?}: want \"auto\", \"uring\" or \"poll\""
            ))
        })
    }
}

/// How channels are carried (`Links`, `--links`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LinksMode {
    /// TLS on every link, as Tor's link protocol (the default): rustls, records in user
    /// space, or kTLS where the kernel has the `tls` ULP.
    Tls,
    /// BENCHMARK MODE ONLY: plain TCP, no encryption and no TLS binding of relay identities
    /// (the link handshake still proves them by certificates and ntor). For measuring what
    /// TLS costs; C Tor relays refuse such links.
    Plain,
}

impl LinksMode {
    /// `"tls"` or `"plain"`.
    pub fn name(self) -> &'static str {
        match self {
            LinksMode::Tls => "tls",
            LinksMode::Plain => "plain",
        }
    }
}

impl<'de> Deserialize<'de> for LinksMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let s = v.as_str().ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected \"tls\" or \"plain\", found {}",
                v.type_str()
            ))
        })?;
        [LinksMode::Tls, LinksMode::Plain]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown links {s:?}: want \"tls\" (the default) or \"plain\" (a benchmark mode)"
                ))
            })
    }
}

/// The runtime keys as written (absent keys are `None`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RuntimeSection {
    #[serde(rename = "Workers", deserialize_with = "de::usize_value")]
    workers: Option<usize>,
    #[serde(rename = "Backend")]
    backend: Option<Backend>,
    #[serde(rename = "Links")]
    links: Option<LinksMode>,
    #[serde(rename = "Schedulers", deserialize_with = "de::schedulers")]
    schedulers: Option<Vec<SchedulerKind>>,
    #[serde(
        rename = "KISTSchedRunInterval",
        deserialize_with = "de::duration_msec"
    )]
    kist_sched_run_interval: Option<Duration>,
    #[serde(rename = "KISTSockBufSizeFactor", deserialize_with = "de::float")]
    kist_sock_buf_size_factor: Option<f64>,
    #[serde(
        rename = "CircuitPriorityHalflife",
        deserialize_with = "de::duration_secs"
    )]
    circuit_priority_halflife: Option<Duration>,
    #[serde(rename = "CPUAffinity", deserialize_with = "de::cpu_list")]
    cpu_affinity: Option<CpuList>,
}

/// Keys shared by relay and client: threads, backend, scheduling.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConf {
    /// `Workers`: worker threads; 0 = one per core (see [`RuntimeConf::effective_workers`]).
    pub workers: usize,
    /// `Backend`.
    pub backend: Backend,
    /// `Links`: TLS (default) or plain (benchmark mode only).
    pub links: LinksMode,
    /// `Schedulers`: first usable one wins.
    pub schedulers: Vec<SchedulerKind>,
    /// `KISTSchedRunInterval` (a bare number is msec, as in Tor; range 1-100 ms, default 10).
    pub kist_sched_run_interval: Duration,
    /// `KISTSockBufSizeFactor` (Tor default 1.0).
    pub kist_sock_buf_size_factor: f64,
    /// `CircuitPriorityHalflife` (a bare number is seconds, as in Tor); zero = plain round
    /// robin. Default 30 s (Tor's consensus `CircuitPriorityHalflifeMsec`).
    pub circuit_priority_halflife: Duration,
    /// `CPUAffinity` (kistrel's key; Tor has none): the CPUs this node runs on, a list like
    /// `"0,2-3"`. The process is confined to them and worker *i* pinned to the *i*-th (in
    /// turn). Absent: nothing pinned, the kernel places the threads. Checked against the
    /// CPUs the process may use when the node starts, not when the file loads, so a config
    /// written for another machine still loads.
    pub cpu_affinity: Option<CpuList>,
}

impl Default for RuntimeConf {
    fn default() -> Self {
        RuntimeConf {
            workers: 0,
            backend: Backend::Auto,
            links: LinksMode::Tls,
            schedulers: SchedulerKind::TOR_DEFAULT.to_vec(),
            kist_sched_run_interval: Duration::from_millis(10),
            kist_sock_buf_size_factor: 1.0,
            circuit_priority_halflife: Duration::from_secs(30),
            cpu_affinity: None,
        }
    }
}

impl RuntimeConf {
    /// `workers`, with 0 resolved to the number of available cores (at least 1).
    pub fn effective_workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Takes the runtime keys from `src` and checks their ranges.
    pub(super) fn take(src: &mut ConfSource) -> Result<Self, ConfigError> {
        let s: RuntimeSection = src.take()?;
        let d = RuntimeConf::default();
        let interval = s
            .kist_sched_run_interval
            .unwrap_or(d.kist_sched_run_interval);
        // Tor accepts 0-100 msec, 0 meaning "ask the consensus"; we have no consensus.
        if interval < Duration::from_millis(1) || interval > Duration::from_millis(100) {
            return Err(src.bad(
                "KISTSchedRunInterval",
                format!(
                    "{} ms is out of range: want 1 to 100 ms",
                    interval.as_millis()
                ),
            ));
        }
        let factor = s
            .kist_sock_buf_size_factor
            .unwrap_or(d.kist_sock_buf_size_factor);
        if factor < 0.0 {
            return Err(src.bad(
                "KISTSockBufSizeFactor",
                format!("{factor} is negative: want a factor >= 0 (Tor default 1.0)"),
            ));
        }
        Ok(RuntimeConf {
            workers: s.workers.unwrap_or(d.workers),
            backend: s.backend.unwrap_or(d.backend),
            links: s.links.unwrap_or(d.links),
            schedulers: s.schedulers.unwrap_or(d.schedulers),
            kist_sched_run_interval: interval,
            kist_sock_buf_size_factor: factor,
            circuit_priority_halflife: s
                .circuit_priority_halflife
                .unwrap_or(d.circuit_priority_halflife),
            cpu_affinity: s.cpu_affinity,
        })
    }
}
