//! The report as data: CSV (one row per scope and metric, values in their
//! base units) and JSON (everything, trends included).

use serde_json::{Value, json};

use super::{comparisons, insights};
use crate::data::{DoraData, Snapshot, index};
use crate::metric::{Metric, Unit};
use crate::saved::SavedResult;
use crate::{Error, Status, fmt};

const CSV_HEADER: [&str; 17] = [
    "service",
    "environment",
    "metric",
    "unit",
    "current",
    "previous",
    "change",
    "verdict",
    "current_tier",
    "previous_tier",
    "current_samples",
    "previous_samples",
    "current_from",
    "current_to",
    "previous_from",
    "previous_to",
    "log_version",
];

fn unit_name(u: Unit) -> &'static str {
    match u {
        Unit::PerDay => "per_day",
        Unit::Seconds => "seconds",
        Unit::Ratio => "ratio",
    }
}

fn number(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub fn dora_csv_header() -> Result<Vec<u8>, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    w.into_inner().map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
}

/// One row per (scope, metric); the roll-up's `service` is empty.
pub fn dora_csv(data: &DoraData) -> Result<Vec<u8>, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    let p = &data.periods;
    let bounds = [p.current.start, p.current.end, p.previous.start, p.previous.end].map(fmt_ts);
    let version = data.snapshot.log_version.map(|v| v.to_string()).unwrap_or_default();
    for summary in &data.summaries {
        for c in comparisons(summary) {
            let mut row = vec![
                summary.service.clone().unwrap_or_default(),
                data.environment.clone(),
                c.metric.key().to_string(),
                unit_name(c.metric.unit()).to_string(),
                number(c.current),
                number(c.previous),
                change_value(&c),
                c.verdict.as_str().to_string(),
                c.current_tier.clone().unwrap_or_default(),
                c.previous_tier.clone().unwrap_or_default(),
                c.current_samples.to_string(),
                c.previous_samples.to_string(),
            ];
            row.extend(bounds.iter().cloned());
            row.push(version.clone());
            w.write_record(&row)?;
        }
    }
    w.into_inner().map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
}

/// The change as data: `new` from zero, else current − previous in the
/// metric's unit (empty when a value is missing).
fn change_value(c: &crate::Comparison) -> String {
    match (c.previous, c.current) {
        (None | Some(0.0), Some(v)) if v != 0.0 => "new".into(),
        (Some(p), Some(v)) => (v - p).to_string(),
        _ => String::new(),
    }
}

fn fmt_ts(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn snapshot_json(s: &Snapshot) -> Value {
    json!({
        "log_version": s.log_version,
        "as_of": s.as_of,
        "events": s.events,
        "newest_event": s.newest_event.map(fmt_ts),
        "newest_ingestion": s.newest_ingestion.map(fmt_ts),
    })
}

fn status_json(status: &Status) -> Value {
    match status {
        Status::Ok => json!({"state": "ok"}),
        Status::Empty(why) => json!({"state": "empty", "reason": why}),
        Status::Stale(why) => json!({"state": "stale", "reason": why}),
    }
}

fn to_vec(v: &Value) -> Result<Vec<u8>, Error> {
    let mut out = serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?;
    out.push(b'\n');
    Ok(out)
}

pub fn dora_json(data: &DoraData, status: &Status) -> Result<Vec<u8>, Error> {
    let p = &data.periods;
    let summaries: Vec<Value> = data
        .summaries
        .iter()
        .map(|s| {
            let metrics: serde_json::Map<String, Value> = comparisons(s)
                .into_iter()
                .map(|c| {
                    let v = json!({
                        "unit": unit_name(c.metric.unit()),
                        "current": c.current, "previous": c.previous,
                        "change": change_value(&c), "verdict": c.verdict.as_str(),
                        "current_tier": c.current_tier, "previous_tier": c.previous_tier,
                        "current_samples": c.current_samples, "previous_samples": c.previous_samples,
                        "display": {"current": fmt::value(c.metric.unit(), c.current),
                                    "previous": fmt::value(c.metric.unit(), c.previous), "change": c.change()},
                    });
                    (c.metric.key().to_string(), v)
                })
                .collect();
            json!({"service": s.service, "metrics": metrics})
        })
        .collect();
    let buckets = p.all_buckets();
    let trends: Vec<Value> = data
        .trends
        .iter()
        .map(|t| {
            let rows: Vec<Value> = buckets
                .iter()
                .enumerate()
                .map(|(b, start)| {
                    let mut row = serde_json::Map::new();
                    row.insert("bucket_start".into(), json!(fmt_ts(*start)));
                    row.insert("deployments".into(), json!(t.deployments[b]));
                    for m in Metric::ALL {
                        row.insert(m.key().into(), json!(t.values[b][index(m)]));
                    }
                    Value::Object(row)
                })
                .collect();
            json!({"service": t.service, "buckets": rows})
        })
        .collect();
    let quality: serde_json::Map<String, Value> = data.quality.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    to_vec(&json!({
        "report": "dora",
        "status": status_json(status),
        "snapshot": snapshot_json(&data.snapshot),
        "environment": data.environment,
        "grain": p.grain.as_str(),
        "services": data.selected,
        "teams": data.teams,
        "current": {"from": fmt_ts(p.current.start), "to": fmt_ts(p.current.end), "days": p.current.days()},
        "previous": {"from": fmt_ts(p.previous.start), "to": fmt_ts(p.previous.end), "days": p.previous.days()},
        "summaries": summaries,
        "trends": trends,
        "insights": insights(data),
        "quality": quality,
    }))
}

pub fn nothing_json(snapshot: &Snapshot, status: &Status) -> Result<Vec<u8>, Error> {
    to_vec(&json!({"report": "dora", "status": status_json(status), "snapshot": snapshot_json(snapshot)}))
}

pub fn saved_json(snapshot: &Snapshot, result: &SavedResult, status: &Status) -> Result<Vec<u8>, Error> {
    to_vec(&json!({
        "report": result.name,
        "status": status_json(status),
        "snapshot": snapshot_json(snapshot),
        "sql": result.sql,
        "rows": crate::table::json_rows(&result.batches)?,
    }))
}
