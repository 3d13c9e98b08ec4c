//! [`ChangeFailureRate`]: `change_failure_rate(failed boolean)`, the DORA
//! "change failure rate" aggregate.

use std::mem::size_of_val;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF, Signature,
    Volatility,
};

use crate::DOC_SECTION_DORA;
use crate::accumulate::{filtered_validity, for_each_valid_row, int64_state_field, reject_distinct};

/// `change_failure_rate(failed boolean) -> float8`
///
/// The share of deployments that failed: `count(failed = true) /
/// count(failed IS NOT NULL)`, in `[0, 1]`. NULL inputs are not counted, so
/// over the `deployments` table (where `failed` is NULL for deployments that
/// did not succeed) it is failed successful deployments ÷ successful
/// deployments. A group without any non-null input gives NULL, never 0.
///
/// ```sql
/// > SELECT service, change_failure_rate(failed) AS cfr
///   FROM deployments
///   WHERE environment = 'production'
///   GROUP BY service;
/// +---------+------+
/// | service | cfr  |
/// +---------+------+
/// | api     | 0.25 |
/// +---------+------+
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ChangeFailureRate {
    signature: Signature,
}

impl Default for ChangeFailureRate {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeFailureRate {
    /// A new `change_failure_rate` implementation.
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// The `change_failure_rate` aggregate, shared.
pub fn change_failure_rate_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| Arc::new(AggregateUDF::from(ChangeFailureRate::new())));
    Arc::clone(&UDAF)
}

impl AggregateUDFImpl for ChangeFailureRate {
    fn name(&self) -> &str {
        "change_failure_rate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Boolean | DataType::Null] => Ok(vec![DataType::Boolean]),
            [other] => plan_err!("change_failure_rate expects a boolean (failed), got {other}"),
            _ => plan_err!("change_failure_rate takes exactly 1 argument (failed boolean), got {}", arg_types.len()),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![int64_state_field(args.name, "failed", false), int64_state_field(args.name, "total", false)])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        reject_distinct(&args, self.name())?;
        Ok(Box::new(ChangeFailureRateAccumulator::default()))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        reject_distinct(&args, self.name())?;
        Ok(Box::new(ChangeFailureRateGroupsAccumulator::default()))
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
                "Change failure rate: count of true values divided by count of non-null values; NULL when there are none.",
                "change_failure_rate(failed)",
            )
            .with_sql_example(
                "SELECT service, change_failure_rate(failed) FROM deployments GROUP BY service;",
            )
            .with_argument("failed", "Boolean expression; NULL rows are not counted.")
            .build()
        });
        Some(&DOCUMENTATION)
    }
}

/// `failed / total`, or NULL when nothing was counted: the one definition
/// of the ratio, which the engine's `dora_metrics` uses too.
pub fn failure_rate(failed: i64, total: i64) -> Option<f64> {
    (total > 0).then(|| failed as f64 / total as f64)
}

/// The `(failed, total)` state columns, checked to be two `Int64` arrays.
fn state_columns(states: &[ArrayRef]) -> Result<(&Int64Array, &Int64Array)> {
    match states {
        [failed, total] => match (failed.as_primitive_opt::<Int64Type>(), total.as_primitive_opt::<Int64Type>()) {
            (Some(failed), Some(total)) => Ok((failed, total)),
            _ => internal_err!("change_failure_rate state must be two Int64 columns"),
        },
        _ => internal_err!("change_failure_rate state must have 2 columns, got {}", states.len()),
    }
}

/// The input column, checked to be boolean.
fn input_column(values: &[ArrayRef]) -> Result<&BooleanArray> {
    match values.first().and_then(|v| v.as_boolean_opt()) {
        Some(failed) => Ok(failed),
        None => internal_err!("change_failure_rate expects a boolean input"),
    }
}

/// Accumulator of one group.
///
/// State layout: two non-null `Int64` fields, `failed` (number of `true`
/// inputs) and `total` (number of non-null inputs).
#[derive(Debug, Default)]
struct ChangeFailureRateAccumulator {
    failed: i64,
    total: i64,
}

impl Accumulator for ChangeFailureRateAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let failed = input_column(values)?;
        self.failed += failed.true_count() as i64;
        self.total += (failed.len() - failed.null_count()) as i64;
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (failed, total) = state_columns(states)?;
        self.failed += failed.values().iter().sum::<i64>();
        self.total += total.values().iter().sum::<i64>();
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.failed)), ScalarValue::Int64(Some(self.total))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(failure_rate(self.failed, self.total)))
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let failed = input_column(values)?;
        self.failed -= failed.true_count() as i64;
        self.total -= (failed.len() - failed.null_count()) as i64;
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// Groups accumulator: the same `(failed, total)` state per group, kept as
/// two vectors indexed by group.
#[derive(Debug, Default)]
struct ChangeFailureRateGroupsAccumulator {
    failed: Vec<i64>,
    total: Vec<i64>,
}

impl GroupsAccumulator for ChangeFailureRateGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let input = input_column(values)?;
        self.failed.resize(total_num_groups, 0);
        self.total.resize(total_num_groups, 0);
        for_each_valid_row(group_indices, input.nulls(), opt_filter, |group, row| {
            self.failed[group] += i64::from(input.value(row));
            self.total[group] += 1;
        });
        Ok(())
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let (failed, total) = state_columns(values)?;
        self.failed.resize(total_num_groups, 0);
        self.total.resize(total_num_groups, 0);
        for (row, &group) in group_indices.iter().enumerate() {
            self.failed[group] += failed.value(row);
            self.total[group] += total.value(row);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let failed = emit_to.take_needed(&mut self.failed);
        let total = emit_to.take_needed(&mut self.total);
        let rates: Float64Array =
            failed.into_iter().zip(total).map(|(failed, total)| failure_rate(failed, total)).collect();
        Ok(Arc::new(rates))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![
            Arc::new(Int64Array::from(emit_to.take_needed(&mut self.failed))),
            Arc::new(Int64Array::from(emit_to.take_needed(&mut self.total))),
        ])
    }

    /// Each row becomes `(1, 1)` if true, `(0, 1)` if false and `(0, 0)` if
    /// null or filtered out.
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let input = input_column(values)?;
        let validity = filtered_validity(input.nulls(), opt_filter);
        let counted = |row: usize| validity.as_ref().is_none_or(|v| v.is_valid(row));
        let failed: Int64Array =
            (0..input.len()).map(|row| i64::from(counted(row) && input.value(row))).map(Some).collect();
        let total: Int64Array = (0..input.len()).map(|row| i64::from(counted(row))).map(Some).collect();
        Ok(vec![Arc::new(failed), Arc::new(total)])
    }

    fn size(&self) -> usize {
        (self.failed.capacity() + self.total.capacity()) * size_of::<i64>() + size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{state_columns, states};

    fn booleans(values: &[Option<bool>]) -> ArrayRef {
        Arc::new(BooleanArray::from(values.to_vec()))
    }

    #[test]
    fn rate_ignores_nulls() {
        let mut acc = ChangeFailureRateAccumulator::default();
        acc.update_batch(&[booleans(&[Some(true), Some(false), None, Some(false), Some(false)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(0.25)));
    }

    #[test]
    fn empty_and_all_null_are_null_not_zero() {
        let mut acc = ChangeFailureRateAccumulator::default();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
        acc.update_batch(&[booleans(&[None, None])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
        // All successes is a real 0.
        acc.update_batch(&[booleans(&[Some(false)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(0.0)));
    }

    #[test]
    fn merges_partial_states() {
        let mut left = ChangeFailureRateAccumulator::default();
        left.update_batch(&[booleans(&[Some(true), Some(true)])]).unwrap();
        let mut right = ChangeFailureRateAccumulator::default();
        right.update_batch(&[booleans(&[Some(false), None, Some(false)])]).unwrap();
        let mut empty = ChangeFailureRateAccumulator::default();

        let columns = state_columns(&states([&mut left, &mut right, &mut empty]));
        let mut merged = ChangeFailureRateAccumulator::default();
        merged.merge_batch(&columns).unwrap();
        assert_eq!(merged.evaluate().unwrap(), ScalarValue::Float64(Some(0.5)));
    }

    #[test]
    fn retracts() {
        let mut acc = ChangeFailureRateAccumulator::default();
        acc.update_batch(&[booleans(&[Some(true), Some(false), Some(false)])]).unwrap();
        acc.retract_batch(&[booleans(&[Some(true), None])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(0.0)));
        acc.retract_batch(&[booleans(&[Some(false), Some(false)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
    }

    #[test]
    fn groups_accumulator_agrees_with_plain_accumulator() {
        let rows = [
            (0, Some(true)),
            (1, Some(false)),
            (0, Some(false)),
            (2, None),
            (1, Some(true)),
            (0, Some(false)),
            (1, Some(true)),
            (0, None),
        ];
        let groups = 4;
        let indices: Vec<usize> = rows.iter().map(|(g, _)| *g).collect();
        let input = booleans(&rows.iter().map(|(_, v)| *v).collect::<Vec<_>>());
        let mut acc = ChangeFailureRateGroupsAccumulator::default();
        acc.update_batch(&[input], &indices, None, groups).unwrap();
        let result = acc.evaluate(EmitTo::All).unwrap();

        for group in 0..groups {
            let values: Vec<Option<bool>> = rows.iter().filter(|(g, _)| *g == group).map(|(_, v)| *v).collect();
            let mut plain = ChangeFailureRateAccumulator::default();
            plain.update_batch(&[booleans(&values)]).unwrap();
            assert_eq!(
                ScalarValue::try_from_array(&result, group).unwrap(),
                plain.evaluate().unwrap(),
                "group {group}"
            );
        }
        let result = result.as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(result.value(0), 1.0 / 3.0);
        assert!(result.is_null(2) && result.is_null(3));
    }

    #[test]
    fn groups_filter_state_and_merge() {
        let input = booleans(&[Some(true), Some(false), Some(true), None]);
        let filter = BooleanArray::from(vec![Some(true), Some(true), Some(false), Some(true)]);
        let mut partial = ChangeFailureRateGroupsAccumulator::default();
        partial.update_batch(&[Arc::clone(&input)], &[0, 0, 0, 1], Some(&filter), 2).unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        let converted = partial.convert_to_state(&[input], Some(&filter)).unwrap();

        let mut fin = ChangeFailureRateGroupsAccumulator::default();
        fin.merge_batch(&state, &[0, 1], 2).unwrap();
        fin.merge_batch(&converted, &[1, 1, 1, 1], 2).unwrap();
        let result = fin.evaluate(EmitTo::All).unwrap();
        let result = result.as_primitive::<arrow::datatypes::Float64Type>();
        // Group 0: true, false (the filtered true is dropped) -> 1/2.
        // Group 1: nothing from `state` row 1, then true, false -> 1/2.
        assert_eq!(result.values().to_vec(), vec![0.5, 0.5]);
    }

    #[test]
    fn coercion() {
        let udf = ChangeFailureRate::new();
        assert_eq!(udf.coerce_types(&[DataType::Null]).unwrap(), vec![DataType::Boolean]);
        assert!(udf.coerce_types(&[DataType::Int64]).is_err());
        assert!(udf.coerce_types(&[DataType::Boolean, DataType::Boolean]).is_err());
    }
}
