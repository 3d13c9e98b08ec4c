//! DORA metric functions for DataFusion.
//!
//! This crate adds leadline's SQL functions to a DataFusion
//! [`SessionContext`] (see [`register_all`]):
//!
//! | function | kind | returns |
//! |---|---|---|
//! | `lead_time(interval [, percentile])` | aggregate | interval: percentile (default median) of lead times |
//! | `time_to_restore(interval)` | aggregate | interval: median restore time |
//! | `failed_deployment_recovery_time(interval)` | aggregate | interval: median recovery time |
//! | `change_failure_rate(boolean)` | aggregate | float8: `count(true) / count(non-null)`, NULL when empty |
//! | `rework_rate(boolean)` | aggregate | float8: `count(true) / count(non-null)`, NULL when empty |
//! | `deployment_frequency(timestamptz [, grain])` | aggregate | float8: deployments per day over whole grain buckets, 0 when empty |
//! | `dora_tier(metric, value)` | scalar | text: `elite`, `high`, `medium` or `low` (DORA 2023) |
//!
//! Percentiles are exact and interpolate like PostgreSQL's
//! `percentile_cont`; durations are computed in nanoseconds and returned as
//! `Interval(MonthDayNano)` normalised like PostgreSQL's timestamp
//! differences (days and a remainder, no months). Every aggregate has a
//! `GroupsAccumulator` fast path and ignores NULL inputs.
//!
//! The pure building blocks are public too, for the engine's table
//! functions: [`percentile_cont`], [`nanos_to_interval`] /
//! [`interval_to_nanos`], the calendar buckets of [`bucket`] and the tiers
//! of [`tier()`].
//!
//! ```sql
//! SELECT service,
//!        lead_time(lead_time)                       AS lead_time_p50,
//!        lead_time(lead_time, 0.9)                  AS lead_time_p90,
//!        dora_tier('lead_time', lead_time(lead_time)) AS lead_time_tier
//! FROM changes
//! GROUP BY service;
//! ```

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, DocSection, ScalarUDF};
use datafusion::prelude::SessionContext;

mod accumulate;
pub mod bucket;
pub mod change_failure_rate;
pub mod combine;
pub mod deployment_frequency;
pub mod failed_deployment_recovery_time;
pub mod interval;
pub mod lead_time;
pub mod percentile;
pub mod rework_rate;
pub mod share;
#[cfg(test)]
mod test_support;
pub mod tier;
pub mod time_to_restore;

pub use bucket::{Grain, MICROS_PER_DAY, bucket_end, bucket_start, bucket_starts, civil_from_days, days_in};
pub use deployment_frequency::per_day;
pub use interval::{NANOS_PER_DAY, interval_to_nanos, nanos_to_interval};
pub use percentile::{percentile_cont, percentile_nanos};
pub use share::share;
pub use tier::{Metric, Tier, tier};

/// Documentation section of every function of this crate.
pub(crate) const DOC_SECTION_DORA: DocSection = DocSection {
    include: true,
    label: "DORA Functions",
    description: Some("DORA software delivery performance metrics (leadline)."),
};

/// Every aggregate function of this crate.
pub fn all_udafs() -> Vec<Arc<AggregateUDF>> {
    vec![
        lead_time::lead_time_udaf(),
        time_to_restore::time_to_restore_udaf(),
        failed_deployment_recovery_time::failed_deployment_recovery_time_udaf(),
        change_failure_rate::change_failure_rate_udaf(),
        rework_rate::rework_rate_udaf(),
        deployment_frequency::deployment_frequency_udaf(),
    ]
}

/// Every scalar function of this crate.
pub fn all_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![tier::dora_tier_udf()]
}

/// Registers every function of this crate in `ctx` (replacing any function
/// of the same name), and the optimizer rule that lets several percentiles
/// of the same durations share one state ([`combine::CombinePercentiles`]).
pub fn register_all(ctx: &SessionContext) {
    for udaf in all_udafs() {
        ctx.register_udaf(udaf.as_ref().clone());
    }
    for udf in all_udfs() {
        ctx.register_udf(udf.as_ref().clone());
    }
    // Registered twice, the second finds nothing left to combine.
    ctx.add_optimizer_rule(Arc::new(combine::CombinePercentiles));
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::common::Result;
    use datafusion::execution::FunctionRegistry;
    use datafusion::prelude::SessionConfig;

    fn context() -> SessionContext {
        let ctx = SessionContext::new();
        register_all(&ctx);
        ctx
    }

    async fn run(sql: &str) -> Result<Vec<RecordBatch>> {
        context().sql(sql).await?.collect().await
    }

    async fn table(sql: &str) -> String {
        let batches = run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pretty_format_batches(&batches).unwrap().to_string()
    }

    async fn error(sql: &str) -> String {
        match run(sql).await {
            Ok(batches) => panic!("{sql} succeeded: {}", pretty_format_batches(&batches).unwrap()),
            Err(e) => e.to_string(),
        }
    }

    const DATA: &str = "
        WITH t(k, x, b, ts) AS (VALUES
            ('a', INTERVAL '1 hour',  true,  '2024-03-03T23:30:00Z'),
            ('a', INTERVAL '2 hours', false, '2024-03-04T01:30:00+02:00'),
            ('a', INTERVAL '3 hours', NULL,  '2024-03-05T10:00:00Z'),
            ('a', INTERVAL '4 hours', false, NULL),
            ('b', INTERVAL '2 days',  NULL,  '2024-03-06T10:00:00Z'),
            ('b', NULL,               NULL,  NULL),
            ('c', NULL,               false, '2024-02-29T10:00:00Z')
        )
        SELECT k, x, b, arrow_cast(ts, 'Timestamp(Microsecond, Some(\"UTC\"))') AS ts FROM t";

    #[tokio::test]
    async fn sql_grouped_metrics() {
        let sql = format!(
            "SELECT k,
                    lead_time(x) AS p50,
                    lead_time(x, 0.9) AS p90,
                    change_failure_rate(b) AS cfr,
                    deployment_frequency(ts, 'week') AS df_week,
                    deployment_frequency(ts) AS df_day,
                    dora_tier('lead_time', lead_time(x)) AS tier
             FROM ({DATA}) GROUP BY k ORDER BY k"
        );
        insta_like(
            &table(&sql).await,
            "
+---+-------------------+-------------------+-----+----------------------+--------------------+-------+
| k | p50               | p90               | cfr | df_week              | df_day             | tier  |
+---+-------------------+-------------------+-----+----------------------+--------------------+-------+
| a | 2 hours 30 mins   | 3 hours 42 mins   | 0.3333333333333333 | 0.21428571428571427  | 1.0                | elite |
| b | 2 days            | 2 days            |     | 0.14285714285714285  | 1.0                | high  |
| c |                   |                   | 0.0 | 0.14285714285714285  | 1.0                |       |
+---+-------------------+-------------------+-----+----------------------+--------------------+-------+",
        );
    }

    /// Compares two pretty-printed tables, ignoring column padding.
    fn insta_like(actual: &str, expected: &str) {
        let normalise = |s: &str| -> Vec<String> {
            s.trim()
                .lines()
                .filter(|line| !line.starts_with('+'))
                .map(|line| line.split('|').map(str::trim).collect::<Vec<_>>().join("|"))
                .collect()
        };
        assert_eq!(normalise(actual), normalise(expected), "\n{actual}");
    }

    #[tokio::test]
    async fn sql_without_group_by_and_on_empty_input() {
        let sql = format!(
            "SELECT lead_time(x) AS p50, time_to_restore(x) AS ttr,
                    failed_deployment_recovery_time(x) AS fdrt,
                    change_failure_rate(b) AS cfr, deployment_frequency(ts, 'month') AS df
             FROM ({DATA})"
        );
        insta_like(
            &table(&sql).await,
            "
| p50             | ttr             | fdrt            | cfr                | df                   |
| 3 hours         | 3 hours         | 3 hours         | 0.25 | 0.08333333333333333  |",
        );
        let sql = format!(
            "SELECT lead_time(x) AS p50, change_failure_rate(b) AS cfr,
                    deployment_frequency(ts) AS df, dora_tier('change_failure_rate', change_failure_rate(b)) AS tier
             FROM ({DATA}) WHERE k = 'none'"
        );
        insta_like(&table(&sql).await, "| p50 | cfr | df | tier |\n|  |  | 0.0 |  |");
        // Grouped and empty: no rows at all.
        let sql = format!("SELECT k, deployment_frequency(ts) FROM ({DATA}) WHERE k = 'none' GROUP BY k");
        assert_eq!(run(&sql).await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    }

    #[tokio::test]
    async fn sql_filter_clause_and_timestamp_arithmetic() {
        let sql = "
            WITH c(k, committed, deployed) AS (VALUES
                ('a', TIMESTAMP '2024-01-01T00:00:00', TIMESTAMP '2024-01-01T06:00:00'),
                ('a', TIMESTAMP '2024-01-01T00:00:00', TIMESTAMP '2024-01-03T00:00:00'),
                ('b', TIMESTAMP '2024-01-01T00:00:00', TIMESTAMP '2024-01-01T00:30:00'))
            SELECT k, lead_time(deployed - committed) AS lt,
                   lead_time(deployed - committed) FILTER (WHERE deployed < TIMESTAMP '2024-01-02') AS early,
                   deployment_frequency(deployed, 'Day') AS df
            FROM c GROUP BY k ORDER BY k";
        insta_like(
            &table(sql).await,
            "
| k | lt                | early   | df   |
| a | 1 days 3 hours    | 6 hours | 0.6666666666666666 |
| b | 30 mins           | 30 mins | 1.0  |",
        );
    }

    #[tokio::test]
    async fn sql_errors() {
        let err = error(&format!("SELECT lead_time(x, 1.5) FROM ({DATA})")).await;
        assert!(err.contains("between 0 and 1"), "{err}");
        let err = error(&format!("SELECT k, lead_time(x, -0.5) FROM ({DATA}) GROUP BY k")).await;
        assert!(err.contains("between 0 and 1"), "{err}");
        let err = error("SELECT lead_time(x, p) FROM (VALUES (INTERVAL '1 hour', 0.5)) t(x, p)").await;
        assert!(err.contains("must be a constant"), "{err}");
        let err = error(&format!("SELECT lead_time(x, 'p90') FROM ({DATA})")).await;
        assert!(err.contains("must be a number"), "{err}");
        let err = error(&format!("SELECT deployment_frequency(ts, 'fortnight') FROM ({DATA})")).await;
        assert!(err.contains("unknown grain 'fortnight'"), "{err}");
        let err = error(&format!("SELECT k, deployment_frequency(ts, k) FROM ({DATA}) GROUP BY k")).await;
        assert!(err.contains("must be a constant"), "{err}");
        let err = error(&format!("SELECT dora_tier('velocity', 1.0) FROM ({DATA})")).await;
        assert!(err.contains("unknown DORA metric 'velocity'"), "{err}");
        let err = error(&format!("SELECT change_failure_rate(k) FROM ({DATA})")).await;
        assert!(err.contains("expects a boolean"), "{err}");
        let err = error(&format!("SELECT time_to_restore(ts) FROM ({DATA})")).await;
        assert!(err.contains("expects an interval"), "{err}");
        let err = error("SELECT lead_time(INTERVAL '1 month')").await;
        assert!(err.contains("month"), "{err}");
    }

    /// Rows of a pretty-printed table, without borders or header, cells trimmed.
    fn data_rows(batches: &[RecordBatch]) -> Vec<String> {
        let table = pretty_format_batches(batches).unwrap().to_string();
        table
            .lines()
            .filter(|line| line.starts_with("| "))
            .skip(1)
            .map(|line| line.split('|').map(str::trim).collect::<Vec<_>>().join("|"))
            .collect()
    }

    #[tokio::test]
    async fn sql_many_groups_match_single_group_results() {
        // Small batches on a 4-way plan: GroupsAccumulator with partial and
        // final aggregation, then the same with partial aggregation skipped
        // (every row through `convert_to_state`). Each group must equal the
        // plain Accumulator's answer for that group alone.
        let partial = SessionConfig::new().with_target_partitions(4).with_batch_size(7);
        let skipping = partial
            .clone()
            .set_usize("datafusion.execution.skip_partial_aggregation_probe_rows_threshold", 1)
            .set_str("datafusion.execution.skip_partial_aggregation_probe_ratio_threshold", "0.0");
        let data = "SELECT value % 13 AS k,
                           arrow_cast(value * value % 1000 * 60, 'Duration(Second)') AS x,
                           CASE WHEN value % 5 = 0 THEN NULL ELSE value % 3 = 0 END AS b,
                           arrow_cast(to_timestamp_seconds(1700000000 + value * 40000), 'Timestamp(Microsecond, Some(\"UTC\"))') AS ts
                    FROM range(1, 500)";
        let aggregates = "lead_time(x, 0.9) AS lt, time_to_restore(x) AS ttr,
                          change_failure_rate(b) AS cfr, deployment_frequency(ts, 'month') AS df";
        for config in [partial, skipping] {
            let ctx = SessionContext::new_with_config(config);
            register_all(&ctx);
            let grouped = format!("SELECT k, {aggregates} FROM ({data}) GROUP BY k ORDER BY k");
            let grouped = data_rows(&ctx.sql(&grouped).await.unwrap().collect().await.unwrap());
            assert_eq!(grouped.len(), 13);
            for (k, row) in grouped.iter().enumerate() {
                let single = format!("SELECT {k} AS k, {aggregates} FROM ({data}) WHERE k = {k}");
                let single = data_rows(&ctx.sql(&single).await.unwrap().collect().await.unwrap());
                assert_eq!(row, &single[0], "k = {k}");
            }
        }
    }

    #[tokio::test]
    async fn sql_sliding_window_retracts() {
        let sql = "SELECT n, lead_time(x) OVER (ORDER BY n ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS lt,
                          change_failure_rate(b) OVER (ORDER BY n ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS cfr
                   FROM (VALUES (1, INTERVAL '1 hour', true), (2, INTERVAL '3 hours', false),
                                (3, NULL, NULL), (4, INTERVAL '1 day', true)) t(n, x, b)
                   ORDER BY n";
        insta_like(
            &table(sql).await,
            "
| n | lt      | cfr |
| 1 | 1 hours | 1.0 |
| 2 | 2 hours | 0.5 |
| 3 | 3 hours | 0.0 |
| 4 | 1 days  | 1.0 |",
        );
    }

    #[tokio::test]
    async fn buckets_agree_with_date_trunc() {
        let sql = "SELECT arrow_cast(t, 'Timestamp(Microsecond, Some(\"UTC\"))') AS t,
                          arrow_cast(date_trunc('week', t), 'Timestamp(Microsecond, Some(\"UTC\"))') AS w,
                          arrow_cast(date_trunc('month', t), 'Timestamp(Microsecond, Some(\"UTC\"))') AS m,
                          arrow_cast(date_trunc('day', t), 'Timestamp(Microsecond, Some(\"UTC\"))') AS d
                   FROM unnest(generate_series(TIMESTAMP '1899-12-20T00:00:00', TIMESTAMP '2101-03-05T00:00:00', INTERVAL '37 hours 11 minutes')) AS s(t)";
        let batches = run(sql).await.unwrap();
        let mut rows = 0;
        for batch in &batches {
            let column = |i: usize| batch.column(i).as_primitive::<TimestampMicrosecondType>().clone();
            let (t, w, m, d) = (column(0), column(1), column(2), column(3));
            for row in 0..batch.num_rows() {
                let ts = t.value(row);
                assert_eq!(bucket_start(ts, Grain::Week), w.value(row), "week of {ts}");
                assert_eq!(bucket_start(ts, Grain::Month), m.value(row), "month of {ts}");
                assert_eq!(bucket_start(ts, Grain::Day), d.value(row), "day of {ts}");
                rows += 1;
            }
        }
        assert!(rows > 45_000, "{rows}");
    }

    #[tokio::test]
    async fn registered_functions_are_documented() {
        let ctx = context();
        for udaf in all_udafs() {
            assert!(ctx.udaf(udaf.name()).is_ok(), "{}", udaf.name());
            assert!(udaf.documentation().is_some(), "{}", udaf.name());
        }
        for udf in all_udfs() {
            assert!(ctx.udf(udf.name()).is_ok(), "{}", udf.name());
            assert!(udf.documentation().is_some(), "{}", udf.name());
        }
        let batches =
            run("SELECT deployment_frequency(arrow_cast(NULL, 'Timestamp(Microsecond, None)'))").await.unwrap();
        let df = batches[0].column(0).as_primitive::<Float64Type>();
        assert_eq!((df.value(0), df.null_count()), (0.0, 0));
    }
}
