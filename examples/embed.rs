//! leadline from Rust, inside a DataFusion `SessionContext` of your own:
//! append events with the engine's `Appender`, then register leadline's
//! tables (`deployments`, `changes`, `incidents`) and its DORA functions
//! (`leadline-udfs`) beside your own tables and join them in one query.
//!
//! ```sh
//! cargo run -p leadline-report --example embed     # `cargo test` runs it too
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use leadline_engine::{Appender, Catalog, MemoryLimits, input, session_config};

/// A tiny delivery history: two services, one failed deployment (rolled
/// back), one incident caused by a deployment, and its hotfix.
const EVENTS: &str = r#"
{"event_id":"c1","event_type":"commit","occurred_at":"2026-03-02T09:00:00Z","service":"checkout","commit_sha":"a1"}
{"event_id":"c2","event_type":"commit","occurred_at":"2026-03-02T10:00:00Z","service":"search","commit_sha":"b1"}
{"event_id":"d1","event_type":"deployment_succeeded","occurred_at":"2026-03-02T12:00:00Z","service":"checkout","environment":"production","deployment_id":"dep-1","commit_sha":"a1"}
{"event_id":"d2","event_type":"deployment_succeeded","occurred_at":"2026-03-02T13:00:00Z","service":"search","environment":"production","deployment_id":"dep-2","commit_sha":"b1"}
{"event_id":"r2","event_type":"deployment_rolled_back","occurred_at":"2026-03-02T13:20:00Z","service":"search","environment":"production","deployment_id":"dep-2"}
{"event_id":"i1","event_type":"incident_opened","occurred_at":"2026-03-02T15:00:00Z","service":"checkout","environment":"production","incident_id":"inc-1","deployment_id":"dep-1"}
{"event_id":"c3","event_type":"commit","occurred_at":"2026-03-02T15:30:00Z","service":"checkout","commit_sha":"a2"}
{"event_id":"d3","event_type":"deployment_succeeded","occurred_at":"2026-03-02T16:00:00Z","service":"checkout","environment":"production","deployment_id":"dep-3","commit_sha":"a2","incident_id":"inc-1"}
{"event_id":"i2","event_type":"incident_resolved","occurred_at":"2026-03-02T16:10:00Z","service":"checkout","environment":"production","incident_id":"inc-1"}
"#;

async fn run() -> Result<String, Box<dyn std::error::Error>> {
    // A data directory, written through the engine's one writer.
    let dir = std::env::temp_dir().join(format!("leadline-embed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut appender = Appender::open(&dir, "embed example")?;
    let rows = input::ndjson_rows(std::io::Cursor::new(EVENTS.trim().as_bytes()));
    let appended = appender.append("events.ndjson", rows, &mut |_| {})?;
    assert_eq!(appended.rejected, 0);
    drop(appender);

    // leadline's catalog pins one snapshot of the log for its session...
    let catalog = Catalog::open(&dir, MemoryLimits::default())?;
    let leadline = catalog.session(session_config())?;

    // ...and its tables join yours in a context of your own, with the DORA
    // aggregate functions registered on it.
    let ctx = SessionContext::new();
    leadline_udfs::register_all(&ctx);
    for table in ["deployments", "changes", "incidents"] {
        ctx.register_table(table, leadline.context().table_provider(table).await?)?;
    }
    let owners = RecordBatch::try_from_iter([
        ("service", Arc::new(StringArray::from(vec!["checkout", "search"])) as ArrayRef),
        ("owner", Arc::new(StringArray::from(vec!["payments", "discovery"])) as ArrayRef),
    ])?;
    ctx.register_batch("owners", owners)?;

    let sql = "SELECT o.owner, count(*) AS deployments,
                      change_failure_rate(d.failed) AS cfr,
                      dora_tier('change_failure_rate', change_failure_rate(d.failed)) AS cfr_tier,
                      rework_rate(d.rework) AS rework,
                      lead_time(c.p50) AS lead_time
               FROM deployments d
               JOIN owners o USING (service)
               LEFT JOIN (SELECT deployment_id, lead_time(lead_time) AS p50 FROM changes GROUP BY 1) c
                 USING (deployment_id)
               WHERE d.status = 'succeeded' AND d.environment = 'production'
               GROUP BY o.owner ORDER BY o.owner";
    let batches = ctx.sql(sql).await?.collect().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(pretty_format_batches(&batches)?.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", run().await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_answers() {
        let table = super::run().await.unwrap();
        // discovery: dep-2 rolled back; payments: dep-1 caused inc-1, dep-3 is its hotfix (rework).
        assert!(table.contains("| discovery | 1           | 1.0 | low      | 0.0    |"), "{table}");
        assert!(table.contains("| payments  | 2           | 0.5 | low      | 0.5    |"), "{table}");
    }
}
