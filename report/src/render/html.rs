//! One self-contained HTML file: inline CSS and SVG, no script, nothing
//! fetched. It reflows to one column on a phone and prints on A4.

use std::fmt::Write;

use super::{comparisons, coverage, insights, quality_notes, scope_name, status_text, trend_chart};
use crate::chart::{self, LineChart};
use crate::data::{DoraData, Snapshot};
use crate::fmt::{self, html};
use crate::metric::{MIN_SAMPLES, Metric};
use crate::saved::SavedResult;
use crate::{Error, Status};

const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1f2a44; --muted: #5b6475; --line: #dde1e8; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1080px; padding: 1.5rem; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; } h2 { font-size: 1.25rem; margin: 2rem 0 .75rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
h3 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
.meta { color: var(--muted); margin: .2rem 0; }
.status { padding: .6rem .9rem; border-radius: 6px; background: #fff4e5; border: 1px solid #f0b35b; font-weight: 600; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
td.num { white-space: nowrap; }
.tier { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .85em; font-weight: 600; }
.tier-elite { background: #d9f2e3; color: #0b6b35; } .tier-high { background: #dbe9fb; color: #184f93; }
.tier-medium { background: #fdf0d2; color: #8a5a00; } .tier-low { background: #fbdcdc; color: #9b1c1c; }
.verdict-degrading { color: #9b1c1c; font-weight: 600; } .verdict-improving { color: #0b6b35; font-weight: 600; }
.verdict-new { color: #184f93; font-weight: 600; } .few { color: var(--muted); font-style: italic; }
.quality { color: var(--muted); font-size: .85em; min-width: 9rem; } .quality .nonzero { color: #9b1c1c; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 420px), 1fr)); gap: 1rem; }
figure.chart { margin: 0; padding: .75rem; border: 1px solid var(--line); border-radius: 8px; break-inside: avoid; }
figure.chart figcaption { font-weight: 600; margin-bottom: .25rem; }
svg.chart { display: block; width: 100%; height: auto; }
.legend { list-style: none; padding: 0; margin: .4rem 0 0; display: flex; flex-wrap: wrap; gap: .2rem .9rem; font-size: .85em; }
.legend span { display: inline-block; width: .9em; height: .9em; border-radius: 2px; margin-right: .3em; vertical-align: -.1em; }
.note { color: var(--muted); font-size: .85em; }
dl dt { font-weight: 600; margin-top: .6rem; } dl dd { margin: 0 0 0 1rem; }
pre { background: var(--bg); padding: .75rem; overflow-x: auto; border-radius: 6px; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: .85em; }
@media (max-width: 600px) {
  body { padding: .75rem; font-size: 14px; }
  h1 { font-size: 1.3rem; }
  th, td { padding: .3rem .4rem; }
}
@media print {
  @page { size: A4; margin: 14mm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  .charts { grid-template-columns: 1fr 1fr; }
  h2 { break-after: avoid; } table, figure, .scope { break-inside: avoid; }
  .tier, .status { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .scroll { overflow: visible; }
}
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"leadline report\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n{body}<footer>Made by <code>leadline report</code>. Metric definitions: docs/metrics.md in the \
         leadline repository.</footer>\n</body>\n</html>\n",
        html(title)
    )
}

fn header(out: &mut String, title: &str, snapshot: &Snapshot, status: &Status, lines: &[String]) {
    let _ =
        write!(out, "<header>\n<h1>{}</h1>\n<p class=\"meta\">Data: {}</p>\n", html(title), html(&snapshot.describe()));
    for l in lines {
        let _ = writeln!(out, "<p class=\"meta\">{}</p>", html(l));
    }
    if let Some(s) = status_text(status) {
        let _ = writeln!(out, "<p class=\"status\" role=\"alert\">{}</p>", html(&s));
    }
    out.push_str("</header>\n");
}

fn tier(t: &Option<String>) -> String {
    match t {
        Some(t) => format!("<span class=\"tier tier-{0}\">{0}</span>", html(t)),
        None => fmt::NONE.into(),
    }
}

/// One chart in its figure, with an HTML legend (it reflows on a phone).
fn figure(out: &mut String, id: &str, chart: &LineChart, note: &str) -> Result<(), Error> {
    let svg = chart::svg(chart)?;
    let _ = write!(
        out,
        "<figure class=\"chart\" id=\"chart-{id}\" data-series=\"{}\">\n<figcaption>{}</figcaption>\n{svg}\n<ul class=\"legend\">",
        chart.series.len(),
        html(&chart.title)
    );
    for (i, s) in chart.series.iter().enumerate() {
        let _ = write!(out, "<li><span style=\"background:{}\"></span>{}</li>", chart::colour(s, i), html(&s.name));
    }
    out.push_str("</ul>\n");
    if !note.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", html(note));
    }
    out.push_str("</figure>\n");
    Ok(())
}

fn summary_table(out: &mut String, data: &DoraData, summary: &crate::data::Summary) {
    out.push_str(
        "<div class=\"scroll\"><table>\n<thead><tr><th>Metric</th><th>This period</th><th>Previous</th>\
         <th>Change</th><th>Tier</th><th>Samples now / before</th><th>Data quality (log-wide)</th></tr></thead>\n<tbody>\n",
    );
    for c in comparisons(summary) {
        let unit = c.metric.unit();
        let change = match c.verdict {
            crate::Verdict::TooFew if !c.change().is_empty() => {
                format!("{} <span class=\"few\">(too few to call)</span>", html(&c.change()))
            }
            v => format!("<span class=\"verdict-{}\">{}</span>", v.as_str().replace(' ', "-"), html(&c.change())),
        };
        let tiers = match (c.metric.tier_name(), &c.previous_tier) {
            (None, _) => "no tier".into(),
            (Some(_), Some(before)) if c.previous_tier != c.current_tier => {
                format!("{} <span class=\"note\">was {}</span>", tier(&c.current_tier), html(before))
            }
            (Some(_), _) => tier(&c.current_tier),
        };
        let quality: Vec<String> = quality_notes(data, c.metric)
            .into_iter()
            .map(|(n, v)| format!("<span class=\"{}\">{} {v}</span>", if v > 0 { "nonzero" } else { "" }, html(&n)))
            .collect();
        let _ = writeln!(
            out,
            "<tr data-metric=\"{}\"><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{change}</td>\
             <td>{tiers}</td><td class=\"num\">{} / {}<br><span class=\"note\">{}</span></td><td class=\"quality\">{}</td></tr>",
            c.metric.key(),
            html(c.metric.title()),
            html(&fmt::value(unit, c.current)),
            html(&fmt::value(unit, c.previous)),
            c.current_samples,
            c.previous_samples,
            html(c.metric.sample_noun()),
            quality.join(" · ")
        );
    }
    out.push_str("</tbody></table></div>\n");
}

pub fn dora(data: &DoraData, status: &Status) -> Result<Vec<u8>, Error> {
    let title = format!("DORA report: {}", data.environment);
    let mut out = String::new();
    header(&mut out, &title, &data.snapshot, status, &[coverage(data)]);

    let _ =
        writeln!(out, "<section id=\"summary\" class=\"scope\">\n<h2>{}</h2>", html(&scope_name(&data.summaries[0])));
    summary_table(&mut out, data, &data.summaries[0]);
    out.push_str("</section>\n");

    out.push_str("<section id=\"insights\">\n<h2>What changed</h2>\n");
    let said = insights(data);
    if said.is_empty() {
        let _ = writeln!(
            out,
            "<p>No metric moved past its threshold (±20% for durations and frequency, ±5 percentage points for \
             rates) with at least {MIN_SAMPLES} samples in both periods.</p>"
        );
    } else {
        out.push_str("<ul>\n");
        for s in said {
            let _ = writeln!(out, "<li>{}</li>", html(&s));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");

    let hidden = data.trends.len().saturating_sub(1 + super::CHART_SERVICES);
    let note = if hidden > 0 {
        format!("{hidden} quieter services are not drawn; their numbers are in the tables below.")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "<section id=\"trends\">\n<h2>Trends by {}</h2>\n<p class=\"note\">The shaded buckets are this period; \
         the others the previous one. A gap is a bucket without a sample.</p>\n<div class=\"charts\">",
        data.periods.grain
    );
    for m in Metric::ALL {
        figure(&mut out, m.key(), &trend_chart(data, m), &note)?;
    }
    out.push_str("</div>\n</section>\n");

    if data.summaries.len() > 1 {
        out.push_str("<section id=\"services\">\n<h2>By service</h2>\n");
        for s in &data.summaries[1..] {
            let name = scope_name(s);
            let _ = writeln!(out, "<div class=\"scope\" data-service=\"{0}\">\n<h3>{0}</h3>", html(&name));
            summary_table(&mut out, data, s);
            out.push_str("</div>\n");
        }
        out.push_str("</section>\n");
    }

    out.push_str("<section id=\"quality\">\n<h2>Data quality</h2>\n<p>What the log holds that no metric uses (<code>dora_quality</code>, log-wide):</p>\n<div class=\"scroll\"><table><tbody>\n");
    for (name, v) in &data.quality {
        let _ = writeln!(out, "<tr><th>{}</th><td class=\"num\">{v}</td></tr>", html(name));
    }
    out.push_str("</tbody></table></div>\n</section>\n");

    out.push_str("<section id=\"definitions\">\n<h2>Definitions</h2>\n<dl>\n");
    for m in Metric::ALL {
        let tiers = m.tier_bounds().map_or("No tier.".to_string(), |b| format!("DORA 2023 tiers: {b}."));
        let _ = writeln!(out, "<dt>{}</dt><dd>{} {}</dd>", html(m.title()), html(m.definition()), html(&tiers));
    }
    let _ = writeln!(
        out,
        "</dl>\n<p class=\"note\">A change is called improving or degrading when it moves by at least 20% \
         (durations, frequency) or 5 percentage points (rates) and both periods have at least {MIN_SAMPLES} \
         samples; a change from zero is new. Buckets are ISO weeks (Monday 00:00 UTC) or calendar months, UTC.</p>\n</section>"
    );
    Ok(page(&title, &out).into_bytes())
}

pub fn nothing(snapshot: &Snapshot, status: &Status) -> String {
    let mut out = String::new();
    header(&mut out, "DORA report", snapshot, status, &[]);
    page("DORA report", &out)
}

pub fn saved(snapshot: &Snapshot, result: &SavedResult, status: &Status) -> Result<Vec<u8>, Error> {
    let mut out = String::new();
    header(&mut out, &result.name, snapshot, status, &[format!("{} rows", result.rows)]);
    let _ =
        writeln!(out, "<details><summary>SQL</summary><pre><code>{}</code></pre></details>", html(result.sql.trim()));
    if let Some(chart) = &result.chart {
        out.push_str("<section id=\"chart\"><div class=\"charts\">\n");
        figure(&mut out, "query", chart, "")?;
        out.push_str("</div></section>\n");
    }
    out.push_str("<section id=\"rows\"><h2>Result</h2><div class=\"scroll\"><table>\n<thead><tr>");
    for c in &result.columns {
        let _ = write!(out, "<th>{}</th>", html(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &result.cells {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", cell.as_deref().map_or("NULL".into(), html));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div></section>\n");
    Ok(page(&result.name, &out).into_bytes())
}
