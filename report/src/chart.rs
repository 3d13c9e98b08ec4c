//! Line charts as SVG, drawn with `plotters`' SVG backend. Text is left to
//! the browser's fonts (no font crate), and the SVG scales with its page.

use plotters::prelude::*;

use crate::Error;
use crate::metric::Unit;

/// One line of a chart: its values at each x position (gaps where `None`).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
    /// The roll-up: drawn thicker, in the darkest colour.
    pub emphasis: bool,
}

/// A chart of series over categorical x positions.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_labels: Vec<String>,
    pub series: Vec<Series>,
    /// How the y values are measured.
    pub unit: Option<Unit>,
    /// x positions from here on are the current period (shaded).
    pub shade_from: Option<usize>,
}

const WIDTH: u32 = 480;
const HEIGHT: u32 = 270;
const ROLLUP: RGBColor = RGBColor(0x1f, 0x2a, 0x44);
/// A colour-blind-friendly palette (Okabe–Ito) for the other lines.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0x00, 0x72, 0xb2),
    RGBColor(0xa0, 0x8a, 0x00),
];

/// The colour of series `i` (as CSS), matching the SVG.
pub fn colour(series: &Series, i: usize) -> String {
    let c = if series.emphasis { ROLLUP } else { PALETTE[i % PALETTE.len()] };
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// How y values are scaled and labelled: durations in minutes, hours or
/// days by their size, ratios in percent.
fn y_scale(unit: Option<Unit>, max: f64) -> (f64, &'static str) {
    match unit {
        Some(Unit::Seconds) if max < 2.0 * 3600.0 => (1.0 / 60.0, "minutes"),
        Some(Unit::Seconds) if max < 3.0 * 86_400.0 => (1.0 / 3600.0, "hours"),
        Some(Unit::Seconds) => (1.0 / 86_400.0, "days"),
        Some(Unit::Ratio) => (100.0, "%"),
        Some(Unit::PerDay) => (1.0, "per day"),
        None => (1.0, ""),
    }
}

/// The chart as an SVG element.
pub fn svg(chart: &LineChart) -> Result<String, Error> {
    let mut out = String::new();
    draw(chart, &mut out).map_err(|e| Error::Chart(format!("{}: {e}", chart.title)))?;
    // Let CSS size it (the viewBox keeps its proportions) and name it for
    // screen readers.
    let label = crate::fmt::html(&chart.title);
    // Inline in HTML, an SVG needs no namespace (and the page names no URL).
    Ok(out
        .replacen(
            &format!("<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" "),
            &format!("<svg class=\"chart\" role=\"img\" aria-label=\"{label}\" "),
            1,
        )
        .replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1))
}

fn draw(chart: &LineChart, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let n = chart.x_labels.len().max(1);
    let max = chart.series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0f64, |a, v| a.max(*v));
    let min = chart.series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0f64, |a, v| a.min(*v));
    let (scale, unit_label) = y_scale(chart.unit, max);
    let top = if max > 0.0 { max * scale * 1.1 } else { 1.0 };
    let bottom = min * scale * 1.1;
    let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_range = -0.5..(n as f64 - 0.5);
    let mut ctx = ChartBuilder::on(&root)
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(58)
        .build_cartesian_2d(x_range, bottom..top)?;
    let step = n.div_ceil(6);
    let labels = &chart.x_labels;
    let x_label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= labels.len() || !(i as usize).is_multiple_of(step) {
            return String::new();
        }
        labels[i as usize].clone()
    };
    let y_label = |y: &f64| {
        let v = format!("{y:.2}");
        let v = v.trim_end_matches('0').trim_end_matches('.');
        if unit_label == "%" { format!("{v}%") } else { v.to_string() }
    };
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(60))
        .x_label_formatter(&x_label)
        .y_labels(6)
        .y_label_formatter(&y_label)
        .y_desc(if unit_label == "%" { "" } else { unit_label })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(0xe4, 0xe7, 0xec))
        .axis_style(RGBColor(0x88, 0x88, 0x88))
        .draw()?;
    if let Some(from) = chart.shade_from.filter(|f| *f < n) {
        let shade = RGBColor(0x3b, 0x82, 0xf6).mix(0.07).filled();
        ctx.draw_series(std::iter::once(Rectangle::new([(from as f64 - 0.5, bottom), (n as f64 - 0.5, top)], shade)))?;
    }
    for (i, s) in chart.series.iter().enumerate() {
        let c = if s.emphasis { ROLLUP } else { PALETTE[i % PALETTE.len()] };
        let style = c.stroke_width(if s.emphasis { 3 } else { 2 });
        // Each run of values without a gap is one line (a lone value is
        // just its dot).
        let values: Vec<Option<f64>> = s.values.iter().map(|v| v.map(|v| v * scale)).collect();
        for run in values.split(Option::is_none).scan(0usize, |x, run| {
            let first = *x;
            *x += run.len() + 1;
            Some((first, run))
        }) {
            let (first, run) = run;
            if run.len() >= 2 {
                let points = run.iter().enumerate().map(|(i, v)| ((first + i) as f64, v.unwrap_or_default()));
                ctx.draw_series(LineSeries::new(points, style))?;
            }
        }
        let points = s.values.iter().enumerate().filter_map(|(x, v)| v.map(|v| (x as f64, v * scale)));
        let r = if s.emphasis { 4 } else { 3 };
        ctx.draw_series(points.map(|p| Circle::new(p, r, c.filled())))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_one_scalable_svg_with_a_line_per_run_and_a_dot_per_value() {
        let chart = LineChart {
            title: "Lead time <p50>".into(),
            x_labels: (1..=4).map(|i| format!("Aug {i}")).collect(),
            series: vec![
                Series {
                    name: "all".into(),
                    values: vec![Some(3600.0), None, Some(7200.0), Some(5400.0)],
                    emphasis: true,
                },
                Series { name: "svc".into(), values: vec![None, None, None, None], emphasis: false },
            ],
            unit: Some(Unit::Seconds),
            shade_from: Some(2),
        };
        let svg = svg(&chart).unwrap();
        assert!(svg.starts_with("<svg class=\"chart\" role=\"img\" aria-label=\"Lead time &lt;p50&gt;\""), "{svg}");
        // The mesh is drawn with 1-wide lines, the data with wider ones.
        let data_lines = svg.split("<polyline").filter(|l| l.contains("stroke-width=\"3\"")).count();
        assert_eq!(data_lines, 1, "one run of two points; a lone point is a dot");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("Aug 1") && svg.contains("hours"));
        assert!(!svg.contains("http"), "inline SVG needs no namespace");
    }
}
