//! The append-only event log of a data directory.
//!
//! ```text
//! DIR/LOCK                        one writer at a time (names its holder)
//! DIR/events/_delta_log/*.json    Delta Lake commits of the events table
//! DIR/events/event_date=YYYY-MM-DD/part-*.snappy.parquet
//! DIR/rejected/...                the quarantine, a Delta table too
//! DIR/index/ids-*.idx             event-id index (see index.rs)
//! ```
//!
//! An append is one commit of the events table: data files and index records
//! are written and fsynced first, then the commit file appears atomically, so
//! a crash at any point leaves either the whole append or none of it. The
//! quarantine's file is written before that commit too and named in it; if
//! the process dies before the quarantine's own commit, the next writer
//! commits it ([`Writer::open`]).

pub mod delta;
pub mod files;
pub mod index;
pub mod lock;
mod read;
pub mod sorted;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::event::{Event, Rejection, RejectionKind, event_id_hash, events_schema, rejected_schema};
use crate::input::InputRow;
use delta::{AddFile, DeltaTable, TableState, add_action, commit_info, remove_action};
use files::{EventFilesWriter, PARTITION_COLUMN, RejectedFileWriter};
use index::{IdIndex, Seen};
pub use read::{Ingested, Stamped, load_events, read_events, read_events_in, read_stored_events_in, read_whole_events};

/// Name of the index directory under a data directory.
pub const INDEX_DIR: &str = "index";

/// Files in one partition beyond which an append compacts that partition.
pub const AUTO_COMPACT_FILES: usize = 16;
/// Removed files are deleted from disk this long after their removal, so that
/// readers of an older snapshot finish first.
pub const REMOVED_FILE_RETENTION_MS: i64 = 60 * 60 * 1000;

/// What an append did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AppendReport {
    pub appended: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub rejected: u64,
    /// Events table version of the commit (none if the input was empty).
    pub version: Option<u64>,
    pub ingested_at: i64,
    /// Partitions the append compacted (more than [`AUTO_COMPACT_FILES`] files).
    pub compacted: u64,
    /// The first rejections, for the caller to show.
    #[serde(skip)]
    pub first_rejections: Vec<Rejection>,
    /// Each input's share, in the order of the inputs (the counts above are
    /// their sums): what the server's group commit reports to each client.
    #[serde(skip)]
    pub inputs: Vec<InputReport>,
}

/// What one input of an append came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputReport {
    pub appended: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub rejected: u64,
    /// Its first rejections, for the caller to show.
    pub first_rejections: Vec<Rejection>,
}

/// Keep this many rejections in the report for display.
const REPORTED_REJECTIONS: usize = 20;

/// Facts about one append, from its commit.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendRecord {
    pub version: u64,
    pub ingested_at: i64,
    pub appended: u64,
    pub duplicates: u64,
}

/// A consistent view of the log: the files and commits of one version.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub root: PathBuf,
    pub version: Option<u64>,
    pub event_files: Vec<AddFile>,
    pub rejected_files: Vec<AddFile>,
    pub appends: Vec<AppendRecord>,
}

impl Snapshot {
    pub fn events_root(&self) -> PathBuf {
        self.root.join("events")
    }
    pub fn rejected_root(&self) -> PathBuf {
        self.root.join("rejected")
    }
}

/// Read access to a data directory; never blocks, never takes the lock.
#[derive(Debug)]
pub struct EventLog {
    root: PathBuf,
    events: DeltaTable,
    rejected: DeltaTable,
    cached: Mutex<(TableState, TableState)>,
    /// The last shared snapshot, with the rejected table's version it saw.
    shared: Mutex<Option<(Option<u64>, Arc<Snapshot>)>>,
}

impl EventLog {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = root.into();
        if !root.is_dir() {
            return Err(Error::NoDataDirectory(root));
        }
        let root = root.canonicalize().map_err(|e| Error::io(&root, e))?;
        Ok(Self {
            events: DeltaTable::new(root.join("events")),
            rejected: DeltaTable::new(root.join("rejected")),
            root,
            cached: Mutex::new(Default::default()),
            shared: Mutex::new(None),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The latest committed state. Reads only commits it has not seen yet.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut guard = self.cached.lock().map_err(|_| Error::Corrupt("snapshot cache poisoned".into()))?;
        let (events, rejected) = &mut *guard;
        self.refresh(events, rejected)?;
        Ok(self.build(events, rejected))
    }

    /// The latest committed state, shared: while nothing is committed, the
    /// same one, so pinning it per statement costs a look for the next
    /// commit, not a copy of every file's entry.
    pub fn shared_snapshot(&self) -> Result<Arc<Snapshot>> {
        let mut guard = self.cached.lock().map_err(|_| Error::Corrupt("snapshot cache poisoned".into()))?;
        let (events, rejected) = &mut *guard;
        self.refresh(events, rejected)?;
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((rejected_version, snap)) = shared.as_ref()
            && snap.version == events.version
            && *rejected_version == rejected.version
        {
            return Ok(snap.clone());
        }
        let snap = Arc::new(self.build(events, rejected));
        *shared = Some((rejected.version, snap.clone()));
        Ok(snap)
    }

    fn refresh(&self, events: &mut TableState, rejected: &mut TableState) -> Result<()> {
        // Rejected first: a quarantine commit is never newer than its events commit.
        self.rejected.refresh(rejected)?;
        self.events.refresh(events)
    }

    fn build(&self, events: &TableState, rejected: &TableState) -> Snapshot {
        let mut rejected_files: Vec<AddFile> = rejected.files.values().cloned().collect();
        // A quarantine file named by an events commit but not yet committed
        // itself (writer died in between) is part of the snapshot all the same.
        for c in &events.commits {
            for add in pending_rejects(&c.leadline) {
                if !rejected.known_paths.contains(&add.path) {
                    rejected_files.push(add);
                }
            }
        }
        Snapshot {
            root: self.root.clone(),
            version: events.version,
            event_files: events.files.values().cloned().collect(),
            rejected_files,
            appends: events.commits.iter().filter_map(append_record).collect(),
        }
    }
}

fn append_record(c: &delta::CommitInfo) -> Option<AppendRecord> {
    let l = &c.leadline;
    Some(AppendRecord {
        version: c.version,
        ingested_at: l.get("ingested_at")?.as_i64()?,
        appended: l.get("appended").and_then(Value::as_u64).unwrap_or(0),
        duplicates: l.get("duplicates").and_then(Value::as_u64).unwrap_or(0),
    })
}

fn pending_rejects(leadline: &Value) -> Vec<AddFile> {
    leadline
        .get("rejected_file")
        .and_then(|f| {
            Some(AddFile {
                path: f.get("path")?.as_str()?.to_string(),
                partition_values: BTreeMap::new(),
                size: f.get("size")?.as_u64()?,
                num_records: f.get("num_records")?.as_u64()?,
                checksum: f.get("checksum").and_then(Value::as_str).and_then(|h| u64::from_str_radix(h, 16).ok()),
                ingested: None,
            })
        })
        .into_iter()
        .collect()
}

/// Checks that every live file of `snap` exists with the size its commit
/// gives, and that the index's buckets hold whole records: what opening a
/// data directory can afford (a `stat` a file). Returns the damage found.
pub fn damaged_files(snap: &Snapshot) -> Vec<Error> {
    let mut found = wrong_sizes(&snap.events_root(), &snap.event_files);
    found.extend(wrong_sizes(&snap.rejected_root(), &snap.rejected_files));
    let events = snap.event_files.iter().map(|f| f.num_records).sum();
    found.extend(IdIndex::verify_lengths(&snap.root.join(INDEX_DIR), events).err());
    found
}

/// Events stored in the table of `state`.
fn stored_events(state: &TableState) -> u64 {
    state.files.values().map(|f| f.num_records).sum()
}

fn wrong_sizes<'a>(root: &Path, files: impl IntoIterator<Item = &'a AddFile>) -> Vec<Error> {
    files.into_iter().filter_map(|f| files::verify_size(root, f).err()).collect()
}

/// The one writer of a data directory.
pub struct Writer {
    log: EventLog,
    _lock: lock::WriterLock,
    events_state: TableState,
    rejected_state: TableState,
    last_ingested_at: i64,
    /// The id index's bucket lengths as this writer's last append left them.
    index_lengths: Option<Vec<u64>>,
}

impl Writer {
    /// Takes the lock (creating the directory if needed), creates the tables,
    /// and finishes or undoes whatever a crashed writer left behind.
    pub fn open(root: impl Into<PathBuf>, holder: &str) -> Result<Self> {
        let root: PathBuf = root.into();
        delta::create_dir_durable(&root)?;
        let lock = lock::WriterLock::acquire(&root, holder)?;
        let log = EventLog::open(&root)?;
        log.events.create_if_missing(&events_schema(), &[PARTITION_COLUMN])?;
        log.rejected.create_if_missing(&rejected_schema(), &[])?;
        let events_state = log.events.state()?;
        let mut rejected_state = log.rejected.state()?;
        IdIndex::recover(&log.root.join(INDEX_DIR), events_state.version)?;
        // A damaged log or index is not written to: the error names the file.
        let mut damage = wrong_sizes(log.events.root(), events_state.files.values());
        damage.extend(wrong_sizes(log.rejected.root(), rejected_state.files.values()));
        if let Some(first) = damage.into_iter().next() {
            return Err(first);
        }
        // A damaged index stops appends (they check it again), not the
        // writer: `leadline rebuild --index` needs one to repair it.
        // The lengths it reads serve the writer's first append.
        let index_lengths = match IdIndex::verify_lengths(&log.root.join(INDEX_DIR), stored_events(&events_state)) {
            Ok(lengths) => lengths,
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        };
        // Roll the quarantine forward to match the events commits (a writer
        // died, or its disk was full, between the two commits).
        let missing: Vec<AddFile> = events_state
            .commits
            .iter()
            .flat_map(|c| pending_rejects(&c.leadline))
            .filter(|a| !rejected_state.known_paths.contains(&a.path))
            .collect();
        if let (false, Some(last)) = (missing.is_empty(), events_state.commits.last()) {
            let v = rejected_state.version.map_or(0, |v| v + 1);
            let mut actions: Vec<Value> = missing.iter().map(add_action).collect();
            actions.push(commit_info("WRITE", json!({"events_version": last.version})));
            log.rejected.commit(v, &actions)?;
            log.rejected.refresh(&mut rejected_state)?;
        }
        log.events.clean(&events_state, None)?;
        log.rejected.clean(&rejected_state, None)?;
        let last_ingested_at = events_state
            .commits
            .iter()
            .filter_map(|c| c.leadline.get("ingested_at").and_then(Value::as_i64))
            .max()
            .unwrap_or(i64::MIN);
        Ok(Self { log, _lock: lock, events_state, rejected_state, last_ingested_at, index_lengths })
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Appends every valid, new row of the inputs as one atomic commit and
    /// quarantines the rest. Each input is named by its source (file name,
    /// `INSERT`…: what a rejected row's `source` says); `commit_source` names
    /// the commit. `progress` hears how many rows it has read so far.
    pub fn append_inputs<S: AsRef<str>, R: Iterator<Item = Result<InputRow>>>(
        &mut self,
        commit_source: &str,
        inputs: impl Iterator<Item = (S, R)>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<AppendReport> {
        let version = self.events_state.version.map_or(0, |v| v + 1);
        // Monotonic per data directory, even if the clock steps back.
        let now = chrono::Utc::now().timestamp_micros();
        let ingested_at = now.max(self.last_ingested_at.saturating_add(1));
        let events_root = self.log.events.root().to_path_buf();
        // Checked against the files once per writer; after that, it knows
        // them (an append that fails leaves them to be checked again).
        let known = match self.index_lengths.take() {
            Some(lengths) => Some(lengths),
            None => IdIndex::verify_lengths(&self.log.root.join(INDEX_DIR), stored_events(&self.events_state))?,
        };
        let mut index = IdIndex::begin(&self.log.root.join(INDEX_DIR), version, known)?;
        let mut data = EventFilesWriter::new(&events_root, ingested_at);
        let mut quarantine = RejectedFileWriter::new(self.log.rejected.root(), ingested_at);
        let mut report = AppendReport { ingested_at, ..Default::default() };
        let mut read = 0u64;
        let mut reject = |input: &mut InputReport, r: Rejection| -> Result<()> {
            match r.kind {
                RejectionKind::Invalid => input.rejected += 1,
                RejectionKind::Conflict => input.conflicts += 1,
            }
            if input.first_rejections.len() < REPORTED_REJECTIONS {
                input.first_rejections.push(r.clone());
            }
            quarantine.push(r)
        };
        // One row: validated, checked against the id index, then stored or quarantined.
        let mut take = |input: &mut InputReport, source: &str, row: InputRow| -> Result<()> {
            let event_id = row.fields.as_ref().ok().and_then(|f| match f.get("event_id") {
                Some(crate::event::RawValue::Text(s)) => Some(s.clone()),
                _ => None,
            });
            let event = match row.fields.and_then(Event::from_raw_owned) {
                Ok(e) => e,
                Err(reason) => {
                    let r = Rejection::new(source, row.line, event_id, RejectionKind::Invalid, reason, row.raw);
                    return reject(input, r);
                }
            };
            match index.check_and_insert(event_id_hash(&event.event_id), event.content_hash())? {
                Seen::New => {
                    input.appended += 1;
                    data.push(event)?;
                }
                Seen::Duplicate => input.duplicates += 1,
                Seen::Conflict => {
                    let reason = format!(
                        "event_id '{}' is already stored with different content; the first write stays",
                        event.event_id
                    );
                    let r = Rejection::new(
                        source,
                        row.line,
                        Some(event.event_id),
                        RejectionKind::Conflict,
                        reason,
                        row.raw,
                    );
                    reject(input, r)?;
                }
            }
            Ok(())
        };
        for (source, rows) in inputs {
            let mut input = InputReport::default();
            for row in rows {
                read += 1;
                if read.is_multiple_of(65_536) {
                    progress(read);
                }
                take(&mut input, source.as_ref(), row?)?;
            }
            report.inputs.push(input);
        }
        for input in &report.inputs {
            report.appended += input.appended;
            report.duplicates += input.duplicates;
            report.conflicts += input.conflicts;
            report.rejected += input.rejected;
        }
        report.first_rejections =
            report.inputs.iter().flat_map(|i| &i.first_rejections).take(REPORTED_REJECTIONS).cloned().collect();
        progress(read);
        if read == 0 {
            drop(index);
            IdIndex::recover(&self.log.root.join(INDEX_DIR), self.events_state.version)?;
            return Ok(report);
        }
        let added = data.finish()?;
        let rejected_file = quarantine.finish()?;
        index.flush()?;
        let mut actions: Vec<Value> = added.iter().map(add_action).collect();
        let mut facts = json!({
            "source": commit_source,
            "ingested_at": ingested_at,
            "appended": report.appended,
            "duplicates": report.duplicates,
            "conflicts": report.conflicts,
            "rejected": report.rejected,
        });
        if let Some(f) = &rejected_file {
            facts["rejected_file"] = json!({
                "path": f.path,
                "size": f.size,
                "num_records": f.num_records,
                "checksum": f.checksum.map(|c| format!("{c:016x}")),
            });
        }
        actions.push(commit_info("WRITE", facts));
        self.log.events.commit(version, &actions)?;
        // From here on the append is acknowledged-durable.
        self.index_lengths = Some(index.finish()?);
        self.log.events.refresh(&mut self.events_state)?;
        self.log.events.checkpoint_if_due(&self.events_state);
        self.last_ingested_at = ingested_at;
        report.version = Some(version);
        // The append is durable now, and reported so: what follows tidies
        // up, and a failure of it (a full disk) is logged, not the append's.
        if let Some(f) = rejected_file {
            let v = self.rejected_state.version.map_or(0, |v| v + 1);
            let committed = self
                .log
                .rejected
                .commit(v, &[add_action(&f), commit_info("WRITE", json!({"events_version": version}))]);
            match committed.and_then(|()| self.log.rejected.refresh(&mut self.rejected_state)) {
                Ok(()) => self.log.rejected.checkpoint_if_due(&self.rejected_state),
                // Readers see the file through the events commit meanwhile.
                Err(e) => tracing::warn!(error = %e, "the quarantine's commit failed; the next writer makes it"),
            }
        }
        let touched: HashSet<&BTreeMap<String, String>> = added.iter().map(|f| &f.partition_values).collect();
        let crowded = self.partitions_over(AUTO_COMPACT_FILES, Some(&touched));
        report.compacted = crowded.len() as u64;
        if let Err(e) = compact_groups(&self.log.events, &mut self.events_state, crowded, events_schema()) {
            tracing::warn!(error = %e, "compacting after the append failed; the next append or `leadline compact` retries");
            report.compacted = 0;
            let _ = self.log.events.refresh(&mut self.events_state);
        }
        Ok(report)
    }

    /// Writes the event-id index again from the log's events (every data
    /// file read whole and verified): the repair of a damaged index.
    /// Returns the number of ids indexed.
    pub fn rebuild_index(&mut self) -> Result<u64> {
        self.index_lengths = None;
        let root = self.log.events.root().to_path_buf();
        let mut ids = Vec::new();
        for f in self.events_state.files.values() {
            read_whole_events(&root, f, &mut |batch| {
                ids.extend(batch.events.iter().map(|e| (event_id_hash(&e.event_id), e.content_hash())));
                Ok(())
            })?;
        }
        let n = ids.len() as u64;
        IdIndex::rebuild(&self.log.root.join(INDEX_DIR), ids)?;
        Ok(n)
    }

    /// Partitions of the events table holding more than `limit` files.
    fn partitions_over(&self, limit: usize, only: Option<&HashSet<&BTreeMap<String, String>>>) -> Vec<Vec<AddFile>> {
        let mut by_partition: BTreeMap<&BTreeMap<String, String>, Vec<AddFile>> = BTreeMap::new();
        for f in self.events_state.files.values() {
            if only.is_none_or(|o| o.contains(&f.partition_values)) {
                by_partition.entry(&f.partition_values).or_default().push(f.clone());
            }
        }
        by_partition.into_values().filter(|fs| fs.len() > limit).collect()
    }

    /// Rewrites every partition (of both tables) that has more than one file
    /// as a single file, in one commit per table, and deletes files removed
    /// longer than the retention ago. Queries return the same rows before,
    /// during and after. Returns (files before, files after).
    pub fn compact(&mut self) -> Result<(usize, usize)> {
        let before = self.events_state.files.len() + self.rejected_state.files.len();
        let crowded = self.partitions_over(1, None);
        compact_groups(&self.log.events, &mut self.events_state, crowded, events_schema())?;
        if self.rejected_state.files.len() > 1 {
            let all = vec![self.rejected_state.files.values().cloned().collect()];
            compact_groups(&self.log.rejected, &mut self.rejected_state, all, rejected_schema())?;
        }
        let cutoff = chrono::Utc::now().timestamp_millis() - REMOVED_FILE_RETENTION_MS;
        self.log.events.clean(&self.events_state, Some(cutoff))?;
        self.log.rejected.clean(&self.rejected_state, Some(cutoff))?;
        Ok((before, self.events_state.files.len() + self.rejected_state.files.len()))
    }
}

/// Replaces each group of files (one partition each) by one rewritten file,
/// all in one commit that changes no data.
fn compact_groups(
    table: &DeltaTable,
    state: &mut TableState,
    groups: Vec<Vec<AddFile>>,
    schema: arrow::datatypes::SchemaRef,
) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let mut actions = Vec::new();
    for files in groups {
        let new = files::rewrite(table.root(), &files, schema.clone())?;
        actions.extend(files.iter().map(|f| remove_action(f, false)));
        let mut add = add_action(&new);
        add["add"]["dataChange"] = json!(false);
        actions.push(add);
    }
    actions.push(commit_info("OPTIMIZE", json!({})));
    let v = state.version.map_or(0, |v| v + 1);
    table.commit(v, &actions)?;
    table.refresh(state)?;
    table.checkpoint_if_due(state);
    Ok(())
}
