//! leadline's reports, a front end over the engine's public API: every
//! number comes from SQL over a [`ReadSession`] (`dora_metrics`, the DORA
//! aggregate functions, `dora_quality`), never from how a table is stored.
//!
//! * [`dora`]: the built-in DORA report of one environment — per service
//!   and rolled up, the five metrics with their tiers, their trend over the
//!   buckets as charts, and the change against the previous period of the
//!   same length, with insights that cite what they rest on.
//! * [`saved`]: any saved query as a table and (with a [`ChartSpec`]) a
//!   chart.
//!
//! Both render as one self-contained HTML file (inline CSS and SVG, no
//! script, no network), Markdown, CSV or JSON, and say whether the data was
//! empty or stale ([`Status`]) so that a cron job can tell.
//!
//! Modules, in the order data flows: `period` and `metric` (what is
//! compared), `data` (the SQL), `insight` (the comparisons), `chart` (SVG),
//! `saved` (saved queries), `render` (the formats); `fmt` formats values.

mod chart;
mod data;
mod fmt;
mod insight;
mod metric;
mod period;
mod render;
mod saved;
pub mod table;

use chrono::{DateTime, TimeDelta, Utc};
use leadline_engine::ReadSession;
pub use leadline_udfs::Grain;

pub use insight::{Comparison, Verdict};
pub use metric::Metric;
pub use period::parse_time;
pub use saved::ChartSpec;

/// A report's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Csv,
    Json,
}

/// What the DORA report covers.
#[derive(Debug, Clone)]
pub struct Request {
    /// `week` or `month`.
    pub grain: Grain,
    pub environment: String,
    /// Only these services (empty: all).
    pub services: Vec<String>,
    /// Only the services whose events name one of these teams.
    pub teams: Vec<String>,
    /// The current period, widened to whole buckets (µs UTC; `to` inclusive).
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// The `leadline.as_of` the session was given, to name it.
    pub as_of: Option<String>,
    pub freshness: Freshness,
}

/// When data is stale: its newest event is older than `max_age` at `now`.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub now: DateTime<Utc>,
    pub max_age: Option<TimeDelta>,
}

/// Whether the report had data to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// No events, or nothing of the selection in the period; says which.
    Empty(String),
    /// The newest event is older than `--stale-after`; says how old.
    Stale(String),
}

/// A rendered report and the state of its data.
#[derive(Debug)]
pub struct Rendered {
    pub body: Vec<u8>,
    pub status: Status,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names something the data does not have, or is malformed.
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("chart: {0}")]
    Chart(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<csv::Error> for Error {
    fn from(e: csv::Error) -> Self {
        Error::Io(std::io::Error::other(e))
    }
}

/// Renders the DORA report. `progress` hears what is being done.
pub async fn dora(
    session: &ReadSession,
    req: &Request,
    format: Format,
    progress: &mut dyn FnMut(&str),
) -> Result<Rendered, Error> {
    if !matches!(req.grain, Grain::Week | Grain::Month) {
        return Err(Error::Input(format!("--grain {} is not supported: week or month", req.grain)));
    }
    progress("reading the snapshot");
    let snapshot = data::snapshot(session, req.as_of.as_deref()).await?;
    if snapshot.events == 0 {
        let status = Status::Empty("the data directory holds no events".into());
        return Ok(Rendered { body: render::nothing(format, &snapshot, &status)?, status });
    }
    progress("querying dora_metrics and the DORA aggregates");
    let data = data::load(session, req, snapshot).await?;
    let rollup = &data.summaries[0];
    let current_incidents = rollup.current.samples[data::index(Metric::TimeToRestore)];
    let status = if rollup.current.deployments() == 0 && current_incidents == 0 {
        Status::Empty(format!(
            "no deployment or resolved incident in {} from {} to {}",
            data.environment,
            fmt::date(data.periods.current.start),
            fmt::date(data.periods.current.end - 1)
        ))
    } else {
        staleness(data.snapshot.newest_event, req.freshness)
    };
    progress("rendering");
    let body = render::dora(format, &data, &status)?;
    Ok(Rendered { body, status })
}

/// Runs the saved query `sql` (from `name`) and renders its result, with a
/// chart when `chart` says which columns to plot.
pub async fn saved(
    session: &ReadSession,
    name: &str,
    sql: &str,
    chart: Option<&ChartSpec>,
    format: Format,
    freshness: Freshness,
    as_of: Option<&str>,
) -> Result<Rendered, Error> {
    let snapshot = data::snapshot(session, as_of).await?;
    let result = saved::run(session, name, sql, chart).await?;
    let status = if snapshot.events == 0 {
        Status::Empty("the data directory holds no events".into())
    } else if result.rows == 0 {
        Status::Empty(format!("{name} returned no rows"))
    } else {
        staleness(snapshot.newest_event, freshness)
    };
    let body = render::saved(format, &snapshot, &result, &status)?;
    Ok(Rendered { body, status })
}

fn staleness(newest: Option<i64>, freshness: Freshness) -> Status {
    let (Some(newest), Some(max)) = (newest, freshness.max_age) else { return Status::Ok };
    let age = TimeDelta::microseconds(freshness.now.timestamp_micros() - newest);
    if age > max {
        Status::Stale(format!(
            "the newest event ({}) is {} old, more than --stale-after {}",
            fmt::utc(newest),
            fmt::duration(age.num_seconds() as f64),
            fmt::duration(max.num_seconds() as f64)
        ))
    } else {
        Status::Ok
    }
}
