//! The report formats. Each renders the same reading of the data: the
//! comparisons and insights are made once, here.

mod html;
mod markdown;
mod records;

use crate::chart::{LineChart, Series};
use crate::data::{DoraData, Snapshot, Summary, index};
use crate::insight::Comparison;
use crate::metric::Metric;
use crate::saved::SavedResult;
use crate::{Error, Format, Status, fmt};

/// Charts show at most this many services beside the roll-up (the busiest).
pub const CHART_SERVICES: usize = 7;

/// The name of a scope as the report prints it.
pub fn scope_name(summary: &Summary) -> String {
    summary.service.clone().unwrap_or_else(|| "All services".into())
}

/// Every metric of a scope, this period against the previous one.
pub fn comparisons(summary: &Summary) -> Vec<Comparison> {
    Metric::ALL
        .iter()
        .map(|&m| {
            let i = index(m);
            let side = |s: &crate::data::Measures| (s.values[i], s.samples[i], s.tiers[i].clone());
            Comparison::new(m, side(&summary.current), side(&summary.previous))
        })
        .collect()
}

/// The insight sentences: the roll-up's first, then each service's;
/// degrading before improving.
pub fn insights(data: &DoraData) -> Vec<String> {
    let mut out = Vec::new();
    for summary in &data.summaries {
        let mut calls: Vec<Comparison> = comparisons(summary);
        calls.sort_by_key(|c| match c.verdict {
            crate::Verdict::Degrading => 0,
            crate::Verdict::New => 1,
            crate::Verdict::Improving => 2,
            _ => 3,
        });
        out.extend(calls.iter().filter_map(|c| c.sentence(&scope_name(summary))));
    }
    out
}

/// The log-wide `dora_quality` counts that touch `metric`, as `name n`.
pub fn quality_notes(data: &DoraData, metric: Metric) -> Vec<(String, i64)> {
    metric.quality_counts().iter().filter_map(|n| data.quality(n).map(|v| (n.replace('_', " "), v))).collect()
}

/// What the report covers, in one sentence.
pub fn coverage(data: &DoraData) -> String {
    let p = &data.periods;
    let unit = if p.grain == crate::Grain::Month { "month" } else { "week" };
    let n = p.current.buckets.len();
    let services = if data.selected.is_empty() {
        let n = data.summaries.len() - 1;
        format!("all {n} service{}", if n == 1 { "" } else { "s" })
    } else {
        data.selected.join(", ")
    };
    let teams = if data.teams.is_empty() { String::new() } else { format!(" (teams {})", data.teams.join(", ")) };
    format!(
        "{} {unit}{} from {} to {}, against the {n} before ({} to {}); environment {}; {services}{teams}.",
        n,
        if n == 1 { "" } else { "s" },
        fmt::date(p.current.start),
        fmt::date(p.current.end - 1),
        fmt::date(p.previous.start),
        fmt::date(p.previous.end - 1),
        data.environment,
    )
}

/// The trend chart of `metric`: the roll-up and the busiest services.
pub fn trend_chart(data: &DoraData, metric: Metric) -> LineChart {
    let i = index(metric);
    let mut services: Vec<&crate::data::Trend> = data.trends.iter().skip(1).collect();
    // Busiest first (by deployments in the current period), then by name.
    let n_prev = data.periods.previous.buckets.len();
    services.sort_by_key(|t| std::cmp::Reverse(t.deployments[n_prev..].iter().sum::<u64>()));
    let shown = services.into_iter().take(CHART_SERVICES);
    let mut series = vec![Series {
        name: "All services".into(),
        values: data.trends[0].values.iter().map(|v| v[i]).collect(),
        emphasis: true,
    }];
    // With one service the roll-up is that service: one line is enough.
    if data.trends.len() > 2 {
        series.extend(shown.map(|t| Series {
            name: t.service.clone().unwrap_or_default(),
            values: t.values.iter().map(|v| v[i]).collect(),
            emphasis: false,
        }));
    }
    LineChart {
        title: metric.title().into(),
        x_labels: data.periods.all_buckets().into_iter().map(|b| fmt::bucket_label(b, data.periods.grain)).collect(),
        series,
        unit: Some(metric.unit()),
        shade_from: Some(n_prev),
    }
}

pub fn dora(format: Format, data: &DoraData, status: &Status) -> Result<Vec<u8>, Error> {
    match format {
        Format::Html => html::dora(data, status),
        Format::Markdown => Ok(markdown::dora(data, status).into_bytes()),
        Format::Csv => records::dora_csv(data),
        Format::Json => records::dora_json(data, status),
    }
}

pub fn saved(format: Format, snapshot: &Snapshot, result: &SavedResult, status: &Status) -> Result<Vec<u8>, Error> {
    match format {
        Format::Html => html::saved(snapshot, result, status),
        Format::Markdown => Ok(markdown::saved(snapshot, result, status).into_bytes()),
        Format::Csv => {
            let mut out = Vec::new();
            crate::table::write_csv(&result.batches, &mut out)?;
            Ok(out)
        }
        Format::Json => records::saved_json(snapshot, result, status),
    }
}

/// A report of an empty log: what it read and why there is nothing.
pub fn nothing(format: Format, snapshot: &Snapshot, status: &Status) -> Result<Vec<u8>, Error> {
    match format {
        Format::Html => Ok(html::nothing(snapshot, status).into_bytes()),
        Format::Markdown => Ok(markdown::nothing(snapshot, status).into_bytes()),
        Format::Csv => records::dora_csv_header(),
        Format::Json => records::nothing_json(snapshot, status),
    }
}

/// The status line a report shows, if any.
pub fn status_text(status: &Status) -> Option<String> {
    match status {
        Status::Ok => None,
        Status::Empty(why) => Some(format!("No data: {why}.")),
        Status::Stale(why) => Some(format!("Stale data: {why}.")),
    }
}
