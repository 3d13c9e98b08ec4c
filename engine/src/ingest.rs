//! Input formats: NDJSON, CSV and Parquet files become [`InputRow`]s, which
//! the log validates and appends. A problem with one row rejects that row; a
//! problem with the input as a whole (unreadable file, a CSV header naming an
//! unknown column) is an error and appends nothing from it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::array_value_to_string;

use crate::error::{Error, Result};
use crate::event::{INPUT_FIELDS, RawRow, RawValue};
use crate::log::InputRow;

pub type Rows = Box<dyn Iterator<Item = Result<InputRow>> + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    Parquet,
}

impl Format {
    /// By file name; `-` (stdin) is NDJSON.
    pub fn of(path: &str) -> Result<Format> {
        let lower = path.to_ascii_lowercase();
        if path == "-" || lower.ends_with(".ndjson") || lower.ends_with(".jsonl") || lower.ends_with(".json") {
            Ok(Format::Ndjson)
        } else if lower.ends_with(".csv") {
            Ok(Format::Csv)
        } else if lower.ends_with(".parquet") {
            Ok(Format::Parquet)
        } else {
            Err(Error::Input(format!(
                "cannot tell the format of '{path}': name it .ndjson, .jsonl, .csv or .parquet (or '-' for NDJSON on stdin)"
            )))
        }
    }
}

/// Opens `path` (or stdin for `-`) as rows of its format.
pub fn open(path: &str) -> Result<Rows> {
    let format = Format::of(path)?;
    if path == "-" {
        return Ok(Box::new(ndjson_rows(BufReader::new(std::io::stdin()))));
    }
    let p = Path::new(path);
    let file = File::open(p).map_err(|e| Error::io(p, e))?;
    match format {
        Format::Ndjson => Ok(Box::new(ndjson_rows(BufReader::with_capacity(1 << 20, file)))),
        Format::Csv => Ok(Box::new(csv_rows(BufReader::with_capacity(1 << 20, file))?)),
        Format::Parquet => parquet_rows(file),
    }
}

fn json_to_raw(v: serde_json::Value) -> RawValue {
    use serde_json::Value;
    match v {
        Value::Null => RawValue::Null,
        Value::Bool(b) => RawValue::Bool(b),
        Value::Number(n) => n.as_i64().map(RawValue::Int).unwrap_or_else(|| RawValue::Float(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => RawValue::Text(s),
        Value::Array(items) => RawValue::List(items.into_iter().map(json_to_raw).collect()),
        obj @ Value::Object(_) => RawValue::Json(obj),
    }
}

/// One JSON object per line; blank lines are skipped.
pub fn ndjson_rows(mut reader: impl BufRead + Send + 'static) -> impl Iterator<Item = Result<InputRow>> + Send {
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    std::iter::from_fn(move || {
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(Error::Input(format!("reading line {}: {e}", line_no + 1)))),
            }
            line_no += 1;
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            let fields = if std::str::from_utf8(&buf).is_err() {
                Err("line is not valid UTF-8".to_string())
            } else {
                match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(serde_json::Value::Object(map)) => Ok(map.into_iter().map(|(k, v)| (k, json_to_raw(v))).collect()),
                    Ok(_) => Err("line is not a JSON object".to_string()),
                    Err(e) => Err(format!("line is not valid JSON: {e}")),
                }
            };
            return Some(Ok(InputRow { line: line_no, raw: text.to_string(), fields }));
        }
    })
}

/// Checks the column names of a CSV header or Parquet schema.
fn check_columns(kind: &str, names: &[String]) -> Result<()> {
    if let Some(unknown) = names.iter().find(|n| !INPUT_FIELDS.contains(&n.as_str())) {
        return Err(Error::Input(format!(
            "{kind} has an unknown column '{unknown}' (columns are: {})",
            INPUT_FIELDS[..13].join(", ")
        )));
    }
    for required in ["event_id", "event_type", "occurred_at", "service"] {
        if !names.iter().any(|n| n == required) {
            return Err(Error::Input(format!("{kind} has no '{required}' column")));
        }
    }
    Ok(())
}

/// CSV with a header row; empty cells are null, `change_ids` is `;`-separated.
pub fn csv_rows(reader: impl Read + Send + 'static) -> Result<impl Iterator<Item = Result<InputRow>> + Send> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(reader);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::Input(format!("reading the CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    check_columns("the CSV header", &header)?;
    let mut records = rdr.into_records();
    Ok(std::iter::from_fn(move || {
        let record = records.next()?;
        Some(Ok(match record {
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| p.line());
                let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(vec![]);
                let raw = w
                    .write_record(&rec)
                    .ok()
                    .and_then(|_| w.into_inner().ok())
                    .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
                    .unwrap_or_default();
                let fields = if rec.len() != header.len() {
                    Err(format!("row has {} fields, the header has {}", rec.len(), header.len()))
                } else {
                    Ok(header
                        .iter()
                        .zip(rec.iter())
                        .map(|(h, v)| (h.clone(), if v.is_empty() { RawValue::Null } else { RawValue::Text(v.to_string()) }))
                        .collect::<RawRow>())
                };
                InputRow { line, raw, fields }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                InputRow { line, raw: String::new(), fields: Err(format!("unreadable CSV row: {e}")) }
            }
        }))
    }))
}

fn parquet_rows(file: File) -> Result<Rows> {
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
                let raw = serde_json::to_string(&raw_json(&row)).unwrap_or_default();
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
    schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, col)| (f.name().clone(), cell(col.as_ref(), i)))
        .collect()
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
                TimeUnit::Millisecond => col.as_primitive::<arrow::datatypes::TimestampMillisecondType>().value(i) * 1000,
                TimeUnit::Microsecond => col.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => col.as_primitive::<arrow::datatypes::TimestampNanosecondType>().value(i).div_euclid(1000),
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

fn raw_json(row: &RawRow) -> serde_json::Value {
    fn one(v: &RawValue) -> serde_json::Value {
        match v {
            RawValue::Null => serde_json::Value::Null,
            RawValue::Text(s) => s.clone().into(),
            RawValue::Int(i) => (*i).into(),
            RawValue::Float(f) => (*f).into(),
            RawValue::Bool(b) => (*b).into(),
            RawValue::Timestamp(us) => chrono::DateTime::from_timestamp_micros(*us)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                .unwrap_or_default()
                .into(),
            RawValue::List(items) => items.iter().map(one).collect::<Vec<_>>().into(),
            RawValue::Json(v) => v.clone(),
        }
    }
    serde_json::Value::Object(row.iter().map(|(k, v)| (k.clone(), one(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_keep_numbers_and_reasons() {
        let input = "{\"event_id\":\"a\"}\n\nnot json\n[1]\n";
        let rows: Vec<InputRow> = ndjson_rows(std::io::Cursor::new(input)).map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].line, 1);
        assert_eq!(rows[1].line, 3);
        assert!(rows[1].fields.as_ref().unwrap_err().starts_with("line is not valid JSON"));
        assert_eq!(rows[1].raw, "not json");
        assert_eq!(rows[2].fields.as_ref().unwrap_err(), "line is not a JSON object");
    }

    #[test]
    fn csv_header_and_rows() {
        let bad = "event_id,evnt_type\n";
        let err = csv_rows(std::io::Cursor::new(bad)).err().unwrap().to_string();
        assert!(err.contains("unknown column 'evnt_type'"), "{err}");
        let ok = "event_id,event_type,occurred_at,service,change_ids\na,commit,2026-01-01T00:00:00Z,s,x;y\nb,commit\n";
        let rows: Vec<InputRow> = csv_rows(std::io::Cursor::new(ok)).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].fields.as_ref().unwrap()["change_ids"], RawValue::Text("x;y".into()));
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].fields.as_ref().unwrap_err(), "row has 2 fields, the header has 5");
        assert_eq!(rows[1].raw, "b,commit");
    }
}
