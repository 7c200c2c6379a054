//! Charts as SVG text: CDFs for the experiment report, scaling curves for `bench relay`
//! ([`scaling`]).
//!
//! Written here rather than with `plotters`: plotters lays out text through a font backend
//! (system fonts via font-kit, or a registered TTF), which a fresh CI machine does not have;
//! an SVG CDF is a few polylines, axis ticks and a legend, and the browser lays out the text.

use std::fmt::Write;

mod scaling;

pub(super) use scaling::{curves_svg, Curve, CurvePoint};

/// One line of a chart: its legend and its (x, fraction) points, in order.
#[derive(Debug, Clone)]
pub(super) struct Series {
    /// Legend text.
    pub label: String,
    /// Points (x, fraction <= x), x ascending.
    pub points: Vec<(f64, f64)>,
    /// Samples behind it (shown in the legend).
    pub n: usize,
}

impl Series {
    /// The empirical CDF of `values` (any order; non-finite values dropped): a step up at
    /// each sample.
    pub(super) fn cdf(label: impl Into<String>, values: &[f64]) -> Series {
        let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mut points = vec![(0.0, 0.0)];
        for (k, val) in v.iter().enumerate() {
            points.push((*val, k as f64 / n));
            points.push((*val, (k + 1) as f64 / n));
        }
        Series {
            label: label.into(),
            points,
            n: v.len(),
        }
    }

    /// A CDF known only at some quantiles: (value, fraction) points joined by lines.
    pub(super) fn quantiles(label: impl Into<String>, points: Vec<(f64, f64)>, n: usize) -> Series {
        Series {
            label: label.into(),
            points,
            n,
        }
    }
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// CDFs of `series` on one chart; x from 0 to the largest value (or `x_max`).
pub(super) fn cdf_svg(title: &str, x_label: &str, series: &[Series], x_max: Option<f64>) -> String {
    let largest = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (x_hi, step) = nice_axis(x_max.unwrap_or(largest));
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |v: f64| LEFT + (v / x_hi).clamp(0.0, 1.0) * pw;
    let y = |p: f64| TOP + (1.0 - p) * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        escape(title)
    );
    // Axes, grid and ticks: round steps on x, tenths... fifths on y.
    let steps = (x_hi / step).round() as u32;
    for i in 0..=steps.max(5) {
        let f = f64::from(i) / 5.0;
        let xv = f64::from(i) * step;
        let draw_x = i <= steps;
        let draw_y = i <= 5;
        let (gx, gy) = (x(xv), y(f.min(1.0)));
        if draw_x {
            let _ = write!(
                svg,
                "<line x1=\"{gx:.1}\" y1=\"{TOP}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n\
                 <text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                TOP + ph,
                TOP + ph + 16.0,
                tick(xv),
            );
        }
        if !draw_y {
            continue;
        }
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{f:.1}</text>\n",
            LEFT + pw,
            LEFT - 6.0,
            gy + 4.0,
        );
    }
    frame(&mut svg, pw, ph, &escape(x_label), "fraction &#8804; x");
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut points = String::new();
        for (k, (px, py)) in s.points.iter().enumerate() {
            if k > 0 {
                points.push(' ');
            }
            let _ = write!(points, "{:.1},{:.1}", x(*px), y(*py));
        }
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{points}\"/>\n\
             <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{} (n={})</text>\n",
            LEFT + pw - 190.0,
            TOP + ph - 20.0 - 18.0 * i as f64,
            LEFT + pw - 170.0,
            TOP + ph - 20.0 - 18.0 * i as f64,
            LEFT + pw - 164.0,
            TOP + ph - 16.0 - 18.0 * i as f64,
            escape(&s.label),
            s.n
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The axis end (a multiple of the step at or above `largest`) and a 1-2-5 step giving at
/// most 8 intervals.
/// The plot area's border and the two axis labels (already escaped).
fn frame(svg: &mut String, pw: f64, ph: f64, x_label: &str, y_label: &str) {
    let _ = write!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"black\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x_label}</text>\n\
         <text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">{y_label}</text>\n",
        LEFT + pw / 2.0,
        H - 12.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
    );
}

fn nice_axis(largest: f64) -> (f64, f64) {
    let largest = if largest.is_finite() && largest > 0.0 {
        largest
    } else {
        1.0
    };
    let raw = largest / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| largest / s <= 8.0)
        .unwrap_or(10.0 * mag);
    ((largest / step).ceil() * step, step)
}

fn tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_has_one_step_per_sample_and_escapes_text() {
        let s = [
            Series::cdf("KIST <large>", &[3.0, 1.0, 2.0, f64::NAN]),
            Series::cdf("Vanilla", &[4.0]),
        ];
        let svg = cdf_svg("web TTLB & more", "seconds", &s, None);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("web TTLB &amp; more"));
        assert!(svg.contains("KIST &lt;large&gt; (n=3)"));
        assert!(svg.contains("Vanilla (n=1)"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // KIST: origin + 2 points per sample; the last point is at the top (y = TOP).
        let kist = svg.split("<polyline").nth(1).unwrap();
        let points = kist
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), 1 + 2 * 3);
        assert!(points.ends_with(&format!(",{TOP:.1}")), "{points}");
        // The x axis runs to a round end at or above the largest value (4.0 -> 4, step 0.5).
        let right = LEFT + (W - LEFT - RIGHT);
        assert!(svg.contains(&format!("{right:.1},{TOP:.1}")));
        assert_eq!(nice_axis(4.0), (4.0, 0.5));
        assert_eq!(nice_axis(1.8), (2.0, 0.5));
        assert_eq!(nice_axis(816.0), (1000.0, 200.0));
    }
}
