//! GitHub: `push` → one `commit` per pushed commit of the default branch
//! (or `webhooks.map.branches`), at the commit's own timestamp;
//! `deployment_status` → `deployment_started` (`queued`, `pending`,
//! `in_progress`), `deployment_succeeded` (`success`) or
//! `deployment_failed` (`failure`, `error`) with the deployment's `sha` and
//! environment. The service is the repository's name (or its mapping).
//! Signed with `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`.
//!
//! `workflow_run` is not mapped: a workflow is not a deployment unless it
//! says so, and workflows that deploy report it through the Deployments API
//! (`deployment_status`), which names the environment and the commit.

use serde_json::Value;

use super::{Delivery, Repository, at, environment, id, opt_text, push_commits, row, set, text};
use crate::config::Mapping;
use crate::http::auth::signed_with;

pub const EVENT_HEADER: &str = "x-github-event";
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
pub const DELIVERY_HEADER: &str = "x-github-delivery";

const SOURCE: &str = "github";

/// Whether `signature` (`sha256=<hex>`) signs `body` with `secret`.
pub fn verify(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    signature.and_then(|s| s.trim().strip_prefix("sha256=")).is_some_and(|hex| signed_with(secret, body, hex))
}

/// The canonical events of one delivery of GitHub event `event`.
pub fn map(event: &str, payload: &Value, map: &Mapping) -> Result<Delivery, String> {
    match event {
        "push" => {
            let repo = repository(payload, map)?;
            if at(payload, "deleted").and_then(Value::as_bool) == Some(true) {
                return Ok(Delivery::Ignored("a deleted branch".into()));
            }
            push_commits(SOURCE, &repo, payload, map)
        }
        "deployment_status" => deployment_status(payload, map),
        "ping" => Ok(Delivery::Ignored("ping: the webhook reaches leadline".into())),
        other => Ok(Delivery::Ignored(format!(
            "GitHub '{other}' events are not used (leadline maps push and deployment_status)"
        ))),
    }
}

fn repository(payload: &Value, map: &Mapping) -> Result<Repository, String> {
    Ok(Repository::new(
        map,
        text(payload, "repository.full_name")?,
        text(payload, "repository.name")?,
        opt_text(payload, "repository.default_branch"),
    ))
}

fn deployment_status(payload: &Value, map: &Mapping) -> Result<Delivery, String> {
    let repo = repository(payload, map)?;
    let state = text(payload, "deployment_status.state")?;
    let event_type = match state {
        "queued" | "pending" | "in_progress" => "deployment_started",
        "success" => "deployment_succeeded",
        "failure" | "error" => "deployment_failed",
        other => {
            return Ok(Delivery::Ignored(format!(
                "deployment state '{other}' is neither a start nor an end of a deployment"
            )));
        }
    };
    let env = opt_text(payload, "deployment_status.environment")
        .or_else(|| opt_text(payload, "deployment.environment"))
        .ok_or("no deployment_status.environment or deployment.environment")?;
    let status_id = id(payload, "deployment_status.id")?;
    let deployment_id = format!("{SOURCE}:{}:{}", repo.full_name, id(payload, "deployment.id")?);
    let mut r = row(
        SOURCE,
        format!("{SOURCE}:deployment_status:{status_id}"),
        event_type,
        text(payload, "deployment_status.created_at")?,
        &repo.service,
    );
    set(&mut r, "environment", Some(&environment(map, env)));
    set(&mut r, "deployment_id", Some(&deployment_id));
    set(&mut r, "commit_sha", Some(text(payload, "deployment.sha")?));
    set(&mut r, "team", repo.team.as_deref());
    r.insert("attributes".into(), leadline_engine::RawValue::Json(serde_json::json!({"state": state})));
    Ok(Delivery::Events(vec![r]))
}

#[cfg(test)]
mod tests {
    use leadline_engine::{Event, EventType, RawRow};
    use serde_json::json;

    use super::*;
    use crate::config::ServiceMapping;
    use crate::http::auth::sign;

    fn events(d: Delivery) -> Vec<Event> {
        match d {
            Delivery::Events(rows) => rows.iter().map(|r: &RawRow| Event::from_raw(r).unwrap()).collect(),
            Delivery::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    fn push() -> Value {
        json!({
            "ref": "refs/heads/main", "before": "0000", "after": "bbb2", "created": false, "deleted": false,
            "repository": {"id": 7, "name": "checkout", "full_name": "acme/checkout", "default_branch": "main"},
            "pusher": {"name": "dev"},
            "commits": [
                {"id": "aaa1", "distinct": true, "message": "fix", "timestamp": "2026-03-02T10:00:00+01:00",
                 "author": {"name": "A", "email": "a@example.com"}},
                {"id": "bbb2", "distinct": true, "message": "feat", "timestamp": "2026-03-02T11:30:00Z",
                 "author": {"name": "B", "email": "b@example.com"}}
            ],
            "head_commit": {"id": "bbb2"}
        })
    }

    #[test]
    fn a_push_is_one_commit_per_pushed_commit_at_its_own_time() {
        let mut map = Mapping::default();
        map.services.insert(
            "acme/checkout".into(),
            ServiceMapping { service: Some("checkout-svc".into()), team: Some("payments".into()), environment: None },
        );
        let e = events(map_push(&push(), &map));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].event_id, "github:commit:acme/checkout:aaa1");
        assert_eq!(e[0].event_type, EventType::Commit);
        assert_eq!(e[0].commit_sha.as_deref(), Some("aaa1"));
        assert_eq!(e[0].service, "checkout-svc");
        assert_eq!(e[0].team.as_deref(), Some("payments"));
        assert_eq!(e[0].source.as_deref(), Some("github"));
        assert_eq!(
            e[0].occurred_at,
            chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().timestamp_micros()
        );
        assert_eq!(e[1].event_id, "github:commit:acme/checkout:bbb2");
        // Unmapped: the repository's name, no team.
        let e = events(map_push(&push(), &Mapping::default()));
        assert_eq!((e[0].service.as_str(), e[0].team.as_deref()), ("checkout", None));
    }

    fn map_push(p: &Value, m: &Mapping) -> Delivery {
        map("push", p, m).unwrap()
    }

    #[test]
    fn pushes_that_bring_no_changes_are_ignored() {
        let m = Mapping::default();
        let mut p = push();
        p["ref"] = json!("refs/heads/feature/x");
        assert!(matches!(map_push(&p, &m), Delivery::Ignored(_)));
        p["ref"] = json!("refs/tags/v1");
        assert!(matches!(map_push(&p, &m), Delivery::Ignored(_)));
        let mut p = push();
        p["deleted"] = json!(true);
        assert!(matches!(map_push(&p, &m), Delivery::Ignored(_)));
        let mut p = push();
        p["commits"] = json!([]);
        assert!(matches!(map_push(&p, &m), Delivery::Ignored(_)));
        let m = Mapping { branches: vec!["feature/x".into()], ..Default::default() };
        let mut p = push();
        p["ref"] = json!("refs/heads/feature/x");
        assert_eq!(events(map_push(&p, &m)).len(), 2);
    }

    #[test]
    fn malformed_pushes_say_what_is_missing() {
        let m = Mapping::default();
        let mut p = push();
        p["repository"].as_object_mut().unwrap().remove("full_name");
        assert_eq!(map("push", &p, &m), Err("no repository.full_name".into()));
        let mut p = push();
        p["commits"][1].as_object_mut().unwrap().remove("timestamp");
        assert_eq!(map("push", &p, &m), Err("commits[1]: no timestamp".into()));
        let mut p = push();
        p["commits"] = json!("many");
        assert_eq!(map("push", &p, &m), Err("no commits".into()));
    }

    fn deployment_status(state: &str) -> Value {
        json!({
            "action": "created",
            "deployment_status": {"id": 9001, "state": state, "environment": "prod",
                                  "created_at": "2026-03-02T12:00:00Z", "updated_at": "2026-03-02T12:00:00Z",
                                  "description": "", "target_url": ""},
            "deployment": {"id": 501, "sha": "bbb2", "ref": "main", "task": "deploy", "environment": "prod",
                           "created_at": "2026-03-02T11:55:00Z"},
            "repository": {"name": "checkout", "full_name": "acme/checkout", "default_branch": "main"}
        })
    }

    #[test]
    fn deployment_statuses_start_and_end_deployments() {
        let mut m = Mapping::default();
        m.environments.insert("prod".into(), "production".into());
        for (state, t) in [
            ("queued", EventType::DeploymentStarted),
            ("pending", EventType::DeploymentStarted),
            ("in_progress", EventType::DeploymentStarted),
            ("success", EventType::DeploymentSucceeded),
            ("failure", EventType::DeploymentFailed),
            ("error", EventType::DeploymentFailed),
        ] {
            let e = events(map("deployment_status", &deployment_status(state), &m).unwrap());
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].event_type, t, "{state}");
            assert_eq!(e[0].event_id, "github:deployment_status:9001");
            assert_eq!(e[0].deployment_id.as_deref(), Some("github:acme/checkout:501"));
            assert_eq!(e[0].commit_sha.as_deref(), Some("bbb2"));
            assert_eq!(e[0].environment.as_deref(), Some("production"));
            assert_eq!(e[0].service, "checkout");
        }
        assert!(matches!(map("deployment_status", &deployment_status("inactive"), &m), Ok(Delivery::Ignored(_))));
        // Without a status environment, the deployment's.
        let mut p = deployment_status("success");
        p["deployment_status"].as_object_mut().unwrap().remove("environment");
        p["deployment"]["environment"] = json!("staging");
        assert_eq!(events(map("deployment_status", &p, &m).unwrap())[0].environment.as_deref(), Some("staging"));
        let mut p = deployment_status("success");
        p["deployment"].as_object_mut().unwrap().remove("sha");
        assert_eq!(map("deployment_status", &p, &m), Err("no deployment.sha".into()));
    }

    #[test]
    fn other_events_are_ignored() {
        let m = Mapping::default();
        for e in ["ping", "issues", "workflow_run", "pull_request"] {
            assert!(matches!(map(e, &json!({}), &m), Ok(Delivery::Ignored(_))), "{e}");
        }
    }

    #[test]
    fn signatures() {
        let body = br#"{"zen": "Keep it logically awesome."}"#;
        let good = format!("sha256={}", sign("It's a Secret to Everybody", body));
        assert!(verify("It's a Secret to Everybody", body, Some(&good)));
        assert!(!verify("It's a Secret to Everybody", b"{}", Some(&good)));
        assert!(!verify("another secret", body, Some(&good)));
        assert!(!verify("It's a Secret to Everybody", body, Some(good.trim_start_matches("sha256="))));
        assert!(!verify("It's a Secret to Everybody", body, None));
    }
}
