//! The SQL catalog: DataFusion tables and table functions over a snapshot of
//! the log and the read model, and the `leadline.*` session settings.
//!
//! One [`Catalog`] serves a data directory to every session of a process: it
//! owns the memory pool their queries share and the caches (bounded in
//! bytes, reserved in that pool). Each [`ReadSession`] pins one consistent
//! view (a log snapshot, and the read model if it is complete for that
//! snapshot) per statement with [`ReadSession::refresh`], so all tables of
//! one query agree and every `SET leadline.…` takes effect on the next one.
//!
//! Readers never write: a read model that is behind the log is not caught up
//! here (that is the write path's job); queries then fold the log in memory,
//! off the async workers, and say so in the log.

mod cache;
mod damage;
mod grid;
mod memory;
mod options;
mod pushdown;
mod tables;
mod views;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::{CacheManager, CacheManagerConfig};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use options::LeadlineOptions;
pub use views::ViewInfo;
pub(crate) use views::damaged_view_files;

use crate::error::{Error, RelationProblem, Result};
use crate::log::{EventLog, Snapshot};
use crate::readmodel::{Part, ReadModel, Refolded};
use cache::ProjectionCache;
use views::{SessionViews, ViewStore};

/// How much memory a catalog's queries and caches may use.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    /// All sessions' queries and the catalog's caches together, in bytes.
    pub total: usize,
    /// One session's running statement, in bytes.
    pub per_query: usize,
}

impl Default for MemoryLimits {
    /// No limit: what a one-statement process (`leadline query`) wants; the
    /// server sets its own from its config.
    fn default() -> Self {
        Self { total: usize::MAX, per_query: usize::MAX }
    }
}

/// The tables of one data directory, shared by every session that reads it.
#[derive(Debug)]
pub struct Catalog {
    log: EventLog,
    limits: MemoryLimits,
    memory: Arc<dyn MemoryPool>,
    /// DataFusion's caches of file listings, statistics and Parquet footers,
    /// one set for all sessions (each bounded in bytes: DataFusion's
    /// defaults, 71 MiB in all), so they cost the same for 1 or 500
    /// connections and a file's footer is read once, not once per session.
    files: Arc<CacheManager>,
    projections: ProjectionCache,
    /// The newest complete read model seen.
    model: Mutex<Option<ReadModel>>,
    views: ViewStore,
    /// Damage already logged (see [`Catalog::report_damage`]).
    damage_reported: Mutex<std::collections::HashSet<String>>,
    /// Files whose every byte this catalog has checked (see [`Catalog::verify`]).
    verified: Mutex<std::collections::HashSet<PathBuf>>,
}

/// What one statement reads: a snapshot of the log and, when one is
/// complete for exactly that snapshot, the read model.
#[derive(Debug, Clone)]
struct View {
    snapshot: Arc<Snapshot>,
    model: Option<ReadModel>,
}

impl Catalog {
    /// The catalog of the data directory `dir` (which must exist).
    pub fn open(dir: &Path, limits: MemoryLimits) -> Result<Arc<Catalog>> {
        let log = EventLog::open(dir)?;
        let memory: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(limits.total));
        // A quarter of the memory at most for cached projections, so queries
        // always keep the rest.
        let projections = ProjectionCache::new(memory.clone(), limits.total / 4);
        let views = ViewStore::new(log.root());
        let catalog = Catalog {
            log,
            limits,
            memory,
            files: CacheManager::try_new(&CacheManagerConfig::default())?,
            projections,
            model: Mutex::new(None),
            views,
            damage_reported: Mutex::new(Default::default()),
            verified: Mutex::new(Default::default()),
        };
        // What opening can afford to check (the commits, a `stat` of each
        // file, the model's manifest): damage is logged now, and named again
        // by any query that reads the damaged file.
        match catalog.log.snapshot() {
            Ok(snap) => crate::log::damaged_files(&snap).iter().for_each(|e| catalog.report_damage(e)),
            Err(e) => catalog.report_damage(&e),
        }
        if let Err(e) = ReadModel::open(catalog.log.root()) {
            catalog.report_damage(&e);
        }
        Ok(Arc::new(catalog))
    }

    /// A session with every leadline table and function, reading the latest
    /// view; `config` comes from [`session_config`].
    pub fn session(self: &Arc<Self>, config: SessionConfig) -> Result<ReadSession> {
        let pinned = Arc::new(RwLock::new(self.view()?));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(memory::SessionPool::new(self.memory.clone(), self.limits.per_query)))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_statistics_cache(self.files.get_file_statistic_cache())
                    .with_list_files_cache(self.files.get_list_files_cache())
                    .with_file_metadata_cache(Some(self.files.get_file_metadata_cache())),
            )
            .build_arc()?;
        let state = SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features();
        let ctx = SessionContext::new_with_state(state.build());
        leadline_udfs::register_all(&ctx);
        let views = SessionViews::install(&ctx, self.views.list()?)?;
        tables::register(&ctx, self.clone(), pinned.clone())?;
        Ok(ReadSession { ctx, catalog: self.clone(), pinned, views })
    }

    /// Bytes the queries and caches hold in the shared memory pool, and its bound.
    pub fn memory_use(&self) -> (usize, usize) {
        (self.memory.reserved(), self.limits.total)
    }

    /// The latest snapshot, with the read model if it is complete for it.
    fn view(&self) -> Result<View> {
        let snapshot = self.log.shared_snapshot()?;
        let mut newest = self.model.lock().map_err(|_| Error::Corrupt("read model cache poisoned".into()))?;
        if newest.as_ref().is_none_or(|m| m.version() < snapshot.version) {
            // Only when the log moved on: the manifest is replaced atomically
            // after each append, so reading it needs no lock.
            match ReadModel::open(self.log.root()) {
                Ok(Some(m)) => *newest = Some(m),
                Ok(None) => {}
                Err(e) => self.report_damage(&e),
            }
        }
        let model = newest.as_ref().filter(|m| m.version() == snapshot.version).cloned();
        if model.is_none() && snapshot.version.is_some() {
            tracing::debug!(
                log = ?snapshot.version,
                model = ?newest.as_ref().and_then(ReadModel::version),
                "no read model for this snapshot; queries fold the log in memory"
            );
        }
        Ok(View { snapshot, model })
    }

    /// Logs damage found outside a statement's own answer (a damaged read
    /// model that queries fold around), once for each damage.
    fn report_damage(&self, e: &Error) {
        let text = e.to_string();
        let mut reported = self.damage_reported.lock().unwrap_or_else(|p| p.into_inner());
        if reported.insert(text.clone()) {
            tracing::error!("{text}");
        }
    }

    /// Checks each file a scan is about to read: the first time this catalog
    /// reads it, every byte against its checksum (the commit's for a log
    /// file, the manifest's for a read-model file); later, that it still has
    /// its size. So a damaged file is named before a query reads a wrong
    /// value from it. Reads files: call it off the async workers.
    fn verify(&self, files: &[damage::ScannedFile]) -> Result<()> {
        for f in files {
            if self.verified.lock().unwrap_or_else(|p| p.into_inner()).contains(&f.path) {
                let size_kept = match &f.committed {
                    Some(committed) => std::fs::metadata(&f.path).is_ok_and(|m| m.len() == committed.size),
                    None => true,
                };
                if size_kept {
                    continue;
                }
            }
            f.verify()?;
            self.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(f.path.clone());
        }
        Ok(())
    }

    /// The projections of `view` as of `as_of` with `window` and the rows of
    /// `part`, folded once and cached. Reads files: call it off the async
    /// workers.
    fn refolded(
        &self,
        view: &View,
        as_of: Option<i64>,
        window: Option<i64>,
        part: Option<Part>,
    ) -> Result<Arc<Refolded>> {
        self.projections.get_or_fold(&view.snapshot, view.model.as_ref(), as_of, window, part)
    }
}

/// A session's DataFusion context, the view its statements read and its
/// (SQL) views.
pub struct ReadSession {
    ctx: SessionContext,
    catalog: Arc<Catalog>,
    pinned: Arc<RwLock<View>>,
    views: Arc<SessionViews>,
}

impl ReadSession {
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Pins the latest view for the next statement, and takes the durable
    /// SQL views as they are now. Reads only what is new in the log (and
    /// the view files that changed), off the async workers.
    pub async fn refresh(&self) -> Result<()> {
        let catalog = self.catalog.clone();
        let (view, views) = blocking(move || Ok((catalog.view()?, catalog.views.list()?))).await?;
        *self.pinned.write().unwrap_or_else(|p| p.into_inner()) = view;
        self.views.set_durable(views);
        Ok(())
    }

    /// `CREATE [OR REPLACE] [TEMPORARY] VIEW name [(columns)] AS sql`:
    /// `sql` is one query in PostgreSQL's dialect, planned here first (a
    /// view over a missing table is refused). A durable view is saved in
    /// the data directory and seen by every session from its next refresh;
    /// a temporary one lives in this session and shadows a durable one of
    /// the same name. `name` is used as given (callers fold its case).
    pub async fn create_view(
        &self,
        name: &str,
        sql: &str,
        columns: &[String],
        or_replace: bool,
        temporary: bool,
    ) -> Result<()> {
        self.views.check_definition(name, sql, columns).await?;
        if temporary {
            return self.views.save_temporary(name, sql, columns, or_replace);
        }
        let catalog = self.catalog.clone();
        let (name, sql, columns) = (name.to_string(), sql.to_string(), columns.to_vec());
        let listed = blocking(move || {
            catalog.views.save(&name, &sql, &columns, or_replace)?;
            catalog.views.list()
        })
        .await?;
        self.views.set_durable(listed);
        Ok(())
    }

    /// `DROP VIEW name`: this session's temporary view of that name if it
    /// has one, else the durable one. `false` if there was none and
    /// `if_exists`.
    pub async fn drop_view(&self, name: &str, if_exists: bool) -> Result<bool> {
        if self.views.remove_temporary(name) {
            return Ok(true);
        }
        if self.views.is_table(name) {
            return Err(not_a_view(name));
        }
        let catalog = self.catalog.clone();
        let owned = name.to_string();
        let (dropped, listed) = blocking(move || Ok((catalog.views.remove(&owned)?, catalog.views.list()?))).await?;
        self.views.set_durable(listed);
        if !dropped && !if_exists {
            return Err(Error::relation(RelationProblem::Missing, format!("view \"{name}\" does not exist")));
        }
        Ok(dropped)
    }

    /// `ALTER VIEW from RENAME TO to` (dbt swaps a new view in this way).
    pub async fn rename_view(&self, from: &str, to: &str) -> Result<()> {
        if self.views.is_table(from) {
            return Err(not_a_view(from));
        }
        if self.views.is_table(to) {
            return Err(Error::relation(RelationProblem::Exists, format!("relation \"{to}\" already exists")));
        }
        if self.views.rename_temporary(from, to)? {
            return Ok(());
        }
        let catalog = self.catalog.clone();
        let (from, to) = (from.to_string(), to.to_string());
        let listed = blocking(move || {
            catalog.views.rename(&from, &to)?;
            catalog.views.list()
        })
        .await?;
        self.views.set_durable(listed);
        Ok(())
    }

    /// The views this session sees (durable as of its last refresh, and its
    /// temporary ones), each planned for its columns.
    pub async fn views(&self) -> Vec<ViewInfo> {
        self.views.list().await
    }

    /// Changes whenever the views this session sees change.
    pub fn views_version(&self) -> u64 {
        self.views.version()
    }

    /// The log version (Delta commit) of the pinned view; `None` for an
    /// empty log. Reports name the snapshot they read with it.
    pub fn log_version(&self) -> Option<u64> {
        self.pinned.read().unwrap_or_else(|p| p.into_inner()).snapshot.version
    }

    /// Rows stored in `table` (`events` or `rejected_events`) at the pinned
    /// snapshot; `None` for other tables.
    pub fn row_count(&self, table: &str) -> Option<u64> {
        let view = self.pinned.read().unwrap_or_else(|p| p.into_inner());
        let files = match table {
            "events" => &view.snapshot.event_files,
            "rejected_events" => &view.snapshot.rejected_files,
            _ => return None,
        };
        Some(files.iter().map(|f| f.num_records).sum())
    }
}

fn not_a_view(name: &str) -> Error {
    Error::relation(RelationProblem::NotAView, format!("\"{name}\" is not a view"))
}

/// A session configuration that knows the `leadline.*` settings.
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(true);
    config.options_mut().extensions.insert(LeadlineOptions::default());
    config
}

/// Runs `work` off the async workers when there are any (it reads files or
/// folds the log), inline otherwise. A panic in it goes on in the caller, as
/// if `work` had run there (the server's guard reports it as a bug).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::Internal(format!("a worker failed: {e}"))),
        },
        Err(_) => work(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::PathBuf;

    use arrow::util::pretty::pretty_format_batches;

    use super::*;
    use crate::appender::Appender;
    use crate::input;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures").join(name).join("events.ndjson")
    }

    /// A data directory with the `worked` fixture appended through the real
    /// ingest path, split in two appends.
    pub(super) fn worked(dir: &Path) -> Appender {
        let text = std::fs::read_to_string(fixture("worked")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut appender = Appender::open(dir, "test").unwrap();
        for half in lines.chunks(lines.len() / 2 + 1) {
            let rows = input::ndjson_rows(std::io::Cursor::new(half.join("\n").into_bytes()));
            appender.append("worked", rows, &mut |_| {}).unwrap();
        }
        appender
    }

    pub(super) async fn text(session: &ReadSession, sql: &str) -> String {
        let batches = session.context().sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    const QUERIES: [&str; 5] = [
        "SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start",
        "SELECT * FROM deployments ORDER BY deployment_id",
        "SELECT * FROM changes ORDER BY environment, commit_sha",
        "SELECT * FROM incidents ORDER BY incident_id",
        "SELECT * FROM dora_quality",
    ];

    async fn everything(session: &ReadSession) -> Vec<String> {
        let mut out = Vec::new();
        for q in QUERIES {
            out.push(text(session, q).await);
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queries_read_the_read_model_or_the_log_the_same_and_never_write() {
        let dir = tempfile::tempdir().unwrap();
        let _appender = worked(dir.path());
        let catalog = Catalog::open(dir.path(), MemoryLimits::default()).unwrap();
        let session = catalog.session(session_config()).unwrap();
        let view = session.pinned.read().unwrap().clone();
        assert_eq!(view.model.as_ref().map(ReadModel::version), Some(view.snapshot.version), "the append caught up");
        let from_model = everything(&session).await;
        assert!(from_model[0].contains("checkout"), "{}", from_model[0]);

        // No model: the same answers, folded in memory; nothing is written.
        std::fs::remove_dir_all(dir.path().join("model")).unwrap();
        let fresh = Catalog::open(dir.path(), MemoryLimits::default()).unwrap();
        let session = fresh.session(session_config()).unwrap();
        assert!(session.pinned.read().unwrap().model.is_none());
        assert_eq!(everything(&session).await, from_model);
        assert!(!dir.path().join("model").exists(), "a query wrote the read model");
        // A damaged manifest is not read either.
        std::fs::create_dir_all(dir.path().join("model")).unwrap();
        std::fs::write(dir.path().join("model/MANIFEST.json"), "{not json").unwrap();
        session.refresh().await.unwrap();
        assert_eq!(everything(&session).await, from_model);
        assert_eq!(std::fs::read(dir.path().join("model/MANIFEST.json")).unwrap(), b"{not json");
    }

    /// A data directory with the `mixed` fixture (several services, teams
    /// and environments) appended in three parts.
    fn mixed(dir: &Path) -> Appender {
        let text = std::fs::read_to_string(fixture("mixed")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut appender = Appender::open(dir, "test").unwrap();
        for part in lines.chunks(lines.len() / 3 + 1) {
            let rows = input::ndjson_rows(std::io::Cursor::new(part.join("\n").into_bytes()));
            appender.append("mixed", rows, &mut |_| {}).unwrap();
        }
        appender
    }

    /// How many files an `EXPLAIN ANALYZE` says its scan of the model read.
    fn scanned_files(explained: &str) -> usize {
        let count = explained
            .split("NameDamageExec: files=")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<usize>().ok()));
        count.unwrap_or(0)
    }

    /// `SELECT * FROM source WHERE filter`, and the same filter over the
    /// unfiltered rows of `source` collected into a plain memory table first.
    async fn filtered_both_ways(session: &ReadSession, source: &str, filter: &str) -> (String, String) {
        let ctx = session.context();
        let all = ctx.sql(&format!("SELECT * FROM {source}")).await.unwrap();
        let schema = Arc::new(all.schema().as_arrow().clone());
        let table = datafusion::datasource::MemTable::try_new(schema, vec![all.collect().await.unwrap()]).unwrap();
        ctx.deregister_table("unfiltered").unwrap();
        ctx.register_table("unfiltered", Arc::new(table)).unwrap();
        let order = " ORDER BY 1, 2, 3, 4, 5, 6";
        let pushed = text(session, &format!("SELECT * FROM {source} WHERE {filter}{order}")).await;
        let after = text(session, &format!("SELECT * FROM unfiltered WHERE {filter}{order}")).await;
        (pushed, after)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn filtered_queries_return_the_unfiltered_rows_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let _appender = mixed(dir.path());
        let catalog = Catalog::open(dir.path(), MemoryLimits::default()).unwrap();
        let session = catalog.session(session_config()).unwrap();
        let metrics = [
            "service = 'svc-01'",
            "service = 'svc-01' AND environment = 'production' AND bucket_start >= '2026-03-11T12:00:00Z'",
            "environment = 'staging' AND bucket_start > '2026-03-16' AND bucket_start <= '2026-04-06T00:00:00Z'",
            "bucket_start BETWEEN '2026-03-09' AND '2026-03-23T00:00:01Z' AND service IN ('svc-00', 'svc-02')",
            "bucket_start < '2026-03-10' OR service = 'svc-02'",
            "service LIKE 'svc-0%' AND environment <> 'production' AND deployments > 0",
            "lower(service) = 'svc-00' OR environment = 'production'",
            "service = 'nobody'",
            "bucket_start > '2030-01-01'",
            "service IN (SELECT service FROM deployments WHERE team = 'team-1') AND environment = 'production'",
        ];
        let rows = [
            "service = 'svc-01'",
            "team = 'team-1'",
            "service = 'svc-02' AND environment = 'staging'",
            "team = 'team-2' OR service = 'svc-00'",
            "service = 'nobody'",
            "team IS NULL",
            "team <> 'team-1'",
            "team IN ('team-0', 'team-2') AND service <> 'svc-00'",
            "team = 'nobody'",
        ];
        let mut settings = vec![None, Some("SET leadline.as_of = '9999-01-01T00:00:00Z'")];
        settings.push(Some("SET leadline.attribution_window = '6 hours'"));
        for setting in settings {
            if let Some(set) = setting {
                session.context().sql(set).await.unwrap();
            }
            let mut checked = 0;
            for source in
                ["dora_metrics('week')", "dora_metrics('day', '2026-03-05', '2026-03-20')", "dora_metrics('month')"]
            {
                for filter in metrics {
                    let (pushed, after) = filtered_both_ways(&session, source, filter).await;
                    assert_eq!(pushed, after, "{setting:?}: {source} WHERE {filter}");
                    checked += usize::from(pushed.lines().count() > 4);
                }
            }
            for source in ["deployments", "changes", "incidents"] {
                for filter in rows {
                    let (pushed, after) = filtered_both_ways(&session, source, filter).await;
                    assert_eq!(pushed, after, "{setting:?}: {source} WHERE {filter}");
                    checked += usize::from(pushed.lines().count() > 4);
                }
            }
            assert!(checked > 25, "{setting:?}: most filters keep rows ({checked})");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_filtered_scan_reads_only_the_components_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = mixed(dir.path());
        // A deployment that names a team (the fixture's teams are on commits only).
        let teamed = r#"{"event_id":"t1","event_type":"deployment_succeeded","occurred_at":"2026-03-20T10:00:00Z","service":"svc-02","environment":"production","deployment_id":"T1","team":"team-2"}"#;
        appender
            .append("teamed", input::ndjson_rows(std::io::Cursor::new(teamed.as_bytes().to_vec())), &mut |_| {})
            .unwrap();
        let catalog = Catalog::open(dir.path(), MemoryLimits::default()).unwrap();
        let session = catalog.session(session_config()).unwrap();
        let components = session.pinned.read().unwrap().model.as_ref().unwrap().index().services.len();
        assert!(components > 2, "{components}");
        let plan = |sql: String| {
            let session = &session;
            async move { text(session, &format!("EXPLAIN ANALYZE {sql}")).await }
        };
        let panel = "SELECT * FROM dora_metrics('week') WHERE service = 'svc-01' AND environment = 'production' \
                     AND bucket_start >= '2026-03-16'";
        let explained = plan(panel.to_string()).await;
        assert!(explained.contains(&format!("components=1/{components}")), "{explained}");
        assert!(explained.contains("pairs=1/"), "{explained}");
        assert!(!explained.contains("buckets=0/"), "{explained}");
        // Its files (one per epoch within the range), read through DataFusion's Parquet scan.
        let index = session.pinned.read().unwrap().model.as_ref().unwrap().index().epochs.clone();
        let most = index.iter().map(Vec::len).max().unwrap_or(0);
        let read = scanned_files(&explained);
        assert!(read >= 1 && read <= most && explained.contains("DataSourceExec"), "{explained}");
        let everything = plan("SELECT * FROM dora_metrics('week')".to_string()).await;
        assert!(everything.contains(&format!("components={components}/{components}")), "{everything}");
        let rows = plan("SELECT * FROM deployments WHERE service = 'svc-02'".to_string()).await;
        assert!((1..=most).contains(&scanned_files(&rows)), "{rows}");
        // A team's rows: the components naming it (as stored with each).
        let rows = plan("SELECT * FROM deployments WHERE team = 'team-2'".to_string()).await;
        assert!((1..=most).contains(&scanned_files(&rows)) && rows.contains("output_rows=1"), "{rows}");
        let rows = plan("SELECT * FROM incidents WHERE team = 'nobody'".to_string()).await;
        assert!(!rows.contains("NameDamageExec"), "no component names the team: {rows}");
        let rows = plan("SELECT * FROM changes WHERE environment = 'staging'".to_string()).await;
        let all: usize = index.iter().map(Vec::len).sum();
        assert_eq!(scanned_files(&rows), all, "{rows}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scan_filtered_by_time_reads_only_the_epochs_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::open(dir.path(), "test").unwrap();
        // Twenty weeks (from 2026-01-05) a week at a time: an epoch a month.
        for w in 0..20 {
            let lines = crate::readmodel::test_days(&["a", "b"], w * 7..w * 7 + 7).join("\n");
            appender.append("week", input::ndjson_rows(std::io::Cursor::new(lines.into_bytes())), &mut |_| {}).unwrap();
        }
        let catalog = Catalog::open(dir.path(), MemoryLimits::default()).unwrap();
        let session = catalog.session(session_config()).unwrap();
        let files = |sql: String| {
            let session = &session;
            async move { scanned_files(&text(session, &format!("EXPLAIN ANALYZE {sql}")).await) }
        };
        let filtered = [
            ("deployments", "finished_at >= '2026-05-01'"),
            ("deployments", "finished_at < '2026-02-01' AND service = 'a'"),
            ("changes", "deployed_at BETWEEN '2026-03-01' AND '2026-03-10'"),
            ("incidents", "opened_at > '2026-04-28' AND opened_at < '2026-05-03'"),
            ("dora_metrics('week', '2026-05-11')", "environment = 'production'"),
            ("dora_metrics('month')", "bucket_start < '2026-02-01'"),
        ];
        for (source, filter) in filtered {
            let whole = if source.starts_with("dora_metrics('week'") { "dora_metrics('week')" } else { source };
            let all = files(format!("SELECT * FROM {whole}")).await;
            let some = files(format!("SELECT * FROM {source} WHERE {filter}")).await;
            assert!(some > 0 && some < all, "{source} WHERE {filter}: {some} of {all} files");
            let (pushed, after) = filtered_both_ways(&session, source, filter).await;
            assert_eq!(pushed, after, "{source} WHERE {filter}");
            assert!(pushed.lines().count() > 4, "{source} WHERE {filter}: {pushed}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_reads_its_pinned_view_until_it_refreshes() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = worked(dir.path());
        let catalog = Catalog::open(dir.path(), MemoryLimits::default()).unwrap();
        let session = catalog.session(session_config()).unwrap();
        let count = "SELECT count(*) AS n FROM events";
        let before = text(&session, count).await;
        assert_eq!(session.row_count("events"), Some(16));
        assert_eq!(session.row_count("deployments"), None);
        let version = session.log_version();
        assert!(version.is_some());
        let late = r#"{"event_id":"late","event_type":"commit","occurred_at":"2026-03-09T09:00:00Z","service":"checkout","commit_sha":"zz"}"#;
        appender
            .append("late", input::ndjson_rows(std::io::Cursor::new(late.as_bytes().to_vec())), &mut |_| {})
            .unwrap();
        assert_eq!(text(&session, count).await, before, "pinned until refresh");
        session.refresh().await.unwrap();
        assert_ne!(text(&session, count).await, before);
        assert_eq!(session.row_count("events"), Some(17));
        assert!(session.log_version() > version, "the refresh pinned the new commit");
        // The appender caught the model up to the new version, and the view uses it.
        let view = session.pinned.read().unwrap().clone();
        assert_eq!(view.model.map(|m| m.version()), Some(view.snapshot.version));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn as_of_and_other_windows_fold_in_memory_and_are_cached_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let _appender = worked(dir.path());
        let catalog = Catalog::open(dir.path(), MemoryLimits { total: 64 << 20, per_query: 32 << 20 }).unwrap();
        let session = catalog.session(session_config()).unwrap();
        let default = everything(&session).await;
        assert_eq!(catalog.memory.reserved(), 0, "the read model answered: nothing folded");
        session.context().sql("SET leadline.as_of = '9999-01-01T00:00:00Z'").await.unwrap();
        assert_eq!(everything(&session).await, default, "the whole log, folded, agrees with the model");
        let cached = catalog.memory.reserved();
        assert!(cached > 0, "the folded projections are reserved in the pool");
        session.context().sql("SET leadline.attribution_window = 'unbounded'").await.unwrap();
        everything(&session).await;
        assert!(catalog.memory.reserved() > cached, "a second fold is cached beside the first");
        // A tiny limit keeps nothing but the tiniest fold cached (a quarter of
        // the limit), and still answers.
        let small = Catalog::open(dir.path(), MemoryLimits { total: 1024, per_query: 1024 }).unwrap();
        let session = small.session(session_config()).unwrap();
        session.context().sql("SET leadline.as_of = '9999-01-01T00:00:00Z'").await.unwrap();
        assert_eq!(text(&session, QUERIES[4]).await, default[4]);
        assert!(small.memory.reserved() <= 256);
    }
}
