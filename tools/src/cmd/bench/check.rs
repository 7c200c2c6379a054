//! `kistrel bench check BASELINE`: the main job with both comparisons (KIST/Vanilla, 2/1
//! workers), each figure's median over rounds compared with a limit set from the spread of
//! that figure over many runs on the baseline's machine. A figure beyond its limit fails the
//! job (exit 1) with a table.
//!
//! ```toml
//! machine = "2-core CI box"
//! k = 4                       # limit = median -/+ k x MAD of `runs`
//! [figures.ratio_vs_forwarders]
//! better = "higher"           # fails below median - k x MAD
//! runs = [0.16, 0.17, 0.15]   # this figure from N runs of `bench check` (>= 10)
//! [figures.relays_cpu_s_per_gib]
//! better = "lower"
//! gate = false                # shown beside its limit, never fails the check
//! runs = [4.7, 4.4, 4.5]
//! ```
//!
//! `--self-check` proves the gate can fail: every relay burns 60% of the baseline's CPU cost
//! per cell extra (`TestingCellCost`), and the job succeeds only if the check then reports
//! a regression in two runs in a row. 60%, not less: the gate's CPU figures are ratios to the
//! same round's plain forwarders, and on a slow host the forwarders' CPU per GiB rises more
//! than the relays' (the ratio fell 7-18% in such runs), which hid a 30% slowdown in CI run
//! 41 (benches/README.md, "The gate").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::run::{self, Comparisons, Report, RunArgs};
use crate::error::CliError;
use crate::stats;

/// The share of a cell's cost `--self-check` adds.
pub const SELF_CHECK_SLOWDOWN: f64 = 0.60;

/// Relay cells per GiB of payload: a RELAY_DATA cell carries at most 498 payload bytes.
const CELLS_PER_GIB: f64 = (1u64 << 30) as f64 / 498.0;

/// Relays in the bench's network (`relays_cpu_s_per_gib` is their sum).
const RELAYS: u32 = 3;

/// `kistrel bench check` options.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The baseline file (e.g. benches/macro-baseline.toml).
    #[arg(value_name = "BASELINE")]
    pub baseline: PathBuf,
    /// Prove the check can fail: every relay burns 60% of the baseline's CPU cost per cell
    /// extra; succeed only if a figure then regresses.
    #[arg(long)]
    pub self_check: bool,
    /// The main job's options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Whether a larger or a smaller figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Better {
    /// A throughput or a ratio: fails below `median - k x MAD`.
    Higher,
    /// A cost: fails above `median + k x MAD`.
    Lower,
}

/// One figure of a baseline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFigure {
    better: Better,
    /// Whether the figure past its limit fails the check (the default). `gate = false`: it is
    /// shown beside its limit and never fails, for a figure the host's own speed moves as
    /// much as a change would (absolute CPU-s/GiB on a shared VM).
    #[serde(default = "gates_by_default")]
    gate: bool,
    /// The figure (a run's median over rounds) from each run of the spread measurement.
    runs: Vec<f64>,
}

fn gates_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    machine: Option<String>,
    /// How the runs were taken (free text for readers).
    measured: Option<String>,
    /// MADs between the median and the limit.
    k: f64,
    /// The job the runs are of: a check with other settings would compare unlike figures.
    job: BaselineJob,
    figures: BTreeMap<String, BaselineFigure>,
}

/// The job settings a baseline was measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineJob {
    circuits: u32,
    size_mib: u32,
    rounds: u32,
    workers: u16,
}

impl BaselineJob {
    /// The same fields of `args`.
    fn of(args: &RunArgs) -> BaselineJob {
        BaselineJob {
            circuits: args.circuits,
            size_mib: args.size,
            rounds: args.rounds(),
            workers: args.nodes.workers,
        }
    }
}

/// A figure's limit from its runs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Limit {
    median: f64,
    mad: f64,
    limit: f64,
}

impl BaselineFigure {
    fn limit(&self, k: f64) -> Option<Limit> {
        let median = stats::median(&self.runs)?;
        let mad = stats::mad(&self.runs)?;
        let limit = match self.better {
            Better::Higher => median - k * mad,
            Better::Lower => median + k * mad,
        };
        Some(Limit { median, mad, limit })
    }
}

/// Run the check (or the self-check).
pub fn run(args: &CheckArgs) -> Result<(), CliError> {
    // Arguments and the baseline first: a bad file fails before minutes of measuring.
    let compare = Comparisons {
        workers: true,
        schedulers: true,
        links: args.run.compare_links,
    };
    args.run.validate(compare)?;
    let base = read_baseline(&args.baseline)?;
    let mut run_args = args.run.clone();
    // Without --rounds, the baseline's.
    run_args.rounds = Some(run_args.rounds.unwrap_or(base.job.rounds));
    let asked = BaselineJob::of(&run_args);
    if asked != base.job {
        let j = base.job;
        return Err(CliError::usage(
            format!("baseline {}", args.baseline.display()),
            format!(
                "its runs are of --circuits {} --size {} --rounds {} --workers {}: check with those",
                j.circuits, j.size_mib, j.rounds, j.workers
            ),
        ));
    }
    if args.self_check {
        let cost = injected_cost(&base)?;
        eprintln!(
            "kistrel bench check --self-check: every relay burns {} ns more CPU per cell ({:.0}% of the baseline's cost per cell); the check must fail",
            cost.as_nanos(),
            SELF_CHECK_SLOWDOWN * 100.0
        );
        run_args.nodes.testing_cell_cost = Some(cost);
    }
    let verdict = confirmed(
        || {
            let report = run::measure(&run_args, compare)?;
            run::finish(&run_args, &report)?;
            // A failed or corrupted transfer (or a placement difference) fails the check in
            // any run, whatever the figures: a second run must not hide the first's.
            run::fail_on(&report)?;
            Ok(figures(&report))
        },
        |now| check_against(&args.baseline, &base, now),
    )?;
    if args.self_check {
        return match verdict {
            Err(e) => {
                println!("self-check OK: the injected slowdown was caught ({e})");
                Ok(())
            }
            Ok(()) => Err(CliError::runtime(
                "kistrel bench check --self-check",
                "the injected slowdown went unnoticed: the gate cannot fail",
            )),
        };
    }
    verdict
}

/// The gate's verdict: a regression counts only if a second, independent run shows one
/// too. Each figure is a median of 3 rounds on a shared 2-core machine; about 1 run in 20
/// put one of five figures past its limit with nothing changed (a 2-workers/1-worker ratio
/// of 0.918 against 0.923 on unchanged code), and a red gate must mean a real change. A
/// real slowdown, like the self-check's, regresses both runs. `Err` from `measure` is a
/// failed measurement, returned as is; the `Ok` value is the verdict.
fn confirmed(
    mut measure: impl FnMut() -> Result<BTreeMap<String, f64>, CliError>,
    check: impl Fn(&BTreeMap<String, f64>) -> Result<(), CliError>,
) -> Result<Result<(), CliError>, CliError> {
    let first = check(&measure()?);
    let Err(e) = first else {
        return Ok(Ok(()));
    };
    let first = reason(&e);
    println!("kistrel bench check: {first}; measuring again: a regression must show in two runs");
    Ok(check(&measure()?).map_err(|again| {
        CliError::runtime(
            "kistrel bench check",
            format!(
                "in two runs in a row: first {first}; then {}",
                reason(&again)
            ),
        )
    }))
}

/// What a check's error says, without the "kistrel bench check:" it is wrapped in.
fn reason(e: &CliError) -> String {
    match e {
        CliError::Runtime { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// `SELF_CHECK_SLOWDOWN` of a relay's cost per cell on the baseline machine: the relays'
/// CPU-s per GiB together, per relay, over the cells in a GiB. Every relay burning that
/// much more per cell makes the relays' CPU per GiB `1 + SELF_CHECK_SLOWDOWN` times the
/// baseline's.
fn injected_cost(base: &BaselineFile) -> Result<Duration, CliError> {
    let cpu = base
        .figures
        .get("relays_cpu_s_per_gib")
        .and_then(|f| stats::median(&f.runs))
        .ok_or_else(|| {
            CliError::usage(
                "kistrel bench check --self-check",
                "the baseline has no relays_cpu_s_per_gib runs to size the slowdown from",
            )
        })?;
    let per_relay = cpu / f64::from(RELAYS);
    Ok(Duration::from_secs_f64(
        per_relay / CELLS_PER_GIB * SELF_CHECK_SLOWDOWN,
    ))
}

fn read_baseline(path: &Path) -> Result<BaselineFile, CliError> {
    let what = || format!("baseline {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| CliError::usage(what(), e))?;
    let file: BaselineFile = toml::from_str(&text).map_err(|e| CliError::usage(what(), e))?;
    for (name, f) in &file.figures {
        if f.runs.len() < 3 || f.runs.iter().any(|v| !v.is_finite()) {
            return Err(CliError::usage(
                what(),
                format!("figure {name}: want at least 3 finite runs"),
            ));
        }
    }
    Ok(file)
}

/// The figures a check compares (each a median over rounds), from a report.
fn figures(r: &Report) -> BTreeMap<String, f64> {
    r.figures
        .iter()
        .map(|(name, f)| ((*name).to_owned(), f.estimate.median))
        .collect()
}

/// Compares the figures with the baseline; prints a table; Err on any regression.
fn check_against(
    path: &Path,
    base: &BaselineFile,
    now: &BTreeMap<String, f64>,
) -> Result<(), CliError> {
    println!(
        "\ncheck against {} (runs from {}; {}); limit = median -/+ {} x MAD",
        path.display(),
        base.machine.as_deref().unwrap_or("an unnamed machine"),
        base.measured
            .as_deref()
            .unwrap_or("how they were taken is not said"),
        base.k
    );
    println!(
        "  {:<30} {:>4} {:>10} {:>8} {:>10} {:>10}  status",
        "figure", "runs", "median", "MAD", "limit", "now"
    );
    let mut regressed = Vec::new();
    for (name, b) in &base.figures {
        let Some(l) = b.limit(base.k) else { continue };
        let value = now.get(name).copied();
        let ok = value.map(|v| match b.better {
            Better::Higher => v >= l.limit,
            Better::Lower => v <= l.limit,
        });
        println!(
            "  {name:<30} {:>4} {:>10.3} {:>8.3} {:>10.3} {:>10}  {}",
            b.runs.len(),
            l.median,
            l.mad,
            l.limit,
            value.map_or("-".to_owned(), |v| format!("{v:.3}")),
            match (ok, b.gate) {
                (Some(true), true) => "OK",
                (Some(false), true) => "REGRESSED",
                (None, true) => "MISSING",
                (Some(true), false) => "shown (not gating)",
                (Some(false), false) => "past its limit (not gating)",
                (None, false) => "missing (not gating)",
            }
        );
        if !b.gate {
            continue;
        }
        match (value, ok) {
            (None, _) => regressed.push(format!("{name}: not measured")),
            (Some(v), Some(false)) => {
                regressed.push(format!("{name} = {v:.3} (limit {:.3})", l.limit));
            }
            _ => {}
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

    fn now(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn limits_come_from_the_spread_of_the_runs() {
        // r: median 1.0, deviations 0.1, 0, 0.1, 0.2, 0 -> MAD 0.1; limit 1.0 - 2 x 0.1.
        // c: median 2.0, MAD 0.5; limit 2.0 + 2 x 0.5.
        let b = base(
            "k = 2\njob = { circuits = 8, size_mib = 32, rounds = 3, workers = 1 }\n[figures.r]\nbetter = \"higher\"\nruns = [0.9, 1.0, 1.1, 1.2, 1.0]\n\
             [figures.c]\nbetter = \"lower\"\nruns = [1.5, 2.0, 2.5]\n",
        );
        let r = b.figures["r"].limit(b.k).unwrap();
        assert!((r.median - 1.0).abs() < 1e-12 && (r.mad - 0.1).abs() < 1e-12);
        assert!((r.limit - 0.8).abs() < 1e-12);
        assert_eq!(b.figures["c"].limit(b.k).unwrap().limit, 3.0);
        let p = Path::new("b.toml");
        assert!(check_against(p, &b, &now(&[("r", 0.81), ("c", 2.9)])).is_ok());
        let e = check_against(p, &b, &now(&[("r", 0.79), ("c", 1.0)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("r = 0.790 (limit 0.800)"), "{e}");
        assert!(check_against(p, &b, &now(&[("r", 1.0), ("c", 3.1)])).is_err());
        let e = check_against(p, &b, &now(&[("r", 1.0)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c: not measured"), "{e}");
    }

    #[test]
    fn a_figure_that_does_not_gate_never_fails_the_check() {
        let b = base(
            "k = 2\njob = { circuits = 8, size_mib = 32, rounds = 3, workers = 1 }\n[figures.r]\nbetter = \"higher\"\nruns = [0.9, 1.0, 1.1, 1.2, 1.0]\n\
             [figures.c]\nbetter = \"lower\"\ngate = false\nruns = [1.5, 2.0, 2.5]\n",
        );
        assert!(b.figures["r"].gate && !b.figures["c"].gate);
        let p = Path::new("b.toml");
        // c past its limit (3.0), or not measured at all: still a pass.
        assert!(check_against(p, &b, &now(&[("r", 1.0), ("c", 9.0)])).is_ok());
        assert!(check_against(p, &b, &now(&[("r", 1.0)])).is_ok());
        // The gating figure still fails alone.
        let e = check_against(p, &b, &now(&[("r", 0.5), ("c", 9.0)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("r = 0.500") && !e.contains("c = "), "{e}");
    }

    #[test]
    fn baseline_files_are_checked_strictly() {
        let bad = "k = 4\njob = { circuits = 8, size_mib = 32, rounds = 3, workers = 1 }\n[figures.r]\nbetter = \"up\"\nruns = [1.0, 1.0, 1.0]\n";
        assert!(toml::from_str::<BaselineFile>(bad).is_err());
        let extra = "k = 4\ncolour = 1\n[figures]\n";
        assert!(toml::from_str::<BaselineFile>(extra).is_err());
        let old = "[figures.r]\nbaseline = 1.0\nbetter = \"higher\"\ntolerance = 0.2\n";
        assert!(toml::from_str::<BaselineFile>(old).is_err());
        let dir = tempfile::tempdir().unwrap();
        let few = dir.path().join("few.toml");
        std::fs::write(
            &few,
            "k = 4\njob = { circuits = 8, size_mib = 32, rounds = 3, workers = 1 }\n[figures.r]\nbetter = \"higher\"\nruns = [1.0, 2.0]\n",
        )
        .unwrap();
        let e = read_baseline(&few).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains("figure r: want at least 3 finite runs"),
            "{e}"
        );
        // The committed baseline parses, has every figure the check makes, with >= 10 runs.
        let b = base(include_str!("../../../../benches/macro-baseline.toml"));
        for name in [
            "ratio_vs_forwarders",
            "kist_over_vanilla",
            "workers_two_over_one",
            "max_relay_cpu_over_forwarders",
            "relays_cpu_over_forwarders",
            "max_relay_cpu_s_per_gib",
            "relays_cpu_s_per_gib",
        ] {
            assert!(b.figures[name].runs.len() >= 10, "{name}");
        }
        // CPU cost gates as a ratio to the same round's forwarders; CPU-s/GiB alone moves
        // with the host (session 17: +36% under a competing load, the ratios did not rise).
        assert!(b.figures["relays_cpu_over_forwarders"].gate);
        assert!(!b.figures["relays_cpu_s_per_gib"].gate);
        assert!(!b.figures["max_relay_cpu_s_per_gib"].gate);
        // Of the job CI runs: `kistrel bench check` with the defaults.
        let defaults = BaselineJob {
            circuits: 8,
            size_mib: 32,
            rounds: 3,
            workers: 1,
        };
        assert_eq!(b.job, defaults);
    }

    /// `confirmed` over scripted measurements: figure `x` against a limit of 1.0.
    fn gate_over(values: &[f64]) -> (Result<(), String>, usize) {
        let mut taken = 0;
        let verdict = confirmed(
            || {
                let v = values[taken];
                taken += 1;
                Ok(now(&[("x", v)]))
            },
            |n| {
                if n["x"] >= 1.0 {
                    Ok(())
                } else {
                    Err(CliError::runtime("check", format!("x = {}", n["x"])))
                }
            },
        )
        .expect("measured");
        (verdict.map_err(|e| e.to_string()), taken)
    }

    #[test]
    fn a_regression_must_show_in_two_runs_in_a_row() {
        assert_eq!(gate_over(&[1.2]), (Ok(()), 1), "a pass measures once");
        assert_eq!(
            gate_over(&[0.9, 1.1]),
            (Ok(()), 2),
            "one low run is not a regression"
        );
        let (verdict, taken) = gate_over(&[0.9, 0.8]);
        assert_eq!(taken, 2);
        let e = verdict.expect_err("two low runs fail");
        assert!(e.contains("two runs in a row"), "{e}");
        assert!(e.contains("x = 0.9") && e.contains("x = 0.8"), "{e}");
    }

    #[test]
    fn a_failed_measurement_is_an_error_not_a_verdict() {
        let r = confirmed(
            || Err(CliError::runtime("measure", "no network")),
            |_| Ok(()),
        );
        assert!(r.is_err());
    }

    #[test]
    fn the_self_check_slowdown_is_60_percent_of_a_cell() {
        // 12 CPU-s per GiB for 3 relays = 4 s / (2^30 / 498) cells = 1855 ns per cell and
        // relay; 60% = 1113 ns.
        let b = base(
            "k = 4\njob = { circuits = 8, size_mib = 32, rounds = 3, workers = 1 }\n[figures.relays_cpu_s_per_gib]\nbetter = \"lower\"\nruns = [11.0, 12.0, 13.0]\n",
        );
        let ns = injected_cost(&b).unwrap().as_nanos();
        assert!((1112..=1114).contains(&ns), "{ns}");
        let none = base(
            "k = 4\njob = { circuits = 8, size_mib = 32, rounds = 3, workers = 1 }\n[figures]\n",
        );
        assert_eq!(injected_cost(&none).unwrap_err().exit_code(), 2);
    }
}
