//! Exact percentiles of durations, shared by `lead_time`,
//! `time_to_restore` and `failed_deployment_recovery_time`.
//!
//! The pure functions [`percentile_cont`] and [`percentile_nanos`] compute a
//! percentile of sorted nanosecond values with PostgreSQL's
//! `percentile_cont` linear interpolation. The crate-private
//! `PercentileAccumulator` and `PercentileGroupsAccumulator` collect the
//! non-null `Interval(MonthDayNano)` inputs of one group (or of many) as
//! `i64` nanoseconds and evaluate to an interval rounded to the nearest
//! nanosecond (selecting the values they need rather than sorting them).
//! [`DurationPercentile`] is the one `AggregateUDFImpl` of the three
//! aggregate functions; each of them is a [`DurationPercentileSpec`] that
//! gives its name, documentation, argument types and percentile.
//! [`DurationPercentiles`] evaluates several percentiles of one argument
//! from one state (see [`crate::combine`]).
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

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, IntervalMonthDayNanoBuilder, ListArray, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, IntervalMonthDayNanoType, IntervalUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;

use crate::DOC_SECTION_DORA;
use crate::accumulate::{constant_argument, filtered_validity, for_each_valid_row, reject_distinct};
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
    interpolate(sorted[lower], sorted[upper], weight)
}

/// `low + (high - low) * weight`, rounded to the nearest nanosecond, from
/// the difference of the two neighbours so that no `f64` rounding of the
/// values themselves creeps in.
fn interpolate(low: i64, high: i64, weight: f64) -> Option<i64> {
    let span = i128::from(high) - i128::from(low);
    let offset = ((span as f64) * weight).round() as i128;
    // The offset lies in [0, span]; the clamp only guards f64 rounding of
    // spans above 2^53 ns.
    let value =
        (i128::from(low) + offset.clamp(0, span.max(0))).clamp(i128::from(low.min(high)), i128::from(low.max(high)));
    i64::try_from(value).ok()
}

/// Percentiles `percentiles` of the unsorted `values`, each equal to
/// [`percentile_nanos`] of them sorted (`None` for no values or a NaN
/// percentile). Reorders `values`: instead of a full sort, it selects the
/// (at most two per percentile) order statistics it needs with
/// `select_nth_unstable`, in ascending order, each selection searching only
/// what lies above the previous one.
pub(crate) fn select_percentiles(values: &mut [i64], percentiles: &[f64]) -> Vec<Option<i64>> {
    let n = values.len();
    let mut ascending: Vec<usize> = (0..percentiles.len()).collect();
    ascending.sort_by(|&a, &b| percentiles[a].total_cmp(&percentiles[b]));
    let mut result = vec![None; percentiles.len()];
    // values[..placed] are the `placed` smallest values, and each index
    // selected so far holds its sorted value; indices come in ascending
    // order, so one below `placed` was selected before.
    let mut placed = 0;
    let mut nth = |index: usize| {
        if index >= placed {
            values[placed..].select_nth_unstable(index - placed);
            placed = index + 1;
        }
        values[index]
    };
    for i in ascending {
        if let Some((lower, upper, weight)) = interpolation_points(n, percentiles[i]) {
            let low = nth(lower);
            result[i] = interpolate(low, nth(upper), weight);
        }
    }
    result
}

/// What a duration percentile accumulator evaluates its values to: one
/// percentile as an interval (each SQL aggregate), or several percentiles
/// of the same values as a struct of intervals, field `p{i}` for the `i`-th
/// ([`DurationPercentiles`], which [`crate::combine::CombinePercentiles`]
/// puts in place of several calls over one argument).
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    percentiles: Vec<f64>,
    /// The struct's fields; `None` for one interval.
    fields: Option<Fields>,
}

impl Evaluation {
    /// One percentile, already validated in `[0, 1]`, as an interval.
    pub(crate) fn interval(percentile: f64) -> Self {
        Self { percentiles: vec![percentile], fields: None }
    }

    /// Several percentiles, already validated, as a struct of intervals.
    pub(crate) fn struct_of(percentiles: Vec<f64>) -> Self {
        let fields = percentile_fields(percentiles.len());
        Self { percentiles, fields: Some(fields) }
    }

    /// One row for each of `groups` (whose values it reorders); NULL
    /// intervals for a group without values.
    fn array<'a>(&self, groups: impl ExactSizeIterator<Item = &'a mut Vec<i64>>) -> ArrayRef {
        let mut columns: Vec<IntervalMonthDayNanoBuilder> =
            self.percentiles.iter().map(|_| IntervalMonthDayNanoBuilder::with_capacity(groups.len())).collect();
        for values in groups {
            for (column, value) in columns.iter_mut().zip(select_percentiles(values, &self.percentiles)) {
                column.append_option(value.map(nanos_to_interval));
            }
        }
        let mut columns: Vec<ArrayRef> =
            columns.iter_mut().map(|column| Arc::new(column.finish()) as ArrayRef).collect();
        match &self.fields {
            Some(fields) => Arc::new(StructArray::new(fields.clone(), columns, None)),
            None => columns.swap_remove(0),
        }
    }

    /// Bytes of the percentiles (the fields are shared).
    fn size(&self) -> usize {
        self.percentiles.capacity() * size_of::<f64>()
    }

    /// The value of one group (whose values it reorders).
    fn scalar(&self, values: &mut Vec<i64>) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&self.array(std::iter::once(values)), 0)
    }
}

/// The struct fields of `n` percentiles: `p0`, `p1`, … in argument order.
fn percentile_fields(n: usize) -> Fields {
    (0..n).map(|i| Field::new(format!("p{i}"), INTERVAL, true)).collect()
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
        Ok(Box::new(PercentileAccumulator::new(Evaluation::interval(S::percentile(&args)?))))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        reject_distinct(&args, S::NAME)?;
        Ok(Box::new(PercentileGroupsAccumulator::new(Evaluation::interval(S::percentile(&args)?))))
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

/// The value of a constant percentile argument of `fn_name`, validated to
/// lie in `[0, 1]`.
pub(crate) fn constant_percentile(expr: &Arc<dyn PhysicalExpr>, fn_name: &str) -> Result<f64> {
    match constant_argument(expr, fn_name, "percentile")? {
        ScalarValue::Float64(Some(p)) if (0.0..=1.0).contains(&p) => Ok(p),
        ScalarValue::Float64(Some(p)) => {
            plan_err!("the percentile argument of {fn_name} must be between 0 and 1 inclusive, got {p}")
        }
        value if value.is_null() => plan_err!("the percentile argument of {fn_name} must not be NULL"),
        value => {
            plan_err!("the percentile argument of {fn_name} must be a float8 constant, got {}", value.data_type())
        }
    }
}

/// Several percentiles of one duration from one state:
/// `NAME_percentiles(x, p1, …, pn)` returns a struct of `n` intervals, field
/// `p{i}` being percentile `p{i+1}` of the non-null `x` (each a constant in
/// `[0, 1]`), exactly as `n` separate calls would. It has no SQL name:
/// [`crate::combine::CombinePercentiles`] puts it in place of several calls
/// of a duration percentile over the same `x` in one aggregation, so their
/// values are held once instead of once per call.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DurationPercentiles {
    name: String,
    signature: Signature,
}

impl DurationPercentiles {
    /// The combined form of aggregate `of` (its name).
    pub(crate) fn new(of: &str) -> Self {
        Self { name: format!("{of}_percentiles"), signature: Signature::user_defined(Volatility::Immutable) }
    }

    fn percentiles(&self, args: &AccumulatorArgs) -> Result<Vec<f64>> {
        reject_distinct(args, &self.name)?;
        let percentiles =
            args.exprs[1..].iter().map(|expr| constant_percentile(expr, &self.name)).collect::<Result<Vec<f64>>>()?;
        if percentiles.is_empty() {
            return plan_err!("{} takes at least one percentile", self.name);
        }
        Ok(percentiles)
    }
}

impl AggregateUDFImpl for DurationPercentiles {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [value, percentiles @ ..] if percentiles.iter().all(|p| p.is_numeric() || p.is_null()) => {
                Ok(std::iter::once(coerce_duration_argument(&self.name, value)?)
                    .chain(percentiles.iter().map(|_| DataType::Float64))
                    .collect())
            }
            _ => plan_err!("{} takes an interval and numeric percentiles, got {arg_types:?}", self.name),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(percentile_fields(arg_types.len().saturating_sub(1))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(percentile_state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PercentileAccumulator::new(Evaluation::struct_of(self.percentiles(&args)?))))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(PercentileGroupsAccumulator::new(Evaluation::struct_of(self.percentiles(&args)?))))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
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
/// other partial states; `evaluate` selects and interpolates.
#[derive(Debug)]
pub(crate) struct PercentileAccumulator {
    nanos: Vec<i64>,
    evaluation: Evaluation,
}

impl PercentileAccumulator {
    pub(crate) fn new(evaluation: Evaluation) -> Self {
        Self { nanos: vec![], evaluation }
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
        self.evaluation.scalar(&mut self.nanos)
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
        size_of_val(self) + self.nanos.capacity() * size_of::<i64>() + self.evaluation.size()
    }
}

/// Groups accumulator for a duration percentile: the same state layout as
/// [`PercentileAccumulator`], one `Vec<i64>` of nanoseconds per group (8
/// bytes a value; many values fall into few groups in the queries this is
/// for, where a flat buffer with a group index per value would cost 12 or
/// 16).
#[derive(Debug)]
pub(crate) struct PercentileGroupsAccumulator {
    group_nanos: Vec<Vec<i64>>,
    /// Bytes the groups' vectors hold allocated (their capacities), kept up
    /// to date as they grow and are emitted: DataFusion calls `size` after
    /// every batch, which must not walk every group.
    values_bytes: usize,
    evaluation: Evaluation,
}

impl PercentileGroupsAccumulator {
    pub(crate) fn new(evaluation: Evaluation) -> Self {
        Self { group_nanos: vec![], values_bytes: 0, evaluation }
    }

    /// Takes the groups `emit_to` names out of the accumulator.
    fn take_groups(&mut self, emit_to: EmitTo) -> Vec<Vec<i64>> {
        let taken = emit_to.take_needed(&mut self.group_nanos);
        self.values_bytes -= taken.iter().map(|nanos| nanos.capacity() * size_of::<i64>()).sum::<usize>();
        taken
    }
}

/// Runs `grow` on `nanos` and adds what it allocated to `bytes`.
fn grow_counted(bytes: &mut usize, nanos: &mut Vec<i64>, grow: impl FnOnce(&mut Vec<i64>)) {
    let before = nanos.capacity();
    grow(nanos);
    *bytes += (nanos.capacity() - before) * size_of::<i64>();
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
        let (group_nanos, bytes) = (&mut self.group_nanos, &mut self.values_bytes);
        for_each_valid_row(group_indices, nanos.nulls(), opt_filter, |group, row| {
            grow_counted(bytes, &mut group_nanos[group], |group| group.push(nanos.value(row)));
        });
        Ok(())
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.group_nanos.resize(total_num_groups, vec![]);
        let (group_nanos, bytes) = (&mut self.group_nanos, &mut self.values_bytes);
        for_each_state_list(&values[0], |row, list| {
            grow_counted(bytes, &mut group_nanos[group_indices[row]], |group| group.extend_from_slice(list));
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut groups = self.take_groups(emit_to);
        Ok(self.evaluation.array(groups.iter_mut()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let lists = lists_to_array(self.take_groups(emit_to))?;
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
        self.values_bytes
            + self.group_nanos.capacity() * size_of::<Vec<i64>>()
            + size_of_val(self)
            + self.evaluation.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{HOUR, intervals, scalars, state_columns, states};
    use arrow::array::IntervalMonthDayNanoArray;
    use arrow::datatypes::IntervalMonthDayNano;

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
        let mut median = PercentileAccumulator::new(Evaluation::interval(0.5));
        median.update_batch(&[Arc::clone(&input)]).unwrap();
        assert_eq!(median.evaluate().unwrap(), hours(2.5));
        // Evaluating twice gives the same answer (window frames do that).
        assert_eq!(median.evaluate().unwrap(), hours(2.5));

        let mut p90 = PercentileAccumulator::new(Evaluation::interval(0.9));
        p90.update_batch(&[input]).unwrap();
        assert_eq!(p90.evaluate().unwrap(), hours(3.7));
    }

    #[test]
    fn accumulator_empty_all_null_and_single() {
        let mut empty = PercentileAccumulator::new(Evaluation::interval(0.5));
        assert_eq!(empty.evaluate().unwrap(), ScalarValue::IntervalMonthDayNano(None));

        let mut nulls = PercentileAccumulator::new(Evaluation::interval(0.5));
        nulls.update_batch(&[intervals(&[None, None])]).unwrap();
        assert_eq!(nulls.evaluate().unwrap(), ScalarValue::IntervalMonthDayNano(None));

        let mut one = PercentileAccumulator::new(Evaluation::interval(0.9));
        one.update_batch(&[intervals(&[Some(26 * HOUR)])]).unwrap();
        assert_eq!(
            one.evaluate().unwrap(),
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(0, 1, 2 * HOUR)))
        );
    }

    #[test]
    fn accumulator_rejects_months() {
        let input: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![IntervalMonthDayNano::new(1, 0, 0)]));
        let err = PercentileAccumulator::new(Evaluation::interval(0.5)).update_batch(&[input]).unwrap_err();
        assert!(err.to_string().contains("month"), "{err}");
    }

    #[test]
    fn accumulator_merges_partial_states() {
        let mut left = PercentileAccumulator::new(Evaluation::interval(0.5));
        left.update_batch(&[intervals(&[Some(HOUR), Some(4 * HOUR)])]).unwrap();
        let mut right = PercentileAccumulator::new(Evaluation::interval(0.5));
        right.update_batch(&[intervals(&[Some(3 * HOUR), None, Some(2 * HOUR)])]).unwrap();
        let mut empty = PercentileAccumulator::new(Evaluation::interval(0.5));

        let states = state_columns(&states([&mut left, &mut right, &mut empty]));

        let mut merged = PercentileAccumulator::new(Evaluation::interval(0.5));
        merged.merge_batch(&states).unwrap();
        assert_eq!(merged.evaluate().unwrap(), hours(2.5));
    }

    #[test]
    fn accumulator_retracts() {
        let mut acc = PercentileAccumulator::new(Evaluation::interval(0.5));
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
                let mut acc = PercentileAccumulator::new(Evaluation::interval(p));
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
            let mut acc = PercentileGroupsAccumulator::new(Evaluation::interval(p));
            acc.update_batch(&[Arc::clone(&values)], &group_indices, None, groups).unwrap();
            let result = scalars(&acc.evaluate(EmitTo::All).unwrap());
            assert_eq!(result, plain_results(&rows, groups, p), "p = {p}");
        }
        let mut acc = PercentileGroupsAccumulator::new(Evaluation::interval(0.5));
        acc.update_batch(&[values], &group_indices, None, groups).unwrap();
        let result = scalars(&acc.evaluate(EmitTo::All).unwrap());
        assert_eq!(result[0], hours(2.5));
        assert_eq!(result[2], ScalarValue::IntervalMonthDayNano(None));
    }

    #[test]
    fn groups_accumulator_filter_state_and_merge() {
        let values = intervals(&[Some(HOUR), Some(2 * HOUR), Some(3 * HOUR), Some(10 * HOUR)]);
        let filter = BooleanArray::from(vec![Some(true), Some(true), None, Some(false)]);
        let mut partial = PercentileGroupsAccumulator::new(Evaluation::interval(0.5));
        partial.update_batch(&[Arc::clone(&values)], &[0, 0, 1, 1], Some(&filter), 2).unwrap();
        let state = partial.state(EmitTo::All).unwrap();

        // Rows of another partition, passed straight through as state.
        let converted = partial.convert_to_state(&[values], Some(&filter)).unwrap();

        let mut fin = PercentileGroupsAccumulator::new(Evaluation::interval(0.5));
        fin.merge_batch(&state, &[1, 0], 2).unwrap();
        fin.merge_batch(&converted, &[0, 0, 0, 0], 2).unwrap();
        let result = scalars(&fin.evaluate(EmitTo::All).unwrap());
        // Group 0 got nothing from `state` row 1 (filtered) and [1h, 2h] from
        // `converted`; group 1 got [1h, 2h] from `state` row 0.
        assert_eq!(result, vec![hours(1.5), hours(1.5)]);
    }

    #[test]
    fn groups_accumulator_emits_first_n() {
        let mut acc = PercentileGroupsAccumulator::new(Evaluation::interval(0.5));
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

    /// Deterministic pseudo-random nanoseconds with many repeats.
    fn pseudo_random(n: usize, seed: u64) -> Vec<i64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) % 97) as i64 * HOUR / 7 - 3 * HOUR
            })
            .collect()
    }

    #[test]
    fn selected_percentiles_equal_the_sorted_reference() {
        let sets: [&[f64]; 5] =
            [&[0.0, 0.5, 0.9, 1.0], &[0.9, 0.5], &[0.31, 0.3, 0.7, 0.3], &[1.0, 0.0], &[f64::NAN, 0.5]];
        for n in [0, 1, 2, 3, 5, 10, 11, 64, 1000] {
            for (seed, percentiles) in sets.iter().enumerate() {
                let mut values = pseudo_random(n, seed as u64);
                let mut sorted = values.clone();
                sorted.sort_unstable();
                let expected: Vec<Option<i64>> = percentiles.iter().map(|&p| percentile_nanos(&sorted, p)).collect();
                assert_eq!(select_percentiles(&mut values, percentiles), expected, "n = {n}, {percentiles:?}");
                values.sort_unstable();
                assert_eq!(values, sorted, "only reordered");
            }
        }
    }

    /// Group `i % groups` of `pseudo_random` values, every 7th NULL.
    fn grouped_rows(n: usize, groups: usize) -> (ArrayRef, Vec<usize>) {
        let values: Vec<Option<i64>> =
            pseudo_random(n, 9).into_iter().enumerate().map(|(i, v)| (i % 7 != 3).then_some(v)).collect();
        (intervals(&values), (0..n).map(|i| i % groups).collect())
    }

    /// Field `p{i}` of a struct result, as scalars.
    fn field(result: &ArrayRef, i: usize) -> Vec<ScalarValue> {
        scalars(result.as_struct().column_by_name(&format!("p{i}")).unwrap())
    }

    #[test]
    fn one_state_for_several_percentiles_equals_separate_accumulators() {
        let percentiles = vec![0.0, 0.5, 0.9, 1.0];
        // Group 5 of 6 gets no rows at all (total_num_groups 7), group 3
        // only NULLs and filtered-out rows.
        let (values, mut groups) = grouped_rows(500, 6);
        groups.iter_mut().filter(|g| **g == 5).for_each(|g| *g = 3);
        let filter: BooleanArray = (0..500).map(|i| Some(groups[i] != 3 && i % 11 != 0)).collect();

        // Two partial accumulators over halves of the rows, merged.
        let mut partials: Vec<PercentileGroupsAccumulator> =
            (0..2).map(|_| PercentileGroupsAccumulator::new(Evaluation::struct_of(percentiles.clone()))).collect();
        for (half, partial) in partials.iter_mut().enumerate() {
            let (offset, len) = (half * 250, 250);
            let filter = filter.slice(offset, len);
            partial
                .update_batch(&[values.slice(offset, len)], &groups[offset..offset + len], Some(&filter), 7)
                .unwrap();
        }
        let mut combined = PercentileGroupsAccumulator::new(Evaluation::struct_of(percentiles.clone()));
        for partial in &mut partials {
            let state = partial.state(EmitTo::All).unwrap();
            combined.merge_batch(&state, &[0, 1, 2, 3, 4, 5, 6], 7).unwrap();
        }
        let first = combined.evaluate(EmitTo::First(4)).unwrap();
        let rest = combined.evaluate(EmitTo::All).unwrap();

        for (i, &p) in percentiles.iter().enumerate() {
            let mut separate = PercentileGroupsAccumulator::new(Evaluation::interval(p));
            separate.update_batch(&[Arc::clone(&values)], &groups, Some(&filter), 7).unwrap();
            let expected = scalars(&separate.evaluate(EmitTo::All).unwrap());
            let got: Vec<ScalarValue> = field(&first, i).into_iter().chain(field(&rest, i)).collect();
            assert_eq!(got, expected, "p = {p}");
            // Against the sorted reference, group by group.
            for (group, value) in got.iter().enumerate() {
                let mut nanos: Vec<i64> = (0..500)
                    .filter(|&row| groups[row] == group && filter.value(row) && values.is_valid(row))
                    .map(|row| interval_to_nanos(values.as_primitive::<IntervalMonthDayNanoType>().value(row)).unwrap())
                    .collect();
                nanos.sort_unstable();
                let reference = percentile_nanos(&nanos, p).map(nanos_to_interval);
                assert_eq!(value, &ScalarValue::IntervalMonthDayNano(reference), "group {group}, p = {p}");
            }
            assert_eq!(got[3], ScalarValue::IntervalMonthDayNano(None));
            assert_eq!(got[5], ScalarValue::IntervalMonthDayNano(None));
        }

        // The plain accumulator of one group gives the same struct.
        let group: Vec<Option<i64>> = (0..500)
            .filter(|&row| groups[row] == 2 && filter.value(row))
            .map(|row| {
                values
                    .is_valid(row)
                    .then(|| interval_to_nanos(values.as_primitive::<IntervalMonthDayNanoType>().value(row)).unwrap())
            })
            .collect();
        let mut plain = PercentileAccumulator::new(Evaluation::struct_of(percentiles.clone()));
        plain.update_batch(&[intervals(&group)]).unwrap();
        let ScalarValue::Struct(plain) = plain.evaluate().unwrap() else { panic!("not a struct") };
        let plain: ArrayRef = plain;
        for i in 0..percentiles.len() {
            assert_eq!(field(&plain, i)[0], field(&first, i)[2], "p{i}");
        }
    }

    #[test]
    fn size_reports_the_values_held() {
        let (values, groups) = grouped_rows(10_000, 3);
        let mut acc = PercentileGroupsAccumulator::new(Evaluation::struct_of(vec![0.5, 0.9]));
        let empty = acc.size();
        acc.update_batch(&[Arc::clone(&values)], &groups, None, 3).unwrap();
        let held: usize = acc.group_nanos.iter().map(|g| g.capacity() * size_of::<i64>()).sum();
        let non_null = values.len() - values.null_count();
        assert!(held >= non_null * size_of::<i64>());
        assert_eq!(acc.size(), empty + held + acc.group_nanos.capacity() * size_of::<Vec<i64>>());
        let state = acc.state(EmitTo::First(1)).unwrap();
        let held: usize = acc.group_nanos.iter().map(|g| g.capacity() * size_of::<i64>()).sum();
        assert_eq!(acc.values_bytes, held, "emitted groups no longer counted");
        acc.merge_batch(&state, &[2], 3).unwrap();
        let held: usize = acc.group_nanos.iter().map(|g| g.capacity() * size_of::<i64>()).sum();
        assert_eq!(acc.values_bytes, held, "merged values counted");
        acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(acc.values_bytes, 0);
    }
}
