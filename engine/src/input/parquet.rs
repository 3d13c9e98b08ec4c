//! Parquet files whose columns are the input fields.

use std::fs::File;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::array_value_to_string;

use super::{InputRow, Rows, check_columns};
use crate::error::{Error, Result};
use crate::event::{RawRow, RawValue, raw_row_json};

/// Runs a call into the parquet crate, whose decoders panic on some
/// damaged files (failed assertions) instead of returning an error: such a
/// panic is that error, and the file is unusable from there on.
fn decoding<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Input(format!("the Parquet file is damaged: {why}")))
    })
}

pub(super) fn parquet_rows(file: File) -> Result<Rows> {
    let reader = decoding(|| {
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
        let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
        check_columns("the Parquet schema", &names)?;
        Ok(builder.with_batch_size(8192).build()?)
    })?;
    let mut row_no = 0u64;
    let mut batches = reader;
    let mut current: Option<(RecordBatch, usize)> = None;
    let mut done = false;
    Ok(Box::new(std::iter::from_fn(move || {
        loop {
            if let Some((batch, i)) = &mut current
                && *i < batch.num_rows()
            {
                let (row, problem) = parquet_row(batch, *i);
                *i += 1;
                row_no += 1;
                let raw = raw_row_json(&row);
                let fields = match problem {
                    None => Ok(row),
                    Some(reason) => Err(reason),
                };
                return Some(Ok(InputRow { line: row_no, raw, fields }));
            }
            if done {
                return None;
            }
            match decoding(|| Ok(batches.next())) {
                Ok(Some(Ok(b))) => current = Some((b, 0)),
                Ok(None) => return None,
                Ok(Some(Err(e))) => return Some(Err(Error::Arrow(e))),
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        }
    })))
}

/// Row `i` of `batch`, and why it cannot be read if a cell cannot (that
/// cell is then shown as the file holds it, in the row's raw text).
fn parquet_row(batch: &RecordBatch, i: usize) -> (RawRow, Option<String>) {
    let schema = batch.schema();
    let mut problem = None;
    let row = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, col)| {
            let value = cell(col.as_ref(), i).unwrap_or_else(|reason| {
                problem.get_or_insert_with(|| format!("{}: {reason}", f.name()));
                RawValue::Text(array_value_to_string(col.as_ref(), i).unwrap_or_default())
            });
            (f.name().clone(), value)
        })
        .collect();
    (row, problem)
}

/// A timestamp of `unit` as µs, or why it has none.
fn timestamp_micros(col: &dyn Array, i: usize, unit: TimeUnit) -> Result<i64, String> {
    use arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    let (value, per_micro, name) = match unit {
        TimeUnit::Second => (col.as_primitive::<TimestampSecondType>().value(i), 1_000_000, "seconds"),
        TimeUnit::Millisecond => (col.as_primitive::<TimestampMillisecondType>().value(i), 1_000, "milliseconds"),
        TimeUnit::Microsecond => return Ok(col.as_primitive::<TimestampMicrosecondType>().value(i)),
        TimeUnit::Nanosecond => return Ok(col.as_primitive::<TimestampNanosecondType>().value(i).div_euclid(1000)),
    };
    value
        .checked_mul(per_micro)
        .ok_or_else(|| format!("the timestamp {value} {name} after 1970-01-01 is out of range (years 0000-9999)"))
}

fn cell(col: &dyn Array, i: usize) -> Result<RawValue, String> {
    if col.is_null(i) {
        return Ok(RawValue::Null);
    }
    Ok(match col.data_type() {
        DataType::Utf8 => RawValue::Text(col.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => RawValue::Text(col.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => RawValue::Text(col.as_string_view().value(i).to_string()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            array_value_to_string(col, i).ok().and_then(|s| s.parse().ok()).map_or(RawValue::Null, RawValue::Int)
        }
        DataType::Timestamp(unit, Some(_)) => RawValue::Timestamp(timestamp_micros(col, i, *unit)?),
        DataType::List(_) => {
            let list = col.as_list::<i32>().value(i);
            RawValue::List((0..list.len()).map(|j| cell(list.as_ref(), j)).collect::<Result<_, _>>()?)
        }
        // A timestamp without a zone is local time: text, so validation says so.
        _ => RawValue::Text(array_value_to_string(col, i).unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray, TimestampSecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::event::Event;

    fn rows_of(occurred_at: ArrayRef) -> Vec<InputRow> {
        let n = occurred_at.len();
        let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let ids: ArrayRef = Arc::new(StringArray::from((0..n).map(|i| format!("p{i}")).collect::<Vec<_>>()));
        let schema = Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new("occurred_at", occurred_at.data_type().clone(), true),
            Field::new("service", DataType::Utf8, false),
            Field::new("commit_sha", DataType::Utf8, false),
        ]);
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![ids, text("commit"), occurred_at, text("s"), text("c")])
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut w = parquet::arrow::ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        parquet_rows(File::open(&path).unwrap()).unwrap().map(|r| r.unwrap()).collect()
    }

    /// Regression (issue 11): a `timestamp[s]` of 9×10^15 was multiplied
    /// into µs without a check and stored wrapped around.
    #[test]
    fn timestamps_too_large_for_microseconds_reject_their_row() {
        let secs =
            TimestampSecondArray::from(vec![9_000_000_000_000_000, 1_767_225_600, i64::MIN]).with_timezone("UTC");
        let rows = rows_of(Arc::new(secs));
        let reason = rows[0].fields.as_ref().unwrap_err();
        assert!(reason.starts_with("occurred_at: the timestamp 9000000000000000 seconds"), "{reason}");
        assert!(reason.contains("out of range"), "{reason}");
        assert!(rows[0].raw.contains("\"event_id\":\"p0\""), "{}", rows[0].raw);
        let ok = Event::from_raw(rows[1].fields.as_ref().unwrap()).unwrap();
        assert_eq!(ok.occurred_at, 1_767_225_600_000_000);
        assert!(rows[2].fields.is_err());

        // Fits in µs but not in the years leadline stores: validation says so.
        let ms = TimestampMillisecondArray::from(vec![9_000_000_000_000_000]).with_timezone("UTC");
        let rows = rows_of(Arc::new(ms));
        let err = Event::from_raw(rows[0].fields.as_ref().unwrap()).unwrap_err();
        assert!(err.contains("outside the years 0000-9999"), "{err}");
    }
}
