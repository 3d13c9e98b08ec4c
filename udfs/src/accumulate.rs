//! Crate-private plumbing shared by the aggregate implementations: walking
//! the rows of a batch that count (non-null and passing the `FILTER`
//! clause), reading an argument that must be a constant, refusing
//! `DISTINCT` and naming `Int64` state fields.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::{Result, ScalarValue, not_impl_err, plan_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::utils::format_state_name;
use datafusion::physical_expr::PhysicalExpr;

/// Validity of each row once the input's own nulls and the aggregate's
/// `FILTER (WHERE ...)` are both applied: a row is valid when its value is
/// non-null and the filter is true (a null filter value counts as false).
/// `None` means every row is valid.
pub(crate) fn filtered_validity(nulls: Option<&NullBuffer>, opt_filter: Option<&BooleanArray>) -> Option<NullBuffer> {
    let filter = opt_filter.map(|filter| match filter.nulls() {
        Some(filter_nulls) => filter.values() & filter_nulls.inner(),
        None => filter.values().clone(),
    });
    match (nulls, filter) {
        (None, None) => None,
        (Some(nulls), None) => Some(nulls.clone()),
        (None, Some(filter)) => Some(NullBuffer::new(filter)),
        (Some(nulls), Some(filter)) => Some(NullBuffer::new(nulls.inner() & &filter)),
    }
}

/// Calls `f(group_index, row)` for every row of a `GroupsAccumulator` batch
/// that is valid per [`filtered_validity`].
pub(crate) fn for_each_valid_row(
    group_indices: &[usize],
    nulls: Option<&NullBuffer>,
    opt_filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, usize),
) {
    match filtered_validity(nulls, opt_filter) {
        None => group_indices.iter().enumerate().for_each(|(row, &group_index)| f(group_index, row)),
        Some(validity) => group_indices
            .iter()
            .enumerate()
            .filter(|(row, _)| validity.is_valid(*row))
            .for_each(|(row, &group_index)| f(group_index, row)),
    }
}

/// Value of an aggregate argument that must be a constant (a literal or an
/// expression of literals), found by evaluating it against an empty batch,
/// as DataFusion's own `percentile_cont` does. Anything that reads a column
/// fails that evaluation and is reported as a planning error.
pub(crate) fn constant_argument(expr: &Arc<dyn PhysicalExpr>, fn_name: &str, arg_name: &str) -> Result<ScalarValue> {
    let batch = RecordBatch::new_empty(Arc::new(Schema::empty()));
    match expr.evaluate(&batch) {
        Ok(ColumnarValue::Scalar(value)) => Ok(value),
        _ => plan_err!("the {arg_name} argument of {fn_name} must be a constant, got the expression {expr}"),
    }
}

/// Refuses `DISTINCT`: no DORA aggregate means it (two changes with the same
/// lead time are two changes, two deployments in the same microsecond are
/// two deployments, and a rate over distinct values would count at most one
/// failure and one success), so it is an error rather than silently ignored.
pub(crate) fn reject_distinct(args: &AccumulatorArgs, fn_name: &str) -> Result<()> {
    if args.is_distinct {
        return not_impl_err!("{fn_name}(DISTINCT ...) is not supported");
    }
    Ok(())
}

/// An `Int64` state field of aggregate `aggregate_name`, named after it and
/// `field`.
pub(crate) fn int64_state_field(aggregate_name: &str, field: &str, nullable: bool) -> FieldRef {
    Arc::new(Field::new(format_state_name(aggregate_name, field), DataType::Int64, nullable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_expr::expressions::{Column, lit};

    #[test]
    fn validity_combines_nulls_and_filter() {
        let nulls = NullBuffer::from(vec![true, false, true, true]);
        let filter = BooleanArray::from(vec![Some(true), Some(true), Some(false), None]);
        let validity = filtered_validity(Some(&nulls), Some(&filter)).unwrap();
        let valid: Vec<bool> = (0..4).map(|i| validity.is_valid(i)).collect();
        assert_eq!(valid, [true, false, false, false]);
        assert!(filtered_validity(None, None).is_none());
    }

    #[test]
    fn visits_only_valid_rows() {
        let filter = BooleanArray::from(vec![true, false, true]);
        let mut seen = vec![];
        for_each_valid_row(&[7, 8, 9], None, Some(&filter), |g, row| seen.push((g, row)));
        assert_eq!(seen, [(7, 0), (9, 2)]);
    }

    #[test]
    fn constant_and_column_arguments() {
        let value = constant_argument(&lit(0.5), "f", "x").unwrap();
        assert_eq!(value, ScalarValue::Float64(Some(0.5)));

        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new("p", 0));
        let err = constant_argument(&column, "lead_time", "percentile").unwrap_err();
        assert!(err.to_string().contains("must be a constant"), "{err}");
    }
}
