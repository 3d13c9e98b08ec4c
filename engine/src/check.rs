//! `leadline check`: verifies a whole data directory and lists every damaged
//! file with what it affects, without writing anything (it takes no lock,
//! so it can run beside a writer).
//!
//! - the log: every Delta commit of both tables (parses, ends with its
//!   commitInfo, matches its checksum, none missing) and every data file
//!   they name (size and checksum against the commit, every page decoded);
//!   no event id stored twice;
//! - the event-id index: every record whole and matching its check, and
//!   exactly the log's ids with their content hashes (a missing id would
//!   let a redelivery be stored twice; an extra one would drop a first
//!   delivery);
//! - the read model: its manifest and every file it names, and, when it is
//!   up to date, its tables, metric rows and counts against a fold of the
//!   log in memory;
//! - saved views: every file parses.
//!
//! What a writer that died leaves behind (files no commit or manifest names,
//! an uncommitted append's index records, temp files, a read model behind
//! the log) is not damage: the next writer tidies it, and it is listed as a
//! note. Checking reads every file once and folds the log in memory (about
//! 1 KB an event).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use leadline_udfs::Grain;

use crate::catalog::damaged_view_files;
use crate::error::{Error, Result};
use crate::event::{Event, event_id_hash};
use crate::log::delta::{DeltaTable, LOG_DIR, TableState, is_temp_file};
use crate::log::files::{find_damage, log_file_affects, undecodable};
use crate::log::index::{
    BUCKETS, IdIndex, Pending, RECORD, bucket_files, bucket_of, content_key, decode_record, id_key, sorted_heads,
};
use crate::log::{EventLog, INDEX_DIR, Snapshot, read_whole_events};
use crate::metrics::{ProjectedCounts, dora_metrics, metric_rows};
use crate::project::tables::{Table, table_batch};
use crate::project::{Projected, project};
use crate::readmodel::{MODEL_AFFECTS, ReadModel, published_tables};

/// What a damaged file belongs to, most serious first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DamageArea {
    /// The events or quarantine table (commits, data files): the data itself.
    Log,
    /// The event-id index (derived from the log; appends stop).
    Index,
    /// The read model (derived from the log; rebuilt by `leadline rebuild`).
    ReadModel,
    /// A saved view's file.
    Views,
}

impl DamageArea {
    pub fn name(self) -> &'static str {
        match self {
            DamageArea::Log => "log",
            DamageArea::Index => "index",
            DamageArea::ReadModel => "read model",
            DamageArea::Views => "views",
        }
    }
}

/// One damaged file: which, what is wrong, and what it affects.
#[derive(Debug, Clone)]
pub struct Damage {
    pub area: DamageArea,
    pub path: PathBuf,
    pub problem: String,
    pub affects: String,
}

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Every damaged file, most serious area first.
    pub damage: Vec<Damage>,
    /// What is not damage but worth knowing (leftovers of a writer that
    /// died, a read model behind the log, commits without checksums).
    pub notes: Vec<String>,
    pub log_version: Option<u64>,
    pub model_version: Option<u64>,
    pub commits: u64,
    pub files: u64,
    pub bytes: u64,
    pub events: u64,
    pub index_records: u64,
    pub views: u64,
}

/// What `check` is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CheckProgress {
    /// A step begins; `total` units of work (bytes, buckets…), 0 if unknown.
    Step { name: &'static str, total: u64 },
    /// `n` more units of the current step are done.
    Advance(u64),
}

/// Verifies the data directory `dir` (see the module's documentation).
/// `Err` only when it cannot be checked at all (no such directory).
pub fn check(dir: &Path, progress: &mut dyn FnMut(CheckProgress)) -> Result<CheckReport> {
    let log = EventLog::open(dir)?;
    let root = log.root().to_path_buf();
    let mut report = CheckReport::default();
    let mut found = Found::default();

    // 1. Commits of both tables.
    let events_table = DeltaTable::new(root.join("events"));
    let rejected_table = DeltaTable::new(root.join("rejected"));
    let mut states = Vec::new();
    for table in [&events_table, &rejected_table] {
        let versions = commit_versions(table, &mut report);
        progress(CheckProgress::Step { name: "checking commits", total: versions.len() as u64 });
        if let Err(e) = table.verify_checkpoint() {
            found.error(DamageArea::Log, e);
        }
        match table.replayed_state() {
            Ok(state) => {
                report.commits += state.commits.len() as u64;
                if state.unsealed_commits > 0 {
                    report.notes.push(format!(
                        "{} commit(s) of {} carry no checksum (written before leadline sealed its commits): \
                         checked for their structure only",
                        state.unsealed_commits,
                        table.root().display()
                    ));
                }
                states.push(Some(state));
            }
            Err(e) => {
                found.error(DamageArea::Log, e);
                states.push(None);
            }
        }
        progress(CheckProgress::Advance(versions.len() as u64));
    }
    let (Some(events_state), Some(rejected_state)) = (&states[0], &states[1]) else {
        report.notes.push(
            "the data files, the index and the read model were not checked: the log's commits cannot be read".into(),
        );
        report.views = check_views(&root, &mut found)?;
        return Ok(found.into_report(report));
    };
    let snap = log.snapshot()?;
    report.log_version = snap.version;

    // 2. Data files, and the events they hold.
    leftover_files(&events_table, events_state, &mut report);
    leftover_files(&rejected_table, rejected_state, &mut report);
    let total: u64 = snap.event_files.iter().chain(&snap.rejected_files).map(|f| f.size).sum();
    progress(CheckProgress::Step { name: "reading the log's files", total });
    let mut events: Vec<Event> = Vec::new();
    let mut event_files = 0usize;
    for f in &snap.event_files {
        let before = events.len();
        match read_whole_events(&snap.events_root(), f, &mut |batch| {
            events.extend(batch.events);
            Ok(())
        }) {
            Ok(()) => {
                let read = (events.len() - before) as u64;
                if read != f.num_records {
                    let problem = format!("holds {read} events, its commit says {}", f.num_records);
                    let path = snap.events_root().join(&f.path);
                    found.error(
                        DamageArea::Log,
                        Error::damaged(&path, problem, log_file_affects(&snap.events_root(), f)),
                    );
                }
            }
            Err(e) => {
                events.truncate(before);
                found.error(DamageArea::Log, e);
            }
        }
        event_files += 1;
        report.bytes += f.size;
        progress(CheckProgress::Advance(f.size));
    }
    for f in &snap.rejected_files {
        let root = snap.rejected_root();
        if let Some(e) = find_damage(&root.join(&f.path), Some(f), &log_file_affects(&root, f)) {
            found.error(DamageArea::Log, e);
        }
        report.bytes += f.size;
        progress(CheckProgress::Advance(f.size));
    }
    report.files = (event_files + snap.rejected_files.len()) as u64;
    report.events = events.len() as u64;
    let log_damaged = found.any(DamageArea::Log);
    stored_twice(&events, &snap, &mut found);

    // 3. The index against the log.
    check_index(&root.join(INDEX_DIR), &snap, &events, log_damaged, &mut report, &mut found, progress)?;

    // 4. The read model against a fold of the log.
    check_model(&root, &snap, &events, log_damaged, &mut report, &mut found, progress);

    // 5. Views.
    report.views = check_views(&root, &mut found)?;
    Ok(found.into_report(report))
}

/// Damage found so far.
#[derive(Default)]
struct Found(Vec<Damage>);

impl Found {
    fn add(&mut self, area: DamageArea, path: &Path, problem: impl Into<String>, affects: impl Into<String>) {
        self.0.push(Damage { area, path: path.to_path_buf(), problem: problem.into(), affects: affects.into() });
    }

    /// Records `e` (damage, or an error reading a file) under `area`.
    fn error(&mut self, area: DamageArea, e: Error) {
        match e {
            Error::Damaged { path, problem, affects } => self.0.push(Damage { area, path, problem, affects }),
            Error::Io { path, source } => self.add(area, &path, format!("cannot be read: {source}"), ""),
            other => self.add(area, Path::new(""), other.to_string(), ""),
        }
    }

    fn any(&self, area: DamageArea) -> bool {
        self.0.iter().any(|d| d.area == area)
    }

    fn into_report(mut self, mut report: CheckReport) -> CheckReport {
        self.0.sort_by(|a, b| (a.area, &a.path).cmp(&(b.area, &b.path)));
        report.damage = self.0;
        report
    }
}

/// The versions of `table`'s commit files; notes temp files of commits a
/// writer died writing.
fn commit_versions(table: &DeltaTable, report: &mut CheckReport) -> Vec<u64> {
    let mut versions = Vec::new();
    let mut temp = 0;
    for entry in std::fs::read_dir(table.log_dir()).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(v) = name.strip_suffix(".json").and_then(|n| n.parse::<u64>().ok()) {
            versions.push(v);
        } else if is_temp_file(&name) {
            temp += 1;
        }
    }
    if temp > 0 {
        report.notes.push(format!(
            "{temp} temp file(s) in {} of commits a writer died writing (removed by the next writer)",
            table.log_dir().display()
        ));
    }
    versions.sort_unstable();
    versions
}

/// Notes Parquet files under a table that no commit names (a writer died
/// before committing them; the next writer removes them).
fn leftover_files(table: &DeltaTable, state: &TableState, report: &mut CheckReport) {
    let mut stack = vec![table.root().to_path_buf()];
    let mut orphans = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name() != LOG_DIR {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let rel = path.strip_prefix(table.root()).map(|r| r.to_string_lossy().replace('\\', "/"));
                if rel.is_ok_and(|r| !state.known_paths.contains(&r)) {
                    orphans += 1;
                }
            }
        }
    }
    if orphans > 0 {
        report.notes.push(format!(
            "{orphans} data file(s) under {} that no commit names: an append or compaction died before \
             committing them (removed by the next writer)",
            table.root().display()
        ));
    }
}

/// Damage if one event id is stored more than once.
fn stored_twice(events: &[Event], snap: &Snapshot, found: &mut Found) {
    let mut ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    let twice: Vec<&str> = ids.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    if let Some(first) = twice.first() {
        let problem = format!("{} event id(s) are stored more than once, e.g. '{first}'", twice.len());
        found.add(DamageArea::Log, &snap.events_root(), problem, "every count and metric over those events");
    }
}

const INDEX_AFFECTS: &str = "the event-id index: appends stop until it is rebuilt from the log \
    (`leadline rebuild --index`) or restored from a backup";

/// The index's records against the log's events: the same ids, each once,
/// with the same content.
fn check_index(
    dir: &Path,
    snap: &Snapshot,
    events: &[Event],
    log_damaged: bool,
    report: &mut CheckReport,
    found: &mut Found,
    progress: &mut dyn FnMut(CheckProgress),
) -> Result<()> {
    progress(CheckProgress::Step { name: "checking the index", total: BUCKETS as u64 });
    if IdIndex::of_earlier_release(dir) {
        report.notes.push(
            "the event-id index is of an earlier release: not compared; the next writer (`leadline ingest`, the \
             server, `leadline rebuild --index`) converts it"
                .into(),
        );
        return Ok(());
    }
    let pending = match Pending::read(dir) {
        Ok(p) => p,
        Err(e @ Error::Damaged { .. }) => {
            if let Error::Damaged { path, problem, affects } = e {
                found.add(DamageArea::Index, &path, problem, affects);
            }
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(p) = &pending {
        report.notes.push(format!(
            "the index holds records of an append of version {} that may not have committed \
             (cut away by the next writer if it did not)",
            p.version
        ));
    }
    // Records of an append that has not committed (yet) are not compared.
    let uncommitted = pending.as_ref().filter(|p| snap.version.is_none_or(|c| c < p.version));
    let heads = sorted_heads(dir).unwrap_or_else(|e| {
        if let Error::Damaged { path, problem, affects } = e {
            found.add(DamageArea::Index, &path, problem, affects);
        }
        vec![0; BUCKETS]
    });
    let mut indexed: Vec<(u64, u64, usize)> = Vec::new();
    let files = bucket_files(dir);
    for (b, path) in &files {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let whole = bytes.len() / RECORD * RECORD;
        if whole != bytes.len() && pending.is_none() {
            let problem = format!("{} bytes long, not a whole number of {RECORD}-byte records", bytes.len());
            found.add(DamageArea::Index, path, problem, INDEX_AFFECTS);
        }
        let first_uncommitted = uncommitted.map_or(u64::MAX, |p| p.first_record(*b));
        for (i, r) in bytes[..whole].chunks_exact(RECORD).enumerate() {
            if i as u64 >= first_uncommitted {
                break;
            }
            let (key, content) = match decode_record(r) {
                Ok(rec) => rec,
                Err(problem) => {
                    found.add(DamageArea::Index, path, format!("record {i}: {problem}"), INDEX_AFFECTS);
                    continue;
                }
            };
            if bucket_of(u128::from(key) << 64) != *b {
                found.add(DamageArea::Index, path, format!("record {i} belongs in another bucket"), INDEX_AFFECTS);
                continue;
            }
            // Lookups search the head by key: one out of order hides ids from them.
            let previous = indexed.last().filter(|x| x.2 == *b).map(|x| x.0);
            if (i as u64) < heads[*b] && previous.is_some_and(|p| p > key) {
                let problem = format!("record {i} is out of key order in the sorted head (`SORTED`)");
                found.add(DamageArea::Index, path, problem, INDEX_AFFECTS);
            }
            indexed.push((key, content, *b));
        }
        progress(CheckProgress::Advance(1));
    }
    progress(CheckProgress::Advance((BUCKETS - files.len()) as u64));
    report.index_records = indexed.len() as u64;
    if log_damaged {
        report.notes.push("the index was not compared with the log: the log is damaged".into());
        return Ok(());
    }
    // Both sides sorted by id: what each has that the other lacks.
    let mut stored: Vec<(u64, u64)> =
        events.iter().map(|e| (id_key(event_id_hash(&e.event_id)), content_key(e.content_hash()))).collect();
    stored.sort_unstable();
    indexed.sort_unstable();
    // (missing, extra, other content, twice) per bucket.
    let mut per_bucket: BTreeMap<usize, [u64; 4]> = BTreeMap::new();
    let (mut i, mut j) = (0, 0);
    while i < stored.len() || j < indexed.len() {
        let s = stored.get(i);
        let x = indexed.get(j);
        if j > 0 && x.is_some_and(|x| x.0 == indexed[j - 1].0) {
            per_bucket.entry(indexed[j].2).or_default()[3] += 1;
            j += 1;
            continue;
        }
        match (s, x) {
            (Some(s), Some(x)) if s.0 == x.0 => {
                if s.1 != x.1 {
                    per_bucket.entry(x.2).or_default()[2] += 1;
                }
                i += 1;
                j += 1;
            }
            (Some(s), x) if x.is_none_or(|x| s.0 < x.0) => {
                per_bucket.entry(bucket_of(u128::from(s.0) << 64)).or_default()[0] += 1;
                i += 1;
            }
            (_, Some(x)) => {
                per_bucket.entry(x.2).or_default()[1] += 1;
                j += 1;
            }
            _ => break,
        }
    }
    for (b, [missing, extra, other, twice]) in per_bucket {
        let path = IdIndex::bucket_path(dir, b);
        let mut problems = Vec::new();
        if missing > 0 {
            problems.push(format!("{missing} stored event(s) not indexed (a redelivery would be stored twice)"));
        }
        if extra > 0 {
            problems.push(format!("{extra} id(s) the log does not hold (their first delivery would be dropped)"));
        }
        if other > 0 {
            problems.push(format!("{other} id(s) with other content than stored (a redelivery would be a conflict)"));
        }
        if twice > 0 {
            problems.push(format!("{twice} id(s) indexed twice"));
        }
        found.add(DamageArea::Index, &path, problems.join("; "), INDEX_AFFECTS);
    }
    Ok(())
}

/// The read model's files, and its answers against a fold of `events`.
fn check_model(
    root: &Path,
    snap: &Snapshot,
    events: &[Event],
    log_damaged: bool,
    report: &mut CheckReport,
    found: &mut Found,
    progress: &mut dyn FnMut(CheckProgress),
) {
    let model = match ReadModel::open(root) {
        Ok(Some(m)) => m,
        Ok(None) => {
            if snap.version.is_some() {
                report.notes.push(
                    "no read model (of this format): queries fold the log in memory until the next append or \
                     `leadline rebuild` builds it"
                        .into(),
                );
            }
            return;
        }
        Err(e) => return found.error(DamageArea::ReadModel, e),
    };
    report.model_version = model.version();
    // The published tables' commits (their files are checked below).
    for table in published_tables(root) {
        if let Err(e) = table.replayed_state().and_then(|_| table.verify_checkpoint()) {
            found.error(DamageArea::ReadModel, e);
        }
    }
    let (live, unnamed) = model.files();
    progress(CheckProgress::Step { name: "checking the read model's files", total: live.len() as u64 });
    for (path, name) in &live {
        check_model_file(&model, path, name, found);
        progress(CheckProgress::Advance(1));
    }
    let temp = std::fs::read_dir(root.join("model"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| is_temp_file(&e.file_name().to_string_lossy()))
        .count();
    if !unnamed.is_empty() || temp > 0 {
        report.notes.push(format!(
            "{} file(s) under {} that its manifest does not name: an update died before finishing \
             (removed by the next one)",
            unnamed.len() + temp,
            root.join("model").display()
        ));
    }
    if model.version() != snap.version {
        let (model_at, log_at) = (shown(model.version()), shown(snap.version));
        if model.version() > snap.version {
            let problem = format!("folded through log version {model_at}, past the log's {log_at}");
            found.add(DamageArea::ReadModel, &ReadModel::manifest_path(root), problem, MODEL_AFFECTS);
        } else {
            report.notes.push(format!(
                "the read model is behind the log (version {model_at} of {log_at}): queries fold the log in memory \
                 until the next append or `leadline rebuild` catches it up"
            ));
        }
        return;
    }
    if log_damaged || found.any(DamageArea::ReadModel) {
        report.notes.push("the read model was not compared with a fold of the log: files are damaged".into());
        return;
    }
    progress(CheckProgress::Step { name: "folding the log to compare with the read model", total: 0 });
    let folded = project(events, model.window());
    if let Err(e) = compare_model(root, &model, &folded) {
        found.error(DamageArea::ReadModel, e);
    }
}

/// Damage of one file the manifest names: against its checksum, then its
/// structure (sorted 8-byte keys, or Parquet that decodes).
fn check_model_file(model: &ReadModel, path: &Path, name: &str, found: &mut Found) {
    let mut damaged = |problem: String| found.add(DamageArea::ReadModel, path, problem, MODEL_AFFECTS);
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return damaged(format!("cannot be read: {e}")),
    };
    if let Some(expected) = model.checksum(name) {
        let sum = xxhash_rust::xxh3::xxh3_64(&bytes);
        if sum != expected {
            return damaged(format!("checksum mismatch (manifest {expected:016x}, content {sum:016x})"));
        }
    }
    if path.extension().is_some_and(|e| e == "keys") {
        if bytes.len() % 8 != 0 {
            return damaged("not a whole number of 8-byte keys".into());
        }
        let keys: Vec<u64> =
            bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())).collect();
        if keys.windows(2).any(|w| w[0] > w[1]) {
            damaged("its keys are out of order".into());
        }
    } else if path.extension().is_some_and(|e| e == "json") {
        // An epoch's tails (`model/tails/`).
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            damaged(format!("not JSON: {e}"));
        }
    } else if let Some(problem) = undecodable(bytes) {
        damaged(problem);
    }
}

/// The model's tables, metric rows of every grain and counts against `folded`.
fn compare_model(root: &Path, model: &ReadModel, folded: &Projected) -> Result<()> {
    let manifest = ReadModel::manifest_path(root);
    let differ = |what: &str, stored: Vec<String>, fresh: Vec<String>| -> Result<()> {
        let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (stored.iter().collect(), fresh.iter().collect());
        if stored.len() == fresh.len() && a == b {
            return Ok(());
        }
        let only_stored = a.difference(&b).count();
        let only_fresh = b.difference(&a).count();
        let problem = format!(
            "{what}: {} rows stored, {} folded from the log; {only_stored} only in the model, {only_fresh} only in \
             the fold",
            stored.len(),
            fresh.len()
        );
        Err(Error::damaged(&manifest, problem, MODEL_AFFECTS))
    };
    for table in [Table::Deployments, Table::Changes, Table::Incidents] {
        differ(table.name(), rows(&model.table_batches(table)?)?, rows(&[table_batch(table, folded)?])?)?;
    }
    for grain in [Grain::Day, Grain::Week, Grain::Month] {
        let fresh = dora_metrics(&[metric_rows(folded, grain)?], &folded.pairs, folded.span, grain, None, None)?;
        differ(&format!("dora_metrics('{grain}')"), rows(&[model.dora_metrics(grain, None, None)?])?, rows(&[fresh])?)?;
    }
    let (stored, fresh) = (model.counts(), ProjectedCounts::of(folded));
    if stored != fresh {
        let problem = format!("its counts {stored:?} differ from a fold of the log: {fresh:?}");
        return Err(Error::damaged(&manifest, problem, MODEL_AFFECTS));
    }
    Ok(())
}

/// A version for a message.
fn shown(version: Option<u64>) -> String {
    version.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// Every row of `batches` as text, sorted.
fn rows(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let options = FormatOptions::default().with_null("∅");
    let mut out = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            out.push(formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join("\u{1f}"));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Damage of saved views; returns how many there are.
fn check_views(root: &Path, found: &mut Found) -> Result<u64> {
    for (path, problem) in damaged_view_files(root)? {
        found.add(
            DamageArea::Views,
            &path,
            problem,
            "this view: statements naming it fail until it is dropped or replaced",
        );
    }
    Ok(std::fs::read_dir(root.join("views"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appender::Appender;
    use crate::input;

    fn append(appender: &mut Appender, lines: &[String]) {
        let rows = input::ndjson_rows(std::io::Cursor::new(lines.join("\n").into_bytes()));
        appender.append("test", rows, &mut |_| {}).unwrap();
    }

    fn commits(prefix: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"event_id\":\"{prefix}{i}\",\"event_type\":\"commit\",\"occurred_at\":\"2026-03-0{}T09:00:00Z\",\
                     \"service\":\"s{}\",\"commit_sha\":\"{prefix}{i}\"}}",
                    1 + i % 3,
                    i % 4
                )
            })
            .collect()
    }

    fn areas(report: &CheckReport) -> Vec<DamageArea> {
        report.damage.iter().map(|d| d.area).collect()
    }

    #[test]
    fn a_clean_directory_checks_clean_and_a_lost_index_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::open(dir.path(), "test").unwrap();
        append(&mut appender, &commits("a", 40));
        append(&mut appender, &commits("b", 40));
        drop(appender);
        let mut steps = Vec::new();
        let report = check(dir.path(), &mut |p| {
            if let CheckProgress::Step { name, .. } = p {
                steps.push(name)
            }
        })
        .unwrap();
        assert!(report.damage.is_empty(), "{:?}", report.damage);
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        assert_eq!((report.events, report.index_records, report.log_version), (80, 80, Some(2)));
        assert_eq!(report.model_version, Some(2));
        assert!(steps.contains(&"checking the index"), "{steps:?}");

        // One record cut from a bucket at a record's end: the event is stored
        // but a redelivery would not be recognised.
        let (_, bucket) = bucket_files(&dir.path().join(INDEX_DIR)).into_iter().next().unwrap();
        let bytes = std::fs::read(&bucket).unwrap();
        std::fs::write(&bucket, &bytes[..bytes.len() - RECORD]).unwrap();
        let report = check(dir.path(), &mut |_| {}).unwrap();
        assert_eq!(areas(&report), vec![DamageArea::Index]);
        assert_eq!(report.damage[0].path, bucket);
        assert!(report.damage[0].problem.contains("1 stored event(s) not indexed"), "{:?}", report.damage);

        // Rebuilt from the log, it checks clean again.
        Appender::open(dir.path(), "test").unwrap().rebuild_index().unwrap();
        assert!(check(dir.path(), &mut |_| {}).unwrap().damage.is_empty());

        // The rebuilt buckets are sorted: two records swapped are named.
        let index = dir.path().join(INDEX_DIR);
        assert_eq!(sorted_heads(&index).unwrap().iter().sum::<u64>(), 80);
        let (_, bucket) =
            bucket_files(&index).into_iter().find(|(b, _)| sorted_heads(&index).unwrap()[*b] >= 2).unwrap();
        let mut bytes = std::fs::read(&bucket).unwrap();
        let (first, second) = bytes.split_at_mut(RECORD);
        first.swap_with_slice(&mut second[..RECORD]);
        std::fs::write(&bucket, &bytes).unwrap();
        let report = check(dir.path(), &mut |_| {}).unwrap();
        assert_eq!(areas(&report), vec![DamageArea::Index]);
        assert!(report.damage[0].problem.contains("record 1 is out of key order"), "{:?}", report.damage);
        std::fs::write(index.join("SORTED"), "1 2 3").unwrap();
        let report = check(dir.path(), &mut |_| {}).unwrap();
        assert!(report.damage.iter().any(|d| d.path.ends_with("SORTED")), "{:?}", report.damage);
    }

    #[test]
    fn a_model_in_epochs_checks_clean_and_a_damaged_tails_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::open(dir.path(), "test").unwrap();
        append(&mut appender, &crate::readmodel::test_days(&["a", "b"], 0..56));
        drop(appender);
        let report = check(dir.path(), &mut |_| {}).unwrap();
        assert!(report.damage.is_empty() && report.notes.is_empty(), "{:?} {:?}", report.damage, report.notes);
        let tails = std::fs::read_dir(dir.path().join("model/tails")).unwrap().next().unwrap().unwrap().path();
        std::fs::write(&tails, b"[[").unwrap();
        let report = check(dir.path(), &mut |_| {}).unwrap();
        assert_eq!(areas(&report), vec![DamageArea::ReadModel]);
        assert_eq!(report.damage[0].path, tails);
    }

    #[test]
    fn an_event_stored_twice_is_damage_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::open(dir.path(), "test").unwrap();
        append(&mut appender, &commits("a", 10));
        drop(appender);
        // A second copy of a data file, committed by hand.
        let snap = EventLog::open(dir.path()).unwrap().snapshot().unwrap();
        let f = snap.event_files[0].clone();
        let copy = crate::log::delta::AddFile { path: f.path.replace("part-", "part-copy-"), ..f.clone() };
        std::fs::copy(snap.events_root().join(&f.path), snap.events_root().join(&copy.path)).unwrap();
        let table = DeltaTable::new(snap.events_root());
        let info = crate::log::delta::commit_info("WRITE", serde_json::json!({"ingested_at": 1}));
        table.commit(2, &[crate::log::delta::add_action(&copy), info]).unwrap();
        let report = check(dir.path(), &mut |_| {}).unwrap();
        assert!(areas(&report).contains(&DamageArea::Log), "{:?}", report.damage);
        assert!(report.damage.iter().any(|d| d.problem.contains("stored more than once")), "{:?}", report.damage);
    }
}
