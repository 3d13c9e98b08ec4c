//! Parquet data files: events written per `event_date` partition with a
//! bounded amount buffered, the quarantine's rows, and reading files back for
//! compaction. Every finished file is fsynced before it is handed on.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int16Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::delta::{AddFile, create_dir_durable, sync_dir};
use crate::error::{Error, Result};
use crate::event::{Event, Rejection, UTC, change_ids_item, events_schema, rejected_schema};

/// Name of the events table's partition column (a Delta `date`).
pub const PARTITION_COLUMN: &str = "event_date";
/// Rows converted to Arrow at a time.
const BATCH_ROWS: usize = 8192;
/// Encoded bytes all open writers may buffer before the biggest is closed.
const OPEN_BYTES_BUDGET: usize = 256 << 20;
/// Rows buffered (not yet encoded) across partitions before all are encoded.
const BUFFERED_ROWS_BUDGET: usize = 128 * 1024;

fn writer_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(256 * 1024))
        .build()
}

fn date_string(days: i32) -> String {
    chrono::DateTime::from_timestamp(days as i64 * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// Converts events to a batch of the `events` schema.
pub fn events_batch(events: &[Event], ingested_at: i64) -> Result<RecordBatch> {
    let n = events.len();
    let mut id = StringBuilder::with_capacity(n, n * 16);
    let mut ty = StringBuilder::with_capacity(n, n * 12);
    let mut occurred = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    let mut service = StringBuilder::new();
    let mut env = StringBuilder::new();
    let mut sha = StringBuilder::new();
    let mut dep = StringBuilder::new();
    let mut inc = StringBuilder::new();
    let mut changes = ListBuilder::new(StringBuilder::new()).with_field(change_ids_item());
    let mut team = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut attrs = StringBuilder::new();
    let mut version = Int16Builder::with_capacity(n);
    let mut ingested = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    for e in events {
        id.append_value(&e.event_id);
        ty.append_value(e.event_type.as_str());
        occurred.append_value(e.occurred_at);
        service.append_value(&e.service);
        env.append_option(e.environment.as_deref());
        sha.append_option(e.commit_sha.as_deref());
        dep.append_option(e.deployment_id.as_deref());
        inc.append_option(e.incident_id.as_deref());
        match &e.change_ids {
            Some(ids) => {
                for i in ids {
                    changes.values().append_value(i);
                }
                changes.append(true);
            }
            None => changes.append(false),
        }
        team.append_option(e.team.as_deref());
        source.append_option(e.source.as_deref());
        attrs.append_option(e.attributes.as_deref());
        version.append_value(e.schema_version);
        ingested.append_value(ingested_at);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(ty.finish()),
        Arc::new(occurred.finish()),
        Arc::new(service.finish()),
        Arc::new(env.finish()),
        Arc::new(sha.finish()),
        Arc::new(dep.finish()),
        Arc::new(inc.finish()),
        Arc::new(changes.finish()),
        Arc::new(team.finish()),
        Arc::new(source.finish()),
        Arc::new(attrs.finish()),
        Arc::new(version.finish()),
        Arc::new(ingested.finish()),
    ];
    Ok(RecordBatch::try_new(events_schema(), columns)?)
}

fn rejected_batch(rows: &[Rejection], rejected_at: i64) -> Result<RecordBatch> {
    let mut source = StringBuilder::new();
    let mut line = Int64Builder::new();
    let mut id = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut raw = StringBuilder::new();
    let mut at = TimestampMicrosecondBuilder::new().with_timezone(UTC);
    for r in rows {
        source.append_value(&r.source);
        line.append_value(r.line as i64);
        id.append_option(r.event_id.as_deref());
        kind.append_value(r.kind.as_str());
        reason.append_value(&r.reason);
        raw.append_value(&r.raw);
        at.append_value(rejected_at);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(line.finish()),
        Arc::new(id.finish()),
        Arc::new(kind.finish()),
        Arc::new(reason.finish()),
        Arc::new(raw.finish()),
        Arc::new(at.finish()),
    ];
    Ok(RecordBatch::try_new(rejected_schema(), columns)?)
}

/// One Parquet file being written under a table root.
struct OpenFile {
    writer: ArrowWriter<File>,
    rel: String,
    partition_values: BTreeMap<String, String>,
    rows: u64,
}

impl OpenFile {
    fn create(root: &Path, partition: Option<(&str, String)>, schema: arrow::datatypes::SchemaRef) -> Result<Self> {
        let (dir, rel_dir, partition_values) = match partition {
            Some((col, value)) => {
                let rel_dir = format!("{col}={value}/");
                (root.join(&rel_dir), rel_dir, BTreeMap::from([(col.to_string(), value)]))
            }
            None => (root.to_path_buf(), String::new(), BTreeMap::new()),
        };
        create_dir_durable(&dir)?;
        let name = format!("part-{}.snappy.parquet", uuid::Uuid::new_v4());
        let path = dir.join(&name);
        let file = File::create_new(&path).map_err(|e| Error::io(&path, e))?;
        let writer = ArrowWriter::try_new(file, schema, Some(writer_props()))?;
        Ok(Self { writer, rel: format!("{rel_dir}{name}"), partition_values, rows: 0 })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        Ok(self.writer.write(batch)?)
    }

    /// Closes and fsyncs the file.
    fn finish(self, root: &Path) -> Result<AddFile> {
        let file = self.writer.into_inner()?;
        let path = root.join(&self.rel);
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        let size = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        Ok(AddFile { path: self.rel, partition_values: self.partition_values, size, num_records: self.rows })
    }
}

/// Writes events into one file per `event_date` (more when memory runs short).
pub struct EventFilesWriter {
    root: PathBuf,
    ingested_at: i64,
    buffered: HashMap<i32, Vec<Event>>,
    buffered_rows: usize,
    open: HashMap<i32, OpenFile>,
    done: Vec<AddFile>,
}

impl EventFilesWriter {
    pub fn new(root: &Path, ingested_at: i64) -> Self {
        Self {
            root: root.to_path_buf(),
            ingested_at,
            buffered: HashMap::new(),
            buffered_rows: 0,
            open: HashMap::new(),
            done: Vec::new(),
        }
    }

    pub fn push(&mut self, event: Event) -> Result<()> {
        let day = event.event_date();
        let buf = self.buffered.entry(day).or_default();
        buf.push(event);
        self.buffered_rows += 1;
        if buf.len() >= BATCH_ROWS {
            let rows = std::mem::take(buf);
            self.buffered_rows -= rows.len();
            self.encode(day, &rows)?;
        }
        if self.buffered_rows >= BUFFERED_ROWS_BUDGET {
            self.encode_all()?;
        }
        Ok(())
    }

    fn encode(&mut self, day: i32, rows: &[Event]) -> Result<()> {
        let batch = events_batch(rows, self.ingested_at)?;
        let file = match self.open.entry(day) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(OpenFile::create(&self.root, Some((PARTITION_COLUMN, date_string(day))), events_schema())?)
            }
        };
        file.write(&batch)?;
        let in_memory: usize = self.open.values().map(|f| f.writer.in_progress_size()).sum();
        if in_memory > OPEN_BYTES_BUDGET
            && let Some((&big, _)) = self.open.iter().max_by_key(|(_, f)| f.writer.in_progress_size())
            && let Some(file) = self.open.remove(&big)
        {
            self.done.push(file.finish(&self.root)?);
        }
        Ok(())
    }

    fn encode_all(&mut self) -> Result<()> {
        let days: Vec<i32> = self.buffered.keys().copied().collect();
        for day in days {
            if let Some(rows) = self.buffered.remove(&day)
                && !rows.is_empty()
            {
                self.encode(day, &rows)?;
            }
        }
        self.buffered_rows = 0;
        Ok(())
    }

    /// Closes every file, fsyncs them and their directories.
    pub fn finish(mut self) -> Result<Vec<AddFile>> {
        self.encode_all()?;
        let open: Vec<OpenFile> = self.open.drain().map(|(_, f)| f).collect();
        for f in open {
            self.done.push(f.finish(&self.root)?);
        }
        sync_parent_dirs(&self.root, &self.done)?;
        Ok(self.done)
    }
}

fn sync_parent_dirs(root: &Path, files: &[AddFile]) -> Result<()> {
    let dirs: std::collections::BTreeSet<PathBuf> =
        files.iter().filter_map(|f| root.join(&f.path).parent().map(Path::to_path_buf)).collect();
    dirs.iter().try_for_each(|d| sync_dir(d))
}

/// Writes quarantined rows into one unpartitioned file.
pub struct RejectedFileWriter {
    root: PathBuf,
    rejected_at: i64,
    buffered: Vec<Rejection>,
    file: Option<OpenFile>,
}

impl RejectedFileWriter {
    pub fn new(root: &Path, rejected_at: i64) -> Self {
        Self { root: root.to_path_buf(), rejected_at, buffered: Vec::new(), file: None }
    }

    pub fn push(&mut self, r: Rejection) -> Result<()> {
        self.buffered.push(r);
        if self.buffered.len() >= BATCH_ROWS {
            self.encode()?;
        }
        Ok(())
    }

    fn encode(&mut self) -> Result<()> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        let batch = rejected_batch(&self.buffered, self.rejected_at)?;
        self.buffered.clear();
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(OpenFile::create(&self.root, None, rejected_schema())?),
        };
        file.write(&batch)
    }

    pub fn finish(mut self) -> Result<Option<AddFile>> {
        self.encode()?;
        match self.file.take() {
            None => Ok(None),
            Some(f) => {
                let add = f.finish(&self.root)?;
                sync_parent_dirs(&self.root, std::slice::from_ref(&add))?;
                Ok(Some(add))
            }
        }
    }
}

/// Rewrites `files` (all of one partition) as one file. Returns it, fsynced.
pub fn rewrite(root: &Path, files: &[AddFile], schema: arrow::datatypes::SchemaRef) -> Result<AddFile> {
    let partition = files
        .first()
        .and_then(|f| f.partition_values.iter().next())
        .map(|(k, v)| (k.as_str(), v.clone()));
    let mut out = OpenFile::create(root, partition, schema.clone())?;
    for f in files {
        let path = root.join(&f.path);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(BATCH_ROWS)
            .build()?;
        for batch in reader {
            // Re-attach our schema: files carry it, but metadata may differ.
            let batch = RecordBatch::try_new(schema.clone(), batch?.columns().to_vec())?;
            out.write(&batch)?;
        }
    }
    let add = out.finish(root)?;
    sync_parent_dirs(root, std::slice::from_ref(&add))?;
    Ok(add)
}
