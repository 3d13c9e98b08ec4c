//! Parquet data files: events written per `event_date` partition with a
//! bounded amount buffered, the quarantine's rows, and reading files back for
//! compaction. Every finished file is fsynced before it is handed on.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Int16Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::TimestampMicrosecondType;
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
/// Memory all open writers may use (their encoded pages and encoder state,
/// as `ArrowWriter::memory_size` estimates it) before the biggest is closed.
const OPEN_BYTES_BUDGET: usize = 256 << 20;
/// Rows buffered (not yet encoded) across partitions before all are encoded.
const BUFFERED_ROWS_BUDGET: usize = 128 * 1024;

/// Columns whose values are (nearly) unique per row. A dictionary would not
/// shrink them, yet each open file keeps one per column (up to its 1 MiB
/// page limit) until it falls back to plain encoding: with one open file per
/// `event_date`, hundreds of such dictionaries were most of an ingest's memory.
pub(crate) const PLAIN_COLUMNS: [&str; 6] =
    ["event_id", "commit_sha", "deployment_id", "incident_id", "attributes", "raw"];

fn writer_props() -> WriterProperties {
    let mut props =
        WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(256 * 1024));
    for col in PLAIN_COLUMNS {
        props = props.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(col), false);
    }
    props.build()
}

fn date_string(days: i32) -> String {
    chrono::DateTime::from_timestamp(days as i64 * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// Converts events to a batch of the `events` schema; `ingested_at(i)` is
/// the `i`th event's.
pub fn events_batch(events: &[Event], ingested_at: impl Fn(usize) -> i64) -> Result<RecordBatch> {
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
    for (i, e) in events.iter().enumerate() {
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
        ingested.append_value(ingested_at(i));
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

/// A file being written that hashes every byte on its way (xxh3-64), so
/// that its checksum costs no second read.
pub struct HashingFile {
    file: File,
    hasher: xxhash_rust::xxh3::Xxh3,
}

impl HashingFile {
    pub fn new(file: File) -> Self {
        Self { file, hasher: xxhash_rust::xxh3::Xxh3::new() }
    }

    /// The file and the checksum of what was written to it.
    pub fn finish(self) -> (File, u64) {
        (self.file, self.hasher.digest())
    }
}

impl std::io::Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// What a damaged file of the log affects, for [`Error::Damaged`].
pub fn log_file_affects(root: &Path, file: &AddFile) -> String {
    let table = root.file_name().map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned());
    format!(
        "it holds {} rows of the {table} table, which cannot be read whole until it is restored from a backup",
        file.num_records
    )
}

/// The bytes of the log's data file `file` under `root`, checked against
/// what its commit says (size, checksum) before anything decodes them.
pub fn read_verified(root: &Path, file: &AddFile) -> Result<bytes::Bytes> {
    let path = root.join(&file.path);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::damaged(&path, "missing", log_file_affects(root, file)),
        _ => Error::io(&path, e),
    })?;
    check_bytes(file, &bytes).map_err(|problem| Error::damaged(&path, problem, log_file_affects(root, file)))?;
    Ok(bytes.into())
}

/// Checks `bytes`, the content of `file`, against its commit's size and
/// checksum; what is wrong if they differ.
fn check_bytes(file: &AddFile, bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() as u64 != file.size {
        return Err(format!("{} bytes long, its commit says {}", bytes.len(), file.size));
    }
    if let Some(expected) = file.checksum {
        let sum = xxhash_rust::xxh3::xxh3_64(bytes);
        if sum != expected {
            return Err(format!("checksum mismatch (committed {expected:016x}, content {sum:016x})"));
        }
    }
    Ok(())
}

/// The damage of the Parquet file at `path`, if any: against what its
/// commit says of it (`committed`: size and checksum) when it is a log
/// file, else (or when it has no checksum) by decoding every page. For
/// explaining a failed read and for `leadline check`; reads the whole file.
pub fn find_damage(path: &Path, committed: Option<&AddFile>, affects: &str) -> Option<Error> {
    let damaged = |problem: &dyn std::fmt::Display| Some(Error::damaged(path, problem, affects));
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return damaged(&"missing"),
        Err(e) => return damaged(&e),
    };
    if let Some(file) = committed {
        if let Err(problem) = check_bytes(file, &bytes) {
            return damaged(&problem);
        }
        if file.checksum.is_some() {
            return None; // every byte is what was written
        }
    }
    undecodable(bytes).and_then(|problem| damaged(&problem))
}

/// Why `bytes` do not decode as Parquet, page by page, if they do not.
pub fn undecodable(bytes: Vec<u8>) -> Option<String> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .and_then(|b| b.build());
    match reader {
        Err(e) => Some(e.to_string()),
        Ok(batches) => batches.into_iter().find_map(|b| b.err()).map(|e| e.to_string()),
    }
}

/// The length and xxh3-64 of the file at `path`, read in a stream.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((len, hasher.digest()));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// Checks that `file` exists with the size its commit gives (one `stat`:
/// what start-up can afford for every file; checksums are verified where
/// files are read whole, and by `leadline check`).
pub fn verify_size(root: &Path, file: &AddFile) -> Result<()> {
    let path = root.join(&file.path);
    match std::fs::metadata(&path) {
        Ok(m) if m.len() == file.size => Ok(()),
        Ok(m) => {
            let problem = format!("{} bytes long, its commit says {}", m.len(), file.size);
            Err(Error::damaged(&path, problem, log_file_affects(root, file)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::damaged(&path, "missing", log_file_affects(root, file)))
        }
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// One Parquet file being written under a table root.
struct OpenFile {
    writer: ArrowWriter<HashingFile>,
    rel: String,
    partition_values: BTreeMap<String, String>,
    rows: u64,
    /// The least and greatest `ingested_at` written (tables that have it).
    ingested: Option<(i64, i64)>,
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
        let writer = ArrowWriter::try_new(HashingFile::new(file), schema, Some(writer_props()))?;
        Ok(Self { writer, rel: format!("{rel_dir}{name}"), partition_values, rows: 0, ingested: None })
    }

    fn write(&mut self, batch: &RecordBatch, root: &Path) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        let ingested =
            batch.column_by_name("ingested_at").and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
        if let Some(times) = ingested
            && let (Some(lo), Some(hi)) = (arrow::compute::min(times), arrow::compute::max(times))
        {
            self.ingested = Some(self.ingested.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
        }
        self.writer.write(batch).map_err(|e| written(&root.join(&self.rel), e))
    }

    /// Closes and fsyncs the file.
    fn finish(self, root: &Path) -> Result<AddFile> {
        let path = root.join(&self.rel);
        let (file, checksum) = self.writer.into_inner().map_err(|e| written(&root.join(&self.rel), e))?.finish();
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        let size = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        Ok(AddFile {
            path: self.rel,
            partition_values: self.partition_values,
            size,
            num_records: self.rows,
            checksum: Some(checksum),
            ingested: self.ingested,
        })
    }
}

/// A failed write of the Parquet file `path`, as an I/O error naming it
/// when it is one (a full disk).
pub fn written(path: &Path, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => Error::io(path, *io),
            Err(other) => Error::Parquet(parquet::errors::ParquetError::External(other)),
        },
        other => Error::Parquet(other),
    }
}

/// Events handed to the encoder thread at a time.
const HANDOFF_ROWS: usize = 4096;
/// Hand-offs in flight between the appender and the encoder thread.
const HANDOFFS_IN_FLIGHT: usize = 4;

enum ToEncoder {
    Events(Vec<Event>),
    Finish,
}

/// Writes events into one Parquet file per `event_date` (more when memory
/// runs short). Arrow conversion and Parquet encoding run on a thread of
/// their own, so that the appender validates and deduplicates the next rows
/// meanwhile; the files and their order of rows are the same as when written
/// inline. Dropped without [`finish`](Self::finish), it stops and leaves its
/// files uncommitted (the next writer removes them).
pub struct EventFilesWriter {
    chunk: Vec<Event>,
    tx: Option<std::sync::mpsc::SyncSender<ToEncoder>>,
    encoder: Option<std::thread::JoinHandle<Result<Vec<AddFile>>>>,
}

impl EventFilesWriter {
    pub fn new(root: &Path, ingested_at: i64) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ToEncoder>(HANDOFFS_IN_FLIGHT);
        let root = root.to_path_buf();
        let encoder = std::thread::Builder::new().name("parquet-encoder".into()).spawn(move || {
            let mut files = PartitionedEvents::new(&root, ingested_at);
            for msg in rx {
                match msg {
                    ToEncoder::Events(events) => {
                        for e in events {
                            files.push(e)?;
                        }
                    }
                    ToEncoder::Finish => return files.finish(),
                }
            }
            // The appender gave up: nothing is committed.
            Ok(Vec::new())
        });
        match encoder {
            Ok(handle) => Self { chunk: Vec::with_capacity(HANDOFF_ROWS), tx: Some(tx), encoder: Some(handle) },
            Err(e) => {
                let err = Error::Internal(format!("starting the Parquet encoder thread: {e}"));
                Self { chunk: Vec::new(), tx: None, encoder: Some(std::thread::spawn(move || Err(err))) }
            }
        }
    }

    pub fn push(&mut self, event: Event) -> Result<()> {
        self.chunk.push(event);
        if self.chunk.len() >= HANDOFF_ROWS {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(HANDOFF_ROWS));
            self.send(ToEncoder::Events(chunk))?;
        }
        Ok(())
    }

    fn send(&mut self, msg: ToEncoder) -> Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok());
        if sent {
            return Ok(());
        }
        // The encoder stopped: its error says why.
        self.tx = None;
        match self.encoder.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(Error::Internal("the Parquet encoder thread panicked".into())),
            _ => Err(Error::Internal("the Parquet encoder thread stopped".into())),
        }
    }

    /// Closes every file, fsyncs them and their directories.
    pub fn finish(mut self) -> Result<Vec<AddFile>> {
        let chunk = std::mem::take(&mut self.chunk);
        if !chunk.is_empty() {
            self.send(ToEncoder::Events(chunk))?;
        }
        self.send(ToEncoder::Finish)?;
        self.tx = None;
        match self.encoder.take().map(|h| h.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Internal("the Parquet encoder thread panicked".into())),
            None => Err(Error::Internal("the Parquet encoder thread stopped".into())),
        }
    }
}

impl Drop for EventFilesWriter {
    fn drop(&mut self) {
        // Closing the channel without `Finish` stops the encoder.
        self.tx = None;
        if let Some(h) = self.encoder.take() {
            let _ = h.join();
        }
    }
}

/// Writes events into one file per `event_date` (more when memory runs short);
/// runs on the encoder thread of an [`EventFilesWriter`].
struct PartitionedEvents {
    root: PathBuf,
    ingested_at: i64,
    buffered: HashMap<i32, Vec<Event>>,
    buffered_rows: usize,
    open: HashMap<i32, OpenFile>,
    /// `memory_size` of each open file when last written, and their sum (so
    /// that a write does not ask every open file again).
    open_sizes: HashMap<i32, usize>,
    open_bytes: usize,
    done: Vec<AddFile>,
}

impl PartitionedEvents {
    fn new(root: &Path, ingested_at: i64) -> Self {
        Self {
            root: root.to_path_buf(),
            ingested_at,
            buffered: HashMap::new(),
            buffered_rows: 0,
            open: HashMap::new(),
            open_sizes: HashMap::new(),
            open_bytes: 0,
            done: Vec::new(),
        }
    }

    fn push(&mut self, event: Event) -> Result<()> {
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
        let ingested_at = self.ingested_at;
        let batch = events_batch(rows, |_| ingested_at)?;
        let file = match self.open.entry(day) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(OpenFile::create(&self.root, Some((PARTITION_COLUMN, date_string(day))), events_schema())?)
            }
        };
        file.write(&batch, &self.root)?;
        let size = file.writer.memory_size();
        let old = self.open_sizes.insert(day, size).unwrap_or(0);
        self.open_bytes = self.open_bytes + size - old;
        if self.open_bytes > OPEN_BYTES_BUDGET
            && let Some((&big, _)) = self.open_sizes.iter().max_by_key(|&(_, &size)| size)
            && let Some(file) = self.open.remove(&big)
        {
            self.open_bytes -= self.open_sizes.remove(&big).unwrap_or(0);
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
    fn finish(mut self) -> Result<Vec<AddFile>> {
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
        file.write(&batch, &self.root)
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
    let partition = files.first().and_then(|f| f.partition_values.iter().next()).map(|(k, v)| (k.as_str(), v.clone()));
    let mut out = OpenFile::create(root, partition, schema.clone())?;
    for f in files {
        // Verified first: compaction must not carry damage into a new file.
        let bytes = read_verified(root, f)?;
        let path = root.join(&f.path);
        let damaged = |e: &dyn std::fmt::Display| Error::damaged(&path, e, log_file_affects(root, f));
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
            .map_err(|e| damaged(&e))?;
        for batch in reader {
            // Re-attach our schema: files carry it, but metadata may differ.
            let batch = batch.map_err(|e| damaged(&e))?;
            let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| damaged(&e))?;
            out.write(&batch, root)?;
        }
    }
    let add = out.finish(root)?;
    sync_parent_dirs(root, std::slice::from_ref(&add))?;
    Ok(add)
}

/// A DataFusion plan reading the Parquet `files` (absolute paths), whose
/// columns are `schema`'s: how the log's tables and the read model's are
/// scanned.
pub fn parquet_plan(
    files: impl IntoIterator<Item = PathBuf>,
    schema: arrow::datatypes::SchemaRef,
) -> datafusion::common::Result<datafusion::logical_expr::LogicalPlanBuilder> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
    let urls = files
        .into_iter()
        .map(|f| ListingTableUrl::parse(f.to_string_lossy()))
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
    let listing = Arc::new(ListingTable::try_new(config)?);
    datafusion::logical_expr::LogicalPlanBuilder::scan("t", datafusion::datasource::provider_as_source(listing), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn event(i: i64, day: i64) -> Event {
        Event {
            event_id: format!("e{i}"),
            event_type: EventType::Commit,
            occurred_at: day * 86_400_000_000 + i,
            service: "s".into(),
            environment: None,
            commit_sha: Some(format!("c{i}")),
            deployment_id: None,
            incident_id: None,
            change_ids: (i % 3 == 0).then(|| vec!["a".into(), "b".into()]),
            team: None,
            source: None,
            attributes: None,
            schema_version: 1,
        }
    }

    fn ids_in(root: &Path, add: &AddFile) -> Vec<String> {
        let file = File::open(root.join(&add.path)).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let col = arrow::array::AsArray::as_string::<i32>(batch.column(0));
            out.extend(col.iter().map(|v| v.unwrap().to_string()));
        }
        out
    }

    #[test]
    fn events_land_in_their_day_in_input_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventFilesWriter::new(dir.path(), 42);
        // More rows than one hand-off and one batch, over three days.
        let n = (HANDOFF_ROWS * 5 + 17) as i64;
        for i in 0..n {
            w.push(event(i, 20_000 + i % 3)).unwrap();
        }
        let mut files = w.finish().unwrap();
        files.sort_by(|a, b| a.partition_values.cmp(&b.partition_values));
        assert_eq!(files.len(), 3);
        assert_eq!(files.iter().map(|f| f.num_records).sum::<u64>(), n as u64);
        for (k, f) in files.iter().enumerate() {
            let day = 20_000 + k as i32;
            assert_eq!(f.partition_values[PARTITION_COLUMN], date_string(day));
            assert!(f.path.starts_with(&format!("{PARTITION_COLUMN}={}/", date_string(day))), "{}", f.path);
            let expected: Vec<String> = (0..n).filter(|i| i % 3 == k as i64).map(|i| format!("e{i}")).collect();
            assert_eq!(ids_in(dir.path(), f), expected);
            assert_eq!(f.size, std::fs::metadata(dir.path().join(&f.path)).unwrap().len());
        }
    }

    #[test]
    fn unique_id_columns_are_written_without_dictionary() {
        let props = writer_props();
        let col = |c: &str| parquet::schema::types::ColumnPath::from(c);
        assert!(!props.dictionary_enabled(&col("event_id")));
        assert!(!props.dictionary_enabled(&col("raw")));
        assert!(props.dictionary_enabled(&col("service")));
        assert!(props.dictionary_enabled(&col("event_type")));
    }

    #[test]
    fn a_writer_dropped_unfinished_stops_and_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventFilesWriter::new(dir.path(), 42);
        for i in 0..(HANDOFF_ROWS as i64 * 3) {
            w.push(event(i, 20_000)).unwrap();
        }
        drop(w); // must not hang; its files are orphans for the next writer to remove
        let empty = EventFilesWriter::new(dir.path(), 42);
        assert_eq!(empty.finish().unwrap(), vec![]);
    }
}
