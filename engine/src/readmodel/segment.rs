//! How an input segment stores its service's events: the log's columns
//! that folding reads (not `source` and `attributes`, which no rule of
//! SPEC §2 reads), with commit SHAs (`commit_sha`, `change_ids`) as bytes:
//! a SHA in lowercase hex is stored as the bytes it spells, half its text,
//! behind a tag byte saying so; any other value is kept as its text behind
//! another tag. [`restore`] gives the log's columns back, exactly.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, ListArray, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::event::{Event, change_ids_item, events_schema};

/// The log's columns an input segment does not keep.
const DROPPED: [&str; 2] = ["source", "attributes"];
/// The columns holding commit SHAs, stored as tagged bytes.
const SHAS: [&str; 2] = ["commit_sha", "change_ids"];
/// A value stored as the bytes its lowercase hex text spells.
const HEX: u8 = 0;
/// A value stored as its text.
const TEXT: u8 = 1;

fn bytes_item() -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Binary, true))
}

/// The schema of an input segment.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let fields: Vec<Field> = events_schema()
            .fields()
            .iter()
            .filter(|f| !DROPPED.contains(&f.name().as_str()))
            .map(|f| match (f.name().as_str(), f.data_type()) {
                (name, DataType::Utf8) if SHAS.contains(&name) => Field::new(name, DataType::Binary, f.is_nullable()),
                (name, DataType::List(_)) if SHAS.contains(&name) => {
                    Field::new(name, DataType::List(bytes_item()), f.is_nullable())
                }
                _ => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// `e` as an input segment gives it back ([`restore`]): without the
/// [`DROPPED`] columns' values.
pub fn as_read_back(e: Event) -> Event {
    Event { source: None, attributes: None, ..e }
}

/// A batch of the `events` schema as an input segment stores it.
pub fn to_stored(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let column =
                batch.column_by_name(f.name()).ok_or_else(|| format!("an events batch without column {}", f.name()))?;
            if SHAS.contains(&f.name().as_str()) {
                each_value(column, &bytes_item(), tagged)
            } else {
                Ok(column.clone())
            }
        })
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(Error::Internal)?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A batch of an input segment with the log's columns (but those it drops).
pub fn restore(batch: RecordBatch) -> std::result::Result<RecordBatch, String> {
    let (schema, mut columns, _) = batch.into_parts();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (field, column) in fields.iter_mut().zip(columns.iter_mut()) {
        if SHAS.contains(&field.name().as_str()) {
            *column = each_value(column, &change_ids_item(), untagged)?;
            *field = Field::new(field.name(), column.data_type().clone(), field.is_nullable());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

/// `column` mapped by `leaf`, or, a list, its items mapped by `leaf` (and
/// given the field `item`).
fn each_value(
    column: &ArrayRef,
    item: &Arc<Field>,
    leaf: fn(&ArrayRef) -> std::result::Result<ArrayRef, String>,
) -> std::result::Result<ArrayRef, String> {
    match column.as_list_opt::<i32>() {
        Some(list) => {
            let values = leaf(list.values())?;
            let list = ListArray::try_new(item.clone(), list.offsets().clone(), values, list.nulls().cloned());
            Ok(Arc::new(list.map_err(|e| e.to_string())?))
        }
        None => leaf(column),
    }
}

/// Text as tagged bytes.
fn tagged(text: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    let text = text.as_string_opt::<i32>().ok_or("a commit SHA column that is not text")?;
    let mut out = BinaryBuilder::with_capacity(text.len(), text.value_data().len() / 2 + text.len());
    let mut buf = Vec::new();
    for value in text.iter() {
        match value {
            Some(v) => {
                tag(v, &mut buf);
                out.append_value(&buf);
            }
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `value` tagged into `buf`: its bytes if it is lowercase hex (which
/// [`untag`] spells again as it was), else its text.
fn tag(value: &str, buf: &mut Vec<u8>) {
    let text = value.as_bytes();
    buf.clear();
    if !text.is_empty() && text.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) && text.len().is_multiple_of(2) {
        buf.resize(1 + text.len() / 2, HEX);
        if hex::decode_to_slice(text, &mut buf[1..]).is_ok() {
            return;
        }
        buf.clear();
    }
    buf.push(TEXT);
    buf.extend_from_slice(text);
}

/// Tagged bytes as text again.
fn untagged(bytes: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    let bytes = bytes.as_binary_opt::<i32>().ok_or("a commit SHA column that is not bytes")?;
    let mut out = StringBuilder::with_capacity(bytes.len(), bytes.value_data().len() * 2);
    let mut hex = vec![0u8; 0];
    for value in bytes.iter() {
        match value.map(|v| v.split_first()) {
            None => out.append_null(),
            Some(Some((&HEX, rest))) => {
                hex.resize(rest.len() * 2, 0);
                hex::encode_to_slice(rest, &mut hex).map_err(|e| e.to_string())?;
                out.append_value(std::str::from_utf8(&hex).map_err(|e| e.to_string())?);
            }
            Some(Some((&TEXT, rest))) => out.append_value(std::str::from_utf8(rest).map_err(|e| e.to_string())?),
            Some(_) => return Err("a commit SHA stored without its tag".into()),
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventType};
    use crate::log::files::events_batch;

    #[test]
    fn a_segment_gives_back_the_commit_shas_it_was_given() {
        let sha = "0d185ead982b3d673e5c38802062d9957097b1b8";
        // Hex, not hex (upper case, odd length, other text), empty, none.
        let values = [Some(sha), Some("0D185EAD"), Some("abc"), Some("main~1"), Some(""), None];
        let events: Vec<Event> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Event {
                event_id: format!("e{i}"),
                event_type: EventType::DeploymentSucceeded,
                occurred_at: i as i64,
                service: "s".into(),
                environment: Some("production".into()),
                commit_sha: v.map(String::from),
                deployment_id: Some(format!("d{i}")),
                incident_id: None,
                change_ids: (i % 2 == 0).then(|| values.iter().flatten().map(|v| v.to_string()).collect()),
                team: None,
                source: Some("github".into()),
                attributes: Some("{}".into()),
                schema_version: 1,
            })
            .collect();
        let batch = events_batch(&events, |i| i as i64).unwrap();
        let stored = to_stored(&batch).unwrap();
        assert_eq!(stored.schema(), schema());
        let shas = stored.column_by_name("commit_sha").unwrap().as_binary::<i32>();
        assert_eq!(shas.value(0).len(), 21, "a hex SHA is stored as its 20 bytes and a tag");
        let restored = restore(stored).unwrap();
        for field in restored.schema().fields() {
            assert_eq!(restored.column_by_name(field.name()), batch.column_by_name(field.name()), "{}", field.name());
        }
        let schema = batch.schema();
        let dropped: Vec<&str> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| restored.column_by_name(n).is_none())
            .collect();
        assert_eq!(dropped, DROPPED);
        // An event as read back holds nothing of the dropped columns.
        let read_back: Vec<Event> = events.into_iter().map(as_read_back).collect();
        let read_back = events_batch(&read_back, |i| i as i64).unwrap();
        for name in DROPPED {
            let column = read_back.column_by_name(name).unwrap();
            assert_eq!(column.null_count(), column.len(), "{name}");
        }
    }
}
