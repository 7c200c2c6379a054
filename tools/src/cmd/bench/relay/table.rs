//! The human table of `bench relay` (every column is explained in [`super::COLUMNS`]).

use std::fmt::Write;

use super::report::{Point, RelayReport, TargetFigures};
use crate::stats::Estimate;

/// `median [lo, hi]` scaled by `scale`, or `-`.
fn cell(e: Option<&Estimate>, scale: f64, digits: usize) -> String {
    match e {
        Some(e) => match e.ci95 {
            Some(ci) => format!(
                "{:.digits$} [{:.digits$}, {:.digits$}]",
                e.median * scale,
                ci.low * scale,
                ci.high * scale
            ),
            None => format!("{:.digits$}", e.median * scale),
        },
        None => "-".into(),
    }
}

fn row(out: &mut String, target: &str, p: &Point, f: &TargetFigures, n: usize) {
    let star = if p.shares_load_cpus { "*" } else { "" };
    let _ = writeln!(
        out,
        "{target:<10} {:>3}{star:<1} {:<24} {:<24} {:<22} {:<22} {:>5} {:>5} {:>2}/{n}",
        p.workers,
        cell(f.cells_per_s.as_ref(), 1e-6, 3),
        cell(f.cells_per_s_per_core.as_ref(), 1e-6, 3),
        cell(f.gbit_per_s_per_core.as_ref(), 1.0, 2),
        cell(f.cpu_s_per_gib.as_ref(), 1.0, 2),
        f.target_utilization
            .as_ref()
            .map_or("-".into(), |e| format!("{:.0}%", e.median * 100.0)),
        f.load_utilization
            .as_ref()
            .map_or("-".into(), |e| format!("{:.0}%", e.median * 100.0)),
        f.load_limited_rounds,
    );
}

/// The table: one row per target and worker count, then the ratios, then the notes.
pub(super) fn render(r: &RelayReport) -> String {
    let n = r.config.rounds;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kistrel bench relay: {} round(s) in ABBA order, {} s windows after {} s warm-up; \
         {} pump(s) x {} links x {} circuits ({}); medians [95% interval], n={n}",
        n,
        r.config.window_s,
        r.config.warmup_s,
        r.config.pumps,
        r.config.connections_per_pump,
        r.config.circuits_per_connection,
        r.config.directions,
    );
    let _ = writeln!(
        out,
        "{:<10} {:>4} {:<24} {:<24} {:<22} {:<22} {:>5} {:>5} {:>4}",
        "target",
        "w",
        "Mcells/s",
        "Mcells/s/core",
        "Gbit/s/core",
        "CPU-s/GiB",
        "util",
        "load",
        "lim"
    );
    for p in &r.points {
        if let Some(f) = &p.forwarder {
            row(&mut out, "forwarder", p, f, n);
        }
        row(&mut out, "relay", p, &p.relay, n);
    }
    let _ = writeln!(out);
    for p in &r.points {
        let show = |e: Option<&Estimate>| e.map_or("-".into(), |e| e.display(3));
        if p.forwarder.is_some() {
            let _ = writeln!(
                out,
                "w={:<3} relay/forwarder {}   efficiency {}",
                p.workers,
                show(p.relay_vs_forwarder.as_ref()),
                show(p.efficiency_vs_forwarder.as_ref()),
            );
        }
        if p.workers != r.points.first().map_or(p.workers, |f| f.workers) {
            let _ = writeln!(
                out,
                "w={:<3} relay speedup {} (ideal {:.2}){}",
                p.workers,
                show(p.relay_speedup.as_ref()),
                f64::from(p.workers) / f64::from(r.points[0].workers),
                p.forwarder_speedup
                    .as_ref()
                    .map_or(String::new(), |e| format!(
                        "   forwarder speedup {}",
                        e.display(3)
                    )),
            );
        }
    }
    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if !r.conserved {
        let _ = writeln!(out, "FAILED: cells were lost in some phase");
    }
    out
}
