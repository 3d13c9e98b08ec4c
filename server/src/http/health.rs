//! `GET /healthz` (the process answers) and `GET /readyz` (the data
//! directory reads and the writer could append now).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{HttpState, json};

pub async fn healthz() -> Response {
    json(StatusCode::OK, &json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    match ready(&state).await {
        Ok(()) => json(StatusCode::OK, &json!({"ready": true})),
        Err(reason) => json(StatusCode::SERVICE_UNAVAILABLE, &json!({"ready": false, "reason": reason})),
    }
}

async fn ready(state: &Arc<HttpState>) -> Result<(), String> {
    let read = tokio::task::block_in_place(|| state.log.snapshot());
    read.map_err(|e| format!("the data directory does not read: {e}"))?;
    if state.queue.available_permits() == 0 {
        return Err("appends are queued up to http.max_queued_appends".into());
    }
    state.writer.ready().await.map_err(|e| format!("the writer cannot append: {e}"))
}
