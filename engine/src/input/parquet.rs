//! Parquet files whose columns are the input fields.

use std::fs::File;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::array_value_to_string;

use super::{InputRow, Rows, check_columns};
use crate::error::{Error, Result};
use crate::event::{RawRow, RawValue, raw_row_json};

pub(super) fn parquet_rows(file: File) -> Result<Rows> {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    check_columns("the Parquet schema", &names)?;
    let reader = builder.with_batch_size(8192).build()?;
    let mut row_no = 0u64;
    let mut batches = reader;
    let mut current: Option<(RecordBatch, usize)> = None;
    Ok(Box::new(std::iter::from_fn(move || {
        loop {
            if let Some((batch, i)) = &mut current
                && *i < batch.num_rows()
            {
                let row = parquet_row(batch, *i);
                *i += 1;
                row_no += 1;
                let raw = raw_row_json(&row);
                return Some(Ok(InputRow { line: row_no, raw, fields: Ok(row) }));
            }
            match batches.next()? {
                Ok(b) => current = Some((b, 0)),
                Err(e) => return Some(Err(Error::Arrow(e))),
            }
        }
    })))
}

fn parquet_row(batch: &RecordBatch, i: usize) -> RawRow {
    let schema = batch.schema();
    schema.fields().iter().zip(batch.columns()).map(|(f, col)| (f.name().clone(), cell(col.as_ref(), i))).collect()
}

fn cell(col: &dyn Array, i: usize) -> RawValue {
    if col.is_null(i) {
        return RawValue::Null;
    }
    match col.data_type() {
        DataType::Utf8 => RawValue::Text(col.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => RawValue::Text(col.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => RawValue::Text(col.as_string_view().value(i).to_string()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            array_value_to_string(col, i).ok().and_then(|s| s.parse().ok()).map_or(RawValue::Null, RawValue::Int)
        }
        DataType::Timestamp(unit, Some(_)) => {
            let v = match unit {
                TimeUnit::Second => col.as_primitive::<arrow::datatypes::TimestampSecondType>().value(i) * 1_000_000,
                TimeUnit::Millisecond => {
                    col.as_primitive::<arrow::datatypes::TimestampMillisecondType>().value(i) * 1000
                }
                TimeUnit::Microsecond => col.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => {
                    col.as_primitive::<arrow::datatypes::TimestampNanosecondType>().value(i).div_euclid(1000)
                }
            };
            RawValue::Timestamp(v)
        }
        DataType::List(_) => {
            let list = col.as_list::<i32>().value(i);
            RawValue::List((0..list.len()).map(|j| cell(list.as_ref(), j)).collect())
        }
        // A timestamp without a zone is local time: text, so validation says so.
        _ => RawValue::Text(array_value_to_string(col, i).unwrap_or_default()),
    }
}
