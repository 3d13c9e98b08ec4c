//! The read model: the projections of the whole log (SPEC §2) and their
//! `dora_metrics` rows, persisted beside the log in `<data>/model/` and
//! brought up to date by the write path (the appender after each append, or
//! `leadline rebuild`), so that a query reads results instead of folding the
//! log again. Readers never write here: [`ReadModel::open`] reads the
//! current manifest without the lock, and [`catch_up`] is for writers only.
//!
//! The log is folded per *component*: services joined by any id their events
//! share (a deployment, an incident or a commit named from two services, see
//! [`keys`]). No rule of SPEC §2 looks across components, so each
//! component's projections are exact on their own, and global figures (the
//! span, the pairs, the quality counts) are sums or unions over components.
//! An append routes its new events into per-service input segments kept here,
//! then refolds only the components they touch with [`project`], the same
//! entry point the in-memory path uses; the others stay on disk untouched.
//!
//! Everything here is derived from the log. A manifest swapped in atomically
//! names the files of the current model; files it no longer names are
//! deleted after a grace period (queries may still be reading them), and
//! files of an update that crashed are deleted by the next one. The manifest
//! carries a checksum of itself. A missing model is built from the log; a
//! damaged one (a manifest that does not match its checksum, a file it names
//! that cannot be read) is rebuilt from the log by the next update, which
//! says so in the log at error level; until then queries fold the log in
//! memory, or, reading a damaged file, fail naming it.

mod keys;
mod stored;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::LogicalPlanBuilder;
use leadline_udfs::Grain;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::log::delta::{create_dir_durable, sync_dir, write_atomic};
use crate::log::files::{HashingFile, events_batch, log_file_affects, parquet_plan, read_verified, written};
use crate::log::{Ingested, Snapshot, read_events, read_events_in};
use crate::metrics::{ProjectedCounts, dora_metrics, dora_metrics_schema, metric_rows};
use crate::project::project;
use crate::project::tables::{Table, table_batch};

/// Bumped whenever what is stored changes meaning: an older model is rebuilt.
/// 3: the manifest carries its checksum, and checksums of its files.
const FORMAT: u32 = 3;
const DIR: &str = "model";
const MANIFEST: &str = "MANIFEST.json";
/// A service's input segments are merged into one when it has more.
const MAX_SEGMENTS: usize = 8;
/// Files the manifest no longer names are kept this long for queries that
/// are still reading them.
const GRACE_MS: i64 = 10 * 60 * 1000;
/// Rows in a row group of an input segment.
const SEGMENT_ROWS: usize = 8192;
/// Events held decoded across all segments being written before they are
/// encoded: open writers then keep only encoded row groups.
const ROUTE_BUDGET: usize = 65_536;
const GRAINS: [Grain; 3] = [Grain::Day, Grain::Week, Grain::Month];

/// What the model holds; `model/MANIFEST.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// The log version folded through.
    version: Option<u64>,
    /// The greatest `ingested_at` folded.
    ingested_through: Option<i64>,
    /// The attribution window (µs; `None`: unbounded) the projections use.
    window: Option<i64>,
    /// Service names; a service's number is its index here.
    services: Vec<String>,
    /// Union-find parents over services: a component is a tree, named by its
    /// root, the smallest service number in it.
    parent: Vec<u32>,
    /// Per service: its events, as Parquet files under `model/`.
    segments: Vec<Vec<String>>,
    /// Sorted runs of entity keys (see [`keys`]).
    key_runs: Vec<String>,
    /// Per component root: its folded projections.
    components: BTreeMap<u32, Component>,
    /// Files no longer named, with the time (ms) they were let go.
    garbage: Vec<(i64, String)>,
    /// xxh3-64 of every file named (segments, key runs, component files),
    /// by name relative to `model/`.
    #[serde(default)]
    checksums: BTreeMap<String, u64>,
    /// xxh3 of the manifest's text (see `log::delta::seal`).
    #[serde(rename = "leadlineChecksum", default)]
    checksum: String,
}

/// The bytes of the model's file at `path`, checked against `checksum`.
fn read_checked(path: &Path, checksum: Option<u64>) -> Result<bytes::Bytes> {
    let bytes = std::fs::read(path).map_err(|e| Error::damaged(path, e, MODEL_AFFECTS))?;
    if let Some(expected) = checksum {
        let sum = xxhash_rust::xxh3::xxh3_64(&bytes);
        if sum != expected {
            let problem = format!("checksum mismatch (manifest {expected:016x}, content {sum:016x})");
            return Err(Error::damaged(path, problem, MODEL_AFFECTS));
        }
    }
    Ok(bytes.into())
}

/// What a damaged file of the read model affects.
pub const MODEL_AFFECTS: &str = "the read model (derived from the log): queries fold the log in memory or fail \
    naming this file until the next append or `leadline rebuild --from-scratch` rebuilds it from the log";

/// The folded projections of one component.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Component {
    /// Directory under `model/` with one Parquet file per table and grain.
    dir: String,
    counts: ProjectedCounts,
    span: Option<(i64, i64)>,
    pairs: Vec<(String, String)>,
}

/// A complete read model as one reader sees it: the manifest it read and
/// the files that manifest names. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReadModel {
    dir: PathBuf,
    manifest: Arc<Manifest>,
}

impl ReadModel {
    /// The current model of the data directory `root`, read without the lock
    /// (the manifest is replaced atomically); `None` when there is none yet
    /// or it is of an older format.
    pub fn open(root: &Path) -> Result<Option<ReadModel>> {
        let dir = root.join(DIR);
        let manifest = read_manifest(&dir)?.filter(|m| m.format == FORMAT);
        Ok(manifest.map(|m| ReadModel { dir, manifest: Arc::new(m) }))
    }

    /// The manifest's path under data directory `root`.
    pub fn manifest_path(root: &Path) -> PathBuf {
        root.join(DIR).join(MANIFEST)
    }

    /// The log version the model folded through.
    pub fn version(&self) -> Option<u64> {
        self.manifest.version
    }

    /// The attribution window (µs; `None`: unbounded) it was folded with.
    pub fn window(&self) -> Option<i64> {
        self.manifest.window
    }

    /// A plan reading `table` of every component (`None`: there are none).
    pub fn table_plan(&self, table: Table) -> DfResult<Option<LogicalPlanBuilder>> {
        if self.manifest.components.is_empty() {
            return Ok(None);
        }
        let schema = table.schema();
        Ok(Some(
            parquet_plan(self.table_files(table).into_iter().map(|(path, _)| path), stored::stored_schema(&schema))?
                .project(stored::read_as(&schema))?,
        ))
    }

    /// The files holding `table`, one per component, with their checksums.
    pub fn table_files(&self, table: Table) -> Vec<(PathBuf, Option<u64>)> {
        self.manifest
            .components
            .values()
            .map(|c| {
                let name = format!("{}/{}.parquet", c.dir, table.name());
                (self.dir.join(&name), self.checksum(&name))
            })
            .collect()
    }

    /// The rows of `table` as stored, every component's (`leadline check`
    /// compares them with a fold of the log).
    pub fn table_batches(&self, table: Table) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for c in self.manifest.components.values() {
            for batch in self.read_file(&format!("{}/{}.parquet", c.dir, table.name()))? {
                out.push(stored::from_stored(&batch, table.schema())?);
            }
        }
        Ok(out)
    }

    /// The batches of the model's Parquet file `name` (relative to
    /// `model/`), read whole and checked against its checksum first.
    fn read_file(&self, name: &str) -> Result<Vec<RecordBatch>> {
        let path = self.dir.join(name);
        let bytes = read_checked(&path, self.manifest.checksums.get(name).copied())?;
        let damaged = |e: &dyn std::fmt::Display| Error::damaged(&path, e, MODEL_AFFECTS);
        ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.with_batch_size(65_536).build())
            .map_err(|e| damaged(&e))?
            .map(|b| b.map_err(|e| damaged(&e)))
            .collect()
    }

    /// What the manifest says a file named `name` (relative to `model/`)
    /// hashes to, if it says.
    pub fn checksum(&self, name: &str) -> Option<u64> {
        self.manifest.checksums.get(name).copied()
    }

    /// Every file the manifest names (absolute paths: segments, key runs,
    /// each component's files), and the files under the model's directories
    /// it does not name (left by an update that died, deleted by the next one).
    pub fn files(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let m = &self.manifest;
        let mut live: Vec<String> = m.segments.iter().flatten().cloned().collect();
        live.extend(m.key_runs.iter().cloned());
        for c in m.components.values() {
            live.extend(
                [Table::Deployments, Table::Changes, Table::Incidents]
                    .map(|t| format!("{}/{}.parquet", c.dir, t.name())),
            );
            live.extend(GRAINS.map(|g| format!("{}/{g}.parquet", c.dir)));
        }
        let live = live.into_iter().map(|f| self.dir.join(f)).collect();
        let named = self.manifest.named_files();
        let mut unnamed = Vec::new();
        for sub in ["input", "keys", "out"] {
            for entry in std::fs::read_dir(self.dir.join(sub)).into_iter().flatten().flatten() {
                if !named.contains(&format!("{sub}/{}", entry.file_name().to_string_lossy())) {
                    unnamed.push(entry.path());
                }
            }
        }
        (live, unnamed)
    }

    pub fn counts(&self) -> ProjectedCounts {
        let mut total = ProjectedCounts::default();
        self.manifest.components.values().for_each(|c| total += c.counts);
        total
    }

    /// `dora_metrics(grain, from, to)` from the stored rows of every
    /// component. Reads files: call it off the async workers.
    pub fn dora_metrics(&self, grain: Grain, from: Option<i64>, to: Option<i64>) -> Result<RecordBatch> {
        let mut rows = Vec::new();
        let mut pairs = BTreeSet::new();
        let mut span: Option<(i64, i64)> = None;
        for c in self.manifest.components.values() {
            let name = format!("{}/{grain}.parquet", c.dir);
            for batch in self.read_file(&name)? {
                rows.push(stored::from_stored(&batch, dora_metrics_schema())?);
            }
            pairs.extend(c.pairs.iter().cloned());
            if let Some((lo, hi)) = c.span {
                span = Some(span.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
            }
        }
        dora_metrics(&rows, &pairs, span, grain, from, to)
    }
}

impl Manifest {
    /// The segments, key runs and component directories of the model now.
    fn live_files(&self) -> BTreeSet<String> {
        let mut live: BTreeSet<String> = self.segments.iter().flatten().cloned().collect();
        live.extend(self.key_runs.iter().cloned());
        live.extend(self.components.values().map(|c| c.dir.clone()));
        live
    }

    fn named_files(&self) -> BTreeSet<String> {
        let mut named: BTreeSet<String> = self.segments.iter().flatten().cloned().collect();
        named.extend(self.key_runs.iter().cloned());
        named.extend(self.components.values().map(|c| c.dir.clone()));
        named.extend(self.garbage.iter().map(|(_, f)| f.clone()));
        named
    }

    fn find(&self, mut s: u32) -> u32 {
        while self.parent[s as usize] != s {
            s = self.parent[s as usize];
        }
        s
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb) as usize] = ra.min(rb);
        }
    }

    fn let_go(&mut self, file: String) {
        self.garbage.push((chrono::Utc::now().timestamp_millis(), file));
    }
}

/// Brings the read model of `snap` folded with `window` up to date (under
/// the model's lock, so one process updates it at a time and the others
/// wait for that) and returns it. For writers only: the appender after each
/// append and `leadline rebuild` (`from_scratch`). A model already past
/// `snap` (another process appended since) is returned as it is.
pub fn catch_up(snap: &Snapshot, window: Option<i64>, from_scratch: bool) -> Result<ReadModel> {
    let manifest = match update(snap, window, from_scratch) {
        // A damaged model is derived data: rebuilt from the log (which is
        // read whole, so a damaged log fails this instead), and said so.
        Err(Error::Damaged { path, problem, .. }) if !from_scratch && path.starts_with(snap.root.join(DIR)) => {
            tracing::error!(
                path = %path.display(),
                problem,
                "the read model is damaged; rebuilding it from the log"
            );
            update(snap, window, true)?
        }
        other => other?,
    };
    Ok(ReadModel { dir: snap.root.join(DIR), manifest: Arc::new(manifest) })
}

/// The manifest in `dir`: `None` when there is none, `Damaged` when it is
/// not what was written.
fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let damaged = |problem: String| Error::damaged(&path, problem, MODEL_AFFECTS);
    let text = std::str::from_utf8(&bytes).map_err(|e| damaged(format!("not UTF-8 text ({e})")))?;
    let sealed = crate::log::delta::unseal(text).map_err(damaged)?;
    let manifest: Manifest = serde_json::from_str(text).map_err(|e| damaged(format!("not a manifest ({e})")))?;
    if !sealed && manifest.format >= 3 {
        return Err(damaged("carries no checksum".into()));
    }
    Ok(Some(manifest))
}

fn update(snap: &Snapshot, window: Option<i64>, from_scratch: bool) -> Result<Manifest> {
    let dir = snap.root.join(DIR);
    for sub in ["", "input", "keys", "out"] {
        create_dir_durable(&dir.join(sub))?;
    }
    let lock_path = dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    let mut m = match read_manifest(&dir) {
        Ok(Some(m)) if m.format == FORMAT && m.window == window && !from_scratch => m,
        Err(e) if !from_scratch => return Err(e),
        on_disk => {
            let mut fresh = Manifest { format: FORMAT, window, ..Manifest::default() };
            // Until the new manifest replaces it, the one on disk is the
            // model: its files must outlive this update even if it dies
            // half way (and queries may be reading them), so they become
            // garbage of the new one instead of being deleted now.
            if let Ok(Some(old)) = on_disk {
                let expiring: BTreeSet<&String> = old.garbage.iter().map(|(_, f)| f).collect();
                fresh.garbage = old.garbage.clone();
                for f in old.named_files().into_iter().filter(|f| !expiring.contains(f)) {
                    fresh.let_go(f);
                }
            }
            fresh
        }
    };
    if m.version >= snap.version {
        return Ok(m);
    }
    remove_unnamed(&dir, &m)?;
    let started = std::time::Instant::now();
    let through = snap.appends.iter().map(|a| a.ingested_at).max();
    let range = Ingested { after: m.ingested_through, through };

    // 1. Route the new events to a new segment of their service, keeping
    //    the keys of the ids they name.
    let mut numbers: HashMap<String, u32> = m.services.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
    let mut writers: BTreeMap<u32, SegmentWriter> = BTreeMap::new();
    let mut new_keys: Vec<u64> = Vec::new();
    if m.version.is_none() {
        // About one key per event: reserve once rather than double a vector
        // of hundreds of MB.
        new_keys.reserve(snap.event_files.iter().map(|f| f.num_records as usize).sum::<usize>() * 9 / 8);
    }
    let mut new_events = 0u64;
    let mut buffered = 0usize;
    let mut route = |events: Vec<Event>| -> Result<()> {
        for e in events {
            let s = match numbers.get(&e.service) {
                Some(&s) => s,
                None => {
                    let s = m.services.len() as u32;
                    if m.services.len() >= keys::MAX_SERVICES {
                        return Err(Error::Limit(format!(
                            "the read model holds at most {} services",
                            keys::MAX_SERVICES
                        )));
                    }
                    numbers.insert(e.service.clone(), s);
                    m.services.push(e.service.clone());
                    m.parent.push(s);
                    m.segments.push(Vec::new());
                    s
                }
            };
            entity_keys(&e, s, &mut new_keys);
            new_events += 1;
            let w = match writers.entry(s) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(SegmentWriter::create(&dir, s)?),
            };
            w.rows.push(e);
            buffered += 1;
            if buffered >= ROUTE_BUDGET {
                writers.values_mut().try_for_each(SegmentWriter::encode)?;
                buffered = 0;
            }
        }
        Ok(())
    };
    for f in &snap.event_files {
        let path = snap.events_root().join(&f.path);
        let affects = log_file_affects(&snap.events_root(), f);
        if range.after.is_none() {
            // A full fold reads every file whole: each is checked against its
            // commit on the way, so no damage is folded into the model.
            read_events_in(read_verified(&snap.events_root(), f)?, &path, &affects, range, &mut route)?;
        } else {
            read_events(&path, &affects, range, &mut route)?;
        }
    }
    let touched: Vec<u32> = writers.keys().copied().collect();
    for (s, w) in writers {
        let (name, checksum) = w.finish()?;
        m.checksums.insert(name.clone(), checksum);
        m.segments[s as usize].push(name);
    }
    let routed = started.elapsed();

    // 2. Join the services that share an id, old or new.
    // Runs are named relative to `dir`, as the manifest names them.
    let mut joins = Vec::new();
    keys::shared(&dir, &m.key_runs, &mut new_keys, &mut |a, b| joins.push((a, b)))?;
    joins.into_iter().for_each(|(a, b)| m.union(a, b));
    if !new_keys.is_empty() {
        let run = format!("keys/{}.keys", uuid::Uuid::new_v4());
        let checksum = keys::write_run(&dir.join(&run), new_keys.iter().copied())?;
        m.checksums.insert(run.clone(), checksum);
        m.key_runs.push(run);
    }
    drop(new_keys);
    if keys::too_many(&m.key_runs) {
        let run = format!("keys/{}.keys", uuid::Uuid::new_v4());
        let checksum = keys::merge_runs(&dir, &m.key_runs, &dir.join(&run))?;
        m.checksums.insert(run.clone(), checksum);
        for old in std::mem::replace(&mut m.key_runs, vec![run]) {
            m.let_go(old);
        }
    }
    sync_dir(&dir.join("keys"))?;

    // 3. Refold every component an event touched, whole.
    let affected: BTreeSet<u32> = touched.iter().map(|&s| m.find(s)).collect();
    let stale: Vec<u32> = m.components.keys().copied().filter(|&c| affected.contains(&m.find(c))).collect();
    for c in stale {
        if let Some(old) = m.components.remove(&c) {
            m.let_go(old.dir);
        }
    }
    let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for s in 0..m.services.len() as u32 {
        let root = m.find(s);
        if affected.contains(&root) {
            members.entry(root).or_default().push(s);
        }
    }
    // Components fold independently: as many at a time as there are cores.
    let work: Vec<(u32, Vec<u32>)> = members.into_iter().collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, work.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some((root, services)) = work.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    let folded = fold(&dir, &m, *root, services);
                    let failed = folded.is_err();
                    if let Ok(mut done) = done.lock() {
                        done.push((*root, folded));
                    }
                    if failed {
                        next.store(work.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    for (root, folded) in done.into_inner().map_err(|_| Error::Internal("a fold thread panicked".into()))? {
        let folded = folded?;
        m.checksums.extend(folded.checksums);
        for (s, merged) in folded.merged_segments {
            for old in std::mem::replace(&mut m.segments[s as usize], vec![merged]) {
                m.let_go(old);
            }
        }
        m.components.insert(root, folded.component);
    }
    sync_dir(&dir.join("input"))?;
    sync_dir(&dir.join("out"))?;

    m.version = snap.version;
    m.ingested_through = through.or(m.ingested_through);
    for s in 0..m.parent.len() {
        m.parent[s] = m.find(s as u32);
    }
    let now = chrono::Utc::now().timestamp_millis();
    let (expired, kept): (Vec<_>, Vec<_>) =
        std::mem::take(&mut m.garbage).into_iter().partition(|(at, _)| now - at > GRACE_MS);
    m.garbage = kept;
    // Checksums of files no longer named go with them.
    let live = m.live_files();
    m.checksums
        .retain(|name, _| live.contains(name) || name.rsplit_once('/').is_some_and(|(dir, _)| live.contains(dir)));
    m.checksum = crate::log::delta::SEAL_PLACEHOLDER.into();
    let text = serde_json::to_string(&m).map_err(|e| Error::Internal(format!("read model manifest: {e}")))?;
    write_atomic(&dir.join(MANIFEST), crate::log::delta::seal(text).as_bytes())?;
    for (_, f) in expired {
        remove(&dir.join(f));
    }
    tracing::info!(
        new_events,
        components = affected.len(),
        of = m.components.len(),
        ?routed,
        total = ?started.elapsed(),
        "read model updated"
    );
    Ok(m)
}

/// Keys of the ids `e` names; their kinds are kept apart.
fn entity_keys(e: &Event, service: u32, out: &mut Vec<u64>) {
    if let Some(d) = &e.deployment_id {
        out.push(keys::key(0, d, service));
    }
    if let Some(i) = &e.incident_id {
        out.push(keys::key(1, i, service));
    }
    for sha in e.commit_sha.iter().chain(e.change_ids.iter().flatten()) {
        out.push(keys::key(2, sha, service));
    }
}

/// What [`fold`] made of one component.
struct Folded {
    component: Component,
    /// Checksums of the files written, by name.
    checksums: BTreeMap<String, u64>,
    /// (service, its one new segment) where the old ones were merged.
    merged_segments: Vec<(u32, String)>,
}

/// Folds the events of `services` (one component) and writes its tables
/// and metric rows to a new directory. Merges a service's segments once it
/// has too many.
fn fold(dir: &Path, m: &Manifest, root: u32, services: &[u32]) -> Result<Folded> {
    let mut events: Vec<Event> = Vec::new();
    let mut merged_segments = Vec::new();
    let mut checksums = BTreeMap::new();
    for &s in services {
        let first = events.len();
        let segments = &m.segments[s as usize];
        for seg in segments {
            let path = dir.join(seg);
            let bytes = read_checked(&path, m.checksums.get(seg).copied())?;
            read_events_in(bytes, &path, MODEL_AFFECTS, Ingested::default(), &mut |batch| {
                events.extend(batch);
                Ok(())
            })?;
        }
        if segments.len() > MAX_SEGMENTS {
            let mut w = SegmentWriter::create(dir, s)?;
            for rows in events[first..].chunks(SEGMENT_ROWS) {
                w.write(&events_batch(rows, 0)?)?;
            }
            let (name, checksum) = w.finish()?;
            checksums.insert(name.clone(), checksum);
            merged_segments.push((s, name));
        }
    }
    let p = project(&events, m.window);
    drop(events);
    let out = format!("out/c{root}-{}", uuid::Uuid::new_v4());
    let out_dir = dir.join(&out);
    std::fs::create_dir(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let mut write = |file: String, batch: RecordBatch| -> Result<()> {
        let name = format!("{out}/{file}");
        checksums.insert(name.clone(), write_parquet(&dir.join(&name), &batch)?);
        Ok(())
    };
    for table in [Table::Deployments, Table::Changes, Table::Incidents] {
        write(format!("{}.parquet", table.name()), table_batch(table, &p)?)?;
    }
    for grain in GRAINS {
        write(format!("{grain}.parquet"), metric_rows(&p, grain)?)?;
    }
    sync_dir(&out_dir)?;
    let component =
        Component { dir: out, counts: ProjectedCounts::of(&p), span: p.span, pairs: p.pairs.into_iter().collect() };
    Ok(Folded { component, checksums, merged_segments })
}

fn properties(row_group_rows: usize) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows));
    // As in the log: a dictionary per open writer of columns it cannot shrink.
    for col in crate::log::files::PLAIN_COLUMNS {
        props = props.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(col), false);
    }
    props.build()
}

/// Writes `batch` as the Parquet file `path`, durably; returns its checksum.
fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<u64> {
    let batch = stored::to_stored(batch)?;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let failed = |e: parquet::errors::ParquetError| written(path, e);
    let mut w =
        ArrowWriter::try_new(HashingFile::new(file), batch.schema(), Some(properties(1 << 20))).map_err(failed)?;
    w.write(&batch).map_err(failed)?;
    let (file, checksum) = w.into_inner().map_err(failed)?.finish();
    file.sync_all().map_err(|e| Error::io(path, e))?;
    Ok(checksum)
}

/// A new input segment of one service. A few hundred are open at once
/// while an append is routed, so each holds at most one row group, encoded.
struct SegmentWriter {
    name: String,
    path: PathBuf,
    writer: ArrowWriter<HashingFile>,
    rows: Vec<Event>,
}

impl SegmentWriter {
    fn create(dir: &Path, service: u32) -> Result<Self> {
        let name = format!("input/s{service}-{}.parquet", uuid::Uuid::new_v4());
        let path = dir.join(&name);
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let writer =
            ArrowWriter::try_new(HashingFile::new(file), crate::event::events_schema(), Some(properties(SEGMENT_ROWS)))
                .map_err(|e| written(&path, e))?;
        Ok(Self { name, path, writer, rows: Vec::new() })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| written(&self.path, e))
    }

    fn encode(&mut self) -> Result<()> {
        if !self.rows.is_empty() {
            let batch = events_batch(&self.rows, 0)?;
            self.write(&batch)?;
            self.rows = Vec::new();
        }
        Ok(())
    }

    /// Closes and fsyncs the segment: its name and checksum.
    fn finish(mut self) -> Result<(String, u64)> {
        self.encode()?;
        let (file, checksum) = self.writer.into_inner().map_err(|e| written(&self.path, e))?.finish();
        file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        Ok((self.name, checksum))
    }
}

/// Deletes what an update that did not finish left behind: files under
/// `input/`, `keys/` and `out/` that the manifest does not name.
fn remove_unnamed(dir: &Path, m: &Manifest) -> Result<()> {
    crate::log::delta::remove_temp_files(dir);
    let named = m.named_files();
    for sub in ["input", "keys", "out"] {
        let d = dir.join(sub);
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries.flatten() {
            let rel = format!("{sub}/{}", entry.file_name().to_string_lossy());
            if !named.contains(&rel) {
                remove(&entry.path());
            }
        }
    }
    Ok(())
}

fn remove(path: &Path) {
    let result = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    if let Err(e) = result
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove an old read-model file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appender::Appender;
    use crate::input;

    /// A data directory with the `worked` fixture, appended in two halves.
    fn worked(dir: &Path) -> Appender {
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/worked/events.ndjson");
        let text = std::fs::read_to_string(fixture).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut appender = Appender::open(dir, "test").unwrap();
        for half in lines.chunks(lines.len() / 2 + 1) {
            let rows = input::ndjson_rows(std::io::Cursor::new(half.join("\n").into_bytes()));
            appender.append("worked", rows, &mut |_| {}).unwrap();
        }
        appender
    }

    fn manifest(root: &Path) -> Manifest {
        read_manifest(&root.join(DIR)).unwrap().unwrap()
    }

    #[test]
    fn a_rebuild_from_scratch_keeps_the_models_files_until_its_manifest_replaces_them() {
        // A rebuild killed half way must leave the manifest on disk whole:
        // every file it names still there.
        let dir = tempfile::tempdir().unwrap();
        let mut appender = worked(dir.path());
        let before = manifest(dir.path());
        let named = before.named_files();
        assert!(named.iter().any(|f| f.starts_with("input/")), "{named:?}");
        appender.catch_up(true).unwrap();
        let after = manifest(dir.path());
        let garbage: BTreeSet<&String> = after.garbage.iter().map(|(_, f)| f).collect();
        for f in &named {
            assert!(dir.path().join(DIR).join(f).exists(), "{f} was deleted at once");
            assert!(garbage.contains(f), "{f} is neither named nor garbage");
        }
        assert_eq!(after.version, before.version);
    }

    #[test]
    fn a_damaged_manifest_is_named_and_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = worked(dir.path());
        let path = ReadModel::manifest_path(dir.path());
        let good = std::fs::read_to_string(&path).unwrap();
        let version = manifest(dir.path()).version;
        // A digit changed (still JSON, still a manifest) and a cut.
        let flipped = good.replacen(&format!("\"version\":{}", version.unwrap()), "\"version\":9", 1);
        assert_ne!(flipped, good);
        for bad in [flipped, good[..good.len() / 2].to_string()] {
            std::fs::write(&path, &bad).unwrap();
            match ReadModel::open(dir.path()) {
                Err(Error::Damaged { path: p, affects, .. }) => {
                    assert_eq!(p, path);
                    assert!(affects.contains("read model"), "{affects}");
                }
                other => panic!("damage not found: {other:?}"),
            }
            // The write path rebuilds it from the log (and logs that).
            assert_eq!(appender.catch_up(false).unwrap(), version);
            assert_eq!(ReadModel::open(dir.path()).unwrap().unwrap().version(), version);
        }
    }

    #[test]
    fn a_damaged_model_file_is_rebuilt_by_the_next_update() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = worked(dir.path());
        let m = manifest(dir.path());
        let segment = m.segments.iter().flatten().next().unwrap().clone();
        let path = dir.path().join(DIR).join(&segment);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        // Every service gets an event: every component is refolded, reading the cut segment.
        let late: String = m
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{{\"event_id\":\"late-{i}\",\"event_type\":\"commit\",\"occurred_at\":\"2026-03-09T09:00:00Z\",\
                     \"service\":\"{s}\",\"commit_sha\":\"late{i}\"}}\n"
                )
            })
            .collect();
        let report =
            appender.append("late", input::ndjson_rows(std::io::Cursor::new(late.into_bytes())), &mut |_| {}).unwrap();
        let model = ReadModel::open(dir.path()).unwrap().unwrap();
        assert_eq!(model.version(), report.version, "the model was rebuilt from the log");
    }
}
