//! A scaling curve as SVG: a measured figure against a worker count, each point its median
//! with its 95% interval as an error bar, and the ideal (linear from the first point) as a
//! dashed line.

use std::fmt::Write;

use super::{escape, frame, nice_axis, tick, BOTTOM, COLOURS, H, LEFT, RIGHT, TOP, W};

/// One point: x, and the median and interval of y (`None`: no interval) over `n` rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::cmd::bench) struct CurvePoint {
    pub x: f64,
    pub median: f64,
    pub interval: Option<(f64, f64)>,
    pub n: usize,
}

/// One line of the chart.
#[derive(Debug, Clone)]
pub(in crate::cmd::bench) struct Curve {
    pub label: String,
    pub points: Vec<CurvePoint>,
    /// Draw the ideal line of this curve: y proportional to x, through its first point.
    pub ideal: bool,
}

/// The chart of `curves`, axes from 0.
pub(in crate::cmd::bench) fn curves_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> String {
    let all = || curves.iter().flat_map(|c| &c.points);
    let x_max = all().map(|p| p.x).fold(1.0f64, f64::max);
    let ideal_top = curves
        .iter()
        .filter(|c| c.ideal)
        .filter_map(|c| c.points.first())
        .map(|p| p.median / p.x.max(f64::MIN_POSITIVE) * x_max);
    let y_top = all()
        .map(|p| p.interval.map_or(p.median, |i| i.1))
        .chain(ideal_top)
        .fold(0.0f64, f64::max);
    let (x_hi, x_step) = nice_axis(x_max);
    let (y_hi, y_step) = nice_axis(y_top);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |v: f64| LEFT + (v / x_hi).clamp(0.0, 1.0) * pw;
    let y = |v: f64| TOP + (1.0 - (v / y_hi).clamp(0.0, 1.0)) * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        escape(title)
    );
    let steps =
        |hi: f64, step: f64| (0..=(hi / step).round() as u32).map(move |i| f64::from(i) * step);
    for xv in steps(x_hi, x_step) {
        let gx = x(xv);
        let _ = writeln!(
            svg,
            "<line x1=\"{gx:.1}\" y1=\"{TOP}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + ph,
            TOP + ph + 16.0,
            tick(xv)
        );
    }
    for yv in steps(y_hi, y_step) {
        let gy = y(yv);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            gy + 4.0,
            tick(yv)
        );
    }
    frame(&mut svg, pw, ph, &escape(x_label), &escape(y_label));
    for (i, c) in curves.iter().enumerate() {
        draw_curve(&mut svg, i, c, &x, &y, x_max);
    }
    svg.push_str("</svg>\n");
    svg
}

/// One curve: its line, its points with error bars, its ideal line, its legend entry.
fn draw_curve(
    svg: &mut String,
    i: usize,
    c: &Curve,
    x: &impl Fn(f64) -> f64,
    y: &impl Fn(f64) -> f64,
    x_max: f64,
) {
    let colour = COLOURS[i % COLOURS.len()];
    let points: Vec<String> = c
        .points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.x), y(p.median)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
        points.join(" ")
    );
    for p in &c.points {
        let (px, py) = (x(p.x), y(p.median));
        let _ = writeln!(
            svg,
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{colour}\"/>"
        );
        if let Some((lo, hi)) = p.interval {
            let _ = writeln!(
                svg,
                "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"{colour}\"/>",
                y(lo),
                y(hi)
            );
        }
    }
    if let (true, Some(first)) = (c.ideal, c.points.first()) {
        let slope = first.median / first.x.max(f64::MIN_POSITIVE);
        let _ = writeln!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-dasharray=\"5,4\"/>",
            x(first.x),
            y(first.median),
            x(x_max),
            y(slope * x_max)
        );
    }
    let n = c.points.iter().map(|p| p.n).min().unwrap_or(0);
    let ly = TOP + 16.0 + 18.0 * i as f64;
    let _ = writeln!(
        svg,
        "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{} (n={n}{})</text>",
        LEFT + 10.0,
        LEFT + 30.0,
        LEFT + 36.0,
        ly + 4.0,
        escape(&c.label),
        if c.ideal { ", dashed: ideal" } else { "" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_bars_and_the_ideal_line() {
        let p = |x: f64, m: f64| CurvePoint {
            x,
            median: m,
            interval: Some((m * 0.9, m * 1.1)),
            n: 4,
        };
        let curves = [
            Curve {
                label: "relay <kistrel>".into(),
                points: vec![p(1.0, 1.0), p(2.0, 1.6)],
                ideal: true,
            },
            Curve {
                label: "forwarder".into(),
                points: vec![p(1.0, 2.0), p(2.0, 3.0)],
                ideal: false,
            },
        ];
        let svg = curves_svg("scaling & more", "workers", "Mcells/s", &curves);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("scaling &amp; more"));
        assert!(svg.contains("relay &lt;kistrel&gt; (n=4, dashed: ideal)"));
        assert!(svg.contains("forwarder (n=4)"));
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        // The y axis reaches the top error bar (3.3) at a round value: 3.5 in steps of 0.5.
        assert_eq!(nice_axis(3.3), (3.5, 0.5));
    }
}
