//! `kistrel bench check BASELINE`: the main job with both comparisons (KIST/Vanilla, 2/1
//! workers), its ratios and CPU per GiB compared with a committed baseline file. A figure
//! beyond its tolerance fails the job (exit 1) with a table.
//!
//! ```toml
//! machine = "2-core CI box"
//! [figures.ratio_vs_forwarders]
//! baseline = 0.45
//! better = "higher"   # a ratio: fails below baseline * (1 - tolerance)
//! tolerance = 0.5     # "lower" (a cost): fails above baseline * (1 + tolerance)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use super::run::{self, Comparisons, Report, RunArgs};
use crate::error::CliError;

/// `kistrel bench check` options.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The baseline file (e.g. benches/macro-baseline.toml).
    #[arg(value_name = "BASELINE")]
    pub baseline: PathBuf,
    /// The main job's options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Whether a larger or a smaller figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Better {
    /// A ratio: fails below `baseline * (1 - tolerance)`.
    Higher,
    /// A cost: fails above `baseline * (1 + tolerance)`.
    Lower,
}

/// One figure of a baseline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFigure {
    baseline: f64,
    better: Better,
    tolerance: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    machine: Option<String>,
    figures: BTreeMap<String, BaselineFigure>,
}

/// Run the check.
pub fn run(args: &CheckArgs) -> Result<(), CliError> {
    // Read the baseline first: a bad file fails before minutes of measuring.
    let base = read_baseline(&args.baseline)?;
    let compare = Comparisons {
        workers: true,
        schedulers: true,
        links: args.run.compare_links,
    };
    let (report, failed) = run::measure(&args.run, compare)?;
    run::finish(&args.run, &report)?;
    check_against(&args.baseline, &base, &figures(&report))?;
    run::fail_on(failed)
}

fn read_baseline(path: &Path) -> Result<BaselineFile, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::runtime(format!("reading {}", path.display()), e))?;
    toml::from_str(&text).map_err(|e| CliError::runtime(format!("parsing {}", path.display()), e))
}

/// The figures a check compares, from a report.
fn figures(r: &Report) -> BTreeMap<&'static str, f64> {
    let mut f = BTreeMap::new();
    f.insert("ratio_vs_forwarders", r.throughput.ratio_vs_forwarders);
    if let Some(c) = &r.scheduler_comparison {
        f.insert("kist_over_vanilla", c.kist_over_vanilla);
    }
    if let Some(w) = &r.workers_comparison {
        f.insert("workers_two_over_one", w.two_over_one);
    }
    let relay_cpu = r
        .cpu_s_per_gib
        .iter()
        .filter(|c| c.role.starts_with("relay"))
        .map(|c| c.cpu_s_per_gib)
        .fold(0.0, f64::max);
    f.insert("max_relay_cpu_s_per_gib", relay_cpu);
    f
}

/// Compares the figures with the baseline; prints a table; Err on any regression.
fn check_against(
    path: &Path,
    base: &BaselineFile,
    now: &BTreeMap<&'static str, f64>,
) -> Result<(), CliError> {
    println!(
        "\ncheck against {} (baseline from {})",
        path.display(),
        base.machine.as_deref().unwrap_or("an unnamed machine")
    );
    println!(
        "  {:<26} {:>10} {:>10} {:>10}  status",
        "figure", "baseline", "now", "limit"
    );
    let mut regressed = Vec::new();
    for (name, b) in &base.figures {
        let Some(&value) = now.get(name.as_str()) else {
            regressed.push(format!("{name}: not measured"));
            println!(
                "  {name:<26} {:>10.3} {:>10} {:>10}  MISSING",
                b.baseline, "-", "-"
            );
            continue;
        };
        let (limit, ok) = match b.better {
            Better::Higher => {
                let limit = b.baseline * (1.0 - b.tolerance);
                (limit, value >= limit)
            }
            Better::Lower => {
                let limit = b.baseline * (1.0 + b.tolerance);
                (limit, value <= limit)
            }
        };
        println!(
            "  {name:<26} {:>10.3} {value:>10.3} {limit:>10.3}  {}",
            b.baseline,
            if ok { "OK" } else { "REGRESSED" }
        );
        if !ok {
            regressed.push(format!("{name} = {value:.3} (limit {limit:.3})"));
        }
    }
    if regressed.is_empty() {
        Ok(())
    } else {
        Err(CliError::runtime(
            "kistrel bench check",
            format!("regressed: {}", regressed.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> BaselineFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn regressions_fail_by_direction_and_tolerance() {
        let b = base(
            "[figures.r]\nbaseline = 1.0\nbetter = \"higher\"\ntolerance = 0.2\n\
             [figures.c]\nbaseline = 2.0\nbetter = \"lower\"\ntolerance = 0.5\n",
        );
        let p = Path::new("b.toml");
        let ok = BTreeMap::from([("r", 0.85), ("c", 2.9)]);
        assert!(check_against(p, &b, &ok).is_ok());
        let low = BTreeMap::from([("r", 0.79), ("c", 1.0)]);
        let e = check_against(p, &b, &low).unwrap_err().to_string();
        assert!(e.contains("r = 0.790 (limit 0.800)"), "{e}");
        let costly = BTreeMap::from([("r", 1.0), ("c", 3.1)]);
        assert!(check_against(p, &b, &costly).is_err());
        let missing = BTreeMap::from([("r", 1.0)]);
        let e = check_against(p, &b, &missing).unwrap_err().to_string();
        assert!(e.contains("c: not measured"), "{e}");
    }

    #[test]
    fn baseline_files_are_checked_strictly() {
        let bad = "[figures.r]\nbaseline = 1.0\nbetter = \"up\"\ntolerance = 0.2\n";
        assert!(toml::from_str::<BaselineFile>(bad).is_err());
        let extra = "colour = 1\n[figures]\n";
        assert!(toml::from_str::<BaselineFile>(extra).is_err());
        // The committed baseline parses.
        let text = include_str!("../../../../benches/macro-baseline.toml");
        let b = base(text);
        assert!(b.figures.contains_key("ratio_vs_forwarders"));
    }
}
