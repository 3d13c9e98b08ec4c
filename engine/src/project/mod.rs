//! Event-sourced projections (SPEC §2): `deployments`, `changes`,
//! `incidents` as pure functions of the events visible at a snapshot.
//!
//! [`project`] is the one entry point that applies the rules; each rule lives
//! in exactly one function of `deployments.rs`, `changes.rs`,
//! `incidents.rs` or `rework.rs`. The rules fold events in [`chronological`] order, so the
//! result never depends on arrival order. Nothing here does I/O: the
//! projections are pure functions of a set of events; `tables.rs` gives
//! them as Arrow tables.

pub mod changes;
pub mod deployments;
pub mod incidents;
pub mod rework;
pub mod tables;

use std::collections::BTreeSet;

use crate::event::Event;

/// The default attribution window (SPEC §2): a deployment may be inferred as
/// an incident's cause if it finished at most this long (µs) before the
/// incident opened.
pub const DEFAULT_ATTRIBUTION_WINDOW: Option<i64> = Some(24 * 3_600_000_000);

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
    project_carrying(events, window, &[])
}

/// [`project`] of the events of one part of a history whose earlier parts
/// left the commits `carried` unshipped somewhere (see
/// [`changes::Carried`]); they are no events of this part.
pub fn project_carrying(events: &[Event], window: Option<i64>, carried: &[changes::Carried]) -> Projected {
    let t = std::time::Instant::now();
    let mut deployments = deployments::deployments(events);
    let t1 = t.elapsed();
    let mut commits = changes::commits(events);
    let mut shipped_before = datafusion::common::HashSet::new();
    for c in carried {
        let commit = changes::Commit { sha: &c.sha, service: &c.service, committed_at: c.committed_at };
        commits.entry(&c.sha).or_insert(commit);
        shipped_before.extend(c.shipped_to.iter().map(|e| (c.sha.as_str(), e.as_str())));
    }
    let changes = changes::changes(&deployments, &commits, &shipped_before);
    let t2 = t.elapsed();
    let (mut incidents, orphan_resolves) = incidents::incidents(events);
    incidents::attribute(&mut incidents, &mut deployments, window);
    rework::rework(&mut deployments, &incidents);
    tracing::debug!(deployments = ?t1, changes = ?(t2 - t1), incidents = ?(t.elapsed() - t2), "fold");
    // Borrowed first: a pair's strings are copied once, not per event.
    let pairs: BTreeSet<(&str, &str)> = events
        .iter()
        .filter(|e| e.event_type.is_deployment() || e.event_type.is_incident())
        .map(|e| (e.service.as_str(), e.environment.as_deref().unwrap_or_default()))
        .collect();
    let pairs = pairs.into_iter().map(|(s, e)| (s.to_string(), e.to_string())).collect();
    let span = events.iter().map(|e| e.occurred_at).fold(None, |acc, t| widen(acc, Some((t, t))));
    Projected { deployments, changes, incidents, orphan_resolves, pairs, span, event_count: events.len() as u64 }
}

/// The least range holding both `a` and `b` (either may be none).
pub(crate) fn widen(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some((lo, hi)), Some((l, h))) => Some((lo.min(l), hi.max(h))),
        (a, b) => a.or(b),
    }
}

/// Events in a deterministic order: by time, then id. Every "earliest" and
/// "latest" below is taken in this order, so arrival order never matters.
fn chronological(mut events: Vec<&Event>) -> Vec<&Event> {
    events.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    events
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::EventType;

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
