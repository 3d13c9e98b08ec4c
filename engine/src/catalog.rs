//! The SQL catalog: DataFusion tables over a snapshot of the log, and the
//! session settings that choose which snapshot (`leadline.as_of`) and how
//! incidents are attributed (`leadline.attribution_window`).
//!
//! Tables resolve the snapshot when a query is planned, never at
//! registration, so one `SessionContext` serves a log that keeps growing and
//! every `SET leadline.…` takes effect on the next statement.

use std::any::Any;
use std::sync::{Arc, RwLock};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::{DataFusionError, Result as DfResult, plan_err};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableProviderFilterPushDown, TableType, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;

use crate::event::{UTC, events_schema, parse_timestamp, rejected_schema};
use crate::log::delta::AddFile;
use crate::log::{EventLog, Snapshot};

/// Default `leadline.attribution_window` (SPEC §2).
pub const DEFAULT_ATTRIBUTION_WINDOW: &str = "24 hours";

/// `SET leadline.as_of` / `SET leadline.attribution_window`, validated when set.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadlineOptions {
    /// Ingestion time to read the log as of (µs UTC); `None` = now.
    pub as_of: Option<i64>,
    /// Inferred attribution window in µs; `None` = unbounded.
    pub attribution_window: Option<i64>,
    as_of_text: String,
    window_text: String,
}

impl Default for LeadlineOptions {
    fn default() -> Self {
        Self {
            as_of: None,
            attribution_window: Some(24 * 3_600_000_000),
            as_of_text: String::new(),
            window_text: DEFAULT_ATTRIBUTION_WINDOW.into(),
        }
    }
}

impl LeadlineOptions {
    /// The options a session has (defaults if it never set any).
    pub fn of(state: &dyn Session) -> LeadlineOptions {
        state.config_options().extensions.get::<LeadlineOptions>().cloned().unwrap_or_default()
    }
}

impl ConfigExtension for LeadlineOptions {
    const PREFIX: &'static str = "leadline";
}

impl ExtensionOptions for LeadlineOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }
    fn set(&mut self, key: &str, value: &str) -> DfResult<()> {
        let value = value.trim();
        match key {
            "as_of" => {
                if value.is_empty() || value.eq_ignore_ascii_case("now") || value.eq_ignore_ascii_case("default") {
                    self.as_of = None;
                    self.as_of_text.clear();
                } else {
                    self.as_of = Some(parse_timestamp("leadline.as_of", value).map_err(DataFusionError::Plan)?);
                    self.as_of_text = value.to_string();
                }
            }
            "attribution_window" => {
                if value.eq_ignore_ascii_case("default") {
                    *self = Self { as_of: self.as_of, as_of_text: self.as_of_text.clone(), ..Self::default() };
                } else if value.eq_ignore_ascii_case("unbounded") {
                    self.attribution_window = None;
                    self.window_text = "unbounded".into();
                } else {
                    self.attribution_window = Some(parse_interval_micros(value)?);
                    self.window_text = value.to_string();
                }
            }
            _ => {
                return plan_err!(
                    "unrecognized configuration parameter \"leadline.{key}\" (leadline has as_of and attribution_window)"
                );
            }
        }
        Ok(())
    }
    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: "leadline.as_of".into(),
                value: (!self.as_of_text.is_empty()).then(|| self.as_of_text.clone()),
                description: "Read every table and metric as the log was at this ingestion time (unset: now)",
            },
            ConfigEntry {
                key: "leadline.attribution_window".into(),
                value: Some(self.window_text.clone()),
                description: "How long before an incident a deployment may be inferred as its cause ('unbounded' for no limit)",
            },
        ]
    }
}

/// Parses a non-negative interval like `24 hours`, `90 minutes`, `1 day 02:00:00`
/// (PostgreSQL's style), into µs.
pub fn parse_interval_micros(text: &str) -> DfResult<i64> {
    let bad = || {
        DataFusionError::Plan(format!("invalid interval '{text}': write e.g. '24 hours', '90 minutes' or 'unbounded'"))
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    if parts.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut i = 0;
    while i < parts.len() {
        // `HH:MM:SS` on its own.
        if parts[i].contains(':') {
            let hms: Vec<&str> = parts[i].split(':').collect();
            let [h, m, s] = hms.as_slice() else { return Err(bad()) };
            let h: i64 = h.parse().map_err(|_| bad())?;
            let m: i64 = m.parse().map_err(|_| bad())?;
            let s: f64 = s.parse().map_err(|_| bad())?;
            total += h * 3_600_000_000 + m * 60_000_000 + (s * 1e6).round() as i64;
            i += 1;
            continue;
        }
        let n: f64 = parts[i].parse().map_err(|_| bad())?;
        let unit = parts.get(i + 1).ok_or_else(bad)?.to_ascii_lowercase();
        let micros = match unit.as_str() {
            "us" | "microsecond" | "microseconds" => 1.0,
            "ms" | "millisecond" | "milliseconds" => 1e3,
            "s" | "sec" | "secs" | "second" | "seconds" => 1e6,
            "m" | "min" | "mins" | "minute" | "minutes" => 60e6,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600e6,
            "d" | "day" | "days" => 86_400e6,
            "w" | "week" | "weeks" => 7.0 * 86_400e6,
            _ => return Err(bad()),
        };
        total += (n * micros).round() as i64;
        i += 2;
    }
    if total < 0 {
        return Err(DataFusionError::Plan(format!("the attribution window must not be negative: '{text}'")));
    }
    Ok(total)
}

/// The snapshot a session's statements read: pinned per statement by
/// [`Catalog::refresh`], so that all tables of one query agree.
#[derive(Debug)]
pub struct Catalog {
    log: Arc<EventLog>,
    pinned: RwLock<Arc<Snapshot>>,
}

impl Catalog {
    pub fn new(log: Arc<EventLog>) -> crate::error::Result<Arc<Self>> {
        let snap = log.snapshot()?;
        Ok(Arc::new(Self { log, pinned: RwLock::new(Arc::new(snap)) }))
    }

    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }

    /// Re-reads the log (only what is new); call before each statement.
    pub fn refresh(&self) -> crate::error::Result<Arc<Snapshot>> {
        let snap = Arc::new(self.log.snapshot()?);
        if let Ok(mut p) = self.pinned.write() {
            *p = snap.clone();
        }
        Ok(snap)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.pinned.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A session configuration that knows the `leadline.*` settings.
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(true);
    config.options_mut().extensions.insert(LeadlineOptions::default());
    config
}

/// A session over a data directory with every leadline table and function;
/// `config` comes from [`session_config`].
pub fn session(catalog: Arc<Catalog>, config: SessionConfig) -> DfResult<SessionContext> {
    let ctx = SessionContext::new_with_config(config);
    leadline_udfs::register_all(&ctx);
    ctx.register_table("events", Arc::new(LogTable { catalog: catalog.clone(), kind: LogTableKind::Events }))?;
    ctx.register_table(
        "rejected_events",
        Arc::new(LogTable { catalog: catalog.clone(), kind: LogTableKind::Rejected }),
    )?;
    crate::project::register(&ctx, catalog)?;
    Ok(ctx)
}

/// `ctx` with a memory pool of `limit` bytes for its queries, without
/// spilling: a query over the limit fails (SQLSTATE 53200 over the wire).
pub fn with_memory_limit(ctx: SessionContext, limit: usize) -> DfResult<SessionContext> {
    use datafusion::execution::SessionStateBuilder;
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(limit)))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .build_arc()?;
    Ok(SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(ctx.state()).with_runtime_env(runtime).build(),
    ))
}

#[derive(Debug, Clone, Copy)]
enum LogTableKind {
    Events,
    Rejected,
}

/// `events` or `rejected_events`: the Parquet files of the pinned snapshot,
/// less what was ingested after `leadline.as_of`.
#[derive(Debug)]
struct LogTable {
    catalog: Arc<Catalog>,
    kind: LogTableKind,
}

#[async_trait]
impl TableProvider for LogTable {
    fn schema(&self) -> SchemaRef {
        match self.kind {
            LogTableKind::Events => events_schema(),
            LogTableKind::Rejected => rejected_schema(),
        }
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let snap = self.catalog.snapshot();
        let (root, files, time_column) = match self.kind {
            LogTableKind::Events => (snap.events_root(), &snap.event_files, "ingested_at"),
            LogTableKind::Rejected => (snap.rejected_root(), &snap.rejected_files, "rejected_at"),
        };
        let as_of = LeadlineOptions::of(state).as_of;
        let mut filters = filters.to_vec();
        if let Some(t) = as_of {
            filters.push(col(time_column).lt_eq(lit(ScalarValue::TimestampMicrosecond(Some(t), Some(UTC.into())))));
        }
        scan_files(state, &root, files, self.schema(), projection, &filters, limit).await
    }
}

/// Scans Parquet files of one table, applying `filters` exactly.
pub async fn scan_files(
    state: &dyn Session,
    root: &std::path::Path,
    files: &[AddFile],
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if files.is_empty() {
        return empty(schema, projection);
    }
    finish_scan(state, listing_plan(root, files, schema.clone())?, &schema, projection, filters, limit).await
}

/// An exec of no rows with the projected `schema`.
pub fn empty(schema: SchemaRef, projection: Option<&Vec<usize>>) -> DfResult<Arc<dyn ExecutionPlan>> {
    let projected = match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => schema,
    };
    Ok(Arc::new(EmptyExec::new(projected)))
}

/// A plan reading Parquet `files` (relative to `root`) of `file_schema`.
pub fn listing_plan(root: &std::path::Path, files: &[AddFile], file_schema: SchemaRef) -> DfResult<LogicalPlanBuilder> {
    let urls = files
        .iter()
        .map(|f| ListingTableUrl::parse(root.join(&f.path).to_string_lossy()))
        .collect::<DfResult<Vec<_>>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(file_schema);
    let listing = Arc::new(ListingTable::try_new(config)?);
    LogicalPlanBuilder::scan("t", provider_as_source(listing), None)
}

/// Applies a table scan's filters, projection and limit to `plan`, whose
/// columns are those of `schema`, and plans it.
pub async fn finish_scan(
    state: &dyn Session,
    mut plan: LogicalPlanBuilder,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(f) = filters.iter().cloned().reduce(Expr::and) {
        plan = plan.filter(f)?;
    }
    if let Some(p) = projection {
        plan = plan.project(p.iter().map(|&i| col(schema.field(i).name())))?;
    }
    if let Some(n) = limit {
        plan = plan.limit(0, Some(n))?;
    }
    state.create_physical_plan(&plan.build()?).await
}
