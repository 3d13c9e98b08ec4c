//! CSV with a header row.

use std::io::Read;

use super::{InputRow, check_columns};
use crate::error::{Error, Result};
use crate::event::{RawRow, RawValue};

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
                        .map(|(h, v)| {
                            (h.clone(), if v.is_empty() { RawValue::Null } else { RawValue::Text(v.to_string()) })
                        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
