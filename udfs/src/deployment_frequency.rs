//! [`DeploymentFrequency`]: `deployment_frequency(ts timestamptz [, grain
//! text])`, the DORA "deployment frequency" aggregate.

use std::mem::size_of_val;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, FieldRef, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF, Signature,
    Volatility,
};

use crate::DOC_SECTION_DORA;
use crate::accumulate::{constant_argument, filtered_validity, for_each_valid_row, int64_state_field, reject_distinct};
use crate::bucket::{Grain, bucket_end, bucket_start, days_in};

/// Grain used when `deployment_frequency` is called with one argument.
pub const DEFAULT_GRAIN: Grain = Grain::Day;

/// `deployment_frequency(ts timestamptz [, grain text]) -> float8`
///
/// Deployments per day: the number of non-null timestamps divided by the
/// number of days spanned, from the start of the `grain` bucket containing
/// the earliest timestamp to the end of the bucket containing the latest.
/// `grain` is a constant `'day'` (the default), `'week'` (ISO weeks, Monday
/// 00:00 UTC) or `'month'` (UTC calendar months). Any timestamp type is
/// accepted and read as a UTC instant. A group without deployments gives
/// `0.0`, never NULL.
///
/// ```sql
/// > SELECT service, deployment_frequency(finished_at, 'week') AS per_day
///   FROM deployments
///   WHERE status = 'succeeded' AND environment = 'production'
///   GROUP BY service;
/// +---------+---------------------+
/// | service | per_day             |
/// +---------+---------------------+
/// | api     | 0.42857142857142855 |
/// +---------+---------------------+
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DeploymentFrequency {
    signature: Signature,
}

impl Default for DeploymentFrequency {
    fn default() -> Self {
        Self::new()
    }
}

impl DeploymentFrequency {
    /// A new `deployment_frequency` implementation.
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// The `deployment_frequency` aggregate, shared.
pub fn deployment_frequency_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> =
        LazyLock::new(|| Arc::new(AggregateUDF::from(DeploymentFrequency::new())));
    Arc::clone(&UDAF)
}

/// The type the timestamp argument is coerced to.
fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl AggregateUDFImpl for DeploymentFrequency {
    fn name(&self) -> &str {
        "deployment_frequency"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let timestamp = |data_type: &DataType| match data_type {
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null => Ok(utc_micros()),
            other => plan_err!("deployment_frequency expects a timestamp, got {other}"),
        };
        match arg_types {
            [ts] => Ok(vec![timestamp(ts)?]),
            [ts, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null] => {
                Ok(vec![timestamp(ts)?, DataType::Utf8])
            }
            [_, other] => plan_err!(
                "the grain argument of deployment_frequency must be text ('day', 'week' or 'month'), got {other}"
            ),
            _ => plan_err!(
                "deployment_frequency takes 1 or 2 arguments (ts timestamptz [, grain text]), got {}",
                arg_types.len()
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(Some(0.0)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            int64_state_field(args.name, "count", false),
            int64_state_field(args.name, "min", true),
            int64_state_field(args.name, "max", true),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(DeploymentFrequencyAccumulator { span: Span::EMPTY, grain: grain_argument(&args)? }))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(DeploymentFrequencyGroupsAccumulator { spans: vec![], grain: grain_argument(&args)? }))
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
                "Deployment frequency per day: count of non-null timestamps divided by the days from the start of the grain bucket of the earliest to the end of the bucket of the latest; 0 for no deployments.",
                "deployment_frequency(ts [, grain])",
            )
            .with_sql_example(
                "SELECT service, deployment_frequency(finished_at, 'week') FROM deployments WHERE status = 'succeeded' GROUP BY service;",
            )
            .with_argument("ts", "Timestamp of each deployment (any timestamp type, read as UTC).")
            .with_argument("grain", "Constant 'day' (default), 'week' or 'month'.")
            .build()
        });
        Some(&DOCUMENTATION)
    }
}

/// The constant grain argument (and a refusal of `DISTINCT`, which would
/// count two deployments finishing in the same microsecond as one).
fn grain_argument(args: &AccumulatorArgs) -> Result<Grain> {
    reject_distinct(args, "deployment_frequency")?;
    let Some(expr) = args.exprs.get(1) else {
        return Ok(DEFAULT_GRAIN);
    };
    let value = constant_argument(expr, "deployment_frequency", "grain")?;
    match value.try_as_str() {
        Some(Some(grain)) => grain.parse(),
        Some(None) => plan_err!("the grain argument of deployment_frequency must not be NULL"),
        None => plan_err!("the grain argument of deployment_frequency must be text, got {}", value.data_type()),
    }
}

/// What a group has seen: how many timestamps, and the earliest and latest
/// (µs since the epoch, UTC; meaningless while `count` is 0).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    count: i64,
    min: i64,
    max: i64,
}

impl Span {
    const EMPTY: Span = Span { count: 0, min: i64::MAX, max: i64::MIN };

    fn add(&mut self, ts: i64) {
        self.merge(Span { count: 1, min: ts, max: ts });
    }

    fn merge(&mut self, other: Span) {
        if other.count > 0 {
            self.count += other.count;
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
    }

    /// Deployments per day over the buckets spanned; 0 for no deployments.
    fn frequency(&self, grain: Grain) -> f64 {
        per_day(self.count, bucket_start(self.min, grain), bucket_start(self.max, grain), grain)
    }
}

/// `count` deployments per day over the whole `grain` buckets from the one
/// starting at `first_bucket` to the one starting at `last_bucket`; 0 for
/// none. The one definition of the rate, which the engine's `dora_metrics`
/// uses too.
pub fn per_day(count: i64, first_bucket: i64, last_bucket: i64, grain: Grain) -> f64 {
    if count == 0 {
        return 0.0;
    }
    count as f64 / days_in(first_bucket, bucket_end(last_bucket, grain))
}

/// The input column, checked to be `Timestamp(Microsecond, _)`.
fn input_column(values: &[ArrayRef]) -> Result<&arrow::array::TimestampMicrosecondArray> {
    match values.first().and_then(|v| v.as_primitive_opt::<TimestampMicrosecondType>()) {
        Some(ts) => Ok(ts),
        None => internal_err!("deployment_frequency expects a Timestamp(Microsecond) input"),
    }
}

/// Calls `f(row, span)` for every row of a `(count, min, max)` state.
fn for_each_state_span(states: &[ArrayRef], mut f: impl FnMut(usize, Span)) -> Result<()> {
    let [count, min, max] = states else {
        return internal_err!("deployment_frequency state must have 3 columns, got {}", states.len());
    };
    let (Some(count), Some(min), Some(max)) = (
        count.as_primitive_opt::<Int64Type>(),
        min.as_primitive_opt::<Int64Type>(),
        max.as_primitive_opt::<Int64Type>(),
    ) else {
        return internal_err!("deployment_frequency state must be three Int64 columns");
    };
    for row in 0..count.len() {
        let span = Span { count: count.value(row), min: min.value(row), max: max.value(row) };
        f(row, span);
    }
    Ok(())
}

/// State columns of `spans`: `min`/`max` are NULL where `count` is 0.
fn spans_to_state(spans: &[Span]) -> Vec<ArrayRef> {
    let bound = |pick: fn(&Span) -> i64| -> Int64Array {
        spans.iter().map(|span| (span.count > 0).then(|| pick(span))).collect()
    };
    vec![
        Arc::new(spans.iter().map(|span| span.count).collect::<Int64Array>()),
        Arc::new(bound(|span| span.min)),
        Arc::new(bound(|span| span.max)),
    ]
}

/// Accumulator of one group.
///
/// State layout: three `Int64` fields: `count` (non-null timestamps seen,
/// never NULL), then `min` and `max` (earliest and latest timestamp, µs
/// since the epoch UTC; NULL while `count` is 0).
#[derive(Debug)]
struct DeploymentFrequencyAccumulator {
    span: Span,
    grain: Grain,
}

impl Accumulator for DeploymentFrequencyAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        input_column(values)?.iter().flatten().for_each(|ts| self.span.add(ts));
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for_each_state_span(states, |_, span| self.span.merge(span))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        spans_to_state(&[self.span]).iter().map(|column| ScalarValue::try_from_array(column, 0)).collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(Some(self.span.frequency(self.grain))))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// Groups accumulator: the same `(count, min, max)` state, one [`Span`] per
/// group.
#[derive(Debug)]
struct DeploymentFrequencyGroupsAccumulator {
    spans: Vec<Span>,
    grain: Grain,
}

impl GroupsAccumulator for DeploymentFrequencyGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let ts = input_column(values)?;
        self.spans.resize(total_num_groups, Span::EMPTY);
        for_each_valid_row(group_indices, ts.nulls(), opt_filter, |group, row| {
            self.spans[group].add(ts.value(row));
        });
        Ok(())
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.spans.resize(total_num_groups, Span::EMPTY);
        let spans = &mut self.spans;
        for_each_state_span(values, |row, span| spans[group_indices[row]].merge(span))
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let frequencies: Float64Array = emit_to
            .take_needed(&mut self.spans)
            .iter()
            .map(|span| span.frequency(self.grain))
            .collect::<Vec<f64>>()
            .into();
        Ok(Arc::new(frequencies))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(spans_to_state(&emit_to.take_needed(&mut self.spans)))
    }

    /// Each row becomes a span of its own timestamp, or an empty span if
    /// null or filtered out.
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let ts = input_column(values)?;
        let validity = filtered_validity(ts.nulls(), opt_filter);
        let spans: Vec<Span> = (0..ts.len())
            .map(|row| {
                if validity.as_ref().is_none_or(|v| v.is_valid(row)) {
                    let value = ts.value(row);
                    Span { count: 1, min: value, max: value }
                } else {
                    Span::EMPTY
                }
            })
            .collect();
        Ok(spans_to_state(&spans))
    }

    fn size(&self) -> usize {
        self.spans.capacity() * size_of::<Span>() + size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{state_columns, states};
    use arrow::array::TimestampMicrosecondArray;
    use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;

    fn ts(s: &str) -> i64 {
        string_to_timestamp_nanos(s).unwrap() / 1000
    }

    fn timestamps(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(values.iter().map(|v| v.map(ts)).collect::<TimestampMicrosecondArray>().with_timezone("UTC"))
    }

    fn accumulator(grain: Grain) -> DeploymentFrequencyAccumulator {
        DeploymentFrequencyAccumulator { span: Span::EMPTY, grain }
    }

    fn frequency(grain: Grain, values: &[Option<&str>]) -> ScalarValue {
        let mut acc = accumulator(grain);
        acc.update_batch(&[timestamps(values)]).unwrap();
        acc.evaluate().unwrap()
    }

    #[test]
    fn empty_and_all_null_are_zero() {
        assert_eq!(accumulator(Grain::Day).evaluate().unwrap(), ScalarValue::Float64(Some(0.0)));
        assert_eq!(frequency(Grain::Week, &[None, None]), ScalarValue::Float64(Some(0.0)));
    }

    #[test]
    fn one_deployment_per_grain() {
        let one = [Some("2024-03-06T12:00:00Z")];
        assert_eq!(frequency(Grain::Day, &one), ScalarValue::Float64(Some(1.0)));
        assert_eq!(frequency(Grain::Week, &one), ScalarValue::Float64(Some(1.0 / 7.0)));
        assert_eq!(frequency(Grain::Month, &one), ScalarValue::Float64(Some(1.0 / 31.0)));
    }

    #[test]
    fn spans_whole_buckets() {
        // Sunday 23:30 UTC and the following Monday: two ISO weeks.
        let values = [Some("2024-03-03T23:30:00Z"), None, Some("2024-03-04T00:10:00Z")];
        assert_eq!(frequency(Grain::Week, &values), ScalarValue::Float64(Some(2.0 / 14.0)));
        assert_eq!(frequency(Grain::Day, &values), ScalarValue::Float64(Some(1.0)));
        // February 2024 alone: 29 days.
        let feb = [Some("2024-02-01T00:00:00Z"), Some("2024-02-29T23:59:59Z")];
        assert_eq!(frequency(Grain::Month, &feb), ScalarValue::Float64(Some(2.0 / 29.0)));
    }

    #[test]
    fn merges_partial_states() {
        let mut left = accumulator(Grain::Day);
        left.update_batch(&[timestamps(&[Some("2024-01-01T10:00:00Z")])]).unwrap();
        let mut right = accumulator(Grain::Day);
        right.update_batch(&[timestamps(&[Some("2024-01-03T10:00:00Z"), Some("2024-01-02T00:00:00Z")])]).unwrap();
        let mut empty = accumulator(Grain::Day);

        let states = states([&mut left, &mut right, &mut empty]);
        assert_eq!(states[2][1], ScalarValue::Int64(None));
        let columns = state_columns(&states);
        let mut merged = accumulator(Grain::Day);
        merged.merge_batch(&columns).unwrap();
        assert_eq!(merged.evaluate().unwrap(), ScalarValue::Float64(Some(1.0)));
    }

    #[test]
    fn groups_accumulator_agrees_with_plain_accumulator() {
        let rows = [
            (0, Some("2024-01-01T10:00:00Z")),
            (1, Some("2024-02-10T10:00:00Z")),
            (0, Some("2024-01-20T10:00:00Z")),
            (2, None),
            (1, Some("2024-02-11T10:00:00Z")),
            (0, None),
        ];
        let groups = 4;
        let indices: Vec<usize> = rows.iter().map(|(g, _)| *g).collect();
        let input = timestamps(&rows.iter().map(|(_, v)| *v).collect::<Vec<_>>());
        for grain in Grain::ALL {
            let mut acc = DeploymentFrequencyGroupsAccumulator { spans: vec![], grain };
            acc.update_batch(&[Arc::clone(&input)], &indices, None, groups).unwrap();
            let result = acc.evaluate(EmitTo::All).unwrap();
            assert_eq!(result.null_count(), 0);
            for group in 0..groups {
                let values: Vec<Option<&str>> = rows.iter().filter(|(g, _)| *g == group).map(|(_, v)| *v).collect();
                assert_eq!(
                    ScalarValue::try_from_array(&result, group).unwrap(),
                    frequency(grain, &values),
                    "{grain} group {group}"
                );
            }
        }
    }

    #[test]
    fn groups_filter_state_and_merge() {
        let input = timestamps(&[
            Some("2024-01-01T00:00:00Z"),
            Some("2024-01-05T00:00:00Z"),
            None,
            Some("2024-01-02T00:00:00Z"),
        ]);
        let filter = BooleanArray::from(vec![true, false, true, true]);
        let mut partial = DeploymentFrequencyGroupsAccumulator { spans: vec![], grain: Grain::Day };
        partial.update_batch(&[Arc::clone(&input)], &[0, 0, 1, 0], Some(&filter), 2).unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        assert!(state[1].is_null(1), "empty group has a NULL min");
        let converted = partial.convert_to_state(&[input], Some(&filter)).unwrap();

        let mut fin = DeploymentFrequencyGroupsAccumulator { spans: vec![], grain: Grain::Day };
        fin.merge_batch(&state, &[0, 1], 2).unwrap();
        fin.merge_batch(&converted, &[1, 1, 1, 1], 2).unwrap();
        let result = fin.evaluate(EmitTo::All).unwrap();
        let result = result.as_primitive::<arrow::datatypes::Float64Type>();
        // Group 0: Jan 1 and Jan 2 -> 2 deployments over 2 days.
        // Group 1: the same two rows through convert_to_state.
        assert_eq!(result.values().to_vec(), vec![1.0, 1.0]);
    }

    #[test]
    fn coercion() {
        let udf = DeploymentFrequency::new();
        let ns_offset = DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into()));
        assert_eq!(udf.coerce_types(std::slice::from_ref(&ns_offset)).unwrap(), vec![utc_micros()]);
        assert_eq!(
            udf.coerce_types(&[DataType::Timestamp(TimeUnit::Second, None), DataType::Utf8View]).unwrap(),
            vec![utc_micros(), DataType::Utf8]
        );
        assert!(udf.coerce_types(&[DataType::Int64]).is_err());
        assert!(udf.coerce_types(&[ns_offset.clone(), DataType::Int64]).is_err());
        assert!(udf.coerce_types(&[]).is_err());
    }
}
