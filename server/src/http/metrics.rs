//! `GET /metrics`: the server's [`telemetry`] in the OpenMetrics text
//! format Prometheus scrapes, with the values read at scrape time (connections, memory, the
//! log and the read model) brought up to date first.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use leadline_engine::DataStatus;

use super::HttpState;
use crate::telemetry;

pub async fn get(State(state): State<Arc<HttpState>>) -> Response {
    let t = telemetry::global();
    let g = &t.gauges;
    g.pg_connections.set((state.pg_connections)() as i64);
    let (reserved, limit) = state.catalog.memory_use();
    g.memory_reserved.set(reserved as i64);
    g.memory_limit.set(limit.min(i64::MAX as usize) as i64);
    match tokio::task::block_in_place(|| DataStatus::of(&state.log)) {
        Ok(s) => {
            g.log_version.set(s.log_version.map_or(-1, |v| v as i64));
            g.read_model_version.set(s.read_model_version.map_or(-1, |v| v as i64));
            g.read_model_lag.set(s.read_model_lag() as i64);
            g.events.set(s.events as i64);
            g.rejected_events.set(s.rejected as i64);
        }
        Err(e) => tracing::warn!(error = %e, "/metrics: the data directory's status does not read"),
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], t.encode())
        .into_response()
}
