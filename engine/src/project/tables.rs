//! The projections as SQL: tables `deployments`, `changes`, `incidents`,
//! `dora_quality`, and the table functions `dora_metrics(grain [, from, to])`
//! and `dora_quality()`. Each resolves the session's snapshot, `as_of` and
//! attribution window when the query is planned.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, IntervalMonthDayNanoBuilder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use leadline_udfs::{Grain, nanos_to_interval};

use super::{Projected, metrics, projected};
use crate::catalog::{Catalog, LeadlineOptions};
use crate::event::{UTC, change_ids_item};
use crate::log::Snapshot;

/// Registers every projection table and function on `ctx`.
pub fn register(ctx: &SessionContext, catalog: Arc<Catalog>) -> DfResult<()> {
    for kind in
        [Kind::Table(Table::Deployments), Kind::Table(Table::Changes), Kind::Table(Table::Incidents), Kind::Quality]
    {
        ctx.register_table(kind.name(), Arc::new(ProjectionTable { catalog: catalog.clone(), kind }))?;
    }
    ctx.register_udtf("dora_metrics", Arc::new(DoraMetricsFunction { catalog: catalog.clone() }));
    ctx.register_udtf("dora_quality", Arc::new(QualityFunction { catalog }));
    Ok(())
}

/// The projections that are tables of rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Table {
    Deployments,
    Changes,
    Incidents,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Deployments => "deployments",
            Table::Changes => "changes",
            Table::Incidents => "incidents",
        }
    }

    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Deployments => deployments_schema(),
            Table::Changes => changes_schema(),
            Table::Incidents => incidents_schema(),
        }
    }
}

/// The rows of `table` in `p`.
pub fn table_batch(table: Table, p: &Projected) -> crate::Result<RecordBatch> {
    match table {
        Table::Deployments => deployments_batch(p),
        Table::Changes => changes_batch(p),
        Table::Incidents => incidents_batch(p),
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

    /// Computed in memory from `p`: the path for `as_of` and windows other
    /// than the read model's.
    fn batch(self, p: &Projected, snap: &Snapshot, as_of: Option<i64>) -> crate::Result<RecordBatch> {
        match self {
            Kind::Table(t) => table_batch(t, p),
            Kind::Quality => metrics::dora_quality(metrics::ProjectedCounts::of(p), snap, as_of),
            Kind::Metrics { grain, from, to } => {
                metrics::dora_metrics(&[metrics::metric_rows(p, grain)?], &p.pairs, p.span, grain, from, to)
            }
        }
    }
}

#[derive(Debug)]
struct ProjectionTable {
    catalog: Arc<Catalog>,
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
        let snap = self.catalog.snapshot();
        // The read model holds the projections of the latest log under the
        // default attribution window; anything else folds in memory.
        if options.as_of.is_none() && options.attribution_window == LeadlineOptions::default().attribution_window {
            match crate::model::current(&snap, options.attribution_window) {
                Ok(m) => {
                    let batch = match self.kind {
                        Kind::Table(t) => return m.scan(state, &snap.root, t, projection, filters, limit).await,
                        Kind::Quality => metrics::dora_quality(m.counts(), &snap, None)?,
                        Kind::Metrics { grain, from, to } => m.dora_metrics(&snap.root, grain, from, to)?,
                    };
                    return Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?);
                }
                Err(e) => tracing::warn!(error = %e, "the read model is unavailable; folding the log in memory"),
            }
        }
        let p = projected(&snap, options.as_of, options.attribution_window)?;
        let batch = self.kind.batch(&p, &snap, options.as_of)?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?)
    }
}

/// `dora_metrics(grain [, from [, to]])`.
#[derive(Debug)]
struct DoraMetricsFunction {
    catalog: Arc<Catalog>,
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
        Ok(Arc::new(ProjectionTable { catalog: self.catalog.clone(), kind: Kind::Metrics { grain, from, to } }))
    }
}

/// `dora_quality()`: the same as the table.
#[derive(Debug)]
struct QualityFunction {
    catalog: Arc<Catalog>,
}

impl TableFunctionImpl for QualityFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("dora_quality takes no arguments");
        }
        Ok(Arc::new(ProjectionTable { catalog: self.catalog.clone(), kind: Kind::Quality }))
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

fn ts_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), nullable)
}

fn interval_field(name: &str) -> Field {
    Field::new(name, DataType::Interval(IntervalUnit::MonthDayNano), true)
}

fn deployments_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("deployment_id", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("environment", DataType::Utf8, false),
            ts_field("started_at", true),
            ts_field("finished_at", true),
            Field::new("status", DataType::Utf8, false),
            Field::new("commit_sha", DataType::Utf8, true),
            Field::new("change_ids", DataType::List(change_ids_item()), true),
            Field::new("rolled_back", DataType::Boolean, false),
            Field::new("failed", DataType::Boolean, true),
            interval_field("recovery_time"),
            Field::new("team", DataType::Utf8, true),
        ]))
    });
    S.clone()
}

fn changes_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("commit_sha", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("environment", DataType::Utf8, false),
            ts_field("committed_at", true),
            Field::new("deployment_id", DataType::Utf8, false),
            ts_field("deployed_at", false),
            interval_field("lead_time"),
            Field::new("team", DataType::Utf8, true),
        ]))
    });
    S.clone()
}

fn incidents_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("incident_id", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("environment", DataType::Utf8, false),
            ts_field("opened_at", false),
            ts_field("resolved_at", true),
            interval_field("restore_time"),
            Field::new("deployment_id", DataType::Utf8, true),
            Field::new("attribution", DataType::Utf8, true),
            Field::new("team", DataType::Utf8, true),
        ]))
    });
    S.clone()
}

fn ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone(UTC)
}

fn micros_interval(us: Option<i64>) -> Option<arrow::datatypes::IntervalMonthDayNano> {
    us.map(|u| nanos_to_interval(u.saturating_mul(1000)))
}

fn deployments_batch(p: &Projected) -> crate::Result<RecordBatch> {
    let (mut id, mut svc, mut env, mut started, mut finished, mut status, mut sha) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        ts(),
        ts(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut changes = ListBuilder::new(StringBuilder::new()).with_field(change_ids_item());
    let (mut rolled, mut failed, mut recovery, mut team) =
        (BooleanBuilder::new(), BooleanBuilder::new(), IntervalMonthDayNanoBuilder::new(), StringBuilder::new());
    for d in &p.deployments {
        id.append_value(&d.deployment_id);
        svc.append_value(&d.service);
        env.append_value(&d.environment);
        started.append_option(d.started_at);
        finished.append_option(d.finished_at);
        status.append_value(d.status.as_str());
        sha.append_option(d.commit_sha.as_deref());
        match &d.change_ids {
            Some(ids) => {
                ids.iter().for_each(|i| changes.values().append_value(i));
                changes.append(true);
            }
            None => changes.append(false),
        }
        rolled.append_value(d.rolled_back);
        failed.append_option(d.failed);
        recovery.append_option(micros_interval(d.recovery_time));
        team.append_option(d.team.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(svc.finish()),
        Arc::new(env.finish()),
        Arc::new(started.finish()),
        Arc::new(finished.finish()),
        Arc::new(status.finish()),
        Arc::new(sha.finish()),
        Arc::new(changes.finish()),
        Arc::new(rolled.finish()),
        Arc::new(failed.finish()),
        Arc::new(recovery.finish()),
        Arc::new(team.finish()),
    ];
    Ok(RecordBatch::try_new(deployments_schema(), columns)?)
}

fn changes_batch(p: &Projected) -> crate::Result<RecordBatch> {
    let (mut sha, mut svc, mut env, mut committed, mut dep, mut deployed, mut lead, mut team) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        ts(),
        StringBuilder::new(),
        ts(),
        IntervalMonthDayNanoBuilder::new(),
        StringBuilder::new(),
    );
    for c in &p.changes {
        sha.append_value(&c.commit_sha);
        svc.append_value(&c.service);
        env.append_value(&c.environment);
        committed.append_option(c.committed_at);
        dep.append_value(&c.deployment_id);
        deployed.append_value(c.deployed_at);
        // Negative lead times are excluded from every statistic: NULL here too.
        lead.append_option(micros_interval(c.lead_time()));
        team.append_option(c.team.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(sha.finish()),
        Arc::new(svc.finish()),
        Arc::new(env.finish()),
        Arc::new(committed.finish()),
        Arc::new(dep.finish()),
        Arc::new(deployed.finish()),
        Arc::new(lead.finish()),
        Arc::new(team.finish()),
    ];
    Ok(RecordBatch::try_new(changes_schema(), columns)?)
}

fn incidents_batch(p: &Projected) -> crate::Result<RecordBatch> {
    let (mut id, mut svc, mut env, mut opened, mut resolved, mut restore, mut dep, mut attr, mut team) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        ts(),
        ts(),
        IntervalMonthDayNanoBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for i in &p.incidents {
        id.append_value(&i.incident_id);
        svc.append_value(&i.service);
        env.append_value(&i.environment);
        opened.append_value(i.opened_at);
        resolved.append_option(i.resolved_at);
        restore.append_option(micros_interval(i.restore_time()));
        dep.append_option(i.deployment_id.as_deref());
        attr.append_option(i.attribution.map(|a| a.as_str()));
        team.append_option(i.team.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(svc.finish()),
        Arc::new(env.finish()),
        Arc::new(opened.finish()),
        Arc::new(resolved.finish()),
        Arc::new(restore.finish()),
        Arc::new(dep.finish()),
        Arc::new(attr.finish()),
        Arc::new(team.finish()),
    ];
    Ok(RecordBatch::try_new(incidents_schema(), columns)?)
}
