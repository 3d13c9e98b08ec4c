//! Query results as text: an aligned table, CSV, or JSON (one array of
//! objects). Cells are rendered with Arrow's display rules, so intervals and
//! timestamps read the same in every format. `leadline query` prints with
//! these too.

use std::io::Write;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::Error;

fn options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("")
}

/// An aligned table (NULL spelt out) and a row count.
pub fn write_table(batches: &[RecordBatch], out: &mut dyn Write) -> Result<(), Error> {
    let table =
        arrow::util::pretty::pretty_format_batches_with_options(batches, &FormatOptions::default().with_null("NULL"))?;
    writeln!(out, "{table}")?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
    Ok(())
}

/// CSV with a header row (of the first batch's schema); NULL is empty.
pub fn write_csv(batches: &[RecordBatch], out: &mut dyn Write) -> Result<(), Error> {
    let mut w = csv::Writer::from_writer(out);
    if let Some(first) = batches.first() {
        w.write_record(first.schema().fields().iter().map(|f| f.name().as_str()))?;
    }
    for batch in batches {
        let fmts = formatters(batch)?;
        for row in 0..batch.num_rows() {
            w.write_record(fmts.iter().map(|f| f.value(row).to_string()))?;
        }
    }
    w.flush()?;
    Ok(())
}

/// The rows as JSON objects: numbers and booleans as such, NULL as null,
/// everything else as its display text.
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, Error> {
    let mut rows = Vec::new();
    for batch in batches {
        let fmts = formatters(batch)?;
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut obj = serde_json::Map::new();
            for (i, field) in schema.fields().iter().enumerate() {
                obj.insert(field.name().clone(), json_cell(batch.column(i).as_ref(), &fmts[i], row));
            }
            rows.push(serde_json::Value::Object(obj));
        }
    }
    Ok(rows)
}

/// [`json_rows`] as one pretty-printed array.
pub fn write_json(batches: &[RecordBatch], out: &mut dyn Write) -> Result<(), Error> {
    serde_json::to_writer_pretty(&mut *out, &json_rows(batches)?).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(())
}

/// Every cell as display text (`None` for NULL), row by row.
pub fn cells(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>, Error> {
    let mut rows = Vec::new();
    for batch in batches {
        let fmts = formatters(batch)?;
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&fmts)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

fn formatters(batch: &RecordBatch) -> Result<Vec<ArrayFormatter<'_>>, Error> {
    let opts = options();
    Ok(batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts)).collect::<Result<Vec<_>, _>>()?)
}

fn json_cell(col: &dyn Array, fmt: &ArrayFormatter<'_>, row: usize) -> serde_json::Value {
    if col.is_null(row) {
        return serde_json::Value::Null;
    }
    let text = fmt.value(row).to_string();
    match col.data_type() {
        DataType::Boolean => serde_json::Value::Bool(text == "true"),
        t if t.is_numeric() => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        _ => serde_json::Value::String(text),
    }
}
