//! Exact percentiles of durations, shared by `lead_time`,
//! `time_to_restore` and `failed_deployment_recovery_time`.
//!
//! The pure functions [`percentile_cont`] and [`percentile_nanos`] compute a
//! percentile of sorted nanosecond values with PostgreSQL's
//! `percentile_cont` linear interpolation. The crate-private
//! `PercentileAccumulator` and `PercentileGroupsAccumulator` collect the
//! non-null `Interval(MonthDayNano)` inputs of one group (or of many) as
//! `i64` nanoseconds and evaluate to an interval rounded to the nearest
//! nanosecond. [`DurationPercentile`] is the one `AggregateUDFImpl` of the
//! three aggregate functions; each of them is a [`DurationPercentileSpec`]
//! that gives its name, documentation, argument types and percentile.
//!
//! ```
//! use leadline_udfs::percentile_cont;
//!
//! let hour = 3_600_000_000_000_i64;
//! let sorted = [hour, 2 * hour, 3 * hour, 4 * hour];
//! assert_eq!(percentile_cont(&sorted, 0.5), Some(2.5 * hour as f64));
//! assert_eq!(percentile_cont(&[], 0.5), None);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, IntervalMonthDayNanoArray, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, Field, FieldRef, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit,
};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF, Signature, Volatility,
};

use crate::DOC_SECTION_DORA;
use crate::accumulate::{filtered_validity, for_each_valid_row, reject_distinct};
use crate::interval::{interval_to_nanos, nanos_to_interval};

/// The type every duration aggregate returns (and coerces its input to).
pub(crate) const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);

/// Position of percentile `p` among `n` sorted values, as PostgreSQL's
/// `percentile_cont` computes it: `pos = p * (n - 1)`, the values at
/// `floor(pos)` and `ceil(pos)`, and the weight `pos - floor(pos)` of the
/// upper one. `p` is clamped into `[0, 1]`; `None` for no values or a NaN `p`.
fn interpolation_points(n: usize, p: f64) -> Option<(usize, usize, f64)> {
    if n == 0 || p.is_nan() {
        return None;
    }
    let last = n - 1;
    let pos = p.clamp(0.0, 1.0) * last as f64;
    let lower = (pos.floor() as usize).min(last);
    let upper = (pos.ceil() as usize).min(last);
    Some((lower, upper, pos - lower as f64))
}

/// Continuous percentile `p` (in `[0, 1]`) of `sorted` (ascending), with
/// linear interpolation exactly like PostgreSQL's `percentile_cont`:
/// `v[lo] + (v[hi] - v[lo]) * (pos - lo)` where `pos = p * (n - 1)`.
/// `None` when `sorted` is empty (or `p` is NaN); `p` outside `[0, 1]` is
/// clamped.
pub fn percentile_cont(sorted: &[i64], p: f64) -> Option<f64> {
    let (lower, upper, weight) = interpolation_points(sorted.len(), p)?;
    let (low, high) = (sorted[lower], sorted[upper]);
    let span = (i128::from(high) - i128::from(low)) as f64;
    Some(low as f64 + span * weight)
}

/// [`percentile_cont`] of nanosecond values, rounded to the nearest
/// nanosecond. Unlike rounding the `f64` result, it is exact for any
/// duration: the interpolation offset is computed from the difference of the
/// two neighbours, so a value that needs no interpolation is returned as is.
pub fn percentile_nanos(sorted: &[i64], p: f64) -> Option<i64> {
    let (lower, upper, weight) = interpolation_points(sorted.len(), p)?;
    let (low, high) = (sorted[lower], sorted[upper]);
    let span = i128::from(high) - i128::from(low);
    let offset = ((span as f64) * weight).round() as i128;
    // The offset lies in [0, span]; the clamp only guards f64 rounding of
    // spans above 2^53 ns.
    let value =
        (i128::from(low) + offset.clamp(0, span.max(0))).clamp(i128::from(low.min(high)), i128::from(low.max(high)));
    i64::try_from(value).ok()
}

/// Sorts `values` and evaluates percentile `p` of them as an interval;
/// `None` (SQL NULL) for an empty group.
fn evaluate_percentile(values: &mut [i64], p: f64) -> Option<IntervalMonthDayNano> {
    values.sort_unstable();
    percentile_nanos(values, p).map(nanos_to_interval)
}

/// Coerces an argument of a duration aggregate to `Interval(MonthDayNano)`:
/// any interval, any `Duration` (what some timestamp arithmetic yields) or
/// an untyped NULL.
pub(crate) fn coerce_duration_argument(fn_name: &str, data_type: &DataType) -> Result<DataType> {
    match data_type {
        DataType::Interval(_) | DataType::Duration(_) | DataType::Null => Ok(INTERVAL),
        other => plan_err!("{fn_name} expects an interval (e.g. deployed_at - committed_at), got {other}"),
    }
}

/// State fields of a duration percentile: a single nullable
/// `List(Int64)` named after the aggregate (see [`PercentileAccumulator`]).
fn percentile_state_fields(aggregate_name: &str) -> Vec<FieldRef> {
    vec![Arc::new(Field::new(
        format_state_name(aggregate_name, "nanos"),
        DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
        true,
    ))]
}

/// The percentile of an aggregate that does not let its caller choose one.
pub const MEDIAN: f64 = 0.5;

/// What tells one duration percentile aggregate from another: its SQL name,
/// its arguments and documentation, and the percentile it computes (by
/// default one interval argument and the [`MEDIAN`]).
pub trait DurationPercentileSpec: Send + Sync + 'static {
    /// SQL name of the aggregate.
    const NAME: &'static str;
    /// The arguments as error messages list them, e.g. `restore_time interval`.
    const ARGUMENTS: &'static str;
    /// Documentation: what the aggregate computes.
    const DESCRIPTION: &'static str;
    /// Documentation: how it is called, e.g. `time_to_restore(restore_time)`.
    const SYNTAX: &'static str;
    /// Documentation: an example query.
    const SQL_EXAMPLE: &'static str;
    /// Documentation: each argument's name and description.
    const ARGUMENT_DOCS: &'static [(&'static str, &'static str)];

    /// Coerces the argument types: by default exactly one duration.
    fn coerce_types(arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [value] => Ok(vec![coerce_duration_argument(Self::NAME, value)?]),
            _ => plan_err!("{} takes exactly 1 argument ({}), got {}", Self::NAME, Self::ARGUMENTS, arg_types.len()),
        }
    }

    /// The percentile to compute, validated in `[0, 1]`: by default the
    /// [`MEDIAN`].
    fn percentile(_args: &AccumulatorArgs) -> Result<f64> {
        Ok(MEDIAN)
    }
}

/// The `AggregateUDFImpl` of every duration percentile aggregate
/// (`lead_time`, `time_to_restore`, `failed_deployment_recovery_time`): an
/// interval in, the percentile `S` chooses of the non-null inputs out, as an
/// interval, through `PercentileAccumulator` and
/// `PercentileGroupsAccumulator`.
pub struct DurationPercentile<S> {
    signature: Signature,
    documentation: Documentation,
    spec: PhantomData<fn() -> S>,
}

impl<S: DurationPercentileSpec> Default for DurationPercentile<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: DurationPercentileSpec> DurationPercentile<S> {
    /// A new implementation of aggregate `S`.
    pub fn new() -> Self {
        let documentation = S::ARGUMENT_DOCS.iter().fold(
            Documentation::builder(DOC_SECTION_DORA, S::DESCRIPTION, S::SYNTAX).with_sql_example(S::SQL_EXAMPLE),
            |builder, (name, description)| builder.with_argument(*name, *description),
        );
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            documentation: documentation.build(),
            spec: PhantomData,
        }
    }
}

impl<S: DurationPercentileSpec> fmt::Debug for DurationPercentile<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurationPercentile").field("name", &S::NAME).field("signature", &self.signature).finish()
    }
}

/// Equal when the signatures are (the documentation follows from `S`).
impl<S: DurationPercentileSpec> PartialEq for DurationPercentile<S> {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl<S: DurationPercentileSpec> Eq for DurationPercentile<S> {}

impl<S: DurationPercentileSpec> Hash for DurationPercentile<S> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl<S: DurationPercentileSpec> AggregateUDFImpl for DurationPercentile<S> {
    fn name(&self) -> &str {
        S::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        S::coerce_types(arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(INTERVAL)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(percentile_state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        reject_distinct(&args, S::NAME)?;
        Ok(Box::new(PercentileAccumulator::new(S::percentile(&args)?)))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        reject_distinct(&args, S::NAME)?;
        Ok(Box::new(PercentileGroupsAccumulator::new(S::percentile(&args)?)))
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

/// Converts an input column (already coerced to `Interval(MonthDayNano)`)
/// into nanoseconds, keeping its nulls.
fn to_nanos(array: &ArrayRef) -> Result<Int64Array> {
    let Some(intervals) = array.as_primitive_opt::<IntervalMonthDayNanoType>() else {
        return internal_err!("duration percentile expects Interval(MonthDayNano) input, got {}", array.data_type());
    };
    intervals.try_unary::<_, Int64Type, DataFusionError>(interval_to_nanos)
}

/// Builds the `List(Int64)` state column, one list per group.
fn lists_to_array(groups: Vec<Vec<i64>>) -> Result<ListArray> {
    let total: usize = groups.iter().map(Vec::len).sum();
    if i32::try_from(total).is_err() {
        return exec_err!("duration percentile state of {total} values exceeds a List array");
    }
    let offsets = OffsetBuffer::<i32>::from_lengths(groups.iter().map(Vec::len));
    // Sized once, each group freed as it is copied: emitting the state of a
    // large aggregate must not hold it twice over.
    let mut flat = Vec::with_capacity(total);
    for g in groups {
        flat.extend_from_slice(&g);
    }
    let values = Int64Array::from(flat);
    Ok(ListArray::try_new(Arc::new(Field::new_list_field(DataType::Int64, true)), offsets, Arc::new(values), None)?)
}

/// Calls `f(row, values)` for every non-null list of a `List(Int64)` state.
fn for_each_state_list(state: &ArrayRef, mut f: impl FnMut(usize, &[i64])) -> Result<()> {
    let Some(lists) = state.as_list_opt::<i32>() else {
        return internal_err!("duration percentile state must be List(Int64), got {}", state.data_type());
    };
    for (row, list) in lists.iter().enumerate() {
        if let Some(list) = list {
            let Some(values) = list.as_primitive_opt::<Int64Type>() else {
                return internal_err!("duration percentile state list items must be Int64");
            };
            f(row, values.values());
        }
    }
    Ok(())
}

/// Accumulator of one group for a duration percentile.
///
/// State layout: one field, `List(Int64)`, holding every non-null input
/// seen so far as nanoseconds, unsorted. `merge_batch` appends the lists of
/// other partial states; `evaluate` sorts and interpolates.
#[derive(Debug)]
pub(crate) struct PercentileAccumulator {
    nanos: Vec<i64>,
    percentile: f64,
}

impl PercentileAccumulator {
    /// An accumulator of percentile `percentile`, already validated in `[0, 1]`.
    pub(crate) fn new(percentile: f64) -> Self {
        Self { nanos: vec![], percentile }
    }
}

impl Accumulator for PercentileAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let nanos = to_nanos(&values[0])?;
        if nanos.null_count() == 0 {
            self.nanos.extend_from_slice(nanos.values());
        } else {
            self.nanos.extend(nanos.iter().flatten());
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for_each_state_list(&states[0], |_, values| self.nanos.extend_from_slice(values))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = lists_to_array(vec![std::mem::take(&mut self.nanos)])?;
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::IntervalMonthDayNano(evaluate_percentile(&mut self.nanos, self.percentile)))
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let mut to_remove: HashMap<i64, usize> = HashMap::new();
        for value in to_nanos(&values[0])?.iter().flatten() {
            *to_remove.entry(value).or_default() += 1;
        }
        self.nanos.retain(|value| match to_remove.get_mut(value) {
            Some(count) if *count > 0 => {
                *count -= 1;
                false
            }
            _ => true,
        });
        if to_remove.values().any(|&count| count > 0) {
            return internal_err!("duration percentile retract_batch: retracted value(s) not present in the window");
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.nanos.capacity() * size_of::<i64>()
    }
}

/// Groups accumulator for a duration percentile: the same state layout as
/// [`PercentileAccumulator`], one `Vec<i64>` of nanoseconds per group.
#[derive(Debug)]
pub(crate) struct PercentileGroupsAccumulator {
    group_nanos: Vec<Vec<i64>>,
    percentile: f64,
}

impl PercentileGroupsAccumulator {
    /// A groups accumulator of percentile `percentile`, already validated.
    pub(crate) fn new(percentile: f64) -> Self {
        Self { group_nanos: vec![], percentile }
    }
}

impl GroupsAccumulator for PercentileGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let nanos = to_nanos(&values[0])?;
        self.group_nanos.resize(total_num_groups, vec![]);
        for_each_valid_row(group_indices, nanos.nulls(), opt_filter, |group, row| {
            self.group_nanos[group].push(nanos.value(row));
        });
        Ok(())
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.group_nanos.resize(total_num_groups, vec![]);
        let group_nanos = &mut self.group_nanos;
        for_each_state_list(&values[0], |row, list| {
            group_nanos[group_indices[row]].extend_from_slice(list);
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let result: IntervalMonthDayNanoArray = emit_to
            .take_needed(&mut self.group_nanos)
            .iter_mut()
            .map(|nanos| evaluate_percentile(nanos, self.percentile))
            .collect();
        Ok(Arc::new(result))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let lists = lists_to_array(emit_to.take_needed(&mut self.group_nanos))?;
        Ok(vec![Arc::new(lists)])
    }

    /// Each input row becomes a one-element list; null or filtered-out rows
    /// become null lists.
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let nanos = to_nanos(&values[0])?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            OffsetBuffer::<i32>::from_lengths(std::iter::repeat_n(1, nanos.len())),
            Arc::new(Int64Array::new(nanos.values().clone(), None)),
            filtered_validity(nanos.nulls(), opt_filter),
        )?;
        Ok(vec![Arc::new(list)])
    }

    fn size(&self) -> usize {
        self.group_nanos.iter().map(|nanos| nanos.capacity() * size_of::<i64>()).sum::<usize>()
            + self.group_nanos.capacity() * size_of::<Vec<i64>>()
            + size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{HOUR, intervals, scalars, state_columns, states};

    fn hours(h: f64) -> ScalarValue {
        ScalarValue::IntervalMonthDayNano(Some(nanos_to_interval((h * HOUR as f64) as i64)))
    }

    #[test]
    fn pure_percentile_matches_postgres() {
        let sorted = [HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR];
        assert_eq!(percentile_cont(&sorted, 0.5), Some(2.5 * HOUR as f64));
        assert_eq!(percentile_cont(&sorted, 0.0), Some(HOUR as f64));
        assert_eq!(percentile_cont(&sorted, 1.0), Some(4.0 * HOUR as f64));
        let p90 = percentile_cont(&sorted, 0.9).unwrap();
        assert!((p90 - 3.7 * HOUR as f64).abs() < 1.0, "{p90}");
        assert_eq!(percentile_nanos(&sorted, 0.9), Some(3 * HOUR + 7 * HOUR / 10));
        assert_eq!(percentile_cont(&[5], 0.3), Some(5.0));
        assert_eq!(percentile_cont(&[1, 2, 3], 0.5), Some(2.0));
    }

    #[test]
    fn pure_percentile_edge_cases() {
        assert_eq!(percentile_cont(&[], 0.5), None);
        assert_eq!(percentile_nanos(&[], 0.5), None);
        assert_eq!(percentile_cont(&[1, 2], f64::NAN), None);
        // Clamped, never out of bounds.
        assert_eq!(percentile_cont(&[1, 2], 1.5), Some(2.0));
        assert_eq!(percentile_cont(&[1, 2], -1.0), Some(1.0));
    }

    #[test]
    fn nanos_are_exact_for_huge_and_extreme_values() {
        // 2^53 + 1 is not representable as f64; it must survive untouched.
        let big = (1_i64 << 53) + 1;
        assert_eq!(percentile_nanos(&[big], 0.5), Some(big));
        assert_eq!(percentile_nanos(&[big, big + 2], 0.5), Some(big + 1));
        assert_eq!(percentile_nanos(&[i64::MIN, i64::MAX], 0.0), Some(i64::MIN));
        assert_eq!(percentile_nanos(&[i64::MIN, i64::MAX], 1.0), Some(i64::MAX));
        let mid = percentile_nanos(&[i64::MIN, i64::MAX], 0.5).unwrap();
        assert!(mid.abs() <= 1024, "{mid}");
        // Rounds half away from zero to the nearest nanosecond.
        assert_eq!(percentile_nanos(&[0, 1], 0.5), Some(1));
        assert_eq!(percentile_nanos(&[-1, 0], 0.5), Some(0));
    }

    #[test]
    fn accumulator_median_and_p90() {
        let input = intervals(&[Some(4 * HOUR), Some(HOUR), None, Some(3 * HOUR), Some(2 * HOUR)]);
        let mut median = PercentileAccumulator::new(0.5);
        median.update_batch(&[Arc::clone(&input)]).unwrap();
        assert_eq!(median.evaluate().unwrap(), hours(2.5));
        // Evaluating twice gives the same answer (window frames do that).
        assert_eq!(median.evaluate().unwrap(), hours(2.5));

        let mut p90 = PercentileAccumulator::new(0.9);
        p90.update_batch(&[input]).unwrap();
        assert_eq!(p90.evaluate().unwrap(), hours(3.7));
    }

    #[test]
    fn accumulator_empty_all_null_and_single() {
        let mut empty = PercentileAccumulator::new(0.5);
        assert_eq!(empty.evaluate().unwrap(), ScalarValue::IntervalMonthDayNano(None));

        let mut nulls = PercentileAccumulator::new(0.5);
        nulls.update_batch(&[intervals(&[None, None])]).unwrap();
        assert_eq!(nulls.evaluate().unwrap(), ScalarValue::IntervalMonthDayNano(None));

        let mut one = PercentileAccumulator::new(0.9);
        one.update_batch(&[intervals(&[Some(26 * HOUR)])]).unwrap();
        assert_eq!(
            one.evaluate().unwrap(),
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(0, 1, 2 * HOUR)))
        );
    }

    #[test]
    fn accumulator_rejects_months() {
        let input: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![IntervalMonthDayNano::new(1, 0, 0)]));
        let err = PercentileAccumulator::new(0.5).update_batch(&[input]).unwrap_err();
        assert!(err.to_string().contains("month"), "{err}");
    }

    #[test]
    fn accumulator_merges_partial_states() {
        let mut left = PercentileAccumulator::new(0.5);
        left.update_batch(&[intervals(&[Some(HOUR), Some(4 * HOUR)])]).unwrap();
        let mut right = PercentileAccumulator::new(0.5);
        right.update_batch(&[intervals(&[Some(3 * HOUR), None, Some(2 * HOUR)])]).unwrap();
        let mut empty = PercentileAccumulator::new(0.5);

        let states = state_columns(&states([&mut left, &mut right, &mut empty]));

        let mut merged = PercentileAccumulator::new(0.5);
        merged.merge_batch(&states).unwrap();
        assert_eq!(merged.evaluate().unwrap(), hours(2.5));
    }

    #[test]
    fn accumulator_retracts() {
        let mut acc = PercentileAccumulator::new(0.5);
        acc.update_batch(&[intervals(&[Some(HOUR), Some(2 * HOUR), Some(2 * HOUR), Some(9 * HOUR)])]).unwrap();
        acc.retract_batch(&[intervals(&[Some(2 * HOUR), None, Some(9 * HOUR)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), hours(1.5));
        let err = acc.retract_batch(&[intervals(&[Some(7 * HOUR)])]).unwrap_err();
        assert!(err.to_string().contains("not present"), "{err}");
    }

    /// Evaluates `rows` (group, value) with a fresh plain accumulator per group.
    fn plain_results(rows: &[(usize, Option<i64>)], groups: usize, p: f64) -> Vec<ScalarValue> {
        (0..groups)
            .map(|group| {
                let values: Vec<Option<i64>> = rows.iter().filter(|(g, _)| *g == group).map(|(_, v)| *v).collect();
                let mut acc = PercentileAccumulator::new(p);
                acc.update_batch(&[intervals(&values)]).unwrap();
                acc.evaluate().unwrap()
            })
            .collect()
    }

    #[test]
    fn groups_accumulator_agrees_with_plain_accumulator() {
        let rows: Vec<(usize, Option<i64>)> = vec![
            (0, Some(HOUR)),
            (1, Some(5 * HOUR)),
            (0, Some(4 * HOUR)),
            (2, None),
            (0, Some(2 * HOUR)),
            (1, None),
            (0, Some(3 * HOUR)),
            (3, Some(7)),
        ];
        let groups = 4;
        let group_indices: Vec<usize> = rows.iter().map(|(g, _)| *g).collect();
        let values = intervals(&rows.iter().map(|(_, v)| *v).collect::<Vec<_>>());
        for p in [0.0, 0.5, 0.9, 1.0] {
            let mut acc = PercentileGroupsAccumulator::new(p);
            acc.update_batch(&[Arc::clone(&values)], &group_indices, None, groups).unwrap();
            let result = scalars(&acc.evaluate(EmitTo::All).unwrap());
            assert_eq!(result, plain_results(&rows, groups, p), "p = {p}");
        }
        let mut acc = PercentileGroupsAccumulator::new(0.5);
        acc.update_batch(&[values], &group_indices, None, groups).unwrap();
        let result = scalars(&acc.evaluate(EmitTo::All).unwrap());
        assert_eq!(result[0], hours(2.5));
        assert_eq!(result[2], ScalarValue::IntervalMonthDayNano(None));
    }

    #[test]
    fn groups_accumulator_filter_state_and_merge() {
        let values = intervals(&[Some(HOUR), Some(2 * HOUR), Some(3 * HOUR), Some(10 * HOUR)]);
        let filter = BooleanArray::from(vec![Some(true), Some(true), None, Some(false)]);
        let mut partial = PercentileGroupsAccumulator::new(0.5);
        partial.update_batch(&[Arc::clone(&values)], &[0, 0, 1, 1], Some(&filter), 2).unwrap();
        let state = partial.state(EmitTo::All).unwrap();

        // Rows of another partition, passed straight through as state.
        let converted = partial.convert_to_state(&[values], Some(&filter)).unwrap();

        let mut fin = PercentileGroupsAccumulator::new(0.5);
        fin.merge_batch(&state, &[1, 0], 2).unwrap();
        fin.merge_batch(&converted, &[0, 0, 0, 0], 2).unwrap();
        let result = scalars(&fin.evaluate(EmitTo::All).unwrap());
        // Group 0 got nothing from `state` row 1 (filtered) and [1h, 2h] from
        // `converted`; group 1 got [1h, 2h] from `state` row 0.
        assert_eq!(result, vec![hours(1.5), hours(1.5)]);
    }

    #[test]
    fn groups_accumulator_emits_first_n() {
        let mut acc = PercentileGroupsAccumulator::new(0.5);
        acc.update_batch(&[intervals(&[Some(HOUR), Some(2 * HOUR), Some(3 * HOUR)])], &[0, 1, 2], None, 3).unwrap();
        let first = scalars(&acc.evaluate(EmitTo::First(2)).unwrap());
        assert_eq!(first, vec![hours(1.0), hours(2.0)]);
        let rest = scalars(&acc.evaluate(EmitTo::All).unwrap());
        assert_eq!(rest, vec![hours(3.0)]);
    }

    #[test]
    fn coercion_accepts_durations_only() {
        use arrow::datatypes::TimeUnit;
        for dt in [DataType::Interval(IntervalUnit::DayTime), DataType::Duration(TimeUnit::Microsecond), DataType::Null]
        {
            assert_eq!(coerce_duration_argument("lead_time", &dt).unwrap(), INTERVAL);
        }
        let err = coerce_duration_argument("lead_time", &DataType::Int64).unwrap_err();
        assert!(err.to_string().contains("lead_time expects an interval"), "{err}");
    }
}
