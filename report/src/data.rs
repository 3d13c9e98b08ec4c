//! Everything a DORA report shows, read with SQL from a session of the
//! catalog: `dora_metrics` for each service's trend, the DORA aggregate
//! functions over `deployments`, `changes` and `incidents` for the periods
//! and the roll-up, and `dora_quality`. Nothing here computes a metric.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use leadline_engine::ReadSession;
use leadline_udfs::Grain;

use crate::metric::Metric;
use crate::period::Periods;
use crate::{Error, Request, fmt};

/// Values of every metric (indexed like [`Metric::ALL`]).
pub type PerMetric<T> = [T; Metric::ALL.len()];

pub fn index(metric: Metric) -> usize {
    Metric::ALL.iter().position(|m| *m == metric).unwrap_or_default()
}

/// One period's numbers for one scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measures {
    pub values: PerMetric<Option<f64>>,
    pub samples: PerMetric<u64>,
    pub tiers: PerMetric<Option<String>>,
}

impl Measures {
    pub fn deployments(&self) -> u64 {
        self.samples[index(Metric::DeploymentFrequency)]
    }
}

/// A scope's two periods. `service` is `None` for the roll-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub service: Option<String>,
    pub current: Measures,
    pub previous: Measures,
}

/// A scope's value of every metric in each bucket of both periods.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub service: Option<String>,
    pub deployments: Vec<u64>,
    pub values: Vec<PerMetric<Option<f64>>>,
}

/// Which snapshot of the log the report read.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub log_version: Option<u64>,
    /// The `--as-of` the report was asked for.
    pub as_of: Option<String>,
    pub events: u64,
    pub newest_event: Option<i64>,
    pub newest_ingestion: Option<i64>,
}

impl Snapshot {
    pub fn describe(&self) -> String {
        let version = self.log_version.map_or("none (empty log)".into(), |v| v.to_string());
        let as_of = match (&self.as_of, self.newest_ingestion) {
            (Some(t), _) => format!("read as of {t}"),
            (None, Some(t)) => format!("as of {} (newest ingestion)", fmt::utc(t)),
            (None, None) => "as of now".into(),
        };
        let newest = self.newest_event.map_or(String::new(), |t| format!(" · newest event {}", fmt::utc(t)));
        format!("log version {version} · {as_of} · {} events{newest}", self.events)
    }
}

/// Everything the DORA report renders.
#[derive(Debug, Clone, PartialEq)]
pub struct DoraData {
    pub snapshot: Snapshot,
    pub environment: String,
    /// The services asked for (by `--service` or `--team`); empty: all.
    pub selected: Vec<String>,
    pub teams: Vec<String>,
    pub periods: Periods,
    /// The roll-up first, then each service by name.
    pub summaries: Vec<Summary>,
    /// Like `summaries`, over `periods.all_buckets()`.
    pub trends: Vec<Trend>,
    /// `dora_quality`, in its column order.
    pub quality: Vec<(String, i64)>,
}

impl DoraData {
    pub fn quality(&self, name: &str) -> Option<i64> {
        self.quality.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// A query's result as one batch, read by column name.
pub struct Rows(RecordBatch);

impl Rows {
    pub async fn query(session: &ReadSession, sql: &str) -> Result<Rows, Error> {
        let frame = session.context().sql(sql).await?;
        let schema = frame.schema().inner().clone();
        let batches = frame.collect().await?;
        Ok(Rows(arrow::compute::concat_batches(&schema, &batches)?))
    }

    pub fn len(&self) -> usize {
        self.0.num_rows()
    }

    fn column(&self, name: &str, to: &DataType) -> Result<std::sync::Arc<dyn Array>, Error> {
        let col = self.0.column_by_name(name).ok_or_else(|| Error::Internal(format!("no column {name}")))?;
        Ok(cast(col, to)?)
    }

    pub fn text(&self, name: &str) -> Result<Vec<Option<String>>, Error> {
        let a = self.column(name, &DataType::Utf8)?;
        Ok(a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect())
    }

    pub fn float(&self, name: &str) -> Result<Vec<Option<f64>>, Error> {
        Ok(self.column(name, &DataType::Float64)?.as_primitive::<Float64Type>().iter().collect())
    }

    pub fn int(&self, name: &str) -> Result<Vec<Option<i64>>, Error> {
        Ok(self.column(name, &DataType::Int64)?.as_primitive::<Int64Type>().iter().collect())
    }

    /// A timestamp column as µs since the epoch, UTC.
    pub fn micros(&self, name: &str) -> Result<Vec<Option<i64>>, Error> {
        let utc = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
        let a = cast(&self.column(name, &utc)?, &DataType::Int64)?;
        Ok(a.as_primitive::<Int64Type>().iter().collect())
    }
}

/// A SQL string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn ts(micros: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    format!("TIMESTAMPTZ '{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

fn list(items: &[String]) -> String {
    items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
}

/// The snapshot the session pinned and what the log holds.
pub async fn snapshot(session: &ReadSession, as_of: Option<&str>) -> Result<Snapshot, Error> {
    let rows = Rows::query(
        session,
        "SELECT count(*) AS events, max(occurred_at) AS newest_event, max(ingested_at) AS newest_ingestion FROM events",
    )
    .await?;
    Ok(Snapshot {
        log_version: session.log_version(),
        as_of: as_of.map(str::to_string),
        events: rows.int("events")?[0].unwrap_or(0) as u64,
        newest_event: rows.micros("newest_event")?[0],
        newest_ingestion: rows.micros("newest_ingestion")?[0],
    })
}

async fn distinct(session: &ReadSession, sql: &str) -> Result<BTreeSet<String>, Error> {
    Ok(Rows::query(session, sql).await?.text("v")?.into_iter().flatten().collect())
}

fn unknown(what: &str, asked: &[String], known: &BTreeSet<String>) -> Result<(), Error> {
    let missing: Vec<&String> = asked.iter().filter(|s| !known.contains(*s)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names = |it: &mut dyn Iterator<Item = &String>| it.map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let mut shown: Vec<&String> = known.iter().take(20).collect();
    let more = known.len().saturating_sub(shown.len());
    let mut known_text = names(&mut shown.drain(..));
    if more > 0 {
        known_text.push_str(&format!(" and {more} more"));
    }
    Err(Error::Input(format!(
        "unknown {what} {}: the data has {}",
        names(&mut missing.into_iter()),
        if known.is_empty() { "none".into() } else { known_text }
    )))
}

/// The services the request names (by `--service` and `--team`), checked
/// against the log; empty when it names none (all services).
async fn selection(session: &ReadSession, req: &Request) -> Result<Vec<String>, Error> {
    let environments = distinct(session, "SELECT DISTINCT environment AS v FROM events").await?;
    unknown("environment", std::slice::from_ref(&req.environment), &environments)?;
    let services = distinct(session, "SELECT DISTINCT service AS v FROM events").await?;
    unknown("service", &req.services, &services)?;
    let mut selected: BTreeSet<String> = req.services.iter().cloned().collect();
    if !req.teams.is_empty() {
        let teams = distinct(session, "SELECT DISTINCT team AS v FROM events").await?;
        unknown("team", &req.teams, &teams)?;
        let sql = format!("SELECT DISTINCT service AS v FROM events WHERE team IN ({})", list(&req.teams));
        let of_teams = distinct(session, &sql).await?;
        selected = if req.services.is_empty() { of_teams } else { &selected & &of_teams };
        if selected.is_empty() {
            return Err(Error::Input("no service is both in --service and of --team".into()));
        }
    }
    Ok(selected.into_iter().collect())
}

/// One source table's aggregates: which metrics it gives and the SQL of
/// each (over `src`, grouped by service/period/bucket).
struct Source {
    table: &'static str,
    time: &'static str,
    filter: &'static str,
    /// (metric, value expression, sample count expression, tier expression)
    metrics: Vec<(Metric, String, String, Option<String>)>,
}

fn sources(grain: Grain, periods: &Periods) -> [Source; 3] {
    let (current_days, previous_days) = (periods.current.days(), periods.previous.days());
    // Period rows: deployments ÷ days of the period; bucket rows:
    // deployment_frequency over the bucket.
    let per_day = format!(
        "CASE WHEN period = 'current' THEN count(*) / {current_days:.1} WHEN period = 'previous' \
         THEN count(*) / {previous_days:.1} ELSE deployment_frequency(t, '{grain}') END"
    );
    let epoch = |e: &str| format!("extract(epoch FROM {e})");
    let tier = |m: &str, e: &str| Some(format!("dora_tier('{m}', {e})"));
    [
        Source {
            table: "deployments",
            time: "finished_at",
            filter: "status = 'succeeded'",
            metrics: vec![
                (
                    Metric::DeploymentFrequency,
                    per_day.clone(),
                    "count(*)".into(),
                    tier("deployment_frequency", &per_day),
                ),
                (
                    Metric::ChangeFailureRate,
                    "change_failure_rate(failed)".into(),
                    "count(*)".into(),
                    tier("change_failure_rate", "change_failure_rate(failed)"),
                ),
                (
                    Metric::RecoveryTime,
                    epoch("failed_deployment_recovery_time(recovery_time)"),
                    "count(recovery_time)".into(),
                    None,
                ),
                (Metric::ReworkRate, "rework_rate(rework)".into(), "count(*)".into(), None),
            ],
        },
        Source {
            table: "changes",
            time: "deployed_at",
            filter: "true",
            metrics: vec![(
                Metric::LeadTime,
                epoch("lead_time(lead_time)"),
                "count(lead_time)".into(),
                tier("lead_time", "lead_time(lead_time)"),
            )],
        },
        Source {
            table: "incidents",
            time: "resolved_at",
            filter: "true",
            metrics: vec![(
                Metric::TimeToRestore,
                epoch("time_to_restore(restore_time)"),
                "count(restore_time)".into(),
                tier("time_to_restore", "time_to_restore(restore_time)"),
            )],
        },
    ]
}

/// Reads the whole DORA report's data.
pub async fn load(session: &ReadSession, req: &Request, snapshot: Snapshot) -> Result<DoraData, Error> {
    let selected = selection(session, req).await?;
    let newest = snapshot.newest_event.unwrap_or_default();
    let periods = Periods::new(req.grain, req.from, req.to, newest)?;
    let grain = req.grain;
    let buckets = periods.all_buckets();
    let service_filter =
        if selected.is_empty() { String::new() } else { format!(" AND service IN ({})", list(&selected)) };
    let env = quote(&req.environment);

    // Each service's trend: the dora_metrics rows.
    let sql = format!(
        "SELECT service, bucket_start, deployments, deployment_frequency, extract(epoch FROM lead_time_p50) AS lead_time_p50, \
         change_failure_rate, extract(epoch FROM time_to_restore_p50) AS time_to_restore_p50, \
         extract(epoch FROM failed_deployment_recovery_p50) AS failed_deployment_recovery_p50, rework_rate \
         FROM dora_metrics('{grain}', {}, {}) WHERE environment = {env}{service_filter} ORDER BY service, bucket_start",
        ts(periods.previous.start),
        ts(periods.current.last()),
    );
    let rows = Rows::query(session, &sql).await?;
    let (names, starts, deployments) = (rows.text("service")?, rows.micros("bucket_start")?, rows.int("deployments")?);
    let columns: Vec<Vec<Option<f64>>> = Metric::ALL.iter().map(|m| rows.float(m.key())).collect::<Result<_, _>>()?;
    let mut trends: BTreeMap<String, Trend> = BTreeMap::new();
    for i in 0..rows.len() {
        let (Some(name), Some(start)) = (&names[i], starts[i]) else { continue };
        let Some(b) = buckets.iter().position(|s| *s == start) else { continue };
        let trend = trends.entry(name.clone()).or_insert_with(|| empty_trend(Some(name.clone()), buckets.len()));
        trend.deployments[b] = deployments[i].unwrap_or(0) as u64;
        for (m, col) in columns.iter().enumerate() {
            trend.values[b][m] = col[i];
        }
    }
    // Services asked for but without rows in this environment still get a line.
    for s in &selected {
        trends.entry(s.clone()).or_insert_with(|| empty_trend(Some(s.clone()), buckets.len()));
    }

    // The periods (per service and rolled up) and the roll-up's trend: the
    // DORA aggregate functions, grouped.
    let mut summaries: BTreeMap<Option<String>, Summary> = BTreeMap::new();
    summaries.insert(None, Summary { service: None, current: Measures::default(), previous: Measures::default() });
    for name in trends.keys() {
        summaries.insert(
            Some(name.clone()),
            Summary { service: Some(name.clone()), current: Measures::default(), previous: Measures::default() },
        );
    }
    let mut rollup = empty_trend(None, buckets.len());
    for source in sources(grain, &periods) {
        let mut select = String::new();
        for (m, value, samples, tier) in &source.metrics {
            let k = m.key();
            select.push_str(&format!(
                ", {value} AS {k}, {samples} AS {k}_n, {} AS {k}_tier",
                tier.as_deref().unwrap_or("CAST(NULL AS VARCHAR)")
            ));
        }
        let sql = format!(
            "SELECT service, period, bucket{select} FROM (SELECT *, {time} AS t, \
             CASE WHEN {time} >= {cur} THEN 'current' ELSE 'previous' END AS period, \
             date_trunc('{grain}', {time}) AS bucket FROM {table} \
             WHERE {filter} AND environment = {env}{service_filter} AND {time} >= {start} AND {time} < {end}) src \
             GROUP BY GROUPING SETS ((service, period), (period), (bucket))",
            time = source.time,
            table = source.table,
            filter = source.filter,
            cur = ts(periods.current.start),
            start = ts(periods.previous.start),
            end = ts(periods.current.end),
        );
        let rows = Rows::query(session, &sql).await?;
        let (service, period, bucket) = (rows.text("service")?, rows.text("period")?, rows.micros("bucket")?);
        for (m, ..) in &source.metrics {
            let k = m.key();
            let (values, samples, tiers) =
                (rows.float(k)?, rows.int(&format!("{k}_n"))?, rows.text(&format!("{k}_tier"))?);
            let at = index(*m);
            for i in 0..rows.len() {
                if let Some(b) = bucket[i] {
                    if let Some(b) = buckets.iter().position(|s| *s == b) {
                        rollup.values[b][at] = values[i];
                        if *m == Metric::DeploymentFrequency {
                            rollup.deployments[b] = samples[i].unwrap_or(0) as u64;
                        }
                    }
                    continue;
                }
                let Some(summary) = summaries.get_mut(&service[i]) else { continue };
                let measures = match period[i].as_deref() {
                    Some("current") => &mut summary.current,
                    Some("previous") => &mut summary.previous,
                    _ => continue,
                };
                measures.values[at] = values[i];
                measures.samples[at] = samples[i].unwrap_or(0) as u64;
                measures.tiers[at] = tiers[i].clone();
            }
        }
    }
    // No deployment in a period: frequency 0 (like dora_metrics' empty
    // buckets), rates missing.
    let freq = index(Metric::DeploymentFrequency);
    for s in summaries.values_mut() {
        for m in [&mut s.current, &mut s.previous] {
            m.values[freq].get_or_insert(0.0);
        }
    }
    for v in &mut rollup.values {
        v[freq].get_or_insert(0.0);
    }

    let quality_rows = Rows::query(session, "SELECT * FROM dora_quality").await?;
    let mut quality = Vec::new();
    for field in quality_rows.0.schema().fields() {
        quality.push((field.name().clone(), quality_rows.int(field.name())?[0].unwrap_or(0)));
    }

    let mut all_trends = vec![rollup];
    all_trends.extend(trends.into_values());
    Ok(DoraData {
        snapshot,
        environment: req.environment.clone(),
        selected,
        teams: req.teams.clone(),
        periods,
        summaries: summaries.into_values().collect(),
        trends: all_trends,
        quality,
    })
}

fn empty_trend(service: Option<String>, n: usize) -> Trend {
    Trend { service, deployments: vec![0; n], values: vec![Default::default(); n] }
}
