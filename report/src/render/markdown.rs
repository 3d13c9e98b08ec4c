//! The report as Markdown: the same tables and insights as the HTML, with
//! the roll-up's trend as a table instead of charts.

use std::fmt::Write;

use super::{comparisons, coverage, insights, quality_notes, scope_name, status_text};
use crate::data::{DoraData, Snapshot, Summary, index};
use crate::fmt::{self, md_cell};
use crate::metric::Metric;
use crate::saved::SavedResult;
use crate::{Status, Verdict};

fn header(out: &mut String, title: &str, snapshot: &Snapshot, status: &Status) {
    let _ = writeln!(out, "# {title}\n\nData: {}\n", snapshot.describe());
    if let Some(s) = status_text(status) {
        let _ = writeln!(out, "> **{s}**\n");
    }
}

fn summary_table(out: &mut String, data: &DoraData, summary: &Summary) {
    out.push_str("| Metric | This period | Previous | Change | Tier | Previous tier | Samples now / before | Data quality (log-wide) |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for c in comparisons(summary) {
        let unit = c.metric.unit();
        let mut change = c.change();
        match c.verdict {
            Verdict::TooFew if !change.is_empty() => change.push_str(" (too few to call)"),
            Verdict::Improving | Verdict::Degrading => change = format!("{change} {}", c.verdict.as_str()),
            _ => {}
        }
        let tier = |t: &Option<String>| match (t, c.metric.tier_name()) {
            (_, None) => "no tier".to_string(),
            (Some(t), _) => t.clone(),
            (None, _) => fmt::NONE.into(),
        };
        let quality: Vec<String> = quality_notes(data, c.metric).into_iter().map(|(n, v)| format!("{n} {v}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} / {} {} | {} |",
            c.metric.title(),
            fmt::value(unit, c.current),
            fmt::value(unit, c.previous),
            md_cell(&change),
            tier(&c.current_tier),
            tier(&c.previous_tier),
            c.current_samples,
            c.previous_samples,
            c.metric.sample_noun(),
            quality.join(", ")
        );
    }
    out.push('\n');
}

pub fn dora(data: &DoraData, status: &Status) -> String {
    let mut out = String::new();
    header(&mut out, &format!("DORA report: {}", data.environment), &data.snapshot, status);
    let _ = writeln!(out, "{}\n", coverage(data));
    let _ = writeln!(out, "## {}\n", scope_name(&data.summaries[0]));
    summary_table(&mut out, data, &data.summaries[0]);

    out.push_str("## What changed\n\n");
    let said = insights(data);
    if said.is_empty() {
        out.push_str("No metric moved past its threshold with enough samples in both periods.\n");
    }
    for s in said {
        let _ = writeln!(out, "- {}", md_cell(&s));
    }

    let _ = writeln!(out, "\n## Trend by {} (all services)\n", data.periods.grain);
    out.push_str("| Bucket | Period | Deployments |");
    for m in Metric::ALL {
        let _ = write!(out, " {} |", m.title());
    }
    out.push_str("\n|---|---|---|");
    out.push_str(&"---|".repeat(Metric::ALL.len()));
    out.push('\n');
    let rollup = &data.trends[0];
    let n_prev = data.periods.previous.buckets.len();
    for (b, start) in data.periods.all_buckets().into_iter().enumerate() {
        let _ = write!(
            out,
            "| {} | {} | {} |",
            fmt::date(start),
            if b < n_prev { "previous" } else { "current" },
            rollup.deployments[b]
        );
        for m in Metric::ALL {
            let _ = write!(out, " {} |", fmt::value(m.unit(), rollup.values[b][index(m)]));
        }
        out.push('\n');
    }

    if data.summaries.len() > 1 {
        out.push_str("\n## By service\n");
        for s in &data.summaries[1..] {
            let _ = writeln!(out, "\n### {}\n", scope_name(s));
            summary_table(&mut out, data, s);
        }
    }

    out.push_str("\n## Data quality (dora_quality, log-wide)\n\n| count | value |\n|---|---|\n");
    for (n, v) in &data.quality {
        let _ = writeln!(out, "| {n} | {v} |");
    }
    out.push_str("\n## Definitions\n\n");
    for m in Metric::ALL {
        let tiers = m.tier_bounds().map_or("No tier.".to_string(), |b| format!("Tiers: {b}."));
        let _ = writeln!(out, "- **{}**: {} {tiers}", m.title(), m.definition());
    }
    let _ = writeln!(
        out,
        "\nA change is called improving or degrading when it moves by at least 20% (durations, frequency) or \
         5 percentage points (rates) and both periods have at least {} samples; a change from zero is new.",
        crate::metric::MIN_SAMPLES
    );
    out
}

pub fn nothing(snapshot: &Snapshot, status: &Status) -> String {
    let mut out = String::new();
    header(&mut out, "DORA report", snapshot, status);
    out
}

pub fn saved(snapshot: &Snapshot, result: &SavedResult, status: &Status) -> String {
    let mut out = String::new();
    header(&mut out, &result.name, snapshot, status);
    let _ = writeln!(out, "```sql\n{}\n```\n", result.sql.trim());
    let _ = writeln!(out, "| {} |", result.columns.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(result.columns.len()));
    for row in &result.cells {
        let cells: Vec<String> = row.iter().map(|c| md_cell(c.as_deref().unwrap_or("NULL"))).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\n({} rows)", result.rows);
    out
}
