//! The tables and table functions a session sees: `events` and
//! `rejected_events` (the log's files), `deployments`, `changes`,
//! `incidents`, `dora_quality` and `dora_metrics(grain [, from, to])`. Each
//! reads the view its session pinned, with the session's `as_of` and
//! attribution window, resolved when the query is planned.

use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableProviderFilterPushDown, TableType, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::SessionContext;
use leadline_udfs::Grain;

use super::damage::{NameDamageExec, ScannedFile, explain, is_read_error};
use super::grid::{Grid, MetricGridExec};
use super::pushdown::{KeyFilter, SpanFilter};
use super::{Catalog, LeadlineOptions, View, blocking};
use crate::event::{UTC, events_schema, rejected_schema};
use crate::log::Snapshot;
use crate::log::files::{log_file_affects, parquet_plan};
use crate::metrics;
use crate::project::tables::Table;
use crate::readmodel::{self, Bounds, EpochRef, Part, ReadModel, Refolded};

/// Registers every table and function on `ctx`, reading `pinned`.
pub(super) fn register(ctx: &SessionContext, catalog: Arc<Catalog>, pinned: Arc<RwLock<View>>) -> DfResult<()> {
    for kind in [LogTableKind::Events, LogTableKind::Rejected] {
        ctx.register_table(kind.name(), Arc::new(LogTable { catalog: catalog.clone(), pinned: pinned.clone(), kind }))?;
    }
    let reader = Reader { catalog, pinned };
    for kind in
        [Kind::Table(Table::Deployments), Kind::Table(Table::Changes), Kind::Table(Table::Incidents), Kind::Quality]
    {
        ctx.register_table(kind.name(), Arc::new(ProjectionTable { reader: reader.clone(), kind }))?;
    }
    ctx.register_udtf("dora_metrics", Arc::new(DoraMetricsFunction { reader: reader.clone() }));
    ctx.register_udtf("dora_quality", Arc::new(QualityFunction { reader }));
    Ok(())
}

/// What the projection tables read: the catalog (for its caches) and the
/// session's pinned view.
#[derive(Debug, Clone)]
struct Reader {
    catalog: Arc<Catalog>,
    pinned: Arc<RwLock<View>>,
}

impl Reader {
    fn view(&self) -> View {
        self.pinned.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Table(Table),
    Quality,
    Metrics { grain: Grain, from: Option<i64>, to: Option<i64> },
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Table(t) => t.name(),
            Kind::Quality => "dora_quality",
            Kind::Metrics { .. } => "dora_metrics",
        }
    }

    fn schema(self) -> SchemaRef {
        match self {
            Kind::Table(t) => t.schema(),
            Kind::Quality => metrics::quality_schema(),
            Kind::Metrics { .. } => metrics::dora_metrics_schema(),
        }
    }

    /// The part of the read model it reads, if any.
    fn part(self) -> Option<Part> {
        match self {
            Kind::Table(t) => Some(Part::Rows(t)),
            Kind::Quality => None,
            Kind::Metrics { grain, .. } => Some(Part::Metrics(grain)),
        }
    }

    /// Its rows from projections folded for the query (`as_of`, or windows
    /// other than the read model's), whose parts are `[self.part()]`;
    /// `dora_metrics` builds only the grid of the pairs and buckets `keys` keep.
    fn batches(
        self,
        r: &Refolded,
        snap: &Snapshot,
        as_of: Option<i64>,
        keys: &Keys,
    ) -> crate::Result<Vec<RecordBatch>> {
        let rows = r.parts.first().map(Vec::as_slice).unwrap_or_default();
        match self {
            Kind::Table(_) => Ok(rows.to_vec()),
            Kind::Quality => Ok(vec![metrics::dora_quality(r.counts, snap, as_of)?]),
            Kind::Metrics { grain, from, to } => {
                let pairs: Vec<(&str, &str)> = r.pairs.iter().map(|(s, e)| (s.as_str(), e.as_str())).collect();
                let kept = keys.pairs.pairs(pairs.iter().copied());
                let pairs: Vec<(&str, &str)> =
                    pairs.into_iter().zip(kept).filter_map(|(p, k)| k.then_some(p)).collect();
                let starts = keys.starts.starts(&metrics::grid_starts(r.span, grain, from, to)?);
                Ok(vec![metrics::metric_grid(rows, &pairs, &starts, grain)?])
            }
        }
    }
}

#[derive(Debug)]
struct ProjectionTable {
    reader: Reader,
    kind: Kind,
}

#[async_trait]
impl TableProvider for ProjectionTable {
    fn schema(&self) -> SchemaRef {
        self.kind.schema()
    }
    fn table_type(&self) -> TableType {
        TableType::View
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
        let options = LeadlineOptions::of(state);
        let view = self.reader.view();
        let kind = self.kind;
        // The read model holds the projections of its log version under its
        // window; anything else is folded (from the model's input segments
        // when there is one).
        let stored = view.model.clone().filter(|m| options.as_of.is_none() && m.window() == options.attribution_window);
        let snapshot = view.snapshot.clone();
        let batches = match stored {
            Some(m) => match kind {
                Kind::Table(t) => {
                    // Only the components with a service and a team the
                    // filters keep, and of those the epochs within their times.
                    let index = m.index();
                    let schema = t.schema();
                    let by_service = KeyFilter::new(state, filters, &schema, &["service"]);
                    let by_team = KeyFilter::new(state, filters, &schema, &["team"]);
                    let part = Part::Rows(t);
                    let by_time = SpanFilter::new(state, filters, &schema, readmodel::bounded_columns(part));
                    let service_kept = |i: usize| by_service.services(&index.services[i]).contains(&true);
                    let team_kept = |i: usize| index.teams[i].as_ref().is_none_or(|t| by_team.teams(t));
                    let components = (0..index.services.len()).filter(|&i| service_kept(i) && team_kept(i));
                    let (epochs, bounds): (Vec<_>, Vec<_>) = index.epochs_of(part, components).into_iter().unzip();
                    let kept = by_time.keeps(&bounds);
                    let which: Vec<EpochRef> =
                        epochs.into_iter().zip(kept).filter_map(|(epoch, keep)| keep.then_some(epoch)).collect();
                    let files = ScannedFile::of_model(m.table_files(t, &which));
                    return match m.table_plan(t, &which)? {
                        Some(plan) => {
                            let catalog = self.reader.catalog.clone();
                            finish_scan(state, &catalog, plan, &schema, projection, filters, limit, files).await
                        }
                        None => empty(schema, projection),
                    };
                }
                Kind::Quality => vec![blocking(move || metrics::dora_quality(m.counts(), &snapshot, None)).await?],
                Kind::Metrics { grain, from, to } => {
                    let catalog = self.reader.catalog.clone();
                    return metrics_scan(state, &catalog, &m, grain, (from, to), projection, filters).await;
                }
            },
            None => {
                let catalog = self.reader.catalog.clone();
                let keys = Keys::new(state, filters);
                blocking(move || {
                    let (as_of, window) = (options.as_of, options.attribution_window);
                    let r = catalog.refolded(&view, as_of, window, kind.part())?;
                    kind.batches(&r, &view.snapshot, as_of, &keys)
                })
                .await?
            }
        };
        Ok(MemorySourceConfig::try_new_exec(&[batches], self.schema(), projection.cloned())?)
    }
}

/// The filters of a `dora_metrics` scan over its key columns.
#[derive(Debug, Default)]
struct Keys {
    pairs: KeyFilter,
    starts: KeyFilter,
}

impl Keys {
    fn new(state: &dyn Session, filters: &[Expr]) -> Self {
        let schema = metrics::dora_metrics_schema();
        Keys {
            pairs: KeyFilter::new(state, filters, &schema, &["service", "environment"]),
            starts: KeyFilter::new(state, filters, &schema, &["bucket_start"]),
        }
    }
}

/// From how many components a `dora_metrics` scan filters the stored rows
/// it reads to the grid's pairs and buckets before collecting them.
const FILTERED_FROM_COMPONENTS: usize = 16;

/// `dora_metrics(grain, from, to)` from the read model `m`: the stored rows
/// of only the components holding a pair the filters keep, laid on the grid
/// of the pairs and buckets the filters keep.
async fn metrics_scan(
    state: &dyn Session,
    catalog: &Arc<Catalog>,
    m: &ReadModel,
    grain: Grain,
    (from, to): (Option<i64>, Option<i64>),
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let keys = Keys::new(state, filters);
    let index = m.index();
    let all_starts = metrics::grid_starts(index.span, grain, from, to)?;
    let starts = keys.starts.starts(&all_starts);
    let kept = keys.pairs.pairs(index.pairs.iter().map(|((s, e), _)| (s.as_str(), e.as_str())));
    let mut pairs = Vec::new();
    let mut components = std::collections::BTreeSet::new();
    if !starts.is_empty() {
        for (((s, e), holders), keep) in index.pairs.iter().zip(kept) {
            if keep {
                pairs.push((s.clone(), e.clone()));
                components.extend(holders.iter().copied());
            }
        }
    }
    let components: Vec<usize> = components.into_iter().collect();
    let grid = Arc::new(Grid {
        grain,
        all_pairs: index.pairs.len(),
        all_starts: all_starts.len(),
        components: components.len(),
        all_components: index.services.len(),
        pairs,
        starts,
    });
    // Of the kept components, the epochs holding rows of the grid's buckets.
    let part = Part::Metrics(grain);
    let within = |(lo, hi): Bounds| match (grid.starts.first(), grid.starts.last()) {
        (Some(&first), Some(&last)) => lo.is_none_or(|lo| lo <= last) && hi.is_none_or(|hi| hi > first),
        _ => false,
    };
    let epochs: Vec<EpochRef> = index
        .epochs_of(part, components.iter().copied())
        .into_iter()
        .filter_map(|(epoch, bounds)| within(bounds).then_some(epoch))
        .collect();
    let stored = metrics::dora_metrics_schema();
    let input = match m.metrics_plan(grain, &epochs)? {
        Some(plan) => {
            let files = ScannedFile::of_model(m.metrics_files(grain, &epochs));
            // The grid ignores rows outside it: filtering the stored rows
            // only keeps them from being collected. For a panel's few
            // components (hundreds of rows each, one row group per file:
            // nothing to prune) planning the filter costs more than the rows
            // it drops: a third of a filtered panel's CPU (perf, issue 15).
            let mut within = Vec::new();
            if components.len() > FILTERED_FROM_COMPONENTS {
                if let (Some(first), Some(last)) = (grid.starts.first(), grid.starts.last()) {
                    let at = |t: i64| lit(ScalarValue::TimestampMicrosecond(Some(t), Some(UTC.into())));
                    within.push(col("bucket_start").between(at(*first), at(*last)));
                }
                if grid.pairs.len() < grid.all_pairs {
                    let services: std::collections::BTreeSet<&String> = grid.pairs.iter().map(|(s, _)| s).collect();
                    let environments: std::collections::BTreeSet<&String> = grid.pairs.iter().map(|(_, e)| e).collect();
                    within.push(col("service").in_list(services.into_iter().map(|s| lit(s.as_str())).collect(), false));
                    within.push(
                        col("environment").in_list(environments.into_iter().map(|e| lit(e.as_str())).collect(), false),
                    );
                }
            }
            finish_scan(state, catalog, plan, &stored, None, &within, None, files).await?
        }
        None => empty(stored, None)?,
    };
    Ok(MetricGridExec::new(input, grid, projection.cloned())?)
}

/// `dora_metrics(grain [, from [, to]])`.
#[derive(Debug)]
struct DoraMetricsFunction {
    reader: Reader,
}

impl TableFunctionImpl for DoraMetricsFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.is_empty() || exprs.len() > 3 {
            return plan_err!(
                "dora_metrics takes a grain ('day', 'week' or 'month') and optionally from and to timestamps"
            );
        }
        let grain = match constant(args.session(), &exprs[0])? {
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
                s.parse::<Grain>()?
            }
            other => return plan_err!("dora_metrics: the grain must be 'day', 'week' or 'month', got {other}"),
        };
        let bound = |i: usize| -> DfResult<Option<i64>> {
            match exprs.get(i) {
                None => Ok(None),
                Some(e) => timestamp(constant(args.session(), e)?),
            }
        };
        let (from, to) = (bound(1)?, bound(2)?);
        Ok(Arc::new(ProjectionTable { reader: self.reader.clone(), kind: Kind::Metrics { grain, from, to } }))
    }
}

/// `dora_quality()`: the same as the table.
#[derive(Debug)]
struct QualityFunction {
    reader: Reader,
}

impl TableFunctionImpl for QualityFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("dora_quality takes no arguments");
        }
        Ok(Arc::new(ProjectionTable { reader: self.reader.clone(), kind: Kind::Quality }))
    }
}

/// Evaluates a constant argument (a literal, `now() - interval '90 days'`…).
fn constant(session: &dyn Session, expr: &Expr) -> DfResult<ScalarValue> {
    let schema = DFSchema::empty();
    let physical = session.create_physical_expr(expr.clone(), &schema)?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match physical.evaluate(&batch)? {
        datafusion::logical_expr::ColumnarValue::Scalar(s) => Ok(s),
        datafusion::logical_expr::ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
    }
}

/// A bound as µs UTC: a timestamp, a date, or text in either form.
fn timestamp(value: ScalarValue) -> DfResult<Option<i64>> {
    if value.is_null() {
        return Ok(None);
    }
    let target = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
    match value.cast_to(&target) {
        Ok(ScalarValue::TimestampMicrosecond(v, _)) => Ok(v),
        _ => Err(plan_datafusion_err!("dora_metrics: {value} is not a timestamp")),
    }
}

#[derive(Debug, Clone, Copy)]
enum LogTableKind {
    Events,
    Rejected,
}

impl LogTableKind {
    fn name(self) -> &'static str {
        match self {
            LogTableKind::Events => "events",
            LogTableKind::Rejected => "rejected_events",
        }
    }
}

/// `events` or `rejected_events`: the Parquet files of the pinned snapshot,
/// less what was ingested after `leadline.as_of`.
#[derive(Debug)]
struct LogTable {
    catalog: Arc<Catalog>,
    pinned: Arc<RwLock<View>>,
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
        let snap = self.pinned.read().unwrap_or_else(|p| p.into_inner()).snapshot.clone();
        let (root, files, time_column) = match self.kind {
            LogTableKind::Events => (snap.events_root(), &snap.event_files, "ingested_at"),
            LogTableKind::Rejected => (snap.rejected_root(), &snap.rejected_files, "rejected_at"),
        };
        let as_of = LeadlineOptions::of(state).as_of;
        let mut filters = filters.to_vec();
        if let Some(t) = as_of {
            filters.push(col(time_column).lt_eq(lit(ScalarValue::TimestampMicrosecond(Some(t), Some(UTC.into())))));
        }
        let schema = self.schema();
        if files.is_empty() {
            return empty(schema, projection);
        }
        let scanned = files
            .iter()
            .map(|f| ScannedFile {
                path: root.join(&f.path),
                committed: Some(f.clone()),
                checksum: None,
                affects: log_file_affects(&root, f),
            })
            .collect();
        let plan = parquet_plan(files.iter().map(|f| root.join(&f.path)), schema.clone())?;
        finish_scan(state, &self.catalog, plan, &schema, projection, &filters, limit, scanned).await
    }
}

/// An exec of no rows with the projected `schema`.
fn empty(schema: SchemaRef, projection: Option<&Vec<usize>>) -> DfResult<Arc<dyn ExecutionPlan>> {
    let projected = match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => schema,
    };
    Ok(Arc::new(EmptyExec::new(projected)))
}

/// Checks `files` (see [`Catalog::verify`]), applies a table scan's
/// filters, projection and limit to `plan`, whose columns are those of
/// `schema`, and plans it; a read error, planning or running, names the
/// damaged one of `files`.
#[allow(clippy::too_many_arguments)]
async fn finish_scan(
    state: &dyn Session,
    catalog: &Arc<Catalog>,
    mut plan: LogicalPlanBuilder,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
    files: Vec<ScannedFile>,
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
    let files = Arc::new(files);
    let (catalog, checked) = (catalog.clone(), files.clone());
    blocking(move || catalog.verify(&checked)).await?;
    match state.create_physical_plan(&plan.build()?).await {
        Ok(exec) => Ok(NameDamageExec::wrap(exec, files)),
        Err(e) if is_read_error(&e) => {
            let message = e.to_string();
            Err(blocking(move || Ok(explain(&files, e))).await.unwrap_or_else(|_| DataFusionError::Execution(message)))
        }
        Err(e) => Err(e),
    }
}
