//! Printing query results for `leadline query`: an aligned table, CSV, or
//! JSON (one array of objects), written by `leadline_report::table` (the
//! saved-query reports print the same way).

use std::io::Write;

use arrow::array::RecordBatch;
use leadline_report::table;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

pub fn write(format: OutputFormat, batches: &[RecordBatch], out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => table::write_table(batches, out)?,
        OutputFormat::Csv => table::write_csv(batches, out)?,
        OutputFormat::Json => table::write_json(batches, out)?,
    }
    Ok(())
}
