//! GitLab: push hooks → one `commit` per pushed commit of the default branch
//! (or `webhooks.map.branches`), at the commit's own timestamp; deployment
//! hooks → `deployment_started` (`created`, `running`),
//! `deployment_succeeded` (`success`) or `deployment_failed` (`failed`,
//! `canceled`: it shipped nothing). The service is the project's name (or
//! its mapping, by `group/project` or name). Authenticated by the secret
//! token GitLab sends as `X-Gitlab-Token`.
//!
//! GitLab lists at most 20 commits in a push hook (`total_commits_count`
//! has the real number): a larger push records its newest 20, and the
//! deployment that ships the rest still counts them as changes if their
//! commits arrive some other way (`POST /v1/events`).

use serde_json::Value;

use super::{Delivery, Repository, environment, id, opt_text, push_commits, row, set, text};
use crate::config::Mapping;
use crate::http::auth::same_token;

pub const TOKEN_HEADER: &str = "x-gitlab-token";
pub const DELIVERY_HEADER: &str = "x-gitlab-event-uuid";

const SOURCE: &str = "gitlab";

/// Whether the presented token is the configured one.
pub fn verify(token: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| same_token(p, token))
}

/// The canonical events of one GitLab hook delivery (its `object_kind`
/// tells which hook it is).
pub fn map(payload: &Value, map: &Mapping) -> Result<Delivery, String> {
    match text(payload, "object_kind")? {
        "push" => push_commits(SOURCE, &project(payload, map)?, payload, map),
        "deployment" => deployment(payload, map),
        other => {
            Ok(Delivery::Ignored(format!("GitLab '{other}' hooks are not used (leadline maps push and deployment)")))
        }
    }
}

fn project(payload: &Value, map: &Mapping) -> Result<Repository, String> {
    Ok(Repository::new(
        map,
        text(payload, "project.path_with_namespace")?,
        text(payload, "project.name")?,
        opt_text(payload, "project.default_branch"),
    ))
}

fn deployment(payload: &Value, map: &Mapping) -> Result<Delivery, String> {
    let project = project(payload, map)?;
    let status = text(payload, "status")?;
    let event_type = match status {
        "created" | "running" => "deployment_started",
        "success" => "deployment_succeeded",
        "failed" | "canceled" => "deployment_failed",
        other => {
            return Ok(Delivery::Ignored(format!(
                "deployment status '{other}' is neither a start nor an end of a deployment"
            )));
        }
    };
    let number = id(payload, "deployment_id")?;
    let occurred_at = timestamp(text(payload, "status_changed_at")?)?;
    let mut r = row(
        SOURCE,
        format!("{SOURCE}:deployment:{}:{number}:{status}", project.full_name),
        event_type,
        &occurred_at,
        &project.service,
    );
    set(&mut r, "environment", Some(&environment(map, text(payload, "environment")?)));
    set(&mut r, "deployment_id", Some(&format!("{SOURCE}:{}:{number}", project.full_name)));
    set(&mut r, "commit_sha", commit_sha(payload));
    set(&mut r, "team", project.team.as_deref());
    r.insert("attributes".into(), leadline_engine::RawValue::Json(serde_json::json!({"status": status})));
    Ok(Delivery::Events(vec![r]))
}

/// The deployed commit: the full sha ending `commit_url`, else `short_sha`.
fn commit_sha(payload: &Value) -> Option<&str> {
    let from_url = opt_text(payload, "commit_url")
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .filter(|s| s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit()));
    from_url.or_else(|| opt_text(payload, "short_sha"))
}

/// GitLab's `2021-04-28 21:50:00 +0200` (or `… UTC`, or RFC 3339) as RFC 3339.
fn timestamp(s: &str) -> Result<String, String> {
    if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        return Ok(s.to_string());
    }
    let offset = match s.strip_suffix(" UTC") {
        Some(t) => format!("{t} +0000"),
        None => s.to_string(),
    };
    chrono::DateTime::parse_from_str(&offset, "%Y-%m-%d %H:%M:%S %z")
        .map(|t| t.to_rfc3339())
        .map_err(|_| format!("status_changed_at '{s}' is not a time with an offset"))
}

#[cfg(test)]
mod tests {
    use leadline_engine::{Event, EventType};
    use serde_json::json;

    use super::*;

    fn events(d: Delivery) -> Vec<Event> {
        match d {
            Delivery::Events(rows) => rows.iter().map(|r| Event::from_raw(r).unwrap()).collect(),
            Delivery::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    fn project_json() -> Value {
        json!({"id": 15, "name": "Billing", "path_with_namespace": "shop/billing", "default_branch": "main",
               "web_url": "https://gitlab.example.com/shop/billing"})
    }

    #[test]
    fn push_hooks_are_commits() {
        let p = json!({
            "object_kind": "push", "event_name": "push", "ref": "refs/heads/main",
            "before": "0000", "after": "c0ffee1", "checkout_sha": "c0ffee1", "total_commits_count": 1,
            "project": project_json(),
            "commits": [{"id": "c0ffee1", "message": "m", "title": "m", "timestamp": "2026-03-03T08:00:00+02:00",
                         "url": "https://gitlab.example.com/shop/billing/-/commit/c0ffee1",
                         "author": {"name": "C", "email": "c@example.com"}}]
        });
        let e = events(map(&p, &Mapping::default()).unwrap());
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].event_id, "gitlab:commit:shop/billing:c0ffee1");
        assert_eq!(e[0].service, "Billing");
        assert_eq!(
            e[0].occurred_at,
            chrono::DateTime::parse_from_rfc3339("2026-03-03T06:00:00Z").unwrap().timestamp_micros()
        );
        let mut other = p.clone();
        other["ref"] = json!("refs/heads/wip");
        assert!(matches!(map(&other, &Mapping::default()), Ok(Delivery::Ignored(_))));
    }

    fn deployment_json(status: &str) -> Value {
        json!({
            "object_kind": "deployment", "status": status, "status_changed_at": "2026-03-03 10:15:00 +0200",
            "deployment_id": 77, "deployable_id": 900, "environment": "prod", "environment_tier": "production",
            "project": project_json(), "short_sha": "c0ffee12",
            "commit_url": "https://gitlab.example.com/shop/billing/-/commit/c0ffee1234567890c0ffee1234567890c0ffee12",
            "commit_title": "m"
        })
    }

    #[test]
    fn deployment_hooks_start_and_end_deployments() {
        let m = Mapping { environments: [("prod".to_string(), "production".to_string())].into(), ..Default::default() };
        for (status, t) in [
            ("created", EventType::DeploymentStarted),
            ("running", EventType::DeploymentStarted),
            ("success", EventType::DeploymentSucceeded),
            ("failed", EventType::DeploymentFailed),
            ("canceled", EventType::DeploymentFailed),
        ] {
            let e = events(map(&deployment_json(status), &m).unwrap());
            assert_eq!(e[0].event_type, t);
            assert_eq!(e[0].event_id, format!("gitlab:deployment:shop/billing:77:{status}"));
            assert_eq!(e[0].deployment_id.as_deref(), Some("gitlab:shop/billing:77"));
            assert_eq!(e[0].environment.as_deref(), Some("production"));
            assert_eq!(e[0].commit_sha.as_deref(), Some("c0ffee1234567890c0ffee1234567890c0ffee12"));
            assert_eq!(
                e[0].occurred_at,
                chrono::DateTime::parse_from_rfc3339("2026-03-03T08:15:00Z").unwrap().timestamp_micros()
            );
        }
        let mut p = deployment_json("success");
        p["status_changed_at"] = json!("2026-03-03 08:15:00 UTC");
        assert_eq!(
            events(map(&p, &m).unwrap())[0].occurred_at,
            chrono::DateTime::parse_from_rfc3339("2026-03-03T08:15:00Z").unwrap().timestamp_micros()
        );
        let mut p = deployment_json("success");
        p["status_changed_at"] = json!("yesterday");
        assert!(map(&p, &m).unwrap_err().contains("status_changed_at"));
        let mut p = deployment_json("success");
        p.as_object_mut().unwrap().remove("commit_url");
        assert_eq!(events(map(&p, &m).unwrap())[0].commit_sha.as_deref(), Some("c0ffee12"));
    }

    #[test]
    fn other_hooks_are_ignored_and_tokens_checked() {
        assert!(matches!(map(&json!({"object_kind": "pipeline"}), &Mapping::default()), Ok(Delivery::Ignored(_))));
        assert_eq!(map(&json!({"kind": "push"}), &Mapping::default()), Err("no object_kind".into()));
        assert!(verify("tok", Some("tok")));
        assert!(!verify("tok", Some("tok2")));
        assert!(!verify("tok", None));
    }
}
