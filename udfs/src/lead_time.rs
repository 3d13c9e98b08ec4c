//! [`LeadTime`]: `lead_time(lead_time interval [, percentile float8])`, the
//! DORA "lead time for changes" aggregate.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::AggregateUDF;
use datafusion::logical_expr::function::AccumulatorArgs;

use crate::percentile::{DurationPercentile, DurationPercentileSpec, coerce_duration_argument, constant_percentile};

/// Percentile used when `lead_time` is called with one argument: the median.
pub const DEFAULT_PERCENTILE: f64 = 0.5;

/// `lead_time(lead_time interval [, percentile float8]) -> interval`
///
/// The continuous percentile (linear interpolation, exactly like
/// PostgreSQL's `percentile_cont`) of the lead times in the group; the
/// median when no percentile is given. NULL lead times are ignored; a group
/// with none gives NULL. The percentile must be a constant in `[0, 1]`.
///
/// ```sql
/// > SELECT service,
///          lead_time(lead_time)      AS p50,
///          lead_time(lead_time, 0.9) AS p90
///   FROM changes
///   WHERE environment = 'production'
///   GROUP BY service;
/// +---------+-----------------+-----------------+
/// | service | p50             | p90             |
/// +---------+-----------------+-----------------+
/// | api     | 2 hours 30 mins | 3 hours 42 mins |
/// +---------+-----------------+-----------------+
/// ```
pub type LeadTime = DurationPercentile<LeadTimeSpec>;

/// Name, arguments, documentation and percentile argument of [`LeadTime`].
pub struct LeadTimeSpec;

/// The `lead_time` aggregate, shared.
pub fn lead_time_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| Arc::new(AggregateUDF::from(LeadTime::new())));
    Arc::clone(&UDAF)
}

impl DurationPercentileSpec for LeadTimeSpec {
    const NAME: &'static str = "lead_time";
    const ARGUMENTS: &'static str = "lead_time interval [, percentile float8]";
    const DESCRIPTION: &'static str = "Lead time for changes: the continuous percentile (linear interpolation, like percentile_cont) of the lead times in the group, the median by default.";
    const SYNTAX: &'static str = "lead_time(lead_time [, percentile])";
    const SQL_EXAMPLE: &'static str =
        "SELECT service, lead_time(lead_time) AS p50, lead_time(lead_time, 0.9) AS p90 FROM changes GROUP BY service;";
    const ARGUMENT_DOCS: &'static [(&'static str, &'static str)] = &[
        ("lead_time", "Interval expression, e.g. deployed_at - committed_at."),
        ("percentile", "Constant between 0 and 1 inclusive; defaults to 0.5."),
    ];

    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [value] => Ok(vec![coerce_duration_argument(Self::NAME, value)?]),
            [value, percentile] if percentile.is_numeric() || percentile.is_null() => {
                Ok(vec![coerce_duration_argument(Self::NAME, value)?, DataType::Float64])
            }
            [_, percentile] => {
                plan_err!("the percentile argument of lead_time must be a number between 0 and 1, got {percentile}")
            }
            _ => plan_err!("lead_time takes 1 or 2 arguments ({}), got {}", Self::ARGUMENTS, arg_types.len()),
        }
    }

    fn percentile(args: &AccumulatorArgs) -> Result<f64> {
        percentile_argument(args)
    }
}

/// The constant percentile argument, validated to lie in `[0, 1]`.
fn percentile_argument(args: &AccumulatorArgs) -> Result<f64> {
    match args.exprs.get(1) {
        Some(expr) => constant_percentile(expr, LeadTimeSpec::NAME),
        None => Ok(DEFAULT_PERCENTILE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, IntervalMonthDayNanoArray};
    use arrow::datatypes::IntervalUnit;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{AggregateUDFImpl, EmitTo};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{Column, lit};

    use crate::interval::nanos_to_interval;
    use crate::percentile::INTERVAL;
    use crate::test_support::{HOUR, intervals_of, with_interval_args};

    /// Calls `f` with the `AccumulatorArgs` of `lead_time(x [, percentile])`.
    fn with_args<T>(percentile: Option<Arc<dyn PhysicalExpr>>, f: impl FnOnce(AccumulatorArgs) -> T) -> T {
        with_interval_args("lead_time", percentile, false, f)
    }

    fn hours(values: &[i64]) -> ArrayRef {
        intervals_of(HOUR, &values.iter().copied().map(Some).collect::<Vec<_>>())
    }

    fn evaluate(percentile: Option<Arc<dyn PhysicalExpr>>, input: ArrayRef) -> Result<ScalarValue> {
        let mut acc = with_args(percentile, |args| LeadTime::new().accumulator(args))?;
        acc.update_batch(&[input])?;
        acc.evaluate()
    }

    #[test]
    fn default_is_median_and_percentile_is_used() {
        let median = evaluate(None, hours(&[1, 2, 3, 4])).unwrap();
        assert_eq!(median, ScalarValue::IntervalMonthDayNano(Some(nanos_to_interval(5 * HOUR / 2))));
        let p90 = evaluate(Some(lit(0.9)), hours(&[1, 2, 3, 4])).unwrap();
        assert_eq!(p90, ScalarValue::IntervalMonthDayNano(Some(nanos_to_interval(37 * HOUR / 10))));
        let p0 = evaluate(Some(lit(0.0)), hours(&[3, 1, 2])).unwrap();
        assert_eq!(p0, ScalarValue::IntervalMonthDayNano(Some(nanos_to_interval(HOUR))));
    }

    #[test]
    fn groups_accumulator_uses_the_percentile() {
        let mut acc = with_args(Some(lit(0.9)), |args| LeadTime::new().create_groups_accumulator(args)).unwrap();
        acc.update_batch(&[hours(&[1, 2, 3, 4, 9])], &[0, 0, 0, 0, 1], None, 2).unwrap();
        let result = acc.evaluate(EmitTo::All).unwrap();
        let expected: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            nanos_to_interval(37 * HOUR / 10),
            nanos_to_interval(9 * HOUR),
        ]));
        assert_eq!(&result, &expected);
    }

    #[test]
    fn percentile_out_of_range_is_a_plan_error() {
        for bad in [1.5, -0.1, f64::NAN] {
            let err = evaluate(Some(lit(bad)), hours(&[1])).unwrap_err();
            assert!(err.to_string().contains("between 0 and 1"), "{err}");
            assert!(err.to_string().starts_with("Error during planning"), "{err}");
        }
    }

    #[test]
    fn percentile_must_be_a_non_null_constant() {
        let err = evaluate(Some(Arc::new(Column::new("p", 1))), hours(&[1])).unwrap_err();
        assert!(err.to_string().contains("must be a constant"), "{err}");
        let err = evaluate(Some(lit(ScalarValue::Float64(None))), hours(&[1])).unwrap_err();
        assert!(err.to_string().contains("must not be NULL"), "{err}");
    }

    #[test]
    fn distinct_is_refused() {
        let err = with_interval_args("lead_time", None, true, |args| LeadTime::new().accumulator(args)).unwrap_err();
        assert!(err.to_string().contains("DISTINCT"), "{err}");
    }

    #[test]
    fn coercion() {
        let udf = LeadTime::new();
        let day_time = DataType::Interval(IntervalUnit::DayTime);
        assert_eq!(udf.coerce_types(std::slice::from_ref(&day_time)).unwrap(), vec![INTERVAL]);
        assert_eq!(udf.coerce_types(&[day_time.clone(), DataType::Int64]).unwrap(), vec![INTERVAL, DataType::Float64]);
        assert!(udf.coerce_types(&[day_time.clone(), DataType::Utf8]).is_err());
        assert!(udf.coerce_types(&[DataType::Utf8]).is_err());
        assert!(udf.coerce_types(&[]).is_err());
        assert!(udf.coerce_types(&[day_time.clone(), DataType::Float64, DataType::Float64]).is_err());
    }
}
