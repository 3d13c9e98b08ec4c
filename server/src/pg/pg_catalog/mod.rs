//! A compact `pg_catalog` and `information_schema` over the session's tables
//! ([`tables`]), the PostgreSQL functions catalog queries call
//! ([`functions`]), and the rewrites of a parsed statement that let DataFusion
//! run what clients send ([`rewrite`]: `pg_catalog.` qualifiers,
//! `OPERATOR(pg_catalog.~)`, `COLLATE pg_catalog.default`, `::regclass`,
//! subqueries over relations leadline never has rows in).
//!
//! `rewrite` and `functions` read what `tables` knows (types, relation OIDs);
//! `tables` uses neither.
//!
//! Why not `datafusion-pg-catalog`: its release for DataFusion 55 turns on
//! DataFusion's default features (compression codecs and their C builds), and
//! it failed pgjdbc's `getPrimaryKeys` and psql's `\df`; what the corpus in
//! `../shared/pg-corpus` needs fits in this module.

mod arrays;
mod format;
mod functions;
mod rewrite;
mod tables;
mod templates;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::common::Result as DfResult;
use datafusion::prelude::SessionContext;

pub use rewrite::{Planned, plan, rewrite_in};
pub use tables::{CatalogInfo, FixedTables, TableInfo, ViewDetails};

pub const NS_PG_CATALOG: i32 = 11;
pub const NS_PUBLIC: i32 = 2200;
pub const NS_INFORMATION_SCHEMA: i32 = 13183;
pub const OWNER: i32 = 10;
pub const FIRST_TABLE_OID: i32 = 16384;
/// Durable views' OIDs start here (plus the view's id, which `CREATE OR
/// REPLACE` keeps); temporary views count down from `i32::MAX`.
pub const FIRST_VIEW_OID: i32 = 1_000_000;

/// The OID of the view with the engine's `id`.
pub fn view_oid(id: u32, temporary: bool) -> i32 {
    if temporary {
        i32::MAX - (u32::MAX - id).min(i32::MAX as u32 / 2) as i32
    } else {
        FIRST_VIEW_OID.saturating_add(id.min(i32::MAX as u32 / 2) as i32)
    }
}
pub const DATABASE: &str = "leadline";
pub const SERVER_VERSION: &str = "16.6";
pub const SERVER_VERSION_NUM: &str = "160006";

/// `SELECT version()`: SQLAlchemy and others parse the leading `PostgreSQL N.M`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (leadline {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION")
    )
}

/// A session's variables: what `SHOW` answers, `pg_settings` lists and
/// `current_setting`/`set_config` read and write.
pub type Settings = Arc<Mutex<BTreeMap<String, String>>>;

/// Registers the catalog tables and functions in a session; `fixed` holds
/// the tables every session of the server shares.
pub fn register(ctx: &SessionContext, fixed: &FixedTables, info: Arc<CatalogInfo>, settings: Settings) -> DfResult<()> {
    // Tables first: `pg_proc` lists the functions the session had before these.
    tables::register_tables(ctx, fixed, &info, &settings)?;
    functions::register_functions(ctx, info, settings);
    Ok(())
}

/// The session's tables (its `public` schema) as the catalog lists them, at
/// OIDs from [`FIRST_TABLE_OID`]: `events` first, so that its OID is stable.
/// `rows`: a table's row count, where known.
pub async fn user_tables(ctx: &SessionContext, rows: impl Fn(&str) -> Option<u64>) -> DfResult<Vec<TableInfo>> {
    let mut tables = Vec::new();
    let Some(schema) = ctx.catalog("datafusion").and_then(|c| c.schema("public")) else { return Ok(tables) };
    let mut names = schema.table_names();
    names.sort_by_key(|n| (n != "events", n != "rejected_events", n.clone()));
    for (n, name) in names.iter().enumerate() {
        if let Some(t) = schema.table(name).await? {
            tables.push(TableInfo {
                oid: FIRST_TABLE_OID + n as i32,
                name: name.clone(),
                schema: t.schema(),
                rows: rows(name).map_or(-1, |n| n as i64),
                insertable: name == "events",
                view: None,
            });
        }
    }
    Ok(tables)
}

/// Lists the session's views anew in the catalog relations, after
/// [`CatalogInfo::set_views`].
pub fn register_views(ctx: &SessionContext, info: &CatalogInfo) -> DfResult<()> {
    tables::register_relations(ctx, info)
}

/// A session with the catalog registered over one user table, `climate`
/// (the table of `../shared/pg-corpus`), at OID [`FIRST_TABLE_OID`].
#[cfg(test)]
pub(crate) fn test_session() -> (SessionContext, Arc<CatalogInfo>) {
    let ctx = SessionContext::new();
    let schema = register_climate(&ctx);
    let info = Arc::new(CatalogInfo {
        tables: vec![TableInfo {
            oid: FIRST_TABLE_OID,
            name: "climate".into(),
            schema,
            rows: 3,
            insertable: false,
            view: None,
        }],
        views: Default::default(),
        user: "analyst".into(),
        roles: vec!["analyst".into()],
    });
    register(&ctx, &FixedTables::default(), info.clone(), test_settings()).expect("register the catalog");
    (ctx, info)
}

/// The corpus's table, `climate` (empty), in a session.
#[cfg(test)]
fn register_climate(ctx: &SessionContext) -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;

    let schema = Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, true),
        Field::new("meantemp", DataType::Float64, false),
        Field::new("humidity", DataType::Float64, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
    ]));
    let table = MemTable::try_new(schema.clone(), vec![vec![]]).expect("an empty table");
    ctx.register_table("climate", Arc::new(table)).expect("register climate");
    schema
}

#[cfg(test)]
fn test_settings() -> Settings {
    let settings = [
        ("datestyle", "ISO, MDY"),
        ("default_table_access_method", "heap"),
        ("search_path", "\"$user\", public"),
        ("server_version_num", SERVER_VERSION_NUM),
    ];
    Arc::new(Mutex::new(BTreeMap::from(settings.map(|(k, v)| (k.to_string(), v.to_string())))))
}

/// A session as the server opens one over an (empty) data directory, with
/// the corpus's `climate` beside leadline's tables, table functions and
/// aggregates; the directory lives as long as what is returned.
#[cfg(test)]
pub(crate) async fn leadline_test_session()
-> (SessionContext, Arc<CatalogInfo>, leadline_engine::ReadSession, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let catalog =
        leadline_engine::Catalog::open(dir.path(), leadline_engine::MemoryLimits::default()).expect("open the catalog");
    let session = catalog.session(leadline_engine::session_config().with_information_schema(false)).expect("a session");
    let ctx = session.context().clone();
    register_climate(&ctx);
    let tables = user_tables(&ctx, |_| Some(0)).await.expect("list the tables");
    let info = Arc::new(CatalogInfo {
        tables,
        views: Default::default(),
        user: "analyst".into(),
        roles: vec!["analyst".into()],
    });
    register(&ctx, &FixedTables::default(), info.clone(), test_settings()).expect("register the catalog");
    (ctx, info, session, dir)
}

/// Runs one statement as the server does (parse, [`plan`], execute) and
/// returns its rows as text, `NULL` for nulls.
#[cfg(test)]
pub(crate) async fn run(
    ctx: &SessionContext,
    info: &CatalogInfo,
    sql: &str,
) -> Result<Vec<Vec<String>>, crate::pg::errors::PgError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql)?;
    assert_eq!(stmts.len(), 1, "one statement: {sql}");
    let plan = match plan(&ctx.state(), info, stmts.remove(0)).await? {
        Planned::Plan { plan, .. } => plan,
        Planned::Empty { .. } => return Ok(vec![]),
    };
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in &batches {
        let columns: Vec<ArrayFormatter> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c.value(row).to_string()).collect());
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::statement::{Kind, classify, split_statements, substitute};

    /// `-- [execute S_1 pid=1] parameters: $1 = 'a', $2 = 'it''s'` → the
    /// parameters as SQL literals.
    fn parameters(header: &str) -> Vec<String> {
        let Some((_, list)) = header.split_once("parameters: ") else { return vec![] };
        let mut out = Vec::new();
        let mut chars = list.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\'' {
                continue;
            }
            let mut value = String::from("'");
            while let Some(c) = chars.next() {
                value.push(c);
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        value.extend(chars.next());
                    } else {
                        break;
                    }
                }
            }
            out.push(value);
        }
        out
    }

    /// Statements of the corpus that PostgreSQL itself fails on.
    const NOT_IN_POSTGRESQL: &[(&str, &str)] =
        &[("time_bucket(", "TimescaleDB's function, missing without the extension")];

    /// Every query of `../shared/pg-corpus` and `tests/pg-corpus` (what real
    /// clients send) plans and runs against the catalog, over the corpus's
    /// `climate` table and leadline's own (which `grafana.sql` and
    /// `metabase.sql` query).
    #[tokio::test]
    async fn every_corpus_query_plans_and_runs() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in [root.join("../../shared/pg-corpus"), root.join("../tests/pg-corpus")] {
            files.extend(
                std::fs::read_dir(&dir)
                    .unwrap_or_else(|e| panic!("{}: {e} (the checkout must sit beside shared/)", dir.display()))
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "sql")),
            );
        }
        files.sort();
        let (ctx, info, _session, _dir) = leadline_test_session().await;
        let mut failures = Vec::new();
        let mut queries = 0;
        let mut tools = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // An entry starts at a statement PostgreSQL logged (`-- [statement …]`,
            // `-- [execute …] parameters: …`) or, in the files rebuilt from a
            // tool's sources, at `-- G …` (Grafana) or `-- M …` (Metabase).
            let mut entries: Vec<(&str, String)> = Vec::new();
            for line in text.lines() {
                let header = ["-- [", "-- G ", "-- M "].iter().any(|h| line.starts_with(h));
                tools += usize::from(header && !line.starts_with("-- ["));
                match entries.last_mut() {
                    _ if header => entries.push((line, String::new())),
                    _ if line.trim_start().starts_with("--") => {}
                    Some((_, body)) => {
                        body.push_str(line);
                        body.push('\n');
                    }
                    None => {}
                }
            }
            for (header, body) in entries {
                let sql = substitute(&body, &parameters(header)).unwrap_or_else(|e| panic!("{header}: {e}"));
                for stmt in split_statements(&sql).into_iter().filter(|s| classify(s) == Kind::Query) {
                    queries += 1;
                    let result = run(&ctx, &info, &stmt).await;
                    match NOT_IN_POSTGRESQL.iter().find(|(marker, _)| stmt.contains(marker)) {
                        Some((_, why)) => {
                            assert_eq!(result.map_err(|e| e.parts().0).err(), Some("42883"), "{why}: {stmt}")
                        }
                        None => {
                            if let Err(e) = result {
                                failures.push(format!("{}: {e}\n{stmt}", file.display()));
                            }
                        }
                    }
                }
            }
        }
        assert!(queries > 100, "only {queries} corpus queries");
        assert!(tools > 40, "only {tools} entries of grafana.sql and metabase.sql");
        assert!(
            failures.is_empty(),
            "{} of {queries} corpus queries failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}
