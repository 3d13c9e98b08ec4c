//! SPEC §2 "Deployment": fold the `deployment_*` events of one
//! `deployment_id` into its state.

use datafusion::common::HashMap;

use super::chronological;
use crate::event::{Event, EventType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
    /// Started (or rolled back) but no terminal event yet.
    InProgress,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::InProgress => "in_progress",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub deployment_id: String,
    pub service: String,
    pub environment: String,
    pub team: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub status: Status,
    pub commit_sha: Option<String>,
    pub change_ids: Option<Vec<String>>,
    /// The `commit_sha` of each `deployment_succeeded` event (each part),
    /// in event order: rule 1 of the changes ships them too.
    pub part_shas: Vec<String>,
    pub rolled_back: bool,
    pub first_rollback_at: Option<i64>,
    /// Times of its `deployment_succeeded` events: when each part went live
    /// (incident attribution looks at these).
    pub succeeded_at: Vec<i64>,
    /// Set by incident attribution; `None` unless the deployment succeeded.
    pub failed: Option<bool>,
    pub recovery_time: Option<i64>,
    /// The `incident_id` of its earliest event that names one: the incident
    /// it says it remediates (see `rework.rs`).
    pub names_incident: Option<String>,
    /// Set by the rework rule; `None` unless the deployment succeeded.
    pub rework: Option<bool>,
    /// The incident it remediates, when it is rework.
    pub remediates: Option<String>,
}

impl Deployment {
    pub fn is_successful(&self) -> bool {
        self.status == Status::Succeeded
    }
}

/// All deployments of the log, sorted by id.
pub fn deployments(events: &[Event]) -> Vec<Deployment> {
    let mut by_id: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events.iter().filter(|e| e.event_type.is_deployment()) {
        if let Some(id) = e.deployment_id.as_deref() {
            by_id.entry(id).or_default().push(e);
        }
    }
    let mut out: Vec<Deployment> = by_id.into_iter().map(|(id, evs)| fold(id, chronological(evs))).collect();
    out.sort_by(|a, b| a.deployment_id.cmp(&b.deployment_id));
    out
}

fn fold(id: &str, evs: Vec<&Event>) -> Deployment {
    let started_at = evs.iter().find(|e| e.event_type == EventType::DeploymentStarted).map(|e| e.occurred_at);
    // Latest terminal event; at equal times failed wins (it sorts after succeeded here).
    let terminal = evs
        .iter()
        .filter(|e| matches!(e.event_type, EventType::DeploymentSucceeded | EventType::DeploymentFailed))
        .max_by_key(|e| (e.occurred_at, e.event_type == EventType::DeploymentFailed, &e.event_id))
        .copied();
    let defining = terminal.unwrap_or(evs[0]);
    let commit_sha = defining
        .commit_sha
        .clone()
        .or_else(|| evs.iter().rev().filter(|e| !std::ptr::eq(**e, defining)).find_map(|e| e.commit_sha.clone()));
    let rollbacks: Vec<i64> =
        evs.iter().filter(|e| e.event_type == EventType::DeploymentRolledBack).map(|e| e.occurred_at).collect();
    let parts: Vec<&&Event> = evs.iter().filter(|e| e.event_type == EventType::DeploymentSucceeded).collect();
    let status = match terminal.map(|t| t.event_type) {
        Some(EventType::DeploymentSucceeded) => Status::Succeeded,
        Some(_) => Status::Failed,
        None => Status::InProgress,
    };
    Deployment {
        deployment_id: id.to_string(),
        service: defining.service.clone(),
        environment: defining.environment.clone().unwrap_or_default(),
        team: defining.team.clone().or_else(|| evs.iter().rev().find_map(|e| e.team.clone())),
        started_at,
        finished_at: terminal.map(|t| t.occurred_at),
        status,
        commit_sha,
        change_ids: match status {
            Status::Succeeded => union_of_parts(&parts).or_else(|| defining.change_ids.clone()),
            _ => defining.change_ids.clone(),
        },
        part_shas: parts.iter().filter_map(|e| e.commit_sha.clone()).collect(),
        rolled_back: !rollbacks.is_empty(),
        first_rollback_at: rollbacks.first().copied(),
        succeeded_at: parts.iter().map(|e| e.occurred_at).collect(),
        failed: None,
        recovery_time: None,
        names_incident: evs.iter().find_map(|e| e.incident_id.clone()),
        rework: None,
        remediates: None,
    }
}

/// A deployment in several parts ships what every part names: the union of
/// the `change_ids` of its `deployment_succeeded` events, in event order,
/// first occurrence kept; `None` when no part carries a list.
fn union_of_parts(parts: &[&&Event]) -> Option<Vec<String>> {
    let lists: Vec<&Vec<String>> = parts.iter().filter_map(|e| e.change_ids.as_ref()).collect();
    if lists.is_empty() {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    Some(lists.into_iter().flatten().filter(|id| seen.insert(id.as_str())).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::tests::ev;

    #[test]
    fn terminal_state_is_the_latest_and_failed_wins_ties() {
        let d = deployments(&[
            ev("a", "deployment_started", 10).dep("D"),
            ev("b", "deployment_succeeded", 20).dep("D").sha("h1"),
            ev("c", "deployment_failed", 20).dep("D"),
        ]);
        assert_eq!(d[0].status, Status::Failed);
        assert_eq!(d[0].finished_at, Some(20));
        assert_eq!(d[0].started_at, Some(10));
        // No sha on the terminal event: the latest other event's.
        assert_eq!(d[0].commit_sha.as_deref(), Some("h1"));
        let d = deployments(&[ev("b", "deployment_failed", 20).dep("D"), ev("c", "deployment_succeeded", 30).dep("D")]);
        assert_eq!(d[0].status, Status::Succeeded);
    }

    #[test]
    fn parts_ship_the_union_of_their_lists_and_their_heads() {
        let d = deployments(&[
            ev("p1", "deployment_succeeded", 10).dep("D").sha("h1").changes(&["a", "b"]),
            ev("p2", "deployment_succeeded", 20).dep("D").sha("h2").changes(&["b", "c"]),
            ev("p3", "deployment_succeeded", 15).dep("D"),
        ]);
        assert_eq!(d[0].change_ids, Some(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(d[0].part_shas, vec!["h1".to_string(), "h2".to_string()]);
        assert_eq!((d[0].commit_sha.as_deref(), d[0].finished_at), (Some("h2"), Some(20)));
        // An empty list is a list: of nothing.
        let d = deployments(&[ev("e", "deployment_succeeded", 10).dep("E").changes(&[])]);
        assert_eq!(d[0].change_ids, Some(vec![]));
        // No part carries a list: none.
        let d = deployments(&[ev("n", "deployment_succeeded", 10).dep("N").sha("h")]);
        assert_eq!(d[0].change_ids, None);
    }

    #[test]
    fn without_terminal_it_is_in_progress_and_rollbacks_mark_it() {
        let d = deployments(&[
            ev("a", "deployment_started", 10).dep("D").env("staging"),
            ev("r", "deployment_rolled_back", 40).dep("D"),
        ]);
        assert_eq!(d[0].status, Status::InProgress);
        assert_eq!(d[0].environment, "staging");
        assert!(d[0].rolled_back);
        assert_eq!(d[0].first_rollback_at, Some(40));
    }
}
