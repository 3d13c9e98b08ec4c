//! How the model's tables lie in Parquet (and so in the published Delta
//! tables), which has no type for Arrow's month-day-nano intervals: a
//! duration `d` is stored as `d_us`, its µs (`Int64`), and made an interval
//! again, by [`nanos_to_interval`] like everywhere else, when read.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, IntervalMonthDayNanoArray, RecordBatch};
use arrow::datatypes::{DataType, Field, IntervalMonthDayNanoType, IntervalUnit, Schema, SchemaRef};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, col,
};
use leadline_udfs::{interval_to_nanos, nanos_to_interval};

use crate::error::Result;

const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);

/// The stored name of an interval column: the unit is in the name.
fn micros_name(name: &str) -> String {
    format!("{name}_us")
}

/// `schema` with every interval column as µs.
pub fn stored_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if *f.data_type() == INTERVAL {
                Field::new(micros_name(f.name()), DataType::Int64, f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// `batch` as stored.
pub fn to_stored(batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            if *c.data_type() != INTERVAL {
                return Ok(c.clone());
            }
            let micros: Int64Array = c
                .as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| v.map(|i| interval_to_nanos(i).map(|n| n / 1000)).transpose())
                .collect::<DfResult<_>>()?;
            Ok(Arc::new(micros) as ArrayRef)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(stored_schema(&batch.schema()), columns)?)
}

/// A stored batch read back as `schema`.
pub fn from_stored(batch: &RecordBatch, schema: SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| if *f.data_type() == INTERVAL { intervals(c) } else { c.clone() })
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn intervals(micros: &ArrayRef) -> ArrayRef {
    let values: IntervalMonthDayNanoArray = micros
        .as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .map(|v| v.map(|us| nanos_to_interval(us.saturating_mul(1000))))
        .collect();
    Arc::new(values)
}

/// The expressions that read a stored table as `schema`.
pub fn read_as(schema: &Schema) -> Vec<Expr> {
    let udf = Arc::new(ScalarUDF::new_from_impl(MicrosToInterval::new()));
    schema
        .fields()
        .iter()
        .map(|f| {
            if *f.data_type() == INTERVAL {
                udf.call(vec![col(micros_name(f.name()))]).alias(f.name())
            } else {
                col(f.name())
            }
        })
        .collect()
}

/// `µs → interval`, only for reading stored tables back.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MicrosToInterval {
    signature: Signature,
}

impl MicrosToInterval {
    fn new() -> Self {
        Self { signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for MicrosToInterval {
    fn name(&self) -> &str {
        "leadline_micros_to_interval"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(INTERVAL)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(intervals(&array)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_survive_storage_exactly() {
        let schema =
            Arc::new(Schema::new(vec![Field::new("d", INTERVAL, true), Field::new("n", DataType::Int64, true)]));
        let micros = [Some(-90_000_000_001i64), Some(1), None, Some(3 * 86_400_000_000 + 7)];
        let d: IntervalMonthDayNanoArray = micros.iter().map(|m| m.map(|us| nanos_to_interval(us * 1000))).collect();
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(d), Arc::new(Int64Array::from(vec![1, 2, 3, 4]))])
                .unwrap();
        let stored = to_stored(&batch).unwrap();
        assert_eq!(stored.schema().field(0).name(), "d_us", "the unit is in the name");
        assert_eq!(stored.column(0).as_primitive::<arrow::datatypes::Int64Type>().iter().collect::<Vec<_>>(), micros);
        assert_eq!(from_stored(&stored, schema).unwrap(), batch);
    }
}
