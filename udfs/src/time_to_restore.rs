//! [`TimeToRestore`]: `time_to_restore(restore_time interval)`, the DORA
//! "time to restore service" aggregate.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    Signature, Volatility,
};

use crate::DOC_SECTION_DORA;
use crate::percentile::{
    INTERVAL, PercentileAccumulator, PercentileGroupsAccumulator, coerce_duration_argument,
    percentile_state_fields, reject_distinct,
};

/// `time_to_restore(restore_time interval) -> interval`
///
/// The median time to restore service: the median `restore_time` of the
/// incidents in the group (`incidents.restore_time`, resolved minus opened),
/// interpolated like PostgreSQL's `percentile_cont(0.5)`. NULL inputs
/// (incidents still open) are ignored, and a group without any gives NULL.
///
/// ```sql
/// > SELECT service, time_to_restore(restore_time) AS p50
///   FROM incidents
///   GROUP BY service;
/// +---------+-----------------+
/// | service | p50             |
/// +---------+-----------------+
/// | api     | 1 hours 15 mins |
/// +---------+-----------------+
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeToRestore {
    signature: Signature,
}

impl Default for TimeToRestore {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeToRestore {
    /// A new `time_to_restore` implementation.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The `time_to_restore` aggregate, shared.
pub fn time_to_restore_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> =
        LazyLock::new(|| Arc::new(AggregateUDF::from(TimeToRestore::new())));
    Arc::clone(&UDAF)
}

/// The median.
const PERCENTILE: f64 = 0.5;

impl AggregateUDFImpl for TimeToRestore {
    fn name(&self) -> &str {
        "time_to_restore"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [value] => Ok(vec![coerce_duration_argument(self.name(), value)?]),
            _ => plan_err!(
                "time_to_restore takes exactly 1 argument (restore_time interval), got {}",
                arg_types.len()
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(INTERVAL)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(percentile_state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        reject_distinct(&args, self.name())?;
        Ok(Box::new(PercentileAccumulator::new(PERCENTILE)))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        reject_distinct(&args, self.name())?;
        Ok(Box::new(PercentileGroupsAccumulator::new(PERCENTILE)))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_DORA,
                "Time to restore service: the median (interpolated like percentile_cont(0.5)) of the restore times of resolved incidents.",
                "time_to_restore(restore_time)",
            )
            .with_sql_example("SELECT service, time_to_restore(restore_time) FROM incidents GROUP BY service;")
            .with_argument("restore_time", "Interval expression, e.g. incidents.restore_time (resolved_at - opened_at).")
            .build()
        });
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, IntervalMonthDayNanoArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::EmitTo;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::Column;

    use crate::interval::nanos_to_interval;

    const MINUTE: i64 = 60_000_000_000;

    fn minutes(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(
            values
                .iter()
                .map(|m| m.map(|m| nanos_to_interval(m * MINUTE)))
                .collect::<IntervalMonthDayNanoArray>(),
        )
    }

    fn with_args<T>(f: impl FnOnce(AccumulatorArgs) -> T) -> T {
        let schema = Schema::new(vec![Field::new("x", INTERVAL, true)]);
        let exprs: Vec<Arc<dyn PhysicalExpr>> = vec![Arc::new(Column::new("x", 0))];
        let fields: Vec<FieldRef> = vec![Arc::new(Field::new("x", INTERVAL, true))];
        f(AccumulatorArgs {
            return_field: Arc::new(Field::new("time_to_restore", INTERVAL, true)),
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "time_to_restore(x)",
            is_distinct: false,
            exprs: &exprs,
            expr_fields: &fields,
        })
    }

    #[test]
    fn median_ignores_nulls() {
        let mut acc = with_args(|args| TimeToRestore::new().accumulator(args)).unwrap();
        acc.update_batch(&[minutes(&[Some(30), None, Some(90), Some(60), Some(600)])])
            .unwrap();
        assert_eq!(
            acc.evaluate().unwrap(),
            ScalarValue::IntervalMonthDayNano(Some(nanos_to_interval(75 * MINUTE)))
        );
    }

    #[test]
    fn empty_and_all_null_are_null() {
        let mut acc = with_args(|args| TimeToRestore::new().accumulator(args)).unwrap();
        assert_eq!(
            acc.evaluate().unwrap(),
            ScalarValue::IntervalMonthDayNano(None)
        );
        acc.update_batch(&[minutes(&[None])]).unwrap();
        assert_eq!(
            acc.evaluate().unwrap(),
            ScalarValue::IntervalMonthDayNano(None)
        );
    }

    #[test]
    fn groups_accumulator_matches_median() {
        let mut acc =
            with_args(|args| TimeToRestore::new().create_groups_accumulator(args)).unwrap();
        acc.update_batch(
            &[minutes(&[Some(10), Some(20), None, Some(5)])],
            &[0, 0, 1, 2],
            None,
            3,
        )
        .unwrap();
        let result = acc.evaluate(EmitTo::All).unwrap();
        let expected: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            Some(nanos_to_interval(15 * MINUTE)),
            None,
            Some(nanos_to_interval(5 * MINUTE)),
        ]));
        assert_eq!(&result, &expected);
    }

    #[test]
    fn takes_exactly_one_interval() {
        let udf = TimeToRestore::new();
        assert_eq!(udf.coerce_types(&[DataType::Null]).unwrap(), vec![INTERVAL]);
        assert!(udf.coerce_types(&[INTERVAL, DataType::Float64]).is_err());
        let err = udf.coerce_types(&[DataType::Utf8]).unwrap_err();
        assert!(
            err.to_string()
                .contains("time_to_restore expects an interval"),
            "{err}"
        );
    }
}
