//! The read model published as Delta tables, so that notebooks (Polars,
//! DuckDB, pandas, the `deltalake` package) read what leadline derives
//! without running it:
//!
//! ```text
//! DIR/tables/_snapshot.json                   the tables' Delta versions of one model
//! DIR/tables/<table>/_delta_log/*.json        one commit per update that changed it
//! DIR/tables/<table>/<epoch>.parquet          one file per epoch of a component (shared by the
//!                                             next epoch of its start when its rows are the same)
//! ```
//!
//! `<table>` is one of `deployments`, `changes`, `incidents`,
//! `dora_metrics_day`, `dora_metrics_week`, `dora_metrics_month`. The files
//! are the model's own (leadline's queries read the same ones, through the
//! manifest): each update writes the files of the epochs it refolded whose
//! rows changed, then commits each table whose files changed (the replaced
//! files removed, the new ones added), then names the new versions in
//! `_snapshot.json`, then swaps the manifest. Removed files stay for the
//! grace period, so a reader pinned to a recent snapshot keeps reading it.
//!
//! Durations are stored as µs (`<name>_us`, see [`stored`](super::stored));
//! the metric tables hold only the buckets with something in them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use leadline_udfs::Grain;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Serialize;
use serde_json::Value;

use super::stored;
use crate::error::{Error, Result};
use crate::log::delta::{AddFile, DeltaTable, TableState, add_action, commit_info, remove_action, write_atomic};
use crate::log::files::hash_file;
use crate::metrics::dora_metrics_schema;
use crate::parallel::in_parallel;
use crate::project::tables::Table;

pub const DIR: &str = "tables";
const SNAPSHOT: &str = "_snapshot.json";

/// What the model keeps per component: one file in each published table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    Rows(Table),
    Metrics(Grain),
}

pub const PARTS: [Part; 6] = [
    Part::Rows(Table::Deployments),
    Part::Rows(Table::Changes),
    Part::Rows(Table::Incidents),
    Part::Metrics(Grain::Day),
    Part::Metrics(Grain::Week),
    Part::Metrics(Grain::Month),
];

impl Part {
    /// The published table's name (its directory under `tables/`).
    pub fn name(self) -> String {
        match self {
            Part::Rows(t) => t.name().to_string(),
            Part::Metrics(g) => format!("dora_metrics_{g}"),
        }
    }

    /// Its place in [`PARTS`].
    pub fn index(self) -> usize {
        PARTS.iter().position(|&p| p == self).unwrap_or_default()
    }

    /// The schema as SQL reads it (intervals, not µs).
    pub fn schema(self) -> SchemaRef {
        match self {
            Part::Rows(t) => t.schema(),
            Part::Metrics(_) => dora_metrics_schema(),
        }
    }
}

/// The directory of `part`'s table.
pub fn table_root(root: &Path, part: Part) -> PathBuf {
    root.join(DIR).join(part.name())
}

/// The file `id` (an epoch's, see `Epoch::files`) in `part`'s table.
pub fn file(root: &Path, part: Part, id: &str) -> PathBuf {
    table_root(root, part).join(file_name(id))
}

pub(super) fn file_name(id: &str) -> String {
    format!("{id}.parquet")
}

/// The id of a data file (see [`file`]).
pub fn component_of(file_name: &str) -> Option<&str> {
    file_name.strip_suffix(".parquet")
}

/// `_snapshot.json`: one consistent model, as the versions of its tables.
#[derive(Debug, Serialize)]
struct SnapshotFile<'a> {
    /// The read model's format (bumped when the layout changes meaning).
    format: u32,
    /// The version of the `events` table the tables were folded from.
    log_version: Option<u64>,
    /// The greatest `ingested_at` folded, RFC 3339.
    ingested_through: Option<String>,
    /// Per table, the Delta version holding this model.
    tables: &'a BTreeMap<String, u64>,
}

/// The published tables as the writer last saw them. Kept by the one
/// writer across updates and refreshed incrementally, so an update reads
/// only the commits it has not seen.
#[derive(Debug, Default)]
pub struct Publication {
    states: Vec<TableState>,
    /// Whether the writer's last update finished: then every file under the
    /// model and the tables is one the model or a table names, the tables
    /// hold the model's files, and the manifest's checksums are of files it
    /// names, so the next update checks only what it changes. False for a
    /// new writer (another may have died mid-update) and during an update.
    pub(super) in_line: bool,
    /// The manifest the writer wrote last, which its next update reads
    /// without parsing it when the file is still that one.
    pub(super) written: Option<super::Written>,
    /// The let-go list as the writer's last update left it.
    pub(super) let_go: Option<super::grace::LetGo>,
    /// What the writer's updates keep from one to the next.
    pub(super) memo: super::memo::Memo,
    /// Deletes the files the updates let go.
    pub(super) deleter: super::grace::Deleter,
    /// Keeps them for the updates' new files (opened by the first update).
    pub(super) spares: Option<std::sync::Arc<super::spares::Spares>>,
}

impl Publication {
    /// Creates the tables that are missing and reads their new commits.
    /// Call only under the model's lock.
    pub fn refresh(&mut self, root: &Path) -> Result<()> {
        self.states.resize_with(PARTS.len(), TableState::default);
        for (part, state) in PARTS.into_iter().zip(&mut self.states) {
            let table = DeltaTable::new(table_root(root, part));
            if state.version.is_some_and(|v| !table.has_version(v)) {
                // The table was deleted since: start it again.
                *state = TableState::default();
            }
            table.create_if_missing(&stored::stored_schema(&part.schema()), &[])?;
            table.refresh(state)?;
        }
        Ok(())
    }

    /// The files (by id) the latest version of `part`'s table names (a
    /// reader of the latest version may be reading them).
    pub fn live_in(&self, part: Part) -> BTreeSet<&str> {
        let state = self.states.get(part.index());
        state.into_iter().flat_map(|s| s.files.keys()).filter_map(|f| component_of(f)).collect()
    }

    /// Commits, in each table whose files differ from the model's, one
    /// version that removes the files the model no longer names and adds
    /// its new ones. `live`: per table (in [`PARTS`] order), ids of files
    /// the model names; `scope`: the ids whose files may have changed since
    /// this writer's last update (those the components it refolded had;
    /// `live` then names those they have now), or `None` to compare every
    /// file the tables name with `live`, which then names all of the model's.
    /// `added`, by table and file name: the `add`s of the files this update
    /// wrote (any other is read for its own). `facts` go in each commit's
    /// `commitInfo`. Returns the files it removed, by table.
    pub fn publish(
        &mut self,
        root: &Path,
        live: &[BTreeSet<&str>; PARTS.len()],
        scope: Option<&[BTreeSet<&str>; PARTS.len()]>,
        facts: &Value,
        added: &HashMap<(String, String), AddFile>,
    ) -> Result<Vec<(Part, String)>> {
        // The tables are independent: their commits (each a file and a
        // directory made durable, after hashing the new data files) are
        // made at once rather than one after another.
        let tables: Vec<(Part, &TableState, &BTreeSet<&str>)> =
            PARTS.into_iter().zip(&self.states).zip(live).map(|((p, s), l)| (p, s, l)).collect();
        let committed = in_parallel(&tables, PARTS.len(), |&(part, state, live)| {
            let table = DeltaTable::new(table_root(root, part));
            let mut actions = Vec::new();
            let mut removed = Vec::new();
            let named: Vec<&AddFile> = match scope {
                None => state.files.values().collect(),
                Some(scope) => scope[part.index()].iter().filter_map(|id| state.files.get(&file_name(id))).collect(),
            };
            for f in named {
                if let Some(id) = component_of(&f.path).filter(|id| !live.contains(id)) {
                    actions.push(remove_action(f, true));
                    removed.push((part, id.to_string()));
                }
            }
            for id in live {
                let name = file_name(id);
                if !state.files.contains_key(&name) {
                    let add = match added.get(&(part.name(), name)) {
                        Some(add) => add.clone(),
                        None => data_file(table.root(), file_name(id))?,
                    };
                    actions.push(add_action(&add));
                }
            }
            if actions.is_empty() {
                return Ok(None);
            }
            actions.push(commit_info("WRITE", facts.clone()));
            table.commit(state.version.map_or(0, |v| v + 1), &actions)?;
            Ok(Some((table, removed)))
        })?;
        let mut removed = Vec::new();
        for (state, committed) in self.states.iter_mut().zip(committed) {
            if let Some((table, gone)) = committed {
                table.refresh(state)?;
                table.checkpoint_if_due(state);
                removed.extend(gone);
            }
        }
        Ok(removed)
    }

    /// Each table's latest version.
    pub fn versions(&self) -> BTreeMap<String, u64> {
        PARTS.into_iter().zip(&self.states).filter_map(|(p, s)| Some((p.name(), s.version?))).collect()
    }
}

/// Whether every table still has the version `versions` names: a model
/// whose tables were deleted is not read, and is made again.
pub fn intact(root: &Path, versions: &BTreeMap<String, u64>) -> bool {
    PARTS
        .into_iter()
        .all(|part| versions.get(&part.name()).is_some_and(|&v| DeltaTable::new(table_root(root, part)).has_version(v)))
}

/// An `add` for a data file already written (size, checksum and row count
/// from the file).
pub(super) fn data_file(table_root: &Path, name: String) -> Result<AddFile> {
    let path = table_root.join(&name);
    let (size, checksum) = hash_file(&path).map_err(|e| Error::io(&path, e))?;
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let num_records = SerializedFileReader::new(file)?.metadata().file_metadata().num_rows() as u64;
    Ok(add_of(name, size, num_records, checksum))
}

/// The `add` of a published table's data file `name` (the tables are not
/// partitioned).
pub(super) fn add_of(name: String, size: u64, num_records: u64, checksum: u64) -> AddFile {
    AddFile {
        path: name,
        partition_values: BTreeMap::new(),
        size,
        num_records,
        checksum: Some(checksum),
        ingested: None,
    }
}

/// Replaces `tables/_snapshot.json`, atomically.
pub fn write_snapshot(
    root: &Path,
    format: u32,
    log_version: Option<u64>,
    ingested_through: Option<i64>,
    tables: &BTreeMap<String, u64>,
) -> Result<()> {
    let ingested_through = ingested_through
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let snapshot = SnapshotFile { format, log_version, ingested_through, tables };
    let bytes = serde_json::to_vec_pretty(&snapshot).map_err(|e| Error::Corrupt(format!("tables snapshot: {e}")))?;
    write_atomic(&root.join(DIR).join(SNAPSHOT), &bytes)
}
