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
    pub rolled_back: bool,
    pub first_rollback_at: Option<i64>,
    /// Times of its `deployment_succeeded` events: when each part went live
    /// (incident attribution looks at these).
    pub succeeded_at: Vec<i64>,
    /// Set by incident attribution; `None` unless the deployment succeeded.
    pub failed: Option<bool>,
    pub recovery_time: Option<i64>,
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
        change_ids: terminal.and_then(|t| t.change_ids.clone()),
        rolled_back: !rollbacks.is_empty(),
        first_rollback_at: rollbacks.first().copied(),
        succeeded_at: evs
            .iter()
            .filter(|e| e.event_type == EventType::DeploymentSucceeded)
            .map(|e| e.occurred_at)
            .collect(),
        failed: None,
        recovery_time: None,
    }
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
