//! Views: named queries over a session's tables, planned by DataFusion each
//! time a statement names them (so a view over `dora_metrics` reads the
//! statement's pinned snapshot and settings, and a replaced inner view is
//! seen at once).
//!
//! ```text
//! DIR/views/LOCK            one writer of the views at a time (briefly)
//! DIR/views/<name>.json     one durable view: its SQL and column names
//! ```
//!
//! Durable views are saved one file each, written atomically (temp file,
//! fsync, rename, fsync of the directory), so a crash leaves a view whole or
//! absent and writers of different views never touch each other's file. A
//! writer holds `views/LOCK` only to check the name and write the file: it
//! never needs the log's writer lock, so `leadline ingest` can run
//! meanwhile. Readers take no lock; every statement lists the directory and
//! rereads only files that changed. A file that does not parse makes its view
//! fail when used, with the file and the reason, and nothing else.
//!
//! Temporary views live in one session and shadow durable views of the same
//! name, as PostgreSQL's `pg_temp` schema comes first in the search path.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, plan_err};
use datafusion::datasource::ViewTable;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use serde::{Deserialize, Serialize};

use crate::error::{Error, RelationProblem, Result};
use crate::log::delta::{SEAL_KEY, SEAL_PLACEHOLDER, create_dir_durable, seal, sync_dir, unseal, write_atomic};
use crate::log::lock::WriterLock;

/// PostgreSQL's longest identifier, in bytes.
const MAX_NAME_BYTES: usize = 63;
/// How long a view's writer waits for another one to finish.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);
/// Views nested deeper than this are taken to be defined over themselves.
const MAX_NESTING: usize = 64;

/// What a view is: the query (PostgreSQL's dialect) and the names given to
/// its first columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ViewDefinition {
    /// Unique among the data directory's durable views, kept by
    /// `CREATE OR REPLACE` (the server derives the view's OID from it).
    pub id: u32,
    pub sql: String,
    #[serde(default)]
    pub columns: Vec<String>,
}

/// A view as read from its file: its definition, or why it cannot be read.
type Stored = std::result::Result<Arc<ViewDefinition>, String>;

/// The durable views by name, as one listing of the directory found them.
pub(super) type StoredViews = BTreeMap<String, Stored>;

/// A view as the server lists it in its catalog.
#[derive(Debug, Clone)]
pub struct ViewInfo {
    pub name: String,
    /// Unique among durable views; temporary views count down from `u32::MAX`.
    pub id: u32,
    /// The query, as stored.
    pub definition: String,
    pub temporary: bool,
    /// The columns, or `None` when the view cannot be planned now.
    pub schema: Option<SchemaRef>,
}

/// The durable views of a data directory (`DIR/views/`).
#[derive(Debug)]
pub(super) struct ViewStore {
    dir: PathBuf,
    listed: Mutex<Listing>,
}

/// The last listing: each file's stamp and contents, and the views they make.
#[derive(Debug, Default)]
struct Listing {
    files: BTreeMap<String, (FileStamp, Stored)>,
    views: Arc<StoredViews>,
}

/// What tells a replaced file from the one read before: files are only ever
/// replaced by a rename, which gives them a new inode.
#[derive(Debug, Clone, PartialEq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp { inode, len: meta.len(), modified: meta.modified().ok() }
    }
}

impl ViewStore {
    pub(super) fn new(data_dir: &Path) -> Self {
        ViewStore { dir: data_dir.join("views"), listed: Mutex::new(Listing::default()) }
    }

    /// The durable views now. The same `Arc` as last time if no file changed.
    pub(super) fn list(&self) -> Result<Arc<StoredViews>> {
        let mut stamps = BTreeMap::new();
        match fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
                    let file = entry.file_name().to_string_lossy().into_owned();
                    if view_name(&file).is_none() {
                        continue;
                    }
                    match entry.metadata() {
                        Ok(meta) => {
                            stamps.insert(file, FileStamp::of(&meta));
                        }
                        // Dropped since the directory was read.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io(&entry.path(), e)),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&self.dir, e)),
        }
        let mut listed = self.listed.lock().map_err(|_| Error::Internal("view listing poisoned".into()))?;
        let unchanged = listed.files.len() == stamps.len()
            && listed.files.iter().zip(&stamps).all(|((f, (s, _)), (g, t))| f == g && s == t);
        if unchanged {
            return Ok(listed.views.clone());
        }
        let mut files = BTreeMap::new();
        for (file, stamp) in stamps {
            let stored = match listed.files.remove(&file) {
                Some((old, stored)) if old == stamp => stored,
                _ => match read_definition(&self.dir.join(&file)) {
                    Some(stored) => stored,
                    None => continue,
                },
            };
            files.insert(file, (stamp, stored));
        }
        let views = files
            .iter()
            .filter_map(|(file, (_, stored))| Some((view_name(file)?, stored.clone())))
            .collect::<StoredViews>();
        *listed = Listing { files, views: Arc::new(views) };
        Ok(listed.views.clone())
    }

    /// Saves the view `name`; an existing one is replaced only if `or_replace`.
    pub(super) fn save(&self, name: &str, sql: &str, columns: &[String], or_replace: bool) -> Result<()> {
        create_dir_durable(&self.dir)?;
        let _lock = self.lock()?;
        let path = self.dir.join(file_name(name));
        let id = match read_definition(&path) {
            Some(_) if !or_replace => return Err(already_exists(name)),
            Some(Ok(old)) => old.id,
            // A damaged file's id is unknown: take a new one.
            Some(Err(_)) | None => self.next_id()?,
        };
        let definition = ViewDefinition { id, sql: sql.to_string(), columns: columns.to_vec() };
        let mut value = serde_json::to_value(&definition).map_err(|e| Error::Internal(e.to_string()))?;
        // Sealed, so that a damaged file is found instead of read as another query.
        value[SEAL_KEY] = serde_json::json!(SEAL_PLACEHOLDER);
        write_atomic(&path, seal(value.to_string()).as_bytes())
    }

    /// Removes the view `name`; `false` if there was none.
    pub(super) fn remove(&self, name: &str) -> Result<bool> {
        if !self.dir.is_dir() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        let path = self.dir.join(file_name(name));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(&path, e)),
        }
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Renames the view `from` to `to` (one atomic rename of its file).
    pub(super) fn rename(&self, from: &str, to: &str) -> Result<()> {
        if !self.dir.is_dir() {
            return Err(does_not_exist(from));
        }
        let _lock = self.lock()?;
        let (source, target) = (self.dir.join(file_name(from)), self.dir.join(file_name(to)));
        if target.exists() {
            return Err(already_exists(to));
        }
        match fs::rename(&source, &target) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(does_not_exist(from)),
            Err(e) => Err(Error::io(&source, e)),
        }
    }

    /// One past the highest id in use. Call it holding the lock.
    fn next_id(&self) -> Result<u32> {
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut highest = 0;
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if view_name(&file).is_some()
                && let Some(Ok(d)) = read_definition(&entry.path())
            {
                highest = highest.max(d.id);
            }
        }
        highest.checked_add(1).ok_or_else(|| Error::Limit("no view ids left".into()))
    }

    fn lock(&self) -> Result<WriterLock> {
        let holder = "saving a view";
        WriterLock::acquire_file(&self.dir.join("LOCK"), holder, LOCK_PATIENCE)?
            .map_err(|holder| Error::Locked { dir: self.dir.clone(), holder })
    }
}

/// The view in the file at `path`; `None` if there is no such file.
fn read_definition(path: &Path) -> Option<Stored> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("{}: {e}", path.display()))),
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => return Some(Err(format!("{}: not UTF-8 text ({e})", path.display()))),
    };
    if let Err(problem) = unseal(text) {
        return Some(Err(format!("{}: {problem}", path.display())));
    }
    Some(serde_json::from_str::<ViewDefinition>(text).map(Arc::new).map_err(|e| format!("{}: {e}", path.display())))
}

/// Every durable view file of the data directory `data_dir` that cannot be
/// read, and why (for `leadline check`).
pub(crate) fn damaged_view_files(data_dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let dir = data_dir.join("views");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut damaged = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&dir, e))?.path();
        let named = path.file_name().and_then(|f| view_name(&f.to_string_lossy()));
        if let (Some(_), Some(Err(why))) = (named, read_definition(&path)) {
            let prefix = format!("{}: ", path.display());
            damaged.push((path, why.strip_prefix(&prefix).unwrap_or(&why).to_string()));
        }
    }
    Ok(damaged)
}

/// The file of view `name`: lower-case letters, digits and `_` as they are,
/// every other byte as `%XX`, so that any name is a portable file name and
/// names differing only in case never share a file.
fn file_name(name: &str) -> String {
    let mut file = String::with_capacity(name.len() + 5);
    for b in name.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' {
            file.push(b as char);
        } else {
            file.push_str(&format!("%{b:02X}"));
        }
    }
    file + ".json"
}

/// The view a file holds, from its name; `None` for other files.
fn view_name(file: &str) -> Option<String> {
    let encoded = file.strip_suffix(".json")?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok().filter(|n| !n.is_empty() && file_name(n) == file)
}

fn already_exists(name: &str) -> Error {
    Error::relation(RelationProblem::Exists, format!("relation \"{name}\" already exists"))
}

fn does_not_exist(name: &str) -> Error {
    Error::relation(RelationProblem::Missing, format!("view \"{name}\" does not exist"))
}

/// One session's views: its temporary ones and the durable ones as of its
/// last refresh. It holds the session's context to plan them with; the
/// context's schema reaches it only through a [`Weak`], so neither keeps
/// the other alive.
pub(super) struct SessionViews {
    ctx: SessionContext,
    /// The session's tables (and the server's catalog tables).
    tables: Arc<dyn SchemaProvider>,
    durable: RwLock<Arc<StoredViews>>,
    temporary: Mutex<BTreeMap<String, Arc<ViewDefinition>>>,
    next_temporary_id: AtomicU32,
    /// Changes whenever the views this session sees change.
    version: AtomicU64,
    /// Views being planned now, one inside another.
    nesting: AtomicUsize,
}

impl std::fmt::Debug for SessionViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionViews").field("version", &self.version()).finish_non_exhaustive()
    }
}

impl SessionViews {
    /// The views of the session `ctx`, reached by name through its default
    /// schema (which this wraps, so that tables registered later go to it).
    pub(super) fn install(ctx: &SessionContext, durable: Arc<StoredViews>) -> DfResult<Arc<SessionViews>> {
        let state = ctx.state();
        let options = &state.config_options().catalog;
        let catalog = ctx
            .catalog(&options.default_catalog)
            .ok_or_else(|| DataFusionError::Internal("the session has no default catalog".into()))?;
        let tables = catalog
            .schema(&options.default_schema)
            .ok_or_else(|| DataFusionError::Internal("the session has no default schema".into()))?;
        let views = Arc::new(SessionViews {
            ctx: ctx.clone(),
            tables: tables.clone(),
            durable: RwLock::new(durable),
            temporary: Mutex::new(BTreeMap::new()),
            next_temporary_id: AtomicU32::new(u32::MAX),
            version: AtomicU64::new(0),
            nesting: AtomicUsize::new(0),
        });
        catalog
            .register_schema(&options.default_schema, Arc::new(ViewSchema { tables, views: Arc::downgrade(&views) }))?;
        Ok(views)
    }

    pub(super) fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Takes the durable views of a new listing.
    pub(super) fn set_durable(&self, listed: Arc<StoredViews>) {
        let mut durable = self.durable.write().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&durable, &listed) {
            *durable = listed;
            self.version.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn temporary(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<ViewDefinition>>> {
        self.temporary.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The view `name` as this session sees it: temporary first.
    fn lookup(&self, name: &str) -> Option<(Stored, bool)> {
        if let Some(t) = self.temporary().get(name) {
            return Some((Ok(t.clone()), true));
        }
        let durable = self.durable.read().unwrap_or_else(|p| p.into_inner());
        durable.get(name).map(|d| (d.clone(), false))
    }

    /// Whether `name` is a table or a table function (which views may not shadow).
    pub(super) fn is_table(&self, name: &str) -> bool {
        self.tables.table_exist(name) || self.ctx.state().table_functions().contains_key(name)
    }

    /// The view `name` planned for the statement being planned now, or
    /// `None` if there is no such view.
    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some((stored, _)) = self.lookup(name) else { return Ok(None) };
        let unusable = |e: DataFusionError| e.context(format!("view \"{name}\" cannot be used"));
        let definition = stored.map_err(|damage| unusable(Error::Corrupt(damage).into()))?;
        let plan = self.plan(&definition.sql, &definition.columns).await.map_err(unusable)?;
        Ok(Some(Arc::new(ViewTable::new(plan, Some(definition.sql.clone())))))
    }

    /// Plans a view's query and names its columns.
    async fn plan(&self, sql: &str, columns: &[String]) -> DfResult<LogicalPlan> {
        let _nested = Nesting::enter(&self.nesting)?;
        let state = self.ctx.state();
        let plan = state.statement_to_plan(parse_query(sql)?).await?;
        name_columns(plan, columns)
    }

    /// Creates (or replaces) the view `name` after planning it here: a view
    /// over a missing table, or whose query does not plan, is refused now.
    pub(super) async fn check_definition(&self, name: &str, sql: &str, columns: &[String]) -> Result<()> {
        if name.is_empty() {
            return Err(Error::Input("a view needs a name".into()));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(Error::Limit(format!("view names are at most {MAX_NAME_BYTES} bytes: \"{name}\"")));
        }
        if self.is_table(name) {
            return Err(already_exists(name));
        }
        self.plan(sql, columns).await?;
        let mut seen = HashSet::new();
        if self.reaches(name, sql, &mut seen) {
            return Err(Error::relation(
                RelationProblem::Recursive,
                format!("view \"{name}\" would be defined over itself"),
            ));
        }
        Ok(())
    }

    /// Whether the query `sql` reads the view `target`, through any views.
    fn reaches(&self, target: &str, sql: &str, seen: &mut HashSet<String>) -> bool {
        let Ok(statement) = parse_query(sql) else { return false };
        let Ok(references) = self.ctx.state().resolve_table_references(&statement) else { return false };
        references.iter().map(|r| r.table().to_string()).any(|name| {
            if name == target {
                return true;
            }
            if !seen.insert(name.clone()) || self.is_table(&name) {
                return false;
            }
            match self.lookup(&name) {
                Some((Ok(inner), _)) => self.reaches(target, &inner.sql, seen),
                _ => false,
            }
        })
    }

    pub(super) fn save_temporary(&self, name: &str, sql: &str, columns: &[String], or_replace: bool) -> Result<()> {
        let mut temporary = self.temporary();
        let id = match temporary.get(name) {
            Some(_) if !or_replace => return Err(already_exists(name)),
            Some(old) => old.id,
            None => self.next_temporary_id.fetch_sub(1, Ordering::SeqCst),
        };
        temporary.insert(name.to_string(), Arc::new(ViewDefinition { id, sql: sql.into(), columns: columns.to_vec() }));
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Drops the temporary view `name`; `false` if there is none.
    pub(super) fn remove_temporary(&self, name: &str) -> bool {
        let dropped = self.temporary().remove(name).is_some();
        if dropped {
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        dropped
    }

    /// Renames the temporary view `from`; `false` if there is none.
    pub(super) fn rename_temporary(&self, from: &str, to: &str) -> Result<bool> {
        let mut temporary = self.temporary();
        if !temporary.contains_key(from) {
            return Ok(false);
        }
        if temporary.contains_key(to) {
            return Err(already_exists(to));
        }
        if let Some(view) = temporary.remove(from) {
            temporary.insert(to.to_string(), view);
        }
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// Every view this session sees, planned now for its columns.
    pub(super) async fn list(&self) -> Vec<ViewInfo> {
        let durable = self.durable.read().unwrap_or_else(|p| p.into_inner()).clone();
        let temporary = self.temporary().clone();
        let mut names: Vec<&String> = durable.keys().filter(|n| !temporary.contains_key(*n)).collect();
        names.extend(temporary.keys());
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let (stored, temporary) = match temporary.get(name) {
                Some(t) => (Ok(t.clone()), true),
                None => (durable.get(name).cloned().unwrap_or_else(|| Err(String::new())), false),
            };
            let Ok(definition) = stored else {
                // A damaged file: listed without columns under an id of its own.
                out.push(ViewInfo { name: name.clone(), id: 0, definition: String::new(), temporary, schema: None });
                continue;
            };
            let schema = match self.plan(&definition.sql, &definition.columns).await {
                Ok(plan) => Some(Arc::new(plan.schema().as_arrow().clone())),
                Err(e) => {
                    tracing::debug!(view = %name, "cannot be planned: {e}");
                    None
                }
            };
            out.push(ViewInfo {
                name: name.clone(),
                id: definition.id,
                definition: definition.sql.clone(),
                temporary,
                schema,
            });
        }
        out
    }
}

/// A view's query, parsed: exactly one query, in PostgreSQL's dialect.
fn parse_query(sql: &str) -> DfResult<DfStatement> {
    let mut statements = DFParserBuilder::new(sql).with_dialect(&PostgreSqlDialect {}).build()?.parse_statements()?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(s @ DfStatement::Statement(_)), true) if matches!(&s, DfStatement::Statement(q) if matches!(**q, Statement::Query(_))) => {
            Ok(s)
        }
        _ => plan_err!("a view is defined by one query (SELECT, VALUES, WITH …)"),
    }
}

/// Names the first columns of `plan` as `columns` says, as `CREATE VIEW
/// v (a, b)` does.
fn name_columns(plan: LogicalPlan, columns: &[String]) -> DfResult<LogicalPlan> {
    if columns.is_empty() {
        return Ok(plan);
    }
    let existing = plan.schema().columns();
    if columns.len() > existing.len() {
        return plan_err!("CREATE VIEW specifies more column names than columns");
    }
    let exprs = existing.into_iter().enumerate().map(|(i, c)| match columns.get(i) {
        Some(name) => Expr::Column(c).alias(name),
        None => Expr::Column(c),
    });
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// Counts views planned one inside another while it lives.
struct Nesting<'a>(&'a AtomicUsize);

impl<'a> Nesting<'a> {
    fn enter(depth: &'a AtomicUsize) -> DfResult<Self> {
        let nesting = Nesting(depth);
        if depth.fetch_add(1, Ordering::SeqCst) >= MAX_NESTING {
            return plan_err!("views nest more than {MAX_NESTING} deep: is one defined over itself?");
        }
        Ok(nesting)
    }
}

impl Drop for Nesting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A session's default schema: its tables, and by name its views.
#[derive(Debug)]
struct ViewSchema {
    tables: Arc<dyn SchemaProvider>,
    views: Weak<SessionViews>,
}

#[async_trait]
impl SchemaProvider for ViewSchema {
    /// The tables only: views are listed by [`SessionViews::list`].
    fn table_names(&self) -> Vec<String> {
        self.tables.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.tables.table(name).await? {
            return Ok(Some(table));
        }
        match self.views.upgrade() {
            Some(views) => views.table(name).await,
            None => Ok(None),
        }
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.tables.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.tables.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.table_exist(name) || self.views.upgrade().is_some_and(|v| v.lookup(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::{text, worked};
    use crate::catalog::{Catalog, MemoryLimits, ReadSession, session_config};

    const WEEKLY: &str = "SELECT service, bucket_start, deployments FROM dora_metrics('week')";

    fn session(dir: &Path) -> ReadSession {
        Catalog::open(dir, MemoryLimits::default()).unwrap().session(session_config()).unwrap()
    }

    fn problem(e: Error) -> RelationProblem {
        match e {
            Error::Relation { problem, .. } => problem,
            other => panic!("not a relation error: {other}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn views_are_saved_replaced_dropped_and_read_back_by_a_new_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let _appender = worked(dir.path());
        let s = session(dir.path());
        let direct = text(&s, &format!("{WEEKLY} ORDER BY 1, 2")).await;
        s.create_view("weekly", WEEKLY, &[], false, false).await.unwrap();
        assert_eq!(text(&s, "SELECT * FROM weekly ORDER BY 1, 2").await, direct);
        let again = s.create_view("weekly", WEEKLY, &[], false, false).await.unwrap_err();
        assert_eq!(problem(again), RelationProblem::Exists);

        // Another catalog (another process) reads it from disk; column names given at CREATE hold.
        let other = session(dir.path());
        assert_eq!(text(&other, "SELECT * FROM weekly ORDER BY 1, 2").await, direct);
        s.create_view("weekly", WEEKLY, &["svc".into(), "week".into()], true, false).await.unwrap();
        let id = other.views().await[0].id;
        other.refresh().await.unwrap();
        let listed = other.views().await;
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].name.as_str(), listed[0].id, listed[0].temporary), ("weekly", id, false));
        let names: Vec<String> = listed[0].schema.as_ref().unwrap().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["svc", "week", "deployments"]);
        assert_eq!(
            text(&other, "SELECT count(*) AS n FROM weekly WHERE svc = 'checkout'").await,
            text(&other, "SELECT count(*) AS n FROM dora_metrics('week') WHERE service = 'checkout'").await
        );

        // A view over a view sees the inner one's replacement at once.
        s.create_view("weekly_count", "SELECT count(*) AS n FROM weekly", &[], false, false).await.unwrap();
        s.create_view("weekly", &format!("{WEEKLY} LIMIT 1"), &[], true, false).await.unwrap();
        assert!(text(&s, "SELECT * FROM weekly_count").await.contains("| 1 |"));

        assert!(s.drop_view("weekly", false).await.unwrap());
        assert!(!s.drop_view("weekly", true).await.unwrap());
        assert_eq!(problem(s.drop_view("weekly", false).await.unwrap_err()), RelationProblem::Missing);
        other.refresh().await.unwrap();
        let err = other.context().sql("SELECT * FROM weekly").await.unwrap_err().to_string();
        assert!(err.contains("not found"), "{err}");
        // The view over the dropped one says which view cannot be used, and why.
        let err = other.context().sql("SELECT * FROM weekly_count").await.unwrap_err().to_string();
        assert!(err.contains("view \"weekly_count\" cannot be used") && err.contains("weekly"), "{err}");
        let fresh = Catalog::open(dir.path(), MemoryLimits::default()).unwrap();
        assert_eq!(fresh.session(session_config()).unwrap().views().await.len(), 1, "weekly_count stays, unusable");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_views_are_refused_at_create() {
        let dir = tempfile::tempdir().unwrap();
        let _appender = worked(dir.path());
        let s = session(dir.path());
        for name in ["events", "deployments", "dora_metrics"] {
            assert_eq!(
                problem(s.create_view(name, "SELECT 1", &[], true, false).await.unwrap_err()),
                RelationProblem::Exists
            );
        }
        let err = s.create_view("v", "SELECT * FROM no_such_table", &[], false, false).await.unwrap_err();
        assert!(err.to_string().contains("no_such_table") && err.to_string().contains("not found"), "{err}");
        let err = s.create_view("v", "SELECT 1 AS a", &["a".into(), "b".into()], false, false).await.unwrap_err();
        assert!(err.to_string().contains("more column names"), "{err}");
        let err = s.create_view("v", "DROP TABLE events", &[], false, false).await.unwrap_err();
        assert!(err.to_string().contains("one query"), "{err}");
        assert_eq!(problem(s.drop_view("events", true).await.unwrap_err()), RelationProblem::NotAView);
        s.create_view("a", "SELECT 1 AS x", &[], false, false).await.unwrap();
        s.create_view("b", "SELECT x FROM a", &[], false, false).await.unwrap();
        let err = s.create_view("a", "SELECT x FROM b", &[], true, false).await.unwrap_err();
        assert_eq!(problem(err), RelationProblem::Recursive);
        assert!(!dir.path().join("views").join("v.json").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn temporary_views_live_in_their_session_and_shadow_durable_ones() {
        let dir = tempfile::tempdir().unwrap();
        let _appender = worked(dir.path());
        let (s, other) = (session(dir.path()), session(dir.path()));
        s.create_view("v", "SELECT 1 AS one", &[], false, false).await.unwrap();
        s.create_view("v", "SELECT 2 AS two", &[], false, true).await.unwrap();
        assert!(text(&s, "SELECT * FROM v").await.contains("two"));
        other.refresh().await.unwrap();
        assert!(text(&other, "SELECT * FROM v").await.contains("one"));
        s.create_view("t", "SELECT 3 AS three", &[], false, true).await.unwrap();
        assert!(other.context().sql("SELECT * FROM t").await.is_err());
        let before = s.views_version();
        assert!(s.drop_view("v", false).await.unwrap(), "the temporary one");
        assert!(s.views_version() > before);
        assert!(text(&s, "SELECT * FROM v").await.contains("one"));
        assert!(!dir.path().join("views/t.json").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_view_file_fails_that_view_only() {
        let dir = tempfile::tempdir().unwrap();
        let _appender = worked(dir.path());
        let s = session(dir.path());
        s.create_view("good", "SELECT 1 AS one", &[], false, false).await.unwrap();
        s.create_view("bad", "SELECT 2 AS two", &[], false, false).await.unwrap();
        std::fs::write(dir.path().join("views/bad.json"), "{not json").unwrap();
        std::fs::write(dir.path().join("views/notes.txt"), "not a view").unwrap();
        let fresh = session(dir.path());
        assert!(text(&fresh, "SELECT * FROM good").await.contains("one"));
        let err = fresh.context().sql("SELECT * FROM bad").await.unwrap_err().to_string();
        assert!(err.contains("view \"bad\" cannot be used") && err.contains("bad.json"), "{err}");
        assert_eq!(fresh.views().await.iter().map(|v| v.schema.is_some()).collect::<Vec<_>>(), [false, true]);
        // It can be replaced or dropped.
        fresh.create_view("bad", "SELECT 3 AS three", &[], true, false).await.unwrap();
        assert!(text(&fresh, "SELECT * FROM bad").await.contains("three"));
        assert!(fresh.drop_view("bad", false).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_lose_no_view() {
        let dir = tempfile::tempdir().unwrap();
        let _appender = worked(dir.path());
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                    let s = session(&dir);
                    rt.block_on(async {
                        for i in 0..20 {
                            s.create_view(&format!("w{w}_{i}"), "SELECT 1 AS one", &[], false, false).await.unwrap();
                            s.create_view("shared", &format!("SELECT {w} AS writer"), &[], true, false).await.unwrap();
                        }
                    });
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let views = session(dir.path()).views().await;
        assert_eq!(views.len(), 41);
        assert!(views.iter().all(|v| v.schema.is_some()));
        let mut ids: Vec<u32> = views.iter().map(|v| v.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 41, "ids are unique");
    }

    #[test]
    fn every_name_has_a_file_of_its_own() {
        for name in ["weekly", "Weekly", "a b", "ü", "%41", "x.json", "_1"] {
            let file = file_name(name);
            assert!(file.bytes().all(|b| b.is_ascii_alphanumeric() || b"%_.".contains(&b)), "{file}");
            assert_eq!(view_name(&file).as_deref(), Some(name));
        }
        assert_ne!(file_name("weekly").to_lowercase(), file_name("Weekly").to_lowercase());
        for other in ["LOCK", ".tmp", "A.json", "%4.json", ".json", "x.json.tmp"] {
            assert_eq!(view_name(other), None, "{other}");
        }
    }
}
