//! Inputs: every format a row can arrive in becomes [`InputRow`]s, which the
//! appender validates (SPEC §1) and appends. A problem with one row rejects
//! that row; a problem with the input as a whole (unreadable file, a CSV
//! header naming an unknown column) is an error and appends nothing from it.
//!
//! One decoder per format: [`ndjson`], [`csv`], [`parquet`] files and the
//! rows of the PostgreSQL wire ([`copy`]).

pub mod copy;
mod csv;
mod ndjson;
mod parquet;
mod pg_text;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::error::{Error, Result};
use crate::event::{INPUT_FIELDS, RawRow, WRITABLE_FIELDS};

pub use self::csv::csv_rows;
pub use self::ndjson::ndjson_rows;
pub use self::pg_text::{array_literal, text_value};

/// One input row as read: its position, its verbatim text, and its fields or
/// why they could not be read.
#[derive(Debug, Clone)]
pub struct InputRow {
    pub line: u64,
    pub raw: String,
    pub fields: std::result::Result<RawRow, String>,
}

/// The rows of one input, in order.
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
        Format::Parquet => parquet::parquet_rows(file),
    }
}

/// Checks the column names of a CSV header or Parquet schema.
fn check_columns(kind: &str, names: &[String]) -> Result<()> {
    if let Some(unknown) = names.iter().find(|n| !INPUT_FIELDS.contains(&n.as_str())) {
        return Err(Error::Input(format!(
            "{kind} has an unknown column '{unknown}' (columns are: {})",
            WRITABLE_FIELDS.join(", ")
        )));
    }
    for required in ["event_id", "event_type", "occurred_at", "service"] {
        if !names.iter().any(|n| n == required) {
            return Err(Error::Input(format!("{kind} has no '{required}' column")));
        }
    }
    Ok(())
}
