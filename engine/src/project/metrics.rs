//! SPEC §3–§4: `dora_metrics(grain [, from, to])`, zero-filled per (service,
//! environment, bucket), and the `dora_quality` counts that explain them.
//! Medians, buckets and tiers come from the `udfs` crate, the same code the
//! SQL aggregate functions use.

use std::fs::File;
use std::sync::{Arc, LazyLock};

use datafusion::common::HashMap;
use arrow::array::{
    ArrayRef, AsArray, Float64Builder, Int64Builder, IntervalMonthDayNanoBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use leadline_udfs::{Grain, Metric, bucket_end, bucket_start, bucket_starts, days_in, nanos_to_interval, percentile_nanos, tier};

use super::Projected;
use crate::error::{Error, Result};
use crate::event::UTC;
use crate::log::Snapshot;

pub fn dora_metrics_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let interval = DataType::Interval(IntervalUnit::MonthDayNano);
        Arc::new(Schema::new(vec![
            Field::new("service", DataType::Utf8, false),
            Field::new("environment", DataType::Utf8, false),
            Field::new("bucket_start", DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), false),
            Field::new("deployments", DataType::Int64, false),
            Field::new("deployment_frequency", DataType::Float64, false),
            Field::new("lead_time_p50", interval.clone(), true),
            Field::new("lead_time_p90", interval.clone(), true),
            Field::new("change_failure_rate", DataType::Float64, true),
            Field::new("time_to_restore_p50", interval.clone(), true),
            Field::new("failed_deployment_recovery_p50", interval, true),
            Field::new("lead_time_tier", DataType::Utf8, true),
            Field::new("deployment_frequency_tier", DataType::Utf8, true),
            Field::new("change_failure_rate_tier", DataType::Utf8, true),
            Field::new("time_to_restore_tier", DataType::Utf8, true),
        ]))
    });
    SCHEMA.clone()
}

/// What one (service, environment, bucket) collects, in µs.
#[derive(Default)]
struct Bucket {
    deployments: i64,
    failed: i64,
    lead_times: Vec<i64>,
    restore_times: Vec<i64>,
    recovery_times: Vec<i64>,
}

fn median_nanos(values: &mut [i64], p: f64) -> Option<i64> {
    values.sort_unstable();
    let nanos: Vec<i64> = values.iter().map(|v| v.saturating_mul(1000)).collect();
    percentile_nanos(&nanos, p)
}

/// One row per (service, environment, bucket) of `grain` from the bucket of
/// `from` to the bucket of `to`, both inclusive (defaults: the log's span).
pub fn dora_metrics(p: &Projected, grain: Grain, from: Option<i64>, to: Option<i64>) -> Result<RecordBatch> {
    let Some((lo, hi)) = p.span.map(|(lo, hi)| (from.unwrap_or(lo), to.unwrap_or(hi))).or(from.zip(to)) else {
        return Ok(RecordBatch::new_empty(dora_metrics_schema()));
    };
    let starts: Vec<i64> = bucket_starts(lo, hi, grain).collect();
    let (first, last) = match (starts.first(), starts.last()) {
        (Some(&f), Some(&l)) => (f, bucket_end(l, grain)),
        _ => return Ok(RecordBatch::new_empty(dora_metrics_schema())),
    };
    // (pair index, bucket start) of an anchor time, if it is in range.
    let pair_index: HashMap<(&str, &str), usize> =
        p.pairs.iter().enumerate().map(|(i, (s, e))| ((s.as_str(), e.as_str()), i)).collect();
    let at = |s: &str, e: &str, t: i64| -> Option<(usize, i64)> {
        let pair = *pair_index.get(&(s, e))?;
        (t >= first && t < last).then(|| (pair, bucket_start(t, grain)))
    };
    let mut owned: HashMap<(usize, i64), Bucket> = HashMap::new();
    for d in p.deployments.iter().filter(|d| d.is_successful()) {
        let Some(f) = d.finished_at else { continue };
        if let Some(k) = at(&d.service, &d.environment, f) {
            let b = owned.entry(k).or_default();
            b.deployments += 1;
            if d.failed == Some(true) {
                b.failed += 1;
                b.recovery_times.extend(d.recovery_time);
            }
        }
    }
    for c in &p.changes {
        if let Some(l) = c.lead_time()
            && let Some(k) = at(&c.service, &c.environment, c.deployed_at)
        {
            owned.entry(k).or_default().lead_times.push(l);
        }
    }
    for i in &p.incidents {
        if let (Some(r), Some(t)) = (i.resolved_at, i.restore_time())
            && let Some(k) = at(&i.service, &i.environment, r)
        {
            owned.entry(k).or_default().restore_times.push(t);
        }
    }

    let n = p.pairs.len() * starts.len();
    let mut service = StringBuilder::with_capacity(n, n * 8);
    let mut environment = StringBuilder::with_capacity(n, n * 8);
    let mut bucket = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    let mut deployments = Int64Builder::with_capacity(n);
    let mut frequency = Float64Builder::with_capacity(n);
    let mut lt50 = IntervalMonthDayNanoBuilder::with_capacity(n);
    let mut lt90 = IntervalMonthDayNanoBuilder::with_capacity(n);
    let mut cfr = Float64Builder::with_capacity(n);
    let mut ttr = IntervalMonthDayNanoBuilder::with_capacity(n);
    let mut fdrt = IntervalMonthDayNanoBuilder::with_capacity(n);
    let mut tiers: [StringBuilder; 4] = Default::default();
    let seconds = |nanos: Option<i64>| nanos.map(|n| n as f64 / 1e9);
    for (pair, (s, e)) in p.pairs.iter().enumerate() {
        for &start in &starts {
            let mut b = owned.remove(&(pair, start)).unwrap_or_default();
            let days = days_in(start, bucket_end(start, grain));
            let freq = b.deployments as f64 / days;
            let lead50 = median_nanos(&mut b.lead_times, 0.5);
            let lead90 = median_nanos(&mut b.lead_times, 0.9);
            let rate = (b.deployments > 0).then(|| b.failed as f64 / b.deployments as f64);
            let restore = median_nanos(&mut b.restore_times, 0.5);
            let recovery = median_nanos(&mut b.recovery_times, 0.5);
            service.append_value(s);
            environment.append_value(e);
            bucket.append_value(start);
            deployments.append_value(b.deployments);
            frequency.append_value(freq);
            lt50.append_option(lead50.map(nanos_to_interval));
            lt90.append_option(lead90.map(nanos_to_interval));
            cfr.append_option(rate);
            ttr.append_option(restore.map(nanos_to_interval));
            fdrt.append_option(recovery.map(nanos_to_interval));
            let values = [
                (Metric::LeadTime, seconds(lead50)),
                (Metric::DeploymentFrequency, Some(freq)),
                (Metric::ChangeFailureRate, rate),
                (Metric::TimeToRestore, seconds(restore)),
            ];
            for (builder, (metric, value)) in tiers.iter_mut().zip(values) {
                builder.append_option(value.map(|v| tier(metric, v).as_str()));
            }
        }
    }
    let [t_lead, t_freq, t_cfr, t_ttr] = tiers;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(service.finish()),
        Arc::new(environment.finish()),
        Arc::new(bucket.finish()),
        Arc::new(deployments.finish()),
        Arc::new(frequency.finish()),
        Arc::new(lt50.finish()),
        Arc::new(lt90.finish()),
        Arc::new(cfr.finish()),
        Arc::new(ttr.finish()),
        Arc::new(fdrt.finish()),
        Arc::new({ t_lead }.finish()),
        Arc::new({ t_freq }.finish()),
        Arc::new({ t_cfr }.finish()),
        Arc::new({ t_ttr }.finish()),
    ];
    Ok(RecordBatch::try_new(dora_metrics_schema(), columns)?)
}

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
        Arc::new(Schema::new(QUALITY_COLUMNS.iter().map(|c| Field::new(*c, DataType::Int64, false)).collect::<Vec<_>>()))
    });
    SCHEMA.clone()
}

/// One row of counts that explains every number of the metrics.
pub fn dora_quality(p: &Projected, snap: &Snapshot, as_of: Option<i64>) -> Result<RecordBatch> {
    let duplicates: u64 = snap
        .appends
        .iter()
        .filter(|a| as_of.is_none_or(|t| a.ingested_at <= t))
        .map(|a| a.duplicates)
        .sum();
    let (conflicts, rejected) = count_rejections(snap, as_of)?;
    let unknown: std::collections::HashSet<&str> =
        p.changes.iter().filter(|c| c.committed_at.is_none()).map(|c| c.commit_sha.as_str()).collect();
    let values = [
        p.event_count,
        duplicates,
        conflicts,
        rejected,
        p.orphan_resolves.len() as u64,
        p.incidents.iter().filter(|i| i.resolved_at.is_none()).count() as u64,
        p.incidents.iter().filter(|i| i.attribution.is_none()).count() as u64,
        unknown.len() as u64,
        p.changes.iter().filter(|c| c.raw_lead_time().is_some_and(|l| l < 0)).count() as u64,
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
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        for batch in reader {
            let batch = batch?;
            let (Some(kind), Some(at)) = (
                batch.column_by_name("kind").and_then(|c| c.as_string_opt::<i32>()),
                batch.column_by_name("rejected_at").and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
            ) else {
                return Err(Error::Corrupt(format!("{}: not a quarantine file", path.display())));
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
