//! The HTTP front: `leadline serve --http ADDR`, beside the pgwire listener.
//!
//! One module per concern: [`webhooks`] (GitHub, GitLab and PagerDuty
//! deliveries turned into canonical events), [`events`] (canonical NDJSON,
//! `POST /v1/events`), [`health`] (`/healthz`, `/readyz`) and [`metrics`]
//! (`/metrics`); [`auth`] checks tokens and signatures. Every write goes through the server's one
//! [`SharedWriter`] (the same append path as `leadline ingest` and the
//! pgwire INSERT and COPY): validated, idempotent by `event_id`, durable
//! before the answer, rejected rows kept in `rejected_events`.
//!
//! Bounded everywhere: a body over `http.max_body_mb` is answered 413
//! without being read further; at most `http.max_queued_appends` writes are
//! read and wait for the writer at once, and beyond (or while another
//! process holds the data directory's lock) the answer is 503 with
//! `Retry-After`, never an unbounded queue.

pub mod auth;
pub mod events;
pub mod health;
pub mod metrics;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use leadline_engine::input::InputRow;
use leadline_engine::{AppendReport, Catalog, EventLog};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, SemaphorePermit};
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::ServerConfig;
use crate::telemetry;
use crate::writer::SharedWriter;

/// What the HTTP handlers share.
pub struct HttpState {
    writer: Arc<SharedWriter>,
    /// The data directory's log, read by `/readyz` and `/metrics`.
    log: EventLog,
    catalog: Arc<Catalog>,
    config: ServerConfig,
    /// Appends allowed to wait for the writer at once.
    queue: Semaphore,
    /// Open pgwire connections (the pgwire front counts them).
    pg_connections: Box<dyn Fn() -> usize + Send + Sync>,
}

impl HttpState {
    pub fn new(
        writer: Arc<SharedWriter>,
        data_dir: PathBuf,
        catalog: Arc<Catalog>,
        config: ServerConfig,
        pg_connections: Box<dyn Fn() -> usize + Send + Sync>,
    ) -> anyhow::Result<Arc<Self>> {
        let log = EventLog::open(data_dir)?;
        let queue = Semaphore::new(config.http.max_queued_appends.max(1));
        Ok(Arc::new(Self { writer, log, catalog, config, queue, pg_connections }))
    }
}

/// An answer other than success: a status, a reason for the sender, and
/// for 503 how long to wait before retrying.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None }
    }

    fn unavailable(message: impl Into<String>, retry_after: u32) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, message: message.into(), retry_after: Some(retry_after) }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut resp = json(self.status, &serde_json::json!({"error": self.message}));
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// A JSON answer.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// A request that writes must take a turn before its body is read, so that
/// at most `http.max_queued_appends` bodies are held at once; beyond, 503.
pub fn take_turn<'a>(state: &'a HttpState, source: &str) -> Result<SemaphorePermit<'a>, HttpError> {
    state.queue.try_acquire().map_err(|_| {
        telemetry::global().append_refused(source, "busy");
        HttpError::unavailable(
            format!(
                "{} writes are already in progress (http.max_queued_appends): retry later",
                state.config.http.max_queued_appends
            ),
            1,
        )
    })
}

/// How long a sender may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The request body, up to `http.max_body_mb` (413 beyond, without reading
/// the rest; 408 when it takes over a minute).
pub async fn read_body(state: &HttpState, headers: &HeaderMap, body: Body) -> Result<Bytes, HttpError> {
    let limit = state.config.http.max_body_bytes();
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the limit of {limit} bytes (http.max_body_mb): send fewer events per request"),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| HttpError::new(StatusCode::REQUEST_TIMEOUT, "the body took over a minute to arrive"))?;
    read.map_err(|e| {
        if e.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            too_large()
        } else {
            HttpError::new(StatusCode::BAD_REQUEST, "the request body could not be read")
        }
    })
}

/// Appends `rows` as one commit through the shared writer (in the turn
/// the caller took), or answers 503 when another process holds the lock.
pub async fn append(state: &HttpState, source: &str, rows: Vec<InputRow>) -> Result<AppendReport, HttpError> {
    state.writer.append(source, vec![(source.to_string(), rows)]).await.map_err(|e| match e {
        leadline_engine::Error::Locked { .. } => HttpError::unavailable(e.to_string(), 5),
        e => {
            tracing::error!(source, error = %e, "append failed");
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the events were not stored: {e}"))
        }
    })
}

/// The counts of an append, as `leadline ingest` prints them.
pub fn counts(r: &AppendReport) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("appended".into(), r.appended.into());
    m.insert("duplicates".into(), r.duplicates.into());
    m.insert("conflicts".into(), r.conflicts.into());
    m.insert("rejected".into(), r.rejected.into());
    m
}

/// The routes.
pub fn router(state: Arc<HttpState>) -> Router {
    let routes = Router::new()
        .route("/v1/events", post(events::post))
        .route("/webhooks/github", post(webhooks::github))
        .route("/webhooks/gitlab", post(webhooks::gitlab))
        .route("/webhooks/pagerduty", post(webhooks::pagerduty))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::get))
        .with_state(state);
    answer_panics(routes)
}

/// A handler that panics is answered 500 and logged, like any other
/// internal error, instead of dropping the connection: senders retry a 5xx,
/// and the writer's own guard has already answered or failed the append.
fn answer_panics(router: Router) -> Router {
    router.layer(CatchPanicLayer::custom(|panic: Box<dyn std::any::Any + Send>| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        tracing::error!(panic = what, "an HTTP handler panicked");
        let message = "internal error: the request was not completed (the server's log says why)";
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
    }))
}

/// Binds the HTTP listener (before anything is served, so that a bad
/// address fails the start).
pub async fn bind(listen: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener =
        TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves HTTP on `listener` until the process stops.
pub async fn serve(state: Arc<HttpState>, listener: TcpListener) -> anyhow::Result<()> {
    axum::serve(listener, router(state)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_500_and_the_router_keeps_serving() {
        let app = answer_panics(Router::new().route("/boom", get(boom)).route("/fine", get(|| async { "fine" })));
        let resp = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"].as_str().unwrap().starts_with("internal error"), "{body}");
        let resp = app.oneshot(Request::get("/fine").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
