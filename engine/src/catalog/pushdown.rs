//! A query's filters applied to the keys of what the read model stores
//! (services, teams, (service, environment) pairs, bucket starts, each
//! epoch's time bounds), so a scan reads only the components and epochs and
//! builds only the `dora_metrics` rows they keep.
//! Each filter is one conjunct of the query's WHERE, applied only to the
//! columns it reads, so what is kept is a superset of the answer; the scan
//! reports its filters as inexact and DataFusion still applies them all.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};

use crate::event::UTC;
use crate::readmodel::Bounds;

/// The conjuncts of `filters` that read only the columns of `schema` (some of
/// the table's, with the table's types), compiled for batches of `schema`.
/// Volatile ones and ones that do not compile are left out: keeping more is
/// always right.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyFilter {
    schema: Option<SchemaRef>,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
}

impl KeyFilter {
    pub(super) fn new(state: &dyn Session, filters: &[Expr], table: &Schema, columns: &[&str]) -> Self {
        let Ok(schema) = table.project(&columns.iter().filter_map(|c| table.index_of(c).ok()).collect::<Vec<_>>())
        else {
            return Self::default();
        };
        let schema = Arc::new(schema);
        let Ok(df_schema) = DFSchema::try_from(schema.as_ref().clone()) else {
            return Self::default();
        };
        let exprs =
            conjuncts_over(filters, columns).into_iter().filter_map(|e| state.create_physical_expr(e, &df_schema).ok());
        let exprs = exprs.collect();
        Self { schema: Some(schema), exprs }
    }

    /// Whether it keeps everything without looking.
    pub(super) fn is_empty(&self) -> bool {
        self.exprs.is_empty()
    }

    /// Which of the rows of `columns` (the columns of its schema, in order)
    /// every filter keeps; a filter that fails to evaluate keeps them all.
    fn kept(&self, columns: Vec<ArrayRef>, rows: usize) -> Vec<bool> {
        let mut keep = vec![true; rows];
        let Some(schema) = &self.schema else { return keep };
        if self.exprs.is_empty() || rows == 0 {
            return keep;
        }
        let Ok(batch) = RecordBatch::try_new(schema.clone(), columns) else { return keep };
        for e in &self.exprs {
            let Ok(mask) = e.evaluate(&batch).and_then(|v| v.into_array(rows)) else { continue };
            let Some(mask) = mask.as_any().downcast_ref::<BooleanArray>() else { continue };
            for (k, i) in keep.iter_mut().zip(0..rows) {
                *k &= mask.is_valid(i) && mask.value(i);
            }
        }
        keep
    }

    /// The pairs a filter over `(service, environment)` keeps.
    pub(super) fn pairs<'a>(&self, pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone) -> Vec<bool> {
        let n = pairs.len();
        let services: StringArray = pairs.clone().map(|(s, _)| Some(s)).collect();
        let environments: StringArray = pairs.map(|(_, e)| Some(e)).collect();
        self.kept(vec![Arc::new(services), Arc::new(environments)], n)
    }

    /// The services a filter over `service` keeps.
    pub(super) fn services(&self, services: &[String]) -> Vec<bool> {
        let column: StringArray = services.iter().map(Some).collect();
        self.kept(vec![Arc::new(column)], services.len())
    }

    /// Whether a filter over `team` keeps any of `teams` or a row without a team.
    pub(super) fn teams(&self, teams: &[String]) -> bool {
        if self.is_empty() {
            return true;
        }
        let column: StringArray = teams.iter().map(|t| Some(t.as_str())).chain([None]).collect();
        self.kept(vec![Arc::new(column)], teams.len() + 1).contains(&true)
    }

    /// The bucket starts a filter over `bucket_start` keeps.
    pub(super) fn starts(&self, starts: &[i64]) -> Vec<i64> {
        let column = TimestampMicrosecondArray::from(starts.to_vec()).with_timezone(UTC);
        let keep = self.kept(vec![Arc::new(column)], starts.len());
        starts.iter().zip(keep).filter(|(_, k)| *k).map(|(s, _)| *s).collect()
    }
}

/// The conjuncts of `filters` over columns whose values each stored epoch
/// bounds (see `readmodel::bounded_columns`), as a DataFusion pruning
/// predicate over the epochs' bounds: a scan reads only the epochs whose
/// bounds the filters can meet. Anything it cannot judge keeps the epoch.
#[derive(Debug, Default)]
pub(super) struct SpanFilter {
    predicate: Option<Arc<PruningPredicate>>,
    columns: Vec<String>,
}

impl SpanFilter {
    pub(super) fn new(state: &dyn Session, filters: &[Expr], table: &SchemaRef, columns: &[&str]) -> Self {
        let Some(expr) = conjunction(conjuncts_over(filters, columns)) else { return Self::default() };
        let Ok(df_schema) = DFSchema::try_from(table.as_ref().clone()) else { return Self::default() };
        let predicate = state
            .create_physical_expr(expr, &df_schema)
            .ok()
            .and_then(|e| PruningPredicateBuilder::new().with_file_schema(table.clone()).build(e));
        Self { predicate, columns: columns.iter().map(|c| c.to_string()).collect() }
    }

    /// Which of the epochs with `bounds` ([lo, hi) of the columns, `None`:
    /// unbounded) the filters may keep rows of.
    pub(super) fn keeps(&self, bounds: &[Bounds]) -> Vec<bool> {
        let Some(predicate) = &self.predicate else { return vec![true; bounds.len()] };
        let stats = EpochBounds { bounds, columns: &self.columns };
        predicate.prune(&stats).unwrap_or_else(|_| vec![true; bounds.len()])
    }
}

/// Epochs' bounds as the statistics of a pruning predicate: every bounded
/// column of an epoch lies in [lo, hi), that is between lo and hi - 1 µs.
struct EpochBounds<'a> {
    bounds: &'a [Bounds],
    columns: &'a [String],
}

impl EpochBounds<'_> {
    fn times(&self, column: &Column, at: impl Fn(&Bounds) -> Option<i64>) -> Option<ArrayRef> {
        if !self.columns.contains(&column.name) {
            return None;
        }
        let times: TimestampMicrosecondArray = self.bounds.iter().map(at).collect();
        Some(Arc::new(times.with_timezone(UTC)))
    }
}

impl PruningStatistics for EpochBounds<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.times(column, |(lo, _)| *lo)
    }
    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.times(column, |(_, hi)| hi.map(|hi| hi - 1))
    }
    fn num_containers(&self) -> usize {
        self.bounds.len()
    }
    fn null_counts(&self, _: &Column) -> Option<ArrayRef> {
        None
    }
    fn row_counts(&self) -> Option<ArrayRef> {
        None
    }
    fn contained(&self, _: &Column, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// The conjuncts of `filters` that read only `columns`, unqualified; volatile
/// ones are left out (keeping more is always right).
fn conjuncts_over(filters: &[Expr], columns: &[&str]) -> Vec<Expr> {
    filters
        .iter()
        .flat_map(split_conjunction)
        .filter(|e| !e.is_volatile() && e.column_refs().iter().all(|c| columns.contains(&c.name.as_str())))
        .filter_map(|e| unqualified(e.clone()).ok())
        .collect()
}

/// `expr` with its columns unqualified (a scan's filters name the table).
fn unqualified(expr: Expr) -> datafusion::common::Result<Expr> {
    let t = expr.transform(|e| match e {
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))),
        other => Ok(Transformed::no(other)),
    })?;
    Ok(t.data)
}
