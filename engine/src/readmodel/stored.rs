//! How the model's tables lie in Parquet (and so in the published Delta
//! tables), which has no type for Arrow's month-day-nano intervals: a
//! duration `d` is stored as `d_us`, its µs (`Int64`), and made an interval
//! again, by [`nanos_to_interval`] like everywhere else, when read. And how
//! each column of the model's files is encoded ([`properties`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, IntervalMonthDayNanoArray, RecordBatch};
use arrow::datatypes::{DataType, Field, IntervalMonthDayNanoType, IntervalUnit, Schema, SchemaRef};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, col,
};
use leadline_udfs::{interval_to_nanos, nanos_to_interval};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

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

/// Id columns: unique per row, but sharing long prefixes (`dep-42-1…`) when
/// the rows are in time order, which delta-encoded text stores once.
const ID_COLUMNS: [&str; 4] = ["event_id", "deployment_id", "incident_id", "remediates"];
/// Times in no order within a file (a deployment's commits): deltas are as
/// wide as the values, so they are stored plain.
const UNORDERED_TIMES: [&str; 1] = ["committed_at"];

/// How the model's files of `schema` are written, in row groups of
/// `row_group_rows`. Each column gets the encoding that stores it smallest
/// (measured at 1M events, see benches/README.md "On disk"), among those
/// every Parquet reader a notebook uses knows: ids delta-encoded text, times
/// and µs durations delta-encoded integers, other text (names, commit
/// SHAs, which repeat across a component's rows) a dictionary. `plain`
/// columns get no dictionary: a file written by one of hundreds of writers
/// open at once (an input segment) keeps each dictionary in memory until it
/// is full of unique values (see `log::files::PLAIN_COLUMNS`).
///
/// The files carry no Arrow schema of their own: every column's Arrow type
/// is the one its Parquet type reads as (times UTC, lists of `element`).
pub fn options(schema: &Schema, row_group_rows: usize, plain: &[&str]) -> ArrowWriterOptions {
    ArrowWriterOptions::new().with_properties(properties(schema, row_group_rows, plain)).with_skip_arrow_metadata(true)
}

fn properties(schema: &Schema, row_group_rows: usize, plain: &[&str]) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows))
        // A file is a few row groups of one page per column: the row groups'
        // statistics prune what a page index would, without its bytes.
        .set_statistics_enabled(EnabledStatistics::Chunk);
    for field in schema.fields() {
        let name = field.name().as_str();
        let path = ColumnPath::from(name);
        let encoding = if ID_COLUMNS.contains(&name) {
            Some(Encoding::DELTA_BYTE_ARRAY)
        } else if UNORDERED_TIMES.contains(&name) {
            Some(Encoding::PLAIN)
        } else if matches!(
            field.data_type(),
            DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Timestamp(..)
        ) {
            Some(Encoding::DELTA_BINARY_PACKED)
        } else {
            None
        };
        if let Some(encoding) = encoding {
            props = props.set_column_dictionary_enabled(path.clone(), false).set_column_encoding(path, encoding);
        } else if plain.contains(&name) {
            props = props.set_column_dictionary_enabled(path, false);
        }
    }
    props.build()
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
