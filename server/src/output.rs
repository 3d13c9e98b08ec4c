//! Printing query results for `leadline query`: an aligned table, CSV, or
//! JSON (one array of objects). Cells are rendered with Arrow's display
//! rules, so intervals and timestamps read the same in every format.

use std::io::Write;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

fn options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("")
}

pub fn write(format: OutputFormat, batches: &[RecordBatch], out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches_with_options(
                batches,
                &FormatOptions::default().with_null("NULL"),
            )?;
            writeln!(out, "{table}")?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
        }
        OutputFormat::Csv => {
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
        }
        OutputFormat::Json => {
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
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn formatters(batch: &RecordBatch) -> anyhow::Result<Vec<ArrayFormatter<'_>>> {
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
