//! [`MetricGridExec`]: `dora_metrics` over the read model. Its input reads
//! the stored (non-empty) rows of the components the query's filters keep;
//! it lays them on the grid of the (service, environment) pairs and bucket
//! starts the filters keep, zero-filling the rest.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties, InputDistributionRequirements,
    Partitioning, PlanProperties, ReplaceChildrenOptions,
};
use futures::TryStreamExt;
use leadline_udfs::Grain;

use crate::metrics::{dora_metrics_schema, metric_grid};

/// What the grid covers, and how much of the model that is (for EXPLAIN).
#[derive(Debug)]
pub(super) struct Grid {
    pub grain: Grain,
    pub pairs: Vec<(String, String)>,
    pub starts: Vec<i64>,
    /// Of the model: pairs, buckets and components in all.
    pub all_pairs: usize,
    pub all_starts: usize,
    pub components: usize,
    pub all_components: usize,
}

#[derive(Debug)]
pub(super) struct MetricGridExec {
    input: Arc<dyn ExecutionPlan>,
    grid: Arc<Grid>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl MetricGridExec {
    /// `input` reads stored `dora_metrics` rows (any partitioning).
    pub(super) fn new(
        input: Arc<dyn ExecutionPlan>,
        grid: Arc<Grid>,
        projection: Option<Vec<usize>>,
    ) -> DfResult<Arc<Self>> {
        let input: Arc<dyn ExecutionPlan> = match input.output_partitioning().partition_count() {
            1 => input,
            _ => Arc::new(CoalescePartitionsExec::new(input)),
        };
        let schema = match &projection {
            Some(p) => Arc::new(dora_metrics_schema().project(p)?),
            None => dora_metrics_schema(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(Self { input, grid, projection, schema, properties }))
    }
}

impl DisplayAs for MetricGridExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = &self.grid;
        write!(
            f,
            "MetricGridExec: grain={}, pairs={}/{}, buckets={}/{}, components={}/{}",
            g.grain,
            g.pairs.len(),
            g.all_pairs,
            g.starts.len(),
            g.all_starts,
            g.components,
            g.all_components
        )
    }
}

impl ExecutionPlan for MetricGridExec {
    fn name(&self) -> &str {
        "MetricGridExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![Distribution::SinglePartition])
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
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
            return Err(DataFusionError::Internal("MetricGridExec has one child".into()));
        }
        Ok(Self::new(children.swap_remove(0), self.grid.clone(), self.projection.clone())?)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let options = ReplaceChildrenOptions::new(datafusion::physical_plan::ChildrenPropertiesMode::Recompute);
        self.replace_children(children, options)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("MetricGridExec has one partition, not {partition}")));
        }
        let input = self.input.execute(0, context)?;
        let (grid, projection) = (self.grid.clone(), self.projection.clone());
        let grid_batch = async move {
            let stored: Vec<_> = input.try_collect().await?;
            let pairs: Vec<(&str, &str)> = grid.pairs.iter().map(|(s, e)| (s.as_str(), e.as_str())).collect();
            let batch = metric_grid(&stored, &pairs, &grid.starts, grid.grain)?;
            Ok::<_, DataFusionError>(match &projection {
                Some(p) => batch.project(p)?,
                None => batch,
            })
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::once(grid_batch))))
    }
}
