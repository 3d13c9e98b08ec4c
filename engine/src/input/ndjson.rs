//! NDJSON: one JSON object per line, parsed on a reader thread of its own.

use std::io::BufRead;

use super::InputRow;
use crate::error::{Error, Result};
use crate::event::{RawRow, RawValue, input_field_slot};

/// A JSON value of an NDJSON field, deserialized straight into a [`RawValue`]
/// (no `serde_json::Value` in between). The mapping is the one of
/// `serde_json::Value`: integers that fit `i64` are `Int`, other numbers
/// `Float`, arrays `List`, objects `Json`.
struct JsonField(RawValue);

impl<'de> serde::Deserialize<'de> for JsonField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(JsonFieldVisitor)
    }
}

struct JsonFieldVisitor;

impl<'de> serde::de::Visitor<'de> for JsonFieldVisitor {
    type Value = JsonField;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> std::result::Result<JsonField, E> {
        Ok(JsonField(RawValue::Null))
    }
    fn visit_bool<E>(self, b: bool) -> std::result::Result<JsonField, E> {
        Ok(JsonField(RawValue::Bool(b)))
    }
    fn visit_i64<E>(self, i: i64) -> std::result::Result<JsonField, E> {
        Ok(JsonField(RawValue::Int(i)))
    }
    fn visit_u64<E>(self, u: u64) -> std::result::Result<JsonField, E> {
        Ok(JsonField(i64::try_from(u).map_or(RawValue::Float(u as f64), RawValue::Int)))
    }
    fn visit_f64<E>(self, f: f64) -> std::result::Result<JsonField, E> {
        // serde_json::Value holds no NaN or infinity (it makes them null).
        Ok(JsonField(if f.is_finite() { RawValue::Float(f) } else { RawValue::Null }))
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<JsonField, E> {
        Ok(JsonField(RawValue::Text(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> std::result::Result<JsonField, E> {
        Ok(JsonField(RawValue::Text(s)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<JsonField, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(JsonField(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(JsonField(RawValue::List(items)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<JsonField, A::Error> {
        use serde::Deserialize;
        let obj = serde_json::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(JsonField(RawValue::Json(obj)))
    }
}

/// The name of an object's field: the slot of an input field (read without
/// copying the name), or another name.
enum FieldName {
    Input(usize),
    Other(String),
}

impl<'de> serde::Deserialize<'de> for FieldName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(FieldNameVisitor)
    }
}

struct FieldNameVisitor;

impl<'de> serde::de::Visitor<'de> for FieldNameVisitor {
    type Value = FieldName;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<FieldName, E> {
        Ok(input_field_slot(s).map_or_else(|| FieldName::Other(s.to_string()), FieldName::Input))
    }
}

/// One NDJSON line: the fields of an object, or some other JSON value.
// It lives on the stack for one line: boxing the row would cost an allocation a row.
#[allow(clippy::large_enum_variant)]
enum JsonLine {
    Object(RawRow),
    NotObject,
}

impl<'de> serde::Deserialize<'de> for JsonLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(JsonLineVisitor)
    }
}

struct JsonLineVisitor;

impl<'de> serde::de::Visitor<'de> for JsonLineVisitor {
    type Value = JsonLine;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<JsonLine, A::Error> {
        let mut row = RawRow::new();
        while let Some(key) = map.next_key::<FieldName>()? {
            let JsonField(v) = map.next_value()?;
            // A repeated key: the last one wins, as in serde_json::Value.
            match key {
                FieldName::Input(slot) => row.insert_slot(slot, v),
                FieldName::Other(name) => {
                    row.insert(name, v);
                }
            }
        }
        Ok(JsonLine::Object(row))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<JsonLine, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(JsonLine::NotObject)
    }
    fn visit_unit<E>(self) -> std::result::Result<JsonLine, E> {
        Ok(JsonLine::NotObject)
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<JsonLine, E> {
        Ok(JsonLine::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<JsonLine, E> {
        Ok(JsonLine::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<JsonLine, E> {
        Ok(JsonLine::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<JsonLine, E> {
        Ok(JsonLine::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<JsonLine, E> {
        Ok(JsonLine::NotObject)
    }
}

/// Parses one NDJSON line (without its line break) into an input row.
fn ndjson_row(line_no: u64, buf: &[u8]) -> InputRow {
    let (text, fields) = match std::str::from_utf8(buf) {
        Err(_) => (String::from_utf8_lossy(buf).into_owned(), Err("line is not valid UTF-8".to_string())),
        Ok(text) => {
            let fields = match serde_json::from_str::<JsonLine>(text) {
                Ok(JsonLine::Object(row)) => Ok(row),
                Ok(JsonLine::NotObject) => Err("line is not a JSON object".to_string()),
                Err(e) => Err(format!("line is not valid JSON: {e}")),
            };
            (text.to_string(), fields)
        }
    };
    InputRow { line: line_no, raw: text, fields }
}

/// Rows parsed ahead by the reader thread and handed over at once.
const NDJSON_CHUNK_ROWS: usize = 2048;
/// Chunks in flight between the reader thread and the appender.
const NDJSON_CHUNKS_IN_FLIGHT: usize = 4;

/// One JSON object per line; blank lines are skipped. Lines are read and
/// parsed on a thread of their own, a few thousand rows ahead of the caller
/// (which validates, deduplicates and encodes on another core).
pub fn ndjson_rows(reader: impl BufRead + Send + 'static) -> impl Iterator<Item = Result<InputRow>> + Send {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<InputRow>>>(NDJSON_CHUNKS_IN_FLIGHT);
    let spawned = std::thread::Builder::new().name("ndjson-reader".into()).spawn(move || {
        let mut chunk = Vec::with_capacity(NDJSON_CHUNK_ROWS);
        for row in ndjson_rows_here(reader) {
            let failed = row.is_err();
            chunk.push(row);
            if failed || chunk.len() >= NDJSON_CHUNK_ROWS {
                // The receiver is gone when the caller stopped early: so do we.
                if tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(NDJSON_CHUNK_ROWS))).is_err() || failed {
                    return;
                }
            }
        }
        let _ = tx.send(chunk);
    });
    let mut spawn_error = spawned.err().map(|e| Error::Internal(format!("starting the NDJSON reader thread: {e}")));
    let mut current = Vec::new().into_iter();
    std::iter::from_fn(move || {
        if let Some(e) = spawn_error.take() {
            return Some(Err(e));
        }
        loop {
            if let Some(row) = current.next() {
                return Some(row);
            }
            current = rx.recv().ok()?.into_iter();
        }
    })
}

/// [`ndjson_rows`] on the calling thread.
fn ndjson_rows_here(mut reader: impl BufRead) -> impl Iterator<Item = Result<InputRow>> {
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
            let mut end = buf.len();
            while end > 0 && matches!(buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            let line = &buf[..end];
            // Blank: only whitespace (as str::trim sees it; invalid UTF-8 is never blank).
            if std::str::from_utf8(line).is_ok_and(|t| t.trim().is_empty()) {
                continue;
            }
            return Some(Ok(ndjson_row(line_no, line)));
        }
    })
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

    /// The mapping the NDJSON reader had before it deserialized rows directly:
    /// through `serde_json::Value`. The direct one must agree with it.
    fn json_to_raw(v: serde_json::Value) -> RawValue {
        use serde_json::Value;
        match v {
            Value::Null => RawValue::Null,
            Value::Bool(b) => RawValue::Bool(b),
            Value::Number(n) => {
                n.as_i64().map(RawValue::Int).unwrap_or_else(|| RawValue::Float(n.as_f64().unwrap_or(f64::NAN)))
            }
            Value::String(s) => RawValue::Text(s),
            Value::Array(items) => RawValue::List(items.into_iter().map(json_to_raw).collect()),
            obj @ Value::Object(_) => RawValue::Json(obj),
        }
    }

    fn via_value(text: &str) -> std::result::Result<RawRow, String> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => Ok(map.into_iter().map(|(k, v)| (k, json_to_raw(v))).collect()),
            Ok(_) => Err("line is not a JSON object".to_string()),
            Err(e) => Err(format!("line is not valid JSON: {e}")),
        }
    }

    #[test]
    fn direct_json_parsing_agrees_with_serde_json_value() {
        let lines = [
            r#"{"event_id":"a","n":1,"neg":-5,"big":18446744073709551615,"f":1.5,"e":2e3,"t":true,"z":null}"#,
            r#"{"change_ids":["x","y",["n",1]],"attributes":{"k":[1,{"d":null}],"s":"\u00e9\n"},"empty":[]}"#,
            r#"{"dup":1,"dup":"two","a\"b":"q\\"}"#,
            r#"{}"#,
            r#"[1,{"a":2}]"#,
            r#""text""#,
            r#"42"#,
            r#"null"#,
            r#"true"#,
            r#"{"a":1} trailing"#,
            r#"{"a":}"#,
            r#"{"a":1e400}"#,
            r#"{"a":[1,}"#,
            r#"not json"#,
            r#"   {"padded": 1}   "#,
        ];
        for text in lines {
            let direct = ndjson_row(7, text.as_bytes());
            assert_eq!(direct.fields, via_value(text), "{text}");
            assert_eq!(direct.raw, text);
            assert_eq!(direct.line, 7);
        }
    }

    #[test]
    fn ndjson_reader_thread_keeps_order_crlf_blanks_and_bad_utf8() {
        let mut input = Vec::new();
        for i in 0..5000 {
            input.extend_from_slice(format!("{{\"event_id\":\"e{i}\"}}\r\n").as_bytes());
            if i % 1000 == 0 {
                input.extend_from_slice(b"  \t \n\n");
            }
        }
        input.extend_from_slice(b"{\"a\":\"\xff\"}\n");
        let rows: Vec<InputRow> = ndjson_rows(std::io::Cursor::new(input)).map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 5001);
        let mut line = 0;
        for (i, row) in rows[..5000].iter().enumerate() {
            line += 1 + if i > 0 && (i - 1) % 1000 == 0 { 2 } else { 0 };
            assert_eq!(row.line, line, "row {i}");
            assert_eq!(row.raw, format!("{{\"event_id\":\"e{i}\"}}"));
            assert_eq!(row.fields.as_ref().unwrap()["event_id"], RawValue::Text(format!("e{i}")));
        }
        let last = &rows[5000];
        assert_eq!(last.fields.as_ref().unwrap_err(), "line is not valid UTF-8");
        assert_eq!(last.raw, "{\"a\":\"\u{fffd}\"}");
        // A caller that stops early does not hang the reader.
        let mut early = ndjson_rows(std::io::Cursor::new([b'{', b'}', b'\n'].repeat(100_000)));
        assert!(early.next().unwrap().is_ok());
        drop(early);
    }
}
