//! Fuzz targets of the input readers and event validation (issue 11): the
//! NDJSON, CSV, Parquet and COPY (text, CSV, binary) readers and
//! `Event::from_raw_owned` never panic, never allocate more than a bound
//! whatever a length field claims, and every event they accept keeps the
//! rules of SPEC §1. See `fuzzing/mod.rs` for the harness and long runs.

mod fuzzing;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, ArrayRef, ListBuilder, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use fuzzing::{fuzz, mutated};
use leadline_engine::event::{
    MAX_ATTRIBUTES_BYTES, MAX_CHANGE_IDS_BYTES, MAX_EVENT_ID_BYTES, MAX_REJECTED_RAW_BYTES, MAX_TEXT_BYTES,
    OCCURRED_AT_RANGE, WRITABLE_FIELDS,
};
use leadline_engine::input::InputRow;
use leadline_engine::input::copy::{CopyDecoder, CopyFormat, CopyHeader, CopyOptions};
use leadline_engine::{Event, RawRow, RawValue, Rejection, RejectionKind};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Counts the largest single allocation of the whole test binary.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// No allocation may be larger, whatever the input claims (inputs are at
/// most a few hundred KiB; a length field can claim 2 GiB).
const ALLOCATION_BOUND: usize = 64 << 20;

fn allocations_bounded() -> Result<(), TestCaseError> {
    let largest = LARGEST.load(Ordering::Relaxed);
    prop_assert!(largest <= ALLOCATION_BOUND, "an allocation of {largest} bytes (bound {ALLOCATION_BOUND})");
    Ok(())
}

/// What every accepted event must be (SPEC §1 and the size limits), and
/// what every rejection keeps.
fn check_row(source: &str, row: InputRow) -> Result<(), TestCaseError> {
    match row.fields.and_then(Event::from_raw_owned) {
        Ok(e) => {
            prop_assert!(OCCURRED_AT_RANGE.contains(&e.occurred_at), "{e:?}");
            prop_assert!(!e.event_id.is_empty() && e.event_id.len() <= MAX_EVENT_ID_BYTES);
            prop_assert!(!e.service.is_empty() && e.service.len() <= MAX_TEXT_BYTES);
            for text in [&e.environment, &e.commit_sha, &e.deployment_id, &e.incident_id, &e.team, &e.source] {
                prop_assert!(text.as_ref().is_none_or(|t| !t.is_empty() && t.len() <= MAX_TEXT_BYTES));
            }
            let ids = e.change_ids.iter().flatten();
            prop_assert!(ids.clone().all(|id| id.len() <= MAX_TEXT_BYTES));
            prop_assert!(ids.map(String::len).sum::<usize>() <= MAX_CHANGE_IDS_BYTES);
            prop_assert!(e.attributes.as_ref().is_none_or(|a| a.len() <= MAX_ATTRIBUTES_BYTES));
            prop_assert!(e.schema_version >= 1);
            let _ = (e.content_hash(), e.event_date());
        }
        Err(reason) => {
            let r = Rejection::new(source, row.line, None, RejectionKind::Invalid, reason, row.raw);
            prop_assert!(r.raw.len() <= MAX_REJECTED_RAW_BYTES + 64);
            prop_assert!(r.reason.len() <= 2 * MAX_TEXT_BYTES + 1024, "a reason of {} bytes", r.reason.len());
        }
    }
    Ok(())
}

fn check_rows(
    source: &str,
    rows: impl Iterator<Item = leadline_engine::Result<InputRow>>,
) -> Result<(), TestCaseError> {
    for row in rows {
        // An error of the input as a whole is an answer too.
        let Ok(row) = row else { break };
        check_row(source, row)?;
    }
    allocations_bounded()
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The first lines of the sample history and of the spec's fixtures.
fn ndjson_lines() -> Vec<String> {
    let mut lines = Vec::new();
    let mut files = vec![repo("data/sample.ndjson")];
    for dir in ["worked", "mixed", "v2"] {
        files.push(repo(&format!("../shared/fixtures/{dir}/events.ndjson")));
    }
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            lines.extend(text.lines().take(40).map(str::to_string));
        }
    }
    assert!(!lines.is_empty(), "no seed inputs");
    lines
}

fn ndjson_seeds() -> Vec<Vec<u8>> {
    ndjson_lines().chunks(4).map(|c| (c.join("\n") + "\n").into_bytes()).collect()
}

/// The seed events as rows of text: (columns, rows).
fn text_rows() -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let columns: Vec<String> = WRITABLE_FIELDS.iter().map(|s| s.to_string()).collect();
    let rows = ndjson_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(l).ok())
        .map(|obj| {
            columns
                .iter()
                .map(|c| match obj.get(c) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Array(a)) => {
                        Some(a.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join(";"))
                    }
                    Some(other) => Some(other.to_string()),
                })
                .collect()
        })
        .collect();
    (columns, rows)
}

fn csv_seeds() -> Vec<Vec<u8>> {
    let (columns, rows) = text_rows();
    rows.chunks(4)
        .map(|chunk| {
            let mut w = csv::Writer::from_writer(vec![]);
            w.write_record(&columns).unwrap();
            for r in chunk {
                w.write_record(r.iter().map(|v| v.clone().unwrap_or_default())).unwrap();
            }
            w.into_inner().unwrap()
        })
        .collect()
}

#[test]
fn fuzz_ndjson_reader_and_validation() {
    fuzz("ndjson", mutated(ndjson_seeds()), |bytes| {
        check_rows("fuzz.ndjson", leadline_engine::input::ndjson_rows(Cursor::new(bytes)))
    });
}

#[test]
fn fuzz_csv_reader_and_validation() {
    fuzz("csv", mutated(csv_seeds()), |bytes| match leadline_engine::input::csv_rows(Cursor::new(bytes)) {
        Ok(rows) => check_rows("fuzz.csv", rows),
        Err(_) => allocations_bounded(),
    });
}

/// Parquet files of the seed events: one per timestamp unit, with
/// `change_ids` as a list, dictionary-encoded and plain, snappy or not.
fn parquet_seeds() -> Vec<Vec<u8>> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    let (columns, rows) = text_rows();
    let rows = &rows[..rows.len().min(12)];
    let mut seeds = Vec::new();
    for (n, unit) in
        [TimeUnit::Second, TimeUnit::Millisecond, TimeUnit::Microsecond, TimeUnit::Nanosecond].into_iter().enumerate()
    {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (c, name) in columns.iter().enumerate() {
            let values = rows.iter().map(|r| r[c].clone());
            match name.as_str() {
                "occurred_at" => {
                    let per_second: i64 = match unit {
                        TimeUnit::Second => 1,
                        TimeUnit::Millisecond => 1_000,
                        TimeUnit::Microsecond => 1_000_000,
                        TimeUnit::Nanosecond => 1_000_000_000,
                    };
                    let v: Vec<Option<i64>> = values
                        .map(|t| {
                            t.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                                .map(|d| d.timestamp() * per_second)
                        })
                        .collect();
                    let array = arrow::array::PrimitiveArray::<arrow::datatypes::Int64Type>::from(v);
                    let ty = DataType::Timestamp(unit, Some("UTC".into()));
                    arrays.push(arrow::compute::cast(&array, &ty).unwrap());
                    fields.push(Field::new(name, ty, true));
                }
                "change_ids" => {
                    let mut b = ListBuilder::new(StringBuilder::new());
                    for v in values {
                        match v {
                            Some(ids) => {
                                ids.split(';').for_each(|id| b.values().append_value(id));
                                b.append(true);
                            }
                            None => b.append(false),
                        }
                    }
                    let array = b.finish();
                    fields.push(Field::new(name, array.data_type().clone(), true));
                    arrays.push(Arc::new(array));
                }
                _ => {
                    arrays.push(Arc::new(StringArray::from(values.collect::<Vec<_>>())));
                    fields.push(Field::new(name, DataType::Utf8, true));
                }
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
        let props = WriterProperties::builder()
            .set_dictionary_enabled(n % 2 == 0)
            .set_compression(if n < 2 { Compression::SNAPPY } else { Compression::UNCOMPRESSED })
            .set_max_row_group_row_count(Some(5))
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        seeds.push(out);
    }
    seeds
}

#[test]
fn fuzz_parquet_reader_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.parquet");
    let path_text = path.to_str().unwrap().to_string();
    fuzz("parquet", mutated(parquet_seeds()), |bytes| {
        std::fs::write(&path, &bytes).unwrap();
        match leadline_engine::input::open(&path_text) {
            Ok(rows) => check_rows("fuzz.parquet", rows),
            Err(_) => allocations_bounded(),
        }
    });
}

/// COPY data of the seed events in each format, and the options to read it.
fn copy_seeds() -> Vec<(CopyOptions, Vec<String>, Vec<u8>)> {
    let (columns, rows) = text_rows();
    let mut seeds = Vec::new();
    for chunk in rows.chunks(4) {
        let text: String = chunk
            .iter()
            .map(|r| r.iter().map(|v| v.clone().unwrap_or_else(|| "\\N".into())).collect::<Vec<_>>().join("\t") + "\n")
            .collect();
        seeds.push((CopyOptions::default(), columns.clone(), text.into_bytes()));
        let mut w = csv::Writer::from_writer(vec![]);
        w.write_record(&columns).unwrap();
        for r in chunk {
            w.write_record(r.iter().map(|v| v.clone().unwrap_or_default())).unwrap();
        }
        let csv_options = CopyOptions { format: CopyFormat::Csv, header: CopyHeader::Match, ..CopyOptions::default() };
        seeds.push((csv_options, columns.clone(), w.into_inner().unwrap()));
        // Binary: text columns and occurred_at (µs since 2000-01-01).
        let binary_columns: Vec<String> =
            ["event_id", "event_type", "occurred_at", "service", "commit_sha"].map(String::from).to_vec();
        let mut b = b"PGCOPY\n\xff\r\n\0".to_vec();
        b.extend(0i32.to_be_bytes());
        b.extend(0i32.to_be_bytes());
        for r in chunk {
            b.extend((binary_columns.len() as i16).to_be_bytes());
            for name in &binary_columns {
                let value = r[columns.iter().position(|c| c == name).unwrap()].clone();
                match (name.as_str(), value) {
                    (_, None) => b.extend((-1i32).to_be_bytes()),
                    ("occurred_at", Some(t)) => {
                        let us = chrono::DateTime::parse_from_rfc3339(&t).map_or(0, |d| d.timestamp_micros())
                            - 946_684_800_000_000;
                        b.extend(8i32.to_be_bytes());
                        b.extend(us.to_be_bytes());
                    }
                    (_, Some(v)) => {
                        b.extend((v.len() as i32).to_be_bytes());
                        b.extend(v.as_bytes());
                    }
                }
            }
        }
        b.extend((-1i16).to_be_bytes());
        let binary = CopyOptions { format: CopyFormat::Binary, ..CopyOptions::default() };
        seeds.push((binary, binary_columns, b));
    }
    seeds
}

#[test]
fn fuzz_copy_reader_and_validation() {
    let seeds = copy_seeds();
    let inputs = (0..seeds.len()).prop_flat_map(move |i| {
        let (options, columns, data) = seeds[i].clone();
        (
            Just(options),
            Just(columns),
            mutated(vec![data]),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        )
    });
    fuzz("copy", inputs, |(options, columns, data, cuts)| {
        let mut decoder = match CopyDecoder::new(&options, &columns) {
            Ok(d) => d,
            Err(e) => return Err(TestCaseError::fail(format!("seed options refused: {e:?}"))),
        };
        // The data arrives in CopyData messages cut anywhere.
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut rows = Vec::new();
        let mut from = 0;
        let mut failed = false;
        for cut in cuts.into_iter().chain(std::iter::once(data.len())) {
            if decoder.push(&data[from..cut], &mut rows).is_err() {
                failed = true;
                break;
            }
            from = cut;
        }
        if !failed {
            let _ = decoder.finish(&mut rows);
        }
        check_rows("COPY", rows.into_iter().map(Ok))
    });
}

/// Any row at all: known and unknown names, every kind of value, sizes
/// around the limits.
fn raw_row() -> impl Strategy<Value = RawRow> {
    let text = prop_oneof![
        Just(String::new()),
        "[a-z_]{1,12}",
        Just("commit".to_string()),
        Just("deployment_succeeded".to_string()),
        Just("incident_opened".to_string()),
        Just("2026-03-02T09:00:00Z".to_string()),
        Just("2026-03-02 09:00:00+00".to_string()),
        Just("0000-01-01T00:00:00+01:00".to_string()),
        Just("{\"a\": [1, {\"b\": null}]}".to_string()),
        any::<String>(),
        (0..3usize, any::<char>())
            .prop_map(|(k, c)| c.to_string().repeat([MAX_EVENT_ID_BYTES, MAX_TEXT_BYTES, MAX_ATTRIBUTES_BYTES][k] + 1)),
    ];
    let value = prop_oneof![
        Just(RawValue::Null),
        text.clone().prop_map(RawValue::Text),
        any::<i64>().prop_map(RawValue::Int),
        any::<f64>().prop_map(RawValue::Float),
        any::<bool>().prop_map(RawValue::Bool),
        any::<i64>().prop_map(RawValue::Timestamp),
        proptest::collection::vec(text.prop_map(RawValue::Text), 0..8).prop_map(RawValue::List),
        Just(RawValue::Json(serde_json::json!({"k": [1, 2, {"x": "y"}]}))),
    ];
    let name = prop_oneof![8 => proptest::sample::select(leadline_engine::event::INPUT_FIELDS.to_vec()).prop_map(String::from), 1 => "[a-z_]{1,10}"];
    proptest::collection::btree_map(name, value, 0..16).prop_map(|m| m.into_iter().collect())
}

#[test]
fn fuzz_event_validation() {
    fuzz("event validation", raw_row(), |row| {
        let line = InputRow { line: 1, raw: leadline_engine::event::raw_row_json(&row), fields: Ok(row) };
        check_row("fuzz", line)?;
        allocations_bounded()
    });
}
