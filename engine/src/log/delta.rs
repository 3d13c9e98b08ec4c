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
//!
//! Every [`CHECKPOINT_INTERVAL`] versions a writer also leaves a Delta
//! checkpoint (`<v>.checkpoint.parquet` and `_last_checkpoint`, as the
//! protocol has them), so that a new reader, ours or any Delta reader, reads
//! one file and the commits after it instead of every commit since the
//! table began. What leadline keeps beyond Delta's actions (each commit's
//! `commitInfo.leadline` facts, every path ever added) goes beside it in
//! `<v>.leadline.json`, sealed like a commit, naming the checkpoint's size
//! and checksum. A checkpoint is a shortcut, never the truth: one that
//! cannot be read or does not match is said in the log and every commit is
//! read instead; the commits are never deleted.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use serde_json::{Value, json};

use crate::error::{Error, Result};

pub const LOG_DIR: &str = "_delta_log";
/// The `add` tag holding a data file's xxh3-64 checksum (16 hex digits).
const CHECKSUM_TAG: &str = "leadline.xxh3";
const INGESTED_TAG: &str = "leadline.ingested";
/// The key holding a sealed JSON text's own checksum (see [`seal`]), and
/// the value it has while the checksum is computed.
pub const SEAL_KEY: &str = "leadlineChecksum";
pub const SEAL_PLACEHOLDER: &str = "0000000000000000";
/// Versions between checkpoints (Delta's own default).
pub const CHECKPOINT_INTERVAL: u64 = 100;
const LAST_CHECKPOINT: &str = "_last_checkpoint";

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
    /// The least and greatest `ingested_at` of its rows (a tag): what an
    /// update of the read model reads of the log without opening files
    /// older than its last. `None` when not known (another table, or a file
    /// written before leadline kept it).
    pub ingested: Option<(i64, i64)>,
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

fn checkpoint_path(log: &Path, version: u64) -> PathBuf {
    log.join(format!("{version:020}.checkpoint.parquet"))
}

/// leadline's facts beside checkpoint `version` (a name no Delta reader
/// takes for a commit or a checkpoint).
fn facts_path(log: &Path, version: u64) -> PathBuf {
    log.join(format!("{version:020}.leadline.json"))
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
    /// keeps its state and only reads what is new). A new state starts from
    /// the latest checkpoint when there is a sound one.
    pub fn refresh(&self, state: &mut TableState) -> Result<()> {
        if state.version.is_none() {
            match self.read_checkpoint() {
                Ok(Some(from_checkpoint)) => *state = from_checkpoint,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the checkpoint is not used: reading every commit instead"),
            }
        }
        self.read_commits(state, u64::MAX)
    }

    /// The table's state read from every commit, never from a checkpoint
    /// (`leadline check` verifies each one).
    pub fn replayed_state(&self) -> Result<TableState> {
        let mut s = TableState::default();
        self.read_commits(&mut s, u64::MAX)?;
        Ok(s)
    }

    /// Whether the latest checkpoint, if any, can be read and says what the
    /// commits up to its version say (for `leadline check`).
    pub fn verify_checkpoint(&self) -> Result<()> {
        let Some(checkpoint) = self.read_checkpoint()? else { return Ok(()) };
        let version = checkpoint.version.unwrap_or_default();
        let mut replayed = TableState::default();
        self.read_commits(&mut replayed, version)?;
        let files = |s: &TableState| s.files.values().map(|f| (f.path.clone(), f.size, f.checksum)).collect::<Vec<_>>();
        let commits = |s: &TableState| s.commits.iter().map(|c| (c.version, c.leadline.clone())).collect::<Vec<_>>();
        if replayed.version != checkpoint.version
            || files(&replayed) != files(&checkpoint)
            || commits(&replayed) != commits(&checkpoint)
            || replayed.known_paths != checkpoint.known_paths
        {
            let path = checkpoint_path(&self.log_dir(), version);
            return Err(Error::damaged(
                &path,
                "does not say what the commits up to its version say",
                CHECKPOINT_AFFECTS,
            ));
        }
        Ok(())
    }

    /// Reads commits after `state.version`, through version `through` at most.
    fn read_commits(&self, state: &mut TableState, through: u64) -> Result<()> {
        let log = self.log_dir();
        let mut next = state.version.map_or(0, |v| v + 1);
        while next <= through {
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
        Ok(())
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

    /// Writes a checkpoint of `state` when its version is due for one (see
    /// the module's documentation). Call after committing, under the lock
    /// that guards the table's writers. A failure is logged, not returned:
    /// the commit before it is durable, and the next due version retries.
    pub fn checkpoint_if_due(&self, state: &TableState) {
        let Some(version) = state.version.filter(|v| *v > 0 && v % CHECKPOINT_INTERVAL == 0) else { return };
        if let Err(e) = self.checkpoint(version, state) {
            tracing::warn!(table = %self.root.display(), version, error = %e, "writing a checkpoint failed");
        }
    }

    fn checkpoint(&self, version: u64, state: &TableState) -> Result<()> {
        let log = self.log_dir();
        // Protocol and metadata as the table's first commit has them
        // (leadline never changes either).
        let first = commit_path(&log, 0);
        let text = fs::read_to_string(&first).map_err(|e| Error::io(&first, e))?;
        let mut actions: Vec<String> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|a| a.get("protocol").or(a.get("metaData")).is_some())
            })
            .map(str::to_string)
            .collect();
        actions.extend(state.files.values().map(|f| add_action(f).to_string()));
        let bytes = checkpoint_parquet(&actions.join("\n"))?;
        let path = checkpoint_path(&log, version);
        write_atomic(&path, &bytes)?;
        let mut known: Vec<&String> = state.known_paths.iter().collect();
        known.sort();
        let facts = json!({
            "version": version,
            "checkpoint": {"size": bytes.len(), "xxh3": format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))},
            "commits": state.commits.iter().map(|c| json!({"version": c.version, "leadline": c.leadline})).collect::<Vec<_>>(),
            "knownPaths": known,
            "sealed": state.sealed,
            "unsealedCommits": state.unsealed_commits,
            SEAL_KEY: SEAL_PLACEHOLDER,
        });
        write_atomic(&facts_path(&log, version), seal(facts.to_string()).as_bytes())?;
        let last = json!({"version": version, "size": actions.len()});
        write_atomic(&log.join(LAST_CHECKPOINT), last.to_string().as_bytes())
    }

    /// The state as of the latest checkpoint: `None` when there is none,
    /// `Err` when it cannot be used (said by the caller; the commits are read instead).
    fn read_checkpoint(&self) -> Result<Option<TableState>> {
        let log = self.log_dir();
        let last_path = log.join(LAST_CHECKPOINT);
        let last = match fs::read(&last_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&last_path, e)),
        };
        let unusable = |path: &Path, problem: String| Error::damaged(path, problem, CHECKPOINT_AFFECTS);
        let version = serde_json::from_slice::<Value>(&last)
            .ok()
            .and_then(|v| v.get("version")?.as_u64())
            .ok_or_else(|| unusable(&last_path, "names no version".into()))?;
        let facts_path = facts_path(&log, version);
        let text = fs::read_to_string(&facts_path).map_err(|e| unusable(&facts_path, e.to_string()))?;
        if !unseal(&text).map_err(|p| unusable(&facts_path, p))? {
            return Err(unusable(&facts_path, "carries no checksum".into()));
        }
        let facts: Value = serde_json::from_str(&text).map_err(|e| unusable(&facts_path, e.to_string()))?;
        let path = checkpoint_path(&log, version);
        let bytes = fs::read(&path).map_err(|e| unusable(&path, e.to_string()))?;
        let sum = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
        if facts["checkpoint"]["xxh3"].as_str() != Some(sum.as_str()) {
            return Err(unusable(&path, format!("checksum {sum} is not the one {} names", facts_path.display())));
        }
        let mut state = TableState { version: Some(version), ..Default::default() };
        for action in checkpoint_actions(bytes.into()).map_err(|e| unusable(&path, e.to_string()))? {
            if let Some(add) = action.get("add") {
                let file = parse_add(add).ok_or_else(|| unusable(&path, "a malformed add action".into()))?;
                state.files.insert(file.path.clone(), file);
            }
        }
        let malformed = || unusable(&facts_path, "malformed".into());
        for c in facts["commits"].as_array().ok_or_else(malformed)? {
            let version = c["version"].as_u64().ok_or_else(malformed)?;
            state.commits.push(CommitInfo { version, leadline: c["leadline"].clone() });
        }
        let known = facts["knownPaths"].as_array().ok_or_else(malformed)?;
        state.known_paths = known.iter().filter_map(Value::as_str).map(str::to_string).collect();
        state.known_paths.extend(state.files.keys().cloned());
        state.sealed = facts["sealed"].as_bool().ok_or_else(malformed)?;
        state.unsealed_commits = facts["unsealedCommits"].as_u64().ok_or_else(malformed)?;
        Ok(Some(state))
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

/// What an unusable checkpoint affects.
const CHECKPOINT_AFFECTS: &str =
    "nothing: a checkpoint only saves reading the commits before it, which are read instead";

/// A `map<string, string>` as Delta's checkpoints have it.
fn string_map() -> DataType {
    let entries =
        Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Utf8, true)]);
    DataType::Map(Arc::new(Field::new("key_value", DataType::Struct(entries), false)), false)
}

/// The columns of a Delta checkpoint (protocol, "Checkpoint Schema"): one
/// action per row, the other columns null.
fn checkpoint_schema() -> SchemaRef {
    let string = |name: &str| Field::new(name, DataType::Utf8, true);
    let long = |name: &str| Field::new(name, DataType::Int64, true);
    let boolean = |name: &str| Field::new(name, DataType::Boolean, true);
    let map = |name: &str| Field::new(name, string_map(), true);
    let strukt = |name: &str, fields: Vec<Field>| Field::new(name, DataType::Struct(Fields::from(fields)), true);
    Arc::new(Schema::new(vec![
        strukt("txn", vec![string("appId"), long("version"), long("lastUpdated")]),
        strukt(
            "add",
            vec![
                string("path"),
                map("partitionValues"),
                long("size"),
                long("modificationTime"),
                boolean("dataChange"),
                string("stats"),
                map("tags"),
            ],
        ),
        strukt(
            "remove",
            vec![
                string("path"),
                long("deletionTimestamp"),
                boolean("dataChange"),
                boolean("extendedFileMetadata"),
                map("partitionValues"),
                long("size"),
                map("tags"),
            ],
        ),
        strukt(
            "metaData",
            vec![
                string("id"),
                string("name"),
                string("description"),
                strukt("format", vec![string("provider"), map("options")]),
                string("schemaString"),
                Field::new(
                    "partitionColumns",
                    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                    true,
                ),
                map("configuration"),
                long("createdTime"),
            ],
        ),
        strukt(
            "protocol",
            vec![
                Field::new("minReaderVersion", DataType::Int32, true),
                Field::new("minWriterVersion", DataType::Int32, true),
            ],
        ),
    ]))
}

/// A checkpoint's Parquet bytes holding `actions` (JSON lines), decoded
/// into the checkpoint's columns by Arrow's JSON reader.
fn checkpoint_parquet(actions: &str) -> Result<Vec<u8>> {
    let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("writing a checkpoint: {e}"));
    let schema = checkpoint_schema();
    let reader = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(8192)
        .build(actions.as_bytes())
        .map_err(|e| internal(&e))?;
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).map_err(|e| internal(&e))?;
    for batch in reader {
        writer.write(&batch.map_err(|e| internal(&e))?).map_err(|e| internal(&e))?;
    }
    writer.close().map_err(|e| internal(&e))?;
    Ok(out)
}

/// The actions of a checkpoint, as JSON (the shape commits have them in).
fn checkpoint_actions(bytes: bytes::Bytes) -> std::result::Result<Vec<Value>, Box<dyn std::error::Error>> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut lines = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut lines);
        for batch in reader {
            writer.write(&batch?)?;
        }
        writer.finish()?;
    }
    let text = String::from_utf8(lines)?;
    Ok(text.lines().map(serde_json::from_str).collect::<std::result::Result<Vec<Value>, _>>()?)
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
    let tag = |name| add.get("tags").and_then(|t| t.get(name));
    let checksum = match tag(CHECKSUM_TAG) {
        None => None,
        Some(v) => Some(u64::from_str_radix(v.as_str()?, 16).ok()?),
    };
    let ingested = tag(INGESTED_TAG).and_then(Value::as_str).and_then(|v| {
        let (lo, hi) = v.split_once(',')?;
        Some((lo.parse().ok()?, hi.parse().ok()?))
    });
    Some(AddFile { path, partition_values, size, num_records, checksum, ingested })
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
    let mut tags = serde_json::Map::new();
    if let Some(sum) = file.checksum {
        tags.insert(CHECKSUM_TAG.into(), json!(format!("{sum:016x}")));
    }
    if let Some((lo, hi)) = file.ingested {
        tags.insert(INGESTED_TAG.into(), json!(format!("{lo},{hi}")));
    }
    if !tags.is_empty() {
        add["tags"] = Value::Object(tags);
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

/// Makes the files (and directories) at `paths` durable: what an update
/// wrote, before the commit or manifest that names it.
///
/// An fsync on a journaling filesystem is a journal commit of its own (about
/// 0.2 ms here, and issued at once they still queue on the journal), so a
/// group commit of fifty rows, which writes an index bucket and read-model
/// files for each service it touches, waited on a hundred and more of them.
/// Where `syncfs` commits everything written to a filesystem (ext4, XFS,
/// btrfs), one call per filesystem makes them all durable in about the time
/// of one fsync. It writes out other programs' pending writes to that
/// filesystem too, so a few files are fsynced one by one.
pub fn sync_files(paths: &[PathBuf]) -> Result<()> {
    let one_by_one = if paths.len() >= SYNCFS_FROM { sync_filesystems(paths)? } else { paths.to_vec() };
    // fsync syncs the file, whichever descriptor asks; the threads wait on the disk, not the CPU.
    crate::parallel::in_parallel(&one_by_one, 32, |path| {
        File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))
    })?;
    Ok(())
}

/// Fewest files [`sync_files`] makes durable with `syncfs` rather than one by one.
const SYNCFS_FROM: usize = 4;

/// `syncfs` of each filesystem holding some of `paths`, where it makes
/// everything written to it durable; returns the paths on other filesystems.
#[cfg(target_os = "linux")]
fn sync_filesystems(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    use rustix::fs::FsWord;
    use std::os::unix::fs::MetadataExt;
    // ext2/3/4, XFS, btrfs: their `sync_fs` commits the journal (or
    // transaction) and flushes the device's cache, and since Linux 5.8
    // `syncfs` reports the writeback errors it meets. Others (FUSE, network
    // filesystems) may not, and keep their fsyncs.
    const COMMITTING: [FsWord; 3] = [0xEF53, 0x5846_5342, 0x9123_683E];
    let mut by_device: BTreeMap<u64, Vec<&PathBuf>> = BTreeMap::new();
    for path in paths {
        let device = fs::metadata(path).map_err(|e| Error::io(path, e))?.dev();
        by_device.entry(device).or_default().push(path);
    }
    let mut rest = Vec::new();
    for on_device in by_device.into_values() {
        let first = on_device[0];
        let file = File::open(first).map_err(|e| Error::io(first, e))?;
        let kind = rustix::fs::fstatfs(&file).map_err(|e| Error::io(first, e.into()))?.f_type;
        if COMMITTING.contains(&kind) {
            rustix::fs::syncfs(&file).map_err(|e| Error::io(first, e.into()))?;
        } else {
            rest.extend(on_device.into_iter().cloned());
        }
    }
    Ok(rest)
}

#[cfg(not(target_os = "linux"))]
fn sync_filesystems(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    Ok(paths.to_vec())
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
    fn files_are_synced_together_or_one_by_one_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..SYNCFS_FROM * 2).map(|i| dir.path().join(format!("f{i}"))).collect();
        files.iter().for_each(|f| fs::write(f, b"x").unwrap());
        let mut with_dir = files.clone();
        with_dir.push(dir.path().to_path_buf());
        // Many (one `syncfs` where the filesystem commits all) and few (fsyncs).
        sync_files(&with_dir).unwrap();
        sync_files(&files[..1]).unwrap();
        // Nothing is left out: what is not synced by its filesystem is returned to be fsynced.
        let rest = sync_filesystems(&with_dir).unwrap();
        assert!(rest.iter().all(|p| with_dir.contains(p)));
        let gone = dir.path().join("gone");
        for paths in [vec![gone.clone()], [files.clone(), vec![gone.clone()]].concat()] {
            match sync_files(&paths) {
                Err(Error::Io { path, .. }) => assert_eq!(path, gone),
                other => panic!("expected an I/O error naming {}, got {other:?}", gone.display()),
            }
        }
    }

    /// tmpfs keeps nothing across a restart, and its `syncfs` promises
    /// nothing: its files are fsynced one by one (a no-op there), as on any
    /// filesystem not known to commit everything on `syncfs`.
    #[cfg(target_os = "linux")]
    #[test]
    fn files_of_a_filesystem_not_known_to_commit_all_are_fsynced_one_by_one() {
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else { return };
        let files: Vec<PathBuf> = (0..SYNCFS_FROM).map(|i| dir.path().join(format!("f{i}"))).collect();
        files.iter().for_each(|f| fs::write(f, b"x").unwrap());
        assert_eq!(sync_filesystems(&files).unwrap(), files);
        sync_files(&files).unwrap();
    }

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
            ingested: Some((1_767_571_200_000_000, 1_767_571_200_000_007)),
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

    /// A partitioned table of 250 versions written as a writer does: each
    /// version adds a file, every third also removes an older one, each
    /// commit carries leadline's facts; a checkpoint wherever one is due.
    fn checkpointed() -> (tempfile::TempDir, DeltaTable) {
        let dir = tempfile::tempdir().unwrap();
        let t = DeltaTable::new(dir.path().join("events"));
        let schema = Schema::new(vec![Field::new("a", DataType::Utf8, false)]);
        t.create_if_missing(&schema, &["event_date"]).unwrap();
        let mut state = t.state().unwrap();
        let file = |v: u64| AddFile {
            path: format!("event_date=2026-01-{:02}/f{v}.parquet", v % 28 + 1),
            partition_values: [("event_date".to_string(), format!("2026-01-{:02}", v % 28 + 1))].into(),
            size: 100 + v,
            num_records: v,
            checksum: Some(v * 7),
            // Kept through checkpoints, when a file has it.
            ingested: v.is_multiple_of(2).then_some((v as i64, v as i64 * 3)),
        };
        for v in 1..=250 {
            let mut actions = vec![add_action(&file(v))];
            if v % 3 == 0 {
                actions.push(remove_action(&file(v - 2), true));
            }
            actions.push(commit_info("WRITE", json!({"ingested_at": v * 1000, "appended": v})));
            t.commit(v, &actions).unwrap();
            t.refresh(&mut state).unwrap();
            t.checkpoint_if_due(&state);
        }
        (dir, t)
    }

    fn same_state(a: &TableState, b: &TableState) {
        assert_eq!(a.version, b.version);
        assert_eq!(a.files, b.files);
        assert_eq!(a.known_paths, b.known_paths);
        let commits = |s: &TableState| s.commits.iter().map(|c| (c.version, c.leadline.clone())).collect::<Vec<_>>();
        assert_eq!(commits(a), commits(b));
        assert_eq!((a.sealed, a.unsealed_commits), (b.sealed, b.unsealed_commits));
    }

    #[test]
    fn a_new_reader_starts_from_the_latest_checkpoint() {
        let (_dir, t) = checkpointed();
        let log = t.log_dir();
        assert!(checkpoint_path(&log, 100).is_file() && checkpoint_path(&log, 200).is_file());
        assert!(!checkpoint_path(&log, 250).exists());
        let last: Value = serde_json::from_slice(&fs::read(log.join(LAST_CHECKPOINT)).unwrap()).unwrap();
        assert_eq!(last["version"], 200);
        let replayed = t.replayed_state().unwrap();
        assert_eq!(replayed.version, Some(250));
        same_state(&t.state().unwrap(), &replayed);
        t.verify_checkpoint().unwrap();
        // The commits before the checkpoint are not read: without one of
        // them only the replay fails.
        fs::remove_file(commit_path(&log, 50)).unwrap();
        assert!(matches!(t.replayed_state(), Err(Error::Damaged { .. })));
        same_state(&t.state().unwrap(), &replayed);
    }

    #[test]
    fn an_unusable_checkpoint_is_named_and_every_commit_read_instead() {
        let (_dir, t) = checkpointed();
        let log = t.log_dir();
        let replayed = t.replayed_state().unwrap();
        let path = checkpoint_path(&log, 200);
        let mut bytes = fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        fs::write(&path, bytes).unwrap();
        same_state(&t.state().unwrap(), &replayed);
        match t.verify_checkpoint() {
            Err(Error::Damaged { path: named, affects, .. }) => {
                assert_eq!(named, path);
                assert!(affects.starts_with("nothing"), "{affects}");
            }
            other => panic!("damage not found: {other:?}"),
        }
        // Facts that do not match their seal are not used either.
        fs::write(&path, b"").unwrap();
        let facts = facts_path(&log, 200);
        let text = fs::read_to_string(&facts).unwrap().replacen("\"appended\":7", "\"appended\":8", 1);
        fs::write(&facts, text).unwrap();
        same_state(&t.state().unwrap(), &replayed);
        assert!(matches!(t.verify_checkpoint(), Err(Error::Damaged { path, .. }) if path == facts));
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
            ingested: None,
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
