//! Naming the damaged file when a scan fails: DataFusion's Parquet reader
//! reports a bad footer or page without saying which file it was reading.
//! [`NameDamageExec`] sits over a scan of known files; when the scan fails
//! with a read error, it checks those files (size and checksum against their
//! commit, then a full decode) off the async workers and answers with
//! [`Error::Damaged`] for the first damaged one, so the client learns the
//! file and what it affects (SQLSTATE XX001) instead of a bare decoder error.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions};
use futures::StreamExt;

use crate::error::Error;
use crate::log::delta::AddFile;
use crate::log::files::{find_damage, hash_file};
use crate::readmodel::MODEL_AFFECTS;

/// A file a scan reads: its path, what its commit says of it (log files) or
/// its checksum in the manifest (read-model files), and what its damage
/// affects.
#[derive(Debug, Clone)]
pub(super) struct ScannedFile {
    pub path: PathBuf,
    pub committed: Option<AddFile>,
    pub checksum: Option<u64>,
    pub affects: String,
}

impl ScannedFile {
    /// The read model's files `(path, checksum)`, as a scan reads them.
    pub(super) fn of_model(files: Vec<(PathBuf, Option<u64>)>) -> Vec<ScannedFile> {
        files
            .into_iter()
            .map(|(path, checksum)| ScannedFile { path, committed: None, checksum, affects: MODEL_AFFECTS.to_string() })
            .collect()
    }

    /// Checks every byte of the file against its commit or checksum.
    pub(super) fn verify(&self) -> crate::Result<()> {
        let damaged = |problem: String| Error::damaged(&self.path, problem, self.affects.as_str());
        let (len, sum) = hash_file(&self.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => damaged("missing".into()),
            _ => Error::io(&self.path, e),
        })?;
        if let Some(f) = &self.committed
            && len != f.size
        {
            return Err(damaged(format!("{len} bytes long, its commit says {}", f.size)));
        }
        match self.committed.as_ref().and_then(|f| f.checksum).or(self.checksum) {
            Some(expected) if expected != sum => {
                Err(damaged(format!("checksum mismatch (written {expected:016x}, content {sum:016x})")))
            }
            _ => Ok(()),
        }
    }
}

/// Passes its input through; a read error becomes the damaged file's name.
#[derive(Debug, Clone)]
pub(super) struct NameDamageExec {
    input: Arc<dyn ExecutionPlan>,
    files: Arc<Vec<ScannedFile>>,
}

impl NameDamageExec {
    pub(super) fn wrap(input: Arc<dyn ExecutionPlan>, files: Arc<Vec<ScannedFile>>) -> Arc<dyn ExecutionPlan> {
        Arc::new(Self { input, files })
    }
}

/// Whether `e` is the decoder or the file system failing, which damage of a
/// scanned file can explain (not a cancel, a memory limit or a plan error).
pub(super) fn is_read_error(e: &DataFusionError) -> bool {
    match e.find_root() {
        DataFusionError::ParquetError(_) | DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => true,
        DataFusionError::ArrowError(a, _) => matches!(
            **a,
            arrow::error::ArrowError::ParquetError(_)
                | arrow::error::ArrowError::IoError(..)
                | arrow::error::ArrowError::ExternalError(_)
                | arrow::error::ArrowError::InvalidArgumentError(_)
        ),
        DataFusionError::External(inner) => inner.is::<parquet::errors::ParquetError>() || inner.is::<std::io::Error>(),
        _ => false,
    }
}

/// The first damaged file of `files` as the error to report, else `e`.
/// Reads files: call it off the async workers.
pub(super) fn explain(files: &[ScannedFile], e: DataFusionError) -> DataFusionError {
    let damage = |f: &ScannedFile| f.verify().err().or_else(|| find_damage(&f.path, f.committed.as_ref(), &f.affects));
    match files.iter().find_map(damage) {
        Some(damage) => DataFusionError::External(Box::new(damage)),
        None => e,
    }
}

async fn explain_async(files: Arc<Vec<ScannedFile>>, e: DataFusionError) -> DataFusionError {
    if !is_read_error(&e) {
        return e;
    }
    let message = e.to_string();
    tokio::task::spawn_blocking(move || explain(&files, e)).await.unwrap_or_else(|join| {
        DataFusionError::External(Box::new(Error::Internal(format!("checking files after `{message}`: {join}"))))
    })
}

impl DisplayAs for NameDamageExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NameDamageExec: files={}", self.files.len())
    }
}

impl ExecutionPlan for NameDamageExec {
    fn name(&self) -> &str {
        "NameDamageExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal("NameDamageExec has one child".into()));
        }
        Ok(Self::wrap(children.swap_remove(0), self.files.clone()))
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let options = ReplaceChildrenOptions::new(datafusion::physical_plan::ChildrenPropertiesMode::Recompute);
        self.replace_children(children, options)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let files = self.files.clone();
        let stream = input.then(move |batch| {
            let files = files.clone();
            async move {
                match batch {
                    Ok(b) => Ok(b),
                    Err(e) => Err(explain_async(files, e).await),
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        Ok(input_stats[0].clone())
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> DfResult<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> DfResult<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }
}
