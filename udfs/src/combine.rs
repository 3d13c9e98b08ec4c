//! [`CombinePercentiles`]: one state for several percentiles of the same
//! durations.
//!
//! `lead_time(x)` and `lead_time(x, 0.9)` in one `GROUP BY` are two
//! aggregates, each keeping every value of `x` of each group: the same
//! values held twice. This logical optimizer rule replaces such calls (same
//! argument, same `FILTER`, same `ORDER BY`) by one
//! [`DurationPercentiles`] call that returns all their percentiles as a
//! struct from one state, and projects the struct's fields back under the
//! original names, so the plan above sees the same schema and values.
//!
//! ```text
//! Aggregate: groupBy=[[team]], aggr=[[lead_time(x), lead_time(x, Float64(0.9))]]
//! ```
//! becomes
//! ```text
//! Projection: team, get_field(__percentiles_1, p0) AS lead_time(x), get_field(__percentiles_1, p1) AS lead_time(x,Float64(0.9))
//!   Aggregate: groupBy=[[team]], aggr=[[lead_time_percentiles(x, Float64(0.5), Float64(0.9)) AS __percentiles_1]]
//! ```
//!
//! DataFusion 55 has no such rule (its own `percentile_cont` calls are not
//! combined either); Spark's `CollapsePercentiles` proposal is the same idea.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, AggregateUDF, Expr, LogicalPlan, Projection, lit};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::lead_time::{DEFAULT_PERCENTILE, LeadTime};
use crate::percentile::DurationPercentiles;

/// The optimizer rule (see the module documentation). Calls it cannot prove
/// equivalent are left alone: `DISTINCT` (refused by the aggregate
/// itself), and a percentile that is not a literal in `[0, 1]` (so the
/// aggregate reports it as it would without the rule).
#[derive(Debug, Default)]
pub struct CombinePercentiles;

/// Calls of one aggregation that can share a state: the first of them, and
/// the position of each among the aggregate expressions with its
/// percentile.
struct SharedState<'a> {
    call: &'a AggregateFunction,
    members: Vec<(usize, f64)>,
}

/// The call and percentile of `expr` when it is a `lead_time` call that can
/// share its state.
fn combinable(expr: &Expr) -> Option<(&AggregateFunction, f64)> {
    let Expr::AggregateFunction(call) = unaliased(expr) else { return None };
    if !call.func.inner().is::<LeadTime>() || call.params.distinct {
        return None;
    }
    let percentile = match call.params.args.as_slice() {
        [_] => DEFAULT_PERCENTILE,
        [_, Expr::Literal(ScalarValue::Float64(Some(p)), _)] if (0.0..=1.0).contains(p) => *p,
        _ => return None,
    };
    Some((call, percentile))
}

/// `expr` without its alias, if any.
fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unaliased(&alias.expr),
        expr => expr,
    }
}

/// Whether two calls collect the same values. The arguments are compared
/// without aliases: common subexpression elimination names the first
/// occurrence of an argument (`__common_expr_1 AS x`) and not the others.
fn same_values(a: &AggregateFunction, b: &AggregateFunction) -> bool {
    a.func == b.func
        && unaliased(&a.params.args[0]) == unaliased(&b.params.args[0])
        && a.params.filter == b.params.filter
        && a.params.order_by == b.params.order_by
        && a.params.null_treatment == b.params.null_treatment
}

/// The states that two or more of `aggr_expr` can share.
fn shared_states(aggr_expr: &[Expr]) -> Vec<SharedState<'_>> {
    let mut states: Vec<SharedState> = vec![];
    for (index, expr) in aggr_expr.iter().enumerate() {
        let Some((call, percentile)) = combinable(expr) else { continue };
        match states.iter_mut().find(|state| same_values(state.call, call)) {
            Some(state) => state.members.push((index, percentile)),
            None => states.push(SharedState { call, members: vec![(index, percentile)] }),
        }
    }
    states.retain(|state| state.members.len() > 1);
    states
}

impl OptimizerRule for CombinePercentiles {
    fn name(&self) -> &str {
        "leadline_combine_percentiles"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = plan else { return Ok(Transformed::no(plan)) };
        let states = shared_states(&aggregate.aggr_expr);
        if states.is_empty() {
            return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
        }
        // Aggregate expression index -> (column of the combined call, its field).
        let mut read_from: HashMap<usize, (String, String)> = HashMap::new();
        // First member's index -> the combined call that takes its place.
        let mut combined_at: HashMap<usize, Expr> = HashMap::new();
        for state in &states {
            let name = config.alias_generator().next("__percentiles");
            let mut percentiles: Vec<f64> = vec![];
            for &(index, percentile) in &state.members {
                let field = match percentiles.iter().position(|p| *p == percentile) {
                    Some(field) => field,
                    None => {
                        percentiles.push(percentile);
                        percentiles.len() - 1
                    }
                };
                read_from.insert(index, (name.clone(), format!("p{field}")));
            }
            let udaf = AggregateUDF::from(DurationPercentiles::new(state.call.func.name()));
            let args = std::iter::once(state.call.params.args[0].clone()).chain(percentiles.into_iter().map(lit));
            let call = AggregateFunction::new_udf(
                Arc::new(udaf),
                args.collect(),
                false,
                state.call.params.filter.clone(),
                state.call.params.order_by.clone(),
                state.call.params.null_treatment,
            );
            combined_at.insert(state.members[0].0, Expr::AggregateFunction(call).alias(name));
        }
        drop(states);

        let aggr_expr = aggregate.aggr_expr.iter().enumerate().filter_map(|(index, expr)| {
            match (combined_at.remove(&index), read_from.contains_key(&index)) {
                (Some(combined), _) => Some(combined),
                (None, true) => None,
                (None, false) => Some(expr.clone()),
            }
        });
        let combined =
            Aggregate::try_new(Arc::clone(&aggregate.input), aggregate.group_expr.clone(), aggr_expr.collect())?;

        // The original output, column for column: the grouping columns come
        // first, then one per aggregate expression.
        let groups = aggregate.schema.fields().len() - aggregate.aggr_expr.len();
        let columns = aggregate.schema.iter().enumerate().map(|(i, (qualifier, field))| {
            let read = i.checked_sub(groups).and_then(|index| read_from.get(&index));
            match read {
                Some((name, part)) => get_field(Expr::Column(Column::new_unqualified(name)), part.as_str())
                    .alias_qualified(qualifier.cloned(), field.name()),
                None => Expr::Column(Column::new(qualifier.cloned(), field.name())),
            }
        });
        let projection = Projection::try_new(columns.collect(), Arc::new(LogicalPlan::Aggregate(combined)))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    }
}

#[cfg(test)]
mod tests {
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::common::DataFusionError;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use crate::{all_udafs, all_udfs, register_all};

    /// Contexts with leadline's functions, with and without the rule: 4
    /// partitions and small batches, so partial and final aggregation both
    /// run.
    fn contexts() -> (SessionContext, SessionContext) {
        let config = || SessionConfig::new().with_target_partitions(4).with_batch_size(7);
        let with_rule = SessionContext::new_with_config(config());
        register_all(&with_rule);
        let without = SessionContext::new_with_config(config());
        register_functions_only(&without);
        (with_rule, without)
    }

    fn register_functions_only(ctx: &SessionContext) {
        all_udafs().iter().for_each(|udaf| ctx.register_udaf(udaf.as_ref().clone()));
        all_udfs().iter().for_each(|udf| ctx.register_udf(udf.as_ref().clone()));
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> Result<String, String> {
        let batches = async { ctx.sql(sql).await?.collect().await }.await.map_err(|e| e.to_string())?;
        Ok(pretty_format_batches(&batches).unwrap().to_string())
    }

    /// The optimized logical plan.
    async fn plan(ctx: &SessionContext, sql: &str) -> String {
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        plan.display_indent().to_string()
    }

    const DATA: &str = "(SELECT value % 5 AS k, value % 3 = 0 AS b,
                arrow_cast(to_timestamp_seconds(1700000000 + value * 40000), 'Timestamp(Microsecond, Some(\"UTC\"))') AS ts,
                CASE WHEN value % 9 = 0 THEN NULL
                     ELSE arrow_cast(value * value % 1000 * 60, 'Duration(Second)') END AS x
            FROM range(1, 400)) t";

    /// `sql` answers the same with and without the rule, and the rule
    /// combined all its `lead_time` calls (`combines`) or left them alone.
    async fn same_answer(sql: &str, combines: bool) {
        let (with_rule, without) = contexts();
        let (got, expected) = (answer(&with_rule, sql).await, answer(&without, sql).await);
        assert_eq!(got, expected, "{sql}");
        if expected.is_ok() {
            let plan = plan(&with_rule, sql).await;
            assert_eq!(plan.contains("lead_time_percentiles("), combines, "{sql}\n{plan}");
            if combines {
                let separate = plan.lines().any(|line| line.contains("Aggregate:") && line.contains("lead_time("));
                assert!(!separate, "{sql}\n{plan}");
            }
        }
    }

    #[tokio::test]
    async fn combined_percentiles_answer_as_separate_aggregates() {
        let queries = [
            format!("SELECT k, lead_time(x) AS p50, lead_time(x, 0.9) AS p90 FROM {DATA} GROUP BY k ORDER BY k"),
            // No GROUP BY; empty input.
            format!("SELECT lead_time(x, 0.0), lead_time(x, 1.0), lead_time(x), lead_time(x, 0.9) FROM {DATA}"),
            format!("SELECT lead_time(x), lead_time(x, 0.9) FROM {DATA} WHERE k > 10"),
            format!("SELECT k, lead_time(x), lead_time(x, 0.9) FROM {DATA} WHERE k > 10 GROUP BY k"),
            // The same percentile twice, spelled two ways; an integer percentile.
            format!("SELECT k, lead_time(x), lead_time(x, 0.5), lead_time(x, 1) FROM {DATA} GROUP BY k ORDER BY k"),
            // Mixed with other aggregates, in expressions, HAVING, ORDER BY.
            format!(
                "SELECT k, count(*) AS n, change_failure_rate(b) AS cfr, dora_tier('lead_time', lead_time(x)) AS tier,
                        lead_time(x, 0.9) - lead_time(x) AS spread, deployment_frequency(ts, 'week') AS df
                 FROM {DATA} GROUP BY k HAVING lead_time(x, 0.9) > INTERVAL '1 minute'
                 ORDER BY lead_time(x, 0.9) DESC, k"
            ),
            // dora_metrics-style: per key and week bucket, p50, p90 and tiers.
            format!(
                "SELECT k, date_trunc('week', ts) AS bucket_start, count(*) AS deployments,
                        deployment_frequency(ts, 'week') AS deployment_frequency,
                        lead_time(x) AS lead_time_p50, lead_time(x, 0.9) AS lead_time_p90,
                        change_failure_rate(b) AS change_failure_rate,
                        dora_tier('lead_time', lead_time(x)) AS lead_time_tier
                 FROM {DATA} GROUP BY k, date_trunc('week', ts) ORDER BY k, bucket_start"
            ),
            // The same FILTER on both: combined.
            format!(
                "SELECT k, lead_time(x) FILTER (WHERE b) AS p50, lead_time(x, 0.9) FILTER (WHERE b) AS p90
                 FROM {DATA} GROUP BY k ORDER BY k"
            ),
            // GROUPING SETS.
            format!("SELECT k, b, lead_time(x), lead_time(x, 0.75) FROM {DATA} GROUP BY ROLLUP (k, b) ORDER BY k, b"),
            // In a subquery joined to another aggregation.
            format!(
                "WITH c AS (SELECT k, lead_time(x) AS p50, lead_time(x, 0.9) AS p90 FROM {DATA} GROUP BY k),
                      d AS (SELECT k, time_to_restore(x) AS ttr FROM {DATA} GROUP BY k)
                 SELECT d.k, c.p50, c.p90, d.ttr FROM d LEFT JOIN c ON c.k = d.k ORDER BY d.k"
            ),
        ];
        for sql in &queries {
            same_answer(sql, true).await;
        }
    }

    #[tokio::test]
    async fn calls_that_collect_other_values_stay_apart() {
        let queries = [
            // One call: nothing to share.
            format!("SELECT k, lead_time(x, 0.9) FROM {DATA} GROUP BY k ORDER BY k"),
            // Different arguments, different FILTERs.
            format!("SELECT k, lead_time(x), lead_time(x + x, 0.9) FROM {DATA} GROUP BY k ORDER BY k"),
            format!("SELECT k, lead_time(x) FILTER (WHERE b), lead_time(x, 0.9) FROM {DATA} GROUP BY k ORDER BY k"),
            // Other duration aggregates are not lead_time.
            format!("SELECT k, lead_time(x), time_to_restore(x) FROM {DATA} GROUP BY k ORDER BY k"),
            // Window functions are not aggregations.
            format!(
                "SELECT k, lead_time(x) OVER (PARTITION BY k), lead_time(x, 0.9) OVER (PARTITION BY k)
                 FROM {DATA} ORDER BY k, x"
            ),
        ];
        for sql in &queries {
            same_answer(sql, false).await;
        }
    }

    #[tokio::test]
    async fn errors_are_those_of_the_separate_calls() {
        for sql in [
            format!("SELECT k, lead_time(x), lead_time(x, 1.5) FROM {DATA} GROUP BY k"),
            format!("SELECT lead_time(DISTINCT x), lead_time(DISTINCT x, 0.9) FROM {DATA}"),
            format!("SELECT lead_time(x), lead_time(x, CAST(NULL AS DOUBLE)) FROM {DATA}"),
        ] {
            let (with_rule, without) = contexts();
            let (got, expected) = (answer(&with_rule, &sql).await, answer(&without, &sql).await);
            assert!(expected.is_err(), "{sql}: {expected:?}");
            assert_eq!(got, expected, "{sql}");
        }
    }

    /// A context whose queries may hold `limit` bytes and cannot spill.
    fn limited(limit: usize, rule: bool) -> SessionContext {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limit, 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()
            .unwrap();
        // One partition: one aggregation holds every value, nothing else does.
        let config = SessionConfig::new().with_target_partitions(1);
        let state = SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features();
        let ctx = SessionContext::new_with_state(state.build());
        if rule {
            register_all(&ctx)
        } else {
            register_functions_only(&ctx)
        }
        ctx
    }

    /// The values the percentiles hold count in the memory pool, so a query
    /// over its limit fails with `ResourcesExhausted` (53200 over the wire);
    /// and one state for p50 and p90 needs half the memory of two.
    #[tokio::test]
    async fn held_values_count_against_the_memory_limit() {
        // 2^20 values in 4 groups: 2 MiB a group and a state (capacities
        // are powers of two), 8 MiB a state.
        let sql = "SELECT k, lead_time(x), lead_time(x, 0.9) FROM
                   (SELECT value % 4 AS k, arrow_cast(value, 'Duration(Second)') AS x FROM range(0, 1048576)) t
                   GROUP BY k ORDER BY k";
        let mib = 1 << 20;
        let run = |ctx: SessionContext| async move { ctx.sql(sql).await?.collect().await };
        let separate = run(limited(12 * mib, false)).await.unwrap_err();
        assert!(matches!(separate.find_root(), DataFusionError::ResourcesExhausted(_)), "{separate}");
        let combined = run(limited(12 * mib, true)).await.unwrap();
        let unlimited = run(limited(usize::MAX, false)).await.unwrap();
        assert_eq!(
            pretty_format_batches(&combined).unwrap().to_string(),
            pretty_format_batches(&unlimited).unwrap().to_string()
        );
        let too_little = run(limited(6 * mib, true)).await.unwrap_err();
        assert!(matches!(too_little.find_root(), DataFusionError::ResourcesExhausted(_)), "{too_little}");
    }
}
