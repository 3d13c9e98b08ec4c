//! SPEC §4: `dora_quality`, the counts that explain every number of the
//! metrics.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};

use crate::error::{Error, Result};
use crate::log::Snapshot;
use crate::project::Projected;

/// The `dora_quality` counts (SPEC §4; names as in the fixtures).
pub const QUALITY_COLUMNS: [&str; 9] = [
    "appended",
    "duplicates",
    "conflicts",
    "rejected",
    "orphan_resolves",
    "open_incidents",
    "unattributed_incidents",
    "unknown_commits",
    "negative_lead_times",
];

pub fn quality_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(
            QUALITY_COLUMNS.iter().map(|c| Field::new(*c, DataType::Int64, false)).collect::<Vec<_>>(),
        ))
    });
    SCHEMA.clone()
}

/// The counts of `dora_quality` that come from the projections. Each is a
/// sum over components (commit shas never span two), so the read model adds
/// up its components' counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProjectedCounts {
    pub events: u64,
    pub orphan_resolves: u64,
    pub open_incidents: u64,
    pub unattributed_incidents: u64,
    pub unknown_commits: u64,
    pub negative_lead_times: u64,
}

impl ProjectedCounts {
    pub fn of(p: &Projected) -> Self {
        let unknown: std::collections::HashSet<&str> =
            p.changes.iter().filter(|c| c.committed_at.is_none()).map(|c| c.commit_sha.as_str()).collect();
        Self {
            events: p.event_count,
            orphan_resolves: p.orphan_resolves.len() as u64,
            open_incidents: p.incidents.iter().filter(|i| i.resolved_at.is_none()).count() as u64,
            unattributed_incidents: p.incidents.iter().filter(|i| i.attribution.is_none()).count() as u64,
            unknown_commits: unknown.len() as u64,
            negative_lead_times: p.changes.iter().filter(|c| c.raw_lead_time().is_some_and(|l| l < 0)).count() as u64,
        }
    }
}

impl std::ops::AddAssign for ProjectedCounts {
    fn add_assign(&mut self, o: Self) {
        self.events += o.events;
        self.orphan_resolves += o.orphan_resolves;
        self.open_incidents += o.open_incidents;
        self.unattributed_incidents += o.unattributed_incidents;
        self.unknown_commits += o.unknown_commits;
        self.negative_lead_times += o.negative_lead_times;
    }
}

/// One row of counts that explains every number of the metrics.
pub fn dora_quality(p: ProjectedCounts, snap: &Snapshot, as_of: Option<i64>) -> Result<RecordBatch> {
    let duplicates: u64 =
        snap.appends.iter().filter(|a| as_of.is_none_or(|t| a.ingested_at <= t)).map(|a| a.duplicates).sum();
    let (conflicts, rejected) = count_rejections(snap, as_of)?;
    let values = [
        p.events,
        duplicates,
        conflicts,
        rejected,
        p.orphan_resolves,
        p.open_incidents,
        p.unattributed_incidents,
        p.unknown_commits,
        p.negative_lead_times,
    ];
    let columns: Vec<ArrayRef> =
        values.iter().map(|v| Arc::new(arrow::array::Int64Array::from(vec![*v as i64])) as ArrayRef).collect();
    Ok(RecordBatch::try_new(quality_schema(), columns)?)
}

/// (conflicts, invalid rows) in the quarantine as of `as_of`.
fn count_rejections(snap: &Snapshot, as_of: Option<i64>) -> Result<(u64, u64)> {
    let root = snap.rejected_root();
    let (mut conflicts, mut invalid) = (0, 0);
    for f in &snap.rejected_files {
        let path = root.join(&f.path);
        let affects = crate::log::files::log_file_affects(&root, f);
        let damaged = |e: &dyn std::fmt::Display| Error::damaged(&path, e, affects.as_str());
        // Read whole: its checksum is verified on the way.
        let bytes = crate::log::files::read_verified(&root, f)?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| damaged(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| damaged(&e))?;
            let (Some(kind), Some(at)) = (
                batch.column_by_name("kind").and_then(|c| c.as_string_opt::<i32>()),
                batch.column_by_name("rejected_at").and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
            ) else {
                return Err(damaged(&"not a quarantine file"));
            };
            for i in 0..batch.num_rows() {
                if as_of.is_some_and(|t| at.value(i) > t) {
                    continue;
                }
                if kind.value(i) == "conflict" {
                    conflicts += 1;
                } else {
                    invalid += 1;
                }
            }
        }
    }
    Ok((conflicts, invalid))
}
