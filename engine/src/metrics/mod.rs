//! The DORA figures over the projections (SPEC §3–§4): the zero-filled
//! `dora_metrics` grid and the `dora_quality` counts that explain it.

mod grid;
mod quality;

pub use grid::{
    PartialBucket, dora_metrics, dora_metrics_schema, grid_starts, metric_grid, metric_rows, metric_rows_within,
};
pub use quality::{ProjectedCounts, dora_quality, quality_schema};
