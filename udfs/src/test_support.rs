//! Helpers shared by the unit tests of the aggregates: interval columns,
//! `AccumulatorArgs` of a duration aggregate, partial states, and the checks
//! every median aggregate (`time_to_restore`,
//! `failed_deployment_recovery_time`) must pass.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, IntervalMonthDayNanoArray};
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use crate::interval::nanos_to_interval;
use crate::percentile::INTERVAL;

pub(crate) const MINUTE: i64 = 60_000_000_000;
pub(crate) const HOUR: i64 = 3_600_000_000_000;

/// An interval column of `values` nanoseconds, NULL where `None`.
pub(crate) fn intervals(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(values.iter().map(|v| v.map(nanos_to_interval)).collect::<IntervalMonthDayNanoArray>())
}

/// An interval column of `values` in `unit` nanoseconds, NULL where `None`.
pub(crate) fn intervals_of(unit: i64, values: &[Option<i64>]) -> ArrayRef {
    intervals(&values.iter().map(|v| v.map(|v| v * unit)).collect::<Vec<_>>())
}

/// Calls `f` with the `AccumulatorArgs` of `fn_name(x [, percentile])`, or
/// of `fn_name(DISTINCT x [, percentile])`, `x` being an interval column.
pub(crate) fn with_interval_args<T>(
    fn_name: &str,
    percentile: Option<Arc<dyn PhysicalExpr>>,
    is_distinct: bool,
    f: impl FnOnce(AccumulatorArgs) -> T,
) -> T {
    let schema = Schema::new(vec![Field::new("x", INTERVAL, true), Field::new("p", DataType::Float64, true)]);
    let mut exprs: Vec<Arc<dyn PhysicalExpr>> = vec![Arc::new(Column::new("x", 0))];
    let mut expr_fields: Vec<FieldRef> = vec![Arc::new(Field::new("x", INTERVAL, true))];
    if let Some(percentile) = percentile {
        exprs.push(percentile);
        expr_fields.push(Arc::new(Field::new("p", DataType::Float64, true)));
    }
    let distinct = if is_distinct { "DISTINCT " } else { "" };
    f(AccumulatorArgs {
        return_field: Arc::new(Field::new(fn_name, INTERVAL, true)),
        schema: &schema,
        ignore_nulls: false,
        order_bys: &[],
        is_reversed: false,
        name: &format!("{fn_name}({distinct}x)"),
        is_distinct,
        exprs: &exprs,
        expr_fields: &expr_fields,
    })
}

/// The partial state of each accumulator.
pub(crate) fn states<A: Accumulator, const N: usize>(accumulators: [&mut A; N]) -> Vec<Vec<ScalarValue>> {
    accumulators.into_iter().map(|acc| acc.state().unwrap()).collect()
}

/// Partial states (one row each) as the state columns `merge_batch` takes.
pub(crate) fn state_columns(states: &[Vec<ScalarValue>]) -> Vec<ArrayRef> {
    (0..states[0].len()).map(|i| ScalarValue::iter_to_array(states.iter().map(|s| s[i].clone())).unwrap()).collect()
}

/// Every value of `array`, as scalars.
pub(crate) fn scalars(array: &ArrayRef) -> Vec<ScalarValue> {
    (0..array.len()).map(|i| ScalarValue::try_from_array(array, i).unwrap()).collect()
}

/// The checks of a median of one interval argument, for the tests of each
/// such aggregate.
pub(crate) mod median_aggregate {
    use super::*;
    use datafusion::logical_expr::{AggregateUDFImpl, EmitTo};

    fn minutes(values: &[Option<i64>]) -> ArrayRef {
        intervals_of(MINUTE, values)
    }

    pub(crate) fn ignores_nulls(udf: &dyn AggregateUDFImpl) {
        let mut acc = with_interval_args(udf.name(), None, false, |args| udf.accumulator(args)).unwrap();
        acc.update_batch(&[minutes(&[Some(30), None, Some(90), Some(60), Some(600)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::IntervalMonthDayNano(Some(nanos_to_interval(75 * MINUTE))));
    }

    pub(crate) fn empty_and_all_null_are_null(udf: &dyn AggregateUDFImpl) {
        let mut acc = with_interval_args(udf.name(), None, false, |args| udf.accumulator(args)).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::IntervalMonthDayNano(None));
        acc.update_batch(&[minutes(&[None])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::IntervalMonthDayNano(None));
    }

    pub(crate) fn groups_accumulator_matches_median(udf: &dyn AggregateUDFImpl) {
        let mut acc = with_interval_args(udf.name(), None, false, |args| udf.create_groups_accumulator(args)).unwrap();
        acc.update_batch(&[minutes(&[Some(10), Some(20), None, Some(5)])], &[0, 0, 1, 2], None, 3).unwrap();
        let result = acc.evaluate(EmitTo::All).unwrap();
        let expected: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            Some(nanos_to_interval(15 * MINUTE)),
            None,
            Some(nanos_to_interval(5 * MINUTE)),
        ]));
        assert_eq!(&result, &expected);
    }

    pub(crate) fn takes_exactly_one_interval(udf: &dyn AggregateUDFImpl) {
        assert_eq!(udf.coerce_types(&[DataType::Null]).unwrap(), vec![INTERVAL]);
        assert!(udf.coerce_types(&[INTERVAL, DataType::Float64]).is_err());
        let err = udf.coerce_types(&[DataType::Utf8]).unwrap_err();
        assert!(err.to_string().contains(&format!("{} expects an interval", udf.name())), "{err}");
    }
}
