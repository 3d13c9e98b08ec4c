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
mod memory;
mod options;
mod tables;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use options::LeadlineOptions;

use crate::error::{Error, Result};
use crate::log::{EventLog, Snapshot};
use crate::project::Projected;
use crate::readmodel::ReadModel;
use cache::ProjectionCache;

/// How much memory a catalog's queries and caches may use.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    /// All sessions' queries and the catalog's caches together, in bytes.
    pub total: usize,
    /// One session's running statement, in bytes.
    pub per_query: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self { total: 4 << 30, per_query: 1 << 30 }
    }
}

/// The tables of one data directory, shared by every session that reads it.
#[derive(Debug)]
pub struct Catalog {
    log: EventLog,
    limits: MemoryLimits,
    memory: Arc<dyn MemoryPool>,
    projections: ProjectionCache,
    /// The newest complete read model seen.
    model: Mutex<Option<ReadModel>>,
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
        Ok(Arc::new(Catalog { log, limits, memory, projections, model: Mutex::new(None) }))
    }

    /// A session with every leadline table and function, reading the latest
    /// view; `config` comes from [`session_config`].
    pub fn session(self: &Arc<Self>, config: SessionConfig) -> Result<ReadSession> {
        let pinned = Arc::new(RwLock::new(self.view()?));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(memory::SessionPool::new(self.memory.clone(), self.limits.per_query)))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()?;
        let state = SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features();
        let ctx = SessionContext::new_with_state(state.build());
        leadline_udfs::register_all(&ctx);
        tables::register(&ctx, self.clone(), pinned.clone())?;
        Ok(ReadSession { ctx, catalog: self.clone(), pinned })
    }

    /// The latest snapshot, with the read model if it is complete for it.
    fn view(&self) -> Result<View> {
        let snapshot = Arc::new(self.log.snapshot()?);
        let mut newest = self.model.lock().map_err(|_| Error::Corrupt("read model cache poisoned".into()))?;
        if newest.as_ref().is_none_or(|m| m.version() < snapshot.version) {
            // Only when the log moved on: the manifest is replaced atomically
            // after each append, so reading it needs no lock.
            if let Some(m) = ReadModel::open(self.log.root()) {
                *newest = Some(m);
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

    /// The projections of `snap` as of `as_of` with `window`, folded once and
    /// cached. Reads the log: call it off the async workers.
    fn projected(&self, snap: &Snapshot, as_of: Option<i64>, window: Option<i64>) -> Result<Arc<Projected>> {
        self.projections.get_or_fold(snap, as_of, window)
    }
}

/// A session's DataFusion context and the view its statements read.
pub struct ReadSession {
    ctx: SessionContext,
    catalog: Arc<Catalog>,
    pinned: Arc<RwLock<View>>,
}

impl ReadSession {
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Pins the latest view for the next statement. Reads only what is new
    /// in the log, off the async workers.
    pub async fn refresh(&self) -> Result<()> {
        let catalog = self.catalog.clone();
        let view = blocking(move || catalog.view()).await?;
        *self.pinned.write().unwrap_or_else(|p| p.into_inner()) = view;
        Ok(())
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

/// A session configuration that knows the `leadline.*` settings.
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(true);
    config.options_mut().extensions.insert(LeadlineOptions::default());
    config
}

/// Runs `work` off the async workers when there are any (it reads files or
/// folds the log), inline otherwise.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => {
            tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(format!("a worker failed: {e}")))?
        }
        Err(_) => work(),
    }
}
