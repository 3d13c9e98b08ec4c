//! Event-sourced projections (SPEC §2): `deployments`, `changes`,
//! `incidents` as pure functions of the events visible at a snapshot.
//!
//! [`project`] is the one entry point that applies the rules; each rule lives
//! in exactly one function of `deployments.rs`, `changes.rs` or
//! `incidents.rs`. The rules sort what they fold by (time, id), so the
//! result never depends on arrival order. Results are cached per (snapshot,
//! as_of, attribution window).

pub mod changes;
pub mod deployments;
pub mod incidents;
pub mod metrics;
pub(crate) mod tables;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int16Type, TimestampMicrosecondType};

use crate::error::{Error, Result};
use crate::event::{Event, EventType};
use crate::log::Snapshot;
pub use tables::register;

/// Everything derived from one view of the log.
#[derive(Debug, Clone, Default)]
pub struct Projected {
    pub deployments: Vec<deployments::Deployment>,
    pub changes: Vec<changes::Change>,
    pub incidents: Vec<incidents::Incident>,
    pub orphan_resolves: Vec<String>,
    /// (service, environment) pairs that have deployment or incident events.
    pub pairs: BTreeSet<(String, String)>,
    /// Earliest and latest `occurred_at` in the log.
    pub span: Option<(i64, i64)>,
    pub event_count: u64,
}

/// Applies SPEC §2 to `events`. `window` is the attribution window in µs
/// (`None`: unbounded).
pub fn project(events: &[Event], window: Option<i64>) -> Projected {
    let t = std::time::Instant::now();
    let mut deployments = deployments::deployments(events);
    let t1 = t.elapsed();
    let commits = changes::commits(events);
    let changes = changes::changes(&deployments, &commits);
    let t2 = t.elapsed();
    let (mut incidents, orphan_resolves) = incidents::incidents(events);
    incidents::attribute(&mut incidents, &mut deployments, window);
    tracing::debug!(deployments = ?t1, changes = ?(t2 - t1), incidents = ?(t.elapsed() - t2), "fold");
    let pairs = events
        .iter()
        .filter(|e| e.event_type.is_deployment() || e.event_type.is_incident())
        .map(|e| (e.service.clone(), e.environment.clone().unwrap_or_default()))
        .collect();
    let span = events
        .iter()
        .map(|e| e.occurred_at)
        .fold(None, |acc: Option<(i64, i64)>, t| Some(acc.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t)))));
    Projected { deployments, changes, incidents, orphan_resolves, pairs, span, event_count: events.len() as u64 }
}

/// Which stored events to read, by `ingested_at`: after `after`
/// (exclusive) and up to `through` (inclusive); `None` leaves a side open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ingested {
    pub after: Option<i64>,
    pub through: Option<i64>,
}

impl Ingested {
    fn contains(self, t: i64) -> bool {
        self.after.is_none_or(|a| t > a) && self.through.is_none_or(|b| t <= b)
    }
}

/// Reads the events visible at `snap` and ingested at or before `as_of`.
pub fn load_events(snap: &Snapshot, as_of: Option<i64>) -> Result<Vec<Event>> {
    let root = snap.events_root();
    let mut out = Vec::new();
    for f in &snap.event_files {
        read_events(&root.join(&f.path), Ingested { after: None, through: as_of }, &mut |batch| {
            out.extend(batch);
            Ok(())
        })?;
    }
    Ok(out)
}

/// Calls `each` with the events of one Parquet file of the `events` schema
/// that lie in `range`, a batch at a time. Row groups written wholly before
/// `range.after` are skipped by their statistics, and the columns no rule
/// reads (`source`, `attributes`) are not decoded.
pub fn read_events(path: &Path, range: Ingested, each: &mut dyn FnMut(Vec<Event>) -> Result<()>) -> Result<()> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::statistics::Statistics;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)?.with_batch_size(8192);
    let columns = builder.parquet_schema().columns();
    let wanted: Vec<usize> = (0..columns.len())
        .filter(|&i| !matches!(columns[i].path().parts()[0].as_str(), "source" | "attributes"))
        .collect();
    let ingested = columns.iter().position(|c| c.name() == "ingested_at");
    if let (Some(after), Some(col)) = (range.after, ingested) {
        let groups: Vec<usize> = (0..builder.metadata().num_row_groups())
            .filter(|&g| match builder.metadata().row_group(g).column(col).statistics() {
                Some(Statistics::Int64(s)) => s.max_opt().is_none_or(|&max| max > after),
                _ => true,
            })
            .collect();
        if groups.is_empty() {
            return Ok(());
        }
        builder = builder.with_row_groups(groups);
    }
    let mask = ProjectionMask::leaves(builder.parquet_schema(), wanted);
    for batch in builder.with_projection(mask).build()? {
        let mut out = Vec::new();
        decode(&batch?, range, &mut out)?;
        each(out)?;
    }
    Ok(())
}

fn decode(batch: &RecordBatch, range: Ingested, out: &mut Vec<Event>) -> Result<()> {
    let text = |name: &str| -> Result<&arrow::array::StringArray> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::Corrupt(format!("events file lacks text column {name}")))
    };
    let ts = |name: &str| -> Result<&arrow::array::TimestampMicrosecondArray> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| Error::Corrupt(format!("events file lacks timestamp column {name}")))
    };
    let (id, ty, occurred, service, env) =
        (text("event_id")?, text("event_type")?, ts("occurred_at")?, text("service")?, text("environment")?);
    let (sha, dep, inc, team) = (text("commit_sha")?, text("deployment_id")?, text("incident_id")?, text("team")?);
    let ingested = ts("ingested_at")?;
    let changes = batch
        .column_by_name("change_ids")
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or_else(|| Error::Corrupt("events file lacks change_ids".into()))?;
    let version = batch.column_by_name("schema_version").and_then(|c| c.as_primitive_opt::<Int16Type>());
    let opt = |a: &arrow::array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    for i in 0..batch.num_rows() {
        if !range.contains(ingested.value(i)) {
            continue;
        }
        let Some(event_type) = EventType::parse(ty.value(i)) else {
            return Err(Error::Corrupt(format!("stored event has unknown type {}", ty.value(i))));
        };
        let change_ids = (!changes.is_null(i)).then(|| {
            let list = changes.value(i);
            let s = list.as_string::<i32>();
            (0..s.len()).map(|j| s.value(j).to_string()).collect()
        });
        out.push(Event {
            event_id: id.value(i).to_string(),
            event_type,
            occurred_at: occurred.value(i),
            service: service.value(i).to_string(),
            environment: opt(env, i),
            commit_sha: opt(sha, i),
            deployment_id: opt(dep, i),
            incident_id: opt(inc, i),
            change_ids,
            team: opt(team, i),
            source: None,
            attributes: None,
            schema_version: version.map_or(1, |v| v.value(i)),
        });
    }
    Ok(())
}

type CacheKey = (std::path::PathBuf, Option<u64>, Option<i64>, Option<i64>);
static CACHE: LazyLock<Mutex<Vec<(CacheKey, Arc<Projected>)>>> = LazyLock::new(Default::default);
const CACHED: usize = 4;

/// The projections of `snap` as of `as_of` with `window`, computed once.
pub fn projected(snap: &Snapshot, as_of: Option<i64>, window: Option<i64>) -> Result<Arc<Projected>> {
    let key = (snap.root.clone(), snap.version, as_of, window);
    if let Ok(cache) = CACHE.lock()
        && let Some((_, p)) = cache.iter().find(|(k, _)| *k == key)
    {
        return Ok(p.clone());
    }
    let started = std::time::Instant::now();
    let events = load_events(snap, as_of)?;
    let loaded = started.elapsed();
    let p = Arc::new(project(&events, window));
    tracing::info!(events = events.len(), ?loaded, projected = ?(started.elapsed() - loaded), "projections rebuilt");
    if let Ok(mut cache) = CACHE.lock() {
        cache.retain(|(k, _)| *k != key);
        cache.push((key, p.clone()));
        if cache.len() > CACHED {
            cache.remove(0);
        }
    }
    Ok(p)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A terse event builder for rule tests: service `svc`, environment
    /// `production` unless changed.
    pub fn ev(id: &str, ty: &str, at: i64) -> Event {
        Event {
            event_id: id.into(),
            event_type: EventType::parse(ty).unwrap(),
            occurred_at: at,
            service: "svc".into(),
            environment: Some("production".into()),
            commit_sha: None,
            deployment_id: None,
            incident_id: None,
            change_ids: None,
            team: None,
            source: None,
            attributes: None,
            schema_version: 1,
        }
    }

    impl Event {
        pub fn dep(mut self, d: &str) -> Self {
            self.deployment_id = Some(d.into());
            self
        }
        pub fn inc(mut self, i: &str) -> Self {
            self.incident_id = Some(i.into());
            self
        }
        pub fn sha(mut self, s: &str) -> Self {
            self.commit_sha = Some(s.into());
            self
        }
        pub fn env(mut self, e: &str) -> Self {
            self.environment = Some(e.into());
            self
        }
        pub fn no_env(mut self) -> Self {
            self.environment = None;
            self
        }
        pub fn svc(mut self, s: &str) -> Self {
            self.service = s.into();
            self
        }
        pub fn changes(mut self, ids: &[&str]) -> Self {
            self.change_ids = Some(ids.iter().map(|s| s.to_string()).collect());
            self
        }
    }

    #[test]
    fn projection_does_not_depend_on_arrival_order() {
        let mut events = vec![
            ev("c1", "commit", 10).sha("a1").no_env(),
            ev("d1", "deployment_succeeded", 25).dep("D1").sha("a1"),
            ev("d2", "deployment_succeeded", 25).dep("D2"),
            ev("o", "incident_opened", 30).inc("I"),
            ev("r", "incident_resolved", 40).inc("I"),
        ];
        let a = project(&events, Some(100));
        events.reverse();
        let b = project(&events, Some(100));
        assert_eq!(a.deployments, b.deployments);
        assert_eq!(a.changes, b.changes);
        assert_eq!(a.incidents, b.incidents);
        assert_eq!(a.span, Some((10, 40)));
    }
}
