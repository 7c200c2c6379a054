//! The human summary of a `kistrel bench run` report, all on stdout (progress and logs go
//! to stderr). Every figure shows its median over rounds, its 95% interval and n; latency
//! percentiles only where n supports them; values below a histogram's resolution as `<0.01`.

use std::fmt::Write as _;

use super::report::{Figure, Report};
use crate::cmd::bench::nodes::{NodeSchedMetrics, Quantiles};
use crate::stats::SampleQuantiles;

/// The figure rows: name in the JSON, row label, decimals.
const ROWS: [(&str, &str, usize); 16] = [
    ("throughput_mib_s", "throughput, kistrel 3 hops", 1),
    ("direct_throughput_mib_s", "throughput, direct", 1),
    (
        "forwarders_throughput_mib_s",
        "throughput, 3 plain forwarders",
        1,
    ),
    ("ratio_vs_direct", "kistrel / direct", 3),
    ("ratio_vs_forwarders", "kistrel / plain forwarders", 3),
    ("kist_over_vanilla", "KIST / Vanilla", 3),
    ("workers_two_over_one", "2 workers / 1 worker", 3),
    ("tls_over_plain", "TLS links / plain links", 3),
    ("max_relay_cpu_s_per_gib", "busiest relay CPU per GiB", 2),
    ("relays_cpu_s_per_gib", "3 relays' CPU per GiB", 2),
    ("forwarders_cpu_s_per_gib", "3 forwarders' CPU per GiB", 2),
    (
        "max_relay_cpu_over_forwarders",
        "CPU busiest relay / forwarder",
        3,
    ),
    (
        "relays_cpu_over_forwarders",
        "CPU 3 relays / 3 forwarders",
        3,
    ),
    (
        "tls_added_guard_cpu_s_per_gib",
        "CPU per GiB TLS adds, guard",
        2,
    ),
    (
        "tls_added_middle_cpu_s_per_gib",
        "CPU per GiB TLS adds, middle",
        2,
    ),
    (
        "tls_added_exit_cpu_s_per_gib",
        "CPU per GiB TLS adds, exit",
        2,
    ),
];

/// The whole table as text.
pub(super) fn render(r: &Report) -> String {
    let mut out = String::new();
    let c = &r.config;
    let _ = writeln!(
        out,
        "kistrel bench: {} x {} MiB bulk + {} web flows; {} worker(s)/node, backend {}, links {}, scheduler {}; {} round(s), conditions in ABBA order",
        c.circuits, c.transfer_mib, c.web_flows, c.workers, c.backend, c.links, c.scheduler, c.rounds
    );
    let load = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.2}"));
    let _ = writeln!(
        out,
        "machine: {}, Linux {}, CPUs {}, load average (1 min) {} at start, {} at end",
        r.machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
        r.machine.kernel.as_deref().unwrap_or("?"),
        r.machine.cpus,
        load(r.machine.loadavg_1m[0]),
        load(r.machine.loadavg_1m[1])
    );
    let placement = match &r.placement.reason {
        Some(reason) => format!("not pinned: {reason}"),
        None => r
            .placement
            .nodes
            .iter()
            .map(|n| format!("{} {}", n.node, n.cpus))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let _ = writeln!(out, "placement: {placement}");
    let _ = writeln!(
        out,
        "\n  {:<32} {:>10}  {:<22} {:>3}  unit (better)",
        "figure", "median", "95% interval", "n"
    );
    for (name, label, digits) in ROWS {
        if let Some(f) = r.figures.get(name) {
            out.push_str(&figure_row(label, f, digits));
        }
    }
    if c.testing_cell_cost_ns > 0 {
        let _ = writeln!(
            out,
            "  (testing: every relay burned {} ns of CPU per cell)",
            c.testing_cell_cost_ns
        );
    }
    let _ = writeln!(
        out,
        "\n  latency, seconds, ok transfers pooled over rounds    n      p50      p90      p99      max"
    );
    for l in &r.latency {
        for (what, q) in [("ttfb", &l.ttfb_s), ("ttlb", &l.ttlb_s)] {
            let _ = writeln!(
                out,
                "  {:<26} {:<5} {:<4}  {}",
                l.condition,
                l.model,
                what,
                sample_row(q)
            );
        }
    }
    if let Some((round, phase)) = r.rounds.last().and_then(|last| {
        let base = &r.config.base_condition;
        Some((
            last.round,
            last.phases.iter().find(|p| &p.condition == base)?,
        ))
    }) {
        let _ = writeln!(
            out,
            "\n  scheduler, {} in round {round}     runs/s  cells/run p50  relay queue p50/p99 ms  kernel queue (measured write->SND) p50/p99 ms",
            phase.condition
        );
        for m in &phase.scheduler_metrics {
            out.push_str(&sched_row(m));
        }
        for c in &phase.cpu {
            let _ = writeln!(
                out,
                "  cpu {:<8} {:7.2} s = {:>6} CPU-s/GiB",
                c.role,
                c.cpu_s,
                fixed(c.cpu_s_per_gib, 2)
            );
        }
    }
    for d in &r.placement_differences {
        let _ = writeln!(out, "  PLACEMENT DIFFERS: {d}");
    }
    out
}

/// Prints the table on stdout.
pub(super) fn print(r: &Report) {
    print!("{}", render(r));
}

/// `label  median  [low, high]  n  unit (better)`.
fn figure_row(label: &str, f: &Figure, digits: usize) -> String {
    let e = &f.estimate;
    let interval = match e.ci95 {
        Some(ci) => format!("[{}, {}]", fixed(ci.low, digits), fixed(ci.high, digits)),
        None => "(n too small)".to_owned(),
    };
    format!(
        "  {label:<32} {:>10}  {interval:<22} {:>3}  {} ({} is better)\n",
        fixed(e.median, digits),
        e.n,
        f.unit,
        f.better
    )
}

/// `n p50 p90 p99 max`, a `-` where n does not support the percentile.
fn sample_row(q: &SampleQuantiles) -> String {
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| fixed(v, 3));
    format!(
        "{:>4} {:>8} {:>8} {:>8} {:>8}",
        q.n,
        cell(q.p50),
        cell(q.p90),
        cell(q.p99),
        cell(q.max)
    )
}

fn sched_row(m: &NodeSchedMetrics) -> String {
    format!(
        "  {:<12} {:<8} {:>7.0}  {:>13}  {:>22}  {:>46}\n",
        m.scheduler,
        m.node,
        m.runs_per_s,
        if m.cells_per_run.samples > 0 {
            format!("{:.0}", m.cells_per_run.p50)
        } else {
            "-".to_owned()
        },
        ms_pair(&m.relay_queue_ms),
        kernel_pair(&m.kernel.kernel_queue_ms),
    )
}

/// The measured kernel queue: `unavailable` without stamps (the kernel refused
/// SO_TIMESTAMPING, or nothing was sampled), never zeros.
fn kernel_pair(q: &Quantiles) -> String {
    if q.samples == 0 {
        return "unavailable".to_owned();
    }
    ms_pair(q)
}

/// `p50/p99` of a histogram in ms: `-` without samples, `<0.01` below the resolution
/// shown, and p99 only from 100 samples on (else `max` with n).
pub(super) fn ms_pair(q: &Quantiles) -> String {
    if q.samples == 0 {
        return "-".to_owned();
    }
    let p99 = if crate::stats::quantile_supported(0.99, q.samples) {
        small_ms(q.p99)
    } else {
        format!("max {} (n={})", small_ms(q.max), q.samples)
    };
    format!("{}/{p99}", small_ms(q.p50))
}

/// A millisecond figure from a histogram with 2 decimals; below 0.01 (the histogram's 1 µs
/// floor included) `<0.01`, never `0.00`.
pub(super) fn small_ms(v: f64) -> String {
    if v < 0.01 {
        "<0.01".to_owned()
    } else {
        format!("{v:.2}")
    }
}

/// `v` with `digits` decimals, `-` when it is not a number (a failed reading).
fn fixed(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "-".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Estimate;

    #[test]
    fn small_values_are_not_shown_as_zero() {
        assert_eq!(small_ms(0.0), "<0.01");
        assert_eq!(small_ms(0.001), "<0.01");
        assert_eq!(small_ms(0.0099), "<0.01");
        assert_eq!(small_ms(0.01), "0.01");
        assert_eq!(small_ms(12.345), "12.35");
    }

    #[test]
    fn p99_only_from_100_samples() {
        let q = |samples| Quantiles {
            p50: 0.002,
            p99: 3.0,
            max: 4.5,
            samples,
            ..Quantiles::default()
        };
        assert_eq!(ms_pair(&q(0)), "-");
        assert_eq!(ms_pair(&q(8)), "<0.01/max 4.50 (n=8)");
        assert_eq!(ms_pair(&q(100)), "<0.01/3.00");
    }

    #[test]
    fn latency_rows_leave_unsupported_percentiles_out() {
        let q = SampleQuantiles::of(&[0.5, 0.25, 1.0, 0.75, 0.125, 2.0, 1.5, 0.875]);
        assert_eq!(sample_row(&q), "   8    0.812        -        -    2.000");
    }

    #[test]
    fn figure_rows_say_interval_n_unit_and_direction() {
        let f = Figure {
            unit: "ratio",
            better: "higher",
            definition: "",
            estimate: Estimate::of(&[0.2, 0.25, 0.22], 1).unwrap(),
        };
        let row = figure_row("kistrel / plain forwarders", &f, 3);
        assert_eq!(
            row,
            "  kistrel / plain forwarders            0.220  [0.200, 0.250]           3  ratio (higher is better)\n"
        );
        let one = Figure {
            estimate: Estimate::of(&[0.2], 1).unwrap(),
            ..f
        };
        assert!(figure_row("x", &one, 3).contains("(n too small)"));
        assert_eq!(fixed(f64::NAN, 2), "-");
    }
}
