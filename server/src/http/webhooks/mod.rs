//! Webhooks: deliveries from the tools teams already use, turned into
//! canonical events. Each vendor's module holds its check of the sender
//! and its mapping, a pure function of the payload and the config's
//! `webhooks.map` ([`github`], [`gitlab`], [`pagerduty`]); this module is
//! the thin HTTP layer around them:
//!
//! - a wrong or missing signature or token: 401, nothing stored;
//! - a payload that is not JSON or lacks what the mapping needs: 400, and
//!   the payload kept in `rejected_events` with the reason;
//! - an event leadline does not use (a `ping`, an `issues` event, a push to
//!   a feature branch): 200 with the reason it was ignored;
//! - events: appended as one commit; redelivery stores nothing new, since
//!   each event's id is derived from the vendor's ids.

pub mod github;
pub mod gitlab;
pub mod pagerduty;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use leadline_engine::event::{RawRow, RawValue, raw_row_json};
use leadline_engine::input::InputRow;
use serde_json::{Value, json};

use super::{HttpError, HttpState, append, counts, read_body, take_turn};
use crate::config::{Mapping, ServiceMapping, WebhooksConfig};
use crate::telemetry;

/// What a delivery means to leadline.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Canonical rows to append.
    Events(Vec<RawRow>),
    /// Nothing to store, and why.
    Ignored(String),
}

#[derive(Debug, Clone, Copy)]
enum Vendor {
    GitHub,
    GitLab,
    PagerDuty,
}

impl Vendor {
    fn name(self) -> &'static str {
        match self {
            Vendor::GitHub => "github",
            Vendor::GitLab => "gitlab",
            Vendor::PagerDuty => "pagerduty",
        }
    }

    /// Checks the sender: 401 when the secret is not configured or the
    /// signature or token is missing or wrong.
    fn verify(self, config: &WebhooksConfig, headers: &HeaderMap, body: &[u8]) -> Result<(), HttpError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let off = |key: &str| {
            HttpError::unauthorized(format!("the {} webhook is off: set webhooks.{key} in the config", self.name()))
        };
        let ok = match self {
            Vendor::GitHub => {
                let secret = config.github.as_ref().ok_or_else(|| off("github.secret"))?;
                github::verify(secret.secret.expose(), body, header(github::SIGNATURE_HEADER))
            }
            Vendor::GitLab => {
                let token = config.gitlab.as_ref().ok_or_else(|| off("gitlab.token"))?;
                gitlab::verify(token.token.expose(), header(gitlab::TOKEN_HEADER))
            }
            Vendor::PagerDuty => {
                let secret = config.pagerduty.as_ref().ok_or_else(|| off("pagerduty.secret"))?;
                pagerduty::verify(secret.secret.expose(), body, header(pagerduty::SIGNATURE_HEADER))
            }
        };
        if ok {
            Ok(())
        } else {
            let what = match self {
                Vendor::GitHub => github::SIGNATURE_HEADER,
                Vendor::GitLab => gitlab::TOKEN_HEADER,
                Vendor::PagerDuty => pagerduty::SIGNATURE_HEADER,
            };
            Err(HttpError::unauthorized(format!("missing or wrong {what}")))
        }
    }

    fn map(self, headers: &HeaderMap, payload: &Value, map: &Mapping) -> Result<Delivery, String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match self {
            Vendor::GitHub => {
                let event = header(github::EVENT_HEADER).ok_or(format!("no {} header", github::EVENT_HEADER))?;
                github::map(event, payload, map)
            }
            Vendor::GitLab => gitlab::map(payload, map),
            Vendor::PagerDuty => pagerduty::map(payload, map),
        }
    }

    /// How the delivery's rows are named in `rejected_events.source`: the
    /// vendor and its delivery id (characters of an id only).
    fn source(self, headers: &HeaderMap) -> String {
        let header = match self {
            Vendor::GitHub => Some(github::DELIVERY_HEADER),
            Vendor::GitLab => Some(gitlab::DELIVERY_HEADER),
            Vendor::PagerDuty => None,
        };
        let id: Option<String> = header
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect::<String>());
        match id.filter(|s| !s.is_empty()) {
            Some(id) => format!("{} delivery {id}", self.name()),
            None => format!("{} webhook", self.name()),
        }
    }
}

pub async fn github(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    deliver(&state, Vendor::GitHub, &headers, body).await
}

pub async fn gitlab(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    deliver(&state, Vendor::GitLab, &headers, body).await
}

pub async fn pagerduty(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    deliver(&state, Vendor::PagerDuty, &headers, body).await
}

async fn deliver(state: &HttpState, vendor: Vendor, headers: &HeaderMap, body: Body) -> Response {
    let resp = receive(state, vendor, headers, body).await.unwrap_or_else(IntoResponse::into_response);
    telemetry::global().delivery(vendor.name(), resp.status().as_u16());
    resp
}

async fn receive(state: &HttpState, vendor: Vendor, headers: &HeaderMap, body: Body) -> Result<Response, HttpError> {
    let source = vendor.source(headers);
    let _turn = take_turn(state, &source)?;
    let body = read_body(state, headers, body).await?;
    vendor.verify(&state.config.webhooks, headers, &body)?;
    let mapped = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("the payload is not JSON: {e}"))
        .and_then(|payload| vendor.map(headers, &payload, &state.config.webhooks.map));
    match mapped {
        Ok(Delivery::Ignored(why)) => Ok(super::json(StatusCode::OK, &json!({"ignored": why}))),
        Ok(Delivery::Events(rows)) => {
            let rows = rows
                .into_iter()
                .enumerate()
                .map(|(n, row)| InputRow { line: n as u64 + 1, raw: raw_row_json(&row), fields: Ok(row) })
                .collect();
            let report = append(state, &source, rows).await?;
            let rejections: Vec<Value> = report
                .first_rejections
                .iter()
                .map(|r| json!({"event": r.line, "kind": r.kind.as_str(), "reason": r.reason}))
                .collect();
            let mut answer = counts(&report);
            answer.insert("rejections".into(), rejections.into());
            // Rows the payload made but the canonical rules refuse: the payload is at fault.
            let status = if report.rejected > 0 { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            Ok(super::json(status, &answer.into()))
        }
        Err(reason) => {
            let reason = format!("malformed {} payload: {reason}", vendor.name());
            let kept =
                InputRow { line: 1, raw: String::from_utf8_lossy(&body).into_owned(), fields: Err(reason.clone()) };
            append(state, &source, vec![kept]).await?;
            Err(HttpError::new(StatusCode::BAD_REQUEST, reason))
        }
    }
}

// What the vendors' mappings share.

/// The value at a dotted path of a JSON payload (`repository.full_name`).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

/// Non-empty text at `path`, or why the payload lacks it.
fn text<'a>(v: &'a Value, path: &str) -> Result<&'a str, String> {
    opt_text(v, path).ok_or_else(|| format!("no {path}"))
}

fn opt_text<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// An id at `path`, given as a number or as text.
fn id(v: &Value, path: &str) -> Result<String, String> {
    match at(v, path) {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("no {path}")),
    }
}

/// The mapping of the first of `keys` the config names.
fn service_mapping<'a>(map: &'a Mapping, keys: &[&str]) -> Option<&'a ServiceMapping> {
    keys.iter().find_map(|k| map.services.get(*k))
}

/// The canonical name of a vendor's environment.
fn environment(map: &Mapping, name: &str) -> String {
    map.environments.get(name).cloned().unwrap_or_else(|| name.to_string())
}

/// Whether a push to `branch` brings changes: the branches the config
/// lists, else the repository's default branch (else any branch).
fn counts_branch(map: &Mapping, branch: &str, default_branch: Option<&str>) -> bool {
    if !map.branches.is_empty() {
        return map.branches.iter().any(|b| b == branch);
    }
    default_branch.is_none_or(|d| d == branch)
}

/// A repository or project as leadline sees it.
struct Repository {
    /// `owner/name`: what event ids name.
    full_name: String,
    service: String,
    team: Option<String>,
    default_branch: Option<String>,
}

impl Repository {
    fn new(map: &Mapping, full_name: &str, name: &str, default_branch: Option<&str>) -> Self {
        let mapped = service_mapping(map, &[full_name, name]);
        Repository {
            full_name: full_name.to_string(),
            service: mapped.and_then(|m| m.service.clone()).unwrap_or_else(|| name.to_string()),
            team: mapped.and_then(|m| m.team.clone()),
            default_branch: default_branch.map(str::to_string),
        }
    }
}

/// One canonical row: the fields every event has, from `source`.
fn row(source: &str, event_id: String, event_type: &str, occurred_at: &str, service: &str) -> RawRow {
    let mut r = RawRow::new();
    r.insert("event_id".into(), RawValue::Text(event_id));
    r.insert("event_type".into(), RawValue::Text(event_type.into()));
    r.insert("occurred_at".into(), RawValue::Text(occurred_at.into()));
    r.insert("service".into(), RawValue::Text(service.into()));
    r.insert("source".into(), RawValue::Text(source.into()));
    r
}

/// Sets an optional text field.
fn set(r: &mut RawRow, field: &str, value: Option<&str>) {
    if let Some(v) = value {
        r.insert(field.into(), RawValue::Text(v.into()));
    }
}

/// The push's commits as `commit` rows (`vendor:commit:<repo>:<sha>`, each
/// at its own timestamp), or why the push brings no changes.
fn push_commits(vendor: &str, repo: &Repository, payload: &Value, map: &Mapping) -> Result<Delivery, String> {
    let git_ref = text(payload, "ref")?;
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
        return Ok(Delivery::Ignored(format!("{git_ref} is not a branch")));
    };
    if !counts_branch(map, branch, repo.default_branch.as_deref()) {
        return Ok(Delivery::Ignored(format!(
            "pushes to {branch} are not changes: only the default branch's are (or webhooks.map.branches)"
        )));
    }
    let commits = at(payload, "commits").and_then(Value::as_array).ok_or("no commits")?;
    if commits.is_empty() {
        return Ok(Delivery::Ignored("the push has no commits".into()));
    }
    let mut rows = Vec::with_capacity(commits.len());
    for (n, c) in commits.iter().enumerate() {
        let at_commit = |e: String| format!("commits[{n}]: {e}");
        let sha = text(c, "id").map_err(at_commit)?;
        let timestamp = text(c, "timestamp").map_err(at_commit)?;
        let mut r =
            row(vendor, format!("{vendor}:commit:{}:{sha}", repo.full_name), "commit", timestamp, &repo.service);
        set(&mut r, "commit_sha", Some(sha));
        set(&mut r, "team", repo.team.as_deref());
        rows.push(r);
    }
    Ok(Delivery::Events(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids() {
        let v = json!({"a": {"b": "x", "n": 42, "e": ""}});
        assert_eq!(text(&v, "a.b"), Ok("x"));
        assert_eq!(text(&v, "a.e"), Err("no a.e".into()));
        assert_eq!(text(&v, "a.z"), Err("no a.z".into()));
        assert_eq!(id(&v, "a.n"), Ok("42".into()));
        assert_eq!(id(&v, "a.b"), Ok("x".into()));
        assert!(id(&v, "a").is_err());
    }

    #[test]
    fn branches() {
        let mut map = Mapping::default();
        assert!(counts_branch(&map, "main", Some("main")));
        assert!(!counts_branch(&map, "feature", Some("main")));
        assert!(counts_branch(&map, "feature", None));
        map.branches = vec!["release".into()];
        assert!(counts_branch(&map, "release", Some("main")));
        assert!(!counts_branch(&map, "main", Some("main")));
    }
}
