//! `POST /v1/events`: canonical NDJSON (SPEC §1) from any CI/CD tool, one
//! event per line, with `Authorization: Bearer <webhooks.events.token>`.
//! The answer gives the counts `leadline ingest` prints and every rejected
//! line with its reason; the body is appended as one commit like a file.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use leadline_engine::event::{Event, RejectionKind};
use leadline_engine::input::{InputRow, ndjson_rows};
use serde_json::json;

use super::auth::{bearer, same_token};
use super::{HttpError, HttpState, append, counts, read_body, take_turn};
use crate::telemetry;

/// How the rows of this endpoint are named in `rejected_events.source`.
const SOURCE: &str = "events POST /v1/events";

pub async fn post(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    let resp = receive(&state, &headers, body).await.unwrap_or_else(IntoResponse::into_response);
    telemetry::global().delivery("events", resp.status().as_u16());
    resp
}

async fn receive(state: &HttpState, headers: &HeaderMap, body: Body) -> Result<Response, HttpError> {
    let Some(auth) = &state.config.webhooks.events else {
        return Err(HttpError::unauthorized("POST /v1/events is off: set webhooks.events.token in the config"));
    };
    let presented = bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
    if !presented.is_some_and(|p| same_token(p, auth.token.expose())) {
        return Err(HttpError::unauthorized("missing or wrong bearer token (Authorization: Bearer …)"));
    }
    let _turn = take_turn(state, SOURCE)?;
    let body = read_body(state, headers, body).await?;
    // Decoding reads on a thread of its own; validating ahead names every
    // rejected line (the append reports only the first few).
    let (rows, mut rejections) = tokio::task::spawn_blocking(move || {
        let rows = ndjson_rows(std::io::Cursor::new(body)).collect::<Result<Vec<InputRow>, _>>()?;
        let invalid: Vec<serde_json::Value> = rows
            .iter()
            .filter_map(|r| {
                let reason = match &r.fields {
                    Ok(fields) => Event::from_raw(fields).err()?,
                    Err(reason) => reason.clone(),
                };
                Some(json!({"line": r.line, "kind": RejectionKind::Invalid.as_str(), "reason": reason}))
            })
            .collect();
        Ok::<_, leadline_engine::Error>((rows, invalid))
    })
    .await
    .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the body failed: {e}")))?
    .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, format!("the body is not NDJSON: {e}")))?;
    let report = append(state, SOURCE, rows).await?;
    // Conflicts are only known to the append.
    rejections.extend(
        report
            .first_rejections
            .iter()
            .filter(|r| r.kind == RejectionKind::Conflict)
            .map(|r| json!({"line": r.line, "kind": r.kind.as_str(), "reason": r.reason})),
    );
    let mut answer = counts(&report);
    answer.insert("rejections".into(), rejections.into());
    Ok(super::json(StatusCode::OK, &answer.into()))
}
