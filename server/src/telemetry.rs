//! What the server counts and measures, for `GET /metrics` (Prometheus
//! text format): events appended, skipped and rejected by source, webhook
//! deliveries by status, statement latency by kind, connections, memory,
//! read-model lag and compactions. One process-wide set, recorded by the
//! writer, the HTTP front and the pgwire front's statement guard.
//!
//! Labels stay few and fixed (a source's kind, a rejection's kind, an HTTP
//! status, a statement's kind): never a user, an id or a value from input.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use leadline_engine::{AppendReport, Error};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels<const N: usize> = [(&'static str, String); N];

/// The server's metrics.
pub struct Telemetry {
    registry: Registry,
    appended: Family<Labels<1>, Counter>,
    duplicates: Family<Labels<1>, Counter>,
    rejected: Family<Labels<2>, Counter>,
    append_errors: Family<Labels<2>, Counter>,
    deliveries: Family<Labels<2>, Counter>,
    statements: Family<Labels<1>, Histogram>,
    slow_statements: Counter,
    compactions: Counter,
    /// Read at each scrape ([`Telemetry::encode`]).
    pub gauges: ScrapedGauges,
}

/// Values read when scraped rather than counted as they happen.
#[derive(Default)]
pub struct ScrapedGauges {
    pub pg_connections: Gauge,
    pub memory_reserved: Gauge,
    pub memory_limit: Gauge,
    pub log_version: Gauge,
    pub read_model_version: Gauge,
    pub read_model_lag: Gauge,
    pub events: Gauge,
    pub rejected_events: Gauge,
}

/// The process's metrics.
pub fn global() -> &'static Telemetry {
    static TELEMETRY: LazyLock<Telemetry> = LazyLock::new(Telemetry::new);
    &TELEMETRY
}

/// The kind of an append's source, by its first word (`INSERT by x` →
/// `insert`, `github delivery …` → `github`), from a fixed list.
fn source_kind(source: &str) -> String {
    const KINDS: [&str; 7] = ["insert", "copy", "transaction", "events", "github", "gitlab", "pagerduty"];
    let first = source.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    if KINDS.contains(&first.as_str()) { first } else { "other".into() }
}

impl Telemetry {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("leadline");
        let appended = Family::<Labels<1>, Counter>::default();
        registry.register("events_appended", "Events appended to the log, by source", appended.clone());
        let duplicates = Family::<Labels<1>, Counter>::default();
        registry.register(
            "events_duplicate",
            "Events skipped as already stored (same event_id and content), by source",
            duplicates.clone(),
        );
        let rejected = Family::<Labels<2>, Counter>::default();
        registry.register(
            "events_rejected",
            "Input rows kept in rejected_events, by source and reason (invalid, conflict)",
            rejected.clone(),
        );
        let append_errors = Family::<Labels<2>, Counter>::default();
        registry.register(
            "append_errors",
            "Appends that stored nothing, by source and reason (locked, busy, error)",
            append_errors.clone(),
        );
        let deliveries = Family::<Labels<2>, Counter>::default();
        registry.register(
            "http_deliveries",
            "Requests to the webhook and events endpoints, by source and HTTP status",
            deliveries.clone(),
        );
        let statements: Family<Labels<1>, Histogram> = Family::new_with_constructor(|| {
            // 0.5 ms … ~65 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 18))
        });
        registry.register(
            "statement_duration_seconds",
            "pgwire statements, from receipt until their last row is sent, by kind",
            statements.clone(),
        );
        let slow_statements = Counter::default();
        registry.register("slow_statements", "Statements over log.slow_query_ms", slow_statements.clone());
        let compactions = Counter::default();
        registry.register(
            "compactions",
            "Partitions compacted by this server's appends (AUTO_COMPACT_FILES)",
            compactions.clone(),
        );
        let gauges = ScrapedGauges::default();
        registry.register("pgwire_connections", "Open PostgreSQL-wire connections", gauges.pg_connections.clone());
        registry.register(
            "memory_pool_reserved_bytes",
            "Memory the queries and caches hold in the shared pool",
            gauges.memory_reserved.clone(),
        );
        registry.register(
            "memory_pool_limit_bytes",
            "The shared pool's bound (limits.memory_mb)",
            gauges.memory_limit.clone(),
        );
        registry.register("log_version", "The events log's latest commit version", gauges.log_version.clone());
        registry.register(
            "read_model_version",
            "The log version the read model reflects (-1: none)",
            gauges.read_model_version.clone(),
        );
        registry.register(
            "read_model_lag",
            "Log commits the read model is behind (queries fold the log while it is)",
            gauges.read_model_lag.clone(),
        );
        registry.register("events_stored", "Events in the log", gauges.events.clone());
        registry.register("rejected_stored", "Rows in the quarantine, rejected_events", gauges.rejected_events.clone());
        Self {
            registry,
            appended,
            duplicates,
            rejected,
            append_errors,
            deliveries,
            statements,
            slow_statements,
            compactions,
            gauges,
        }
    }

    /// Counts what one append did.
    pub fn appended(&self, source: &str, r: &AppendReport) {
        let kind = source_kind(source);
        self.appended.get_or_create(&[("source", kind.clone())]).inc_by(r.appended);
        self.duplicates.get_or_create(&[("source", kind.clone())]).inc_by(r.duplicates);
        for (reason, n) in [("invalid", r.rejected), ("conflict", r.conflicts)] {
            self.rejected.get_or_create(&[("source", kind.clone()), ("reason", reason.into())]).inc_by(n);
        }
        self.compactions.inc_by(r.compacted);
    }

    /// Counts an append that stored nothing.
    pub fn append_failed(&self, source: &str, e: &Error) {
        let reason = if matches!(e, Error::Locked { .. }) { "locked" } else { "error" };
        self.append_refused(source, reason);
    }

    /// Counts an append that was not tried (`reason`: `busy`, …).
    pub fn append_refused(&self, source: &str, reason: &'static str) {
        self.append_errors.get_or_create(&[("source", source_kind(source)), ("reason", reason.into())]).inc();
    }

    /// Counts one request to an ingest endpoint.
    pub fn delivery(&self, source: &'static str, status: u16) {
        self.deliveries.get_or_create(&[("source", source.into()), ("status", status.to_string())]).inc();
    }

    /// Records one statement's duration; true when it was slow.
    pub fn statement(&self, kind: &'static str, elapsed: Duration, slow_after: Option<Duration>) -> bool {
        self.statements.get_or_create(&[("kind", kind.into())]).observe(elapsed.as_secs_f64());
        let slow = slow_after.is_some_and(|t| elapsed >= t);
        if slow {
            self.slow_statements.inc();
        }
        slow
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Times one statement from its creation until its last holder lets go
/// (for a query, when its last row is sent), then records it and logs it if
/// slow. Never logs the statement's text: it may carry data.
#[derive(Debug)]
pub struct StatementTimer {
    kind: &'static str,
    started: Instant,
    /// The statement's id in the logs (the connection's is its span's).
    id: u64,
    slow_after: Option<Duration>,
}

impl StatementTimer {
    pub fn start(kind: &'static str, slow_after: Option<Duration>) -> Self {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(statement_id = id, kind, "statement");
        Self { kind, started: Instant::now(), id, slow_after }
    }
}

impl Drop for StatementTimer {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        if global().statement(self.kind, elapsed, self.slow_after) {
            tracing::warn!(
                target: "leadline::slow_query",
                statement_id = self.id,
                kind = self.kind,
                elapsed_ms = elapsed.as_millis() as u64,
                "slow statement"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_counted_by_kind_only() {
        assert_eq!(source_kind("INSERT by alice"), "insert");
        assert_eq!(source_kind("github delivery 72d3"), "github");
        assert_eq!(source_kind("events POST /v1/events"), "events");
        assert_eq!(source_kind("data/x.ndjson"), "other");
        assert_eq!(source_kind(""), "other");
    }

    #[test]
    fn the_exposition_names_what_was_counted() {
        let t = Telemetry::new();
        let report = AppendReport { appended: 3, duplicates: 1, rejected: 2, ..Default::default() };
        t.appended("github delivery 1", &report);
        t.delivery("github", 200);
        t.statement("query", Duration::from_millis(3), None);
        let text = t.encode();
        assert!(text.contains(r#"leadline_events_appended_total{source="github"} 3"#), "{text}");
        assert!(text.contains(r#"leadline_events_rejected_total{source="github",reason="invalid"} 2"#), "{text}");
        assert!(text.contains(r#"leadline_http_deliveries_total{source="github",status="200"} 1"#), "{text}");
        assert!(text.contains(r#"leadline_statement_duration_seconds_count{kind="query"} 1"#), "{text}");
    }
}
