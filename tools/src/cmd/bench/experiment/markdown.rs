//! The experiment's `report.md` and its SVG CDFs, generated from the same figures as the JSON.

use std::path::Path;

use super::setup::{Condition, ExperimentArgs};
use super::summary::{mean_quantiles, ok_times, Comparison, SchedFigures};
use crate::cmd::bench::nodes::Quantiles;
use crate::cmd::bench::plot::{cdf_svg, Series};
use crate::error::CliError;
use crate::tgen::TransferRecord;

/// The report's title and setup paragraph.
pub(super) fn header(args: &ExperimentArgs) -> String {
    format!(
        "# kistrel: KIST vs Vanilla on a shaped network\n\n\
         Bottleneck `{}` (tbf, toward the middle relay: exit -> middle is shaped), cubic, \
         {} web flows (320 KiB, think 0.5-3 s) and {} bulk flows (5 MiB back to back) per \
         loaded phase, {} phases of {} s per scheduler and condition, schedulers alternated \
         (K V, V K, ...), a fresh network per phase. C Tor 0.4.9 figures from the same \
         testbed on this machine (docs/spec/kist.md).\n\n",
        args.bottleneck,
        args.web_flows,
        args.bulk_flows,
        args.pairs,
        args.phase.as_secs()
    )
}

/// One condition's section: its table, and its charts written into `out` (their file names
/// appended to `plots`).
pub(super) fn condition(
    out: &Path,
    cond: &Condition,
    c: &Comparison,
    k: &SchedFigures,
    v: &SchedFigures,
    plots: &mut Vec<String>,
) -> Result<String, CliError> {
    let mut md = table(cond.name, c);
    for (file, svg) in charts(cond, k, v) {
        let path = out.join(&file);
        std::fs::write(&path, svg)
            .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))?;
        md.push_str(&format!("![{file}]({file})\n"));
        plots.push(file);
    }
    md.push('\n');
    Ok(md)
}

fn table(name: &str, c: &Comparison) -> String {
    let mut md = format!(
        "## {name}\n\n| figure | KIST | Vanilla | KIST / Vanilla | C Tor K / V |\n|---|---:|---:|---:|---:|\n\
         | web TTFB median (s) | {:.3} | {:.3} | {:.2} | {:.3} / {:.3} ({:.2}) |\n\
         | web TTLB median (s) | {:.3} | {:.3} | {:.2} | {:.3} / {:.3} ({:.2}) |\n\
         | web TTLB p90 (s) | {:.3} | {:.3} | {:.2} | |\n\
         | web pages | {:.0} | {:.0} | | |\n",
        c.web_ttfb_median_s.kist,
        c.web_ttfb_median_s.vanilla,
        c.web_ttfb_median_ratio,
        c.c_tor.web_ttfb_median_s.kist,
        c.c_tor.web_ttfb_median_s.vanilla,
        c.c_tor.web_ttfb_median_ratio,
        c.web_ttlb_median_s.kist,
        c.web_ttlb_median_s.vanilla,
        c.web_ttlb_median_ratio,
        c.c_tor.web_ttlb_median_s.kist,
        c.c_tor.web_ttlb_median_s.vanilla,
        c.c_tor.web_ttlb_median_ratio,
        c.web_ttlb_p90_s.kist,
        c.web_ttlb_p90_s.vanilla,
        c.web_ttlb_p90_s.ratio(),
        c.web_pages.kist,
        c.web_pages.vanilla,
    );
    if let Some(b) = c.bulk_mib_s {
        md.push_str(&format!(
            "| bulk goodput (MiB/s) | {:.2} | {:.2} | {:.2} | ({:.2}) |\n",
            b.kist,
            b.vanilla,
            b.ratio(),
            c.c_tor.bulk_throughput_ratio.unwrap_or(f64::NAN)
        ));
    }
    md.push_str(&format!(
        "| kernel queue p99 (ms) | {:.1} | {:.1} | {:.2} | |\n\
         | relay queue p99 (ms) | {:.1} | {:.1} | {:.2} | |\n\
         | bottleneck drops | {:.0} | {:.0} | | |\n\n",
        c.kernel_queue_p99_ms.kist,
        c.kernel_queue_p99_ms.vanilla,
        c.kernel_queue_p99_ms.ratio(),
        c.relay_queue_p99_ms.kist,
        c.relay_queue_p99_ms.vanilla,
        c.relay_queue_p99_ms.ratio(),
        c.bottleneck_drops.kist,
        c.bottleneck_drops.vanilla,
    ));
    md
}

/// (file name, SVG) of a condition's charts.
fn charts(cond: &Condition, k: &SchedFigures, v: &SchedFigures) -> Vec<(String, String)> {
    let two = |title: &str,
               pick: fn(&TransferRecord) -> Option<f64>,
               recs: fn(&SchedFigures) -> &Vec<TransferRecord>| {
        cdf_svg(
            title,
            "seconds",
            &[
                Series::cdf("KIST", &ok_times(recs(k), pick)),
                Series::cdf("Vanilla", &ok_times(recs(v), pick)),
            ],
            None,
        )
    };
    let qchart = |title: &str, kq: &[Quantiles], vq: &[Quantiles]| {
        cdf_svg(
            title,
            "milliseconds (worst relay; quantiles 10..99.9, mean over phases)",
            &[
                Series::quantiles("KIST", mean_quantiles(kq).points(), kq.len()),
                Series::quantiles("Vanilla", mean_quantiles(vq).points(), vq.len()),
            ],
            None,
        )
    };
    let name = cond.name;
    let mut charts = vec![
        (
            format!("web_ttfb_{name}.svg"),
            two(
                &format!("web time to first byte ({name})"),
                |r| r.ttfb_s,
                |f| &f.web,
            ),
        ),
        (
            format!("web_ttlb_{name}.svg"),
            two(
                &format!("web time to last byte ({name})"),
                |r| r.ttlb_s,
                |f| &f.web,
            ),
        ),
    ];
    if cond.bulk {
        charts.push((
            format!("bulk_ttlb_{name}.svg"),
            two(
                &format!("bulk 5 MiB time to last byte ({name})"),
                |r| r.ttlb_s,
                |f| &f.bulk,
            ),
        ));
    }
    charts.push((
        format!("kernel_queue_{name}.svg"),
        qchart(
            &format!("kernel queue time, sampled ({name})"),
            &k.kernel_q,
            &v.kernel_q,
        ),
    ));
    charts.push((
        format!("relay_queue_{name}.svg"),
        qchart(
            &format!("relay queue time per cell ({name})"),
            &k.relay_q,
            &v.relay_q,
        ),
    ));
    charts
}
