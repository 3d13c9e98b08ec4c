//! A Delta Lake table (protocol reader 1 / writer 2) over a local directory.
//!
//! We write the transaction log ourselves rather than through the `deltalake`
//! crate: the log is a handful of JSON actions, and owning it lets every data
//! file, commit file and directory entry be fsynced before an append is
//! acknowledged (object_store's local backend never fsyncs), while keeping
//! delta-kernel and its HTTP stack out of a build that is already at the CI
//! budget. Readers that speak Delta (Polars `read_delta`, the `deltalake`
//! Python package, DuckDB's delta extension, Spark) see only committed
//! versions: a data file exists for them once a commit names it, and a commit
//! appears atomically (hard-linked into place, never overwritten).
//!
//! Damage is found, never skipped: each commit leadline writes ends with its
//! `commitInfo`, which carries an xxh3 checksum of the whole commit
//! ([`seal`]), and each `add` names its file's size and xxh3 checksum (a
//! `tags` entry; Delta readers ignore tags they do not know). A commit that
//! does not parse, is cut short or does not match its checksum is reported
//! as [`Error::Damaged`] by whoever reads it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, Schema};
use serde_json::{Value, json};

use crate::error::{Error, Result};

pub const LOG_DIR: &str = "_delta_log";
/// The `add` tag holding a data file's xxh3-64 checksum (16 hex digits).
const CHECKSUM_TAG: &str = "leadline.xxh3";
/// The key holding a sealed JSON text's own checksum (see [`seal`]), and
/// the value it has while the checksum is computed.
pub const SEAL_KEY: &str = "leadlineChecksum";
pub const SEAL_PLACEHOLDER: &str = "0000000000000000";

/// A data file that a commit added.
#[derive(Debug, Clone, PartialEq)]
pub struct AddFile {
    /// Relative to the table root, `/`-separated.
    pub path: String,
    pub partition_values: BTreeMap<String, String>,
    pub size: u64,
    pub num_records: u64,
    /// xxh3-64 of the file's bytes; `None` for files written before
    /// leadline recorded checksums.
    pub checksum: Option<u64>,
}

/// What one commit says about itself (our `commitInfo`).
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub version: u64,
    /// leadline's own facts about the commit (ingested_at, counts).
    pub leadline: Value,
}

/// The table as of one version.
#[derive(Debug, Clone, Default)]
pub struct TableState {
    /// `None` before the first commit.
    pub version: Option<u64>,
    /// Live files by path.
    pub files: BTreeMap<String, AddFile>,
    pub commits: Vec<CommitInfo>,
    /// Every path any commit ever added (live or removed): what is not here is
    /// an orphan of a crashed write.
    pub known_paths: std::collections::HashSet<String>,
    /// Whether a commit read so far carried a checksum: every later one must.
    pub sealed: bool,
    /// Commits read that carry no checksum (written before leadline sealed them).
    pub unsealed_commits: u64,
}

#[derive(Debug, Clone)]
pub struct DeltaTable {
    root: PathBuf,
}

fn commit_path(log: &Path, version: u64) -> PathBuf {
    log.join(format!("{version:020}.json"))
}

impl DeltaTable {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join(LOG_DIR)
    }

    /// Reads commits after `state.version` into `state` (incremental: a reader
    /// keeps its state and only reads what is new).
    pub fn refresh(&self, state: &mut TableState) -> Result<()> {
        let log = self.log_dir();
        let mut next = state.version.map_or(0, |v| v + 1);
        loop {
            let path = commit_path(&log, next);
            let text = match fs::read(&path) {
                Ok(bytes) => bytes,
                // Commits appear in order: a later one means this one was lost.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match commit_path(&log, next + 1).exists() {
                    false => return Ok(()),
                    true => {
                        let affects = format!(
                            "the {} table from version {next} on: later commits cannot be read until it is \
                             restored from a backup",
                            table_name(&path)
                        );
                        return Err(Error::damaged(&path, format!("missing, yet commit {} exists", next + 1), affects));
                    }
                },
                Err(e) => return Err(Error::io(&path, e)),
            };
            apply_commit(state, next, &text, &path)?;
            state.version = Some(next);
            next += 1;
        }
    }

    /// Whether commit `version` exists.
    pub fn has_version(&self, version: u64) -> bool {
        commit_path(&self.log_dir(), version).is_file()
    }

    pub fn state(&self) -> Result<TableState> {
        let mut s = TableState::default();
        self.refresh(&mut s)?;
        Ok(s)
    }

    /// Creates version 0 (protocol + metadata) if the table has no log yet.
    pub fn create_if_missing(&self, schema: &Schema, partition_columns: &[&str]) -> Result<()> {
        if commit_path(&self.log_dir(), 0).exists() {
            return Ok(());
        }
        let schema_string = schema_string(schema, partition_columns);
        let now = chrono::Utc::now().timestamp_millis();
        let actions = vec![
            json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
            json!({"metaData": {
                "id": uuid::Uuid::new_v4().to_string(),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_string,
                "partitionColumns": partition_columns,
                "configuration": {},
                "createdTime": now,
            }}),
            json!({"commitInfo": {"timestamp": now, "operation": "CREATE TABLE", "operationParameters": {}}}),
        ];
        self.commit(0, &actions)
    }

    /// Atomically writes commit `version`. Fails if that version exists (two
    /// writers raced; the lock should make that impossible).
    pub fn commit(&self, version: u64, actions: &[Value]) -> Result<()> {
        let log = self.log_dir();
        create_dir_durable(&log)?;
        let tmp = log.join(format!(".{version:020}.json.{}.tmp", uuid::Uuid::new_v4()));
        let mut text = String::new();
        for (i, a) in actions.iter().enumerate() {
            match a.get("commitInfo") {
                // The last action: it carries the checksum of the whole commit.
                Some(info) if i + 1 == actions.len() => {
                    let mut info = info.clone();
                    info[SEAL_KEY] = json!(SEAL_PLACEHOLDER);
                    text.push_str(&json!({ "commitInfo": info }).to_string());
                }
                _ => text.push_str(&a.to_string()),
            }
            text.push('\n');
        }
        let text = seal(text);
        write_new_durably(&tmp, text.as_bytes())?;
        let dest = commit_path(&log, version);
        // link(2) never replaces an existing file: the commit appears whole or not at all.
        let linked = fs::hard_link(&tmp, &dest);
        let _ = fs::remove_file(&tmp);
        linked.map_err(|e| Error::io(&dest, e))?;
        sync_dir(&log)
    }

    /// Removes files in the table directory that no commit ever added
    /// (left by a writer that crashed before committing), and files removed by
    /// a commit more than `retention_ms` ago. Call only while holding the lock.
    pub fn clean(&self, state: &TableState, removed_before_ms: Option<i64>) -> Result<usize> {
        let mut removed = 0;
        let expired = match removed_before_ms {
            Some(cutoff) => self.expired_removes(state, cutoff)?,
            None => Default::default(),
        };
        remove_temp_files(&self.log_dir());
        for path in walk_parquet(&self.root)? {
            let rel = path
                .strip_prefix(&self.root)
                .map_err(|_| Error::Corrupt(format!("{} is outside the table", path.display())))?
                .to_string_lossy()
                .replace('\\', "/");
            if !state.known_paths.contains(&rel) || expired.contains(&rel) {
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn expired_removes(&self, state: &TableState, cutoff_ms: i64) -> Result<std::collections::HashSet<String>> {
        let live = &state.files;
        let mut out = std::collections::HashSet::new();
        let Some(last) = state.version else { return Ok(out) };
        for v in 0..=last {
            let path = commit_path(&self.log_dir(), v);
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(|e| Error::io(&path, e))?;
                let Ok(action) = serde_json::from_str::<Value>(&line) else { continue };
                if let Some(r) = action.get("remove") {
                    let ts = r.get("deletionTimestamp").and_then(Value::as_i64).unwrap_or(i64::MAX);
                    if let Some(p) = r.get("path").and_then(Value::as_str)
                        && ts < cutoff_ms
                        && !live.contains_key(p)
                    {
                        out.insert(p.to_string());
                    }
                }
            }
        }
        Ok(out)
    }
}

fn apply_commit(state: &mut TableState, version: u64, text: &[u8], path: &Path) -> Result<()> {
    let damaged = |problem: String| {
        Error::damaged(
            path,
            problem,
            format!(
                "commit {version} of the {} table: it and every later version cannot be read until the file is \
                 restored from a backup",
                table_name(path)
            ),
        )
    };
    let text = std::str::from_utf8(text).map_err(|e| damaged(format!("not UTF-8 text ({e})")))?;
    let sealed = match unseal(text) {
        Ok(sealed) => sealed,
        Err(problem) => return Err(damaged(problem)),
    };
    if !sealed && state.sealed {
        return Err(damaged("carries no checksum, unlike the commits before it".into()));
    }
    let mut last_is_info = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let action: Value =
            serde_json::from_str(line).map_err(|e| damaged(format!("line {}: not a JSON action ({e})", n + 1)))?;
        last_is_info = false;
        if let Some(add) = action.get("add") {
            let file = parse_add(add).ok_or_else(|| damaged(format!("line {}: malformed add action", n + 1)))?;
            state.known_paths.insert(file.path.clone());
            state.files.insert(file.path.clone(), file);
        } else if let Some(remove) = action.get("remove") {
            let p = remove
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| damaged(format!("line {}: malformed remove action", n + 1)))?;
            state.files.remove(p);
        } else if let Some(info) = action.get("commitInfo") {
            state.commits.push(CommitInfo { version, leadline: info.get("leadline").cloned().unwrap_or(Value::Null) });
            last_is_info = true;
        }
    }
    // Every commit leadline writes ends with its commitInfo.
    if !last_is_info {
        return Err(damaged("cut short: it does not end with its commitInfo".into()));
    }
    state.sealed |= sealed;
    state.unsealed_commits += u64::from(!sealed);
    Ok(())
}

/// `events` or `rejected`, from a commit's path.
fn table_name(commit: &Path) -> String {
    commit
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned())
}

/// `text` (JSON with exactly one `"leadlineChecksum":"0000000000000000"`)
/// with the placeholder replaced by the xxh3-64 of the text as it was: a
/// checksum of every byte, itself included (as zeros).
pub fn seal(text: String) -> String {
    let placeholder = format!("\"{SEAL_KEY}\":\"{SEAL_PLACEHOLDER}\"");
    let sum = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    text.replacen(&placeholder, &format!("\"{SEAL_KEY}\":\"{sum:016x}\""), 1)
}

/// Checks text made by [`seal`]: `Ok(true)` when its checksum matches,
/// `Ok(false)` when it carries none, `Err` (what is wrong) otherwise.
pub fn unseal(text: &str) -> std::result::Result<bool, String> {
    let key = format!("\"{SEAL_KEY}\":\"");
    let Some(start) = text.find(&key).map(|i| i + key.len()) else { return Ok(false) };
    if text[start..].find(&key).is_some() {
        return Err("carries two checksums".into());
    }
    let stored = text
        .get(start..start + SEAL_PLACEHOLDER.len())
        .filter(|_| text[start + SEAL_PLACEHOLDER.len()..].starts_with('"'))
        .and_then(|h| u64::from_str_radix(h, 16).ok().filter(|v| format!("{v:016x}") == h))
        .ok_or("its checksum is not 16 lower-case hex digits")?;
    let mut zeroed = String::with_capacity(text.len());
    zeroed.push_str(&text[..start]);
    zeroed.push_str(SEAL_PLACEHOLDER);
    zeroed.push_str(&text[start + SEAL_PLACEHOLDER.len()..]);
    let sum = xxhash_rust::xxh3::xxh3_64(zeroed.as_bytes());
    if sum != stored {
        return Err(format!(
            "checksum mismatch (stored {stored:016x}, content {sum:016x}): it is not what was written"
        ));
    }
    Ok(true)
}

fn parse_add(add: &Value) -> Option<AddFile> {
    let path = add.get("path")?.as_str()?.to_string();
    let size = add.get("size")?.as_u64()?;
    let partition_values = add
        .get("partitionValues")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    let num_records = add
        .get("stats")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|s| s.get("numRecords").and_then(Value::as_u64))
        .unwrap_or(0);
    let checksum = match add.get("tags").and_then(|t| t.get(CHECKSUM_TAG)) {
        None => None,
        Some(v) => Some(u64::from_str_radix(v.as_str()?, 16).ok()?),
    };
    Some(AddFile { path, partition_values, size, num_records, checksum })
}

/// The `add` action for a file just written.
pub fn add_action(file: &AddFile) -> Value {
    let mut add = json!({
        "path": file.path,
        "partitionValues": file.partition_values,
        "size": file.size,
        "modificationTime": chrono::Utc::now().timestamp_millis(),
        "dataChange": true,
        "stats": json!({"numRecords": file.num_records}).to_string(),
    });
    if let Some(sum) = file.checksum {
        add["tags"] = json!({ CHECKSUM_TAG: format!("{sum:016x}") });
    }
    json!({ "add": add })
}

pub fn remove_action(file: &AddFile, data_change: bool) -> Value {
    json!({"remove": {
        "path": file.path,
        "partitionValues": file.partition_values,
        "size": file.size,
        "deletionTimestamp": chrono::Utc::now().timestamp_millis(),
        "dataChange": data_change,
        "extendedFileMetadata": true,
    }})
}

pub fn commit_info(operation: &str, leadline: Value) -> Value {
    json!({"commitInfo": {
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "operation": operation,
        "operationParameters": {},
        "engineInfo": concat!("leadline/", env!("CARGO_PKG_VERSION")),
        "leadline": leadline,
    }})
}

/// The Delta `schemaString` of a table: the data files' columns, then each
/// partition column that is not one of them, as a non-null `date` (the
/// protocol requires every partition column to be in the schema; its values
/// live in the `add` actions' `partitionValues`, not in the files).
pub fn schema_string(schema: &Schema, partition_columns: &[&str]) -> String {
    let mut fields: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": delta_type(f.data_type()), "nullable": f.is_nullable(), "metadata": {}}))
        .collect();
    for col in partition_columns {
        if schema.field_with_name(col).is_err() {
            fields.push(json!({"name": col, "type": "date", "nullable": false, "metadata": {}}));
        }
    }
    json!({"type": "struct", "fields": fields}).to_string()
}

fn delta_type(t: &DataType) -> Value {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
        DataType::Int64 => json!("long"),
        DataType::Int32 => json!("integer"),
        DataType::Int16 => json!("short"),
        DataType::Boolean => json!("boolean"),
        DataType::Float64 => json!("double"),
        DataType::Date32 => json!("date"),
        DataType::Timestamp(_, _) => json!("timestamp"),
        DataType::List(item) => {
            json!({"type": "array", "elementType": delta_type(item.data_type()), "containsNull": item.is_nullable()})
        }
        other => json!(other.to_string()),
    }
}

/// fsync a directory so that entries created in it survive power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// The directory holding `path`: `.` for a bare relative name such as
/// `mydata` (whose `Path::parent` is the empty path, which cannot be opened).
fn parent_dir(path: &Path) -> Option<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        other => other,
    }
}

/// Creates `dir` (and parents) and makes each new entry durable.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = parent_dir(dir) {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    }
    if let Some(parent) = parent_dir(dir) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    write_new_durably(&tmp, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    sync_dir(dir)
}

/// Whether `name` is a temp file of [`write_atomic`] or [`DeltaTable::commit`]
/// (left behind only by a writer that died before renaming it into place).
pub fn is_temp_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes the temp files a writer that died left in `dir`. Call only
/// while holding the lock that guards the directory's writers.
pub fn remove_temp_files(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if is_temp_file(&entry.file_name().to_string_lossy()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Creates `path` with `bytes`, fsynced; removes it again if that fails (a
/// full disk must not keep a partial temp file that takes the space freed).
fn write_new_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    written.map_err(|e| {
        let _ = fs::remove_file(path);
        Error::io(path, e)
    })
}

fn walk_parquet(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if name == LOG_DIR {
            continue;
        }
        if path.is_dir() {
            out.extend(walk_parquet(&path)?);
        } else if name.to_string_lossy().ends_with(".parquet") {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn commits_replay_adds_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let t = DeltaTable::new(dir.path());
        let schema = Schema::new(vec![Field::new("a", DataType::Utf8, false)]);
        t.create_if_missing(&schema, &[]).unwrap();
        t.create_if_missing(&schema, &[]).unwrap();
        let f1 = AddFile {
            path: "p1.parquet".into(),
            partition_values: Default::default(),
            size: 10,
            num_records: 3,
            checksum: Some(0xfeed),
        };
        let f2 = AddFile { path: "p2.parquet".into(), ..f1.clone() };
        t.commit(1, &[add_action(&f1), commit_info("WRITE", json!({"appended": 3}))]).unwrap();
        let mut state = t.state().unwrap();
        assert_eq!(state.version, Some(1));
        assert_eq!(state.files.values().collect::<Vec<_>>(), vec![&f1]);
        t.commit(2, &[remove_action(&f1, false), add_action(&f2), commit_info("OPTIMIZE", json!({}))]).unwrap();
        t.refresh(&mut state).unwrap();
        assert_eq!(state.version, Some(2));
        assert_eq!(state.files.values().collect::<Vec<_>>(), vec![&f2]);
        assert!(state.known_paths.contains("p1.parquet"));
        assert_eq!(state.commits[1].leadline["appended"], 3);
        assert_eq!(state.files["p2.parquet"].checksum, Some(0xfeed), "the file's checksum is kept");
        assert!(state.sealed);
        assert_eq!(state.unsealed_commits, 0);
        // A version can be committed once only.
        assert!(t.commit(2, &[]).is_err());
    }

    /// A table of three sealed commits, and the text of commit 1.
    fn three_commits() -> (tempfile::TempDir, DeltaTable, String) {
        let dir = tempfile::tempdir().unwrap();
        let t = DeltaTable::new(dir.path().join("events"));
        t.create_if_missing(&Schema::new(vec![Field::new("a", DataType::Utf8, false)]), &[]).unwrap();
        let f = |p: &str| AddFile {
            path: p.into(),
            partition_values: Default::default(),
            size: 10,
            num_records: 3,
            checksum: Some(7),
        };
        t.commit(1, &[add_action(&f("a.parquet")), add_action(&f("b.parquet")), commit_info("WRITE", json!({}))])
            .unwrap();
        t.commit(2, &[add_action(&f("c.parquet")), commit_info("WRITE", json!({}))]).unwrap();
        let text = fs::read_to_string(commit_path(&t.log_dir(), 1)).unwrap();
        (dir, t, text)
    }

    fn damage_of(t: &DeltaTable) -> String {
        match t.state() {
            Err(Error::Damaged { path, problem, affects }) => {
                assert_eq!(path, commit_path(&t.log_dir(), 1));
                assert!(affects.contains("commit 1 of the events table"), "{affects}");
                problem
            }
            other => panic!("damage not found: {other:?}"),
        }
    }

    #[test]
    fn a_damaged_commit_is_named_never_skipped() {
        let (_dir, t, text) = three_commits();
        assert_eq!(t.state().unwrap().files.len(), 3);
        // Every single bit flipped in the commit is found.
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut bytes = text.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                fs::write(commit_path(&t.log_dir(), 1), &bytes).unwrap();
                assert!(t.state().is_err(), "flip of bit {bit} of byte {i} went unnoticed");
            }
        }
        // Cut short, at a line's end or within a line, or emptied.
        let lines: Vec<&str> = text.lines().collect();
        fs::write(commit_path(&t.log_dir(), 1), lines[..1].join("\n") + "\n").unwrap();
        // (Its checksum went with the commitInfo line.)
        assert!(damage_of(&t).contains("no checksum"));
        fs::write(commit_path(&t.log_dir(), 1), &text[..text.len() / 2]).unwrap();
        let problem = damage_of(&t);
        assert!(problem.contains("not a JSON action") || problem.contains("checksum"), "{problem}");
        fs::write(commit_path(&t.log_dir(), 1), "").unwrap();
        damage_of(&t);
        // A commit without a checksum after sealed ones was tampered with.
        let unsealed: String = text.replace(&format!(",\"{SEAL_KEY}\""), ",\"other\"");
        fs::write(commit_path(&t.log_dir(), 1), unsealed).unwrap();
        assert!(damage_of(&t).contains("no checksum"));
        fs::write(commit_path(&t.log_dir(), 1), &text).unwrap();
        assert_eq!(t.state().unwrap().files.len(), 3, "restored, it reads again");
    }

    #[test]
    fn seal_covers_every_byte() {
        let text = format!("{{\"a\":1,\"{SEAL_KEY}\":\"{SEAL_PLACEHOLDER}\"}}");
        let sealed = seal(text.clone());
        assert_ne!(sealed, text);
        assert_eq!(unseal(&sealed), Ok(true));
        assert_eq!(unseal("{\"a\":1}"), Ok(false));
        assert!(unseal(&sealed.replace("\"a\":1", "\"a\":2")).unwrap_err().contains("checksum mismatch"));
    }

    #[test]
    fn a_bare_relative_name_lives_in_the_current_directory() {
        // `leadline ingest --data mydata` must not try to fsync the empty path.
        assert_eq!(parent_dir(Path::new("mydata")), Some(Path::new(".")));
        assert_eq!(parent_dir(Path::new("./mydata")), Some(Path::new(".")));
        assert_eq!(parent_dir(Path::new("a/b")), Some(Path::new("a")));
        assert_eq!(parent_dir(Path::new("/")), None);
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("x/y");
        create_dir_durable(&nested).unwrap();
        assert!(nested.is_dir());
        write_atomic(&nested.join("f"), b"1").unwrap();
    }

    #[test]
    fn schema_names_every_partition_column() {
        // Delta readers (delta-kernel, Spark) refuse a table whose partition
        // column is missing from the schema.
        let dir = tempfile::tempdir().unwrap();
        let t = DeltaTable::new(dir.path());
        let item = Arc::new(Field::new("element", DataType::Utf8, true));
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8, false),
            Field::new("ids", DataType::List(item), true),
            Field::new("n", DataType::Int16, false),
        ]);
        t.create_if_missing(&schema, &["event_date"]).unwrap();
        let text = fs::read_to_string(commit_path(&t.log_dir(), 0)).unwrap();
        let meta: Value = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|a| a.get("metaData").cloned())
            .unwrap();
        assert_eq!(meta["partitionColumns"], json!(["event_date"]));
        let parsed: Value = serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
        let fields = parsed["fields"].as_array().unwrap();
        let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "ids", "n", "event_date"]);
        assert_eq!(fields[3]["type"], "date");
        assert_eq!(fields[1]["type"], json!({"type": "array", "elementType": "string", "containsNull": true}));
        assert_eq!(fields[2]["type"], "short");
        // A partition column that is already a data column is not repeated.
        assert_eq!(schema_string(&schema, &["a"]).matches("\"name\":\"a\"").count(), 1);
    }
}
