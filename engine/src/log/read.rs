//! Reading events back from the log's data files, for the folds.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int16Type, TimestampMicrosecondType};

use parquet::file::reader::ChunkReader;

use super::Snapshot;
use super::delta::AddFile;
use super::files::{log_file_affects, read_verified};
use crate::error::{Error, Result};
use crate::event::{Event, EventType};

/// Which stored events to read, by `ingested_at`: after `after`
/// (exclusive) and up to `through` (inclusive); `None` leaves a side open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ingested {
    pub after: Option<i64>,
    pub through: Option<i64>,
}

impl Ingested {
    fn contains(self, t: i64) -> bool {
        self.after.is_none_or(|a| t > a) && self.through.is_none_or(|b| t <= b)
    }
}

/// Events as read back, each with its `ingested_at` (same index).
#[derive(Debug, Default)]
pub struct Stamped {
    pub events: Vec<Event>,
    pub ingested_at: Vec<i64>,
}

impl Stamped {
    pub fn extend(&mut self, other: Stamped) {
        self.events.extend(other.events);
        self.ingested_at.extend(other.ingested_at);
    }

    /// The earliest and latest `ingested_at`.
    pub fn ingested_range(&self) -> Option<(i64, i64)> {
        let lo = self.ingested_at.iter().min()?;
        Some((*lo, *self.ingested_at.iter().max()?))
    }
}

/// Reads the events visible at `snap` and ingested at or before `as_of`.
/// Each file is read whole, so its checksum is verified on the way.
pub fn load_events(snap: &Snapshot, as_of: Option<i64>) -> Result<Vec<Event>> {
    let root = snap.events_root();
    let mut out = Vec::new();
    for f in &snap.event_files {
        let bytes = read_verified(&root, f)?;
        let range = Ingested { after: None, through: as_of };
        decode_events(bytes, &root.join(&f.path), &log_file_affects(&root, f), range, false, None, &mut |batch| {
            out.extend(batch.events);
            Ok(())
        })?;
    }
    Ok(out)
}

/// Calls `each` with the events of one Parquet file of the `events` schema
/// that lie in `range`, a batch at a time. Row groups written wholly outside
/// `range` are skipped by their statistics, and the columns no rule
/// reads (`source`, `attributes`) are not decoded. A file that cannot be
/// decoded is [`Error::Damaged`], which `affects` says what it affects.
pub fn read_events(
    path: &Path,
    affects: &str,
    range: Ingested,
    each: &mut dyn FnMut(Stamped) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::damaged(path, "missing", affects),
        _ => Error::io(path, e),
    })?;
    decode_events(file, path, affects, range, false, None, each)
}

/// [`read_events`] of a Parquet source already in hand (bytes read whole
/// and checked), which `path` names in errors.
pub fn read_events_in<T: ChunkReader + 'static>(
    source: T,
    path: &Path,
    affects: &str,
    range: Ingested,
    each: &mut dyn FnMut(Stamped) -> Result<()>,
) -> Result<()> {
    decode_events(source, path, affects, range, false, None, each)
}

/// Makes a batch of another file of events (the read model's input
/// segments) a batch of the `events` schema's columns again.
pub type Restore = fn(RecordBatch) -> std::result::Result<RecordBatch, String>;

/// [`read_events_in`] of a file that stores events its own way: each batch
/// is `restore`d before it is decoded.
pub fn read_stored_events_in<T: ChunkReader + 'static>(
    source: T,
    path: &Path,
    affects: &str,
    range: Ingested,
    restore: Restore,
    each: &mut dyn FnMut(Stamped) -> Result<()>,
) -> Result<()> {
    decode_events(source, path, affects, range, false, Some(restore), each)
}

/// Calls `each` with every event of the log's data file `file` under
/// `root`, every field decoded (what its content hash covers), after
/// checking the file against its commit.
pub fn read_whole_events(root: &Path, file: &AddFile, each: &mut dyn FnMut(Stamped) -> Result<()>) -> Result<()> {
    let bytes = read_verified(root, file)?;
    decode_events(bytes, &root.join(&file.path), &log_file_affects(root, file), Ingested::default(), true, None, each)
}

/// Decodes the events of a Parquet source in `range`; `all_fields` also
/// decodes the columns no rule reads.
fn decode_events<T: ChunkReader + 'static>(
    source: T,
    path: &Path,
    affects: &str,
    range: Ingested,
    all_fields: bool,
    restore: Option<Restore>,
    each: &mut dyn FnMut(Stamped) -> Result<()>,
) -> Result<()> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::statistics::Statistics;
    let damaged = |e: &dyn std::fmt::Display| Error::damaged(path, e, affects);
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(source).map_err(|e| damaged(&e))?.with_batch_size(8192);
    let columns = builder.parquet_schema().columns();
    let wanted: Vec<usize> = (0..columns.len())
        .filter(|&i| all_fields || !matches!(columns[i].path().parts()[0].as_str(), "source" | "attributes"))
        .collect();
    let ingested = columns.iter().position(|c| c.name() == "ingested_at");
    if let (true, Some(col)) = (range.after.is_some() || range.through.is_some(), ingested) {
        let groups: Vec<usize> = (0..builder.metadata().num_row_groups())
            .filter(|&g| match builder.metadata().row_group(g).column(col).statistics() {
                Some(Statistics::Int64(s)) => {
                    s.max_opt().is_none_or(|&max| range.after.is_none_or(|after| max > after))
                        && s.min_opt().is_none_or(|&min| range.through.is_none_or(|through| min <= through))
                }
                _ => true,
            })
            .collect();
        if groups.is_empty() {
            return Ok(());
        }
        builder = builder.with_row_groups(groups);
    }
    let mask = ProjectionMask::leaves(builder.parquet_schema(), wanted);
    for batch in builder.with_projection(mask).build().map_err(|e| damaged(&e))? {
        let mut out = Stamped::default();
        let mut batch = batch.map_err(|e| damaged(&e))?;
        if let Some(restore) = restore {
            batch = restore(batch).map_err(|e| damaged(&e))?;
        }
        decode(&batch, range, &mut out).map_err(|e| damaged(&e))?;
        each(out)?;
    }
    Ok(())
}

/// The rows of `batch` in `range` as events, or what is wrong with the batch.
fn decode(batch: &RecordBatch, range: Ingested, out: &mut Stamped) -> std::result::Result<(), String> {
    let text = |name: &str| -> std::result::Result<&arrow::array::StringArray, String> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| format!("not an events file: it lacks text column {name}"))
    };
    let ts = |name: &str| -> std::result::Result<&arrow::array::TimestampMicrosecondArray, String> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| format!("not an events file: it lacks timestamp column {name}"))
    };
    let (id, ty, occurred, service, env) =
        (text("event_id")?, text("event_type")?, ts("occurred_at")?, text("service")?, text("environment")?);
    let (sha, dep, inc, team) = (text("commit_sha")?, text("deployment_id")?, text("incident_id")?, text("team")?);
    let ingested = ts("ingested_at")?;
    let changes = batch
        .column_by_name("change_ids")
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or_else(|| "not an events file: it lacks change_ids".to_string())?;
    let version = batch.column_by_name("schema_version").and_then(|c| c.as_primitive_opt::<Int16Type>());
    // Only when asked for (see `read_whole_events`).
    let (source, attributes) = (
        batch.column_by_name("source").and_then(|c| c.as_string_opt::<i32>()),
        batch.column_by_name("attributes").and_then(|c| c.as_string_opt::<i32>()),
    );
    let opt = |a: &arrow::array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    for i in 0..batch.num_rows() {
        if !range.contains(ingested.value(i)) {
            continue;
        }
        let Some(event_type) = EventType::parse(ty.value(i)) else {
            return Err(format!("a stored event has the unknown type {}", ty.value(i)));
        };
        let change_ids = (!changes.is_null(i)).then(|| {
            let list = changes.value(i);
            let s = list.as_string::<i32>();
            (0..s.len()).map(|j| s.value(j).to_string()).collect()
        });
        out.ingested_at.push(ingested.value(i));
        out.events.push(Event {
            event_id: id.value(i).to_string(),
            event_type,
            occurred_at: occurred.value(i),
            service: service.value(i).to_string(),
            environment: opt(env, i),
            commit_sha: opt(sha, i),
            deployment_id: opt(dep, i),
            incident_id: opt(inc, i),
            change_ids,
            team: opt(team, i),
            source: source.and_then(|a| opt(a, i)),
            attributes: attributes.and_then(|a| opt(a, i)),
            schema_version: version.map_or(1, |v| v.value(i)),
        });
    }
    Ok(())
}
