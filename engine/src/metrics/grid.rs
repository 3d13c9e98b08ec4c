//! SPEC §3–§4: `dora_metrics(grain [, from, to])`, zero-filled per (service,
//! environment, bucket). Medians, rates, buckets and tiers come from the
//! `udfs` crate, the same code the SQL aggregate functions use.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int64Builder, IntervalMonthDayNanoBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::common::HashMap;
use leadline_udfs::{
    Grain, Metric, bucket_start, bucket_starts, nanos_to_interval, per_day, percentile_nanos, share, tier,
};

use crate::error::{Error, Result};
use crate::event::UTC;
use crate::project::Projected;

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
            Field::new("rework_rate", DataType::Float64, true),
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

/// Most buckets `dora_metrics` answers for one call (a day grain over about
/// 270 years); more is an error naming the limit, not a huge allocation.
pub const MAX_DORA_METRICS_BUCKETS: usize = 100_000;
/// Most rows (pairs × buckets) `dora_metrics` answers for one call.
pub const MAX_DORA_METRICS_ROWS: usize = 10_000_000;

fn describe_instant(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map_or_else(|| format!("{us} µs"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// What one (service, environment, bucket) collects, in µs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    deployments: i64,
    failed: i64,
    rework: i64,
    lead_times: Vec<i64>,
    restore_times: Vec<i64>,
    recovery_times: Vec<i64>,
}

impl Bucket {
    /// Adds what another part of the same bucket collected.
    fn absorb(&mut self, other: &Bucket) {
        self.deployments += other.deployments;
        self.failed += other.failed;
        self.rework += other.rework;
        self.lead_times.extend(&other.lead_times);
        self.restore_times.extend(&other.restore_times);
        self.recovery_times.extend(&other.recovery_times);
    }
}

/// What a fold of part of the log collected for a bucket that the end of
/// that part cuts (the read model folds a component's history in epochs,
/// whose cuts may fall inside a week): the bucket's row is computed from
/// every part (counts add, the values behind percentiles are kept whole).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartialBucket {
    pub service: String,
    pub environment: String,
    pub start: i64,
    pub bucket: Bucket,
}

fn median_nanos(values: &mut [i64], p: f64) -> Option<i64> {
    values.sort_unstable();
    let nanos: Vec<i64> = values.iter().map(|v| v.saturating_mul(1000)).collect();
    // Whole µs, as the read model stores them: rows folded in memory (as-of,
    // other windows) answer exactly as the stored ones.
    percentile_nanos(&nanos, p).map(|n| n / 1000 * 1000)
}

/// The rows of the (service, environment, bucket)s of `grain` that have
/// anything in them, over all of `p`'s time, ordered by (pair, bucket). A
/// bucket's row depends on nothing outside it, so rows computed once (per
/// component, in the read model) serve every later `from`/`to`.
pub fn metric_rows(p: &Projected, grain: Grain) -> Result<RecordBatch> {
    Ok(metric_rows_within(p, grain, None, &[])?.0)
}

/// [`metric_rows`] of the projections of the events before `end` (`None`:
/// all) of a history folded in parts (see `readmodel`): the rows of the
/// buckets that end by `end`, plus the part of the bucket `end` cuts, left
/// for the next part's fold, which adds it to its own (`head`: the parts
/// the previous fold left).
pub fn metric_rows_within<'a>(
    p: &'a Projected,
    grain: Grain,
    end: Option<i64>,
    head: &'a [PartialBucket],
) -> Result<(RecordBatch, Vec<PartialBucket>)> {
    // Keys borrow from `p`: a row's strings are copied once, not per entity.
    let bucket_of = |s: &'a str, e: &'a str, t: i64| (s, e, bucket_start(t, grain));
    let mut owned: std::collections::BTreeMap<(&str, &str, i64), Bucket> = Default::default();
    for d in p.deployments.iter().filter(|d| d.is_successful()) {
        let Some(f) = d.finished_at else { continue };
        let b = owned.entry(bucket_of(&d.service, &d.environment, f)).or_default();
        b.deployments += 1;
        b.rework += i64::from(d.rework == Some(true));
        if d.failed == Some(true) {
            b.failed += 1;
            b.recovery_times.extend(d.recovery_time);
        }
    }
    for c in &p.changes {
        if let Some(l) = c.lead_time() {
            owned.entry(bucket_of(&c.service, &c.environment, c.deployed_at)).or_default().lead_times.push(l);
        }
    }
    for i in &p.incidents {
        if let (Some(r), Some(t)) = (i.resolved_at, i.restore_time()) {
            owned.entry(bucket_of(&i.service, &i.environment, r)).or_default().restore_times.push(t);
        }
    }
    // Only pairs with deployment or incident events have rows (SPEC §4).
    let pairs: std::collections::HashSet<(&str, &str)> =
        p.pairs.iter().map(|(s, e)| (s.as_str(), e.as_str())).collect();
    owned.retain(|(s, e, _), _| pairs.contains(&(*s, *e)));
    // What the parts before collected for a bucket goes with this part's
    // before the tail is cut: a bucket longer than a part passes through.
    for h in head {
        owned.entry((&h.service, &h.environment, h.start)).or_default().absorb(&h.bucket);
    }
    let mut tail = Vec::new();
    if let Some(end) = end.filter(|&end| bucket_start(end, grain) < end) {
        let cut = bucket_start(end, grain);
        owned.retain(|&(s, e, start), b| {
            if start != cut {
                return true;
            }
            let bucket = std::mem::take(b);
            tail.push(PartialBucket { service: s.to_string(), environment: e.to_string(), start, bucket });
            false
        });
    }
    let mut rows = MetricRows::with_capacity(owned.len());
    for ((s, e, start), b) in owned {
        rows.push(s, e, start, grain, b);
    }
    Ok((rows.finish()?, tail))
}

/// `dora_metrics`: one row per pair of `pairs` and bucket of `grain` from the
/// bucket of `from` to the bucket of `to`, both inclusive (defaults: `span`),
/// taken from `rows` (see [`metric_rows`]) or zero-filled.
pub fn dora_metrics(
    rows: &[RecordBatch],
    pairs: &BTreeSet<(String, String)>,
    span: Option<(i64, i64)>,
    grain: Grain,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<RecordBatch> {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(s, e)| (s.as_str(), e.as_str())).collect();
    metric_grid(rows, &pairs, &grid_starts(span, grain, from, to)?, grain)
}

/// The bucket starts of `dora_metrics(grain, from, to)` over a log whose
/// `occurred_at` spans `span`: from the bucket of `from` to the bucket of
/// `to`, both inclusive (defaults: `span`). At most
/// [`MAX_DORA_METRICS_BUCKETS`], counted before anything is allocated:
/// `from`/`to` are the caller's.
pub fn grid_starts(span: Option<(i64, i64)>, grain: Grain, from: Option<i64>, to: Option<i64>) -> Result<Vec<i64>> {
    let Some((lo, hi)) = span.map(|(lo, hi)| (from.unwrap_or(lo), to.unwrap_or(hi))).or(from.zip(to)) else {
        return Ok(Vec::new());
    };
    if bucket_starts(lo, hi, grain).take(MAX_DORA_METRICS_BUCKETS + 1).count() > MAX_DORA_METRICS_BUCKETS {
        return Err(Error::Limit(format!(
            "dora_metrics('{grain}') from {} to {} spans more than {MAX_DORA_METRICS_BUCKETS} buckets; \
             at most {MAX_DORA_METRICS_BUCKETS} buckets are allowed: narrow from/to or use a coarser grain",
            describe_instant(lo),
            describe_instant(hi),
        )));
    }
    Ok(bucket_starts(lo, hi, grain).collect())
}

/// The `dora_metrics` rows of every pair of `pairs` (in that order) and
/// bucket of `starts`: taken from `rows` (see [`metric_rows`]; rows of other
/// pairs or buckets are ignored) or zero-filled. At most
/// [`MAX_DORA_METRICS_ROWS`] rows.
pub fn metric_grid(rows: &[RecordBatch], pairs: &[(&str, &str)], starts: &[i64], grain: Grain) -> Result<RecordBatch> {
    if starts.len().saturating_mul(pairs.len()) > MAX_DORA_METRICS_ROWS {
        return Err(Error::Limit(format!(
            "dora_metrics('{grain}') would have {} buckets for {} (service, environment) pairs; \
             at most {MAX_DORA_METRICS_ROWS} rows are allowed: filter by service or environment, \
             narrow from/to or use a coarser grain",
            starts.len(),
            pairs.len()
        )));
    }
    if starts.is_empty() || pairs.is_empty() {
        return Ok(RecordBatch::new_empty(dora_metrics_schema()));
    }
    // Source `rows.len()` is the empty bucket's row, computed like any other
    // (its frequency, 0 ÷ days, is 0 whatever the bucket).
    let mut zero = MetricRows::with_capacity(1);
    zero.push("", "", 0, grain, Bucket::default());
    let zero = zero.finish()?;
    let mut found: HashMap<(&str, &str, i64), (usize, usize)> = HashMap::new();
    for (b, batch) in rows.iter().enumerate() {
        let (s, e) = (batch.column(0).as_string::<i32>(), batch.column(1).as_string::<i32>());
        let t = batch.column(2).as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            found.insert((s.value(i), e.value(i), t.value(i)), (b, i));
        }
    }
    let n = pairs.len() * starts.len();
    let mut service = StringBuilder::with_capacity(n, n * 8);
    let mut environment = StringBuilder::with_capacity(n, n * 8);
    let mut bucket = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    let mut take: Vec<(usize, usize)> = Vec::with_capacity(n);
    for &(s, e) in pairs {
        for &start in starts {
            service.append_value(s);
            environment.append_value(e);
            bucket.append_value(start);
            take.push(found.get(&(s, e, start)).copied().unwrap_or((rows.len(), 0)));
        }
    }
    let mut columns: Vec<ArrayRef> =
        vec![Arc::new(service.finish()), Arc::new(environment.finish()), Arc::new(bucket.finish())];
    let sources: Vec<&RecordBatch> = rows.iter().chain(std::iter::once(&zero)).collect();
    for c in 3..dora_metrics_schema().fields().len() {
        let arrays: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
        columns.push(arrow::compute::interleave(&arrays, &take)?);
    }
    Ok(RecordBatch::try_new(dora_metrics_schema(), columns)?)
}

/// Builds `dora_metrics` rows from buckets; the one place a bucket's
/// metrics and tiers are computed.
struct MetricRows {
    service: StringBuilder,
    environment: StringBuilder,
    bucket: TimestampMicrosecondBuilder,
    deployments: Int64Builder,
    frequency: Float64Builder,
    lt50: IntervalMonthDayNanoBuilder,
    lt90: IntervalMonthDayNanoBuilder,
    cfr: Float64Builder,
    rework: Float64Builder,
    ttr: IntervalMonthDayNanoBuilder,
    fdrt: IntervalMonthDayNanoBuilder,
    tiers: [StringBuilder; 4],
}

impl MetricRows {
    fn with_capacity(n: usize) -> Self {
        Self {
            service: StringBuilder::with_capacity(n, n * 8),
            environment: StringBuilder::with_capacity(n, n * 8),
            bucket: TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC),
            deployments: Int64Builder::with_capacity(n),
            frequency: Float64Builder::with_capacity(n),
            lt50: IntervalMonthDayNanoBuilder::with_capacity(n),
            lt90: IntervalMonthDayNanoBuilder::with_capacity(n),
            cfr: Float64Builder::with_capacity(n),
            rework: Float64Builder::with_capacity(n),
            ttr: IntervalMonthDayNanoBuilder::with_capacity(n),
            fdrt: IntervalMonthDayNanoBuilder::with_capacity(n),
            tiers: Default::default(),
        }
    }

    fn push(&mut self, s: &str, e: &str, start: i64, grain: Grain, mut b: Bucket) {
        let seconds = |nanos: Option<i64>| nanos.map(|n| n as f64 / 1e9);
        let freq = per_day(b.deployments, start, start, grain);
        let lead50 = median_nanos(&mut b.lead_times, 0.5);
        let lead90 = median_nanos(&mut b.lead_times, 0.9);
        let rate = share(b.failed, b.deployments);
        let restore = median_nanos(&mut b.restore_times, 0.5);
        let recovery = median_nanos(&mut b.recovery_times, 0.5);
        self.service.append_value(s);
        self.environment.append_value(e);
        self.bucket.append_value(start);
        self.deployments.append_value(b.deployments);
        self.frequency.append_value(freq);
        self.lt50.append_option(lead50.map(nanos_to_interval));
        self.lt90.append_option(lead90.map(nanos_to_interval));
        self.cfr.append_option(rate);
        self.rework.append_option(share(b.rework, b.deployments));
        self.ttr.append_option(restore.map(nanos_to_interval));
        self.fdrt.append_option(recovery.map(nanos_to_interval));
        let values = [
            (Metric::LeadTime, seconds(lead50)),
            (Metric::DeploymentFrequency, Some(freq)),
            (Metric::ChangeFailureRate, rate),
            (Metric::TimeToRestore, seconds(restore)),
        ];
        for (builder, (metric, value)) in self.tiers.iter_mut().zip(values) {
            builder.append_option(value.map(|v| tier(metric, v).as_str()));
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let [t_lead, t_freq, t_cfr, t_ttr] = &mut self.tiers;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.service.finish()),
            Arc::new(self.environment.finish()),
            Arc::new(self.bucket.finish()),
            Arc::new(self.deployments.finish()),
            Arc::new(self.frequency.finish()),
            Arc::new(self.lt50.finish()),
            Arc::new(self.lt90.finish()),
            Arc::new(self.cfr.finish()),
            Arc::new(self.rework.finish()),
            Arc::new(self.ttr.finish()),
            Arc::new(self.fdrt.finish()),
            Arc::new(t_lead.finish()),
            Arc::new(t_freq.finish()),
            Arc::new(t_cfr.finish()),
            Arc::new(t_ttr.finish()),
        ];
        Ok(RecordBatch::try_new(dora_metrics_schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 11): `dora_metrics('day', from, to)` over a huge
    /// range materialized every bucket start (and the grid) before anything
    /// checked its size.
    #[test]
    fn the_bucket_count_is_capped_before_anything_is_allocated() {
        let pairs: BTreeSet<(String, String)> = [("s".to_string(), "production".to_string())].into();
        let err = dora_metrics(&[], &pairs, None, Grain::Day, Some(i64::MIN), Some(i64::MAX)).unwrap_err();
        assert!(matches!(err, Error::Limit(_)), "{err}");
        assert!(err.to_string().contains("more than 100000 buckets"), "{err}");
        assert!(err.to_string().contains("at most 100000 buckets are allowed"), "{err}");
        let day = leadline_udfs::MICROS_PER_DAY;
        let last = (MAX_DORA_METRICS_BUCKETS as i64 - 1) * day;
        assert_eq!(dora_metrics(&[], &pairs, None, Grain::Day, Some(0), Some(last)).unwrap().num_rows(), 100_000);
        assert!(dora_metrics(&[], &pairs, None, Grain::Day, Some(0), Some(last + day)).is_err());
        // Rows: pairs × buckets.
        let many: BTreeSet<(String, String)> = (0..200).map(|i| (format!("s{i}"), "p".to_string())).collect();
        let err = dora_metrics(&[], &many, None, Grain::Day, Some(0), Some(last)).unwrap_err();
        assert!(
            err.to_string().contains("100000 buckets for 200 (service, environment) pairs; at most 10000000 rows"),
            "{err}"
        );
    }
}
