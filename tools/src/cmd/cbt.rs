//! `kistrel cbt fit FILE [--json FILE|-]`: fit proposal 151's Pareto model to recorded build times.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kistrel_pathsel::cbt::{parse_build_times, LineError};
use kistrel_pathsel::{CbtConfig, CbtEstimator, CbtFit};

use kistrel_base::{ErrorKind, HasKind};

/// Version of the `--json` output object.
pub const JSON_VERSION: u32 = 1;

/// `kistrel cbt` options.
#[derive(Debug, Clone, Args)]
pub struct CbtArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CbtCommand,
}

/// `kistrel cbt` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CbtCommand {
    /// Fit build times (one per line, in ms; `#` comments) and print Xm, alpha and timeouts.
    Fit(FitArgs),
}

/// `kistrel cbt fit` options.
#[derive(Debug, Clone, Args)]
pub struct FitArgs {
    /// Build times file: one whole number of milliseconds per line.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write the result as one JSON object to FILE (`-`: stdout, instead of the summary).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Timeout quantile in percent (torrc `cbtquantile`).
    #[arg(long, default_value_t = CbtConfig::default().quantile_pct)]
    pub quantile: f64,
    /// Close quantile in percent (torrc `cbtclosequantile`).
    #[arg(long, default_value_t = CbtConfig::default().close_quantile_pct)]
    pub close_quantile: f64,
    /// Histogram modes averaged for Xm (torrc `cbtnummodes`).
    #[arg(long, default_value_t = CbtConfig::default().num_modes)]
    pub num_modes: usize,
}

/// Why `kistrel cbt` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CbtCmdError {
    /// The file could not be read.
    #[error("cannot read build times file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a build time.
    #[error("{}:{}: {}", path.display(), source.line, source.reason)]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line and what is wrong.
        #[source]
        source: LineError,
    },
    /// No fit: no build times, or all equal (no spread above Xm).
    #[error("{}: cannot fit a Pareto to {n} build time(s): need at least two different times", path.display())]
    NoFit {
        /// The file.
        path: PathBuf,
        /// Build times read.
        n: usize,
    },
    /// A quantile outside (0, 100).
    #[error("--{flag} {value} is out of range: want a percentage above 0 and below 100")]
    BadQuantile {
        /// Which option.
        flag: &'static str,
        /// Its value.
        value: f64,
    },
    /// The result could not be encoded as JSON (a bug).
    #[error("encoding the JSON result: {0}")]
    Json(#[source] serde_json::Error),
    /// The `--json` file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for CbtCmdError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The input is at fault.
            CbtCmdError::Read { .. }
            | CbtCmdError::Parse { .. }
            | CbtCmdError::NoFit { .. }
            | CbtCmdError::BadQuantile { .. } => ErrorKind::BadConfig,
            CbtCmdError::Json(_) => ErrorKind::Internal,
            CbtCmdError::Write { .. } => ErrorKind::LocalIo,
        }
    }
}

/// The `--json` object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FitReport {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// Build times used.
    pub n: usize,
    /// Pareto scale (mode estimate), ms.
    pub xm_ms: u32,
    /// Pareto shape.
    pub alpha: f64,
    /// Timeout at the quantile, ms.
    pub timeout_ms: f64,
    /// Close timeout at the close quantile, ms.
    pub close_ms: f64,
    /// Whether Tor would use this fit (at least `cbtmincircs` = 100 builds).
    pub learned: bool,
}

/// Fit `times` with `cfg` (the ring sized to hold them all). `None` when there is no fit.
pub fn fit_times(times: &[u32], mut cfg: CbtConfig) -> Option<FitReport> {
    cfg.ncircuits_to_observe = times.len().clamp(1, usize::from(u16::MAX));
    let mut est = CbtEstimator::new(cfg);
    // An offline file may hold more than the ring: the newest (last) ones count, as live.
    for &t in times {
        est.add_build(t);
    }
    let CbtFit {
        n,
        xm_ms,
        alpha,
        timeout_ms,
        close_ms,
    } = est.fit()?;
    Some(FitReport {
        version: JSON_VERSION,
        n,
        xm_ms,
        alpha,
        timeout_ms,
        close_ms,
        learned: est.is_learned(),
    })
}

/// Run `kistrel cbt`.
pub fn run(args: CbtArgs) -> Result<(), CbtCmdError> {
    let CbtCommand::Fit(args) = args.command;
    for (flag, value) in [
        ("quantile", args.quantile),
        ("close-quantile", args.close_quantile),
    ] {
        if !(value > 0.0 && value < 100.0) {
            return Err(CbtCmdError::BadQuantile { flag, value });
        }
    }
    let text = std::fs::read_to_string(&args.file).map_err(|source| CbtCmdError::Read {
        path: args.file.clone(),
        source,
    })?;
    let times = parse_build_times(&text).map_err(|source| CbtCmdError::Parse {
        path: args.file.clone(),
        source,
    })?;
    let cfg = CbtConfig {
        quantile_pct: args.quantile,
        close_quantile_pct: args.close_quantile,
        num_modes: args.num_modes,
        ..CbtConfig::default()
    };
    let report = fit_times(&times, cfg).ok_or_else(|| CbtCmdError::NoFit {
        path: args.file.clone(),
        n: times.len(),
    })?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string(&report).map_err(CbtCmdError::Json)?;
        crate::cmd::args::write_json(path, &json).map_err(|source| CbtCmdError::Write {
            path: path.clone(),
            source,
        })?;
    }
    // With `--json -` the JSON is the output; with `--json FILE` the summary still prints.
    if args.json.as_ref().is_none_or(|p| p.as_os_str() != "-") {
        println!(
            "n={} Xm={} ms alpha={:.4} timeout={:.0} ms (q={}%) close={:.0} ms (q={}%){}",
            report.n,
            report.xm_ms,
            report.alpha,
            report.timeout_ms,
            args.quantile,
            report.close_ms,
            args.close_quantile,
            if report.learned {
                ""
            } else {
                " [fewer builds than cbtmincircs: Tor would not use this fit yet]"
            }
        );
    }
    Ok(())
}
