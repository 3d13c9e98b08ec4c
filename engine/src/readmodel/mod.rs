//! The read model: the projections of the whole log (SPEC §2) and their
//! `dora_metrics` rows, persisted beside the log (its own state in
//! `<data>/model/`, its tables as Delta tables in `<data>/tables/`, see
//! [`published`]) and brought up to date by the write path (the appender
//! after each append, or `leadline rebuild`), so that a query reads results
//! instead of folding the log again. Readers never write here:
//! [`ReadModel::open`] reads the current manifest without the lock, and
//! [`catch_up`] is for writers only.
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
//! deleted after a grace period (queries and pinned Delta readers may still
//! be reading them), and files of an update that crashed are deleted by the
//! next one. The manifest carries a checksum of itself and of every file it
//! names. A missing model is built from the log; a damaged one (a manifest
//! that does not match its checksum, a file it names that cannot be read)
//! is rebuilt from the log by the next update, which says so in the log at
//! error level; until then queries fold the log in memory, or, reading a
//! damaged file, fail naming it.

mod epochs;
mod grace;
mod keys;
mod memo;
mod published;
mod refold;
mod segment;
mod spares;
mod stored;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::LogicalPlanBuilder;
use leadline_udfs::Grain;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::log::delta::{
    SEAL_PLACEHOLDER, create_dir_durable, remove_temp_files, seal, sync_files, unseal, write_atomic,
};
use crate::log::files::{HashingFile, events_batch, log_file_affects, parquet_plan, read_verified, written};
use crate::log::{Ingested, Snapshot, Stamped, read_events, read_events_in, read_stored_events_in};
use crate::metrics::{ProjectedCounts, dora_metrics};
use crate::parallel::{cores, in_parallel, in_parallel_owned};
use crate::project::tables::Table;
use crate::project::widen;
pub use epochs::bounded_columns;
/// A small delivery history for tests: see `epochs::tests::days`.
#[cfg(test)]
pub(crate) use epochs::tests::days as test_days;
pub use published::Publication;
pub use published::{PARTS, Part};
pub use refold::Refolded;

/// Bumped whenever what is stored changes meaning or place: an older model
/// is rebuilt. 3: components' files moved into the published Delta tables,
/// durations stored as `<name>_us`. 4: the manifest carries its checksum
/// and its files'. 5: input segments keep each event's `ingested_at` (as-of
/// queries refold from them), components the range of theirs. 6: input
/// segments keep only what folding reads, commit SHAs as bytes
/// (`segment.rs`). 7: components folded in epochs (`epochs.rs`), each with
/// its own files; segments carry their span of `occurred_at`. 8: an epoch
/// may link commits of an earlier one that the carry holds (`borrowed`).
/// 9: epochs' tails kept beside the manifest (`tails/`). 10: an epoch may
/// keep the file of the one it replaced in a table (`Epoch::files`); the
/// retired are files, not epochs. 11: an epoch's carry kept with its
/// tails, beside the manifest.
const FORMAT: u32 = 11;
const DIR: &str = "model";
const MANIFEST: &str = "MANIFEST.json";
/// The directories under `model/` holding the files a manifest names:
/// input segments, key runs, epochs' tails.
const SUBDIRS: [&str; 3] = ["input", "keys", "tails"];
/// A service's input segments are merged into one when it has more.
const MAX_SEGMENTS: usize = 8;
/// Files the manifest no longer names are kept this long for queries (and
/// readers of a recent Delta version) that are still reading them.
const GRACE_MS: i64 = 10 * 60 * 1000;
/// Rows in a row group of an input segment.
const SEGMENT_ROWS: usize = 8192;
/// Events held decoded across all segments being written before they are
/// encoded: open writers then keep only encoded row groups.
const ROUTE_BUDGET: usize = 65_536;

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
    /// Per service: its events, as Parquet files under `model/`, each
    /// within one epoch of its component.
    segments: Vec<Vec<String>>,
    /// Per segment: the earliest and latest `occurred_at` of its events.
    #[serde(default)]
    spans: BTreeMap<String, (i64, i64)>,
    /// Sorted runs of entity keys (see [`keys`]).
    key_runs: Vec<String>,
    /// Per component root: its folded projections.
    components: BTreeMap<u32, Component>,
    /// Files under `model/` an update is letting go (listed in `LET_GO`
    /// before the manifest no longer naming them is written, see [`grace`]).
    #[serde(skip)]
    garbage: Vec<String>,
    /// Files of the published tables an update is letting go (by their
    /// name in `checksums`: `tables/<table>/<id>.parquet`).
    #[serde(skip)]
    retired: Vec<String>,
    /// Each published table's Delta version holding this model.
    published: BTreeMap<String, u64>,
    /// xxh3-64 of every file named, by its name: `input/…` and `keys/…`
    /// under `model/`, `tables/…` for the components' files.
    #[serde(default)]
    checksums: BTreeMap<String, u64>,
    /// xxh3 of the manifest's text (see `log::delta::seal`).
    #[serde(rename = "leadlineChecksum", default)]
    checksum: String,
}

/// A manifest as its writer wrote it, with its bytes (see [`read_manifest_after`]).
type Written = (Vec<u8>, Arc<Manifest>);

/// What a damaged file of the read model affects.
pub const MODEL_AFFECTS: &str = "the read model (derived from the log): queries fold the log in memory or fail \
    naming this file until the next append or `leadline rebuild --from-scratch` rebuilds it from the log";

/// The published tables of data directory `root` (for `leadline check`).
pub fn published_tables(root: &Path) -> Vec<crate::log::delta::DeltaTable> {
    PARTS.map(|part| crate::log::delta::DeltaTable::new(published::table_root(root, part))).into()
}

/// The file under `model/` keeping epoch `id`'s tails (see `epochs`).
fn tails_file(id: &str) -> String {
    format!("tails/{id}.json")
}

/// The name file `id` of `part`'s table has in the manifest's checksums
/// and `retired` (its path relative to the data directory).
fn component_file(part: Part, id: &str) -> String {
    format!("{}/{}/{id}.parquet", published::DIR, part.name())
}

/// The folded projections of one component: its epochs' and their sums.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Component {
    /// In time order; each names its files (see [`epochs`]).
    epochs: Vec<epochs::Epoch>,
    counts: ProjectedCounts,
    span: Option<(i64, i64)>,
    pairs: Vec<(String, String)>,
    /// The earliest and latest `ingested_at` of its events: an as-of query
    /// reads its stored rows when it saw them all, skips it when it saw none.
    #[serde(default)]
    ingested: Option<(i64, i64)>,
    /// The distinct teams its rows name, for a scan filtered by team to skip
    /// it; `None` (a model written before teams were kept): unknown.
    #[serde(default)]
    teams: Option<Vec<String>>,
}

impl Component {
    fn of(epochs: Vec<epochs::Epoch>) -> Component {
        let mut counts = ProjectedCounts::default();
        let mut pairs = BTreeSet::new();
        let (mut span, mut ingested) = (None, None);
        for e in &epochs {
            counts += e.counts;
            pairs.extend(e.pairs.iter().cloned());
            span = widen(span, e.span);
            ingested = widen(ingested, e.ingested);
        }
        let teams = epochs.iter().try_fold(BTreeSet::new(), |mut all, e| {
            all.extend(e.teams.as_ref()?.iter().cloned());
            Some(all)
        });
        let teams = teams.map(|t| t.into_iter().collect());
        Component { epochs, counts, span, pairs: pairs.into_iter().collect(), ingested, teams }
    }

    /// Its epochs' ids.
    fn ids(&self) -> impl Iterator<Item = &str> {
        self.epochs.iter().map(|e| e.id.as_str())
    }

    /// The names (see [`component_file`]) of its epochs' files in every table.
    fn table_files(&self) -> impl Iterator<Item = String> {
        self.epochs.iter().flat_map(|e| PARTS.map(|part| component_file(part, e.file(part))))
    }
}

/// A complete read model as one reader sees it: the manifest it read and
/// the files that manifest names. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReadModel {
    /// The data directory.
    root: PathBuf,
    manifest: Arc<Manifest>,
    /// Built from the manifest the first time a query asks.
    index: Arc<OnceLock<ModelIndex>>,
}

/// Which component holds what, for a scan to read only the components a
/// query's filters keep. A component's rows are all of its services; its
/// `dora_metrics` rows are all of its (service, environment) pairs.
#[derive(Debug)]
pub struct ModelIndex {
    /// Every (service, environment) pair with deployment or incident events,
    /// in order, with the components (see [`ModelIndex::services`]) holding it.
    pub pairs: Vec<((String, String), Vec<usize>)>,
    /// Per component (in the manifest's order): its services.
    pub services: Vec<Vec<String>>,
    /// Per component: the teams its rows name (`None`: not known).
    pub teams: Vec<Option<Vec<String>>>,
    /// Per component: its epochs' spans of `occurred_at`, [from, to)
    /// (`None`: unbounded); see [`ModelIndex::epochs_of`].
    pub epochs: Vec<Vec<Bounds>>,
    /// The span of `occurred_at` over the whole log.
    pub span: Option<(i64, i64)>,
}

/// An epoch of the model: (component, epoch) indices into [`ModelIndex::epochs`].
pub type EpochRef = (usize, usize);
/// A range [lo, hi) of times in µs (`None`: unbounded).
pub type Bounds = (Option<i64>, Option<i64>);

impl ModelIndex {
    /// The epochs of `components` as (component, epoch) indices into
    /// [`ModelIndex::epochs`], each with the range [lo, hi) its rows of
    /// `part` hold in their [`bounded_columns`] (`None`: unbounded).
    pub fn epochs_of(&self, part: Part, components: impl IntoIterator<Item = usize>) -> Vec<(EpochRef, Bounds)> {
        let epochs = |c: usize| {
            let spans = self.epochs[c].iter().enumerate();
            spans.map(move |(e, &(from, to))| ((c, e), epochs::bounds(part, from, to)))
        };
        components.into_iter().flat_map(epochs).collect()
    }
}

impl ReadModel {
    /// The current model of the data directory `root`, read without the lock
    /// (the manifest is replaced atomically); `None` when there is none yet,
    /// it is of an older format or its tables were deleted; `Damaged` when
    /// its manifest is not what was written.
    pub fn open(root: &Path) -> Result<Option<ReadModel>> {
        let manifest = read_manifest(&root.join(DIR))?.filter(|m| m.usable(root));
        Ok(manifest.map(|m| ReadModel { root: root.to_path_buf(), manifest: Arc::new(m), index: Default::default() }))
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

    /// Which component holds which services and pairs (built once per model).
    pub fn index(&self) -> &ModelIndex {
        self.index.get_or_init(|| {
            let m = &self.manifest;
            let position: HashMap<u32, usize> = m.components.keys().enumerate().map(|(i, &root)| (root, i)).collect();
            let mut services = vec![Vec::new(); m.components.len()];
            for (s, name) in m.services.iter().enumerate() {
                if let Some(&i) = position.get(&m.find(s as u32)) {
                    services[i].push(name.clone());
                }
            }
            let mut pairs: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
            let mut span: Option<(i64, i64)> = None;
            for (i, c) in m.components.values().enumerate() {
                c.pairs.iter().for_each(|p| pairs.entry(p.clone()).or_default().push(i));
                span = widen(span, c.span);
            }
            let teams = m.components.values().map(|c| c.teams.clone()).collect();
            let epochs = m
                .components
                .values()
                .map(|c| {
                    let starts: Vec<Option<i64>> = c.epochs.iter().map(|e| e.from).collect();
                    (0..starts.len()).map(|k| (starts[k], starts.get(k + 1).copied().flatten())).collect()
                })
                .collect();
            ModelIndex { pairs: pairs.into_iter().collect(), services, teams, epochs, span }
        })
    }

    /// A plan reading `table` of the epochs `which`, or `None` if that is none.
    pub fn table_plan(&self, table: Table, which: &[EpochRef]) -> DfResult<Option<LogicalPlanBuilder>> {
        self.part_plan(Part::Rows(table), which)
    }

    /// A plan reading the stored `dora_metrics` rows of `grain` of the
    /// epochs `which`, or `None` if that is none.
    pub fn metrics_plan(&self, grain: Grain, which: &[EpochRef]) -> DfResult<Option<LogicalPlanBuilder>> {
        self.part_plan(Part::Metrics(grain), which)
    }

    fn part_plan(&self, part: Part, which: &[EpochRef]) -> DfResult<Option<LogicalPlanBuilder>> {
        let files: Vec<PathBuf> = self.part_files(part, which).into_iter().map(|(path, _)| path).collect();
        if files.is_empty() {
            return Ok(None);
        }
        let schema = part.schema();
        Ok(Some(parquet_plan(files, stored::stored_schema(&schema))?.project(stored::read_as(&schema))?))
    }

    /// The files holding `table` of the epochs `which`, with their checksums.
    pub fn table_files(&self, table: Table, which: &[EpochRef]) -> Vec<(PathBuf, Option<u64>)> {
        self.part_files(Part::Rows(table), which)
    }

    /// The files holding the `dora_metrics` rows of `grain` of the epochs `which`.
    pub fn metrics_files(&self, grain: Grain, which: &[EpochRef]) -> Vec<(PathBuf, Option<u64>)> {
        self.part_files(Part::Metrics(grain), which)
    }

    fn part_files(&self, part: Part, which: &[EpochRef]) -> Vec<(PathBuf, Option<u64>)> {
        let all: Vec<&Component> = self.manifest.components.values().collect();
        let epochs = which.iter().filter_map(|&(c, e)| all.get(c).and_then(|c| c.epochs.get(e)));
        epochs
            .map(|e| {
                let id = e.file(part);
                (published::file(&self.root, part, id), self.checksum(&component_file(part, id)))
            })
            .collect()
    }

    /// The rows of `table` as stored, every component's (`leadline check`
    /// compares them with a fold of the log).
    pub fn table_batches(&self, table: Table) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for c in self.manifest.components.values() {
            out.extend(self.read_component(Part::Rows(table), c)?);
        }
        Ok(out)
    }

    /// The rows of component `c`'s files of `part` (in SQL form).
    fn read_component(&self, part: Part, c: &Component) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for e in &c.epochs {
            out.extend(epoch_rows(&self.root, &self.manifest, part, e.file(part))?);
        }
        Ok(out)
    }

    /// What the manifest says the file it names `name` hashes to, if it says.
    pub fn checksum(&self, name: &str) -> Option<u64> {
        self.manifest.checksums.get(name).copied()
    }

    /// Every file the manifest names (absolute paths: segments, key runs,
    /// each component's files) with its name in the manifest, and the files
    /// under `model/` it does not name (left by an update that died, deleted
    /// by the next one).
    pub fn files(&self) -> (Vec<(PathBuf, String)>, Vec<PathBuf>) {
        let m = &self.manifest;
        let dir = self.root.join(DIR);
        let mut live: Vec<(PathBuf, String)> =
            m.segments.iter().flatten().chain(&m.key_runs).map(|f| (dir.join(f), f.clone())).collect();
        for e in m.components.values().flat_map(|c| &c.epochs) {
            live.extend(
                PARTS.map(|part| (published::file(&self.root, part, e.file(part)), component_file(part, e.file(part)))),
            );
            let tails = tails_file(&e.id);
            if m.checksums.contains_key(&tails) {
                live.push((dir.join(&tails), tails));
            }
        }
        // An unreadable directory's files are for the checks of the live files to find.
        let unnamed = unnamed_model_files(&dir, m, &grace::LetGo::read(&dir)).unwrap_or_default();
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
            rows.extend(self.read_component(Part::Metrics(grain), c)?);
            pairs.extend(c.pairs.iter().cloned());
            span = widen(span, c.span);
        }
        dora_metrics(&rows, &pairs, span, grain, from, to)
    }
}

impl Manifest {
    /// A new manifest that replaces `old` (rebuilt from scratch, or with
    /// another window): `old`'s components and garbage wait out the grace
    /// period like any other, for the queries and readers still on them.
    /// Its segments and key runs too: until the new manifest replaces it,
    /// the old one is the model, so a rebuild that dies half way must leave
    /// every file it names in place.
    fn replacing(old: Option<Manifest>, window: Option<i64>) -> Manifest {
        let mut m = Manifest { format: FORMAT, window, ..Manifest::default() };
        if let Some(old) = old {
            old.components.values().flat_map(Component::table_files).for_each(|f| m.retire(f));
            let tails = old.components.values().flat_map(Component::ids).map(tails_file);
            let tails: Vec<String> = tails.filter(|t| old.checksums.contains_key(t)).collect();
            old.segments.into_iter().flatten().chain(old.key_runs).chain(tails).for_each(|f| m.let_go(f));
        }
        m
    }

    /// The segments and key runs of the model now.
    fn live_files(&self) -> BTreeSet<String> {
        self.segments.iter().flatten().chain(&self.key_runs).cloned().collect()
    }

    /// Whether this binary reads it: of this format, with its tables there.
    fn usable(&self, root: &Path) -> bool {
        self.format == FORMAT && published::intact(root, &self.published)
    }

    /// Files under `model/` it names: segments and key runs, live or
    /// garbage, and its epochs' tails files (an epoch may have none; a gone
    /// epoch's are garbage).
    fn named_files(&self) -> BTreeSet<String> {
        let mut named: BTreeSet<String> = self.segments.iter().flatten().cloned().collect();
        named.extend(self.key_runs.iter().cloned());
        named.extend(self.garbage.iter().cloned());
        named.extend(self.components.values().flat_map(Component::ids).map(tails_file));
        named
    }

    /// Files of the published tables it names (see [`component_file`]):
    /// its epochs' and the retired.
    fn named_tables_files(&self) -> BTreeSet<String> {
        let own = self.components.values().flat_map(Component::table_files);
        own.chain(self.retired.iter().cloned()).collect()
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
        self.garbage.push(file);
    }

    fn retire(&mut self, table_file: String) {
        self.retired.push(table_file);
    }
}

/// Brings the read model of `snap` folded with `window` up to date (under
/// the model's lock, so one process updates it at a time and the others
/// wait for that), publishes it, and returns it. For writers only: the
/// appender after each append and `leadline rebuild` (`from_scratch`),
/// each keeping its `tables` between updates. A model already past `snap`
/// (another process appended since) is returned as it is.
pub fn catch_up(
    snap: &Snapshot,
    window: Option<i64>,
    from_scratch: bool,
    tables: &mut Publication,
) -> Result<ReadModel> {
    let tables_dir = snap.root.join(published::DIR);
    let manifest = match update(snap, window, from_scratch, tables) {
        // A damaged model is derived data: rebuilt from the log (which is
        // read whole and checked, so a damaged log fails this instead), and
        // said so.
        Err(Error::Damaged { path, problem, .. })
            if !from_scratch && (path.starts_with(snap.root.join(DIR)) || path.starts_with(&tables_dir)) =>
        {
            tracing::error!(path = %path.display(), problem, "the read model is damaged; rebuilding it from the log");
            // A published table whose commits are damaged is made again.
            if let Some(table) = path.strip_prefix(&tables_dir).ok().and_then(|r| r.components().next()) {
                let table = tables_dir.join(table);
                if path.starts_with(table.join(crate::log::delta::LOG_DIR)) {
                    remove(&table);
                    *tables = Publication::default();
                }
            }
            update(snap, window, true, tables)?
        }
        other => other?,
    };
    Ok(ReadModel { root: snap.root.clone(), manifest, index: Default::default() })
}

/// The manifest in `dir`: `None` when there is none, `Damaged` when it is
/// not what was written.
fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    read_manifest_after(dir, None)
}

/// [`read_manifest`] by the writer that wrote `last` (the manifest and its
/// bytes): when the file still holds those bytes, that manifest, without
/// parsing it again.
fn read_manifest_after(dir: &Path, last: Option<Written>) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    if let Some((written, m)) = last
        && written == bytes
    {
        return Ok(Some(Arc::unwrap_or_clone(m)));
    }
    let damaged = |problem: String| Error::damaged(&path, problem, MODEL_AFFECTS);
    let text = std::str::from_utf8(&bytes).map_err(|e| damaged(format!("not UTF-8 text ({e})")))?;
    let sealed = unseal(text).map_err(damaged)?;
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let format: Format = serde_json::from_str(text).map_err(|e| damaged(format!("not a manifest ({e})")))?;
    if !sealed && format.format >= 4 {
        return Err(damaged("carries no checksum".into()));
    }
    if format.format != FORMAT {
        // Another format's fields need not parse as this one's (format 7's
        // components hold epochs): only its format is read, which makes it
        // unusable, rebuilt by the next writer, and not damage.
        return Ok(Some(Manifest { format: format.format, ..Manifest::default() }));
    }
    let manifest: Manifest = serde_json::from_str(text).map_err(|e| damaged(format!("not a manifest ({e})")))?;
    Ok(Some(manifest))
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

fn update(snap: &Snapshot, window: Option<i64>, from_scratch: bool, tables: &mut Publication) -> Result<Arc<Manifest>> {
    let dir = snap.root.join(DIR);
    for sub in [""].into_iter().chain(SUBDIRS) {
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
    let (mut m, replaced) = match read_manifest_after(&dir, tables.written.take()) {
        Ok(Some(m)) if m.usable(&snap.root) && m.window == window && !from_scratch => (m, false),
        Err(e) if !from_scratch => return Err(e),
        old => (Manifest::replacing(old.ok().flatten().filter(|o| o.format == FORMAT), window), true),
    };
    if m.version >= snap.version {
        return Ok(Arc::new(m));
    }
    let refreshing = std::time::Instant::now();
    tables.refresh(&snap.root)?;
    let mut publishing = refreshing.elapsed();
    let mut let_go = tables.let_go.take().unwrap_or_else(|| grace::LetGo::read(&dir));
    let spares = tables.spares.get_or_insert_with(|| Arc::new(spares::Spares::open(&dir))).clone();
    // Deleted with the files this update lets go, at its end (one batch:
    // a second would wait for the first).
    let unnamed = if tables.in_line { Vec::new() } else { unnamed_files(&snap.root, &m, tables, &let_go)? };
    // Only what this update changes is checked against the tables and the
    // checksums when the last update left them in line with the model.
    let in_line = tables.in_line && !replaced;
    // An update that fails from here on may leave files behind.
    tables.in_line = false;
    let started = std::time::Instant::now();
    let through = snap.appends.iter().map(|a| a.ingested_at).max();
    let range = Ingested { after: m.ingested_through, through };

    // 1. Route the new events to a new segment of their service, keeping
    //    the keys of the ids they name.
    let mut numbers: HashMap<String, u32> = m.services.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
    // Each service's epoch starts (its component's): a new event goes to a
    // segment of its service and epoch.
    let mut cuts: Vec<Vec<i64>> = (0..m.services.len() as u32)
        .map(|s| {
            let c = m.components.get(&m.find(s));
            c.map(|c| c.epochs.iter().filter_map(|e| e.from).collect()).unwrap_or_default()
        })
        .collect();
    let mut writers: BTreeMap<(u32, Option<i64>), SegmentWriter> = BTreeMap::new();
    let mut new_keys: Vec<u64> = Vec::new();
    if m.version.is_none() {
        // About one key per event: reserve once rather than double a vector
        // of hundreds of MB.
        new_keys.reserve(snap.event_files.iter().map(|f| f.num_records as usize).sum::<usize>() * 9 / 8);
    }
    let mut new_events = 0u64;
    let mut buffered = 0usize;
    // A small append's events are remembered as its segments hold them (see `memo`).
    let mut remember = tables.memo.remembers_segments() && range.after.is_some();
    let mut route = |batch: Stamped| -> Result<()> {
        for (e, ingested_at) in batch.events.into_iter().zip(batch.ingested_at) {
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
                    cuts.push(Vec::new());
                    s
                }
            };
            entity_keys(&e, s, &mut new_keys);
            new_events += 1;
            let epoch = cuts[s as usize].iter().rev().find(|&&c| c <= e.occurred_at).copied();
            let w = match writers.entry((s, epoch)) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(SegmentWriter::create(&dir, s, remember, &spares)?)
                }
            };
            w.push(e, ingested_at);
            buffered += 1;
            if buffered >= ROUTE_BUDGET {
                // Not a small append: nothing to remember.
                remember = false;
                writers.values_mut().for_each(|w| w.kept = None);
                writers.values_mut().try_for_each(SegmentWriter::encode)?;
                buffered = 0;
            }
        }
        Ok(())
    };
    for f in &snap.event_files {
        if range.after.is_some_and(|after| f.ingested.is_some_and(|(_, hi)| hi <= after)) {
            // Its rows were all folded before: not even its footer is read.
            continue;
        }
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
    // The epochs (by their start) each service's new events went to.
    let mut touched: BTreeMap<u32, BTreeSet<Option<i64>>> = BTreeMap::new();
    // Every file this update writes, made durable together before the
    // manifest names it (see `sync_files`).
    let mut unsynced: Vec<PathBuf> = Vec::new();
    // Files this update wrote that no manifest has named yet: one it
    // replaces before the manifest is written no reader can have seen, so
    // it goes at once (never synced, never kept as garbage).
    let mut fresh: BTreeSet<String> = BTreeSet::new();
    let mut discarded: Vec<String> = Vec::new();
    // The published files this update wrote, by table and name.
    let mut added: HashMap<(String, String), crate::log::delta::AddFile> = HashMap::new();
    let mut routed_segments = memo::Learnt::default();
    // Each of the (small) segments of an append is encoded as it closes: on every core.
    let (starts, writers): (Vec<(u32, Option<i64>)>, Vec<SegmentWriter>) = writers.into_iter().unzip();
    let closed = in_parallel_owned(writers, cores(), SegmentWriter::finish)?;
    for ((s, epoch), SegmentFile { name, checksum, span, events }) in starts.into_iter().zip(closed) {
        touched.entry(s).or_default().insert(epoch);
        routed_segments.segments.extend(events.map(|events| (name.clone(), Arc::new(events))));
        unsynced.push(dir.join(&name));
        fresh.insert(name.clone());
        m.checksums.insert(name.clone(), checksum);
        m.spans.insert(name.clone(), span);
        m.segments[s as usize].push(name);
    }
    // Components as they were before the joins below.
    let old_roots: Vec<u32> = (0..m.services.len() as u32).map(|s| m.find(s)).collect();
    let routed = started.elapsed();

    // 2. Join the services that share an id, old or new.
    // Runs are named relative to `dir`, as the manifest names them.
    let mut joins = Vec::new();
    // Hashes of the ids the new events name that older events named too.
    let mut seen = std::collections::HashSet::new();
    keys::shared(&dir, &m.key_runs, &mut new_keys, &mut |a, b| joins.push((a, b)), &mut seen)?;
    joins.into_iter().for_each(|(a, b)| m.union(a, b));
    if !new_keys.is_empty() {
        let run = format!("keys/{}.keys", uuid::Uuid::new_v4());
        let checksum = keys::write_run(&dir.join(&run), new_keys.iter().copied())?;
        m.checksums.insert(run.clone(), checksum);
        m.key_runs.push(run);
    }
    drop(new_keys);
    if let Some(from) = keys::to_merge(&dir, &m.key_runs)? {
        let run = format!("keys/{}.keys", uuid::Uuid::new_v4());
        let checksum = keys::merge_runs(&dir, &m.key_runs[from..], &dir.join(&run))?;
        m.checksums.insert(run.clone(), checksum);
        for old in m.key_runs.split_off(from) {
            m.let_go(old);
        }
        m.key_runs.push(run);
    }

    // 3. Refold every component an event touched: the epochs the events
    //    land in when it is the component it was, whole when services
    //    joined it (see `epochs`).
    let affected: BTreeSet<u32> = touched.keys().map(|&s| m.find(s)).collect();
    let stale: Vec<u32> = m.components.keys().copied().filter(|&c| affected.contains(&m.find(c))).collect();
    let old_components: BTreeMap<u32, Component> =
        stale.into_iter().filter_map(|c| Some((c, m.components.remove(&c)?))).collect();
    let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for s in 0..m.services.len() as u32 {
        let root = m.find(s);
        if affected.contains(&root) {
            members.entry(root).or_default().push(s);
        }
    }
    let work: Vec<(u32, Vec<u32>, epochs::Plan)> = members
        .into_iter()
        .map(|(root, services)| {
            let was: BTreeSet<u32> = services.iter().map(|&s| old_roots[s as usize]).collect();
            let old = (was.len() == 1 && was.contains(&root)).then(|| old_components.get(&root)).flatten();
            let touched = services.iter().filter_map(|s| touched.get(s)).flatten().copied().collect();
            (root, services, epochs::Plan { old, touched, after: range.after, seen: &seen })
        })
        .collect();
    // Components fold independently: as many at a time as there are cores.
    tables.memo.learn(routed_segments);
    let memo = &tables.memo;
    let folded = in_parallel(&work, cores(), |(root, services, plan)| {
        epochs::fold_component(&snap.root, &m, memo, &spares, *root, services, plan)
    })?;
    let roots: Vec<u32> = work.iter().map(|(root, _, _)| *root).collect();
    drop(work);
    for (&root, folded) in roots.iter().zip(folded) {
        tables.memo.learn(folded.learnt);
        m.checksums.extend(folded.checksums);
        for (s, old, new) in folded.segments {
            m.segments[s as usize].retain(|seg| !old.contains(seg));
            for (name, span) in new {
                unsynced.push(dir.join(&name));
                m.spans.insert(name.clone(), span);
                m.segments[s as usize].push(name);
            }
            for seg in old {
                if fresh.remove(&seg) {
                    m.checksums.remove(&seg);
                    m.spans.remove(&seg);
                    discarded.push(seg);
                } else {
                    m.let_go(seg);
                }
            }
        }
        added.extend(folded.added.into_iter().map(|(part, add)| ((part.name(), add.path.clone()), add)));
        unsynced.extend(folded.written);
        m.components.insert(root, folded.component);
    }
    // Files no epoch names any more (refolded epochs' whose rows changed,
    // those of a component that another joined), and the tails of epochs
    // no component has any more. Only a refolded component can name an old
    // one's file (its own, see `Epoch::files`).
    let refolded = || roots.iter().filter_map(|root| m.components.get(root));
    let named: BTreeSet<String> = refolded().flat_map(Component::table_files).collect();
    let ids: BTreeSet<&str> = refolded().flat_map(Component::ids).collect();
    let gone_tails: Vec<String> = old_components
        .values()
        .flat_map(Component::ids)
        .filter(|id| !ids.contains(id))
        .map(tails_file)
        .filter(|t| m.checksums.contains_key(t))
        .collect();
    let gone: Vec<String> =
        old_components.values().flat_map(Component::table_files).filter(|f| !named.contains(f)).collect();
    gone.into_iter().for_each(|f| m.retire(f));
    gone_tails.into_iter().for_each(|t| m.let_go(t));
    tables.memo.forget(&discarded);
    let discarded: BTreeSet<PathBuf> = discarded.iter().map(|seg| dir.join(seg)).collect();
    unsynced.retain(|path| !discarded.contains(path));
    discarded.iter().for_each(|path| spares.give(path));
    // The directories' new entries with the files, all at once.
    unsynced.extend(SUBDIRS.map(|sub| dir.join(sub)));
    unsynced.extend(PARTS.map(|part| published::table_root(&snap.root, part)));
    sync_files(&unsynced)?;

    m.version = snap.version;
    m.ingested_through = through.or(m.ingested_through);
    for s in 0..m.parent.len() {
        m.parent[s] = m.find(s as u32);
    }

    // 4. Publish: each table's commit, then the snapshot naming them, then
    //    the manifest. A crash in between leaves tables a step ahead of the
    //    manifest, which the next update's commits bring back in line.
    let publish_started = std::time::Instant::now();
    let facts = serde_json::json!({"log_version": m.version, "ingested_through": m.ingested_through});
    // In line, the files of the components refolded and those let go are
    // all that can differ from the tables.
    let live_components: Vec<&Component> = if in_line {
        roots.iter().filter_map(|root| m.components.get(root)).collect()
    } else {
        m.components.values().collect()
    };
    let live = PARTS.map(|part| files_of(&live_components, part));
    let old: Vec<&Component> = old_components.values().collect();
    let scope = in_line.then(|| PARTS.map(|part| files_of(&old, part)));
    let unpublished = tables.publish(&snap.root, &live, scope.as_ref(), &facts, &added)?;
    drop((live, live_components, old));
    // Files of an update that crashed after its commits: readers saw them.
    // (Rare: the let-go list, which steady appends make long, is read only then.)
    if !unpublished.is_empty() {
        let mut listed: BTreeSet<String> = let_go.table_files().cloned().collect();
        listed.extend(m.retired.iter().cloned());
        let unpublished = unpublished.into_iter().map(|(part, id)| component_file(part, &id));
        unpublished.filter(|f| !listed.contains(f)).for_each(|f| m.retire(f));
    }
    m.published = tables.versions();
    published::write_snapshot(&snap.root, FORMAT, m.version, m.ingested_through, &m.published)?;
    publishing += publish_started.elapsed();

    forget_unnamed(&mut m, in_line);
    m.checksum = SEAL_PLACEHOLDER.into();
    let text = serde_json::to_string(&m).map_err(|e| Error::Internal(format!("read model manifest: {e}")))?;
    let sealed = seal(text).into_bytes();
    // Listed before the manifest that no longer names them is written.
    let (garbage, retired) = (std::mem::take(&mut m.garbage), std::mem::take(&mut m.retired));
    tables.memo.forget(garbage.iter().chain(&retired));
    let_go.add(&dir, garbage, retired)?;
    write_atomic(&dir.join(MANIFEST), &sealed)?;
    let expired = let_go.expire(&snap.root, &dir, || [m.named_files(), m.named_tables_files()])?;
    tables.deleter.delete(unnamed.into_iter().chain(expired).collect(), &spares);
    tables.memo.end_update();
    tracing::info!(
        new_events,
        components = affected.len(),
        of = m.components.len(),
        ?routed,
        ?publishing,
        total = ?started.elapsed(),
        "read model updated"
    );
    tables.in_line = true;
    tables.let_go = Some(let_go);
    let m = Arc::new(m);
    tables.written = Some((sealed, m.clone()));
    Ok(m)
}

/// Drops the checksums and spans of files `m` no longer names: when
/// `in_line`, those of the files it lets go (it named no others).
fn forget_unnamed(m: &mut Manifest, in_line: bool) {
    if in_line {
        for name in m.garbage.iter().chain(&m.retired) {
            m.checksums.remove(name);
            m.spans.remove(name);
        }
    }
    // In line, in debug builds only: a check that nothing else was left.
    if !in_line || cfg!(debug_assertions) {
        let live = m.live_files();
        let components: BTreeSet<String> =
            m.components.values().flat_map(|c| c.table_files().chain(c.ids().map(tails_file))).collect();
        let before = (m.checksums.len(), m.spans.len());
        m.checksums.retain(|name, _| live.contains(name) || components.contains(name));
        m.spans.retain(|name, _| live.contains(name));
        debug_assert!(!in_line || before == (m.checksums.len(), m.spans.len()), "an unnamed file's checksum was left");
    }
}

/// The ids of `components`' files in `part`'s table.
fn files_of<'a>(components: &[&'a Component], part: Part) -> BTreeSet<&'a str> {
    components.iter().flat_map(|c| &c.epochs).map(|e| e.file(part)).collect()
}

/// Keys of the ids `e` names ([`epochs::named`]); their kinds are kept apart.
fn entity_keys(e: &Event, service: u32, out: &mut Vec<u64>) {
    out.extend(epochs::named(e).map(|(kind, id, _)| keys::key(kind, id, service)));
}

/// The events of `services` (one component) in the model's input segments,
/// those in `range`, each segment checked against its checksum first.
fn component_events(dir: &Path, m: &Manifest, services: &[u32], range: Ingested) -> Result<Vec<Stamped>> {
    let mut out = Vec::with_capacity(services.len());
    for &s in services {
        let mut events = Stamped::default();
        for seg in &m.segments[s as usize] {
            let path = dir.join(seg);
            let bytes = read_checked(&path, m.checksums.get(seg).copied())?;
            read_stored_events_in(bytes, &path, MODEL_AFFECTS, range, segment::restore, &mut |batch| {
                events.extend(batch);
                Ok(())
            })?;
        }
        out.push(events);
    }
    Ok(out)
}

/// The rows (in SQL form) of file `id` of `part`'s table in data directory
/// `root`, read whole and checked against the checksum `m` names first.
fn epoch_rows(root: &Path, m: &Manifest, part: Part, id: &str) -> Result<Vec<RecordBatch>> {
    let path = published::file(root, part, id);
    let bytes = read_checked(&path, m.checksums.get(&component_file(part, id)).copied())?;
    let damaged = |e: &dyn std::fmt::Display| Error::damaged(&path, e, MODEL_AFFECTS);
    let batches = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(65_536).build())
        .map_err(|e| damaged(&e))?;
    batches.map(|b| stored::from_stored(&b.map_err(|e| damaged(&e))?, part.schema())).collect()
}

/// `batches` (at least one) as the bytes of a Parquet file of the stored
/// form, with their row count: encoded in memory so that an epoch whose
/// file would not change keeps the one it has (see `Epoch::files`).
fn encode_parquet(batches: &[RecordBatch]) -> Result<(Vec<u8>, u64)> {
    let batches = batches.iter().map(stored::to_stored).collect::<Result<Vec<_>>>()?;
    let schema = batches.first().map(RecordBatch::schema).ok_or_else(|| Error::Internal("no batch to write".into()))?;
    let mut w = ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), stored::options(&schema, 1 << 20, &[]))?;
    for batch in &batches {
        w.write(batch)?;
    }
    let num_records = batches.iter().map(|b| b.num_rows() as u64).sum();
    Ok((w.into_inner()?, num_records))
}

/// A new input segment of one service. A few hundred are open at once
/// while an append is routed, so each holds at most one row group, encoded.
struct SegmentWriter {
    name: String,
    path: PathBuf,
    writer: ArrowWriter<HashingFile>,
    rows: Stamped,
    /// Its events as read back ([`segment::as_read_back`]), when kept for
    /// the writer's [`memo::Memo`].
    kept: Option<Stamped>,
    /// The earliest and latest `occurred_at` written.
    span: Option<(i64, i64)>,
}

impl SegmentWriter {
    /// `remember`: it keeps its events, as read back, for the memo.
    fn create(dir: &Path, service: u32, remember: bool, spares: &spares::Spares) -> Result<Self> {
        let name = format!("input/s{service}-{}.parquet", uuid::Uuid::new_v4());
        let path = dir.join(&name);
        let file = spares.create(&path)?;
        let schema = segment::schema();
        let options = stored::options(&schema, SEGMENT_ROWS, &crate::log::files::PLAIN_COLUMNS);
        let writer = ArrowWriter::try_new_with_options(HashingFile::new(file), schema, options)
            .map_err(|e| written(&path, e))?;
        let kept = remember.then(Stamped::default);
        Ok(Self { name, path, writer, rows: Stamped::default(), kept, span: None })
    }

    /// Adds an event, held until the next [`SegmentWriter::encode`].
    fn push(&mut self, e: Event, ingested_at: i64) {
        let t = e.occurred_at;
        self.span = widen(self.span, Some((t, t)));
        self.rows.events.push(e);
        self.rows.ingested_at.push(ingested_at);
    }

    /// Encodes the events held as a row group.
    fn encode(&mut self) -> Result<()> {
        if !self.rows.events.is_empty() {
            let Stamped { events, ingested_at } = std::mem::take(&mut self.rows);
            let batch = segment::to_stored(&events_batch(&events, |i| ingested_at[i])?)?;
            self.writer.write(&batch).map_err(|e| written(&self.path, e))?;
            if let Some(kept) = &mut self.kept {
                kept.events.extend(events.into_iter().map(segment::as_read_back));
                kept.ingested_at.extend(ingested_at);
            }
        }
        Ok(())
    }

    /// Closes the segment (synced with the update's other files).
    fn finish(mut self) -> Result<SegmentFile> {
        self.encode()?;
        let (_file, checksum) = self.writer.into_inner().map_err(|e| written(&self.path, e))?.finish();
        Ok(SegmentFile { name: self.name, checksum, span: self.span.unwrap_or_default(), events: self.kept })
    }
}

/// An input segment written.
struct SegmentFile {
    name: String,
    checksum: u64,
    /// The earliest and latest `occurred_at` of its events ((0, 0) when none).
    span: (i64, i64),
    /// Its events as read back, when its writer kept them.
    events: Option<Stamped>,
}

/// What an update that did not finish left behind, to be deleted (found by
/// a writer's first update, and by the next after one that failed): files
/// under `model/input/`, `model/keys/` and `model/tails/` that the manifest
/// does not name, and
/// data files of the published tables that neither the manifest nor a
/// table's latest version names.
fn unnamed_files(root: &Path, m: &Manifest, tables: &Publication, let_go: &grace::LetGo) -> Result<Vec<PathBuf>> {
    let dir = root.join(DIR);
    remove_temp_files(&dir);
    // Where format 2 kept its components; no model reads them any more.
    let mut unnamed = vec![dir.join("out")];
    unnamed.extend(unnamed_model_files(&dir, m, let_go)?);
    let mut named = m.named_tables_files();
    named.extend(let_go.table_files().cloned());
    for part in PARTS {
        let live = tables.live_in(part);
        let d = published::table_root(root, part);
        for entry in read_dir(&d)? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let unnamed_id = |id: &&str| !live.contains(id) && !named.contains(&component_file(part, id));
            if published::component_of(&name).is_some_and(|id| unnamed_id(&id)) {
                unnamed.push(entry.path());
            }
        }
    }
    Ok(unnamed)
}

/// The files under model directory `dir`'s [`SUBDIRS`] that neither the
/// manifest nor the let-go list names.
fn unnamed_model_files(dir: &Path, m: &Manifest, let_go: &grace::LetGo) -> Result<Vec<PathBuf>> {
    let mut named = m.named_files();
    named.extend(let_go.model_files().cloned());
    let mut unnamed = Vec::new();
    for sub in SUBDIRS {
        for entry in read_dir(&dir.join(sub))? {
            if !named.contains(&format!("{sub}/{}", entry.file_name().to_string_lossy())) {
                unnamed.push(entry.path());
            }
        }
    }
    Ok(unnamed)
}

/// The entries of `dir`; none if it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, e)),
    }
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
    use crate::log::delta::DeltaTable;

    fn deploy(appender: &mut Appender, service: &str, n: u32) {
        let line = format!(
            r#"{{"event_id":"{service}-{n}","event_type":"deployment_succeeded","occurred_at":"2026-03-0{n}T10:00:00Z","service":"{service}","environment":"production","deployment_id":"{service}-{n}"}}"#
        );
        let rows = crate::input::ndjson_rows(std::io::Cursor::new(line.into_bytes()));
        assert_eq!(appender.append("test", rows, &mut |_| {}).unwrap().appended, 1);
    }

    fn manifest(root: &Path) -> Manifest {
        read_manifest(&root.join(DIR)).unwrap().unwrap()
    }

    /// The table files `m`'s epochs name (see [`component_file`]).
    fn table_files(m: &Manifest) -> BTreeSet<String> {
        m.components.values().flat_map(Component::table_files).collect()
    }

    /// Asserts that every table's latest version, and the version
    /// `_snapshot.json` names, hold exactly the files of `m`'s epochs.
    fn assert_published(root: &Path, m: &Manifest) {
        let text = std::fs::read_to_string(root.join("tables/_snapshot.json")).unwrap();
        let snapshot: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(snapshot["log_version"].as_u64(), m.version);
        for part in PARTS {
            let state = DeltaTable::new(published::table_root(root, part)).state().unwrap();
            let live: BTreeSet<String> =
                state.files.keys().map(|f| format!("{}/{}/{f}", published::DIR, part.name())).collect();
            let named: BTreeSet<String> = table_files(m)
                .into_iter()
                .filter(|f| f.starts_with(&format!("{}/{}/", published::DIR, part.name())))
                .collect();
            assert_eq!(live, named, "{}", part.name());
            // Each `add` says what its file holds (the writer's own count).
            for (name, add) in &state.files {
                let read = published::data_file(&published::table_root(root, part), name.clone()).unwrap();
                assert_eq!((add.size, add.num_records, add.checksum), (read.size, read.num_records, read.checksum));
            }
            assert_eq!(snapshot["tables"][part.name()].as_u64(), state.version, "{}", part.name());
            assert_eq!(m.published.get(&part.name()).copied(), state.version);
        }
    }

    /// Whether the let-go list of data directory `root` lists table file `f`.
    fn retired(root: &Path, f: &str) -> bool {
        grace::LetGo::read(&root.join(DIR)).table_files().any(|r| r == f)
    }

    #[test]
    fn each_update_publishes_the_model_and_keeps_what_readers_may_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().canonicalize().unwrap();
        let mut appender = Appender::open(root, "test").unwrap();
        deploy(&mut appender, "a", 1);
        deploy(&mut appender, "b", 1);
        let first = manifest(root);
        assert_eq!(first.components.len(), 2);
        assert_published(root, &first);

        // Only b's component is refolded: a's files stay; b's that changed
        // are retired (still on disk for pinned readers) and replaced.
        deploy(&mut appender, "b", 2);
        let second = manifest(root);
        assert_published(root, &second);
        let (kept, replaced): (Vec<_>, Vec<_>) =
            table_files(&first).into_iter().partition(|f| table_files(&second).contains(f));
        let a = first.components.values().next().unwrap();
        assert!(a.table_files().all(|f| kept.contains(&f)) && !replaced.is_empty(), "{replaced:?}");
        for f in &replaced {
            assert!(retired(root, f) && root.join(f).is_file(), "{f} waits out the grace period");
        }

        // A crash after the tables' commits but before the manifest's swap
        // (the old manifest back in place), and a stray file of a crashed
        // fold: the next update brings the tables in line with its model.
        let before = std::fs::read(root.join("model/MANIFEST.json")).unwrap();
        deploy(&mut appender, "a", 2);
        let crashed = table_files(&manifest(root));
        write_atomic(&root.join("model/MANIFEST.json"), &before).unwrap();
        let stray = published::file(root, PARTS[1], "c9-stray");
        std::fs::copy(root.join(kept.iter().find(|f| f.contains("/changes/")).unwrap()), &stray).unwrap();
        // The writer after the crash (a new process) sweeps first.
        drop(appender);
        let mut appender = Appender::open(root, "test").unwrap();
        deploy(&mut appender, "b", 3);
        // Its deletions run on a thread of their own; closing the writer waits for them.
        drop(appender);
        let mut appender = Appender::open(root, "test").unwrap();
        let third = manifest(root);
        assert_published(root, &third);
        assert!(!stray.exists(), "a file no version named is deleted");
        for f in crashed.difference(&table_files(&third)) {
            assert!(retired(root, f), "{f}: readers may have seen it");
            assert!(root.join(f).is_file());
        }

        // Tables deleted by hand: the model is not read (queries fold the
        // log) and the next update makes it again.
        std::fs::remove_dir_all(root.join("tables")).unwrap();
        assert!(ReadModel::open(root).unwrap().is_none());
        deploy(&mut appender, "a", 4);
        let third = manifest(root);
        assert_published(root, &third);
        assert!(ReadModel::open(root).unwrap().is_some());

        // A rebuild from scratch retires every old file too.
        appender.catch_up(true).unwrap();
        let rebuilt = manifest(root);
        assert_published(root, &rebuilt);
        assert!(table_files(&third).is_disjoint(&table_files(&rebuilt)));
        for f in table_files(&third) {
            assert!(retired(root, &f) && root.join(&f).is_file());
        }
    }

    #[test]
    fn an_append_rewrites_only_the_tables_whose_rows_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().canonicalize().unwrap();
        let mut appender = Appender::open(root, "test").unwrap();
        let append = |appender: &mut Appender, line: &str| {
            let rows = crate::input::ndjson_rows(std::io::Cursor::new(line.as_bytes().to_vec()));
            assert_eq!(appender.append("test", rows, &mut |_| {}).unwrap().appended, 1);
            manifest(root)
        };
        let tables = |files: &BTreeSet<String>| -> BTreeSet<String> {
            files.iter().map(|f| f.split('/').nth(1).unwrap().to_string()).collect()
        };
        deploy(&mut appender, "a", 3);
        let first = manifest(root);
        // A commit no deployment ships yet: no table's rows change, so no
        // file is written and no table gets a version.
        let commit = r#"{"event_id":"c1","event_type":"commit","occurred_at":"2026-03-04T09:00:00Z","service":"a","commit_sha":"abc1"}"#;
        let second = append(&mut appender, commit);
        assert_eq!(second.version, first.version.map(|v| v + 1));
        assert_eq!(table_files(&second), table_files(&first));
        assert_eq!(second.published, first.published);
        assert!(grace::LetGo::read(&root.join(DIR)).table_files().next().is_none());
        assert_published(root, &second);
        // Its deployment: every table but incidents changes.
        let shipped = r#"{"event_id":"d2","event_type":"deployment_succeeded","occurred_at":"2026-03-05T10:00:00Z","service":"a","environment":"production","deployment_id":"a-9","commit_sha":"abc1"}"#;
        let third = append(&mut appender, shipped);
        let replaced: BTreeSet<String> = table_files(&second).difference(&table_files(&third)).cloned().collect();
        let expected = ["changes", "deployments", "dora_metrics_day", "dora_metrics_month", "dora_metrics_week"];
        assert_eq!(tables(&replaced), expected.map(str::to_string).into());
        assert_eq!(third.published.get("incidents"), second.published.get("incidents"));
        assert!(replaced.iter().all(|f| retired(root, f) && root.join(f).is_file()));
        assert_published(root, &third);
        let model = ReadModel::open(root).unwrap().unwrap();
        let rows = |t: Table| model.table_batches(t).unwrap().iter().map(RecordBatch::num_rows).sum::<usize>();
        assert_eq!((rows(Table::Deployments), rows(Table::Changes), model.counts().events), (2, 1, 3));
    }

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

    #[test]
    fn a_rebuild_from_scratch_keeps_the_models_files_until_its_manifest_replaces_them() {
        // A rebuild killed half way must leave the manifest on disk whole:
        // every file it names still there.
        let dir = tempfile::tempdir().unwrap();
        let mut appender = worked(dir.path());
        let before = manifest(dir.path());
        // Its segments and key runs (tails go with their epochs' files).
        let mut named = before.named_files();
        named.retain(|f| !f.starts_with("tails/"));
        assert!(named.iter().any(|f| f.starts_with("input/")), "{named:?}");
        appender.catch_up(true).unwrap();
        let after = manifest(dir.path());
        let let_go = grace::LetGo::read(&dir.path().join(DIR));
        let garbage: BTreeSet<&String> = let_go.model_files().collect();
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
    fn a_model_of_an_older_format_is_not_read_and_is_rebuilt_without_being_called_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = worked(dir.path());
        let path = ReadModel::manifest_path(dir.path());
        let version = manifest(dir.path()).version;
        // Format 6 as an earlier release wrote it: one file id per component, no epochs.
        let mut old: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        old["format"] = (FORMAT - 1).into();
        for c in old["components"].as_object_mut().unwrap().values_mut() {
            let c = c.as_object_mut().unwrap();
            c.remove("epochs");
            c.insert("id".into(), "c0-older".into());
        }
        old["leadlineChecksum"] = SEAL_PLACEHOLDER.into();
        std::fs::write(&path, seal(old.to_string())).unwrap();
        assert!(ReadModel::open(dir.path()).unwrap().is_none());
        assert_eq!(appender.catch_up(false).unwrap(), version);
        assert_eq!(manifest(dir.path()).format, FORMAT);
        assert_eq!(ReadModel::open(dir.path()).unwrap().unwrap().version(), version);
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

    #[test]
    fn a_damaged_tails_file_is_named_and_the_model_rebuilt_by_the_next_update() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut appender = Appender::open(root, "test").unwrap();
        let lines = epochs::tests::days(&["a"], 0..56).join("\n");
        appender.append("t", input::ndjson_rows(std::io::Cursor::new(lines.into_bytes())), &mut |_| {}).unwrap();
        let m = manifest(root);
        // The tails of the epoch before the last: a fold of the last reads them.
        let epochs = &m.components.values().next().unwrap().epochs;
        let tails = tails_file(&epochs[epochs.len() - 2].id);
        assert!(m.checksums.contains_key(&tails), "the epoch keeps tails");
        std::fs::write(root.join(DIR).join(&tails), b"[[]]").unwrap();
        let model = ReadModel::open(root).unwrap().unwrap();
        let (live, unnamed) = model.files();
        assert!(live.iter().any(|(_, name)| *name == tails) && unnamed.is_empty());
        // An event in the last epoch: its fold reads the tails before it.
        let lines = epochs::tests::days(&["a"], 56..57).join("\n");
        let report = appender.append("t", input::ndjson_rows(std::io::Cursor::new(lines.into_bytes())), &mut |_| {});
        let model = ReadModel::open(root).unwrap().unwrap();
        assert_eq!(model.version(), report.unwrap().version);
        // Rebuilt from the log: no file is kept, the settled history's
        // neither (an append to the last epoch keeps it), and the damaged
        // file waits out the grace period with its epoch's.
        let after = manifest(root);
        assert!(table_files(&m).is_disjoint(&table_files(&after)), "the model was rebuilt");
        assert!(grace::LetGo::read(&root.join(DIR)).model_files().any(|f| *f == tails));
    }
}
