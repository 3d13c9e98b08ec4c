//! [`BooleanShare`]: the aggregates that count the share of `true` among
//! the non-null values of a boolean, `change_failure_rate(failed)` and
//! `rework_rate(rework)`: one implementation, told apart by a
//! [`BooleanShareSpec`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::mem::size_of_val;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF, Signature, Volatility,
};

use crate::DOC_SECTION_DORA;
use crate::accumulate::{filtered_validity, for_each_valid_row, int64_state_field, reject_distinct};

/// What tells one boolean share aggregate from another: its SQL name, its
/// argument and its documentation.
pub trait BooleanShareSpec: Send + Sync + 'static {
    /// SQL name of the aggregate.
    const NAME: &'static str;
    /// The boolean argument's name, e.g. `failed`.
    const ARGUMENT: &'static str;
    /// Documentation: what the aggregate computes.
    const DESCRIPTION: &'static str;
    /// Documentation: an example query.
    const SQL_EXAMPLE: &'static str;
    /// Documentation: what the argument is.
    const ARGUMENT_DOC: &'static str;
}

/// The `AggregateUDFImpl` of every boolean share aggregate: a boolean in,
/// `count(true) / count(non-null)` out as `float8`, NULL (never 0) when
/// nothing was counted.
pub struct BooleanShare<S> {
    signature: Signature,
    documentation: Documentation,
    spec: PhantomData<fn() -> S>,
}

impl<S: BooleanShareSpec> Default for BooleanShare<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: BooleanShareSpec> BooleanShare<S> {
    /// A new implementation of aggregate `S`.
    pub fn new() -> Self {
        let syntax = format!("{}({})", S::NAME, S::ARGUMENT);
        let documentation = Documentation::builder(DOC_SECTION_DORA, S::DESCRIPTION, syntax)
            .with_sql_example(S::SQL_EXAMPLE)
            .with_argument(S::ARGUMENT, S::ARGUMENT_DOC)
            .build();
        Self { signature: Signature::user_defined(Volatility::Immutable), documentation, spec: PhantomData }
    }
}

impl<S: BooleanShareSpec> fmt::Debug for BooleanShare<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BooleanShare").field("name", &S::NAME).field("signature", &self.signature).finish()
    }
}

/// Equal when the signatures are (the documentation follows from `S`).
impl<S: BooleanShareSpec> PartialEq for BooleanShare<S> {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl<S: BooleanShareSpec> Eq for BooleanShare<S> {}

impl<S: BooleanShareSpec> Hash for BooleanShare<S> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl<S: BooleanShareSpec> AggregateUDFImpl for BooleanShare<S> {
    fn name(&self) -> &str {
        S::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Boolean | DataType::Null] => Ok(vec![DataType::Boolean]),
            [other] => plan_err!("{} expects a boolean ({}), got {other}", S::NAME, S::ARGUMENT),
            _ => plan_err!("{} takes exactly 1 argument ({} boolean), got {}", S::NAME, S::ARGUMENT, arg_types.len()),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![int64_state_field(args.name, "trues", false), int64_state_field(args.name, "total", false)])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        reject_distinct(&args, self.name())?;
        Ok(Box::new(ShareAccumulator::default()))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        reject_distinct(&args, self.name())?;
        Ok(Box::new(ShareGroupsAccumulator::default()))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

/// `count / total`, or NULL when nothing was counted: the one definition of
/// a rate, which the engine's `dora_metrics` uses too.
pub fn share(count: i64, total: i64) -> Option<f64> {
    (total > 0).then(|| count as f64 / total as f64)
}

/// The `(trues, total)` state columns, checked to be two `Int64` arrays.
fn state_columns(states: &[ArrayRef]) -> Result<(&Int64Array, &Int64Array)> {
    match states {
        [trues, total] => match (trues.as_primitive_opt::<Int64Type>(), total.as_primitive_opt::<Int64Type>()) {
            (Some(trues), Some(total)) => Ok((trues, total)),
            _ => internal_err!("boolean share state must be two Int64 columns"),
        },
        _ => internal_err!("boolean share state must have 2 columns, got {}", states.len()),
    }
}

/// The input column, checked to be boolean.
fn input_column(values: &[ArrayRef]) -> Result<&BooleanArray> {
    match values.first().and_then(|v| v.as_boolean_opt()) {
        Some(trues) => Ok(trues),
        None => internal_err!("a boolean share expects a boolean input"),
    }
}

/// Accumulator of one group.
///
/// State layout: two non-null `Int64` fields, `trues` (number of `true`
/// inputs) and `total` (number of non-null inputs).
#[derive(Debug, Default)]
struct ShareAccumulator {
    trues: i64,
    total: i64,
}

impl Accumulator for ShareAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let trues = input_column(values)?;
        self.trues += trues.true_count() as i64;
        self.total += (trues.len() - trues.null_count()) as i64;
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (trues, total) = state_columns(states)?;
        self.trues += trues.values().iter().sum::<i64>();
        self.total += total.values().iter().sum::<i64>();
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.trues)), ScalarValue::Int64(Some(self.total))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(share(self.trues, self.total)))
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let trues = input_column(values)?;
        self.trues -= trues.true_count() as i64;
        self.total -= (trues.len() - trues.null_count()) as i64;
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// Groups accumulator: the same `(trues, total)` state per group, kept as
/// two vectors indexed by group.
#[derive(Debug, Default)]
struct ShareGroupsAccumulator {
    trues: Vec<i64>,
    total: Vec<i64>,
}

impl GroupsAccumulator for ShareGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let input = input_column(values)?;
        self.trues.resize(total_num_groups, 0);
        self.total.resize(total_num_groups, 0);
        for_each_valid_row(group_indices, input.nulls(), opt_filter, |group, row| {
            self.trues[group] += i64::from(input.value(row));
            self.total[group] += 1;
        });
        Ok(())
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let (trues, total) = state_columns(values)?;
        self.trues.resize(total_num_groups, 0);
        self.total.resize(total_num_groups, 0);
        for (row, &group) in group_indices.iter().enumerate() {
            self.trues[group] += trues.value(row);
            self.total[group] += total.value(row);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let trues = emit_to.take_needed(&mut self.trues);
        let total = emit_to.take_needed(&mut self.total);
        let rates: Float64Array = trues.into_iter().zip(total).map(|(trues, total)| share(trues, total)).collect();
        Ok(Arc::new(rates))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![
            Arc::new(Int64Array::from(emit_to.take_needed(&mut self.trues))),
            Arc::new(Int64Array::from(emit_to.take_needed(&mut self.total))),
        ])
    }

    /// Each row becomes `(1, 1)` if true, `(0, 1)` if false and `(0, 0)` if
    /// null or filtered out.
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let input = input_column(values)?;
        let validity = filtered_validity(input.nulls(), opt_filter);
        let counted = |row: usize| validity.as_ref().is_none_or(|v| v.is_valid(row));
        let trues: Int64Array =
            (0..input.len()).map(|row| i64::from(counted(row) && input.value(row))).map(Some).collect();
        let total: Int64Array = (0..input.len()).map(|row| i64::from(counted(row))).map(Some).collect();
        Ok(vec![Arc::new(trues), Arc::new(total)])
    }

    fn size(&self) -> usize {
        (self.trues.capacity() + self.total.capacity()) * size_of::<i64>() + size_of_val(self)
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
        let mut acc = ShareAccumulator::default();
        acc.update_batch(&[booleans(&[Some(true), Some(false), None, Some(false), Some(false)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(0.25)));
    }

    #[test]
    fn empty_and_all_null_are_null_not_zero() {
        let mut acc = ShareAccumulator::default();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
        acc.update_batch(&[booleans(&[None, None])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
        // All successes is a real 0.
        acc.update_batch(&[booleans(&[Some(false)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(0.0)));
    }

    #[test]
    fn merges_partial_states() {
        let mut left = ShareAccumulator::default();
        left.update_batch(&[booleans(&[Some(true), Some(true)])]).unwrap();
        let mut right = ShareAccumulator::default();
        right.update_batch(&[booleans(&[Some(false), None, Some(false)])]).unwrap();
        let mut empty = ShareAccumulator::default();

        let columns = state_columns(&states([&mut left, &mut right, &mut empty]));
        let mut merged = ShareAccumulator::default();
        merged.merge_batch(&columns).unwrap();
        assert_eq!(merged.evaluate().unwrap(), ScalarValue::Float64(Some(0.5)));
    }

    #[test]
    fn retracts() {
        let mut acc = ShareAccumulator::default();
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
        let mut acc = ShareGroupsAccumulator::default();
        acc.update_batch(&[input], &indices, None, groups).unwrap();
        let result = acc.evaluate(EmitTo::All).unwrap();

        for group in 0..groups {
            let values: Vec<Option<bool>> = rows.iter().filter(|(g, _)| *g == group).map(|(_, v)| *v).collect();
            let mut plain = ShareAccumulator::default();
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
        let mut partial = ShareGroupsAccumulator::default();
        partial.update_batch(&[Arc::clone(&input)], &[0, 0, 0, 1], Some(&filter), 2).unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        let converted = partial.convert_to_state(&[input], Some(&filter)).unwrap();

        let mut fin = ShareGroupsAccumulator::default();
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
        let udf = crate::change_failure_rate::ChangeFailureRate::new();
        assert_eq!(udf.coerce_types(&[DataType::Null]).unwrap(), vec![DataType::Boolean]);
        assert!(udf.coerce_types(&[DataType::Int64]).is_err());
        assert!(udf.coerce_types(&[DataType::Boolean, DataType::Boolean]).is_err());
    }
}
